"""A stateful, model-based test of the public API on both backends.

Hypothesis drives random sequences of every operation that changes or reads a store
(remember, remember_batch, update, forget, recall in every mode, close and reopen,
and a write made by another OS process) against a plain dict model. Namespaces that
were never written to, and namespaces whose last memory was forgotten, are always in
reach: the store must stay usable in every one of them, in this process and after a
reopen. (A recall on an empty namespace once saved an index that bricked the
namespace for every later process.)
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import tempfile
from typing import Any, ClassVar

import pytest
from embedders import HashingEmbedder
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    initialize,
    invariant,
    multiple,
    precondition,
    rule,
)
from pg_server import cluster_or_skip

from sem_mem import NotFoundError, SemanticMemory

NAMESPACES = ("alpha", "beta", "gamma")  # gamma is often never written to
WORDS = ("apple", "river", "clinic", "boston", "violin", "penicillin", "tuesday", "garden")
texts = st.lists(st.sampled_from(WORDS), min_size=1, max_size=4).map(" ".join)
MODES = ("hybrid", "vector", "lexical")


def _writer_main(conn: Any) -> None:
    """Another OS process: opens the store for each request, remembers, closes."""
    import sys

    sys.path.insert(0, os.path.dirname(__file__))
    from embedders import HashingEmbedder as Embedder

    from sem_mem import SemanticMemory as Memory

    while True:
        request = conn.recv()
        if request is None:
            return
        token, kind, target, namespace, text = request
        try:
            options: dict[str, Any] = {"namespace": namespace, "embedder": Embedder()}
            if kind == "sqlite":
                memory = Memory(target, **options)
            else:
                memory = Memory(database_url=target, **options)
            with memory:
                conn.send((token, "ok", memory.remember(text)))
        except Exception as exc:  # reported to the test, which fails with it
            conn.send((token, "error", f"{type(exc).__name__}: {exc}"))


class OtherProcess:
    """A long-lived child process that writes to a store on request."""

    def __init__(self) -> None:
        context = multiprocessing.get_context("spawn")
        self.conn, child = context.Pipe()
        self.process = context.Process(target=_writer_main, args=(child,), daemon=True)
        self.process.start()
        self.sent = 0

    def remember(self, kind: str, target: str, namespace: str, text: str) -> str:
        self.sent += 1
        self.conn.send((self.sent, kind, target, namespace, text))
        while True:  # skip answers to requests abandoned by an interrupted step
            if not self.conn.poll(120):
                raise AssertionError("the other process did not answer in 120 s")
            token, status, value = self.conn.recv()
            if token == self.sent:
                break
        assert status == "ok", f"a write from another process failed: {value}"
        return str(value)

    def close(self) -> None:
        self.conn.send(None)
        self.process.join(30)


_other: OtherProcess | None = None


def other_process() -> OtherProcess:
    global _other
    if _other is None:
        _other = OtherProcess()
    return _other


@pytest.fixture(scope="module", autouse=True)
def _stop_other_process() -> Any:
    yield
    global _other
    if _other is not None:
        _other.close()
        _other = None


class MemoryModel(RuleBasedStateMachine):
    """Every namespace of one store against ``{namespace: {id: text}}``."""

    kind: ClassVar[str] = "sqlite"
    ids = Bundle("ids")

    def __init__(self) -> None:
        super().__init__()
        self.model: dict[str, dict[str, str]] = {ns: {} for ns in NAMESPACES}
        self.memories: dict[str, SemanticMemory] = {}
        self.turns: set[str] = set()  # ids stored by remember_conversation
        self._drop: Any = None
        if self.kind == "sqlite":
            self.target = tempfile.mkdtemp(prefix="semmem-model-")
        else:
            cluster = cluster_or_skip()
            name, self.target = cluster.create()
            self._drop = lambda: cluster.drop(name)

    # -- plumbing ---------------------------------------------------------------------

    def open(self, namespace: str) -> SemanticMemory:
        memory = self.memories.get(namespace)
        if memory is None:
            options: dict[str, Any] = {"namespace": namespace, "embedder": HashingEmbedder()}
            if self.kind == "sqlite":
                memory = SemanticMemory(self.target, **options)
            else:
                memory = SemanticMemory(database_url=self.target, **options)
            self.memories[namespace] = memory
        return memory

    def teardown(self) -> None:
        for memory in self.memories.values():
            memory.close()
        if self._drop is not None:
            self._drop()
        else:
            shutil.rmtree(self.target, ignore_errors=True)

    def _record(self, namespace: str, text: str, memory_id: str) -> None:
        # dedupe: the same text again in a namespace refreshes the one active copy
        # (conversation turns are told apart by their thread and place)
        existing = [
            i for i, t in self.model[namespace].items() if t == text and i not in self.turns
        ]
        if existing:
            assert memory_id in existing, "remembering a text again made a second copy"
        self.model[namespace][memory_id] = text

    # -- writes -----------------------------------------------------------------------

    @initialize()
    def touch_an_empty_namespace_first(self) -> None:
        # the sequence that bricked stores: a first recall in a namespace with nothing in it
        assert self.open("gamma").recall("anything at all") == []

    @rule(target=ids, namespace=st.sampled_from(NAMESPACES), text=texts)
    def remember(self, namespace: str, text: str) -> tuple[str, str]:
        memory_id = self.open(namespace).remember(text)
        self._record(namespace, text, memory_id)
        return (namespace, memory_id)

    @rule(
        target=ids,
        namespace=st.sampled_from(NAMESPACES),
        batch=st.lists(texts, min_size=1, max_size=5),
    )
    def remember_batch(self, namespace: str, batch: list[str]) -> Any:
        got = self.open(namespace).remember_batch(batch)
        assert len(got) == len(batch)
        for text, memory_id in zip(batch, got, strict=True):
            self._record(namespace, text, memory_id)
        return multiple(*[(namespace, i) for i in got])

    @rule(
        target=ids,
        namespace=st.sampled_from(NAMESPACES),
        turns=st.lists(st.tuples(st.sampled_from(("Ann", "Bo")), texts), min_size=1, max_size=4),
    )
    def remember_conversation(self, namespace: str, turns: list[tuple[str, str]]) -> Any:
        got = self.open(namespace).remember_conversation(
            [{"speaker": speaker, "text": text} for speaker, text in turns]
        )
        assert len(got) == len(set(got)) == len(turns)  # a new thread: every turn is new
        for (speaker, text), memory_id in zip(turns, got, strict=True):
            assert memory_id not in self.model[namespace]
            self.turns.add(memory_id)
            self.model[namespace][memory_id] = f"{speaker}: {text}"
        return multiple(*[(namespace, i) for i in got])

    @rule(namespace=st.sampled_from(NAMESPACES), mode=st.sampled_from(MODES), data=st.data())
    def recall_only_conversation_turns(
        self, namespace: str, mode: str, data: st.DataObject
    ) -> None:
        stored = {i: t for i, t in self.model[namespace].items() if i in self.turns}
        query = data.draw(st.sampled_from(sorted(stored.values())) if stored else texts)
        memory = self.open(namespace)
        hits = memory.recall(query, limit=10, mode=mode, source="thread")  # type: ignore[arg-type]
        assert {h.id for h in hits} <= set(stored), "a filtered recall leaked another source"
        if query in stored.values():
            assert any(h.text == query for h in hits), (mode, query)

    @rule(target=ids, namespace=st.sampled_from(NAMESPACES), text=texts)
    def remember_from_another_process(self, namespace: str, text: str) -> tuple[str, str]:
        memory_id = other_process().remember(self.kind, self.target, namespace, text)
        self._record(namespace, text, memory_id)
        return (namespace, memory_id)

    @rule(key=ids, text=texts)
    def update(self, key: tuple[str, str], text: str) -> None:
        namespace, memory_id = key
        memory = self.open(namespace)
        if memory_id not in self.model[namespace]:
            with pytest.raises(NotFoundError):
                memory.update(memory_id, text=text)
            return
        assert memory.update(memory_id, text=text).text == text
        self.model[namespace][memory_id] = text

    @rule(key=consumes(ids))
    def forget(self, key: tuple[str, str]) -> None:
        namespace, memory_id = key
        memory = self.open(namespace)
        if memory_id not in self.model[namespace]:  # a dedupe twin already forgotten
            with pytest.raises(NotFoundError):
                memory.forget(memory_id)
            return
        memory.forget(memory_id)
        del self.model[namespace][memory_id]
        with pytest.raises(NotFoundError):
            memory.get(memory_id)

    @precondition(lambda self: any(self.model.values()))
    @rule(namespace=st.sampled_from(NAMESPACES))
    def forget_everything(self, namespace: str) -> None:
        memory = self.open(namespace)
        for memory_id in list(self.model[namespace]):
            memory.forget(memory_id)
        self.model[namespace].clear()
        assert memory.recall("apple river") == []

    @rule(namespace=st.sampled_from(NAMESPACES))
    def close_and_reopen(self, namespace: str) -> None:
        memory = self.memories.pop(namespace, None)
        if memory is not None:
            memory.close()
        self.open(namespace)

    @rule()
    def close_and_reopen_everything(self) -> None:
        for memory in self.memories.values():
            memory.close()
        self.memories.clear()

    # -- reads ------------------------------------------------------------------------

    @rule(namespace=st.sampled_from(NAMESPACES), mode=st.sampled_from(MODES), data=st.data())
    def recall(self, namespace: str, mode: str, data: st.DataObject) -> None:
        stored = self.model[namespace]
        query = data.draw(st.sampled_from(sorted(stored.values())) if stored else texts)
        hits = self.open(namespace).recall(query, limit=10, mode=mode)  # type: ignore[arg-type]
        for hit in hits:
            assert stored.get(hit.id) == hit.text, "recall returned a memory the model lacks"
        assert len({h.id for h in hits}) == len(hits)
        if query in stored.values():
            # a stored text finds itself: every word matches, and its vector is identical
            assert any(h.text == query for h in hits), (mode, query, [h.text for h in hits])

    @rule(key=ids)
    def get(self, key: tuple[str, str]) -> None:
        namespace, memory_id = key
        memory = self.open(namespace)
        if memory_id in self.model[namespace]:
            assert memory.get(memory_id).text == self.model[namespace][memory_id]
        else:
            with pytest.raises(NotFoundError):
                memory.get(memory_id)

    @invariant()
    def every_namespace_counts_and_lists_what_the_model_holds(self) -> None:
        for namespace, memory in self.memories.items():
            assert len(memory) == len(self.model[namespace])
            assert memory.stats()["total_memories"] == len(self.model[namespace])
            listed = {m.id: m.text for m in memory.list(limit=1000)}
            assert listed == self.model[namespace]


MemoryModel.TestCase.settings = settings(
    max_examples=int(os.environ.get("SEMMEM_STATEFUL_EXAMPLES", "30")),
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


class TestSQLiteModel(MemoryModel.TestCase):
    pass


class PostgresModel(MemoryModel):
    kind = "postgres"


PostgresModel.TestCase.settings = settings(
    MemoryModel.TestCase.settings,
    # each example is a fresh database and every step a few round trips: fewer examples
    max_examples=max(1, MemoryModel.TestCase.settings.max_examples // 4),
    stateful_step_count=20,
)


@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.timeout(900)
class TestPostgresModel(PostgresModel.TestCase):
    pass
