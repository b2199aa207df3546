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
    "GRAPH_BASE_SIZE",
    "build_index",
    "build_missing_indexes",
    "build_params",
    "check_indexes",
    "drop_indexes",
    "index_options",
    "index_params",
    "set_space",
]

log = logging.getLogger("sem_mem.store")

#: a namespace's graph is built with the store's ef_construction up to this many active
#: memories and with twice that beyond: a larger graph built as carefully misses more of
#: the true nearest neighbours at any beam. At 10^6 (``bench/backends.py``'s corpus, beam
#: 633) pgvector found 0.872 of the exact ten with ef_construction 100; hnswlib on the
#: same vectors 0.906 with 100 and 0.976 with 200.
GRAPH_BASE_SIZE = 200_000
#: a rebuild is built beside the index it replaces under the same name plus this
REBUILD_SUFFIX = "_next"


def build_params(active: int, m: int, ef_construction: int) -> tuple[int, int]:
    """(M, ef_construction) for the graph of a namespace of ``active`` memories, from
    the store's own (``m``, ``ef_construction``)."""
    return (m, 2 * ef_construction) if active > GRAPH_BASE_SIZE else (m, ef_construction)


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
    for namespace, active in rows:
        build_index(conn, namespace, int(active), dimensions, default_params)
    return bool(rows)


def build_index(
    conn: Any,
    namespace: str,
    active: int,
    dimensions: int,
    default_params: tuple[int, int],
    *,
    replace: bool = False,
) -> bool:
    """Build ``namespace``'s HNSW index for its ``active`` memories (:func:`build_params`
    of the store's recorded parameters, else ``default_params``); False if another
    process holds the build.

    ``replace``: build a new graph beside the index (searches keep using it meanwhile),
    then drop the old one and give the new one its name.
    """
    name = namespace_index_name(namespace)
    target = name + REBUILD_SUFFIX if replace else name
    m, ef_construction = build_params(active, *index_params(conn, *default_params))
    memory_mb = build_memory_mb(active, dimensions, m)
    key = _build_lock(conn, name)
    if key is None:
        return False  # another process is building it
    try:
        valid = conn.execute(
            "SELECT i.indisvalid FROM pg_index AS i WHERE i.indexrelid = to_regclass(%s)",
            (target,),
        ).fetchone()
        # a build that failed halfway, or a rebuild a killed process left behind
        if valid is not None and (replace or not valid[0]):
            conn.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {target}")
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
                namespace_index_statement(
                    namespace, m, ef_construction, concurrently=True, name=target
                )
            )
        finally:
            conn.remove_notice_handler(log_build_notice)
            conn.execute("RESET maintenance_work_mem")
        if replace:
            conn.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")
            conn.execute(f"ALTER INDEX {target} RENAME TO {name}")
        conn.execute(
            "INSERT INTO vector_indexes (namespace, index_name, built_at) VALUES (%s, %s, %s) "
            "ON CONFLICT (namespace) DO UPDATE SET index_name = excluded.index_name, "
            "built_at = excluded.built_at",
            (namespace, name, time.time()),
        )
        log.info(
            "built the HNSW index of namespace %r (%d memories, m %d, ef_construction %d) "
            "in %.1f s",
            namespace,
            active,
            m,
            ef_construction,
            time.perf_counter() - started,
        )
    finally:
        conn.execute("SELECT pg_advisory_unlock(%s)", (key,))
    return True


def _build_lock(conn: Any, name: str) -> int | None:
    """Take the session advisory lock that guards building index ``name`` (and its
    rebuild); None if another process holds it."""
    key = int(name[len(NAMESPACE_INDEX_PREFIX) :][:15], 16)
    taken = conn.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()[0]
    return key if taken else None


def _options(reloptions: Sequence[str] | None) -> dict[str, int]:
    """``["m=16", "ef_construction=100"]`` as a dict of ints."""
    out = {}
    for option in reloptions or ():
        key, _, value = option.partition("=")
        if value.isdigit():
            out[key] = int(value)
    return out


def index_options(conn: Any, namespace: str) -> dict[str, int]:
    """The parameters ``namespace``'s HNSW index was built with (empty: it has none)."""
    row = conn.execute(
        "SELECT reloptions FROM pg_class WHERE oid = to_regclass(%s)",
        (namespace_index_name(namespace),),
    ).fetchone()
    return _options(row[0]) if row else {}


def check_indexes(
    conn: Any,
    dimensions: int,
    exact_search_max: int,
    default_params: tuple[int, int],
    *,
    repair: bool,
) -> list[dict[str, Any]]:
    """Problems with the namespaces' HNSW indexes (``sem-mem doctor``); with ``repair``
    each is fixed (built, rebuilt or dropped) while searches carry on.

    - a namespace above ``exact_search_max`` without an index (searched exactly: slower);
    - an index recorded but gone, or left invalid by a failed build;
    - an index built for a much smaller namespace (:func:`build_params`): it finds fewer
      of the true nearest neighbours than a graph built for the namespace's size;
    - a rebuild a killed process left beside the index it was to replace.
    """
    rows = conn.execute(
        "SELECT s.namespace, s.active, v.namespace IS NOT NULL, c.reloptions, i.indisvalid "
        "FROM namespace_stats AS s LEFT JOIN vector_indexes AS v ON v.namespace = s.namespace "
        "LEFT JOIN pg_class AS c ON c.oid = to_regclass(v.index_name) "
        "LEFT JOIN pg_index AS i ON i.indexrelid = c.oid "
        "WHERE s.active > %s OR v.namespace IS NOT NULL ORDER BY s.namespace",
        (exact_search_max,),
    ).fetchall()
    wanted_m, wanted_ef = index_params(conn, *default_params)
    problems: list[dict[str, Any]] = []
    for namespace, active, recorded, reloptions, valid in rows:
        active = int(active)
        replace = False
        if not recorded:
            detail = (
                f"namespace {namespace!r} ({active:,} memories) has no HNSW index: "
                "it is searched exactly, which is slower"
            )
        elif valid is None or not valid:
            state = "is missing" if valid is None else "is invalid (a build failed)"
            detail = f"the HNSW index of namespace {namespace!r} {state}"
        else:
            built = _options(reloptions).get("ef_construction", wanted_ef)
            want = build_params(active, wanted_m, wanted_ef)[1]
            if built >= want:
                continue
            detail = (
                f"the HNSW index of namespace {namespace!r} was built with ef_construction "
                f"{built}; at {active:,} memories it should be {want} (more of the true "
                "nearest neighbours found at the same search cost)"
            )
            replace = True
        repaired = False
        if repair and not replace:  # built anew, or (a small namespace) searched exactly
            conn.execute("DELETE FROM vector_indexes WHERE namespace = %s", (namespace,))
            if active <= exact_search_max:
                name = namespace_index_name(namespace)
                conn.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")
                repaired = True
        if repair and not repaired:
            repaired = build_index(
                conn, namespace, active, dimensions, default_params, replace=replace
            )
        problems.append({"check": "vector index", "detail": detail, "repaired": repaired})
    leftovers = conn.execute(
        "SELECT indexname FROM pg_indexes WHERE tablename = 'memories' "
        "AND starts_with(indexname, %s) AND right(indexname, %s) = %s",
        (NAMESPACE_INDEX_PREFIX, len(REBUILD_SUFFIX), REBUILD_SUFFIX),
    ).fetchall()
    for (leftover,) in leftovers:
        key = _build_lock(conn, leftover[: -len(REBUILD_SUFFIX)])
        if key is None:
            continue  # a rebuild in progress, not a leftover
        try:
            if repair:
                conn.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {leftover}")
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (key,))
        problems.append(
            {
                "check": "vector index",
                "detail": f"{leftover} is an unfinished rebuild (a process stopped during it)",
                "repaired": repair,
            }
        )
    return problems


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
