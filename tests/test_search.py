"""Search algorithms: validity, determinism, §8.4 budget accounting, parity with plain-Python
references (KS tests), locality, partial stores, bad input.

Compiled programs are shared: each (algorithm, config, max_evaluations) compiles once per
session, so the tests reuse the same budget shapes on purpose.
"""

import collections

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import search
from nasbench_jax import constants as C
from nasbench_jax import space
from nasbench_jax.errors import ConfigError
from nasbench_jax.graph import reference
from nasbench_jax.spec import ModelSpec, is_valid
from search import bananas, common, evolution

import reference_search as ref
import search_double as dbl

ALL = ["random_search", "regularized_evolution", "reinforce", "local_search", "hyperband", "bananas"]
SMALL_BUDGET = search.SearchBudget(max_time_s=6e4, max_evaluations=160)
SMALL_CONFIGS = {
    "regularized_evolution": evolution.EvolutionConfig(population_size=20, tournament_size=5),
    "bananas": bananas.BananasConfig(num_candidates=30, ensemble_size=2, hidden=16, train_steps=20,
                                     history_size=32),
}


@pytest.fixture(scope="module")
def space5():
    return dbl.make_table(5)


def small_config(name):
    return SMALL_CONFIGS.get(name) or search.default_config(name)


_CACHE = {}


SEEDS = 256  # one seed count per method, so each method compiles once per session
SEEDS_OF = {"bananas": 16}  # trains an ensemble every 10 steps: few seeds keep the test short


def seeds_of(name):
    return SEEDS_OF.get(name, SEEDS)


def run_small(name, table, key=0):
    k = (name, id(table), key)
    if k not in _CACHE:
        keys = jax.random.split(jax.random.key(key), seeds_of(name))
        _CACHE[k] = jax.tree.map(np.asarray, search.run(name, keys, table, small_config(name),
                                                        budget=SMALL_BUDGET, record_cells=True))
    return _CACHE[k]


# --------------------------------------------------------------------------- building blocks


def test_double_canonicalization_matches_reference():
    adj, ops = common.random_raw_cells(jax.random.key(3), (300,))
    codes, ok = jax.jit(jax.vmap(dbl.canonicalize_one))(adj, ops)
    adj, ops = np.asarray(adj), np.asarray(ops)
    for i in range(300):
        s = ModelSpec(adj[i], space.labels_to_ops(ops[i]))
        if is_valid(s):
            assert int(codes[i]) == reference.canonical_code(s.matrix, space.ops_to_labels(s.ops))
        else:
            assert not bool(ok[i])


def test_raw_valid_matches_the_scripts_rule():
    adj, ops = common.random_raw_cells(jax.random.key(4), (500,))
    got = np.asarray(common.raw_valid(adj))
    adj, ops = np.asarray(adj), np.asarray(ops)
    want = [adj[i].sum() <= 9 and is_valid(ModelSpec(adj[i], space.labels_to_ops(ops[i])))
            for i in range(500)]
    assert got.tolist() == want
    assert 0.15 < got.mean() < 0.45  # ~28% of uniform configurations are valid


def test_bits_roundtrip_and_row_major_order():
    bits = np.zeros(21, np.int32)
    bits[0] = 1  # edge_0 is 0->1 in np.triu_indices order
    bits[6] = 1  # edge_6 is 1->2
    adj, ops = common.bits_to_cells(bits, np.array([0, 1, 2, 0, 1]))
    assert np.asarray(adj)[0, 1] == 1 and np.asarray(adj)[1, 2] == 1 and np.asarray(adj).sum() == 2
    assert np.asarray(ops).tolist() == [-1, 0, 1, 2, 0, 1, -2]
    b2, o2 = common.cells_to_bits(adj, ops)
    assert np.asarray(b2).tolist() == bits.tolist() and np.asarray(o2).tolist() == [0, 1, 2, 0, 1]


def test_neighbours_are_exactly_the_edit_distance_one_cells():
    adj, ops = common.random_raw_cells(jax.random.key(5))
    nb_adj, nb_ops = common.neighbours(adj, ops)
    b0, o0 = (np.asarray(x) for x in common.cells_to_bits(adj, ops))
    seen = set()
    for k in range(common.NUM_NEIGHBOURS):
        b, o = (np.asarray(x) for x in common.cells_to_bits(nb_adj[k], nb_ops[k]))
        assert (b != b0).sum() + (o != o0).sum() == 1
        assert ((0 <= o) & (o < 3)).all()
        seen.add((tuple(b), tuple(o)))
    assert len(seen) == 31  # 21 flips + 5 vertices x 2 other ops, all distinct


def test_mutation_changes_exactly_one_variable_uniformly():
    adj, ops = common.random_raw_cells(jax.random.key(6))
    keys = jax.random.split(jax.random.key(7), 5200)
    ca, co = jax.jit(jax.vmap(evolution.mutate, in_axes=(0, None, None)))(keys, adj, ops)
    b0, o0 = (np.asarray(x) for x in common.cells_to_bits(adj, ops))
    b, o = (np.asarray(x) for x in common.cells_to_bits(ca, co))
    diff = np.concatenate([b != b0, o != o0], axis=1)
    assert (diff.sum(1) == 1).all()  # one variable, and an op always changes to another op
    counts = diff.sum(0)
    assert stats.chisquare(counts).pvalue > 1e-3  # uniform over the 26 variables


# --------------------------------------------------------------------------- accounting


def _scripted_table():
    """Three cells with fixed metrics (all repeats equal) and the raw proposals to query."""
    raw = []
    def cell(edges, ops5):
        a = np.zeros((7, 7), np.uint8)
        for x, y in edges:
            a[x, y] = 1
        return a, np.array([-1, *ops5, -2], np.int8)
    raw.append(cell([(0, 1), (1, 6)], [0, 0, 0, 0, 0]))  # A: in -> conv3x3 -> out
    raw.append(cell([(0, k) for k in range(1, 6)] + [(k, 6) for k in range(1, 6)], [0] * 5))  # 10 edges
    raw.append(cell([(0, 2), (2, 6)], [0, 2, 0, 0, 0]))  # B: in -> maxpool -> out
    raw.append(cell([(0, 6)], [1, 1, 1, 1, 1]))  # C: in -> out
    raw.append(cell([(0, 3), (3, 6), (1, 2)], [2, 2, 0, 2, 2]))  # A again (isomorphic, island)
    adj = np.stack([r[0] for r in raw])
    ops = np.stack([r[1] for r in raw])
    codes, _ = jax.vmap(dbl.canonicalize_one)(adj, ops)
    codes = np.asarray(codes)
    cells = {"A": codes[0], "B": codes[2], "C": codes[3]}
    order = sorted(cells, key=lambda k: cells[k])
    val = {"A": 0.8, "B": 0.7, "C": 0.9}
    tim = {"A": 100.0, "B": 200.0, "C": 300.0}
    shape = (3, 4, 3)
    v = np.stack([np.full(shape[1:], val[k]) for k in order]).astype(np.float32)
    t = np.stack([np.full(shape[1:], tim[k]) for k in order]).astype(np.float32)
    table = dbl.FakeTable(jnp.asarray(np.array([cells[k] for k in order], np.uint32)), jnp.asarray(v),
                          jnp.asarray(v - 0.05), jnp.asarray(t), jnp.asarray(v - 0.1),
                          jnp.asarray(t / 2), C.BUDGETS)
    return table, adj, ops


def test_budget_accounting_matches_a_hand_computed_example():
    table, adj, ops = _scripted_table()
    seq_a, seq_o = jnp.asarray(adj), jnp.asarray(ops)
    scripted = common.Algorithm(
        "scripted", lambda key, cfg: key,
        lambda st, i, cfg: (st, (seq_a[jnp.minimum(i, 4)], seq_o[jnp.minimum(i, 4)])),
        lambda st, i, cell, res, cfg: st)
    run = jax.jit(common.run_search, static_argnums=(0, 3, 5))
    tr = run(scripted, jax.random.split(jax.random.key(0), 2), table, None, 550.0, 8)
    tr = jax.tree.map(np.asarray, tr)
    # A (100 s, 0.8) | invalid: 10 raw edges (0 s) | B (200 s, 0.7) | C (300 s, 0.9) -> 600 > 550
    # crosses the limit: recorded, then the seed stops; the 5th proposal is never made.
    assert tr.num_steps.tolist() == [4, 4]
    np.testing.assert_allclose(tr.time_s[0, :4], [100, 100, 300, 600])
    assert tr.valid[0, :4].tolist() == [True, False, True, True]
    np.testing.assert_allclose(tr.incumbent_valid_acc[0, :4], [0.8, 0.8, 0.8, 0.9], rtol=1e-6)
    np.testing.assert_allclose(tr.incumbent_test_acc[0, :4], [0.75, 0.75, 0.75, 0.85], rtol=1e-6)
    assert tr.active[0].tolist() == [True] * 4 + [False] * 4
    np.testing.assert_allclose(tr.time_s[0, 4:], 600)  # held after the stop
    # The same proposals with max_time 100: A reaches exactly 100 (not > 100), so the search
    # goes on; the invalid step costs nothing; B crosses.
    tr2 = jax.tree.map(np.asarray, run(
        scripted, jax.random.split(jax.random.key(0), 2), table, None, 100.0, 8))
    assert tr2.num_steps.tolist() == [3, 3]
    np.testing.assert_allclose(tr2.time_s[0, :3], [100, 100, 300])


# --------------------------------------------------------------------------- every method


@pytest.mark.parametrize("name", ALL)
def test_every_method_valid_deterministic_and_seed_dependent(name, space5):
    table, store, (adj_s, ops_s, nv_s, codes_s) = space5
    tr = run_small(name, table)
    again = jax.tree.map(np.asarray, search.run(
        name, jax.random.split(jax.random.key(0), seeds_of(name)), table, small_config(name), budget=SMALL_BUDGET,
        record_cells=True))
    for a, b in zip(jax.tree.leaves(tr), jax.tree.leaves(again)):
        np.testing.assert_array_equal(a, b)  # same keys, same trajectories
    assert not np.array_equal(tr.index[0], tr.index[1])  # different seeds differ
    assert (tr.num_steps > 0).all()
    for s in range(3):
        n = tr.num_steps[s]
        assert tr.active[s, :n].all() and not tr.active[s, n:].any()
        t = tr.time_s[s, :n]
        assert (np.diff(t) >= 0).all()
        if n < SMALL_BUDGET.max_evaluations:  # stopped by time: the last step crossed the limit
            assert t[-1] > SMALL_BUDGET.max_time_s and (n == 1 or t[-2] <= SMALL_BUDGET.max_time_s)
        for i in range(n):
            a, o = tr.adjacency[s, i], tr.operations[s, i]
            assert o[0] == -1 and o[6] == -2 and ((0 <= o[1:6]) & (o[1:6] < 3)).all()
            assert not np.tril(a).any()
            spec = ModelSpec(a, space.labels_to_ops(o))
            ok = a.sum() <= 9 and is_valid(spec)
            if tr.valid[s, i]:
                assert ok
                row = tr.index[s, i]
                assert reference.canonical_code(spec.matrix, space.ops_to_labels(spec.ops)) == codes_s[row]
            else:
                assert tr.index[s, i] == -1
                assert i == 0 or tr.time_s[s, i] == tr.time_s[s, i - 1]  # cost 0
        # incumbent: best queried validation accuracy so far, scored by its mean test accuracy
        q = np.where(tr.valid[s, :n], tr.queried_valid_acc[s, :n], -1.0)
        np.testing.assert_allclose(tr.incumbent_valid_acc[s, :n], np.maximum.accumulate(q).clip(0))


def test_methods_that_resample_propose_only_valid_cells(space5):
    for name in ["random_search", "reinforce", "local_search", "bananas"]:
        tr = run_small(name, space5[0])
        act = tr.active
        # raw validity (before the store lookup) holds for every proposal
        ok = np.asarray(common.raw_valid(tr.adjacency[act]))
        assert ok.mean() > 0.99, name


def _partial(space5, keep_fraction=0.6, seed=0):
    """The same store with ~40 % of its cells removed, keeping the table's shapes (so the
    compiled programs are reused): a removed row's code duplicates the previous kept code,
    so ``searchsorted`` never lands on it and its own code is absent."""
    table, store, cells = space5
    codes = np.asarray(table.codes)
    keep = np.random.default_rng(seed).random(codes.shape[0]) < keep_fraction
    codes2 = np.maximum.accumulate(np.where(keep, codes, 0)).astype(np.uint32)
    t = dbl.FakeTable(jnp.asarray(codes2), table.valid, table.test, table.time, table.halfway_valid,
                      table.halfway_time, table.budgets)
    return t, keep


@pytest.mark.parametrize("name", ALL)
def test_partial_store_treats_missing_cells_as_invalid(name, space5):
    part, keep = _partial(space5)
    codes_s = space5[2][3]
    tr = run_small(name, part)
    assert tr.valid.sum() > 0
    missing = 0
    for s in range(3):
        for i in range(tr.num_steps[s]):
            a, o = tr.adjacency[s, i], tr.operations[s, i]
            spec = ModelSpec(a, space.labels_to_ops(o))
            if not (a.sum() <= 9 and is_valid(spec)):
                assert not tr.valid[s, i]
                continue
            code = reference.canonical_code(spec.matrix, space.ops_to_labels(spec.ops))
            row = np.searchsorted(codes_s, code)
            present = row < len(codes_s) and codes_s[row] == code and keep[row]
            assert tr.valid[s, i] == present  # in the space but not in the store: invalid
            if not present:
                missing += 1
                assert tr.index[s, i] == -1
                assert i == 0 or tr.time_s[s, i] == tr.time_s[s, i - 1]  # cost 0
    assert missing > 0


# --------------------------------------------------------------------------- parity with §8.4


@pytest.fixture(scope="module")
def ref_bench(space5):
    table, store, (adj, ops, nv, codes) = space5
    return ref.RefBench(adj, ops, nv, store["final_validation_accuracy"][:, -1],
                        store["final_test_accuracy"][:, -1], store["final_training_time"][:, -1])


def _final(tr):
    last = np.maximum(tr.num_steps - 1, 0)
    return tr.incumbent_test_acc[np.arange(len(last)), last]


def test_random_search_matches_plain_python_reference(space5, ref_bench):
    tr = run_small("random_search", space5[0], key=11)
    jax_final = _final(tr)
    ref_final = np.array([ref.random_search(ref_bench, s, SMALL_BUDGET.max_time_s)[0] for s in range(256)])
    p = stats.ks_2samp(jax_final, ref_final).pvalue
    assert p > 1e-3, (p, jax_final.mean(), ref_final.mean())
    # and the test has power: a clearly different distribution (the best of fewer draws) fails
    worse = np.array([ref.random_search(ref_bench, 10_000 + s, SMALL_BUDGET.max_time_s / 8)[0]
                      for s in range(256)])
    assert stats.ks_2samp(jax_final, worse).pvalue < 1e-3


def test_regularized_evolution_matches_plain_python_reference(space5, ref_bench):
    cfg = SMALL_CONFIGS["regularized_evolution"]
    tr = run_small("regularized_evolution", space5[0], key=12)
    jax_final = _final(tr)
    ref_final = np.array([ref.regularized_evolution(ref_bench, s, SMALL_BUDGET.max_time_s,
                                                    cfg.population_size, cfg.tournament_size)[0]
                          for s in range(256)])
    p = stats.ks_2samp(jax_final, ref_final).pvalue
    assert p > 1e-3, (p, jax_final.mean(), ref_final.mean())


# --------------------------------------------------------------------------- bad input


def test_bad_input_gets_clear_errors(space5):
    table = space5[0]
    keys = jax.random.split(jax.random.key(0), 2)
    with pytest.raises(search.UnknownAlgorithmError, match="unknown algorithm 'nope'"):
        search.run("nope", keys, table)
    with pytest.raises(ConfigError, match="max_time_s must be a positive"):
        search.run("random_search", keys, table, budget=search.SearchBudget(max_time_s=0))
    with pytest.raises(ConfigError, match="max_time_s must be a positive"):
        search.run("random_search", keys, table, budget=search.SearchBudget(max_time_s=-5))
    with pytest.raises(ConfigError, match="max_evaluations"):
        search.run("random_search", keys, table, budget=search.SearchBudget(max_evaluations=0))
    with pytest.raises(ConfigError, match="population_size"):
        search.run("regularized_evolution", keys, table, evolution.EvolutionConfig(population_size=0))
    with pytest.raises(ConfigError, match="needs a EvolutionConfig"):
        search.run("regularized_evolution", keys, table, search.default_config("random_search"))
    only108 = dbl.FakeTable(table.codes, table.valid[:, -1:], table.test[:, -1:], table.time[:, -1:],
                            table.halfway_valid[:, -1:], table.halfway_time[:, -1:], (108,))
    with pytest.raises(ConfigError, match=r"needs \[4, 12, 36\] epochs"):
        search.run("hyperband", keys, only108)
