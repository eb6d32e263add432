"""Building teachers and students from checkpoints and configs, with the checks that catch a
teacher and student that cannot work together before any training starts."""

from __future__ import annotations

import dataclasses
import logging

import numpy as np
from mindspore import Tensor

from tinybert_model import (
    BertConfig,
    BertForSequenceClassification,
    BertForTokenClassification,
    BertModel,
    TinyBertStudent,
    load_checkpoint,
    load_model,
    read_checkpoint,
)
from tinybert_model.checkpoint import named_parameters

log = logging.getLogger("tinybert_distill")


class ModelError(ValueError):
    """Teacher, student and data that don't fit together."""


def encoder_of(model) -> BertModel:
    """The BertModel inside a head model (or the model itself)."""
    return model if isinstance(model, BertModel) else model.bert


def head_class(task_type: str):
    return BertForTokenClassification if task_type == "ner" else BertForSequenceClassification


def with_task(config: BertConfig, labels: list, task_type: str) -> BertConfig:
    return dataclasses.replace(config, labels=list(labels), task_type=task_type)


def load_teacher(path, labels=None, task_type=None):
    """A teacher from its checkpoint; with labels, it must have the matching task head."""
    if not path:
        raise ModelError("load_teacher_ckpt_path is not set")
    teacher = load_model(path)
    if labels is None:
        return teacher
    expected = head_class(task_type)
    if not isinstance(teacher, expected):
        raise ModelError(
            f"{path} is a {type(teacher).__name__}; task distillation needs a teacher fine-tuned "
            f"on the task ({expected.__name__}): run tinybert-finetune first"
        )
    if teacher.config.num_labels != len(labels):
        raise ModelError(
            f"{path} predicts {teacher.config.num_labels} labels {teacher.config.labels}; "
            f"the data has {len(labels)} {labels}"
        )
    return teacher


def check_vocab(model_config: BertConfig, data_task: dict, what: str, source) -> None:
    """Data tokenized with another vocabulary would index the wrong embeddings."""
    vocab_size = data_task.get("vocab_size")
    if vocab_size and vocab_size != model_config.vocab_size:
        raise ModelError(
            f"{source} was tokenized with a {vocab_size}-token vocabulary but the {what} has "
            f"{model_config.vocab_size} word embeddings"
        )
    seq_length = data_task.get("seq_length")
    if seq_length and seq_length > model_config.max_position_embeddings:
        raise ModelError(
            f"{source} has sequences of {seq_length} tokens; the {what} has only "
            f"{model_config.max_position_embeddings} positions"
        )


def teacher_layers_config(teacher: BertModel, layers: list) -> BertConfig:
    """A student as wide as the teacher, with len(layers) layers (see copy_teacher_layers)."""
    if not layers or not all(0 <= layer < teacher.config.num_hidden_layers for layer in layers):
        raise ModelError(
            f"init_student_from_teacher_layers {layers}: the teacher has layers "
            f"0..{teacher.config.num_hidden_layers - 1}"
        )
    return dataclasses.replace(
        teacher.config, num_hidden_layers=len(layers), labels=None, task_type=None
    )


def copy_teacher_layers(teacher: BertModel, student: BertModel, layers: list) -> None:
    """Give the student the teacher's embeddings, the chosen layers and the pooler.

    A cheap, strong start when the student is as wide as the teacher (all-MiniLM-L6-v2's
    layers 1, 2, 4, 5 make a 4-layer, 384-wide student).
    """
    source = named_parameters(teacher)
    for name, parameter in named_parameters(student).items():
        if name.startswith("layers."):
            index, rest = name[len("layers.") :].split(".", 1)
            name = f"layers.{layers[int(index)]}.{rest}"
        parameter.set_data(Tensor(source[name].asnumpy()))


def identity_fit_dense(student: TinyBertStudent) -> None:
    """Equal widths: start fit_dense as the identity, so the losses compare states as they are."""
    weight = student.fit_dense.weight
    if weight.shape[0] == weight.shape[1]:
        weight.set_data(Tensor(np.eye(weight.shape[0], dtype=np.float32)))
        student.fit_dense.bias.set_data(Tensor(np.zeros(weight.shape[0], np.float32)))


def general_student(student_cfg: dict, teacher: BertModel) -> BertConfig:
    """The student config of general distillation: the YAML section, the teacher's vocab."""
    values = dict(student_cfg)
    if values.get("vocab_size") is None:
        values["vocab_size"] = teacher.config.vocab_size
    elif values["vocab_size"] != teacher.config.vocab_size:
        raise ModelError(
            f"bert_student_net_cfg.vocab_size {values['vocab_size']} differs from the teacher's "
            f"{teacher.config.vocab_size}: they must share the vocabulary"
        )
    return BertConfig.from_dict(values)


def task_student(gd_path, labels: list, task_type: str, teacher_hidden: int) -> TinyBertStudent:
    """A task student from a general-distillation checkpoint: its encoder and fit_dense, a
    new task head."""
    checkpoint = read_checkpoint(gd_path)
    if checkpoint.config is None:
        raise ModelError(
            f"{gd_path} has no embedded config (convert zoo checkpoints with tinybert-convert)"
        )
    config = with_task(checkpoint.config, labels, task_type)
    student = TinyBertStudent(head_class(task_type)(config), teacher_hidden)
    fit = checkpoint.tensors.get("fit_dense.weight")
    if fit is not None and fit.shape[0] != teacher_hidden:
        raise ModelError(
            f"{gd_path}: its fit_dense maps to {fit.shape[0]} dimensions but the teacher's hidden "
            f"size is {teacher_hidden}: it was distilled from a different teacher"
        )
    report = load_checkpoint(gd_path, student, strict=False)
    new = [n for n in report.missing if not n.startswith(("classifier.", "fit_dense."))]
    if new:
        raise ModelError(f"{gd_path} lacks encoder tensors: {', '.join(new[:5])}")
    if fit is None:
        log.warning("%s has no fit_dense; a new one is trained from scratch", gd_path)
    return student
