"""Settings, resolved when an object is built (never at import time).

Priority, highest first: explicit keyword arguments > environment variables >
a ``.env`` file > ``.streamlit/secrets.toml``. Both files are looked up in the
current working directory unless a path is given.

Variable names follow the seed (``OPENAI_API_KEY``, ``CHAT_MODEL``,
``REASONING_EFFORT``, ``MEMORY_STORAGE_DIR``, ``CACHE_SIZE``, ``EMBEDDING_MODEL``,
``SEMMEM_API_URL``) plus ``OPENAI_BASE_URL``, ``SEMMEM_EMBEDDER`` and the
``SEMMEM_*`` names below. ``docs/configuration.md`` is the reference.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from .errors import ConfigurationError

__all__ = ["ENV_NAMES", "Settings", "read_environment", "resolve_settings"]


@dataclass(frozen=True)
class Settings:
    storage_dir: str = "./local_memory"
    namespace: str = "default"
    openai_api_key: str | None = None
    openai_base_url: str | None = None
    openai_embedding_base_url: str | None = None  # embeddings elsewhere than the chat model
    embedder: str = "auto"  # auto | local | openai
    # None: a store's own model, else MiniLM int8 (local) or text-embedding-3-small (openai)
    embedding_model: str | None = None
    chat_model: str = "gpt-5.1"
    chat_api: str = "auto"  # auto | responses | chat_completions (see llm/factory.py)
    reasoning_effort: str = "low"
    temperature: float = 0.7
    expansion_model: str = "gpt-4.1-mini"
    auto_memory: bool = True
    web_search: bool = False
    cache_size: int = 20
    hnsw_m: int = 16
    hnsw_ef_construction: int = 100
    hnsw_ef: int = 64
    max_text_chars: int = 100_000
    max_metadata_bytes: int = 65_536
    durability: str = "full"  # full: fsync every commit; normal: WAL default
    database_url: str | None = None
    api_url: str | None = None
    api_key: str | None = None  # the bearer key a client (the UI) sends to ``api_url``
    api_keys: str | None = None
    model_cache: str | None = None  # where local ONNX graphs are cached (None: ~/.cache)
    # recall's reranker (see rerankers/): None/"none", "local" or a cross-encoder folder
    reranker: str | None = None
    extra: dict[str, str] = field(default_factory=dict, compare=False)

    def with_overrides(self, **changes: Any) -> Settings:
        return replace(self, **changes)


#: settings field -> environment variable name(s), first match wins
ENV_NAMES: dict[str, tuple[str, ...]] = {
    "storage_dir": ("MEMORY_STORAGE_DIR", "SEMMEM_STORAGE_DIR"),
    "namespace": ("SEMMEM_NAMESPACE",),
    "openai_api_key": ("OPENAI_API_KEY",),
    "openai_base_url": ("OPENAI_BASE_URL",),
    "openai_embedding_base_url": ("OPENAI_EMBEDDING_BASE_URL",),
    "embedder": ("SEMMEM_EMBEDDER",),
    "embedding_model": ("EMBEDDING_MODEL",),
    "chat_model": ("CHAT_MODEL",),
    "chat_api": ("CHAT_API",),
    "reasoning_effort": ("REASONING_EFFORT",),
    "temperature": ("TEMPERATURE",),
    "expansion_model": ("EXPANSION_MODEL",),
    "auto_memory": ("AUTO_MEMORY",),
    "web_search": ("WEB_SEARCH",),
    "cache_size": ("CACHE_SIZE",),
    "hnsw_m": ("HNSW_M",),
    "hnsw_ef_construction": ("HNSW_EF_CONSTRUCTION",),
    "hnsw_ef": ("HNSW_EF",),
    "max_text_chars": ("SEMMEM_MAX_TEXT_CHARS",),
    "max_metadata_bytes": ("SEMMEM_MAX_METADATA_BYTES",),
    "durability": ("SEMMEM_DURABILITY",),
    "database_url": ("SEMMEM_DATABASE_URL",),
    "api_url": ("SEMMEM_API_URL",),
    "api_key": ("SEMMEM_API_KEY",),
    "api_keys": ("SEMMEM_API_KEYS",),
    "model_cache": ("SEMMEM_MODEL_CACHE",),
    "reranker": ("SEMMEM_RERANKER",),
}

_CHOICES = {
    "embedder": ("auto", "local", "openai"),
    "chat_api": ("auto", "responses", "chat_completions"),
    "reasoning_effort": ("none", "minimal", "low", "medium", "high"),
    "durability": ("full", "normal"),
}
_POSITIVE = ("hnsw_m", "hnsw_ef_construction", "hnsw_ef", "max_text_chars")


def _read_dotenv(path: Path) -> dict[str, str]:
    if not path.is_file():
        return {}
    from dotenv import dotenv_values  # python-dotenv, a core dependency

    return {k: v for k, v in dotenv_values(path).items() if v is not None}


def _read_secrets(path: Path) -> dict[str, str]:
    if not path.is_file():
        return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigurationError(f"cannot read Streamlit secrets {path}: {exc}") from exc
    return {k: str(v) for k, v in data.items() if not isinstance(v, dict)}


def _coerce(name: str, raw: Any, kind: type) -> Any:
    if raw is None:
        return None
    if kind is bool:
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off"):
            return False
        raise ConfigurationError(f"setting {name!r} must be true or false, got {raw!r}")
    if kind in (int, float):
        try:
            return kind(raw)
        except (TypeError, ValueError) as exc:
            raise ConfigurationError(
                f"setting {name!r} must be a {kind.__name__}, got {raw!r}"
            ) from exc
    return str(raw)


_TYPES: dict[str, type] = {
    "auto_memory": bool,
    "web_search": bool,
    "cache_size": int,
    "hnsw_m": int,
    "hnsw_ef_construction": int,
    "hnsw_ef": int,
    "max_text_chars": int,
    "max_metadata_bytes": int,
    "temperature": float,
}


def _layers(
    env: Mapping[str, str] | None,
    dotenv_path: str | os.PathLike[str] | None,
    secrets_path: str | os.PathLike[str] | None,
) -> list[Mapping[str, Any]]:
    """The sources below keyword arguments, highest priority first."""
    return [
        env if env is not None else os.environ,
        _read_dotenv(Path(dotenv_path)) if dotenv_path else {},
        _read_secrets(Path(secrets_path)) if secrets_path else {},
    ]


def read_environment(
    names: Iterable[str],
    *,
    env: Mapping[str, str] | None = None,
    dotenv_path: str | os.PathLike[str] | None = ".env",
    secrets_path: str | os.PathLike[str] | None = ".streamlit/secrets.toml",
) -> dict[str, str]:
    """Raw values of the variables ``names`` that are set, with the same precedence as
    :func:`resolve_settings` (environment > ``.env`` > Streamlit secrets).

    For configuration that is not a :class:`Settings` field (the server's limits);
    the caller converts and validates the strings.
    """
    layers = _layers(env, dotenv_path, secrets_path)
    found: dict[str, str] = {}
    for name in names:
        raw = next((layer[name] for layer in layers if layer.get(name)), None)
        if raw is not None:
            found[name] = str(raw)
    return found


def resolve_settings(
    *,
    env: Mapping[str, str] | None = None,
    dotenv_path: str | os.PathLike[str] | None = ".env",
    secrets_path: str | os.PathLike[str] | None = ".streamlit/secrets.toml",
    **overrides: Any,
) -> Settings:
    """Build :class:`Settings` from keyword arguments, the environment and the files.

    Keyword arguments whose value is ``None`` are treated as "not given".
    ``env`` replaces ``os.environ`` (tests); a path of ``None`` skips that file.
    """
    known = {f.name for f in fields(Settings)} - {"extra"}
    unknown = set(overrides) - known
    if unknown:
        raise ConfigurationError(f"unknown setting(s): {', '.join(sorted(unknown))}")
    layers = _layers(env, dotenv_path, secrets_path)
    values: dict[str, Any] = {}
    for name in known:
        if overrides.get(name) is not None:
            values[name] = overrides[name]
            continue
        for layer in layers:
            raw = next((layer[n] for n in ENV_NAMES.get(name, ()) if layer.get(n)), None)
            if raw is not None:
                values[name] = raw
                break
    for name, raw in list(values.items()):
        values[name] = _coerce(name, raw, _TYPES.get(name, str))
    if "storage_dir" in values:
        values["storage_dir"] = os.fspath(values["storage_dir"])
    settings = Settings(**values)
    _validate(settings)
    return settings


def _validate(settings: Settings) -> None:
    for name, choices in _CHOICES.items():
        value = getattr(settings, name)
        if value not in choices:
            raise ConfigurationError(
                f"setting {name!r} must be one of {', '.join(choices)}, got {value!r}"
            )
    for name in _POSITIVE:
        if getattr(settings, name) <= 0:
            raise ConfigurationError(f"setting {name!r} must be positive")
    if settings.cache_size < 0:
        raise ConfigurationError("setting 'cache_size' must be >= 0")
    if not settings.namespace or len(settings.namespace) > 128:
        raise ConfigurationError("namespace must be 1-128 characters")
    if not settings.namespace.encode("utf-8", "surrogatepass").decode("utf-8", "ignore") == (
        settings.namespace
    ):
        raise ConfigurationError("namespace must be valid Unicode text (no lone surrogates)")
