"""Adapters that plug Sem-Mem into agent frameworks (thin edges over the public API).

Each module imports its framework when it is imported, never before, so ``import
sem_mem`` stays free of them; install the matching extra first:

* :mod:`sem_mem.integrations.langgraph` (``sem-mem[langgraph]``): ``SemMemStore``, a
  LangGraph ``BaseStore`` (so LangMem's memory tools run on it too);
* :mod:`sem_mem.integrations.openai_agents` (``sem-mem[openai-agents]``):
  ``SemMemSession`` and ``memory_tools`` for the OpenAI Agents SDK;
* :mod:`sem_mem.integrations.pydantic_ai` (``sem-mem[pydantic-ai]``): ``memory_toolset``.

See ``docs/integrations.md``.
"""
