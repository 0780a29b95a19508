"""``nasbench-jax import | export | verify | merge``: move results between files.

* ``import FILE.tfrecord --out nb101.npz`` — the original dataset (full or only108) to a store.
* ``export nb101.npz --out x.tfrecord`` — a store back to the original file format.
* ``verify nb101.npz`` — check a store (exit status 1 and a list of problems if any).
* ``merge a.npz b.npz ... --out c.npz`` — combine worker shards (no row lost or duplicated).
"""

from __future__ import annotations

import argparse
import sys
import time

from nasbench_jax import store as st


def configure_import(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", help="original NAS-Bench-101 .tfrecord (nasbench_full or nasbench_only108)")
    p.add_argument("--out", required=True, help="store to write (.npz)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def run_import(args) -> int:
    from nasbench_jax import tfrecord  # noqa: PLC0415

    t0 = time.perf_counter()
    s = tfrecord.read_dataset(args.file, progress=not args.no_progress)
    st.write_store(args.out, s)
    rows = s.metadata["provenance"][0]["rows"]
    dt = time.perf_counter() - t0
    print(f"imported {rows:,} rows ({s.num_cells:,} cells, budgets {s.budgets.tolist()}) "
          f"from {args.file} into {args.out} in {dt:.1f} s ({rows / dt:,.0f} rows/s)")
    return 0


def configure_export(p: argparse.ArgumentParser) -> None:
    p.add_argument("store", help="store to export (.npz)")
    p.add_argument("--out", required=True, help="original-format file to write (.tfrecord)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def run_export(args) -> int:
    from nasbench_jax import tfrecord  # noqa: PLC0415

    s = st.open_store(args.store)
    n = tfrecord.write_dataset(args.out, s, progress=not args.no_progress)
    print(f"exported {n:,} rows ({s.num_cells:,} cells) from {args.store} to {args.out}")
    return 0


def configure_verify(p: argparse.ArgumentParser) -> None:
    p.add_argument("store", help="store to check (.npz)")
    p.add_argument("--hash-sample", type=int, default=256,
                   help="rows whose module hash is recomputed with hashlib (-1: all; default 256)")
    p.add_argument("--seed", type=int, default=0, help="seed of the hash sample")


def run_verify(args) -> int:
    problems = st.verify_store(args.store, hash_sample=args.hash_sample, seed=args.seed)
    if problems:
        print(f"{args.store}: {len(problems)} problem(s):", file=sys.stderr)
        for p in problems:
            print(f"  - {p}", file=sys.stderr)
        return 1
    s = st.open_store(args.store)
    kind = "SYNTHETIC" if s.synthetic else "measured"
    print(f"{args.store}: OK ({s.num_cells:,} cells, budgets {s.budgets.tolist()}, "
          f"{s.num_repeats} repeats, {kind} metrics)")
    return 0


def configure_merge(p: argparse.ArgumentParser) -> None:
    p.add_argument("stores", nargs="+", help="store shards (.npz)")
    p.add_argument("--out", required=True, help="merged store to write (.npz)")


def run_merge(args) -> int:
    shards = [st.open_store(p) for p in args.stores]
    merged = st.merge_stores(shards)
    st.write_store(args.out, merged)
    print(f"merged {len(shards)} stores ({sum(s.num_cells for s in shards):,} rows) into {args.out}: "
          f"{merged.num_cells:,} cells")
    return 0
