"""Auto-memory: decide whether a chat exchange holds something worth keeping, and distil it.

Two stages, as in the seed:

1. :func:`detect_salience` — cheap regular-expression rules over the user's message,
   no API cost. They recognise personal facts ("I live in Boston"), explicit markers
   ("remember that …"), decisions ("let's go with Postgres"), corrections ("actually,
   I moved to Chicago") and preferences ("I prefer short answers"), and refuse
   questions, hypotheticals, small talk, task requests and talk about third parties.
   Cues only count at the start of a clause, so "write a poem about how I live in
   Boston" or "my friend said I'm a doctor" do not trigger.
2. :class:`AutoMemory` — runs the heuristics and, for the cases they flag as
   ambiguous, asks a small chat model (the *judge*) for a JSON verdict. Any model
   failure falls back to the heuristic verdict; nothing here raises to the caller.

This module stores nothing. The core calls :meth:`AutoMemory.evaluate`, then
:meth:`AutoMemory.distill` for salient verdicts, de-duplicates and stores the fact, and
for corrections looks up the memory being superseded by vector similarity to
:attr:`SalienceVerdict.supersedes_hint` (see :func:`is_correction`,
:func:`correction_target`).

``confidence`` is the estimated probability that the exchange holds something worth
remembering: heuristic matches score 0.65–0.95, ambiguous cues 0.3–0.55, non-salient
messages 0.0–0.2. A verdict is salient when its confidence reaches ``min_confidence``.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass, replace
from typing import Any

from .errors import LLMError
from .llm.base import ChatModel
from .llm.prompts import DISTILL_PROMPT, SALIENCE_JUDGE_PROMPT, format_exchange

__all__ = [
    "KINDS",
    "AutoMemory",
    "SalienceVerdict",
    "correction_target",
    "detect_salience",
    "distill_heuristic",
    "is_correction",
    "parse_judge_reply",
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
_MAX_FACT_CHARS = 1000
#: Only the start of a long message is scanned (a pasted document is not a personal fact).
MAX_SCAN_CHARS = 4000


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


# --- building blocks ----------------------------------------------------------------------

# A cue must start a clause: the sentence start, after punctuation, or after a conjunction,
# optionally after discourse fillers ("oh, by the way, ...").
_CLAUSE_START = r"(?:^|[,;:(—–]\s*|\s-\s+|\b(?:and|but|so|because|since|though|although|plus)\s+)"
_LEAD = (
    r"(?:(?:oh|well|also|btw|by the way|just so you know|for context|anyway|ok|okay|"
    r"hi|hey|hello|ps|p\.s\.|and|but|so|now|today|honestly|basically)\s*[,:!]?\s+)*"
)
_IM = r"i(?:'?m|\s+am)"

# Words the rules below refer to as %NAME%.
_VOCABULARY = {
    "IM": _IM,
    "NOT_PRONOUN": r"(?!(?:it|that|this|them|those|these|one|you|him|her)\b)",
    "FAMILY": (
        r"(?:wife|husband|partner|spouse|sons?|daughters?|kids?|children|child|baby|mom|mum|"
        r"mother|dad|father|parents|brothers?|sisters?|siblings?|girlfriend|boyfriend|"
        r"fianc[eé]e?|dogs?|cats?|puppy|kitten|pets?|grandma|grandmother|grandpa|grandfather|"
        r"family|twins)"
    ),
    "FAMILY_VERB": (
        r"(?:is|are|was|has|have|name|named|called|works|lives|likes|loves|hates|just|turned|"
        r"goes|studies|and)"
    ),
    "CONDITION": (
        r"(?:diabetes|asthma|adhd|epilepsy|celiac|coeliac|migraines?|hypertension|"
        r"high\s+blood\s+pressure|arthritis|eczema|psoriasis|crohn's|a\s+pacemaker|"
        r"an?\s+\w+\s+allergy|\w+\s+allergies|allergies|an?\s+\w+\s+intolerance)"
    ),
    "STATE": (
        r"(?:diabetic|vegetarian|vegan|pescatarian|celiac|coeliac|pregnant|epileptic|asthmatic|"
        r"colou?r-?blind|deaf|blind|dyslexic|autistic|left-handed|right-handed|retired|married|"
        r"divorced|widowed|engaged|sober|gluten-free|kosher|halal|lactose\s+intolerant|"
        r"gluten\s+intolerant|self-employed|unemployed|bilingual|trilingual)"
    ),
}

# One rule per entry: kind, confidence, regex. Indented lines continue the regex. A rule
# only matches at the start of a clause (see _CLAUSE_START); a final \w is a look-ahead.
_RULE_TABLE = r"""
explicit 0.95 (?:please\s+)?(?:do\s+)?(?:remember|memori[sz]e)\b
    (?!\s+(?:when|how|what|why|who|where|if|me)\b)(?:\s+(?:that|this))?
explicit 0.95 (?:please\s+)?(?:don't|do\s+not|never)\s+forget\b(?:\s+that)?
explicit 0.9 (?:can|could|would|will)\s+you\s+(?:please\s+)?(?:remember|note|keep\s+in\s+mind)
    (?:\s+that)?
explicit 0.9 (?:this|that|it)(?:'s|\s+is)\s+(?:really\s+|very\s+|super\s+)?important\b
explicit 0.9 important\s*:
explicit 0.9 (?:please\s+)?(?:take\s+)?note(?:\s+that|\s*:)
explicit 0.9 (?:please\s+)?(?:keep|bear)\s+in\s+mind\b(?:\s+that)?
explicit 0.9 for\s+(?:future|later)\s+reference\b
explicit 0.85 for\s+the\s+record\b
explicit 0.9 (?:please\s+)?make\s+a\s+note\b(?:\s+(?:that|of))?
explicit 0.8 (?:fyi|note\s+to\s+self)\b

correction 0.85 no,?\s+i\s+meant\b
correction 0.75 (?:sorry,?\s+)?i\s+meant\b
correction 0.85 (?:correction|update)\s*:
correction 0.8 scratch\s+that\b
correction 0.75 (?:that's|that\s+is|this\s+is)\s+(?:wrong|incorrect|not\s+(?:right|correct|true))\b
correction 0.85 i(?:'ve|\s+have)?\s+(?:just\s+|recently\s+|since\s+)?moved\s+
    (?:to|from|out|back|away)\b
correction 0.85 i\s+(?:no\s+longer|don't\s+\w+(?:\s+\w+){0,5}\s+anymore)\b
correction 0.85 %IM%\s+(?:no\s+longer|not\s+\w+(?:\s+\w+){0,4}\s+anymore)\b
correction 0.75 i\s+(?:now|currently)\s+(?:live|work|reside)\b
correction 0.75 %IM%\s+now\s+(?:a|an|based|living|working|at|in|with)\b
correction 0.8 i(?:'ve|\s+have)?\s+(?:changed|switched)\s+(?:jobs|careers|teams|my|to|from|over)\b
correction 0.75 i(?:'ve|\s+have)?\s+(?:just\s+|recently\s+)?(?:left|quit)\s+\w
correction 0.7 (?:it's|it\s+is|that's|that\s+is|i\s+said|i\s+meant)\s+[^,.;]{1,40},\s*not\s+\w

personal_fact 0.95 my\s+(?:first\s+|last\s+|full\s+)?name(?:'s|\s+is)\s+\w
personal_fact 0.9 (?:please\s+)?call\s+me\s+\w
personal_fact 0.9 (?:i\s+go\s+by|%IM%\s+called)\s+\w
personal_fact 0.85 i\s+(?:currently\s+|now\s+|still\s+)?(?:live|reside|stay)\s+
    (?:in|at|near|on|outside|by)\b
personal_fact 0.85 %IM%\s+(?:currently\s+|now\s+)?(?:based|located|living|staying)\s+
    (?:in|at|near|out)\b
personal_fact 0.85 (?:%IM%|i\s+come)\s+(?:originally\s+)?from\b
personal_fact 0.8 i\s+grew\s+up\b
personal_fact 0.85 my\s+(?:home\s?town|home\s+address|address|city)\s+is\b
personal_fact 0.85 i\s+(?:currently\s+|now\s+|still\s+)?work\s+(?:at|for|as|in|on|with|from)\b
personal_fact 0.85 %IM%\s+(?:currently\s+)?(?:working|employed)\s+(?:at|for|as)\b
personal_fact 0.85 %IM%\s+(?:a|an|the)\s+
    (?!(?:bit|little|lot|tad|mess|fan|big\s+fan|huge\s+fan)\b)\w
personal_fact 0.8 i(?:'ve|\s+have)\s+been\s+(?:a|an)\s+\w
personal_fact 0.85 my\s+(?:job|role|title|position|profession|specialty|speciality|field|major|
    degree|employer|company|department|manager|boss)\s+(?:is|are|was)\b
personal_fact 0.8 i\s+(?:study|studied|teach|taught|majored|specialize|specialise|graduated|
    trained)\b
personal_fact 0.8 %IM%\s+(?:studying|majoring|training\s+(?:as|to\s+be))\b
personal_fact 0.8 my\s+%FAMILY%(?:'s\s+name|'s\s|\s+%FAMILY_VERB%\b)
personal_fact 0.8 i\s+have\s+(?:a|an|one|two|three|four|five|six|\d+)\s+(?:\w+\s+)?%FAMILY%\b
personal_fact 0.9 %IM%\s+allergic\s+to\b
personal_fact 0.85 i\s+have\s+(?:type\s+[12]\s+)?%CONDITION%\b
personal_fact 0.85 %IM%\s+%STATE%\b
personal_fact 0.8 i\s+(?:can't|cannot|don't|do\s+not|never)\s+(?:eat|drink)\b
personal_fact 0.85 %IM%\s+\d{1,3}(?:\s+years?\s+old|\s*yo|\s*y/o)?(?![\w.%:])
personal_fact 0.85 %IM%\s+turning\s+\d{1,3}\b
personal_fact 0.85 i\s+was\s+born\b
personal_fact 0.85 my\s+(?:birthday|age|email|e-mail|phone(?:\s+number)?|pronouns|time\s?zone|
    username|handle|github|website|native\s+language|first\s+language)\s+(?:is|are)\b
personal_fact 0.75 i\s+(?:speak|(?:can\s+)?read)\s+(?!to\b|with\b|about\b|up\b)\w
personal_fact 0.75 i\s+(?:own|drive|ride)\s+(?:a|an|the|two|three|\d+)\b
personal_fact 0.7 i\s+(?:usually\s+|often\s+|regularly\s+)?(?:run|swim|cycle|volunteer|commute|
    play\s+(?:the\s+)?\w+)\b

decision 0.85 (?:we|i)(?:'ve|\s+have)?\s+(?:finally\s+|just\s+)?(?:decided|agreed|settled\s+on|
    concluded)\b
decision 0.8 (?:we|i)(?:'ve|\s+have)?\s+(?:finally\s+|just\s+)?(?:chose|chosen|picked|opted)\b
decision 0.8 let's\s+(?:go\s+with|use|stick\s+with|pick|choose|adopt|switch\s+to)\s+%NOT_PRONOUN%
    (?!the\s+(?:first|second|third|last|former|latter|other)\b)(?!option\s+\w\b)\w
decision 0.8 (?:i|we)(?:'ll|\s+will|'re\s+going\s+to|\s+are\s+going\s+to|'m\s+going\s+to|
    \s+am\s+going\s+to)\s+(?:go\s+with|use|stick\s+with|pick|choose|adopt|switch\s+to)\s+
    %NOT_PRONOUN%\w
decision 0.8 (?:we're|we\s+are|%IM%)\s+going\s+with\s+%NOT_PRONOUN%\w
decision 0.8 (?:the|our|my)\s+(?:plan|decision|choice|conclusion)\s+(?:is|was)\b
decision 0.8 (?:the\s+)?final\s+(?:decision|answer|choice)\s*(?:is|:)
decision 0.85 decision\s*:

preference 0.85 from\s+now\s+on\b
preference 0.85 i\s+want\s+you\s+to\s+(?:always|never)\b
preference 0.8 (?:please\s+)?(?:always|never)\s+(?!mind\b)(?!forget\b)\w
preference 0.75 i\s+(?:really\s+|much\s+|strongly\s+|generally\s+|usually\s+|definitely\s+|
    also\s+|do\s+|still\s+)?(?:prefer|like|love|enjoy|adore|hate|dislike|detest|loathe|
    can't\s+stand|cannot\s+stand|don't\s+like|do\s+not\s+like|don't\s+want|do\s+not\s+want|
    favou?r)\s+%NOT_PRONOUN%(?!(?:your|the\s+(?:first|second|third|last|idea|answer|response|
    way\s+you)|how\s+you)\b)\w
preference 0.75 i(?:'d|\s+would)\s+(?:much\s+)?(?:rather|prefer)\b
preference 0.8 my\s+(?:favou?rite|preferred)\s+\w
preference 0.75 %IM%\s+(?:not\s+)?(?:a\s+)?(?:big\s+|huge\s+)?fan\s+of\b
preference 0.75 (?:in\s+the\s+future|going\s+forward|next\s+time),?\s+(?:please\s+)?\w
preference 0.75 i\s+want\s+(?:all\s+)?(?:my\s+|the\s+|your\s+)?(?:answers|responses|replies|code|
    output|explanations)\b
preference 0.65 (?:i|we)\s+(?:mostly\s+|mainly\s+|usually\s+)?(?:use|code\s+in|write\s+in|
    work\s+in)\s+%NOT_PRONOUN%(?!(?:a|an|the|some|any|your)\b)\w
"""


@functools.cache
def _rules() -> tuple[tuple[re.Pattern[str], str, float], ...]:
    """:data:`_RULE_TABLE` compiled into ``(pattern, kind, confidence)`` (on first use)."""
    table = _RULE_TABLE
    entries: list[list[str]] = []
    for line in table.splitlines():
        if not line.strip():
            continue
        if line[0].isspace():
            entries[-1][2] += line.strip()
        else:
            kind, confidence, regex = line.split(maxsplit=2)
            entries.append([kind, confidence, regex])
    rules = []
    for kind, confidence, regex in entries:
        for name, value in _VOCABULARY.items():
            regex = regex.replace(f"%{name}%", value)
        if regex.endswith(r"\w"):  # peek at the next word without making it part of the cue
            regex = regex[:-2] + r"(?=\w)"
        pattern = re.compile(_CLAUSE_START + _LEAD + r"(?P<cue>" + regex + r")", re.IGNORECASE)
        rules.append((pattern, kind, float(confidence)))
    return tuple(rules)


# --- cues that make a sentence not count, or only weakly ----------------------------------

_INTERROGATIVE = re.compile(
    r"^(?:what|what's|whats|where|where's|who|who's|whom|whose|when|why|how|how's|which)\b",
    re.IGNORECASE,
)
_AUXILIARY = re.compile(
    r"^(?:do|does|did|is|are|am|was|were|can|could|would|will|should|shall|may|might|have|has|"
    r"had|isn't|aren't|don't|doesn't|didn't|won't|wouldn't|can't|couldn't|shouldn't|any|"
    r"anything|remember|right)\b",
    re.IGNORECASE,
)
_HYPOTHETICAL = re.compile(
    r"^(?:what\s+if|if\s+i\s+(?:were|was|had|could|became|become|lived|worked|did|got|went|'d|"
    r"would)|suppose|supposing|imagine|assume|assuming|pretend|hypothetically|let's\s+say|"
    r"say\s+i|in\s+a\s+world|when\s+i\s+was|back\s+when)\b"
    r"|\bif\s+i\s+(?:were|was|had|could|became|lived|worked)\b|\bi\s+were\b"
    r"|\bi(?:'d|\s+would)\s+be\b|\bas\s+if\b",
    re.IGNORECASE,
)
_POLITE_REQUEST = re.compile(
    r"^(?:can|could|would|will)\s+you\s+(?:please\s+)?(?:remember|note|keep\s+in\s+mind)\b"
    r"(?!\s+(?:when|how|what|why|who|where|if)\b)",
    re.IGNORECASE,
)
_LEAD_AT_START = re.compile(r"^" + _LEAD, re.IGNORECASE)
_ACTUALLY = re.compile(r"^(?:oh,?\s+|well,?\s+)?actually\b[\s,:-]*", re.IGNORECASE)
_FIRST_PERSON = re.compile(r"\b(?:i|i'm|im|i've|i'll|i'd|my|me|mine)\b", re.IGNORECASE)
_NOT_BUT = re.compile(
    r"\bnot\s+(?:in\s+|at\s+|a\s+|an\s+|the\s+)?(?P<old>[^,.;]{1,40}?),?\s+but\s+(?:rather\s+)?"
    r"(?P<new>[^,.;]{1,40})",
    re.IGNORECASE,
)
_COMMA_NOT = re.compile(
    r"\b(?:it's|it\s+is|that's|that\s+is|i\s+said|i\s+meant)\s+(?P<new>[^,.;]{1,40}),\s*not\s+"
    r"(?P<old>[^,.;!?]{1,40})",
    re.IGNORECASE,
)
_NOT_CONTRASTIVE = re.compile(
    r"(?:it|i|we|you|he|she|they|this|that|there|still|also|just|maybe|perhaps)\b", re.IGNORECASE
)
_INSTEAD_OF = re.compile(r"\binstead\s+of\s+(?P<old>[^,.;!?]{1,40})", re.IGNORECASE)
_NO_LONGER = re.compile(
    r"\b(?:no\s+longer|not|don't|do\s+not)\s+(?P<old>[^,.;!?]{1,60}?)\s*(?:\banymore\b|[,.;!?]|$)",
    re.IGNORECASE,
)
_FROM_TO = re.compile(
    r"\b(?:moved|switched|changed|went)\s+(?:\w+\s+)?from\s+(?P<old>[^,.;!?]{1,40}?)\s+to\b",
    re.IGNORECASE,
)

_I_AM_WORD = re.compile(
    _CLAUSE_START
    + _LEAD
    + r"(?P<cue>"
    + _IM
    + r"\s+(?P<neg>not\s+)?(?:(?:a\s+)?(?:bit|little|tad|so|very|really|super|kinda|pretty|"
    r"quite|too|just|feeling)\s+)*(?P<word>[\w'-]+))",
    re.IGNORECASE,
)
_MY_THING = re.compile(
    _CLAUSE_START + _LEAD + r"(?P<cue>my\s+(?P<noun>\w+)(?:\s+\w+)?\s+(?:is|are|was|has|have)\b)",
    re.IGNORECASE,
)
_LETS_CONTEXT = re.compile(
    _CLAUSE_START + _LEAD + r"(?P<cue>(?:let's|we(?:'ll|\s+will)|i(?:'ll|\s+will))\s+"
    r"(?:go\s+with|use|do|stick\s+with|go\s+for|pick|choose)\s+"
    r"(?:it|that|this|them|those|these|the\s+(?:first|second|third|last|former|latter|other)"
    r"(?:\s+one)?|option\s+\w+))\b",
    re.IGNORECASE,
)
_SHOULD = re.compile(
    _CLAUSE_START
    + _LEAD
    + r"(?P<cue>(?:i\s+think\s+)?we\s+should\s+(?:use|go\s+with|switch\s+to))",
    re.IGNORECASE,
)


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


_SMALL_TALK_WORDS = _words(
    """
    thanks thank you thx ty tysm ok okay k kk cool nice great awesome perfect lol lmao rofl
    haha hahaha hehe yes yeah yep yup no nope nah sure got it gotcha sounds good makes sense
    hi hello hey bye goodbye morning night evening afternoon fine wow hmm hm oh ah i see
    alright np problem welcome you're cheers right exactly indeed agreed agree interesting
    will do done same so much a lot again very that's that this is all for now the help
    helpful amazing love bro man think guess not maybe probably i'm im well correct true
    totally absolutely just kidding joking wonderful brilliant excellent super neat lovely
    too please
    """
)
_FILLER_STATES = _words(
    """
    fine ok okay good great well alright sorry sure unsure glad back here done ready curious
    kidding joking in out listening thinking wondering confused lost stuck with all set
    trying looking asking going getting just still also really so very not afraid happy
    pleased interested aware confident certain positive serious wrong right correct
    impressed
    """
)
_TRANSIENT_STATES = _words(
    """
    tired exhausted hungry thirsty bored stressed sick ill sleepy anxious nervous excited
    sad upset angry mad frustrated worried cold hot late early busy free annoyed overwhelmed
    hungover grumpy cranky restless
    """
)
_NAME_STOPWORDS = _words(
    """
    Sorry Not So Just Fine Good Ok Okay Here Back Done Ready Glad Sure Still Also Really
    Very Currently Now Going Trying Looking Working Learning A An The In At From On Afraid
    """
)
_MUNDANE_NOUNS = _words(
    """
    code script function program app computer laptop phone internet wifi question answer
    screen test tests build query file files error output input prompt problem issue point
    request bad mistake guess understanding
    """
)


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


# --- the judge ----------------------------------------------------------------------------

_CODE_FENCE = re.compile(r"```(?:json|JSON)?\s*(.*?)```", re.DOTALL)


def parse_judge_reply(text: str) -> dict[str, Any] | None:
    """Read the judge's JSON verdict, tolerating code fences and text around it.

    Returns a dict with ``salient`` (bool), ``kind`` (str), ``fact`` (str or None) and
    ``confidence`` (float or None), or ``None`` when the reply is unusable.
    """
    candidates = [m.group(1) for m in _CODE_FENCE.finditer(text)] + [text]
    decoder = json.JSONDecoder()
    for candidate in candidates:
        for start in [m.start() for m in re.finditer(r"\{", candidate)][:10]:
            try:
                value, _ = decoder.raw_decode(candidate, start)
            except ValueError:
                continue
            parsed = _validate_judge(value)
            if parsed is not None:
                return parsed
    return None


def _validate_judge(value: object) -> dict[str, Any] | None:
    if not isinstance(value, dict):
        return None
    salient = value.get("salient")
    if isinstance(salient, str) and salient.strip().lower() in {"true", "false"}:
        salient = salient.strip().lower() == "true"
    if not isinstance(salient, bool):
        return None
    kind = value.get("kind")
    kind = kind.strip().lower() if isinstance(kind, str) and kind.strip() else None
    fact = value.get("fact")
    fact = fact.strip() if isinstance(fact, str) and fact.strip() else None
    confidence = value.get("confidence")
    if isinstance(confidence, bool) or not isinstance(confidence, int | float):
        confidence = None
    else:
        confidence = min(1.0, max(0.0, float(confidence)))
    return {"salient": salient, "kind": kind, "fact": fact, "confidence": confidence}


def _clean_model_fact(text: str) -> str | None:
    text = text.strip()
    fenced = _CODE_FENCE.search(text)
    if fenced:
        text = fenced.group(1).strip()
    text = re.sub(r"^(?:fact|memory)\s*:\s*", "", text, flags=re.IGNORECASE).strip()
    text = text.strip("\"'“”` \n")
    if not text or text.upper().rstrip(".") == "NONE":
        return None
    return re.sub(r"\s+", " ", text)[:_MAX_FACT_CHARS]


class AutoMemory:
    """Heuristics first, a small chat model (the judge) for the ambiguous cases.

    ``chat_model`` is optional: without one, ambiguous exchanges are not saved and
    distillation is heuristic. ``judge_model`` names the model for the judge and the
    distiller (``None``: the chat model's default). A verdict is salient only when its
    confidence reaches ``min_confidence``.
    """

    def __init__(
        self,
        chat_model: ChatModel | None = None,
        *,
        judge_model: str | None = "gpt-4.1-mini",
        min_confidence: float = DEFAULT_MIN_CONFIDENCE,
    ) -> None:
        if not 0.0 <= min_confidence <= 1.0:
            raise ValueError(f"min_confidence must be between 0 and 1, got {min_confidence}")
        self.chat_model = chat_model
        self.judge_model = judge_model
        self.min_confidence = min_confidence

    def evaluate(self, user_text: str, assistant_text: str = "") -> SalienceVerdict:
        """Classify an exchange; asks the judge only for ambiguous heuristic verdicts."""
        verdict = detect_salience(user_text, assistant_text)
        if verdict.ambiguous and self.chat_model is not None:
            return self._judge(user_text, assistant_text, verdict)
        if verdict.salient and verdict.confidence < self.min_confidence:
            return replace(
                verdict,
                salient=False,
                reason=f"{verdict.reason}; below min_confidence {self.min_confidence:g}",
            )
        return verdict

    def _judge(
        self, user_text: str, assistant_text: str, heuristic: SalienceVerdict
    ) -> SalienceVerdict:
        assert self.chat_model is not None
        try:
            reply = self.chat_model.complete(
                format_exchange(user_text, assistant_text),
                instructions=SALIENCE_JUDGE_PROMPT,
                model=self.judge_model,
            )
        except LLMError as exc:
            return replace(
                heuristic,
                reason=f"{heuristic.reason}; judge failed ({type(exc).__name__}), "
                "kept the heuristic verdict",
            )
        parsed = parse_judge_reply(reply)
        if parsed is None:
            return replace(
                heuristic,
                reason=f"{heuristic.reason}; judge reply unparsable, kept the heuristic verdict",
            )
        confidence = parsed["confidence"]
        if confidence is None:
            confidence = 0.8 if parsed["salient"] else 0.1
        salient = parsed["salient"] and confidence >= self.min_confidence
        kind = parsed["kind"] or heuristic.kind
        if not parsed["salient"]:
            kind = "none"
        hint = heuristic.supersedes_hint
        if kind == "correction" and hint is None:
            hint = correction_target(user_text) or parsed["fact"]
        who = self.judge_model or "the chat model"
        reason = f"judge ({who}): {'salient' if parsed['salient'] else 'not salient'} {kind}"
        if parsed["salient"] and not salient:
            reason += f", below min_confidence {self.min_confidence:g}"
        return SalienceVerdict(
            salient=salient,
            kind=kind,
            confidence=confidence,
            reason=f"{reason}; heuristics: {heuristic.reason}",
            ambiguous=False,
            fact=parsed["fact"] if parsed["salient"] else None,
            supersedes_hint=hint,
            judged=True,
        )

    def distill(self, user_text: str, assistant_text: str, verdict: SalienceVerdict) -> str | None:
        """A short standalone fact for a salient verdict, or ``None``.

        Without a chat model: ``verdict.fact`` or heuristic rewriting. With one: the fact
        the judge already wrote when there is one, else the model is asked (heuristic
        fallback when it fails; ``None`` when it answers NONE, unless the user explicitly
        asked to remember).
        """
        if self.chat_model is None:
            return distill_heuristic(user_text, verdict)
        if verdict.judged and verdict.fact:
            return verdict.fact
        try:
            reply = self.chat_model.complete(
                format_exchange(user_text, assistant_text),
                instructions=DISTILL_PROMPT,
                model=self.judge_model,
            )
        except LLMError:
            return distill_heuristic(user_text, verdict)
        fact = _clean_model_fact(reply)
        if fact is None and verdict.kind == "explicit":
            return distill_heuristic(user_text, verdict)
        return fact
