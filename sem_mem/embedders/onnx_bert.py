"""Build an ONNX graph of a BERT encoder straight from its ``model.safetensors`` weights.

Why by hand: no installable package ships all-MiniLM-L6-v2 (or most sentence-embedding
models) as ONNX, and the usual exporter (``torch.onnx``) needs torch, a multi-GB dependency
that Sem-Mem refuses to pull in. A BERT encoder is small enough to write out with the
``onnx`` helpers: embeddings + LayerNorm, then ``num_hidden_layers`` blocks of multi-head
self-attention and a GELU feed-forward, each followed by a residual LayerNorm.

The graph takes ``input_ids`` and ``attention_mask`` (int64, ``[batch, seq]``) and returns
``last_hidden_state`` (float32, ``[batch, seq, hidden]``); pooling is left to the caller so
one cached graph serves every pooling mode. Token-type ids are not an input: a single
sentence is always segment 0, so that embedding row is folded into the position table.

Only this module and :mod:`sem_mem.embedders.local` import ``onnx``, and only when a graph
is actually built.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import ConfigurationError

if TYPE_CHECKING:
    from onnx import ModelProto, NodeProto, TensorProto

__all__ = ["BUILDER_VERSION", "BertConfig", "build_bert_onnx", "load_bert_weights", "save_atomic"]

# Part of the cache key: bump it whenever the graph this module emits changes.
BUILDER_VERSION = "2"
OPSET = 17  # first opset with LayerNormalization; onnxruntime >= 1.14 runs it
_MASK_FILL = -10000.0  # what BERT adds to masked scores; exp() of it is 0 in float32


@dataclass(frozen=True)
class BertConfig:
    """The hyperparameters the graph needs, read from a Hugging Face ``config.json``."""

    hidden_size: int
    num_layers: int
    num_heads: int
    intermediate_size: int
    max_positions: int
    layer_norm_eps: float

    @classmethod
    def from_dict(cls, config: Mapping[str, Any]) -> BertConfig:
        """Validate a parsed ``config.json``; raise ConfigurationError if it is not a BERT."""
        model_type = config.get("model_type", "bert")
        if model_type != "bert":
            raise ConfigurationError(
                f"unsupported model_type {model_type!r}: the local embedder runs BERT-family "
                "encoders (model_type 'bert') only"
            )
        if config.get("position_embedding_type", "absolute") != "absolute":
            raise ConfigurationError("only absolute position embeddings are supported")
        if config.get("hidden_act", "gelu") != "gelu":
            raise ConfigurationError(
                f"unsupported hidden_act {config.get('hidden_act')!r}: only 'gelu' is supported"
            )
        try:
            parsed = cls(
                hidden_size=int(config["hidden_size"]),
                num_layers=int(config["num_hidden_layers"]),
                num_heads=int(config["num_attention_heads"]),
                intermediate_size=int(config["intermediate_size"]),
                max_positions=int(config.get("max_position_embeddings", 512)),
                layer_norm_eps=float(config.get("layer_norm_eps", 1e-12)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigurationError(f"config.json lacks a usable BERT setting: {exc}") from exc
        if parsed.hidden_size % parsed.num_heads:
            raise ConfigurationError("hidden_size is not a multiple of num_attention_heads")
        return parsed

    @property
    def head_size(self) -> int:
        """Width of one attention head."""
        return self.hidden_size // self.num_heads


def load_bert_weights(safetensors_path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Read the weights as float32 arrays, named without any ``bert.`` prefix.

    Checkpoints saved from ``BertForMaskedLM`` and friends prefix every name with ``bert.``;
    old TF conversions call LayerNorm parameters ``gamma``/``beta``.
    """
    from safetensors.numpy import load_file

    weights = {}
    for name, array in load_file(os.fspath(safetensors_path)).items():
        name = name.removeprefix("bert.")
        name = name.replace("LayerNorm.gamma", "LayerNorm.weight")
        name = name.replace("LayerNorm.beta", "LayerNorm.bias")
        weights[name] = array.astype(np.float32) if array.dtype != np.int64 else array
    return weights


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


def save_atomic(model: ModelProto, path: str | os.PathLike[str]) -> Path:
    """Write ``model`` to ``path`` so that readers never see a half-written file.

    The bytes go to a temporary file in the same folder, are flushed to disk, then
    ``os.replace`` swaps it in: two processes building at once each publish a whole file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(model.SerializeToString())
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
