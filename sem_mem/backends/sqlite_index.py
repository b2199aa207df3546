"""The derived HNSW indexes of the embedded store: load, catch up, rebuild, save.

Mixed into :class:`~sem_mem.backends.sqlite.SQLiteBackend`, whose connection, locks
and meta table it uses. Each namespace's index remembers the store ``seq`` it
reflects; everything committed after it is replayed from SQLite (see
``docs/storage.md``), so the index can always be caught up or rebuilt.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import StorageError
from .rows import EXACT_SEARCH_MAX
from .sqlite_rows import decode_matrix, file_name
from .store_lock import StoreLock
from .text_index import TextDoc, TextIndex
from .vector_index import HNSWIndex, HNSWParams

__all__ = ["INDEX_DIR", "TEXT_DIR", "IndexManagerMixin"]

log = logging.getLogger("sem_mem.store")

INDEX_DIR = "index"
TEXT_DIR = "text"


class IndexManagerMixin:
    """Per-namespace hnswlib indexes kept in step with the store."""

    root: Path
    hnsw: HNSWParams
    store_id: str | None
    save_every: int
    save_interval: float
    _conn: sqlite3.Connection
    _lock: StoreLock
    _file_lock: Any
    _indexes: dict[str, HNSWIndex]
    _texts: dict[str, TextIndex]
    _text_applied: dict[str, int]
    _last_save: float
    _closed: bool
    _seq: int
    _data_version: int
    # At most one index update runs in the background while the next chunk of a
    # multi-chunk add is written to SQLite (see _replay); every use of an index
    # waits for it first (_await_index_job).
    _index_job: tuple[threading.Thread, str, list[BaseException]] | None = None

    if TYPE_CHECKING:  # provided by the backend this is mixed into

        def _meta(self, key: str) -> str | None: ...
        def _read_seq(self) -> int: ...
        def _pragma_data_version(self) -> int: ...
        def count(self, namespace: str) -> int: ...
        def embedding_space(self) -> tuple[str, int] | None: ...

    def _sync_after_write(self, background: bool = False) -> None:
        self._data_version = self._pragma_data_version()
        self._sync_indexes(background)
        self._maybe_save()

    def _sync_indexes(self, background: bool = False) -> None:
        """Replay every change after each loaded index's ``applied_seq``."""
        self._await_index_job()
        for text in self._texts.values():
            text.reload()  # another process's commit: its tail entries are in tantivy now
        self._conn.execute("BEGIN")  # one read snapshot for rows, tombstones and counts
        try:
            self._seq = self._read_seq()
            for namespace, index in self._indexes.items():
                if index.applied_seq < self._seq:
                    self._replay(namespace, index, self._seq, background)
            for namespace, text in self._texts.items():
                if self._text_applied[namespace] < self._seq:
                    self._replay_text(namespace, text, self._text_applied[namespace])
                    self._text_applied[namespace] = self._seq
        finally:
            self._conn.execute("COMMIT")

    # ------------------------------------------------------------------ full text

    def _text_path(self, namespace: str) -> Path:
        return self.root / TEXT_DIR / f"ns-{file_name(namespace)}"

    def _text_for(self, namespace: str) -> TextIndex:
        """The namespace's full-text index, opened (and caught up) or rebuilt on first use.

        Like the HNSW index it is derived data: tantivy's files hold what was committed
        up to ``committed_seq``, and every later change is replayed from SQLite into the
        index's in-RAM tail (a rebuild replays the whole namespace).
        """
        text = self._texts.get(namespace)
        if text is not None:
            return text
        # Opened under the writers' lock: a commit by another process must not be half
        # done while the files are checked (a half-written index would be wiped).
        with self._file_lock:
            text = TextIndex(
                self._text_path(namespace), {"store_id": self.store_id, "namespace": namespace}
            )
            if text.committed_seq > self._read_seq():
                log.warning("text index of %r is ahead of the store; rebuilding", namespace)
                text.reset()
        since = 0 if text.rebuilt else text.committed_seq
        self._conn.execute("BEGIN")
        try:
            seq = self._read_seq()
            self._replay_text(namespace, text, since)
        finally:
            self._conn.execute("COMMIT")
        self._texts[namespace] = text
        self._text_applied[namespace] = seq
        if text.tail_size >= self._text_commit_threshold(namespace):
            with self._file_lock:  # persist a big catch-up at once (one writer at a time)
                self._commit_text(namespace, text)
        return text

    def _replay_text(self, namespace: str, text: TextIndex, since: int) -> None:
        """Changes after ``since`` into the text index's tail (inside a read transaction)."""
        docs: list[TextDoc] = []
        for label, status, seq, body, speaker, source, ts, thread, meta in self._conn.execute(
            "SELECT label, status, seq, text, speaker, source, timestamp, thread_id, metadata "
            "FROM memories WHERE seq > ? AND +namespace = ?",
            (since, namespace),
        ):
            if status == "active":
                docs.append(
                    TextDoc(
                        label=label,
                        seq=seq,
                        text=body,
                        speaker=speaker,
                        source=source,
                        timestamp=ts,
                        thread_id=thread,
                        metadata={} if meta == "{}" else json.loads(meta),
                    )
                )
            else:
                text.delete([label], seq)
            if len(docs) >= 2000:
                text.upsert(docs)
                docs = []
        text.upsert(docs)
        for label, seq in self._conn.execute(
            "SELECT label, seq FROM tombstones WHERE seq > ? AND namespace = ?", (since, namespace)
        ):
            text.delete([label], seq)

    def _text_commit_threshold(self, namespace: str) -> int:
        """Commit the tail once it holds ~10% of the namespace (32 to 512 changes): a
        tantivy commit costs ~100 ms, and a tail scored in Python should stay small."""
        index = self._indexes.get(namespace)
        size = index.active if index is not None else 0
        return min(512, max(32, size // 10))

    def _commit_text(self, namespace: str, text: TextIndex) -> None:
        """Write the tail to tantivy (the caller holds the writer file lock). A failure
        is logged: the changes are in SQLite and replayed into the tail on next open."""
        try:
            text.commit()
        except StorageError as exc:
            log.warning("%s; it will be caught up from SQLite", exc)

    def _await_index_job(self) -> None:
        """Wait for the background index update, if any.

        If it failed, the memories are still committed to SQLite: the index is
        dropped (with a log line) and caught up from SQLite when next used.
        """
        job, self._index_job = self._index_job, None
        if job is None:
            return
        thread, namespace, errors = job
        thread.join()
        if errors:
            log.warning(
                "updating the HNSW index of namespace %r failed (%s); it will be caught "
                "up from SQLite",
                namespace,
                errors[0],
            )
            self._indexes.pop(namespace, None)

    def _replay(
        self, namespace: str, index: HNSWIndex, upto: int, background: bool = False
    ) -> None:
        since = index.applied_seq
        upsert_labels: list[int] = []
        upsert_vectors: list[bytes] = []
        dead: list[int] = []
        for label, status, blob in self._conn.execute(
            "SELECT label, status, embedding FROM memories WHERE seq > ? AND +namespace = ?",
            (since, namespace),
        ):
            if status == "active":
                upsert_labels.append(label)
                upsert_vectors.append(blob)
            else:
                dead.append(label)
        dead += [
            r[0]
            for r in self._conn.execute(
                "SELECT label FROM tombstones WHERE seq > ? AND namespace = ?", (since, namespace)
            )
        ]
        if upsert_labels and background and not dead:
            # hnswlib releases the GIL while it builds, so the caller's next SQLite
            # chunk is written meanwhile (~1.5x the rate of a large remember_batch).
            labels = np.asarray(upsert_labels, dtype=np.int64)
            vectors = decode_matrix(upsert_vectors, index.dim)
            errors: list[BaseException] = []

            def build() -> None:
                try:
                    index.upsert(labels, vectors)
                except BaseException as exc:  # reported by _await_index_job
                    errors.append(exc)

            thread = threading.Thread(target=build, name="sem-mem-index", daemon=True)
            self._index_job = (thread, namespace, errors)
            thread.start()
        elif upsert_labels:
            index.upsert(
                np.asarray(upsert_labels, dtype=np.int64), decode_matrix(upsert_vectors, index.dim)
            )
        index.delete(dead)
        index.applied_seq = upto
        row = self._conn.execute(
            "SELECT active FROM namespace_stats WHERE namespace = ?", (namespace,)
        ).fetchone()
        index.active = int(row[0]) if row else 0

    # ------------------------------------------------------------------ HNSW files

    def _index_path(self, namespace: str) -> Path:
        return self.root / INDEX_DIR / f"ns-{file_name(namespace)}.hnsw"

    def _index_for(self, namespace: str) -> HNSWIndex:
        """The namespace's index, loaded (and caught up) or rebuilt on first use."""
        self._await_index_job()
        index = self._indexes.get(namespace)
        if index is not None:
            return index
        space = self.embedding_space()
        if space is None:
            raise StorageError("the store has no embedding space yet")
        expect = {
            "store_id": self.store_id,
            "namespace": namespace,
            "model": space[0],
            "dim": space[1],
        }
        path = self._index_path(namespace)
        started = time.perf_counter()
        index = HNSWIndex.load(path, self.hnsw, expect)
        if index is not None and index.applied_seq > self._read_seq():
            log.warning("index %s is ahead of the store (restored backup?); rebuilding", path)
            index = None
        if index is None:
            index = self._rebuild(namespace, space[1])
            log.info(
                "rebuilt the HNSW index of namespace %r from SQLite: %d memories in %.2f s",
                namespace,
                index.active,
                time.perf_counter() - started,
            )
        self._indexes[namespace] = index
        self._conn.execute("BEGIN")
        try:
            if not index.exact and self.count(namespace) <= EXACT_SEARCH_MAX:
                rows = self._conn.execute(
                    "SELECT label, embedding FROM memories WHERE namespace = ? "
                    "AND status = 'active' AND seq <= ?",
                    (namespace, index.applied_seq),
                ).fetchall()
                index.mirror(
                    np.asarray([r[0] for r in rows], dtype=np.int64),
                    decode_matrix([r[1] for r in rows], index.dim),
                )
            self._replay(namespace, index, self._read_seq())
        finally:
            self._conn.execute("COMMIT")
        return index

    def _rebuild(self, namespace: str, dim: int) -> HNSWIndex:
        self._conn.execute("BEGIN")
        try:
            seq = self._read_seq()
            total = self.count(namespace)
            index = HNSWIndex(dim, self.hnsw, capacity=max(1024, total + total // 4))
            last = 0
            while True:
                rows = self._conn.execute(
                    "SELECT label, embedding FROM memories WHERE label > ? AND +namespace = ? "
                    "AND status = 'active' ORDER BY label LIMIT 20000",
                    (last, namespace),
                ).fetchall()
                if not rows:
                    break
                index.upsert(
                    np.asarray([r[0] for r in rows], dtype=np.int64),
                    decode_matrix([r[1] for r in rows], dim),
                )
                last = rows[-1][0]
            index.applied_seq = seq
        finally:
            self._conn.execute("COMMIT")
        index.dirty = max(index.dirty, 1)  # persist the rebuilt file at the next save
        return index

    def _maybe_save(self, force: bool = False) -> None:
        """Save dirty indexes when enough changed or enough time passed.

        A failed save (e.g. a full disk) is logged, not raised: the memories are
        already committed to SQLite, and the index is caught up from it on next open.
        """
        due = time.monotonic() - self._last_save >= self.save_interval
        for namespace, index in list(self._indexes.items()):
            # rewriting the whole file is O(N): save after a share of the index changed
            threshold = max(self.save_every, index.active // 4)
            if index.dirty and (force or due or index.dirty >= threshold):
                self._await_index_job()
                if namespace not in self._indexes:  # its update failed: nothing to save
                    continue
                self.remove_stale_temps()
                try:
                    index.save(
                        self._index_path(namespace),
                        {
                            "store_id": self.store_id,
                            "namespace": namespace,
                            "model": self._meta("embedding_model"),
                        },
                    )
                except StorageError as exc:
                    log.warning("%s; it will be caught up from SQLite on next open", exc)
        for namespace, text in list(self._texts.items()):
            if text.tail_size and (
                force or due or text.tail_size >= self._text_commit_threshold(namespace)
            ):
                self._commit_text(namespace, text)
        if force or due:
            self._last_save = time.monotonic()

    def remove_stale_temps(self) -> list[Path]:
        """Delete temporary files left in ``index/`` by a killed save; returns them.

        Call with the writer lock held: saves only run under it, so every ``*.tmp``
        there belongs to a save that died.
        """
        removed = []
        for path in (self.root / INDEX_DIR).glob("*.tmp"):
            try:
                path.unlink()
            except OSError:
                continue
            removed.append(path)
        return removed

    def flush(self) -> None:
        with self._lock:
            if self._closed:
                return
            with self._file_lock.holding("index save"):
                self._maybe_save(force=True)
