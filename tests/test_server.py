"""The HTTP API, end to end: a real uvicorn server on 127.0.0.1 called with httpx."""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from conftest import ROOT, python_env
from embedders import HashingEmbedder
from fake_openai import FakeOpenAI
from fpdf import FPDF
from live_server import make_settings, serve, serve_app

from sem_mem import errors as core
from sem_mem.ingest import DocumentError
from sem_mem.server import ServerConfig, create_app
from sem_mem.server.errors import (
    AuthenticationRequired,
    NamespaceForbidden,
    error_response,
)
from sem_mem.server.limits import BodyTooLarge

# ----------------------------------------------------------------------------- helpers


def make_pdf(pages: list[str], *, password: str | None = None) -> bytes:
    pdf = FPDF()
    for text in pages:
        pdf.add_page()
        pdf.set_font("Helvetica", size=12)
        pdf.multi_cell(0, 8, text)
    if password:
        pdf.set_encryption(owner_password="owner", user_password=password)
    return bytes(pdf.output())


def image_only_pdf() -> bytes:
    pdf = FPDF()
    pdf.add_page()
    pdf.rect(20, 20, 80, 60, style="F")
    return bytes(pdf.output())


def assert_error(response: httpx.Response, status: int, error: str | None = None) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) >= {"error", "detail"}
    assert "Traceback" not in response.text and 'File "' not in response.text
    if error is not None:
        assert body["error"] == error
    return body


@pytest.fixture
def client(tmp_path: Path) -> Iterator[httpx.Client]:
    config = ServerConfig(max_batch=50, max_body_bytes=64 * 1024, max_upload_bytes=200_000)
    with (
        serve(tmp_path / "store", config=config, max_text_chars=2_000) as url,
        httpx.Client(base_url=url, timeout=30) as http,
    ):
        yield http


# ----------------------------------------------------------------------------- the seed's API


def test_health_docs_and_openapi(client: httpx.Client) -> None:
    assert client.get("/health").json() == {"status": "ok", "version": "0.1.0", "auth": False}
    docs = client.get("/docs")
    assert docs.status_code == 200
    # offline: every script and stylesheet the page loads comes from this server
    assets = re.findall(r'(?:src|href)="([^"]+)"', docs.text)
    assert assets and not [a for a in assets if a.startswith(("http:", "https:", "//"))]
    for asset in assets:
        assert client.get(asset).status_code == 200, asset
    assert "/openapi.json" in docs.text
    paths = client.get("/openapi.json").json()["paths"]
    for path in (
        "/health", "/chat", "/remember", "/remember/batch", "/recall", "/instructions",
        "/cache", "/stats", "/model", "/upload/pdf", "/threads/save", "/memories",
        "/memories/{memory_id}", "/memories/{memory_id}/history", "/export", "/import",
        "/metrics", "/sessions", "/sessions/{session_id}", "/conversations",
    ):  # fmt: skip
        assert path in paths, path
    assert set(paths["/instructions"]) == {"get", "put", "post"}
    assert set(paths["/model"]) == {"get", "put"}


def test_remember_then_recall(client: httpx.Client) -> None:
    stored = client.post(
        "/remember", json={"text": "I am a physician in Chicago", "metadata": {"who": "me"}}
    ).json()
    client.post("/remember", json={"text": "The cafeteria closes at 3pm"})
    again = client.post(
        "/remember", json={"text": "I am a physician in Chicago", "metadata": {"who": "me"}}
    )
    assert again.json()["id"] == stored["id"]  # deduplicated
    body = client.post("/recall", json={"query": "physician Chicago", "limit": 1}).json()
    assert [m["id"] for m in body["memories"]] == [stored["id"]]
    hit = body["memories"][0]
    assert hit["metadata"] == {"who": "me"} and hit["tier"] in ("L1", "L2")
    assert set(hit) == {
        "id",
        "text",
        "score",
        "similarity",
        "metadata",
        "tier",
        "created_at",
        "source",
        "timestamp",
        "thread_id",
        "position",
        "speaker",
    }
    assert any("recall" in line for line in body["logs"])
    none = client.post("/recall", json={"query": "physician", "threshold": 0.99}).json()
    assert none["memories"] == []


def test_remember_batch_and_its_limit(client: httpx.Client) -> None:
    body = client.post(
        "/remember/batch",
        json={"texts": ["alpha fact", "beta fact"], "metadata": [{"n": 1}, None]},
    ).json()
    assert body["count"] == 2
    first = client.get(f"/memories/{body['ids'][0]}").json()
    assert first["text"] == "alpha fact" and first["metadata"] == {"n": 1}
    over = client.post("/remember/batch", json={"texts": [f"t{i}" for i in range(51)]})
    err = assert_error(over, 413, "limit_exceeded")
    assert (err["limit"], err["maximum"], err["actual"]) == ("max_batch", 50, 51)
    assert client.get("/memories").json()["memories"].__len__() == 2  # nothing of it stored


def test_text_and_body_limits_name_the_limit(client: httpx.Client) -> None:
    err = assert_error(client.post("/remember", json={"text": "x " * 1500}), 413)
    assert err["limit"] == "max_text_chars" and err["maximum"] == 2_000
    big = json.dumps({"text": "y" * 70_000})
    err = assert_error(
        client.post("/remember", content=big, headers={"content-type": "application/json"}), 413
    )
    assert err["limit"] == "max_body_bytes" and err["actual"] == len(big)

    def chunks() -> Iterator[bytes]:  # no Content-Length: refused while streaming
        yield b'{"text": "'
        for _ in range(20):
            yield b"z" * 8192
        yield b'"}'

    err = assert_error(
        client.post("/remember", content=chunks(), headers={"content-type": "application/json"}),
        413,
    )
    assert err["limit"] == "max_body_bytes"
    assert client.get("/stats").json()["l1"]["size"] == 0


def test_bad_input_is_4xx_without_traceback(client: httpx.Client) -> None:
    err = assert_error(client.post("/recall", json={"query": "   "}), 422, "validation_error")
    assert "query" in err["detail"]
    err = assert_error(client.post("/recall", json={"limit": 3}), 422)
    assert "query" in err["detail"]
    assert_error(
        client.post("/recall", content=b"{nope", headers={"content-type": "application/json"}),
        400,
        "malformed_request",
    )
    assert_error(client.post("/recall", json={"query": "q", "bogus": 1}), 422)
    assert_error(client.post("/recall", json={"query": "q", "limit": 0}), 422)
    infinite = b'{"text": "t", "metadata": {"x": Infinity}}'
    err = assert_error(
        client.post("/remember", content=infinite, headers={"content-type": "application/json"}),
        422,
    )
    assert "metadata" in err["detail"]
    assert_error(client.get("/memories", params={"metadata": "[1, 2]"}), 422)
    assert_error(client.get("/memories", params={"source": "nope"}), 422)
    assert_error(client.delete("/memories/not-an-id"), 404, "not_found")


def test_instructions_cache_stats_model(client: httpx.Client) -> None:
    assert client.get("/instructions").json() == {"instructions": ""}
    assert client.put("/instructions", json={"text": "Be brief."}).json() == {
        "instructions": "Be brief.\n"
    }
    body = client.post("/instructions", json={"text": "Cite sources."}).json()
    assert body["instructions"] == "Be brief.\nCite sources.\n"
    client.post("/remember", json={"text": "hot memory"})
    for _ in range(3):
        client.post("/recall", json={"query": "hot memory"})
    cache = client.get("/cache").json()
    assert set(cache) == {"protected", "probation"}
    assert any(e["text"] == "hot memory" for e in cache["protected"] + cache["probation"])
    stats = client.get("/stats").json()
    assert stats["namespace"] == "default" and stats["embedder"]["model_id"] == "test:hashing-64"
    assert client.get("/model").json() == {
        "model": "gpt-5.1", "reasoning_effort": "low", "chat_enabled": False,
        "chat_api": "", "web_search_unavailable": "no chat model is configured",
    }  # fmt: skip
    changed = client.put("/model", json={"model": "gpt-4.1-mini", "reasoning_effort": "high"})
    assert changed.json()["model"] == "gpt-4.1-mini"
    assert client.get("/model").json()["reasoning_effort"] == "high"
    assert_error(client.put("/model", json={"reasoning_effort": "extreme"}), 422)


def test_threads_save(client: httpx.Client) -> None:
    messages = [
        {"role": "user", "content": "What is my blood type?"},
        {"role": "assistant", "content": "You said it is O negative."},
        {"role": "user", "content": "Thanks"},
    ]
    body = client.post("/threads/save", json={"messages": messages, "title": "bloods"}).json()
    assert (body["count"], body["thread_id"]) == (3, "bloods")
    saved = client.get("/memories", params={"source": "thread"}).json()["memories"]
    assert sorted(m["text"] for m in saved) == [
        "Assistant: You said it is O negative.",
        "User: Thanks",
        "User: What is my blood type?",
    ]
    assert {m["thread_id"] for m in saved} == {"bloods"}
    again = client.post("/threads/save", json={"messages": messages, "title": "bloods"}).json()
    assert again["ids"] == body["ids"]  # the same turns again: refreshed, not copied
    assert_error(client.post("/threads/save", json={}), 422)


# ----------------------------------------------------------------------------- uploads


def upload(client: httpx.Client, name: str, data: bytes, ctype: str = "application/pdf"):
    return client.post("/upload/pdf", files={"file": (name, data, ctype)})


def test_upload_real_pdf_once(client: httpx.Client) -> None:
    pdf = make_pdf(
        [
            "Hypertension guideline. Start treatment when blood pressure exceeds 140/90. " * 5,
            "Follow-up visits every three months. Measure potassium after starting diuretics.",
        ]
    )
    first = upload(client, "guideline.pdf", pdf)
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["filename"] == "guideline.pdf" and body["pages"] == 2
    assert body["chunks_created"] >= 1 and body["chunks_stored"] == body["chunks_created"]
    again = upload(client, "guideline.pdf", pdf).json()
    assert again["chunks_stored"] == 0 and again["already_ingested"] is True
    hits = client.post("/recall", json={"query": "potassium diuretics", "limit": 1}).json()
    assert "potassium" in hits["memories"][0]["text"]
    assert hits["memories"][0]["metadata"]["file"] == "guideline.pdf"
    listed = client.get("/memories", params={"source": "pdf", "limit": 100}).json()
    assert len(listed["memories"]) == body["chunks_created"]


def test_upload_bad_pdfs(client: httpx.Client) -> None:
    corrupt = make_pdf(["some text"])[:200]
    err = assert_error(upload(client, "broken.pdf", corrupt), 422, "document_error")
    assert err["reason"] == "corrupt"
    err = assert_error(upload(client, "locked.pdf", make_pdf(["secret"], password="pw")), 422)
    assert err["reason"] == "encrypted" and "password" in err["detail"]
    scanned = upload(client, "scan.pdf", image_only_pdf()).json()
    assert scanned["chunks_created"] == 0 and scanned["has_text"] is False
    assert "no text layer" in scanned["note"]
    assert_error(upload(client, "notes.pdf", b"plain words"), 422)
    err = assert_error(upload(client, "huge.pdf", b"%PDF-1.4\n" + b"0" * 300_000), 413)
    assert err["limit"] == "max_upload_bytes"


def test_upload_markdown_and_text(client: httpx.Client) -> None:
    md = b"# Cardiology\n\nBeta blockers reduce heart rate.\n\n## Dosing\n\nStart low, go slow.\n"
    body = upload(client, "notes.md", md, "text/markdown").json()
    assert body["kind"] == "markdown" and body["chunks_stored"] >= 1
    txt = upload(client, "plain.txt", b"Aspirin is an antiplatelet drug.", "text/plain").json()
    assert txt["kind"] == "text" and txt["chunks_stored"] == 1


# ----------------------------------------------------------------------------- /memories


def test_memories_crud_history_and_filters(client: httpx.Client) -> None:
    ids = client.post(
        "/remember/batch",
        json={"texts": [f"note {i}" for i in range(5)], "metadata": {"topic": "notes"}},
    ).json()["ids"]
    other = client.post("/remember", json={"text": "unrelated", "metadata": {"topic": "x"}}).json()
    page = client.get("/memories", params={"limit": 2}).json()
    assert len(page["memories"]) == 2 and page["next_offset"] == 2
    everything: list[str] = []
    offset: int | None = 0
    while offset is not None:
        page = client.get("/memories", params={"limit": 4, "offset": offset}).json()
        everything += [m["id"] for m in page["memories"]]
        offset = page["next_offset"]
    assert sorted(everything) == sorted([*ids, other["id"]])
    only = client.get("/memories", params={"metadata": json.dumps({"topic": "x"})}).json()
    assert [m["id"] for m in only["memories"]] == [other["id"]]
    future = client.get("/memories", params={"since": "2999-01-01T00:00:00Z"}).json()
    assert future["memories"] == []
    assert len(client.get("/memories", params={"until": 4102444800}).json()["memories"]) == 6

    patched = client.patch(f"/memories/{ids[0]}", json={"text": "note zero, edited"}).json()
    assert patched["text"] == "note zero, edited" and patched["metadata"] == {"topic": "notes"}
    assert_error(client.patch(f"/memories/{ids[0]}", json={}), 422)
    events = client.get(f"/memories/{ids[0]}/history").json()["events"]
    assert [e["event"] for e in events] == ["created", "updated"]
    assert events[0]["text"] == "note 0"
    assert client.delete(f"/memories/{ids[1]}").status_code == 204
    assert_error(client.get(f"/memories/{ids[1]}"), 404)
    assert_error(client.delete(f"/memories/{ids[1]}"), 404)
    assert_error(client.get("/memories/missing/history"), 404)


def decoded(line: str) -> dict:
    record = json.loads(line)
    if "embedding" in record:
        record["embedding"] = np.frombuffer(base64.b64decode(record["embedding"]), "<f4")
    return record


def test_export_import_round_trip(tmp_path: Path) -> None:
    app = create_app(
        make_settings(tmp_path / "a"), embedder=HashingEmbedder(), config=ServerConfig()
    )
    with serve_app(app) as url, httpx.Client(base_url=url, timeout=30) as a:
        ids = a.post("/remember/batch", json={"texts": ["old fact", "fact two"]}).json()["ids"]
        new = a.post("/remember", json={"text": "new fact", "metadata": {"v": 2}}).json()["id"]
        # supersede through the engine: the HTTP API has no endpoint for it
        app.state.registry.open("default").sync.supersede(ids[0], new, "corrected")
        a.put("/instructions", json={"text": "Be kind."})
        for _ in range(3):
            a.post("/recall", json={"query": "fact two", "limit": 1})
        exported = a.get("/export").text
    assert exported.count('"type":"memory"') == 3
    assert '"status":"superseded"' in exported
    with serve(tmp_path / "b") as url, httpx.Client(base_url=url, timeout=30) as b:
        report = b.post(
            "/import?with_instructions=true",
            content=exported.encode(),
            headers={"content-type": "application/x-ndjson"},
        ).json()
        assert report == {
            "imported": 3, "skipped_existing": 0, "reembedded": 0, "instructions": True,
            "instructions_skipped": False,
        }  # fmt: skip
        again = b.post("/import", content=exported.encode()).json()
        assert again["imported"] == 0 and again["skipped_existing"] == 3
        # without the flag the file's instructions are reported, never applied
        assert (again["instructions"], again["instructions_skipped"]) == (False, True)
        round_trip = b.get("/export").text
        assert b.get(f"/memories/{new}").json()["metadata"] == {"v": 2}
        assert b.get(f"/memories/{ids[1]}").json()["hit_count"] == 3
        assert b.get(f"/memories/{ids[0]}").json()["superseded_by"] == new
    left, right = exported.splitlines(), round_trip.splitlines()
    assert len(left) == len(right)
    for x, y in zip(left, right, strict=True):
        dx, dy = decoded(x), decoded(y)
        ex, ey = dx.pop("embedding", None), dy.pop("embedding", None)
        assert dx == dy  # ids, texts, metadata, timestamps, hit counts, instructions: identical
        if ex is not None:
            np.testing.assert_allclose(ex, ey, atol=1e-6)


def test_import_rejects_garbage_with_422(client: httpx.Client) -> None:
    err = assert_error(client.post("/import", content=b'{"type":"header","format":"x"}\n'), 422)
    assert "format" in err["detail"]
    assert_error(client.post("/import", content=b"not json\n"), 422)


# ----------------------------------------------------------------------------- metrics, CORS


def test_metrics(client: httpx.Client) -> None:
    client.post("/remember", json={"text": "measured"})
    client.post("/recall", json={"query": "measured"})
    client.post("/recall", json={"query": "measured"})
    text = client.get("/metrics").text
    count = r'semmem_http_request_duration_seconds_count\{method="POST",route="/recall"'
    assert re.search(count + r',status="200"\} 2\.0', text)
    assert 'semmem_memories{namespace="default"} 1.0' in text
    assert re.search(r'semmem_l1_hit_rate\{namespace="default"\} [0-9.]+', text)
    assert client.get("/memories/abc").status_code == 404
    assert 'route="/memories/{memory_id}",status="404"' in client.get("/metrics").text


def test_cors_off_by_default_and_configurable(tmp_path: Path) -> None:
    origin = {"Origin": "https://app.example", "Access-Control-Request-Method": "POST"}
    with serve(tmp_path / "a") as url:
        r = httpx.options(f"{url}/recall", headers=origin)
        assert "access-control-allow-origin" not in r.headers
    config = ServerConfig(cors_origins=("https://app.example",))
    with serve(tmp_path / "b", config=config) as url:
        r = httpx.options(f"{url}/recall", headers=origin)
        assert r.headers["access-control-allow-origin"] == "https://app.example"
        r = httpx.options(f"{url}/recall", headers={**origin, "Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in r.headers


def test_server_config_from_env() -> None:
    config = ServerConfig.from_env(
        {"SEMMEM_CORS_ORIGINS": "https://a, https://b", "SEMMEM_MAX_BATCH": "10"}
    )
    assert config.cors_origins == ("https://a", "https://b") and config.max_batch == 10
    with pytest.raises(core.ConfigurationError, match="SEMMEM_MAX_BODY_BYTES"):
        ServerConfig.from_env({"SEMMEM_MAX_BODY_BYTES": "lots"})


def test_server_limits_follow_the_settings_precedence(tmp_path: Path) -> None:
    """keyword > environment > .env > Streamlit secrets, as for every other setting."""
    dotenv = tmp_path / ".env"
    dotenv.write_text("SEMMEM_MAX_BATCH=7\nSEMMEM_MAX_BODY_BYTES=2048\n")
    secrets = tmp_path / "secrets.toml"
    secrets.write_text('SEMMEM_MAX_BATCH = "9"\nSEMMEM_CORS_ORIGINS = "https://s"\n')
    config = ServerConfig.from_env(
        {"SEMMEM_MAX_BODY_BYTES": "4096", "SEMMEM_MAX_IMPORT_BYTES": "99"},
        dotenv_path=dotenv,
        secrets_path=secrets,
        max_import_bytes=5,
    )
    assert (config.max_batch, config.max_body_bytes) == (7, 4096)
    assert (config.cors_origins, config.max_import_bytes) == (("https://s",), 5)


# ----------------------------------------------------------------------------- the event loop


class GatedEmbedder(HashingEmbedder):
    """Blocks inside embed_batch until released (to prove the loop keeps serving)."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.release = threading.Event()
        self.gated = False

    def embed_batch(self, texts):  # type: ignore[no-untyped-def]
        if self.gated:
            self.entered.set()
            assert self.release.wait(30)
        return super().embed_batch(texts)


def test_blocking_work_does_not_block_the_event_loop(tmp_path: Path) -> None:
    embedder = GatedEmbedder()
    with serve(tmp_path / "s", embedder=embedder) as url:
        httpx.get(f"{url}/health")  # started
        embedder.gated = True
        results: list[httpx.Response] = []
        writer = threading.Thread(
            target=lambda: results.append(
                httpx.post(f"{url}/remember", json={"text": "slow"}, timeout=30)
            )
        )
        writer.start()
        assert embedder.entered.wait(30)
        # the embedder is blocked in a worker thread; the loop still answers
        assert httpx.get(f"{url}/health", timeout=5).status_code == 200
        assert httpx.get(f"{url}/instructions", timeout=5).status_code == 200
        embedder.release.set()
        writer.join(30)
    assert results[0].status_code == 200


# ----------------------------------------------------------------------------- error mapping


@pytest.mark.parametrize(
    ("exc", "status"),
    [
        (AuthenticationRequired("no key"), 401),
        (NamespaceForbidden("not yours"), 403),
        (core.NotFoundError("gone"), 404),
        (core.ConflictError("clash"), 409),
        (core.EmbeddingMismatchError("other model"), 409),
        (core.LimitExceededError("big", limit="max_text_chars", maximum=1, actual=2), 413),
        (BodyTooLarge("max_body_bytes", 10, 20, streamed=False), 413),
        (core.ValidationError("bad"), 422),
        (DocumentError("damaged", file="a.pdf", reason="corrupt"), 422),
        (core.ModelNotFoundError("no such model"), 422),
        (core.ConfigurationError("no chat model"), 503),
        (core.AuthenticationError("provider rejected the key"), 503),
        (core.RateLimitError("slow down"), 503),
        (core.ProviderUnavailableError("down"), 503),
        (core.StorageError("disk"), 503),
        (core.EmbeddingError("nan"), 503),
        (RuntimeError("secret internals /etc/passwd"), 500),
    ],
)
def test_status_by_exception_class(exc: Exception, status: int) -> None:
    response = error_response(exc)
    assert response.status_code == status
    body = json.loads(response.body)
    if status == 500:
        assert body == {"error": "internal_error", "detail": "internal server error"}
    else:
        assert body["detail"] == str(exc)
    if status == 401:
        assert response.headers["www-authenticate"] == "Bearer"


def test_unexpected_exception_is_500_without_details(tmp_path: Path) -> None:
    app = create_app(make_settings(tmp_path / "s"), embedder=HashingEmbedder())

    async def boom() -> None:
        raise RuntimeError("internal detail that must not leak")

    app.add_api_route("/boom", boom)
    with serve_app(app) as url:
        r = httpx.get(f"{url}/boom", timeout=30)
    body = assert_error(r, 500, "internal_error")
    assert "internal detail" not in r.text and body["detail"] == "internal server error"


# ----------------------------------------------------------------------------- chat


def test_chat_memory_only_mode(client: httpx.Client) -> None:
    client.post("/remember", json={"text": "My dog is called Biscuit"})
    r = client.post("/chat", json={"query": "What is my dog called?"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {
        "response", "response_id", "session_id", "command", "memory_id", "memories", "logs",
    }  # fmt: skip
    assert any("Biscuit" in m["text"] for m in body["memories"])


def test_chat_with_a_fake_openai_server(tmp_path: Path) -> None:
    with FakeOpenAI(api_key="sk-test") as fake:
        fake.responder = lambda body: "Your dog is Biscuit."
        with (
            serve(
                tmp_path / "s",
                openai_api_key="sk-test",
                openai_base_url=fake.base_url,
                auto_memory=False,
            ) as url,
            httpx.Client(base_url=url, timeout=30) as http,
        ):
            http.post("/remember", json={"text": "My dog is called Biscuit"})
            assert http.get("/model").json()["chat_enabled"] is True
            body = http.post(
                "/chat", json={"query": "What is my dog called?", "model": "gpt-4.1-mini"}
            ).json()
            assert body["response"] == "Your dog is Biscuit."
            assert any("Biscuit" in m["text"] for m in body["memories"])
            sent = [r for r in fake.requests if r.path.endswith(("/responses", "/completions"))]
            assert sent and sent[-1].body["model"] == "gpt-4.1-mini"
            assert "Biscuit" in json.dumps(sent[-1].body)
            fake.fail_next(401, times=10)  # query expansion and the answer both fail
            failed = http.post("/chat", json={"query": "again?"})
            assert failed.status_code == 503, failed.text


# ----------------------------------------------------------------------------- option 2


@pytest.mark.slow
def test_uvicorn_server_app_option_2(tmp_path: Path) -> None:
    """The seed's flow: `uvicorn server:app` from the repo root, then call it."""
    env = python_env()
    env["MEMORY_STORAGE_DIR"] = str(tmp_path / "store")
    env.pop("SEMMEM_API_KEYS", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "server:app", "--host", "127.0.0.1", "--port", "0"],
        cwd=ROOT,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        banner = ""
        assert proc.stderr is not None
        for line in proc.stderr:
            banner += line
            match = re.search(r"running on http://127\.0\.0\.1:(\d+)", line)
            if match:
                break
        else:
            pytest.fail(f"server did not start:\n{banner}")
        assert "listening for 127.0.0.1 only" in banner
        url = f"http://127.0.0.1:{match.group(1)}"
        stored = httpx.post(f"{url}/remember", json={"text": "Option two works"}, timeout=60)
        assert stored.status_code == 200, stored.text
        hits = httpx.post(f"{url}/recall", json={"query": "does option two work?"}, timeout=60)
        assert hits.json()["memories"][0]["text"] == "Option two works"
    finally:
        proc.terminate()
        proc.wait(30)
        if proc.stderr:
            proc.stderr.close()


def test_non_loopback_requests_refused_without_keys(tmp_path: Path) -> None:
    """With auth off, a request that arrived on a non-loopback address gets 403."""
    import asyncio

    app = create_app(
        make_settings(tmp_path / "s"), embedder=HashingEmbedder(), config=ServerConfig()
    )
    open_app = create_app(
        make_settings(tmp_path / "t"),
        embedder=HashingEmbedder(),
        config=ServerConfig(allow_unauthenticated=True),
    )

    async def call(target, base: str) -> httpx.Response:  # type: ignore[no-untyped-def]
        transport = httpx.ASGITransport(app=target)
        async with httpx.AsyncClient(transport=transport, base_url=base) as http:
            return await http.get("/instructions")

    try:
        assert_error(asyncio.run(call(app, "http://192.0.2.10")), 403)
        assert asyncio.run(call(app, "http://127.0.0.1")).status_code == 200
        assert asyncio.run(call(open_app, "http://192.0.2.10")).status_code == 200
    finally:
        app.state.registry.close()
        open_app.state.registry.close()


def test_app_is_built_lazily() -> None:
    code = (
        "import sys, sem_mem.server as s\n"
        "assert 'app' not in vars(s)\n"
        "assert 'sem_mem.core' in sys.modules\n"  # imported, but nothing opened
        "import server\n"
        "print('ok')\n"
    )
    env = python_env()
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr


def test_upload_reports_real_progress_as_ndjson(tmp_path: Path) -> None:
    from sem_mem.ui.client import HttpClient

    text = "\n\n".join(f"Paragraph {i} is about subject number {i} in detail." for i in range(3000))
    with serve(tmp_path / "s") as url:
        client = HttpClient(url)
        try:
            seen: list[tuple[int, int]] = []
            result = client.ingest(text.encode(), "long.txt", lambda d, t: seen.append((d, t)))
            assert result["chunks_stored"] == result["chunks_created"] > 64
            total = result["chunks_created"]
            assert {t for _, t in seen} == {total}
            # one line per slice of chunks embedded and committed, not just 0/1 then 1/1
            assert len({d for d, _ in seen}) >= 3 and seen[0][0] < total == seen[-1][0]
            assert [d for d, _ in seen] == sorted(d for d, _ in seen)
            with pytest.raises(core.ValidationError, match="API 422"):
                client.ingest(make_pdf(["x"])[:100], "broken.pdf", lambda d, t: None)
            raw = httpx.post(
                f"{url}/upload/pdf",
                params={"progress": "true"},
                files={"file": ("again.txt", text.encode(), "text/plain")},
            )
            lines = [json.loads(line) for line in raw.text.splitlines()]
            assert raw.headers["content-type"].startswith("application/x-ndjson")
            assert lines[-1]["result"]["already_ingested"] is True
        finally:
            client.close()


def test_recall_rerank_runs_the_cross_encoder(client: httpx.Client) -> None:
    from test_rerank import ANSWERS, CHATS

    for n, turns in enumerate(CHATS):
        client.post(
            "/conversations",
            json={"thread_id": f"chat-{n}", "turns": [{"speaker": s, "text": t} for s, t in turns]},
        ).raise_for_status()
    for question in ANSWERS:
        body = client.post("/recall", json={"query": question, "limit": 3, "rerank": True}).json()
        assert len(body["memories"]) == 3  # (the order: test_rerank.py, with MiniLM)
        assert any("reranked the best 10 candidates" in line for line in body["logs"])
        plain = client.post("/recall", json={"query": question, "limit": 3}).json()
        assert not any("reranked" in line for line in plain["logs"])  # not configured: off
    assert_error(client.post("/recall", json={"query": "q", "rerank": "maybe"}), 422)
