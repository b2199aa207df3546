"""Opening and closing a ``SemanticMemory``'s parts.

:func:`open_parts` gives a new memory its store and embedder, bound to each other.
Memories still open when the interpreter exits are closed, so their pending hit counts
and index files are saved (the ``atexit`` hook is registered by the first memory
opened, not at import).
"""

from __future__ import annotations

import atexit
import logging
import weakref
from typing import TYPE_CHECKING

from .backends.base import StorageBackend
from .config import Settings
from .embedders.base import Embedder

if TYPE_CHECKING:
    from .core import SemanticMemory

__all__ = ["close_at_exit", "closed", "open_parts"]

log = logging.getLogger("sem_mem")

_open_memories: weakref.WeakSet[SemanticMemory] = weakref.WeakSet()
_atexit_registered = False


def open_parts(
    settings: Settings, backend: StorageBackend | None, embedder: Embedder | str | None
) -> tuple[StorageBackend, Embedder]:
    """``backend``, or the store ``settings`` name, and ``embedder`` if it is an object,
    else the one ``settings`` choose for the store's recorded embedding space, bound to
    the store. A store opened here is closed again if the embedder cannot be used."""
    owns_backend = backend is None
    if backend is None:
        from .backends.factory import open_backend

        backend = open_backend(settings)
    try:
        if isinstance(embedder, Embedder):
            chosen = embedder
        else:
            from .embedders.factory import create_embedder

            space = backend.embedding_space()
            chosen = create_embedder(settings, recorded_model=space[0] if space else None)
        backend.bind_embedding_space(chosen.model_id, chosen.dimensions)
    except BaseException:
        if owns_backend:
            backend.close()
        raise
    return backend, chosen


def _close_all_at_exit() -> None:
    for memory in list(_open_memories):
        try:
            memory.close()
        except Exception:  # interpreter shutdown: best effort, SQLite already holds the data
            log.debug("close at exit failed", exc_info=True)


def close_at_exit(memory: SemanticMemory) -> None:
    """Close ``memory`` when the interpreter exits, unless it is closed before."""
    global _atexit_registered
    _open_memories.add(memory)
    if not _atexit_registered:
        atexit.register(_close_all_at_exit)
        _atexit_registered = True


def closed(memory: SemanticMemory) -> None:
    """``memory`` was closed: nothing to do for it at exit."""
    _open_memories.discard(memory)
