"""Value objects returned by the public API."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

__all__ = ["SOURCES", "HistoryEvent", "Memory", "Recollection", "Source", "Tier", "to_datetime"]

Source = Literal["manual", "auto", "pdf", "document", "thread", "import"]
SOURCES: tuple[str, ...] = ("manual", "auto", "pdf", "document", "thread", "import")
Tier = Literal["L1", "L2"]


def to_datetime(ts: float | None) -> datetime | None:
    """Unix seconds (as stored) to an aware UTC datetime."""
    return None if ts is None else datetime.fromtimestamp(ts, tz=UTC)


@dataclass(frozen=True)
class Memory:
    """One stored memory, as the store holds it."""

    id: str
    text: str
    metadata: dict[str, Any]
    namespace: str
    source: str
    created_at: datetime
    updated_at: datetime
    hit_count: int = 0
    last_accessed: datetime | None = None
    status: str = "active"  # "active" or "superseded"
    superseded_by: str | None = None
    embedding_model: str = ""
    #: when the fact happened or was said (``remember(..., timestamp=)``); else ``created_at``
    timestamp: datetime | None = None
    #: for conversation turns (``remember_conversation``): the thread, the turn's place in
    #: it (0-based) and who spoke; None for memories stored one by one
    thread_id: str | None = None
    position: int | None = None
    speaker: str | None = None

    @property
    def happened_at(self) -> datetime:
        """``timestamp`` if one was given, else when the memory was stored."""
        return self.timestamp or self.created_at

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "text": self.text,
            "metadata": self.metadata,
            "namespace": self.namespace,
            "source": self.source,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
            "hit_count": self.hit_count,
            "last_accessed": self.last_accessed.isoformat() if self.last_accessed else None,
            "status": self.status,
            "superseded_by": self.superseded_by,
            "embedding_model": self.embedding_model,
            "timestamp": self.happened_at.isoformat(),
            "thread_id": self.thread_id,
            "position": self.position,
            "speaker": self.speaker,
        }


@dataclass(frozen=True)
class Recollection:
    """One result of :meth:`SemanticMemory.recall`, best first.

    ``score`` orders the results (fused relevance in [0, 1] in hybrid mode, cosine
    similarity in vector mode); ``similarity`` is always the cosine similarity between
    the query and the memory, which is what ``threshold`` filters on. ``tier`` says
    whether the memory was served from the L1 cache (RAM) or read from L2.
    """

    id: str
    text: str
    score: float
    similarity: float
    metadata: dict[str, Any]
    tier: Tier
    created_at: datetime
    source: str = "manual"
    explain: dict[str, Any] = field(default_factory=dict, compare=False)
    timestamp: datetime | None = None  # when it happened (see Memory.timestamp)
    thread_id: str | None = None
    position: int | None = None
    speaker: str | None = None

    @property
    def happened_at(self) -> datetime:
        return self.timestamp or self.created_at

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "text": self.text,
            "score": self.score,
            "similarity": self.similarity,
            "metadata": self.metadata,
            "tier": self.tier,
            "created_at": self.created_at.isoformat(),
            "source": self.source,
            "timestamp": self.happened_at.isoformat(),
            "thread_id": self.thread_id,
            "position": self.position,
            "speaker": self.speaker,
        }


@dataclass(frozen=True)
class HistoryEvent:
    """One change in a memory's life: created, updated, refreshed, superseded, forgotten."""

    memory_id: str
    event: str
    text: str | None
    metadata: dict[str, Any] | None
    at: datetime
    detail: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "memory_id": self.memory_id,
            "event": self.event,
            "text": self.text,
            "metadata": self.metadata,
            "at": self.at.isoformat(),
            "detail": self.detail,
        }


@dataclass(frozen=True)
class IngestResult:
    """What :meth:`SemanticMemory.ingest_pdf` did with one document."""

    filename: str
    kind: str  # "pdf", "text" or "markdown"
    pages: int
    chunks_created: int  # chunks the document was cut into
    chunks_stored: int  # chunks newly stored (0 when the same file was ingested before)
    already_ingested: bool = False
    has_text: bool = True
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "filename": self.filename,
            "kind": self.kind,
            "pages": self.pages,
            "chunks_created": self.chunks_created,
            "chunks_stored": self.chunks_stored,
            "already_ingested": self.already_ingested,
            "has_text": self.has_text,
            "note": self.note,
        }
