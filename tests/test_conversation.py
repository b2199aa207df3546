"""The conversation engine (ChatSession) in Python, against the fake OpenAI server in
both wire formats: continuation, persistence, commands, thread saving."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from chat_wire import WIRE_FORMATS, assert_carries, turn_bodies
from conftest import CHAT_KEY
from fake_openai import FakeOpenAI

from sem_mem import ChatOptions, ChatSession, SemanticMemory, ValidationError
from sem_mem.conversation import parse_command


def chat_memory(make_memory: Callable[..., SemanticMemory], fake: FakeOpenAI, api: str, **kw: Any):  # type: ignore[no-untyped-def]
    return make_memory(
        api_key=CHAT_KEY,
        base_url=fake.base_url,
        chat_api=api,
        chat_model="llama3.1",
        auto_memory=False,
        **kw,
    )


@pytest.mark.parametrize("api", WIRE_FORMATS)
def test_turn_two_carries_turn_one_and_a_stored_session_continues_in_another_process(
    make_memory: Callable[..., SemanticMemory], fake: FakeOpenAI, api: str, tmp_path: Any
) -> None:
    store = tmp_path / "shared"
    memory = chat_memory(make_memory, fake, api, storage=store)
    session = ChatSession(memory, ChatOptions(limit=3), session_id="plans")
    first = session.send("We fly to Lisbon on Friday")
    session.send("When do we fly?")
    assert_carries(turn_bodies(fake)[-1], "We fly to Lisbon on Friday", first.response_id)
    if api == "responses":
        assert [m["content"] for m in turn_bodies(fake)[-1]["input"]] == ["When do we fly?"]
    session.persist()

    other = chat_memory(make_memory, fake, api, storage=store)  # another SemanticMemory
    again = ChatSession.load(other, "plans")
    assert [m.content for m in again.thread][::2] == [
        "We fly to Lisbon on Friday",
        "When do we fly?",
    ]
    third = again.send("And back?")
    assert_carries(turn_bodies(fake)[-1], "When do we fly?", session.previous_response_id)
    assert third.text == "noted"
    if api == "responses":
        assert again.previous_response_id == third.response_id
        assert ChatSession.continuing(other, session.previous_response_id).id == "plans"


def test_a_provider_that_forgot_the_thread_gets_it_whole(
    make_memory: Callable[..., SemanticMemory], fake: FakeOpenAI
) -> None:
    memory = chat_memory(make_memory, fake, "responses")
    session = ChatSession(memory)
    session.send("My locker is 42")
    session.previous_response_id = "resp_expired"  # the provider no longer knows it
    reply = session.send("Which locker?")
    retried = turn_bodies(fake)[-1]
    assert "previous_response_id" not in retried
    assert [m["content"] for m in retried["input"]] == ["My locker is 42", "noted", "Which locker?"]
    assert any("resent the whole thread" in line for line in reply.logs)


def test_commands_are_parsed_in_one_place_and_not_part_of_the_thread(
    make_memory: Callable[..., SemanticMemory], fake: FakeOpenAI
) -> None:
    assert parse_command("  Remember :  the gate code is 1990 ") == (
        "remember",
        "the gate code is 1990",
    )
    assert parse_command("INSTRUCT: be brief") == ("instruct", "be brief")
    assert parse_command("what should I remember: nothing?") is None
    memory = chat_memory(make_memory, fake, "chat_completions")
    session = ChatSession(memory)
    stored = session.send("remember: The gate code is 1990")
    assert stored.command == "remember" and memory.get(str(stored.memory_id)).text == (
        "The gate code is 1990"
    )
    assert session.send("instruct: Answer in French").command == "instruct"
    assert "Answer in French" in memory.instructions
    assert session.thread == [] and fake.requests == []
    with pytest.raises(ValidationError, match="remember"):
        session.send("remember:   ")
    with pytest.raises(ValidationError, match="unknown chat option"):
        ChatOptions().with_changes(colour="blue")


def test_save_thread_stores_turns_once_in_order(
    make_memory: Callable[..., SemanticMemory], fake: FakeOpenAI
) -> None:
    memory = chat_memory(make_memory, fake, "chat_completions")
    session = ChatSession(memory, thread_id="t1")
    session.send("First question")
    first = session.save_thread()
    session.send("Second question")
    second = session.save_thread()
    assert (len(first), len(second), session.save_thread()) == (2, 2, [])
    turns = memory.list(thread_id="t1", newest_first=False)
    assert [t.text for t in turns] == [
        "User: First question",
        "Assistant: noted",
        "User: Second question",
        "Assistant: noted",
    ]
    assert [t.position for t in turns] == [0, 1, 2, 3]
