"""Distillation as data: the terms of a loss as a list of matches, as TextBrewer's
intermediate matches.

    Match("attention", "attention_mse", weight=1.0, student_layer=0, teacher_layer=1)

reads: student layer 0's attention scores learn from teacher layer 1's by `attention_mse`,
and the term counts with weight 1. A loss network (distillers.py) adds up `weight * loss`
over its list, in list order. The lists TinyBERT trains with are built from the config by
the functions at the end of this file, one per phase: general distillation, task
distillation phase 1 and phase 2, and fine-tuning. A new layer pairing is a new entry in a
list; a new loss is a new function in LOSSES.

Features, as models return them: "attention", the pre-softmax scores of each layer;
"hidden", the hidden states, embedding output first (a TinyBertStudent's already mapped by
fit_dense to the teacher's width); "logits", the task head's output.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from .config import ConfigError
from .losses import (
    attention_loss,
    check_layer_map,
    cross_entropy,
    hidden_loss,
    regression_loss,
    soft_cross_entropy,
    token_cross_entropy,
    uniform_layer_map,
)

log = logging.getLogger("tinybert_distill")

# Where each feature is in a model's outputs: its field in tinybert_model's named outputs,
# and its position, which the plain tuples a model returns inside a compiled graph share.
FEATURES = {
    "attention": ("attention_scores", -1),
    "hidden": ("hidden_states", -2),
    "logits": ("logits", 0),
}


def feature_of(outputs, feature: str):
    """A model's `feature`: the tuple of its layers' values, or its logits."""
    # By position, which plain tuples and named outputs share; once every model returns named
    # outputs, getattr(outputs, FEATURES[feature][0]). Not `hasattr(outputs, ...)`: on named
    # outputs in a compiled graph, MindSpore 2.10 then hands the teacher's features to the
    # student's call as well (the loss silently becomes 0; test_matches.py checks this).
    return outputs[FEATURES[feature][1]]


# ---- losses ---------------------------------------------------------------------------------
# Every loss takes (student feature, teacher feature, input_mask, label_ids, temperature) and
# uses what it needs; those that learn from the gold labels ignore the teacher (None in
# PredictionLoss when no teacher logits are given).


def attention_mse(student, teacher, input_mask, label_ids, temperature):
    return attention_loss(student, teacher, input_mask)


def hidden_mse(student, teacher, input_mask, label_ids, temperature):
    return hidden_loss(student, teacher, input_mask)


def soft_ce(student, teacher, input_mask, label_ids, temperature):
    return soft_cross_entropy(student, teacher, temperature)


def token_soft_ce(student, teacher, input_mask, label_ids, temperature):
    return soft_cross_entropy(student, teacher, temperature, input_mask)


def label_mse(student, teacher, input_mask, label_ids, temperature):
    return regression_loss(student, label_ids)


def label_ce(student, teacher, input_mask, label_ids, temperature):
    return cross_entropy(student, label_ids)


def token_label_ce(student, teacher, input_mask, label_ids, temperature):
    return token_cross_entropy(student, label_ids)


LOSSES = {
    "attention_mse": attention_mse,
    "hidden_mse": hidden_mse,
    "soft_cross_entropy": soft_ce,  # per example
    "token_soft_cross_entropy": token_soft_ce,  # per real token (NER)
    "label_mse": label_mse,
    "label_cross_entropy": label_ce,
    "token_label_cross_entropy": token_label_ce,
}
LABEL_LOSSES = ("label_mse", "label_cross_entropy", "token_label_cross_entropy")


@dataclass(frozen=True)
class Match:
    """One term of a loss: `weight * LOSSES[loss](student feature, teacher feature, ...)`.

    `student_layer` and `teacher_layer` index the layers of "attention" and "hidden"
    (losses.uniform_layer_map says how); "logits" has none. `temperature` is the soft
    cross-entropies'.
    """

    feature: str
    loss: str
    weight: float = 1.0
    student_layer: int | None = None
    teacher_layer: int | None = None
    temperature: float = 1.0

    def __post_init__(self):
        if self.feature not in FEATURES:
            raise ValueError(f"feature must be one of {list(FEATURES)}, not {self.feature!r}")
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {list(LOSSES)}, not {self.loss!r}")
        layered = self.feature != "logits"
        if layered != (self.student_layer is not None and self.teacher_layer is not None):
            wanted = "a student and a teacher layer" if layered else "no layers"
            raise ValueError(f"a {self.feature} match takes {wanted}: {self}")

    @property
    def uses_teacher(self) -> bool:
        return self.loss not in LABEL_LOSSES


def compile_matches(matches) -> tuple:
    """What a loss network's construct loops over: one tuple of constants per match,
    (feature, student layer, teacher layer, loss function, weight, temperature)."""
    return tuple(
        (m.feature, m.student_layer, m.teacher_layer, LOSSES[m.loss], m.weight, m.temperature)
        for m in matches
    )


# ---- building blocks --------------------------------------------------------------------------


def layer_matches(hidden_map, attention_map, attention_weight=1.0, hidden_weight=1.0) -> list:
    """TinyBERT's intermediate layers: each student layer's attention scores against those of
    the teacher layer `attention_map` gives it, then each student hidden state (embedding
    output first) against the teacher state `hidden_map` gives it."""
    attention = [
        Match("attention", "attention_mse", attention_weight, student, teacher)
        for student, teacher in enumerate(attention_map)
    ]
    hidden = [
        Match("hidden", "hidden_mse", hidden_weight, student, teacher)
        for student, teacher in enumerate(hidden_map)
    ]
    return attention + hidden


def prediction_matches(task_type: str, weight=1.0, temperature=1.0) -> list:
    """TinyBERT's prediction layer: soft cross-entropy against the teacher's logits (per real
    token for NER). Regression learns from the gold labels, as the zoo's phase 2 does."""
    loss = {"regression": "label_mse", "ner": "token_soft_cross_entropy"}.get(
        task_type, "soft_cross_entropy"
    )
    return [Match("logits", loss, weight, temperature=temperature)]


# ---- the lists of the three commands, from their configs --------------------------------------


def layer_maps(config: dict, student_layers: int, teacher_layers: int) -> tuple:
    """(hidden map, attention map): the config's, or spread evenly; checked against the models."""
    hidden, attention = uniform_layer_map(student_layers, teacher_layers)
    hidden = config["hidden_layer_map"] if config["hidden_layer_map"] is not None else hidden
    attention = (
        config["attention_layer_map"] if config["attention_layer_map"] is not None else attention
    )
    try:
        check_layer_map(hidden, attention, student_layers, teacher_layers)
    except ValueError as error:
        raise ConfigError(str(error)) from None
    log.info(
        "layer map (teacher index per student index): hidden %s, attention %s", hidden, attention
    )
    return list(hidden), list(attention)


def general_distillation_matches(config: dict, student_layers: int, teacher_layers: int) -> list:
    """tinybert-gd: attention scores and hidden states of every student layer."""
    return layer_matches(
        *layer_maps(config, student_layers, teacher_layers),
        attention_weight=float(config["attention_loss_weight"]),
        hidden_weight=float(config["hidden_loss_weight"]),
    )


def task_phase1_matches(config: dict, student_layers: int, teacher_layers: int) -> list:
    """tinybert-td phase 1: the matches of general distillation, from the task teacher on
    task data, with the task config's layer maps and weights."""
    return general_distillation_matches(config, student_layers, teacher_layers)


def task_phase2_matches(config: dict, task_type: str) -> list:
    """tinybert-td phase 2: the student's logits against the teacher's (or the labels)."""
    return prediction_matches(
        task_type,
        weight=float(config["prediction_loss_weight"]),
        temperature=float(config["temperature"]),
    )


def fine_tuning_matches(task_type: str) -> list:
    """tinybert-finetune: the logits against the gold labels (cross-entropy, per token with
    padding and special tokens left out for NER, MSE for regression)."""
    loss = {"regression": "label_mse", "ner": "token_label_cross_entropy"}.get(
        task_type, "label_cross_entropy"
    )
    return [Match("logits", loss)]
