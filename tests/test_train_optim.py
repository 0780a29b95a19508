"""Optimiser and schedule parity with the original (reference spec §6.2, §6.3)."""

import math

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from jax.flatten_util import ravel_pytree
import pytest

from nasbench_jax.errors import ConfigError
from train import optim


def paper_config(**kw):
    c = ml_collections.ConfigDict(
        dict(
            learning_rate=0.1, tpu_num_shards=2, lr_decay_method="COSINE_BY_STEP", train_seconds=14400.0,
            rmsprop_decay=0.9, rmsprop_epsilon=1.0, momentum=0.9, train_epochs=108, train_size=40_000,
            batch_size=256, weight_decay=1e-4,
        )
    )
    c.update(kw)
    return c


def tf1_rmsprop(params, grads_seq, lrs, rho=0.9, momentum=0.9, eps=1.0, weight_decay=1e-4):
    """TF1 RMSPropOptimizer written from §6.3, in float64 numpy, on the gradient of
    ``loss + weight_decay * sum(0.5 * ||v||^2)`` (``grads_seq`` is the gradient of ``loss``)."""
    var = {k: np.array(v, np.float64) for k, v in params.items()}
    ms = {k: np.ones_like(v) for k, v in var.items()}  # initialised to ONES
    mom = {k: np.zeros_like(v) for k, v in var.items()}
    history = []
    for g_loss, lr in zip(grads_seq, lrs):
        g = {k: g_loss[k] + weight_decay * var[k] for k in var}  # tf.nn.l2_loss's gradient is v
        for k in var:
            ms[k] = rho * ms[k] + (1 - rho) * g[k] ** 2
            mom[k] = momentum * mom[k] + lr * g[k] / np.sqrt(ms[k] + eps)
            var[k] = var[k] - mom[k]
        history.append(({k: v.copy() for k, v in var.items()}, {k: v.copy() for k, v in ms.items()}))
    return history


def test_rmsprop_matches_tf1_numpy_over_several_steps():
    rng = np.random.default_rng(0)
    params = {"w": rng.normal(size=(3, 4)).astype(np.float32), "b": rng.normal(size=(4,)).astype(np.float32)}
    # gradients large and small so that eps=1 inside the sqrt and ms starting at 1 both matter
    grads_seq = [
        {k: (rng.normal(size=v.shape) * s).astype(np.float32) for k, v in params.items()}
        for s in (0.01, 3.0, 0.5, 10.0, 0.1, 1.0)
    ]
    lrs = [0.0, 0.2, 0.15, 0.1, 0.05, 0.01]  # starts with the step-0 rule
    expected = tf1_rmsprop(params, grads_seq, lrs)

    tx = optim.make_optimizer(paper_config())
    p = jax.tree.map(jnp.asarray, params)
    state = tx.init(p)
    unravel = ravel_pytree(p)[1]  # the optimiser state is one flat vector in leaf order
    for (g, lr), (want_var, want_ms) in zip(zip(grads_seq, lrs), expected):
        state = optim.set_learning_rate(state, lr)
        updates, state = tx.update(jax.tree.map(jnp.asarray, g), state, p)
        p = optax.apply_updates(p, updates)
        for k in params:
            np.testing.assert_allclose(np.asarray(p[k]), want_var[k], rtol=2e-6, atol=2e-6)
            np.testing.assert_allclose(np.asarray(unravel(optim.rmsprop_state(state).inner_state[0].nu)[k]), want_ms[k], rtol=2e-6)


def test_step_zero_leaves_weights_but_fills_ms():
    tx = optim.make_optimizer(paper_config())
    p = {"w": jnp.array([1.0, -2.0])}
    state = tx.init(p)
    np.testing.assert_array_equal(np.asarray(optim.rmsprop_state(state).inner_state[0].nu), [1.0, 1.0])  # ones, not zeros
    state = optim.set_learning_rate(state, optim.learning_rate(0, 0.0, paper_config(), total_steps=10))
    g = {"w": jnp.array([2.0, 4.0])}
    updates, state = tx.update(g, state, p)
    np.testing.assert_array_equal(np.asarray(updates["w"]), [0.0, 0.0])
    g_eff = np.array([2.0, 4.0]) + 1e-4 * np.array([1.0, -2.0])  # + weight_decay * v (coupled L2)
    np.testing.assert_allclose(np.asarray(optim.rmsprop_state(state).inner_state[0].nu), 0.9 + 0.1 * g_eff**2, rtol=1e-6)


def test_weight_decay_in_the_optimiser_equals_l2_in_the_loss():
    """Adding weight_decay*v inside the optimiser is the original's L2-in-the-loss update."""
    rng = np.random.default_rng(1)
    params = {"a": jnp.asarray(rng.normal(size=(5, 3)), jnp.float32), "b": jnp.asarray(rng.normal(size=(3,)), jnp.float32)}
    x = jnp.asarray(rng.normal(size=(7, 5)), jnp.float32)

    def ce(p):
        return jnp.mean(jnp.tanh(x @ p["a"] + p["b"]) ** 2)

    with_l2 = jax.grad(lambda p: ce(p) + 1e-2 * optim.l2_loss(p))(params)
    tx_decay = optim.make_optimizer(paper_config(weight_decay=1e-2))
    tx_plain = optim.make_optimizer(paper_config(weight_decay=0.0))
    s1 = optim.set_learning_rate(tx_decay.init(params), 0.1)
    s2 = optim.set_learning_rate(tx_plain.init(params), 0.1)
    u1, _ = tx_decay.update(jax.grad(ce)(params), s1, params)
    u2, _ = tx_plain.update(with_l2, s2, params)
    for k in params:
        np.testing.assert_allclose(np.asarray(u1[k]), np.asarray(u2[k]), rtol=1e-5, atol=1e-8)
    with pytest.raises(ConfigError, match="weight_decay"):
        optim.make_optimizer(paper_config(weight_decay=-1.0))


@pytest.mark.parametrize("epochs,total,half", [(4, 625, 312), (12, 1875, 937), (36, 5625, 2812), (108, 16875, 8437)])
def test_step_counts_match_the_table(epochs, total, half):
    assert optim.total_steps(epochs, 40_000, 256) == total
    assert optim.halfway_steps(epochs, 40_000, 256) == half


@pytest.mark.parametrize("step", [0, 1, 2, 100, 8437, 16874, 16875])
def test_cosine_by_step_formula(step):
    c = paper_config()
    got = float(optim.learning_rate(step, 0.0, c, total_steps=16875))
    want = 0.0 if step == 0 else 0.5 * 0.2 * (1 + math.cos(math.pi * step / 16875))
    assert got == pytest.approx(want, abs=1e-7)
    # also under jit with a traced step
    assert float(jax.jit(lambda s: optim.learning_rate(s, 0.0, c, total_steps=16875))(step)) == pytest.approx(want, abs=1e-7)


def test_stepwise_boundaries_and_last_factor():
    c = paper_config(lr_decay_method="STEPWISE", train_epochs=4)  # T = 625.0
    b1, b2, b3 = int(0.5 * 625), int(0.667 * 625), int(0.833 * 625)  # 312, 416, 520
    cases = {0: 0.0, 1: 0.2, b1: 0.2, b1 + 1: 0.02, b2: 0.02, b2 + 1: 0.002, b3: 0.002, b3 + 1: 0.2e-4, 624: 0.2e-4}
    for step, want in cases.items():
        assert float(optim.learning_rate(step, 0.0, c, total_steps=625)) == pytest.approx(want, rel=1e-6, abs=1e-9), step


def test_cosine_by_time_uses_measured_time():
    c = paper_config(lr_decay_method="COSINE_BY_TIME", train_seconds=100.0)
    assert float(optim.learning_rate(5, 25.0, c, total_steps=10)) == pytest.approx(0.1 * (1 + math.cos(math.pi / 4)), rel=1e-6)
    assert float(optim.learning_rate(5, 500.0, c, total_steps=10)) == pytest.approx(0.0, abs=1e-7)
    assert float(optim.learning_rate(0, 25.0, c, total_steps=10)) == 0.0


def test_bad_schedule_config():
    with pytest.raises(ConfigError, match="lr_decay_method"):
        optim.learning_rate(1, 0.0, paper_config(lr_decay_method="LINEAR"), total_steps=10)
    with pytest.raises(ConfigError, match="total_steps"):
        optim.learning_rate(1, 0.0, paper_config(), total_steps=0)


def test_l2_loss_is_half_sum_of_squares_over_all_leaves():
    params = {"conv": {"kernel": jnp.ones((2, 2))}, "bn": {"scale": jnp.array([3.0]), "bias": jnp.array([-1.0])}}
    assert float(optim.l2_loss(params)) == pytest.approx(0.5 * (4 + 9 + 1))
