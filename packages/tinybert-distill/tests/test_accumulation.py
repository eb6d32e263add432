"""Gradient accumulation (issue 31): a step's batch run as N micro-batches of batch/N rows makes
the update one batch makes, on the same schedule; a run stopped between two micro-batches
resumes exactly; a batch that does not split evenly is refused."""

import os
import signal

import numpy as np
import pytest
from conftest import ENGLISH_VOCAB, SHARED_DATA, distill_config, metrics, write_records

from tinybert_data import BertTokenizer
from tinybert_distill import fine_tune
from tinybert_distill.cli import finetune, general_distill, task_distill
from tinybert_distill.runs import RunError, prepare_output, trainer_state
from tinybert_distill.trainer import HostFeed, Stopped, micro_batches_per_step, stop_on_signals
from tinybert_model import (
    BertForSequenceClassification,
    read_checkpoint,
    save_checkpoint,
    tiny_config,
)

STEPS = 3


def assert_same_weights(path, reference, atol=1e-5):
    got, want = read_checkpoint(path).tensors, read_checkpoint(reference).tensors
    assert got.keys() == want.keys()
    for name in want:
        np.testing.assert_allclose(got[name], want[name], atol=atol, rtol=0, err_msg=name)


def assert_same_steps(output, reference, phase):
    """Logged losses equal within 1e-5 and the same learning rate at every step (the schedule
    counts updates, not micro-batches)."""
    got, want = metrics(output, phase), metrics(reference, phase)
    assert [r["step"] for r in got] == [r["step"] for r in want] == list(range(1, STEPS + 1))
    np.testing.assert_allclose([r["loss"] for r in got], [r["loss"] for r in want], atol=1e-5)
    assert [r["learning_rate"] for r in got] == [r["learning_rate"] for r in want]


@pytest.fixture
def micro_batch_shapes(monkeypatch):
    """The input shapes every micro-batch reaches the compiled step with. (The host's call,
    not TrainStep.accumulate: MindSpore would compile a wrapper of that into the graph.)"""
    shapes, micro_step = [], HostFeed._micro_step

    def recording(self, inputs):
        shapes.append(tuple(inputs[0].shape))
        return micro_step(self, inputs)

    monkeypatch.setattr(HostFeed, "_micro_step", recording)
    return shapes


@pytest.mark.parametrize("length_buckets", ["true", "false"])
def test_fine_tuning_on_micro_batches_makes_the_same_updates(
    tmp_path, pretrained_tiny, sst2_train, micro_batch_shapes, length_buckets
):
    def run(micro_batches):
        output = tmp_path / f"micro{micro_batches}"
        arguments = [
            *("--load_ckpt_path", str(pretrained_tiny), "--train_data_dir", str(sst2_train)),
            *("--do_eval", "false", "--save_ckpt_path", str(output), "--train_steps", str(STEPS)),
            *("--common_cfg.batch_size", "16", "--length_buckets", length_buckets),
            *("--learning_rate", "1e-3"),
            *("--gradient_accumulation_steps", str(micro_batches)),
        ]
        assert finetune(arguments) == 0
        return output

    whole = run(1)
    assert micro_batch_shapes == []  # one batch, one graph: no accumulation
    micro_batches = (2, 4) if length_buckets == "true" else (2,)
    for count in micro_batches:
        output = run(count)
        assert_same_weights(output / "last.ckpt", whole / "last.ckpt")
        assert_same_steps(output, whole, "finetune")
        state = read_checkpoint(output / "checkpoints" / "finetune_step00000003.ckpt").tensors
        assert state["optimizer.global_step"].item() == STEPS  # one update per step
        assert not any(name.startswith("accumulated") for name in state)  # 0 between steps
    # each micro-batch is batch/N rows; with buckets, cut to the global batch's bucket
    rows = [shape[0] for shape in micro_batch_shapes]
    if length_buckets == "true":
        assert rows == [8] * 2 * STEPS + [4] * 4 * STEPS
    else:
        assert rows == [8] * 2 * STEPS
        assert {shape[1] for shape in micro_batch_shapes} == {32}  # the records' seq_length


def test_distillation_on_micro_batches_makes_the_same_updates(
    tmp_path, pretrained_tiny, sst2_train
):
    """tinybert-gd and both phases of tinybert-td (phase 1 hands its teacher logits to phase
    2, gathered over the micro-batches)."""
    student = [
        *("--num_hidden_layers", "2", "--hidden_size", "16", "--num_attention_heads", "2"),
        *("--intermediate_size", "32", "--max_position_embeddings", "64"),
        *("--hidden_dropout_prob", "0.0", "--attention_probs_dropout_prob", "0.0"),
    ]
    vocab_size = BertTokenizer.from_vocab(ENGLISH_VOCAB).vocab_size
    teacher = tmp_path / "teacher.ckpt"
    save_checkpoint(
        BertForSequenceClassification(tiny_config(vocab_size, labels=["0", "1"])), teacher
    )

    def run(script, name, micro_batches, *arguments):
        output = tmp_path / f"{name}{micro_batches}"
        common = ["--save_ckpt_path", str(output), "--train_steps", str(STEPS)]
        micro = ["--gradient_accumulation_steps", str(micro_batches)]
        assert script([*arguments, *common, *micro]) == 0
        return output

    gd = [
        *("--load_teacher_ckpt_path", str(pretrained_tiny), "--data_dir", str(sst2_train)),
        *("--common_cfg.batch_size", "16", "--learning_rate", "1e-3", *student),
    ]
    whole, micro = run(general_distill, "gd", 1, *gd), run(general_distill, "gd", 2, *gd)
    assert_same_weights(micro / "gd.ckpt", whole / "gd.ckpt")
    assert_same_steps(micro, whole, "gd")

    td = [
        *("--task_name", "sst2", "--load_teacher_ckpt_path", str(teacher)),
        *("--allow_weak_teacher", "true"),
        *("--init_student_from_teacher_layers", "[1]", "--train_data_dir", str(sst2_train)),
        *("--do_eval", "false", "--td_phase1_epoch_size", "1", "--td_phase2_epoch_size", "1"),
        *("--phase1_cfg.batch_size", "16", "--phase2_cfg.batch_size", "16"),
        *("--phase1_cfg.learning_rate", "1e-3", "--phase2_cfg.learning_rate", "1e-3"),
    ]
    whole, micro = run(task_distill, "td", 1, *td), run(task_distill, "td", 2, *td)
    for model in ("td_phase1.ckpt", "td_phase2.ckpt"):
        assert_same_weights(micro / model, whole / model)
    for phase in ("td_phase1", "td_phase2"):
        assert_same_steps(micro, whole, phase)
    log = (micro / "log.txt").read_text()
    assert "teacher logits: 48 rows from phase 1" in log  # 3 steps x 16, over 2 micro-batches


def test_a_stop_between_micro_batches_resumes_exactly(
    tmp_path, pretrained_tiny, sst2_train, monkeypatch
):
    config = distill_config(
        "finetune_config",
        tmp_path / "stopped",
        load_ckpt_path=str(pretrained_tiny),
        train_data_dir=str(sst2_train),
        do_eval=False,
        train_steps=4,
        gradient_accumulation_steps=2,
    )
    fine_tune(dict(config, save_ckpt_path=str(tmp_path / "whole")))

    calls, micro_step = [], HostFeed._micro_step

    def signalled_in_step_3(self, inputs):
        outputs = micro_step(self, inputs)
        calls.append(inputs[0].shape)
        if len(calls) == 5:  # after the first micro-batch of step 3
            os.kill(os.getpid(), signal.SIGTERM)
        return outputs

    monkeypatch.setattr(HostFeed, "_micro_step", signalled_in_step_3)
    with stop_on_signals(), pytest.raises(Stopped) as stopped:
        fine_tune(dict(config))
    monkeypatch.undo()
    assert (stopped.value.signal_name, stopped.value.phase, stopped.value.step) == (
        "SIGTERM",
        "finetune",
        2,
    )
    assert stopped.value.exit_code == 143
    output = tmp_path / "stopped"
    saved = output / "checkpoints" / "finetune_step00000002.ckpt"
    assert [p.name for p in (output / "checkpoints").iterdir()] == [saved.name]
    state = trainer_state(saved)
    assert (state["step"], state["micro_step"], state["gradient_accumulation_steps"]) == (2, 1, 2)
    sums = read_checkpoint(saved).tensors
    assert sums["accumulated_loss"].item() > 0  # the first micro-batch's loss, kept
    assert not (output / "last.ckpt").exists()

    # the sums are of two micro-batches per step: another number cannot continue them
    with pytest.raises(RunError, match="resume it with --gradient_accumulation_steps 2"):
        fine_tune(dict(config, resume=True, gradient_accumulation_steps=4))
    fine_tune(dict(config, resume=True))
    assert_same_weights(output / "last.ckpt", tmp_path / "whole" / "last.ckpt", atol=0)
    assert [r["step"] for r in metrics(output, "finetune")] == [1, 2, 3, 4]
    # between steps the number of micro-batches is free: it changes how, not what, is learned
    prepare_output(dict(config, resume=True, gradient_accumulation_steps=4))


@pytest.mark.parametrize(
    ("batch_size", "seq_length", "device", "expected"),
    [
        (64, 128, "CPU", 4),  # route B's general distillation: 16 rows of 128
        (64, 64, "CPU", 2),  # its task-distillation phase 1
        (32, 64, "CPU", 1),  # the packaged td defaults fit in one
        (48, 128, "CPU", 3),  # the fewest that divide evenly
        (37, 128, "CPU", 37),  # a prime batch above the cap: rows one by one
        (8, 4096, "CPU", 8),  # at least one row
        (64, 128, "GPU", 1),  # graph memory is reused there
    ],
)
def test_auto_micro_batches_cap_the_tokens_of_a_cpu_graph(batch_size, seq_length, device, expected):
    assert micro_batches_per_step("auto", batch_size, seq_length, device) == expected
    assert micro_batches_per_step(5, batch_size, seq_length, device) == 5


def test_general_distillation_splits_its_batch_by_default(
    tmp_path, pretrained_tiny, micro_batch_shapes
):
    """The packaged defaults (auto, no length buckets): at seq_length 64 a step of 64 rows
    runs as 2 micro-batches of 32 (2048 tokens each), every one padded to 64."""
    records = write_records(
        SHARED_DATA / "sst2" / "train.tsv", 160, "sst2", ENGLISH_VOCAB, tmp_path / "records", 64
    )
    output = tmp_path / "gd"
    arguments = [
        *("--load_teacher_ckpt_path", str(pretrained_tiny), "--data_dir", str(records)),
        *("--save_ckpt_path", str(output), "--train_steps", "2"),
        *("--common_cfg.batch_size", "64", "--num_hidden_layers", "2", "--hidden_size", "16"),
        *("--num_attention_heads", "2", "--intermediate_size", "32"),
        *("--max_position_embeddings", "64"),
    ]
    assert general_distill(arguments) == 0
    assert micro_batch_shapes == [(32, 64)] * 4
    assert "2 steps of 2 micro-batches of 32 rows" in (output / "log.txt").read_text()
