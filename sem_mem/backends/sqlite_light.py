"""Light writes of the embedded store (hit counts, the query-embedding cache) off the
recall path.

A recall that tipped the hit-count batch used to pay for the whole batch: 512 row
updates cost ~40 ms at 10^5 memories (each touches its own page), which was every
recall's p99. Here such writes go to a worker thread with its own SQLite connection:
WAL mode lets the main connection go on reading meanwhile, and sqlite3 releases the
GIL while it writes. They are statistics and a cache, never memories: they skip the
fsync, do not bump ``seq``, and a failure is logged rather than raised.

Written by hand because it is a queue, a thread and a connection: no library does
less.
"""

from __future__ import annotations

import logging
import queue
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import StorageError

__all__ = ["LightWriter"]

log = logging.getLogger("sem_mem.store")

_STOP = object()


class LightWriter:
    """One worker thread applying ``executemany`` batches in order, each in a transaction.

    ``file_lock`` is the store's inter-process write lock (taken around each batch);
    ``wait()`` returns once everything submitted before it is committed.
    """

    def __init__(self, path: Path, file_lock: Any) -> None:
        self._path = path
        self._file_lock = file_lock
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._guard = threading.Lock()
        self._closed = False

    def submit(self, sql: str, rows: Sequence[tuple[Any, ...]]) -> None:
        with self._guard:
            if self._closed:
                raise StorageError("this memory store is closed")
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="sem-mem-light-writes", daemon=True
                )
                self._thread.start()
            self._queue.put((sql, list(rows)))

    def wait(self) -> None:
        """Block until every batch submitted so far is written (or has failed)."""
        with self._guard:
            if self._thread is None:
                return
            done = threading.Event()
            self._queue.put(done)
        done.wait()

    def close(self) -> None:
        """Write what is queued, then stop the worker."""
        with self._guard:
            self._closed = True
            thread, self._thread = self._thread, None
            if thread is not None:
                self._queue.put(_STOP)
        if thread is not None:
            thread.join()

    def _run(self) -> None:
        conn = sqlite3.connect(
            self._path, check_same_thread=False, isolation_level=None, timeout=30.0
        )
        try:
            conn.execute("PRAGMA synchronous=NORMAL")
            while True:
                item = self._queue.get()
                if item is _STOP:
                    return
                if isinstance(item, threading.Event):
                    item.set()
                    continue
                self._apply(conn, *item)
        finally:
            conn.close()

    def _apply(self, conn: sqlite3.Connection, sql: str, rows: list[tuple[Any, ...]]) -> None:
        try:
            with self._file_lock:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    conn.executemany(sql, rows)
                    conn.execute("COMMIT")
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
        except Exception as exc:  # sqlite3 errors, a file-lock timeout
            log.warning("could not record %d hit counts or cached embeddings: %s", len(rows), exc)
