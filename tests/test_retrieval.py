"""Pure-function tests of candidate fusion (sem_mem.retrieval)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sem_mem.retrieval import (
    FusionConfig,
    convex_fusion,
    fuse_candidates,
    neighbours_within,
    reciprocal_rank_fusion,
    spread_to_neighbours,
    thread_neighbours,
)

ids = st.lists(st.sampled_from([f"m{i}" for i in range(12)]), unique=True, max_size=12)
scores = st.floats(min_value=-50, max_value=50, allow_nan=False)


def scored(items: list[str], values: list[float]) -> list[tuple[str, float]]:
    """(id, score) pairs sorted best first, as the backends return them."""
    pairs = list(zip(items, values, strict=False))
    return sorted(pairs, key=lambda kv: -kv[1])


@st.composite
def hit_lists(draw: st.DrawFn) -> list[tuple[str, float]]:
    items = draw(ids)
    values = draw(st.lists(scores, min_size=len(items), max_size=len(items)))
    return scored(items, values)


# ---------------------------------------------------------------- reciprocal rank fusion


def test_rrf_first_in_both_lists_ranks_first_with_score_one() -> None:
    fused = reciprocal_rank_fusion([["a", "b", "c"], ["a", "c", "b"]])
    assert fused[0] == ("a", pytest.approx(1.0))


def test_rrf_weights_decide_between_two_lists() -> None:
    rankings = [["vec", "x"], ["lex", "y"]]
    assert reciprocal_rank_fusion(rankings, [1.0, 2.0])[0][0] == "lex"
    assert reciprocal_rank_fusion(rankings, [2.0, 1.0])[0][0] == "vec"


def test_rrf_needs_one_weight_per_ranking() -> None:
    with pytest.raises(ValueError, match="one weight"):
        reciprocal_rank_fusion([["a"], ["b"]], [1.0])


@given(st.lists(ids, min_size=1, max_size=4))
def test_rrf_is_deterministic_and_covers_every_candidate(rankings: list[list[str]]) -> None:
    fused = reciprocal_rank_fusion(rankings)
    assert fused == reciprocal_rank_fusion(rankings)
    assert {i for i, _ in fused} == {i for r in rankings for i in r}
    assert all(0 < s <= 1 + 1e-9 for _, s in fused)
    assert [s for _, s in fused] == sorted((s for _, s in fused), reverse=True)


# ---------------------------------------------------------------- convex fusion


def test_convex_first_in_both_lists_ranks_first_with_score_one() -> None:
    vector = [("a", 0.9), ("b", 0.5), ("c", 0.1)]
    lexical = [("a", 12.0), ("c", 3.0)]
    fused = convex_fusion([vector, lexical], [0.4, 0.6])
    assert fused[0] == ("a", pytest.approx(1.0))


def test_convex_weight_one_is_the_weighted_list_alone() -> None:
    vector = [("v1", 0.9), ("v2", 0.8)]
    lexical = [("l1", 9.0), ("l2", 4.0), ("v1", 1.0)]
    fused = convex_fusion([vector, lexical], [0.0, 1.0])
    assert [i for i, _ in fused][:2] == ["l1", "l2"]


def test_convex_uses_score_gaps_not_only_ranks() -> None:
    # "b" is second in both lists but close to the top in bm25, far behind in cosine
    vector = [("a", 0.90), ("b", 0.10), ("c", 0.05)]
    lexical = [("c", 10.0), ("b", 9.9), ("a", 0.0)]
    fused = dict(convex_fusion([vector, lexical], [0.5, 0.5]))
    assert fused["b"] > fused["a"] - 0.2  # rank fusion would tie a, b and c


def test_convex_single_hit_and_constant_scores_count_as_best() -> None:
    fused = convex_fusion([[("a", 0.3)], [("b", 2.0), ("c", 2.0)]], [0.5, 0.5])
    assert dict(fused) == {"a": 0.5, "b": 0.5, "c": 0.5}
    assert [i for i, _ in fused] == ["a", "b", "c"]  # ties keep first appearance


def test_convex_max_normalisation_keeps_credit_for_a_weaker_match() -> None:
    # with min-max the second of two bm25 hits would count as no match at all
    lexical = [("exact", 10.0), ("partial", 6.0)]
    assert dict(convex_fusion([lexical], normalise=["minmax"]))["partial"] == 0.0
    assert dict(convex_fusion([lexical], normalise=["max"]))["partial"] == pytest.approx(0.6)
    # negative scores cannot be divided by the best: min-max is used instead
    assert dict(convex_fusion([[("a", -1.0), ("b", -3.0)]], normalise=["max"])) == {
        "a": 1.0,
        "b": 0.0,
    }


def test_convex_needs_one_weight_and_normalisation_per_list() -> None:
    with pytest.raises(ValueError, match="one weight"):
        convex_fusion([[("a", 1.0)]], [0.5, 0.5])
    with pytest.raises(ValueError, match="one weight"):
        convex_fusion([[("a", 1.0)]], normalise=["max", "max"])


@given(
    hit_lists(),
    hit_lists(),
    st.floats(min_value=0, max_value=1),
    st.sampled_from(["minmax", "max"]),
)
def test_convex_scores_lie_in_unit_interval_and_are_sorted(
    vector: list[tuple[str, float]], lexical: list[tuple[str, float]], w: float, how: str
) -> None:
    norms = ["minmax", how]
    fused = convex_fusion([vector, lexical], [1 - w, w], normalise=norms)  # type: ignore[arg-type]
    assert fused == convex_fusion([vector, lexical], [1 - w, w], normalise=norms)  # type: ignore[arg-type]
    assert {i for i, _ in fused} == {i for i, _ in vector} | {i for i, _ in lexical}
    assert all(-1e-9 <= s <= 1 + 1e-9 for _, s in fused)
    assert [s for _, s in fused] == sorted((s for _, s in fused), reverse=True)


# ---------------------------------------------------------------- neighbours


def test_neighbours_within_window_nearest_first() -> None:
    positions = {"a": 10, "b": 11, "c": 12, "d": 14, "far": 40}
    assert neighbours_within(positions, 1) == {"a": ["b"], "b": ["a", "c"], "c": ["b"]}
    near = neighbours_within(positions, 2)
    assert near["c"] == ["b", "a", "d"]
    assert "far" not in near
    assert neighbours_within(positions, 0) == {}


def test_a_run_of_messages_by_one_speaker_counts_as_one_turn() -> None:
    """Ana sends three short messages where a transcript would hold one turn: the turn
    window reaches past them to Ben's reply, as it does in a transcript."""
    said = ["ana", "ana", "ana", "ben", "ana", "ana", "cy", "dee"]
    places = {f"m{n}": ("t", n, who) for n, who in enumerate(said)}
    near = thread_neighbours(places, 1, span=6)
    assert near["m0"] == ["m1", "m2", "m3"]  # her own run, then one turn: Ben
    assert near["m3"] == ["m2", "m4", "m1", "m5", "m0"]  # Ben's neighbours: both runs
    assert near["m5"] == ["m4", "m6", "m3"]  # her run, Cy after it, Ben before it
    assert thread_neighbours(places, 1, span=2)["m0"] == ["m1", "m2"]  # the span caps it
    # chunks (no speaker) and other threads: places, as before
    chunks = {f"c{n}": ("doc", n, None) for n in range(5)} | {"x": ("other", 1, None)}
    assert thread_neighbours(chunks, 1, span=6)["c2"] == ["c1", "c3"]
    assert "x" not in thread_neighbours(chunks, 2, span=6)


@given(
    st.sets(st.integers(min_value=0, max_value=30), max_size=20),
    st.integers(min_value=1, max_value=3),
    st.integers(min_value=0, max_value=8),
)
def test_a_transcript_whose_speakers_alternate_keeps_the_place_window(
    stored: set[int], window: int, span: int
) -> None:
    """Where no one speaks twice in a row (or nobody speaks: document chunks), counting
    speaker turns is counting places, so transcripts and documents rank as before."""
    for speaker_at in (lambda n: "ab"[n % 2], lambda n: None):
        places = {f"m{n}": ("t", n, speaker_at(n)) for n in stored}
        by_turns = thread_neighbours(places, window, span)
        by_place = {
            item: [
                f"m{pos + step * d}"
                for d in range(1, window + 1)
                for step in (-1, 1)
                if pos + step * d in stored
            ]
            for item, (_, pos, _) in places.items()
        }
        assert by_turns == {item: near for item, near in by_place.items() if near}


def test_spread_lifts_the_neighbour_of_a_strong_hit() -> None:
    fused = [("hit", 1.0), ("weak", 0.30), ("context", 0.25)]
    spread = spread_to_neighbours(fused, {"hit": ["context"], "context": ["hit"]}, 0.5)
    order = [i for i, _ in spread]
    assert order[0] == "hit"
    assert order.index("context") < order.index("weak")


def test_spread_can_bring_in_a_memory_that_was_not_a_candidate() -> None:
    spread = dict(spread_to_neighbours([("hit", 1.0)], {"hit": ["new"]}, 0.5))
    assert spread["new"] == pytest.approx(0.5 / 1.5)
    assert spread["hit"] == pytest.approx(1.0 / 1.5)


def test_spread_with_no_weight_or_no_neighbours_changes_nothing() -> None:
    fused = [("a", 0.9), ("b", 0.4)]
    assert spread_to_neighbours(fused, {"a": ["b"]}, 0.0) == fused
    assert spread_to_neighbours(fused, {}, 0.5) == fused


@given(hit_lists(), st.floats(min_value=0, max_value=2), st.integers(min_value=1, max_value=3))
def test_spread_adds_exactly_the_weighted_best_neighbour(
    hits: list[tuple[str, float]], weight: float, window: int
) -> None:
    fused = convex_fusion([hits], [1.0])
    base = dict(fused)
    neighbours = neighbours_within({f"m{i}": i for i in range(12)}, window)
    spread = spread_to_neighbours(fused, neighbours, weight)
    assert spread == spread_to_neighbours(fused, neighbours, weight)
    assert set(base) <= {i for i, _ in spread}
    assert [s for _, s in spread] == sorted((s for _, s in spread), reverse=True)
    for item, score in spread:
        borrowed = max((base[n] for n in neighbours.get(item, ()) if n in base), default=0.0)
        if weight > 0:
            expected = (base.get(item, 0.0) + weight * max(borrowed, 0.0)) / (1 + weight)
            assert score == pytest.approx(expected)
        assert -1e-9 <= score <= 1 + 1e-9


# ---------------------------------------------------------------- fuse_candidates


def test_fuse_candidates_plain_rrf_matches_reciprocal_rank_fusion() -> None:
    vector = [("a", 0.9), ("b", 0.8), ("c", 0.2)]
    lexical = [("c", 7.0), ("a", 3.0)]
    expected = reciprocal_rank_fusion([["a", "b", "c"], ["c", "a"]])
    assert fuse_candidates(vector, lexical, FusionConfig.plain_rrf()) == expected


def test_fuse_candidates_default_is_convex_with_neighbours() -> None:
    config = FusionConfig()
    assert config.method == "convex"
    assert config.uses_neighbours
    vector = [("a", 0.9), ("b", 0.1)]
    lexical = [("a", 5.0)]
    without = fuse_candidates(vector, lexical, config)
    assert without == convex_fusion([vector, lexical], [0.4, 0.6], normalise=["minmax", "max"])
    withn = fuse_candidates(vector, lexical, config, neighbours={"a": ["ctx"]})
    assert "ctx" in dict(withn)


def test_fuse_candidates_handles_empty_lists() -> None:
    assert fuse_candidates([], []) == []
    assert [i for i, _ in fuse_candidates([("a", 0.5), ("b", 0.4)], [])] == ["a", "b"]
    assert [i for i, _ in fuse_candidates([], [("x", 2.0), ("y", 1.0)])] == ["x", "y"]


@pytest.mark.parametrize(
    "changes",
    [
        {"method": "bogus"},
        {"k": -1},
        {"lexical_weight": 1.5},
        {"neighbour_weight": -0.1},
        {"neighbour_window": -1},
        {"date_lookback_days": -1.0},
    ],
)
def test_fusion_config_rejects_bad_values(changes: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        FusionConfig(**changes)  # type: ignore[arg-type]
