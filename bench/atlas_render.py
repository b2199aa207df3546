"""Time the Memory Atlas at 10^4 memories: store read + PCA (+ k-means) + Plotly figure.

Vectors come from a real SQLite store in a temp dir, filled with 10,000 memories embedded
by the test suite's HashingEmbedder (384 dimensions, like MiniLM): the atlas's cost
depends on the count and the dimension, not on where the vectors came from. Printed:
build_atlas (read + sample + PCA + k-means), the figure, and its JSON (what Streamlit
sends to the browser), for the default cap of 5,000 points and for no cap.

    python bench/atlas_render.py [--n 10000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from embedders import HashingEmbedder  # noqa: E402

from sem_mem import SemanticMemory  # noqa: E402
from sem_mem.atlas import DEFAULT_MAX_POINTS, build_atlas  # noqa: E402
from sem_mem.ui.atlas_view import atlas_figure  # noqa: E402

WORDS = (  # noqa: SIM905
    "heart lung kidney liver brain blood pressure dose patient trial guideline cat dog "
    "boston chicago recipe garlic basil tomato meeting agenda project deadline budget "
    "python code bug release model memory cache index vector search"
).split()


def corpus(n: int) -> list[str]:
    return [
        " ".join(WORDS[(i * k + k * k) % len(WORDS)] for k in range(1, 9)) + f" note {i}"
        for i in range(n)
    ]


def best(fn, repeat: int) -> tuple[float, object]:  # type: ignore[no-untyped-def]
    times, out = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return min(times), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        memory = SemanticMemory(tmp, embedder=HashingEmbedder(384))
        sources = ["manual", "pdf", "auto", "thread"]
        texts = corpus(args.n)
        for s, source in enumerate(sources):
            memory.remember_batch(texts[s :: len(sources)], source=source)
        print(f"{len(memory):,} memories, 384 dimensions (HashingEmbedder), SQLite store\n")
        print("| cap | points | build_atlas (read+PCA+k-means) | figure | figure JSON | total |")
        print("|---:|---:|---:|---:|---:|---:|")
        for cap in (DEFAULT_MAX_POINTS, args.n):
            t_atlas, atlas = best(
                lambda c=cap: build_atlas(memory, max_points=c, clusters=6), args.repeat
            )
            t_fig, fig = best(lambda a=atlas: atlas_figure(a), args.repeat)  # type: ignore[arg-type]
            t_json, _ = best(lambda f=fig: f.to_json(), args.repeat)  # type: ignore[attr-defined]
            total = t_atlas + t_fig + t_json
            print(
                f"| {cap:,} | {atlas.shown:,} | {t_atlas * 1000:.0f} ms | "  # type: ignore[attr-defined]
                f"{t_fig * 1000:.0f} ms | {t_json * 1000:.0f} ms | {total * 1000:.0f} ms |"
            )
        memory.close()


if __name__ == "__main__":
    main()
