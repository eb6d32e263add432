"""Length buckets on real SST-2 records: every row once per epoch in an order fixed by (seed,
epoch), less padding than fixed batches, losses and predictions that do not depend on how far a
batch is padded, and checkpoints that carry the records' task and vocabulary."""

import json

import mindspore as ms
import numpy as np
import pytest
from conftest import ENGLISH_VOCAB, SHARED_DATA, distill_config, write_records

from tinybert_core import COLUMNS
from tinybert_data import BertTokenizer
from tinybert_distill import fine_tune
from tinybert_distill.data import (
    BUCKET_LENGTHS,
    bucket_length,
    bucketed_order,
    epoch_order,
    load_dataset,
    trim,
)
from tinybert_distill.distillers import DistillationLoss
from tinybert_distill.evaluation import evaluate, predict
from tinybert_distill.matches import layer_matches, prediction_matches
from tinybert_distill.trainer import Phase, Run, step_inputs
from tinybert_model import (
    BertForSequenceClassification,
    TinyBertStudent,
    load_model,
    read_checkpoint,
    tiny_config,
)


@pytest.fixture(scope="module")
def sst2_64(tmp_path_factory):
    """640 SST-2 train rows at seq_length 64, the demo's and the benchmark's length."""
    folder = tmp_path_factory.mktemp("sst2_64")
    path = write_records(
        SHARED_DATA / "sst2" / "train.tsv", 640, "sst2", ENGLISH_VOCAB, folder / "train", 64
    )
    return load_dataset(path)


def test_every_row_once_per_epoch_in_an_order_fixed_by_seed_and_epoch(sst2_64):
    lengths = sst2_64.lengths
    assert lengths.max() <= 64 and lengths.min() >= 3
    order = bucketed_order(lengths, 32, seed=7, epoch=0)
    assert len(order) == 640 and len(np.unique(order)) == 640  # 640 = 20 batches of 32
    np.testing.assert_array_equal(order, bucketed_order(lengths, 32, seed=7, epoch=0))
    assert not np.array_equal(order, bucketed_order(lengths, 32, seed=7, epoch=1))
    assert not np.array_equal(order, bucketed_order(lengths, 32, seed=8, epoch=0))
    # with a remainder, the rows of less than one batch are dropped, no row repeats
    partial = bucketed_order(lengths[:630], 32, seed=7, epoch=0)
    assert len(partial) == 608 and len(np.unique(partial)) == 608


def test_buckets_cut_padding_against_fixed_batches(sst2_64):
    lengths = sst2_64.lengths
    bucketed = bucketed_order(lengths, 32, seed=0, epoch=0).reshape(-1, 32)
    shuffled = epoch_order(len(lengths), 0, 0)[:640].reshape(-1, 32)
    tokens_bucketed = sum(bucket_length(lengths[b].max(), 64) for b in bucketed)
    tokens_shuffled = sum(bucket_length(lengths[b].max(), 64) for b in shuffled)
    assert tokens_bucketed < 0.7 * tokens_shuffled
    assert tokens_bucketed < 0.6 * 64 * len(bucketed)  # against the zoo's fixed padding
    for batch in bucketed:
        length = bucket_length(lengths[batch].max(), 64)
        assert length in BUCKET_LENGTHS and lengths[batch].max() <= length <= 64
    # the batch order is shuffled: lengths do not rise through the epoch
    longest = [lengths[b].max() for b in bucketed]
    assert longest != sorted(longest)


def test_a_batch_is_cut_to_the_smallest_bucket_that_holds_it():
    assert [bucket_length(n, 64) for n in (1, 8, 9, 17, 25, 33, 49, 64)] == [
        8, 8, 16, 24, 32, 48, 64, 64
    ]  # fmt: skip
    assert bucket_length(50, 50) == 50 and bucket_length(600, 1024) == 1024
    assert [bucket_length(n, 64, (16, 32)) for n in (1, 16, 17, 33)] == [16, 16, 32, 64]


def test_workers_split_each_global_batch_at_its_bucket(sst2_64):
    """Two workers' slices put together are one process's batch of twice the size."""
    order = bucketed_order(sst2_64.lengths, 32, seed=3, epoch=0)
    phase_one = Phase("t", None, None, COLUMNS, epochs=1, batch_size=32, optimizer={})
    phase_two = Phase("t", None, None, COLUMNS, epochs=1, batch_size=16, optimizer={})
    for step in (0, 5, 19):
        alone = step_inputs(phase_one, sst2_64, Run(".", world_size=1), order, step)
        parts = [
            step_inputs(phase_two, sst2_64, Run(".", rank=rank, world_size=2), order, step)
            for rank in (0, 1)
        ]
        for index in range(4):
            together = np.concatenate([parts[0][index], parts[1][index]])
            np.testing.assert_array_equal(together, alone[index])
        assert alone[0].shape[1] == bucket_length(alone[2].sum(1).max(), 64)


def test_trim_cuts_only_per_token_arrays():
    ids, labels = np.ones((2, 64), np.int32), np.zeros(2, np.int32)
    tags, logits = np.zeros((2, 64), np.int32), np.zeros((2, 64, 3), np.float32)
    classes = np.zeros((2, 64), np.float32)  # 64 labels: not a token axis
    names = ("input_ids", "label_ids", "label_ids", "teacher_logits", "teacher_logits")
    shapes = [a.shape for a in trim(names, [ids, labels, tags, logits, classes[:, :, None]], 16)]
    assert shapes == [(2, 16), (2,), (2, 16), (2, 16, 3), (2, 16, 1)]
    assert trim(("teacher_logits",), [classes], 16)[0].shape == (2, 64)


def _tiny_pair(vocab_size):
    ms.set_seed(5)
    labels = ["0", "1"]
    teacher = BertForSequenceClassification(
        tiny_config(vocab_size, labels=labels, task_type="classification"),
        output_hidden_states=True,
        output_attentions=True,
    )
    student_config = tiny_config(
        vocab_size, hidden_size=16, intermediate_size=32, labels=labels, task_type="classification"
    )
    student = TinyBertStudent(BertForSequenceClassification(student_config), 32)
    return teacher, student


def test_distillation_loss_does_not_depend_on_padding(sst2_64):
    """The same rows padded to 64 and to 32 give the same loss: attention and hidden-state
    MSE are taken over real tokens only."""
    ms.set_context(mode=ms.PYNATIVE_MODE)
    vocab_size = BertTokenizer.from_vocab(ENGLISH_VOCAB).vocab_size
    teacher, student = _tiny_pair(vocab_size)
    rows = np.flatnonzero(sst2_64.lengths <= 32)[:8]
    assert sst2_64.lengths[rows].max() > 16  # some rows fill more than half of 32
    arrays = sst2_64.inputs(rows, COLUMNS)
    for matches in (layer_matches([0, 1, 2], [0, 1]), prediction_matches("classification")):
        loss = DistillationLoss(teacher, student, matches)
        at_64 = loss(*[ms.Tensor(a) for a in arrays]).asnumpy()
        at_32 = loss(*[ms.Tensor(a) for a in trim(COLUMNS, arrays, 32)]).asnumpy()
        assert at_64 > 0
        np.testing.assert_allclose(at_64, at_32, rtol=1e-5)


def test_distillation_loss_on_full_rows_is_the_plain_mse():
    """Rows without padding (corpus records): the masked losses are the zoo's MSE."""
    ms.set_context(mode=ms.PYNATIVE_MODE)
    teacher, student = _tiny_pair(100)
    rng = np.random.default_rng(0)
    ids = rng.integers(5, 100, (4, 16)).astype(np.int32)
    segments, full = np.zeros_like(ids), np.ones_like(ids)
    masked = DistillationLoss(teacher, student, layer_matches([0, 1, 2], [0, 1]))
    value = masked(ms.Tensor(ids), ms.Tensor(segments), ms.Tensor(full)).asnumpy()
    student_out, teacher_out = (
        student(*map(ms.Tensor, (ids, segments, full))),
        teacher(*map(ms.Tensor, (ids, segments, full))),
    )
    expected = sum(
        np.mean((student_out[2][s].asnumpy() - teacher_out[2][t].asnumpy()) ** 2)
        for s, t in enumerate([0, 1])
    ) + sum(
        np.mean((student_out[1][s].asnumpy() - teacher_out[1][t].asnumpy()) ** 2)
        for s, t in enumerate([0, 1, 2])
    )
    np.testing.assert_allclose(value, expected, rtol=1e-5)


def test_bucketed_prediction_equals_fixed_padding(finetuned_tiny, sst2_dev):
    model = load_model(finetuned_tiny)
    dev = load_dataset(sst2_dev)
    bucketed = predict(model, dev, batch_size=16, length_buckets=True)
    fixed = predict(model, dev, batch_size=16, length_buckets=False)
    np.testing.assert_allclose(bucketed, fixed, atol=1e-5)
    assert evaluate(model, dev, 16, True)["accuracy"] == evaluate(model, dev, 16, False)["accuracy"]


def test_saved_models_carry_task_info_and_vocab(finetuned_tiny, sst2_train):
    for name in ("best.ckpt", "last.ckpt"):
        extra = read_checkpoint(finetuned_tiny.parent / name).extra
        assert json.loads(extra["task_info"]) == json.loads((sst2_train / "task.json").read_text())
        assert extra["vocab"] == (sst2_train / "vocab.txt").read_text(encoding="utf-8")


def test_fixed_padding_keeps_the_zoo_order(tmp_path, pretrained_tiny, sst2_train):
    """--length_buckets false: every batch at seq_length, rows in the shuffled order."""
    config = distill_config(
        "finetune_config",
        tmp_path / "run",
        load_ckpt_path=str(pretrained_tiny),
        train_data_dir=str(sst2_train),
        do_eval=False,
        train_steps=2,
        length_buckets=False,
    )
    fine_tune(config)
    assert (tmp_path / "run" / "last.ckpt").is_file()
    data = load_dataset(sst2_train)
    phase = Phase("t", None, None, COLUMNS, epochs=1, batch_size=16, optimizer={})
    run = Run(".", seed=config["seed"], length_buckets=False)
    order = epoch_order(data.num_rows, run.seed, 0)
    first = step_inputs(phase, data, run, order, 0)
    assert first[0].shape == (16, data.seq_length)
    np.testing.assert_array_equal(first[0], data.inputs(order[:16], ["input_ids"])[0])
