"""Streaming evaluators: batches add up to the one-shot figure; ignored rows and positions
are not scored; the registry gives every task its metric."""

import numpy as np
import pytest
from scipy import stats
from sklearn import metrics as sk

from tinybert_core import CLUENER_TAGS, IGNORE_INDEX, TASKS
from tinybert_eval import (
    TASK_METRICS,
    get_evaluator,
    span_scores,
    spans_from_cluener,
    spans_from_tags,
    tags_from_spans,
)
from tinybert_eval.evaluators import ALIASES

rng = np.random.default_rng(0)


def test_classification_batches_with_padding_rows():
    labels = rng.integers(0, 2, 100)
    logits = rng.normal(size=(100, 2))
    evaluator = get_evaluator("sst2")
    for start in range(0, 100, 32):  # the last batch padded to 32 rows, labelled IGNORE_INDEX
        batch_logits = np.zeros((32, 2))
        batch_labels = np.full(32, IGNORE_INDEX)
        real = min(32, 100 - start)
        batch_logits[:real], batch_labels[:real] = (
            logits[start : start + real],
            labels[start : start + real],
        )
        evaluator.update(batch_logits, batch_labels)
    result = evaluator.compute()
    assert result["count"] == 100
    assert result["accuracy"] == pytest.approx(np.mean(logits.argmax(1) == labels))
    assert result["main"] == "accuracy"


def test_cola_reports_mcc_as_main():
    labels = rng.integers(0, 2, 64)
    predictions = np.where(rng.random(64) < 0.75, labels, 1 - labels)
    evaluator = get_evaluator("cola")
    evaluator.update(predictions, labels)
    result = evaluator.compute()
    assert result["main"] == "mcc"
    assert result["mcc"] == pytest.approx(sk.matthews_corrcoef(labels, predictions))


def test_regression_accepts_column_predictions():
    labels = rng.uniform(0, 5, 50)
    evaluator = get_evaluator("sts-b")
    evaluator.update((labels + rng.normal(0, 0.5, 50))[:, None], labels)
    result = evaluator.compute()
    assert result["main"] == "pearson" and 0.8 < result["pearson"] <= 1


def test_tagging_masks_ignored_positions(cluener_dev):
    """Token ids laid out as a model sees them: [CLS], characters, [SEP], padding."""
    tag_id = {t: i for i, t in enumerate(CLUENER_TAGS)}
    seq_length = 64
    records = [r for r in cluener_dev[:40] if len(r["text"]) <= seq_length - 2]
    gold = np.full((len(records), seq_length), IGNORE_INDEX)
    predicted_logits = rng.normal(size=(len(records), seq_length, len(CLUENER_TAGS)))
    expected_gold, expected_predicted = [], []
    for row, record in enumerate(records):
        length = len(record["text"])
        tags = tags_from_spans(spans_from_cluener(record["label"]), length)
        gold[row, 1 : length + 1] = [tag_id[t] for t in tags]
        # predict the gold tags on most sentences, noise elsewhere
        if row % 3:
            predicted_logits[row, 1 : length + 1] = (
                np.eye(len(CLUENER_TAGS))[gold[row, 1 : length + 1]] * 10
            )
        predicted_ids = predicted_logits[row, 1 : length + 1].argmax(-1)
        expected_gold.append(spans_from_tags(tags))
        expected_predicted.append(spans_from_tags([CLUENER_TAGS[i] for i in predicted_ids]))
    evaluator = get_evaluator("cluener")
    for start in range(0, len(records), 16):
        evaluator.update(predicted_logits[start : start + 16], gold[start : start + 16])
    result = evaluator.compute()
    expected = span_scores(expected_predicted, expected_gold)
    assert result["f1"] == pytest.approx(expected["f1"])
    assert result["per_type"] == expected["per_type"]
    assert result["count"] == len(records) and result["main"] == "f1"
    assert 0 < result["token_accuracy"] < 1


def test_mask_argument_removes_positions():
    evaluator = get_evaluator("cluener")
    labels = np.array([[1, 2, 0, 0]])  # B-address I-address O O
    predictions = np.array([[1, 2, 1, 2]])  # an extra entity on positions the mask removes
    evaluator.update(predictions, labels, mask=np.array([[1, 1, 0, 0]]))
    assert evaluator.compute()["f1"] == 1.0


@pytest.mark.parametrize(
    "task, main",
    [
        ("sst2", "accuracy"),
        ("SST-2", "accuracy"),
        ("qnli", "accuracy"),
        ("mnli", "accuracy"),
        ("mnli-mm", "accuracy"),
        ("mnli_mismatched", "accuracy"),
        ("rte", "accuracy"),
        ("wnli", "accuracy"),
        ("tnews", "accuracy"),
        ("mrpc", "f1"),
        ("qqp", "f1"),
        ("cola", "mcc"),
        ("sts-b", "pearson"),
        ("stsb", "pearson"),
        ("cluener", "f1"),
    ],
)
def test_every_glue_and_clue_task_reports_its_main_metric(task, main):
    evaluator = get_evaluator(task)
    labels = np.array([0, 1, 1, 0, 1])
    if main == "pearson":
        evaluator.update(labels * 2.0 + 1, labels.astype(float))
    elif main == "f1" and task == "cluener":
        evaluator.update(np.array([[1, 2, 0]]), np.array([[1, 2, 0]]))
    else:
        evaluator.update(labels, labels)
    result = evaluator.compute()
    assert result["main"] == main and result[main] == pytest.approx(1.0)


def test_every_task_of_the_table_is_scored_with_its_metrics_and_no_other_task():
    assert list(TASK_METRICS) == list(TASKS)
    assert set(ALIASES.values()) <= set(TASKS)
    for name, spec in TASKS.items():
        kind, metrics, main = TASK_METRICS[name]
        assert (kind, tuple(metrics), main) == (spec.task_type, spec.metrics, spec.main_metric)
        evaluator = get_evaluator(name)
        labels = np.array([0, 1, 1, 0, 1])
        if kind == "ner":
            evaluator.update(np.array([[1, 2, 0]]), np.array([[1, 2, 0]]))
        else:
            evaluator.update(labels, labels)
        result = evaluator.compute()
        assert result["main"] == main and set(metrics) <= set(result)
        if kind != "ner":  # a tagger reports span figures and token accuracy too
            assert set(result) == {*metrics, "count", "main"}


def test_classification_mask_and_ignore_index_skip_rows():
    labels = np.array([0, 1, IGNORE_INDEX, 1, 0])
    predictions = np.array([0, 0, 1, 1, 1])
    evaluator = get_evaluator("mrpc")
    evaluator.update(predictions, labels, mask=np.array([1, 1, 1, 1, 0]))
    result = evaluator.compute()  # scored rows 0, 1, 3
    assert result["count"] == 3
    assert result["accuracy"] == pytest.approx(2 / 3)
    assert result["f1"] == pytest.approx(sk.f1_score([0, 1, 1], [0, 0, 1]))


def test_regression_mask_and_ignore_index_skip_rows():
    labels = rng.uniform(0, 5, 40)
    predictions = labels + rng.normal(0, 0.5, 40)
    labels_with_padding = np.append(labels, [IGNORE_INDEX, IGNORE_INDEX])
    mask = np.ones(42)
    mask[:5] = 0
    evaluator = get_evaluator("stsb")
    evaluator.update(np.append(predictions, [3.0, 9.0])[:, None], labels_with_padding, mask=mask)
    result = evaluator.compute()
    assert result["count"] == 35
    assert result["pearson"] == pytest.approx(stats.pearsonr(predictions[5:], labels[5:])[0])
    assert result["spearman"] == pytest.approx(stats.spearmanr(predictions[5:], labels[5:])[0])


def test_reset_forgets_earlier_batches():
    evaluator = get_evaluator("sst2")
    evaluator.update(np.array([0, 0]), np.array([1, 1]))
    evaluator.reset()
    evaluator.update(np.array([1]), np.array([1]))
    assert evaluator.compute() == {"accuracy": 1.0, "count": 1, "main": "accuracy"}


def test_bioes_tag_list_is_decoded_as_bioes():
    tags = ["O", "B-name", "I-name", "E-name", "S-name"]
    evaluator = get_evaluator("cluener", labels=tags)
    gold = np.array([[1, 2, 3, 0, 4]])  # name [0, 2] and name [4, 4]
    predicted = np.array([[1, 3, 0, 0, 4]])  # name [0, 1] and name [4, 4]
    evaluator.update(predicted, gold)
    result = evaluator.compute()
    assert result["precision"] == result["recall"] == 0.5
    assert result["token_accuracy"] == pytest.approx(3 / 5)


@pytest.mark.parametrize(
    "task, predictions, labels",
    [
        ("sst2", np.zeros((4, 2)), np.zeros(3, int)),
        ("stsb", np.zeros(4), np.zeros(3)),
        ("cluener", np.zeros((2, 5, 21)), np.zeros((2, 6), int)),
    ],
)
def test_shape_mismatch_is_a_clear_error(task, predictions, labels):
    with pytest.raises(ValueError, match="predictions have shape"):
        get_evaluator(task).update(predictions, labels)


def test_unknown_task_lists_the_known_ones():
    with pytest.raises(ValueError, match="unknown task 'sst3'.*sst2"):
        get_evaluator("sst3")


def test_tag_ids_outside_the_label_list_are_an_error():
    evaluator = get_evaluator("cluener", labels=["O", "B-x", "I-x"])
    with pytest.raises(ValueError, match="tag id 7"):
        evaluator.update(np.array([[7]]), np.array([[0]]))
