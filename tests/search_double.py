"""TEST DOUBLE of the batched query table (``nasbench_jax.api.QueryTable`` + ``query_cells``).

Used only by the search tests, and only for what the real table cannot give cheaply in a
test: a small store whose metrics we choose. It follows the same contract (raw cells ->
``QueryResult``-like fields; one repeat drawn uniformly per cell; 0 / -1 where not found) and
looks cells up by the exact canonical code of ``nasbench_jax.graph.reference`` computed here
in plain ``jax.numpy`` (prune by reachability, compact, min over topological relabelings).
The double's canonicalization is checked against ``reference.canonical_code`` in
``tests/test_search_common.py``.
"""

from __future__ import annotations

import itertools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from nasbench_jax import constants as C
from nasbench_jax.graph import reference

_PERMS = np.array([[0, *p, 6] for p in itertools.permutations(range(1, 6))], np.int32)  # new->old
# A relabeling is allowed for a V-vertex cell iff it fixes every slot >= V-1.
_BIT = np.zeros((7, 7), np.int64)
for _y in range(7):
    for _x in range(_y):
        _BIT[_x, _y] = reference.edge_bit(_x, _y)


def _allowed(v):
    # perms fixing positions v-1..6 (in new->old form)
    pos = jnp.arange(7)
    return jnp.all((pos[None, :] < v - 1) | (jnp.asarray(_PERMS) == pos[None, :]), axis=1)


def canonicalize_one(adj, ops):
    """Raw 7-vertex cell -> (code uint32, valid bool) with the reference code semantics."""
    a = adj.astype(jnp.int32)
    fwd = jnp.zeros(7, bool).at[0].set(True)
    bwd = jnp.zeros(7, bool).at[6].set(True)
    for _ in range(6):
        fwd = fwd | ((fwd.astype(jnp.int32) @ a) > 0)
        bwd = bwd | ((a @ bwd.astype(jnp.int32)) > 0)
    keep = fwd & bwd
    connected = keep[6] & keep[0]
    v = keep.sum()
    new_pos = jnp.cumsum(keep) - 1
    # compaction matrix P[new, old]
    p = (jnp.arange(7)[:, None] == new_pos[None, :]) & keep[None, :]
    pa = p.astype(jnp.int32) @ a @ p.T.astype(jnp.int32)
    labels = jnp.where(keep, ops.astype(jnp.int32), 0)
    pops = (p.astype(jnp.int32) @ labels)  # compacted labels; padding slots 0
    perms = jnp.asarray(_PERMS)
    allowed = _allowed(v)
    padj = pa[perms[:, :, None], perms[:, None, :]]  # [120, 7, 7] new-labelled
    upper = jnp.all(jnp.tril(padj) == 0, axis=(1, 2))
    bits = jnp.asarray(_BIT, jnp.uint32)
    triu = jnp.triu(jnp.ones((7, 7), bool), 1)
    acode = jnp.sum(jnp.where(triu & (padj > 0), jnp.left_shift(jnp.uint32(1), bits), 0), axis=(1, 2),
                    dtype=jnp.uint32)
    pl = pops[perms]  # [120, 7]
    o = jnp.zeros(120, jnp.uint32)
    for k in range(1, 6):
        digit = jnp.where(k < v - 1, pl[:, k], 0).astype(jnp.uint32)
        o = o * 3 + digit
    code = (v.astype(jnp.uint32) << 29) | (acode << 8) | o
    code = jnp.where(allowed & upper, code, jnp.uint32(0xFFFFFFFF))
    edges = pa.sum()
    valid = connected & (edges <= C.MAX_EDGES)
    return jnp.where(valid, code.min(), jnp.uint32(0)), valid


class Result(NamedTuple):
    found: jax.Array
    index: jax.Array
    train_accuracy: jax.Array
    validation_accuracy: jax.Array
    test_accuracy: jax.Array
    training_time: jax.Array
    mean_validation_accuracy: jax.Array
    mean_test_accuracy: jax.Array
    trainable_parameters: jax.Array


@jax.tree_util.register_pytree_node_class
class FakeTable:
    """Double of ``api.QueryTable``: arrays ``[N]`` / ``[N, B, R]``, budgets static."""

    def __init__(self, codes, valid, test, time, halfway_valid, halfway_time, budgets):
        self.codes, self.valid, self.test, self.time = codes, valid, test, time
        self.halfway_valid, self.halfway_time = halfway_valid, halfway_time
        self.budgets = tuple(int(b) for b in budgets)

    def tree_flatten(self):
        return (self.codes, self.valid, self.test, self.time, self.halfway_valid,
                self.halfway_time), self.budgets

    @classmethod
    def tree_unflatten(cls, budgets, leaves):
        return cls(*leaves, budgets)

    @classmethod
    def from_store(cls, store):
        return cls(jnp.asarray(store["canonical_code"]),
                   jnp.asarray(store["final_validation_accuracy"]),
                   jnp.asarray(store["final_test_accuracy"]),
                   jnp.asarray(store["final_training_time"]),
                   jnp.asarray(store["halfway_validation_accuracy"]),
                   jnp.asarray(store["halfway_training_time"]),
                   store["budgets"])

    def query_index(self, index, key, *, epochs, stop_halfway=False):
        b = self.budgets.index(epochs)
        n = index.shape[0]
        found = index >= 0
        idx = jnp.maximum(index, 0)
        rep = jax.random.randint(key, (n,), 0, self.valid.shape[2])
        val = (self.halfway_valid if stop_halfway else self.valid)[idx, b, rep]
        tim = (self.halfway_time if stop_halfway else self.time)[idx, b, rep]
        tst = self.test[idx, b, rep]
        z = jnp.zeros((n,), jnp.float32)
        return Result(found, jnp.where(found, index, -1), z, jnp.where(found, val, 0.0),
                      jnp.where(found, tst, 0.0), jnp.where(found, tim, 0.0),
                      jnp.where(found, self.valid[idx, b].mean(-1), 0.0),
                      jnp.where(found, self.test[idx, b].mean(-1), 0.0), jnp.zeros((n,), jnp.int32))

    def lookup_cells(self, cells):
        codes, ok = jax.vmap(canonicalize_one)(cells.adjacency, cells.operations)
        pos = jnp.clip(jnp.searchsorted(self.codes, codes), 0, self.codes.shape[0] - 1)
        found = ok & (self.codes[pos] == codes)
        return jnp.where(found, pos, -1).astype(jnp.int32)

    def query_cells(self, cells, key, *, epochs, stop_halfway=False):
        return self.query_index(self.lookup_cells(cells), key, epochs=epochs, stop_halfway=stop_halfway)


def small_space(max_vertices: int):
    """All unique cells with at most ``max_vertices`` vertices (test helper, numpy + the jnp
    canonicalization above): ``(adjacency uint8[N,7,7], operations int8[N,7], num_vertices,
    codes uint32[N])``, sorted by code. Counts are checked against the reference spec §4.2."""
    adjs, opss, nvs = [], [], []
    for v in range(2, max_vertices + 1):
        slots = [(x, y) for y in range(v) for x in range(y)]
        nbits = len(slots)
        bits = (np.arange(2 ** nbits)[:, None] >> np.arange(nbits)[None, :]) & 1
        m = np.zeros((bits.shape[0], v, v), np.uint8)
        for k, (x, y) in enumerate(slots):
            m[:, x, y] = bits[:, k]
        full = (m[:, : v - 1, :].sum(2) > 0).all(1) & (m[:, :, 1:].sum(1) > 0).all(1)
        full &= m.sum((1, 2)) <= C.MAX_EDGES
        m = m[full]
        prods = list(itertools.product(range(3), repeat=v - 2))
        labs = np.array(prods, np.int8).reshape(len(prods), v - 2)
        for lab in labs:
            a = np.zeros((m.shape[0], 7, 7), np.uint8)
            a[:, :v, :v] = m
            o = np.full((m.shape[0], 7), C.PAD_LABEL, np.int8)
            o[:, 0] = C.INPUT_LABEL
            o[:, 1 : v - 1] = lab
            o[:, v - 1] = C.OUTPUT_LABEL
            adjs.append(a)
            opss.append(o)
            nvs.append(np.full(m.shape[0], v, np.int32))
    adj = np.concatenate(adjs)
    ops = np.concatenate(opss)
    nv = np.concatenate(nvs)
    # embed with the output at slot 6 for the raw-cell canonicalization
    emb_a = np.zeros_like(adj)
    emb_o = np.zeros_like(ops)
    for v in np.unique(nv):
        r = nv == v
        idx = list(range(v - 1)) + [6]
        emb_a[np.ix_(r, idx, idx)] = adj[r][:, :v, :v]
        tmp = np.zeros((r.sum(), 7), np.int8)
        tmp[:, idx] = ops[r][:, :v]
        emb_o[r] = tmp
    codes = np.asarray(jax.jit(jax.vmap(canonicalize_one))(emb_a, emb_o)[0])
    _, first = np.unique(codes, return_index=True)
    return adj[first], ops[first], nv[first], codes[first]


def make_table(max_vertices: int = 5, seed: int = 0, subset=None):
    """A FakeTable with the synthetic landscape on ``small_space(max_vertices)``."""
    from nasbench_jax import synthetic

    adj, ops, nv, codes = small_space(max_vertices)
    if subset is not None:
        adj, ops, nv, codes = adj[subset], ops[subset], nv[subset], codes[subset]
    m = synthetic.synthetic_metrics(adj, ops, nv, codes, seed=seed)
    store = dict(canonical_code=codes, budgets=C.BUDGETS, **m)
    return FakeTable.from_store(store), store, (adj, ops, nv, codes)
