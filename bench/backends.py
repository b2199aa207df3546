"""The two storage backends side by side at scale: SQLite + hnswlib vs PostgreSQL + pgvector.

For each backend, a fresh store receives ``N`` memories (default 100,000; ``--quick``
10,000) through ``remember_batch`` (chunks of 1,000, dedupe on, as users call it), then
answers 200 queries through ``recall``. Vectors are 384-dimensional and clustered
(1,000 random unit centroids plus Gaussian noise), served by a precomputed "free"
embedder (a real :class:`Embedder` that looks vectors up by text), so the figures are
the storage layer's, not a model's. Texts are words drawn from each cluster's own
vocabulary plus common ones, so full-text search has realistic work.

Measured: ``remember_batch`` throughput (memories/s, index maintenance included),
recall p50/p99 in vector and hybrid mode with the query embedding cached (the result
cache is cleared before each call so every recall searches the index), recall@10 of
vector mode against an exact numpy scan, and vector recall in two smaller namespaces
of the same store (1,000 and 5,000 memories: on PostgreSQL these share one HNSW index
with the big namespace, see ``sem_mem/backends/postgres.py``).

PostgreSQL runs in a temp folder through the ``pgserver`` wheel (``--database-url`` to
use another server: the database must be empty). HNSW parameters are the library's
defaults (M 16, ef_construction 100, ef 64) for both backends unless overridden.

    python -m bench.backends [--quick] [--n N] [--backends sqlite,postgres]

(run from the repository root).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from bench._common import Table, fmt, machine, percentiles_ms, time_each_ms, write_results
from sem_mem import SemanticMemory
from sem_mem.backends.base import StorageBackend
from sem_mem.config import Settings
from sem_mem.embedders.base import Embedder

DIM = 384
CENTROIDS = 1000
QUERIES = 200
SMALL_NAMESPACES = {"small-1k": 1000, "small-5k": 5000}


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


class Corpus:
    """Clustered vectors with texts drawn from per-cluster vocabularies."""

    def __init__(self, seed: int = 42) -> None:
        self.rng = np.random.default_rng(seed)
        self.centroids = _unit(self.rng.normal(size=(CENTROIDS, DIM)))
        syllables = [a + b for a in "bdfgklmnprstvz" for b in "aeiou"]
        words = {"".join(self.rng.choice(syllables, size=3)) for _ in range(CENTROIDS * 30 + 2000)}
        vocab = sorted(words)
        self.common = vocab[:300]
        self.topics = [vocab[300 + 20 * c : 320 + 20 * c] for c in range(CENTROIDS)]

    def make(self, n: int, prefix: str) -> tuple[list[str], np.ndarray, np.ndarray]:
        """n (texts, vectors, cluster ids)."""
        clusters = self.rng.integers(0, CENTROIDS, size=n)
        noise = self.rng.normal(size=(n, DIM)) / np.sqrt(DIM)
        vectors = _unit(self.centroids[clusters] + 0.8 * noise)
        texts = []
        for i, c in enumerate(clusters):
            topic = self.rng.choice(self.topics[c], size=6)
            common = self.rng.choice(self.common, size=4)
            texts.append(f"{prefix} {i}: " + " ".join([*topic, *common]))
        return texts, vectors, clusters

    def queries(
        self, vectors: np.ndarray, clusters: np.ndarray, n: int
    ) -> tuple[list[str], np.ndarray]:
        picks = self.rng.choice(len(vectors), size=n, replace=False)
        noise = self.rng.normal(size=(n, DIM)) / np.sqrt(DIM)
        qvecs = _unit(vectors[picks] + 0.5 * noise)
        texts = [
            f"query {j}: " + " ".join(self.rng.choice(self.topics[clusters[p]], size=3))
            for j, p in enumerate(picks)
        ]
        return texts, qvecs


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


def _open(kind: str, where: str, settings: Settings) -> StorageBackend:
    if kind == "sqlite":
        from sem_mem.backends.sqlite import SQLiteBackend
        from sem_mem.backends.vector_index import HNSWParams

        return SQLiteBackend(
            where,
            hnsw=HNSWParams(
                m=settings.hnsw_m,
                ef_construction=settings.hnsw_ef_construction,
                ef=settings.hnsw_ef,
            ),
        )
    from sem_mem.backends.postgres import PostgresBackend

    return PostgresBackend(where, settings=settings)


def _recall_at_10(found: list[list[int]], exact: np.ndarray) -> float:
    return float(np.mean([len(set(f) & set(e)) / 10 for f, e in zip(found, exact, strict=True)]))


def run_backend(
    kind: str, where: str, n: int, corpus_data: dict[str, Any], settings: Settings
) -> dict[str, Any]:
    embedder: PrecomputedEmbedder = corpus_data["embedder"]
    texts, vectors = corpus_data["texts"], corpus_data["vectors"]
    qtexts, qvecs = corpus_data["qtexts"], corpus_data["qvecs"]
    backend = _open(kind, where, settings)
    memory = SemanticMemory(backend=backend, embedder=embedder, settings=settings)
    out: dict[str, Any] = {"backend": kind, "n": n}

    started = time.perf_counter()
    ids = memory.remember_batch(texts, chunk_size=1000)
    elapsed = time.perf_counter() - started
    out["remember_seconds"] = elapsed
    out["remember_per_s"] = n / elapsed
    print(f"  {kind}: remember_batch {n:,} in {elapsed:.1f} s ({n / elapsed:,.0f}/s)", flush=True)
    position = {memory_id: i for i, memory_id in enumerate(ids)}

    for q in qtexts:  # warm: query vectors into the RAM cache, index loaded
        memory.recall(q, limit=10, mode="vector")
    clear = memory._results.clear  # every timed recall must search the index
    for mode in ("vector", "hybrid"):
        times = time_each_ms(lambda q, m=mode: memory.recall(q, limit=10, mode=m), qtexts, clear)
        out[f"{mode}_p50_ms"], out[f"{mode}_p99_ms"] = percentiles_ms(times)
    found = []
    for q in qtexts:
        clear()
        found.append([position[h.id] for h in memory.recall(q, limit=10, mode="vector")])
    exact = np.argsort(-(qvecs @ vectors.T), axis=1)[:, :10]
    out["recall_at_10"] = _recall_at_10(found, exact)
    singles = corpus_data["singles"]  # one at a time into the full index (an API server's write)
    times = time_each_ms(lambda text: memory.remember(text), singles)
    out["remember_one_p50_ms"], out["remember_one_p99_ms"] = percentiles_ms(times)

    for namespace, (stexts, svecs, sq_texts, sq_vecs) in corpus_data["small"].items():
        small = SemanticMemory(
            backend=backend,
            embedder=embedder,
            settings=settings.with_overrides(namespace=namespace),
        )
        sids = small.remember_batch(stexts, chunk_size=1000)
        spos = {memory_id: i for i, memory_id in enumerate(sids)}
        for q in sq_texts:
            small.recall(q, limit=10, mode="vector")
        times = time_each_ms(
            lambda q, s=small: s.recall(q, limit=10, mode="vector"), sq_texts, small._results.clear
        )
        sfound = []
        for q in sq_texts:
            small._results.clear()
            sfound.append([spos[h.id] for h in small.recall(q, limit=10, mode="vector")])
        sexact = np.argsort(-(sq_vecs @ svecs.T), axis=1)[:, :10]
        out[f"{namespace}_p50_ms"] = percentiles_ms(times)[0]
        out[f"{namespace}_recall_at_10"] = _recall_at_10(sfound, sexact)
        small.close()
    memory.close()
    backend.close()
    print(
        f"  {kind}: vector p50 {out['vector_p50_ms']:.2f} ms, hybrid p50 "
        f"{out['hybrid_p50_ms']:.2f} ms, recall@10 {out['recall_at_10']:.3f}",
        flush=True,
    )
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=100_000, help="memories (default 100,000)")
    parser.add_argument("--quick", action="store_true", help="10,000 memories")
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--database-url", default=None, help="an empty PostgreSQL database")
    parser.add_argument("--ef-construction", type=int, default=Settings().hnsw_ef_construction)
    parser.add_argument("--out", default=None, help="results folder (default bench/results)")
    args = parser.parse_args(argv)
    n = 10_000 if args.quick else args.n
    settings = Settings(hnsw_ef_construction=args.ef_construction)
    kinds = [k.strip() for k in args.backends.split(",") if k.strip()]

    corpus = Corpus()
    embedder = PrecomputedEmbedder()
    texts, vectors, clusters = corpus.make(n, "memory")
    qtexts, qvecs = corpus.queries(vectors, clusters, QUERIES)
    embedder.add(texts, vectors)
    embedder.add(qtexts, qvecs)
    singles, svectors, _ = corpus.make(50, "single")
    embedder.add(singles, svectors)
    small = {}
    for namespace, size in SMALL_NAMESPACES.items():
        stexts, svecs, sclusters = corpus.make(size, namespace)
        sq_texts, sq_vecs = corpus.queries(svecs, sclusters, 100)
        embedder.add(stexts, svecs)
        embedder.add(sq_texts, sq_vecs)
        small[namespace] = (stexts, svecs, sq_texts, sq_vecs)
    data = {
        "embedder": embedder,
        "texts": texts,
        "vectors": vectors,
        "qtexts": qtexts,
        "qvecs": qvecs,
        "small": small,
        "singles": singles,
    }
    print(f"{n:,} memories of {DIM} dimensions, {QUERIES} queries", flush=True)

    results: list[dict[str, Any]] = []
    for kind in kinds:
        if kind == "sqlite":
            folder = tempfile.mkdtemp(prefix="semmem-bench-sqlite-")
            try:
                results.append(run_backend(kind, folder, n, data, settings))
            finally:
                shutil.rmtree(folder, ignore_errors=True)
        elif kind == "postgres":
            with postgres_url(args.database_url) as url:
                results.append(run_backend(kind, url, n, data, settings))
        else:
            parser.error(f"unknown backend {kind!r}")

    main_table = Table(
        f"Storage backends at {n:,} memories ({DIM} dimensions)",
        [
            "backend",
            "remember_batch (memories/s)",
            "remember one p50 (ms)",
            "vector p50 / p99 (ms)",
            "hybrid p50 / p99 (ms)",
            "vector recall@10",
        ],
    )
    for r in results:
        main_table.add(
            r["backend"],
            fmt(r["remember_per_s"]),
            fmt(r["remember_one_p50_ms"]),
            f"{fmt(r['vector_p50_ms'])} / {fmt(r['vector_p99_ms'])}",
            f"{fmt(r['hybrid_p50_ms'])} / {fmt(r['hybrid_p99_ms'])}",
            f"{r['recall_at_10']:.3f}",
        )
    main_table.notes += [
        "remember_batch: chunks of 1,000, dedupe on, embedding free (precomputed vectors); "
        "SQLite maintains its HNSW index as memories arrive, PostgreSQL loads a batch this "
        "large without the index and builds it once at the end (bulk_load).",
        "remember one: 50 single remember() calls after the load (each updates the HNSW index).",
        "recall: limit 10 through SemanticMemory.recall, query embedding cached, result cache "
        "cleared before each call; hybrid = vector + full text fused (50 candidates each).",
        f"HNSW: M {settings.hnsw_m}, ef_construction {settings.hnsw_ef_construction}, "
        f"ef {settings.hnsw_ef} (PostgreSQL: hnsw.ef_search raised to at least the 50 "
        "candidates recall asks for).",
    ]
    ns_table = Table(
        "Vector recall in smaller namespaces of the same store",
        ["backend", *[f"{ns}: p50 (ms) / recall@10" for ns in SMALL_NAMESPACES]],
    )
    for r in results:
        ns_table.add(
            r["backend"],
            *[
                f"{fmt(r[f'{ns}_p50_ms'])} / {r[f'{ns}_recall_at_10']:.3f}"
                for ns in SMALL_NAMESPACES
            ],
        )
    ns_table.notes += [
        "SQLite keeps one HNSW index per namespace (exact search up to 2,048 memories).",
        "PostgreSQL shares one HNSW index across namespaces: up to 2,048 memories, or when the "
        "namespace is too small a share of the store for ef_search <= 1,000 to find k of its "
        "own, the namespace is scanned exactly.",
    ]
    tables = [main_table, ns_table]
    for t in tables:
        print()
        print(t.markdown())
    out_dir = Path(args.out) if args.out else None
    kwargs: dict[str, Any] = {"out_dir": out_dir} if out_dir else {}
    name = "backends_quick" if args.quick else "backends"
    md, js = write_results(
        name,
        title="Storage backends: SQLite + hnswlib vs PostgreSQL + pgvector",
        intro=[(__doc__ or "").split("\n\n")[1].replace("\n", " ")],
        tables=tables,
        meta=machine(["numpy", "hnswlib", "psycopg", "pgvector", "pgserver"]),
        data={"n": n, "dimensions": DIM, "queries": QUERIES, "results": results},
        **kwargs,
    )
    print(f"wrote {md} and {js}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
