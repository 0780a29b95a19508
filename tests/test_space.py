"""space: encode/decode, random_cells and mutate (notebook rules §7.6) with statistical checks."""

import jax
import numpy as np
import pytest

from nasbench_jax import ModelSpec, is_valid, space
from nasbench_jax.errors import CellArrayError, ConfigError
from nasbench_jax.graph import in_space
from nasbench_jax.space import _mutate_proposal

C3, C1, MP = "conv3x3-bn-relu", "conv1x1-bn-relu", "maxpool3x3"
IU = np.triu_indices(7, 1)


def test_encode_decode_round_trip():
    spec = ModelSpec([[0, 1, 1, 0], [0, 0, 0, 1], [0, 0, 0, 1], [0, 0, 0, 0]], ["input", C1, MP, "output"])
    cells = space.encode([spec])
    assert cells.adjacency.shape == (1, 7, 7) and cells.operations.tolist() == [[-1, 1, 2, -2, -3, -3, -3]]
    back = space.decode(cells.adjacency[0], cells.operations[0], cells.num_vertices[0])
    assert back.hash_spec() == spec.hash_spec()


def _numpy_random_spec(rng, n):
    """Independent reference: the notebook's random_spec with ModelSpec/is_valid."""
    out_adj, out_ops = [], []
    while len(out_adj) < n:
        m = np.triu(rng.integers(0, 2, (7, 7)), 1)
        ops = [int(x) for x in rng.integers(0, 3, 7)]
        ops[0], ops[-1] = -1, -2
        if is_valid(ModelSpec(m, space.labels_to_ops(ops))):
            out_adj.append(m)
            out_ops.append(ops)
    return np.array(out_adj), np.array(out_ops)


def _close(p, q, n):
    """Two frequencies from independent samples of size n agree within 5 standard errors."""
    pbar = (p + q) / 2
    se = np.sqrt(np.maximum(pbar * (1 - pbar), 1e-4) * 2 / n)
    return np.abs(p - q) < 5 * se + 1e-9


def test_random_cells_valid_and_distributed_like_the_notebook():
    n = 2000
    cells = space.random_cells(jax.random.key(0), n)
    adj, ops, nv = (np.asarray(x) for x in cells)
    assert adj.shape == (n, 7, 7) and adj.dtype == np.uint8 and ops.dtype == np.int8 and nv.dtype == np.int32
    assert np.all(nv == 7) and np.all(ops[:, 0] == -1) and np.all(ops[:, 6] == -2)
    assert not np.any(np.tril(np.ones((7, 7), bool)) & (adj[0] > 0))
    assert np.all(in_space(adj, ops, nv))
    ref_adj, ref_ops = _numpy_random_spec(np.random.default_rng(1), n)
    assert np.all(_close(adj[:, IU[0], IU[1]].mean(0), ref_adj[:, IU[0], IU[1]].mean(0), n))
    for op in range(3):
        assert np.all(_close((ops[:, 1:6] == op).mean(0), (ref_ops[:, 1:6] == op).mean(0), n))
    # the marginal of an edge is not 1/2 under the validity condition: the test can tell
    assert abs(adj[:, 0, 6].mean() - 0.5) > 0.03


def test_random_cells_deterministic_and_jittable():
    a = space.random_cells(jax.random.key(3), 16)
    b = jax.jit(space.random_cells, static_argnums=1)(jax.random.key(3), 16)
    c = space.random_cells(jax.random.key(4), 16)
    for x, y in zip(a, b):
        assert np.array_equal(np.asarray(x), np.asarray(y))
    assert not np.array_equal(np.asarray(a.adjacency), np.asarray(c.adjacency))


@pytest.mark.parametrize("rate", [1.0, 2.5])
def test_mutation_proposal_rates(rate):
    """Each of the 21 entries flips w.p. rate/7, each interior op changes w.p. rate/5, always
    to a different op, uniformly among the other two."""
    n = 20000 // 16 * 16
    parents = space.random_cells(jax.random.key(5), 16)
    rep = jax.tree_util.tree_map(lambda x: np.repeat(np.asarray(x), n // 16, axis=0), parents)
    child = _mutate_proposal(jax.random.key(6), rep, rate)
    pa, ca = np.asarray(rep.adjacency), np.asarray(child.adjacency)
    flips = (pa != ca)[:, IU[0], IU[1]].mean(0)
    se = np.sqrt(rate / 7 * (1 - rate / 7) / n)
    assert np.all(np.abs(flips - rate / 7) < 5 * se)
    assert not np.any(np.tril(np.ones((7, 7), bool)) & (ca > 0).any(0))
    po, co = np.asarray(rep.operations), np.asarray(child.operations)
    changed = po[:, 1:6] != co[:, 1:6]
    se = np.sqrt(rate / 5 * (1 - rate / 5) / n)
    assert np.all(np.abs(changed.mean(0) - rate / 5) < 5 * se)
    assert np.all(co[:, 0] == -1) and np.all(co[:, 6] == -2)
    up = ((co[:, 1:6] - po[:, 1:6]) % 3 == 1)[changed]  # which of the two other ops
    assert abs(up.mean() - 0.5) < 5 * np.sqrt(0.25 / up.size)


def _numpy_mutate(rng, m, ops, rate, n):
    """Independent reference of the notebook's mutate_spec with ModelSpec/is_valid."""
    out = []
    while len(out) < n:
        new = m.copy()
        for x, y in zip(*IU):
            if rng.random() < rate / 7:
                new[x, y] = 1 - new[x, y]
        o = list(ops)
        for i in range(1, 6):
            if rng.random() < rate / 5:
                o[i] = int(rng.choice([k for k in range(3) if k != o[i]]))
        if is_valid(ModelSpec(new, space.labels_to_ops(o))):
            out.append(new)
    return np.array(out)


def test_mutate_valid_and_distributed_like_the_notebook():
    parent = jax.tree_util.tree_map(lambda x: x[:1], space.random_cells(jax.random.key(7), 16))
    n = 2000
    rep = jax.tree_util.tree_map(lambda x: np.repeat(np.asarray(x), n, axis=0), parent)
    child = space.mutate(jax.random.key(8), rep, 1.5)
    ca = np.asarray(child.adjacency)
    assert np.all(in_space(*child)) and np.all(np.asarray(child.num_vertices) == 7)
    m = np.asarray(parent.adjacency[0]).astype(int)
    ref = _numpy_mutate(np.random.default_rng(9), m, np.asarray(parent.operations[0]).tolist(), 1.5, n)
    assert np.all(_close(ca[:, IU[0], IU[1]].mean(0), ref[:, IU[0], IU[1]].mean(0), n))


def test_mutate_rate_zero_is_identity_and_traced_rate():
    parents = space.random_cells(jax.random.key(10), 16)
    jitted = jax.jit(space.mutate)  # traced cells and traced rate: one compilation
    same = jitted(jax.random.key(11), parents, 0.0)
    for x, y in zip(parents, same):
        assert np.array_equal(np.asarray(x), np.asarray(y))
    child = jitted(jax.random.key(12), parents, 1.0)
    assert np.all(in_space(*child))
    assert any(not np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(parents, child))


def test_errors():
    with pytest.raises(ConfigError):
        space.random_cells(jax.random.key(0), -1)
    parents = space.random_cells(jax.random.key(1), 16)
    with pytest.raises(ConfigError, match="mutation_rate"):
        space.mutate(jax.random.key(0), parents, 6.0)
    small = space.encode([ModelSpec([[0, 1], [0, 0]], ["input", "output"])])
    with pytest.raises(CellArrayError, match="7-vertex"):
        space.mutate(jax.random.key(0), small)
    adj = np.zeros((1, 7, 7), np.uint8)  # disconnected parent
    ops = np.array([[-1, 0, 0, 0, 0, 0, -2]], np.int8)
    with pytest.raises(CellArrayError, match="valid parents"):
        space.mutate(jax.random.key(0), space.Cells(adj, ops, np.array([7], np.int32)))
