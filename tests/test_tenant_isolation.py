"""Tenants learn nothing about each other, on both backends (issue 12, items 10 and 11).

Timing is tested through what causes it: whether the embedder runs. A cache hit on
another tenant's text skips the embedder, which is what made an exact text stored by
Bob answer Alice in 3.7 ms instead of 15.2 ms.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from embedders import HashingEmbedder
from test_backend_conformance import Store, store  # noqa: F401  (the two-backend fixture)

from sem_mem import SemanticMemory


def _tenants(store: Store) -> tuple[SemanticMemory, SemanticMemory, HashingEmbedder]:  # noqa: F811
    """Alice and Bob on one backend object with one embedder, as the server has them."""
    backend = store.backend()
    embedder = HashingEmbedder()
    alice = SemanticMemory(backend=backend, namespace="alice", embedder=embedder)
    bob = SemanticMemory(backend=backend, namespace="bob", embedder=embedder)
    store.opened += [alice, bob]
    return alice, bob, embedder


def test_a_text_bob_stored_is_embedded_anew_for_alice(store: Store) -> None:  # noqa: F811
    alice, bob, embedder = _tenants(store)
    bob.remember("Bob's secret diagnosis is gout")
    before = embedder.texts_embedded
    alice.remember("Bob's secret diagnosis is gout")
    assert embedder.texts_embedded == before + 1
    # and within one tenant the stored vector is still reused
    alice.remember("Bob's secret diagnosis is gout", {"again": True})
    assert embedder.texts_embedded == before + 1


def test_a_query_bob_asked_is_embedded_anew_for_alice(store: Store) -> None:  # noqa: F811
    _, bob, embedder = _tenants(store)
    bob.remember("anything at all")
    bob.recall("does Bob have a rare disease")
    bob.flush()  # the query vector is now in the store's embedding cache
    backend = store.backend()  # a fresh process: nothing in RAM
    alice2 = SemanticMemory(backend=backend, namespace="alice", embedder=embedder)
    store.opened.append(alice2)
    before = embedder.texts_embedded
    alice2.recall("does Bob have a rare disease")
    assert embedder.texts_embedded == before + 1
    bob2 = SemanticMemory(backend=backend, namespace="bob", embedder=embedder)
    store.opened.append(bob2)
    bob2.recall("does Bob have a rare disease")  # Bob's own cache still serves Bob
    assert embedder.texts_embedded == before + 1


@pytest.mark.parametrize("order", ["bob first", "alice first"])
def test_importing_an_id_does_not_depend_on_other_tenants(
    store: Store,  # noqa: F811
    order: str,
) -> None:
    alice, bob, _ = _tenants(store)
    line = {"type": "memory", "id": "shared-id-1", "text": "imported fact"}
    first, second = (bob, alice) if order == "bob first" else (alice, bob)
    report1 = first.import_jsonl([json.dumps(line)])
    report2 = second.import_jsonl([json.dumps({**line, "text": "another tenant's fact"})])
    assert (report1.imported, report2.imported) == (1, 1)
    assert alice.get("shared-id-1").text in ("imported fact", "another tenant's fact")
    assert bob.get("shared-id-1").namespace == "bob"
    assert alice.get("shared-id-1").namespace == "alice"
    # each tenant changes and forgets only its own memory
    alice.update("shared-id-1", text="alice changed hers")
    assert bob.get("shared-id-1").text != "alice changed hers"
    alice.forget("shared-id-1")
    assert bob.get("shared-id-1").namespace == "bob"
    assert next(h.event for h in bob.history("shared-id-1")) == "imported"


def _old_store(path: Path, *, with_other_branch_3: bool) -> None:
    """A store as the code before migration 4 left it (ids unique store-wide), with
    memories in it; after migration 2, or also after migration 3 (new columns)."""
    from sem_mem.backends.sqlite_rows import encode_vector
    from sem_mem.backends.sqlite_schema import MIGRATIONS, split_statements
    from sem_mem.core import text_hash

    path.mkdir()
    conn = sqlite3.connect(path / "memory.sqlite3", isolation_level=None)
    conn.execute(
        "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, "
        "applied_at REAL NOT NULL)"
    )
    for version, name, script in MIGRATIONS:
        if version >= (4 if with_other_branch_3 else 3):
            break
        assert isinstance(script, str)
        for statement in split_statements(script):
            conn.execute(statement)
        conn.execute("INSERT INTO schema_migrations VALUES (?, ?, 0)", (version, name))
    embedder = HashingEmbedder()
    conn.executemany(
        "INSERT INTO meta VALUES (?, ?)",
        [
            ("store_id", "old"),
            ("seq", "5"),
            ("embedding_model", embedder.model_id),
            ("embedding_dim", "64"),
        ],
    )
    texts = [f"old fact number {i} about penguins{i}" for i in range(5)]
    for i, (text, vector) in enumerate(zip(texts, embedder.encode(texts), strict=True)):
        conn.execute(
            "INSERT INTO memories (id, namespace, text, source, content_hash, embedding, "
            "embedding_model, created_at, updated_at, seq"
            + (", timestamp) " if with_other_branch_3 else ") ")
            + "VALUES (?, 'default', ?, 'manual', ?, ?, ?, ?, ?, ?"
            + (", 1000.0)" if with_other_branch_3 else ")"),
            (
                f"old-{i}",
                text,
                text_hash(text),
                encode_vector(vector),
                embedder.model_id,
                1000.0 + i,
                1000.0 + i,
                i + 1,
            ),
        )
    conn.execute("INSERT INTO memories_fts (rowid, text) SELECT label, text FROM memories")
    conn.execute("INSERT INTO namespace_stats VALUES ('default', 5)")
    # the last memory was forgotten: its label must never be issued again
    conn.execute("DELETE FROM memories WHERE id = 'old-4'")
    conn.close()


@pytest.mark.parametrize("with_other_branch_3", [False, True])
def test_sqlite_migration_4_keeps_everything_and_scopes_ids(
    tmp_path: Path, with_other_branch_3: bool
) -> None:
    old = tmp_path / "old"
    _old_store(old, with_other_branch_3=with_other_branch_3)
    with SemanticMemory(str(old), embedder=HashingEmbedder()) as memory:
        assert len(memory) == 4
        assert memory.recall("penguins2", limit=1, mode="vector")[0].id == "old-2"
        assert memory.recall("penguins3", limit=1, mode="lexical")[0].id == "old-3"
        memory.remember("a new fact")
        other = SemanticMemory(backend=memory.backend, namespace="b", embedder=memory.embedder)
        report = other.import_jsonl([json.dumps({"type": "memory", "id": "old-1", "text": "b"})])
        assert report.imported == 1 and other.get("old-1").text == "b"
        assert memory.get("old-1").text.startswith("old fact number 1")
    conn = sqlite3.connect(old / "memory.sqlite3")
    labels = dict(conn.execute("SELECT id, label FROM memories WHERE namespace = 'default'"))
    assert labels["old-2"] == 3 and max(labels.values()) > 5  # kept; label 5 not reused
    columns = {r[1] for r in conn.execute("PRAGMA table_info(memories)")}
    assert "thread_id" in columns  # migration 3's columns, whether it ran before or after 4
    versions = [r[0] for r in conn.execute("SELECT version FROM schema_migrations")]
    assert 4 in versions
    triggers = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='trigger'")}
    assert "memories_after_delete" in triggers and "memories_fts" not in {
        r[0] for r in conn.execute("SELECT name FROM sqlite_master")
    }
    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    conn.close()


def test_a_namespace_named_like_anothers_file_shares_nothing(tmp_path: Path) -> None:
    from sem_mem.backends.sqlite_rows import file_name

    tricky = file_name("../x")  # the name of "../x"'s files, as a namespace of its own
    path = str(tmp_path / "store")
    with SemanticMemory(path, namespace="../x", embedder=HashingEmbedder()) as x:
        x.set_instructions("x's private instructions")
        x.remember("x's fact")
    with SemanticMemory(path, namespace=tricky, embedder=HashingEmbedder()) as other:
        assert other.instructions == ""
        other.set_instructions("the other's instructions")
        other.remember("the other's fact")
    with SemanticMemory(path, namespace="../x", embedder=HashingEmbedder()) as x:
        assert x.instructions == "x's private instructions\n"
        assert [m.text for m in x.list()] == ["x's fact"]
    names = sorted(p.name for p in (tmp_path / "store" / "index").glob("*.hnsw"))
    assert len(names) == 2  # one index file each
    assert file_name(tricky) != file_name("../x") and file_name("alice") == "alice"
