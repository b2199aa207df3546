"""Two processes writing one stored session at the same instant lose nothing.

Each writer is a real OS process (``multiprocessing``, spawned) on the same SQLite
folder or the same PostgreSQL database; a barrier holds both after they have read the
session, so every write races another one that read the same version.

* A :class:`ChatSession`: afterwards every turn of both is in the session, each
  question next to its answer, and the next turn sends the provider the whole merged
  thread.
* An OpenAI Agents ``SemMemSession``: every item of both is in the session's history,
  each ``add_items`` call's items together and in order, and so are the recallable turns.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from chat_wire import assert_carries, turn_bodies
from fake_openai import FakeOpenAI
from pg_server import cluster_or_skip
from session_writers import (
    SPAWN,
    THREAD,
    add_session_items,
    chat_memory,
    memory_on,
    pop_session_items,
    run_processes,
    session_items,
    write_turns,
)

from sem_mem.conversation import ChatSession

ROUNDS = 3
WRITERS = ("ana", "ben")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, str]]:
    """Where both processes keep the session: a SQLite folder or a PostgreSQL database."""
    if request.param == "sqlite":
        yield {"storage_dir": str(tmp_path / "store")}
        return
    with cluster_or_skip().database() as url:
        yield {"database_url": url, "storage_dir": str(tmp_path / "unused")}


@pytest.mark.slow  # two spawned processes racing three rounds
def test_two_processes_saving_one_session_at_once_keep_every_turn(
    target: dict[str, str],
) -> None:
    with FakeOpenAI(api_key="sk-test") as fake:
        with chat_memory(target, fake.base_url):
            pass  # the schema exists before the writers start
        barrier = SPAWN.Barrier(len(WRITERS))
        run_processes(
            [(write_turns, (target, fake.base_url, name, ROUNDS, barrier)) for name in WRITERS]
        )

        with chat_memory(target, fake.base_url) as memory:
            session = ChatSession.load(memory, "shared")
            roles = [m.role for m in session.thread]
            assert roles == ["user", "assistant"] * (ROUNDS * len(WRITERS))
            said = [m.content for m in session.thread if m.role == "user"]
            # every turn of both, each question right before its own answer
            assert sorted(said) == sorted(f"{w} says {n}" for w in WRITERS for n in range(ROUNDS))
            for question, answer in zip(session.thread[::2], session.thread[1::2], strict=True):
                assert question.content in answer.content
            # in order: a round's two turns were saved before the next round's
            for n in range(ROUNDS):
                assert sorted(said[2 * n : 2 * n + 2]) == [f"{w} says {n}" for w in WRITERS]

            # the provider never saw the two racing turns together: the next turn sends
            # the whole thread, and the one after continues from its answer again
            reply = session.send("What did we say?")
            sent = turn_bodies(fake)[-1]
            assert sent.get("previous_response_id") is None
            assert all(text in json.dumps(sent["input"]) for text in said)
            session.persist()
            again = ChatSession.load(memory, "shared")
            again.send("And then?")
            assert_carries(turn_bodies(fake)[-1], "What did we say?", reply.response_id)


@pytest.mark.slow  # two spawned processes
def test_two_processes_adding_items_to_one_agents_session_at_once_keep_every_item(
    target: dict[str, str],
) -> None:
    pytest.importorskip("agents")
    from agents.memory import SessionSettings

    from sem_mem.integrations.openai_agents import SemMemSession

    with memory_on(target):
        pass  # the schema and embedding space exist before the writers start
    rounds = 3
    barrier, acked = SPAWN.Barrier(len(WRITERS)), SPAWN.Queue()
    run_processes([(add_session_items, (target, name, rounds, barrier, acked)) for name in WRITERS])
    done = sorted(acked.get(timeout=10) for _ in range(len(WRITERS) * rounds))
    assert done == sorted((name, r) for name in WRITERS for r in range(rounds))

    with memory_on(target) as memory:
        session = SemMemSession(THREAD, memory, session_settings=SessionSettings())
        items = session.items()
        size = len(session_items("x", 0))
        # every item of both, each call's items together and in order, rounds in order
        assert len(items) == size * len(WRITERS) * rounds
        calls = [items[i : i + size] for i in range(0, len(items), size)]
        seen: dict[str, int] = {}
        for call in calls:
            name = call[0]["content"].split()[0]
            assert call == session_items(name, seen.get(name, 0))
            seen[name] = seen.get(name, 0) + 1
        assert seen == dict.fromkeys(WRITERS, rounds)
        # the recallable turns (written after the history, so the writers may take
        # turns in the other order): each question right before its own answer, each
        # writer's rounds in order
        turns = memory.list(thread_id=THREAD, newest_first=False, limit=100)
        assert [t.position for t in turns] == list(range(2 * len(WRITERS) * rounds))
        pairs = [(q.text, a.text) for q, a in zip(turns[::2], turns[1::2], strict=True)]
        for name in WRITERS:
            assert [p for p in pairs if p[0].startswith(f"user: {name} ")] == [
                (f"user: {name} asks question {r}", f"assistant: {name} hears answer {r}")
                for r in range(rounds)
            ]
        session.close()


@pytest.mark.slow  # two spawned processes
def test_two_processes_popping_one_agents_session_at_once_each_get_other_items(
    target: dict[str, str],
) -> None:
    """Every item is popped exactly once: a pop that loses the race for the newest item
    takes the next one, instead of returning the item the other process removed."""
    pytest.importorskip("agents")
    import asyncio

    from sem_mem.integrations.openai_agents import SemMemSession

    total, each = 40, 20
    with memory_on(target) as memory:
        session = SemMemSession(THREAD, memory)
        asyncio.run(session.add_items([{"role": "user", "content": f"m{i}"} for i in range(total)]))
    barrier, popped = SPAWN.Barrier(2), SPAWN.Queue()
    run_processes([(pop_session_items, (target, each, barrier, popped))] * 2)
    got = [popped.get(timeout=10) for _ in range(2 * each)]
    assert sorted(got, key=lambda c: int(c[1:])) == [f"m{i}" for i in range(total)]
    with memory_on(target) as memory:
        assert SemMemSession(THREAD, memory).items() == []
        assert memory.list(thread_id=THREAD) == []  # their recallable turns went too
