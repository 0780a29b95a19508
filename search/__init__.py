"""JAX-native NAS algorithms over batched, jit-able NAS-Bench queries (reference spec §8.4).

Every method is a pure function of a PRNG key, a query table and a frozen config; all seeds
of a method run in one compiled program (``vmap`` over seeds inside one ``lax.while_loop``)::

    >>> import jax, search                                      # doctest: +SKIP
    >>> traj = search.run("regularized_evolution", jax.random.split(jax.random.key(0), 500),
    ...                   table, budget=search.SearchBudget(max_time_s=1e7))
    >>> reg = search.regret.summarize(traj, best_test_acc, best_valid_acc)

Methods (``ALGORITHMS``): ``random_search``, ``regularized_evolution``, ``reinforce``,
``local_search``, ``bananas`` (model-based: ensemble of MLPs), ``hyperband`` (multi-fidelity,
4/12/36/108 epochs, eta = 3). Budget accounting, invalid proposals and the trajectory layout
are described in :mod:`search.common`.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib

import jax

from nasbench_jax.errors import ConfigError
from search import regret  # noqa: F401  (search.regret.summarize)
from search.common import SearchBudget, Trajectory

__all__ = ["ALGORITHMS", "SearchBudget", "Trajectory", "get_algorithm", "default_config", "run",
           "check_budget", "replace_config", "regret", "UnknownAlgorithmError"]


class UnknownAlgorithmError(ConfigError):
    """The algorithm name is not in :data:`ALGORITHMS`."""


#: name -> (module, config class name)
ALGORITHMS = {
    "random_search": ("search.random_search", "RandomSearchConfig"),
    "regularized_evolution": ("search.evolution", "EvolutionConfig"),
    "reinforce": ("search.reinforce", "ReinforceConfig"),
    "local_search": ("search.local_search", "LocalSearchConfig"),
    "bananas": ("search.bananas", "BananasConfig"),
    "hyperband": ("search.hyperband", "HyperbandConfig"),
}


def _module(name: str):
    if name not in ALGORITHMS:
        raise UnknownAlgorithmError(
            f"unknown algorithm {name!r}; choose one of {', '.join(sorted(ALGORITHMS))}")
    return importlib.import_module(ALGORITHMS[name][0])


def get_algorithm(name: str):
    """The :class:`~search.common.Algorithm` registered as ``name``.

    Raises:
      UnknownAlgorithmError: no such algorithm.
    """
    return _module(name).ALGORITHM


def default_config(name: str):
    """The default (paper) config dataclass of algorithm ``name``."""
    return getattr(_module(name), ALGORITHMS[name][1])()


def check_budget(budget: SearchBudget) -> None:
    """Raise :class:`ConfigError` unless the budget is positive and finite."""
    import math

    t = float(budget.max_time_s)
    if not (t > 0) or math.isinf(t):
        raise ConfigError(f"max_time_s must be a positive finite number of seconds, got {budget.max_time_s}")
    if int(budget.max_evaluations) < 1:
        raise ConfigError(f"max_evaluations must be >= 1, got {budget.max_evaluations}")


@functools.partial(jax.jit, static_argnames=("algorithm", "config", "max_evaluations",
                                             "record_cells", "stop_halfway", "dedup"))
def _run_jit(algorithm, keys, table, config, max_time_s, max_evaluations, record_cells, stop_halfway,
             dedup):
    from search import common

    return common.run_search(algorithm, keys, table, config, max_time_s, max_evaluations,
                             record_cells=record_cells, stop_halfway=stop_halfway, dedup=dedup)


def run(name: str, keys: jax.Array, table, config=None, *, budget: SearchBudget = SearchBudget(),
        record_cells: bool = False, dedup: bool = False) -> Trajectory:
    """Run algorithm ``name`` once per key, all seeds in one compiled program.

    Args:
      name: a key of :data:`ALGORITHMS`.
      keys: ``[S]`` PRNG keys (``jax.random.split(jax.random.key(seed), S)``), one per run.
      table: the query table (``nasbench_jax.api.QueryTable.from_store(store)``).
      config: the algorithm's config dataclass (``default_config(name)`` when ``None``).
      budget: simulated-time limit and static step bound.
      record_cells: also return every raw proposal (``Trajectory.adjacency``/``operations``).
      dedup: skip proposals isomorphic to cells the seed already evaluated (see
        :func:`search.common.run_search`); off by default (the paper's protocol).

    Returns:
      A :class:`Trajectory` with arrays ``[S, budget.max_evaluations]``.

    Raises:
      UnknownAlgorithmError: unknown ``name``.
      ConfigError: a non-positive budget, a config of the wrong type or with bad values, or a
        table without the budgets the method needs.
    """
    algorithm = get_algorithm(name)
    cfg_cls = type(default_config(name))
    if config is None:
        config = cfg_cls()
    if not isinstance(config, cfg_cls):
        raise ConfigError(f"{name} needs a {cfg_cls.__name__}, got {type(config).__name__}")
    config.validate()
    check_budget(budget)
    _check_table_budgets(table, algorithm.budgets_needed)
    keys = jax.numpy.asarray(keys) if not isinstance(keys, jax.Array) else keys
    if keys.ndim != 1:
        raise ConfigError(f"keys must be a 1-D array of PRNG keys (jax.random.split), got shape {keys.shape}")
    return _run_jit(algorithm, keys, table, config, float(budget.max_time_s),
                    int(budget.max_evaluations), bool(record_cells), False, bool(dedup))


def _check_table_budgets(table, needed) -> None:
    budgets = getattr(table, "budgets", None)
    if budgets is None:
        return
    try:
        have = {int(b) for b in (budgets.tolist() if hasattr(budgets, "tolist") else budgets)}
    except TypeError:
        return
    missing = sorted(set(needed) - have)
    if missing:
        raise ConfigError(f"the store has budgets {sorted(have)} but this method needs {missing} epochs")


def replace_config(config, overrides: dict):
    """``dataclasses.replace`` with values parsed to the fields' types (for ``--config.x=v``).

    Raises:
      ConfigError: unknown field or unparsable value.
    """
    fields = {f.name: f for f in dataclasses.fields(config)}
    kw = {}
    for k, v in overrides.items():
        if k not in fields:
            raise ConfigError(f"{type(config).__name__} has no field {k!r} (fields: {', '.join(fields)})")
        cur = getattr(config, k)
        try:
            if isinstance(cur, bool):
                if str(v).lower() not in ("true", "false", "1", "0"):
                    raise ValueError(v)
                kw[k] = str(v).lower() in ("true", "1")
            else:
                kw[k] = type(cur)(v)
        except ValueError:
            raise ConfigError(f"cannot parse {v!r} for {k} ({type(cur).__name__})") from None
    return dataclasses.replace(config, **kw)
