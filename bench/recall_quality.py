"""Turn-level recall@k on LoCoMo through the public API (issue #2's bench, issue #7's quality).

For each conversation: a fresh store in a temporary directory, ``remember_batch`` of every
turn as ``"Speaker: text"`` (plus ``[shares <blip_caption>]`` when the turn shared an image)
with metadata ``{"dia_id", "session", "date", "speaker"}`` and ``dedupe=False``; then
``recall(question, limit=25, mode=...)`` for every question of categories 1-4. Gold is the
question's evidence ``dia_id`` list (malformed ids normalised as the data README says).
recall@k = |gold ∩ top-k| / |gold|, averaged over questions, per category and overall.

Every retrieval mode the library offers runs side by side. ``--ablation`` also runs the
retrieval ideas of issue #7 one by one (see :data:`VARIANTS`): each is a fusion recipe from
:mod:`sem_mem.retrieval` swapped in for the core's ranking step, so it still goes through
``recall``. Conversations are split into a development set (the first three) and a held-out
set (the last two) so that a gain found on one can be checked on the other.

Embeddings are cached under ``bench/results/.cache/`` (keyed by model id and text hash), so a
re-run embeds nothing; the timing pass (remember_batch and recall p50 of the first
conversation) always uses a fresh, uncached embedder.

    python -m bench.recall_quality [--quick] [--ablation] [--data PATH] [--out DIR]

(run from the repository root).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import hashlib
import json
import os
import platform
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from sem_mem import SemanticMemory
from sem_mem.embedders.base import Embedder
from sem_mem.embedders.local import LocalEmbedder
from sem_mem.retrieval import FusionConfig

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared/data/locomo/locomo_dev5.json"
DEFAULT_OUT = ROOT / "bench/results"
KS = (1, 5, 10, 25)
CATEGORIES = {1: "multi-hop", 2: "temporal", 3: "open-domain", 4: "single-hop"}
DEV_SPLIT = 3  # the first three conversations are for development, the rest held out
LIBRARY_MODES = ("vector", "lexical", "hybrid")
BASELINES = {  # data README: all ten conversations, 1,536 questions, MiniLM-L6
    "dense cosine only": (0.151, 0.352, 0.437, 0.574),
    "TF-IDF only": (0.204, 0.412, 0.497, 0.610),
    "RRF of the two (k=60)": (0.212, 0.434, 0.517, 0.633),
}


# ---------------------------------------------------------------------------- data


@dataclass(frozen=True)
class Turn:
    dia_id: str
    session: int
    date: str
    speaker: str
    text: str  # "Speaker: text [shares caption]", as remember_batch stores it
    said: str  # the turn's own words (plus caption): what remember_conversation is given

    @property
    def when(self) -> dt.datetime | None:
        """The session's date ("1:56 pm on 8 May, 2023"), if it parses."""
        try:
            return dt.datetime.strptime(self.date, "%I:%M %p on %d %B, %Y")
        except ValueError:
            return None


@dataclass(frozen=True)
class Question:
    text: str
    category: int
    gold: frozenset[str]


@dataclass
class Conversation:
    sample_id: str
    turns: list[Turn]
    questions: list[Question]


def normalise_dia_ids(evidence: Sequence[str]) -> set[str]:
    """Evidence ids as ``D<session>:<turn>``: split ``"D8:6; D9:17"``, fix ``"D:11:26"``
    and strip leading zeros (``"D30:05"`` -> ``"D30:5"``)."""
    out = set()
    for raw in evidence:
        for part in re.split(r"[;,]", raw):
            numbers = re.findall(r"\d+", part)
            if len(numbers) >= 2:
                out.add(f"D{int(numbers[0])}:{int(numbers[1])}")
    return out


def turn_said(turn: dict[str, Any]) -> str:
    """What the speaker said, plus the caption of an image they shared."""
    text = str(turn["text"])
    if turn.get("blip_caption"):
        text += f" [shares {turn['blip_caption']}]"
    return text


def turn_text(turn: dict[str, Any]) -> str:
    """The stored text of one turn: ``"Speaker: text"`` plus the shared image's caption."""
    return f"{turn['speaker']}: {turn_said(turn)}"


def load_conversations(path: Path) -> list[Conversation]:
    conversations = []
    for sample in json.loads(path.read_text(encoding="utf-8")):
        conv = sample["conversation"]
        turns = []
        sessions = sorted(
            (int(k.split("_")[1]) for k in conv if re.fullmatch(r"session_\d+", k)),
        )
        for n in sessions:
            for t in conv[f"session_{n}"]:
                turns.append(
                    Turn(
                        t["dia_id"],
                        n,
                        conv.get(f"session_{n}_date_time", ""),
                        t["speaker"],
                        turn_text(t),
                        turn_said(t),
                    )
                )
        questions = [
            Question(qa["question"], qa["category"], frozenset(normalise_dia_ids(qa["evidence"])))
            for qa in sample["qa"]
            if qa["category"] in CATEGORIES and qa.get("evidence")
        ]
        conversations.append(Conversation(sample["sample_id"], turns, questions))
    return conversations


# ---------------------------------------------------------------------------- embeddings


class CachingEmbedder(Embedder):
    """The local embedder behind a persistent vector cache (same ``model_id``).

    Cached rows are the inner embedder's raw output, so results are identical to an
    uncached run; only the time to compute them is saved.
    """

    def __init__(self, inner: Embedder, cache_dir: Path) -> None:
        self.inner = inner
        self.model_id = inner.model_id
        self.dimensions = inner.dimensions
        self.batch_size = 4096
        self.sentence_pooling = inner.sentence_pooling
        key = hashlib.sha256(self.model_id.encode()).hexdigest()[:16]
        self.path = cache_dir / f"embeddings-{key}.npz"
        self.vectors: dict[str, np.ndarray] = {}
        self.dirty = False
        if self.path.is_file():
            with np.load(self.path) as data:
                self.vectors = dict(zip(data["keys"].tolist(), data["vectors"], strict=True))

    def embed_batch(self, texts: Sequence[str]) -> np.ndarray:
        keys = [hashlib.sha256(t.encode()).hexdigest() for t in texts]
        missing = [i for i, k in enumerate(keys) if k not in self.vectors]
        if missing:
            fresh = self.inner.encode([texts[i] for i in missing])
            for i, vec in zip(missing, fresh, strict=True):
                self.vectors[keys[i]] = vec
            self.dirty = True
        return np.stack([self.vectors[k] for k in keys])

    def save(self) -> None:
        if not self.dirty:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        keys = list(self.vectors)
        tmp = self.path.with_suffix(".tmp.npz")
        np.savez(tmp, keys=np.array(keys), vectors=np.stack([self.vectors[k] for k in keys]))
        os.replace(tmp, self.path)
        self.dirty = False


# ---------------------------------------------------------------------------- variants


@dataclass(frozen=True)
class Variant:
    """One retriever to score: a library mode, or a fusion recipe swapped into ``ranking.rank``."""

    name: str
    mode: str = "hybrid"
    config: FusionConfig | None = None  # None: the library's own ranking for ``mode``
    note: str = ""
    #: how the turns are stored: "conversation" (remember_conversation, one thread per
    #: session, with its date), "whole" (the same, each turn embedded whole instead of
    #: sentence by sentence plus its speaker), "batch" (remember_batch of "Speaker: text"
    #: strings with ``source="thread"``: one thread per conversation), "plain batch"
    #: (the same strings with remember_batch's default source: no thread) or "messages"
    #: (remember_conversation with each sentence of a turn sent as a message of its own,
    #: as in a messaging app; a turn counts as found when one of its messages is)
    storage: str = "conversation"
    #: recall(rerank=True): the cross-encoder reorders the best 25 (see sem_mem.rerankers)
    rerank: bool = False


_RRF = FusionConfig.plain_rrf()
_DEFAULT = FusionConfig()
_CONVEX = _DEFAULT.but(neighbour_weight=0.0, speaker_weight=0.0, date_weight=0.0, date_candidates=0)
VARIANTS: tuple[Variant, ...] = (
    Variant("vector", "vector", note="library mode: HNSW cosine"),
    Variant("lexical", "lexical", note="library mode: tantivy BM25"),
    Variant("hybrid", "hybrid", note="library default, turns stored with remember_conversation"),
    Variant(
        "hybrid + rerank",
        "hybrid",
        rerank=True,
        note="recall(rerank=True): the local cross-encoder reorders the fused ranking's best 25",
    ),
    Variant(
        "batch: vector",
        "vector",
        storage="batch",
        note="remember_batch of 'Speaker: text' strings, source='thread': HNSW cosine",
    ),
    Variant(
        "whole turns: vector",
        "vector",
        storage="whole",
        note="remember_conversation, each turn embedded whole (sentence_pooling=False)",
    ),
    Variant(
        "whole turns: hybrid",
        "hybrid",
        storage="whole",
        note="remember_conversation, whole-turn vectors, library default ranking",
    ),
    Variant("batch: lexical", "lexical", storage="batch", note="remember_batch, full text"),
    Variant(
        "batch: hybrid",
        "hybrid",
        storage="batch",
        note="remember_batch, source='thread' (turns in order, speakers): library default",
    ),
    Variant(
        "plain batch: hybrid",
        "hybrid",
        storage="plain batch",
        note="remember_batch with the default source (no thread, no speaker): library default",
    ),
    Variant(
        "messages: hybrid",
        "hybrid",
        storage="messages",
        note="each sentence of a turn stored as its own message (3.2 per turn): library default",
    ),
    Variant(
        "messages: hybrid + rerank",
        "hybrid",
        storage="messages",
        rerank=True,
        note="the same messages, recall(rerank=True)",
    ),
    Variant(
        "messages: neighbours by place",
        config=_DEFAULT.but(neighbour_span=2),
        storage="messages",
        note="the same, neighbours ±2 places away instead of ±2 speaker turns",
    ),
    Variant("rrf", config=_RRF, note="reciprocal-rank fusion k=60 (the first release)"),
    Variant(
        "convex",
        config=_CONVEX,
        note="0.4 * minmax(cosine) + 0.6 * bm25/max(bm25), nothing else",
    ),
    Variant(
        "convex + neighbours",
        config=_CONVEX.but(neighbour_weight=0.5),
        note="convex, then scores spread to turns ±2 places away in the same thread (0.5)",
    ),
    Variant(
        "convex + neighbours + speaker",
        config=_DEFAULT.but(date_weight=0.0, date_candidates=0),
        note="... and a query naming one speaker lifts that speaker's turns (x2)",
    ),
    Variant(
        "default without neighbours",
        config=_DEFAULT.but(neighbour_weight=0.0),
        note="the default (speaker + dates) with no thread neighbours",
    ),
    Variant(
        "default without speaker",
        config=_DEFAULT.but(speaker_weight=0.0),
        note="the default with no speaker lift",
    ),
    Variant(
        "default without date lookback",
        config=_DEFAULT.but(date_lookback_days=0.0),
        note="the default, dates matched only inside the named window, not the week after",
    ),
    Variant(
        "default without date search",
        config=_DEFAULT.but(date_candidates=0),
        note="the default: dates only as a bonus, no filtered search of the named window",
    ),
)


# ---------------------------------------------------------------------------- scoring


@dataclass
class Scores:
    """Sums of recall@k per category, plus recall latencies."""

    sums: dict[int, np.ndarray] = field(default_factory=dict)
    counts: dict[int, int] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)

    def add(self, category: int, gold: frozenset[str], ranked: Sequence[str]) -> None:
        row = np.array([len(gold & set(ranked[:k])) / len(gold) for k in KS])
        self.sums[category] = self.sums.get(category, np.zeros(len(KS))) + row
        self.counts[category] = self.counts.get(category, 0) + 1

    def merge(self, other: Scores) -> Scores:
        out = Scores(dict(self.sums), dict(self.counts), self.latencies + other.latencies)
        for c, s in other.sums.items():
            out.sums[c] = out.sums.get(c, np.zeros(len(KS))) + s
            out.counts[c] = out.counts.get(c, 0) + other.counts[c]
        return out

    def recall(self, category: int | None = None) -> tuple[list[float], int]:
        cats = [category] if category is not None else sorted(self.sums)
        n = sum(self.counts.get(c, 0) for c in cats)
        total = sum((self.sums[c] for c in cats if c in self.sums), np.zeros(len(KS)))
        return ([float(x) for x in total / n] if n else [float("nan")] * len(KS)), n


#: where the "messages" storage splits a turn: after a sentence's end
_SENTENCE = re.compile(r"(?<=[.!?])\s+")


def store_turns(memory: SemanticMemory, conv: Conversation, storage: str) -> dict[str, str]:
    """Store every turn of ``conv``; returns memory id -> dia_id."""
    if storage in ("batch", "plain batch"):
        ids = memory.remember_batch(
            [t.text for t in conv.turns],
            [{"dia_id": t.dia_id, "session": t.session, "date": t.date} for t in conv.turns],
            source="thread" if storage == "batch" else "manual",
            dedupe=False,
        )
        return dict(zip(ids, (t.dia_id for t in conv.turns), strict=True))
    out: dict[str, str] = {}  # "conversation" and "whole" store the same way
    for session in sorted({t.session for t in conv.turns}):
        turns = [t for t in conv.turns if t.session == session]
        if storage == "messages":
            turns = [
                replace(t, said=sentence)
                for t in turns
                for sentence in _SENTENCE.split(t.said.strip())
                if sentence
            ]
        ids = memory.remember_conversation(
            [
                {
                    "speaker": t.speaker,
                    "text": t.said,
                    "metadata": {"dia_id": t.dia_id},
                    **({"timestamp": t.when} if t.when else {}),
                }
                for t in turns
            ],
            thread_id=f"session-{session}",
            dedupe=False,
        )
        out.update(zip(ids, (t.dia_id for t in turns), strict=True))
    return out


#: set by ``--backend postgres``: a PostgreSQL server URL whose user may create databases
_PG_ADMIN_URL: str | None = None


@contextlib.contextmanager
def _fresh_store() -> Any:
    """An empty store: a temp folder (SQLite), or a new database on ``_PG_ADMIN_URL``."""
    if _PG_ADMIN_URL is None:
        with tempfile.TemporaryDirectory(prefix="semmem-locomo-") as tmp:
            yield tmp
        return
    import uuid

    import psycopg

    name = f"semmem_locomo_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(_PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    base, _, query = _PG_ADMIN_URL.partition("?")
    try:
        yield re.sub(r"/[^/]*$", f"/{name}", base) + (f"?{query}" if query else "")
    finally:
        with psycopg.connect(_PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def evaluate(
    conv: Conversation,
    embedder: Embedder,
    variants: Sequence[Variant],
) -> tuple[dict[str, Scores], float]:
    """Scores of every variant on one conversation (one fresh store per storage kind);
    seconds to store the turns the default way."""
    out = {v.name: Scores() for v in variants}
    remember_s = float("nan")
    pooling = embedder.sentence_pooling
    try:
        for storage in dict.fromkeys(v.storage for v in variants):
            embedder.sentence_pooling = pooling and storage != "whole"
            with _fresh_store() as where:
                memory = (
                    SemanticMemory(database_url=where, embedder=embedder)
                    if where.startswith("postgresql://")
                    else SemanticMemory(where, embedder=embedder)
                )
                try:
                    start = time.perf_counter()
                    dia_of = store_turns(memory, conv, storage)
                    if storage == "conversation":
                        remember_s = time.perf_counter() - start
                    for variant in (v for v in variants if v.storage == storage):
                        memory.fusion = variant.config or FusionConfig()
                        memory._results.clear()  # the result cache must not serve another variant
                        for q in conv.questions:
                            start = time.perf_counter()
                            hits = memory.recall(
                                q.text,
                                limit=25,
                                mode=variant.mode,  # type: ignore[arg-type]
                                rerank=variant.rerank,
                            )
                            out[variant.name].latencies.append(time.perf_counter() - start)
                            out[variant.name].add(q.category, q.gold, [dia_of[h.id] for h in hits])
                finally:
                    memory.close()
    finally:  # the next conversation starts from the embedder's own setting
        embedder.sentence_pooling = pooling
    return out, remember_s


def timing_pass(conv: Conversation, int8: bool = True) -> dict[str, float]:
    """remember_batch and recall latency of one conversation with a fresh, uncached embedder."""
    embedder = LocalEmbedder(int8=int8)
    embedder.encode(["warm up the session"])
    with tempfile.TemporaryDirectory(prefix="semmem-timing-") as tmp:
        memory = SemanticMemory(tmp, embedder=embedder)
        try:
            start = time.perf_counter()
            store_turns(memory, conv, "conversation")
            remember_s = time.perf_counter() - start
            lat = []
            for q in conv.questions:
                start = time.perf_counter()
                memory.recall(q.text, limit=25)
                lat.append(time.perf_counter() - start)
        finally:
            memory.close()
    return {
        "turns": len(conv.turns),
        "remember_batch_s": remember_s,
        "turns_per_s": len(conv.turns) / remember_s,
        "recall_p50_ms": statistics.median(lat) * 1000,
        "recall_p95_ms": float(np.percentile(lat, 95)) * 1000,
        "queries": len(lat),
    }


# ---------------------------------------------------------------------------- report


def machine() -> dict[str, Any]:
    cpu = platform.processor() or "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "date": dt.date.today().isoformat(),
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }


def fmt(x: float) -> str:
    return "n/a" if x != x else f"{x:.3f}"


def table(
    title: str, scores: dict[str, Scores], variants: Sequence[Variant], baselines: bool
) -> list[str]:
    """One Markdown table: overall R@k, R@10 per category, recall p50."""
    any_scores = next(iter(scores.values()))
    n = any_scores.recall()[1]
    cat_counts = {c: any_scores.recall(c)[1] for c in CATEGORIES}
    head = [
        "retriever",
        *(f"R@{k}" for k in KS),
        *(f"R@10 {CATEGORIES[c]} ({cat_counts[c]})" for c in CATEGORIES),
        "p50 ms",
    ]
    lines = [
        f"### {title} ({n} questions)",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for v in variants:
        s = scores[v.name]
        overall = s.recall()[0]
        cats = [fmt(s.recall(c)[0][KS.index(10)]) for c in CATEGORIES]
        p50 = statistics.median(s.latencies) * 1000 if s.latencies else float("nan")
        lines.append("| " + " | ".join([v.name, *map(fmt, overall), *cats, f"{p50:.1f}"]) + " |")
    if baselines:
        for name, row in BASELINES.items():
            blank = [""] * (len(CATEGORIES) + 1)
            lines.append("| " + " | ".join([f"*README: {name}*", *map(fmt, row), *blank]) + " |")
    return [*lines, ""]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="locomo JSON file")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where results go")
    parser.add_argument("--quick", action="store_true", help="two conversations only")
    parser.add_argument("--ablation", action="store_true", help="also run every idea")
    parser.add_argument("--no-timing", action="store_true", help="skip the uncached timing pass")
    parser.add_argument(
        "--float32",
        action="store_true",
        help="the float32 local embedder instead of int8, the default of new stores "
        "(results: recall_quality_float32.*)",
    )
    parser.add_argument(
        "--backend",
        choices=["sqlite", "postgres"],
        default="sqlite",
        help="postgres: a throw-away pgserver (results: recall_quality_postgres.*)",
    )
    args = parser.parse_args(argv)
    if args.backend == "postgres":
        from bench.backends import postgres_url

        global _PG_ADMIN_URL
        with postgres_url(None) as url:
            import psycopg

            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
            with psycopg.connect(
                re.sub(r"/[^/?]*(\?|$)", r"/template1\1", url, count=1), autocommit=True
            ) as conn:
                conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
            _PG_ADMIN_URL = url
            try:
                return _main(args, "_postgres")
            finally:
                _PG_ADMIN_URL = None
    return _main(args, "")


def _main(args: argparse.Namespace, suffix: str) -> int:
    if not args.data.is_file():
        print(f"no data at {args.data} (use --data)", file=sys.stderr)
        return 2
    conversations = load_conversations(args.data)
    if args.quick:
        conversations = conversations[:2]
    variants = [v for v in VARIANTS if args.ablation or v.config is None or v.name == "rrf"]
    embedder = CachingEmbedder(LocalEmbedder(int8=not args.float32), args.out / ".cache")
    out_name = ("recall_quality_float32" if args.float32 else "recall_quality") + suffix
    per_conv: dict[str, dict[str, Scores]] = {}
    for conv in conversations:
        start = time.perf_counter()
        per_conv[conv.sample_id], _ = evaluate(conv, embedder, variants)
        embedder.save()
        print(
            f"{conv.sample_id}: {len(conv.turns)} turns, {len(conv.questions)} questions, "
            f"{time.perf_counter() - start:.1f}s",
            file=sys.stderr,
        )

    def combine(convs: Sequence[Conversation]) -> dict[str, Scores]:
        out: dict[str, Scores] = {v.name: Scores() for v in variants}
        for conv in convs:
            for name, s in per_conv[conv.sample_id].items():
                out[name] = out[name].merge(s)
        return out

    splits = {"all": conversations}
    if not args.quick:
        splits["dev"] = conversations[:DEV_SPLIT]
        splits["held-out"] = conversations[DEV_SPLIT:]
    info = machine()
    timing = None if args.no_timing else timing_pass(conversations[0], not args.float32)
    md = [
        "# Recall quality on LoCoMo (turn level, categories 1-4)",
        "",
        f"Data: `{args.data.name}` ({', '.join(c.sample_id for c in conversations)}); "
        f"embedder: `{embedder.model_id}` (local, no LLM). Machine: {info['cpu']}, "
        f"{info['cores']} cores (1-min load {info['load_avg_1m']} when the report was written: "
        "other work shares the machine, so timings are noisy), "
        f"Python {info['python']}; {info['date']}.",
        "Generated by `python -m bench.recall_quality"
        + (" --quick" if args.quick else "")
        + (" --ablation" if args.ablation else "")
        + (" --float32" if args.float32 else "")
        + "`.",
        "",
        "README rows were measured on all ten LoCoMo conversations (1,536 questions), "
        "not on this subset: compare them loosely. p50 is recall latency with the query "
        "embedding served from the bench's cache.",
        "",
    ]
    for name, convs in splits.items():
        label = {
            "all": "All conversations",
            "dev": "Development split",
            "held-out": "Held-out split",
        }[name]
        md += table(
            f"{label}: {', '.join(c.sample_id for c in convs)}",
            combine(convs),
            variants,
            baselines=name == "all",
        )
    md += ["Variants:", ""] + [f"- `{v.name}`: {v.note}" for v in variants] + [""]
    if timing:
        md += [
            f"Timing with the uncached local embedder on {conversations[0].sample_id}: "
            f"remember_batch of {timing['turns']} turns {timing['remember_batch_s']:.1f}s "
            f"({timing['turns_per_s']:.0f} turns/s); recall (hybrid, limit 25, query embedded) "
            f"p50 {timing['recall_p50_ms']:.1f} ms, p95 {timing['recall_p95_ms']:.1f} ms over "
            f"{timing['queries']} questions.",
            "",
        ]
    text = "\n".join(md)
    print(text)
    if not args.quick:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / f"{out_name}.md").write_text(text, encoding="utf-8")
        payload = {
            "machine": info,
            "data": str(args.data.name),
            "embedder": embedder.model_id,
            "ks": list(KS),
            "timing": timing,
            "variants": {
                v.name: {
                    "mode": v.mode,
                    "rerank": v.rerank,
                    "note": v.note,
                    "config": v.config.as_dict() if v.config else None,
                }
                for v in variants
            },
            "splits": {
                name: {
                    "conversations": [c.sample_id for c in convs],
                    "results": {
                        vname: {
                            "overall": s.recall()[0],
                            "questions": s.recall()[1],
                            "by_category": {CATEGORIES[c]: s.recall(c)[0] for c in CATEGORIES},
                            "p50_ms": statistics.median(s.latencies) * 1000,
                        }
                        for vname, s in combine(convs).items()
                    },
                }
                for name, convs in splits.items()
            },
        }
        (args.out / f"{out_name}.json").write_text(json.dumps(payload, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
