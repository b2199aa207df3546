"""Read a chat export: JSON Lines of messages, one conversation thread per file.

Each line is one message, a JSON object with:

* ``speaker`` or ``role`` (``"user"``/``"assistant"`` are written ``User``/``Assistant``);
* ``text`` or ``content``;
* optionally ``timestamp`` (ISO 8601 or unix seconds) and ``metadata`` (an object);
* optionally ``thread_id``: messages with different thread ids are different threads
  (otherwise the whole file is one thread, named after the file).

Blank lines are skipped. A message's position in its thread is its order in the file,
so ingesting the same export again refreshes its turns instead of copying them. The result feeds
:meth:`sem_mem.SemanticMemory.remember_conversation` thread by thread, which checks each
turn; a line that is not a JSON object is a :class:`~sem_mem.errors.ValidationError`
naming the file and line.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..errors import ValidationError

__all__ = ["CHAT_EXPORT_SUFFIXES", "is_chat_export", "parse_chat_export", "read_chat_export"]

CHAT_EXPORT_SUFFIXES = (".jsonl", ".ndjson")
_ROLES = {"user": "User", "assistant": "Assistant", "system": "System"}
_TURN_KEYS = ("speaker", "role", "text", "content", "timestamp", "metadata")


def is_chat_export(path: str | Path) -> bool:
    """True for a ``.jsonl``/``.ndjson`` file (read as a chat export, not as text)."""
    return Path(path).suffix.lower() in CHAT_EXPORT_SUFFIXES


def parse_chat_export(
    lines: Iterable[str], *, default_thread: str, name: str = "chat export"
) -> list[tuple[str, list[dict[str, Any]]]]:
    """``[(thread_id, turns), ...]`` in the order threads first appear."""
    threads: dict[str, list[dict[str, Any]]] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as exc:
            raise ValidationError(f"{name}, line {number}: not JSON ({exc.msg})") from exc
        if not isinstance(record, dict):
            raise ValidationError(f"{name}, line {number}: a message must be a JSON object")
        turn = {k: record[k] for k in _TURN_KEYS if record.get(k) is not None}
        for key in ("speaker", "role"):
            if isinstance(turn.get(key), str):
                turn[key] = _ROLES.get(turn[key].strip().lower(), turn[key])
        thread = record.get("thread_id")
        thread_id = str(thread) if thread not in (None, "") else default_thread
        turns = threads.setdefault(thread_id, [])
        # explicit positions: ingesting the same file again refreshes, never copies
        turn["position"] = len(turns)
        turns.append(turn)
    return list(threads.items())


def read_chat_export(path: str | Path) -> list[tuple[str, list[dict[str, Any]]]]:
    """The threads of a chat export file (see the module docstring)."""
    path = Path(path)
    try:
        with path.open(encoding="utf-8") as fp:
            return parse_chat_export(fp, default_thread=path.stem, name=path.name)
    except FileNotFoundError as exc:
        raise ValidationError(f"no such file: {path}") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ValidationError(f"cannot read {path}: {exc}") from exc
