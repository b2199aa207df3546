"""Recovery of a damaged embedded store: every readable memory copied, row by row, into a
new store, with a report of what was lost (``sem-mem doctor --recover-to``).

Split from :mod:`sem_mem.backends.sqlite_doctor` (the checks the backend itself runs),
because recovery opens a new :class:`~sem_mem.backends.sqlite.SQLiteBackend`, which
imports the checks: one module each way would be an import cycle.
"""

from __future__ import annotations

import shutil
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

from ..errors import StorageError
from .base import NewMemory
from .sqlite_rows import decode_vector

__all__ = ["recover_store"]

PROBE_AFTER_LAST = 10_000
_TURN_COLUMNS = ", timestamp, thread_id, position, speaker"


def _has_turn_columns(conn: sqlite3.Connection) -> bool:
    try:
        names = {r[1] for r in conn.execute("PRAGMA table_info(memories)")}
    except sqlite3.DatabaseError:
        return False
    return "thread_id" in names


_COLUMNS = (
    "id, namespace, text, metadata, source, status, superseded_by, content_hash, embedding, "
    "embedding_model, created_at, updated_at, hit_count"
)


def recover_store(source: Path, target: Path) -> dict[str, Any]:
    """Copy every readable memory of the store at ``source`` into a new store at ``target``.

    Rows are read one label at a time, so a damaged page loses only the rows on it.
    Instruction files are copied. Returns what was recovered and what was lost.
    """
    from .sqlite import DB_NAME, SQLiteBackend

    if (target / DB_NAME).exists():
        raise StorageError(f"{target} already holds a store: recover into a new directory")
    target.mkdir(parents=True, exist_ok=True)
    db = _readable_copy(source / DB_NAME, target / "damaged-copy.sqlite3")
    try:
        conn = sqlite3.connect(db)
    except sqlite3.Error as exc:
        raise StorageError(f"cannot open {db} at all: {exc}") from exc
    recovered: list[tuple[Any, ...]] = []
    unreadable: list[int] = []
    with closing(conn):
        columns = _COLUMNS + (_TURN_COLUMNS if _has_turn_columns(conn) else "")
        top = _highest_label(conn)
        label, last_read, misses = 0, 0, 0
        # with no readable count, read on until PROBE_AFTER_LAST labels in a row fail
        while (label < top) if top else (misses < PROBE_AFTER_LAST):
            label += 1
            try:
                row = conn.execute(
                    f"SELECT {columns} FROM memories WHERE label = ?", (label,)
                ).fetchone()
            except sqlite3.DatabaseError:
                unreadable.append(label)
                misses += 1
                continue
            if row is not None:
                recovered.append(row)
                last_read, misses = label, 0
            else:
                misses += 1
        if not top:
            unreadable = [lb for lb in unreadable if lb < last_read]
        forgotten = _readable_labels(conn, "SELECT label FROM tombstones")
        space = _meta_space(conn) or _space_of(recovered)
    for leftover in target.glob("damaged-copy.sqlite3*"):
        leftover.unlink()
    lost = [label for label in unreadable if label not in forgotten]
    added = 0
    if recovered and space is not None:
        backend = SQLiteBackend(target)
        try:
            backend.bind_embedding_space(*space)
            by_namespace: dict[str, list[NewMemory]] = {}
            for row in recovered:
                memory = _new_memory(row, space[1])
                if memory is not None:
                    by_namespace.setdefault(row[1], []).append(memory)
            for namespace, items in by_namespace.items():
                added += sum(r.created for r in backend.add(namespace, items, dedupe=False))
        finally:
            backend.close()
    for folder in ("instructions",):
        if (source / folder).is_dir():
            shutil.copytree(source / folder, target / folder, dirs_exist_ok=True)
    if (source / "instructions.txt").is_file():
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source / "instructions.txt", target / "instructions.txt")
    return {
        "source": str(source),
        "target": str(target),
        "recovered": added,
        "unreadable_rows": len(lost),
        "unreadable_labels": lost[:100],
        "rows_skipped": len(recovered) - added,
        # False: no count of the memories was readable, so rows after the last readable
        # one may be lost without being counted
        "complete": bool(top),
    }


def _readable_copy(db: Path, copy: Path) -> Path:
    """A copy of ``db`` (and its WAL) that SQLite will read as far as it goes.

    A truncated file still claims its old size in its header, and SQLite then refuses
    every page; the copy is cut to whole pages and its header's size zeroed, which
    makes SQLite take the size from the file (see the file format's "in-header
    database size").
    """
    try:
        shutil.copyfile(db, copy)
        wal = db.with_name(db.name + "-wal")
        if wal.exists():
            shutil.copyfile(wal, copy.with_name(copy.name + "-wal"))
        with copy.open("r+b") as fh:
            head = fh.read(100)
            if len(head) == 100 and head.startswith(b"SQLite format 3\x00"):
                page = int.from_bytes(head[16:18], "big") or 65536
                size = copy.stat().st_size
                fh.truncate(size - size % page)
                fh.seek(28)
                fh.write(b"\x00\x00\x00\x00")
    except OSError as exc:
        raise StorageError(f"cannot copy {db} to recover it: {exc}") from exc
    return copy


def _highest_label(conn: sqlite3.Connection) -> int:
    """The highest label ever issued, from whichever of the counter, the table or one of
    its indexes (each holds every label) is still readable."""
    found = [0]
    queries = [
        "SELECT seq FROM sqlite_sequence WHERE name = 'memories'",
        "SELECT max(label) FROM memories",
    ]
    try:
        indexes = [
            r[0]
            for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'memories'"
            )
        ]
    except sqlite3.DatabaseError:
        indexes = []
    queries += [f'SELECT max(label) FROM memories INDEXED BY "{name}"' for name in indexes]
    for sql in queries:
        try:
            row = conn.execute(sql).fetchone()
        except sqlite3.DatabaseError:
            continue
        if row and row[0]:
            found.append(int(row[0]))
    return max(found)  # 0: unknown, every source is damaged


def _readable_labels(conn: sqlite3.Connection, sql: str) -> set[int]:
    try:
        return {r[0] for r in conn.execute(sql)}
    except sqlite3.DatabaseError:
        return set()


def _meta_space(conn: sqlite3.Connection) -> tuple[str, int] | None:
    try:
        meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
    except sqlite3.DatabaseError:
        return None
    model, dim = meta.get("embedding_model"), meta.get("embedding_dim")
    return (model, int(dim)) if model and dim else None


def _space_of(rows: list[tuple[Any, ...]]) -> tuple[str, int] | None:
    for row in rows:
        if row[8]:
            return row[9], len(row[8]) // 4
    return None


def _turn_fields(row: tuple[Any, ...]) -> dict[str, Any]:
    if len(row) <= 13:
        return {}
    fields = {"timestamp": row[13]}
    if row[14] is not None:
        fields.update(thread_id=row[14], position=row[15], speaker=row[16])
    return fields


def _new_memory(row: tuple[Any, ...], dim: int) -> NewMemory | None:
    import json

    try:
        embedding = decode_vector(row[8])
        if embedding.size != dim:
            return None
        return NewMemory(
            text=row[2],
            embedding=embedding,
            content_hash=row[7],
            metadata=json.loads(row[3]),
            source=row[4],
            id=row[0],
            created_at=row[10],
            updated_at=row[11],
            hit_count=row[12],
            status=row[5],
            superseded_by=row[6],
            **_turn_fields(row),
        )
    except (TypeError, ValueError):
        return None
