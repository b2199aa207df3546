"""Memory-aware agent abstractions: :class:`MemoryChat`, ``@with_memory`` and ``@with_rag``.

``MemoryChat`` is the Python face of the conversation engine,
:class:`sem_mem.conversation.ChatSession` (retrieval, query expansion, persistent
instructions, auto-memory, the thread and its continuation, ``remember:`` and
``instruct:`` commands, thread saving). The decorators wrap your own LLM function and
hand it the retrieved memories as ``context`` (and, for ``@with_memory``, the
persistent ``instructions``)::

    @with_memory(memory)
    def chat(user_input: str, context: str = "", instructions: str = "", **_) -> str:
        return my_llm(f"{instructions}\\n\\n{context}\\n\\nUser: {user_input}")
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from .chat import remember_exchange
from .conversation import ChatOptions, ChatSession
from .llm.base import ChatMessage
from .llm.prompts import format_context
from .types import Recollection

if TYPE_CHECKING:
    from .core import SemanticMemory

__all__ = ["MemoryChat", "with_memory", "with_rag"]

R = TypeVar("R")


class MemoryChat:
    """A conversation with memory: ``send`` messages, ``remember`` facts, save the thread.

    A thin wrapper of :class:`~sem_mem.conversation.ChatSession` (available as
    :attr:`session`). Options are given as one :class:`~sem_mem.conversation.ChatOptions`
    or as the keyword arguments below (``None`` means the memory's settings). After each
    ``send``, :attr:`last_memories` and :attr:`last_logs` say what was retrieved and
    what happened.
    """

    def __init__(
        self,
        memory: SemanticMemory,
        options: ChatOptions | None = None,
        *,
        model: str | None = None,
        reasoning_effort: str | None = None,
        temperature: float | None = None,
        web_search: bool | None = None,
        auto_remember: bool | None = None,
        expand_query: bool | None = None,
        limit: int | None = None,
    ) -> None:
        chosen = (options or ChatOptions()).with_changes(
            model=model,
            reasoning_effort=reasoning_effort,
            temperature=temperature,
            web_search=web_search,
            auto_remember=auto_remember,
            expand_query=expand_query,
            limit=limit,
        )
        self.memory = memory
        self.session = ChatSession(memory, chosen)

    def __repr__(self) -> str:
        return f"MemoryChat(thread_id={self.thread_id!r}, messages={len(self.thread)})"

    @property
    def options(self) -> ChatOptions:
        return self.session.options

    @property
    def thread(self) -> list[ChatMessage]:
        """The conversation so far, oldest first (commands are not part of it)."""
        return self.session.thread

    @thread.setter
    def thread(self, messages: list[ChatMessage]) -> None:
        self.session.thread = list(messages)
        self.session.previous_response_id = None
        self.session.saved_upto = min(self.session.saved_upto, len(messages))

    @property
    def thread_id(self) -> str:
        return self.session.thread_id

    @thread_id.setter
    def thread_id(self, value: str) -> None:
        self.session.thread_id = value

    @property
    def previous_response_id(self) -> str | None:
        return self.session.previous_response_id

    @property
    def last_memories(self) -> list[Recollection]:
        return self.session.last_memories

    @property
    def last_logs(self) -> list[str]:
        return self.session.last_logs

    def send(self, text: str) -> str:
        """Answer one message (or run a ``remember:``/``instruct:`` command).

        Commands return a confirmation without calling the model. In memory-only
        mode the answer is a notice plus the relevant memories, and only the user's
        message is added to the thread.
        """
        return self.session.send(text).text

    def remember(self, text: str, metadata: dict[str, Any] | None = None) -> str:
        """Store a fact in long-term memory (``source="manual"``); returns its id."""
        return self.memory.remember(text, metadata)

    def add_instruction(self, text: str) -> None:
        """Add a permanent instruction (applies to every conversation)."""
        self.memory.add_instruction(text)

    def save_thread(self) -> list[str]:
        """Store the turns said since the last save; returns their ids, in order.

        One memory per turn (``"User: ..."``/``"Assistant: ..."``, ``source="thread"``)
        in thread :attr:`thread_id` at its position, through
        :meth:`SemanticMemory.remember_conversation`; saving again copies nothing.
        """
        return self.session.save_thread()

    def new_thread(self) -> None:
        """Start a fresh conversation; the memory (and instructions) stay."""
        self.session.new_thread()


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
