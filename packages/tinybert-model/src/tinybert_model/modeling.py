"""BERT and TinyBERT in MindSpore: the whole forward pass in one file.

Read it top to bottom: the named outputs, embeddings, one transformer layer (self-attention,
then the feed forward block), the encoder with its pooler, then the task heads and the
TinyBERT student.

Every model takes `(input_ids, segment_ids, input_mask)`, each [batch, seq] integers, in
that order, and returns a NamedTuple: `BertOutput(sequence_output, pooled_output,
hidden_states, attention_scores)` from `BertModel`, `ClassifierOutput(logits, hidden_states,
attention_scores)` from both task heads, `PreTrainingOutput(...)` from the pre-training
model, `MaskedLMOutput(prediction_logits, hidden_states, attention_scores)` from the
masked-LM. Fields read by name (`outputs.logits`) or by position, as tuples always were:

- `hidden_states`: the embedding output, then the output of each layer: num_layers + 1
  tensors of [batch, seq, hidden];
- `attention_scores`: one [batch, heads, seq, seq] tensor per layer, scaled and with the
  mask added, before the softmax: what TinyBERT's attention loss compares.

Both are returned only when the model is built with `output_hidden_states=True` /
`output_attentions=True` (distillation asks; inference and export do not); otherwise the
field is an empty tuple and the graph keeps no per-layer tensor alive. MindSpore compiles a
cell with the attribute values it has on its first call, so these are constructor
arguments, not per-call switches.

Inside a compiled graph the outputs are plain tuples in the same order: `construct` returns
a tuple and the model's `__call__` gives it its names (`_NamedOutputs`). A NamedTuple built
inside a MindSpore 2.10 graph is not compiled but interpreted (JIT Fallback; the STRICT
syntax level refuses it), and a field of one that a sub-cell returned loses its shape, so
that passing it on to nn.Dense fails ("'int' object has no attribute '__len__'"). A loss
cell's `construct` therefore reads a model's outputs by position (0, -2, -1) or unpacks them;
Python code, in either mode, reads them by name.

No op depends on the batch or sequence size (position ids come from a cumulative sum, the
[CLS] vector from a gather), so exported graphs keep both axes dynamic.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import mindspore as ms
from mindspore import nn, ops
from mindspore.common.initializer import TruncatedNormal

from tinybert_core import MASK_PENALTY  # added to attention scores at padded keys

from .config import BertConfig


# The outputs. Field order is the order of the tuples returned before they had names, so
# positional callers (outputs[0], outputs[-1]) keep working.
class BertOutput(NamedTuple):
    sequence_output: ms.Tensor  # [batch, seq, hidden]
    pooled_output: ms.Tensor  # [batch, hidden]: tanh(dense([CLS])); None without a pooler
    hidden_states: tuple  # () unless output_hidden_states
    attention_scores: tuple  # () unless output_attentions


class ClassifierOutput(NamedTuple):
    logits: ms.Tensor  # [batch, labels], or [batch, seq, labels] for tagging
    hidden_states: tuple
    attention_scores: tuple


class PreTrainingOutput(NamedTuple):
    prediction_logits: ms.Tensor  # masked LM, [batch, seq, vocab]
    seq_relationship_logits: ms.Tensor  # next sentence, [batch, 2]
    hidden_states: tuple
    attention_scores: tuple


class MaskedLMOutput(NamedTuple):
    prediction_logits: ms.Tensor  # masked LM, [batch, seq, vocab]
    hidden_states: tuple
    attention_scores: tuple


class StudentOutput(NamedTuple):
    """A TinyBertStudent around a BertModel: BertOutput without the pooled output, so that
    every student has its hidden states and attention scores at positions 1 and 2."""

    sequence_output: ms.Tensor
    hidden_states: tuple  # mapped by fit_dense to the teacher's hidden size
    attention_scores: tuple


class _NamedOutputs:
    """Gives the tuple `construct` returns its names when Python calls the model.

    Calls from inside a graph compile the sub-cell's `construct` and never run `__call__`:
    they get the plain tuple, which MindSpore compiles (see the module docstring). Each model
    names its NamedTuple in `output_type`.
    """

    def __call__(self, *args, **kwargs):
        return self.output_type(*super().__call__(*args, **kwargs))


def gelu(x):
    """Exact GELU, x * Phi(x) with the error function (BERT's and HF's default)."""
    return ops.gelu(x, approximate="none")


def gelu_tanh(x):
    """GELU's tanh approximation (Google's original TF code, HF's gelu_new)."""
    return ops.gelu(x, approximate="tanh")


# Plain functions, not lambdas: MindSpore's graph compiler parses their source.
ACTIVATION_FUNCTIONS = {"gelu": gelu, "gelu_tanh": gelu_tanh, "relu": ops.relu}


def _dense(config: BertConfig, in_size: int, out_size: int) -> nn.Dense:
    """A dense layer, initialised like BERT's, in the configured compute type."""
    dense = nn.Dense(in_size, out_size, weight_init=TruncatedNormal(config.initializer_range))
    if config.compute_type == "float16":
        dense.to_float(ms.float16)
    return dense


def _layer_norm(config: BertConfig, size: int) -> nn.LayerNorm:
    return nn.LayerNorm((size,), epsilon=config.layer_norm_eps)


def _float32(x):
    return ops.cast(x, ms.float32)


class BertEmbeddings(nn.Cell):
    """Word + position + segment embeddings, then LayerNorm and dropout."""

    def __init__(self, config: BertConfig):
        super().__init__()
        init = TruncatedNormal(config.initializer_range)
        self.word_embeddings = nn.Embedding(
            config.vocab_size, config.hidden_size, embedding_table=init
        )
        self.position_embeddings = nn.Embedding(
            config.max_position_embeddings, config.hidden_size, embedding_table=init
        )
        self.token_type_embeddings = nn.Embedding(
            config.type_vocab_size, config.hidden_size, embedding_table=init
        )
        self.layer_norm = _layer_norm(config, config.hidden_size)
        self.dropout = nn.Dropout(p=config.hidden_dropout_prob)

    def construct(self, input_ids, segment_ids):
        # 0, 1, 2, ... along each row, without reading the sequence length from a shape.
        position_ids = ops.cumsum(ops.ones_like(input_ids), 1) - 1
        embeddings = (
            self.word_embeddings(input_ids)
            + self.position_embeddings(position_ids)
            + self.token_type_embeddings(segment_ids)
        )
        return self.dropout(self.layer_norm(embeddings))


class BertSelfAttention(nn.Cell):
    """Multi-head self-attention and its output projection (residual and norm are the layer's).

    Works on token rows, [batch * seq, hidden]: every dense layer then is one 2-D matmul
    (MindSpore's Dense reshapes a 3-D input to 2-D and back on every call, and on CPU those
    copies cost as much as the matmul). Only the score and context products see
    [batch, heads, seq, head_size].
    """

    def __init__(self, config: BertConfig):
        super().__init__()
        self.num_heads = config.num_attention_heads
        self.head_size = config.hidden_size // config.num_attention_heads
        self.scale = 1.0 / math.sqrt(self.head_size)
        self.query = _dense(config, config.hidden_size, config.hidden_size)
        self.key = _dense(config, config.hidden_size, config.hidden_size)
        self.value = _dense(config, config.hidden_size, config.hidden_size)
        self.dense = _dense(config, config.hidden_size, config.hidden_size)
        self.dropout = nn.Dropout(p=config.attention_probs_dropout_prob)

    def split_heads(self, rows, seq_length):
        """[batch * seq, hidden] -> [batch, heads, seq, head_size]"""
        x = ops.reshape(rows, (-1, seq_length, self.num_heads, self.head_size))
        return ops.transpose(x, (0, 2, 1, 3))

    def construct(self, query_rows, rows, query_length, seq_length, attention_bias):
        """Attention of `query_rows` ([batch * query_length, hidden]) over every token of
        `rows` ([batch * seq, hidden]); the two are the same rows but in a first-token-only
        layer (BertLayer)."""
        query = self.split_heads(self.query(query_rows), query_length)
        key = self.split_heads(self.key(rows), seq_length)
        value = self.split_heads(self.value(rows), seq_length)
        scores = _float32(ops.matmul(query, ops.transpose(key, (0, 1, 3, 2)))) * self.scale
        scores = scores + attention_bias
        probabilities = self.dropout(ops.softmax(scores, axis=-1))
        context = ops.matmul(ops.cast(probabilities, value.dtype), value)
        context = ops.transpose(context, (0, 2, 1, 3))
        context = ops.reshape(context, (-1, self.num_heads * self.head_size))
        return self.dense(context), scores


class BertLayer(nn.Cell):
    """One transformer layer: attention block, then feed-forward block, each post-norm.

    Takes and returns [batch, seq, hidden]; inside, the tokens are rows of one 2-D matrix.
    With `first_token_only=True` (a classifier's last layer, see BertModel) it returns
    [batch, 1, hidden]: the first token's output alone, its query attending over every token.
    """

    def __init__(self, config: BertConfig):
        super().__init__()
        self.attention = BertSelfAttention(config)
        self.attention_norm = _layer_norm(config, config.hidden_size)
        self.intermediate = _dense(config, config.hidden_size, config.intermediate_size)
        self.activation = ACTIVATION_FUNCTIONS[config.hidden_act]
        self.output = _dense(config, config.intermediate_size, config.hidden_size)
        self.output_norm = _layer_norm(config, config.hidden_size)
        self.dropout = nn.Dropout(p=config.hidden_dropout_prob)

    def construct(self, hidden, attention_bias, first_token_only=False):
        seq_length, width = hidden.shape[1], hidden.shape[2]
        rows = ops.reshape(hidden, (-1, width))
        query_rows, query_length = rows, seq_length
        if first_token_only:
            query_rows, query_length = ops.gather(hidden, ms.Tensor(0, ms.int32), 1), 1
        attended, scores = self.attention(
            query_rows, rows, query_length, seq_length, attention_bias
        )
        rows = self.attention_norm(query_rows + _float32(self.dropout(attended)))
        feed_forward = self.output(self.activation(self.intermediate(rows)))
        rows = self.output_norm(rows + _float32(self.dropout(feed_forward)))
        return ops.reshape(rows, (-1, query_length, width)), scores


class BertModel(_NamedOutputs, nn.Cell):
    """The BERT encoder: embeddings, `num_hidden_layers` layers and the pooler.

    Returns a `BertOutput`. `add_pooling_layer=False` builds it without the pooler (as
    transformers' option of that name): `pooled_output` is then None.

    A caller that reads nothing but `pooled_output` (a sequence classifier asked for its
    logits alone) calls it with `pooled_only=True`: no layer outputs are returned, and the last
    layer computes the first token alone, the numbers the whole layer gives it, so
    `sequence_output` is [batch, 1, hidden]. The pooler reads no other token; a 4-layer
    student's training step is then 1.06-1.31x faster, by length (docs/RESULTS.md, issue 13).
    """

    output_type = BertOutput

    def __init__(
        self,
        config: BertConfig,
        output_hidden_states: bool = False,
        output_attentions: bool = False,
        add_pooling_layer: bool = True,
    ):
        super().__init__()
        self.config = config
        self.output_hidden_states = output_hidden_states
        self.output_attentions = output_attentions
        self.embeddings = BertEmbeddings(config)
        self.layers = nn.CellList([BertLayer(config) for _ in range(config.num_hidden_layers)])
        self.pooler = (
            _dense(config, config.hidden_size, config.hidden_size) if add_pooling_layer else None
        )

    def construct(self, input_ids, segment_ids, input_mask, pooled_only=False):
        input_ids = ops.cast(input_ids, ms.int32)
        segment_ids = ops.cast(segment_ids, ms.int32)
        # [batch, 1, 1, seq]: 0 where a key position is real, MASK_PENALTY where it is padding.
        attention_bias = (1.0 - ops.cast(input_mask, ms.float32)) * MASK_PENALTY
        attention_bias = ops.expand_dims(ops.expand_dims(attention_bias, 1), 1)

        hidden = self.embeddings(input_ids, segment_ids)
        return_hidden_states = self.output_hidden_states and not pooled_only
        return_attentions = self.output_attentions and not pooled_only
        hidden_states = (hidden,) if return_hidden_states else ()
        attention_scores = ()
        for index, layer in enumerate(self.layers):
            last = index == len(self.layers) - 1
            hidden, scores = layer(hidden, attention_bias, pooled_only and last)
            if return_hidden_states:
                hidden_states += (hidden,)
            if return_attentions:
                attention_scores += (scores,)

        pooled_output = None
        if self.pooler is not None:
            # The pooler reads the [CLS] vector (position 0).
            first_token = ops.gather(hidden, ms.Tensor(0, ms.int32), 1)
            pooled_output = _float32(ops.tanh(self.pooler(first_token)))
        return hidden, pooled_output, hidden_states, attention_scores


class BertForSequenceClassification(_NamedOutputs, nn.Cell):
    """Classification (or, with `task_type="regression"` and one label, regression) on [CLS].

    Returns a `ClassifierOutput` with logits [batch, num_labels]. A caller that reads the
    logits alone (training on logits, prediction) passes `logits_only=True`: the layer outputs
    are then empty and the last layer computes [CLS] alone (BertModel's `pooled_only`).
    """

    output_type = ClassifierOutput

    def __init__(
        self,
        config: BertConfig,
        output_hidden_states: bool = False,
        output_attentions: bool = False,
    ):
        super().__init__()
        if not config.num_labels:
            raise ValueError("BertForSequenceClassification needs config.labels")
        self.config = config
        self.bert = BertModel(config, output_hidden_states, output_attentions)
        self.dropout = nn.Dropout(p=config.hidden_dropout_prob)
        self.classifier = _dense(config, config.hidden_size, config.num_labels)

    def construct(self, input_ids, segment_ids, input_mask, logits_only=False):
        _, pooled_output, hidden_states, attention_scores = self.bert(
            input_ids, segment_ids, input_mask, pooled_only=logits_only
        )
        logits = _float32(self.classifier(self.dropout(pooled_output)))
        return logits, hidden_states, attention_scores


class BertForTokenClassification(_NamedOutputs, nn.Cell):
    """Tagging (NER): one label per token.

    Returns a `ClassifierOutput` with logits [batch, seq, num_labels]. Every token is
    classified, [CLS] is not pooled: the encoder has no pooler (checkpoints written before
    it was dropped carry one; loading ignores it). `logits_only=True` leaves the layer outputs
    out, as BertForSequenceClassification's does; every layer still computes every token.
    """

    output_type = ClassifierOutput

    def __init__(
        self,
        config: BertConfig,
        output_hidden_states: bool = False,
        output_attentions: bool = False,
    ):
        super().__init__()
        if not config.num_labels:
            raise ValueError("BertForTokenClassification needs config.labels")
        self.config = config
        self.bert = BertModel(
            config, output_hidden_states, output_attentions, add_pooling_layer=False
        )
        self.dropout = nn.Dropout(p=config.hidden_dropout_prob)
        self.classifier = _dense(config, config.hidden_size, config.num_labels)

    def construct(self, input_ids, segment_ids, input_mask, logits_only=False):
        sequence_output, _, hidden_states, attention_scores = self.bert(
            input_ids, segment_ids, input_mask
        )
        logits = _float32(self.classifier(self.dropout(sequence_output)))
        if logits_only:  # every token is classified: only the layer outputs are left out
            return logits, (), ()
        return logits, hidden_states, attention_scores


class _MaskedLMHead:
    """The masked-LM head BertForPreTraining and BertForMaskedLM share (transformers'
    BertLMPredictionHead): dense, activation and LayerNorm, then the decoder, which is the
    word embedding matrix, plus a bias over the vocabulary.

    Its parameters sit on the model itself (`mlm_dense`, `mlm_norm`, `mlm_bias`): the names
    its checkpoints have always had.
    """

    def add_masked_lm_head(self, config: BertConfig) -> None:
        self.mlm_dense = _dense(config, config.hidden_size, config.hidden_size)
        self.mlm_activation = ACTIVATION_FUNCTIONS[config.hidden_act]
        self.mlm_norm = _layer_norm(config, config.hidden_size)
        self.mlm_bias = ms.Parameter(ops.zeros(config.vocab_size, ms.float32), name="mlm_bias")

    def masked_lm_logits(self, hidden):
        """Vocabulary logits for hidden vectors, [..., hidden] -> [..., vocab]: every token
        of a sequence output, or only the rows gathered at masked positions."""
        transformed = self.mlm_norm(_float32(self.mlm_activation(self.mlm_dense(hidden))))
        word_embeddings = self.bert.embeddings.word_embeddings.embedding_table
        return ops.matmul(transformed, word_embeddings.T) + self.mlm_bias


class BertForPreTraining(_NamedOutputs, _MaskedLMHead, nn.Cell):
    """BERT with its pre-training heads, masked-LM and next sentence, so Google's checkpoints
    load whole.

    The masked-LM decoder shares the word embedding matrix. Returns a `PreTrainingOutput`.
    """

    output_type = PreTrainingOutput

    def __init__(
        self,
        config: BertConfig,
        output_hidden_states: bool = False,
        output_attentions: bool = False,
    ):
        super().__init__()
        self.config = config
        self.bert = BertModel(config, output_hidden_states, output_attentions)
        self.add_masked_lm_head(config)
        self.nsp = _dense(config, config.hidden_size, 2)

    def construct(self, input_ids, segment_ids, input_mask):
        sequence_output, pooled_output, hidden_states, attention_scores = self.bert(
            input_ids, segment_ids, input_mask
        )
        prediction_logits = self.masked_lm_logits(sequence_output)
        seq_relationship_logits = _float32(self.nsp(pooled_output))
        return prediction_logits, seq_relationship_logits, hidden_states, attention_scores


class BertForMaskedLM(_NamedOutputs, _MaskedLMHead, nn.Cell):
    """BERT with the masked-LM head alone, as transformers' BertForMaskedLM: no pooler, no
    next-sentence head.

    The masked-LM decoder shares the word embedding matrix. Returns a `MaskedLMOutput`.
    """

    output_type = MaskedLMOutput

    def __init__(
        self,
        config: BertConfig,
        output_hidden_states: bool = False,
        output_attentions: bool = False,
    ):
        super().__init__()
        self.config = config
        self.bert = BertModel(
            config, output_hidden_states, output_attentions, add_pooling_layer=False
        )
        self.add_masked_lm_head(config)

    def construct(self, input_ids, segment_ids, input_mask):
        sequence_output, _, hidden_states, attention_scores = self.bert(
            input_ids, segment_ids, input_mask
        )
        return self.masked_lm_logits(sequence_output), hidden_states, attention_scores


def return_layer_outputs(model: nn.Cell) -> nn.Cell:
    """Make a BertModel or head return its hidden states and attention scores, as if built
    with output_hidden_states=True, output_attentions=True; returns the model.

    For a model built elsewhere (a teacher from load_model, a student) whose layers are to be
    distilled. Call it before the model's first call: MindSpore compiles a cell with the
    attribute values it has then.
    """
    encoder = model if isinstance(model, BertModel) else model.bert
    encoder.output_hidden_states = True
    encoder.output_attentions = True
    return model


class TinyBertStudent(_NamedOutputs, nn.Cell):
    """A student for TinyBERT distillation: any model above plus `fit_dense`.

    `fit_dense` maps the student's hidden size to the teacher's, so the hidden-state loss
    can compare them; it is trained with the student and saved in its checkpoints (general
    distillation's `fit_dense` is reused by task distillation). Its checkpoints hold the
    wrapped model's tensors under their own names plus `fit_dense.*`, so a student
    checkpoint loads straight into the plain model (see `load_checkpoint`).

    The student asks its model for hidden states and attention scores (`return_layer_outputs`),
    maps the hidden states to the teacher's size and returns three fields: a
    `ClassifierOutput(logits, hidden_states, attention_scores)` around a head, a
    `StudentOutput(sequence_output, hidden_states, attention_scores)` around a BertModel.
    Positions are those of the tuple it returned before the outputs had names.
    """

    def __init__(self, model: nn.Cell, teacher_hidden_size: int):
        super().__init__()
        self.output_type = StudentOutput if isinstance(model, BertModel) else ClassifierOutput
        self.model = return_layer_outputs(model)
        self.config = model.config
        self.fit_dense = _dense(model.config, model.config.hidden_size, teacher_hidden_size)

    def construct(self, input_ids, segment_ids, input_mask):
        outputs = self.model(input_ids, segment_ids, input_mask)
        fitted_hidden_states = ()
        for hidden in outputs[-2]:
            fitted_hidden_states += (_float32(self.fit_dense(hidden)),)
        return outputs[0], fitted_hidden_states, outputs[-1]


ARCHITECTURES = {
    "BertModel": BertModel,
    "BertForSequenceClassification": BertForSequenceClassification,
    "BertForTokenClassification": BertForTokenClassification,
    "BertForPreTraining": BertForPreTraining,
    "BertForMaskedLM": BertForMaskedLM,
}


def architecture_for(config: BertConfig) -> str:
    """The head class a config describes: NER tags, classification labels, or none."""
    if not config.labels:
        return "BertModel"
    if config.task_type == "ner":
        return "BertForTokenClassification"
    return "BertForSequenceClassification"
