"""The seed's endpoints: health, remember, recall, instructions, cache, stats, model and
PDF upload. Each is a few lines over the async engine (chat, sessions and thread saving
are in ``routes_chat.py``)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any, BinaryIO

from fastapi import APIRouter, File, Query, Request, UploadFile
from fastapi.responses import StreamingResponse

from .. import __version__
from ..core import SemanticMemory
from ..errors import LimitExceededError, SemMemError
from ..ingest import IngestCancelled, describe_limits
from ..llm.factory import chat_api_of, web_search_unavailable
from .auth import Memory, is_loopback, namespace_of
from .errors import error_response
from .schemas import (
    BatchIn,
    BatchOut,
    InstructionIn,
    InstructionsOut,
    ModelIn,
    ModelOut,
    RecallIn,
    RecallOut,
    RememberIn,
    RememberOut,
    UploadOut,
)

__all__ = ["router"]

log = logging.getLogger("sem_mem.server")
router = APIRouter()


def check_batch(request: Request, count: int, what: str = "texts") -> None:
    """413 when a batch is over ``max_batch``."""
    maximum = request.app.state.config.max_batch
    if count > maximum:
        raise LimitExceededError(
            f"{what} has {count:,} items; the limit is {maximum:,} (max_batch)",
            limit="max_batch",
            maximum=maximum,
            actual=count,
        )


@router.get("/health", tags=["service"])
async def health(request: Request) -> dict[str, Any]:
    """Liveness: the server is up (no authentication, no store access)."""
    return {
        "status": "ok",
        "version": __version__,
        "auth": request.app.state.registry.auth_enabled,
    }


@router.post("/remember", response_model=RememberOut, tags=["memories"])
async def remember(body: RememberIn, memory: Memory) -> dict[str, Any]:
    """Store one memory (committed before the answer; the same text again is not duplicated)."""
    return {"id": await memory.remember(body.text, body.metadata, timestamp=body.timestamp)}


@router.post("/remember/batch", response_model=BatchOut, tags=["memories"])
async def remember_batch(body: BatchIn, memory: Memory, request: Request) -> dict[str, Any]:
    """Store many memories at once (at most ``max_batch``); ids come back in order."""
    check_batch(request, len(body.texts))
    ids = await memory.remember_batch(body.texts, body.metadata, timestamp=body.timestamp)
    return {"ids": ids, "count": len(ids)}


@router.post("/recall", response_model=RecallOut, tags=["memories"])
async def recall(body: RecallIn, memory: Memory) -> dict[str, Any]:
    """The memories most relevant to ``query``, best first."""
    logs: list[str] = []
    results = await memory.recall(
        body.query,
        body.limit,
        threshold=body.threshold,
        mode=body.mode,
        expand_query=body.expand_query,
        logs=logs,
        metadata=body.metadata,
        source=body.source,
        since=body.since,
        until=body.until,
        rerank=body.rerank,
    )
    return {"memories": [r.to_dict() for r in results], "logs": logs}


@router.get("/instructions", response_model=InstructionsOut, tags=["instructions"])
async def get_instructions(memory: Memory) -> dict[str, str]:
    """The persistent instructions of this namespace."""
    return {"instructions": await memory.instructions}


@router.put("/instructions", response_model=InstructionsOut, tags=["instructions"])
async def put_instructions(body: InstructionIn, memory: Memory) -> dict[str, str]:
    """Replace the instructions."""
    await memory.set_instructions(body.text)
    return {"instructions": await memory.instructions}


@router.post("/instructions", response_model=InstructionsOut, tags=["instructions"])
async def add_instruction(body: InstructionIn, memory: Memory) -> dict[str, str]:
    """Append one instruction line (the seed's ``instruct:`` command)."""
    await memory.add_instruction(body.text)
    return {"instructions": await memory.instructions}


@router.get("/cache", tags=["service"])
async def cache(memory: Memory) -> dict[str, list[dict[str, Any]]]:
    """The L1 cache: ``protected`` and ``probation`` tiers, most recently used first."""
    return await memory.cache_state()


@router.get("/stats", tags=["service"])
async def stats(memory: Memory, request: Request) -> dict[str, Any]:
    """Counts, L1 figures, index parameters and the embedder of this namespace.

    Figures of the whole store (its size, change counter, location) are left out
    unless the server has no API keys and the request came over loopback: a tenant
    could otherwise watch other tenants' activity in them.
    """
    out = await memory.stats()
    if request.app.state.registry.auth_enabled or not is_loopback(_client_host(request)):
        for key in memory.backend.server_wide_stats:
            parent, _, child = key.rpartition(".")
            (out.get(parent, {}) if parent else out).pop(child, None)
    return out


def _client_host(request: Request) -> str | None:
    return request.client.host if request.client else None


def _model_out(request: Request, memory: Memory) -> dict[str, Any]:
    prefs = request.app.state.registry.prefs(namespace_of(request))
    settings = memory.settings
    try:
        chat_model = memory.sync.chat_model
    except SemMemError:
        chat_model = None
    return {
        "model": prefs.model,
        "reasoning_effort": prefs.reasoning_effort,
        "chat_enabled": bool(settings.openai_api_key or settings.openai_base_url),
        "chat_api": chat_api_of(chat_model),
        "web_search_unavailable": web_search_unavailable(chat_model),
    }


@router.get("/model", response_model=ModelOut, tags=["chat"])
async def get_model(memory: Memory, request: Request) -> dict[str, Any]:
    """The chat model and reasoning effort this namespace uses."""
    return _model_out(request, memory)


@router.put("/model", response_model=ModelOut, tags=["chat"])
async def put_model(body: ModelIn, memory: Memory, request: Request) -> dict[str, Any]:
    """Change the chat model and/or reasoning effort (for this namespace only)."""
    prefs = request.app.state.registry.prefs(namespace_of(request))
    if body.model is not None:
        prefs.model = body.model.strip() or prefs.model
    if body.reasoning_effort is not None:
        prefs.reasoning_effort = body.reasoning_effort
    return _model_out(request, memory)


@router.post(
    "/upload/pdf",
    response_model=UploadOut,
    tags=["documents"],
    description=(
        "Ingest a PDF (or a .txt/.md file) as chunks. The same file twice stores nothing "
        'new. With `progress=true` the answer is NDJSON: `{"done": n, "total": m}` '
        'lines as chunks are embedded and committed, then `{"result": {...}}` (or '
        '`{"error", "detail", "status"}` if it fails midway). The work runs off the event '
        "loop; if the client disconnects before the answer, it stops and the chunks it "
        "stored are removed. Limits: "
        f"{describe_limits()}"
    ),
)
async def upload_pdf(
    memory: Memory,
    request: Request,
    file: Annotated[UploadFile, File(description="PDF, text or Markdown")],
    progress: Annotated[
        bool, Query(description="Stream progress as NDJSON lines, then the result")
    ] = False,
) -> Any:
    """Read the upload and store its chunks in a worker thread (the event loop keeps
    answering other requests). If the client disconnects first, with or without
    ``progress``, the work stops and the chunks it stored are removed again."""
    job = _IngestJob(memory, request, file.file, file.filename or "upload.pdf", progress)
    if not progress:
        try:
            kind, value = await job.next_event()
        finally:
            job.stop()  # nothing left to stop once the result is in
        if kind == "error":
            raise value
        return value.to_dict()
    try:
        first = await job.next_event()
    except BaseException:
        job.stop()
        raise
    if first[0] == "error":
        job.stop()
        raise first[1]
    return StreamingResponse(job.lines(first), media_type="application/x-ndjson")


class _IngestJob:
    """One upload's ``ingest_pdf`` in a worker thread, with its events (progress, then a
    result or an error) handed to the event loop, and cancelled when the client goes
    away: a watcher waits for the ASGI ``http.disconnect`` message (the body has been
    read, so the next message on the channel is the disconnect) and sets ``cancel``."""

    def __init__(
        self, memory: Memory, request: Request, source: BinaryIO, name: str, progress: bool
    ) -> None:
        self.name = name
        self.cancel = threading.Event()
        self.loop = asyncio.get_running_loop()
        self.events: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        sync, report = memory.sync, self._progress if progress else None
        self.worker = asyncio.ensure_future(asyncio.to_thread(self._work, sync, source, report))
        self.watcher = asyncio.ensure_future(self._watch(request))

    def _put(self, event: tuple[str, Any]) -> None:
        with contextlib.suppress(RuntimeError):  # the server has shut down meanwhile
            self.loop.call_soon_threadsafe(self.events.put_nowait, event)

    def _progress(self, done: int, total: int) -> None:
        self._put(("progress", (done, total)))

    def _work(
        self,
        sync: SemanticMemory,
        source: BinaryIO,
        progress: Callable[[int, int], None] | None,
    ) -> None:
        log.debug("upload %r: ingesting", self.name, extra={"upload_event": "started"})
        try:
            result = sync.ingest_pdf(source, name=self.name, progress=progress, cancel=self.cancel)
        except IngestCancelled as exc:
            log.info(
                "upload %r stopped: %s",
                self.name,
                exc,
                extra={"upload_event": "cancelled", "cancelled": exc},
            )
            self._put(("error", exc))
        except Exception as exc:  # reported to the client, by class
            self._put(("error", exc))
        else:
            self._put(("result", result))

    async def _watch(self, request: Request) -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass
        if not self.worker.done():
            self.cancel.set()
            log.info(
                "upload %r: the client disconnected; cancelling",
                self.name,
                extra={"upload_event": "disconnected"},
            )

    async def next_event(self) -> tuple[str, Any]:
        return await self.events.get()

    def stop(self) -> None:
        """Stop watching; cancel the work if it is still going (a no-op after its result)."""
        self.watcher.cancel()
        self.cancel.set()

    async def lines(self, first: tuple[str, Any]) -> AsyncIterator[bytes]:
        """NDJSON progress lines, then the result or the error. A failure before any
        progress (a damaged or unsupported file) was an ordinary error answer instead.
        Starlette stops this stream when the client disconnects: the work stops too."""
        try:
            event = first
            while True:
                kind, value = event
                if kind == "progress":
                    yield _line({"done": value[0], "total": value[1]})
                elif kind == "result":
                    yield _line({"result": value.to_dict()})
                    break
                else:
                    response = error_response(value)
                    body = json.loads(bytes(response.body))
                    yield _line({**body, "status": response.status_code})
                    break
                event = await self.next_event()
        finally:
            self.stop()


def _line(value: dict[str, Any]) -> bytes:
    return (json.dumps(value, ensure_ascii=False) + "\n").encode("utf-8")
