"""The LLM judge: :class:`AutoMemory` asks a small chat model about ambiguous exchanges.

Heuristics first (:func:`~sem_mem.auto_memory.salience.detect_salience`); the judge's JSON
reply is read by :func:`parse_judge_reply`. Any model failure falls back to the heuristic
verdict or distillation; nothing here raises to the caller.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from typing import Any

from ..errors import LLMError
from ..llm.base import ChatModel
from ..llm.prompts import DISTILL_PROMPT, SALIENCE_JUDGE_PROMPT, format_exchange
from .rewriting import _MAX_FACT_CHARS
from .salience import (
    DEFAULT_MIN_CONFIDENCE,
    SalienceVerdict,
    correction_target,
    detect_salience,
    distill_heuristic,
)

__all__ = ["AutoMemory", "parse_judge_reply"]

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
