"""Each loss against a numpy reference written from the paper's definitions."""

import mindspore as ms
import numpy as np
import pytest

from tinybert_distill.losses import (
    attention_loss,
    check_layer_map,
    hidden_loss,
    regression_loss,
    soft_cross_entropy,
    uniform_layer_map,
)

rng = np.random.default_rng(0)


def numpy_softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def test_attention_loss_ignores_masked_positions():
    student = rng.normal(size=(2, 3, 5, 5)).astype(np.float32)
    teacher = rng.normal(size=(2, 3, 5, 5)).astype(np.float32)
    # the last two keys of example 1 are padding: both models put -10000 there
    student[1, :, :, 3:] -= 10000.0
    teacher[1, :, :, 3:] -= 10000.0
    expected_student = np.where(student <= -100, 0, student)
    expected_teacher = np.where(teacher <= -100, 0, teacher)
    expected = np.mean((expected_student - expected_teacher) ** 2)
    got = attention_loss(ms.Tensor(student), ms.Tensor(teacher)).asnumpy()
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    # without zeroing, the padding would dominate nothing here, but a student that puts a
    # different large negative value there would be punished; zeroing makes it free
    student[1, :, :, 3:] -= 5000.0
    np.testing.assert_allclose(
        attention_loss(ms.Tensor(student), ms.Tensor(teacher)).asnumpy(), expected, rtol=1e-6
    )


def test_hidden_loss_is_mse():
    student = rng.normal(size=(2, 4, 8)).astype(np.float32)
    teacher = rng.normal(size=(2, 4, 8)).astype(np.float32)
    expected = np.mean((student - teacher) ** 2)
    np.testing.assert_allclose(
        hidden_loss(ms.Tensor(student), ms.Tensor(teacher)).asnumpy(), expected, rtol=1e-6
    )


@pytest.mark.parametrize("temperature", [1.0, 2.0])
def test_soft_cross_entropy(temperature):
    student = rng.normal(size=(4, 3)).astype(np.float32)
    teacher = rng.normal(size=(4, 3)).astype(np.float32)
    targets = numpy_softmax(teacher / temperature)
    log_probs = np.log(numpy_softmax(student / temperature))
    expected = np.mean(-(targets * log_probs).sum(-1))
    got = soft_cross_entropy(ms.Tensor(student), ms.Tensor(teacher), temperature).asnumpy()
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    # equal logits: the loss is the teacher distribution's entropy, its minimum
    same = soft_cross_entropy(ms.Tensor(teacher), ms.Tensor(teacher), temperature).asnumpy()
    assert same <= got


def test_soft_cross_entropy_for_tags_averages_over_real_tokens():
    student = rng.normal(size=(2, 4, 5)).astype(np.float32)
    teacher = rng.normal(size=(2, 4, 5)).astype(np.float32)
    mask = np.array([[1, 1, 1, 0], [1, 1, 0, 0]], np.int32)
    per_token = -(numpy_softmax(teacher) * np.log(numpy_softmax(student))).sum(-1)
    expected = (per_token * mask).sum() / mask.sum()
    got = soft_cross_entropy(ms.Tensor(student), ms.Tensor(teacher), 1.0, ms.Tensor(mask)).asnumpy()
    np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_regression_loss_uses_the_whole_batch():
    """The zoo compared only the last example; every example counts here."""
    predictions = np.array([[0.5], [2.0], [3.0]], np.float32)
    labels = np.array([1.0, 2.0, 3.0], np.float32)
    got = regression_loss(ms.Tensor(predictions), ms.Tensor(labels)).asnumpy()
    np.testing.assert_allclose(got, np.mean((predictions[:, 0] - labels) ** 2))
    assert got > 0  # the last example alone would give 0


@pytest.mark.parametrize(
    "student, teacher, hidden, attention",
    [
        (4, 12, [0, 3, 6, 9, 12], [2, 5, 8, 11]),  # the zoo's TinyBERT-4 from BERT-base
        (4, 6, [0, 2, 3, 5, 6], [1, 2, 4, 5]),  # from all-MiniLM-L6-v2
        (6, 12, [0, 2, 4, 6, 8, 10, 12], [1, 3, 5, 7, 9, 11]),
        (2, 2, [0, 1, 2], [0, 1]),
    ],
)
def test_uniform_layer_map(student, teacher, hidden, attention):
    assert uniform_layer_map(student, teacher) == (hidden, attention)
    check_layer_map(hidden, attention, student, teacher)


def test_layer_map_errors_name_the_key():
    with pytest.raises(ValueError, match="hidden_layer_map has 4 entries"):
        check_layer_map([0, 1, 2, 3], [0, 1, 2, 3], 4, 6)
    with pytest.raises(ValueError, match="attention_layer_map"):
        check_layer_map([0, 2, 3, 5, 6], [1, 2, 4, 6], 4, 6)
