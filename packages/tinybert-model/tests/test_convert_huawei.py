"""Issue 35: huawei-noah's TinyBERT folders (pytorch_model.bin in torch's legacy layout, their
tensor names and config keys) convert into our students, fit_dense included."""

import json
import logging
import shutil

import numpy as np
import pytest
from conftest import FIXTURES
from safetensors.numpy import load_file, save_file

from tinybert_model import (
    BertModel,
    CheckpointError,
    expected_shapes,
    hf_to_ms,
    load_model,
    read_checkpoint,
    read_hf_checkpoint,
)
from tinybert_model.cli import main
from tinybert_model.names import name_pairs

TORCH = FIXTURES / "torch"


def as_safetensors_folder(name: str, tmp_path):
    """The same tensors as the fixture's pytorch_model.bin (torch wrote both), as safetensors."""
    folder = tmp_path / f"{name}_safetensors"
    folder.mkdir()
    shutil.copyfile(TORCH / name / "config.json", folder / "config.json")
    shutil.copyfile(TORCH / f"{name}.safetensors", folder / "model.safetensors")
    return folder


def test_their_config_keys_are_read_and_theirs_alone_ignored():
    config = json.loads((TORCH / "huawei_general" / "config.json").read_text())
    assert "model_type" not in config and {"cell", "structure", "pre_trained"} <= set(config)
    checkpoint = read_hf_checkpoint(TORCH / "huawei_general")
    assert (checkpoint.config.hidden_size, checkpoint.config.num_hidden_layers) == (16, 2)
    assert checkpoint.config.intermediate_size == 24 and checkpoint.config.labels is None


def test_a_general_tinybert_becomes_our_general_student_with_its_fit_dense(tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="tinybert_model"):
        assert hf_to_ms(TORCH / "huawei_general", tmp_path / "gd.ckpt") == "BertModel"
    assert "huawei-noah general TinyBERT: encoder and fit_dense (16 -> 32" in caplog.text
    assert "pre-training heads left out (8 tensors: cls.*)" in caplog.text
    checkpoint = read_checkpoint(tmp_path / "gd.ckpt")
    # what tinybert-gd writes: the BertModel's tensors and fit_dense, nothing else
    expected = set(expected_shapes(checkpoint.config, "BertModel")) | {
        "fit_dense.weight",
        "fit_dense.bias",
    }
    assert set(checkpoint.tensors) == expected and checkpoint.architecture == "BertModel"
    # every value as torch saved it, under our names
    theirs = load_file(str(TORCH / "huawei_general.safetensors"))
    for ours, their_name in name_pairs("hf", "BertModel", 2, "bert."):
        assert checkpoint.tensors[ours].tobytes() == theirs[their_name].tobytes(), ours
    for name in ("fit_dense.weight", "fit_dense.bias"):
        np.testing.assert_array_equal(checkpoint.tensors[name], theirs[name])
    assert isinstance(load_model(tmp_path / "gd.ckpt"), BertModel)


def test_bin_and_safetensors_of_their_checkpoint_convert_alike(tmp_path):
    for name in ("huawei_general", "huawei_task"):
        from_bin = read_hf_checkpoint(TORCH / name)
        from_safetensors = read_hf_checkpoint(as_safetensors_folder(name, tmp_path))
        assert from_bin.architecture == from_safetensors.architecture
        assert from_bin.tensors.keys() == from_safetensors.tensors.keys()
        for tensor, value in from_safetensors.tensors.items():
            assert from_bin.tensors[tensor].tobytes() == value.tobytes(), (name, tensor)


def test_a_task_tinybert_becomes_a_student_classifier_and_says_its_head_differs(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="tinybert_model"):
        architecture = hf_to_ms(TORCH / "huawei_task", tmp_path / "task.ckpt")
    assert architecture == "BertForSequenceClassification"
    assert "read the pooled output through a ReLU" in caplog.text
    checkpoint = read_checkpoint(tmp_path / "task.ckpt")
    assert (
        checkpoint.config.labels == ["0", "1"] and checkpoint.config.task_type == "classification"
    )
    theirs = load_file(str(TORCH / "huawei_task.safetensors"))
    for name in ("classifier.weight", "classifier.bias", "fit_dense.weight", "fit_dense.bias"):
        np.testing.assert_array_equal(checkpoint.tensors[name], theirs[name])
    assert load_model(tmp_path / "task.ckpt").config.num_labels == 2


def test_a_fit_dense_that_does_not_start_at_the_students_width_is_refused(tmp_path):
    folder = as_safetensors_folder("huawei_general", tmp_path)
    tensors = load_file(str(folder / "model.safetensors"))
    tensors["fit_dense.weight"] = np.zeros((32, 15), np.float32)
    save_file(tensors, str(folder / "model.safetensors"))
    with pytest.raises(
        CheckpointError,
        match=r"fit_dense.weight \(32, 15\) and fit_dense.bias \(32,\) do not map the "
        r"student's hidden_size 16",
    ):
        hf_to_ms(folder, tmp_path / "gd.ckpt")
    del tensors["fit_dense.weight"]
    save_file(tensors, str(folder / "model.safetensors"))
    with pytest.raises(CheckpointError, match="fit_dense has a fit_dense.bias and nothing else"):
        hf_to_ms(folder, tmp_path / "gd.ckpt")
    assert not (tmp_path / "gd.ckpt").exists()


def test_tinybert_convert_hf2ms_on_a_downloaded_general_tinybert(tmp_path, capsys):
    assert main(["hf2ms", "--input", str(TORCH / "huawei_general"), "--output",
                 str(tmp_path / "gd.ckpt")]) == 0  # fmt: skip
    assert read_checkpoint(tmp_path / "gd.ckpt").tensors["fit_dense.weight"].shape == (32, 16)
