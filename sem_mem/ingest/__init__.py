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

from .chunking import chunk_document
from .documents import (
    DEFAULT_CHUNK_CHARS,
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_PAGES,
    DEFAULT_MIN_CHUNK_CHARS,
    DEFAULT_OVERLAP_CHARS,
    SUPPORTED_SUFFIXES,
    Chunk,
    Document,
    DocumentError,
    DocumentKind,
    IngestCancelled,
    Page,
)
from .reading import PdfLimits, describe_limits, read_document
from .text import normalize_text, split_sentences

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
    "PdfLimits",
    "chunk_document",
    "describe_limits",
    "normalize_text",
    "read_document",
    "split_sentences",
]
