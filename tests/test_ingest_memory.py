"""SemanticMemory.ingest_pdf / ingest_file and export/import, at the core level."""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from embedders import HashingEmbedder
from test_server import image_only_pdf, make_pdf

from sem_mem import LimitExceededError, SemanticMemory
from sem_mem.ingest import DocumentError

MakeMemory = Callable[..., SemanticMemory]


GUIDELINE = [
    "Sepsis bundle. Obtain blood cultures before antibiotics. Measure lactate within one hour. "
    * 4,
    "Give 30 mL/kg crystalloid for hypotension or lactate of 4 mmol/L or more.",
]


def test_pdf_from_path_bytes_and_file_object(tmp_path: Path, make_memory: MakeMemory) -> None:
    data = make_pdf(GUIDELINE)
    path = tmp_path / "sepsis.pdf"
    path.write_bytes(data)
    memory = make_memory()
    result = memory.ingest_pdf(path)
    assert (result.filename, result.kind, result.pages) == ("sepsis.pdf", "pdf", 2)
    assert result.chunks_stored == result.chunks_created >= 1
    stored = memory.list(source="pdf", limit=100)
    assert len(stored) == result.chunks_created
    assert {m.metadata["file"] for m in stored} == {"sepsis.pdf"}
    assert all(m.metadata["pages"] for m in stored)
    hit = memory.recall("crystalloid for hypotension", 1)[0]
    assert "crystalloid" in hit.text and 2 in hit.metadata["pages"]

    other = make_memory(tmp_path / "other")
    from_bytes = other.ingest_pdf(data, name="sepsis.pdf")
    assert from_bytes.chunks_stored == result.chunks_created
    third = make_memory(tmp_path / "third")
    assert third.ingest_file(io.BytesIO(data)).chunks_stored == result.chunks_created


def test_same_file_twice_does_not_duplicate(tmp_path: Path, memory: SemanticMemory) -> None:
    data = make_pdf(GUIDELINE)
    first = memory.ingest_pdf(data, name="a.pdf")
    count = len(memory)
    again = memory.ingest_pdf(data, name="renamed.pdf")  # same content, other name
    assert again.already_ingested and again.chunks_stored == 0
    assert len(memory) == count == first.chunks_stored


def test_progress_is_reported(memory: SemanticMemory) -> None:
    calls: list[tuple[int, int]] = []
    result = memory.ingest_pdf(
        make_pdf(GUIDELINE * 3), name="long.pdf", progress=lambda d, t: calls.append((d, t))
    )
    assert calls and calls[-1] == (result.chunks_created, result.chunks_created)


def test_corrupt_encrypted_and_image_only(memory: SemanticMemory) -> None:
    with pytest.raises(DocumentError) as corrupt:
        memory.ingest_pdf(make_pdf(["text"])[:150], name="broken.pdf")
    assert corrupt.value.reason == "corrupt" and "broken.pdf" in str(corrupt.value)
    with pytest.raises(DocumentError) as locked:
        memory.ingest_pdf(make_pdf(["secret"], password="pw"), name="locked.pdf")
    assert locked.value.reason == "encrypted" and "password" in str(locked.value)
    scanned = memory.ingest_pdf(image_only_pdf(), name="scan.pdf")
    assert (scanned.chunks_created, scanned.chunks_stored, scanned.has_text) == (0, 0, False)
    assert "no text layer" in scanned.note
    with pytest.raises(DocumentError):
        memory.ingest_pdf(b"\x00\x01\x02 binary", name="blob.bin")
    with pytest.raises(DocumentError) as missing:
        memory.ingest_pdf("/no/such/file.pdf")
    assert missing.value.reason == "unreadable"
    assert len(memory) == 0


def test_pdf_over_the_upload_limit(memory: SemanticMemory) -> None:
    from sem_mem.ingest import DEFAULT_MAX_BYTES

    with pytest.raises(LimitExceededError) as big:
        memory.ingest_pdf(b"%PDF-1.4\n" + b"0" * DEFAULT_MAX_BYTES, name="big.pdf")
    assert big.value.limit == "max_upload_bytes"


def test_text_and_markdown(tmp_path: Path, memory: SemanticMemory) -> None:
    md = tmp_path / "notes.md"
    md.write_text("# Renal\n\nCheck creatinine before contrast.\n\n## Dosing\n\nAdjust for eGFR.\n")
    result = memory.ingest_file(md)
    assert result.kind == "markdown" and result.chunks_stored >= 1
    assert {m.source for m in memory.list()} == {"document"}
    assert any(m.metadata.get("section", "").startswith("Renal") for m in memory.list())
    txt = memory.ingest_file(b"Metformin is first line for type 2 diabetes.", name="t.txt")
    assert txt.kind == "text" and txt.chunks_stored == 1
    assert (
        memory.ingest_file(
            b"Metformin is first line for type 2 diabetes.", name="t.txt"
        ).chunks_stored
        == 0
    )


# ----------------------------------------------------------------------------- export / import


def _records(lines: list[str]) -> list[dict]:
    return [json.loads(line) for line in lines]


def _without_vectors(records: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "embedding"} for r in records]


def _populate(memory: SemanticMemory) -> dict[str, str]:
    old = memory.remember("the clinic opens at 8", {"kind": "hours"})
    new = memory.remember("the clinic opens at 9", {"kind": "hours"})
    memory.supersede(old, new, "changed")
    hot = memory.remember("hot fact")
    memory.ingest_pdf(make_pdf(GUIDELINE), name="sepsis.pdf")
    memory.update(new, metadata={"kind": "hours", "checked": True})
    memory.set_instructions("Answer in one sentence.")
    for _ in range(4):
        memory.recall("hot fact", 1)
    memory.flush()
    return {"old": old, "new": new, "hot": hot}


def test_export_import_round_trip_is_lossless(tmp_path: Path, make_memory: MakeMemory) -> None:
    source = make_memory(tmp_path / "a")
    ids = _populate(source)
    exported = list(source.export_jsonl())
    target = make_memory(tmp_path / "b")
    report = target.import_jsonl(exported, with_instructions=True)
    assert report.imported == len(exported) - 2 and report.reembedded == 0 and report.instructions
    round_trip = list(target.export_jsonl())
    assert _without_vectors(_records(round_trip)) == _without_vectors(_records(exported))
    for a, b in zip(_records(exported), _records(round_trip), strict=True):
        if "embedding" in a:
            va = np.frombuffer(base64.b64decode(a["embedding"]), "<f4")
            vb = np.frombuffer(base64.b64decode(b["embedding"]), "<f4")
            np.testing.assert_allclose(va, vb, atol=1e-6)
    old = target.get(ids["old"])
    assert old.status == "superseded" and old.superseded_by == ids["new"]
    assert target.get(ids["hot"]).hit_count == source.get(ids["hot"]).hit_count >= 4
    assert target.get(ids["new"]).created_at == source.get(ids["new"]).created_at
    assert target.get(ids["new"]).updated_at == source.get(ids["new"]).updated_at
    assert target.instructions == "Answer in one sentence.\n"
    assert [r.id for r in target.recall("clinic opens", 5)] == [
        r.id for r in source.recall("clinic opens", 5)
    ]
    # importing again changes nothing
    assert target.import_jsonl(exported).skipped_existing == report.imported


def test_import_into_another_embedding_model_reembeds(
    tmp_path: Path, make_memory: MakeMemory
) -> None:
    source = make_memory(tmp_path / "a")
    _populate(source)
    exported = list(source.export_jsonl())
    other = HashingEmbedder(32, name="other")
    target = make_memory(tmp_path / "b", embedder=other)
    before = other.texts_embedded
    report = target.import_jsonl(exported)
    assert report.reembedded == report.imported > 0
    assert other.texts_embedded - before >= report.imported
    assert target.stats()["embedder"]["model_id"] == "test:other-32"
    assert "clinic opens at 9" in target.recall("when does the clinic open", 1)[0].text


def test_export_without_embeddings_reimports_by_embedding(
    tmp_path: Path, make_memory: MakeMemory
) -> None:
    source = make_memory(tmp_path / "a")
    source.remember_batch(["one", "two", "three"])
    lines = list(source.export_jsonl(include_embeddings=False))
    assert all("embedding" not in json.loads(line) for line in lines)
    target = make_memory(tmp_path / "b")
    assert target.import_jsonl(lines).reembedded == 3
