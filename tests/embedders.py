"""Small, deterministic, honest test embedders (real Embedder subclasses)."""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from sem_mem.embedders.base import Embedder

_WORD = re.compile(r"\w+")


class HashingEmbedder(Embedder):
    """Bag-of-words feature hashing: texts sharing words get similar vectors."""

    batch_size = 128

    def __init__(self, dimensions: int = 64, *, name: str = "hashing") -> None:
        self.dimensions = dimensions
        self.model_id = f"test:{name}-{dimensions}"
        self.calls = 0
        self.texts_embedded = 0

    def embed_batch(self, texts: Sequence[str]) -> np.ndarray:
        self.calls += 1
        self.texts_embedded += len(texts)
        out = np.zeros((len(texts), self.dimensions), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in _WORD.findall(text.lower()):
                digest = hashlib.blake2b(word.encode(), digest_size=8).digest()
                h = int.from_bytes(digest, "little")
                out[row, h % self.dimensions] += 1.0 if (h >> 32) & 1 else -1.0
            out[row, -1] += 0.01  # never all-zero
        return out


class BrokenEmbedder(HashingEmbedder):
    """Returns NaN, or vectors of the wrong size, on demand."""

    def __init__(self, dimensions: int = 64, *, fault: str = "nan") -> None:
        super().__init__(dimensions, name="hashing")  # same space as HashingEmbedder
        self.fault = fault

    def embed_batch(self, texts: Sequence[str]) -> np.ndarray:
        out = super().embed_batch(texts)
        if self.fault == "nan":
            out[0, 0] = np.nan
            return out
        if self.fault == "dims":
            return out[:, :-1]
        return out


class GatedEmbedder(HashingEmbedder):
    """Embeds the first ``free`` batches at once, then holds each batch until ``release``
    is set (``held`` is set when one is waiting): the test decides when embedding goes on.
    ``calls`` counts the batches actually embedded."""

    def __init__(self, free: int = 1, dimensions: int = 64) -> None:
        super().__init__(dimensions, name="hashing")  # same space as HashingEmbedder
        self.free = free
        self.held = threading.Event()
        self.release = threading.Event()

    def embed_batch(self, texts: Sequence[str]) -> np.ndarray:
        if self.calls >= self.free and not self.release.is_set():
            self.held.set()
            if not self.release.wait(timeout=300):  # a safety net, never the expected path
                raise TimeoutError("GatedEmbedder was never released")
        return super().embed_batch(texts)


class BarrierEmbedder(HashingEmbedder):
    """Waits at ``barrier`` (a ``multiprocessing.Barrier`` shared by the writers of a
    race) before each batch: every writer has then read what it read before writing
    and none has written yet, the instant at which a read-then-write loses a race.
    Same space as ``HashingEmbedder``."""

    def __init__(self, barrier: Any, dimensions: int = 64) -> None:
        super().__init__(dimensions, name="hashing")
        self.barrier = barrier

    def embed_batch(self, texts: Sequence[str]) -> np.ndarray:
        self.barrier.wait(timeout=120)  # a safety net: a lost writer fails, never hangs
        return super().embed_batch(texts)


class PooledHashingEmbedder(HashingEmbedder):
    """A HashingEmbedder that embeds memories sentence by sentence plus their speaker,
    as the local embedder does (``sentence_pooling``)."""

    sentence_pooling = True


class TableEmbedder(Embedder):
    """Serves vectors given in advance, by text (a store of chosen geometry)."""

    batch_size = 1024

    def __init__(self, vectors: dict[str, np.ndarray], *, name: str = "table") -> None:
        self.vectors = vectors
        self.dimensions = len(next(iter(vectors.values())))
        self.model_id = f"test:{name}-{self.dimensions}"

    def embed_batch(self, texts: Sequence[str]) -> np.ndarray:
        return np.stack([self.vectors[t] for t in texts])
