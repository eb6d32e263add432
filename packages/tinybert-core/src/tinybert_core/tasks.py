"""The task table: each task's name, type and labels in id order.

tinybert-data reads and numbers the labels of the tasks it has readers for (sst2, qnli, mnli,
tnews, cluener) with it; tinybert-eval scores every task here; a task.json records a task's
entry. A label's id is its position in `labels`.
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


def _spec(name: str, task_type: str, labels=()) -> TaskSpec:
    return TaskSpec(name, task_type, tuple(labels))


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
        _spec("sst2", "classification", BINARY),
        _spec("qnli", "classification", ENTAILMENT),
        _spec("mnli", "classification", NLI),
        _spec("mnli_mismatched", "classification", NLI),
        _spec("rte", "classification", ENTAILMENT),
        _spec("wnli", "classification", BINARY),
        _spec("tnews", "classification", TNEWS_LABELS),
        _spec("mrpc", "classification", BINARY),
        _spec("qqp", "classification", BINARY),
        _spec("cola", "classification", BINARY),
        _spec("stsb", "regression"),
        _spec("cluener", "ner", CLUENER_TAGS),
    )
}


def task_spec(name: str) -> TaskSpec:
    """The table's entry for `name`; UnknownTaskError (a KeyError) lists the known tasks."""
    try:
        return TASKS[name]
    except KeyError:
        raise UnknownTaskError(f"unknown task {name!r}; known tasks: {', '.join(TASKS)}") from None
