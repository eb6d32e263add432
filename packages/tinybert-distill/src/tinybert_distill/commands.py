"""What tinybert-gd, tinybert-td and tinybert-finetune do, given a resolved config.

Each function reads its inputs, builds teacher, student and loss network, and hands one
`Phase` per stretch of training to `trainer.run_phase`. Nothing is written until the inputs
are read and checked (`runs.start_output`), so a refused run leaves no trace. Console
handling (arguments, logging, errors) is in cli.py.
"""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path

import mindspore as ms
import numpy as np

from tinybert_core import LABELLED_COLUMNS, TEXT_COLUMNS
from tinybert_model import (
    BertModel,
    TinyBertStudent,
    load_checkpoint,
    load_model,
    read_checkpoint,
    save_checkpoint,
)

from .config import ConfigError
from .data import DataError, checkpoint_extras, load_dataset
from .distillers import DistillationLoss, FineTuneLoss, PredictionLoss
from .evaluation import evaluate
from .matches import general_distillation_matches, task_phase1_matches, task_phase2_matches
from .runs import bucket_lengths, prepare_output, start_output
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


def run_settings(config: dict, rank: int, world_size: int) -> Run:
    """The run's settings, checked (writing nothing): refuses another run's folder."""
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
        bucket_lengths=bucket_lengths(identity),
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


def evaluation_for(config: dict, dataset, best_path) -> Evaluation:
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


def _best_of(evaluation) -> dict:
    """The best score and every evaluation; "best" is null when nothing was evaluated (a run
    of phase 1 alone), which strict JSON readers accept and -Infinity they do not."""
    if evaluation is None:
        return {}
    best = evaluation.best if math.isfinite(evaluation.best) else None
    return {"best": best, "evaluations": evaluation.history}


def _summary(output_dir: Path, values: dict) -> None:
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


# ---- tinybert-gd -------------------------------------------------------------------------


def general_distillation(config: dict, rank: int = 0, world_size: int = 1) -> Path:
    """Distil a pretrained teacher into a general student on corpus records; returns gd.ckpt."""
    run = run_settings(config, rank, world_size)
    set_seed(run.seed)
    data = load_dataset(config["data_dir"], dataset_type=config["dataset_type"], need_labels=False)
    teacher = encoder_of(load_teacher(config["load_teacher_ckpt_path"], layers=True))
    check_vocab(teacher.config, data.task, "teacher", data.path)

    layers = config["init_student_from_teacher_layers"]
    if layers:
        model = BertModel(teacher_layers_config(teacher, layers))
        copy_teacher_layers(teacher, model, layers)
    else:
        student_config = general_student(config["bert_student_net_cfg"], teacher)
        check_memory_for(student_config, teacher.config.hidden_size)
        model = BertModel(student_config)
    student = TinyBertStudent(model, teacher.config.hidden_size)
    if layers:
        identity_fit_dense(student)
    check_distillable(teacher.config, model.config, data.task, data.path, layers=True)
    matches = general_distillation_matches(
        config, model.config.num_hidden_layers, teacher.config.num_hidden_layers
    )
    phase = Phase(
        "gd",
        DistillationLoss(teacher, student, matches=matches),
        student,
        TEXT_COLUMNS,
        epochs=int(config["epoch_size"]),
        max_steps=int(config["train_steps"]),
        **phase_settings(config["common_cfg"]),
    )
    check_plan(phase, data, run)
    run.model_extra = checkpoint_extras(data)
    start_output(config, rank)
    run_phase(phase, data, run)
    output = run.output_dir / "gd.ckpt"
    if run.is_main:
        save_checkpoint(student, output, run.model_extra)
        log.info("general student (with fit_dense) written to %s", output)
    return output


# ---- tinybert-td -------------------------------------------------------------------------


def task_distillation(config: dict, rank: int = 0, world_size: int = 1) -> dict:
    """Two-phase task distillation; returns the best evaluation result (empty without eval)."""
    run = run_settings(config, rank, world_size)
    set_seed(run.seed)
    train, evaluation_data, task_type, labels = task_data(config)
    datasets = [d for d in (train, evaluation_data) if d is not None]

    if not config["do_train"]:
        return _evaluate_only(config, config["load_td1_ckpt_path"], evaluation_data, run)

    skip_phase1 = bool(config["load_td1_ckpt_path"])
    teacher_path = config["load_teacher_ckpt_path"]
    if skip_phase1:  # phase 2 builds a teacher only for rows whose logits are not cached
        teacher, teacher_config = None, task_teacher_config(teacher_path, labels, task_type)
    else:  # phase 1 distils the teacher's layers: it returns them
        teacher = load_teacher(teacher_path, labels, task_type, layers=True)
        teacher_config = teacher.config
    for dataset in datasets:
        check_vocab(teacher_config, dataset.task, "teacher", dataset.path)
    teacher_hidden = teacher_config.hidden_size
    if skip_phase1:
        student = task_student(config["load_td1_ckpt_path"], labels, task_type, teacher_hidden)
    elif config["init_student_from_teacher_layers"]:
        layers = config["init_student_from_teacher_layers"]
        student_config = teacher_layers_config(encoder_of(teacher), layers)
        model = head_class(task_type)(with_task(student_config, labels, task_type))
        copy_teacher_layers(encoder_of(teacher), model.bert, layers)
        student = TinyBertStudent(model, teacher_hidden)
        identity_fit_dense(student)
    elif config["load_gd_ckpt_path"]:
        student = task_student(config["load_gd_ckpt_path"], labels, task_type, teacher_hidden)
    else:
        raise ConfigError(
            "set load_gd_ckpt_path (tinybert-gd output) or init_student_from_teacher_layers"
        )
    student_config = student.model.config
    check_distillable(teacher_config, student_config, train.task, train.path, not skip_phase1)
    phase1_matches = task_phase1_matches(
        config, student_config.num_hidden_layers, teacher_config.num_hidden_layers
    )
    max_steps = int(config["train_steps"])
    run.model_extra = checkpoint_extras(train)
    # Phase 2 learns from the teacher's logits, computed once per row (teacher_outputs.py);
    # regression learns from the labels and needs none.
    phase2_matches = task_phase2_matches(config, task_type)
    needs_logits = any(match.uses_teacher for match in phase2_matches)
    phase2 = Phase(
        "td_phase2",
        PredictionLoss(student, phase2_matches),
        student,
        (*LABELLED_COLUMNS, "teacher_logits") if needs_logits else LABELLED_COLUMNS,
        epochs=int(config["td_phase2_epoch_size"]),
        max_steps=max_steps,
        epochs_key="td_phase2_epoch_size",
        **phase_settings(config["phase2_cfg"]),
    )
    # phase 1 runs the same teacher on the same rows: it keeps their logits for phase 2, in
    # this run or (written beside td_phase1.ckpt) in a later one started from that checkpoint;
    # a sunk step hands nothing back per step
    phase1_logits = (
        PhaseLogits(train.num_rows, train.seq_length)
        if needs_logits and not skip_phase1 and not run.data_sink
        else None
    )
    needs_logits = needs_logits and phase2.epochs > 0
    if not skip_phase1:
        phase1 = Phase(
            "td_phase1",
            DistillationLoss(
                teacher,
                student,
                matches=phase1_matches,
                keep_teacher_logits=phase1_logits is not None,
            ),
            student,
            LABELLED_COLUMNS,
            epochs=int(config["td_phase1_epoch_size"]),
            max_steps=max_steps,
            epochs_key="td_phase1_epoch_size",
            keep_outputs=phase1_logits,
            **phase_settings(config["phase1_cfg"]),
        )
        check_plan(phase1, train, run)
    check_plan(phase2, train, run)
    # a teacher that learnt nothing is refused before anything is written (teacher_check.py);
    # it is checked where it is built, before phase 1
    teacher_score = None
    if not skip_phase1:
        teacher_score = score_teacher(
            teacher,
            task_type,
            train,
            evaluation_data,
            batch_size=int(config["eval_cfg"]["batch_size"]),
            length_buckets=run.length_buckets,
            keep=phase1_logits,
        )
        refuse_weak_teacher(teacher_score, teacher_path, config.get("allow_weak_teacher", False))
    start_output(config, rank)
    log_teacher_score(teacher_score, teacher_path, run)
    if not skip_phase1:
        run_phase(phase1, train, run)
        if run.is_main:
            save_checkpoint(student, run.output_dir / "td_phase1.ckpt", run.model_extra)
        if phase1_logits is not None and phase1_logits.done.any() and not needs_logits:
            teacher_logits(  # phase 1 alone: written for a phase-2 run from td_phase1.ckpt
                lambda: teacher,
                teacher_path,
                train,
                np.flatnonzero(phase1_logits.done),
                run.output_dir / CACHE_FILE,
                write=run.is_main,
                known=phase1_logits,
            )

    if needs_logits:
        phase2.cached["teacher_logits"] = teacher_logits(
            # a teacher that returns its logits alone (no layer outputs kept per batch), built
            # only if some row was neither cached nor handed over by phase 1
            lambda: load_teacher(teacher_path),
            teacher_path,
            train,
            phase_rows(phase2, train, run),
            run.output_dir / CACHE_FILE,
            batch_size=int(config["eval_cfg"]["batch_size"]),
            length_buckets=run.length_buckets,
            write=run.is_main,
            known=phase1_logits,
            earlier=Path(config["load_td1_ckpt_path"]).parent / CACHE_FILE if skip_phase1 else None,
        )
    evaluation = (
        evaluation_for(config, evaluation_data, run.output_dir / "best.ckpt")
        if evaluation_data
        else None
    )
    run_phase(phase2, train, run, evaluation)
    if run.is_main:
        save_checkpoint(student.model, run.output_dir / "td_phase2.ckpt", run.model_extra)
    result = _best_of(evaluation)
    if run.is_main:
        _summary(run.output_dir, result)
    return result


def _evaluate_only(config: dict, path, dataset, run: Run) -> dict:
    """--do_train false: score one checkpoint; the result also goes to summary.json."""
    if not path:
        raise ConfigError(
            "do_train is false: set load_td1_ckpt_path (or load_ckpt_path) to the checkpoint "
            "to evaluate"
        )
    model = load_model(path)
    check_vocab(model.config, dataset.task, "model", dataset.path)
    start_output(config, run.rank)
    result = evaluation_for(config, dataset, None).evaluate(model)
    log.info("%s on %s: %s", path, dataset.path, {k: v for k, v in result.items() if k != "main"})
    if run.is_main:
        _summary(run.output_dir, {"checkpoint": str(path), "data": str(dataset.path), **result})
    return result


# ---- tinybert-finetune -------------------------------------------------------------------


def fine_tune(config: dict, rank: int = 0, world_size: int = 1) -> dict:
    """Fine-tune a model on a task; best.ckpt is the teacher task distillation needs."""
    run = run_settings(config, rank, world_size)
    set_seed(run.seed)
    train, evaluation_data, task_type, labels = task_data(config)
    datasets = [d for d in (train, evaluation_data) if d is not None]
    if not config["do_train"]:
        return _evaluate_only(config, config["load_ckpt_path"], evaluation_data, run)
    if not config["load_ckpt_path"]:
        raise ConfigError("load_ckpt_path is not set (the model to fine-tune)")

    base = read_checkpoint(config["load_ckpt_path"])
    if base.config is None:
        raise ModelError(
            f"{config['load_ckpt_path']} has no embedded config (convert it with tinybert-convert)"
        )
    model = head_class(task_type)(with_task(base.config, labels, task_type))
    report = load_checkpoint(config["load_ckpt_path"], model, strict=False)
    if report.missing and not all(n.startswith("classifier.") for n in report.missing):
        raise ModelError(
            f"{config['load_ckpt_path']} lacks encoder tensors: {', '.join(report.missing[:5])}"
        )
    for dataset in datasets:
        check_vocab(model.config, dataset.task, "model", dataset.path)

    phase = Phase(
        "finetune",
        FineTuneLoss(model, task_type),
        model,
        LABELLED_COLUMNS,
        epochs=int(config["epoch_size"]),
        max_steps=int(config["train_steps"]),
        **phase_settings(config["common_cfg"]),
    )
    evaluation = (
        evaluation_for(config, evaluation_data, run.output_dir / "best.ckpt")
        if evaluation_data
        else None
    )
    check_plan(phase, train, run)
    run.model_extra = checkpoint_extras(train)
    start_output(config, rank)
    run_phase(phase, train, run, evaluation)
    if run.is_main:
        save_checkpoint(model, run.output_dir / "last.ckpt", run.model_extra)
    result = _best_of(evaluation)
    if run.is_main:
        _summary(run.output_dir, result)
    return result
