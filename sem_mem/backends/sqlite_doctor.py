"""``sem-mem doctor``: check an embedded store, repair what is derived, recover the rest.

:func:`check_store` runs on an open store's connection and derived indexes
(:meth:`SQLiteBackend.check <sem_mem.backends.sqlite.SQLiteBackend.check>` calls it
under the store's locks):

- ``sqlite``: ``PRAGMA integrity_check`` of the database file (not repairable in
  place: see :func:`~sem_mem.backends.sqlite_recover.recover_store`);
- ``fulltext``: every namespace's full-text index files against their sidecar
  (rebuilt from SQLite on repair);
- ``counts``: the per-namespace counters against the memories (recounted on repair);
- ``index``: every namespace's HNSW file against its sidecar and the store (rebuilt
  from SQLite on repair);
- ``temp files``: ``*.tmp`` files left by a killed save (deleted on repair).

:func:`~sem_mem.backends.sqlite_recover.recover_store` copies every readable memory of a
damaged database, row by row, into a new store and reports what could not be read.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .sqlite_index import INDEX_DIR, TEXT_DIR
from .sqlite_schema import read_meta, read_seq, read_space
from .vector_index import HNSWIndex, HNSWParams

if TYPE_CHECKING:
    from .sqlite_index import StoreIndexes

__all__ = ["check_store"]


def _problem(check: str, detail: str, repaired: bool = False) -> dict[str, Any]:
    return {"check": check, "detail": detail, "repaired": repaired}


# -- full text: the one place that knows how full-text search is stored (tantivy today) --


def fulltext_problems(conn: sqlite3.Connection, indexes: StoreIndexes) -> list[dict[str, Any]]:
    """Each namespace's full-text index files, checked (and rebuilt on repair).

    :class:`~sem_mem.backends.text_index.TextIndex` verifies its files against its
    sidecar when it opens, and starts empty (``rebuilt``) when any is missing, changed
    or foreign; the caller holds the writer lock, so no commit is half done meanwhile.
    """
    from .text_index import TextIndex

    out = []
    store_id = read_meta(conn, "store_id")
    for namespace in _namespaces(conn):
        path = indexes.text_path(namespace)
        if not ((path / "sidecar.json").exists() or (path / "meta.json").exists()):
            continue  # never written: built on first use
        probe = TextIndex(path, {"store_id": store_id, "namespace": namespace})
        try:
            damaged = probe.rebuilt and probe.rebuilt_reason is not None
            reason = probe.rebuilt_reason
            stale = probe.committed_seq > read_seq(conn)
        finally:
            probe.close()
        if not (damaged or stale):
            continue
        # opening a damaged index already wiped its files: refill it from SQLite now,
        # whether or not a repair was asked for (an empty index would miss everything)
        indexes.reopen_text(namespace)
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


def _namespaces(conn: sqlite3.Connection) -> list[str]:
    return [r[0] for r in conn.execute("SELECT namespace FROM namespace_stats")]


# -- the checks ---------------------------------------------------------------------------


def check_store(
    conn: sqlite3.Connection,
    indexes: StoreIndexes,
    root: Path,
    hnsw: HNSWParams,
    *,
    repair: bool = False,
) -> dict[str, Any]:
    """Run every check; with ``repair``, fix what is derived. Returns the report.

    The caller holds the store's lock and its writer file lock: nothing else writes
    meanwhile."""
    problems: list[dict[str, Any]] = []
    indexes.wait()
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
    problems += fulltext_problems(conn, indexes)
    problems += _check_counts(conn, repair)
    problems += _check_indexes(conn, indexes, hnsw, repair)
    problems += _check_temps(root, repair)
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


def _check_indexes(
    conn: sqlite3.Connection, indexes: StoreIndexes, hnsw: HNSWParams, repair: bool
) -> list[dict[str, Any]]:
    space = read_space(conn)
    if space is None:
        return []
    out = []
    store_id = read_meta(conn, "store_id")
    for namespace in _namespaces(conn):
        path = indexes.index_path(namespace)
        if not path.exists() and not path.with_suffix(".json").exists():
            continue  # never saved: built on first use, nothing to check
        expect = {"store_id": store_id, "namespace": namespace, "model": space[0], "dim": space[1]}
        loaded = HNSWIndex.load(path, hnsw, expect)
        if loaded is not None and loaded.applied_seq <= read_seq(conn):
            continue
        repaired = False
        if repair:
            indexes.rebuild_vectors(namespace)
            repaired = HNSWIndex.load(path, hnsw, expect) is not None
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
