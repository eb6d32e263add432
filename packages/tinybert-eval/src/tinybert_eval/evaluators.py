"""Streaming evaluators: `update()` per batch, `compute()` at the end, and the registry that
maps task names to their metrics.

    evaluator = get_evaluator("sst2")
    for logits, labels in batches:
        evaluator.update(logits, labels)
    evaluator.compute()   # {"accuracy": 0.91, "count": 872, "main": "accuracy"}

Rows (classification) or positions (tagging) whose label is IGNORE_INDEX, or whose mask is 0,
are not scored: padding rows that fill a last batch, special tokens, padding tokens and
word pieces after a word's first.
"""

from __future__ import annotations

import numpy as np

from .metrics import METRICS
from .spans import SpanCounts, spans_from_tags

IGNORE_INDEX = -100

# The 10 CLUENER entity types, in the order of tinybert-data's tag list.
CLUENER_TYPES = (
    "address",
    "book",
    "company",
    "game",
    "government",
    "movie",
    "name",
    "organization",
    "position",
    "scene",
)
CLUENER_TAGS = ["O"] + [f"{prefix}-{kind}" for kind in CLUENER_TYPES for prefix in ("B", "I")]


class Evaluator:
    """Collects predictions batch by batch; subclasses say how to score them."""

    def __init__(self, main: str, metrics=(), labels=None):
        self.main = main
        self.metrics = tuple(metrics)
        self.labels = list(labels) if labels is not None else None
        self.reset()

    def reset(self) -> None:
        self.predictions, self.references = [], []

    def update(self, logits_or_predictions, labels, mask=None) -> None:
        predictions = np.asarray(logits_or_predictions)
        labels = np.asarray(labels)
        if predictions.ndim == labels.ndim + 1:  # logits: the highest-scoring class
            predictions = predictions.argmax(-1)
        predictions = predictions.reshape(len(labels), *labels.shape[1:])
        keep = labels != IGNORE_INDEX
        if mask is not None:
            keep &= np.asarray(mask).reshape(labels.shape) != 0
        self.predictions.append(predictions[keep])
        self.references.append(labels[keep])

    def _arrays(self) -> tuple:
        if not self.predictions:
            return np.zeros(0), np.zeros(0)
        return np.concatenate(self.predictions), np.concatenate(self.references)

    def compute(self) -> dict:
        predictions, references = self._arrays()
        if not len(references):  # nothing scored: every metric is 0 rather than undefined
            return {**dict.fromkeys(self.metrics, 0.0), "count": 0, "main": self.main}
        result = {name: METRICS[name](predictions, references) for name in self.metrics}
        return {**result, "count": len(references), "main": self.main}


class RegressionEvaluator(Evaluator):
    """Regression (STS-B): predictions are [batch] or [batch, 1] values."""

    def update(self, logits_or_predictions, labels, mask=None) -> None:
        labels = np.asarray(labels, np.float64).reshape(-1)
        predictions = np.asarray(logits_or_predictions, np.float64).reshape(len(labels))
        keep = labels != IGNORE_INDEX if mask is None else np.asarray(mask).reshape(-1) != 0
        self.predictions.append(predictions[keep])
        self.references.append(labels[keep])


class TaggingEvaluator(Evaluator):
    """NER: entity-level span precision/recall/F1 (micro and per type) and token accuracy.

    Each row's scored positions, in order, form one sentence's tag sequence.
    """

    def __init__(self, labels, scheme: str = "BIO"):
        self.scheme = scheme
        super().__init__("f1", labels=labels)

    def reset(self) -> None:
        self.spans = SpanCounts()
        self.correct_tokens = self.tokens = self.sentences = 0

    def update(self, logits_or_predictions, labels, mask=None) -> None:
        predictions = np.asarray(logits_or_predictions)
        labels = np.asarray(labels)
        if labels.ndim == 1:  # one sentence
            labels, predictions = labels[None], predictions[None]
            mask = None if mask is None else np.asarray(mask)[None]
        if predictions.ndim == labels.ndim + 1:
            predictions = predictions.argmax(-1)
        for row, (predicted, gold) in enumerate(zip(predictions, labels)):
            keep = gold != IGNORE_INDEX
            if mask is not None:
                keep &= np.asarray(mask[row]) != 0
            predicted, gold = predicted[keep], gold[keep]
            self.spans.add(
                spans_from_tags(self._names(predicted), self.scheme),
                spans_from_tags(self._names(gold), self.scheme),
            )
            self.correct_tokens += int(np.sum(predicted == gold))
            self.tokens += len(gold)
            self.sentences += 1

    def _names(self, ids) -> list:
        if any(i < 0 or i >= len(self.labels) for i in ids):
            bad = next(int(i) for i in ids if i < 0 or i >= len(self.labels))
            raise ValueError(f"tag id {bad} is outside the {len(self.labels)} tags {self.labels}")
        return [self.labels[i] for i in ids]

    def compute(self) -> dict:
        result = self.spans.scores()
        result["token_accuracy"] = self.correct_tokens / self.tokens if self.tokens else 0.0
        return {**result, "count": self.sentences, "main": "f1"}


# task -> (kind, metrics, main metric). GLUE's own choice of metric for each task.
TASK_METRICS = {
    "sst2": ("classification", ["accuracy"], "accuracy"),
    "qnli": ("classification", ["accuracy"], "accuracy"),
    "mnli": ("classification", ["accuracy"], "accuracy"),
    "mnli_mismatched": ("classification", ["accuracy"], "accuracy"),
    "rte": ("classification", ["accuracy"], "accuracy"),
    "wnli": ("classification", ["accuracy"], "accuracy"),
    "tnews": ("classification", ["accuracy"], "accuracy"),
    "mrpc": ("classification", ["accuracy", "f1"], "f1"),
    "qqp": ("classification", ["accuracy", "f1"], "f1"),
    "cola": ("classification", ["accuracy", "mcc"], "mcc"),
    "stsb": ("regression", ["pearson", "spearman"], "pearson"),
    "cluener": ("ner", ["f1"], "f1"),
}
ALIASES = {
    "sst-2": "sst2",
    "mnli-mm": "mnli_mismatched",
    "mnli_mm": "mnli_mismatched",
    "sts-b": "stsb",
}


def task_name(name: str) -> str:
    """The registry's name for a task, or ValueError listing the known ones."""
    key = ALIASES.get(name.lower(), name.lower())
    if key not in TASK_METRICS:
        raise ValueError(f"unknown task {name!r}; known tasks: {', '.join(TASK_METRICS)}")
    return key


def get_evaluator(task: str, labels=None, scheme: str = "BIO") -> Evaluator:
    """The evaluator for a task. NER needs its tag list in id order (default: CLUENER's)."""
    kind, metrics, main = TASK_METRICS[task_name(task)]
    if kind == "ner":
        return TaggingEvaluator(labels or CLUENER_TAGS, scheme)
    if kind == "regression":
        return RegressionEvaluator(main, metrics, labels)
    return Evaluator(main, metrics, labels)
