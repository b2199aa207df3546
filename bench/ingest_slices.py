"""What does committing an ingest slice by slice cost?

``SemanticMemory.ingest_pdf`` commits ``INGEST_SLICE`` (64) chunks at a time so that an
interrupted ingest keeps what was committed. This times ingesting one long text document
into a fresh store with slices of 64 (today) and with one slice for the whole document
(the previous behaviour: everything embedded, then committed), interleaved and repeated,
and prints the medians and their ratio. ``--embedder hashing`` (default) isolates the
storage overhead (the worst case for the ratio); ``--embedder local`` uses MiniLM, where
embedding dominates.

    python -m bench.ingest_slices [--chunks 480] [--repeat 5] [--embedder hashing|local]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from embedders import HashingEmbedder  # noqa: E402

import sem_mem.ingestion as ingestion  # noqa: E402
from sem_mem import SemanticMemory  # noqa: E402


def document(chunks: int) -> str:
    # ~1,000-character paragraphs: one chunk each at the default chunk size
    sentence = "Paragraph {i} describes procedure step {j} for the ward in some detail. "
    return "\n\n".join("".join(sentence.format(i=i, j=j) for j in range(13)) for i in range(chunks))


def ingest_once(text: str, slice_size: int, embedder_kind: str) -> tuple[float, int]:
    ingestion.INGEST_SLICE = slice_size
    embedder = HashingEmbedder() if embedder_kind == "hashing" else None
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "long.txt"
        path.write_text(text, encoding="utf-8")
        memory = SemanticMemory(str(Path(tmp) / "store"), embedder=embedder, dotenv_path=None)
        try:
            started = time.perf_counter()
            result = memory.ingest_pdf(path, overlap_chars=0)
            return time.perf_counter() - started, result.chunks_stored
        finally:
            memory.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=480)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--embedder", choices=("hashing", "local"), default="hashing")
    args = parser.parse_args()
    text = document(args.chunks)
    default = ingestion.INGEST_SLICE
    times: dict[str, list[float]] = {"slices of 64": [], "one slice": []}
    stored = 0
    for _ in range(args.repeat):  # interleaved, so load changes hit both alike
        seconds, stored = ingest_once(text, default, args.embedder)
        times["slices of 64"].append(seconds)
        seconds, _ = ingest_once(text, 10**9, args.embedder)
        times["one slice"].append(seconds)
    ingestion.INGEST_SLICE = default
    base = statistics.median(times["one slice"])
    print(f"ingest of {stored} chunks, {args.embedder} embedder, median of {args.repeat}\n")
    print("| commit | median s | chunks/s | vs one slice |")
    print("|---|---:|---:|---:|")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"| {name} | {median:.3f} | {stored / median:,.0f} | {median / base:.2f}x |")


if __name__ == "__main__":
    main()
