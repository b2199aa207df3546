"""The per-namespace HNSW indexes of the PostgreSQL store: building, dropping, sizing.

Functions of a connection (autocommit, outside any transaction for ``CONCURRENTLY``);
which namespaces have an index is recorded in ``vector_indexes``, and the backend keeps
its own copy of that list (see ``PostgresBackend._load_indexes``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

from .postgres_schema import (
    NAMESPACE_INDEX_PREFIX,
    build_memory_mb,
    column_type_statements,
    namespace_index_name,
    namespace_index_statement,
)

__all__ = [
    "build_index",
    "build_missing_indexes",
    "drop_indexes",
    "index_params",
    "set_space",
]

log = logging.getLogger("sem_mem.store")


def drop_indexes(conn: Any, namespace: str | None) -> None:
    """Drop the HNSW index of ``namespace`` (None: of every namespace)."""
    if namespace is None:
        names = [
            r[0]
            for r in conn.execute(
                "SELECT indexname FROM pg_indexes WHERE tablename = 'memories' "
                "AND indexname LIKE %s",
                (NAMESPACE_INDEX_PREFIX + "%",),
            ).fetchall()
        ]
        conn.execute("DELETE FROM vector_indexes")
    else:
        names = [namespace_index_name(namespace)]
        conn.execute("DELETE FROM vector_indexes WHERE namespace = %s", (namespace,))
    for name in names:
        conn.execute(f"DROP INDEX IF EXISTS {name}")


def set_space(conn: Any, model_id: str, dimensions: int, m: int, ef_construction: int) -> None:
    """Record the space (and the graph parameters) and type the vector column, dropping
    the vector indexes.

    The caller runs ``PostgresBackend._ensure_indexes`` after committing, which builds
    them anew.
    """
    drop_indexes(conn, None)
    for statement in column_type_statements(dimensions):
        conn.execute(statement)
    conn.execute(
        "INSERT INTO meta (key, value) VALUES ('embedding_model', %s), ('embedding_dim', %s), "
        "('hnsw_m', %s), ('hnsw_ef_construction', %s) "
        "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (model_id, str(dimensions), str(m), str(ef_construction)),
    )


def build_missing_indexes(
    conn: Any,
    dimensions: int,
    exact_search_max: int,
    namespaces: Sequence[str] | None,
    default_params: tuple[int, int],
) -> bool:
    """Build the HNSW index of every namespace (or of ``namespaces``) that has more than
    ``exact_search_max`` active memories and none recorded; True if any wanted one.

    ``default_params``: (M, ef_construction) if the store recorded none.
    """
    rows = conn.execute(
        "SELECT s.namespace, s.active FROM namespace_stats AS s "
        "LEFT JOIN vector_indexes AS v ON v.namespace = s.namespace "
        "WHERE s.active > %s AND v.namespace IS NULL "
        "AND (%s::text[] IS NULL OR s.namespace = ANY(%s::text[]))",
        (exact_search_max, namespaces, namespaces),
    ).fetchall()
    if rows:
        m, ef_construction = index_params(conn, *default_params)
        for namespace, active in rows:
            memory = build_memory_mb(int(active), dimensions, m)
            build_index(conn, namespace, m, ef_construction, memory)
    return bool(rows)


def build_index(conn: Any, namespace: str, m: int, ef_construction: int, memory_mb: int) -> None:
    name = namespace_index_name(namespace)
    key = int(name[len(NAMESPACE_INDEX_PREFIX) :][:15], 16)
    if not conn.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()[0]:
        return  # another process is building it
    try:
        valid = conn.execute(
            "SELECT i.indisvalid FROM pg_index AS i WHERE i.indexrelid = to_regclass(%s)",
            (name,),
        ).fetchone()
        if valid is not None and not valid[0]:
            conn.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")
        started = time.perf_counter()
        # the graph is built in memory while it fits (see build_memory_mb); pgvector
        # builds it in parallel with the server's max_parallel_maintenance_workers (2
        # by default; at 10^5 on 2 shared cores 0 workers took 70 s, 1 took 58 s, 2 took
        # 29-43 s: bench/results/backends_profile.md)
        # (never below what the server or its operator set: pg_settings is in kB)
        configured = conn.execute(
            "SELECT setting::bigint / 1024 FROM pg_settings WHERE name = 'maintenance_work_mem'"
        ).fetchone()
        memory_mb = max(int(memory_mb), int(configured[0]) if configured else 0)
        conn.execute(f"SET maintenance_work_mem = '{memory_mb}MB'")
        # pgvector says so (a NOTICE) when the graph outgrows that memory and the build
        # slows down several times: an operator must see it
        conn.add_notice_handler(log_build_notice)
        try:
            conn.execute(
                namespace_index_statement(namespace, m, ef_construction, concurrently=True)
            )
        finally:
            conn.remove_notice_handler(log_build_notice)
            conn.execute("RESET maintenance_work_mem")
        conn.execute(
            "INSERT INTO vector_indexes (namespace, index_name, built_at) VALUES (%s, %s, %s) "
            "ON CONFLICT (namespace) DO UPDATE SET index_name = excluded.index_name, "
            "built_at = excluded.built_at",
            (namespace, name, time.time()),
        )
        log.info(
            "built the HNSW index of namespace %r in %.1f s",
            namespace,
            time.perf_counter() - started,
        )
    finally:
        conn.execute("SELECT pg_advisory_unlock(%s)", (key,))


def index_params(conn: Any, default_m: int, default_ef_construction: int) -> tuple[int, int]:
    """(M, ef_construction) recorded when the space was bound (else the defaults)."""
    meta = dict(
        conn.execute(
            "SELECT key, value FROM meta WHERE key IN ('hnsw_m', 'hnsw_ef_construction')"
        ).fetchall()
    )
    return (
        int(meta.get("hnsw_m", default_m)),
        int(meta.get("hnsw_ef_construction", default_ef_construction)),
    )


def log_build_notice(diagnostic: Any) -> None:
    """Log what PostgreSQL says while it builds an index (pgvector: memory running out)."""
    log.warning(
        "PostgreSQL, building an HNSW index: %s %s %s",
        diagnostic.message_primary,
        diagnostic.message_detail or "",
        diagnostic.message_hint or "",
    )
