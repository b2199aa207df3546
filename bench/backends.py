"""The PostgreSQL backend side by side with raw SQL on the same server and tables.

One pgserver PostgreSQL (pgvector 0.6.2) receives ``N`` memories (default 100,000;
``--quick`` 10,000) through ``remember_batch`` (chunks of 1,000, dedupe on, as users
call it) in namespace ``big``, plus two tenants of 1,000 and 5,000 memories. Texts are
real conversation turns (LoCoMo, five conversations) repeated with variations: each
memory is one turn followed by the opening of another, prefixed by its speaker. Vectors
are the all-MiniLM-L6-v2 embeddings of those turns (computed once, cached under
``/tmp``) mixed the same way, served by a precomputed "free" embedder, so the figures
are the storage layer's, not a model's. Queries are LoCoMo's own questions.

For every query, interleaved: Sem-Mem ``recall`` (limit 10, query vector cached,
result cache cleared so every call searches) and the raw SQL a user of pgvector would
write on the same tables (vector: ``ORDER BY embedding <=> $1 LIMIT 10`` with the same
``hnsw.ef_search``; lexical: ``ts_rank`` over an OR of the query's words; hybrid: both
raw statements). Medians and p99 over all queries; recall@10 against an exact numpy
scan of the namespace's vectors.

PostgreSQL runs in a temp folder through the ``pgserver`` wheel (``--database-url`` to
use another server: the database must be empty). ``--explain`` also writes
``EXPLAIN (ANALYZE, BUFFERS)`` of the statements Sem-Mem runs to
``bench/results/backends_explain.md``.

    python -m bench.backends [--quick] [--n N] [--repeat R] [--explain]

(run from the repository root).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from bench._common import Table, fmt, machine, percentiles_ms, ratio, write_results
from sem_mem import SemanticMemory
from sem_mem.backends.base import StorageBackend
from sem_mem.config import Settings
from sem_mem.embedders.base import Embedder

DIM = 384
QUERIES = 200
LOCOMO = Path("/work/shared/data/locomo/locomo_dev5.json")
SMALL_NAMESPACES = {"small-1k": 1000, "small-5k": 5000}
_WORD = re.compile(r"\w+")


class PrecomputedEmbedder(Embedder):
    """Returns vectors computed in advance, by text: embedding costs nothing."""

    model_id = "bench:precomputed-384"
    dimensions = DIM
    batch_size = 4096

    def __init__(self) -> None:
        self.vectors: dict[str, np.ndarray] = {}

    def add(self, texts: Sequence[str], vectors: np.ndarray) -> None:
        self.vectors.update(zip(texts, vectors, strict=True))

    def embed_batch(self, texts: Sequence[str]) -> np.ndarray:
        return np.stack([self.vectors[t] for t in texts])


def _unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def locomo_turns_and_questions(path: Path) -> tuple[list[str], list[str]]:
    data = json.loads(path.read_text())
    turns, questions = [], []
    for conv in data:
        c = conv["conversation"]
        for key, value in c.items():
            if key.startswith("session_") and isinstance(value, list):
                turns += [
                    f"{t['speaker']}: {' '.join(t['text'].split())}"
                    for t in value
                    if t.get("text", "").strip()
                ]
        questions += [" ".join(q["question"].split()) for q in conv["qa"] if q.get("question")]
    return turns, questions


def embed_cached(texts: list[str], tag: str) -> np.ndarray:
    """MiniLM vectors of ``texts``, cached in /tmp (computing them takes ~1 min here)."""
    cache = Path(tempfile.gettempdir()) / f"semmem-bench-{tag}-{len(texts)}.npy"
    if cache.exists():
        return np.load(cache)
    from sem_mem.config import Settings as S
    from sem_mem.embedders.factory import create_embedder

    embedder = create_embedder(S(embedder="local"))
    vectors = embedder.encode(texts).astype(np.float32)
    np.save(cache, vectors)
    return vectors


class Corpus:
    """Real turns, repeated with variations; real questions as queries."""

    def __init__(self, seed: int = 42) -> None:
        self.rng = np.random.default_rng(seed)
        self.turns, questions = locomo_turns_and_questions(LOCOMO)
        self.turn_vectors = embed_cached(self.turns, "locomo-turns")
        picked = self.rng.choice(len(questions), size=min(QUERIES, len(questions)), replace=False)
        self.questions = [questions[i] for i in picked]
        self.question_vectors = embed_cached(self.questions, "locomo-questions")

    def make(self, n: int, prefix: str) -> tuple[list[str], np.ndarray]:
        t = len(self.turns)
        a = np.arange(n) % t
        self.rng.shuffle(a)
        b = self.rng.integers(0, t, size=n)
        texts = []
        for i in range(n):
            tail = " ".join(self.turns[b[i]].split(": ", 1)[-1].split()[:6])
            texts.append(f"{self.turns[a[i]]} ({prefix} {i}) {tail}")
        noise = self.rng.normal(size=(n, DIM)).astype(np.float32) / np.sqrt(DIM)
        vectors = _unit(self.turn_vectors[a] + 0.3 * self.turn_vectors[b] + 0.3 * noise)
        return texts, vectors


@contextmanager
def postgres_url(explicit: str | None) -> Iterator[str]:
    """A database URL: the given one, or a throw-away pgserver in a temp folder."""
    if explicit:
        yield explicit
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver

        folder = tempfile.mkdtemp(prefix="semmem-bench-pg-")
        os.chmod(folder, 0o777)  # as root, PostgreSQL runs as the 'pgserver' user
        server = pgserver.get_server(os.path.join(folder, "data"), cleanup_mode="delete")
    try:
        yield server.get_uri()
    finally:
        server.cleanup()
        shutil.rmtree(folder, ignore_errors=True)


def _open(url: str, settings: Settings) -> StorageBackend:
    try:
        from sem_mem.backends.factory import open_backend
    except ImportError:  # the code before the factory existed (the "before" run)
        from sem_mem.backends.postgres import PostgresBackend

        return PostgresBackend(url, settings=settings)
    return open_backend(settings.with_overrides(database_url=url))


def _words(text: str) -> list[str]:
    from sem_mem.backends.rows import STOPWORDS

    out: list[str] = []
    for w in _WORD.findall(text.lower()):
        if w not in STOPWORDS and w not in out:
            out.append(w)
    return out


class Raw:
    """The SQL a pgvector user would write, on its own connection to the same tables."""

    def __init__(self, url: str, ef_search: int) -> None:
        import psycopg
        from pgvector.psycopg import register_vector
        from psycopg import sql

        self.conn = psycopg.connect(url, autocommit=True)
        register_vector(self.conn)
        self.conn.execute("SELECT set_config('hnsw.ef_search', %s, false)", (str(ef_search),))
        self.sql = sql

    def vector(self, namespace: str, vec: np.ndarray, k: int = 10) -> list[str]:
        # the namespace as a literal, so a per-namespace partial index can be matched
        q = self.sql.SQL(
            "SELECT id FROM memories WHERE namespace = {} AND status = 'active' "
            "ORDER BY embedding <=> %s LIMIT %s"
        ).format(self.sql.Literal(namespace))
        return [r[0] for r in self.conn.execute(q, (vec, k), prepare=True).fetchall()]

    def lexical(self, namespace: str, text: str, k: int = 10) -> list[str]:
        words = _words(text)
        if not words:
            return []
        rows = self.conn.execute(
            "SELECT m.id, ts_rank(m.tsv, q) AS r FROM memories AS m, "
            "to_tsquery('english', %s) AS q WHERE m.tsv @@ q AND m.namespace = %s "
            "AND m.status = 'active' ORDER BY r DESC LIMIT %s",
            (" | ".join(f"'{w}'" for w in words), namespace, k),
            prepare=True,
        ).fetchall()
        return [r[0] for r in rows]

    def close(self) -> None:
        self.conn.close()


def _recall_at_10(found: list[list[int]], exact: np.ndarray) -> float:
    return float(np.mean([len(set(f) & set(e)) / 10 for f, e in zip(found, exact, strict=True)]))


def _interleaved(
    calls: dict[str, Callable[[int], object]], n: int, before: Callable[[], object]
) -> dict[str, list[float]]:
    """Per query i, each call in turn (rotating who goes first): milliseconds."""
    out: dict[str, list[float]] = {name: [] for name in calls}
    names = list(calls)
    clock = time.perf_counter
    for i in range(n):
        for j in range(len(names)):
            name = names[(i + j) % len(names)]
            before()
            start = clock()
            calls[name](i)
            out[name].append((clock() - start) * 1000)
    return out


def run(
    url: str, n: int, corpus: Corpus, settings: Settings, explain: bool, repeat: int = 1
) -> dict[str, Any]:
    embedder = PrecomputedEmbedder()
    texts, vectors = corpus.make(n, "big")
    embedder.add(texts, vectors)
    qtexts, qvecs = corpus.questions, corpus.question_vectors
    embedder.add(qtexts, qvecs)
    smalls = {}
    for namespace, size in SMALL_NAMESPACES.items():
        stexts, svecs = corpus.make(size, namespace)
        embedder.add(stexts, svecs)
        smalls[namespace] = (stexts, svecs)
    backend = _open(url, settings)
    out: dict[str, Any] = {"n": n}
    memory = SemanticMemory(
        backend=backend, embedder=embedder, settings=settings.with_overrides(namespace="big")
    )
    started = time.perf_counter()
    ids = memory.remember_batch(texts, chunk_size=1000)
    out["remember_seconds"] = time.perf_counter() - started
    print(f"  remember_batch {n:,}: {out['remember_seconds']:.1f} s", flush=True)
    tenants = {}
    for namespace, (stexts, svecs) in smalls.items():
        tenant = SemanticMemory(
            backend=backend,
            embedder=embedder,
            settings=settings.with_overrides(namespace=namespace),
        )
        started = time.perf_counter()
        sids = tenant.remember_batch(stexts, chunk_size=1000)
        out[f"{namespace}_remember_seconds"] = time.perf_counter() - started
        tenants[namespace] = (tenant, sids, svecs)
    # ANALYZE as autovacuum eventually would, so that raw SQL gets fair plans too
    # raw SQL searches with the hnsw.ef_search Sem-Mem sets for limit 10 in the big
    # namespace (64 before it set one per query, 200 before it grew with the namespace):
    # the same beam, so latencies compare like for like
    from sem_mem.backends.postgres_search import beam

    raw_ef = beam(len(ids), 10, settings.hnsw_ef, 10)
    raw = Raw(url, ef_search=raw_ef)
    out["raw_ef_search"] = raw_ef
    raw.conn.execute("ANALYZE memories")
    out["load_average_queries_start"] = list(os.getloadavg())

    spaces = {"big": (memory, ids, vectors)} | tenants
    for namespace, (mem, mids, mvecs) in spaces.items():
        position = {memory_id: i for i, memory_id in enumerate(mids)}
        for q in qtexts:  # warm: query vectors into the RAM cache
            mem.recall(q, limit=10, mode="vector")
        clear = mem._results.clear
        modes = ["vector", "lexical", "hybrid"] if namespace != "small-1k" else ["vector"]
        for mode in modes:
            calls: dict[str, Callable[[int], object]] = {
                "semmem": lambda i, m=mode, mm=mem: mm.recall(qtexts[i], limit=10, mode=m)
            }
            if mode == "vector":
                calls["raw"] = lambda i, ns=namespace: raw.vector(ns, qvecs[i])
            elif mode == "lexical":
                calls["raw"] = lambda i, ns=namespace: raw.lexical(ns, qtexts[i])
            else:
                calls["raw"] = lambda i, ns=namespace: (
                    raw.vector(ns, qvecs[i], 50),
                    raw.lexical(ns, qtexts[i], 50),
                )
            for name in calls:  # warm both: plans, caches
                for i in range(min(20, len(qtexts))):
                    clear()
                    calls[name](i)
            times: dict[str, list[float]] = {name: [] for name in calls}
            for _ in range(repeat):  # every pass interleaved; medians over all passes
                for name, t in _interleaved(calls, len(qtexts), clear).items():
                    times[name] += t
            for name, t in times.items():
                p50, p99 = percentiles_ms(t)
                out[f"{namespace}_{mode}_{name}_p50"] = p50
                out[f"{namespace}_{mode}_{name}_p99"] = p99
            print(
                f"  {namespace} {mode}: semmem p50 {out[f'{namespace}_{mode}_semmem_p50']:.2f} "
                f"raw p50 {out[f'{namespace}_{mode}_raw_p50']:.2f} ms",
                flush=True,
            )
        exact = np.argsort(-(qvecs @ mvecs.T), axis=1)[:, :10]
        found, found_raw = [], []
        for i, q in enumerate(qtexts):
            clear()
            found.append([position[h.id] for h in mem.recall(q, limit=10, mode="vector")])
            found_raw.append([position[x] for x in raw.vector(namespace, qvecs[i])])
        out[f"{namespace}_recall_semmem"] = _recall_at_10(found, exact)
        out[f"{namespace}_recall_raw"] = _recall_at_10(found_raw, exact)
        print(
            f"  {namespace} recall@10: semmem {out[f'{namespace}_recall_semmem']:.3f} "
            f"raw {out[f'{namespace}_recall_raw']:.3f}",
            flush=True,
        )
    out["load_average_queries_end"] = list(os.getloadavg())
    if explain:
        out["explain"] = explain_plans(backend, qtexts, qvecs)
    raw.close()
    for tenant, _, _ in tenants.values():
        tenant.close()
    memory.close()
    backend.close()
    return out


def explain_plans(
    backend: StorageBackend, qtexts: list[str], qvecs: np.ndarray
) -> list[tuple[str, str]]:
    """``EXPLAIN (ANALYZE, BUFFERS)`` of the statements the backend runs for a few queries."""
    explain = getattr(backend, "explain", None)
    if explain is None:  # the code before this bench's changes
        return []
    plans = []
    for namespace in ("big", "small-5k"):
        for i in (0, 1):
            for what, plan in explain(namespace, qtexts[i], qvecs[i]):
                plans.append((f"{what}, namespace {namespace}, query {qtexts[i]!r}", plan))
    return plans


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--n", type=int, default=100_000, help="memories (default 100,000)")
    parser.add_argument("--quick", action="store_true", help="10,000 memories")
    parser.add_argument("--database-url", default=None, help="an empty PostgreSQL database")
    parser.add_argument("--explain", action="store_true", help="write backends_explain.md")
    parser.add_argument("--label", default="", help="a name for this run in the output files")
    parser.add_argument(
        "--repeat", type=int, default=1, help="interleaved passes over the queries (default 1)"
    )
    parser.add_argument("--out", default=None, help="results folder (default bench/results)")
    args = parser.parse_args(argv)
    n = 10_000 if args.quick else args.n
    settings = Settings()
    corpus = Corpus()
    print(f"{n:,} memories of {DIM} dimensions, {len(corpus.questions)} queries", flush=True)
    with postgres_url(args.database_url) as url:
        r = run(url, n, corpus, settings, args.explain, args.repeat)

    main_table = Table(
        f"Sem-Mem PostgreSQL vs raw SQL on the same server, {n:,} memories in namespace `big`",
        ["query", "Sem-Mem p50 / p99 (ms)", "raw SQL p50 / p99 (ms)", "p50 ratio"],
    )
    for mode in ("vector", "lexical", "hybrid"):
        s50, s99 = r[f"big_{mode}_semmem_p50"], r[f"big_{mode}_semmem_p99"]
        r50, r99 = r[f"big_{mode}_raw_p50"], r[f"big_{mode}_raw_p99"]
        main_table.add(
            mode, f"{fmt(s50)} / {fmt(s99)}", f"{fmt(r50)} / {fmt(r99)}", ratio(s50, r50)
        )
    main_table.add(
        "vector recall@10 vs exact",
        f"{r['big_recall_semmem']:.3f}",
        f"{r['big_recall_raw']:.3f}",
        "",
    )
    main_table.add(
        f"remember_batch {n:,} (s)",
        fmt(r["remember_seconds"]),
        "",
        f"{n / r['remember_seconds']:,.0f}/s",
    )
    main_table.notes += [
        "Sem-Mem: SemanticMemory.recall(limit=10) with the query vector cached and the result "
        "cache cleared before every call (hybrid and lexical ask for 50 candidates each); raw: "
        f"one connection, prepared statements, hnsw.ef_search {r['raw_ef_search']} (the value "
        "Sem-Mem sets for limit 10).",
        "Each query runs Sem-Mem and raw back to back, alternating which goes first; "
        f"{args.repeat} pass(es) over the queries. Load average (1 min) when the queries "
        f"began / ended: {r['load_average_queries_start'][0]:.2f} / "
        f"{r['load_average_queries_end'][0]:.2f}.",
        "remember_batch: chunks of 1,000, dedupe on, precomputed vectors.",
    ]
    ns_table = Table(
        "The same store's smaller tenants",
        ["namespace / query", "Sem-Mem p50 (ms)", "raw SQL p50 (ms)", "recall@10 Sem-Mem / raw"],
    )
    for ns in SMALL_NAMESPACES:
        for mode in ("vector", "lexical", "hybrid"):
            if f"{ns}_{mode}_semmem_p50" not in r:
                continue
            rec = (
                f"{r[f'{ns}_recall_semmem']:.3f} / {r[f'{ns}_recall_raw']:.3f}"
                if mode == "vector"
                else ""
            )
            ns_table.add(
                f"{ns} {mode}",
                fmt(r[f"{ns}_{mode}_semmem_p50"]),
                fmt(r[f"{ns}_{mode}_raw_p50"]),
                rec,
            )
    tables = [main_table, ns_table]
    for t in tables:
        print()
        print(t.markdown())
    out_dir = Path(args.out) if args.out else None
    kwargs: dict[str, Any] = {"out_dir": out_dir} if out_dir else {}
    name = "backends" + ("_quick" if args.quick else "") + (f"_{args.label}" if args.label else "")
    explain = r.pop("explain", None)
    md, js = write_results(
        name,
        title="PostgreSQL backend vs raw SQL on the same server",
        intro=[(__doc__ or "").split("\n\n")[1].replace("\n", " ")],
        tables=tables,
        meta=machine(["numpy", "psycopg", "pgvector", "pgserver"]),
        data={"n": n, "dimensions": DIM, "queries": len(corpus.questions), "results": r},
        **kwargs,
    )
    print(f"wrote {md} and {js}")
    if explain:
        path = (out_dir or Path(md).parent) / "backends_explain.md"
        body = ["# EXPLAIN (ANALYZE, BUFFERS) of the PostgreSQL backend's statements", ""]
        body.append(
            f"{n:,} memories in namespace `big`, 6,000 in two other namespaces; query: "
            f"{corpus.questions[0]!r}."
        )
        for title, plan in explain:
            body += ["", f"## {title}", "", "```", plan, "```"]
        path.write_text("\n".join(body) + "\n")
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
