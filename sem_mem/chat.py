"""Memory-aware chat: retrieval, instructions, the model call, then auto-memory.

One turn of :func:`chat_with_memory`:

1. **Recall** the memories most relevant to the message (hybrid search), with query
   expansion when a chat model is configured (one small extra call, cached).
2. **Instructions**: the memory-aware system context, the persistent instructions,
   today's date and the memories framed as untrusted data
   (:func:`sem_mem.llm.prompts.build_instructions`).
3. **Answer** with the chat model: the local ``thread`` plus the new message, and
   ``previous_response_id`` where the provider keeps server-side state (the
   Responses API); Chat Completions servers get the whole thread instead.
4. **Auto-memory** (:func:`remember_exchange`): heuristics first, the small judge model
   for ambiguous exchanges, then a distilled fact stored with ``source="auto"``. A
   near-duplicate of an existing memory refreshes it instead of adding a copy; a
   correction supersedes the memory it corrects (kept in history, out of recall).

Memory-only mode (no key, no base URL): steps 1 and 4 still run (auto-memory with
heuristics only) and the "answer" is a one-line notice plus the memories found.

Every step appends a line to ``logs`` so a UI can show what happened.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .auto_memory import AutoMemory, SalienceVerdict, correction_target, is_correction
from .errors import LLMError, SemMemError
from .llm.base import ChatMessage, ChatModel, ChatResult
from .llm.prompts import build_instructions, memory_date
from .types import Recollection

if TYPE_CHECKING:
    from .core import SemanticMemory

__all__ = [
    "AUTO_SOURCES_SUPERSEDABLE",
    "DUPLICATE_SIMILARITY",
    "MEMORY_ONLY_NOTICE",
    "SUPERSEDE_SIMILARITY",
    "chat_with_memory",
    "describe_model",
    "memory_only_answer",
    "remember_exchange",
]

log = logging.getLogger("sem_mem.chat")

#: A new auto fact at least this similar (cosine) to an existing memory refreshes that
#: memory instead of being stored. With MiniLM, restatements ("The user lives in Boston."
#: / "the user lives in boston!") score 0.95, paraphrases 0.87-0.88 and facts that differ
#: in one value ("name is Sam" / "name is Samantha") 0.75: 0.92 only merges restatements,
#: since a missed duplicate costs a copy while a false one would lose a fact.
DUPLICATE_SIMILARITY = 0.92
#: A correction supersedes the active memory most similar to it (or to the old value it
#: names) when that similarity reaches this. With MiniLM, "The user moved to Chicago."
#: scores 0.57 against "The user lives in Boston." and 0.15-0.33 against unrelated facts.
SUPERSEDE_SIMILARITY = 0.5
#: Only memories from these sources can be superseded by a correction in chat
#: (never document chunks, saved threads or imports).
AUTO_SOURCES_SUPERSEDABLE: tuple[str, ...] = ("auto", "manual")

MEMORY_ONLY_NOTICE = (
    "Memory-only mode: no chat model is configured. Set OPENAI_API_KEY (api_key=) for "
    "OpenAI, or OPENAI_BASE_URL (base_url=) for an OpenAI-compatible server such as Ollama."
)

_STALE_RESPONSE_CODE = "previous_response_not_found"


def describe_model(chat_model: ChatModel) -> str:
    """``"gpt-5.1 (ResponsesChatModel at api.openai.com)"`` for logs; never a key."""
    host = getattr(chat_model, "host", None)
    where = f" at {host}" if host else ""
    return f"{chat_model.model or '?'} ({type(chat_model).__name__}{where})"


def memory_only_answer(memories: Sequence[Recollection]) -> str:
    """The memory-only "answer": :data:`MEMORY_ONLY_NOTICE` and the memories found."""
    if not memories:
        return f"{MEMORY_ONLY_NOTICE}\nNo relevant memories found."
    lines = [MEMORY_ONLY_NOTICE, "Relevant memories:"]
    lines += [f"- [{memory_date(m.happened_at)}] {m.text}" for m in memories]
    return "\n".join(lines)


def chat_with_memory(
    memory: SemanticMemory,
    query: str,
    *,
    previous_response_id: str | None = None,
    thread: Sequence[ChatMessage] | None = None,
    model: str | None = None,
    reasoning_effort: str | None = None,
    temperature: float | None = None,
    web_search: bool | None = None,
    auto_remember: bool | None = None,
    expand_query: bool = True,
    limit: int = 5,
) -> tuple[str, str | None, list[Recollection], list[str]]:
    """Answer ``query`` with the relevant memories and the persistent instructions.

    Returns ``(response, response_id, memories, logs)``. ``response_id`` is the
    provider's id to pass back as ``previous_response_id`` next turn (``None`` for
    Chat Completions servers and in memory-only mode). ``thread`` is the conversation
    so far (oldest first, without the new message); ``web_search`` and
    ``auto_remember`` default to the memory's settings. Web search is skipped, with a
    line in ``logs``, when the provider has no web search tool.

    Chat-model failures are raised as :class:`~sem_mem.errors.LLMError` subclasses;
    nothing is remembered for a turn that failed.
    """
    logs: list[str] = []
    chat_model = memory.chat_model
    memories = memory.recall(
        query, limit=limit, expand_query=expand_query and chat_model is not None, logs=logs
    )
    logs.append(f"memories: {len(memories)} retrieved")
    remember = memory.settings.auto_memory if auto_remember is None else auto_remember

    if chat_model is None:
        logs.append("memory-only mode: no chat model configured")
        if remember:
            remember_exchange(memory, query, "", chat_model=None, logs=logs)
        else:
            logs.append("auto-memory: off for this call")
        return memory_only_answer(memories), None, memories, logs

    search = memory.settings.web_search if web_search is None else bool(web_search)
    if search and not chat_model.supports_web_search:
        logs.append(
            f"web search: not available with {describe_model(chat_model)}; answered without it"
        )
        search = False
    previous = previous_response_id
    if previous and not chat_model.supports_previous_response_id:
        logs.append(
            "previous_response_id ignored: the provider keeps no server-side state "
            "(the local thread carries the conversation)"
        )
        previous = None
    messages = [*(thread or ()), ChatMessage("user", query)]
    instructions = build_instructions(
        instructions=memory.instructions, memories=memories, today=dt.date.today()
    )
    call: dict[str, Any] = {
        "instructions": instructions,
        "model": model,
        "reasoning_effort": reasoning_effort,
        "temperature": temperature,
        "web_search": search,
    }
    try:
        result = chat_model.respond(messages=messages, previous_response_id=previous, **call)
    except LLMError as exc:
        if not (previous and len(messages) > 1 and _is_stale_response_id(exc)):
            raise
        logs.append("previous_response_id unknown to the provider: resent the whole thread")
        result = chat_model.respond(messages=messages, previous_response_id=None, **call)
    logs.append(_model_line(chat_model, result, search, previous))
    if remember:
        remember_exchange(memory, query, result.text, chat_model=chat_model, logs=logs)
    else:
        logs.append("auto-memory: off for this call")
    return result.text, result.response_id, memories, logs


def _is_stale_response_id(exc: LLMError) -> bool:
    """True when the provider rejected ``previous_response_id`` as unknown (by error code)."""
    return getattr(exc.__cause__, "code", None) == _STALE_RESPONSE_CODE


def _model_line(
    chat_model: ChatModel, result: ChatResult, search: bool, previous: str | None
) -> str:
    parts = [f"model: {result.model or chat_model.model}"]
    if previous:
        parts.append("continued from previous_response_id")
    if search:
        parts.append("web search on")
    if result.usage.get("total_tokens"):
        parts.append(f"{result.usage['total_tokens']} tokens")
    return ", ".join(parts)


# --------------------------------------------------------------------------- auto-memory


def _normalised(text: str) -> str:
    return re.sub(r"[\W_]+", " ", text.casefold()).strip()


def remember_exchange(
    memory: SemanticMemory,
    user_text: str,
    assistant_text: str = "",
    *,
    chat_model: ChatModel | None,
    logs: list[str] | None = None,
) -> str | None:
    """Auto-memory for one exchange; returns the id stored or refreshed, or ``None``.

    Heuristics first; with a ``chat_model``, the small judge decides ambiguous cases
    and the fact is distilled by it (``settings.expansion_model``). Then:

    * a fact equal (ignoring case and punctuation) or at least
      :data:`DUPLICATE_SIMILARITY` similar to an active memory refreshes that memory;
    * otherwise it is stored with ``source="auto"``, and when the message is a
      correction the most similar active ``auto``/``manual`` memory (to the fact or to
      the old value the user named, at least :data:`SUPERSEDE_SIMILARITY`) is
      superseded by it: kept in history, out of recall.

    Never raises a :class:`~sem_mem.errors.SemMemError`: auto-memory is opportunistic,
    so a failure is logged and reported in ``logs``.
    """
    logs = logs if logs is not None else []
    try:
        return _remember_exchange(memory, user_text, assistant_text, chat_model, logs)
    except SemMemError as exc:
        log.warning("auto-memory failed: %s", exc)
        logs.append(f"auto-memory failed ({type(exc).__name__}): {exc}")
        return None


def _remember_exchange(
    memory: SemanticMemory,
    user_text: str,
    assistant_text: str,
    chat_model: ChatModel | None,
    logs: list[str],
) -> str | None:
    auto = AutoMemory(chat_model, judge_model=memory.expander.small_model)
    verdict = auto.evaluate(user_text, assistant_text)
    if not verdict.salient:
        logs.append(f"auto-memory: nothing saved ({verdict.reason})")
        return None
    fact = auto.distill(user_text, assistant_text, verdict)
    if not fact:
        logs.append(f"auto-memory: {verdict.kind}, but nothing durable to store")
        return None
    correction = verdict.kind == "correction" or is_correction(user_text)
    neighbours = memory.recall(fact, limit=3, mode="vector", record_hits=False, rerank=False)
    duplicate = _duplicate_of(fact, neighbours, near=not correction)
    if duplicate is not None:
        memory.remember(duplicate.text, duplicate.metadata, source=duplicate.source)
        logs.append(
            f"auto-memory: refreshed {duplicate.id} instead of adding a duplicate "
            f"(similarity {duplicate.similarity:.2f}): {duplicate.text}"
        )
        return duplicate.id
    metadata = {"kind": verdict.kind, "confidence": round(verdict.confidence, 2)}
    new_id = memory.remember(fact, metadata, source="auto")
    logs.append(f"auto-memory: saved {verdict.kind} ({_why(verdict)}): {fact}")
    if correction:
        _supersede_corrected(memory, user_text, fact, new_id, verdict, neighbours, logs)
    return new_id


def _why(verdict: SalienceVerdict) -> str:
    return verdict.reason if len(verdict.reason) <= 160 else verdict.reason[:157] + "..."


def _duplicate_of(
    fact: str, neighbours: Sequence[Recollection], *, near: bool
) -> Recollection | None:
    """The neighbour ``fact`` restates: same normalised text, or (``near``) very similar."""
    key = _normalised(fact)
    for candidate in neighbours:
        if _normalised(candidate.text) == key:
            return candidate
    if near and neighbours and neighbours[0].similarity >= DUPLICATE_SIMILARITY:
        return neighbours[0]
    return None


def _supersede_corrected(
    memory: SemanticMemory,
    user_text: str,
    fact: str,
    new_id: str,
    verdict: SalienceVerdict,
    neighbours: Sequence[Recollection],
    logs: list[str],
) -> None:
    hint = verdict.supersedes_hint or correction_target(user_text)
    candidates = list(neighbours)
    if hint and _normalised(hint):
        candidates += memory.recall(hint, limit=3, mode="vector", record_hits=False, rerank=False)
    best: Recollection | None = None
    for candidate in candidates:
        if candidate.id == new_id or candidate.source not in AUTO_SOURCES_SUPERSEDABLE:
            continue
        if best is None or candidate.similarity > best.similarity:
            best = candidate
    if best is None or best.similarity < SUPERSEDE_SIMILARITY:
        logs.append(f"auto-memory: correction, but no earlier memory matched {hint or fact!r}")
        return
    memory.supersede(best.id, new_id, reason=f"auto-memory correction: {user_text[:200]}")
    logs.append(
        f"auto-memory: superseded {best.id} (similarity {best.similarity:.2f}): {best.text}"
    )
