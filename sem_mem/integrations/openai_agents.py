"""OpenAI Agents SDK: a ``Session`` kept by Sem-Mem, and memory tools for an ``Agent``.

::

    from agents import Agent, Runner
    from sem_mem.integrations.openai_agents import SemMemSession, memory_tools

    session = SemMemSession("chat-42", storage_dir="./local_memory")
    agent = Agent(name="assistant", tools=memory_tools(session.memory))
    result = await Runner.run(agent, "I am vegetarian", session=session)

How a session is stored. The SDK hands a session *items*: messages, and other things
such as function calls and their outputs, reasoning and web searches. Every item is
kept exactly as given, in order, so ``get_items`` gives the model back the history it
needs (a function call without its output would be refused by the API). Only what
people said should become memory, though, so the items go to two places:

* the **history** of the session: every item, as JSON, in a private namespace beside
  the memory's own (``<namespace>#agents-session-items``, one thread per session, never
  returned by recall in the memory's namespace);
* the **turns**: the text of each user, assistant, system or developer message is saved
  with :meth:`SemanticMemory.remember_conversation` in the memory's own namespace, with
  ``thread_id=session_id``, so past sessions are recallable memories (``recall`` finds
  them and lifts the turns around a hit). A message whose content has no text (an image
  only) and every other kind of item is history only.

``pop_item`` removes the last item from the history and then its turn, if it had one
(two processes popping at once each get a different item); ``clear_session`` removes
both for this session only. History is written before the turns and removed before
them: if the process dies between the two, the conversation is intact, and only the
newest turns are not yet recallable (or a popped item's turn still is).
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Mapping, Sequence
from typing import Any, cast

from ..core import MAX_RECALL_LIMIT, SemanticMemory
from ..errors import NotFoundError, ValidationError
from ._common import companion, missing_extra, open_memory, sibling

try:
    from agents import FunctionTool, function_tool
    from agents.memory import SessionSettings
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise missing_extra("The OpenAI Agents SDK", "openai-agents", exc) from exc

__all__ = ["HISTORY_KIND", "SemMemSession", "memory_tools", "message_text"]

#: the companion namespace that holds every session's items
HISTORY_KIND = "agents-session-items"
_ITEM = "agents_item"  # history metadata: the item itself
_LINK = "agents_item_id"  # turn metadata: the history memory it came from
_ROLES = ("user", "assistant", "system", "developer")
_TEXT_PARTS = ("input_text", "output_text", "text")
#: the embedded text of a history entry: a few distinct strings, so embedded once each
_LABEL = "agents session item: {}"


def message_text(item: Mapping[str, Any]) -> tuple[str, str] | None:
    """(role, text) of a message item with text, else None (tool calls, images, ...)."""
    role = item.get("role")
    if role not in _ROLES or item.get("type", "message") != "message":
        return None
    content = item.get("content")
    if isinstance(content, str):
        text = content
    elif isinstance(content, list):
        text = "\n".join(
            str(part.get("text", ""))
            for part in content
            if isinstance(part, Mapping) and part.get("type") in _TEXT_PARTS
        )
    else:
        return None
    return (str(role), text) if text.strip() else None


class SemMemSession:
    """The SDK's ``Session`` protocol on Sem-Mem, for one ``session_id``.

    ``memory``: a ``SemanticMemory`` or ``AsyncSemanticMemory`` whose namespace the
    session lives in (left open by :meth:`close`); without one, a memory is opened on
    ``storage_dir`` or ``database_url`` with any other ``SemanticMemory`` keyword argument
    and closed by :meth:`close`. ``session_settings``: the SDK's (e.g. a default
    ``limit`` for ``get_items``).
    """

    session_settings: SessionSettings | None = None

    def __init__(
        self,
        session_id: str,
        memory: Any = None,
        *,
        storage_dir: str | None = None,
        database_url: str | None = None,
        session_settings: SessionSettings | None = None,
        **memory_kwargs: Any,
    ) -> None:
        if not isinstance(session_id, str) or not session_id.strip():
            raise ValidationError("session_id must be a non-empty string")
        self.session_id = session_id
        self.session_settings = session_settings or SessionSettings()
        self.memory, self._owns_memory = open_memory(
            memory, storage_dir, database_url, **memory_kwargs
        )
        try:
            self.history = sibling(self.memory, companion(self.memory.namespace, HISTORY_KIND))
        except BaseException:
            if self._owns_memory:
                self.memory.close()
            raise
        self._lock = threading.Lock()  # one writer at a time keeps positions in order

    def close(self) -> None:
        self.history.close()
        if self._owns_memory:
            self.memory.close()

    def __repr__(self) -> str:
        return f"SemMemSession({self.session_id!r}, namespace={self.memory.namespace!r})"

    # ------------------------------------------------------------------ Session protocol

    async def get_items(self, limit: int | None = None) -> list[Any]:
        """The session's items in order; with ``limit``, the latest ``limit`` of them."""
        if limit is None and self.session_settings is not None:
            limit = self.session_settings.limit
        return await asyncio.to_thread(self.items, limit)

    async def add_items(self, items: list[Any]) -> None:
        """Append items to the history, and their message text to the recallable turns."""
        await asyncio.to_thread(self.add, items)

    async def pop_item(self) -> Any | None:
        """Remove and return the newest item (None when the session is empty)."""
        return await asyncio.to_thread(self.pop)

    async def clear_session(self) -> None:
        """Forget this session's history and turns (other sessions are untouched)."""
        await asyncio.to_thread(self.clear)

    # ------------------------------------------------------------------ the work (sync)

    def items(self, limit: int | None = None) -> list[Any]:
        if limit is not None and limit <= 0:
            return []
        entries = self._history(newest_first=limit is not None, limit=limit)
        if limit is not None:
            entries.reverse()
        return [json.loads(m.metadata[_ITEM]) for m in entries]

    def add(self, items: Sequence[Any]) -> None:
        if not items:
            return
        plain = [_plain(item, i) for i, item in enumerate(items)]
        with self._lock:
            ids = self.history.remember_conversation(
                [
                    {
                        "speaker": "item",
                        "text": _LABEL.format(item.get("type", "message")),
                        "metadata": {_ITEM: json.dumps(item, ensure_ascii=False)},
                    }
                    for item in plain
                ],
                thread_id=self.session_id,
                dedupe=False,
            )
            turns = []
            for history_id, item in zip(ids, plain, strict=True):
                said = message_text(item)
                if said is not None:
                    role, text = said
                    turns.append({"speaker": role, "text": text, "metadata": {_LINK: history_id}})
            if turns:
                self.memory.remember_conversation(turns, thread_id=self.session_id, dedupe=False)

    def pop(self) -> Any | None:
        with self._lock:
            while True:
                newest = self._history(newest_first=True, limit=1)
                if not newest:
                    return None
                entry = newest[0]
                # forgetting the history entry is the claim: when another process pops
                # at the same moment only one of the two deletes it; the other tries
                # the next newest, so no item is returned twice and none is skipped
                try:
                    self.history.forget(entry.id)
                except NotFoundError:
                    continue
                self._forget_turns(self.memory.list(metadata={_LINK: entry.id}, limit=10))
                return json.loads(entry.metadata[_ITEM])

    def clear(self) -> None:
        with self._lock:
            while True:
                page = self.history.list(thread_id=self.session_id, limit=1000)
                for entry in page:
                    self._forget(self.history, entry.id)
                if len(page) < 1000:
                    break
            while True:
                turns = self.memory.list(thread_id=self.session_id, limit=1000)
                self._forget_turns(turns)
                if len(turns) < 1000:
                    break

    def _history(self, *, newest_first: bool, limit: int | None) -> list[Any]:
        out: list[Any] = []
        while limit is None or len(out) < limit:
            size = 10_000 if limit is None else min(10_000, limit - len(out))
            page = self.history.list(
                thread_id=self.session_id,
                newest_first=newest_first,
                limit=size,
                offset=len(out),
            )
            out += page
            if len(page) < size:
                break
        return out

    def _forget_turns(self, turns: Sequence[Any]) -> None:
        for turn in turns:
            if turn.thread_id == self.session_id:
                self._forget(self.memory, turn.id)

    @staticmethod
    def _forget(memory: SemanticMemory, memory_id: str) -> None:
        try:
            memory.forget(memory_id)
        except NotFoundError:  # another process forgot it first
            pass


def _plain(item: Any, index: int) -> dict[str, Any]:
    """A JSON-safe dict of an item (the SDK passes dicts; pydantic models are dumped)."""
    if hasattr(item, "model_dump"):
        item = item.model_dump(exclude_unset=True, mode="json")
    if not isinstance(item, Mapping):
        raise ValidationError(f"items[{index}] must be a dict, got {type(item).__name__}")
    try:
        return json.loads(json.dumps(item, allow_nan=False))  # type: ignore[no-any-return]
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"items[{index}] is not JSON-serialisable: {exc}") from exc


def memory_tools(
    memory: Any, *, limit: int = 5, session: SemMemSession | None = None
) -> list[FunctionTool]:
    """``remember``, ``recall`` and ``forget`` as SDK function tools on ``memory``.

    ``memory`` is a ``SemanticMemory`` or ``AsyncSemanticMemory``; the tools read and
    write its namespace only. ``recall`` returns at most ``limit`` memories. With
    ``session``, ``recall`` leaves out that session's own turns: the model already has
    them in its context, and they would crowd out what it does not know.
    """
    engine, _ = open_memory(memory, None, None)

    def search(query: str) -> list[Any]:
        if session is None:
            return engine.recall(query, limit)
        own = len(engine.list(thread_id=session.session_id, limit=MAX_RECALL_LIMIT))
        # cast: core's ``def list`` hides the builtin from mypy in its annotations
        hits = cast("list[Any]", engine.recall(query, min(MAX_RECALL_LIMIT, limit + own)))
        return [h for h in hits if h.thread_id != session.session_id][:limit]

    @function_tool
    async def remember(text: str) -> str:
        """Store a fact worth keeping across conversations (a preference, a decision, who
        someone is). Returns the new memory's id.

        Args:
            text: The fact, as one self-contained sentence.
        """
        memory_id = await asyncio.to_thread(engine.remember, text)
        return f"remembered (id {memory_id})"

    @function_tool
    async def recall(query: str) -> str:
        """Search long-term memory; returns the most relevant memories as JSON, best first.

        Args:
            query: What to look for, in plain words.
        """
        hits = await asyncio.to_thread(search, query)
        return json.dumps(
            [{"id": h.id, "text": h.text, "score": round(h.score, 4)} for h in hits],
            ensure_ascii=False,
        )

    @function_tool
    async def forget(memory_id: str) -> str:
        """Delete one memory for good (use the id that recall returned).

        Args:
            memory_id: The id of the memory to delete.
        """
        await asyncio.to_thread(engine.forget, memory_id)
        return f"forgot {memory_id}"

    return [remember, recall, forget]
