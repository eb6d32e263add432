"""`task.json`: what a folder of rows holds.

tinybert-data writes one beside every records folder, tinybert-310-preprocess beside the
Ascend310 input files, and trainers copy it into the checkpoints they write (`task_info`),
from where export puts it into the model. Its keys:

    task, task_type, labels     the task's entry in the task table (labels in id order)
    seq_length, num_rows        the rows' length and count
    labelled                    false for a test file (every label_ids is IGNORE_INDEX)
    columns                     the columns, in record order
    vocab_size, do_lower_case   the vocabulary and casing the rows were tokenized with
    format, files               records only: tfrecord | mindrecord, the shard files
    inputs                      the raw files the rows were read from

Readers take what they need and tolerate keys they do not know, so a task.json written by
an older version (fewer keys) still reads.
"""

from __future__ import annotations

import json
from pathlib import Path

from .errors import DataError
from .files import atomic_write

TASK_FILE = "task.json"


def read_task_info(path) -> dict:
    """The task.json of a folder, or of the folder holding a file (a record shard); {} when
    there is none. One that is not a JSON object raises DataError naming it."""
    path = Path(path)
    task_file = (path if path.is_dir() else path.parent) / TASK_FILE
    if not task_file.is_file():
        return {}
    try:
        info = json.loads(task_file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise DataError(task_file, error.lineno, f"not valid JSON ({error.msg})") from None
    except UnicodeDecodeError as error:
        raise DataError(task_file, None, f"not UTF-8 text ({error.reason})") from None
    if not isinstance(info, dict):
        raise DataError(task_file, None, f"expected a JSON object, found {type(info).__name__}")
    return info


def write_task_info(folder, info: dict) -> Path:
    """Write `info` as the task.json of `folder`, atomically; returns its path."""
    text = json.dumps(info, indent=2, ensure_ascii=False) + "\n"
    return atomic_write(Path(folder) / TASK_FILE, text)
