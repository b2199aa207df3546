"""Chat sessions of the embedded store (tables of migration 5, revisions of 7).

Sessions are not memories: writing one bumps no change sequence and touches no index.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from ..errors import SessionConflictError, StorageError
from .base import ChatSessionRecord
from .rows import SESSION_COLUMNS, session_from_row

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

    from .store_lock import StoreLock

__all__ = ["SQLiteSessionsMixin"]

_T = TypeVar("_T")


def _conflict(namespace: str, record: ChatSessionRecord) -> SessionConflictError:
    return SessionConflictError(
        f"chat session {record.id!r} of namespace {namespace!r} is no longer at revision "
        f"{record.revision}: it was saved or deleted since it was read"
    )


class SQLiteSessionsMixin:
    """The chat-session methods of :class:`~sem_mem.backends.sqlite.SQLiteBackend`."""

    _conn: sqlite3.Connection
    _lock: StoreLock
    _file_lock: Any

    if TYPE_CHECKING:  # provided by SQLiteBackend

        def _read(self) -> AbstractContextManager[sqlite3.Connection]: ...
        def _check_open(self) -> None: ...

    def _session_write(self, write: Callable[[sqlite3.Connection], _T]) -> _T:
        """Run ``write`` in one transaction (rolled back if it raises)."""
        with self._lock:
            self._check_open()
            with self._file_lock:
                try:
                    self._conn.execute("BEGIN IMMEDIATE")
                    result = write(self._conn)
                    self._conn.execute("COMMIT")
                except BaseException as exc:
                    try:
                        self._conn.execute("ROLLBACK")
                    except sqlite3.Error:
                        pass
                    if isinstance(exc, sqlite3.Error):
                        raise StorageError(f"cannot write the chat session: {exc}") from exc
                    raise
        return result

    def save_chat_session(self, namespace: str, record: ChatSessionRecord) -> int:
        state = json.dumps(record.state, ensure_ascii=False)

        def write(conn: sqlite3.Connection) -> int:
            if record.revision == 0:  # a new session: only if no one created it meanwhile
                written = conn.execute(
                    f"INSERT INTO chat_sessions (namespace, {SESSION_COLUMNS}) "
                    "VALUES (?, ?, ?, ?, ?, ?, 1) ON CONFLICT (namespace, id) DO NOTHING",
                    (
                        namespace,
                        record.id,
                        record.title,
                        state,
                        record.created_at,
                        record.updated_at,
                    ),
                ).rowcount
            else:  # compare-and-set: only over the revision this record was read at
                written = conn.execute(
                    "UPDATE chat_sessions SET title = ?, state = ?, updated_at = ?, "
                    "revision = revision + 1 WHERE namespace = ? AND id = ? AND revision = ?",
                    (record.title, state, record.updated_at, namespace, record.id, record.revision),
                ).rowcount
            if written != 1:
                raise _conflict(namespace, record)
            if record.response_id:
                conn.execute(
                    "INSERT OR REPLACE INTO chat_responses (namespace, response_id, session_id) "
                    "VALUES (?, ?, ?)",
                    (namespace, record.response_id, record.id),
                )
            return record.revision + 1

        return self._session_write(write)

    def get_chat_session(self, namespace: str, session_id: str) -> ChatSessionRecord | None:
        with self._read() as conn:
            row = conn.execute(
                f"SELECT {SESSION_COLUMNS} FROM chat_sessions WHERE namespace = ? AND id = ?",
                (namespace, session_id),
            ).fetchone()
        return session_from_row(row) if row else None

    def list_chat_sessions(
        self, namespace: str, *, limit: int = 50, offset: int = 0
    ) -> list[ChatSessionRecord]:
        with self._read() as conn:
            rows = conn.execute(
                f"SELECT {SESSION_COLUMNS} FROM chat_sessions WHERE namespace = ? "
                "ORDER BY updated_at DESC, id LIMIT ? OFFSET ?",
                (namespace, limit, offset),
            ).fetchall()
        return [session_from_row(r) for r in rows]

    def delete_chat_session(self, namespace: str, session_id: str) -> bool:
        def delete(conn: sqlite3.Connection) -> bool:
            conn.execute(
                "DELETE FROM chat_responses WHERE namespace = ? AND session_id = ?",
                (namespace, session_id),
            )
            return bool(
                conn.execute(
                    "DELETE FROM chat_sessions WHERE namespace = ? AND id = ?",
                    (namespace, session_id),
                ).rowcount
            )

        return self._session_write(delete)

    def chat_session_of_response(self, namespace: str, response_id: str) -> str | None:
        with self._read() as conn:
            row = conn.execute(
                "SELECT session_id FROM chat_responses WHERE namespace = ? AND response_id = ?",
                (namespace, response_id),
            ).fetchone()
        return row[0] if row else None

    def chat_session_namespaces(self) -> list[str]:
        with self._read() as conn:
            rows = conn.execute(
                "SELECT DISTINCT namespace FROM chat_sessions ORDER BY namespace"
            ).fetchall()
        return [r[0] for r in rows]

    def chat_response_ids(self, namespace: str, session_id: str) -> list[str]:
        with self._read() as conn:
            rows = conn.execute(
                "SELECT response_id FROM chat_responses WHERE namespace = ? AND session_id = ? "
                "ORDER BY response_id",
                (namespace, session_id),
            ).fetchall()
        return [r[0] for r in rows]

    # a memory-id lookup that, like the sessions, is a small addition to the backend
    def ids_with_prefix(self, namespace: str, prefix: str, *, limit: int = 2) -> list[str]:
        if not prefix:
            return []
        # a range over the unique index on id: no scan, whatever the prefix holds
        with self._read() as conn:
            rows = conn.execute(
                "SELECT id FROM memories WHERE id >= ? AND id < ? AND namespace = ? "
                "ORDER BY id LIMIT ?",
                (prefix, prefix + "\U0010ffff", namespace, limit),
            ).fetchall()
        return [r[0] for r in rows]
