"""AdamWeightDecay with the zoo's schedule, and the compiled training step.

The learning rate warms up linearly from 0 over the first `warmup_ratio` of the steps, then
decays polynomially to `end_learning_rate` (the model zoo's BertLearningRate: WarmUpLR then
PolynomialDecayLR over all steps). LayerNorm parameters and biases get no weight decay.

`TrainStep` is one optimizer step in one graph: forward, backward with a scaled loss,
gradient all-reduce when data parallel, overflow check, unscaling with global-norm clipping,
update, and the dynamic loss-scale update (or, with gradient accumulation, the same step
over several micro-batches, see TrainStep). MindSpore's stock loss-scale cell needs a
float-status op the CPU lacks, so the step checks overflow itself: a gradient holding inf or
NaN makes the global norm inf or NaN. The norm is one dot product per gradient, and unscaling
and clipping are one multiplication by one factor: on the CPU this tail took 22 ms for the
TinyBERT-4 student's 14.5M gradients where `all_finite`, a division by the scale and
`ops.clip_by_global_norm` took 151 ms (docs/RESULTS.md, issue 13).
"""

from __future__ import annotations

import mindspore as ms
import numpy as np
from mindspore import Parameter, Tensor, nn, ops
from mindspore.communication import get_group_size


def learning_rates(total_steps: int, settings: dict) -> np.ndarray:
    """The learning rate of every step, 0 .. total_steps - 1, from an AdamWeightDecay block."""
    learning_rate = float(settings["learning_rate"])
    end_learning_rate = float(settings.get("end_learning_rate", 0.0))
    power = float(settings.get("power", 1.0))
    warmup_ratio = float(settings.get("warmup_ratio", 0.1))
    steps = np.arange(total_steps, dtype=np.float64)
    warmup_steps = int(total_steps * warmup_ratio)
    progress = np.minimum(steps, total_steps) / max(total_steps, 1)
    decayed = (learning_rate - end_learning_rate) * (1.0 - progress) ** power + end_learning_rate
    if warmup_steps:
        warming = steps < warmup_steps
        decayed[warming] = learning_rate * steps[warming] / warmup_steps
    return decayed.astype(np.float32)


def decays(parameter) -> bool:
    """Weight decay applies to weights and embeddings, not to LayerNorm parameters or biases."""
    name = parameter.name.lower()
    return "norm" not in name and "bias" not in name


def build_optimizer(parameters, rates: np.ndarray, settings: dict) -> nn.AdamWeightDecay:
    """AdamWeightDecay over `parameters`, one learning rate per step, decay and eps from
    a config's AdamWeightDecay block."""
    parameters = list(parameters)
    groups = [
        {
            "params": [p for p in parameters if decays(p)],
            "weight_decay": float(settings["weight_decay"]),
        },
        {"params": [p for p in parameters if not decays(p)], "weight_decay": 0.0},
    ]
    return nn.AdamWeightDecay(
        groups, learning_rate=Tensor(rates), eps=float(settings.get("eps", 1e-6))
    )


_square_sum = ops.MultitypeFuncGraph("square_sum")


@_square_sum.register("Tensor")
def _square_sum_of(gradient):
    # the flat tensor's dot product with itself: one BLAS pass (ReduceSum of Square is two
    # passes and about 4x slower on the CPU)
    flat = ops.cast(gradient.reshape(-1), ms.float32)
    return ops.tensor_dot(flat, flat, 1)


_rescale = ops.MultitypeFuncGraph("rescale")


@_rescale.register("Tensor", "Tensor")
def _rescale_gradient(factor, gradient):
    return gradient * ops.cast(factor, gradient.dtype)


class TrainStep(nn.Cell):
    """One training step; returns (loss, finite, loss_scale, *extras).

    A loss network with `extra_outputs = n` returns `(loss, x_1, .., x_n)`: outputs it
    computes anyway that are not trained on (phase 1's teacher logits); the step passes them
    through as `extras`.

    Dynamic loss scaling as the zoo configures it: on overflow the step is skipped and the
    scale divided by `scale_factor` (not below 1); after `scale_window` finite steps in a
    row it is multiplied by `scale_factor`. The scale and the finite-step counter are
    parameters, so they are saved and restored with a checkpoint.

    Gradient accumulation (`accumulation_steps` N > 1): a step's batch is run as N
    micro-batches of batch/N rows. `accumulate(*micro_batch)` runs one and adds its scaled
    gradients and its loss to `sums` (parameters `accumulated.*`, `accumulated_loss`),
    returning `(loss, *extras)`; after the N-th, `apply()` makes the step from their means and
    returns `(mean loss, finite, loss_scale)`. Every loss here averages over its batch's
    examples, so the mean of N equal micro-batches' gradients is the whole batch's gradient:
    the same update, up to float rounding (NER's token losses average over the tokens of each
    micro-batch, as data-parallel workers do). They are two compiled graphs, `accumulate` one
    per micro-batch shape and `apply` one without data inputs, because MindSpore keeps the
    buffers of each compiled graph: one graph looping over the micro-batches would hold all of
    theirs. The learning-rate schedule and `scale_window` count steps (updates).
    """

    def __init__(
        self,
        loss_net: nn.Cell,
        optimizer: nn.Optimizer,
        loss_scale_value: float = 1.0,
        scale_factor: float = 2.0,
        scale_window: int = 1000,
        clip_norm: float = 1.0,
        data_parallel: bool = False,
        accumulation_steps: int = 1,
    ):
        super().__init__(auto_prefix=False)
        self.loss_net = loss_net
        self.optimizer = optimizer
        self.weights = optimizer.parameters
        self.grad = ops.GradOperation(get_by_list=True, sens_param=True)
        self.loss_scale = Parameter(
            Tensor(loss_scale_value, ms.float32), name="loss_scale", requires_grad=False
        )
        self.finite_steps = Parameter(Tensor(0, ms.int32), name="finite_steps", requires_grad=False)
        self.scale_factor = float(scale_factor)
        self.scale_window = int(scale_window)
        self.clip_norm = float(clip_norm)
        self.extra_outputs = int(getattr(loss_net, "extra_outputs", 0))
        self.hyper_map = ops.HyperMap()
        self.reduce = ops.identity
        if data_parallel:
            # The mean over workers of per-worker mean gradients: the gradient of the mean
            # loss over the combined batch.
            self.reduce = nn.DistributedGradReducer(
                self.weights, mean=True, degree=get_group_size()
            )
        self.accumulation_steps = int(accumulation_steps)
        if self.accumulation_steps > 1:
            self.gradient_sums = self.weights.clone(prefix="accumulated", init="zeros")
            self.loss_sum = Parameter(
                Tensor(0.0, ms.float32), name="accumulated_loss", requires_grad=False
            )
            self.mean_factor = Tensor(1.0 / self.accumulation_steps, ms.float32)

    @property
    def sums(self) -> tuple:
        """The accumulation's parameters: what a checkpoint between micro-batches holds."""
        return (*self.gradient_sums, self.loss_sum) if self.accumulation_steps > 1 else ()

    def construct(self, *inputs):
        scale = self.loss_scale * 1.0
        loss, extras, gradients = self._scaled_gradients(inputs, scale)
        loss, finite = self._update(loss, gradients, scale)
        return (loss, finite, scale) + extras

    @ms.jit
    def accumulate(self, *inputs):
        """One micro-batch: its scaled gradients and loss added to the sums."""
        loss, extras, gradients = self._scaled_gradients(inputs, self.loss_scale * 1.0)
        loss = ops.depend(loss, self.hyper_map(ops.assign_add, self.gradient_sums, gradients))
        loss = ops.depend(loss, ops.assign_add(self.loss_sum, loss))
        return (loss,) + extras

    @ms.jit
    def apply(self):
        """The step from the sums of its micro-batches, which start again from 0."""
        scale = self.loss_scale * 1.0
        gradients = self.hyper_map(ops.partial(_rescale, self.mean_factor), self.gradient_sums)
        loss, finite = self._update(self.loss_sum * self.mean_factor, gradients, scale)
        zeros = self.hyper_map(ops.zeros_like, gradients)
        loss = ops.depend(loss, self.hyper_map(ops.assign, self.gradient_sums, zeros))
        loss = ops.depend(loss, ops.assign(self.loss_sum, ops.zeros_like(self.loss_sum)))
        return loss, finite, scale

    def _scaled_gradients(self, inputs, scale):
        """(loss, extras, gradients of loss * scale averaged over workers)."""
        outputs = self.loss_net(*inputs)
        if self.extra_outputs:
            # the sensitivity mirrors the outputs: the extras carry no gradient
            loss, extras = outputs[0], outputs[1:]
            sens = (scale,) + self.hyper_map(ops.zeros_like, extras)
        else:
            loss, extras, sens = outputs, (), scale
        gradients = self.grad(self.loss_net, self.weights)(*inputs, sens)
        return loss, extras, self.reduce(gradients)

    def _update(self, loss, gradients, scale):
        """Unscale, clip and apply `gradients` unless they overflowed, and update the loss
        scale; returns (loss, finite), the loss made to wait for the update."""
        # the global norm of the unscaled gradients; inf or NaN when any gradient overflowed
        norm = ops.sqrt(ops.addn(self.hyper_map(_square_sum, gradients))) / scale
        finite = ops.isfinite(norm)
        if finite:
            # unscale, then clip to clip_norm as ops.clip_by_global_norm does, in one multiply
            factor = self.clip_norm / ops.maximum(norm, self.clip_norm) / scale
            gradients = self.hyper_map(ops.partial(_rescale, factor), gradients)
            loss = ops.depend(loss, self.optimizer(gradients))
            count = self.finite_steps + 1
            grow = count >= self.scale_window
            ops.assign(self.loss_scale, ops.select(grow, scale * self.scale_factor, scale))
            ops.assign(self.finite_steps, ops.select(grow, count * 0, count))
        else:
            ops.assign(self.loss_scale, ops.maximum(scale / self.scale_factor, 1.0))
            ops.assign(self.finite_steps, self.finite_steps * 0)
        return loss, finite
