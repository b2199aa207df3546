"""Encoding and query helpers of the embedded store: vectors, FTS5 queries, filter SQL.

Pure functions shared by the SQLite backend and its index manager; what both backends
share (row mappers, words, time rounding, filter rules) lives in :mod:`.rows`, and is
re-exported here for the SQLite modules.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from .base import MemoryFilter
from .rows import (
    EMBEDDING_AT,
    MEMORY_FIELDS,
    STOPWORDS,
    TIME_EPSILON,
    canonical_json,
    content_words,
    json_path,
    now,
    sql_value,
)
from .rows import memory_from_row as row_to_memory

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
    "sql_value",
]

SAFE_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
MEMORY_COLUMNS = ", ".join(MEMORY_FIELDS)


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


def fts_query(text: str | Sequence[str]) -> str | None:
    """An FTS5 OR-query of the distinct content words of ``text`` (None if there are none).

    ``text`` may also be the word list itself (already from :func:`content_words`).
    """
    words = content_words(text) if isinstance(text, str) else list(text)
    if not words:
        return None
    return " OR ".join(f'"{w}"' for w in words)


def _hash_name(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:24]


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
    """A file-system-safe name for a namespace (hashed when it has other characters)."""
    return namespace if SAFE_NAME.match(namespace) else "h-" + _hash_name(namespace)
