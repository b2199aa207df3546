"""The CLI's chat (multi-turn, --session across runs, --chat-api), recall filters,
chat-export ingest, failures reported at the end, short ids and empty listings."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from chat_wire import WIRE_FORMATS, assert_carries, turn_bodies
from conftest import CHAT_KEY
from embedders import HashingEmbedder
from fake_openai import FakeOpenAI
from typer.testing import CliRunner

from sem_mem.cli import app


def run(store: Path, *args: str, input: str | None = None, code: int = 0, env: Any = None) -> Any:
    result = CliRunner().invoke(
        app,
        [*args, "--storage-dir", str(store)],
        input=input,
        obj={"embedder": HashingEmbedder()},
        env=env,
        catch_exceptions=False,
    )
    assert result.exit_code == code, result.output
    return result


def chat_env(fake: FakeOpenAI) -> dict[str, str]:
    return {
        "OPENAI_API_KEY": CHAT_KEY,
        "OPENAI_BASE_URL": fake.base_url,
        "CHAT_MODEL": "llama3.1",
        "AUTO_MEMORY": "false",
    }


@pytest.mark.parametrize("api", WIRE_FORMATS)
def test_turn_two_carries_turn_one_and_a_session_continues_across_runs(
    tmp_path: Path, fake: FakeOpenAI, api: str
) -> None:
    store, env = tmp_path / "s", chat_env(fake)
    talk = run(
        store,
        "chat",
        "--chat-api",
        api,
        input="My cat is called Miso\nWhat is my cat called?\n",
        env=env,
    )
    assert "error" not in talk.stderr  # the fake refuses an unknown previous_response_id
    first, second = turn_bodies(fake)
    if api == "responses":
        assert "previous_response_id" not in first
        assert second["previous_response_id"]  # the id of turn 1's answer
        assert [m["content"] for m in second["input"]] == ["What is my cat called?"]
    else:
        assert_carries(second, "My cat is called Miso", None)

    run(store, "chat", "--chat-api", api, "--session", "pets", input="I also have a dog\n", env=env)
    resumed = run(
        store, "chat", "--chat-api", api, "--session", "pets", input="And my dog?\n", env=env
    )
    assert "continuing 2 messages" in resumed.stdout
    bodies = turn_bodies(fake)
    if api == "responses":
        assert bodies[-1]["previous_response_id"]
        assert bodies[-1]["previous_response_id"] != bodies[-2].get("previous_response_id")
    else:
        assert_carries(bodies[-1], "I also have a dog", None)
    # a run without --session starts afresh
    run(store, "chat", "--chat-api", api, input="Hello\n", env=env)
    fresh = turn_bodies(fake)[-1]
    assert "previous_response_id" not in fresh
    if "messages" in fresh:
        assert [m["role"] for m in fresh["messages"]] == ["system", "user"]


def test_recall_filters_and_timestamp(tmp_path: Path) -> None:
    store = tmp_path / "s"
    run(store, "remember", "The budget meeting was moved", "--timestamp", "2024-03-01")
    run(store, "remember", "The budget meeting is on Friday", "-m", '{"team": "ops"}')
    old = json.loads(
        run(store, "recall", "budget meeting", "--until", "2024-06-01", "--json").stdout
    )
    assert [m["text"] for m in old] == ["The budget meeting was moved"]
    assert old[0]["timestamp"].startswith("2024-03-01")
    ops = json.loads(run(store, "recall", "budget", "-m", '{"team": "ops"}', "--json").stdout)
    assert [m["text"] for m in ops] == ["The budget meeting is on Friday"]
    none = json.loads(run(store, "recall", "budget", "--source", "thread", "--json").stdout)
    assert none == []
    bad = run(store, "recall", "budget", "--since", "last spring", code=2)
    assert "--since" in bad.stderr


def test_ingest_a_chat_export_and_go_on_past_a_bad_file(tmp_path: Path) -> None:
    store = tmp_path / "s"
    export = tmp_path / "whatsapp.jsonl"
    lines = [
        {"role": "user", "content": "We land in Lisbon at 9", "timestamp": "2024-05-01T08:00:00"},
        {"speaker": "Ana", "text": "I will pick you up"},
        {"speaker": "Ana", "text": "Different chat", "thread_id": "other"},
    ]
    export.write_text("\n".join(json.dumps(x) for x in lines) + "\n\n", encoding="utf-8")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"speaker": "x", "text": "fine"}\nnot json\n', encoding="utf-8")
    notes = tmp_path / "notes.md"
    notes.write_text("# Notes\n\nGloves for every procedure.\n")

    result = run(
        store, "ingest", str(bad), str(export), str(tmp_path / "missing.pdf"), str(notes), code=2
    )
    assert "bad.jsonl" in result.stderr and "line 2" in result.stderr
    assert "no such file" in result.stderr and "missing.pdf" in result.stderr
    turns = json.loads(run(store, "list", "--source", "thread", "--json").stdout)
    assert sorted(t["text"] for t in turns) == [
        "Ana: Different chat",
        "Ana: I will pick you up",
        "User: We land in Lisbon at 9",
    ]
    assert {t["thread_id"] for t in turns} == {"whatsapp", "other"}
    lisbon = next(t for t in turns if "Lisbon" in t["text"])
    assert lisbon["timestamp"].startswith("2024-05-01") and lisbon["speaker"] == "User"
    assert json.loads(run(store, "list", "--source", "document", "--json").stdout)  # notes.md
    again = json.loads(run(store, "ingest", str(export), "--json").stdout)
    assert [r["chunks_stored"] for r in again] == [0, 0]  # refreshed, not copied


def test_short_ids_empty_lists_and_get(tmp_path: Path) -> None:
    store = tmp_path / "s"
    assert "has no memories yet" in run(store, "list").stdout
    memory_id = run(store, "remember", "The spare key is under the mat").stdout.strip()
    shown = json.loads(run(store, "get", memory_id[:8], "--json").stdout)
    assert shown["id"] == memory_id
    assert "spare key" in run(store, "get", memory_id[:8]).stdout
    assert "no memories match" in run(store, "list", "--source", "pdf").stdout
    missing = run(store, "forget", "ffffffff", code=3)
    assert "ffffffff" in missing.stderr
    assert memory_id in run(store, "forget", memory_id[:8]).stdout
    assert "has no memories yet" in run(store, "list").stdout


def test_an_interrupted_ingest_keeps_what_was_committed_and_resumes(tmp_path: Path) -> None:
    from sem_mem import SemanticMemory
    from sem_mem.core import INGEST_SLICE

    doc = tmp_path / "long.txt"
    doc.write_text(
        "\n\n".join(f"Paragraph {i} talks about topic number {i} at length." for i in range(150))
    )
    memory = SemanticMemory(str(tmp_path / "s"), embedder=HashingEmbedder())
    try:

        def stop_in_the_second_slice(done: int, total: int) -> None:
            if done > INGEST_SLICE + 3:
                raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            memory.ingest_pdf(
                doc, chunk_chars=80, overlap_chars=0, progress=stop_in_the_second_slice
            )
        assert len(memory) == INGEST_SLICE  # the first slice was committed and kept

        resumed = memory.ingest_pdf(doc, chunk_chars=80, overlap_chars=0)
        assert not resumed.already_ingested
        assert len(memory) == resumed.chunks_created == 150
        assert resumed.chunks_stored == 150 - INGEST_SLICE
        assert memory.ingest_pdf(doc, chunk_chars=80, overlap_chars=0).already_ingested
    finally:
        memory.close()
