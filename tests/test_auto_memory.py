"""Auto-memory: the salience heuristics, their distillation, and the judge path.

The labelled table below is the specification of the heuristics: every row is asserted,
and precision/recall are computed over it plus a set of harder, unasserted cases.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from sem_mem.auto_memory import (
    AutoMemory,
    SalienceVerdict,
    correction_target,
    detect_salience,
    is_correction,
    parse_judge_reply,
)
from sem_mem.errors import LLMError, RateLimitError
from sem_mem.llm.base import ChatMessage, ChatModel, ChatResult
from sem_mem.llm.prompts import DISTILL_PROMPT, SALIENCE_JUDGE_PROMPT

# (utterance, kind) for salient rows; kind None means "must not be saved".
SALIENT: list[tuple[str, str]] = [
    # personal facts
    ("My name is Sam, I'm a cardiology fellow in Boston.", "personal_fact"),
    ("I'm a physician.", "personal_fact"),
    ("Hello, I'm a physician.", "personal_fact"),
    ("I live in Boston.", "personal_fact"),
    ("I work at Google as a data scientist.", "personal_fact"),
    ("My wife is a nurse.", "personal_fact"),
    ("My dog's name is Rex.", "personal_fact"),
    ("I'm allergic to penicillin.", "personal_fact"),
    (
        "Thanks! By the way, I'm allergic to penicillin. Can you suggest a painkiller?",
        "personal_fact",
    ),
    ("I'm vegetarian.", "personal_fact"),
    ("I'm 34 years old.", "personal_fact"),
    ("Hi, I'm Sam.", "personal_fact"),
    ("I have two kids.", "personal_fact"),
    ("I speak French and Spanish.", "personal_fact"),
    ("I live in Boston, any good cafes?", "personal_fact"),
    ("im a nurse", "personal_fact"),
    ("Hey there! I'm David, a physician in Seattle.", "personal_fact"),
    ("I have type 2 diabetes.", "personal_fact"),
    ("My email is sam@example.com.", "personal_fact"),
    # explicit markers
    ("Remember that the patient prefers mornings", "explicit"),
    ("Don't forget the meeting is on Friday.", "explicit"),
    ("Our budget is $5,000. This is important.", "explicit"),
    ("Note that the API key rotates monthly.", "explicit"),
    ("For future reference, the staging server is at 10.0.0.5.", "explicit"),
    ("Can you remember that I'm allergic to nuts?", "explicit"),
    ("Please remember: my locker code is 1234", "explicit"),
    ("Keep in mind that the clinic closes at 5pm on Fridays.", "explicit"),
    # decisions
    ("We decided to use PostgreSQL for the backend.", "decision"),
    ("Let's go with FastAPI for the server.", "decision"),
    ("I'll use Python for this project.", "decision"),
    ("The plan is to launch in March.", "decision"),
    ("we're going with the blue design", "decision"),
    # corrections
    ("Actually, I moved to Chicago last month.", "correction"),
    ("No, I meant the 3pm meeting.", "correction"),
    ("Correction: my daughter is 7, not 6.", "correction"),
    ("I moved to Chicago.", "correction"),
    ("It's Chicago, not Boston.", "correction"),
    ("I no longer work at Google.", "correction"),
    # preferences
    ("I prefer concise answers.", "preference"),
    ("I like dark chocolate.", "preference"),
    ("I hate long meetings.", "preference"),
    ("Always use metric units for me.", "preference"),
    ("Never use emojis in your replies.", "preference"),
    ("From now on, answer in Spanish.", "preference"),
    ("My favorite color is blue.", "preference"),
    ("I want you to always answer briefly.", "preference"),
]

NOT_SALIENT: list[str] = [
    # questions
    "What's my name?",
    "Do I live in Boston?",
    "What is the capital of France?",
    "How do I cook rice?",
    "Do you remember what I told you?",
    "Why is the sky blue?",
    "Could you explain that again?",
    "Can you summarize this article?",
    "Remember when we talked about this?",
    # hypotheticals
    "If I were a doctor, I would prescribe antibiotics.",
    "Imagine I'm a pirate.",
    "Suppose I live in Paris, what would I eat?",
    # small talk and fillers
    "Thanks!",
    "ok",
    "lol",
    "Sounds good.",
    "I love it, thanks!",
    "I like that.",
    "I see.",
    "I think so.",
    "I'm not sure.",
    "I'm fine, thanks.",
    "Hmm, let me think.",
    "I'm sorry, I don't follow.",
    # passing states
    "I'm tired.",
    "I'm a bit tired.",
    "I'm so excited!",
    # task requests
    "write a poem about boston",
    "Tell me about Boston.",
    "Write a story about a doctor who lives in Chicago.",
    "Explain quantum computing like I'm five.",
    "Please translate this into French.",
    "I need help with my essay.",
    "I'd like a poem about Boston.",
    # third parties, quotes, generic talk
    'My friend said "I\'m a doctor".',
    "my friend thinks I'm a doctor",
    "He lives in Boston.",
    "People in Boston love baseball.",
    "She is allergic to peanuts.",
    "The weather is nice today.",
    "My code is throwing an error.",
    "I have a meeting at 3pm.",
]

# Realistic cases the heuristics are not asserted on one by one; they count in the
# precision/recall figures so those numbers are not simply 1.0 by construction.
HARD_CASES: list[tuple[str, bool]] = [
    ("I usually study at night.", True),
    ("I'm learning Rust.", True),
    ("I'm not a morning person.", True),
    ("I think we should use Redis.", True),
    ("We'll store everything in S3 going forward.", True),
    ("Our team uses Kubernetes.", True),
    ("I've got three cats.", True),
    ("I'm in Denver this week for a conference.", False),
    ("My boss is annoying today.", False),
    ("I love this song!", False),
    ("Actually, make it shorter.", False),
    ("I'm working on it.", False),
    ("I'll use it later.", False),
    ("Note: this is just a draft, not final.", False),
    ("I'm a little confused by this answer.", False),
]


@pytest.mark.parametrize(("text", "kind"), SALIENT, ids=[t for t, _ in SALIENT])
def test_salient_utterances_are_detected_with_their_kind(text: str, kind: str) -> None:
    verdict = detect_salience(text)
    assert verdict.salient, verdict
    assert verdict.kind == kind, verdict
    assert verdict.confidence >= 0.6
    assert not verdict.ambiguous
    assert verdict.fact
    assert verdict.reason.startswith("matched '")


@pytest.mark.parametrize("text", NOT_SALIENT)
def test_non_salient_utterances_are_not_saved(text: str) -> None:
    verdict = detect_salience(text)
    assert not verdict.salient, verdict
    assert verdict.confidence < 0.6
    assert verdict.fact is None


def test_table_is_large_enough() -> None:
    assert len(SALIENT) >= 25
    assert len(NOT_SALIENT) >= 25
    assert len(SALIENT) + len(NOT_SALIENT) >= 60


def test_precision_and_recall_over_the_table(capsys: pytest.CaptureFixture[str]) -> None:
    labelled = [(t, True) for t, _ in SALIENT] + [(t, False) for t in NOT_SALIENT] + HARD_CASES
    tp = fp = fn = 0
    for text, expected in labelled:
        predicted = detect_salience(text).salient
        tp += predicted and expected
        fp += predicted and not expected
        fn += expected and not predicted
    precision = tp / (tp + fp)
    recall = tp / (tp + fn)
    with capsys.disabled():
        print(
            f"\nsalience heuristics on {len(labelled)} utterances: "
            f"precision={precision:.3f} recall={recall:.3f} (tp={tp} fp={fp} fn={fn})"
        )
    assert precision >= 0.9
    assert recall >= 0.85


def test_empty_and_whitespace_messages_are_not_salient() -> None:
    assert detect_salience("").salient is False
    assert detect_salience("   \n ").reason == "empty message"


def test_small_talk_says_so_in_the_reason() -> None:
    assert detect_salience("thanks!").reason == "small talk"


def test_vague_first_person_statements_are_ambiguous() -> None:
    for text in ("I'm learning Rust.", "let's go with that", "I'm not a morning person."):
        verdict = detect_salience(text)
        assert verdict.ambiguous and not verdict.salient, verdict
        assert verdict.reason.startswith("ambiguous")


def test_passing_feelings_are_not_ambiguous_so_no_judge_is_paid_for() -> None:
    verdict = detect_salience("I'm tired.")
    assert not verdict.salient and not verdict.ambiguous


def test_assistant_text_alone_never_makes_an_exchange_salient() -> None:
    assert not detect_salience("ok", "Noted: you live in Boston and work at Google.").salient


# --- distillation without a model ---------------------------------------------------------

DISTILLED = [
    ("Remember that the patient prefers mornings", "The patient prefers mornings"),
    (
        "My name is Sam, I'm a cardiology fellow in Boston.",
        "The user's name is Sam; the user is a cardiology fellow in Boston.",
    ),
    ("I live in Boston.", "The user lives in Boston."),
    ("I'm allergic to penicillin.", "The user is allergic to penicillin."),
    ("I no longer work at Google.", "The user no longer works at Google."),
    ("I study medicine at Harvard.", "The user studies medicine at Harvard."),
    ("My wife is a nurse.", "The user's wife is a nurse."),
    ("Please remember: my locker code is 1234", "The user's locker code is 1234"),
    ("Our budget is $5,000. This is important.", "User said: Our budget is $5,000."),
    ("Always use metric units for me.", "User preference: Always use metric units."),
    ("I live in Boston, any good cafes?", "The user lives in Boston."),
    (
        "Thanks! By the way, I'm allergic to penicillin. Can you suggest a painkiller?",
        "The user is allergic to penicillin.",
    ),
    ("Let's go with FastAPI for the server.", "Decision: Let's go with FastAPI for the server."),
    ("It's Chicago, not Boston.", "User correction: It's Chicago, not Boston."),
    ("Remember to call mom tomorrow.", "Reminder for the user: Call mom tomorrow."),
]


@pytest.mark.parametrize(("text", "fact"), DISTILLED, ids=[t for t, _ in DISTILLED])
def test_heuristic_distillation(text: str, fact: str) -> None:
    verdict = detect_salience(text)
    assert verdict.fact == fact
    assert AutoMemory().distill(text, "", verdict) == fact


def test_distilled_facts_never_keep_a_dangling_first_person() -> None:
    for text, _ in SALIENT:
        fact = detect_salience(text).fact or ""
        body = fact.split(": ", 1)[1] if fact.startswith(("User said:", "Decision:")) else fact
        if not fact.startswith(("User said:", "Decision:", "User correction:")):
            assert " I " not in f" {body} ", (text, fact)
            assert " my " not in f" {body.lower()} ", (text, fact)


# --- corrections ---------------------------------------------------------------------------

CORRECTIONS = [
    ("Actually, I moved to Chicago last month.", "moved to Chicago last month"),
    ("I moved to Chicago.", "moved to Chicago"),
    ("I moved from Boston to Chicago.", "Boston"),
    ("It's Chicago, not Boston.", "Boston"),
    ("I no longer work at Google.", "work at Google"),
    ("I don't live in Boston anymore.", "live in Boston"),
    ("My office is not in Boston but in Chicago.", "Boston"),
    ("No, I meant the 3pm meeting.", "the 3pm meeting"),
    ("Correction: the deadline is Friday.", "the deadline is Friday"),
]


@pytest.mark.parametrize(("text", "target"), CORRECTIONS, ids=[t for t, _ in CORRECTIONS])
def test_corrections_are_detected_with_a_target(text: str, target: str) -> None:
    assert is_correction(text)
    assert correction_target(text) == target
    verdict = detect_salience(text)
    assert verdict.salient and verdict.kind == "correction"
    assert verdict.supersedes_hint == target


@pytest.mark.parametrize(
    "text",
    [
        "I live in Boston.",
        "What did I say about Boston?",
        "Actually, that's a great idea.",
        "It's not bad but it could be better.",
        "thanks",
    ],
)
def test_non_corrections(text: str) -> None:
    assert not is_correction(text)
    assert correction_target(text) is None


def test_explicit_correction_keeps_the_hint() -> None:
    verdict = detect_salience("Remember that I moved to Chicago.")
    assert verdict.kind == "explicit"
    assert verdict.supersedes_hint == "moved to Chicago"


# --- the judge -----------------------------------------------------------------------------


class ScriptedChatModel(ChatModel):
    """A real ChatModel that answers from a script (an exception in it is raised)."""

    model = "scripted"

    def __init__(self, script: Sequence[str | Exception]) -> None:
        self.script = list(script)
        self.calls: list[dict[str, object]] = []

    def respond(
        self,
        *,
        instructions: str,
        messages: Sequence[ChatMessage],
        previous_response_id: str | None = None,
        model: str | None = None,
        reasoning_effort: str | None = None,
        temperature: float | None = None,
        web_search: bool = False,
        max_output_tokens: int | None = None,
    ) -> ChatResult:
        self.calls.append(
            {"instructions": instructions, "messages": list(messages), "model": model}
        )
        item = self.script.pop(0)
        if isinstance(item, Exception):
            raise item
        return ChatResult(text=item, response_id=None, model=model or self.model)


AMBIGUOUS = "I'm learning Rust."


def test_judge_is_not_called_for_clear_cases() -> None:
    chat = ScriptedChatModel([])
    auto = AutoMemory(chat)
    assert auto.evaluate("I live in Boston.").salient
    assert not auto.evaluate("What's my name?").salient
    assert chat.calls == []


def test_judge_valid_json_makes_an_ambiguous_case_salient() -> None:
    chat = ScriptedChatModel(
        ['{"salient": true, "kind": "personal_fact", "fact": "The user is learning Rust."}']
    )
    auto = AutoMemory(chat, judge_model="gpt-4.1-mini")
    verdict = auto.evaluate(AMBIGUOUS, "Great, Rust is fun.")
    assert verdict == SalienceVerdict(
        salient=True,
        kind="personal_fact",
        confidence=0.8,
        reason=verdict.reason,
        ambiguous=False,
        fact="The user is learning Rust.",
        supersedes_hint=None,
        judged=True,
    )
    assert verdict.reason.startswith("judge (gpt-4.1-mini): salient personal_fact")
    call = chat.calls[0]
    assert call["instructions"] == SALIENCE_JUDGE_PROMPT
    assert call["model"] == "gpt-4.1-mini"
    prompt = call["messages"][0].content  # type: ignore[index]
    assert AMBIGUOUS in prompt and "Great, Rust is fun." in prompt
    # the judge already distilled the fact: no second call
    assert auto.distill(AMBIGUOUS, "", verdict) == "The user is learning Rust."
    assert len(chat.calls) == 1


def test_judge_json_in_code_fences_with_trailing_text() -> None:
    reply = (
        "Sure, here is my verdict:\n```json\n"
        '{"salient": false, "kind": "none", "fact": ""}\n```\nHope that helps!'
    )
    verdict = AutoMemory(ScriptedChatModel([reply])).evaluate("let's go with that")
    assert verdict.judged and not verdict.salient and verdict.kind == "none"
    assert "not salient" in verdict.reason


def test_judge_confidence_below_threshold_is_not_saved() -> None:
    reply = '{"salient": true, "kind": "preference", "confidence": 0.4, "fact": "x"}'
    verdict = AutoMemory(ScriptedChatModel([reply]), min_confidence=0.6).evaluate(AMBIGUOUS)
    assert not verdict.salient
    assert "below min_confidence" in verdict.reason


def test_judge_garbage_falls_back_to_the_heuristic_verdict() -> None:
    verdict = AutoMemory(ScriptedChatModel(["I think it is salient, probably."])).evaluate(
        AMBIGUOUS
    )
    heuristic = detect_salience(AMBIGUOUS)
    assert (verdict.salient, verdict.kind, verdict.ambiguous) == (False, heuristic.kind, True)
    assert "judge reply unparsable" in verdict.reason


def test_judge_llm_error_falls_back_and_does_not_raise() -> None:
    chat = ScriptedChatModel([RateLimitError("slow down")])
    verdict = AutoMemory(chat).evaluate(AMBIGUOUS)
    assert not verdict.salient and verdict.ambiguous
    assert "judge failed (RateLimitError)" in verdict.reason


def test_without_a_chat_model_ambiguous_cases_are_not_saved() -> None:
    verdict = AutoMemory().evaluate(AMBIGUOUS)
    assert not verdict.salient and verdict.ambiguous


def test_min_confidence_applies_to_heuristic_verdicts() -> None:
    strict = AutoMemory(min_confidence=0.9)
    assert strict.evaluate("Remember that the gate code is 4512.").salient  # explicit: 0.95
    verdict = strict.evaluate("I like dark chocolate.")  # preference: 0.75
    assert not verdict.salient and "below min_confidence 0.9" in verdict.reason
    with pytest.raises(ValueError, match="min_confidence"):
        AutoMemory(min_confidence=1.5)


def test_judge_correction_gets_a_supersedes_hint() -> None:
    reply = '{"salient": true, "kind": "correction", "fact": "The user lives in Chicago."}'
    verdict = AutoMemory(ScriptedChatModel([reply])).evaluate("Actually, Chicago now.")
    assert verdict.salient and verdict.kind == "correction"
    assert verdict.supersedes_hint


# --- distillation with a model ------------------------------------------------------------


def test_llm_distillation_is_used_and_cleaned() -> None:
    chat = ScriptedChatModel(['Fact: "The user is a cardiology fellow in Boston."'])
    auto = AutoMemory(chat, judge_model=None)
    text = "I'm a cardiology fellow in Boston."
    fact = auto.distill(text, "Nice to meet you!", detect_salience(text))
    assert fact == "The user is a cardiology fellow in Boston."
    assert chat.calls[0]["instructions"] == DISTILL_PROMPT
    assert chat.calls[0]["model"] is None


def test_llm_distillation_none_means_nothing_to_store() -> None:
    text = "I like dark chocolate."
    auto = AutoMemory(ScriptedChatModel(["NONE"]))
    assert auto.distill(text, "", detect_salience(text)) is None


def test_llm_distillation_none_keeps_an_explicit_request() -> None:
    text = "Remember that the patient prefers mornings"
    auto = AutoMemory(ScriptedChatModel(["NONE"]))
    assert auto.distill(text, "", detect_salience(text)) == "The patient prefers mornings"


def test_llm_distillation_error_falls_back_to_heuristics() -> None:
    text = "I live in Boston."
    auto = AutoMemory(ScriptedChatModel([LLMError("down")]))
    assert auto.distill(text, "", detect_salience(text)) == "The user lives in Boston."


# --- the judge reply parser ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "salient"),
    [
        ('{"salient": true, "kind": "explicit", "fact": "A"}', True),
        ('```\n{"salient": false}\n```', False),
        ('Verdict: {"salient": "true", "kind": "decision"} -- done', True),
        ('{"note": "not this one"} then {"salient": false, "kind": "none"}', False),
    ],
)
def test_parse_judge_reply_accepts(reply: str, salient: bool) -> None:
    parsed = parse_judge_reply(reply)
    assert parsed is not None and parsed["salient"] is salient


@pytest.mark.parametrize(
    "reply", ["", "yes", '{"salient": "maybe"}', "[true]", '{"salient": true', "{not json}"]
)
def test_parse_judge_reply_rejects(reply: str) -> None:
    assert parse_judge_reply(reply) is None
