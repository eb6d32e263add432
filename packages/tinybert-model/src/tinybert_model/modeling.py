"""BERT and TinyBERT in MindSpore: the whole forward pass in one file.

Read it top to bottom: embeddings, one transformer layer (self-attention, then the feed
forward block), the encoder, the pooler, then the task heads and the TinyBERT student.

Every model takes `(input_ids, segment_ids, input_mask)`, each [batch, seq] integers, in
that order. `BertModel` returns `(sequence_output, pooled_output, hidden_states,
attention_scores)`; the heads return `(logits, hidden_states, attention_scores)`, so a
distiller can always find the hidden states and attention scores at positions -2 and -1:

- `hidden_states`: the embedding output, then the output of each layer: num_layers + 1
  tensors of [batch, seq, hidden];
- `attention_scores`: one [batch, heads, seq, seq] tensor per layer, scaled and with the
  mask added, before the softmax: what TinyBERT's attention loss compares.

No op depends on the batch or sequence size (position ids come from a cumulative sum, the
[CLS] vector from a gather), so exported graphs keep both axes dynamic.
"""

from __future__ import annotations

import math

import mindspore as ms
from mindspore import nn, ops
from mindspore.common.initializer import TruncatedNormal

from tinybert_core import MASK_PENALTY  # added to attention scores at padded keys

from .config import BertConfig


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

    def construct(self, rows, seq_length, attention_bias):
        query = self.split_heads(self.query(rows), seq_length)
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

    def construct(self, hidden, attention_bias):
        seq_length, width = hidden.shape[1], hidden.shape[2]
        rows = ops.reshape(hidden, (-1, width))
        attended, scores = self.attention(rows, seq_length, attention_bias)
        rows = self.attention_norm(rows + _float32(self.dropout(attended)))
        feed_forward = self.output(self.activation(self.intermediate(rows)))
        rows = self.output_norm(rows + _float32(self.dropout(feed_forward)))
        return ops.reshape(rows, (-1, seq_length, width)), scores


class BertModel(nn.Cell):
    """The BERT encoder: embeddings, `num_hidden_layers` layers and the pooler.

    Returns `(sequence_output, pooled_output, hidden_states, attention_scores)`.
    """

    def __init__(self, config: BertConfig):
        super().__init__()
        self.config = config
        self.embeddings = BertEmbeddings(config)
        self.layers = nn.CellList([BertLayer(config) for _ in range(config.num_hidden_layers)])
        self.pooler = _dense(config, config.hidden_size, config.hidden_size)

    def construct(self, input_ids, segment_ids, input_mask):
        input_ids = ops.cast(input_ids, ms.int32)
        segment_ids = ops.cast(segment_ids, ms.int32)
        # [batch, 1, 1, seq]: 0 where a key position is real, MASK_PENALTY where it is padding.
        attention_bias = (1.0 - ops.cast(input_mask, ms.float32)) * MASK_PENALTY
        attention_bias = ops.expand_dims(ops.expand_dims(attention_bias, 1), 1)

        hidden = self.embeddings(input_ids, segment_ids)
        hidden_states = (hidden,)
        attention_scores = ()
        for layer in self.layers:
            hidden, scores = layer(hidden, attention_bias)
            hidden_states += (hidden,)
            attention_scores += (scores,)

        # The pooler reads the [CLS] vector (position 0).
        first_token = ops.gather(hidden, ms.Tensor(0, ms.int32), 1)
        pooled_output = _float32(ops.tanh(self.pooler(first_token)))
        return hidden, pooled_output, hidden_states, attention_scores


class BertForSequenceClassification(nn.Cell):
    """Classification (or, with `task_type="regression"` and one label, regression) on [CLS].

    Returns `(logits [batch, num_labels], hidden_states, attention_scores)`.
    """

    def __init__(self, config: BertConfig):
        super().__init__()
        if not config.num_labels:
            raise ValueError("BertForSequenceClassification needs config.labels")
        self.config = config
        self.bert = BertModel(config)
        self.dropout = nn.Dropout(p=config.hidden_dropout_prob)
        self.classifier = _dense(config, config.hidden_size, config.num_labels)

    def construct(self, input_ids, segment_ids, input_mask):
        _, pooled_output, hidden_states, attention_scores = self.bert(
            input_ids, segment_ids, input_mask
        )
        logits = _float32(self.classifier(self.dropout(pooled_output)))
        return logits, hidden_states, attention_scores


class BertForTokenClassification(nn.Cell):
    """Tagging (NER): one label per token.

    Returns `(logits [batch, seq, num_labels], hidden_states, attention_scores)`.
    """

    def __init__(self, config: BertConfig):
        super().__init__()
        if not config.num_labels:
            raise ValueError("BertForTokenClassification needs config.labels")
        self.config = config
        self.bert = BertModel(config)
        self.dropout = nn.Dropout(p=config.hidden_dropout_prob)
        self.classifier = _dense(config, config.hidden_size, config.num_labels)

    def construct(self, input_ids, segment_ids, input_mask):
        sequence_output, _, hidden_states, attention_scores = self.bert(
            input_ids, segment_ids, input_mask
        )
        logits = _float32(self.classifier(self.dropout(sequence_output)))
        return logits, hidden_states, attention_scores


class BertForPreTraining(nn.Cell):
    """BERT with its pre-training heads, so Google's checkpoints load whole.

    The masked-LM decoder shares the word embedding matrix. Returns `(prediction_logits
    [batch, seq, vocab], seq_relationship_logits [batch, 2], hidden_states, attention_scores)`.
    """

    def __init__(self, config: BertConfig):
        super().__init__()
        self.config = config
        self.bert = BertModel(config)
        self.mlm_dense = _dense(config, config.hidden_size, config.hidden_size)
        self.mlm_activation = ACTIVATION_FUNCTIONS[config.hidden_act]
        self.mlm_norm = _layer_norm(config, config.hidden_size)
        self.mlm_bias = ms.Parameter(ops.zeros(config.vocab_size, ms.float32), name="mlm_bias")
        self.nsp = _dense(config, config.hidden_size, 2)

    def construct(self, input_ids, segment_ids, input_mask):
        sequence_output, pooled_output, hidden_states, attention_scores = self.bert(
            input_ids, segment_ids, input_mask
        )
        transformed = self.mlm_norm(_float32(self.mlm_activation(self.mlm_dense(sequence_output))))
        word_embeddings = self.bert.embeddings.word_embeddings.embedding_table
        prediction_logits = ops.matmul(transformed, word_embeddings.T) + self.mlm_bias
        seq_relationship_logits = _float32(self.nsp(pooled_output))
        return prediction_logits, seq_relationship_logits, hidden_states, attention_scores


class TinyBertStudent(nn.Cell):
    """A student for TinyBERT distillation: any model above plus `fit_dense`.

    `fit_dense` maps the student's hidden size to the teacher's, so the hidden-state loss
    can compare them; it is trained with the student and saved in its checkpoints (general
    distillation's `fit_dense` is reused by task distillation). Its checkpoints hold the
    wrapped model's tensors under their own names plus `fit_dense.*`, so a student
    checkpoint loads straight into the plain model (see `load_checkpoint`).

    Returns `(model_output_0, fitted_hidden_states, attention_scores)`: the wrapped model's
    first output (logits for a head, sequence_output for BertModel), its hidden states
    mapped to the teacher's size, and its attention scores.
    """

    def __init__(self, model: nn.Cell, teacher_hidden_size: int):
        super().__init__()
        self.model = model
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
}


def architecture_for(config: BertConfig) -> str:
    """The head class a config describes: NER tags, classification labels, or none."""
    if not config.labels:
        return "BertModel"
    if config.task_type == "ner":
        return "BertForTokenClassification"
    return "BertForSequenceClassification"
