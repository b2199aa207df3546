"""Shared plumbing for the OpenAI-SDK-backed models: lazy import, client, retries.

Private to Sem-Mem. The SDK's own retries are switched off (``max_retries=0`` on the
client) and :func:`call_with_retries` retries instead, so that the backoff is
configurable (tests use a tiny base), the number of retries made is known for the
error message, and quota errors (429 ``insufficient_quota``) are not retried.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Self, TypeVar

from ..config import resolve_settings
from ..errors import ConfigurationError
from .base import ChatModel
from .errors_map import describe_host, map_openai_error

if TYPE_CHECKING:
    import openai

__all__ = [
    "NO_KEY_PLACEHOLDER",
    "SDKChatModel",
    "backoff_delay",
    "call_with_retries",
    "import_openai",
    "is_retryable",
    "make_client",
    "usage_dict",
]

T = TypeVar("T")

#: sent as the key to OpenAI-compatible servers that need none (the SDK insists on one)
NO_KEY_PLACEHOLDER = "not-needed"
#: never wait longer than this for one retry, whatever ``Retry-After`` says
MAX_BACKOFF = 30.0
_RETRY_STATUSES = frozenset({408, 409, 429})


def import_openai() -> Any:
    """Import the ``openai`` SDK or say which extra installs it."""
    try:
        import openai
    except ImportError as exc:
        raise ConfigurationError(
            'the OpenAI provider needs the openai package: pip install "sem-mem[openai]"'
        ) from exc
    return openai


def make_client(
    *,
    api_key: str | None,
    base_url: str | None,
    timeout: float,
) -> openai.OpenAI:
    """Build an ``openai.OpenAI`` client with SDK retries off.

    The key is ``api_key`` or else ``OPENAI_API_KEY`` (resolved like every setting:
    environment, ``.env``, Streamlit secrets; see :mod:`sem_mem.config`). Talking to api.openai.com
    without a key is a :class:`ConfigurationError`; an OpenAI-compatible server
    (``base_url`` set) may need none, so a placeholder is sent.
    """
    sdk = import_openai()
    key = api_key if api_key is not None else resolve_settings().openai_api_key
    if not key:
        if base_url is None:
            raise ConfigurationError(
                "no OpenAI API key: pass api_key= or set OPENAI_API_KEY "
                "(or set a base_url for an OpenAI-compatible server that needs no key)"
            )
        key = NO_KEY_PLACEHOLDER
    try:
        client: openai.OpenAI = sdk.OpenAI(
            api_key=key, base_url=base_url, timeout=timeout, max_retries=0
        )
        return client
    except sdk.OpenAIError as exc:
        raise ConfigurationError(f"could not configure the OpenAI client: {exc}") from exc


def is_retryable(exc: BaseException) -> bool:
    """True for failures worth retrying: 408/409/429, 5xx, timeouts, connection errors."""
    import openai

    if isinstance(exc, openai.APIConnectionError):  # includes APITimeoutError
        return True
    if isinstance(exc, openai.APIStatusError):
        if exc.status_code == 429 and exc.code == "insufficient_quota":
            return False  # out of credit: waiting will not help
        return exc.status_code in _RETRY_STATUSES or exc.status_code >= 500
    return False


def _retry_after(exc: BaseException) -> float | None:
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    if headers is None:
        return None
    for name, scale in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            seconds = float(value) / scale
        except ValueError:
            continue  # an HTTP date: fall back to our own backoff
        if seconds >= 0:
            return seconds
    return None


def backoff_delay(attempt: int, base: float, retry_after: float | None = None) -> float:
    """Seconds to wait before retry number ``attempt + 1``.

    The server's ``Retry-After`` wins when given (capped at :data:`MAX_BACKOFF`);
    otherwise exponential backoff ``base * 2**attempt`` with jitter (50-100 %).
    """
    if retry_after is not None:
        return min(retry_after, MAX_BACKOFF)
    delay = min(base * (2.0**attempt), MAX_BACKOFF)
    return delay * (0.5 + random.random() / 2)


def call_with_retries(
    fn: Callable[[], T],
    *,
    max_retries: int,
    backoff_base: float,
    wrap: Callable[[Exception, int], Exception],
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Call ``fn``; retry retryable SDK errors up to ``max_retries`` times.

    When it finally fails with an SDK error ``exc`` after ``n`` retries, raises
    ``wrap(exc, n) from exc``. Other exceptions (bugs) propagate unchanged.
    """
    sdk = import_openai()
    attempt = 0
    while True:
        try:
            return fn()
        except sdk.OpenAIError as exc:
            if attempt >= max_retries or not is_retryable(exc):
                raise wrap(exc, attempt) from exc
            sleep(backoff_delay(attempt, backoff_base, _retry_after(exc)))
            attempt += 1


class SDKChatModel(ChatModel):
    """What both SDK-backed chat models share: the client, retries and error mapping."""

    #: the model used when the constructor is not given one (set by each subclass)
    default_model: str = ""

    def __init__(
        self,
        model: str | None = None,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        timeout: float = 60.0,
        max_retries: int = 3,
        default_reasoning_effort: str = "low",
        default_temperature: float = 0.7,
        backoff_base: float = 0.5,
    ) -> None:
        if max_retries < 0:
            raise ConfigurationError(f"max_retries must be >= 0, got {max_retries}")
        if timeout <= 0:
            raise ConfigurationError(f"timeout must be > 0 seconds, got {timeout}")
        self.model = model or self.default_model
        self.timeout = timeout
        self.max_retries = max_retries
        self.default_reasoning_effort = default_reasoning_effort
        self.default_temperature = default_temperature
        self.backoff_base = backoff_base
        self._client = make_client(api_key=api_key, base_url=base_url, timeout=timeout)
        #: ``host[:port]`` of the provider, for messages (never the key)
        self.host = describe_host(self._client.base_url)

    def _call(self, fn: Callable[[], T], model: str) -> T:
        """Run one SDK call with retries; failures become Sem-Mem errors."""

        def wrap(exc: Exception, retries: int) -> Exception:
            return map_openai_error(
                exc, model=model, host=self.host, timeout=self.timeout, retries=retries
            )

        return call_with_retries(
            fn, max_retries=self.max_retries, backoff_base=self.backoff_base, wrap=wrap
        )

    def close(self) -> None:
        """Close the HTTP connections (the model can no longer be used)."""
        self._client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(model={self.model!r}, host={self.host!r})"


def usage_dict(usage: Any, *, input_key: str, output_key: str) -> dict[str, int]:
    """Token usage as ``{"input_tokens", "output_tokens", "total_tokens"}`` (ints only)."""
    if usage is None:
        return {}
    out: dict[str, int] = {}
    for ours, theirs in (
        ("input_tokens", input_key),
        ("output_tokens", output_key),
        ("total_tokens", "total_tokens"),
    ):
        value = getattr(usage, theirs, None)
        if isinstance(value, int):
            out[ours] = value
    return out
