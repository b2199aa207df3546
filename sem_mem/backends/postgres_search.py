"""Searching the PostgreSQL store, and what searches remember between calls: which
namespaces have their own HNSW index, the ``hnsw.ef_search`` each pooled connection is
set to, and the lexemes of query words (with the common ones to leave out)."""

from __future__ import annotations

import time
import weakref
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import numpy as np

from .base import MemoryFilter, StoredMemory
from .beam import search_beam
from .postgres_sql import (
    filter_sql,
    lexical_args,
    lexical_sql,
    stored,
    tsquery_lexeme,
    vector_sql,
)
from .rows import EMBEDDING_AT, content_words

__all__ = [
    "EF_SEARCH_LIMIT",
    "FTS_COMMON_MIN",
    "FTS_COMMON_SHARE",
    "STATS_TTL",
    "Lexicon",
    "Search",
    "beam",
]

#: pgvector's upper bound for hnsw.ef_search
EF_SEARCH_LIMIT = 1000


def beam(size: int, k: int, ef: int, wanted: int) -> int:
    """``hnsw.ef_search`` for ``wanted`` good results of ``k`` from a namespace of
    ``size`` memories: :func:`~.beam.search_beam` within pgvector's limit.

    At 10^6 memories recall@10 against an exact search was 0.61 with 200, the 10^5
    beam (``bench/results/backends_1m.md``), 0.937 with 633 and 0.968-0.977 with
    1,000, the width the rule gives there (``bench/results/backends_1m_beam1000.md``).
    A denser graph bought no better trade: ef_construction 400 gave 0.957 at 400 (8.0
    ms against 6.7 at 633) for a build 2.2 times as long, M 24 0.942 at 633 (6.3 ms).
    """
    return search_beam(size, k, ef, wanted, EF_SEARCH_LIMIT)


#: a word in more than this share of memories (and more than FTS_COMMON_MIN of them) is
#: left out of full-text queries, as in the embedded backend: it barely ranks, costs much
FTS_COMMON_SHARE = 0.01
FTS_COMMON_MIN = 5_000
#: how long word statistics (``pg_stats``, refreshed by ANALYZE) are reused, seconds
STATS_TTL = 300.0


class Lexicon:
    """Word -> lexemes (from PostgreSQL's own stemmer), and the store-wide share of
    memories holding each common lexeme (from ``pg_stats``), both kept between queries."""

    def __init__(self) -> None:
        self._lexemes: dict[str, tuple[str, ...]] = {}
        self._common: tuple[float, dict[str, float]] = (-STATS_TTL, {})

    def forget_stats(self) -> None:
        """Read the word statistics again on the next query (after ``ANALYZE``)."""
        self._common = (-STATS_TTL, {})

    def query_lexemes(self, conn: Any, words: list[str]) -> list[str]:
        """The query's lexemes (quoted for tsquery) without the too common ones."""
        unknown = [w for w in words if w not in self._lexemes]
        if unknown:
            for word, lexemes in conn.execute(
                "SELECT w, tsvector_to_array(to_tsvector('english', w)) "
                "FROM unnest(%s::text[]) AS w",
                (unknown,),
            ).fetchall():
                if len(self._lexemes) > 100_000:
                    self._lexemes.clear()
                self._lexemes[word] = tuple(lexemes)
        lexemes = list(dict.fromkeys(x for w in words for x in self._lexemes.get(w, ())))
        common = self.common_lexemes(conn)
        rare = [x for x in lexemes if x not in common]
        if not rare:  # every word is common: rank by the two rarest
            rare = sorted(lexemes, key=lambda x: common.get(x, 0.0))[:2]
        return [tsquery_lexeme(x) for x in rare]

    def common_lexemes(self, conn: Any) -> dict[str, float]:
        """Lexemes in too many memories to rank by, with their share (from pg_stats)."""
        loaded, common = self._common
        if time.monotonic() - loaded < STATS_TTL:
            return common
        row = conn.execute(
            "SELECT s.most_common_elems::text::text[], s.most_common_elem_freqs, c.reltuples "
            "FROM pg_stats AS s JOIN pg_class AS c ON c.relname = s.tablename "
            "AND c.relnamespace = to_regnamespace(s.schemaname) "
            "WHERE s.schemaname = current_schema() AND s.tablename = 'memories' "
            "AND s.attname = 'tsv'"
        ).fetchone()
        common = {}
        if row is not None and row[0] is not None:
            total = max(float(row[2]), 0.0)
            floor = max(FTS_COMMON_SHARE, FTS_COMMON_MIN / total) if total > 0 else 1.0
            common = {
                lexeme: float(freq)
                for lexeme, freq in zip(row[0], row[1], strict=False)
                if float(freq) > floor
            }
        self._common = (time.monotonic(), common)
        return common


class Search:
    """The vector and full-text searches of one backend, over its pooled connections
    (``connection``: the backend's, which turns psycopg errors into StorageError)."""

    def __init__(self, connection: Callable[[], AbstractContextManager[Any]]) -> None:
        self._conn = connection
        self._ef_by_conn: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()
        #: namespace -> (when read, active memories), for the HNSW beam (STATS_TTL)
        self._sizes: dict[str, tuple[float, int]] = {}
        #: namespaces that have their own HNSW index, and the version of that list seen
        self.indexed: frozenset[str] = frozenset()
        self.indexes_version: tuple[int, float] | None = None
        #: full-text helpers: the query words' lexemes and the common ones (pg_stats)
        self.lexicon = Lexicon()

    def load_indexes(self, conn: Any, version: tuple[int, float] | None = None) -> None:
        """Learn which namespaces have their own HNSW index (a stale answer only costs
        speed: a namespace searched without its index is scanned exactly)."""
        rows = conn.execute("SELECT namespace, built_at FROM vector_indexes").fetchall()
        self.indexed = frozenset(r[0] for r in rows)
        self.indexes_version = version or (len(rows), max((r[1] for r in rows), default=0.0))

    def size(self, conn: Any, namespace: str) -> int:
        """Active memories in ``namespace``, read again after ``STATS_TTL`` seconds (a
        stale size only makes the beam a little narrower or wider)."""
        read_at, size = self._sizes.get(namespace, (-STATS_TTL, 0))
        if time.monotonic() - read_at >= STATS_TTL:
            row = conn.execute(
                "SELECT active FROM namespace_stats WHERE namespace = %s", (namespace,)
            ).fetchone()
            size = int(row[0]) if row else 0
            if len(self._sizes) > 10_000:
                self._sizes.clear()
            self._sizes[namespace] = (time.monotonic(), size)
        return size

    def forget_connections(self) -> None:
        """Set ``hnsw.ef_search`` anew on every connection (the pool's were replaced)."""
        self._ef_by_conn = weakref.WeakKeyDictionary()

    def vector(
        self,
        namespace: str,
        vector: np.ndarray,
        k: int,
        ef: int,
        rows: int,
        filters: MemoryFilter | None,
    ) -> tuple[list[tuple[str, float]], dict[str, StoredMemory]]:
        """See :meth:`PostgresBackend.vector_search_stored` (``ef``: the beam asked for,
        else the backend's)."""
        query = np.ascontiguousarray(vector, dtype=np.float32)
        where, args = filter_sql(filters)
        indexed = namespace in self.indexed and k <= EF_SEARCH_LIMIT and not where
        with self._conn() as conn:
            if indexed:
                # pgvector's graph needs a wider beam than hnswlib's for the same recall:
                # recall@10 0.90 at 64, 0.953-0.968 at 160 (over four builds), 0.983 at
                # 200 on 10^5 conversation turns; wider still in a larger namespace
                wanted = min(rows or k, k, 10)
                ef_search = beam(self.size(conn, namespace), k, ef, wanted)
                # a session setting, remembered per pooled connection: no extra round trips
                if self._ef_by_conn.get(conn) != ef_search:
                    conn.execute(
                        "SELECT set_config('hnsw.ef_search', %s, false)", (str(ef_search),)
                    )
                    self._ef_by_conn[conn] = ef_search
            with conn.cursor(binary=True) as cur:
                cur.execute(
                    vector_sql(namespace, k, indexed, where, full=rows >= k),
                    {"v": query, "ns": namespace, "rows": rows, **args},
                    prepare=True,
                )
                found = cur.fetchall()
        hits = [(r[0], 1.0 - float(r[EMBEDDING_AT + 1])) for r in found]
        return hits, {r[0]: stored(r) for r in found[:rows]}

    def lexical(
        self,
        namespace: str,
        query: str,
        k: int,
        rows: int,
        filters: MemoryFilter | None,
        pairs_min: int,
    ) -> tuple[list[tuple[str, float]], dict[str, StoredMemory]]:
        """See :meth:`PostgresBackend.lexical_search_stored`."""
        words = content_words(query)
        if not words or k <= 0:
            return [], {}
        where, args = filter_sql(filters)
        with self._conn() as conn:
            lexemes = self.lexicon.query_lexemes(conn, words)
            if not lexemes:
                return [], {}
            with conn.cursor(binary=True) as cur:
                cur.execute(
                    lexical_sql(where),
                    {**lexical_args(namespace, lexemes, k, rows, pairs_min), **args},
                    prepare=True,
                )
                found = cur.fetchall()
        hits = [(r[0], float(r[EMBEDDING_AT + 1])) for r in found]
        return hits, {r[0]: stored(r) for r in found[:rows]}

    def explain(
        self, namespace: str, query: str, vector: np.ndarray, k: int, ef: int, pairs_min: int
    ) -> list[tuple[str, str]]:
        """See :meth:`PostgresBackend.explain` (``ef``: the backend's beam)."""
        out: list[tuple[str, str]] = []
        indexed = namespace in self.indexed
        with self._conn() as conn:
            if indexed:
                ef_search = beam(self.size(conn, namespace), k, ef, min(10, k))
                conn.execute("SELECT set_config('hnsw.ef_search', %s, false)", (str(ef_search),))
                self._ef_by_conn.pop(conn, None)
            args = {"v": np.ascontiguousarray(vector, dtype=np.float32), "ns": namespace}
            for what, sql in (
                ("vector recall: vector search", vector_sql(namespace, 10, indexed, full=True)),
                ("hybrid recall: vector search", vector_sql(namespace, k, indexed)),
            ):
                plan = conn.execute(f"EXPLAIN (ANALYZE, BUFFERS) {sql}", {**args, "rows": 10})
                out.append((what, "\n".join(r[0] for r in plan.fetchall())))
            lexemes = self.lexicon.query_lexemes(conn, content_words(query))
            if lexemes:
                plan = conn.execute(
                    f"EXPLAIN (ANALYZE, BUFFERS) {lexical_sql()}",
                    lexical_args(namespace, lexemes, k, 10, pairs_min),
                ).fetchall()
                out.append(("hybrid recall: full-text search", "\n".join(r[0] for r in plan)))
        return out
