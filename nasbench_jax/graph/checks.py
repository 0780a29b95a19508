"""Host-side validation of encoded cell batches (the *checked* path of the graph kernels).

Every public kernel in :mod:`nasbench_jax.graph` (``fingerprint``, ``canonical_code``,
``prune``, ``in_space``, ``canonicalize``) has two paths:

* **traced** — called with JAX tracers (inside the user's ``jit``/``vmap``/``lax.while_loop``):
  pure ``jax.numpy``, static shapes, *no checks* (values are not known at trace time). The
  caller guarantees the encoding of :mod:`nasbench_jax.constants`.
* **checked** — called with concrete arrays (numpy, lists or committed jax arrays): the batch
  is validated here first, and bad input raises :class:`~nasbench_jax.errors.CellArrayError`
  (wrong shape or values) or :class:`~nasbench_jax.errors.CellArrayTypeError` (wrong dtype),
  naming the problem, never an XLA traceback.

Call :func:`check_cells` yourself to validate once and then feed the arrays to jitted code.
"""

from __future__ import annotations

import jax
import numpy as np

from nasbench_jax import constants as C
from nasbench_jax.errors import CellArrayError, CellArrayTypeError

__all__ = ["check_cells", "is_traced"]

_V = C.MAX_VERTICES


def is_traced(*arrays) -> bool:
    """True if any argument is a JAX tracer (we are inside ``jit``/``vmap``/...)."""
    return any(isinstance(a, jax.core.Tracer) for a in arrays)


def _as_int_array(x, name: str) -> np.ndarray:
    if isinstance(x, (str, bytes)) or x is None:
        raise CellArrayTypeError(f"{name} must be an integer array, got {type(x).__name__}")
    try:
        arr = np.asarray(x)
    except ValueError as e:  # ragged nested lists
        raise CellArrayError(f"{name} must be a rectangular array: {e}") from None
    if arr.dtype == np.bool_ and name == "adjacency":
        return arr.astype(np.uint8)
    if not np.issubdtype(arr.dtype, np.integer):
        raise CellArrayTypeError(f"{name} must have an integer dtype, got {arr.dtype}")
    return arr


def _tables():
    forbidden = np.zeros((_V + 1, _V, _V), bool)  # entries that must be 0 for a V-vertex cell
    lo = np.zeros((_V + 1, _V), np.int64)
    hi = np.zeros((_V + 1, _V), np.int64)
    for v in range(_V + 1):
        forbidden[v] = np.tril(np.ones((_V, _V), bool))
        forbidden[v, v:, :] = True
        forbidden[v, :, v:] = True
        lo[v], hi[v] = C.PAD_LABEL, C.PAD_LABEL
        if v >= 2:
            lo[v, 1 : v - 1], hi[v, 1 : v - 1] = 0, C.NUM_OPS - 1
            lo[v, 0] = hi[v, 0] = C.INPUT_LABEL
            lo[v, v - 1] = hi[v, v - 1] = C.OUTPUT_LABEL
    return forbidden.reshape(_V + 1, _V * _V), lo, hi


_FORBIDDEN, _LO, _HI = _tables()
_FORBIDDEN64 = np.array([sum(1 << i for i in np.flatnonzero(f)) for f in _FORBIDDEN], np.uint64)
_ROW64 = np.array([0x7F << (7 * i) for i in range(_V)], np.uint64)
_COL64 = np.array([sum(1 << (7 * i + j) for i in range(_V)) for j in range(_V)], np.uint64)


def pack_adjacency(adj: np.ndarray) -> np.ndarray:
    """``0/1 [..., 7, 7]`` -> ``uint64[...]`` with entry ``(i, j)`` at bit ``7 i + j``."""
    flat = np.ascontiguousarray(adj, dtype=np.uint8).reshape(-1, _V * _V)
    packed = np.packbits(flat, axis=-1, bitorder="little")  # [N, 7] bytes
    out = np.zeros((flat.shape[0], 8), np.uint8)
    out[:, :7] = packed
    return out.view("<u8").reshape(adj.shape[:-2]).astype(np.uint64)


def _fast_ok(adj: np.ndarray, ops: np.ndarray, nv: np.ndarray) -> bool:
    """One vectorized pass over the whole batch; the detailed checks run only if this fails."""
    if adj.size and (adj.max() > 1 or adj.min() < 0):
        return False
    if nv.size and (nv.min() < 2 or nv.max() > _V):
        return False
    v = nv.reshape(-1).astype(np.intp)
    if np.any(pack_adjacency(adj).reshape(-1) & _FORBIDDEN64[v]):
        return False
    o = ops.reshape(-1, _V)
    return not np.any((o < _LO[v]) | (o > _HI[v]))


def check_cells(adjacency, operations, num_vertices, *, pruned: bool = False):
    """Validate a batch of encoded cells and return it as numpy arrays of the canonical dtypes.

    Args:
      adjacency: ``[..., 7, 7]`` integer (or bool) 0/1, strictly upper-triangular, zero outside
        the top-left ``V x V`` block.
      operations: ``[..., 7]`` integer: ``-1`` at vertex 0, ``-2`` at vertex ``V-1``, op labels
        ``0..2`` in between, ``-3`` from ``V`` on.
      num_vertices: ``[...]`` integer in ``2..7``.
      pruned: also require every vertex to lie on an input->output path (the cells are already
        pruned, as ``fingerprint``/``canonical_code`` expect).

    Returns:
      ``(adjacency uint8[..., 7, 7], operations int8[..., 7], num_vertices int32[...])``.

    Raises:
      CellArrayTypeError: a non-integer dtype (floats are never silently coerced).
      CellArrayError: wrong shape, batch shapes that disagree, entries not 0/1, entries on or
        below the diagonal, edges or labels outside the ``V`` vertices, unknown op labels,
        missing input/output labels, vertex counts outside ``2..7``, or (``pruned=True``)
        vertices not on an input->output path.
    """
    adj = _as_int_array(adjacency, "adjacency")
    ops = _as_int_array(operations, "operations")
    nv = _as_int_array(num_vertices, "num_vertices")
    if adj.ndim < 2 or adj.shape[-2:] != (_V, _V):
        raise CellArrayError(f"adjacency must have shape [..., {_V}, {_V}], got {adj.shape}")
    if ops.ndim < 1 or ops.shape[-1] != _V:
        raise CellArrayError(f"operations must have shape [..., {_V}], got {ops.shape}")
    batch = adj.shape[:-2]
    if ops.shape[:-1] != batch or nv.shape != batch:
        raise CellArrayError(
            "batch shapes disagree: adjacency %s, operations %s, num_vertices %s"
            % (adj.shape, ops.shape, nv.shape)
        )
    if _fast_ok(adj, ops, nv):
        adj, ops, nv = adj.astype(np.uint8, copy=False), ops.astype(np.int8, copy=False), nv.astype(np.int32, copy=False)
        if pruned:
            _check_pruned(adj, nv)
        return adj, ops, nv
    if np.any((adj != 0) & (adj != 1)):
        raise CellArrayError("adjacency entries must be 0 or 1")
    adj = adj.astype(np.uint8)
    if np.any(np.tril(np.ones((_V, _V), bool)) & (adj != 0)):
        raise CellArrayError("adjacency must be strictly upper-triangular (entries on or below the diagonal)")
    bad_v = (nv < 2) | (nv > _V)
    if np.any(bad_v):
        raise CellArrayError(f"num_vertices must be in 2..{_V}, got {nv[bad_v].ravel()[0]}")
    nv = nv.astype(np.int32)
    idx = np.arange(_V)
    inside = idx < nv[..., None]  # [..., 7]
    inside2 = inside[..., :, None] & inside[..., None, :]
    if np.any((adj != 0) & ~inside2):
        raise CellArrayError("adjacency has edges outside the top-left num_vertices x num_vertices block")
    first = ops[..., 0]
    if np.any(first != C.INPUT_LABEL):
        raise CellArrayError(f"operations[0] must be {C.INPUT_LABEL} (input)")
    last = np.take_along_axis(ops, (nv - 1)[..., None].astype(np.intp), axis=-1)[..., 0]
    if np.any(last != C.OUTPUT_LABEL):
        raise CellArrayError(f"operations[num_vertices-1] must be {C.OUTPUT_LABEL} (output)")
    interior = inside & (idx > 0) & (idx < (nv - 1)[..., None])
    if np.any(interior & ((ops < 0) | (ops >= C.NUM_OPS))):
        raise CellArrayError(f"interior op labels must be in 0..{C.NUM_OPS - 1}")
    if np.any(~inside & (ops != C.PAD_LABEL)):
        raise CellArrayError(f"operations past num_vertices must be {C.PAD_LABEL} (padding)")
    ops = ops.astype(np.int8)
    if pruned:
        _check_pruned(adj, nv)
    return adj, ops, nv


def _check_pruned(adj: np.ndarray, nv: np.ndarray) -> None:
    packed = pack_adjacency(adj).reshape(-1)
    v = nv.reshape(-1)
    bad = np.zeros(packed.shape, bool)
    for i in range(_V):
        has_out = (packed & _ROW64[i]) != 0
        has_in = (packed & _COL64[i]) != 0
        bad |= (i < v - 1) & ~has_out
        bad |= (i > 0) & (i < v) & ~has_in
    if np.any(bad):
        raise CellArrayError(
            "cells must be pruned (every vertex on an input->output path); "
            "use nasbench_jax.graph.prune first"
        )
