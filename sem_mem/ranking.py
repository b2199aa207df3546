"""How one query's results are ranked: the full L2 store decides, L1 only serves.

``rank`` asks the backend for vector and/or full-text candidates (``mode``), fuses them
(:func:`_hybrid`: the measured recipe of :class:`~sem_mem.retrieval.FusionConfig`) and
walks down the fused list until ``limit`` results pass the threshold. These are module
functions over an explicit backend, namespace and fusion config, so they hold no state:
``SemanticMemory`` owns the result cache, L1 and hit counts around them, and reads its
``fusion`` on every call (the recall-quality bench swaps recipes by assigning it).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from .backends.base import MemoryFilter, StorageBackend, StoredMemory, ThreadPlace
from .dates import query_windows
from .retrieval import (
    FusionConfig,
    boost,
    fuse_candidates,
    merge_max,
    named_speakers,
    reciprocal_rank_fusion,
    spread_to_neighbours,
    thread_neighbours,
)
from .types import Memory

__all__ = [
    "RecallMode",
    "adjacent_turns",
    "filter_key",
    "fuse_rankings",
    "rank",
    "rerank_text",
]

RecallMode = Literal["hybrid", "vector", "lexical"]


def rank(
    backend: StorageBackend,
    namespace: str,
    fusion: FusionConfig,
    query: str,
    vector: np.ndarray,
    mode: RecallMode,
    limit: int,
    pool: int,
    threshold: float | None,
    fetched: dict[str, StoredMemory],
    where: MemoryFilter,
) -> list[tuple[str, float, float]]:
    """(id, score, similarity) of the winners, decided by the full L2 store.

    Records read from the store on the way are left in ``fetched`` for hydration.
    """
    # (filters are passed only when set, so a backend without them fails loudly)
    extra: dict[str, Any] = {} if where.empty else {"filters": where}
    vector_hits: list[tuple[str, float]] = []
    if mode in ("hybrid", "vector"):
        # pure vector recall uses only the best ``limit`` (similarity order is the
        # ranking, so a threshold cannot reach further down): ask for no more
        wanted = limit if mode == "vector" else pool
        vector_hits, rows = backend.vector_search_stored(
            namespace, vector, wanted, ef=max(pool, 64), rows=limit, **extra
        )
        fetched.update(rows)
    lexical_hits: list[tuple[str, float]] = []
    similarity = dict(vector_hits)
    if mode in ("hybrid", "lexical"):
        lexical_hits, rows = backend.lexical_search_stored(
            namespace, query, pool, rows=limit, **extra
        )
        for memory_id, stored in rows.items():
            fetched.setdefault(memory_id, stored)
            if memory_id not in similarity:
                similarity[memory_id] = float(np.dot(stored.embedding, vector))
    if mode == "vector":
        fused = vector_hits
    elif mode == "lexical":
        top = lexical_hits[0][1] if lexical_hits else 1.0
        fused = [(i, s / top if top > 0 else 0.0) for i, s in lexical_hits]
    else:
        fused = _hybrid(
            backend, namespace, fusion, query, vector, vector_hits, lexical_hits, where, similarity
        )
    # Lexical-only candidates need their cosine similarity from the stored vectors;
    # fetch them a window at a time, only as far down the list as the results reach.
    ranked: list[tuple[str, float, float]] = []
    position = 0
    while position < len(fused) and len(ranked) < limit:
        window = fused[position : position + max(limit, 8)]
        position += len(window)
        missing = [i for i, _ in window if i not in similarity]
        if missing:
            for memory_id, stored in backend.get_many(namespace, missing).items():
                similarity[memory_id] = float(np.dot(stored.embedding, vector))
                fetched[memory_id] = stored
        for memory_id, score in window:
            sim = similarity.get(memory_id)
            if sim is None or (threshold is not None and sim < threshold):
                continue
            ranked.append((memory_id, float(score), sim))
            if len(ranked) == limit:
                break
    return ranked


def _hybrid(
    backend: StorageBackend,
    namespace: str,
    config: FusionConfig,
    query: str,
    vector: np.ndarray,
    vector_hits: list[tuple[str, float]],
    lexical_hits: list[tuple[str, float]],
    where: MemoryFilter,
    similarity: dict[str, float],
) -> list[tuple[str, float]]:
    """Hybrid ranking (see :class:`FusionConfig` and ``bench/results/recall_quality.md``):
    convex fusion of the two retrievers; for each absolute date the query names, a
    search of that time window, fused the same way, and a bonus for what happened in
    it; scores spread to thread neighbours; the turns of a speaker the query names
    lifted."""
    plain = config.but(neighbour_weight=0.0)
    fused = fuse_candidates(vector_hits, lexical_hits, plain)
    windows = query_windows(query) if config.date_weight or config.date_candidates else []
    # what was said in the days after a date may be about it ("yesterday", "last week")
    lookback = config.date_lookback_days * 86_400.0
    if windows and config.date_candidates:
        found = [fused]
        for start, end in windows[:4]:
            inside = _narrow(where, start, end + lookback)
            if inside is None:
                continue
            k = config.date_candidates
            sub_vector = backend.vector_search(namespace, vector, k, ef=max(k, 64), filters=inside)
            sub_lexical = backend.lexical_search(namespace, query, k, filters=inside)
            similarity.update(sub_vector)
            found.append(fuse_candidates(sub_vector, sub_lexical, plain))
        fused = merge_max(*found)
    needs_places = windows or config.uses_neighbours or config.speaker_weight
    if not needs_places or not fused:
        return fused
    extra: dict[str, Any] = {} if where.empty else {"filters": where}
    # when and by whom for every candidate; thread neighbourhoods only around the
    # strongest (a weak candidate lends its neighbours next to nothing)
    places = backend.thread_places(namespace, [i for i, _ in fused], 0)
    if config.uses_neighbours:
        seeds = [i for i, _ in fused[: config.neighbour_seeds]]
        reach = max(config.neighbour_window, config.neighbour_span)
        places.update(backend.thread_places(namespace, seeds, reach, **extra))
    if windows and config.date_weight:
        bonus = {}
        for i, p in places.items():
            if any(a <= p.timestamp < b for a, b in windows):
                bonus[i] = config.date_weight
            elif any(b <= p.timestamp < b + lookback for _, b in windows):
                bonus[i] = config.date_weight / 2
        fused = boost(fused, bonus, add=True)
    if config.uses_neighbours:
        neighbours = thread_neighbours(
            {
                i: (p.thread_id, p.position, p.speaker)
                for i, p in places.items()
                if p.thread_id and p.position is not None
            },
            config.neighbour_window,
            config.neighbour_span,
            of=[i for i, _ in fused],  # only candidates lend their score
        )
        fused = spread_to_neighbours(fused, neighbours, config.neighbour_weight)
    if config.speaker_weight:
        speakers = {p.speaker for p in places.values() if p.speaker}
        named = named_speakers(query, speakers)
        # one, or some but not all: naming both people of a two-person chat singles no
        # one out, naming two of a group chat's five does
        if len(named) == 1 or 1 < len(named) < len(speakers):
            lift = 1.0 + config.speaker_weight
            fused = boost(fused, {i: lift for i, p in places.items() if p.speaker in named})
    # back to [0, 1]: divide by the best score a memory could reach
    top = (1.0 + (config.date_weight if windows else 0.0)) * (1.0 + config.speaker_weight)
    return [(i, score / top) for i, score in fused]


def adjacent_turns(
    places: dict[str, ThreadPlace], ids: Sequence[str], window: int
) -> dict[str, tuple[str | None, str | None]]:
    """id -> the ids of the turns just before and just after it in its thread, at most
    ``window`` places away, among ``places`` (None where there is none)."""
    by_thread: dict[str, list[tuple[int, str]]] = {}
    for memory_id, place in places.items():
        if place.thread_id and place.position is not None:
            by_thread.setdefault(place.thread_id, []).append((place.position, memory_id))
    out: dict[str, tuple[str | None, str | None]] = {}
    for memory_id in ids:
        found = places.get(memory_id)
        if found is None or not found.thread_id or found.position is None:
            continue
        here = found.position
        turns = by_thread[found.thread_id]
        before = max((p for p in turns if here - window <= p[0] < here), default=None)
        after = min((p for p in turns if here < p[0] <= here + window), default=None)
        out[memory_id] = (before[1] if before else None, after[1] if after else None)
    return out


#: how much of each turn around a candidate the reranker reads (the end of the one
#: before, the start of the one after). 120 against 300 on LoCoMo's tuning half: R@5 /
#: R@10 0.800 / 0.855 against 0.789 / 0.855 (checking 0.758 / 0.807 against 0.757 /
#: 0.813), with a fifth less model time (305 against 380 ms for 25 candidates).
RERANK_CONTEXT_CHARS = 120


def rerank_text(memory: Memory, before: Memory | None, after: Memory | None) -> str:
    """What the reranker reads of a candidate: ``"Speaker: text"`` (as conversation
    turns are stored, so a question naming a speaker can match), between the end of the
    turn before it and the start of the turn after it in its thread when those are given.

    ``Tiers.reranked`` scores each candidate both ways, alone and in context, and takes
    the mean. A reply ("Yes, last Saturday!") means something only after its question;
    but read only in context, neighbours read much the same text, and a turn that merely
    repeats the question's words lifts the turns around it too. R@5 / R@10 with the
    reranker on LoCoMo's tuning half (checking half): the turn alone 0.767 / 0.833
    (0.728 / 0.800); in context only 0.795 / 0.860 (0.751 / 0.817); the mean 0.789 /
    0.855 (0.757 / 0.813). On nine chats built so that another thread repeats the
    question's words next to a turn that says nothing (``bench/rerank_chats.py``), the
    answer came first in 4 alone, 1 in context only, 4 with the mean (fused: 1): the
    mean keeps most of both, for twice the model runs.
    """
    parts = []
    if before is not None:
        text = _with_speaker(before)
        if len(text) > RERANK_CONTEXT_CHARS:  # its end, from a word's start if there is one
            cut = text[-RERANK_CONTEXT_CHARS:]
            text = cut.partition(" ")[2] or cut
        parts.append(text)
    parts.append(_with_speaker(memory))
    if after is not None:
        text = _with_speaker(after)
        if len(text) > RERANK_CONTEXT_CHARS:  # its start, to a word's end if there is one
            cut = text[:RERANK_CONTEXT_CHARS]
            text = cut.rpartition(" ")[0] or cut
        parts.append(text)
    return " ".join(p for p in parts if p)


def _with_speaker(memory: Memory) -> str:
    said = memory.text
    if memory.speaker and not said.startswith(f"{memory.speaker}:"):
        said = f"{memory.speaker}: {said}"
    return said


def fuse_rankings(
    rankings: list[list[tuple[str, float, float]]], limit: int
) -> list[tuple[str, float, float]]:
    """One ranking from the rankings of a query and its rephrasings: reciprocal-rank
    fusion, each memory keeping its best similarity."""
    if len(rankings) == 1:
        return rankings[0]
    best: dict[str, float] = {}
    for ranking in rankings:
        for memory_id, _, sim in ranking:
            best[memory_id] = max(sim, best.get(memory_id, -1.0))
    fused = reciprocal_rank_fusion([[i for i, _, _ in r] for r in rankings])
    return [(i, score, best[i]) for i, score in fused[:limit]]


def _narrow(where: MemoryFilter, start: float, end: float) -> MemoryFilter | None:
    """``where`` restricted to ``[start, end)``; None if nothing can match both."""
    since = start if where.since is None else max(start, where.since)
    until = end if where.until is None else min(end, where.until)
    if since >= until:
        return None
    return MemoryFilter(where.source, since, until, where.metadata, where.thread_id)


def filter_key(where: MemoryFilter) -> tuple[Any, ...]:
    meta = tuple(sorted((k, repr(v)) for k, v in (where.metadata or {}).items()))
    return (where.source, where.since, where.until, meta, where.thread_id)
