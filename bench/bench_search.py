"""Benchmark: 500-seed regularized evolution and random search to 1e7 simulated seconds on the
full-space synthetic store, against the plain-Python reference (tests/reference_search.py) in
the same process.

The reference runs on ``--ref-seeds`` seeds (it takes seconds per seed) and its wall time is
extrapolated linearly per seed to ``--seeds``; the ratio compares that with the JAX wall time
(compile excluded: a first call compiles, the median of ``--repeats`` timed calls is reported;
compile time printed separately).

    .venv/bin/python bench/bench_search.py [--seeds 500] [--max-time 1e7] [--ref-seeds 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import jax
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))

import reference_search as ref  # noqa: E402

import search  # noqa: E402
from nasbench_jax import api, space, synthetic  # noqa: E402
from nasbench_jax import store as st  # noqa: E402
from search import regret  # noqa: E402


class StoreRefBench(ref.RefBench):
    """The reference benchmark keyed by the store's module hashes (no re-hashing of 423k cells)."""

    def __init__(self, store):
        b = list(np.asarray(store.budgets)).index(108)
        self.rows = {h.decode(): i for i, h in enumerate(np.asarray(store.module_hash))}
        self.valid = np.asarray(store.final_validation_accuracy[:, b])
        self.test = np.asarray(store.final_test_accuracy[:, b])
        self.time = np.asarray(store.final_training_time[:, b])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=500)
    p.add_argument("--ref-seeds", type=int, default=3)
    p.add_argument("--max-time", type=float, default=1e7)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--max-evaluations", type=int, default=0, help="0: 3 x max_time / median time")
    p.add_argument("--store", default=None, help="an existing synthetic store (default: synthesize here)")
    args = p.parse_args()

    t0 = time.perf_counter()
    if args.store:
        store = st.open_store(args.store)
    else:
        store = synthetic.synthesize(space.enumerate_cells(progress=False), seed=0)
    print(f"full-space store (synthetic: {store.metadata.get('synthetic')}): {len(store.canonical_code)} "
          f"cells, ready in {time.perf_counter() - t0:.1f} s")
    table = api.QueryTable.from_store(store)
    best_test, best_valid = regret.optimum_from_store(store)
    med = float(np.median(store.final_training_time[:, -1]))
    max_evals = args.max_evaluations or int(3 * args.max_time / med)
    budget = search.SearchBudget(max_time_s=args.max_time, max_evaluations=max_evals)
    refb = StoreRefBench(store)
    print(f"devices: {jax.devices()}  seeds: {args.seeds}  max_time: {args.max_time:g} s  "
          f"max_evaluations: {max_evals}")
    for name in ("random_search", "regularized_evolution"):
        keys = jax.random.split(jax.random.key(0), args.seeds)
        t = time.perf_counter()
        tr = search.run(name, keys, table, budget=budget)
        jax.block_until_ready(tr)
        first = time.perf_counter() - t
        walls = []
        for r in range(args.repeats):
            t = time.perf_counter()
            tr = search.run(name, jax.random.split(jax.random.key(r + 1), args.seeds), table, budget=budget)
            jax.block_until_ready(tr)
            walls.append(time.perf_counter() - t)
        wall = statistics.median(walls)
        tr = jax.tree.map(np.asarray, tr)
        cut = int((tr.time_s[:, -1] <= args.max_time).sum())
        fin = regret.summarize(tr, best_test, best_valid, np.array([args.max_time])).test_regret[:, 0]
        # plain-Python reference
        t = time.perf_counter()
        ref_final = []
        for s in range(args.ref_seeds):
            if name == "random_search":
                acc, _ = ref.random_search(refb, s, args.max_time)
            else:
                acc, _ = ref.regularized_evolution(refb, s, args.max_time, 100, 10)
            ref_final.append(best_test - acc)
        ref_per_seed = (time.perf_counter() - t) / args.ref_seeds
        ref_total = ref_per_seed * args.seeds
        print(f"{name:>22}: JAX {args.seeds} seeds median {wall:.2f} s (first call incl. compile "
              f"{first:.1f} s; steps/seed mean {tr.num_steps.mean():.0f}; seeds cut short {cut}) | "
              f"reference {ref_per_seed:.2f} s/seed x {args.seeds} = {ref_total:.0f} s (extrapolated from "
              f"{args.ref_seeds}) | ratio {ref_total / wall:.0f}x | final test regret mean JAX "
              f"{fin.mean():.5f}, reference {np.mean(ref_final):.5f} ({args.ref_seeds} seeds)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
