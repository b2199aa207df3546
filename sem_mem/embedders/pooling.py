"""A memory's vector from its sentences and its speaker (``Embedder.sentence_pooling``).

A small sentence encoder such as all-MiniLM-L6-v2 was trained on single sentences and
pairs of them. Given a conversation turn of four sentences it returns one blurred
vector that sits close to none of them, and the name in ``"Caroline: ..."`` is one
token among fifty. So a memory is embedded sentence by sentence: its vector is the
mean of its sentences' vectors, and a turn's speaker, embedded on its own, is added
at half weight. In what someone said (a turn, or a text opening with ``"Name: "``) a
fragment of fewer than three words ("Wow!", "Thanks.") is chit-chat and left out; in
any other memory ("Allergic to nuts. Vegan.") it is joined to the sentence after it,
so no word of a terse fact is lost. Queries are embedded whole, as before.

Measured on LoCoMo with ``bench/recall_quality.py --ablation`` (tuning half / checking
half, int8 MiniLM; float32 within 0.01): vector-mode R@10 0.513 / 0.502 -> 0.673 /
0.642, its multi-hop 0.305 / 0.293 -> 0.458 / 0.421; hybrid (the default) 0.806 / 0.775
-> 0.829 / 0.784. Joining a turn's short fragments to the next sentence instead of
leaving them out: vector 0.644 / 0.619, hybrid 0.824 / 0.788 (hence the split rule);
sentences without the speaker vector were worse than the whole turn. Transcripts stored
as ``"Speaker: text"`` strings with ``remember_batch`` (no speaker recorded) keep the
label on every sentence: their vector R@10 0.472 / 0.459 with the label on the first
sentence only, 0.669 / 0.605 with it on each. Storing costs ~10% more embedding time
(more, shorter pieces).

Sentences are found with a regular expression, not a sentence-splitting library: a
wrong split here ("Dr. Smith") only moves one piece of an average, and the pieces are
embedded anyway, so the splitter needs no linguistic precision (and no dependency).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

import numpy as np

__all__ = ["SPEAKER_WEIGHT", "memory_pieces", "pooled_vectors", "speaker_label"]

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
#: "Name: " at the start of a text: up to 40 characters, no colon or line break
_LABEL = re.compile(r"([^\s:][^:\n]{0,39}): (?=\S)")
#: fragments shorter than this (in words) are chit-chat in a turn (left out), part of
#: the next sentence elsewhere
MIN_WORDS = 3
#: at most this many sentences are embedded per memory: the whole-text encoder read
#: ~256 tokens at most, and a long document chunk must not cost a hundred runs
MAX_PIECES = 16
#: the speaker's vector, added to the mean of the sentences (chosen on the tuning half
#: among 0.3 / 0.5 / 0.65 / 0.8: within 0.004 of each other in hybrid mode)
SPEAKER_WEIGHT = 0.5

EncodeFn = Callable[..., np.ndarray]


def speaker_label(text: str) -> str | None:
    """The name a transcript line opens with (``"Caroline: ..."`` -> ``"Caroline"``):
    a label of at most four words before ``": "``; None if the text has none."""
    label = _LABEL.match(text)
    return label[1] if label and len(label[1].split()) <= 4 else None


def memory_pieces(text: str, speaker: str | None = None) -> list[str]:
    """The sentences a memory's vector is averaged over (the whole text if none qualifies).

    A turn stored as ``"Speaker: words"`` is split without its ``"Speaker: "`` prefix:
    the speaker gets a vector of its own. A memory with no recorded speaker that opens
    with a short label (``"Caroline: ..."``, ``"Note: ..."``, as transcripts stored with
    ``remember_batch`` do) keeps that label on every sentence, so it is not diluted.
    """
    prefix = ""
    if speaker and text.startswith(f"{speaker}: "):
        text = text[len(speaker) + 2 :]
    elif not speaker and (label := speaker_label(text)):
        prefix, text = f"{label}: ", text[len(label) + 2 :]
    turn = bool(speaker or prefix)  # someone said it: short fragments are chit-chat
    pieces: list[str] = []
    short = ""  # elsewhere fragments too short to stand alone wait for the next sentence
    for sentence in _SENTENCE_END.split(text):
        sentence = f"{short} {sentence}" if short else sentence
        if len(sentence.split()) < MIN_WORDS:
            short = "" if turn else sentence
            continue
        pieces.append(sentence)
        short = ""
        if len(pieces) == MAX_PIECES:
            break
    if short:  # a short last fragment joins the sentence before it (or is the text)
        if pieces:
            pieces[-1] = f"{pieces[-1]} {short}"
        else:
            pieces.append(short)
    return [prefix + p for p in pieces] or [prefix + text]


def pooled_vectors(
    encode: EncodeFn,
    texts: Sequence[str],
    speakers: Sequence[str | None] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """Unit vectors of ``texts``: each the mean of its sentences' vectors, plus
    ``SPEAKER_WEIGHT`` times its speaker's vector when it has one.

    ``encode(texts, progress=...)`` is the embedder's batched, normalising encoder; all
    pieces of all texts go through one call of it. ``progress(done, total)`` counts texts.
    """
    total = len(texts)
    if speakers is None:
        speakers = [None] * total
    if len(speakers) != total:
        raise ValueError("one speaker (or None) per text is required")
    pieces: list[str] = []
    owner: list[int] = []
    for i, (text, speaker) in enumerate(zip(texts, speakers, strict=True)):
        for piece in memory_pieces(text, speaker):
            pieces.append(piece)
            owner.append(i)
    names = sorted({s for s in speakers if s})
    n_pieces = len(pieces)

    def scaled(done: int, _all: int) -> None:
        if progress is not None:  # the texts before the next piece's owner are complete
            progress(owner[done] if done < n_pieces else total, total)

    vectors = encode(pieces + names, progress=scaled if progress else None)
    out = np.zeros((total, vectors.shape[1]), dtype=np.float32)
    np.add.at(out, np.asarray(owner), vectors[:n_pieces])
    out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
    if names:
        by_name = dict(zip(names, vectors[n_pieces:], strict=True))
        for i, speaker in enumerate(speakers):
            if speaker:
                out[i] += SPEAKER_WEIGHT * by_name[speaker]
        out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
    return out
