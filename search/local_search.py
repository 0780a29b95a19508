"""Local search with first improvement over the 1-edit neighbourhood, restarting at local optima.

Start from a uniformly drawn valid cell. Visit its 31 neighbours at edit distance 1 (21 edge
flips, 5 vertices x 2 other ops; reference spec §8.3) in a fresh random order, skipping the
invalid ones (cost 0, as §8.4 counts them); move to the first neighbour whose queried
validation accuracy is strictly higher than the current cell's, and start over from there.
When every valid neighbour has been tried without improvement the cell is a local optimum
(under the noisy queried accuracies) and the search restarts from a new random valid cell.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from nasbench_jax.errors import ConfigError
from search import common

__all__ = ["LocalSearchConfig", "ALGORITHM", "local_search"]


@dataclasses.dataclass(frozen=True)
class LocalSearchConfig:
    """Attributes:
      candidates_per_step: uniform draws when (re)starting; the first valid one is used.
    """

    candidates_per_step: int = 16

    def validate(self) -> None:
        if int(self.candidates_per_step) < 1:
            raise ConfigError(f"candidates_per_step must be >= 1, got {self.candidates_per_step}")


def _init(key, config):
    return dict(key=key, bits=jnp.uint32(0), ops=jnp.zeros((common.NUM_OP_VARS,), jnp.int32),
                acc=jnp.float32(0.0), order=jnp.arange(common.NUM_NEIGHBOURS, dtype=jnp.int32),
                pos=jnp.int32(0), restart=jnp.bool_(True), proposed_restart=jnp.bool_(True),
                prop_bits=jnp.uint32(0), prop_ops=jnp.zeros((common.NUM_OP_VARS,), jnp.int32))


def _propose(state, step, config: LocalSearchConfig):
    key, k_rand = jax.random.split(state["key"])
    r_bits, r_ops = common.first_valid_config(*common.random_configs(k_rand, (config.candidates_per_step,)))
    nb_bits, nb_ops = common.neighbour_configs(state["bits"], state["ops"])
    ok = common.config_valid(nb_bits)[state["order"]]
    untried = jnp.arange(common.NUM_NEIGHBOURS) >= state["pos"]
    cand = ok & untried
    j = jnp.argmax(cand)
    restart = state["restart"] | ~cand.any()
    pick = state["order"][j]
    bits = jnp.where(restart, r_bits, nb_bits[pick])
    ops = jnp.where(restart, r_ops, nb_ops[pick])
    new = dict(state, key=key, pos=jnp.where(restart, 0, j + 1), proposed_restart=restart,
               prop_bits=bits, prop_ops=ops)
    return new, common.config_to_cells(bits, ops)


def _update(state, step, cell, result, config):
    key, k_perm = jax.random.split(state["key"])
    restart = state["proposed_restart"]
    move = restart | (result.valid & (result.valid_acc > state["acc"]))
    new_order = jax.random.permutation(k_perm, common.NUM_NEIGHBOURS).astype(jnp.int32)
    return dict(
        state, key=key,
        bits=jnp.where(move, state["prop_bits"], state["bits"]),
        ops=jnp.where(move, state["prop_ops"], state["ops"]),
        acc=jnp.where(move, result.valid_acc, state["acc"]),
        order=jnp.where(move, new_order, state["order"]), pos=jnp.where(move, 0, state["pos"]),
        # a restart cell missing from a partial store is replaced at once
        restart=restart & ~result.valid,
    )


ALGORITHM = common.Algorithm("local_search", _init, _propose, _update)


def local_search(key, table, config: LocalSearchConfig = LocalSearchConfig(),
                 budget: common.SearchBudget = common.SearchBudget()) -> common.Trajectory:
    """One seed of local search (see :func:`search.run` for many seeds in one program).

    Returns:
      A :class:`~search.common.Trajectory` with ``[max_evaluations]`` arrays.
    """
    from search import run

    return jax.tree.map(lambda x: x[0], run(ALGORITHM.name, key[None], table, config, budget=budget))
