"""Bad input to the base-install scripts gives one clear line, never a traceback (issue 14)."""

import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import FIXTURES

from tinybert_deploy import DeployError, OnnxModel
from tinybert_deploy.cli import eval_onnx, predict

VOCAB = FIXTURES / "vocab_en.txt"
SCRIPTS = [
    "tinybert-predict",
    "tinybert-eval-onnx",
    "tinybert-quantize",
    "tinybert-export",
    "tinybert-310-preprocess",
    "tinybert-310-postprocess",
]


@pytest.mark.parametrize("script", SCRIPTS)
def test_help_works_alone(script):
    done = subprocess.run([script, "--help"], capture_output=True, text=True)
    assert done.returncode == 0 and "usage:" in done.stdout and done.stderr == ""


def run_predict(sst2_model, *args):
    return predict(["--model", str(sst2_model), "--vocab", str(VOCAB), *args])


def test_latin1_file_is_refused_with_its_line(tmp_path, sst2_model, capsys):
    text = tmp_path / "latin1.txt"
    text.write_bytes("a fine film\nun film très réussi\n".encode("latin-1"))
    assert run_predict(sst2_model, "--input", str(text)) == 1
    error = capsys.readouterr().err
    assert "latin1.txt line 2: byte 0xe8 is not UTF-8" in error and "Traceback" not in error


def test_utf16_and_bom_files_are_read(tmp_path, sst2_model, capsys):
    lines = "a fine film\nun film très réussi\n"
    expected = None
    for encoding in ("utf-8", "utf-8-sig", "utf-16"):
        path = tmp_path / f"{encoding}.txt"
        path.write_bytes(lines.encode(encoding))
        assert run_predict(sst2_model, "--input", str(path)) == 0
        out = capsys.readouterr().out
        expected = expected or out
        assert out == expected and "très réussi" in out


def test_a_line_separator_inside_a_text_keeps_the_line_whole(tmp_path, sst2_model, capsys):
    # Only "\n" ends an input line, as in tinybert-data's readers: U+2028 and U+0085 (where
    # str.splitlines() also breaks) are whitespace inside the text, not a second input.
    path = tmp_path / "texts.txt"
    path.write_text("a fine\u2028film\nun film\x85très réussi\r\n", encoding="utf-8")
    assert run_predict(sst2_model, "--input", str(path)) == 0
    output = capsys.readouterr().out
    with_separators = [json.loads(line) for line in output.splitlines()]  # escaped in the output
    assert run_predict(sst2_model, "a fine film", "un film très réussi") == 0
    with_spaces = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(with_separators) == len(with_spaces) == 2 and "\\u2028" in output
    assert [r["label"] for r in with_separators] == [r["label"] for r in with_spaces]
    assert [r["text"] for r in with_separators] == ["a fine\u2028film", "un film\x85très réussi"]


def test_non_utf8_stdin_is_refused(sst2_model):
    code = (
        "import sys; from tinybert_deploy.cli import predict; "
        f"sys.exit(predict(['--model', r'{sst2_model}', '--vocab', r'{VOCAB}']))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], input="très bien\n".encode("latin-1"), capture_output=True
    )
    assert done.returncode == 1
    assert b"stdin line 1: byte 0xe8 is not UTF-8" in done.stderr
    assert b"Traceback" not in done.stderr


def test_non_utf8_argument_is_refused(sst2_model):
    done = subprocess.run(
        [
            "tinybert-predict",
            "--model",
            str(sst2_model),
            "--vocab",
            str(VOCAB),
            "très bien".encode("latin-1"),
        ],
        capture_output=True,
        env={"LC_ALL": "C.UTF-8", "PATH": __import__("os").environ["PATH"]},
    )
    assert done.returncode == 1
    assert b"argument 1 is not valid UTF-8" in done.stderr


def test_blank_lines_among_inputs_are_refused(tmp_path, sst2_model, capsys):
    path = tmp_path / "texts.txt"
    path.write_text("a fine film\n\na dull one\n\n\n", encoding="utf-8")
    assert run_predict(sst2_model, "--input", str(path)) == 1
    assert "texts.txt line 2 is blank" in capsys.readouterr().err
    path.write_text("a fine film\na dull one\n\n\n", encoding="utf-8")  # trailing: dropped
    assert run_predict(sst2_model, "--input", str(path)) == 0
    assert len(capsys.readouterr().out.splitlines()) == 2


def test_token_ids_beyond_the_embedding_table(sst2_model):
    model = OnnxModel(sst2_model)
    ids = np.full((1, 8), model.vocab_size, np.int32)  # one past the last row
    with pytest.raises(DeployError, match="beyond .* embedding table"):
        model.logits(ids, np.zeros_like(ids), np.ones_like(ids))


def test_records_from_a_bigger_vocabulary(tmp_path, sst2_model, sst2_dev, capsys):
    """Records tokenized with the full BERT vocabulary, scored by a model with 2,005 tokens."""
    from conftest import SHARED_DATA, first_lines

    from tinybert_data import write_task_records

    dev = first_lines(sst2_dev, 20, tmp_path / "dev.tsv", header=True)
    records = tmp_path / "records"
    write_task_records(
        "sst2", [dev], SHARED_DATA / "vocab" / "bert-base-uncased-vocab.txt", records, 64
    )
    assert eval_onnx(["--model", str(sst2_model), "--input", str(records)]) == 1
    assert "30522 tokens; the model has 2005" in capsys.readouterr().err


def test_eval_onnx_report_into_a_file_path(tmp_path, sst2_model, sst2_dev, capsys):
    from conftest import first_lines

    dev = first_lines(sst2_dev, 20, tmp_path / "dev.tsv", header=True)
    taken = tmp_path / "taken"
    taken.write_text("x")
    args = ["--model", str(sst2_model), "--vocab", str(VOCAB), "--input", str(dev)]
    assert eval_onnx([*args, "--output", str(taken / "report.json")]) == 1
    assert "is a file, not a folder" in capsys.readouterr().err
