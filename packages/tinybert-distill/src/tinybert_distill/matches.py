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

The config's `matches` key chooses the layer matches of general distillation and
task-distillation phase 1: null (TinyBERT's, from hidden_layer_map / attention_layer_map),
a preset's name (PRESETS), or a list of entries `{feature, loss, student_layer,
teacher_layer, weight}` (matches_from_entries).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from .config import FLOAT32_MAX, ConfigError, is_number, is_whole
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
# The losses that fit each feature's shape: attention scores [batch, heads, seq, seq], hidden
# states [batch, seq, width], logits [batch, labels] ([batch, seq, labels] for NER).
FEATURE_LOSSES = {
    "attention": ("attention_mse",),
    "hidden": ("hidden_mse",),
    "logits": (
        "soft_cross_entropy",
        "token_soft_cross_entropy",
        "label_mse",
        "label_cross_entropy",
        "token_label_cross_entropy",
    ),
}


@dataclass(frozen=True)
class Match:
    """One term of a loss: `weight * LOSSES[loss](student feature, teacher feature, ...)`.

    `loss` must fit the feature (FEATURE_LOSSES). `student_layer` and `teacher_layer` index
    the layers of "attention" and "hidden" (losses.uniform_layer_map says how); "logits" has
    none. `temperature` is the soft cross-entropies'.
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
        if self.loss not in FEATURE_LOSSES[self.feature]:
            raise ValueError(
                f"{self.loss} does not compare {self.feature}; "
                f"{self.feature} takes {' or '.join(FEATURE_LOSSES[self.feature])}"
            )
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


# ---- presets: the layer matches a config can name ----------------------------------------------
# Each takes the two models' layer counts and the config's two weights. Layer numbers are the
# features' own: attention 0..M-1, hidden states 0..M with 0 the embedding output.


def tinybert_preset(student_layers, teacher_layers, attention_weight=1.0, hidden_weight=1.0):
    """TinyBERT's (Jiao et al. 2020): every student layer's attention and hidden state, and
    the embedding output, against the teacher's spread evenly (losses.uniform_layer_map);
    what `matches: null` builds when the layer maps are null."""
    hidden, attention = uniform_layer_map(student_layers, teacher_layers)
    return layer_matches(hidden, attention, attention_weight, hidden_weight)


def last_layer_preset(student_layers, teacher_layers, attention_weight=1.0, hidden_weight=1.0):
    """The student's last layer against the teacher's last only: its attention scores and its
    output hidden state, no embedding output.

    The layers are MiniLM's (Wang et al. 2020), which distils the teacher's last layer alone,
    embeddings left out, so that no layer map ties the student's depth to the teacher's. The
    losses stay TinyBERT's: MSE of attention scores and of fitted hidden states (MiniLM's KL
    of attention distributions and value relations are not in LOSSES).
    """
    return [
        Match(
            "attention", "attention_mse", attention_weight, student_layers - 1, teacher_layers - 1
        ),
        Match("hidden", "hidden_mse", hidden_weight, student_layers, teacher_layers),
    ]


def hidden_only_preset(student_layers, teacher_layers, attention_weight=1.0, hidden_weight=1.0):
    """TinyBERT's hidden states (embedding output included) without its attention terms, as
    the paper's ablation without the attention loss."""
    hidden, _ = uniform_layer_map(student_layers, teacher_layers)
    return layer_matches(hidden, [], attention_weight, hidden_weight)


PRESETS = {
    "tinybert": tinybert_preset,
    "last_layer": last_layer_preset,
    "hidden_only": hidden_only_preset,
}


# ---- a list of matches written in the config -------------------------------------------------

REQUIRED_KEYS = ("feature", "loss", "student_layer", "teacher_layer")
ENTRY_KEYS = (*REQUIRED_KEYS, "weight")
# What the phases that take `matches` can compare: they run teacher and student layer by layer
# (DistillationLoss); the logits are phase 2's (task_phase2_matches).
LAYER_FEATURES = ("attention", "hidden")


def matches_from_entries(entries: list, student_layers: int, teacher_layers: int, phase: str):
    """The config's list of `{feature, loss, student_layer, teacher_layer, weight}` as
    matches (weight 1 when left out); ConfigError naming the first wrong entry."""
    if not entries:
        raise ConfigError("--matches is an empty list: no term to learn from")
    return [
        _match_of_entry(entry, student_layers, teacher_layers, phase, f"--matches entry {number}")
        for number, entry in enumerate(entries, 1)
    ]


def _match_of_entry(entry, student_layers, teacher_layers, phase, where) -> Match:
    if not isinstance(entry, dict):
        raise ConfigError(f"{where} is {entry!r}; it must be a mapping of {', '.join(ENTRY_KEYS)}")
    where = f"{where} {_flow(entry)}"
    unknown = [key for key in entry if key not in ENTRY_KEYS]
    if unknown:
        raise ConfigError(
            f"{where}: unknown key {unknown[0]!r}; an entry has {', '.join(ENTRY_KEYS)}"
        )
    feature = entry.get("feature")
    if feature == "logits":  # said before the layers a logits entry would not have
        raise ConfigError(
            f"{where}: {phase} matches layers only (attention, hidden); the logits are "
            "tinybert-td phase 2's (prediction_loss_weight, temperature)"
        )
    missing = [key for key in REQUIRED_KEYS if key not in entry]
    if missing:
        raise ConfigError(f"{where}: {missing[0]} is missing")
    if feature not in LAYER_FEATURES:
        raise ConfigError(
            f"{where}: unknown feature {feature!r}; one of {', '.join(LAYER_FEATURES)}"
        )
    if entry["loss"] not in FEATURE_LOSSES[feature]:
        known = "" if entry["loss"] in LOSSES else "unknown "
        raise ConfigError(
            f"{where}: {known}loss {entry['loss']!r} for {feature}; "
            f"{feature} takes {' or '.join(FEATURE_LOSSES[feature])}"
        )
    # attention scores are per layer (0..M-1); hidden states start at the embedding output
    extra = 1 if feature == "hidden" else 0
    for key, layers, model in (
        ("student_layer", student_layers, "student"),
        ("teacher_layer", teacher_layers, "teacher"),
    ):
        value = entry[key]
        last = layers - 1 + extra
        if not is_whole(value) or not 0 <= value <= last:
            first = " (0: the embedding output)" if extra else ""
            raise ConfigError(
                f"{where}: {key} {value!r} is not one of the {model}'s {feature} layers, "
                f"0..{last}{first}"
            )
    weight = entry.get("weight", 1.0)
    if not is_number(weight) or not 0 <= weight <= FLOAT32_MAX:  # NaN fails too
        raise ConfigError(f"{where}: weight {weight!r} must be a finite number >= 0")
    return Match(
        feature, entry["loss"], float(weight), entry["student_layer"], entry["teacher_layer"]
    )


def _flow(entry: dict) -> str:
    """An entry as YAML's one-line form, {feature: hidden, loss: hidden_mse, ...}."""
    return "{" + ", ".join(f"{key}: {value}" for key, value in entry.items()) + "}"


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


def configured_matches(config: dict, student_layers: int, teacher_layers: int, phase: str) -> list:
    """The layer matches of `phase` from the config's `matches`: null, TinyBERT's from the
    layer maps and weights; a preset's name, the preset with attention_loss_weight and
    hidden_loss_weight; a list, its entries with their own weights. Checked against the
    models: a ConfigError before anything is written."""
    chosen = config.get("matches")
    attention_weight = float(config["attention_loss_weight"])
    hidden_weight = float(config["hidden_loss_weight"])
    if chosen is None:
        return layer_matches(
            *layer_maps(config, student_layers, teacher_layers), attention_weight, hidden_weight
        )
    for key in ("hidden_layer_map", "attention_layer_map"):
        if config.get(key) is not None:
            raise ConfigError(
                f"--matches and --{key} are both set: the layer maps are read only with "
                "matches: null (write the pairs as matches entries instead)"
            )
    if isinstance(chosen, str) and chosen in PRESETS:
        matches = PRESETS[chosen](student_layers, teacher_layers, attention_weight, hidden_weight)
    elif isinstance(chosen, list):
        matches = matches_from_entries(chosen, student_layers, teacher_layers, phase)
    else:
        raise ConfigError(
            f"--matches is {chosen!r}; it must be null, a preset ({', '.join(PRESETS)}) or a "
            f"list of {{{', '.join(ENTRY_KEYS)}}} entries"
        )
    log.info(
        "matches (student layer -> teacher layer): %s",
        ", ".join(
            f"{m.feature} {m.student_layer}->{m.teacher_layer} x{m.weight:g}" for m in matches
        ),
    )
    return matches


def general_distillation_matches(config: dict, student_layers: int, teacher_layers: int) -> list:
    """tinybert-gd: attention scores and hidden states, as the config's `matches` says
    (configured_matches); by default TinyBERT's, every student layer's."""
    return configured_matches(config, student_layers, teacher_layers, "general distillation")


def task_phase1_matches(config: dict, student_layers: int, teacher_layers: int) -> list:
    """tinybert-td phase 1: the matches of general distillation, from the task teacher on
    task data, with the task config's `matches`, layer maps and weights."""
    return configured_matches(config, student_layers, teacher_layers, "task distillation phase 1")


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
