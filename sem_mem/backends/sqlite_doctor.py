"""``sem-mem doctor``: check an embedded store, repair what is derived, recover the rest.

:func:`check_store` runs on an open :class:`~sem_mem.backends.sqlite.SQLiteBackend`:

- ``sqlite``: ``PRAGMA integrity_check`` of the database file (not repairable in
  place: see :func:`recover_store`);
- ``fulltext``: every namespace's full-text index files against their sidecar
  (rebuilt from SQLite on repair);
- ``counts``: the per-namespace counters against the memories (recounted on repair);
- ``index``: every namespace's HNSW file against its sidecar and the store (rebuilt
  from SQLite on repair);
- ``temp files``: ``*.tmp`` files left by a killed save (deleted on repair).

:func:`recover_store` copies every readable memory of a damaged database, row by row,
into a new store and reports what could not be read.
"""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import StorageError
from .base import NewMemory
from .sqlite_index import INDEX_DIR, TEXT_DIR
from .sqlite_rows import decode_vector
from .vector_index import HNSWIndex

if TYPE_CHECKING:
    from .sqlite import SQLiteBackend

__all__ = ["check_store", "recover_store"]


def _problem(check: str, detail: str, repaired: bool = False) -> dict[str, Any]:
    return {"check": check, "detail": detail, "repaired": repaired}


# -- full text: the one place that knows how full-text search is stored (tantivy today) --


def fulltext_problems(backend: SQLiteBackend) -> list[dict[str, Any]]:
    """Each namespace's full-text index files, checked (and rebuilt on repair).

    :class:`~sem_mem.backends.text_index.TextIndex` verifies its files against its
    sidecar when it opens, and starts empty (``rebuilt``) when any is missing, changed
    or foreign; the caller holds the writer lock, so no commit is half done meanwhile.
    """
    from .text_index import TextIndex

    out = []
    for namespace in _namespaces(backend):
        path = backend._text_path(namespace)
        if not ((path / "sidecar.json").exists() or (path / "meta.json").exists()):
            continue  # never written: built on first use
        probe = TextIndex(path, {"store_id": backend.store_id, "namespace": namespace})
        try:
            damaged = probe.rebuilt and probe.rebuilt_reason is not None
            reason = probe.rebuilt_reason
            stale = probe.committed_seq > backend._read_seq()
        finally:
            probe.close()
        if not (damaged or stale):
            continue
        # opening a damaged index already wiped its files: refill it from SQLite now,
        # whether or not a repair was asked for (an empty index would miss everything)
        cached = backend._texts.pop(namespace, None)
        if cached is not None:
            cached.close()
        text = backend._text_for(namespace)
        backend._commit_text(namespace, text)
        repaired = True
        out.append(
            _problem(
                "fulltext",
                f"the full-text index of namespace {namespace!r} is damaged or stale "
                f"({reason or 'ahead of the store'})",
                repaired,
            )
        )
    return out


def _namespaces(backend: SQLiteBackend) -> list[str]:
    return [r[0] for r in backend._conn.execute("SELECT namespace FROM namespace_stats")]


# -- the checks ---------------------------------------------------------------------------


def check_store(backend: SQLiteBackend, *, repair: bool = False) -> dict[str, Any]:
    """Run every check; with ``repair``, fix what is derived. Returns the report."""
    problems: list[dict[str, Any]] = []
    with backend._lock, backend._file_lock.holding("doctor"):
        backend._check_open()
        backend._await_index_job()
        conn = backend._conn
        try:
            rows = [r[0] for r in conn.execute("PRAGMA integrity_check").fetchall()]
        except sqlite3.DatabaseError as exc:
            rows = [str(exc)]
        if rows != ["ok"]:
            problems.append(
                _problem(
                    "sqlite",
                    f"the database file is damaged ({'; '.join(rows[:5])}): recover its "
                    "readable rows with `sem-mem doctor --recover-to NEW_DIR`",
                )
            )
            return _report(problems)  # the derived checks would read damaged pages
        problems += fulltext_problems(backend)
        problems += _check_counts(conn, repair)
        problems += _check_indexes(backend, repair)
        problems += _check_temps(backend.root, repair)
    return _report(problems)


def _report(problems: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "ok": all(p["repaired"] for p in problems),
        "checks": ["sqlite", "fulltext", "counts", "index", "temp files"],
        "problems": problems,
    }


@contextmanager
def _in_transaction(conn: sqlite3.Connection) -> Iterator[None]:
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _check_counts(conn: sqlite3.Connection, repair: bool) -> list[dict[str, Any]]:
    actual = dict(
        conn.execute(
            "SELECT namespace, count(*) FROM memories WHERE status = 'active' GROUP BY namespace"
        ).fetchall()
    )
    kept = dict(conn.execute("SELECT namespace, active FROM namespace_stats").fetchall())
    wrong = {ns for ns in set(actual) | set(kept) if actual.get(ns, 0) != kept.get(ns, 0)}
    if not wrong:
        return []
    if repair:
        with _in_transaction(conn):
            conn.execute("DELETE FROM namespace_stats")
            conn.executemany(
                "INSERT INTO namespace_stats (namespace, active) VALUES (?, ?)", actual.items()
            )
    return [
        _problem(
            "counts",
            f"namespace {ns!r} counts {kept.get(ns, 0)} active memories, the store has "
            f"{actual.get(ns, 0)}",
            repair,
        )
        for ns in sorted(wrong)
    ]


def _check_indexes(backend: SQLiteBackend, repair: bool) -> list[dict[str, Any]]:
    space = backend.embedding_space()
    if space is None:
        return []
    out = []
    for namespace in _namespaces(backend):
        path = backend._index_path(namespace)
        if not path.exists() and not path.with_suffix(".json").exists():
            continue  # never saved: built on first use, nothing to check
        expect = {
            "store_id": backend.store_id,
            "namespace": namespace,
            "model": space[0],
            "dim": space[1],
        }
        loaded = HNSWIndex.load(path, backend.hnsw, expect)
        if loaded is not None and loaded.applied_seq <= backend._read_seq():
            continue
        repaired = False
        if repair:
            backend._indexes.pop(namespace, None)
            index = backend._index_for(namespace)  # rebuilt from SQLite and caught up
            index.dirty = max(index.dirty, 1)
            backend._maybe_save(force=True)
            repaired = HNSWIndex.load(path, backend.hnsw, expect) is not None
        out.append(
            _problem(
                "index",
                f"the HNSW index of namespace {namespace!r} is damaged, truncated or stale",
                repaired,
            )
        )
    return out


def _check_temps(root: Path, repair: bool) -> list[dict[str, Any]]:
    # only saves write *.tmp files, always under the writer lock (held here): any one
    # found now was left by a save that was killed
    found = [
        *(root / INDEX_DIR).glob("*.tmp"),
        *(root / TEXT_DIR).glob("*/*.tmp"),
        *(root / "instructions").glob("*.tmp"),
    ]
    out = []
    for path in found:
        size = path.stat().st_size
        if repair:
            path.unlink(missing_ok=True)
        out.append(_problem("temp files", f"{path} ({size:,} bytes) left by a killed save", repair))
    return out


# -- recovery of a damaged database -----------------------------------------------------------

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
