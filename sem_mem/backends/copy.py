"""Copy a whole store from one backend to another (``sem-mem migrate --to postgresql://…``).

Every namespace's memories move with their ids, texts, metadata, sources, statuses
(``superseded_by`` included), timestamps, hit counts, last access and embeddings: no
text is embedded again, so both sides must use the same embedding model. History is
copied when the destination can take it (``copies_history``; the source is read
with ``iter_history`` where it copies history too, else memory by memory); otherwise each memory
starts with its ``imported`` event. Instructions are copied for every namespace that
holds memories, and for ``default``. Chat sessions are copied for every namespace that
holds any, with every response id recorded for them (so a client's
``previous_response_id`` still finds its session); a copied session starts again at
revision 1 in the destination, where it loads and keeps saving like any other.

The copy is resumable: memories whose id already exists in the destination are skipped
(their history is only copied into namespaces that were empty when the copy started),
and so are sessions the destination already holds (only response ids it lacks are added,
never over a session's turns: one continued in the destination keeps them).
At the end the copy is verified: per-namespace counts, and for a sample of memories the
stored record and a vector recall of the memory's own embedding on both sides.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from contextlib import nullcontext
from dataclasses import replace
from typing import Any

import numpy as np

from ..errors import EmbeddingMismatchError, StorageError
from ..hashing import text_hash
from ..types import HistoryEvent
from .base import ChatSessionRecord, NewMemory, StorageBackend, StoredMemory

__all__ = ["copy_store", "verify_copy"]

Progress = Callable[[int, int], None]
#: copies at least this large (and at least as large as the destination) load in bulk:
#: a destination with ``bulk_load()`` (PostgreSQL) builds its vector index once at the end
BULK_COPY_MIN = 10_000


def _describe(backend: StorageBackend) -> str:
    return f"{backend.name} store {backend.location}".strip()


def _total(backend: StorageBackend, namespace: str) -> int:
    """Memories of the namespace, superseded included."""
    return backend.count(namespace) + int(backend.stats(namespace).get("superseded") or 0)


def _batches(items: Iterable[StoredMemory], size: int) -> Iterator[list[StoredMemory]]:
    batch: list[StoredMemory] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _new_memory(stored: StoredMemory) -> NewMemory:
    m = stored.memory
    return NewMemory(
        text=m.text,
        embedding=stored.embedding,
        content_hash=text_hash(m.text),
        metadata=m.metadata,
        source=m.source,
        id=m.id,
        created_at=round(m.created_at.timestamp(), 6),
        updated_at=round(m.updated_at.timestamp(), 6),
        hit_count=m.hit_count,
        status=m.status,
        superseded_by=m.superseded_by,
    )


def copy_store(
    src: StorageBackend,
    dst: StorageBackend,
    *,
    progress: Progress | None = None,
    batch: int = 1000,
    verify: bool = True,
    sample: int = 20,
) -> dict[str, Any]:
    """Copy every namespace of ``src`` into ``dst``; returns a report (see module doc).

    Raises EmbeddingMismatchError when ``dst`` is bound to another embedding space, and
    StorageError when the verification finds a difference. ``progress(done, total)``
    counts memories over all namespaces.
    """
    space = src.embedding_space()
    report: dict[str, Any] = {
        "source": _describe(src),
        "destination": _describe(dst),
        "embedding_model": space[0] if space else None,
        "dimensions": space[1] if space else None,
        "namespaces": {},
        "memories": 0,
        "skipped_existing": 0,
        "history_events": 0,
        "instructions": 0,
        "chat_sessions": 0,
        "chat_sessions_skipped_existing": 0,
        "chat_response_ids": 0,
    }
    if space is None:  # no memory ever stored: only chat sessions can exist
        _copy_sessions(src, dst, report)
        return report
    target = dst.embedding_space()
    if target is None:
        dst.bind_embedding_space(*space)
    elif target != space:
        raise EmbeddingMismatchError(
            f"cannot copy: the source uses embedding model {space[0]!r} ({space[1]} "
            f"dimensions) but the destination ({_describe(dst)}) was built with "
            f"{target[0]!r} ({target[1]} dimensions). Copy into an empty store, or re-embed "
            f"one side first (sem-mem reembed) so that both use the same model."
        )
    report["history"] = (
        "copied" if dst.copies_history else "not supported by the destination backend"
    )
    namespaces = src.namespaces()
    totals = {ns: _total(src, ns) for ns in namespaces}
    grand_total = sum(totals.values())
    big = grand_total >= BULK_COPY_MIN and grand_total >= sum(
        dst.count(ns) for ns in dst.namespaces()
    )
    with dst.bulk_load() if big else nullcontext():
        samples = _copy_namespaces(src, dst, namespaces, totals, report, progress, batch, sample)
    for namespace in dict.fromkeys(["default", *namespaces]):
        text = src.get_instructions(namespace)
        if text:
            dst.set_instructions(namespace, text)
            report["instructions"] += 1
    _copy_sessions(src, dst, report)
    dst.flush()
    if verify:
        report["verified"] = verify_copy(src, dst, samples)
    return report


def _copy_namespaces(
    src: StorageBackend,
    dst: StorageBackend,
    namespaces: list[str],
    totals: dict[str, int],
    report: dict[str, Any],
    progress: Progress | None,
    batch: int,
    sample: int,
) -> dict[str, list[StoredMemory]]:
    """Copy the memories (and history) of each namespace; returns the verification sample."""
    grand_total = sum(totals.values())
    done = 0
    samples: dict[str, list[StoredMemory]] = {}
    for namespace in namespaces:
        copy_history = dst.copies_history and _total(dst, namespace) == 0
        stats = {"memories": 0, "skipped_existing": 0, "history_events": 0}
        if copy_history and src.copies_history:
            stats["history_events"] += _copy_history(src.iter_history(namespace), dst, namespace)
        every = max(1, totals[namespace] // max(sample, 1))
        picked: list[StoredMemory] = []
        position = 0
        for chunk in _batches(src.iter_memories(namespace, include_superseded=True), batch):
            existing = dst.get_many(namespace, [s.memory.id for s in chunk])
            todo = [s for s in chunk if s.memory.id not in existing]
            stats["skipped_existing"] += len(chunk) - len(todo)
            if copy_history and not src.copies_history:
                events = [e for s in todo for e in src.history(namespace, s.memory.id)]
                stats["history_events"] += _copy_history(events, dst, namespace)
            if todo:
                dst.add(namespace, [_new_memory(s) for s in todo], dedupe=False, chunk_size=batch)
                _copy_last_access(dst, namespace, todo)
            stats["memories"] += len(todo)
            # verify what this run copied: a memory the destination already had is its own
            # now (recalled, maybe edited there since an earlier run) and is left as it is
            copied_now = {s.memory.id for s in todo}
            for s in chunk:
                if (
                    position % every == 0
                    and s.memory.id in copied_now
                    and s.memory.status == "active"
                    and len(picked) < sample
                ):
                    picked.append(s)
                position += 1
            done += len(chunk)
            if progress is not None:
                progress(done, grand_total)
        samples[namespace] = picked
        stats["source_total"] = totals[namespace]
        stats["destination_total"] = _total(dst, namespace)
        report["namespaces"][namespace] = stats
        for key in ("memories", "skipped_existing", "history_events"):
            report[key] += stats[key]
    return samples


def _copy_history(events: Iterable[HistoryEvent], dst: StorageBackend, namespace: str) -> int:
    count = 0
    pending: list[HistoryEvent] = []
    for event in events:
        pending.append(event)
        if len(pending) >= 5000:
            dst.add_history(namespace, pending)
            count += len(pending)
            pending = []
    if pending:
        dst.add_history(namespace, pending)
        count += len(pending)
    return count


def _copy_sessions(src: StorageBackend, dst: StorageBackend, report: dict[str, Any]) -> None:
    """Copy every chat session and its response ids; sessions ``dst`` has are not rewritten."""
    page = 500
    for namespace in src.chat_session_namespaces():
        offset = 0
        while records := src.list_chat_sessions(namespace, limit=page, offset=offset):
            offset += len(records)
            for record in records:
                _copy_session(src, dst, namespace, record, report)


def _copy_session(
    src: StorageBackend,
    dst: StorageBackend,
    namespace: str,
    record: ChatSessionRecord,
    report: dict[str, Any],
) -> None:
    missing = [
        r
        for r in src.chat_response_ids(namespace, record.id)
        if dst.chat_session_of_response(namespace, r) is None
    ]
    target = dst.get_chat_session(namespace, record.id)
    if target is None:
        first = missing.pop(0) if missing else None
        revision = dst.save_chat_session(namespace, replace(record, revision=0, response_id=first))
        target = replace(record, revision=revision)
        report["chat_sessions"] += 1
        report["chat_response_ids"] += int(first is not None)
    else:
        report["chat_sessions_skipped_existing"] += 1
    # the contract records one response id per save: each further one is a save of the
    # destination's own record (its turns untouched), over the revision just written
    for response_id in missing:
        revision = dst.save_chat_session(namespace, replace(target, response_id=response_id))
        target = replace(target, revision=revision)
        report["chat_response_ids"] += 1


def _copy_last_access(dst: StorageBackend, namespace: str, todo: list[StoredMemory]) -> None:
    """Carry ``last_accessed`` over (record_hits with zero hits sets it, grouped by time)."""
    by_time: dict[float, dict[str, int]] = defaultdict(dict)
    for s in todo:
        if s.memory.last_accessed is not None:
            by_time[s.memory.last_accessed.timestamp()][s.memory.id] = 0
    for at, ids in by_time.items():
        dst.record_hits(namespace, ids, at)


def verify_copy(
    src: StorageBackend, dst: StorageBackend, samples: dict[str, list[StoredMemory]]
) -> dict[str, Any]:
    """Check counts per namespace and a sample of records and recalls; StorageError if off."""
    problems: list[str] = []
    checked = 0
    for namespace, picked in samples.items():
        src_counts = (src.count(namespace), _total(src, namespace))
        dst_counts = (dst.count(namespace), _total(dst, namespace))
        if src_counts != dst_counts:
            problems.append(
                f"namespace {namespace!r}: source has {src_counts[0]} active / {src_counts[1]} "
                f"memories, destination {dst_counts[0]} / {dst_counts[1]}"
            )
        copied = dst.get_many(namespace, [s.memory.id for s in picked])
        for s in picked:
            m, c = s.memory, copied.get(s.memory.id)
            if c is None:
                problems.append(f"memory {m.id!r} is missing from the destination")
                continue
            n = c.memory
            if (n.text, n.metadata, n.status, n.hit_count, n.source) != (
                m.text,
                m.metadata,
                m.status,
                m.hit_count,
                m.source,
            ) or abs(n.created_at.timestamp() - m.created_at.timestamp()) > 1e-5:
                problems.append(f"memory {m.id!r} differs in the destination")
            if not np.allclose(c.embedding, s.embedding, atol=1e-6):
                problems.append(f"memory {m.id!r} has another embedding in the destination")
            want = src.vector_search(namespace, s.embedding, 5)
            got = dst.vector_search(namespace, s.embedding, 5)
            if not got or not want or abs(got[0][1] - want[0][1]) > 1e-4:
                problems.append(f"recall of memory {m.id!r} differs: {want[:1]} vs {got[:1]}")
            checked += 1
    if problems:
        raise StorageError("the copy does not match the source: " + "; ".join(problems[:10]))
    return {"namespaces": len(samples), "sampled_memories": checked}
