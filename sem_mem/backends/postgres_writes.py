"""Adding memories to the PostgreSQL store: one chunk inside the caller's write
transaction (dedupe, thread places, ``COPY`` of rows and history)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import StorageError, ValidationError
from .base import AddResult, NewMemory
from .postgres_pool import psycopg_module
from .rows import canonical_json, place_after_end
from .rows import now as utc_now

__all__ = ["check_storable", "insert_memories", "thread_ends"]

INSERT_COLUMNS = (
    "id",
    "namespace",
    "text",
    "metadata",
    "source",
    "status",
    "superseded_by",
    "content_hash",
    "embedding",
    "embedding_model",
    "created_at",
    "updated_at",
    "seq",
    "timestamp",
    "thread_id",
    "position",
    "speaker",
)
INSERT_TYPES = [
    "text",
    "text",
    "text",
    "jsonb",
    "text",
    "text",
    "text",
    "text",
    "vector",
    "text",
    "float8",
    "float8",
    "int8",
    "float8",
    "text",
    "int4",
    "text",
]


def check_storable(text: str, meta_json: str, field: str = "text") -> None:
    """PostgreSQL text and jsonb cannot hold NUL characters: refuse them clearly."""
    if "\x00" in text:
        raise ValidationError(f"{field} contains a NUL character, which PostgreSQL cannot store")
    if "\\u0000" in meta_json:
        raise ValidationError("metadata contains a NUL character, which PostgreSQL cannot store")


def insert_memories(
    conn: Any,
    namespace: str,
    items: Sequence[NewMemory],
    seq: int,
    model: str,
    dedupe: bool,
) -> list[AddResult]:
    """Add ``items`` to ``namespace`` in the caller's transaction, which holds the ``seq``
    row lock; ``model`` names the vectors' embedding model."""
    now = utc_now()
    # the seq row lock (_write) serialises every writer of the store: the ends read
    # here (a statement of its own, a fresh snapshot) stay the ends until commit
    items = place_after_end(items, lambda threads: thread_ends(conn, namespace, threads))
    metas = [canonical_json(item.metadata) for item in items]
    for item, meta_json in zip(items, metas, strict=True):
        check_storable(item.text, meta_json)
    existing: dict[int, str] = {}
    if dedupe:
        # One index probe per item (a lateral join, kept lateral by OFFSET 0) by the
        # item's hash, whatever the statistics say: the namespace is only named inside
        # the expression of memories_dedupe (``ns:hash`` with the same hash names one
        # namespace), so no (namespace, ...) index can be scanned for it; the planner
        # probes memories_dedupe or memories_hash (content_hash). A conversation turn
        # is the same memory only at the same place in its thread.
        hashes = [item.content_hash for item in items]
        existing = dict(
            conn.execute(
                "SELECT DISTINCT ON (q.i) q.i, m.id "
                "FROM unnest(%(h)s::text[], %(md)s::text[], %(t)s::text[], %(p)s::int[]) "
                "WITH ORDINALITY AS q(h, md, t, p, i) "
                "CROSS JOIN LATERAL (SELECT m.id, m.label FROM memories AS m "
                "WHERE m.namespace || ':' || m.content_hash = %(ns)s || ':' || q.h "
                "AND m.content_hash = q.h AND m.status = 'active' "
                "AND m.metadata = q.md::jsonb AND m.thread_id IS NOT DISTINCT FROM q.t "
                "AND m.position IS NOT DISTINCT FROM q.p OFFSET 0) AS m "
                "ORDER BY q.i, m.label",
                {
                    "h": hashes,
                    "md": metas,
                    "t": [item.thread_id for item in items],
                    "p": [item.position for item in items],
                    "ns": namespace,
                },
                prepare=False,
            ).fetchall()
        )
    out: list[AddResult] = []
    rows: list[tuple[Any, ...]] = []
    history: list[tuple[Any, ...]] = []
    # (hash, metadata, thread, position) -> id, within this chunk
    fresh: dict[tuple[str, str, str | None, int | None], str] = {}
    refreshed: list[str] = []
    hits: list[tuple[str, str, int]] = []  # imported hit counts
    for i, (item, meta_json) in enumerate(zip(items, metas, strict=True), start=1):
        if dedupe:
            key = (item.content_hash, meta_json, item.thread_id, item.position)
            same = existing.get(i) or fresh.get(key)
            if same is not None:
                refreshed.append(same)
                history.append((same, namespace, "refreshed", None, None, now, None))
                out.append(AddResult(same, False))
                continue
        memory_id = item.id or str(uuid.uuid4())
        created = item.created_at if item.created_at is not None else now
        updated = item.updated_at if item.updated_at is not None else created
        embedding = np.ascontiguousarray(item.embedding, dtype=np.float32)
        rows.append(
            (
                memory_id,
                namespace,
                item.text,
                item.metadata,
                item.source,
                item.status,
                item.superseded_by,
                item.content_hash,
                embedding,
                model,
                created,
                updated,
                seq,
                item.timestamp if item.timestamp is not None else created,
                item.thread_id,
                item.position,
                item.speaker,
            )
        )
        if item.hit_count:
            hits.append((memory_id, namespace, item.hit_count))
        fresh.setdefault((item.content_hash, meta_json, item.thread_id, item.position), memory_id)
        event = "imported" if item.id else "created"
        history.append((memory_id, namespace, event, item.text, item.metadata, now, item.source))
        out.append(AddResult(memory_id, True))
    if refreshed:
        conn.execute(
            "UPDATE memories SET updated_at = %s WHERE namespace = %s AND id = ANY(%s)",
            (now, namespace, refreshed),
        )
    if rows:
        with conn.cursor() as cur:
            try:
                with cur.copy(
                    f"COPY memories ({', '.join(INSERT_COLUMNS)}) FROM STDIN (FORMAT BINARY)"
                ) as copy:
                    copy.set_types(INSERT_TYPES)
                    for row in rows:
                        copy.write_row(row)
            except psycopg_module().Error as exc:
                raise StorageError(f"could not add memories: {exc}") from exc
    with conn.cursor() as cur:
        with cur.copy(
            "COPY history (memory_id, namespace, event, text, metadata, at, detail) "
            "FROM STDIN (FORMAT BINARY)"
        ) as copy:
            copy.set_types(["text", "text", "text", "text", "jsonb", "float8", "text"])
            for entry in history:
                copy.write_row(entry)
        if hits:
            cur.executemany(
                "INSERT INTO memory_hits (id, namespace, hit_count) VALUES (%s, %s, %s)", hits
            )
    return out


def thread_ends(conn: Any, namespace: str, threads: Sequence[str]) -> dict[str, int]:
    """The highest position of each thread that has one (any status): one index
    probe of ``memories_thread`` per thread (a call appends to one thread)."""
    ends: dict[str, int] = {}
    for thread_id in threads:
        row = conn.execute(
            "SELECT max(position) FROM memories WHERE namespace = %s AND thread_id = %s",
            (namespace, thread_id),
            prepare=True,
        ).fetchone()
        if row[0] is not None:
            ends[thread_id] = int(row[0])
    return ends
