"""Fine-tuning, general distillation and task distillation on real SST-2 and CLUENER
records with tiny models: losses go down, checkpoints load with tinybert-model alone, a
resumed run (after a crash or a SIGTERM) ends where an uninterrupted one does, and bad inputs
stop with a clear error."""

import json
import re
import signal
import subprocess
import time

import mindspore as ms
import numpy as np
import pytest
from conftest import (
    CHINESE_VOCAB,
    console_script,
    distill_config,
    mean_first_last,
    metrics,
    tiny_config,
    write_yaml,
)

from tinybert_data import BertTokenizer
from tinybert_distill import fine_tune
from tinybert_distill.cli import finetune, general_distill, task_distill
from tinybert_distill.distillers import DistillationLoss
from tinybert_distill.matches import prediction_matches
from tinybert_distill.students import task_student
from tinybert_model import (
    BertForSequenceClassification,
    BertForTokenClassification,
    BertModel,
    TinyBertStudent,
    load_model,
    named_parameters,
    read_checkpoint,
    save_checkpoint,
)

STUDENT = [
    "--num_hidden_layers",
    "2",
    "--hidden_size",
    "16",
    "--num_attention_heads",
    "2",
    "--intermediate_size",
    "32",
    "--max_position_embeddings",
    "64",
    "--hidden_dropout_prob",
    "0.0",
    "--attention_probs_dropout_prob",
    "0.0",
]


def test_fine_tuning_learns_sst2(finetuned_tiny):
    output = finetuned_tiny.parent
    losses = [r["loss"] for r in metrics(output, "finetune")]
    assert len(losses) == 200  # 320 rows / 16 per step, 10 epochs
    first_epoch, last_epoch = np.mean(losses[:20]), np.mean(losses[-20:])
    assert last_epoch < first_epoch * 0.8
    log = (output / "log.txt").read_text()
    assert "epoch: 1, step: 1, outputs are (" in log
    assert "epoch: 10, step: 200, outputs are (" in log
    assert "The best acc is" in log
    teacher = load_model(finetuned_tiny)
    assert isinstance(teacher, BertForSequenceClassification)
    assert teacher.config.labels == ["0", "1"]
    summary = json.loads((output / "summary.json").read_text())
    assert 0.0 <= summary["best"] <= 1.0
    assert len(summary["evaluations"]) == 10  # once per epoch


@pytest.fixture(scope="module")
def general_student(tmp_path_factory, pretrained_tiny, sst2_train):
    output = tmp_path_factory.mktemp("gd")
    code = general_distill(
        [
            "--load_teacher_ckpt_path",
            str(pretrained_tiny),
            "--data_dir",
            str(sst2_train),
            "--save_ckpt_path",
            str(output),
            "--epoch_size",
            "2",
            "--common_cfg.batch_size",
            "16",
            "--learning_rate",
            "1e-3",
            "--save_ckpt_step",
            "1000",
            *STUDENT,
        ]
    )
    assert code == 0
    return output / "gd.ckpt"


def test_general_distillation_learns_and_saves_fit_dense(general_student):
    output = general_student.parent
    first, last = mean_first_last([r["loss"] for r in metrics(output, "gd")])
    assert last < first * 0.9
    checkpoint = read_checkpoint(general_student)
    assert checkpoint.tensors["fit_dense.weight"].shape == (32, 16)  # student 16 -> teacher 32
    assert checkpoint.config.hidden_size == 16 and checkpoint.config.num_hidden_layers == 2
    assert isinstance(load_model(general_student), BertModel)  # loads without tinybert-distill
    assert (output / "config.yaml").is_file()
    assert "epoch: 2, step: 40, outputs are (" in (output / "log.txt").read_text()


def test_task_student_reuses_general_fit_dense(general_student):
    """The zoo built task distillation's fit_dense anew; ours continues general distillation's."""
    student = task_student(general_student, ["0", "1"], "classification", teacher_hidden=32)
    saved = read_checkpoint(general_student).tensors
    loaded = {name: p.asnumpy() for name, p in named_parameters(student).items()}
    for name, value in saved.items():  # the encoder moved under the head model's "bert."
        place = name if name.startswith("fit_dense.") else f"bert.{name}"
        np.testing.assert_array_equal(loaded[place], value, err_msg=name)
    assert loaded["classifier.weight"].shape == (2, 16)  # the new head


def sst2_task_distill_args(teacher, general_student, train, dev, output) -> list:
    """tinybert-td's flags for the tiny SST-2 runs below; each test adds its budgets."""
    return [
        *("--task_name", "sst2", "--load_teacher_ckpt_path", str(teacher)),
        *("--allow_weak_teacher", "true"),
        *("--load_gd_ckpt_path", str(general_student), "--train_data_dir", str(train)),
        *("--eval_data_dir", str(dev), "--save_ckpt_path", str(output)),
    ]


def test_task_distillation_two_phases_keeps_the_best(
    tmp_path, general_student, finetuned_tiny, sst2_train, sst2_dev
):
    output = tmp_path / "td"
    code = task_distill(
        [
            *sst2_task_distill_args(finetuned_tiny, general_student, sst2_train, sst2_dev, output),
            "--td_phase1_epoch_size",
            "1",
            "--td_phase2_epoch_size",
            "2",
            "--eval_step",
            "10",
            "--phase1_cfg.batch_size",
            "16",
            "--phase2_cfg.batch_size",
            "16",
            "--phase1_cfg.learning_rate",
            "1e-3",
            "--phase2_cfg.learning_rate",
            "1e-3",
        ]
    )
    assert code == 0
    first, last = mean_first_last([r["loss"] for r in metrics(output, "td_phase1")])
    assert last < first
    assert len(metrics(output, "td_phase2")) == 40
    log = (output / "log.txt").read_text()
    assert "The best acc is" in log
    summary = json.loads((output / "summary.json").read_text())
    assert len(summary["evaluations"]) == 4  # every 10 steps of phase 2
    assert summary["best"] == max(e["accuracy"] for e in summary["evaluations"])

    best = load_model(output / "best.ckpt")
    assert isinstance(best, BertForSequenceClassification)
    assert best.config.hidden_size == 16
    assert "fit_dense.weight" not in read_checkpoint(output / "best.ckpt").tensors
    assert "fit_dense.weight" in read_checkpoint(output / "td_phase1.ckpt").tensors

    # --do_train false --do_eval true scores a checkpoint alone, with the same figure
    code = task_distill(
        [
            "--task_name",
            "sst2",
            "--allow_weak_teacher",
            "true",
            "--do_train",
            "false",
            "--load_td1_ckpt_path",
            str(output / "best.ckpt"),
            "--eval_data_dir",
            str(sst2_dev),
            "--save_ckpt_path",
            str(tmp_path / "eval"),
        ]
    )
    assert code == 0
    alone = json.loads((tmp_path / "eval" / "summary.json").read_text())
    assert alone["accuracy"] == pytest.approx(summary["best"], abs=1e-6)


def test_resume_ends_with_the_same_weights(tmp_path, pretrained_tiny, sst2_train):
    output = tmp_path / "run"
    config = distill_config(
        "finetune_config",
        output,
        load_ckpt_path=str(pretrained_tiny),
        train_data_dir=str(sst2_train),
        do_eval=False,
        epoch_size=2,
        save_ckpt_step=15,
        max_ckpt_num=3,
    )
    fine_tune(dict(config))
    uninterrupted = read_checkpoint(output / "last.ckpt").tensors
    checkpoints = sorted((output / "checkpoints").glob("*.ckpt"))
    assert [c.name for c in checkpoints] == [f"finetune_step000000{n}.ckpt" for n in (15, 30, 40)]

    # Kill the run after step 30: later checkpoints and outputs never happened.
    checkpoints[-1].unlink()
    (output / "last.ckpt").unlink()
    fine_tune(dict(config, resume=True))
    resumed = read_checkpoint(output / "last.ckpt").tensors
    assert resumed.keys() == uninterrupted.keys()
    for name in uninterrupted:
        np.testing.assert_array_equal(resumed[name], uninterrupted[name], err_msg=name)
    steps = [r["step"] for r in metrics(output, "finetune")]
    assert steps == list(range(1, 41)) + list(range(31, 41))


def test_sigterm_saves_the_state_and_resume_continues_exactly(
    tmp_path, pretrained_tiny, sst2_train
):
    """A real SIGTERM to a real training process: it finishes its step, saves, says how to go
    on in one line (console and log.txt) and exits 143; --resume true ends where a run never
    stopped ends."""
    settings = dict(
        load_ckpt_path=str(pretrained_tiny),
        train_data_dir=str(sst2_train),
        do_eval=False,
        epoch_size=10,  # 200 steps: long enough to be stopped in the middle
        save_ckpt_step=1000,  # the only resumable checkpoint is the one the stop writes
    )
    output = tmp_path / "stopped"
    config = write_yaml(distill_config("finetune_config", output, **settings), tmp_path / "a.yaml")
    command = [console_script("tinybert-finetune"), "--config", str(config)]
    child = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 600
    while child.poll() is None and time.monotonic() < deadline:
        logged = output / "metrics.jsonl"
        if logged.is_file() and len(logged.read_text().splitlines()) >= 3:
            break
        time.sleep(0.02)
    child.send_signal(signal.SIGTERM)
    _, errors = child.communicate(timeout=600)
    assert child.returncode == 143, errors[-3000:]
    last = errors.strip().splitlines()[-1]
    stopped = re.fullmatch(
        r"tinybert-finetune: stopped by SIGTERM after finetune step (\d+), its state saved; "
        r"continue with --resume true",
        last,
    )
    assert stopped, last
    step = int(stopped[1])
    assert 3 <= step < 200 and "Traceback" not in errors
    assert (output / "log.txt").read_text().splitlines()[-1].endswith(last)
    names = [p.name for p in (output / "checkpoints").iterdir()]
    assert names == [f"finetune_step{step:08d}.ckpt"]
    assert [r["step"] for r in metrics(output, "finetune")] == list(range(1, step + 1))

    subprocess.run([*command, "--resume", "true"], check=True, capture_output=True)
    whole = tmp_path / "whole"
    subprocess.run([*command, "--save_ckpt_path", str(whole)], check=True, capture_output=True)
    resumed = read_checkpoint(output / "last.ckpt").tensors
    uninterrupted = read_checkpoint(whole / "last.ckpt").tensors
    for name in uninterrupted:
        np.testing.assert_array_equal(resumed[name], uninterrupted[name], err_msg=name)
    assert [r["step"] for r in metrics(output, "finetune")][step:] == list(range(step + 1, 201))


def test_checkpoints_are_pruned_to_max_ckpt_num(tmp_path, pretrained_tiny, sst2_train):
    output = tmp_path / "run"
    config = distill_config(
        "finetune_config",
        output,
        load_ckpt_path=str(pretrained_tiny),
        train_data_dir=str(sst2_train),
        do_eval=False,
        train_steps=6,
        save_ckpt_step=2,
        max_ckpt_num=2,
    )
    fine_tune(config)
    names = sorted(c.name for c in (output / "checkpoints").iterdir())
    assert names == ["finetune_step00000004.ckpt", "finetune_step00000006.ckpt"]


def test_ner_distillation_passes_inputs_in_the_standard_order():
    """input_ids, segment_ids, input_mask reach teacher and student as for classification (the
    zoo swapped mask and segment ids for NER): the loss equals one computed by hand."""
    ms.set_context(mode=ms.PYNATIVE_MODE)
    ms.set_seed(3)
    config = tiny_config(100, labels=["O", "B-name", "I-name"], task_type="ner")
    teacher = BertForTokenClassification(config)
    student = TinyBertStudent(
        BertForTokenClassification(
            tiny_config(100, hidden_size=16, labels=config.labels, task_type="ner")
        ),
        32,
    )
    loss_net = DistillationLoss(teacher, student, prediction_matches("ner"))
    rng = np.random.default_rng(0)
    input_ids = ms.Tensor(rng.integers(1, 100, size=(2, 8)).astype(np.int32))
    segment_ids = ms.Tensor(np.zeros((2, 8), np.int32))
    input_mask = ms.Tensor(np.array([[1] * 8, [1] * 5 + [0] * 3], np.int32))
    got = float(loss_net(input_ids, segment_ids, input_mask).asnumpy())

    teacher_logits = teacher(input_ids, segment_ids, input_mask)[0].asnumpy()
    student_logits = student(input_ids, segment_ids, input_mask)[0].asnumpy()
    targets = np.exp(teacher_logits) / np.exp(teacher_logits).sum(-1, keepdims=True)
    log_probs = student_logits - np.log(np.exp(student_logits).sum(-1, keepdims=True))
    per_token = -(targets * log_probs).sum(-1)
    mask = input_mask.asnumpy()
    np.testing.assert_allclose(got, (per_token * mask).sum() / mask.sum(), rtol=1e-5)


def test_ner_task_distillation_reports_span_f1(tmp_path, cluener_train):
    """CLUENER end to end: fine-tune a tiny Chinese teacher, distil a student built from its
    layers, evaluate with span F1."""
    ms.set_seed(2)
    vocab_size = BertTokenizer.from_vocab(CHINESE_VOCAB, do_lower_case=True).vocab_size
    pretrained = tmp_path / "zh.ckpt"
    save_checkpoint(BertModel(tiny_config(vocab_size)), pretrained)
    teacher_dir = tmp_path / "teacher"
    common = ["--train_data_dir", str(cluener_train), "--eval_data_dir", str(cluener_train)]
    assert (
        finetune(
            [
                "--load_ckpt_path",
                str(pretrained),
                "--save_ckpt_path",
                str(teacher_dir),
                "--epoch_size",
                "1",
                "--common_cfg.batch_size",
                "16",
                *common,
            ]
        )
        == 0
    )
    output = tmp_path / "td"
    code = task_distill(
        [
            "--task_name",
            "cluener",
            "--allow_weak_teacher",
            "true",
            "--load_teacher_ckpt_path",
            str(teacher_dir / "best.ckpt"),
            "--init_student_from_teacher_layers",
            "[1]",
            "--save_ckpt_path",
            str(output),
            "--td_phase1_epoch_size",
            "1",
            "--td_phase2_epoch_size",
            "1",
            "--phase1_cfg.batch_size",
            "16",
            "--phase2_cfg.batch_size",
            "16",
            *common,
        ]
    )
    assert code == 0
    summary = json.loads((output / "summary.json").read_text())
    assert {"f1", "precision", "recall", "token_accuracy"} <= set(summary["evaluations"][0])
    assert "The best f1 is" in (output / "log.txt").read_text()
    student = load_model(output / "best.ckpt")
    assert isinstance(student, BertForTokenClassification)
    assert student.config.num_hidden_layers == 1


# ---- bad inputs: one line on stderr, exit code 1 --------------------------------------------


def test_missing_data_folder(tmp_path, pretrained_tiny, capsys):
    code = general_distill(
        [
            "--load_teacher_ckpt_path",
            str(pretrained_tiny),
            "--data_dir",
            str(tmp_path / "nowhere"),
            "--save_ckpt_path",
            str(tmp_path / "out"),
        ]
    )
    assert code == 1
    error = capsys.readouterr().err
    assert "nowhere: data folder not found" in error and "Traceback" not in error


def test_missing_teacher_checkpoint(tmp_path, sst2_train, capsys):
    code = general_distill(
        [
            "--load_teacher_ckpt_path",
            str(tmp_path / "teacher.ckpt"),
            "--data_dir",
            str(sst2_train),
            "--save_ckpt_path",
            str(tmp_path / "out"),
        ]
    )
    assert code == 1
    assert "teacher.ckpt: checkpoint file not found" in capsys.readouterr().err


def test_teacher_without_task_head(tmp_path, pretrained_tiny, general_student, sst2_train, capsys):
    code = task_distill(
        [
            "--task_name",
            "sst2",
            "--allow_weak_teacher",
            "true",
            "--load_teacher_ckpt_path",
            str(pretrained_tiny),
            "--load_gd_ckpt_path",
            str(general_student),
            "--train_data_dir",
            str(sst2_train),
            "--do_eval",
            "false",
            "--save_ckpt_path",
            str(tmp_path / "out"),
        ]
    )
    assert code == 1
    assert "run tinybert-finetune first" in capsys.readouterr().err


def test_student_distilled_from_another_teacher(tmp_path, general_student, sst2_train, capsys):
    wider = tiny_config(
        read_checkpoint(general_student).config.vocab_size, hidden_size=48, labels=["0", "1"]
    )
    teacher = tmp_path / "wide_teacher.ckpt"
    save_checkpoint(BertForSequenceClassification(wider), teacher)
    code = task_distill(
        [
            "--task_name",
            "sst2",
            "--allow_weak_teacher",
            "true",
            "--load_teacher_ckpt_path",
            str(teacher),
            "--load_gd_ckpt_path",
            str(general_student),
            "--train_data_dir",
            str(sst2_train),
            "--do_eval",
            "false",
            "--save_ckpt_path",
            str(tmp_path / "out"),
        ]
    )
    assert code == 1
    error = capsys.readouterr().err
    assert "fit_dense maps to 32 dimensions but the teacher's hidden size is 48" in error


def test_data_from_another_vocabulary(tmp_path, pretrained_tiny, cluener_train, capsys):
    code = general_distill(
        [
            "--load_teacher_ckpt_path",
            str(pretrained_tiny),
            "--data_dir",
            str(cluener_train),
            "--save_ckpt_path",
            str(tmp_path / "out"),
        ]
    )
    assert code == 1
    assert (
        "tokenized with a 21128-token vocabulary but the teacher has 30522"
        in capsys.readouterr().err
    )


def test_task_name_must_match_the_data(
    tmp_path, finetuned_tiny, general_student, sst2_train, capsys
):
    code = task_distill(
        [
            "--task_name",
            "qnli",
            "--allow_weak_teacher",
            "true",
            "--load_teacher_ckpt_path",
            str(finetuned_tiny),
            "--load_gd_ckpt_path",
            str(general_student),
            "--train_data_dir",
            str(sst2_train),
            "--do_eval",
            "false",
            "--save_ckpt_path",
            str(tmp_path / "out"),
        ]
    )
    assert code == 1
    assert "holds sst2 data" in capsys.readouterr().err


def test_phase_one_alone_writes_a_summary_strict_json_reads(
    tmp_path, general_student, finetuned_tiny, sst2_train, sst2_dev
):
    output = tmp_path / "td1"
    code = task_distill(
        [
            *sst2_task_distill_args(finetuned_tiny, general_student, sst2_train, sst2_dev, output),
            "--train_steps",
            "4",
            "--td_phase2_epoch_size",
            "0",
            "--phase1_cfg.batch_size",
            "16",
        ]
    )
    assert code == 0

    def refuse(constant):
        raise ValueError(f"not JSON: {constant}")

    summary = json.loads((output / "summary.json").read_text(), parse_constant=refuse)
    assert summary == {"best": None, "evaluations": []}  # phase 2, which evaluates, was skipped
    assert (output / "td_phase1.ckpt").is_file()
