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

__all__ = ["EvolutionConfig", "NOTEBOOK_CONFIG", "ALGORITHM", "mutate", "mutate_config", "regularized_evolution"]


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


def _mutate_word(word, bits, ops):
    """The paper's mutation driven by one random ``uint32`` word: ``word mod 26`` picks the
    variable, the next base-2 digit the op shift (1 or 2). Uniform up to a relative bias below
    1e-8 (2^32 is not a multiple of 52)."""
    var = (word % jnp.uint32(common.NUM_EDGE_VARS + common.NUM_OP_VARS)).astype(jnp.int32)
    shift = 1 + ((word // jnp.uint32(common.NUM_EDGE_VARS + common.NUM_OP_VARS)) % jnp.uint32(2)).astype(jnp.int32)
    is_edge = var < common.NUM_EDGE_VARS
    flip = jnp.left_shift(jnp.uint32(1), jnp.clip(var, 0, common.NUM_EDGE_VARS - 1).astype(jnp.uint32))
    bits = jnp.where(is_edge, bits ^ flip, bits)
    which = (jnp.arange(common.NUM_OP_VARS) == var - common.NUM_EDGE_VARS) & ~is_edge
    ops = jnp.where(which, (ops + shift) % C.NUM_OPS, ops)
    return bits, ops


def mutate_config(key, bits, ops):
    """The paper's mutation of one packed configuration (``uint32`` edges, ``int[5]`` ops):
    one of the 26 variables chosen uniformly; an edge is flipped, an op replaced by one of the
    two other ops uniformly."""
    return _mutate_word(jax.random.bits(key, (), jnp.uint32), bits, ops)


def mutate(key, adjacency, operations):
    """:func:`mutate_config` on one raw cell (``uint8[7,7]``, ``int8[7]``) -> raw cell."""
    bits = common.pack_edges(adjacency)
    ops = jnp.asarray(operations)[1 : C.MAX_VERTICES - 1].astype(jnp.int32)
    return common.config_to_cells(*mutate_config(key, bits, ops))


def _init(key, config: EvolutionConfig):
    p = config.population_size
    return dict(key=key, bits=jnp.zeros((p,), jnp.uint32), ops=jnp.zeros((p, common.NUM_OP_VARS), jnp.int32),
                acc=jnp.zeros((p,), jnp.float32), child_bits=jnp.uint32(0),
                child_ops=jnp.zeros((common.NUM_OP_VARS,), jnp.int32))


def _propose(state, step, config: EvolutionConfig):
    p, t = config.population_size, config.tournament_size
    key, sub = jax.random.split(state["key"])
    # one block of random words per step: 2 for a fresh configuration, 1 for the mutation,
    # t for the tournament (index = word mod P, relative bias < P / 2^32)
    words = jax.random.bits(sub, (3 + t,), jnp.uint32)
    rand_bits = words[0] & jnp.uint32((1 << common.NUM_EDGE_VARS) - 1)
    code = (words[1] % jnp.uint32(243)).astype(jnp.int32)
    rand_ops = (code // jnp.asarray([81, 27, 9, 3, 1], jnp.int32)) % C.NUM_OPS
    if config.tournament_with_replacement:
        members = (words[3:] % jnp.uint32(p)).astype(jnp.int32)
    else:
        members = jax.random.permutation(jax.random.fold_in(sub, 1), p)[:t]
    parent = members[jnp.argmax(state["acc"][members])]
    mut_bits, mut_ops = _mutate_word(words[2], state["bits"][parent], state["ops"][parent])
    filling = step < p
    bits = jnp.where(filling, rand_bits, mut_bits)
    ops = jnp.where(filling, rand_ops, mut_ops)
    return dict(state, key=key, child_bits=bits, child_ops=ops), common.config_to_cells(bits, ops)


def _update(state, step, cell, result, config: EvolutionConfig):
    slot = step % config.population_size
    return dict(state, bits=state["bits"].at[slot].set(state["child_bits"]),
                ops=state["ops"].at[slot].set(state["child_ops"]),
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
