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
An id that already exists in the store is not imported twice. Streams: neither
side holds the whole file in memory.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .backends.base import NewMemory
from .embedders.base import normalize_rows
from .errors import ValidationError
from .types import SOURCES
from .validation import clean_metadata, clean_text, clean_timestamp

if TYPE_CHECKING:
    from .core import SemanticMemory

__all__ = ["FORMAT", "ImportReport", "export_lines", "import_lines"]

FORMAT = "sem-mem/1"


@dataclass(frozen=True)
class ImportReport:
    imported: int
    skipped_existing: int
    reembedded: int
    instructions: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "imported": self.imported,
            "skipped_existing": self.skipped_existing,
            "reembedded": self.reembedded,
            "instructions": self.instructions,
        }


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
    memory: SemanticMemory, lines: Iterable[str | bytes], *, batch: int = 500
) -> ImportReport:
    """Import JSON Lines produced by :func:`export_lines` into ``memory``'s namespace."""
    model = memory.embedder.model_id
    dims = memory.embedder.dimensions
    imported = skipped = reembedded = 0
    instructions = False
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
            vectors = memory.embedder.encode([p.text for p in missing])
            for item, vector in zip(missing, vectors, strict=True):
                item.embedding = vector
            reembedded += len(missing)
        results = memory.backend.add(memory.namespace, todo, dedupe=False)
        imported += sum(r.created for r in results)
        pending.clear()

    for number, raw in enumerate(lines, start=1):
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        if not text.strip():
            continue
        try:
            record = json.loads(text)
        except ValueError as exc:
            raise ValidationError(f"line {number} is not valid JSON: {exc}") from exc
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
            memory.set_instructions(str(record.get("text", "")))
            instructions = True
            continue
        if kind != "memory":
            raise ValidationError(f"line {number}: unknown record type {kind!r}")
        pending.append(_to_new_memory(memory, record, number, model, dims))
        if len(pending) >= batch:
            flush()
    flush()
    memory.refresh()
    return ImportReport(imported, skipped, reembedded, instructions)


def _to_new_memory(
    memory: SemanticMemory, record: dict[str, Any], number: int, model: str, dims: int
) -> NewMemory:
    from .core import text_hash

    try:
        text = clean_text(
            record.get("text"),
            field=f"line {number}: text",
            max_chars=memory.settings.max_text_chars,
        )
        metadata = clean_metadata(
            record.get("metadata") or {}, max_bytes=memory.settings.max_metadata_bytes
        )
        source = str(record.get("source") or "import")
        if source not in SOURCES:
            raise ValidationError(f"line {number}: unknown source {source!r}")
        status = str(record.get("status") or "active")
        if status not in ("active", "superseded"):
            raise ValidationError(f"line {number}: unknown status {status!r}")
        embedding = np.zeros(0, dtype=np.float32)
        blob = record.get("embedding")
        if blob and record.get("embedding_model") == model:
            vector = np.frombuffer(base64.b64decode(blob), dtype="<f4")
            if vector.size == dims and np.all(np.isfinite(vector)):
                # exported vectors are already unit length: keep them bit for bit
                norm = float(np.linalg.norm(vector))
                embedding = (
                    vector.copy()
                    if abs(norm - 1.0) <= 1e-6
                    else normalize_rows(vector.reshape(1, -1))[0]
                )
        return NewMemory(
            text=text,
            embedding=embedding,
            content_hash=text_hash(text),
            metadata=metadata,
            source=source,
            id=str(record["id"]) if record.get("id") else None,
            created_at=_number(record.get("created_at"), number, "created_at"),
            updated_at=_number(record.get("updated_at"), number, "updated_at"),
            hit_count=int(record.get("hit_count") or 0),
            status=status,
            superseded_by=record.get("superseded_by"),
            timestamp=clean_timestamp(record.get("timestamp"), f"line {number}: timestamp"),
            **_thread_fields(record, number),
        )
    except (TypeError, ValueError) as exc:
        if isinstance(exc, ValidationError):
            raise
        raise ValidationError(f"line {number}: {exc}") from exc


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
    return {"thread_id": thread_id, "position": position, "speaker": speaker}


def _number(value: Any, number: int, field: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValidationError(f"line {number}: {field} must be unix seconds, got {value!r}")
    return float(value)


def _dump(record: dict[str, Any]) -> str:
    return json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n"
