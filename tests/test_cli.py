"""The `sem-mem` command line, through Typer's runner and once as a real subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, python_env
from embedders import HashingEmbedder
from test_server import image_only_pdf, make_pdf
from typer.testing import CliRunner

from sem_mem.cli import app

COMMANDS = [
    "remember", "recall", "forget", "list", "chat", "ingest", "stats", "export", "import",
    "serve", "migrate", "reembed", "ui", "mcp", "get",
]  # fmt: skip


@pytest.fixture
def cli(tmp_path: Path):  # type: ignore[no-untyped-def]
    """Run a command on a tmp store with the HashingEmbedder; returns the Result."""
    runner = CliRunner()
    store = str(tmp_path / "store")

    def run(*args: str, input: str | None = None, code: int = 0, store_dir: str = store):  # type: ignore[no-untyped-def]
        argv = [*args]
        if args and args[0] not in ("serve",):
            argv += ["--storage-dir", store_dir]
        result = runner.invoke(
            app, argv, input=input, obj={"embedder": HashingEmbedder()}, catch_exceptions=False
        )
        assert result.exit_code == code, result.output
        return result

    run.store = store  # type: ignore[attr-defined]
    return run


def test_help_of_every_command() -> None:
    runner = CliRunner()
    top = runner.invoke(app, ["--help"])
    assert top.exit_code == 0
    for name in COMMANDS:
        assert name in top.output
        result = runner.invoke(app, [name, "--help"])
        assert result.exit_code == 0, name
        if name not in ("serve", "ui"):  # serve/ui: one server for every namespace
            assert "--storage-dir" in result.output and "--namespace" in result.output, name


def test_remember_recall_table_and_json(cli) -> None:  # type: ignore[no-untyped-def]
    memory_id = cli("remember", "The ward round starts at 7am", "-m", '{"unit": "icu"}').stdout
    memory_id = memory_id.strip()
    cli("remember", "Coffee machine is on floor 2")
    table = cli("recall", "when does the ward round start").stdout
    assert "ward round" in table and memory_id[:8] in table
    hits = json.loads(cli("recall", "ward round", "--json", "-k", "1").stdout)
    assert hits[0]["id"] == memory_id and hits[0]["metadata"] == {"unit": "icu"}
    assert json.loads(cli("remember", "x y z", "--json").stdout)["id"]


def test_list_forget_and_not_found(cli) -> None:  # type: ignore[no-untyped-def]
    ids = [cli("remember", f"fact {i}").stdout.strip() for i in range(3)]
    listed = json.loads(cli("list", "--json").stdout)
    assert [m["id"] for m in listed] == list(reversed(ids))
    assert "fact 1" in cli("list").stdout
    assert "forgot" in cli("forget", ids[0]).stdout
    assert len(json.loads(cli("list", "--json").stdout)) == 2
    missing = cli("forget", ids[0], code=3)
    assert "error" in missing.stderr and ids[0] in missing.stderr
    bad = cli("remember", "   ", code=2)
    assert "empty" in bad.stderr
    cli("list", "--metadata", "[1]", code=2)


def test_namespaces_are_separate(cli) -> None:  # type: ignore[no-untyped-def]
    cli("remember", "alice only", "--namespace", "alice")
    assert json.loads(cli("list", "--json", "--namespace", "bob").stdout) == []
    assert len(json.loads(cli("list", "--json", "--namespace", "alice").stdout)) == 1


def test_chat_repl_commands(cli) -> None:  # type: ignore[no-untyped-def]
    session = "remember: my locker is number 42\ninstruct: answer in French\nexit\n"
    result = cli("chat", input=session)
    assert "remembered" in result.stdout and "instruction added" in result.stdout
    listed = json.loads(cli("list", "--json").stdout)
    assert [m["text"] for m in listed] == ["my locker is number 42"]


@pytest.mark.skipif(
    __import__("importlib").util.find_spec("sem_mem.chat") is None, reason="no sem_mem.chat yet"
)
def test_chat_memory_only_answer(cli) -> None:  # type: ignore[no-untyped-def]
    cli("remember", "my locker is number 42")
    result = cli("chat", "--show-memories", input="which locker is mine?\n")
    assert "locker is number 42" in result.stdout


def test_ingest_with_progress_and_dedupe(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    pdf = tmp_path / "guide.pdf"
    pdf.write_bytes(make_pdf(["Wash hands before and after every patient contact. " * 10]))
    scan = tmp_path / "scan.pdf"
    scan.write_bytes(image_only_pdf())
    md = tmp_path / "notes.md"
    md.write_text("# Notes\n\nGloves for every procedure.\n")
    out = json.loads(cli("ingest", str(pdf), str(scan), str(md), "--json").stdout)
    assert [r["kind"] for r in out] == ["pdf", "pdf", "markdown"]
    assert out[0]["chunks_stored"] >= 1 and out[1]["chunks_created"] == 0
    again = cli("ingest", str(pdf))
    assert "already ingested" in again.stdout
    broken = tmp_path / "broken.pdf"
    broken.write_bytes(pdf.read_bytes()[:100])
    failed = cli("ingest", str(broken), code=2)
    assert "damaged" in failed.stderr or "corrupt" in failed.stderr


def test_stats(cli) -> None:  # type: ignore[no-untyped-def]
    cli("remember", "one")
    stats = json.loads(cli("stats", "--json").stdout)
    assert stats["namespace"] == "default" and stats["embedder"]["model_id"] == "test:hashing-64"
    assert "namespace" in cli("stats").stdout


def test_export_import_round_trip(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    cli("remember", "exported fact one")
    cli("remember", "exported fact two")
    out = tmp_path / "dump.jsonl"
    cli("export", "--output", str(out))
    to_stdout = cli("export").stdout
    assert to_stdout == out.read_text()
    other = str(tmp_path / "other")
    result = cli("import", str(out), "--json", store_dir=other)
    assert json.loads(result.stdout)["imported"] == 2
    assert cli("export", store_dir=other).stdout == to_stdout
    piped = cli("import", "-", input=to_stdout, store_dir=str(tmp_path / "third"))
    assert "imported 2" in piped.stdout
    cli("import", str(tmp_path / "missing.jsonl"), code=2)


def test_reembed(cli) -> None:  # type: ignore[no-untyped-def]
    cli("remember", "vector me")
    result = CliRunner().invoke(
        app,
        ["reembed", "--yes", "--storage-dir", cli.store],
        obj={"embedder": HashingEmbedder(), "new_embedder": HashingEmbedder(32, name="new")},
    )
    assert result.exit_code == 0, result.output
    assert "re-embedded 1 memories with test:new-32" in result.stdout
    refused = CliRunner().invoke(
        app,
        ["reembed", "--storage-dir", cli.store],
        input="n\n",
        obj={"embedder": HashingEmbedder(32, name="new"), "new_embedder": HashingEmbedder()},
    )
    assert refused.exit_code == 1


def test_migrate_from_original_and_lsh(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    original = tmp_path / "original"
    original.mkdir()
    (original / "hnsw_metadata.json").write_text(
        json.dumps({"entries": {"0": {"text": "legacy fact", "metadata": {}}}})
    )
    assert "migrated 1" in cli("migrate", "--from-original", str(original)).stdout
    lsh = tmp_path / "lsh"
    lsh.mkdir()
    (lsh / "bucket_0.json").write_text(json.dumps([{"text": "bucket fact"}]))
    cli("migrate", "--from-lsh", str(lsh))
    texts = {m["text"] for m in json.loads(cli("list", "--json").stdout)}
    assert "legacy fact" in texts
    cli("migrate", code=2)
    assert (
        "use one or the other"
        in cli("migrate", "--from-lsh", str(lsh), "--to", "postgresql://x", code=2).stderr
    )


def test_serve_refuses_public_bind_without_keys(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["serve", "--host", "0.0.0.0", "--storage-dir", str(tmp_path)], env={}
    )
    assert result.exit_code == 2 and "--allow-unauthenticated" in result.stderr


def test_real_subprocess_recall(tmp_path: Path) -> None:
    """`python -m sem_mem.cli` as a user runs it (local embedder, real process)."""
    env = python_env()
    store = str(tmp_path / "store")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "sem_mem.cli", *args, "--storage-dir", store],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    stored = run("remember", "The pharmacy closes at 6pm")
    assert stored.returncode == 0, stored.stderr
    found = run("recall", "when does the pharmacy close", "--json")
    assert found.returncode == 0, found.stderr
    assert json.loads(found.stdout)[0]["text"] == "The pharmacy closes at 6pm"
    assert ROOT.exists()
