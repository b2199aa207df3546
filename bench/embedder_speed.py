"""The local embedder before and after issue 17, in one run, on real conversation turns.

Variants, measured in interleaved rounds (the machine is shared: medians over rounds):

- ``before float32`` / ``before int8``: the embedder as main f74d3a3 ran it, rebuilt by
  ``bench/_embedder_before.py`` (unfused graph, one session with ``threads`` intra-op
  threads, per-64-text sorting);
- ``after float32`` / ``after int8``: today's ``LocalEmbedder`` (fused graph, whole-input
  length sorting, a wide session for a lone caller plus single-threaded sessions for
  concurrent callers); int8 is the default for new stores;
- ``sentence-transformers`` on the same texts, when ``--st-python`` names a Python that
  has ``torch`` and ``sentence-transformers`` (what a user would pick instead; never a
  dependency of Sem-Mem).

Measures: single 12-token query latency (LoCoMo questions of exactly 12 tokens with
[CLS] and [SEP]), throughput of ``encode`` on LoCoMo turns ("Speaker: text"), queries/s
with ``threads`` callers embedding single queries at once (a server), and the cosine of
each variant's vectors to ``before float32`` (which equals sentence-transformers).
Writes ``bench/results/embedder_speed.{md,json}``.

    python -m bench.embedder_speed [--texts 1000] [--rounds 3] [--st-python PATH]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from bench._common import Table, fmt, machine, ratio, write_results
from bench._embedder_before import BeforeEmbedder
from sem_mem.embedders.base import Embedder
from sem_mem.embedders.local import LocalEmbedder, _physical_cores

# ../shared/data next to the repository (a worktree sits one level deeper)
DEFAULT_LOCOMO = next(
    (
        up / "shared/data/locomo/locomo_dev5.json"
        for up in Path(__file__).resolve().parents[2:4]
        if (up / "shared/data/locomo/locomo_dev5.json").is_file()
    ),
    Path(__file__).resolve().parents[2] / "shared/data/locomo/locomo_dev5.json",
)
REFERENCE = "before float32"
DEFAULT = "after int8"
ST = "sentence-transformers"

# A child process in the sentence-transformers environment, driven line by line so that
# its rounds interleave with ours.
_ST_CHILD = r"""
import json, sys, time
import numpy as np, torch
from sentence_transformers import SentenceTransformer
model_dir, threads, data = sys.argv[1], int(sys.argv[2]), json.load(open(sys.argv[3]))
torch.set_num_threads(threads)
model = SentenceTransformer(model_dir, device="cpu")
model.encode(data["turns"][:64])
print(json.dumps({"ready": torch.__version__}), flush=True)
for line in sys.stdin:
    cmd, _, arg = line.strip().partition(" ")
    if cmd == "lat":
        times = []
        for q in data["queries"]:
            start = time.perf_counter()
            model.encode(q, normalize_embeddings=True)
            times.append((time.perf_counter() - start) * 1000)
        print(json.dumps(times), flush=True)
    elif cmd == "tp":
        start = time.perf_counter()
        model.encode(data["turns"], batch_size=64, normalize_embeddings=True)
        print(json.dumps(time.perf_counter() - start), flush=True)
    elif cmd == "vec":
        np.save(arg, model.encode(data["turns"], batch_size=64, normalize_embeddings=True))
        print("null", flush=True)
    else:
        break
"""


def load_locomo(
    path: Path, n_texts: int, tokens: int, n_queries: int
) -> tuple[list[str], list[str]]:
    """Conversation turns, and questions of exactly ``tokens`` tokens."""
    from tokenizers import Tokenizer

    turns, questions = [], []
    for sample in json.loads(path.read_text()):
        for key, session in sample["conversation"].items():
            if key.startswith("session_") and isinstance(session, list):
                turns += [f"{t['speaker']}: {t['text']}" for t in session]
        questions += [qa["question"] for qa in sample["qa"]]
    tokenizer = Tokenizer.from_file(str(LocalEmbedder().model_dir / "tokenizer.json"))
    tokenizer.no_padding()
    exact = [q for q in dict.fromkeys(questions) if len(tokenizer.encode(q).ids) == tokens]
    return turns[:n_texts], exact[:n_queries]


class _StChild:
    def __init__(self, python: str, model_dir: Path, threads: int, data: Path) -> None:
        self.proc = subprocess.Popen(
            [python, "-c", _ST_CHILD, str(model_dir), str(threads), str(data)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.version = self._ask(None)["ready"]

    def _ask(self, command: str | None) -> Any:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        if command is not None:
            self.proc.stdin.write(command + "\n")
            self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("the sentence-transformers child died")
        return json.loads(line)

    def latencies(self) -> list[float]:
        return list(self._ask("lat"))

    def seconds(self) -> float:
        return float(self._ask("tp"))

    def vectors(self, path: Path) -> np.ndarray:
        self._ask(f"vec {path}")
        return np.load(path)

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write("quit\n")
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


def _latencies(embedder: Embedder, queries: list[str]) -> list[float]:
    times = []
    for q in queries:
        start = time.perf_counter()
        embedder.embed(q)
        times.append((time.perf_counter() - start) * 1000)
    return times


def _concurrent_rate(embedder: Embedder, queries: list[str], callers: int) -> float:
    """Queries/s with ``callers`` threads each embedding single queries, as a server does."""
    start_line = threading.Barrier(callers + 1)

    def caller(share: list[str]) -> None:
        start_line.wait()
        for q in share:
            embedder.embed(q)

    threads = [threading.Thread(target=caller, args=(queries[i::callers],)) for i in range(callers)]
    for t in threads:
        t.start()
    start_line.wait()
    start = time.perf_counter()
    for t in threads:
        t.join()
    return len(queries) / (time.perf_counter() - start)


def _timed(build: Callable[[], Embedder]) -> tuple[Embedder, float]:
    start = time.perf_counter()
    embedder = build()
    embedder.embed("warm up")
    return embedder, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--texts", type=int, default=1000, help="LoCoMo turns per throughput run")
    parser.add_argument("--queries", type=int, default=100, help="12-token questions per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="default: physical cores")
    parser.add_argument("--locomo", type=Path, default=DEFAULT_LOCOMO)
    parser.add_argument("--st-python", help="a Python with torch and sentence-transformers")
    args = parser.parse_args()
    threads = args.threads or _physical_cores()

    turns, queries = load_locomo(args.locomo, args.texts, 12, args.queries)
    with tempfile.TemporaryDirectory(prefix="sem-mem-embedder-bench-") as tmp:
        cache = Path(tmp)
        embedders: dict[str, Embedder] = {}
        build_s: dict[str, float] = {}
        for name, make in (
            ("before float32", lambda: BeforeEmbedder(cache, int8=False, threads=threads)),
            ("before int8", lambda: BeforeEmbedder(cache, int8=True, threads=threads)),
            ("after float32", lambda: LocalEmbedder(cache_dir=cache, threads=threads)),
            (DEFAULT, lambda: LocalEmbedder(cache_dir=cache, threads=threads, int8=True)),
        ):
            embedders[name], build_s[name] = _timed(make)
        names = [*embedders]
        st: _StChild | None = None
        if args.st_python:
            data = cache / "texts.json"
            data.write_text(json.dumps({"turns": turns, "queries": queries}))
            model_dir = LocalEmbedder().model_dir
            st = _StChild(args.st_python, model_dir, threads, data)
            names.append(ST)

        for embedder in embedders.values():  # warm up, and open every pooled session
            _concurrent_rate(embedder, queries[: 4 * threads], threads)
        vectors = {name: e.encode(turns) for name, e in embedders.items()}
        if st is not None:
            vectors[ST] = st.vectors(cache / "st.npy")
        lat: dict[str, list[float]] = {n: [] for n in names}
        rate: dict[str, list[float]] = {n: [] for n in names}
        served: dict[str, list[float]] = {n: [] for n in embedders}
        for round_ in range(args.rounds):
            print(f"round {round_ + 1}/{args.rounds}", file=sys.stderr)
            for q in queries:  # single queries, variants interleaved query by query
                for name, embedder in embedders.items():
                    lat[name] += _latencies(embedder, [q])
            if st is not None:
                lat[ST] += st.latencies()
            for name, embedder in embedders.items():
                start = time.perf_counter()
                embedder.encode(turns)
                rate[name].append(len(turns) / (time.perf_counter() - start))
                served[name].append(_concurrent_rate(embedder, queries * 4, threads))
            if st is not None:
                rate[ST].append(len(turns) / st.seconds())
        if st is not None:
            st.close()

    ref = vectors[REFERENCE]
    results: dict[str, dict[str, Any]] = {}
    for name in names:
        cos = np.sum(vectors[name] * ref, axis=1)
        results[name] = {
            "p50_ms": statistics.median(lat[name]),
            "p99_ms": float(np.percentile(lat[name], 99)),
            "rate": statistics.median(rate[name]),
            "rates": rate[name],
            "served": statistics.median(served[name]) if name in served else None,
            "cos_median": float(np.median(cos)),
            "cos_min": float(cos.min()),
            "load_s": build_s.get(name),
        }
    st_flag = " --st-python <a venv with torch 2.13.0 (CPU) + sentence-transformers>" if st else ""
    tables = _tables(results, names, len(turns), len(queries), threads, args.rounds)
    for table in tables:
        print(table.markdown())
    packages = ("onnxruntime", "tokenizers", "numpy")
    md, _ = write_results(
        "embedder_speed",
        title="Local embedder speed: before and after issue 17",
        intro=[f"Produced by `python -m bench.embedder_speed{st_flag}`."],
        tables=tables,
        meta=machine(packages),
        data={"results": results, "threads": threads, "texts": len(turns)},
    )
    print(f"wrote {md}")


def _tables(
    results: dict[str, dict[str, Any]],
    names: list[str],
    n_turns: int,
    n_queries: int,
    threads: int,
    rounds: int,
) -> list[Table]:
    ref = results[REFERENCE]
    main = Table("all-MiniLM-L6-v2 on 2 cores: before / after", ["measure", *names])
    rows = [
        ("single 12-token query p50, ms", "p50_ms", 2),
        ("single 12-token query p99, ms", "p99_ms", 2),
        (f"encode {n_turns} LoCoMo turns, sentences/s", "rate", 0),
        (f"{threads} callers embedding single queries at once, queries/s", "served", 0),
        ("cosine to before float32, median", "cos_median", 4),
        ("cosine to before float32, min", "cos_min", 4),
        ("graph build + first query (fresh cache), s", "load_s", 2),
    ]
    for label, key, digits in rows:
        main.add(label, *(fmt(results[n][key], digits) for n in names))
    ratios = (("p50 vs before float32", "p50_ms"), ("throughput vs before float32", "rate"))
    for label, key in ratios:
        main.add(label, *(ratio(results[n][key], ref[key]) for n in names))
    main.notes = [
        f"{n_turns} LoCoMo turns ('Speaker: text'); {n_queries} LoCoMo questions of exactly 12 "
        f"tokens; {threads} threads / sessions; medians over {rounds} interleaved rounds "
        "(single queries interleaved query by query). Other work shares the machine.",
        "before = main f74d3a3 (unfused graph, per-64 sorting, one multi-threaded session); "
        "after = fused graph, whole-input sorting, one wide session plus single-threaded "
        "sessions for concurrent callers. "
        "int8 is the default for new stores.",
        "sentence-transformers (torch) suffers most from other tenants' load on these cores: "
        "../shared/OFFLINE.md measured it at 6-7 ms per query and ~360 sentences/s when "
        "the machine was quieter.",
    ]
    after = results[DEFAULT]
    targets = Table(
        "issue 17 targets (after int8, the new default, vs before float32)",
        ["target", "measured", "met?"],
    )
    p50 = after["p50_ms"] / ref["p50_ms"]
    speed = after["rate"] / ref["rate"]
    targets.add("single 12-token query p50 <= 0.5x", f"{p50:.2f}x", "yes" if p50 <= 0.5 else "no")
    targets.add("throughput on turns >= 2.0x", f"{speed:.2f}x", "yes" if speed >= 2.0 else "no")
    cos = after["cos_median"]
    targets.add("median cosine to float32 >= 0.98", f"{cos:.4f}", "yes" if cos >= 0.98 else "no")
    fused = results["after float32"]["cos_min"]
    targets.add(
        "fused float32 within cosine 0.999 (min)", f"{fused:.6f}", "yes" if fused >= 0.999 else "no"
    )
    return [main, targets]


if __name__ == "__main__":
    main()
