"""Every tensor of our models, in one table: its name in each checkpoint format and its shape.

The table is keyed by the cell that owns the tensors (`"query"`, `"attention_norm"`,
`"classifier"`, ...), weight (or gamma, or embedding table) first. Each row names one tensor
in four formats: ours (the parameter's path in modeling.py's cells), Hugging Face, Google's
TF1 BERT and the MindSpore model zoo, then gives its shape as BertConfig attributes. `{i}` is
the layer index. Backbone names are relative to the BertModel (formats put it under a prefix
such as `bert.`); head names are relative to the whole model. Google stores dense kernels as
[in, out]: a TF name ending in `kernel` is transposed on the way in and out. `{w}` in zoo
names is `bert_` for the zoo's BertModel and `tinybert_` for its TinyBertModel.

What is generated from it: the converters' renaming (`name_pairs`), the shape check of every
checkpoint (`expected_shapes`), and the names the ONNX writer of tinybert-deploy reads
(`tensor_names`). A new kind of layer is a new entry here and a cell in modeling.py.
"""

from __future__ import annotations

import re
from typing import NamedTuple


class Row(NamedTuple):
    ours: str
    hf: str
    tf: str
    zoo: str
    shape: tuple  # BertConfig attribute names (or sizes), e.g. ("intermediate_size", "hidden_size")


H, FFN = "hidden_size", "intermediate_size"

BACKBONE = {
    "word_embeddings": (
        Row("embeddings.word_embeddings.embedding_table", "embeddings.word_embeddings.weight",
            "embeddings/word_embeddings", "{w}embedding_lookup.embedding_table",
            ("vocab_size", H)),
    ),
    "position_embeddings": (
        Row("embeddings.position_embeddings.embedding_table",
            "embeddings.position_embeddings.weight", "embeddings/position_embeddings",
            "{w}embedding_postprocessor.full_position_embedding.embedding_table",
            ("max_position_embeddings", H)),
    ),
    "token_type_embeddings": (
        Row("embeddings.token_type_embeddings.embedding_table",
            "embeddings.token_type_embeddings.weight", "embeddings/token_type_embeddings",
            "{w}embedding_postprocessor.token_type_embedding.embedding_table",
            ("type_vocab_size", H)),
    ),
    "embeddings_norm": (
        Row("embeddings.layer_norm.gamma", "embeddings.LayerNorm.weight",
            "embeddings/LayerNorm/gamma", "{w}embedding_postprocessor.layernorm.gamma", (H,)),
        Row("embeddings.layer_norm.beta", "embeddings.LayerNorm.bias",
            "embeddings/LayerNorm/beta", "{w}embedding_postprocessor.layernorm.beta", (H,)),
    ),
    "query": (
        Row("layers.{i}.attention.query.weight", "encoder.layer.{i}.attention.self.query.weight",
            "encoder/layer_{i}/attention/self/query/kernel",
            "{w}encoder.layers.{i}.attention.attention.query_layer.weight", (H, H)),
        Row("layers.{i}.attention.query.bias", "encoder.layer.{i}.attention.self.query.bias",
            "encoder/layer_{i}/attention/self/query/bias",
            "{w}encoder.layers.{i}.attention.attention.query_layer.bias", (H,)),
    ),
    "key": (
        Row("layers.{i}.attention.key.weight", "encoder.layer.{i}.attention.self.key.weight",
            "encoder/layer_{i}/attention/self/key/kernel",
            "{w}encoder.layers.{i}.attention.attention.key_layer.weight", (H, H)),
        Row("layers.{i}.attention.key.bias", "encoder.layer.{i}.attention.self.key.bias",
            "encoder/layer_{i}/attention/self/key/bias",
            "{w}encoder.layers.{i}.attention.attention.key_layer.bias", (H,)),
    ),
    "value": (
        Row("layers.{i}.attention.value.weight", "encoder.layer.{i}.attention.self.value.weight",
            "encoder/layer_{i}/attention/self/value/kernel",
            "{w}encoder.layers.{i}.attention.attention.value_layer.weight", (H, H)),
        Row("layers.{i}.attention.value.bias", "encoder.layer.{i}.attention.self.value.bias",
            "encoder/layer_{i}/attention/self/value/bias",
            "{w}encoder.layers.{i}.attention.attention.value_layer.bias", (H,)),
    ),
    "attention_output": (
        Row("layers.{i}.attention.dense.weight", "encoder.layer.{i}.attention.output.dense.weight",
            "encoder/layer_{i}/attention/output/dense/kernel",
            "{w}encoder.layers.{i}.attention.output.dense.weight", (H, H)),
        Row("layers.{i}.attention.dense.bias", "encoder.layer.{i}.attention.output.dense.bias",
            "encoder/layer_{i}/attention/output/dense/bias",
            "{w}encoder.layers.{i}.attention.output.dense.bias", (H,)),
    ),
    "attention_norm": (
        Row("layers.{i}.attention_norm.gamma",
            "encoder.layer.{i}.attention.output.LayerNorm.weight",
            "encoder/layer_{i}/attention/output/LayerNorm/gamma",
            "{w}encoder.layers.{i}.attention.output.layernorm.gamma", (H,)),
        Row("layers.{i}.attention_norm.beta", "encoder.layer.{i}.attention.output.LayerNorm.bias",
            "encoder/layer_{i}/attention/output/LayerNorm/beta",
            "{w}encoder.layers.{i}.attention.output.layernorm.beta", (H,)),
    ),
    "intermediate": (
        Row("layers.{i}.intermediate.weight", "encoder.layer.{i}.intermediate.dense.weight",
            "encoder/layer_{i}/intermediate/dense/kernel",
            "{w}encoder.layers.{i}.intermediate.weight", (FFN, H)),
        Row("layers.{i}.intermediate.bias", "encoder.layer.{i}.intermediate.dense.bias",
            "encoder/layer_{i}/intermediate/dense/bias",
            "{w}encoder.layers.{i}.intermediate.bias", (FFN,)),
    ),
    "output": (
        Row("layers.{i}.output.weight", "encoder.layer.{i}.output.dense.weight",
            "encoder/layer_{i}/output/dense/kernel",
            "{w}encoder.layers.{i}.output.dense.weight", (H, FFN)),
        Row("layers.{i}.output.bias", "encoder.layer.{i}.output.dense.bias",
            "encoder/layer_{i}/output/dense/bias", "{w}encoder.layers.{i}.output.dense.bias",
            (H,)),
    ),
    "output_norm": (
        Row("layers.{i}.output_norm.gamma", "encoder.layer.{i}.output.LayerNorm.weight",
            "encoder/layer_{i}/output/LayerNorm/gamma",
            "{w}encoder.layers.{i}.output.layernorm.gamma", (H,)),
        Row("layers.{i}.output_norm.beta", "encoder.layer.{i}.output.LayerNorm.bias",
            "encoder/layer_{i}/output/LayerNorm/beta",
            "{w}encoder.layers.{i}.output.layernorm.beta", (H,)),
    ),
    # tanh(dense([CLS])); the zoo calls it `dense`
    "pooler": (
        Row("pooler.weight", "pooler.dense.weight", "pooler/dense/kernel", "dense.weight", (H, H)),
        Row("pooler.bias", "pooler.dense.bias", "pooler/dense/bias", "dense.bias", (H,)),
    ),
}  # fmt: skip

# The token classifier and the masked-LM read every token and never pool [CLS]: their encoder
# has no pooler (as transformers' add_pooling_layer=False). Token classifiers written before
# carry a zero-filled one, the model zoo's NER network has one, and a masked-LM cut from a
# pre-training checkpoint may keep one: `ignored_names` lists them for the checks.
WITHOUT_POOLER = {"BertForTokenClassification", "BertForMaskedLM"}

# Heads, by architecture. Google's run_classifier.py stores its classifier as [labels,
# hidden] (`output_weights`), already in our layout; Google has no standard NER head.
CLASSIFIER = {
    "classifier": (
        Row("classifier.weight", "classifier.weight", "output_weights", "dense_1.weight",
            ("num_labels", H)),
        Row("classifier.bias", "classifier.bias", "output_bias", "dense_1.bias", ("num_labels",)),
    ),
}  # fmt: skip
# The masked-LM head (transformers' BertLMPredictionHead): transform dense + LayerNorm, then the
# decoder, tied to the word embeddings (so stored once, as the embedding table), and its bias.
MASKED_LM = {
    "mlm_dense": (
        Row("mlm_dense.weight", "cls.predictions.transform.dense.weight",
            "cls/predictions/transform/dense/kernel", "cls1.dense.weight", (H, H)),
        Row("mlm_dense.bias", "cls.predictions.transform.dense.bias",
            "cls/predictions/transform/dense/bias", "cls1.dense.bias", (H,)),
    ),
    "mlm_norm": (
        Row("mlm_norm.gamma", "cls.predictions.transform.LayerNorm.weight",
            "cls/predictions/transform/LayerNorm/gamma", "cls1.layernorm.gamma", (H,)),
        Row("mlm_norm.beta", "cls.predictions.transform.LayerNorm.bias",
            "cls/predictions/transform/LayerNorm/beta", "cls1.layernorm.beta", (H,)),
    ),
    "mlm_bias": (
        Row("mlm_bias", "cls.predictions.bias", "cls/predictions/output_bias",
            "cls1.output_bias", ("vocab_size",)),
    ),
}  # fmt: skip
# Next-sentence prediction, on the pooled [CLS]: BERT's second pre-training head.
NEXT_SENTENCE = {
    "nsp": (
        Row("nsp.weight", "cls.seq_relationship.weight", "cls/seq_relationship/output_weights",
            "cls2.dense.weight", (2, H)),
        Row("nsp.bias", "cls.seq_relationship.bias", "cls/seq_relationship/output_bias",
            "cls2.dense.bias", (2,)),
    ),
}  # fmt: skip
HEADS = {
    "BertModel": {},
    "BertForSequenceClassification": CLASSIFIER,
    "BertForTokenClassification": CLASSIFIER,
    "BertForPreTraining": {**MASKED_LM, **NEXT_SENTENCE},
    "BertForMaskedLM": MASKED_LM,
}  # fmt: skip

# TinyBERT students carry fit_dense (student hidden -> teacher hidden) beside any
# architecture; only our format and the zoo's know it.
FIT_DENSE = ["fit_dense.weight", "fit_dense.bias"]

FORMATS = ("ours", "hf", "tf", "zoo")


class Name(NamedTuple):
    ours: str
    theirs: str


def our_prefix(architecture: str) -> str:
    """Where our heads keep the BertModel: `bert.` for every head, nothing for BertModel."""
    return "" if architecture == "BertModel" else "bert."


def backbone(architecture: str) -> dict:
    """The encoder's cells in `architecture`: all of BACKBONE, less the pooler where it has none."""
    if architecture in WITHOUT_POOLER:
        return {role: rows for role, rows in BACKBONE.items() if role != "pooler"}
    return BACKBONE


class _Tensor(NamedTuple):
    ours: str  # our full name, layer index filled in
    row: Row
    layer: int | None
    in_head: bool


def _tensors(architecture: str, num_layers: int):
    """Every tensor of `architecture`, layers expanded, in table order."""
    for rows in backbone(architecture).values():
        for row in rows:
            for i in range(num_layers) if "{i}" in row.ours else [None]:
                yield _Tensor(our_prefix(architecture) + row.ours.format(i=i), row, i, False)
    for rows in HEADS[architecture].values():
        for row in rows:
            yield _Tensor(row.ours, row, None, True)


def name_pairs(fmt: str, architecture: str, num_layers: int, backbone_prefix: str,
               head_prefix: str = "", zoo_word: str = "bert_") -> list[Name]:  # fmt: skip
    """Every tensor of `architecture` as (our name, the format's name), layers expanded.

    `backbone_prefix` is where the format keeps the BertModel's tensors (`bert/` for Google,
    `bert.` or nothing for HF, `bert.bert.` for a zoo teacher), `head_prefix` where it keeps
    the heads, `zoo_word` is the zoo's `bert_` or `tinybert_`.
    """
    return [
        Name(
            tensor.ours,
            (head_prefix if tensor.in_head else backbone_prefix)
            + getattr(tensor.row, fmt).format(i=tensor.layer, w=zoo_word),
        )
        for tensor in _tensors(architecture, num_layers)
    ]


def head_names(fmt: str, architecture: str, head_prefix: str = "") -> set:
    """The format's names of `architecture`'s head tensors."""
    return {
        head_prefix + getattr(row, fmt) for rows in HEADS[architecture].values() for row in rows
    }


def expected_shapes(config, architecture: str) -> dict:
    """Our name -> shape of every parameter of `architecture` built from `config` (a BertConfig)."""
    return {
        tensor.ours: tuple(
            getattr(config, size) if isinstance(size, str) else size for size in tensor.row.shape
        )
        for tensor in _tensors(architecture, config.num_hidden_layers)
    }


def ignored_names(architecture: str, fmt: str = "ours", backbone_prefix: str | None = None,
                  zoo_word: str = "bert_") -> set:  # fmt: skip
    """The names a checkpoint of `architecture` may carry that the model does not have: the
    pooler of a token classifier (ours written before it had none, the zoo's NER network, a
    transformers tagger built with a pooler) or of a masked-LM. Checks and conversion leave
    them out."""
    if architecture not in WITHOUT_POOLER:
        return set()
    if backbone_prefix is None:
        backbone_prefix = our_prefix(architecture)
    return {backbone_prefix + getattr(row, fmt).format(w=zoo_word) for row in BACKBONE["pooler"]}


def tensor_names(role: str, architecture: str, layer: int | None = None) -> tuple:
    """Our names of one cell's tensors in `architecture`'s checkpoints, weight first:

        tensor_names("query", "BertForSequenceClassification", 0)
        == ("bert.layers.0.attention.query.weight", "bert.layers.0.attention.query.bias")

    `role` is a key of BACKBONE or of the architecture's HEADS; `layer` is needed for the
    cells of a transformer layer. KeyError for a cell the architecture does not have.
    """
    heads = HEADS[architecture]
    if role in heads:
        return tuple(row.ours for row in heads[role])
    rows = backbone(architecture)[role]
    if "{i}" in rows[0].ours and layer is None:
        raise ValueError(f"{role} is a layer's cell: pass its layer index")
    return tuple(our_prefix(architecture) + row.ours.format(i=layer) for row in rows)


def count_layers(names, pattern: str) -> int:
    """Number of layers, from the largest index that `pattern` (a regex with one group) finds."""
    indices = [int(m.group(1)) for n in names if (m := re.search(pattern, n))]
    return max(indices) + 1 if indices else 0
