"""Storing a document in a memory: ``SemanticMemory.ingest_pdf`` does its work here.

:mod:`sem_mem.ingest` reads and chunks documents and knows nothing about storage; this
module stores the chunks through the memory's one write path, ``INGEST_SLICE`` at a
time, resumes an interrupted ingest, removes what a cancelled one stored, and lets one
ingest of a document (by content hash) run at a time per memory (:class:`DocumentTurns`).
"""

from __future__ import annotations

import os
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import IO, TYPE_CHECKING

from .types import IngestResult

if TYPE_CHECKING:
    from .core import SemanticMemory
    from .ingest import Chunk, Document

__all__ = ["INGEST_SLICE", "DocumentTurns", "ingest_document"]

#: ``ingest_pdf`` embeds and commits this many chunks at a time
INGEST_SLICE = 64


class DocumentTurns:
    """One ingest of a document (by content hash) at a time in one memory.

    ``lock`` is the memory's own lock: it guards the table of per-document locks.
    """

    def __init__(self, lock: threading.RLock) -> None:
        self._lock = lock
        # a lock per document hash being ingested, and how many ingests hold or wait for it
        self._document_locks: dict[str, threading.Lock] = {}
        self._document_users: Counter[str] = Counter()

    @contextmanager
    def turn(self, key: str) -> Iterator[None]:
        """One ingest of a document (by content hash) at a time in this namespace."""
        with self._lock:
            lock = self._document_locks.setdefault(key, threading.Lock())
            self._document_users[key] += 1
        try:
            with lock:
                yield
        finally:
            with self._lock:
                self._document_users[key] -= 1
                if not self._document_users[key]:
                    del self._document_users[key], self._document_locks[key]


def ingest_document(
    memory: SemanticMemory,
    source: str | os.PathLike[str] | bytes | IO[bytes],
    *,
    name: str | None,
    chunk_chars: int,
    overlap_chars: int,
    progress: Callable[[int, int], None] | None,
    cancel: threading.Event | None,
) -> IngestResult:
    """Read, chunk and store one document in ``memory`` (see ``SemanticMemory.ingest_pdf``)."""
    from .ingest import chunk_document, read_document

    doc = read_document(source, name=name, cancel=cancel)
    chunks = chunk_document(doc, chunk_chars=chunk_chars, overlap_chars=overlap_chars)
    if not chunks:
        note = "0 chunks: the PDF has no text layer" if not doc.has_text else "0 chunks: empty"
        return IngestResult(
            doc.name, doc.kind, len(doc.pages), 0, 0, has_text=doc.has_text, note=note
        )
    with memory._document_turns.turn(doc.sha256):
        # complete when every chunk is there: an interrupted ingest is resumed
        stored_before = memory.list(metadata={"doc_sha256": doc.sha256}, limit=len(chunks))
        if len(stored_before) >= len(chunks):
            return IngestResult(
                doc.name,
                doc.kind,
                len(doc.pages),
                len(chunks),
                0,
                already_ingested=True,
                note="already ingested (same content)",
            )
        stored = _store_chunks(memory, doc, chunks, progress, cancel)
    return IngestResult(doc.name, doc.kind, len(doc.pages), len(chunks), stored)


def _store_chunks(
    memory: SemanticMemory,
    doc: Document,
    chunks: Sequence[Chunk],
    progress: Callable[[int, int], None] | None,
    cancel: threading.Event | None,
) -> int:
    """Embed and commit ``chunks`` slice by slice; how many were new. On ``cancel``
    the ones this call created are deleted before IngestCancelled is raised."""
    from .ingest import IngestCancelled

    source = "pdf" if doc.kind == "pdf" else "document"
    total = len(chunks)
    created: list[str] = []
    start = 0

    def check() -> None:
        if cancel is not None and cancel.is_set():
            raise IngestCancelled(doc.name, stage="storing", done=start, total=total)

    def embedded(done: int, _total: int) -> None:  # after each embedding batch
        check()
        if progress is not None:
            progress(start + done, total)

    try:
        for start in range(0, total, INGEST_SLICE):
            check()
            texts, metas = memory.validate_batch(
                [c.text for c in chunks[start : start + INGEST_SLICE]],
                [c.metadata for c in chunks[start : start + INGEST_SLICE]],
                source,
            )
            results = memory._store(
                texts,
                metas,
                source=source,
                dedupe=True,
                progress=_offset_progress(progress, start, total),
                chunk_size=len(texts),
                timestamps=[None] * len(texts),
                vectors=memory._embed_texts(texts, embedded),
            )
            created += [r.id for r in results if r.created]
    except IngestCancelled as exc:
        if created:
            exc.removed = memory.backend.delete(memory.namespace, created)
            memory._after_write(created)
        raise
    return len(created)


def _offset_progress(
    progress: Callable[[int, int], None] | None, offset: int, total: int
) -> Callable[[int, int], None] | None:
    """A slice's progress callback that reports against the whole document's ``total``."""
    if progress is None:
        return None
    report = progress

    def shifted(done: int, _slice_total: int) -> None:
        report(offset + done, total)

    return shifted
