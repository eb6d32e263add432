"""Scoring an ONNX model on a task's dev data (raw file or records) with tinybert-eval."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np

from tinybert_core import TASK_FILE, read_task_info, read_text
from tinybert_data import get_task, load_records, vocab_tokens
from tinybert_eval import get_evaluator

from .errors import DeployError
from .runtime import INPUTS, MAX_BATCH_SIZE, OnnxModel, in_range, trimmed

VOCAB_FILE = "vocab.txt"  # the vocabulary a records folder was tokenized with (tinybert-data)


def task_columns(
    task_name: str,
    path,
    vocab_path,
    model: OnnxModel,
    seq_length: int | None = None,
    rows: int | None = None,
) -> dict:
    """Feature columns of a raw task file (TSV / JSON lines) or of a records folder.

    `vocab_path` None: the model's own vocabulary; `seq_length` None: the length the model was
    trained at (128 for models that do not record it). `rows`: only the first rows, bad ones
    skipped (a calibration sample); None: every row, a bad one is an error. Records must be of
    `task_name`, with the model's labels, vocabulary and casing, and fit its positions."""
    path = Path(path)
    if not path.exists():
        raise DeployError(f"{path}: input not found")
    task = get_task(task_name)
    if model.labels is not None and task.labels and list(task.labels) != model.labels:
        raise DeployError(
            f"{task_name}'s labels are {list(task.labels)} but {model.path} scores "
            f"{model.labels}: it was not trained on {task_name}"
        )
    if seq_length is not None:
        model.length_in_range("seq_length", seq_length)
    if path.is_dir() or path.suffix in (".tfrecord", ".mindrecord"):
        check_records(path, task_name, vocab_path, model, seq_length)
        columns = load_records(path)
        check_columns(columns, path, model)
        return {name: values[:rows] for name, values in columns.items()} if rows else columns
    if vocab_path is None and model.vocab_text is None:
        raise DeployError(
            f"a raw input file needs --vocab ({model.path} does not carry its vocabulary)"
        )
    tokenizer = model.tokenizer(vocab_path)
    if rows:
        examples = list(itertools.islice(task.read(path, on_error="skip"), rows))
    else:
        examples = list(task.read(path))
    if not examples:
        raise DeployError(f"{path}: no examples")
    seq_length = seq_length or model.seq_length or min(128, model.max_length)
    return task.features(examples, tokenizer, seq_length)


def check_records(path: Path, task_name: str, vocab_path, model: OnnxModel, seq_length) -> None:
    """Records are tokenized already: what their task.json (and vocab.txt) say must be what
    the model and the flags expect, or the score would be of another task, labelling,
    vocabulary or length without a word."""
    info = read_task_info(path)
    folder = path if path.is_dir() else path.parent
    said = f"{folder / TASK_FILE} says"
    recorded = info.get("task")
    if recorded is not None and recorded != task_name:
        raise DeployError(
            f"{path} holds {recorded} rows ({said} so), not {task_name}: score them with a "
            f"{recorded} model"
        )
    labels = info.get("labels")
    if labels is not None and model.labels is not None and labels != model.labels:
        raise DeployError(f"{said} labels {labels} but {model.path} scores {model.labels}")
    vocab_size = info.get("vocab_size")
    if model.vocab_size and vocab_size and vocab_size != model.vocab_size:
        raise DeployError(
            f"{path} was tokenized with {vocab_size} tokens; the model has {model.vocab_size}"
        )
    cased = info.get("do_lower_case")
    if "do_lower_case" in model.metadata and cased is not None and cased != model.do_lower_case:
        raise DeployError(
            f"{said} do_lower_case {str(cased).lower()} but {model.path} was trained on text "
            f"tokenized with do_lower_case {str(model.do_lower_case).lower()}"
        )
    length = info.get("seq_length")
    if seq_length is not None and length is not None and seq_length != length:
        raise DeployError(
            f"--seq_length {seq_length}, but {said} the rows are {length} tokens long (records "
            "are tokenized already): leave out --seq_length"
        )
    if vocab_path is not None:
        model.tokenizer(vocab_path)  # the given vocabulary must be the model's own
    records_vocab = folder / VOCAB_FILE
    if records_vocab.is_file():
        text = read_text(records_vocab)
        model.check_vocab(text, records_vocab)
        if vocab_path is not None and vocab_tokens(text) != vocab_tokens(read_text(vocab_path)):
            raise DeployError(
                f"{vocab_path} is not {records_vocab}, which {path} was tokenized with"
            )


def check_columns(columns: dict, path: Path, model: OnnxModel) -> None:
    """The rows' shapes must fit the model: no longer than its positions, and labels one per
    row (classification) or one per token (a tagger), also for records without a task.json."""
    length = columns["input_ids"].shape[1] if columns["input_ids"].ndim == 2 else None
    if length is not None and length > model.max_length:
        raise DeployError(
            f"{path} holds rows of {length} tokens, beyond the {model.max_length} positions of "
            f"{model.path}"
        )
    labels = columns.get("label_ids")
    dimensions = 2 if model.task_type == "ner" else 1
    if labels is not None and labels.ndim != dimensions:
        kind = "one per token" if labels.ndim == 2 else "one per row"
        raise DeployError(
            f"{path} holds labels {kind}, but {model.path} is a {model.task_type} model"
        )


def evaluate(model: OnnxModel, task_name: str, columns: dict, batch_size: int = 32) -> dict:
    """The task's metrics (tinybert-eval) of `model` over every row of `columns`."""
    batch_size = in_range("batch_size", batch_size, 1, MAX_BATCH_SIZE)
    labels = columns["label_ids"]
    if not np.any(labels >= 0):
        raise DeployError(
            f"the {task_name} data has no labels (a test file?): "
            "evaluation needs a labelled dev set"
        )
    classification = model.task_type == "classification" and model.labels is not None
    if classification and labels.max() >= len(model.labels):
        raise DeployError(
            f"the data has label ids up to {labels.max()}; the model has {len(model.labels)} labels"
        )
    evaluator = get_evaluator(task_name, labels=model.labels)
    rows = len(columns["input_ids"])
    # similar lengths together: each batch is padded only to its own longest row
    order = np.argsort(columns["input_mask"].sum(1), kind="stable")
    for start in range(0, rows, batch_size):
        batch = trimmed(
            {name: values[order[start : start + batch_size]] for name, values in columns.items()}
        )
        logits = model.logits(*(batch[name] for name in INPUTS))
        mask = batch["input_mask"] if logits.ndim == 3 else None
        evaluator.update(logits, batch["label_ids"], mask=mask)
    return evaluator.compute()
