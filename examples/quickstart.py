"""Offline quickstart: remember and recall with local embeddings (no API key needed).

Run with `make demo` (sets everything up first) or `python examples/quickstart.py`.
The store lives in ./local_memory unless MEMORY_STORAGE_DIR says otherwise.
"""

from __future__ import annotations

import time

from sem_mem import SemanticMemory

FACTS = [
    "The patient is allergic to penicillin",
    "Sam is a cardiology fellow",
    "Sam lives in Boston",
    "Metformin is first-line therapy for type 2 diabetes",
    "Warfarin interacts with many antibiotics, including ciprofloxacin",
    "The clinic opens at 8am on weekdays",
]
QUESTIONS = [
    "What allergies should I check?",
    "Where does Sam live?",
    "Which drug interacts with cipro?",
]


def main() -> None:
    with SemanticMemory() as memory:
        print(f"Store: {memory.settings.storage_dir}  embedder: {memory.embedder.model_id}")
        started = time.perf_counter()
        memory.remember_batch(FACTS, metadata={"source": "quickstart"})
        print(
            f"Remembered {len(FACTS)} facts in {time.perf_counter() - started:.2f} s "
            f"({len(memory)} memories in the store)"
        )
        for question in QUESTIONS:
            started = time.perf_counter()
            hits = memory.recall(question, limit=2)
            ms = (time.perf_counter() - started) * 1000
            print(f"\n? {question}   ({ms:.1f} ms)")
            for hit in hits:
                print(f"  [{hit.tier}] {hit.score:.2f}  {hit.text}")
        memory.add_instruction("I am an informatics physician")
        print(f"\nInstructions: {memory.instructions.strip()}")
        stats = memory.stats()
        print(
            f"L1 hit rate {stats['l1']['hit_rate']:.0%}, index M={stats['index']['M']}, "
            f"ef_construction={stats['index']['ef_construction']}"
        )


if __name__ == "__main__":
    main()
