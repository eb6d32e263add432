"""The training loop every command shares: general distillation, both task-distillation
phases and fine-tuning are each one `Phase` run by `run_phase`.

Per step: take this worker's rows of the epoch's order (cut to the batch's length bucket,
see data.py), run the compiled TrainStep, log. The next step's rows are read in a thread
while a step runs (`read_ahead`). With `data_sink` (enable_data_sink on GPU/Ascend, see
sink.py) the batches reach the device through MindSpore's dataset engine instead, and the
host reads the loss back every `data_sink_steps` steps.
Every `save_ckpt_step` steps (and at the end) rank 0 writes a resumable checkpoint: the
trained model, the optimizer's moments and step, the loss scale and the loop's own state.
`resume=True` continues from the newest one with the same data order, learning-rate
schedule and loss scale. (Dropout masks are drawn by MindSpore's kernels, whose random
state lives inside the compiled graph and cannot be restored: with dropout on, a resumed
run matches an uninterrupted one in everything but those masks.)

With gradient accumulation (`Run.gradient_accumulation_steps` N) a step is N micro-batches
of batch_size/N rows, then one update (optimization.TrainStep); steps, checkpoints and the
learning-rate schedule count updates. "auto" (the default) picks N per phase on the CPU, where
a compiled graph's memory grows with the rows it runs at once (`micro_batches_per_step`).

SIGTERM and Ctrl-C (`stop_on_signals`) stop a run gracefully: the step under way finishes (with
accumulation, the micro-batch under way), rank 0 saves its state, and `Stopped` says where;
`resume=True` then continues exactly there, between two micro-batches too.
"""

from __future__ import annotations

import json
import logging
import math
import signal
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import mindspore as ms
import numpy as np
from mindspore import Tensor, nn
from tqdm import tqdm

from tinybert_core import DataError
from tinybert_data.prefetch import ahead
from tinybert_model import named_parameters, read_checkpoint, save_checkpoint, write_checkpoint

from .config import MAX_STEPS, ConfigError
from .data import (
    Dataset,
    batch_rows,
    bucket_length,
    bucketed_order,
    epoch_order,
    steps_per_epoch,
    trim,
)
from .optimization import TrainStep, build_optimizer, learning_rates
from .runs import (
    LOG_TXT,
    TRAINER_STATE,
    RunError,
    checkpoint_path,
    is_own,
    remember_state,
    saved_checkpoints,
)
from .sink import SinkFeed

log = logging.getLogger("tinybert_distill")


@dataclass
class Phase:
    """One stretch of training with its own optimizer and schedule."""

    name: str  # file names and logs: "gd", "td_phase1", "td_phase2", "finetune"
    loss_net: nn.Cell  # inputs -> scalar loss
    model: nn.Cell  # what is trained and saved (a student, or the model being fine-tuned)
    inputs: tuple  # dataset columns (or `cached` names), in the loss network's argument order
    epochs: int
    batch_size: int
    optimizer: dict  # an AdamWeightDecay block: learning_rate, end_learning_rate, ...
    loss_scale_value: float = 1.0
    scale_factor: float = 2.0
    scale_window: int = 1000
    max_steps: int = -1  # stop early (train_steps); -1: all epochs
    epochs_key: str = "epoch_size"  # the config key of `epochs`, for messages
    cached: dict = field(default_factory=dict)  # name -> array by row, e.g. teacher_logits
    # called after each step with this worker's rows and the loss network's extra outputs
    # (numpy), e.g. teacher_outputs.PhaseLogits; host-fed steps only (not with data_sink)
    keep_outputs: Callable | None = None


@dataclass
class Run:
    """Settings that hold for every phase of a command."""

    output_dir: Path
    seed: int = 0
    shuffle: bool = True
    save_ckpt_step: int = 100
    max_ckpt_num: int = 1
    resume: bool = False
    rank: int = 0
    world_size: int = 1
    log_every: int = 1  # steps between lines in log.txt
    identity: dict | None = None  # runs.run_identity: which checkpoints are this run's
    length_buckets: bool = True  # pad each batch to its length bucket, not to seq_length
    read_ahead: bool = True  # read step n + 1's rows in a thread while step n runs
    data_sink: bool = False  # feed through mindspore.dataset (sink.py); batches at seq_length
    data_sink_steps: int = 1  # with data_sink: steps between reading the loss back
    gradient_accumulation_steps: int | str = "auto"  # micro-batches per step (one update)
    # string entries of saved models (task_info, vocab)
    model_extra: dict = field(default_factory=dict)

    @property
    def is_main(self) -> bool:
        return self.rank == 0


@dataclass
class Evaluation:
    """Evaluate every `every` steps (0: at the end of each epoch); keep the best model."""

    evaluate: Callable  # model -> result dict with "main" naming the value to maximise
    every: int = 0
    best_path: Path | None = None
    best: float = -math.inf
    history: list = field(default_factory=list)


# ---- stopping on a signal ---------------------------------------------------------------


class Stopped(Exception):
    """The run stopped on a signal; `step` is where its state was saved (None: nothing was
    training, or a second signal did not wait for the step under way)."""

    def __init__(self, signal_name: str, phase: str | None = None, step: int | None = None):
        super().__init__(signal_name, phase, step)
        self.signal_name, self.phase, self.step = signal_name, phase, step

    @property
    def exit_code(self) -> int:
        return 128 + signal.Signals[self.signal_name].value  # as a shell reports a signal


class _StopRequest:
    """What SIGTERM or SIGINT asked of the run (`STOP`).

    While a phase trains, the first signal only sets `signal`: the loop finishes the step
    under way, saves and raises Stopped (the compiled step runs outside Python, so the handler
    runs when it returns). Outside training, or at a second signal, the handler raises
    Stopped at once: a checkpoint already holds everything done.
    """

    def __init__(self):
        self.signal: str | None = None
        self.training = False

    def handle(self, number, frame) -> None:
        name = signal.Signals(number).name
        if self.training and self.signal is None:
            self.signal = name
            log.info("%s: stopping after the step under way (send it again to stop at once)", name)
            return
        raise Stopped(name)


STOP = _StopRequest()
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)  # what `timeout`, schedulers, Ctrl-C send


@contextmanager
def stop_on_signals():
    """Within: SIGTERM and Ctrl-C stop the run gracefully (see _StopRequest). Main thread
    only (Python delivers signals there); elsewhere a no-op."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = {number: signal.signal(number, STOP.handle) for number in STOP_SIGNALS}
    try:
        yield
    finally:
        for number, handler in before.items():
            signal.signal(number, handler)
        STOP.signal, STOP.training = None, False


class _StoppedMidStep(Exception):
    """Raised by HostFeed between two micro-batches of a step when a stop was asked for."""

    def __init__(self, micro_step: int):
        super().__init__(micro_step)
        self.micro_step = micro_step


# ---- the loop ----------------------------------------------------------------------------


def check_plan(phase: Phase, data: Dataset, run: Run) -> None:
    """Refuse a phase the data cannot fill or that plans absurdly many steps, before anything
    is written or allocated (the schedule holds one learning rate per step)."""
    if phase.epochs:
        _steps(phase, data, run)


# On the CPU a compiled graph gives every intermediate tensor a buffer of its own for the life
# of the process (MindSpore's graph memory reuse serves GPU and Ascend, not exercised here), so
# a step holds memory in proportion to the rows it runs at once: about 140 MB a row for
# TinyBERT-4 learning from MiniLM at 128 tokens. "auto" caps a micro-batch at 2048 tokens (16
# rows of 128): route B's general distillation at batch 64 then holds about as much as
# PyTorch's step, for a few percent more time (docs/RESULTS.md, "General distillation memory").
AUTO_MICRO_BATCH_TOKENS = 2048


def micro_batches_per_step(setting, batch_size: int, seq_length: int, device_target: str) -> int:
    """Micro-batches per step: `setting` itself, or for "auto" on the CPU the fewest that cut
    batch_size into equal micro-batches of at most AUTO_MICRO_BATCH_TOKENS tokens of
    seq_length (at least one row each); "auto" is 1 on GPU and Ascend."""
    if setting != "auto":
        return int(setting)
    if device_target != "CPU":
        return 1
    most_rows = max(1, AUTO_MICRO_BATCH_TOKENS // seq_length)
    return next(
        n for n in range(1, batch_size + 1) if batch_size % n == 0 and batch_size // n <= most_rows
    )


def run_phase(phase: Phase, data: Dataset, run: Run, evaluation: Evaluation | None = None) -> None:
    """Train `phase.model` on `data`; resumable, logged, checkpointed."""
    run = replace(
        run,
        gradient_accumulation_steps=micro_batches_per_step(
            run.gradient_accumulation_steps,
            phase.batch_size,
            data.seq_length,
            ms.get_context("device_target"),
        ),
    )
    global_batch = phase.batch_size * run.world_size
    per_epoch, total = _steps(phase, data, run)
    if total == 0:
        log.info("%s: 0 epochs, skipped", phase.name)
        return
    rates = learning_rates(total, phase.optimizer)
    optimizer = build_optimizer(phase.model.trainable_params(), rates, phase.optimizer)
    step_cell = TrainStep(
        phase.loss_net,
        optimizer,
        phase.loss_scale_value,
        phase.scale_factor,
        phase.scale_window,
        data_parallel=run.world_size > 1,
        accumulation_steps=run.gradient_accumulation_steps,
    )
    phase.model.set_train(True)
    state = _resume(phase, step_cell, run) if run.resume else {"step": 0}
    start = state["step"]
    if evaluation and "best" in state:
        evaluation.best = state["best"]
    micro_batches = run.gradient_accumulation_steps
    log.info(
        "%s: %d rows, %d steps per epoch, %d epochs, %d steps%s%s",
        phase.name,
        data.num_rows,
        per_epoch,
        phase.epochs,
        total,
        f" of {micro_batches} micro-batches of {phase.batch_size // micro_batches} rows"
        if micro_batches > 1
        else "",
        f", resuming at step {start}" if start else "",
    )
    if state.get("micro_step"):
        log.info(
            "%s: step %d resumes after its micro-batch %d",
            phase.name,
            start + 1,
            state["micro_step"],
        )
    if start >= total:
        return

    progress = tqdm(
        total=total,
        initial=start,
        desc=phase.name,
        disable=not run.is_main,
        dynamic_ncols=True,
        unit="step",
    )
    batch_of = StepBatches(phase, data, run, fixed_shape=run.data_sink)
    keep_outputs = phase.keep_outputs if not run.data_sink else None
    if keep_outputs is not None:
        rows_of = StepBatches(phase, data, run)  # the main thread's own: batch_of reads ahead
    if run.data_sink:
        log.info(
            "%s: data sink, %d steps per sink, every batch padded to seq_length %d",
            phase.name,
            run.data_sink_steps,
            data.seq_length,
        )
        # the host hears back at checkpoints, evaluations and epoch ends, as without sinking
        boundaries = (per_epoch, run.save_ckpt_step, evaluation.every if evaluation else 0)
        feed = SinkFeed(
            step_cell, batch_of, start, total, phase.inputs, run.data_sink_steps, boundaries
        )
    else:
        feed = HostFeed(
            step_cell,
            batch_of,
            start,
            total,
            run.read_ahead,
            micro_batches,
            state.get("micro_step", 0),
        )
    started = time.perf_counter()
    step = start

    def best():
        return evaluation.best if evaluation else None

    STOP.training = True
    try:
        # `done` steps are done: after every step (a sunk run: after each sink's steps)
        for done, outputs in feed:
            count, step = done - step, done
            loss, finite, scale = (
                outputs[0].asnumpy().item(),
                bool(outputs[1].asnumpy().item()),
                outputs[2].asnumpy().item(),
            )
            # a step resumed between its micro-batches has no extras of the earlier ones
            if keep_outputs is not None and len(outputs) > 3:
                keep_outputs(rows_of.rows(done - 1), [_numpy(x) for x in outputs[3:]])
            speed = (done - start) * global_batch / (time.perf_counter() - started)
            rate = float(rates[done - 1])
            epoch = (done - 1) // per_epoch
            if not math.isfinite(loss):
                raise FloatingPointError(
                    f"{phase.name}: loss is {loss} at step {done}; lower the learning rate"
                )
            progress.update(count)
            progress.set_postfix(
                loss=f"{loss:.4f}", lr=f"{rate:.2e}", ex_s=f"{speed:.1f}", refresh=False
            )
            logs = done // run.log_every != (done - count) // run.log_every
            if run.is_main and (logs or done == total):
                _log_step(run, phase.name, epoch + 1, done, loss, finite, scale, rate, speed)

            end_of_epoch = done % per_epoch == 0
            if evaluation and (
                (evaluation.every and done % evaluation.every == 0)
                or (not evaluation.every and end_of_epoch)
                or done == total
            ):
                _evaluate(evaluation, phase, run, done)
                phase.model.set_train(True)
            saves = done % run.save_ckpt_step == 0 or done == total
            if run.is_main and (saves or STOP.signal):
                _save_state(phase, step_cell, run, done, best())
            if STOP.signal:
                raise Stopped(STOP.signal, phase.name, done)
    except _StoppedMidStep as stop:  # between two micro-batches of step + 1
        if run.is_main:
            _save_state(phase, step_cell, run, step, best(), stop.micro_step)
        raise Stopped(STOP.signal, phase.name, step) from None
    finally:
        STOP.training = False
        feed.close()
        progress.close()


def _numpy(value) -> np.ndarray:
    return value.asnumpy() if isinstance(value, Tensor) else value


class StepBatches:
    """This worker's arrays of a phase's steps, by step number: `batch_of(step)`.

    The epoch's order is computed when the step's epoch changes, so the batches are a pure
    function of (seed, step) wherever a run starts. `fixed_shape`: batches at seq_length,
    not cut to their length bucket (a sunk graph takes one shape; the rows stay the same).
    One caller at a time (the read-ahead thread, or the dataset engine's one worker).
    """

    def __init__(self, phase: Phase, data: Dataset, run: Run, fixed_shape: bool = False):
        self.phase, self.data, self.run = phase, data, run
        self.fixed_shape = fixed_shape
        self.global_batch = phase.batch_size * run.world_size
        self.per_epoch = steps_per_epoch(data.num_rows, phase.batch_size, run.world_size)
        self._epoch, self._order = None, None

    def __call__(self, step: int) -> list:
        epoch, step_in_epoch = divmod(step, self.per_epoch)
        return step_inputs(
            self.phase,
            self.data,
            self.run,
            self._order_of(epoch),
            step_in_epoch,
            cut=not self.fixed_shape,
        )

    def rows(self, step: int) -> np.ndarray:
        """This worker's rows of `step`, in the order its arrays hold them."""
        epoch, step_in_epoch = divmod(step, self.per_epoch)
        return batch_rows(
            self._order_of(epoch),
            step_in_epoch,
            self.phase.batch_size,
            self.run.rank,
            self.run.world_size,
        )

    def _order_of(self, epoch: int):
        if epoch != self._epoch:
            self._epoch, self._order = epoch, _order(self.data, self.run, self.global_batch, epoch)
        return self._order


class HostFeed:
    """Each step's arrays read on the host and passed to the step as Tensors; with
    `read_ahead`, step n + 1's are read in a thread while step n runs (reading and parsing
    records overlaps the compiled step, which runs without the GIL). Errors of a read
    surface when its step would start, so a checkpoint is never written from a partial step.

    With `micro_batches` N > 1 each step's arrays are cut into N micro-batches of equal rows,
    each run by `step_cell.accumulate`, then `step_cell.apply()` updates; a stop asked for
    between two of them raises _StoppedMidStep. `micro_start`: the first step's micro-batches
    already in the step's sums (a run resumed between them).
    """

    def __init__(
        self,
        step_cell,
        batch_of,
        start: int,
        stop: int,
        read_ahead: bool = True,
        micro_batches: int = 1,
        micro_start: int = 0,
    ):
        self.step_cell = step_cell
        self.micro_batches, self.micro_start = micro_batches, micro_start
        steps = range(start, stop)
        if read_ahead:
            self._batches = ahead(batch_of, steps)
        else:
            self._batches = ((step, batch_of(step)) for step in steps)

    def __iter__(self):
        """(steps done, the last step's outputs) after each step."""
        for step, arrays in self._batches:
            if self.micro_batches == 1:
                outputs = self.step_cell(*[Tensor(x) for x in arrays])
            else:
                outputs = self._accumulated_step(arrays)
            yield step + 1, outputs

    def _accumulated_step(self, arrays: list) -> tuple:
        """(mean loss, finite, loss scale, *extras of every row) of one step."""
        micro_arrays = [np.split(array, self.micro_batches) for array in arrays]
        extras = []
        for index in range(self.micro_start, self.micro_batches):
            if index > self.micro_start and STOP.signal:
                raise _StoppedMidStep(index)
            outputs = self._micro_step([Tensor(a[index]) for a in micro_arrays])
            extras.append([x.asnumpy() for x in outputs[1:]])
        resumed, self.micro_start = self.micro_start, 0
        if resumed:  # the first micro-batches' extras are not here
            extras = []
        joined = [np.concatenate(parts) for parts in zip(*extras)]
        return (*self.step_cell.apply(), *joined)

    def _micro_step(self, inputs: list) -> tuple:
        return self.step_cell.accumulate(*inputs)

    def close(self) -> None:
        self._batches.close()


def _steps(phase: Phase, data: Dataset, run: Run) -> tuple:
    """(steps per epoch, steps of the phase)."""
    per_epoch = steps_per_epoch(data.num_rows, phase.batch_size, run.world_size)
    if per_epoch == 0:
        raise DataError(
            f"{data.path}: {data.num_rows} rows is less than one batch of "
            f"{phase.batch_size * run.world_size}; lower batch_size"
        )
    total = per_epoch * phase.epochs
    if phase.max_steps > 0:
        total = min(total, phase.max_steps)
    if total > MAX_STEPS:
        raise ConfigError(
            f"--{phase.epochs_key} is {phase.epochs}: {phase.epochs} epochs of {per_epoch} steps "
            f"is {total} steps, more than the {MAX_STEPS} a run may plan; lower it or set "
            "--train_steps"
        )
    return per_epoch, total


def phase_rows(phase: Phase, data: Dataset, run: Run) -> np.ndarray:
    """Every row the phase's steps will train on (all rows once it runs a full epoch)."""
    global_batch = phase.batch_size * run.world_size
    per_epoch, total = _steps(phase, data, run)
    if total >= per_epoch:
        return np.arange(data.num_rows)
    return np.sort(_order(data, run, global_batch, 0)[: total * global_batch])


def _order(data: Dataset, run: Run, global_batch: int, epoch: int):
    if run.length_buckets:
        return bucketed_order(data.lengths, global_batch, run.seed, epoch, run.shuffle)
    return epoch_order(data.num_rows, run.seed, epoch, run.shuffle)


def step_inputs(
    phase: Phase, data: Dataset, run: Run, order, step_in_epoch: int, cut: bool = True
) -> list:
    """This worker's arrays for one step, in `phase.inputs` order.

    With length buckets every worker cuts its slice to the bucket of the whole global batch's
    longest row, so all workers run the same shape (and one process with the combined batch
    would run it too). `cut=False` leaves the arrays at seq_length (data sink).
    """
    rows = batch_rows(order, step_in_epoch, phase.batch_size, run.rank, run.world_size)
    names = phase.inputs
    from_data = [n for n in names if n not in phase.cached]
    arrays = dict(zip(from_data, data.inputs(rows, from_data)))
    arrays.update({n: phase.cached[n][rows] for n in names if n in phase.cached})
    arrays = [arrays[n] for n in names]
    if not (run.length_buckets and cut):
        return arrays
    global_rows = batch_rows(order, step_in_epoch, phase.batch_size * run.world_size)
    length = bucket_length(data.lengths[global_rows].max(), data.seq_length)
    return trim(names, arrays, length)


def _log_step(
    run: Run,
    phase: str,
    epoch: int,
    step: int,
    loss: float,
    finite: bool,
    scale: float,
    rate: float,
    speed: float,
) -> None:
    # The model zoo's line, so scripts that grep its log.txt keep working.
    line = f"epoch: {epoch}, step: {step}, outputs are ({loss:.6f}, {not finite}, {scale:g})"
    with open(run.output_dir / "log.txt", "a", encoding="utf-8") as handle:
        handle.write(line + "\n")
    record = {
        "phase": phase,
        "epoch": epoch,
        "step": step,
        "loss": loss,
        "overflow": not finite,
        "loss_scale": scale,
        "learning_rate": rate,
        "examples_per_s": round(speed, 2),
    }
    with open(run.output_dir / "metrics.jsonl", "a", encoding="utf-8") as handle:
        handle.write(json.dumps(record) + "\n")


def _evaluate(evaluation: Evaluation, phase: Phase, run: Run, step: int) -> None:
    # the plain model: a student's fit_dense only serves the layer losses
    result = evaluation.evaluate(_plain_model(phase.model))
    name = result["main"]
    value = float(result[name])
    evaluation.history.append({"phase": phase.name, "step": step, **_plain(result)})
    log.info("%s step %d: %s", phase.name, step, _summary(result))
    if run.is_main:
        with open(run.output_dir / "metrics.jsonl", "a", encoding="utf-8") as handle:
            handle.write(json.dumps(evaluation.history[-1]) + "\n")
    if value > evaluation.best:
        evaluation.best = value
        # The zoo's wording ("The best acc is 0.902777"), with the metric's own name.
        message = f"The best {'acc' if name == 'accuracy' else name} is {value:.6f}"
        log.info(message, extra={LOG_TXT: True})
        if run.is_main:
            with open(run.output_dir / "log.txt", "a", encoding="utf-8") as handle:
                handle.write(message + "\n")
            if evaluation.best_path is not None:
                save_checkpoint(_plain_model(phase.model), evaluation.best_path, run.model_extra)


def _plain_model(model):
    """A TinyBertStudent's wrapped model: what users deploy, without fit_dense."""
    return getattr(model, "model", model)


def _plain(result: dict) -> dict:
    return {
        k: (float(v) if isinstance(v, (float, np.floating)) else v)
        for k, v in result.items()
        if isinstance(v, (int, float, str, np.floating, np.integer))
    }


def _summary(result: dict) -> str:
    values = {k: v for k, v in _plain(result).items() if k != "main"}
    return ", ".join(
        f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in values.items()
    )


# ---- resumable checkpoints ---------------------------------------------------------------


def _state_parameters(phase: Phase, step_cell: TrainStep, mid_step: bool = False) -> dict:
    """Everything a resumed run needs: the model by path, optimizer and loss-scale state;
    `mid_step`: also the sums of a step stopped between its micro-batches."""
    parameters = {f"model.{n}": p for n, p in named_parameters(phase.model).items()}
    trained = {id(p) for p in phase.model.get_parameters()}
    for parameter in step_cell.optimizer.get_parameters():
        # moments (adam_m.*, adam_v.*) and global_step; the learning-rate schedule is
        # rebuilt from the config
        if id(parameter) not in trained and parameter.name != "learning_rate":
            parameters[f"optimizer.{parameter.name}"] = parameter
    parameters["loss_scale"] = step_cell.loss_scale
    parameters["finite_steps"] = step_cell.finite_steps
    if mid_step:  # between steps the sums are 0: not saved
        parameters.update({p.name: p for p in step_cell.sums})
    return parameters


def _checkpoint_path(run: Run, phase: str, step: int) -> Path:
    return checkpoint_path(run.output_dir, phase, step)


def _checkpoints(run: Run, phase: str) -> list:
    """This run's resumable checkpoints of `phase`, oldest first; other runs' are never
    resumed, rotated or deleted (runs.prepare_output refuses to mix runs in one folder)."""
    return [
        saved.path
        for saved in saved_checkpoints(run.output_dir)
        if saved.phase == phase and is_own(saved.path, run.identity)
    ]


def _save_state(
    phase: Phase, step_cell: TrainStep, run: Run, step: int, best, micro_step: int = 0
) -> None:
    """A resumable checkpoint after `step` steps (and `micro_step` micro-batches of the next:
    a stop between them; it replaces a checkpoint of `step` itself)."""
    parameters = _state_parameters(phase, step_cell, mid_step=micro_step > 0)
    tensors = {n: p.asnumpy() for n, p in parameters.items()}
    state = {"phase": phase.name, "step": step}
    if micro_step:
        state.update(
            micro_step=micro_step, gradient_accumulation_steps=run.gradient_accumulation_steps
        )
    if best is not None and math.isfinite(best):
        state["best"] = best
    if run.identity is not None:
        state["run"] = run.identity
    path = _checkpoint_path(run, phase.name, step)
    write_checkpoint(path, tensors, extra={TRAINER_STATE: json.dumps(state)})
    remember_state(path, state)
    for old in _checkpoints(run, phase.name)[: -run.max_ckpt_num]:
        old.unlink()


def _resume(phase: Phase, step_cell: TrainStep, run: Run) -> dict:
    found = _checkpoints(run, phase.name)
    if not found:
        log.info("%s: no checkpoint in %s; starting from the beginning", phase.name, run.output_dir)
        return {"step": 0}
    checkpoint = read_checkpoint(found[-1])
    state = json.loads(checkpoint.extra[TRAINER_STATE])
    saved_micro_batches = state.get("gradient_accumulation_steps")
    if state.get("micro_step") and saved_micro_batches != run.gradient_accumulation_steps:
        # the checkpoint holds the gradient sums of that update's first micro-batches
        raise RunError(
            f"--resume true: {found[-1].name} was saved after micro-batch "
            f"{state['micro_step']} of {saved_micro_batches} of an update, and this run cuts "
            f"a step into {run.gradient_accumulation_steps}; resume it with "
            f"--gradient_accumulation_steps {saved_micro_batches}"
        )
    parameters = _state_parameters(phase, step_cell, mid_step=bool(state.get("micro_step")))
    missing = sorted(set(parameters) - set(checkpoint.tensors))
    if missing:
        raise DataError(f"{found[-1]}: cannot resume from it, it lacks {', '.join(missing[:5])}")
    for name, parameter in parameters.items():
        parameter.set_data(Tensor(checkpoint.tensors[name], dtype=parameter.dtype))
    log.info("%s: resumed from %s (step %d)", phase.name, found[-1], state["step"])
    return state


def set_seed(seed: int) -> None:
    """Initial weights (new heads, fit_dense, random students) depend on this seed."""
    ms.set_seed(seed)
    np.random.seed(seed)
