"""Choose the chat model in one place.

=================================  =========================================
Settings                           Chat model
=================================  =========================================
no key, no base URL                ``None``: memory-only mode
key, no base URL                   :class:`ResponsesChatModel` (OpenAI)
base URL of api.openai.com         :class:`ResponsesChatModel` (OpenAI)
any other base URL (key or not)    :class:`ChatCompletionsModel` (Ollama, vLLM…)
=================================  =========================================

OpenAI-compatible servers speak Chat Completions, not the Responses API, so a base
URL other than OpenAI's selects Chat Completions. To use the Responses API through
another host (a proxy, a gateway), build the model with ``api="responses"`` and pass
it as ``SemanticMemory(chat_model=...)``::

    model = create_chat_model(settings, api="responses")
    memory = SemanticMemory(chat_model=model)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from ..config import Settings
from ..errors import ConfigurationError
from .base import ChatModel
from .errors_map import describe_host

__all__ = ["ChatAPI", "create_chat_model", "uses_openai"]

ChatAPI = Literal["responses", "chat_completions"]

_OPENAI_HOSTS = frozenset({"api.openai.com"})


def uses_openai(base_url: str | None) -> bool:
    """True when ``base_url`` is unset or points at OpenAI itself."""
    if not base_url:
        return True
    return describe_host(base_url).split(":", 1)[0].lower() in _OPENAI_HOSTS


def create_chat_model(settings: Settings, *, api: ChatAPI | None = None) -> ChatModel | None:
    """The chat model the settings ask for, or ``None`` for memory-only mode.

    ``api`` forces one implementation; by default it follows the table in the module
    docstring. The model's defaults come from ``settings.chat_model``,
    ``settings.reasoning_effort`` and ``settings.temperature``. Building a model makes
    no request: a bad key or an unknown model only shows on the first call.
    """
    key = settings.openai_api_key or None
    base_url = settings.openai_base_url or None
    if key is None and base_url is None:
        return None
    if api is None and settings.chat_api != "auto":
        api = settings.chat_api  # type: ignore[assignment]  # e.g. a Responses gateway
    if api is None:
        api = "responses" if uses_openai(base_url) else "chat_completions"
    cls: Callable[..., ChatModel]
    if api == "responses":
        from .responses import ResponsesChatModel

        cls = ResponsesChatModel
    elif api == "chat_completions":
        from .chat_completions import ChatCompletionsModel

        cls = ChatCompletionsModel
    else:
        raise ConfigurationError(f"api must be 'responses' or 'chat_completions', got {api!r}")
    return cls(
        settings.chat_model,
        api_key=key,
        base_url=base_url,
        default_reasoning_effort=settings.reasoning_effort,
        default_temperature=settings.temperature,
    )
