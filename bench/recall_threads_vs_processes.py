"""Is recall bound by the GIL? Throughput of 1 thread, 2 threads of one process, and 2
processes on the same store, run one after the other, repeated.

If 2 threads do no better than 1 while 2 processes do, the recall path is bound by
Python bytecode (one interpreter lock per process), not by a lock of ours or the cores.

    python bench/recall_threads_vs_processes.py                    # this tree
    python bench/recall_threads_vs_processes.py --tree /tmp/before # another tree
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import random
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
_VOCABULARY = (
    "patient blood pressure heart rate kidney liver insulin dose allergy penicillin fever "
    "cough asthma inhaler diabetes lactate sepsis culture antibiotic fluid bolus potassium"
)
WORDS = _VOCABULARY.split()


def open_memory(tree: str, storage: str) -> Any:
    sys.path[:0] = [tree]
    from sem_mem import SemanticMemory
    from sem_mem.config import resolve_settings

    settings = resolve_settings(
        env={}, dotenv_path=None, secrets_path=None, storage_dir=storage, embedder="local"
    )
    return SemanticMemory(settings=settings)


def recalls(memory: Any, seed: int, n: int) -> None:
    rng = random.Random(seed)
    for i in range(n):
        memory.recall(" ".join(rng.choice(WORDS) for _ in range(5)) + f" {seed}-{i}", 5)


def child(tree: str, storage: str, seed: int, n: int, ready: Any, start: Any) -> None:
    memory = open_memory(tree, storage)
    memory.recall("warm up")
    ready.put(True)
    start.wait()
    recalls(memory, seed, n)
    memory.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tree", default=str(ROOT))
    parser.add_argument("--memories", type=int, default=2000)
    parser.add_argument("--recalls", type=int, default=400, help="per thread or process")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    context = mp.get_context("spawn")
    with tempfile.TemporaryDirectory() as storage:
        memory = open_memory(args.tree, storage)
        rng = random.Random(1)
        memory.remember_batch(
            [
                f"note {i}: " + " ".join(rng.choice(WORDS) for _ in range(12))
                for i in range(args.memories)
            ]
        )
        memory.recall("warm up")
        memory.flush()
        n = args.recalls
        rows: list[tuple[float, float, float]] = []
        print("| repeat | 1 thread (/s) | 2 threads | 2 processes | load avg |")
        print("|---:|---:|---:|---:|---:|")
        for repeat in range(args.repeats):
            started = time.perf_counter()
            recalls(memory, 100 + repeat, n)
            one = n / (time.perf_counter() - started)

            threads = [
                threading.Thread(target=recalls, args=(memory, 200 + 10 * repeat + k, n))
                for k in range(2)
            ]
            started = time.perf_counter()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            two_threads = 2 * n / (time.perf_counter() - started)

            ready, start = context.Queue(), context.Event()
            procs = [
                context.Process(
                    target=child,
                    args=(args.tree, storage, 300 + 10 * repeat + k, n, ready, start),
                )
                for k in range(2)
            ]
            for p in procs:
                p.start()
            for _ in procs:
                ready.get(timeout=300)  # both opened the store and warmed up
            started = time.perf_counter()
            start.set()
            for p in procs:
                p.join()
            two_processes = 2 * n / (time.perf_counter() - started)
            rows.append((one, two_threads, two_processes))
            print(
                f"| {repeat + 1} | {one:.0f} | {two_threads:.0f} ({two_threads / one:.2f}x) | "
                f"{two_processes:.0f} ({two_processes / one:.2f}x) | {os.getloadavg()[0]:.2f} |",
                flush=True,
            )
        memory.close()
    ratios_t = statistics.median(t / o for o, t, _ in rows)
    ratios_p = statistics.median(p / o for o, _, p in rows)
    print(f"\nmedian ratio to 1 thread: 2 threads {ratios_t:.2f}x, 2 processes {ratios_p:.2f}x")


if __name__ == "__main__":
    main()
