"""The reranker interface, how its scores reorder a recall, and where it is chosen.

A reranker reads the query and a candidate together (a cross-encoder), which a vector
or a BM25 score never does; on LoCoMo it lifts R@5 by 0.06-0.07 and multi-hop R@10 by
0.04-0.07 (``bench/results/recall_quality.md``). It costs ~0.25 s for 25 candidates
on two cores, so it is opt-in: ``recall(..., rerank=True)`` or ``SEMMEM_RERANKER=local``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np

from ..errors import ConfigurationError

__all__ = ["RERANK_DEPTH", "RERANK_PRIOR", "Reranker", "apply_reranker", "check_reranker"]

#: how many of the fused ranking's best candidates the reranker reads (chosen on the
#: LoCoMo tuning half: 20, 25, 30 and 40 gave R@10 within 0.004 of each other; each
#: candidate costs ~4 ms on two cores)
RERANK_DEPTH = 25
#: how much the fused rank still counts: a candidate's final score is its reranker
#: score in standard deviations above the candidates' mean, minus this times
#: ln(1 + its fused rank). 0.6-1.5 gave R@10 within 0.006 on the tuning half; without
#: the prior (the reranker alone) R@10 was 0.813-0.818, below the fused ranking's 0.821.
RERANK_PRIOR = 0.8


class Reranker(ABC):
    """Scores how well each document answers a query; higher is better.

    Subclasses set ``model_id`` and implement :meth:`score`. Scores only need to be
    comparable within one call.
    """

    model_id: str = ""

    @abstractmethod
    def score(self, query: str, documents: Sequence[str]) -> np.ndarray:
        """One float per document, in the documents' order."""


def apply_reranker(
    ranked: list[tuple[str, float, float]],
    scores: np.ndarray,
    prior: float = RERANK_PRIOR,
) -> list[tuple[str, float, float]]:
    """``ranked`` reordered: its first ``len(scores)`` entries by reranker score with a
    prior for their fused rank, the rest after them in their own order.

    The score of each entry becomes the logistic of that combined value, so scores
    still fall down the list; the entries past the reranked head keep their fused
    scores, scaled below the head's lowest.
    """
    n = len(scores)
    if n == 0:
        return list(ranked)
    values = np.asarray(scores, dtype=np.float64)
    spread = float(values.std())
    z = (values - values.mean()) / spread if spread > 0 else np.zeros(n)
    combined = z - prior * np.log1p(np.arange(n))
    order = np.argsort(-combined, kind="stable")
    head = [(ranked[i][0], float(1.0 / (1.0 + np.exp(-combined[i]))), ranked[i][2]) for i in order]
    tail = ranked[n:]
    if not tail:
        return head
    floor = head[-1][1]
    top = ranked[n - 1][1] if ranked[n - 1][1] > 0 else 1.0
    return head + [(i, floor * min(1.0, max(0.0, s / top)), sim) for i, s, sim in tail]


def check_reranker(value: object) -> None:
    """Raise a clear error for something that is not a reranker."""
    if not isinstance(value, Reranker):
        raise ConfigurationError(
            f"reranker must be a Reranker, 'local', a model folder or None, got {value!r}"
        )
