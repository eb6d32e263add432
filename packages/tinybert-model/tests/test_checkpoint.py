"""Self-describing checkpoints: save, load, rebuild, name matching, errors, atomic writes."""

import dataclasses
import os

import mindspore as ms
import numpy as np
import pytest

from tinybert_model import (
    BertForSequenceClassification,
    BertModel,
    CheckpointError,
    TinyBertStudent,
    load_checkpoint,
    load_model,
    read_checkpoint,
    save_checkpoint,
)
from tinybert_model.checkpoint import named_parameters, write_checkpoint


def parameters(model) -> dict:
    return {name: p.asnumpy() for name, p in named_parameters(model).items()}


def classifier_config(config):
    return dataclasses.replace(config, labels=["neg", "pos"], task_type="classification")


def test_save_then_load_model_rebuilds_it(tiny_config, tmp_path):
    model = BertForSequenceClassification(classifier_config(tiny_config))
    save_checkpoint(model, tmp_path / "m.ckpt")
    checkpoint = read_checkpoint(tmp_path / "m.ckpt")
    assert checkpoint.config == model.config
    assert checkpoint.architecture == "BertForSequenceClassification"
    rebuilt = load_model(tmp_path / "m.ckpt")
    assert type(rebuilt) is BertForSequenceClassification
    for name, value in parameters(model).items():
        np.testing.assert_array_equal(parameters(rebuilt)[name], value)
    assert [f for f in os.listdir(tmp_path)] == ["m.ckpt"]  # no temporary left


def test_encoder_checkpoint_loads_into_a_head_and_back(tiny_config, tmp_path):
    encoder = BertModel(tiny_config)
    save_checkpoint(encoder, tmp_path / "encoder.ckpt")
    classifier = BertForSequenceClassification(classifier_config(tiny_config))
    with pytest.raises(CheckpointError, match="classifier.weight"):
        load_checkpoint(tmp_path / "encoder.ckpt", classifier)  # strict: the head is missing
    report = load_checkpoint(tmp_path / "encoder.ckpt", classifier, strict=False)
    assert report.missing == ["classifier.weight", "classifier.bias"]
    np.testing.assert_array_equal(
        parameters(classifier)["bert.pooler.weight"], parameters(encoder)["pooler.weight"]
    )
    save_checkpoint(classifier, tmp_path / "classifier.ckpt")
    report = load_checkpoint(tmp_path / "classifier.ckpt", BertModel(tiny_config))
    assert report.unused == ["classifier.bias", "classifier.weight"]


def test_student_checkpoint_loads_into_the_plain_model(tiny_config, tmp_path):
    student = TinyBertStudent(BertForSequenceClassification(classifier_config(tiny_config)), 48)
    save_checkpoint(student, tmp_path / "student.ckpt")
    checkpoint = read_checkpoint(tmp_path / "student.ckpt")
    assert checkpoint.tensors["fit_dense.weight"].shape == (48, 32)
    assert checkpoint.architecture == "BertForSequenceClassification"
    plain = load_model(tmp_path / "student.ckpt")
    np.testing.assert_array_equal(
        parameters(plain)["classifier.weight"], parameters(student)["classifier.weight"]
    )


def test_shape_mismatch_names_the_tensor(tiny_config, tmp_path):
    save_checkpoint(BertModel(tiny_config), tmp_path / "small.ckpt")
    wider = dataclasses.replace(tiny_config, intermediate_size=40)
    with pytest.raises(CheckpointError, match=r"layers\.0\.intermediate\.weight: \(37, 32\)"):
        load_checkpoint(tmp_path / "small.ckpt", BertModel(wider))


def test_unreadable_checkpoints(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        read_checkpoint(tmp_path / "missing.ckpt")
    (tmp_path / "text.ckpt").write_text("not a checkpoint")
    with pytest.raises(CheckpointError, match="not a readable MindSpore checkpoint"):
        read_checkpoint(tmp_path / "text.ckpt")


def test_failed_write_leaves_nothing(tmp_path):
    with pytest.raises((TypeError, ValueError)):
        write_checkpoint(tmp_path / "bad.ckpt", {"x": np.array(["strings", "fail"], dtype=object)})
    assert os.listdir(tmp_path) == []


def test_config_less_checkpoint_needs_a_config(tiny_config, tmp_path):
    model = BertModel(tiny_config)
    write_checkpoint(tmp_path / "bare.ckpt", parameters(model))
    with pytest.raises(CheckpointError, match="no embedded config"):
        load_model(tmp_path / "bare.ckpt")
    rebuilt = load_model(tmp_path / "bare.ckpt", config=tiny_config)
    inputs = [ms.Tensor(np.ones((1, 4), np.int32))] * 3
    model.set_train(False)
    rebuilt.set_train(False)
    np.testing.assert_array_equal(model(*inputs)[1].asnumpy(), rebuilt(*inputs)[1].asnumpy())


def test_names_survive_nesting_and_extra_entries_round_trip(tiny_config, tmp_path):
    """MindSpore renames parameters of a cell placed in another; checkpoints use paths."""
    student = TinyBertStudent(BertModel(tiny_config), 48)

    class Holder(ms.nn.Cell):
        def __init__(self):
            super().__init__()
            self.student = student

    Holder()
    assert student.fit_dense.weight.name == "student.fit_dense.weight"
    save_checkpoint(student, tmp_path / "s.ckpt", extra={"note": "phase 1"})
    checkpoint = read_checkpoint(tmp_path / "s.ckpt")
    assert "fit_dense.weight" in checkpoint.tensors and "pooler.weight" in checkpoint.tensors
    assert checkpoint.extra == {"note": "phase 1"}
    load_checkpoint(tmp_path / "s.ckpt", TinyBertStudent(BertModel(tiny_config), 48))
