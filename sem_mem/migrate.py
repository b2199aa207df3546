"""Import memories written by the original sem-mem into a :class:`SemanticMemory`.

Two source formats are understood, both JSON files in one directory:

``bucket_*.json`` (the LSH era, :func:`migrate_lsh_to_hnsw`)
    Each bucket file holds entries; LSH stored the same entry in several buckets,
    so texts are de-duplicated across files (the first occurrence, in file-name
    order, wins). The reader is tolerant, because the format was never documented:
    a file may be a list of entries, a ``{key: entry}`` object, or an object with an
    ``"entries"``, ``"items"`` or ``"memories"`` list/object. An entry is a string
    (the text) or an object with the text under ``"text"``, ``"content"`` or
    ``"memory"``, optionally a ``"vector"``/``"embedding"``, ``"metadata"`` and a
    ``"created_at"``/``"timestamp"``.

``hnsw_metadata.json`` (+ ``hnsw_index.bin``, :func:`migrate_original_sem_mem`)
    ``{"entries": {id: {"text", "vector", "metadata", "created_at", ...}},
    "text_to_id": {...}, "next_id": N}``, plus ``"embedding_provider"``,
    ``"embedding_model"`` and ``"embedding_dim"`` in later versions. The vectors are
    in the JSON, so ``hnsw_index.bin`` (hnswlib's graph over them) is not read: the
    new store builds its own index.

Stored vectors are reused only when they come from the embedder the memory uses:
its ``model_id`` must denote the recorded model (``openai`` +
``text-embedding-3-small``, the original's default, when a file records nothing),
the length must equal its ``dimensions`` and every value must be finite. Any other
entry is embedded again with the memory's embedder (texts the store already holds
reuse their stored embedding, so a second run embeds nothing).

Imports are idempotent: memories are added with ``dedupe=True``, so an entry whose
text and metadata are already stored is refreshed, not copied. Every imported memory
has ``source="import"`` and metadata ``{"migrated_from": "lsh" | "hnsw"}`` (plus
``"original_id"`` for the HNSW format) on top of the entry's own metadata. Each run
logs one summary line on the ``sem_mem.migrate`` logger.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .backends.base import NewMemory
from .embedders.base import normalize_rows
from .errors import StorageError, ValidationError

if TYPE_CHECKING:
    from .core import SemanticMemory

__all__ = ["migrate_lsh_to_hnsw", "migrate_original_sem_mem"]

log = logging.getLogger("sem_mem.migrate")

#: what the original sem-mem embedded with when a file records no model
ORIGINAL_PROVIDER = "openai"
ORIGINAL_MODEL = "text-embedding-3-small"

HNSW_METADATA_FILE = "hnsw_metadata.json"
HNSW_INDEX_FILE = "hnsw_index.bin"

_TEXT_KEYS = ("text", "content", "memory")
_VECTOR_KEYS = ("vector", "embedding")
_TIME_KEYS = ("created_at", "timestamp")
_CONTAINER_KEYS = ("entries", "items", "memories")
#: original provider name -> prefix of the equivalent Sem-Mem ``model_id``
_PROVIDER_PREFIXES = {
    "openai": ("openai",),
    "ollama": ("openai-compatible",),
    "sentence_transformers": ("local",),
    "sentence-transformers": ("local",),
}


@dataclass
class _Entry:
    """One importable entry, as read from a file (text already stripped)."""

    text: str
    metadata: dict[str, Any]
    vector: object  # raw JSON value, None when absent
    created_at: float | None
    recorded: tuple[str | None, str | None]  # (provider, model) the vector came from


@dataclass
class _Summary:
    created: int = 0
    refreshed: int = 0
    duplicates: int = 0
    reused_vectors: int = 0
    embedded: int = 0
    skipped: Counter[str] = field(default_factory=Counter)


# ----------------------------------------------------------------------------- public API


def migrate_lsh_to_hnsw(
    source_dir: str | os.PathLike[str],
    memory: SemanticMemory | None = None,
    *,
    namespace: str | None = None,
    embedding_model: str | None = None,
    reuse_vectors: bool = True,
) -> int:
    """Import the old LSH bucket files (``bucket_*.json``) of ``source_dir``.

    Args:
        source_dir: directory holding the ``bucket_*.json`` files.
        memory: where to import; by default a ``SemanticMemory`` opened on
            ``source_dir`` itself (closed again before returning).
        namespace: target namespace (default: the memory's own).
        embedding_model: the model the bucket vectors were made with, overriding what
            the files record (an OpenAI model name, or a full Sem-Mem ``model_id``
            such as ``"local:sentence-transformers/all-MiniLM-L6-v2"``).
        reuse_vectors: ``False`` re-embeds every text, whatever the files record.

    Returns:
        How many memories were created (entries already stored are not counted).

    Raises:
        ValidationError: ``source_dir`` is not a directory.
        StorageError: a bucket file cannot be read or is not valid JSON.
    """
    root = _check_dir(source_dir)
    files = sorted(root.glob("bucket_*.json"), key=_natural_key)
    if not files:
        log.info("no LSH bucket files (bucket_*.json) in %s: nothing to import", root)
        return 0
    summary = _Summary()
    entries: list[_Entry] = []
    for path in files:
        data = _load_json(path)
        recorded = _recorded_model(data, default=(ORIGINAL_PROVIDER, ORIGINAL_MODEL))
        for raw in _bucket_items(data):
            entry = _read_entry(raw, recorded, {"migrated_from": "lsh"}, summary)
            if entry is not None:
                entries.append(entry)
    with _target(root, memory, namespace) as (mem, ns):
        _import(mem, ns, entries, summary, embedding_model, reuse_vectors)
    _log_summary(summary, root, "lsh")
    return summary.created


def migrate_original_sem_mem(
    source_dir: str | os.PathLike[str],
    memory: SemanticMemory | None = None,
    *,
    namespace: str | None = None,
    embedding_model: str | None = None,
    reuse_vectors: bool = True,
) -> int:
    """Import a directory written by the original sem-mem (``hnsw_metadata.json``).

    Only ``hnsw_metadata.json`` is read: it holds every text, vector and metadata
    object; ``hnsw_index.bin`` is hnswlib's graph over the same vectors and is
    rebuilt by the new store. The original integer id of each entry is kept as
    ``metadata["original_id"]`` (new memories get new ids), and its ``created_at``
    is kept when it parses.

    Args:
        source_dir: the original ``storage_dir`` (e.g. ``"./local_memory"``).
        memory: where to import; by default a ``SemanticMemory`` opened on
            ``source_dir`` itself (closed again before returning).
        namespace: target namespace (default: the memory's own).
        embedding_model: the model the vectors were made with, overriding what the
            file records (default: the file's ``embedding_provider``/``embedding_model``,
            else OpenAI ``text-embedding-3-small``).
        reuse_vectors: ``False`` re-embeds every text, whatever the file records.

    Returns:
        How many memories were created (entries already stored are not counted).

    Raises:
        ValidationError: ``source_dir`` is not a directory.
        StorageError: ``hnsw_metadata.json`` cannot be read, is not valid JSON, or has
            no ``"entries"`` object.
    """
    root = _check_dir(source_dir)
    path = root / HNSW_METADATA_FILE
    if not path.is_file():
        if (root / HNSW_INDEX_FILE).is_file():
            log.warning(
                "%s has %s but no %s: the texts are only in the JSON file, nothing to import",
                root,
                HNSW_INDEX_FILE,
                HNSW_METADATA_FILE,
            )
        else:
            log.info("no %s in %s: nothing to import", HNSW_METADATA_FILE, root)
        return 0
    data = _load_json(path)
    raw_entries = data.get("entries") if isinstance(data, dict) else None
    if isinstance(raw_entries, list):
        raw_entries = dict(enumerate(raw_entries))
    if not isinstance(raw_entries, dict):
        raise StorageError(f"{path} is not an original sem-mem index: no 'entries' object")
    recorded = _recorded_model(data, default=(ORIGINAL_PROVIDER, ORIGINAL_MODEL))
    summary = _Summary()
    entries: list[_Entry] = []
    for key in sorted(raw_entries, key=_natural_key):
        extra = {"migrated_from": "hnsw", "original_id": _original_id(key)}
        entry = _read_entry(raw_entries[key], recorded, extra, summary)
        if entry is not None:
            entries.append(entry)
    with _target(root, memory, namespace) as (mem, ns):
        _import(mem, ns, entries, summary, embedding_model, reuse_vectors)
    _log_summary(summary, root, "hnsw")
    return summary.created


# ----------------------------------------------------------------------------- reading


def _check_dir(source_dir: str | os.PathLike[str]) -> Path:
    root = Path(os.fspath(source_dir)).expanduser()
    if not root.is_dir():
        what = "is not a directory" if root.exists() else "does not exist"
        raise ValidationError(f"source_dir {os.fspath(source_dir)!r} {what}")
    return root


def _load_json(path: Path) -> Any:
    try:
        with path.open(encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as exc:
        raise StorageError(f"{path} is not valid JSON: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise StorageError(f"{path} is not UTF-8 text: {exc}") from exc
    except OSError as exc:
        raise StorageError(f"cannot read {path}: {exc}") from exc


def _natural_key(value: object) -> tuple[Any, ...]:
    """Sort ``bucket_2`` before ``bucket_10`` and ``"2"`` before ``"10"``."""
    text = value.name if isinstance(value, Path) else str(value)
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in re.split(r"(\d+)", text))


def _original_id(key: object) -> int | str:
    text = str(key)
    return int(text) if text.isdigit() else text


def _recorded_model(data: object, *, default: tuple[str, str]) -> tuple[str | None, str | None]:
    """(provider, model) a file says its vectors come from, else ``default``."""
    if isinstance(data, dict):
        model = data.get("embedding_model")
        if isinstance(model, str) and model:
            provider = data.get("embedding_provider")
            return (provider if isinstance(provider, str) and provider else None, model)
    return default


def _bucket_items(data: object) -> Iterator[object]:
    """The raw entries of one bucket file, whatever plausible shape it has."""
    if isinstance(data, list):
        yield from data
    elif isinstance(data, dict):
        for key in _CONTAINER_KEYS:
            inner = data.get(key)
            if isinstance(inner, (list, dict)):
                yield from inner if isinstance(inner, list) else inner.values()
                return
        if any(isinstance(data.get(key), str) for key in _TEXT_KEYS):
            yield data  # the file is a single entry
            return
        for key, value in data.items():
            if key in ("embedding_model", "embedding_provider", "embedding_dim"):
                continue
            if isinstance(value, list) and not _looks_like_vector(value):
                yield from value  # {bucket_hash: [entries]}
            else:
                yield value
    else:
        yield data  # reported as a malformed entry


def _looks_like_vector(value: list[Any]) -> bool:
    return bool(value) and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in value
    )


def _read_entry(
    raw: object,
    recorded: tuple[str | None, str | None],
    extra: Mapping[str, Any],
    summary: _Summary,
) -> _Entry | None:
    """Turn a raw JSON entry into an :class:`_Entry`, or count why it is skipped."""
    vector: object = None
    created: float | None = None
    metadata: object = None
    if isinstance(raw, str):
        text: object = raw
    elif isinstance(raw, dict):
        text = next((raw[k] for k in _TEXT_KEYS if k in raw), None)
        vector = next((raw[k] for k in _VECTOR_KEYS if raw.get(k) is not None), None)
        metadata = raw.get("metadata")
        created = next(
            (t for t in (_timestamp(raw.get(k)) for k in _TIME_KEYS) if t is not None), None
        )
    else:
        summary.skipped["malformed entry"] += 1
        return None
    if not isinstance(text, str):
        summary.skipped["no text"] += 1
        return None
    text = text.strip()
    if not text:
        summary.skipped["empty text"] += 1
        return None
    if metadata is None:
        metadata = {}
    if not isinstance(metadata, dict):
        summary.skipped["metadata is not an object"] += 1
        return None
    return _Entry(
        text=text,
        metadata={**metadata, **extra},
        vector=vector,
        created_at=created,
        recorded=recorded,
    )


def _timestamp(value: object) -> float | None:
    """Unix seconds from a number or an ISO 8601 string (naive means local time)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str):
        try:
            seconds = datetime.fromisoformat(value.strip()).timestamp()
        except (ValueError, OverflowError, OSError):
            return None
    else:
        return None
    return seconds if math.isfinite(seconds) and seconds > 0 else None


# ----------------------------------------------------------------------------- writing


@contextmanager
def _target(
    root: Path, memory: SemanticMemory | None, namespace: str | None
) -> Iterator[tuple[SemanticMemory, str]]:
    """The memory to import into (opened on ``root`` if none is given) and the namespace."""
    if memory is not None:
        yield memory, namespace or memory.namespace
        return
    from .core import SemanticMemory

    opened = SemanticMemory(storage_dir=os.fspath(root), namespace=namespace)
    try:
        yield opened, opened.namespace
    finally:
        opened.close()


def _import(
    memory: SemanticMemory,
    namespace: str,
    entries: Sequence[_Entry],
    summary: _Summary,
    embedding_model: str | None,
    reuse_vectors: bool,
) -> None:
    """Validate, de-duplicate, embed what needs it and add everything in one batch."""
    from .hashing import text_hash

    limit_chars = memory.settings.max_text_chars
    limit_meta = memory.settings.max_metadata_bytes
    seen: set[str] = set()
    kept: list[_Entry] = []
    for entry in entries:
        if entry.text in seen:
            summary.duplicates += 1
            continue
        seen.add(entry.text)
        if len(entry.text) > limit_chars:
            summary.skipped[f"text over max_text_chars ({limit_chars:,})"] += 1
            continue
        try:
            encoded = json.dumps(entry.metadata, allow_nan=False, ensure_ascii=False)
        except (TypeError, ValueError):
            summary.skipped["metadata not JSON-serialisable"] += 1
            continue
        if len(encoded.encode("utf-8")) > limit_meta:
            summary.skipped[f"metadata over max_metadata_bytes ({limit_meta:,})"] += 1
            continue
        kept.append(entry)
    if not kept:
        return

    embedder = memory.embedder
    vectors: list[np.ndarray | None] = []
    for entry in kept:
        recorded = (None, embedding_model) if embedding_model else entry.recorded
        usable = reuse_vectors and _same_model(recorded, embedder.model_id)
        vectors.append(_usable_vector(entry.vector, embedder.dimensions) if usable else None)
    summary.reused_vectors = sum(v is not None for v in vectors)

    missing = [i for i, v in enumerate(vectors) if v is None]
    if missing:
        hashes = {kept[i].text: text_hash(kept[i].text) for i in missing}
        known = memory.backend.cached_embeddings(
            memory.namespace, embedder.model_id, list(hashes.values())
        )
        to_embed = [t for t, h in hashes.items() if h not in known]
        if to_embed:
            for text, vec in zip(to_embed, embedder.embed_memories(to_embed), strict=True):
                known[hashes[text]] = vec
            summary.embedded = len(to_embed)
        for i in missing:
            vectors[i] = np.asarray(known[hashes[kept[i].text]], dtype=np.float32)

    items = [
        NewMemory(
            text=entry.text,
            embedding=vec,
            content_hash=text_hash(entry.text),
            metadata=entry.metadata,
            source="import",
            created_at=entry.created_at,
        )
        for entry, vec in zip(kept, vectors, strict=True)
        if vec is not None
    ]
    results = memory.backend.add(namespace, items, dedupe=True)
    summary.created = sum(r.created for r in results)
    summary.refreshed = len(results) - summary.created
    # the core keeps a result cache: pick up the new commits so recall sees them
    memory._sync()


def _same_model(recorded: tuple[str | None, str | None], model_id: str) -> bool:
    """Whether ``model_id`` (a Sem-Mem embedder's) denotes the recorded model."""
    provider, model = recorded
    if not model:
        return False
    if model == model_id:
        return True
    if ":" in model:  # already a full Sem-Mem model_id, and a different one
        return False
    key = (provider or ORIGINAL_PROVIDER).lower()
    prefixes = _PROVIDER_PREFIXES.get(key, ())
    names = {model, model.removeprefix("sentence-transformers/")}
    if key in ("sentence_transformers", "sentence-transformers"):
        names.add(f"sentence-transformers/{model.removeprefix('sentence-transformers/')}")
    return any(f"{prefix}:{name}" == model_id for prefix in prefixes for name in names)


def _usable_vector(raw: object, dimensions: int) -> np.ndarray | None:
    """The stored vector as a unit float32 row, or None if it cannot be used as is."""
    if not isinstance(raw, list) or len(raw) != dimensions or not _looks_like_vector(raw):
        return None
    vec = np.asarray(raw, dtype=np.float64)
    if not np.all(np.isfinite(vec)) or not np.any(vec):
        return None
    out = normalize_rows(vec.reshape(1, -1))[0]
    return out if np.all(np.isfinite(out)) else None


def _log_summary(summary: _Summary, root: Path, fmt: str) -> None:
    skipped = sum(summary.skipped.values())
    reasons = ", ".join(f"{n} {why}" for why, n in sorted(summary.skipped.items()))
    log.info(
        "imported %s (%s format): %d created, %d already present, %d duplicate texts, "
        "%d skipped%s; %d stored vectors reused, %d texts embedded",
        root,
        fmt,
        summary.created,
        summary.refreshed,
        summary.duplicates,
        skipped,
        f" ({reasons})" if reasons else "",
        summary.reused_vectors,
        summary.embedded,
    )
