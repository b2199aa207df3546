"""Shared fixtures: real SQLite stores in tmp_path with a small deterministic embedder."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from embedders import HashingEmbedder

from sem_mem import SemanticMemory

ROOT = Path(__file__).resolve().parent.parent

#: a small clinical store the engine and conformance tests share
FACTS = [
    "The patient is allergic to penicillin",
    "Sam is a cardiology fellow",
    "Sam lives in Boston",
    "The clinic opens at 8am on weekdays",
    "Metformin is first-line therapy for type 2 diabetes",
    "Dr. Okafor prefers morning appointments",
    "The hospital parking garage is on Elm Street",
    "Warfarin interacts with many antibiotics",
]

# The local model's ONNX graph is built once per test session, not in the user's cache.
os.environ.setdefault(
    "SEMMEM_MODEL_CACHE", os.path.join(tempfile.gettempdir(), f"sem-mem-test-models-{os.getuid()}")
)

# Tests never read the developer's real configuration.
for _name in (
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "SEMMEM_EMBEDDER",
    "EMBEDDING_MODEL",
    "MEMORY_STORAGE_DIR",
    "SEMMEM_API_URL",
    "SEMMEM_DATABASE_URL",
    "CHAT_MODEL",
    "SEMMEM_RERANKER",
):
    os.environ.pop(_name, None)


@pytest.fixture
def make_memory(tmp_path: Path) -> Iterator[Callable[..., SemanticMemory]]:
    """Open SemanticMemory objects on tmp stores; all are closed after the test."""
    opened: list[SemanticMemory] = []

    def make(storage: Path | str | None = None, **kwargs: object) -> SemanticMemory:
        kwargs.setdefault("embedder", HashingEmbedder())
        memory = SemanticMemory(str(storage or tmp_path / "store"), **kwargs)  # type: ignore[arg-type]
        opened.append(memory)
        return memory

    yield make
    for memory in opened:
        memory.close()


@pytest.fixture
def memory(make_memory: Callable[..., SemanticMemory]) -> SemanticMemory:
    return make_memory()


def run_python(
    code: str, *, timeout: float = 120, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter with the package and tests importable."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "tests")])
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout, env=env
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"subprocess failed ({proc.returncode}):\n{proc.stderr}")
    return proc


def python_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "tests")])
    return env


CHAT_KEY = "sk-test"  # the API key the chat tests' fake model server expects


@pytest.fixture
def fake() -> Iterator[Any]:
    """A fake OpenAI-compatible server on 127.0.0.1 whose model answers "noted"."""
    from fake_openai import FakeOpenAI

    with FakeOpenAI(api_key=CHAT_KEY) as server:
        server.responder = lambda body: "noted"
        yield server
