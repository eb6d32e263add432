"""Classification and regression metrics over whole prediction arrays (numpy, scipy)."""

from __future__ import annotations

import numpy as np
from scipy import stats


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
    return float(
        stats.pearsonr(np.asarray(predictions, np.float64), np.asarray(labels, np.float64))[0]
    )


def spearman(predictions, labels) -> float:
    return float(
        stats.spearmanr(np.asarray(predictions, np.float64), np.asarray(labels, np.float64))[0]
    )


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
