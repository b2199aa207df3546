"""``sem-mem doctor`` and ``SemanticMemory.check()`` (issue 12, item 5): damage to what is
derived is found and repaired; a damaged database is recovered row by row into a new
store, with a report of what was lost."""

from __future__ import annotations

import json
import random
import shutil
import sqlite3
from pathlib import Path

import pytest
from embedders import HashingEmbedder
from test_cli import cli  # noqa: F401  (the CLI fixture)

from sem_mem import SemanticMemory
from sem_mem.backends.sqlite_recover import recover_store

COUNT = 2600


def _fill(store: Path, count: int = COUNT) -> list[str]:
    with SemanticMemory(str(store), embedder=HashingEmbedder()) as memory:
        ids = memory.remember_batch([f"memory {i} about topic{i}" for i in range(count)])
        memory.set_instructions("Answer briefly.")
    return ids


def damage_derived(store: Path) -> None:
    """Four kinds of damage to derived data, as a crash or a bug would leave them."""
    conn = sqlite3.connect(store / "memory.sqlite3", isolation_level=None)
    conn.execute("UPDATE namespace_stats SET active = active + 5")
    conn.close()
    text_dir = store / "text" / "ns-default"
    segments = [
        p for p in text_dir.iterdir() if p.is_file() and p.name not in ("sidecar.json", "meta.json")
    ]
    biggest = max(segments, key=lambda p: p.stat().st_size)
    with biggest.open("r+b") as fh:  # one full-text segment file garbled
        fh.seek(biggest.stat().st_size // 2)
        fh.write(random.Random(3).randbytes(64))
    index = store / "index" / "ns-default.hnsw"
    shutil.copy(index, index.with_name(index.name + ".k1l2.tmp"))  # a killed save's file
    with index.open("r+b") as fh:
        fh.seek(index.stat().st_size // 2)
        fh.write(random.Random(1).randbytes(4096))


@pytest.mark.slow  # fault injection: every derived file damaged and rebuilt
def test_check_finds_and_repairs_derived_damage(tmp_path: Path) -> None:
    store = tmp_path / "store"
    _fill(store)
    with SemanticMemory(str(store), embedder=HashingEmbedder()) as memory:
        assert memory.check() == {**memory.check(), "ok": True, "problems": []}
    damage_derived(store)
    with SemanticMemory(str(store), embedder=HashingEmbedder()) as memory:
        report = memory.check()
        assert not report["ok"]
        assert {p["check"] for p in report["problems"]} == {
            "fulltext", "counts", "index", "temp files"
        }  # fmt: skip
        # a damaged full-text index is wiped as it is opened: it is refilled at once
        assert [p["repaired"] for p in report["problems"] if p["check"] == "fulltext"] == [True]
        repaired = memory.check(repair=True)
        assert repaired["ok"] and all(p["repaired"] for p in repaired["problems"])
        assert memory.check()["problems"] == []
        assert memory.recall("topic7", limit=1, mode="lexical")[0].text == "memory 7 about topic7"
        assert len(memory) == COUNT
    assert not list((store / "index").glob("*.tmp"))


def test_cli_doctor_exit_code_and_repair(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    store = Path(cli.store)
    _fill(store, 50)
    assert cli("doctor").stdout.strip() == "ok"
    damage_derived(store)
    found = cli("doctor", "--json", code=1)
    assert {p["check"] for p in json.loads(found.stdout)["problems"]} == {
        "fulltext", "counts", "index", "temp files"
    }  # fmt: skip
    # (that check already refilled the wiped full-text index, and closing the store may
    # have saved a rebuilt HNSW index: what is left is repaired now)
    fixed = cli("doctor", "--repair")
    assert "repaired: [counts]" in fixed.stdout and "PROBLEM" not in fixed.stdout
    assert cli("doctor").stdout.strip() == "ok"


def _garble_middle_page(db: Path) -> None:
    size = db.stat().st_size
    page = 4096
    with db.open("r+b") as fh:
        fh.seek((size // page // 2) * page)
        fh.write(random.Random(2).randbytes(page))


@pytest.mark.slow  # fault injection: a damaged database recovered row by row
def test_damaged_database_is_reported_and_recovered(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    store = Path(cli.store)
    ids = _fill(store)
    _garble_middle_page(store / "memory.sqlite3")
    found = json.loads(cli("doctor", "--json", code=1).stdout)
    assert [p["check"] for p in found["problems"]] == ["sqlite"]
    assert "--recover-to" in found["problems"][0]["detail"]
    target = tmp_path / "recovered"
    report = json.loads(cli("doctor", "--recover-to", str(target), "--json").stdout)
    assert report["recovered"] + report["unreadable_rows"] == len(ids)
    assert report["recovered"] > 0
    with SemanticMemory(str(target), embedder=HashingEmbedder()) as memory:
        assert len(memory) == report["recovered"]
        assert memory.check()["ok"]
        assert memory.instructions == "Answer briefly.\n"
        survivor = memory.list(limit=1)[0]
        assert memory.recall(survivor.text, limit=1, mode="vector")[0].similarity > 0.999
        assert sum(1 for _ in memory.export_jsonl()) == report["recovered"] + 2


@pytest.mark.slow  # fault injection: a truncated database recovered row by row
def test_truncated_database_is_recovered(tmp_path: Path) -> None:
    store = tmp_path / "store"
    ids = _fill(store)
    db = store / "memory.sqlite3"
    with db.open("r+b") as fh:
        fh.truncate(db.stat().st_size * 6 // 10)
    report = recover_store(store, tmp_path / "new")
    assert 0 < report["recovered"] + report["unreadable_rows"] <= len(ids)
    if report["complete"]:  # the count of memories was readable: every loss is counted
        assert report["recovered"] + report["unreadable_rows"] == len(ids)
    with SemanticMemory(str(tmp_path / "new"), embedder=HashingEmbedder()) as memory:
        assert len(memory) == report["recovered"]
        assert sum(1 for _ in memory.export_jsonl()) == report["recovered"] + 2
