"""Classification and regression metrics over whole prediction arrays (numpy only: an inference
install does not need scipy; tests compare with scipy, scikit-learn and seqeval)."""

from __future__ import annotations

import numpy as np


def accuracy(predictions, labels) -> float:
    predictions, labels = np.asarray(predictions), np.asarray(labels)
    return float(np.mean(predictions == labels)) if len(labels) else 0.0


def binary_f1(predictions, labels, positive=1) -> float:
    """F1 of the positive class (GLUE's MRPC and QQP figure)."""
    predictions, labels = np.asarray(predictions), np.asarray(labels)
    true_positives = np.sum((predictions == positive) & (labels == positive))
    predicted, actual = np.sum(predictions == positive), np.sum(labels == positive)
    return _f1(true_positives, predicted, actual)


def matthews_corrcoef(predictions, labels) -> float:
    """Matthews correlation for any number of classes (CoLA's figure); 0 when undefined."""
    predictions, labels = np.asarray(predictions), np.asarray(labels)
    classes = np.union1d(predictions, labels)
    confusion = np.zeros((len(classes), len(classes)), np.float64)
    np.add.at(
        confusion, (np.searchsorted(classes, labels), np.searchsorted(classes, predictions)), 1
    )
    samples = confusion.sum()
    correct = np.trace(confusion)
    true_counts, predicted_counts = confusion.sum(1), confusion.sum(0)
    numerator = correct * samples - true_counts @ predicted_counts
    denominator = np.sqrt(samples**2 - predicted_counts @ predicted_counts) * np.sqrt(
        samples**2 - true_counts @ true_counts
    )
    return float(numerator / denominator) if denominator else 0.0


def pearson(predictions, labels) -> float:
    """Pearson's r; NaN when either side is constant (as scipy.stats.pearsonr)."""
    x = np.asarray(predictions, np.float64)
    y = np.asarray(labels, np.float64)
    if len(x) != len(y) or len(x) < 2:
        raise ValueError(
            f"pearson needs two equal-length arrays of 2 or more values ({len(x)}, {len(y)})"
        )
    x, y = x - x.mean(), y - y.mean()
    denominator = np.sqrt((x @ x) * (y @ y))
    return float(np.clip((x @ y) / denominator, -1.0, 1.0)) if denominator else float("nan")


def _ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks, ties sharing the mean of their ranks (scipy.stats.rankdata's "average")."""
    order = np.argsort(values, kind="mergesort")
    ordered = values[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    ends = np.r_[starts[1:], len(values)]
    mean_rank = (starts + ends + 1) / 2.0  # ranks starts+1 .. ends, averaged
    ranks = np.empty(len(values), np.float64)
    ranks[order] = np.repeat(mean_rank, ends - starts)
    return ranks


def spearman(predictions, labels) -> float:
    """Spearman's rho: Pearson's r of the tie-averaged ranks (as scipy.stats.spearmanr)."""
    x = np.asarray(predictions, np.float64)
    y = np.asarray(labels, np.float64)
    if len(x) != len(y) or len(x) < 2:
        raise ValueError(
            f"spearman needs two equal-length arrays of 2 or more values ({len(x)}, {len(y)})"
        )
    return pearson(_ranks(x), _ranks(y))


def precision_recall_f1(correct, predicted, actual) -> tuple:
    """(precision, recall, F1) from counts; 0 where a ratio is undefined (as seqeval does)."""
    precision = correct / predicted if predicted else 0.0
    recall = correct / actual if actual else 0.0
    return float(precision), float(recall), _f1(correct, predicted, actual)


def _f1(correct, predicted, actual) -> float:
    return float(2 * correct / (predicted + actual)) if predicted + actual else 0.0


# Metric name -> function(predictions, labels), as the task registry names them.
METRICS = {
    "accuracy": accuracy,
    "f1": binary_f1,
    "mcc": matthews_corrcoef,
    "pearson": pearson,
    "spearman": spearman,
}
