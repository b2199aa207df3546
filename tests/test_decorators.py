"""MemoryChat and the @with_memory / @with_rag decorators, end to end.

The seed's quickstart "aha" conversation runs against the local fake OpenAI server over
both chat APIs: the second question's request must carry the facts remembered from the
first message.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import pytest
from fake_openai import FakeOpenAI
from test_chat import ANSWER, KEY, ScriptedLLM, chat_bodies, memories_in

from sem_mem import MemoryChat as LazyMemoryChat
from sem_mem import SemanticMemory, with_memory, with_rag
from sem_mem.chat import MEMORY_ONLY_NOTICE
from sem_mem.decorators import THREAD_CHUNK_CHARS, MemoryChat, thread_chunks
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


def test_save_thread_cuts_chunks_at_message_boundaries(
    make_memory: Callable[..., SemanticMemory],
) -> None:
    memory = make_memory()
    chat = MemoryChat(memory)
    chat.thread = _long_thread(6)
    chat.thread.insert(5, ChatMessage("user", "long " + "x" * (2 * THREAD_CHUNK_CHARS)))

    ids = chat.save_thread()

    saved = [memory.get(i) for i in ids]
    assert len(saved) > 2
    assert all(m.source == "thread" for m in saved)
    assert all(m.metadata["thread_id"] == chat.thread_id for m in saved)
    ranges = [(m.metadata["message_start"], m.metadata["message_end"]) for m in saved]
    assert ranges[0][0] == 0 and ranges[-1][1] == len(chat.thread)
    assert all(a[1] == b[0] for a, b in itertools.pairwise(ranges))  # contiguous
    for m, (start, end) in zip(saved, ranges, strict=True):
        assert m.text.startswith(("User: ", "Assistant: "))
        expected = [f"{msg.role.title()}: {msg.content}" for msg in chat.thread[start:end]]
        assert m.text == "\n\n".join(expected)  # whole messages only
        assert len(m.text) <= THREAD_CHUNK_CHARS or end - start == 1
    assert any(len(m.text) > THREAD_CHUNK_CHARS for m in saved)  # the long one, alone


def test_saving_a_thread_again_stores_only_what_changed(
    make_memory: Callable[..., SemanticMemory],
) -> None:
    memory = make_memory()
    chat = MemoryChat(memory)
    chat.thread = _long_thread(5)
    first = chat.save_thread()

    assert chat.save_thread() == first  # unchanged: refreshed, not copied
    chat.thread += [ChatMessage("user", "one more thing"), ChatMessage("assistant", "sure")]
    second = chat.save_thread()

    assert second[:-1] == first[:-1]
    assert second[-1] != first[-1]
    assert memory.get(first[-1]).status == "superseded"
    active = memory.list(source="thread")
    assert sorted(m.id for m in active) == sorted(second)


def test_thread_chunks_of_an_empty_thread() -> None:
    assert thread_chunks([]) == []
    assert thread_chunks([ChatMessage("user", "   ")]) == []


def test_save_thread_after_a_conversation(chat_memory: SemanticMemory) -> None:
    chat = MemoryChat(chat_memory, auto_remember=False)
    chat.send("Let's discuss the echo findings.")
    chat.send("What is the ejection fraction threshold?")

    (chunk_id,) = chat.save_thread()

    chunk = chat_memory.get(chunk_id)
    assert chunk.text.startswith("User: Let's discuss the echo findings.\n\nAssistant: ")
    assert (chunk.metadata["message_start"], chunk.metadata["message_end"]) == (0, 4)


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
