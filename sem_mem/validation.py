"""Input checks shared by every path that stores or searches text.

Each check raises :class:`~sem_mem.errors.ValidationError` (or
:class:`~sem_mem.errors.LimitExceededError`, naming the limit) with a message that
says which field is wrong, before anything is written.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from .errors import LimitExceededError, ValidationError
from .types import SOURCES

__all__ = ["clean_batch", "clean_metadata", "clean_source", "clean_text"]


def clean_text(text: object, *, field: str = "text", max_chars: int) -> str:
    """The text stripped of surrounding whitespace; not empty and at most ``max_chars``."""
    if not isinstance(text, str):
        raise ValidationError(f"{field} must be a string, got {type(text).__name__}")
    cleaned = text.strip()
    if not cleaned:
        raise ValidationError(f"{field} is empty (or only whitespace)")
    if "\x00" in cleaned:
        raise ValidationError(f"{field} contains a NUL character (\\x00), which cannot be stored")
    if len(cleaned) > max_chars:
        raise LimitExceededError(
            f"{field} has {len(cleaned):,} characters; the limit is {max_chars:,} (max_text_chars)",
            limit="max_text_chars",
            maximum=max_chars,
            actual=len(cleaned),
        )
    return cleaned


def clean_metadata(metadata: object, *, max_bytes: int) -> dict[str, Any]:
    """A JSON-safe copy of ``metadata`` (string keys, no NaN), at most ``max_bytes`` as JSON."""
    if metadata is None:
        return {}
    if not isinstance(metadata, Mapping):
        raise ValidationError(f"metadata must be a dict, got {type(metadata).__name__}")
    for key in metadata:
        if not isinstance(key, str):
            raise ValidationError(
                f"metadata keys must be strings, got {key!r} ({type(key).__name__})"
            )
    try:
        encoded = json.dumps(dict(metadata), allow_nan=False, ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"metadata must be JSON-serialisable: {exc}") from exc
    size = len(encoded.encode("utf-8"))
    if size > max_bytes:
        raise LimitExceededError(
            f"metadata is {size:,} bytes as JSON; the limit is {max_bytes:,} (max_metadata_bytes)",
            limit="max_metadata_bytes",
            maximum=max_bytes,
            actual=size,
        )
    return json.loads(encoded)  # type: ignore[no-any-return]


def clean_source(source: object) -> str:
    if source not in SOURCES:
        raise ValidationError(f"source must be one of {', '.join(SOURCES)}, got {source!r}")
    return source  # type: ignore[return-value]


def clean_batch(
    texts: Sequence[str],
    metadata: Mapping[str, Any] | Sequence[Mapping[str, Any] | None] | None,
    *,
    max_chars: int,
    max_bytes: int,
) -> tuple[list[str], list[dict[str, Any]]]:
    """Texts and one metadata dict per text (``metadata`` is one dict for all, or a list)."""
    if isinstance(texts, str):
        raise ValidationError("a batch takes a list of texts, not a single string")
    cleaned = [clean_text(t, field=f"texts[{i}]", max_chars=max_chars) for i, t in enumerate(texts)]
    if isinstance(metadata, Sequence) and not isinstance(metadata, (str, bytes)):
        if len(metadata) != len(cleaned):
            raise ValidationError(f"metadata has {len(metadata)} entries for {len(cleaned)} texts")
        return cleaned, [clean_metadata(m, max_bytes=max_bytes) for m in metadata]
    one = clean_metadata(metadata, max_bytes=max_bytes)
    return cleaned, [one] * len(cleaned)
