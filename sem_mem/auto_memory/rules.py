"""The salience rules: the cue table, the vocabulary it uses, and the word lists.

Data for :mod:`sem_mem.auto_memory.scanning`. The rule table is compiled on first use
(:func:`_rules`), not at import.
"""

from __future__ import annotations

import functools
import re

__all__: list[str] = []


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
