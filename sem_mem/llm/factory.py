"""Choose the chat model in one place.

=================================  =========================================
Settings                           Chat model
=================================  =========================================
no key, no base URL                ``None``: memory-only mode
key, no base URL                   :class:`ResponsesChatModel` (OpenAI)
base URL of api.openai.com         :class:`ResponsesChatModel` (OpenAI)
any other base URL (key or not)    :class:`ChatCompletionsModel` (Ollama, vLLM…)
=================================  =========================================

``CHAT_API`` (``chat_api=``) overrides the table: ``responses`` uses the Responses API
through any base URL (vLLM and gateways speak it), ``chat_completions`` uses Chat
Completions even with OpenAI; ``auto`` (the default) follows the table::

    memory = SemanticMemory(base_url="http://localhost:8000/v1", chat_api="responses")
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from ..config import Settings
from ..errors import ConfigurationError
from .base import ChatModel
from .errors_map import describe_host

__all__ = [
    "ChatAPI",
    "chat_api_of",
    "create_chat_model",
    "uses_openai",
    "web_search_unavailable",
]

ChatAPI = Literal["responses", "chat_completions"]

_OPENAI_HOSTS = frozenset({"api.openai.com"})


def uses_openai(base_url: str | None) -> bool:
    """True when ``base_url`` is unset or points at OpenAI itself."""
    if not base_url:
        return True
    return describe_host(base_url).split(":", 1)[0].lower() in _OPENAI_HOSTS


def create_chat_model(settings: Settings, *, api: ChatAPI | None = None) -> ChatModel | None:
    """The chat model the settings ask for, or ``None`` for memory-only mode.

    ``api`` forces one implementation; by default ``settings.chat_api`` does, and
    ``auto`` follows the table in the module docstring. The model's defaults come from
    ``settings.chat_model``, ``settings.reasoning_effort`` and ``settings.temperature``.
    Building a model makes no request: a bad key or an unknown model only shows on the
    first call.
    """
    key = settings.openai_api_key or None
    base_url = settings.openai_base_url or None
    if key is None and base_url is None:
        return None
    if api is None and settings.chat_api != "auto":
        api = settings.chat_api  # type: ignore[assignment]
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


def web_search_unavailable(chat_model: ChatModel | None) -> str:
    """Why the web-search toggle is off, or ``""`` when the chat model can search."""
    if chat_model is None:
        return "no chat model is configured"
    if not chat_model.supports_web_search:
        return (
            f"{type(chat_model).__name__} at {getattr(chat_model, 'host', '?')} has no web "
            "search tool (it needs the OpenAI Responses API)"
        )
    return ""


def chat_api_of(chat_model: ChatModel | None) -> str:
    """``"responses"``, ``"chat_completions"`` or ``""`` (memory-only mode)."""
    if chat_model is None:
        return ""
    return "responses" if chat_model.supports_previous_response_id else "chat_completions"
