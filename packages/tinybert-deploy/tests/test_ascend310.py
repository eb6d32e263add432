"""Ascend310 files: preprocess real dev rows, stand in for the ACL app with ONNX Runtime (one
result .bin per input, named as the app names them), postprocess; the figures equal
tinybert-eval-onnx's on the same rows."""

import json

import numpy as np
import pytest
from conftest import first_lines

from tinybert_data import BertTokenizer
from tinybert_deploy import OnnxModel, evaluate, task_columns
from tinybert_deploy.ascend310 import FOLDERS, postprocess
from tinybert_deploy.cli import postprocess_310, preprocess_310

SEQ_LENGTH = 64


def run_app(model: OnnxModel, data_dir, result_dir):
    """What the ACL app does: each example's three .bin inputs in, one float32 .bin out."""
    result_dir.mkdir()
    for path in sorted((data_dir / FOLDERS["input_ids"]).glob("*.bin")):
        inputs = [
            np.fromfile(data_dir / folder / path.name, np.int32).reshape(1, -1)
            for folder in FOLDERS.values()
        ]
        model.logits(*inputs).astype(np.float32).tofile(result_dir / f"{path.stem}_0.bin")


@pytest.mark.parametrize(
    "task, model_fixture, vocab_fixture, data_fixture, header",
    [
        ("sst2", "sst2_model", "vocab_en", "sst2_dev", True),
        ("cluener", "cluener_model", "vocab_zh", "cluener_dev", False),
    ],
)
def test_310_round_trip(
    request, tmp_path, capsys, task, model_fixture, vocab_fixture, data_fixture, header
):
    model_path, vocab = (
        request.getfixturevalue(model_fixture),
        request.getfixturevalue(vocab_fixture),
    )
    subset = first_lines(
        request.getfixturevalue(data_fixture),
        48,
        tmp_path / f"dev.{'tsv' if header else 'json'}",
        header,
    )
    data_dir, result_dir, report = tmp_path / "bins", tmp_path / "results", tmp_path / "report.json"
    assert (
        preprocess_310(
            [
                "--task",
                task,
                "--input",
                str(subset),
                "--vocab",
                str(vocab),
                "--seq_length",
                str(SEQ_LENGTH),
                "--output",
                str(data_dir),
            ]
        )
        == 0
    )
    first = data_dir / FOLDERS["input_ids"] / f"{task}_00000.bin"
    assert first.stat().st_size == SEQ_LENGTH * 4  # int32 [1, seq_length]
    model = OnnxModel(model_path)
    run_app(model, data_dir, result_dir)
    assert (
        postprocess_310(
            ["--data_dir", str(data_dir), "--result_dir", str(result_dir), "--output", str(report)]
        )
        == 0
    )
    result = json.loads(report.read_text())
    expected = evaluate(model, task, task_columns(task, subset, vocab, model, SEQ_LENGTH))
    main = expected["main"]
    assert result[main] == pytest.approx(expected[main], abs=1e-6)
    assert result["count"] == 48


def test_missing_result_file(tmp_path, sst2_model, vocab_en, sst2_dev, capsys):
    subset = first_lines(sst2_dev, 4, tmp_path / "dev.tsv", header=True)
    data_dir, result_dir = tmp_path / "bins", tmp_path / "results"
    preprocess_310(
        [
            "--task",
            "sst2",
            "--input",
            str(subset),
            "--vocab",
            str(vocab_en),
            "--output",
            str(data_dir),
        ]
    )
    run_app(OnnxModel(sst2_model), data_dir, result_dir)
    (result_dir / "sst2_00002_0.bin").unlink()
    assert postprocess_310(["--data_dir", str(data_dir), "--result_dir", str(result_dir)]) == 1
    assert "sst2_00002_0.bin: result file missing" in capsys.readouterr().err


def test_310_task_json_is_the_shared_layout_and_old_folders_still_score(
    tmp_path, sst2_model, vocab_en, sst2_dev
):
    subset = first_lines(sst2_dev, 8, tmp_path / "dev.tsv", header=True)
    data_dir, result_dir = tmp_path / "bins", tmp_path / "results"
    args = ["--task", "sst2", "--input", str(subset), "--vocab", str(vocab_en)]
    assert preprocess_310([*args, "--seq_length", "32", "--output", str(data_dir)]) == 0
    info = json.loads((data_dir / "task.json").read_text(encoding="utf-8"))
    assert info["task"] == "sst2" and info["labels"] == ["0", "1"]
    assert info["columns"] == ["input_ids", "segment_ids", "input_mask", "label_ids"]
    assert info["num_rows"] == 8 and info["seq_length"] == 32 and info["labelled"] is True
    assert info["vocab_size"] == BertTokenizer.from_vocab(vocab_en).vocab_size
    assert info["do_lower_case"] is True and info["inputs"] == [str(subset)]
    run_app(OnnxModel(sst2_model), data_dir, result_dir)
    assert postprocess_310(["--data_dir", str(data_dir), "--result_dir", str(result_dir)]) == 0
    new_figure = postprocess(data_dir, result_dir)["accuracy"]
    # the layout of earlier versions: five keys
    old = {key: info[key] for key in ("task", "task_type", "labels", "seq_length", "num_rows")}
    (data_dir / "task.json").write_text(json.dumps(old), encoding="utf-8")
    assert postprocess(data_dir, result_dir)["accuracy"] == new_figure
