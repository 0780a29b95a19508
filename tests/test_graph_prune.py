"""Batched pruning / validity / canonicalization against ModelSpec and is_valid."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nasbench_jax import ModelSpec, is_valid, space
from nasbench_jax.errors import CellArrayError, CellArrayTypeError
from nasbench_jax.graph import canonicalize, in_space, prune
from nasbench_jax.graph import reference as R


def _raw_batch(seed, n):
    rng = np.random.default_rng(seed)
    nv = rng.integers(2, 8, n).astype(np.int32)
    nv[: n // 2] = 7  # most cells are full 7x7 raw cells like the sampler's
    dens = rng.uniform(0.15, 0.7, (n, 1, 1))
    adj = (np.triu(rng.random((n, 7, 7)) < dens, 1)).astype(np.uint8)
    idx = np.arange(7)
    inside = (idx[None, :] < nv[:, None])
    adj &= (inside[:, :, None] & inside[:, None, :]).astype(np.uint8)
    ops = rng.integers(0, 3, (n, 7)).astype(np.int8)
    ops[:, 0] = -1
    ops[np.arange(n), nv - 1] = -2
    ops[~inside] = -3
    return adj, ops, nv


def test_agrees_with_modelspec_and_is_valid():
    adj, ops, nv = _raw_batch(20, 3000)
    cells, valid = prune(adj, ops, nv)
    ins = in_space(adj, ops, nv)
    codes, cvalid = canonicalize(adj, ops, nv)
    assert cells.adjacency.dtype == np.uint8 and cells.operations.dtype == np.int8
    assert cells.num_vertices.dtype == np.int32
    for i in range(len(nv)):
        v = int(nv[i])
        spec = ModelSpec(adj[i, :v, :v], space.labels_to_ops(ops[i, :v]))
        assert bool(valid[i]) == spec.valid_spec
        assert bool(ins[i]) == is_valid(spec) == bool(cvalid[i])
        if spec.valid_spec:
            k = spec.num_vertices
            assert cells.num_vertices[i] == k
            assert np.array_equal(cells.adjacency[i, :k, :k], spec.matrix)
            assert cells.adjacency[i].sum() == spec.matrix.sum()
            assert list(cells.operations[i, :k]) == space.ops_to_labels(spec.ops)
            assert np.all(cells.operations[i, k:] == -3)
        else:
            assert cells.num_vertices[i] == 0 and cells.adjacency[i].sum() == 0
        if is_valid(spec):
            assert codes[i] == R.canonical_code(spec.matrix, space.ops_to_labels(spec.ops))
        else:
            assert codes[i] == 0
    assert 0.2 < ins.mean() < 0.9 and (valid & ~ins).any()  # both verdicts and the edge limit


def test_spec_pruning_examples():
    # §2: (original rows, expected kept vertices) with labels 0..V-1 mapped onto our ops
    examples = [
        ("0100/0001/0000/0000", [0, 1, 3]),
        ("01000/00001/00010/00000/00000", [0, 1, 4]),
        ("0110/0000/0001/0000", [0, 2, 3]),
        ("0010/0001/0001/0000", [0, 2, 3]),
        ("0110/0001/0001/0000", [0, 1, 2, 3]),
    ]
    for rows, kept in examples:
        m = np.array([[int(c) for c in r] for r in rows.split("/")], np.uint8)
        v = m.shape[0]
        adj = np.zeros((1, 7, 7), np.uint8)
        adj[0, :v, :v] = m
        ops = np.full((1, 7), -3, np.int8)
        ops[0, :v] = [-1] + [i % 3 for i in range(1, v - 1)] + [-2]
        cells, valid = prune(adj, ops, np.array([v]))
        assert valid[0] and cells.num_vertices[0] == len(kept)
        assert np.array_equal(cells.adjacency[0, : len(kept), : len(kept)], m[np.ix_(kept, kept)])
        assert list(cells.operations[0, : len(kept)]) == list(ops[0, kept])
    for rows in ("00/00", "0100/0000/0001/0000", "0000/0010/0000/0000"):
        m = np.array([[int(c) for c in r] for r in rows.split("/")], np.uint8)
        v = m.shape[0]
        adj = np.zeros((1, 7, 7), np.uint8)
        adj[0, :v, :v] = m
        ops = np.full((1, 7), -3, np.int8)
        ops[0, :v] = [-1] + [0] * (v - 2) + [-2]
        cells, valid = prune(adj, ops, np.array([v]))
        assert not valid[0] and cells.num_vertices[0] == 0
        assert not in_space(adj, ops, np.array([v]))[0]
        codes, cv = canonicalize(adj, ops, np.array([v]))
        assert codes[0] == 0 and not cv[0]


def test_inside_user_jit_while_loop():
    """prune/in_space/canonicalize compose inside jit and lax.while_loop (pure path)."""
    adj, ops, nv = _raw_batch(21, 64)
    want_codes, want_valid = canonicalize(adj, ops, nv)

    @jax.jit
    def run(a, o, n):
        def body(state):
            i, acc = state
            codes, valid = canonicalize(a, o, n)
            ok = in_space(a, o, n)
            cells, _ = prune(a, o, n)
            return i + 1, acc + jnp.sum(valid == ok) + jnp.sum(cells.num_vertices) * 0
        _, acc = jax.lax.while_loop(lambda s: s[0] < 2, body, (0, 0))
        return canonicalize(a, o, n), acc

    (codes, valid), acc = run(adj, ops, nv)
    assert np.array_equal(np.asarray(codes), want_codes) and np.array_equal(np.asarray(valid), want_valid)
    assert int(acc) == 2 * len(nv)


@pytest.mark.parametrize(
    "fn", [prune, in_space, canonicalize],
)
def test_bad_input(fn):
    adj, ops, nv = _raw_batch(22, 4)
    with pytest.raises(CellArrayError, match="0 or 1"):
        fn(adj * 3, ops, nv)
    with pytest.raises(CellArrayError, match="upper-triangular"):
        fn(adj + np.eye(7, dtype=np.uint8), ops, nv)
    with pytest.raises(CellArrayTypeError, match="integer dtype"):
        fn(adj.astype(float), ops, nv)
    with pytest.raises(CellArrayError, match="num_vertices"):
        fn(adj, ops, nv + 7)
    with pytest.raises(CellArrayError, match="op labels"):
        bad = ops.copy()
        bad[:, 1] = np.where(nv > 2, 5, bad[:, 1])
        fn(adj, bad, nv)
