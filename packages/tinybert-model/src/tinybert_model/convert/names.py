"""How each checkpoint format names BERT's tensors, in one table.

Each row names one tensor in four formats: ours (the MindSpore cells in modeling.py), Hugging
Face, Google's TF1 BERT and the MindSpore model zoo. `{i}` is the layer index. Backbone
names are relative to the BertModel (formats put it under a prefix such as `bert.`); head
names are relative to the whole model. Google stores dense kernels as [in, out]: a TF name
ending in `kernel` is transposed on the way in and out. `{w}` in zoo names is `bert_` for
the zoo's BertModel and `tinybert_` for its TinyBertModel.
"""

from __future__ import annotations

import re
from typing import NamedTuple

# ours, Hugging Face, Google TF1, model zoo
BACKBONE = [
    ("embeddings.word_embeddings.embedding_table", "embeddings.word_embeddings.weight",
     "embeddings/word_embeddings", "{w}embedding_lookup.embedding_table"),
    ("embeddings.position_embeddings.embedding_table", "embeddings.position_embeddings.weight",
     "embeddings/position_embeddings",
     "{w}embedding_postprocessor.full_position_embedding.embedding_table"),
    ("embeddings.token_type_embeddings.embedding_table", "embeddings.token_type_embeddings.weight",
     "embeddings/token_type_embeddings",
     "{w}embedding_postprocessor.token_type_embedding.embedding_table"),
    ("embeddings.layer_norm.gamma", "embeddings.LayerNorm.weight",
     "embeddings/LayerNorm/gamma", "{w}embedding_postprocessor.layernorm.gamma"),
    ("embeddings.layer_norm.beta", "embeddings.LayerNorm.bias",
     "embeddings/LayerNorm/beta", "{w}embedding_postprocessor.layernorm.beta"),
    ("layers.{i}.attention.query.weight", "encoder.layer.{i}.attention.self.query.weight",
     "encoder/layer_{i}/attention/self/query/kernel",
     "{w}encoder.layers.{i}.attention.attention.query_layer.weight"),
    ("layers.{i}.attention.query.bias", "encoder.layer.{i}.attention.self.query.bias",
     "encoder/layer_{i}/attention/self/query/bias",
     "{w}encoder.layers.{i}.attention.attention.query_layer.bias"),
    ("layers.{i}.attention.key.weight", "encoder.layer.{i}.attention.self.key.weight",
     "encoder/layer_{i}/attention/self/key/kernel",
     "{w}encoder.layers.{i}.attention.attention.key_layer.weight"),
    ("layers.{i}.attention.key.bias", "encoder.layer.{i}.attention.self.key.bias",
     "encoder/layer_{i}/attention/self/key/bias",
     "{w}encoder.layers.{i}.attention.attention.key_layer.bias"),
    ("layers.{i}.attention.value.weight", "encoder.layer.{i}.attention.self.value.weight",
     "encoder/layer_{i}/attention/self/value/kernel",
     "{w}encoder.layers.{i}.attention.attention.value_layer.weight"),
    ("layers.{i}.attention.value.bias", "encoder.layer.{i}.attention.self.value.bias",
     "encoder/layer_{i}/attention/self/value/bias",
     "{w}encoder.layers.{i}.attention.attention.value_layer.bias"),
    ("layers.{i}.attention.dense.weight", "encoder.layer.{i}.attention.output.dense.weight",
     "encoder/layer_{i}/attention/output/dense/kernel",
     "{w}encoder.layers.{i}.attention.output.dense.weight"),
    ("layers.{i}.attention.dense.bias", "encoder.layer.{i}.attention.output.dense.bias",
     "encoder/layer_{i}/attention/output/dense/bias",
     "{w}encoder.layers.{i}.attention.output.dense.bias"),
    ("layers.{i}.attention_norm.gamma", "encoder.layer.{i}.attention.output.LayerNorm.weight",
     "encoder/layer_{i}/attention/output/LayerNorm/gamma",
     "{w}encoder.layers.{i}.attention.output.layernorm.gamma"),
    ("layers.{i}.attention_norm.beta", "encoder.layer.{i}.attention.output.LayerNorm.bias",
     "encoder/layer_{i}/attention/output/LayerNorm/beta",
     "{w}encoder.layers.{i}.attention.output.layernorm.beta"),
    ("layers.{i}.intermediate.weight", "encoder.layer.{i}.intermediate.dense.weight",
     "encoder/layer_{i}/intermediate/dense/kernel", "{w}encoder.layers.{i}.intermediate.weight"),
    ("layers.{i}.intermediate.bias", "encoder.layer.{i}.intermediate.dense.bias",
     "encoder/layer_{i}/intermediate/dense/bias", "{w}encoder.layers.{i}.intermediate.bias"),
    ("layers.{i}.output.weight", "encoder.layer.{i}.output.dense.weight",
     "encoder/layer_{i}/output/dense/kernel", "{w}encoder.layers.{i}.output.dense.weight"),
    ("layers.{i}.output.bias", "encoder.layer.{i}.output.dense.bias",
     "encoder/layer_{i}/output/dense/bias", "{w}encoder.layers.{i}.output.dense.bias"),
    ("layers.{i}.output_norm.gamma", "encoder.layer.{i}.output.LayerNorm.weight",
     "encoder/layer_{i}/output/LayerNorm/gamma", "{w}encoder.layers.{i}.output.layernorm.gamma"),
    ("layers.{i}.output_norm.beta", "encoder.layer.{i}.output.LayerNorm.bias",
     "encoder/layer_{i}/output/LayerNorm/beta", "{w}encoder.layers.{i}.output.layernorm.beta"),
    ("pooler.weight", "pooler.dense.weight", "pooler/dense/kernel", "dense.weight"),
    ("pooler.bias", "pooler.dense.bias", "pooler/dense/bias", "dense.bias"),
]  # fmt: skip

# Heads, by architecture. Google's run_classifier.py stores its classifier as [labels,
# hidden] (`output_weights`), already in our layout; Google has no standard NER head.
CLASSIFIER = [
    ("classifier.weight", "classifier.weight", "output_weights", "dense_1.weight"),
    ("classifier.bias", "classifier.bias", "output_bias", "dense_1.bias"),
]  # fmt: skip
HEADS = {
    "BertModel": [],
    "BertForSequenceClassification": CLASSIFIER,
    "BertForTokenClassification": CLASSIFIER,
    "BertForPreTraining": [
        ("mlm_dense.weight", "cls.predictions.transform.dense.weight",
         "cls/predictions/transform/dense/kernel", "cls1.dense.weight"),
        ("mlm_dense.bias", "cls.predictions.transform.dense.bias",
         "cls/predictions/transform/dense/bias", "cls1.dense.bias"),
        ("mlm_norm.gamma", "cls.predictions.transform.LayerNorm.weight",
         "cls/predictions/transform/LayerNorm/gamma", "cls1.layernorm.gamma"),
        ("mlm_norm.beta", "cls.predictions.transform.LayerNorm.bias",
         "cls/predictions/transform/LayerNorm/beta", "cls1.layernorm.beta"),
        ("mlm_bias", "cls.predictions.bias", "cls/predictions/output_bias", "cls1.output_bias"),
        ("nsp.weight", "cls.seq_relationship.weight", "cls/seq_relationship/output_weights",
         "cls2.dense.weight"),
        ("nsp.bias", "cls.seq_relationship.bias", "cls/seq_relationship/output_bias",
         "cls2.dense.bias"),
    ],
}  # fmt: skip

# TinyBERT students carry fit_dense (student hidden -> teacher hidden); only our format and
# the zoo's know it.
FIT_DENSE = ["fit_dense.weight", "fit_dense.bias"]

FORMATS = {"ours": 0, "hf": 1, "tf": 2, "zoo": 3}


class Name(NamedTuple):
    ours: str
    theirs: str


def our_prefix(architecture: str) -> str:
    """Where our heads keep the BertModel: `bert.` for every head, nothing for BertModel."""
    return "" if architecture == "BertModel" else "bert."


def name_pairs(fmt: str, architecture: str, num_layers: int, backbone_prefix: str,
               head_prefix: str = "", zoo_word: str = "bert_") -> list[Name]:  # fmt: skip
    """Every tensor of `architecture` as (our name, the format's name), layers expanded.

    `backbone_prefix` is where the format keeps the BertModel's tensors (`bert/` for Google,
    `bert.` or nothing for HF, `bert.bert.` for a zoo teacher), `head_prefix` where it keeps
    the heads, `zoo_word` is the zoo's `bert_` or `tinybert_`.
    """
    column = FORMATS[fmt]
    pairs = []
    for row in BACKBONE:
        for i in range(num_layers) if "{i}" in row[0] else [None]:
            ours = our_prefix(architecture) + row[0].format(i=i)
            theirs = backbone_prefix + row[column].format(i=i, w=zoo_word)
            pairs.append(Name(ours, theirs))
    for row in HEADS[architecture]:
        pairs.append(Name(row[0], head_prefix + row[column]))
    return pairs


def head_names(fmt: str, architecture: str, head_prefix: str = "") -> set:
    """The format's names of `architecture`'s head tensors."""
    return {head_prefix + row[FORMATS[fmt]] for row in HEADS[architecture]}


def count_layers(names, pattern: str) -> int:
    """Number of layers, from the largest index that `pattern` (a regex with one group) finds."""
    indices = [int(m.group(1)) for n in names if (m := re.search(pattern, n))]
    return max(indices) + 1 if indices else 0
