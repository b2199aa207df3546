"""Candidate fusion for recall: several ranked lists in, one ranking out. Pure functions."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["RRF_K", "reciprocal_rank_fusion"]

RRF_K = 60


def reciprocal_rank_fusion(
    rankings: Sequence[Sequence[str]],
    weights: Sequence[float] | None = None,
    *,
    k: int = RRF_K,
) -> list[tuple[str, float]]:
    """Fuse ranked id lists with reciprocal-rank fusion (Cormack et al., 2009).

    ``score(d) = sum_i w_i / (k + rank_i(d))`` with 1-based ranks, normalised by the
    best score a document could get (first in every list), so scores lie in (0, 1].
    Ties keep the order of first appearance, which makes the result deterministic.
    """
    if weights is None:
        weights = [1.0] * len(rankings)
    if len(weights) != len(rankings):
        raise ValueError("one weight per ranking is required")
    best = sum(weights) / (k + 1)
    scores: dict[str, float] = {}
    for ranking, weight in zip(rankings, weights, strict=True):
        for rank, item in enumerate(ranking, start=1):
            scores[item] = scores.get(item, 0.0) + weight / (k + rank)
    ordered = sorted(scores.items(), key=lambda kv: -kv[1])  # stable: first seen wins ties
    return [(item, score / best) for item, score in ordered] if best > 0 else ordered
