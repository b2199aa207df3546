"""Reading the embedded store: each reading thread's own connection, and the read
statements that are not index searches, as functions of a read connection (a reader's,
or the writer's inside its transaction): rows by id, lists, thread neighbourhoods,
history, pages, and the embedding cache."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import StorageError
from ..types import HistoryEvent, Memory
from .base import ListQuery, StoredMemory, ThreadPlace
from .rows import history_from_row
from .sqlite_rows import (
    EMBEDDING_AT,
    MEMORY_COLUMNS,
    decode_vector,
    row_to_memory,
    scoped_hash,
)
from .sqlite_search import LabelIds

__all__ = [
    "ReadConnections",
    "cached_embeddings",
    "get_many",
    "history",
    "list_memories",
    "memories_page",
    "most_hit",
    "thread_places",
]


class ReadConnections:
    """Each reading thread's own read-only connection to the database (WAL readers, so
    reads run side by side), opened on first use; those of threads that ended are
    closed when another opens, the rest by :meth:`close`."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._local = threading.local()
        self._readers: dict[threading.Thread, sqlite3.Connection] = {}
        self._guard = threading.Lock()

    def connection(self) -> sqlite3.Connection:
        """This thread's read-only connection, opened on first use."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None:
            return conn
        try:
            # check_same_thread=False only so that close() may close it from its thread
            conn = sqlite3.connect(
                self._path, check_same_thread=False, isolation_level=None, timeout=30.0
            )
            conn.execute("PRAGMA query_only=ON")
            conn.execute("PRAGMA mmap_size=2147418112")  # pages shared with the other readers
        except sqlite3.DatabaseError as exc:
            raise StorageError(f"cannot open the store at {self._path}: {exc}") from exc
        with self._guard:
            for thread in [t for t in self._readers if not t.is_alive()]:
                self._readers.pop(thread).close()  # threads that ended
            self._readers[threading.current_thread()] = conn
        self._local.conn = conn
        return conn

    def close(self) -> None:
        with self._guard:
            for conn in self._readers.values():
                conn.close()
            self._readers.clear()


def get_many(
    conn: sqlite3.Connection, namespace: str, memory_ids: Sequence[str], labels: LabelIds
) -> dict[str, StoredMemory]:
    out: dict[str, StoredMemory] = {}
    # Ids that vector search just returned have a known label, the rowid: a rowid
    # lookup is ~2x cheaper than one through the id index (it matters on the
    # recall path). A label whose row is gone simply returns nothing, and those
    # ids are looked up by id below.

    def fetch(column: str, keys: Sequence[Any]) -> None:
        for start in range(0, len(keys), 500):
            part = keys[start : start + 500]
            for row in conn.execute(
                f"SELECT {MEMORY_COLUMNS}, embedding FROM memories "
                f"WHERE {column} IN ({','.join('?' * len(part))}) AND +namespace = ?",
                (*part, namespace),
            ):
                out[row[0]] = StoredMemory(row_to_memory(row), decode_vector(row[EMBEDDING_AT]))

    fetch("label", [label for i in memory_ids if (label := labels.label(i)) is not None])
    fetch("id", [i for i in memory_ids if i not in out])
    return out


def thread_places(
    conn: sqlite3.Connection,
    namespace: str,
    ids: Sequence[str],
    window: int,
    where: list[str],
    args: list[Any],
) -> dict[str, ThreadPlace]:
    """The places of ``ids``, then their threads' neighbours within ``window`` positions
    that match the filter (``where``/``args`` of :func:`filter_sql` with prefix ``m.``)."""
    extra = "".join(f" AND {clause}" for clause in where)
    out: dict[str, ThreadPlace] = {}
    spans: list[tuple[str, int, int]] = []
    for start in range(0, len(ids), 500):
        part = ids[start : start + 500]
        for memory_id, thread_id, position, ts, speaker in conn.execute(
            "SELECT id, thread_id, position, timestamp, speaker FROM memories "
            f"WHERE id IN ({','.join('?' * len(part))}) AND +namespace = ?",
            (*part, namespace),
        ):
            out[memory_id] = ThreadPlace(thread_id, position, ts, speaker)
            if thread_id is not None:
                spans.append((thread_id, position - window, position + window))
    # every neighbourhood in one statement (one index range scan per seed)
    for start in range(0, len(spans) if window > 0 else 0, 300):
        part_spans = spans[start : start + 300]
        values = ",".join("(?, ?, ?)" for _ in part_spans)
        for memory_id, thread_id, pos, ts, speaker in conn.execute(
            f"WITH s(t, lo, hi) AS (VALUES {values}) "
            "SELECT DISTINCT m.id, m.thread_id, m.position, m.timestamp, m.speaker "
            "FROM s JOIN memories m ON m.namespace = ? AND m.thread_id = s.t "
            "AND m.position BETWEEN s.lo AND s.hi "
            f"WHERE m.status = 'active'{extra}",
            (*(v for span in part_spans for v in span), namespace, *args),
        ):
            if memory_id not in out:
                out[memory_id] = ThreadPlace(thread_id, pos, ts, speaker)
    return out


def list_memories(
    conn: sqlite3.Connection, namespace: str, query: ListQuery, where: list[str], args: list[Any]
) -> list[Memory]:
    """A page of ``list`` (``where``/``args``: of ``query.filter``, by :func:`filter_sql`)."""
    where.insert(0, "namespace = ?")
    args.insert(0, namespace)
    if not query.include_superseded:
        where.append("status = 'active'")
    order = "DESC" if query.newest_first else "ASC"
    # a thread's turns come in their order; other memories by when they happened
    by = "position" if query.filter.thread_id is not None else "timestamp"
    sql = (
        f"SELECT {MEMORY_COLUMNS} FROM memories WHERE {' AND '.join(where)} "
        f"ORDER BY {by} {order}, label {order} LIMIT ? OFFSET ?"
    )
    rows = conn.execute(sql, (*args, query.limit, query.offset)).fetchall()
    return [row_to_memory(row) for row in rows]


def history(conn: sqlite3.Connection, namespace: str, memory_id: str) -> list[HistoryEvent]:
    """A memory's history, oldest first (empty: no such memory)."""
    rows = conn.execute(
        "SELECT memory_id, event, text, metadata, at, detail FROM history "
        "WHERE memory_id = ? AND namespace = ? ORDER BY event_id",
        (memory_id, namespace),
    ).fetchall()
    return [history_from_row(r) for r in rows]


def most_hit(conn: sqlite3.Connection, namespace: str, n: int) -> list[StoredMemory]:
    rows = conn.execute(
        f"SELECT {MEMORY_COLUMNS}, embedding FROM memories "
        "WHERE namespace = ? AND hit_count > 0 AND status = 'active' "
        "ORDER BY hit_count DESC LIMIT ?",
        (namespace, n),
    ).fetchall()
    return [StoredMemory(row_to_memory(r), decode_vector(r[EMBEDDING_AT])) for r in rows]


def memories_page(
    conn: sqlite3.Connection, namespace: str, after: int, batch: int, include_superseded: bool
) -> list[Any]:
    """The next ``batch`` rows of the namespace after label ``after`` (the label after
    the embedding)."""
    status = "" if include_superseded else "AND status = 'active'"
    rows: list[Any] = conn.execute(
        f"SELECT {MEMORY_COLUMNS}, embedding, label FROM memories "
        f"WHERE label > ? AND +namespace = ? {status} ORDER BY label LIMIT ?",
        (after, namespace, batch),
    ).fetchall()
    return rows


def cached_embeddings(
    conn: sqlite3.Connection, namespace: str, model_id: str, text_hashes: Sequence[str]
) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for start in range(0, len(text_hashes), 500):
        part = list(text_hashes[start : start + 500])
        scoped = {scoped_hash(namespace, h): h for h in part}
        marks = ",".join("?" * len(part))
        for key, blob in conn.execute(
            f"SELECT text_hash, vector FROM embedding_cache WHERE model = ? "
            f"AND text_hash IN ({marks})",
            (model_id, *scoped),
        ):
            out[scoped[key]] = decode_vector(blob)
        missing = [h for h in part if h not in out]
        if missing:
            for h, blob in conn.execute(
                f"SELECT content_hash, embedding FROM memories WHERE embedding_model = ? "
                f"AND +namespace = ? AND content_hash IN ({','.join('?' * len(missing))})",
                (model_id, namespace, *missing),
            ):
                out.setdefault(h, decode_vector(blob))
    return out
