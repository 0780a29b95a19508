"""``nasbench-jax enumerate``: every unique cell of the space, written to an ``.npz``.

Usage::

    nasbench-jax enumerate --out cells.npz [--max-vertices 7] [--max-edges 9] [--no-progress]

Prints the original enumerator's per-vertex-count lines (reference spec §4.2), e.g.
``Up to 7 vertices: 423624 graphs (1293208 without hashing)``, a table of labelled and unique
counts per vertex count, and the total. The file holds, sorted by module hash: ``module_hash``
(``S32``), ``canonical_code`` (``uint32``), ``adjacency`` (``uint8[N,7,7]``), ``operations``
(``int8[N,7]``), ``num_vertices`` (``int32``), plus ``counts`` and ``limits``; it loads with
``np.load(path, allow_pickle=False)`` or :func:`nasbench_jax.space.load_enumeration`.
"""

from __future__ import annotations

import argparse
import time

from nasbench_jax import constants as C
from nasbench_jax.errors import ConfigError


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="output .npz path (written atomically)")
    parser.add_argument("--max-vertices", type=int, default=C.MAX_VERTICES, help="2..7 (default 7)")
    parser.add_argument("--max-edges", type=int, default=C.MAX_EDGES, help="0..21 (default 9)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bars")


def run(args: argparse.Namespace) -> int:
    from nasbench_jax import space  # noqa: PLC0415

    if not str(args.out).endswith(".npz"):
        raise ConfigError(f"--out must name a .npz file, got {args.out!r}")
    t0 = time.perf_counter()
    enum = space.enumerate_cells(args.max_vertices, args.max_edges, progress=not args.no_progress)
    elapsed = time.perf_counter() - t0
    cum_u = enum.cumulative_unique()
    cum_l = enum.cumulative_labelled()
    for v in sorted(cum_u):
        print("Up to %d vertices: %d graphs (%d without hashing)" % (v, cum_u[v], cum_l[v]))
    print(f"{'vertices':>8} {'labelled':>10} {'unique':>8}")
    for v in sorted(enum.unique_per_vertices):
        print(f"{v:>8} {enum.labelled_per_vertices[v]:>10,} {enum.unique_per_vertices[v]:>8,}")
    print(f"{'total':>8} {enum.total_labelled:>10,} {enum.num_cells:>8,}")
    if not enum.hash_partition_equals_code_partition:  # pragma: no cover - never for the real space
        print("WARNING: two non-isomorphic cells share a module hash")
    space.save_enumeration(enum, args.out)
    print(f"wrote {enum.num_cells:,} cells to {args.out} ({elapsed:.1f} s)")
    return 0
