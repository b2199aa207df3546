"""Importing the original sem-mem's files (sem_mem.migrate).

The source files are real JSON written into ``tmp_path`` in the shapes the original
sem-mem wrote them; the target is a real SQLite store with a deterministic embedder.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from embedders import HashingEmbedder

from sem_mem import migrate_lsh_to_hnsw, migrate_original_sem_mem
from sem_mem.core import SemanticMemory
from sem_mem.errors import StorageError, ValidationError

LSH_TEXTS = [
    "The user's favourite colour is teal",
    "Project Falcon ships on the third of March",
    "Alice prefers tea over coffee in the morning",
]


class OpenAISmallLike(HashingEmbedder):
    """A deterministic stand-in that claims OpenAI's text-embedding-3-small space."""

    def __init__(self) -> None:
        super().__init__(1536)
        self.model_id = "openai:text-embedding-3-small"


def write_json(path: Path, data: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def random_vector(dim: int, seed: int) -> list[float]:
    return np.random.default_rng(seed).normal(size=dim).astype(np.float32).tolist()


def unit(vector: list[float]) -> np.ndarray:
    arr = np.asarray(vector, dtype=np.float32)
    return arr / np.linalg.norm(arr)


def stored_by_text(memory: SemanticMemory) -> dict[str, Any]:
    """Every active memory of the namespace with its embedding, keyed by text."""
    return {
        s.memory.text: s
        for s in memory.backend.iter_memories(memory.namespace, include_superseded=False)
    }


@pytest.fixture
def memory(tmp_path: Path) -> Iterator[SemanticMemory]:
    with SemanticMemory(str(tmp_path / "store"), embedder=HashingEmbedder()) as mem:
        yield mem


def write_original(
    root: Path,
    entries: dict[str, dict[str, Any]],
    *,
    provider: str | None = "openai",
    model: str | None = "text-embedding-3-small",
) -> None:
    """An ``hnsw_metadata.json`` as the original sem-mem saved it (plus a stand-in .bin)."""
    data: dict[str, Any] = {
        "entries": entries,
        "text_to_id": {e["text"]: int(k) for k, e in entries.items() if "text" in e},
        "next_id": len(entries),
    }
    if model is not None:
        data.update(embedding_provider=provider, embedding_model=model, embedding_dim=1536)
    write_json(root / "hnsw_metadata.json", data)
    (root / "hnsw_index.bin").write_bytes(b"not read by the importer")


# ----------------------------------------------------------------------------- LSH buckets


def test_lsh_buckets_import_each_text_once_and_recall_it(
    tmp_path: Path, memory: SemanticMemory
) -> None:
    src = tmp_path / "old"
    a, b, c = LSH_TEXTS
    # LSH put the same memory into several buckets; shapes vary between files
    write_json(src / "bucket_0.json", [{"text": a, "metadata": {"topic": "prefs"}}, b])
    write_json(
        src / "bucket_1.json",
        {"entries": [{"content": b}, {"text": a, "metadata": {"topic": "prefs"}}]},
    )
    write_json(src / "bucket_2.json", {"k1": {"memory": c}, "k2": a})

    assert migrate_lsh_to_hnsw(src, memory) == 3
    assert len(memory) == 3
    for text in LSH_TEXTS:
        assert memory.recall(text)[0].text == text
    stored = stored_by_text(memory)
    assert stored[a].memory.metadata == {"topic": "prefs", "migrated_from": "lsh"}
    assert stored[c].memory.metadata == {"migrated_from": "lsh"}
    assert {s.memory.source for s in stored.values()} == {"import"}


def test_lsh_import_twice_adds_nothing_and_embeds_nothing_new(
    tmp_path: Path, memory: SemanticMemory
) -> None:
    src = tmp_path / "old"
    write_json(src / "bucket_0.json", LSH_TEXTS)
    write_json(src / "bucket_1.json", LSH_TEXTS[:1])
    assert migrate_lsh_to_hnsw(src, memory) == 3
    assert isinstance(memory.embedder, HashingEmbedder)
    embedded = memory.embedder.texts_embedded

    assert migrate_lsh_to_hnsw(src, memory) == 0
    assert len(memory) == 3
    assert memory.embedder.texts_embedded == embedded  # the store's embeddings were reused


def test_lsh_recall_sees_imported_memories_after_a_cached_query(
    tmp_path: Path, memory: SemanticMemory
) -> None:
    memory.remember("An unrelated note about gardening")
    assert all(r.text != LSH_TEXTS[1] for r in memory.recall(LSH_TEXTS[1]))  # now cached
    write_json(tmp_path / "old" / "bucket_0.json", LSH_TEXTS)
    migrate_lsh_to_hnsw(tmp_path / "old", memory)
    assert memory.recall(LSH_TEXTS[1])[0].text == LSH_TEXTS[1]


def test_lsh_bucket_vectors_are_reused_when_the_model_matches(tmp_path: Path) -> None:
    vectors = [random_vector(64, seed) for seed in range(2)]
    write_json(
        tmp_path / "old" / "bucket_0.json",
        {
            "embedding_model": "test:hashing-64",
            "items": [{"text": t, "vector": v} for t, v in zip(LSH_TEXTS, vectors, strict=False)]
            + [{"text": LSH_TEXTS[2], "vector": [1.0, 2.0]}],  # wrong size: embedded
        },
    )
    embedder = HashingEmbedder()
    with SemanticMemory(str(tmp_path / "store"), embedder=embedder) as mem:
        assert migrate_lsh_to_hnsw(tmp_path / "old", mem) == 3
        assert embedder.texts_embedded == 1
        stored = stored_by_text(mem)
        for text, vector in zip(LSH_TEXTS, vectors, strict=False):
            np.testing.assert_allclose(stored[text].embedding, unit(vector), atol=1e-6)


def test_lsh_skips_empty_texts_and_reports_why(
    tmp_path: Path, memory: SemanticMemory, caplog: pytest.LogCaptureFixture
) -> None:
    write_json(
        tmp_path / "old" / "bucket_0.json",
        ["", "   ", {"text": ""}, {"metadata": {"x": 1}}, 42, LSH_TEXTS[0]],
    )
    with caplog.at_level(logging.INFO, logger="sem_mem.migrate"):
        assert migrate_lsh_to_hnsw(tmp_path / "old", memory) == 1
    assert [m.text for m in memory.list()] == [LSH_TEXTS[0]]
    summary = caplog.records[-1].getMessage()
    assert "1 created" in summary
    assert "5 skipped" in summary
    assert "3 empty text" in summary
    assert "1 no text" in summary
    assert "1 malformed entry" in summary


def test_lsh_skips_texts_over_the_size_limit(tmp_path: Path) -> None:
    write_json(tmp_path / "old" / "bucket_0.json", ["short enough", "x" * 101])
    with SemanticMemory(
        str(tmp_path / "store"), embedder=HashingEmbedder(), max_text_chars=100
    ) as mem:
        assert migrate_lsh_to_hnsw(tmp_path / "old", mem) == 1
        assert [m.text for m in mem.list()] == ["short enough"]


def test_lsh_import_into_another_namespace(tmp_path: Path, memory: SemanticMemory) -> None:
    write_json(tmp_path / "old" / "bucket_0.json", LSH_TEXTS)
    assert migrate_lsh_to_hnsw(tmp_path / "old", memory, namespace="legacy") == 3
    assert len(memory) == 0
    assert memory.backend.count("legacy") == 3


def test_lsh_dir_without_buckets_imports_nothing(
    tmp_path: Path, memory: SemanticMemory, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "old").mkdir()
    write_json(tmp_path / "old" / "notes.json", LSH_TEXTS)
    with caplog.at_level(logging.INFO, logger="sem_mem.migrate"):
        assert migrate_lsh_to_hnsw(tmp_path / "old", memory) == 0
    assert len(memory) == 0
    assert "no LSH bucket files" in caplog.text


def test_lsh_malformed_json_names_the_file(tmp_path: Path, memory: SemanticMemory) -> None:
    write_json(tmp_path / "old" / "bucket_0.json", LSH_TEXTS)
    (tmp_path / "old" / "bucket_1.json").write_text('[{"text": "cut off', encoding="utf-8")
    with pytest.raises(StorageError, match=r"bucket_1\.json") as info:
        migrate_lsh_to_hnsw(tmp_path / "old", memory)
    assert isinstance(info.value.__cause__, json.JSONDecodeError)
    assert len(memory) == 0  # nothing is half-imported


@pytest.mark.parametrize("migrate", [migrate_lsh_to_hnsw, migrate_original_sem_mem])
def test_missing_dir_is_a_validation_error_naming_it(
    tmp_path: Path, memory: SemanticMemory, migrate: Any
) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(ValidationError, match="nowhere"):
        migrate(missing, memory)
    assert not missing.exists()  # no store was created there either


def test_lsh_default_memory_is_opened_on_the_source_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "EMBEDDING_MODEL", "SEMMEM_NAMESPACE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SEMMEM_EMBEDDER", "local")
    monkeypatch.chdir(tmp_path)  # no stray .env is read
    src = tmp_path / "local_memory"
    write_json(src / "bucket_0.json", LSH_TEXTS)

    assert migrate_lsh_to_hnsw(src) == 3
    assert migrate_lsh_to_hnsw(src) == 0
    with SemanticMemory(str(src)) as mem:
        assert len(mem) == 3
        assert mem.recall("favourite colour")[0].text == LSH_TEXTS[0]


# ----------------------------------------------------------------------------- original HNSW


def original_entries(dim: int, texts: list[str]) -> dict[str, dict[str, Any]]:
    return {
        str(i): {
            "text": text,
            "vector": random_vector(dim, i),
            "metadata": {"kind": "fact"},
            "created_at": f"2025-01-{i + 1:02d}T10:00:00",
            "utility_score": 0.5,
        }
        for i, text in enumerate(texts)
    }


def test_original_vectors_are_reused_when_the_model_matches(tmp_path: Path) -> None:
    src = tmp_path / "local_memory"
    entries = original_entries(1536, LSH_TEXTS)
    write_original(src, entries)
    embedder = OpenAISmallLike()
    with SemanticMemory(str(tmp_path / "store"), embedder=embedder) as mem:
        assert migrate_original_sem_mem(src, mem) == 3
        assert embedder.texts_embedded == 0
        stored = stored_by_text(mem)
        for key, entry in entries.items():
            got = stored[entry["text"]]
            np.testing.assert_allclose(got.embedding, unit(entry["vector"]), atol=1e-6)
            assert got.memory.metadata == {
                "kind": "fact",
                "migrated_from": "hnsw",
                "original_id": int(key),
            }
        # the stored vector is what vector search finds
        hit = mem.backend.vector_search(mem.namespace, unit(entries["1"]["vector"]), 1)
        assert stored[LSH_TEXTS[1]].memory.id == hit[0][0]


def test_original_without_recorded_model_assumes_text_embedding_3_small(tmp_path: Path) -> None:
    src = tmp_path / "local_memory"
    write_original(src, original_entries(1536, LSH_TEXTS), model=None)
    embedder = OpenAISmallLike()
    with SemanticMemory(str(tmp_path / "store"), embedder=embedder) as mem:
        assert migrate_original_sem_mem(src, mem) == 3
        assert embedder.texts_embedded == 0


def test_original_is_reembedded_when_the_model_differs(
    tmp_path: Path, memory: SemanticMemory
) -> None:
    src = tmp_path / "local_memory"
    write_original(src, original_entries(1536, LSH_TEXTS))
    assert isinstance(memory.embedder, HashingEmbedder)
    assert migrate_original_sem_mem(src, memory) == 3
    assert memory.embedder.texts_embedded == 3
    for text in LSH_TEXTS:
        assert memory.recall(text, mode="vector")[0].text == text


def test_original_same_dimensions_but_other_model_is_reembedded(tmp_path: Path) -> None:
    src = tmp_path / "local_memory"
    write_original(src, original_entries(1536, LSH_TEXTS), model="text-embedding-ada-002")
    embedder = OpenAISmallLike()
    with SemanticMemory(str(tmp_path / "store"), embedder=embedder) as mem:
        assert migrate_original_sem_mem(src, mem) == 3
        assert embedder.texts_embedded == 3


def test_original_unusable_vectors_are_reembedded(tmp_path: Path) -> None:
    src = tmp_path / "local_memory"
    entries = original_entries(64, LSH_TEXTS)
    entries["0"]["vector"] = [math.nan] * 64
    entries["1"]["vector"] = entries["1"]["vector"][:10]
    write_original(src, entries, provider=None, model="test:hashing-64")
    embedder = HashingEmbedder()
    with SemanticMemory(str(tmp_path / "store"), embedder=embedder) as mem:
        assert migrate_original_sem_mem(src, mem) == 3
        assert embedder.texts_embedded == 2
        stored = stored_by_text(mem)
        np.testing.assert_allclose(
            stored[LSH_TEXTS[2]].embedding, unit(entries["2"]["vector"]), atol=1e-6
        )
        assert all(np.all(np.isfinite(s.embedding)) for s in stored.values())
        assert mem.recall(LSH_TEXTS[0])[0].text == LSH_TEXTS[0]


def test_original_import_is_idempotent(tmp_path: Path, memory: SemanticMemory) -> None:
    src = tmp_path / "local_memory"
    write_original(src, original_entries(1536, LSH_TEXTS))
    assert migrate_original_sem_mem(src, memory) == 3
    assert isinstance(memory.embedder, HashingEmbedder)
    embedded = memory.embedder.texts_embedded
    assert migrate_original_sem_mem(src, memory) == 0
    assert len(memory) == 3
    assert memory.embedder.texts_embedded == embedded


def test_original_keeps_created_at(tmp_path: Path, memory: SemanticMemory) -> None:
    src = tmp_path / "local_memory"
    write_original(src, original_entries(1536, LSH_TEXTS[:1]))
    migrate_original_sem_mem(src, memory)
    created = memory.list()[0].created_at
    assert (created.year, created.month, created.day) == (2025, 1, 1)


def test_original_skips_empty_texts(tmp_path: Path, memory: SemanticMemory) -> None:
    src = tmp_path / "local_memory"
    entries = original_entries(1536, ["  ", LSH_TEXTS[0], ""])
    write_original(src, entries)
    assert migrate_original_sem_mem(src, memory) == 1
    assert [m.text for m in memory.list()] == [LSH_TEXTS[0]]
    assert memory.list()[0].metadata["original_id"] == 1


def test_original_malformed_json_is_a_storage_error(tmp_path: Path, memory: SemanticMemory) -> None:
    src = tmp_path / "local_memory"
    src.mkdir()
    (src / "hnsw_metadata.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(StorageError, match=r"hnsw_metadata\.json"):
        migrate_original_sem_mem(src, memory)


def test_original_json_without_entries_is_a_storage_error(
    tmp_path: Path, memory: SemanticMemory
) -> None:
    src = tmp_path / "local_memory"
    write_json(src / "hnsw_metadata.json", {"text_to_id": {}, "next_id": 0})
    with pytest.raises(StorageError, match="entries"):
        migrate_original_sem_mem(src, memory)


def test_original_dir_without_metadata_imports_nothing(
    tmp_path: Path, memory: SemanticMemory, caplog: pytest.LogCaptureFixture
) -> None:
    src = tmp_path / "local_memory"
    src.mkdir()
    (src / "hnsw_index.bin").write_bytes(b"\x00" * 16)
    with caplog.at_level(logging.INFO, logger="sem_mem.migrate"):
        assert migrate_original_sem_mem(src, memory) == 0
    assert "hnsw_metadata.json" in caplog.text
    assert len(memory) == 0


# ----------------------------------------------------------------------------- chat sessions
# ``sem-mem migrate --to postgresql://…`` (copy_store) carries chat sessions over too.


def _memory_on(backend: Any, namespace: str) -> SemanticMemory:
    return SemanticMemory(backend=backend, namespace=namespace, embedder=HashingEmbedder())


def _turns(backend: Any, namespace: str, session_id: str) -> list[str]:
    from sem_mem.conversation import ChatSession

    memory = _memory_on(backend, namespace)
    try:
        return [m.content for m in ChatSession.load(memory, session_id).thread]
    finally:
        memory.close()


def _chat(backend: Any, namespace: str, session_id: str, texts: list[str]) -> None:
    """Turns of a memory-only chat (each turn is the user's message), saved one by one."""
    from sem_mem.conversation import ChatSession

    memory = _memory_on(backend, namespace)
    try:
        session = ChatSession.load(memory, session_id, create=True, title=session_id.title())
        for text in texts:
            session.send(text)
            session.persist()
    finally:
        memory.close()


def _continue(backend: Any, namespace: str, response_id: str, text: str) -> None:
    """A client's next turn, found by the response id it holds (``previous_response_id``)."""
    from sem_mem.conversation import ChatSession

    memory = _memory_on(backend, namespace)
    try:
        session = ChatSession.continuing(memory, response_id)
        session.send(text)
        session.persist()
    finally:
        memory.close()


def _answered(backend: Any, namespace: str, session_id: str, response_id: str) -> None:
    """Record a provider's answer id on the session, as a save after an answer does."""
    from dataclasses import replace

    record = backend.get_chat_session(namespace, session_id)
    backend.save_chat_session(namespace, replace(record, response_id=response_id))


def _sessions(backend: Any, namespace: str) -> list[tuple[str, str, float, float]]:
    return [
        (r.id, r.title, r.created_at, r.updated_at) for r in backend.list_chat_sessions(namespace)
    ]


@pytest.mark.postgres
def test_copy_store_carries_chat_sessions_to_postgres_and_back(tmp_path: Path) -> None:
    from pg_server import cluster_or_skip

    from sem_mem.backends.copy import copy_store
    from sem_mem.backends.postgres import PostgresBackend
    from sem_mem.backends.sqlite import SQLiteBackend

    sqlite = SQLiteBackend(tmp_path / "src")
    # a memory in another namespace: chat turns recall (and count hits) in their own
    memory = _memory_on(sqlite, "default")
    memory.remember("Alice is allergic to penicillin")
    memory.close()
    _chat(sqlite, "alice", "plan", ["First", "Second", "Third"])
    _answered(sqlite, "alice", "plan", "resp_1")
    _answered(sqlite, "alice", "plan", "resp_2")
    _chat(sqlite, "bob", "notes", ["Only turn"])
    turns = ["First", "Second", "Third"]
    assert _turns(sqlite, "alice", "plan") == turns

    with cluster_or_skip().database() as url:
        pg = PostgresBackend(url)
        report = copy_store(sqlite, pg)
        assert (report["memories"], report["chat_sessions"], report["chat_response_ids"]) == (
            1,
            2,
            2,
        )
        assert _turns(pg, "alice", "plan") == turns
        assert _turns(pg, "bob", "notes") == ["Only turn"]
        for namespace in ("alice", "bob"):
            assert _sessions(pg, namespace) == _sessions(sqlite, namespace)
        assert pg.chat_response_ids("alice", "plan") == ["resp_1", "resp_2"]

        # the client holding the last answer's id continues the session in PostgreSQL
        _continue(pg, "alice", "resp_2", "Fourth")
        assert _turns(pg, "alice", "plan") == [*turns, "Fourth"]

        # a re-run copies nothing twice and keeps the turn made in the destination
        again = copy_store(sqlite, pg)
        assert (again["chat_sessions"], again["chat_sessions_skipped_existing"]) == (0, 2)
        assert again["chat_response_ids"] == 0
        assert _turns(pg, "alice", "plan") == [*turns, "Fourth"]
        assert [r.id for r in pg.list_chat_sessions("alice")] == ["plan"]

        # and back into a new embedded store, where the session goes on as well
        back = SQLiteBackend(tmp_path / "back")
        report = copy_store(pg, back)
        assert (report["chat_sessions"], report["chat_response_ids"]) == (2, 2)
        assert _turns(back, "alice", "plan") == [*turns, "Fourth"]
        assert back.chat_session_of_response("alice", "resp_1") == "plan"
        _continue(back, "alice", "resp_2", "Fifth")
        assert _turns(back, "alice", "plan") == [*turns, "Fourth", "Fifth"]
        again = copy_store(pg, back)
        assert (again["chat_sessions"], again["chat_sessions_skipped_existing"]) == (0, 2)
        assert _turns(back, "alice", "plan") == [*turns, "Fourth", "Fifth"]
        for backend in (sqlite, pg, back):
            backend.close()


def test_copy_store_of_a_store_with_only_chat_sessions_copies_them(tmp_path: Path) -> None:
    """A store used only for chat (no memory stored) still has sessions to move."""
    from dataclasses import replace

    from sem_mem.backends.copy import copy_store
    from sem_mem.backends.sqlite import SQLiteBackend

    src, dst = SQLiteBackend(tmp_path / "src"), SQLiteBackend(tmp_path / "dst")
    _chat(src, "default", "talk", ["Hello", "Again"])
    _answered(src, "default", "talk", "resp_a")
    # an earlier run stopped after writing the session, before its response id
    record = src.get_chat_session("default", "talk")
    assert record is not None
    dst.save_chat_session("default", replace(record, revision=0))
    report = copy_store(src, dst)
    assert (report["memories"], report["chat_sessions"]) == (0, 0)
    assert (report["chat_sessions_skipped_existing"], report["chat_response_ids"]) == (1, 1)
    assert _turns(dst, "default", "talk") == ["Hello", "Again"]
    assert dst.chat_session_of_response("default", "resp_a") == "talk"
    src.close()
    dst.close()
