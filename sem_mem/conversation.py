"""The one conversation engine: a thread, chat commands, continuation, thread saving.

:class:`ChatSession` is the only owner of a conversation. Every edge (``MemoryChat``,
the CLI chat, both UI modes, the server's ``/chat`` and ``/threads/save``) builds one
and translates its :class:`ChatReply`; none keeps a thread or parses commands itself.

* **The thread**: the messages so far, oldest first (:attr:`ChatSession.thread`).
* **Chat commands**: ``remember: <text>`` stores a fact, ``instruct: <text>`` adds a
  persistent instruction; :func:`parse_command` is the one parser.
* **Continuation per provider**: a provider that keeps server-side state (the
  Responses API) gets ``previous_response_id`` and only the new message; a stateless
  one (Chat Completions) gets the whole thread. The session keeps both, so switching
  provider or losing the provider's state (an unknown id is answered by resending the
  thread, see :func:`sem_mem.chat.chat_with_memory`) loses nothing.
* **Thread saving**: :meth:`ChatSession.save_thread` stores the turns not saved before
  through :meth:`SemanticMemory.remember_conversation` (one memory per turn, at its
  position in the thread), so saving again never copies a turn.
* **Persistence**: a session with an ``id`` can be kept in the store
  (:meth:`ChatSession.persist`, :meth:`ChatSession.load`): the server and ``sem-mem chat
  --session NAME`` continue it after a restart or from another process.
* **Concurrent writers**: a save is a compare-and-set on the stored revision, so two
  processes (or server replicas) that answer in the same session at once cannot
  overwrite each other's turns: the later save reads the session again and puts its
  new messages after the ones saved meanwhile (:meth:`ChatSession.persist`).

Options travel as one :class:`ChatOptions` object.
"""

from __future__ import annotations

import re
import time
import uuid
from dataclasses import dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any

from .chat import chat_with_memory
from .errors import NotFoundError, SessionConflictError, ValidationError
from .llm.base import ChatMessage
from .types import Recollection

if TYPE_CHECKING:
    from .backends.base import ChatSessionRecord
    from .core import SemanticMemory

__all__ = [
    "MAX_SAVE_ATTEMPTS",
    "MAX_SESSION_ID_CHARS",
    "SPEAKERS",
    "ChatOptions",
    "ChatReply",
    "ChatSession",
    "parse_command",
]

_COMMAND = re.compile(r"^\s*(remember|instruct)\s*:\s*(.*)$", re.IGNORECASE | re.DOTALL)
#: how a role is written as the speaker of a saved turn ("User: ...", "Assistant: ...")
SPEAKERS = {"user": "User", "assistant": "Assistant"}
MAX_SESSION_ID_CHARS = 200
#: saves of one :meth:`ChatSession.persist` before it gives up (each failed one means
#: another writer's save succeeded, so only a session saved this often at once fails)
MAX_SAVE_ATTEMPTS = 50
_SESSION_ID = re.compile(r"^[\w.:@+-]{1,200}$")


def parse_command(text: str) -> tuple[str, str] | None:
    """``("remember" | "instruct", argument)`` for a chat command, else ``None``."""
    match = _COMMAND.match(text)
    return (match.group(1).lower(), match.group(2).strip()) if match else None


def check_session_id(session_id: str) -> str:
    """A session id: 1-200 letters, digits or ``_ . : @ + -`` (ValidationError otherwise)."""
    if not isinstance(session_id, str) or not _SESSION_ID.match(session_id):
        raise ValidationError(
            f"session_id must be 1-{MAX_SESSION_ID_CHARS} letters, digits or _ . : @ + -, "
            f"got {session_id!r}"
        )
    return session_id


@dataclass(frozen=True)
class ChatOptions:
    """How each turn is answered; ``None`` means the memory's settings.

    ``limit`` memories are retrieved per turn, with query expansion when
    ``expand_query`` and a chat model is configured.
    """

    model: str | None = None
    reasoning_effort: str | None = None
    temperature: float | None = None
    web_search: bool | None = None
    auto_remember: bool | None = None
    expand_query: bool = True
    limit: int = 5

    def with_changes(self, **changes: Any) -> ChatOptions:
        """A copy with the changes that are not ``None``."""
        known = {f.name for f in fields(self)}
        unknown = set(changes) - known
        if unknown:
            raise ValidationError(f"unknown chat option(s): {', '.join(sorted(unknown))}")
        return replace(self, **{k: v for k, v in changes.items() if v is not None})


@dataclass(frozen=True)
class ChatReply:
    """One turn: the answer (or a command's confirmation) and what happened."""

    text: str
    response_id: str | None = None
    memories: list[Recollection] = field(default_factory=list)
    logs: list[str] = field(default_factory=list)
    #: ``"remember"`` or ``"instruct"`` when the message was a command
    command: str | None = None
    #: the id stored by ``remember:``
    memory_id: str | None = None


class ChatSession:
    """A conversation with memory. ``send`` messages; ``save_thread`` stores the turns.

    ``session_id`` names the session when it is kept in the store (see
    :meth:`persist`); ``thread_id`` is the thread its turns are saved under (default:
    the session id, or a new id). ``title`` is free text for listings.
    """

    def __init__(
        self,
        memory: SemanticMemory,
        options: ChatOptions | None = None,
        *,
        session_id: str | None = None,
        thread_id: str | None = None,
        title: str = "",
    ) -> None:
        self.memory = memory
        self.options = options or ChatOptions()
        self.id = check_session_id(session_id) if session_id is not None else None
        self.thread_id = thread_id or session_id or uuid.uuid4().hex
        self.title = title
        self.thread: list[ChatMessage] = []
        self.previous_response_id: str | None = None
        #: the thread's messages before this index are saved
        self.saved_upto = 0
        self.created_at = time.time()
        self.updated_at = self.created_at
        self.last_memories: list[Recollection] = []
        self.last_logs: list[str] = []
        #: the stored revision this session was read or last saved at (0: never stored)
        self.revision = 0
        # what the stored revision held: the thread's first messages, its thread id and
        # title (the messages after ``_stored_len`` are this session's own, unsaved)
        self._stored_len = 0
        self._stored_thread_id = self.thread_id
        self._stored_title = title
        # the provider's id of this session's latest answer, recorded on save so that a
        # client holding it can continue the session (kept when a merge drops the chain)
        self._answer_id: str | None = None
        # kept in the store (loaded, or persisted once): other writers may store
        # messages in it, so a message's place is known only once it is stored
        self._kept = False

    def __repr__(self) -> str:
        return (
            f"ChatSession(id={self.id!r}, thread_id={self.thread_id!r}, "
            f"messages={len(self.thread)})"
        )

    # ------------------------------------------------------------------ turns

    def send(self, text: str, options: ChatOptions | None = None) -> ChatReply:
        """Answer one message, or run a ``remember:``/``instruct:`` command.

        Commands are answered with a confirmation, without calling the model, and are
        not part of the thread. In memory-only mode the answer is a notice plus the
        relevant memories, and only the user's message joins the thread.
        """
        command = parse_command(text)
        if command is not None:
            reply = self._command(*command)
        else:
            reply = self._answer(text, options or self.options)
        self.last_memories = reply.memories
        self.last_logs = reply.logs
        self.updated_at = time.time()
        return reply

    def _command(self, name: str, argument: str) -> ChatReply:
        if not argument:
            raise ValidationError(f"{name}: needs some text after the colon")
        if name == "remember":
            memory_id = self.memory.remember(argument)
            return ChatReply(
                f"Remembered: {argument}",
                command="remember",
                memory_id=memory_id,
                logs=[f"remember: stored {memory_id}"],
            )
        self.memory.add_instruction(argument)
        return ChatReply(
            f"Instruction added: {argument}",
            command="instruct",
            logs=["instruct: instruction added"],
        )

    def _answer(self, text: str, options: ChatOptions) -> ChatReply:
        # the whole thread always goes along; chat_with_memory sends only the new message
        # with previous_response_id where the provider keeps state (the Responses API)
        response, response_id, memories, logs = chat_with_memory(
            self.memory,
            text,
            previous_response_id=self.previous_response_id,
            thread=self.thread,
            model=options.model,
            reasoning_effort=options.reasoning_effort,
            temperature=options.temperature,
            web_search=options.web_search,
            auto_remember=options.auto_remember,
            expand_query=options.expand_query,
            limit=options.limit,
        )
        self.thread.append(ChatMessage("user", text.strip()))
        if self.memory.chat_model is not None:
            self.thread.append(ChatMessage("assistant", response))
            self.previous_response_id = response_id
            self._answer_id = response_id
        return ChatReply(response, response_id, memories, logs)

    # ------------------------------------------------------------------ the thread

    def extend(self, messages: list[ChatMessage]) -> None:
        """Append messages said elsewhere (an imported or client-held conversation)."""
        self.thread.extend(messages)
        self.previous_response_id = None  # the provider has not seen them
        self.updated_at = time.time()

    def save_thread(self) -> list[str]:
        """Store the turns not saved before; returns their ids, in order.

        Each turn becomes one memory ``"User: ..."``/``"Assistant: ..."`` with
        ``source="thread"``, in thread :attr:`thread_id` at its position in the
        conversation (:meth:`SemanticMemory.remember_conversation`). Saving again stores
        only what was said since; nothing is copied.

        A session kept in the store (:meth:`load`, :meth:`persist`) with messages not
        stored yet is persisted first: until then another process may store its own
        messages at their places, and the two saves would share positions.
        """
        if self._kept and len(self.thread) > self._stored_len:
            self.persist()
        start = self.saved_upto
        turns = [
            {"role": SPEAKERS.get(m.role, m.role), "text": m.content, "position": start + i}
            for i, m in enumerate(self.thread[start:])
            if m.content.strip()
        ]
        ids = self.memory.remember_conversation(turns, thread_id=self.thread_id) if turns else []
        self.saved_upto = len(self.thread)
        self.updated_at = time.time()
        return ids

    def new_thread(self) -> None:
        """Start a fresh conversation; the memory and instructions stay."""
        self.thread = []
        self.thread_id = uuid.uuid4().hex
        self.previous_response_id = None
        self.saved_upto = 0
        self.last_memories = []
        self.last_logs = []
        self.updated_at = time.time()

    # ------------------------------------------------------------------ persistence

    def state(self) -> dict[str, Any]:
        """The session as JSON-ready data (what :meth:`persist` stores)."""
        return {
            "thread_id": self.thread_id,
            "messages": [{"role": m.role, "content": m.content} for m in self.thread],
            "previous_response_id": self.previous_response_id,
            "saved_upto": self.saved_upto,
        }

    def to_dict(self) -> dict[str, Any]:
        """What ``GET /sessions/{id}`` shows."""
        return {
            "id": self.id,
            "title": self.title,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            **self.state(),
        }

    def persist(self) -> None:
        """Keep the session in the store under its namespace (needs an ``id``).

        The save is a compare-and-set on the revision this session was read at, so it
        never overwrites what another process or server replica saved meanwhile. When
        one did, the stored session is read again and this session's new messages are
        put after the ones saved meanwhile (:meth:`_rebase`), then saved again. The
        session object then holds the merged thread.

        What a user sees after two turns raced: both turns, in the order their saves
        committed, each question next to its answer. Each answer was written without
        the other turn (both were in flight at once). Because the provider never saw
        the two together, the merged session drops ``previous_response_id``: its next
        turn sends the whole thread once, and chaining resumes from that answer. The
        response id of every answer still leads back to this session.
        """
        if self.id is None:
            raise ValidationError("only a session with a session_id can be kept in the store")
        backend, namespace = self.memory.backend, self.memory.namespace
        for _ in range(MAX_SAVE_ATTEMPTS):
            try:
                self.revision = backend.save_chat_session(namespace, self._record())
            except SessionConflictError:
                self._rebase(backend.get_chat_session(namespace, self.id))
                continue
            self._stored_len = len(self.thread)
            self._stored_thread_id = self.thread_id
            self._stored_title = self.title
            self._kept = True
            return
        raise SessionConflictError(
            f"chat session {self.id!r} was saved by others {MAX_SAVE_ATTEMPTS} times while "
            "this turn was being saved; send it again"
        )

    def _record(self) -> ChatSessionRecord:
        from .backends.base import ChatSessionRecord

        return ChatSessionRecord(
            id=str(self.id),
            title=self.title,
            state=self.state(),
            created_at=self.created_at,
            updated_at=self.updated_at,
            response_id=self._answer_id,
            revision=self.revision,
        )

    def _rebase(self, stored: ChatSessionRecord | None) -> None:
        """Put this session's unsaved changes on ``stored``, the version another writer
        saved since this one was read (``None``: it deleted the session).

        As if this save came after the other one:

        * new messages (after the stored prefix this session read) follow the messages
          stored now; a thread started here with :meth:`new_thread` replaces the stored
          one, as a reset saved later would;
        * a session deleted meanwhile starts again with only the new messages;
        * ``saved_upto`` keeps what either writer saved of the common prefix;
        * ``previous_response_id`` stays only when the provider's chain still holds the
          whole thread (one side added no messages), otherwise it is dropped, so the
          next turn sends the whole merged thread;
        * the title is this session's if it changed it, else the stored one.
        """
        mine = self.thread[self._stored_len :]
        reset_here = self.thread_id != self._stored_thread_id
        if stored is None:
            if not reset_here:
                self.thread = mine
                self.saved_upto = 0
                self.previous_response_id = None
            self.revision = 0
            self._stored_len = 0
            self._stored_thread_id = self.thread_id
            return
        theirs = type(self).from_record(self.memory, stored)
        if not reset_here:
            same_thread = theirs.thread_id == self._stored_thread_id
            they_added = not same_thread or len(theirs.thread) != self._stored_len
            # what either side stored of the prefix both read; turns of ``mine`` saved
            # here (save_thread before persist) move to new positions, so they count as
            # unsaved and a later save_thread stores them at their place in the thread
            saved = theirs.saved_upto
            if same_thread:
                saved = max(saved, min(self.saved_upto, self._stored_len))
            if not mine:
                self.previous_response_id = theirs.previous_response_id
            elif they_added:
                self.previous_response_id = None
            self.thread = theirs.thread + mine
            self.thread_id = theirs.thread_id
            self.saved_upto = min(saved, len(theirs.thread))
        if self.title == self._stored_title:
            self.title = theirs.title
        self.created_at = theirs.created_at
        self.revision = theirs.revision
        self._stored_len = len(theirs.thread)
        self._stored_thread_id = theirs.thread_id
        self._stored_title = theirs.title

    @classmethod
    def from_record(
        cls, memory: SemanticMemory, record: ChatSessionRecord, options: ChatOptions | None = None
    ) -> ChatSession:
        """A session rebuilt from what :meth:`persist` stored."""
        state = record.state
        session = cls(
            memory,
            options,
            session_id=record.id,
            thread_id=str(state.get("thread_id") or record.id),
            title=record.title,
        )
        session.thread = [
            ChatMessage(m["role"], str(m["content"]))
            for m in state.get("messages", [])
            if m.get("role") in SPEAKERS
        ]
        session.previous_response_id = state.get("previous_response_id")
        session.saved_upto = min(int(state.get("saved_upto", 0)), len(session.thread))
        session.created_at = record.created_at
        session.updated_at = record.updated_at
        session.revision = record.revision
        session._stored_len = len(session.thread)
        return session

    @classmethod
    def load(
        cls,
        memory: SemanticMemory,
        session_id: str,
        options: ChatOptions | None = None,
        *,
        create: bool = False,
        title: str = "",
    ) -> ChatSession:
        """The stored session ``session_id`` of the memory's namespace.

        With ``create`` a missing session is started (not stored until :meth:`persist`);
        otherwise a missing one is a :class:`~sem_mem.errors.NotFoundError`.
        """
        check_session_id(session_id)
        record = memory.backend.get_chat_session(memory.namespace, session_id)
        if record is not None:
            session = cls.from_record(memory, record, options)
        elif create:
            session = cls(memory, options, session_id=session_id, title=title)
        else:
            raise NotFoundError(f"no chat session {session_id!r} in this namespace")
        session._kept = True
        return session

    @classmethod
    def continuing(
        cls, memory: SemanticMemory, previous_response_id: str, options: ChatOptions | None = None
    ) -> ChatSession:
        """The stored session whose last answer had ``previous_response_id``.

        A response id that no session of this namespace produced is refused
        (:class:`~sem_mem.errors.ValidationError` naming it): a client cannot continue a
        conversation held by the provider for someone else.
        """
        session_id = memory.backend.chat_session_of_response(memory.namespace, previous_response_id)
        if session_id is None:
            raise ValidationError(
                f"previous_response_id {previous_response_id!r} did not come from a chat "
                "session of this namespace; continue with session_id instead"
            )
        return cls.load(memory, session_id, options)
