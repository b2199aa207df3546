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
* **Vector search.** A namespace of more than ``EXACT_SEARCH_MAX`` active memories has
  its own partial HNSW index (``vector_cosine_ops``, on its active rows), searched with
  the ``hnsw.ef_search`` of :func:`~sem_mem.backends.postgres_search.beam` (wider for
  more results and for a larger namespace). A smaller namespace, and any filtered
  search, is scanned exactly (cheap through the ``(namespace, status)`` index).
* **Full text.** A stored ``tsvector`` column (``english``) with a GIN index, queried
  with an OR of the query's content words (the too common ones left out, as in the
  embedded backend) and ranked by idf-weighted ``ts_rank`` (:func:`lexical_sql`).
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

import builtins
import logging
import re
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

from ..errors import (
    ConfigurationError,
    EmbeddingMismatchError,
    NotFoundError,
    StorageError,
)
from ..types import HistoryEvent, Memory
from . import postgres_reads as reads
from .base import (
    AddResult,
    ListQuery,
    MemoryFilter,
    NewMemory,
    StorageBackend,
    StoredMemory,
    ThreadPlace,
)
from .postgres_index import (
    build_missing_indexes,
    check_indexes,
    drop_indexes,
    index_options,
    index_params,
    set_space,
)
from .postgres_pool import Pool, connect, psycopg_module, redact_url
from .postgres_schema import (
    HNSW_MAX_DIMENSIONS,
    MIGRATION_LOCK,
    apply_migrations,
    read_meta,
    read_space,
)
from .postgres_search import Search
from .postgres_sessions import PostgresSessionsMixin
from .postgres_sql import (
    PAIRS_MIN_MEMORIES,
    filter_sql,
    stored,
    tsquery_text,
)
from .postgres_writes import (
    add_hits,
    check_storable,
    delete_memories,
    insert_memories,
    stage_embeddings,
    supersede_memory,
    update_memory,
)
from .rows import (
    EMBEDDING_AT,
    EXACT_SEARCH_MAX,
    history_from_row,
    transaction_size,
)
from .vector_index import HNSWParams

__all__ = ["BULK_LOAD_MIN", "EXACT_SEARCH_MAX", "PostgresBackend", "redact_url", "tsquery_text"]

log = logging.getLogger("sem_mem.store")

#: an ``add`` of at least this many memories, and at least as many as the store holds,
#: loads without the HNSW index and builds it once at the end (see ``bulk_load``)
BULK_LOAD_MIN = 10_000


class PostgresBackend(PostgresSessionsMixin, StorageBackend):
    """PostgreSQL + pgvector (HNSW) + tsvector full text, shared by many processes."""

    name = "postgres"
    server_wide_stats = ("database", "db_bytes", "seq", "index.elements", "index.file_bytes")
    copies_history = True

    def __init__(
        self,
        database_url: str,
        *,
        hnsw: HNSWParams | None = None,
        pool_size: int = 4,
        connect_timeout: float = 10.0,
        exact_search_max: int = EXACT_SEARCH_MAX,
        bulk_load_min: int = BULK_LOAD_MIN,
        pairs_min_memories: int = PAIRS_MIN_MEMORIES,
    ) -> None:
        """``hnsw``: the graph parameters (as for the embedded store; ``threads`` is not
        used: PostgreSQL builds with its own workers). ``exact_search_max``,
        ``bulk_load_min``, ``pairs_min_memories``: see ``EXACT_SEARCH_MAX`` (rows),
        ``BULK_LOAD_MIN`` (here) and ``PAIRS_MIN_MEMORIES`` (postgres_sql)."""
        psycopg = psycopg_module()
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
        hnsw = hnsw or HNSWParams()
        self.hnsw_m = hnsw.m
        self.hnsw_ef_construction = hnsw.ef_construction
        self.hnsw_ef = hnsw.ef
        self.exact_search_max = exact_search_max
        self.bulk_load_min = bulk_load_min
        self.pairs_min_memories = pairs_min_memories
        self._error = psycopg.Error
        self._register_vector = register_vector
        self._connect_timeout = connect_timeout
        self._closed = False
        self._seq = 0
        self._bound: tuple[str, int] | None = None  # the embedding space this object uses
        first = connect(self.url, connect_timeout)
        try:
            apply_migrations(first)
            register_vector(first)
            with first.transaction():
                first.execute(
                    "INSERT INTO meta (key, value) VALUES ('store_id', %s), ('created_at', %s) "
                    "ON CONFLICT (key) DO NOTHING",
                    (uuid.uuid4().hex, repr(time.time())),
                )
            self.store_id = read_meta(first, "store_id")
        except psycopg.Error as exc:
            first.close()
            raise StorageError(f"cannot open the store at {redact_url(self.url)}: {exc}") from exc
        except BaseException:
            first.close()
            raise
        self._bulk_depth = 0
        self._search = Search(self._conn)
        self._pool = Pool(self._new_connection, pool_size, timeout=60.0)
        self._pool.add(first)
        self._ensure_indexes()

    # ------------------------------------------------------------------ plumbing

    def _new_connection(self) -> Any:
        return connect(self.url, self._connect_timeout, self._register_vector)

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
    def _write(self, *, check_space: bool = False) -> Iterator[tuple[Any, int, str | None]]:
        """One write transaction holding the ``seq`` row lock; yields (conn, seq, model)."""
        with self._conn() as conn:
            with conn.transaction():
                seq = conn.execute(
                    "UPDATE store_seq SET seq = seq + 1 RETURNING seq", prepare=True
                ).fetchone()[0]
                # read after the row lock is held, in a statement of its own (a fresh
                # snapshot): a reembed that committed while this write waited is seen
                row = conn.execute(
                    "SELECT value FROM meta WHERE key = 'embedding_model'", prepare=True
                ).fetchone()
                model = row[0] if row else None
                if check_space:  # writes that carry vectors
                    self._check_space(model)
                yield conn, seq, model
            self._seq = max(self._seq, seq)

    # ------------------------------------------------------------------ embedding space

    def _check_space(self, model: str | None) -> None:
        """Refuse to go on if another process re-embedded the store since this one bound
        it: vectors of the old model must never be written under the new one's name."""
        if self._bound is not None and model is not None and model != self._bound[0]:
            raise EmbeddingMismatchError(
                f"the store at {redact_url(self.url)} was re-embedded by another process: it "
                f"now uses {model!r}, this memory uses {self._bound[0]!r} "
                f"({self._bound[1]} dimensions). Reopen it with the new embedder."
            )

    def embedding_space(self) -> tuple[str, int] | None:
        with self._conn() as conn:
            return read_space(conn)

    def bind_embedding_space(self, model_id: str, dimensions: int) -> None:
        with self._conn() as conn:
            current = read_space(conn)
            if current is None:
                with conn.transaction():
                    conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
                    current = read_space(conn)
                    if current is None:
                        set_space(conn, model_id, dimensions, *self._graph_params)
                        current = (model_id, dimensions)
        if current == (model_id, dimensions):
            self._bound = current
        if current != (model_id, dimensions):
            raise EmbeddingMismatchError(
                f"the store at {redact_url(self.url)} was built with embedding model "
                f"{current[0]!r} ({current[1]} dimensions), but this memory uses {model_id!r} "
                f"({dimensions} dimensions). Open it with the original embedder, or convert it "
                f"with memory.reembed(new_embedder) (CLI: sem-mem reembed)."
            )

    @contextmanager
    def bulk_load(self) -> Iterator[None]:
        """Load many memories without building vector indexes as namespaces grow; build
        each missing one once at the end, after ``ANALYZE``.

        Re-entrant. Other processes keep working meanwhile: a namespace without its index
        is searched exactly (slower, never wrong).
        """
        self._bulk_depth += 1
        try:
            yield
        finally:
            self._bulk_depth -= 1
            if not self._bulk_depth:
                # fresh statistics: the dedupe and full-text plans (and the word
                # statistics full text prunes by) must not be built on an empty table
                with self._conn() as conn:
                    # merge the full-text index's pending entries, which every search
                    # would otherwise scan one by one until autovacuum runs
                    conn.execute("SELECT gin_clean_pending_list('memories_tsv'::regclass)")
                self._ensure_indexes(analyze=True)
                self._search.lexicon.forget_stats()

    @property
    def _graph_params(self) -> tuple[int, int]:
        """(M, ef_construction) of a namespace graph the store has no record for."""
        return (self.hnsw_m, self.hnsw_ef_construction)

    @staticmethod
    def _graph_dimensions(conn: Any) -> int | None:
        """The store's vector dimensions if its namespaces can have HNSW graphs: None for
        a store with no vectors yet, or vectors wider than pgvector indexes."""
        space = read_space(conn)
        return None if space is None or space[1] > HNSW_MAX_DIMENSIONS else space[1]

    def _ensure_indexes(
        self, namespaces: Sequence[str] | None = None, *, analyze: bool = False
    ) -> None:
        """Build the HNSW index of every namespace (or of ``namespaces``) that has more
        than ``exact_search_max`` active memories and no index yet; then ``ANALYZE``
        (always with ``analyze``, else only when an index was built).

        ``CREATE INDEX CONCURRENTLY``: writers and readers of every namespace carry on
        meanwhile. A session advisory lock per namespace lets one process build while
        others skip it; a build that failed halfway (an invalid index) is dropped first.
        """
        with self._conn() as conn:
            dimensions = self._graph_dimensions(conn)
            if dimensions is None:
                return
            wanted = build_missing_indexes(
                conn, dimensions, self.exact_search_max, namespaces, self._graph_params
            )
            # fresh statistics: the planner matches a namespace's new index only when it
            # knows the namespace is large (else it keeps an exact scan it thinks is
            # tiny), and full text prunes words by them
            if wanted or analyze:
                conn.execute("ANALYZE memories")
            self._search.load_indexes(conn)
            if namespaces is None:  # a graph the namespace outgrew is the operator's to rebuild
                for problem in check_indexes(
                    conn, dimensions, self.exact_search_max, self._graph_params, repair=False
                ):
                    log.warning("%s; `sem-mem doctor --repair` fixes it", problem["detail"])

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
        if len(items) >= self.bulk_load_min and not self._bulk_depth:
            with self._conn() as conn:
                if len(items) >= reads.active_count(conn, namespace):
                    # maintaining the graph row by row is an order of magnitude slower
                    # than building it once: this namespace is searched exactly meanwhile
                    with conn.transaction():
                        drop_indexes(conn, namespace)
                    big = True
                else:
                    big = False
            if big:
                with self.bulk_load():
                    return self.add(
                        namespace, items, dedupe=dedupe, chunk_size=chunk_size, on_commit=on_commit
                    )
        results: list[AddResult] = []
        chunk_size = transaction_size(items, chunk_size)
        for start in range(0, len(items), chunk_size):
            chunk = items[start : start + chunk_size]
            with self._write(check_space=True) as (conn, seq, model):
                if not model:
                    raise StorageError("bind_embedding_space must be called before adding memories")
                results.extend(insert_memories(conn, namespace, chunk, seq, model, dedupe))
            if on_commit is not None:
                on_commit(len(results))
        if not self._bulk_depth and namespace not in self._search.indexed:
            with self._conn() as conn:
                big = reads.active_count(conn, namespace) > self.exact_search_max
            if big:
                self._ensure_indexes([namespace])
        return results

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
        with self._write(check_space=True) as (conn, seq, _model):
            update_memory(
                conn,
                seq,
                namespace,
                memory_id,
                text=text,
                metadata=metadata,
                embedding=embedding,
                content_hash=content_hash,
                event=event,
            )
        return self.get_many(namespace, [memory_id])[memory_id].memory

    def delete(self, namespace: str, memory_ids: Sequence[str]) -> int:
        if not memory_ids:
            return 0
        with self._write() as (conn, seq, _model):
            return delete_memories(conn, seq, namespace, memory_ids)

    def supersede(self, namespace: str, old_id: str, new_id: str, reason: str = "") -> None:
        with self._write() as (conn, seq, _model):
            supersede_memory(conn, seq, namespace, old_id, new_id, reason)

    def record_hits(
        self, namespace: str, hits: Mapping[str, int], at: float, *, wait: bool = True
    ) -> None:
        """Add hit counts (see :func:`~.postgres_writes.add_hits`). Always written before
        returning (``wait`` is accepted for the interface): the narrow ``memory_hits``
        table keeps this cheap."""
        if not hits:
            return
        with self._conn() as conn:
            add_hits(conn, namespace, hits, at)

    # ------------------------------------------------------------------ reads

    def get_many(self, namespace: str, memory_ids: Sequence[str]) -> dict[str, StoredMemory]:
        if not memory_ids:
            return {}
        with self._conn() as conn:
            return reads.get_many(conn, namespace, memory_ids)

    def vector_search(
        self,
        namespace: str,
        vector: np.ndarray,
        k: int,
        *,
        ef: int | None = None,
        filters: MemoryFilter | None = None,
    ) -> list[tuple[str, float]]:
        return self.vector_search_stored(namespace, vector, k, ef=ef, filters=filters)[0]

    def vector_search_stored(
        self,
        namespace: str,
        vector: np.ndarray,
        k: int,
        *,
        ef: int | None = None,
        rows: int = 0,
        filters: MemoryFilter | None = None,
    ) -> tuple[list[tuple[str, float]], dict[str, StoredMemory]]:
        """Candidates and the rows of the best ``rows`` of them in one statement.

        A namespace with its own HNSW index (above ``EXACT_SEARCH_MAX`` active memories)
        is searched through it (``hnsw.ef_search``: :func:`beam`): the index holds
        exactly the namespace's active memories, so nothing is filtered away after the
        scan. Any other namespace, and any filtered search (pgvector 0.6 could only
        filter the graph's results afterwards), is an exact scan of the matching
        memories. The statement names the namespace and ``k`` as constants (the partial
        index is matched against them, and a generic plan of ``LIMIT $n`` would look
        costlier than it is); it is prepared once per connection.
        """
        if k <= 0:
            return [], {}
        return self._search.vector(namespace, vector, k, ef or self.hnsw_ef, rows, filters)

    def lexical_search(
        self, namespace: str, query: str, k: int, *, filters: MemoryFilter | None = None
    ) -> list[tuple[str, float]]:
        return self.lexical_search_stored(namespace, query, k, filters=filters)[0]

    def lexical_search_stored(
        self,
        namespace: str,
        query: str,
        k: int,
        *,
        rows: int = 0,
        filters: MemoryFilter | None = None,
    ) -> tuple[list[tuple[str, float]], dict[str, StoredMemory]]:
        """Full-text candidates ranked by idf-weighted ``ts_rank`` (:func:`lexical_sql`), and
        the rows of the best ``rows`` of them, in one statement.

        Words too common to rank by are left out, using PostgreSQL's own statistics of
        the ``tsv`` column; memories holding every remaining word are ranked first, and
        only when fewer than ``k`` do, those holding any of them. Each set is bounded by
        ``LEXICAL_CANDIDATES``. The namespace is a lexeme of the query, so one GIN scan
        finds the namespace's matches without touching other namespaces'.
        """
        return self._search.lexical(namespace, query, k, rows, filters, self.pairs_min_memories)

    def explain(
        self, namespace: str, query: str, vector: np.ndarray, k: int = 50
    ) -> builtins.list[tuple[str, str]]:
        """``EXPLAIN (ANALYZE, BUFFERS)`` of the statements a recall of ``query`` runs in
        ``namespace``: (what, plan) for the vector search of a vector recall (10 rows),
        the vector and the full-text search of a hybrid one (``k`` candidates, the rows
        of 10). For operators and the closing notes."""
        return self._search.explain(
            namespace, query, vector, k, self.hnsw_ef, self.pairs_min_memories
        )

    def thread_places(
        self,
        namespace: str,
        ids: Sequence[str],
        window: int,
        *,
        filters: MemoryFilter | None = None,
    ) -> dict[str, ThreadPlace]:
        if not ids:
            return {}
        where, args = filter_sql(filters, "n.")
        with self._conn() as conn:
            return reads.thread_places(conn, namespace, ids, window, where, args)

    def list(self, namespace: str, query: ListQuery) -> list[Memory]:
        where, args = filter_sql(query.filter)
        with self._conn() as conn:
            return reads.list_memories(conn, namespace, query, where, args)

    def count(self, namespace: str) -> int:
        with self._conn() as conn:
            return reads.active_count(conn, namespace)

    def history(self, namespace: str, memory_id: str) -> builtins.list[HistoryEvent]:
        with self._conn() as conn:
            events = reads.history(conn, namespace, memory_id)
        if not events:
            raise NotFoundError(f"no memory {memory_id!r} in namespace {namespace!r}")
        return events

    def iter_history(self, namespace: str, *, batch: int = 5000) -> Iterator[HistoryEvent]:
        """Every history event of the namespace, oldest first (used by ``copy_store``)."""
        last = 0
        while True:
            with self._conn() as conn:
                rows = reads.history_page(conn, namespace, last, batch)
            if not rows:
                return
            for r in rows:
                yield history_from_row(r)
            last = rows[-1][6]

    def add_history(self, namespace: str, events: Sequence[HistoryEvent]) -> None:
        """Append history events as they are (used by ``copy_store``; does not bump seq)."""
        if not events:
            return
        with self._conn() as conn:
            reads.add_history(conn, namespace, events)

    def most_hit(self, namespace: str, n: int) -> builtins.list[StoredMemory]:
        if n <= 0:
            return []
        with self._conn() as conn:
            return reads.most_hit(conn, namespace, n)

    def iter_memories(
        self, namespace: str, *, batch: int = 1000, include_superseded: bool = True
    ) -> Iterator[StoredMemory]:
        last = 0
        while True:
            with self._conn() as conn:
                rows = reads.memories_page(conn, namespace, last, batch, include_superseded)
            if not rows:
                return
            for r in rows:
                yield stored(r)
            last = rows[-1][EMBEDDING_AT + 1]

    def namespaces(self) -> builtins.list[str]:
        with self._conn() as conn:
            return [
                r[0]
                for r in conn.execute(
                    "SELECT namespace FROM namespace_stats WHERE total > 0 ORDER BY namespace"
                ).fetchall()
            ]

    # ------------------------------------------------------------------ change tracking

    def refresh(self) -> int:
        """The current ``seq``: PostgreSQL is the index, so there is nothing to catch up
        but the list of namespaces with their own vector index (read again only when it
        changed: the same statement returns its version)."""
        with self._conn() as conn:
            seq, count, built, model = conn.execute(
                "SELECT (SELECT seq FROM store_seq), count(*), coalesce(max(built_at), 0), "
                "(SELECT value FROM meta WHERE key = 'embedding_model') FROM vector_indexes",
                prepare=True,
            ).fetchone()
            if (int(count), float(built)) != self._search.indexes_version:
                self._search.load_indexes(conn, (int(count), float(built)))
        self._check_space(model)
        self._seq = int(seq)
        return self._seq

    def changed_ids(self, namespace: str, since_seq: int) -> set[str]:
        with self._conn() as conn:
            rows = conn.execute(
                "SELECT id FROM memories WHERE seq > %s AND namespace = %s "
                "UNION SELECT id FROM tombstones WHERE seq > %s AND namespace = %s",
                (since_seq, namespace, since_seq, namespace),
            ).fetchall()
        return {r[0] for r in rows}

    # ------------------------------------------------------------------ embedding cache

    def cached_embeddings(
        self, namespace: str, model_id: str, text_hashes: Sequence[str]
    ) -> dict[str, np.ndarray]:
        if not text_hashes:
            return {}
        with self._conn() as conn:
            return reads.cached_embeddings(conn, namespace, model_id, text_hashes)

    def cache_embeddings(
        self, namespace: str, model_id: str, items: Mapping[str, np.ndarray], *, wait: bool = True
    ) -> None:
        if not items:
            return
        with self._conn() as conn:
            reads.cache_embeddings(conn, namespace, model_id, items)

    # ------------------------------------------------------------------ instructions

    def get_instructions(self, namespace: str) -> str:
        with self._conn() as conn:
            row = conn.execute(
                "SELECT text FROM instructions WHERE namespace = %s", (namespace,)
            ).fetchone()
        return row[0] if row else ""

    def set_instructions(self, namespace: str, text: str) -> None:
        check_storable(text, "", "instructions")
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
        embed: Callable[[builtins.list[str], builtins.list[str | None]], np.ndarray],
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
            done = stage_embeddings(conn, embed, batch, progress)
            drop_indexes(conn, None)
            conn.execute("ALTER TABLE memories ALTER COLUMN embedding TYPE vector")
            conn.execute(
                "UPDATE memories AS m SET embedding = s.vector, embedding_model = %s, seq = %s "
                "FROM reembed_staging AS s WHERE m.label = s.label",
                (model_id, seq),
            )
            set_space(conn, model_id, dimensions, *self._graph_params)
        # the vector column changed type: statements prepared before would fail with
        # "cached plan must not change result type"
        self._pool.discard_idle()
        self._search.forget_connections()
        self._bound = (model_id, dimensions)
        self._seq = seq
        self._ensure_indexes()
        return done

    def stats(self, namespace: str) -> dict[str, Any]:
        with self._conn() as conn:
            space = read_space(conn)
            m, ef_construction = index_params(conn, *self._graph_params)
            counts = reads.stats_counts(conn, namespace)
            built = index_options(conn, namespace)  # this namespace's graph, if it has one
        m, ef_construction = built.get("m", m), built.get("ef_construction", ef_construction)
        indexed = bool(counts["index_bytes"])
        return {
            "backend": self.name,
            "database": redact_url(self.url),
            "total_memories": counts["active"],
            "by_source": counts["by_source"],
            "superseded": counts["superseded"],
            "embedding_model": space[0] if space else None,
            "dimensions": space[1] if space else None,
            "index": {
                "type": "hnsw (pgvector, per namespace)" if indexed else "exact",
                "M": m,
                "ef_construction": ef_construction,
                "ef": self.hnsw_ef,
                "loaded": indexed,
                "elements": counts["active"],  # searchable memories of this namespace
                "file_bytes": counts["index_bytes"],
                "exact_search_max": self.exact_search_max,
            },
            "db_bytes": counts["db_bytes"],
            "seq": counts["seq"],
        }

    def check(self, *, repair: bool = False) -> dict[str, Any]:
        """The namespaces' HNSW indexes (see :func:`~.postgres_index.check_indexes`); the
        rows themselves are PostgreSQL's to keep consistent."""
        with self._conn() as conn:
            dimensions = self._graph_dimensions(conn)
            problems = []
            if dimensions is not None:
                problems = check_indexes(
                    conn, dimensions, self.exact_search_max, self._graph_params, repair=repair
                )
            if any(p["repaired"] for p in problems):
                conn.execute("ANALYZE memories")  # the planner must see the new graphs
            self._search.load_indexes(conn)
        return {
            "ok": all(p["repaired"] for p in problems),
            "checks": ["vector indexes"],
            "problems": problems,
        }

    @property
    def location(self) -> str:
        return redact_url(self.url)

    def __repr__(self) -> str:
        return f"PostgresBackend({self.location!r})"

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._pool.close()
