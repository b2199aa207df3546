"""Every error Sem-Mem raises on purpose derives from :class:`SemMemError`.

The tree::

    SemMemError
    ├── ConfigurationError        bad or missing settings, a missing optional extra
    ├── ValidationError           bad input from the caller (also a ValueError)
    │   ├── LimitExceededError    input over a documented size limit (names the limit)
    │   └── DocumentError         a document that cannot be read (sem_mem.ingest; names
    │                             the file and the reason: corrupt, encrypted, ...)
    │       └── IngestCancelled   its reading or storing was cancelled (nothing is kept)
    ├── NotFoundError             no memory with that id in this namespace (also a KeyError)
    ├── ConflictError             the operation contradicts stored state
    │   ├── EmbeddingMismatchError  store was built with another embedding model/dimension
    │   └── SessionConflictError  a chat session changed since it was read (the engine
    │                             merges and retries; raised only when that keeps failing)
    ├── StorageError              the store or index could not be read or written
    ├── EmbeddingError            an embedder failed or returned unusable vectors
    ├── ApiError                  the UI's API server answered with an error or could not
    │                             be reached (sem_mem.ui.client; ``status``, ``error``)
    └── LLMError                  a chat-model call failed
        ├── AuthenticationError   the provider rejected the key
        ├── ModelNotFoundError    the provider does not know the model
        ├── RateLimitError        still rate-limited after the retries
        └── ProviderUnavailableError  unreachable, timed out, or 5xx after the retries

Third-party exceptions are wrapped at the boundary with ``raise ... from exc`` so
callers only ever need to catch ``SemMemError``. Edges (server, CLI, MCP) map these
classes to their own status codes; they never match on message text.
"""

from __future__ import annotations

__all__ = [
    "AuthenticationError",
    "ConfigurationError",
    "ConflictError",
    "EmbeddingError",
    "EmbeddingMismatchError",
    "LLMError",
    "LimitExceededError",
    "ModelNotFoundError",
    "NotFoundError",
    "ProviderUnavailableError",
    "RateLimitError",
    "SemMemError",
    "SessionConflictError",
    "StorageError",
    "ValidationError",
]


class SemMemError(Exception):
    """Root of every error Sem-Mem raises on purpose."""


class ConfigurationError(SemMemError):
    """Settings are missing or contradictory, or an optional extra is not installed."""


class ValidationError(SemMemError, ValueError):
    """The caller passed something Sem-Mem cannot accept (the message names the field)."""


class LimitExceededError(ValidationError):
    """Input is larger than a documented limit.

    ``limit`` is the limit's name (e.g. ``"max_text_chars"``), ``maximum`` its value and
    ``actual`` what was given, so edges can answer with a precise message.
    """

    def __init__(self, message: str, *, limit: str, maximum: int, actual: int) -> None:
        super().__init__(message)
        self.limit = limit
        self.maximum = maximum
        self.actual = actual


class NotFoundError(SemMemError, KeyError):
    """No memory with that id exists in this namespace."""

    def __str__(self) -> str:  # KeyError would wrap the message in quotes
        return str(self.args[0]) if self.args else ""


class ConflictError(SemMemError):
    """The operation contradicts what is stored."""


class EmbeddingMismatchError(ConflictError):
    """The store was built with a different embedding model or dimension."""


class SessionConflictError(ConflictError):
    """A chat session was saved by someone else since it was read (its revision moved).

    :meth:`sem_mem.conversation.ChatSession.persist` handles it: it reads the stored
    session again, puts its own new messages after the ones saved meanwhile and saves
    again. It reaches a caller only when that keeps failing.
    """


class StorageError(SemMemError):
    """The store or its index could not be read or written."""


class EmbeddingError(SemMemError):
    """An embedder failed, or returned vectors of the wrong shape or with NaN/inf."""


class LLMError(SemMemError):
    """A chat-model call failed."""


class AuthenticationError(LLMError):
    """The provider rejected the API key (HTTP 401/403)."""


class ModelNotFoundError(LLMError):
    """The provider does not know the requested model (HTTP 404)."""


class RateLimitError(LLMError):
    """Still rate-limited (HTTP 429) after the configured retries."""


class ProviderUnavailableError(LLMError):
    """The provider could not be reached, timed out, or kept failing with 5xx."""
