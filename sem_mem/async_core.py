"""AsyncSemanticMemory: the asyncio face of :class:`~sem_mem.core.SemanticMemory`.

There is one implementation. Every operation here runs the synchronous method of one
wrapped ``SemanticMemory`` in a worker thread, so embedding, SQLite, hnswlib and LLM
calls never block the event loop::

    async with AsyncSemanticMemory("./local_memory") as memory:
        memory_id = await memory.remember("I am a physician")
        hits = await memory.recall("what do I do for a living?")

    # or wrap an existing engine (the server does this, one per namespace)
    amemory = AsyncSemanticMemory.wrap(SemanticMemory(...))

Differences from the synchronous API, all forced by ``async``:

* ``len(memory)`` becomes ``await memory.count()``;
* the ``instructions`` property is awaitable: ``await memory.instructions``;
* ``export_jsonl`` is an async iterator and ``import_jsonl`` also accepts one.

``tests/test_async.py`` checks that both classes expose the same operations.
"""

from __future__ import annotations

import asyncio
import builtins
import functools
import inspect
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Coroutine,
    Iterable,
    Iterator,
)
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar

from .core import SemanticMemory
from .errors import ValidationError
from .validation import Timestamp, clean_timestamps

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from .backends.base import StorageBackend, StoredMemory
    from .cache import SmartCache
    from .config import Settings
    from .embedders.base import Embedder
    from .llm.base import ChatModel
    from .rerankers.base import Reranker
    from .transfer import ImportReport

__all__ = ["ASYNC_RENAMED", "AsyncSemanticMemory"]

P = ParamSpec("P")
R = TypeVar("R")

#: synchronous operations that have another name on the async face
ASYNC_RENAMED = {"__len__": "count"}

#: how many lines ``export_jsonl`` pulls per trip to the worker thread
_EXPORT_BATCH = 256
_END = object()


def _threaded(
    method: Callable[Concatenate[SemanticMemory, P], R],
) -> Callable[Concatenate[AsyncSemanticMemory, P], Coroutine[Any, Any, R]]:
    """An ``async def`` that runs ``SemanticMemory.<method>`` in a worker thread, with
    the method's own parameters (type checkers see them, not ``*args: Any``)."""
    name = method.__name__

    @functools.wraps(method)
    async def run(self: AsyncSemanticMemory, /, *args: P.args, **kwargs: P.kwargs) -> R:
        bound: Callable[P, R] = getattr(self.sync, name)
        return await asyncio.to_thread(bound, *args, **kwargs)

    return run


class AsyncSemanticMemory:
    """Async wrapper over one :class:`SemanticMemory` (same arguments as its constructor).

    ``max_concurrency`` bounds how many slices of a large ``remember_batch`` are
    embedded at once when the embedder calls a remote API (``Embedder.needs_key``).
    """

    def __init__(self, *args: Any, max_concurrency: int = 4, **kwargs: Any) -> None:
        self._init(SemanticMemory(*args, **kwargs), max_concurrency)

    def _init(self, memory: SemanticMemory, max_concurrency: int) -> None:
        if max_concurrency < 1:
            raise ValidationError(f"max_concurrency must be >= 1, got {max_concurrency}")
        self.sync = memory
        self.max_concurrency = max_concurrency

    @classmethod
    def wrap(cls, memory: SemanticMemory, *, max_concurrency: int = 4) -> AsyncSemanticMemory:
        """Wrap an already open :class:`SemanticMemory` (closing this closes it too)."""
        self = cls.__new__(cls)
        self._init(memory, max_concurrency)
        return self

    # ------------------------------------------------------------------ plain attributes

    @property
    def namespace(self) -> str:
        return self.sync.namespace

    @property
    def settings(self) -> Settings:
        return self.sync.settings

    @property
    def embedder(self) -> Embedder:
        return self.sync.embedder

    @property
    def backend(self) -> StorageBackend:
        return self.sync.backend

    @property
    def cache(self) -> SmartCache[StoredMemory]:
        return self.sync.cache

    @property
    def reranker(self) -> Reranker | None:
        """The configured reranker, or None (built without loading its model)."""
        return self.sync.reranker

    @property
    def chat_model(self) -> ChatModel | None:
        """The configured chat model, or None in memory-only mode (built without I/O)."""
        return self.sync.chat_model

    @property
    def instructions(self) -> Awaitable[str]:
        """Awaitable: ``await memory.instructions`` reads them in a worker thread."""
        return asyncio.to_thread(lambda: self.sync.instructions)

    def __repr__(self) -> str:
        return f"Async{self.sync!r}"

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> AsyncSemanticMemory:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    close = _threaded(SemanticMemory.close)
    flush = _threaded(SemanticMemory.flush)
    refresh = _threaded(SemanticMemory.refresh)

    # ------------------------------------------------------------------ operations

    remember = _threaded(SemanticMemory.remember)
    remember_conversation = _threaded(SemanticMemory.remember_conversation)
    update = _threaded(SemanticMemory.update)
    forget = _threaded(SemanticMemory.forget)
    supersede = _threaded(SemanticMemory.supersede)
    get = _threaded(SemanticMemory.get)
    list = _threaded(SemanticMemory.list)
    history = _threaded(SemanticMemory.history)
    recall = _threaded(SemanticMemory.recall)
    cache_state = _threaded(SemanticMemory.cache_state)
    validate_batch = _threaded(SemanticMemory.validate_batch)
    set_instructions = _threaded(SemanticMemory.set_instructions)
    add_instruction = _threaded(SemanticMemory.add_instruction)
    ingest_pdf = _threaded(SemanticMemory.ingest_pdf)
    ingest_file = ingest_pdf
    chat_with_memory = _threaded(SemanticMemory.chat_with_memory)
    stats = _threaded(SemanticMemory.stats)
    reembed = _threaded(SemanticMemory.reembed)
    check = _threaded(SemanticMemory.check)

    async def count(self) -> int:
        """How many active memories the namespace holds (``len(memory)`` of the sync API)."""
        return await asyncio.to_thread(len, self.sync)

    async def remember_batch(
        self,
        texts: Sequence[str],
        metadata: Mapping[str, Any] | Sequence[Mapping[str, Any] | None] | None = None,
        *,
        source: str = "manual",
        dedupe: bool = True,
        progress: Callable[[int, int], None] | None = None,
        chunk_size: int = 1000,
        timestamp: Timestamp | Sequence[Timestamp] = None,
    ) -> builtins.list[str]:  # ``list`` is the operation above
        """Store many memories; returns their ids in order (see ``SemanticMemory``).

        With a remote embedder (``needs_key``) a large batch is cut into slices of
        ``chunk_size`` that are embedded and committed concurrently, at most
        ``max_concurrency`` at a time, each through ``SemanticMemory.remember_batch``.
        Every slice is validated before any of them is stored. Otherwise (local
        embedders are CPU-bound: threads would not help), and for the turns of one
        conversation (``source="thread"``), this simply delegates.
        """
        call = functools.partial(
            self.sync.remember_batch, source=source, dedupe=dedupe, chunk_size=chunk_size
        )
        per_text = isinstance(metadata, Iterable) and not isinstance(metadata, (str, bytes, dict))
        slices = range(0, len(texts), max(1, chunk_size))
        if (
            not getattr(self.sync.embedder, "needs_key", False)
            or self.max_concurrency == 1
            or len(slices) <= 1
            or isinstance(texts, str)
            or source == "thread"  # one conversation: its turns are placed in one call
        ):
            return await asyncio.to_thread(
                call, texts, metadata, progress=progress, timestamp=timestamp
            )
        metas: Any = list(metadata) if per_text else metadata  # type: ignore[arg-type]
        if per_text and len(metas) != len(texts):
            # let the engine raise its usual ValidationError
            return await asyncio.to_thread(
                call, texts, metadata, progress=progress, timestamp=timestamp
            )
        # validate everything first, so a bad text in a late slice stores nothing at all
        await asyncio.to_thread(self.sync.validate_batch, texts, metas, source)
        times = clean_timestamps(timestamp, len(texts))
        semaphore = asyncio.Semaphore(self.max_concurrency)
        done = [0] * len(slices)
        total = len(texts)

        async def one(index: int, start: int) -> list[str]:
            part = texts[start : start + chunk_size]
            part_meta = metas[start : start + chunk_size] if per_text else metas
            part_time = times[start : start + chunk_size]

            def report(n: int, _total: int) -> None:
                done[index] = min(n, len(part))
                if progress is not None:
                    progress(sum(done), total)

            async with semaphore:
                return await asyncio.to_thread(
                    call, part, part_meta, progress=report, timestamp=part_time
                )

        parts = await asyncio.gather(*(one(i, s) for i, s in enumerate(slices)))
        return [memory_id for part in parts for memory_id in part]

    # ------------------------------------------------------------------ export / import

    async def export_jsonl(self, *, include_embeddings: bool = True) -> AsyncIterator[str]:
        """The namespace as JSON Lines, streamed; read in batches in a worker thread."""
        lines = await asyncio.to_thread(
            self.sync.export_jsonl, include_embeddings=include_embeddings
        )

        def take(it: Iterator[str]) -> list[str]:
            batch: list[str] = []
            for line in it:
                batch.append(line)
                if len(batch) >= _EXPORT_BATCH:
                    break
            return batch

        iterator = iter(lines)
        while True:
            batch = await asyncio.to_thread(take, iterator)
            for line in batch:
                yield line
            if len(batch) < _EXPORT_BATCH:
                return

    async def import_jsonl(
        self,
        lines: Iterable[str | bytes] | AsyncIterable[str | bytes],
        *,
        with_instructions: bool = False,
    ) -> ImportReport:
        """Import JSON Lines (a plain or an async iterable, e.g. a streamed request body)."""
        run = functools.partial(self.sync.import_jsonl, with_instructions=with_instructions)
        if not isinstance(lines, AsyncIterable):
            return await asyncio.to_thread(run, lines)
        loop = asyncio.get_running_loop()
        source = aiter(lines)

        def pull() -> Iterator[str | bytes]:
            # runs in the worker thread: fetch each line from the event loop
            while True:
                item = asyncio.run_coroutine_threadsafe(_next_or_end(source), loop).result()
                if item is _END:
                    return
                yield item

        return await asyncio.to_thread(run, pull())


async def _next_or_end(iterator: AsyncIterator[Any]) -> Any:
    try:
        return await anext(iterator)
    except StopAsyncIteration:
        return _END


def public_operations(cls: type) -> set[str]:
    """Public method and property names of ``cls`` (used by the parity test)."""
    return {
        name
        for name, value in inspect.getmembers(cls)
        if not name.startswith("_") and (callable(value) or isinstance(value, property))
    }
