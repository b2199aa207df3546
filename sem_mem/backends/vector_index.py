"""HNSWIndex: the L2 vector index of one namespace, derived from the SQLite store.

The index is an hnswlib graph (cosine space) whose labels are the store's integer
``label`` column. It is never the source of truth: the store records a change
sequence number (``seq``) with every write, and the index remembers the highest
``seq`` it reflects (``applied_seq``). Loading it from disk and replaying what was
committed after that point (``apply``) brings it up to date; if the file is
missing, unreadable or belongs to another store it is rebuilt from the store.

Files, in the storage dir's ``index/`` folder::

    <name>.hnsw        hnswlib's own binary format
    <name>.json        sidecar: store id, namespace, model, dim, parameters, applied_seq

The sidecar is written after the index file, so a crash between the two leaves a
sidecar with an *older* ``applied_seq`` and the checksum of the previous file: the new
file is then rebuilt from the store, never trusted. Saves happen under the store's
writer lock; the file checks are in :mod:`sem_mem.backends.hnsw_file`.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigurationError, StorageError
from .beam import search_beam
from .hnsw_file import HEADER, check_header, fsync_dir, sha256_file, verify_written, write_durably
from .rows import EXACT_SEARCH_MAX

__all__ = ["HNSWIndex", "HNSWParams"]

log = logging.getLogger("sem_mem.index")


@dataclass(frozen=True)
class HNSWParams:
    m: int = 16
    # 100, as chromadb, qdrant and Lucene default to: at M=16 it builds twice as fast as
    # 200 with the same recall@10 (>= 0.99 up to 10^6 memories, see bench/speed.py)
    ef_construction: int = 100
    ef: int = 64
    threads: int = 2


def _hnswlib() -> Any:
    try:
        import hnswlib
    except ImportError as exc:  # pragma: no cover - a core dependency
        raise ConfigurationError("hnswlib is required: pip install hnswlib") from exc
    return hnswlib


def _hits(labels: np.ndarray, distances: np.ndarray) -> list[tuple[int, float]]:
    """(label, cosine similarity) pairs of one knn_query row, as plain Python numbers."""
    return list(zip(labels[0].tolist(), (1.0 - distances[0]).tolist(), strict=True))


#: Up to this many live vectors a namespace is searched exactly (a numpy scan of at
#: most ~0.1 ms). HNSW graphs lose recall on small sets with many identical vectors
#: (the same text stored with different metadata), and small stores are the common case.


class HNSWIndex:
    """A growable hnswlib index with upsert, delete and a persisted ``applied_seq``.

    While the namespace is small, an exact in-RAM mirror answers searches instead
    of the graph (see ``EXACT_SEARCH_MAX``); the graph is always maintained.
    """

    def __init__(self, dim: int, params: HNSWParams, *, capacity: int = 1024) -> None:
        self.dim = dim
        self.params = params
        self.applied_seq = 0
        self.active = 0  # live (not deleted) elements, kept in step by the owner
        self.dirty = 0  # changes since the last save
        self._exact: dict[int, np.ndarray] | None = {}
        self._matrix: tuple[np.ndarray, np.ndarray] | None = None
        self._index = _hnswlib().Index(space="cosine", dim=dim)
        self._index.init_index(
            max_elements=max(capacity, 16),
            ef_construction=params.ef_construction,
            M=params.m,
            allow_replace_deleted=False,
        )
        self._index.set_ef(params.ef)
        self._ef = params.ef
        self._index.set_num_threads(params.threads)

    # -- building ---------------------------------------------------------------

    def _reserve(self, extra: int) -> None:
        needed = self._index.element_count + extra
        capacity = self._index.get_max_elements()
        if needed > capacity:
            self._index.resize_index(max(needed, capacity * 2))

    def upsert(self, labels: np.ndarray, vectors: np.ndarray) -> None:
        """Add or replace vectors (a deleted label is revived by hnswlib)."""
        if len(labels) == 0:
            return
        self._reserve(len(labels))
        self._index.add_items(
            np.ascontiguousarray(vectors, dtype=np.float32),
            np.asarray(labels, dtype=np.int64),
            num_threads=self.params.threads,
        )
        self.dirty += len(labels)
        if self._exact is not None:
            self._matrix = None
            for label, vector in zip(labels, vectors, strict=True):
                self._exact[int(label)] = np.asarray(vector, dtype=np.float32)
            if len(self._exact) > EXACT_SEARCH_MAX:
                self._exact = None  # large enough for the graph alone

    def delete(self, labels: list[int]) -> None:
        """Mark labels deleted; unknown or already deleted labels are ignored (idempotent)."""
        for label in labels:
            if self._exact is not None and self._exact.pop(int(label), None) is not None:
                self._matrix = None
            try:
                self._index.mark_deleted(int(label))
            except RuntimeError:
                continue
            self.dirty += 1

    def mirror(self, labels: np.ndarray, vectors: np.ndarray) -> None:
        """Seed the exact mirror of a small index loaded from disk (vectors from the store)."""
        if len(labels) > EXACT_SEARCH_MAX:
            self._exact = None
            return
        self._exact = {
            int(lb): np.asarray(v, dtype=np.float32) for lb, v in zip(labels, vectors, strict=True)
        }
        self._matrix = None

    @property
    def exact(self) -> bool:
        return self._exact is not None

    # -- searching --------------------------------------------------------------

    def search(
        self,
        vector: np.ndarray,
        k: int,
        *,
        ef: int | None = None,
        allowed: frozenset[int] | None = None,
    ) -> list[tuple[int, float]]:
        """Up to ``k`` nearest (label, cosine similarity), best first.

        ``allowed``: only these labels (hnswlib's filtered search, with a wider beam so
        that enough allowed labels are met on the way).
        """
        k = min(k, self.active if allowed is None else min(self.active, len(allowed)))
        if k <= 0:
            return []
        if self._exact is not None:
            if allowed is not None:
                return self.search_among(np.fromiter(allowed, dtype=np.int64), vector, k)
            return self._search_exact(vector, k)
        ef = max(ef or self.params.ef, k)
        if allowed is None:
            # a larger graph needs a wider beam for the same results (see beam.py:
            # recall@10 of real turn vectors at ef 64 was 0.92 at 10^5, 0.61 at 10^6)
            ef = search_beam(self.active, k, ef, min(k, 10))
        else:
            # the beam must reach past the non-matching neighbours: widen it by the
            # inverse share of allowed labels (bounded). Not by the size rule on top:
            # hnswlib counts only allowed labels into the beam, so a beam wider than
            # them walks the whole graph through a Python filter (a 3-16x slower
            # search at 10^5-10^6 in review)
            share = len(allowed) / max(self.active, 1)
            ef = min(max(ef, int(ef / max(share, 1e-3))), max(self.active, ef))
        if ef != self._ef:  # skip the call (and its lock) when unchanged
            self._index.set_ef(ef)
            self._ef = ef
        query = np.asarray(vector, dtype=np.float32).reshape(1, -1)
        keep = allowed.__contains__ if allowed is not None else None
        try:
            labels, distances = self._index.knn_query(query, k=k, num_threads=1, filter=keep)
        except RuntimeError:
            # hnswlib cannot always fill k slots when many elements are deleted (or
            # filtered out); ask for fewer rather than fail the recall.
            return self._search_fewer(query, k, keep)
        return _hits(labels, distances)

    def search_among(
        self, labels: np.ndarray, vector: np.ndarray, k: int
    ) -> list[tuple[int, float]]:
        """The exact ``k`` nearest among ``labels`` (live labels of this index)."""
        if labels.size == 0 or k <= 0:
            return []
        if self._exact is not None:
            rows = [self._exact.get(int(label)) for label in labels]
            keep = [i for i, row in enumerate(rows) if row is not None]
            labels = labels[keep]
            if labels.size == 0:
                return []
            matrix = np.vstack([row for row in rows if row is not None])
        else:
            matrix = np.asarray(self._index.get_items(labels, return_type="numpy"), np.float32)
        norms = np.linalg.norm(matrix, axis=1)
        norms[norms == 0] = 1.0
        query = np.asarray(vector, dtype=np.float32)
        query = query / (np.linalg.norm(query) or 1.0)
        sims = np.einsum("ij,j->i", matrix, query) / norms
        k = min(k, labels.size)
        top = np.argpartition(-sims, k - 1)[:k]
        top = top[np.argsort(-sims[top], kind="stable")]
        return [(int(labels[i]), float(sims[i])) for i in top]

    def _search_exact(self, vector: np.ndarray, k: int) -> list[tuple[int, float]]:
        if self._matrix is None:
            exact = self._exact or {}
            labels = np.fromiter(exact, dtype=np.int64, count=len(exact))
            vectors = (
                np.vstack(list(exact.values()))
                if labels.size
                else np.zeros((0, self.dim), np.float32)
            )
            norms = np.linalg.norm(vectors, axis=1, keepdims=True)
            norms[norms == 0] = 1.0
            self._matrix = (labels, vectors / norms)
        labels, matrix = self._matrix
        if labels.size == 0:
            return []
        query = np.asarray(vector, dtype=np.float32)
        query = query / (np.linalg.norm(query) or 1.0)
        # einsum, not BLAS: a threaded gemv this small costs 10x more on a busy machine
        sims = np.einsum("ij,j->i", matrix, query)
        k = min(k, labels.size)
        top = np.argpartition(-sims, k - 1)[:k]
        top = top[np.argsort(-sims[top], kind="stable")]
        return [(int(labels[i]), float(sims[i])) for i in top]

    def _search_fewer(self, query: np.ndarray, k: int, keep: Any = None) -> list[tuple[int, float]]:
        while k > 1:
            k //= 2
            try:
                labels, distances = self._index.knn_query(query, k=k, num_threads=1, filter=keep)
            except RuntimeError:
                continue
            return _hits(labels, distances)
        return []

    def __len__(self) -> int:
        return self.active

    @property
    def element_count(self) -> int:
        return int(self._index.element_count)

    # -- persistence --------------------------------------------------------------

    def save(self, path: Path, sidecar: dict[str, Any]) -> None:
        """Write ``path`` atomically and durably, then its sidecar (see the module docstring).

        The new file is parsed to its last byte and fsynced before it replaces the old
        one, so a write cut short (a full disk) keeps the previous good file.
        """
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
        os.close(fd)
        try:
            self._index.save_index(tmp)
            size, digest = verify_written(Path(tmp), self.dim, self.params.m)
            os.replace(tmp, path)
            fsync_dir(path.parent)
        except Exception as exc:
            Path(tmp).unlink(missing_ok=True)
            raise StorageError(f"could not save the HNSW index to {path}: {exc}") from exc
        meta = dict(sidecar)
        meta.update(
            params=asdict(self.params),
            applied_seq=self.applied_seq,
            dim=self.dim,
            bytes=size,
            sha256=digest,
        )
        side = path.with_suffix(".json")
        try:
            write_durably(side, json.dumps(meta, indent=1).encode("utf-8"))
        except OSError as exc:
            raise StorageError(f"could not save the index sidecar {side}: {exc}") from exc
        self.dirty = 0

    @classmethod
    def load(cls, path: Path, params: HNSWParams, expect: dict[str, Any]) -> HNSWIndex | None:
        """Load ``path`` if it exists, its sidecar matches ``expect`` and the whole file
        matches the checksum in the sidecar; else None.

        Returns None (and logs why) for a missing, damaged, truncated or foreign file, so
        the caller rebuilds from the store. No file content can crash the process:
        hnswlib only ever reads a file byte-identical to one this class wrote and checked.
        """
        side = path.with_suffix(".json")
        if not path.exists() or not side.exists():
            if path.exists() or side.exists():
                log.warning("index %s is incomplete (file or sidecar missing); rebuilding", path)
            return None
        meta = _read_sidecar(side)
        if meta is None:
            return None
        for key, value in expect.items():
            if meta.get(key) != value:
                log.warning(
                    "index %s is stale (%s is %r, the store has %r); rebuilding",
                    path,
                    key,
                    meta.get(key),
                    value,
                )
                return None
        stored = meta["params"]
        if stored.get("m") != params.m:
            log.warning("index %s was built with M=%s; rebuilding", path, stored.get("m"))
            return None
        if stored.get("ef_construction") != params.ef_construction:
            # only the build effort differs: the graph is as valid, so keep it (a
            # rebuild of a million memories would cost minutes for nothing)
            log.info("index %s keeps ef_construction=%s", path, stored.get("ef_construction"))
        dim = meta["dim"]
        try:
            size, digest = sha256_file(path)
            with path.open("rb") as fh:
                check_header(fh.read(HEADER.size), dim, params.m)
        except (OSError, StorageError) as exc:
            log.warning("index %s is damaged (%s); rebuilding", path, exc)
            return None
        if size != meta["bytes"] or digest != meta["sha256"]:
            log.warning(
                "index %s does not match the checksum in its sidecar (damaged or truncated); "
                "rebuilding",
                path,
            )
            return None
        self = cls.__new__(cls)
        self.dim = dim
        self.params = params
        self.applied_seq = meta["applied_seq"]
        self.active = 0
        self.dirty = 0
        self._exact = None  # the owner seeds it with mirror() for small namespaces
        self._matrix = None
        self._index = _hnswlib().Index(space="cosine", dim=self.dim)
        try:
            self._index.load_index(os.fspath(path))
        except Exception as exc:  # hnswlib raises RuntimeError or worse on garbage
            log.warning("index %s is corrupt (%s); rebuilding", path, exc)
            return None
        if self._index.element_count > 0 and self._index.dim != self.dim:
            log.warning("index %s has the wrong dimension; rebuilding", path)
            return None
        self._index.set_ef(params.ef)
        self._ef = params.ef
        self._index.set_num_threads(params.threads)
        return self


def _read_sidecar(side: Path) -> dict[str, Any] | None:
    """The sidecar's fields, type-checked; None (logged) if unreadable or malformed."""
    try:
        meta = json.loads(side.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        log.warning("index sidecar %s is unreadable (%s); rebuilding", side, exc)
        return None
    if not isinstance(meta, dict):
        log.warning("index sidecar %s is not a JSON object; rebuilding", side)
        return None
    fields = {"dim": int, "bytes": int, "applied_seq": int, "sha256": str, "params": dict}
    for key, kind in fields.items():
        value = meta.get(key)
        if not isinstance(value, kind) or isinstance(value, bool):
            # sidecars older than the full checksum land here too: rebuilt once
            log.warning("index sidecar %s has no valid %r; rebuilding", side, key)
            return None
    if meta["dim"] <= 0 or meta["bytes"] < 0 or meta["applied_seq"] < 0:
        log.warning("index sidecar %s has out-of-range values; rebuilding", side)
        return None
    return meta
