"""onnxruntime sessions of one graph, each lent to one run at a time.

The first session is wide (one intra-op thread per core): a caller alone gets every
core on each run, whether it embeds one query or thousands of texts. When it is busy,
another caller borrows a narrow (single-threaded) session instead of queueing behind
it or sharing its threads, so concurrent callers run in parallel.

Why not only narrow sessions, one per core: on these 2 shared cores, under the load
of other tenants, one two-thread session embedded 1.7-4x more sentences per second than
two single-threaded sessions run in parallel, and a lone single query waited on a
single thread's scheduling slices (bench/embedder_speed.py). Why not only one wide
session shared by every caller: concurrent runs then contend for its threads; issue
14 measured two single-threaded sessions serving two callers at 268 queries/s against
167 for one shared two-thread session.

Narrow sessions open on demand, so a process that never embeds concurrently holds one
session.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Generic, TypeVar

__all__ = ["SessionPool"]

S = TypeVar("S")


class SessionPool(Generic[S]):
    """``first`` (the wide session) plus up to ``size - 1`` made by ``open_narrow``.

    :meth:`session` lends the wide session when it is free, else an idle or new narrow
    one, else waits for whichever comes back first.
    """

    def __init__(self, first: S, open_narrow: Callable[[], S], size: int) -> None:
        self.size = max(1, size)
        self._first = first
        self._open_narrow = open_narrow
        self._first_idle = True
        self._idle: list[S] = []
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
                if session is self._first:
                    self._first_idle = True
                else:
                    self._idle.append(session)
                self._changed.notify()

    def _take(self) -> S:
        with self._changed:
            while True:
                if self._first_idle:
                    self._first_idle = False
                    return self._first
                if self._idle:
                    return self._idle.pop()
                if self._opened < self.size:
                    self._opened += 1
                    break
                self._changed.wait()
        try:  # outside the lock: opening takes ~0.2 s and others may return sessions
            return self._open_narrow()
        except BaseException:
            with self._changed:
                self._opened -= 1
                self._changed.notify()
            raise
