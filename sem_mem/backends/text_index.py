"""The full-text index of one namespace: tantivy on disk plus an in-RAM tail.

A tantivy commit costs 12-40 ms even for one document, far more than a ``remember``,
so writes go to a *tail* held in RAM and searchable at once, and :meth:`TextIndex.commit`
writes the tail into tantivy once per batch. A search runs one BM25 over both parts:
tantivy scores the committed documents (block-max WAND: the cost depends on k and on this
namespace, not on other tenants or on how many documents share a word), the tail is
scored here with the same formula, the same analyzer and the index-wide statistics, so a
document gets (nearly) the same score before and after it is committed.

Files in ``path``: tantivy's own (``meta.json`` and immutable segment files) and
``sidecar.json``, written atomically after each commit: what the index is for
(``expect`` plus the analyzer version), ``committed_seq``, the document count and
field-length sums, the sha256 of ``meta.json`` and the size and crc32 of every segment
file. An index that is missing, foreign, or damaged (unparsable, a file missing or
changed) is wiped and started empty with ``committed_seq = 0`` and ``rebuilt = True``,
so that the caller refills it from the store. If ``meta.json`` is newer than the sidecar
(a crash between the tantivy commit and the sidecar), the index is kept and
``committed_seq`` is the sidecar's older one: replaying from there is idempotent because
a commit deletes every label it writes before adding it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import shutil
import threading
import zlib
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from sem_mem.backends.store_lock import StoreLock
from sem_mem.backends.text_fields import (
    ANALYZER_NAME,
    ANALYZER_VERSION,
    BOOSTS,
    FIELDS,
    FORMAT,
    K1,
    SCORED_FIELDS,
    B,
    TailEntry,
    TextDoc,
    TextFilter,
    filter_meta_terms,
    idf,
    index_schema,
    is_tantivy_error,
    matches,
    quantized_length,
    query_terms,
    tail_entry,
    tantivy_document,
    text_analyzer,
    time_bounds,
)
from sem_mem.errors import StorageError, ValidationError

if TYPE_CHECKING:
    import tantivy

__all__ = ["TextDoc", "TextFilter", "TextIndex"]

log = logging.getLogger(__name__)
SIDECAR = "sidecar.json"
WRITER_HEAP = 32_000_000  # tantivy asks for at least 15 MB per indexing thread


class TextIndex:
    """BM25 search over one namespace: committed tantivy index plus an in-RAM tail."""

    def __init__(self, path: Path, expect: Mapping[str, Any]) -> None:
        self.path = Path(path)
        # as JSON gives it back from the sidecar, so that tuples and lists compare equal
        self.expect = json.loads(
            json.dumps({**expect, "analyzer": ANALYZER_VERSION, "format": FORMAT})
        )
        self.rebuilt = False
        self.rebuilt_reason: str | None = None  # why it was started empty, for logs
        self.committed_seq = 0
        # searches share it (no convoy of searches behind one another); changes take it
        # exclusively (see store_lock.py)
        self._lock = StoreLock()
        self._commit_lock = threading.Lock()  # one commit at a time in this process
        self._tail: dict[int, TailEntry] = {}
        self._tombstones: dict[int, int] = {}  # label -> seq of the delete
        self._postings: dict[tuple[str, str], set[int]] = {}  # (field, term) -> tail labels
        self._tail_lengths = dict.fromkeys(FIELDS, 0)
        self._shadowed: set[int] = set()  # tail/tombstoned labels with a committed version
        self._stats: dict[str, int] = {}
        self._verified: dict[str, tuple[int, int]] = {}  # file -> (size, crc32)
        self._index: tantivy.Index | None = None
        self.path.mkdir(parents=True, exist_ok=True)
        try:
            self._open()
        except Exception as exc:  # any damage means: start again
            self._start_empty(f"cannot open the text index at {self.path}: {exc!r}")
        except BaseException as exc:
            if not is_tantivy_error(exc):
                raise
            self._start_empty(f"tantivy failed on the text index at {self.path}: {exc!r}")

    # ---- opening, files and the sidecar -------------------------------------------------

    def _open(self) -> None:
        import tantivy

        side = self._read_sidecar()
        if side is None:
            raise StorageError("no readable sidecar.json")
        if side.get("expect") != self.expect:
            raise StorageError(f"index is for {side.get('expect')}, not {self.expect}")
        meta_path = self.path / "meta.json"
        meta_bytes = meta_path.read_bytes()
        meta = json.loads(meta_bytes)
        files = self._segment_files(meta)
        recorded: dict[str, list[int]] = side["files"]
        same_meta = hashlib.sha256(meta_bytes).hexdigest() == side["meta_sha256"]
        for name in files:
            if name in recorded:
                self._verify(name, tuple(recorded[name]))  # type: ignore[arg-type]
            elif same_meta:
                raise StorageError(f"{name} is not in the sidecar")
        index = tantivy.Index.open(str(self.path))
        index.register_tokenizer(ANALYZER_NAME, text_analyzer())
        self._index = index
        self.committed_seq = int(side["committed_seq"])
        if same_meta:
            self._stats = {k: int(side[k]) for k in ("docs", "len_text", "len_speaker")}
            self._stats["max_doc"] = sum(int(s["max_doc"]) for s in meta["segments"])
        else:  # crash after tantivy's commit: keep the older committed_seq, recount
            log.warning("text index %s is newer than its sidecar; replaying", self.path)
            self._refresh_stats()
        self._index.searcher().search(tantivy.Query.all_query(), 1)

    def _start_empty(self, why: str) -> None:
        fresh = not (self.path / "meta.json").exists() and not (self.path / SIDECAR).exists()
        log.log(logging.INFO if fresh else logging.WARNING, "%s; starting it empty", why)
        self.rebuilt = True
        self.rebuilt_reason = why
        self._wipe()

    def _wipe(self) -> None:
        import tantivy

        self._index = None
        shutil.rmtree(self.path, ignore_errors=True)
        self.path.mkdir(parents=True, exist_ok=True)
        index = tantivy.Index(index_schema(), path=str(self.path), reuse=False)
        index.register_tokenizer(ANALYZER_NAME, text_analyzer())
        self._index = index
        self.committed_seq = 0
        self._verified.clear()
        self._stats = {"docs": 0, "len_text": 0, "len_speaker": 0, "max_doc": 0}
        self._write_sidecar()

    def _segment_files(self, meta: Mapping[str, Any]) -> list[str]:
        """The files the committed index is made of (the ones the sidecar checksums)."""
        present = os.listdir(self.path)
        out = []
        for seg in meta["segments"]:
            prefix = seg["segment_id"].replace("-", "") + "."
            deletes = seg.get("deletes")
            del_file = f"{prefix}{deletes['opstamp']}.del" if deletes else None
            names = [n for n in present if n.startswith(prefix) and not n.endswith(".del")]
            if len(names) < 5:  # every segment has at least idx/term/store/fast/fieldnorm
                raise StorageError(f"segment {prefix[:-1]} has missing files")
            if del_file:
                if del_file not in present:
                    raise StorageError(f"{del_file} is missing")
                names.append(del_file)
            out.extend(names)
        return sorted(out)

    def _verify(self, name: str, expected: tuple[int, int]) -> None:
        if self._verified.get(name) == expected:
            return
        data = (self.path / name).read_bytes()
        if (len(data), zlib.crc32(data)) != expected:
            raise StorageError(f"{name} is damaged (size or checksum differs)")
        self._verified[name] = expected

    def _read_sidecar(self) -> dict[str, Any] | None:
        try:
            side = json.loads((self.path / SIDECAR).read_text())
        except (OSError, ValueError):
            return None
        return side if isinstance(side, dict) else None

    def _write_sidecar(self) -> None:
        meta_bytes = (self.path / "meta.json").read_bytes()
        files = {}
        for name in self._segment_files(json.loads(meta_bytes)):
            if name not in self._verified:
                data = (self.path / name).read_bytes()
                self._verified[name] = (len(data), zlib.crc32(data))
            files[name] = list(self._verified[name])
        side = {
            "expect": self.expect,
            "committed_seq": self.committed_seq,
            **{k: self._stats[k] for k in ("docs", "len_text", "len_speaker")},
            "meta_sha256": hashlib.sha256(meta_bytes).hexdigest(),
            "files": files,
        }
        tmp = self.path / (SIDECAR + ".tmp")
        with open(tmp, "w") as fh:
            json.dump(side, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path / SIDECAR)
        dir_fd = os.open(self.path, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def _refresh_stats(self) -> None:
        """Count documents and field lengths from the index itself (fast fields)."""
        import tantivy

        index = self._require()
        searcher = index.searcher()
        aggs = {f"len_{f}": {"sum": {"field": f"len_{f}"}} for f in FIELDS}
        got = searcher.aggregate(tantivy.Query.all_query(), aggs) if searcher.num_docs else {}
        self._stats = {k: int((got.get(k) or {}).get("value") or 0) for k in aggs}
        self._stats["docs"] = searcher.num_docs
        meta = json.loads((self.path / "meta.json").read_bytes())
        self._stats["max_doc"] = sum(int(s["max_doc"]) for s in meta["segments"])

    def _require(self) -> tantivy.Index:
        if self._index is None:
            raise StorageError(f"the text index at {self.path} is closed")
        return self._index

    # ---- the tail ------------------------------------------------------------------------

    @property
    def tail_size(self) -> int:
        """Changes (new versions and deletes) not yet committed to tantivy."""
        with self._lock:
            return len(self._tail) + len(self._tombstones)

    def upsert(self, docs: Sequence[TextDoc]) -> None:
        """Make ``docs`` searchable now; each replaces any older version of its label."""
        for doc in docs:
            if doc.label < 0 or doc.seq < 0:
                raise ValidationError(f"label and seq must be >= 0, got {doc.label}, {doc.seq}")
            if not math.isfinite(doc.timestamp):
                raise ValidationError(f"timestamp must be a finite number, got {doc.timestamp}")
        entries = [tail_entry(doc) for doc in docs]
        with self._lock:
            fresh = []
            for e in entries:
                label, seq = e.doc.label, e.doc.seq
                old = self._tail.get(label)
                if (old is not None and old.doc.seq > seq) or self._tombstones.get(label, -1) > seq:
                    continue  # a later change of this label is already here
                self._tombstones.pop(label, None)
                self._drop(label)
                self._tail[label] = e
                for f in FIELDS:
                    self._tail_lengths[f] += e.lengths[f]
                    for term in e.tf[f]:
                        self._postings.setdefault((f, term), set()).add(label)
                fresh.append(label)
            self._shadowed |= self._committed_labels(fresh)

    def delete(self, labels: Iterable[int], seq: int) -> None:
        """Hide ``labels`` from search now (their committed versions too)."""
        with self._lock:
            labels = [label for label in labels if self._tombstones.get(label, -1) < seq]
            for label in labels:
                self._drop(label)
                self._tombstones[label] = seq
            self._shadowed |= self._committed_labels(labels)

    def _drop(self, label: int) -> None:
        e = self._tail.pop(label, None)
        if e is None:
            return
        for f in FIELDS:
            self._tail_lengths[f] -= e.lengths[f]
            for term in e.tf[f]:
                posting = self._postings[(f, term)]
                posting.discard(label)
                if not posting:
                    del self._postings[(f, term)]

    def _committed_labels(self, labels: Sequence[int]) -> set[int]:
        """Those of ``labels`` that have a live version in the committed index."""
        import tantivy

        if not labels or not self._stats.get("docs"):
            return set()
        searcher = self._require().searcher()
        query = tantivy.Query.term_set_query(index_schema(), "label", list(labels))
        hits = searcher.search(query, len(labels), count=False).hits
        return set(_int_values(searcher, "label", [addr for _, addr in hits]))

    # ---- search --------------------------------------------------------------------------

    def search(
        self, query: str, k: int, filters: TextFilter | None = None
    ) -> list[tuple[int, float]]:
        """Up to ``k`` (label, BM25 score), best first, over committed and tail documents."""
        terms = query_terms(query)
        if not terms or k <= 0:
            return []
        meta_terms = filter_meta_terms(filters) if filters else []
        with self._lock.shared():
            searcher = self._require().searcher()
            scores: dict[int, float] = {}
            if self._stats["docs"]:
                shadowed = self._shadowed
                hits = searcher.search(
                    self._query(terms, filters, meta_terms), k + len(shadowed), count=False
                ).hits
                labels = _int_values(searcher, "label", [addr for _, addr in hits])
                for (score, _), label in zip(hits, labels, strict=True):
                    if label not in shadowed:
                        scores[label] = score
            if self._tail:
                scores.update(self._score_tail(searcher, terms, filters, meta_terms))
        best = sorted(scores.items(), key=lambda item: (-item[1], item[0]))
        return best[:k]

    def _query(
        self, terms: Sequence[str], filters: TextFilter | None, meta_terms: Sequence[str]
    ) -> tantivy.Query:
        import tantivy

        Q, schema = tantivy.Query, index_schema()
        should = []
        for f in SCORED_FIELDS:
            for term in terms:
                q = Q.term_query(schema, f, term, index_option="freq")
                should.append(
                    (tantivy.Occur.Should, q if f == "text" else Q.boost_query(q, BOOSTS[f]))
                )
        query = Q.boolean_query(should)
        if filters is None:
            return query
        must = [Q.term_query(schema, "meta", t) for t in meta_terms]
        if filters.source:
            must.append(Q.term_query(schema, "source", filters.source))
        if filters.thread_id is not None:
            must.append(Q.term_query(schema, "thread", filters.thread_id))
        since, until = time_bounds(filters)
        if since is not None or until is not None:
            must.append(
                Q.range_query(
                    schema,
                    "ts",
                    tantivy.FieldType.Float,
                    since,
                    until,
                    include_upper=until is None,
                )
            )
        if not must:
            return query
        # filters must match but add nothing to the score
        clauses = [(tantivy.Occur.Must, Q.const_score_query(q, 0.0)) for q in must]
        return Q.boolean_query([(tantivy.Occur.Must, query), *clauses])

    def _score_tail(
        self,
        searcher: tantivy.Searcher,
        terms: Sequence[str],
        filters: TextFilter | None,
        meta_terms: Sequence[str],
    ) -> dict[int, float]:
        """BM25 of the tail's matching documents, with tantivy's formula and statistics.

        Statistics are what tantivy will use once the tail is committed: N counts every
        stored version (tantivy also counts deleted ones until segments merge), df adds the
        tail's documents to the committed doc_freq, and lengths are quantized like
        tantivy's one-byte fieldnorms.
        """
        n = self._stats["max_doc"] + len(self._tail)
        live = self._stats["docs"] + len(self._tail)
        scores: dict[int, float] = {}
        allowed: dict[int, bool] = {}
        for f in SCORED_FIELDS:
            avg = (self._stats[f"len_{f}"] + self._tail_lengths[f]) / live
            for term in terms:
                labels = self._postings.get((f, term))
                if not labels or avg <= 0:
                    continue
                df = len(labels) + (searcher.doc_freq(f, term) if self._stats["max_doc"] else 0)
                weight = BOOSTS[f] * idf(df, n) * (1.0 + K1)
                for label in labels:
                    e = self._tail[label]
                    ok = allowed.get(label)
                    if ok is None:
                        ok = allowed[label] = matches(e, filters, meta_terms)
                    if not ok:
                        continue
                    tf = e.tf[f][term]
                    norm = K1 * (1.0 - B + B * quantized_length(e.lengths[f]) / avg)
                    scores[label] = scores.get(label, 0.0) + weight * tf / (tf + norm)
        return scores

    # ---- commit, reload, reset -----------------------------------------------------------

    def commit(self) -> None:
        """Write the tail into tantivy, then the sidecar, then forget what was written.

        The caller holds the store's writer lock, so one process commits at a time.
        Every label written is first deleted by term, so committing the same changes
        twice (a replay after a crash before the sidecar) leaves one version of each.
        Searches go on during tantivy's work (old searcher plus the whole tail); the
        switch to the new searcher and the smaller tail happens at once.
        """
        import tantivy

        with self._commit_lock:
            with self._lock:
                self.reload()  # another process may have committed: start from its stats
                if not self._tail and not self._tombstones:
                    return
                index = self._require()
                tail, tombstones = dict(self._tail), dict(self._tombstones)
                lengths = dict(self._tail_lengths)
                gone = self._committed_lengths(self._shadowed)
            labels = list(tail) + [x for x in tombstones if x not in tail]
            writer = None
            try:
                writer = index.writer(heap_size=WRITER_HEAP, num_threads=1)
                writer.delete_documents_by_query(
                    tantivy.Query.term_set_query(index_schema(), "label", labels)
                )
                for e in tail.values():
                    writer.add_document(tantivy_document(e))
                writer.commit()
                writer.wait_merging_threads()  # merges end before the sidecar checksums files
            except BaseException as exc:
                if not is_tantivy_error(exc):
                    raise
                raise StorageError(f"text index commit failed at {self.path}: {exc}") from exc
            finally:
                del writer  # releases tantivy's writer lock for other processes
            with self._lock:
                index.reload()
                seqs = [e.doc.seq for e in tail.values()] + list(tombstones.values())
                self.committed_seq = max(self.committed_seq, *seqs)
                stats = self._stats
                stats["docs"] += len(tail) - gone["docs"]
                for f in FIELDS:
                    stats[f"len_{f}"] += lengths[f] - gone[f"len_{f}"]
                meta = json.loads((self.path / "meta.json").read_bytes())
                stats["max_doc"] = sum(int(s["max_doc"]) for s in meta["segments"])
                # forget what was written, not what changed meanwhile
                for label, e in tail.items():
                    if self._tail.get(label) is e:
                        self._drop(label)
                for label, seq in tombstones.items():
                    if self._tombstones.get(label) == seq:
                        del self._tombstones[label]
                self._shadowed = self._committed_labels([*self._tail, *self._tombstones])
                try:
                    self._write_sidecar()
                except OSError as exc:  # tantivy has it; a reopen replays from the older seq
                    raise StorageError(f"cannot write {self.path / SIDECAR}: {exc}") from exc

    def _committed_lengths(self, labels: set[int]) -> dict[str, int]:
        """How many of ``labels`` are committed and their field lengths (to subtract)."""
        import tantivy

        out = {"docs": 0, **{f"len_{f}": 0 for f in FIELDS}}
        if not labels:
            return out
        searcher = self._require().searcher()
        query = tantivy.Query.term_set_query(index_schema(), "label", list(labels))
        addrs = [addr for _, addr in searcher.search(query, len(labels), count=False).hits]
        out["docs"] = len(addrs)
        for f in FIELDS:
            out[f"len_{f}"] = sum(_int_values(searcher, f"len_{f}", addrs))
        return out

    def reload(self) -> None:
        """See another process's commit; drop the tail entries it already holds."""
        with self._lock:
            index = self._require()
            side = self._read_sidecar()
            if side is None or side.get("expect") != self.expect:
                return
            seq = int(side["committed_seq"])
            if seq <= self.committed_seq:
                return
            try:
                index.reload()
            except BaseException as exc:
                if not is_tantivy_error(exc):
                    raise
                raise StorageError(f"cannot reload the text index at {self.path}") from exc
            self.committed_seq = seq
            self._stats = {k: int(side[k]) for k in ("docs", "len_text", "len_speaker")}
            meta = json.loads((self.path / "meta.json").read_bytes())
            self._stats["max_doc"] = sum(int(s["max_doc"]) for s in meta["segments"])
            for label in [x for x, e in self._tail.items() if e.doc.seq <= seq]:
                self._drop(label)
            for label in [x for x, s in self._tombstones.items() if s <= seq]:
                del self._tombstones[label]
            self._shadowed = self._committed_labels([*self._tail, *self._tombstones])

    def reset(self) -> None:
        """Forget everything, on disk and in RAM (before a rebuild from the store)."""
        with self._lock:
            self._clear_tail()
            self._wipe()

    def close(self) -> None:
        with self._lock:
            self._clear_tail()
            self._index = None

    def _clear_tail(self) -> None:
        self._tail.clear()
        self._tombstones.clear()
        self._postings.clear()
        self._shadowed.clear()
        self._tail_lengths = dict.fromkeys(FIELDS, 0)


def _int_values(searcher: tantivy.Searcher, field: str, addrs: list[Any]) -> list[int]:
    """An integer fast field's values (every document sets it) at ``addrs``, typed."""
    return cast(list[int], searcher.fast_field_values(field, addrs))
