"""Exact isomorphism-canonical codes of cells, batched and jit-compiled.

The code of a pruned cell (definition in :mod:`nasbench_jax.graph.reference`) is::

    V << 29 | min over relabelings pi of (A_pi << 8 | O_pi)

where ``pi`` runs over the permutations of the interior vertices that keep the matrix strictly
upper-triangular, ``A_pi`` are the 21 adjacency bits of the relabeled matrix (edge ``x -> y`` at
bit ``x + y (y - 1) / 2``) and ``O_pi`` its interior ops in base 3. Equal codes <=> isomorphic
cells (input and output fixed), by construction.

All 120 permutations of the positions ``1..5`` are evaluated at once with lookup tables built
at import:

* ``ADJ_TABLE[pi, chunk, bits7]``: the relabeled adjacency bits contributed by one 7-bit chunk of
  the 21 edge bits, with bit 31 set when an edge lands on or below the diagonal (``pi`` does not
  keep the matrix upper-triangular);
* ``OPS_TABLE[pi, ops243]``: the relabeled base-3 op number of the 5 interior digits;
* ``ALLOWED[V, pi]``: ``pi`` fixes every position ``>= V - 1`` (the output and padding).

Each relabeling is then 4 gathers, a few ORs and a masked minimum. Codes can be decoded with
:func:`decode_codes` (vectorized numpy) or ``reference.decode_code`` (one at a time).

Example::

    >>> import numpy as np
    >>> from nasbench_jax.graph import canonical_code
    >>> adj = np.zeros((2, 7, 7), np.uint8)
    >>> adj[:, 0, 1] = adj[:, 0, 2] = adj[:, 1, 3] = adj[:, 2, 3] = 1
    >>> ops = np.array([[-1, 0, 1, -2, -3, -3, -3], [-1, 1, 0, -2, -3, -3, -3]], np.int8)
    >>> codes = canonical_code(adj, ops, np.array([4, 4]))
    >>> bool(codes[0] == codes[1])  # the two interior vertices swapped: isomorphic
    True
"""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np

from nasbench_jax import constants as C
from nasbench_jax.graph.checks import check_cells, is_traced

__all__ = [
    "canonical_code",
    "canonical_code_traced",
    "labelled_code_traced",
    "canonical_from_labelled",
    "canonical_from_labelled_traced",
    "decode_codes",
    "PERMS",
]

_V = C.MAX_VERTICES
_FLAG = np.uint32(1 << 31)

#: The 120 relabelings of the interior positions 1..5, as ``perm[old] = new`` over 0..6.
PERMS = np.array([(0,) + p + (6,) for p in itertools.permutations(range(1, 6))], np.int64)
_NP = len(PERMS)

_XS, _YS = np.triu_indices(_V, 1)
#: Bit index (original enumerator order) of each upper-triangular slot ``(x, y)``, x < y.
_BIT = (_XS + _YS * (_YS - 1) // 2).astype(np.int64)
_BIT_TO_XY = np.zeros((21, 2), np.int64)
_BIT_TO_XY[_BIT, 0] = _XS
_BIT_TO_XY[_BIT, 1] = _YS


def _edge_bit(x, y):
    return x + y * (y - 1) // 2


def _build_tables():
    adj_table = np.zeros((_NP, 3, 128), np.uint32)
    for p, perm in enumerate(PERMS):
        single = np.zeros(21, np.uint32)
        for bit in range(21):
            x, y = _BIT_TO_XY[bit]
            nx, ny = perm[x], perm[y]
            single[bit] = np.uint32(1 << _edge_bit(nx, ny)) if nx < ny else _FLAG
        for chunk in range(3):
            vals = np.arange(128)
            acc = np.zeros(128, np.uint32)
            for t in range(7):
                acc |= np.where((vals >> t) & 1, single[7 * chunk + t], np.uint32(0)).astype(np.uint32)
            adj_table[p, chunk] = acc
    # ops: digit t (t = 0..4) of the 5-digit base-3 number belongs to position t + 1,
    # most significant first.
    digits = np.array(list(itertools.product(range(3), repeat=5)), np.int64)  # [243, 5], index = value
    ops_table = np.zeros((_NP, 243), np.uint32)
    for p, perm in enumerate(PERMS):
        val = np.zeros(243, np.int64)
        for t in range(5):
            new_pos = perm[t + 1]  # 1..5
            val += digits[:, t] * 3 ** (5 - new_pos)
        ops_table[p] = val
    allowed = np.zeros((_V + 1, _NP), bool)
    for v in range(2, _V + 1):
        fixed = np.arange(v - 1, 6)
        allowed[v] = np.all(PERMS[:, fixed] == fixed[None, :], axis=1) if len(fixed) else True
    return adj_table, ops_table, allowed


ADJ_TABLE, OPS_TABLE, ALLOWED = _build_tables()
_ADJ_FLAT = ADJ_TABLE.reshape(-1)  # index (p * 3 + chunk) * 128 + bits
_OPS_FLAT = OPS_TABLE.reshape(-1)  # index p * 243 + ops


def _bits_and_digits(adj, ops, nv):
    """Adjacency bits (uint32), interior op number (int32, padding digits 0) of each cell."""
    a = jnp.asarray(adj).astype(jnp.uint32)
    slots = a[..., _XS, _YS]  # [..., 21] in triu order
    bits = jnp.sum(slots << jnp.asarray(_BIT, jnp.uint32), axis=-1, dtype=jnp.uint32)
    o = jnp.asarray(ops).astype(jnp.int32)
    pos = jnp.arange(1, 6)
    interior = pos < (jnp.asarray(nv).astype(jnp.int32)[..., None] - 1)
    dig = jnp.where(interior, jnp.clip(o[..., 1:6], 0, 2), 0)
    weights = jnp.asarray([81, 27, 9, 3, 1], jnp.int32)
    return bits, jnp.sum(dig * weights, axis=-1)


def labelled_code_traced(adjacency, operations, num_vertices):
    """``uint32[...]`` code of each cell *as labelled* (no minimisation), pure jnp."""
    bits, onum = _bits_and_digits(adjacency, operations, num_vertices)
    nv = jnp.asarray(num_vertices).astype(jnp.uint32)
    return (nv << 29) | (bits << 8) | onum.astype(jnp.uint32)


def canonical_code_traced(adjacency, operations, num_vertices):
    """Canonical codes as pure ``jnp`` (any leading batch shape; no checks; traceable).

    Args:
      adjacency: ``[..., 7, 7]`` 0/1 of *pruned* cells; operations: ``[..., 7]``;
      num_vertices: ``[...]`` in ``2..7``.

    Returns:
      ``uint32[...]`` codes.
    """
    bits, onum = _bits_and_digits(adjacency, operations, num_vertices)
    return _min_code(bits, onum, jnp.asarray(num_vertices).astype(jnp.int32))


def canonical_from_labelled_traced(codes):
    """Canonical codes from labelled codes (``V<<29 | A<<8 | O`` of a pruned cell), pure jnp."""
    codes = jnp.asarray(codes).astype(jnp.uint32)
    bits = (codes >> 8) & jnp.uint32((1 << 21) - 1)
    onum = (codes & jnp.uint32(0xFF)).astype(jnp.int32)
    return _min_code(bits, onum, (codes >> 29).astype(jnp.int32))


def _min_code(bits, onum, nv):
    """``V << 29 | min over allowed upper-triangular relabelings of (A << 8 | O)``."""
    adj_t = jnp.asarray(_ADJ_FLAT)
    ops_t = jnp.asarray(_OPS_FLAT)
    p = jnp.arange(_NP, dtype=jnp.int32)
    c0 = (bits & 127).astype(jnp.int32)[..., None]
    c1 = ((bits >> 7) & 127).astype(jnp.int32)[..., None]
    c2 = (bits >> 14).astype(jnp.int32)[..., None]
    # mode="clip": indices are in range by construction, and XLA:CPU's clamping gather is
    # several times faster than the default out-of-bounds-filling one.
    a = (
        adj_t.at[(p * 3) * 128 + c0].get(mode="clip")
        | adj_t.at[(p * 3 + 1) * 128 + c1].get(mode="clip")
        | adj_t.at[(p * 3 + 2) * 128 + c2].get(mode="clip")
    )
    o = ops_t.at[p * 243 + onum[..., None]].get(mode="clip")
    ok = ((a & _FLAG) == 0) & jnp.asarray(ALLOWED).at[nv].get(mode="clip")
    cand = jnp.where(ok, (a << 8) | o, jnp.uint32(0xFFFFFFFF))
    best = jnp.min(cand, axis=-1)
    return (nv.astype(jnp.uint32) << 29) | best


_canonical_jit = jax.jit(canonical_code_traced)

#: Host path: cells per inner step (keeps the ``[chunk, 120]`` intermediates cache-sized) and
#: inner steps per jitted call (one ``lax.map``), so that only a few shapes are ever compiled.
_HOST_CHUNK = 2048
_HOST_STEPS = 16


@jax.jit
def _canonical_mapped(adj, ops, nv):
    return jax.lax.map(lambda x: canonical_code_traced(*x), (adj, ops, nv))


@jax.jit
def _from_labelled_mapped(codes):
    return jax.lax.map(canonical_from_labelled_traced, codes)


def canonical_from_labelled(codes) -> np.ndarray:
    """Host: canonical codes of pruned cells given as labelled codes, ``uint32[N]``.

    The labelled code of a cell is its code *without* minimisation
    (``reference.encode_code``); the enumeration builds these directly from bitmasks.
    """
    c = np.asarray(codes, np.uint32).reshape(-1)
    n = c.shape[0]
    size = _HOST_CHUNK * _HOST_STEPS
    total = -(-n // size) * size
    padded = np.full(total, c[0] if n else (2 << 29) | (1 << 8), np.uint32)
    padded[:n] = c
    parts = [_from_labelled_mapped(padded[s : s + size].reshape(_HOST_STEPS, _HOST_CHUNK)) for s in range(0, total, size)]
    out = np.concatenate([np.asarray(p).reshape(-1) for p in parts]) if parts else np.zeros(0, np.uint32)
    return out[:n].astype(np.uint32)


def _canonical_host(adj: np.ndarray, ops: np.ndarray, nv: np.ndarray) -> np.ndarray:
    lead = nv.shape
    adj = adj.reshape(-1, _V, _V)
    ops = ops.reshape(-1, _V)
    nv = nv.reshape(-1)
    n = nv.shape[0]
    group = _HOST_CHUNK * _HOST_STEPS
    results = []  # dispatched asynchronously, collected below
    start = 0
    while n - start >= group:  # full groups: one lax.map over 16 chunks of 2,048
        sl = slice(start, start + group)
        shape = (_HOST_STEPS, _HOST_CHUNK)
        results.append(_canonical_mapped(
            adj[sl].reshape(shape + (_V, _V)), ops[sl].reshape(shape + (_V,)), nv[sl].reshape(shape)
        ))
        start += group
    while start < n:  # the rest: chunks of 2,048, the last one padded
        size = _HOST_CHUNK
        a, o, v = adj[start : start + size], ops[start : start + size], nv[start : start + size]
        m = v.shape[0]
        if m < size:  # pad to the static shape with copies of the first cell
            pad = size - m
            a = np.concatenate([a, np.repeat(a[:1], pad, 0)])
            o = np.concatenate([o, np.repeat(o[:1], pad, 0)])
            v = np.concatenate([v, np.repeat(v[:1], pad, 0)])
        results.append(_canonical_jit(a, o, v))
        start += size
    out = np.concatenate([np.asarray(r).reshape(-1) for r in results]) if results else np.zeros(0, np.uint32)
    return out[:n].astype(np.uint32).reshape(lead)


def canonical_code(adjacency, operations, num_vertices):
    """Exact canonical code of already-pruned cells, ``== reference.canonical_code``.

    Traced arguments use :func:`canonical_code_traced` (no checks); concrete ones are validated
    with ``check_cells(..., pruned=True)`` and run jit-compiled in fixed-size chunks.

    Args:
      adjacency: ``uint8[..., 7, 7]``; operations: ``int8[..., 7]``; num_vertices: ``int32[...]``.

    Returns:
      ``uint32[...]`` codes (numpy on the host path).

    Raises:
      CellArrayError, CellArrayTypeError: see ``check_cells``.
    """
    if is_traced(adjacency, operations, num_vertices):
        return canonical_code_traced(adjacency, operations, num_vertices)
    adj, ops, nv = check_cells(adjacency, operations, num_vertices, pruned=True)
    return _canonical_host(adj, ops, nv)


def decode_codes(codes):
    """Vectorized inverse of the code: ``uint32[N]`` -> ``space.Cells`` (numpy).

    Args:
      codes: ``uint32[N]`` codes (canonical or labelled) with ``V`` in ``2..7``.

    Returns:
      ``Cells(adjacency uint8[N,7,7], operations int8[N,7], num_vertices int32[N])``: the cell
      the code spells (for a canonical code, the canonical relabeling).

    Raises:
      CellArrayError: a code's vertex count is not in ``2..7``.
    """
    from nasbench_jax.errors import CellArrayError  # noqa: PLC0415
    from nasbench_jax.space import Cells  # noqa: PLC0415

    c = np.asarray(codes).astype(np.uint32).reshape(-1)
    v = (c >> np.uint32(29)).astype(np.int32)
    if np.any((v < 2) | (v > _V)):
        raise CellArrayError("codes must encode 2..7 vertices (code >> 29)")
    a = (c >> np.uint32(8)) & np.uint32((1 << 21) - 1)
    adj = np.zeros((len(c), _V, _V), np.uint8)
    adj[:, _XS, _YS] = ((a[:, None] >> _BIT[None, :].astype(np.uint32)) & 1).astype(np.uint8)
    o = (c & np.uint32(0xFF)).astype(np.int64)
    ops = np.full((len(c), _V), C.PAD_LABEL, np.int8)
    idx = np.arange(_V)
    for t in range(5):
        digit = (o // 3 ** (4 - t)) % 3
        ops[:, t + 1] = np.where(t + 1 < v - 1, digit, ops[:, t + 1])
    ops[:, 0] = C.INPUT_LABEL
    ops[np.arange(len(c)), v - 1] = C.OUTPUT_LABEL
    ops[idx[None, :] >= v[:, None]] = C.PAD_LABEL
    return Cells(adj, ops, v)
