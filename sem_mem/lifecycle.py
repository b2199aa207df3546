"""Memories still open when the interpreter exits are closed, so their pending hit
counts and index files are saved (the ``atexit`` hook is registered by the first
memory opened, not at import)."""

from __future__ import annotations

import atexit
import logging
import weakref
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .core import SemanticMemory

__all__ = ["close_at_exit", "closed"]

log = logging.getLogger("sem_mem")

_open_memories: weakref.WeakSet[SemanticMemory] = weakref.WeakSet()
_atexit_registered = False


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
