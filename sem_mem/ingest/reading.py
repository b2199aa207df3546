"""Reading a document (a path, bytes or a binary file) into a :class:`Document` of pages.

PDFs are detected by their ``%PDF-`` header and their text layer is extracted with pypdf (the
``pdf`` extra, imported only when a PDF is read). Anything else must decode as text.
"""

from __future__ import annotations

import hashlib
import importlib
import io
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import IO, Any

from sem_mem.errors import ConfigurationError, LimitExceededError, SemMemError, ValidationError

from .documents import (
    DEFAULT_CHUNK_CHARS,
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_PAGES,
    DEFAULT_MIN_CHUNK_CHARS,
    DEFAULT_OVERLAP_CHARS,
    SUPPORTED_SUFFIXES,
    Document,
    DocumentError,
    DocumentKind,
    IngestCancelled,
    Page,
    _check_positive_int,
)
from .text import _mark_pdf_paragraphs, normalize_text

__all__ = ["PdfLimits", "describe_limits", "read_document"]

MiB = 2**20


@dataclass(frozen=True)
class PdfLimits:
    """Bounds on the work one PDF may cause (each named in the error that enforces it).

    A small file can inflate to huge content streams (a "decompression bomb": 36 KB
    inflating to 10 MiB took four minutes of CPU and gave 6,014 chunks), so what counts
    is what the file expands to, not its size.
    """

    page_bytes: int = 2 * MiB  # max_pdf_page_bytes: a page's inflated content streams
    inflated_bytes: int = 64 * MiB  # max_pdf_inflated_bytes: all pages together
    page_chars: int = 200_000  # max_pdf_page_chars: text extracted from one page
    chars: int = 5_000_000  # max_pdf_chars: text extracted from the document
    seconds: float = 60.0  # max_pdf_seconds: time to extract the document's text

    def describe(self) -> dict[str, float]:
        return {
            "max_pdf_page_bytes": self.page_bytes,
            "max_pdf_inflated_bytes": self.inflated_bytes,
            "max_pdf_page_chars": self.page_chars,
            "max_pdf_chars": self.chars,
            "max_pdf_seconds": self.seconds,
        }


_MARKDOWN_SUFFIXES = frozenset({".md", ".markdown"})
_PDF_MAGIC = b"%PDF-"
_PDF_EXTRA_HINT = 'install the PDF extra: pip install "sem-mem[pdf]"'


def read_document(
    source: str | os.PathLike[str] | bytes | bytearray | memoryview | IO[bytes],
    *,
    name: str | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_pages: int = DEFAULT_MAX_PAGES,
    pdf_limits: PdfLimits | None = None,
    cancel: threading.Event | None = None,
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

    ``pdf_limits`` bound what a PDF may expand to and cost (:class:`PdfLimits`; over one:
    LimitExceededError naming it). Setting ``cancel`` stops the extraction within the page
    it is on (once pypdf has parsed the page's content stream, every 512 operators:
    :class:`IngestCancelled`, a DocumentError with ``reason="cancelled"``), e.g. when the
    client that sent the file has gone.
    """
    _check_positive_int("max_bytes", max_bytes)
    _check_positive_int("max_pages", max_pages)
    data, default_name = _read_bytes(source, name=name, max_bytes=max_bytes)
    name = name or default_name
    _check_size(len(data), max_bytes, name)
    sha256 = hashlib.sha256(data).hexdigest()
    suffix = Path(name).suffix.lower()

    if _looks_like_pdf(data, suffix):
        texts = _extract_pdf_pages(
            data,
            name=name,
            max_pages=max_pages,
            limits=pdf_limits or PdfLimits(),
            cancel=cancel,
        )
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


def _extract_pdf_pages(
    data: bytes,
    *,
    name: str,
    max_pages: int,
    limits: PdfLimits,
    cancel: threading.Event | None = None,
) -> list[str]:
    """The raw text layer of each page (``""`` for a page without one), within ``limits``."""
    pypdf = _import_pypdf()
    watch = _Watch(name, limits, cancel)
    # pypdf's own decompression limits (a context variable: this thread only)
    bounded = {
        f"{codec}_maximum_output_length": limits.inflated_bytes
        for codec in ("zlib", "lzw", "run_length", "brotli", "jbig2")
    }
    try:
        with pypdf.apply_configuration(**bounded):
            reader = pypdf.PdfReader(io.BytesIO(data))
            # Many PDFs are "encrypted" only to restrict printing or copying, with an empty
            # user password; pypdf opens those with decrypt("").
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
            watch.total = page_count
            return [watch.page(number, page) for number, page in enumerate(reader.pages, 1)]
    except SemMemError:
        raise
    except pypdf.errors.LimitReachedError as exc:
        raise LimitExceededError(
            f"{name!r} inflates beyond {limits.inflated_bytes:,} bytes "
            f"(max_pdf_inflated_bytes): {exc}",
            limit="max_pdf_inflated_bytes",
            maximum=limits.inflated_bytes,
            actual=limits.inflated_bytes + 1,
        ) from exc
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


class _Watch:
    """Counts one document's inflated bytes and extracted characters, and checks its
    deadline and cancellation, also while pypdf works through a page (its operator
    visitor is called for every content-stream operator)."""

    def __init__(self, name: str, limits: PdfLimits, cancel: threading.Event | None) -> None:
        self.name, self.limits, self.cancel = name, limits, cancel
        self.deadline = time.monotonic() + limits.seconds
        self.inflated = self.chars = self.calls = 0
        self.done = self.total = 0  # pages extracted, of the document's page count

    def page(self, number: int, page: Any) -> str:
        self.check()
        contents = page.get_contents()
        size = len(contents.get_data()) if contents is not None else 0
        self._limit(size, self.limits.page_bytes, "max_pdf_page_bytes", f"page {number}'s content")
        self.inflated += size
        self._limit(self.inflated, self.limits.inflated_bytes, "max_pdf_inflated_bytes", "content")
        text = page.extract_text(visitor_operand_before=self._visit) or ""
        self._limit(
            len(text), self.limits.page_chars, "max_pdf_page_chars", f"page {number}'s text"
        )
        self.chars += len(text)
        self._limit(self.chars, self.limits.chars, "max_pdf_chars", "text")
        self.done = number
        return str(text)

    def _visit(self, *_: Any) -> None:
        self.calls += 1
        if self.calls % 512 == 0:
            self.check()

    def check(self) -> None:
        if self.cancel is not None and self.cancel.is_set():
            raise IngestCancelled(self.name, stage="reading", done=self.done, total=self.total)
        if time.monotonic() > self.deadline:
            seconds = self.limits.seconds
            raise LimitExceededError(
                f"reading {self.name!r} takes longer than {seconds:g} s (max_pdf_seconds)",
                limit="max_pdf_seconds",
                maximum=int(seconds),
                actual=int(seconds) + 1,
            )

    def _limit(self, actual: int, maximum: int, limit: str, what: str) -> None:
        if actual > maximum:
            raise LimitExceededError(
                f"{self.name!r}: {what} is {actual:,} {_unit(limit)} or more; the limit is "
                f"{maximum:,} ({limit})",
                limit=limit,
                maximum=maximum,
                actual=actual,
            )


def _unit(limit: str) -> str:
    return "characters" if "chars" in limit else "bytes"


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


def describe_limits() -> dict[str, Any]:
    """The defaults and limits of ingestion, for the server and CLI to document."""
    return {
        **PdfLimits().describe(),
        "supported_suffixes": list(SUPPORTED_SUFFIXES),
        "max_upload_bytes": DEFAULT_MAX_BYTES,
        "max_pdf_pages": DEFAULT_MAX_PAGES,
        "chunk_chars": DEFAULT_CHUNK_CHARS,
        "overlap_chars": DEFAULT_OVERLAP_CHARS,
        "min_chunk_chars": DEFAULT_MIN_CHUNK_CHARS,
    }
