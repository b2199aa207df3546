"""SemanticMemory through its public API, against real SQLite and real hnswlib.

What every storage backend must do lives once, in ``test_backend_conformance.py``; this
file holds the engine's own behaviour (validation, L1, hit batches) and what only the
embedded backend has (HNSW index files, SQLite migrations, FTS5 pruning)."""

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
from conftest import FACTS
from embedders import BrokenEmbedder, HashingEmbedder
from hypothesis import given, settings
from hypothesis import strategies as st

from sem_mem import (
    EmbeddingError,
    LimitExceededError,
    SemanticMemory,
    SemMemError,
    ValidationError,
)

MakeMemory = Callable[..., SemanticMemory]


def test_embedded_store_stats_and_instructions_file(tmp_path: Path) -> None:
    """What the conformance suite's basics do not show: the embedded store's stats and
    its instructions file (remember/recall/update/forget live in the conformance suite)."""
    with SemanticMemory(storage_dir=str(tmp_path / "m"), embedder=HashingEmbedder()) as memory:
        ids = memory.remember_batch(FACTS[:3])
        memory.forget(ids[0])
        stats = memory.stats()
        assert stats["total_memories"] == 2 and "hit_rate" in stats["l1"]
        assert stats["embedder"]["model_id"] == "test:hashing-64"
        memory.add_instruction("I am an informatics physician")
        assert memory.instructions.strip() == "I am an informatics physician"
    assert (tmp_path / "m" / "instructions.txt").read_text().strip() == (
        "I am an informatics physician"
    )


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


# -- updates and forgetting reach L1 ------------------------------------------------------


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


# -- properties ------------------------------------------------------------------------------


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
