"""The `tinybert-data` command: runs, summaries, errors, inspect, validate, help."""

import argparse
import shutil

import numpy as np
import pytest

from tinybert_data import TASK_READERS, load_records
from tinybert_data.cli import build_parser, main


def test_task_command_writes_records_and_summary(tmp_path, data, uncased_vocab, capsys):
    out = tmp_path / "sst2"
    argv = [
        "task",
        "--task",
        "sst2",
        "--input",
        str(data / "sst2" / "dev.tsv"),
        "--vocab",
        str(uncased_vocab),
        "--seq_length",
        "64",
        "--output",
        str(out),
        "--shards",
        "2",
    ]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert f"wrote 872 rows to {out}" in printed
    assert "labels: 0 428 (49.1%), 1 444 (50.9%)" in printed
    assert "skipped: 0 bad row(s)" in printed
    assert load_records(out)["input_ids"].shape == (872, 64)


def test_bad_row_exits_1_naming_file_and_line(tmp_path, data, uncased_vocab, capsys):
    bad = tmp_path / "train.tsv"
    shutil.copy(data / "sst2" / "dev.tsv", bad)
    with open(bad, "a") as f:
        f.write("a row without a label\n")
    out = tmp_path / "records"
    argv = [
        "task",
        "--task",
        "sst2",
        "--input",
        str(bad),
        "--vocab",
        str(uncased_vocab),
        "--output",
        str(out),
    ]
    assert main([*argv, "--quiet"]) == 1
    err = capsys.readouterr().err
    assert f"tinybert-data: error: {bad}:874: expected 2 tab-separated columns, found 1" in err
    assert "Traceback" not in err
    assert not out.exists()

    assert main([*argv, "--on_error", "skip", "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "wrote 872 rows" in printed and "skipped: 1 bad row(s)" in printed
    assert f"{bad}:874: expected 2 tab-separated columns" in printed


def test_missing_input_is_a_clean_error(tmp_path, uncased_vocab, capsys):
    argv = [
        "task",
        "--task",
        "sst2",
        "--input",
        str(tmp_path / "nope.tsv"),
        "--vocab",
        str(uncased_vocab),
        "--output",
        str(tmp_path / "out"),
        "--quiet",
    ]
    assert main(argv) == 1
    assert "nope.tsv" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_corpus_inspect_and_validate(tmp_path, data, uncased_vocab, capsys):
    out = tmp_path / "corpus"
    argv = [
        "corpus",
        "--input",
        str(data / "corpus" / "en_wikitext2_valid.tokens.txt"),
        "--vocab",
        str(uncased_vocab),
        "--seq_length",
        "64",
        "--output",
        str(out),
        "--shards",
        "2",
        "--seed",
        "3",
        "--quiet",
    ]
    assert main(argv) == 0
    summary = capsys.readouterr().out
    rows = len(load_records(out)["input_ids"])
    assert f"wrote {rows} rows" in summary and "documents" in summary
    assert main(["inspect", str(out), "--examples", "2"]) == 0
    printed = capsys.readouterr().out
    assert f"tfrecord, 2 file(s), {rows} rows" in printed
    assert "columns: input_ids [64], segment_ids [64], input_mask [64]" in printed
    assert "[1] " in printed and "[2] " not in printed
    assert main(["validate", str(out)]) == 0
    assert f"{rows} rows in 2 file(s) agree with schema.json" in capsys.readouterr().out


def test_inspect_task_records_shows_labels_and_decoded_text(tmp_path, data, chinese_vocab, capsys):
    out = tmp_path / "cluener"
    argv = [
        "task",
        "--task",
        "cluener",
        "--input",
        str(data / "cluener" / "dev.json"),
        "--vocab",
        str(chinese_vocab),
        "--seq_length",
        "48",
        "--output",
        str(out),
        "--quiet",
    ]
    assert main(argv) == 0
    capsys.readouterr()
    assert main(["inspect", str(out), "--examples", "1"]) == 0
    printed = capsys.readouterr().out
    assert "task: cluener (ner), seq_length 48" in printed
    assert "B-name" in printed.split("labels:")[1]
    assert "彭 小 军 认 为" in printed
    assert "entities: 彭/B-name 小/I-name 军/I-name 台/B-address 湾/I-address" in printed
    labels = load_records(out)["label_ids"]
    assert labels.shape == (1343, 48) and np.isin(labels, [-100, *range(21)]).all()


def test_validate_reports_problems(tmp_path, data, uncased_vocab, capsys):
    out = tmp_path / "sst2"
    main(
        [
            "task",
            "--task",
            "sst2",
            "--input",
            str(data / "sst2" / "dev.tsv"),
            "--vocab",
            str(uncased_vocab),
            "--output",
            str(out),
            "--quiet",
        ]
    )
    schema = out / "schema.json"
    schema.write_text(schema.read_text().replace('"numRows": 872', '"numRows": 900'))
    assert main(["validate", str(out)]) == 1
    assert "numRows is 900, the files hold 872 rows" in capsys.readouterr().err


def test_every_flag_has_help():
    parser = build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, sub in subparsers.choices.items():
        for action in sub._actions:
            assert action.help, f"{name} {action.option_strings or action.dest} has no help"


def test_task_choices_are_the_tasks_with_a_reader():
    parser = build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    (task,) = [a for a in subparsers.choices["task"]._actions if a.dest == "task"]
    assert task.choices == sorted(TASK_READERS)


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--do_lower_case", "maybe", "expected true or false, not 'maybe'"),
        ("--overwrite", "2", "expected true or false, not '2'"),
        ("--shards", "0", "must be at least 1, not 0"),
        ("--seq_length", "-8", "must be at least 1, not -8"),
    ],
)
def test_bad_flag_values_are_refused_naming_the_flag(tmp_path, flag, value, message, capsys):
    argv = ["task", "--task", "sst2", "--input", "x.tsv", "--vocab", "v.txt"]
    with pytest.raises(SystemExit) as info:
        main([*argv, "--output", str(tmp_path / "out"), flag, value])
    assert info.value.code == 2
    assert f"argument {flag}: {message}" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_true_and_false_take_the_usual_spellings():
    spellings = {"true": True, "YES": True, "1": True, "False": False, "no": False, "0": False}
    for text, value in spellings.items():
        args = build_parser().parse_args(
            ["corpus", "--input", "x", "--vocab", "v", "--output", "o", "--do_lower_case", text]
        )
        assert args.do_lower_case is value


@pytest.mark.parametrize("command", ["task", "corpus", "inspect", "validate"])
def test_help_exits_cleanly(command, capsys):
    with pytest.raises(SystemExit) as info:
        main([command, "--help"])
    assert info.value.code == 0
    assert "usage: tinybert-data " + command in capsys.readouterr().out
