"""Training data: a folder tinybert-data wrote, held as numpy columns, served in batches.

The order is a pure function of (seed, epoch), so a resumed run sees exactly the batches the
uninterrupted run would have. Data parallel: step s of epoch e takes the s-th global batch
of `batch_size * world_size` rows of that epoch's order, and each worker its own slice of
it, so N workers together see what one worker with an N times larger batch would.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tinybert_data import load_records

COLUMNS = ("input_ids", "segment_ids", "input_mask", "label_ids")


class DataError(ValueError):
    """A data folder that is missing, incomplete or does not fit the run."""


@dataclass
class Dataset:
    columns: dict  # name -> numpy array, rows first
    task: dict  # task.json: task, task_type, labels, seq_length, vocab_size, ...
    path: Path

    @property
    def num_rows(self) -> int:
        return len(self.columns["input_ids"])

    def inputs(self, rows, names) -> list:
        return [self.columns[name][rows] for name in names]


def load_dataset(path, *, dataset_type: str = "tfrecord", need_labels: bool = True) -> Dataset:
    """Load a folder written by `tinybert-data task` or `tinybert-data corpus`."""
    path = Path(path)
    if not str(path) or not path.exists():
        raise DataError(
            f"{path}: data folder not found (write one with `tinybert-data task` or `corpus`)"
        )
    task_file = (path if path.is_dir() else path.parent) / "task.json"
    task = json.loads(task_file.read_text(encoding="utf-8")) if task_file.is_file() else {}
    try:
        columns = load_records(path)
    except (OSError, ValueError) as error:
        raise DataError(f"{path}: cannot read {dataset_type} records ({error})") from None
    missing = [c for c in COLUMNS[: 4 if need_labels else 3] if c not in columns]
    if missing:
        raise DataError(f"{path}: the records have no {', '.join(missing)} column")
    if not len(columns["input_ids"]):
        raise DataError(f"{path}: no rows")
    columns = {name: np.asarray(values) for name, values in columns.items()}
    for name in ("input_ids", "segment_ids", "input_mask"):
        columns[name] = columns[name].astype(np.int32)
    if "label_ids" in columns:
        regression = task.get("task_type") == "regression"
        columns["label_ids"] = columns["label_ids"].astype(np.float32 if regression else np.int32)
    return Dataset(columns, task, path)


def epoch_order(num_rows: int, seed: int, epoch: int, shuffle: bool = True) -> np.ndarray:
    if not shuffle:
        return np.arange(num_rows)
    return np.random.default_rng([seed, epoch]).permutation(num_rows)


def steps_per_epoch(num_rows: int, batch_size: int, world_size: int = 1) -> int:
    """Full global batches per epoch; the remainder is dropped so every step has one shape."""
    return num_rows // (batch_size * world_size)


def batch_rows(
    order: np.ndarray, step_in_epoch: int, batch_size: int, rank: int = 0, world_size: int = 1
) -> np.ndarray:
    """The rows worker `rank` trains on at this step."""
    start = (step_in_epoch * world_size + rank) * batch_size
    return order[start : start + batch_size]
