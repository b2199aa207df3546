"""What does appending turns to a thread cost, before and after the fix that places them
inside the write transaction?

``remember_conversation`` of turns without positions used to read the thread's end in a
statement of its own and write the turns later; now the backend reads the end inside the
transaction that inserts them (two processes appending at once no longer collide). This
times one call of ``--turns`` turns appended to one thread, on SQLite and PostgreSQL,
for this tree and for ``--before`` (a checkout of the old code), and, as a reference
within each tree, the same turns saved at explicit positions (no end to read).

Every tree runs in its own process (two versions of ``sem_mem`` cannot share one); the
trees take turns, ``--rounds`` times, each round ``--calls`` calls per mode with the
modes interleaved; the table gives medians over all calls and the ratio to the old code.

    python -m bench.thread_append --before /tmp/sem-mem-main [--rounds 5] [--calls 200]

(run from the repository root with the dev extras: it imports the tests' embedder and
starts PostgreSQL with pgserver as the tests do).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from bench._common import Table, fmt, machine, ratio, write_results  # noqa: E402

# One round in one tree: ``calls`` appends and ``calls`` saves at explicit positions,
# alternating, each call timed; prints {"append": [ms...], "explicit": [ms...]}.
WORKER = r"""
import json, sys, time
from embedders import HashingEmbedder
from sem_mem import SemanticMemory

target, calls, turns, tag = json.loads(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
times = {"append": [], "explicit": []}
with SemanticMemory(embedder=HashingEmbedder(), namespace=tag, auto_memory=False, **target) as m:
    for n in range(calls):
        batch = [{"speaker": "A", "text": f"turn {tag} {n} {i} words"} for i in range(turns)]
        start = time.perf_counter()
        m.remember_conversation(batch, thread_id="appended", dedupe=False)
        times["append"].append((time.perf_counter() - start) * 1000)
        placed = [{**t, "position": n * turns + i} for i, t in enumerate(batch)]
        start = time.perf_counter()
        m.remember_conversation(placed, thread_id="placed", dedupe=False)
        times["explicit"].append((time.perf_counter() - start) * 1000)
print(json.dumps(times))
"""


def run_round(tree: Path, target: dict[str, str], calls: int, turns: int, tag: str) -> Any:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(tree), str(tree / "tests")])
    out = subprocess.run(
        [sys.executable, "-c", WORKER, json.dumps(target), str(calls), str(turns), tag],
        capture_output=True,
        text=True,
        env=env,
        check=True,
        cwd=tree,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", type=Path, required=True, help="a checkout of the old code")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--turns", type=int, default=2)
    args = parser.parse_args()

    from pg_server import cluster_or_skip

    trees = {"before": args.before.resolve(), "after": ROOT}
    cluster = cluster_or_skip()
    times: dict[str, dict[str, dict[str, list[float]]]] = {}
    with tempfile.TemporaryDirectory() as folder:
        targets: dict[str, dict[str, str]] = {}
        names = []
        for label in trees:
            name, url = cluster.create()
            names.append(name)
            targets[f"postgres {label}"] = {"database_url": url, "storage_dir": folder}
            targets[f"sqlite {label}"] = {"storage_dir": str(Path(folder) / label)}
        try:
            for r in range(args.rounds):
                for backend in ("sqlite", "postgres"):
                    for label, tree in trees.items():
                        key = f"{backend} {label}"
                        got = run_round(tree, targets[key], args.calls, args.turns, f"r{r}")
                        for mode, ms in got.items():
                            times.setdefault(key, {}).setdefault(mode, []).extend(ms)
        finally:
            for name in names:
                cluster.drop(name)

    table = Table(
        f"One remember_conversation call of {args.turns} turns (median ms over "
        f"{args.rounds} x {args.calls} calls)",
        ["backend", "mode", "before", "after", "after / before"],
        notes=[
            "append: turns without positions, one thread that grows (before: its end read "
            "in a statement of its own; after: inside the write transaction)",
            "explicit: the same turns at explicit positions (no end read), for reference",
            "hashing embedder (tests/embedders.py): the write path, not the embedder, is timed",
        ],
    )
    medians: dict[str, dict[str, float]] = {}
    for backend in ("sqlite", "postgres"):
        for mode in ("append", "explicit"):
            before = statistics.median(times[f"{backend} before"][mode])
            after = statistics.median(times[f"{backend} after"][mode])
            medians[f"{backend} {mode}"] = {"before": before, "after": after}
            table.add(backend, mode, fmt(before), fmt(after), ratio(after, before))
    print(table.markdown())
    write_results(
        "thread_append",
        title="Appending turns to a thread: before and after placing them in the transaction",
        intro=[__doc__.split("\n\n")[1].replace("\n", " ")],
        tables=[table],
        meta=machine(["psycopg", "numpy"]),
        data={"medians": medians, "args": {k: str(v) for k, v in vars(args).items()}},
    )


if __name__ == "__main__":
    main()
