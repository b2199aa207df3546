"""The tables and notes bench/speed.py writes (``bench/results/speed.md``)."""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np

from bench._common import RESULTS_DIR, Table, fmt, median, ratio
from bench.speed_data import BLOCK, DIM, K
from bench.speed_systems import EF, EF_CONSTRUCTION, M


def tables(results: dict[str, Any], args: argparse.Namespace) -> list[Table]:
    sizes = results["sizes"]
    out = []

    t = Table(
        "remember_batch / add rate (memories per second, higher is better)",
        [
            "N",
            "sem-mem free embedder",
            "sem-mem dedupe=True",
            "chromadb add",
            "raw hnswlib",
            "sem-mem / chromadb",
            "sem-mem / hnswlib",
        ],
    )
    for f in sizes:
        n = f["n"]
        rate = {k: n / median(v) for k, v in f["build_s"].items() if v}
        t.add(
            f"{n:,}",
            fmt(rate.get("semmem")),
            fmt(rate.get("semmem_dedupe")),
            fmt(rate.get("chroma")),
            fmt(rate.get("hnswlib")),
            ratio(rate.get("semmem"), rate.get("chroma")),
            ratio(rate.get("semmem"), rate.get("hnswlib")),
        )
    t.notes.append(
        f"Sem-Mem: remember_batch in calls of {BLOCK:,} texts (chunk_size 1000, durability "
        f"full, index saves included); chromadb: collection.add in batches of {BLOCK:,} "
        "(ids, embeddings, documents); hnswlib: one add_items call, 2 threads. Same HNSW "
        f"parameters everywhere (M={M}, ef_construction={EF_CONSTRUCTION}). Median of the "
        "build rounds (see JSON)."
    )
    if results.get("local_writes"):
        lw = results["local_writes"]
        loc, free = median(lw["per_s"]["local"]), median(lw["per_s"]["free"])
        t.notes.append(
            f"With the default local embedder (MiniLM, onnxruntime), {lw['texts']:,} real "
            f"LoCoMo turns into a fresh store: {fmt(loc)}/s (the same texts with the free "
            f"embedder: {fmt(free)}/s): embedding dominates."
        )
    out.append(t)

    t = Table(
        f"recall / query latency, ms (single query, one thread, k={K}; p50 / p99)",
        ["N", "system", "p50", "p99", f"recall@{K}", "p50 vs sem-mem vector L2"],
    )
    for f in sizes:
        ref = f["query"]["sem-mem vector, L2 path"]["p50_ms"]
        for name, q in f["query"].items():
            t.add(
                f"{f['n']:,}",
                name,
                fmt(q["p50_ms"], 3),
                fmt(q["p99_ms"], 3),
                fmt(f["recall10"].get(name), 3),
                ratio(q["p50_ms"], ref),
            )
        for mode, q in f.get("e2e", {}).items():
            what = {
                "embed": "local embedder embed() alone",
                "embed int8": "local embedder int8 embed() alone",
                "hybrid int8": "sem-mem hybrid, end to end (local embedder int8)",
            }.get(mode, f"sem-mem {mode}, end to end (local embedder)")
            t.add(
                f"{f['n']:,}",
                what,
                fmt(q["p50_ms"], 3),
                fmt(q["p99_ms"], 3),
                "–",
                ratio(q["p50_ms"], ref),
            )
    text_note = (
        "memory texts are synthetic ('memory m123', queries 'query q45'), so hybrid's FTS5 "
        "query matches nothing and costs almost nothing"
        if args.texts == "synthetic"
        else "memory texts are the base turn's text plus a tag, so FTS5 does real work"
    )
    t.notes += [
        "L2 path: query embedding cached, result cache cleared before each call (the index "
        "is searched; recall asks the index for max(50, 2*limit) candidates at ef=64). L1 hit "
        "path: the identical query repeated while the store is unchanged (result cache).",
        f"Hybrid adds an FTS5 query and rank fusion; {text_note}.",
        "End to end: a LoCoMo question never seen before, embedded by the local embedder "
        "(MiniLM via onnxruntime), then recalled; recall@10 is not defined for those.",
        f"chromadb with the same HNSW parameters (space cosine, M={M}, "
        f"ef_construction={EF_CONSTRUCTION}, ef_search={EF}); numpy exact: one "
        "matrix-vector product + argpartition (the "
        "physical baseline, and the ground truth of recall@10).",
    ]
    out.append(t)

    t = Table(
        "targets",
        ["N", "target", "measured", "met"],
    )
    for f in sizes:
        n, q = f["n"], f["query"]
        sm = q["sem-mem vector, L2 path"]["p50_ms"]
        raw = q["hnswlib k=10 ef=64"]["p50_ms"]
        t.add(
            f"{n:,}",
            "vector recall p50 <= raw hnswlib p50 + 0.5 ms",
            f"{sm:.3f} vs {raw + 0.5:.3f}",
            yes(sm <= raw + 0.5),
        )
        if "chromadb query" in q:
            ch = q["chromadb query"]["p50_ms"]
            t.add(
                f"{n:,}",
                "vector recall p50 <= chromadb p50 / 3",
                f"{sm:.3f} vs {ch / 3:.3f}",
                yes(sm <= ch / 3),
            )
        r10 = f["recall10"]["sem-mem vector, L2 path"]
        t.add(f"{n:,}", "recall@10 >= 0.97", f"{r10:.3f}", yes(r10 >= 0.97))
        for mode, label in (("hybrid", ""), ("hybrid int8", ", int8 embedder")):
            if mode in f.get("e2e", {}):
                e2e = f["e2e"][mode]["p50_ms"]
                t.add(
                    f"{n:,}",
                    f"end-to-end local recall p50 <= 3 ms (hybrid{label})",
                    f"{e2e:.3f}",
                    yes(e2e <= 3.0),
                )
        if f["build_s"].get("chroma"):
            sm_rate = n / median(f["build_s"]["semmem"])
            ch_rate = n / median(f["build_s"]["chroma"])
            t.add(
                f"{n:,}",
                "remember_batch (free) >= 2x chromadb add",
                f"{sm_rate / ch_rate:.2f}x",
                yes(sm_rate >= 2 * ch_rate),
            )
        cold = f["cold_open"]["sem-mem"]["first_result_s"]
        t.add(f"{n:,}", "cold open to first result <= 2 s", f"{cold:.2f} s", yes(cold <= 2.0))
    t.notes.append(
        "The issue sets the latency, recall and cold-open targets at 10^6 and the "
        "end-to-end target at 10^5; smaller sizes are shown for the trend."
    )
    out.append(t)

    t = Table(
        "cold open (fresh process, OS file cache warm), memory and disk",
        [
            "N",
            "system",
            "open s",
            "first result s",
            "next query p50 ms",
            "RSS MB",
            "disk bytes / memory",
        ],
    )
    for f in sizes:
        for name, c in f["cold_open"].items():
            disk = f["disk_bytes"].get(name)
            t.add(
                f"{f['n']:,}",
                name,
                fmt(c["open_s"], 3),
                fmt(c["first_result_s"], 3),
                fmt(c["next_p50_ms"], 3),
                fmt(c["rss_mb"]),
                fmt(disk / f["n"] if disk else None, 0),
            )
        sq = f["disk_bytes"]["sem-mem sqlite"]
        t.notes.append(
            f"{f['n']:,}: Sem-Mem's SQLite file {sq / f['n']:.0f} B/memory (text, metadata, "
            f"vector, FTS5, history), the rest is the HNSW file; close() took "
            f"{f['semmem_close_s']:.2f} s (final index save)."
        )
    t.notes.append(
        "Sem-Mem: SemanticMemory(...) then the first recall (which loads the HNSW "
        "file and catches it up from SQLite); hnswlib: load_index; chromadb: "
        "PersistentClient + get_collection. Python imports are not counted."
    )
    out.append(t)

    t = Table(
        "data: how hard the neighbourhoods are",
        ["N", "top-1 cos", "top-10 cos", "gap 10th-11th", "top-10 that copy the query's turn"],
    )
    for f in sizes:
        d = f["data"]
        t.add(
            f"{f['n']:,}",
            f"{d['top1_cos']:.3f}",
            f"{d['top10_cos']:.3f}",
            f"{d['gap_10_11']:.4f}",
            f"{d['sibling_share']:.2f}",
        )
    t.notes.append(
        f"{results['base_turns']:,} LoCoMo turns embedded with MiniLM; each memory is a "
        f"random turn's vector plus N(0, {args.noise}²) per dimension, re-normalised "
        f"(cos to its turn ≈ {1 / np.sqrt(1 + DIM * args.noise**2):.2f}). For reference, "
        "real LoCoMo turns have a median nearest-neighbour cos of about 0.74."
    )
    out.append(t)

    if results.get("mem0"):
        m0 = results["mem0"]
        t = Table(
            "mem0 (infer=False, default local Qdrant) vs Sem-Mem, grown side by side",
            [
                "N",
                "mem0 add/s",
                "sem-mem remember_batch/s",
                "mem0 search p50 / p99 ms",
                "sem-mem recall p50 / p99 ms",
                "mem0 / sem-mem p50",
                "recall@10 mem0 / sem-mem",
            ],
        )
        for row in m0["rows"]:
            m, s = row["mem0_search_ms"], row["semmem_recall_ms"]
            t.add(
                f"{row['n']:,}",
                fmt(row["mem0_add_per_s"]),
                fmt(row["semmem_add_per_s"]),
                f"{fmt(m[0])} / {fmt(m[1])}",
                f"{fmt(s[0], 3)} / {fmt(s[1], 3)}",
                ratio(m[0], s[0], 0),
                f"{row['mem0_recall10']:.2f} / {row['semmem_recall10']:.2f}",
            )
        t.notes += [
            f"Each row adds the memories since the previous row (rates are for that "
            f"segment). Budget {m0['budget_s']:.0f} s; {m0['queries']} queries per row. "
            "mem0.add gets lists of 100 messages; its embedder is replaced by one returning "
            "the same precomputed vectors; its LLM points at an unreachable URL and is never "
            "called (infer=False). Without spaCy/fastembed (not in mem0ai's base install) its "
            "BM25 and entity boosts are off, so search is its semantic path.",
            "Sem-Mem: remember_batch of the same segment; recall (hybrid, L2 path) with "
            "cached query embeddings.",
        ]
        out.append(t)
    return out


def yes(ok: bool) -> str:
    return "yes" if ok else "**no**"


def other_results() -> list[str]:
    """The server load and backend benchmarks are separate scripts; quote their results."""
    lines = ["## Other benchmarks", ""]
    for name, what in (
        ("server_load", "server `/recall` under 1/8/32 clients"),
        ("backends", "PostgreSQL + pgvector backend at 10^5"),
    ):
        found = [
            p for p in (RESULTS_DIR / f"{name}.md", RESULTS_DIR / f"{name}_quick.md") if p.exists()
        ]
        path = found[0] if found else RESULTS_DIR / f"{name}.md"
        if found:
            quoted = [
                "###" + line if line.startswith("#") else line  # nest its headings
                for line in path.read_text(encoding="utf-8").splitlines()
            ]
            lines += [f"From `bench/{name}.py` ({what}), `bench/results/{path.name}`:", "", *quoted]
            lines.append("")
        else:
            lines += [f"- {what}: run `python -m bench.{name}` (no results yet).", ""]
    return lines
