"""Feeding the device through MindSpore's dataset engine: `enable_data_sink`, `data_sink_steps`.

The model zoo trains with `Model.train(..., dataset_sink_mode=True, sink_size=data_sink_steps)`
on GPU and Ascend: a dataset-engine thread copies batches into a queue on the device ahead of
the steps, the compiled step takes its inputs from that queue (a GetNext op) instead of from
the host, and the host only hears back once per sink. On CPU MindSpore has no device queue:
`Model.train` quietly trains without sinking and `mindspore.data_sink` refuses (2.10).

Here, with `enable_data_sink` on GPU/Ascend, the trainer keeps its own loop and its own data
order; what changes is how the batches reach the device:

- `StepSource` is a random-access source over the phase's remaining steps: item i is this
  worker's arrays of step `start + i`, read through the same function as the host path (so the
  order stays a pure function of (seed, epoch), each worker reads only its own rows, and a
  resumed run starts its source at the resumed step).
- A `mindspore.dataset.GeneratorDataset` over it feeds `mindspore.data_sink(step, dataset)`:
  one call, one step, its inputs from the device queue.
- The host reads the loss (and logs, checkpoints, evaluates) only every `data_sink_steps`
  steps, and at checkpoint, evaluation and epoch boundaries, which keeps checkpoints at the
  same steps as the host path (`sink_end` decides where a sink ends).

One shape per sunk graph: a device queue holds batches of one shape, so when sinking every
batch is padded to the records' seq_length (the zoo's fixed padding). The batches themselves,
which rows in which order, are those of `length_buckets` as set, so a run gives the same
weights (up to float rounding) with and without sinking, and may be resumed either way.
Length buckets save their padding only on the host path (`enable_data_sink false`).

On CPU a recipe never asks for sinking; `SinkFeed` there iterates the same dataset on the
host (what `Model.train` does on CPU), which is how the tests check this path's batches and
weights against the host path's. The device queue itself is not exercised here (no GPU/Ascend).
"""

from __future__ import annotations

import logging
from typing import Callable

import mindspore as ms
import mindspore.dataset as ds

from .config import ConfigError

log = logging.getLogger("tinybert_distill")

SINK_DEVICES = ("GPU", "Ascend")  # where MindSpore has a device queue


def sink_requested(value) -> bool:
    """`enable_data_sink` as a YAML bool or as the zoo's scripts write it ("true"/"false")."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise ConfigError(f"--enable_data_sink is {value!r}; it must be true or false")


def use_sink(enabled, device_target: str) -> bool:
    """Whether to sink: asked for and on a device that has a queue (said once otherwise)."""
    if not sink_requested(enabled):
        return False
    if device_target not in SINK_DEVICES:
        log.info(
            "enable_data_sink: %s has no device queue; each step's batch is passed from the "
            "host (as the model zoo's Model.train does on CPU)",
            device_target,
        )
        return False
    return True


class StepSource:
    """Random access to the arrays of steps start .. stop - 1, for a GeneratorDataset.

    `batch_of(step)` gives this worker's arrays of one step. The dataset engine calls
    `__getitem__` in its own thread and wraps what it raises in a RuntimeError holding a
    traceback; the first error is kept so that the trainer can raise it as it was (a
    corrupt record names its shard and record number).
    """

    def __init__(self, batch_of: Callable[[int], list], start: int, stop: int):
        self.batch_of = batch_of
        self.start = start
        self.stop = stop
        self.error: BaseException | None = None

    def __len__(self) -> int:
        return self.stop - self.start

    def __getitem__(self, index) -> tuple:
        try:
            return tuple(self.batch_of(self.start + int(index)))
        except Exception as error:  # kept for SinkFeed, then passed on to the engine
            self.error = self.error or error
            raise


def sink_end(step: int, stop: int, sink_steps: int, boundaries: tuple) -> int:
    """Where the sink starting at `step` ends: after `sink_steps` steps, or earlier at the
    next multiple of any of `boundaries` (steps per epoch, checkpoint and evaluation
    intervals; 0: none), or at `stop`."""
    end = min(stop, step + sink_steps)
    for every in boundaries:
        if every:
            end = min(end, (step // every + 1) * every)
    return end


class SinkFeed:
    """Runs steps of `step_cell` on batches that come through the dataset engine.

    GPU/Ascend: `mindspore.data_sink`, inputs from the device queue. Elsewhere (CPU): the
    same dataset iterated on the host. Iterating gives (steps done, the last step's outputs,
    not read back) at the end of each sink: `sink_steps` steps, cut at `boundaries`.
    """

    def __init__(
        self,
        step_cell,
        batch_of: Callable[[int], list],
        start: int,
        stop: int,
        names,
        sink_steps: int = 1,
        boundaries: tuple = (),
    ):
        self.source = StepSource(batch_of, start, stop)
        self.sink_steps, self.boundaries = sink_steps, boundaries
        self.dataset = ds.GeneratorDataset(
            self.source,
            column_names=list(names),
            shuffle=False,  # the order is ours, decided by StepSource
            num_parallel_workers=1,
            python_multiprocessing=False,
        )
        self._iterator = None
        if ms.get_context("device_target") in SINK_DEVICES:
            # one call, one step; a function as in data_sink's documentation, not the Cell
            # itself (its wrapper would copy the Cell's attributes onto itself)
            def one_step(*inputs):
                return step_cell(*inputs)

            self._step = ms.data_sink(one_step, self.dataset, sink_size=1)
        else:
            self._iterator = self.dataset.create_tuple_iterator(num_epochs=1)
            self._step = lambda: step_cell(*next(self._iterator))

    def __iter__(self):
        step, stop = self.source.start, self.source.stop
        while step < stop:
            done = sink_end(step, stop, self.sink_steps, self.boundaries)
            outputs = self.run(done - step)
            step = done
            yield done, outputs

    def run(self, count: int):
        """Run the next `count` steps; the last one's outputs."""
        outputs = None
        try:
            for _ in range(count):
                outputs = self._step()
        except Exception:
            if self.source.error is not None:
                raise self.source.error from None
            raise
        return outputs

    def close(self) -> None:
        if self._iterator is not None:
            self._iterator.stop()
        transfer = getattr(self.dataset, "__transfer_dataset__", None)
        if transfer is not None:  # the device queue's sender would start the source again
            transfer.stop_send()
            transfer.release()
