"""Export and import a namespace as JSON Lines, losslessly.

One JSON object per line. The first line describes the export; then one line per
memory (superseded ones included) and one for the instructions::

    {"type": "header", "format": "sem-mem/1", "namespace": ..., "embedding_model": ...,
     "dimensions": ...}
    {"type": "memory", "id": ..., "text": ..., "metadata": {...}, "source": ..., "status": ...,
     "superseded_by": ..., "created_at": 1732540000.123456, "updated_at": ..., "hit_count": 3,
     "embedding_model": ..., "embedding": "<base64 little-endian float32>"}
    {"type": "instructions", "text": "..."}

Importing keeps ids, timestamps, hit counts and statuses. Embeddings are reused when
the importing store uses the same model and dimension, and recomputed otherwise.
An id that already exists in the namespace is not imported twice (ids are unique per
namespace: another namespace holding the same id makes no difference). Streams: neither
side holds the whole file in memory.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, AnyStr

import numpy as np

from .backends.base import NewMemory
from .embedders.base import normalize_rows
from .errors import LimitExceededError, ValidationError
from .hashing import text_hash
from .types import SOURCES
from .validation import MAX_INT, check_unicode, clean_metadata, clean_text, clean_timestamp

if TYPE_CHECKING:
    from .config import Settings
    from .core import SemanticMemory

__all__ = [
    "FORMAT",
    "ImportReport",
    "bounded_lines",
    "export_lines",
    "import_lines",
    "max_line_bytes",
]

FORMAT = "sem-mem/1"


@dataclass(frozen=True)
class ImportReport:
    imported: int
    skipped_existing: int
    reembedded: int
    instructions: bool
    #: the file had instructions, not imported (``with_instructions`` was not given)
    instructions_skipped: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "imported": self.imported,
            "skipped_existing": self.skipped_existing,
            "reembedded": self.reembedded,
            "instructions": self.instructions,
            "instructions_skipped": self.instructions_skipped,
        }


def max_line_bytes(settings: Settings) -> int:
    """The longest import line accepted (``max_import_line_bytes``), from the text and
    metadata limits: every character JSON-escaped (6 bytes) plus 1 MiB for the rest
    (ids, timestamps, a base64 embedding of up to ~190,000 dimensions)."""
    return 6 * (settings.max_text_chars + settings.max_metadata_bytes) + 2**20


def bounded_lines(readline: Callable[[int], AnyStr], limit: int) -> Iterator[AnyStr]:
    """Lines from ``readline`` (a file's), refusing one longer than ``limit`` before it
    is read whole: a file with no newline is never held in memory."""
    number = 0
    while True:
        line = readline(limit + 1)
        if not line:
            return
        number += 1
        if len(line) > limit:
            raise LimitExceededError(
                f"line {number} of the import is longer than {limit:,} bytes "
                "(max_import_line_bytes)",
                limit="max_import_line_bytes",
                maximum=limit,
                actual=len(line),
            )
        yield line


def export_lines(memory: SemanticMemory, *, include_embeddings: bool = True) -> Iterator[str]:
    """The namespace as JSON Lines (each string ends with a newline)."""
    space = memory.backend.embedding_space()
    yield _dump(
        {
            "type": "header",
            "format": FORMAT,
            "namespace": memory.namespace,
            "embedding_model": space[0] if space else None,
            "dimensions": space[1] if space else None,
        }
    )
    for stored in memory.backend.iter_memories(memory.namespace):
        m = stored.memory
        line: dict[str, Any] = {
            "type": "memory",
            "id": m.id,
            "text": m.text,
            "metadata": m.metadata,
            "source": m.source,
            "status": m.status,
            "superseded_by": m.superseded_by,
            "created_at": m.created_at.timestamp(),
            "updated_at": m.updated_at.timestamp(),
            "hit_count": m.hit_count,
            "embedding_model": m.embedding_model,
            "timestamp": m.happened_at.timestamp(),
        }
        if m.thread_id is not None:
            line.update(thread_id=m.thread_id, position=m.position, speaker=m.speaker)
        if include_embeddings:
            line["embedding"] = base64.b64encode(
                np.ascontiguousarray(stored.embedding, dtype="<f4").tobytes()
            ).decode("ascii")
        yield _dump(line)
    instructions = memory.instructions
    if instructions:
        yield _dump({"type": "instructions", "text": instructions})


def import_lines(
    memory: SemanticMemory,
    lines: Iterable[str | bytes],
    *,
    batch: int = 500,
    with_instructions: bool = False,
) -> ImportReport:
    """Import JSON Lines produced by :func:`export_lines` into ``memory``'s namespace.

    An ``instructions`` line replaces the namespace's persistent instructions (which
    go into every system prompt) only with ``with_instructions``: a file from
    elsewhere must not silently become instructions. Otherwise it is skipped and
    reported as ``instructions_skipped``.
    """
    model = memory.embedder.model_id
    dims = memory.embedder.dimensions
    imported = skipped = reembedded = 0
    instructions = instructions_skipped = False
    pending: list[NewMemory] = []

    def flush() -> None:
        nonlocal imported, skipped, reembedded
        if not pending:
            return
        existing = memory.backend.get_many(memory.namespace, [p.id for p in pending if p.id])
        todo = [p for p in pending if p.id not in existing]
        skipped += len(pending) - len(todo)
        missing = [p for p in todo if p.embedding.size == 0]
        if missing:
            vectors = memory.embedder.embed_memories(
                [p.text for p in missing], [p.speaker for p in missing]
            )
            for item, vector in zip(missing, vectors, strict=True):
                item.embedding = vector
            reembedded += len(missing)
        results = memory.backend.add(memory.namespace, todo, dedupe=False)
        imported += sum(r.created for r in results)
        pending.clear()

    for number, raw in enumerate(lines, start=1):
        try:
            text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        except UnicodeDecodeError as exc:
            raise ValidationError(f"line {number} is not UTF-8: {exc}") from None
        if not text.strip():
            continue
        try:
            record = json.loads(text)
        except (ValueError, RecursionError) as exc:
            raise ValidationError(f"line {number} is not valid JSON: {exc}") from None
        if not isinstance(record, dict):
            raise ValidationError(f"line {number} is not a JSON object")
        kind = record.get("type")
        if kind == "header":
            if record.get("format") != FORMAT:
                raise ValidationError(
                    f"line {number}: unsupported export format {record.get('format')!r} "
                    f"(expected {FORMAT!r})"
                )
            continue
        if kind == "instructions":
            text = record.get("text", "")
            if not isinstance(text, str):
                raise ValidationError(f"line {number}: instructions text must be a string")
            if with_instructions:
                memory.set_instructions(text)
                instructions = True
            else:
                instructions_skipped = True
            continue
        if kind != "memory":
            raise ValidationError(f"line {number}: unknown record type {kind!r}")
        pending.append(_to_new_memory(memory, record, number, model, dims))
        if len(pending) >= batch:
            flush()
    flush()
    memory.refresh()
    return ImportReport(imported, skipped, reembedded, instructions, instructions_skipped)


def _to_new_memory(
    memory: SemanticMemory, record: dict[str, Any], number: int, model: str, dims: int
) -> NewMemory:
    """One memory line, every field checked (type, finite, in range) before anything is
    stored: an out-of-range timestamp or count once broke list, recall and export."""

    def field(name: str) -> str:
        return f"line {number}: {name}"

    text = clean_text(
        record.get("text"), field=field("text"), max_chars=memory.settings.max_text_chars
    )
    try:
        metadata = clean_metadata(
            record.get("metadata") or {}, max_bytes=memory.settings.max_metadata_bytes
        )
    except ValidationError as exc:
        raise type(exc)(f"line {number}: {exc}") from None
    source = _string(record.get("source") or "import", field("source"))
    if source not in SOURCES:
        raise ValidationError(f"line {number}: unknown source {source!r}")
    status = _string(record.get("status") or "active", field("status"))
    if status not in ("active", "superseded"):
        raise ValidationError(f"line {number}: unknown status {status!r}")
    memory_id = record.get("id")
    superseded_by = record.get("superseded_by")
    return NewMemory(
        text=text,
        embedding=_embedding(record, number, model, dims),
        content_hash=text_hash(text),
        metadata=metadata,
        source=source,
        id=_string(memory_id, field("id"), MAX_ID_CHARS) if memory_id else None,
        created_at=_timestamp(record.get("created_at"), field("created_at")),
        updated_at=_timestamp(record.get("updated_at"), field("updated_at")),
        hit_count=_count(record.get("hit_count"), field("hit_count")),
        status=status,
        superseded_by=(
            _string(superseded_by, field("superseded_by"), MAX_ID_CHARS)
            if superseded_by is not None
            else None
        ),
        timestamp=clean_timestamp(record.get("timestamp"), field("timestamp")),
        **_thread_fields(record, number),
    )


def _thread_fields(record: dict[str, Any], number: int) -> dict[str, Any]:
    """A conversation turn's thread, position and speaker (all three, or none)."""
    thread_id = record.get("thread_id")
    if thread_id is None:
        return {}
    position, speaker = record.get("position"), record.get("speaker")
    if not isinstance(thread_id, str) or not thread_id or len(thread_id) > 256:
        raise ValidationError(f"line {number}: thread_id must be a string of 1-256 characters")
    if isinstance(position, bool) or not isinstance(position, int) or not 0 <= position < 2**53:
        raise ValidationError(f"line {number}: position must be an integer >= 0")
    if speaker is not None and (not isinstance(speaker, str) or len(speaker) > 200):
        raise ValidationError(f"line {number}: speaker must be a string of at most 200 chars")
    check_unicode(thread_id, f"line {number}: thread_id")
    if speaker is not None:
        check_unicode(speaker, f"line {number}: speaker")
    return {"thread_id": thread_id, "position": position, "speaker": speaker}


#: ids are UUIDs when Sem-Mem makes them; imported ones may be any short string
MAX_ID_CHARS = 256
#: datetime's range (years 1-9999) as unix seconds: what every read path can show
MIN_TIMESTAMP, MAX_TIMESTAMP = -62135596800.0, 253402300799.0


def _string(value: Any, field: str, max_chars: int = 64) -> str:
    if not isinstance(value, str) or not value:
        raise ValidationError(f"{field} must be a non-empty string, got {value!r:.80}")
    if len(value) > max_chars:
        raise ValidationError(f"{field} has {len(value)} characters; the limit is {max_chars}")
    return check_unicode(value, field)


def _timestamp(value: Any, field: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValidationError(f"{field} must be unix seconds, got {value!r:.80}")
    if not (math.isfinite(value) and MIN_TIMESTAMP <= value <= MAX_TIMESTAMP):
        raise ValidationError(
            f"{field} is {value!r:.40}, outside unix seconds of years 1-9999 "
            f"({MIN_TIMESTAMP:.0f} to {MAX_TIMESTAMP:.0f})"
        )
    return float(value)


def _count(value: Any, field: str) -> int:
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(f"{field} must be a whole number, got {value!r:.80}")
    if not 0 <= value <= MAX_INT:
        raise ValidationError(f"{field} is {value!r:.40}, outside 0 to {MAX_INT}")
    return value


def _embedding(record: dict[str, Any], number: int, model: str, dims: int) -> np.ndarray:
    """The exported vector if it is usable in this store, else empty (recomputed)."""
    blob = record.get("embedding")
    if not blob or record.get("embedding_model") != model:
        return np.zeros(0, dtype=np.float32)
    if not isinstance(blob, str):
        raise ValidationError(f"line {number}: embedding must be a base64 string")
    try:
        raw = base64.b64decode(blob, validate=True)
    except ValueError as exc:
        raise ValidationError(f"line {number}: embedding is not valid base64: {exc}") from None
    if len(raw) != dims * 4:
        return np.zeros(0, dtype=np.float32)
    vector = np.frombuffer(raw, dtype="<f4")
    norm = float(np.linalg.norm(vector)) if np.all(np.isfinite(vector)) else 0.0
    if norm == 0.0 or not math.isfinite(norm):
        return np.zeros(0, dtype=np.float32)
    # exported vectors are already unit length: keep them bit for bit
    if abs(norm - 1.0) <= 1e-6:
        return vector.copy()
    normalised: np.ndarray = normalize_rows(vector.reshape(1, -1))[0]
    return normalised


def _dump(record: dict[str, Any]) -> str:
    return json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n"
