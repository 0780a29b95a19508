"""REINFORCE over independent categorical variables (reference spec §8.4).

One categorical distribution per variable -- 21 edges (2 choices) and 5 ops (3 choices) --
with logits initialised at 0 and optimised directly by REINFORCE with learning rate 0.5 (the
paper's setting). As in the benchmark scripts (``run_rl.py``):

* samples are redrawn until the reward (queried validation accuracy) exceeds 0.001, i.e.
  invalid cells are skipped (they cost 0). Here ``candidates_per_step`` samples are drawn at
  once and the first valid one is evaluated; if that one is missing from a partial store the
  step is recorded as invalid and no update happens (the scripts would simply draw again);
* the baseline is a bias-corrected exponential moving average of the rewards (momentum 0.9),
  updated with the current reward *before* the advantage ``reward - baseline`` is formed;
* the logits move by ``lr * advantage * d log p(sample) / d logits`` (``onehot - softmax``).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from nasbench_jax import constants as C
from nasbench_jax.errors import ConfigError
from search import common

__all__ = ["ReinforceConfig", "ALGORITHM", "reinforce"]


@dataclasses.dataclass(frozen=True)
class ReinforceConfig:
    """Attributes:
      learning_rate: step size of the logits (paper 0.5).
      momentum: of the reward baseline (scripts 0.9).
      candidates_per_step: policy samples per step; the first valid one is evaluated.
    """

    learning_rate: float = 0.5
    momentum: float = 0.9
    candidates_per_step: int = 32

    def validate(self) -> None:
        if not float(self.learning_rate) > 0:
            raise ConfigError(f"learning_rate must be > 0, got {self.learning_rate}")
        if not 0.0 <= float(self.momentum) < 1.0:
            raise ConfigError(f"momentum must be in [0, 1), got {self.momentum}")
        if int(self.candidates_per_step) < 1:
            raise ConfigError(f"candidates_per_step must be >= 1, got {self.candidates_per_step}")


def _init(key, config):
    return dict(key=key, edge_logits=jnp.zeros((common.NUM_EDGE_VARS, 2), jnp.float32),
                op_logits=jnp.zeros((common.NUM_OP_VARS, C.NUM_OPS), jnp.float32),
                num=jnp.float32(0.0), den=jnp.float32(0.0))


def _propose(state, step, config: ReinforceConfig):
    key, k_e, k_o = jax.random.split(state["key"], 3)
    k = config.candidates_per_step
    bits = jax.random.categorical(k_e, state["edge_logits"], shape=(k, common.NUM_EDGE_VARS))
    ops = jax.random.categorical(k_o, state["op_logits"], shape=(k, common.NUM_OP_VARS))
    packed = jnp.sum(bits.astype(jnp.uint32) << jnp.arange(common.NUM_EDGE_VARS, dtype=jnp.uint32),
                     axis=-1, dtype=jnp.uint32)
    return dict(state, key=key), common.config_to_cells(*common.first_valid_config(packed, ops))


def _update(state, step, cell, result, config: ReinforceConfig):
    bits, ops = common.cells_to_bits(*cell)
    reward = result.valid_acc
    use = result.valid & (reward > 0.001)
    m = config.momentum
    num = m * state["num"] + (1 - m) * reward
    den = m * state["den"] + (1 - m)
    advantage = reward - num / den
    g_e = jax.nn.one_hot(bits, 2) - jax.nn.softmax(state["edge_logits"], -1)
    g_o = jax.nn.one_hot(ops, C.NUM_OPS) - jax.nn.softmax(state["op_logits"], -1)
    lr = config.learning_rate * advantage
    new = dict(state, edge_logits=state["edge_logits"] + lr * g_e,
               op_logits=state["op_logits"] + lr * g_o, num=num, den=den)
    return jax.tree.map(lambda a, b: jnp.where(use, a, b), new, state)


ALGORITHM = common.Algorithm("reinforce", _init, _propose, _update)


def reinforce(key, table, config: ReinforceConfig = ReinforceConfig(),
              budget: common.SearchBudget = common.SearchBudget()) -> common.Trajectory:
    """One seed of REINFORCE (see :func:`search.run` for many seeds in one program).

    Returns:
      A :class:`~search.common.Trajectory` with ``[max_evaluations]`` arrays.
    """
    from search import run

    return jax.tree.map(lambda x: x[0], run(ALGORITHM.name, key[None], table, config, budget=budget))
