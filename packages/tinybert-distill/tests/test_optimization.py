"""The learning-rate schedule, the weight-decay groups and the training step's loss scaling."""

import mindspore as ms
import numpy as np
from mindspore import nn

from tinybert_distill.optimization import TrainStep, build_optimizer, decays, learning_rates

SETTINGS = {
    "learning_rate": 1e-3,
    "end_learning_rate": 0.0,
    "power": 1.0,
    "weight_decay": 0.01,
    "eps": 1e-6,
    "warmup_ratio": 0.1,
}


def test_schedule_warms_up_then_decays_polynomially():
    rates = learning_rates(100, SETTINGS)
    assert rates[0] == 0.0
    np.testing.assert_allclose(rates[5], 1e-3 * 5 / 10, rtol=1e-6)  # linear warmup over 10 steps
    np.testing.assert_allclose(
        rates[10], 1e-3 * (1 - 10 / 100), rtol=1e-6
    )  # the zoo's PolynomialDecayLR
    np.testing.assert_allclose(rates[99], 1e-3 * (1 - 99 / 100), rtol=1e-5)
    assert np.all(np.diff(rates[10:]) < 0)
    squared = learning_rates(100, dict(SETTINGS, power=2.0, end_learning_rate=1e-5))
    np.testing.assert_allclose(squared[50], (1e-3 - 1e-5) * 0.5**2 + 1e-5, rtol=1e-5)


class Tiny(nn.Cell):
    def __init__(self):
        super().__init__()
        self.dense = nn.Dense(4, 1)
        self.norm = nn.LayerNorm((4,))

    def construct(self, x, y):
        return ops_mean_square(self.dense(self.norm(x))[:, 0] - y)


def ops_mean_square(x):
    return ms.ops.mean(ms.ops.square(x))


def test_no_weight_decay_on_layer_norm_and_bias():
    net = Tiny()
    decayed = sorted(p.name for p in net.trainable_params() if decays(p))
    assert decayed == ["dense.weight"]
    optimizer = build_optimizer(net.trainable_params(), learning_rates(10, SETTINGS), SETTINGS)
    assert isinstance(optimizer, nn.AdamWeightDecay)


def _step(loss_scale_value, scale_window=1000):
    ms.set_seed(0)
    net = Tiny()
    optimizer = build_optimizer(
        net.trainable_params(), learning_rates(10, dict(SETTINGS, warmup_ratio=0.0)), SETTINGS
    )
    return net, TrainStep(
        net, optimizer, loss_scale_value, scale_factor=2.0, scale_window=scale_window
    )


def test_overflow_skips_the_update_and_halves_the_scale():
    net, step = _step(loss_scale_value=3e38)  # scaled gradients overflow float32
    before = net.dense.weight.asnumpy().copy()
    x = ms.Tensor(np.ones((8, 4), np.float32) * np.arange(4, dtype=np.float32))
    y = ms.Tensor(np.full(8, 100.0, np.float32))
    _, finite, scale = step(x, y)
    assert not bool(finite.asnumpy())
    assert float(scale.asnumpy()) == np.float32(3e38)
    np.testing.assert_array_equal(net.dense.weight.asnumpy(), before)
    assert float(step.loss_scale.asnumpy()) == np.float32(1.5e38)


def test_finite_steps_update_and_grow_the_scale_after_the_window():
    net, step = _step(loss_scale_value=4.0, scale_window=2)
    before = net.dense.weight.asnumpy().copy()
    x = ms.Tensor(np.random.default_rng(0).normal(size=(8, 4)).astype(np.float32))
    y = ms.Tensor(np.ones(8, np.float32))
    losses = []
    for _ in range(3):
        loss, finite, _ = step(x, y)
        assert bool(finite.asnumpy())
        losses.append(float(loss.asnumpy()))
    assert not np.array_equal(net.dense.weight.asnumpy(), before)
    assert float(step.loss_scale.asnumpy()) == 8.0  # doubled after 2 finite steps
    assert int(step.finite_steps.asnumpy()) == 1


def test_loss_scale_does_not_change_the_update():
    """Gradients are unscaled before clipping and the update: any scale gives the same step."""
    x = ms.Tensor(np.random.default_rng(1).normal(size=(8, 4)).astype(np.float32))
    y = ms.Tensor(np.ones(8, np.float32))
    weights = []
    for scale in (1.0, 1024.0):
        net, step = _step(loss_scale_value=scale)
        step(x, y)
        weights.append(net.dense.weight.asnumpy())
    np.testing.assert_allclose(weights[0], weights[1], rtol=1e-6, atol=1e-8)


def test_nan_gradients_skip_the_update():
    net, step = _step(loss_scale_value=4.0)
    before = net.dense.weight.asnumpy().copy()
    x = ms.Tensor(np.full((8, 4), np.nan, np.float32))
    _, finite, _ = step(x, ms.Tensor(np.ones(8, np.float32)))
    assert not bool(finite.asnumpy())
    np.testing.assert_array_equal(net.dense.weight.asnumpy(), before)
    assert float(step.loss_scale.asnumpy()) == 2.0


def test_clipping_matches_mindspore_clip_by_global_norm():
    """A step whose gradients are far above clip_norm equals unscale + ops.clip_by_global_norm +
    the same optimizer, the form the step had before its tail was fused."""
    x = ms.Tensor(np.random.default_rng(2).normal(size=(8, 4)).astype(np.float32))
    y = ms.Tensor(np.full(8, 100.0, np.float32))  # a large loss: the global norm is far above 1
    net, step = _step(loss_scale_value=1024.0)
    step(x, y)

    reference, reference_step = _step(loss_scale_value=1.0)  # its optimizer, used directly
    optimizer = reference_step.optimizer
    gradients = ms.ops.GradOperation(get_by_list=True)(reference, optimizer.parameters)(x, y)
    norm = np.sqrt(sum(float((g.asnumpy() ** 2).sum()) for g in gradients))
    assert norm > 10.0
    optimizer(ms.ops.clip_by_global_norm(gradients, 1.0))
    ours, theirs = dict(net.parameters_and_names()), dict(reference.parameters_and_names())
    for name in ("dense.weight", "dense.bias", "norm.gamma", "norm.beta"):
        np.testing.assert_allclose(
            ours[name].asnumpy(), theirs[name].asnumpy(), rtol=1e-5, atol=1e-7
        )


def _sgd_step(accumulation_steps: int, loss_scale_value: float = 1024.0):
    """A step under plain SGD without clipping: its update is the gradient itself, so a wrong
    scale or a missing micro-batch shows (Adam's update is the same for any gradient scale)."""
    ms.set_seed(0)
    net = Tiny()
    optimizer = nn.SGD(net.trainable_params(), learning_rate=0.1)
    step = TrainStep(
        net,
        optimizer,
        loss_scale_value,
        scale_window=2,
        clip_norm=1e9,
        accumulation_steps=accumulation_steps,
    )
    return net, step


def test_accumulated_micro_batches_make_the_step_of_their_whole_batch():
    rng = np.random.default_rng(3)
    batches = [
        (rng.normal(size=(8, 4)).astype(np.float32), rng.normal(size=8).astype(np.float32))
        for _ in range(3)
    ]
    whole_net, whole = _sgd_step(1)
    micro_net, micro = _sgd_step(4)
    for x, y in batches:
        loss, _, scale = whole(ms.Tensor(x), ms.Tensor(y))
        losses = [
            float(micro.accumulate(ms.Tensor(x[i : i + 2]), ms.Tensor(y[i : i + 2]))[0].asnumpy())
            for i in range(0, 8, 2)
        ]
        mean_loss, micro_finite, micro_scale = micro.apply()
        np.testing.assert_allclose(float(mean_loss.asnumpy()), np.mean(losses), rtol=1e-6)
        np.testing.assert_allclose(float(mean_loss.asnumpy()), float(loss.asnumpy()), rtol=1e-5)
        assert bool(micro_finite.asnumpy()) and float(micro_scale.asnumpy()) == float(
            scale.asnumpy()
        )
    for name, parameter in whole_net.parameters_and_names():
        got = dict(micro_net.parameters_and_names())[name].asnumpy()
        np.testing.assert_allclose(got, parameter.asnumpy(), rtol=0, atol=1e-6, err_msg=name)
    # the loss scale counts steps, not micro-batches: doubled once after 2 finite steps
    assert float(micro.loss_scale.asnumpy()) == float(whole.loss_scale.asnumpy()) == 2048.0
    # and the sums start again from 0 after each step
    assert all(not p.asnumpy().any() for p in micro.sums)


def test_an_overflowing_micro_batch_skips_the_whole_step():
    net, step = _sgd_step(2, loss_scale_value=3e38)
    before = net.dense.weight.asnumpy().copy()
    x = ms.Tensor(np.ones((4, 4), np.float32) * np.arange(4, dtype=np.float32))
    y = ms.Tensor(np.full(4, 100.0, np.float32))
    step.accumulate(x, y)
    step.accumulate(x, y)
    _, finite, _ = step.apply()
    assert not bool(finite.asnumpy())
    np.testing.assert_array_equal(net.dense.weight.asnumpy(), before)
    assert float(step.loss_scale.asnumpy()) == np.float32(1.5e38)
    assert all(not p.asnumpy().any() for p in step.sums)
