"""The statements of the PostgreSQL backend's searches, as text (each is prepared per
connection, keyed by its text), their filters and arguments, and the rows they return."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np

from .base import MemoryFilter, StoredMemory
from .postgres_schema import namespace_lexeme
from .rows import (
    EMBEDDING_AT,
    TIME_EPSILON,
    check_filter,
    content_words,
    memory_from_row,
)

__all__ = [
    "LEXICAL_CANDIDATES",
    "MEMORIES",
    "MEMORY_COLUMNS",
    "PAIRS_MAX",
    "PAIRS_MIN_MEMORIES",
    "as_vector",
    "filter_sql",
    "lexical_args",
    "lexical_sql",
    "stored",
    "tsquery_lexeme",
    "tsquery_text",
    "vector_sql",
]

#: full text ranks at most this many matches of the AND query, then of the OR query
LEXICAL_CANDIDATES = 1000
#: full text looks for memories holding two of the query's words when it has at most
#: this many (after the common ones are left out), in a namespace of more than
#: PAIRS_MIN_MEMORIES (in a smaller one ranking every match costs less than that scan)
PAIRS_MAX = 12
PAIRS_MIN_MEMORIES = 10_000
MEMORY_COLUMNS = (
    "m.id, m.text, m.metadata, m.namespace, m.source, m.created_at, m.updated_at, "
    "coalesce(h.hit_count, 0), h.last_accessed, m.status, m.superseded_by, m.embedding_model, "
    "m.timestamp, m.thread_id, m.position, m.speaker"
)

#: memories with their hit counters (alias m and h)
MEMORIES = "memories AS m LEFT JOIN memory_hits AS h ON h.namespace = m.namespace AND h.id = m.id"


def tsquery_text(text: str) -> str | None:
    """A ``to_tsquery`` OR-query of the distinct content words of ``text`` (None if none).

    The words are those the embedded backend searches (``\\w+`` minus stopwords), quoted
    as lexemes; ``\\w`` never matches a quote or a backslash, so no escaping is needed.
    """
    words = content_words(text)
    if not words:
        return None
    return " | ".join(f"'{w}'" for w in words)


def as_vector(value: Any) -> np.ndarray:
    """A pgvector value (``Vector`` or ndarray) as a float32 numpy array."""
    if isinstance(value, np.ndarray):
        return value.astype(np.float32, copy=False)
    return np.asarray(value.to_numpy(), dtype=np.float32)


def stored(row: Sequence[Any]) -> StoredMemory:
    return StoredMemory(memory_from_row(row), as_vector(row[EMBEDDING_AT]))


def filter_sql(filters: MemoryFilter | None, prefix: str = "m.") -> tuple[str, dict[str, Any]]:
    """`` AND ...`` clauses (named placeholders ``f_*``) and their arguments for a filter.

    The same rules as the embedded backend: timestamps with microsecond slack, metadata
    keys plain strings and values scalars, compared as JSON (``@>`` on top-level keys,
    which the GIN index on ``metadata`` serves).
    """
    if filters is None or filters.empty:
        return "", {}
    where: list[str] = []
    args: dict[str, Any] = {}
    if filters.source:
        where.append(f"{prefix}source = %(f_source)s")
        args["f_source"] = filters.source
    if filters.since is not None:
        where.append(f"{prefix}timestamp >= %(f_since)s")
        args["f_since"] = filters.since - TIME_EPSILON
    if filters.until is not None:
        where.append(f"{prefix}timestamp < %(f_until)s")
        args["f_until"] = filters.until - TIME_EPSILON
    if filters.thread_id is not None:
        where.append(f"{prefix}thread_id = %(f_thread)s")
        args["f_thread"] = filters.thread_id
    if filters.metadata:
        check_filter(filters)  # the same key and value rules as the embedded backend
        where.append(f"{prefix}metadata @> %(f_metadata)s::jsonb")
        args["f_metadata"] = json.dumps(dict(filters.metadata))
    return "".join(f" AND {clause}" for clause in where), args


def tsquery_lexeme(lexeme: str) -> str:
    """A lexeme quoted for tsquery input (``'`` doubled, ``\\`` escaped)."""
    return "'" + lexeme.replace("\\", "\\\\").replace("'", "''") + "'"


def vector_sql(
    namespace: str, k: int, indexed: bool, where: str = "", *, full: bool = False
) -> str:
    """The vector search of :meth:`PostgresBackend.vector_search_stored`.

    Result columns: as :data:`_ROWS_OF_BEST`, the cosine distance last. Through the
    namespace's own index, with ``full`` (every candidate's row wanted), the rows come
    from the heap fetch the index scan makes anyway, and only hit counters are probed.
    Otherwise the scan reads only (id, label, distance) of the ``k`` candidates, so an
    exact scan sorts narrow tuples and carries no candidate's row, and the rows of the
    best ``%(rows)s`` are read by primary key in the same statement. Through the index
    the namespace is a literal (the partial index's predicate must be implied by
    constants); the exact scan takes it as a parameter and orders by (distance,
    insertion order), which no HNSW index can serve, so filters (``where``) apply to
    every candidate, never after.
    """
    if indexed:
        ns = "m.namespace = '" + namespace.replace("'", "''") + "'"
        order = "d"
    else:
        ns = "m.namespace = %(ns)s"
        order = "d, m.label"
    scan = f"FROM memories AS m WHERE {ns} AND m.status = 'active'{where} ORDER BY {order}"
    if full and indexed:
        return (
            "SELECT s.id, s.text, s.metadata, s.namespace, s.source, s.created_at, "
            "s.updated_at, coalesce(h.hit_count, 0), h.last_accessed, s.status, "
            "s.superseded_by, s.embedding_model, s.timestamp, s.thread_id, s.position, "
            "s.speaker, s.embedding, s.d FROM (SELECT m.id, m.text, m.metadata, m.namespace, "
            "m.source, m.created_at, m.updated_at, m.status, m.superseded_by, "
            "m.embedding_model, m.timestamp, m.thread_id, m.position, m.speaker, m.embedding, "
            f"m.label, m.embedding <=> %(v)s AS d {scan} LIMIT {int(k)}) AS s "
            f"LEFT JOIN LATERAL ({_HITS_OF.format(id='s.id', when='')}) AS h ON true "
            "ORDER BY s.d, s.label"
        )
    return _ROWS_OF_BEST.format(
        candidates=(
            "SELECT s.id, s.d AS score, row_number() OVER (ORDER BY s.d, s.label) AS rn FROM ("
            f"SELECT m.id, m.label, m.embedding <=> %(v)s AS d {scan} LIMIT {int(k)}) AS s"
        )
    )


#: the hit counters of one memory, by primary key (a lateral subquery with LIMIT is
#: never pulled up into a join the planner could run as a scan of memory_hits)
_HITS_OF = (
    "SELECT h.hit_count, h.last_accessed FROM memory_hits AS h "
    "WHERE {when}h.namespace = %(ns)s AND h.id = {id} LIMIT 1"
)


#: the columns of ``stored`` (0-16) of a candidate ``c`` read by primary key (alias
#: ``x``, hit counters ``h``) when its rank ``c.rn`` is among the best ``%(rows)s``, NULL
#: otherwise, then the candidate's score. Lateral subqueries with LIMIT are not pulled
#: up into joins: each is one primary-key probe per candidate (none past the best
#: rows), whatever the statistics say (a join planned on them scanned memory_hits).
_ROWS_OF_BEST = (
    "SELECT c.id, x.text, x.metadata, x.namespace, x.source, x.created_at, x.updated_at, "
    "coalesce(h.hit_count, 0), h.last_accessed, x.status, x.superseded_by, "
    "x.embedding_model, x.timestamp, x.thread_id, x.position, x.speaker, x.embedding, "
    "c.score FROM ({candidates}) AS c "
    "LEFT JOIN LATERAL (SELECT x.text, x.metadata, x.namespace, x.source, x.created_at, "
    "x.updated_at, x.status, x.superseded_by, x.embedding_model, x.timestamp, x.thread_id, "
    "x.position, x.speaker, x.embedding FROM memories AS x WHERE c.rn <= %(rows)s "
    "AND x.namespace = %(ns)s AND x.id = c.id LIMIT 1) AS x ON true "
    "LEFT JOIN LATERAL ("
    + _HITS_OF.format(id="c.id", when="c.rn <= %(rows)s AND ")
    + ") AS h ON true ORDER BY c.rn"
)


#: full text: memories holding every word first, then (only if fewer than k do) those
#: holding at least two of them, then (only if still fewer) those holding any: one-time
#: filters, so a later set's scan does not run unless needed. Each set is bounded; all
#: are ranked by the sum over the query's words of idf(word) * ts_rank(memory, word),
#: BM25's weighting of rare words (ts_rank alone has none: "Caroline", in every other
#: turn, counted as much as "adoption"). On LoCoMo that took lexical R@10 from 0.613 /
#: 0.585 to 0.659 / 0.626 (tuning / checking half), hybrid from 0.773 / 0.749 to 0.822 /
#: 0.783, for +0.4 ms p50 at 10^5; ts_rank's length normalisation 1 was worse on the
#: tuning half, ts_rank_cd 3-4x slower and no better. A memory with one word of the
#: query rarely outranks one with two, and the two-word set is what keeps a 10^5
#: namespace from ranking a thousand memories that share one word with the query
#: (LoCoMo questions at 10^5: p50 5.4 -> 3.3 ms).
#: Result columns: as :data:`_ROWS_OF_BEST`.
def lexical_sql(where: str = "") -> str:
    def matches(query: str, fewer_than_k: str) -> str:
        return (
            "SELECT m.id, m.label, m.tsv FROM memories AS m "
            f"WHERE {fewer_than_k}m.tsv @@ {query}::tsquery AND m.status = 'active' "
            f"AND m.namespace = %(ns)s{where} LIMIT %(bound)s"
        )

    candidates = (
        f"WITH a AS MATERIALIZED ({matches('%(all)s', '')}), "
        "b AS MATERIALIZED ("
        + matches(
            "%(pairs)s",
            "%(pairs)s::text IS NOT NULL AND (SELECT count(*) FROM a) < %(k)s AND "
            "(SELECT s.active FROM namespace_stats AS s WHERE s.namespace = %(ns)s) "
            "> %(pairs_min)s AND ",
        )
        + "), o AS MATERIALIZED ("
        + matches(
            "%(any)s",
            "(SELECT count(*) FROM a) < %(k)s AND (SELECT count(*) FROM b) < %(k)s AND ",
        )
        + "), u AS MATERIALIZED (SELECT DISTINCT ON (id) id, label, tsv FROM ("
        "SELECT * FROM a UNION ALL SELECT * FROM b UNION ALL SELECT * FROM o) AS x), "
        # each word weighs its BM25 idf: log(1 + (N - df + 0.5) / (df + 0.5)), N the
        # namespace's memories and df those of the candidates holding it (every memory
        # holding a word is a candidate unless a set hit its bound)
        "w AS MATERIALIZED (SELECT l.q, ln(1 + (n.total - d.df + 0.5) / (d.df + 0.5)) AS idf "
        "FROM unnest(%(lexemes)s::tsquery[]) AS l(q) "
        "CROSS JOIN LATERAL (SELECT count(*) AS df FROM u WHERE u.tsv @@ l.q) AS d "
        "CROSS JOIN (SELECT greatest(coalesce(max(s.active), 0), "
        "(SELECT count(*) FROM u))::float8 AS total "
        "FROM namespace_stats AS s WHERE s.namespace = %(ns)s) AS n) "
        "SELECT id, r AS score, row_number() OVER (ORDER BY r DESC, label) AS rn FROM ("
        "SELECT u.id, u.label, (SELECT sum(w.idf * ts_rank(u.tsv, w.q)) FROM w) AS r "
        "FROM u) AS s ORDER BY r DESC, label LIMIT %(k)s"
    )
    return _ROWS_OF_BEST.format(candidates=candidates)


def lexical_args(
    namespace: str, lexemes: list[str], k: int, rows: int, pairs_min: int = PAIRS_MIN_MEMORIES
) -> dict[str, Any]:
    """The parameters of :func:`lexical_sql` for the (quoted) query lexemes."""
    ns = tsquery_lexeme(namespace_lexeme(namespace))
    any_of = " | ".join(lexemes)
    # with two words or fewer "at least two" is "every"; past PAIRS_MAX words the
    # pairs would make a query GIN evaluates slowly for every candidate
    pairs = None
    if 2 < len(lexemes) <= PAIRS_MAX:
        pairs = " | ".join(f"({x} & {y})" for i, x in enumerate(lexemes) for y in lexemes[i + 1 :])
        pairs = f"{ns} & ({pairs})"
    return {
        "all": f"{ns} & {' & '.join(lexemes)}",
        "pairs": pairs,
        "any": f"{ns} & ({any_of})",
        "lexemes": lexemes,
        "ns": namespace,
        "k": k,
        "bound": LEXICAL_CANDIDATES,
        "rows": rows,
        "pairs_min": pairs_min,
    }
