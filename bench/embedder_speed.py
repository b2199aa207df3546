"""How fast is the default local embedder (all-MiniLM-L6-v2 through onnxruntime)?

Prints a table: graph build time (fresh cache), session load time (cached graph),
throughput at batch 64 over ~2,000 varied sentences, single-query latency p50/p99, and
peak RSS while building and while serving. Throughput depends mostly on text length
(the cost is ~21 MFLOP per token for MiniLM-L6), so the mean token count is printed too.

Texts are LoCoMo conversation turns ("Speaker: text") and questions when the evaluation
data is present (``--locomo``), else generated sentences of 3-60 words.

    python -m bench.embedder_speed [--texts 2000] [--queries 300] [--threads N]

(run from the repository root, or with the package installed).
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

from sem_mem.embedders import local
from sem_mem.embedders.local import LocalEmbedder

DEFAULT_LOCOMO = Path(__file__).resolve().parents[2] / "shared/data/locomo/locomo_dev5.json"
_WORDS = [
    *("the", "a", "patient", "doctor", "allergic", "to", "penicillin", "Sam", "lives", "in"),
    *("Boston", "works", "as", "nurse", "hospital", "weekend", "studying", "law", "remember"),
    *("meeting", "Tuesday", "project", "deadline", "prefers", "tea", "over", "coffee"),
    *("daughter", "school", "trip", "Paris", "budget", "review", "quarterly", "numbers"),
]


def peak_rss_mb() -> float:
    """Peak resident set size of this process (Linux reports kilobytes)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def load_texts(locomo: Path, n_texts: int, n_queries: int) -> tuple[list[str], list[str], str]:
    """Corpus texts and single queries: LoCoMo if available, else generated sentences."""
    if locomo.is_file():
        turns, questions = [], []
        for sample in json.loads(locomo.read_text()):
            for key, session in sample["conversation"].items():
                if key.startswith("session_") and isinstance(session, list):
                    turns += [f"{t['speaker']}: {t['text']}" for t in session]
            questions += [qa["question"] for qa in sample["qa"]]
        return turns[:n_texts], questions[:n_queries], f"LoCoMo turns ({locomo.name})"
    rng = random.Random(0)

    def sentence(lo: int, hi: int) -> str:
        return " ".join(rng.choices(_WORDS, k=rng.randint(lo, hi))).capitalize() + "."

    texts = [sentence(3, 60) for _ in range(n_texts)]
    return texts, [sentence(4, 14) for _ in range(n_queries)], "generated sentences"


def build_in_child(cache_dir: str, threads: int | None) -> dict[str, float]:
    """Build the graph in a fresh process so its memory peak does not colour the rest."""
    code = (
        "import json, resource, sys, time\n"
        "from sem_mem.embedders.local import LocalEmbedder\n"
        "t = time.perf_counter()\n"
        f"e = LocalEmbedder(cache_dir=sys.argv[1], threads={threads!r})\n"
        "e.load()\n"
        "assert e.graph_built\n"
        "rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024\n"
        "print(json.dumps({'seconds': time.perf_counter() - t, 'rss': rss}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, cache_dir],
        check=True,
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    return json.loads(out.stdout)


def throughput(embedder: LocalEmbedder, texts: list[str]) -> float:
    embedder.encode(texts[:64])  # warm-up
    start = time.perf_counter()
    embedder.encode(texts)
    return len(texts) / (time.perf_counter() - start)


def latencies_ms(embedder: LocalEmbedder, queries: list[str]) -> tuple[float, float]:
    for q in queries[:10]:
        embedder.embed(q)
    times = []
    for q in queries:
        start = time.perf_counter()
        embedder.embed(q)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times), float(np.percentile(times, 99))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=2000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--locomo", type=Path, default=DEFAULT_LOCOMO)
    args = parser.parse_args()

    texts, queries, source = load_texts(args.locomo, args.texts, args.queries)
    with tempfile.TemporaryDirectory() as cache_dir:
        build = build_in_child(cache_dir, args.threads)
        start = time.perf_counter()
        embedder = LocalEmbedder(cache_dir=cache_dir, threads=args.threads)
        embedder.load()
        load_s = time.perf_counter() - start
        rate = throughput(embedder, texts)
        p50, p99 = latencies_ms(embedder, queries)
        short_rate = throughput(embedder, (queries * 8)[: len(texts)])
        # For comparison: one run per 64 texts, padded to the batch's longest text.
        local._RUN_ROWS = 64  # deliberate, benchmark only
        naive = throughput(embedder, texts)
        local._RUN_ROWS = 16

    tokenizer = Tokenizer.from_file(str(embedder.model_dir / "tokenizer.json"))
    tokenizer.no_padding()
    tokenizer.enable_truncation(embedder.max_length)
    mean_tokens = statistics.mean(len(e.ids) for e in tokenizer.encode_batch(texts))
    query_tokens = statistics.mean(len(e.ids) for e in tokenizer.encode_batch(queries))
    rows = [
        ("model", embedder.model_id),
        ("texts", f"{len(texts)} {source}, {len(queries)} single queries"),
        ("mean tokens per text", f"{mean_tokens:.1f}"),
        ("onnxruntime threads", str(embedder.threads)),
        ("graph build (fresh cache, incl. session)", f"{build['seconds']:.2f} s"),
        ("session load (cached graph)", f"{load_s:.2f} s"),
        ("throughput, batch 64 (length-sorted groups of 16)", f"{rate:.0f} sentences/s"),
        ("throughput, batch 64 (one padded run)", f"{naive:.0f} sentences/s"),
        (f"throughput, batch 64, short texts ({query_tokens:.1f} tokens)", f"{short_rate:.0f}/s"),
        ("single query p50", f"{p50:.2f} ms"),
        ("single query p99", f"{p99:.2f} ms"),
        ("peak RSS, building the graph", f"{build['rss']:.0f} MB"),
        ("peak RSS, serving from the cache", f"{peak_rss_mb():.0f} MB"),
    ]
    width = max(len(k) for k, _ in rows)
    print(f"| {'measure':<{width}} | value |")
    print(f"|{'-' * (width + 2)}|-------|")
    for key, value in rows:
        print(f"| {key:<{width}} | {value} |")


if __name__ == "__main__":
    main()
