"""Evaluate a head model on a data folder with tinybert-eval's metrics."""

from __future__ import annotations

import numpy as np
from mindspore import Tensor

from tinybert_eval import get_evaluator

from .data import Dataset


def evaluate(model, dataset: Dataset, batch_size: int = 32) -> dict:
    """Run `model` over every row of `dataset`; return tinybert-eval's result dict.

    The last batch is padded to full size so a compiled graph sees a single shape; padded
    rows are dropped before scoring.
    """
    task = dataset.task
    evaluator = get_evaluator(task["task"], labels=task.get("labels"))
    model.set_train(False)
    for start in range(0, dataset.num_rows, batch_size):
        rows = np.arange(start, min(start + batch_size, dataset.num_rows))
        real = len(rows)
        rows = np.pad(rows, (0, batch_size - real), mode="edge")
        input_ids, segment_ids, input_mask, labels = dataset.inputs(
            rows, ("input_ids", "segment_ids", "input_mask", "label_ids")
        )
        logits = model(Tensor(input_ids), Tensor(segment_ids), Tensor(input_mask))[0].asnumpy()
        mask = input_mask[:real] if logits.ndim == 3 else None
        evaluator.update(logits[:real], labels[:real], mask=mask)
    return evaluator.compute()
