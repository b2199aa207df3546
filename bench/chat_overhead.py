"""What do query expansion and auto-memory add to a chat turn?

Runs ``chat_with_memory`` turns against the local fake OpenAI server (tests/fake_openai.py)
with a fixed server-side delay per model call (default 50 ms, like a fast hosted model),
and prints a Markdown table: model calls per turn and median / p90 turn latency with both
features off, expansion on, auto-memory on, and both; plus expansion with the cache hit
and auto-memory in memory-only mode (heuristics, no model).

The user messages are the labelled utterances of tests/test_auto_memory.py (salient,
not salient and hard cases mixed), so auto-memory sees a realistic mix: a clear salient
message costs one distillation call, an ambiguous one a judge call, the rest none. The
same table gives the heuristics' precision and recall over those utterances.

    python -m bench.chat_overhead [--turns 60] [--delay-ms 50]

(run from the repository root with the dev extras installed: it imports the tests).
"""

from __future__ import annotations

import argparse
import random
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import fake_openai  # noqa: E402
from embedders import HashingEmbedder  # noqa: E402
from fake_openai import FakeOpenAI  # noqa: E402
from test_auto_memory import HARD_CASES, NOT_SALIENT, SALIENT  # noqa: E402
from test_chat import KEY, ScriptedLLM  # noqa: E402

from sem_mem import SemanticMemory  # noqa: E402
from sem_mem.auto_memory import detect_salience  # noqa: E402
from sem_mem.llm.responses import ResponsesChatModel  # noqa: E402


@dataclass
class Row:
    name: str
    calls: list[int]
    latencies: list[float]  # seconds

    def cells(self, baseline: Row | None) -> list[str]:
        median = statistics.median(self.latencies) * 1000
        p90 = statistics.quantiles(self.latencies, n=10)[-1] * 1000
        mean = statistics.fmean(self.latencies) * 1000
        extra = "-" if baseline is None else f"{mean - baseline.mean_ms:+.0f}"
        return [
            self.name,
            f"{statistics.fmean(self.calls):.2f}",
            f"{max(self.calls)}",
            f"{mean:.0f}",
            f"{median:.0f}",
            f"{p90:.0f}",
            extra,
        ]

    @property
    def median_ms(self) -> float:
        return statistics.median(self.latencies) * 1000

    @property
    def mean_ms(self) -> float:
        return statistics.fmean(self.latencies) * 1000


def _no_nagle() -> None:
    """Answer without Nagle's algorithm, as real servers do for small JSON replies.

    The fake server writes headers and body in two segments; with Nagle on, the second
    waits for the client's delayed ACK (~40 ms), which would swamp the measured delay.
    Harmless if the fake server already sets TCP_NODELAY.
    """
    handler = fake_openai._Handler
    if getattr(handler, "_bench_nodelay", False):
        return
    setup = handler.setup

    def setup_nodelay(self: Any) -> None:
        setup(self)
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    handler.setup = setup_nodelay  # type: ignore[method-assign]
    handler._bench_nodelay = True  # type: ignore[attr-defined]


def labelled_utterances() -> list[tuple[str, bool]]:
    return [(t, True) for t, _ in SALIENT] + [(t, False) for t in NOT_SALIENT] + HARD_CASES


def heuristic_scores() -> tuple[int, float, float]:
    """(utterances, precision, recall) of ``detect_salience`` over the labelled table."""
    labelled = labelled_utterances()
    tp = fp = fn = 0
    for text, expected in labelled:
        predicted = detect_salience(text).salient
        tp += predicted and expected
        fp += predicted and not expected
        fn += expected and not predicted
    return len(labelled), tp / (tp + fp), tp / (tp + fn)


def slow(responder: Callable[[dict[str, Any]], str], delay: float) -> Callable[..., str]:
    def answer(body: dict[str, Any]) -> str:
        time.sleep(delay)  # in the server thread: the model's "thinking" time
        return responder(body)

    return answer


def run(
    name: str,
    messages: Sequence[str],
    *,
    server: FakeOpenAI | None,
    expand: bool,
    auto: bool,
    repeat_first: bool = False,
) -> Row:
    """One configuration on a fresh store: calls and wall time of each turn."""
    calls: list[int] = []
    latencies: list[float] = []
    with tempfile.TemporaryDirectory() as storage:
        kwargs: dict[str, Any] = {"embedder": HashingEmbedder(), "dotenv_path": None}
        if server is not None:
            kwargs["chat_model"] = ResponsesChatModel(api_key=KEY, base_url=server.base_url)
        with SemanticMemory(storage, **kwargs) as memory:
            memory.remember_batch([t for t, _ in SALIENT[:10]])  # something to recall
            if repeat_first:
                memory.chat_with_memory(messages[0], expand_query=expand, auto_remember=auto)
            for text in messages:
                text = messages[0] if repeat_first else text
                before = len(server.requests) if server is not None else 0
                start = time.perf_counter()
                memory.chat_with_memory(text, expand_query=expand, auto_remember=auto)
                latencies.append(time.perf_counter() - start)
                calls.append((len(server.requests) - before) if server is not None else 0)
    return Row(name, calls, latencies)


def markdown(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=60, help="chat turns per configuration")
    parser.add_argument("--delay-ms", type=float, default=50.0, help="server delay per call")
    args = parser.parse_args(argv)
    _no_nagle()

    utterances = [t for t, _ in labelled_utterances()]
    random.Random(0).shuffle(utterances)  # salient and not salient mixed, reproducibly
    messages = [utterances[i % len(utterances)] for i in range(args.turns)]
    delay = args.delay_ms / 1000
    with FakeOpenAI(api_key=KEY, responder=ScriptedLLM()) as server:
        round_trip = run("calibration", messages[:20], server=server, expand=False, auto=False)
    with FakeOpenAI(api_key=KEY, responder=slow(ScriptedLLM(), delay)) as server:
        baseline = run("both off", messages, server=server, expand=False, auto=False)
        rows = [
            baseline,
            run("expansion on", messages, server=server, expand=True, auto=False),
            run(
                "expansion on, cached query",
                messages,
                server=server,
                expand=True,
                auto=False,
                repeat_first=True,
            ),
            run("auto-memory on", messages, server=server, expand=False, auto=True),
            run("both on (chat default)", messages, server=server, expand=True, auto=True),
        ]
    offline_off = run(
        "memory-only, auto-memory off", messages, server=None, expand=False, auto=False
    )
    offline_on = run("memory-only, auto-memory on", messages, server=None, expand=False, auto=True)

    header = [
        "configuration",
        "calls/turn (mean)",
        "max",
        "mean ms",
        "median ms",
        "p90 ms",
        "extra ms (mean)",
    ]
    print(
        f"## Chat-turn overhead: {args.turns} turns, {args.delay_ms:g} ms server delay per "
        "model call, HashingEmbedder store\n"
    )
    print(
        f"A turn with both off and no server delay (recall, instructions, one HTTP round "
        f"trip through the SDK): median {round_trip.median_ms:.0f} ms.\n"
    )
    print(markdown(header, [row.cells(None if row is baseline else baseline) for row in rows]))
    print()
    print(markdown(header, [offline_off.cells(None), offline_on.cells(offline_off)]))
    salient = sum(detect_salience(m).salient for m in messages)
    ambiguous = sum(detect_salience(m).ambiguous for m in messages)
    print(
        f"\nAuto-memory call mix over these turns: {salient} clear salient (1 distillation "
        f"call each), {ambiguous} ambiguous (1 judge call each), "
        f"{len(messages) - salient - ambiguous} not salient (no call)."
    )
    count, precision, recall = heuristic_scores()
    print(
        f"\nSalience heuristics on {count} labelled utterances (tests/test_auto_memory.py): "
        f"precision {precision:.3f}, recall {recall:.3f}"
    )


if __name__ == "__main__":
    main()
