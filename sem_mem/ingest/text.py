"""Normalising extracted text and splitting it into sentences."""

from __future__ import annotations

import re

__all__ = ["normalize_text", "split_sentences"]

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
