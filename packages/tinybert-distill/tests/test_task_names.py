"""The tasks tinybert-td and tinybert-finetune name are tinybert-data's readers, each a task of
tinybert-core's table, and `--task_name` works for each of them."""

import re

import pytest

from tinybert_core import TASKS
from tinybert_data import TASK_READERS
from tinybert_distill.augment_cli import build_parser as augment_parser
from tinybert_distill.cli import task_distill
from tinybert_distill.config import KEYS, load_config, packaged_config


def listed(text: str, before: str, after: str) -> list:
    """The comma-separated names between `before` and `after` in `text` (lines rejoined)."""
    match = re.search(f"{re.escape(before)}(.*?){re.escape(after)}", " ".join(text.split()))
    return match.group(1).split(", ")


def test_every_task_with_a_reader_is_a_task_of_the_table():
    assert set(TASK_READERS) <= set(TASKS)


def test_help_and_errors_name_exactly_the_tasks_with_a_reader(capsys):
    assert listed(KEYS["task_name"].help, "one of ", " (default") == list(TASK_READERS)
    assert task_distill(["--help"]) == 0
    assert listed(capsys.readouterr().out, "--task_name ", ": the packaged") == list(TASK_READERS)
    assert task_distill([]) == 1
    assert listed(capsys.readouterr().err, "pass --task_name (", ") or") == list(TASK_READERS)


def test_task_name_picks_a_config_for_every_task_with_a_reader(capsys):
    for name in TASK_READERS:
        assert task_distill(["--task_name", name, "--help"]) == 0
        assert f"td_config/{name}.yaml" in capsys.readouterr().out
        assert load_config(packaged_config(f"td_config/{name}"))["task_name"] == name


def test_a_task_without_a_config_file_of_its_own_runs_on_td_config(monkeypatch, capsys):
    """Adding a task is a table entry and a reader: tinybert-td --task_name takes td_config.yaml
    with the flag's task_name when the package has no td_config/TASK.yaml for it."""
    monkeypatch.setitem(TASK_READERS, "newtask", TASK_READERS["sst2"])
    assert task_distill(["--task_name", "newtask", "--help"]) == 0
    (config_line,) = [n for n in capsys.readouterr().out.splitlines() if n.startswith("--config")]
    assert config_line.endswith("/td_config.yaml)"), config_line


def test_augment_takes_the_tasks_with_a_tsv_reader():
    (task,) = [a for a in augment_parser()._actions if a.dest == "task"]
    assert task.choices == ["mnli", "qnli", "sst2"]
    assert set(task.choices) <= set(TASK_READERS)


AUGMENT = ["--task", "sst2", "--input", "train.tsv", "--output", "out.tsv", "--glove", "g.txt"]


def test_augment_flags_are_read_as_tinybert_data_reads_its_own():
    args = augment_parser().parse_args([*AUGMENT, "--keep_original", "No", "--n", "3"])
    assert (args.keep_original, args.n) == (False, 3)


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--n", "0", "must be at least 1, not 0"),
        ("--do_lower_case", "maybe", "expected true or false, not 'maybe'"),
    ],
)
def test_augment_refuses_bad_flag_values_naming_the_flag(flag, value, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        augment_parser().parse_args([*AUGMENT, flag, value])
    assert exit_.value.code == 2
    assert f"argument {flag}: {message}" in capsys.readouterr().err
