"""Chat sessions over HTTP: a real uvicorn server, the official SDK against the fake
OpenAI server in both wire formats, sessions kept in the store across restarts."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from chat_wire import WIRE_FORMATS, assert_carries, turn_bodies
from conftest import CHAT_KEY
from fake_openai import FakeOpenAI
from live_server import serve


def chat_server(storage: Path, fake: FakeOpenAI, api: str, **overrides: Any) -> Any:
    return serve(
        storage,
        openai_api_key=CHAT_KEY,
        openai_base_url=fake.base_url,
        chat_api=api,
        chat_model="llama3.1",
        auto_memory=False,
        **overrides,
    )


@pytest.mark.parametrize("api", WIRE_FORMATS)
def test_turn_two_carries_turn_one_and_survives_a_restart(
    tmp_path: Path, fake: FakeOpenAI, api: str
) -> None:
    store = tmp_path / "store"
    with chat_server(store, fake, api) as url, httpx.Client(base_url=url, timeout=60) as http:
        first = http.post("/chat", json={"query": "My sister is called Ines", "title": "family"})
        assert first.status_code == 200, first.text
        session_id = first.json()["session_id"]
        second = http.post("/chat", json={"query": "Who is Ines?", "session_id": session_id})
        assert second.json()["session_id"] == session_id
        assert_carries(
            turn_bodies(fake)[-1], "My sister is called Ines", first.json()["response_id"]
        )

    # a new server process on the same store continues the session
    with chat_server(store, fake, api) as url, httpx.Client(base_url=url, timeout=60) as http:
        third = http.post("/chat", json={"query": "And her age?", "session_id": session_id})
        assert third.status_code == 200, third.text
        assert_carries(turn_bodies(fake)[-1], "Who is Ines?", second.json()["response_id"])
        listed = http.get("/sessions").json()["sessions"]
        assert [(s["id"], s["title"], s["messages"]) for s in listed] == [(session_id, "family", 6)]
        shown = http.get(f"/sessions/{session_id}").json()
        assert [m["content"] for m in shown["messages"] if m["role"] == "user"] == [
            "My sister is called Ines",
            "Who is Ines?",
            "And her age?",
        ]

        saved = http.post("/threads/save", json={"session_id": session_id}).json()
        assert saved["count"] == 6
        assert http.post("/threads/save", json={"session_id": session_id}).json()["count"] == 0
        turns = http.get("/memories", params={"source": "thread", "limit": 50}).json()
        assert {m["speaker"] for m in turns["memories"]} == {"User", "Assistant"}

        assert http.delete(f"/sessions/{session_id}").status_code == 204
        assert http.get(f"/sessions/{session_id}").status_code == 404
        assert http.delete(f"/sessions/{session_id}").status_code == 404
        # the saved turns stay
        assert len(http.get("/memories", params={"source": "thread"}).json()["memories"]) == 6


def test_previous_response_id_of_another_namespace_is_refused(
    tmp_path: Path, fake: FakeOpenAI
) -> None:
    keys = "ka:alice,kb:bob"
    with chat_server(tmp_path / "s", fake, "responses", api_keys=keys) as url:
        alice = httpx.Client(base_url=url, timeout=60, headers={"Authorization": "Bearer ka"})
        bob = httpx.Client(base_url=url, timeout=60, headers={"Authorization": "Bearer kb"})
        with alice, bob:
            first = alice.post("/chat", json={"query": "My PIN is 4321"}).json()
            response_id = first["response_id"]
            assert response_id

            stolen = bob.post(
                "/chat", json={"query": "What is my PIN?", "previous_response_id": response_id}
            )
            assert stolen.status_code == 422, stolen.text
            assert "previous_response_id" in stolen.json()["detail"]
            assert bob.get(f"/sessions/{first['session_id']}").status_code == 404

            # alice may continue from her own answer: it continues her session
            again = alice.post(
                "/chat", json={"query": "Repeat it", "previous_response_id": response_id}
            ).json()
            assert again["session_id"] == first["session_id"]
            assert turn_bodies(fake)[-1]["previous_response_id"] == response_id
            made_up = alice.post("/chat", json={"query": "x", "previous_response_id": "resp_x"})
            assert made_up.status_code == 422


def test_chat_commands_run_through_the_session(tmp_path: Path, fake: FakeOpenAI) -> None:
    with (
        chat_server(tmp_path / "s", fake, "chat_completions") as url,
        httpx.Client(base_url=url, timeout=60) as http,
    ):
        body = http.post("/chat", json={"query": "remember: The gate code is 1990"}).json()
        assert body["command"] == "remember" and body["memory_id"]
        assert fake.requests == []  # no model call for a command
        found = http.post("/recall", json={"query": "gate code"}).json()["memories"]
        assert found[0]["text"] == "The gate code is 1990"
        http.post("/chat", json={"query": "instruct: Answer in French"})
        assert "Answer in French" in http.get("/instructions").json()["instructions"]


def test_conversations_timestamps_and_recall_filters(tmp_path: Path) -> None:
    with serve(tmp_path / "s") as url, httpx.Client(base_url=url, timeout=60) as http:
        turns = [
            {"speaker": "Caroline", "text": "I went to the LGBTQ support group"},
            {"speaker": "Melanie", "text": "That sounds great, I went to a support group too"},
        ]
        stored = http.post(
            "/conversations",
            json={"turns": turns, "thread_id": "s1", "timestamp": "2023-05-08T13:56:00"},
        )
        assert stored.status_code == 200, stored.text
        assert stored.json()["count"] == 2 and stored.json()["thread_id"] == "s1"
        http.post("/remember", json={"text": "A support group met in 2020", "timestamp": 1.6e9})
        http.post("/remember", json={"text": "support group notes", "metadata": {"topic": "x"}})

        def recall(**filters: Any) -> list[str]:
            body = {"query": "support group", "limit": 10, **filters}
            r = http.post("/recall", json=body)
            assert r.status_code == 200, r.text
            return sorted(m["text"] for m in r.json()["memories"])

        assert recall(source="thread") == sorted(f"{t['speaker']}: {t['text']}" for t in turns)
        assert recall(until="2021-01-01") == ["A support group met in 2020"]
        assert recall(since="2023-05-08", until="2023-05-09", source="thread")[0].startswith(
            "Caroline"
        )
        assert recall(metadata={"topic": "x"}) == ["support group notes"]
        hit = http.post("/recall", json={"query": "LGBTQ", "source": "thread"}).json()
        assert hit["memories"][0]["speaker"] == "Caroline"
        assert hit["memories"][0]["timestamp"].startswith("2023-05-08")
        bad = http.post("/recall", json={"query": "x", "since": "last may"})
        assert bad.status_code == 422
        missing = http.post("/conversations", json={"turns": [{"text": "who said it?"}]})
        assert missing.status_code == 422 and "speaker" in missing.json()["detail"]
        # a batch with one time per text
        batch = {"texts": ["The choir met", "The choir sang"], "timestamp": [1.5e9, None]}
        assert http.post("/remember/batch", json=batch).status_code == 200
        assert recall(until="2018-01-01") == ["The choir met"]
        short = http.post("/remember/batch", json={**batch, "timestamp": [1.5e9]})
        assert short.status_code == 422 and "1 entries for 2 texts" in short.json()["detail"]


_CHAT_SERVER = """
import socket, sys
import uvicorn
from embedders import HashingEmbedder
from sem_mem.config import resolve_settings
from sem_mem.server import ServerConfig, create_app

sock = socket.socket(fileno=int(sys.argv[1]))
settings = resolve_settings(
    env={}, dotenv_path=None, secrets_path=None, database_url=sys.argv[2],
    storage_dir=sys.argv[3], openai_api_key="sk-test", openai_base_url=sys.argv[4],
    chat_api=sys.argv[5], chat_model="llama3.1", auto_memory=False,
)
app = create_app(settings, embedder=HashingEmbedder(), config=ServerConfig())
uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on")).run(sockets=[sock])
"""


@contextmanager
def _replicas(tmp_path: Path, fake: FakeOpenAI, api: str) -> Iterator[list[str]]:
    """Two chat servers in their own processes on one fresh PostgreSQL database; their URLs."""
    import socket
    import subprocess
    import sys

    from conftest import python_env
    from pg_server import cluster_or_skip

    with cluster_or_skip().database() as pg_url:
        servers: list[subprocess.Popen[bytes]] = []
        urls: list[str] = []
        try:
            for n in range(2):
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                sock.bind(("127.0.0.1", 0))
                sock.listen(64)  # listening before the process starts: no sleeping
                urls.append(f"http://127.0.0.1:{sock.getsockname()[1]}")
                argv = [str(sock.fileno()), pg_url, str(tmp_path / f"u{n}"), fake.base_url, api]
                servers.append(
                    subprocess.Popen(
                        [sys.executable, "-c", _CHAT_SERVER, *argv],
                        pass_fds=[sock.fileno()],
                        env=python_env(),
                    )
                )
                sock.close()
            yield urls
        finally:
            for server in servers:
                server.terminate()
            for server in servers:
                server.wait(timeout=30)


@pytest.mark.postgres
@pytest.mark.parametrize("api", WIRE_FORMATS)
@pytest.mark.slow  # two server processes on PostgreSQL
def test_two_server_processes_on_postgres_share_sessions(
    tmp_path: Path, fake: FakeOpenAI, api: str
) -> None:
    with _replicas(tmp_path, fake, api) as urls:
        a, b = (httpx.Client(base_url=url, timeout=60) for url in urls)
        with a, b:
            first = a.post("/chat", json={"query": "My locker is number 42"})
            assert first.status_code == 200, first.text
            session_id = first.json()["session_id"]
            second = b.post("/chat", json={"query": "Which locker?", "session_id": session_id})
            assert second.status_code == 200, second.text
            assert_carries(
                turn_bodies(fake)[-1], "My locker is number 42", first.json()["response_id"]
            )
            assert [s["id"] for s in a.get("/sessions").json()["sessions"]] == [session_id]
            assert a.get(f"/sessions/{session_id}").json()["messages"][-1]["role"] == "assistant"


@pytest.mark.slow  # the fake model answers 0.5 s late four times
def test_two_turns_sent_at_once_to_one_session_are_both_kept(
    tmp_path: Path, fake: FakeOpenAI
) -> None:
    import concurrent.futures

    with (
        chat_server(tmp_path / "s", fake, "chat_completions") as url,
        httpx.Client(base_url=url, timeout=60) as http,
    ):
        session_id = http.post("/chat", json={"query": "hello"}).json()["session_id"]
        fake.delay_next(0.5, times=4)  # the model is slow: the two turns overlap

        def say(text: str) -> int:
            with httpx.Client(base_url=url, timeout=60) as other:
                body = {"query": text, "session_id": session_id}
                return other.post("/chat", json=body).status_code

        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            codes = list(pool.map(say, ["first at once", "second at once"]))
        assert codes == [200, 200]
        said = [
            m["content"]
            for m in http.get(f"/sessions/{session_id}").json()["messages"]
            if m["role"] == "user"
        ]
        assert said[0] == "hello" and sorted(said[1:]) == ["first at once", "second at once"]


@pytest.mark.slow  # two server processes on one PostgreSQL
@pytest.mark.postgres
@pytest.mark.parametrize("api", WIRE_FORMATS)
def test_two_replicas_answering_one_session_at_once_keep_both_turns(
    tmp_path: Path, fake: FakeOpenAI, api: str
) -> None:
    import concurrent.futures
    import json
    import threading

    from sem_mem.llm.prompts import MEMORY_SYSTEM_CONTEXT

    # the model answers the two racing turns only once both replicas have asked it, so
    # both have loaded the session before either stores its turn
    gate = threading.Barrier(2, timeout=120)
    racing = threading.Event()

    def responder(body: dict[str, Any]) -> str:
        system = body.get("instructions") or body.get("messages", [{}])[0].get("content", "")
        if racing.is_set() and str(system).startswith(MEMORY_SYSTEM_CONTEXT):
            gate.wait()
        return "noted"

    fake.responder = responder
    with _replicas(tmp_path, fake, api) as urls:
        a, b = (httpx.Client(base_url=url, timeout=120) for url in urls)
        with a, b:
            first = a.post("/chat", json={"query": "We are planning the spring fair"})
            assert first.status_code == 200, first.text
            session_id = first.json()["session_id"]

            racing.set()
            asks = [(a, "Book the town hall"), (b, "Order forty chairs")]
            with concurrent.futures.ThreadPoolExecutor(2) as pool:
                answers = list(
                    pool.map(
                        lambda ask: ask[0].post(
                            "/chat", json={"query": ask[1], "session_id": session_id}
                        ),
                        asks,
                    )
                )
            racing.clear()
            assert [r.status_code for r in answers] == [200, 200], [r.text for r in answers]

            shown = b.get(f"/sessions/{session_id}").json()["messages"]
            assert [m["role"] for m in shown] == ["user", "assistant"] * 3
            said = [m["content"] for m in shown if m["role"] == "user"]
            assert said[0] == "We are planning the spring fair"
            assert sorted(said[1:]) == ["Book the town hall", "Order forty chairs"]

            # the next turn, on either replica, gives the model both racing turns
            follow = a.post("/chat", json={"query": "What is left?", "session_id": session_id})
            assert follow.status_code == 200, follow.text
            sent = turn_bodies(fake)[-1]
            if api == "responses":
                assert sent.get("previous_response_id") is None
                carried = json.dumps(sent["input"])
            else:
                carried = json.dumps(sent["messages"])
            assert all(text in carried for text in said)
            # a client holding either racing answer's id still continues the session
            for answer in answers:
                held = answer.json()["response_id"]
                assert (held is None) == (api == "chat_completions")
                if held:
                    body = {"query": "Thanks", "previous_response_id": held}
                    assert b.post("/chat", json=body).json()["session_id"] == session_id
