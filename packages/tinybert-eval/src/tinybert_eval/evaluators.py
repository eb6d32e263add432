"""Streaming evaluators: `update()` per batch, `compute()` at the end, and the registry that
maps task names to their metrics.

    evaluator = get_evaluator("sst2")
    for logits, labels in batches:
        evaluator.update(logits, labels)
    evaluator.compute()   # {"accuracy": 0.91, "count": 872, "main": "accuracy"}

Each task's type, labels and metrics (its entry in the task table), CLUENER's entity types
and tags and IGNORE_INDEX are tinybert-core's. Rows (classification) or positions (tagging)
whose label is IGNORE_INDEX, or whose mask is 0, are not scored: padding rows that fill a last
batch, special tokens, padding tokens and word pieces after a word's first.
"""

from __future__ import annotations

import numpy as np

from tinybert_core import (
    CLUENER_TAGS,
    IGNORE_INDEX,
    TASKS,
    UnknownTaskError,
)

from .metrics import METRICS
from .spans import SpanCounts, check_tags, spans_from_tags


def scored(labels: np.ndarray, mask=None) -> np.ndarray:
    """True where a label counts: not IGNORE_INDEX, and not masked out (mask 0)."""
    keep = labels != IGNORE_INDEX
    if mask is not None:
        mask = np.asarray(mask)
        if mask.size != labels.size:
            raise ValueError(f"mask has shape {mask.shape} but labels have {labels.shape}")
        keep &= mask.reshape(labels.shape) != 0
    return keep


def _predicted_ids(logits_or_predictions, labels: np.ndarray) -> np.ndarray:
    """Predicted ids shaped like `labels`; logits (one more axis) give their argmax."""
    predictions = np.asarray(logits_or_predictions)
    if predictions.ndim == labels.ndim + 1:
        predictions = predictions.argmax(-1)
    if predictions.shape != labels.shape:
        raise ValueError(
            f"predictions have shape {np.shape(logits_or_predictions)} but labels have "
            f"{labels.shape}: expected ids shaped like the labels, or logits with one more axis"
        )
    return predictions


class Evaluator:
    """Classification: collects predicted and gold ids batch by batch, scores them at the end."""

    def __init__(self, main: str, metrics=(), labels=None):
        self.main = main
        self.metrics = tuple(metrics)
        self.labels = list(labels) if labels is not None else None
        self.reset()

    def reset(self) -> None:
        self.predictions, self.references = [], []

    def update(self, logits_or_predictions, labels, mask=None) -> None:
        """logits [batch, classes] or ids [batch]; labels [batch]; mask [batch] (0 = skip)."""
        labels = np.asarray(labels)
        predictions = _predicted_ids(logits_or_predictions, labels)
        keep = scored(labels, mask)
        self.predictions.append(predictions[keep])
        self.references.append(labels[keep])

    def compute(self) -> dict:
        if not self.predictions:
            predictions = references = np.zeros(0)
        else:
            predictions = np.concatenate(self.predictions)
            references = np.concatenate(self.references)
        if not len(references):  # nothing scored: every metric is 0 rather than undefined
            return {**dict.fromkeys(self.metrics, 0.0), "count": 0, "main": self.main}
        result = {name: METRICS[name](predictions, references) for name in self.metrics}
        return {**result, "count": len(references), "main": self.main}


class RegressionEvaluator(Evaluator):
    """Regression (STS-B): predictions are [batch] or [batch, 1] values."""

    def update(self, logits_or_predictions, labels, mask=None) -> None:
        labels = np.asarray(labels, np.float64).reshape(-1)
        predictions = np.asarray(logits_or_predictions, np.float64)
        if predictions.size != labels.size:
            raise ValueError(
                f"predictions have shape {predictions.shape} but labels have {labels.shape}: "
                "expected one value per example"
            )
        keep = scored(labels, mask)
        self.predictions.append(predictions.reshape(-1)[keep])
        self.references.append(labels[keep])


class TaggingEvaluator(Evaluator):
    """NER: entity-level span precision/recall/F1 (micro and per type) and token accuracy.

    Each row's scored positions, in order, form one sentence's tag sequence.
    """

    def __init__(self, labels, scheme: str = "BIO"):
        check_tags(labels, scheme)
        self.scheme = scheme
        super().__init__("f1", labels=labels)

    def reset(self) -> None:
        self.spans = SpanCounts()
        self.correct_tokens = self.tokens = self.sentences = 0

    def update(self, logits_or_predictions, labels, mask=None) -> None:
        """logits [batch, seq, tags] or ids [batch, seq]; labels and mask [batch, seq]."""
        labels = np.asarray(labels)
        predictions = np.asarray(logits_or_predictions)
        if labels.ndim == 1:  # one sentence
            labels, predictions = labels[None], predictions[None]
            mask = None if mask is None else np.asarray(mask)[None]
        predictions = _predicted_ids(predictions, labels)
        keep = scored(labels, mask)
        for predicted, gold, row_keep in zip(predictions, labels, keep):
            predicted, gold = predicted[row_keep], gold[row_keep]
            self.spans.add(
                spans_from_tags(self._names(predicted), self.scheme),
                spans_from_tags(self._names(gold), self.scheme),
            )
            self.correct_tokens += int(np.sum(predicted == gold))
            self.tokens += len(gold)
            self.sentences += 1

    def _names(self, ids) -> list:
        outside = (ids < 0) | (ids >= len(self.labels))
        if outside.any():
            bad = int(ids[outside][0])
            raise ValueError(f"tag id {bad} is outside the {len(self.labels)} tags {self.labels}")
        return [self.labels[i] for i in ids]

    def compute(self) -> dict:
        result = self.spans.scores()
        result["token_accuracy"] = self.correct_tokens / self.tokens if self.tokens else 0.0
        return {**result, "count": self.sentences, "main": "f1"}


# task -> (kind, metrics, main metric): each task's type and metrics in tinybert-core's table.
TASK_METRICS = {
    name: (spec.task_type, list(spec.metrics), spec.main_metric) for name, spec in TASKS.items()
}
ALIASES = {
    "sst-2": "sst2",
    "mnli-mm": "mnli_mismatched",
    "mnli_mm": "mnli_mismatched",
    "sts-b": "stsb",
}


def task_name(name: str) -> str:
    """The registry's name for a task, or UnknownTaskError listing the known ones."""
    key = ALIASES.get(name.lower(), name.lower())
    if key not in TASK_METRICS:
        raise UnknownTaskError(f"unknown task {name!r}; known tasks: {', '.join(TASK_METRICS)}")
    return key


def scheme_of(tags) -> str:
    """BIOES if any tag carries an E- or S- prefix, else BIO."""
    return "BIOES" if any(tag[:2] in ("E-", "S-") for tag in tags) else "BIO"


def get_evaluator(task: str, labels=None) -> Evaluator:
    """The evaluator for a task. NER takes its tag list in id order (default: CLUENER's BIO
    tags, as tinybert-data numbers them); the scheme, BIO or BIOES, is read from the tags."""
    kind, metrics, main = TASK_METRICS[task_name(task)]
    if kind == "ner":
        tags = list(labels if labels is not None else CLUENER_TAGS)
        return TaggingEvaluator(tags, scheme_of(tags))
    if kind == "regression":
        return RegressionEvaluator(main, metrics, labels)
    return Evaluator(main, metrics, labels)
