"""Encoding and query helpers of the embedded store: vectors, JSON, rows, FTS5 queries.

Pure functions shared by the SQLite backend and its index manager (and, for the
full-text word list and metadata filters, by the PostgreSQL backend).
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..errors import ValidationError
from ..types import Memory, to_datetime
from ..validation import check_int, check_unicode
from .base import MemoryFilter

__all__ = [
    "EMBEDDING_AT",
    "MEMORY_COLUMNS",
    "STOPWORDS",
    "TIME_EPSILON",
    "canonical_json",
    "content_words",
    "decode_matrix",
    "decode_vector",
    "encode_vector",
    "file_name",
    "filter_sql",
    "fts_query",
    "json_path",
    "now",
    "row_to_memory",
    "scoped_hash",
    "sql_value",
]

SAFE_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
WORD = re.compile(r"\w+", re.UNICODE)
# Words too common to help full-text ranking; dropping them also keeps FTS5 from
# walking huge posting lists on big stores.
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
MEMORY_COLUMNS = (
    "id, text, metadata, namespace, source, created_at, updated_at, hit_count, "
    "last_accessed, status, superseded_by, embedding_model, timestamp, thread_id, position, "
    "speaker"
)
#: where the embedding sits in a row of ``SELECT {MEMORY_COLUMNS}, embedding``
EMBEDDING_AT = 16


def encode_vector(vector: np.ndarray) -> bytes:
    return np.ascontiguousarray(vector, dtype="<f4").tobytes()


def decode_vector(blob: bytes) -> np.ndarray:
    return np.frombuffer(blob, dtype="<f4")


def decode_matrix(blobs: Sequence[bytes], dim: int) -> np.ndarray:
    """Vectors of ``dim`` float32 each as one ``(len(blobs), dim)`` matrix.

    Always that shape, including ``(0, dim)`` for no rows: an empty namespace (one never
    written to, or whose last memory was forgotten) must index and search like any other.
    """
    matrix = np.frombuffer(b"".join(blobs), dtype="<f4")
    if matrix.size != len(blobs) * dim:
        raise ValueError(f"stored vectors do not all have {dim} dimensions")
    return matrix.reshape(len(blobs), dim)


def canonical_json(value: Mapping[str, Any]) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def row_to_memory(row: Sequence[Any]) -> Memory:
    return Memory(
        id=row[0],
        text=row[1],
        metadata={} if row[2] == "{}" else json.loads(row[2]),  # most rows: skip the parser
        namespace=row[3],
        source=row[4],
        created_at=to_datetime(row[5]),  # type: ignore[arg-type]
        updated_at=to_datetime(row[6]),  # type: ignore[arg-type]
        hit_count=row[7],
        last_accessed=to_datetime(row[8]),
        status=row[9],
        superseded_by=row[10],
        embedding_model=row[11],
        timestamp=to_datetime(row[12]),
        thread_id=row[13],
        position=row[14],
        speaker=row[15],
    )


def content_words(text: str, limit: int = 64) -> list[str]:
    """The distinct lower-cased words of ``text`` that are not stopwords, in order."""
    words: list[str] = []
    for word in WORD.findall(text.lower()):
        if word not in STOPWORDS and word not in words:
            words.append(word)
    return words[:limit]


def fts_query(text: str | Sequence[str]) -> str | None:
    """An FTS5 OR-query of the distinct content words of ``text`` (None if there are none).

    ``text`` may also be the word list itself (already from :func:`content_words`).
    """
    words = content_words(text) if isinstance(text, str) else list(text)
    if not words:
        return None
    return " OR ".join(f'"{w}"' for w in words)


# Timestamps are stored rounded to microseconds, the resolution of datetime, so
# that a memory's own created_at (as a datetime) finds it again in since/until.
TIME_EPSILON = 5e-7


def now() -> float:
    return round(time.time(), 6)


def _hash_name(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:24]


def json_path(key: str) -> str:
    if not isinstance(key, str) or not key or '"' in key or "\\" in key:
        raise ValidationError(f"metadata filter key must be a plain string, got {key!r}")
    check_unicode(key, "metadata filter key")
    return f'$."{key}"'


def sql_value(value: Any) -> Any:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, str):
        return check_unicode(value, "metadata filter value")
    if isinstance(value, int):
        return check_int(value, "metadata filter value")
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise ValidationError(f"metadata filter value {value} is not a finite number")
        return value
    if value is None:
        return value
    raise ValidationError(
        f"metadata filter values must be strings, numbers or booleans, got {type(value).__name__}"
    )


def scoped_hash(namespace: str, text_hash: str) -> str:
    """The embedding-cache key of a text in one namespace (caches are never shared:
    a hit would tell a tenant, by its speed, what another tenant asked)."""
    return hashlib.sha256(f"{namespace}\x00{text_hash}".encode()).hexdigest()


def filter_sql(filters: MemoryFilter | None, prefix: str = "") -> tuple[list[str], list[Any]]:
    """WHERE clauses (ANDed) and their arguments for a :class:`MemoryFilter`.

    ``prefix`` qualifies the columns (e.g. ``"m."``). Timestamps compare with the same
    microsecond slack as ``list`` so that a memory's own timestamp finds it again.
    """
    where: list[str] = []
    args: list[Any] = []
    if filters is None:
        return where, args
    if filters.source:
        where.append(f"{prefix}source = ?")
        args.append(filters.source)
    if filters.since is not None:
        where.append(f"{prefix}timestamp >= ?")
        args.append(filters.since - TIME_EPSILON)
    if filters.until is not None:
        where.append(f"{prefix}timestamp < ?")
        args.append(filters.until - TIME_EPSILON)
    if filters.thread_id is not None:
        where.append(f"{prefix}thread_id = ?")
        args.append(filters.thread_id)
    for key, value in (filters.metadata or {}).items():
        path = json_path(key)
        if value is None:
            where.append(f"json_type({prefix}metadata, ?) = 'null'")
            args.append(path)
        elif isinstance(value, bool):
            # JSON true/false, never the numbers 1/0
            where.append(f"json_type({prefix}metadata, ?) = ?")
            args += [path, "true" if value else "false"]
        elif isinstance(value, (int, float)):
            # numbers equal numbers (1 == 1.0), never JSON true/false
            where.append(
                f"json_extract({prefix}metadata, ?) = ? "
                f"AND json_type({prefix}metadata, ?) IN ('integer', 'real')"
            )
            args += [path, sql_value(value), path]
        else:
            where.append(f"json_extract({prefix}metadata, ?) = ?")
            args += [path, sql_value(value)]
    return where, args


def file_name(namespace: str) -> str:
    """A file-system-safe name for a namespace, one per namespace (injective).

    Plain names are used as they are; any other name is hashed to ``h-<hash>``. A
    plain name that itself starts with ``h-`` is hashed too, so that a namespace
    literally named like another's hash cannot share its files (instructions, index).
    """
    if SAFE_NAME.match(namespace) and not namespace.startswith("h-"):
        return namespace
    return "h-" + _hash_name(namespace)
