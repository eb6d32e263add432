"""An ONNX graph of a tinybert model, written directly from its weights.

MindSpore's own ONNX exporter cannot do this job: it has no converter for Erf (so exact GELU
fails) and it bakes the example's batch and sequence sizes into the graph even with dynamic
axes. Here every op is chosen so that no size but the hidden width is fixed: the position
ids come from `Range(0, Shape(input_ids)[1])`, head splitting reshapes with the batch size
read from `Shape(input_ids)[0]` and -1 for the sequence, and the [CLS] vector is a Gather.

Work left out (issue 37):
- A sequence classifier's pooler reads the [CLS] vector alone, so its last layer computes
  [CLS] alone: the query, the attention output, the feed-forward block and both norms for one
  row a sequence; the keys and values still come from every token (what tinybert_model's
  `logits_only` computes). At sequence 128 that is about a fifth of a 4-layer model's work.
- A sequence classifier computes no padded token (`remove_padding`): the real tokens of the
  whole batch travel as one [tokens, hidden] matrix, gathered at `NonZero(input_mask)`. Only
  the two attention products need the [batch, heads, sequence, head_size] grid; queries, keys
  and values are gathered into it (a padded position takes the row of the real token before
  it: its key is masked by the -10000 penalty, its query's output is never read) and the
  context gathered back out. Position 0 ([CLS]) always counts as real, so no row is empty.
  First of all its inputs are cut after the batch's last real token, so a batch padded past
  its longest row (fixed-length pipelines pad to seq_length) spans no more positions than
  that row in the attention products either.
- A tagger outputs every token: its graph computes every position of every layer.
- Nothing is moved twice: a layer's query, key and value projections are one matrix product
  (their weights side by side: one int8 quantization of its input, one larger GEMM), and each
  head is gathered from it straight into the grid, in the layout the attention products take
  ([batch, heads, sequence, head_size]), and back: no Transpose of whole activations (bench:
  32 x 128 int8 102 -> 96 ms, 1 x 32 1.94 -> 1.58 ms against the graph that reshaped,
  transposed and gathered whole rows).

The graph is written in the form ONNX Runtime's optimizer fuses best (ORT 1.32, read from its
fusion rules and measured in bench/bench_deploy.py):
- tokens travel as one [tokens, hidden] matrix between the attention blocks, so every MatMul +
  Add (weights and bias) becomes one Gemm / FusedMatMul and later int8 DynamicQuantizeMatMul
  with the bias folded in; 3-D MatMul + Add with dynamic shapes is not fused;
- GELU is exact and written x * 0.5 * (1 + Erf(x / √2)) with a Div, the pattern ORT's
  Gelu and BiasGelu fusions start from (a Mul by 1/√2 is not matched);
- the attention scale 1/√head_size is folded into the query weights (one op less per layer);
- the keys are transposed by a Transpose of the last two axes right before the scores'
  MatMul, which ORT folds into one FusedMatMul (transB);
- residual Add then LayerNormalization.

`fused=True` writes ONNX Runtime's own fused operators (domain com.microsoft) instead, which
its transformer optimizer (`onnxruntime.transformers.optimizer`, model_type "bert") cannot
put into this graph: on the graph above it fuses BiasGelu alone (its Attention pattern wants
3-D tokens, an explicit scale and the mask as Unsqueeze, Cast, Sub, Mul; its
SkipLayerNormalization wants 3-D inputs). The fused ops: EmbedLayerNormalization (the three
lookups, their sum and the norm), MultiHeadAttention (the attention products, mask and softmax
over projected queries, keys and values: the projections stay MatMuls, which the int8
quantizer takes per channel; ORT's Attention op would instead run them as one small GEMM per
head, 26 columns wide at TinyBERT-4's head size), SkipLayerNormalization (bias, residual and
norm) and BiasGelu (FastGelu for `gelu_tanh`). Such a file needs a runtime that knows these
operators (ONNX Runtime; OpenVINO 2026.4 read it too when tried); the default graph is
standard ONNX.

Inputs `input_ids`, `segment_ids`, `input_mask` (int32, [batch, sequence]); output `logits`
([batch, labels] for classification and regression, [batch, sequence, labels] for NER).
The graph follows tinybert_model's modeling.py step by step (post-norm layers, mask penalty
-10000) and gives its logits within 1e-4 of the largest (tests/test_export.py). Every weight
is found by its cell's name in tinybert_model's one table of tensor names
(`tensor_names("query", ...)`).
"""

from __future__ import annotations

import json
import math

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from tinybert_core import MASK_PENALTY
from tinybert_core import TEXT_COLUMNS as INPUTS
from tinybert_model import tensor_names

OPSET = 17  # LayerNormalization is a single op from opset 17
ORT_DOMAIN = "com.microsoft"  # ONNX Runtime's contrib (fused) operators


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
        self.initializers.append(
            numpy_helper.from_array(self._tensor(name, transpose, scale), name)
        )
        return name

    def _tensor(self, name: str, transpose: bool = False, scale: float = 1.0) -> np.ndarray:
        value = np.asarray(self.tensors[name], dtype=np.float32)
        return np.ascontiguousarray(value.T if transpose else value) * np.float32(scale)

    def constant(self, value, dtype=np.float32) -> str:
        self.count += 1
        name = f"const_{self.count}"
        self.initializers.append(numpy_helper.from_array(np.asarray(value, dtype), name))
        return name

    def op(self, op_type: str, *inputs: str, domain: str = "", outputs: int = 1, **attributes):
        """Adds a node; returns its output's name (`outputs` > 1: the first; the others are
        written but read by nothing)."""
        self.count += 1
        output = f"{op_type.lower()}_{self.count}"
        names = [output] + [f"{output}_{index}" for index in range(1, outputs)]
        self.nodes.append(
            helper.make_node(op_type, list(inputs), names, domain=domain or None, **attributes)
        )
        return output

    def fused(self, op_type: str, *inputs: str, **attributes) -> str:
        """One of ONNX Runtime's fused operators."""
        return self.op(op_type, *inputs, domain=ORT_DOMAIN, **attributes)

    def embedding(self, cell: str, ids: str) -> str:
        (table,) = self.names(cell)
        return self.op("Gather", self.weight(table), ids)

    def projection(self, x: str, cell: str, layer: int | None = None, scale: float = 1.0):
        """(x @ W, the bias's initializer name): for the fused ops that add the bias."""
        weight, bias = self.names(cell, layer)
        weight = self.weight(weight, transpose=True, scale=scale)
        return self.op("MatMul", x, weight), self.weight(bias, scale=scale)

    def dense(self, x: str, cell: str, layer: int | None = None, scale: float = 1.0) -> str:
        """x @ W + b; on a 2-D x, ORT fuses the two into one Gemm."""
        return self.op("Add", *self.projection(x, cell, layer, scale))

    def dense_side_by_side(self, x: str, cells: dict, layer: int) -> str:
        """x @ [W_1 | W_2 ...] + [b_1 | b_2 ...]: the Dense cells of `cells` (cell -> scale of
        its output) on the same rows as one product, their outputs side by side: one larger
        matrix product, and for int8 one quantization of x instead of one per cell."""
        named = [(self.names(cell, layer), scale) for cell, scale in cells.items()]
        weight = np.concatenate([self._tensor(w, True, scale) for (w, _), scale in named], axis=1)
        bias = np.concatenate([self._tensor(b, scale=scale) for (_, b), scale in named])
        weight_name, bias_name = ("+".join(names[i] for names, _ in named) for i in (0, 1))
        self.initializers.append(numpy_helper.from_array(weight, weight_name))
        self.initializers.append(numpy_helper.from_array(bias, bias_name))
        return self.op("Add", self.op("MatMul", x, weight_name), bias_name)

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


class TokenRows:
    """Which cells of the [batch, sequence] grid the token matrix holds, and the way between
    the two: every cell in order (`packed=False`), or the real tokens alone (see the module's
    docstring)."""

    def __init__(
        self, g: GraphBuilder, mask: str, batch: str, sequence: str, positions: str, packed: bool
    ):
        self.g, self.mask, self.batch, self.sequence, self.packed = g, mask, batch, sequence, packed
        if not packed:  # written when the first head layout asks for them (`_every_cell`)
            self.kept = self.grid_rows = None
            return
        # real tokens, [CLS] always among them: [batch * sequence] booleans
        first = g.op("Equal", positions, g.constant(0, np.int64))
        real = g.op("Or", g.op("Cast", mask, to=TensorProto.BOOL), first)
        real = g.op("Reshape", real, g.constant([-1], np.int64))
        self.kept = g.op("Reshape", g.op("NonZero", real), g.constant([-1], np.int64))
        # for each grid cell, its row in the token matrix (a padded cell: the real one before it)
        counted = g.op("CumSum", g.op("Cast", real, to=TensorProto.INT64), g.constant(0, np.int64))
        self.grid_rows = g.op(
            "Max", g.op("Sub", counted, g.constant(1, np.int64)), g.constant(0, np.int64)
        )

    def _every_cell(self) -> None:
        """Unpacked, token row i is grid cell i: `kept` and `grid_rows` are both 0 .. cells-1."""
        if self.kept is None:
            g = self.g
            cells = g.op("Size", self.mask)
            self.kept = self.grid_rows = g.op(
                "Range", g.constant(0, np.int64), cells, g.constant(1, np.int64)
            )

    def from_grid(self, x: str) -> str:
        """[batch * sequence, width] -> the token matrix."""
        return self.g.op("Gather", x, self.kept, axis=0) if self.packed else x

    def to_grid(self, x: str) -> str:
        """The token matrix -> [batch * sequence, width]."""
        return self.g.op("Gather", x, self.grid_rows, axis=0) if self.packed else x

    def first_tokens(self, x: str, width: int) -> str:
        """The [CLS] rows of the token matrix, [batch, width]."""
        g = self.g
        if self.packed:
            per_row = g.op(
                "Reshape",
                self.grid_rows,
                g.op("Concat", self.batch, g.constant([-1], np.int64), axis=0),
            )
            return g.op("Gather", x, g.op("Gather", per_row, g.constant(0, np.int64), axis=1))
        grid = g.op(
            "Reshape", x, g.op("Concat", self.batch, g.constant([-1, width], np.int64), axis=0)
        )
        return g.op("Gather", grid, g.constant(0, np.int64), axis=1)

    def heads_of_cells(self, heads: int, projections: int) -> list:
        """For a token matrix of `projections` side by side, `heads` heads each, viewed as
        [tokens * projections * heads, head_size]: per projection, the [batch, heads, sequence]
        indices of its heads in grid order (head h of projection p at grid cell (b, s) is row
        grid_rows[b, s] * projections * heads + p * heads + h). One Gather with them lays a
        projection's heads out as the attention products take them, [batch, heads, sequence,
        head_size]: no Transpose, no grid of whole rows first."""
        g = self.g
        self._every_cell()
        cells = g.op(
            "Reshape",
            self.grid_rows,
            g.op("Concat", self.batch, g.constant([1, -1], np.int64), axis=0),
        )
        first = g.op("Mul", cells, g.constant(projections * heads, np.int64))
        head = np.arange(heads).reshape(1, heads, 1)
        return [
            g.op("Add", first, g.constant(head + p * heads, np.int64)) for p in range(projections)
        ]

    def cells_of_heads(self, heads: int) -> str:
        """[tokens, heads] indices into [batch, heads, sequence, head_size] viewed as
        [batch * heads * sequence, head_size]: head h of the token in grid cell
        c = b * sequence + s is row (b * heads + h) * sequence + s."""
        g = self.g
        self._every_cell()
        row = g.op("Div", self.kept, self.sequence)
        position = g.op("Sub", self.kept, g.op("Mul", row, self.sequence))
        head_stride = g.op("Mul", self.sequence, g.constant(heads, np.int64))
        first = g.op("Add", g.op("Mul", row, head_stride), position)
        head = g.op("Mul", g.constant(np.arange(heads).reshape(1, heads), np.int64), self.sequence)
        return g.op("Add", g.op("Unsqueeze", first, g.constant([1], np.int64)), head)


ACTIVATIONS = {"gelu": "gelu", "gelu_tanh": "gelu_tanh", "relu": "relu"}  # GraphBuilder methods


class _EncoderWriter:
    """Writes the encoder's layers into `g`, in standard or ONNX Runtime's fused operators."""

    def __init__(self, g: GraphBuilder, config, rows: TokenRows, fused: bool):
        self.g, self.config, self.rows, self.fused = g, config, rows, fused
        self.epsilon = float(config.layer_norm_eps)
        self.width = config.hidden_size
        self.heads = config.num_attention_heads
        self.head_size = self.width // self.heads
        batch = rows.batch
        if fused:  # MultiHeadAttention takes [batch, sequence, hidden]
            self.grid_3d = g.op("Concat", batch, g.constant([-1, self.width], np.int64), axis=0)
            return
        self.indices = {}  # the gathers' indices, shared by every layer
        # a [CLS] query as [b, heads, 1, d], the same memory as [b, 1, heads, d]: no Transpose
        self.cls_heads = g.op(
            "Concat", batch, g.constant([self.heads, 1, self.head_size], np.int64), axis=0
        )
        # [b, 1, 1, s]: 0 at real keys, -10000 at padding
        mask = g.op("Cast", rows.mask, to=TensorProto.FLOAT)
        bias = g.op("Mul", g.op("Sub", g.constant(1.0), mask), g.constant(MASK_PENALTY))
        self.mask_bias = g.op("Unsqueeze", bias, g.constant([1, 2], np.int64))

    def layer(self, hidden: str, layer: int, first_token_only: bool) -> str:
        """One post-norm transformer layer over the token matrix `hidden`; with
        `first_token_only` it returns the [CLS] rows alone, [batch, hidden]."""
        query_rows = self.rows.first_tokens(hidden, self.width) if first_token_only else hidden
        if self.fused:
            context = self.fused_attention(hidden, query_rows, layer, first_token_only)
        else:
            context = self.attention(hidden, query_rows, layer, first_token_only)
        attended = self.add_norm(context, "attention_output", query_rows, "attention_norm", layer)
        inner = self.intermediate(attended, layer)
        return self.add_norm(inner, "output", attended, "output_norm", layer)

    def attention(self, hidden: str, query_rows: str, layer: int, first_token_only: bool) -> str:
        """softmax(query · keyᵀ + mask penalty) · value (the scale is in the query weights):
        the context, one row per query row.

        The projections of the token rows are one matrix product, queries, keys and values side
        by side; each is gathered from it, head by head, straight into the [batch, heads,
        sequence, head_size] grid the products take (a padded cell takes the heads of the real
        token before it: its key is masked by the penalty, its query's output is never read),
        and the context is gathered back into token rows the same way. Against reshaping,
        transposing and gathering whole rows that is half the passes over the activations."""
        g = self.g
        scale = 1.0 / math.sqrt(self.head_size)
        if first_token_only:  # [b, hidden] is [b, heads, 1, d]: no Transpose
            query = g.op("Reshape", g.dense(query_rows, "query", layer, scale), self.cls_heads)
            cells = {"key": 1.0, "value": 1.0}
        else:
            cells = {"query": scale, "key": 1.0, "value": 1.0}
        projected = g.dense_side_by_side(hidden, cells, layer)
        head_rows = g.op("Reshape", projected, g.constant([-1, self.head_size], np.int64))
        grid = {
            cell: g.op("Gather", head_rows, indices, axis=0)
            for cell, indices in zip(cells, self._heads_of_cells(len(cells)))
        }
        query = query if first_token_only else grid["query"]
        # ONNX Runtime turns Transpose + MatMul into one FusedMatMul (transB)
        keys = g.op("Transpose", grid["key"], perm=[0, 1, 3, 2])
        scores = g.op("MatMul", query, keys)
        probabilities = g.op("Softmax", g.op("Add", scores, self.mask_bias), axis=-1)
        context = g.op("MatMul", probabilities, grid["value"])
        if first_token_only:  # [b, heads, 1, d] is [b, hidden] already
            return g.op("Reshape", context, g.constant([-1, self.width], np.int64))
        context_rows = g.op("Reshape", context, g.constant([-1, self.head_size], np.int64))
        tokens = g.op("Gather", context_rows, self._cells_of_heads(), axis=0)
        return g.op("Reshape", tokens, g.constant([-1, self.width], np.int64))

    def _heads_of_cells(self, projections: int) -> list:
        """`TokenRows.heads_of_cells`, written once and shared by every layer."""
        if projections not in self.indices:
            self.indices[projections] = self.rows.heads_of_cells(self.heads, projections)
        return self.indices[projections]

    def _cells_of_heads(self) -> str:
        if "cells of heads" not in self.indices:
            self.indices["cells of heads"] = self.rows.cells_of_heads(self.heads)
        return self.indices["cells of heads"]

    def fused_attention(
        self, hidden: str, query_rows: str, layer: int, first_token_only: bool
    ) -> str:
        """`attention` as ONNX Runtime's MultiHeadAttention over projections of their own."""
        g, rows = self.g, self.rows
        query = g.dense(query_rows, "query", layer, 1.0 / math.sqrt(self.head_size))
        key, value = g.dense(hidden, "key", layer), g.dense(hidden, "value", layer)
        key, value = rows.to_grid(key), rows.to_grid(value)
        if not first_token_only:
            query = rows.to_grid(query)
        query_3d = g.constant([-1, 1, self.width], np.int64) if first_token_only else self.grid_3d
        context = g.fused(
            "MultiHeadAttention",
            g.op("Reshape", query, query_3d),
            g.op("Reshape", key, self.grid_3d),
            g.op("Reshape", value, self.grid_3d),
            "",  # no bias: the projections added theirs
            rows.mask,
            num_heads=self.heads,
            scale=1.0,
            mask_filter_value=MASK_PENALTY,
        )
        context = g.op("Reshape", context, g.constant([-1, self.width], np.int64))
        return context if first_token_only else rows.from_grid(context)

    def add_norm(self, x: str, cell: str, residual: str, norm: str, layer: int) -> str:
        """LayerNorm(x · W + b + residual)."""
        g = self.g
        if self.fused:
            product, bias = g.projection(x, cell, layer)
            gamma, beta = (g.weight(name) for name in g.names(norm, layer))
            return g.fused(
                "SkipLayerNormalization", product, residual, gamma, beta, bias, epsilon=self.epsilon
            )
        added = g.op("Add", g.dense(x, cell, layer), residual)
        return g.layer_norm(added, norm, self.epsilon, layer)

    def intermediate(self, x: str, layer: int) -> str:
        """The feed-forward block's first projection and activation."""
        g, activation = self.g, self.config.hidden_act
        fused_activation = {"gelu": "BiasGelu", "gelu_tanh": "FastGelu"}.get(activation)
        if self.fused and fused_activation:
            return g.fused(fused_activation, *g.projection(x, "intermediate", layer))
        return getattr(g, ACTIVATIONS[activation])(g.dense(x, "intermediate", layer))


def cut_trailing_padding(g: GraphBuilder) -> dict:
    """The three inputs cut after the batch's last real token ([CLS], position 0, counts as
    real): a batch padded beyond its longest row, as fixed-length pipelines pad to
    seq_length, costs no work for the positions no row reaches (the attention products grow
    with the square of the length)."""
    sequence = g.op("Gather", g.op("Shape", "input_mask"), g.constant(1, np.int64), axis=0)
    one = g.constant(1, np.int64)
    reach = g.op(  # [b, s]: position + 1 at real tokens, 0 at padding
        "Mul",
        g.op("Cast", "input_mask", to=TensorProto.INT64),
        g.op("Range", one, g.op("Add", sequence, one), one),
    )
    length = g.op("Max", g.op("ReduceMax", reach, keepdims=0), one)
    ends = g.op("Unsqueeze", length, g.constant([0], np.int64))
    starts, axes = g.constant([0], np.int64), g.constant([1], np.int64)
    return {name: g.op("Slice", name, starts, ends, axes) for name in INPUTS}


def build_graph(
    tensors: dict,
    config,
    architecture: str,
    metadata: dict,
    fused: bool = False,
    remove_padding: bool = True,
) -> onnx.ModelProto:
    """The ONNX model of a `BertForSequenceClassification` / `BertForTokenClassification`
    checkpoint (`tensors`: tinybert_model names -> numpy arrays, `config`: its BertConfig).

    `fused`: ONNX Runtime's fused operators instead of standard ones; `remove_padding`: a
    sequence classifier computes its real tokens alone (a tagger always computes every
    position: it outputs them). The metadata gets a `graph` entry saying which of these the
    graph does."""
    if architecture not in ("BertForSequenceClassification", "BertForTokenClassification"):
        raise ValueError(
            f"only task models can be exported (this checkpoint holds a {architecture})"
        )
    if config.hidden_act not in ACTIVATIONS:
        raise ValueError(f"hidden_act {config.hidden_act!r} has no ONNX form here")
    classifier = architecture == "BertForSequenceClassification"
    g = GraphBuilder(tensors, architecture)
    hidden_size = config.hidden_size

    columns = dict(zip(INPUTS, INPUTS))  # what the layers read: the inputs, or cut
    if classifier and remove_padding:
        columns = cut_trailing_padding(g)
    input_ids, segment_ids, input_mask = (columns[name] for name in INPUTS)

    # sizes read from the input, so that both axes stay dynamic
    shape = g.op("Shape", input_ids)
    batch = g.op("Slice", shape, g.constant([0], np.int64), g.constant([1], np.int64))
    sequence = positions = None
    if not fused or (classifier and remove_padding):
        sequence = g.op("Gather", shape, g.constant(1, np.int64), axis=0)
        positions = g.op("Range", g.constant(0, np.int64), sequence, g.constant(1, np.int64))
    rows = TokenRows(g, input_mask, batch, sequence, positions, classifier and remove_padding)

    # embeddings: word + position (0 .. sequence-1) + segment, normalized, as token rows
    if fused:
        tables = [g.names(cell)[0] for cell in ("word_embeddings", "position_embeddings")]
        tables.append(g.names("token_type_embeddings")[0])
        norm = g.names("embeddings_norm")
        embedded = g.fused(
            "EmbedLayerNormalization",
            input_ids,
            segment_ids,
            *(g.weight(name) for name in (*tables, *norm)),
            epsilon=float(config.layer_norm_eps),
            outputs=2,  # the second, a mask index, is read by nothing
        )
        grid = g.op("Reshape", embedded, g.constant([-1, hidden_size], np.int64))
    else:
        embedded = g.op(
            "Add",
            g.op(
                "Add",
                g.embedding("word_embeddings", input_ids),
                g.embedding("position_embeddings", positions),
            ),
            g.embedding("token_type_embeddings", segment_ids),
        )
        tokens = g.op("Reshape", embedded, g.constant([-1, hidden_size], np.int64))
        grid = g.layer_norm(tokens, "embeddings_norm", float(config.layer_norm_eps))
    hidden = rows.from_grid(grid)

    encoder = _EncoderWriter(g, config, rows, fused)
    for layer in range(config.num_hidden_layers):
        last = layer == config.num_hidden_layers - 1
        hidden = encoder.layer(hidden, layer, first_token_only=classifier and last)

    if classifier:  # `hidden` holds the [CLS] rows: the pooler's input
        logits = g.dense(g.op("Tanh", g.dense(hidden, "pooler")), "classifier")
        logits_shape = ["batch", config.num_labels]
    else:
        labels_shape = g.op("Concat", batch, g.constant([-1, config.num_labels], np.int64), axis=0)
        logits = g.op("Reshape", g.dense(hidden, "classifier"), labels_shape)
        logits_shape = ["batch", "sequence", config.num_labels]
    g.nodes.append(helper.make_node("Identity", [logits], ["logits"]))

    inputs = [
        helper.make_tensor_value_info(n, TensorProto.INT32, ["batch", "sequence"]) for n in INPUTS
    ]
    outputs = [helper.make_tensor_value_info("logits", TensorProto.FLOAT, logits_shape)]
    graph = helper.make_graph(g.nodes, "tinybert", inputs, outputs, g.initializers)
    opsets = [helper.make_opsetid("", OPSET)]
    if fused:
        opsets.append(helper.make_opsetid(ORT_DOMAIN, 1))
    model = helper.make_model(graph, opset_imports=opsets, producer_name="tinybert-deploy")
    model.ir_version = 8  # readable by onnxruntime 1.16 and later
    description = {
        "first_token_only": classifier,
        "remove_padding": rows.packed,
        "fused_ops": sorted({n.op_type for n in g.nodes if n.domain == ORT_DOMAIN}),
    }
    metadata = {**metadata, "graph": json.dumps(description)}
    helper.set_model_props(model, {key: str(value) for key, value in metadata.items()})
    onnx.checker.check_model(model)
    return model
