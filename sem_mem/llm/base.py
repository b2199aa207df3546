"""The chat-model interface: one required method, ``respond``.

Two implementations live beside this module: the OpenAI Responses API
(``responses.py``) and Chat Completions for OpenAI-compatible servers
(``chat_completions.py``). The core builds the instructions (memory-aware system
context, persistent instructions, retrieved memories framed as data) and keeps
the conversation thread itself, so both providers get the same conversation;
where a provider supports ``previous_response_id`` it is used as well.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

__all__ = ["ChatMessage", "ChatModel", "ChatResult", "is_reasoning_model"]

Role = Literal["user", "assistant"]

_REASONING_MODEL = re.compile(r"^(o\d|gpt-5)", re.IGNORECASE)


def is_reasoning_model(model: str) -> bool:
    """True for models taking ``reasoning.effort`` rather than ``temperature`` (o1, o3, gpt-5.x)."""
    return bool(_REASONING_MODEL.match(model.split("/")[-1]))


@dataclass(frozen=True)
class ChatMessage:
    role: Role
    content: str


@dataclass(frozen=True)
class ChatResult:
    text: str
    response_id: str | None
    model: str
    usage: dict[str, int] = field(default_factory=dict)


class ChatModel(ABC):
    """A chat model. Capabilities are class attributes."""

    #: model name used when a call does not name one
    model: str = ""
    #: the provider keeps server-side state and accepts ``previous_response_id``
    supports_previous_response_id: bool = False
    #: the provider has a built-in web search tool
    supports_web_search: bool = False

    @abstractmethod
    def respond(
        self,
        *,
        instructions: str,
        messages: Sequence[ChatMessage],
        previous_response_id: str | None = None,
        model: str | None = None,
        reasoning_effort: str | None = None,
        temperature: float | None = None,
        web_search: bool = False,
        max_output_tokens: int | None = None,
    ) -> ChatResult:
        """Answer the conversation.

        ``messages`` is the whole local thread, oldest first, ending with the new user
        message. A provider that supports ``previous_response_id`` and gets one may
        send only the messages after that response. ``reasoning_effort`` is used for
        reasoning models and ``temperature`` for the others. Errors are raised as
        :class:`sem_mem.errors.LLMError` subclasses.
        """

    def complete(self, prompt: str, *, instructions: str = "", model: str | None = None) -> str:
        """One-shot helper for small internal calls (query expansion, salience judge)."""
        result = self.respond(
            instructions=instructions,
            messages=[ChatMessage("user", prompt)],
            model=model,
        )
        return result.text
