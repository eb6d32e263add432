"""Issue 14: per-tensor checksums, file modes under the umask, stale temporaries, write
failures that name the path, integer tensors in place of weights, architecture-less
checkpoints and byte-order marks."""

import dataclasses
import json
import os
import shutil
import socket
import stat
import subprocess
import sys

import mindspore as ms
import numpy as np
import pytest
from conftest import FIXTURES, fork, wait
from safetensors.numpy import load_file, save_file

from tinybert_model import (
    BertForSequenceClassification,
    CheckpointError,
    hf_to_ms,
    load_model,
    ms_to_hf,
    ms_to_tf,
    read_checkpoint,
    save_checkpoint,
)
from tinybert_model.checkpoint import write_checkpoint
from tinybert_model.cli import main

QUERY = "bert.layers.1.attention.query.weight"


@pytest.fixture
def classifier(tiny_config):
    config = dataclasses.replace(tiny_config, labels=["neg", "pos"], task_type="classification")
    return BertForSequenceClassification(config)


@pytest.fixture
def umask_022():
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


# ---- item 6: checksums ---------------------------------------------------------------------


def test_a_corrupt_tensor_is_refused_on_load_naming_it(classifier, tmp_path):
    path = tmp_path / "model.ckpt"
    save_checkpoint(classifier, path)
    data = bytearray(path.read_bytes())
    weights = dict(classifier.parameters_and_names())[QUERY].asnumpy().tobytes()
    where = data.find(weights)
    assert where > 0 and data.find(weights, where + 1) < 0  # its bytes, once
    data[where + 40 : where + 44] = np.float32("nan").tobytes()  # still a valid protobuf
    path.write_bytes(bytes(data))
    message = rf"{path}: tensor {QUERY} does not match its checksum: the file is corrupt"
    with pytest.raises(CheckpointError, match=message):
        read_checkpoint(path)
    with pytest.raises(CheckpointError, match=message):
        load_model(path)


def test_checkpoints_written_without_checksums_still_load(classifier, tmp_path):
    # What write_checkpoint wrote before checksums: the tensors, config and architecture.
    old = tmp_path / "old.ckpt"
    entries = [{"name": n, "data": p} for n, p in classifier.parameters_and_names()]
    config = json.dumps(classifier.config.to_dict())
    append = {"bert_config": config, "architecture": "BertForSequenceClassification"}
    ms.save_checkpoint(entries, str(old), append_dict=append)
    loaded = dict(load_model(old).parameters_and_names())[QUERY].asnumpy()
    np.testing.assert_array_equal(loaded, dict(classifier.parameters_and_names())[QUERY].asnumpy())
    assert read_checkpoint(old).extra == {}  # and new ones do not show the checksums as extra
    save_checkpoint(classifier, tmp_path / "new.ckpt")
    assert read_checkpoint(tmp_path / "new.ckpt").extra == {}


# ---- item 9: the umask ---------------------------------------------------------------------


def test_written_files_honour_the_umask(classifier, tmp_path, umask_022, shared_data):
    save_checkpoint(classifier, tmp_path / "model.ckpt")
    vocab = shared_data / "vocab" / "bert-base-uncased-vocab.txt"
    ms_to_hf(tmp_path / "model.ckpt", tmp_path / "hf", vocab=vocab)
    ms_to_tf(tmp_path / "model.ckpt", tmp_path / "tf" / "model.ckpt")
    hf_to_ms(tmp_path / "hf", tmp_path / "back.ckpt")
    written = [
        tmp_path / "model.ckpt",
        tmp_path / "back.ckpt",
        *(tmp_path / "hf").iterdir(),
        *(tmp_path / "tf").iterdir(),
    ]
    assert {p.name: oct(mode(p)) for p in written} == {p.name: "0o644" for p in written}
    os.umask(0o027)  # a team's umask: group-readable
    save_checkpoint(classifier, tmp_path / "team.ckpt")
    assert mode(tmp_path / "team.ckpt") == 0o640


# ---- item 10: stale temporaries, write failures ---------------------------------------------


def test_a_write_removes_only_the_temporaries_of_killed_writers(classifier, tmp_path):
    from tinybert_core import remove_stale_temporaries

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    host = socket.gethostname()
    killed = [
        f".td_phase1_step00000035.ckpt.tinybert-{host}-{dead.pid}-x1y2z3ab.tmp.ckpt",
        f".td_phase1_step00000035.ckpt.tinybert-{host}-{dead.pid}-x1y2z3ab.tmp.tmp",  # MindSpore's
    ]
    alive = [f".best.ckpt.tinybert-{host}-{os.getpid()}-a1b2c3d4.tmp.ckpt"]
    not_ours = [".notes.txt.tmp", "keep.ckpt.tmp"]
    for name in killed + alive + not_ours:
        (tmp_path / name).write_bytes(b"partial")
    save_checkpoint(classifier, tmp_path / "last.ckpt")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*alive, *not_ours, "last.ckpt"])
    # A temporary of a version that did not name its writer goes once untouched for an hour.
    older = tmp_path / ".gd.ckpt.k2j4h5g6.tmp.ckpt"
    older.write_bytes(b"partial")
    assert remove_stale_temporaries(tmp_path) == []
    two_hours_ago = older.stat().st_mtime - 7200
    os.utime(older, (two_hours_ago, two_hours_ago))
    assert remove_stale_temporaries(tmp_path) == [older]


def test_a_full_disk_in_tinybert_convert_is_one_line_naming_the_output(minilm_dir, tmp_path):
    output = tmp_path / "out" / "teacher.ckpt"

    def convert(out) -> int:
        return main(["hf2ms", "--input", str(minilm_dir), "--output", str(output)])

    pid, err = fork(convert, file_size_limit=10_000_000)  # MiniLM is 90 MB
    assert wait(pid) == 1
    assert err.read() == f"tinybert-convert hf2ms: error: [Errno 27] File too large: '{output}'\n"
    assert list((tmp_path / "out").iterdir()) == []  # no partial file, no temporary


def test_an_output_that_is_a_directory_or_under_a_file_is_one_line(minilm_ckpt, tmp_path, capsys):
    (tmp_path / "a_file").write_text("")
    (tmp_path / "a_dir").mkdir()
    cases = [
        (["ms2hf", "--output", str(tmp_path / "a_file")], "File exists"),
        (["ms2tf", "--output", str(tmp_path / "a_dir")], "is a directory, not a checkpoint"),
        (["ms2zoo", "--output", str(tmp_path / "a_dir")], "Is a directory"),
        (["ms2zoo", "--output", str(tmp_path / "a_file" / "x.ckpt")], "File exists"),
    ]
    for args, message in cases:
        assert main([args[0], "--input", str(minilm_ckpt), *args[1:]]) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_dir", "a_file"]
    assert list((tmp_path / "a_dir").iterdir()) == []


# ---- item 12: integer weights, checkpoints without architecture, byte-order marks ----------


def test_an_int32_tensor_in_place_of_a_weight_is_refused_not_converted(tmp_path):
    folder = tmp_path / "hf"
    shutil.copytree(FIXTURES / "hf_tiny_cls", folder)
    tensors = load_file(str(folder / "model.safetensors"))
    name = "bert.encoder.layer.0.attention.self.query.weight"
    tensors[name] = tensors[name].astype(np.int32)  # weights in (-1, 1): almost all zeros
    save_file(tensors, str(folder / "model.safetensors"))
    with pytest.raises(
        CheckpointError, match=r"not floating-point weights: bert.layers.0.attention.query.weight"
    ):
        hf_to_ms(folder, tmp_path / "model.ckpt")
    assert not (tmp_path / "model.ckpt").exists()


def test_an_int32_tensor_does_not_load_into_a_model(classifier, tmp_path):
    from tinybert_model import load_checkpoint

    tensors = {n: p.asnumpy() for n, p in classifier.parameters_and_names()}
    tensors[QUERY] = tensors[QUERY].astype(np.int32)
    ms.save_checkpoint([{"name": n, "data": ms.Tensor(v)} for n, v in tensors.items()],
                       str(tmp_path / "int.ckpt"))  # fmt: skip
    with pytest.raises(CheckpointError, match=rf"{QUERY}: int32, not a floating-point weight"):
        load_checkpoint(tmp_path / "int.ckpt", classifier)


def test_ms2hf_finds_the_architecture_of_a_checkpoint_that_stores_none(classifier, tmp_path):
    tensors = {n: p.asnumpy() for n, p in classifier.parameters_and_names()}
    write_checkpoint(tmp_path / "model.ckpt", tensors, classifier.config, architecture=None)
    assert read_checkpoint(tmp_path / "model.ckpt").architecture is None
    ms_to_hf(tmp_path / "model.ckpt", tmp_path / "hf")
    hf = json.loads((tmp_path / "hf" / "config.json").read_text())
    assert hf["architectures"] == ["BertForSequenceClassification"]
    np.testing.assert_array_equal(
        load_file(str(tmp_path / "hf" / "model.safetensors"))[
            "bert.encoder.layer.1.attention.self.query.weight"
        ],
        tensors[QUERY],
    )
    # Tensors of no architecture: one sentence, not every tensor missing and unexpected.
    renamed = {f"encoder.{n}": v for n, v in tensors.items()}
    write_checkpoint(tmp_path / "other.ckpt", renamed, classifier.config, architecture=None)
    with pytest.raises(CheckpointError) as error:
        ms_to_hf(tmp_path / "other.ckpt", tmp_path / "hf2")
    assert str(error.value) == (
        f"{tmp_path / 'other.ckpt'}: the checkpoint stores no architecture and its "
        f"{len(tensors)} tensors are not those of any of BertModel, "
        "BertForSequenceClassification, BertForTokenClassification, BertForPreTraining, "
        "BertForMaskedLM with this config (e.g. a model-zoo checkpoint: convert it with zoo2ms "
        "first)"
    )


def test_a_byte_order_mark_in_config_json_is_accepted(tmp_path):
    folder = tmp_path / "hf"
    shutil.copytree(FIXTURES / "hf_tiny_cls", folder)
    config = folder / "config.json"
    config.write_bytes(b"\xef\xbb\xbf" + config.read_bytes())
    hf_to_ms(folder, tmp_path / "bom.ckpt")
    hf_to_ms(FIXTURES / "hf_tiny_cls", tmp_path / "plain.ckpt")
    bom, plain = read_checkpoint(tmp_path / "bom.ckpt"), read_checkpoint(tmp_path / "plain.ckpt")
    assert bom.config == plain.config and bom.tensors.keys() == plain.tensors.keys()


# ---- issue 33: configs and weights that converted without a word, or with a wall ----------


def hf_folder(tmp_path, config_change=None, config_text=None):
    folder = tmp_path / "hf"
    shutil.copytree(FIXTURES / "hf_tiny_cls", folder)
    if config_change is not None:
        config = json.loads((folder / "config.json").read_text())
        (folder / "config.json").write_text(json.dumps(config_change(config)))
    if config_text is not None:
        (folder / "config.json").write_bytes(config_text)
    return folder


def convert_one_line(folder, tmp_path, capsys) -> str:
    """tinybert-convert hf2ms on `folder`: exit 1, one line, nothing written; the line."""
    output = tmp_path / "out" / "model.ckpt"
    assert main(["hf2ms", "--input", str(folder), "--output", str(output)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("tinybert-convert hf2ms: error: "), err
    assert not output.parent.exists()
    return err


def gpt2(config: dict) -> dict:
    """GPT-2's config.json keys (its sizes are n_embd, n_layer, n_head)."""
    return {"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "n_embd": 32,
            "n_layer": 2, "n_head": 4, "vocab_size": 99, "n_positions": 40}  # fmt: skip


@pytest.mark.parametrize(
    "change, text, message",
    [
        (None, b"[1, 2]", "config.json: expected a JSON object, found list"),
        (None, b'"bert"', "config.json: expected a JSON object, found str"),
        (None, '{"hidden_size": "caf\u00e9"}'.encode("latin-1"), "config.json:1: not UTF-8 text"),
        (gpt2, None, "config.json: model_type is 'gpt2'; tinybert-convert hf2ms reads BERT"),
        (lambda c: {**c, "model_type": "roberta"}, None, "model_type is 'roberta'"),
        (lambda c: {k: v for k, v in c.items() if k != "hidden_size"}, None,
         "config.json: no hidden_size (a BERT config states the model's shape"),
        (lambda c: {**c, "hidden_size": 64, "num_attention_heads": 4}, None,
         "the word embeddings bert.embeddings.word_embeddings.weight are 99 x 32 but the config "
         "says vocab_size 99, hidden_size 64"),
    ],
)  # fmt: skip
def test_a_config_that_is_not_a_bert_config_is_one_line(change, text, message, tmp_path, capsys):
    folder = hf_folder(tmp_path, change, text)
    assert message in convert_one_line(folder, tmp_path, capsys)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_weights_that_are_not_finite_are_refused_naming_them(bad, tmp_path, capsys):
    folder = hf_folder(tmp_path)
    tensors = load_file(str(folder / "model.safetensors"))
    tensors["bert.encoder.layer.1.output.dense.weight"][3, :5] = bad
    tensors["classifier.bias"][0] = bad
    save_file(tensors, str(folder / "model.safetensors"))
    err = convert_one_line(folder, tmp_path, capsys)
    assert (
        "weights that are NaN or infinite: bert.encoder.layer.1.output.dense.weight (5 of 1184), "
        "classifier.bias (1 of 3) (the model was saved after training diverged" in err
    )


def test_zoo_weights_that_are_not_finite_are_refused(classifier, tmp_path):
    from tinybert_model import ms_to_zoo, zoo_to_ms

    save_checkpoint(classifier, tmp_path / "ours.ckpt")
    ms_to_zoo(tmp_path / "ours.ckpt", tmp_path / "zoo.ckpt")
    tensors = read_checkpoint(tmp_path / "zoo.ckpt").tensors
    tensors["bert.dense_1.weight"] = np.full_like(tensors["bert.dense_1.weight"], np.nan)
    write_checkpoint(tmp_path / "zoo.ckpt", tensors)
    config = tmp_path / "bert_config.json"
    config.write_text(json.dumps(classifier.config.to_google_dict()))
    with pytest.raises(CheckpointError, match=r"NaN or infinite: bert.dense_1.weight \(64 of 64\)"):
        zoo_to_ms(tmp_path / "zoo.ckpt", tmp_path / "back.ckpt", config)
    assert not (tmp_path / "back.ckpt").exists()
