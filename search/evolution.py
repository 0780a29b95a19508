"""Regularized (aging) evolution, as the paper benchmarks it (reference spec §8.4).

* The population is filled with ``population_size`` uniformly drawn configurations (the
  scripts' ``cs.sample_configuration()``); invalid ones enter with accuracy 0 (error 1), cost 0.
* Each cycle draws ``tournament_size`` members uniformly **with replacement** (the scripts'
  ``random.choice`` loop; the notebook samples without replacement --
  ``tournament_with_replacement=False``), takes the one with the best queried validation
  accuracy (the first such in draw order), and mutates it.
* Mutation (the scripts' ``mutate_arch``): pick one of the 26 variables (21 edges, 5 ops)
  uniformly; flip the edge, or replace the op by one of the two *other* ops uniformly. The child
  is evaluated (possibly invalid: accuracy 0, cost 0) and appended; the oldest member dies.

The paper's settings are population 100 / tournament 10 (the default here); the notebook demo
uses population 50 / tournament 10 without replacement (``NOTEBOOK_CONFIG``). The population
lives in a ring buffer: at step ``i`` the child replaces slot ``i mod P``, which always holds
the oldest member.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from nasbench_jax import constants as C
from nasbench_jax.errors import ConfigError
from search import common

__all__ = ["EvolutionConfig", "NOTEBOOK_CONFIG", "ALGORITHM", "mutate", "regularized_evolution"]


@dataclasses.dataclass(frozen=True)
class EvolutionConfig:
    """Attributes:
      population_size: P, members alive at any time (paper 100).
      tournament_size: members drawn per tournament (paper 10).
      tournament_with_replacement: draw tournament members with replacement (scripts: True).
    """

    population_size: int = 100
    tournament_size: int = 10
    tournament_with_replacement: bool = True

    def validate(self) -> None:
        if int(self.population_size) < 1:
            raise ConfigError(f"population_size must be >= 1, got {self.population_size}")
        if int(self.tournament_size) < 1:
            raise ConfigError(f"tournament_size must be >= 1, got {self.tournament_size}")
        if not self.tournament_with_replacement and self.tournament_size > self.population_size:
            raise ConfigError("tournament_size must not exceed population_size when sampling "
                              "without replacement")


NOTEBOOK_CONFIG = EvolutionConfig(population_size=50, tournament_size=10,
                                  tournament_with_replacement=False)


def mutate(key, adjacency, operations):
    """The paper's mutation of one raw cell (``uint8[7,7]``, ``int8[7]``): one of the 26
    variables chosen uniformly; an edge is flipped, an op replaced by a different op."""
    k_var, k_op = jax.random.split(key)
    var = jax.random.randint(k_var, (), 0, common.NUM_EDGE_VARS + common.NUM_OP_VARS)
    bits, ops = common.cells_to_bits(adjacency, operations)
    is_edge = var < common.NUM_EDGE_VARS
    flip = (jnp.arange(common.NUM_EDGE_VARS) == var) & is_edge
    bits = jnp.where(flip, 1 - bits, bits)
    shift = jax.random.randint(k_op, (), 1, C.NUM_OPS)  # 1 or 2: one of the other ops
    which = (jnp.arange(common.NUM_OP_VARS) == var - common.NUM_EDGE_VARS) & ~is_edge
    ops = jnp.where(which, (ops + shift) % C.NUM_OPS, ops)
    return common.bits_to_cells(bits, ops)


def _init(key, config: EvolutionConfig):
    p = config.population_size
    return dict(key=key, adj=jnp.zeros((p, 7, 7), jnp.uint8), ops=jnp.zeros((p, 7), jnp.int8),
                acc=jnp.zeros((p,), jnp.float32))


def _propose(state, step, config: EvolutionConfig):
    p, t = config.population_size, config.tournament_size
    key, k_rand, k_tour, k_mut = jax.random.split(state["key"], 4)
    rand_adj, rand_ops = common.random_raw_cells(k_rand)
    if config.tournament_with_replacement:
        members = jax.random.randint(k_tour, (t,), 0, p)
    else:
        members = jax.random.permutation(k_tour, p)[:t]
    parent = members[jnp.argmax(state["acc"][members])]
    child_adj, child_ops = mutate(k_mut, state["adj"][parent], state["ops"][parent])
    filling = step < p
    adj = jnp.where(filling, rand_adj, child_adj)
    ops = jnp.where(filling, rand_ops, child_ops)
    return dict(state, key=key), (adj, ops)


def _update(state, step, cell, result, config: EvolutionConfig):
    slot = step % config.population_size
    adj, ops = cell
    return dict(state, adj=state["adj"].at[slot].set(adj), ops=state["ops"].at[slot].set(ops),
                acc=state["acc"].at[slot].set(result.valid_acc))


ALGORITHM = common.Algorithm("regularized_evolution", _init, _propose, _update)


def regularized_evolution(key, table, config: EvolutionConfig = EvolutionConfig(),
                          budget: common.SearchBudget = common.SearchBudget()) -> common.Trajectory:
    """One seed of regularized evolution (see :func:`search.run` for many seeds at once).

    Returns:
      A :class:`~search.common.Trajectory` with ``[max_evaluations]`` arrays.
    """
    from search import run

    return jax.tree.map(lambda x: x[0], run(ALGORITHM.name, key[None], table, config, budget=budget))
