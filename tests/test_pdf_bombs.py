"""PDF decompression bombs are refused early, naming the limit (issue 12, item 7).

A 31 KB one-page PDF whose content stream inflates to 10 MiB used to cost minutes of
CPU and store thousands of chunks; 500 pages sharing one stream, hours. Each bound of
:class:`~sem_mem.ingest.PdfLimits` is exercised with a file that goes over it.
"""

from __future__ import annotations

import threading
from pathlib import Path

import httpx
import pytest
from live_server import serve
from pdf_bombs import bomb_pdf

from sem_mem import LimitExceededError, SemanticMemory
from sem_mem.ingest import DocumentError, PdfLimits, read_document

LOOSE = PdfLimits(page_bytes=2**30, inflated_bytes=2**31, page_chars=10**9, chars=10**10)


def test_a_one_page_bomb_is_refused_before_extraction(memory: SemanticMemory) -> None:
    bomb = bomb_pdf(10 * 2**20)
    assert len(bomb) < 40_000
    with pytest.raises(LimitExceededError) as info:
        memory.ingest_pdf(bomb, name="bomb.pdf")
    assert info.value.limit == "max_pdf_page_bytes" and "max_pdf_page_bytes" in str(info.value)
    assert len(memory) == 0


@pytest.mark.slow  # a 500-page bomb read up to its limit
def test_pages_sharing_one_stream_are_bounded_per_page(memory: SemanticMemory) -> None:
    with pytest.raises(LimitExceededError) as info:
        memory.ingest_pdf(bomb_pdf(2**20, pages=500), name="shared.pdf")
    assert info.value.limit == "max_pdf_page_chars"
    assert len(memory) == 0


@pytest.mark.parametrize(
    "limits,pages,content,limit",
    [
        (PdfLimits(inflated_bytes=2**20, page_chars=10**9, chars=10**10), 6, 300_000,
         "max_pdf_inflated_bytes"),
        (PdfLimits(chars=100_000), 50, 20_000, "max_pdf_chars"),
        (PdfLimits(page_chars=1_000), 1, 20_000, "max_pdf_page_chars"),
        (PdfLimits(seconds=1e-9), 1, 20_000, "max_pdf_seconds"),
    ],
)  # fmt: skip
@pytest.mark.slow  # each bomb is read whole once, unbounded
def test_document_bounds(limits: PdfLimits, pages: int, content: int, limit: str) -> None:
    pdf = bomb_pdf(content, pages=pages)
    assert read_document(pdf, name="ok.pdf", pdf_limits=LOOSE).pages  # valid when unbounded
    with pytest.raises(LimitExceededError) as info:
        read_document(pdf, name="b.pdf", pdf_limits=limits)
    assert info.value.limit == limit and limit in str(info.value)


def test_cancel_stops_the_work_before_anything_is_stored(memory: SemanticMemory) -> None:
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(DocumentError) as info:
        memory.ingest_pdf(bomb_pdf(50_000, pages=3), name="gone.pdf", cancel=cancel)
    assert info.value.reason == "cancelled"
    assert len(memory) == 0


@pytest.mark.slow  # bombs uploaded to a live server
def test_http_upload_of_a_bomb_is_413_naming_the_limit(tmp_path: Path) -> None:
    with serve(tmp_path / "store") as url, httpx.Client(base_url=url, timeout=120) as http:
        for pdf, limit in (
            (bomb_pdf(10 * 2**20), "max_pdf_page_bytes"),
            (bomb_pdf(2**20, pages=500), "max_pdf_page_chars"),
        ):
            response = http.post("/upload/pdf", files={"file": ("bomb.pdf", pdf)})
            assert response.status_code == 413, response.text
            assert response.json()["limit"] == limit
        assert http.get("/memories").json()["memories"] == []
        ok = http.post("/upload/pdf", files={"file": ("fine.pdf", bomb_pdf(5_000))})
        assert ok.status_code == 200 and ok.json()["chunks_stored"] >= 1
