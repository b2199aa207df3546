"""The PostgreSQL backend's faster query paths, on a real server: what a user gets back.

Full text in a large namespace ranks the memories holding two of the query's words when
none holds them all (instead of every memory sharing one word); the threshold is lowered
here so that a small store takes that path. Searches return the rows of their best hits
in the same statement: the texts, hit counts and order must be those of a plain read.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from embedders import HashingEmbedder
from pg_server import cluster_or_skip

from sem_mem import SemanticMemory

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg_url() -> Iterator[str]:
    with cluster_or_skip().database() as url:
        yield url


def _memory(url: str, namespace: str, **options: int) -> SemanticMemory:
    from sem_mem.backends.postgres import PostgresBackend

    return SemanticMemory(
        backend=PostgresBackend(url, **options),
        namespace=namespace,
        embedder=HashingEmbedder(),
        cache_size=0,
    )


def _close(*memories: SemanticMemory) -> None:
    for memory in memories:
        memory.close()
        memory.backend.close()  # passed in: the caller's to close


def test_full_text_of_a_large_namespace_ranks_memories_with_two_of_the_words(
    pg_url: str,
) -> None:
    # no memory of "big" holds all three words: 60 hold two, 80 only one. Another
    # namespace holds all three in every memory, and must not show up.
    big = _memory(pg_url, "big", pairs_min_memories=0)
    other = _memory(pg_url, "other", pairs_min_memories=0)
    try:
        two = big.remember_batch([f"apple and banana smoothie number {i}" for i in range(60)])
        one = big.remember_batch([f"apple orchard visit number {i}" for i in range(80)])
        other.remember_batch([f"apple banana cherry tart number {i}" for i in range(100)])
        found = big.backend.lexical_search("big", "apple banana cherry", 50)
        assert len(found) == 50
        assert {i for i, _ in found} <= set(two)
        hits = big.recall("apple banana cherry", limit=10, mode="lexical")
        assert len(hits) == 10
        assert all("apple" in h.text and "banana" in h.text for h in hits)
        # with fewer than k memories holding two words, those holding one come next
        few = big.backend.lexical_search("big", "banana orchard cherry", 50)
        assert len(few) == 50  # none holds all three or two: 50 of the 140 holding one
        assert {i for i, _ in few} <= set(two) | set(one)
    finally:
        _close(big, other)


def test_recall_returns_the_stored_rows_of_its_hits(pg_url: str) -> None:
    memory = _memory(pg_url, "rows")
    try:
        texts = [f"the clinic on street {i} opens at {i % 12 + 1} o'clock" for i in range(30)]
        ids = memory.remember_batch(texts, metadata={"kind": "hours"})
        for mode in ("vector", "lexical", "hybrid"):
            hits = memory.recall("when does the clinic on street 7 open", limit=5, mode=mode)
            assert hits, mode
            stored = {m.id: m for m in memory.list(limit=100)}
            for h in hits:
                assert h.id in ids
                assert h.text == stored[h.id].text
                assert h.metadata == {"kind": "hours"}
                assert h.tier == "L2"  # no L1 cache here: every row came from the search
            assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    finally:
        _close(memory)


def test_the_hnsw_beam_widens_with_the_namespace_and_the_results_wanted() -> None:
    from sem_mem.backends.postgres_search import EF_SEARCH_LIMIT, beam

    assert beam(50_000, 10, 64, 10) == beam(100_000, 10, 64, 10) == 200
    wide = [beam(n, 10, 64, 10) for n in (200_000, 1_000_000, 2_000_000)]
    assert wide == sorted(wide) and 200 < wide[0] < wide[1] == EF_SEARCH_LIMIT
    assert beam(10**9, 10, 64, 10) == EF_SEARCH_LIMIT  # pgvector's limit
    assert beam(1_000, 50, 64, 1) == 64 and beam(1_000, 300, 64, 10) == 300
