"""Splitting a :class:`Document` into memory-sized chunks (:class:`Chunk`), with overlap."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sem_mem.errors import ValidationError

from .documents import (
    DEFAULT_CHUNK_CHARS,
    DEFAULT_MIN_CHUNK_CHARS,
    DEFAULT_OVERLAP_CHARS,
    Chunk,
    Document,
    _check_positive_int,
)
from .text import _CLOSERS, _sentence_spans

__all__ = ["chunk_document"]


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
