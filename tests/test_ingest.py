"""Reading PDFs, text and Markdown into pages, and chunking them (sem_mem.ingest).

The PDFs are real files generated with fpdf2 and read back with pypdf.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import re
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sem_mem.errors import (
    ConfigurationError,
    LimitExceededError,
    SemMemError,
    ValidationError,
)
from sem_mem.ingest import (
    SUPPORTED_SUFFIXES,
    Chunk,
    Document,
    DocumentError,
    DocumentKind,
    Page,
    chunk_document,
    describe_limits,
    normalize_text,
    read_document,
    split_sentences,
)

fpdf = pytest.importorskip("fpdf")
pytest.importorskip("pypdf")

# ----------------------------------------------------------------------------- helpers


def make_pdf(
    pages: list[list[str] | None],
    *,
    user_password: str | None = None,
    owner_password: str = "owner",
) -> bytes:
    """A PDF with one page per entry: paragraphs of text, or ``None`` for a drawing only."""
    pdf = fpdf.FPDF()
    pdf.set_font("helvetica", size=11)
    if user_password is not None:
        pdf.set_encryption(owner_password=owner_password, user_password=user_password)
    for paragraphs in pages:
        pdf.add_page()
        if paragraphs is None:
            pdf.set_fill_color(40, 40, 40)
            pdf.rect(20, 20, 120, 80, style="F")  # an "image-only" page: no text layer
            continue
        for paragraph in paragraphs:
            pdf.multi_cell(0, 6, paragraph)
            pdf.ln(6)
    return bytes(pdf.output())


def page_sentences(page: int, count: int) -> list[str]:
    return [
        f"Sentence {k} on page {page} describes finding number {k} of the study in detail."
        for k in range(1, count + 1)
    ]


def text_doc(text: str, kind: DocumentKind = "text") -> Document:
    return Document(name="t.txt", kind=kind, pages=(Page(1, normalize_text(text)),), sha256="0")


def chunk_texts(text: str, kind: DocumentKind = "text", **options: int) -> list[str]:
    return [chunk.text for chunk in chunk_document(text_doc(text, kind), **options)]


@pytest.fixture(scope="module")
def report_pdf() -> bytes:
    """Three pages of text, page 3 image-only, page 4 text again."""
    return make_pdf(
        [
            [" ".join(page_sentences(1, 4)), " ".join(page_sentences(1, 3)[1:])],
            [" ".join(page_sentences(2, 5))],
            None,
            [" ".join(page_sentences(4, 3))],
        ]
    )


# ----------------------------------------------------------------------------- reading PDFs


def test_pdf_pages_are_numbered_and_keep_their_text(tmp_path: Path, report_pdf: bytes) -> None:
    path = tmp_path / "report.pdf"
    path.write_bytes(report_pdf)

    doc = read_document(path)

    assert doc.name == "report.pdf"
    assert doc.kind == "pdf"
    assert [page.number for page in doc.pages] == [1, 2, 3, 4]
    assert "Sentence 1 on page 1 describes" in doc.pages[0].text
    assert "Sentence 5 on page 2" in doc.pages[1].text
    assert doc.pages[2].text == ""  # the drawing-only page has no text layer
    assert "Sentence 3 on page 4" in doc.pages[3].text
    assert doc.has_text


def test_pdf_paragraph_breaks_are_recovered(report_pdf: bytes) -> None:
    doc = read_document(report_pdf, name="report.pdf")
    first, second = doc.pages[0].text.split("\n\n")
    assert first.startswith("Sentence 1 on page 1") and first.endswith(
        "number 4 of the study in detail."
    )
    assert second.startswith("Sentence 2 on page 1")


def test_chunk_pages_are_the_pages_the_text_came_from(report_pdf: bytes) -> None:
    doc = read_document(report_pdf, name="report.pdf")

    chunks = chunk_document(doc, chunk_chars=300, overlap_chars=100)

    assert len(chunks) > 3
    for chunk in chunks:
        quoted_pages = {int(n) for n in re.findall(r"on page (\d)", chunk.text)}
        assert set(chunk.pages) == quoted_pages
        assert chunk.metadata["pages"] == list(chunk.pages)
        assert chunk.metadata["file"] == "report.pdf"
        assert chunk.metadata["doc_sha256"] == doc.sha256
        assert chunk.metadata["chunk_count"] == len(chunks)
        assert 3 not in chunk.pages
    assert (
        [c.index for c in chunks]
        == [c.metadata["chunk"] for c in chunks]
        == list(range(len(chunks)))
    )
    assert any(len(chunk.pages) > 1 for chunk in chunks)  # chunks may span pages
    for previous, current in itertools.pairwise(chunks):
        assert current.text.startswith(split_sentences(previous.text)[-1])  # the overlap
    all_text = " ".join(c.text for c in chunks)
    for page in (1, 2, 4):
        assert f"on page {page}" in all_text


def test_a_paragraph_running_over_a_page_break_spans_both_pages() -> None:
    data = make_pdf(
        [
            ["Intro sentence here. The treatment of hypertension in elderly patients requires"],
            ["careful monitoring of blood pressure at home. A new paragraph starts here."],
        ]
    )
    chunks = chunk_document(read_document(data, name="x.pdf"), chunk_chars=120, overlap_chars=0)

    spanning = [c for c in chunks if "requires careful monitoring" in c.text]
    assert len(spanning) == 1
    assert spanning[0].pages == (1, 2)


def test_image_only_pdf_reads_as_empty_pages_and_gives_no_chunks() -> None:
    doc = read_document(make_pdf([None, None]), name="scan.pdf")

    assert [page.number for page in doc.pages] == [1, 2]
    assert all(page.text == "" for page in doc.pages)
    assert not doc.has_text
    assert chunk_document(doc) == []


def test_pdf_is_detected_by_its_header_not_its_name(report_pdf: bytes) -> None:
    assert read_document(report_pdf, name="upload.bin").kind == "pdf"
    assert read_document(io.BytesIO(report_pdf)).kind == "pdf"


def test_pdf_encrypted_only_against_editing_is_read() -> None:
    data = make_pdf([["Aspirin lowers the risk of stroke."]], user_password="")
    doc = read_document(data, name="locked.pdf")
    assert "Aspirin lowers the risk of stroke." in doc.pages[0].text


def test_pdf_that_needs_a_password_is_refused_clearly() -> None:
    data = make_pdf([["Secret text."]], user_password="s3cret")

    with pytest.raises(DocumentError, match="PDF is encrypted") as info:
        read_document(data, name="locked.pdf")

    assert info.value.reason == "encrypted"
    assert info.value.file == "locked.pdf"
    assert "locked.pdf" in str(info.value)
    assert isinstance(info.value, ValidationError)


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda data: data[: len(data) // 2], id="truncated"),
        pytest.param(lambda data: data[:9] + b"\x13garbage" * 200, id="garbage-after-header"),
        pytest.param(lambda data: b"%PDF-1.7\n", id="header-only"),
    ],
)
def test_corrupt_pdf_names_the_file(report_pdf: bytes, damage: Callable[[bytes], bytes]) -> None:
    with pytest.raises(DocumentError, match=r"cannot read PDF 'broken\.pdf'.*damaged") as info:
        read_document(damage(report_pdf), name="broken.pdf")

    assert info.value.reason == "corrupt"
    assert info.value.__cause__ is not None  # pypdf's exception is kept as the cause


def test_a_file_named_pdf_that_is_not_one_is_refused() -> None:
    with pytest.raises(DocumentError, match="not a PDF") as info:
        read_document(b"just some words", name="notes.pdf")
    assert info.value.reason == "unsupported"


def test_missing_pypdf_asks_for_the_pdf_extra(
    report_pdf: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "pypdf", None)  # makes `import pypdf` fail

    with pytest.raises(ConfigurationError, match=re.escape('pip install "sem-mem[pdf]"')):
        read_document(report_pdf, name="report.pdf")


# ----------------------------------------------------------------------------- reading text


def test_text_and_markdown_files_are_one_page(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("Line one.\r\nLine two.", encoding="utf-8")
    (tmp_path / "guide.md").write_text("# Title\n\nBody.", encoding="utf-8")
    (tmp_path / "log.unknown").write_text("Plain words.", encoding="utf-8")

    notes = read_document(tmp_path / "notes.txt")
    guide = read_document(str(tmp_path / "guide.md"))
    other = read_document(tmp_path / "log.unknown")

    assert (notes.kind, notes.pages) == ("text", (Page(1, "Line one.\nLine two."),))
    assert guide.kind == "markdown"
    assert other.kind == "text"


def test_utf16_with_bom_and_utf8_bom_are_decoded() -> None:
    assert read_document("Dose: 5 mg.".encode("utf-16"), name="a.txt").text == "Dose: 5 mg."
    assert read_document(b"\xef\xbb\xbfDose.", name="a.txt").text == "Dose."


@pytest.mark.parametrize(
    "data",
    [b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe", b"text with a NUL\x00 byte", b"\xff\xd8\xff"],
)
def test_binary_files_are_refused(data: bytes) -> None:
    with pytest.raises(DocumentError, match=r"photo\.jpg") as info:
        read_document(data, name="photo.jpg")
    assert info.value.reason == "unsupported"


def test_a_str_is_a_path_and_a_missing_one_says_so(tmp_path: Path) -> None:
    with pytest.raises(DocumentError, match="not document text") as info:
        read_document("Aspirin lowers the risk of stroke.")
    assert info.value.reason == "unreadable"
    with pytest.raises(DocumentError, match="cannot read"):
        read_document(tmp_path)  # a directory


def test_text_mode_file_objects_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "a.txt"
    path.write_text("words")
    with path.open(encoding="utf-8") as handle, pytest.raises(ValidationError, match="'rb'"):
        read_document(handle)  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", ["bytes", "path", "file"])
def test_input_over_the_byte_limit_is_refused(tmp_path: Path, kind: str) -> None:
    data = b"a" * 101
    path = tmp_path / "big.txt"
    path.write_bytes(data)
    sources: dict[str, bytes | Path | io.BytesIO] = {
        "bytes": data,
        "path": path,
        "file": io.BytesIO(data),
    }
    source = sources[kind]

    with pytest.raises(LimitExceededError, match="100 bytes") as info:
        read_document(source, max_bytes=100)

    assert (info.value.limit, info.value.maximum, info.value.actual) == (
        "max_upload_bytes",
        100,
        101,
    )
    assert read_document(data[:100], max_bytes=100).text == "a" * 100


def test_pdf_over_the_page_limit_is_refused(report_pdf: bytes) -> None:
    with pytest.raises(LimitExceededError) as info:
        read_document(report_pdf, name="r.pdf", max_pages=3)
    assert (info.value.limit, info.value.actual) == ("max_pdf_pages", 4)


def test_same_bytes_same_hash_and_same_chunks(report_pdf: bytes) -> None:
    first = read_document(report_pdf, name="r.pdf")
    second = read_document(io.BytesIO(report_pdf), name="r.pdf")

    assert first.sha256 == second.sha256 == hashlib.sha256(report_pdf).hexdigest()
    assert chunk_document(first, chunk_chars=250) == chunk_document(second, chunk_chars=250)
    assert read_document(report_pdf + b"\n").sha256 != first.sha256


# ----------------------------------------------------------------------------- normalising


def test_normalize_joins_hyphenated_words_and_cleans_spacing() -> None:
    raw = (
        "Cardio-\nlogy and Non-\nHodgkin and COVID-\n19.\x00\x07 Too   many\u00a0 spaces\t "
        "here.\n\n\n\nNext"
    )
    assert (
        normalize_text(raw)
        == "Cardiology and Non-Hodgkin and COVID-19. Too many spaces here.\n\nNext"
    )


def test_hyphenation_is_fixed_in_real_pdf_text() -> None:
    data = make_pdf([["Patients were referred to cardio-\nlogy for a follow-up visit."]])
    doc = read_document(data, name="h.pdf")
    assert "referred to cardiology for a follow-up visit." in doc.pages[0].text


# ----------------------------------------------------------------------------- sentences


def test_sentence_splitter_keeps_abbreviations_initials_and_decimals() -> None:
    text = (
        "Dr. Smith prescribed 2.5 mg daily, e.g. with food. See Fig. 2 and Smith et al. for "
        "details. J. R. Jones agreed! Was the U.S. Army involved? Yes... It was. 1. Not a list"
    )
    assert split_sentences(text) == [
        "Dr. Smith prescribed 2.5 mg daily, e.g. with food.",
        "See Fig. 2 and Smith et al. for details.",
        "J. R. Jones agreed!",
        "Was the U.S. Army involved?",
        "Yes...",
        "It was.",
        "1. Not a list",
    ]


def test_numbered_list_markers_do_not_end_sentences() -> None:
    expected = ["Steps:\n1. Take the dose.", "2. Rest."]
    assert split_sentences("Steps:\n1. Take the dose.\n2. Rest.") == expected
    assert split_sentences("Steps: 1. Take the dose. 2. Rest.") == [
        "Steps: 1. Take the dose.",
        "2. Rest.",
    ]
    assert split_sentences("It began in 2019. Then it grew.") == [
        "It began in 2019.",
        "Then it grew.",
    ]


# ----------------------------------------------------------------------------- chunking


def test_chunks_respect_size_and_start_with_overlap() -> None:
    sentences = [f"Short sentence number {i} is here." for i in range(40)]

    chunks = chunk_texts(" ".join(sentences), chunk_chars=200, overlap_chars=70)

    assert len(chunks) > 5
    assert all(len(chunk) <= 200 for chunk in chunks)
    for previous, current in itertools.pairwise(chunks):
        last_two = " ".join(split_sentences(previous)[-2:])
        assert len(last_two) <= 70
        assert current.startswith(last_two + " ")  # the overlap is whole sentences
    for sentence in sentences:
        assert any(sentence in chunk for chunk in chunks)


def test_no_overlap_when_asked_for_none() -> None:
    sentences = [f"Short sentence number {i} is here." for i in range(20)]
    chunks = chunk_texts(" ".join(sentences), chunk_chars=200, overlap_chars=0)
    assert " ".join(chunks) == " ".join(sentences)


def test_chunks_end_at_paragraphs_when_they_fit() -> None:
    first = "Hypertension is common. " * 5
    second = "Diabetes is common too. " * 5
    third = "Both need follow-up care. " * 5

    chunks = chunk_texts(f"{first}\n\n{second}\n\n{third}", chunk_chars=260, overlap_chars=0)

    assert chunks == [f"{first.strip()}\n\n{second.strip()}", third.strip()]


def test_a_sentence_longer_than_a_chunk_is_cut_between_words() -> None:
    words = [f"word{i}" for i in range(100)]
    long_sentence = " ".join(words) + "."

    chunks = chunk_texts(
        f"Short start. {long_sentence} Short end.", chunk_chars=100, overlap_chars=30
    )

    assert all(len(chunk) <= 100 for chunk in chunks)
    chunk_words = [set(chunk.split()) for chunk in chunks]
    for word in words[:-1]:
        assert any(word in found for found in chunk_words)  # no word is cut in half
    assert any("word99." in found for found in chunk_words)


def test_tiny_trailing_text_joins_the_previous_chunk() -> None:
    body = "A sentence that fills the chunk nicely. " * 4
    chunks = chunk_texts(f"{body}\n\nOk.", chunk_chars=200, overlap_chars=0, min_chunk_chars=40)
    assert chunks[-1].endswith("\n\nOk.")
    assert len(chunks) == 1


def test_a_short_document_still_gives_one_chunk() -> None:
    assert chunk_texts("Take 81 mg.", min_chunk_chars=40) == ["Take 81 mg."]
    assert chunk_texts("") == []


def test_markdown_splits_at_headings_and_records_the_section() -> None:
    text = (
        "# Guide\n\nThis guideline covers antiplatelet therapy for adults.\n\n"
        "## Dosage\n\nTake 81 mg of aspirin daily with food. Never double a missed dose.\n\n"
        "```\n# a comment, not a heading\n```\n\n"
        "## Risks\n\n### Bleeding\n\nWatch for bleeding, especially in the elderly.\n"
    )
    doc = Document(name="guide.md", kind="markdown", pages=(Page(1, text),), sha256="0")

    chunks = chunk_document(doc, chunk_chars=400, overlap_chars=100, min_chunk_chars=10)

    assert [c.metadata["section"] for c in chunks] == [
        "Guide",
        "Guide > Dosage",
        "Guide > Risks > Bleeding",
    ]
    assert chunks[1].text.startswith("## Dosage\n\nTake 81 mg")  # no overlap across headings
    assert "# a comment, not a heading" in chunks[1].text
    assert chunks[2].text.startswith("## Risks\n\n### Bleeding\n\nWatch")
    assert all(c.pages == (1,) for c in chunks)


def test_a_long_markdown_section_keeps_its_section_on_every_chunk() -> None:
    body = " ".join(f"Point {i} about dosing matters." for i in range(30))
    text = f"# Guide\n\n## Dosage\n\n{body}"
    chunks = chunk_document(text_doc(text, kind="markdown"), chunk_chars=200, overlap_chars=40)
    assert len(chunks) > 3
    assert {c.metadata["section"] for c in chunks} == {"Guide > Dosage"}
    assert chunks[0].text.startswith("# Guide\n\n## Dosage\n\nPoint 0")


def test_markdown_lists_keep_their_line_breaks() -> None:
    chunks = chunk_texts("Steps:\n- Take the dose.\n- Rest.", kind="markdown")
    assert chunks == ["Steps:\n- Take the dose.\n- Rest."]


@pytest.mark.parametrize(
    ("options", "parameter"),
    [
        ({"chunk_chars": 0}, "chunk_chars"),
        ({"chunk_chars": True}, "chunk_chars"),
        ({"overlap_chars": -1}, "overlap_chars"),
        ({"chunk_chars": 100, "overlap_chars": 100}, "overlap_chars"),
        ({"min_chunk_chars": -1}, "min_chunk_chars"),
    ],
)
def test_bad_chunk_parameters_name_the_parameter(options: dict[str, int], parameter: str) -> None:
    with pytest.raises(ValidationError, match=parameter):
        chunk_document(text_doc("Some text."), **options)


def test_bad_read_parameters_name_the_parameter() -> None:
    with pytest.raises(ValidationError, match="max_bytes"):
        read_document(b"x", max_bytes=0)
    with pytest.raises(ValidationError, match="source"):
        read_document(42)  # type: ignore[arg-type]


def test_limits_are_documented() -> None:
    limits = describe_limits()
    assert limits["max_upload_bytes"] == 50 * 2**20
    assert limits["supported_suffixes"] == list(SUPPORTED_SUFFIXES)
    assert ".pdf" in SUPPORTED_SUFFIXES and ".md" in SUPPORTED_SUFFIXES


def test_errors_are_sem_mem_errors() -> None:
    assert issubclass(DocumentError, ValidationError)
    assert issubclass(DocumentError, SemMemError)


def test_chunks_are_hashable_values() -> None:
    chunk = Chunk(text="a", index=0, pages=(1,), metadata={"file": "x"})
    assert hash(chunk) == hash(Chunk(text="a", index=0, pages=(1,), metadata={}))


# ----------------------------------------------------------------------------- properties

VOCABULARY_TEXT = """patient dose blood pressure heart kidney therapy trial result risk stroke
aspirin daily weekly monitor symptom follow clinic nurse doctor study sample measure report"""
VOCABULARY = VOCABULARY_TEXT.split()

words = st.sampled_from(VOCABULARY)
sentences = st.builds(
    lambda first, rest, end: " ".join([first.capitalize(), *rest]) + end,
    words,
    st.lists(words, min_size=2, max_size=11),
    st.sampled_from([".", "!", "?"]),
)
paragraphs = st.lists(sentences, min_size=1, max_size=8)
documents = st.lists(paragraphs, min_size=1, max_size=8)


@pytest.mark.slow
@settings(max_examples=150, deadline=None)
@given(
    documents,
    st.integers(min_value=150, max_value=700),
    st.integers(min_value=0, max_value=140),
    st.integers(min_value=0, max_value=80),
    st.sampled_from(["text", "markdown"]),
)
def test_every_short_sentence_survives_whole_in_a_chunk(
    doc: list[list[str]],
    chunk_chars: int,
    overlap_chars: int,
    min_chunk_chars: int,
    kind: DocumentKind,
) -> None:
    text = "\n\n".join(" ".join(paragraph) for paragraph in doc)

    chunks = chunk_texts(
        text,
        kind=kind,
        chunk_chars=chunk_chars,
        overlap_chars=overlap_chars,
        min_chunk_chars=min_chunk_chars,
    )

    assert all(len(chunk) <= chunk_chars for chunk in chunks)
    for paragraph in doc:
        for sentence in paragraph:
            assert any(sentence in chunk for chunk in chunks)


@pytest.mark.slow
@settings(max_examples=150, deadline=None)
@given(
    st.text(max_size=3000),
    st.integers(min_value=20, max_value=400),
    st.sampled_from(["text", "markdown"]),
)
def test_any_text_chunks_within_the_limit_and_keeps_every_word(
    raw: str, chunk_chars: int, kind: DocumentKind
) -> None:
    doc = text_doc(raw, kind=kind)

    chunks = chunk_document(doc, chunk_chars=chunk_chars, overlap_chars=chunk_chars // 4)

    assert all(0 < len(chunk.text) <= chunk_chars for chunk in chunks)
    chunk_words = {word for chunk in chunks for word in chunk.text.split()}
    for word in doc.text.split():
        if len(word) <= chunk_chars:
            assert word in chunk_words
