"""What the text index stores and how text is analyzed: documents, filters, the analyzer,
the tantivy schema and the pieces of BM25 that the in-RAM tail shares with tantivy.
"""

from __future__ import annotations

import hashlib
import json
import math
from bisect import bisect_right
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Any

from sem_mem.backends.base import MemoryFilter
from sem_mem.backends.rows import TIME_EPSILON, content_words
from sem_mem.errors import ValidationError

if TYPE_CHECKING:
    import tantivy

__all__ = [
    "ANALYZER_VERSION",
    "BOOSTS",
    "FIELDS",
    "SCORED_FIELDS",
    "SPEAKER_BOOST",
    "TailEntry",
    "TextDoc",
    "TextFilter",
    "analyze",
    "filter_meta_terms",
    "idf",
    "index_schema",
    "is_tantivy_error",
    "matches",
    "quantized_length",
    "query_terms",
    "tail_entry",
    "tantivy_document",
    "text_analyzer",
    "time_bounds",
]

K1 = 1.2
B = 0.75
# The speaker is indexed in its own field (for filters to come) but not scored: turns are
# stored as "Speaker: text", so the name is in the text already, and recall's own
# speaker lift (FusionConfig.speaker_weight) does better on the LoCoMo dev split than a
# boosted field (hybrid R@10 0.811 / 0.783 on the tuning / checking halves with the field
# unscored; 0.794 / 0.775 with it boosted 1.5, which is best for lexical recall alone).
SPEAKER_BOOST = 0.0
MAX_TOKEN_CHARS = 40
ANALYZER_NAME = "semmem_en"
# Stopwords are dropped from queries only (the backends' list, see ``query_terms``), not
# from documents: kept there, they count in each turn's length, which BM25 normalises by.
# On the LoCoMo dev split, documents analysed without stopwords lost 0.04 R@10 in the
# lexical retriever (0.724 vs 0.765 with the same queries and idf).
ANALYZER_VERSION = "simple|remove_long40|lower|ascii_fold|snowball_en|v2"
FORMAT = 1
SIDECAR = "sidecar.json"
META_SEP = "\x1f"
MAX_META_TERM_BYTES = 200
WRITER_HEAP = 32_000_000  # tantivy asks for at least 15 MB per indexing thread

FIELDS = ("text", "speaker")
BOOSTS = {"text": 1.0, "speaker": SPEAKER_BOOST}
SCORED_FIELDS = tuple(f for f in FIELDS if BOOSTS[f] > 0)


@dataclass(frozen=True)
class TextDoc:
    """One version of a memory as the index sees it."""

    label: int  # the store's integer row label (unique, never reused)
    seq: int  # the store change sequence that wrote this version
    text: str
    speaker: str | None = None  # indexed in its own field, boosted
    source: str = "manual"
    timestamp: float = 0.0  # unix seconds: when it happened
    thread_id: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)


# The store's own filter (``list`` and recall share it): one owner for the concept.
TextFilter = MemoryFilter


def _canonical(value: Any) -> str | None:
    """``value`` as a JSON string equal for JSON-equal scalars (1 == 1.0, True != 1)."""
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    return None


def _meta_term(key: str, value: Any) -> str | None:
    canon = _canonical(value)
    if canon is None:
        return None
    name = json.dumps(key, ensure_ascii=False)  # quoted, so no key can contain META_SEP
    term = f"{name}{META_SEP}{canon}"
    if len(term.encode()) > MAX_META_TERM_BYTES:  # keep index terms short; equality survives
        term = f"{name[:64]}{META_SEP}#{hashlib.sha256(term.encode()).hexdigest()}"
    return term


def _meta_terms(metadata: Mapping[str, Any]) -> frozenset[str]:
    terms = (_meta_term(k, v) for k, v in metadata.items() if isinstance(k, str))
    return frozenset(t for t in terms if t is not None)


def filter_meta_terms(filters: TextFilter) -> list[str]:
    terms = []
    for key, value in (filters.metadata or {}).items():
        term = _meta_term(key, value) if isinstance(key, str) else None
        if term is None:
            raise ValidationError(
                f"metadata filter {key!r}: only str, int, float, bool and None values "
                "can be matched"
            )
        terms.append(term)
    return terms


@cache
def _fieldnorms() -> list[int]:
    """The lengths tantivy can store (1-byte fieldnorms, Lucene's SmallFloat.intToByte4)."""
    free = 24  # 255 - longToInt4(2**31 - 1)
    out = list(range(free))
    for i in range(256 - free):
        bits, shift = i & 7, (i >> 3) - 1
        out.append(free + (bits if shift < 0 else (bits | 8) << shift))
    return out


def quantized_length(length: int) -> int:
    """The document length tantivy scores with (the largest stored value <= length)."""
    norms = _fieldnorms()
    return norms[bisect_right(norms, length) - 1]


def idf(df: int, n: int) -> float:
    return math.log(1.0 + (n - df + 0.5) / (df + 0.5))


@cache
def text_analyzer() -> tantivy.TextAnalyzer:
    import tantivy

    return (
        tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.simple())
        .filter(tantivy.Filter.remove_long(MAX_TOKEN_CHARS))
        .filter(tantivy.Filter.lowercase())
        .filter(tantivy.Filter.ascii_fold())
        .filter(tantivy.Filter.stemmer("english"))
        .build()
    )


def analyze(text: str | None) -> list[str]:
    """The tokens tantivy indexes for ``text`` (also used for the tail)."""
    return text_analyzer().analyze(text) if text else []


def query_terms(query: str) -> list[str]:
    """The distinct analysed terms of a query: its content words (the backends' one
    tokeniser, stopwords left out), stemmed as the index stores them."""
    return list(dict.fromkeys(analyze(" ".join(content_words(query, limit=None)))))


@cache
def index_schema() -> tantivy.Schema:
    import tantivy

    sb = tantivy.SchemaBuilder()
    sb.add_unsigned_field("label", indexed=True, fast=True)
    sb.add_unsigned_field("seq", fast=True)
    for name in FIELDS:
        sb.add_text_field(name, tokenizer_name=ANALYZER_NAME, index_option="freq")
        sb.add_unsigned_field(f"len_{name}", fast=True)
    for name in ("source", "thread", "meta"):
        sb.add_text_field(name, tokenizer_name="raw", index_option="basic")
    sb.add_float_field("ts", indexed=True, fast=True)
    return sb.build()


def is_tantivy_error(exc: BaseException) -> bool:
    """Errors tantivy raises on bad files; a Rust panic arrives as a BaseException."""
    return isinstance(exc, Exception) or type(exc).__name__ == "PanicException"


@dataclass(slots=True)
class TailEntry:
    """A tail document, analyzed once."""

    doc: TextDoc
    tf: dict[str, Counter[str]]
    lengths: dict[str, int]
    meta: frozenset[str]


def tail_entry(doc: TextDoc) -> TailEntry:
    tokens = {"text": analyze(doc.text), "speaker": analyze(doc.speaker)}
    return TailEntry(
        doc,
        {f: Counter(t) for f, t in tokens.items()},
        {f: len(t) for f, t in tokens.items()},
        _meta_terms(doc.metadata),
    )


def matches(entry: TailEntry, filters: TextFilter | None, meta_terms: Sequence[str]) -> bool:
    if filters is None:
        return True
    doc = entry.doc
    since, until = time_bounds(filters)
    return (
        (not filters.source or doc.source == filters.source)
        and (filters.thread_id is None or doc.thread_id == filters.thread_id)
        and (since is None or doc.timestamp >= since)
        and (until is None or doc.timestamp < until)
        and all(t in entry.meta for t in meta_terms)
    )


def time_bounds(filters: TextFilter) -> tuple[float | None, float | None]:
    """``since``/``until`` with the store's microsecond slack (as ``list`` compares them)."""
    since = None if filters.since is None else filters.since - TIME_EPSILON
    until = None if filters.until is None else filters.until - TIME_EPSILON
    return since, until


def tantivy_document(e: TailEntry) -> tantivy.Document:
    import tantivy

    doc = e.doc
    out = tantivy.Document()
    out.add_unsigned("label", doc.label)
    out.add_unsigned("seq", doc.seq)
    out.add_text("text", doc.text)
    if doc.speaker:
        out.add_text("speaker", doc.speaker)
    for f in FIELDS:
        out.add_unsigned(f"len_{f}", e.lengths[f])
    out.add_text("source", doc.source)
    if doc.thread_id is not None:
        out.add_text("thread", doc.thread_id)
    for term in e.meta:
        out.add_text("meta", term)
    out.add_float("ts", float(doc.timestamp))
    return out
