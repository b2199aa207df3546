"""The per-namespace full-text index: tantivy on disk plus an in-RAM tail, real files."""

from __future__ import annotations

import itertools
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sem_mem.backends.text_fields import analyze, query_terms
from sem_mem.backends.text_index import TextDoc, TextFilter, TextIndex
from sem_mem.errors import ValidationError

EXPECT = {"store_id": "store-1", "namespace": "alice"}


def open_index(path: Path, expect: Mapping[str, Any] = EXPECT) -> TextIndex:
    return TextIndex(path, expect)


def labels(hits: list[tuple[int, float]]) -> list[int]:
    return [label for label, _ in hits]


# ---- analysis and ranking ------------------------------------------------------------------


def test_stemmed_forms_find_each_other(tmp_path: Path) -> None:
    index = open_index(tmp_path / "ix")
    index.upsert(
        [
            TextDoc(1, 1, "We adopted two kittens from the shelter"),
            TextDoc(2, 2, "She runs every morning before work"),
            TextDoc(3, 3, "The weather was lovely"),
        ]
    )
    for committed in (False, True):
        assert labels(index.search("adopting a kitten", 10)) == [1], committed
        assert labels(index.search("running", 10)) == [2], committed
        index.commit()


def test_query_of_only_stopwords_or_nothing_returns_nothing(tmp_path: Path) -> None:
    index = open_index(tmp_path / "ix")
    index.upsert([TextDoc(1, 1, "what did you do there")])
    index.commit()
    assert index.search("what did you do", 10) == []
    assert index.search("   ", 10) == []
    assert index.search("", 10) == []


def test_tail_and_committed_score_the_same(tmp_path: Path) -> None:
    rng = random.Random(7)
    words = [
        "cat",
        "dog",
        "bird",
        "fish",
        "adoption",
        "running",
        "park",
        "hiking",
        "painting",
        "sunrise",
        "camping",
    ]
    docs = [
        TextDoc(
            i,
            i,
            " ".join(rng.choices(words, k=rng.randint(3, 60))),
            speaker=rng.choice(["Caroline", "Melanie", None]),
        )
        for i in range(1, 1001)
    ]
    index = open_index(tmp_path / "ix")
    index.upsert(docs[:950])
    index.commit()
    index.upsert(docs[950:])  # 5% of the index in the tail
    query = "cat painting Caroline hiking"
    before = index.search(query, 1000)
    index.commit()
    assert index.tail_size == 0
    after = index.search(query, 1000)
    assert len(before) == len(after) > 500
    committed = dict(after)
    for label, score in before:
        if label > 950:  # was in the tail: the same statistics, the same score
            assert score == pytest.approx(committed[label], rel=1e-4)
        else:  # committed before: only the statistics moved, by the tail's 5%
            assert score == pytest.approx(committed[label], rel=0.03)
    # Committed documents were scored with the statistics before the tail joined them,
    # so only near-ties may swap (each score moved < 3%); the top 10 stay the top 10.
    assert set(labels(before)[:10]) == set(labels(after)[:10])
    rank = {label: i for i, label in enumerate(labels(after))}
    for (a, score_a), (b, score_b) in itertools.pairwise(before):
        if score_a > score_b * 1.06:
            assert rank[a] < rank[b]
    tail_before = [label for label in labels(before) if label > 950]
    assert tail_before == [label for label in labels(after) if label > 950]


# ---- filters -------------------------------------------------------------------------------


def _haystack(n: int) -> list[TextDoc]:
    """Near-duplicates that outrank the needle for the query, and match no filter below."""
    return [
        TextDoc(
            1000 + i,
            1000 + i,
            "kitten adoption kitten adoption shelter",
            source="import",
            timestamp=5_000.0 + i,
            thread_id=f"other-{i % 7}",
            metadata={"n": 2, "tag": "noise", "flag": False, "one": 1},
        )
        for i in range(n)
    ]


NEEDLE = TextDoc(
    1,
    1,
    "we talked about a kitten adoption at length, among many other things that day",
    source="thread",
    timestamp=1_000.0,
    thread_id="session-3",
    metadata={"n": 1, "tag": "trip", "flag": True, "one": True, "nested": {"a": 1}},
)


@pytest.mark.parametrize(
    "filters",
    [
        TextFilter(source="thread"),
        TextFilter(thread_id="session-3"),
        TextFilter(since=1_000.0, until=1_000.5),
        TextFilter(until=1_000.5),
        TextFilter(metadata={"n": 1}),
        TextFilter(metadata={"n": 1.0}),  # JSON-equal
        TextFilter(metadata={"tag": "trip"}),
        TextFilter(metadata={"flag": True}),
        TextFilter(metadata={"one": True}),  # True is not 1: the haystack's one=1 stays out
        TextFilter(source="thread", since=900.0, metadata={"n": 1, "tag": "trip"}),
    ],
    ids=repr,
)
@pytest.mark.parametrize("needle_in_tail", [False, True])
@pytest.mark.slow  # thousands of documents per case
def test_filter_finds_one_match_under_thousands_that_score_higher(
    tmp_path: Path, filters: TextFilter, needle_in_tail: bool
) -> None:
    index = open_index(tmp_path / "ix")
    index.upsert(_haystack(3000))
    if not needle_in_tail:
        index.upsert([NEEDLE])
    index.commit()
    if needle_in_tail:
        index.upsert([NEEDLE])
    assert labels(index.search("kitten adoption", 1))[0] != 1  # the needle is outranked
    assert labels(index.search("kitten adoption", 5, filters)) == [1]


@pytest.mark.parametrize(
    "filters",
    [
        TextFilter(source="manual"),
        TextFilter(thread_id="session-4"),
        TextFilter(since=1_000.5),
        TextFilter(until=1_000.0),  # until is exclusive
        TextFilter(metadata={"n": 3}),
        TextFilter(metadata={"flag": 1}),  # True is not 1
        TextFilter(metadata={"one": 1}),  # 1 is not True
        TextFilter(metadata={"missing": None}),
        TextFilter(source="thread", metadata={"tag": "other"}),
    ],
    ids=repr,
)
def test_filter_that_the_needle_does_not_meet_hides_it(tmp_path: Path, filters: TextFilter) -> None:
    index = open_index(tmp_path / "ix")
    index.upsert([NEEDLE, TextDoc(2, 2, "kitten adoption", source="x", metadata={"one": 1})])
    index.commit()
    index.upsert([TextDoc(3, 3, "kitten", source="x", timestamp=5e6)])
    assert 1 not in labels(index.search("kitten adoption", 10, filters))


def test_filter_on_a_value_that_cannot_be_matched_is_a_clear_error(tmp_path: Path) -> None:
    index = open_index(tmp_path / "ix")
    with pytest.raises(ValidationError, match="nested"):
        index.search("kitten", 5, TextFilter(metadata={"nested": {"a": 1}}))


# ---- replace, delete, reload ---------------------------------------------------------------


def test_replace_and_delete_in_tail_hide_committed_versions(tmp_path: Path) -> None:
    index = open_index(tmp_path / "ix")
    index.upsert([TextDoc(i, i, f"pancakes recipe number {i}") for i in range(1, 21)])
    index.commit()
    index.upsert([TextDoc(3, 30, "waffles instead")])
    index.delete([4, 5], seq=31)
    for _ in range(2):  # in the tail, then committed
        hits = labels(index.search("pancakes", 5))
        assert len(hits) == 5 and not {3, 4, 5} & set(hits)
        assert len(index.search("pancakes", 100)) == 17
        assert labels(index.search("waffles", 100)) == [3]
        index.commit()
    assert index.committed_seq == 31


def test_a_second_process_sees_commits_after_reload(tmp_path: Path) -> None:
    writer = open_index(tmp_path / "ix")
    reader = open_index(tmp_path / "ix")
    writer.upsert([TextDoc(1, 1, "sourdough starter"), TextDoc(2, 2, "sourdough bread")])
    writer.commit()
    reader.upsert([TextDoc(2, 2, "sourdough bread"), TextDoc(3, 3, "sourdough pizza")])
    assert reader.tail_size == 2
    reader.reload()
    assert reader.committed_seq == 2
    assert reader.tail_size == 1  # label 2 (seq 2) is now committed; label 3 is not
    assert sorted(labels(reader.search("sourdough", 10))) == [1, 2, 3]
    # the writer catches up with the store (seq 3) and deletes label 1 (seq 4)
    writer.upsert([TextDoc(3, 3, "sourdough pizza")])
    writer.delete([1], seq=4)
    reader.upsert([TextDoc(4, 5, "sourdough crackers")])  # newer than that commit
    writer.commit()
    reader.reload()
    assert reader.committed_seq == 4 and reader.tail_size == 1
    assert sorted(labels(reader.search("sourdough", 10))) == [2, 3, 4]


def test_a_stale_process_commits_on_top_of_another_ones_commit(tmp_path: Path) -> None:
    first = open_index(tmp_path / "ix")
    second = open_index(tmp_path / "ix")
    first.upsert([TextDoc(i, i, f"beekeeping diary {i}") for i in range(1, 31)])
    first.commit()
    second.upsert([TextDoc(31, 31, "beekeeping gloves"), TextDoc(5, 32, "honey harvest")])
    second.commit()  # without a reload in between
    for index in (second, open_index(tmp_path / "ix")):
        assert len(index.search("beekeeping", 100)) == 30
        assert labels(index.search("honey", 10)) == [5]
    side = json.loads((tmp_path / "ix" / "sidecar.json").read_text())
    assert (side["docs"], side["committed_seq"]) == (31, 32)


def test_searches_during_commits_always_see_every_document(tmp_path: Path) -> None:
    index = open_index(tmp_path / "ix")
    batches = [
        [TextDoc(b * 50 + i, b * 50 + i, f"origami crane {b} {i}") for i in range(1, 51)]
        for b in range(4)
    ]
    written: list[int] = []
    failures: list[BaseException] = []

    def writer() -> None:
        try:
            for batch in batches:
                index.upsert(batch)
                written.append(len(batch))
                index.commit()
        except BaseException as exc:  # reported by the main thread
            failures.append(exc)

    thread = threading.Thread(target=writer)
    thread.start()
    searches = 0
    while thread.is_alive() or searches == 0:
        floor = sum(written)  # upserted before this search began
        found = len(index.search("origami", 1000))
        assert found >= floor
        searches += 1
    thread.join()
    assert not failures
    assert len(index.search("origami", 1000)) == 200 and index.tail_size == 0


def test_reopen_keeps_committed_documents_and_seq(tmp_path: Path) -> None:
    index = open_index(tmp_path / "ix")
    index.upsert([TextDoc(7, 12, "marathon training plan")])
    index.commit()
    index.upsert([TextDoc(8, 13, "marathon shoes")])  # never committed: lost with the process
    index.close()
    again = open_index(tmp_path / "ix")
    assert not again.rebuilt
    assert again.committed_seq == 12
    assert labels(again.search("marathon", 10)) == [7]


def test_crash_between_tantivy_commit_and_sidecar_replays_idempotently(tmp_path: Path) -> None:
    path = tmp_path / "ix"
    index = open_index(path)
    first = [TextDoc(i, i, f"guitar lesson {i}") for i in range(1, 11)]
    index.upsert(first)
    index.commit()
    old_sidecar = (path / "sidecar.json").read_bytes()
    second = [TextDoc(3, 11, "guitar strings replaced"), TextDoc(11, 12, "guitar tuner")]
    index.upsert(second)
    index.commit()
    index.close()
    # the state a kill right after tantivy's commit leaves: new index, old sidecar
    (path / "sidecar.json").write_bytes(old_sidecar)
    again = open_index(path)
    assert not again.rebuilt
    assert again.committed_seq == 10  # so the store replays seq 11 and 12
    again.upsert(second)
    again.commit()
    hits = labels(again.search("guitar", 100))
    assert sorted(hits) == list(range(1, 12))  # each label once
    assert labels(again.search("strings", 10)) == [3]
    assert again.committed_seq == 12
    assert not open_index(path).rebuilt


def test_reset_forgets_everything(tmp_path: Path) -> None:
    index = open_index(tmp_path / "ix")
    index.upsert([TextDoc(1, 1, "chess opening")])
    index.commit()
    index.upsert([TextDoc(2, 2, "chess endgame")])
    index.reset()
    assert index.search("chess", 10) == [] and index.committed_seq == 0
    assert open_index(tmp_path / "ix").search("chess", 10) == []


# ---- damaged or foreign files --------------------------------------------------------------


def _build(path: Path) -> None:
    index = open_index(path)
    index.upsert([TextDoc(i, i, f"violin concert {i}") for i in range(1, 50)])
    index.commit()
    index.upsert([TextDoc(99, 99, "violin practice")])
    index.commit()
    index.close()


def _segment_file(path: Path, ext: str) -> Path:
    return next(p for p in sorted(path.iterdir()) if p.suffix == ext)


def _garbage(path: Path) -> None:
    data = bytearray(path.read_bytes())
    for i in range(0, len(data), 7):
        data[i] ^= 0x5A
    path.write_bytes(bytes(data))


DAMAGE = {
    "garbage meta.json": lambda p: (p / "meta.json").write_bytes(b"\x00{garbage"),
    "garbage postings": lambda p: _garbage(_segment_file(p, ".idx")),
    "garbage terms": lambda p: _garbage(_segment_file(p, ".term")),
    "truncated fast fields": lambda p: _segment_file(p, ".fast").write_bytes(b"x"),
    "deleted segment file": lambda p: _segment_file(p, ".store").unlink(),
    "deleted meta.json": lambda p: (p / "meta.json").unlink(),
    "deleted sidecar": lambda p: (p / "sidecar.json").unlink(),
    "garbage sidecar": lambda p: (p / "sidecar.json").write_text("{not json"),
    "whole directory deleted": lambda p: shutil.rmtree(p),
}

PROBE = """
import sys
from pathlib import Path
from sem_mem.backends.text_index import TextDoc, TextIndex
index = TextIndex(Path(sys.argv[1]), {"store_id": "store-1", "namespace": "alice"})
print(index.rebuilt, index.committed_seq, len(index.search("violin", 100)))
index.upsert([TextDoc(1, 1, "violin again")])
index.commit()
print(len(index.search("violin", 100)))
"""


@pytest.mark.parametrize("damage", list(DAMAGE), ids=list(DAMAGE))
@pytest.mark.slow  # fault injection: an index damaged and rebuilt per case
def test_damaged_index_starts_empty_without_crashing(tmp_path: Path, damage: str) -> None:
    path = tmp_path / "ix"
    _build(path)
    DAMAGE[damage](path)
    # a separate process, so that a crash inside tantivy fails this test instead of pytest
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True", "0", "0", "1"]
    assert not open_index(path).rebuilt  # the new index is sound


def test_index_of_another_namespace_or_store_is_not_reused(tmp_path: Path) -> None:
    path = tmp_path / "ix"
    _build(path)
    other = open_index(path, {"store_id": "store-1", "namespace": "bob"})
    assert other.rebuilt and other.search("violin", 10) == []
    assert json.loads((path / "sidecar.json").read_text())["expect"]["namespace"] == "bob"


# ---- a model of what search must return ----------------------------------------------------

WORDS = ["apple", "banana", "cherry", "grape", "lemon", "mango"]
docs_st = st.builds(
    lambda label, words, speaker, source, ts, n: (label, " ".join(words), speaker, source, ts, n),
    st.integers(1, 12),
    st.lists(st.sampled_from(WORDS), min_size=1, max_size=6),
    st.sampled_from([None, "Ann", "Lemon"]),
    st.sampled_from(["manual", "thread"]),
    st.sampled_from([0.0, 10.0, 20.0]),
    st.sampled_from([1, 2, True, "x"]),
)
ops_st = st.lists(
    st.one_of(
        st.tuples(st.just("upsert"), st.lists(docs_st, min_size=1, max_size=4)),
        st.tuples(st.just("delete"), st.lists(st.integers(1, 12), min_size=1, max_size=3)),
        st.tuples(st.just("commit")),
        st.tuples(st.just("reopen")),
    ),
    max_size=10,
)
filters_st = st.one_of(
    st.none(),
    st.builds(TextFilter, source=st.sampled_from(["manual", "thread"])),
    st.builds(TextFilter, since=st.sampled_from([5.0, 10.0]), until=st.sampled_from([20.0, 30.0])),
    st.builds(TextFilter, metadata=st.sampled_from([{"n": 1}, {"n": True}, {"n": "x"}])),
)


@pytest.mark.slow
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops_st, st.lists(st.sampled_from([*WORDS, "ann"]), min_size=1, max_size=3), filters_st)
def test_search_returns_exactly_the_live_matching_documents(
    ops: list[tuple[Any, ...]], query_words: list[str], filters: TextFilter | None
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "ix"
        index = open_index(path)
        live: dict[int, TextDoc] = {}
        seq = 0
        for op in ops:
            if op[0] == "upsert":
                batch = []
                for label, text, speaker, source, ts, n in op[1]:
                    seq += 1
                    doc = TextDoc(label, seq, text, speaker, source, ts, None, {"n": n})
                    batch.append(doc)
                    live[label] = doc
                index.upsert(batch)
            elif op[0] == "delete":
                seq += 1
                index.delete(op[1], seq)
                for label in op[1]:
                    live.pop(label, None)
            elif op[0] == "commit":
                index.commit()
            else:  # a new process: the tail is lost, so commit it first as the store would
                index.commit()
                index.close()
                index = open_index(path)
        wanted = set(query_terms(" ".join(query_words)))
        expected = {
            d.label
            for d in live.values()
            if wanted & set(analyze(d.text))  # the speaker field is kept but not searched
            and (filters is None or filters.source in (None, d.source))
            and (filters is None or filters.since is None or d.timestamp >= filters.since)
            and (filters is None or filters.until is None or d.timestamp < filters.until)
            and (
                filters is None
                or not filters.metadata
                or json.dumps(filters.metadata["n"]) == json.dumps(d.metadata["n"])
            )
        }
        hits = index.search(" ".join(query_words), 100, filters)
        # closed before its folder goes: an open index's reader watches meta.json and
        # may recreate its lock file while the folder is being removed
        index.close()
        assert len(hits) == len(set(labels(hits)))
        assert set(labels(hits)) == expected
        assert [s for _, s in hits] == sorted((s for _, s in hits), reverse=True)


def test_reopen_with_the_same_expect_in_another_shape_reuses_the_index(tmp_path: Path) -> None:
    expect = {"store_id": "s", "namespace": "n", "dims": (384, "f32")}
    index = open_index(tmp_path / "ix", expect)
    index.upsert([TextDoc(1, 1, "tidal pools")])
    index.commit()
    again = open_index(tmp_path / "ix", {**expect, "dims": [384, "f32"]})
    assert not again.rebuilt and labels(again.search("tidal", 5)) == [1]


def test_bad_documents_are_refused_and_nothing_is_lost(tmp_path: Path) -> None:
    index = open_index(tmp_path / "ix")
    index.upsert([TextDoc(1, 1, "northern lights")])
    with pytest.raises(ValidationError, match="timestamp"):
        index.upsert([TextDoc(2, 2, "northern sky", timestamp=float("nan"))])
    with pytest.raises(ValidationError, match="label"):
        index.upsert([TextDoc(-1, 3, "northern star")])
    assert labels(index.search("northern", 5)) == [1]
