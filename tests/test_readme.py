"""The README's Python examples run as written (docs that cannot rot)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fake_openai import FakeOpenAI

README = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
BLOCKS = re.findall(r"```python\n(.*?)```", README, re.S)


def _block(needle: str) -> str:
    return next(b for b in BLOCKS if needle in b)


def test_quickstart_runs_offline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    exec(compile(_block('SemanticMemory(storage_dir="./local_memory")'), "README", "exec"), {})
    out = capsys.readouterr().out
    assert "The patient is allergic to penicillin" in out
    assert (tmp_path / "local_memory" / "instructions.txt").exists()


def test_chat_example_runs_against_an_openai_compatible_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with FakeOpenAI() as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        monkeypatch.setenv("SEMMEM_EMBEDDER", "local")
        scope: dict[str, object] = {}
        exec(compile(_block("MemoryChat(memory)"), "README", "exec"), scope)
        chat_requests = server.bodies("/v1/chat/completions")
        answers = [b for b in chat_requests if b["model"] == "gpt-5.1"]  # not expansions
        second = next(b for b in answers if "Where do I live" in str(b["messages"][-1]["content"]))
        prompt = str(second["messages"])
        assert "Boston" in prompt and "cardiology" in prompt  # answered from memory
        assert scope["response"]
        scope["memory"].close()  # type: ignore[attr-defined]


def test_migration_example_names_real_functions() -> None:
    import sem_mem

    for name in re.findall(r"from sem_mem import ([\w, ]+)", README):
        for item in name.split(","):
            assert hasattr(sem_mem, item.strip()), item


def test_conversation_example_runs_offline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    exec(compile(_block("remember_conversation("), "README", "exec"), {})
    first, second = capsys.readouterr().out.splitlines()
    assert first.startswith("user: I moved to Chicago") and "2024-05-08-chat" in first
    # both memories about work in that window; the badge first
    assert second == "[\"Sam's badge number is 4471\", 'user: On the first of July.']"
