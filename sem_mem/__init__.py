"""Sem-Mem: tiered semantic memory for AI agents (L1 SmartCache → L2 HNSW + FTS5 → LLM).

Importing this package does nothing but define names: no files, no network,
no environment reads. Everything happens when you build a ``SemanticMemory``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import (
    AuthenticationError,
    ConfigurationError,
    ConflictError,
    EmbeddingError,
    EmbeddingMismatchError,
    LimitExceededError,
    LLMError,
    ModelNotFoundError,
    NotFoundError,
    ProviderUnavailableError,
    RateLimitError,
    SemMemError,
    SessionConflictError,
    StorageError,
    ValidationError,
)
from .types import HistoryEvent, Memory, Recollection

if TYPE_CHECKING:
    from .async_core import AsyncSemanticMemory
    from .backends.base import StorageBackend
    from .cache import SmartCache
    from .conversation import ChatOptions, ChatSession
    from .core import SemanticMemory
    from .decorators import MemoryChat, with_memory, with_rag
    from .embedders.base import Embedder
    from .llm.base import ChatModel
    from .migrate import migrate_lsh_to_hnsw, migrate_original_sem_mem

__version__ = "0.1.0"

# Public names resolved on first use, so `import sem_mem` stays cheap.
_LAZY = {
    "SemanticMemory": ("core", "SemanticMemory"),
    "AsyncSemanticMemory": ("async_core", "AsyncSemanticMemory"),
    "StorageBackend": ("backends.base", "StorageBackend"),
    "ChatModel": ("llm.base", "ChatModel"),
    "SmartCache": ("cache", "SmartCache"),
    "Embedder": ("embedders.base", "Embedder"),
    "migrate_lsh_to_hnsw": ("migrate", "migrate_lsh_to_hnsw"),
    "migrate_original_sem_mem": ("migrate", "migrate_original_sem_mem"),
    "MemoryChat": ("decorators", "MemoryChat"),
    "ChatSession": ("conversation", "ChatSession"),
    "ChatOptions": ("conversation", "ChatOptions"),
    "with_memory": ("decorators", "with_memory"),
    "with_rag": ("decorators", "with_rag"),
}

__all__ = [
    "AsyncSemanticMemory",
    "AuthenticationError",
    "ChatModel",
    "ChatOptions",
    "ChatSession",
    "ConfigurationError",
    "ConflictError",
    "Embedder",
    "EmbeddingError",
    "EmbeddingMismatchError",
    "HistoryEvent",
    "LLMError",
    "LimitExceededError",
    "Memory",
    "MemoryChat",
    "ModelNotFoundError",
    "NotFoundError",
    "ProviderUnavailableError",
    "RateLimitError",
    "Recollection",
    "SemMemError",
    "SemanticMemory",
    "SessionConflictError",
    "SmartCache",
    "StorageBackend",
    "StorageError",
    "ValidationError",
    "migrate_lsh_to_hnsw",
    "migrate_original_sem_mem",
    "with_memory",
    "with_rag",
]


def __getattr__(name: str) -> Any:
    target = _LAZY.get(name)
    if target is None:
        raise AttributeError(f"module 'sem_mem' has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(f".{target[0]}", __name__), target[1])
    globals()[name] = value
    return value
