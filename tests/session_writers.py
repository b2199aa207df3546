"""Processes that write one stored session or thread in step with another (for tests).

Each function runs in a spawned process and waits at a barrier shared with the other
writer at the instant a read-then-write races: both have read the stored state and
neither has written yet.

* :func:`write_turns`: a :class:`ChatSession` loaded, answered through the fake OpenAI
  server, then saved (a read-modify-write of the whole session).
* :func:`append_turns`: turns without positions appended to one thread with
  ``remember_conversation`` (both have read where the thread ends).
* :func:`add_session_items`: items added to one OpenAI Agents ``SemMemSession``.
* :func:`pop_session_items`: items popped from one ``SemMemSession`` by two processes
  that start together (each pop reads the newest item, then removes it).

The barrier of the last two is in their embedder (:class:`embedders.BarrierEmbedder`):
turns are embedded after the thread's end could be read and before they are written.
Every acknowledged write is reported on ``acked`` (a ``multiprocessing`` queue).
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Sequence
from typing import Any

__all__ = [
    "SPAWN",
    "THREAD",
    "add_session_items",
    "append_turns",
    "chat_memory",
    "pop_session_items",
    "run_processes",
    "write_turns",
]

#: spawned, never forked: each writer opens its own connections, like another process
SPAWN = multiprocessing.get_context("spawn")


def run_processes(jobs: Sequence[tuple[Callable[..., None], tuple[Any, ...]]]) -> None:
    """Run each ``(function, args)`` in its own spawned process, all at once; wait for
    every one and fail unless each exited cleanly."""
    processes = [SPAWN.Process(target=function, args=args) for function, args in jobs]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=300)
    assert [p.exitcode for p in processes] == [0] * len(processes)


#: the thread (and agents session) both writers append to
THREAD = "shared"


def memory_on(target: dict[str, str], **kwargs: Any) -> Any:
    """A memory of namespace ``alice`` on ``target`` (``storage_dir=`` or ``database_url=``)
    with a hashing embedder (``embedder=`` replaces it)."""
    from embedders import HashingEmbedder

    from sem_mem import SemanticMemory

    kwargs.setdefault("embedder", HashingEmbedder())
    return SemanticMemory(namespace="alice", auto_memory=False, **target, **kwargs)


def chat_memory(target: dict[str, str], base_url: str) -> Any:
    """:func:`memory_on` answering through the Responses API of the fake server at
    ``base_url``."""
    return memory_on(
        target,
        api_key="sk-test",
        base_url=base_url,
        chat_model="llama3.1",
        chat_api="responses",
    )


def write_turns(
    target: dict[str, str], base_url: str, name: str, rounds: int, barrier: Any
) -> None:
    """``rounds`` turns ``"<name> says <n>"`` in session ``shared``, each saved in step
    with the other writer (``barrier`` is a ``multiprocessing.Barrier(2)``)."""
    from sem_mem.conversation import ChatSession

    try:
        with chat_memory(target, base_url) as memory:
            for n in range(rounds):
                session = ChatSession.load(memory, "shared", create=True)
                session.send(f"{name} says {n}")
                barrier.wait(timeout=120)  # both have read the session and answered
                session.persist()
    except BaseException:
        barrier.abort()  # the other writer fails at once instead of waiting
        raise


def batch_of(name: str, round_: int, size: int) -> list[dict[str, str]]:
    """What :func:`append_turns` appends in one call: ``size`` turns of ``name``, the
    last one the same words for every writer (``"noted"``)."""
    turns = [{"speaker": name, "text": f"{name} round {round_} turn {i}"} for i in range(size - 1)]
    return [*turns, {"speaker": "Bot", "text": "noted"}]


def append_turns(
    target: dict[str, str], name: str, rounds: int, size: int, barrier: Any, acked: Any
) -> None:
    """``rounds`` calls ``remember_conversation(batch_of(name, r, size))`` on thread
    :data:`THREAD`, no positions given; puts ``(name, round, ids)`` on ``acked`` after
    each returned."""
    from embedders import BarrierEmbedder

    try:
        with memory_on(target, embedder=BarrierEmbedder(barrier)) as memory:
            for r in range(rounds):
                ids = memory.remember_conversation(batch_of(name, r, size), thread_id=THREAD)
                acked.put((name, r, ids))
    except BaseException:
        barrier.abort()
        raise


def session_items(name: str, round_: int) -> list[dict[str, Any]]:
    """What :func:`add_session_items` adds in one call: a question, a tool call and its
    output (history only), and the answer."""
    call = f"call_{name}_{round_}"
    return [
        {"role": "user", "content": f"{name} asks question {round_}"},
        {"type": "function_call", "call_id": call, "name": "lookup", "arguments": "{}"},
        {"type": "function_call_output", "call_id": call, "output": f"{name} found {round_}"},
        {"role": "assistant", "content": f"{name} hears answer {round_}"},
    ]


def add_session_items(
    target: dict[str, str], name: str, rounds: int, barrier: Any, acked: Any
) -> None:
    """``rounds`` ``add_items(session_items(name, r))`` on the agents session
    :data:`THREAD`; puts ``(name, round)`` on ``acked`` after each returned."""
    import asyncio

    from embedders import BarrierEmbedder

    from sem_mem.integrations.openai_agents import SemMemSession

    try:
        with memory_on(target, embedder=BarrierEmbedder(barrier)) as memory:
            session = SemMemSession(THREAD, memory)
            for r in range(rounds):
                asyncio.run(session.add_items(session_items(name, r)))
                acked.put((name, r))
            session.close()
    except BaseException:
        barrier.abort()
        raise


def pop_session_items(target: dict[str, str], count: int, barrier: Any, popped: Any) -> None:
    """``count`` ``pop_item()`` on the agents session :data:`THREAD`, started together
    with the other process (``barrier``); puts each popped item's content on ``popped``."""
    import asyncio

    from sem_mem.integrations.openai_agents import SemMemSession

    try:
        with memory_on(target) as memory:
            session = SemMemSession(THREAD, memory)
            barrier.wait(timeout=120)
            for _ in range(count):
                item = asyncio.run(session.pop_item())
                popped.put(None if item is None else item["content"])
            session.close()
    except BaseException:
        barrier.abort()
        raise
