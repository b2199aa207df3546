"""Load test of the HTTP server's ``POST /recall`` on loopback, on both storage backends.

Starts the real server (uvicorn with sem-mem's options, in a child process, on a socket
this script binds on 127.0.0.1), loads N memories through ``/remember/batch``, then
sends ``/recall`` requests from 1, 8 and 32 concurrent clients (keep-alive connections
on asyncio streams, in this process) and records throughput, p50/p99 latency and the
CPU time the server, the client and PostgreSQL spent per request. Every query is
different, so each request embeds its query and searches the index (no cache hits).

Runs are interleaved (repeat 1 of every configuration, then repeat 2, ...); the tables
give medians over the repeats with the load average after each run, and the target
ratios of each run (its 1, 8 and 32 clients ran seconds apart), then their median.
``--baseline PATH`` compares against another source tree (e.g. ``git archive`` of an
older commit): its server runs that tree's ``sem_mem``, with the same client.
``--workers 1 2`` also runs the server as 2 uvicorn worker processes.

    python bench/server_load.py                              # both backends, 3 repeats
    python bench/server_load.py --backend sqlite --repeats 1
    python bench/server_load.py --baseline /tmp/before --baseline-label "main b947de2"
    python bench/server_load.py --embedder hashing           # tiny embedder: server overhead
    python bench/server_load.py --profile-server srv.prof    # cProfile the event loop

PostgreSQL comes from ``pgserver`` (bundled PostgreSQL + pgvector), one database per run.
Results go to ``bench/results/server_load.md`` and ``.json`` (``--output`` another stem).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
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
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def default_embedder() -> str:
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    try:
        import sem_mem.embedders.local  # noqa: F401
    except Exception:
        return "hashing"
    return "local"


def serve_child(
    fd: int,
    tree: str,
    storage: str,
    database_url: str,
    embedder_name: str,
    profile: str,
    workers: int,
) -> None:
    """Child process: build the app of ``tree``'s sem_mem and serve on the inherited socket."""
    sys.path[:0] = [tree, os.path.join(tree, "tests")]
    import uvicorn

    if workers > 1:  # uvicorn's supervisor; each worker builds the app from the environment
        from uvicorn.supervisors import Multiprocess

        os.environ.update(MEMORY_STORAGE_DIR=storage, SEMMEM_EMBEDDER="local")
        if database_url:
            os.environ["SEMMEM_DATABASE_URL"] = database_url
        # as `uvicorn sem_mem.server:app --workers N --http <sem-mem's protocol>` would
        from sem_mem.server import ServerConfig
        from sem_mem.server.protocol import uvicorn_options

        options = uvicorn_options(ServerConfig())
        options["http"] = "sem_mem.server.protocol:HeaderTimeoutProtocol"  # (picklable)
        config = uvicorn.Config(
            "sem_mem.server:app", log_level="warning", access_log=False, workers=workers, **options
        )
        Multiprocess(config, sockets=[socket.socket(fileno=fd)]).run()
        return

    from sem_mem.config import resolve_settings
    from sem_mem.server import ServerConfig, create_app

    embedder = None
    if embedder_name == "hashing":
        from embedders import HashingEmbedder

        embedder = HashingEmbedder(384)
    settings = resolve_settings(
        env={},
        dotenv_path=None,
        secrets_path=None,
        storage_dir=storage,
        embedder="local",
        database_url=database_url or None,
    )
    app = create_app(settings, embedder=embedder, config=ServerConfig())
    # Not uvicorn.run(fd=...): uvicorn wraps an fd as an AF_UNIX socket, so asyncio never
    # sets TCP_NODELAY on the connections and every response waits out the client's
    # delayed ACK (~40 ms per request). socket(fileno=) detects the real family.
    sock = socket.socket(fileno=fd)
    from sem_mem.server.protocol import uvicorn_options  # what `sem-mem serve` runs

    config = uvicorn.Config(
        app, log_level="warning", access_log=False, **uvicorn_options(ServerConfig())
    )
    server = uvicorn.Server(config)
    if not profile:
        server.run(sockets=[sock])
        return
    import cProfile  # --profile-server: where the server's own thread time goes
    import signal

    # uvicorn re-raises the SIGTERM it shut down on once it is done: let run() return
    signal.signal(signal.SIGTERM, lambda *_: None)
    profiler = cProfile.Profile()
    profiler.runcall(server.run, sockets=[sock])
    profiler.dump_stats(profile)


def sentence(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid``, its threads and its worker processes."""
    return sum(tree_cpu_seconds(pid).values())


def tree_cpu_seconds(pid: int | None) -> dict[int, float]:
    """CPU time of process ``pid`` and of each of its children (PostgreSQL's backends)."""
    if pid is None:
        return {}
    out = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # gone meanwhile
            continue
        if int(entry) == pid or int(fields[1]) == pid:
            out[int(entry)] = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    return out


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def load(client: httpx.AsyncClient, count: int, rng: random.Random) -> None:
    for start in range(0, count, 500):
        texts = [f"note {i}: {sentence(rng, 12)}" for i in range(start, min(count, start + 500))]
        response = await client.post("/remember/batch", json={"texts": texts}, timeout=600)
        response.raise_for_status()


class Connection:
    """One keep-alive HTTP/1.1 connection that POSTs JSON and reads whole responses.

    Hand-written on asyncio streams rather than httpx: at 32 connections httpx spent
    1.6-2.5 ms of CPU per request (its pool is scanned per request), on the same two
    cores as the server it measures; this spends a fraction of that.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, host: str, port: int) -> Connection:
        reader, writer = await asyncio.open_connection(host, port)
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return cls(reader, writer)

    async def post(self, path: str, payload: dict[str, Any]) -> tuple[int, bytes]:
        body = json.dumps(payload).encode()
        self.writer.write(
            f"POST {path} HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        lower = head.lower()
        at = lower.index(b"content-length:") + len(b"content-length:")
        length = int(lower[at : lower.index(b"\r\n", at)])
        return status, await self.reader.readexactly(length)

    def close(self) -> None:
        self.writer.close()


async def hammer(
    url: str, server_pid: int, db_pid: int | None, concurrency: int, requests: int, seed: int
) -> dict[str, Any]:
    rng = random.Random(seed)
    queries = [f"{sentence(rng, 5)} {seed}-{i}" for i in range(requests)]
    latencies: list[float] = []
    errors = 0
    host, port = url.removeprefix("http://").split(":")
    connections = [await Connection.open(host, int(port)) for _ in range(concurrency)]
    try:
        warm = [c.post("/recall", {"query": f"warm up {i}"}) for i, c in enumerate(connections)]
        await asyncio.gather(*warm)
        position = 0

        async def worker(connection: Connection) -> None:
            nonlocal position, errors
            while position < len(queries):
                query = queries[position]
                position += 1
                started = time.perf_counter()
                status, _ = await connection.post("/recall", {"query": query, "limit": 5})
                latencies.append(time.perf_counter() - started)
                errors += status != 200

        server_cpu, client_cpu = cpu_seconds(server_pid), own_cpu_seconds()
        db_before = tree_cpu_seconds(db_pid)
        started = time.perf_counter()
        await asyncio.gather(*(worker(c) for c in connections))
        elapsed = time.perf_counter() - started
        server_cpu = cpu_seconds(server_pid) - server_cpu
        client_cpu = own_cpu_seconds() - client_cpu
        db_cpu = sum(t - db_before.get(p, 0.0) for p, t in tree_cpu_seconds(db_pid).items())
    finally:
        for connection in connections:
            connection.close()
    latencies.sort()
    n = len(latencies)
    return {
        "concurrency": concurrency,
        "requests": n,
        "errors": errors,
        "seconds": round(elapsed, 3),
        "throughput_rps": round(n / elapsed, 1),
        "p50_ms": round(statistics.median(latencies) * 1000, 2),
        "p99_ms": round(latencies[min(n - 1, int(0.99 * n))] * 1000, 2),
        "server_cpu_ms": round(server_cpu / n * 1000, 2),
        "client_cpu_ms": round(client_cpu / n * 1000, 2),
        "database_cpu_ms": round(db_cpu / n * 1000, 2),
    }


@contextmanager
def postgres() -> Iterator[Any]:
    """A pgserver PostgreSQL with pgvector for the whole run (see tests/pg_server.py)."""
    sys.path.insert(0, str(ROOT / "tests"))
    import pgserver
    import psycopg
    from pg_server import PgCluster

    folder = tempfile.mkdtemp(prefix="semmem-pg-")  # short: unix socket paths are limited
    os.chmod(folder, 0o777)  # as root, PostgreSQL runs as the 'pgserver' user
    server = pgserver.get_server(os.path.join(folder, "data"), cleanup_mode="delete")
    try:
        cluster = PgCluster(server.get_uri())
        with psycopg.connect(cluster.url_for("template1"), autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        cluster.postmaster_pid = server.get_pid()  # type: ignore[attr-defined]
        yield cluster
    finally:
        server.cleanup()
        shutil.rmtree(folder, ignore_errors=True)


async def one_run(
    args: argparse.Namespace,
    tree: str,
    workers: int,
    database_url: str,
    db_pid: int | None,
    seed: int,
) -> list[dict[str, Any]]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(256)
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    with tempfile.TemporaryDirectory() as storage:
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([tree, os.path.join(tree, "tests")]))
        child = subprocess.Popen(
            [sys.executable, __file__, "--serve-fd", str(sock.fileno()), "--tree", tree,
             "--storage", storage, "--database-url", database_url, "--embedder", args.embedder,
             "--profile-server", args.profile_server, "--workers", str(workers)],
            pass_fds=(sock.fileno(),),
            env=env,
        )  # fmt: skip
        try:
            async with httpx.AsyncClient(base_url=url, timeout=600) as client:
                # the socket already listens: this waits in the backlog until uvicorn accepts
                (await client.get("/health")).raise_for_status()
                await load(client, args.memories, random.Random(1))
            rows = []
            for c in args.concurrency:
                row = await hammer(url, child.pid, db_pid, c, args.requests, seed=seed * 100 + c)
                row["load_average"] = os.getloadavg()[0]
                rows.append(row)
        finally:
            child.terminate()
            child.wait(30)
            sock.close()
    return rows


def median_rows(runs: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Per concurrency level, the median of every figure over the repeats."""
    out = []
    for level in zip(*runs, strict=True):
        row: dict[str, Any] = {"concurrency": level[0]["concurrency"], "repeats": len(level)}
        for key in level[0]:
            if key not in ("concurrency",):
                row[key] = round(statistics.median(r[key] for r in level), 2)
        out.append(row)
    return out


def ratios(runs: list[list[dict[str, Any]]]) -> dict[str, float]:
    """The target ratios of each run (its 1, 8 and 32 clients ran seconds apart, under
    about the same load from others), then their median over the runs."""
    per_run: dict[str, list[float]] = {}
    for rows in runs:
        by = {r["concurrency"]: r for r in rows}
        one = by.get(1)
        if one is None:
            continue
        for c in (8, 32):
            if c in by:
                ratio = by[c]["throughput_rps"] / one["throughput_rps"]
                per_run.setdefault(f"throughput {c}/1", []).append(ratio)
        if 8 in by:
            per_run.setdefault("p99@8 / p50@1", []).append(by[8]["p99_ms"] / one["p50_ms"])
    return {k: round(statistics.median(v), 2) for k, v in per_run.items()}


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| clients | req/s | p50 (ms) | p99 (ms) | CPU ms/req: server | client | database "
        "| load avg | errors |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['concurrency']} | {r['throughput_rps']} | {r['p50_ms']} | {r['p99_ms']} | "
            f"{r['server_cpu_ms']} | {r['client_cpu_ms']} | {r.get('database_cpu_ms', 0)} | "
            f"{r['load_average']} | "
            f"{int(r['errors'])} |"
        )
    return "\n".join(lines)


def report(result: dict[str, Any]) -> str:
    parts = [
        "# Server load",
        "",
        f"`POST /recall` on loopback: {result['memories']} memories, {result['embedder']} "
        f"embedder, {result['cpus']} CPUs, Python {result['python']}; "
        f"client and server on the same machine; every query distinct; "
        f"uvicorn worker processes: {' or '.join(map(str, result['workers']))}; "
        f"{result['requests']} requests per client count; medians of {result['repeats']} "
        "interleaved runs. CPU ms/req: the process's user + system time over the requests "
        "it served or sent. Load avg: the 1-minute load average after each run (the "
        "machine's cores are shared).",
    ]
    for backend, configs in result["backends"].items():
        parts += ["", f"## {backend}"]
        summary = [
            "| configuration | throughput 8/1 | throughput 32/1 | p99@8 / p50@1 |",
            "|---|---:|---:|---:|",
        ]
        for label, data in configs.items():
            r = data["ratios"]
            summary.append(
                f"| {label} | {r.get('throughput 8/1', '-')} | {r.get('throughput 32/1', '-')} | "
                f"{r.get('p99@8 / p50@1', '-')} |"
            )
            parts += ["", f"### {label}", "", table(data["median"])]
        parts += [
            "",
            "Ratios, each run's own then the median over runs "
            "(target: throughput >= 2, p99@8 / p50@1 <= 4):",
            "",
            *summary,
        ]
    return "\n".join(parts) + "\n"


async def run(args: argparse.Namespace) -> dict[str, Any]:
    trees = [(args.label, str(ROOT))]
    if args.baseline:
        trees.insert(0, (args.baseline_label, str(Path(args.baseline).resolve())))
    configs = [
        (label if workers == 1 else f"{label}, {workers} workers", tree, workers)
        for label, tree in trees
        for workers in args.workers
    ]
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    runs: dict[str, dict[str, list[list[dict[str, Any]]]]] = {
        b: {label: [] for label, _, _ in configs} for b in backends
    }
    with postgres() if "postgres" in backends else _nothing() as cluster:
        for repeat in range(args.repeats):
            for backend in backends:
                # alternate which configuration goes first, so neither always runs second
                order = configs if repeat % 2 == 0 else configs[::-1]
                for label, tree, workers in order:
                    database = cluster.create() if backend == "postgres" else None
                    try:
                        url = database[1] if database else ""
                        db_pid = cluster.postmaster_pid if database else None
                        rows = await one_run(args, tree, workers, url, db_pid, seed=repeat)
                    finally:
                        if database:
                            cluster.drop(database[0])
                    runs[backend][label].append(rows)
                    brief = ", ".join(
                        f"{r['concurrency']}: {r['throughput_rps']}/s p99 {r['p99_ms']}"
                        for r in rows
                    )
                    print(f"repeat {repeat + 1} {backend} {label}: {brief}", flush=True)
    result: dict[str, Any] = {
        "embedder": args.embedder,
        "memories": args.memories,
        "requests": args.requests,
        "repeats": args.repeats,
        "workers": args.workers,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
        "backends": {},
    }
    for backend in backends:
        result["backends"][backend] = {}
        for label, _, _ in configs:
            median = median_rows(runs[backend][label])
            result["backends"][backend][label] = {
                "median": median,
                "ratios": ratios(runs[backend][label]),
                "runs": runs[backend][label],
            }
    return result


@contextmanager
def _nothing() -> Iterator[Any]:
    yield None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--embedder", choices=["local", "hashing"], default=default_embedder())
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--memories", type=int, default=2000)
    parser.add_argument("--requests", type=int, default=800, help="per client count")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--workers", type=int, nargs="+", default=[1], help="uvicorn worker processes to try"
    )
    parser.add_argument("--baseline", help="another source tree to compare against")
    parser.add_argument("--baseline-label", default="baseline")
    parser.add_argument("--label", default="this tree", help="what to call this tree")
    parser.add_argument("--output", default=str(RESULTS / "server_load"), help="file stem")
    parser.add_argument(
        "--profile-server", default="", help="cProfile the server's event-loop thread to this file"
    )
    parser.add_argument("--serve-fd", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--tree", help=argparse.SUPPRESS)
    parser.add_argument("--storage", help=argparse.SUPPRESS)
    parser.add_argument("--database-url", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_fd is not None:
        serve_child(
            args.serve_fd,
            args.tree,
            args.storage,
            args.database_url,
            args.embedder,
            args.profile_server,
            args.workers[0],
        )
        return
    print(f"load average before: {os.getloadavg()}", flush=True)
    result = asyncio.run(run(args))
    markdown = report(result)
    print(markdown)
    output = Path(args.output)
    if output.parent == Path():  # a bare stem goes beside the other results
        output = RESULTS / output
    output.parent.mkdir(parents=True, exist_ok=True)
    output.with_suffix(".md").write_text(markdown)
    output.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
