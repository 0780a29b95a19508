"""Batched pruning, validity and canonicalization of *raw* cells (reference spec §1.4, §2).

A raw cell is the array encoding of an unpruned ``ModelSpec``: a ``num_vertices``-vertex
strictly upper-triangular matrix (top-left block of 7x7) with input label at 0, output label
at ``num_vertices - 1`` and op labels in between (e.g. what ``space.random_cells`` and
``space.mutate`` produce, always with ``num_vertices = 7``).

* :func:`prune` — the original ``ModelSpec._prune``: keep the vertices that are reachable from
  the input *and* co-reachable to the output, compacted in their original order;
* :func:`in_space` — ``is_valid``'s verdict: connected, at most 9 edges after pruning (at most
  7 vertices holds by construction), first/last labels input/output and interior ops in range;
* :func:`canonicalize` — prune + in_space + ``canonical_code``; code ``0`` where not valid
  (``0`` is never a valid code: valid codes have ``V >= 2`` in their top bits).

All three are pure ``jnp`` with static shapes when called with tracers (inside ``jit``,
``vmap``, ``lax.while_loop``); called with concrete arrays, the batch is validated on the host
first (:func:`~nasbench_jax.graph.check_cells`) and bad input raises ``CellArrayError`` /
``CellArrayTypeError``.

Example::

    >>> import numpy as np
    >>> from nasbench_jax.graph import prune
    >>> adj = np.zeros((1, 7, 7), np.uint8); adj[0, 0, 1] = adj[0, 1, 2] = adj[0, 0, 6] = 1
    >>> ops = np.array([[-1, 0, 0, 0, 0, 0, -2]], np.int8)
    >>> cells, valid = prune(adj, ops, np.array([7]))
    >>> int(cells.num_vertices[0]), bool(valid[0])   # prunes to input -> output
    (2, True)
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from nasbench_jax import constants as C
from nasbench_jax.graph.canonical import canonical_code_traced
from nasbench_jax.graph.checks import check_cells, is_traced

__all__ = [
    "prune",
    "in_space",
    "canonicalize",
    "prune_traced",
    "in_space_traced",
    "canonicalize_traced",
]

_V = C.MAX_VERTICES


def _reach(adj, nv):
    """Forward (from 0) and backward (to ``nv - 1``) reachability, ``bool[..., 7]`` each."""
    a = adj.astype(bool)
    idx = jnp.arange(_V)
    inside = idx < nv[..., None]
    fwd = [None] * _V
    fwd[0] = jnp.ones(a.shape[:-2], bool)
    for v in range(1, _V):
        acc = jnp.zeros(a.shape[:-2], bool)
        for u in range(v):
            acc = acc | (fwd[u] & a[..., u, v])
        fwd[v] = acc
    fwd = jnp.stack(fwd, axis=-1) & inside
    out_pos = nv - 1
    bwd = [None] * _V
    for v in range(_V - 1, -1, -1):
        acc = out_pos == v
        for w in range(v + 1, _V):
            acc = acc | (bwd[w] & a[..., v, w])
        bwd[v] = acc
    bwd = jnp.stack(bwd, axis=-1) & inside
    return fwd, bwd


def prune_traced(adjacency, operations, num_vertices):
    """Pure-``jnp`` pruning (any leading batch shape; no checks; traceable).

    Args:
      adjacency: ``[..., 7, 7]`` 0/1 raw cells; operations: ``[..., 7]``; num_vertices: ``[...]``.

    Returns:
      ``(Cells, valid)``: the pruned cells (``uint8``, ``int8``, ``int32``) and ``bool[...]``
      ``valid_spec`` (an input->output path exists). Invalid cells come back as all-zero
      adjacency, all-padding ops and ``num_vertices = 0``.
    """
    from nasbench_jax.space import Cells  # noqa: PLC0415

    adj = jnp.asarray(adjacency).astype(jnp.int32)
    ops = jnp.asarray(operations).astype(jnp.int32)
    nv = jnp.asarray(num_vertices).astype(jnp.int32)
    fwd, bwd = _reach(adj, nv)
    keep = fwd & bwd
    valid = jnp.take_along_axis(fwd, jnp.clip(nv - 1, 0, _V - 1)[..., None], axis=-1)[..., 0]
    valid = valid & (nv >= 2)
    keep = keep & valid[..., None]
    new_idx = jnp.cumsum(keep, axis=-1) - 1  # [..., 7]
    idx = jnp.arange(_V)
    onehot = keep[..., :, None] & (new_idx[..., :, None] == idx)  # [..., old, new]
    src = jnp.sum(jnp.where(onehot, idx[:, None], 0), axis=-2)  # old vertex at each new index
    count = jnp.sum(keep, axis=-1).astype(jnp.int32)
    live = idx < count[..., None]  # [..., new]
    # gathers, not [7x7] matmuls: XLA:CPU runs batched tiny dots one batch element at a time
    rows = jnp.take_along_axis(adj, src[..., :, None], axis=-2)  # [..., new, old]
    pruned = jnp.take_along_axis(rows, src[..., None, :], axis=-1)  # [..., new, new]
    pruned = jnp.where(live[..., :, None] & live[..., None, :], pruned, 0)
    new_ops = jnp.take_along_axis(ops, src, axis=-1)
    new_ops = jnp.where(live, new_ops, C.PAD_LABEL)
    cells = Cells(pruned.astype(jnp.uint8), new_ops.astype(jnp.int8), count)
    return cells, valid


def in_space_traced(adjacency, operations, num_vertices):
    """Pure-``jnp`` ``is_valid`` verdict on raw cells (see :func:`in_space`)."""
    cells, valid = prune_traced(adjacency, operations, num_vertices)
    return valid & _labels_ok(cells) & (_num_edges(cells.adjacency) <= C.MAX_EDGES)


def _num_edges(adj):
    return jnp.sum(adj.astype(jnp.int32), axis=(-2, -1))


def _labels_ok(cells):
    ops = cells.operations.astype(jnp.int32)
    nv = cells.num_vertices
    idx = jnp.arange(_V)
    first = ops[..., 0] == C.INPUT_LABEL
    last = jnp.take_along_axis(ops, jnp.clip(nv - 1, 0, _V - 1)[..., None], axis=-1)[..., 0]
    interior = (idx > 0) & (idx < (nv - 1)[..., None])
    in_range = (ops >= 0) & (ops < C.NUM_OPS)
    return first & (last == C.OUTPUT_LABEL) & jnp.all(in_range | ~interior, axis=-1)


def canonicalize_traced(adjacency, operations, num_vertices):
    """Pure-``jnp`` prune + in_space + canonical code; ``(uint32 codes, bool valid)``."""
    cells, valid = prune_traced(adjacency, operations, num_vertices)
    valid = valid & _labels_ok(cells) & (_num_edges(cells.adjacency) <= C.MAX_EDGES)
    safe_nv = jnp.where(valid, cells.num_vertices, 2)
    codes = canonical_code_traced(cells.adjacency, cells.operations, safe_nv)
    return jnp.where(valid, codes, jnp.uint32(0)), valid


_prune_jit = jax.jit(prune_traced)
_in_space_jit = jax.jit(in_space_traced)
_canonicalize_jit = jax.jit(canonicalize_traced)

_HOST_CHUNK = 32768


def _host_call(fn, adj, ops, nv):
    """Run a jitted kernel over a checked batch in padded fixed-size chunks; numpy results."""
    lead = nv.shape
    adj = adj.reshape(-1, _V, _V)
    ops = ops.reshape(-1, _V)
    nv = nv.reshape(-1)
    n = nv.shape[0]
    size = 4096 if n <= 4096 else _HOST_CHUNK  # two static shapes only
    parts = []
    for start in range(0, max(n, 1), size):
        a, o, v = adj[start : start + size], ops[start : start + size], nv[start : start + size]
        m = v.shape[0]
        if m < size:
            pad = size - m
            a = np.concatenate([a, np.zeros((pad, _V, _V), np.uint8)])
            o = np.concatenate([o, np.tile(np.array([[-1, -2, -3, -3, -3, -3, -3]], np.int8), (pad, 1))])
            v = np.concatenate([v, np.full(pad, 2, np.int32)])
        parts.append((m, fn(a, o, v)))
    leaves = [jax.tree_util.tree_map(lambda x, m=m: np.asarray(x)[:m], r) for m, r in parts]
    out = jax.tree_util.tree_map(lambda *xs: np.concatenate(xs), *leaves)
    return jax.tree_util.tree_map(lambda x: x[:n].reshape(lead + x.shape[1:]), out)


def _check_raw(adjacency, operations, num_vertices):
    return check_cells(adjacency, operations, num_vertices, pruned=False)


def prune(adjacency, operations, num_vertices):
    """The original pruning of raw cells, batched (reference spec §2).

    Args:
      adjacency: ``uint8[..., 7, 7]`` raw cells; operations: ``int8[..., 7]``;
      num_vertices: ``int32[...]`` in ``2..7`` (the raw matrix size; 7 for sampled cells).

    Returns:
      ``(space.Cells, valid bool[...])``: the pruned cells and ``valid_spec``. A cell without an
      input->output path comes back all-zero with ``num_vertices = 0`` and ``valid = False``.

    Raises:
      CellArrayError, CellArrayTypeError: malformed batch (host path only).
    """
    if is_traced(adjacency, operations, num_vertices):
        return prune_traced(adjacency, operations, num_vertices)
    from nasbench_jax.space import Cells  # noqa: PLC0415

    cells, valid = _host_call(_prune_jit, *_check_raw(adjacency, operations, num_vertices))
    return Cells(*cells), valid


def in_space(adjacency, operations, num_vertices):
    """``is_valid``'s verdict on raw cells: ``bool[...]``.

    True iff the cell has an input->output path and its pruned form has at most 9 edges
    (at most 7 vertices holds by construction), input/output labels at its ends and interior
    ops in ``0..2`` — the checks of ``NASBench._check_spec`` on the pruned spec.

    Raises:
      CellArrayError, CellArrayTypeError: malformed batch (host path only).
    """
    if is_traced(adjacency, operations, num_vertices):
        return in_space_traced(adjacency, operations, num_vertices)
    return _host_call(_in_space_jit, *_check_raw(adjacency, operations, num_vertices))


def canonicalize(adjacency, operations, num_vertices):
    """Prune, validate and canonicalize raw cells: ``(codes uint32[...], valid bool[...])``.

    ``codes`` is ``canonical_code`` of the pruned cell where ``valid`` and ``0`` elsewhere.

    Raises:
      CellArrayError, CellArrayTypeError: malformed batch (host path only).
    """
    if is_traced(adjacency, operations, num_vertices):
        return canonicalize_traced(adjacency, operations, num_vertices)
    return _host_call(_canonicalize_jit, *_check_raw(adjacency, operations, num_vertices))
