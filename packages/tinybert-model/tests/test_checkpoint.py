"""Self-describing checkpoints: save, load, rebuild, name matching, errors, atomic writes."""

import dataclasses
import os

import mindspore as ms
import numpy as np
import pytest

from tinybert_model import (
    ARCHITECTURES,
    BertForSequenceClassification,
    BertForTokenClassification,
    BertModel,
    CheckpointError,
    TinyBertStudent,
    expected_shapes,
    load_checkpoint,
    load_model,
    named_parameters,
    read_checkpoint,
    save_checkpoint,
    write_checkpoint,
)
from tinybert_model.checkpoint import check_tensors, stored_architecture


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


@pytest.mark.parametrize("architecture", list(ARCHITECTURES))
def test_every_model_has_the_name_tables_tensors(tiny_config, architecture):
    """modeling.py's cells and names.py's table agree on every name and shape."""
    config = tiny_config
    if architecture in ("BertForSequenceClassification", "BertForTokenClassification"):
        config = dataclasses.replace(tiny_config, labels=["a", "b", "c"], task_type="ner")
    model = ARCHITECTURES[architecture](config)
    shapes = {name: tuple(p.shape) for name, p in named_parameters(model).items()}
    assert shapes == expected_shapes(config, architecture)


def test_token_classifier_has_no_pooler_and_loads_checkpoints_that_had_one(tiny_config, tmp_path):
    tags = dataclasses.replace(tiny_config, labels=["O", "B-x", "I-x"], task_type="ner")
    model = BertForTokenClassification(tags)
    assert not [name for name in named_parameters(model) if "pooler" in name]
    # what tinybert-model wrote before: the same tensors plus a zero-filled pooler
    old = parameters(model)
    old["bert.pooler.weight"] = np.zeros((32, 32), np.float32)
    old["bert.pooler.bias"] = np.zeros(32, np.float32)
    write_checkpoint(tmp_path / "old.ckpt", old, tags, "BertForTokenClassification")
    write_checkpoint(tmp_path / "no_architecture.ckpt", old, tags)
    inputs = [
        ms.Tensor(np.array(row, np.int32)) for row in ([[5, 6, 7, 0]], [[0] * 4], [[1] * 3 + [0]])
    ]
    model.set_train(False)
    expected = model(*inputs).logits.asnumpy()
    for name in ("old.ckpt", "no_architecture.ckpt"):
        loaded = load_model(tmp_path / name)
        assert type(loaded) is BertForTokenClassification
        loaded.set_train(False)
        np.testing.assert_array_equal(loaded(*inputs).logits.asnumpy(), expected)
        checkpoint = read_checkpoint(tmp_path / name)
        check_tensors(checkpoint.tensors, tags, "BertForTokenClassification", name)
        assert stored_architecture(checkpoint, tags, name) == "BertForTokenClassification"
