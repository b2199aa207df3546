"""A client that uploads a document and hangs up, and a view of the server's upload log.

Shared by tests/test_upload_cancel.py and bench/reliability.py. The client is a raw
socket so that it can close the connection at a chosen moment, which HTTP client
libraries hide; the request itself is built by httpx.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

import httpx
from pdf_bombs import bomb_pdf

from sem_mem.ingest import IngestCancelled

__all__ = [
    "LONG_TEXT",
    "LONG_TEXT_CHUNKS",
    "SLOW_PAGES",
    "SLOW_PAGE_BYTES",
    "UploadLog",
    "hang_up",
    "read_until",
    "send_upload",
    "slow_pdf",
    "watch_uploads",
]

# A PDF within every default limit (PdfLimits) that takes long to read: 20 pages of
# ~154,000 characters each (the limit is 200,000 a page and 5,000,000 a document),
# about a second of pypdf's time per page.
SLOW_PAGES = 20
SLOW_PAGE_BYTES = 400_000

# With the server's chunking (1,000 characters): one chunk a paragraph, 150 chunks.
LONG_TEXT_CHUNKS = 150
LONG_TEXT = "\n\n".join(
    " ".join(f"Paragraph {i}, sentence {j}, is about topic {i * 31 + j}." for j in range(20))
    for i in range(LONG_TEXT_CHUNKS)
)


def slow_pdf() -> bytes:
    return bomb_pdf(SLOW_PAGE_BYTES, pages=SLOW_PAGES)


class UploadLog(logging.Handler):
    """The server's upload log: an event per kind (``started``, ``disconnected``,
    ``cancelled``) to wait on, when each was first seen, and the cancellations."""

    KINDS = ("started", "disconnected", "cancelled")

    def __init__(self, wait_seconds: float) -> None:
        super().__init__(logging.DEBUG)
        self.wait_seconds = wait_seconds
        self.seen = {kind: threading.Event() for kind in self.KINDS}
        self.at: dict[str, float] = {}
        self.cancelled: list[IngestCancelled] = []

    def emit(self, record: logging.LogRecord) -> None:
        kind = getattr(record, "upload_event", None)
        if kind == "cancelled":
            self.cancelled.append(record.cancelled)  # type: ignore[attr-defined]
        if kind in self.seen:
            self.at.setdefault(kind, time.perf_counter())
            self.seen[kind].set()

    def wait(self, kind: str) -> None:
        """Until the server logs ``kind`` (the timeout is a safety net for a broken server)."""
        assert self.seen[kind].wait(self.wait_seconds), f"the server never logged {kind!r}"


@contextmanager
def watch_uploads(wait_seconds: float) -> Iterator[UploadLog]:
    """Collect the ``sem_mem.server`` upload log records while the block runs."""
    logger = logging.getLogger("sem_mem.server")
    handler, level = UploadLog(wait_seconds), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def send_upload(
    url: str, name: str, data: bytes, *, progress: bool, timeout: float = 120
) -> socket.socket:
    """Open a connection and send a whole upload request on it; the answer is not read."""
    target = f"{url}/upload/pdf" + ("?progress=true" if progress else "")
    request = httpx.Request("POST", target, files={"file": (name, data)})
    body = request.read()
    head = f"POST {request.url.raw_path.decode()} HTTP/1.1\r\n" + "".join(
        f"{key}: {value}\r\n" for key, value in request.headers.items()
    )
    parts = urlsplit(url)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=timeout)
    sock.sendall(head.encode() + b"\r\n" + body)
    return sock


def read_until(sock: socket.socket, marker: bytes) -> bytes:
    """What the server sent, up to and including ``marker``."""
    seen = b""
    while marker not in seen:
        data = sock.recv(65536)
        assert data, f"connection closed before {marker!r}: {seen!r}"
        seen += data
    return seen


def hang_up(sock: socket.socket) -> None:
    """Close the connection as a client that gives up does."""
    sock.shutdown(socket.SHUT_RDWR)
    sock.close()
