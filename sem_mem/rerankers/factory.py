"""Choose the reranker in one place: ``SEMMEM_RERANKER`` / ``SemanticMemory(reranker=...)``."""

from __future__ import annotations

from .base import Reranker

__all__ = ["create_reranker"]


def create_reranker(name: str | None) -> Reranker | None:
    """The reranker ``SEMMEM_RERANKER`` (or ``SemanticMemory(reranker=...)``) names:
    none for ``""``/``"none"``, the bundled cross-encoder for ``"local"``, else the
    cross-encoder in that folder (``model.onnx`` and ``tokenizer.json``)."""
    text = (name or "").strip()
    if text.lower() in ("", "none", "off"):
        return None
    from .cross_encoder import CrossEncoderReranker

    if text.lower() == "local":
        return CrossEncoderReranker()
    return CrossEncoderReranker(text)
