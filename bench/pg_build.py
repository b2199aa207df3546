"""What building a namespace's HNSW index costs on PostgreSQL, per configuration.

Loads the ``big`` namespace of ``bench/backends.py`` (``N`` real-turn memories through
``remember_batch``), then drops its HNSW index and builds it again, once per
configuration: parallel maintenance workers (0, 1, 2), ``CONCURRENTLY`` or not,
``maintenance_work_mem``, ``ef_construction``. Each build's messages from pgvector
(``client_min_messages = debug1``: the parallel workers it used, a graph that no longer
fits in memory) are printed with its time and recall@10 (``hnsw.ef_search`` 200, against
an exact scan). Then the cost of inserting rows into a namespace that already has its
index, against inserting them without one.

    python -m bench.pg_build [--n N] [--database-url URL] [--configs w2-c-512,...]

A configuration is ``w<workers>-<c|p>-<mwm MB>[-ef<ef_construction>]`` (c: CONCURRENTLY,
p: plain ``CREATE INDEX``).
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Sequence
from contextlib import nullcontext
from typing import Any

import numpy as np

from bench.backends import Corpus, PrecomputedEmbedder, _open, postgres_url
from sem_mem import SemanticMemory
from sem_mem.backends.postgres_index import drop_indexes
from sem_mem.backends.postgres_schema import namespace_index_name
from sem_mem.config import Settings

DEFAULT_CONFIGS = "w2-c-512,w0-c-512,w1-c-512,w2-p-512,w2-c-1024,w2-c-512-ef64"


def _one(conn: Any, sql: str) -> Any:
    row = conn.execute(sql).fetchone()
    return row[0] if row else None


def _build(conn: Any, config: str) -> tuple[float, list[str]]:
    parts = config.split("-")
    workers, concurrently, mwm = int(parts[0][1:]), parts[1] == "c", int(parts[2])
    ef = int(parts[3][2:]) if len(parts) > 3 else 100
    name = namespace_index_name("big")
    conn.execute(f"DROP INDEX IF EXISTS {name}")
    messages: list[str] = []
    conn.add_notice_handler(lambda d: messages.append(f"{d.severity}: {d.message_primary}"))
    conn.execute(f"SET max_parallel_maintenance_workers = {workers}")
    conn.execute(f"SET maintenance_work_mem = '{mwm}MB'")
    conn.execute("SET client_min_messages = debug1")
    started = time.perf_counter()
    conn.execute(
        f"CREATE INDEX {'CONCURRENTLY ' if concurrently else ''}{name} ON memories "
        f"USING hnsw (embedding vector_cosine_ops) WITH (m = 16, ef_construction = {ef}) "
        "WHERE namespace = 'big' AND status = 'active'"
    )
    took = time.perf_counter() - started
    conn.execute("RESET client_min_messages")
    conn._notice_handlers.clear()
    return took, [m for m in messages if "parallel" in m or "maintenance_work_mem" in m]


def _recall(conn: Any, ids: list[str], vectors: np.ndarray, queries: np.ndarray) -> float:
    position = {memory_id: i for i, memory_id in enumerate(ids)}
    exact = np.argsort(-(queries @ vectors.T), axis=1)[:, :10]
    conn.execute("SET hnsw.ef_search = 200")
    hits = 0
    for q, truth in zip(queries, exact, strict=True):
        rows = conn.execute(
            "SELECT id FROM memories WHERE namespace = 'big' AND status = 'active' "
            "ORDER BY embedding <=> %s LIMIT 10",
            (q,),
        ).fetchall()
        hits += len({position[r[0]] for r in rows} & set(truth.tolist()))
    return hits / (10 * len(queries))


def _insert_cost(url: str, corpus: Corpus, settings: Settings, rows: int) -> dict[str, float]:
    """Seconds to add ``rows`` memories to a namespace with and without its HNSW index."""
    out: dict[str, float] = {}
    for indexed in (True, False):
        namespace = f"grow-{'idx' if indexed else 'noidx'}"
        embedder = PrecomputedEmbedder()
        texts, vectors = corpus.make(20_000 + rows, namespace)
        embedder.add(texts, vectors)
        backend = _open(url, settings)
        memory = SemanticMemory(
            backend=backend,
            embedder=embedder,
            settings=settings.with_overrides(namespace=namespace),
        )
        memory.remember_batch(texts[:20_000], chunk_size=1000)
        if not indexed:
            with backend._conn() as conn:  # type: ignore[attr-defined]
                drop_indexes(conn, namespace)
        # below bulk_load_min per call: with the index, rows go into the graph one by one;
        # without it (inside bulk_load, which builds it only when the block ends) they do not
        with backend.bulk_load() if not indexed else nullcontext():
            started = time.perf_counter()
            for start in range(20_000, 20_000 + rows, 1000):
                memory.remember_batch(texts[start : start + 1000], chunk_size=1000)
            out[namespace] = time.perf_counter() - started
        backend.close()
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--database-url")
    parser.add_argument("--configs", default=DEFAULT_CONFIGS)
    parser.add_argument("--insert-rows", type=int, default=5000)
    args = parser.parse_args(argv)
    import psycopg
    from pgvector.psycopg import register_vector

    corpus = Corpus()
    settings = Settings()
    with postgres_url(args.database_url) as url:
        embedder = PrecomputedEmbedder()
        texts, vectors = corpus.make(args.n, "big")
        embedder.add(texts, vectors)
        backend = _open(url, settings)
        memory = SemanticMemory(
            backend=backend, embedder=embedder, settings=settings.with_overrides(namespace="big")
        )
        print(f"load average {os.getloadavg()}", flush=True)
        started = time.perf_counter()
        ids = memory.remember_batch(texts, chunk_size=1000)
        print(f"remember_batch {args.n:,}: {time.perf_counter() - started:.1f} s", flush=True)
        backend.close()
        with psycopg.connect(url, autocommit=True) as conn:
            register_vector(conn)
            for name in (
                "max_worker_processes",
                "max_parallel_workers",
                "max_parallel_maintenance_workers",
                "maintenance_work_mem",
                "shared_buffers",
                "dynamic_shared_memory_type",
                "min_parallel_table_scan_size",
            ):
                print(f"  {name} = {_one(conn, f'SHOW {name}')}")
            size = _one(conn, "SELECT pg_size_pretty(pg_table_size('memories'))")
            print(f"  memories table size {size}", flush=True)
            print("| build | seconds | recall@10 | load avg | pgvector says |")
            print("|---|---|---|---|---|")
            for config in args.configs.split(","):
                load = os.getloadavg()[0]
                took, messages = _build(conn, config)
                recall = _recall(conn, ids, vectors, corpus.question_vectors)
                said = "; ".join(messages)
                print(f"| {config} | {took:.1f} | {recall:.3f} | {load:.1f} | {said} |", flush=True)
        if args.insert_rows:
            for namespace, seconds in _insert_cost(url, corpus, settings, args.insert_rows).items():
                print(f"add {args.insert_rows:,} to {namespace} (20,000 held): {seconds:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
