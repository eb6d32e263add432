"""tinybert-eval-onnx offers the tasks tinybert-data has readers for, and scores each of them."""

import re

import pytest

from tinybert_data import TASK_READERS
from tinybert_deploy.cli import eval_onnx
from tinybert_eval import TASK_METRICS


def test_eval_onnx_names_exactly_the_tasks_with_a_reader(capsys):
    with pytest.raises(SystemExit) as exit_:
        eval_onnx(["--help"])
    assert exit_.value.code == 0
    help_text = " ".join(capsys.readouterr().out.split())
    names = re.search(r"--task TASK task name \((.*?); default", help_text).group(1)
    assert names.split(", ") == list(TASK_READERS)
    assert set(TASK_READERS) <= set(TASK_METRICS)  # each one has its metrics
