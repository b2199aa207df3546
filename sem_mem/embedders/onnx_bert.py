"""Build an ONNX graph of a BERT encoder straight from its ``model.safetensors`` weights.

Why by hand: no installable package ships all-MiniLM-L6-v2 (or most sentence-embedding
models) as ONNX, and the usual exporter (``torch.onnx``) needs torch, a multi-GB dependency
that Sem-Mem refuses to pull in. A BERT encoder is small enough to write out with the
``onnx`` helpers, and writing it ourselves lets us emit onnxruntime's fused operators
(``com.microsoft`` domain) directly, which its optimizer cannot find in a hand-built graph:

- ``EmbedLayerNormalization``: word + position embeddings and their LayerNorm in one
  kernel; it also returns each row's length for the attention mask;
- ``Attention`` (float32) or ``DynamicQuantizeLinear`` + ``QAttention`` (int8): the
  packed Q/K/V projection, scaled dot-product, masked softmax and head merge in one kernel;
- ``Gemm`` (float32) or ``DynamicQuantizeMatMul`` (int8) with the bias folded in, and
  ``Gelu`` for the feed-forward.

Residual + LayerNorm stay two standard nodes on ``[tokens, hidden]`` rows: onnxruntime's
``SkipLayerNormalization`` kernel was ~10x slower than ``Add`` + ``LayerNormalization``
on the same data (onnxruntime 1.32, measured on 2 AVX-512 cores), and that fusion does
not fire on 2-D rows. After onnxruntime's own optimisation the graph runs 70 kernels
(int8: 76), against 152 (158) for the unfused graph of builder version 2.

int8 weights are quantised here, symmetrically per output column (int8, zero point 0);
activations are quantised per run by the operators themselves. Its vectors differ
slightly from float32 ones (median cosine ~0.99 on conversation turns), so it is another
embedding space.

The graph takes ``input_ids`` and ``attention_mask`` (int32, ``[batch, seq]``, right
padded) and returns ``last_hidden_state`` (float32, ``[batch, seq, hidden]``); pooling is
left to the caller so one cached graph serves every pooling mode. Token-type ids are not
an input: a single sentence is always segment 0, so that embedding row is folded into
the position table.

Only this module imports ``onnx``, and only when a graph is actually built.
"""

from __future__ import annotations

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
BUILDER_VERSION = "3"
OPSET = 17  # first opset with LayerNormalization; onnxruntime >= 1.14 runs it
_MS = "com.microsoft"  # onnxruntime's contrib-operator domain


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


class _GraphBuilder:
    """Accumulates nodes and initializers; each helper returns its output's name(s)."""

    def __init__(self, weights: Mapping[str, np.ndarray], int8: bool) -> None:
        self.weights = weights
        self.int8 = int8
        self.nodes: list[NodeProto] = []
        self.initializers: list[TensorProto] = []
        self._count = 0

    def weight(self, name: str) -> np.ndarray:
        try:
            return self.weights[name]
        except KeyError as exc:
            raise ConfigurationError(f"model.safetensors has no tensor {name!r}") from exc

    def const(self, name: str, value: np.ndarray) -> str:
        from onnx import numpy_helper

        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def op(self, op_type: str, *inputs: str, **attrs: Any) -> str:
        """Add a one-output node; ``domain=`` among ``attrs`` picks a contrib domain."""
        return self.ops(op_type, *inputs, outputs=1, **attrs)[0]

    def ops(self, op_type: str, *inputs: str, outputs: int, **attrs: Any) -> list[str]:
        """Add a node with ``outputs`` outputs; returns their names in order."""
        from onnx import helper

        self._count += 1
        names = [f"{op_type.lower()}_{self._count}_{i}" for i in range(outputs)]
        self.nodes.append(helper.make_node(op_type, list(inputs), names, **attrs))
        return names

    def linear(self, x: str, prefix: str) -> str:
        """``x @ W.T + b`` on ``[tokens, features]`` rows, bias folded into the kernel."""
        w_t = self.weight(f"{prefix}.weight").T  # [in, out]
        b = self.const(f"{prefix}.bias", self.weight(f"{prefix}.bias"))
        if self.int8:
            q, scale = _quantize_columns(w_t)
            return self.op(
                "DynamicQuantizeMatMul",
                x,
                self.const(f"{prefix}.weight_int8", q),
                self.const(f"{prefix}.weight_scale", scale),
                "",
                b,
                domain=_MS,
            )
        return self.op("Gemm", x, self.const(f"{prefix}.weight_t", w_t), b)

    def layer_norm(self, x: str, prefix: str, eps: float) -> str:
        scale = self.const(f"{prefix}.weight", self.weight(f"{prefix}.weight"))
        bias = self.const(f"{prefix}.bias", self.weight(f"{prefix}.bias"))
        return self.op("LayerNormalization", x, scale, bias, axis=-1, epsilon=eps)


def _quantize_columns(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric int8 per output column: ``w ~= q * scale`` with ``q`` in [-127, 127]."""
    scale = np.abs(w).max(axis=0) / 127.0
    scale[scale == 0] = 1.0
    q = np.clip(np.rint(w / scale), -127, 127).astype(np.int8)
    return q, scale.astype(np.float32)


def _embeddings(g: _GraphBuilder, cfg: BertConfig) -> tuple[str, str]:
    """Word + position + token-type(0) embeddings and LayerNorm; also each row's length."""
    positions = g.weight("embeddings.position_embeddings.weight")[: cfg.max_positions]
    segment0 = g.weight("embeddings.token_type_embeddings.weight")[0]
    hidden, lengths = g.ops(
        "EmbedLayerNormalization",
        "input_ids",
        "",  # no segment ids: segment 0 is folded into the position table
        g.const("word_embeddings", g.weight("embeddings.word_embeddings.weight")),
        g.const("position_plus_segment0", positions + segment0),
        "",
        g.const("embeddings.LayerNorm.weight", g.weight("embeddings.LayerNorm.weight")),
        g.const("embeddings.LayerNorm.bias", g.weight("embeddings.LayerNorm.bias")),
        "attention_mask",
        outputs=2,
        domain=_MS,
        epsilon=cfg.layer_norm_eps,
    )
    return hidden, lengths


def _attention(g: _GraphBuilder, x3: str, lengths: str, prefix: str, cfg: BertConfig) -> str:
    """Multi-head self-attention over ``[batch, seq, hidden]``, before the output dense."""
    names = ("query", "key", "value")
    w_qkv = np.concatenate([g.weight(f"{prefix}.self.{n}.weight").T for n in names], axis=1)
    b_qkv = g.const(
        f"{prefix}.qkv.bias",
        np.concatenate([g.weight(f"{prefix}.self.{n}.bias") for n in names]),
    )
    if not g.int8:
        w = g.const(f"{prefix}.qkv.weight", w_qkv)
        return g.op("Attention", x3, w, b_qkv, lengths, domain=_MS, num_heads=cfg.num_heads)
    q, scale = _quantize_columns(w_qkv)
    x_q, x_scale, x_zero = g.ops("DynamicQuantizeLinear", x3, outputs=3)
    return g.op(
        "QAttention",
        x_q,
        g.const(f"{prefix}.qkv.weight_int8", q),
        b_qkv,
        x_scale,
        g.const(f"{prefix}.qkv.weight_scale", scale),
        lengths,
        x_zero,
        domain=_MS,
        num_heads=cfg.num_heads,
    )


def build_bert_onnx(
    cfg: BertConfig, weights: Mapping[str, np.ndarray], *, int8: bool = False
) -> ModelProto:
    """Return an ONNX model computing BERT's ``last_hidden_state`` (int8 weights if asked)."""
    from onnx import TensorProto, helper

    g = _GraphBuilder(weights, int8)
    x3, lengths = _embeddings(g, cfg)
    # Projections and LayerNorms work on [batch * seq, hidden] rows; Attention wants 3-D.
    rows = g.const("rows_shape", np.array([-1, cfg.hidden_size], np.int64))
    batch_seq = g.op("Shape", "input_ids")
    shape3 = g.op(
        "Concat", batch_seq, g.const("hidden_size", np.array([cfg.hidden_size], np.int64)), axis=0
    )
    x = g.op("Reshape", x3, rows)
    eps = cfg.layer_norm_eps
    for index in range(cfg.num_layers):
        prefix = f"encoder.layer.{index}"
        context = g.op("Reshape", _attention(g, x3, lengths, f"{prefix}.attention", cfg), rows)
        attended = g.linear(context, f"{prefix}.attention.output.dense")
        x = g.layer_norm(g.op("Add", attended, x), f"{prefix}.attention.output.LayerNorm", eps)
        inner = g.op("Gelu", g.linear(x, f"{prefix}.intermediate.dense"), domain=_MS)
        out = g.linear(inner, f"{prefix}.output.dense")
        x = g.layer_norm(g.op("Add", out, x), f"{prefix}.output.LayerNorm", eps)
        x3 = g.op("Reshape", x, shape3)
    g.nodes[-1].output[0] = "last_hidden_state"

    ids_type = TensorProto.INT32
    inputs = [
        helper.make_tensor_value_info("input_ids", ids_type, ["batch", "seq"]),
        helper.make_tensor_value_info("attention_mask", ids_type, ["batch", "seq"]),
    ]
    output = helper.make_tensor_value_info(
        "last_hidden_state", TensorProto.FLOAT, ["batch", "seq", cfg.hidden_size]
    )
    graph = helper.make_graph(g.nodes, "bert_encoder", inputs, [output], g.initializers)
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET), helper.make_opsetid(_MS, 1)],
        producer_name="sem-mem",
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
