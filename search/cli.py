"""``nasbench-jax search`` and ``nasbench-jax plot``.

::

    nasbench-jax search --store nb101.npz --algorithm regularized_evolution --seeds 500 \\
        --max-time 1e7 --out runs.npz [--config.population_size=50]
    nasbench-jax plot runs.npz other.npz --out regret.png

``runs.npz`` holds ``time_grid [T]``, ``test_regret`` / ``valid_regret [seeds, T]``, the per-step
``final_time_s`` and ``num_steps [seeds]``, and ``metadata`` (JSON: algorithm, its settings,
seeds, budget, store, reference accuracies).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys

import numpy as np

from nasbench_jax._io import atomic_path, atomic_write
from nasbench_jax.errors import ConfigError, NASBenchError

#: rough evaluations per (max_time / median 108-epoch time), per method; invalid proposals and
#: short budgets take loop steps too (see search.common).
_STEP_FACTOR = {"hyperband": 16.0}


class RunsFileError(NASBenchError, ValueError):
    """A runs file is missing or malformed."""


def _all_config_fields():
    import search

    fields = {}
    for name in search.ALGORITHMS:
        for f in dataclasses.fields(search.default_config(name)):
            fields.setdefault(f.name, f)
    return fields


def configure_search(parser: argparse.ArgumentParser) -> None:
    import search

    parser.add_argument("--store", required=True, help="results store (.npz)")
    parser.add_argument("--algorithm", required=True, help=f"one of: {', '.join(search.ALGORITHMS)}")
    parser.add_argument("--seeds", type=int, default=500, help="independent runs (default 500)")
    parser.add_argument("--seed", type=int, default=0, help="master PRNG seed")
    parser.add_argument("--max-time", type=float, default=1e7, help="simulated seconds per run (default 1e7)")
    parser.add_argument("--max-evaluations", type=int, default=None,
                        help="static bound on steps per run (default: estimated from the store)")
    parser.add_argument("--chunk", type=int, default=100, help="seeds per device call (progress granularity)")
    parser.add_argument("--grid-points", type=int, default=200, help="points of the log time grid")
    parser.add_argument("--dedup", action="store_true",
                        help="skip proposals isomorphic to already evaluated cells (not the paper's protocol)")
    parser.add_argument("--out", required=True, help="output .npz")
    for name in sorted(_all_config_fields()):
        parser.add_argument(f"--config.{name}", dest=f"config__{name}", default=None,
                            metavar="V", help=argparse.SUPPRESS)


def save_runs(path: str, *, time_grid, test_regret, valid_regret, num_steps, final_time_s, metadata: dict) -> None:
    """Write a runs file (atomically): the arrays plus ``metadata`` as JSON."""
    with atomic_write(path, "wb") as f:
        np.savez(f, time_grid=time_grid, test_regret=test_regret, valid_regret=valid_regret,
                 num_steps=num_steps, final_time_s=final_time_s, metadata=np.array(json.dumps(metadata)))


def run_search(args) -> int:
    import jax
    from tqdm import tqdm

    import search
    from nasbench_jax import api, store as st
    from search import regret

    if args.algorithm not in search.ALGORITHMS:
        raise search.UnknownAlgorithmError(
            f"unknown algorithm {args.algorithm!r}; choose one of {', '.join(sorted(search.ALGORITHMS))}")
    if args.seeds < 1 or args.chunk < 1:
        raise ConfigError("--seeds and --chunk must be >= 1")
    if not (args.max_time > 0) or math.isinf(args.max_time):
        raise ConfigError(f"--max-time must be a positive number of seconds, got {args.max_time}")
    config = search.default_config(args.algorithm)
    overrides = {k[len("config__"):]: v for k, v in vars(args).items() if k.startswith("config__") and v is not None}
    config = search.replace_config(config, overrides)
    config.validate()
    if not os.path.exists(args.store):
        raise ConfigError(f"store not found: {args.store}")
    store = st.open_store(args.store)
    budgets = [int(b) for b in np.asarray(store.budgets)]
    needed = search.get_algorithm(args.algorithm).budgets_needed
    missing = sorted(set(needed) - set(budgets))
    if missing:
        raise ConfigError(f"store {args.store} has budgets {budgets}; {args.algorithm} needs {missing} epochs")
    best_test, best_valid = regret.optimum_from_store(store)
    if args.max_evaluations is None:
        b108 = budgets.index(108)
        t = np.asarray(store.final_training_time[:, b108], np.float64)
        med = float(np.nanmedian(t)) if np.isfinite(t).any() else 1000.0
        factor = _STEP_FACTOR.get(args.algorithm, 3.5)
        args.max_evaluations = int(min(200_000, max(64, math.ceil(factor * args.max_time / med))))
    budget = search.SearchBudget(max_time_s=args.max_time, max_evaluations=args.max_evaluations)
    search.check_budget(budget)
    print(f"loading {args.store} ({store.num_cells if hasattr(store, 'num_cells') else len(store.canonical_code)} cells) ...",
          file=sys.stderr)
    table = api.QueryTable.from_store(store)
    keys = jax.random.split(jax.random.key(args.seed), args.seeds)
    grid = regret.log_time_grid(args.max_time, args.grid_points)
    tests, valids, steps, final_t = [], [], [], []
    with tqdm(total=args.seeds, desc=f"{args.algorithm} (first chunk compiles)", unit="seed") as bar:
        for lo in range(0, args.seeds, args.chunk):
            tr = search.run(args.algorithm, keys[lo : lo + args.chunk], table, config, budget=budget,
                            dedup=args.dedup)
            tr = jax.tree.map(np.asarray, tr)
            summ = regret.summarize(tr, best_test, best_valid, grid)
            tests.append(summ.test_regret)
            valids.append(summ.valid_regret)
            steps.append(tr.num_steps)
            final_t.append(tr.time_s[:, -1])
            bar.set_description(args.algorithm)
            bar.update(tr.num_steps.shape[0])
    steps = np.concatenate(steps)
    final_t = np.concatenate(final_t)
    short = int(np.sum(final_t <= args.max_time))
    if short:
        print(f"warning: {short} of {args.seeds} runs hit --max-evaluations={args.max_evaluations} before "
              f"--max-time; raise --max-evaluations", file=sys.stderr)
    meta = dict(algorithm=args.algorithm, config=dataclasses.asdict(config), seeds=args.seeds, seed=args.seed,
                max_time_s=args.max_time, max_evaluations=args.max_evaluations, dedup=bool(args.dedup), store=os.path.abspath(args.store),
                store_synthetic=bool(store.metadata.get("synthetic", False)), best_test_accuracy=best_test,
                best_valid_accuracy=best_valid, runs_cut_short=short)
    test = np.concatenate(tests)
    save_runs(args.out, time_grid=grid, test_regret=test, valid_regret=np.concatenate(valids),
              num_steps=steps, final_time_s=final_t, metadata=meta)
    print(f"{args.algorithm}: {args.seeds} runs; final test regret mean {test[:, -1].mean():.5f}, "
          f"median {np.median(test[:, -1]):.5f} -> {args.out}", file=sys.stderr)
    return 0


_DEFAULT_TITLE = "Test regret (mean, 25-75 % band)"


def configure_plot(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("runs", nargs="+", help="runs .npz files from `nasbench-jax search`")
    parser.add_argument("--out", required=True, help="output image (.png, .pdf, ...)")
    parser.add_argument("--title", default=_DEFAULT_TITLE)


def load_runs(path: str) -> dict:
    """Read a runs file. Raises :class:`RunsFileError` naming what is wrong."""
    if not os.path.exists(path):
        raise RunsFileError(f"runs file not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except (OSError, ValueError) as e:
        raise RunsFileError(f"{path} is not a readable .npz: {e}") from None
    for k in ("time_grid", "test_regret", "metadata"):
        if k not in data:
            raise RunsFileError(f"{path} lacks '{k}' (not a `nasbench-jax search` output)")
    data["metadata"] = json.loads(str(data["metadata"]))
    return data


def run_plot(args) -> int:
    plot_runs(args.runs, args.out, title=args.title)
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


def plot_runs(paths, out: str, title: str = _DEFAULT_TITLE) -> None:
    """Draw test regret vs simulated time (log-log; mean and 25-75 % band per runs file)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = [load_runs(p) for p in paths]
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for r in runs:
        t = r["time_grid"]
        reg = np.asarray(r["test_regret"], np.float64)
        best = r["metadata"].get("best_test_accuracy")
        # curves start once every run has an incumbent (before that a run's regret is the best
        # accuracy itself, which would dwarf the rest of the plot)
        started = np.ones(t.shape, bool) if best is None else np.all(reg < best - 1e-9, axis=0)
        reg = np.clip(reg, 1e-5, None)  # log scale: regret 0 shown at 1e-5
        q25, q75 = np.percentile(reg, [25, 75], axis=0)
        name = r["metadata"]["algorithm"]
        mean = np.where(started, reg.mean(0), np.nan)
        line, = ax.plot(t, mean, label=f"{name} ({reg.shape[0]} runs)")
        ax.fill_between(t, q25, q75, where=started, color=line.get_color(), alpha=0.2, linewidth=0)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("simulated training time (s)")
    ax.set_ylabel("test regret")
    synthetic = any(r["metadata"].get("store_synthetic") for r in runs)
    ax.set_title(title + (" - SYNTHETIC store" if synthetic else ""))
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    ext = os.path.splitext(out)[1] or ".png"
    with atomic_path(out, suffix=ext) as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)
