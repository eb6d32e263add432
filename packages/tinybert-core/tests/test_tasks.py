"""The columns and the task table agree with the real datasets they describe."""

import json

import pytest

from tinybert_core import (
    CLUENER_TAGS,
    CLUENER_TYPES,
    COLUMNS,
    IGNORE_INDEX,
    LABELLED_COLUMNS,
    TASK_TYPES,
    TASKS,
    TEXT_COLUMNS,
    TinybertError,
    UnknownTaskError,
    task_spec,
)


def test_columns_are_the_model_inputs_then_the_labels():
    assert TEXT_COLUMNS == ("input_ids", "segment_ids", "input_mask")
    assert LABELLED_COLUMNS == (*TEXT_COLUMNS, "label_ids") == COLUMNS
    assert IGNORE_INDEX < 0  # never a label id


def test_every_task_has_a_known_type_and_labels_unless_regression():
    for name, spec in TASKS.items():
        assert spec.name == name and spec.task_type in TASK_TYPES
        assert (spec.task_type == "regression") == (spec.labels == ())
        assert len(set(spec.labels)) == len(spec.labels)


def test_every_task_ranks_models_by_one_of_its_metrics():
    for spec in TASKS.values():
        assert spec.metrics and len(set(spec.metrics)) == len(spec.metrics)
        assert spec.main_metric in spec.metrics

    def scored_by(name):
        return task_spec(name).metrics, task_spec(name).main_metric

    # GLUE's figures: accuracy, F1 for the paraphrase tasks, MCC for CoLA, correlation for STS-B
    assert scored_by("sst2") == scored_by("tnews") == (("accuracy",), "accuracy")
    assert scored_by("mrpc") == scored_by("qqp") == (("accuracy", "f1"), "f1")
    assert scored_by("cola") == (("accuracy", "mcc"), "mcc")
    assert scored_by("stsb") == (("pearson", "spearman"), "pearson")
    assert scored_by("cluener") == (("f1",), "f1")


def glue_labels(path, column="label"):
    lines = path.read_text(encoding="utf-8").splitlines()
    at = lines[0].split("\t").index(column)
    return {line.split("\t")[at] for line in lines[1:] if line.strip()}


def test_glue_label_sets_are_the_datasets(shared_data):
    assert glue_labels(shared_data / "sst2" / "train.tsv") == set(task_spec("sst2").labels)
    assert glue_labels(shared_data / "qnli" / "dev.tsv") == set(task_spec("qnli").labels)


def test_tnews_labels_are_labels_json_in_order(shared_data):
    lines = (shared_data / "tnews" / "labels.json").read_text(encoding="utf-8").splitlines()
    assert task_spec("tnews").labels == tuple(json.loads(line)["label"] for line in lines)


def test_cluener_tags_cover_the_entity_types_of_the_data(shared_data):
    types = set()
    for line in (shared_data / "cluener" / "train.json").read_text(encoding="utf-8").splitlines():
        types.update(json.loads(line)["label"])
    assert types == set(CLUENER_TYPES)
    assert task_spec("cluener").labels == CLUENER_TAGS
    assert CLUENER_TAGS[:3] == ("O", "B-address", "I-address") and len(CLUENER_TAGS) == 21


def test_an_unknown_task_is_a_key_error_listing_the_known_ones():
    with pytest.raises(UnknownTaskError) as caught:
        task_spec("sst5")
    assert isinstance(caught.value, KeyError) and isinstance(caught.value, TinybertError)
    assert str(caught.value).startswith("unknown task 'sst5'; known tasks: sst2, qnli, mnli")
