"""OpenAI Agents SDK with Sem-Mem: a session whose past conversations become memories,
and remember/recall/forget tools for the agent.

Offline by default: local embeddings, and a small rule-based stand-in for the chat
model (a real ``agents.models.interface.Model`` that calls the memory tools when asked
to remember or asked a question). With OPENAI_API_KEY set, a real OpenAI model is used
instead. Needs `pip install 'sem-mem[openai-agents]'`; run with
`python examples/openai_agents_session.py`. The store lives in ./local_memory (namespace
"example-openai-agents") unless MEMORY_STORAGE_DIR says otherwise.
"""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any

from agents import Agent, Model, ModelResponse, RunConfig, Runner, Usage
from openai.types.responses import (
    ResponseFunctionToolCall,
    ResponseOutputMessage,
    ResponseOutputText,
)

from sem_mem import SemanticMemory
from sem_mem.integrations.openai_agents import SemMemSession, memory_tools


class RuleBasedModel(Model):
    """Stands in for an LLM offline: "remember X" calls the remember tool, a question
    calls recall, and a tool's output is read back as the answer."""

    async def get_response(self, system_instructions: Any, input: Any, *args: Any, **kw: Any):  # type: ignore[no-untyped-def]
        last = input[-1] if isinstance(input, list) else {"role": "user", "content": input}
        if last.get("type") == "function_call_output":
            output = last["output"]
            if output.startswith("["):  # recall's answer: the memories, best first
                output = "; ".join(hit["text"] for hit in json.loads(output)[:2])
            return _answer(f"(from memory) {output}")
        text = last.get("content") if isinstance(last.get("content"), str) else ""
        if text.lower().startswith("remember "):
            return _call("remember", {"text": text[len("remember ") :]})
        return _call("recall", {"query": text})

    def stream_response(self, *args: Any, **kwargs: Any):  # type: ignore[no-untyped-def]
        raise NotImplementedError("this stand-in does not stream")


def _call(name: str, arguments: dict[str, Any]) -> ModelResponse:
    call = ResponseFunctionToolCall(
        type="function_call", call_id=f"call_{name}", name=name, arguments=json.dumps(arguments)
    )
    return ModelResponse(output=[call], usage=Usage(), response_id=None)


def _answer(text: str) -> ModelResponse:
    message = ResponseOutputMessage(
        type="message",
        id="msg_offline",
        role="assistant",
        status="completed",
        content=[ResponseOutputText(type="output_text", text=text, annotations=[])],
    )
    return ModelResponse(output=[message], usage=Usage(), response_id=None)


async def main() -> None:
    online = bool(os.environ.get("OPENAI_API_KEY"))
    memory = SemanticMemory(namespace="example-openai-agents")
    session = SemMemSession("kitchen-chat", memory)
    await session.clear_session()  # a fresh conversation each run (memories stay)
    agent = Agent(
        name="assistant",
        instructions="You have a long-term memory: use remember and recall.",
        model="gpt-4.1-mini" if online else RuleBasedModel(),
        tools=memory_tools(memory, session=session),
    )
    config = RunConfig(tracing_disabled=not online)
    for message in [
        "remember I am vegetarian",
        "remember my sister Maya lives in Lisbon",
        "what should I cook for dinner?",
    ]:
        result = await Runner.run(agent, message, session=session, run_config=config)
        print(f"user: {message}\n  -> {result.final_output}")

    items = await session.get_items()
    kinds = [item.get("type", "message") for item in items]
    print(f"\nThe session holds {len(items)} items: {', '.join(kinds)}")
    print("What was said is now a memory; recall across every past session:")
    for hit in memory.recall("where does Maya live?", limit=3):
        print(f"  {hit.score:.2f}  [{hit.thread_id or 'fact'}]  {hit.text}")
    session.close()
    memory.close()


if __name__ == "__main__":
    asyncio.run(main())
