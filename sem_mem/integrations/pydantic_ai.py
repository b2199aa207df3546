"""Pydantic AI: a toolset that gives an agent Sem-Mem as its long-term memory.

::

    from pydantic_ai import Agent
    from sem_mem import SemanticMemory
    from sem_mem.integrations.pydantic_ai import memory_toolset

    agent = Agent("openai:gpt-5.1", toolsets=[memory_toolset(SemanticMemory("./local_memory"))])

The toolset holds three tools, ``remember``, ``recall`` and ``forget``, with typed
arguments; their docstrings are the tool descriptions the model sees. They read and
write the memory's namespace only (give each user a ``SemanticMemory(...,
namespace=user_id)``, or an ``AsyncSemanticMemory``). Bad arguments (an empty text, an
unknown id) come back to the model as a retry prompt that says what was wrong, as Pydantic
AI expects (``ModelRetry``), instead of failing the run.
"""

from __future__ import annotations

import asyncio
from typing import Any

from typing_extensions import TypedDict  # pydantic needs it on Python < 3.12

from ..errors import NotFoundError, ValidationError
from ._common import missing_extra, open_memory

try:
    from pydantic_ai import ModelRetry
    from pydantic_ai.toolsets import FunctionToolset
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise missing_extra("Pydantic AI", "pydantic-ai", exc) from exc

__all__ = ["RecalledMemory", "memory_toolset"]


class RecalledMemory(TypedDict):
    """One result of the ``recall`` tool."""

    id: str
    text: str
    score: float
    timestamp: str


def memory_toolset(memory: Any, *, limit: int = 5, id: str = "sem-mem") -> FunctionToolset[Any]:
    """A ``FunctionToolset`` with ``remember``, ``recall`` and ``forget`` on ``memory``.

    ``memory``: a ``SemanticMemory`` or ``AsyncSemanticMemory``. ``limit``: the most
    memories ``recall`` may return. ``id``: the toolset's id (Pydantic AI needs one
    to tell toolsets apart in durable execution).
    """
    engine, _ = open_memory(memory, None, None)

    async def remember(text: str) -> str:
        """Store a fact worth keeping across conversations: a preference, a decision,
        who someone is. Returns the new memory's id.

        Args:
            text: The fact, as one self-contained sentence.
        """
        try:
            return await asyncio.to_thread(engine.remember, text)
        except ValidationError as exc:
            raise ModelRetry(str(exc)) from exc

    async def recall(query: str, max_results: int = limit) -> list[RecalledMemory]:
        """Search long-term memory for what is relevant to a question, best first.

        Args:
            query: What to look for, in plain words.
            max_results: How many memories to return at most.
        """
        try:
            hits = await asyncio.to_thread(engine.recall, query, max(1, min(max_results, limit)))
        except ValidationError as exc:
            raise ModelRetry(str(exc)) from exc
        return [
            RecalledMemory(
                id=h.id, text=h.text, score=round(h.score, 4), timestamp=h.happened_at.isoformat()
            )
            for h in hits
        ]

    async def forget(memory_id: str) -> str:
        """Delete one memory for good, by the id that recall or remember returned.

        Args:
            memory_id: The id of the memory to delete.
        """
        try:
            await asyncio.to_thread(engine.forget, memory_id)
        except NotFoundError as exc:
            raise ModelRetry(str(exc)) from exc
        return f"forgot {memory_id}"

    return FunctionToolset([remember, recall, forget], id=id)
