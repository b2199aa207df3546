"""The embedded store's in-process lock: one writer, or any number of readers.

Used by :class:`~sem_mem.backends.sqlite.SQLiteBackend` and by each full-text index.

Writers (transactions, index replays and loads, saves, close) hold it exclusively:
``with backend._lock:``, re-entrant as before. Reads (search, hydration, lists) hold
it shared (:meth:`StoreLock.shared`), each on its own SQLite connection, so concurrent
recalls no longer queue behind one another; they only wait while a writer changes the
in-memory indexes. A thread that holds it exclusively may read (its reads see its own
transaction); a reader may not start writing (``RuntimeError``: take the exclusive
lock first).

The readers/writer logic is ``fasteners.ReaderWriterLock`` (writer-preferring, so a
steady stream of reads cannot starve a write, FIFO among writers).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import fasteners

__all__ = ["StoreLock"]


class StoreLock:
    """``with lock:`` is exclusive (re-entrant); ``with lock.shared():`` is shared."""

    def __init__(self) -> None:
        self._rw = fasteners.ReaderWriterLock()

    def __enter__(self) -> StoreLock:
        self._rw.acquire_write_lock()
        return self

    def __exit__(self, *exc: object) -> None:
        self._rw.release_write_lock()

    def acquire(self) -> bool:
        self._rw.acquire_write_lock()
        return True

    def release(self) -> None:
        self._rw.release_write_lock()

    @contextmanager
    def shared(self) -> Iterator[None]:
        """Hold the lock as one of possibly many readers."""
        self._rw.acquire_read_lock()
        try:
            yield
        finally:
            self._rw.release_read_lock()

    @property
    def held_exclusively(self) -> bool:
        """Whether the calling thread is the writer."""
        return bool(self._rw.is_writer(check_pending=False))

    def __repr__(self) -> str:
        owner: Any = self._rw.owner
        return f"StoreLock(owner={owner!r})"
