"""Building teachers and students from checkpoints and configs, with the checks that catch a
teacher and student that cannot work together before any training starts."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import numpy as np
from mindspore import Tensor

from tinybert_core import TinybertError
from tinybert_model import (
    BertConfig,
    BertForSequenceClassification,
    BertForTokenClassification,
    BertModel,
    TinyBertStudent,
    architecture_for,
    load_model,
    load_tensors,
    named_parameters,
    read_checkpoint,
    read_hf_checkpoint,
)

log = logging.getLogger("tinybert_distill")


class ModelError(TinybertError):
    """Teacher, student and data that don't fit together."""


def encoder_of(model) -> BertModel:
    """The BertModel inside a head model (or the model itself)."""
    return model if isinstance(model, BertModel) else model.bert


def head_class(task_type: str):
    return BertForTokenClassification if task_type == "ner" else BertForSequenceClassification


def with_task(config: BertConfig, labels: list, task_type: str) -> BertConfig:
    return dataclasses.replace(config, labels=list(labels), task_type=task_type)


def load_teacher(path, labels=None, task_type=None, layers: bool = False):
    """A teacher from its checkpoint; with labels (task distillation), it must have been
    fine-tuned on these labels, in this order. `layers`: it returns its hidden states and
    attention scores, for the losses that distil them (otherwise only its logits)."""
    if not path:
        raise ModelError("load_teacher_ckpt_path is not set")
    if labels is not None:
        check_task_teacher(path, labels, task_type)
    return load_model(path, output_hidden_states=layers, output_attentions=layers)


def task_teacher_config(path, labels: list, task_type: str) -> BertConfig:
    """The config of a task teacher checked as load_teacher checks it, without building the
    model (phase 2 alone usually finds every teacher logit cached)."""
    if not path:
        raise ModelError("load_teacher_ckpt_path is not set")
    return check_task_teacher(path, labels, task_type)


def check_task_teacher(path, labels: list, task_type: str) -> BertConfig:
    """Refuse a teacher whose task head was never trained, or predicts other labels; return
    its config (read from the checkpoint, the model is not built).

    Distilling from a pretrained teacher's random head is the mistake most often reported
    against the original TinyBERT code, and a teacher whose labels come in another order
    teaches the student to swap them (the original code's MNLI results collapsed on it).
    """
    checkpoint = read_checkpoint(path)
    config = checkpoint.config
    if config is None:
        raise ModelError(f"{path} has no embedded config (convert it with tinybert-convert)")
    expected = head_class(task_type).__name__
    architecture = checkpoint.architecture or architecture_for(config)
    fine_tune = "run tinybert-finetune first (on these records) and use its best.ckpt"
    if architecture != expected:
        raise ModelError(
            f"{path} is a {architecture}; task distillation needs a teacher fine-tuned on the "
            f"task ({expected}): {fine_tune}"
        )
    if not config.labels or "classifier.weight" not in checkpoint.tensors:
        raise ModelError(
            f"{path} has a task head that was never trained (no labels in its config or no "
            f"classifier tensors): {fine_tune}"
        )
    teacher_labels = list(config.labels)
    if len(teacher_labels) != len(labels):
        raise ModelError(
            f"{path} predicts {len(teacher_labels)} labels {teacher_labels}; "
            f"the data has {len(labels)} {labels}"
        )
    if teacher_labels == list(labels):
        return config
    unnamed = [[str(i) for i in range(len(labels))], [f"LABEL_{i}" for i in range(len(labels))]]
    if teacher_labels in unnamed:
        log.warning(
            "%s: the teacher's labels are unnamed %s; assuming they are the data's %s in this "
            "order (if not, the student learns them swapped)",
            path,
            teacher_labels,
            labels,
        )
        return config
    reordered = sorted(teacher_labels) == sorted(labels)
    what = "the same labels in another order" if reordered else "other labels"
    remedy = (
        "convert it again with `tinybert-convert ... --reorder_labels true`, or fine-tune it"
        if reordered
        else "fine-tune the teacher"
    )
    raise ModelError(
        f"{path} predicts {teacher_labels}, the data has {list(labels)} ({what}): its logits "
        f"would teach the wrong labels; {remedy} on these records"
    )


def check_distillable(
    teacher: BertConfig, student: BertConfig, data_task: dict, source, layers: bool
) -> None:
    """What must hold between a teacher and a student before the loss graph is built.

    Widths may differ (fit_dense maps the student's to the teacher's), but both must read
    the data's tokens, and the attention loss (`layers`) compares scores head by head.
    """
    if student.vocab_size != teacher.vocab_size:
        raise ModelError(
            f"the student's vocabulary ({student.vocab_size} tokens) differs from the "
            f"teacher's ({teacher.vocab_size}): they must share one"
        )
    check_vocab(student, data_task, "student", source)
    if layers and student.num_attention_heads != teacher.num_attention_heads:
        heads = teacher.num_attention_heads
        raise ModelError(
            f"the student has {student.num_attention_heads} attention heads per layer, the "
            f"teacher {heads}: the attention loss compares them head by head. Give the student "
            f"{heads} heads (bert_student_net_cfg.num_attention_heads, with hidden_size a "
            f"multiple of {heads}; for tinybert-td, distil a general student with them), or "
            "skip phase 1 with load_td1_ckpt_path"
        )


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
    layers 1, 2, 4, 5 make a 4-layer, 384-wide student). A tagger teacher has no pooler: a
    student that has one keeps it as initialised.
    """
    source = named_parameters(teacher)
    for name, parameter in named_parameters(student).items():
        if name.startswith("layers."):
            index, rest = name[len("layers.") :].split(".", 1)
            name = f"layers.{layers[int(index)]}.{rest}"
        if name.startswith("pooler.") and name not in source:
            continue
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
    return BertConfig.from_zoo_section(values)  # the zoo's keys too: mstype.float16, seq_length


def task_student(gd_path, labels: list, task_type: str, teacher_hidden: int) -> TinyBertStudent:
    """A task student from a general student: its encoder and fit_dense, a new task head.

    `gd_path` is a tinybert checkpoint (tinybert-gd's gd.ckpt, a phase-1 student) or a
    folder as downloaded: huawei-noah's general TinyBERT, or any Hugging Face BERT, converted
    in memory as `tinybert-convert hf2ms` converts it.
    """
    checkpoint = _read_student(gd_path)
    if checkpoint.config is None:
        raise ModelError(
            f"{gd_path} has no embedded config (convert zoo checkpoints with tinybert-convert)"
        )
    config = with_task(checkpoint.config, labels, task_type)
    student = TinyBertStudent(head_class(task_type)(config), teacher_hidden)
    fit = checkpoint.tensors.get("fit_dense.weight")
    if fit is not None and fit.shape[0] != teacher_hidden:
        raise ModelError(
            f"{gd_path}: its fit_dense maps to {fit.shape[0]} dimensions but the teacher's "
            f"hidden size is {teacher_hidden}: it was distilled from a different teacher "
            f"(student {fit.shape[1]} -> teacher {fit.shape[0]})"
        )
    report = load_tensors(checkpoint.tensors, student, strict=False, source=gd_path)
    new = [n for n in report.missing if not n.startswith(("classifier.", "fit_dense."))]
    if new:
        raise ModelError(f"{gd_path} lacks encoder tensors: {', '.join(new[:5])}")
    if fit is None:
        log.warning("%s has no fit_dense; a new one is trained from scratch", gd_path)
    return student


def _read_student(path):
    """A student's tensors and config: our checkpoint, or a downloaded folder converted."""
    if Path(path).is_dir():
        return read_hf_checkpoint(path)
    return read_checkpoint(path)
