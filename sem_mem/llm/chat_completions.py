"""Chat Completions (``client.chat.completions.create``) as a :class:`ChatModel`.

For OpenAI-compatible servers (Ollama, vLLM, llama.cpp, LM Studio), which speak
Chat Completions but not the Responses API. What is sent:

* ``messages``: a ``system`` message with the instructions, then the whole local
  thread. These servers keep no state, so ``previous_response_id`` is ignored and
  :attr:`ChatResult.response_id` is ``None``;
* ``reasoning_effort`` for reasoning models (o1, o3, gpt-5.x), otherwise
  ``temperature``; never both;
* ``max_tokens`` when ``max_output_tokens`` is given (``max_completion_tokens`` for
  reasoning models, which reject ``max_tokens``).

Web search is a hosted tool of OpenAI's Responses API only: ``respond(...,
web_search=True)`` raises :class:`~sem_mem.errors.ConfigurationError` rather than
silently answering without it. The core should consult ``supports_web_search``
before asking.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..errors import ConfigurationError
from ._openai import SDKChatModel, usage_dict
from .base import ChatMessage, ChatResult, is_reasoning_model

__all__ = ["ChatCompletionsModel"]


class ChatCompletionsModel(SDKChatModel):
    """Chat through ``/chat/completions`` on any OpenAI-compatible server.

    ``base_url`` is the server's OpenAI-compatible root, e.g.
    ``http://localhost:11434/v1`` for Ollama. ``api_key`` may be omitted for local
    servers (a placeholder is sent, since the SDK requires one); without
    ``base_url`` this talks to OpenAI itself and needs a key.
    """

    supports_previous_response_id = False
    supports_web_search = False
    default_model = "gpt-4.1"

    def build_request(
        self,
        *,
        instructions: str,
        messages: Sequence[ChatMessage],
        model: str | None = None,
        reasoning_effort: str | None = None,
        temperature: float | None = None,
        max_output_tokens: int | None = None,
    ) -> dict[str, Any]:
        """The keyword arguments for ``client.chat.completions.create`` (no I/O)."""
        name = model or self.model
        sent: list[dict[str, str]] = []
        if instructions:
            sent.append({"role": "system", "content": instructions})
        sent.extend({"role": m.role, "content": m.content} for m in messages)
        request: dict[str, Any] = {"model": name, "messages": sent}
        reasoning = is_reasoning_model(name)
        if reasoning:
            request["reasoning_effort"] = reasoning_effort or self.default_reasoning_effort
        else:
            request["temperature"] = (
                temperature if temperature is not None else self.default_temperature
            )
        if max_output_tokens is not None:
            request["max_completion_tokens" if reasoning else "max_tokens"] = max_output_tokens
        return request

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
        """Answer the conversation; ``previous_response_id`` is ignored (no server state)."""
        if web_search:
            raise ConfigurationError(
                "web search needs the OpenAI Responses API; this chat model talks Chat "
                f"Completions to {self.host}. Use ResponsesChatModel or turn web_search off."
            )
        request = self.build_request(
            instructions=instructions,
            messages=messages,
            model=model,
            reasoning_effort=reasoning_effort,
            temperature=temperature,
            max_output_tokens=max_output_tokens,
        )
        completion = self._call(
            lambda: self._client.chat.completions.create(**request), request["model"]
        )
        text = completion.choices[0].message.content if completion.choices else None
        return ChatResult(
            text=text or "",
            response_id=None,
            model=completion.model or request["model"],
            usage=usage_dict(
                completion.usage, input_key="prompt_tokens", output_key="completion_tokens"
            ),
        )
