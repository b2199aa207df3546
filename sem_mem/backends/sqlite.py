"""The embedded backend: SQLite (WAL) is the source of truth, HNSW and FTS5 index it.

One ``SQLiteBackend`` serves every namespace of a storage dir. Writers take the
process-wide lock exclusively and a file lock (``write.lock``), so threads and
processes never interleave transactions or index saves. Reads hold the process-wide
lock shared, each thread on its own SQLite connection (WAL readers), so concurrent
searches run side by side (see ``store_lock.py``). Every write transaction bumps the
store's ``seq``; readers notice other processes' commits through SQLite's
``PRAGMA data_version`` and replay them into their in-memory HNSW indexes before
searching. See ``docs/storage.md`` for the on-disk format.
"""

from __future__ import annotations

import builtins
import logging
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import (
    EmbeddingMismatchError,
    NotFoundError,
    StorageError,
)
from ..types import HistoryEvent, Memory
from . import sqlite_reads as reads
from .base import (
    AddResult,
    ListQuery,
    MemoryFilter,
    NewMemory,
    StorageBackend,
    StoredMemory,
    ThreadPlace,
)
from .rows import transaction_size
from .sqlite_index import StoreIndexes
from .sqlite_light import LightWriter
from .sqlite_reads import ReadConnections
from .sqlite_rows import (
    EMBEDDING_AT,
    canonical_json,
    decode_vector,
    encode_vector,
    file_name,
    filter_sql,
    row_to_memory,
    scoped_hash,
)
from .sqlite_schema import apply_migrations, pending_migrations, read_meta, read_seq, read_space
from .sqlite_search import LabelIds, filtered_vector_hits
from .sqlite_sessions import SQLiteSessionsMixin
from .sqlite_writes import (
    delete_memories,
    insert_memories,
    stage_embeddings,
    supersede_memory,
    update_memory,
)
from .store_lock import StoreLock
from .text_index import TextIndex
from .vector_index import HNSWIndex, HNSWParams
from .writer_lock import WriterLock

__all__ = ["SQLiteBackend", "canonical_json", "decode_vector", "encode_vector"]

log = logging.getLogger("sem_mem.store")

DB_NAME = "memory.sqlite3"


class SQLiteBackend(SQLiteSessionsMixin, StorageBackend):
    """SQLite + FTS5 + per-namespace hnswlib indexes in one directory."""

    name = "sqlite"

    @property
    def location(self) -> str:
        return str(self.root)

    def __init__(
        self,
        storage_dir: str | os.PathLike[str],
        *,
        hnsw: HNSWParams | None = None,
        durability: str = "full",
        save_every: int = 10_000,
        save_interval: float = 60.0,
        lock_timeout: float = 60.0,
    ) -> None:
        self.root = Path(storage_dir)
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot create storage dir {self.root}: {exc}") from exc
        self.hnsw = hnsw or HNSWParams()
        self.save_every = save_every
        self.save_interval = save_interval
        self._lock = StoreLock()
        # each reading thread's own connection, closed by close()
        self._readers = ReadConnections(self.root / DB_NAME)
        self._local = threading.local()  # what this thread last saw (see refresh)
        self._file_lock = WriterLock(self.root / "write.lock", lock_timeout)
        self._bound: tuple[str, int] | None = None  # the embedding space this object uses
        # hit counts and the query-embedding cache (see sqlite_light)
        self._light = LightWriter(self.root / DB_NAME, self._file_lock)
        self._labels = LabelIds()  # HNSW label <-> memory id (see vector_search)
        self._closed = False
        try:
            self._conn = sqlite3.connect(
                self.root / DB_NAME, check_same_thread=False, isolation_level=None, timeout=30.0
            )
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._synchronous = "FULL" if durability == "full" else "NORMAL"
            self._conn.execute(f"PRAGMA synchronous={self._synchronous}")
            self._conn.execute("PRAGMA foreign_keys=ON")
            # big stores: let SQLite map the file and keep more pages in RAM
            self._conn.execute("PRAGMA mmap_size=2147418112")
            self._conn.execute("PRAGMA cache_size=-65536")
            self._open_schema()
        except sqlite3.DatabaseError as exc:
            raise StorageError(f"cannot open the store at {self.root / DB_NAME}: {exc}") from exc
        self._data_version = self._pragma_data_version()
        # the HNSW and full-text indexes, derived from the rows (called under self._lock)
        self._derived = StoreIndexes(
            self._conn,
            self.root,
            self.hnsw,
            self._file_lock,
            save_every=save_every,
            save_interval=save_interval,
        )

    # ------------------------------------------------------------------ plumbing

    def _open_schema(self) -> None:
        """Migrate and initialise the store if needed. Only then is the writer lock taken:
        opening an up-to-date store never waits for another process's long write
        (a ``reembed``, say)."""
        if not pending_migrations(self._conn):
            self.store_id = self._meta("store_id")
            if self.store_id is not None:
                return
        with self._file_lock.holding("migration"):
            apply_migrations(self._conn)
            self._init_meta()

    def _check_space(self) -> None:
        """Refuse to go on if another process re-embedded the store since this one bound
        it: vectors of the old model must never be written under the new one's name."""
        if self._bound is None:
            return
        model, dim = self._meta("embedding_model"), self._meta("embedding_dim")
        if model is not None and (model, int(dim or 0)) != self._bound:
            raise EmbeddingMismatchError(
                f"the store at {self.root} was re-embedded by another process: it now uses "
                f"{model!r} ({dim} dimensions), this memory uses {self._bound[0]!r} "
                f"({self._bound[1]} dimensions). Reopen it with the new embedder."
            )

    def _init_meta(self) -> None:
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            for key, value in (
                ("store_id", uuid.uuid4().hex),
                ("seq", "0"),
                ("created_at", repr(time.time())),
            ):
                self._conn.execute(
                    "INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)", (key, value)
                )
            self._conn.execute("COMMIT")
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self.store_id = self._meta("store_id")

    def _meta(self, key: str) -> str | None:
        return read_meta(self._conn, key)

    def _read_seq(self) -> int:
        return read_seq(self._conn)

    def _pragma_data_version(self) -> int:
        return int(self._conn.execute("PRAGMA data_version").fetchone()[0])

    def _check_open(self) -> None:
        if self._closed:
            raise StorageError("this memory store is closed")

    @contextmanager
    def _write(self, namespace: str, *, background: bool = False) -> Iterator[int]:
        """One write transaction under both locks; yields the new ``seq``.

        The namespace's index is loaded first, so that after the commit it replays
        the change (a search right after a write sees it, and close() saves it).
        ``background``: that replay may run on while the caller writes its next chunk.
        """
        with self._lock:
            self._check_open()
            self._derived.prepare(namespace)
            with self._file_lock:
                try:
                    self._conn.execute("BEGIN IMMEDIATE")
                except sqlite3.OperationalError as exc:
                    raise StorageError(f"the store is busy or unwritable: {exc}") from exc
                try:
                    seq = self._read_seq() + 1
                    self._conn.execute("UPDATE meta SET value = ? WHERE key = 'seq'", (str(seq),))
                    yield seq
                    self._conn.execute("COMMIT")
                except sqlite3.Error as exc:
                    self._rollback()
                    raise StorageError(f"write to the store failed: {exc}") from exc
                except BaseException:
                    self._rollback()
                    raise
                self._data_version = self._pragma_data_version()
                self._derived.sync(background)
                self._derived.save()

    def _rollback(self) -> None:
        try:
            self._conn.execute("ROLLBACK")
        except sqlite3.Error:  # the transaction may already be gone (e.g. disk full)
            pass

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        """A connection to read with, under the shared lock.

        The writer thread (holding the lock exclusively) reads on the main connection,
        inside its own transaction; every other thread on its own connection, so reads
        run in parallel and never see a transaction that has not committed.
        """
        if self._lock.held_exclusively:
            self._check_open()
            yield self._conn
            return
        with self._lock.shared():
            self._check_open()
            yield self._readers.connection()

    @contextmanager
    def _searching(self, namespace: str) -> Iterator[tuple[sqlite3.Connection, HNSWIndex]]:
        """A read connection and the namespace's loaded, caught-up HNSW index."""
        while True:
            with self._read() as conn:
                index = self._derived.searchable(namespace)
                if index is not None:
                    yield conn, index
                    return
            with self._lock:  # loading or finishing it changes the index: exclusively
                self._check_open()
                self._derived.vectors(namespace)

    @contextmanager
    def _text_searching(self, namespace: str) -> Iterator[tuple[sqlite3.Connection, TextIndex]]:
        """A read connection and the namespace's open full-text index."""
        while True:
            with self._read() as conn:
                text = self._derived.loaded_text(namespace)
                if text is not None:
                    yield conn, text
                    return
            with self._lock:
                self._check_open()
                self._derived.text(namespace)

    # ------------------------------------------------------------------ embedding space

    def embedding_space(self) -> tuple[str, int] | None:
        with self._read() as conn:
            return read_space(conn)

    def bind_embedding_space(self, model_id: str, dimensions: int) -> None:
        current = self.embedding_space()
        if current is None:
            with self._lock, self._file_lock.holding("binding the embedding model"):
                self._conn.execute("BEGIN IMMEDIATE")
                try:
                    for key, value in (
                        ("embedding_model", model_id),
                        ("embedding_dim", dimensions),
                    ):
                        self._conn.execute(
                            "INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)",
                            (key, str(value)),
                        )
                    self._conn.execute("COMMIT")
                except BaseException:
                    self._rollback()
                    raise
            current = self.embedding_space()
        if current == (model_id, dimensions):
            self._bound = current
        else:
            raise EmbeddingMismatchError(
                f"the store at {self.root} was built with embedding model {current[0]!r} "  # type: ignore[index]
                f"({current[1]} dimensions), but this memory uses {model_id!r} "  # type: ignore[index]
                f"({dimensions} dimensions). Open it with the original embedder, or convert it "
                f"with memory.reembed(new_embedder) (CLI: sem-mem reembed)."
            )

    # ------------------------------------------------------------------ writes

    def add(
        self,
        namespace: str,
        items: Sequence[NewMemory],
        *,
        dedupe: bool = True,
        chunk_size: int = 1000,
        on_commit: Callable[[int], None] | None = None,
    ) -> list[AddResult]:
        results: list[AddResult] = []
        chunk_size = transaction_size(items, chunk_size)
        # Several chunks: each chunk's HNSW insert overlaps the next chunk's SQLite write.
        background = len(items) > chunk_size
        try:
            for start in range(0, len(items), chunk_size):
                chunk = items[start : start + chunk_size]
                with self._write(namespace, background=background) as seq:
                    self._check_space()
                    model = self._model_id()
                    results.extend(
                        insert_memories(self._conn, namespace, chunk, seq, model, dedupe)
                    )
                if on_commit is not None:
                    on_commit(len(results))
        finally:
            if background:
                with self._lock:
                    self._derived.wait()
        return results

    def _model_id(self) -> str:
        model = self._meta("embedding_model")
        if not model:
            raise StorageError("bind_embedding_space must be called before adding memories")
        return model

    def update(
        self,
        namespace: str,
        memory_id: str,
        *,
        text: str | None = None,
        metadata: dict[str, Any] | None = None,
        embedding: np.ndarray | None = None,
        content_hash: str | None = None,
        event: str = "updated",
    ) -> Memory:
        with self._write(namespace) as seq:
            update_memory(
                self._conn,
                seq,
                namespace,
                memory_id,
                text=text,
                metadata=metadata,
                embedding=embedding,
                content_hash=content_hash,
                event=event,
                check_space=self._check_space,
            )
        return self.get_many(namespace, [memory_id])[memory_id].memory

    def delete(self, namespace: str, memory_ids: Sequence[str]) -> int:
        if not memory_ids:
            return 0
        with self._write(namespace) as seq:
            return delete_memories(self._conn, seq, namespace, memory_ids)

    def supersede(self, namespace: str, old_id: str, new_id: str, reason: str = "") -> None:
        with self._write(namespace) as seq:
            supersede_memory(self._conn, seq, namespace, old_id, new_id, reason)

    def record_hits(
        self, namespace: str, hits: Mapping[str, int], at: float, *, wait: bool = True
    ) -> None:
        if not hits:
            return
        self._check_open()
        self._light.submit(
            "UPDATE memories SET hit_count = hit_count + ?, last_accessed = ? "
            "WHERE id = ? AND namespace = ?",
            [(n, at, memory_id, namespace) for memory_id, n in hits.items()],
        )
        if wait:
            self._light.wait()

    # ------------------------------------------------------------------ reads

    def get_many(self, namespace: str, memory_ids: Sequence[str]) -> dict[str, StoredMemory]:
        if not memory_ids:
            return {}
        with self._read() as conn:
            return reads.get_many(conn, namespace, memory_ids, self._labels)

    def vector_search(
        self,
        namespace: str,
        vector: np.ndarray,
        k: int,
        *,
        ef: int | None = None,
        filters: MemoryFilter | None = None,
    ) -> list[tuple[str, float]]:
        with self._searching(namespace) as (conn, index):
            if filters is not None and not filters.empty:
                hits = filtered_vector_hits(conn, index, namespace, vector, k, ef, filters)
            else:
                hits = index.search(vector, k, ef=ef)
            if not hits:
                return []
            ids = self._labels.ids_of(conn, [label for label, _ in hits])
        return [(ids[label], sim) for label, sim in hits if label in ids]

    def lexical_search(
        self, namespace: str, query: str, k: int, *, filters: MemoryFilter | None = None
    ) -> list[tuple[str, float]]:
        if k <= 0:
            return []
        with self._text_searching(namespace) as (conn, text):
            hits = text.search(query, k, filters)
            if not hits:
                return []
            ids = self._labels.ids_of(conn, [label for label, _ in hits])
        return [(ids[label], score) for label, score in hits if label in ids]

    def thread_places(
        self,
        namespace: str,
        ids: Sequence[str],
        window: int,
        *,
        filters: MemoryFilter | None = None,
    ) -> dict[str, ThreadPlace]:
        if not ids:
            return {}
        where, args = filter_sql(filters, "m.")
        with self._read() as conn:
            return reads.thread_places(conn, namespace, ids, window, where, args)

    def list(self, namespace: str, query: ListQuery) -> list[Memory]:
        where, args = filter_sql(query.filter)
        with self._read() as conn:
            return reads.list_memories(conn, namespace, query, where, args)

    def count(self, namespace: str) -> int:
        with self._read() as conn:
            row = conn.execute(
                "SELECT active FROM namespace_stats WHERE namespace = ?", (namespace,)
            ).fetchone()
        return int(row[0]) if row else 0

    def history(self, namespace: str, memory_id: str) -> builtins.list[HistoryEvent]:
        with self._read() as conn:
            events = reads.history(conn, namespace, memory_id)
        if not events:
            raise NotFoundError(f"no memory {memory_id!r} in namespace {namespace!r}")
        return events

    def most_hit(self, namespace: str, n: int) -> builtins.list[StoredMemory]:
        if n <= 0:
            return []
        with self._read() as conn:
            return reads.most_hit(conn, namespace, n)

    def iter_memories(
        self, namespace: str, *, batch: int = 1000, include_superseded: bool = True
    ) -> Iterator[StoredMemory]:
        last = 0
        while True:
            with self._read() as conn:
                rows = reads.memories_page(conn, namespace, last, batch, include_superseded)
            if not rows:
                return
            for r in rows:
                yield StoredMemory(row_to_memory(r), decode_vector(r[EMBEDDING_AT]))
            last = rows[-1][EMBEDDING_AT + 1]

    def namespaces(self) -> builtins.list[str]:
        with self._read() as conn:
            return [
                r[0]
                for r in conn.execute(
                    "SELECT DISTINCT namespace FROM memories ORDER BY namespace"
                ).fetchall()
            ]

    # ------------------------------------------------------------------ change tracking

    def refresh(self) -> int:
        # Fast path, shared: this thread's connection has seen no commit by any other
        # connection (this process's writer or another process) since its last full
        # check below, so there is nothing new to replay.
        with self._read() as conn:
            own = conn is not self._conn  # (the writer thread reads on the main one)
            seen = int(conn.execute("PRAGMA data_version").fetchone()[0])
            if own and getattr(self._local, "version", None) == seen:
                return self._derived.seq
        with self._lock:
            self._check_open()
            version = self._pragma_data_version()
            if version != self._data_version:
                self._check_space()  # before replaying vectors of another model
                self._data_version = version
                self._derived.sync()
            if own:  # read before this check: no commit slips between the two
                self._local.version = seen
            return self._derived.seq

    def changed_ids(self, namespace: str, since_seq: int) -> set[str]:
        with self._read() as conn:
            rows = conn.execute(
                "SELECT id FROM memories WHERE seq > ? AND +namespace = ? "
                "UNION SELECT id FROM tombstones WHERE seq > ? AND namespace = ?",
                (since_seq, namespace, since_seq, namespace),
            ).fetchall()
        return {r[0] for r in rows}

    # ------------------------------------------------------------------ embedding cache

    def cached_embeddings(
        self, namespace: str, model_id: str, text_hashes: Sequence[str]
    ) -> dict[str, np.ndarray]:
        if not text_hashes:
            return {}
        with self._read() as conn:
            return reads.cached_embeddings(conn, namespace, model_id, text_hashes)

    def cache_embeddings(
        self, namespace: str, model_id: str, items: Mapping[str, np.ndarray], *, wait: bool = True
    ) -> None:
        if not items:
            return
        self._check_open()
        now = time.time()
        self._light.submit(
            "INSERT OR REPLACE INTO embedding_cache "
            "(model, text_hash, vector, used_at) VALUES (?, ?, ?, ?)",
            [
                (model_id, scoped_hash(namespace, h), encode_vector(v), now)
                for h, v in items.items()
            ],
        )
        if wait:
            self._light.wait()

    # ------------------------------------------------------------------ instructions

    def _instructions_path(self, namespace: str) -> Path:
        if namespace == "default":
            return self.root / "instructions.txt"
        return self.root / "instructions" / f"{file_name(namespace)}.txt"

    def get_instructions(self, namespace: str) -> str:
        path = self._instructions_path(namespace)
        try:
            return path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return ""
        except OSError as exc:
            raise StorageError(f"cannot read instructions {path}: {exc}") from exc

    def set_instructions(self, namespace: str, text: str) -> None:
        path = self._instructions_path(namespace)
        with self._lock, self._file_lock:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_suffix(".tmp")
                tmp.write_text(text, encoding="utf-8")
                os.replace(tmp, path)
            except OSError as exc:
                raise StorageError(f"cannot write instructions {path}: {exc}") from exc

    # ------------------------------------------------------------------ maintenance

    def replace_embeddings(
        self,
        model_id: str,
        dimensions: int,
        embed: Callable[[builtins.list[str], builtins.list[str | None]], np.ndarray],
        *,
        batch: int = 256,
        progress: Callable[[int, int], None] | None = None,
    ) -> int:
        """Re-embed everything while holding the writer lock, then swap in one transaction.

        New vectors go to a staging table first; a crash before the final swap leaves
        the store exactly as it was (the staging table is cleared on the next run).
        """
        with self._lock, self._file_lock.holding("reembed"):
            self._check_open()
            conn = self._conn
            done = stage_embeddings(conn, embed, batch, progress)
            conn.execute("BEGIN IMMEDIATE")
            try:
                seq = self._read_seq() + 1
                conn.execute("UPDATE meta SET value = ? WHERE key = 'seq'", (str(seq),))
                conn.execute(
                    "UPDATE memories SET embedding = s.vector, embedding_model = ?, seq = ? "
                    "FROM reembed_staging AS s WHERE memories.label = s.label",
                    (model_id, seq),
                )
                for key, value in (("embedding_model", model_id), ("embedding_dim", dimensions)):
                    conn.execute(
                        "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, str(value))
                    )
                conn.execute("DROP TABLE reembed_staging")
                conn.execute("COMMIT")
            except BaseException:
                self._rollback()
                raise
            self._derived.forget_vectors(seq)
            self._data_version = self._pragma_data_version()
            self._bound = (model_id, dimensions)
        return done

    def check(self, *, repair: bool = False) -> dict[str, Any]:
        from .sqlite_doctor import check_store

        with self._lock, self._file_lock.holding("doctor"):
            self._check_open()
            return check_store(self._conn, self._derived, self.root, self.hnsw, repair=repair)

    def stats(self, namespace: str) -> dict[str, Any]:
        space = self.embedding_space()
        with self._lock, self._read() as conn:  # exclusive: it may load the index
            if space is not None:
                self._derived.vectors(namespace)
            by_source = dict(
                conn.execute(
                    "SELECT source, COUNT(*) FROM memories WHERE namespace = ? "
                    "AND status = 'active' GROUP BY source",
                    (namespace,),
                ).fetchall()
            )
            superseded = conn.execute(
                "SELECT COUNT(*) FROM memories WHERE namespace = ? AND status = 'superseded'",
                (namespace,),
            ).fetchone()[0]
            index = self._derived.loaded(namespace)
        db_bytes = sum(p.stat().st_size for p in self.root.glob(DB_NAME + "*") if p.is_file())
        index_path = self._derived.index_path(namespace)
        return {
            "backend": self.name,
            "storage_dir": str(self.root),
            "total_memories": self.count(namespace),
            "by_source": by_source,
            "superseded": superseded,
            "embedding_model": space[0] if space else None,
            "dimensions": space[1] if space else None,
            "index": {
                "type": "hnsw",
                "M": self.hnsw.m,
                "ef_construction": self.hnsw.ef_construction,
                "ef": self.hnsw.ef,
                "loaded": index is not None,
                "elements": index.element_count if index else None,
                "file_bytes": index_path.stat().st_size if index_path.exists() else 0,
            },
            "db_bytes": db_bytes,
            "seq": self._derived.seq,
        }

    def flush(self) -> None:
        self._light.wait()  # hit counts and cached embeddings first
        with self._lock:
            if self._closed:
                return
            with self._file_lock.holding("index save"):
                self._derived.save(force=True)

    def __repr__(self) -> str:
        return f"SQLiteBackend({str(self.root)!r})"

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            try:
                self._light.close()
                self._derived.wait()
                try:
                    with self._file_lock.holding("index save"):
                        self._derived.save(force=True)
                except StorageError as exc:  # e.g. another process holds the lock
                    log.warning("index files not saved on close (%s); caught up on next open", exc)
            finally:
                self._closed = True
                self._derived.close()
                self._conn.close()
                self._readers.close()
