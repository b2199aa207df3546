"""Candidate fusion for recall: several ranked lists in, one ranking out. Pure functions.

Hybrid recall gets ``(id, cosine)`` hits from the vector index and ``(id, bm25)`` hits
from full-text search. :func:`fuse_candidates` turns them into one ranking following a
:class:`FusionConfig`: a convex combination of normalised scores (default), or
reciprocal-rank fusion, optionally followed by :func:`spread_to_neighbours`, which lets
memories stored next to a strong hit (the turns around it in a conversation, the chunks
around it in a document) borrow part of its score.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

__all__ = [
    "RRF_K",
    "FusionConfig",
    "boost",
    "convex_fusion",
    "fuse_candidates",
    "merge_max",
    "named_speakers",
    "neighbours_within",
    "reciprocal_rank_fusion",
    "spread_to_neighbours",
    "thread_neighbours",
]

RRF_K = 60

FusionMethod = Literal["rrf", "weighted_rrf", "convex"]


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


Normalisation = Literal["minmax", "max"]


def _normalise(hits: Sequence[tuple[str, float]], how: Normalisation) -> dict[str, float]:
    """Scores mapped to [0, 1]: ``"minmax"`` (best 1, worst 0) or ``"max"`` (ratio to the
    best, for scores that are 0 for no match, such as bm25; falls back to min-max when a
    score is negative). A list whose scores are all equal maps to 1."""
    if not hits:
        return {}
    values = [s for _, s in hits]
    lo, hi = min(values), max(values)
    if how == "max" and lo >= 0 and hi > 0:
        return {i: s / hi for i, s in hits}
    span = hi - lo
    return {i: (s - lo) / span if span > 0 else 1.0 for i, s in hits}


def convex_fusion(
    scored: Sequence[Sequence[tuple[str, float]]],
    weights: Sequence[float] | None = None,
    *,
    normalise: Sequence[Normalisation] | None = None,
) -> list[tuple[str, float]]:
    """Fuse scored lists by a weighted sum of normalised scores.

    Each list's scores are mapped to [0, 1] as ``normalise`` says for it (default
    ``"minmax"``: its best hit 1, its worst 0; ``"max"``: the ratio to its best hit);
    a document missing from a list gets 0 there. The result is divided by the sum of
    weights, so fused scores lie in [0, 1]. Ties keep the order of first appearance.
    Unlike rank fusion this keeps score gaps: a document far behind the best in one
    list gains little from it.
    """
    if weights is None:
        weights = [1.0] * len(scored)
    if normalise is None:
        normalise = ["minmax"] * len(scored)
    if len(weights) != len(scored) or len(normalise) != len(scored):
        raise ValueError("one weight and one normalisation per list are required")
    total = sum(weights)
    scores: dict[str, float] = {}
    for hits, weight, how in zip(scored, weights, normalise, strict=True):
        for item, value in _normalise(hits, how).items():
            scores[item] = scores.get(item, 0.0) + weight * value
    ordered = sorted(scores.items(), key=lambda kv: -kv[1])
    return [(i, s / total) for i, s in ordered] if total > 0 else ordered


def spread_to_neighbours(
    fused: Sequence[tuple[str, float]],
    neighbours: Mapping[str, Sequence[str]],
    weight: float,
) -> list[tuple[str, float]]:
    """Let each document borrow ``weight`` times its best neighbour's score.

    ``score'(d) = score(d) + weight * max(score(n) for n in neighbours[d])``: context
    around a strong hit (the turn before or after it in a conversation, the next chunk
    of a document) rises with it, and a neighbour that was not a candidate at all can
    enter the ranking. Scores are divided by ``1 + weight`` to stay in the input range.
    """
    if weight <= 0 or not neighbours:
        return list(fused)
    base = dict(fused)
    best_neighbour: dict[str, float] = {}
    for item, score in fused:
        for other in neighbours.get(item, ()):
            if score > best_neighbour.get(other, 0.0):
                best_neighbour[other] = score
    order = {item: n for n, item in enumerate(base)}
    for item in best_neighbour:
        order.setdefault(item, len(order))
    scores = {
        item: (base.get(item, 0.0) + weight * best_neighbour.get(item, 0.0)) / (1 + weight)
        for item in order
    }
    return sorted(scores.items(), key=lambda kv: (-kv[1], order[kv[0]]))


def thread_neighbours(
    places: Mapping[str, tuple[str, int, str | None]],
    window: int,
    span: int | None = None,
    of: Iterable[str] | None = None,
) -> dict[str, list[str]]:
    """For each id, the other ids of the same thread at most ``window`` speaker turns
    and ``span`` positions (default: ``window``) away, nearest first (ties: the earlier
    one first). ``places`` maps an id to its ``(thread_id, position, speaker)``.

    A run of messages by one speaker is one turn, so a chat where people send three
    short messages where a transcript has one turn gets the same context; a memory
    with no speaker (a document chunk) is a turn of its own, and so is a place not in
    ``places`` (a forgotten or filtered-out turn): gaps leave fewer neighbours.
    ``of``: only these ids' neighbours (default: every id's).
    """
    if window <= 0:
        return {}
    span = window if span is None else max(span, window)
    at = {(thread, pos): (item, speaker) for item, (thread, pos, speaker) in places.items()}
    out: dict[str, list[str]] = {}
    for item in places if of is None else (i for i in of if i in places):
        thread, pos, speaker = places[item]
        found: list[tuple[int, str]] = []
        for step in (-1, 1):
            turns, last = 0, speaker
            for distance in range(1, span + 1):
                other = at.get((thread, pos + step * distance))
                said_by = other[1] if other is not None else None
                if said_by is None or said_by != last:
                    turns, last = turns + 1, said_by
                if turns > window:
                    break
                if other is not None:
                    found.append((distance, other[0]))
        if found:
            found.sort(key=lambda near: near[0])  # stable: the earlier first on ties
            out[item] = [other for _, other in found]
    return out


def neighbours_within(positions: Mapping[str, int], window: int) -> dict[str, list[str]]:
    """For each id, the other ids whose position is at most ``window`` away, nearest first.

    ``positions`` is where each memory sits in its store's insertion order (for example its
    row label); gaps (deleted memories, other namespaces) simply leave fewer neighbours.
    Ties in distance list the earlier memory first, so the result is deterministic.
    """
    return thread_neighbours({item: ("", pos, None) for item, pos in positions.items()}, window)


@dataclass(frozen=True)
class FusionConfig:
    """How hybrid recall turns vector and full-text candidates into one ranking.

    ``method``: ``"convex"`` (the default: ``(1 - lexical_weight) * cosine' +
    lexical_weight * bm25'``, cosine min-max normalised over the candidates and bm25 as a
    ratio to the best hit, see :func:`convex_fusion`),
    ``"rrf"`` (plain reciprocal-rank fusion with constant ``k``) or ``"weighted_rrf"``
    (RRF with ``lexical_weight`` on the full-text list and 1 on the vector list).
    ``neighbour_weight`` > 0 spreads scores to memories stored within
    ``neighbour_window`` speaker turns of a candidate (:func:`spread_to_neighbours`)
    in the same thread (the turns of a conversation, the chunks of a document).

    The defaults were chosen on three LoCoMo conversations and checked on two held-out
    ones (``bench/recall_quality.py --ablation``); bm25 carries more of the signal than
    MiniLM cosine on conversational memories, hence the lexical weight above one half.
    """

    method: FusionMethod = "convex"
    k: int = RRF_K
    lexical_weight: float = 0.6
    neighbour_weight: float = 0.5
    #: in speaker turns (a run of messages by one speaker is one turn)
    neighbour_window: int = 2
    #: ... and at most this many places away (so a long monologue is not all context).
    #: Turns rather than places: LoCoMo with each sentence sent as its own message
    #: (3.2 messages per turn) R@10 0.747 / 0.699 -> 0.774 / 0.724 (tuning / checking);
    #: the turns as they are: unchanged (0.831 / 0.786). A span of 8: 0.773 / 0.730.
    neighbour_span: int = 6
    #: how many of the best candidates lend score to their thread neighbours
    neighbour_seeds: int = 20
    #: a query that names one speaker of the candidate turns ("what did Caroline say
    #: about ..."), or some but not all of them, multiplies their turns by
    #: ``1 + speaker_weight``
    speaker_weight: float = 1.0
    #: a query that names an absolute date ("on 8 May, 2023", "in December 2023") also
    #: searches that window (``date_candidates`` per retriever) and adds ``date_weight``
    #: to memories that happened in it
    date_weight: float = 0.2
    date_candidates: int = 20
    #: ... and looks this many days past the window, where "yesterday" or "last week"
    #: may point into it; memories from those days get half the date bonus (LoCoMo
    #: temporal R@10 0.944 / 0.795 -> 0.956 / 0.803 on the tuning / checking halves)
    date_lookback_days: float = 7.0

    def __post_init__(self) -> None:
        if self.method not in ("rrf", "weighted_rrf", "convex"):
            raise ValueError(f"method must be rrf, weighted_rrf or convex, got {self.method!r}")
        if self.k < 0:
            raise ValueError(f"k must be >= 0, got {self.k}")
        if self.method == "convex" and not 0.0 <= self.lexical_weight <= 1.0:
            raise ValueError(f"convex lexical_weight must be in [0, 1], got {self.lexical_weight}")
        if (
            min(
                self.lexical_weight,
                self.neighbour_weight,
                self.neighbour_window,
                self.neighbour_span,
                self.speaker_weight,
                self.date_weight,
                self.date_candidates,
                self.date_lookback_days,
            )
            < 0
        ):
            raise ValueError(
                "weights, the neighbour window and span, date_candidates and "
                "date_lookback_days must be >= 0"
            )

    @classmethod
    def plain_rrf(cls) -> FusionConfig:
        """Reciprocal-rank fusion (k=60) with no neighbours: what recall did before."""
        return cls(
            method="rrf",
            k=RRF_K,
            lexical_weight=1.0,
            neighbour_weight=0.0,
            speaker_weight=0.0,
            date_weight=0.0,
            date_candidates=0,
        )

    @property
    def uses_neighbours(self) -> bool:
        return self.neighbour_weight > 0 and self.neighbour_window > 0

    def but(self, **changes: Any) -> FusionConfig:
        """A copy with some fields changed."""
        return replace(self, **changes)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def fuse_candidates(
    vector_hits: Sequence[tuple[str, float]],
    lexical_hits: Sequence[tuple[str, float]],
    config: FusionConfig | None = None,
    *,
    neighbours: Mapping[str, Sequence[str]] | None = None,
) -> list[tuple[str, float]]:
    """One ranking from ``(id, cosine)`` and ``(id, bm25)`` hits, best first.

    Both lists must be sorted best first (as the backends return them); higher scores
    are better in both. ``neighbours`` maps a candidate to the memories stored next to it
    (see :func:`neighbours_within`); it is used only when the config spreads scores.
    Scores of the result lie in [0, 1]. See :class:`FusionConfig` for the recipes.
    """
    config = config or FusionConfig()
    if config.method == "convex":
        w = config.lexical_weight
        fused = convex_fusion(
            [vector_hits, lexical_hits], [1.0 - w, w], normalise=["minmax", "max"]
        )
    else:
        weights = [1.0, config.lexical_weight if config.method == "weighted_rrf" else 1.0]
        fused = reciprocal_rank_fusion(
            [[i for i, _ in vector_hits], [i for i, _ in lexical_hits]], weights, k=config.k
        )
    if neighbours and config.uses_neighbours:
        fused = spread_to_neighbours(fused, neighbours, config.neighbour_weight)
    return fused


def named_speakers(query: str, speakers: Iterable[str]) -> set[str]:
    """The speakers whose name appears in ``query`` as a whole word (any case)."""
    lowered = query.lower()
    return {
        name
        for name in set(speakers)
        if name and re.search(r"(?<!\w)" + re.escape(name.lower()) + r"(?!\w)", lowered)
    }


def boost(
    fused: Sequence[tuple[str, float]], factors: Mapping[str, float], *, add: bool = False
) -> list[tuple[str, float]]:
    """Scores multiplied by (or, with ``add``, increased by) ``factors[id]`` where given,
    re-sorted best first; ties keep their order."""
    if not factors:
        return list(fused)
    if add:
        scored = [(i, s + factors.get(i, 0.0)) for i, s in fused]
    else:
        scored = [(i, s * factors.get(i, 1.0)) for i, s in fused]
    order = {item: n for n, (item, _) in enumerate(fused)}
    return sorted(scored, key=lambda kv: (-kv[1], order[kv[0]]))


def merge_max(*rankings: Sequence[tuple[str, float]]) -> list[tuple[str, float]]:
    """Several scored lists as one: each id keeps its best score; best first."""
    best: dict[str, float] = {}
    for ranking in rankings:
        for item, score in ranking:
            if score > best.get(item, float("-inf")):
                best[item] = score
    return sorted(best.items(), key=lambda kv: -kv[1])
