"""memory_toolset against the real Pydantic AI package, driven by its TestModel and
FunctionModel (the model doubles Pydantic AI ships for exactly this)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

pytest.importorskip("pydantic_ai")

from pydantic_ai import Agent
from pydantic_ai.messages import (
    ModelMessage,
    ModelResponse,
    RetryPromptPart,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
)
from pydantic_ai.models.function import AgentInfo, FunctionModel
from pydantic_ai.models.test import TestModel

from sem_mem import SemanticMemory
from sem_mem.async_core import AsyncSemanticMemory
from sem_mem.integrations.pydantic_ai import memory_toolset


def test_tools_have_typed_arguments_and_docstring_descriptions(memory: SemanticMemory) -> None:
    model = TestModel(call_tools=["remember", "recall"])
    Agent(model, toolsets=[memory_toolset(memory)]).run_sync("hello")
    params = model.last_model_request_parameters
    assert params is not None
    tools = {t.name: t for t in params.function_tools}
    assert set(tools) == {"remember", "recall", "forget"}
    assert tools["remember"].description.startswith("Store a fact worth keeping")
    remember_schema = tools["remember"].parameters_json_schema
    assert remember_schema["required"] == ["text"]
    assert remember_schema["properties"]["text"]["type"] == "string"
    assert "self-contained sentence" in remember_schema["properties"]["text"]["description"]
    recall_schema = tools["recall"].parameters_json_schema["properties"]
    assert recall_schema["max_results"]["type"] == "integer"
    # TestModel called remember and recall with generated arguments: they really ran
    assert [m.text for m in memory.list()] == ["a"]


def scripted(steps: list[Callable[[list[ModelMessage]], ModelResponse]]) -> FunctionModel:
    calls = iter(steps)

    def respond(messages: list[ModelMessage], _info: AgentInfo) -> ModelResponse:
        return next(calls)(messages)

    return FunctionModel(respond)


def last_parts(messages: list[ModelMessage]) -> list[Any]:
    return list(messages[-1].parts)


def test_remember_recall_forget_round_trip(memory: SemanticMemory) -> None:
    memory.remember("The user's sister is called Maya")
    seen: dict[str, Any] = {}

    def call(name: str, **args: Any) -> Callable[[list[ModelMessage]], ModelResponse]:
        return lambda _messages: ModelResponse(parts=[ToolCallPart(name, args)])

    def keep_id(messages: list[ModelMessage]) -> ModelResponse:
        (returned,) = [p for p in last_parts(messages) if isinstance(p, ToolReturnPart)]
        seen["id"] = returned.content
        return ModelResponse(parts=[ToolCallPart("recall", {"query": "sister name"})])

    def answer_from_recall(messages: list[ModelMessage]) -> ModelResponse:
        (returned,) = [p for p in last_parts(messages) if isinstance(p, ToolReturnPart)]
        seen["recalled"] = returned.content
        return ModelResponse(parts=[ToolCallPart("forget", {"memory_id": seen["id"]})])

    agent = Agent(
        scripted(
            [
                call("remember", text="I am vegetarian"),
                keep_id,
                answer_from_recall,
                lambda _m: ModelResponse(parts=[TextPart("done")]),
            ]
        ),
        toolsets=[memory_toolset(memory)],
    )
    assert agent.run_sync("go").output == "done"
    assert seen["recalled"][0]["text"] == "The user's sister is called Maya"
    assert all(set(r) == {"id", "text", "score", "timestamp"} for r in seen["recalled"])
    assert [m.text for m in memory.list()] == ["The user's sister is called Maya"]


def retry_prompts(messages: list[ModelMessage]) -> list[str]:
    """What the model was told to retry (a ToolReturnPart with outcome "retried" in
    Pydantic AI 2, a RetryPromptPart before)."""
    return [
        str(p.content)
        for p in last_parts(messages)
        if isinstance(p, RetryPromptPart)
        or (isinstance(p, ToolReturnPart) and getattr(p, "outcome", "") == "retried")
    ]


def test_bad_arguments_come_back_as_a_retry_prompt(memory: SemanticMemory) -> None:
    retries: list[str] = []

    def first(_messages: list[ModelMessage]) -> ModelResponse:
        return ModelResponse(parts=[ToolCallPart("forget", {"memory_id": "nope"})])

    def second(messages: list[ModelMessage]) -> ModelResponse:
        retries.extend(retry_prompts(messages))
        return ModelResponse(parts=[ToolCallPart("remember", {"text": "   "})])

    def third(messages: list[ModelMessage]) -> ModelResponse:
        retries.extend(retry_prompts(messages))
        return ModelResponse(parts=[TextPart("gave up")])

    agent = Agent(scripted([first, second, third]), toolsets=[memory_toolset(memory)])
    assert agent.run_sync("go").output == "gave up"
    assert "no memory 'nope'" in retries[0]
    assert "text is empty" in retries[1]
    assert len(memory) == 0


def test_a_toolset_stays_in_its_namespace(make_memory: Callable[..., SemanticMemory]) -> None:
    alice = make_memory(namespace="alice")
    bob = AsyncSemanticMemory.wrap(make_memory(namespace="bob"))
    Agent(TestModel(call_tools=["remember"]), toolsets=[memory_toolset(alice)]).run_sync("x")
    found: list[Any] = []

    def look(messages: list[ModelMessage]) -> ModelResponse:
        found.extend(p.content for p in last_parts(messages) if isinstance(p, ToolReturnPart))
        return ModelResponse(parts=[TextPart("ok")])

    model = scripted(
        [lambda _m: ModelResponse(parts=[ToolCallPart("recall", {"query": "a"})]), look]
    )
    Agent(model, toolsets=[memory_toolset(bob)]).run_sync("x")
    assert len(alice) == 1
    assert found == [[]]  # bob's toolset sees nothing of alice's
