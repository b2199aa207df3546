"""Where a PostgreSQL recall and a bulk ``remember_batch`` spend their time.

Every statement the backend sends is traced (psycopg's ``Cursor.execute`` and
``Cursor.copy`` wrapped for this process only): per recall mode, the number of round
trips and the time of each statement; per load, the time of each kind of statement.
The store is the one ``bench/backends.py`` builds (``N`` real-turn memories in ``big``,
tenants of 1,000 and 5,000), loaded into ``--database-url`` unless it already holds
them (``--reuse``), so that one load serves several profiles.

    python -m bench.pg_profile --database-url URL [--n N] [--reuse] [--queries Q]
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

from bench.backends import SMALL_NAMESPACES, Corpus, PrecomputedEmbedder, _open
from sem_mem import SemanticMemory
from sem_mem.config import Settings


class Tracer:
    """Time and count every statement psycopg sends (keyed by a short form of its SQL)."""

    def __init__(self) -> None:
        self.times: dict[str, list[float]] = defaultdict(list)
        self.plans: list[str] = []
        self.on = False

    @staticmethod
    def key(sql: Any) -> str:
        text = sql if isinstance(sql, str) else str(getattr(sql, "_obj", sql))
        text = re.sub(r"\s+", " ", text).strip()
        text = re.sub(r"'\[[^\]]*\]'", "'[vector]'", text)
        return text[:90]

    @contextmanager
    def installed(self) -> Iterator[None]:
        import psycopg

        tracer = self
        original_execute = psycopg.Cursor.execute
        original_copy = psycopg.Cursor.copy
        original_many = psycopg.Cursor.executemany

        def executemany(cur: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return original_many(cur, query, *args, **kwargs)
            finally:
                if tracer.on:
                    tracer.times[tracer.key(query)].append(time.perf_counter() - start)

        def execute(cur: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
            if not tracer.on:
                return original_execute(cur, query, *args, **kwargs)
            start = time.perf_counter()
            try:
                return original_execute(cur, query, *args, **kwargs)
            finally:
                took = time.perf_counter() - start
                tracer.times[tracer.key(query)].append(took)
                text = query if isinstance(query, str) else ""
                if took > 0.3 and text.startswith("SELECT") and len(tracer.plans) < 5:
                    # how the planner ran it (EXPLAIN without ANALYZE: the plan it chose)
                    with cur.connection.cursor() as ex:
                        original_execute(ex, "EXPLAIN " + text, *args)
                        plan = "\n".join(r[0] for r in ex.fetchall())
                    tracer.plans.append(f"{took * 1000:.0f} ms: {tracer.key(text)}\n{plan}")

        @contextmanager
        def copy(cur: Any, statement: Any, *args: Any, **kwargs: Any) -> Iterator[Any]:
            start = time.perf_counter()
            with original_copy(cur, statement, *args, **kwargs) as c:
                yield c
            if tracer.on:
                tracer.times[tracer.key(statement)].append(time.perf_counter() - start)

        psycopg.Cursor.execute = execute  # type: ignore[method-assign]
        psycopg.Cursor.copy = copy  # type: ignore[method-assign,assignment]
        psycopg.Cursor.executemany = executemany  # type: ignore[method-assign]
        try:
            yield
        finally:
            psycopg.Cursor.execute = original_execute  # type: ignore[method-assign]
            psycopg.Cursor.copy = original_copy  # type: ignore[method-assign]
            psycopg.Cursor.executemany = original_many  # type: ignore[method-assign]

    def report(self, title: str, per: int = 1) -> str:
        lines = [
            f"### {title}",
            "",
            "| statement | calls | total ms | ms per call (mean / median / max) |",
            "|---|---|---|---|",
        ]
        total = 0.0
        for key, ts in sorted(self.times.items(), key=lambda kv: -sum(kv[1])):
            total += sum(ts)
            lines.append(
                f"| `{key}` | {len(ts) / per:g} | {sum(ts) * 1000 / per:.2f} | "
                f"{sum(ts) * 1000 / len(ts):.3f} / {float(np.median(ts)) * 1000:.3f} / "
                f"{max(ts) * 1000:.3f} |"
            )
        for key, ts in self.times.items():  # a statement whose time varies: when
            if len(ts) > 10 and max(ts) > 10 * float(np.median(ts)):
                cut = 5 * float(np.median(ts))
                slow = [f"{i}: {t * 1000:.0f} ms" for i, t in enumerate(ts) if t > cut]
                lines.append(f"| slow calls of `{key[:40]}` | {', '.join(slow[:20])} | | |")
        calls = sum(len(ts) for ts in self.times.values())
        lines.append(f"| **all** | {calls / per:g} | {total * 1000 / per:.2f} | |")
        self.times.clear()
        return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--reuse", action="store_true", help="the store is already loaded")
    parser.add_argument("--queries", type=int, default=100)
    args = parser.parse_args(argv)
    settings = Settings()
    corpus = Corpus()
    embedder = PrecomputedEmbedder()
    texts, vectors = corpus.make(args.n, "big")
    embedder.add(texts, vectors)
    embedder.add(corpus.questions, corpus.question_vectors)
    smalls = {}
    for namespace, size in SMALL_NAMESPACES.items():
        stexts, svecs = corpus.make(size, namespace)
        embedder.add(stexts, svecs)
        smalls[namespace] = stexts
    tracer = Tracer()
    out: list[str] = []
    with tracer.installed():
        backend = _open(args.database_url, settings)
        memories = {
            ns: SemanticMemory(
                backend=backend, embedder=embedder, settings=settings.with_overrides(namespace=ns)
            )
            for ns in ["big", *SMALL_NAMESPACES]
        }
        if not args.reuse:
            tracer.on = True
            started = time.perf_counter()
            memories["big"].remember_batch(texts, chunk_size=1000)
            wall = time.perf_counter() - started
            out.append(tracer.report(f"remember_batch {args.n:,} into big: {wall:.1f} s wall"))
            for ns, stexts in smalls.items():
                started = time.perf_counter()
                memories[ns].remember_batch(stexts, chunk_size=1000)
                wall = time.perf_counter() - started
                out.append(tracer.report(f"remember_batch {len(stexts):,} into {ns}: {wall:.1f} s"))
            tracer.on = False
        questions = corpus.questions[: args.queries]
        for ns, memory in memories.items():
            for mode in ("vector", "lexical", "hybrid"):
                for q in questions:  # warm
                    memory._results.clear()
                    memory.recall(q, limit=10, mode=mode)
                tracer.on = True
                walls = []
                for q in questions:
                    memory._results.clear()
                    started = time.perf_counter()
                    memory.recall(q, limit=10, mode=mode)
                    walls.append((time.perf_counter() - started) * 1000)
                tracer.on = False
                title = (
                    f"{ns} {mode} recall: {float(np.median(walls)):.2f} ms median wall, "
                    f"{float(np.mean(walls)):.2f} mean"
                )
                out.append(tracer.report(title, len(questions)))
        for memory in memories.values():
            memory.close()
        backend.close()
    if tracer.plans:
        out.append("### plans of slow statements\n\n```\n" + "\n\n".join(tracer.plans) + "\n```")
    print("\n\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
