"""Embeddings from OpenAI or any OpenAI-compatible server (Ollama, vLLM, LM Studio...).

``OpenAIEmbedder("text-embedding-3-small")`` talks to OpenAI;
``OpenAIEmbedder("nomic-embed-text", base_url="http://localhost:11434/v1")`` to a
compatible server (no key needed there). There is no separate class for compatible
servers: ``base_url`` is the only difference.

``model_id`` (recorded in the store, so a change of model is detected) is::

    openai:<model>                       api.openai.com, the model's native size
    openai-compatible:<model>            any other server
    <either>?dimensions=<n>              when ``dimensions`` shortens the vectors

It never contains the key, the URL or the port: moving Ollama to another port
does not invalidate a store, while changing the model or the size does.

``dimensions`` is known for OpenAI's models; for others (and no ``dimensions=``) it
is learned lazily, from the first request or from a one-text probe the first time
``dimensions`` is read.

Requests ask for ``encoding_format="base64"`` (compact, decoded straight into
float32) and accept JSON float lists too, from servers that ignore the option.
Failures are retried (429, 5xx, timeouts, connection errors; exponential backoff
with jitter) and then raised as :class:`~sem_mem.errors.EmbeddingError` whose
``__cause__`` is the precise :class:`~sem_mem.errors.LLMError` subclass
(``AuthenticationError``, ``ModelNotFoundError``, ``RateLimitError``,
``ProviderUnavailableError``), itself caused by the SDK exception.
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Literal, Self

import numpy as np

from ..errors import ConfigurationError, EmbeddingError, LLMError
from ..llm._openai import call_with_retries, make_client
from ..llm.errors_map import describe_host, map_openai_error
from .base import Embedder, normalize_rows

__all__ = ["KNOWN_DIMENSIONS", "OpenAIEmbedder"]

#: native vector sizes of OpenAI's embedding models
KNOWN_DIMENSIONS: dict[str, int] = {
    "text-embedding-3-small": 1536,
    "text-embedding-3-large": 3072,
    "text-embedding-ada-002": 1536,
}
OPENAI_HOST = "api.openai.com"
_PROBE_TEXT = "dimension probe"


class OpenAIEmbedder(Embedder):
    """An :class:`Embedder` over ``/v1/embeddings`` using the official ``openai`` SDK.

    ``batch_size`` texts go in one request; with ``max_concurrency > 1`` several
    requests of one :meth:`encode` call run at once (order is preserved).
    ``timeout`` is per request, in seconds; ``max_retries`` retries per request,
    backing off from ``backoff_base`` seconds (a ``Retry-After`` header wins).
    """

    def __init__(
        self,
        model: str = "text-embedding-3-small",
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        dimensions: int | None = None,
        batch_size: int = 256,
        max_retries: int = 4,
        timeout: float = 30.0,
        max_concurrency: int = 4,
        backoff_base: float = 0.5,
        encoding_format: Literal["base64", "float"] = "base64",
    ) -> None:
        _require(bool(model), "model must be a non-empty string")
        _require(dimensions is None or dimensions > 0, f"dimensions must be > 0, got {dimensions}")
        _require(batch_size >= 1, f"batch_size must be >= 1, got {batch_size}")
        _require(max_retries >= 0, f"max_retries must be >= 0, got {max_retries}")
        _require(timeout > 0, f"timeout must be > 0 seconds, got {timeout}")
        _require(max_concurrency >= 1, f"max_concurrency must be >= 1, got {max_concurrency}")
        _require(
            encoding_format in ("base64", "float"),
            f"encoding_format must be 'base64' or 'float', got {encoding_format!r}",
        )
        self.model = model
        self.batch_size = batch_size
        self.max_retries = max_retries
        self.timeout = timeout
        self.max_concurrency = max_concurrency
        # concurrent recall queries: up to this many requests in flight, each carrying
        # every query that arrived meanwhile (see batcher.py)
        self.query_parallel = max_concurrency
        self.backoff_base = backoff_base
        self.encoding_format = encoding_format
        self._client = make_client(api_key=api_key, base_url=base_url, timeout=timeout)
        #: ``host[:port]`` of the server, for messages
        self.host = describe_host(self._client.base_url)
        self.needs_key = self.host == OPENAI_HOST
        self._requested_dimensions = dimensions
        self._dimensions: int | None = dimensions or KNOWN_DIMENSIONS.get(model)
        self._dims_lock = threading.Lock()
        prefix = "openai" if self.host == OPENAI_HOST else "openai-compatible"
        self.model_id = f"{prefix}:{model}"
        if dimensions is not None and dimensions != KNOWN_DIMENSIONS.get(model):
            self.model_id += f"?dimensions={dimensions}"

    # ------------------------------------------------------------------ dimensions
    @property
    def dimensions(self) -> int:  # type: ignore[override]  # learned lazily, not a plain attribute
        """Vector size; for an unknown model, learned by embedding one short text once."""
        if self._dimensions is None:
            with self._dims_lock:
                if self._dimensions is None:
                    self.embed_batch([_PROBE_TEXT])
        assert self._dimensions is not None
        return self._dimensions

    # ------------------------------------------------------------------ embedding
    def embed_batch(self, texts: Sequence[str]) -> np.ndarray:
        """Embed ``texts`` in one request; a float32 ``(len(texts), dimensions)`` array."""
        # OpenAI rejects empty strings; a single space embeds as "nothing".
        request: dict[str, Any] = {
            "model": self.model,
            "input": [text if text else " " for text in texts],
            "encoding_format": self.encoding_format,
        }
        if self._requested_dimensions is not None:
            request["dimensions"] = self._requested_dimensions

        def wrap(exc: Exception, retries: int) -> Exception:
            return map_openai_error(
                exc, model=self.model, host=self.host, timeout=self.timeout, retries=retries
            )

        try:
            response = call_with_retries(
                lambda: self._client.embeddings.create(**request),
                max_retries=self.max_retries,
                backoff_base=self.backoff_base,
                wrap=wrap,
            )
        except LLMError as exc:
            raise EmbeddingError(f"embedding with {self.model_id!r} failed: {exc}") from exc
        rows = sorted(response.data, key=lambda item: item.index)
        if len(rows) != len(texts):
            raise EmbeddingError(
                f"{self.host} returned {len(rows)} embeddings for {len(texts)} texts "
                f"(model {self.model!r})"
            )
        try:
            vectors = np.stack([_decode(row.embedding) for row in rows])
        except ValueError as exc:
            raise EmbeddingError(
                f"{self.host} returned unusable embeddings for model {self.model!r}: {exc}"
            ) from exc
        if self._dimensions is None:
            self._dimensions = int(vectors.shape[1])
        return vectors

    def encode(
        self,
        texts: Sequence[str],
        *,
        progress: Callable[[int, int], None] | None = None,
    ) -> np.ndarray:
        """Embed any number of texts: ``batch_size`` per request, up to ``max_concurrency``
        requests at once, in order; validated, float32, unit length."""
        total = len(texts)
        if total == 0:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        chunks = [list(texts[i : i + self.batch_size]) for i in range(0, total, self.batch_size)]
        workers = min(self.max_concurrency, len(chunks))
        parts: list[np.ndarray] = []
        done = 0
        if workers == 1:
            for chunk in chunks:
                parts.append(self._embed_checked(chunk))
                done += len(chunk)
                if progress is not None:
                    progress(done, total)
        else:
            with ThreadPoolExecutor(workers, thread_name_prefix="sem-mem-embed") as pool:
                futures: list[Future[np.ndarray]] = [
                    pool.submit(self._embed_checked, chunk) for chunk in chunks
                ]
                try:
                    for chunk, future in zip(chunks, futures, strict=True):
                        parts.append(future.result())
                        done += len(chunk)
                        if progress is not None:
                            progress(done, total)
                except BaseException:
                    for future in futures:
                        future.cancel()
                    raise
        return normalize_rows(np.concatenate(parts, axis=0))

    def _embed_checked(self, chunk: list[str]) -> np.ndarray:
        try:
            out = self.embed_batch(chunk)
        except EmbeddingError:
            raise
        except Exception as exc:  # a bug or an unexpected SDK failure: still an EmbeddingError
            raise EmbeddingError(f"embedder {self.model_id!r} failed: {exc}") from exc
        return self._check(out, len(chunk))

    # ------------------------------------------------------------------ lifecycle
    def close(self) -> None:
        """Close the HTTP connections."""
        self._client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        dims = self._dimensions if self._dimensions is not None else "?"
        return f"OpenAIEmbedder(model_id={self.model_id!r}, host={self.host!r}, dimensions={dims})"


def _decode(embedding: Any) -> np.ndarray:
    """One embedding as float32: a base64 string of little-endian float32, or a list."""
    if isinstance(embedding, str):
        raw = base64.b64decode(embedding)
        if len(raw) % 4:
            raise ValueError("base64 embedding is not a whole number of float32 values")
        return np.frombuffer(raw, dtype="<f4").astype(np.float32)
    return np.asarray(embedding, dtype=np.float32)


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigurationError(message)
