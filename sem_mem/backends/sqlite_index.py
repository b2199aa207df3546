"""The derived indexes of the embedded store: load, catch up, rebuild, save.

:class:`StoreIndexes` is owned by :class:`~sem_mem.backends.sqlite.SQLiteBackend`:
the backend hands it its connection and its writer file lock, and calls it under its
own lock (this object takes no lock of its own): exclusively for anything that loads,
replays or saves an index; shared to get an index with :meth:`StoreIndexes.searchable`
or :meth:`StoreIndexes.loaded_text` and search it. Each namespace's HNSW and full-text
index remembers the store ``seq`` it reflects; everything committed after it is
replayed from SQLite (see ``docs/storage.md``), so an index can always be caught up
or rebuilt.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from pathlib import Path

import numpy as np

from ..errors import StorageError
from .rows import EXACT_SEARCH_MAX
from .sqlite_rows import decode_matrix, file_name
from .sqlite_schema import read_meta, read_seq, read_space
from .text_index import TextDoc, TextIndex
from .vector_index import HNSWIndex, HNSWParams
from .writer_lock import WriterLock

__all__ = ["INDEX_DIR", "TEXT_DIR", "StoreIndexes"]

log = logging.getLogger("sem_mem.store")

INDEX_DIR = "index"
TEXT_DIR = "text"


class StoreIndexes:
    """Per-namespace hnswlib and full-text indexes kept in step with the store."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        root: Path,
        hnsw: HNSWParams,
        file_lock: WriterLock,
        *,
        save_every: int,
        save_interval: float,
    ) -> None:
        self._conn = conn
        self._root = root
        self._hnsw = hnsw
        self._file_lock = file_lock
        self._store_id = read_meta(conn, "store_id")  # what each index file is checked against
        self._save_every = save_every
        self._save_interval = save_interval
        self._vectors: dict[str, HNSWIndex] = {}
        self._texts: dict[str, TextIndex] = {}
        self._text_applied: dict[str, int] = {}  # store seq each text index reflects
        self._last_save = time.monotonic()
        self._seq = read_seq(conn)
        # At most one index update runs in the background while the next chunk of a
        # multi-chunk add is written to SQLite (see _replay); every use of an index
        # waits for it first (wait).
        self._job: tuple[threading.Thread, str, list[BaseException]] | None = None

    @property
    def seq(self) -> int:
        """The store ``seq`` the loaded indexes were last caught up to."""
        return self._seq

    def prepare(self, namespace: str) -> None:
        """Load the namespace's indexes before a write, so that they replay it after the
        commit (a search right after a write sees it, and close() saves it). An index
        already loaded is not waited for: it may still be building the previous chunk."""
        if namespace not in self._vectors:
            self.vectors(namespace)
        if namespace not in self._texts:
            self.text(namespace)

    def loaded(self, namespace: str) -> HNSWIndex | None:
        """The namespace's HNSW index if it is in memory (never loads it)."""
        return self._vectors.get(namespace)

    def searchable(self, namespace: str) -> HNSWIndex | None:
        """The namespace's HNSW index if it is loaded and no background update is
        changing it, so that readers may search it side by side; else None (load it
        with :meth:`vectors`, holding the backend's lock exclusively)."""
        return self._vectors.get(namespace) if self._job is None else None

    def loaded_text(self, namespace: str) -> TextIndex | None:
        """The namespace's full-text index if it is open (never opens it)."""
        return self._texts.get(namespace)

    def sync(self, background: bool = False) -> int:
        """Replay every change after each loaded index's ``applied_seq``; returns the
        store ``seq`` the indexes now reflect."""
        self.wait()
        for text in self._texts.values():
            text.reload()  # another process's commit: its tail entries are in tantivy now
        self._conn.execute("BEGIN")  # one read snapshot for rows, tombstones and counts
        try:
            self._seq = read_seq(self._conn)
            for namespace, index in self._vectors.items():
                if index.applied_seq < self._seq:
                    self._replay(namespace, index, self._seq, background)
            for namespace, text in self._texts.items():
                if self._text_applied[namespace] < self._seq:
                    self._replay_text(namespace, text, self._text_applied[namespace])
                    self._text_applied[namespace] = self._seq
        finally:
            self._conn.execute("COMMIT")
        return self._seq

    # ------------------------------------------------------------------ full text

    def text_path(self, namespace: str) -> Path:
        return self._root / TEXT_DIR / f"ns-{file_name(namespace)}"

    def text(self, namespace: str) -> TextIndex:
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
                self.text_path(namespace), {"store_id": self._store_id, "namespace": namespace}
            )
            if text.committed_seq > read_seq(self._conn):
                log.warning("text index of %r is ahead of the store; rebuilding", namespace)
                text.reset()
        since = 0 if text.rebuilt else text.committed_seq
        self._conn.execute("BEGIN")
        try:
            seq = read_seq(self._conn)
            self._replay_text(namespace, text, since)
        finally:
            self._conn.execute("COMMIT")
        self._texts[namespace] = text
        self._text_applied[namespace] = seq
        if text.tail_size >= self._text_commit_threshold(namespace):
            with self._file_lock:  # persist a big catch-up at once (one writer at a time)
                self._commit_text(text)
        return text

    def reopen_text(self, namespace: str) -> None:
        """Close the namespace's full-text index, reopen it from its files (refilled from
        SQLite if they were damaged) and commit it. The caller holds the writer lock."""
        cached = self._texts.pop(namespace, None)
        if cached is not None:
            cached.close()
        self._commit_text(self.text(namespace))

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
        index = self._vectors.get(namespace)
        size = index.active if index is not None else 0
        return min(512, max(32, size // 10))

    def _commit_text(self, text: TextIndex) -> None:
        """Write the tail to tantivy (the caller holds the writer file lock). A failure
        is logged: the changes are in SQLite and replayed into the tail on next open."""
        try:
            text.commit()
        except StorageError as exc:
            log.warning("%s; it will be caught up from SQLite", exc)

    # ------------------------------------------------------------------ HNSW

    def wait(self) -> None:
        """Wait for the background index update, if any.

        If it failed, the memories are still committed to SQLite: the index is
        dropped (with a log line) and caught up from SQLite when next used.
        """
        job, self._job = self._job, None
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
            self._vectors.pop(namespace, None)

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
                except BaseException as exc:  # reported by wait()
                    errors.append(exc)

            thread = threading.Thread(target=build, name="sem-mem-index", daemon=True)
            self._job = (thread, namespace, errors)
            thread.start()
        elif upsert_labels:
            index.upsert(
                np.asarray(upsert_labels, dtype=np.int64), decode_matrix(upsert_vectors, index.dim)
            )
        index.delete(dead)
        index.applied_seq = upto
        index.active = self._active(namespace)

    def _active(self, namespace: str) -> int:
        row = self._conn.execute(
            "SELECT active FROM namespace_stats WHERE namespace = ?", (namespace,)
        ).fetchone()
        return int(row[0]) if row else 0

    def index_path(self, namespace: str) -> Path:
        return self._root / INDEX_DIR / f"ns-{file_name(namespace)}.hnsw"

    def vectors(self, namespace: str) -> HNSWIndex:
        """The namespace's HNSW index, loaded (and caught up) or rebuilt on first use."""
        self.wait()
        index = self._vectors.get(namespace)
        if index is not None:
            return index
        space = read_space(self._conn)
        if space is None:
            raise StorageError("the store has no embedding space yet")
        expect = {
            "store_id": self._store_id,
            "namespace": namespace,
            "model": space[0],
            "dim": space[1],
        }
        path = self.index_path(namespace)
        started = time.perf_counter()
        index = HNSWIndex.load(path, self._hnsw, expect)
        if index is not None and index.applied_seq > read_seq(self._conn):
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
        self._vectors[namespace] = index
        self._conn.execute("BEGIN")
        try:
            if not index.exact and self._active(namespace) <= EXACT_SEARCH_MAX:
                rows = self._conn.execute(
                    "SELECT label, embedding FROM memories WHERE namespace = ? "
                    "AND status = 'active' AND seq <= ?",
                    (namespace, index.applied_seq),
                ).fetchall()
                index.mirror(
                    np.asarray([r[0] for r in rows], dtype=np.int64),
                    decode_matrix([r[1] for r in rows], index.dim),
                )
            self._replay(namespace, index, read_seq(self._conn))
        finally:
            self._conn.execute("COMMIT")
        return index

    def rebuild_vectors(self, namespace: str) -> None:
        """Rebuild the namespace's HNSW index from SQLite and save it now (the caller
        holds the writer lock)."""
        self.wait()
        self._vectors.pop(namespace, None)
        index = self.vectors(namespace)  # rebuilt from SQLite and caught up
        index.dirty = max(index.dirty, 1)
        self.save(force=True)

    def forget_vectors(self, seq: int) -> None:
        """After a re-embed committed at ``seq``: drop every HNSW index and its file
        (each is rebuilt from the new vectors on first use)."""
        self.wait()
        self._vectors.clear()
        for path in (self._root / INDEX_DIR).glob("ns-*"):
            path.unlink(missing_ok=True)
        self._seq = seq

    def _rebuild(self, namespace: str, dim: int) -> HNSWIndex:
        self._conn.execute("BEGIN")
        try:
            seq = read_seq(self._conn)
            total = self._active(namespace)
            index = HNSWIndex(dim, self._hnsw, capacity=max(1024, total + total // 4))
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

    # ------------------------------------------------------------------ files

    def save(self, force: bool = False) -> None:
        """Save dirty indexes when enough changed or enough time passed (the caller
        holds the writer lock).

        A failed save (e.g. a full disk) is logged, not raised: the memories are
        already committed to SQLite, and the index is caught up from it on next open.
        """
        due = time.monotonic() - self._last_save >= self._save_interval
        for namespace, index in list(self._vectors.items()):
            # rewriting the whole file is O(N): save after a share of the index changed
            threshold = max(self._save_every, index.active // 4)
            if index.dirty and (force or due or index.dirty >= threshold):
                self.wait()
                if namespace not in self._vectors:  # its update failed: nothing to save
                    continue
                self.remove_stale_temps()
                try:
                    index.save(
                        self.index_path(namespace),
                        {
                            "store_id": self._store_id,
                            "namespace": namespace,
                            "model": read_meta(self._conn, "embedding_model"),
                        },
                    )
                except StorageError as exc:
                    log.warning("%s; it will be caught up from SQLite on next open", exc)
        for namespace, text in list(self._texts.items()):
            if text.tail_size and (
                force or due or text.tail_size >= self._text_commit_threshold(namespace)
            ):
                self._commit_text(text)
        if force or due:
            self._last_save = time.monotonic()

    def remove_stale_temps(self) -> list[Path]:
        """Delete temporary files left in ``index/`` by a killed save; returns them.

        Call with the writer lock held: saves only run under it, so every ``*.tmp``
        there belongs to a save that died.
        """
        removed = []
        for path in (self._root / INDEX_DIR).glob("*.tmp"):
            try:
                path.unlink()
            except OSError:
                continue
            removed.append(path)
        return removed

    def close(self) -> None:
        """Let go of every index (without saving: see :meth:`save`)."""
        self._vectors.clear()
        for text in self._texts.values():
            text.close()
        self._texts.clear()
