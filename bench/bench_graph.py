"""Benchmark of the graph kernels against the plain-Python oracles, in one process.

Prints (medians over ``--repeats`` runs, after a warm-up run that compiles):

* full enumeration wall time (``space.enumerate_cells``: all 1,293,208 labelled graphs coded,
  423,624 representatives hashed) — the original script takes ~829 s on this machine;
* module hashes/s of ``graph.fingerprint`` and of the hashlib oracle (``reference.hash_module``)
  on the same batch of ``--n`` distinct cells drawn uniformly from the space, and their ratio;
* canonical codes/s of ``graph.canonical_code`` and of ``reference.canonical_code``, and ratio;
* ``graph.canonicalize`` (prune + validity + code) on raw ``space.random_cells`` samples.

The oracles are timed on a prefix of the batch (``--oracle-n`` cells) and reported per cell.

Usage::

    python bench/bench_graph.py                 # the issue's figures (batch of 100,000)
    python bench/bench_graph.py --quick         # smoke run
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np


def _median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=100_000, help="batch size for the kernels")
    p.add_argument("--oracle-n", type=int, default=3_000, help="cells timed with the hashlib oracle")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--quick", action="store_true", help="small sizes, V <= 6 enumeration")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if args.quick:
        args.n, args.oracle_n, args.repeats = 20_000, 500, 1

    import jax

    from nasbench_jax import graph, space
    from nasbench_jax.graph import reference as R

    rng = np.random.default_rng(args.seed)
    print(f"jax {jax.__version__} on {jax.devices()[0].platform}, batch {args.n:,}, repeats {args.repeats}, "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")

    # -- full enumeration (also warms up the compiled kernels) --------------------------------
    max_v = 6 if args.quick else 7
    t = time.perf_counter()
    enum = space.enumerate_cells(max_v, 9, progress=False)
    t_enum = time.perf_counter() - t
    print(f"enumeration V<={max_v}: {enum.num_cells:,} unique of {enum.total_labelled:,} labelled "
          f"in {t_enum:.1f} s (first run, includes compilation)")
    t_enum2 = _median_time(lambda: space.enumerate_cells(max_v, 9, progress=False), 1)
    print(f"enumeration V<={max_v}: {t_enum2:.1f} s (warm)")

    # -- a batch of distinct cells drawn uniformly from the space ----------------------------
    n = min(args.n, enum.num_cells)
    pick = rng.choice(enum.num_cells, n, replace=False)
    cells = tuple(np.ascontiguousarray(x[pick]) for x in enum.cells)
    adj, ops, nv = cells
    print(f"batch: {n:,} distinct cells, vertex counts {np.bincount(nv, minlength=8)[2:].tolist()} (V=2..7)")

    graph.fingerprint(*cells)  # warm-up
    t_fp = _median_time(lambda: graph.fingerprint(*cells), args.repeats)
    k = min(args.oracle_n, n)
    sub = [(adj[i, : nv[i], : nv[i]], ops[i, : nv[i]].tolist()) for i in range(k)]
    oracle = [R.hash_module(m, l) for m, l in sub]
    t_or = _median_time(lambda: [R.hash_module(m, l) for m, l in sub], args.repeats)
    got = graph.fingerprint_hex(tuple(x[:k] for x in cells))
    if [g.decode() for g in got] != oracle:
        raise SystemExit("kernel and oracle disagree")
    fp_rate, or_rate = n / t_fp, k / t_or
    print(f"hashes/s   kernel {fp_rate:12,.0f}   hashlib oracle {or_rate:10,.0f}   ratio {fp_rate / or_rate:6.1f}x")

    graph.canonical_code(*cells)
    t_cc = _median_time(lambda: graph.canonical_code(*cells), max(args.repeats, 3))
    k2 = min(max(k // 10, 100), n)
    t_cr = _median_time(lambda: [R.canonical_code(m, l) for m, l in sub[:k2]], 1)
    cc_rate, cr_rate = n / t_cc, k2 / t_cr
    print(f"codes/s    kernel {cc_rate:12,.0f}   python oracle  {cr_rate:10,.0f}   ratio {cc_rate / cr_rate:6.0f}x")

    # -- raw sampled cells: prune + validity + canonical code ---------------------------------
    raw = tuple(np.asarray(x) for x in space.random_cells(jax.random.key(args.seed), n))
    graph.canonicalize(*raw)
    t_can = _median_time(lambda: graph.canonicalize(*raw), max(args.repeats, 3))
    print(f"canonicalize raw random_cells: {n / t_can:12,.0f} cells/s")
    pruned, _ = graph.prune(*raw)
    graph.fingerprint(*pruned)
    t_fpr = _median_time(lambda: graph.fingerprint(*pruned), args.repeats)
    distinct = np.unique(graph.labelled_code_traced(*pruned)).size
    print(f"fingerprint of pruned random_cells ({distinct:,} distinct of {n:,}): {n / t_fpr:12,.0f} cells/s")
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
