"""ONNX Runtime prediction and evaluation from raw text, without MindSpore."""

import json

import numpy as np
import pytest
from conftest import first_lines

from tinybert_data import get_task, write_task_records
from tinybert_deploy import DeployError, OnnxModel, Predictor, evaluate, task_columns
from tinybert_deploy.cli import eval_onnx, predict


def sst2_sentences(path, count):
    return [line.split("\t")[0].strip() for line in path.read_text().splitlines()[1 : count + 1]]


def test_metadata_describes_the_model(sst2_model):
    model = OnnxModel(sst2_model)
    assert model.task == "sst2" and model.task_type == "classification"
    assert model.labels == ["0", "1"]
    assert model.max_length == 128


def test_batching_by_length_changes_nothing(sst2_model, vocab_en, sst2_dev):
    sentences = sst2_sentences(sst2_dev, 50)
    batched = Predictor.from_model(
        sst2_model, vocab_en, runtime="onnxruntime", batch_size=16
    ).predict(sentences)
    one_by_one = Predictor.from_model(
        sst2_model, vocab_en, runtime="onnxruntime", batch_size=1
    ).predict(sentences)
    assert [r["text"] for r in batched] == sentences  # input order kept
    for a, b in zip(batched, one_by_one):
        assert a["label"] == b["label"]
        for name in ("0", "1"):
            assert a["probabilities"][name] == pytest.approx(b["probabilities"][name], abs=1e-5)
        assert sum(a["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)


def test_ner_entities_have_character_offsets(cluener_model, vocab_zh, cluener_dev):
    texts = [json.loads(line)["text"] for line in cluener_dev.read_text().splitlines()[:30]]
    results = Predictor.from_model(cluener_model, vocab_zh, runtime="onnxruntime").predict(texts)
    tags = {t.split("-", 1)[1] for t in get_task("cluener").labels if t != "O"}
    found = 0
    for text, result in zip(texts, results):
        for entity in result["entities"]:
            assert entity["type"] in tags
            assert 0 <= entity["start"] < entity["end"] <= len(text)
            assert entity["text"] == text[entity["start"] : entity["end"]]
            found += 1
    assert found > 0  # a random tagger still tags something


def test_eval_onnx_matches_the_predictions(tmp_path, sst2_model, vocab_en, sst2_dev, capsys):
    """tinybert-eval-onnx's accuracy is the share of tinybert-predict's labels that are right."""
    report = tmp_path / "report.json"
    assert (
        eval_onnx(
            [
                "--model",
                str(sst2_model),
                "--task",
                "sst2",
                "--input",
                str(sst2_dev),
                "--vocab",
                str(vocab_en),
                "--output",
                str(report),
            ]
        )
        == 0
    )
    result = json.loads(report.read_text())
    rows = [line.split("\t") for line in sst2_dev.read_text().splitlines()[1:]]
    predictions = Predictor.from_model(sst2_model, vocab_en, runtime="onnxruntime").predict(
        [r[0] for r in rows]
    )
    expected = np.mean([p["label"] == r[1] for p, r in zip(predictions, rows)])
    assert result["count"] == 872
    assert result["accuracy"] == pytest.approx(expected)
    assert "sst2 on" in capsys.readouterr().out


def test_eval_onnx_reads_records_and_raw_files_alike(
    tmp_path, cluener_model, vocab_zh, cluener_dev
):
    model = OnnxModel(cluener_model)
    subset = first_lines(cluener_dev, 60, tmp_path / "dev.json", header=False)
    raw = evaluate(model, "cluener", task_columns("cluener", subset, vocab_zh, model, 128))
    records = tmp_path / "records"
    write_task_records("cluener", [subset], vocab_zh, records, 128)
    from_records = evaluate(model, "cluener", task_columns("cluener", records, None, model, 128))
    assert raw["f1"] == pytest.approx(from_records["f1"])
    assert raw["count"] == from_records["count"] == 60
    assert {"precision", "recall", "f1", "token_accuracy"} <= set(raw)


def test_predict_cli_writes_json_lines(sst2_model, vocab_en, capsys):
    assert (
        predict(["--model", str(sst2_model), "--vocab", str(vocab_en), "a fine film", "a dull one"])
        == 0
    )
    lines = capsys.readouterr().out.splitlines()
    assert [json.loads(line)["text"] for line in lines] == ["a fine film", "a dull one"]


def test_overlong_text_is_truncated_with_a_warning(sst2_model, vocab_en, caplog):
    result = Predictor.from_model(sst2_model, vocab_en, runtime="onnxruntime").predict(
        ["good " * 400]
    )
    assert result[0]["label"] in ("0", "1")
    assert "longer than 128 tokens: truncated" in caplog.text


# ---- bad input ------------------------------------------------------------------------------


def test_model_with_other_inputs(tmp_path, vocab_en, capsys):
    from conftest import FIXTURES

    code = predict(
        ["--model", str(FIXTURES / "wrong_inputs.onnx"), "--vocab", str(vocab_en), "text"]
    )
    assert code == 1
    error = capsys.readouterr().err
    assert "the model's inputs are ['tokens']" in error and "Traceback" not in error


def test_vocabulary_that_does_not_fit_the_model(sst2_model, capsys):
    from conftest import SHARED_DATA

    full = SHARED_DATA / "vocab" / "bert-base-uncased-vocab.txt"
    assert predict(["--model", str(sst2_model), "--vocab", str(full), "text"]) == 1
    assert "has 30522 tokens but" in capsys.readouterr().err


def test_not_a_model(tmp_path, vocab_en, capsys):
    bad = tmp_path / "model.onnx"
    bad.write_bytes(b"not a model")
    assert predict(["--model", str(bad), "--vocab", str(vocab_en), "text"]) == 1
    assert "not a model ONNX Runtime can load" in capsys.readouterr().err
    assert predict(["--model", str(tmp_path / "none.onnx"), "--vocab", str(vocab_en), "x"]) == 1
    assert "none.onnx: file not found" in capsys.readouterr().err


def test_empty_input(tmp_path, sst2_model, vocab_en, capsys):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    assert (
        predict(["--model", str(sst2_model), "--vocab", str(vocab_en), "--input", str(empty)]) == 1
    )
    assert "no input text" in capsys.readouterr().err


def test_wrong_task(sst2_model, vocab_en, capsys):
    assert (
        predict(["--model", str(sst2_model), "--vocab", str(vocab_en), "--task", "cluener", "x"])
        == 1
    )
    assert "exported for sst2, not cluener" in capsys.readouterr().err


def test_eval_onnx_needs_a_vocab_for_raw_files(sst2_model, sst2_dev):
    with pytest.raises(DeployError, match="needs --vocab"):
        task_columns("sst2", sst2_dev, None, OnnxModel(sst2_model), 128)


def test_openvino_runs_a_static_int8_file(sst2_dev, vocab_en):
    """OpenVINO ([openvino] extra) takes a static int8 (QDQ) file as int8, with the rest of the
    work in fp32, or in bf16 where the CPU has bf16 hardware and --runtime auto chooses it;
    its logits are ONNX Runtime's on the same file."""
    pytest.importorskip("openvino")
    from conftest import FIXTURES

    from tinybert_deploy.runtime import has_fast_bf16

    path = FIXTURES / "sst2_tiny.static.int8.onnx"
    ort = OnnxModel(path, runtime="onnxruntime")
    assert ort.quantization == "static" and ort.precision == "int8"
    columns = task_columns("sst2", sst2_dev, vocab_en, ort, rows=64)
    inputs = [columns[n] for n in ("input_ids", "segment_ids", "input_mask")]
    reference = ort.logits(*inputs)
    engines = [OnnxModel(path, runtime="openvino")]
    assert (engines[0].runtime, engines[0].precision) == ("openvino", "int8")
    if has_fast_bf16():
        engines.append(OnnxModel(path, runtime="auto"))
        assert (engines[1].runtime, engines[1].precision) == ("openvino", "int8 + bf16")
    for model in engines:
        error = np.abs(model.logits(*inputs) - reference).max()
        assert error < 0.05 * np.abs(reference).max() + 1e-3, (model.precision, error)
