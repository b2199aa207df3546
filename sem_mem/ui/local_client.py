"""The UI's :class:`~sem_mem.ui.interface.MemoryClient` over a ``SemanticMemory`` in this
process, and per-browser-session memories over one shared store (L2 shared, L1 per
session, as the seed's "Multi-Session Behavior" says)."""

from __future__ import annotations

import uuid
import weakref
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from ..atlas import DEFAULT_MAX_POINTS, Atlas, build_atlas
from ..errors import ConfigurationError, NotFoundError, SemMemError, ValidationError
from ..llm.factory import chat_api_of, web_search_unavailable
from .interface import CHAT_APIS, ChatReply, MemoryClient, ModelInfo, Progress

if TYPE_CHECKING:
    from ..conversation import ChatOptions, ChatSession
    from ..core import SemanticMemory

__all__ = ["LocalClient", "local_session_factory", "session_memory"]


def session_memory(shared: SemanticMemory) -> SemanticMemory:
    """A new ``SemanticMemory`` with its own L1 over ``shared``'s backend and embedder."""
    from ..core import SemanticMemory

    return SemanticMemory(
        backend=shared.backend, embedder=shared.embedder, settings=shared.settings
    )


def local_session_factory(shared: Callable[[], SemanticMemory]) -> Callable[[], LocalClient]:
    """A factory of per-session clients: L2 (backend, embedder) shared, L1 per session.

    ``shared`` returns the one memory per storage dir (the app caches it with
    ``st.cache_resource``); every call of the factory opens a session memory over it.
    """

    def make() -> LocalClient:
        return LocalClient(session_memory(shared()), owns_memory=True)

    return make


def _close_quietly(memory: SemanticMemory) -> None:
    try:
        memory.close()
    except SemMemError:  # the shared store may be closed already at shutdown
        pass


class LocalClient(MemoryClient):
    """The UI's operations on a :class:`~sem_mem.SemanticMemory` in this process.

    With ``owns_memory`` the memory is closed (hit counts flushed; a shared backend
    is left open) when the client is closed or garbage-collected with its session.
    """

    kind = "local"

    def __init__(self, memory: SemanticMemory, *, owns_memory: bool = False) -> None:
        self.memory = memory
        self._sessions: dict[str, ChatSession] = {}
        self._finalizer = weakref.finalize(self, _close_quietly, memory) if owns_memory else None

    def describe(self) -> str:
        return (
            f"local store {self.memory.settings.storage_dir} "
            f"(namespace {self.memory.namespace}, L1 per browser session)"
        )

    def model_info(self) -> ModelInfo:
        settings = self.memory.settings
        try:
            chat_model = self.memory.chat_model
            reason = "" if chat_model is not None else "no OPENAI_API_KEY or OPENAI_BASE_URL"
        except ConfigurationError as exc:
            chat_model, reason = None, str(exc)
        return ModelInfo(
            model=(chat_model.model if chat_model is not None else "") or settings.chat_model,
            reasoning_effort=settings.reasoning_effort,
            chat_enabled=chat_model is not None,
            supports_temperature=True,
            reason=reason,
            web_search_unavailable=web_search_unavailable(chat_model),
            chat_api=chat_api_of(chat_model),
            can_switch_chat_api=chat_model is not None,
        )

    def set_chat_api(self, api: str) -> None:
        """A new session memory (same store, embedder and L2) whose chat model speaks ``api``."""
        from ..core import SemanticMemory

        if api not in CHAT_APIS:
            raise ValidationError(f"chat_api must be one of {', '.join(CHAT_APIS)}, got {api!r}")
        old = self.memory
        self.memory = SemanticMemory(
            backend=old.backend, embedder=old.embedder, settings=old.settings, chat_api=api
        )
        for session in self._sessions.values():
            session.memory = self.memory
        if self._finalizer is not None:
            self._finalizer()  # closes the old session memory (the shared backend stays)
            self._finalizer = weakref.finalize(self, _close_quietly, self.memory)

    def chat(
        self, query: str, *, session_id: str | None = None, options: ChatOptions | None = None
    ) -> ChatReply:
        from ..conversation import ChatSession

        session = self._sessions.get(session_id) if session_id else None
        if session is None:
            session = ChatSession(self.memory, session_id=session_id or uuid.uuid4().hex)
            self._sessions[str(session.id)] = session
        reply = session.send(query, options)
        return ChatReply(
            reply.text,
            reply.response_id,
            [m.to_dict() for m in reply.memories],
            list(reply.logs),
            session_id=str(session.id),
            command=reply.command,
            memory_id=reply.memory_id,
        )

    def remember(self, text: str, metadata: Mapping[str, Any] | None = None) -> str:
        return self.memory.remember(text, metadata)

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
        found = self.memory.recall(
            query,
            limit,
            threshold=threshold,
            source=source,
            since=since,
            until=until,
            rerank=rerank,
        )
        return [r.to_dict() for r in found]

    def instructions(self) -> str:
        return self.memory.instructions

    def set_instructions(self, text: str) -> str:
        self.memory.set_instructions(text)
        return self.memory.instructions

    def add_instruction(self, text: str) -> str:
        self.memory.add_instruction(text)
        return self.memory.instructions

    def cache_state(self) -> dict[str, list[dict[str, Any]]]:
        return self.memory.cache_state()

    def stats(self) -> dict[str, Any]:
        return self.memory.stats()

    def ingest(self, data: bytes, name: str, progress: Progress | None = None) -> dict[str, Any]:
        return self.memory.ingest_pdf(data, name=name, progress=progress).to_dict()

    def save_thread(self, session_id: str) -> list[str]:
        session = self._sessions.get(session_id)
        if session is None:
            raise NotFoundError(f"no chat session {session_id!r} in this browser session")
        return session.save_thread()

    def list_memories(
        self,
        *,
        limit: int = 50,
        offset: int = 0,
        source: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[dict[str, Any]]:
        page = self.memory.list(limit=limit, offset=offset, source=source, since=since, until=until)
        return [m.to_dict() for m in page]

    def get(self, memory_id: str) -> dict[str, Any]:
        return self.memory.get(memory_id).to_dict()

    def update(
        self, memory_id: str, *, text: str | None = None, metadata: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        return self.memory.update(memory_id, text=text, metadata=metadata).to_dict()

    def forget(self, memory_id: str) -> None:
        self.memory.forget(memory_id)

    def history(self, memory_id: str) -> list[dict[str, Any]]:
        return [e.to_dict() for e in self.memory.history(memory_id)]

    def export_jsonl(self) -> Iterator[bytes]:
        return (line.encode("utf-8") for line in self.memory.export_jsonl())

    def import_jsonl(self, data: bytes) -> dict[str, Any]:
        return self.memory.import_jsonl(data.splitlines()).to_dict()

    def atlas(
        self, *, max_points: int = DEFAULT_MAX_POINTS, clusters: int | None = None
    ) -> Atlas | None:
        self.memory.refresh()
        return build_atlas(self.memory, max_points=max_points, clusters=clusters)

    def query_vector(self, query: str) -> np.ndarray | None:
        if not query.strip():
            return None
        return np.asarray(self.memory.embedder.encode([query])[0])

    def close(self) -> None:
        if self._finalizer is not None:
            self._finalizer()
