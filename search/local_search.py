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

__all__ = ["LocalSearchConfig", "ALGORITHM"]


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
    return dict(key=key, adj=jnp.zeros((7, 7), jnp.uint8), ops=jnp.zeros((7,), jnp.int8),
                acc=jnp.float32(0.0), order=jnp.arange(common.NUM_NEIGHBOURS, dtype=jnp.int32),
                pos=jnp.int32(0), restart=jnp.bool_(True), proposed_restart=jnp.bool_(True))


def _propose(state, step, config: LocalSearchConfig):
    key, k_rand = jax.random.split(state["key"])
    r_adj, r_ops = common.first_valid(*common.random_raw_cells(k_rand, (config.candidates_per_step,)))
    nb_adj, nb_ops = common.neighbours(state["adj"], state["ops"])
    ok = common.raw_valid(nb_adj)[state["order"]]
    untried = jnp.arange(common.NUM_NEIGHBOURS) >= state["pos"]
    cand = ok & untried
    j = jnp.argmax(cand)
    restart = state["restart"] | ~cand.any()
    pick = state["order"][j]
    adj = jnp.where(restart, r_adj, nb_adj[pick])
    ops = jnp.where(restart, r_ops, nb_ops[pick])
    return dict(state, key=key, pos=jnp.where(restart, 0, j + 1), proposed_restart=restart), (adj, ops)


def _update(state, step, cell, result, config):
    key, k_perm = jax.random.split(state["key"])
    restart = state["proposed_restart"]
    move = restart | (result.valid & (result.valid_acc > state["acc"]))
    new_order = jax.random.permutation(k_perm, common.NUM_NEIGHBOURS).astype(jnp.int32)
    adj, ops = cell
    return dict(
        state, key=key,
        adj=jnp.where(move, adj, state["adj"]), ops=jnp.where(move, ops, state["ops"]),
        acc=jnp.where(move, result.valid_acc, state["acc"]),
        order=jnp.where(move, new_order, state["order"]), pos=jnp.where(move, 0, state["pos"]),
        # a restart cell missing from a partial store is replaced at once
        restart=restart & ~result.valid,
    )


ALGORITHM = common.Algorithm("local_search", _init, _propose, _update)
