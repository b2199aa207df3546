"""SemanticMemory through its public API, against real SQLite and real hnswlib."""

from __future__ import annotations

import json
import logging
import random
import shutil
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from conftest import run_python
from embedders import BrokenEmbedder, HashingEmbedder
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sem_mem import (
    EmbeddingError,
    EmbeddingMismatchError,
    LimitExceededError,
    NotFoundError,
    SemanticMemory,
    SemMemError,
    ValidationError,
)

MakeMemory = Callable[..., SemanticMemory]

FACTS = [
    "The patient is allergic to penicillin",
    "Sam is a cardiology fellow",
    "Sam lives in Boston",
    "The clinic opens at 8am on weekdays",
    "Metformin is first-line therapy for type 2 diabetes",
    "Dr. Okafor prefers morning appointments",
    "The hospital parking garage is on Elm Street",
    "Warfarin interacts with many antibiotics",
]


def test_the_issue_snippet_works(tmp_path: Path) -> None:
    with SemanticMemory(storage_dir=str(tmp_path / "m"), embedder=HashingEmbedder()) as memory:
        mid = memory.remember("The patient is allergic to penicillin", metadata={"source": "chart"})
        ids = memory.remember_batch(["Sam is a cardiology fellow", "Sam lives in Boston"])
        hits = memory.recall("What is the patient allergic to?", limit=5)
        top = hits[0]
        assert (top.id, top.text, top.metadata, top.tier) == (
            mid,
            "The patient is allergic to penicillin",
            {"source": "chart"},
            "L2",
        )
        assert top.score >= hits[-1].score and top.created_at.tzinfo is not None
        assert memory.get(mid).text == "The patient is allergic to penicillin"
        memory.update(mid, text="The patient is allergic to amoxicillin", metadata={"v": 2})
        assert memory.get(mid).metadata == {"v": 2}
        memory.forget(ids[0])
        assert len(memory) == 2
        stats = memory.stats()
        assert stats["total_memories"] == 2 and stats["index"]["M"] == 16
        assert stats["index"]["ef_construction"] == 100 and "hit_rate" in stats["l1"]
        assert stats["embedder"]["model_id"] == "test:hashing-64"
        memory.add_instruction("I am an informatics physician")
        assert memory.instructions.strip() == "I am an informatics physician"
    assert (tmp_path / "m" / "instructions.txt").read_text().strip() == (
        "I am an informatics physician"
    )


def test_recall_returns_results_best_first_with_all_fields(memory: SemanticMemory) -> None:
    memory.remember_batch(FACTS)
    hits = memory.recall("Where does Sam live? Boston", limit=3)
    assert hits[0].text == "Sam lives in Boston"
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert all(-1.0 <= h.similarity <= 1.0 for h in hits)
    assert set(hits[0].to_dict()) >= {"id", "text", "score", "metadata", "tier", "created_at"}


def test_committed_memories_are_visible_to_a_second_process(tmp_path: Path) -> None:
    store = tmp_path / "shared"
    with SemanticMemory(str(store), embedder=HashingEmbedder()) as memory:
        ids = memory.remember_batch(FACTS)
    out = run_python(
        "import json; from embedders import HashingEmbedder; from sem_mem import SemanticMemory\n"
        f"m = SemanticMemory({str(store)!r}, embedder=HashingEmbedder())\n"
        "print(json.dumps([len(m), m.recall('penicillin allergy', limit=1)[0].text,"
        " sorted(x.id for x in m.list(limit=100))]))\n"
        "m.close()"
    )
    count, top, listed = json.loads(out.stdout)
    assert count == len(FACTS) and top == FACTS[0] and listed == sorted(ids)


# -- bad input never corrupts what is stored -----------------------------------------------


@pytest.mark.parametrize(
    ("text", "error", "needle"),
    [
        ("", ValidationError, "empty"),
        ("   \n\t ", ValidationError, "empty"),
        (42, ValidationError, "string"),
        ("x" * 100_001, LimitExceededError, "max_text_chars"),
    ],
)
def test_bad_text_is_rejected_with_a_clear_error(
    memory: SemanticMemory, text: object, error: type[Exception], needle: str
) -> None:
    memory.remember_batch(FACTS)
    before = [(h.id, h.text, h.score) for h in memory.recall("penicillin", limit=3)]
    with pytest.raises(error, match=needle):
        memory.remember(text)  # type: ignore[arg-type]
    with pytest.raises(error):
        memory.remember_batch(["fine text", text])  # type: ignore[list-item]
    assert len(memory) == len(FACTS)  # the valid text of the batch was not half-stored
    assert [(h.id, h.text, h.score) for h in memory.recall("penicillin", limit=3)] == before


def test_limit_error_names_limit_and_sizes(memory: SemanticMemory) -> None:
    with pytest.raises(LimitExceededError) as info:
        memory.remember("y" * 100_500)
    assert (info.value.limit, info.value.maximum, info.value.actual) == (
        "max_text_chars",
        100_000,
        100_500,
    )


@pytest.mark.parametrize(
    ("metadata", "needle"),
    [
        ({1: "a"}, "keys must be strings"),
        ("not a dict", "must be a dict"),
        ({"x": float("nan")}, "JSON"),
        ({"x": object()}, "JSON"),
        ({"blob": "z" * 70_000}, "max_metadata_bytes"),
    ],
)
def test_bad_metadata_is_rejected(memory: SemanticMemory, metadata: object, needle: str) -> None:
    memory.remember("kept")
    with pytest.raises(ValidationError, match=needle):
        memory.remember("new fact", metadata=metadata)  # type: ignore[arg-type]
    assert [m.text for m in memory.list()] == ["kept"]


@pytest.mark.parametrize(("fault", "needle"), [("nan", "NaN"), ("dims", "63-dimensional")])
def test_broken_embedder_vectors_are_refused(
    make_memory: MakeMemory, tmp_path: Path, fault: str, needle: str
) -> None:
    store = tmp_path / "s"
    with make_memory(store) as good:
        good.remember_batch(FACTS)
    broken = make_memory(store, embedder=BrokenEmbedder(fault=fault))
    with pytest.raises(EmbeddingError, match=needle):
        broken.remember("a new fact")
    with pytest.raises(EmbeddingError):
        broken.recall("something never asked before")
    assert len(broken) == len(FACTS)
    assert isinstance(EmbeddingError("x"), SemMemError)


def test_bad_recall_arguments(memory: SemanticMemory) -> None:
    with pytest.raises(ValidationError, match="limit"):
        memory.recall("q", limit=0)
    with pytest.raises(ValidationError, match="mode"):
        memory.recall("q", mode="fuzzy")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="empty"):
        memory.recall("  ")


def test_unknown_ids_raise_not_found(memory: SemanticMemory) -> None:
    for call in (memory.get, memory.forget, memory.history):
        with pytest.raises(NotFoundError, match="no memory 'nope'"):
            call("nope")
    with pytest.raises(NotFoundError):
        memory.update("nope", text="x")


# -- duplicates, updates, forgetting -------------------------------------------------------


def test_remembering_the_same_fact_twice_keeps_one_copy(memory: SemanticMemory) -> None:
    first = memory.remember("Sam lives in Boston", metadata={"who": "sam"})
    again = memory.remember("  Sam lives in Boston ", metadata={"who": "sam"})
    other = memory.remember("Sam lives in Boston", metadata={"who": "someone else"})
    assert first == again != other
    assert len(memory) == 2
    assert [e.event for e in memory.history(first)] == ["created", "refreshed"]
    batch = memory.remember_batch(["fact A", "fact A", "fact B"])
    assert batch[0] == batch[1] != batch[2]


def test_forgotten_or_updated_memory_never_comes_back_from_l1(memory: SemanticMemory) -> None:
    ids = memory.remember_batch(FACTS)
    for _ in range(3):  # hot: protected tier
        assert memory.recall("penicillin allergy", limit=1)[0].id == ids[0]
    assert memory.recall("penicillin allergy", limit=1)[0].tier == "L1"
    memory.forget(ids[0])
    assert ids[0] not in {h.id for h in memory.recall("penicillin allergy", limit=8)}
    assert ids[0] not in json.dumps(memory.cache_state())
    for _ in range(2):
        memory.recall("Sam lives in Boston", limit=1)
    memory.update(ids[2], text="Sam moved to Chicago")
    hit = memory.recall("Sam lives in Boston", limit=8)
    assert all(h.text != "Sam lives in Boston" for h in hit)
    assert memory.recall("Chicago", limit=1)[0].text == "Sam moved to Chicago"


def test_history_keeps_old_versions_and_forget_erases_the_text(memory: SemanticMemory) -> None:
    mid = memory.remember("The clinic opens at 8am")
    memory.update(mid, text="The clinic opens at 9am")
    events = memory.history(mid)
    assert [(e.event, e.text) for e in events] == [
        ("created", "The clinic opens at 8am"),
        ("updated", "The clinic opens at 9am"),
    ]
    memory.forget(mid)
    events = memory.history(mid)
    assert [e.event for e in events] == ["forgotten"]
    assert all(e.text is None for e in events)
    with pytest.raises(NotFoundError):
        memory.get(mid)


def test_superseded_memories_leave_recall_but_stay_in_history(memory: SemanticMemory) -> None:
    old = memory.remember("Sam lives in Boston")
    new = memory.remember("Sam lives in Chicago")
    memory.supersede(old, new, "user moved")
    assert old not in {h.id for h in memory.recall("Sam lives", limit=5)}
    assert len(memory) == 1
    assert memory.get(old).status == "superseded" and memory.get(old).superseded_by == new
    assert memory.history(old)[-1].event == "superseded"
    assert [m.id for m in memory.list(include_superseded=True)] == [new, old]


# -- L1 never masks L2 ---------------------------------------------------------------------


def test_tiered_results_equal_l2_only_results(tmp_path: Path) -> None:
    """Two memories over one L2 store, one with an L1 cache and one without: every
    recall of a skewed workload with interleaved writes returns the same ranking."""
    from sem_mem.backends.sqlite import SQLiteBackend

    rng = random.Random(7)
    words = [f"w{i}" for i in range(300)]
    texts = sorted({" ".join(rng.sample(words, 6)) for _ in range(400)})
    queries = [" ".join(rng.sample(words, 3)) for _ in range(60)]
    backend = SQLiteBackend(tmp_path / "store")
    tiered = SemanticMemory(backend=backend, embedder=HashingEmbedder(), cache_size=20)
    flat = SemanticMemory(backend=backend, embedder=HashingEmbedder(), cache_size=0)
    tiered.remember_batch(texts)
    served_from_l1 = 0
    for step in range(400):
        q = queries[min(int(rng.paretovariate(1.2)) - 1, len(queries) - 1)]  # skewed, repeats
        if step % 97 == 0:  # interleave writes: the cache must follow them
            victim = tiered.recall(q, limit=1)[0].id
            tiered.update(victim, text=f"{q} edited {step}")
            tiered.remember(f"{q} extra{step}")
        for mode in ("hybrid", "vector"):
            a = tiered.recall(q, limit=5, mode=mode)
            b = flat.recall(q, limit=5, mode=mode)
            assert [(h.id, h.text, h.score) for h in a] == [(h.id, h.text, h.score) for h in b]
            served_from_l1 += sum(h.tier == "L1" for h in a)
            assert all(h.tier == "L2" for h in b)
    assert served_from_l1 > 500  # the cache really was used
    assert tiered.stats()["l1"]["hit_rate"] > 0.3
    tiered.close()
    flat.close()
    backend.close()


def test_hit_counts_persist_and_warm_l1_on_open(make_memory: MakeMemory, tmp_path: Path) -> None:
    store = tmp_path / "warm"
    first = make_memory(store)
    ids = first.remember_batch(FACTS)
    for _ in range(7):
        first.recall("penicillin allergy", limit=1)
    first.recall("Boston", limit=1)
    first.close()
    second = make_memory(store)
    assert second.get(ids[0]).hit_count == 7
    state = second.cache_state()
    assert [e["id"] for e in state["protected"]] == [ids[0]]  # the 6+ hits rule
    assert ids[2] in [e["id"] for e in state["probation"]]
    assert second.recall("penicillin allergy", limit=1)[0].tier == "L1"


def test_hit_batches_written_in_the_background_are_all_kept(
    make_memory: MakeMemory, tmp_path: Path
) -> None:
    store = tmp_path / "hits"
    memory = make_memory(store)
    texts = [f"fact {i} about item {i}" for i in range(40)]
    memory.remember_batch(texts)
    for i in range(130):  # 1,300 hits: two batches of 512 go to the background writer
        memory.recall(texts[i % 40], limit=10, mode="vector")
    memory.close()
    reopened = make_memory(store)
    assert sum(m.hit_count for m in reopened.list(limit=100)) == 1300


def test_failing_hit_batch_is_logged_and_recall_still_answers(
    make_memory: MakeMemory, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = tmp_path / "hits-fail"
    memory = make_memory(store)
    texts = [f"fact {i} about item {i}" for i in range(40)]
    memory.remember_batch(texts)
    other = sqlite3.connect(store / "memory.sqlite3")
    other.execute(
        "CREATE TRIGGER no_hits BEFORE UPDATE OF hit_count ON memories "
        "BEGIN SELECT RAISE(ABORT, 'simulated write failure'); END"
    )
    other.commit()
    caplog.set_level(logging.WARNING, logger="sem_mem")
    for i in range(60):  # tips one batch of 512 hits, which fails in the background
        assert len(memory.recall(texts[i % 40], limit=10, mode="vector")) == 10
    memory.flush()
    assert "simulated write failure" in caplog.text
    other.execute("DROP TRIGGER no_hits")
    other.commit()
    other.close()
    memory.remember("written after the failure")  # the store is still writable
    assert (
        memory.recall("written after the failure", limit=1)[0].text == "written after the failure"
    )


# -- namespaces ----------------------------------------------------------------------------


def test_namespaces_never_cross(make_memory: MakeMemory, tmp_path: Path) -> None:
    store = tmp_path / "ns"
    alice = make_memory(store, namespace="alice")
    bob = make_memory(store, namespace="bob")
    a_id = alice.remember("Alice's locker code is 4471")
    b_id = bob.remember("Bob's locker code is 9902")
    assert [h.id for h in alice.recall("locker code", limit=10)] == [a_id]
    assert [h.id for h in bob.recall("locker code 4471", limit=10)] == [b_id]
    assert len(alice) == len(bob) == 1
    assert [m.id for m in alice.list()] == [a_id]
    for call in (alice.get, alice.forget, alice.history):
        with pytest.raises(NotFoundError):
            call(b_id)
    with pytest.raises(NotFoundError):
        alice.update(b_id, text="hijacked")
    assert bob.get(b_id).text == "Bob's locker code is 9902"
    alice.add_instruction("Call me Al")
    assert bob.instructions == ""


# -- the HNSW index is derived data --------------------------------------------------------


def _index_files(store: Path) -> list[Path]:
    return sorted((store / "index").glob("ns-default.*"))


def test_index_saves_are_batched_not_per_remember(make_memory: MakeMemory, tmp_path: Path) -> None:
    store = tmp_path / "batched"
    memory = make_memory(store)
    for i in range(50):
        memory.remember(f"fact number {i}")
    assert _index_files(store) == []  # 50 writes, no index rewrite
    memory.close()
    assert [p.suffix for p in _index_files(store)] == [".hnsw", ".json"]


@pytest.mark.parametrize("damage", ["missing", "corrupt", "truncated", "foreign"])
def test_damaged_index_is_rebuilt_from_sqlite(
    make_memory: MakeMemory, tmp_path: Path, caplog: pytest.LogCaptureFixture, damage: str
) -> None:
    store = tmp_path / "damaged"
    with make_memory(store) as memory:
        memory.remember_batch(FACTS)
    hnsw = store / "index" / "ns-default.hnsw"
    if damage == "missing":
        hnsw.unlink()
    elif damage == "corrupt":
        hnsw.write_bytes(b"\x00garbage" * 500)
    elif damage == "truncated":
        hnsw.write_bytes(hnsw.read_bytes()[:100])
    else:  # an index file from another store
        with make_memory(tmp_path / "other") as other:
            other.remember_batch(["unrelated"])
        shutil.copy(tmp_path / "other" / "index" / "ns-default.hnsw", hnsw)
        shutil.copy(tmp_path / "other" / "index" / "ns-default.json", hnsw.with_suffix(".json"))
    caplog.set_level(logging.INFO, logger="sem_mem")
    reopened = make_memory(store)
    assert reopened.recall("penicillin allergy", mode="vector", limit=1)[0].text == FACTS[0]
    assert "rebuilt the HNSW index" in caplog.text
    assert reopened.stats()["index"]["elements"] == len(FACTS)


def test_index_is_rebuilt_for_another_m_but_kept_for_another_ef_construction(
    make_memory: MakeMemory, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # ef_construction only changes how hard the graph was built: a store made with the
    # old default must not pay a rebuild on its next open.
    store = tmp_path / "params"
    with make_memory(store, hnsw_ef_construction=200) as memory:
        memory.remember_batch(FACTS)
    caplog.set_level(logging.INFO, logger="sem_mem")
    with make_memory(store) as memory:
        assert memory.recall("penicillin allergy", mode="vector", limit=1)[0].text == FACTS[0]
    assert "rebuilt the HNSW index" not in caplog.text
    with make_memory(store, hnsw_m=32) as memory:
        assert memory.recall("penicillin allergy", mode="vector", limit=1)[0].text == FACTS[0]
    assert "rebuilt the HNSW index" in caplog.text


def _spot_check(memory: SemanticMemory, texts: list[str]) -> None:
    for text in (texts[0], texts[len(texts) // 2], texts[-1]):
        assert memory.recall(text, mode="vector", limit=1)[0].text == text


def test_multi_chunk_batch_indexes_every_chunk(make_memory: MakeMemory, tmp_path: Path) -> None:
    # each chunk's HNSW insert runs while the next chunk is written to SQLite
    texts = [f"note {i} about topic {i % 37} and item {i * 7919 % 10007}" for i in range(2600)]
    memory = make_memory(tmp_path / "chunks")
    memory.remember_batch(texts, chunk_size=500)
    assert memory.stats()["index"]["elements"] == len(texts) == len(memory)
    _spot_check(memory, texts)
    memory.close()
    _spot_check(make_memory(tmp_path / "chunks"), texts)


def test_failed_background_index_update_is_caught_up_from_sqlite(
    make_memory: MakeMemory,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from sem_mem.backends.vector_index import HNSWIndex

    real_upsert = HNSWIndex.upsert
    failures = []

    def flaky_upsert(self: HNSWIndex, labels: np.ndarray, vectors: np.ndarray) -> None:
        if threading.current_thread().name == "sem-mem-index" and not failures:
            failures.append(len(labels))
            raise RuntimeError("simulated hnswlib failure")
        real_upsert(self, labels, vectors)

    monkeypatch.setattr(HNSWIndex, "upsert", flaky_upsert)
    caplog.set_level(logging.INFO, logger="sem_mem")
    texts = [f"entry {i} on subject {i % 41} with code {i * 104729 % 9973}" for i in range(2600)]
    memory = make_memory(tmp_path / "flaky")
    ids = memory.remember_batch(texts, chunk_size=500)
    assert failures == [500] and len(set(ids)) == len(texts) == len(memory)
    assert "caught up from SQLite" in caplog.text
    assert memory.stats()["index"]["elements"] == len(texts)
    _spot_check(memory, texts)


def test_stale_index_is_caught_up_from_sqlite(make_memory: MakeMemory, tmp_path: Path) -> None:
    store = tmp_path / "stale"
    with make_memory(store) as memory:
        ids = memory.remember_batch(FACTS[:4])
    saved = {p: p.read_bytes() for p in _index_files(store)}
    with make_memory(store) as memory:
        memory.remember_batch(FACTS[4:])
        memory.forget(ids[0])
    for path, data in saved.items():  # put the old index files back
        path.write_bytes(data)
    reopened = make_memory(store)
    found = {h.text for h in reopened.recall("x", mode="vector", limit=20)}
    assert found == set(FACTS[1:])
    assert len(reopened) == len(FACTS) - 1


# -- embedding spaces ----------------------------------------------------------------------


def test_opening_with_another_embedding_model_is_a_clear_error(
    make_memory: MakeMemory, tmp_path: Path
) -> None:
    store = tmp_path / "space"
    with make_memory(store) as memory:
        memory.remember_batch(FACTS)
    with pytest.raises(EmbeddingMismatchError) as info:
        make_memory(store, embedder=HashingEmbedder(32))
    message = str(info.value)
    assert "test:hashing-64" in message and "test:hashing-32" in message
    assert "reembed" in message


def test_reembed_moves_the_store_to_a_new_model(make_memory: MakeMemory, tmp_path: Path) -> None:
    store = tmp_path / "re"
    memory = make_memory(store)
    memory.remember_batch(FACTS)
    other = make_memory(store, namespace="other")
    other.remember("Other namespace fact about penicillin")
    other.close()
    assert memory.reembed(HashingEmbedder(32)) == len(FACTS) + 1
    assert memory.recall("penicillin allergy", limit=1)[0].text == FACTS[0]
    memory.close()
    reopened = make_memory(store, embedder=HashingEmbedder(32))
    assert reopened.recall("Sam Boston", limit=1)[0].text == "Sam lives in Boston"
    with pytest.raises(EmbeddingMismatchError):
        make_memory(store)


def test_texts_are_not_embedded_twice(make_memory: MakeMemory, tmp_path: Path) -> None:
    embedder = HashingEmbedder()
    store = tmp_path / "cache"
    memory = make_memory(store, embedder=embedder)
    memory.remember_batch(FACTS)
    assert embedder.texts_embedded == len(FACTS)
    make_memory(store, embedder=embedder, namespace="b").remember_batch(FACTS)
    memory.recall("what is the query", limit=2)
    memory.recall("what is the query", limit=2)
    assert embedder.texts_embedded == len(FACTS) + 1
    memory.close()
    again = make_memory(store, embedder=embedder)
    again.recall("what is the query", limit=2)  # from the persistent cache
    assert embedder.texts_embedded == len(FACTS) + 1


# -- retrieval modes -------------------------------------------------------------------------


def test_modes_and_threshold(memory: SemanticMemory) -> None:
    memory.remember_batch([*FACTS, "Order ZX-4471 shipped on Tuesday"])
    lexical = memory.recall("ZX-4471", mode="lexical", limit=3)
    assert [h.text for h in lexical] == ["Order ZX-4471 shipped on Tuesday"]
    vector = memory.recall("Sam lives in Boston", mode="vector", limit=3)
    assert vector[0].score == pytest.approx(vector[0].similarity)
    hybrid = memory.recall("ZX-4471 Boston", limit=3)
    assert {"Order ZX-4471 shipped on Tuesday", "Sam lives in Boston"} <= {h.text for h in hybrid}
    strict = memory.recall("Sam lives in Boston", limit=8, threshold=0.9)
    assert [h.text for h in strict] == ["Sam lives in Boston"]


def test_list_filters(memory: SemanticMemory) -> None:
    memory.remember("from the chart", metadata={"kind": "chart", "n": 1})
    memory.remember("from a pdf", source="pdf", metadata={"kind": "doc"})
    memory.remember("auto fact", source="auto")
    assert [m.text for m in memory.list(source="pdf")] == ["from a pdf"]
    assert [m.text for m in memory.list(metadata={"kind": "chart", "n": 1})] == ["from the chart"]
    assert len(memory.list(limit=2)) == 2 and len(memory.list(limit=2, offset=2)) == 1
    newest = memory.list()[0].created_at
    assert memory.list(since=newest)[0].text == "auto fact"
    assert memory.list(until=newest.timestamp() - 3600) == []
    with pytest.raises(ValidationError, match="source"):
        memory.list(source="bogus")


# -- properties ------------------------------------------------------------------------------

texts_strategy = st.lists(
    st.text(alphabet=st.characters(categories=["L", "N", "Zs"]), min_size=1, max_size=60)
    .map(str.strip)
    .filter(bool),
    min_size=1,
    max_size=25,
    unique=True,
)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(texts=texts_strategy)
def test_what_is_remembered_can_be_recalled(
    tmp_path_factory: pytest.TempPathFactory, texts: list[str]
) -> None:
    store = tmp_path_factory.mktemp("prop")
    with SemanticMemory(str(store), embedder=HashingEmbedder(128)) as memory:
        ids = memory.remember_batch(texts)
        assert len(set(ids)) == len(memory) == len(texts)
        for text, mid in zip(texts, ids, strict=True):
            hits = memory.recall(text, limit=len(texts), mode="vector")
            assert mid in {h.id for h in hits}
            assert memory.get(mid).text == text


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.floats(width=32, allow_nan=False, allow_infinity=False), min_size=1, max_size=64)
)
def test_vector_encoding_round_trips(values: list[float]) -> None:
    from sem_mem.backends.sqlite import decode_vector, encode_vector

    vec = np.asarray(values, dtype=np.float32)
    assert np.array_equal(decode_vector(encode_vector(vec)), vec)


# -- schema migrations ----------------------------------------------------------------------


def test_store_from_schema_1_is_migrated_and_indexes_new_rows_once(
    make_memory: MakeMemory, tmp_path: Path
) -> None:
    from sem_mem.backends.sqlite_schema import MIGRATIONS, split_statements

    store = tmp_path / "v1"
    with make_memory(store) as memory:
        memory.remember("alpha one", {"k": 1})
    # turn it back into a schema-1 store: per-row insert trigger, migration 2 not applied
    v1_trigger = next(
        st for st in split_statements(MIGRATIONS[0][2]) if "memories_after_insert" in st
    )
    db = sqlite3.connect(store / "memory.sqlite3")
    db.execute(v1_trigger)
    db.execute("DELETE FROM schema_migrations WHERE version = 2")
    db.commit()
    db.close()
    with make_memory(store) as memory:
        memory.remember_batch(["alpha two", "alpha three"])
        found = memory.recall("alpha", limit=10, mode="lexical")
        assert sorted(r.text for r in found) == ["alpha one", "alpha three", "alpha two"]
        assert memory.stats()["total_memories"] == 3
    db = sqlite3.connect(store / "memory.sqlite3")
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master")}
    db.close()
    # full text moved to derived tantivy indexes (migration 6): no per-row trigger is left
    assert "memories_after_insert" not in tables and "memories_fts" not in tables


# -- full-text search on big stores ---------------------------------------------------------


def test_lexical_search_ranks_rare_words_above_a_word_in_every_memory(
    make_memory: MakeMemory, tmp_path: Path
) -> None:
    memory = make_memory(tmp_path / "common")
    memory.remember_batch([f"patient {i} had a routine visit on day {i}" for i in range(59)])
    memory.remember("the patient is allergic to penicillin")
    found = memory.recall("patient penicillin", limit=10, mode="lexical")
    # "patient" is in every memory; penicillin decides
    assert found[0].text == "the patient is allergic to penicillin"
    # a query made only of common words still finds them
    assert len(memory.recall("patient routine", limit=10, mode="lexical")) == 10
    # and hybrid recall still puts the allergy first
    assert memory.recall("patient penicillin", limit=3)[0].text.endswith("penicillin")


def test_a_schema_2_store_gains_threads_and_timestamps_and_never_reuses_a_label(
    make_memory: MakeMemory, tmp_path: Path
) -> None:
    from sem_mem.backends.sqlite_rows import encode_vector
    from sem_mem.backends.sqlite_schema import MIGRATIONS, split_statements
    from sem_mem.core import text_hash

    store = tmp_path / "v2"
    store.mkdir()
    db = sqlite3.connect(store / "memory.sqlite3")
    db.execute(
        "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, "
        "applied_at REAL NOT NULL)"
    )
    for version, name, script in MIGRATIONS[:2]:
        for statement in split_statements(script):
            db.execute(statement)
        db.execute("INSERT INTO schema_migrations VALUES (?, ?, 0)", (version, name))
    vector = encode_vector(np.ones(64, dtype=np.float32) / 8.0)
    for label, text in ((1, "kept from before"), (2, "forgotten before the upgrade")):
        db.execute(
            "INSERT INTO memories (label, id, namespace, text, metadata, source, content_hash, "
            "embedding, embedding_model, created_at, updated_at, seq) "
            "VALUES (?, ?, 'default', ?, '{}', 'manual', ?, ?, 'test:hashing-64', ?, ?, ?)",
            (label, f"id-{label}", text, text_hash(text), vector, 1e9 + label, 1e9 + label, label),
        )
        db.execute("INSERT INTO memories_fts (rowid, text) VALUES (?, ?)", (label, text))
    db.execute("DELETE FROM memories WHERE label = 2")
    for key, value in (("embedding_model", "test:hashing-64"), ("embedding_dim", "64")):
        db.execute("INSERT INTO meta VALUES (?, ?)", (key, value))
    db.commit()
    db.close()
    with make_memory(store) as memory:
        old = memory.get("id-1")
        assert old.happened_at == old.created_at and old.thread_id is None
        new = memory.remember("written after the upgrade")
        assert memory.recall("kept from before", mode="lexical")[0].id == "id-1"
    db = sqlite3.connect(store / "memory.sqlite3")
    (label,) = db.execute("SELECT label FROM memories WHERE id = ?", (new,)).fetchone()
    db.close()
    assert label == 3  # label 2 belonged to a forgotten memory: never handed out again
