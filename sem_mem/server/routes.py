"""The seed's endpoints: health, chat, remember, recall, instructions, cache, stats,
model, PDF upload and thread saving. Each is a few lines over the async engine."""

from __future__ import annotations

import asyncio
import threading
from typing import Annotated, Any

from fastapi import APIRouter, File, Request, UploadFile

from .. import __version__
from ..errors import LimitExceededError, ValidationError
from ..ingest import describe_limits
from .auth import Memory, is_loopback, namespace_of
from .schemas import (
    BatchIn,
    BatchOut,
    ChatIn,
    ChatOut,
    InstructionIn,
    InstructionsOut,
    ModelIn,
    ModelOut,
    RecallIn,
    RecallOut,
    RememberIn,
    RememberOut,
    ThreadIn,
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


@router.post("/chat", response_model=ChatOut, tags=["chat"])
async def chat(body: ChatIn, memory: Memory, request: Request) -> dict[str, Any]:
    """Answer with retrieved memories as context (memory-only mode without a chat model)."""
    namespace = namespace_of(request)
    prefs = request.app.state.registry.prefs(namespace)
    backend = memory.backend
    previous = body.previous_response_id
    if previous is not None and not await asyncio.to_thread(
        backend.owns_response, namespace, previous
    ):
        # the provider would continue whichever conversation the id names, any tenant's
        raise ValidationError(
            "previous_response_id is not a response this server gave to your namespace"
        )
    kwargs: dict[str, Any] = {
        "previous_response_id": body.previous_response_id,
        "model": body.model or prefs.model,
        "reasoning_effort": body.reasoning_effort or prefs.reasoning_effort,
    }
    if body.web_search is not None:
        kwargs["web_search"] = body.web_search
    if body.auto_remember is not None:
        kwargs["auto_remember"] = body.auto_remember
    response, response_id, memories, logs = await memory.chat_with_memory(body.query, **kwargs)
    if response_id:
        await asyncio.to_thread(backend.record_response, namespace, response_id)
    return {
        "response": response,
        "response_id": response_id,
        "memories": [m.to_dict() for m in memories],
        "logs": list(logs),
    }


@router.post("/remember", response_model=RememberOut, tags=["memories"])
async def remember(body: RememberIn, memory: Memory) -> dict[str, Any]:
    """Store one memory (committed before the answer; the same text again is not duplicated)."""
    return {"id": await memory.remember(body.text, body.metadata)}


@router.post("/remember/batch", response_model=BatchOut, tags=["memories"])
async def remember_batch(body: BatchIn, memory: Memory, request: Request) -> dict[str, Any]:
    """Store many memories at once (at most ``max_batch``); ids come back in order."""
    check_batch(request, len(body.texts))
    ids = await memory.remember_batch(body.texts, body.metadata)
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
    return {
        "model": prefs.model,
        "reasoning_effort": prefs.reasoning_effort,
        "chat_enabled": bool(settings.openai_api_key or settings.openai_base_url),
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
        f"new. Limits: {describe_limits()}"
    ),
)
async def upload_pdf(
    memory: Memory,
    request: Request,
    file: Annotated[UploadFile, File(description="PDF, text or Markdown")],
) -> dict[str, Any]:
    """Read the upload and store its chunks (in a worker thread; stopped if the client
    disconnects before it is done)."""
    cancel = threading.Event()
    work = asyncio.ensure_future(
        memory.ingest_pdf(file.file, name=file.filename or "upload.pdf", cancel=cancel)
    )
    watcher = asyncio.ensure_future(_cancel_on_disconnect(request, cancel))
    try:
        result = await work
    finally:
        watcher.cancel()
    return result.to_dict()


async def _cancel_on_disconnect(request: Request, cancel: threading.Event) -> None:
    """Set ``cancel`` when the client goes away (the body is read: what comes next on
    the ASGI channel is the disconnect)."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            cancel.set()
            return


@router.post("/threads/save", response_model=BatchOut, tags=["memories"])
async def save_thread(body: ThreadIn, memory: Memory, request: Request) -> dict[str, Any]:
    """Save a conversation to L2: one memory per exchange (user turn + assistant reply)."""
    title = body.title or "untitled"
    exchanges: list[str] = []
    current: list[str] = []
    for message in body.messages:
        if message.role == "user" and current:
            exchanges.append("\n".join(current))
            current = []
        current.append(f"{message.role.capitalize()}: {message.content.strip()}")
    if current:
        exchanges.append("\n".join(current))
    check_batch(request, len(exchanges), "the thread")
    metadata = [{"thread": title, "turn": i} for i in range(len(exchanges))]
    ids = await memory.remember_batch(exchanges, metadata, source="thread")
    return {"ids": ids, "count": len(ids)}
