"""Hostile input: a ValidationError naming the field from Python, a 4xx over HTTP, never a
500 or a raw UnicodeEncodeError / OverflowError / RecursionError, and nothing stored
is lost or broken by it."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from embedders import HashingEmbedder
from hostile_inputs import CASES, run_battery
from live_server import serve

from sem_mem import SemanticMemory, ValidationError

LONE = "\ud800"
DEEP: dict[str, Any] = {}
_cursor = DEEP
for _ in range(5000):
    _cursor["a"] = {}
    _cursor = _cursor["a"]

PY_CASES: list[tuple[str, Callable[[SemanticMemory], Any], str]] = [
    ("remember text", lambda m: m.remember(f"x {LONE}"), "text"),
    ("metadata key", lambda m: m.remember("x", {LONE: 1}), "metadata key"),
    ("metadata value", lambda m: m.remember("x", {"k": LONE}), "metadata['k']"),
    ("nested value", lambda m: m.remember("x", {"k": [{"a": LONE}]}), "metadata['k'][0]['a']"),
    ("metadata int", lambda m: m.remember("x", {"k": 2**70}), "64 bits"),
    ("metadata nan", lambda m: m.remember("x", {"k": float("nan")}), "metadata['k']"),
    ("deep metadata", lambda m: m.remember("x", DEEP), "nested"),
    ("batch text", lambda m: m.remember_batch(["ok", LONE]), "texts[1]"),
    ("recall query", lambda m: m.recall(LONE), "query"),
    ("update text", lambda m: m.update(m.list()[0].id, text=LONE), "text"),
    ("update metadata", lambda m: m.update(m.list()[0].id, metadata={LONE: 1}), "metadata key"),
    ("instructions", lambda m: m.set_instructions(LONE), "instructions"),
    ("instruction", lambda m: m.add_instruction(LONE), "instruction"),
    ("filter value", lambda m: m.list(metadata={"k": LONE}), "metadata['k']"),
    ("filter key", lambda m: m.list(metadata={LONE: 1}), "metadata key"),
    ("filter int", lambda m: m.list(metadata={"k": 2**70}), "64 bits"),
]


@pytest.mark.parametrize("name,call,names", PY_CASES, ids=[c[0] for c in PY_CASES])
def test_python_api_raises_validation_error_naming_the_field(
    memory: SemanticMemory, name: str, call: Callable[[SemanticMemory], Any], names: str
) -> None:
    first = memory.remember("a fact that must survive", {"k": 1})
    with pytest.raises(ValidationError) as info:
        call(memory)
    assert names in str(info.value)
    assert [m.id for m in memory.list()] == [first]
    assert memory.recall("fact survive", limit=1)[0].id == first


BAD_LINES = [
    ('"created_at": 1e300', "created_at"),
    ('"created_at": Infinity', "created_at"),
    ('"created_at": NaN', "created_at"),
    ('"updated_at": "yesterday"', "updated_at"),
    ('"hit_count": 1e30', "hit_count"),
    (f'"hit_count": {2**70}', "hit_count"),
    ('"hit_count": true', "hit_count"),
    ('"superseded_by": {"x": 1}', "superseded_by"),
    ('"id": ["x"]', "id"),
    ('"id": "\\ud800"', "id"),
    ('"status": 3', "status"),
    ('"metadata": {"k": "\\ud800"}', "metadata"),
]


@pytest.mark.parametrize("field,names", BAD_LINES)
def test_import_rejects_an_out_of_range_field_with_its_line_number(
    memory: SemanticMemory, field: str, names: str
) -> None:
    kept = memory.remember("kept before the import")
    lines = [
        json.dumps({"type": "header", "format": "sem-mem/1"}),
        json.dumps({"type": "memory", "text": "a good line"}),
        '{"type": "memory", "text": "the bad line", ' + field + "}",
    ]
    with pytest.raises(ValidationError, match=rf"line 3: .*{names}|line 3.*{names}"):
        memory.import_jsonl(lines)
    # nothing out of range was stored, and every read path still works
    assert kept in {m.id for m in memory.list()}
    assert all(m.text != "the bad line" for m in memory.list())
    memory.recall("kept import", limit=3)
    assert sum(1 for _ in memory.export_jsonl()) >= 2


def test_import_rejects_a_line_that_is_not_utf8(memory: SemanticMemory) -> None:
    with pytest.raises(ValidationError, match="line 2 is not UTF-8"):
        memory.import_jsonl([b'{"type":"header","format":"sem-mem/1"}', b'{"text":"\xff"}'])


def test_bad_input_battery_gets_4xx_naming_the_field_never_5xx(tmp_path: Path) -> None:
    with (
        serve(tmp_path / "store", embedder=HashingEmbedder()) as url,
        httpx.Client(base_url=url, timeout=120) as client,
    ):
        client.post("/remember", json={"text": "survivor"}).raise_for_status()
        results = run_battery(client)
        bad = [(c.method, c.path[:40], status) for c, status, _ in results if status >= 500]
        assert not bad
        for case, status, detail in results:
            assert 400 <= status < 500, (case, status)
            assert case.names in detail, (case, detail)
        page = client.get("/memories").json()
        assert [m["text"] for m in page["memories"]] == ["survivor"]
        assert len(CASES) == len(results) > 30
