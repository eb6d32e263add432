"""Hugging Face <-> MindSpore: bit-exact round trips, head parity, clear errors."""

import json
import logging
import os
import shutil

import mindspore as ms
import numpy as np
import pytest
from conftest import FIXTURES
from safetensors.numpy import load_file, save_file

from tinybert_model import CheckpointError, hf_to_ms, load_model, ms_to_hf, read_checkpoint

HEAD_FIXTURES = ["hf_tiny_cls", "hf_tiny_ner", "hf_tiny_pretraining", "hf_tiny_mlm"]


def test_minilm_round_trip_is_bit_exact(minilm_dir, minilm_ckpt, tmp_path):
    ms_to_hf(minilm_ckpt, tmp_path / "back", vocab=minilm_dir / "vocab.txt")
    original = load_file(str(minilm_dir / "model.safetensors"))
    original.pop("embeddings.position_ids")  # a buffer (0..511), not a weight
    written = load_file(str(tmp_path / "back" / "model.safetensors"))
    assert set(written) == set(original)
    for name, value in original.items():
        assert written[name].dtype == value.dtype
        assert np.array_equal(written[name], value), name
    config = json.loads((tmp_path / "back" / "config.json").read_text())
    assert config["architectures"] == ["BertModel"] and config["hidden_size"] == 384
    assert (tmp_path / "back" / "vocab.txt").read_bytes() == (minilm_dir / "vocab.txt").read_bytes()


@pytest.mark.parametrize("folder", HEAD_FIXTURES)
def test_heads_round_trip_and_match_transformers_logits(folder, tmp_path):
    source = FIXTURES / folder
    architecture = hf_to_ms(source, tmp_path / "model.ckpt")
    assert architecture == json.loads((source / "config.json").read_text())["architectures"][0]

    # same logits as transformers computed for the fixture
    reference = np.load(source / "reference.npz")
    model = load_model(tmp_path / "model.ckpt")
    model.set_train(False)
    outputs = model(*[ms.Tensor(reference[k]) for k in ("input_ids", "segment_ids", "input_mask")])
    np.testing.assert_allclose(outputs[0].asnumpy(), reference["logits_0"], atol=1e-5)
    if "logits_1" in reference:
        np.testing.assert_allclose(outputs[1].asnumpy(), reference["logits_1"], atol=1e-5)

    ms_to_hf(tmp_path / "model.ckpt", tmp_path / "back")
    original = load_file(str(source / "model.safetensors"))
    written = load_file(str(tmp_path / "back" / "model.safetensors"))
    assert set(written) == set(original)
    assert all(np.array_equal(written[n], original[n]) for n in original)
    labels = json.loads((tmp_path / "back" / "config.json").read_text()).get("id2label")
    assert labels == json.loads((source / "config.json").read_text()).get("id2label")


def test_labels_and_task_type_travel_with_the_checkpoint(tmp_path):
    hf_to_ms(FIXTURES / "hf_tiny_ner", tmp_path / "ner.ckpt")
    config = read_checkpoint(tmp_path / "ner.ckpt").config
    assert config.labels == ["O", "B-name", "I-name", "B-org", "I-org"]
    assert config.task_type == "ner"


def copy_fixture(tmp_path, folder="hf_tiny_cls"):
    target = tmp_path / folder
    shutil.copytree(FIXTURES / folder, target)
    return target, load_file(str(target / "model.safetensors"))


def test_missing_head_strict_and_not(tmp_path):
    folder, tensors = copy_fixture(tmp_path, "hf_tiny_pretraining")
    del tensors["cls.seq_relationship.weight"]
    save_file(tensors, str(folder / "model.safetensors"))
    with pytest.raises(
        CheckpointError, match=r"head tensors missing: cls\.seq_relationship\.weight"
    ):
        hf_to_ms(folder, tmp_path / "out.ckpt")
    assert not (tmp_path / "out.ckpt").exists()
    assert hf_to_ms(folder, tmp_path / "out.ckpt", strict=False) == "BertModel"
    assert read_checkpoint(tmp_path / "out.ckpt").architecture == "BertModel"


def test_missing_encoder_tensor_is_always_an_error(tmp_path):
    folder, tensors = copy_fixture(tmp_path)
    del tensors["bert.encoder.layer.1.output.dense.bias"]
    save_file(tensors, str(folder / "model.safetensors"))
    with pytest.raises(
        CheckpointError, match=r"missing tensors: bert\.encoder\.layer\.1\.output\.dense\.bias"
    ):
        hf_to_ms(folder, tmp_path / "out.ckpt", strict=False)


def test_unknown_and_misshaped_tensors_are_named(tmp_path):
    folder, tensors = copy_fixture(tmp_path)
    save_file(
        {**tensors, "bert.adapter.weight": np.zeros(3, np.float32)},
        str(folder / "model.safetensors"),
    )
    with pytest.raises(CheckpointError, match=r"unknown tensors: bert\.adapter\.weight"):
        hf_to_ms(folder, tmp_path / "out.ckpt")
    tensors["bert.pooler.dense.weight"] = np.zeros((32, 31), np.float32)
    save_file(tensors, str(folder / "model.safetensors"))
    with pytest.raises(
        CheckpointError, match=r"bert\.pooler\.weight: \(32, 31\), expected \(32, 32\)"
    ):
        hf_to_ms(folder, tmp_path / "out.ckpt")
    assert os.listdir(tmp_path) == ["hf_tiny_cls"]


def test_directory_without_config(tmp_path):
    folder, _ = copy_fixture(tmp_path)
    (folder / "config.json").unlink()
    with pytest.raises(CheckpointError, match="no config.json"):
        hf_to_ms(folder, tmp_path / "out.ckpt")
    with pytest.raises(CheckpointError, match="not a directory"):
        hf_to_ms(tmp_path / "nowhere", tmp_path / "out.ckpt")


def test_config_that_disagrees_with_the_weights(tmp_path):
    folder, _ = copy_fixture(tmp_path)
    config = json.loads((folder / "config.json").read_text())
    config["num_hidden_layers"] = 4
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(
        CheckpointError, match="has 2 encoder layers but the config says num_hidden_layers=4"
    ):
        hf_to_ms(folder, tmp_path / "out.ckpt")


def test_old_layer_norm_names(tmp_path):
    """Checkpoints from older transformers call LayerNorm parameters gamma and beta."""
    folder, tensors = copy_fixture(tmp_path)
    old = {
        n.replace("LayerNorm.weight", "LayerNorm.gamma").replace(
            "LayerNorm.bias", "LayerNorm.beta"
        ): v
        for n, v in tensors.items()
    }
    assert any(n.endswith("LayerNorm.gamma") for n in old)
    save_file(old, str(folder / "model.safetensors"))
    hf_to_ms(folder, tmp_path / "old.ckpt")
    hf_to_ms(FIXTURES / "hf_tiny_cls", tmp_path / "new.ckpt")
    old_tensors = read_checkpoint(tmp_path / "old.ckpt").tensors
    new_tensors = read_checkpoint(tmp_path / "new.ckpt").tensors
    assert all(np.array_equal(old_tensors[n], new_tensors[n]) for n in new_tensors)


def test_token_classifier_needs_no_pooler_and_ignores_one(tmp_path):
    """transformers' tagger has no pooler, and neither has ours; one built with a pooler
    (add_pooling_layer=True) converts with it left out."""
    hf_to_ms(FIXTURES / "hf_tiny_ner", tmp_path / "ner.ckpt")
    assert not [n for n in read_checkpoint(tmp_path / "ner.ckpt").tensors if "pooler" in n]
    folder, tensors = copy_fixture(tmp_path, "hf_tiny_ner")
    tensors["bert.pooler.dense.weight"] = np.ones((32, 32), np.float32)
    tensors["bert.pooler.dense.bias"] = np.ones(32, np.float32)
    save_file(tensors, str(folder / "model.safetensors"))
    hf_to_ms(folder, tmp_path / "pooled.ckpt")
    converted = read_checkpoint(tmp_path / "pooled.ckpt").tensors
    plain = read_checkpoint(tmp_path / "ner.ckpt").tensors
    assert set(converted) == set(plain)
    assert all(np.array_equal(converted[n], plain[n]) for n in plain)


def test_masked_lm_converts_without_pooler_or_next_sentence_head(tmp_path, caplog):
    """transformers' BertForMaskedLM stores the encoder without a pooler and the masked-LM
    head alone; it converts as our BertForMaskedLM, saying what it does not have."""
    source = FIXTURES / "hf_tiny_mlm"
    stored = load_file(str(source / "model.safetensors"))
    assert not [n for n in stored if "pooler" in n or "seq_relationship" in n]
    with caplog.at_level(logging.INFO, logger="tinybert_model"):
        assert hf_to_ms(source, tmp_path / "mlm.ckpt") == "BertForMaskedLM"
    assert "no next-sentence head and no pooler in it" in caplog.text
    checkpoint = read_checkpoint(tmp_path / "mlm.ckpt")
    assert checkpoint.architecture == "BertForMaskedLM"
    assert {"mlm_dense.weight", "mlm_norm.gamma", "mlm_bias"} <= set(checkpoint.tensors)
    assert not [n for n in checkpoint.tensors if "pooler" in n or n.startswith("nsp.")]
    np.testing.assert_array_equal(checkpoint.tensors["mlm_bias"], stored["cls.predictions.bias"])


def test_masked_lm_with_the_tied_copies_pytorch_model_bin_holds(tmp_path):
    """save_pretrained(safe_serialization=False) also writes the tied decoder
    (cls.predictions.decoder.weight = the word embeddings, .bias = cls.predictions.bias);
    they convert to the same checkpoint. An untied decoder is refused."""
    folder, tensors = copy_fixture(tmp_path, "hf_tiny_mlm")
    tensors["cls.predictions.decoder.weight"] = tensors["bert.embeddings.word_embeddings.weight"]
    tensors["cls.predictions.decoder.bias"] = tensors.pop("cls.predictions.bias")
    save_file(tensors, str(folder / "model.safetensors"))
    assert hf_to_ms(folder, tmp_path / "tied.ckpt") == "BertForMaskedLM"
    hf_to_ms(FIXTURES / "hf_tiny_mlm", tmp_path / "plain.ckpt")
    tied = read_checkpoint(tmp_path / "tied.ckpt").tensors
    plain = read_checkpoint(tmp_path / "plain.ckpt").tensors
    assert set(tied) == set(plain) and all(np.array_equal(tied[n], plain[n]) for n in plain)

    tensors["cls.predictions.decoder.weight"] = tensors["cls.predictions.decoder.weight"] + 1.0
    save_file(tensors, str(folder / "model.safetensors"))
    with pytest.raises(CheckpointError, match="decoder.weight differs from the word embeddings"):
        hf_to_ms(folder, tmp_path / "untied.ckpt")


def test_masked_lm_architecture_comes_from_the_tensors(tmp_path, caplog):
    """bert-base-uncased's config.json says BertForMaskedLM over a pooler and an NSP head: a
    next-sentence head makes a BertForPreTraining. A masked-LM head alone is a BertForMaskedLM
    whatever config.json says, and a pooler beside it is left out, saying so."""
    folder, _ = copy_fixture(tmp_path, "hf_tiny_pretraining")
    config = json.loads((folder / "config.json").read_text())
    declared_masked_lm = {**config, "architectures": ["BertForMaskedLM"]}
    (folder / "config.json").write_text(json.dumps(declared_masked_lm))
    assert hf_to_ms(folder, tmp_path / "pretraining.ckpt") == "BertForPreTraining"

    folder, tensors = copy_fixture(tmp_path / "pooled", "hf_tiny_mlm")
    pretraining = load_file(str(FIXTURES / "hf_tiny_pretraining" / "model.safetensors"))
    tensors["bert.pooler.dense.weight"] = pretraining["bert.pooler.dense.weight"]
    tensors["bert.pooler.dense.bias"] = pretraining["bert.pooler.dense.bias"]
    save_file(tensors, str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps({**config, "architectures": None}))
    with caplog.at_level(logging.INFO, logger="tinybert_model"):
        assert hf_to_ms(folder, tmp_path / "pooled.ckpt") == "BertForMaskedLM"
    assert "pooler left out (bert.pooler.dense.bias, bert.pooler.dense.weight)" in caplog.text
    hf_to_ms(FIXTURES / "hf_tiny_mlm", tmp_path / "plain.ckpt")
    pooled = read_checkpoint(tmp_path / "pooled.ckpt").tensors
    assert set(pooled) == set(read_checkpoint(tmp_path / "plain.ckpt").tensors)


def test_masked_lm_missing_head_tensor_strict_and_not(tmp_path):
    folder, tensors = copy_fixture(tmp_path, "hf_tiny_mlm")
    del tensors["cls.predictions.transform.dense.weight"]
    save_file(tensors, str(folder / "model.safetensors"))
    with pytest.raises(
        CheckpointError,
        match=r"BertForMaskedLM head tensors missing: cls\.predictions\.transform\.dense\.weight",
    ):
        hf_to_ms(folder, tmp_path / "out.ckpt")
    assert not (tmp_path / "out.ckpt").exists()


def test_masked_lm_has_no_google_or_zoo_counterpart(tmp_path):
    from tinybert_model import ms_to_tf, ms_to_zoo

    hf_to_ms(FIXTURES / "hf_tiny_mlm", tmp_path / "mlm.ckpt")
    with pytest.raises(CheckpointError, match="Google's TF BERT has no masked-LM-only model"):
        ms_to_tf(tmp_path / "mlm.ckpt", tmp_path / "tf" / "model.ckpt")
    with pytest.raises(CheckpointError, match="the model zoo has no masked-LM-only network"):
        ms_to_zoo(tmp_path / "mlm.ckpt", tmp_path / "zoo.ckpt")
    assert sorted(os.listdir(tmp_path)) == ["mlm.ckpt"]
