"""AsyncSemanticMemory: same operations as SemanticMemory, one implementation, no blocking."""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from embedders import HashingEmbedder

from sem_mem import SemanticMemory, ValidationError
from sem_mem.async_core import ASYNC_RENAMED, AsyncSemanticMemory, public_operations

FACTS = [
    "The patient is allergic to penicillin",
    "Sam is a cardiology fellow",
    "Sam lives in Boston",
    "The clinic opens at 8am on weekdays",
]

#: plain attributes of the sync engine that are not operations
SYNC_ATTRIBUTES = {"namespace", "settings", "embedder", "backend", "cache"}


def test_parity_every_sync_operation_exists_async() -> None:
    sync_ops = public_operations(SemanticMemory) | {"__len__"}
    async_ops = public_operations(AsyncSemanticMemory)
    missing = {ASYNC_RENAMED.get(name, name) for name in sync_ops} - async_ops
    assert not missing, f"AsyncSemanticMemory lacks {sorted(missing)}"
    extra = async_ops - {ASYNC_RENAMED.get(n, n) for n in sync_ops} - SYNC_ATTRIBUTES
    extra -= {"wrap", "sync"}
    assert extra <= {"max_concurrency"}, f"async-only operations: {sorted(extra)}"


def test_parity_methods_are_async_with_the_same_parameters() -> None:
    for name in public_operations(SemanticMemory):
        sync_attr = inspect.getattr_static(SemanticMemory, name)
        async_attr = inspect.getattr_static(AsyncSemanticMemory, name)
        if isinstance(sync_attr, property):
            assert isinstance(async_attr, property), name
            continue
        func = getattr(AsyncSemanticMemory, name)
        assert inspect.iscoroutinefunction(func) or inspect.isasyncgenfunction(func), name
        sync_params = list(inspect.signature(getattr(SemanticMemory, name)).parameters)
        async_params = list(inspect.signature(func).parameters)
        assert async_params == sync_params, name


def _same_story(do: Callable[..., Any]) -> list[Any]:
    """One session of every kind of operation, through ``do(operation, *args)``; what a
    user sees of each result, with ids replaced by their order of creation."""
    order: dict[str, int] = {}

    def ref(memory_id: str) -> int:
        return order.setdefault(memory_id, len(order))

    seen: list[Any] = []
    ids = do("remember_batch", FACTS, {"topic": "clinic"})
    seen.append([ref(i) for i in ids])
    extra = do("remember", "Order ZX-4471 shipped on Tuesday", {"kind": "order"})
    seen.append(ref(extra))
    for query in ("penicillin allergy",) * 3 + ("ZX-4471 Boston", "Sam lives in Boston"):
        hits = do("recall", query, 3)
        seen.append([(ref(h.id), h.text, round(h.score, 6), h.tier) for h in hits])
    updated = do("update", ids[2], text="Sam moved to Chicago")
    seen.append((ref(updated.id), updated.text, updated.metadata))
    seen.append([(e.event, e.text) for e in do("history", ids[2])])
    do("supersede", ids[3], extra, "replaced")
    do("forget", ids[0])
    seen.append([(ref(m.id), m.status, m.hit_count) for m in do("list", include_superseded=True)])
    do("add_instruction", "answer briefly")
    state = do("cache_state")
    seen.append({tier: sorted(ref(e["id"]) for e in entries) for tier, entries in state.items()})
    stats = do("stats")
    seen.append((stats["total_memories"], stats["superseded"], stats["l1"]["hit_rate"]))
    return seen


def test_async_results_are_the_sync_results(tmp_path: Path) -> None:
    """The async face adds no behaviour of its own: the same session through
    ``SemanticMemory`` and through ``AsyncSemanticMemory`` (on another store) shows the
    same results, the same L1 tiers and hit counts, the same history and cache."""
    with SemanticMemory(str(tmp_path / "sync"), embedder=HashingEmbedder()) as memory:
        expected = _same_story(lambda name, *a, **kw: getattr(memory, name)(*a, **kw))
        expected_instructions = memory.instructions
    amemory = AsyncSemanticMemory(str(tmp_path / "async"), embedder=HashingEmbedder())
    with asyncio.Runner() as runner:
        got = _same_story(lambda name, *a, **kw: runner.run(getattr(amemory, name)(*a, **kw)))
        instructions = runner.run(amemory.instructions)
        runner.run(amemory.close())
    assert got == expected
    assert instructions == expected_instructions == "answer briefly\n"


@pytest.fixture
def amemory(tmp_path: Path) -> AsyncSemanticMemory:
    return AsyncSemanticMemory(str(tmp_path / "store"), embedder=HashingEmbedder())


def test_operations_behave_like_sync(amemory: AsyncSemanticMemory) -> None:
    async def scenario() -> None:
        async with amemory as memory:
            first = await memory.remember("the patient is allergic to penicillin")
            ids = await memory.remember_batch(["cats purr", "dogs bark"], {"topic": "pets"})
            assert await memory.count() == 3
            hits = await memory.recall("penicillin allergy", 2)
            assert hits[0].id == first
            updated = await memory.update(first, text="allergic to amoxicillin")
            assert updated.text == "allergic to amoxicillin"
            assert [e.event for e in await memory.history(first)] == ["created", "updated"]
            await memory.forget(ids[0])
            assert await memory.count() == 2
            listed = await memory.list(metadata={"topic": "pets"})
            assert [m.id for m in listed] == [ids[1]]
            await memory.add_instruction("answer briefly")
            assert await memory.instructions == "answer briefly\n"
            assert (await memory.stats())["namespace"] == "default"
            assert set(await memory.cache_state()) == {"protected", "probation"}
            with pytest.raises(ValidationError):
                await memory.remember("   ")

    asyncio.run(scenario())
    assert amemory.sync._closed


def test_runs_in_worker_threads_not_the_event_loop(tmp_path: Path) -> None:
    loop_thread: list[int] = []
    seen: list[int] = []

    class Watching(HashingEmbedder):
        def embed_batch(self, texts):  # type: ignore[no-untyped-def]
            seen.append(threading.get_ident())
            return super().embed_batch(texts)

    async def scenario() -> None:
        loop_thread.append(threading.get_ident())
        async with AsyncSemanticMemory(str(tmp_path / "s"), embedder=Watching()) as memory:
            await memory.remember("embedded off the loop")

    asyncio.run(scenario())
    assert seen and loop_thread[0] not in seen


def test_wrap_shares_the_engine(memory: SemanticMemory) -> None:
    wrapped = AsyncSemanticMemory.wrap(memory)
    memory_id = asyncio.run(wrapped.remember("wrapped fact"))
    assert memory.get(memory_id).text == "wrapped fact"
    assert wrapped.namespace == memory.namespace


class RemoteHashing(HashingEmbedder):
    """A hashing embedder that says it calls an API, so batches are sliced."""

    needs_key = True

    def __init__(self) -> None:
        super().__init__()
        self.active = 0
        self.peak = 0
        self._lock = threading.Lock()
        self.gate = threading.Barrier(2, timeout=10)

    def embed_batch(self, texts):  # type: ignore[no-untyped-def]
        with self._lock:
            self.active += 1
            self.peak = max(self.peak, self.active)
        try:
            self.gate.wait()  # two slices must be in flight together to pass
        except threading.BrokenBarrierError:
            pass
        finally:
            with self._lock:
                self.active -= 1
        return super().embed_batch(texts)


def test_remember_batch_embeds_slices_concurrently_in_order(tmp_path: Path) -> None:
    embedder = RemoteHashing()
    texts = [f"fact number {i} about topic {i % 7}" for i in range(40)]
    progress: list[tuple[int, int]] = []

    async def scenario() -> list[str]:
        async with AsyncSemanticMemory(
            str(tmp_path / "s"), embedder=embedder, max_concurrency=2
        ) as memory:
            ids = await memory.remember_batch(
                texts, chunk_size=20, progress=lambda d, t: progress.append((d, t))
            )
            got = [(await memory.get(i)).text for i in ids]
            assert got == texts
            return ids

    ids = asyncio.run(scenario())
    assert len(set(ids)) == 40
    assert embedder.peak == 2
    assert progress[-1] == (40, 40)


def test_a_large_transcript_batch_stays_one_thread_with_a_remote_embedder(
    tmp_path: Path,
) -> None:
    """Slicing a batch for concurrent embedding must not cut a conversation in pieces."""
    embedder = RemoteHashing()
    embedder.gate = threading.Barrier(1)
    lines = [f"{'Ana' if i % 2 else 'Ben'}: message number {i}" for i in range(45)]

    async def scenario() -> list[Any]:
        async with AsyncSemanticMemory(str(tmp_path / "s"), embedder=embedder) as memory:
            ids = await memory.remember_batch(lines, source="thread", chunk_size=10)
            return [await memory.get(i) for i in ids]

    turns = asyncio.run(scenario())
    assert len({t.thread_id for t in turns}) == 1
    assert [t.position for t in turns] == list(range(len(lines)))
    assert [t.text for t in turns] == lines


def test_sliced_batches_keep_each_text_s_own_time(tmp_path: Path) -> None:
    embedder = RemoteHashing()
    embedder.gate = threading.Barrier(1)
    texts = [f"event number {i}" for i in range(25)]
    times = [1.5e9 + 86_400 * i for i in range(25)]

    async def scenario() -> list[float]:
        async with AsyncSemanticMemory(str(tmp_path / "s"), embedder=embedder) as memory:
            ids = await memory.remember_batch(texts, chunk_size=10, timestamp=times)
            with pytest.raises(ValidationError, match=r"timestamp\[24\]"):
                await memory.remember_batch(texts, chunk_size=10, timestamp=[*times[:24], "x"])
            assert await memory.count() == 25  # nothing of the refused batch
            return [(await memory.get(i)).happened_at.timestamp() for i in ids]

    assert asyncio.run(scenario()) == times


def test_remember_batch_validates_every_slice_before_storing(tmp_path: Path) -> None:
    embedder = RemoteHashing()
    embedder.gate = threading.Barrier(1)
    texts = [f"good text {i}" for i in range(30)] + ["   "]

    async def scenario() -> int:
        async with AsyncSemanticMemory(str(tmp_path / "s"), embedder=embedder) as memory:
            with pytest.raises(ValidationError, match=r"texts\[30\]"):
                await memory.remember_batch(texts, chunk_size=10)
            return await memory.count()

    assert asyncio.run(scenario()) == 0


def test_export_and_import_stream_async(tmp_path: Path) -> None:
    async def lines_of(items: list[str]) -> AsyncIterator[str]:
        for item in items:
            yield item

    async def scenario() -> None:
        async with (
            AsyncSemanticMemory(str(tmp_path / "a"), embedder=HashingEmbedder()) as source,
            AsyncSemanticMemory(str(tmp_path / "b"), embedder=HashingEmbedder()) as target,
        ):
            await source.remember_batch([f"memory {i}" for i in range(600)])
            exported = [line async for line in source.export_jsonl()]
            assert len(exported) == 601  # header + memories
            report = await target.import_jsonl(lines_of(exported))
            assert report.imported == 600
            assert await target.count() == 600

    asyncio.run(scenario())
