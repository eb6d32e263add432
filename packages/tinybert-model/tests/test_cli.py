"""`tinybert-convert` as a user runs it: exit codes, messages, nothing half-written."""

import os
import shutil
import subprocess
import sys

import pytest
from conftest import FIXTURES

from tinybert_model import read_checkpoint
from tinybert_model.cli import main

TF_FIXTURE = FIXTURES / "tf_bert_tiny"


def test_every_subcommand_chains(tmp_path, capsys):
    assert (
        main(
            [
                "hf2ms",
                "--input",
                str(FIXTURES / "hf_tiny_cls"),
                "--output",
                str(tmp_path / "a.ckpt"),
            ]
        )
        == 0
    )
    assert (
        main(
            ["ms2zoo", "--input", str(tmp_path / "a.ckpt"), "--output", str(tmp_path / "zoo.ckpt")]
        )
        == 0
    )
    zoo_config = FIXTURES / "zoo_td_config.yaml"
    args = ["zoo2ms", "--input", str(tmp_path / "zoo.ckpt"), "--config", str(zoo_config)]
    assert main([*args, "--output", str(tmp_path / "b.ckpt")]) == 0
    assert (
        main(["ms2hf", "--input", str(tmp_path / "b.ckpt"), "--output", str(tmp_path / "hf")]) == 0
    )
    assert (
        main(
            [
                "tf2ms",
                "--input",
                str(TF_FIXTURE / "model.ckpt"),
                "--output",
                str(tmp_path / "c.ckpt"),
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "ms2tf",
                "--input",
                str(tmp_path / "c.ckpt"),
                "--output",
                str(tmp_path / "tf" / "model.ckpt"),
            ]
        )
        == 0
    )
    assert read_checkpoint(tmp_path / "b.ckpt").config.labels == [
        "0",
        "1",
        "2",
    ]  # the zoo keeps no names
    assert (tmp_path / "hf" / "model.safetensors").is_file()
    assert (tmp_path / "tf" / "model.ckpt.index").is_file()


def test_summary_line(tmp_path, caplog):
    caplog.set_level("INFO")
    main(
        ["hf2ms", "--input", str(FIXTURES / "hf_tiny_ner"), "--output", str(tmp_path / "ner.ckpt")]
    )
    assert "BertForTokenClassification (2 layers, hidden 32, vocab 99" in caplog.text


@pytest.mark.parametrize(
    "damage, message",
    [
        ("truncate", "truncated"),
        ("flip", "checksum"),
        ("text_index", "is not a TF checkpoint index"),
    ],
)
def test_damaged_tf_checkpoints_exit_non_zero(tmp_path, capsys, damage, message):
    folder = tmp_path / "tf"
    shutil.copytree(TF_FIXTURE, folder, ignore=shutil.ignore_patterns("sharded"))
    data = folder / "model.ckpt.data-00000-of-00001"
    if damage == "truncate":
        data.write_bytes(data.read_bytes()[:-100])
    elif damage == "flip":
        raw = bytearray(data.read_bytes())
        raw[len(raw) // 2] ^= 0xFF
        data.write_bytes(bytes(raw))
    else:
        (folder / "model.ckpt.index").write_text("this is not an index\n" * 10)
    code = main(
        ["tf2ms", "--input", str(folder / "model.ckpt"), "--output", str(tmp_path / "out.ckpt")]
    )
    assert code == 1
    error = capsys.readouterr().err
    assert error.startswith("tinybert-convert tf2ms: error:") and message in error
    assert "Traceback" not in error
    assert not (tmp_path / "out.ckpt").exists()
    assert [f for f in os.listdir(tmp_path) if f.startswith(".")] == []


def test_missing_inputs(tmp_path, capsys):
    assert (
        main(["zoo2ms", "--input", str(tmp_path / "x.ckpt"), "--output", str(tmp_path / "y.ckpt")])
        == 1
    )
    assert "pass --config" in capsys.readouterr().err
    assert (
        main(["ms2hf", "--input", str(tmp_path / "x.ckpt"), "--output", str(tmp_path / "hf")]) == 1
    )
    assert "checkpoint file not found" in capsys.readouterr().err
    assert not (tmp_path / "hf").exists()


def test_console_script_is_installed_with_help():
    executable = shutil.which("tinybert-convert") or pytest.skip("console script not on PATH")
    result = subprocess.run([executable, "tf2ms", "--help"], capture_output=True, text=True)
    assert result.returncode == 0
    for flag in ("--input", "--output", "--config", "--strict", "--no-strict"):
        assert flag in result.stdout
    result = subprocess.run(
        [sys.executable, "-m", "tinybert_model.cli"], capture_output=True, text=True
    )
    assert result.returncode == 2 and "COMMAND" in result.stderr
