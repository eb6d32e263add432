"""Phase 2's teacher logits, computed once: equal to the live teacher's, written atomically,
reused, and refused when the records or the teacher changed."""

import mindspore as ms
import numpy as np
import pytest
from conftest import ENGLISH_VOCAB, SHARED_DATA, metrics, write_records

from tinybert_core import DataError
from tinybert_distill import recipes
from tinybert_distill.cli import task_distill
from tinybert_distill.data import load_dataset
from tinybert_distill.teacher_outputs import CACHE_FILE, teacher_logits
from tinybert_model import load_model, save_checkpoint


def test_cached_logits_equal_the_live_teacher(tmp_path, finetuned_tiny, sst2_train):
    teacher = load_model(finetuned_tiny)
    data = load_dataset(sst2_train)
    cache = tmp_path / CACHE_FILE
    rows = np.arange(0, data.num_rows, 2)  # half the rows: only those are computed
    cached = teacher_logits(lambda: teacher, finetuned_tiny, data, rows, cache, batch_size=16)
    assert cache.is_file() and not (tmp_path / (CACHE_FILE + ".partial")).exists()

    teacher.set_train(False)
    for start in range(0, 64, 16):
        batch = rows[start : start + 16]
        live = teacher(
            *[ms.Tensor(a) for a in data.inputs(batch, ("input_ids", "segment_ids", "input_mask"))]
        )
        np.testing.assert_allclose(cached[batch], live[0].asnumpy(), atol=1e-6, rtol=0)

    # the rest are computed on demand; the rows already there are read back unchanged
    again = teacher_logits(
        lambda: teacher, finetuned_tiny, data, np.arange(data.num_rows), cache, 16
    )
    np.testing.assert_array_equal(again[rows], cached[rows])
    assert np.all(np.abs(again[1::2]).sum(-1) > 0)
    with np.load(cache) as stored:
        assert stored["done"].all()


def test_cache_from_other_records_or_teacher_is_refused(
    tmp_path, tmp_path_factory, finetuned_tiny, sst2_train
):
    teacher = load_model(finetuned_tiny)
    data = load_dataset(sst2_train)
    cache = tmp_path / CACHE_FILE
    teacher_logits(lambda: teacher, finetuned_tiny, data, np.arange(32), cache, 16)

    other_records = write_records(
        SHARED_DATA / "sst2" / "train.tsv",
        330,  # ten more rows than sst2_train
        "sst2",
        ENGLISH_VOCAB,
        tmp_path_factory.mktemp("other") / "train",
    )
    with pytest.raises(DataError, match="computed from another records"):
        teacher_logits(lambda: teacher, finetuned_tiny, load_dataset(other_records), [0], cache, 16)

    other_teacher = tmp_path / "other_teacher.ckpt"
    for parameter in teacher.get_parameters():
        if parameter.name.endswith("classifier.bias"):
            parameter.set_data(parameter + 0.5)
    save_checkpoint(teacher, other_teacher)
    with pytest.raises(DataError, match="computed from another teacher"):
        teacher_logits(lambda: teacher, other_teacher, data, [0], cache, 16)


def six_steps(teacher, train, dev, output, phase2_batch: int) -> list:
    """tinybert-td arguments: a one-layer student, 6 steps of 16 in phase 1, 6 of
    `phase2_batch` in phase 2."""
    return [
        *("--task_name", "sst2", "--load_teacher_ckpt_path", str(teacher)),
        *("--allow_weak_teacher", "true"),
        *("--init_student_from_teacher_layers", "[0]", "--train_steps", "6"),
        *("--train_data_dir", str(train), "--eval_data_dir", str(dev)),
        *("--save_ckpt_path", str(output), "--eval_cfg.batch_size", "16"),
        *("--phase1_cfg.batch_size", "16", "--phase2_cfg.batch_size", str(phase2_batch)),
    ]


def test_phase2_writes_the_cache_and_a_resumed_run_reuses_it(
    tmp_path, finetuned_tiny, sst2_train, sst2_dev, caplog
):
    output = tmp_path / "td"
    arguments = six_steps(finetuned_tiny, sst2_train, sst2_dev, output, phase2_batch=16)
    assert task_distill(arguments) == 0
    with np.load(output / CACHE_FILE) as stored:
        assert stored["done"].sum() == 6 * 16  # 6 steps of 16 rows in phase 2
    assert len(metrics(output, "td_phase2")) == 6
    assert task_distill([*arguments, "--resume", "true"]) == 0
    log = (output / "log.txt").read_text()
    assert "teacher logits: all 96 rows from" in log


def test_phase1_hands_its_teacher_logits_to_phase2(tmp_path, finetuned_tiny, sst2_train, sst2_dev):
    # phase 1 trains on 6 x 16 rows; phase 2's 6 x 32 rows need 96 more, computed
    output = tmp_path / "td"
    arguments = six_steps(finetuned_tiny, sst2_train, sst2_dev, output, phase2_batch=32)
    assert task_distill(arguments) == 0
    log = (output / "log.txt").read_text().splitlines()
    handed = [line for line in log if "rows from phase 1" in line]
    computed = [line for line in log if "teacher logits: computing" in line]
    assert len(handed) == 1 and len(computed) == 1
    from_phase1 = int(handed[0].split("teacher logits: ")[1].split()[0])
    assert 0 < from_phase1 <= 96
    assert f"teacher logits: computing {192 - from_phase1} rows" in computed[0]

    # every row the cache holds equals the teacher's own inference pass over it
    with np.load(output / CACHE_FILE) as stored:
        logits, done = stored["logits"], stored["done"]
    assert done.sum() == 192
    teacher = load_model(finetuned_tiny)
    data = load_dataset(sst2_train)
    fresh = teacher_logits(
        lambda: teacher, finetuned_tiny, data, np.flatnonzero(done), tmp_path / "x.npz"
    )
    np.testing.assert_allclose(logits[done], fresh[done], atol=1e-5, rtol=0)


def test_a_phase1_run_leaves_its_logits_to_a_later_phase2_run(
    tmp_path, finetuned_tiny, sst2_train, sst2_dev, monkeypatch
):
    # as the demo runs them: phase 1 alone, then phase 2 from its td_phase1.ckpt
    td1, td = tmp_path / "td1", tmp_path / "td"
    phase1 = six_steps(finetuned_tiny, sst2_train, sst2_dev, td1, phase2_batch=16)
    assert task_distill([*phase1, "--td_phase2_epoch_size", "0"]) == 0
    with np.load(td1 / CACHE_FILE) as stored:
        assert stored["done"].sum() == 6 * 16
    phase2 = six_steps(finetuned_tiny, sst2_train, sst2_dev, td, phase2_batch=32)
    phase2 = [a for a in phase2 if a not in ("--init_student_from_teacher_layers", "[0]")]
    assert task_distill([*phase2, "--load_td1_ckpt_path", str(td1 / "td_phase1.ckpt")]) == 0
    log = (td / "log.txt").read_text()
    reused = int(log.split("teacher logits: ")[1].split()[0])
    assert f"rows from {td1 / CACHE_FILE}" in log and 0 < reused <= 96
    assert f"teacher logits: computing {192 - reused} rows" in log
    with np.load(td / CACHE_FILE) as stored:
        logits, done = stored["logits"], stored["done"]
    fresh = teacher_logits(
        lambda: load_model(finetuned_tiny),
        finetuned_tiny,
        load_dataset(sst2_train),
        np.flatnonzero(done),
        tmp_path / "x.npz",
    )
    np.testing.assert_allclose(logits[done], fresh[done], atol=1e-5, rtol=0)

    # phase 2 from that checkpoint with another teacher starts afresh instead of failing
    other = tmp_path / "other.ckpt"
    teacher = load_model(finetuned_tiny)
    for parameter in teacher.get_parameters():
        parameter.set_data(parameter + 0.1)
    save_checkpoint(teacher, other)
    again = [a if a != str(finetuned_tiny) else str(other) for a in phase2]
    again = [a if a != str(td) else str(tmp_path / "td_other") for a in again]
    assert task_distill([*again, "--load_td1_ckpt_path", str(td1 / "td_phase1.ckpt")]) == 0
    log = (tmp_path / "td_other" / "log.txt").read_text()
    assert "not reusing" in log and "teacher logits: computing 192 rows (0 cached)" in log

    # resumed with every logit cached, phase 2 never builds the teacher
    def no_teacher(*args, **kwargs):
        raise AssertionError("the teacher was built")

    monkeypatch.setattr(recipes, "load_teacher", no_teacher)
    arguments = [*phase2, "--load_td1_ckpt_path", str(td1 / "td_phase1.ckpt"), "--resume", "true"]
    assert task_distill(arguments) == 0
    assert "teacher logits: all 192 rows from" in (td / "log.txt").read_text()
