"""The task table: each task's name, type, labels in id order, and the metrics it is scored by.

Each task is defined here once, and the other packages derive their views of it from its
entry: tinybert-data's reader of the task takes its type and labels (tinybert-data's
`TASK_READERS`, the tasks it has readers for, are what the command lines offer); tinybert-eval's
`TASK_METRICS` are the entries' metrics; a task.json records a task's entry. A label's id is
its position in `labels`. Adding a task is one entry here, plus its reader in tinybert-data.
"""

from __future__ import annotations

from typing import NamedTuple

from .errors import UnknownTaskError

TASK_TYPES = ("classification", "regression", "ner")

# The 10 CLUENER2020 entity types; the tag list numbers them in this order.
CLUENER_TYPES = (
    "address", "book", "company", "game", "government",
    "movie", "name", "organization", "position", "scene",
)  # fmt: skip
# Character-level BIO tags: O, then B- and I- of each type.
CLUENER_TAGS = ("O", *(f"{prefix}-{kind}" for kind in CLUENER_TYPES for prefix in ("B", "I")))


class TaskSpec(NamedTuple):
    name: str
    task_type: str  # one of TASK_TYPES
    labels: tuple  # label strings in id order (NER: tags); () for regression
    metrics: tuple  # tinybert-eval's names of the metrics reported (NER: span f1)
    main_metric: str  # the one of `metrics` that ranks models


# GLUE's own choice of metrics for each kind of task (and TNEWS's, CLUENER's).
ACCURACY = (("accuracy",), "accuracy")
F1 = (("accuracy", "f1"), "f1")  # binary F1 of the positive class: MRPC, QQP
MCC = (("accuracy", "mcc"), "mcc")  # CoLA
CORRELATION = (("pearson", "spearman"), "pearson")  # STS-B
SPAN_F1 = (("f1",), "f1")  # entity-level span F1, micro over the types


def _spec(name: str, task_type: str, labels, scored_by) -> TaskSpec:
    metrics, main_metric = scored_by
    return TaskSpec(name, task_type, tuple(labels), metrics, main_metric)


BINARY = ("0", "1")
ENTAILMENT = ("entailment", "not_entailment")
NLI = ("entailment", "neutral", "contradiction")
# TNEWS: the 15 labels in the order of the dataset's labels.json.
TNEWS_LABELS = (
    "100", "101", "102", "103", "104", "106", "107", "108",
    "109", "110", "112", "113", "114", "115", "116",
)  # fmt: skip

TASKS: dict[str, TaskSpec] = {
    spec.name: spec
    for spec in (
        _spec("sst2", "classification", BINARY, ACCURACY),
        _spec("qnli", "classification", ENTAILMENT, ACCURACY),
        _spec("mnli", "classification", NLI, ACCURACY),
        _spec("mnli_mismatched", "classification", NLI, ACCURACY),
        _spec("rte", "classification", ENTAILMENT, ACCURACY),
        _spec("wnli", "classification", BINARY, ACCURACY),
        _spec("tnews", "classification", TNEWS_LABELS, ACCURACY),
        _spec("mrpc", "classification", BINARY, F1),
        _spec("qqp", "classification", BINARY, F1),
        _spec("cola", "classification", BINARY, MCC),
        _spec("stsb", "regression", (), CORRELATION),
        _spec("cluener", "ner", CLUENER_TAGS, SPAN_F1),
    )
}


def task_spec(name: str) -> TaskSpec:
    """The table's entry for `name`; UnknownTaskError (a KeyError) lists the known tasks."""
    try:
        return TASKS[name]
    except KeyError:
        raise UnknownTaskError(f"unknown task {name!r}; known tasks: {', '.join(TASKS)}") from None
