"""A document upload stops when its client disconnects, and leaves nothing behind
(issue 12, item 7: "run the work off the event loop, and cancel it when the client
disconnects").

The engine part: ``ingest_pdf(cancel=event)`` stops within a page (every 512 operators),
between embedding batches and between committed slices, and
deletes the chunks that call stored, on both backends. The server part, over real HTTP
against uvicorn: a client uploads, then closes its connection while the server is still
reading the PDF or storing its chunks, on the plain and the ``?progress=true`` path.
Every step waits on an event (a log record, a held embedding batch, bytes on the socket),
never on a clock.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from embedders import GatedEmbedder, HashingEmbedder
from live_server import serve
from pdf_bombs import bomb_pdf
from pg_server import cluster_or_skip
from upload_client import (
    LONG_TEXT,
    LONG_TEXT_CHUNKS,
    SLOW_PAGE_BYTES,
    SLOW_PAGES,
    UploadLog,
    hang_up,
    read_until,
    send_upload,
    slow_pdf,
    watch_uploads,
)

from sem_mem import SemanticMemory
from sem_mem.core import INGEST_SLICE
from sem_mem.ingest import IngestCancelled, PdfLimits, read_document

WAIT = 120  # seconds: a safety net for a broken server, never reached when it works

PARAGRAPHS = 150  # with chunk_chars=80: one chunk each, in slices of 64, 64 and 22
TEXT = "\n\n".join(f"Paragraph {i} talks about topic number {i} at length." for i in range(150))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def memory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SemanticMemory]:
    """A SemanticMemory on each backend kind."""
    if request.param == "sqlite":
        with SemanticMemory(str(tmp_path / "store"), embedder=HashingEmbedder()) as memory:
            yield memory
        return
    with (
        cluster_or_skip().database() as url,
        SemanticMemory(str(tmp_path / "pg"), database_url=url, embedder=HashingEmbedder()) as m,
    ):
        yield m


def _cancel_after(cancel: threading.Event, chunks: int) -> Any:
    def progress(done: int, _total: int) -> None:
        if done >= chunks:
            cancel.set()

    return progress


def test_a_cancelled_ingest_removes_the_chunks_it_stored(memory: SemanticMemory) -> None:
    cancel = threading.Event()
    with pytest.raises(IngestCancelled) as info:
        memory.ingest_pdf(
            TEXT.encode(),
            name="long.txt",
            chunk_chars=80,
            overlap_chars=0,
            progress=_cancel_after(cancel, INGEST_SLICE),  # once the first slice is in
            cancel=cancel,
        )
    gone = info.value
    assert (gone.stage, gone.done, gone.total, gone.removed) == (
        "storing",
        INGEST_SLICE,
        PARAGRAPHS,
        INGEST_SLICE,
    )
    assert gone.reason == "cancelled" and "removed" in str(gone)
    assert len(memory) == 0
    assert memory.recall("topic number 3", mode="lexical") == []
    again = memory.ingest_pdf(TEXT.encode(), name="long.txt", chunk_chars=80, overlap_chars=0)
    assert not again.already_ingested and again.chunks_stored == len(memory) == PARAGRAPHS


def test_a_cancelled_ingest_keeps_what_an_earlier_interrupted_one_stored(
    memory: SemanticMemory,
) -> None:
    def stop_in_the_second_slice(done: int, _total: int) -> None:
        if done > INGEST_SLICE:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):  # a killed run: its first slice stays
        memory.ingest_pdf(
            TEXT.encode(),
            name="long.txt",
            chunk_chars=80,
            overlap_chars=0,
            progress=stop_in_the_second_slice,
        )
    assert len(memory) == INGEST_SLICE
    kept = {m.id for m in memory.list(limit=1000)}

    cancel = threading.Event()
    with pytest.raises(IngestCancelled) as info:  # resumes, stores slice 2, is cancelled
        memory.ingest_pdf(
            TEXT.encode(),
            name="long.txt",
            chunk_chars=80,
            overlap_chars=0,
            progress=_cancel_after(cancel, 2 * INGEST_SLICE),
            cancel=cancel,
        )
    assert info.value.removed == INGEST_SLICE  # only what this call had stored
    assert {m.id for m in memory.list(limit=1000)} == kept


def test_an_ingest_of_the_same_document_waits_for_a_cancelled_one(
    memory: SemanticMemory,
) -> None:
    """A second ingest of the document, started while the first one holds stored
    chunks, reports only what is really kept: the two take turns."""
    cancel = threading.Event()
    second: list[Any] = []
    thread = threading.Thread(
        target=lambda: second.append(
            memory.ingest_pdf(TEXT.encode(), name="long.txt", chunk_chars=80, overlap_chars=0)
        )
    )

    def start_another_then_cancel(done: int, _total: int) -> None:
        if done >= INGEST_SLICE and not cancel.is_set():
            thread.start()
            cancel.set()

    with pytest.raises(IngestCancelled):
        memory.ingest_pdf(
            TEXT.encode(),
            name="long.txt",
            chunk_chars=80,
            overlap_chars=0,
            progress=start_another_then_cancel,
            cancel=cancel,
        )
    thread.join(WAIT)
    (result,) = second
    assert result.chunks_stored == len(memory) == PARAGRAPHS


def test_cancel_while_reading_says_how_far_it_got(memory: SemanticMemory) -> None:
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(IngestCancelled) as info:
        memory.ingest_pdf(bomb_pdf(50_000, pages=3), name="gone.pdf", cancel=cancel)
    assert (info.value.stage, info.value.done, info.value.total) == ("reading", 0, 3)
    assert len(memory) == 0


def test_the_slow_pdf_is_within_every_limit() -> None:
    """What the HTTP tests upload is a legal document, not a bomb: each of its pages is
    within the per-page limits, and the whole within the per-document ones."""
    one = read_document(bomb_pdf(SLOW_PAGE_BYTES), name="one.pdf")  # default limits
    limits = PdfLimits()
    assert SLOW_PAGES * len(one.pages[0].text) < limits.chars
    assert limits.inflated_bytes > SLOW_PAGES * SLOW_PAGE_BYTES
    assert len(one.pages[0].text) > 100_000  # and slow: much text per page


# -- over HTTP ------------------------------------------------------------------------------


@pytest.fixture
def upload_log() -> Iterator[UploadLog]:
    with watch_uploads(WAIT) as log:
        yield log


@pytest.mark.parametrize("progress", [False, True], ids=["plain", "progress"])
def test_a_client_that_hangs_up_while_the_pdf_is_read_stops_the_reading(
    tmp_path: Path, upload_log: UploadLog, progress: bool
) -> None:
    slow = slow_pdf()
    with serve(tmp_path / "store") as url, httpx.Client(base_url=url, timeout=WAIT) as http:
        sock = send_upload(url, "slow.pdf", slow, progress=progress)
        upload_log.wait("started")
        # the work is off the event loop: other requests are answered meanwhile
        assert http.get("/health").json()["status"] == "ok"
        hang_up(sock)
        upload_log.wait("cancelled")
        (gone,) = upload_log.cancelled
        # it was still reading when /health answered and when the client left, and it
        # stopped there: not at the end of the document, nor at a limit
        assert gone.stage == "reading" and gone.done < gone.total == SLOW_PAGES
        assert http.get("/memories").json()["memories"] == []
        # the server is free for the next upload
        ok = http.post("/upload/pdf", files={"file": ("fine.pdf", bomb_pdf(5_000))})
        assert ok.status_code == 200 and ok.json()["chunks_stored"] >= 1


@pytest.mark.parametrize("progress", [False, True], ids=["plain", "progress"])
def test_a_client_that_hangs_up_while_chunks_are_stored_leaves_none_of_them(
    tmp_path: Path, upload_log: UploadLog, progress: bool
) -> None:
    gated = GatedEmbedder(free=1)  # the first slice is embedded and committed at once
    with (
        serve(tmp_path / "store", embedder=gated) as url,
        httpx.Client(base_url=url, timeout=WAIT) as http,
    ):
        sock = send_upload(url, "long.txt", LONG_TEXT.encode(), progress=progress)
        assert gated.held.wait(WAIT)  # slice 2 waits to be embedded: slice 1 is stored
        stored = http.get("/memories", params={"limit": 500}).json()["memories"]
        assert len(stored) == INGEST_SLICE and http.get("/health").status_code == 200
        if progress:
            read_until(sock, b'"done"')  # the client has seen progress lines
        hang_up(sock)
        upload_log.wait("disconnected")
        gated.release.set()
        upload_log.wait("cancelled")
        (gone,) = upload_log.cancelled
        assert (gone.stage, gone.done, gone.total) == ("storing", INGEST_SLICE, LONG_TEXT_CHUNKS)
        assert gone.removed == INGEST_SLICE
        assert gated.calls == 2  # slices 1 and 2 of 3: it embedded nothing after the cancel
        assert http.get("/memories").json()["memories"] == []
        assert http.post("/recall", json={"query": "topic number 3"}).json()["memories"] == []
        # the same file again is stored whole (nothing was left that looks "ingested")
        again = http.post("/upload/pdf", files={"file": ("long.txt", LONG_TEXT.encode())})
        assert again.status_code == 200, again.text
        assert again.json()["chunks_stored"] == LONG_TEXT_CHUNKS
