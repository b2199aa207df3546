"""Query expansion: LLM-written rephrasings of a query, to widen recall.

:func:`expand_query` asks the memory's chat model (with the small
``settings.expansion_model``, ``gpt-4.1-mini`` by default) for ``n`` alternative
phrasings using :func:`sem_mem.llm.prompts.query_expansion_prompt`; ``recall``
embeds and searches each of them and fuses the rankings. Answers are cached per
memory in a bounded LRU keyed by ``(model, query, n)``, so asking the same thing
twice costs one call.

Expansion is an optimisation, never a requirement: with no chat model (memory-only
mode) or when the call fails, it returns ``[]`` (after a logged warning) and recall
goes on with the original query alone.

An OpenAI-compatible server (Ollama, vLLM) usually has no ``gpt-4.1-mini``: when the
expansion model is unknown to the provider (HTTP 404), the chat model's own model is
used instead from then on, for expansion and for the auto-memory judge alike (see
:func:`small_model`).
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .errors import LLMError, ModelNotFoundError
from .llm.prompts import parse_expansions, query_expansion_prompt

if TYPE_CHECKING:
    from .core import SemanticMemory

__all__ = ["CACHE_SIZE", "DEFAULT_EXPANSIONS", "clear_cache", "expand_query", "small_model"]

log = logging.getLogger("sem_mem.expansion")

#: how many alternative phrasings are asked for by default
DEFAULT_EXPANSIONS = 3
#: expansions kept per memory (least recently used dropped first)
CACHE_SIZE = 256

_UNSET = object()


@dataclass
class _State:
    """Per-memory expansion state: the LRU and the small model found to work."""

    cache: OrderedDict[tuple[str, str, int], list[str]] = field(default_factory=OrderedDict)
    #: ``_UNSET`` until a 404 says the configured small model is missing; then ``None``
    small_model: object = _UNSET
    lock: threading.Lock = field(default_factory=threading.Lock)


_states: weakref.WeakKeyDictionary[SemanticMemory, _State] = weakref.WeakKeyDictionary()
_states_lock = threading.Lock()


def _state(memory: SemanticMemory) -> _State:
    with _states_lock:
        state = _states.get(memory)
        if state is None:
            state = _states[memory] = _State()
        return state


def small_model(memory: SemanticMemory) -> str | None:
    """The model for small internal calls (expansion, salience judge, distillation).

    ``settings.expansion_model``, unless the provider said it does not know it; then
    ``None``, which means the chat model's own default model.
    """
    chosen = _state(memory).small_model
    if chosen is _UNSET:
        return memory.settings.expansion_model or None
    return None


def clear_cache(memory: SemanticMemory) -> None:
    """Forget the cached expansions of ``memory`` (and any small-model fallback)."""
    with _states_lock:
        _states.pop(memory, None)


def expand_query(memory: SemanticMemory, query: str, n: int = DEFAULT_EXPANSIONS) -> list[str]:
    """Up to ``n`` alternative phrasings of ``query`` (never the query itself).

    Returns ``[]`` without any call when the memory has no chat model, and ``[]``
    with a logged warning when the call fails; never raises an :class:`LLMError`.
    """
    chat_model = memory.chat_model
    query = query.strip()
    if chat_model is None or n <= 0 or not query:
        return []
    state = _state(memory)
    name = small_model(memory)
    key = (name or chat_model.model, query, n)
    with state.lock:
        cached = state.cache.get(key)
        if cached is not None:
            state.cache.move_to_end(key)
            return list(cached)
    prompt = query_expansion_prompt(query, n)
    try:
        try:
            reply = chat_model.complete(prompt, model=name)
        except ModelNotFoundError as exc:
            if name is None:
                raise
            log.warning(
                "expansion model %r is unknown to the provider (%s); using the chat model "
                "%r for query expansion and auto-memory from now on",
                name,
                exc,
                chat_model.model,
            )
            state.small_model = None
            key = (chat_model.model, query, n)
            reply = chat_model.complete(prompt, model=None)
    except LLMError as exc:
        log.warning("query expansion skipped: %s", exc)
        return []
    alternatives = parse_expansions(reply, n, query)
    with state.lock:
        state.cache[key] = alternatives
        while len(state.cache) > CACHE_SIZE:
            state.cache.popitem(last=False)
    return list(alternatives)
