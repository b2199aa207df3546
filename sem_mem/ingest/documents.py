"""What ingestion produces (:class:`Document`, :class:`Page`, :class:`Chunk`) and its limits.

The defaults and limits shared by :mod:`~sem_mem.ingest.reading` and
:mod:`~sem_mem.ingest.chunking`, and :class:`DocumentError`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from sem_mem.errors import ValidationError

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
    "IngestCancelled",
    "Page",
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


class DocumentError(ValidationError):
    """A document cannot be read: not found, damaged, encrypted, or neither PDF nor text.

    ``file`` is the document's name and ``reason`` one of ``"unreadable"``, ``"corrupt"``,
    ``"encrypted"`` or ``"unsupported"``, so edges can react without parsing the message.
    """

    def __init__(self, message: str, *, file: str, reason: str) -> None:
        super().__init__(message)
        self.file = file
        self.reason = reason


class IngestCancelled(DocumentError):
    """Reading or storing a document stopped because its ``cancel`` event was set
    (``reason="cancelled"``), e.g. the client that sent it disconnected.

    ``stage`` is ``"reading"`` (``done`` of ``total`` pages were extracted) or
    ``"storing"`` (``done`` of ``total`` chunks were embedded and committed, then
    ``removed`` of them were deleted again: a cancelled document leaves nothing behind).
    """

    def __init__(self, file: str, *, stage: str, done: int, total: int, removed: int = 0) -> None:
        unit = "pages" if stage == "reading" else "chunks"
        super().__init__(
            f"{stage} {file!r} was cancelled after {done} of {total} {unit}",
            file=file,
            reason="cancelled",
        )
        self.stage, self.done, self.total, self.removed = stage, done, total, removed

    def __str__(self) -> str:
        removed = f"; the {self.removed} chunks it had stored were removed" if self.removed else ""
        return f"{self.args[0]}{removed}"


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


def _check_positive_int(parameter: str, value: object, *, allow_zero: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(f"{parameter}: expected an integer, got {type(value).__name__}")
    if value < 0 or (value == 0 and not allow_zero):
        raise ValidationError(
            f"{parameter}: must be {'>= 0' if allow_zero else '> 0'}, got {value}"
        )
