"""``nasbench-jax build``: train many cells (cells x budgets x repeats) as one worker, write a store shard.

The benchmark-generation job of the original (reference spec §6.8) on our stack: the cells come
from an enumeration file (``nasbench-jax enumerate --out cells.npz``, sorted by hash) or are
enumerated here; work units are split ``i = worker_id (mod num_workers)`` so any number of hosts
can run the same command with different ``--worker-id``; each unit trains in its own work
directory (a restarted worker skips finished units and resumes the interrupted one from its
checkpoint); the worker's results are written atomically as an ``.npz`` store shard that
``nasbench-jax merge`` combines::

    nasbench-jax build --config cpu_tiny --max-vertices 3 --budgets 4 --repeats 1 \\
        --workdir runs --out runs/shard-0.npz
"""

from __future__ import annotations

import argparse
import json
import sys

from nasbench_jax.errors import ConfigError
from train.cli import add_config_arguments, apply_overrides, load_config


def configure(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)
    parser.add_argument("--cells", default=None, help="enumeration .npz (default: enumerate the space here)")
    parser.add_argument("--max-vertices", type=int, default=7, help="when enumerating here (default 7)")
    parser.add_argument("--limit", type=int, default=None, help="only the first N cells in hash order")
    parser.add_argument("--budgets", default="4,12,36,108", help="epoch budgets, comma separated")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--worker-id", type=int, default=0)
    parser.add_argument("--num-workers", type=int, default=1)
    parser.add_argument("--workdir", required=True, help="root of the per-unit work directories")
    parser.add_argument("--out", required=True, help="store shard to write (.npz)")
    parser.add_argument("--dataset", default=None, help="cifar10 | synthetic | path to cifar-10-python.tar.gz")
    parser.add_argument("--no-progress", action="store_true")


def run(args: argparse.Namespace) -> int:
    from nasbench_jax import space
    from train import runner

    try:
        budgets = [int(b) for b in args.budgets.split(",") if b.strip()]
    except ValueError:
        raise ConfigError(f"--budgets must be comma-separated integers, got {args.budgets!r}") from None
    if not 0 <= args.worker_id < args.num_workers:
        raise ConfigError(f"--worker-id must be in 0..{args.num_workers - 1}, got {args.worker_id}")
    if args.limit is not None and args.limit < 1:
        raise ConfigError(f"--limit must be >= 1, got {args.limit}")
    config = load_config(args.config)
    apply_overrides(config, list(getattr(args, "config_overrides", [])))
    if args.dataset is not None:
        config.dataset = args.dataset

    if args.cells:
        enum = space.load_enumeration(args.cells)
    else:
        enum = space.enumerate_cells(max_vertices=args.max_vertices, progress=not args.no_progress)
    cells = enum.cells
    n = len(cells.num_vertices) if args.limit is None else min(args.limit, len(cells.num_vertices))
    specs = [space.decode(cells.adjacency[i], cells.operations[i], cells.num_vertices[i]) for i in range(n)]
    units = runner.work_units(specs, budgets=budgets, num_repeats=args.repeats)
    results = runner.run_worker(units, config, args.workdir, worker_id=args.worker_id,
                                num_workers=args.num_workers, show_progress=not args.no_progress)
    if not results:
        print(f"worker {args.worker_id}: no units (of {len(units)})", file=sys.stderr)
        return 0
    shard = runner.write_shard(results, config, args.out, budgets=budgets, num_repeats=args.repeats)
    print(json.dumps({"out": args.out, "cells": int(len(shard.canonical_code)), "runs": len(results),
                      "units_total": len(units)}))
    return 0
