"""Memories embedded sentence by sentence plus their speaker (embedders/pooling.py).

Every path that makes a memory's vector must make the same one: a turn stored by
``remember_conversation``, edited by ``update``, re-embedded by ``reembed`` or
imported without its vector must not lose its speaker, or recall drifts with the path
the memory took. The quality effect itself is measured by bench/recall_quality.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from embedders import HashingEmbedder, PooledHashingEmbedder

from sem_mem import SemanticMemory
from sem_mem.embedders.pooling import MAX_PIECES, memory_pieces, pooled_vectors

TURNS = [
    {"speaker": "Caroline", "text": "I went to a support group yesterday. It was moving! Wow."},
    {"speaker": "Melanie", "text": "That sounds great. I painted a lake sunrise last week."},
    {"speaker": "Caroline", "text": "Lovely. I am researching adoption agencies now."},
]


def _vectors(memory: SemanticMemory, ids: list[str]) -> np.ndarray:
    found = memory.backend.get_many(memory.namespace, ids)
    return np.stack([found[i].embedding for i in ids])


def _expected(embedder: PooledHashingEmbedder, memory: SemanticMemory, ids: list[str]):
    found = memory.backend.get_many(memory.namespace, ids)
    texts = [found[i].memory.text for i in ids]
    speakers = [found[i].memory.speaker for i in ids]
    return embedder.embed_memories(texts, speakers)


def test_a_turn_is_the_mean_of_its_sentences_plus_its_speaker(tmp_path: Path) -> None:
    embedder = PooledHashingEmbedder()
    memory = SemanticMemory(tmp_path, embedder=embedder)
    ids = memory.remember_conversation(TURNS, thread_id="t")
    stored = _vectors(memory, ids)
    # the stored text is "Caroline: I went to ...", split without its speaker label
    said = memory_pieces(f"Caroline: {TURNS[0]['text']}", "Caroline")
    assert said == ["I went to a support group yesterday.", "It was moving!"]  # "Wow." is noise
    pieces = embedder.encode([*said, "Caroline"])
    mean = pieces[:2].mean(axis=0)
    mean /= np.linalg.norm(mean)
    expected = mean + 0.5 * pieces[2]
    np.testing.assert_allclose(stored[0], expected / np.linalg.norm(expected), atol=1e-6)
    # with the speaker, Caroline's turns sit nearer a query naming her than without
    plain = HashingEmbedder().encode([f"Caroline: {TURNS[0]['text']}"])[0]
    query = embedder.embed("Caroline")
    assert stored[0] @ query > plain @ query
    memory.close()


def test_update_and_reembed_keep_the_speaker(tmp_path: Path) -> None:
    embedder = PooledHashingEmbedder()
    memory = SemanticMemory(tmp_path, embedder=embedder)
    ids = memory.remember_conversation(TURNS, thread_id="t")
    memory.update(ids[2], text="Caroline: I chose an agency. We meet them in June.")
    np.testing.assert_allclose(_vectors(memory, ids), _expected(embedder, memory, ids), atol=1e-6)
    other = PooledHashingEmbedder(32)
    memory.reembed(other)
    np.testing.assert_allclose(_vectors(memory, ids), _expected(other, memory, ids), atol=1e-6)
    memory.close()


def test_import_without_vectors_embeds_turns_with_their_speaker(tmp_path: Path) -> None:
    embedder = PooledHashingEmbedder()
    source = SemanticMemory(tmp_path / "a", embedder=embedder)
    ids = source.remember_conversation(TURNS, thread_id="t")
    lines = list(source.export_jsonl(include_embeddings=False))
    expected = _vectors(source, ids)
    source.close()
    target = SemanticMemory(tmp_path / "b", embedder=embedder)
    report = target.import_jsonl(lines)
    assert report.reembedded == len(TURNS), report
    np.testing.assert_allclose(_vectors(target, ids), expected, atol=1e-6)
    assert all(json.loads(line).get("speaker") for line in lines if '"thread_id"' in line)
    target.close()


def test_a_long_memory_costs_at_most_max_pieces_runs_of_the_encoder(tmp_path: Path) -> None:
    embedder = PooledHashingEmbedder()
    memory = SemanticMemory(tmp_path, embedder=embedder)
    book = " ".join(f"Sentence number {i} says something." for i in range(500))
    memory.remember(book)
    assert embedder.texts_embedded == MAX_PIECES
    assert memory.recall("Sentence number 3", limit=1)[0].text == book
    memory.close()


def test_no_word_of_a_terse_fact_is_lost(tmp_path: Path) -> None:
    """Outside a conversation a one-word sentence is part of the memory's meaning: it is
    joined to its neighbour, never dropped as chit-chat."""
    assert memory_pieces("Allergic to nuts. Vegan.") == ["Allergic to nuts. Vegan."]
    assert memory_pieces("Vegan. Allergic to nuts.") == ["Vegan. Allergic to nuts."]
    embedder = PooledHashingEmbedder()
    memory = SemanticMemory(tmp_path, embedder=embedder)
    memory.remember("Allergic to nuts. Vegan.")
    memory.remember("Allergic to shellfish and to penicillin.")
    assert memory.recall("vegan", limit=1, mode="vector")[0].text == "Allergic to nuts. Vegan."
    # in a conversation turn the same short fragment is chit-chat and left out
    assert memory_pieces("Wow. I went to a support group.", "Caroline") == [
        "I went to a support group."
    ]
    memory.close()


def test_plain_memories_keep_a_leading_label_on_every_sentence() -> None:
    assert memory_pieces("Caroline: I went to a group. It was great! Wow.") == [
        "Caroline: I went to a group.",
        "Caroline: It was great!",
    ]
    # no label: a time, a URL and a one-word text stay as they are
    assert memory_pieces("Meet at 10:30 with the team. Bring the slides.") == [
        "Meet at 10:30 with the team.",
        "Bring the slides.",
    ]
    assert memory_pieces("see https://example.org: now") == ["see https://example.org: now"]
    assert memory_pieces("Hi") == ["Hi"]


def test_progress_counts_texts_and_ends_at_the_total() -> None:
    embedder = PooledHashingEmbedder()
    embedder.batch_size = 2
    seen: list[tuple[int, int]] = []
    texts = [t["text"] for t in TURNS] * 3
    pooled_vectors(embedder.encode, texts, ["A"] * len(texts), lambda d, t: seen.append((d, t)))
    done = [d for d, _ in seen]
    assert done == sorted(done) and done[-1] == len(texts)
    assert {t for _, t in seen} == {len(texts)}
    # a text counts as done only once every one of its sentences is embedded
    owner = [i for i, text in enumerate(texts) for _ in memory_pieces(text, "A")]
    complete = [owner[n] if n < len(owner) else len(texts) for n in range(2, len(owner) + 2, 2)]
    assert done[: len(complete)] == complete


def test_one_speaker_per_text_is_required() -> None:
    with pytest.raises(ValueError, match="one speaker"):
        pooled_vectors(PooledHashingEmbedder().encode, ["a b c"], ["A", "B"])
