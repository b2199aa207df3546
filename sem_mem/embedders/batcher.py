"""Micro-batching of concurrent single-text embeddings (recall queries).

Under load a server embeds one query per request, and many requests arrive at once.
One ONNX run over 8 short queries costs far less than 8 runs of one (the weights are
streamed from RAM once, the kernels work on more rows), so the callers that arrive
while a run is under way are embedded together in the next one.

There is no waiting window: a caller that finds fewer than ``parallel`` runs under way
starts one at once with whatever is queued (alone, a batch of one), so a lone caller is
never delayed. Callers that arrive while every run slot is busy queue up; when a run
ends, one of them leads the next run with everything queued by then (up to
``max_batch``). ``parallel`` > 1 suits an embedder that can run several calls at once
(the local one has a session per core, see session_pool.py). This is the "leader"
pattern rather than a background thread: no thread to start, stop or leak, and the
run happens on a caller's thread, as without batching.

A batch that fails is retried one text at a time, so one caller's bad input (or a
text the model chokes on) fails only that caller.

Written here because no maintained library batches synchronous callers across
threads without a timed collection window.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from ..errors import EmbeddingError

__all__ = ["QueryBatcher"]


@dataclass(eq=False)
class _Slot:
    text: str
    vector: np.ndarray | None = None
    error: BaseException | None = None
    lead: bool = False  # handed a run slot: this caller runs the next batch
    done: bool = False
    wake: threading.Event = field(default_factory=threading.Event)


class QueryBatcher:
    """Embeds texts handed in by concurrent callers in shared runs of ``encode``.

    ``encode(texts)`` must return one row per text, in order; it is called from up to
    ``parallel`` threads at once. :attr:`batch_sizes` counts the runs by size.

    Each waiting caller sleeps on its own event and is woken once: when its text is
    embedded, or when it is handed a free run slot to lead the next run (not all
    waiters on every change, which cost every one of them a GIL round trip).
    """

    def __init__(
        self,
        encode: Callable[[Sequence[str]], np.ndarray],
        *,
        max_batch: int = 32,
        parallel: int = 1,
    ) -> None:
        self._encode = encode
        self.max_batch = max(1, max_batch)
        self.parallel = max(1, parallel)
        self._queue: list[_Slot] = []  # waiting for a run, oldest first
        self._running = 0  # runs under way, or handed to a caller about to start one
        self._lock = threading.Lock()
        self.batch_sizes: dict[int, int] = {}

    @property
    def queued(self) -> int:
        """How many texts wait for a run."""
        with self._lock:
            return len(self._queue)

    def embed(self, text: str) -> np.ndarray:
        """The vector of ``text``; raises what ``encode`` raised for this text alone."""
        slot = _Slot(text)
        with self._lock:
            self._queue.append(slot)
            if self._running < self.parallel:
                self._running += 1
                slot.lead = True
        while True:
            if not slot.lead:
                slot.wake.wait()
                slot.wake.clear()
            if slot.done:
                return self._result(slot)
            # this caller leads a run: everything queued (itself first, as the oldest
            # waiter is the one handed a slot), up to max_batch
            with self._lock:
                slot.lead = False
                batch = self._queue[: self.max_batch]
                del self._queue[: self.max_batch]
                if batch:
                    self.batch_sizes[len(batch)] = self.batch_sizes.get(len(batch), 0) + 1
            if not batch:  # another leader took this text along: pass the slot on
                self._finish(batch)
                continue
            try:
                self._run(batch)
            finally:
                self._finish(batch)

    def _finish(self, batch: list[_Slot]) -> None:
        """Wake the batch's callers; hand the freed run slot to the oldest waiter."""
        with self._lock:
            for queued in batch:
                if queued.vector is None and queued.error is None:  # interrupted
                    queued.error = EmbeddingError("the embedding run was interrupted")
                queued.done = True
                queued.wake.set()
            if self._queue:
                head = self._queue[0]
                head.lead = True
                head.wake.set()
            else:
                self._running -= 1

    def _run(self, batch: list[_Slot]) -> None:
        try:
            vectors = self._encode([s.text for s in batch])
        except Exception as exc:
            if len(batch) == 1:
                batch[0].error = exc
                return
            for s in batch:  # find whose text failed: each alone
                try:
                    s.vector = self._encode([s.text])[0]
                except Exception as own:
                    s.error = own
            return
        for s, vector in zip(batch, vectors, strict=True):
            s.vector = vector

    @staticmethod
    def _result(slot: _Slot) -> np.ndarray:
        if slot.error is not None:
            raise slot.error
        assert slot.vector is not None  # a done slot has a vector or an error
        return slot.vector
