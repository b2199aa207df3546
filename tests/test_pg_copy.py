"""copy_store: an embedded store into PostgreSQL and back, on a real server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import FACTS
from embedders import HashingEmbedder
from pg_server import cluster_or_skip

from sem_mem import EmbeddingMismatchError, SemanticMemory
from sem_mem.backends.copy import copy_store
from sem_mem.backends.sqlite import SQLiteBackend

pytestmark = pytest.mark.postgres

QUERIES = ["penicillin allergy", "where does Sam live", "clinic hours", "diabetes drug", "parking"]


@pytest.fixture
def pg_url() -> Iterator[str]:
    with cluster_or_skip().database() as url:
        yield url


def _snapshot(backend: object, namespace: str) -> dict[str, tuple[object, ...]]:
    memory = SemanticMemory(backend=backend, namespace=namespace, embedder=HashingEmbedder())  # type: ignore[arg-type]
    try:
        return {
            m.id: (
                m.text,
                m.metadata,
                m.source,
                m.status,
                m.superseded_by,
                m.hit_count,
                m.created_at,
                m.updated_at,
                m.last_accessed,
            )
            for m in memory.list(include_superseded=True, limit=1000)
        }
    finally:
        memory.close()


def _recalls(backend: object, namespace: str) -> list[list[tuple[str, float]]]:
    """Vector recalls of the whole namespace for each query: (id, similarity), best first."""
    memory = SemanticMemory(
        backend=backend,  # type: ignore[arg-type]
        namespace=namespace,
        embedder=HashingEmbedder(),
        cache_size=0,
    )
    try:
        return [
            [(h.id, h.similarity) for h in memory.recall(q, limit=50, mode="vector")]
            for q in QUERIES
        ]
    finally:
        memory._tiers.pending_hits.clear()  # reading must not change the hit counts compared below
        memory.close()


def _assert_same_recalls(a: object, b: object, namespace: str) -> None:
    """Same memories with the same similarities (to float noise), in the same order
    except among ties; the two backends compute cosine distances independently."""
    for left, right in zip(_recalls(a, namespace), _recalls(b, namespace), strict=True):
        assert dict(left).keys() == dict(right).keys()
        for memory_id, sim in left:
            assert dict(right)[memory_id] == pytest.approx(sim, abs=1e-4)
        if len(left) > 1 and left[0][1] - left[1][1] > 1e-3:
            assert left[0][0] == right[0][0]


def test_sqlite_to_postgres_and_back(tmp_path: Path, pg_url: str) -> None:
    from sem_mem.backends.postgres import PostgresBackend

    sqlite = SQLiteBackend(tmp_path / "src")
    memory = SemanticMemory(backend=sqlite, embedder=HashingEmbedder())
    ids = memory.remember_batch(FACTS, [{"i": i} for i in range(len(FACTS))], source="document")
    memory.update(ids[3], text="The clinic opens at 9am on weekdays")
    memory.supersede(ids[1], ids[2], "merged")
    forgotten = memory.remember("Temporary note about nothing")
    memory.forget(forgotten)
    for _ in range(3):
        memory.recall("penicillin allergy", limit=1)
    memory.set_instructions("Be brief")
    memory.close()
    work = SemanticMemory(backend=sqlite, namespace="work", embedder=HashingEmbedder())
    work.remember_batch([f"Work item {i} about project {i % 3}" for i in range(30)])
    work.set_instructions("Work mode")
    work.close()

    pg = PostgresBackend(pg_url)
    seen: list[tuple[int, int]] = []
    report = copy_store(sqlite, pg, progress=lambda d, t: seen.append((d, t)))
    assert report["memories"] == len(FACTS) + 30 and report["skipped_existing"] == 0
    assert report["instructions"] == 2 and report["history"] == "copied"
    assert report["verified"]["namespaces"] == 2 and report["verified"]["sampled_memories"] > 5
    assert seen[-1] == (len(FACTS) + 30, len(FACTS) + 30)
    assert pg.namespaces() == ["default", "work"]
    for namespace in ("default", "work"):
        assert _snapshot(pg, namespace) == _snapshot(sqlite, namespace)
        assert pg.count(namespace) == sqlite.count(namespace)
        _assert_same_recalls(pg, sqlite, namespace)
    assert pg.get_instructions("default") == "Be brief\n"
    assert pg.get_instructions("work") == "Work mode\n"
    assert [e.event for e in pg.history("default", ids[3])] == ["created", "updated", "imported"]
    assert pg.get_many("default", [ids[1]])[ids[1]].memory.superseded_by == ids[2]

    again = copy_store(sqlite, pg)  # resumable: nothing is copied twice
    assert again["memories"] == 0 and again["skipped_existing"] == len(FACTS) + 30

    back = SQLiteBackend(tmp_path / "back")
    report = copy_store(pg, back)
    assert report["memories"] == len(FACTS) + 30
    assert report["history"] == "not supported by the destination backend"
    for namespace in ("default", "work"):
        assert _snapshot(back, namespace) == _snapshot(sqlite, namespace)
        _assert_same_recalls(back, sqlite, namespace)
    reopened = SemanticMemory(backend=back, embedder=HashingEmbedder())
    assert reopened.recall("penicillin allergy", limit=1)[0].id == ids[0]
    assert reopened.instructions == "Be brief\n"
    reopened.close()
    for backend in (sqlite, pg, back):
        backend.close()


def test_copy_into_another_embedding_space_is_refused(tmp_path: Path, pg_url: str) -> None:
    from sem_mem.backends.postgres import PostgresBackend

    sqlite = SQLiteBackend(tmp_path / "src")
    SemanticMemory(backend=sqlite, embedder=HashingEmbedder()).remember_batch(FACTS)
    pg = PostgresBackend(pg_url)
    pg.bind_embedding_space("test:hashing-32", 32)
    with pytest.raises(EmbeddingMismatchError, match=r"test:hashing-64.*test:hashing-32"):
        copy_store(sqlite, pg)
    assert pg.namespaces() == [] and pg.count("default") == 0
    sqlite.close()
    pg.close()


def test_cli_migrate_to_postgres_and_back(tmp_path: Path, pg_url: str) -> None:
    import json

    from typer.testing import CliRunner

    from sem_mem.cli import app

    store, back = tmp_path / "embedded", tmp_path / "back"
    with SemanticMemory(str(store), embedder=HashingEmbedder()) as memory:
        ids = memory.remember_batch(FACTS)
    runner = CliRunner()
    out = runner.invoke(app, ["migrate", "--to", pg_url, "--storage-dir", str(store)])
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout[out.stdout.index("{") :])["memories"] == len(FACTS)
    out = runner.invoke(app, ["migrate", "--from-url", pg_url, "--to", str(back)])
    assert out.exit_code == 0, out.output
    with SemanticMemory(str(back), embedder=HashingEmbedder()) as copy:
        assert sorted(m.id for m in copy.list(limit=100)) == sorted(ids)
        assert copy.recall("penicillin allergy", limit=1)[0].text == FACTS[0]
    bad = runner.invoke(app, ["migrate", "--to", str(tmp_path / "not-a-url")])
    assert bad.exit_code == 2 and "postgresql://" in bad.output


def test_a_copy_run_again_after_the_destination_was_used_keeps_what_it_has(
    tmp_path: Path, pg_url: str
) -> None:
    from sem_mem.backends.postgres import PostgresBackend

    sqlite = SQLiteBackend(tmp_path / "src")
    source = SemanticMemory(backend=sqlite, embedder=HashingEmbedder())
    ids = source.remember_batch(FACTS)
    source.close()
    pg = PostgresBackend(pg_url)
    copy_store(sqlite, pg)
    # the destination is used: recalls count hits there, and a memory is edited
    used = SemanticMemory(backend=pg, embedder=HashingEmbedder())
    for _ in range(2):
        used.recall("penicillin allergy", limit=3)
    used.update(ids[0], text="Allergic to penicillin and to amoxicillin")
    used.flush()
    again = copy_store(sqlite, pg)  # e.g. the operator runs the migration a second time
    assert again["memories"] == 0 and again["skipped_existing"] == len(FACTS)
    stored = pg.get_many("default", ids)
    assert stored[ids[0]].memory.text == "Allergic to penicillin and to amoxicillin"
    assert sum(s.memory.hit_count for s in stored.values()) > 0  # its own hits are kept
    used.close()
    pg.close()
    sqlite.close()
