"""Memory Atlas: the memories of a namespace projected to 2D, as plain data for a UI to plot.

Pure numpy, no UI imports. :func:`build_atlas` reads the namespace's active memories
(``memory.backend.iter_memories``), keeps at most ``max_points`` of them, projects
their vectors onto the first two principal components (PCA), and optionally groups
them with a few rounds of k-means in the original embedding space (for colouring).
The returned :class:`Atlas` can place a query vector in the same 2D plane
(:meth:`Atlas.project`), or, when only the query's neighbours are known (a UI talking
to the API server has no query vector), at their similarity-weighted centroid
(:meth:`Atlas.place_by_neighbours`).

Sampling is deterministic and *stable*: above the cap, the memories kept are those
whose id hashes lowest (bottom-k sampling), so the same store always gives the same
picture, and adding memories never reshuffles the points already shown, it only
swaps a few. :attr:`Atlas.sampled` and :attr:`Atlas.total` say what was left out.
"""

from __future__ import annotations

import hashlib
import heapq
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from .core import SemanticMemory

__all__ = [
    "DEFAULT_MAX_POINTS",
    "Atlas",
    "AtlasItem",
    "build_atlas",
    "build_atlas_from_items",
    "kmeans",
    "pca_2d",
    "sample_key",
]

#: above this many memories the atlas shows a deterministic sample of this size
DEFAULT_MAX_POINTS = 5_000


@dataclass(frozen=True)
class AtlasItem:
    """One memory as the atlas needs it: identity, what to show on hover, and its vector."""

    id: str
    text: str
    source: str
    created_at: float
    vector: np.ndarray


@dataclass(frozen=True)
class Atlas:
    """Memories in 2D (row ``i`` of :attr:`xy` is memory ``ids[i]``).

    ``components`` (2 × d) and ``mean`` (d) define the projection; ``explained``
    is the share of variance each of the two axes carries. ``clusters`` holds a
    cluster label per point (``None`` when clustering was not asked for).
    ``total`` is how many memories the namespace holds; ``sampled`` is True when
    only ``len(ids)`` of them are shown.
    """

    ids: list[str]
    texts: list[str]
    sources: list[str]
    created_at: list[float]
    xy: np.ndarray
    mean: np.ndarray
    components: np.ndarray
    explained: tuple[float, float]
    total: int
    sampled: bool
    max_points: int
    clusters: np.ndarray | None = None
    _index: dict[str, int] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._index.update({memory_id: i for i, memory_id in enumerate(self.ids)})

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def shown(self) -> int:
        """How many points the atlas holds (``total`` when nothing was sampled out)."""
        return len(self.ids)

    def position(self, memory_id: str) -> tuple[float, float] | None:
        """The 2D position of a memory, or ``None`` if it is not among the points."""
        i = self._index.get(memory_id)
        return None if i is None else (float(self.xy[i, 0]), float(self.xy[i, 1]))

    def project(self, vector: Sequence[float] | np.ndarray) -> tuple[float, float]:
        """Place a vector (e.g. a query's embedding) in the atlas's 2D plane."""
        v = np.asarray(vector, dtype=np.float64).reshape(-1)
        if v.shape[0] != self.mean.shape[0]:
            raise ValueError(
                f"vector has {v.shape[0]} dimensions; the atlas was built with {self.mean.shape[0]}"
            )
        x, y = (v - self.mean) @ self.components.T
        return float(x), float(y)

    def place_by_neighbours(
        self, neighbours: Iterable[tuple[str, float]]
    ) -> tuple[float, float] | None:
        """Similarity-weighted centroid of the ``(id, similarity)`` neighbours shown.

        Used when the query's own vector is unknown. Non-positive similarities get a
        small weight; ``None`` when none of the neighbours is among the points.
        """
        points, weights = [], []
        for memory_id, similarity in neighbours:
            i = self._index.get(memory_id)
            if i is not None:
                points.append(self.xy[i])
                weights.append(max(float(similarity), 1e-3))
        if not points:
            return None
        x, y = np.average(np.asarray(points), axis=0, weights=np.asarray(weights))
        return float(x), float(y)


def sample_key(memory_id: str) -> int:
    """The 64-bit hash that decides which memories a sampled atlas keeps (lowest first)."""
    return int.from_bytes(hashlib.blake2b(memory_id.encode(), digest_size=8).digest(), "big")


def pca_2d(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[float, float]]:
    """Project rows onto their first two principal components.

    Returns ``(xy, mean, components, explained)``: ``xy`` is n × 2, ``components``
    2 × d (unit rows, sign fixed so the largest loading is positive, which makes the
    picture deterministic), ``explained`` the variance ratio of each axis. Fewer than
    two usable directions (one point, identical points) give zero axes, not an error.
    """
    x = np.asarray(vectors, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError("pca_2d needs a non-empty 2D array of vectors")
    n, d = x.shape
    mean = x.mean(axis=0)
    centred = x - mean
    cov = centred.T @ centred / max(n - 1, 1)
    values, basis = _top_eigen(cov, 2)
    components = np.zeros((2, d))
    k = min(2, basis.shape[0])
    components[:k] = basis[:k]
    values = np.clip(np.concatenate([values[:k], np.zeros(2 - k)]), 0.0, None)
    for row in components:
        pivot = np.argmax(np.abs(row))
        if row[pivot] < 0:
            row *= -1
    total = float(np.trace(cov))
    explained = (float(values[0] / total), float(values[1] / total)) if total > 0 else (0.0, 0.0)
    return centred @ components.T, mean, components, explained


def _top_eigen(cov: np.ndarray, k: int, *, iterations: int = 50) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` largest eigenpairs of a symmetric PSD matrix: ``(values, rows of vectors)``.

    Small matrices use ``eigh``; larger ones block subspace iteration with oversampling
    and a Rayleigh-Ritz step (a full ``eigh`` of a 384 × 384 matrix costs ~0.6 s on a
    slow BLAS, this ~10 ms). The start block is seeded, so results are deterministic.
    """
    d = cov.shape[0]
    if d <= 64:
        values, vectors = np.linalg.eigh(cov)
        order = np.argsort(values)[::-1][:k]
        return values[order], vectors[:, order].T
    block = min(d, k + 8)
    q, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(d, block)))
    previous = None
    for _ in range(iterations):
        q, _ = np.linalg.qr(cov @ q)
        ritz = np.linalg.eigvalsh(q.T @ cov @ q)[::-1][:k]
        if previous is not None and np.allclose(ritz, previous, rtol=1e-9, atol=1e-12):
            break
        previous = ritz
    values, small = np.linalg.eigh(q.T @ cov @ q)
    order = np.argsort(values)[::-1][:k]
    return values[order], (q @ small[:, order]).T


def kmeans(
    vectors: np.ndarray, k: int, *, iterations: int = 10, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """A few rounds of Lloyd's k-means with k-means++ seeding; ``(labels, centroids)``.

    Deterministic for a given ``seed``. ``k`` is capped at the number of distinct
    points; an emptied cluster is re-seeded at the point farthest from its centroid.
    """
    x = np.asarray(vectors, dtype=np.float64)
    n = x.shape[0]
    if n == 0:
        return np.zeros(0, dtype=np.int64), np.zeros((0, x.shape[1] if x.ndim == 2 else 0))
    k = max(1, min(int(k), n))
    rng = np.random.default_rng(seed)
    sq_norms = (x**2).sum(axis=1)
    centroids = np.empty((k, x.shape[1]))
    centroids[0] = x[rng.integers(n)]
    closest = _sq_dist(x, sq_norms, centroids[:1]).ravel()
    for c in range(1, k):
        total = closest.sum()
        if total <= 0:  # fewer distinct points than k
            centroids = centroids[:c]
            break
        centroids[c] = x[rng.choice(n, p=closest / total)]
        closest = np.minimum(closest, _sq_dist(x, sq_norms, centroids[c : c + 1]).ravel())
    labels = np.zeros(n, dtype=np.int64)
    for step in range(max(1, iterations)):
        dist = _sq_dist(x, sq_norms, centroids)
        new_labels = dist.argmin(axis=1)
        if step > 0 and np.array_equal(new_labels, labels):
            break
        labels = new_labels
        for c in range(centroids.shape[0]):
            members = labels == c
            if members.any():
                centroids[c] = x[members].mean(axis=0)
            else:
                far = int(dist[np.arange(n), labels].argmax())
                centroids[c] = x[far]
    return labels, centroids


def _sq_dist(x: np.ndarray, sq_norms: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances, n × k, without an n × k × d temporary."""
    d = sq_norms[:, None] - 2.0 * (x @ centroids.T) + (centroids**2).sum(axis=1)[None, :]
    out: np.ndarray = np.maximum(d, 0.0)
    return out


def _bottom_k(items: Iterable[AtlasItem], max_points: int) -> tuple[list[AtlasItem], int]:
    """The ``max_points`` items with the lowest :func:`sample_key`, and how many were seen."""
    heap: list[tuple[int, int, AtlasItem]] = []  # (-key, tiebreak, item): a max-heap of keys
    total = 0
    for item in items:
        total += 1
        key = sample_key(item.id)
        if len(heap) < max_points:
            heapq.heappush(heap, (-key, total, item))
        elif -heap[0][0] > key:
            heapq.heapreplace(heap, (-key, total, item))
    kept = [entry[2] for entry in heap]
    kept.sort(key=lambda item: (item.created_at, item.id))
    return kept, total


def build_atlas_from_items(
    items: Iterable[AtlasItem],
    *,
    max_points: int = DEFAULT_MAX_POINTS,
    clusters: int | None = None,
    iterations: int = 10,
    seed: int = 0,
) -> Atlas | None:
    """The atlas of ``items`` (any iterable, streamed), or ``None`` when there are none.

    Above ``max_points`` items a deterministic bottom-k sample is kept. ``clusters``
    (k) adds k-means labels computed in the embedding space.
    """
    if max_points < 1:
        raise ValueError(f"max_points must be >= 1, got {max_points}")
    kept, total = _bottom_k(items, max_points)
    if not kept:
        return None
    vectors = np.stack([np.asarray(item.vector, dtype=np.float32) for item in kept])
    xy, mean, components, explained = pca_2d(vectors)
    labels = None
    if clusters:
        labels, _ = kmeans(vectors, clusters, iterations=iterations, seed=seed)
    return Atlas(
        ids=[item.id for item in kept],
        texts=[item.text for item in kept],
        sources=[item.source for item in kept],
        created_at=[item.created_at for item in kept],
        xy=xy,
        mean=mean,
        components=components,
        explained=explained,
        total=total,
        sampled=total > len(kept),
        max_points=max_points,
        clusters=labels,
    )


def build_atlas(
    memory: SemanticMemory | Any,
    *,
    max_points: int = DEFAULT_MAX_POINTS,
    clusters: int | None = None,
    iterations: int = 10,
    seed: int = 0,
) -> Atlas | None:
    """The atlas of a memory's namespace (active memories only), or ``None`` if it is empty.

    ``memory`` is a :class:`~sem_mem.SemanticMemory` (anything with ``backend`` and
    ``namespace``). Vectors are streamed from the store in batches; at most
    ``max_points`` are held at once.
    """
    stream = (
        AtlasItem(
            id=stored.memory.id,
            text=stored.memory.text,
            source=stored.memory.source,
            created_at=stored.memory.created_at.timestamp(),
            vector=stored.embedding,
        )
        for stored in memory.backend.iter_memories(memory.namespace, include_superseded=False)
    )
    return build_atlas_from_items(
        stream, max_points=max_points, clusters=clusters, iterations=iterations, seed=seed
    )
