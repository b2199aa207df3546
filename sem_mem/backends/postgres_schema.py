"""Numbered schema migrations of the PostgreSQL + pgvector store (see docs/storage.md).

Each migration runs in one transaction together with its row in
``schema_migrations``, under a transaction-scoped advisory lock, so that several
processes opening the same database at once apply it exactly once. Never edit a
released migration: add the next number.

The vector column is created untyped (``vector``): its dimension is only known when
the store is bound to an embedding space (:func:`vector_index_statements`), which
then types the column and builds the HNSW index.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

__all__ = [
    "BUILD_MEMORY_MAX_MB",
    "BUILD_MEMORY_MIN_MB",
    "HNSW_INDEX",
    "HNSW_MAX_DIMENSIONS",
    "MIGRATIONS",
    "MIGRATION_LOCK",
    "apply_migrations",
    "build_memory_mb",
    "column_type_statements",
    "namespace_index_name",
    "namespace_index_statement",
    "namespace_lexeme",
    "read_meta",
    "read_space",
]

#: advisory-lock key under which migrations and embedding-space changes run ("semmem" in hex)
MIGRATION_LOCK = 0x73656D6D656D
#: the store-wide HNSW index of schema versions 1-3 (replaced by per-namespace indexes in 4)
HNSW_INDEX = "memories_embedding_hnsw"
#: per-namespace HNSW indexes are named this plus a hash of the namespace
NAMESPACE_INDEX_PREFIX = "memories_hnsw_"
#: pgvector's HNSW index handles vectors of up to 2,000 dimensions; larger ones are searched exactly
HNSW_MAX_DIMENSIONS = 2000

MIGRATIONS: list[tuple[int, str, str]] = [
    (
        1,
        "initial schema",
        """
CREATE EXTENSION IF NOT EXISTS vector;

CREATE TABLE meta (key text PRIMARY KEY, value text NOT NULL);

-- The store-wide change sequence. Every write transaction increments it first, so
-- the row lock serialises writers and commit order equals seq order.
CREATE TABLE store_seq (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    seq       bigint NOT NULL
);
INSERT INTO store_seq (singleton, seq) VALUES (true, 0);

CREATE TABLE memories (
    label           bigint GENERATED ALWAYS AS IDENTITY,   -- insertion order
    id              text PRIMARY KEY,                      -- public id (UUID)
    namespace       text NOT NULL,
    text            text NOT NULL,
    metadata        jsonb NOT NULL DEFAULT '{}',
    source          text NOT NULL,
    status          text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'superseded')),
    superseded_by   text,
    content_hash    text NOT NULL,                         -- sha256 of text
    embedding       vector NOT NULL,                       -- vector(dim) once bound, unit length
    embedding_model text NOT NULL,
    created_at      double precision NOT NULL,             -- unix seconds, UTC, microseconds
    updated_at      double precision NOT NULL,
    seq             bigint NOT NULL,                       -- store-wide change sequence
    tsv             tsvector GENERATED ALWAYS AS (to_tsvector('english', text)) STORED
);
CREATE UNIQUE INDEX memories_label ON memories (label);
CREATE INDEX memories_ns_created ON memories (namespace, status, created_at);
CREATE INDEX memories_hash ON memories (content_hash);
CREATE INDEX memories_seq ON memories (seq);
CREATE INDEX memories_tsv ON memories USING gin (tsv);

-- Recall hit counters live apart from the memories: updating a column of ``memories``
-- writes a new row version into every index, the HNSW graph included (expensive).
CREATE TABLE memory_hits (
    id            text PRIMARY KEY REFERENCES memories (id) ON DELETE CASCADE,
    namespace     text NOT NULL,
    hit_count     bigint NOT NULL DEFAULT 0,
    last_accessed double precision
);
CREATE INDEX memory_hits_top ON memory_hits (namespace, hit_count DESC);

CREATE TABLE tombstones (
    id         text PRIMARY KEY,
    namespace  text NOT NULL,
    deleted_at double precision NOT NULL,
    seq        bigint NOT NULL
);
CREATE INDEX tombstones_seq ON tombstones (seq);

CREATE TABLE history (
    event_id  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    memory_id text NOT NULL,
    namespace text NOT NULL,
    event     text NOT NULL,  -- created | refreshed | updated | superseded | forgotten | imported
    text      text,
    metadata  jsonb,
    at        double precision NOT NULL,
    detail    text
);
CREATE INDEX history_memory ON history (memory_id);
CREATE INDEX history_namespace ON history (namespace, event_id);

CREATE TABLE namespace_stats (
    namespace text PRIMARY KEY,
    active    bigint NOT NULL DEFAULT 0,  -- memories with status 'active'
    total     bigint NOT NULL DEFAULT 0   -- all memories, superseded included
);

CREATE TABLE embedding_cache (
    model     text NOT NULL,
    text_hash text NOT NULL,
    vector    vector NOT NULL,
    used_at   double precision NOT NULL,
    PRIMARY KEY (model, text_hash)
);

CREATE TABLE instructions (
    namespace  text PRIMARY KEY,
    text       text NOT NULL,
    updated_at double precision NOT NULL
);

-- namespace_stats follows every insert, delete and status change (statement-level
-- triggers with transition tables: one row per statement, not per memory).
CREATE FUNCTION semmem_stats_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO namespace_stats AS s (namespace, active, total)
        SELECT namespace, count(*) FILTER (WHERE status = 'active'), count(*)
        FROM new_rows GROUP BY namespace
    ON CONFLICT (namespace) DO UPDATE
        SET active = s.active + excluded.active, total = s.total + excluded.total;
    RETURN NULL;
END $$;

CREATE FUNCTION semmem_stats_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE namespace_stats AS s
        SET active = s.active - d.active, total = s.total - d.total
        FROM (SELECT namespace, count(*) FILTER (WHERE status = 'active') AS active,
                     count(*) AS total
              FROM old_rows GROUP BY namespace) AS d
        WHERE s.namespace = d.namespace;
    RETURN NULL;
END $$;

CREATE FUNCTION semmem_stats_status() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE namespace_stats
        SET active = active - (OLD.status = 'active')::int + (NEW.status = 'active')::int
        WHERE namespace = NEW.namespace;
    RETURN NULL;
END $$;

CREATE TRIGGER memories_stats_insert AFTER INSERT ON memories
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION semmem_stats_insert();
CREATE TRIGGER memories_stats_delete AFTER DELETE ON memories
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION semmem_stats_delete();
CREATE TRIGGER memories_stats_status AFTER UPDATE OF status ON memories
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION semmem_stats_status();
""",
    ),
    # 2 is the retrieval contract's, 3 the reliability work's (numbers are global, a
    # database records each one it applied: see apply_migrations).
    (
        4,
        "query paths: per-namespace vector indexes, namespace-aware full text, dedupe index",
        """
-- Rows stay in the heap page: an exact scan or ts_rank must not fetch TOASTed
-- embeddings or tsvectors (30 ms for a 5,000-memory tenant before). Affects new rows.
ALTER TABLE memories ALTER COLUMN embedding SET STORAGE MAIN;
ALTER TABLE memories SET (toast_tuple_target = 8160);

-- The dedupe lookup of every add: (namespace, content_hash) among active memories.
CREATE INDEX memories_ns_hash ON memories (namespace, content_hash) WHERE status = 'active';

-- Full text: the namespace is a lexeme of every tsvector, so one GIN scan intersects it
-- with the query's words and a search costs what its own namespace holds, not the
-- store (btree_gin, the usual answer, is not in every distribution).
DROP INDEX IF EXISTS memories_tsv;
ALTER TABLE memories DROP COLUMN tsv;
ALTER TABLE memories ADD COLUMN tsv tsvector GENERATED ALWAYS AS (
    to_tsvector('english', text) || array_to_tsvector(ARRAY['ns' || md5(namespace)])
) STORED;
-- a small pending list: every search scans it linearly (4 MB by default: milliseconds)
CREATE INDEX memories_tsv ON memories USING gin (tsv) WITH (gin_pending_list_limit = 256)
    WHERE status = 'active';

-- Vector search: one partial HNSW index per namespace above the exact-scan size (an index
-- shared by namespaces is post-filtered by pgvector 0.6, which loses recall and rows).
DROP INDEX IF EXISTS memories_embedding_hnsw;
CREATE TABLE vector_indexes (
    namespace  text PRIMARY KEY,
    index_name text NOT NULL UNIQUE,
    built_at   double precision NOT NULL
);
""",
    ),
    (
        5,
        "conversation turns (thread, position, speaker) and when a memory happened",
        # the retrieval contract (SQLite migration 3): ``timestamp`` is when the fact
        # happened; recall and list filter on it. Existing memories happened when stored.
        """
ALTER TABLE memories ADD COLUMN timestamp double precision;
ALTER TABLE memories ADD COLUMN thread_id text;
ALTER TABLE memories ADD COLUMN position integer;
ALTER TABLE memories ADD COLUMN speaker text;
UPDATE memories SET timestamp = created_at;
ALTER TABLE memories ALTER COLUMN timestamp SET NOT NULL;
CREATE INDEX memories_ns_time ON memories (namespace, status, timestamp);
CREATE INDEX memories_thread ON memories (namespace, thread_id, position)
    WHERE thread_id IS NOT NULL;
-- metadata filters (containment of top-level key/value pairs) during candidate generation
CREATE INDEX memories_metadata ON memories USING gin (metadata jsonb_path_ops);
""",
    ),
    (
        3,
        "memory ids unique per namespace, not per store",
        # Importing id X into namespace A must not depend on whether B holds an X
        # (that told A that B had it). Written to apply whether or not 2 ran first.
        """
ALTER TABLE memory_hits DROP CONSTRAINT IF EXISTS memory_hits_id_fkey;
ALTER TABLE memory_hits DROP CONSTRAINT IF EXISTS memory_hits_pkey;
ALTER TABLE memories DROP CONSTRAINT IF EXISTS memories_pkey;
ALTER TABLE memories ADD CONSTRAINT memories_pkey PRIMARY KEY (namespace, id);
CREATE INDEX IF NOT EXISTS memories_id ON memories (id);
ALTER TABLE memory_hits ADD CONSTRAINT memory_hits_pkey PRIMARY KEY (namespace, id);
ALTER TABLE memory_hits ADD CONSTRAINT memory_hits_memory_fkey FOREIGN KEY (namespace, id)
    REFERENCES memories (namespace, id) ON DELETE CASCADE;
ALTER TABLE tombstones DROP CONSTRAINT IF EXISTS tombstones_pkey;
ALTER TABLE tombstones ADD CONSTRAINT tombstones_pkey PRIMARY KEY (namespace, id);
""",
    ),
    (
        6,
        "chat sessions kept in the store, and the provider response ids they produced",
        # Written with IF NOT EXISTS and touching no other table, so it applies whether
        # or not migrations 2-5 (held by other branches) ran before it.
        """
CREATE TABLE IF NOT EXISTS chat_sessions (
    namespace  text NOT NULL,
    id         text NOT NULL,
    title      text NOT NULL DEFAULT '',
    state      jsonb NOT NULL,
    created_at double precision NOT NULL,
    updated_at double precision NOT NULL,
    PRIMARY KEY (namespace, id)
);
CREATE INDEX IF NOT EXISTS chat_sessions_updated ON chat_sessions (namespace, updated_at);
CREATE TABLE IF NOT EXISTS chat_responses (
    namespace   text NOT NULL,
    response_id text NOT NULL,
    session_id  text NOT NULL,
    PRIMARY KEY (namespace, response_id)
);
CREATE INDEX IF NOT EXISTS chat_responses_session ON chat_responses (namespace, session_id);
""",
    ),
    (
        7,
        "a dedupe index the planner cannot pass over",
        # The dedupe lookup of every add names the namespace only inside this index's
        # expression: the planner can only probe it (or memories_hash) per item,
        # whatever its statistics say. Through (namespace, content_hash) a table it had not analysed
        # since a namespace began to grow looked served as well by (namespace, status)
        # indexes, and every item scanned the whole namespace (2-3 s per 1,000 at 10^4).
        # (namespace, status, created_at) served nothing (ns_time serves the same
        # filters) and cost every insert. Typing the vector column reset its storage to
        # the type's EXTERNAL: large vectors went to TOAST again.
        """
CREATE INDEX IF NOT EXISTS memories_dedupe ON memories ((namespace || ':' || content_hash))
    WHERE status = 'active';
DROP INDEX IF EXISTS memories_ns_hash;
DROP INDEX IF EXISTS memories_ns_created;
ALTER TABLE memories ALTER COLUMN embedding SET STORAGE MAIN;
""",
    ),
    (
        8,
        "chat sessions saved by revision, never over a save they did not read",
        # compare-and-set saves (sem_mem.backends.base.save_chat_session); sessions stored
        # before are at revision 1. IF NOT EXISTS: applies once whatever its number.
        """
ALTER TABLE chat_sessions ADD COLUMN IF NOT EXISTS revision bigint NOT NULL DEFAULT 1;
""",
    ),
]


def namespace_lexeme(namespace: str) -> str:
    """The lexeme migration 4 adds to every tsvector of ``namespace`` (``'ns' || md5``)."""
    return "ns" + hashlib.md5(namespace.encode("utf-8")).hexdigest()


def namespace_index_name(namespace: str) -> str:
    """The name of ``namespace``'s HNSW index (a hash: any namespace makes a valid name)."""
    return NAMESPACE_INDEX_PREFIX + hashlib.sha256(namespace.encode("utf-8")).hexdigest()[:24]


def namespace_index_statement(
    namespace: str, m: int, ef_construction: int, *, concurrently: bool, name: str | None = None
) -> str:
    """``CREATE INDEX`` of ``namespace``'s partial HNSW index over its active memories
    (named ``name``, default :func:`namespace_index_name`).

    The namespace is a literal in the predicate: the planner matches a partial index only
    against a query that names the same constant (see ``postgres_sql.vector_sql``).
    """
    literal = "'" + namespace.replace("'", "''") + "'"
    return (
        f"CREATE INDEX {'CONCURRENTLY ' if concurrently else ''}IF NOT EXISTS "
        f"{name or namespace_index_name(namespace)} ON memories "
        "USING hnsw (embedding vector_cosine_ops) "
        f"WITH (m = {int(m)}, ef_construction = {int(ef_construction)}) "
        f"WHERE namespace = {literal} AND status = 'active'"
    )


#: bytes pgvector 0.6 holds in memory per vector while it builds an HNSW graph, beyond the
#: vector itself (4 bytes a dimension + 8), per unit of M: measured with 384-d vectors and
#: M = 16, where 16 MB of maintenance_work_mem held 7,447 of them (2,253 bytes each, so
#: 717 beyond the vector: ~45 per unit of M, the neighbour lists)
_GRAPH_BYTES_PER_M = 45
#: maintenance_work_mem for a build is what its graph needs, with this much slack, and at
#: least BUILD_MEMORY_MIN_MB, at most BUILD_MEMORY_MAX_MB (megabytes). A graph that does not
#: fit is finished by inserting the remaining rows one at a time, several times slower
#: (30,000 rows: 46.5 s with 16 MB against 11.9 s with 512 MB, bench/results/backends_profile.md).
#: A parallel build reserves the whole amount as shared memory, so it is not set higher
#: than the graph needs.
_GRAPH_SLACK = 1.25
BUILD_MEMORY_MIN_MB = 64
BUILD_MEMORY_MAX_MB = 4096


def build_memory_mb(rows: int, dimensions: int, m: int) -> int:
    """``maintenance_work_mem`` (MB) to build the HNSW graph of ``rows`` vectors in memory."""
    per_row = 4 * dimensions + 8 + _GRAPH_BYTES_PER_M * m
    need = int(rows * per_row * _GRAPH_SLACK / 2**20) + 1
    return max(BUILD_MEMORY_MIN_MB, min(BUILD_MEMORY_MAX_MB, need))


def column_type_statements(dimensions: int) -> list[str]:
    """Type the vector column for ``dimensions`` (run with every vector index dropped)."""
    return [
        f"ALTER TABLE memories ALTER COLUMN embedding TYPE vector({int(dimensions)})",
        # a new type brings its own storage (EXTERNAL for vector): keep vectors in the row
        "ALTER TABLE memories ALTER COLUMN embedding SET STORAGE MAIN",
    ]


def read_meta(conn: Any, key: str) -> str | None:
    row = conn.execute("SELECT value FROM meta WHERE key = %s", (key,)).fetchone()
    return row[0] if row else None


def read_space(conn: Any) -> tuple[str, int] | None:
    """The recorded embedding space (model id, dimensions), None before the first bind."""
    rows = dict(
        conn.execute(
            "SELECT key, value FROM meta WHERE key IN ('embedding_model', 'embedding_dim')"
        ).fetchall()
    )
    model, dim = rows.get("embedding_model"), rows.get("embedding_dim")
    return (model, int(dim)) if model and dim else None


def _all_applied(conn: Any) -> bool:
    """True when every known migration has its row (not just the highest number:
    migrations written on parallel branches may arrive below one already applied)."""
    row = conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL").fetchone()
    if not row[0]:
        return False
    versions = [version for version, _, _ in MIGRATIONS]
    done = conn.execute(
        "SELECT count(*) FROM schema_migrations WHERE version = ANY(%s)", (versions,)
    ).fetchone()[0]
    return int(done) == len(versions)


def apply_migrations(conn: Any) -> list[int]:
    """Apply every pending migration; returns the versions applied.

    ``conn`` is a psycopg connection in autocommit mode. A database that is already
    up to date costs one query and takes no lock.
    """
    if _all_applied(conn):
        return []
    applied = []
    for version, name, script in MIGRATIONS:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, "
                "name text NOT NULL, applied_at double precision NOT NULL)"
            )
            done = conn.execute(
                "SELECT 1 FROM schema_migrations WHERE version = %s", (version,)
            ).fetchone()
            if done:
                continue
            conn.execute(script)
            conn.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES (%s, %s, %s)",
                (version, name, time.time()),
            )
        applied.append(version)
    return applied
