"""Pydantic AI with Sem-Mem: an agent with remember/recall/forget tools.

Offline by default: local embeddings, and Pydantic AI's own FunctionModel standing in
for the LLM (it calls remember when told to remember, recall for a question, and answers
from what the tool returned). With OPENAI_API_KEY set, a real OpenAI model is used.
Needs `pip install 'sem-mem[pydantic-ai]'`; run with `python examples/pydantic_ai_memory.py`.
The store lives in ./local_memory (namespace "example-pydantic-ai") unless
MEMORY_STORAGE_DIR says otherwise.
"""

from __future__ import annotations

import os

from pydantic_ai import Agent
from pydantic_ai.messages import (
    ModelMessage,
    ModelRequest,
    ModelResponse,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
    UserPromptPart,
)
from pydantic_ai.models.function import AgentInfo, FunctionModel

from sem_mem import SemanticMemory
from sem_mem.integrations.pydantic_ai import memory_toolset


def rule_based(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    """Stands in for an LLM offline (and prints the tools it was offered once)."""
    last = messages[-1]
    assert isinstance(last, ModelRequest)
    for part in last.parts:
        if isinstance(part, ToolReturnPart):
            if part.tool_name == "remember":
                return ModelResponse(parts=[TextPart(f"Noted (memory {part.content})")])
            content = part.content
            if isinstance(content, list):  # recall: the memories, best first
                content = "; ".join(hit["text"] for hit in content[:2])
            return ModelResponse(parts=[TextPart(f"(from memory) {content}")])
        if isinstance(part, UserPromptPart) and isinstance(part.content, str):
            if len(messages) == 1:
                print("tools offered:", ", ".join(t.name for t in info.function_tools))
            if part.content.lower().startswith("remember "):
                fact = part.content[len("remember ") :]
                return ModelResponse(parts=[ToolCallPart("remember", {"text": fact})])
            return ModelResponse(parts=[ToolCallPart("recall", {"query": part.content})])
    return ModelResponse(parts=[TextPart("I have nothing to say.")])


def main() -> None:
    online = bool(os.environ.get("OPENAI_API_KEY"))
    with SemanticMemory(namespace="example-pydantic-ai") as memory:
        agent = Agent(
            "openai:gpt-4.1-mini" if online else FunctionModel(rule_based),
            instructions="You have a long-term memory: use remember and recall.",
            toolsets=[memory_toolset(memory)],
        )
        for prompt in [
            "remember I am vegetarian",
            "remember my sister Maya lives in Lisbon",
            "where does my sister live?",
        ]:
            print(f"user: {prompt}\n  -> {agent.run_sync(prompt).output}")
        print(f"\n{len(memory)} memories in namespace {memory.namespace!r}")


if __name__ == "__main__":
    main()
