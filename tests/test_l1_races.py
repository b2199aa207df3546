"""L1 never serves a record older than a write that has returned (issue 12, item 14).

Recalls race updates and forgets in other threads with the interpreter forced to switch
threads every microsecond (``sys.setswitchinterval``), which is how the stale reads
showed (3-9 per 1,000 updates before the generation counter). No sleeps: the threads
run a fixed number of operations and are joined.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator

import pytest

from sem_mem import NotFoundError, SemanticMemory

UPDATES = 1500


@pytest.fixture
def fast_switching() -> Iterator[None]:
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(old)


def _recaller(memory: SemanticMemory, stop: threading.Event, errors: list[BaseException]) -> None:
    try:
        while not stop.is_set():
            memory.recall("zebra topic", limit=50, mode="lexical")
            memory.recall("zebra topic", limit=50, mode="vector")
    except BaseException as exc:  # reported by the test
        errors.append(exc)


@pytest.mark.slow  # 1,500 racing updates with thread switches every microsecond
def test_recall_racing_update_never_leaves_stale_text_in_l1(
    make_memory: object, fast_switching: None
) -> None:
    memory: SemanticMemory = make_memory(durability="normal")  # type: ignore[operator]
    target = memory.remember("zebra topic version 0")
    memory.remember_batch([f"zebra topic filler {i}" for i in range(8)])
    stop, errors = threading.Event(), []
    threads = [threading.Thread(target=_recaller, args=(memory, stop, errors)) for _ in range(2)]
    for t in threads:
        t.start()
    stale = []
    try:
        for i in range(1, UPDATES + 1):
            text = f"zebra topic version {i}"
            memory.update(target, text=text)
            # after update returned, nobody may see the old text through L1
            hot = memory.cache.peek(target)
            if hot is not None and hot.memory.text != text:
                stale.append((i, hot.memory.text))
            for hit in memory.recall("zebra topic version", limit=10, mode="lexical"):
                if hit.id == target and hit.text != text:
                    stale.append((i, hit.text))
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert not errors, errors[:1]
    assert stale == [], f"{len(stale)} stale reads in {UPDATES} updates, first {stale[:3]}"


@pytest.mark.slow  # 1,500 racing forgets with thread switches every microsecond
def test_recall_racing_forget_never_leaves_forgotten_text_in_l1(
    make_memory: object, fast_switching: None
) -> None:
    memory: SemanticMemory = make_memory(durability="normal")  # type: ignore[operator]
    memory.remember_batch([f"zebra topic filler {i}" for i in range(8)])
    stop, errors = threading.Event(), []
    threads = [threading.Thread(target=_recaller, args=(memory, stop, errors)) for _ in range(2)]
    for t in threads:
        t.start()
    leaked, forgotten = [], set()

    def in_l1() -> set[str]:
        return {e["id"] for tier in memory.cache_state().values() for e in tier}

    try:
        for round_ in range(UPDATES // 20):
            # every secret is among the recallers' results (limit 50) until forgotten
            ids = memory.remember_batch([f"zebra topic secret {round_} {i}" for i in range(20)])
            for memory_id in ids:
                memory.forget(memory_id)
                forgotten.add(memory_id)
                leaked += sorted(in_l1() & forgotten)
                with pytest.raises(NotFoundError):
                    memory.get(memory_id)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert not errors, errors[:1]
    leaked += sorted(in_l1() & forgotten)
    assert leaked == [], f"forgotten text left in L1 {len(leaked)} times"
