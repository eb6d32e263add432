"""Google TF1 BERT <-> MindSpore, on a checkpoint real TensorFlow wrote (tests/fixtures)."""

import os
import shutil

import mindspore as ms
import numpy as np
import pytest
from conftest import FIXTURES

from tinybert_model import CheckpointError, load_model, ms_to_tf, read_checkpoint, tf_to_ms
from tinybert_model.convert.tf_checkpoint import read_tf_checkpoint, write_tf_checkpoint

TF_FIXTURE = FIXTURES / "tf_bert_tiny"


def test_round_trip_is_bit_exact(tmp_path):
    assert tf_to_ms(TF_FIXTURE / "model.ckpt", tmp_path / "bert.ckpt") == "BertForPreTraining"
    ms_to_tf(tmp_path / "bert.ckpt", tmp_path / "tf" / "model.ckpt")
    original = read_tf_checkpoint(TF_FIXTURE / "model.ckpt")
    original.pop("global_step")  # training state, not carried over
    back = read_tf_checkpoint(tmp_path / "tf" / "model.ckpt")
    assert set(back) == set(original)
    for name, value in original.items():
        assert back[name].dtype == value.dtype and np.array_equal(back[name], value), name
    assert (tmp_path / "tf" / "bert_config.json").is_file()


def test_kernels_are_transposed_and_the_model_runs(tmp_path):
    tf_to_ms(TF_FIXTURE / "model.ckpt", tmp_path / "bert.ckpt")
    ours = read_checkpoint(tmp_path / "bert.ckpt")
    theirs = read_tf_checkpoint(TF_FIXTURE / "model.ckpt")
    assert ours.config.num_hidden_layers == 2 and ours.config.intermediate_size == 37
    np.testing.assert_array_equal(
        ours.tensors["bert.layers.1.intermediate.weight"],
        theirs["bert/encoder/layer_1/intermediate/dense/kernel"].T,
    )
    np.testing.assert_array_equal(
        ours.tensors["nsp.weight"], theirs["cls/seq_relationship/output_weights"]
    )
    model = load_model(tmp_path / "bert.ckpt")
    model.set_train(False)
    prediction_logits, nsp_logits, _, _ = model(*[ms.Tensor(np.ones((2, 6), np.int32))] * 3)
    assert prediction_logits.shape == (2, 6, 99) and nsp_logits.shape == (2, 2)


def test_fine_tuned_classifier_and_adam_slots(tmp_path):
    """A run_classifier.py checkpoint: output_weights/output_bias plus Adam slots."""
    tensors = read_tf_checkpoint(TF_FIXTURE / "model.ckpt")
    tensors = {n: v for n, v in tensors.items() if not n.startswith("cls/")}
    rng = np.random.default_rng(0)
    tensors["output_weights"] = rng.normal(size=(3, 32)).astype(np.float32)
    tensors["output_bias"] = np.zeros(3, np.float32)
    tensors["output_weights/adam_m"] = np.zeros((3, 32), np.float32)
    tensors["bert/pooler/dense/kernel/adam_v"] = np.zeros((32, 32), np.float32)
    write_tf_checkpoint(tmp_path / "tuned" / "model.ckpt", tensors)
    shutil.copy(TF_FIXTURE / "bert_config.json", tmp_path / "tuned")
    assert (
        tf_to_ms(tmp_path / "tuned" / "model.ckpt", tmp_path / "cls.ckpt")
        == "BertForSequenceClassification"
    )
    checkpoint = read_checkpoint(tmp_path / "cls.ckpt")
    assert checkpoint.config.labels == ["0", "1", "2"]
    np.testing.assert_array_equal(
        checkpoint.tensors["classifier.weight"], tensors["output_weights"]
    )


def test_missing_head_tensor_strict_and_not(tmp_path):
    tensors = read_tf_checkpoint(TF_FIXTURE / "model.ckpt")
    del tensors["cls/predictions/output_bias"]
    write_tf_checkpoint(tmp_path / "model.ckpt", tensors)
    config = TF_FIXTURE / "bert_config.json"
    with pytest.raises(CheckpointError, match="head tensors missing: cls/predictions/output_bias"):
        tf_to_ms(tmp_path / "model.ckpt", tmp_path / "out.ckpt", config=config)
    assert not (tmp_path / "out.ckpt").exists()
    assert (
        tf_to_ms(tmp_path / "model.ckpt", tmp_path / "out.ckpt", config=config, strict=False)
        == "BertModel"
    )


def test_no_config_anywhere(tmp_path):
    for name in ("model.ckpt.index", "model.ckpt.data-00000-of-00001"):
        shutil.copy(TF_FIXTURE / name, tmp_path)
    with pytest.raises(CheckpointError, match="no bert_config.json beside it; pass --config"):
        tf_to_ms(tmp_path / "model.ckpt", tmp_path / "out.ckpt")
    assert sorted(os.listdir(tmp_path)) == ["model.ckpt.data-00000-of-00001", "model.ckpt.index"]


def test_shape_mismatch_with_config(tmp_path):
    tensors = read_tf_checkpoint(TF_FIXTURE / "model.ckpt")
    tensors["bert/encoder/layer_0/attention/self/query/kernel"] = np.zeros((32, 16), np.float32)
    write_tf_checkpoint(tmp_path / "model.ckpt", tensors)
    with pytest.raises(
        CheckpointError,
        match=r"layers\.0\.attention\.query\.weight: \(16, 32\), expected \(32, 32\)",
    ):
        tf_to_ms(
            tmp_path / "model.ckpt", tmp_path / "out.ckpt", config=TF_FIXTURE / "bert_config.json"
        )
