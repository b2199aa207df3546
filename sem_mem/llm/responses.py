"""OpenAI's Responses API (``client.responses.create``) as a :class:`ChatModel`.

What is sent:

* ``instructions``: the memory-aware system context (sent on every call: the API
  does not carry instructions over from a previous response);
* ``input``: ``[{"role", "content"}, ...]``: the whole local thread, or, when a
  ``previous_response_id`` is given, only the messages after the last assistant
  message (the new user turn), together with ``previous_response_id``;
* ``reasoning={"effort": ...}`` for reasoning models (o1, o3, gpt-5.x), otherwise
  ``temperature``; never both;
* ``tools=[{"type": "web_search"}]`` only when ``web_search=True`` (the GA hosted
  tool; ``web_search_preview`` is its legacy name);
* ``max_output_tokens`` when given.

Failures are raised as :class:`sem_mem.errors.LLMError` subclasses (see
:mod:`sem_mem.llm.errors_map`) after retrying 429, 5xx, timeouts and connection
errors with exponential backoff.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ._openai import SDKChatModel, usage_dict
from .base import ChatMessage, ChatResult, is_reasoning_model

__all__ = ["WEB_SEARCH_TOOL", "ResponsesChatModel", "messages_after_last_answer"]

#: the hosted web-search tool of the Responses API
WEB_SEARCH_TOOL: dict[str, str] = {"type": "web_search"}


def messages_after_last_answer(messages: Sequence[ChatMessage]) -> list[ChatMessage]:
    """The messages after the last assistant message (all of them if there is none)."""
    for index in range(len(messages) - 1, -1, -1):
        if messages[index].role == "assistant":
            return list(messages[index + 1 :])
    return list(messages)


class ResponsesChatModel(SDKChatModel):
    """Chat through OpenAI's Responses API; supports ``previous_response_id`` and web search.

    ``api_key`` defaults to ``OPENAI_API_KEY``; ``base_url`` to OpenAI (or
    ``OPENAI_BASE_URL``). ``timeout`` is per request in seconds; ``max_retries``
    retries of 429/5xx/timeouts/connection errors with exponential backoff starting
    at ``backoff_base`` seconds (a ``Retry-After`` header wins).
    """

    supports_previous_response_id = True
    supports_web_search = True
    default_model = "gpt-5.1"

    def build_request(
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
    ) -> dict[str, Any]:
        """The keyword arguments for ``client.responses.create`` (no I/O)."""
        name = model or self.model
        sent = messages_after_last_answer(messages) if previous_response_id else list(messages)
        request: dict[str, Any] = {
            "model": name,
            "input": [{"role": m.role, "content": m.content} for m in sent],
        }
        if instructions:
            request["instructions"] = instructions
        if previous_response_id:
            request["previous_response_id"] = previous_response_id
        if is_reasoning_model(name):
            request["reasoning"] = {"effort": reasoning_effort or self.default_reasoning_effort}
        else:
            request["temperature"] = (
                temperature if temperature is not None else self.default_temperature
            )
        if web_search:
            request["tools"] = [dict(WEB_SEARCH_TOOL)]
        if max_output_tokens is not None:
            request["max_output_tokens"] = max_output_tokens
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
        """Answer the conversation; see :meth:`ChatModel.respond`."""
        request = self.build_request(
            instructions=instructions,
            messages=messages,
            previous_response_id=previous_response_id,
            model=model,
            reasoning_effort=reasoning_effort,
            temperature=temperature,
            web_search=web_search,
            max_output_tokens=max_output_tokens,
        )
        response = self._call(lambda: self._client.responses.create(**request), request["model"])
        return ChatResult(
            text=response.output_text,
            response_id=response.id,
            model=response.model or request["model"],
            usage=usage_dict(response.usage, input_key="input_tokens", output_key="output_tokens"),
        )
