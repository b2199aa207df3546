"""Connections to the PostgreSQL store: opening one, and the pool the backend draws from."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from ..errors import ConfigurationError, StorageError

__all__ = ["Pool", "connect", "psycopg_module", "redact_url"]


def redact_url(url: str) -> str:
    """The connection string without its password (for messages and stats)."""
    url = re.sub(r"(://[^:/@]*):[^@]*@", r"\1:***@", url)
    return re.sub(r"(password\s*=\s*)\S+", r"\1***", url)


def psycopg_module() -> Any:
    try:
        import psycopg
    except ImportError as exc:
        raise ConfigurationError(
            "the PostgreSQL backend needs psycopg and pgvector: pip install 'sem-mem[pg]'"
        ) from exc
    return psycopg


def connect(url: str, timeout: float, register: Callable[[Any], None] | None = None) -> Any:
    """An autocommit connection to ``url`` (``register``: run on it, e.g. pgvector's
    type registration); any psycopg error becomes StorageError."""
    psycopg = psycopg_module()
    try:
        conn = psycopg.connect(
            url,
            autocommit=True,
            connect_timeout=max(1, int(timeout)),
            application_name="sem-mem",
        )
        if register is not None:
            register(conn)
    except psycopg.Error as exc:
        raise StorageError(f"cannot connect to PostgreSQL at {redact_url(url)}: {exc}") from exc
    return conn


class Pool:
    """A small thread-safe pool of autocommit connections, created on demand.

    A connection that comes back broken, or inside a transaction, is closed rather
    than reused, so a restarted server costs one failed call, not a dead process.
    """

    def __init__(self, connect: Callable[[], Any], size: int, timeout: float) -> None:
        self._connect = connect
        self._idle: list[Any] = []
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(size)
        self._timeout = timeout
        self._closed = False

    def add(self, conn: Any) -> None:
        with self._lock:
            self._idle.append(conn)

    @contextmanager
    def connection(self) -> Iterator[Any]:
        if not self._slots.acquire(timeout=self._timeout):
            raise StorageError(f"no free PostgreSQL connection after {self._timeout:.0f} s")
        try:
            with self._lock:
                if self._closed:
                    raise StorageError("this memory store is closed")
                conn = self._idle.pop() if self._idle else None
            if conn is None or conn.closed:
                conn = self._connect()
            try:
                yield conn
            finally:
                # reuse it only when it is idle: an error inside a transaction block has
                # already rolled back; a broken or mid-query connection is dropped
                from psycopg import pq

                idle = pq.TransactionStatus.IDLE
                if not conn.closed and conn.info.transaction_status == idle:
                    with self._lock:
                        if not self._closed:
                            self._idle.append(conn)
                            conn = None
                if conn is not None:
                    conn.close()
        finally:
            self._slots.release()

    def discard_idle(self) -> None:
        """Close the idle connections (their prepared statements may name dropped types)."""
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()
