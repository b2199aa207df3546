"""A LangGraph store on Sem-Mem: ``SemMemStore`` is a real ``langgraph.store.base.BaseStore``.

Give it to a graph (``builder.compile(store=store)``, ``create_agent(..., store=store)``)
or to LangMem's memory tools, and LangGraph's long-term memory is kept by Sem-Mem:
persistent, shared across processes, and searched with Sem-Mem's hybrid recall::

    from sem_mem.integrations.langgraph import SemMemStore

    store = SemMemStore(storage_dir="./local_memory")
    store.put(("users", "alice"), "diet", {"text": "Alice is vegetarian"})
    hits = store.search(("users", "alice"), query="what does she eat?")

How LangGraph's model maps onto Sem-Mem's:

* The store is scoped to one Sem-Mem namespace, its *root* (the memory's namespace,
  ``"default"`` unless you choose one). Each LangGraph namespace tuple under it is its
  own Sem-Mem namespace, named ``root/label/label`` with ``%``, ``/`` and ``#``
  percent-escaped in each part, so no two tuples share one and nothing outside the root
  is ever read or written (see :mod:`sem_mem.integrations._common`).
* An item is one memory. Its text is what the ``index`` config names (``fields``,
  LangGraph's JSON paths; default the whole value as JSON); its metadata is the value
  itself plus the item's key under ``"__langgraph_key__"``. ``put`` of an existing key
  updates that memory (``created_at`` is kept, ``updated_at`` moves); ``put`` of
  ``None`` and ``delete`` forget it. Items put with ``index=False`` (or whose indexed
  fields are missing) are kept and listed but, as in LangGraph's own stores, come after
  every scored item in a query search, with ``score=None``.
* ``search(prefix, query=...)`` is Sem-Mem's hybrid recall (vector + full text) in every
  namespace under ``prefix``; results carry its score (normalised over the candidates
  of their namespace) and are merged by it, cosine similarity breaking ties. Without a
  query it lists items, newest first. ``filter`` follows LangGraph's rules (exact match,
  nested dicts, ``$eq``, ``$ne``, ``$gt``, ``$gte``, ``$lt``, ``$lte``): exact matches on
  top-level string and number fields are handed to recall's metadata filter, which
  applies them while candidates are generated (a matching item is found however many
  others are closer); the other conditions are checked on the best
  ``MAX_RECALL_LIMIT`` candidates of a query, and on every item when listing.
* Operations in one ``batch`` run in order. TTLs are not supported (``supports_ttl`` is
  False, as LangGraph expects from stores without them).
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, cast

from ..core import MAX_RECALL_LIMIT, SemanticMemory
from ..errors import ConfigurationError, ValidationError
from ..types import Memory
from ..validation import clean_metadata
from ._common import decode, derived, missing_extra, open_memory, sibling

try:
    from langgraph.store.base import (
        BaseStore,
        GetOp,
        IndexConfig,
        InvalidNamespaceError,
        Item,
        ListNamespacesOp,
        MatchCondition,
        Op,
        PutOp,
        Result,
        SearchItem,
        SearchOp,
        get_text_at_path,
        tokenize_path,
        validate_op_namespace,
    )
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise missing_extra("LangGraph", "langgraph", exc) from exc

__all__ = ["KEY_FIELD", "UNINDEXED_FIELD", "SemMemStore"]

#: metadata field holding an item's key (a value may not use it)
KEY_FIELD = "__langgraph_key__"
#: metadata field marking an item stored without indexed text
UNINDEXED_FIELD = "__langgraph_unindexed__"
_RESERVED = (KEY_FIELD, UNINDEXED_FIELD)
#: how many memories one page of a listing reads
_PAGE = 500


class SemMemStore(BaseStore):
    """LangGraph ``BaseStore`` backed by a :class:`~sem_mem.SemanticMemory`.

    ``memory``: the engine to use (a ``SemanticMemory`` or ``AsyncSemanticMemory``; its
    namespace is the store's root and it stays open when the store closes). Without
    one, a memory is opened on ``storage_dir`` (SQLite) or ``database_url``
    (PostgreSQL), with any other ``SemanticMemory`` keyword argument (``namespace=``,
    ``embedder=``, ...), and closed by :meth:`close`.

    ``index``: LangGraph's index config. Only ``fields`` matters (which JSON paths of a
    value become its searchable text; default ``["$"]``, the whole value): Sem-Mem embeds
    with its own embedder, so ``embed`` is refused and ``dims``, if given, must equal
    its dimensions.
    """

    supports_ttl = False

    def __init__(
        self,
        memory: Any = None,
        *,
        storage_dir: str | None = None,
        database_url: str | None = None,
        index: IndexConfig | Mapping[str, Any] | None = None,
        **memory_kwargs: Any,
    ) -> None:
        self.memory, self._owns_memory = open_memory(
            memory, storage_dir, database_url, **memory_kwargs
        )
        try:
            self.index_config, self._fields = _index_fields(index, self.memory)
        except BaseException:
            if self._owns_memory:
                self.memory.close()
            raise
        self.root = self.memory.namespace
        self._engines: dict[str, SemanticMemory] = {}
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ lifecycle

    def close(self) -> None:
        """Close the per-namespace engines, and the memory if this store opened it."""
        with self._lock:
            engines, self._engines = list(self._engines.values()), {}
        for engine in engines:
            engine.close()
        if self._owns_memory:
            self.memory.close()

    def __enter__(self) -> SemMemStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SemMemStore(root={self.root!r}, memory={self.memory!r})"

    # ------------------------------------------------------------------ BaseStore

    def batch(self, ops: Iterable[Op]) -> list[Result]:
        """Run the operations in order; one result per operation.

        Consecutive puts are written together: for each namespace, the new keys are
        committed in one transaction (as ``remember_batch`` does), after every value of
        the run was checked, so a bad value stores nothing of its run.
        """
        results: list[Result] = []
        ops = list(ops)
        for op in ops:
            validate_op_namespace(op)
        i = 0
        while i < len(ops):
            op = ops[i]
            if isinstance(op, PutOp):  # a run of puts is written together
                j = i
                while j < len(ops) and isinstance(ops[j], PutOp):
                    j += 1
                self._put_many(ops[i:j])  # type: ignore[arg-type]
                results += [None] * (j - i)
                i = j
                continue
            i += 1
            if isinstance(op, GetOp):
                results.append(self._get(op))
            elif isinstance(op, SearchOp):
                results.append(self._search(op))
            elif isinstance(op, ListNamespacesOp):
                results.append(self._list_namespaces(op))
            else:
                raise ValidationError(f"unknown store operation {type(op).__name__}")
        return results

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        """:meth:`batch` in a worker thread (embedding and SQLite never block the loop)."""
        return await asyncio.to_thread(self.batch, list(ops))

    # ------------------------------------------------------------------ namespaces

    def sem_mem_namespace(self, namespace: Sequence[str]) -> str:
        """The Sem-Mem namespace that holds the LangGraph ``namespace``."""
        return derived(self.root, tuple(namespace))

    def _engine(self, namespace: tuple[str, ...]) -> SemanticMemory:
        if not namespace:
            raise InvalidNamespaceError("Namespace cannot be empty.")
        name = self.sem_mem_namespace(namespace)
        with self._lock:
            engine = self._engines.get(name)
            if engine is None:
                engine = sibling(self.memory, name)
                self._engines[name] = engine
            return engine

    def _namespaces(self) -> list[tuple[str, ...]]:
        """Every LangGraph namespace under the root that holds an item."""
        names = self.memory.backend.namespaces()
        found = (decode(self.root, name) for name in names)
        return sorted(ns for ns in found if ns is not None)

    # ------------------------------------------------------------------ items

    def _find(self, engine: SemanticMemory, key: str) -> list[Memory]:
        """The memories stored under ``key`` (one, unless two processes raced)."""
        return engine.list(metadata={KEY_FIELD: key}, limit=100)

    def _get(self, op: GetOp) -> Item | None:
        found = self._find(self._engine(op.namespace), op.key)
        return _item(found[0], op.namespace) if found else None

    def _put_many(self, ops: Sequence[PutOp]) -> None:
        # the last put of a key wins, as in LangGraph's own stores
        latest: dict[tuple[tuple[str, ...], str], PutOp] = {}
        for op in ops:
            latest.pop((tuple(op.namespace), op.key), None)
            latest[(tuple(op.namespace), op.key)] = op
        plans = []
        for op in latest.values():
            engine = self._engine(op.namespace)
            plans.append((engine, op, self._prepare(engine, op)))  # check all, then write
        new: dict[int, tuple[SemanticMemory, list[str], list[dict[str, Any]]]] = {}
        for engine, op, prepared in plans:
            found = self._find(engine, op.key)
            if prepared is None:
                for memory in found:
                    engine.forget(memory.id)
            elif found:
                engine.update(found[0].id, text=prepared[0], metadata=prepared[1])
                for extra in found[1:]:  # heal a race between two writers of one key
                    engine.forget(extra.id)
            else:
                entry = new.setdefault(id(engine), (engine, [], []))
                entry[1].append(prepared[0])
                entry[2].append(prepared[1])
        for engine, texts, metas in new.values():
            engine.remember_batch(texts, metas, dedupe=False)

    def _prepare(self, engine: SemanticMemory, op: PutOp) -> tuple[str, dict[str, Any]] | None:
        """(text, metadata) of a put, checked; None for a delete."""
        if op.value is None:
            return None
        if not isinstance(op.value, Mapping):
            raise ValidationError(f"value must be a dict, got {type(op.value).__name__}")
        clash = [name for name in _RESERVED if name in op.value]
        if clash:
            raise ValidationError(f"value may not use the reserved field {clash[0]!r}")
        # checked before any text is extracted, so errors name the value, not a path
        clean_metadata(op.value, max_bytes=engine.settings.max_metadata_bytes)
        text = self._text(op.value, op.index)
        metadata: dict[str, Any] = {**op.value, KEY_FIELD: op.key}
        if text is None:
            text = json.dumps(dict(op.value), sort_keys=True, ensure_ascii=False) or op.key
            metadata[UNINDEXED_FIELD] = True
        texts, metas = engine.validate_batch([text], [metadata])
        return texts[0], metas[0]

    def _text(self, value: Mapping[str, Any], index: Any) -> str | None:
        """The searchable text of ``value``; None when nothing is to be indexed."""
        if index is False:
            return None
        paths = self._fields if index is None else [_tokenized(p) for p in index]
        texts: list[str] = []
        for path in paths:
            texts += [t for t in get_text_at_path(dict(value), path) if t.strip()]
        return "\n".join(texts) if texts else None

    # ------------------------------------------------------------------ search

    def _search(self, op: SearchOp) -> list[SearchItem]:
        if op.limit < 0 or op.offset < 0:
            raise ValidationError(f"limit and offset must be >= 0, got {op.limit}, {op.offset}")
        prefix = tuple(op.namespace_prefix)
        spaces = [ns for ns in self._namespaces() if ns[: len(prefix)] == prefix]
        want = op.offset + op.limit
        if want == 0 or not spaces:
            return []
        condition = dict(op.filter or {})
        pushed, exact = _split_filter(condition)
        if op.query:
            scored: list[tuple[float, float, SearchItem]] = []
            scoreless: list[SearchItem] = []
            for ns in spaces:
                more_scored, more_scoreless = self._recall(ns, op.query, want, condition, pushed)
                scored += more_scored
                scoreless += more_scoreless
            # hybrid scores are normalised over each namespace's own candidates, so
            # several namespaces interleave by them, cosine similarity breaking ties
            scored.sort(key=lambda entry: (-entry[0], -entry[1]))
            scoreless.sort(key=lambda item: item.updated_at, reverse=True)
            ranked = [item for _, _, item in scored] + scoreless
        else:
            ranked = []
            for ns in spaces:
                ranked += self._listing(ns, want, condition, pushed, exact)
            ranked.sort(key=lambda item: item.created_at, reverse=True)
        return ranked[op.offset : want]

    def _recall(
        self,
        namespace: tuple[str, ...],
        query: str,
        want: int,
        condition: dict[str, Any],
        pushed: dict[str, Any],
    ) -> tuple[list[tuple[float, float, SearchItem]], list[SearchItem]]:
        """((score, similarity, item) scored, scoreless) matches in one namespace, at most
        ``want`` of each."""
        engine = self._engine(namespace)
        unindexed = engine.list(metadata={**pushed, UNINDEXED_FIELD: True}, limit=10_000)
        scoreless = [
            _item(m, namespace) for m in unindexed if _matches(_value(m.metadata), condition)
        ][:want]
        exact = _split_filter(condition)[1]
        limit = want + len(unindexed) if exact else MAX_RECALL_LIMIT
        hits = cast(  # core's ``def list`` hides the builtin from mypy in its annotations
            "list[Any]",
            engine.recall(query, limit=min(limit, MAX_RECALL_LIMIT), metadata=pushed or None),
        )
        scored = []
        for hit in hits:
            if hit.metadata.get(UNINDEXED_FIELD) or KEY_FIELD not in hit.metadata:
                continue
            value = _value(hit.metadata)
            if not _matches(value, condition):
                continue
            memory = engine.get(hit.id)
            scored.append((hit.score, hit.similarity, _item(memory, namespace, score=hit.score)))
            if len(scored) == want:
                break
        return scored, scoreless

    def _listing(
        self,
        namespace: tuple[str, ...],
        want: int,
        condition: dict[str, Any],
        pushed: dict[str, Any],
        exact: bool,
    ) -> list[SearchItem]:
        """The newest ``want`` matching items of one namespace."""
        engine = self._engine(namespace)
        out: list[SearchItem] = []
        offset = 0
        # an exact filter is applied by the store: one page of ``want`` is the answer
        size = want if exact else _PAGE
        while len(out) < want:
            page = engine.list(metadata=pushed or None, limit=min(size, 10_000), offset=offset)
            for memory in page:
                if KEY_FIELD in memory.metadata and (
                    exact or _matches(_value(memory.metadata), condition)
                ):
                    out.append(_item(memory, namespace))
            if len(page) < min(size, 10_000):
                break
            offset += len(page)
        return out[:want]

    # ------------------------------------------------------------------ list namespaces

    def _list_namespaces(self, op: ListNamespacesOp) -> list[tuple[str, ...]]:
        spaces = [
            ns
            for ns in self._namespaces()
            if all(_does_match(c, ns) for c in op.match_conditions or ())
        ]
        if op.max_depth is not None:
            spaces = sorted({ns[: op.max_depth] for ns in spaces})
        return spaces[op.offset : op.offset + op.limit]


# ---------------------------------------------------------------------- helpers


def _index_fields(
    index: IndexConfig | Mapping[str, Any] | None, memory: SemanticMemory
) -> tuple[dict[str, Any] | None, list[Any]]:
    """(the index config as given, its fields tokenized for ``get_text_at_path``)."""
    if index is None:
        return None, ["$"]
    if not isinstance(index, Mapping):
        raise ConfigurationError(f"index must be a dict, got {type(index).__name__}")
    unknown = set(index) - {"fields", "dims", "embed"}
    if unknown:
        raise ConfigurationError(f"index has unknown keys: {', '.join(sorted(unknown))}")
    if index.get("embed") is not None:
        raise ConfigurationError(
            "index 'embed' is not used: Sem-Mem embeds with the memory's own embedder "
            "(pass embedder= to SemanticMemory or SemMemStore instead)"
        )
    dims = index.get("dims")
    if dims is not None and dims != memory.embedder.dimensions:
        raise ConfigurationError(
            f"index 'dims' is {dims} but the memory's embedder ({memory.embedder.model_id}) "
            f"has {memory.embedder.dimensions} dimensions"
        )
    fields = index.get("fields") or ["$"]
    if isinstance(fields, str) or not all(isinstance(f, str) for f in fields):
        raise ConfigurationError("index 'fields' must be a list of JSON paths (strings)")
    return dict(index), [_tokenized(f) for f in fields]


def _tokenized(path: str) -> Any:
    return path if path == "$" else tokenize_path(path)


def _value(metadata: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in metadata.items() if k not in _RESERVED}


def _item(memory: Memory, namespace: tuple[str, ...], score: float | None = None) -> SearchItem:
    # SearchItem is an Item: get() returns it too, with score None
    return SearchItem(
        namespace=namespace,
        key=str(memory.metadata[KEY_FIELD]),
        value=_value(memory.metadata),
        created_at=memory.created_at,
        updated_at=memory.updated_at,
        score=score,
    )


def _pushable(value: Any) -> bool:
    # Sem-Mem's metadata filter compares JSON scalars; LangGraph's also lets True equal 1
    # and None equal a missing field, so booleans and None are checked in Python only
    return isinstance(value, (str, int, float)) and not isinstance(value, bool)


def _split_filter(condition: Mapping[str, Any]) -> tuple[dict[str, Any], bool]:
    """(the exact top-level matches recall can apply, whether they are the whole filter)."""
    pushed: dict[str, Any] = {}
    exact = True
    for key, wanted in condition.items():
        if not isinstance(key, str):
            raise ValidationError(f"filter keys must be strings, got {key!r}")
        if isinstance(wanted, Mapping) and set(wanted) == {"$eq"}:
            wanted = wanted["$eq"]
        if _pushable(wanted) and '"' not in key and "\\" not in key and key not in _RESERVED:
            pushed[key] = wanted
        else:
            exact = False
    return pushed, exact


def _matches(value: Mapping[str, Any], condition: Mapping[str, Any]) -> bool:
    """LangGraph's filter semantics (as its in-memory and PostgreSQL stores apply them)."""
    return all(_compare(value.get(key), wanted) for key, wanted in condition.items())


def _compare(actual: Any, wanted: Any) -> bool:
    if isinstance(wanted, Mapping):
        if any(str(k).startswith("$") for k in wanted):
            return all(_operator(actual, op, operand) for op, operand in wanted.items())
        if not isinstance(actual, Mapping):
            return False
        return all(_compare(actual.get(k), v) for k, v in wanted.items())
    if isinstance(wanted, (list, tuple)):
        return (
            isinstance(actual, (list, tuple))
            and len(actual) == len(wanted)
            and all(_compare(a, w) for a, w in zip(actual, wanted, strict=True))
        )
    return bool(actual == wanted)


def _operator(actual: Any, op: str, operand: Any) -> bool:
    if op == "$eq":
        return bool(actual == operand)
    if op == "$ne":
        return bool(actual != operand)
    if op in ("$gt", "$gte", "$lt", "$lte"):
        try:
            a, b = float(actual), float(operand)
        except (TypeError, ValueError):
            return False
        return {"$gt": a > b, "$gte": a >= b, "$lt": a < b, "$lte": a <= b}[op]
    raise ValidationError(f"unsupported filter operator {op!r} (use $eq $ne $gt $gte $lt $lte)")


def _does_match(condition: MatchCondition, namespace: tuple[str, ...]) -> bool:
    """A ``list_namespaces`` prefix/suffix condition, ``"*"`` matching any one label."""
    path = tuple(condition.path)
    if len(namespace) < len(path):
        return False
    if condition.match_type == "prefix":
        pairs = zip(namespace, path, strict=False)
    elif condition.match_type == "suffix":
        pairs = zip(reversed(namespace), reversed(path), strict=False)
    else:
        raise ValidationError(f"unsupported match type {condition.match_type!r}")
    return all(p == "*" or n == p for n, p in pairs)
