"""The data bench/speed.py runs on: LoCoMo vectors, noisy copies, ground truth.

Real MiniLM vectors of LoCoMo conversation turns (embedded once by the local embedder and
cached in ``bench/results/.cache``); each memory is a copy of a randomly chosen turn plus
Gaussian noise, re-normalised; queries are other noisy copies. Any corpus size is a prefix
of every larger one, so all systems and sizes see identical data.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from bench._common import RESULTS_DIR
from sem_mem.embedders.base import Embedder

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_LOCOMO = ROOT.parent / "shared/data/locomo/locomo_dev5.json"
CACHE_DIR = RESULTS_DIR / ".cache"
DIM = 384
K = 10
BLOCK = 10_000  # vectors are generated (and remembered) in blocks of this many


def load_locomo(path: Path) -> tuple[list[str], list[str]]:
    """Unique LoCoMo turns ("Speaker: text") and unique questions, in file order."""
    turns: list[str] = []
    questions: list[str] = []
    for sample in json.loads(path.read_text(encoding="utf-8")):
        for key, session in sample["conversation"].items():
            if key.startswith("session_") and isinstance(session, list):
                turns += [f"{t['speaker']}: {t['text']}" for t in session]
        questions += [qa["question"] for qa in sample["qa"]]
    return list(dict.fromkeys(turns)), list(dict.fromkeys(questions))


def base_vectors(turns: list[str], local: Embedder) -> np.ndarray:
    """Embeddings of the turns, cached by content and model so re-runs never re-embed."""
    key = hashlib.sha256(("\n".join(turns) + local.model_id).encode()).hexdigest()[:16]
    path = CACHE_DIR / f"locomo-turns-{key}.npy"
    if path.exists():
        return np.load(path)
    print(f"embedding {len(turns)} LoCoMo turns once (cached in {path})", flush=True)
    vectors = local.encode(turns).astype(np.float32)
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    np.save(path, vectors)
    return vectors


class VectorSet:
    """Noisy copies of base vectors; block ``b`` depends only on (seed, b), so any size is
    a prefix of every larger size and all systems see identical data."""

    def __init__(self, base: np.ndarray, noise: float, seed: int) -> None:
        self.base, self.noise, self.seed = base, noise, seed

    def _copies(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        which = rng.integers(0, len(self.base), size=n)
        out = self.base[which] + rng.standard_normal((n, self.base.shape[1]), np.float32) * (
            self.noise
        )
        out /= np.linalg.norm(out, axis=1, keepdims=True)
        return out.astype(np.float32), which

    def corpus(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """(vectors, index of the base turn of each) for the first ``n`` memories."""
        parts, bases = [], []
        for b in range(0, n, BLOCK):
            vecs, which = self._copies(np.random.default_rng([self.seed, b // BLOCK]), BLOCK)
            parts.append(vecs[: n - b])
            bases.append(which[: n - b])
        return np.concatenate(parts), np.concatenate(bases)

    def queries(self, q: int) -> tuple[np.ndarray, np.ndarray]:
        return self._copies(np.random.default_rng([self.seed, 10**9]), q)


def exact_top_k(corpus: np.ndarray, queries: np.ndarray, k: int = K) -> np.ndarray:
    """Ground truth: the exact top-k rows by cosine similarity (all vectors are unit length)."""
    out = np.empty((len(queries), k), dtype=np.int64)
    for s in range(0, len(queries), 32):
        sims = queries[s : s + 32] @ corpus.T
        top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(sims, top, 1), axis=1, kind="stable")
        out[s : s + 32] = np.take_along_axis(top, order, 1)
    return out


def recall_at_k(found: Sequence[Sequence[int]], truth: np.ndarray) -> float:
    hits = sum(len(set(f[:K]) & set(t.tolist())) for f, t in zip(found, truth, strict=True))
    return hits / (len(found) * K)


def memory_text(i: int, bases: np.ndarray, turns: list[str] | None) -> str:
    """Synthetic ("memory m12") or realistic (the base turn's text + " m12") memory text."""
    return f"memory m{i}" if turns is None else f"{turns[bases[i]]} m{i}"


def query_text(j: int, bases: np.ndarray, turns: list[str] | None) -> str:
    return f"query q{j}" if turns is None else f"{turns[bases[j]]} q{j}"


def text_index(text: str) -> tuple[str, int]:
    """("m", 12) for a memory text, ("q", 3) for a query text."""
    tag = text.rsplit(" ", 1)[-1]
    return tag[0], int(tag[1:])


class FreeEmbedder(Embedder):
    """Precomputed vectors behind the Embedder interface: embedding costs nothing.

    It claims the local embedder's ``model_id`` (the vectors are MiniLM vectors), so a store
    built with it can be reopened with the real ``LocalEmbedder`` for end-to-end recall.
    """

    batch_size = 100_000

    def __init__(self, model_id: str, memories: np.ndarray, queries: np.ndarray) -> None:
        self.model_id, self.dimensions = model_id, DIM
        self._rows = {"m": memories, "q": queries}

    def embed_batch(self, texts: Sequence[str]) -> np.ndarray:
        picks = [text_index(t) for t in texts]
        return np.stack([self._rows[kind][i] for kind, i in picks])


class Int8Queries(Embedder):
    """Queries embedded by the int8 graph, posing as the float32 model the store holds.

    For latency only: a real int8 store holds int8 vectors (another embedding space);
    search cost is the same either way, and this reuses the float32-built store.
    """

    def __init__(self, local: Embedder, int8: Embedder) -> None:
        self.model_id, self.dimensions = local.model_id, local.dimensions
        self._int8 = int8

    def embed_batch(self, texts: Sequence[str]) -> np.ndarray:
        return self._int8.embed_batch(texts)


def data_diagnostics(
    corpus: np.ndarray,
    bases: np.ndarray,
    queries: np.ndarray,
    q_bases: np.ndarray,
    truth: np.ndarray,
) -> dict[str, float]:
    """How realistic the neighbourhoods are: similarities of the true top-1/top-10/11th and
    the share of a query's top-10 that are copies of the same turn."""
    sims = np.einsum("qkd,qd->qk", corpus[truth], queries)
    extra = exact_top_k(corpus, queries[:64], K + 1)[:, K]
    sim11 = np.einsum("qd,qd->q", corpus[extra], queries[:64])
    return {
        "top1_cos": float(sims[:, 0].mean()),
        "top10_cos": float(sims[:, -1].mean()),
        "gap_10_11": float((sims[:64, -1] - sim11).mean()),
        "sibling_share": float((bases[truth] == q_bases[:, None]).mean()),
    }
