"""Server configuration that the core does not need: request limits, CORS, exposure.

Every limit has a name; a request over one is answered with 413 (bytes, batch size)
or by the core's own checks (text length: 413 ``max_text_chars``), and the body
names the limit, its maximum and what was sent. ``docs/server.md`` has the table.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..config import read_environment
from ..errors import ConfigurationError, LimitExceededError
from ..ingest import DEFAULT_MAX_BYTES
from .errors import error_response

__all__ = ["BodyLimitMiddleware", "BodyTooLarge", "ServerConfig"]

MiB = 2**20
#: multipart framing around an uploaded file (boundaries, part headers)
MULTIPART_SLACK = 64 * 1024

_ENV = {
    "max_body_bytes": "SEMMEM_MAX_BODY_BYTES",
    "max_upload_bytes": "SEMMEM_MAX_UPLOAD_BYTES",
    "max_import_bytes": "SEMMEM_MAX_IMPORT_BYTES",
    "max_batch": "SEMMEM_MAX_BATCH",
    "cors_origins": "SEMMEM_CORS_ORIGINS",
    "allow_unauthenticated": "SEMMEM_ALLOW_UNAUTHENTICATED",
    "header_timeout": "SEMMEM_HEADER_TIMEOUT",
    "keep_alive_timeout": "SEMMEM_KEEP_ALIVE_TIMEOUT",
    "max_connections": "SEMMEM_MAX_CONNECTIONS",
}


@dataclass(frozen=True)
class ServerConfig:
    """Limits and exposure of the HTTP server (environment names in ``docs/server.md``).

    ``cors_origins`` is empty by default: no cross-origin browser access. ``*`` must
    be configured explicitly. ``allow_unauthenticated`` lets a server without API keys
    answer requests that arrive on a non-loopback address.
    """

    max_body_bytes: int = 10 * MiB
    max_upload_bytes: int = DEFAULT_MAX_BYTES
    max_import_bytes: int = 1024 * MiB
    max_batch: int = 1000
    cors_origins: tuple[str, ...] = ()
    allow_unauthenticated: bool = False
    max_concurrency: int = 4
    #: seconds a connection may take to send a request's headers (see server/protocol.py)
    header_timeout: int = 10
    #: seconds an idle keep-alive connection stays open
    keep_alive_timeout: int = 5
    #: open connections at most; more are answered 503 at once
    max_connections: int = 1000

    @classmethod
    def from_env(
        cls,
        env: Mapping[str, str] | None = None,
        *,
        dotenv_path: str | os.PathLike[str] | None = ".env",
        secrets_path: str | os.PathLike[str] | None = ".streamlit/secrets.toml",
        **overrides: Any,
    ) -> ServerConfig:
        """Read the ``SEMMEM_*`` variables with the settings' precedence (kwargs >
        environment > ``.env`` > Streamlit secrets; ``env`` replaces ``os.environ``)."""
        found = read_environment(
            _ENV.values(), env=env, dotenv_path=dotenv_path, secrets_path=secrets_path
        )
        values: dict[str, Any] = {}
        for name, var in _ENV.items():
            raw = found.get(var)
            if raw is None or raw.strip() == "":
                continue
            if name == "cors_origins":
                values[name] = tuple(o.strip() for o in raw.split(",") if o.strip())
            elif name == "allow_unauthenticated":
                values[name] = raw.strip().lower() in ("1", "true", "yes", "on")
            else:
                try:
                    values[name] = int(raw)
                except ValueError as exc:
                    raise ConfigurationError(f"{var} must be an integer, got {raw!r}") from exc
        values.update({k: v for k, v in overrides.items() if v is not None})
        config = cls(**values)
        for name in (
            "max_body_bytes",
            "max_upload_bytes",
            "max_import_bytes",
            "max_batch",
            "header_timeout",
            "keep_alive_timeout",
            "max_connections",
        ):
            if getattr(config, name) <= 0:
                raise ConfigurationError(f"{name} must be positive")
        return config

    def body_limit(self, path: str) -> tuple[str, int]:
        """(limit name, bytes) that applies to a request body on ``path``."""
        if path.startswith("/upload/"):
            return "max_upload_bytes", self.max_upload_bytes + MULTIPART_SLACK
        if path == "/import":
            return "max_import_bytes", self.max_import_bytes
        return "max_body_bytes", self.max_body_bytes


class BodyTooLarge(LimitExceededError, HTTPException):
    """A request body over its byte limit: a :class:`LimitExceededError` (413, naming the
    limit, its maximum and the size), and also Starlette's ``HTTPException`` because
    FastAPI turns any other exception raised while it reads a body into a 400."""

    def __init__(self, limit: str, maximum: int, actual: int, *, streamed: bool) -> None:
        seen = f"more than {maximum:,}" if streamed else f"{actual:,}"
        message = f"request body is {seen} bytes; the limit is {maximum:,} bytes ({limit})"
        LimitExceededError.__init__(self, message, limit=limit, maximum=maximum, actual=actual)
        HTTPException.__init__(self, 413, message)

    def __str__(self) -> str:  # the message, not HTTPException's "413: ..."
        return str(self.args[0])


class BodyLimitMiddleware:
    """Refuse bodies over the limit: by ``Content-Length`` up front, else while streaming."""

    def __init__(self, app: ASGIApp, config: ServerConfig) -> None:
        self.app = app
        self.config = config

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        name, limit = self.config.body_limit(scope["path"])
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            response = error_response(BodyTooLarge(name, limit, declared, streamed=False))
            await response(scope, receive, send)
            return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(name, limit, received, streamed=True)
            return message

        await self.app(scope, limited, send)


def _content_length(scope: Scope) -> int | None:
    for key, value in scope.get("headers", ()):
        if key == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
