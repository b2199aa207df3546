"""The UI's :class:`~sem_mem.ui.interface.MemoryClient` over the API server's HTTP
endpoints (httpx, imported when a client is made); L1 and L2 live in the server."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from ..atlas import DEFAULT_MAX_POINTS, Atlas, AtlasItem, build_atlas_from_items
from ..errors import ConfigurationError, ConflictError, NotFoundError, SemMemError, ValidationError
from .interface import ApiError, ChatReply, MemoryClient, ModelInfo, Progress

if TYPE_CHECKING:
    import httpx

    from ..conversation import ChatOptions


__all__ = ["HttpClient"]

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
        rerank: bool | None = None,
    ) -> list[dict[str, Any]]:
        body = {
            "query": query,
            "limit": limit,
            "threshold": threshold,
            "source": source,
            "since": since.isoformat() if since is not None else None,
            "until": until.isoformat() if until is not None else None,
            "rerank": rerank,
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
