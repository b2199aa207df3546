"""Numbered schema migrations of the embedded store (see docs/storage.md).

Each migration runs in one transaction together with its row in
``schema_migrations``, so a store is always at exactly one version. Never edit a
released migration: add the next number.
"""

from __future__ import annotations

import re
import sqlite3
import time
from collections.abc import Callable

__all__ = [
    "MIGRATIONS",
    "apply_migrations",
    "pending_migrations",
    "read_meta",
    "read_seq",
    "read_space",
    "split_statements",
]


def _ids_per_namespace(conn: sqlite3.Connection) -> None:
    """Migration 4: ``memories.id`` unique per namespace (``UNIQUE (namespace, id)``).

    SQLite cannot drop a column constraint, so the table is rebuilt (SQLite's own
    recipe: create, copy, drop, rename). The new table is made from the current
    ``CREATE TABLE`` text, and the table's indexes and triggers are recreated from
    theirs, so columns, indexes or triggers that other migrations added (before or
    after this one) are kept as they are. Labels and the AUTOINCREMENT counter are
    kept, so HNSW labels stay valid and are never reused. Running it again is harmless.
    """
    (sql,) = conn.execute(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'memories'"
    ).fetchone()
    sql, found = re.subn(r"(\bid\s+TEXT\s+NOT\s+NULL)\s+UNIQUE", r"\1", sql, count=1)
    if found:
        _rebuild_memories(conn, sql)
    conn.execute("CREATE INDEX IF NOT EXISTS memories_id ON memories (id)")


def _rebuild_memories(conn: sqlite3.Connection, sql: str) -> None:
    end = sql.rstrip().rfind(")")
    # a newline first: the last column line may end in a -- comment
    sql = sql[:end] + "\n    , UNIQUE (namespace, id)\n)"
    sql = re.sub(r'^CREATE TABLE\s+"?memories"?', "CREATE TABLE memories_v4", sql, count=1)
    keep = [
        r[0]
        for r in conn.execute(
            "SELECT sql FROM sqlite_master WHERE tbl_name = 'memories' "
            "AND type IN ('index', 'trigger') AND sql IS NOT NULL"
        )
    ]
    counter = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'memories'").fetchone()
    columns = ", ".join(r[1] for r in conn.execute("PRAGMA table_info(memories)"))
    conn.execute(sql)
    conn.execute(f"INSERT INTO memories_v4 ({columns}) SELECT {columns} FROM memories")
    conn.execute("DROP TABLE memories")
    conn.execute("ALTER TABLE memories_v4 RENAME TO memories")
    for statement in keep:
        conn.execute(statement)
    conn.execute("DELETE FROM sqlite_sequence WHERE name IN ('memories', 'memories_v4')")
    if counter is not None:
        conn.execute("INSERT INTO sqlite_sequence (name, seq) VALUES ('memories', ?)", counter)


def _session_revision(conn: sqlite3.Connection) -> None:
    """Add ``chat_sessions.revision`` (compare-and-set saves); sessions stored before
    are at revision 1. Checks for the column first, so it applies once whatever number
    another branch gives it."""
    columns = {row[1] for row in conn.execute("PRAGMA table_info(chat_sessions)")}
    if "revision" not in columns:
        conn.execute("ALTER TABLE chat_sessions ADD COLUMN revision INTEGER NOT NULL DEFAULT 1")


MIGRATIONS: list[tuple[int, str, str | Callable[[sqlite3.Connection], None]]] = [
    (
        1,
        "initial schema",
        """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);

CREATE TABLE memories (
    label           INTEGER PRIMARY KEY AUTOINCREMENT,  -- HNSW label; never reused
    id              TEXT NOT NULL UNIQUE,               -- public id (UUID)
    namespace       TEXT NOT NULL,
    text            TEXT NOT NULL,
    metadata        TEXT NOT NULL DEFAULT '{}',         -- canonical JSON object
    source          TEXT NOT NULL,
    status          TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'superseded')),
    superseded_by   TEXT,
    content_hash    TEXT NOT NULL,                      -- sha256 of text
    embedding       BLOB NOT NULL,                      -- little-endian float32, unit length
    embedding_model TEXT NOT NULL,
    created_at      REAL NOT NULL,                      -- unix seconds, UTC
    updated_at      REAL NOT NULL,
    hit_count       INTEGER NOT NULL DEFAULT 0,
    last_accessed   REAL,
    seq             INTEGER NOT NULL                    -- store-wide change sequence
);
CREATE INDEX memories_ns_created ON memories (namespace, status, created_at);
CREATE INDEX memories_hash ON memories (content_hash);
CREATE INDEX memories_seq ON memories (seq);
CREATE INDEX memories_hits ON memories (namespace, hit_count DESC) WHERE hit_count > 0;

CREATE TABLE tombstones (
    label      INTEGER PRIMARY KEY,
    id         TEXT NOT NULL,
    namespace  TEXT NOT NULL,
    deleted_at REAL NOT NULL,
    seq        INTEGER NOT NULL
);
CREATE INDEX tombstones_seq ON tombstones (seq);

CREATE TABLE history (
    event_id  INTEGER PRIMARY KEY AUTOINCREMENT,
    memory_id TEXT NOT NULL,
    namespace TEXT NOT NULL,
    event     TEXT NOT NULL,   -- created | refreshed | updated | superseded | forgotten | imported
    text      TEXT,
    metadata  TEXT,
    at        REAL NOT NULL,
    detail    TEXT
);
CREATE INDEX history_memory ON history (memory_id);

CREATE TABLE namespace_stats (
    namespace TEXT PRIMARY KEY,
    active    INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE embedding_cache (
    model     TEXT NOT NULL,
    text_hash TEXT NOT NULL,
    vector    BLOB NOT NULL,
    used_at   REAL NOT NULL,
    PRIMARY KEY (model, text_hash)
) WITHOUT ROWID;

CREATE VIRTUAL TABLE memories_fts USING fts5(
    text, content='memories', content_rowid='label',
    tokenize='porter unicode61 remove_diacritics 2'
);

CREATE TRIGGER memories_after_insert AFTER INSERT ON memories BEGIN
    INSERT INTO memories_fts (rowid, text) VALUES (new.label, new.text);
    INSERT INTO namespace_stats (namespace, active) VALUES (new.namespace, new.status = 'active')
        ON CONFLICT (namespace) DO UPDATE SET active = active + (new.status = 'active');
END;

CREATE TRIGGER memories_after_delete AFTER DELETE ON memories BEGIN
    INSERT INTO memories_fts (memories_fts, rowid, text) VALUES ('delete', old.label, old.text);
    UPDATE namespace_stats SET active = active - (old.status = 'active')
        WHERE namespace = old.namespace;
END;

CREATE TRIGGER memories_after_update_text AFTER UPDATE OF text ON memories BEGIN
    INSERT INTO memories_fts (memories_fts, rowid, text) VALUES ('delete', old.label, old.text);
    INSERT INTO memories_fts (rowid, text) VALUES (new.label, new.text);
END;

CREATE TRIGGER memories_after_update_status AFTER UPDATE OF status ON memories BEGIN
    UPDATE namespace_stats
        SET active = active - (old.status = 'active') + (new.status = 'active')
        WHERE namespace = new.namespace;
END;
""",
    ),
    (
        2,
        "full text and namespace counts of new rows written per chunk, not per row",
        # The per-row trigger made every insert run two statements of its own; one
        # INSERT ... SELECT per chunk (sqlite_writes.insert_memories) does the same work ~5x
        # cheaper, and SQLite writes were most of remember_batch's time.
        """
DROP TRIGGER memories_after_insert;
""",
    ),
    (
        3,
        "conversation turns (thread, position, speaker) and when a memory happened",
        # ``timestamp`` is when the fact happened or was said (recall and list filter on
        # it); existing memories happened when they were stored. Threads used to be
        # inferred from label adjacency, which interleaved writes and other namespaces
        # broke. The table is rebuilt rather than altered so that the embedding comes
        # last: SQLite reads a row's columns in order, and every column after a 1.5 KB
        # vector is reached through its overflow pages (reading thread places for recall
        # took 5x longer with the new columns appended).
        """
CREATE TEMP TABLE migration_3_seq AS
    SELECT seq FROM sqlite_sequence WHERE name = 'memories';

CREATE TABLE memories_v3 (
    label           INTEGER PRIMARY KEY AUTOINCREMENT,  -- HNSW label; never reused
    id              TEXT NOT NULL UNIQUE,               -- public id (UUID)
    namespace       TEXT NOT NULL,
    thread_id       TEXT,                               -- a conversation's thread
    position        INTEGER,                            -- 0-based place in the thread
    speaker         TEXT,
    timestamp       REAL NOT NULL,                      -- when it happened (unix s, UTC)
    text            TEXT NOT NULL,
    metadata        TEXT NOT NULL DEFAULT '{}',         -- canonical JSON object
    source          TEXT NOT NULL,
    status          TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'superseded')),
    superseded_by   TEXT,
    content_hash    TEXT NOT NULL,                      -- sha256 of text
    embedding_model TEXT NOT NULL,
    created_at      REAL NOT NULL,                      -- unix seconds, UTC
    updated_at      REAL NOT NULL,
    hit_count       INTEGER NOT NULL DEFAULT 0,
    last_accessed   REAL,
    seq             INTEGER NOT NULL,                   -- store-wide change sequence
    embedding       BLOB NOT NULL                       -- little-endian float32, unit length
);

INSERT INTO memories_v3 (label, id, namespace, thread_id, position, speaker, timestamp, text,
    metadata, source, status, superseded_by, content_hash, embedding_model, created_at,
    updated_at, hit_count, last_accessed, seq, embedding)
SELECT label, id, namespace, NULL, NULL, NULL, created_at, text, metadata, source, status,
    superseded_by, content_hash, embedding_model, created_at, updated_at, hit_count,
    last_accessed, seq, embedding
FROM memories ORDER BY label;

DROP TABLE memories;
ALTER TABLE memories_v3 RENAME TO memories;

-- labels are never reused: keep the counter past forgotten rows at the end
UPDATE sqlite_sequence SET seq = MAX(seq, COALESCE((SELECT seq FROM migration_3_seq), 0))
    WHERE name = 'memories';
DROP TABLE migration_3_seq;

CREATE INDEX memories_ns_created ON memories (namespace, status, created_at);
CREATE INDEX memories_ns_time ON memories (namespace, status, timestamp);
CREATE INDEX memories_hash ON memories (content_hash);
CREATE INDEX memories_seq ON memories (seq);
CREATE INDEX memories_hits ON memories (namespace, hit_count DESC) WHERE hit_count > 0;
CREATE INDEX memories_thread ON memories (namespace, thread_id, position)
    WHERE thread_id IS NOT NULL;

CREATE TRIGGER memories_after_delete AFTER DELETE ON memories BEGIN
    INSERT INTO memories_fts (memories_fts, rowid, text) VALUES ('delete', old.label, old.text);
    UPDATE namespace_stats SET active = active - (old.status = 'active')
        WHERE namespace = old.namespace;
END;

CREATE TRIGGER memories_after_update_text AFTER UPDATE OF text ON memories BEGIN
    INSERT INTO memories_fts (memories_fts, rowid, text) VALUES ('delete', old.label, old.text);
    INSERT INTO memories_fts (rowid, text) VALUES (new.label, new.text);
END;

CREATE TRIGGER memories_after_update_status AFTER UPDATE OF status ON memories BEGIN
    UPDATE namespace_stats
        SET active = active - (old.status = 'active') + (new.status = 'active')
        WHERE namespace = new.namespace;
END;
""",
    ),
    (4, "memory ids unique per namespace, not per store", _ids_per_namespace),
    (
        5,
        "chat sessions kept in the store, and the provider response ids they produced",
        # Written with IF NOT EXISTS and touching no other table, so it applies whether
        # or not migration 4 (held by another branch) ran before it.
        """
CREATE TABLE IF NOT EXISTS chat_sessions (
    namespace  TEXT NOT NULL,
    id         TEXT NOT NULL,
    title      TEXT NOT NULL DEFAULT '',
    state      TEXT NOT NULL,          -- JSON owned by sem_mem.conversation
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    PRIMARY KEY (namespace, id)
);
CREATE INDEX IF NOT EXISTS chat_sessions_updated ON chat_sessions (namespace, updated_at);
CREATE TABLE IF NOT EXISTS chat_responses (
    namespace   TEXT NOT NULL,
    response_id TEXT NOT NULL,
    session_id  TEXT NOT NULL,
    PRIMARY KEY (namespace, response_id)
);
CREATE INDEX IF NOT EXISTS chat_responses_session ON chat_responses (namespace, session_id);
""",
    ),
    (
        6,
        "full text moves to per-namespace tantivy indexes (derived data, text/ folder)",
        # FTS5 scored every match of every namespace before filtering (issue #11: 12-14 ms
        # at 10^5 turns, 5x slower beside other tenants); the tantivy index of each
        # namespace is rebuilt from the memories table like the HNSW index.
        """
DROP TRIGGER IF EXISTS memories_after_delete;
DROP TRIGGER IF EXISTS memories_after_update_text;
DROP TABLE IF EXISTS memories_fts;
CREATE TRIGGER memories_after_delete AFTER DELETE ON memories BEGIN
    UPDATE namespace_stats SET active = active - (old.status = 'active')
        WHERE namespace = old.namespace;
END;
""",
    ),
    (7, "chat sessions saved by revision, never over a save they did not read", _session_revision),
]


def split_statements(script: str) -> list[str]:
    """Split a script into complete statements (trigger bodies contain semicolons)."""
    statements: list[str] = []
    current = ""
    for line in script.splitlines(keepends=True):
        current += line
        if sqlite3.complete_statement(current):
            if current.strip():
                statements.append(current.strip())
            current = ""
    if current.strip():
        statements.append(current.strip())
    return statements


def pending_migrations(conn: sqlite3.Connection) -> list[int]:
    """Versions not yet applied to the store behind ``conn`` (reads only, takes no lock)."""
    try:
        done = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
    except sqlite3.OperationalError:  # a new store: no table yet
        done = set()
    return [version for version, _, _ in MIGRATIONS if version not in done]


def apply_migrations(conn: sqlite3.Connection) -> list[int]:
    """Apply every pending migration; returns the versions applied.

    The caller holds the store's writer lock. ``conn`` is in autocommit mode.
    """
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations "
        "(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at REAL NOT NULL)"
    )
    done = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
    applied = []
    for version, name, script in MIGRATIONS:
        if version in done:
            continue
        conn.execute("BEGIN IMMEDIATE")
        try:
            if callable(script):
                script(conn)
            else:
                for statement in split_statements(script):
                    conn.execute(statement)
            conn.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                (version, name, time.time()),
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        applied.append(version)
    return applied


def read_meta(conn: sqlite3.Connection, key: str) -> str | None:
    """One value of the store's ``meta`` table (``None`` when unset)."""
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return row[0] if row else None


def read_seq(conn: sqlite3.Connection) -> int:
    """The store's change sequence: every write transaction bumps it."""
    return int(read_meta(conn, "seq") or 0)


def read_space(conn: sqlite3.Connection) -> tuple[str, int] | None:
    """The embedding model and dimensions the store is bound to, if any."""
    model, dim = read_meta(conn, "embedding_model"), read_meta(conn, "embedding_dim")
    return (model, int(dim)) if model and dim else None
