"""What a write stores: the vectors of new memories and the rows of a conversation.

``SemanticMemory._store`` (the one write path of every remember and of document
ingestion) commits what these prepare. :func:`embed_texts` reuses any embedding the
store already has for the same text, so a text is embedded once per embedding space.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from .backends.base import StorageBackend
from .backends.rows import canonical_json
from .embedders.base import Embedder
from .embedders.pooling import speaker_label
from .hashing import text_hash
from .validation import MAX_SPEAKER_CHARS, Turn

__all__ = ["batch_thread", "conversation_rows", "embed_texts"]


def embed_texts(
    backend: StorageBackend,
    namespace: str,
    embedder: Embedder,
    texts: Sequence[str],
    progress: Callable[[int, int], None] | None = None,
    speakers: Sequence[str | None] | None = None,
) -> np.ndarray:
    """Vectors of memories with these ``texts`` (and ``speakers``, for conversation
    turns), reusing any embedding the store already has for the same text."""
    hashes = [text_hash(t) for t in texts]
    known = backend.cached_embeddings(namespace, embedder.model_id, list(dict.fromkeys(hashes)))
    missing = [i for i, h in enumerate(hashes) if h not in known]
    out = np.empty((len(texts), embedder.dimensions), dtype=np.float32)
    if missing:
        unique: dict[str, int] = {}
        for i in missing:
            unique.setdefault(hashes[i], i)
        order = list(unique.values())
        fresh = embedder.embed_memories(
            [texts[i] for i in order],
            [speakers[i] for i in order] if speakers is not None else None,
            progress=progress,
        )
        for i, vec in zip(order, fresh, strict=True):
            known[hashes[i]] = vec
    for i, h in enumerate(hashes):
        out[i] = known[h]
    return out


def conversation_rows(
    parsed: Sequence[Turn], base_meta: Mapping[str, Any], default_time: float | None
) -> tuple[list[str], list[dict[str, Any]], list[float | None], list[int], list[str]]:
    """Texts (``"Speaker: text"``), metadata, times, positions and speakers of checked turns."""
    texts: list[str] = []
    metas: list[dict[str, Any]] = []
    times: list[float | None] = []
    positions: list[int] = []
    speakers: list[str] = []
    for offset, turn in enumerate(parsed):
        texts.append(f"{turn.speaker}: {turn.text}")
        metas.append({**base_meta, **turn.metadata})
        times.append(turn.timestamp if turn.timestamp is not None else default_time)
        # no position: ``offset`` places after the thread's end, which the backend
        # reads in the transaction that inserts the turns, so two processes
        # appending to one thread at once never take the same places
        positions.append(turn.position if turn.position is not None else offset)
        speakers.append(turn.speaker)
    return texts, metas, times, positions, speakers


def batch_thread(
    texts: Sequence[str], metas: Sequence[Mapping[str, Any]]
) -> tuple[str, list[int], list[str | None]]:
    """Thread id, positions and speakers of a ``remember_batch(source="thread")``: the
    texts are the consecutive turns of one conversation, as the first release read them.

    A turn's speaker is its metadata's ``"speaker"`` (or ``"role"``) when that is a short
    string, else the ``"Name: "`` label the text opens with, else unknown. The thread id
    is derived from the first turn (its text and metadata), so storing the same batch
    again, or the same transcript grown longer, with ``dedupe`` refreshes the turns
    already stored and adds only the new ones (``dedupe`` matches a memory by text,
    metadata, thread and place).
    """
    speakers: list[str | None] = []
    for text, meta in zip(texts, metas, strict=True):
        named = meta.get("speaker", meta.get("role"))
        if isinstance(named, str) and 0 < len(named.strip()) <= MAX_SPEAKER_CHARS:
            speakers.append(named.strip())
        else:
            speakers.append(speaker_label(text))
    digest = hashlib.sha256(text_hash(texts[0]).encode())
    digest.update(canonical_json(metas[0]).encode())  # as dedupe compares metadata
    return f"batch-{digest.hexdigest()[:32]}", list(range(len(texts))), speakers
