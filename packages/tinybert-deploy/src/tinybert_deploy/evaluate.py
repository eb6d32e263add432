"""Scoring an ONNX model on a task's dev data (raw file or records) with tinybert-eval."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np

from tinybert_core import read_task_info
from tinybert_data import get_task, load_records
from tinybert_eval import get_evaluator

from .errors import DeployError
from .runtime import INPUTS, OnnxModel, trimmed


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
    skipped (a calibration sample); None: every row, a bad one is an error."""
    path = Path(path)
    if not path.exists():
        raise DeployError(f"{path}: input not found")
    if path.is_dir() or path.suffix in (".tfrecord", ".mindrecord"):
        columns = load_records(path)
        vocab_size = read_task_info(path).get("vocab_size")
        if model.vocab_size and vocab_size and vocab_size != model.vocab_size:
            raise DeployError(
                f"{path} was tokenized with {vocab_size} tokens; the model has {model.vocab_size}"
            )
        return {name: values[:rows] for name, values in columns.items()} if rows else columns
    if vocab_path is None and model.vocab_text is None:
        raise DeployError(
            f"a raw input file needs --vocab ({model.path} does not carry its vocabulary)"
        )
    tokenizer = model.tokenizer(vocab_path)
    task = get_task(task_name)
    if rows:
        examples = list(itertools.islice(task.read(path, on_error="skip"), rows))
    else:
        examples = list(task.read(path))
    if not examples:
        raise DeployError(f"{path}: no examples")
    seq_length = seq_length or model.seq_length or 128
    return task.features(examples, tokenizer, min(seq_length, model.max_length))


def evaluate(model: OnnxModel, task_name: str, columns: dict, batch_size: int = 32) -> dict:
    """The task's metrics (tinybert-eval) of `model` over every row of `columns`."""
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
