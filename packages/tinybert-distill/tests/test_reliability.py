"""Issue 14, the distillation side: a run uses only its own checkpoints, a changed resume is
refused, bad numbers and teachers are refused before anything is built, and every failure
is one line (also in log.txt)."""

import hashlib
import json
import shutil
import subprocess

import numpy as np
import pytest
import yaml
from conftest import (
    ENGLISH_VOCAB,
    SHARED_DATA,
    console_script,
    free_port,
    tiny_config,
    write_records,
)

from tinybert_data import BertTokenizer
from tinybert_distill import runs
from tinybert_distill.cli import finetune, general_distill, task_distill
from tinybert_distill.launch import main as launch
from tinybert_distill.runs import TRAINER_STATE, digest, run_identity, trainer_state
from tinybert_distill.trainer import Run, _checkpoints
from tinybert_model import BertForSequenceClassification, read_checkpoint, save_checkpoint
from tinybert_model.checkpoint import write_checkpoint


def fine_tune_args(pretrained, train, output, *more):
    """A tiny fine-tuning run: 4 steps of 16 rows, a checkpoint every 2."""
    return [
        "--load_ckpt_path",
        str(pretrained),
        "--train_data_dir",
        str(train),
        "--do_eval",
        "false",
        "--save_ckpt_path",
        str(output),
        "--common_cfg.batch_size",
        "16",
        "--train_steps",
        "4",
        "--save_ckpt_step",
        "2",
        "--max_ckpt_num",
        "2",
        *more,
    ]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, pretrained_tiny, sst2_train):
    """A fine-tuning run that ended normally: checkpoints at steps 2 and 4."""
    output = tmp_path_factory.mktemp("finished") / "run"
    assert finetune(fine_tune_args(pretrained_tiny, sst2_train, output, "--seed", "1")) == 0
    return output


def checkpoint_names(output):
    return sorted(p.name for p in (output / "checkpoints").glob("*.ckpt"))


# ---- item 1: a run resumes, rotates and deletes only its own checkpoints --------------------


def test_a_run_never_uses_another_runs_checkpoints(
    tmp_path, finished_run, pretrained_tiny, sst2_train, capsys
):
    # The case: an older run's higher-numbered checkpoint is still in the folder.
    output = tmp_path / "run"
    shutil.copytree(finished_run, output)
    stale = output / "checkpoints" / "finetune_step00000036.ckpt"
    (output / "checkpoints" / "finetune_step00000004.ckpt").rename(stale)
    config_before = (output / "config.yaml").read_text()

    args = fine_tune_args(pretrained_tiny, sst2_train, output, "--seed", "2")
    assert finetune(args) == 1
    error = capsys.readouterr().err
    assert "holds an earlier run's checkpoints/finetune_step00000002.ckpt" in error
    assert "finetune_step00000036.ckpt" in error and "--overwrite true" in error
    assert "Traceback" not in error
    assert (output / "config.yaml").read_text() == config_before  # nothing touched
    assert stale.exists()

    # --overwrite true deletes the earlier run's state first; rotation then keeps this run's.
    kept = tmp_path / "stale.ckpt"
    shutil.copy2(stale, kept)
    assert finetune([*args, "--overwrite", "true"]) == 0
    assert checkpoint_names(output) == ["finetune_step00000002.ckpt", "finetune_step00000004.ckpt"]
    assert "seed: 2" in (output / "config.yaml").read_text()

    # A stale checkpoint that reappears is neither this run's to resume nor to rotate away.
    shutil.copy2(kept, stale)
    config = yaml.safe_load((output / "config.yaml").read_text())
    run = Run(output_dir=output, identity=run_identity(config))
    own = _checkpoints(run, "finetune")
    assert [p.name for p in own] == ["finetune_step00000002.ckpt", "finetune_step00000004.ckpt"]
    assert trainer_state(own[-1])["run"]["id"] == run.identity["id"]
    assert trainer_state(stale)["run"]["id"] != run.identity["id"]


# ---- item 2: --resume with settings that change the data order or schedule is refused ------


def test_resume_with_changed_settings_is_refused(
    tmp_path, finished_run, pretrained_tiny, sst2_train, capsys
):
    output = tmp_path / "run"
    shutil.copytree(finished_run, output)
    config_before = (output / "config.yaml").read_text()
    args = fine_tune_args(pretrained_tiny, sst2_train, output, "--seed", "1", "--resume", "true")

    changed = [*args, "--common_cfg.batch_size", "8", "--learning_rate", "1e-4"]
    assert finetune(changed) == 1
    error = capsys.readouterr().err
    assert "common_cfg.batch_size 16 -> 8" in error
    assert "common_cfg.AdamWeightDecay.learning_rate 3e-05 -> 0.0001" in error
    assert "seed" not in error  # only what differs
    assert (output / "config.yaml").read_text() == config_before
    assert finetune([*args, "--train_steps", "6"]) == 1
    assert "train_steps 4 -> 6" in capsys.readouterr().err

    # other records: the same path key, other contents
    other = tmp_path / "other_train"
    shutil.copytree(sst2_train, other)
    with open(next(p for p in other.iterdir() if p.suffix != ".json"), "ab") as handle:
        handle.write(b"\0")
    moved = fine_tune_args(pretrained_tiny, other, output, "--seed", "1", "--resume", "true")
    assert finetune(moved) == 1
    assert "train_data_dir (other contents)" in capsys.readouterr().err

    # how often it logs, saves and evaluates may change
    assert finetune([*args, "--log_every", "5", "--save_ckpt_step", "3", "--eval_step", "7"]) == 0
    assert "log_every: 5" in (output / "config.yaml").read_text()


# ---- item 3: numeric keys are checked at load, naming the key -------------------------------


@pytest.mark.parametrize(
    "script, key, value, wording",
    [
        (finetune, "common_cfg.batch_size", "-50", "a whole number >= 1"),
        (finetune, "common_cfg.batch_size", "0", "a whole number >= 1"),
        (finetune, "epoch_size", "0", "a whole number from 1 to 10000000"),
        (finetune, "epoch_size", "1.5", "a whole number from 1 to 10000000"),
        (finetune, "learning_rate", "-1e-5", "a finite number > 0"),
        (finetune, "end_learning_rate", "-1", "a finite number >= 0"),
        (finetune, "train_steps", "0", "-1 or a whole number from 1 to 10000000"),
        (finetune, "save_ckpt_step", "0", "a whole number >= 1"),
        (finetune, "log_every", "0", "a whole number >= 1"),
        (finetune, "eval_cfg.batch_size", "0", "a whole number >= 1"),
        (finetune, "max_ckpt_num", "0", "a whole number >= 1"),
        (finetune, "warmup_ratio", "1.0", "in [0, 1)"),
        (finetune, "eps", "0", "a finite number > 0"),
        (finetune, "loss_scale_value", "0", "a finite number > 0"),
        (finetune, "scale_window", "0", "a whole number from 1 to 2147483647"),
        (finetune, "gradient_accumulation_steps", "0", "a whole number >= 1"),
        (general_distill, "attention_loss_weight", "-1", "a finite number >= 0"),
        (general_distill, "hidden_dropout_prob", "1.5", "in [0, 1)"),
        (general_distill, "hidden_layer_map", "[0, 1.5, 2]", "a list of layer numbers"),
        (task_distill, "temperature", "0", "a finite number > 0"),
        (task_distill, "td_phase1_epoch_size", "-1", "a whole number from 0 to 10000000"),
        (task_distill, "td_phase2_epoch_size", "1.5", "a whole number from 0 to 10000000"),
        (task_distill, "phase2_cfg.learning_rate", "0", "a finite number > 0"),
        # issue 33: infinities, NaN, numbers beyond float32, counts that plan absurd work
        (finetune, "learning_rate", "inf", "a finite number > 0"),
        (finetune, "learning_rate", "nan", "a finite number > 0"),
        (finetune, "weight_decay", "inf", "a finite number >= 0"),
        (finetune, "warmup_ratio", "nan", "in [0, 1)"),
        (finetune, "loss_scale_value", "1e39", "a finite number > 0"),
        (finetune, "scale_factor", "inf", "a finite number >= 1"),
        (finetune, "epoch_size", "1e9", "a whole number from 1 to 10000000"),
        (finetune, "epoch_size", "inf", "a whole number from 1 to 10000000"),
        (finetune, "train_steps", "1e12", "-1 or a whole number from 1 to 10000000"),
        (finetune, "scale_window", "1e10", "a whole number from 1 to 2147483647"),
        (finetune, "device_id", "5000", "a whole number from 0 to 4095"),
        (finetune, "seed", "-inf", "a whole number in [0, 2**32)"),
        (general_distill, "hidden_loss_weight", "inf", "a finite number >= 0"),
        (general_distill, "initializer_range", "inf", "a finite number > 0"),
        (general_distill, "hidden_size", "1e400", "a whole number >= 1"),
        (task_distill, "temperature", "-inf", "a finite number > 0"),
        (task_distill, "prediction_loss_weight", "nan", "a finite number >= 0"),
    ],
)
def test_invalid_numbers_are_refused_naming_the_key(tmp_path, capsys, script, key, value, wording):
    output = tmp_path / "out"
    task = ["--task_name", "sst2"] if script is task_distill else []
    assert script([*task, f"--{key}", value, "--save_ckpt_path", str(output)]) == 1
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0 and "Traceback" not in error
    assert f"{key.split('.')[-1]} is " in error and wording in error
    assert not output.exists()  # refused before anything was written


def test_one_phase_may_be_skipped_but_not_both(tmp_path, capsys):
    output = tmp_path / "out"
    both = ["--td_phase1_epoch_size", "0", "--td_phase2_epoch_size", "0"]
    assert task_distill(["--task_name", "sst2", *both, "--save_ckpt_path", str(output)]) == 1
    assert "are both 0: nothing to train" in capsys.readouterr().err
    assert not output.exists()


# ---- item 8: a teacher and student that cannot be distilled are refused before compiling ----


STUDENT = {
    "num_hidden_layers": "2",
    "hidden_size": "16",
    "num_attention_heads": "2",
    "intermediate_size": "32",
    "max_position_embeddings": "64",
}


def gd_args(teacher, data, output, **student):
    shape = [x for k, v in {**STUDENT, **student}.items() for x in (f"--{k}", v)]
    return [
        "--load_teacher_ckpt_path",
        str(teacher),
        "--data_dir",
        str(data),
        "--save_ckpt_path",
        str(output),
        *shape,
    ]


def test_student_that_cannot_learn_from_the_teacher_is_refused(
    tmp_path, pretrained_tiny, sst2_train, capsys
):
    # a 2-head teacher and a 4-head student: the attention loss compares heads one to one
    four_heads = gd_args(pretrained_tiny, sst2_train, tmp_path / "a", num_attention_heads="4")
    assert general_distill(four_heads) == 1
    error = capsys.readouterr().err
    assert "the student has 4 attention heads per layer, the teacher 2" in error
    assert "num_attention_heads" in error and "Traceback" not in error
    assert not (tmp_path / "a" / "checkpoints").exists()
    # a student with fewer positions than the records' sequences
    short = gd_args(pretrained_tiny, sst2_train, tmp_path / "b", max_position_embeddings="16")
    assert general_distill(short) == 1
    error = capsys.readouterr().err
    assert "has sequences of 32 tokens; the student has only 16 positions" in error


def teacher_checkpoint(path, labels, drop=()):
    vocab_size = BertTokenizer.from_vocab(ENGLISH_VOCAB).vocab_size
    model = BertForSequenceClassification(tiny_config(vocab_size, labels=labels))
    save_checkpoint(model, path)
    if drop:
        checkpoint = read_checkpoint(path)
        tensors = {k: v for k, v in checkpoint.tensors.items() if not k.startswith(drop)}
        write_checkpoint(path, tensors, checkpoint.config, checkpoint.architecture)
    return path


@pytest.mark.parametrize(
    "labels, drop, message",
    [
        (
            ["1", "0"],
            (),
            "predicts ['1', '0'], the data has ['0', '1'] (the same labels in another",
        ),
        (["negative", "positive"], (), "(other labels)"),
        (["0", "1"], ("classifier.",), "has a task head that was never trained"),
    ],
)
def test_task_teacher_must_be_fine_tuned_on_these_labels(
    tmp_path, sst2_train, capsys, labels, drop, message
):
    teacher = teacher_checkpoint(tmp_path / "teacher.ckpt", labels, drop)
    code = task_distill(
        [
            "--task_name",
            "sst2",
            "--load_teacher_ckpt_path",
            str(teacher),
            "--init_student_from_teacher_layers",
            "[0]",
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
    assert message in error and "Traceback" not in error


# ---- item 11: --help alone, output folders, launch failures -----------------------------------


def test_every_script_helps_without_other_flags(capsys):
    done = subprocess.run([console_script("tinybert-td"), "--help"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "--td_phase1_epoch_size" in done.stdout and "--task_name" in done.stdout
    assert "--overwrite False" in done.stdout
    for script in (general_distill, finetune):
        assert script(["--help"]) == 0
        assert "--resume False" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_code:
        launch(["--help"])
    assert exit_code.value.code == 0


def test_output_path_that_cannot_be_a_folder_is_one_line(
    tmp_path, pretrained_tiny, sst2_train, capsys
):
    a_file = tmp_path / "taken"
    a_file.write_text("not a folder")
    assert finetune(fine_tune_args(pretrained_tiny, sst2_train, a_file)) == 1
    error = capsys.readouterr().err
    assert f"save_ckpt_path {a_file} is a file, not a folder" in error
    assert "Traceback" not in error and a_file.read_text() == "not a folder"
    assert finetune(fine_tune_args(pretrained_tiny, sst2_train, a_file / "run")) == 1
    error = capsys.readouterr().err
    assert f"save_ckpt_path {a_file / 'run'}: cannot write there (Not a directory)" in error


def test_launch_reports_a_failed_worker_in_one_line(tmp_path, pretrained_tiny):
    port = free_port()
    done = subprocess.run(
        [
            console_script("tinybert-launch"),
            "--nproc",
            "2",
            "--master_port",
            str(port),
            "--log_dir",
            str(tmp_path / "logs"),
            "--",
            "tinybert-finetune",
            *fine_tune_args(pretrained_tiny, tmp_path / "no_records", tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode != 0
    assert "Traceback" not in done.stderr and "RuntimeError" not in done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("tinybert-launch: error: worker ")
    assert "no_records: data folder not found" in last and str(tmp_path / "logs") in last


# ---- item 12: a failed run says why in log.txt ------------------------------------------------


def test_failed_run_writes_its_error_into_log_txt(tmp_path, pretrained_tiny, sst2_train, capsys):
    # a learning rate that sends the weights to inf: the loss becomes NaN once the run is going
    output = tmp_path / "out"
    args = fine_tune_args(pretrained_tiny, sst2_train, output, "--learning_rate", "1e30")
    assert finetune(args) == 1
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith("tinybert-finetune: error: finetune: loss is nan at step ")
    assert error.endswith("; lower the learning rate")
    assert (output / "config.yaml").is_file()
    assert (output / "log.txt").read_text().splitlines()[-1].endswith(error)


# ---- issue 33: nothing is written before the inputs are known good ---------------------------


def refused_runs(tmp_path, pretrained_tiny, sst2_train, cluener_train):
    """(command, arguments, what the error says) of runs refused only after their inputs
    were read (the config itself is fine)."""
    return [
        (finetune, fine_tune_args(pretrained_tiny, tmp_path / "no_records", "OUT"), "not found"),
        (
            general_distill,
            gd_args(tmp_path / "no_teacher.ckpt", sst2_train, "OUT"),
            "checkpoint file not found",
        ),
        (general_distill, gd_args(pretrained_tiny, cluener_train, "OUT"), "-token vocabulary"),
        (
            general_distill,
            gd_args(pretrained_tiny, sst2_train, "OUT", num_attention_heads="4"),
            "attention heads",
        ),
        # 20 steps per epoch x 10,000,000 epochs: refused before its schedule is allocated
        (
            finetune,
            fine_tune_args(
                pretrained_tiny,
                sst2_train,
                "OUT",
                "--epoch_size",
                "10000000",
                "--train_steps",
                "-1",
            ),
            "is 200000000 steps, more than the 10000000 a run may plan",
        ),
        (
            finetune,
            fine_tune_args(pretrained_tiny, sst2_train, "OUT", "--common_cfg.batch_size", "400"),
            "320 rows is less than one batch of 400",
        ),
    ]


def test_refused_runs_write_nothing(tmp_path, pretrained_tiny, sst2_train, cluener_train, capsys):
    for index, (script, arguments, message) in enumerate(
        refused_runs(tmp_path, pretrained_tiny, sst2_train, cluener_train)
    ):
        output = tmp_path / f"out{index}"
        arguments = [str(output) if a == "OUT" else a for a in arguments]
        assert script(arguments) == 1
        console = capsys.readouterr().err.strip()
        assert "Traceback" not in console, console
        assert message in console.splitlines()[-1]  # the error, one line, after what was logged
        assert not output.exists(), console  # no folder, no config.yaml, no log.txt


def test_a_refused_overwrite_keeps_the_earlier_run(tmp_path, finished_run, pretrained_tiny, capsys):
    output = tmp_path / "run"
    shutil.copytree(finished_run, output)
    before = {p: p.read_bytes() for p in output.rglob("*") if p.is_file()}
    args = fine_tune_args(pretrained_tiny, tmp_path / "no_records", output, "--overwrite", "true")
    assert finetune(args) == 1
    assert "no_records: data folder not found" in capsys.readouterr().err
    assert {p: p.read_bytes() for p in output.rglob("*") if p.is_file()} == before


def test_a_student_too_large_for_the_machine_is_refused_before_it_is_built(
    tmp_path, pretrained_tiny, sst2_train, capsys
):
    output = tmp_path / "out"
    # 100,000 wide: 93 billion parameters, 1.4 TiB to train
    huge = gd_args(pretrained_tiny, sst2_train, output, hidden_size="100000")
    assert general_distill(huge) == 1
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert "bert_student_net_cfg describes a student of 9.31e+10 parameters" in error
    assert "GiB, more than this machine's" in error
    assert not output.exists()


# ---- issue 33: every file read is decoded with a one-line error naming it --------------------


def test_a_config_that_is_not_utf8_is_one_line(tmp_path, capsys):
    config = tmp_path / "latin1.yaml"
    config.write_bytes("# réglages\nepoch_size: 1\n".encode("latin-1"))
    assert finetune(["--config", str(config)]) == 1
    error = capsys.readouterr().err.strip()
    assert error == (
        f"tinybert-finetune: error: {config}: not UTF-8 text (byte 0xe9 at offset 3); "
        "save the config as UTF-8"
    )


@pytest.mark.parametrize(
    "contents, message",
    [
        (None, "config file not found"),
        ("[" * 5000 + "]" * 5000, "nested too deeply to be a config"),
        ("epoch_size: [1\n", "not valid YAML (while parsing a flow sequence"),
    ],
)
def test_unreadable_configs_are_one_line(tmp_path, capsys, contents, message):
    config = tmp_path / "config.yaml"
    if contents is None:  # a folder
        config.mkdir()
    else:
        config.write_text(contents, encoding="utf-8")
    code = finetune(["--config", str(config), "--save_ckpt_path", str(tmp_path / "out")])
    error = capsys.readouterr().err.strip()
    assert code == 1 and error.count("\n") == 0 and "Traceback" not in error, error
    assert message in error and str(config) in error
    assert not (tmp_path / "out").exists()


def test_records_vocabulary_that_is_not_utf8_is_one_line(
    tmp_path, pretrained_tiny, sst2_train, capsys
):
    records = tmp_path / "records"
    shutil.copytree(sst2_train, records)
    vocab = records / "vocab.txt"
    vocab.write_bytes(vocab.read_bytes().replace(b"[UNK]", b"[\xff\xfeK]", 1))
    output = tmp_path / "out"
    assert finetune(fine_tune_args(pretrained_tiny, records, output)) == 1
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith(f"tinybert-finetune: error: {vocab}: not UTF-8 text (byte 0xff")
    assert not output.exists()


def test_an_evaluation_batch_beyond_the_rows_is_not_allocated(tmp_path, sst2_dev, capsys):
    """--eval_cfg.batch_size 1e9 evaluates the 64 rows in one batch of 64 (it padded the row
    list to a billion entries)."""
    model = teacher_checkpoint(tmp_path / "model.ckpt", ["0", "1"])
    output = tmp_path / "eval"
    code = finetune(
        [
            *("--do_train", "false", "--load_ckpt_path", str(model)),
            *("--eval_data_dir", str(sst2_dev), "--eval_cfg.batch_size", "1e9"),
            *("--save_ckpt_path", str(output)),
        ]
    )
    assert code == 0, capsys.readouterr().err
    assert json.loads((output / "summary.json").read_text())["accuracy"] >= 0


def test_checkpoint_state_records_its_run(finished_run):
    """Every resumable checkpoint names the run that wrote it, with its settings and inputs."""
    for path in (finished_run / "checkpoints").glob("*.ckpt"):
        run = trainer_state(path)["run"]
        assert run["settings"]["seed"] == 1 and run["settings"]["world_size"] == 1
        assert run["settings"]["common_cfg.batch_size"] == 16
        assert len(run["inputs"]["train_data_dir"]) == 16 and run["inputs"]["eval_data_dir"] is None


def test_large_inputs_are_hashed_from_samples(tmp_path, monkeypatch):
    """Above runs.SAMPLED_ABOVE a file is hashed from evenly spaced samples and its size (a
    corpus of many GB would take seconds at every start): a copy hashes the same, a change of
    the size or inside a sample does not."""
    monkeypatch.setattr(runs, "SAMPLED_ABOVE", 0)
    monkeypatch.setattr(runs, "SAMPLE_BYTES", 64)
    contents = np.random.default_rng(0).integers(0, 256, 1 << 20, dtype=np.uint8).tobytes()
    for folder in ("a", "b", "changed", "longer"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "task.json").write_text("{}")
    (tmp_path / "a" / "shard").write_bytes(contents)
    (tmp_path / "b" / "shard").write_bytes(contents)
    (tmp_path / "changed" / "shard").write_bytes(contents[:-1] + bytes([contents[-1] ^ 1]))
    (tmp_path / "longer" / "shard").write_bytes(contents + b"\0")

    assert digest(tmp_path / "a") == digest(tmp_path / "b")
    assert digest(tmp_path / "changed") != digest(tmp_path / "a")
    assert digest(tmp_path / "longer") != digest(tmp_path / "a")
    whole = hashlib.sha256(contents).hexdigest()[:16]
    assert digest(tmp_path / "a" / "shard") != whole  # really not read whole


def as_an_earlier_version_wrote_them(output, state_of):
    """Give every checkpoint in `output` the trainer state `state_of(state)`."""
    for path in (output / "checkpoints").glob("*.ckpt"):
        saved = read_checkpoint(path)
        state = state_of(json.loads(saved.extra[TRAINER_STATE]))
        write_checkpoint(path, saved.tensors, saved.config, saved.architecture,
                         {**saved.extra, TRAINER_STATE: json.dumps(state)})  # fmt: skip


def without_run(state):  # before checkpoints recorded their run
    return {k: v for k, v in state.items() if k != "run"}


def without_bucket_lengths(state):  # before the bucket lengths joined the run's identity
    settings = {k: v for k, v in state["run"]["settings"].items() if k != "bucket_lengths"}
    return {**state, "run": {**state["run"], "settings": settings}}


@pytest.mark.parametrize("earlier", [without_run, without_bucket_lengths])
def test_a_run_an_earlier_version_began_is_not_resumed(
    tmp_path, finished_run, pretrained_tiny, sst2_train, capsys, earlier
):
    """Its checkpoints identified the run otherwise: --resume is refused in one line that says
    to start afresh, touching nothing, and --overwrite true starts afresh."""
    output = tmp_path / "run"
    shutil.copytree(finished_run, output)
    as_an_earlier_version_wrote_them(output, earlier)
    before = {p: p.read_bytes() for p in output.rglob("*") if p.is_file()}

    args = fine_tune_args(pretrained_tiny, sst2_train, output, "--seed", "1")
    assert finetune([*args, "--resume", "true"]) == 1
    error = capsys.readouterr().err.strip()
    assert error == (
        "tinybert-finetune: error: --resume true: checkpoints/finetune_step00000002.ckpt was "
        "written by an earlier version of tinybert-distill, whose runs this one cannot "
        "continue: start afresh with --overwrite true (deletes that run's checkpoints)"
    )
    assert {p: p.read_bytes() for p in output.rglob("*") if p.is_file()} == before

    assert finetune([*args, "--overwrite", "true"]) == 0
    config = yaml.safe_load((output / "config.yaml").read_text())
    for path in (output / "checkpoints").glob("*.ckpt"):  # this run's alone
        assert trainer_state(path)["run"]["id"] == run_identity(config)["id"]


def test_unlabelled_records_are_refused_for_training_and_evaluation(
    tmp_path, pretrained_tiny, sst2_train, capsys
):
    # SST-2's test.tsv has no labels: tinybert-data marks such records "labelled": false.
    test_set = write_records(
        SHARED_DATA / "sst2" / "test.tsv", 64, "sst2", ENGLISH_VOCAB, tmp_path / "test"
    )
    for train, dev in ((test_set, sst2_train), (sst2_train, test_set)):
        output = tmp_path / f"out_{train.name}_{dev.name}"
        arguments = fine_tune_args(pretrained_tiny, train, output)
        arguments[arguments.index("--do_eval") + 1] = "true"
        arguments += ["--eval_data_dir", str(dev)]
        assert finetune(arguments) == 1
        error = capsys.readouterr().err.strip().splitlines()[-1]
        assert f"{test_set}: the records are unlabelled" in error
