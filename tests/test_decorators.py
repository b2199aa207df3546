"""MemoryChat and the @with_memory / @with_rag decorators, end to end.

The seed's quickstart "aha" conversation runs against the local fake OpenAI server over
both chat APIs: the second question's request must carry the facts remembered from the
first message.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fake_openai import FakeOpenAI
from test_chat import ANSWER, KEY, ScriptedLLM, chat_bodies, memories_in

from sem_mem import MemoryChat as LazyMemoryChat
from sem_mem import SemanticMemory, with_memory, with_rag
from sem_mem.chat import MEMORY_ONLY_NOTICE
from sem_mem.decorators import MemoryChat
from sem_mem.llm.base import ChatMessage
from sem_mem.llm.prompts import MEMORIES_PREAMBLE
from sem_mem.llm.responses import ResponsesChatModel


@pytest.fixture
def server() -> Any:
    with FakeOpenAI(api_key=KEY, responder=ScriptedLLM()) as srv:
        yield srv


@pytest.fixture(params=["responses", "chat_completions"])
def chat_memory(
    request: pytest.FixtureRequest,
    server: FakeOpenAI,
    make_memory: Callable[..., SemanticMemory],
) -> SemanticMemory:
    if request.param == "responses":
        model = ResponsesChatModel(api_key=KEY, base_url=server.base_url, backoff_base=0.001)
        return make_memory(chat_model=model)
    return make_memory(api_key=KEY, base_url=server.base_url, chat_model="llama3.1")


def instructions_of(body: dict[str, Any]) -> str:
    return body["instructions"] if "instructions" in body else body["messages"][0]["content"]


def test_import_paths_from_the_seed() -> None:
    assert LazyMemoryChat is MemoryChat
    assert callable(with_memory) and callable(with_rag)


# --------------------------------------------------------------------------- the aha moment
def test_the_aha_conversation_answers_from_memory(
    chat_memory: SemanticMemory, server: FakeOpenAI
) -> None:
    chat = MemoryChat(chat_memory)

    first = chat.send("My name is Sam, I'm a cardiology fellow in Boston.")
    first_id = chat.previous_response_id
    second = chat.send("Where do I live and what do I do?")

    assert first.startswith(ANSWER)
    first_body, second_body = chat_bodies(server)
    remembered = memories_in(instructions_of(second_body))
    assert any("Boston" in m and "cardiology" in m for m in remembered), remembered
    assert "Boston" in second and "cardiology" in second  # the answer used the memory
    assert [m.source for m in chat.last_memories] == ["auto"]
    assert [m.role for m in chat.thread] == ["user", "assistant", "user", "assistant"]
    if "input" in second_body:  # Responses API: continuity through previous_response_id
        assert first_id is not None and second_body["previous_response_id"] == first_id
        assert len(second_body["input"]) == 1
    else:  # Chat Completions: the whole local thread
        roles = [m["role"] for m in second_body["messages"]]
        assert roles == ["system", "user", "assistant", "user"]
    assert "previous_response_id" not in first_body


def test_memory_survives_a_new_thread(chat_memory: SemanticMemory, server: FakeOpenAI) -> None:
    chat = MemoryChat(chat_memory)
    chat.send("My name is Sam, I'm a cardiology fellow in Boston.")
    old_thread_id = chat.thread_id
    count = len(chat_memory)

    chat.new_thread()
    answer = chat.send("What do I do for a living?")

    assert chat.thread_id != old_thread_id
    assert len(chat.thread) == 2 and len(chat_memory) == count
    body = chat_bodies(server)[-1]
    assert "previous_response_id" not in body
    assert "cardiology" in answer


# --------------------------------------------------------------------------- commands
def test_remember_and_instruct_commands_do_not_call_the_model(
    chat_memory: SemanticMemory, server: FakeOpenAI
) -> None:
    chat = MemoryChat(chat_memory)

    confirmed = chat.send("remember: Patient prefers morning appointments")
    instructed = chat.send("Instruct:  Always be concise")

    assert confirmed == "Remembered: Patient prefers morning appointments"
    assert instructed == "Instruction added: Always be concise"
    assert server.requests == []
    assert chat.thread == []
    (stored,) = chat_memory.list()
    assert (stored.text, stored.source) == ("Patient prefers morning appointments", "manual")
    assert "Always be concise" in chat_memory.instructions

    chat.send("When should I book the patient?")
    instructions = instructions_of(chat_bodies(server)[0])
    assert "## Persistent instructions\nAlways be concise" in instructions
    assert "Patient prefers morning appointments" in memories_in(instructions)


def test_remember_and_add_instruction_methods(make_memory: Callable[..., SemanticMemory]) -> None:
    memory = make_memory()
    chat = MemoryChat(memory)

    memory_id = chat.remember("Patient prefers morning appointments")
    chat.add_instruction("Always be concise")

    assert memory.get(memory_id).text == "Patient prefers morning appointments"
    assert memory.instructions.strip() == "Always be concise"


# --------------------------------------------------------------------------- threads
def _long_thread(turns: int, size: int = 400) -> list[ChatMessage]:
    thread = []
    for i in range(turns):
        thread.append(ChatMessage("user", f"question {i} " + "q" * size))
        thread.append(ChatMessage("assistant", f"answer {i} " + "a" * size))
    return thread


def test_save_thread_stores_one_memory_per_turn_in_order(
    make_memory: Callable[..., SemanticMemory],
) -> None:
    memory = make_memory()
    chat = MemoryChat(memory)
    chat.thread = _long_thread(3)
    chat.thread.insert(3, ChatMessage("user", "   "))  # an empty message is not a turn

    ids = chat.save_thread()

    saved = [memory.get(i) for i in ids]
    assert len(saved) == 6
    assert {m.source for m in saved} == {"thread"}
    assert {m.thread_id for m in saved} == {chat.thread_id}
    assert [m.speaker for m in saved] == ["User", "Assistant"] * 3
    assert saved[0].text == "User: " + chat.thread[0].content
    turns = memory.list(thread_id=chat.thread_id, newest_first=False)
    assert [m.id for m in turns] == ids  # the thread's order is kept


def test_saving_a_thread_again_stores_only_the_new_turns(
    make_memory: Callable[..., SemanticMemory],
) -> None:
    memory = make_memory()
    chat = MemoryChat(memory)
    chat.thread = _long_thread(2)
    first = chat.save_thread()

    assert chat.save_thread() == []  # nothing new: nothing stored
    chat.thread += [ChatMessage("user", "one more thing"), ChatMessage("assistant", "sure")]
    second = chat.save_thread()

    assert len(second) == 2 and not set(second) & set(first)
    turns = memory.list(thread_id=chat.thread_id, newest_first=False)
    assert [m.id for m in turns] == first + second
    assert [m.position for m in turns] == [0, 1, 2, 3, 4, 5]


def test_save_thread_after_a_conversation(chat_memory: SemanticMemory) -> None:
    chat = MemoryChat(chat_memory, auto_remember=False)
    chat.send("Let's discuss the echo findings.")
    chat.send("What is the ejection fraction threshold?")

    ids = chat.save_thread()

    turns = [chat_memory.get(i) for i in ids]
    assert turns[0].text == "User: Let's discuss the echo findings."
    assert turns[1].text.startswith("Assistant: ")
    assert [t.position for t in turns] == [0, 1, 2, 3]


# --------------------------------------------------------------------------- memory-only
def test_memory_chat_in_memory_only_mode(make_memory: Callable[..., SemanticMemory]) -> None:
    memory = make_memory()
    chat = MemoryChat(memory)

    chat.send("My name is Sam, I'm a cardiology fellow in Boston.")
    answer = chat.send("Where do I live and what do I do?")

    assert answer.splitlines()[0] == MEMORY_ONLY_NOTICE
    assert "cardiology fellow in Boston" in answer
    assert [m.role for m in chat.thread] == ["user", "user"]
    assert chat.previous_response_id is None


# --------------------------------------------------------------------------- decorators
def test_with_memory_passes_context_and_instructions_then_remembers(
    make_memory: Callable[..., SemanticMemory],
) -> None:
    memory = make_memory()
    memory.remember("The patient is allergic to penicillin")
    memory.add_instruction("I am an informatics physician")
    seen: dict[str, str] = {}

    @with_memory(memory)
    def my_chat(user_input: str, context: str = "", instructions: str = "", **_: Any) -> str:
        seen.update(context=context, instructions=instructions)
        return f"noted: {user_input}"

    assert my_chat("I'm allergic to latex. What allergies should I check?") == (
        "noted: I'm allergic to latex. What allergies should I check?"
    )
    assert seen["context"].startswith(MEMORIES_PREAMBLE)
    assert "The patient is allergic to penicillin" in seen["context"]
    assert seen["instructions"].strip() == "I am an informatics physician"
    assert "The user is allergic to latex." in [m.text for m in memory.list(source="auto")]
    assert my_chat.__name__ == "my_chat"


def test_with_rag_passes_only_context_and_remembers_nothing(
    make_memory: Callable[..., SemanticMemory],
) -> None:
    memory = make_memory()
    memory.remember("The patient is allergic to penicillin")
    calls: list[dict[str, Any]] = []

    @with_rag(memory, limit=1)
    def simple_chat(user_input: str, context: str = "", **kwargs: Any) -> str:
        calls.append({"context": context, **kwargs})
        return "ok"

    simple_chat("I live in Boston. Any allergy notes?")
    simple_chat("question", context="my own context")

    assert "The patient is allergic to penicillin" in calls[0]["context"]
    assert "instructions" not in calls[0]
    assert calls[1]["context"] == "my own context"  # the caller's value wins
    assert memory.list(source="auto") == []


def test_decorators_give_empty_context_when_nothing_is_stored(
    make_memory: Callable[..., SemanticMemory],
) -> None:
    memory = make_memory(auto_memory=False)

    @with_memory(memory)
    def my_chat(user_input: str, context: str = "", instructions: str = "", **_: Any) -> str:
        return f"{context!r}|{instructions!r}"

    assert my_chat("hello") == "''|''"
