"""What both storage backends share about rows: the memory and history mappers, time
rounding, the full-text word list, filter validation, the exact-search size, and the
placing of turns appended at the end of their thread.

Backend-neutral and pure: ``sqlite_rows`` (SQLite encodings, FTS5 queries, filter SQL)
and ``postgres`` build on it; neither imports the other's helpers.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from ..errors import ValidationError
from ..types import HistoryEvent, Memory, to_datetime
from .base import ChatSessionRecord, MemoryFilter, NewMemory

__all__ = [
    "EMBEDDING_AT",
    "EXACT_SEARCH_MAX",
    "MEMORY_FIELDS",
    "SESSION_COLUMNS",
    "STOPWORDS",
    "TIME_EPSILON",
    "canonical_json",
    "check_filter",
    "content_words",
    "history_from_row",
    "json_path",
    "memory_from_row",
    "now",
    "place_after_end",
    "scoped_hash",
    "session_from_row",
    "sql_value",
    "transaction_size",
]

#: namespaces with at most this many active memories are searched exactly (both backends)
EXACT_SEARCH_MAX = 2048

#: the memory columns both backends select, in this order (then the embedding)
MEMORY_FIELDS = (
    "id",
    "text",
    "metadata",
    "namespace",
    "source",
    "created_at",
    "updated_at",
    "hit_count",
    "last_accessed",
    "status",
    "superseded_by",
    "embedding_model",
    "timestamp",
    "thread_id",
    "position",
    "speaker",
)
#: where the embedding sits in a row of those columns followed by the embedding
EMBEDDING_AT = len(MEMORY_FIELDS)

WORD = re.compile(r"\w+", re.UNICODE)
# Words too common to help full-text ranking; dropping them also keeps full-text
# engines from walking huge posting lists on big stores.
# fmt: off
STOPWORDS = frozenset((
    "a", "an", "and", "are", "as", "at", "be", "been", "but", "by", "can", "could", "did", "do",
    "does", "doing", "for", "from", "had", "has", "have", "he", "her", "hers", "him", "his",
    "how", "i", "if", "in", "into", "is", "it", "its", "me", "my", "of", "on", "or", "our",
    "she", "should", "so", "than", "that", "the", "their", "them", "then", "there", "these",
    "they", "this", "those", "to", "was", "we", "were", "what", "when", "where", "which", "who",
    "whom", "why", "will", "with", "would", "you", "your", "yours",
))
# fmt: on

# Timestamps are stored rounded to microseconds, the resolution of datetime, so
# that a memory's own created_at (as a datetime) finds it again in since/until.
TIME_EPSILON = 5e-7


def now() -> float:
    return round(time.time(), 6)


def canonical_json(value: Mapping[str, Any]) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def _metadata(value: Any) -> dict[str, Any]:
    """A stored metadata value: JSON text (SQLite) or already decoded (PostgreSQL jsonb)."""
    if isinstance(value, str):
        return {} if value == "{}" else json.loads(value)  # most rows: skip the parser
    return value if value is not None else {}


def memory_from_row(row: Sequence[Any]) -> Memory:
    """A :class:`Memory` from a row of :data:`MEMORY_FIELDS` (either backend)."""
    return Memory(
        id=row[0],
        text=row[1],
        metadata=_metadata(row[2]),
        namespace=row[3],
        source=row[4],
        created_at=to_datetime(row[5]),  # type: ignore[arg-type]
        updated_at=to_datetime(row[6]),  # type: ignore[arg-type]
        hit_count=int(row[7]),
        last_accessed=to_datetime(row[8]),
        status=row[9],
        superseded_by=row[10],
        embedding_model=row[11],
        timestamp=to_datetime(row[12]),
        thread_id=row[13],
        position=row[14],
        speaker=row[15],
    )


#: the chat-session columns both backends select, in this order
SESSION_COLUMNS = "id, title, state, created_at, updated_at, revision"


def session_from_row(row: Sequence[Any]) -> ChatSessionRecord:
    """A :class:`ChatSessionRecord` from a row of :data:`SESSION_COLUMNS` (``state`` is
    JSON text in SQLite, already decoded from jsonb in PostgreSQL)."""
    state = row[2] if isinstance(row[2], dict) else json.loads(row[2])
    return ChatSessionRecord(
        id=row[0],
        title=row[1],
        state=state,
        created_at=row[3],
        updated_at=row[4],
        revision=int(row[5]),
    )


def history_from_row(row: Sequence[Any]) -> HistoryEvent:
    """A :class:`HistoryEvent` from ``(memory_id, event, text, metadata, at, detail)``."""
    return HistoryEvent(
        memory_id=row[0],
        event=row[1],
        text=row[2],
        metadata=_metadata(row[3]) if row[3] else None,
        at=to_datetime(row[4]),  # type: ignore[arg-type]
        detail=row[5],
    )


def content_words(text: str, limit: int | None = 64) -> list[str]:
    """The distinct lower-cased words of ``text`` that are not stopwords, in order (the
    first ``limit`` of them; all with ``None``). The one tokeniser of full-text queries:
    FTS5, PostgreSQL and the tantivy index (see ``text_fields.query_terms``) share it."""
    words = dict.fromkeys(w for w in WORD.findall(text.lower()) if w not in STOPWORDS)
    return list(words)[:limit]


def json_path(key: str) -> str:
    """The JSON path of a top-level metadata key (ValidationError for keys no filter takes)."""
    if not isinstance(key, str) or not key or '"' in key or "\\" in key:
        raise ValidationError(f"metadata filter key must be a plain string, got {key!r}")
    return f'$."{key}"'


def sql_value(value: Any) -> Any:
    """A metadata filter value as SQL compares it (booleans as 1/0); scalars only."""
    if isinstance(value, bool):
        return int(value)
    if value is None or isinstance(value, (str, int, float)):
        return value
    raise ValidationError(
        f"metadata filter values must be strings, numbers or booleans, got {type(value).__name__}"
    )


def check_filter(filters: MemoryFilter | None) -> None:
    """Refuse metadata filters with keys or values that no backend can compare."""
    for key, value in ((filters.metadata or {}) if filters else {}).items():
        json_path(key)
        sql_value(value)


def scoped_hash(namespace: str, text_hash: str) -> str:
    """The embedding-cache key of a text in one namespace (caches are never shared:
    a hit would tell a tenant, by its speed, what another tenant asked)."""
    return hashlib.sha256(f"{namespace}\x00{text_hash}".encode()).hexdigest()


def transaction_size(items: Sequence[NewMemory], chunk_size: int) -> int:
    """How many items one transaction of ``add`` commits: all of them when any is placed
    after the end of its thread (its place counts from the end the first one read)."""
    if any(item.after_end for item in items):
        return max(chunk_size, len(items))
    return chunk_size


def place_after_end(
    items: Sequence[NewMemory], read_ends: Callable[[list[str]], Mapping[str, int]]
) -> Sequence[NewMemory]:
    """``items`` with every ``after_end`` position made absolute (see
    :class:`~sem_mem.backends.base.NewMemory`).

    ``read_ends(thread_ids)`` gives the highest stored position of each thread that has
    one; a backend calls this inside the write transaction that inserts ``items``, after
    taking the lock that serialises writers, so no other writer can take those places.
    """
    threads = list(dict.fromkeys(i.thread_id for i in items if i.after_end and i.thread_id))
    if not threads:
        return items
    ends = read_ends(threads)
    placed: list[NewMemory] = []
    for item in items:
        if item.after_end:
            if item.thread_id is None or item.position is None:
                raise ValidationError("an item placed after_end needs a thread_id and a position")
            end = ends.get(item.thread_id, -1)
            item = replace(item, position=end + 1 + item.position, after_end=False)
        placed.append(item)
    return placed
