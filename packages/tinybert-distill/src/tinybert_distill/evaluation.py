"""Run a head model over a data folder: its logits (`predict`), or tinybert-eval's metrics
(`evaluate`; `metrics_of` for logits already computed)."""

from __future__ import annotations

import numpy as np
from mindspore import Tensor

from tinybert_core import TEXT_COLUMNS
from tinybert_eval import get_evaluator

from .data import Dataset, bucket_length


def predict(
    model, dataset: Dataset, rows=None, batch_size: int = 32, length_buckets: bool = True
) -> np.ndarray:
    """The logits of head model `model` in inference mode for `rows` (default: all), in that
    order: [rows, labels], or [rows, seq_length, labels] for tagging.

    With length buckets the rows are run sorted by length, each batch cut to its bucket, so
    short rows cost what their tokens cost. Every batch has `batch_size` rows (the last one
    is filled up with repeats, dropped afterwards), so a compiled graph sees one shape per
    bucket. Per-token logits beyond a batch's bucket are 0.
    """
    model.set_train(False)
    rows = np.arange(dataset.num_rows) if rows is None else np.asarray(rows)
    batch_size = min(batch_size, max(len(rows), 1))  # a larger batch would only be padding
    lengths = dataset.lengths[rows]
    run_order = np.argsort(lengths, kind="stable") if length_buckets else np.arange(len(rows))
    outputs = None
    for start in range(0, len(rows), batch_size):
        chosen = run_order[start : start + batch_size]
        real = len(chosen)
        chosen = np.pad(chosen, (0, batch_size - real), mode="edge")
        length = dataset.seq_length
        if length_buckets:
            length = bucket_length(lengths[chosen].max(), dataset.seq_length)
        arrays = [a[:, :length] for a in dataset.inputs(rows[chosen], TEXT_COLUMNS)]
        logits = model(*[Tensor(a) for a in arrays], logits_only=True).logits.asnumpy()[:real]
        if outputs is None:
            shape = (len(rows), dataset.seq_length, *logits.shape[2:])
            outputs = np.zeros(shape if logits.ndim == 3 else (len(rows), *logits.shape[1:]))
            outputs = outputs.astype(np.float32)
        if logits.ndim == 3:
            outputs[chosen[:real], :length] = logits
        else:
            outputs[chosen[:real]] = logits
    return outputs


def evaluate(model, dataset: Dataset, batch_size: int = 32, length_buckets: bool = True) -> dict:
    """Run `model` over every row of `dataset`; return tinybert-eval's result dict."""
    logits = predict(model, dataset, None, batch_size, length_buckets)
    return metrics_of(logits, dataset, None, batch_size)


def metrics_of(logits: np.ndarray, dataset: Dataset, rows=None, batch_size: int = 32) -> dict:
    """tinybert-eval's result dict for the logits `predict` gave for `rows` of `dataset`
    (default: all), against their labels."""
    task = dataset.task
    evaluator = get_evaluator(task["task"], labels=task.get("labels"))
    rows = np.arange(dataset.num_rows) if rows is None else np.asarray(rows)
    for start in range(0, len(rows), batch_size):
        batch = slice(start, start + batch_size)
        input_mask, labels = dataset.inputs(rows[batch], ("input_mask", "label_ids"))
        mask = input_mask if logits.ndim == 3 else None
        evaluator.update(logits[batch], labels, mask=mask)
    return evaluator.compute()
