"""How fast is Sem-Mem at 10^4-10^6 memories, against chromadb, raw hnswlib, numpy and mem0?

Measured in one process, interleaved round by round, on the same vectors: real MiniLM
vectors of LoCoMo conversation turns (embedded once by the local embedder and cached in
``bench/results/.cache``), each memory a copy of a randomly chosen turn plus Gaussian noise
(``--noise``, per dimension) and re-normalised; queries are other noisy copies. Every figure
is a median over ``--runs`` rounds (builds: ``--build-runs``).

Sem-Mem is driven through its public API with a ``FreeEmbedder`` (the precomputed vectors
behind the ``Embedder`` interface, so embedding costs nothing) and, separately, with the
default ``LocalEmbedder``. "L2 path": the query embedding is cached but the result cache is
empty, so every call searches the index; "L1 hit path": the identical query repeated while
the store is unchanged (answered by the result cache).

    python -m bench.speed --quick            # 10^4 and 10^5, a few minutes
    python -m bench.speed --full             # 10^4, 10^5 and 10^6 (about an hour)
    python -m bench.speed --sizes 20000 --runs 3 --skip-mem0

Run from the repository root. Writes ``bench/results/speed.md`` and ``speed.json``.
The data lives in ``bench/speed_data.py``, the compared systems (one build/query
protocol) in ``bench/speed_systems.py`` and the tables in ``bench/speed_report.py``.
"""

from __future__ import annotations

import argparse
import gc
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bench._common import (
    dir_bytes,
    machine,
    median,
    peak_rss_mb,
    percentiles_ms,
    rss_mb,
    time_each_ms,
    write_results,
)
from bench.speed_data import (
    DEFAULT_LOCOMO,
    DIM,
    FreeEmbedder,
    Int8Queries,
    K,
    VectorSet,
    base_vectors,
    data_diagnostics,
    exact_top_k,
    load_locomo,
    memory_text,
    query_text,
    recall_at_k,
    text_index,
)
from bench.speed_report import other_results, tables
from bench.speed_systems import EF, Chroma, Hnswlib, Mem0, NumpyExact, SemMem, chroma_client
from sem_mem import SemanticMemory
from sem_mem.embedders.base import Embedder

PACKAGES = ("sem-mem", "numpy", "hnswlib", "chromadb", "mem0ai", "qdrant-client", "onnxruntime")


# ---------------------------------------------------------------------------- one size


class SizeRun:
    """Everything measured at one corpus size; ``figures`` is what goes to JSON."""

    def __init__(self, n: int, args: argparse.Namespace, ctx: dict[str, Any]) -> None:
        self.n, self.args, self.ctx = n, args, ctx
        self.work = Path(tempfile.mkdtemp(prefix=f"speed-{n}-", dir=args.workdir))
        self.figures: dict[str, Any] = {"n": n, "build_s": {}, "query": {}, "recall10": {}}

    def run(self) -> dict[str, Any]:
        try:
            self._run()
        finally:
            if not self.args.keep:
                shutil.rmtree(self.work, ignore_errors=True)
        return self.figures

    def _run(self) -> None:
        args, ctx, n, fig = self.args, self.ctx, self.n, self.figures
        vs: VectorSet = ctx["vectors"]
        corpus, bases = vs.corpus(n)
        queries, q_bases = ctx["queries"], ctx["query_bases"]
        turns = ctx["turns"] if args.texts == "locomo" else None
        texts = [memory_text(i, bases, turns) for i in range(n)]
        qtexts = [query_text(j, q_bases, turns) for j in range(len(queries))]
        truth = exact_top_k(corpus, queries)
        fig["data"] = data_diagnostics(corpus, bases, queries, q_bases, truth)
        free = FreeEmbedder(ctx["model_id"], corpus, queries)
        log(f"[{n:,}] data ready: {fig['data']}")

        # -- builds, interleaved
        builds: dict[str, list[float]] = {"hnswlib": [], "semmem": [], "chroma": []}
        runs = args.build_runs or (3 if n <= 20_000 else 1)
        exact, hnsw, semmem = NumpyExact(), Hnswlib(), SemMem(self.work / "semmem", free)
        chroma = None if args.skip_chroma else Chroma(self.work / "chroma")
        exact.build(corpus, texts)
        for r in range(runs):
            builds["hnswlib"].append(hnsw.build(corpus, texts))
            builds["semmem"].append(semmem.build(corpus, texts))
            if chroma is not None:
                builds["chroma"].append(chroma.build(corpus, texts))
            log(
                f"[{n:,}] build round {r + 1}/{runs}: "
                + ", ".join(f"{k} {v[-1]:.1f} s" for k, v in builds.items() if v)
            )
        if n <= args.dedupe_max:
            dedupe = SemMem(self.work / "semmem-dedupe", free, dedupe=True)
            builds["semmem_dedupe"] = [dedupe.build(corpus, texts)]
            shutil.rmtree(dedupe.path, ignore_errors=True)
        fig["build_s"] = builds

        # -- queries, interleaved by round (the order rotates each round)
        memory = semmem.open()
        nq = args.queries
        n_exact = nq if n < 500_000 else min(nq, 50)

        def sm_recall(mode: str) -> Callable[[int], list[int]]:
            return SemMem.searcher(memory, qtexts, mode)

        def clear_results() -> None:
            memory._results.clear()  # benchmark only: forces the L2 path

        # warm Sem-Mem's query-embedding cache (recall each query once, untimed)
        for j in range(nq):
            memory.recall(qtexts[j], K, mode="vector")
        systems: dict[str, tuple[Callable[[int], list[int]], Callable[[int], None] | None, int]]
        systems = {
            "numpy exact": (exact.searcher(queries), None, n_exact),
            "hnswlib k=10 ef=64": (hnsw.searcher(queries, K, EF), None, nq),
            "hnswlib k=10 ef=50": (hnsw.searcher(queries, K, 50), None, nq),
            "hnswlib k=10 ef=100": (hnsw.searcher(queries, K, 100), None, nq),
            "hnswlib k=50 ef=64": (hnsw.searcher(queries, 50, EF), None, nq),
            "sem-mem vector, L2 path": (sm_recall("vector"), lambda j: clear_results(), nq),
            "sem-mem hybrid, L2 path": (sm_recall("hybrid"), lambda j: clear_results(), nq),
            "sem-mem vector, L1 hit path": (
                sm_recall("vector"),
                lambda j: memory.recall(qtexts[j], K, mode="vector"),
                nq,
            ),
        }
        if chroma is not None:
            systems["chromadb query"] = (chroma.searcher(queries), None, nq)
        for name, (call, _, count) in systems.items():  # recall@10 once, untimed
            found = [call(j) for j in range(count)]
            fig["recall10"][name] = recall_at_k(found, truth[:count])
        names = list(systems)
        per_round: dict[str, list[tuple[float, float]]] = {name: [] for name in names}
        for r in range(args.runs):
            order = names[r % len(names) :] + names[: r % len(names)]
            for name in order:
                call, before, count = systems[name]
                js = list(range(count))
                hook = (lambda j, b=before: b(j)) if before else None
                per_round[name].append(percentiles_ms(_time_with_hook(call, js, hook)))
        fig["query"] = {
            name: {
                "p50_ms": median(p[0] for p in vals),
                "p99_ms": median(p[1] for p in vals),
                "rounds": vals,
                "queries": systems[name][2],
            }
            for name, vals in per_round.items()
        }
        log(
            f"[{n:,}] queries: "
            + ", ".join(f"{k} {v['p50_ms']:.3f}" for k, v in fig["query"].items())
        )

        # -- close, disk, cold open (in fresh processes)
        start = time.perf_counter()
        memory.close()
        fig["semmem_close_s"] = time.perf_counter() - start
        hnsw_path = self.work / "raw.hnsw"
        hnsw.save(hnsw_path)
        hnsw.close()
        exact.close()
        if chroma is not None:
            chroma.release()
        del systems
        gc.collect()
        np.save(self.work / "queries.npy", queries[:32])
        fig["disk_bytes"] = {
            "sem-mem": dir_bytes(self.work / "semmem"),
            "sem-mem sqlite": sum(
                p.stat().st_size for p in (self.work / "semmem").glob("memory.sqlite3*")
            ),
            "hnswlib": hnsw_path.stat().st_size,
        }
        if not args.skip_chroma:
            fig["disk_bytes"]["chromadb"] = dir_bytes(self.work / "chroma")
        fig["cold_open"] = {
            "sem-mem": child("semmem", self.work / "semmem", self.work, ctx["model_id"]),
            "hnswlib": child("hnswlib", hnsw_path, self.work, ""),
        }
        if not args.skip_chroma:
            fig["cold_open"]["chromadb"] = child("chroma", self.work / "chroma", self.work, "")
        log(f"[{n:,}] cold open: {fig['cold_open']}")

        # -- end to end with the local embedder (every question embedded afresh)
        if not args.skip_local:
            fig["e2e"] = self._end_to_end(ctx["local"], ctx["questions"])
            log(f"[{n:,}] end to end: {fig['e2e']}")

    def _end_to_end(self, local: Embedder, questions: list[str]) -> dict[str, Any]:
        from sem_mem.embedders.local import LocalEmbedder

        int8 = Int8Queries(local, LocalEmbedder(int8=True))
        store = SemMem(self.work / "semmem", local)
        memory, memory8 = store.open(), store.open(int8)
        try:
            for m in (memory, memory8):  # load the index and sessions; not timed
                m.recall(questions[-1], K)
            modes = ("hybrid", "vector", "embed", "hybrid int8", "embed int8")
            per = max(
                10,
                min(self.args.queries, (len(questions) - 1) // (len(modes) * self.args.runs)),
            )
            rounds: dict[str, list[tuple[float, float]]] = {mode: [] for mode in modes}
            pos = 0
            for _ in range(self.args.runs):
                for mode in rounds:
                    batch = questions[pos : pos + per]
                    pos += per
                    if mode == "embed":  # the embedder alone, for the breakdown
                        times = time_each_ms(local.embed, batch)
                    elif mode == "embed int8":
                        times = time_each_ms(int8.embed, batch)
                    elif mode == "hybrid int8":
                        times = time_each_ms(lambda q: memory8.recall(q, K), batch)
                    else:
                        times = time_each_ms(lambda q, m=mode: memory.recall(q, K, mode=m), batch)
                    rounds[mode].append(percentiles_ms(times))
        finally:
            memory.close()
            memory8.close()
        return {
            mode: {
                "p50_ms": median(p[0] for p in vals),
                "p99_ms": median(p[1] for p in vals),
                "rounds": vals,
                "queries": per,
            }
            for mode, vals in rounds.items()
        }


def _time_with_hook(
    call: Callable[[int], object], items: list[int], before: Callable[[int], object] | None
) -> list[float]:
    out = []
    clock = time.perf_counter
    for j in items:
        if before is not None:
            before(j)
        start = clock()
        call(j)
        out.append((clock() - start) * 1000)
    return out


# ---------------------------------------------------------------------------- children


def child(kind: str, path: Path, work: Path, model_id: str) -> dict[str, float]:
    """Open a store in a fresh process: seconds to open, to the first result, and RSS."""
    out = subprocess.run(
        [sys.executable, "-m", "bench.speed", "--child", kind, str(path), str(work), model_id],
        check=True,
        capture_output=True,
        text=True,
        cwd=Path.cwd(),  # the same checkout as this process (run from the repository root)
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def child_main(kind: str, path: str, work: str, model_id: str) -> None:
    queries = np.load(Path(work) / "queries.npy")
    base_rss = rss_mb()
    start = time.perf_counter()
    if kind == "semmem":
        memory = SemanticMemory(path, embedder=FreeEmbedder(model_id, queries[:0], queries))
        opened = time.perf_counter()
        memory.recall("query q0", K, mode="vector")
        first = time.perf_counter()
        times = [
            time_each_ms(lambda q: memory.recall(q, K, mode="vector"), [f"query q{j}"])[0]
            for j in range(1, len(queries))
        ]
        rss = rss_mb()  # before close() frees the index
        memory.close()
    elif kind == "hnswlib":
        import hnswlib

        index = hnswlib.Index(space="cosine", dim=DIM)
        index.load_index(path)
        index.set_ef(EF)
        opened = time.perf_counter()
        index.knn_query(queries[:1], k=K)
        first = time.perf_counter()
        times = time_each_ms(lambda q: index.knn_query(q[None], k=K, num_threads=1), queries[1:])
        rss = rss_mb()
    else:
        client = chroma_client(Path(path))
        collection = client.get_collection("bench")
        opened = time.perf_counter()
        collection.query(query_embeddings=queries[:1], n_results=K)
        first = time.perf_counter()
        times = time_each_ms(
            lambda q: collection.query(query_embeddings=q[None], n_results=K), queries[1:]
        )
        rss = rss_mb()
    print(
        json.dumps(
            {
                "open_s": opened - start,
                "first_result_s": first - start,
                "next_p50_ms": percentiles_ms(times)[0],
                "rss_mb": rss,
                "rss_added_mb": rss - base_rss,
                "peak_rss_mb": peak_rss_mb(),
            }
        )
    )


# ---------------------------------------------------------------------------- local writes


def local_write_rates(ctx: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """remember_batch of real texts into a fresh store: local embedder vs free embedder."""
    turns: list[str] = ctx["turns"][: args.local_texts]
    vectors = ctx["base"][: len(turns)]
    free = FreeEmbedder(ctx["model_id"], vectors, vectors[:0])
    tagged = [f"{t} m{i}" for i, t in enumerate(turns)]
    out: dict[str, list[float]] = {"local": [], "free": []}
    for _ in range(max(1, min(3, args.runs))):
        with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
            local = SemMem(Path(tmp) / "a", ctx["local"])
            out["local"].append(len(turns) / local.build(vectors, turns))
            out["free"].append(len(turns) / SemMem(Path(tmp) / "b", free).build(vectors, tagged))
    log(f"local writes: {out}")
    return {"texts": len(turns), "per_s": out}


# ---------------------------------------------------------------------------- mem0


def mem0_growth(ctx: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """mem0 (infer=False, default local Qdrant) and Sem-Mem grown side by side until the budget."""
    home = Path(tempfile.mkdtemp(prefix="speed-mem0-", dir=args.workdir))
    vs: VectorSet = ctx["vectors"]
    top = args.mem0_sizes[-1]
    corpus, _ = vs.corpus(top)
    queries = ctx["queries"][: args.mem0_queries]
    mem0 = Mem0(home, corpus, queries)
    free = FreeEmbedder(ctx["model_id"], corpus, queries)
    memory = SemMem(home / "semmem", free).open()
    qtexts = [f"query q{j}" for j in range(len(queries))]
    for q in qtexts:
        memory.recall(q, K)  # cache the query embeddings (the store is still empty)
    rows, done, started = [], 0, time.perf_counter()
    try:
        for size in args.mem0_sizes:
            if time.perf_counter() - started > args.mem0_budget:
                break
            texts = [f"memory m{i}" for i in range(done, size)]
            t0 = time.perf_counter()
            mem0.add(texts)
            t1 = time.perf_counter()
            memory.remember_batch(texts, dedupe=False)
            t2 = time.perf_counter()
            truth = exact_top_k(corpus[:size], queries)
            found_m0: list[list[int]] = []
            found_sm: list[list[int]] = []

            def m0_search(q: str, found: list[list[int]] = found_m0) -> None:
                found.append(mem0.search(q))

            def sm_search(q: str, found: list[list[int]] = found_sm) -> None:
                memory._results.clear()  # benchmark only: L2 path
                found.append([text_index(r.text)[1] for r in memory.recall(q, K)])

            m0_times = time_each_ms(m0_search, qtexts)
            sm_times = time_each_ms(sm_search, qtexts)
            rows.append(
                {
                    "n": size,
                    "added": len(texts),
                    "mem0_add_per_s": len(texts) / (t1 - t0),
                    "semmem_add_per_s": len(texts) / (t2 - t1),
                    "mem0_search_ms": percentiles_ms(m0_times),
                    "semmem_recall_ms": percentiles_ms(sm_times),
                    "mem0_recall10": recall_at_k(found_m0, truth),
                    "semmem_recall10": recall_at_k(found_sm, truth),
                    "elapsed_s": time.perf_counter() - started,
                }
            )
            log(f"mem0 at {size:,}: {rows[-1]}")
            done = size
    finally:
        memory.close()
        shutil.rmtree(home, ignore_errors=True)
    return {"budget_s": args.mem0_budget, "queries": len(queries), "rows": rows}


# ---------------------------------------------------------------------------- main


def log(message: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {message}", file=sys.stderr, flush=True)


def parse_size(text: str) -> int:
    text = text.strip().lower().replace("_", "")
    scale = {"k": 1_000, "m": 1_000_000}.get(text[-1:], 1)
    return int(float(text.rstrip("km")) * scale)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sizes", type=lambda s: [parse_size(x) for x in s.split(",")])
    parser.add_argument("--quick", action="store_true", help="10^4 and 10^5 (the default)")
    parser.add_argument("--full", action="store_true", help="10^4, 10^5 and 10^6")
    parser.add_argument("--runs", type=int, default=None, help="query rounds (3 / 5)")
    parser.add_argument(
        "--build-runs",
        type=int,
        default=0,
        help="build rounds (default 3 up to 20k memories, else 1)",
    )
    parser.add_argument("--queries", type=int, default=None, help="per round (100 / 200)")
    parser.add_argument("--noise", type=float, default=0.035, help="Gaussian noise per dim")
    parser.add_argument("--texts", choices=("synthetic", "locomo"), default="synthetic")
    parser.add_argument("--skip-mem0", action="store_true")
    parser.add_argument("--skip-chroma", action="store_true")
    parser.add_argument("--skip-local", action="store_true", help="no local-embedder figures")
    parser.add_argument("--mem0-budget", type=float, default=None, help="seconds (120/600)")
    parser.add_argument("--mem0-queries", type=int, default=50)
    parser.add_argument("--local-texts", type=int, default=None, help="texts (1000/all)")
    parser.add_argument(
        "--dedupe-max",
        type=int,
        default=None,
        help="also time dedupe=True up to this size (10^4 / 10^5)",
    )
    parser.add_argument("--workdir", default=None, help="where stores are built (a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the built stores")
    parser.add_argument("--locomo", type=Path, default=DEFAULT_LOCOMO)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", default="speed", help="results name in bench/results/")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child_main(*args.child)
        return
    full = args.full
    args.sizes = args.sizes or ([10_000, 100_000, 1_000_000] if full else [10_000, 100_000])
    args.runs = args.runs or (5 if full else 3)
    args.queries = args.queries or (200 if full else 100)
    args.mem0_budget = args.mem0_budget or (600.0 if full else 120.0)
    args.mem0_sizes = [1_000, 2_000, 5_000, 10_000, 20_000, 50_000, 100_000]
    args.local_texts = args.local_texts or (100_000 if full else 1_000)
    args.dedupe_max = (
        args.dedupe_max if args.dedupe_max is not None else (100_000 if full else 10_000)
    )

    from sem_mem.embedders.local import LocalEmbedder

    meta_start = machine(PACKAGES)
    turns, questions = load_locomo(args.locomo)
    local = LocalEmbedder()
    base = base_vectors(turns, local)
    vectors = VectorSet(base, args.noise, args.seed)
    queries, query_bases = vectors.queries(args.queries)
    ctx = {
        "turns": turns,
        "questions": questions,
        "local": local,
        "model_id": local.model_id,
        "base": base,
        "vectors": vectors,
        "queries": queries,
        "query_bases": query_bases,
    }
    results: dict[str, Any] = {
        "args": {k: v for k, v in vars(args).items() if k != "child"},
        "base_turns": len(turns),
        "sizes": [],
    }
    started = time.perf_counter()
    for n in sorted(args.sizes):
        results["sizes"].append(SizeRun(n, args, ctx).run())
    if not args.skip_local:
        results["local_writes"] = local_write_rates(ctx, args)
    if not args.skip_mem0:
        results["mem0"] = mem0_growth(ctx, args)
    results["elapsed_s"] = time.perf_counter() - started
    meta = machine(PACKAGES)
    meta["load_average_at_start"] = meta_start["load_average"]
    tabs = tables(results, args)
    for table in tabs:
        print(table.markdown())
    intro = [
        "Produced by `python -m bench.speed` "
        f"({' '.join(sys.argv[1:]) or 'default options'}); "
        f"{results['elapsed_s'] / 60:.1f} min. Medians over {args.runs} query rounds of "
        f"{args.queries} queries, interleaved across systems.",
    ]
    md, js = write_results(
        args.out,
        title="Sem-Mem speed",
        intro=intro,
        tables=tabs,
        meta=meta,
        data=results,
        extra_markdown=other_results(),
    )
    log(f"wrote {md} and {js}")


if __name__ == "__main__":
    main()
