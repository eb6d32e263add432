"""Files for the Ascend310 ACL inference app, and scoring what it returns.

Layout written by `preprocess` (one example per file, int32, shape [1, seq_length]):

    DIR/00_input_ids/<task>_00000.bin   DIR/01_segment_ids/...   DIR/02_input_mask/...
    DIR/label_ids.npy                   [n] or, for NER, [n, seq_length]
    DIR/task.json                       tinybert-core's task.json: task, task_type, labels,
                                        seq_length, num_rows, labelled, columns (, vocab_size,
                                        do_lower_case, inputs)

The app writes one float32 logits file per example, named after its input with `_0` added
(`<task>_00000_0.bin`): [num_labels] values for classification, [seq_length * num_labels]
for NER, which `postprocess` reshapes to [seq_length, num_labels] (the model zoo reshaped NER
results to [num_labels, seq_length], scoring noise). Folders written by earlier versions
(a task.json of task, task_type, labels, seq_length and num_rows only) still postprocess.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tinybert_core import IGNORE_INDEX, TASK_FILE, read_task_info, write_task_info
from tinybert_eval import get_evaluator

from .errors import DeployError

# The app runs a BERT exported at one fixed length; released BERTs have 512 positions. 4,096
# leaves room for longer custom ones; more is a typo (10^9 would ask rows x 12 GB).
MAX_SEQ_LENGTH = 4096
# What postprocess reads from task.json (tinybert-core's read_task_info checks their kinds).
NEEDED = ("task", "task_type", "labels", "seq_length", "num_rows")

FOLDERS = {
    "input_ids": "00_input_ids",
    "segment_ids": "01_segment_ids",
    "input_mask": "02_input_mask",
}


def example_name(task: str, index: int) -> str:
    return f"{task}_{index:05d}"


def preprocess(
    columns: dict, task: str, task_type: str, labels: list, output, metadata: dict | None = None
) -> Path:
    """Write the app's input files, label_ids.npy and task.json; `metadata`: further task.json
    entries (vocab_size, do_lower_case, inputs: what the rows were tokenized with and read from).
    """
    output = Path(output)
    rows, seq_length = columns["input_ids"].shape
    for name, folder in FOLDERS.items():
        (output / folder).mkdir(parents=True, exist_ok=True)
        for index in range(rows):
            columns[name][index : index + 1].astype(np.int32).tofile(
                output / folder / f"{example_name(task, index)}.bin"
            )
    np.save(output / "label_ids.npy", columns["label_ids"])
    info = {
        "task": task,
        "task_type": task_type,
        "labels": list(labels),
        "seq_length": seq_length,
        **(metadata or {}),
        "num_rows": rows,
        "labelled": bool((columns["label_ids"] != IGNORE_INDEX).any()),
        "columns": [*FOLDERS, "label_ids"],
    }
    write_task_info(output, info)
    return output


def postprocess(data_dir, result_dir) -> dict:
    data_dir, result_dir = Path(data_dir), Path(result_dir)
    info = read_task_info(data_dir)
    if not info:
        raise DeployError(
            f"{data_dir}: no task.json (write the folder with tinybert-310-preprocess)"
        )
    missing = [key for key in NEEDED if info.get(key) is None]
    if missing or not info["seq_length"]:
        what = f"lacks {', '.join(missing)}" if missing else "gives seq_length 0"
        raise DeployError(f"{data_dir / TASK_FILE} {what} (write it with tinybert-310-preprocess)")
    label_file = data_dir / "label_ids.npy"
    try:
        label_ids = np.load(label_file)
    except ValueError as error:  # not an .npy file, or one holding Python objects
        raise DeployError(f"{label_file}: not a label array ({error})") from None
    if len(label_ids) != info["num_rows"]:
        raise DeployError(
            f"{label_file} holds {len(label_ids)} rows but {TASK_FILE} says {info['num_rows']}"
        )
    # a known task first: its name is part of every file name read below
    evaluator = get_evaluator(info["task"], labels=info["labels"])
    masks = []
    for index in range(info["num_rows"]):
        path = data_dir / FOLDERS["input_mask"] / f"{example_name(info['task'], index)}.bin"
        masks.append(np.fromfile(path, np.int32))
        if masks[-1].size != info["seq_length"]:
            raise DeployError(
                f"{path}: {masks[-1].size} values, expected seq_length {info['seq_length']}"
            )
    input_mask = np.stack(masks)
    num_labels = 1 if info["task_type"] == "regression" else len(info["labels"])
    for index in range(info["num_rows"]):
        path = result_dir / f"{example_name(info['task'], index)}_0.bin"
        if not path.is_file():
            raise DeployError(f"{path}: result file missing ({index} of {info['num_rows']} found)")
        logits = np.fromfile(path, np.float32)
        if info["task_type"] == "ner":
            expected = info["seq_length"] * num_labels
            if logits.size != expected:
                raise DeployError(
                    f"{path}: {logits.size} values, expected seq_length x labels = {expected}"
                )
            logits = logits.reshape(info["seq_length"], num_labels)
            evaluator.update(
                logits[None], label_ids[index : index + 1], mask=input_mask[index : index + 1]
            )
        else:
            if logits.size != num_labels:
                raise DeployError(f"{path}: {logits.size} values, expected {num_labels}")
            evaluator.update(logits[None], label_ids[index : index + 1])
    return evaluator.compute()
