"""The heuristic verdict: is a message worth remembering, is it a correction, what fact.

:func:`detect_salience` scans the user's message (see :mod:`sem_mem.auto_memory.scanning`)
and returns a :class:`SalienceVerdict`; :func:`is_correction` and
:func:`correction_target` find corrections and the memory they supersede;
:func:`distill_heuristic` distils a fact without a model.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .rewriting import _MAX_FACT_CHARS, _distil_one, _distil_sentences
from .rules import _ACTUALLY, _COMMA_NOT, _FROM_TO, _IM, _INSTEAD_OF, _NO_LONGER, _NOT_BUT
from .scanning import (
    _Hit,
    _is_small_talk,
    _mask_quotes,
    _normalise,
    _scan_sentence,
    _sentences,
    _skip_reason,
)

__all__ = [
    "DEFAULT_MIN_CONFIDENCE",
    "KINDS",
    "SalienceVerdict",
    "correction_target",
    "detect_salience",
    "distill_heuristic",
    "is_correction",
]

#: The kinds a verdict can have. The judge may name others; they are kept as given.
KINDS: tuple[str, ...] = (
    "personal_fact",
    "explicit",
    "decision",
    "correction",
    "preference",
    "none",
)

#: Threshold used by :func:`detect_salience` (``AutoMemory`` applies its own).
DEFAULT_MIN_CONFIDENCE = 0.6


@dataclass(frozen=True)
class SalienceVerdict:
    """What the detector concluded about one exchange.

    ``reason`` is meant for the logs the UI shows ("matched 'remember that'").
    ``ambiguous`` means the heuristics were unsure and a judge should be asked when one
    is available. ``fact`` is the distilled fact when it could be produced without a
    model. ``supersedes_hint`` is, for corrections, a phrase to find the memory being
    corrected by similarity. ``judged`` is true when the verdict came from the judge.
    """

    salient: bool
    kind: str
    confidence: float
    reason: str
    ambiguous: bool = False
    fact: str | None = None
    supersedes_hint: str | None = None
    judged: bool = False


_PRECEDENCE = {"explicit": 0, "correction": 1, "personal_fact": 2, "decision": 3, "preference": 4}


def _cue_list(hits: list[_Hit]) -> str:
    cues: list[str] = []
    for hit in hits:
        cue = re.sub(r"\s+", " ", hit.cue.strip(" ,:;-"))
        if len(cue) > 40:
            cue = cue[:37] + "..."
        text = f"'{cue}' ({hit.kind})"
        if text not in cues:
            cues.append(text)
    return ", ".join(cues[:4])


def detect_salience(user_text: str, assistant_text: str = "") -> SalienceVerdict:
    """Classify an exchange with heuristics only (no API cost).

    Only the user's message is scanned; ``assistant_text`` is accepted for symmetry with
    :meth:`AutoMemory.evaluate` (the judge sees it). Returns a salient verdict with a
    distilled ``fact`` when a cue matched, an ``ambiguous`` one when a vague cue matched
    ("I'm learning Rust", "let's go with that"), and a non-salient one otherwise.
    """
    del assistant_text  # the heuristics look at the user's words only
    text = _normalise(user_text)
    if not text:
        return SalienceVerdict(False, "none", 0.0, "empty message")
    if _is_small_talk(text):
        return SalienceVerdict(False, "none", 0.02, "small talk")

    sentences = _sentences(text)
    hits: list[_Hit] = []
    skipped: list[str] = []
    for index, sentence in enumerate(sentences):
        reason = _skip_reason(sentence)
        if reason:
            skipped.append(reason)
            continue
        hits.extend(_scan_sentence(sentence, index))

    strong = [h for h in hits if not h.ambiguous and h.confidence >= DEFAULT_MIN_CONFIDENCE]
    hint = _hint_from(sentences, hits)
    if strong:
        kind = min(strong, key=lambda h: (_PRECEDENCE.get(h.kind, 9), -h.confidence)).kind
        confidence = max(h.confidence for h in strong)
        fact = _distil_sentences(sentences, strong, kind)
        return SalienceVerdict(
            True, kind, confidence, f"matched {_cue_list(strong)}", False, fact, hint
        )
    vague = [h for h in hits if h.ambiguous]
    if vague:
        best = max(vague, key=lambda h: h.confidence)
        return SalienceVerdict(
            False,
            best.kind,
            best.confidence,
            f"ambiguous: matched {_cue_list(vague)}",
            True,
            None,
            hint,
        )
    if hits:  # only "none" hits such as "I'm tired"
        return SalienceVerdict(False, "none", 0.2, f"passing state: {_cue_list(hits)}")
    if skipped:
        return SalienceVerdict(False, "none", 0.05, f"no memory cue ({', '.join(skipped)})")
    return SalienceVerdict(False, "none", 0.1, "no memory cue")


# --- corrections --------------------------------------------------------------------------


def is_correction(text: str) -> bool:
    """True when the message corrects an earlier fact ("actually, …", "I moved to …")."""
    sentences = _sentences(_normalise(text))
    for index, sentence in enumerate(sentences):
        if _skip_reason(sentence):
            continue
        if any(h.kind == "correction" and not h.ambiguous for h in _scan_sentence(sentence, index)):
            return True
    return False


def correction_target(text: str) -> str | None:
    """A phrase to find the memory a correction supersedes, or ``None``.

    When the old value is spelled out ("not Boston but Chicago", "I no longer work at
    Acme", "moved from Boston to Chicago", "instead of MySQL") that old value is
    returned; otherwise the corrected statement itself ("moved to Chicago"), which is
    close in meaning to the memory it replaces. The core matches it by similarity.
    """
    if not is_correction(text):
        return None
    sentences = _sentences(_normalise(text))
    hits = [
        hit
        for index, sentence in enumerate(sentences)
        if not _skip_reason(sentence)
        for hit in _scan_sentence(sentence, index)
    ]
    return _hint_from(sentences, hits)


def _hint_from(sentences: list[str], hits: list[_Hit]) -> str | None:
    corrections = [h for h in hits if h.kind == "correction"]
    if not corrections:
        return None
    hit = corrections[0]
    sentence = _mask_quotes(sentences[hit.sentence])
    for pattern in (_COMMA_NOT, _NOT_BUT, _FROM_TO, _INSTEAD_OF, _NO_LONGER):
        match = pattern.search(sentence)
        if match:
            return _clean_hint(match.group("old"))
    # the corrected statement: from the cue to the end of its clause, without markers
    tail = sentence[hit.start :]
    tail = _ACTUALLY.sub("", tail)
    tail = re.sub(
        r"^(?:no,?\s+|sorry,?\s+)?(?:i\s+meant\s+|correction\s*:\s*|update\s*:\s*|"
        r"scratch\s+that,?\s*)",
        "",
        tail,
        flags=re.IGNORECASE,
    )
    tail = re.sub(r"^(?:i(?:'ve|\s+have)?\s+|" + _IM + r"\s+)", "", tail, flags=re.IGNORECASE)
    tail = re.split(r"[,;.!?]|\s-\s", tail, maxsplit=1)[0]
    return _clean_hint(tail)


def _clean_hint(text: str) -> str | None:
    text = re.sub(r"\s+", " ", text).strip(" \"'.,;:!?")
    text = re.sub(r"\s+(?:anymore|any\s+more)$", "", text, flags=re.IGNORECASE)
    return text[:80] or None


# --- heuristic distillation ---------------------------------------------------------------


def distill_heuristic(user_text: str, verdict: SalienceVerdict | None = None) -> str | None:
    """Distil a fact from the user's message without a model.

    Uses ``verdict.fact`` when present; otherwise rewrites the message ("I live in
    Boston" → "The user lives in Boston.", "Remember that X" → "X") and falls back to
    ``"User said: …"`` when the rewrite would be unreliable.
    """
    if verdict is not None and verdict.fact:
        return verdict.fact
    text = _normalise(user_text)
    if not text:
        return None
    fresh = detect_salience(text)
    if fresh.fact:
        return fresh.fact
    kind = verdict.kind if verdict is not None else fresh.kind
    fact = " ".join(_distil_one(s, kind) for s in _sentences(text) if not _skip_reason(s))
    return fact[:_MAX_FACT_CHARS] or None
