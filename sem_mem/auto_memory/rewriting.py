"""Rewriting the user's sentences as standalone facts, without a model.

"I live in Boston" becomes "The user lives in Boston.", "Remember that X" becomes "X";
when a rewrite would be unreliable the sentence is kept behind a label ("User said: …").
"""

from __future__ import annotations

import re

from .rules import _words
from .scanning import _Hit, _skip_reason

__all__: list[str] = []

_MAX_FACT_CHARS = 1000

_EXPLICIT_MARKER = re.compile(
    r"(?:^|(?<=[,;:—–-])|(?<=\s))(?:(?:can|could|would|will)\s+you\s+)?(?:please\s+)?(?:do\s+)?(?:"
    r"(?:remember|memori[sz]e)(?:\s+(?:that|this))?"
    r"|(?:don't|do\s+not|never)\s+forget(?:\s+that)?"
    r"|(?:this|that|it)(?:'s|\s+is)\s+(?:really\s+|very\s+|super\s+)?important"
    r"|important|(?:take\s+)?note(?:\s+that)?|(?:keep|bear)\s+in\s+mind(?:\s+that)?"
    r"|for\s+(?:future|later)\s+reference|for\s+the\s+record|make\s+a\s+note(?:\s+(?:that|of))?"
    r"|fyi|note\s+to\s+self)\b\s*[:,!.-]*\s*",
    re.IGNORECASE,
)
_MARKER_PREFIX = re.compile(
    r"^(?:(?:oh|well|also|btw|by\s+the\s+way|just\s+so\s+you\s+know|for\s+context|anyway|ok|"
    r"okay|hi|hey|hello|ps|p\.s\.|and|but|so|honestly|basically|actually|no|sorry|thanks|"
    r"thank\s+you|great|cool|correction|update|scratch\s+that|to\s+clarify|please)\b\s*[,:!.-]*\s*)+",
    re.IGNORECASE,
)
_ADVERBS = _words(
    """
    really also usually often always never still now currently just recently only mostly
    generally strongly definitely sometimes rarely actually already
    """
)
_NO_CONJUGATION = _words(
    """
    can could will would should shall must may might was had did grew left got went quit
    took became came began won lost met bought sold ran swam taught chose made spent saw
    said told wrote drove thought knew found felt kept built sent meant
    """
)
_IRREGULAR = {"have": "has", "do": "does", "go": "goes", "am": "is", "be": "is"}


def _third_person_verb(verb: str) -> str:
    lower = verb.lower()
    if lower in _NO_CONJUGATION or lower.endswith("ed") or not lower.isalpha():
        return verb
    if lower in _IRREGULAR:
        return _IRREGULAR[lower]
    if lower.endswith(("s", "sh", "ch", "x", "z", "o")):
        return verb + "es"
    if len(lower) > 1 and lower.endswith("y") and lower[-2] not in "aeiou":
        return verb[:-1] + "ies"
    return verb + "s"


def _conjugate_after_i(match: re.Match[str]) -> str:
    adverbs = re.sub(r"\s+", " ", match.group("adv") or "").lower()
    return f"the user {adverbs}{_third_person_verb(match.group('verb'))}"


_REWRITES: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern, re.IGNORECASE), replacement)
    for pattern, replacement in (
        (r"\bmy\s+name(?:'s|\s+is)\b", "the user's name is"),
        (r"\b(?:please\s+)?call\s+me\b", "the user goes by"),
        (r"\bi\s+go\s+by\b", "the user goes by"),
        (r"\bi(?:'m|\s+am)\b", "the user is"),
        (r"\bim\b(?=\s+[a-z])", "the user is"),
        (r"\bi\s+was\b", "the user was"),
        (r"\bi(?:'ve|\s+have)\b", "the user has"),
        (r"\bi(?:'ll|\s+will)\b", "the user will"),
        (r"\bi'd\b", "the user would"),
        (r"\bi\s+would\b", "the user would"),
        (r"\bi\s+don't\b", "the user doesn't"),
        (r"\bi\s+do\s+not\b", "the user does not"),
        (r"\bi\s+didn't\b", "the user didn't"),
        (r"\bi\s+(?:can't|cannot)\b", "the user cannot"),
        (r"\bi\s+won't\b", "the user won't"),
    )
)
_I_VERB = re.compile(
    r"\bi\s+(?P<adv>(?:(?:no\s+longer|" + "|".join(sorted(_ADVERBS)) + r")\s+)*)(?P<verb>[a-z]+)\b",
    re.IGNORECASE,
)
_PRONOUNS: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern, re.IGNORECASE), replacement)
    for pattern, replacement in (
        (r"\bmy\b", "the user's"),
        (r"\bmine\b", "the user's"),
        (r"\bmyself\b", "the user"),
        (r"\bme\b", "the user"),
        (r"\byourself\b", "the assistant"),
        (r"\byours\b", "the assistant's"),
        (r"\byour\b", "the assistant's"),
        (r"\byou\b", "the assistant"),
    )
)
_LEFTOVER_FIRST_PERSON = re.compile(r"\b(?:i|we|us|our|ours|let's|let\s+us)\b", re.IGNORECASE)
_IMPERATIVE_PREFERENCE = re.compile(
    r"^(?:from\s+now\s+on|in\s+the\s+future|going\s+forward|next\s+time|always|never)\b",
    re.IGNORECASE,
)


def _capitalise(text: str) -> str:
    return text[:1].upper() + text[1:] if text else text


def _rewrite_first_person(sentence: str) -> str | None:
    """Rewrite a first-person sentence about the user in the third person, or ``None``."""
    text = sentence
    for pattern, replacement in _REWRITES:
        text = pattern.sub(replacement, text)
    text = _I_VERB.sub(_conjugate_after_i, text)
    for pattern, replacement in _PRONOUNS:
        text = pattern.sub(replacement, text)
    if _LEFTOVER_FIRST_PERSON.search(text):
        return None
    text = re.sub(r",\s+the user\b", "; the user", text)
    return _capitalise(text)


def _strip_markers(sentence: str) -> str:
    text = _MARKER_PREFIX.sub("", sentence)
    text = _EXPLICIT_MARKER.sub(" ", text)
    text = re.sub(r"\s+", " ", text)
    text = re.sub(r"\s+([,.;:!?])", r"\1", text)
    return _MARKER_PREFIX.sub("", text.strip(" ,;:-—–")).strip()


def _has_content(text: str) -> bool:
    return len(re.findall(r"[A-Za-z0-9]+", text)) >= 2


_REMINDER = re.compile(
    r"^(?:please\s+)?(?:remember|don't\s+forget|do\s+not\s+forget)\s+to\s+(?P<task>.+)$",
    re.IGNORECASE,
)


def _distil_one(sentence: str, kind: str) -> str:
    reminder = _REMINDER.match(_MARKER_PREFIX.sub("", sentence).strip())
    if kind == "explicit" and reminder:
        task = reminder.group("task")
        return f"Reminder for the user: {_rewrite_first_person(task) or task}"
    body = _strip_markers(sentence) if kind == "explicit" else _MARKER_PREFIX.sub("", sentence)
    body = body.strip()
    if body.endswith("?"):  # "I live in Boston, any cafe tips?": keep the statement
        body = re.split(r",\s*(?=[^,]*\?$)", body)[0].rstrip(" ,?") + "."
    if _IMPERATIVE_PREFERENCE.match(body):
        body = re.sub(r",?\s+for\s+me\b", "", body, flags=re.IGNORECASE)
        return f"User preference: {_rewrite_first_person(body) or _capitalise(body)}"
    rewritten = None if re.search(r"\bi\s+meant\b", body, re.IGNORECASE) else body
    rewritten = rewritten and _rewrite_first_person(rewritten)
    if rewritten and (kind != "correction" or "the user" in rewritten.lower()):
        return rewritten
    label = {"decision": "Decision", "correction": "User correction"}.get(kind, "User said")
    return f"{label}: {_capitalise(body)}"


def _distil_sentences(sentences: list[str], hits: list[_Hit], kind: str) -> str | None:
    indexes = sorted({h.sentence for h in hits})
    parts: list[str] = []
    for index in indexes:
        sentence = sentences[index]
        sentence_kind = (
            "explicit" if any(h.kind == "explicit" for h in hits if h.sentence == index) else kind
        )
        if sentence_kind == "explicit" and not _has_content(_strip_markers(sentence)):
            # "... This is important." — the content is in the other sentences
            others = [s for i, s in enumerate(sentences) if i != index and not _skip_reason(s)]
            parts.extend(_distil_one(s, "explicit") for s in others if _has_content(s))
            continue
        parts.append(_distil_one(sentence, sentence_kind))
    unique = list(dict.fromkeys(p for p in parts if _has_content(p)))
    fact = " ".join(unique).strip()
    return fact[:_MAX_FACT_CHARS] or None
