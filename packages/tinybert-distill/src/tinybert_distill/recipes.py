"""One recipe per command, read top to bottom: tinybert-gd (`GeneralDistillation`),
tinybert-td (`TaskDistillation`), tinybert-finetune (`FineTuning`), and `--do_train false`
(`ScoreCheckpoint`).

Every recipe does three things, as torchtune's recipes do:
- `setup`: check the config and the output folder once (runs.prepare_output), read the data,
  build teacher, student and loss networks and plan every phase (trainer.check_plan). It
  writes nothing, so a refused run leaves no trace.
- `train`: the first write (runs.start_output), then each phase, a `trainer.Phase` run by
  `trainer.run_phase` (the step loop).
- `save`: the final models and summary.json; returns what the command produced.

The functions at the end (`general_distillation(config)`, ...) are the Python API: each
runs its recipe. `task_distillation_recipe` and `fine_tuning_recipe` pick the recipe of a
config (`--do_train false` scores a checkpoint instead of training). Console handling
(arguments, logging, errors, signals) is in cli.py.
"""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path

import mindspore as ms
import numpy as np

from tinybert_core import LABELLED_COLUMNS, TEXT_COLUMNS, DataError
from tinybert_model import (
    BertModel,
    TinyBertStudent,
    load_checkpoint,
    load_model,
    read_checkpoint,
    save_checkpoint,
)

from .config import ConfigError, validate
from .data import checkpoint_extras, load_dataset
from .distillers import DistillationLoss, FineTuneLoss, PredictionLoss
from .evaluation import evaluate
from .matches import general_distillation_matches, task_phase1_matches, task_phase2_matches
from .runs import prepare_output, start_output
from .sink import use_sink
from .students import (
    ModelError,
    check_distillable,
    check_vocab,
    copy_teacher_layers,
    encoder_of,
    general_student,
    head_class,
    identity_fit_dense,
    load_teacher,
    task_student,
    task_teacher_config,
    teacher_layers_config,
    with_task,
)
from .teacher_check import log_teacher_score, refuse_weak_teacher, score_teacher
from .teacher_outputs import CACHE_FILE, PhaseLogits, teacher_logits
from .trainer import Evaluation, Phase, Run, check_plan, phase_rows, run_phase, set_seed

log = logging.getLogger("tinybert_distill")


class Recipe:
    """A command's run: `setup()`, `train()`, `save()`; `run()` does the three. The config is
    checked once, when the recipe is made (config.validate)."""

    def __init__(self, config: dict):
        self.config = validate(config)
        self.rank, self.world_size = 0, 1

    def run(self, rank: int = 0, world_size: int = 1):
        """Worker `rank` of `world_size` (data-parallel, cli.setup_context): set up, train,
        save; returns what the command produced."""
        self.rank, self.world_size = rank, world_size
        self.setup()
        self.train()
        return self.save()

    def setup(self) -> None:
        raise NotImplementedError

    def train(self) -> None:
        raise NotImplementedError

    def save(self):
        raise NotImplementedError


# ---- tinybert-gd -------------------------------------------------------------------------


class GeneralDistillation(Recipe):
    """A pretrained teacher teaches a general student on corpus records: one phase of
    attention and hidden-state losses; writes gd.ckpt (the student with its fit_dense)."""

    def setup(self) -> None:
        config = self.config
        self.run_settings = run_settings(config, self.rank, self.world_size)
        set_seed(self.run_settings.seed)
        self.data = load_dataset(
            config["data_dir"], dataset_type=config["dataset_type"], need_labels=False
        )
        teacher = encoder_of(load_teacher(config["load_teacher_ckpt_path"], layers=True))
        check_vocab(teacher.config, self.data.task, "teacher", self.data.path)

        layers = config["init_student_from_teacher_layers"]
        if layers:
            model = BertModel(teacher_layers_config(teacher, layers))
            copy_teacher_layers(teacher, model, layers)
        else:
            student_config = general_student(config["bert_student_net_cfg"], teacher)
            check_memory_for(student_config, teacher.config.hidden_size)
            model = BertModel(student_config)
        self.student = TinyBertStudent(model, teacher.config.hidden_size)
        if layers:
            identity_fit_dense(self.student)
        matches = general_distillation_matches(
            config, model.config.num_hidden_layers, teacher.config.num_hidden_layers
        )
        check_distillable(
            teacher.config, model.config, self.data.task, self.data.path, uses_attention(matches)
        )
        self.phase = Phase(
            "gd",
            DistillationLoss(teacher, self.student, matches=matches),
            self.student,
            TEXT_COLUMNS,
            epochs=int(config["epoch_size"]),
            max_steps=int(config["train_steps"]),
            **phase_settings(config["common_cfg"]),
        )
        check_plan(self.phase, self.data, self.run_settings)
        self.run_settings.model_extra = checkpoint_extras(self.data)

    def train(self) -> None:
        start_output(self.config, self.rank)
        run_phase(self.phase, self.data, self.run_settings)

    def save(self) -> Path:
        output = self.run_settings.output_dir / "gd.ckpt"
        if self.run_settings.is_main:
            save_checkpoint(self.student, output, self.run_settings.model_extra)
            log.info("general student (with fit_dense) written to %s", output)
        return output


# ---- tinybert-td -------------------------------------------------------------------------


class TaskDistillation(Recipe):
    """A fine-tuned teacher teaches the general student a task: phase 1 on attention and
    hidden states, phase 2 on the teacher's logits (regression: on the labels). Writes
    td_phase1.ckpt, td_phase2.ckpt, best.ckpt (with evaluation) and summary.json.

    `load_td1_ckpt_path` skips phase 1 and starts phase 2 from that student. Phase 2's
    teacher logits are computed once per row: by phase 1, which runs the teacher on the same
    rows anyway, or else by a teacher built for the rows no cache holds (teacher_outputs.py).
    """

    def setup(self) -> None:
        config = self.config
        self.run_settings = run = run_settings(config, self.rank, self.world_size)
        set_seed(run.seed)
        self.train_data, self.eval_data, task_type, labels = task_data(config)
        self.teacher_path = config["load_teacher_ckpt_path"]
        self.skip_phase1 = bool(config["load_td1_ckpt_path"])

        if self.skip_phase1:  # phase 2 builds a teacher only for rows no cache holds
            self.teacher = None
            teacher_config = task_teacher_config(self.teacher_path, labels, task_type)
        else:  # phase 1 distils the teacher's layers: it returns them
            self.teacher = load_teacher(self.teacher_path, labels, task_type, layers=True)
            teacher_config = self.teacher.config
        for dataset in (self.train_data, self.eval_data):
            if dataset is not None:
                check_vocab(teacher_config, dataset.task, "teacher", dataset.path)
        self.student = self._student(labels, task_type, teacher_config.hidden_size)
        student_config = self.student.model.config
        phase1_matches = (
            []
            if self.skip_phase1
            else task_phase1_matches(
                config, student_config.num_hidden_layers, teacher_config.num_hidden_layers
            )
        )
        check_distillable(
            teacher_config,
            student_config,
            self.train_data.task,
            self.train_data.path,
            uses_attention(phase1_matches),
        )

        # phase 2: learns from the teacher's logits, or (regression) from the labels alone
        phase2_matches = task_phase2_matches(config, task_type)
        self.phase2_uses_teacher = any(match.uses_teacher for match in phase2_matches)
        self.phase2 = Phase(
            "td_phase2",
            PredictionLoss(self.student, phase2_matches),
            self.student,
            (*LABELLED_COLUMNS, "teacher_logits") if self.phase2_uses_teacher else LABELLED_COLUMNS,
            epochs=int(config["td_phase2_epoch_size"]),
            max_steps=int(config["train_steps"]),
            epochs_key="td_phase2_epoch_size",
            **phase_settings(config["phase2_cfg"]),
        )
        # phase 1 runs the same teacher on the same rows: it keeps their logits for phase 2,
        # of this run or (written beside td_phase1.ckpt) of a later one started from that
        # checkpoint; a sunk step hands nothing back per step
        keeps_logits = self.phase2_uses_teacher and not self.skip_phase1 and not run.data_sink
        self.phase1_logits = (
            PhaseLogits(self.train_data.num_rows, self.train_data.seq_length)
            if keeps_logits
            else None
        )
        self.phase1 = None
        if not self.skip_phase1:
            self.phase1 = Phase(
                "td_phase1",
                DistillationLoss(
                    self.teacher,
                    self.student,
                    matches=phase1_matches,
                    keep_teacher_logits=keeps_logits,
                ),
                self.student,
                LABELLED_COLUMNS,
                epochs=int(config["td_phase1_epoch_size"]),
                max_steps=int(config["train_steps"]),
                epochs_key="td_phase1_epoch_size",
                keep_outputs=self.phase1_logits,
                **phase_settings(config["phase1_cfg"]),
            )
            check_plan(self.phase1, self.train_data, run)
        check_plan(self.phase2, self.train_data, run)
        run.model_extra = checkpoint_extras(self.train_data)

        # a teacher that learnt nothing is refused before anything is written
        # (teacher_check.py); it is scored where it is built, before phase 1
        self.teacher_score = None
        if not self.skip_phase1:
            self.teacher_score = score_teacher(
                self.teacher,
                task_type,
                self.train_data,
                self.eval_data,
                batch_size=int(config["eval_cfg"]["batch_size"]),
                length_buckets=run.length_buckets,
                keep=self.phase1_logits,
            )
            refuse_weak_teacher(
                self.teacher_score, self.teacher_path, config.get("allow_weak_teacher", False)
            )

    def _student(self, labels: list, task_type: str, teacher_hidden: int) -> TinyBertStudent:
        """The student phase 1 (or phase 2 alone) starts from: a phase-1 student, the teacher's
        own layers, or the general student (tinybert-gd's, or a downloaded general TinyBERT)."""
        config = self.config
        if self.skip_phase1:
            return task_student(config["load_td1_ckpt_path"], labels, task_type, teacher_hidden)
        layers = config["init_student_from_teacher_layers"]
        if layers:
            teacher_encoder = encoder_of(self.teacher)
            model_config = with_task(
                teacher_layers_config(teacher_encoder, layers), labels, task_type
            )
            model = head_class(task_type)(model_config)
            copy_teacher_layers(teacher_encoder, model.bert, layers)
            student = TinyBertStudent(model, teacher_hidden)
            identity_fit_dense(student)
            return student
        if config["load_gd_ckpt_path"]:
            return task_student(config["load_gd_ckpt_path"], labels, task_type, teacher_hidden)
        raise ConfigError(
            "set load_gd_ckpt_path (tinybert-gd output) or init_student_from_teacher_layers"
        )

    def train(self) -> None:
        run = self.run_settings
        start_output(self.config, self.rank)
        log_teacher_score(self.teacher_score, self.teacher_path, run)
        if self.phase1 is not None:
            run_phase(self.phase1, self.train_data, run)
            if run.is_main:
                save_checkpoint(self.student, run.output_dir / "td_phase1.ckpt", run.model_extra)
        phase2_trains = self.phase2.epochs > 0
        if self.phase1_logits is not None and not phase2_trains and self.phase1_logits.done.any():
            teacher_logits(  # phase 1 alone: written for a phase-2 run from td_phase1.ckpt
                lambda: self.teacher,
                self.teacher_path,
                self.train_data,
                np.flatnonzero(self.phase1_logits.done),
                run.output_dir / CACHE_FILE,
                write=run.is_main,
                known=self.phase1_logits,
            )
        if self.phase2_uses_teacher and phase2_trains:
            earlier_cache = Path(self.config["load_td1_ckpt_path"]).parent / CACHE_FILE
            self.phase2.cached["teacher_logits"] = teacher_logits(
                # a teacher that returns its logits alone (no layer outputs kept per batch),
                # built only if some row was neither cached nor handed over by phase 1
                lambda: load_teacher(self.teacher_path),
                self.teacher_path,
                self.train_data,
                phase_rows(self.phase2, self.train_data, run),
                run.output_dir / CACHE_FILE,
                batch_size=int(self.config["eval_cfg"]["batch_size"]),
                length_buckets=run.length_buckets,
                write=run.is_main,
                known=self.phase1_logits,
                earlier=earlier_cache if self.skip_phase1 else None,
            )
        self.evaluation = evaluation_for(self.config, self.eval_data, run.output_dir / "best.ckpt")
        run_phase(self.phase2, self.train_data, run, self.evaluation)

    def save(self) -> dict:
        """The best evaluation result (empty without evaluation)."""
        run = self.run_settings
        result = best_of(self.evaluation)
        if run.is_main:
            save_checkpoint(self.student.model, run.output_dir / "td_phase2.ckpt", run.model_extra)
            write_summary(run.output_dir, result)
        return result


# ---- tinybert-finetune -------------------------------------------------------------------


class FineTuning(Recipe):
    """Fine-tune a model on a task (a new head on any tinybert checkpoint's encoder);
    best.ckpt is the teacher task distillation needs. Writes best.ckpt, last.ckpt and
    summary.json."""

    def setup(self) -> None:
        config = self.config
        self.run_settings = run = run_settings(config, self.rank, self.world_size)
        set_seed(run.seed)
        self.train_data, self.eval_data, task_type, labels = task_data(config)
        path = config["load_ckpt_path"]
        if not path:
            raise ConfigError("load_ckpt_path is not set (the model to fine-tune)")
        base = read_checkpoint(path)
        if base.config is None:
            raise ModelError(f"{path} has no embedded config (convert it with tinybert-convert)")
        self.model = head_class(task_type)(with_task(base.config, labels, task_type))
        report = load_checkpoint(path, self.model, strict=False)
        if report.missing and not all(n.startswith("classifier.") for n in report.missing):
            raise ModelError(f"{path} lacks encoder tensors: {', '.join(report.missing[:5])}")
        for dataset in (self.train_data, self.eval_data):
            if dataset is not None:
                check_vocab(self.model.config, dataset.task, "model", dataset.path)

        self.phase = Phase(
            "finetune",
            FineTuneLoss(self.model, task_type),
            self.model,
            LABELLED_COLUMNS,
            epochs=int(config["epoch_size"]),
            max_steps=int(config["train_steps"]),
            **phase_settings(config["common_cfg"]),
        )
        check_plan(self.phase, self.train_data, run)
        run.model_extra = checkpoint_extras(self.train_data)

    def train(self) -> None:
        run = self.run_settings
        start_output(self.config, self.rank)
        self.evaluation = evaluation_for(self.config, self.eval_data, run.output_dir / "best.ckpt")
        run_phase(self.phase, self.train_data, run, self.evaluation)

    def save(self) -> dict:
        """The best evaluation result (empty without evaluation)."""
        run = self.run_settings
        result = best_of(self.evaluation)
        if run.is_main:
            save_checkpoint(self.model, run.output_dir / "last.ckpt", run.model_extra)
            write_summary(run.output_dir, result)
        return result


# ---- --do_train false --------------------------------------------------------------------


class ScoreCheckpoint(Recipe):
    """`tinybert-td` / `tinybert-finetune` with `--do_train false`: score the checkpoint that
    `checkpoint_key` names on eval_data_dir; the result also goes to summary.json."""

    def __init__(self, config: dict, checkpoint_key: str):
        super().__init__(config)
        self.checkpoint_key = checkpoint_key

    def setup(self) -> None:
        self.run_settings = run_settings(self.config, self.rank, self.world_size)
        _, self.eval_data, _, _ = task_data(self.config)
        self.path = self.config[self.checkpoint_key]
        if not self.path:
            raise ConfigError(
                f"do_train is false: set {self.checkpoint_key} to the checkpoint to evaluate"
            )
        self.model = load_model(self.path)
        check_vocab(self.model.config, self.eval_data.task, "model", self.eval_data.path)

    def train(self) -> None:
        start_output(self.config, self.rank)
        self.result = evaluation_for(self.config, self.eval_data, None).evaluate(self.model)
        shown = {k: v for k, v in self.result.items() if k != "main"}
        log.info("%s on %s: %s", self.path, self.eval_data.path, shown)

    def save(self) -> dict:
        if self.run_settings.is_main:
            scored = {"checkpoint": str(self.path), "data": str(self.eval_data.path)}
            write_summary(self.run_settings.output_dir, {**scored, **self.result})
        return self.result


# ---- the Python API ------------------------------------------------------------------------


def task_distillation_recipe(config: dict) -> Recipe:
    """tinybert-td's recipe: task distillation, or scoring load_td1_ckpt_path (do_train false)."""
    if config.get("do_train", True):
        return TaskDistillation(config)
    return ScoreCheckpoint(config, "load_td1_ckpt_path")


def fine_tuning_recipe(config: dict) -> Recipe:
    """tinybert-finetune's recipe: fine-tuning, or scoring load_ckpt_path (do_train false)."""
    if config.get("do_train", True):
        return FineTuning(config)
    return ScoreCheckpoint(config, "load_ckpt_path")


def general_distillation(config: dict, rank: int = 0, world_size: int = 1) -> Path:
    """tinybert-gd: returns the path of gd.ckpt."""
    return GeneralDistillation(config).run(rank, world_size)


def task_distillation(config: dict, rank: int = 0, world_size: int = 1) -> dict:
    """tinybert-td: returns the best evaluation result (empty without evaluation)."""
    return task_distillation_recipe(config).run(rank, world_size)


def fine_tune(config: dict, rank: int = 0, world_size: int = 1) -> dict:
    """tinybert-finetune: returns the best evaluation result (empty without evaluation)."""
    return fine_tuning_recipe(config).run(rank, world_size)


# ---- what the recipes share ------------------------------------------------------------------


def uses_attention(matches: list) -> bool:
    """Whether a phase compares attention scores (head by head: students.check_distillable)."""
    return any(match.feature == "attention" for match in matches)


def run_settings(config: dict, rank: int, world_size: int) -> Run:
    """The run's settings (writing nothing): refuses another run's folder
    (runs.prepare_output)."""
    identity = prepare_output(config, rank, world_size)
    data_sink = use_sink(config["enable_data_sink"], ms.get_context("device_target"))
    micro_batches = config["gradient_accumulation_steps"]  # "auto": per phase (trainer)
    if data_sink and micro_batches not in (1, "auto"):
        raise ConfigError(
            "--gradient_accumulation_steps above 1 needs the host feed: set --enable_data_sink "
            "false (a sunk step runs whole batches)"
        )
    return Run(
        output_dir=Path(config["save_ckpt_path"]),
        seed=int(config["seed"]),
        shuffle=bool(config["do_shuffle"]),
        save_ckpt_step=int(config["save_ckpt_step"]),
        max_ckpt_num=int(config["max_ckpt_num"]),
        resume=bool(config["resume"]),
        rank=rank,
        world_size=world_size,
        log_every=int(config["log_every"]),
        identity=identity,
        length_buckets=bool(config.get("length_buckets", True)),
        data_sink=data_sink,
        data_sink_steps=int(config["data_sink_steps"]),
        gradient_accumulation_steps=micro_batches,
    )


def phase_settings(block: dict) -> dict:
    """Batch size, loss scaling and optimizer of a common_cfg / phaseN_cfg block."""
    optimizer = block.get("optimizer_cfg", block)["AdamWeightDecay"]
    return dict(
        batch_size=int(block["batch_size"]),
        optimizer=optimizer,
        loss_scale_value=float(block["loss_scale_value"]),
        scale_factor=float(block["scale_factor"]),
        scale_window=int(block["scale_window"]),
    )


def task_of(config: dict, *datasets) -> tuple:
    """(task name, task type, labels) from the data's task.json, checked against the config."""
    task = datasets[0].task
    if not task.get("labels"):
        raise DataError(
            f"{datasets[0].path}: no task.json with labels (write it with `tinybert-data task`)"
        )
    for other in datasets[1:]:
        if other.task.get("labels") != task["labels"]:
            raise DataError(
                f"{other.path} has labels {other.task.get('labels')}, "
                f"{datasets[0].path} {task['labels']}"
            )
    name = config.get("task_name") or task["task"]
    if config.get("task_name") and task.get("task") and config["task_name"] != task["task"]:
        raise ConfigError(
            f"task_name is {config['task_name']} but {datasets[0].path} holds {task['task']} data"
        )
    task_type = config.get("task_type") or task["task_type"]
    return name, task_type, list(task["labels"])


def task_data(config: dict) -> tuple:
    """(train data or None, evaluation data or None, task type, labels) of a task command."""
    kind = config["dataset_type"]
    train = (
        load_dataset(config["train_data_dir"], dataset_type=kind) if config["do_train"] else None
    )
    evaluation_data = (
        load_dataset(config["eval_data_dir"], dataset_type=kind) if config["do_eval"] else None
    )
    datasets = [d for d in (train, evaluation_data) if d is not None]
    if not datasets:
        raise ConfigError("nothing to do: do_train and do_eval are both false")
    _, task_type, labels = task_of(config, *datasets)
    return train, evaluation_data, task_type, labels


def evaluation_for(config: dict, dataset, best_path) -> Evaluation | None:
    """Evaluation on `dataset` (None: no evaluation data, do_eval false), the best model
    written to `best_path`."""
    if dataset is None:
        return None
    batch_size = int(config["eval_cfg"]["batch_size"])
    metric = config.get("assessment_method")
    length_buckets = bool(config.get("length_buckets", True))

    def run(model):
        result = evaluate(model, dataset, batch_size, length_buckets)
        if metric:
            if metric not in result:
                raise ConfigError(
                    f"assessment_method {metric!r}: the task reports {sorted(result)}"
                )
            result["main"] = metric
        return result

    return Evaluation(run, every=int(config["eval_step"]), best_path=best_path)


def best_of(evaluation) -> dict:
    """The best score and every evaluation; "best" is null when nothing was evaluated (a run
    of phase 1 alone), which strict JSON readers accept and -Infinity they do not."""
    if evaluation is None:
        return {}
    best = evaluation.best if math.isfinite(evaluation.best) else None
    return {"best": best, "evaluations": evaluation.history}


def write_summary(output_dir: Path, values: dict) -> None:
    # numpy scalars from the metrics are written as plain numbers
    text = json.dumps(values, indent=2, default=float)
    (output_dir / "summary.json").write_text(text + "\n", encoding="utf-8")


def check_memory_for(config, teacher_hidden: int) -> None:
    """Refuse a student too large to train on this machine before it is built: its float32
    weights, gradients and Adam's two moments alone would not fit in the memory there is
    (a `hidden_size` typed with three zeros too many would otherwise allocate until killed)."""
    hidden, ffn = config.hidden_size, config.intermediate_size
    embeddings = config.vocab_size + config.max_position_embeddings + config.type_vocab_size + 2
    layer = 4 * (hidden + 1) * hidden + 2 * hidden * ffn + ffn + 5 * hidden
    parameters = (
        embeddings * hidden
        + config.num_hidden_layers * layer
        + (hidden + 1) * hidden  # pooler
        + (hidden + 1) * teacher_hidden  # fit_dense
    )
    needed = 16 * parameters
    memory = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    if needed > memory:
        raise ConfigError(
            f"bert_student_net_cfg describes a student of {parameters:.3g} parameters: its "
            f"weights, gradients and Adam moments alone need {needed / 2**30:.1f} GiB, more than "
            f"this machine's {memory / 2**30:.1f} GiB"
        )
