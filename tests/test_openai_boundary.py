"""The OpenAI boundary, end to end: the official SDK over HTTP to a local fake server.

Checks what Sem-Mem sends (instructions, messages, previous_response_id, reasoning vs
temperature, the web search tool, batching) and what the caller gets back, including
every error path mapped to the SemMemError tree.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator

import numpy as np
import pytest
from fake_openai import ECHO_MARKER, FakeOpenAI, closed_port_url, fake_embedding
from hypothesis import given
from hypothesis import strategies as st

from sem_mem.embedders.openai import OpenAIEmbedder
from sem_mem.errors import (
    AuthenticationError,
    ConfigurationError,
    EmbeddingError,
    LLMError,
    ModelNotFoundError,
    ProviderUnavailableError,
    RateLimitError,
)
from sem_mem.llm._openai import MAX_BACKOFF, NO_KEY_PLACEHOLDER, backoff_delay
from sem_mem.llm.base import ChatMessage, ChatModel
from sem_mem.llm.chat_completions import ChatCompletionsModel
from sem_mem.llm.responses import ResponsesChatModel

KEY = "sk-test-secret-0123456789"
FAST = {"backoff_base": 0.001}  # retries without real waiting

THREAD = [
    ChatMessage("user", "My cat is called Miso."),
    ChatMessage("assistant", "Nice to meet Miso!"),
    ChatMessage("user", "What is my cat called?"),
]


@pytest.fixture
def server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(api_key=KEY) as srv:
        yield srv


@pytest.fixture
def responses_model(server: FakeOpenAI) -> Iterator[ResponsesChatModel]:
    with ResponsesChatModel(api_key=KEY, base_url=server.base_url, **FAST) as model:
        yield model


@pytest.fixture
def completions_model(server: FakeOpenAI) -> Iterator[ChatCompletionsModel]:
    with ChatCompletionsModel("llama3.1", api_key=KEY, base_url=server.base_url, **FAST) as m:
        yield m


@pytest.fixture(params=["responses", "chat_completions"])
def any_model(request: pytest.FixtureRequest, server: FakeOpenAI) -> Iterator[ChatModel]:
    cls = ResponsesChatModel if request.param == "responses" else ChatCompletionsModel
    with cls("gpt-4.1", api_key=KEY, base_url=server.base_url, max_retries=2, **FAST) as m:
        yield m


def _ask(model: ChatModel, text: str = "hello") -> str:
    return model.respond(instructions="Be brief.", messages=[ChatMessage("user", text)]).text


# --------------------------------------------------------------------------- Responses API
def test_responses_sends_instructions_thread_and_returns_answer(
    server: FakeOpenAI, responses_model: ResponsesChatModel
) -> None:
    result = responses_model.respond(instructions="You remember things.", messages=THREAD)

    assert result.text == f"{ECHO_MARKER} What is my cat called?"
    assert result.response_id is not None and result.response_id.startswith("resp_")
    assert result.model == "gpt-5.1"
    assert result.usage["output_tokens"] > 0
    assert result.usage["total_tokens"] == (
        result.usage["input_tokens"] + result.usage["output_tokens"]
    )
    (sent,) = server.requests_to("/responses")
    assert sent.api_key == KEY
    assert sent.body["model"] == "gpt-5.1"
    assert sent.body["instructions"] == "You remember things."
    assert sent.body["input"] == [{"role": m.role, "content": m.content} for m in THREAD]
    assert "previous_response_id" not in sent.body
    assert "tools" not in sent.body
    assert "max_output_tokens" not in sent.body


def test_responses_previous_response_id_sends_only_the_new_turn(
    server: FakeOpenAI, responses_model: ResponsesChatModel
) -> None:
    first = responses_model.respond(instructions="I", messages=THREAD[:1])
    thread = [THREAD[0], ChatMessage("assistant", first.text), THREAD[2]]

    second = responses_model.respond(
        instructions="I", messages=thread, previous_response_id=first.response_id
    )

    assert second.text == f"{ECHO_MARKER} What is my cat called?"
    assert second.response_id not in (None, first.response_id)
    body = server.bodies("/responses")[1]
    assert body["previous_response_id"] == first.response_id
    assert body["input"] == [{"role": "user", "content": "What is my cat called?"}]
    assert body["instructions"] == "I"  # instructions are not carried over by the API


@pytest.mark.parametrize("model_name", ["gpt-5.1", "o3", "o1"])
def test_responses_reasoning_models_get_effort_not_temperature(
    server: FakeOpenAI, responses_model: ResponsesChatModel, model_name: str
) -> None:
    responses_model.respond(instructions="", messages=THREAD, model=model_name)
    responses_model.respond(
        instructions="", messages=THREAD, model=model_name, reasoning_effort="high", temperature=0.2
    )

    default, explicit = server.bodies("/responses")
    assert default["model"] == model_name
    assert default["reasoning"] == {"effort": "low"}
    assert explicit["reasoning"] == {"effort": "high"}
    assert "temperature" not in default and "temperature" not in explicit


def test_responses_standard_models_get_temperature_not_reasoning(
    server: FakeOpenAI, responses_model: ResponsesChatModel
) -> None:
    responses_model.respond(instructions="", messages=THREAD, model="gpt-4.1")
    responses_model.respond(instructions="", messages=THREAD, model="gpt-4o", temperature=0.1)

    default, explicit = server.bodies("/responses")
    assert (default["model"], default["temperature"]) == ("gpt-4.1", 0.7)
    assert (explicit["model"], explicit["temperature"]) == ("gpt-4o", 0.1)
    assert "reasoning" not in default and "reasoning" not in explicit
    assert "instructions" not in default  # empty instructions are not sent


def test_responses_web_search_tool_only_when_asked(
    server: FakeOpenAI, responses_model: ResponsesChatModel
) -> None:
    with_search = responses_model.respond(
        instructions="", messages=THREAD, web_search=True, max_output_tokens=300
    )
    responses_model.respond(instructions="", messages=THREAD)

    on, off = server.bodies("/responses")
    assert on["tools"] == [{"type": "web_search"}]
    assert on["max_output_tokens"] == 300
    assert "tools" not in off
    # the output holds a web_search_call item before the message; the text is still found
    assert with_search.text == f"{ECHO_MARKER} What is my cat called?"


def test_responses_scripted_responder(
    server: FakeOpenAI, responses_model: ResponsesChatModel
) -> None:
    server.responder = lambda body: f"model={body['model']} turns={len(body['input'])}"

    assert responses_model.complete("hi", model="gpt-4.1") == "model=gpt-4.1 turns=1"


def test_responses_without_key_for_openai_is_a_configuration_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)

    with pytest.raises(ConfigurationError, match="OPENAI_API_KEY"):
        ResponsesChatModel()


# --------------------------------------------------------------------------- Chat Completions
def test_chat_completions_sends_system_and_full_thread(
    server: FakeOpenAI, completions_model: ChatCompletionsModel
) -> None:
    result = completions_model.respond(
        instructions="You remember things.",
        messages=THREAD,
        previous_response_id="resp_ignored",
        max_output_tokens=50,
    )

    assert result.text == f"{ECHO_MARKER} What is my cat called?"
    assert result.response_id is None  # no server-side state to chain on
    assert result.model == "llama3.1"
    assert set(result.usage) == {"input_tokens", "output_tokens", "total_tokens"}
    (body,) = server.bodies("/chat/completions")
    assert body["messages"] == [{"role": "system", "content": "You remember things."}] + [
        {"role": m.role, "content": m.content} for m in THREAD
    ]
    assert "previous_response_id" not in body
    assert body["temperature"] == 0.7 and "reasoning_effort" not in body
    assert body["max_tokens"] == 50


def test_chat_completions_reasoning_models_get_reasoning_effort(
    server: FakeOpenAI, completions_model: ChatCompletionsModel
) -> None:
    completions_model.respond(
        instructions="", messages=THREAD, model="o3", reasoning_effort="medium", temperature=0.3
    )

    (body,) = server.bodies("/chat/completions")
    assert body["model"] == "o3"
    assert body["reasoning_effort"] == "medium"
    assert "temperature" not in body
    assert body["messages"][0] == {"role": "user", "content": THREAD[0].content}  # no system


def test_chat_completions_refuses_web_search_without_calling(
    server: FakeOpenAI, completions_model: ChatCompletionsModel
) -> None:
    assert not completions_model.supports_web_search
    with pytest.raises(ConfigurationError, match="Responses API"):
        completions_model.respond(instructions="", messages=THREAD, web_search=True)
    assert server.requests == []


def test_chat_completions_local_server_needs_no_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with (
        FakeOpenAI() as srv,
        ChatCompletionsModel("llama3.1", base_url=srv.base_url) as model,
    ):
        assert _ask(model, "ping") == f"{ECHO_MARKER} ping"
        assert srv.requests[0].api_key == NO_KEY_PLACEHOLDER


# --------------------------------------------------------------------------- chat errors
def test_rejected_key_is_authentication_error_without_the_key(server: FakeOpenAI) -> None:
    with (
        ResponsesChatModel("gpt-4.1", api_key="sk-wrong-key", base_url=server.base_url) as m,
        pytest.raises(AuthenticationError, match="rejected the API key") as info,
    ):
        _ask(m)
    assert "sk-wrong" not in str(info.value)
    assert f"127.0.0.1:{server.port}" in str(info.value)
    assert len(server.requests) == 1  # a bad key is not retried


def test_forbidden_is_authentication_error(any_model: ChatModel, server: FakeOpenAI) -> None:
    server.fail_next(403)
    with pytest.raises(AuthenticationError, match="403"):
        _ask(any_model)


def test_unknown_model_is_model_not_found(server: FakeOpenAI) -> None:
    server.known_models = {"gpt-4.1"}
    for cls in (ResponsesChatModel, ChatCompletionsModel):
        with (
            cls("gpt-9-imaginary", api_key=KEY, base_url=server.base_url) as model,
            pytest.raises(ModelNotFoundError, match="unknown model 'gpt-9-imaginary'"),
        ):
            _ask(model)
    assert len(server.requests) == 2  # one per model: a 404 is not retried


def test_rate_limited_once_then_success(any_model: ChatModel, server: FakeOpenAI) -> None:
    server.fail_next(429)

    assert _ask(any_model, "again") == f"{ECHO_MARKER} again"
    assert len(server.requests) == 2


def test_rate_limited_forever_is_rate_limit_error(any_model: ChatModel, server: FakeOpenAI) -> None:
    server.fail_next(429, times=10)

    with pytest.raises(RateLimitError, match="after 2 retries") as info:
        _ask(any_model)
    assert "gpt-4.1" in str(info.value)
    assert len(server.requests) == 3  # the first try and max_retries=2 retries


def test_insufficient_quota_is_not_retried(any_model: ChatModel, server: FakeOpenAI) -> None:
    server.fail_next(429, times=5, code="insufficient_quota", message="You exceeded your quota.")

    with pytest.raises(RateLimitError, match="exceeded your quota"):
        _ask(any_model)
    assert len(server.requests) == 1


def test_server_errors_are_retried_then_succeed(any_model: ChatModel, server: FakeOpenAI) -> None:
    server.fail_next(500)
    server.fail_next(503)

    assert _ask(any_model, "still there?") == f"{ECHO_MARKER} still there?"
    assert len(server.requests) == 3


def test_server_errors_forever_are_provider_unavailable(
    any_model: ChatModel, server: FakeOpenAI
) -> None:
    server.fail_next(500, times=10)

    with pytest.raises(ProviderUnavailableError, match="HTTP 500") as info:
        _ask(any_model)
    assert f"127.0.0.1:{server.port}" in str(info.value)
    assert len(server.requests) == 3


def test_bad_request_is_llm_error_not_retried(
    server: FakeOpenAI, responses_model: ResponsesChatModel
) -> None:
    with pytest.raises(LLMError, match="not found") as info:
        responses_model.respond(
            instructions="", messages=THREAD, previous_response_id="resp_unknown"
        )
    assert type(info.value) is LLMError
    assert len(server.requests) == 1


def test_timeout_is_provider_unavailable(server: FakeOpenAI) -> None:
    server.delay_next(30)  # the server thread waits; stop() wakes it
    with (
        ResponsesChatModel(
            "gpt-4.1", api_key=KEY, base_url=server.base_url, timeout=0.5, max_retries=0
        ) as model,
        pytest.raises(ProviderUnavailableError, match=r"timed out after 0\.5 s"),
    ):
        _ask(model)


def test_connection_refused_is_provider_unavailable() -> None:
    with closed_port_url() as url:
        host = url.split("//")[1].split("/")[0]
        for cls in (ResponsesChatModel, ChatCompletionsModel):
            with (
                cls("gpt-4.1", api_key=KEY, base_url=url, max_retries=1, **FAST) as model,
                pytest.raises(ProviderUnavailableError, match="could not connect") as info,
            ):
                _ask(model)
            assert host in str(info.value)
            assert isinstance(info.value.__cause__, Exception)  # the SDK's error is kept


# --------------------------------------------------------------------------- embedder
@pytest.fixture
def embedder(server: FakeOpenAI) -> Iterator[OpenAIEmbedder]:
    with OpenAIEmbedder(api_key=KEY, base_url=server.base_url, batch_size=3, **FAST) as emb:
        yield emb


@pytest.mark.parametrize("concurrency", [1, 4])
def test_embedder_batches_and_preserves_order(server: FakeOpenAI, concurrency: int) -> None:
    texts = [f"memory number {i} about topic {i % 3}" for i in range(10)]
    seen: list[tuple[int, int]] = []
    with OpenAIEmbedder(
        api_key=KEY, base_url=server.base_url, batch_size=3, max_concurrency=concurrency, **FAST
    ) as emb:
        vectors = emb.encode(texts, progress=lambda done, total: seen.append((done, total)))

    expected = np.stack([fake_embedding(t, 1536) for t in texts])
    np.testing.assert_allclose(vectors, expected, atol=1e-6)
    bodies = server.bodies("/embeddings")
    assert len(bodies) == 4
    assert sorted(len(b["input"]) for b in bodies) == [1, 3, 3, 3]
    assert sorted(t for b in bodies for t in b["input"]) == sorted(texts)
    assert seen == [(3, 10), (6, 10), (9, 10), (10, 10)]


def test_embedder_decodes_base64_and_floats(server: FakeOpenAI) -> None:
    text = "the quick brown fox"
    with (
        OpenAIEmbedder(api_key=KEY, base_url=server.base_url) as b64,
        OpenAIEmbedder(api_key=KEY, base_url=server.base_url, encoding_format="float") as floats,
    ):
        from_b64, from_floats = b64.embed(text), floats.embed(text)

    assert [b["encoding_format"] for b in server.bodies("/embeddings")] == ["base64", "float"]
    np.testing.assert_allclose(from_b64, fake_embedding(text), atol=1e-7)
    np.testing.assert_allclose(from_floats, from_b64, atol=1e-6)
    assert from_b64.dtype == np.float32


def test_embedder_probes_unknown_model_dimensions_once(server: FakeOpenAI) -> None:
    with OpenAIEmbedder("nomic-embed-text", api_key=KEY, base_url=server.base_url) as emb:
        assert server.requests == []  # nothing happens before it is needed
        assert emb.dimensions == 768
        assert emb.dimensions == 768
        assert emb.embed("hello").shape == (768,)

    probe, real = server.bodies("/embeddings")
    assert len(probe["input"]) == 1 and "dimensions" not in probe
    assert real["input"] == ["hello"]


def test_embedder_learns_dimensions_from_first_batch_without_probe(server: FakeOpenAI) -> None:
    with OpenAIEmbedder("all-minilm", api_key=KEY, base_url=server.base_url) as emb:
        vectors = emb.encode(["a b", "c d"])
        assert emb.dimensions == 384
    assert vectors.shape == (2, 384)
    assert len(server.requests) == 1


def test_embedder_shortened_dimensions(server: FakeOpenAI) -> None:
    with OpenAIEmbedder(
        "text-embedding-3-large", api_key=KEY, base_url=server.base_url, dimensions=256
    ) as emb:
        assert emb.dimensions == 256
        assert emb.embed("short").shape == (256,)
        assert emb.model_id == "openai-compatible:text-embedding-3-large?dimensions=256"
    assert server.bodies("/embeddings")[0]["dimensions"] == 256


def test_embedder_model_id_is_stable_and_has_no_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with OpenAIEmbedder(api_key=KEY) as openai_emb:  # no request is made
        assert openai_emb.model_id == "openai:text-embedding-3-small"
        assert openai_emb.needs_key and openai_emb.dimensions == 1536
    with OpenAIEmbedder(api_key=KEY, dimensions=1536) as same:
        assert same.model_id == "openai:text-embedding-3-small"  # native size: same vectors
    with OpenAIEmbedder("nomic-embed-text", base_url="http://user:pw@gpu-box:11434/v1") as local:
        assert local.model_id == "openai-compatible:nomic-embed-text"
        assert not local.needs_key
        assert "pw" not in repr(local) and "11434" not in local.model_id


def test_embedder_sends_empty_text_as_a_space(server: FakeOpenAI, embedder: OpenAIEmbedder) -> None:
    vectors = embedder.encode(["", "text"])
    assert vectors.shape == (2, 1536)
    assert server.bodies("/embeddings")[0]["input"] == [" ", "text"]


def test_fake_embeddings_make_retrieval_meaningful(embedder: OpenAIEmbedder) -> None:
    query, near, far = embedder.encode(
        ["where does my cat sleep", "my cat sleeps on the sofa", "quarterly stock market report"]
    )
    assert float(query @ near) > float(query @ far) + 0.3


def test_embedder_rejected_key(server: FakeOpenAI) -> None:
    with (
        OpenAIEmbedder(api_key="sk-wrong", base_url=server.base_url) as emb,
        pytest.raises(EmbeddingError, match="rejected the API key") as info,
    ):
        emb.embed("x")
    assert isinstance(info.value.__cause__, AuthenticationError)
    assert "text-embedding-3-small" in str(info.value)
    assert f"127.0.0.1:{server.port}" in str(info.value)
    assert "sk-wrong" not in str(info.value)


def test_embedder_unknown_model(server: FakeOpenAI) -> None:
    server.known_models = {"text-embedding-3-small"}
    with (
        OpenAIEmbedder("nomic-embed-txt", api_key=KEY, base_url=server.base_url) as emb,
        pytest.raises(EmbeddingError, match="unknown model 'nomic-embed-txt'") as info,
    ):
        _ = emb.dimensions  # the probe is where it fails
    assert isinstance(info.value.__cause__, ModelNotFoundError)


def test_embedder_retries_rate_limit_then_succeeds(
    server: FakeOpenAI, embedder: OpenAIEmbedder
) -> None:
    server.fail_next(429)
    assert embedder.embed("persist").shape == (1536,)
    assert len(server.requests) == 2


def test_embedder_gives_up_after_retries(server: FakeOpenAI) -> None:
    server.fail_next(503, times=10)
    with (
        OpenAIEmbedder(api_key=KEY, base_url=server.base_url, max_retries=2, **FAST) as emb,
        pytest.raises(EmbeddingError, match="after 2 retries") as info,
    ):
        emb.encode(["a", "b"])
    assert isinstance(info.value.__cause__, ProviderUnavailableError)
    assert len(server.requests) == 3


def test_embedder_connection_refused() -> None:
    with (
        closed_port_url() as url,
        OpenAIEmbedder(base_url=url, max_retries=0) as emb,
        pytest.raises(EmbeddingError, match="could not connect") as info,
    ):
        emb.embed("x")
    assert isinstance(info.value.__cause__, ProviderUnavailableError)


def test_embedder_rejects_bad_settings() -> None:
    with pytest.raises(ConfigurationError, match="batch_size"):
        OpenAIEmbedder(base_url="http://127.0.0.1:1/v1", batch_size=0)
    with pytest.raises(ConfigurationError, match="dimensions"):
        OpenAIEmbedder(base_url="http://127.0.0.1:1/v1", dimensions=-3)


# --------------------------------------------------------------------------- backoff
@given(
    attempt=st.integers(min_value=0, max_value=50),
    base=st.floats(min_value=0.0, max_value=5.0),
)
def test_backoff_grows_exponentially_with_jitter_and_is_capped(attempt: int, base: float) -> None:
    delay = backoff_delay(attempt, base)
    full = min(base * 2.0**attempt, MAX_BACKOFF)
    assert 0.5 * full <= delay <= full


def test_backoff_honours_retry_after_up_to_the_cap() -> None:
    assert backoff_delay(0, 0.5, retry_after=2.0) == 2.0
    assert backoff_delay(3, 0.5, retry_after=0.0) == 0.0
    assert backoff_delay(0, 0.5, retry_after=3600.0) == MAX_BACKOFF


def test_missing_openai_extra_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "openai", None)  # `import openai` now fails

    with pytest.raises(ConfigurationError, match=r'pip install "sem-mem\[openai\]"'):
        ResponsesChatModel(api_key=KEY)
    with pytest.raises(ConfigurationError, match=r"sem-mem\[openai\]"):
        OpenAIEmbedder(api_key=KEY)
