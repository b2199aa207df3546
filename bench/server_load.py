"""Load test of the HTTP server's ``POST /recall`` on loopback.

Starts the real server (uvicorn, in a child process, on a socket this script binds on
127.0.0.1), loads N memories through ``/remember/batch``, then sends ``/recall`` requests
from 1, 8 and 32 concurrent clients (httpx, asyncio) and prints a Markdown table of
throughput and p50/p99 latency. Every query is different, so each request embeds its
query and searches the index (no result-cache hits).

    python bench/server_load.py                       # local MiniLM embedder if installed
    python bench/server_load.py --embedder hashing    # tiny test embedder: server overhead only

Results go to ``bench/results/server_load.md`` and ``.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"

_VOCABULARY = (
    "patient blood pressure heart rate kidney liver insulin dose allergy penicillin fever "
    "cough asthma inhaler diabetes lactate sepsis culture antibiotic fluid bolus potassium "
    "sodium anemia iron ferritin stroke aspirin statin clinic ward nurse shift night morning "
    "pharmacy radiology scan contrast creatinine dialysis oxygen saturation pain opioid "
    "nausea vomiting surgery wound dressing infection vaccine booster pregnancy ultrasound"
)
WORDS = _VOCABULARY.split()


def default_embedder() -> str:
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    try:
        import sem_mem.embedders.local  # noqa: F401
    except Exception:
        return "hashing"
    return "local"


def serve_child(fd: int, storage: str, embedder_name: str) -> None:
    """Child process: build the app and serve on the inherited socket."""
    import uvicorn

    sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
    from sem_mem.config import resolve_settings
    from sem_mem.server import ServerConfig, create_app

    embedder = None
    if embedder_name == "hashing":
        from embedders import HashingEmbedder

        embedder = HashingEmbedder(384)
    settings = resolve_settings(
        env={}, dotenv_path=None, secrets_path=None, storage_dir=storage, embedder="local"
    )
    app = create_app(settings, embedder=embedder, config=ServerConfig())
    # Not uvicorn.run(fd=...): uvicorn wraps an fd as an AF_UNIX socket, so asyncio never
    # sets TCP_NODELAY on the connections and every response waits out the client's
    # delayed ACK (~40 ms per request). socket(fileno=) detects the real family.
    sock = socket.socket(fileno=fd)
    config = uvicorn.Config(app, log_level="warning", access_log=False)
    uvicorn.Server(config).run(sockets=[sock])


def sentence(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


async def load(client: httpx.AsyncClient, count: int, rng: random.Random) -> None:
    for start in range(0, count, 500):
        texts = [f"note {i}: {sentence(rng, 12)}" for i in range(start, min(count, start + 500))]
        response = await client.post("/remember/batch", json={"texts": texts}, timeout=600)
        response.raise_for_status()


async def hammer(url: str, concurrency: int, requests: int, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    queries = [f"{sentence(rng, 5)} {seed}-{i}" for i in range(requests)]
    latencies: list[float] = []
    errors = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as client:
        await client.post("/recall", json={"query": "warm up"})
        position = 0

        async def worker() -> None:
            nonlocal position, errors
            while position < len(queries):
                query = queries[position]
                position += 1
                started = time.perf_counter()
                response = await client.post("/recall", json={"query": query, "limit": 5})
                latencies.append(time.perf_counter() - started)
                errors += response.status_code != 200

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "concurrency": concurrency,
        "requests": len(latencies),
        "errors": errors,
        "seconds": round(elapsed, 3),
        "throughput_rps": round(len(latencies) / elapsed, 1),
        "p50_ms": round(statistics.median(latencies) * 1000, 2),
        "p99_ms": round(latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))] * 1000, 2),
    }


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| concurrency | requests | throughput (req/s) | p50 (ms) | p99 (ms) | errors |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['concurrency']} | {r['requests']} | {r['throughput_rps']} | "
            f"{r['p50_ms']} | {r['p99_ms']} | {r['errors']} |"
        )
    return "\n".join(lines)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(256)
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    with tempfile.TemporaryDirectory() as storage:
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "tests")]))
        child = subprocess.Popen(
            [sys.executable, __file__, "--serve-fd", str(sock.fileno()), "--storage", storage,
             "--embedder", args.embedder],
            pass_fds=(sock.fileno(),),
            env=env,
        )  # fmt: skip
        try:
            async with httpx.AsyncClient(base_url=url, timeout=600) as client:
                # the socket already listens: this waits in the backlog until uvicorn accepts
                (await client.get("/health")).raise_for_status()
                started = time.perf_counter()
                await load(client, args.memories, random.Random(1))
                load_seconds = time.perf_counter() - started
            rows = [await hammer(url, c, args.requests, seed=c) for c in args.concurrency]
        finally:
            child.terminate()
            child.wait(30)
            sock.close()
    return {
        "embedder": args.embedder,
        "memories": args.memories,
        "load_seconds": round(load_seconds, 2),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
        "rows": rows,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--embedder", choices=["local", "hashing"], default=default_embedder())
    parser.add_argument("--memories", type=int, default=2000)
    parser.add_argument("--requests", type=int, default=400, help="per concurrency level")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--serve-fd", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--storage", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_fd is not None:
        serve_child(args.serve_fd, args.storage, args.embedder)
        return
    result = asyncio.run(run(args))
    heading = (
        f"`POST /recall` on loopback: {result['memories']} memories, {args.embedder} embedder, "
        f"{result['cpus']} CPUs, Python {result['python']}, one uvicorn worker; "
        f"client and server on the same machine; every query distinct."
    )
    markdown = f"# Server load\n\n{heading}\n\n{table(result['rows'])}\n"
    print(markdown)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "server_load.md").write_text(markdown)
    (RESULTS / "server_load.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
