"""What the framework adapters share: namespace names derived from a root, the memory
an adapter opens when it is given a storage location instead of one, and the missing-
extra error.

Derived namespaces. An adapter is scoped to one Sem-Mem namespace, its *root* (the
memory's namespace), and may need more namespaces under it: LangGraph's namespace
tuples, or the OpenAI Agents session log. Their names are built so that no two
(root, path) pairs ever give the same name (Hypothesis checks it in
``tests/test_integrations_langgraph.py``)::

    derived(root, (l1, ..., ln)) = esc(root) + "/" + esc(l1) + ... + "/" + esc(ln)

where ``esc`` percent-escapes ``%``, ``/`` and ``#`` (and nothing else, so names stay
readable). The first unescaped ``/`` ends the root and every later one separates two
labels, so the name decodes back to exactly one pair. ``#`` is escaped so that names
built with :func:`companion` (``esc(root) + "#" + kind``) can never equal a derived
one either. Written by hand because it is four lines and must be exactly this.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..errors import ConfigurationError, LimitExceededError

if TYPE_CHECKING:
    from ..core import SemanticMemory

__all__ = [
    "MAX_NAMESPACE_CHARS",
    "companion",
    "decode",
    "derived",
    "escape",
    "missing_extra",
    "open_memory",
    "sibling",
    "unescape",
]

#: Sem-Mem's limit on a namespace name (``sem_mem.config``)
MAX_NAMESPACE_CHARS = 128

_ESCAPES = {"%": "%25", "/": "%2F", "#": "%23"}


def escape(label: str) -> str:
    """``label`` with ``%``, ``/`` and ``#`` percent-escaped (``%`` first)."""
    return "".join(_ESCAPES.get(ch, ch) for ch in label)


def unescape(text: str) -> str:
    """The inverse of :func:`escape`."""
    return text.replace("%2F", "/").replace("%23", "#").replace("%25", "%")


def derived(root: str, path: Sequence[str], *, field: str = "namespace") -> str:
    """The Sem-Mem namespace of ``path`` under ``root`` (see the module docstring)."""
    name = escape(root) + "".join("/" + escape(label) for label in path)
    if len(name) > MAX_NAMESPACE_CHARS:
        raise LimitExceededError(
            f"{field} {tuple(path)!r} under {root!r} needs a {len(name)}-character Sem-Mem "
            f"namespace; the limit is {MAX_NAMESPACE_CHARS} characters (namespace)",
            limit="namespace",
            maximum=MAX_NAMESPACE_CHARS,
            actual=len(name),
        )
    return name


def decode(root: str, name: str) -> tuple[str, ...] | None:
    """The path whose :func:`derived` name under ``root`` is ``name``, else None."""
    head = escape(root) + "/"
    if not name.startswith(head):
        return None
    return tuple(unescape(part) for part in name[len(head) :].split("/"))


def companion(root: str, kind: str) -> str:
    """A private namespace beside ``root`` for an adapter's own bookkeeping."""
    name = escape(root) + "#" + kind
    if len(name) > MAX_NAMESPACE_CHARS:
        raise LimitExceededError(
            f"namespace {root!r} is too long to keep a {kind!r} beside it "
            f"({len(name)} > {MAX_NAMESPACE_CHARS} characters)",
            limit="namespace",
            maximum=MAX_NAMESPACE_CHARS,
            actual=len(name),
        )
    return name


def missing_extra(framework: str, extra: str, exc: ImportError) -> ConfigurationError:
    """The error an adapter raises when its framework is not installed."""
    return ConfigurationError(
        f"{framework} is not installed: pip install 'sem-mem[{extra}]' ({exc})"
    )


def open_memory(
    memory: Any, storage_dir: str | None, database_url: str | None, **kwargs: Any
) -> tuple[SemanticMemory, bool]:
    """(the SemanticMemory to use, whether the caller opened it and must close it).

    ``memory`` may be a ``SemanticMemory`` or an ``AsyncSemanticMemory`` (its
    synchronous engine is used); without one, a memory is opened on ``storage_dir`` or
    ``database_url`` with ``kwargs`` (any ``SemanticMemory`` argument).
    """
    from ..async_core import AsyncSemanticMemory
    from ..core import SemanticMemory

    if memory is not None:
        if storage_dir is not None or database_url is not None or kwargs:
            raise ConfigurationError(
                "pass either memory= or the arguments to open one (storage_dir=, "
                "database_url=, ...), not both"
            )
        if isinstance(memory, AsyncSemanticMemory):
            return memory.sync, False
        if not isinstance(memory, SemanticMemory):
            raise ConfigurationError(
                f"memory must be a SemanticMemory or AsyncSemanticMemory, got "
                f"{type(memory).__name__}"
            )
        return memory, False
    return SemanticMemory(storage_dir, database_url=database_url, **kwargs), True


def sibling(memory: SemanticMemory, namespace: str) -> SemanticMemory:
    """An engine on another namespace of the same store (shares backend and embedder)."""
    from ..core import SemanticMemory

    return SemanticMemory(
        settings=memory.settings.with_overrides(namespace=namespace),
        backend=memory.backend,
        embedder=memory.embedder,
    )
