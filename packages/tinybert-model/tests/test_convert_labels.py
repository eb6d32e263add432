"""`--reorder_labels true`: a classifier whose labels are a task's in another order gets its
rows in the task's order, and every label name keeps the logits transformers gives it."""

import json
import shutil
from pathlib import Path

import mindspore as ms
import numpy as np
import pytest
from conftest import FIXTURES

from tinybert_core import TASKS
from tinybert_model import hf_to_ms, load_model, read_checkpoint
from tinybert_model.cli import main

# Hugging Face's MNLI models (roberta-large-mnli, ...) number the labels this way; the task's
# records number them entailment, neutral, contradiction.
HUB_ORDER = ["CONTRADICTION", "NEUTRAL", "ENTAILMENT"]


def labelled(tmp_path, labels) -> Path:
    """hf_tiny_cls (three labels, transformers' weights and logits) naming `labels`."""
    folder = tmp_path / "hf_mnli"
    shutil.copytree(FIXTURES / "hf_tiny_cls", folder)
    config = json.loads((folder / "config.json").read_text())
    config["id2label"] = dict(enumerate(labels))
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def logits_by_label(checkpoint, reference) -> dict:
    """Label name -> its logits for the reference rows, from our converted model."""
    model = load_model(checkpoint)
    model.set_train(False)
    inputs = [ms.Tensor(reference[k]) for k in ("input_ids", "segment_ids", "input_mask")]
    logits = model(*inputs)[0].asnumpy()
    return {label: logits[:, i] for i, label in enumerate(model.config.labels)}


def test_a_permuted_head_predicts_the_same_label_names_in_the_task_order(tmp_path):
    folder = labelled(tmp_path, HUB_ORDER)
    reference = np.load(folder / "reference.npz")  # transformers' logits, in the hub's order
    assert hf_to_ms(folder, tmp_path / "as_is.ckpt") == "BertForSequenceClassification"
    hf_to_ms(folder, tmp_path / "mnli.ckpt", reorder_labels=True)

    mnli = list(TASKS["mnli"].labels)
    assert read_checkpoint(tmp_path / "as_is.ckpt").config.labels == HUB_ORDER
    assert read_checkpoint(tmp_path / "mnli.ckpt").config.labels == mnli
    assert mnli != [label.lower() for label in HUB_ORDER]  # a real permutation

    reordered = logits_by_label(tmp_path / "mnli.ckpt", reference)
    for hub_index, hub_label in enumerate(HUB_ORDER):
        np.testing.assert_allclose(
            reordered[hub_label.lower()], reference["logits_0"][:, hub_index], atol=1e-5
        )
    # the same label name predicted for every row, before and after
    as_is = logits_by_label(tmp_path / "as_is.ckpt", reference)
    before = np.array(HUB_ORDER)[np.argmax([as_is[label] for label in HUB_ORDER], axis=0)]
    after = np.array(mnli)[np.argmax([reordered[label] for label in mnli], axis=0)]
    assert [label.lower() for label in before] == list(after)

    # only the classifier's rows moved
    original = read_checkpoint(tmp_path / "as_is.ckpt").tensors
    moved = read_checkpoint(tmp_path / "mnli.ckpt").tensors
    rows = [HUB_ORDER.index(label.upper()) for label in mnli]
    for name, value in original.items():
        expected = value[rows] if name.startswith("classifier.") else value
        np.testing.assert_array_equal(moved[name], expected, err_msg=name)


def test_labels_already_in_the_task_order_are_left_as_they_are(tmp_path):
    folder = labelled(tmp_path, TASKS["mnli"].labels)
    hf_to_ms(folder, tmp_path / "as_is.ckpt")
    hf_to_ms(folder, tmp_path / "mnli.ckpt", reorder_labels=True)
    original = read_checkpoint(tmp_path / "as_is.ckpt").tensors
    kept = read_checkpoint(tmp_path / "mnli.ckpt").tensors
    assert all(np.array_equal(kept[name], value) for name, value in original.items())


@pytest.mark.parametrize(
    "folder, labels, message",
    [
        # negative, neutral, positive: no task of tinybert's has these labels
        ("hf_tiny_cls", None, "its labels ['negative', 'neutral', 'positive'] are no task's"),
        # unnamed labels say nothing about which is which
        ("hf_tiny_cls", ["LABEL_0", "LABEL_1", "LABEL_2"], "are no task's labels"),
        ("hf_tiny_pretraining", None, "a BertForPreTraining has no classifier"),
    ],
)
def test_labels_that_cannot_be_put_in_a_task_order(tmp_path, capsys, folder, labels, message):
    source = labelled(tmp_path, labels) if labels else FIXTURES / folder
    output = tmp_path / "out.ckpt"
    arguments = ["hf2ms", "--input", str(source), "--output", str(output)]
    assert main([*arguments, "--reorder_labels", "true"]) == 1
    error = capsys.readouterr().err.strip()
    assert message in error and len(error.splitlines()) == 1 and "Traceback" not in error
    assert not output.exists()
    assert main(arguments) == 0  # without the flag, converted as it is


def test_the_flag_reorders_from_the_command_line(tmp_path):
    folder = labelled(tmp_path, HUB_ORDER)
    output = tmp_path / "mnli.ckpt"
    arguments = ["hf2ms", "--input", str(folder), "--output", str(output)]
    assert main([*arguments, "--reorder_labels", "true"]) == 0
    assert read_checkpoint(output).config.labels == list(TASKS["mnli"].labels)
    assert main([*arguments, "--reorder_labels", "false"]) == 0
    assert read_checkpoint(output).config.labels == HUB_ORDER
