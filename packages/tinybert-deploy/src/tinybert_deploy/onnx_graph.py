"""An ONNX graph of a tinybert model, written directly from its weights.

MindSpore's own ONNX exporter cannot do this job: it has no converter for Erf (so exact GELU
fails) and it bakes the example's batch and sequence sizes into the graph even with dynamic
axes. Here every op is chosen so that no size but the hidden width is fixed: the position
ids come from `Range(0, Shape(input_ids)[1])`, head splitting reshapes with 0 ("keep this
dimension") and the [CLS] vector is a Gather on axis 1. GELU is exact: x * 0.5 * (1 + Erf(x / √2)).

Inputs `input_ids`, `segment_ids`, `input_mask` (int32, [batch, sequence]); output `logits`
([batch, labels] for classification and regression, [batch, sequence, labels] for NER).
The graph follows tinybert_model.modeling step by step (post-norm layers, mask penalty -10000).
"""

from __future__ import annotations

import math

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17  # LayerNormalization is a single op from opset 17
INPUTS = ("input_ids", "segment_ids", "input_mask")
MASK_PENALTY = -10000.0


class GraphBuilder:
    """Collects nodes and initializers; each method adds one step and returns its output name."""

    def __init__(self, tensors: dict):
        self.tensors = tensors
        self.nodes, self.initializers = [], []
        self.count = 0

    def weight(self, name: str, transpose: bool = False) -> str:
        """A checkpoint tensor as an initializer (Dense weights are [out, in]: transposed)."""
        value = self.tensors[name]
        value = np.ascontiguousarray(value.T if transpose else value, dtype=np.float32)
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

    def dense(self, x: str, name: str) -> str:
        return self.op(
            "Add",
            self.op("MatMul", x, self.weight(f"{name}.weight", True)),
            self.weight(f"{name}.bias"),
        )

    def layer_norm(self, x: str, name: str, epsilon: float) -> str:
        gamma, beta = self.weight(f"{name}.gamma"), self.weight(f"{name}.beta")
        return self.op("LayerNormalization", x, gamma, beta, axis=-1, epsilon=epsilon)

    def gelu(self, x: str) -> str:
        erf = self.op("Erf", self.op("Mul", x, self.constant(1.0 / math.sqrt(2.0))))
        return self.op(
            "Mul", self.op("Mul", x, self.constant(0.5)), self.op("Add", erf, self.constant(1.0))
        )

    def gelu_tanh(self, x: str) -> str:
        cubic = self.op("Mul", self.op("Mul", self.op("Mul", x, x), x), self.constant(0.044715))
        inner = self.op("Mul", self.op("Add", x, cubic), self.constant(math.sqrt(2.0 / math.pi)))
        one_plus = self.op("Add", self.op("Tanh", inner), self.constant(1.0))
        return self.op("Mul", self.op("Mul", x, self.constant(0.5)), one_plus)


def _attention(g: GraphBuilder, x: str, bias: str, layer: str, heads: int, head_size: int) -> str:
    def split_heads(name: str, permutation: list) -> str:
        shaped = g.op(
            "Reshape",
            g.dense(x, f"{layer}attention.{name}"),
            g.constant([0, 0, heads, head_size], np.int64),
        )
        return g.op("Transpose", shaped, perm=permutation)

    query = split_heads("query", [0, 2, 1, 3])  # [b, heads, s, d]
    key = split_heads("key", [0, 2, 3, 1])  # [b, heads, d, s]
    value = split_heads("value", [0, 2, 1, 3])
    scores = g.op("Mul", g.op("MatMul", query, key), g.constant(1.0 / math.sqrt(head_size)))
    probabilities = g.op("Softmax", g.op("Add", scores, bias), axis=-1)
    context = g.op("Transpose", g.op("MatMul", probabilities, value), perm=[0, 2, 1, 3])
    context = g.op("Reshape", context, g.constant([0, 0, heads * head_size], np.int64))
    return g.dense(context, f"{layer}attention.dense")


def build_graph(tensors: dict, config, architecture: str, metadata: dict) -> onnx.ModelProto:
    """The ONNX model of a `BertForSequenceClassification` / `BertForTokenClassification`
    checkpoint (`tensors`: tinybert_model names -> numpy arrays, `config`: its BertConfig)."""
    if architecture not in ("BertForSequenceClassification", "BertForTokenClassification"):
        raise ValueError(
            f"only task models can be exported (this checkpoint holds a {architecture})"
        )
    g = GraphBuilder(tensors)
    epsilon = float(config.layer_norm_eps)
    heads = config.num_attention_heads
    head_size = config.hidden_size // heads
    activation = g.gelu if config.hidden_act == "gelu" else g.gelu_tanh

    # embeddings: word + position (0 .. sequence-1) + segment, then LayerNorm
    sequence = g.op("Gather", g.op("Shape", "input_ids"), g.constant(1, np.int64), axis=0)
    positions = g.op("Range", g.constant(0, np.int64), sequence, g.constant(1, np.int64))
    hidden = g.op(
        "Add",
        g.op(
            "Add",
            g.op(
                "Gather", g.weight("bert.embeddings.word_embeddings.embedding_table"), "input_ids"
            ),
            g.op(
                "Gather", g.weight("bert.embeddings.position_embeddings.embedding_table"), positions
            ),
        ),
        g.op(
            "Gather",
            g.weight("bert.embeddings.token_type_embeddings.embedding_table"),
            "segment_ids",
        ),
    )
    hidden = g.layer_norm(hidden, "bert.embeddings.layer_norm", epsilon)

    # [b, 1, 1, s]: 0 at real keys, -10000 at padding
    mask = g.op("Cast", "input_mask", to=TensorProto.FLOAT)
    bias = g.op("Mul", g.op("Sub", g.constant(1.0), mask), g.constant(MASK_PENALTY))
    bias = g.op("Unsqueeze", bias, g.constant([1, 2], np.int64))

    for index in range(config.num_hidden_layers):
        layer = f"bert.layers.{index}."
        attended = _attention(g, hidden, bias, layer, heads, head_size)
        hidden = g.layer_norm(g.op("Add", hidden, attended), f"{layer}attention_norm", epsilon)
        feed_forward = g.dense(
            activation(g.dense(hidden, f"{layer}intermediate")), f"{layer}output"
        )
        hidden = g.layer_norm(g.op("Add", hidden, feed_forward), f"{layer}output_norm", epsilon)

    if architecture == "BertForTokenClassification":
        logits = g.dense(hidden, "classifier")
        logits_shape = ["batch", "sequence", config.num_labels]
    else:  # the pooler reads the [CLS] vector
        first_token = g.op("Gather", hidden, g.constant(0, np.int64), axis=1)
        logits = g.dense(g.op("Tanh", g.dense(first_token, "bert.pooler")), "classifier")
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
