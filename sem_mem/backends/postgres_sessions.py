"""Chat sessions of the PostgreSQL store (tables of migration 6, revisions of 8).

Sessions are not memories: writing one does not take the ``seq`` row lock, so chat
turns never wait for a large ``remember_batch``. Every process on the same database
sees the same sessions.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from ..errors import SessionConflictError, ValidationError
from .base import ChatSessionRecord
from .rows import SESSION_COLUMNS, session_from_row

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

__all__ = ["PostgresSessionsMixin"]


class PostgresSessionsMixin:
    """The chat-session methods of :class:`~sem_mem.backends.postgres.PostgresBackend`."""

    if TYPE_CHECKING:  # provided by PostgresBackend

        def _conn(self) -> AbstractContextManager[Any]: ...

    def save_chat_session(self, namespace: str, record: ChatSessionRecord) -> int:
        state = json.dumps(record.state, ensure_ascii=False)
        if "\\u0000" in state:
            raise ValidationError(
                "the chat session holds a NUL character, which PostgreSQL cannot store"
            )
        with self._conn() as conn, conn.transaction():
            if record.revision == 0:  # a new session: only if no one created it meanwhile
                written = conn.execute(
                    f"INSERT INTO chat_sessions (namespace, {SESSION_COLUMNS}) "
                    "VALUES (%s, %s, %s, %s::jsonb, %s, %s, 1) "
                    "ON CONFLICT (namespace, id) DO NOTHING",
                    (
                        namespace,
                        record.id,
                        record.title,
                        state,
                        record.created_at,
                        record.updated_at,
                    ),
                ).rowcount
            else:
                # compare-and-set: under READ COMMITTED a concurrent save that committed
                # first makes this row's revision differ when the UPDATE re-checks it
                written = conn.execute(
                    "UPDATE chat_sessions SET title = %s, state = %s::jsonb, updated_at = %s, "
                    "revision = revision + 1 "
                    "WHERE namespace = %s AND id = %s AND revision = %s",
                    (record.title, state, record.updated_at, namespace, record.id, record.revision),
                ).rowcount
            if written != 1:  # raised inside the transaction: nothing is written
                raise SessionConflictError(
                    f"chat session {record.id!r} of namespace {namespace!r} is no longer at "
                    f"revision {record.revision}: it was saved or deleted since it was read"
                )
            if record.response_id:
                conn.execute(
                    "INSERT INTO chat_responses (namespace, response_id, session_id) "
                    "VALUES (%s, %s, %s) ON CONFLICT (namespace, response_id) "
                    "DO UPDATE SET session_id = excluded.session_id",
                    (namespace, record.response_id, record.id),
                )
        return record.revision + 1

    def get_chat_session(self, namespace: str, session_id: str) -> ChatSessionRecord | None:
        with self._conn() as conn:
            row = conn.execute(
                f"SELECT {SESSION_COLUMNS} FROM chat_sessions WHERE namespace = %s AND id = %s",
                (namespace, session_id),
            ).fetchone()
        return session_from_row(row) if row else None

    def list_chat_sessions(
        self, namespace: str, *, limit: int = 50, offset: int = 0
    ) -> list[ChatSessionRecord]:
        with self._conn() as conn:
            rows = conn.execute(
                f"SELECT {SESSION_COLUMNS} FROM chat_sessions WHERE namespace = %s "
                "ORDER BY updated_at DESC, id LIMIT %s OFFSET %s",
                (namespace, limit, offset),
            ).fetchall()
        return [session_from_row(r) for r in rows]

    def delete_chat_session(self, namespace: str, session_id: str) -> bool:
        with self._conn() as conn, conn.transaction():
            conn.execute(
                "DELETE FROM chat_responses WHERE namespace = %s AND session_id = %s",
                (namespace, session_id),
            )
            deleted = conn.execute(
                "DELETE FROM chat_sessions WHERE namespace = %s AND id = %s",
                (namespace, session_id),
            ).rowcount
        return bool(deleted)

    def chat_session_of_response(self, namespace: str, response_id: str) -> str | None:
        with self._conn() as conn:
            row = conn.execute(
                "SELECT session_id FROM chat_responses WHERE namespace = %s AND response_id = %s",
                (namespace, response_id),
            ).fetchone()
        return row[0] if row else None

    def chat_session_namespaces(self) -> list[str]:
        with self._conn() as conn:
            rows = conn.execute(
                "SELECT DISTINCT namespace FROM chat_sessions ORDER BY namespace"
            ).fetchall()
        return [r[0] for r in rows]

    def chat_response_ids(self, namespace: str, session_id: str) -> list[str]:
        with self._conn() as conn:
            rows = conn.execute(
                "SELECT response_id FROM chat_responses WHERE namespace = %s "
                "AND session_id = %s ORDER BY response_id",
                (namespace, session_id),
            ).fetchall()
        return [r[0] for r in rows]

    # a memory-id lookup that, like the sessions, is a small addition to the backend
    def ids_with_prefix(self, namespace: str, prefix: str, *, limit: int = 2) -> list[str]:
        if not prefix:
            return []
        # starts_with, not a range: under a non-C collation a range compares differently
        with self._conn() as conn:
            rows = conn.execute(
                "SELECT id FROM memories WHERE namespace = %s AND starts_with(id, %s) "
                "ORDER BY id LIMIT %s",
                (namespace, prefix, limit),
            ).fetchall()
        return [r[0] for r in rows]
