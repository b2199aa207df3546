"""The scale-out backend: PostgreSQL is the source of truth and, with pgvector, the index.

Several processes (API servers behind a load balancer) share one database; each keeps
its own L1 cache and learns about the others' writes through the store-wide ``seq``.

Design notes (``docs/storage.md`` has the tables):

* **Change sequence.** Every write transaction first runs ``UPDATE store_seq SET seq =
  seq + 1``. The row lock serialises writers until they commit, so commit order equals
  ``seq`` order: a reader that saw ``seq = S`` has seen every change numbered ``<= S``,
  and ``changed_ids(S)`` (``seq > S``) can never miss one. A SEQUENCE with ``nextval``
  would let writers run in parallel, but a later number could commit before an earlier
  one, and a reader could skip the earlier change for good. One writer at a time is also
  what the embedded backend does (and makes dedupe race-free); reads never wait.
* **Vector search.** One HNSW index (``vector_cosine_ops``, partial on active rows) over
  every namespace. pgvector 0.6 filters *after* the index scan, so a selective
  namespace filter can leave fewer than ``k`` rows. A namespace with at most
  ``EXACT_SEARCH_MAX`` active memories is scanned exactly (cheap through the
  ``(namespace, status)`` index, and exact); a larger one uses the index with
  ``hnsw.ef_search`` raised in proportion to how small a share of the store it is, and
  falls back to an exact scan when the index still returns fewer than ``k`` rows (or
  the share is so small that ``ef_search`` would exceed pgvector's limit of 1,000).
* **Full text.** A stored ``tsvector`` column (``english``) with a GIN index, queried
  with an OR of the query's content words (like FTS5 in the embedded backend) and ranked
  with ``ts_rank_cd``.
* **Bulk loads.** pgvector inserts into an HNSW graph one row at a time (each insert
  searches the graph with ``ef_construction``), which is an order of magnitude slower
  than building the graph once. A large ``add`` (and ``copy_store``) therefore runs in
  ``bulk_load()``: the index is dropped, rows are committed chunk by chunk (searches
  meanwhile are exact scans: slower, never wrong), and the index is built once at the
  end. A store found without its index on open (a crash mid-load) rebuilds it.
* **Connections.** A small thread-safe pool (``pool_size``) of autocommit connections:
  each write is one explicit transaction, visible to every process when it returns.
"""

from __future__ import annotations

import json
import logging
import math
import re
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

from ..errors import (
    ConfigurationError,
    EmbeddingMismatchError,
    NotFoundError,
    StorageError,
    ValidationError,
)
from ..types import HistoryEvent, Memory, to_datetime
from .base import (
    AddResult,
    ListQuery,
    NewMemory,
    StorageBackend,
    StoredMemory,
    ThreadPlace,
)
from .postgres_schema import (
    HNSW_INDEX,
    HNSW_MAX_DIMENSIONS,
    MIGRATION_LOCK,
    apply_migrations,
    vector_index_statements,
)
from .postgres_sessions import PostgresSessionsMixin
from .sqlite_rows import canonical_json, content_words, json_path, sql_value

__all__ = ["BULK_LOAD_MIN", "EXACT_SEARCH_MAX", "PostgresBackend", "redact_url", "tsquery_text"]

log = logging.getLogger("sem_mem.store")

#: namespaces with at most this many active memories are searched exactly
EXACT_SEARCH_MAX = 2048
#: pgvector's upper bound for hnsw.ef_search
_EF_SEARCH_LIMIT = 1000
#: an ``add`` of at least this many memories, and at least as many as the store holds,
#: loads without the HNSW index and builds it once at the end (see ``bulk_load``)
BULK_LOAD_MIN = 10_000
#: memory for building the HNSW index in one go (pgvector builds in RAM when it fits)
_BUILD_MEMORY = "512MB"
_TIME_EPSILON = 5e-7
_MEMORY_COLUMNS = (
    "m.id, m.text, m.metadata, m.namespace, m.source, m.created_at, m.updated_at, "
    "coalesce(h.hit_count, 0), h.last_accessed, m.status, m.superseded_by, m.embedding_model"
)
#: memories with their hit counters (alias m and h)
_MEMORIES = "memories AS m LEFT JOIN memory_hits AS h ON h.id = m.id"
_INSERT_COLUMNS = (
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
)
_INSERT_TYPES = [
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
]


def _now() -> float:
    return round(time.time(), 6)


def redact_url(url: str) -> str:
    """The connection string without its password (for messages and stats)."""
    url = re.sub(r"(://[^:/@]*):[^@]*@", r"\1:***@", url)
    return re.sub(r"(password\s*=\s*)\S+", r"\1***", url)


def tsquery_text(text: str) -> str | None:
    """A ``to_tsquery`` OR-query of the distinct content words of ``text`` (None if none).

    The words are those the embedded backend searches (``\\w+`` minus stopwords), quoted
    as lexemes; ``\\w`` never matches a quote or a backslash, so no escaping is needed.
    """
    words = content_words(text)
    if not words:
        return None
    return " | ".join(f"'{w}'" for w in words)


def _psycopg() -> Any:
    try:
        import psycopg
    except ImportError as exc:
        raise ConfigurationError(
            "the PostgreSQL backend needs psycopg and pgvector: pip install 'sem-mem[pg]'"
        ) from exc
    return psycopg


def _vector(value: Any) -> np.ndarray:
    """A pgvector value (``Vector`` or ndarray) as a float32 numpy array."""
    if isinstance(value, np.ndarray):
        return value.astype(np.float32, copy=False)
    return np.asarray(value.to_numpy(), dtype=np.float32)


def _row_to_memory(row: Sequence[Any]) -> Memory:
    return Memory(
        id=row[0],
        text=row[1],
        metadata=row[2],
        namespace=row[3],
        source=row[4],
        created_at=to_datetime(row[5]),  # type: ignore[arg-type]
        updated_at=to_datetime(row[6]),  # type: ignore[arg-type]
        hit_count=int(row[7]),
        last_accessed=to_datetime(row[8]),
        status=row[9],
        superseded_by=row[10],
        embedding_model=row[11],
    )


def _stored(row: Sequence[Any]) -> StoredMemory:
    return StoredMemory(_row_to_memory(row), _vector(row[12]))


def _check_storable(text: str, meta_json: str, field: str = "text") -> None:
    """PostgreSQL text and jsonb cannot hold NUL characters: refuse them clearly."""
    if "\x00" in text:
        raise ValidationError(f"{field} contains a NUL character, which PostgreSQL cannot store")
    if "\\u0000" in meta_json:
        raise ValidationError("metadata contains a NUL character, which PostgreSQL cannot store")


class _Pool:
    """A small thread-safe pool of autocommit connections, created on demand.

    A connection that comes back broken, or inside a transaction, is closed rather
    than reused, so a restarted server costs one failed call, not a dead process.
    """

    def __init__(self, connect: Callable[[], Any], size: int, timeout: float) -> None:
        self._connect = connect
        self._idle: list[Any] = []
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(size)
        self._timeout = timeout
        self._closed = False

    def add(self, conn: Any) -> None:
        with self._lock:
            self._idle.append(conn)

    @contextmanager
    def connection(self) -> Iterator[Any]:
        if not self._slots.acquire(timeout=self._timeout):
            raise StorageError(f"no free PostgreSQL connection after {self._timeout:.0f} s")
        try:
            with self._lock:
                if self._closed:
                    raise StorageError("this memory store is closed")
                conn = self._idle.pop() if self._idle else None
            if conn is None or conn.closed:
                conn = self._connect()
            try:
                yield conn
            finally:
                # reuse it only when it is idle: an error inside a transaction block has
                # already rolled back; a broken or mid-query connection is dropped
                from psycopg import pq

                idle = pq.TransactionStatus.IDLE
                if not conn.closed and conn.info.transaction_status == idle:
                    with self._lock:
                        if not self._closed:
                            self._idle.append(conn)
                            conn = None
                if conn is not None:
                    conn.close()
        finally:
            self._slots.release()

    def discard_idle(self) -> None:
        """Close the idle connections (their prepared statements may name dropped types)."""
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()


class PostgresBackend(PostgresSessionsMixin, StorageBackend):
    """PostgreSQL + pgvector (HNSW) + tsvector full text, shared by many processes."""

    name = "postgres"

    def __init__(
        self,
        database_url: str,
        *,
        settings: Any = None,
        pool_size: int = 4,
        connect_timeout: float = 10.0,
    ) -> None:
        psycopg = _psycopg()
        try:
            from pgvector.psycopg import register_vector
        except ImportError as exc:
            raise ConfigurationError(
                "the PostgreSQL backend needs pgvector: pip install 'sem-mem[pg]'"
            ) from exc
        if pool_size < 1:
            raise ConfigurationError(f"pool_size must be at least 1, got {pool_size}")
        # SQLAlchemy-style URLs (postgresql+psycopg://) name a driver psycopg does not need
        self.url = re.sub(r"^postgres(ql)?\+\w+://", "postgresql://", database_url)
        self.hnsw_m = int(getattr(settings, "hnsw_m", 16))
        self.hnsw_ef_construction = int(getattr(settings, "hnsw_ef_construction", 100))
        self.hnsw_ef = int(getattr(settings, "hnsw_ef", 64))
        self._error = psycopg.Error
        self._register_vector = register_vector
        self._connect_timeout = connect_timeout
        self._closed = False
        self._seq = 0
        try:
            first = psycopg.connect(
                self.url,
                autocommit=True,
                connect_timeout=max(1, int(connect_timeout)),
                application_name="sem-mem",
            )
        except psycopg.Error as exc:
            raise StorageError(
                f"cannot connect to PostgreSQL at {redact_url(self.url)}: {exc}"
            ) from exc
        try:
            apply_migrations(first)
            register_vector(first)
            with first.transaction():
                first.execute(
                    "INSERT INTO meta (key, value) VALUES ('store_id', %s), ('created_at', %s) "
                    "ON CONFLICT (key) DO NOTHING",
                    (uuid.uuid4().hex, repr(time.time())),
                )
            self.store_id = self._meta(first, "store_id")
        except psycopg.Error as exc:
            first.close()
            raise StorageError(f"cannot open the store at {redact_url(self.url)}: {exc}") from exc
        except BaseException:
            first.close()
            raise
        self._bulk_depth = 0
        self._ef_by_conn: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()
        self._pool = _Pool(self._new_connection, pool_size, timeout=60.0)
        self._pool.add(first)
        self._ensure_index()

    # ------------------------------------------------------------------ plumbing

    def _new_connection(self) -> Any:
        psycopg = _psycopg()
        try:
            conn = psycopg.connect(
                self.url,
                autocommit=True,
                connect_timeout=max(1, int(self._connect_timeout)),
                application_name="sem-mem",
            )
            self._register_vector(conn)
        except psycopg.Error as exc:
            raise StorageError(
                f"cannot connect to PostgreSQL at {redact_url(self.url)}: {exc}"
            ) from exc
        return conn

    @staticmethod
    def _meta(conn: Any, key: str) -> str | None:
        row = conn.execute("SELECT value FROM meta WHERE key = %s", (key,)).fetchone()
        return row[0] if row else None

    @contextmanager
    def _conn(self) -> Iterator[Any]:
        """A pooled connection; psycopg errors become StorageError."""
        if self._closed:
            raise StorageError("this memory store is closed")
        with self._pool.connection() as conn:
            try:
                yield conn
            except self._error as exc:
                raise StorageError(f"PostgreSQL call failed: {exc}") from exc

    @contextmanager
    def _write(self) -> Iterator[tuple[Any, int, str | None]]:
        """One write transaction holding the ``seq`` row lock; yields (conn, seq, model)."""
        with self._conn() as conn:
            with conn.transaction():
                seq, model = conn.execute(
                    "UPDATE store_seq SET seq = seq + 1 "
                    "RETURNING seq, (SELECT value FROM meta WHERE key = 'embedding_model')"
                ).fetchone()
                yield conn, seq, model
            self._seq = max(self._seq, seq)

    # ------------------------------------------------------------------ embedding space

    def embedding_space(self) -> tuple[str, int] | None:
        with self._conn() as conn:
            return self._space(conn)

    @staticmethod
    def _space(conn: Any) -> tuple[str, int] | None:
        rows = dict(
            conn.execute(
                "SELECT key, value FROM meta WHERE key IN ('embedding_model', 'embedding_dim')"
            ).fetchall()
        )
        model, dim = rows.get("embedding_model"), rows.get("embedding_dim")
        return (model, int(dim)) if model and dim else None

    def bind_embedding_space(self, model_id: str, dimensions: int) -> None:
        with self._conn() as conn:
            current = self._space(conn)
            if current is None:
                with conn.transaction():
                    conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
                    current = self._space(conn)
                    if current is None:
                        self._set_space(conn, model_id, dimensions)
                        current = (model_id, dimensions)
        if current != (model_id, dimensions):
            raise EmbeddingMismatchError(
                f"the store at {redact_url(self.url)} was built with embedding model "
                f"{current[0]!r} ({current[1]} dimensions), but this memory uses {model_id!r} "
                f"({dimensions} dimensions). Open it with the original embedder, or convert it "
                f"with memory.reembed(new_embedder) (CLI: sem-mem reembed)."
            )

    def _set_space(self, conn: Any, model_id: str, dimensions: int) -> None:
        """Record the space, type the vector column and (re)build the HNSW index."""
        conn.execute(f"SET LOCAL maintenance_work_mem = '{_BUILD_MEMORY}'")
        for statement in vector_index_statements(
            dimensions, self.hnsw_m, self.hnsw_ef_construction
        ):
            conn.execute(statement)
        conn.execute(
            "INSERT INTO meta (key, value) VALUES ('embedding_model', %s), ('embedding_dim', %s), "
            "('hnsw_m', %s), ('hnsw_ef_construction', %s) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (model_id, str(dimensions), str(self.hnsw_m), str(self.hnsw_ef_construction)),
        )

    @contextmanager
    def bulk_load(self) -> Iterator[None]:
        """Load many memories without maintaining the HNSW index; build it once at the end.

        Re-entrant. Other processes keep working meanwhile: their searches are exact
        scans until the index is back. The index is rebuilt even if the load fails
        (whatever was committed stays).
        """
        if self._bulk_depth:
            self._bulk_depth += 1
            try:
                yield
            finally:
                self._bulk_depth -= 1
            return
        with self._conn() as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
            conn.execute(f"DROP INDEX IF EXISTS {HNSW_INDEX}")
        self._bulk_depth = 1
        try:
            yield
        finally:
            self._bulk_depth = 0
            self._ensure_index()

    def _ensure_index(self) -> None:
        """Build the HNSW index if the bound space should have one and it is missing."""
        with self._conn() as conn:
            space = self._space(conn)
            if space is None or space[1] > HNSW_MAX_DIMENSIONS:
                return
            if conn.execute("SELECT to_regclass(%s)", (HNSW_INDEX,)).fetchone()[0] is not None:
                return
            started = time.perf_counter()
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
                conn.execute(f"SET LOCAL maintenance_work_mem = '{_BUILD_MEMORY}'")
                m, ef_construction = self._index_params(conn)
                conn.execute(vector_index_statements(space[1], m, ef_construction)[-1])
            log.info("built the HNSW index in %.1f s", time.perf_counter() - started)

    def _index_params(self, conn: Any) -> tuple[int, int]:
        """(M, ef_construction) recorded when the space was bound (else this object's)."""
        meta = dict(
            conn.execute(
                "SELECT key, value FROM meta WHERE key IN ('hnsw_m', 'hnsw_ef_construction')"
            ).fetchall()
        )
        return (
            int(meta.get("hnsw_m", self.hnsw_m)),
            int(meta.get("hnsw_ef_construction", self.hnsw_ef_construction)),
        )

    # ------------------------------------------------------------------ writes

    def add(
        self,
        namespace: str,
        items: Sequence[NewMemory],
        *,
        dedupe: bool = True,
        chunk_size: int = 1000,
        on_commit: Callable[[int], None] | None = None,
    ) -> list[AddResult]:
        if len(items) >= BULK_LOAD_MIN and not self._bulk_depth:
            with self._conn() as conn:
                stored = conn.execute("SELECT coalesce(sum(active), 0) FROM namespace_stats")
                big = len(items) >= int(stored.fetchone()[0])
            if big:
                with self.bulk_load():
                    return self.add(
                        namespace, items, dedupe=dedupe, chunk_size=chunk_size, on_commit=on_commit
                    )
        results: list[AddResult] = []
        for start in range(0, len(items), chunk_size):
            chunk = items[start : start + chunk_size]
            with self._write() as (conn, seq, model):
                if not model:
                    raise StorageError("bind_embedding_space must be called before adding memories")
                results.extend(self._insert(conn, namespace, chunk, seq, model, dedupe))
            if on_commit is not None:
                on_commit(len(results))
        return results

    def _insert(
        self,
        conn: Any,
        namespace: str,
        items: Sequence[NewMemory],
        seq: int,
        model: str,
        dedupe: bool,
    ) -> list[AddResult]:
        now = _now()
        metas = [canonical_json(item.metadata) for item in items]
        for item, meta_json in zip(items, metas, strict=True):
            _check_storable(item.text, meta_json)
        existing: dict[int, str] = {}
        if dedupe:
            existing = dict(
                conn.execute(
                    "SELECT DISTINCT ON (q.i) q.i, m.id "
                    "FROM unnest(%s::text[], %s::text[]) WITH ORDINALITY AS q(h, md, i) "
                    "JOIN memories m ON m.content_hash = q.h AND m.metadata = q.md::jsonb "
                    "WHERE m.namespace = %s AND m.status = 'active' ORDER BY q.i, m.label",
                    ([item.content_hash for item in items], metas, namespace),
                ).fetchall()
            )
        out: list[AddResult] = []
        rows: list[tuple[Any, ...]] = []
        history: list[tuple[Any, ...]] = []
        fresh: dict[tuple[str, str], str] = {}  # (hash, metadata) -> id, within this chunk
        refreshed: list[str] = []
        hits: list[tuple[str, str, int]] = []  # imported hit counts
        for i, (item, meta_json) in enumerate(zip(items, metas, strict=True), start=1):
            if dedupe:
                same = existing.get(i) or fresh.get((item.content_hash, meta_json))
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
                )
            )
            if item.hit_count:
                hits.append((memory_id, namespace, item.hit_count))
            fresh.setdefault((item.content_hash, meta_json), memory_id)
            event = "imported" if item.id else "created"
            history.append((memory_id, namespace, event, item.text, meta_json, now, item.source))
            out.append(AddResult(memory_id, True))
        if refreshed:
            conn.execute("UPDATE memories SET updated_at = %s WHERE id = ANY(%s)", (now, refreshed))
        if rows:
            with conn.cursor() as cur:
                try:
                    with cur.copy(
                        f"COPY memories ({', '.join(_INSERT_COLUMNS)}) FROM STDIN (FORMAT BINARY)"
                    ) as copy:
                        copy.set_types(_INSERT_TYPES)
                        for row in rows:
                            copy.write_row(row)
                except self._error as exc:
                    raise StorageError(f"could not add memories: {exc}") from exc
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO history (memory_id, namespace, event, text, metadata, at, detail) "
                "VALUES (%s, %s, %s, %s, %s::jsonb, %s, %s)",
                history,
            )
            if hits:
                cur.executemany(
                    "INSERT INTO memory_hits (id, namespace, hit_count) VALUES (%s, %s, %s)", hits
                )
        return out

    def update(
        self,
        namespace: str,
        memory_id: str,
        *,
        text: str | None = None,
        metadata: dict[str, Any] | None = None,
        embedding: np.ndarray | None = None,
        content_hash: str | None = None,
        event: str = "updated",
    ) -> Memory:
        with self._write() as (conn, seq, _model):
            row = conn.execute(
                "SELECT text, metadata FROM memories WHERE id = %s AND namespace = %s FOR UPDATE",
                (memory_id, namespace),
            ).fetchone()
            if row is None:
                raise NotFoundError(f"no memory {memory_id!r} in namespace {namespace!r}")
            now = _now()
            meta_json = canonical_json(metadata if metadata is not None else row[1])
            _check_storable(text or "", meta_json)
            sets, args = ["updated_at = %s", "seq = %s"], [now, seq]
            if text is not None:
                if embedding is None or content_hash is None:
                    raise StorageError("a new text needs its embedding and content hash")
                sets += ["text = %s", "embedding = %s", "content_hash = %s"]
                args += [text, np.ascontiguousarray(embedding, dtype=np.float32), content_hash]
            if metadata is not None:
                sets.append("metadata = %s::jsonb")
                args.append(meta_json)
            conn.execute(f"UPDATE memories SET {', '.join(sets)} WHERE id = %s", (*args, memory_id))
            conn.execute(
                "INSERT INTO history (memory_id, namespace, event, text, metadata, at) "
                "VALUES (%s, %s, %s, %s, %s::jsonb, %s)",
                (memory_id, namespace, event, text if text is not None else row[0], meta_json, now),
            )
        return self.get_many(namespace, [memory_id])[memory_id].memory

    def delete(self, namespace: str, memory_ids: Sequence[str]) -> int:
        if not memory_ids:
            return 0
        with self._write() as (conn, seq, _model):
            now = _now()
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
                    "ON CONFLICT (id) DO UPDATE SET namespace = excluded.namespace, "
                    "deleted_at = excluded.deleted_at, seq = excluded.seq",
                    (namespace, now, seq, found),
                )
                # Forgetting erases the text everywhere, history included.
                conn.execute("DELETE FROM history WHERE memory_id = ANY(%s)", (found,))
                conn.execute(
                    "INSERT INTO history (memory_id, namespace, event, at) "
                    "SELECT i, %s, 'forgotten', %s FROM unnest(%s::text[]) AS i",
                    (namespace, now, found),
                )
        return len(found)

    def supersede(self, namespace: str, old_id: str, new_id: str, reason: str = "") -> None:
        with self._write() as (conn, seq, _model):
            now = _now()
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

    def record_hits(
        self, namespace: str, hits: Mapping[str, int], at: float, *, wait: bool = True
    ) -> None:
        """Add hit counts (in ``memory_hits``: not a content change, ``seq`` stays).

        Always written before returning (``wait`` is accepted for the interface): the
        narrow ``memory_hits`` table keeps this cheap.

        A share lock on the ``seq`` row orders this after any running write (writers lock
        that row first too), and counters are upserted in id order, so hit recorders and
        writers in other processes can never deadlock.
        """
        if not hits:
            return
        ids = sorted(hits)
        with self._conn() as conn, conn.transaction():
            conn.execute("SELECT 1 FROM store_seq FOR SHARE")
            conn.execute(
                "INSERT INTO memory_hits AS t (id, namespace, hit_count, last_accessed) "
                "SELECT m.id, m.namespace, h.n, %s "
                "FROM unnest(%s::text[], %s::bigint[]) AS h(id, n) "
                "JOIN memories AS m ON m.id = h.id AND m.namespace = %s ORDER BY m.id "
                "ON CONFLICT (id) DO UPDATE SET hit_count = t.hit_count + excluded.hit_count, "
                "last_accessed = excluded.last_accessed",
                (at, ids, [int(hits[i]) for i in ids], namespace),
            )

    # ------------------------------------------------------------------ reads

    def get_many(self, namespace: str, memory_ids: Sequence[str]) -> dict[str, StoredMemory]:
        if not memory_ids:
            return {}
        with self._conn() as conn, conn.cursor(binary=True) as cur:
            cur.execute(
                f"SELECT {_MEMORY_COLUMNS}, m.embedding FROM {_MEMORIES} "
                "WHERE m.namespace = %s AND m.id = ANY(%s)",
                (namespace, list(memory_ids)),
            )
            return {row[0]: _stored(row) for row in cur.fetchall()}

    def thread_places(
        self,
        namespace: str,
        ids: Sequence[str],
        window: int,
        *,
        filters: Any = None,
    ) -> dict[str, ThreadPlace]:
        # Interim until this backend records threads (#14 branch): no thread, no speaker;
        # a memory happened when it was stored.
        if not ids:
            return {}
        with self._conn() as conn, conn.cursor() as cur:
            cur.execute(
                "SELECT id, created_at FROM memories WHERE namespace = %s AND id = ANY(%s)",
                (namespace, list(ids)),
            )
            return {r[0]: ThreadPlace(None, None, float(r[1])) for r in cur.fetchall()}

    def vector_search(
        self, namespace: str, vector: np.ndarray, k: int, *, ef: int | None = None
    ) -> list[tuple[str, float]]:
        if k <= 0:
            return []
        query = np.ascontiguousarray(vector, dtype=np.float32)
        with self._conn() as conn:
            row = conn.execute(
                "SELECT (SELECT active FROM namespace_stats WHERE namespace = %s), "
                "(SELECT sum(active) FROM namespace_stats), "
                "(SELECT value FROM meta WHERE key = 'embedding_dim')",
                (namespace,),
            ).fetchone()
            in_namespace, in_store, dim = int(row[0] or 0), int(row[1] or 0), row[2]
            if in_namespace == 0 or dim is None:
                return []
            wanted = min(k, in_namespace)
            ef_search = self._ef_search(k, ef, in_namespace, in_store, int(dim))
            rows: list[tuple[str, float]] = []
            if ef_search is not None:
                # a session setting, remembered per pooled connection: no extra round trips
                if self._ef_by_conn.get(conn) != ef_search:
                    conn.execute(
                        "SELECT set_config('hnsw.ef_search', %s, false)", (str(ef_search),)
                    )
                    self._ef_by_conn[conn] = ef_search
                rows = conn.execute(
                    "SELECT id, embedding <=> %s AS distance FROM memories "
                    "WHERE namespace = %s AND status = 'active' ORDER BY distance LIMIT %s",
                    (query, namespace, k),
                ).fetchall()
            if len(rows) < wanted:
                rows = self._exact_search(conn, namespace, query, k)
        return [(memory_id, 1.0 - float(distance)) for memory_id, distance in rows]

    def _ef_search(
        self, k: int, ef: int | None, in_namespace: int, in_store: int, dim: int
    ) -> int | None:
        """The ``hnsw.ef_search`` for a filtered index scan, or None for an exact scan."""
        if in_namespace <= EXACT_SEARCH_MAX or dim > HNSW_MAX_DIMENSIONS:
            return None
        share = in_namespace / max(in_store, in_namespace)
        needed = max(ef or self.hnsw_ef, k, math.ceil(2 * k / share))
        return needed if needed <= _EF_SEARCH_LIMIT else None

    @staticmethod
    def _exact_search(
        conn: Any, namespace: str, query: np.ndarray, k: int
    ) -> list[tuple[str, float]]:
        # OFFSET 0 fences the subquery, so the sort cannot be served by the HNSW index
        return conn.execute(  # type: ignore[no-any-return]
            "SELECT id, distance FROM (SELECT id, label, embedding <=> %s AS distance "
            "FROM memories WHERE namespace = %s AND status = 'active' OFFSET 0) AS s "
            "ORDER BY distance, label LIMIT %s",
            (query, namespace, k),
        ).fetchall()

    def lexical_search(self, namespace: str, query: str, k: int) -> list[tuple[str, float]]:
        match = tsquery_text(query)
        if match is None or k <= 0:
            return []
        with self._conn() as conn:
            rows = conn.execute(
                "SELECT m.id, ts_rank_cd(m.tsv, q) AS rank "
                "FROM memories AS m, to_tsquery('english', %s) AS q "
                "WHERE m.tsv @@ q AND m.namespace = %s AND m.status = 'active' "
                "ORDER BY rank DESC, m.label LIMIT %s",
                (match, namespace, k),
            ).fetchall()
        return [(memory_id, float(rank)) for memory_id, rank in rows]

    def list(self, namespace: str, query: ListQuery) -> list[Memory]:
        where, args = ["m.namespace = %s"], [namespace]
        if not query.include_superseded:
            where.append("m.status = 'active'")
        if query.source:
            where.append("m.source = %s")
            args.append(query.source)
        if query.since is not None:
            where.append("m.created_at >= %s")
            args.append(query.since - _TIME_EPSILON)
        if query.until is not None:
            where.append("m.created_at < %s")
            args.append(query.until - _TIME_EPSILON)
        for key, value in (query.metadata or {}).items():
            json_path(key)  # the same key rules as the embedded backend
            sql_value(value)  # and the same value types
            # JSON equality: 1 == 1.0, true is not 1, None matches null
            where.append("m.metadata -> %s = %s::jsonb")
            args += [key, json.dumps(value)]
        order = "DESC" if query.newest_first else "ASC"
        sql = (
            f"SELECT {_MEMORY_COLUMNS} FROM {_MEMORIES} WHERE {' AND '.join(where)} "
            f"ORDER BY m.created_at {order}, m.label {order} LIMIT %s OFFSET %s"
        )
        with self._conn() as conn:
            rows = conn.execute(sql, (*args, query.limit, query.offset)).fetchall()
        return [_row_to_memory(row) for row in rows]

    def count(self, namespace: str) -> int:
        with self._conn() as conn:
            row = conn.execute(
                "SELECT active FROM namespace_stats WHERE namespace = %s", (namespace,)
            ).fetchone()
        return int(row[0]) if row else 0

    def history(self, namespace: str, memory_id: str) -> list[HistoryEvent]:
        with self._conn() as conn:
            rows = conn.execute(
                "SELECT memory_id, event, text, metadata, at, detail FROM history "
                "WHERE memory_id = %s AND namespace = %s ORDER BY event_id",
                (memory_id, namespace),
            ).fetchall()
        if not rows:
            raise NotFoundError(f"no memory {memory_id!r} in namespace {namespace!r}")
        return [_history_event(r) for r in rows]

    def iter_history(self, namespace: str, *, batch: int = 5000) -> Iterator[HistoryEvent]:
        """Every history event of the namespace, oldest first (used by ``copy_store``)."""
        last = 0
        while True:
            with self._conn() as conn:
                rows = conn.execute(
                    "SELECT memory_id, event, text, metadata, at, detail, event_id FROM history "
                    "WHERE namespace = %s AND event_id > %s ORDER BY event_id LIMIT %s",
                    (namespace, last, batch),
                ).fetchall()
            if not rows:
                return
            for r in rows:
                yield _history_event(r)
            last = rows[-1][6]

    def add_history(self, namespace: str, events: Sequence[HistoryEvent]) -> None:
        """Append history events as they are (used by ``copy_store``; does not bump seq)."""
        if not events:
            return
        with self._conn() as conn, conn.transaction(), conn.cursor() as cur:
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

    def most_hit(self, namespace: str, n: int) -> list[StoredMemory]:
        if n <= 0:
            return []
        with self._conn() as conn, conn.cursor(binary=True) as cur:
            cur.execute(
                f"SELECT {_MEMORY_COLUMNS}, m.embedding "
                "FROM memory_hits AS h JOIN memories AS m ON m.id = h.id "
                "WHERE h.namespace = %s AND h.hit_count > 0 AND m.status = 'active' "
                "ORDER BY h.hit_count DESC, m.label LIMIT %s",
                (namespace, n),
            )
            return [_stored(r) for r in cur.fetchall()]

    def iter_memories(
        self, namespace: str, *, batch: int = 1000, include_superseded: bool = True
    ) -> Iterator[StoredMemory]:
        status = "" if include_superseded else "AND m.status = 'active'"
        last = 0
        while True:
            with self._conn() as conn, conn.cursor(binary=True) as cur:
                cur.execute(
                    f"SELECT {_MEMORY_COLUMNS}, m.embedding, m.label FROM {_MEMORIES} "
                    f"WHERE m.namespace = %s AND m.label > %s {status} ORDER BY m.label LIMIT %s",
                    (namespace, last, batch),
                )
                rows = cur.fetchall()
            if not rows:
                return
            for r in rows:
                yield _stored(r)
            last = rows[-1][13]

    def namespaces(self) -> list[str]:
        with self._conn() as conn:
            return [
                r[0]
                for r in conn.execute(
                    "SELECT namespace FROM namespace_stats WHERE total > 0 ORDER BY namespace"
                ).fetchall()
            ]

    # ------------------------------------------------------------------ change tracking

    def refresh(self) -> int:
        """The current ``seq``: PostgreSQL is the index, so there is nothing to catch up."""
        with self._conn() as conn:
            seq = int(conn.execute("SELECT seq FROM store_seq").fetchone()[0])
        self._seq = seq
        return seq

    def changed_ids(self, namespace: str, since_seq: int) -> set[str]:
        with self._conn() as conn:
            rows = conn.execute(
                "SELECT id FROM memories WHERE seq > %s AND namespace = %s "
                "UNION SELECT id FROM tombstones WHERE seq > %s AND namespace = %s",
                (since_seq, namespace, since_seq, namespace),
            ).fetchall()
        return {r[0] for r in rows}

    # ------------------------------------------------------------------ embedding cache

    def cached_embeddings(self, model_id: str, text_hashes: Sequence[str]) -> dict[str, np.ndarray]:
        if not text_hashes:
            return {}
        wanted = list(dict.fromkeys(text_hashes))
        out: dict[str, np.ndarray] = {}
        with self._conn() as conn, conn.cursor(binary=True) as cur:
            cur.execute(
                "SELECT text_hash, vector FROM embedding_cache "
                "WHERE model = %s AND text_hash = ANY(%s)",
                (model_id, wanted),
            )
            for h, vec in cur.fetchall():
                out[h] = _vector(vec)
            missing = [h for h in wanted if h not in out]
            if missing:
                cur.execute(
                    "SELECT DISTINCT ON (content_hash) content_hash, embedding FROM memories "
                    "WHERE embedding_model = %s AND content_hash = ANY(%s)",
                    (model_id, missing),
                )
                for h, vec in cur.fetchall():
                    out.setdefault(h, _vector(vec))
        return out

    def cache_embeddings(
        self, model_id: str, items: Mapping[str, np.ndarray], *, wait: bool = True
    ) -> None:
        if not items:
            return
        now = time.time()
        keys = sorted(items)  # one lock order for concurrent upserts
        with self._conn() as conn, conn.transaction(), conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO embedding_cache (model, text_hash, vector, used_at) "
                "VALUES (%s, %s, %s, %s) ON CONFLICT (model, text_hash) "
                "DO UPDATE SET vector = excluded.vector, used_at = excluded.used_at",
                [
                    (model_id, h, np.ascontiguousarray(items[h], dtype=np.float32), now)
                    for h in keys
                ],
            )

    # ------------------------------------------------------------------ instructions

    def get_instructions(self, namespace: str) -> str:
        with self._conn() as conn:
            row = conn.execute(
                "SELECT text FROM instructions WHERE namespace = %s", (namespace,)
            ).fetchone()
        return row[0] if row else ""

    def set_instructions(self, namespace: str, text: str) -> None:
        _check_storable(text, "", "instructions")
        with self._conn() as conn:
            conn.execute(
                "INSERT INTO instructions (namespace, text, updated_at) VALUES (%s, %s, %s) "
                "ON CONFLICT (namespace) DO UPDATE SET text = excluded.text, "
                "updated_at = excluded.updated_at",
                (namespace, text, time.time()),
            )

    # ------------------------------------------------------------------ maintenance

    def replace_embeddings(
        self,
        model_id: str,
        dimensions: int,
        embed: Callable[[list[str]], np.ndarray],
        *,
        batch: int = 256,
        progress: Callable[[int, int], None] | None = None,
    ) -> int:
        """Re-embed everything in one transaction that holds the ``seq`` row lock.

        New vectors go to a temporary table; the swap (column type, vectors, HNSW index,
        recorded space) happens at the end of the same transaction, so a crash or an
        embedder error leaves the store exactly as it was. Writers wait meanwhile.
        """
        with self._conn() as conn, conn.transaction():
            seq = conn.execute("UPDATE store_seq SET seq = seq + 1 RETURNING seq").fetchone()[0]
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
            conn.execute(
                "CREATE TEMPORARY TABLE reembed_staging (label bigint PRIMARY KEY, "
                "vector vector NOT NULL) ON COMMIT DROP"
            )
            total = conn.execute("SELECT count(*) FROM memories").fetchone()[0]
            done, last = 0, 0
            while True:
                rows = conn.execute(
                    "SELECT label, text FROM memories WHERE label > %s ORDER BY label LIMIT %s",
                    (last, batch),
                ).fetchall()
                if not rows:
                    break
                vectors = embed([r[1] for r in rows])
                with (
                    conn.cursor() as cur,
                    cur.copy(
                        "COPY reembed_staging (label, vector) FROM STDIN (FORMAT BINARY)"
                    ) as copy,
                ):
                    copy.set_types(["int8", "vector"])
                    for r, v in zip(rows, vectors, strict=True):
                        copy.write_row((r[0], np.ascontiguousarray(v, dtype=np.float32)))
                done += len(rows)
                last = rows[-1][0]
                if progress is not None:
                    progress(done, total)
            conn.execute(f"DROP INDEX IF EXISTS {HNSW_INDEX}")
            conn.execute("ALTER TABLE memories ALTER COLUMN embedding TYPE vector")
            conn.execute(
                "UPDATE memories AS m SET embedding = s.vector, embedding_model = %s, seq = %s "
                "FROM reembed_staging AS s WHERE m.label = s.label",
                (model_id, seq),
            )
            self._set_space(conn, model_id, dimensions)
        # the vector column changed type: statements prepared before would fail with
        # "cached plan must not change result type"
        self._pool.discard_idle()
        self._seq = seq
        return done

    def stats(self, namespace: str) -> dict[str, Any]:
        with self._conn() as conn:
            space = self._space(conn)
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
            meta = dict(
                conn.execute(
                    "SELECT key, value FROM meta WHERE key IN ('hnsw_m', 'hnsw_ef_construction')"
                ).fetchall()
            )
            index_bytes, db_bytes, elements, seq, active = conn.execute(
                "SELECT coalesce(pg_relation_size(to_regclass(%s)), 0), "
                "pg_database_size(current_database()), "
                "(SELECT coalesce(sum(active), 0) FROM namespace_stats), "
                "(SELECT seq FROM store_seq), "
                "(SELECT coalesce(max(active), 0) FROM namespace_stats WHERE namespace = %s)",
                (HNSW_INDEX, namespace),
            ).fetchone()
        indexed = bool(index_bytes)
        return {
            "backend": self.name,
            "database": redact_url(self.url),
            "total_memories": int(active),
            "by_source": by_source,
            "superseded": superseded,
            "embedding_model": space[0] if space else None,
            "dimensions": space[1] if space else None,
            "index": {
                "type": "hnsw (pgvector)" if indexed else "exact",
                "M": int(meta.get("hnsw_m", self.hnsw_m)),
                "ef_construction": int(meta.get("hnsw_ef_construction", self.hnsw_ef_construction)),
                "ef": self.hnsw_ef,
                "loaded": indexed,
                "elements": int(elements),  # active memories of every namespace
                "file_bytes": int(index_bytes),
                "exact_search_max": EXACT_SEARCH_MAX,
            },
            "db_bytes": int(db_bytes),
            "seq": int(seq),
        }

    def __repr__(self) -> str:
        return f"PostgresBackend({redact_url(self.url)!r})"

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._pool.close()


def _history_event(r: Sequence[Any]) -> HistoryEvent:
    return HistoryEvent(
        memory_id=r[0],
        event=r[1],
        text=r[2],
        metadata=r[3],
        at=to_datetime(r[4]),  # type: ignore[arg-type]
        detail=r[5],
    )
