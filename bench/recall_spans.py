"""Where a recall spends its time, alone and with N threads recalling at once (in process).

Opens a store of N memories with the local embedder, then runs distinct recalls from 1,
8 and 32 threads and prints, per thread count: recalls/s, p50 latency, CPU per recall
(process time / recalls) and the time spent per recall in each backend call, in the
query embedding, and waiting to enter a backend read (``_read``: the store lock). Spans
are measured by wrapping the methods of the open objects, so they include waiting for
the GIL and for locks inside them.

    python bench/recall_spans.py                      # this tree
    python bench/recall_spans.py --tree /tmp/before   # another source tree
"""

from __future__ import annotations

import argparse
import collections
import functools
import random
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
_VOCABULARY = (
    "patient blood pressure heart rate kidney liver insulin dose allergy penicillin fever "
    "cough asthma inhaler diabetes lactate sepsis culture antibiotic fluid bolus potassium "
    "sodium anemia iron ferritin stroke aspirin statin clinic ward nurse shift night morning"
)
WORDS = _VOCABULARY.split()
BACKEND_CALLS = (
    "refresh",
    "vector_search",
    "lexical_search",
    "thread_places",
    "get_many",
    "cached_embeddings",
)


class Spans:
    def __init__(self) -> None:
        self.times: dict[str, list[float]] = collections.defaultdict(list)
        self._guard = threading.Lock()

    def add(self, name: str, seconds: float) -> None:
        with self._guard:
            self.times[name].append(seconds)

    def wrap(self, obj: Any, method: str, name: str) -> None:
        original: Callable[..., Any] = getattr(obj, method)

        @functools.wraps(original)
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.add(name, time.perf_counter() - started)

        setattr(obj, method, timed)

    def wrap_read(self, backend: Any) -> None:
        original = backend._read

        @contextmanager
        def timed() -> Iterator[Any]:
            started = time.perf_counter()
            with original() as conn:
                self.add("wait to enter a read (store lock)", time.perf_counter() - started)
                yield conn

        backend._read = timed


def run(memory: Any, spans: Spans, threads: int, count: int, rng: random.Random) -> None:
    queries = [
        " ".join(rng.choice(WORDS) for _ in range(5)) + f" {threads}-{i}" for i in range(count)
    ]
    spans.times.clear()
    latencies: list[float] = []
    pending = iter(queries)
    guard = threading.Lock()

    def worker() -> None:
        while True:
            with guard:
                query = next(pending, None)
            if query is None:
                return
            started = time.perf_counter()
            memory.recall(query, 5)
            latencies.append(time.perf_counter() - started)

    workers = [threading.Thread(target=worker) for _ in range(threads)]
    wall, cpu = time.perf_counter(), time.process_time()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(
        f"\n{threads} threads: {count / wall:.0f} recalls/s, p50 "
        f"{statistics.median(latencies) * 1000:.2f} ms, CPU {cpu / count * 1000:.2f} ms/recall"
    )
    print("| span | calls/recall | median (ms) | total per recall (ms) |\n|---|---:|---:|---:|")
    for name, values in sorted(spans.times.items()):
        print(
            f"| {name} | {len(values) / count:.2f} | {statistics.median(values) * 1000:.2f} | "
            f"{sum(values) / count * 1000:.2f} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tree", default=str(ROOT), help="source tree whose sem_mem to use")
    parser.add_argument("--memories", type=int, default=2000)
    parser.add_argument("--recalls", type=int, default=400)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 8, 32])
    args = parser.parse_args()
    sys.path[:0] = [args.tree]
    from sem_mem import SemanticMemory
    from sem_mem.config import resolve_settings

    rng = random.Random(1)
    with tempfile.TemporaryDirectory() as storage:
        settings = resolve_settings(
            env={}, dotenv_path=None, secrets_path=None, storage_dir=storage, embedder="local"
        )
        memory = SemanticMemory(settings=settings)
        texts = [
            f"note {i}: " + " ".join(rng.choice(WORDS) for _ in range(12))
            for i in range(args.memories)
        ]
        memory.remember_batch(texts)
        spans = Spans()
        for name in BACKEND_CALLS:
            spans.wrap(memory.backend, name, f"backend.{name}")
        spans.wrap(memory.embedder, "encode", "embedder.encode (one ONNX call)")
        if hasattr(memory.embedder, "embed_query"):  # batched query embedding, with its wait
            spans.wrap(memory.embedder, "embed_query", "embedder.embed_query (incl. waiting)")
        spans.wrap_read(memory.backend)
        memory.recall("warm up")
        print(f"tree {args.tree}; {args.memories} memories; {memory.embedder.model_id}")
        for threads in args.threads:
            run(memory, spans, threads, args.recalls, rng)
        memory.close()


if __name__ == "__main__":
    main()
