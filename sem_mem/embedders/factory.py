"""Choose the embedder in one place.

``SEMMEM_EMBEDDER`` / ``embedder=``: ``local`` (MiniLM through onnxruntime, the
default when no OpenAI key is set; ``EMBEDDING_MODEL=all-MiniLM-L6-v2?int8`` runs it
with int8 weights), ``openai`` (``text-embedding-3-small`` or
``EMBEDDING_MODEL``; at ``OPENAI_EMBEDDING_BASE_URL``, else ``OPENAI_BASE_URL``, any
OpenAI-compatible server), or ``auto``: the model a store was built with if it has
one, else (docs/configuration.md has the table):

* ``OPENAI_EMBEDDING_BASE_URL`` set: ``openai`` at that URL;
* a key and OpenAI itself (no base URL, or api.openai.com): ``openai``;
* a key and another base URL (a chat server such as Ollama or vLLM): ``local``, unless
  ``EMBEDDING_MODEL`` names a remote model (not MiniLM, not a local folder), which is
  then asked of that server;
* no key: ``local``.
"""

from __future__ import annotations

from ..config import Settings
from ..errors import ConfigurationError
from .base import Embedder

__all__ = ["DEFAULT_LOCAL_MODEL", "DEFAULT_OPENAI_MODEL", "create_embedder"]

DEFAULT_LOCAL_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
DEFAULT_OPENAI_MODEL = "text-embedding-3-small"


def _local(settings: Settings, model: str | None) -> Embedder:
    from .local import INT8_SUFFIX, LocalEmbedder

    # "all-MiniLM-L6-v2?int8" (or any model name + "?int8"): the int8-weight graph
    int8 = bool(model) and model.endswith(INT8_SUFFIX)  # type: ignore[union-attr]
    if int8:
        model = model[: -len(INT8_SUFFIX)]  # type: ignore[index]
    if model in (None, "", DEFAULT_LOCAL_MODEL, "all-MiniLM-L6-v2"):
        model = None
    # the ONNX graph is cached per machine (SEMMEM_MODEL_CACHE, else ~/.cache/sem-mem),
    # not per store: it is ~90 MB and the same for every store
    return LocalEmbedder(model, int8=int8)


def _openai(settings: Settings, model: str | None, dimensions: int | None = None) -> Embedder:
    from .openai import OpenAIEmbedder

    if not (
        settings.openai_api_key or settings.openai_base_url or settings.openai_embedding_base_url
    ):
        raise ConfigurationError(
            "the OpenAI embedder needs OPENAI_API_KEY (or OPENAI_BASE_URL for a compatible server)"
        )
    return OpenAIEmbedder(
        model or DEFAULT_OPENAI_MODEL,
        api_key=settings.openai_api_key,
        base_url=settings.openai_embedding_base_url or settings.openai_base_url,
        dimensions=dimensions,
    )


def create_embedder(settings: Settings, *, recorded_model: str | None = None) -> Embedder:
    """Build the embedder the settings ask for.

    ``recorded_model`` is the model id a store was built with; in ``auto`` mode it
    wins, so reopening a store never silently switches embedding spaces.
    """
    kind = settings.embedder
    model = settings.embedding_model
    if kind == "auto" and recorded_model:
        prefix, _, name = recorded_model.partition(":")
        if prefix == "local":
            # a configured model (e.g. a folder path) wins: the recorded id may only
            # hold the folder's name; a mismatch is still caught when the store opens
            return _local(settings, model or name)
        if prefix in ("openai", "openai-compatible"):
            # "openai:text-embedding-3-small?dimensions=512" (see embedders/openai.py)
            name, _, query = name.partition("?dimensions=")
            return _openai(settings, name, int(query) if query.isdigit() else None)
    if kind == "auto":
        kind = _auto_kind(settings, model)
    if kind == "local":
        return _local(settings, model if model != DEFAULT_OPENAI_MODEL else None)
    if kind == "openai":
        return _openai(settings, model)
    raise ConfigurationError(f"unknown embedder {kind!r}: choose local, openai or auto")


def _auto_kind(settings: Settings, model: str | None) -> str:
    """``auto`` for a new store: see the module docstring."""
    from ..llm.factory import uses_openai

    if settings.openai_embedding_base_url:
        return "openai"
    if not settings.openai_api_key:
        return "local"
    if uses_openai(settings.openai_base_url):
        return "openai"
    # a key with another server: chat servers rarely serve text-embedding-3-small
    return "openai" if model and not _local_model_name(model) else "local"


def _local_model_name(model: str) -> bool:
    """True for the names (and folders) the local embedder runs."""
    import os

    name = model.removesuffix("?int8")
    return name in (DEFAULT_LOCAL_MODEL, "all-MiniLM-L6-v2") or os.path.isdir(name)
