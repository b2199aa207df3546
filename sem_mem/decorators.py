"""Memory-aware agent abstractions: :class:`MemoryChat`, ``@with_memory`` and ``@with_rag``.

``MemoryChat`` is a stateful conversation over a :class:`~sem_mem.SemanticMemory`:
every message goes through :func:`sem_mem.chat.chat_with_memory` (retrieval, query
expansion, persistent instructions, auto-memory) with the local thread and the last
``previous_response_id``. ``remember: <text>`` and ``instruct: <text>`` work as in the
chat UI. The decorators wrap your own LLM function and hand it the retrieved memories
as ``context`` (and, for ``@with_memory``, the persistent ``instructions``)::

    @with_memory(memory)
    def chat(user_input: str, context: str = "", instructions: str = "", **_) -> str:
        return my_llm(f"{instructions}\\n\\n{context}\\n\\nUser: {user_input}")
"""

from __future__ import annotations

import datetime as dt
import functools
import re
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from .chat import chat_with_memory, remember_exchange
from .llm.base import ChatMessage
from .llm.prompts import format_context
from .types import Recollection

if TYPE_CHECKING:
    from .core import SemanticMemory

__all__ = ["THREAD_CHUNK_CHARS", "MemoryChat", "thread_chunks", "with_memory", "with_rag"]

#: saved threads are cut at message boundaries into chunks of about this many characters
THREAD_CHUNK_CHARS = 1500

_COMMAND = re.compile(r"^\s*(remember|instruct)\s*:\s*(.*)$", re.IGNORECASE | re.DOTALL)
_ROLE_LABEL = {"user": "User", "assistant": "Assistant"}

R = TypeVar("R")


def thread_chunks(
    messages: list[ChatMessage], max_chars: int = THREAD_CHUNK_CHARS
) -> list[tuple[int, int, str]]:
    """Cut a thread into ``(first, end, text)`` chunks at message boundaries.

    Messages ``first`` to ``end - 1`` are rendered as ``"User: …"``/``"Assistant: …"``
    lines and packed greedily into chunks of at most ``max_chars`` characters; a
    message longer than that is a chunk on its own (never split mid-message).
    """
    chunks: list[tuple[int, int, str]] = []
    start = 0
    parts: list[str] = []
    size = 0
    for index, message in enumerate(messages):
        text = message.content.strip()
        if not text:
            continue
        line = f"{_ROLE_LABEL.get(message.role, message.role)}: {text}"
        added = len(line) + (2 if parts else 0)
        if parts and size + added > max_chars:
            chunks.append((start, index, "\n\n".join(parts)))
            parts, size = [], 0
            added = len(line)
        if not parts:
            start = index
        parts.append(line)
        size += added
    if parts:
        chunks.append((start, len(messages), "\n\n".join(parts)))
    return chunks


class MemoryChat:
    """A conversation with memory: ``send`` messages, ``remember`` facts, save the thread.

    Options are passed to :func:`~sem_mem.chat.chat_with_memory` on every turn
    (``None`` means the memory's settings). After each ``send``, :attr:`last_memories`
    and :attr:`last_logs` say what was retrieved and what happened.
    """

    def __init__(
        self,
        memory: SemanticMemory,
        *,
        model: str | None = None,
        reasoning_effort: str | None = None,
        temperature: float | None = None,
        web_search: bool | None = None,
        auto_remember: bool | None = None,
        expand_query: bool = True,
        limit: int = 5,
    ) -> None:
        self.memory = memory
        self.model = model
        self.reasoning_effort = reasoning_effort
        self.temperature = temperature
        self.web_search = web_search
        self.auto_remember = auto_remember
        self.expand_query = expand_query
        self.limit = limit
        self.thread: list[ChatMessage] = []
        self.thread_id = uuid.uuid4().hex
        self.previous_response_id: str | None = None
        self.last_memories: list[Recollection] = []
        self.last_logs: list[str] = []
        self._saved: dict[int, str] = {}  # first message index -> id of the saved chunk

    def __repr__(self) -> str:
        return f"MemoryChat(thread_id={self.thread_id!r}, messages={len(self.thread)})"

    def send(self, text: str) -> str:
        """Answer one message (or run a ``remember:``/``instruct:`` command).

        Commands return a confirmation without calling the model. In memory-only
        mode the answer is a notice plus the relevant memories, and only the user's
        message is added to the thread.
        """
        command = _COMMAND.match(text)
        if command:
            return self._command(command.group(1).lower(), command.group(2).strip())
        response, response_id, memories, logs = chat_with_memory(
            self.memory,
            text,
            previous_response_id=self.previous_response_id,
            thread=self.thread,
            model=self.model,
            reasoning_effort=self.reasoning_effort,
            temperature=self.temperature,
            web_search=self.web_search,
            auto_remember=self.auto_remember,
            expand_query=self.expand_query,
            limit=self.limit,
        )
        self.thread.append(ChatMessage("user", text.strip()))
        if self.memory.chat_model is not None:
            self.thread.append(ChatMessage("assistant", response))
            self.previous_response_id = response_id
        self.last_memories = memories
        self.last_logs = logs
        return response

    def _command(self, name: str, argument: str) -> str:
        if name == "remember":
            memory_id = self.remember(argument)
            self.last_logs = [f"remember: stored {memory_id}"]
            return f"Remembered: {argument}"
        self.add_instruction(argument)
        self.last_logs = ["instruct: instruction added"]
        return f"Instruction added: {argument}"

    def remember(self, text: str, metadata: dict[str, Any] | None = None) -> str:
        """Store a fact in long-term memory (``source="manual"``); returns its id."""
        return self.memory.remember(text, metadata)

    def add_instruction(self, text: str) -> None:
        """Add a permanent instruction (applies to every conversation)."""
        self.memory.add_instruction(text)

    def save_thread(self) -> list[str]:
        """Store the conversation in long-term memory; returns the chunk ids, in order.

        Chunks are cut at message boundaries (:func:`thread_chunks`) and stored with
        ``source="thread"`` and metadata ``thread_id``, ``message_start``,
        ``message_end`` (exclusive) and ``date``. Saving again stores only what changed:
        unchanged chunks are refreshed, and a chunk that grew supersedes its old version.
        """
        chunks = thread_chunks(self.thread)
        if not chunks:
            return []
        today = dt.date.today().isoformat()
        metadata = [
            {
                "thread_id": self.thread_id,
                "message_start": first,
                "message_end": end,
                "date": today,
            }
            for first, end, _ in chunks
        ]
        ids = self.memory.remember_batch([text for _, _, text in chunks], metadata, source="thread")
        for (first, _, _), memory_id in zip(chunks, ids, strict=True):
            old = self._saved.get(first)
            if old is not None and old != memory_id:
                self.memory.supersede(old, memory_id, reason="thread saved again")
            self._saved[first] = memory_id
        return ids

    def new_thread(self) -> None:
        """Start a fresh conversation; the memory (and instructions) stay."""
        self.thread = []
        self.thread_id = uuid.uuid4().hex
        self.previous_response_id = None
        self.last_memories = []
        self.last_logs = []
        self._saved = {}


def _retrieval_decorator(
    memory: SemanticMemory,
    *,
    limit: int,
    expand_query: bool,
    with_instructions: bool,
    auto_remember: bool | None,
) -> Callable[[Callable[..., R]], Callable[..., R]]:
    def decorate(fn: Callable[..., R]) -> Callable[..., R]:
        @functools.wraps(fn)
        def wrapper(user_input: str, *args: Any, **kwargs: Any) -> R:
            if "context" not in kwargs:
                found = memory.recall(user_input, limit=limit, expand_query=expand_query)
                kwargs["context"] = format_context(found)
            if with_instructions and "instructions" not in kwargs:
                kwargs["instructions"] = memory.instructions
            result = fn(user_input, *args, **kwargs)
            remember = memory.settings.auto_memory if auto_remember is None else auto_remember
            if remember:
                answer = result if isinstance(result, str) else ""
                remember_exchange(memory, user_input, answer, chat_model=memory.chat_model)
            return result

        return wrapper

    return decorate


def with_memory(
    memory: SemanticMemory,
    *,
    limit: int = 5,
    expand_query: bool = False,
    auto_remember: bool | None = None,
) -> Callable[[Callable[..., R]], Callable[..., R]]:
    """Full memory integration for your own LLM function.

    The function is called as ``fn(user_input, ..., context=..., instructions=...)``:
    ``context`` holds the ``limit`` most relevant memories framed as untrusted data
    (:func:`~sem_mem.llm.prompts.format_context`, ``""`` when none), ``instructions``
    the persistent instructions. Afterwards the exchange goes through auto-memory
    (``auto_remember``; default: the memory's ``auto_memory`` setting). Values the
    caller passes explicitly for ``context`` or ``instructions`` are kept.
    """
    return _retrieval_decorator(
        memory,
        limit=limit,
        expand_query=expand_query,
        with_instructions=True,
        auto_remember=auto_remember,
    )


def with_rag(
    memory: SemanticMemory, *, limit: int = 5, expand_query: bool = False
) -> Callable[[Callable[..., R]], Callable[..., R]]:
    """Retrieval only: the function gets ``context`` (the relevant memories), nothing else.

    No instructions are passed and nothing is remembered.
    """
    return _retrieval_decorator(
        memory,
        limit=limit,
        expand_query=expand_query,
        with_instructions=False,
        auto_remember=False,
    )
