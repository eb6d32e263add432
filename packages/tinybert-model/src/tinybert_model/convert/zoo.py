"""The MindSpore model zoo's BERT/TinyBERT checkpoints (research/nlp/tinybert, official/nlp/bert).

The zoo's cells put the encoder under different prefixes depending on which network saved
it, and call it `bert_*` (BertModel) or `tinybert_*` (TinyBertModel):

    bert.bert.bert_embedding_lookup...   fine-tuned teacher (classifier at bert.dense_1),
                                         or BERT pre-training (heads at bert.cls1/cls2)
    bert.tinybert_embedding_lookup...    general-distillation student
    bert.bert_embedding_lookup...        task-distillation student (classifier at dense_1)

The layout (prefix and `bert_`/`tinybert_`) is read from the checkpoint; the pooler is the
encoder's `dense`, the classifier `dense_1` beside the encoder. Zoo checkpoints carry no
config: pass the YAML the zoo trained with (its `*_net_cfg` section matching the
checkpoint's shapes is used), or a bert_config.json.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import NamedTuple

import numpy as np
import yaml

from ..checkpoint import read_checkpoint, stored_architecture, write_checkpoint
from ..config import BertConfig
from ..errors import CheckpointError
from ..names import ignored_names
from .core import check_finite, check_layer_count, export_tensors, import_tensors
from .labels import labels_in_task_order

EMBEDDING = re.compile(r"^(.*?)((?:tiny)?bert_)embedding_lookup\.embedding_table$")
# Optimizer and loss-scale state the zoo's training networks save beside the weights.
TRAINING_STATE = re.compile(
    r"^(moment1\.|moment2\.|accu_grads\.|adam_m\.|adam_v\.)|"
    r"^(global_step|learning_rate|beta1_power|beta2_power|scale_sense|loss_scale|"
    r"current_iterator_step|last_overflow_iterator_step|epoch_num|step_num)$"
)


class ZooLayout(NamedTuple):
    prefix: str  # where the encoder's tensors start, e.g. "bert.bert."
    word: str  # "bert_" or "tinybert_"

    @property
    def head_prefix(self) -> str:
        """The cell holding the encoder also holds the heads: one level up."""
        parts = self.prefix.split(".")[:-1]
        return ".".join(parts[:-1]) + "." if len(parts) > 1 else ""


def detect_layout(names, source) -> ZooLayout:
    found = [ZooLayout(m.group(1), m.group(2)) for n in names if (m := EMBEDDING.match(n))]
    if not found:
        raise CheckpointError(
            f"{source}: no *bert_embedding_lookup.embedding_table tensor; "
            "not a model-zoo BERT checkpoint"
        )
    if len(found) > 1:
        raise CheckpointError(
            f"{source}: holds {len(found)} encoders "
            f"({', '.join(f.prefix + f.word for f in found)}); pass --zoo_prefix to choose one"
        )
    return found[0]


def _config_for(path, tensors: dict, layout: ZooLayout, source) -> BertConfig:
    """The config section matching the checkpoint's shape (zoo YAMLs hold teacher and student)."""
    path = Path(path)
    if path.suffix.lower() not in (".yaml", ".yml"):
        return BertConfig.from_file(path)
    document = next(yaml.safe_load_all(path.read_text(encoding="utf-8-sig")))
    sections = [
        k for k, v in (document or {}).items() if k.endswith("net_cfg") and isinstance(v, dict)
    ]
    hidden = tensors[layout.prefix + layout.word + "embedding_lookup.embedding_table"].shape[1]
    pattern = re.escape(layout.prefix + layout.word) + r"encoder\.layers\.(\d+)\."
    layers = 1 + max((int(m.group(1)) for n in tensors if (m := re.match(pattern, n))), default=-1)
    for section in sections or [None]:
        config = BertConfig.from_zoo_yaml(path, section)
        if (config.hidden_size, config.num_hidden_layers) == (hidden, layers):
            return config
    raise CheckpointError(
        f"{source}: no network section of {path} ({', '.join(sections)}) matches the checkpoint "
        f"(hidden_size {hidden}, {layers} layers)"
    )


def zoo_to_ms(
    input_ckpt,
    output,
    config,
    strict: bool = True,
    task_type: str | None = None,
    zoo_prefix: str | None = None,
    reorder_labels: bool = False,
) -> str:
    """Convert a model-zoo checkpoint to ours; returns the architecture.

    `config`: a zoo YAML, a bert_config.json or a BertConfig. `task_type` ("classification",
    "regression" or "ner") says what a `dense_1` head is; by default the YAML's task_type,
    else classification. `zoo_prefix` picks one encoder from a checkpoint that holds several.
    `reorder_labels`: put the classifier's rows in its task's label order (labels.py; the
    config must name the labels).
    """
    source = str(input_ckpt)
    checkpoint = read_checkpoint(input_ckpt)
    tensors = checkpoint.tensors
    names = [n for n in tensors if zoo_prefix is None or n.startswith(zoo_prefix)]
    layout = detect_layout(names, source)
    if not isinstance(config, BertConfig):
        config = _config_for(config, tensors, layout, source)

    head = layout.head_prefix
    if head + "dense_1.weight" in tensors:
        num_labels = tensors[head + "dense_1.weight"].shape[0]
        config.task_type = task_type or config.task_type or "classification"
        if not (config.labels and len(config.labels) == num_labels):
            config.labels = [str(i) for i in range(num_labels)]
        architecture = (
            "BertForTokenClassification"
            if config.task_type == "ner"
            else "BertForSequenceClassification"
        )
    elif head + "cls1.dense.weight" in tensors:
        architecture, config.labels, config.task_type = "BertForPreTraining", None, None
    else:
        architecture, config.labels, config.task_type = "BertModel", None, None
    check_layer_count(
        tensors,
        re.escape(layout.prefix + layout.word) + r"encoder\.layers\.(\d+)\.",
        config,
        source,
    )

    fit_dense = {n: tensors[n] for n in ("fit_dense.weight", "fit_dense.bias") if n in tensors}
    check_finite(fit_dense, source)
    # Everything outside this encoder and its heads (another network's encoder, training
    # state) is left out; inside it, unknown names are errors.
    ours_prefixes = (layout.prefix, head + "dense_1.", head + "cls1.", head + "cls2.")
    inside = {
        n: v
        for n, v in tensors.items()
        if n.startswith(ours_prefixes) and n not in fit_dense and not TRAINING_STATE.match(n)
    }
    ours, architecture = import_tensors(
        inside,
        fmt="zoo",
        architecture=architecture,
        config=config,
        backbone_prefix=layout.prefix,
        head_prefix=head,
        zoo_word=layout.word,
        strict=strict,
        source=source,
    )
    if architecture == "BertModel":
        config.labels, config.task_type = None, None
    if reorder_labels:
        ours = labels_in_task_order(ours, config, architecture, source)
    write_checkpoint(output, {**ours, **fit_dense}, config, architecture)
    return architecture


def ms_to_zoo(
    input_ckpt, output, config=None, zoo_prefix: str = "bert.bert.", zoo_word: str = "bert_"
) -> str:
    """Write our checkpoint with the zoo's names.

    The default layout is the zoo's fine-tuned teacher (`bert.bert.bert_*`, classifier
    `bert.dense_1`), what its task distillation loads as `load_teacher_ckpt_path`; use
    `zoo_prefix="bert."`, `zoo_word="tinybert_"` for a general-distillation student.
    """
    checkpoint = read_checkpoint(input_ckpt)
    config = config or checkpoint.config
    if config is None:
        raise CheckpointError(f"{input_ckpt}: no embedded config; pass --config")
    architecture = stored_architecture(checkpoint, config, input_ckpt)
    if architecture == "BertForMaskedLM":
        raise CheckpointError(
            f"{input_ckpt}: the model zoo has no masked-LM-only network (its pre-training "
            "network has a pooler and a next-sentence head, cls2)"
        )
    if zoo_prefix and not zoo_prefix.endswith("."):
        zoo_prefix += "."
    layout = ZooLayout(zoo_prefix, zoo_word)
    tensors = dict(checkpoint.tensors)
    fit_dense = {n: tensors.pop(n) for n in ("fit_dense.weight", "fit_dense.bias") if n in tensors}
    theirs = export_tensors(
        tensors,
        fmt="zoo",
        architecture=architecture,
        config=config,
        backbone_prefix=layout.prefix,
        head_prefix=layout.head_prefix,
        zoo_word=layout.word,
        source=str(input_ckpt),
    )
    # The zoo's NER network has a pooler it never reads; ours has none. Zeros let the zoo
    # load every parameter it has.
    for name in ignored_names(architecture, "zoo", layout.prefix, layout.word):
        width = config.hidden_size
        theirs[name] = np.zeros((width, width) if name.endswith("weight") else width, np.float32)
    write_checkpoint(output, {**theirs, **fit_dense})
    return architecture
