"""Which embedder a SemanticMemory uses, chosen in one place (embedders/factory.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from fake_openai import FakeOpenAI

from sem_mem import ConfigurationError, SemanticMemory


def test_no_key_means_local_minilm_offline(tmp_path: Path) -> None:
    with SemanticMemory(str(tmp_path / "m"), dotenv_path=None) as memory:
        assert memory.embedder.model_id == "local:sentence-transformers/all-MiniLM-L6-v2"
        assert memory.embedder.dimensions == 384
        memory.remember("The patient is allergic to penicillin")
        memory.remember("Sam lives in Boston")
        top = memory.recall("Which drug allergy does the patient have?", mode="vector", limit=1)
        assert top[0].text == "The patient is allergic to penicillin"
    assert list(Path(os.environ["SEMMEM_MODEL_CACHE"]).glob("*.onnx"))  # built once, cached


def test_a_key_selects_openai_embeddings_over_http(tmp_path: Path) -> None:
    with (
        FakeOpenAI(api_key="sk-test") as server,
        SemanticMemory(
            str(tmp_path / "o"), api_key="sk-test", base_url=server.base_url, embedder="openai"
        ) as memory,
    ):
        assert memory.embedder.dimensions == 1536
        memory.remember_batch(["Sam lives in Boston", "Sam is a cardiology fellow"])
        hits = memory.recall("Boston", mode="vector", limit=1)
        assert hits[0].text == "Sam lives in Boston"
        sent = [t for body in server.bodies("/v1/embeddings") for t in body["input"]]
        assert sent == ["Sam lives in Boston", "Sam is a cardiology fellow", "Boston"]
        assert all(r.api_key == "sk-test" for r in server.requests_to("/v1/embeddings"))


def test_reopening_uses_the_stores_own_model(tmp_path: Path) -> None:
    store = tmp_path / "s"
    with FakeOpenAI(api_key="sk-test") as server:
        with SemanticMemory(
            str(store), api_key="sk-test", base_url=server.base_url, embedder="openai"
        ) as memory:
            memory.remember("Sam lives in Boston")
        # auto mode: the store says it was built with OpenAI embeddings, so it keeps them
        with SemanticMemory(str(store), api_key="sk-test", base_url=server.base_url) as again:
            assert again.embedder.model_id == memory.embedder.model_id
    with pytest.raises(ConfigurationError, match="OPENAI_API_KEY"):
        SemanticMemory(str(store), dotenv_path=None)  # OpenAI store, no key: a clear error


def test_a_key_with_another_server_embeds_locally_unless_a_remote_model_is_named(
    tmp_path: Path,
) -> None:
    with FakeOpenAI(api_key="sk-test") as server:
        # an Ollama/vLLM-style chat server: auto must not ask it for text-embedding-3-small
        with SemanticMemory(
            str(tmp_path / "a"), api_key="sk-test", base_url=server.base_url, dotenv_path=None
        ) as memory:
            assert memory.embedder.model_id.startswith("local:")
            memory.remember("Sam lives in Boston")
        assert server.requests_to("/v1/embeddings") == []
        with SemanticMemory(
            str(tmp_path / "b"),
            api_key="sk-test",
            base_url=server.base_url,
            embedding_model="nomic-embed-text",
            dotenv_path=None,
        ) as memory:
            memory.remember("Sam lives in Boston")
            assert memory.embedder.dimensions == 768
        assert {b["model"] for b in server.bodies("/v1/embeddings")} == {"nomic-embed-text"}


def test_embeddings_can_live_on_another_server_than_the_chat_model(tmp_path: Path) -> None:
    with FakeOpenAI(api_key="sk-test") as chat, FakeOpenAI(api_key="sk-test") as embeddings:
        with SemanticMemory(
            str(tmp_path / "c"),
            api_key="sk-test",
            base_url=chat.base_url,
            openai_embedding_base_url=embeddings.base_url,
            dotenv_path=None,
        ) as memory:
            memory.remember("Sam lives in Boston")
            assert memory.embedder.dimensions == 1536
        assert chat.requests_to("/v1/embeddings") == []
        assert [b["input"] for b in embeddings.bodies("/v1/embeddings")] == [
            ["Sam lives in Boston"]
        ]
