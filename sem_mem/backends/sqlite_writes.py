"""The write statements of the embedded store, each run on the writer connection inside
its transaction (``BEGIN IMMEDIATE`` under both locks; ``seq`` numbers the change): adding
a chunk (dedupe, thread places, fresh ids), updating, forgetting, superseding, and
staging the vectors of a re-embed."""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..errors import NotFoundError, StorageError
from .base import AddResult, NewMemory
from .rows import place_after_end
from .sqlite_rows import canonical_json, encode_vector
from .sqlite_rows import now as utc_now

__all__ = [
    "delete_memories",
    "insert_memories",
    "stage_embeddings",
    "supersede_memory",
    "taken_ids",
    "thread_ends",
    "update_memory",
]


def insert_memories(
    conn: sqlite3.Connection,
    namespace: str,
    items: Sequence[NewMemory],
    seq: int,
    model: str,
    dedupe: bool,
) -> list[AddResult]:
    """Add ``items`` to ``namespace`` in the writer's transaction (``seq`` numbers the
    change); ``model`` names the vectors' embedding model."""
    now = utc_now()
    # inside BEGIN IMMEDIATE: no other process writes until this one commits
    items = place_after_end(items, lambda threads: thread_ends(conn, namespace, threads))
    out: list[AddResult] = []
    rows: list[tuple[Any, ...]] = []
    history: list[tuple[Any, ...]] = []
    taken = taken_ids(conn, namespace, [item.id for item in items if item.id])
    for item in items:
        meta_json = canonical_json(item.metadata)
        if dedupe:
            # the same text and metadata (and, for a conversation turn, the same place
            # in the same thread) is the same memory
            existing = conn.execute(
                "SELECT id FROM memories WHERE content_hash = ? AND +namespace = ? "
                "AND status = 'active' AND metadata = ? AND thread_id IS ? "
                "AND position IS ? LIMIT 1",
                (item.content_hash, namespace, meta_json, item.thread_id, item.position),
            ).fetchone()
            if existing is None and rows:
                existing = next(
                    (
                        (r[0],)
                        for r in rows
                        if r[7] == item.content_hash
                        and r[3] == meta_json
                        and r[15] == item.thread_id
                        and r[16] == item.position
                    ),
                    None,
                )
            if existing is not None:
                conn.execute(
                    "UPDATE memories SET updated_at = ? WHERE id = ? AND namespace = ?",
                    (now, existing[0], namespace),
                )
                history.append((existing[0], namespace, "refreshed", None, None, now, None))
                out.append(AddResult(existing[0], False))
                continue
        # an imported id already used in this namespace gets a fresh one (ids are
        # unique per namespace: whether another tenant has it must not matter)
        memory_id = item.id if item.id and item.id not in taken else str(uuid.uuid4())
        taken.add(memory_id)
        created = item.created_at if item.created_at is not None else now
        updated = item.updated_at if item.updated_at is not None else created
        rows.append(
            (
                memory_id,
                namespace,
                item.text,
                meta_json,
                item.source,
                item.status,
                item.superseded_by,
                item.content_hash,
                encode_vector(item.embedding),
                model,
                created,
                updated,
                item.hit_count,
                seq,
                item.timestamp if item.timestamp is not None else created,
                item.thread_id,
                item.position,
                item.speaker,
            )
        )
        event = "imported" if item.id else "created"
        history.append((memory_id, namespace, event, item.text, meta_json, now, item.source))
        out.append(AddResult(memory_id, True))
    try:
        conn.executemany(
            "INSERT INTO memories (id, namespace, text, metadata, source, status, "
            "superseded_by, content_hash, embedding, embedding_model, created_at, updated_at, "
            "hit_count, seq, timestamp, thread_id, position, speaker) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
    except sqlite3.IntegrityError as exc:
        raise StorageError(f"could not add memories: {exc}") from exc
    if rows:
        conn.execute(
            "INSERT INTO namespace_stats (namespace, active) VALUES (?, ?) "
            "ON CONFLICT (namespace) DO UPDATE SET active = active + excluded.active",
            (namespace, sum(row[5] == "active" for row in rows)),
        )
    conn.executemany(
        "INSERT INTO history (memory_id, namespace, event, text, metadata, at, detail) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        history,
    )
    return out


def thread_ends(conn: sqlite3.Connection, namespace: str, threads: Sequence[str]) -> dict[str, int]:
    """The highest position of each thread that has one (any status), read by the
    writer connection in its transaction (``memories_thread`` index)."""
    ends: dict[str, int] = {}
    for thread_id in threads:
        row = conn.execute(
            "SELECT MAX(position) FROM memories WHERE namespace = ? AND thread_id = ?",
            (namespace, thread_id),
        ).fetchone()
        if row[0] is not None:
            ends[thread_id] = int(row[0])
    return ends


def taken_ids(conn: sqlite3.Connection, namespace: str, ids: Sequence[str]) -> set[str]:
    """Which of ``ids`` the namespace already uses."""
    taken: set[str] = set()
    for start in range(0, len(ids), 500):
        part = ids[start : start + 500]
        taken.update(
            r[0]
            for r in conn.execute(
                f"SELECT id FROM memories WHERE id IN ({','.join('?' * len(part))}) "
                "AND +namespace = ?",
                (*part, namespace),
            )
        )
    return taken


def update_memory(
    conn: sqlite3.Connection,
    seq: int,
    namespace: str,
    memory_id: str,
    *,
    text: str | None,
    metadata: dict[str, Any] | None,
    embedding: np.ndarray | None,
    content_hash: str | None,
    event: str,
    check_space: Callable[[], None],
) -> None:
    """Change a memory's text (with its embedding and hash) and/or metadata
    (``check_space``: run before a new text's vector is written)."""
    row = conn.execute(
        "SELECT text, metadata FROM memories WHERE id = ? AND namespace = ?",
        (memory_id, namespace),
    ).fetchone()
    if row is None:
        raise NotFoundError(f"no memory {memory_id!r} in namespace {namespace!r}")
    if text is not None:
        check_space()
    now = utc_now()
    sets: list[str] = ["updated_at = ?", "seq = ?"]
    args: list[Any] = [now, seq]
    if text is not None:
        if embedding is None or content_hash is None:
            raise StorageError("a new text needs its embedding and content hash")
        sets += ["text = ?", "embedding = ?", "content_hash = ?"]
        args += [text, encode_vector(embedding), content_hash]
    meta_json = canonical_json(metadata) if metadata is not None else row[1]
    if metadata is not None:
        sets.append("metadata = ?")
        args.append(meta_json)
    conn.execute(
        f"UPDATE memories SET {', '.join(sets)} WHERE id = ? AND namespace = ?",
        (*args, memory_id, namespace),
    )
    conn.execute(
        "INSERT INTO history (memory_id, namespace, event, text, metadata, at) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        (memory_id, namespace, event, text if text is not None else row[0], meta_json, now),
    )


def delete_memories(
    conn: sqlite3.Connection, seq: int, namespace: str, memory_ids: Sequence[str]
) -> int:
    """Forget memories (a tombstone each, history erased but for the event); how many."""
    now = utc_now()
    found = conn.execute(
        f"SELECT label, id FROM memories WHERE +namespace = ? AND id IN "
        f"({','.join('?' * len(memory_ids))})",
        (namespace, *memory_ids),
    ).fetchall()
    for label, memory_id in found:
        conn.execute("DELETE FROM memories WHERE label = ?", (label,))
        conn.execute(
            "INSERT OR REPLACE INTO tombstones (label, id, namespace, deleted_at, seq) "
            "VALUES (?, ?, ?, ?, ?)",
            (label, memory_id, namespace, now, seq),
        )
        # Forgetting erases the text everywhere, history included.
        conn.execute(
            "DELETE FROM history WHERE memory_id = ? AND namespace = ?",
            (memory_id, namespace),
        )
        conn.execute(
            "INSERT INTO history (memory_id, namespace, event, at) VALUES (?, ?, 'forgotten', ?)",
            (memory_id, namespace, now),
        )
    return len(found)


def supersede_memory(
    conn: sqlite3.Connection, seq: int, namespace: str, old_id: str, new_id: str, reason: str
) -> None:
    now = utc_now()
    cur = conn.execute(
        "UPDATE memories SET status = 'superseded', superseded_by = ?, updated_at = ?, "
        "seq = ? WHERE id = ? AND namespace = ? AND status = 'active'",
        (new_id, now, seq, old_id, namespace),
    )
    if cur.rowcount == 0:
        raise NotFoundError(f"no active memory {old_id!r} in namespace {namespace!r}")
    conn.execute(
        "INSERT INTO history (memory_id, namespace, event, at, detail) "
        "VALUES (?, ?, 'superseded', ?, ?)",
        (old_id, namespace, now, json.dumps({"by": new_id, "reason": reason})),
    )


def stage_embeddings(
    conn: sqlite3.Connection,
    embed: Callable[[list[str], list[str | None]], np.ndarray],
    batch: int,
    progress: Callable[[int, int], None] | None,
) -> int:
    """Embed every memory anew into the table ``reembed_staging`` (one transaction per
    ``batch`` memories, in label order); how many. A staging table left by a crash is
    cleared first."""
    conn.execute("DROP TABLE IF EXISTS reembed_staging")
    conn.execute("CREATE TABLE reembed_staging (label INTEGER PRIMARY KEY, vector BLOB)")
    total = conn.execute("SELECT COUNT(*) FROM memories").fetchone()[0]
    done, last = 0, 0
    while True:
        rows = conn.execute(
            "SELECT label, text, speaker FROM memories WHERE label > ? ORDER BY label LIMIT ?",
            (last, batch),
        ).fetchall()
        if not rows:
            break
        vectors = embed([r[1] for r in rows], [r[2] for r in rows])
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(
            "INSERT INTO reembed_staging (label, vector) VALUES (?, ?)",
            [(r[0], encode_vector(v)) for r, v in zip(rows, vectors, strict=True)],
        )
        conn.execute("COMMIT")
        done += len(rows)
        last = rows[-1][0]
        if progress is not None:
            progress(done, total)
    return done
