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
import yaml
from conftest import batch_tensors, mean_first_last, metrics, seeded_pair
from mindspore import nn

from tinybert_distill.cli import general_distill
from tinybert_distill.config import ConfigError
from tinybert_distill.distillers import DistillationLoss, FineTuneLoss, PredictionLoss
from tinybert_distill.losses import soft_cross_entropy
from tinybert_distill.matches import (
    FEATURE_LOSSES,
    LOSSES,
    PRESETS,
    Match,
    feature_of,
    fine_tuning_matches,
    general_distillation_matches,
    layer_matches,
    prediction_matches,
    task_phase1_matches,
    task_phase2_matches,
)
from tinybert_model import read_checkpoint

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


# ---- the config's `matches`: presets and lists ---------------------------------------------

LAYER_CONFIG = REFERENCE["cases"][0]["config"]  # null maps, weights 0.7 / 1.3


def with_matches(matches, **changes) -> dict:
    return {**LAYER_CONFIG, "matches": matches, **changes}


def entries(text: str) -> list:
    """A `matches:` list as a config file holds it."""
    return yaml.safe_load(text)["matches"]


def test_a_missing_or_null_matches_key_is_tinybert_from_the_layer_maps():
    assert "matches" not in LAYER_CONFIG  # configs written before the key
    for student, teacher in ((2, 4), (4, 12), (3, 6)):
        tinybert = general_distillation_matches(with_matches("tinybert"), student, teacher)
        assert general_distillation_matches(LAYER_CONFIG, student, teacher) == tinybert
        assert general_distillation_matches(with_matches(None), student, teacher) == tinybert
        assert task_phase1_matches(with_matches("tinybert"), student, teacher) == tinybert


LAST_LAYER_4_FROM_12 = """
matches:
- {feature: attention, loss: attention_mse, student_layer: 3, teacher_layer: 11, weight: 0.7}
- {feature: hidden, loss: hidden_mse, student_layer: 4, teacher_layer: 12, weight: 1.3}
"""
HIDDEN_ONLY_4_FROM_12 = """
matches:
- {feature: hidden, loss: hidden_mse, student_layer: 0, teacher_layer: 0, weight: 1.3}
- {feature: hidden, loss: hidden_mse, student_layer: 1, teacher_layer: 3, weight: 1.3}
- {feature: hidden, loss: hidden_mse, student_layer: 2, teacher_layer: 6, weight: 1.3}
- {feature: hidden, loss: hidden_mse, student_layer: 3, teacher_layer: 9, weight: 1.3}
- {feature: hidden, loss: hidden_mse, student_layer: 4, teacher_layer: 12, weight: 1.3}
"""


def test_presets_are_their_explicit_lists():
    """4 from 12: the last layer is attention 3 -> 11 and hidden state 4 -> 12; the hidden
    states alone are the uniform map's 0, 3, 6, 9, 12. Presets take the config's weights."""
    last = entries(LAST_LAYER_4_FROM_12)
    hidden = entries(HIDDEN_ONLY_4_FROM_12)
    for preset, explicit in (("last_layer", last), ("hidden_only", hidden)):
        from_preset = general_distillation_matches(with_matches(preset), 4, 12)
        assert from_preset == general_distillation_matches(with_matches(explicit), 4, 12)
        assert from_preset == PRESETS[preset](4, 12, 0.7, 1.3)
        assert task_phase1_matches(with_matches(preset), 4, 12) == from_preset
    assert set(PRESETS) == {"tinybert", "last_layer", "hidden_only"}


MAPPED = """
matches:
- {feature: hidden, loss: hidden_mse, student_layer: 2, teacher_layer: 4, weight: 1.3}
- {feature: attention, loss: attention_mse, student_layer: 1, teacher_layer: 3, weight: 0.7}
- {feature: hidden, loss: hidden_mse, student_layer: 0, teacher_layer: 0, weight: 1.3}
- {feature: attention, loss: attention_mse, student_layer: 0, teacher_layer: 0, weight: 0.7}
- {feature: hidden, loss: hidden_mse, student_layer: 1, teacher_layer: 1, weight: 1.3}
"""
UNIFORM = """
matches:
- {feature: attention, loss: attention_mse, student_layer: 1, teacher_layer: 3, weight: 0.7}
- {feature: hidden, loss: hidden_mse, student_layer: 0, teacher_layer: 0, weight: 1.3}
- {feature: hidden, loss: hidden_mse, student_layer: 2, teacher_layer: 4, weight: 1.3}
- {feature: hidden, loss: hidden_mse, student_layer: 1, teacher_layer: 2, weight: 1.3}
- {feature: attention, loss: attention_mse, student_layer: 0, teacher_layer: 1, weight: 0.7}
"""


@pytest.mark.parametrize(
    "case_index, listed",
    [(1, MAPPED), (3, UNIFORM)],
    ids=["gd-maps-0-1-4-and-0-3", "td_phase1-ner-uniform"],
)
def test_a_yaml_list_gives_the_loss_of_the_layer_maps(case_index, listed):
    """A reference case's layer map written as a `matches:` list, in another order: the loss
    0.1 computed with the map, on real rows (general distillation on SST-2 with the maps
    [0, 1, 4] / [0, 3]; phase 1 of a CLUENER tagger with the uniform map)."""
    case = REFERENCE["cases"][case_index]
    pair = REFERENCE["pairs"][case["pair"]]
    inputs = batch_tensors(REFERENCE["batches"][pair["batch"]], pair["task_type"])
    config = {**case["config"], "hidden_layer_map": None, "attention_layer_map": None}
    from_list = loss_of(case["phase"], pair, inputs, {**config, "matches": entries(listed)})
    assert from_list > 0
    # case["loss"] is the maps' loss (test_matches_give_the_losses_of_0_1)
    np.testing.assert_allclose(from_list, case["loss"], rtol=1e-6)


def test_the_last_layer_is_its_two_terms():
    """last_layer's loss on a real batch: its attention term plus its hidden-state term, each
    as large as one match alone computes it, and unlike TinyBERT's whole map."""
    ms.set_context(mode=ms.PYNATIVE_MODE)  # four loss networks: no graph to compile for each
    pair = REFERENCE["pairs"]["encoder"]
    inputs = batch_tensors(REFERENCE["batches"][pair["batch"]], pair["task_type"])[:3]
    teacher, student = seeded_pair(pair)
    matches = general_distillation_matches(with_matches("last_layer"), 2, 4)
    total = float(DistillationLoss(teacher, student, matches=matches)(*inputs).asnumpy())
    terms = [
        float(DistillationLoss(teacher, student, matches=[m])(*inputs).asnumpy()) for m in matches
    ]
    assert len(terms) == 2 and min(terms) > 0
    np.testing.assert_allclose(total, sum(terms), rtol=1e-6)
    tinybert = general_distillation_matches(LAYER_CONFIG, 2, 4)
    assert total != float(DistillationLoss(teacher, student, matches=tinybert)(*inputs).asnumpy())


HIDDEN = "{feature: hidden, loss: hidden_mse, student_layer: 2, teacher_layer: 4}"


@pytest.mark.parametrize(
    "matches, message",
    [
        (
            "last_layers",
            r"--matches is 'last_layers'; it must be null, a preset \(tinybert, last_layer, "
            r"hidden_only\) or a list of \{feature, loss, student_layer, teacher_layer, weight\}",
        ),
        (3, "--matches is 3; it must be null, a preset"),
        ([], "--matches is an empty list"),
        (["hidden"], "--matches entry 1 is 'hidden'; it must be a mapping of feature, loss"),
        (
            "[{feature: scores, loss: attention_mse, student_layer: 0, teacher_layer: 0}]",
            r"entry 1 \{feature: scores, .*\}: unknown feature 'scores'; one of attention, hidden",
        ),
        (
            "[{feature: logits, loss: soft_cross_entropy, student_layer: 0, teacher_layer: 0}]",
            "general distillation matches layers only .* phase 2's",
        ),
        (
            f"[{HIDDEN}, {{feature: hidden, loss: kl, student_layer: 1, teacher_layer: 1}}]",
            "entry 2 .*: unknown loss 'kl' for hidden; hidden takes hidden_mse",
        ),
        (
            "[{feature: hidden, loss: attention_mse, student_layer: 1, teacher_layer: 1}]",
            ": loss 'attention_mse' for hidden; hidden takes hidden_mse",
        ),
        (
            "[{feature: hidden, loss: hidden_mse, student_layer: 3, teacher_layer: 4}]",
            r"student_layer 3 is not one of the student's hidden layers, 0..2 \(0: the embedding",
        ),
        (
            "[{feature: attention, loss: attention_mse, student_layer: 1, teacher_layer: 4}]",
            "teacher_layer 4 is not one of the teacher's attention layers, 0..3$",
        ),
        (
            "[{feature: attention, loss: attention_mse, student_layer: -1, teacher_layer: 3}]",
            "student_layer -1 is not one of the student's attention layers",
        ),
        (
            "[{feature: hidden, loss: hidden_mse, student_layer: last, teacher_layer: 4}]",
            "student_layer 'last' is not one of",
        ),
        (
            "[{feature: hidden, loss: hidden_mse, student_layer: 2, teacher_layer: 4, weight: -1}]",
            "weight -1 must be a finite number >= 0",
        ),
        (
            [{**yaml.safe_load(HIDDEN), "weight": float("nan")}],
            "weight nan must be a finite number >= 0",
        ),
        ("[{feature: hidden, loss: hidden_mse, student_layer: 2}]", ": teacher_layer is missing"),
        (
            "[{feature: hidden, loss: hidden_mse, layer: 2, teacher_layer: 4}]",
            "unknown key 'layer'; an entry has feature, loss, student_layer, teacher_layer, weight",
        ),
    ],
)
def test_a_bad_matches_entry_says_which_and_what(matches, message):
    """2 student layers, 4 teacher layers; the first wrong entry, in one line."""
    if isinstance(matches, str) and matches.startswith("["):
        matches = yaml.safe_load(matches)
    with pytest.raises(ConfigError, match=message) as error:
        general_distillation_matches(with_matches(matches), 2, 4)
    assert "\n" not in str(error.value)


def test_matches_and_layer_maps_are_not_both_set():
    with pytest.raises(ConfigError, match="--matches and --hidden_layer_map are both set"):
        general_distillation_matches(with_matches("last_layer", hidden_layer_map=[0, 1, 4]), 2, 4)
    logits = [{"feature": "logits", "loss": "soft_cross_entropy"}]
    with pytest.raises(ConfigError, match="task distillation phase 1 matches layers only"):
        task_phase1_matches(with_matches(logits), 2, 4)


def test_a_match_takes_only_the_losses_of_its_feature():
    with pytest.raises(ValueError, match="hidden_mse does not compare logits"):
        Match("logits", "hidden_mse")
    assert LOSSES.keys() == {loss for losses in FEATURE_LOSSES.values() for loss in losses}


def test_the_package_exports_the_matches_api():
    import tinybert_distill

    assert tinybert_distill.Match is Match
    assert tinybert_distill.LOSSES is LOSSES and tinybert_distill.PRESETS is PRESETS
    assert {"Match", "LOSSES", "PRESETS"} <= set(tinybert_distill.__all__)


# ---- tinybert-gd with a preset ----------------------------------------------------------------

TINY_STUDENT = [
    *("--num_hidden_layers", "2", "--hidden_size", "16"),
    *("--num_attention_heads", "2", "--intermediate_size", "32"),
    *("--max_position_embeddings", "64"),
    *("--hidden_dropout_prob", "0.0", "--attention_probs_dropout_prob", "0.0"),
]


def tinybert_gd(output, teacher, data, matches) -> int:
    return general_distill(
        [
            *("--load_teacher_ckpt_path", str(teacher), "--data_dir", str(data)),
            *("--save_ckpt_path", str(output), "--epoch_size", "2"),
            *("--common_cfg.batch_size", "16", "--learning_rate", "1e-3"),
            *("--save_ckpt_step", "1000", "--matches", matches),
            *TINY_STUDENT,
        ]
    )


def test_tinybert_gd_learns_the_last_layer(tmp_path, pretrained_tiny, sst2_train, capsys):
    assert tinybert_gd(tmp_path, pretrained_tiny, sst2_train, "last_layer") == 0
    console = capsys.readouterr().err
    assert "matches (student layer -> teacher layer): attention 1->1 x1, hidden 2->2 x1" in console
    first, last = mean_first_last([r["loss"] for r in metrics(tmp_path, "gd")])
    assert last < first * 0.9
    checkpoint = read_checkpoint(tmp_path / "gd.ckpt")
    assert checkpoint.tensors["fit_dense.weight"].shape == (32, 16)
    assert yaml.safe_load((tmp_path / "config.yaml").read_text())["matches"] == "last_layer"


def test_a_bad_matches_entry_stops_tinybert_gd_before_it_writes(
    tmp_path, pretrained_tiny, sst2_train, capsys
):
    output = tmp_path / "out"
    bad = "[{feature: hidden, loss: hidden_mse, student_layer: 3, teacher_layer: 2}]"
    assert tinybert_gd(output, pretrained_tiny, sst2_train, bad) == 1
    error = capsys.readouterr().err
    assert "student_layer 3 is not one of the student's hidden layers, 0..2" in error
    assert "Traceback" not in error and len(error.strip().splitlines()) == 1
    assert not output.exists()
