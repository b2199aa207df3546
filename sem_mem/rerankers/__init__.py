"""Rerankers: a second, slower look at recall's best candidates (``recall(rerank=True)``).

:class:`Reranker` is the interface, :class:`CrossEncoderReranker` the local one (a
cross-encoder run with onnxruntime) and :func:`create_reranker` chooses between them
from ``SEMMEM_RERANKER`` in one place.
"""

from .base import RERANK_DEPTH, RERANK_PRIOR, Reranker, apply_reranker
from .factory import create_reranker

__all__ = ["RERANK_DEPTH", "RERANK_PRIOR", "Reranker", "apply_reranker", "create_reranker"]
