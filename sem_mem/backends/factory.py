"""One place that turns settings into a storage backend (core, CLI and bench use it).

``database_url`` set: PostgreSQL + pgvector; otherwise the embedded SQLite + HNSW store
in ``storage_dir``. Both constructors take the same HNSW parameters from the settings.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..config import Settings
    from .base import StorageBackend

__all__ = ["open_backend"]


def open_backend(settings: Settings) -> StorageBackend:
    """The backend the settings name (imported only when chosen: psycopg is optional)."""
    from .vector_index import HNSWParams

    hnsw = HNSWParams(
        m=settings.hnsw_m, ef_construction=settings.hnsw_ef_construction, ef=settings.hnsw_ef
    )
    if settings.database_url:
        from .postgres import PostgresBackend

        return PostgresBackend(settings.database_url, hnsw=hnsw)
    from .sqlite import SQLiteBackend

    return SQLiteBackend(settings.storage_dir, hnsw=hnsw, durability=settings.durability)
