"""Training data: a folder tinybert-data wrote, held as numpy columns, served in batches.

The order is a pure function of (seed, epoch), so a resumed run sees exactly the batches the
uninterrupted run would have. Data parallel: step s of epoch e takes the s-th global batch
of `batch_size * world_size` rows of that epoch's order, and each worker its own slice of
it, so N workers together see what one worker with an N times larger batch would.

Length buckets (`length_buckets`, on by default): a batch is cut to the smallest of
`BUCKET_LENGTHS` (at most the records' seq_length) that holds its longest row, so a step pays
for the tokens it has rather than for seq_length. To make batches of similar
lengths, the epoch's shuffled order is cut into windows of `BUCKET_WINDOW` global batches,
each window is sorted by length bucket and cut into global batches, and the batches of the
whole epoch are shuffled again. Every row still appears once per epoch, the batches stay
random, and MindSpore compiles one graph per bucket length (six at seq_length 64).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tinybert_core import LABELLED_COLUMNS, TEXT_COLUMNS, DataError, read_task_info
from tinybert_data import open_records

# Fine steps where most task rows are (SST-2's median is 10 tokens, and a CPU step at 8 tokens
# costs two thirds of one at 16), then each at most 1.5x the one before, so a batch pads at
# most a third beyond its bucket below and seq_length 128 still compiles only eight graphs.
BUCKET_LENGTHS = (8, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512)
BUCKET_WINDOW = 64  # global batches per sorting window


@dataclass
class Dataset:
    """Rows of a data folder, read by row number when a step needs them.

    `records` is tinybert-data's `open_records`: a row index per TFRecord shard, so memory
    stays bounded whatever the corpus size (MindRecord folders are loaded whole). The trainer
    and evaluation read only `num_rows`, `seq_length`, `lengths` and `inputs`.
    """

    records: object  # tinybert_data.IndexedRecords, or LoadedRecords for MindRecord
    task: dict  # task.json: task, task_type, labels, seq_length, vocab_size, ...
    path: Path

    @property
    def num_rows(self) -> int:
        return self.records.num_rows

    @property
    def seq_length(self) -> int:
        return int(self.task.get("seq_length") or self.inputs([0], ["input_ids"])[0].shape[1])

    @property
    def lengths(self) -> np.ndarray:
        """Real tokens of each row (the input_mask sum), from the row index."""
        return self.records.lengths

    def inputs(self, rows, names) -> list:
        """int32 arrays of `rows` (row numbers) for each column in `names`; regression labels
        as float32."""
        batch = self.records.read(np.asarray(rows), names)
        regression = self.task.get("task_type") == "regression"
        return [
            batch[name].astype(np.float32) if name == "label_ids" and regression else batch[name]
            for name in names
        ]


def load_dataset(path, *, dataset_type: str = "tfrecord", need_labels: bool = True) -> Dataset:
    """Open a folder written by `tinybert-data task` or `tinybert-data corpus`."""
    path = Path(path)
    if not str(path) or not path.exists():
        raise DataError(
            f"{path}: data folder not found (write one with `tinybert-data task` or `corpus`)"
        )
    task = read_task_info(path)
    try:
        records = open_records(path)
    except (OSError, ValueError) as error:
        raise DataError(f"{path}: cannot read {dataset_type} records ({error})") from None
    missing = [
        c for c in (LABELLED_COLUMNS if need_labels else TEXT_COLUMNS) if c not in records.columns
    ]
    if missing:
        raise DataError(f"{path}: the records have no {', '.join(missing)} column")
    if not records.num_rows:
        raise DataError(f"{path}: no rows")
    if need_labels and task.get("labelled") is False:
        raise DataError(
            f"{path}: the records are unlabelled (a test set, task.json says labelled: false); "
            "training and evaluation need labelled data"
        )
    return Dataset(records, task, path)


def records_folder(path) -> Path:
    """The folder holding the records (and task.json, vocab.txt) of a data path."""
    path = Path(path)
    return path if path.is_dir() else path.parent


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


def bucket_length(longest: int, seq_length: int, ladder: tuple = BUCKET_LENGTHS) -> int:
    """The smallest length of `ladder` that holds `longest` tokens, at most seq_length."""
    index = int(np.searchsorted(ladder, longest))
    return seq_length if index == len(ladder) else min(seq_length, ladder[index])


def bucketed_order(
    lengths: np.ndarray,
    global_batch: int,
    seed: int,
    epoch: int,
    shuffle: bool = True,
    ladder: tuple = BUCKET_LENGTHS,
) -> np.ndarray:
    """An epoch's order in which each global batch holds rows of similar length.

    The shuffled order (epoch_order) minus the remainder of less than one global batch is
    cut into windows of BUCKET_WINDOW global batches; each window is sorted by length bucket
    (not by exact length: within a bucket the rows keep their shuffled order, which costs no
    padding and keeps batches as random as they can be) and cut into global batches; the
    batches of the epoch are then shuffled (unless `shuffle` is false). A pure function of
    its inputs.
    """
    steps = steps_per_epoch(len(lengths), global_batch)
    order = epoch_order(len(lengths), seed, epoch, shuffle)[: steps * global_batch]
    buckets = np.searchsorted(ladder, lengths)  # bucket of each row (its index in the ladder)
    window = BUCKET_WINDOW * global_batch
    for start in range(0, len(order), window):
        part = order[start : start + window]
        order[start : start + window] = part[np.argsort(buckets[part], kind="stable")]
    batches = order.reshape(steps, global_batch)
    if shuffle:
        batches = batches[np.random.default_rng([seed, epoch, 1]).permutation(steps)]
    return batches.reshape(-1)


# Arrays with one entry per token, by name and the number of axes they then have: labels
# are per token for NER ([batch, seq]), cached teacher logits too ([batch, seq, labels]).
PER_TOKEN_NDIM = {
    "input_ids": 2,
    "segment_ids": 2,
    "input_mask": 2,
    "label_ids": 2,
    "teacher_logits": 3,
}


def trim(names, arrays: list, length: int) -> list:
    """Cut the token axis (axis 1) of the per-token arrays among `arrays` to `length`."""
    return [
        a[:, :length] if PER_TOKEN_NDIM.get(name) == a.ndim else a for name, a in zip(names, arrays)
    ]


def checkpoint_extras(data: Dataset) -> dict:
    """The "task_info" and "vocab" entries a trained model's checkpoint carries (what export
    needs to rebuild the tokenizer and labels): the records' task.json and vocab.txt."""
    folder = records_folder(data.path)
    extras = {}
    if data.task:
        extras["task_info"] = json.dumps(data.task)
    vocab = folder / "vocab.txt"
    if vocab.is_file():
        try:
            extras["vocab"] = vocab.read_text(encoding="utf-8")
        except UnicodeDecodeError as error:
            raise DataError(
                f"{vocab}: not UTF-8 text (byte 0x{error.object[error.start]:02x} at offset "
                f"{error.start}); write the records again with `tinybert-data`"
            ) from None
    return extras
