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
    taken: bool = False  # in a run under way
    done: bool = False
    woken: bool = False  # told a run slot is free (it may still lose it to a newcomer)
    wake: threading.Event = field(default_factory=threading.Event)


class QueryBatcher:
    """Embeds texts handed in by concurrent callers in shared runs of ``encode``.

    ``encode(texts)`` must return one row per text, in order; it is called from up to
    ``parallel`` threads at once. :attr:`batch_sizes` counts the runs by size.

    Each waiting caller sleeps on its own event and is woken when its text is embedded,
    or (the oldest waiter only) when a run slot frees up. A free slot is not reserved
    for the woken caller: whichever thread gets to it first leads the next run, since
    under the GIL the woken thread may need milliseconds to be scheduled, and a slot
    held for it would stand idle meanwhile.
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
        self._running = 0  # runs under way
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
            batch = self._lead()
        while True:
            if batch is None:
                slot.wake.wait()
                with self._lock:
                    slot.wake.clear()
                    slot.woken = False
                    if not slot.done and not slot.taken:
                        batch = self._lead()
                if slot.done:
                    return self._result(slot)
                if batch is None:
                    continue
            try:
                self._run(batch)
            finally:
                self._finish(batch)
            batch = None
            if slot.done:
                return self._result(slot)

    def _lead(self) -> list[_Slot] | None:
        """With a free run slot, take it and the oldest queued texts (lock held)."""
        if self._running >= self.parallel or not self._queue:
            return None
        self._running += 1
        batch = self._queue[: self.max_batch]
        del self._queue[: self.max_batch]
        for queued in batch:
            queued.taken = True
        self.batch_sizes[len(batch)] = self.batch_sizes.get(len(batch), 0) + 1
        return batch

    def _finish(self, batch: list[_Slot]) -> None:
        """Wake the batch's callers, free the run slot and tell the oldest waiter."""
        with self._lock:
            for queued in batch:
                if queued.vector is None and queued.error is None:  # interrupted
                    queued.error = EmbeddingError("the embedding run was interrupted")
                queued.done = True
                queued.wake.set()
            self._running -= 1
            for waiting in self._queue:
                if not waiting.woken:
                    waiting.woken = True
                    waiting.wake.set()
                    break

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
