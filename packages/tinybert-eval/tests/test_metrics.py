"""MCC, binary F1 and correlations equal scikit-learn's and scipy's."""

import numpy as np
import pytest
from scipy import stats
from sklearn import metrics as sk

from tinybert_eval import accuracy, binary_f1, matthews_corrcoef, pearson, spearman

rng = np.random.default_rng(0)


@pytest.mark.parametrize("classes", [2, 3, 15])
def test_mcc_equals_sklearn(classes):
    labels = rng.integers(0, classes, 500)
    predictions = np.where(rng.random(500) < 0.7, labels, rng.integers(0, classes, 500))
    assert matthews_corrcoef(predictions, labels) == pytest.approx(
        sk.matthews_corrcoef(labels, predictions), abs=1e-12
    )


def test_mcc_of_a_constant_prediction_is_zero():
    assert matthews_corrcoef(np.ones(10), rng.integers(0, 2, 10)) == sk.matthews_corrcoef(
        rng.integers(0, 2, 10), np.ones(10)
    )


def test_binary_f1_and_accuracy_equal_sklearn():
    labels = rng.integers(0, 2, 300)
    predictions = np.where(rng.random(300) < 0.8, labels, 1 - labels)
    assert binary_f1(predictions, labels) == pytest.approx(
        sk.f1_score(labels, predictions), abs=1e-12
    )
    assert accuracy(predictions, labels) == pytest.approx(
        sk.accuracy_score(labels, predictions), abs=1e-12
    )


def test_correlations_equal_scipy():
    labels = rng.uniform(0, 5, 200)
    predictions = labels + rng.normal(0, 1, 200)
    assert pearson(predictions, labels) == pytest.approx(
        stats.pearsonr(predictions, labels)[0], abs=1e-12
    )
    assert spearman(predictions, labels) == pytest.approx(
        stats.spearmanr(predictions, labels)[0], abs=1e-12
    )
