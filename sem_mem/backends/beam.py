"""How wide an HNSW search's beam (``ef``) must be: one rule for both graph engines
(hnswlib on the embedded backend, pgvector on PostgreSQL).

A graph search that keeps ``ef`` candidates finds the true nearest neighbours less often
the larger the graph, so a fixed beam that is ample at 10^4 misses most of them at 10^6.
Measured on ``bench/backends.py``'s vectors (real MiniLM turn vectors mixed, the hard
case: neighbourhoods are crowded), recall@10 against an exact search, M 16:

| beam | hnswlib 10^5 (ef_construction 100) | hnswlib 10^6 (100) | pgvector 10^6 (200) |
|---|---|---|---|
| 64 | 0.929 (0.09 ms) | 0.631 (0.12 ms) | |
| 200 | 0.98-0.99 (0.25 ms) | 0.78 (0.27 ms) | |
| 633 | 1.000 | 0.918 (0.66 ms) | 0.945 (6.7 ms) |
| 1,000 | 1.000 | 0.953 (1.00 ms) | 0.973 (10.1 ms) |

(pgvector at 10^5 with ef_construction 100: 0.975-0.983 at 200.) Hence 20 per result
wanted up to 10^5 memories, growing with the size beyond to the power 0.7 (1,003 for
ten results at 10^6, pgvector's limit of 1,000 there); the square root (633) left both
engines below 0.95. Filtered hnswlib searches do not use it (see ``HNSWIndex.search``).
"""

from __future__ import annotations

import math

__all__ = ["EF_BASE_SIZE", "EF_GROWTH", "EF_PER_RESULT", "search_beam"]

#: the beam is at least this many times the results a search must return well ...
EF_PER_RESULT = 20
#: ... in a namespace of up to this many memories; beyond, it grows with the size ...
EF_BASE_SIZE = 100_000
#: ... to this power
EF_GROWTH = 0.7


def search_beam(size: int, k: int, ef: int, wanted: int, limit: int | None = None) -> int:
    """The beam for ``wanted`` good results among ``k`` from a graph of ``size``
    memories: at least ``ef`` (the store's setting) and ``k``, at most ``limit``."""
    width = max(ef, k, EF_PER_RESULT * wanted)
    if size > EF_BASE_SIZE:
        grown = EF_PER_RESULT * wanted * (size / EF_BASE_SIZE) ** EF_GROWTH
        width = max(width, math.ceil(grown))
    return width if limit is None else min(width, limit)
