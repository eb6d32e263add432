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
an older version (fewer keys) still reads. The keys above are checked to hold values of
their kind, and "files" to name files of the task.json's own folder only.
"""

from __future__ import annotations

import json
import reprlib
from pathlib import Path

from .errors import DataError
from .files import atomic_write
from .reading import folder_file, json_object, read_text

TASK_FILE = "task.json"


# What readers may rely on each key's value being (null counts as absent): (test, description).
_TEXT = (lambda value: isinstance(value, str), "a string")
_TEXTS = (
    lambda value: isinstance(value, list) and all(isinstance(item, str) for item in value),
    "a list of strings",
)
_COUNT = (
    lambda value: isinstance(value, int) and not isinstance(value, bool) and value >= 0,
    "a whole number >= 0",
)
_FLAG = (lambda value: isinstance(value, bool), "true or false")
_LAYOUT = {
    "task": _TEXT,
    "task_type": _TEXT,
    "labels": _TEXTS,
    "seq_length": _COUNT,
    "num_rows": _COUNT,
    "labelled": _FLAG,
    "columns": _TEXTS,
    "vocab_size": _COUNT,
    "do_lower_case": _FLAG,
    "format": _TEXT,
    "files": _TEXTS,
    "inputs": _TEXTS,
}


def check_task_info(info: dict, source) -> dict:
    """`info`, if each key of the layout it holds has a value of its kind (`seq_length` a whole
    number, `labels` a list of strings, ...); DataError naming `source` and the key otherwise.
    For task information read from elsewhere than a task.json (a model's metadata)."""
    for key, (is_kind, kind) in _LAYOUT.items():
        value = info.get(key)
        if value is not None and not is_kind(value):
            raise DataError(source, None, f"{key!r} must be {kind}, found {reprlib.repr(value)}")
    return info


def read_task_info(path) -> dict:
    """The task.json of a folder, or of the folder holding a file (a record shard); {} when
    there is none. DataError naming it when it cannot be read, is not a JSON object, holds a
    value of the wrong kind (`check_task_info`), or lists under "files" anything but file
    names of its own folder (`folder_file`): anyone may have left it, and readers open those
    files and a rerun deletes them."""
    path = Path(path)
    folder = path if path.is_dir() else path.parent
    task_file = folder / TASK_FILE
    if not task_file.exists() and not task_file.is_symlink():
        return {}
    info = check_task_info(json_object(read_text(task_file), task_file), task_file)
    for name in info.get("files") or []:
        folder_file(folder, name, task_file)
    return info


def write_task_info(folder, info: dict) -> Path:
    """Write `info` as the task.json of `folder`, atomically; returns its path."""
    text = json.dumps(info, indent=2, ensure_ascii=False) + "\n"
    return atomic_write(Path(folder) / TASK_FILE, text)
