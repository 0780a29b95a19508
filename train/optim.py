"""The original's optimiser and learning-rate schedules (reference spec §6.1-§6.3).

TF1 ``RMSPropOptimizer`` semantics, per variable with gradient ``g`` (§6.3)::

    ms  <- rho*ms + (1 - rho)*g**2            # ms starts at ONES
    mom <- momentum*mom + lr*g/sqrt(ms + eps) # eps = 1.0 inside the square root
    var <- var - mom

optax's ``rmsprop(lr, decay=rho, eps=eps, initial_scale=1.0, eps_in_sqrt=True,
momentum=momentum)`` is exactly this: ``scale_by_rms`` (ms from ``initial_scale``, ``rsqrt(ms +
eps)``), then ``scale_by_learning_rate`` (×−lr), then ``trace`` (``mom = u + momentum·mom``);
the learning rate is applied *before* the momentum trace, as in TF1, so a changing learning rate
affects only new momentum contributions. The test suite checks this against a numpy TF1 update.

The learning rate is injected per step (:func:`learning_rate`) so one compiled step serves
``COSINE_BY_STEP``, ``STEPWISE`` and ``COSINE_BY_TIME`` (whose progress is measured training
time, not a step count).

**Weight decay** is the original's *coupled* L2, ``weight_decay·Σ_v ½‖v‖²`` added to the loss.
Its gradient, ``weight_decay·v``, is added to the gradient inside the optimiser
(``optax.add_decayed_weights``, before RMSProp), which is the same update; the train step adds
the L2 term to the *reported* loss (:func:`l2_loss`) without differentiating it.

**One flat vector.** The optimiser runs on all parameters concatenated (``optax.flatten``): the
update is elementwise, so the result is the same, but XLA gets a handful of kernels instead of
several per variable (~220 variables at the paper config). With the decay in the optimiser
too, the paper-config training step went from 2,569 to 1,598 kernels: its persistent-cache load
time fell from ~1.5 s to ~0.9 s, its cold XLA compile from ~7 s to ~5.6 s, and the step got
faster (``docs/notes/model.md``). The optimiser state (``ms``, ``mom``) is therefore one vector
each, in ``jax.tree.leaves`` order of the parameters (:func:`rmsprop_state` finds it).

    >>> import ml_collections
    >>> c = ml_collections.ConfigDict(dict(learning_rate=0.1, tpu_num_shards=2,
    ...     lr_decay_method="COSINE_BY_STEP", train_seconds=14400.0))
    >>> float(learning_rate(0, 0.0, c, total_steps=625)), float(learning_rate(1, 0.0, c, total_steps=625))
    (0.0, 0.19999873638153076)
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from nasbench_jax.errors import ConfigError

__all__ = [
    "DECAY_METHODS",
    "base_learning_rate",
    "learning_rate",
    "make_optimizer",
    "rmsprop_state",
    "set_learning_rate",
    "l2_loss",
    "total_steps",
    "halfway_steps",
]

DECAY_METHODS = ("COSINE_BY_STEP", "COSINE_BY_TIME", "STEPWISE")
#: STEPWISE boundaries as fractions of T and the multipliers of base_lr (§6.2; the last is 1e-4).
_STEPWISE_FRACTIONS = (0.5, 0.667, 0.833)
_STEPWISE_FACTORS = (1.0, 0.1, 0.01, 0.0001)


def total_steps(train_epochs: float, train_size: int, batch_size: int) -> int:
    """``int(E·N/B)`` (§6.2): 16,875 for 108 epochs of 40,000 images in batches of 256."""
    return int(train_epochs * train_size / batch_size)


def halfway_steps(train_epochs: float, train_size: int, batch_size: int, fraction: float = 0.5) -> int:
    """``int(fraction·E·N/B)`` (§6.2): 8,437 for the 108-epoch run."""
    return int(fraction * train_epochs * train_size / batch_size)


def base_learning_rate(config: Any) -> float:
    """``learning_rate × tpu_num_shards`` (0.1 × 2 = the paper's 0.2)."""
    return float(config.learning_rate) * float(config.tpu_num_shards)


def learning_rate(step: Any, train_time_s: Any, config: Any, *, total_steps: int) -> jax.Array:
    """The original's learning rate at a global step, in float32 (§6.2), traceable.

    ``COSINE_BY_STEP``: ``0.5·lr0·(1 + cos(π·step/total_steps))``; ``COSINE_BY_TIME``: the same
    with progress ``train_time_s / train_seconds``; ``STEPWISE``: ``[1, .1, .01, .0001]·lr0``
    with boundaries ``int(.5T), int(.667T), int(.833T)`` (TF ``piecewise_constant``: value i
    while ``step <= boundary i``). **Step-0 rule**: 0.0 at global step 0, for every method (the
    original applies it after the schedule).

    Args:
      step: int scalar (python or traced), the global step before the update.
      train_time_s: float scalar, measured training time so far (``COSINE_BY_TIME`` only).
      config: ConfigDict with ``learning_rate``, ``tpu_num_shards``, ``lr_decay_method``,
        ``train_seconds`` (and ``train_epochs``, ``train_size``, ``batch_size`` for STEPWISE).
      total_steps: ``int(E·N/B)``, a Python int or a traced int scalar (the train step takes
        it as an argument, so one compiled step serves every budget).

    Returns:
      float32 scalar.

    Raises:
      ConfigError: unknown ``lr_decay_method`` or non-positive ``total_steps``.
    """
    method = str(config.lr_decay_method)
    if isinstance(total_steps, (int, np.integer)) and total_steps <= 0:
        raise ConfigError(f"total_steps must be positive, got {total_steps} (train_epochs too small?)")
    lr0 = jnp.float32(base_learning_rate(config))
    step = jnp.asarray(step)
    stepf = step.astype(jnp.float32)
    pi = jnp.float32(math.pi)
    if method == "COSINE_BY_STEP":
        progress = stepf / jnp.asarray(total_steps).astype(jnp.float32)
        lr = jnp.float32(0.5) * lr0 * (jnp.float32(1.0) + jnp.cos(pi * progress))
    elif method == "COSINE_BY_TIME":
        seconds = float(config.train_seconds)
        if seconds <= 0:
            raise ConfigError(f"COSINE_BY_TIME needs train_seconds > 0, got {seconds}")
        progress = jnp.minimum(jnp.asarray(train_time_s, jnp.float32) / jnp.float32(seconds), 1.0)
        lr = jnp.float32(0.5) * lr0 * (jnp.float32(1.0) + jnp.cos(pi * progress))
    elif method == "STEPWISE":
        # T = E·N/B as a float, as the original computes it (not int(E·N/B)).
        t = float(config.train_epochs) * float(config.train_size) / float(config.batch_size)
        bounds = [int(f * t) for f in _STEPWISE_FRACTIONS]
        lr = lr0 * jnp.float32(_STEPWISE_FACTORS[0])
        for b, factor in zip(bounds, _STEPWISE_FACTORS[1:]):
            lr = jnp.where(step > b, lr0 * jnp.float32(factor), lr)
    else:
        raise ConfigError(f"unknown lr_decay_method {method!r}; choose one of {DECAY_METHODS}")
    return jnp.where(step == 0, jnp.float32(0.0), lr).astype(jnp.float32)


def make_optimizer(config: Any) -> optax.GradientTransformation:
    """Coupled weight decay + TF1 RMSProp, with an injectable learning rate (:func:`set_learning_rate`).

    Args:
      config: ConfigDict with ``weight_decay``, ``rmsprop_decay``, ``rmsprop_epsilon``, ``momentum``.

    Returns:
      ``optax.flatten(optax.chain(optax.add_decayed_weights(weight_decay),
      optax.inject_hyperparams(optax.rmsprop)(learning_rate=0., decay, eps, initial_scale=1.,
      eps_in_sqrt=True, momentum)))``. ``update`` needs ``params``. The state is the chain's
      tuple; the RMSProp part's ``inner_state`` holds flat vectors over all parameters.

    Raises:
      ConfigError: a missing or negative ``weight_decay``.
    """
    decay = config.get("weight_decay")
    if isinstance(decay, bool) or not isinstance(decay, (int, float)) or decay < 0:
        raise ConfigError(f"config.weight_decay must be a non-negative number, got {decay!r}")
    rmsprop = optax.inject_hyperparams(optax.rmsprop, static_args=("eps_in_sqrt", "centered", "nesterov"))(
        learning_rate=0.0,
        decay=float(config.rmsprop_decay),
        eps=float(config.rmsprop_epsilon),
        initial_scale=1.0,
        eps_in_sqrt=True,
        centered=False,
        momentum=float(config.momentum),
    )
    return optax.flatten(optax.chain(optax.add_decayed_weights(float(decay)), rmsprop))


def rmsprop_state(opt_state: Any) -> Any:
    """The ``inject_hyperparams`` RMSProp state inside a :func:`make_optimizer` state."""
    for part in opt_state:
        if hasattr(part, "hyperparams"):
            return part
    raise TypeError("not a make_optimizer state: no inject_hyperparams part")


def set_learning_rate(opt_state: Any, lr: jax.Array) -> Any:
    """Return ``opt_state`` (from :func:`make_optimizer`) with its learning rate replaced."""
    rms = rmsprop_state(opt_state)
    hyper = dict(rms.hyperparams)
    hyper["learning_rate"] = jnp.asarray(lr, jnp.float32)
    return tuple(rms._replace(hyperparams=hyper) if part is rms else part for part in opt_state)


def l2_loss(params: Any) -> jax.Array:
    """``Σ_v ½·‖v‖²`` over every leaf (TF's ``tf.nn.l2_loss`` summed), float32 scalar.

    One reduction over all leaves concatenated. For reporting: the training gradient of the L2
    term comes from :func:`make_optimizer`'s weight decay.
    """
    leaves = jax.tree_util.tree_leaves(params)
    if not leaves:
        return jnp.float32(0.0)
    flat = jnp.concatenate([jnp.ravel(p).astype(jnp.float32) for p in leaves])
    return 0.5 * jnp.sum(flat * flat)
