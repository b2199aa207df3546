"""The embedded store's inter-process writer lock, which says who holds it.

A thin layer over ``filelock`` (which does the locking): the holder writes its pid
and operation (``write``, ``reembed``, ``migration``, ``index save``) to
``write.lock.holder`` when it takes the lock, so a process that times out waiting
gets a :class:`~sem_mem.errors.StorageError` naming what it is waiting for, not a raw
``filelock.Timeout``. (The holder info cannot live in the lock file itself: filelock
truncates it when a waiter opens it.)
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..errors import ConfigurationError, StorageError

__all__ = ["WriterLock"]


class WriterLock:
    """Re-entrant (within a process) file lock; ``holding(op)`` names the operation."""

    def __init__(self, path: Path, timeout: float) -> None:
        try:
            from filelock import FileLock, Timeout
        except ImportError as exc:  # pragma: no cover - a core dependency
            raise ConfigurationError("filelock is required: pip install filelock") from exc
        # thread_local=False: the backend's own RLock already serialises threads; the
        # file lock only has to exclude other processes.
        self._lock = FileLock(os.fspath(path), timeout=timeout, thread_local=False)
        self._timeout_error = Timeout
        self._holder = path.with_name(path.name + ".holder")
        self.timeout = timeout
        self.operation = "write"

    def __enter__(self) -> WriterLock:
        try:
            self._lock.acquire()
        except self._timeout_error:
            raise StorageError(self._busy_message()) from None
        if self._lock.lock_counter == 1:
            self._write_holder()
        return self

    def __exit__(self, *exc: object) -> None:
        self._lock.release()

    @contextmanager
    def holding(self, operation: str) -> Iterator[WriterLock]:
        """Hold the lock for ``operation`` (what a waiting process is told)."""
        previous, self.operation = self.operation, operation
        try:
            with self:
                if self._lock.lock_counter > 1:
                    self._write_holder()
                yield self
        finally:
            self.operation = previous

    def holder(self) -> dict[str, Any] | None:
        """What the last process to take the lock said it was doing (None if unknown)."""
        try:
            info = json.loads(self._holder.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return info if isinstance(info, dict) else None

    def _write_holder(self) -> None:
        info = {"pid": os.getpid(), "operation": self.operation, "since": time.time()}
        try:
            self._holder.write_text(json.dumps(info), encoding="utf-8")
        except OSError:  # only informative: never fail a write for it
            pass

    def _busy_message(self) -> str:
        info = self.holder()
        if info is None:
            who = "another process"
        else:
            since = info.get("since")
            age = f" for {time.time() - since:.0f} s" if isinstance(since, (int, float)) else ""
            who = f"process {info.get('pid')} ({info.get('operation')}{age})"
        return (
            f"the store is busy: {who} holds its writer lock ({self._lock.lock_file}); "
            f"gave up after {self.timeout:g} s (lock_timeout)"
        )
