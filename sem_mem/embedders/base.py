"""The embedder interface: one required method, ``embed_batch``.

An embedder turns texts into float32 vectors. Implementations declare their
capabilities as class or instance attributes (``model_id``, ``dimensions``,
``batch_size``, ``needs_key``) and implement :meth:`Embedder.embed_batch`; the base
class derives ``embed`` and :meth:`Embedder.encode`, which batches, validates the
shape, rejects NaN/inf and L2-normalises, so every caller gets clean unit vectors.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence

import numpy as np

from ..errors import EmbeddingError
from .batcher import QueryBatcher

__all__ = ["Embedder", "normalize_rows"]

_BATCHER_LOCK = threading.Lock()  # creates each embedder's QueryBatcher once


def normalize_rows(vectors: np.ndarray) -> np.ndarray:
    """Return float32 rows scaled to unit length (zero rows stay zero)."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    out: np.ndarray = vectors / norms
    return out


class Embedder(ABC):
    """Turns texts into vectors.

    Subclasses set ``model_id`` (stable, recorded in the store: changing models is
    detected through it), ``dimensions`` and implement :meth:`embed_batch`.
    """

    model_id: str = ""
    dimensions: int = 0
    batch_size: int = 64
    needs_key: bool = False
    #: how many :meth:`embed_query` runs may go on at once (see batcher.py)
    query_parallel: int = 1
    #: whether a text's vector is the same whatever other texts share its batch; if not,
    #: :meth:`embed_query` never batches (a recall must not depend on other requests)
    batch_invariant: bool = True
    #: whether :meth:`embed_memories` averages a memory's sentences and adds its speaker
    #: (see pooling.py: it helps a small sentence encoder; off for others)
    sentence_pooling: bool = False

    @abstractmethod
    def embed_batch(self, texts: Sequence[str]) -> np.ndarray:
        """Embed at most ``batch_size`` texts; return an ``(len(texts), dimensions)`` array."""

    def encode(
        self,
        texts: Sequence[str],
        *,
        progress: Callable[[int, int], None] | None = None,
    ) -> np.ndarray:
        """Embed any number of texts in batches; validated, float32, unit length.

        ``progress(done, total)`` is called after each batch.
        """
        total = len(texts)
        if total == 0:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        parts = []
        for start in range(0, total, max(1, self.batch_size)):
            chunk = list(texts[start : start + self.batch_size])
            try:
                out = self.embed_batch(chunk)
            except EmbeddingError:
                raise
            except Exception as exc:  # wrap whatever the backend raised
                raise EmbeddingError(f"embedder {self.model_id!r} failed: {exc}") from exc
            parts.append(self._check(out, len(chunk)))
            if progress is not None:
                progress(min(start + len(chunk), total), total)
        return normalize_rows(np.concatenate(parts, axis=0))

    def embed_memories(
        self,
        texts: Sequence[str],
        speakers: Sequence[str | None] | None = None,
        *,
        progress: Callable[[int, int], None] | None = None,
    ) -> np.ndarray:
        """Vectors of memories to store (texts of conversation turns with their speakers).

        With ``sentence_pooling`` each is the mean of its sentences' vectors plus its
        speaker's (:func:`~sem_mem.embedders.pooling.pooled_vectors`); otherwise the
        same as :meth:`encode`. Queries go through :meth:`embed_query` and are embedded
        whole either way.
        """
        if not self.sentence_pooling:
            return self.encode(texts, progress=progress)
        from .pooling import pooled_vectors

        return pooled_vectors(self.encode, texts, speakers, progress)

    def embed(self, text: str) -> np.ndarray:
        """Embed one text; a unit float32 vector of length ``dimensions``."""
        vector: np.ndarray = self.encode([text])[0]
        return vector

    def embed_query(self, text: str) -> np.ndarray:
        """Embed one text, like :meth:`embed`, batched with concurrent callers.

        Threads that call this while every run slot (``query_parallel``) is busy are
        embedded together in the next run (one ``encode`` call); a caller alone runs
        at once, in a batch of one. An embedder that is not ``batch_invariant`` embeds
        each text in its own ``encode`` call. See :mod:`sem_mem.embedders.batcher`.
        """
        if not self.batch_invariant:  # nothing to share: no queue to wait in either
            vector: np.ndarray = self.encode([text])[0]
            return vector
        return self.query_batcher.embed(text)

    @property
    def query_batcher(self) -> QueryBatcher:
        """The batcher behind :meth:`embed_query` (one per embedder, made on first use)."""
        batcher: QueryBatcher | None = self.__dict__.get("_query_batcher")
        if batcher is None:
            with _BATCHER_LOCK:
                batcher = self.__dict__.get("_query_batcher")
                if batcher is None:
                    batcher = QueryBatcher(
                        self.encode,
                        max_batch=max(1, self.batch_size) if self.batch_invariant else 1,
                        parallel=self.query_parallel,
                    )
                    self.__dict__["_query_batcher"] = batcher
        return batcher

    def _check(self, out: np.ndarray, expected_rows: int) -> np.ndarray:
        arr = np.asarray(out, dtype=np.float32)
        if arr.ndim != 2 or arr.shape[0] != expected_rows:
            raise EmbeddingError(
                f"embedder {self.model_id!r} returned shape {arr.shape}, "
                f"expected ({expected_rows}, {self.dimensions})"
            )
        if arr.shape[1] != self.dimensions:
            raise EmbeddingError(
                f"embedder {self.model_id!r} returned {arr.shape[1]}-dimensional vectors, "
                f"but declares {self.dimensions} dimensions"
            )
        if not np.all(np.isfinite(arr)):
            raise EmbeddingError(f"embedder {self.model_id!r} returned NaN or infinite values")
        return arr

    def __repr__(self) -> str:
        return f"{type(self).__name__}(model_id={self.model_id!r}, dimensions={self.dimensions})"
