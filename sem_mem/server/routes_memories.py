"""Beyond the seed: browse and edit memories, export/import JSON Lines, metrics."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import StreamingResponse
from prometheus_client import CONTENT_TYPE_LATEST

from ..errors import LimitExceededError
from ..transfer import max_line_bytes
from ..validation import parse_json_object
from .auth import Memory, namespace_of
from .schemas import HistoryOut, ImportOut, MemoryOut, MemoryPage, PatchIn

__all__ = ["router"]

router = APIRouter()

SourceName = Literal["manual", "auto", "pdf", "document", "thread", "import"]


def _metadata_filter(raw: str | None) -> dict[str, Any] | None:
    if raw == "":  # an empty query parameter: no filter
        return None
    return parse_json_object(raw, field="metadata", example='{"file": "a.pdf"}')


@router.get("/memories", response_model=MemoryPage, tags=["memories"])
async def list_memories(
    memory: Memory,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    offset: Annotated[int, Query(ge=0, le=2**62)] = 0,
    source: SourceName | None = None,
    since: Annotated[datetime | None, Query(description="ISO 8601 or unix seconds")] = None,
    until: Annotated[datetime | None, Query(description="ISO 8601 or unix seconds")] = None,
    metadata: Annotated[
        str | None, Query(description='JSON object every match contains, e.g. {"file":"a.pdf"}')
    ] = None,
    include_superseded: bool = False,
) -> dict[str, Any]:
    """Memories page by page, newest first, filtered by source, time and metadata."""
    page = await memory.list(
        limit=limit,
        offset=offset,
        source=source,
        since=since,
        until=until,
        metadata=_metadata_filter(metadata),
        include_superseded=include_superseded,
    )
    return {
        "memories": [m.to_dict() for m in page],
        "limit": limit,
        "offset": offset,
        "next_offset": offset + len(page) if len(page) == limit else None,
    }


@router.get("/memories/{memory_id}", response_model=MemoryOut, tags=["memories"])
async def get_memory(memory_id: str, memory: Memory) -> dict[str, Any]:
    """One memory of this namespace (404 for ids of other namespaces)."""
    return (await memory.get(memory_id)).to_dict()


@router.patch("/memories/{memory_id}", response_model=MemoryOut, tags=["memories"])
async def patch_memory(memory_id: str, body: PatchIn, memory: Memory) -> dict[str, Any]:
    """Change text and/or metadata; the old version stays in the history."""
    return (await memory.update(memory_id, text=body.text, metadata=body.metadata)).to_dict()


@router.delete("/memories/{memory_id}", status_code=204, tags=["memories"])
async def delete_memory(memory_id: str, memory: Memory) -> Response:
    """Forget a memory for good."""
    await memory.forget(memory_id)
    return Response(status_code=204)


@router.get("/memories/{memory_id}/history", response_model=HistoryOut, tags=["memories"])
async def memory_history(memory_id: str, memory: Memory) -> dict[str, Any]:
    """Every change of one memory, oldest first."""
    return {"events": [e.to_dict() for e in await memory.history(memory_id)]}


@router.get(
    "/export",
    tags=["transfer"],
    response_class=StreamingResponse,
    responses={200: {"content": {"application/x-ndjson": {}}}},
)
async def export(
    memory: Memory, request: Request, include_embeddings: bool = True
) -> StreamingResponse:
    """This namespace as JSON Lines, streamed (``sem_mem.transfer`` describes the format)."""
    await memory.flush()  # pending hit counts belong in the export
    filename = f"sem-mem-{namespace_of(request)}.jsonl".replace('"', "")
    return StreamingResponse(
        memory.export_jsonl(include_embeddings=include_embeddings),
        media_type="application/x-ndjson",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


async def _lines(stream: AsyncIterator[bytes], limit: int) -> AsyncIterator[bytes]:
    """The body's lines as they arrive; a line longer than ``limit`` is refused (413)
    as soon as that many bytes of it are buffered, never held whole."""
    buffer = bytearray()
    number = 0
    async for chunk in stream:
        start = len(buffer)
        buffer += chunk
        end = buffer.find(b"\n", start)
        taken = 0
        while end != -1:  # each byte is searched once: no quadratic rescans
            number += 1
            yield bytes(buffer[taken:end])
            taken = end + 1
            end = buffer.find(b"\n", taken)
        del buffer[:taken]
        if len(buffer) > limit:
            raise LimitExceededError(
                f"line {number + 1} of the import is longer than {limit:,} bytes "
                "(max_import_line_bytes)",
                limit="max_import_line_bytes",
                maximum=limit,
                actual=len(buffer),
            )
    if buffer:
        yield bytes(buffer)


@router.post(
    "/import",
    response_model=ImportOut,
    tags=["transfer"],
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/x-ndjson": {"schema": {"type": "string"}}},
        }
    },
)
async def import_(
    memory: Memory, request: Request, with_instructions: bool = False
) -> dict[str, Any]:
    """Import JSON Lines written by ``GET /export`` (streamed; ids and timestamps kept).

    The file's instructions replace the namespace's only with ``?with_instructions=true``.
    """
    limit = max_line_bytes(memory.settings)
    report = await memory.import_jsonl(
        _lines(request.stream(), limit), with_instructions=with_instructions
    )
    return report.to_dict()


@router.get(
    "/metrics",
    tags=["service"],
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}}},
)
async def metrics(memory: Memory, request: Request) -> Response:
    """Prometheus text: request latency, L1 hit rate and memory count."""
    registry = request.app.state.registry
    only = namespace_of(request) if registry.auth_enabled else None
    body = await asyncio.to_thread(request.app.state.metrics.render, only)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
