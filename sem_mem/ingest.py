"""Turn documents (PDF, plain text, Markdown) into memory-sized chunks.

This module is pure: it reads bytes and returns text. It knows nothing about storage or
embeddings; the engine stores each :class:`Chunk` (with ``source="pdf"`` or ``"document"``).

Two steps::

    doc = read_document("guideline.pdf")      # -> Document(pages=(Page(1, "..."), ...))
    chunks = chunk_document(doc)              # -> [Chunk(text, index, pages, metadata), ...]

``read_document`` detects PDFs by their ``%PDF-`` header (not only the file name) and extracts
each page's text layer with pypdf (the ``pdf`` extra, imported lazily). Anything else must decode
as text (UTF-8, or UTF-16 with a byte-order mark); ``.md``/``.markdown`` files are Markdown. An
image-only PDF is not an error: its pages are empty and ``chunk_document`` returns ``[]``.

``chunk_document`` keeps paragraphs whole when they fit, otherwise splits between sentences, and
only cuts inside a sentence (at whitespace) when that sentence alone is longer than
``chunk_chars``. Each chunk after the first starts with the last whole sentence(s) of the
previous one, up to ``overlap_chars``. Markdown is split at headings first and every chunk
carries its heading path in ``metadata["section"]``. The output is deterministic.
"""

from __future__ import annotations

import hashlib
import importlib
import io
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, BinaryIO, Literal

from sem_mem.errors import ConfigurationError, LimitExceededError, SemMemError, ValidationError

__all__ = [
    "DEFAULT_CHUNK_CHARS",
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_PAGES",
    "DEFAULT_MIN_CHUNK_CHARS",
    "DEFAULT_OVERLAP_CHARS",
    "SUPPORTED_SUFFIXES",
    "Chunk",
    "Document",
    "DocumentError",
    "DocumentKind",
    "Page",
    "chunk_document",
    "describe_limits",
    "normalize_text",
    "read_document",
    "split_sentences",
]

DocumentKind = Literal["pdf", "text", "markdown"]

#: File name endings read_document understands. Unknown endings are accepted too when the
#: bytes are a PDF or decode as text (they are then read as plain text).
SUPPORTED_SUFFIXES: tuple[str, ...] = (".pdf", ".txt", ".md", ".markdown")
DEFAULT_MAX_BYTES = 50 * 2**20  # 50 MiB
DEFAULT_MAX_PAGES = 5_000
DEFAULT_CHUNK_CHARS = 1_000
DEFAULT_OVERLAP_CHARS = 150
DEFAULT_MIN_CHUNK_CHARS = 40

_MARKDOWN_SUFFIXES = frozenset({".md", ".markdown"})
_PDF_MAGIC = b"%PDF-"
_PDF_EXTRA_HINT = 'install the PDF extra: pip install "sem-mem[pdf]"'


def describe_limits() -> dict[str, Any]:
    """The defaults and limits of ingestion, for the server and CLI to document."""
    return {
        "supported_suffixes": list(SUPPORTED_SUFFIXES),
        "max_upload_bytes": DEFAULT_MAX_BYTES,
        "max_pdf_pages": DEFAULT_MAX_PAGES,
        "chunk_chars": DEFAULT_CHUNK_CHARS,
        "overlap_chars": DEFAULT_OVERLAP_CHARS,
        "min_chunk_chars": DEFAULT_MIN_CHUNK_CHARS,
    }


class DocumentError(ValidationError):
    """A document cannot be read: not found, damaged, encrypted, or neither PDF nor text.

    ``file`` is the document's name and ``reason`` one of ``"unreadable"``, ``"corrupt"``,
    ``"encrypted"`` or ``"unsupported"``, so edges can react without parsing the message.
    """

    def __init__(self, message: str, *, file: str, reason: str) -> None:
        super().__init__(message)
        self.file = file
        self.reason = reason


@dataclass(frozen=True)
class Page:
    """The normalised text of one page (``number`` is 1-based; text files have one page)."""

    number: int
    text: str


@dataclass(frozen=True)
class Document:
    """A document read into pages of normalised text.

    ``sha256`` is the hex digest of the raw bytes, so the same file always has the same hash.
    """

    name: str
    kind: DocumentKind
    pages: tuple[Page, ...]
    sha256: str

    @property
    def text(self) -> str:
        """All pages' text, separated by blank lines."""
        return "\n\n".join(page.text for page in self.pages if page.text)

    @property
    def has_text(self) -> bool:
        """False for an empty file or a PDF without a text layer (e.g. scanned images)."""
        return any(page.text for page in self.pages)


@dataclass(frozen=True)
class Chunk:
    """One memory-sized piece of a document.

    ``index`` is 0-based; ``pages`` lists every page the text came from. ``metadata`` is
    JSON-ready: ``file``, ``kind``, ``pages``, ``chunk``, ``chunk_count``, ``doc_sha256`` and,
    for Markdown, ``section`` (the heading path, e.g. ``"Guide > Dosage"``).
    """

    text: str
    index: int
    pages: tuple[int, ...]
    metadata: dict[str, Any] = field(default_factory=dict, hash=False)


# --------------------------------------------------------------------------- reading


def read_document(
    source: str | os.PathLike[str] | bytes | bytearray | memoryview | BinaryIO,
    *,
    name: str | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_pages: int = DEFAULT_MAX_PAGES,
) -> Document:
    """Read a PDF, text or Markdown document from a path, raw bytes or a binary file object.

    A ``str`` is always a *path*, never document text. ``name`` (default: the file's name, or
    ``"document"`` for bytes) is used in metadata and error messages, and its ending chooses
    Markdown over plain text.

    Raises:
        LimitExceededError: the input is over ``max_bytes`` (``limit="max_upload_bytes"``) or
            the PDF has more than ``max_pages`` pages (``limit="max_pdf_pages"``).
        DocumentError: the file is missing, damaged, encrypted, or neither PDF nor text.
        ConfigurationError: a PDF was given but pypdf (the ``pdf`` extra) is not installed.
    """
    _check_positive_int("max_bytes", max_bytes)
    _check_positive_int("max_pages", max_pages)
    data, default_name = _read_bytes(source, name=name, max_bytes=max_bytes)
    name = name or default_name
    _check_size(len(data), max_bytes, name)
    sha256 = hashlib.sha256(data).hexdigest()
    suffix = Path(name).suffix.lower()

    if _looks_like_pdf(data, suffix):
        texts = _extract_pdf_pages(data, name=name, max_pages=max_pages)
        pages = tuple(
            Page(number, _mark_pdf_paragraphs(normalize_text(text)))
            for number, text in enumerate(texts, start=1)
        )
        return Document(name=name, kind="pdf", pages=pages, sha256=sha256)
    if suffix == ".pdf":
        raise DocumentError(
            f"{name!r} is named .pdf but is not a PDF (no %PDF- header)",
            file=name,
            reason="unsupported",
        )
    text = _decode_text(data, name=name)
    kind: DocumentKind = "markdown" if suffix in _MARKDOWN_SUFFIXES else "text"
    return Document(name=name, kind=kind, pages=(Page(1, normalize_text(text)),), sha256=sha256)


def _read_bytes(source: object, *, name: str | None, max_bytes: int) -> tuple[bytes, str]:
    """Read at most ``max_bytes + 1`` bytes (enough to notice an oversized input)."""
    if isinstance(source, bytes | bytearray | memoryview):
        return bytes(source), "document"
    if isinstance(source, str | os.PathLike):
        path = Path(source)
        label = name or path.name
        try:
            with path.open("rb") as handle:
                _check_size(os.fstat(handle.fileno()).st_size, max_bytes, label)
                return handle.read(max_bytes + 1), path.name
        except FileNotFoundError as exc:
            raise DocumentError(
                f"no file at {str(path)!r} (read_document takes a path, bytes or a binary "
                "file, not document text)",
                file=label,
                reason="unreadable",
            ) from exc
        except OSError as exc:
            raise DocumentError(
                f"cannot read {str(path)!r}: {exc.strerror or exc}",
                file=label,
                reason="unreadable",
            ) from exc
    read = getattr(source, "read", None)
    if callable(read):
        raw_name = getattr(source, "name", None)
        default = Path(raw_name).name if isinstance(raw_name, str) and raw_name else "document"
        data = read(max_bytes + 1)
        if not isinstance(data, bytes | bytearray):
            raise ValidationError("source: file objects must be opened in binary mode ('rb')")
        return bytes(data), default
    raise ValidationError(
        f"source: expected a path, bytes or a binary file object, got {type(source).__name__}"
    )


def _check_size(size: int, max_bytes: int, name: str) -> None:
    if size > max_bytes:
        raise LimitExceededError(
            f"{name!r} is larger than the upload limit of {max_bytes} bytes",
            limit="max_upload_bytes",
            maximum=max_bytes,
            actual=size,
        )


def _looks_like_pdf(data: bytes, suffix: str) -> bool:
    """A PDF starts with ``%PDF-``; readers tolerate junk before it within the first 1 KiB."""
    if data.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(_PDF_MAGIC):
        return True
    return suffix == ".pdf" and _PDF_MAGIC in data[:1024]


def _import_pypdf() -> ModuleType:
    """Import pypdf only when a PDF is read (it is an optional extra)."""
    try:
        return importlib.import_module("pypdf")
    except ImportError as exc:
        raise ConfigurationError(f"reading PDFs needs pypdf; {_PDF_EXTRA_HINT}") from exc


def _extract_pdf_pages(data: bytes, *, name: str, max_pages: int) -> list[str]:
    """The raw text layer of each page (``""`` for a page without one)."""
    pypdf = _import_pypdf()
    try:
        reader = pypdf.PdfReader(io.BytesIO(data))
        # Many PDFs are "encrypted" only to restrict printing or copying, with an empty user
        # password; pypdf opens those with decrypt("").
        if reader.is_encrypted and not reader.decrypt(""):
            raise DocumentError(
                f"PDF is encrypted: {name!r} needs a password; remove the password "
                "(e.g. print it to a new PDF) and upload it again",
                file=name,
                reason="encrypted",
            )
        page_count = len(reader.pages)
        if page_count > max_pages:
            raise LimitExceededError(
                f"{name!r} has {page_count} pages, more than the limit of {max_pages}",
                limit="max_pdf_pages",
                maximum=max_pages,
                actual=page_count,
            )
        return [page.extract_text() or "" for page in reader.pages]
    except SemMemError:
        raise
    except pypdf.errors.DependencyError as exc:
        raise ConfigurationError(
            f"{name!r} uses AES encryption, which pypdf can only open with the cryptography "
            f"package; {_PDF_EXTRA_HINT}"
        ) from exc
    except Exception as exc:  # pypdf raises many types on malformed input
        raise DocumentError(
            f"cannot read PDF {name!r}: the file is damaged or truncated "
            f"({type(exc).__name__}: {exc})",
            file=name,
            reason="corrupt",
        ) from exc


def _decode_text(data: bytes, *, name: str) -> str:
    """Decode UTF-8 (BOM optional) or BOM-marked UTF-16; refuse anything binary."""
    try:
        if data.startswith((b"\xff\xfe", b"\xfe\xff")):
            return data.decode("utf-16")
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DocumentError(
            f"{name!r} is neither a PDF nor UTF-8 text; supported: {', '.join(SUPPORTED_SUFFIXES)}",
            file=name,
            reason="unsupported",
        ) from exc
    if "\x00" in text:
        raise DocumentError(
            f"{name!r} looks like a binary file (it contains NUL bytes), not a PDF or text",
            file=name,
            reason="unsupported",
        )
    return text


# --------------------------------------------------------------------------- normalising

_LIGATURES = ("ff", "fi", "fl", "ffi", "ffl", "st", "st")  # U+FB00..U+FB06, common in PDFs
_TRANSLATE = str.maketrans(
    {chr(0xFB00 + i): text for i, text in enumerate(_LIGATURES)}
    | dict.fromkeys("\u00ad\u200b\u2060\ufeff")  # soft hyphen, zero-width characters: drop
    | {"\f": "\n\n", "\u2029": "\n\n", "\x85": "\n", "\u2028": "\n", "\t": " ", "\v": " "}
)
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f-\x9f]")  # NUL and other control characters
_HYPHENATED = re.compile(r"([^\W\d_])-\n(\w)")
_SPACES = re.compile(r"[^\S\n]+")  # any run of whitespace but newlines (incl. NBSP, thin space)
_BLANK_LINES = re.compile(r"\n{3,}")


def _join_hyphenated(match: re.Match[str]) -> str:
    before, after = match.group(1), match.group(2)
    if after.islower():
        return before + after  # "cardio-\nlogy" -> "cardiology"
    return f"{before}-{after}"  # "Non-\nHodgkin" -> "Non-Hodgkin", "COVID-\n19" -> "COVID-19"


def normalize_text(text: str) -> str:
    """Normalise extracted text for chunking.

    Line endings become ``\\n``; NUL/control and zero-width characters are dropped; ligatures
    are expanded; words hyphenated at a line end are joined; runs of spaces collapse to one;
    lines are stripped; paragraph breaks (blank lines) are kept, at most one in a row.
    """
    text = text.replace("\r\n", "\n").replace("\r", "\n").translate(_TRANSLATE)
    text = _SPACES.sub(" ", _CONTROL.sub("", text))
    text = "\n".join(line.strip() for line in text.split("\n"))
    text = _HYPHENATED.sub(_join_hyphenated, text)
    return _BLANK_LINES.sub("\n\n", text).strip()


# Closing quotes/brackets that may follow a sentence's final punctuation, and opening ones
# that may precede a word (typographic quotes written as escapes).
_CLOSERS = "\"'\u201d\u2019)\\]"
_OPENERS = "\"'\u201c\u2018(\\["
_TERMINAL = re.compile(f"[.!?:\u2026][{_CLOSERS}]*$")


def _mark_pdf_paragraphs(text: str) -> str:
    """Insert paragraph breaks that PDF text extraction loses.

    pypdf returns one line per printed line, without blank lines between paragraphs. A line
    that ends a sentence and is clearly shorter than the page's full lines is taken as the
    end of a paragraph. Only where chunks are cut depends on this, never what they contain.
    """
    out: list[str] = []
    for block in text.split("\n\n"):
        lines = block.split("\n")
        if len(lines) < 3:
            out.append(block)
            continue
        full = sorted(len(line) for line in lines)[max(0, int(len(lines) * 0.9) - 1)]
        paragraph: list[str] = []
        for line in lines:
            paragraph.append(line)
            if _TERMINAL.search(line) and len(line) < 0.8 * full:
                out.append("\n".join(paragraph))
                paragraph = []
        if paragraph:
            out.append("\n".join(paragraph))
    return "\n\n".join(out)


# --------------------------------------------------------------------------- sentences

_ABBREVIATION_WORDS = """al approx ca cf ch chap co corp dept dr drs ed eds eq eqs esp etc fig
    figs inc jr ltd max min mr mrs ms no nos p pp para prof ref refs resp sec sect sr st tab
    vol vols vs viz jan feb mar apr jun jul aug sep sept oct nov dec"""
_ABBREVIATIONS = frozenset(_ABBREVIATION_WORDS.split())
_BOUNDARY = re.compile(f"([.!?\u2026]+[{_CLOSERS}]*)(\\s+)")
_INITIALISM = re.compile(r"(?:[^\W\d_]\.)+[^\W\d_]|[^\W\d_]")  # e.g / i.e / U.S / J
_LIST_CONTEXT = re.compile(f"[.!?:;\u2026][{_CLOSERS}]*$")
_LAST_TOKEN = re.compile(f"[{_OPENERS}]*(\\S*)$")


def _is_boundary(text: str, match: re.Match[str]) -> bool:
    following = text[match.end(2) : match.end(2) + 1]
    if following.islower():  # "e.g. the", "approx. five"
        return False
    if match.group(1).rstrip(_CLOSERS.replace("\\", "")) != ".":
        return True  # "!", "?", "..." end a sentence
    window = max(0, match.start(1) - 80)  # look back a bounded distance: linear time
    line_start = text.rfind("\n", window, match.start(1)) + 1 or window
    token_match = _LAST_TOKEN.search(text, line_start, match.start(1))
    token = token_match.group(1) if token_match else ""
    if token.lower() in _ABBREVIATIONS or _INITIALISM.fullmatch(token):
        return False  # "Dr. Smith", "Fig. 2", "e.g. The", "J. Smith", "U.S. Army"
    if len(token) <= 3 and token.isdigit() and token_match is not None:
        # "1. Take the dose. 2. Rest.": a list marker at the start of a line or right after a
        # sentence, not a sentence of its own.
        before = text[line_start : token_match.start()].rstrip()
        return bool(before) and not _LIST_CONTEXT.search(before)
    return True


def split_sentences(text: str) -> list[str]:
    """Split text into sentences, keeping abbreviations, initials and decimals intact.

    A sentence ends at ``.``, ``!``, ``?`` or ``…`` (plus closing quotes/brackets) followed by
    whitespace and a character that is not lowercase; a single ``.`` after a known
    abbreviation ("Dr.", "Fig.", "e.g.", "et al.") or an initial ("J.") does not end one.
    Whitespace between sentences is dropped; whitespace inside them is kept.
    """
    return [text[start:end] for start, end, _ in _sentence_spans(text)]


def _sentence_spans(text: str) -> list[tuple[int, int, str]]:
    """``(start, end, whitespace_before)`` for each sentence of ``text``."""
    spans: list[tuple[int, int, str]] = []
    start, gap = 0, ""
    for match in _BOUNDARY.finditer(text):
        if _is_boundary(text, match):
            spans.append((start, match.end(1), gap))
            start, gap = match.end(2), match.group(2)
    if text[start:].strip():
        spans.append((start, len(text.rstrip()), gap))
    return [(s, e, g) for s, e, g in spans if text[s:e].strip()]


# --------------------------------------------------------------------------- chunking


@dataclass
class _Paragraph:
    text: str
    offsets: list[tuple[int, int]]  # (start offset, page number), ascending
    heading: bool = False
    section: str = ""


@dataclass(frozen=True)
class _Unit:
    """A sentence (or a piece of an over-long one): the smallest thing a chunk holds."""

    text: str
    pages: tuple[int, ...]
    paragraph: int
    gap: str  # whitespace before it inside its paragraph
    whole: bool  # a complete sentence (only those are used as overlap)
    heading: bool
    section: str


_HEADING = re.compile(r"^(#{1,6})\s+(.*?)(?:\s+#+)?\s*$")
_FENCE = re.compile(r"^(```|~~~)")
_CONTINUES = re.compile(f"[^.!?:;\u2026{_CLOSERS}]$")
_HYPHEN_END = re.compile(r"[^\W\d_]-$")  # "cardio-" at the end of a page


def _split_markdown(text: str, page: int) -> list[_Paragraph]:
    """Paragraphs and headings of a Markdown page, each tagged with its heading path."""
    paragraphs: list[_Paragraph] = []
    stack: list[tuple[int, str]] = []
    lines: list[str] = []
    in_fence = False

    def close() -> None:
        body = "\n".join(lines).strip()
        if body:
            section = " > ".join(title for _, title in stack)
            paragraphs.append(_Paragraph(body, [(0, page)], section=section))
        lines.clear()

    for line in text.split("\n"):
        heading = None if in_fence else _HEADING.match(line)
        if _FENCE.match(line):
            in_fence = not in_fence
        if heading:
            close()
            level = len(heading.group(1))
            while stack and stack[-1][0] >= level:
                stack.pop()
            stack.append((level, heading.group(2)))
            section = " > ".join(title for _, title in stack)
            paragraphs.append(_Paragraph(line, [(0, page)], heading=True, section=section))
        elif not line and not in_fence:
            close()
        else:
            lines.append(line)
    close()
    return paragraphs


def _paragraphs(doc: Document) -> list[_Paragraph]:
    """The document's paragraphs, joining one that runs on from one page to the next."""
    if doc.kind == "markdown":
        return [p for page in doc.pages for p in _split_markdown(page.text, page.number)]
    paragraphs: list[_Paragraph] = []
    for page in doc.pages:
        blocks = [b.replace("\n", " ") for b in page.text.split("\n\n") if b.strip()]
        for position, block in enumerate(blocks):
            previous = paragraphs[-1] if paragraphs else None
            if position == 0 and previous is not None and _runs_on(previous.text, block):
                if _HYPHEN_END.search(previous.text) and block[0].islower():
                    joined, glue = previous.text[:-1], ""  # "cardio-" + "logy"
                else:
                    joined, glue = previous.text, " "
                previous.offsets.append((len(joined) + len(glue), page.number))
                previous.text = joined + glue + block
            else:
                paragraphs.append(_Paragraph(block, [(0, page.number)]))
    return paragraphs


def _runs_on(end_text: str, next_text: str) -> bool:
    return bool(_CONTINUES.search(end_text)) and next_text[:1].islower()


def _pages_of(paragraph: _Paragraph, start: int, end: int) -> tuple[int, ...]:
    pages = []
    for i, (offset, page) in enumerate(paragraph.offsets):
        stop = (
            paragraph.offsets[i + 1][0]
            if i + 1 < len(paragraph.offsets)
            else len(paragraph.text) + 1
        )
        if offset < end and start < stop:
            pages.append(page)
    return tuple(sorted(set(pages)))


def _split_long(text: str, limit: int) -> list[str]:
    """Cut an over-long sentence at whitespace into pieces of at most ``limit`` characters."""
    pieces: list[str] = []
    current = ""
    for token in text.split():
        word = token
        while len(word) > limit:  # a single "word" longer than a chunk: no choice but to cut
            if current:
                pieces.append(current)
                current = ""
            pieces.append(word[:limit])
            word = word[limit:]
        if current and len(current) + 1 + len(word) > limit:
            pieces.append(current)
            current = ""
        current = f"{current} {word}" if current else word
    if current:
        pieces.append(current)
    return pieces


def _units(paragraphs: Sequence[_Paragraph], chunk_chars: int) -> list[list[_Unit]]:
    """Each paragraph as a list of units no longer than ``chunk_chars``."""
    result: list[list[_Unit]] = []
    for number, paragraph in enumerate(paragraphs):
        spans = (
            [(0, len(paragraph.text), "")] if paragraph.heading else _sentence_spans(paragraph.text)
        )
        units: list[_Unit] = []
        for start, end, gap in spans:
            sentence = paragraph.text[start:end]
            pages = _pages_of(paragraph, start, end)
            pieces = (
                [sentence] if len(sentence) <= chunk_chars else _split_long(sentence, chunk_chars)
            )
            for i, piece in enumerate(pieces):
                units.append(
                    _Unit(
                        text=piece,
                        pages=pages,
                        paragraph=number,
                        gap=gap if i == 0 else " ",
                        whole=len(pieces) == 1,
                        heading=paragraph.heading,
                        section=paragraph.section,
                    )
                )
        if units:
            result.append(units)
    return result


def _separator(previous: _Unit, unit: _Unit) -> str:
    if previous.paragraph != unit.paragraph:
        return "\n\n"
    return "\n" if "\n" in unit.gap else " "


def _render(units: Sequence[_Unit]) -> str:
    parts: list[str] = []
    for i, unit in enumerate(units):
        if i:
            parts.append(_separator(units[i - 1], unit))
        parts.append(unit.text)
    return "".join(parts)


class _Packer:
    """Greedy packing of units into chunks, with sentence overlap between chunks."""

    def __init__(self, chunk_chars: int, overlap_chars: int, min_chunk_chars: int) -> None:
        self.chunk_chars = chunk_chars
        self.overlap_chars = overlap_chars
        self.min_chunk_chars = min_chunk_chars
        self.chunks: list[tuple[list[_Unit], int]] = []  # (units, how many are overlap)
        self.current: list[_Unit] = []
        self.overlap = 0  # the first `overlap` units of `current` repeat the previous chunk
        self.length = 0

    @property
    def new_chars(self) -> int:
        """Characters of new, non-heading text in the current chunk."""
        return sum(len(u.text) for u in self.current[self.overlap :] if not u.heading)

    def _length_with(self, units: Sequence[_Unit]) -> int:
        if not self.current:
            return len(_render(units))
        return self.length + len(_separator(self.current[-1], units[0])) + len(_render(units))

    def fits(self, units: Sequence[_Unit]) -> bool:
        return self._length_with(units) <= self.chunk_chars

    def add(self, units: Sequence[_Unit]) -> None:
        self.length = self._length_with(units)
        self.current.extend(units)

    def make_room(self, units: Sequence[_Unit]) -> None:
        """Drop overlap units (oldest first) until ``units`` fit."""
        while self.overlap and not self.fits(units):
            self.current.pop(0)
            self.overlap -= 1
            self.length = len(_render(self.current))

    def flush(self, *, keep_overlap: bool = True) -> None:
        if len(self.current) > self.overlap:
            self.chunks.append((self.current, self.overlap))
        tail: list[_Unit] = []
        if keep_overlap and len(self.current) > self.overlap:
            for unit in reversed(self.current):
                candidate = [unit, *tail]
                if not unit.whole or unit.heading or len(_render(candidate)) > self.overlap_chars:
                    break
                tail = candidate
        self.current, self.overlap = tail, len(tail)
        self.length = len(_render(tail))

    def add_paragraph(self, units: Sequence[_Unit]) -> None:
        if units[0].heading:
            if self.new_chars >= self.min_chunk_chars:
                self.flush(keep_overlap=False)  # a heading starts a new chunk
            elif self.new_chars == 0 and self.overlap:
                self.current, self.overlap, self.length = [], 0, 0  # no overlap across sections
        if self.fits(units):
            self.add(units)
            return
        new = self.new_chars
        if len(_render(units)) <= self.chunk_chars and (new == 0 or new >= self.min_chunk_chars):
            if new:
                self.flush()
            self.make_room(units)
            if self.fits(units):  # not when a heading waits in front of a long paragraph
                self.add(units)
                return
        # Too long for one chunk (or the current chunk is too small to stand alone):
        # fill sentence by sentence.
        for unit in units:
            if not self.fits([unit]):
                if len(self.current) > self.overlap:
                    self.flush()
                self.make_room([unit])
            self.add([unit])

    def finish(self) -> list[tuple[list[_Unit], int]]:
        self.flush(keep_overlap=False)
        chunks = self.chunks
        if len(chunks) >= 2:
            (previous, prev_overlap), (last, last_overlap) = chunks[-2], chunks[-1]
            tail = last[last_overlap:]
            tail_chars = sum(len(u.text) for u in tail)
            merged = previous + tail
            if (
                tail_chars < self.min_chunk_chars
                and previous[-1].section == tail[0].section
                and len(_render(merged)) <= self.chunk_chars
            ):
                chunks[-2:] = [(merged, prev_overlap)]
        return chunks


def _check_positive_int(parameter: str, value: object, *, allow_zero: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(f"{parameter}: expected an integer, got {type(value).__name__}")
    if value < 0 or (value == 0 and not allow_zero):
        raise ValidationError(
            f"{parameter}: must be {'>= 0' if allow_zero else '> 0'}, got {value}"
        )


def chunk_document(
    doc: Document,
    *,
    chunk_chars: int = DEFAULT_CHUNK_CHARS,
    overlap_chars: int = DEFAULT_OVERLAP_CHARS,
    min_chunk_chars: int = DEFAULT_MIN_CHUNK_CHARS,
) -> list[Chunk]:
    """Split a document into chunks of at most ``chunk_chars`` characters.

    - Paragraphs stay whole when they fit; otherwise chunks end between sentences, and a
      sentence is cut (at whitespace) only when it alone is longer than ``chunk_chars``.
    - Each chunk after the first starts with the last whole sentence(s) of the previous chunk,
      as many as fit in ``overlap_chars`` (none if the last sentence is longer).
    - Text shorter than ``min_chunk_chars`` does not end a chunk on its own (it joins its
      neighbours), so headings and stray lines do not become chunks of their own. Nothing is
      ever dropped: a document shorter than that still gives one chunk.
    - Markdown starts a new chunk at each heading (no overlap across headings) and records
      the heading path in ``metadata["section"]``.

    Returns ``[]`` for a document without text (e.g. an image-only PDF).
    """
    _check_positive_int("chunk_chars", chunk_chars)
    _check_positive_int("overlap_chars", overlap_chars, allow_zero=True)
    _check_positive_int("min_chunk_chars", min_chunk_chars, allow_zero=True)
    if overlap_chars >= chunk_chars:
        raise ValidationError(
            f"overlap_chars: must be smaller than chunk_chars ({chunk_chars}), got {overlap_chars}"
        )

    packer = _Packer(chunk_chars, overlap_chars, min(min_chunk_chars, chunk_chars))
    for units in _units(_paragraphs(doc), chunk_chars):
        packer.add_paragraph(units)
    packed = packer.finish()

    chunks: list[Chunk] = []
    for index, (units, overlap) in enumerate(packed):
        pages = tuple(sorted({page for unit in units for page in unit.pages}))
        metadata: dict[str, Any] = {
            "file": doc.name,
            "kind": doc.kind,
            "pages": list(pages),
            "chunk": index,
            "chunk_count": len(packed),
            "doc_sha256": doc.sha256,
        }
        if doc.kind == "markdown":
            metadata["section"] = _section(units[overlap:])
        chunks.append(Chunk(text=_render(units), index=index, pages=pages, metadata=metadata))
    return chunks


def _section(units: Iterable[_Unit]) -> str:
    """The heading path of the first body text in the chunk (or of its last heading)."""
    section = ""
    for unit in units:
        section = unit.section
        if not unit.heading:
            break
    return section
