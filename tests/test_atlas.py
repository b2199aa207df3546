"""Memory Atlas: PCA on synthetic clusters, deterministic sampling above the cap, queries."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from sem_mem import SemanticMemory
from sem_mem.atlas import AtlasItem, build_atlas, build_atlas_from_items, kmeans, pca_2d


def _blobs(seed: int = 0, per: int = 60, dim: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """Three tight clusters far apart along two directions, plus small noise elsewhere."""
    rng = np.random.default_rng(seed)
    centres = np.zeros((3, dim))
    centres[1, 0] = 10.0
    centres[2, 1] = 6.0
    labels = np.repeat(np.arange(3), per)
    return centres[labels] + rng.normal(scale=0.3, size=(3 * per, dim)), labels


def _items(vectors: np.ndarray) -> list[AtlasItem]:
    return [
        AtlasItem(id=f"m{i}", text=f"memory {i}", source="manual", created_at=float(i), vector=v)
        for i, v in enumerate(vectors)
    ]


def test_pca_finds_the_two_directions_that_separate_the_clusters() -> None:
    x, labels = _blobs()
    xy, mean, components, explained = pca_2d(x)
    assert xy.shape == (len(x), 2)
    # the plane found is the one the clusters spread in (spanned by x0 and x1)
    assert (np.linalg.norm(components[:, :2], axis=1) > 0.99).all()
    assert explained[0] > explained[1] > 0.1
    assert sum(explained) > 0.9
    # the three clusters stay apart in 2D: every point is nearer its own centroid
    centroids = np.stack([xy[labels == c].mean(axis=0) for c in range(3)])
    nearest = np.linalg.norm(xy[:, None, :] - centroids[None], axis=2).argmin(axis=1)
    assert (nearest == labels).all()
    # same as numpy's SVD up to sign
    _, _, vt = np.linalg.svd(x - x.mean(axis=0), full_matrices=False)
    assert np.allclose(np.abs(components), np.abs(vt[:2]), atol=1e-6)
    assert np.allclose(mean, x.mean(axis=0))


def test_pca_with_fewer_points_than_dimensions_and_degenerate_inputs() -> None:
    x, _ = _blobs(per=3, dim=64)  # 9 points in 64 dimensions: the SVD path
    xy, _, components, explained = pca_2d(x)
    assert xy.shape == (9, 2)
    assert np.allclose(np.linalg.norm(components, axis=1), 1.0)
    assert sum(explained) > 0.8
    one, _, _, none = pca_2d(np.ones((1, 8)))
    assert one.shape == (1, 2) and none == (0.0, 0.0)
    same, _, _, _ = pca_2d(np.ones((5, 8)))
    assert np.allclose(same, 0.0)
    with pytest.raises(ValueError):
        pca_2d(np.zeros((0, 4)))


def test_kmeans_recovers_separated_clusters_deterministically() -> None:
    x, labels = _blobs(seed=1)
    found, centroids = kmeans(x, 3, iterations=10, seed=0)
    assert centroids.shape == (3, x.shape[1])
    # a perfect match up to relabelling
    for c in range(3):
        assert len(set(found[labels == c])) == 1
    assert len(set(found)) == 3
    again, _ = kmeans(x, 3, iterations=10, seed=0)
    assert (again == found).all()
    # k larger than the number of distinct points is capped, never an error
    few, _ = kmeans(np.ones((4, 3)), 10)
    assert set(few) == {0}


def test_sampling_above_the_cap_is_deterministic_and_stable() -> None:
    x, _ = _blobs(per=400)  # 1,200 memories
    items = _items(x)
    full = build_atlas_from_items(items, max_points=5_000)
    assert full is not None and not full.sampled and full.shown == full.total == 1200

    atlas = build_atlas_from_items(items, max_points=300)
    assert atlas is not None
    assert atlas.sampled and atlas.total == 1200 and atlas.shown == 300 == len(atlas.xy)
    # the same store gives the same picture, whatever order the memories arrive in
    again = build_atlas_from_items(list(reversed(items)), max_points=300)
    assert again is not None and set(again.ids) == set(atlas.ids)
    # adding 100 memories only swaps a few points: the sample is stable
    more = _items(np.vstack([x, x[:100]]))
    bigger = build_atlas_from_items(more, max_points=300)
    assert bigger is not None and bigger.total == 1300
    assert len(set(bigger.ids) & set(atlas.ids)) >= 250
    assert build_atlas_from_items([], max_points=10) is None


def test_query_projection_lands_next_to_its_cluster() -> None:
    x, labels = _blobs()
    atlas = build_atlas_from_items(_items(x), clusters=3)
    assert atlas is not None and atlas.clusters is not None
    query = x[labels == 1].mean(axis=0)
    qx, qy = atlas.project(query)
    own = atlas.xy[labels == 1].mean(axis=0)
    other = atlas.xy[labels == 0].mean(axis=0)
    assert np.hypot(qx - own[0], qy - own[1]) < 0.5 < np.hypot(qx - other[0], qy - other[1])
    # a memory's own vector projects exactly onto its point
    assert np.allclose(atlas.project(x[5]), atlas.position("m5"))
    # without a vector: the similarity-weighted centroid of the neighbours shown
    placed = atlas.place_by_neighbours([("m0", 0.9), ("m1", 0.9), ("absent", 1.0)])
    assert placed is not None
    assert np.allclose(placed, atlas.xy[:2].mean(axis=0))
    assert atlas.place_by_neighbours([("absent", 1.0)]) is None
    with pytest.raises(ValueError, match="dimensions"):
        atlas.project(np.zeros(3))


def test_build_atlas_reads_the_namespace_active_memories_only(
    make_memory: Callable[..., SemanticMemory],
) -> None:
    memory = make_memory()
    other = make_memory(namespace="other")
    ids = memory.remember_batch([f"cardiology fact number {i}" for i in range(20)])
    memory.remember_batch(["dogs bark", "cats purr"], source="pdf")
    other.remember("in another namespace")
    newer = memory.remember("cardiology fact number zero, corrected")
    memory.supersede(ids[0], newer)
    memory.forget(ids[1])
    atlas = build_atlas(memory, clusters=2)
    assert atlas is not None
    assert atlas.total == 21 == len(memory)
    assert ids[0] not in atlas.ids and ids[1] not in atlas.ids
    assert "in another namespace" not in atlas.texts
    assert sorted(set(atlas.sources)) == ["manual", "pdf"]
    assert atlas.mean.shape == (memory.embedder.dimensions,)
    assert build_atlas(make_memory(namespace="empty")) is None


@pytest.mark.slow  # a full 384-dimension eigendecomposition to compare with
def test_pca_on_embedding_sized_vectors_matches_a_full_eigendecomposition() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(600, 384)) * np.linspace(3.0, 0.1, 384)  # decaying spectrum
    _, _, components, explained = pca_2d(x)
    centred = x - x.mean(axis=0)
    values, vectors = np.linalg.eigh(centred.T @ centred / (len(x) - 1))
    top = vectors[:, np.argsort(values)[::-1][:2]].T
    assert np.allclose(np.abs(components @ top.T), np.eye(2), atol=1e-6)
    assert np.allclose(explained, np.sort(values)[::-1][:2] / values.sum(), rtol=1e-6)
