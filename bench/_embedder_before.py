"""The local embedder as it was before issue 17 (main f74d3a3), kept for the benchmark only.

``bench/embedder_speed.py`` measures the new embedder against this one in the same run:
the unfused graph of ``onnx_bert`` builder version 2 (152 kernels after onnxruntime's
own optimisation; int8 through ``onnxruntime.quantization.quantize_dynamic``) and the
old run loop (the base class cuts the input into 64-text chunks; each chunk is sorted by
token count and run in groups of 16; one session with ``threads`` intra-op threads
serves every caller). Its float32 vectors equal sentence-transformers' within 2e-7.

Copied verbatim from ``sem_mem/embedders/onnx_bert.py`` and ``local.py`` at that
commit, so the package itself carries no second builder.
"""

from __future__ import annotations

import logging
import math
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from sem_mem.embedders.base import Embedder
from sem_mem.embedders.local import LocalEmbedder
from sem_mem.embedders.onnx_bert import BertConfig, load_bert_weights, save_atomic
from sem_mem.errors import ConfigurationError

if TYPE_CHECKING:
    from onnx import ModelProto, NodeProto, TensorProto

__all__ = ["BeforeEmbedder"]

OPSET = 17
_MASK_FILL = -10000.0
_RUN_ROWS = 16


def _node(op_type: str, inputs: list[str], outputs: list[str], **attrs: Any) -> NodeProto:
    from onnx import helper

    return helper.make_node(op_type, inputs, outputs, **attrs)


class _GraphBuilder:
    """Accumulates nodes and initializers; each helper returns its output's name."""

    def __init__(self, weights: Mapping[str, np.ndarray]) -> None:
        self.weights = weights
        self.nodes: list[NodeProto] = []
        self.initializers: list[TensorProto] = []
        self._const_names: set[str] = set()
        self._shapes: dict[tuple[int, ...], str] = {}
        self._count = 0

    def weight(self, name: str) -> np.ndarray:
        try:
            return self.weights[name]
        except KeyError as exc:
            raise ConfigurationError(f"model.safetensors has no tensor {name!r}") from exc

    def const(self, name: str, value: np.ndarray) -> str:
        """Add an initializer once; later calls with the same name reuse it."""
        from onnx import numpy_helper

        if name in self._const_names:
            return name
        self._const_names.add(name)
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def op(self, op_type: str, *inputs: str, **attrs: Any) -> str:
        self._count += 1
        out = f"{op_type.lower()}_{self._count}"
        self.nodes.append(_node(op_type, list(inputs), [out], **attrs))
        return out

    def linear(self, x: str, prefix: str) -> str:
        """``x @ W.T + b`` on 2-D ``[tokens, features]`` input, as one Gemm kernel."""
        w = self.const(f"{prefix}.weight", self.weight(f"{prefix}.weight"))
        b = self.const(f"{prefix}.bias", self.weight(f"{prefix}.bias"))
        return self.op("Gemm", x, w, b, transB=1)

    def shape_with(self, *tail: int) -> str:
        """The shape ``[batch, seq, *tail]`` as a tensor, for Reshape."""
        if tail not in self._shapes:
            tail_name = self.const(f"shape_tail_{len(self._shapes)}", np.array(tail, np.int64))
            batch_seq = self.op("Shape", "input_ids")
            self._shapes[tail] = self.op("Concat", batch_seq, tail_name, axis=0)
        return self._shapes[tail]

    def layer_norm(self, x: str, prefix: str, eps: float) -> str:
        scale = self.const(f"{prefix}.weight", self.weight(f"{prefix}.weight"))
        bias = self.const(f"{prefix}.bias", self.weight(f"{prefix}.bias"))
        return self.op("LayerNormalization", x, scale, bias, axis=-1, epsilon=eps)

    def gelu(self, x: str) -> str:
        # Exact (erf) GELU as in BERT; onnxruntime fuses this pattern into one Gelu kernel.
        half = self.const("gelu_half", np.array(0.5, np.float32))
        one = self.const("gelu_one", np.array(1.0, np.float32))
        root2 = self.const("gelu_root2", np.array(math.sqrt(2.0), np.float32))
        erf = self.op("Erf", self.op("Div", x, root2))
        return self.op("Mul", self.op("Mul", x, self.op("Add", erf, one)), half)


def _embeddings(g: _GraphBuilder, cfg: BertConfig) -> str:
    """Word + position + token-type(0) embeddings, then LayerNorm."""
    words = g.const("word_embeddings", g.weight("embeddings.word_embeddings.weight"))
    positions = g.weight("embeddings.position_embeddings.weight")[: cfg.max_positions]
    segment0 = g.weight("embeddings.token_type_embeddings.weight")[0]
    table = g.const("position_plus_segment0", positions + segment0)
    seq_len = g.op(
        "Slice",
        g.op("Shape", "input_ids"),
        g.const("one_i64", np.array([1], np.int64)),
        g.const("two_i64", np.array([2], np.int64)),
    )
    pos = g.op("Slice", table, g.const("zero_i64", np.array([0], np.int64)), seq_len)
    summed = g.op("Add", g.op("Gather", words, "input_ids", axis=0), pos)
    # The encoder works on [batch * seq, hidden] so every projection is one plain Gemm.
    flat_shape = g.const("flat_shape", np.array([-1, cfg.hidden_size], np.int64))
    flat = g.op("Reshape", summed, flat_shape)
    return g.layer_norm(flat, "embeddings.LayerNorm", cfg.layer_norm_eps)


def _mask_bias(g: _GraphBuilder) -> str:
    """[batch, 1, 1, seq] additive bias: 0 where attended, -10000 at padding."""
    mask = g.op("Cast", "attention_mask", to=1)  # 1 = FLOAT
    one = g.const("mask_one", np.array(1.0, np.float32))
    fill = g.const("mask_fill", np.array(_MASK_FILL, np.float32))
    bias = g.op("Mul", g.op("Sub", one, mask), fill)
    return g.op("Unsqueeze", bias, g.const("mask_axes", np.array([1, 2], np.int64)))


def _attention(g: _GraphBuilder, x: str, mask_bias: str, prefix: str, cfg: BertConfig) -> str:
    """Multi-head self-attention: returns the projected context, before the residual."""
    split = g.shape_with(cfg.num_heads, cfg.head_size)
    merge = g.const("flat_shape", np.array([-1, cfg.hidden_size], np.int64))

    def heads(name: str, perm: list[int]) -> str:
        projected = g.linear(x, f"{prefix}.self.{name}")
        return g.op("Transpose", g.op("Reshape", projected, split), perm=perm)

    q = heads("query", [0, 2, 1, 3])  # [batch, heads, seq, head_size]
    k = heads("key", [0, 2, 3, 1])  # [batch, heads, head_size, seq]: ready for q @ k
    v = heads("value", [0, 2, 1, 3])
    scale = g.const(f"{prefix}.scale", np.array(math.sqrt(cfg.head_size), np.float32))
    scores = g.op("Add", g.op("Div", g.op("MatMul", q, k), scale), mask_bias)
    context = g.op("MatMul", g.op("Softmax", scores, axis=-1), v)
    context = g.op("Reshape", g.op("Transpose", context, perm=[0, 2, 1, 3]), merge)
    return g.linear(context, f"{prefix}.output.dense")


def _layer(g: _GraphBuilder, x: str, mask_bias: str, index: int, cfg: BertConfig) -> str:
    """One encoder block: attention and feed-forward, each with residual + LayerNorm."""
    prefix = f"encoder.layer.{index}"
    attended = _attention(g, x, mask_bias, f"{prefix}.attention", cfg)
    x = g.layer_norm(
        g.op("Add", attended, x), f"{prefix}.attention.output.LayerNorm", cfg.layer_norm_eps
    )
    hidden = g.gelu(g.linear(x, f"{prefix}.intermediate.dense"))
    out = g.linear(hidden, f"{prefix}.output.dense")
    return g.layer_norm(g.op("Add", out, x), f"{prefix}.output.LayerNorm", cfg.layer_norm_eps)


def build_bert_onnx(cfg: BertConfig, weights: Mapping[str, np.ndarray]) -> ModelProto:
    """Return an ONNX model computing BERT's ``last_hidden_state``."""
    from onnx import TensorProto, helper

    g = _GraphBuilder(weights)
    x = _embeddings(g, cfg)
    mask_bias = _mask_bias(g)
    for index in range(cfg.num_layers):
        x = _layer(g, x, mask_bias, index, cfg)
    g.nodes.append(_node("Reshape", [x, g.shape_with(cfg.hidden_size)], ["last_hidden_state"]))

    ids_type = TensorProto.INT64
    inputs = [
        helper.make_tensor_value_info("input_ids", ids_type, ["batch", "seq"]),
        helper.make_tensor_value_info("attention_mask", ids_type, ["batch", "seq"]),
    ]
    output = helper.make_tensor_value_info(
        "last_hidden_state", TensorProto.FLOAT, ["batch", "seq", cfg.hidden_size]
    )
    graph = helper.make_graph(g.nodes, "bert_encoder", inputs, [output], g.initializers)
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="sem-mem"
    )
    model.ir_version = 8  # readable by every onnxruntime that supports opset 17
    return model


def _quantize_int8(model: Any) -> Any:
    """The graph with int8 weights for every Gemm/MatMul, via onnxruntime's quantizer."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory(prefix="sem-mem-int8-") as tmp:
        source, target = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        onnx.save(model, source)
        # quantize_dynamic logs a "consider pre-processing" hint on the root logger; it is
        # about shape inference for folding, which this graph (plain Gemm/MatMul) needs not
        root = logging.getLogger()
        hint = _DropPreprocessingHint()
        root.addFilter(hint)
        try:
            quantize_dynamic(
                source,
                target,
                weight_type=QuantType.QInt8,
                per_channel=True,
                op_types_to_quantize=["Gemm", "MatMul"],
            )
        finally:
            root.removeFilter(hint)
        return onnx.load(target)


class _DropPreprocessingHint(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "pre-processing before quantization" not in record.getMessage()


class BeforeEmbedder(Embedder):
    """MiniLM as main f74d3a3 ran it: old graph, one multi-threaded session, old loop."""

    batch_size = 64

    def __init__(self, cache_dir: str | os.PathLike[str], *, int8: bool, threads: int) -> None:
        import onnxruntime as ort

        new = LocalEmbedder(cache_dir=cache_dir, int8=int8)  # model files, tokenizer settings
        self.model_id = new.model_id + " (before)"
        self.dimensions = new.dimensions
        self.tokenizer = new._load_tokenizer()
        path = Path(cache_dir) / f"before{'-int8' if int8 else ''}.onnx"
        if not path.exists():
            weights = load_bert_weights(new.model_dir / "model.safetensors")
            model = build_bert_onnx(BertConfig.from_dict(new.config), weights)
            save_atomic(_quantize_int8(model) if int8 else model, path)
        self.onnx_path = path
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 3
        self.session = ort.InferenceSession(
            os.fspath(path), options, providers=["CPUExecutionProvider"]
        )

    def embed_batch(self, texts: Sequence[str]) -> np.ndarray:
        encodings = self.tokenizer.encode_batch(list(texts))
        token_ids = [enc.ids for enc in encodings]
        order = np.argsort([len(ids) for ids in token_ids], kind="stable")
        out = np.empty((len(texts), self.dimensions), dtype=np.float32)
        for start in range(0, len(order), _RUN_ROWS):
            rows = order[start : start + _RUN_ROWS]
            input_ids, mask = _pad([token_ids[i] for i in rows])
            (hidden,) = self.session.run(None, {"input_ids": input_ids, "attention_mask": mask})
            out[rows] = _pool_mean(hidden, mask)
        return out


def _pad(token_ids: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    width = max(len(ids) for ids in token_ids)
    input_ids = np.zeros((len(token_ids), width), dtype=np.int64)
    mask = np.zeros((len(token_ids), width), dtype=np.int64)
    for row, ids in enumerate(token_ids):
        input_ids[row, : len(ids)] = ids
        mask[row, : len(ids)] = 1
    return input_ids, mask


def _pool_mean(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    weights = mask[:, :, None].astype(np.float32)
    summed = (hidden * weights).sum(axis=1)
    return summed / np.clip(weights.sum(axis=1), 1e-9, None)
