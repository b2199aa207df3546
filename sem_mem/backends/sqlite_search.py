"""Searching the embedded store: the memory ids of index labels (cached), and the vector
search among the memories a filter matches."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

import numpy as np

from .base import MemoryFilter
from .sqlite_rows import filter_sql
from .vector_index import HNSWIndex

__all__ = ["FILTER_EXACT_MAX", "LABEL_CACHE_MAX", "LabelIds", "filtered_vector_hits"]

LABEL_CACHE_MAX = 200_000  # ~60 MB of label <-> id entries
#: filtered vector search ranks up to this many matching memories exactly
# (reading 20,000 vectors back from hnswlib took ~30 ms; its filtered graph search
# keeps recall once a couple of thousand labels match)
FILTER_EXACT_MAX = 2_048


class LabelIds:
    """HNSW label -> memory id, and back, for the searches and ``get_many`` of one
    backend (shared by its reading threads)."""

    def __init__(self) -> None:
        self._label_ids: dict[int, str] = {}  # HNSW label -> memory id (see vector_search)
        self._id_labels: dict[str, int] = {}  # and back (see get_many)

    def label(self, memory_id: str) -> int | None:
        """The label of a memory a search returned, if known (other readers may add to
        the cache meanwhile: a single dict operation)."""
        return self._id_labels.get(memory_id)

    def ids_of(self, conn: sqlite3.Connection, labels: Sequence[int]) -> dict[int, str]:
        """Memory ids of index labels (active rows only).

        Labels are never reused and a memory's id never changes, so the mapping is
        cached; the indexes no longer return forgotten or superseded labels (they are
        removed when the change is replayed).
        """
        # Readers run this side by side: they only get, add to and clear the caches
        # (each a single dict operation) and answer from their own dict.
        cache = self._label_ids
        out: dict[int, str] = {}
        missing = []
        for label in labels:
            memory_id = cache.get(label)
            if memory_id is None:
                missing.append(label)
            else:
                out[label] = memory_id
        if missing:
            if len(cache) > LABEL_CACHE_MAX:
                cache.clear()
                self._id_labels.clear()
            found = conn.execute(
                f"SELECT label, id FROM memories WHERE status = 'active' AND label IN "
                f"({','.join('?' * len(missing))})",
                missing,
            ).fetchall()
            out.update(found)
            cache.update(found)
            self._id_labels.update((memory_id, label) for label, memory_id in found)
        return out


def filtered_vector_hits(
    conn: sqlite3.Connection,
    index: HNSWIndex,
    namespace: str,
    vector: np.ndarray,
    k: int,
    ef: int | None,
    filters: MemoryFilter,
) -> list[tuple[int, float]]:
    """The ``k`` nearest among the memories matching ``filters``.

    The matching labels come from SQLite (an index on namespace, status and
    timestamp serves time ranges). Up to ``FILTER_EXACT_MAX`` of them are ranked
    exactly from the vectors the HNSW index holds in RAM; more are searched in the
    graph restricted to them (hnswlib's filtered search), which stays accurate when
    a good share of the namespace matches.
    """
    where, args = filter_sql(filters)
    labels = [
        r[0]
        for r in conn.execute(
            "SELECT label FROM memories WHERE namespace = ? AND status = 'active' "
            f"AND seq <= ? AND {' AND '.join(where)}",
            (namespace, index.applied_seq, *args),
        )
    ]
    if not labels:
        return []
    if len(labels) <= FILTER_EXACT_MAX:
        return index.search_among(np.asarray(labels, dtype=np.int64), vector, k)
    return index.search(vector, k, ef=ef, allowed=frozenset(labels))
