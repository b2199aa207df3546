"""What the UI asks of a memory: :class:`MemoryClient` and the plain results it returns.

The operations the Streamlit app needs, with JSON-shaped results (the API server's
response shapes); ``local_client.py`` and ``http_client.py`` implement them, and
``sem_mem.ui.client`` is where the app and tests import all of it from.
"""

from __future__ import annotations

import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from ..atlas import DEFAULT_MAX_POINTS, Atlas
from ..errors import ConfigurationError, SemMemError

if TYPE_CHECKING:
    from ..conversation import ChatOptions


__all__ = [
    "CHAT_APIS",
    "ApiError",
    "ChatReply",
    "MemoryClient",
    "ModelInfo",
    "Progress",
    "new_thread_title",
]

Progress = Callable[[int, int], None]
#: the values of the CHAT_API setting
CHAT_APIS = ("auto", "responses", "chat_completions")


@dataclass(frozen=True)
class ModelInfo:
    """The chat model in use; ``chat_enabled`` is False in memory-only mode."""

    model: str
    reasoning_effort: str
    chat_enabled: bool
    #: True when a per-request temperature is honoured
    supports_temperature: bool = False
    #: why chat is unavailable, when it is
    reason: str = ""
    #: why web search cannot be used ("" when the provider can search)
    web_search_unavailable: str = ""
    #: the chat wire format in use: responses or chat_completions ("" in memory-only mode)
    chat_api: str = ""
    #: the UI may switch the chat API (in-process only; the server's is its CHAT_API)
    can_switch_chat_api: bool = False


@dataclass(frozen=True)
class ChatReply:
    """One chat turn, in the shape of the server's ``POST /chat`` answer."""

    response: str
    response_id: str | None
    memories: list[dict[str, Any]]
    logs: list[str] = field(default_factory=list)
    #: the session the turn belongs to (pass it back to continue)
    session_id: str = ""
    #: ``"remember"``/``"instruct"`` when the message was a chat command
    command: str | None = None
    #: the id ``remember:`` stored
    memory_id: str | None = None

    @property
    def auto_memory(self) -> list[str]:
        """What auto-memory did this turn (the ``auto-memory: …`` log lines)."""
        return [line for line in self.logs if line.startswith("auto-memory:")]


class ApiError(SemMemError):
    """The API server answered with an error, or could not be reached (``status`` 0)."""

    def __init__(self, message: str, *, status: int, error: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.error = error


class MemoryClient(ABC):
    """Every operation the UI needs; results are plain dicts shaped like the API's JSON."""

    #: ``"local"`` (in-process memory) or ``"api"`` (HTTP client of the server)
    kind: str = ""

    @abstractmethod
    def describe(self) -> str:
        """One line saying where the memories live (shown in the sidebar)."""

    @abstractmethod
    def model_info(self) -> ModelInfo:
        """The configured chat model, or memory-only mode."""

    @abstractmethod
    def chat(
        self, query: str, *, session_id: str | None = None, options: ChatOptions | None = None
    ) -> ChatReply:
        """One turn of the chat session ``session_id`` (a new session when ``None``).

        The session (kept by the engine, or by the server in API mode) holds the
        thread; ``remember:``/``instruct:`` commands are run by it too.
        """

    def set_chat_api(self, api: str) -> None:
        """Switch the chat wire format (``auto``/``responses``/``chat_completions``)."""
        raise ConfigurationError("this client cannot switch the chat API")

    @abstractmethod
    def remember(self, text: str, metadata: Mapping[str, Any] | None = None) -> str:
        """Store one memory; returns its id."""

    @abstractmethod
    def recall(
        self,
        query: str,
        *,
        limit: int = 5,
        threshold: float | None = None,
        source: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        rerank: bool | None = None,
    ) -> list[dict[str, Any]]:
        """The most relevant memories, best first (``tier`` says L1 or L2), optionally
        only those of one source or that happened in a time range; ``rerank`` as
        ``SemanticMemory.recall``'s (None: as the memory is configured)."""

    @abstractmethod
    def instructions(self) -> str:
        """The persistent instructions."""

    @abstractmethod
    def set_instructions(self, text: str) -> str:
        """Replace the instructions; returns them as stored."""

    @abstractmethod
    def add_instruction(self, text: str) -> str:
        """Append one instruction line; returns all instructions."""

    @abstractmethod
    def cache_state(self) -> dict[str, list[dict[str, Any]]]:
        """The L1 tiers: ``{"protected": [...], "probation": [...]}``."""

    @abstractmethod
    def stats(self) -> dict[str, Any]:
        """Counts, L1 figures, index parameters and the embedder."""

    @abstractmethod
    def ingest(self, data: bytes, name: str, progress: Progress | None = None) -> dict[str, Any]:
        """Store a PDF, text or Markdown file as chunks (``POST /upload/pdf`` shape)."""

    @abstractmethod
    def save_thread(self, session_id: str) -> list[str]:
        """Store the session's turns not saved before in L2, one memory per turn."""

    @abstractmethod
    def list_memories(
        self,
        *,
        limit: int = 50,
        offset: int = 0,
        source: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[dict[str, Any]]:
        """Memories page by page, newest first, filtered by source and creation time."""

    @abstractmethod
    def get(self, memory_id: str) -> dict[str, Any]:
        """One memory (NotFoundError if there is none)."""

    @abstractmethod
    def update(
        self, memory_id: str, *, text: str | None = None, metadata: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Change text and/or metadata; the old version stays in the history."""

    @abstractmethod
    def forget(self, memory_id: str) -> None:
        """Delete a memory for good."""

    @abstractmethod
    def history(self, memory_id: str) -> list[dict[str, Any]]:
        """Every change of one memory, oldest first."""

    @abstractmethod
    def export_jsonl(self) -> Iterator[bytes]:
        """The namespace as JSON Lines (with embeddings), streamed."""

    @abstractmethod
    def import_jsonl(self, data: bytes) -> dict[str, Any]:
        """Import JSON Lines written by :meth:`export_jsonl`; returns the report."""

    @abstractmethod
    def atlas(
        self, *, max_points: int = DEFAULT_MAX_POINTS, clusters: int | None = None
    ) -> Atlas | None:
        """The memories projected to 2D (``None`` when there are none)."""

    @abstractmethod
    def query_vector(self, query: str) -> np.ndarray | None:
        """The query's embedding, or ``None`` when the client cannot compute it."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release what the client holds."""


def new_thread_title() -> str:
    """A fresh session id for the UI's chat (also the thread its turns are saved under)."""
    return f"ui-{uuid.uuid4().hex[:12]}"
