"""Slow and idle clients cannot hold the server (issue 12, item 9).

Raw sockets play the slow client: partial request headers, then nothing. The server
must close such a connection after ``header_timeout``, and answer 503 at once beyond
``max_connections``. Each wait is a blocking read that ends when the server closes the
connection (the socket timeout is only a guard against hanging on a regression).
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlparse

import httpx
import pytest
from embedders import HashingEmbedder
from live_server import make_settings, serve_app

from sem_mem.server import ServerConfig, create_app
from sem_mem.server.protocol import uvicorn_options

GUARD = 60.0  # seconds before a read gives up: far above any configured timeout


@contextmanager
def server(tmp_path: Path, **limits: int) -> Iterator[str]:
    config = ServerConfig(**limits)
    app = create_app(make_settings(tmp_path / "store"), embedder=HashingEmbedder(), config=config)
    with serve_app(app, **uvicorn_options(config)) as url:
        yield url


def _connect(url: str) -> socket.socket:
    parsed = urlparse(url)
    sock = socket.create_connection((parsed.hostname, parsed.port))
    sock.settimeout(GUARD)
    return sock


def _closed_by_server(sock: socket.socket) -> bool:
    try:
        return sock.recv(1024) == b""
    except ConnectionResetError:
        return True


@pytest.mark.slow  # waits out the server's header timeout
def test_partial_headers_are_cut_off(tmp_path: Path) -> None:
    with server(tmp_path, header_timeout=1) as url, contextlib.ExitStack() as sockets:
        slow = sockets.enter_context(_connect(url))
        slow.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        silent = sockets.enter_context(_connect(url))  # connects and sends nothing at all
        assert _closed_by_server(slow) and _closed_by_server(silent)
        # a keep-alive connection whose next request head stalls is cut off too
        kept = sockets.enter_context(_connect(url))
        kept.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert kept.recv(4096).startswith(b"HTTP/1.1 200")
        kept.sendall(b"GET /health HTTP/1.1\r\n")
        assert _closed_by_server(kept)
        assert httpx.get(url + "/health").status_code == 200


def test_connections_beyond_the_limit_get_503(tmp_path: Path) -> None:
    with server(tmp_path, header_timeout=GUARD * 2, max_connections=3) as url:
        held = [_connect(url) for _ in range(3)]
        for sock in held:
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")  # headers never finished
        response = httpx.get(url + "/health")
        assert response.status_code == 503
        for sock in held:
            sock.close()
