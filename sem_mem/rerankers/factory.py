"""Choose the reranker in one place: ``SEMMEM_RERANKER`` / ``SemanticMemory(reranker=...)``."""

from __future__ import annotations

import threading
from pathlib import Path

from .base import Reranker

__all__ = ["create_reranker"]

# One instance per model folder in a process: the server opens an engine per namespace,
# and each cross-encoder session holds ~45 MB. (A folder's files are read once, on first
# use: replacing the model needs a restart.)
_SHARED: dict[str, Reranker] = {}
_SHARED_LOCK = threading.Lock()


def create_reranker(name: str | None) -> Reranker | None:
    """The reranker ``SEMMEM_RERANKER`` (or ``SemanticMemory(reranker=...)``) names:
    none for ``""``/``"none"``/``"off"``, the bundled cross-encoder for ``"local"``,
    else the cross-encoder in that folder (``model.onnx`` and ``tokenizer.json``).
    The same name gives the same instance (the model is loaded once per process)."""
    text = (name or "").strip()
    if text.lower() in ("", "none", "off"):
        return None
    from .cross_encoder import CrossEncoderReranker

    key = "local" if text.lower() == "local" else str(Path(text).expanduser().resolve())
    with _SHARED_LOCK:
        found = _SHARED.get(key)
        if found is None:
            found = CrossEncoderReranker(None if key == "local" else key)
            _SHARED[key] = found
        return found
