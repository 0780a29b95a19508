"""Random search (reference spec §8.4): uniform over the configuration space.

Each step draws configurations uniformly (21 fair edge bits, 5 uniform ops) and evaluates the
first valid one among ``candidates_per_step`` draws. The benchmark scripts evaluate every draw
and record invalid ones at cost 0 with error 1; those records never become incumbents and
add no time, so skipping them here gives the same incumbent-versus-time curve in distribution
(rejection sampling) while spending loop steps only on real evaluations. If all draws of a
step are invalid (probability ~0.7^K), the step is recorded as invalid, exactly as the scripts
would record it.
"""

from __future__ import annotations

import dataclasses

import jax

from nasbench_jax.errors import ConfigError
from search import common

__all__ = ["RandomSearchConfig", "ALGORITHM", "random_search"]


@dataclasses.dataclass(frozen=True)
class RandomSearchConfig:
    """Attributes:
      candidates_per_step: uniform draws per step; the first valid one is evaluated.
    """

    candidates_per_step: int = 16

    def validate(self) -> None:
        if int(self.candidates_per_step) < 1:
            raise ConfigError(f"candidates_per_step must be >= 1, got {self.candidates_per_step}")


def _init(key, config):
    return key


def _propose(key, step, config: RandomSearchConfig):
    key, sub = jax.random.split(key)
    bits, ops = common.first_valid_config(*common.random_configs(sub, (config.candidates_per_step,)))
    return key, common.config_to_cells(bits, ops)


def _update(state, step, cell, result, config):
    return state


ALGORITHM = common.Algorithm("random_search", _init, _propose, _update)


def random_search(key, table, config: RandomSearchConfig = RandomSearchConfig(),
                  budget: common.SearchBudget = common.SearchBudget()) -> common.Trajectory:
    """One seed of random search (see :func:`search.run` for many seeds at once).

    Args:
      key: PRNG key. table: the query table. config: settings. budget: time / step limits.

    Returns:
      A :class:`~search.common.Trajectory` with ``[max_evaluations]`` arrays.
    """
    from search import run

    return jax.tree.map(lambda x: x[0], run(ALGORITHM.name, key[None], table, config, budget=budget))
