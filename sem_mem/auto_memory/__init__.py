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

from .judge import AutoMemory, parse_judge_reply
from .salience import (
    DEFAULT_MIN_CONFIDENCE as DEFAULT_MIN_CONFIDENCE,
)
from .salience import (
    KINDS,
    SalienceVerdict,
    correction_target,
    detect_salience,
    distill_heuristic,
    is_correction,
)
from .scanning import MAX_SCAN_CHARS as MAX_SCAN_CHARS

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
