"""Query expansion: LLM-written rephrasings of a query, to widen recall.

Each ``SemanticMemory`` owns one :class:`QueryExpander` (``memory.expander``).
:meth:`QueryExpander.expand` asks the memory's chat model (with the small
``settings.expansion_model``, ``gpt-4.1-mini`` by default) for ``n`` alternative
phrasings using :func:`sem_mem.llm.prompts.query_expansion_prompt`; ``recall``
embeds and searches each of them and fuses the rankings. Answers are cached by the
expander in a bounded LRU keyed by ``(model, query, n)``, so asking the same thing
twice costs one call.

Expansion is an optimisation, never a requirement: with no chat model (memory-only
mode) or when the call fails, it returns ``[]`` (after a logged warning) and recall
goes on with the original query alone.

An OpenAI-compatible server (Ollama, vLLM) usually has no ``gpt-4.1-mini``: when the
expansion model is unknown to the provider (HTTP 404), the chat model's own model is
used instead from then on, for expansion and for the auto-memory judge alike (see
:attr:`QueryExpander.small_model`).
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from typing import TYPE_CHECKING

from .errors import LLMError, ModelNotFoundError
from .llm.prompts import parse_expansions, query_expansion_prompt

if TYPE_CHECKING:
    from .llm.base import ChatModel

__all__ = ["CACHE_SIZE", "DEFAULT_EXPANSIONS", "QueryExpander"]

log = logging.getLogger("sem_mem.expansion")

#: how many alternative phrasings are asked for by default
DEFAULT_EXPANSIONS = 3
#: expansions kept per memory (least recently used dropped first)
CACHE_SIZE = 256


class QueryExpander:
    """Query expansion for one memory: its LRU of answers and the small model that works.

    ``expansion_model`` is ``settings.expansion_model`` (``None`` or empty: the chat
    model's own model). Thread-safe: recalls of one memory may run concurrently.
    """

    def __init__(self, expansion_model: str | None, *, cache_size: int = CACHE_SIZE) -> None:
        self._configured = expansion_model or None
        self._fallen_back = False  # a 404 said the configured small model is missing
        self._cache: OrderedDict[tuple[str, str, int], list[str]] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()

    @property
    def small_model(self) -> str | None:
        """The model for small internal calls (expansion, salience judge, distillation).

        The configured expansion model, unless the provider said it does not know it;
        then ``None``, which means the chat model's own default model.
        """
        return None if self._fallen_back else self._configured

    def clear(self) -> None:
        """Forget the cached expansions (and any small-model fallback)."""
        with self._lock:
            self._cache.clear()
            self._fallen_back = False

    def expand(
        self, chat_model: ChatModel | None, query: str, n: int = DEFAULT_EXPANSIONS
    ) -> list[str]:
        """Up to ``n`` alternative phrasings of ``query`` (never the query itself).

        Returns ``[]`` without any call when there is no chat model, and ``[]`` with a
        logged warning when the call fails; never raises an :class:`LLMError`.
        """
        query = query.strip()
        if chat_model is None or n <= 0 or not query:
            return []
        name = self.small_model
        key = (name or chat_model.model, query, n)
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None:
                self._cache.move_to_end(key)
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
                self._fallen_back = True
                key = (chat_model.model, query, n)
                reply = chat_model.complete(prompt, model=None)
        except LLMError as exc:
            log.warning("query expansion skipped: %s", exc)
            return []
        alternatives = parse_expansions(reply, n, query)
        with self._lock:
            self._cache[key] = alternatives
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return list(alternatives)
