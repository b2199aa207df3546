"""Request and response bodies of the HTTP API (the shapes of the seed's endpoints)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "BatchIn",
    "BatchOut",
    "ChatIn",
    "ChatOut",
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
    "ThreadIn",
    "ThreadMessage",
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


class RememberIn(_In):
    text: str = Field(description="The fact to store (limit: max_text_chars)")
    metadata: dict[str, Any] | None = None


class RememberOut(BaseModel):
    id: str
    status: str = "stored"


class BatchIn(_In):
    texts: list[str] = Field(description="Texts to store (limit: max_batch texts)")
    metadata: dict[str, Any] | list[dict[str, Any] | None] | None = Field(
        default=None, description="One dict for all texts, or one (or null) per text"
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


class RecallOut(BaseModel):
    memories: list[RecollectionOut]
    logs: list[str]


class ChatIn(_In):
    query: str
    previous_response_id: str | None = None
    model: str | None = None
    reasoning_effort: Effort | None = None
    auto_remember: bool | None = None
    web_search: bool | None = None


class ChatOut(BaseModel):
    response: str
    response_id: str | None
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
    messages: list[ThreadMessage] = Field(min_length=1)
    title: str | None = Field(default=None, max_length=200)


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
