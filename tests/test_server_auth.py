"""API keys and namespace isolation: key A can never read, change or delete B's memories."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from live_server import serve
from test_server import assert_error, make_pdf

from sem_mem.errors import ConfigurationError
from sem_mem.server.auth import is_loopback, parse_api_keys

KEYS = "key-alice:alice,key-bob:bob,key-alice-2:alice"
ALICE = {"Authorization": "Bearer key-alice"}
ALICE_2 = {"Authorization": "Bearer key-alice-2"}
BOB = {"Authorization": "Bearer key-bob"}


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with serve(tmp_path_factory.mktemp("auth") / "store", api_keys=KEYS) as base:
        yield base


@pytest.fixture
def http(url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=url, timeout=30) as client:
        yield client


@pytest.fixture
def bob_memory(http: httpx.Client) -> dict[str, str]:
    """A memory of bob's that alice will try to reach (fresh per test)."""
    text = f"bob's secret {len(http.get('/memories', headers=BOB).json()['memories'])}"
    memory_id = http.post(
        "/remember", json={"text": text, "metadata": {"owner": "bob"}}, headers=BOB
    ).json()["id"]
    return {"id": memory_id, "text": text}


def test_parse_api_keys() -> None:
    assert parse_api_keys("k1:alice, k2:bob", "default") == {"k1": "alice", "k2": "bob"}
    assert parse_api_keys("solo", "default") == {"solo": "default"}
    assert parse_api_keys(None, "default") == {}
    with pytest.raises(ConfigurationError):
        parse_api_keys("k1:alice,k1:bob", "default")
    with pytest.raises(ConfigurationError):
        parse_api_keys(":alice", "default")
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.0.2.1") and not is_loopback(None)


PROTECTED = [
    ("GET", "/memories", None),
    ("GET", "/memories/some-id", None),
    ("PATCH", "/memories/some-id", {"text": "x"}),
    ("DELETE", "/memories/some-id", None),
    ("GET", "/memories/some-id/history", None),
    ("POST", "/remember", {"text": "x"}),
    ("POST", "/remember/batch", {"texts": ["x"]}),
    ("POST", "/recall", {"query": "x"}),
    ("POST", "/chat", {"query": "x"}),
    ("GET", "/instructions", None),
    ("PUT", "/instructions", {"text": "x"}),
    ("POST", "/instructions", {"text": "x"}),
    ("GET", "/cache", None),
    ("GET", "/stats", None),
    ("GET", "/model", None),
    ("PUT", "/model", {"model": "m"}),
    ("POST", "/threads/save", {"messages": [{"role": "user", "content": "x"}]}),
    ("GET", "/export", None),
    ("POST", "/import", None),
    ("GET", "/metrics", None),
    ("POST", "/upload/pdf", None),
]


@pytest.mark.parametrize(("method", "path", "body"), PROTECTED)
@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "key-alice"}, {"Authorization": ""}],
    ids=["none", "unknown", "no-scheme", "empty"],
)
def test_every_endpoint_needs_a_valid_key(
    http: httpx.Client, method: str, path: str, body: dict | None, headers: dict[str, str]
) -> None:
    response = http.request(method, path, json=body, headers=headers)
    assert_error(response, 401)
    assert response.headers["www-authenticate"] == "Bearer"


def test_health_and_docs_are_public(http: httpx.Client) -> None:
    assert http.get("/health").json()["auth"] is True
    assert http.get("/openapi.json").status_code == 200


def test_namespace_header_must_match_the_key(http: httpx.Client) -> None:
    assert_error(http.get("/stats", headers={**ALICE, "X-SemMem-Namespace": "bob"}), 403)
    ok = http.get("/stats", headers={**ALICE, "X-SemMem-Namespace": "alice"})
    assert ok.json()["namespace"] == "alice"


def test_alice_cannot_read_bob(http: httpx.Client, bob_memory: dict[str, str]) -> None:
    mid, text = bob_memory["id"], bob_memory["text"]
    assert http.get(f"/memories/{mid}", headers=BOB).json()["text"] == text
    assert_error(http.get(f"/memories/{mid}", headers=ALICE), 404)
    assert_error(http.get(f"/memories/{mid}/history", headers=ALICE), 404)
    listed = http.get("/memories", params={"limit": 1000}, headers=ALICE).json()["memories"]
    assert mid not in {m["id"] for m in listed}
    by_meta = http.get("/memories", params={"metadata": '{"owner": "bob"}'}, headers=ALICE)
    assert by_meta.json()["memories"] == []
    for mode in ("hybrid", "vector", "lexical"):
        hits = http.post(
            "/recall", json={"query": text, "limit": 50, "mode": mode}, headers=ALICE
        ).json()["memories"]
        assert mid not in {h["id"] for h in hits}
    assert text not in http.get("/export", headers=ALICE).text
    assert text not in json.dumps(http.get("/cache", headers=ALICE).json())
    assert 'namespace="bob"' not in http.get("/metrics", headers=ALICE).text


def test_alice_cannot_change_or_delete_bob(http: httpx.Client, bob_memory: dict[str, str]) -> None:
    mid, text = bob_memory["id"], bob_memory["text"]
    assert_error(http.patch(f"/memories/{mid}", json={"text": "hacked"}, headers=ALICE), 404)
    assert_error(
        http.patch(f"/memories/{mid}", json={"metadata": {"owner": "alice"}}, headers=ALICE), 404
    )
    assert_error(http.delete(f"/memories/{mid}", headers=ALICE), 404)
    still = http.get(f"/memories/{mid}", headers=BOB).json()
    assert still["text"] == text and still["metadata"] == {"owner": "bob"}
    assert [
        e["event"] for e in http.get(f"/memories/{mid}/history", headers=BOB).json()["events"]
    ] == ["created"]


def test_importing_bobs_export_as_alice_never_touches_bob(
    http: httpx.Client, bob_memory: dict[str, str]
) -> None:
    exported = http.get("/export", headers=BOB).text
    before = http.get("/export", headers=BOB).text
    response = http.post("/import", content=exported.encode(), headers=ALICE)
    # ids are unique per namespace: alice gets her own copies under the same ids, as she
    # would if bob held none (whether he does must not show), and bob's are untouched
    assert response.status_code == 200, response.text
    assert response.json()["imported"] == exported.count('"type":"memory"')
    assert http.get("/export", headers=BOB).text == before
    copy = http.get(f"/memories/{bob_memory['id']}", headers=ALICE).json()
    assert (copy["namespace"], copy["text"]) == ("alice", bob_memory["text"])
    http.delete(f"/memories/{bob_memory['id']}", headers=ALICE).raise_for_status()
    assert http.get("/export", headers=BOB).text == before


def test_writes_land_in_the_keys_namespace(http: httpx.Client) -> None:
    mid = http.post("/remember", json={"text": "alice likes tea"}, headers=ALICE).json()["id"]
    assert http.get(f"/memories/{mid}", headers=ALICE_2).json()["namespace"] == "alice"
    assert_error(http.get(f"/memories/{mid}", headers=BOB), 404)
    hits = http.post("/recall", json={"query": "alice likes tea"}, headers=BOB).json()
    assert mid not in {h["id"] for h in hits["memories"]}


def test_instructions_model_and_stats_are_per_namespace(http: httpx.Client) -> None:
    http.put("/instructions", json={"text": "Alice rule"}, headers=ALICE)
    http.put("/instructions", json={"text": "Bob rule"}, headers=BOB)
    assert http.get("/instructions", headers=ALICE).json()["instructions"] == "Alice rule\n"
    assert http.get("/instructions", headers=BOB).json()["instructions"] == "Bob rule\n"
    http.put("/model", json={"model": "alice-model"}, headers=ALICE)
    assert http.get("/model", headers=BOB).json()["model"] != "alice-model"
    alice_count = http.get("/stats", headers=ALICE).json()
    bob_count = http.get("/stats", headers=BOB).json()
    assert alice_count["namespace"] == "alice" and bob_count["namespace"] == "bob"


def test_same_pdf_in_two_namespaces_is_stored_in_each(http: httpx.Client) -> None:
    pdf = make_pdf(["Shared handbook: wash hands before every patient contact."])
    files = {"file": ("handbook.pdf", pdf, "application/pdf")}
    a = http.post("/upload/pdf", files=files, headers=ALICE).json()
    b = http.post("/upload/pdf", files=files, headers=BOB).json()
    assert a["chunks_stored"] >= 1 and b["chunks_stored"] == a["chunks_stored"]


def test_metrics_show_only_the_callers_namespace(http: httpx.Client) -> None:
    http.post("/remember", json={"text": "metric me"}, headers=BOB)
    text = http.get("/metrics", headers=ALICE).text
    assert 'semmem_memories{namespace="alice"}' in text
    assert 'namespace="bob"' not in text


def test_no_keys_and_a_public_bind_is_refused_by_the_cli(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from sem_mem.cli import app

    result = CliRunner().invoke(
        app, ["serve", "--host", "0.0.0.0", "--storage-dir", str(tmp_path)], env={}
    )
    assert result.exit_code == 2
    assert "without API keys" in result.output


def test_stats_show_tenants_only_their_own_figures(http: httpx.Client, url: str) -> None:
    http.post("/remember", json={"text": "alice's fact"}, headers=ALICE).raise_for_status()
    seen = http.get("/stats", headers=ALICE).json()
    for key in ("storage_dir", "db_bytes", "seq", "database"):
        assert key not in seen  # store-wide: would show other tenants' activity
    assert seen["namespace"] == "alice" and seen["total_memories"] >= 1
    before = http.get("/stats", headers=ALICE).json()
    http.post("/remember", json={"text": "bob writes a lot"}, headers=BOB).raise_for_status()
    assert http.get("/stats", headers=ALICE).json() == before  # nothing of Bob's shows


def test_stats_show_server_wide_figures_to_a_keyless_local_caller(tmp_path: Path) -> None:
    with serve(tmp_path / "store") as base, httpx.Client(base_url=base) as client:
        seen = client.get("/stats").json()
    assert {"storage_dir", "db_bytes", "seq"} <= set(seen)


def test_previous_response_id_must_be_the_callers_own(tmp_path: Path) -> None:
    from fake_openai import FakeOpenAI

    with FakeOpenAI(api_key="sk-test") as fake:
        fake.responder = lambda body: "noted"
        with (
            serve(
                tmp_path / "s",
                api_keys=KEYS,
                openai_api_key="sk-test",
                openai_base_url=fake.base_url,
                chat_api="responses",  # the API whose ids continue a conversation
                auto_memory=False,
            ) as base,
            httpx.Client(base_url=base, timeout=30) as http,
        ):
            first = http.post("/chat", json={"query": "my secret plan"}, headers=ALICE).json()
            rid = first["response_id"]
            assert rid
            sent = len(fake.requests)
            stolen = http.post(
                "/chat", json={"query": "go on", "previous_response_id": rid}, headers=BOB
            )
            assert stolen.status_code == 422 and "previous_response_id" in stolen.text
            assert len(fake.requests) == sent  # nothing went to the provider
            made_up = http.post(
                "/chat", json={"query": "go on", "previous_response_id": "resp_x"}, headers=BOB
            )
            assert made_up.status_code == 422  # unknown and foreign ids look the same
            own = http.post(
                "/chat", json={"query": "go on", "previous_response_id": rid}, headers=ALICE_2
            )
            assert own.status_code == 200, own.text
            continued = [b for b in fake.bodies("/v1/responses") if b.get("previous_response_id")]
            assert continued and continued[-1]["previous_response_id"] == rid
