"""The embedded backend's vector recall on crowded real vectors, against raw hnswlib.

``bench/speed.py`` measures recall on noisy copies of the stored turns, where every
query has one clear neighbourhood; this bench uses ``bench/backends.py``'s corpus
instead (LoCoMo turn vectors mixed with each other, LoCoMo questions as queries), where
neighbourhoods are crowded and a graph search's beam decides how many of the true ten
nearest it finds.

``N`` memories (default 100,000) go into a SQLite store through ``remember_batch`` with
precomputed vectors (embedding is free), and into a raw hnswlib index with the store's
parameters (M 16, ef_construction 100). For every query, interleaved: Sem-Mem
``recall(limit=10)`` in vector and hybrid mode (query vector cached, result cache
cleared), the same two with the fixed beam of 64 Sem-Mem searched with before
``sem_mem/backends/beam.py`` (the rule swapped out in this process), and raw
``knn_query`` with ef 64 and with the beam the rule gives. recall@10 against an exact
numpy search.

    python -m bench.hnsw_beam [--n N] [--repeat R] [--label L]

(run from the repository root).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Sequence

import numpy as np

from bench._common import RESULTS_DIR, Table, fmt, machine, percentiles_ms, ratio, write_results
from bench.backends import Corpus, PrecomputedEmbedder, _recall_at_10
from sem_mem import SemanticMemory
from sem_mem.backends import vector_index
from sem_mem.backends.beam import search_beam
from sem_mem.config import Settings

OLD_EF = 64
SEARCHES = ("vector", "hybrid", "vector64", "hybrid64", "old", "new")


def _fixed_beam(size: int, k: int, ef: int, wanted: int, limit: int | None = None) -> int:
    """The beam before ``beam.py``: the store's ef (64), or k if larger."""
    return max(ef, k)


def run(n: int, repeat: int) -> tuple[list[Table], dict[str, object]]:
    import hnswlib

    corpus = Corpus()
    texts, vectors = corpus.make(n, "big")
    queries, qvecs = corpus.questions, corpus.question_vectors.astype(np.float32)
    exact = np.argsort(-(qvecs @ vectors.T), axis=1)[:, :10]
    settings = Settings()
    new_ef = search_beam(n, 10, settings.hnsw_ef, 10)

    raw = hnswlib.Index(space="cosine", dim=vectors.shape[1])
    raw.init_index(n, M=settings.hnsw_m, ef_construction=settings.hnsw_ef_construction)
    raw.set_num_threads(2)
    start = time.perf_counter()
    raw.add_items(vectors, np.arange(n))
    raw_build = time.perf_counter() - start

    embedder = PrecomputedEmbedder()
    embedder.add(texts, vectors)
    embedder.add(queries, qvecs)
    row_of: dict[str, int] = {}
    times: dict[str, list[float]] = {k: [] for k in SEARCHES}
    found: dict[str, list[list[int]]] = {k: [] for k in times}
    with tempfile.TemporaryDirectory(prefix="semmem-beam-") as folder:
        memory = SemanticMemory(folder, embedder=embedder)
        try:
            start = time.perf_counter()
            for at in range(0, n, 10_000):
                ids = memory.remember_batch(texts[at : at + 10_000], dedupe=False)
                row_of.update(zip(ids, range(at, at + len(ids)), strict=True))
            load = time.perf_counter() - start
            for rep in range(repeat):
                for i, (question, vector) in enumerate(zip(queries, qvecs, strict=True)):
                    order = list(SEARCHES)
                    if (i + rep) % 2:
                        order.reverse()
                    for what in order:
                        memory._results.clear()
                        t0 = time.perf_counter()
                        if what.startswith(("vector", "hybrid")):
                            fixed = what.endswith("64")
                            vector_index.search_beam = _fixed_beam if fixed else search_beam  # type: ignore[assignment]
                            mode = what.removesuffix("64")
                            hits = memory.recall(question, limit=10, mode=mode)  # type: ignore[arg-type]
                            got = [row_of[h.id] for h in hits]
                        else:
                            raw.set_ef(OLD_EF if what == "old" else new_ef)
                            labels, _ = raw.knn_query(vector.reshape(1, -1), k=10, num_threads=1)
                            got = [int(x) for x in labels[0]]
                        times[what].append((time.perf_counter() - t0) * 1000)
                        if rep == 0:
                            found[what].append(got)
        finally:
            vector_index.search_beam = search_beam
            memory.close()

    table = Table(
        f"Vector recall at {n:,} crowded memories (beam for 10 results: {new_ef})",
        ["search", "p50 / p99 (ms)", "recall@10 vs exact", "p50 vs raw hnswlib, same beam"],
    )
    new_p50 = percentiles_ms(times["new"])[0]
    for what, label in (
        ("old", f"raw hnswlib, ef {OLD_EF} (Sem-Mem's beam before)"),
        ("new", f"raw hnswlib, ef {new_ef} (the beam rule)"),
        ("vector64", f"Sem-Mem recall, vector mode, ef {OLD_EF} (before)"),
        ("vector", "Sem-Mem recall, vector mode (the beam rule)"),
        ("hybrid64", f"Sem-Mem recall, hybrid (50 candidates), ef {OLD_EF} (before)"),
        ("hybrid", "Sem-Mem recall, hybrid (the beam rule)"),
    ):
        p50, p99 = percentiles_ms(times[what])
        table.add(
            label,
            f"{fmt(p50)} / {fmt(p99)}",
            "–" if what.startswith("hybrid") else f"{_recall_at_10(found[what], exact):.3f}",
            ratio(p50, new_p50),
        )
    table.notes += [
        f"remember_batch of {n:,} (dedupe off, index included): {load:.0f} s; "
        f"raw hnswlib add_items (2 threads): {raw_build:.0f} s.",
        f"{len(queries)} LoCoMo questions x {repeat} interleaved pass(es), the order of "
        "the six searches alternating per query; recall from the first pass.",
        "Hybrid's top 10 is fused with full text, so it has no recall@10 against the "
        "vector ranking: shown for its latency.",
    ]
    data = {
        "n": n,
        "beam": new_ef,
        "load_s": load,
        "raw_build_s": raw_build,
        "times_ms": times,
    }
    return [table], data


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--n", type=int, default=100_000, help="memories (default 100,000)")
    parser.add_argument("--repeat", type=int, default=3, help="interleaved passes (default 3)")
    parser.add_argument("--label", default="", help="a name for this run in the output files")
    args = parser.parse_args(argv)
    tables, data = run(args.n, args.repeat)
    name = "hnsw_beam" + (f"_{args.label}" if args.label else "")
    md, js = write_results(
        name,
        title="Embedded backend: vector recall on crowded real vectors, against raw hnswlib",
        intro=[(__doc__ or "").split("\n\n")[1].replace("\n", " ")],
        tables=tables,
        meta=machine(["numpy", "hnswlib"]),
        data=data,
        out_dir=RESULTS_DIR,
    )
    print(tables[0].markdown())
    print(f"wrote {md} and {js}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
