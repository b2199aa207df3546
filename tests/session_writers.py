"""A process that chats in one stored session, in step with another (for tests).

:func:`write_turns` runs in a spawned process: each round it loads the session, answers
one message through the fake OpenAI server, then waits at a barrier shared with the
other writer, so both have read the same stored session before either saves it. That
is the instant at which a read-modify-write of the whole session loses a turn.
"""

from __future__ import annotations

from typing import Any

__all__ = ["chat_memory", "write_turns"]


def chat_memory(target: dict[str, str], base_url: str) -> Any:
    """A memory of namespace ``alice`` on ``target`` (``storage_dir=`` or ``database_url=``)
    that answers through the Responses API of the fake server at ``base_url``."""
    from embedders import HashingEmbedder

    from sem_mem import SemanticMemory

    return SemanticMemory(
        embedder=HashingEmbedder(),
        namespace="alice",
        api_key="sk-test",
        base_url=base_url,
        chat_model="llama3.1",
        chat_api="responses",
        auto_memory=False,
        **target,
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
