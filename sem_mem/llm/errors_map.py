"""Translate ``openai`` SDK exceptions into Sem-Mem errors, in one place.

Both chat models and the OpenAI embedder call :func:`map_openai_error` at the
boundary and ``raise ... from`` the SDK exception, so callers only ever see the
:class:`~sem_mem.errors.SemMemError` tree. Messages say what failed, for which model
and at which host; they never contain the API key (not even OpenAI's masked echo
of it, which is why the server's message is left out of 401 errors).

===========================================  ==============================
SDK exception                                Sem-Mem error
===========================================  ==============================
AuthenticationError (401)                    AuthenticationError
PermissionDeniedError (403)                  AuthenticationError
NotFoundError (404)                          ModelNotFoundError
RateLimitError (429)                         RateLimitError
APITimeoutError                              ProviderUnavailableError
APIConnectionError                           ProviderUnavailableError
InternalServerError / any 5xx                ProviderUnavailableError
BadRequestError (400), other 4xx, the rest   LLMError
===========================================  ==============================
"""

from __future__ import annotations

from typing import Any

from ..errors import (
    AuthenticationError,
    LLMError,
    ModelNotFoundError,
    ProviderUnavailableError,
    RateLimitError,
    SemMemError,
)

__all__ = ["describe_host", "map_openai_error", "server_message"]


def describe_host(base_url: Any) -> str:
    """``host`` or ``host:port`` of a URL (an ``httpx`` URL or a string); no credentials."""
    text = str(base_url)
    if "://" in text:
        text = text.split("://", 1)[1]
    text = text.split("/", 1)[0]
    return text.rsplit("@", 1)[-1] or "the provider"


def server_message(exc: BaseException) -> str:
    """The provider's own error message, if its body had one."""
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        message = body.get("message")
        if isinstance(message, str) and message:
            return message
    if isinstance(body, str) and body.strip():
        return body.strip()[:300]
    return ""


def map_openai_error(
    exc: BaseException,
    *,
    model: str,
    host: str,
    timeout: float | None = None,
    retries: int = 0,
) -> SemMemError:
    """Return the Sem-Mem error for ``exc``; the caller raises it ``from exc``.

    ``retries`` is how many retries were made before giving up (it appears in the
    message for rate limits, timeouts and 5xx); ``timeout`` the per-request timeout
    in seconds.
    """
    import openai  # only reached once an SDK exception exists, so openai is installed

    after = f" after {retries} {'retry' if retries == 1 else 'retries'}" if retries else ""
    detail = server_message(exc)
    suffix = f": {detail}" if detail else ""

    if isinstance(exc, openai.AuthenticationError):
        return AuthenticationError(
            f"{host} rejected the API key (HTTP 401) for model {model!r}: "
            "check OPENAI_API_KEY or the api_key setting"
        )
    if isinstance(exc, openai.PermissionDeniedError):
        return AuthenticationError(
            f"{host} refused access to model {model!r} with this API key (HTTP 403){suffix}"
        )
    if isinstance(exc, openai.NotFoundError):
        return ModelNotFoundError(
            f"unknown model {model!r} at {host} (HTTP 404){suffix}; "
            "check the model name (and base_url, for an OpenAI-compatible server)"
        )
    if isinstance(exc, openai.RateLimitError):
        return RateLimitError(
            f"rate limited by {host} for model {model!r}{after} (HTTP 429){suffix}"
        )
    if isinstance(exc, openai.APITimeoutError):
        limit = f" after {timeout:g} s" if timeout is not None else ""
        return ProviderUnavailableError(
            f"request to {host} for model {model!r} timed out{limit}"
            f"{f' ({retries} retries)' if retries else ''}"
        )
    if isinstance(exc, openai.APIConnectionError):
        return ProviderUnavailableError(
            f"could not connect to {host} for model {model!r}{after}: is the server running "
            "and the base URL right?"
        )
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        if status >= 500:
            return ProviderUnavailableError(
                f"{host} failed with HTTP {status} for model {model!r}{after}{suffix}"
            )
        if isinstance(exc, openai.BadRequestError):
            return LLMError(f"{host} rejected the request for model {model!r} (HTTP 400){suffix}")
        return LLMError(f"{host} answered HTTP {status} for model {model!r}{suffix}")
    return LLMError(f"call to {host} for model {model!r} failed: {exc}")
