"""Plain-Python reference implementations: the test oracles of the jit-compiled kernels.

Everything here is written directly from the reference specification (§3, §4) with
``hashlib`` and Python loops, one graph at a time. It is slow by design and kept simple so
that it can be read against the specification line by line.

* :func:`hash_module` — the original module hash (§3.1), bit for bit.
* :func:`canonical_code` — our exact isomorphism-canonical code (see below).
* :func:`is_isomorphic`, :func:`permute_graph`, :func:`gen_is_edge_fn`, :func:`is_full_dag` —
  the original ``graph_util`` helpers (§3.4).

Canonical code (uint32)::

    code = V << 29 | A << 8 | O

where ``V`` is the vertex count (2..7), ``A`` the 21 adjacency bits (edge ``x->y``, ``x < y``,
at bit ``x + y*(y-1)/2`` — the original enumerator's column-by-column order) and ``O`` the
interior ops as a base-3 number with the first interior vertex most significant (positions
past ``V-2`` count as 0). The canonical code of a cell is the minimum of ``A << 8 | O`` over
all relabelings of the interior vertices that keep the matrix upper-triangular (i.e. over all
topological orders with input first and output last). Two cells get equal codes iff they are
isomorphic as labelled DAGs with fixed input and output, by construction: the set of
topological relabelings is the same for isomorphic cells, and the code is injective on
(V, matrix, ops).
"""

from __future__ import annotations

import hashlib
import itertools
from typing import Callable, Sequence

import numpy as np

__all__ = [
    "hash_module",
    "canonical_code",
    "encode_code",
    "decode_code",
    "is_isomorphic",
    "permute_graph",
    "gen_is_edge_fn",
    "is_full_dag",
    "num_edges",
    "edge_bit",
]


def _md5_hex(s: str) -> str:
    return hashlib.md5(s.encode("utf-8")).hexdigest()


def hash_module(matrix, labeling: Sequence[int]) -> str:
    """The original ``graph_util.hash_module`` (reference spec §3.1).

    Args:
      matrix: ``V x V`` 0/1 matrix (any directed graph; a DAG in the search space).
      labeling: ``V`` integer labels (-1 input, -2 output, op index otherwise).

    Returns:
      The 32-character lowercase hex fingerprint.
    """
    m = np.asarray(matrix)
    v = m.shape[0]
    out_deg = [int(x) for x in m.sum(axis=1).tolist()]
    in_deg = [int(x) for x in m.sum(axis=0).tolist()]
    labels = [int(x) for x in labeling]
    hashes = [_md5_hex(str((out_deg[i], in_deg[i], labels[i]))) for i in range(v)]
    for _ in range(v):
        new = []
        for i in range(v):
            ins = sorted(hashes[w] for w in range(v) if m[w, i])
            outs = sorted(hashes[w] for w in range(v) if m[i, w])
            new.append(_md5_hex("".join(ins) + "|" + "".join(outs) + "|" + hashes[i]))
        hashes = new
    return _md5_hex(str(sorted(hashes)))


def edge_bit(x: int, y: int) -> int:
    """Bit index of edge ``x -> y`` (``x < y``) in the original enumerator's bitmask."""
    return x + y * (y - 1) // 2


def gen_is_edge_fn(bits: int) -> Callable[[int, int], bool]:
    """The original ``gen_is_edge_fn``: bit ``x + y(y-1)/2`` of ``bits`` is edge ``x -> y``."""

    def is_edge(x: int, y: int) -> bool:
        return x < y and bool((bits >> edge_bit(x, y)) & 1)

    return is_edge


def is_full_dag(matrix) -> bool:
    """Every non-output vertex has an out-edge and every non-input vertex an in-edge."""
    m = np.asarray(matrix)
    v = m.shape[0]
    rows = all(m[i].any() for i in range(v - 1))
    cols = all(m[:, j].any() for j in range(1, v))
    return bool(rows and cols)


def num_edges(matrix) -> int:
    return int(np.sum(matrix))


def permute_graph(matrix, labels, perm):
    """The original ``permute_graph``: ``perm[v]`` is the new index of old vertex ``v``."""
    m = np.asarray(matrix)
    inv = np.argsort(perm)
    new = m[np.ix_(inv, inv)] == 1
    return new, [labels[i] for i in inv]


def is_isomorphic(graph1, graph2) -> bool:
    """Brute force over all ``V!`` permutations (input/output not fixed), as the original."""
    m1, l1 = graph1
    m2, l2 = graph2
    m1 = np.asarray(m1)
    m2 = np.asarray(m2)
    if m1.shape != m2.shape or len(l1) != len(l2):
        return False
    for perm in itertools.permutations(range(m1.shape[0])):
        pm, pl = permute_graph(m1, list(l1), perm)
        if np.array_equal(pm, m2 == 1) and list(pl) == list(l2):
            return True
    return False


def encode_code(matrix, ops: Sequence[int]) -> int:
    """Code of one *specific* labelling (no minimisation): ``V << 29 | A << 8 | O``.

    ``ops`` are integer labels of all ``V`` vertices (-1, op indices, -2).
    """
    m = np.asarray(matrix)
    v = m.shape[0]
    a = 0
    for y in range(v):
        for x in range(y):
            if m[x, y]:
                a |= 1 << edge_bit(x, y)
    o = 0
    for k in range(1, 6):
        o = o * 3 + (int(ops[k]) if k < v - 1 else 0)
    return (v << 29) | (a << 8) | o


def decode_code(code: int) -> tuple[np.ndarray, list[int]]:
    """Inverse of :func:`encode_code`: ``(V x V matrix, V integer labels)``."""
    code = int(code)
    v = code >> 29
    a = (code >> 8) & ((1 << 21) - 1)
    o = code & 0xFF
    m = np.zeros((v, v), dtype=np.uint8)
    for y in range(v):
        for x in range(y):
            if (a >> edge_bit(x, y)) & 1:
                m[x, y] = 1
    digits = []
    for _ in range(5):
        digits.append(o % 3)
        o //= 3
    digits = digits[::-1]
    labels = [-1] + digits[: v - 2] + [-2] if v >= 2 else []
    return m, labels


def canonical_code(matrix, ops: Sequence[int]) -> int:
    """Exact canonical code of a (pruned) cell: min over topological interior relabelings."""
    m = np.asarray(matrix)
    v = m.shape[0]
    best = None
    for p in itertools.permutations(range(1, v - 1)):
        perm = [0] + list(p) + [v - 1]  # perm[old] = new
        pm, pl = permute_graph(m, list(ops), perm)
        if np.any(np.tril(pm)):
            continue
        c = encode_code(pm.astype(np.uint8), pl)
        if best is None or c < best:
            best = c
    assert best is not None  # the identity is always upper-triangular
    return best
