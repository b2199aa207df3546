"""The small interface the UI talks to, with an in-process and an HTTP implementation.

:class:`MemoryClient` lists every operation the Streamlit app needs, with plain,
JSON-shaped results (the API server's response shapes), so the app has one code path:

* :class:`LocalClient` wraps a :class:`~sem_mem.SemanticMemory` in this process (the
  standalone app). :func:`local_session_factory` gives each browser session its own
  ``SemanticMemory`` over one shared backend and embedder: L2 shared, L1 per session,
  as the seed's "Multi-Session Behavior" says.
* :class:`HttpClient` talks to the API server (``sem_mem.server``) with httpx; L1 and L2
  live in the server and are shared by every client.

Nothing here imports Streamlit.
"""

from __future__ import annotations

import base64
import json
import uuid
import weakref
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from ..atlas import DEFAULT_MAX_POINTS, Atlas, AtlasItem, build_atlas, build_atlas_from_items
from ..errors import (
    ConfigurationError,
    ConflictError,
    NotFoundError,
    SemMemError,
    ValidationError,
)
from ..llm.factory import chat_api_of, web_search_unavailable

if TYPE_CHECKING:
    import httpx

    from ..conversation import ChatOptions, ChatSession
    from ..core import SemanticMemory

__all__ = [
    "ApiError",
    "ChatReply",
    "HttpClient",
    "LocalClient",
    "MemoryClient",
    "ModelInfo",
    "local_session_factory",
    "session_memory",
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
    ) -> list[dict[str, Any]]:
        """The most relevant memories, best first (``tier`` says L1 or L2), optionally
        only those of one source or that happened in a time range."""

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


# --------------------------------------------------------------------------- in-process


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
    ) -> list[dict[str, Any]]:
        found = self.memory.recall(
            query, limit, threshold=threshold, source=source, since=since, until=until
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


# --------------------------------------------------------------------------- HTTP

#: error bodies' ``error`` codes / statuses → the core's exception classes
_STATUS_ERRORS: dict[int, type[SemMemError]] = {
    404: NotFoundError,
    409: ConflictError,
    413: ValidationError,
    422: ValidationError,
}


class HttpClient(MemoryClient):
    """The UI's operations over the API server's HTTP endpoints.

    ``api_key`` is sent as ``Authorization: Bearer <key>``. ``http`` replaces the
    httpx client (tests pass Starlette's ``TestClient``, which is one).
    """

    kind = "api"

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        *,
        timeout: float = 120.0,
        http: httpx.Client | None = None,
    ) -> None:
        try:
            import httpx
        except ImportError as exc:  # pragma: no cover - httpx is in the app extra
            raise ConfigurationError(
                "the API client needs httpx: pip install 'sem-mem[app]'"
            ) from exc
        self.base_url = base_url.rstrip("/")
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        if http is None:
            http = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout)
        else:
            http.headers.update(headers)
        self.http = http

    # -- plumbing ---------------------------------------------------------------------

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        import httpx

        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise ApiError(
                f"cannot reach the API server at {self.base_url}: {exc}", status=0
            ) from exc
        if response.status_code >= 400:
            raise self._error(response)
        return response

    def _error(self, response: httpx.Response) -> SemMemError:
        try:
            body = response.json()
        except ValueError:
            body = {}
        if not isinstance(body, dict):
            body = {}
        if not body.get("detail"):
            body["detail"] = response.text or response.reason_phrase
        return self._error_of(response.status_code, body)

    def _error_of(self, status: int, body: dict[str, Any]) -> SemMemError:
        detail = body.get("detail")
        if not isinstance(detail, str):
            detail = json.dumps(detail)
        message = f"API {status}: {detail}"
        error_class = _STATUS_ERRORS.get(status)
        if error_class is not None:
            return error_class(message)
        return ApiError(message, status=status, error=str(body.get("error", "")))

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        return self._request(method, path, **kwargs).json()

    # -- operations -------------------------------------------------------------------

    def describe(self) -> str:
        return f"API server {self.base_url} (L1 and L2 shared by every client)"

    def model_info(self) -> ModelInfo:
        body = self._json("GET", "/model")
        enabled = bool(body.get("chat_enabled"))
        return ModelInfo(
            model=body.get("model") or "",
            reasoning_effort=body.get("reasoning_effort") or "low",
            chat_enabled=enabled,
            supports_temperature=True,
            reason="" if enabled else "the API server has no OPENAI_API_KEY or OPENAI_BASE_URL",
            web_search_unavailable=str(body.get("web_search_unavailable") or ""),
            chat_api=str(body.get("chat_api") or ""),
        )

    def chat(
        self, query: str, *, session_id: str | None = None, options: ChatOptions | None = None
    ) -> ChatReply:
        # the server keeps the session (the thread and its continuation) in its store
        body: dict[str, Any] = {"query": query, "session_id": session_id}
        if options is not None:
            body.update(
                model=options.model,
                reasoning_effort=options.reasoning_effort,
                temperature=options.temperature,
                web_search=options.web_search,
                auto_remember=options.auto_remember,
            )
        out = self._json("POST", "/chat", json=body)
        return ChatReply(
            out["response"],
            out.get("response_id"),
            out["memories"],
            out["logs"],
            session_id=out["session_id"],
            command=out.get("command"),
            memory_id=out.get("memory_id"),
        )

    def remember(self, text: str, metadata: Mapping[str, Any] | None = None) -> str:
        body = {"text": text, "metadata": dict(metadata) if metadata else None}
        return str(self._json("POST", "/remember", json=body)["id"])

    def recall(
        self,
        query: str,
        *,
        limit: int = 5,
        threshold: float | None = None,
        source: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[dict[str, Any]]:
        body = {
            "query": query,
            "limit": limit,
            "threshold": threshold,
            "source": source,
            "since": since.isoformat() if since is not None else None,
            "until": until.isoformat() if until is not None else None,
        }
        return list(self._json("POST", "/recall", json=body)["memories"])

    def instructions(self) -> str:
        return str(self._json("GET", "/instructions")["instructions"])

    def set_instructions(self, text: str) -> str:
        return str(self._json("PUT", "/instructions", json={"text": text})["instructions"])

    def add_instruction(self, text: str) -> str:
        return str(self._json("POST", "/instructions", json={"text": text})["instructions"])

    def cache_state(self) -> dict[str, list[dict[str, Any]]]:
        return dict(self._json("GET", "/cache"))

    def stats(self) -> dict[str, Any]:
        return dict(self._json("GET", "/stats"))

    def ingest(self, data: bytes, name: str, progress: Progress | None = None) -> dict[str, Any]:
        mime = "application/pdf" if name.lower().endswith(".pdf") else "text/plain"
        files = {"file": (name, data, mime)}
        if progress is None:
            return dict(self._json("POST", "/upload/pdf", files=files))
        # the server streams {"done", "total"} lines as chunks are stored, then the result
        import httpx

        try:
            with self.http.stream(
                "POST", "/upload/pdf", params={"progress": "true"}, files=files
            ) as response:
                if response.status_code >= 400:
                    response.read()
                    raise self._error(response)
                for line in response.iter_lines():
                    if not line.strip():
                        continue
                    event = json.loads(line)
                    if "result" in event:
                        return dict(event["result"])
                    if "error" in event:
                        raise self._error_of(int(event.get("status", 500)), event)
                    progress(int(event["done"]), int(event["total"]))
        except httpx.HTTPError as exc:
            raise ApiError(
                f"cannot reach the API server at {self.base_url}: {exc}", status=0
            ) from exc
        raise ApiError("the upload ended without a result", status=0)

    def save_thread(self, session_id: str) -> list[str]:
        body = {"session_id": session_id}
        return list(self._json("POST", "/threads/save", json=body)["ids"])

    def list_memories(
        self,
        *,
        limit: int = 50,
        offset: int = 0,
        source: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"limit": limit, "offset": offset}
        if source:
            params["source"] = source
        if since is not None:
            params["since"] = since.isoformat()
        if until is not None:
            params["until"] = until.isoformat()
        return list(self._json("GET", "/memories", params=params)["memories"])

    def get(self, memory_id: str) -> dict[str, Any]:
        return dict(self._json("GET", f"/memories/{memory_id}"))

    def update(
        self, memory_id: str, *, text: str | None = None, metadata: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        body = {"text": text, "metadata": metadata}
        return dict(self._json("PATCH", f"/memories/{memory_id}", json=body))

    def forget(self, memory_id: str) -> None:
        self._request("DELETE", f"/memories/{memory_id}")

    def history(self, memory_id: str) -> list[dict[str, Any]]:
        return list(self._json("GET", f"/memories/{memory_id}/history")["events"])

    def export_jsonl(self) -> Iterator[bytes]:
        response = self._request("GET", "/export", params={"include_embeddings": "true"})
        return iter(response.content.splitlines(keepends=True))

    def import_jsonl(self, data: bytes) -> dict[str, Any]:
        headers = {"Content-Type": "application/x-ndjson"}
        return dict(self._json("POST", "/import", content=data, headers=headers))

    def atlas(
        self, *, max_points: int = DEFAULT_MAX_POINTS, clusters: int | None = None
    ) -> Atlas | None:
        """Built from ``GET /export`` (which carries the embeddings), streamed line by line."""
        with self.http.stream("GET", "/export", params={"include_embeddings": "true"}) as response:
            if response.status_code >= 400:
                response.read()
                raise self._error(response)
            items = _atlas_items(response.iter_lines())
            return build_atlas_from_items(items, max_points=max_points, clusters=clusters)

    def query_vector(self, query: str) -> np.ndarray | None:
        return None  # the server has no embedding endpoint: the UI places the query by neighbours

    def close(self) -> None:
        self.http.close()


def _atlas_items(lines: Iterator[str]) -> Iterator[AtlasItem]:
    """Active memories with embeddings from export JSON Lines (see :mod:`sem_mem.transfer`)."""
    for line in lines:
        if not line.strip():
            continue
        record = json.loads(line)
        if record.get("type") != "memory" or record.get("status", "active") != "active":
            continue
        blob = record.get("embedding")
        if not blob:
            continue
        yield AtlasItem(
            id=record["id"],
            text=record["text"],
            source=record.get("source", "manual"),
            created_at=float(record.get("created_at") or 0.0),
            vector=np.frombuffer(base64.b64decode(blob), dtype="<f4"),
        )


def new_thread_title() -> str:
    """A fresh session id for the UI's chat (also the thread its turns are saved under)."""
    return f"ui-{uuid.uuid4().hex[:12]}"
