"""SemanticMemory: the public engine. Orchestrates backend, L1 cache, embedder and fusion.

Data path of a ``recall``: embed the query (RAM cache, then the store's embedding
cache, then the embedder) → pick up other processes' commits → vector and lexical
candidates from the backend (L2) → fusion and thread/speaker/date signals
(``ranking.py``; convex fusion by default) → hydrate the winners
from L1 (RAM) where they are hot, else from the store → record hits.

The L1 rule: **L2 always decides the ranking; L1 only serves records.** A memory in
the SmartCache is returned from RAM (``tier="L1"``) when the full index ranks it
among the results, so the cache can never hide a better L2 answer. Repeating a
query while the store is unchanged is answered from a small result cache without
touching the index at all (same results: the store has not changed since).

This class is the public face and the write path; its parts live beside it:
``ranking.py`` ranks one query over the full store, ``tiers.py`` holds what is kept in
RAM (L1, result and query-vector caches, pending hit counts), ``writing.py`` prepares
what a write stores, ``ingestion.py`` stores documents, ``lifecycle.py`` opens and
closes the store and embedder, ``validation.py`` checks every input.
"""

from __future__ import annotations

import builtins
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import IO, TYPE_CHECKING, Any

import numpy as np

from .backends.base import AddResult, ListQuery, NewMemory, StorageBackend
from .config import Settings, resolve_settings
from .embedders.base import Embedder
from .errors import NotFoundError, ValidationError
from .expansion import QueryExpander
from .hashing import text_hash
from .ingestion import INGEST_SLICE as INGEST_SLICE  # where tests and callers look for it
from .ingestion import DocumentTurns
from .lifecycle import close_at_exit, closed, open_parts
from .ranking import RecallMode
from .rerankers.base import RERANK_DEPTH, Reranker, check_reranker
from .rerankers.factory import create_reranker
from .retrieval import FusionConfig
from .tiers import PROTECTED_HITS, Tiers
from .types import HistoryEvent, IngestResult, Memory, Recollection
from .validation import (
    Timestamp,
    clean_batch,
    clean_filter,
    clean_instructions,
    clean_metadata,
    clean_source,
    clean_text,
    clean_timestamp,
    clean_timestamps,
    clean_turns,
)
from .writing import batch_thread, conversation_rows, embed_texts

if TYPE_CHECKING:
    from .llm.base import ChatModel
    from .transfer import ImportReport

__all__ = ["PROTECTED_HITS", "RecallMode", "SemanticMemory"]

MAX_RECALL_LIMIT = 1000


class SemanticMemory:
    """Tiered semantic memory: L1 SmartCache (RAM) over an L2 store with HNSW + FTS5.

    Settings come from keyword arguments, then the environment, ``.env`` and
    ``.streamlit/secrets.toml`` (see :mod:`sem_mem.config`). With no OpenAI key the
    embedder is the local MiniLM model and everything runs offline.
    """

    def __init__(
        self,
        storage_dir: str | None = None,
        *,
        namespace: str | None = None,
        embedder: Embedder | str | None = None,
        api_key: str | None = None,
        base_url: str | None = None,
        chat_model: ChatModel | str | None = None,
        reasoning_effort: str | None = None,
        cache_size: int | None = None,
        auto_memory: bool | None = None,
        web_search: bool | None = None,
        database_url: str | None = None,
        backend: StorageBackend | None = None,
        settings: Settings | None = None,
        reranker: Reranker | str | None = None,
        **overrides: Any,
    ) -> None:
        explicit: dict[str, Any] = {
            "storage_dir": storage_dir,
            "namespace": namespace,
            "openai_api_key": api_key,
            "openai_base_url": base_url,
            "embedder": embedder if isinstance(embedder, str) else None,
            "chat_model": chat_model if isinstance(chat_model, str) else None,
            "reasoning_effort": reasoning_effort,
            "cache_size": cache_size,
            "auto_memory": auto_memory,
            "web_search": web_search,
            "database_url": database_url,
            "reranker": reranker if isinstance(reranker, str) else None,
        }
        if settings is None:
            settings = resolve_settings(**explicit, **overrides)
        else:  # explicit arguments still win over a prepared Settings object
            settings = settings.with_overrides(
                **{k: v for k, v in {**explicit, **overrides}.items() if v is not None}
            )
        self.settings = settings
        self.namespace = settings.namespace
        self._owns_backend = backend is None
        self.backend, self.embedder = open_parts(settings, backend, embedder)
        # a ChatModel object given by the caller, else built on first use from settings
        self._chat_model = chat_model if not isinstance(chat_model, str) else None
        if reranker is not None and not isinstance(reranker, str):
            check_reranker(reranker)
        # a Reranker given by the caller, else the one settings.reranker names, checked
        # now (a bad setting fails here, not at the first recall; the model loads later)
        self._reranker: Reranker | None = (
            create_reranker(settings.reranker) if reranker is None or isinstance(reranker, str)
            else reranker
        )  # fmt: skip
        self._lock = threading.RLock()
        #: L1, the result and query-vector caches, pending hit counts (see tiers.py)
        self._tiers = Tiers(self.backend, self.namespace, self._lock, settings.cache_size)
        self.cache = self._tiers.cache
        #: how hybrid recall fuses vector and full-text candidates (see retrieval.py)
        self.fusion = FusionConfig()
        #: query expansion: its cached answers and the small model (see expansion.py)
        self.expander = QueryExpander(settings.expansion_model)
        # the result cache: the tiers' own object (benchmarks clear it to time the L2 path)
        self._results = self._tiers.results
        # one ingest of a document at a time (see ingestion.py)
        self._document_turns = DocumentTurns(self._lock)
        self._closed = False
        self._tiers.seen_seq = self.backend.refresh()
        self._tiers.warm()
        close_at_exit(self)

    # ------------------------------------------------------------------ lifecycle

    def __enter__(self) -> SemanticMemory:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Persist hit counts and index files, then release the store."""
        with self._lock:
            if self._closed:
                return
            try:
                self._tiers.flush(self.embedder.model_id)
            finally:
                self._closed = True
                closed(self)
                if self._owns_backend:
                    self.backend.close()

    def flush(self) -> None:
        """Write pending hit counts and save index files now (also done on close)."""
        with self._lock:
            self._tiers.flush(self.embedder.model_id)
            self.backend.flush()

    def __repr__(self) -> str:
        return (
            f"SemanticMemory(backend={self.backend!r}, "
            f"namespace={self.namespace!r}, embedder={self.embedder.model_id!r})"
        )

    # ------------------------------------------------------------------ validation

    def _clean_text(self, text: object, field: str = "text") -> str:
        return clean_text(text, field=field, max_chars=self.settings.max_text_chars)

    def _clean_metadata(self, metadata: object) -> dict[str, Any]:
        return clean_metadata(metadata, max_bytes=self.settings.max_metadata_bytes)

    def validate_batch(
        self,
        texts: Sequence[str],
        metadata: Mapping[str, Any] | Sequence[Mapping[str, Any] | None] | None = None,
        source: str = "manual",
    ) -> tuple[list[str], list[dict[str, Any]]]:
        """The checks ``remember_batch`` runs before storing anything: cleaned texts and
        one metadata dict per text. Raises ValidationError naming the field and limit."""
        clean_source(source)
        return clean_batch(
            texts,
            metadata,
            max_chars=self.settings.max_text_chars,
            max_bytes=self.settings.max_metadata_bytes,
        )

    def _check_open(self) -> None:
        if self._closed:
            from .errors import StorageError

            raise StorageError("this SemanticMemory is closed")

    # ------------------------------------------------------------------ embeddings

    def _embed_texts(
        self,
        texts: Sequence[str],
        progress: Callable[[int, int], None] | None = None,
        speakers: Sequence[str | None] | None = None,
    ) -> np.ndarray:
        """Vectors of memories with these ``texts`` (and ``speakers``, for conversation
        turns), reusing any embedding the store already has for the same text."""
        return embed_texts(self.backend, self.namespace, self.embedder, texts, progress, speakers)

    # ------------------------------------------------------------------ writes

    def remember(
        self,
        text: str,
        metadata: Mapping[str, Any] | None = None,
        *,
        source: str = "manual",
        dedupe: bool = True,
        timestamp: datetime | str | float | None = None,
    ) -> str:
        """Store one memory; committed to disk before this returns. Returns its id.

        With ``dedupe`` (the default) remembering the same text with the same metadata
        again refreshes the existing memory and returns its id instead of adding a copy.
        ``timestamp`` is when the fact happened or was said (a datetime, an ISO 8601
        string or unix seconds; default: now): recall and list filter on it, and the
        chat prompt shows it.
        """
        cleaned = self._clean_text(text)  # so errors name "text", not "texts[0]"
        return self.remember_batch(
            [cleaned], metadata, source=source, dedupe=dedupe, timestamp=timestamp
        )[0]

    def remember_batch(
        self,
        texts: Sequence[str],
        metadata: Mapping[str, Any] | Sequence[Mapping[str, Any] | None] | None = None,
        *,
        source: str = "manual",
        dedupe: bool = True,
        progress: Callable[[int, int], None] | None = None,
        chunk_size: int = 1000,
        timestamp: Timestamp | Sequence[Timestamp] = None,
    ) -> list[str]:
        """Store many memories, embedding them in batches; returns their ids in order.

        ``metadata`` is one dict for all or a list with one dict (or None) per text.
        Memories are committed in transactions of ``chunk_size``: if the process dies
        midway, every chunk committed before is kept. ``progress(done, total)`` is
        called as texts are embedded and then as they are committed. ``timestamp``: as
        in :meth:`remember`, one for all of them, or a list with one (or None: now) per
        text.

        With ``source="thread"`` the texts are read as the consecutive turns of one
        conversation (``"Speaker: text"`` lines, or a ``"speaker"``/``"role"`` in each
        one's metadata): they are stored as a thread, in order, with their speakers, so
        recall lifts the turns around a hit and weighs who said what, as it does for
        :meth:`remember_conversation` (use that one to append to a thread across calls).
        """
        self._check_open()
        cleaned, metas = self.validate_batch(texts, metadata, source)
        times = clean_timestamps(timestamp, len(cleaned))
        thread: dict[str, Any] = {}
        if source == "thread" and cleaned:
            thread_id, positions, speakers = batch_thread(cleaned, metas)
            thread = {"thread_id": thread_id, "positions": positions, "speakers": speakers}
        results = self._store(
            cleaned,
            metas,
            source=source,
            dedupe=dedupe,
            progress=progress,
            chunk_size=chunk_size,
            timestamps=times,
            **thread,
        )
        return [r.id for r in results]

    def remember_conversation(
        self,
        turns: Sequence[Mapping[str, Any]],
        *,
        thread_id: str | None = None,
        timestamp: datetime | str | float | None = None,
        metadata: Mapping[str, Any] | None = None,
        dedupe: bool = True,
        progress: Callable[[int, int], None] | None = None,
    ) -> list[str]:
        """Store a conversation, one memory per turn; returns their ids in order.

        Each turn is a dict with ``"speaker"`` (or ``"role"``), ``"text"`` (or
        ``"content"``) and optionally ``"timestamp"``, ``"metadata"`` and ``"position"``.
        A turn is stored as ``"Speaker: text"`` with ``source="thread"``; its thread,
        its place in the thread and its speaker are recorded, so recall can lift the
        turns around a hit and weigh who said what.

        ``thread_id`` names the thread (a new one is generated if omitted: read it back
        from any turn's ``Memory.thread_id``). Turns without a ``"position"`` continue
        the thread after its last stored turn, so saving a growing conversation in
        pieces keeps its order; the end is read in the transaction that writes them, so
        when other processes or server replicas append to the thread at the same time,
        each call's turns stay together, in order, and none takes another's place.
        Saving the same turns at the same positions again refreshes them instead of
        adding copies. ``timestamp`` is the default time of the
        turns, ``metadata`` is merged under each turn's own. All turns are committed in
        one transaction, as in :meth:`remember_batch`.
        """
        self._check_open()
        default_time = clean_timestamp(timestamp, "timestamp")
        base_meta = self._clean_metadata(metadata or {})
        parsed = clean_turns(turns, max_chars=self.settings.max_text_chars)
        if not parsed:
            return []
        if thread_id is None:
            import uuid

            thread_id = uuid.uuid4().hex
        thread_id = clean_text(thread_id, field="thread_id", max_chars=256)
        texts, metas, times, positions, speakers = conversation_rows(
            parsed, base_meta, default_time
        )
        cleaned, metas = self.validate_batch(texts, metas, "thread")
        results = self._store(
            cleaned,
            metas,
            source="thread",
            dedupe=dedupe,
            progress=progress,
            chunk_size=max(len(cleaned), 1),
            timestamps=times,
            thread_id=thread_id,
            positions=positions,
            after_end=[turn.position is None for turn in parsed],
            speakers=speakers,
        )
        return [r.id for r in results]

    def _store(
        self,
        cleaned: Sequence[str],
        metas: Sequence[dict[str, Any]],
        *,
        source: str,
        dedupe: bool,
        progress: Callable[[int, int], None] | None,
        chunk_size: int,
        timestamps: Sequence[float | None],
        thread_id: str | None = None,
        positions: Sequence[int | None] | None = None,
        after_end: Sequence[bool] | None = None,
        speakers: Sequence[str | None] | None = None,
        vectors: np.ndarray | None = None,
    ) -> list[AddResult]:
        """Embed (unless ``vectors`` are given) and commit validated memories: the one
        write path of every remember and of document ingestion."""
        if not cleaned:
            return []
        total = len(cleaned)
        if vectors is None:
            embed_progress = (lambda done, _t: progress(done, total)) if progress else None
            vectors = self._embed_texts(cleaned, embed_progress, speakers)
        items = [
            NewMemory(
                text=t,
                embedding=vectors[i],
                content_hash=text_hash(t),
                metadata=metas[i],
                source=source,
                timestamp=timestamps[i],
                thread_id=thread_id,
                position=positions[i] if positions is not None else None,
                after_end=after_end[i] if after_end is not None else False,
                speaker=speakers[i] if speakers is not None else None,
            )
            for i, t in enumerate(cleaned)
        ]
        results = self.backend.add(
            self.namespace,
            items,
            dedupe=dedupe,
            chunk_size=chunk_size,
            on_commit=(lambda n: progress(n, total)) if progress else None,
        )
        self._after_write([r.id for r in results if not r.created])
        return results

    def update(
        self,
        memory_id: str,
        *,
        text: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Memory:
        """Change a memory's text and/or metadata; the old version stays in history."""
        self._check_open()
        if text is None and metadata is None:
            raise ValidationError("update needs a new text, new metadata, or both")
        kwargs: dict[str, Any] = {}
        if text is not None:
            cleaned = self._clean_text(text)
            current = self.backend.get_many(self.namespace, [memory_id]).get(memory_id)
            speaker = current.memory.speaker if current is not None else None
            kwargs.update(
                text=cleaned,
                embedding=self._embed_texts([cleaned], speakers=[speaker])[0],
                content_hash=text_hash(cleaned),
            )
        if metadata is not None:
            kwargs["metadata"] = self._clean_metadata(metadata)
        memory = self.backend.update(self.namespace, memory_id, **kwargs)
        self._after_write([memory_id])
        return memory

    def forget(self, memory_id: str) -> None:
        """Delete a memory for good: text, vector and history (a tombstone records the id)."""
        self._check_open()
        if self.backend.delete(self.namespace, [memory_id]) == 0:
            raise NotFoundError(f"no memory {memory_id!r} in namespace {self.namespace!r}")
        self._after_write([memory_id])

    def supersede(self, old_id: str, new_id: str, reason: str = "") -> None:
        """Retire ``old_id`` in favour of ``new_id``: out of recall, kept in history."""
        self._check_open()
        self.backend.supersede(self.namespace, old_id, new_id, reason)
        self._after_write([old_id])

    def _after_write(self, touched: Sequence[str]) -> None:
        self._tiers.changed(touched)

    # ------------------------------------------------------------------ reads

    def get(self, memory_id: str) -> Memory:
        """The memory with this id (NotFoundError if there is none in this namespace)."""
        self._check_open()
        found = self.backend.get_many(self.namespace, [memory_id]).get(memory_id)
        if found is None:
            raise NotFoundError(f"no memory {memory_id!r} in namespace {self.namespace!r}")
        return found.memory

    def list(
        self,
        *,
        limit: int = 50,
        offset: int = 0,
        source: str | None = None,
        since: datetime | str | float | None = None,
        until: datetime | str | float | None = None,
        metadata: Mapping[str, Any] | None = None,
        include_superseded: bool = False,
        newest_first: bool = True,
        thread_id: str | None = None,
    ) -> builtins.list[Memory]:
        """Memories page by page, newest first (by timestamp), optionally filtered.

        ``since``/``until`` bound when a memory happened (its ``timestamp``);
        ``thread_id`` lists a conversation's turns (in order with ``newest_first=False``).
        """
        self._check_open()
        if not 1 <= limit <= 10_000:
            raise ValidationError(f"limit must be between 1 and 10000, got {limit}")
        if offset < 0:
            raise ValidationError(f"offset must be >= 0, got {offset}")
        where = clean_filter(
            source, since, until, metadata, thread_id, max_bytes=self.settings.max_metadata_bytes
        )
        return self.backend.list(
            self.namespace,
            ListQuery(
                where,
                limit=limit,
                offset=offset,
                include_superseded=include_superseded,
                newest_first=newest_first,
            ),
        )

    def history(self, memory_id: str) -> builtins.list[HistoryEvent]:
        """Every change of one memory, oldest first."""
        self._check_open()
        return self.backend.history(self.namespace, memory_id)

    def __len__(self) -> int:
        return self.backend.count(self.namespace)

    def recall(
        self,
        query: str,
        limit: int = 5,
        *,
        threshold: float | None = None,
        mode: RecallMode = "hybrid",
        candidates: int | None = None,
        expand_query: bool = False,
        logs: builtins.list[str] | None = None,
        record_hits: bool = True,
        metadata: Mapping[str, Any] | None = None,
        source: str | None = None,
        since: datetime | str | float | None = None,
        until: datetime | str | float | None = None,
        rerank: bool | None = None,
    ) -> builtins.list[Recollection]:
        """The memories most relevant to ``query``, best first.

        ``metadata``, ``source``, ``since`` and ``until`` restrict recall to the
        memories that match, as in :meth:`list` (``since``/``until`` bound when a memory
        happened). They are applied while candidates are found, so a matching memory is
        returned even when thousands of others are closer to the query.

        ``mode``: ``"hybrid"`` (default) fuses vector and full-text candidates,
        ``"vector"`` is pure cosine similarity, ``"lexical"`` pure full-text.
        ``threshold`` drops results whose cosine similarity is below it.
        ``candidates`` is how many each retriever proposes (default ``max(50, 2*limit)``).
        ``expand_query`` also searches LLM-written rephrasings of the query and fuses
        the results (skipped when no chat model is configured). ``logs``, if given,
        receives one line per step (expansions, L1/L2 hits) for a UI to show.
        ``record_hits=False`` is for internal lookups (e.g. duplicate checks): they
        neither count as hits nor move memories into L1.

        ``rerank=True`` has a cross-encoder read the query beside each of the best
        ``RERANK_DEPTH`` (25) candidates (a conversation turn alone and with its neighbours)
        and reorder them (see :mod:`sem_mem.rerankers`: better ordering, ~0.25 s more on
        two cores). ``None`` (default) reranks when a reranker is configured
        (``reranker=`` / ``SEMMEM_RERANKER``), except in vector mode; ``False`` never.
        A reranked result's ``score`` ranks it among this recall's candidates only: it
        is not comparable across recalls (``similarity`` still is).
        """
        self._check_open()
        query = self._clean_text(query, "query")
        if not 1 <= limit <= MAX_RECALL_LIMIT:
            raise ValidationError(f"limit must be between 1 and {MAX_RECALL_LIMIT}, got {limit}")
        if mode not in ("hybrid", "vector", "lexical"):
            raise ValidationError(f"mode must be hybrid, vector or lexical, got {mode!r}")
        pool = max(candidates or 0, 50, 2 * limit)
        where = clean_filter(
            source, since, until, metadata, max_bytes=self.settings.max_metadata_bytes
        )
        self._sync()
        generation = self._tiers.generation  # before anything is read from the store
        queries = [query]
        if expand_query:
            alternatives = self.expander.expand(self.chat_model, query)
            queries += alternatives
            if logs is not None:
                logs.append(
                    f"query expansion: {len(alternatives)} alternative(s)"
                    + "".join(f"\n  - {q}" for q in alternatives)
                )
        reranker = self._reranker_for(rerank, mode)
        depth = max(limit, RERANK_DEPTH) if reranker is not None else limit
        ranked, fetched = self._tiers.ranking(
            queries, mode, depth, max(pool, 2 * depth), threshold, where, generation,
            self.embedder, self.fusion,
        )  # fmt: skip
        if reranker is not None:
            ranked, reranked = self._tiers.reranked(
                reranker, query, ranked, fetched, where, generation
            )
            ranked = ranked[:limit]
            if logs is not None and reranked:
                logs.append(f"reranked the best {reranked} candidates")
        results = self._tiers.hydrate(ranked, fetched, generation, touch=record_hits)
        if record_hits:
            self._record_hits([r.id for r in results])
        if logs is not None:
            l1 = sum(r.tier == "L1" for r in results)
            logs.append(f"recall ({mode}): {l1} from L1, {len(results) - l1} from L2")
        return results

    @property
    def reranker(self) -> Reranker | None:
        """The configured reranker (``reranker=`` / ``SEMMEM_RERANKER``), or None."""
        return self._reranker

    def _reranker_for(self, rerank: bool | None, mode: RecallMode) -> Reranker | None:
        """``rerank=None``: the configured reranker, except in vector mode (documented
        as pure cosine order, and used so by duplicate checks); ``True``: it, or the
        local cross-encoder when none is configured (shared, loaded once)."""
        if rerank is None:
            return self._reranker if mode != "vector" else None
        if not rerank:
            return None
        return self._reranker or create_reranker("local")

    def refresh(self) -> None:
        """Pick up commits made by other processes now (recall does this by itself)."""
        self._check_open()
        self._sync()

    def _sync(self) -> None:
        """Pick up commits from other processes and drop what they changed from L1."""
        self._tiers.sync()

    # ------------------------------------------------------------------ hits and L1

    def _record_hits(self, ids: Sequence[str]) -> None:
        with self._lock:
            if self._tiers.count_hits(ids):  # due: flushed not on this recall's latency,
                # with the embedder read under the lock (reembed swaps it under the lock)
                self._tiers.flush(self.embedder.model_id, wait=False)

    def cache_state(self) -> dict[str, builtins.list[dict[str, Any]]]:
        """The L1 tiers, most recently used first: ``{"protected": [...], "probation": [...]}``."""
        return self._tiers.state()

    # ------------------------------------------------------------------ instructions

    @property
    def instructions(self) -> str:
        """The persistent instructions (``instructions.txt``)."""
        return self.backend.get_instructions(self.namespace)

    def set_instructions(self, text: str) -> None:
        """Replace the persistent instructions."""
        cleaned = clean_instructions(text, max_chars=self.settings.max_text_chars)
        self.backend.set_instructions(self.namespace, cleaned)

    def add_instruction(self, text: str) -> None:
        """Append one instruction line (an identical line is not added twice)."""
        line = self._clean_text(text, "instruction")
        current = self.instructions
        if line in (existing.strip() for existing in current.splitlines()):
            return
        self.set_instructions((current.rstrip("\n") + "\n" + line) if current.strip() else line)

    # ------------------------------------------------------------------ documents

    def ingest_pdf(
        self,
        source: str | os.PathLike[str] | bytes | IO[bytes],
        *,
        name: str | None = None,
        chunk_chars: int = 1000,
        overlap_chars: int = 150,
        progress: Callable[[int, int], None] | None = None,
        cancel: threading.Event | None = None,
    ) -> IngestResult:
        """Read a PDF (or a text or Markdown file) and store it as chunks (``source="pdf"``).

        Chunks follow paragraphs and sentences with a small overlap and carry the file
        name, page numbers and chunk index in their metadata. The same file (by
        content hash) is stored once: ingesting it again stores nothing new.

        What a PDF may expand to and cost is bounded (``sem_mem.ingest.PdfLimits``: over
        a limit, LimitExceededError names it).

        Chunks are embedded and committed ``INGEST_SLICE`` at a time. If the work stops
        midway (the process is killed, the embedder fails), the slices committed so far
        are kept and ingesting the same file again resumes. Setting ``cancel`` (a
        ``threading.Event``, e.g. set when the client that sent the file disconnects) is
        different: the work stops at the next page, embedding batch or slice and the
        chunks this call stored are deleted again, so a cancelled document leaves
        nothing behind (``sem_mem.ingest.IngestCancelled``, ``reason="cancelled"``).
        Ingests of the same document into one namespace in this process take turns, so
        a cancelled one never removes chunks that another call reported as stored.
        """
        from .ingestion import ingest_document

        self._check_open()
        return ingest_document(
            self,
            source,
            name=name,
            chunk_chars=chunk_chars,
            overlap_chars=overlap_chars,
            progress=progress,
            cancel=cancel,
        )

    ingest_file = ingest_pdf

    # ------------------------------------------------------------------ export / import

    def export_jsonl(self, *, include_embeddings: bool = True) -> Iterator[str]:
        """This namespace as JSON Lines, streamed (see :mod:`sem_mem.transfer`)."""
        from .transfer import export_lines

        self._check_open()
        with self._lock:
            self._tiers.flush(self.embedder.model_id)  # so the export carries every hit count
        return export_lines(self, include_embeddings=include_embeddings)

    def import_jsonl(
        self, lines: Iterable[str | bytes], *, with_instructions: bool = False
    ) -> ImportReport:
        """Import JSON Lines written by :meth:`export_jsonl`, keeping ids and timestamps.

        The file's instructions replace this namespace's only with ``with_instructions``.
        """
        from .transfer import import_lines

        self._check_open()
        report = import_lines(self, lines, with_instructions=with_instructions)
        self._after_write([])
        return report

    # ------------------------------------------------------------------ chat

    @property
    def chat_model(self) -> ChatModel | None:
        """The configured chat model, or None in memory-only mode (no key, no base URL)."""
        if self._chat_model is None:
            from .llm.factory import create_chat_model

            self._chat_model = create_chat_model(self.settings)
        return self._chat_model

    def chat_with_memory(
        self, /, query: str, **kwargs: Any
    ) -> tuple[str, str | None, builtins.list[Recollection], builtins.list[str]]:
        """Answer ``query`` with retrieved memories and instructions as context.

        Returns ``(response, response_id, memories, logs)``; see :mod:`sem_mem.chat`.
        """
        from .chat import chat_with_memory

        self._check_open()
        return chat_with_memory(self, query, **kwargs)

    # ------------------------------------------------------------------ maintenance

    def stats(self) -> dict[str, Any]:
        """Counts, L1 cache figures, index parameters and the embedder in use."""
        self._check_open()
        out = self.backend.stats(self.namespace)
        out["namespace"] = self.namespace
        out["l1"] = self.cache.stats()
        out["embedder"] = {
            "model_id": self.embedder.model_id,
            "dimensions": self.embedder.dimensions,
            "class": type(self.embedder).__name__,
        }
        reranker = self.reranker
        out["reranker"] = reranker.model_id if reranker is not None else None
        return out

    def check(self, *, repair: bool = False) -> dict[str, Any]:
        """Check the store (``sem-mem doctor``): database integrity, full text, counts,
        index files, leftover temp files. ``repair`` rebuilds what is derived from the
        memories; a damaged database is recovered with ``sem-mem doctor --recover-to``.
        """
        self._check_open()
        with self._lock:
            self._tiers.flush(self.embedder.model_id)
        report = self.backend.check(repair=repair)
        if repair:
            self._after_write([])
            with self._lock:
                self.cache.clear()
        return report

    def reembed(
        self, new_embedder: Embedder, *, progress: Callable[[int, int], None] | None = None
    ) -> int:
        """Re-embed every memory of the store with ``new_embedder`` and switch to it.

        All namespaces of the store move together (they share one embedding space).
        The swap is one transaction: a crash midway leaves the old embeddings intact.
        """
        self._check_open()
        with self._lock:
            count = self.backend.replace_embeddings(
                new_embedder.model_id,
                new_embedder.dimensions,
                new_embedder.embed_memories,
                progress=progress,
            )
            self.embedder = new_embedder
            self._tiers.reset()
        return count
