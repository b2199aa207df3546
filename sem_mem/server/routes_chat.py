"""Chat, sessions and conversations over HTTP: each route translates to the one
conversation engine (:class:`sem_mem.conversation.ChatSession`).

``POST /chat`` continues a session kept in the store (``session_id``), or the session
that produced a ``previous_response_id`` of this namespace, or starts a new one, and
returns its ``session_id``. Because sessions live in the store, a restarted server or
another server process on the same PostgreSQL continues them.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import uuid
from typing import Any

from fastapi import APIRouter, Query, Request, Response

from ..conversation import ChatOptions, ChatSession
from ..core import SemanticMemory
from ..errors import NotFoundError, ValidationError
from ..llm.base import ChatMessage
from .auth import Memory, namespace_of
from .routes import check_batch
from .schemas import (
    ChatIn,
    ChatOut,
    ConversationIn,
    ConversationOut,
    SessionOut,
    SessionPage,
    ThreadIn,
    ThreadOut,
)

__all__ = ["router"]

router = APIRouter()


_LOCKS_GUARD = threading.Lock()


def _session_lock(request: Request, namespace: str, session_id: str | None) -> Any:
    """The lock of one session in this app (a no-op context for a new session)."""
    if session_id is None:
        return contextlib.nullcontext()
    state = request.app.state
    with _LOCKS_GUARD:
        locks: dict[tuple[str, str], threading.Lock] = getattr(state, "session_locks", None) or {}
        state.session_locks = locks
        return locks.setdefault((namespace, session_id), threading.Lock())


def _session_for(memory: SemanticMemory, body: ChatIn, options: ChatOptions) -> ChatSession:
    if body.previous_response_id:
        session = ChatSession.continuing(memory, body.previous_response_id, options)
        if body.session_id and body.session_id != session.id:
            raise ValidationError(
                f"previous_response_id {body.previous_response_id!r} belongs to another "
                f"session than session_id {body.session_id!r}"
            )
        return session
    if body.session_id:
        return ChatSession.load(memory, body.session_id, options, create=True, title=body.title)
    return ChatSession(memory, options, session_id=uuid.uuid4().hex, title=body.title)


@router.post("/chat", response_model=ChatOut, tags=["chat"])
async def chat(body: ChatIn, memory: Memory, request: Request) -> dict[str, Any]:
    """Answer with retrieved memories as context, continuing a session kept in the store.

    Give ``session_id`` to continue (or start) a named session; without it a new
    session is started and its id returned. A ``previous_response_id`` is accepted only
    when it came from a session of this namespace, which it then continues.
    ``remember: <text>`` and ``instruct: <text>`` work as in the chat UI.
    """
    prefs = request.app.state.registry.prefs(namespace_of(request))
    options = ChatOptions(
        model=body.model or prefs.model,
        reasoning_effort=body.reasoning_effort or prefs.reasoning_effort,
        temperature=body.temperature,
        web_search=body.web_search,
        auto_remember=body.auto_remember,
    )

    def run() -> tuple[ChatSession, Any]:
        target = body.session_id
        if body.previous_response_id:
            target = ChatSession.continuing(memory.sync, body.previous_response_id).id
        # turns of one session run one at a time in this process, so a double submit
        # sees the turn before it; across processes and replicas, persist() merges
        # instead (a compare-and-set save never overwrites a turn it did not read)
        with _session_lock(request, memory.namespace, target):
            session = _session_for(memory.sync, body, options)
            if body.title and not session.title:
                session.title = body.title
            reply = session.send(body.query)
            session.persist()
        return session, reply

    session, reply = await asyncio.to_thread(run)
    return {
        "response": reply.text,
        "response_id": reply.response_id,
        "session_id": session.id,
        "command": reply.command,
        "memory_id": reply.memory_id,
        "memories": [m.to_dict() for m in reply.memories],
        "logs": list(reply.logs),
    }


def _summary(session: ChatSession) -> dict[str, Any]:
    return {
        "id": session.id,
        "title": session.title,
        "created_at": session.created_at,
        "updated_at": session.updated_at,
        "thread_id": session.thread_id,
        "messages": len(session.thread),
        "saved_upto": session.saved_upto,
    }


@router.get("/sessions", response_model=SessionPage, tags=["chat"])
async def list_sessions(
    memory: Memory,
    limit: int = Query(50, ge=1, le=1000),
    offset: int = Query(0, ge=0),
) -> dict[str, Any]:
    """This namespace's chat sessions, most recently used first."""

    def run() -> list[dict[str, Any]]:
        records = memory.sync.backend.list_chat_sessions(
            memory.namespace, limit=limit, offset=offset
        )
        return [_summary(ChatSession.from_record(memory.sync, r)) for r in records]

    return {"sessions": await asyncio.to_thread(run), "limit": limit, "offset": offset}


@router.get("/sessions/{session_id}", response_model=SessionOut, tags=["chat"])
async def get_session(session_id: str, memory: Memory) -> dict[str, Any]:
    """One session with its messages."""
    session = await asyncio.to_thread(ChatSession.load, memory.sync, session_id)
    return session.to_dict()


@router.delete("/sessions/{session_id}", status_code=204, tags=["chat"])
async def delete_session(session_id: str, memory: Memory) -> Response:
    """Delete a session (the memories saved from it stay)."""
    deleted = await asyncio.to_thread(
        memory.sync.backend.delete_chat_session, memory.namespace, session_id
    )
    if not deleted:
        raise NotFoundError(f"no chat session {session_id!r} in this namespace")
    return Response(status_code=204)


@router.post("/threads/save", response_model=ThreadOut, tags=["memories"])
async def save_thread(body: ThreadIn, memory: Memory, request: Request) -> dict[str, Any]:
    """Save a conversation to L2, one memory per turn, in order.

    With ``session_id``: the turns of that stored session not saved before. With
    ``messages``: those turns, in thread ``title`` (saving the same messages again
    copies nothing; new ones continue the thread).
    """
    if body.session_id is None and not body.messages:
        raise ValidationError("give session_id (a stored chat session) or messages")
    if body.session_id is not None and body.messages:
        raise ValidationError("give session_id or messages, not both")
    check_batch(request, len(body.messages), "the thread")

    def run() -> tuple[str, list[str]]:
        if body.session_id is not None:
            session = ChatSession.load(memory.sync, body.session_id)
            ids = session.save_thread()
            session.persist()
            return session.thread_id, ids
        session = ChatSession(memory.sync, thread_id=body.title or None)
        session.extend([ChatMessage(m.role, m.content) for m in body.messages])
        return session.thread_id, session.save_thread()

    thread_id, ids = await asyncio.to_thread(run)
    return {"ids": ids, "count": len(ids), "thread_id": thread_id}


@router.post("/conversations", response_model=ConversationOut, tags=["memories"])
async def remember_conversation(
    body: ConversationIn, memory: Memory, request: Request
) -> dict[str, Any]:
    """Store a conversation, one memory per turn (``remember_conversation``)."""
    check_batch(request, len(body.turns), "turns")
    thread_id = body.thread_id or uuid.uuid4().hex
    ids = await asyncio.to_thread(
        memory.sync.remember_conversation,
        [turn.model_dump(exclude_none=True) for turn in body.turns],
        thread_id=thread_id,
        timestamp=body.timestamp,
        metadata=body.metadata,
    )
    return {"ids": ids, "count": len(ids), "thread_id": thread_id}
