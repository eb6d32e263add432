"""MCC, binary F1, accuracy and correlations equal scikit-learn's and scipy's, on labels from the
real SST-2 and TNEWS dev sets with seeded noisy predictions."""

import json

import numpy as np
import pytest
from scipy import stats
from sklearn import metrics as sk

from tinybert_eval import accuracy, binary_f1, matthews_corrcoef, pearson, spearman


@pytest.fixture(scope="module")
def sst2_rows(sst2_dev_path):
    rows = sst2_dev_path.read_text(encoding="utf-8").splitlines()[1:]
    return [row.split("\t") for row in rows]  # (sentence, label)


@pytest.fixture(scope="module")
def tnews_labels(shared_data):
    lines = (shared_data / "tnews" / "dev.json").read_text(encoding="utf-8").splitlines()
    return np.array([json.loads(line)["label"] for line in lines if line.strip()])


def noisy(labels, rate, seed):
    """Each prediction replaced, with probability `rate`, by a label drawn from the others."""
    rng = np.random.default_rng(seed)
    replace = rng.random(len(labels)) < rate
    return np.where(replace, rng.choice(labels, len(labels)), labels)


def test_binary_metrics_on_sst2_equal_sklearn(sst2_rows):
    labels = np.array([int(label) for _, label in sst2_rows])
    predictions = noisy(labels, 0.3, seed=1)
    assert matthews_corrcoef(predictions, labels) == pytest.approx(
        sk.matthews_corrcoef(labels, predictions), abs=1e-12
    )
    assert binary_f1(predictions, labels) == pytest.approx(
        sk.f1_score(labels, predictions), abs=1e-12
    )
    assert accuracy(predictions, labels) == pytest.approx(
        sk.accuracy_score(labels, predictions), abs=1e-12
    )


@pytest.mark.parametrize("rate", [0.1, 0.5, 0.9])
def test_multiclass_mcc_on_tnews_equals_sklearn(tnews_labels, rate):
    predictions = noisy(tnews_labels, rate, seed=2)
    assert matthews_corrcoef(predictions, tnews_labels) == pytest.approx(
        sk.matthews_corrcoef(tnews_labels, predictions), abs=1e-12
    )


def test_mcc_of_a_constant_prediction_is_zero_as_in_sklearn(sst2_rows):
    labels = np.array([int(label) for _, label in sst2_rows])
    constant = np.ones_like(labels)
    assert matthews_corrcoef(constant, labels) == sk.matthews_corrcoef(labels, constant) == 0.0


def test_binary_f1_counts_only_the_positive_class(sst2_rows):
    labels = np.array([int(label) for _, label in sst2_rows])
    assert binary_f1(1 - labels, labels) == 0.0
    assert binary_f1(labels, labels) == 1.0


def test_correlations_equal_scipy_with_ties(sst2_rows):
    """Word and character counts of the SST-2 dev sentences: correlated, with many ties."""
    words = np.array([len(sentence.split()) for sentence, _ in sst2_rows])
    characters = np.array([len(sentence) for sentence, _ in sst2_rows])
    assert pearson(characters, words) == pytest.approx(
        stats.pearsonr(characters, words)[0], abs=1e-12
    )
    assert spearman(characters, words) == pytest.approx(
        stats.spearmanr(characters, words)[0], abs=1e-12
    )
    assert 0.5 < spearman(characters, words) < 1
