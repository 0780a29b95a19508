"""Hyperband over the dataset's budgets 4/12/36/108 epochs, eta = 3 (reference spec §8.4).

Brackets follow HpBandSter (the implementation the paper used): with ``s_max = 3`` the
iterations cycle through brackets ``s = 3, 2, 1, 0``; bracket ``s`` starts
``floor(4 / (s+1)) * 3^s`` configurations at ``108 / 3^s`` epochs and successive halving keeps
the best third (by queried validation accuracy; ties keep the earlier) at each higher budget:

    s=3: 27 @ 4, 9 @ 12, 3 @ 36, 1 @ 108      s=2: 9 @ 12, 3 @ 36, 1 @ 108
    s=1: 6 @ 36, 2 @ 108                      s=0: 4 @ 108

i.e. 65 evaluations per cycle, each one loop step, the same budget for every seed at a given
step (so the query budget is a ``lax.switch`` on the step). New configurations are uniform
draws from the configuration space (HpBandSter's random sampler); invalid ones take their slot
with accuracy 0 and cost 0, as in the scripts. Every evaluation is charged the training time
*at its budget* (separate runs per budget, §8.1), and every evaluation may become the
incumbent (its queried validation accuracy at its budget), scored by its mean 108-epoch test
accuracy, exactly as the benchmark records HB runs.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from nasbench_jax import constants as C
from search import common

__all__ = ["HyperbandConfig", "ALGORITHM", "hyperband", "SCHEDULE"]


@dataclasses.dataclass(frozen=True)
class HyperbandConfig:
    """Hyperband has no free settings here: eta = 3 and the budgets are the dataset's."""

    def validate(self) -> None:
        return None


def _schedule(eta=3, s_max=3):
    rows = []  # (budget index, rung start, previous rung start, previous rung size, rank)
    for s in range(s_max, -1, -1):
        n0 = (s_max + 1) // (s + 1) * eta ** s
        sizes = [max(n0 // eta ** i, 1) for i in range(s + 1)]
        prev_start = -1
        for i, n in enumerate(sizes):
            start = len(rows)
            for j in range(n):
                rows.append((s_max - s + i, start, prev_start, sizes[i - 1] if i else 0, j))
            prev_start = start
    return np.array(rows, np.int32)


#: One Hyperband iteration over all brackets: ``[65, 5]`` int32 rows of
#: (budget index into 4/12/36/108, rung start, previous rung start, previous rung size, rank).
SCHEDULE = _schedule()
CYCLE = SCHEDULE.shape[0]
_WINDOW = int(SCHEDULE[:, 3].max())  # 27


def _init(key, config):
    return dict(key=key, adj=jnp.zeros((CYCLE + _WINDOW, 7, 7), jnp.uint8),
                ops=jnp.zeros((CYCLE + _WINDOW, 7), jnp.int8),
                acc=jnp.full((CYCLE + _WINDOW,), -1.0, jnp.float32))


def _propose(state, step, config):
    row = jnp.asarray(SCHEDULE)[step % CYCLE]
    prev_start, prev_n, rank = row[2], row[3], row[4]
    key, k_rand = jax.random.split(state["key"])
    r_adj, r_ops = common.random_raw_cells(k_rand)
    window = jax.lax.dynamic_slice(state["acc"], (jnp.maximum(prev_start, 0),), (_WINDOW,))
    window = jnp.where(jnp.arange(_WINDOW) < prev_n, window, -jnp.inf)
    order = jnp.argsort(-window, stable=True)
    src = jnp.maximum(prev_start, 0) + order[rank]
    promote = prev_n > 0
    adj = jnp.where(promote, state["adj"][src], r_adj)
    ops = jnp.where(promote, state["ops"][src], r_ops)
    return dict(state, key=key), (adj, ops)


def _update(state, step, cell, result, config):
    p = step % CYCLE
    adj, ops = cell
    return dict(state, adj=state["adj"].at[p].set(adj), ops=state["ops"].at[p].set(ops),
                acc=state["acc"].at[p].set(result.valid_acc))


def _budget_index(step):
    return jnp.asarray(SCHEDULE[:, 0])[step % CYCLE]


ALGORITHM = common.Algorithm("hyperband", _init, _propose, _update, budget_index=_budget_index,
                             budgets_needed=tuple(C.BUDGETS))


def hyperband(key, table, config: HyperbandConfig = HyperbandConfig(),
              budget: common.SearchBudget = common.SearchBudget()) -> common.Trajectory:
    """One seed of Hyperband (see :func:`search.run` for many seeds in one program).

    Returns:
      A :class:`~search.common.Trajectory` with ``[max_evaluations]`` arrays.
    """
    from search import run

    return jax.tree.map(lambda x: x[0], run(ALGORITHM.name, key[None], table, config, budget=budget))
