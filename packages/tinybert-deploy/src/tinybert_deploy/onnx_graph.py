"""An ONNX graph of a tinybert model, written directly from its weights.

MindSpore's own ONNX exporter cannot do this job: it has no converter for Erf (so exact GELU
fails) and it bakes the example's batch and sequence sizes into the graph even with dynamic
axes. Here every op is chosen so that no size but the hidden width is fixed: the position
ids come from `Range(0, Shape(input_ids)[1])`, head splitting reshapes with the batch size
read from `Shape(input_ids)[0]` and -1 for the sequence, and the [CLS] vector is a Gather.

The graph is also written in the form ONNX Runtime's optimizer fuses best (ORT 1.32,
read from its fusion rules and measured in bench/bench_deploy.py):
- tokens travel as one [batch*sequence, hidden] matrix between the attention blocks, so
  every MatMul + Add (weights and bias) becomes one Gemm / FusedMatMul and later int8
  MatMulIntegerToFloat with the bias folded in; 3-D MatMul + Add with dynamic shapes is not
  fused;
- GELU is exact and written x * 0.5 * (1 + Erf(x / √2)) with a Div, the pattern ORT's
  Gelu and BiasGelu fusions start from (a Mul by 1/√2 is not matched);
- the attention scale 1/√head_size is folded into the query weights (one op less per
  layer);
- residual Add then LayerNormalization, which ORT's CPU provider runs faster than its fused
  SkipLayerNormalization.

Inputs `input_ids`, `segment_ids`, `input_mask` (int32, [batch, sequence]); output `logits`
([batch, labels] for classification and regression, [batch, sequence, labels] for NER).
The graph follows tinybert_model's modeling.py step by step (post-norm layers, mask penalty
-10000) and gives its logits within 1e-4 (tests/test_export.py). Every weight is found by its
cell's name in tinybert_model's one table of tensor names (`tensor_names("query", ...)`).
"""

from __future__ import annotations

import math

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from tinybert_core import MASK_PENALTY
from tinybert_core import TEXT_COLUMNS as INPUTS
from tinybert_model import tensor_names

OPSET = 17  # LayerNormalization is a single op from opset 17


class GraphBuilder:
    """Collects nodes and initializers; each method adds one step and returns its output name.

    Weights are named by their cell (`"query"`, `"output_norm"`, ...) and `layer`, as
    tinybert_model's table of tensor names keys them for `architecture`.
    """

    def __init__(self, tensors: dict, architecture: str = "BertForSequenceClassification"):
        self.tensors = tensors
        self.architecture = architecture
        self.nodes, self.initializers = [], []
        self.count = 0

    def names(self, cell: str, layer: int | None = None) -> tuple:
        """The checkpoint names of a cell's tensors, weight (gamma, table) first."""
        return tensor_names(cell, self.architecture, layer)

    def weight(self, name: str, transpose: bool = False, scale: float = 1.0) -> str:
        """A checkpoint tensor as an initializer (Dense weights are [out, in]: transposed)."""
        value = np.asarray(self.tensors[name], dtype=np.float32)
        value = np.ascontiguousarray(value.T if transpose else value) * np.float32(scale)
        self.initializers.append(numpy_helper.from_array(value, name))
        return name

    def constant(self, value, dtype=np.float32) -> str:
        self.count += 1
        name = f"const_{self.count}"
        self.initializers.append(numpy_helper.from_array(np.asarray(value, dtype), name))
        return name

    def op(self, op_type: str, *inputs: str, **attributes) -> str:
        self.count += 1
        output = f"{op_type.lower()}_{self.count}"
        self.nodes.append(helper.make_node(op_type, list(inputs), [output], **attributes))
        return output

    def embedding(self, cell: str, ids: str) -> str:
        (table,) = self.names(cell)
        return self.op("Gather", self.weight(table), ids)

    def dense(self, x: str, cell: str, layer: int | None = None, scale: float = 1.0) -> str:
        """x @ W + b; on a 2-D x, ORT fuses the two into one Gemm."""
        weight, bias = self.names(cell, layer)
        weight = self.weight(weight, transpose=True, scale=scale)
        return self.op("Add", self.op("MatMul", x, weight), self.weight(bias, scale=scale))

    def layer_norm(self, x: str, cell: str, epsilon: float, layer: int | None = None) -> str:
        gamma, beta = (self.weight(name) for name in self.names(cell, layer))
        return self.op("LayerNormalization", x, gamma, beta, axis=-1, epsilon=epsilon)

    def gelu(self, x: str) -> str:
        """Exact GELU as ORT's Gelu fusion matches it: Div(√2), Erf, Add 1, Mul x, Mul 0.5."""
        erf = self.op("Erf", self.op("Div", x, self.constant(math.sqrt(2.0))))
        return self.op(
            "Mul", self.op("Mul", x, self.op("Add", erf, self.constant(1.0))), self.constant(0.5)
        )

    def gelu_tanh(self, x: str) -> str:
        cubic = self.op("Mul", self.op("Mul", self.op("Mul", x, x), x), self.constant(0.044715))
        inner = self.op("Mul", self.op("Add", x, cubic), self.constant(math.sqrt(2.0 / math.pi)))
        one_plus = self.op("Add", self.op("Tanh", inner), self.constant(1.0))
        return self.op("Mul", self.op("Mul", x, self.constant(0.5)), one_plus)

    def relu(self, x: str) -> str:
        return self.op("Relu", x)


def _attention(g: GraphBuilder, x: str, bias: str, heads_shape: str, layer: int, config) -> str:
    """Self-attention over the [batch*seq, hidden] matrix `x`; `heads_shape` is
    [batch, -1, heads, head_size] and `bias` the [batch, 1, 1, seq] mask penalty."""
    head_size = config.hidden_size // config.num_attention_heads

    def split_heads(cell: str, permutation: list, scale: float = 1.0) -> str:
        projected = g.dense(x, cell, layer, scale)
        return g.op("Transpose", g.op("Reshape", projected, heads_shape), perm=permutation)

    query = split_heads("query", [0, 2, 1, 3], 1.0 / math.sqrt(head_size))  # [b, heads, s, d]
    key = split_heads("key", [0, 2, 3, 1])  # [b, heads, d, s]
    value = split_heads("value", [0, 2, 1, 3])
    probabilities = g.op("Softmax", g.op("Add", g.op("MatMul", query, key), bias), axis=-1)
    context = g.op("Transpose", g.op("MatMul", probabilities, value), perm=[0, 2, 1, 3])
    context = g.op("Reshape", context, g.constant([-1, config.hidden_size], np.int64))
    return g.dense(context, "attention_output", layer)


def build_graph(tensors: dict, config, architecture: str, metadata: dict) -> onnx.ModelProto:
    """The ONNX model of a `BertForSequenceClassification` / `BertForTokenClassification`
    checkpoint (`tensors`: tinybert_model names -> numpy arrays, `config`: its BertConfig)."""
    if architecture not in ("BertForSequenceClassification", "BertForTokenClassification"):
        raise ValueError(
            f"only task models can be exported (this checkpoint holds a {architecture})"
        )
    activations = {"gelu": "gelu", "gelu_tanh": "gelu_tanh", "relu": "relu"}
    if config.hidden_act not in activations:
        raise ValueError(f"hidden_act {config.hidden_act!r} has no ONNX form here")
    g = GraphBuilder(tensors, architecture)
    epsilon = float(config.layer_norm_eps)
    hidden_size = config.hidden_size
    activation = getattr(g, activations[config.hidden_act])

    # sizes read from the input, so that both axes stay dynamic
    shape = g.op("Shape", "input_ids")
    batch = g.op("Slice", shape, g.constant([0], np.int64), g.constant([1], np.int64))
    sequence = g.op("Gather", shape, g.constant(1, np.int64), axis=0)
    heads_shape = g.op(
        "Concat",
        batch,
        g.constant(
            [-1, config.num_attention_heads, hidden_size // config.num_attention_heads], np.int64
        ),
        axis=0,
    )

    # embeddings: word + position (0 .. sequence-1) + segment, as [batch*seq, hidden]
    positions = g.op("Range", g.constant(0, np.int64), sequence, g.constant(1, np.int64))
    embedded = g.op(
        "Add",
        g.op(
            "Add",
            g.embedding("word_embeddings", "input_ids"),
            g.embedding("position_embeddings", positions),
        ),
        g.embedding("token_type_embeddings", "segment_ids"),
    )
    tokens = g.op("Reshape", embedded, g.constant([-1, hidden_size], np.int64))
    hidden = g.layer_norm(tokens, "embeddings_norm", epsilon)

    # [b, 1, 1, s]: 0 at real keys, -10000 at padding
    mask = g.op("Cast", "input_mask", to=TensorProto.FLOAT)
    bias = g.op("Mul", g.op("Sub", g.constant(1.0), mask), g.constant(MASK_PENALTY))
    bias = g.op("Unsqueeze", bias, g.constant([1, 2], np.int64))

    for layer in range(config.num_hidden_layers):
        attended = _attention(g, hidden, bias, heads_shape, layer, config)
        hidden = g.layer_norm(g.op("Add", attended, hidden), "attention_norm", epsilon, layer)
        feed_forward = g.dense(activation(g.dense(hidden, "intermediate", layer)), "output", layer)
        hidden = g.layer_norm(g.op("Add", feed_forward, hidden), "output_norm", epsilon, layer)

    # back to [batch, seq, hidden]
    sequence_shape = g.op("Concat", batch, g.constant([-1, hidden_size], np.int64), axis=0)
    sequence_output = g.op("Reshape", hidden, sequence_shape)
    if architecture == "BertForTokenClassification":
        labels_shape = g.op("Concat", batch, g.constant([-1, config.num_labels], np.int64), axis=0)
        logits = g.op("Reshape", g.dense(hidden, "classifier"), labels_shape)
        logits_shape = ["batch", "sequence", config.num_labels]
    else:  # the pooler reads the [CLS] vector
        first_token = g.op("Gather", sequence_output, g.constant(0, np.int64), axis=1)
        logits = g.dense(g.op("Tanh", g.dense(first_token, "pooler")), "classifier")
        logits_shape = ["batch", config.num_labels]
    g.nodes.append(helper.make_node("Identity", [logits], ["logits"]))

    inputs = [
        helper.make_tensor_value_info(n, TensorProto.INT32, ["batch", "sequence"]) for n in INPUTS
    ]
    outputs = [helper.make_tensor_value_info("logits", TensorProto.FLOAT, logits_shape)]
    graph = helper.make_graph(g.nodes, "tinybert", inputs, outputs, g.initializers)
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="tinybert-deploy"
    )
    model.ir_version = 8  # readable by onnxruntime 1.16 and later
    helper.set_model_props(model, {key: str(value) for key, value in metadata.items()})
    onnx.checker.check_model(model)
    return model
