"""SmartCache: the segmented-LRU rules, and invariants under random use."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from sem_mem.cache import SmartCache


def test_new_entries_go_to_probation_and_a_second_hit_promotes() -> None:
    cache: SmartCache[str] = SmartCache(4)
    cache.touch("a", "A")
    assert [k for k, _ in cache.snapshot()["probation"]] == ["a"]
    cache.touch("a", "A")
    snap = cache.snapshot()
    assert [k for k, _ in snap["protected"]] == ["a"] and snap["probation"] == []


def test_probation_overflow_evicts_least_recent_but_spares_protected() -> None:
    cache: SmartCache[int] = SmartCache(4, protected_ratio=0.5)
    cache.touch("hot", 0)
    cache.touch("hot", 0)  # protected
    for i in range(10):  # a scan of one-off recalls
        cache.touch(f"scan{i}", i)
    assert "hot" in cache
    assert len(cache) == 4
    assert [k for k, _ in cache.snapshot()["probation"]] == ["scan9", "scan8", "scan7"]


def test_protected_overflow_demotes_to_probation() -> None:
    cache: SmartCache[int] = SmartCache(4, protected_ratio=0.5)  # 2 protected slots
    for key in ("a", "b", "c"):
        cache.touch(key, 0)
        cache.touch(key, 0)
    snap = cache.snapshot()
    assert [k for k, _ in snap["protected"]] == ["c", "b"]
    assert [k for k, _ in snap["probation"]] == ["a"]  # demoted, not lost


def test_discard_removes_from_either_tier_and_zero_capacity_caches_nothing() -> None:
    cache: SmartCache[int] = SmartCache(3)
    cache.touch("a", 1)
    cache.touch("a", 1)
    cache.touch("b", 2)
    assert cache.discard("a") and cache.discard("b")
    assert cache.get("a") is None and len(cache) == 0
    empty: SmartCache[int] = SmartCache(0)
    empty.touch("a", 1)
    assert len(empty) == 0


def test_hit_rate_counts_lookups() -> None:
    cache: SmartCache[int] = SmartCache(2)
    cache.touch("a", 1)
    cache.get("a")
    cache.get("b")
    assert cache.stats()["hit_rate"] == 0.5


ops = st.lists(
    st.tuples(
        st.sampled_from(["touch", "discard", "admit", "admit_protected"]),
        st.integers(min_value=0, max_value=15),
    ),
    max_size=200,
)


@settings(max_examples=300, deadline=None)
@given(capacity=st.integers(min_value=0, max_value=8), operations=ops)
def test_cache_invariants(capacity: int, operations: list[tuple[str, int]]) -> None:
    cache: SmartCache[str] = SmartCache(capacity)
    live: set[str] = set()  # keys that may legitimately be cached
    for op, n in operations:
        key = f"k{n}"
        if op == "discard":
            cache.discard(key)
            live.discard(key)
        elif op == "touch":
            cache.touch(key, key.upper())
            live.add(key)
        else:
            cache.admit(key, key.upper(), protected=op == "admit_protected")
            live.add(key)
        snap = cache.snapshot()
        keys = [k for tier in snap.values() for k, _ in tier]
        assert len(cache) <= capacity
        assert len(snap["protected"]) <= cache.protected_capacity
        assert len(keys) == len(set(keys)), "a key sits in both tiers"
        assert set(keys) <= live, "a discarded key came back"
        for k, v in (item for tier in snap.values() for item in tier):
            assert v == k.upper()
    if capacity and operations and operations[-1][0] == "touch":
        assert f"k{operations[-1][1]}" in cache  # the most recent use is always cached
