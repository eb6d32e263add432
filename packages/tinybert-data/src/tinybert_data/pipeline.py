"""Whole jobs: a task file or a corpus to a records directory, with a summary of what was done."""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import partial
from itertools import islice
from pathlib import Path

from tqdm import tqdm

from tinybert_core import COLUMNS, TEXT_COLUMNS, DataError, regular_file
from tinybert_data.corpus import input_files, pack_pieces
from tinybert_data.indexed import write_row_indexes
from tinybert_data.prefetch import ahead
from tinybert_data.records import RecordsWriter
from tinybert_data.tasks import Task, get_task
from tinybert_data.tokenization import BertTokenizer

logger = logging.getLogger(__name__)

TASK_CHUNK = 8192  # examples featurized at a time: bounded memory on any input size
CORPUS_CHUNK = 4096  # sequences written at a time
# Rows longer than any BERT-family model reads (BERT has 512 positions) are refused: a chunk of
# rows at 8192 tokens already takes 1 GB, and a row index counts tokens in 16 bits.
MAX_SEQ_LENGTH = 8192


@dataclass
class Summary:
    """What a job wrote: counts, problems skipped, files, time taken."""

    output: Path
    num_rows: int = 0
    skipped: list[DataError] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    seconds: float = 0.0
    label_counts: dict[str, int] = field(default_factory=dict)
    num_documents: int = 0
    num_lines: int = 0
    num_tokens: int = 0


def write_task_records(
    task: str | Task,
    inputs: str | Path | Iterable,
    vocab: str | Path,
    output: str | Path,
    seq_length: int = 128,
    *,
    do_lower_case: bool = True,
    format: str = "tfrecord",
    shards: int = 1,
    on_error: str = "raise",
    name: str | None = None,
    progress: bool = False,
    overwrite: bool = False,
) -> Summary:
    """Read task file(s), build features at `seq_length` and write a records directory.

    `name` names the shard files (default: the stem of the first input, e.g. `train`).
    task.json says `"labelled": true` for train and dev files, `false` for a test file (no
    labels at all: every label_ids is IGNORE_INDEX, so it cannot be trained or scored on).
    A file with no examples (empty, a header only, or every row skipped), or inputs that mix
    labelled and unlabelled rows, raise DataError and write nothing. A folder holding the
    records of another dataset is replaced only with `overwrite` (see RecordsWriter).
    """
    start = time.perf_counter()
    _check_seq_length(seq_length)
    task = get_task(task) if isinstance(task, str) else task
    inputs = [Path(inputs)] if isinstance(inputs, (str, Path)) else [Path(p) for p in inputs]
    for path in inputs:
        regular_file(path)  # DataError saying what it is: missing, a folder, a FIFO
    tokenizer = BertTokenizer.from_vocab(vocab, do_lower_case=do_lower_case)
    summary = Summary(Path(output))
    label_shape = (seq_length,) if task.task_type == "ner" else ()
    shapes = {**{c: (seq_length,) for c in TEXT_COLUMNS}, "label_ids": label_shape}
    metadata = {
        "task": task.name,
        "task_type": task.task_type,
        "labels": list(task.labels),
        "seq_length": seq_length,
        "vocab_size": tokenizer.vocab_size,
        "do_lower_case": do_lower_case,
        "inputs": [str(p) for p in inputs],
    }
    counts = Counter()
    total_lines = sum(_count_lines(p) for p in inputs)
    writer = RecordsWriter(
        output, name or inputs[0].stem, shapes, metadata, vocab, format, shards, overwrite
    )
    bar = tqdm(total=total_lines, unit=" lines", disable=not progress, desc=task.name)
    labelled = None  # whether the first input file has labels; the others must agree
    with writer, bar:
        for path in inputs:
            logger.info("reading %s as %s", path, task.name)
            examples = task.read(path, on_error=on_error, skipped=summary.skipped)
            lines_done, rows_before, skipped_before = 0, writer.num_rows, len(summary.skipped)
            featurize = partial(task.features, tokenizer=tokenizer, seq_length=seq_length)
            for chunk, features in ahead(featurize, _chunks(examples, TASK_CHUNK)):
                if labelled is None:
                    labelled = chunk[0].label is not None
                elif labelled != (chunk[0].label is not None):
                    this, other = ("no labels", "has") if labelled else ("labels", "has none")
                    raise DataError(
                        path,
                        chunk[0].line,
                        f"this file has {this} but {inputs[0]} {other}: one dataset is "
                        "labelled throughout or not at all",
                    )
                writer.write({c: features[c] for c in COLUMNS})
                counts.update(features["label_ids"][features["label_ids"] >= 0].ravel().tolist())
                bar.update(chunk[-1].line - lines_done)
                lines_done = chunk[-1].line
            bar.update(_count_lines(path) - lines_done)
            if writer.num_rows == rows_before:
                bad = len(summary.skipped) > skipped_before
                what = "has only bad rows (all skipped)" if bad else "is empty or a header only"
                raise DataError(path, None, f"no examples: the file {what}")
        writer.metadata["labelled"] = labelled
    summary.num_rows = writer.num_rows
    summary.files = writer.file_names
    summary.label_counts = {task.labels[i]: counts[i] for i in sorted(counts)}
    summary.seconds = time.perf_counter() - start
    return summary


def write_corpus_records(
    inputs: str | Path | Iterable,
    vocab: str | Path,
    output: str | Path,
    seq_length: int = 128,
    *,
    do_lower_case: bool = True,
    short_seq_prob: float = 0.1,
    seed: int = 12345,
    format: str = "tfrecord",
    shards: int = 1,
    on_error: str = "raise",
    name: str = "corpus",
    progress: bool = False,
    workers: int = 1,
    overwrite: bool = False,
) -> Summary:
    """Pack text corpora (files or folders) into sequences of `seq_length` and write a records
    directory with input_ids, segment_ids, input_mask. See `tinybert_data.corpus` for how;
    `workers` processes pack in parallel, with the same rows for any number of them. TFRecord
    shards get their row indexes (`tinybert_data.indexed`) written beside them. A folder
    holding the records of another dataset is replaced only with `overwrite`."""
    start = time.perf_counter()
    _check_seq_length(seq_length)
    files = input_files([inputs] if isinstance(inputs, (str, Path)) else inputs)
    tokenizer = BertTokenizer.from_vocab(vocab, do_lower_case=do_lower_case)
    summary = Summary(Path(output))
    metadata = {
        "task": "corpus",
        "task_type": "pretraining",
        "labels": [],
        "seq_length": seq_length,
        "vocab_size": tokenizer.vocab_size,
        "do_lower_case": do_lower_case,
        "short_seq_prob": short_seq_prob,
        "seed": seed,
        "inputs": [str(p) for p in files],
    }
    shapes = {c: (seq_length,) for c in TEXT_COLUMNS}
    total_bytes = sum(p.stat().st_size for p in files)
    writer = RecordsWriter(output, name, shapes, metadata, vocab, format, shards, overwrite)
    bar = tqdm(total=total_bytes, unit="B", unit_scale=True, disable=not progress, desc="corpus")
    with writer, bar:
        pieces = pack_pieces(
            files,
            vocab,
            seq_length,
            do_lower_case=do_lower_case,
            short_seq_prob=short_seq_prob,
            seed=seed,
            on_error=on_error,
            workers=workers,
        )
        for piece in pieces:
            for begin in range(0, len(piece.rows["input_ids"]), CORPUS_CHUNK):
                rows = {c: piece.rows[c][begin : begin + CORPUS_CHUNK] for c in TEXT_COLUMNS}
                writer.write(rows)
            summary.num_tokens += int(piece.rows["input_mask"].sum())
            summary.num_lines += piece.num_lines
            summary.num_documents += piece.num_documents
            summary.skipped.extend(piece.skipped)
            bar.update(piece.num_bytes)
        if writer.num_rows == 0:
            raise DataError(", ".join(map(str, files)), None, "no text: the corpus is empty")
    if format == "tfrecord":
        write_row_indexes(output)
    summary.num_rows = writer.num_rows
    summary.files = writer.file_names
    summary.seconds = time.perf_counter() - start
    return summary


def _check_seq_length(seq_length: int) -> None:
    if not 1 <= seq_length <= MAX_SEQ_LENGTH:
        raise ValueError(
            f"seq_length {seq_length} is outside [1, {MAX_SEQ_LENGTH}] (BERT models read 512 "
            "positions)"
        )


def _chunks(items: Iterable, size: int) -> Iterator[list]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


def _count_lines(path: Path) -> int:
    """Lines in a file, counted in 1 MiB blocks (fast, constant memory)."""
    count = 0
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            count += block.count(b"\n")
    return count
