"""Regret of search trajectories and their summaries on a log time grid (reference spec §8.4).

* **Test regret** at a time ``t``: ``best_test_acc - incumbent mean 108-epoch test accuracy``,
  where ``best_test_acc`` is the store's best mean 108-epoch test accuracy (the paper's
  ``0.9432``; the scripts' ``y_star_test = 0.056824...`` error) and the incumbent is the best
  queried-validation cell evaluated up to ``t``.
* **Validation regret**: ``best_valid_acc - incumbent's queried validation accuracy`` as the
  scripts compute it (``inc_valid - y_star_valid``); it can be slightly negative when a lucky
  repeat beats the best mean.
* Before a seed's first valid evaluation its incumbent accuracy counts as 0, so the regret is
  the best accuracy itself (the scripts start at +inf; a finite value keeps means defined).
* After a seed stops (its last step crossed ``max_time_s``) its incumbent is held.

:func:`summarize` interpolates step-wise (the incumbent at ``t`` is the one after the last
step with cumulative time ``<= t``) onto a log-spaced grid and returns per-seed regrets
``[S, T]`` plus mean, median and the 25 / 75 % quartiles over seeds ``[T]``.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from nasbench_jax.errors import ConfigError

__all__ = ["RegretSummary", "log_time_grid", "regret_at", "summarize", "optimum_from_store"]


@dataclasses.dataclass(frozen=True)
class RegretSummary:
    """Regret curves on a time grid.

    Attributes:
      time_grid: ``float64[T]`` simulated seconds.
      test_regret, valid_regret: ``float64[S, T]`` per seed.
      test_mean, test_median, test_q25, test_q75: ``float64[T]`` over seeds (same for valid_*).
    """

    time_grid: np.ndarray
    test_regret: np.ndarray
    valid_regret: np.ndarray
    test_mean: np.ndarray
    test_median: np.ndarray
    test_q25: np.ndarray
    test_q75: np.ndarray
    valid_mean: np.ndarray
    valid_median: np.ndarray
    valid_q25: np.ndarray
    valid_q75: np.ndarray


def log_time_grid(max_time_s: float, num: int = 200, min_time_s: float = 1e2) -> np.ndarray:
    """``num`` log-spaced times from ``min_time_s`` to ``max_time_s`` (float64)."""
    if not (max_time_s > min_time_s > 0) or num < 2:
        raise ConfigError(f"need max_time_s > min_time_s > 0 and num >= 2, got {max_time_s}, {min_time_s}, {num}")
    return np.geomspace(min_time_s, max_time_s, num)


def regret_at(time_s, active, incumbent_acc, best_acc: float, grid) -> np.ndarray:
    """Incumbent regret of each seed at each grid time.

    Args:
      time_s: ``[S, E]`` cumulative time per step; active: ``bool[S, E]``;
      incumbent_acc: ``[S, E]`` incumbent accuracy after each step (0 before the first valid).
      best_acc: the reference accuracy. grid: ``[T]`` times.

    Returns:
      ``float64[S, T]``.
    """
    time_s = np.asarray(time_s, np.float64)
    active = np.asarray(active, bool)
    inc = np.asarray(incumbent_acc, np.float64)
    grid = np.asarray(grid, np.float64)
    out = np.empty((time_s.shape[0], grid.shape[0]))
    for s in range(time_s.shape[0]):
        t = np.where(active[s], time_s[s], np.inf)  # inactive rows never count
        # steps with time <= g: the last one's incumbent (times are non-decreasing)
        k = np.searchsorted(t, grid, side="right") - 1
        acc = np.where(k >= 0, inc[s][np.maximum(k, 0)], 0.0)
        out[s] = best_acc - acc
    return out


def summarize(trajectory, best_test_acc: float, best_valid_acc: float, grid=None) -> RegretSummary:
    """Regret summary of a many-seed :class:`~search.common.Trajectory` (numpy or jax arrays).

    Args:
      trajectory: ``[S, E]`` trajectory.
      best_test_acc, best_valid_acc: the store's best mean 108-epoch test / validation accuracy.
      grid: time grid ``[T]`` (default: 200 log-spaced points up to the largest time reached).
    """
    time_s = np.asarray(trajectory.time_s)
    active = np.asarray(trajectory.active)
    if grid is None:
        grid = log_time_grid(max(float(time_s.max()), 1e3))
    test = regret_at(time_s, active, trajectory.incumbent_test_acc, best_test_acc, grid)
    valid = regret_at(time_s, active, trajectory.incumbent_valid_acc, best_valid_acc, grid)

    def stats(x):
        q25, med, q75 = np.percentile(x, [25, 50, 75], axis=0)
        return x.mean(0), med, q25, q75

    tm, tmed, t25, t75 = stats(test)
    vm, vmed, v25, v75 = stats(valid)
    return RegretSummary(np.asarray(grid, np.float64), test, valid, tm, tmed, t25, t75, vm, vmed, v25, v75)


def optimum_from_store(store, epochs: int = 108) -> tuple[float, float]:
    """``(best mean test accuracy, best mean validation accuracy)`` at ``epochs`` over the
    store's cells (means over the present repeats; NaN runs ignored).

    Raises:
      ConfigError: the store has no ``epochs`` budget or no data there.
    """
    budgets = [int(b) for b in np.asarray(store.budgets).tolist()]
    if epochs not in budgets:
        raise ConfigError(f"the store has budgets {budgets}, not {epochs} epochs")
    b = budgets.index(epochs)
    with np.errstate(invalid="ignore"), __import__("warnings").catch_warnings():
        __import__("warnings").simplefilter("ignore", RuntimeWarning)
        test = np.nanmean(np.asarray(store.final_test_accuracy[:, b], np.float64), axis=1)
        valid = np.nanmean(np.asarray(store.final_validation_accuracy[:, b], np.float64), axis=1)
    if np.all(np.isnan(test)):
        raise ConfigError(f"the store has no {epochs}-epoch test accuracies")
    return float(np.nanmax(test)), float(np.nanmax(valid))
