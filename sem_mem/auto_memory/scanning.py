"""Splitting a user's message into sentences and finding the memory cues in each.

A cue found is a :class:`_Hit`; :mod:`sem_mem.auto_memory.salience` turns hits into a
verdict. Questions and hypotheticals carry no cue (:func:`_skip_reason`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .rules import (
    _ACTUALLY,
    _AUXILIARY,
    _FILLER_STATES,
    _FIRST_PERSON,
    _HYPOTHETICAL,
    _I_AM_WORD,
    _INTERROGATIVE,
    _LEAD_AT_START,
    _LETS_CONTEXT,
    _MUNDANE_NOUNS,
    _MY_THING,
    _NAME_STOPWORDS,
    _NOT_BUT,
    _NOT_CONTRASTIVE,
    _POLITE_REQUEST,
    _SHOULD,
    _SMALL_TALK_WORDS,
    _TRANSIENT_STATES,
    _rules,
)

__all__ = ["MAX_SCAN_CHARS"]

#: Only the start of a long message is scanned (a pasted document is not a personal fact).
MAX_SCAN_CHARS = 4000


@dataclass(frozen=True)
class _Hit:
    kind: str
    confidence: float
    cue: str
    sentence: int
    start: int
    end: int
    ambiguous: bool = False


def _normalise(text: str) -> str:
    text = text[:MAX_SCAN_CHARS]
    text = text.replace("’", "'").replace("‘", "'").replace("“", '"').replace("”", '"')
    return re.sub(r"[ \t]+", " ", text).strip()


_QUOTED = re.compile(r"\"[^\"\n]*\"|(?<![\w'])'[^\n]+?'(?![\w'])")


def _mask_quotes(sentence: str) -> str:
    """Blank out quoted speech (same length), so quoted first-person text is not the user's."""
    return _QUOTED.sub(lambda m: " " * len(m.group(0)), sentence)


def _sentences(text: str) -> list[str]:
    parts = re.split(r"(?<=[.!?])\s+(?=\S)|\n+", text)
    return [part.strip() for part in parts if part and part.strip()]


def _is_small_talk(text: str) -> bool:
    words = re.findall(r"[a-z']+", text.lower())
    return len(words) <= 8 and all(word in _SMALL_TALK_WORDS for word in words)


def _skip_reason(sentence: str) -> str | None:
    """Why a sentence cannot carry a memory cue at all: a question or a hypothetical."""
    body = _LEAD_AT_START.sub("", sentence).strip()
    if _POLITE_REQUEST.match(body):  # "Can you remember that ...?" asks to store
        return None
    if _INTERROGATIVE.match(body) or (sentence.rstrip().endswith("?") and _AUXILIARY.match(body)):
        return "question"
    if _HYPOTHETICAL.search(body):
        return "hypothetical"
    return None


def _rule_hits(text: str, index: int, offset: int = 0) -> list[_Hit]:
    hits = [
        _Hit(
            kind, confidence, m.group("cue"), index, offset + m.start("cue"), offset + m.end("cue")
        )
        for pattern, kind, confidence in _rules()
        for m in pattern.finditer(text)
    ]
    for hit in [h for h in hits if h.kind == "explicit"]:
        # "Remember that I moved to Chicago": what follows the marker is a clause of its own
        rest = text[hit.end - offset :]
        lead = len(rest) - len(rest.lstrip(" ,:;-"))
        hits += [h for h in _rule_hits(rest[lead:], index, hit.end + lead) if h.kind != "explicit"]
    return hits


def _scan_sentence(sentence: str, index: int) -> list[_Hit]:
    masked = _mask_quotes(sentence)
    hits = _rule_hits(masked, index)
    # "not X but Y": a correction when it is about the user or about "it"
    not_but = _NOT_BUT.search(masked)
    if not_but and _NOT_CONTRASTIVE.match(not_but.group("new")):
        not_but = None  # "not bad but it could be better" contrasts, it does not correct
    if not_but and not any(h.kind == "correction" for h in hits):
        about_user = _FIRST_PERSON.search(masked) or re.search(
            r"\b(?:it's|it\s+is|that's|that\s+is)\b", masked, re.IGNORECASE
        )
        hits.append(
            _Hit(
                "correction",
                0.65 if about_user else 0.45,
                not_but.group(0),
                index,
                not_but.start(),
                not_but.end(),
                ambiguous=not about_user,
            )
        )
    actually = _ACTUALLY.match(masked)
    if actually:
        rest = masked[actually.end() :]
        if hits:
            hits.append(
                _Hit(
                    "correction",
                    max(h.confidence for h in hits),
                    "actually",
                    index,
                    0,
                    actually.end(),
                )
            )
        elif rest and _FIRST_PERSON.match(rest) and not rest.rstrip().endswith("?"):
            hits.append(_Hit("correction", 0.7, "actually", index, 0, len(masked)))
        elif rest:
            hits.append(_Hit("correction", 0.5, "actually", index, 0, len(masked), ambiguous=True))
    if not hits:
        hits.extend(_weak_hits(masked, index))
    return hits


def _weak_hits(masked: str, index: int) -> list[_Hit]:
    """Cues too vague for the heuristics alone: ambiguous (ask the judge) or explicitly none."""
    hits: list[_Hit] = []
    for match in _I_AM_WORD.finditer(masked):
        word = match.group("word")
        lower = word.lower()
        if match.group("neg"):
            if lower not in _FILLER_STATES and lower not in _TRANSIENT_STATES:
                hits.append(
                    _Hit(
                        "personal_fact",
                        0.45,
                        match.group("cue"),
                        index,
                        match.start("cue"),
                        match.end("cue"),
                        ambiguous=True,
                    )
                )
        elif lower in _FILLER_STATES:
            continue
        elif lower in _TRANSIENT_STATES:
            hits.append(
                _Hit("none", 0.2, match.group("cue"), index, match.start("cue"), match.end("cue"))
            )
        elif word[:1].isupper() and word not in _NAME_STOPWORDS:
            hits.append(
                _Hit(
                    "personal_fact",
                    0.8,
                    match.group("cue"),
                    index,
                    match.start("cue"),
                    match.end("cue"),
                )
            )
        else:
            hits.append(
                _Hit(
                    "personal_fact",
                    0.4 if lower.endswith("ing") else 0.45,
                    match.group("cue"),
                    index,
                    match.start("cue"),
                    match.end("cue"),
                    ambiguous=True,
                )
            )
    for match in _MY_THING.finditer(masked):
        if match.group("noun").lower() not in _MUNDANE_NOUNS:
            hits.append(
                _Hit(
                    "personal_fact",
                    0.5,
                    match.group("cue"),
                    index,
                    match.start("cue"),
                    match.end("cue"),
                    ambiguous=True,
                )
            )
    for pattern in (_LETS_CONTEXT, _SHOULD):
        for match in pattern.finditer(masked):
            hits.append(
                _Hit(
                    "decision",
                    0.5,
                    match.group("cue"),
                    index,
                    match.start("cue"),
                    match.end("cue"),
                    ambiguous=True,
                )
            )
    return hits
