"""Losses as lists of matches: every phase's list gives the loss 0.1's loss networks gave.

fixtures/loss_reference.json holds the values tinybert-distill 0.1 (DistillationLoss with
`layers` / `prediction` / `task_type`) computed on real SST-2 and CLUENER rows with seeded
tiny models (fixtures/make_loss_reference.py, run before the change).
"""

import json
from collections import namedtuple
from pathlib import Path

import mindspore as ms
import numpy as np
import pytest
from conftest import batch_tensors, seeded_pair
from mindspore import nn

from tinybert_distill.distillers import DistillationLoss, FineTuneLoss, PredictionLoss
from tinybert_distill.losses import soft_cross_entropy
from tinybert_distill.matches import (
    Match,
    feature_of,
    fine_tuning_matches,
    general_distillation_matches,
    layer_matches,
    prediction_matches,
    task_phase1_matches,
    task_phase2_matches,
)

REFERENCE = json.loads(
    (Path(__file__).parent / "fixtures" / "loss_reference.json").read_text(encoding="utf-8")
)


def loss_of(phase: str, pair: dict, inputs: list, config: dict) -> float:
    """The loss of `phase` as the commands now build it: a list of matches."""
    teacher, student = seeded_pair(pair)
    task_type = pair["task_type"]
    layers = (student.config.num_hidden_layers, teacher.config.num_hidden_layers)
    if phase == "gd":
        loss = DistillationLoss(
            teacher, student, matches=general_distillation_matches(config, *layers)
        )
        return float(loss(*inputs[:3]).asnumpy())
    if phase == "td_phase1":
        loss = DistillationLoss(teacher, student, matches=task_phase1_matches(config, *layers))
    elif phase == "td_phase2_with_teacher":
        loss = DistillationLoss(teacher, student, matches=task_phase2_matches(config, task_type))
    elif phase == "layers_and_prediction":
        matches = task_phase1_matches(config, *layers) + task_phase2_matches(config, task_type)
        loss = DistillationLoss(teacher, student, matches=matches)
    elif phase == "td_phase2":
        matches = task_phase2_matches(config, task_type)
        loss = PredictionLoss(student, matches)
        if not any(m.uses_teacher for m in matches):
            return float(loss(*inputs).asnumpy())
        teacher.set_train(False)
        return float(loss(*inputs, teacher(*inputs[:3])[0]).asnumpy())
    elif phase == "finetune":
        loss = PredictionLoss(teacher, fine_tuning_matches(task_type))
    return float(loss(*inputs).asnumpy())


@pytest.mark.parametrize(
    "case",
    REFERENCE["cases"],
    ids=[f"{c['phase']}-{c['pair']}-{i}" for i, c in enumerate(REFERENCE["cases"])],
)
def test_matches_give_the_losses_of_0_1(case):
    pair = REFERENCE["pairs"][case["pair"]]
    inputs = batch_tensors(REFERENCE["batches"][pair["batch"]], pair["task_type"])
    got = loss_of(case["phase"], pair, inputs, case["config"])
    assert got > 0
    np.testing.assert_allclose(got, case["loss"], rtol=1e-6, atol=0)


def test_the_lists_name_every_term():
    """4 from 2 layers, spread evenly: two attention terms, three hidden-state terms, in the
    zoo's order, with the config's weights."""
    config = REFERENCE["cases"][0]["config"]
    matches = general_distillation_matches(config, 2, 4)
    assert [(m.feature, m.student_layer, m.teacher_layer) for m in matches] == [
        ("attention", 0, 1),
        ("attention", 1, 3),
        ("hidden", 0, 0),
        ("hidden", 1, 2),
        ("hidden", 2, 4),
    ]
    assert {m.weight for m in matches if m.feature == "attention"} == {0.7}
    assert {m.weight for m in matches if m.feature == "hidden"} == {1.3}
    assert task_phase1_matches(config, 2, 4) == matches
    assert task_phase2_matches(config, "ner") == [
        Match("logits", "token_soft_cross_entropy", 0.8, temperature=2.0)
    ]
    regression = task_phase2_matches(config, "regression")
    assert [m.loss for m in regression] == ["label_mse"]
    assert not regression[0].uses_teacher  # phase 2 needs no teacher logits for regression
    assert [m.loss for m in fine_tuning_matches("classification")] == ["label_cross_entropy"]


def test_a_new_pairing_is_one_more_entry():
    """Adding a match adds its weighted term and nothing else."""
    ms.set_context(mode=ms.PYNATIVE_MODE)
    pair = REFERENCE["pairs"]["classification"]
    inputs = batch_tensors(REFERENCE["batches"][pair["batch"]], pair["task_type"])
    teacher, student = seeded_pair(pair)
    base = layer_matches([0, 2, 4], [1, 3])
    extra = Match("attention", "attention_mse", 0.25, student_layer=1, teacher_layer=2)
    with_extra = DistillationLoss(teacher, student, matches=[*base, extra])(*inputs).asnumpy()
    without = DistillationLoss(teacher, student, matches=base)(*inputs).asnumpy()
    alone = DistillationLoss(teacher, student, matches=[extra])(*inputs).asnumpy()
    np.testing.assert_allclose(with_extra, without + alone, rtol=1e-6)
    assert alone > 0


@pytest.mark.parametrize(
    "arguments, message",
    [
        (("scores", "attention_mse"), "feature must be one of"),
        (("hidden", "kl"), "loss must be one of"),
        (("hidden", "hidden_mse"), "takes a student and a teacher layer"),
        (("logits", "soft_cross_entropy", 1.0, 0, 0), "takes no layers"),
    ],
)
def test_a_bad_match_says_what_is_wrong(arguments, message):
    with pytest.raises(ValueError, match=message):
        Match(*arguments)


def test_prediction_loss_takes_logits_matches_only():
    pair = REFERENCE["pairs"]["classification"]
    _, student = seeded_pair(pair)
    with pytest.raises(ValueError, match="logits matches only"):
        PredictionLoss(student, layer_matches([0, 2, 4], [1, 3]))
    assert isinstance(FineTuneLoss(student.model, "ner"), PredictionLoss)


@pytest.mark.parametrize("pair_name", ["classification", "ner"])
def test_prediction_loss_gradients_are_those_of_the_whole_model(pair_name):
    """PredictionLoss calls its model with logits_only (no layer outputs; a classifier's last
    layer computes [CLS] alone): loss and gradients are those of the model's plain call."""
    pair = REFERENCE["pairs"][pair_name]
    inputs = batch_tensors(REFERENCE["batches"][pair["batch"]], pair["task_type"])
    teacher, student = seeded_pair(pair)
    teacher.set_train(False)
    teacher_logits = teacher(*inputs[:3])[0]
    mask = inputs[2] if pair["task_type"] == "ner" else None

    class PlainCall(nn.Cell):
        def __init__(self, model):
            super().__init__()
            self.model = model

        def construct(self, input_ids, segment_ids, input_mask, label_ids, teacher_logits):
            logits = self.model(input_ids, segment_ids, input_mask)[0]
            return soft_cross_entropy(logits, teacher_logits, 1.0, mask)

    parameters = student.model.trainable_params()
    losses, gradients = [], []
    for loss in (
        PredictionLoss(student, prediction_matches(pair["task_type"])),
        PlainCall(student.model),
    ):
        losses.append(float(loss(*inputs, teacher_logits).asnumpy()))
        grad = ms.ops.GradOperation(get_by_list=True)(loss, parameters)(*inputs, teacher_logits)
        gradients.append([g.asnumpy() for g in grad])
    np.testing.assert_allclose(losses[0], losses[1], rtol=1e-6)
    assert losses[0] > 0 and sum(float(np.abs(g).sum()) > 0 for g in gradients[0]) > 10
    for name, mine, plain in zip([p.name for p in parameters], *gradients):
        np.testing.assert_allclose(mine, plain, rtol=1e-4, atol=1e-7, err_msg=name)


ClassifierOutput = namedtuple("ClassifierOutput", ["logits", "hidden_states", "attention_scores"])
BertOutput = namedtuple(
    "BertOutput", ["sequence_output", "pooled_output", "hidden_states", "attention_scores"]
)


class Named(nn.Cell):
    """A model whose outputs are named, as tinybert_model's named outputs (issue 15)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def construct(self, input_ids, segment_ids, input_mask):
        return ClassifierOutput(*self.model(input_ids, segment_ids, input_mask))


def test_features_of_named_outputs_by_name_of_tuples_by_position():
    outputs = ("logits", ("h0", "h1"), ("a0",))
    for named in (ClassifierOutput(*outputs), outputs):
        assert feature_of(named, "logits") == "logits"
        assert feature_of(named, "hidden") == ("h0", "h1")
        assert feature_of(named, "attention") == ("a0",)
    encoder = BertOutput("sequence", "pooled", ("h0",), ("a0",))
    assert (feature_of(encoder, "hidden"), feature_of(encoder, "attention")) == (("h0",), ("a0",))
    # in the compiled graph, with teacher and student of one class: the loss is 0.1's
    case = next(c for c in REFERENCE["cases"] if c["phase"] == "layers_and_prediction")
    pair = REFERENCE["pairs"][case["pair"]]
    inputs = batch_tensors(REFERENCE["batches"][pair["batch"]], pair["task_type"])
    teacher, student = seeded_pair(pair)
    config, layers = case["config"], (2, 4)
    matches = task_phase1_matches(config, *layers) + task_phase2_matches(config, "classification")
    loss = DistillationLoss(Named(teacher), Named(student), matches=matches)
    np.testing.assert_allclose(float(loss(*inputs).asnumpy()), case["loss"], rtol=1e-6, atol=0)
