"""SemMemSession and memory_tools against the real OpenAI Agents SDK, its Runner talking
HTTP to the fake OpenAI server (Responses API), tool calls included."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import run_python
from embedders import HashingEmbedder
from fake_openai import FakeOpenAI, ToolCall

pytest.importorskip("agents")

from agents import Agent, RunConfig, Runner
from agents.memory import Session, SessionSettings
from agents.models.openai_responses import OpenAIResponsesModel
from openai import AsyncOpenAI

from sem_mem import SemanticMemory
from sem_mem.integrations.openai_agents import SemMemSession, memory_tools

USER = {"role": "user", "content": "I am vegetarian"}
CALL = {
    "type": "function_call",
    "call_id": "call_1",
    "name": "lookup",
    "arguments": '{"q": "menu"}',
}
OUTPUT = {"type": "function_call_output", "call_id": "call_1", "output": "pasta, salad"}
ANSWER = {
    "type": "message",
    "id": "msg_1",
    "role": "assistant",
    "status": "completed",
    "content": [{"type": "output_text", "text": "Try the salad", "annotations": []}],
}


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_it_is_an_sdk_session(memory: SemanticMemory) -> None:
    assert isinstance(SemMemSession("s1", memory), Session)


def test_items_round_trip_and_only_messages_become_memories(memory: SemanticMemory) -> None:
    session = SemMemSession("chat-1", memory)
    run(session.add_items([USER, CALL, OUTPUT]))
    run(session.add_items([ANSWER]))
    assert run(session.get_items()) == [USER, CALL, OUTPUT, ANSWER]
    assert run(session.get_items(limit=2)) == [OUTPUT, ANSWER]

    turns = memory.list(thread_id="chat-1", newest_first=False)
    assert [(t.speaker, t.text) for t in turns] == [
        ("user", "user: I am vegetarian"),
        ("assistant", "assistant: Try the salad"),
    ]
    hits = memory.recall("what do I eat? vegetarian", limit=10)
    assert {h.text for h in hits} == {t.text for t in turns}  # no tool call, no output

    assert run(session.pop_item()) == ANSWER
    assert [t.speaker for t in memory.list(thread_id="chat-1")] == ["user"]
    assert run(session.pop_item()) == OUTPUT  # a tool item: its pop leaves the turns alone
    assert len(memory) == 1
    run(session.add_items([ANSWER]))  # the history continues where it was popped
    assert run(session.get_items()) == [USER, CALL, ANSWER]
    assert [t.position for t in memory.list(thread_id="chat-1", newest_first=False)] == [0, 1]


def test_settings_limit_and_empty_session(memory: SemanticMemory) -> None:
    session = SemMemSession("s", memory, session_settings=SessionSettings(limit=1))
    assert run(session.get_items()) == []
    assert run(session.pop_item()) is None
    run(session.add_items([USER, ANSWER]))
    assert run(session.get_items()) == [ANSWER]
    assert run(session.get_items(limit=5)) == [USER, ANSWER]


def test_sessions_and_namespaces_never_cross(make_memory: Callable[..., SemanticMemory]) -> None:
    alice = make_memory(namespace="alice")
    bob = make_memory(namespace="bob")
    first, second = SemMemSession("one", alice), SemMemSession("two", alice)
    other = SemMemSession("one", bob)  # same session id, other namespace
    run(first.add_items([USER]))
    run(second.add_items([ANSWER]))
    run(other.add_items([{"role": "user", "content": "I love steak"}]))
    assert run(first.get_items()) == [USER]
    assert run(other.get_items()) == [{"role": "user", "content": "I love steak"}]
    assert all("steak" not in h.text for h in alice.recall("steak", limit=10))
    run(first.clear_session())
    assert run(first.get_items()) == []
    assert run(second.get_items()) == [ANSWER]
    assert [t.thread_id for t in alice.list()] == ["two"]
    assert len(run(other.get_items())) == 1 and len(bob) == 1


@pytest.mark.slow  # a second Python process
def test_a_session_persists_across_processes(tmp_path: Path) -> None:
    store = str(tmp_path / "store")
    code = f"""
import asyncio, json
from embedders import HashingEmbedder
from sem_mem.integrations.openai_agents import SemMemSession
session = SemMemSession("chat", storage_dir={store!r}, embedder=HashingEmbedder())
asyncio.run(session.add_items({json.dumps([USER, CALL, OUTPUT])}))
session.close()
"""
    run_python(code)
    session = SemMemSession("chat", storage_dir=store, embedder=HashingEmbedder())
    try:
        assert run(session.get_items()) == [USER, CALL, OUTPUT]
        assert [h.text for h in session.memory.recall("vegetarian", limit=5)] == [
            "user: I am vegetarian"
        ]
    finally:
        session.close()


def test_an_agent_run_through_runner_uses_the_session_and_the_tools(
    memory: SemanticMemory,
) -> None:
    """Runner → OpenAI Responses API (the fake server) → a `remember` tool call → the
    tool runs on Sem-Mem → the answer; then a second run in the same session sends the
    stored history back and recalls the fact through the `recall` tool."""
    memory.remember("The user's sister is called Maya")

    def responder(body: dict[str, Any]) -> Any:
        items = body["input"]
        last = items[-1]
        if last.get("type") == "function_call_output":
            return f"tool said: {last['output']}"
        said = last["content"] if isinstance(last.get("content"), str) else ""
        if said.startswith("remember"):
            return ToolCall("remember", {"text": said.removeprefix("remember ")})
        return ToolCall("recall", {"query": said})

    session = SemMemSession("chat-9", memory)
    config = RunConfig(tracing_disabled=True)

    async def conversation(server: FakeOpenAI) -> tuple[Any, Any]:
        async with AsyncOpenAI(api_key="sk-test", base_url=server.base_url) as client:
            agent = Agent(
                name="assistant",
                instructions="Use your memory tools.",
                model=OpenAIResponsesModel(model="gpt-test", openai_client=client),
                tools=memory_tools(memory, session=session),
            )
            first = await Runner.run(
                agent, "remember I am vegetarian", session=session, run_config=config
            )
            second = await Runner.run(
                agent, "what is my sister called?", session=session, run_config=config
            )
            return first, second

    with FakeOpenAI(api_key="sk-test", responder=responder) as server:
        first, second = run(conversation(server))
    assert first.final_output.startswith("tool said: remembered")
    assert "Maya" in second.final_output

    requests = [r.body for r in server.requests if r.path == "/v1/responses"]
    assert {t["name"] for t in requests[0]["tools"]} == {"remember", "recall", "forget"}
    # the second run's first request carries the first run's whole history
    sent = requests[2]["input"]
    assert [i.get("type", "message") for i in sent][:4] == [
        "message",
        "function_call",
        "function_call_output",
        "message",
    ]
    assert memory.recall("vegetarian", limit=1)[0].text == "I am vegetarian"
    history = run(session.get_items())
    assert [i.get("type", "message") for i in history].count("function_call") == 2
    said = [t.text for t in memory.list(thread_id="chat-9", newest_first=False)]
    assert said[0] == "user: remember I am vegetarian"
    assert said[-1].startswith("assistant: tool said:") and "Maya" in said[-1]
    recalled = json.loads(requests[-1]["input"][-1]["output"])
    assert "The user's sister is called Maya" in [hit["text"] for hit in recalled]
    # with session=, recall leaves out this session's own turns (already in context)
    own = {t.id for t in memory.list(thread_id="chat-9")}
    assert own and not own & {hit["id"] for hit in recalled}
