"""The seed's endpoints: health, remember, recall, instructions, cache, stats, model and
PDF upload. Each is a few lines over the async engine (chat, sessions and thread saving
are in ``routes_chat.py``)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, File, Query, Request, UploadFile
from fastapi.responses import StreamingResponse

from .. import __version__
from ..errors import LimitExceededError, SemMemError
from ..ingest import describe_limits
from ..llm.factory import chat_api_of, web_search_unavailable
from .auth import Memory, namespace_of
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
async def stats(memory: Memory) -> dict[str, Any]:
    """Counts, L1 figures, index parameters and the embedder of this namespace."""
    return await memory.stats()


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
        '`{"error", "detail", "status"}` if it fails midway). Limits: '
        f"{describe_limits()}"
    ),
)
async def upload_pdf(
    memory: Memory,
    file: Annotated[UploadFile, File(description="PDF, text or Markdown")],
    progress: Annotated[
        bool, Query(description="Stream progress as NDJSON lines, then the result")
    ] = False,
) -> Any:
    """Read the upload and store its chunks."""
    name = file.filename or "upload.pdf"
    if not progress:
        result = await memory.ingest_pdf(file.file, name=name)
        return result.to_dict()
    return await _ingest_with_progress(memory, file, name)


async def _ingest_with_progress(memory: Memory, file: UploadFile, name: str) -> Any:
    """NDJSON progress lines, then the result. A failure before any progress (a damaged
    or unsupported file) is an ordinary error answer with its status."""
    loop = asyncio.get_running_loop()
    events: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()

    def put(event: tuple[str, Any]) -> None:
        loop.call_soon_threadsafe(events.put_nowait, event)

    def work() -> None:
        try:
            result = memory.sync.ingest_pdf(
                file.file, name=name, progress=lambda d, t: put(("progress", (d, t)))
            )
            put(("result", result))
        except Exception as exc:  # reported to the client below, by class
            put(("error", exc))

    worker = asyncio.ensure_future(asyncio.to_thread(work))
    first = await events.get()
    if first[0] == "error":
        await worker
        raise first[1]

    async def lines() -> AsyncIterator[bytes]:
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
            event = await events.get()
        await worker

    return StreamingResponse(lines(), media_type="application/x-ndjson")


def _line(value: dict[str, Any]) -> bytes:
    return (json.dumps(value, ensure_ascii=False) + "\n").encode("utf-8")
