"""Full-text search on a big store whose memories share common words.

FTS5 scores every row that matches any query word before it sorts, so a query word
found in most memories used to make hybrid recall cost ~1 ms per 800 memories. The
SQLite backend now leaves such words out of the MATCH (see
``SQLiteBackend._selective_words``). This bench builds one store of N memories (12
words drawn from a 56-word clinical vocabulary, so each word is in ~20% of them, plus
one rare token per memory), then times ``recall`` for queries of 4 common words and one
rare token, with the pruning off (the old behaviour) and on, interleaved in one process,
and counts how often the memory holding the rare token is in the top 10.

    python -m bench.fulltext [--n 100000] [--queries 200]

Results go to ``bench/results/fulltext.{md,json}``.
"""

from __future__ import annotations

import argparse
import random
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bench._common import Table, fmt, machine, percentiles_ms, ratio, write_results
from bench.server_load import WORDS
from sem_mem import SemanticMemory
from sem_mem.backends import sqlite as sqlite_backend
from sem_mem.embedders.base import Embedder

DIM = 384


class RandomVectors(Embedder):
    """A fixed random unit vector per text: embedding costs nothing, search still works."""

    model_id = "bench:random-384"
    dimensions = DIM
    batch_size = 100_000

    def embed_batch(self, texts: Sequence[str]) -> np.ndarray:
        out = np.empty((len(texts), DIM), dtype=np.float32)
        for i, text in enumerate(texts):
            out[i] = np.random.default_rng(abs(hash(text)) % 2**32).standard_normal(DIM)
        return out


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args(argv)

    rng = random.Random(3)
    texts = [" ".join(rng.choice(WORDS) for _ in range(12)) + f" m{i}" for i in range(args.n)]
    queries = [
        (" ".join(rng.choice(WORDS) for _ in range(4)) + f" m{k}", f" m{k}")
        for k in (rng.randrange(args.n) for _ in range(args.queries))
    ]
    work = Path(tempfile.mkdtemp(prefix="fulltext-"))
    figures: dict[str, Any] = {"n": args.n, "queries": args.queries, "runs": {}}
    try:
        memory = SemanticMemory(str(work / "store"), embedder=RandomVectors())
        start = time.perf_counter()
        for s in range(0, len(texts), 10_000):
            memory.remember_batch(texts[s : s + 10_000], dedupe=False)
        figures["build_s"] = time.perf_counter() - start
        for query, _ in queries:  # embed every query once, untimed
            memory.recall(query, 10, mode="vector")
        settings = {"pruning off (before)": 10**12, "pruning on": sqlite_backend.FTS_COMMON_MIN}
        try:
            for mode in ("hybrid", "lexical"):
                for name, cap in settings.items():
                    sqlite_backend.FTS_COMMON_MIN = cap
                    times, found = [], 0
                    for query, tag in queries:
                        memory._results.clear()  # benchmark only: search every time
                        started = time.perf_counter()
                        results = memory.recall(query, 10, mode=mode)
                        times.append((time.perf_counter() - started) * 1000)
                        found += any(r.text.endswith(tag) for r in results)
                    p50, p99 = percentiles_ms(times)
                    figures["runs"][f"{mode} / {name}"] = {
                        "p50_ms": p50,
                        "p99_ms": p99,
                        "found": found,
                    }
        finally:
            sqlite_backend.FTS_COMMON_MIN = settings["pruning on"]
        memory.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)

    table = Table(
        f"recall on {args.n:,} memories that share common words (ms, single query, k=10)",
        ["mode", "common words", "p50", "p99", "rare-word memory in top 10", "p50 vs before"],
    )
    for mode in ("hybrid", "lexical"):
        before = figures["runs"][f"{mode} / pruning off (before)"]["p50_ms"]
        for name in ("pruning off (before)", "pruning on"):
            run = figures["runs"][f"{mode} / {name}"]
            table.add(
                mode,
                name,
                fmt(run["p50_ms"], 2),
                fmt(run["p99_ms"], 2),
                f"{run['found']}/{args.queries}",
                ratio(run["p50_ms"], before),
            )
    table.notes = [
        f"Each memory: 12 words from a {len(WORDS)}-word vocabulary (each word in ~20% of "
        "memories) and one rare token; each query: 4 such words and one memory's rare token. "
        f"Query vectors are cached; the store took {figures['build_s']:.0f} s to build.",
        "Pruning on: a word in more than max(5,000, 1% of the store) memories is left out "
        "of the FTS5 query unless every word is that common.",
    ]
    print(table.markdown())
    md, _ = write_results(
        "fulltext",
        title="Full-text search with common words",
        intro=["Produced by `python -m bench.fulltext`."],
        tables=[table],
        meta=machine(("numpy",)),
        data=figures,
    )
    print(f"wrote {md}")


if __name__ == "__main__":
    main()
