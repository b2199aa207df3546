"""Run a real uvicorn server on 127.0.0.1 in a thread, for tests and benchmarks.

The listening socket is bound (port 0: a free port) and put in listen mode *before*
the server thread starts, so a client can connect at once: its connection waits in
the kernel's backlog until uvicorn accepts it. No sleeping, no port guessing.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import uvicorn
from embedders import HashingEmbedder

from sem_mem.config import Settings, resolve_settings
from sem_mem.server import ServerConfig, create_app

__all__ = ["make_settings", "serve", "serve_app"]


def make_settings(storage: Path | str, **overrides: Any) -> Settings:
    """Settings that read nothing from the environment or files."""
    return resolve_settings(
        env={}, dotenv_path=None, secrets_path=None, storage_dir=str(storage), **overrides
    )


@contextmanager
def serve_app(app: Any, **options: Any) -> Iterator[str]:
    """Serve ``app`` on 127.0.0.1:<free port>; yields the base URL; stops and joins after.

    ``options`` go to ``uvicorn.Config`` (e.g. ``sem_mem.server.protocol.uvicorn_options``).
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(
            app, log_level="warning", lifespan="on", timeout_graceful_shutdown=5, **options
        )
    )
    failure: list[BaseException] = []

    def run() -> None:
        try:
            server.run(sockets=[sock])
        except BaseException as exc:  # surfaced to the test below
            failure.append(exc)

    thread = threading.Thread(target=run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()
    if failure:
        raise failure[0]


@contextmanager
def serve(
    storage: Path | str,
    *,
    embedder: Any = None,
    config: ServerConfig | None = None,
    **overrides: Any,
) -> Iterator[str]:
    """Build an app on ``storage`` (HashingEmbedder by default) and serve it."""
    app = create_app(
        make_settings(storage, **overrides),
        embedder=embedder if embedder is not None else HashingEmbedder(),
        config=config or ServerConfig(),
    )
    with serve_app(app) as url:
        yield url
