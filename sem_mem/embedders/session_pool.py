"""A few onnxruntime sessions of one graph, each lent to one run at a time.

Why several sessions rather than one with several threads: one session with N intra-op
threads splits every kernel N ways and synchronises after each of its ~70 kernels; for
the small runs an embedder makes (one query, 16 sentences) that costs more than it
gains, and concurrent callers queue behind each other. N single-threaded sessions each
run a whole run on one core: on 2 cores, two of them serving two callers embedded 268
queries/s against 167 for one two-thread session (issue 14). A single caller with many
texts spreads its runs over all of them (see ``LocalEmbedder``).

Sessions open on demand, so a process that never embeds concurrently holds one.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Generic, TypeVar

__all__ = ["SessionPool"]

S = TypeVar("S")


class SessionPool(Generic[S]):
    """Up to ``size`` sessions made by ``open_session``; :meth:`session` lends one.

    ``first`` is the session already opened (by whoever had to build or check the
    graph); the others are opened when every open session is busy.
    """

    def __init__(self, first: S, open_session: Callable[[], S], size: int) -> None:
        self.size = max(1, size)
        self._open_session = open_session
        self._idle: list[S] = [first]
        self._opened = 1
        self._changed = threading.Condition()

    @property
    def opened(self) -> int:
        """How many sessions exist now."""
        with self._changed:
            return self._opened

    @contextmanager
    def session(self) -> Iterator[S]:
        """Borrow a session for one run; waits while all ``size`` sessions are busy."""
        session = self._take()
        try:
            yield session
        finally:
            with self._changed:
                self._idle.append(session)
                self._changed.notify()

    def _take(self) -> S:
        with self._changed:
            while not self._idle:
                if self._opened < self.size:
                    self._opened += 1
                    break
                self._changed.wait()
            else:
                return self._idle.pop()
        try:  # outside the lock: opening takes ~0.2 s and others may return sessions
            return self._open_session()
        except BaseException:
            with self._changed:
                self._opened -= 1
                self._changed.notify()
            raise
