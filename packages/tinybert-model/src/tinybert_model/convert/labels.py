"""A classifier's labels put in its task's order (`tinybert-convert ... --reorder_labels true`).

A fine-tuned model from elsewhere may name the right labels in another order: Hugging Face's
MNLI models number `contradiction, neutral, entailment`, where the task's records number
`entailment, neutral, contradiction`. tinybert-td refuses such a teacher, because its logits
would teach the student the labels swapped (huawei-noah/Pretrained-Language-Model#229: MNLI at
10%). Its classifier rows (weight and bias) can be put in the task's order instead, which
changes no prediction: a label name gets the same logit before and after.

The task's order is tinybert-core's task table (`TASKS`), which the records' task.json holds
too. The task is the one whose labels are the classifier's, in any order and any letter case
(`ENTAILMENT` is `entailment`); unnamed labels (`LABEL_0`, `0, 1, 2` for three) say nothing
about which is which and cannot be reordered.
"""

from __future__ import annotations

import logging

import numpy as np

from tinybert_core import TASKS

from ..config import BertConfig
from ..errors import CheckpointError
from ..names import HEADS, tensor_names

log = logging.getLogger(__name__)


def task_order(labels: list, source: str) -> tuple:
    """(task name, the task's labels in id order) of the task whose labels are `labels`."""
    wanted = sorted(label.lower() for label in labels)
    for name, spec in TASKS.items():
        # tasks with the same labels share one order (one tuple in the table: BINARY, NLI, ...)
        if spec.labels and sorted(label.lower() for label in spec.labels) == wanted:
            return name, spec.labels
    raise CheckpointError(
        f"{source}: --reorder_labels: its labels {list(labels)} are no task's labels in another "
        f"order (tasks: {', '.join(TASKS)}), so there is no order to put them in"
    )


def labels_in_task_order(tensors: dict, config: BertConfig, architecture: str, source: str) -> dict:
    """`tensors` with the classifier's rows in the task's label order; `config.labels` becomes
    the task's names. The other tensors are passed through as they are."""
    if "classifier" not in HEADS[architecture]:
        raise CheckpointError(
            f"{source}: --reorder_labels: a {architecture} has no classifier whose labels "
            "could be reordered"
        )
    labels = list(config.labels or [])
    task, order = task_order(labels, source)
    position = {label.lower(): index for index, label in enumerate(labels)}
    rows = np.array([position[label.lower()] for label in order])
    reordered = dict(tensors)
    for name in tensor_names("classifier", architecture):  # weight [labels, hidden], bias
        reordered[name] = np.ascontiguousarray(tensors[name][rows])
    if labels == list(order):
        log.info("%s: its labels %s are already in %s's order", source, labels, task)
    else:
        log.info(
            "%s: classifier rows reordered from %s to %s's order %s", source, labels, task, order
        )
    config.labels = list(order)
    return reordered
