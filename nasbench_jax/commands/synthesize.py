"""``nasbench-jax synthesize --out synth.npz [--seed 0]``: the full-space synthetic store.

Every cell of the space (423,624), budgets 4/12/36/108, 3 repeats, with the SYNTHETIC metrics
of :mod:`nasbench_jax.synthetic` (labelled ``"synthetic": true`` in the store's metadata).
"""

from __future__ import annotations

import argparse
import sys
import time


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="output store (.npz)")
    parser.add_argument("--seed", type=int, default=0, help="landscape seed (default 0)")


def run(args) -> int:
    from nasbench_jax import store, synthetic

    t0 = time.perf_counter()
    print("enumerating the space ...", file=sys.stderr)
    s = synthetic.synthesize(seed=args.seed, progress=True)
    print(f"writing {len(s.canonical_code)} cells ...", file=sys.stderr)
    store.write_store(args.out, s)
    print(f"wrote {args.out}: {len(s.canonical_code)} synthetic cells in {time.perf_counter() - t0:.1f} s",
          file=sys.stderr)
    return 0
