"""Exported models describe themselves (issue 17 item 3), and export refuses what would make
silently wrong models (issue 14): contradicting flags, non-finite weights, unwritable outputs."""

import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import FIXTURES, first_lines

ms = pytest.importorskip("mindspore")
pytest.importorskip("onnx")

from tinybert_deploy import OnnxModel, Predictor  # noqa: E402
from tinybert_deploy.cli import eval_onnx, predict  # noqa: E402
from tinybert_deploy.cli import export as main  # noqa: E402
from tinybert_deploy.export import export  # noqa: E402
from tinybert_model import (  # noqa: E402
    BertForSequenceClassification,
    read_checkpoint,
    save_checkpoint,
    tiny_config,
    write_checkpoint,
)

VOCAB = FIXTURES / "vocab_en.txt"


def task_info(**changes):
    info = dict(
        task="sst2",
        task_type="classification",
        labels=["0", "1"],
        seq_length=48,
        vocab_size=len(VOCAB.read_text(encoding="utf-8").splitlines()),
        do_lower_case=True,
        inputs=["/home/someone/sst2/train.tsv"],
    )
    info.update(changes)
    return info


def trained_style_checkpoint(path, info=None, vocab_text=None):
    """A tiny SST-2 checkpoint with the extras the trainers write (NOTES.md contract)."""
    ms.set_seed(0)
    config = tiny_config(
        task_info()["vocab_size"],
        max_position_embeddings=128,
        labels=["0", "1"],
        task_type="classification",
    )
    extra = {
        "task_info": json.dumps(info or task_info()),
        "vocab": vocab_text or VOCAB.read_text(encoding="utf-8"),
    }
    save_checkpoint(BertForSequenceClassification(config), path, extra)
    return path


@pytest.fixture
def self_describing(tmp_path):
    checkpoint = trained_style_checkpoint(tmp_path / "best.ckpt")
    return export(checkpoint, None, tmp_path / "student", "ONNX")


def test_the_model_carries_task_vocabulary_and_length(self_describing):
    model = OnnxModel(self_describing)
    assert model.task == "sst2" and model.labels == ["0", "1"]
    assert model.seq_length == 48 and model.do_lower_case is True
    assert model.vocab_text.splitlines() == VOCAB.read_text(encoding="utf-8").splitlines()
    assert "inputs" not in model.task_info  # local paths stay behind


def test_predict_and_eval_need_only_the_model(self_describing, sst2_dev, tmp_path, capsys):
    assert predict(["--model", str(self_describing), "a fine film", "a dull one"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    with_flags = Predictor.from_model(self_describing, VOCAB, runtime="onnxruntime").predict(
        ["a fine film", "a dull one"]
    )
    assert [r["probabilities"] for r in lines] == [r["probabilities"] for r in with_flags]

    dev = first_lines(sst2_dev, 200, tmp_path / "dev.tsv", header=True)
    alone, flags = tmp_path / "alone.json", tmp_path / "flags.json"
    assert (
        eval_onnx(["--model", str(self_describing), "--input", str(dev), "--output", str(alone)])
        == 0
    )
    # the same as spelling out the old flags at the training length (48), not at 128
    common = [
        "--model",
        str(self_describing),
        "--input",
        str(dev),
        "--task",
        "sst2",
        "--vocab",
        str(VOCAB),
    ]
    assert eval_onnx([*common, "--seq_length", "48", "--output", str(flags)]) == 0
    assert json.loads(alone.read_text())["accuracy"] == json.loads(flags.read_text())["accuracy"]
    assert json.loads(alone.read_text())["count"] == 200


def test_an_old_model_still_predicts_with_the_flags(sst2_model, capsys):
    """tests/fixtures/sst2_tiny.onnx was exported by tinybert-deploy 0.1 (no vocabulary inside)."""
    assert predict(["--model", str(sst2_model), "--vocab", str(VOCAB), "a fine film"]) == 0
    assert json.loads(capsys.readouterr().out)["label"] in ("0", "1")
    assert predict(["--model", str(sst2_model), "a fine film"]) == 1
    assert "does not carry its vocabulary" in capsys.readouterr().err


def test_a_vocabulary_that_is_not_the_models_own_is_refused(self_describing, tmp_path, capsys):
    lines = VOCAB.read_text(encoding="utf-8").splitlines()
    lines[1500], lines[1501] = lines[1501], lines[1500]  # same size, two ids swapped
    other = tmp_path / "other_vocab.txt"
    other.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert predict(["--model", str(self_describing), "--vocab", str(other), "text"]) == 1
    error = capsys.readouterr().err
    assert "line 1501" in error and "Traceback" not in error
    assert predict(["--model", str(self_describing), "--vocab", str(VOCAB), "text"]) == 0


def test_a_vocabulary_holding_a_line_separator_character_exports(tmp_path, capsys):
    """bert-base-chinese's vocabulary has U+2028 as a token (id 343): only "\\n" ends a
    vocabulary line, so the model's 21,128 tokens are not miscounted as 21,130."""
    tokens = VOCAB.read_text(encoding="utf-8").split("\n")[:-1]
    tokens[-1] = "\u2028"  # a whole-token line, as in the Chinese vocabulary
    vocab_text = "\n".join(tokens) + "\n"
    checkpoint = trained_style_checkpoint(tmp_path / "best.ckpt", vocab_text=vocab_text)
    model = OnnxModel(export(checkpoint, None, tmp_path / "student", "ONNX"))
    assert model.tokenizer(None).vocab_size == len(tokens) == model.vocab_size
    given = tmp_path / "vocab.txt"
    given.write_text(vocab_text, encoding="utf-8")
    assert predict(["--model", str(model.path), "--vocab", str(given), "a fine film"]) == 0
    assert json.loads(capsys.readouterr().out)["label"] in ("0", "1")


def test_task_name_contradicting_the_checkpoint_is_refused(tmp_path, capsys):
    checkpoint = trained_style_checkpoint(tmp_path / "best.ckpt")
    code = main(
        [
            "--ckpt_file",
            str(checkpoint),
            "--task_name",
            "cluener",
            "--file_name",
            str(tmp_path / "m"),
        ]
    )
    assert code == 1
    assert "contradicts" in capsys.readouterr().err
    assert not list(tmp_path.glob("m*"))
    assert (
        main(
            [
                "--ckpt_file",
                str(checkpoint),
                "--task_name",
                "sst2",
                "--file_name",
                str(tmp_path / "m"),
            ]
        )
        == 0
    )


def test_non_finite_weights_are_refused(tmp_path, capsys):
    good = read_checkpoint(trained_style_checkpoint(tmp_path / "good.ckpt"))
    tensors = dict(good.tensors)
    weight = np.array(tensors["bert.layers.1.output.weight"], np.float32)
    weight[3, 5] = np.nan
    tensors["bert.layers.1.output.weight"] = weight
    bad = tmp_path / "bad.ckpt"
    write_checkpoint(bad, tensors, good.config, good.architecture, good.extra)
    assert main(["--ckpt_file", str(bad), "--file_name", str(tmp_path / "m")]) == 1
    error = capsys.readouterr().err
    assert "bert.layers.1.output.weight holds 1 non-finite" in error
    assert not list(tmp_path.glob("m*"))


def test_unwritable_outputs_give_one_line(tmp_path, capsys):
    checkpoint = trained_style_checkpoint(tmp_path / "best.ckpt")
    a_file = tmp_path / "taken"
    a_file.write_text("x")
    assert main(["--ckpt_file", str(checkpoint), "--file_name", str(a_file / "m")]) == 1
    assert "is a file, not a folder" in capsys.readouterr().err
    folder = tmp_path / "folder.onnx"
    folder.mkdir()
    assert main(["--ckpt_file", str(checkpoint), "--file_name", str(folder)]) == 1
    assert "is a folder" in capsys.readouterr().err


def test_a_full_disk_leaves_nothing_behind(tmp_path):
    checkpoint = trained_style_checkpoint(tmp_path / "best.ckpt")
    out = tmp_path / "out"
    code = (
        "import resource, sys; from tinybert_deploy.cli import export as main; "
        "resource.setrlimit(resource.RLIMIT_FSIZE, (20000, 20000)); "
        f"sys.exit(main(['--ckpt_file', r'{checkpoint}', '--file_name', r'{out / 'm'}']))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert "File too large" in done.stderr
    assert list(out.iterdir()) == []


def test_eval_onnx_refuses_an_unlabelled_file(self_describing, capsys):
    from conftest import SHARED_DATA

    test_file = SHARED_DATA / "sst2" / "test.tsv"
    assert eval_onnx(["--model", str(self_describing), "--input", str(test_file)]) == 1
    assert "has no labels" in capsys.readouterr().err


def test_predict_never_prints_nan(tmp_path, capsys):
    """A model with a NaN weight (built around export's check) stops predict with one line."""
    from tinybert_deploy.export import model_description
    from tinybert_deploy.onnx_graph import build_graph

    checkpoint = read_checkpoint(trained_style_checkpoint(tmp_path / "best.ckpt"))
    tensors = dict(checkpoint.tensors)
    tensors["classifier.bias"] = np.array([np.nan, 0.0], np.float32)
    metadata = model_description(checkpoint, checkpoint.config, "best.ckpt")
    model = build_graph(tensors, checkpoint.config, checkpoint.architecture, metadata)
    path = tmp_path / "nan.onnx"
    path.write_bytes(model.SerializeToString())
    assert predict(["--model", str(path), "a fine film"]) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and "non-finite logits" in captured.err
