"""Independent generators of test cells for the graph kernel tests (numpy, explicit Generators)."""

from __future__ import annotations

import itertools

import numpy as np

V7 = 7


def random_full_dag(rng: np.random.Generator, v: int, max_edges: int | None = None) -> np.ndarray:
    """A uniformly drawn V-vertex full DAG (every vertex on an input->output path), by rejection."""
    if v == 2:
        return np.array([[0, 1], [0, 0]], np.uint8)
    while True:
        p = rng.uniform(0.25, 0.75)
        m = np.triu(rng.random((v, v)) < p, 1).astype(np.uint8)
        if m[:-1].any(1).all() and m[:, 1:].any(0).all():
            if max_edges is None or m.sum() <= max_edges:
                return m


def pad(matrix, labels):
    """(V x V matrix, V labels) -> (uint8[7,7], int8[7], V)."""
    v = len(labels)
    a = np.zeros((V7, V7), np.uint8)
    a[:v, :v] = matrix
    o = np.full(V7, -3, np.int8)
    o[:v] = labels
    return a, o, v


def batch(cells):
    """List of (matrix, labels) -> (uint8[N,7,7], int8[N,7], int32[N])."""
    padded = [pad(m, l) for m, l in cells]
    return (
        np.stack([p[0] for p in padded]),
        np.stack([p[1] for p in padded]),
        np.array([p[2] for p in padded], np.int32),
    )


def random_cells_of(rng, v: int, n: int, max_edges: int | None = None):
    """n random pruned cells with exactly v vertices: [(matrix, labels)]."""
    out = []
    for _ in range(n):
        m = random_full_dag(rng, v, max_edges)
        labels = [-1] + [int(x) for x in rng.integers(0, 3, v - 2)] + [-2]
        out.append((m, labels))
    return out


def random_topological_relabel(rng, matrix, labels):
    """Apply a random interior permutation that keeps the matrix upper-triangular, other than
    the identity whenever the cell has another topological order."""
    v = len(labels)
    m = np.asarray(matrix)
    options = []
    for perm in all_interior_perms(v):  # perm[old] = new
        inv = np.argsort(perm)
        new = m[np.ix_(inv, inv)]
        if not np.any(np.tril(new)) and list(perm) != list(range(v)):
            options.append((new.astype(np.uint8), [labels[i] for i in inv]))
    if not options:
        return m.astype(np.uint8), list(labels)
    return options[rng.integers(len(options))]


def degree_preserving_variant(rng, matrix, labels, tries: int = 50):
    """A near-miss: a double edge swap (same in/out-degree sequence) plus an interior op shuffle
    (same op multiset), still an upper-triangular full DAG; None if none was found."""
    m = np.asarray(matrix).astype(np.uint8)
    v = len(labels)
    edges = list(zip(*np.nonzero(m)))
    for _ in range(tries):
        if len(edges) < 2:
            return None
        i, j = rng.choice(len(edges), 2, replace=False)
        (x1, y1), (x2, y2) = edges[i], edges[j]
        if x1 == x2 or y1 == y2 or not (x1 < y2 and x2 < y1):
            continue
        if m[x1, y2] or m[x2, y1]:
            continue
        new = m.copy()
        new[x1, y1] = new[x2, y2] = 0
        new[x1, y2] = new[x2, y1] = 1
        if not (new[:-1].any(1).all() and new[:, 1:].any(0).all()):
            continue
        inner = list(labels[1:-1])
        rng.shuffle(inner)
        return new, [labels[0]] + inner + [labels[-1]]
    return None


def all_interior_perms(v: int):
    return [(0,) + p + (v - 1,) for p in itertools.permutations(range(1, v - 1))]


_OPS = {"input": -1, "output": -2, "conv3x3-bn-relu": 0, "conv1x1-bn-relu": 1, "maxpool3x3": 2}


def real_records(sample_1k, full_records_52):
    """The 1,052 real records as (hash str, V x V matrix, V integer labels)."""
    out = []
    for r in sample_1k:
        labels = [x for x in r["operations"] if x != -3]
        v = len(labels)
        out.append((r["hash"], np.asarray(r["adjacency"], np.uint8)[:v, :v], labels))
    for r in full_records_52:
        f = r["fixed"]
        out.append((r["hash"], np.asarray(f["module_adjacency"], np.uint8), [_OPS[o] for o in f["module_operations"]]))
    return out
