"""Stateless replicas: three ``sem-mem`` API servers on one PostgreSQL behave as one.

Each replica is a real uvicorn process on its own pre-bound socket; clients spread
their calls across them. Writes through one are seen by the next request on any other
(recall, get, list, instructions, L1 caches invalidated through the change sequence);
the three start at once on an empty database and apply each migration once; one is
killed (SIGKILL) in the middle of a batch write and the other two carry on, with the
killed batch either wholly committed chunk by chunk or absent, never half a chunk.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import python_env
from pg_server import cluster_or_skip

pytestmark = pytest.mark.postgres

_SERVER = """
import socket, sys
import uvicorn
from embedders import HashingEmbedder
from sem_mem.config import resolve_settings
from sem_mem.server import ServerConfig, create_app

sock = socket.socket(fileno=int(sys.argv[1]))
settings = resolve_settings(
    env={}, dotenv_path=None, secrets_path=None, database_url=sys.argv[2], storage_dir=sys.argv[3]
)
app = create_app(settings, embedder=HashingEmbedder(), config=ServerConfig())
uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on")).run(sockets=[sock])
"""


_WRITER = """
import sys
import httpx
for batch in range(20):
    texts = [f"bulk note {batch * 500 + i} about the shared ward" for i in range(500)]
    httpx.post(sys.argv[1] + "/remember/batch", json={"texts": texts}, timeout=300)
"""


@pytest.fixture
def pg_url() -> Iterator[str]:
    with cluster_or_skip().database() as url:
        yield url


def _start(pg_url: str, folder: Path) -> tuple[subprocess.Popen[bytes], str]:
    # bound and listening before the process starts: clients connect at once and wait in
    # the backlog until uvicorn accepts (no sleeping, no port guessing)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    process = subprocess.Popen(
        [sys.executable, "-c", _SERVER, str(sock.fileno()), pg_url, str(folder)],
        pass_fds=[sock.fileno()],
        env=python_env(),
    )
    sock.close()
    return process, url


@pytest.mark.slow  # server subprocesses, one killed
def test_three_replicas_behave_as_one_server_and_survive_a_killed_one(
    pg_url: str, tmp_path: Path
) -> None:
    import psycopg

    from sem_mem.backends.postgres_schema import MIGRATIONS

    replicas = [_start(pg_url, tmp_path / f"unused{n}") for n in range(3)]
    clients = [httpx.Client(base_url=url, timeout=120) for _, url in replicas]
    try:
        a, b, c = clients
        # every replica answers; the migrations ran once although all three started at once
        assert all(client.get("/health").is_success for client in clients)
        with psycopg.connect(pg_url) as conn:
            versions = conn.execute("SELECT version FROM schema_migrations ORDER BY 1").fetchall()
        assert versions == sorted((v,) for v, _, _ in MIGRATIONS)

        # a write through any replica is seen by the next request on every other one
        ids = []
        for n in range(9):
            writer = clients[n % 3]
            ids.append(writer.post("/remember", json={"text": f"locker {n} code is {n}1{n}"}))
        ids = [r.json()["id"] for r in ids]
        for n, memory_id in enumerate(ids):
            reader = clients[(n + 1) % 3]
            found = reader.post("/recall", json={"query": f"locker {n} code", "limit": 1}).json()
            assert found["memories"][0]["id"] == memory_id
        for _ in range(3):  # hot in c's L1 and in its result cache
            c.post("/recall", json={"query": "locker 4 code", "limit": 1})
        assert a.patch(f"/memories/{ids[4]}", json={"text": "locker 4 code is now 9999"}).is_success
        hit = c.post("/recall", json={"query": "locker 4 code", "limit": 1}).json()["memories"][0]
        assert hit["text"] == "locker 4 code is now 9999"
        assert b.delete(f"/memories/{ids[5]}").status_code == 204
        assert c.get(f"/memories/{ids[5]}").status_code == 404
        assert ids[5] not in [
            m["id"]
            for m in a.post("/recall", json={"query": "locker 5", "limit": 9}).json()["memories"]
        ]
        assert b.put("/instructions", json={"text": "Answer in French"}).is_success
        assert c.get("/instructions").json()["instructions"].strip() == "Answer in French"
        assert a.get("/stats").json()["total_memories"] == 8

        # kill replica c in the middle of its writes (batches of 500, one transaction
        # each, sent one after another by a client process); a and b carry on
        process, _ = replicas[2]
        writer = subprocess.Popen(
            [sys.executable, "-c", _WRITER, replicas[2][1]],
            env=python_env(),
            stderr=subprocess.DEVNULL,
        )
        with psycopg.connect(pg_url, autocommit=True) as conn:
            # kill the server once the writes are under way (a batch committed)
            deadline = time.monotonic() + 120
            while (
                time.monotonic() < deadline
                and not conn.execute(
                    "SELECT count(*) FROM memories WHERE text LIKE 'bulk note %%'"
                ).fetchone()[0]
            ):
                pass
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        writer.wait(timeout=300)
        with psycopg.connect(pg_url) as conn:
            stored = conn.execute(
                "SELECT count(*) FROM memories WHERE text LIKE 'bulk note %%'"
            ).fetchone()[0]
        assert stored > 0 and stored % 500 == 0  # whole batches only
        after = a.post("/remember", json={"text": "written after the crash"}).json()["id"]
        assert b.get(f"/memories/{after}").is_success
        assert b.get("/stats").json()["total_memories"] == 9 + stored
        page = a.get("/memories", params={"limit": 5}).json()
        assert page["memories"][0]["id"] == after
    finally:
        for client in clients:
            client.close()
        for process, _ in replicas:
            if process.poll() is None:
                process.terminate()
        for process, _ in replicas:
            process.wait(timeout=30)
