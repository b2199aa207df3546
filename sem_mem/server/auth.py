"""API keys → namespaces, and one engine per namespace over one shared store.

``SEMMEM_API_KEYS="key1:alice,key2:bob"``: a request sending ``Authorization: Bearer
key1`` acts on namespace ``alice`` and nothing else. A key without ``:namespace`` is
bound to the configured namespace. With no keys, authentication is off, every request
uses the configured namespace, and (unless ``allow_unauthenticated``) only requests
arriving on a loopback address are served.

All namespaces share one storage backend (one SQLite file and index directory per
storage dir) and one embedder; each has its own :class:`SemanticMemory` (its own L1).
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Header, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from ..async_core import AsyncSemanticMemory
from ..config import Settings
from ..core import SemanticMemory
from ..embedders.base import Embedder
from ..errors import ConfigurationError
from .errors import AuthenticationRequired, NamespaceForbidden

__all__ = [
    "NAMESPACE_HEADER",
    "ChatPrefs",
    "NamespaceRegistry",
    "current_memory",
    "is_loopback",
    "parse_api_keys",
]

log = logging.getLogger("sem_mem.server")

#: optional request header naming the namespace; must match the key's namespace
NAMESPACE_HEADER = "X-SemMem-Namespace"

bearer = HTTPBearer(auto_error=False, description="An API key from SEMMEM_API_KEYS")


def parse_api_keys(raw: str | None, default_namespace: str) -> dict[str, str]:
    """``"key1:alice,key2:bob"`` → ``{"key1": "alice", "key2": "bob"}``."""
    keys: dict[str, str] = {}
    for entry in (raw or "").split(","):
        entry = entry.strip()
        if not entry:
            continue
        key, sep, namespace = entry.partition(":")
        key, namespace = key.strip(), namespace.strip() if sep else default_namespace
        if not key:
            raise ConfigurationError("SEMMEM_API_KEYS has an entry with an empty key")
        if not namespace or len(namespace) > 128:
            raise ConfigurationError("SEMMEM_API_KEYS: namespaces must be 1-128 characters")
        if keys.get(key, namespace) != namespace:
            raise ConfigurationError("SEMMEM_API_KEYS binds one key to two namespaces")
        keys[key] = namespace
    return keys


def is_loopback(host: str | None) -> bool:
    """True for 127.0.0.0/8, ::1 and ``localhost``."""
    if host is None:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass
class ChatPrefs:
    """The chat model and reasoning effort a namespace uses (``GET/PUT /model``)."""

    model: str
    reasoning_effort: str


class NamespaceRegistry:
    """Opens one engine per namespace on first use; all share the first one's backend."""

    def __init__(
        self, settings: Settings, *, embedder: Embedder | None = None, max_concurrency: int = 4
    ) -> None:
        self.settings = settings
        self.api_keys = parse_api_keys(settings.api_keys, settings.namespace)
        self._embedder = embedder
        self._max_concurrency = max_concurrency
        self._root: SemanticMemory | None = None
        self._memories: dict[str, AsyncSemanticMemory] = {}
        self._prefs: dict[str, ChatPrefs] = {}
        self._lock = threading.Lock()
        self._closed = False

    @property
    def auth_enabled(self) -> bool:
        return bool(self.api_keys)

    def namespace_for_key(self, key: str | None) -> str | None:
        """The namespace bound to ``key`` (constant-time comparison against every key)."""
        if not key:
            return None
        found = None
        for known, namespace in self.api_keys.items():
            if hmac.compare_digest(known.encode(), key.encode()):
                found = namespace
        return found

    def open(self, namespace: str) -> AsyncSemanticMemory:
        """The engine for ``namespace``, opened if needed (blocking: call in a thread)."""
        with self._lock:
            if self._closed:
                raise ConfigurationError("the server is shutting down")
            memory = self._memories.get(namespace)
            if memory is not None:
                return memory
            if self._root is None:
                self._root = SemanticMemory(settings=self.settings, embedder=self._embedder)
                self._memories[self._root.namespace] = self._wrap(self._root)
            if namespace not in self._memories:
                engine = SemanticMemory(
                    settings=self.settings.with_overrides(namespace=namespace),
                    backend=self._root.backend,
                    embedder=self._root.embedder,
                )
                self._memories[namespace] = self._wrap(engine)
            return self._memories[namespace]

    def _wrap(self, memory: SemanticMemory) -> AsyncSemanticMemory:
        return AsyncSemanticMemory.wrap(memory, max_concurrency=self._max_concurrency)

    async def get(self, namespace: str) -> AsyncSemanticMemory:
        """The engine for ``namespace`` without blocking the event loop."""
        memory = self._memories.get(namespace)
        if memory is not None:
            return memory
        return await asyncio.to_thread(self.open, namespace)

    def prefs(self, namespace: str) -> ChatPrefs:
        with self._lock:
            prefs = self._prefs.get(namespace)
            if prefs is None:
                prefs = ChatPrefs(self.settings.chat_model, self.settings.reasoning_effort)
                self._prefs[namespace] = prefs
            return prefs

    def open_memories(self) -> Iterator[tuple[str, SemanticMemory]]:
        """(namespace, engine) of every namespace opened so far."""
        with self._lock:
            items = list(self._memories.items())
        for namespace, memory in items:
            yield namespace, memory.sync

    def close(self) -> None:
        """Close every engine, the one owning the shared backend last."""
        with self._lock:
            self._closed = True
            memories, self._memories = self._memories, {}
            root, self._root = self._root, None
        for memory in memories.values():
            if memory.sync is not root:
                try:
                    memory.sync.close()
                except Exception:  # keep closing the others; the store has the data
                    log.exception("closing namespace %r failed", memory.namespace)
        if root is not None:
            root.close()


async def current_memory(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    namespace: Annotated[
        str | None,
        Header(
            alias=NAMESPACE_HEADER,
            description="Optional: the namespace the key is bound to (else 403)",
        ),
    ] = None,
) -> AsyncSemanticMemory:
    """FastAPI dependency: authenticate the request and return its namespace's engine."""
    registry: NamespaceRegistry = request.app.state.registry
    if registry.auth_enabled:
        bound = registry.namespace_for_key(credentials.credentials if credentials else None)
        if bound is None:
            raise AuthenticationRequired(
                "missing or unknown API key: send 'Authorization: Bearer <key>'"
            )
    else:
        server = request.scope.get("server")
        host = server[0] if server else None
        if not request.app.state.config.allow_unauthenticated and not is_loopback(host):
            raise NamespaceForbidden(
                "authentication is disabled (no SEMMEM_API_KEYS), so this server only "
                "answers requests made to a loopback address"
            )
        bound = registry.settings.namespace
    if namespace is not None and namespace != bound:
        raise NamespaceForbidden(f"this key may not access namespace {namespace!r}")
    request.state.namespace = bound
    return await registry.get(bound)


Memory = Annotated[AsyncSemanticMemory, Depends(current_memory)]


def namespace_of(request: Request) -> str:
    """The namespace :func:`current_memory` authenticated the request for."""
    value: Any = getattr(request.state, "namespace", None)
    return str(value)
