"""One behaviour suite for every storage backend, so that they cannot drift apart.

Each test runs against the embedded backend (SQLite + hnswlib in ``tmp_path``) and the
PostgreSQL + pgvector backend (a fresh database on the real server that
``pg_server`` starts once per session). A "process" is one backend object: for
PostgreSQL that is its own connection pool, exactly what another API server has.
"""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import FACTS, run_python
from embedders import HashingEmbedder, PooledHashingEmbedder, TableEmbedder
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pg_server import cluster_or_skip
from session_writers import SPAWN, THREAD, append_turns, batch_of, run_processes

from sem_mem import (
    EmbeddingMismatchError,
    NotFoundError,
    SemanticMemory,
    ValidationError,
)
from sem_mem.backends.base import NewMemory, StorageBackend
from sem_mem.embedders.base import normalize_rows


@dataclass
class Store:
    """One store of one backend kind; every ``backend()`` is another "process" on it."""

    kind: str
    target: str  # storage dir or database URL
    open_backend: Callable[[], StorageBackend]
    sibling_factory: Callable[[], Store]
    opened: list[Any] = field(default_factory=list)

    def backend(self) -> StorageBackend:
        backend = self.open_backend()
        self.opened.append(backend)
        return backend

    def memory(self, **kwargs: Any) -> SemanticMemory:
        """A SemanticMemory on a new backend object (its own connections and L1)."""
        kwargs.setdefault("embedder", HashingEmbedder())
        memory = SemanticMemory(backend=self.backend(), **kwargs)
        self.opened.append(memory)
        return memory

    def sibling(self) -> Store:
        """Another, empty store of the same kind."""
        other = self.sibling_factory()
        self.opened.append(other)
        return other

    def close(self) -> None:
        for thing in reversed(self.opened):
            thing.close()
        self.opened.clear()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """A fresh store of each backend kind."""
    if request.param == "sqlite":
        from sem_mem.backends.sqlite import SQLiteBackend

        counter = iter(range(1, 1000))

        def make_sqlite() -> Store:
            path = tmp_path / f"store{next(counter)}"
            return Store("sqlite", str(path), lambda: SQLiteBackend(path), make_sqlite)

        made = make_sqlite()
        yield made
        made.close()
        return
    from sem_mem.backends.postgres import PostgresBackend

    cluster = cluster_or_skip()
    names: list[str] = []

    def make_pg() -> Store:
        name, url = cluster.create()
        names.append(name)
        return Store("postgres", url, lambda: PostgresBackend(url), make_pg)

    made = make_pg()
    try:
        yield made
    finally:
        made.close()
        for name in names:
            cluster.drop(name)


@pytest.fixture
def memory(store: Store) -> SemanticMemory:
    return store.memory()


# -- the basics ------------------------------------------------------------------------------


def test_vector_recall_finds_the_true_nearest_in_a_crowded_namespace(store: Store) -> None:
    """Random 384-d vectors are the hardest case for an HNSW graph (no neighbourhood
    stands out): with a fixed beam of 64, 5,000 of them lost ~40% of the true ten
    nearest; the beam of ``backends/beam.py`` keeps recall near the exact search's."""
    rng = np.random.default_rng(3)
    stored, asked = (normalize_rows(rng.normal(size=(n, 384))) for n in (5000, 30))
    texts = [f"memory {i}" for i in range(len(stored))]
    questions = [f"question {i}" for i in range(len(asked))]
    table = dict(zip(texts + questions, np.vstack([stored, asked]), strict=True))
    memory = store.memory(embedder=TableEmbedder(table))
    ids = memory.remember_batch(texts)
    row_of = {memory_id: row for row, memory_id in enumerate(ids)}
    found = []
    for question, vector in zip(questions, asked, strict=True):
        exact = set(np.argsort(-(stored @ vector))[:10].tolist())
        hits = memory.recall(question, limit=10, mode="vector")
        found.append(len(exact & {row_of[h.id] for h in hits}) / 10)
    assert float(np.mean(found)) >= 0.8


def test_remember_recall_get_update_forget(memory: SemanticMemory) -> None:
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
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert all(-1.0 <= h.similarity <= 1.0 for h in hits) and top.created_at.tzinfo is not None
    assert set(top.to_dict()) >= {"id", "text", "score", "metadata", "tier", "created_at"}
    assert memory.recall("Where does Sam live? Boston", limit=3)[0].id == ids[1]
    assert memory.get(mid).text == "The patient is allergic to penicillin"
    updated = memory.update(mid, text="The patient is allergic to amoxicillin", metadata={"v": 2})
    assert (updated.text, updated.metadata) == ("The patient is allergic to amoxicillin", {"v": 2})
    assert memory.recall("amoxicillin", limit=1)[0].id == mid
    memory.forget(ids[0])
    assert len(memory) == 2
    with pytest.raises(NotFoundError):
        memory.get(ids[0])
    for call in (memory.get, memory.forget, memory.history):
        with pytest.raises(NotFoundError, match="no memory 'nope'"):
            call("nope")
    with pytest.raises(NotFoundError):
        memory.update("nope", text="x")


def test_stats_have_the_same_keys(memory: SemanticMemory) -> None:
    memory.remember_batch(FACTS)
    memory.remember("from a pdf", source="pdf")
    stats = memory.stats()
    assert stats["total_memories"] == len(FACTS) + 1
    assert stats["by_source"] == {"manual": len(FACTS), "pdf": 1}
    assert stats["superseded"] == 0
    assert (stats["embedding_model"], stats["dimensions"]) == ("test:hashing-64", 64)
    assert stats["index"]["M"] == 16 and stats["index"]["ef_construction"] == 100
    assert stats["index"]["elements"] == len(FACTS) + 1
    assert {"backend", "db_bytes", "seq", "l1", "embedder", "namespace"} <= set(stats)


def test_remembering_the_same_fact_twice_keeps_one_copy(memory: SemanticMemory) -> None:
    first = memory.remember("Sam lives in Boston", metadata={"who": "sam", "n": 1})
    again = memory.remember("  Sam lives in Boston ", metadata={"n": 1, "who": "sam"})
    other = memory.remember("Sam lives in Boston", metadata={"who": "someone else"})
    assert first == again != other
    assert len(memory) == 2
    assert [e.event for e in memory.history(first)] == ["created", "refreshed"]
    batch = memory.remember_batch(["fact A", "fact A", "fact B"])
    assert batch[0] == batch[1] != batch[2]
    assert memory.remember_batch(["fact A"], dedupe=False)[0] != batch[0]


def test_history_keeps_old_versions_and_forget_erases_the_text(memory: SemanticMemory) -> None:
    mid = memory.remember("The clinic opens at 8am", metadata={"v": 1})
    memory.update(mid, text="The clinic opens at 9am")
    memory.update(mid, metadata={"v": 2})
    assert [(e.event, e.text, e.metadata) for e in memory.history(mid)] == [
        ("created", "The clinic opens at 8am", {"v": 1}),
        ("updated", "The clinic opens at 9am", {"v": 1}),
        ("updated", "The clinic opens at 9am", {"v": 2}),
    ]
    memory.forget(mid)
    events = memory.history(mid)
    assert [e.event for e in events] == ["forgotten"] and events[0].text is None
    with pytest.raises(NotFoundError):
        memory.get(mid)


def test_superseded_memories_leave_recall_but_stay_in_history(memory: SemanticMemory) -> None:
    old = memory.remember("Sam lives in Boston")
    new = memory.remember("Sam lives in Chicago")
    memory.supersede(old, new, "user moved")
    assert old not in {h.id for h in memory.recall("Sam lives", limit=5)}
    assert old not in {h.id for h in memory.recall("Sam lives in Boston", limit=5, mode="vector")}
    assert len(memory) == 1 and memory.stats()["superseded"] == 1
    assert memory.get(old).status == "superseded" and memory.get(old).superseded_by == new
    last = memory.history(old)[-1]
    assert last.event == "superseded" and json.loads(last.detail or "{}")["by"] == new
    assert [m.id for m in memory.list(include_superseded=True)] == [new, old]
    assert [m.id for m in memory.list()] == [new]
    with pytest.raises(NotFoundError):
        memory.supersede(old, new)  # already superseded


def test_list_filters_and_order(memory: SemanticMemory) -> None:
    memory.remember("from the chart", metadata={"kind": "chart", "n": 1, "ok": True})
    memory.remember("from a pdf", source="pdf", metadata={"kind": "doc"})
    memory.remember("auto fact", source="auto")
    assert [m.text for m in memory.list(source="pdf")] == ["from a pdf"]
    assert [m.text for m in memory.list(metadata={"kind": "chart", "n": 1})] == ["from the chart"]
    assert [m.text for m in memory.list(metadata={"ok": True})] == ["from the chart"]
    assert memory.list(metadata={"ok": 1}) == []  # JSON true is not the number 1
    assert [m.text for m in memory.list(metadata={"n": 1.0})] == ["from the chart"]
    assert memory.list(metadata={"kind": "nothing"}) == []
    assert len(memory.list(limit=2)) == 2 and len(memory.list(limit=2, offset=2)) == 1
    newest = memory.list()[0].created_at
    assert memory.list(since=newest)[0].text == "auto fact"
    assert memory.list(until=newest.timestamp() - 3600) == []
    assert memory.list(newest_first=False)[0].text == "from the chart"
    batch = memory.remember_batch([f"batch item {i}" for i in range(5)])
    assert [m.id for m in memory.list(limit=5)] == batch[::-1]  # same timestamp: insertion order
    with pytest.raises(ValidationError, match="source"):
        memory.list(source="bogus")
    with pytest.raises(ValidationError):
        memory.list(metadata={"kind": ["a", "list"]})


def test_modes_threshold_and_hybrid_finds_a_rare_token(memory: SemanticMemory) -> None:
    memory.remember_batch([*FACTS, "Order ZX-4471 shipped on Tuesday"])
    lexical = memory.recall("ZX-4471", mode="lexical", limit=3)
    assert [h.text for h in lexical] == ["Order ZX-4471 shipped on Tuesday"]
    assert lexical[0].score == 1.0
    vector = memory.recall("Sam lives in Boston", mode="vector", limit=3)
    assert vector[0].text == "Sam lives in Boston"
    assert vector[0].score == pytest.approx(vector[0].similarity)
    hybrid = memory.recall("ZX-4471 Boston", limit=3)
    assert {"Order ZX-4471 shipped on Tuesday", "Sam lives in Boston"} <= {h.text for h in hybrid}
    strict = memory.recall("Sam lives in Boston", limit=8, threshold=0.9)
    assert [h.text for h in strict] == ["Sam lives in Boston"]
    assert memory.recall("the and of", mode="lexical") == []  # only stopwords


def test_lexical_search_ors_the_query_words(store: Store) -> None:
    memory = store.memory()
    ids = memory.remember_batch(["alpha beta gamma", "beta delta", "epsilon"])
    hits = memory.backend.lexical_search(memory.namespace, "alpha beta nothing", 10)
    assert [i for i, _ in hits][:1] == [ids[0]]  # both words beat one
    assert {i for i, _ in hits} == {ids[0], ids[1]}
    assert all(score > 0 for _, score in hits)
    quoted = memory.backend.lexical_search(memory.namespace, 'it\'s "beta" (delta) | !', 10)
    assert quoted[0][0] == ids[1]


def test_namespaces_never_cross(store: Store) -> None:
    alice = store.memory(namespace="alice")
    bob = store.memory(namespace="bob")
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
    alice.add_instruction("Call me Al")  # not added twice
    assert alice.instructions.strip() == "Call me Al" and bob.instructions == ""
    assert store.backend().namespaces() == ["alice", "bob"]
    alice.forget(a_id)
    assert store.backend().namespaces() == ["bob"]


# -- several processes on one store ---------------------------------------------------------


def test_a_second_process_sees_writes_at_once(store: Store) -> None:
    writer = store.memory()
    reader = store.memory()
    seq0 = reader.backend.refresh()
    ids = writer.remember_batch(FACTS)
    assert len(reader) == len(FACTS)
    assert reader.recall("penicillin allergy", limit=1)[0].id == ids[0]  # no reopen, no wait
    for _ in range(3):
        reader.recall("Sam lives in Boston", limit=1)
    assert reader.recall("Sam lives in Boston", limit=1)[0].tier == "L1"
    writer.update(ids[2], text="Sam moved to Chicago")
    writer.forget(ids[0])
    seq1 = reader.backend.refresh()
    assert seq1 > seq0
    assert reader.backend.changed_ids("default", seq0) == set(ids)
    assert reader.backend.changed_ids("default", seq1) == set()
    assert reader.backend.changed_ids("other", seq0) == set()
    top = reader.recall("Sam lives in Boston", limit=1)[0]
    assert (top.id, top.text) == (ids[2], "Sam moved to Chicago")  # not the stale L1 copy
    assert ids[0] not in {h.id for h in reader.recall("penicillin allergy", limit=8)}
    assert ids[0] not in json.dumps(reader.cache_state())


def test_hit_counts_do_not_bump_seq_and_persist(store: Store) -> None:
    first = store.memory()
    ids = first.remember_batch(FACTS)
    seq = first.backend.refresh()
    for _ in range(7):
        first.recall("penicillin allergy", limit=1)
    first.recall("Boston", limit=1)
    first.flush()
    assert first.backend.refresh() == seq  # hits are not content changes
    second = store.memory()
    assert second.get(ids[0]).hit_count == 7
    assert second.get(ids[0]).last_accessed is not None
    state = second.cache_state()
    assert [e["id"] for e in state["protected"]] == [ids[0]]  # the 6+ hits rule
    assert ids[2] in [e["id"] for e in state["probation"]]
    assert second.recall("penicillin allergy", limit=1)[0].tier == "L1"


def test_concurrent_writers_lose_nothing(store: Store) -> None:
    writers = [store.memory() for _ in range(3)]
    seq0 = writers[0].backend.refresh()
    results: dict[int, list[str]] = {}
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            results[n] = [writers[n].remember(f"writer {n} fact {i}") for i in range(15)]
            writers[n].recall(f"writer {n} fact", limit=3)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    every = {i for ids in results.values() for i in ids}
    reader = store.memory()
    assert len(every) == len(reader) == 45
    assert reader.backend.refresh() == seq0 + 45  # one seq per write transaction
    assert reader.backend.changed_ids("default", seq0) == every


def test_a_write_in_another_os_process_is_visible(store: Store) -> None:
    memory = store.memory()
    memory.remember("kept before")
    assert memory.recall("kept before", limit=1)[0].text == "kept before"
    opener = (
        f"SQLiteBackend({store.target!r})"
        if store.kind == "sqlite"
        else f"PostgresBackend({store.target!r})"
    )
    run_python(
        "from embedders import HashingEmbedder\nfrom sem_mem import SemanticMemory\n"
        "from sem_mem.backends.sqlite import SQLiteBackend\n"
        "from sem_mem.backends.postgres import PostgresBackend\n"
        f"b = {opener}\n"
        "m = SemanticMemory(backend=b, embedder=HashingEmbedder())\n"
        "m.remember('Written by the other process about zebras')\n"
        "m.close(); b.close()"
    )
    assert memory.recall("zebras", limit=1)[0].text == "Written by the other process about zebras"
    assert len(memory) == 2


# -- embedding spaces and caches -----------------------------------------------------------


def test_opening_with_another_embedding_model_is_a_clear_error(store: Store) -> None:
    store.memory().remember_batch(FACTS)
    with pytest.raises(EmbeddingMismatchError) as info:
        store.memory(embedder=HashingEmbedder(32))
    message = str(info.value)
    assert "test:hashing-64" in message and "test:hashing-32" in message
    assert "reembed" in message


def test_reembed_moves_every_namespace_to_a_new_model(store: Store) -> None:
    memory = store.memory()
    memory.remember_batch(FACTS)
    other = store.memory(namespace="other")
    other_id = other.remember("Other namespace fact about penicillin")
    seq = memory.backend.refresh()
    assert memory.reembed(HashingEmbedder(32)) == len(FACTS) + 1
    assert memory.recall("penicillin allergy", limit=1)[0].text == FACTS[0]
    assert memory.backend.changed_ids("other", seq) == {other_id}
    reopened = store.memory(embedder=HashingEmbedder(32))
    assert reopened.recall("Sam Boston", limit=1)[0].text == "Sam lives in Boston"
    assert {m.embedding_model for m in reopened.list(limit=100)} == {"test:hashing-32"}
    with pytest.raises(EmbeddingMismatchError):
        store.memory()


def test_reembed_embeds_each_turn_with_its_speaker(store: Store) -> None:
    """The backend hands ``reembed`` every memory's speaker: a conversation turn's
    vector after a model change is the one a fresh ``remember_conversation`` makes."""
    memory = store.memory(embedder=PooledHashingEmbedder())
    turns = [
        {"speaker": "Ana", "text": "I moved to Porto in May. The river is lovely."},
        {"speaker": "Ben", "text": "Porto sounds great. I stayed in Lisbon instead."},
    ]
    ids = memory.remember_conversation(turns, thread_id="t")
    plain = memory.remember("Ana: I moved to Porto in May. The river is lovely.")
    new = PooledHashingEmbedder(32)
    memory.reembed(new)
    found = memory.backend.get_many("default", [*ids, plain])
    got = np.stack([found[i].embedding for i in (*ids, plain)])
    expected = new.embed_memories(
        [found[i].memory.text for i in (*ids, plain)], ["Ana", "Ben", None]
    )
    np.testing.assert_allclose(got, expected, atol=1e-6)


def test_a_rare_word_outranks_a_common_one_in_full_text(store: Store) -> None:
    """Full text weighs words by rarity (BM25's idf): the one memory about adoption
    comes first for "Caroline adoption", although twenty memories name Caroline and it
    was stored last."""
    memory = store.memory()
    places = ["park", "beach", "library", "museum", "market"]
    memory.remember_batch(
        [f"Caroline went to the {places[i % 5]} with friend number {i}" for i in range(20)]
    )
    adoption = memory.remember("Researching adoption agencies this week")
    hits = memory.recall("Caroline adoption", limit=5, mode="lexical")
    assert hits[0].id == adoption


def test_texts_are_not_embedded_twice(store: Store) -> None:
    embedder = HashingEmbedder()
    memory = store.memory(embedder=embedder)
    memory.remember_batch(FACTS)
    assert embedder.texts_embedded == len(FACTS)
    store.memory(embedder=embedder).remember_batch(FACTS, {"again": 1})  # from stored memories
    assert embedder.texts_embedded == len(FACTS)
    # another namespace embeds its own (a shared cache would leak through timing)
    store.memory(embedder=embedder, namespace="b").remember_batch(FACTS)
    total = 2 * len(FACTS)
    assert embedder.texts_embedded == total
    memory.recall("what is the query", limit=2)
    memory.recall("what is the query", limit=2)
    assert embedder.texts_embedded == total + 1
    memory.flush()
    store.memory(embedder=embedder).recall("what is the query", limit=2)  # persistent cache
    assert embedder.texts_embedded == total + 1


# -- export / import -------------------------------------------------------------------------


def test_export_import_round_trip(store: Store) -> None:
    memory = store.memory()
    ids = memory.remember_batch(FACTS, [{"i": i} for i in range(len(FACTS))])
    memory.supersede(ids[1], ids[2], "merged")
    for _ in range(2):
        memory.recall("penicillin allergy", limit=1)
    memory.set_instructions("Be brief")
    memory.flush()
    dump = "".join(memory.export_jsonl())
    target = store.sibling().memory()
    report = target.import_jsonl(io.StringIO(dump))  # instructions are opt-in
    assert (report.instructions, report.instructions_skipped, target.instructions) == (
        False,
        True,
        "",
    )
    assert (report.imported, report.skipped_existing, report.reembedded) == (len(FACTS), 0, 0)
    report = target.import_jsonl(io.StringIO(dump), with_instructions=True)
    assert report.instructions and target.instructions.strip() == "Be brief"
    before = {m.id: m for m in memory.list(include_superseded=True, limit=100)}
    after = {m.id: m for m in target.list(include_superseded=True, limit=100)}
    assert set(before) == set(after)
    for mid, m in before.items():
        n = after[mid]
        assert (n.text, n.metadata, n.status, n.superseded_by, n.hit_count) == (
            m.text,
            m.metadata,
            m.status,
            m.superseded_by,
            m.hit_count,
        )
        assert n.created_at == m.created_at
    assert target.recall("penicillin allergy", limit=1)[0].id == ids[0]
    again = target.import_jsonl(io.StringIO(dump))
    assert (again.imported, again.skipped_existing) == (0, len(FACTS))


def test_forgotten_then_reimported_memory_is_found_under_its_old_id(store: Store) -> None:
    # The re-imported row keeps its id but not its old row: lookups cached by the
    # first recall must not point at the gone row.
    memory = store.memory()
    ids = memory.remember_batch(FACTS)
    assert memory.recall("penicillin allergy", limit=1, mode="vector")[0].id == ids[0]
    dump = [line for line in memory.export_jsonl() if ids[0] in line]
    memory.forget(ids[0])
    with pytest.raises(NotFoundError):
        memory.get(ids[0])
    assert memory.import_jsonl(dump).imported == 1
    assert memory.get(ids[0]).text == FACTS[0]
    hit = memory.recall("penicillin allergy", limit=1, mode="vector")[0]
    assert (hit.id, hit.text) == (ids[0], FACTS[0])


# -- vector search on a store with several namespaces -----------------------------------------


def test_vector_search_is_right_in_big_and_small_namespaces(store: Store) -> None:
    """A namespace that is a small share of the store still gets k results of its own
    (PostgreSQL filters after the HNSW scan: it must raise ef_search or scan exactly)."""
    if store.kind == "postgres":
        from sem_mem.backends.postgres import PostgresBackend

        # exercise the index path at test size
        backend: StorageBackend = PostgresBackend(store.target, exact_search_max=50)
        store.opened.append(backend)
    else:
        backend = store.backend()
    backend.bind_embedding_space("test:random-16", 16)
    rng = np.random.default_rng(3)
    sizes = {"big": 1200, "mid": 240, "tiny": 12}
    vectors = {}
    for namespace, size in sizes.items():
        vecs = rng.normal(size=(size, 16)).astype(np.float32)
        vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
        vectors[namespace] = vecs
        backend.add(
            namespace,
            [
                NewMemory(text=f"{namespace} {i}", embedding=v, content_hash=f"{namespace}-{i}")
                for i, v in enumerate(vecs)
            ],
            chunk_size=500,
        )
    ids = {ns: {f"{ns} {i}" for i in range(n)} for ns, n in sizes.items()}
    for namespace, vecs in vectors.items():
        texts = {i: m.memory.text for i, m in _by_id(backend, namespace).items()}  # id -> text
        for q in rng.normal(size=(5, 16)).astype(np.float32):
            q /= np.linalg.norm(q)
            hits = backend.vector_search(namespace, q, 10, ef=64)
            assert len(hits) == 10, namespace
            found = [texts[i] for i, _ in hits]
            assert set(found) <= ids[namespace]
            exact = np.argsort(-(vecs @ q))[:10]
            expected = [f"{namespace} {i}" for i in exact]
            assert found[0] == expected[0]
            assert len(set(found) & set(expected)) >= 8
            sims = [s for _, s in hits]
            assert sims == sorted(sims, reverse=True)
            assert sims[0] == pytest.approx(float(vecs[exact[0]] @ q), abs=1e-5)


def _by_id(backend: StorageBackend, namespace: str) -> dict[str, Any]:
    return {m.memory.id: m for m in backend.iter_memories(namespace)}


# -- properties ------------------------------------------------------------------------------

texts_strategy = st.lists(
    st.text(alphabet=st.characters(categories=["L", "N", "Zs"]), min_size=1, max_size=60)
    .map(str.strip)
    .filter(bool),
    min_size=1,
    max_size=20,
    unique=True,
)


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(texts=texts_strategy)
@pytest.mark.slow  # 15 generated examples per backend
def test_what_is_remembered_can_be_recalled(store: Store, texts: list[str]) -> None:
    namespace = f"prop-{abs(hash(tuple(texts)))}"  # each example in a namespace of its own
    memory = store.memory(namespace=namespace)
    try:
        ids = memory.remember_batch(texts, dedupe=False)
        assert len(set(ids)) == len(memory) == len(texts)
        for text, mid in zip(texts, ids, strict=True):
            hits = memory.recall(text, limit=len(texts), mode="vector")
            assert mid in {h.id for h in hits}
            assert memory.get(mid).text == text
    finally:
        memory.backend.delete(namespace, [m.id for m in memory.list(limit=100)])


# -- PostgreSQL only -------------------------------------------------------------------------


@pytest.fixture
def pg_url() -> Iterator[str]:
    with cluster_or_skip().database() as url:
        yield url


@pytest.mark.postgres
def test_pg_migrations_are_applied_once_by_concurrent_openers(pg_url: str) -> None:
    import psycopg

    from sem_mem.backends.postgres import PostgresBackend
    from sem_mem.backends.postgres_schema import MIGRATIONS

    opened: list[PostgresBackend] = []
    errors: list[BaseException] = []

    def open_one() -> None:
        try:
            opened.append(PostgresBackend(pg_url, pool_size=1))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(opened) == 4
    assert len({b.store_id for b in opened}) == 1
    with psycopg.connect(pg_url) as conn:
        versions = conn.execute("SELECT version FROM schema_migrations ORDER BY 1").fetchall()
    assert versions == sorted((v,) for v, _, _ in MIGRATIONS)  # each exactly once
    for b in opened:
        b.close()


@pytest.mark.postgres
def test_pg_uses_the_hnsw_index_and_refuses_nul(pg_url: str) -> None:
    import psycopg

    from sem_mem.backends.postgres import PostgresBackend, redact_url
    from sem_mem.backends.postgres_schema import namespace_index_name

    backend = PostgresBackend(pg_url, exact_search_max=100)
    memory = SemanticMemory(backend=backend, embedder=HashingEmbedder())
    filler = [f"note {i} on ward rounds and topic {i % 13}" for i in range(1000)]
    memory.remember_batch([*FACTS, *filler])
    with pytest.raises(ValidationError, match="NUL"):
        memory.remember("bad \x00 text")
    assert len(memory) == len(FACTS) + len(filler)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("ANALYZE memories")
    query = "When does the clinic open on weekdays?"
    plans = dict(
        memory.backend.explain(  # type: ignore[attr-defined]
            "default", query, memory.embedder.encode([query])[0]
        )
    )
    assert namespace_index_name("default") in plans["vector recall: vector search"]
    assert namespace_index_name("default") in plans["hybrid recall: vector search"]
    assert "memories_tsv" in plans["hybrid recall: full-text search"]
    assert memory.recall(query, limit=1, mode="lexical")[0].text.startswith("The clinic")
    assert redact_url("postgresql://u:secret@h/db") == "postgresql://u:***@h/db"
    assert "secret" not in json.dumps(memory.stats(), default=str)
    memory.close()
    memory.backend.close()


_API_SERVER = """
import socket, sys
import uvicorn
from embedders import HashingEmbedder, PooledHashingEmbedder
from sem_mem.config import resolve_settings
from sem_mem.server import ServerConfig, create_app

sock = socket.socket(fileno=int(sys.argv[1]))
settings = resolve_settings(
    env={}, dotenv_path=None, secrets_path=None, database_url=sys.argv[2], storage_dir=sys.argv[3]
)
app = create_app(settings, embedder=HashingEmbedder(), config=ServerConfig())
uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on")).run(sockets=[sock])
"""


@pytest.mark.slow
@pytest.mark.postgres
def test_two_api_server_processes_share_one_database(pg_url: str, tmp_path: Path) -> None:
    """Two uvicorn processes on 127.0.0.1 (a load balancer's view): a memory written
    through one is recalled through the other at once, and an update made through one
    is not hidden by the other's L1 cache."""
    import socket
    import subprocess
    import sys

    httpx = pytest.importorskip("httpx")
    pytest.importorskip("uvicorn")
    from conftest import python_env

    servers: list[subprocess.Popen[bytes]] = []
    urls: list[str] = []
    try:
        for n in range(2):
            # bound and listening before the process starts: clients connect at once and
            # wait in the backlog until uvicorn accepts (no sleeping, no port guessing)
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sock.listen(64)
            urls.append(f"http://127.0.0.1:{sock.getsockname()[1]}")
            servers.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-c",
                        _API_SERVER,
                        str(sock.fileno()),
                        pg_url,
                        str(tmp_path / f"unused{n}"),
                    ],
                    pass_fds=[sock.fileno()],
                    env=python_env(),
                )
            )
            sock.close()
        a, b = (httpx.Client(base_url=url, timeout=60) for url in urls)
        with a, b:
            mid = a.post("/remember", json={"text": "The shared locker code is 5521"}).json()["id"]
            found = b.post("/recall", json={"query": "locker code", "limit": 3}).json()
            assert [m["id"] for m in found["memories"]] == [mid]
            for _ in range(3):  # hot in b's L1
                b.post("/recall", json={"query": "locker code", "limit": 1})
            assert a.patch(f"/memories/{mid}", json={"text": "The locker code is 7788"}).is_success
            found = b.post("/recall", json={"query": "locker code", "limit": 1}).json()
            assert found["memories"][0]["text"] == "The locker code is 7788"
            assert b.delete(f"/memories/{mid}").status_code == 204
            assert a.get(f"/memories/{mid}").status_code == 404
            assert a.post("/recall", json={"query": "locker code"}).json()["memories"] == []
    finally:
        for server in servers:
            server.terminate()
        for server in servers:
            server.wait(timeout=30)


@pytest.mark.postgres
@pytest.mark.slow  # a bulk load, then an index lost and rebuilt
def test_pg_bulk_load_builds_the_index_once_and_a_lost_index_is_rebuilt(pg_url: str) -> None:
    import psycopg

    import sem_mem.backends.postgres as pg
    from sem_mem.backends.postgres_schema import namespace_index_name

    def index_exists(namespace: str = "default") -> bool:
        with psycopg.connect(pg_url) as conn:
            name = namespace_index_name(namespace)
            return conn.execute("SELECT to_regclass(%s)", (name,)).fetchone()[0] is not None

    backend = pg.PostgresBackend(pg_url, bulk_load_min=100, exact_search_max=10)
    memory = SemanticMemory(backend=backend, embedder=HashingEmbedder())
    memory.remember("a first fact")
    assert not index_exists()  # a small namespace is searched exactly
    built: list[bool] = []
    texts = [f"bulk fact number {i} about topic {i % 7}" for i in range(300)]
    ids = memory.remember_batch(
        texts, chunk_size=100, progress=lambda d, t: built.append(index_exists())
    )
    assert built[-3:] == [False, False, False]  # loaded without the index...
    assert index_exists()  # ...which is built once at the end, for this namespace only
    assert not index_exists("other")
    assert len(memory) == 301
    # (the hashing embedder gives texts 74 and 123 the same vector: either may come first)
    assert ids[123] in [r.id for r in memory.recall(texts[123], limit=2, mode="vector")]
    other = SemanticMemory(
        backend=backend,
        embedder=HashingEmbedder(),
        settings=memory.settings.with_overrides(namespace="other"),
    )
    few = other.remember_batch([f"other fact {i}" for i in range(12)])  # crosses the limit
    assert index_exists("other")
    assert other.recall("other fact 7", limit=1, mode="vector")[0].id == few[7]
    with psycopg.connect(pg_url, autocommit=True) as conn:  # as if a load had crashed midway
        conn.execute(f"DROP INDEX {namespace_index_name('default')}")
    assert memory.recall(texts[42], limit=1, mode="vector")[0].id == ids[42]  # exact meanwhile
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("DELETE FROM vector_indexes")
    reopened = pg.PostgresBackend(pg_url, exact_search_max=10)
    assert index_exists() and index_exists("other")
    reopened.close()
    other.close()
    memory.close()
    backend.close()


# -- conversations and recall filters ---------------------------------------------------------

CHAT = [
    {"speaker": "Caroline", "text": "I went to the adoption agency on Friday"},
    {"role": "Melanie", "content": "How did it go?"},
    {"speaker": "Caroline", "text": "They said the home study takes three months"},
    {"speaker": "Melanie", "text": "My kids painted the garden fence blue"},
]


def test_remember_conversation_records_thread_order_and_speakers(store: Store) -> None:
    memory = store.memory()
    ids = memory.remember_conversation(CHAT, thread_id="s1", timestamp="2023-05-08T13:56:00")
    assert len(ids) == 4
    turns = [memory.get(i) for i in ids]
    assert [t.position for t in turns] == [0, 1, 2, 3]
    assert {t.thread_id for t in turns} == {"s1"} and {t.source for t in turns} == {"thread"}
    assert [t.speaker for t in turns] == ["Caroline", "Melanie", "Caroline", "Melanie"]
    assert turns[0].text == "Caroline: I went to the adoption agency on Friday"
    assert turns[0].happened_at.isoformat() == "2023-05-08T13:56:00+00:00"
    # more turns continue the thread; the same turns at the same places are not copied
    more = memory.remember_conversation(
        [{"speaker": "Caroline", "text": "Lovely!"}], thread_id="s1"
    )
    assert memory.get(more[0]).position == 4
    again = memory.remember_conversation(
        [{**turn, "position": n} for n, turn in enumerate(CHAT)],
        thread_id="s1",
        timestamp="2023-05-08T13:56:00",
    )
    assert again == ids and len(memory) == 5
    listed = memory.list(thread_id="s1", newest_first=False)
    assert [m.id for m in listed] == [*ids, more[0]]
    # a new thread gets a generated id; another process sees it all
    other = memory.remember_conversation(CHAT[:2])
    assert memory.get(other[0]).thread_id not in (None, "s1")
    seen = store.memory().get(ids[2])
    assert (seen.thread_id, seen.position, seen.speaker) == ("s1", 2, "Caroline")


def test_remember_batch_takes_one_time_per_text(store: Store) -> None:
    memory = store.memory()
    times = ["2023-05-08T13:56:00", None, 1.6e9]
    ids = memory.remember_batch(["the lake trip", "the party", "the move"], timestamp=times)
    got = [memory.get(i).happened_at for i in ids]
    assert got[0].isoformat() == "2023-05-08T13:56:00+00:00"
    assert got[2].timestamp() == 1.6e9 and got[1] > got[0]  # None: now
    hits = memory.recall("the lake trip, the party and the move", until="2021-01-01")
    assert [h.text for h in hits] == ["the move"]
    for bad, message in (
        (times[:2], "2 entries for 3 texts"),
        ([None, "last may", None], r"timestamp\[1\]"),
    ):
        with pytest.raises(ValidationError, match=message):
            memory.remember_batch(["a", "b", "c"], timestamp=bad)
    assert len(memory) == 3  # nothing of a refused batch was stored


def test_remember_batch_of_thread_turns_stores_a_thread_with_speakers(store: Store) -> None:
    """``remember_batch(source="thread")`` reads its texts as the turns of one
    conversation, as the first release did: in order, each with its speaker."""
    memory = store.memory()
    lines = [f"{t.get('speaker', t.get('role'))}: {t.get('text', t.get('content'))}" for t in CHAT]
    metas: list[dict[str, Any] | None] = [None] * len(lines)
    lines.append("Glad to help with the paperwork")  # no label: the metadata names the role
    metas.append({"role": "assistant"})
    ids = memory.remember_batch(lines, metas, source="thread")
    turns = [memory.get(i) for i in ids]
    assert [t.position for t in turns] == list(range(len(lines)))
    assert len({t.thread_id for t in turns}) == 1 and turns[0].thread_id
    speakers = [t.speaker for t in turns]
    assert speakers == ["Caroline", "Melanie", "Caroline", "Melanie", "assistant"]
    assert [t.text for t in turns] == lines  # stored as given
    assert memory.remember_batch(lines, metas, source="thread") == ids  # dedupe still holds
    # the transcript stored again, grown: only the new turn is added, after the others
    grown = memory.remember_batch([*lines, "Caroline: Thanks!"], [*metas, None], source="thread")
    assert grown[:-1] == ids and len(memory) == len(lines) + 1
    assert memory.get(grown[-1]).position == len(lines)
    # other sources are not conversations: no thread, no speaker read from the text
    plain = memory.get(memory.remember_batch(["Note: the lake was cold"])[0])
    assert (plain.thread_id, plain.speaker) == (None, None)
    # the speakers count in recall, as for remember_conversation
    memory.remember_batch(
        [
            "Melanie: I finished a painting of the lake at sunset",
            "Caroline: I finished a painting of the lake last week",
        ],
        source="thread",
    )
    for speaker in ("Caroline", "Melanie"):
        top = memory.recall(f"What did {speaker} say about her painting of the lake?", limit=2)
        assert top[0].speaker == speaker


@pytest.mark.slow  # two spawned processes
def test_two_processes_appending_to_one_thread_at_once_keep_every_turn(
    store: Store, tmp_path: Path
) -> None:
    """Both writers read where the thread ends, then both write (they meet at a barrier
    in between): every acknowledged turn is kept once, each call's turns together and
    in order, at distinct places, though each call ends with the same words."""
    where = "storage_dir" if store.kind == "sqlite" else "database_url"
    target = {where: store.target}
    if store.kind != "sqlite":
        target["storage_dir"] = str(tmp_path / "unused")
    store.memory(namespace="alice").close()  # the schema and space exist before the race
    rounds, size, writers = 3, 3, ("ana", "ben")
    barrier, acked = SPAWN.Barrier(len(writers)), SPAWN.Queue()
    run_processes([(append_turns, (target, w, rounds, size, barrier, acked)) for w in writers])
    calls = {
        (name, r): ids
        for name, r, ids in (acked.get(timeout=10) for _ in range(len(writers) * rounds))
    }

    memory = store.memory(namespace="alice")
    thread = memory.list(thread_id=THREAD, newest_first=False, limit=100)
    assert [t.position for t in thread] == list(range(len(writers) * rounds * size))
    assert sorted(t.id for t in thread) == sorted(i for ids in calls.values() for i in ids)
    # the thread is the calls one after the other, each whole and in its own order
    order: list[tuple[str, int]] = []
    for start in range(0, len(thread), size):
        part = thread[start : start + size]
        name = part[0].speaker
        round_ = sum(1 for n, _ in order if n == name)
        assert [t.id for t in part] == calls[(name, round_)]
        assert [t.text for t in part] == [
            f"{t['speaker']}: {t['text']}" for t in batch_of(name, round_, size)
        ]
        order.append((name, round_))
    assert sorted(order) == sorted(calls)


def test_remember_conversation_rejects_bad_turns_and_stores_nothing(store: Store) -> None:
    memory = store.memory()
    bad: list[tuple[Any, str]] = [
        ("hello", "list of dicts"),
        ([{"text": "no speaker"}], r"turns\[0\] needs a 'speaker'"),
        ([{"speaker": "A"}], r"turns\[0\] needs a 'text'"),
        ([CHAT[0], {"speaker": "B", "text": "  "}], r"turns\[1\]\.text is empty"),
        ([{**CHAT[0], "timestamp": "last May"}], r"turns\[0\]\.timestamp"),
        ([{**CHAT[0], "timestamp": float("inf")}], r"turns\[0\]\.timestamp"),
        ([{**CHAT[0], "position": -1}], r"turns\[0\]\.position"),
        ([{**CHAT[0], "colour": "red"}], "unknown keys: colour"),
    ]
    for turns, message in bad:
        with pytest.raises(ValidationError, match=message):
            memory.remember_conversation(turns)
    assert len(memory) == 0
    with pytest.raises(ValidationError, match="timestamp"):
        memory.remember("x", timestamp=1e300)


def test_recall_filters_find_one_match_among_thousands_of_closer_memories(store: Store) -> None:
    memory = store.memory()
    twins = [f"the quarterly budget review meeting is on floor {i}" for i in range(3000)]
    memory.remember_batch(twins, metadata={"team": "finance"}, timestamp="2024-01-10")
    target = memory.remember(
        "budget notes for the garden club", metadata={"team": "garden", "year": 2023},
        source="document", timestamp="2023-06-01T10:00:00",
    )  # fmt: skip
    query = "the quarterly budget review meeting"
    for mode in ("hybrid", "vector", "lexical"):
        assert target not in [h.id for h in memory.recall(query, limit=10, mode=mode)]
        by_meta = memory.recall(query, limit=5, mode=mode, metadata={"team": "garden"})
        assert [h.id for h in by_meta] == [target], mode
        assert [h.id for h in memory.recall(query, limit=5, mode=mode, source="document")] == [
            target
        ]
        window = memory.recall(query, limit=5, mode=mode, since="2023-01-01", until="2024-01-01")
        assert [h.id for h in window] == [target], mode
        assert memory.recall(query, mode=mode, metadata={"year": "2023"}) == []  # not equal
        assert memory.recall(query, mode=mode, until="2023-06-01T10:00:00") == []
    hit = memory.recall("garden", limit=1, metadata={"year": 2023})[0]
    assert hit.timestamp is not None and hit.timestamp.year == 2023
    with pytest.raises(ValidationError, match="since"):
        memory.recall(query, since="yesterday-ish")
    with pytest.raises(ValidationError, match="source"):
        memory.recall(query, source="bogus")


def test_rerank_reorders_the_best_candidates_within_the_filters(store: Store) -> None:
    from test_rerank import FILLER, MarkedReranker

    reranker = MarkedReranker()
    memory = store.memory(reranker=reranker)
    memory.remember_batch(FILLER, metadata={"team": "a"})
    marked = memory.remember_conversation(
        [{"speaker": "Ada", "text": "zebra zebra: the weekly report about budgets was approved"}],
        metadata={"team": "a"},
    )[0]
    other = memory.remember("zebra zebra zebra zebra: budgets", {"team": "b"})
    query = "weekly report about project budgets"
    assert memory.recall(query, 3, rerank=False, metadata={"team": "a"})[0].id != marked
    found = memory.recall(query, 3, metadata={"team": "a"})
    assert found[0].id == marked and other not in [h.id for h in found]
    assert "Ada: zebra zebra: the weekly report about budgets was approved" in reranker.seen[-1][1]
    memory.forget(marked)  # gone from the store: never a reranked result
    assert marked not in [h.id for h in memory.recall(query, 30, metadata={"team": "a"})]


@pytest.mark.slow  # a namespace above the exact-search size
def test_recall_filters_in_a_big_namespace_use_the_graph(store: Store) -> None:
    memory = store.memory()
    texts = [f"note {i} about topic {i % 97} and item {i % 13}" for i in range(6000)]
    metas = [{"bucket": i % 3} for i in range(6000)]
    ids = memory.remember_batch(texts, metas)
    # (the full text: with the shorter "note 4500 about topic" the hashing embedder ties
    # a dozen memories at one similarity, and which of them makes the top 10 is arbitrary)
    hits = memory.recall(texts[4500], limit=10, mode="vector", metadata={"bucket": 0})
    assert len(hits) == 10
    assert all(memory.get(h.id).metadata == {"bucket": 0} for h in hits)
    assert ids[4500] in [h.id for h in hits]  # 4500 % 3 == 0: its own text is nearest


def test_export_import_keeps_threads_and_timestamps(store: Store) -> None:
    memory = store.memory(namespace="src")
    ids = memory.remember_conversation(CHAT, thread_id="s9", timestamp="2023-05-08T13:56:00")
    memory.remember("a plain fact", timestamp=1_600_000_000)
    lines = list(memory.export_jsonl())
    copy = store.sibling().memory(namespace="dst")
    assert copy.import_jsonl(lines).imported == 5
    turns = copy.list(thread_id="s9", newest_first=False)
    assert [(t.id, t.position, t.speaker) for t in turns] == [
        (i, n, CHAT[n].get("speaker", CHAT[n].get("role"))) for n, i in enumerate(ids)
    ]
    assert turns[0].happened_at.isoformat() == "2023-05-08T13:56:00+00:00"
    fact = copy.list(source="manual")[0]
    assert fact.happened_at.timestamp() == 1_600_000_000 and fact.thread_id is None


def test_recall_weighs_the_speaker_and_the_date_a_query_names(store: Store) -> None:
    memory = store.memory()
    memory.remember_conversation(
        [
            {"speaker": "Melanie", "text": "I finished a painting of the lake at sunset"},
            {"speaker": "Caroline", "text": "I finished a painting of the lake last week"},
        ],
        thread_id="a",
    )
    for speaker in ("Caroline", "Melanie"):
        top = memory.recall(f"What did {speaker} say about her painting of the lake?", limit=2)
        assert top[0].speaker == speaker
    # the same words on two days: only when it happened can tell them apart
    for when in ("2023-03-02T10:00:00", "2023-05-08T18:30:00"):
        memory.remember_conversation(
            [{"speaker": "Jon", "text": "I sold a painting at the market"}], timestamp=when
        )
    for day, month in (("2 March, 2023", 3), ("8 May 2023", 5)):
        top = memory.recall(f"Which painting did Jon sell on {day}?", limit=2)
        assert top[0].happened_at.month == month


def test_recall_lifts_the_speakers_a_query_names_in_a_group_chat(store: Store) -> None:
    memory = store.memory()
    said = "I finished a painting of the lake at sunset"
    people = ("Ana", "Ben", "Cy", "Dee")
    memory.remember_conversation([{"speaker": p, "text": said} for p in people], thread_id="g")
    top = memory.recall("What did Cy and Dee say about their painting of the lake?", limit=4)
    assert {h.speaker for h in top[:2]} == {"Cy", "Dee"}
    everyone = memory.recall("What did Ana, Ben, Cy and Dee paint at the lake?", limit=4)
    assert len({round(h.score, 6) for h in everyone}) == 1  # naming all singles no one out


def test_recall_lifts_the_context_of_a_burst_of_short_messages(store: Store) -> None:
    """In a messaging app one thought is several messages in a row: the turns around a
    hit are counted in speaker turns, so a burst is context as a whole turn would be."""
    memory = store.memory()
    memory.remember_conversation(
        [
            {"speaker": "Ana", "text": "Guess what happened at my pottery class today"},
            {"speaker": "Ana", "text": "The teacher came over"},
            {"speaker": "Ana", "text": "She looked at everything"},
            {"speaker": "Ana", "text": "Three of my bowls go to the June exhibition"},
            {"speaker": "Ben", "text": "Congratulations!"},
        ],
        thread_id="chat",
    )
    memory.remember_batch([f"Grocery list item {n}: oat milk and rye bread" for n in range(8)])
    memory.remember_batch(
        [
            "Ben had news about his pottery class trip",
            "What news? Ana asked about the class",
            "The pottery shop sells bowls",
            "Ana had a cold today",
        ]
    )
    question = "What news did Ana have about her pottery class?"
    answer = "Ana: Three of my bowls go to the June exhibition"
    assert answer in [h.text for h in memory.recall(question, limit=5)]
    memory.fusion = memory.fusion.but(neighbour_span=2)  # neighbours by place only
    memory._results.clear()
    assert answer not in [h.text for h in memory.recall(question, limit=5)]


def test_recall_looks_a_few_days_past_a_date_the_query_names(store: Store) -> None:
    """ "Yesterday I sold ..." said on 9 May answers a question about 8 May: memories
    from the week after a named date share its bonus (at half weight)."""
    memory = store.memory()
    memory.remember_conversation(
        [{"speaker": "Jon", "text": "I sold a painting at the market"}],
        timestamp="2023-03-20T10:00:00",
    )
    memory.remember_conversation(
        [
            {
                "speaker": "Jon",
                "text": "Yesterday I sold a painting at the market, after a long wet morning",
            }
        ],
        timestamp="2023-05-09T09:00:00",
    )
    question = "Which painting did Jon sell at the market on 8 May 2023?"
    top = memory.recall(question, limit=2)
    assert top[0].happened_at.month == 5
    memory.fusion = memory.fusion.but(date_lookback_days=0)
    memory._results.clear()
    assert memory.recall(question, limit=2)[0].happened_at.month == 3  # the better match


# -- chat sessions -----------------------------------------------------------------------


def test_chat_sessions_are_kept_per_namespace_and_seen_by_another_process(store: Store) -> None:
    from sem_mem.backends.base import ChatSessionRecord

    first = store.backend()
    state = {"messages": [{"role": "user", "content": "héllo"}], "saved_upto": 0}
    first.save_chat_session("alice", ChatSessionRecord("s1", "t", state, 1.0, 2.0, "resp_1"))
    first.save_chat_session("alice", ChatSessionRecord("s2", "", {}, 1.0, 3.0))
    first.save_chat_session("bob", ChatSessionRecord("s1", "bob's", {"x": 1}, 1.0, 5.0, "resp_9"))

    other = store.backend()  # another process on the same store
    got = other.get_chat_session("alice", "s1")
    assert got is not None and (got.title, got.state, got.revision) == ("t", state, 1)
    assert [r.id for r in other.list_chat_sessions("alice")] == ["s2", "s1"]  # newest first
    assert [r.id for r in other.list_chat_sessions("alice", limit=1, offset=1)] == ["s1"]
    assert other.chat_session_of_response("alice", "resp_1") == "s1"
    assert other.chat_session_of_response("alice", "resp_9") is None  # bob's, not alice's
    assert other.get_chat_session("carol", "s1") is None

    newer = {"messages": [], "saved_upto": 0}
    # a save carries the revision it read
    saved = ChatSessionRecord("s1", "t2", newer, 9.0, 4.0, "resp_2", revision=got.revision)
    assert other.save_chat_session("alice", saved) == 2
    got = first.get_chat_session("alice", "s1")
    assert got is not None and (got.title, got.state, got.created_at) == ("t2", newer, 1.0)
    assert first.chat_session_of_response("alice", "resp_1") == "s1"  # older answers still trace

    assert first.delete_chat_session("alice", "s1") is True
    assert first.delete_chat_session("alice", "s1") is False
    assert other.get_chat_session("alice", "s1") is None
    assert other.chat_session_of_response("alice", "resp_2") is None
    assert other.get_chat_session("bob", "s1") is not None  # bob's session untouched


def test_a_chat_session_save_never_overwrites_a_save_it_did_not_read(store: Store) -> None:
    from dataclasses import replace

    from sem_mem import SessionConflictError
    from sem_mem.backends.base import ChatSessionRecord

    a, b = store.backend(), store.backend()  # two processes on one store
    new = ChatSessionRecord("s1", "plan", {"messages": ["a1"]}, 1.0, 1.0, "resp_a1")
    assert a.save_chat_session("alice", new) == 1
    # b also thinks it creates s1: refused, a's session stays whole
    with pytest.raises(SessionConflictError, match="s1"):
        b.save_chat_session("alice", replace(new, state={"messages": ["b1"]}, response_id="x"))
    read_by_a, read_by_b = a.get_chat_session("alice", "s1"), b.get_chat_session("alice", "s1")
    assert read_by_a is not None and read_by_b is not None
    assert read_by_a.revision == read_by_b.revision == 1

    # both read revision 1; a saves first; b's save of what it read is refused whole
    assert a.save_chat_session("alice", replace(read_by_a, state={"messages": ["a1", "a2"]})) == 2
    lost = replace(read_by_b, state={"messages": ["a1", "b2"]}, response_id="resp_b2")
    with pytest.raises(SessionConflictError):
        b.save_chat_session("alice", lost)
    got = b.get_chat_session("alice", "s1")
    assert got is not None and (got.state, got.revision) == ({"messages": ["a1", "a2"]}, 2)
    assert [(r.id, r.revision) for r in b.list_chat_sessions("alice")] == [("s1", 2)]
    assert b.chat_session_of_response("alice", "resp_b2") is None  # nothing of it written
    assert b.chat_session_of_response("alice", "x") is None
    assert b.save_chat_session("alice", replace(lost, revision=2)) == 3  # read again: saved

    # bob's session of the same id is another session
    assert b.save_chat_session("bob", replace(new, revision=0)) == 1
    # a session deleted since it was read is not brought back by a stale save
    assert a.delete_chat_session("alice", "s1") is True
    with pytest.raises(SessionConflictError):
        b.save_chat_session("alice", replace(lost, revision=3))
    assert a.get_chat_session("alice", "s1") is None


def test_chat_session_namespaces_and_response_ids_are_listed_for_a_copy(store: Store) -> None:
    """What copy_store (``sem-mem migrate``) reads to carry sessions to another store."""
    from sem_mem.backends.base import ChatSessionRecord

    b = store.backend()
    assert b.chat_session_namespaces() == []
    revision = b.save_chat_session("bob", ChatSessionRecord("s1", "", {}, 1.0, 2.0, "r_b"))
    revision = b.save_chat_session(
        "bob", ChatSessionRecord("s1", "", {}, 1.0, 3.0, "r_a", revision=revision)
    )
    b.save_chat_session("bob", ChatSessionRecord("s1", "", {}, 1.0, 4.0, revision=revision))
    b.save_chat_session("alice", ChatSessionRecord("s1", "", {}, 1.0, 2.0, "r_c"))
    b.save_chat_session("alice", ChatSessionRecord("s2", "", {}, 1.0, 2.0))
    assert b.chat_session_namespaces() == ["alice", "bob"]
    assert b.chat_response_ids("bob", "s1") == ["r_a", "r_b"]  # every answer, not the last
    assert b.chat_response_ids("alice", "s1") == ["r_c"]  # alice's s1 is another session
    assert b.chat_response_ids("alice", "s2") == []
    assert b.delete_chat_session("bob", "s1") is True
    assert (b.chat_session_namespaces(), b.chat_response_ids("bob", "s1")) == (["alice"], [])


def test_chat_sessions_saved_at_once_by_two_processes_keep_every_turn(store: Store) -> None:
    """Two processes read one session, both answer, both save: nothing is lost, in the
    order the saves committed (memory-only mode: each turn is the user's message)."""
    from sem_mem.conversation import ChatSession

    m1, m2 = store.memory(namespace="alice"), store.memory(namespace="alice")

    def stored() -> list[str]:
        return [m.content for m in ChatSession.load(m1, "plan").thread]

    first = ChatSession.load(m1, "plan", create=True, title="Plan")
    second = ChatSession.load(m2, "plan", create=True)  # neither is stored yet
    first.send("A1")
    second.send("B1")
    first.persist()
    second.persist()  # created meanwhile by the first: B1 goes after A1
    assert stored() == ["A1", "B1"]
    assert second.thread == ChatSession.load(m1, "plan").thread
    assert ChatSession.load(m1, "plan").title == "Plan"  # kept: the second set none

    # long-lived sessions (two `sem-mem chat --session plan`): each turn is saved after
    # the other process's, and each then holds the whole thread
    first.send("A2")
    second.send("B2")
    second.persist()
    first.persist()
    assert stored() == ["A1", "B1", "B2", "A2"]
    assert [m.content for m in first.thread] == stored()

    # saving the thread races a new turn: neither the saved mark nor the turn is lost
    saver, talker = ChatSession.load(m1, "plan"), ChatSession.load(m2, "plan")
    assert len(saver.save_thread()) == 4
    saver.persist()
    talker.send("B3")
    talker.persist()
    again = ChatSession.load(m1, "plan")
    assert [m.content for m in again.thread] == ["A1", "B1", "B2", "A2", "B3"]
    assert [m1.get(i).text for i in again.save_thread()] == ["User: B3"]

    # a session deleted while a turn was in flight starts again with that turn
    late = ChatSession.load(m2, "plan")
    m1.backend.delete_chat_session("alice", "plan")
    late.send("After the delete")
    late.persist()
    assert stored() == ["After the delete"]


def test_two_processes_saving_the_threads_of_one_session_before_persisting_share_no_place(
    store: Store,
) -> None:
    """Both processes answer in one stored session, then each saves its thread and
    persists the session: each turn is saved once, at its place in the merged session
    (the places of turns not stored yet are not known: another process may take them)."""
    from sem_mem.conversation import ChatSession

    m1, m2 = store.memory(namespace="alice"), store.memory(namespace="alice")
    first = ChatSession.load(m1, "plan", create=True)
    second = ChatSession.load(m2, "plan", create=True)
    first.send("A1")
    second.send("B1")
    saved = first.save_thread() + second.save_thread()
    first.persist()
    second.persist()
    second.send("B2")
    first.send("A2")
    saved += second.save_thread() + first.save_thread()
    second.persist()
    first.persist()
    again = ChatSession.load(m1, "plan")
    assert [m.content for m in again.thread] == ["A1", "B1", "B2", "A2"]
    assert again.save_thread() == []  # every turn is saved already
    turns = m1.list(thread_id=again.thread_id, newest_first=False)
    assert [(t.position, t.text) for t in turns] == [
        (0, "User: A1"),
        (1, "User: B1"),
        (2, "User: B2"),
        (3, "User: A2"),
    ]
    assert set(saved) == {t.id for t in turns}


def test_a_chat_session_stored_before_revisions_continues(store: Store) -> None:
    """A store whose sessions were saved before migration 'chat sessions saved by
    revision' gets revision 1 for each and goes on saving them."""
    from sem_mem.conversation import ChatSession

    name = "chat sessions saved by revision, never over a save they did not read"
    session = ChatSession(store.memory(namespace="alice"), session_id="old", title="Old")
    session.send("Written by an older release")
    session.persist()
    store.close()
    # the store as the release before that migration left it
    undo = [
        "ALTER TABLE chat_sessions DROP COLUMN revision",
        f"DELETE FROM schema_migrations WHERE name = '{name}'",
    ]
    if store.kind == "sqlite":
        import sqlite3

        with sqlite3.connect(Path(store.target) / "memory.sqlite3") as conn:
            for sql in undo:
                conn.execute(sql)
        conn.close()
    else:
        import psycopg

        with psycopg.connect(store.target) as pg:
            for sql in undo:
                pg.execute(sql)

    memory = store.memory(namespace="alice")
    old = ChatSession.load(memory, "old")
    assert (old.revision, [m.content for m in old.thread]) == (1, ["Written by an older release"])
    old.send("Written after the upgrade")
    old.persist()
    again = ChatSession.load(store.memory(namespace="alice"), "old")
    assert again.revision == 2 and len(again.thread) == 2


def test_a_chat_session_continues_from_the_store(store: Store) -> None:
    from sem_mem.conversation import ChatSession

    memory = store.memory(namespace="alice")
    session = ChatSession(memory, session_id="trip", title="Trip")
    session.send("I am planning a trip to Lisbon in May")  # memory-only mode: no model
    session.persist()

    again = ChatSession.load(store.memory(namespace="alice"), "trip")
    assert [m.content for m in again.thread] == ["I am planning a trip to Lisbon in May"]
    assert again.title == "Trip"
    with pytest.raises(NotFoundError):
        ChatSession.load(store.memory(namespace="bob"), "trip")
    with pytest.raises(ValidationError, match="previous_response_id"):
        ChatSession.continuing(store.memory(namespace="alice"), "resp_from_elsewhere")


def test_a_memory_is_found_by_the_start_of_its_id(store: Store) -> None:
    memory = store.memory(namespace="alice")
    ids = [memory.remember(fact) for fact in FACTS[:4]]
    other = store.memory(namespace="bob").remember("bob's fact")
    backend = memory.backend
    assert backend.ids_with_prefix("alice", ids[0][:8]) == [ids[0]]
    assert backend.ids_with_prefix("alice", ids[0]) == [ids[0]]
    assert backend.ids_with_prefix("alice", other[:8]) == []  # another namespace's
    assert backend.ids_with_prefix("alice", "zz") == []
    assert backend.ids_with_prefix("alice", "") == []
    assert len(backend.ids_with_prefix("alice", "", limit=5)) == 0
    everything = backend.ids_with_prefix("alice", ids[0][:0] or "-", limit=10)
    assert everything == []  # uuids never start with "-"


@pytest.mark.postgres
def test_pg_a_migration_numbered_below_one_already_applied_still_runs(pg_url: str) -> None:
    """Branches add migration numbers in parallel: a database at version 6 that lacks an
    earlier number (merged later) must still get it, not be taken as up to date."""
    import psycopg

    from sem_mem.backends import postgres_schema
    from sem_mem.backends.postgres import PostgresBackend

    PostgresBackend(pg_url, pool_size=1).close()
    late = (2, "a migration merged after 6", "CREATE TABLE late_arrival (x int)")
    original = postgres_schema.MIGRATIONS
    postgres_schema.MIGRATIONS = sorted([*original, late])
    try:
        PostgresBackend(pg_url, pool_size=1).close()
    finally:
        postgres_schema.MIGRATIONS = original
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT to_regclass('late_arrival') IS NOT NULL").fetchone() == (True,)
