"""Chat sessions of the embedded store (tables of migration 5).

Sessions are not memories: writing one bumps no change sequence and touches no index.
"""

from __future__ import annotations

import json
import sqlite3
from typing import TYPE_CHECKING, Any

from ..errors import StorageError
from .base import ChatSessionRecord
from .rows import SESSION_COLUMNS, session_from_row

if TYPE_CHECKING:
    import threading
    from contextlib import AbstractContextManager

__all__ = ["SQLiteSessionsMixin"]


class SQLiteSessionsMixin:
    """The chat-session methods of :class:`~sem_mem.backends.sqlite.SQLiteBackend`."""

    _conn: sqlite3.Connection
    _lock: threading.RLock
    _file_lock: Any

    if TYPE_CHECKING:  # provided by SQLiteBackend

        def _read(self) -> AbstractContextManager[sqlite3.Connection]: ...
        def _check_open(self) -> None: ...

    def _session_write(self, statements: list[tuple[str, tuple[Any, ...]]]) -> int:
        """Run ``statements`` in one transaction; returns the last one's rowcount."""
        with self._lock:
            self._check_open()
            with self._file_lock:
                try:
                    self._conn.execute("BEGIN IMMEDIATE")
                    count = 0
                    for sql, params in statements:
                        count = self._conn.execute(sql, params).rowcount
                    self._conn.execute("COMMIT")
                except sqlite3.Error as exc:
                    try:
                        self._conn.execute("ROLLBACK")
                    except sqlite3.Error:
                        pass
                    raise StorageError(f"cannot write the chat session: {exc}") from exc
        return count

    def save_chat_session(self, namespace: str, record: ChatSessionRecord) -> None:
        statements: list[tuple[str, tuple[Any, ...]]] = [
            (
                f"INSERT INTO chat_sessions (namespace, {SESSION_COLUMNS}) "
                "VALUES (?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (namespace, id) DO UPDATE SET title = excluded.title, "
                "state = excluded.state, updated_at = excluded.updated_at",
                (
                    namespace,
                    record.id,
                    record.title,
                    json.dumps(record.state, ensure_ascii=False),
                    record.created_at,
                    record.updated_at,
                ),
            )
        ]
        if record.response_id:
            statements.append(
                (
                    "INSERT OR REPLACE INTO chat_responses (namespace, response_id, session_id) "
                    "VALUES (?, ?, ?)",
                    (namespace, record.response_id, record.id),
                )
            )
        self._session_write(statements)

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
        return bool(
            self._session_write(
                [
                    (
                        "DELETE FROM chat_responses WHERE namespace = ? AND session_id = ?",
                        (namespace, session_id),
                    ),
                    (
                        "DELETE FROM chat_sessions WHERE namespace = ? AND id = ?",
                        (namespace, session_id),
                    ),
                ]
            )
        )

    def chat_session_of_response(self, namespace: str, response_id: str) -> str | None:
        with self._read() as conn:
            row = conn.execute(
                "SELECT session_id FROM chat_responses WHERE namespace = ? AND response_id = ?",
                (namespace, response_id),
            ).fetchone()
        return row[0] if row else None

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
