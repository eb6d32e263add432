"""Console scripts: tinybert-gd, tinybert-td, tinybert-finetune.

    tinybert-gd --config gd_config.yaml --load_teacher_ckpt_path teacher.ckpt --data_dir corpus/
    tinybert-td --task_name sst2 --load_teacher_ckpt_path sst2_teacher.ckpt \\
        --load_gd_ckpt_path gd_output/gd.ckpt --train_data_dir sst2/train --eval_data_dir sst2/dev
    tinybert-finetune --task_name sst2 --load_ckpt_path teacher.ckpt --train_data_dir ...

Every config key is also a flag (`--help` lists them with their values). Errors in the
input (files, config keys and values, shapes that don't fit, an output folder holding
another run) end with a one-line message and exit code 1, no stack trace, and nothing
written; once the run has started, the message is also the last line of log.txt.

SIGTERM (what `timeout`, schedulers and container runtimes send before they kill) and
Ctrl-C stop a run after the step under way: its state is saved, one line says how to go on
(`--resume true`), and the exit code is 128 + the signal's number (143, 130).
"""

from __future__ import annotations

import logging
import os
import sys
import time
import traceback
from pathlib import Path

from tqdm import tqdm

from tinybert_core import DataError
from tinybert_data import TASK_READERS, RecordsError
from tinybert_model import CheckpointError

from .config import (
    ConfigError,
    apply_overrides,
    describe,
    find_config,
    load_config,
    packaged_config,
)
from .recipes import GeneralDistillation, fine_tuning_recipe, task_distillation_recipe
from .runs import LOGGERS, RunError, log_txt
from .students import ModelError
from .trainer import Stopped, stop_on_signals

log = logging.getLogger("tinybert_distill")

USER_ERRORS = (
    ConfigError,
    DataError,
    ModelError,
    CheckpointError,
    RunError,
    RecordsError,  # a corrupt record met mid-run: shard and record number, before its step
    OSError,  # a full disk, a folder that cannot be written: one line naming the file
    FloatingPointError,
)


class _TqdmHandler(logging.StreamHandler):
    """Log lines that don't tear the progress bar."""

    def emit(self, record):
        tqdm.write(self.format(record), file=sys.stderr)


def _setup_logging() -> None:
    """Log lines to the console (through tqdm), for every worker; worker 0 adds log.txt
    once the run starts (runs.start_output)."""
    console = _TqdmHandler()
    console.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
    for name in LOGGERS:
        logger = logging.getLogger(name)
        for old in logger.handlers:
            old.close()
        logger.handlers = [console]
        logger.setLevel(logging.INFO)
        logger.propagate = False


def setup_context(config: dict) -> tuple:
    """MindSpore mode and device; data-parallel init under msrun / a rank table. (rank, size)"""
    import mindspore as ms

    mode = {"GRAPH": ms.GRAPH_MODE, "PYNATIVE": ms.PYNATIVE_MODE}.get(
        str(config["ms_mode"]).upper()
    )
    if mode is None:
        raise ConfigError(f"ms_mode must be GRAPH or PYNATIVE, not {config['ms_mode']!r}")
    target = str(config["device_target"])
    if target not in ("CPU", "GPU", "Ascend"):
        raise ConfigError(f"device_target must be CPU, GPU or Ascend, not {target!r}")
    ms.set_context(mode=mode)
    try:
        ms.set_device(target, int(config["device_id"]) if target != "CPU" else None)
    except RuntimeError:
        # The device is fixed once MindSpore has run a kernel; a second command in the same
        # Python process (tests, notebooks) can only go on with the same one.
        if ms.get_context("device_target") != target:
            raise ConfigError(
                f"device_target {target}: this process already runs on "
                f"{ms.get_context('device_target')}"
            ) from None
    # msrun sets MS_WORKER_NUM; Ascend rank-table launches set RANK_SIZE.
    workers = int(os.environ.get("MS_WORKER_NUM", os.environ.get("RANK_SIZE", "1")))
    if workers <= 1:
        return 0, 1
    from mindspore.communication import get_group_size, get_rank, init

    init()
    ms.set_auto_parallel_context(
        parallel_mode=ms.ParallelMode.DATA_PARALLEL,
        gradients_mean=True,
        device_num=get_group_size(),
    )
    return get_rank(), get_group_size()


def _run(prog: str, summary: str, default_config: str, make_recipe, argv) -> int:
    """A command's console run: its config (file, then --key value flags) checked as
    `make_recipe` makes its recipe, then the recipe run on this worker."""
    argv = list(sys.argv[1:] if argv is None else argv)
    show_help = "-h" in argv or "--help" in argv
    argv = [a for a in argv if a not in ("-h", "--help")]
    try:
        config_text = _pop_config(argv)
        config_path = (
            find_config(config_text)
            if config_text
            else packaged_config(_default_config(default_config, argv, show_help))
        )
        config = load_config(config_path)
        if show_help:
            print(f"usage: {prog} [--config PATH] [--KEY VALUE ...]\n\n{summary}\n")
            print(f"--config PATH   YAML config, or a packaged one's name (default: {config_path})")
            if default_config == "td_config":
                print(
                    f"--task_name     {', '.join(TASK_READERS)}: the packaged td_config/TASK.yaml "
                    "(td_config.yaml with the task's defaults), td_config.yaml if it has none"
                )
            print("Every key below can be set as --KEY VALUE (dotted for nested keys):\n")
            print(describe(config))
            return 0
        recipe = make_recipe(apply_overrides(config, argv))  # checks every value
    except (ConfigError, OSError) as error:
        print(f"{prog}: error: {error}", file=sys.stderr)
        return 1

    output_dir = Path(config["save_ckpt_path"])
    _setup_logging()
    try:
        with stop_on_signals():
            rank, world_size = setup_context(config)
            if world_size > 1:
                log.info("%s: worker %d of %d", prog, rank, world_size)
            recipe.run(rank, world_size)  # writes nothing until its inputs are checked
    except USER_ERRORS as error:
        return _stop(prog, f"{prog}: error: {_one_line(error)}", 1)
    except Stopped as stop:
        where = f" after {stop.phase} step {stop.step}, its state saved" if stop.phase else ""
        return _stop(
            prog,
            f"{prog}: stopped by {stop.signal_name}{where}; continue with --resume true",
            stop.exit_code,
        )
    except KeyboardInterrupt:  # Ctrl-C while Python's own handler was in place
        return _stop(prog, f"{prog}: interrupted; continue with --resume true", 130)
    except Exception:
        # a bug, not bad input: the traceback goes to the console and into log.txt
        _note_in_log(f"{prog}: failed\n{traceback.format_exc()}")
        raise
    log.info("%s: done; outputs in %s", prog, output_dir)
    return 0


def _stop(prog: str, message: str, code: int) -> int:
    """End with one line on the console (and in log.txt once the run started)."""
    print(message, file=sys.stderr)
    _note_in_log(message)
    return code


def _one_line(error: Exception) -> str:
    """An OSError names its file ("path: No space left on device"); others are one line."""
    if isinstance(error, OSError) and error.strerror:
        return f"{error.filename}: {error.strerror}" if error.filename else error.strerror
    return str(error)


def _note_in_log(message: str) -> None:
    """Append why the run stopped to the run's log.txt, if it started (best effort: the disk
    may be what failed)."""
    path = log_txt()
    if path is None:
        return
    try:
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}\n")
    except OSError:
        pass


def _pop_config(argv: list):
    for index, argument in enumerate(argv):
        if argument == "--config" or argument == "--config_path":
            if index + 1 >= len(argv):
                raise ConfigError(f"{argument} needs a path")
            path = argv[index + 1]
            del argv[index : index + 2]
            return path
        if argument.startswith(("--config=", "--config_path=")):
            del argv[index]
            return argument.split("=", 1)[1]
    return None


def _default_config(default: str, argv: list, show_help: bool = False) -> str:
    """tinybert-td --task_name qnli uses the packaged td_config/qnli.yaml (the model zoo's
    per-task file: td_config.yaml with qnli's defaults) when there is one, else td_config.yaml,
    whose task_name the flag sets (--help alone shows td_config.yaml's keys, every task's)."""
    if default != "td_config":
        return default
    for index, argument in enumerate(argv):
        if argument == "--task_name" and index + 1 < len(argv):
            return _task_config(argv[index + 1])
        if argument.startswith("--task_name="):
            return _task_config(argument.split("=", 1)[1])
    if show_help:
        return "td_config"
    raise ConfigError(
        f"pass --task_name ({', '.join(TASK_READERS)}) or --config (a file, or "
        "td_config: the task from the data's task.json)"
    )


def _task_config(task_name: str) -> str:
    name = f"td_config/{task_name.lower().replace('-', '')}"
    try:
        packaged_config(name)
    except ConfigError:  # a task without a file of its own: td_config with --task_name
        return "td_config"
    return name


def general_distill(argv=None) -> int:
    return _run(
        "tinybert-gd",
        "General distillation: a pretrained teacher teaches a small student on a text corpus.",
        "gd_config",
        GeneralDistillation,
        argv,
    )


def task_distill(argv=None) -> int:
    return _run(
        "tinybert-td",
        "Task distillation: a fine-tuned teacher teaches the general student a task, "
        "phase 1 on attention and hidden states, phase 2 on predictions.",
        "td_config",
        task_distillation_recipe,
        argv,
    )


def finetune(argv=None) -> int:
    return _run(
        "tinybert-finetune",
        "Fine-tune a BERT (the teacher task distillation needs) on a task.",
        "finetune_config",
        fine_tuning_recipe,
        argv,
    )
