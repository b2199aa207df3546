"""Request and response bodies of the HTTP API (the shapes of the seed's endpoints)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "BatchIn",
    "BatchOut",
    "ChatIn",
    "ChatOut",
    "ConversationIn",
    "ConversationOut",
    "ErrorOut",
    "HistoryOut",
    "ImportOut",
    "InstructionIn",
    "InstructionsOut",
    "MemoryOut",
    "MemoryPage",
    "ModelIn",
    "ModelOut",
    "PatchIn",
    "RecallIn",
    "RecallOut",
    "RecollectionOut",
    "RememberIn",
    "RememberOut",
    "SessionOut",
    "SessionPage",
    "SessionSummary",
    "ThreadIn",
    "ThreadMessage",
    "ThreadOut",
    "Turn",
    "UploadOut",
]

Effort = Literal["none", "minimal", "low", "medium", "high"]
Mode = Literal["hybrid", "vector", "lexical"]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorOut(BaseModel):
    """Every error answer; ``limit``/``maximum``/``actual`` only for 413."""

    error: str
    detail: str
    limit: str | None = None
    maximum: int | None = None
    actual: int | None = None


class RecollectionOut(BaseModel):
    id: str
    text: str
    score: float
    similarity: float
    metadata: dict[str, Any]
    tier: str
    created_at: str
    source: str
    timestamp: str | None = None
    thread_id: str | None = None
    position: int | None = None
    speaker: str | None = None


class MemoryOut(BaseModel):
    id: str
    text: str
    metadata: dict[str, Any]
    namespace: str
    source: str
    created_at: str
    updated_at: str
    hit_count: int
    last_accessed: str | None
    status: str
    superseded_by: str | None
    embedding_model: str
    timestamp: str | None = None
    thread_id: str | None = None
    position: int | None = None
    speaker: str | None = None


Timestamp = datetime | float | None
_TIMESTAMP = "When it happened or was said: ISO 8601 or unix seconds (default: now)"


class RememberIn(_In):
    text: str = Field(description="The fact to store (limit: max_text_chars)")
    metadata: dict[str, Any] | None = None
    timestamp: Timestamp = Field(default=None, description=_TIMESTAMP)


class RememberOut(BaseModel):
    id: str
    status: str = "stored"


class BatchIn(_In):
    texts: list[str] = Field(description="Texts to store (limit: max_batch texts)")
    metadata: dict[str, Any] | list[dict[str, Any] | None] | None = Field(
        default=None, description="One dict for all texts, or one (or null) per text"
    )
    timestamp: Timestamp | list[Timestamp] = Field(
        default=None, description=_TIMESTAMP + "; one for all texts, or one (or null) per text"
    )


class BatchOut(BaseModel):
    ids: list[str]
    count: int


class RecallIn(_In):
    query: str
    limit: int = Field(default=5, ge=1, le=1000)
    threshold: float | None = Field(default=None, ge=-1.0, le=1.0)
    expand_query: bool = False
    mode: Mode = "hybrid"
    metadata: dict[str, Any] | None = Field(
        default=None, description="Only memories whose metadata has these key/values"
    )
    source: str | None = Field(default=None, description="Only this source (manual, thread, …)")
    since: Timestamp = Field(default=None, description="Only what happened at or after this")
    until: Timestamp = Field(default=None, description="Only what happened before this")
    rerank: bool | None = Field(
        default=None,
        description=(
            "Reorder the best 25 candidates with the cross-encoder (~0.25 s more); "
            "null: as the server is configured (SEMMEM_RERANKER)"
        ),
    )


class RecallOut(BaseModel):
    memories: list[RecollectionOut]
    logs: list[str]


class ChatIn(_In):
    query: str
    session_id: str | None = Field(
        default=None,
        max_length=200,
        description="Continue (or start) this session; a new one when omitted",
    )
    title: str = Field(default="", max_length=200, description="Title of a new session")
    previous_response_id: str | None = Field(
        default=None, description="Accepted only when a session of this namespace produced it"
    )
    model: str | None = None
    reasoning_effort: Effort | None = None
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    auto_remember: bool | None = None
    web_search: bool | None = None


class ChatOut(BaseModel):
    response: str
    response_id: str | None
    session_id: str
    command: str | None = Field(default=None, description="remember or instruct, for commands")
    memory_id: str | None = Field(default=None, description="The id stored by remember:")
    memories: list[RecollectionOut]
    logs: list[str]


class InstructionIn(_In):
    text: str = Field(description="PUT: the new instructions; POST: one line to append")


class InstructionsOut(BaseModel):
    instructions: str


class ModelIn(_In):
    model: str | None = Field(default=None, min_length=1, max_length=200)
    reasoning_effort: Effort | None = None


class ModelOut(BaseModel):
    model: str
    reasoning_effort: str
    chat_enabled: bool = Field(description="False in memory-only mode (no key, no base URL)")
    chat_api: str = Field(default="", description="responses or chat_completions (CHAT_API)")
    web_search_unavailable: str = Field(
        default="", description="Why web search cannot be used; empty when it can"
    )


class UploadOut(BaseModel):
    filename: str
    pages: int
    chunks_created: int
    chunks_stored: int
    kind: str
    already_ingested: bool
    has_text: bool
    note: str


class ThreadMessage(_In):
    role: Literal["user", "assistant"]
    content: str


class ThreadIn(_In):
    session_id: str | None = Field(default=None, description="Save this stored session's turns")
    messages: list[ThreadMessage] = Field(default_factory=list)
    title: str | None = Field(default=None, max_length=200, description="The thread id")


class ThreadOut(BaseModel):
    ids: list[str]
    count: int
    thread_id: str


class Turn(_In):
    speaker: str | None = None
    role: str | None = None
    text: str | None = None
    content: str | None = None
    timestamp: Timestamp = None
    metadata: dict[str, Any] | None = None
    position: int | None = Field(default=None, ge=0)


class ConversationIn(_In):
    turns: list[Turn] = Field(min_length=1, description="speaker/role and text/content each")
    thread_id: str | None = Field(default=None, max_length=256)
    timestamp: Timestamp = Field(default=None, description="Default time of the turns")
    metadata: dict[str, Any] | None = None


class ConversationOut(BaseModel):
    ids: list[str]
    count: int
    thread_id: str


class SessionSummary(BaseModel):
    id: str
    title: str
    created_at: float
    updated_at: float
    thread_id: str
    messages: int
    saved_upto: int


class SessionPage(BaseModel):
    sessions: list[SessionSummary]
    limit: int
    offset: int


class SessionOut(BaseModel):
    id: str
    title: str
    created_at: float
    updated_at: float
    thread_id: str
    messages: list[ThreadMessage]
    previous_response_id: str | None
    saved_upto: int


class MemoryPage(BaseModel):
    memories: list[MemoryOut]
    limit: int
    offset: int
    next_offset: int | None


class PatchIn(_In):
    text: str | None = None
    metadata: dict[str, Any] | None = None


class HistoryOut(BaseModel):
    events: list[dict[str, Any]]


class ImportOut(BaseModel):
    imported: int
    skipped_existing: int
    reembedded: int
    instructions: bool
    instructions_skipped: bool = False
