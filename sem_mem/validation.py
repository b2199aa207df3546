"""Input checks shared by every path that stores or searches text.

Each check raises :class:`~sem_mem.errors.ValidationError` (or
:class:`~sem_mem.errors.LimitExceededError`, naming the limit) with a message that
says which field is wrong, before anything is written.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from .errors import LimitExceededError, ValidationError
from .types import SOURCES

if TYPE_CHECKING:
    from .backends.base import MemoryFilter

__all__ = [
    "MAX_INT",
    "MAX_METADATA_DEPTH",
    "Timestamp",
    "Turn",
    "check_int",
    "check_unicode",
    "clean_batch",
    "clean_metadata",
    "clean_source",
    "clean_text",
    "clean_timestamp",
    "clean_timestamps",
    "clean_turns",
    "parse_json_object",
]

#: when something happened: a datetime (naive means UTC), an ISO 8601 string, unix
#: seconds, or None (now)
Timestamp = datetime | str | float | None

#: timestamps must lie in years 1..9999 (what a datetime can hold, on every backend)
_MIN_TS = datetime(1, 1, 2, tzinfo=UTC).timestamp()
_MAX_TS = datetime(9999, 12, 30, tzinfo=UTC).timestamp()
#: speakers are names, not paragraphs
MAX_SPEAKER_CHARS = 200

#: integers are stored as SQLite INTEGER / PostgreSQL bigint: signed 64 bits
MAX_INT = 2**63 - 1
#: nesting deeper than this is refused before any recursive code sees it
MAX_METADATA_DEPTH = 32


def check_unicode(text: str, field: str) -> str:
    """``text`` if it encodes as UTF-8 (no lone surrogates such as ``"\\ud800"``)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValidationError(
            f"{field} contains a lone surrogate ({text[exc.start]!a}) at position {exc.start}, "
            "which is not valid Unicode text"
        ) from None
    return text


def check_int(value: int, field: str) -> int:
    """``value`` if it fits a signed 64-bit integer."""
    if not -MAX_INT - 1 <= value <= MAX_INT:
        raise ValidationError(f"{field} is an integer beyond 64 bits ({value.bit_length()} bits)")
    return value


def clean_text(text: object, *, field: str = "text", max_chars: int) -> str:
    """The text stripped of surrounding whitespace; not empty and at most ``max_chars``."""
    if not isinstance(text, str):
        raise ValidationError(f"{field} must be a string, got {type(text).__name__}")
    cleaned = text.strip()
    if not cleaned:
        raise ValidationError(f"{field} is empty (or only whitespace)")
    if "\x00" in cleaned:
        raise ValidationError(f"{field} contains a NUL character (\\x00), which cannot be stored")
    check_unicode(cleaned, field)
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
    _check_json(metadata, "metadata", 0)
    try:
        encoded = json.dumps(dict(metadata), allow_nan=False, ensure_ascii=False)
    except (TypeError, ValueError, RecursionError) as exc:
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


def _check_json(value: object, field: str, depth: int) -> None:
    """Refuse what JSON, UTF-8 or a 64-bit integer column cannot hold, naming the field.

    Iterative depth is bounded first, so no input reaches a RecursionError.
    """
    if depth > MAX_METADATA_DEPTH:
        raise ValidationError(
            f"{field} is nested more than {MAX_METADATA_DEPTH} levels deep (max_metadata_depth)"
        )
    if value is None or isinstance(value, bool):
        return
    if isinstance(value, str):
        check_unicode(value, field)
    elif isinstance(value, int):
        check_int(value, field)
    elif isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise ValidationError(f"{field} is {value}, which JSON cannot hold")
    elif isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValidationError(
                    f"{field} keys must be strings, got {key!r} ({type(key).__name__})"
                )
            check_unicode(key, f"{field} key {key!a}")
            _check_json(item, f"{field}[{key!a}]", depth + 1)
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _check_json(item, f"{field}[{i}]", depth + 1)
    else:
        raise ValidationError(f"{field} must be JSON-serialisable, got {type(value).__name__}")


def parse_json_object(raw: str | None, *, field: str, example: str) -> dict[str, Any] | None:
    """``raw`` (text a user typed: a CLI flag, a query parameter) as a JSON object, or
    None when absent; a ValidationError naming ``field`` (with ``example``) otherwise."""
    if raw is None:
        return None
    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise ValidationError(f"{field} must be a JSON object: {exc}") from exc
    if not isinstance(value, dict):
        raise ValidationError(f"{field} must be a JSON object, e.g. {example}")
    return value


def clean_source(source: object) -> str:
    if source not in SOURCES:
        raise ValidationError(f"source must be one of {', '.join(SOURCES)}, got {source!r}")
    return source


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


def clean_timestamp(value: object, field: str = "timestamp") -> float | None:
    """Unix seconds from a datetime (naive means UTC), an ISO 8601 string or a number.

    None stays None. Anything else, a non-finite number or a time outside years
    1-9999 is a ValidationError naming ``field``.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValidationError(f"{field} must be a datetime, an ISO 8601 string or unix seconds")
    if isinstance(value, str):
        text = value.strip()
        try:
            value = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)
        except ValueError as exc:
            raise ValidationError(
                f"{field} is not an ISO 8601 date or time: {value!r} (e.g. 2023-05-08T13:56:00)"
            ) from exc
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        seconds = value.timestamp()
    elif isinstance(value, (int, float)):
        seconds = float(value)
    else:
        raise ValidationError(
            f"{field} must be a datetime, an ISO 8601 string or unix seconds, "
            f"got {type(value).__name__}"
        )
    if not math.isfinite(seconds) or not _MIN_TS <= seconds <= _MAX_TS:
        raise ValidationError(f"{field} must be a finite time in years 1-9999, got {value!r}")
    return round(seconds, 6)


def clean_timestamps(value: object, count: int) -> list[float | None]:
    """One time per text of a batch: ``value`` is one time for all of them (see
    :func:`clean_timestamp`) or a list or tuple with one (or None) per text."""
    if not isinstance(value, (list, tuple)):
        return [clean_timestamp(value, "timestamp")] * count
    if len(value) != count:
        raise ValidationError(
            f"timestamp has {len(value)} entries for {count} texts: "
            "give one time for all of them or one (or None) per text"
        )
    return [clean_timestamp(v, f"timestamp[{i}]") for i, v in enumerate(value)]


def clean_filter(
    source: str | None,
    since: datetime | str | float | None,
    until: datetime | str | float | None,
    metadata: Mapping[str, Any] | None,
    thread_id: str | None = None,
    *,
    max_bytes: int,
) -> MemoryFilter:
    """Checked filters for list and recall (ValidationError names the bad one)."""
    from .backends.base import MemoryFilter

    if source is not None:
        clean_source(source)
    if metadata is not None:
        metadata = clean_metadata(metadata, max_bytes=max_bytes)
    if thread_id is not None and not isinstance(thread_id, str):
        raise ValidationError(f"thread_id must be a string, got {type(thread_id).__name__}")
    return MemoryFilter(
        source=source,
        since=clean_timestamp(since, "since"),
        until=clean_timestamp(until, "until"),
        metadata=metadata or None,
        thread_id=thread_id,
    )


def clean_instructions(text: object, *, max_chars: int) -> str:
    """Instructions as stored: a string of at most ``max_chars``, stripped, with one final
    newline (empty stays empty)."""
    if not isinstance(text, str):
        raise ValidationError("instructions must be a string")
    check_unicode(text, "instructions")
    if len(text) > max_chars:
        raise LimitExceededError(
            f"instructions have {len(text):,} characters; the limit is "
            f"{max_chars:,} (max_text_chars)",
            limit="max_text_chars",
            maximum=max_chars,
            actual=len(text),
        )
    return text.strip() + "\n" if text.strip() else ""


@dataclass(frozen=True)
class Turn:
    """One checked conversation turn."""

    speaker: str
    text: str
    timestamp: float | None
    metadata: dict[str, Any]
    position: int | None


def clean_turns(turns: object, *, max_chars: int) -> list[Turn]:
    """Checked turns of ``remember_conversation``; errors name the turn (``turns[3].text``)."""
    if isinstance(turns, (str, bytes, Mapping)) or not isinstance(turns, Sequence):
        raise ValidationError("turns must be a list of dicts (speaker/role, text/content)")
    out: list[Turn] = []
    for i, turn in enumerate(turns):
        where = f"turns[{i}]"
        if not isinstance(turn, Mapping):
            raise ValidationError(f"{where} must be a dict, got {type(turn).__name__}")
        unknown = set(turn) - {
            "speaker", "role", "text", "content", "timestamp", "metadata", "position",
        }  # fmt: skip
        if unknown:
            names = ", ".join(sorted(map(str, unknown)))
            raise ValidationError(f"{where} has unknown keys: {names}")
        speaker = turn.get("speaker", turn.get("role"))
        if speaker is None:
            raise ValidationError(f"{where} needs a 'speaker' (or 'role')")
        speaker = clean_text(speaker, field=f"{where}.speaker", max_chars=MAX_SPEAKER_CHARS)
        text = turn.get("text", turn.get("content"))
        if text is None:
            raise ValidationError(f"{where} needs a 'text' (or 'content')")
        text = clean_text(text, field=f"{where}.text", max_chars=max_chars)
        position = turn.get("position")
        if position is not None and (
            isinstance(position, bool) or not isinstance(position, int) or not 0 <= position < 2**53
        ):
            raise ValidationError(f"{where}.position must be an integer >= 0, got {position!r}")
        metadata = turn.get("metadata") or {}
        if not isinstance(metadata, Mapping):
            raise ValidationError(f"{where}.metadata must be a dict")
        out.append(
            Turn(
                speaker=speaker,
                text=text,
                timestamp=clean_timestamp(turn.get("timestamp"), f"{where}.timestamp"),
                metadata=dict(metadata),
                position=position,
            )
        )
    return out
