"""The read statements of the PostgreSQL store that are not searches, as functions of a
pooled connection: rows by id, lists, thread neighbourhoods, history, pages for
``copy_store``, and the embedding cache (read and upserted outside the ``seq`` lock)."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..types import HistoryEvent, Memory
from .base import ListQuery, StoredMemory, ThreadPlace
from .postgres_schema import namespace_index_name
from .postgres_sql import MEMORIES, MEMORY_COLUMNS, as_vector, stored
from .rows import canonical_json, history_from_row, memory_from_row, scoped_hash

__all__ = [
    "active_count",
    "add_history",
    "cache_embeddings",
    "cached_embeddings",
    "get_many",
    "history",
    "history_page",
    "list_memories",
    "memories_page",
    "most_hit",
    "stats_counts",
    "thread_places",
]


def active_count(conn: Any, namespace: str) -> int:
    row = conn.execute(
        "SELECT active FROM namespace_stats WHERE namespace = %s", (namespace,)
    ).fetchone()
    return int(row[0]) if row else 0


def get_many(conn: Any, namespace: str, memory_ids: Sequence[str]) -> dict[str, StoredMemory]:
    with conn.cursor(binary=True) as cur:
        cur.execute(
            f"SELECT {MEMORY_COLUMNS}, m.embedding FROM {MEMORIES} "
            "WHERE m.namespace = %s AND m.id = ANY(%s)",
            (namespace, list(memory_ids)),
        )
        return {row[0]: stored(row) for row in cur.fetchall()}


def thread_places(
    conn: Any, namespace: str, ids: Sequence[str], window: int, where: str, args: dict[str, Any]
) -> dict[str, ThreadPlace]:
    """One statement: the places of ``ids``, then their threads' neighbours (index
    ``memories_thread``) within ``window`` positions that match the filter (``where``,
    ``args``: of :func:`~.postgres_sql.filter_sql` with prefix ``n.``)."""
    rows = conn.execute(
        "WITH seeds AS (SELECT m.id, m.thread_id, m.position, m.timestamp, m.speaker "
        "FROM memories AS m WHERE m.id = ANY(%(ids)s) AND m.namespace = %(ns)s) "
        "SELECT id, thread_id, position, timestamp, speaker, 0 FROM seeds UNION ALL "
        "SELECT n.id, n.thread_id, n.position, n.timestamp, n.speaker, 1 FROM "
        "(SELECT DISTINCT thread_id, position FROM seeds "
        "WHERE thread_id IS NOT NULL) AS s "
        "JOIN memories AS n ON n.namespace = %(ns)s AND n.thread_id = s.thread_id "
        "AND n.position BETWEEN s.position - %(w)s AND s.position + %(w)s "
        f"AND n.status = 'active'{where} WHERE %(w)s > 0 ORDER BY 6",
        {"ids": list(ids), "ns": namespace, "w": int(window), **args},
    ).fetchall()
    out: dict[str, ThreadPlace] = {}
    for memory_id, thread_id, position, ts, speaker, _ in rows:
        if memory_id not in out:
            place = None if position is None else int(position)
            out[memory_id] = ThreadPlace(thread_id, place, ts, speaker)
    return out


def list_memories(
    conn: Any, namespace: str, query: ListQuery, where: str, args: dict[str, Any]
) -> list[Memory]:
    """A page of ``list`` (``where``, ``args``: of ``query.filter``, by ``filter_sql``)."""
    status = "" if query.include_superseded else " AND m.status = 'active'"
    order = "DESC" if query.newest_first else "ASC"
    # a thread's turns come in their order; other memories by when they happened
    by = "m.position" if query.filter.thread_id is not None else "m.timestamp"
    sql = (
        f"SELECT {MEMORY_COLUMNS} FROM {MEMORIES} WHERE m.namespace = %(ns)s"
        f"{status}{where} ORDER BY {by} {order}, m.label {order} "
        "LIMIT %(limit)s OFFSET %(offset)s"
    )
    rows = conn.execute(
        sql, {"ns": namespace, "limit": query.limit, "offset": query.offset, **args}
    ).fetchall()
    return [memory_from_row(row) for row in rows]


def history(conn: Any, namespace: str, memory_id: str) -> list[HistoryEvent]:
    """A memory's history, oldest first (empty: no such memory)."""
    rows = conn.execute(
        "SELECT memory_id, event, text, metadata, at, detail FROM history "
        "WHERE memory_id = %s AND namespace = %s ORDER BY event_id",
        (memory_id, namespace),
    ).fetchall()
    return [history_from_row(r) for r in rows]


def history_page(conn: Any, namespace: str, after: int, batch: int) -> list[Any]:
    """The next ``batch`` history rows of the namespace after event ``after`` (the
    event id is the last column)."""
    rows: list[Any] = conn.execute(
        "SELECT memory_id, event, text, metadata, at, detail, event_id FROM history "
        "WHERE namespace = %s AND event_id > %s ORDER BY event_id LIMIT %s",
        (namespace, after, batch),
    ).fetchall()
    return rows


def add_history(conn: Any, namespace: str, events: Sequence[HistoryEvent]) -> None:
    with conn.transaction(), conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO history (memory_id, namespace, event, text, metadata, at, detail) "
            "VALUES (%s, %s, %s, %s, %s::jsonb, %s, %s)",
            [
                (
                    e.memory_id,
                    namespace,
                    e.event,
                    e.text,
                    canonical_json(e.metadata) if e.metadata is not None else None,
                    round(e.at.timestamp(), 6),
                    e.detail,
                )
                for e in events
            ],
        )


def most_hit(conn: Any, namespace: str, n: int) -> list[StoredMemory]:
    with conn.cursor(binary=True) as cur:
        cur.execute(
            f"SELECT {MEMORY_COLUMNS}, m.embedding "
            "FROM memory_hits AS h JOIN memories AS m "
            "ON m.namespace = h.namespace AND m.id = h.id "
            "WHERE h.namespace = %s AND h.hit_count > 0 AND m.status = 'active' "
            "ORDER BY h.hit_count DESC, m.label LIMIT %s",
            (namespace, n),
        )
        return [stored(r) for r in cur.fetchall()]


def memories_page(
    conn: Any, namespace: str, after: int, batch: int, include_superseded: bool
) -> list[Any]:
    """The next ``batch`` rows of the namespace after label ``after`` (rows for
    :func:`~.postgres_sql.stored`, the label after the embedding)."""
    status = "" if include_superseded else "AND m.status = 'active'"
    with conn.cursor(binary=True) as cur:
        cur.execute(
            f"SELECT {MEMORY_COLUMNS}, m.embedding, m.label FROM {MEMORIES} "
            f"WHERE m.namespace = %s AND m.label > %s {status} ORDER BY m.label LIMIT %s",
            (namespace, after, batch),
        )
        rows: list[Any] = cur.fetchall()
    return rows


def cached_embeddings(
    conn: Any, namespace: str, model_id: str, text_hashes: Sequence[str]
) -> dict[str, np.ndarray]:
    wanted = list(dict.fromkeys(text_hashes))
    scoped = {scoped_hash(namespace, h): h for h in wanted}
    out: dict[str, np.ndarray] = {}
    with conn.cursor(binary=True) as cur:
        cur.execute(
            "SELECT text_hash, vector FROM embedding_cache "
            "WHERE model = %s AND text_hash = ANY(%s)",
            (model_id, list(scoped)),
        )
        for key, vec in cur.fetchall():
            out[scoped[key]] = as_vector(vec)
        missing = [h for h in wanted if h not in out]
        if missing:
            cur.execute(
                "SELECT DISTINCT ON (content_hash) content_hash, embedding FROM memories "
                "WHERE embedding_model = %s AND namespace = %s AND content_hash = ANY(%s)",
                (model_id, namespace, missing),
            )
            for h, vec in cur.fetchall():
                out.setdefault(h, as_vector(vec))
    return out


def cache_embeddings(
    conn: Any, namespace: str, model_id: str, items: Mapping[str, np.ndarray]
) -> None:
    now = time.time()
    keys = sorted(items)  # one lock order for concurrent upserts
    with conn.transaction(), conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO embedding_cache (model, text_hash, vector, used_at) "
            "VALUES (%s, %s, %s, %s) ON CONFLICT (model, text_hash) "
            "DO UPDATE SET vector = excluded.vector, used_at = excluded.used_at",
            [
                (
                    model_id,
                    scoped_hash(namespace, h),
                    np.ascontiguousarray(items[h], dtype=np.float32),
                    now,
                )
                for h in keys
            ],
        )


def stats_counts(conn: Any, namespace: str) -> dict[str, Any]:
    """What ``stats`` reports of a namespace and the server: ``by_source`` (active
    memories), ``superseded``, ``index_bytes`` (its HNSW index, 0 if none), ``db_bytes``,
    ``seq`` and ``active``."""
    by_source = dict(
        conn.execute(
            "SELECT source, count(*) FROM memories WHERE namespace = %s "
            "AND status = 'active' GROUP BY source",
            (namespace,),
        ).fetchall()
    )
    superseded = conn.execute(
        "SELECT count(*) FROM memories WHERE namespace = %s AND status = 'superseded'",
        (namespace,),
    ).fetchone()[0]
    index_bytes, db_bytes, seq, active = conn.execute(
        "SELECT coalesce(pg_relation_size(to_regclass(%s)), 0), "
        "pg_database_size(current_database()), "
        "(SELECT seq FROM store_seq), "
        "(SELECT coalesce(max(active), 0) FROM namespace_stats WHERE namespace = %s)",
        (namespace_index_name(namespace), namespace),
    ).fetchone()
    return {
        "by_source": by_source,
        "superseded": superseded,
        "index_bytes": int(index_bytes),
        "db_bytes": int(db_bytes),
        "seq": int(seq),
        "active": int(active),
    }
