"""The per-namespace tantivy text index against SQLite FTS5 on real conversation turns.

Builds 10^5 LoCoMo-like turns (the ~2,760 dev turns repeated with variation: other
speaker names, ~15% of words dropped, shifted dates), then times BM25 top-50 for the dev
questions, interleaved and repeated (medians of each round's percentiles):

- ``TextIndex`` with an empty tail, with a 500-document tail, and with a filter;
- FTS5 like today's table (``porter unicode61 remove_diacritics 2``, ``bm25()``,
  ``ORDER BY rank LIMIT 50``, an OR of the question's content words), on the same data;
- one tenant of 500 turns: its own ``TextIndex`` vs a shared FTS5 table of 100,500 rows
  filtered by namespace, and vs FTS5 holding only the tenant;
- the cost of a tantivy commit per 512 documents;
- R@10 of the speaker boost (1.0 / 1.5 / 2.0) on the dev conversations, split into a
  tuning half (conversations 1-3) and a checking half (4-5).

    python -m bench.text_index [--n 100000] [--queries 300] [--rounds 3]

Results go to ``bench/results/text_index.{md,json}``.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

try:
    from bench._common import (
        Table,
        dir_bytes,
        fmt,
        machine,
        median,
        percentiles_ms,
        ratio,
        write_results,
    )
except ModuleNotFoundError:  # run as a script from inside bench/
    from _common import (  # type: ignore[no-redef]
        Table,
        dir_bytes,
        fmt,
        machine,
        median,
        percentiles_ms,
        ratio,
        write_results,
    )

from sem_mem.backends import text_fields
from sem_mem.backends.sqlite_rows import content_words, fts_query
from sem_mem.backends.text_index import TextDoc, TextFilter, TextIndex

LOCOMO = Path("/work/shared/data/locomo/locomo_dev5.json")
NAMES = [
    "Avery", "Jordan", "Priya", "Mateo", "Hana", "Lucas", "Zara", "Omar", "Ingrid", "Kenji",
    "Chloe", "Diego", "Amara", "Felix", "Nadia", "Rafael", "Sofia", "Tariq", "Yuki", "Elena",
]  # fmt: skip
K = 50
BATCH = 512
FTS_DDL = (
    "CREATE VIRTUAL TABLE fts USING fts5(text, ns UNINDEXED, conv UNINDEXED, "
    "tokenize='porter unicode61 remove_diacritics 2')"
)


NOTES = [
    "### Reading the figures",
    "",
    "- The machine has 2 cores shared by several jobs (see the load average above): p99s",
    "  are mostly scheduling noise; read the p50s and their ratios, measured interleaved.",
    "- tantivy scores only the namespace's own index and finds the top k with block-max WAND,",
    "  so a tenant's cost is the same whatever the others hold: 'own index' *is* 'alone'.",
    "  FTS5 shares one table, matches and scores every row of every namespace, then filters.",
    "- The 500-document tail is scored in Python with tantivy's BM25 and statistics; the",
    "  tail's cost is in the difference between the first two rows.",
    "- A commit is paid once per batch, off the `remember` path: writer, indexing, fsyncs,",
    "  waiting for merges (the max is a merge of large segments), sidecar with checksums.",
    "- R@10: lexical search alone (no vectors), mean over the dev questions of the share of",
    "  evidence turns in the top 10; FTS5 is today's table, which indexes text only.",
    "",
]


def load_conversations() -> list[dict[str, Any]]:
    """Each dev conversation as speakers, turns (dia_id, speaker, text, timestamp) and qa."""
    out = []
    for conv in json.loads(LOCOMO.read_text()):
        c = conv["conversation"]
        turns = []
        for key in sorted(
            (k for k in c if re.fullmatch(r"session_\d+", k)), key=lambda k: int(k[8:])
        ):
            when = datetime.strptime(c[f"{key}_date_time"], "%I:%M %p on %d %B, %Y").timestamp()
            for i, t in enumerate(c[key]):
                turns.append((t["dia_id"], t["speaker"], t["text"], when + 60 * i, int(key[8:])))
        out.append({"speakers": (c["speaker_a"], c["speaker_b"]), "turns": turns, "qa": conv["qa"]})
    return out


def corpus(convs: list[dict[str, Any]], n: int, start_label: int = 1) -> list[TextDoc]:
    """``n`` turns: copy 0 is the dev data itself, later copies vary names, words and dates."""
    rng = random.Random(1)
    docs: list[TextDoc] = []
    copy = 0
    while len(docs) < n:
        for ci, conv in enumerate(convs):
            a, b = conv["speakers"]
            names = {a: NAMES[(2 * copy + ci) % 20], b: NAMES[(2 * copy + ci + 7) % 20]}
            for _dia, speaker, text, when, session in conv["turns"]:
                if copy:
                    words = [w for w in text.split() if rng.random() > 0.15] or text.split()
                    text = " ".join(names.get(w.strip(".,!?"), w) for w in words)
                    speaker = names[speaker]
                docs.append(
                    TextDoc(
                        label=start_label + len(docs),
                        seq=start_label + len(docs),
                        text=text,
                        speaker=speaker,
                        source="thread",
                        timestamp=when + copy * 37 * 86400,
                        thread_id=f"c{copy}-{ci}-s{session}",
                        metadata={"conv": (copy * len(convs) + ci) % 40, "session": session},
                    )
                )
                if len(docs) == n:
                    return docs
        copy += 1
    return docs


def fts_table(path: Path, rows: Sequence[tuple[TextDoc, str]]) -> sqlite3.Connection:
    conn = sqlite3.connect(path)
    conn.execute(FTS_DDL)
    with conn:
        conn.executemany(
            "INSERT INTO fts (rowid, text, ns, conv) VALUES (?, ?, ?, ?)",
            [(d.label, d.text, ns, d.metadata.get("conv")) for d, ns in rows],
        )
    conn.execute("INSERT INTO fts(fts) VALUES ('optimize')")
    conn.commit()
    return conn


def fts_search(conn: sqlite3.Connection, question: str, where: str = "", args: tuple = ()) -> list:
    match = fts_query(content_words(question))
    if match is None:
        return []
    return conn.execute(
        f"SELECT rowid, bm25(fts) AS rank FROM fts WHERE fts MATCH ? {where} ORDER BY rank LIMIT ?",
        (match, *args, K),
    ).fetchall()


def interleaved(
    engines: dict[str, Callable[[str], object]], queries: list[str], rounds: int
) -> dict[str, dict[str, float]]:
    """p50/p99 ms per engine: each query runs on every engine in turn, rotating the order."""
    per_round: dict[str, list[tuple[float, float]]] = {name: [] for name in engines}
    names = list(engines)
    rng = random.Random(2)
    clock = time.perf_counter
    for r in range(rounds):
        order = queries[:]
        rng.shuffle(order)
        times: dict[str, list[float]] = {name: [] for name in engines}
        for i, q in enumerate(order):
            for name in names[(i + r) % len(names) :] + names[: (i + r) % len(names)]:
                t0 = clock()
                engines[name](q)
                times[name].append((clock() - t0) * 1000)
        for name in engines:
            per_round[name].append(percentiles_ms(times[name]))
    return {
        name: {"p50": median(p[0] for p in v), "p99": median(p[1] for p in v)}
        for name, v in per_round.items()
    }


def build_index(path: Path, docs: Sequence[TextDoc]) -> tuple[TextIndex, list[float], list[float]]:
    """A committed index of ``docs`` in batches of 512; (index, upsert ms, commit ms)."""
    index = TextIndex(path, {"store_id": "bench", "namespace": path.name})
    upsert_ms, commit_ms = [], []
    for i in range(0, len(docs), BATCH):
        t0 = time.perf_counter()
        index.upsert(docs[i : i + BATCH])
        t1 = time.perf_counter()
        index.commit()
        upsert_ms.append((t1 - t0) * 1000)
        commit_ms.append((time.perf_counter() - t1) * 1000)
    return index, upsert_ms, commit_ms


def recall_at_10(convs: list[dict[str, Any]], tmp: Path) -> dict[str, dict[str, float]]:
    """Mean R@10 of the dev questions per speaker boost (and FTS5), tuning vs checking half."""
    halves = {"tuning (conv 1-3)": convs[:3], "checking (conv 4-5)": convs[3:]}
    out: dict[str, dict[str, float]] = {}
    default = text_fields.BOOSTS["speaker"]
    for half, group in halves.items():
        scores: dict[str, list[float]] = {}
        for ci, conv in enumerate(group):
            docs = [
                TextDoc(i + 1, i + 1, text, speaker=speaker)
                for i, (_d, speaker, text, _w, _s) in enumerate(conv["turns"])
            ]
            dia = {i + 1: t[0] for i, t in enumerate(conv["turns"])}
            index, _, _ = build_index(tmp / f"r{half[:3]}{ci}", docs)
            fts = fts_table(tmp / f"r{half[:3]}{ci}.db", [(d, "x") for d in docs])
            qa = [q for q in conv["qa"] if q.get("evidence")]
            engines: dict[str, Callable[[str], list[int]]] = {
                "FTS5": lambda q, fts=fts: [r[0] for r in fts_search(fts, q)][:10],
            }
            for boost in (1.0, 1.5, 2.0):
                engines[f"tantivy, speaker x{boost}"] = lambda q, b=boost, ix=index: (
                    text_fields.BOOSTS.__setitem__("speaker", b)
                    or [label for label, _ in ix.search(q, 10)]
                )
            for name, engine in engines.items():
                for q in qa:
                    top = {dia[label] for label in engine(q["question"])}
                    ev = set(q["evidence"])
                    scores.setdefault(name, []).append(len(ev & top) / len(ev))
            index.close()
            fts.close()
        out[half] = {name: sum(v) / len(v) for name, v in scores.items()}
    text_fields.BOOSTS["speaker"] = default
    return out


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args(argv)
    convs = load_conversations()
    questions = [q["question"] for c in convs for q in c["qa"]]
    queries = random.Random(3).sample(questions, min(args.queries, len(questions)))
    tmp = Path(tempfile.mkdtemp(prefix="bench-text-index-"))
    try:
        tables, data = run(args, convs, queries, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    md, _ = write_results(
        "text_index",
        title="Per-namespace tantivy text index vs SQLite FTS5",
        intro=[__doc__.split("\n\n")[1].replace("\n", " "), "", __doc__.split("\n\n")[2]],
        tables=tables,
        meta=machine(["tantivy"]),
        data=data,
        extra_markdown=NOTES,
    )
    for t in tables:
        print(t.markdown())
    print(f"wrote {md}")


def run(
    args: argparse.Namespace, convs: list[dict[str, Any]], queries: list[str], tmp: Path
) -> tuple[list[Table], dict[str, Any]]:
    docs = corpus(convs, args.n)
    t0 = time.perf_counter()
    big, upsert_ms, commit_ms = build_index(tmp / "big", docs)
    build_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    fts = fts_table(tmp / "big.db", [(d, f"t{d.label % 200}") for d in docs])
    fts_build_s = time.perf_counter() - t0
    # a second "process" on the same files with 500 uncommitted documents in its tail
    with_tail = TextIndex(tmp / "big", {"store_id": "bench", "namespace": "big"})
    extra = corpus(convs, args.n + 500)[args.n :]
    with_tail.upsert([replace(d, label=d.label + 10**7, seq=d.seq + 10**7) for d in extra])
    conv7 = TextFilter(metadata={"conv": 7})
    lat = interleaved(
        {
            "tantivy, empty tail": lambda q: big.search(q, K),
            "tantivy, 500-doc tail": lambda q: with_tail.search(q, K),
            "tantivy, filter conv=7": lambda q: big.search(q, K, conv7),
            "FTS5": lambda q: fts_search(fts, q),
            "FTS5, filter conv=7": lambda q: fts_search(fts, q, "AND conv = ?", (7,)),
        },
        queries,
        args.rounds,
    )
    speed = Table(
        f"BM25 top-{K} of {len(queries)} dev questions over {args.n:,} turns (ms)",
        ["engine", "p50", "p99", "p50 vs FTS5"],
    )
    base = lat["FTS5"]["p50"]
    for name, v in lat.items():
        speed.add(name, fmt(v["p50"], 3), fmt(v["p99"], 3), ratio(v["p50"], base))
    speed.notes.append("filter conv=7 matches 1/40 of the turns (metadata equality).")

    # one tenant of 500 turns among 200 others of 500 each
    tenant = [replace(d, label=d.label + 2 * 10**7) for d in corpus(convs[:1], 500)]
    tenant_ix, _, _ = build_index(tmp / "tenant", tenant)
    shared = fts_table(
        tmp / "shared.db", [(d, f"t{d.label % 200}") for d in docs] + [(d, "me") for d in tenant]
    )
    alone = fts_table(tmp / "alone.db", [(d, "me") for d in tenant])
    tq = [q["question"] for q in convs[0]["qa"]][: len(queries)]
    mt = interleaved(
        {
            "tantivy, own index": lambda q: tenant_ix.search(q, K),
            "FTS5 alone": lambda q: fts_search(alone, q),
            "FTS5 shared, WHERE ns": lambda q: fts_search(shared, q, "AND ns = ?", ("me",)),
        },
        tq,
        args.rounds,
    )
    tenants = Table(
        f"One tenant of 500 turns among {args.n:,} others: BM25 top-{K} (ms)",
        ["engine", "p50", "p99", "p50 vs FTS5 alone"],
    )
    for name, v in mt.items():
        tenants.add(
            name, fmt(v["p50"], 3), fmt(v["p99"], 3), ratio(v["p50"], mt["FTS5 alone"]["p50"])
        )

    writes = Table(
        f"Writing {args.n:,} turns in batches of {BATCH}",
        ["what", "median ms", "p90 ms", "max ms"],
    )
    for name, v in (("upsert into the tail (analysis)", upsert_ms), ("tantivy commit", commit_ms)):
        s = sorted(v)
        writes.add(name, fmt(median(s)), fmt(s[int(0.9 * len(s))]), fmt(s[-1]))
    opens = []
    for _ in range(5):
        t0 = time.perf_counter()
        TextIndex(tmp / "big", {"store_id": "bench", "namespace": "big"}).close()
        opens.append((time.perf_counter() - t0) * 1000)
    writes.add("open (checksums every file)", fmt(median(opens)), "–", fmt(max(opens)))
    writes.notes += [
        f"whole build: tantivy {build_s:.1f} s, FTS5 {fts_build_s:.1f} s (one transaction).",
        f"on disk: tantivy {dir_bytes(tmp / 'big') / 2**20:.1f} MiB, "
        f"FTS5 {(tmp / 'big.db').stat().st_size / 2**20:.1f} MiB.",
    ]
    r10 = recall_at_10(convs, tmp)
    quality = Table("R@10 on the dev questions (lexical only)", ["engine", *r10])
    for name in next(iter(r10.values())):
        quality.add(name, *(fmt(r10[h][name], 3) for h in r10))
    quality.notes.append(f"default speaker boost: {text_fields.SPEAKER_BOOST}.")
    data = {
        "latency": lat,
        "tenant": mt,
        "upsert_ms": upsert_ms,
        "commit_ms": commit_ms,
        "r10": r10,
    }
    return [speed, tenants, writes, quality], data


if __name__ == "__main__":
    main()
