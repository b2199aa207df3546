"""The write statements of the PostgreSQL store, each run inside the caller's write
transaction (which holds the ``seq`` row lock and numbers the change ``seq``): adding a
chunk (dedupe, thread places, ``COPY`` of rows and history), updating, forgetting,
superseding, and staging the vectors of a re-embed."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from ..errors import NotFoundError, StorageError, ValidationError
from .base import AddResult, NewMemory
from .postgres_pool import psycopg_module
from .rows import canonical_json, place_after_end
from .rows import now as utc_now

__all__ = [
    "add_hits",
    "check_storable",
    "delete_memories",
    "insert_memories",
    "stage_embeddings",
    "supersede_memory",
    "thread_ends",
    "update_memory",
]

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


def update_memory(
    conn: Any,
    seq: int,
    namespace: str,
    memory_id: str,
    *,
    text: str | None,
    metadata: dict[str, Any] | None,
    embedding: np.ndarray | None,
    content_hash: str | None,
    event: str,
) -> None:
    """Change a memory's text (with its embedding and hash) and/or metadata."""
    row = conn.execute(
        "SELECT text, metadata FROM memories WHERE id = %s AND namespace = %s FOR UPDATE",
        (memory_id, namespace),
    ).fetchone()
    if row is None:
        raise NotFoundError(f"no memory {memory_id!r} in namespace {namespace!r}")
    now = utc_now()
    meta_json = canonical_json(metadata if metadata is not None else row[1])
    check_storable(text or "", meta_json)
    sets: list[str] = ["updated_at = %s", "seq = %s"]
    args: list[Any] = [now, seq]
    if text is not None:
        if embedding is None or content_hash is None:
            raise StorageError("a new text needs its embedding and content hash")
        sets += ["text = %s", "embedding = %s", "content_hash = %s"]
        args += [text, np.ascontiguousarray(embedding, dtype=np.float32), content_hash]
    if metadata is not None:
        sets.append("metadata = %s::jsonb")
        args.append(meta_json)
    conn.execute(
        f"UPDATE memories SET {', '.join(sets)} WHERE namespace = %s AND id = %s",
        (*args, namespace, memory_id),
    )
    conn.execute(
        "INSERT INTO history (memory_id, namespace, event, text, metadata, at) "
        "VALUES (%s, %s, %s, %s, %s::jsonb, %s)",
        (memory_id, namespace, event, text if text is not None else row[0], meta_json, now),
    )


def delete_memories(conn: Any, seq: int, namespace: str, memory_ids: Sequence[str]) -> int:
    """Forget memories (a tombstone each, history erased but for the event); how many."""
    now = utc_now()
    found = [
        r[0]
        for r in conn.execute(
            "DELETE FROM memories WHERE namespace = %s AND id = ANY(%s) RETURNING id",
            (namespace, list(memory_ids)),
        ).fetchall()
    ]
    if found:
        conn.execute(
            "INSERT INTO tombstones (id, namespace, deleted_at, seq) "
            "SELECT i, %s, %s, %s FROM unnest(%s::text[]) AS i "
            "ON CONFLICT (namespace, id) DO UPDATE SET "
            "deleted_at = excluded.deleted_at, seq = excluded.seq",
            (namespace, now, seq, found),
        )
        # Forgetting erases the text everywhere, history included.
        conn.execute(
            "DELETE FROM history WHERE namespace = %s AND memory_id = ANY(%s)",
            (namespace, found),
        )
        conn.execute(
            "INSERT INTO history (memory_id, namespace, event, at) "
            "SELECT i, %s, 'forgotten', %s FROM unnest(%s::text[]) AS i",
            (namespace, now, found),
        )
    return len(found)


def supersede_memory(
    conn: Any, seq: int, namespace: str, old_id: str, new_id: str, reason: str
) -> None:
    now = utc_now()
    cur = conn.execute(
        "UPDATE memories SET status = 'superseded', superseded_by = %s, updated_at = %s, "
        "seq = %s WHERE id = %s AND namespace = %s AND status = 'active'",
        (new_id, now, seq, old_id, namespace),
    )
    if cur.rowcount == 0:
        raise NotFoundError(f"no active memory {old_id!r} in namespace {namespace!r}")
    conn.execute(
        "INSERT INTO history (memory_id, namespace, event, at, detail) "
        "VALUES (%s, %s, 'superseded', %s, %s)",
        (old_id, namespace, now, json.dumps({"by": new_id, "reason": reason})),
    )


def stage_embeddings(
    conn: Any,
    embed: Callable[[list[str], list[str | None]], np.ndarray],
    batch: int,
    progress: Callable[[int, int], None] | None,
) -> int:
    """Embed every memory anew into the temporary table ``reembed_staging`` (dropped at
    commit), ``batch`` memories at a time in label order; how many."""
    conn.execute(
        "CREATE TEMPORARY TABLE reembed_staging (label bigint PRIMARY KEY, "
        "vector vector NOT NULL) ON COMMIT DROP"
    )
    total = conn.execute("SELECT count(*) FROM memories").fetchone()[0]
    done, last = 0, 0
    while True:
        rows = conn.execute(
            "SELECT label, text, speaker FROM memories WHERE label > %s ORDER BY label LIMIT %s",
            (last, batch),
        ).fetchall()
        if not rows:
            break
        vectors = embed([r[1] for r in rows], [r[2] for r in rows])
        with (
            conn.cursor() as cur,
            cur.copy("COPY reembed_staging (label, vector) FROM STDIN (FORMAT BINARY)") as copy,
        ):
            copy.set_types(["int8", "vector"])
            for r, v in zip(rows, vectors, strict=True):
                copy.write_row((r[0], np.ascontiguousarray(v, dtype=np.float32)))
        done += len(rows)
        last = rows[-1][0]
        if progress is not None:
            progress(done, total)
    return done


def add_hits(conn: Any, namespace: str, hits: Mapping[str, int], at: float) -> None:
    """Add hit counts (in ``memory_hits``: not a content change, ``seq`` stays).

    A share lock on the ``seq`` row orders this after any running write (writers lock
    that row first too), and counters are upserted in id order, so hit recorders and
    writers in other processes can never deadlock.
    """
    ids = sorted(hits)
    with conn.transaction():
        conn.execute("SELECT 1 FROM store_seq FOR SHARE")
        conn.execute(
            "INSERT INTO memory_hits AS t (id, namespace, hit_count, last_accessed) "
            "SELECT m.id, m.namespace, h.n, %s "
            "FROM unnest(%s::text[], %s::bigint[]) AS h(id, n) "
            "JOIN memories AS m ON m.id = h.id AND m.namespace = %s ORDER BY m.id "
            "ON CONFLICT (namespace, id) DO UPDATE SET "
            "hit_count = t.hit_count + excluded.hit_count, "
            "last_accessed = excluded.last_accessed",
            (at, ids, [int(hits[i]) for i in ids], namespace),
        )
