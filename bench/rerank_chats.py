"""How the reranker reads a turn, on chats built to trip it: where the answer lands.

Each chat holds a turn that answers a question and, in another thread, a turn that
repeats the question's words without answering it, next to a turn that says nothing.
The fused ranking (MiniLM + BM25) puts the word-repeater or its neighbour first in eight
of the nine. ``recall(question, 3, rerank=True)`` is asked with the reranker reading each
candidate alone, only in context (between the turns around it), or both (the mean of
the two scores, the library's choice): how often does the answer come first?

LoCoMo (``bench/recall_quality.py``) favours context; these chats show its cost: read
only in context, a turn's neighbours read much the same text, so the empty turn next to
the word-repeater is lifted with it.

    python -m bench.rerank_chats

(run from the repository root; the local cross-encoder must be installed).
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Sequence

from sem_mem import SemanticMemory
from sem_mem import tiers as tiers_module

#: question -> (the thread holding the answer, the answer's place in it, another thread)
CHATS: dict[str, tuple[list[tuple[str, str]], int, list[tuple[str, str]]]] = {
    "What is the name of Jordan's dog?": (
        [
            ("Mia", "How was the weekend?"),
            ("Jordan", "We adopted a beagle and called him Biscuit."),
        ],
        1,
        [
            ("Mia", "Jordan, what is the name of that dog park you like? The name escapes me."),
            ("Jordan", "I forget the name too."),
        ],
    ),
    "How many kids does Elena have?": (
        [("Raj", "Busy week?"), ("Elena", "Yes, my three children keep me running all day.")],
        1,
        [("Raj", "Elena, how many kids came to the party? So many kids!"), ("Elena", "Lots.")],
    ),
    "Where does Tom work?": (
        [("Ana", "Any news?"), ("Tom", "I started my new job as a nurse at Mercy Hospital.")],
        1,
        [("Ana", "Tom, do you like where you work? Where does Tom even work now?"), ("Tom", "Ha.")],
    ),
    "When is Omar's sister's wedding?": (
        [("Lena", "Hi Omar!"), ("Omar", "My sister gets married on the 14th of June in Lisbon.")],
        1,
        [
            ("Omar", "Weddings stress me out, my sister's friends keep asking about weddings."),
            ("Lena", "Omar, your sister is so kind."),
        ],
    ),
    "What did Caroline research?": (
        [
            ("Melanie", "How have you been?"),
            ("Caroline", "I've been researching adoption agencies."),
        ],
        1,
        [("Melanie", "Caroline, what did you think of the research talk?"), ("Caroline", "Okay.")],
    ),
    "Which city did Nate move to?": (
        [("Joanna", "Big news?"), ("Nate", "I finally moved to Seattle last month.")],
        1,
        [("Joanna", "Nate, did you see the city lights? The city moved me."), ("Nate", "No.")],
    ),
    "What sport does Gina coach?": (
        [("Jon", "What's new?"), ("Gina", "I coach the under-12 basketball team on Saturdays.")],
        1,
        [("Jon", "Gina, the coach of my sport club is great at sport."), ("Gina", "Cool.")],
    ),
    "What book is Dave reading?": (
        [("Ana", "Hey!"), ("Dave", "I'm halfway through The Hobbit, Bilbo is hilarious.")],
        1,
        [("Ana", "Dave, reading a book a week is my goal, which book are you reading?")],
    ),
    "Why did Sara quit her job?": (
        [("Leo", "How's everything?"), ("Sara", "I left the bank because the long hours hurt.")],
        1,
        [("Leo", "Sara, my job is boring, I want to quit my job too."), ("Sara", "Don't!")],
    ),
}
READINGS: dict[str, tuple[str, ...]] = {
    "alone": ("alone",),
    "context only": ("context",),
    "both (the mean; library default)": ("alone", "context"),
}


def places(memory: SemanticMemory, readings: tuple[str, ...] | None) -> list[int | None]:
    """Where each chat's answer lands among the top 3 (None: not there)."""
    out = []
    for question, (thread, at, _) in CHATS.items():
        speaker, text = thread[at]
        if readings is not None:
            tiers_module.RERANK_READINGS = readings
            memory._tiers.rerank_scores.clear()  # scores of another reading must not serve
        found = [r.text for r in memory.recall(question, 3, rerank=readings is not None)]
        answer = f"{speaker}: {text}"
        out.append(found.index(answer) if answer in found else None)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    default = tiers_module.RERANK_READINGS
    rows = []
    with (
        tempfile.TemporaryDirectory(prefix="semmem-rerank-chats-") as where,
        SemanticMemory(where) as memory,  # the local MiniLM embedder
    ):
        for n, (thread, _, other) in enumerate(CHATS.values()):
            for k, turns in enumerate((thread, other)):
                memory.remember_conversation(
                    [{"speaker": s, "text": t} for s, t in turns], thread_id=f"{n}-{k}"
                )
        try:
            rows.append(("fused ranking (no reranker)", places(memory, None)))
            for label, readings in READINGS.items():
                rows.append((f"reranked, {label}", places(memory, readings)))
        finally:
            tiers_module.RERANK_READINGS = default
    print(f"# The answer's place among the top 3 ({len(CHATS)} chats; 1 = first, - = absent)")
    print()
    print("| ranking | answer first | places |")
    print("|---|---|---|")
    for label, found in rows:
        first = sum(p == 0 for p in found)
        shown = " ".join("-" if p is None else str(p + 1) for p in found)
        print(f"| {label} | {first} of {len(found)} | {shown} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
