"""What a ``SemanticMemory`` holds in RAM in front of its store, and when it may serve it.

:class:`Tiers` owns L1 (the SmartCache of records), the result cache (rankings of
recent queries), the query-vector cache, the hit counts and query embeddings waiting
to be written, and the generation counter that keeps all of it from serving what a
write has changed. The L1 rule of :mod:`sem_mem.core` lives here: the full L2 store
ranks (:func:`sem_mem.ranking.rank`), L1 only serves the records it ranked.

It shares the memory's lock (every field is read and changed under it) and is told the
current embedder and fusion config on each call: ``SemanticMemory.reembed`` swaps the
embedder and the recall-quality bench assigns ``memory.fusion``.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Sequence
from typing import Any

import numpy as np

from .backends.base import MemoryFilter, StorageBackend, StoredMemory
from .cache import SmartCache
from .embedders.base import Embedder
from .hashing import text_hash
from .ranking import RecallMode, adjacent_turns, filter_key, fuse_rankings, rank, rerank_text
from .rerankers.base import RERANK_DEPTH, Reranker, apply_reranker
from .retrieval import FusionConfig
from .types import Recollection

__all__ = ["PROTECTED_HITS", "Tiers"]

#: the seed's "6+ hits" rule: memories recalled this often are warmed into protected L1
PROTECTED_HITS = 6

Ranking = list[tuple[str, float, float]]

#: how the reranker reads each candidate: "alone", and "context" (between the turns
#: around it in its thread); its score is the mean over these. Both, by the LoCoMo
#: tuning half and bench/rerank_chats.py (see ranking.rerank_text); the bench swaps it.
RERANK_READINGS: tuple[str, ...] = ("alone", "context")


class Tiers:
    """L1, the result and query-vector caches and pending hit counts of one memory."""

    def __init__(
        self, backend: StorageBackend, namespace: str, lock: threading.RLock, cache_size: int
    ) -> None:
        self.backend = backend
        self.namespace = namespace
        self.lock = lock
        self.cache: SmartCache[StoredMemory] = SmartCache(cache_size)
        self.results: OrderedDict[tuple[Any, ...], Ranking] = OrderedDict()
        # the reranker's scores of a query's candidates (ids kept, scores), dropped with
        # the rankings: a repeated reranked recall does not run the model again
        self.rerank_scores: OrderedDict[tuple[Any, ...], tuple[tuple[str, ...], np.ndarray]]
        self.rerank_scores = OrderedDict()
        # Bumped (under the lock) by every write and every change seen from another
        # process. A recall notes it before reading the store and puts what it read
        # into L1 or the result cache only if it is unchanged: a record read before a
        # write can never be admitted after that write has returned.
        self.generation = 0
        self.query_vectors: OrderedDict[str, np.ndarray] = OrderedDict()
        self.pending_query_vectors: dict[str, np.ndarray] = {}
        self.pending_hits: Counter[str] = Counter()
        self.last_hit_flush = time.monotonic()
        #: the store's change sequence this memory has seen (set when the memory opens)
        self.seen_seq = 0

    def changed(self, touched: Sequence[str]) -> None:
        """A write of this process: drop ``touched`` from L1 and every cached ranking."""
        with self.lock:
            self.generation += 1
            self.cache.discard_many(touched)
            self.results.clear()
            self.rerank_scores.clear()

    def sync(self) -> None:
        """Pick up commits from other processes and drop what they changed from L1."""
        seq = self.backend.refresh()
        with self.lock:
            if seq == self.seen_seq:
                return
            changed = self.backend.changed_ids(self.namespace, self.seen_seq)
            self.generation += 1
            self.cache.discard_many(changed)
            self.results.clear()
            self.rerank_scores.clear()
            self.seen_seq = seq

    def reset(self) -> None:
        """Forget everything held in RAM (after a re-embed: all of it is of the old space)."""
        with self.lock:
            self.generation += 1
            self.cache.clear()
            self.results.clear()
            self.rerank_scores.clear()
            self.query_vectors.clear()
            self.pending_query_vectors.clear()
            self.seen_seq = self.backend.refresh()

    # ------------------------------------------------------------------ ranking

    def query_vector(self, query: str, embedder: Embedder) -> np.ndarray:
        key = text_hash(query)
        with self.lock:
            vec = self.query_vectors.get(key)
            if vec is not None:
                self.query_vectors.move_to_end(key)
                return vec
        vec = self.backend.cached_embeddings(self.namespace, embedder.model_id, [key]).get(key)
        if vec is None:
            # concurrent recalls share one embedding run (embedders/batcher.py)
            vec = embedder.embed_query(query)
            with self.lock:
                self.pending_query_vectors[key] = vec
        with self.lock:
            self.query_vectors[key] = vec
            while len(self.query_vectors) > 4096:
                self.query_vectors.popitem(last=False)
        return vec

    def ranking(
        self,
        queries: Sequence[str],
        mode: RecallMode,
        limit: int,
        pool: int,
        threshold: float | None,
        where: MemoryFilter,
        generation: int,
        embedder: Embedder,
        fusion: FusionConfig,
    ) -> tuple[Ranking, dict[str, StoredMemory]]:
        """The ranking of a recall's ``queries`` (several: fused by their ranks), and the
        records read from the store on the way, for :meth:`hydrate`."""
        fetched: dict[str, StoredMemory] = {}
        rankings = [
            self._ranked(
                q,
                mode,
                limit,
                pool,
                threshold,
                fetched,
                where,
                generation,
                embedder=embedder,
                fusion=fusion,
            )
            for q in queries
        ]
        return fuse_rankings(rankings, limit), fetched

    def _ranked(
        self,
        query: str,
        mode: RecallMode,
        limit: int,
        pool: int,
        threshold: float | None,
        fetched: dict[str, StoredMemory],
        where: MemoryFilter,
        generation: int,
        *,
        embedder: Embedder,
        fusion: FusionConfig,
    ) -> Ranking:
        """The ranking for one query, from the result cache while the store is unchanged."""
        key = (text_hash(query), limit, threshold, mode, pool, filter_key(where))
        with self.lock:
            ranked = self.results.get(key)
            if ranked is not None:
                self.results.move_to_end(key)
                return ranked
        vector = self.query_vector(query, embedder)
        ranked = rank(
            self.backend,
            self.namespace,
            fusion,
            query,
            vector,
            mode,
            limit,
            pool,
            threshold,
            fetched,
            where,
        )
        with self.lock:
            if generation == self.generation:  # else a write came in: do not cache
                self.results[key] = ranked
                while len(self.results) > 256:
                    self.results.popitem(last=False)
        return ranked

    def reranked(
        self,
        reranker: Reranker,
        query: str,
        ranked: Ranking,
        fetched: dict[str, StoredMemory],
        where: MemoryFilter,
        generation: int,
    ) -> tuple[Ranking, int]:
        """``ranked`` with its best ``RERANK_DEPTH`` reordered by ``reranker`` (see
        :func:`~sem_mem.rerankers.base.apply_reranker`), and how many it read. Each
        candidate is read as ``RERANK_READINGS`` say, alone and between the turns around
        it in its thread (:func:`~sem_mem.ranking.rerank_text`), and the mean of its
        scores counts; records come from L1 where they are."""
        head = ranked[:RERANK_DEPTH]
        if len(head) < 2:
            return ranked, 0
        ids = [i for i, _, _ in head]
        key = (reranker.model_id, text_hash(query), tuple(ids), filter_key(where))
        with self.lock:
            cached = self.rerank_scores.get(key)
        if cached is None:
            extra: dict[str, Any] = {} if where.empty else {"filters": where}
            reach = 2  # places each way a neighbour may be (past deleted or filtered turns)
            places = self.backend.thread_places(self.namespace, ids, reach, **extra)
            around = adjacent_turns(places, ids, reach)
            context = [i for pair in around.values() for i in pair if i is not None]
            records = self._records([*ids, *context], fetched)
            kept = tuple(i for i in ids if i in records)  # (one forgotten meanwhile: dropped)
            readings = []  # per candidate: its texts (a turn with no neighbours, one)
            for memory_id in kept:
                before, after = (
                    records.get(i) if i is not None else None
                    for i in around.get(memory_id, (None, None))
                )
                memory = records[memory_id].memory
                alone = rerank_text(memory, None, None)
                window = rerank_text(
                    memory, before.memory if before else None, after.memory if after else None
                )
                readings.append({alone if how == "alone" else window for how in RERANK_READINGS})
            documents = list(dict.fromkeys(d for texts in readings for d in texts))
            scored = dict(zip(documents, reranker.score(query, documents), strict=True))
            means = np.array([np.mean([scored[d] for d in texts]) for texts in readings])
            cached = (kept, means)
            with self.lock:
                if generation == self.generation:
                    self.rerank_scores[key] = cached
                    while len(self.rerank_scores) > 256:
                        self.rerank_scores.popitem(last=False)
        kept, scores = cached
        present = set(kept)
        head = [r for r in head if r[0] in present]
        return apply_reranker(head + ranked[RERANK_DEPTH:], scores), len(kept)

    def _records(
        self, ids: Sequence[str], fetched: dict[str, StoredMemory]
    ) -> dict[str, StoredMemory]:
        """Records of ``ids`` from L1 (not touched), those already read, then the store;
        what is read from the store is left in ``fetched`` for hydration."""
        out: dict[str, StoredMemory] = {}
        missing = []
        for memory_id in dict.fromkeys(ids):
            found = self.cache.peek(memory_id) or fetched.get(memory_id)
            if found is None:
                missing.append(memory_id)
            else:
                out[memory_id] = found
        if missing:
            read = self.backend.get_many(self.namespace, missing)
            fetched.update(read)
            out.update(read)
        return out

    # ------------------------------------------------------------------ serving

    def hydrate(
        self,
        ranked: Ranking,
        fetched: dict[str, StoredMemory],
        generation: int,
        *,
        touch: bool = True,
    ) -> list[Recollection]:
        records: dict[str, tuple[StoredMemory, str]] = {}
        misses = []
        for memory_id, _, _ in ranked:
            hot = self.cache.get(memory_id) if touch else self.cache.peek(memory_id)
            if hot is not None:
                records[memory_id] = (hot, "L1")
            elif memory_id in fetched:
                records[memory_id] = (fetched[memory_id], "L2")
            else:
                misses.append(memory_id)
        if misses:
            for memory_id, stored in self.backend.get_many(self.namespace, misses).items():
                records[memory_id] = (stored, "L2")
        if touch:
            self._admit(ranked, records, generation)
        out = []
        for memory_id, score, sim in ranked:
            found = records.get(memory_id)
            if found is None:  # forgotten between ranking and hydration
                continue
            stored, tier = found
            m = stored.memory
            out.append(
                Recollection(
                    id=m.id,
                    text=m.text,
                    score=score,
                    similarity=sim,
                    metadata=m.metadata,
                    tier=tier,  # type: ignore[arg-type]
                    created_at=m.created_at,
                    source=m.source,
                    timestamp=m.timestamp,
                    thread_id=m.thread_id,
                    position=m.position,
                    speaker=m.speaker,
                )
            )
        return out

    def _admit(
        self,
        ranked: Ranking,
        records: dict[str, tuple[StoredMemory, str]],
        generation: int,
    ) -> None:
        """Put recalled records into L1, unless a write came in since they were read."""
        with self.lock:
            if generation != self.generation:
                return
            for memory_id, _, _ in ranked:
                found = records.get(memory_id)
                if found is not None:
                    self.cache.touch(memory_id, found[0])

    # ------------------------------------------------------------------ hits and L1

    def count_hits(self, ids: Sequence[str]) -> bool:
        """Count recall hits; True when the pending ones are due to be flushed (the
        caller holds the lock and flushes)."""
        with self.lock:
            self.pending_hits.update(ids)
            # a flush is a write transaction: batch them (hit counts are statistics; a
            # crash loses at most the last 30 s of them, never a memory)
            due = time.monotonic() - self.last_hit_flush > 30.0
            return len(self.pending_hits) >= 512 or due

    def flush(self, model_id: str, *, wait: bool = True) -> None:
        """Persist batched hit counts and new query embeddings (one transaction each)."""
        hits, self.pending_hits = self.pending_hits, Counter()
        vectors, self.pending_query_vectors = self.pending_query_vectors, {}
        self.last_hit_flush = time.monotonic()
        if hits:
            self.backend.record_hits(self.namespace, dict(hits), time.time(), wait=wait)
        if vectors:
            self.backend.cache_embeddings(self.namespace, model_id, vectors, wait=wait)

    def warm(self) -> None:
        """Fill L1 from the most recalled memories (protected from PROTECTED_HITS on)."""
        hot = self.backend.most_hit(self.namespace, self.cache.capacity)
        for stored in reversed(hot):  # least hit first, so the most hit end up most recent
            self.cache.admit(
                stored.memory.id, stored, protected=stored.memory.hit_count >= PROTECTED_HITS
            )

    def state(self) -> dict[str, list[dict[str, Any]]]:
        """The L1 tiers, most recently used first: ``{"protected": [...], "probation": [...]}``."""
        snap = self.cache.snapshot()
        return {
            tier: [
                {"id": key, "text": value.memory.text, "hit_count": value.memory.hit_count}
                for key, value in entries
            ]
            for tier, entries in snap.items()
        }
