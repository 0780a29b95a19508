"""``nasbench-jax demo``: the main job, offline, on what the package ships.

1. Enumerates the whole NAS-Bench-101 space with the jit-compiled kernel (423,624 cells) and
   checks the counts against the published ones.
2. Opens the embedded store of 1,052 real NAS-Bench-101 records, re-derives every stored hash
   with the kernel, queries a cell through the drop-in ``NASBench`` API and all cells at once
   through the jit-compiled batched query, from randomly relabelled (isomorphic) spellings.
3. Counts the trainable parameters of the README's Inception-like cell (closed form).
4. Builds a full-space store with SYNTHETIC metrics and runs random search and regularized
   evolution over many seeds in one compiled program each, writing a regret plot.

Everything runs on the CPU in a minute or two; ``--out`` receives the enumeration, the runs and
the plot.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time

import numpy as np

PUBLISHED_CUMULATIVE = {2: 1, 3: 7, 4: 91, 5: 2_532, 6: 64_542, 7: 423_624}

def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="nasbench_demo", help="output folder (default: ./nasbench_demo)")
    parser.add_argument("--seeds", type=int, default=100, help="search runs per algorithm (default 100)")
    parser.add_argument("--max-time", type=float, default=1e6,
                        help="simulated training seconds per search run (default 1e6)")
    parser.add_argument("--seed", type=int, default=0)


def _say(msg: str) -> None:
    print(msg, flush=True)


def _relabel(batch, rng):
    """Random isomorphic respellings: permute interior vertices within a topological order."""
    from nasbench_jax import space

    adj, ops, nv = (np.array(x) for x in batch)
    for i in range(len(nv)):
        v = int(nv[i])
        for _ in range(20):
            perm = np.concatenate([[0], 1 + rng.permutation(v - 2), [v - 1]])  # perm[new] = old
            a = adj[i, :v, :v][np.ix_(perm, perm)]
            if not np.tril(a).any():
                adj[i, :v, :v] = a
                ops[i, :v] = ops[i, :v][perm]
                break
    return space.Cells(adj, ops, nv)


def run(args) -> int:
    import jax

    import search
    from nasbench_jax import api, cells, graph, model, space, store as st, synthetic
    from nasbench_jax.spec import ModelSpec
    from search import regret
    from search.cli import plot_runs, save_runs

    if args.seeds < 1 or not args.max_time > 0:
        from nasbench_jax.errors import ConfigError

        raise ConfigError("--seeds must be >= 1 and --max-time > 0")
    os.makedirs(args.out, exist_ok=True)
    rng = np.random.default_rng(args.seed)

    _say("== 1. Enumerating the NAS-Bench-101 space (jit-compiled hash + canonical-code kernel)")
    t0 = time.perf_counter()
    enum = space.enumerate_cells(max_vertices=7, max_edges=9, progress=True)
    dt = time.perf_counter() - t0
    nv = np.asarray(enum.cells.num_vertices)
    for v in range(2, 8):
        got = int(np.sum(nv <= v))
        ok = "ok" if got == PUBLISHED_CUMULATIVE[v] else f"MISMATCH (published {PUBLISHED_CUMULATIVE[v]})"
        _say(f"   up to {v} vertices: {got:>7,} unique cells  {ok}")
    hashes = graph.digest_to_hex(np.asarray(enum.fingerprints))
    _say(f"   {len(hashes):,} cells, {len(set(hashes.tolist())):,} distinct original hashes, "
         f"{len(np.unique(enum.codes)):,} distinct canonical codes; {dt:.1f} s")
    space.save_enumeration(enum, os.path.join(args.out, "cells.npz"))

    _say("\n== 2. The embedded store: 1,052 real NAS-Bench-101 records")
    path = api.example_store_path()
    real = st.open_store(path)
    real_cells = space.Cells(np.asarray(real.adjacency), np.asarray(real.operations), np.asarray(real.num_vertices))
    kernel_hex = graph.digest_to_hex(np.asarray(graph.fingerprint(*real_cells)))
    same = int(np.sum(kernel_hex == np.asarray(real.module_hash)))
    _say(f"   kernel hash == published hash for {same:,} / {len(kernel_hex):,} records")
    nb = api.NASBench(path, seed=args.seed)
    for h in nb.hash_iterator():  # a cell with complete records (test accuracy and 3 repeats)
        fixed, computed = nb.get_metrics_from_hash(h)
        runs108 = computed.get(108, [])
        if len(runs108) == 3 and all(np.isfinite(r["final_test_accuracy"]) for r in runs108):
            break
    spec = ModelSpec(fixed["module_adjacency"], fixed["module_operations"])
    result = nb.query(spec)
    _say(f"   NASBench.query({h}): validation {result['validation_accuracy']:.4f}, "
         f"test {result['test_accuracy']:.4f}, {result['trainable_parameters']:,} parameters, "
         f"{result['training_time']:.0f} s")
    table = api.QueryTable.from_store(real)
    respelled = _relabel(real_cells, rng)
    res = api.query_cells(table, respelled, jax.random.key(args.seed))
    found = np.asarray(res.found)
    _say(f"   batched jit query of {len(found):,} relabelled cells: {int(found.sum()):,} found, "
         f"rows match: {bool(np.all(np.asarray(res.index) == np.arange(len(found))))}")

    _say("\n== 3. The network")
    spec = cells.inception_like()
    _say(f"   Inception-like README cell: {model.trainable_parameters(spec):,} trainable parameters "
         f"(the dataset says 2,694,282)")

    _say("\n== 4. Search on a full-space store with SYNTHETIC metrics (not NAS-Bench-101 numbers)")
    synth = synthetic.synthesize(enum, seed=args.seed)
    synth_path = os.path.join(args.out, "synthetic_store.npz")
    st.write_store(synth_path, synth)
    table = api.QueryTable.from_store(synth)
    best_test, best_valid = regret.optimum_from_store(synth)
    grid = regret.log_time_grid(args.max_time, 100)
    runs = []
    for name in ("random_search", "regularized_evolution"):
        keys = jax.random.split(jax.random.key(args.seed), args.seeds)
        budget = search.SearchBudget(max_time_s=args.max_time,
                                     max_evaluations=int(2 * args.max_time / 1000) + 64)
        t0 = time.perf_counter()
        traj = jax.tree.map(np.asarray, search.run(name, keys, table, budget=budget))
        dt = time.perf_counter() - t0
        summ = regret.summarize(traj, best_test, best_valid, grid)
        out = os.path.join(args.out, f"{name}.npz")
        meta = dict(algorithm=name, config=dataclasses.asdict(search.default_config(name)), seeds=args.seeds,
                    seed=args.seed, max_time_s=args.max_time, max_evaluations=budget.max_evaluations,
                    store=os.path.abspath(synth_path), store_synthetic=True, best_test_accuracy=best_test,
                    best_valid_accuracy=best_valid)
        save_runs(out, time_grid=grid, test_regret=summ.test_regret, valid_regret=summ.valid_regret,
                  num_steps=traj.num_steps, final_time_s=traj.time_s[:, -1], metadata=meta)
        runs.append(out)
        _say(f"   {name}: {args.seeds} runs in {dt:.1f} s (compile included); final test regret "
             f"mean {summ.test_regret[:, -1].mean():.4f}, median {np.median(summ.test_regret[:, -1]):.4f}")
    png = os.path.join(args.out, "regret.png")
    plot_runs(runs, png)
    _say(f"   plot: {png}")
    _say(f"\nDone. Outputs in {os.path.abspath(args.out)}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(run(argparse.Namespace(out="nasbench_demo", seeds=100, max_time=1e6, seed=0)))
