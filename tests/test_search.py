"""Search algorithms: validity, determinism, §8.4 budget accounting, parity with plain-Python
references (KS tests), locality, partial stores, bad input.

All tests share one store -- every cell with at most 6 vertices (64,542, the paper's
"NAS-Bench-Mini") with the synthetic landscape -- and one budget, so each method compiles once
per session (the seed count is fixed per method too).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import search
from nasbench_jax import api, space, synthetic
from nasbench_jax import store as st
from nasbench_jax.errors import ConfigError
from nasbench_jax.graph import reference
from nasbench_jax.spec import ModelSpec, is_valid
from search import bananas, common, evolution, regret

import reference_search as ref

ALL = ["random_search", "regularized_evolution", "reinforce", "local_search", "hyperband", "bananas"]
BUDGET = search.SearchBudget(max_time_s=3e5, max_evaluations=600)
KS_TIME = 6e4  # the KS tests compare incumbents at this time (~30 evaluations)
SMALL_CONFIGS = {
    "regularized_evolution": evolution.EvolutionConfig(population_size=20, tournament_size=5),
    "bananas": bananas.BananasConfig(num_candidates=30, ensemble_size=2, hidden=16, train_steps=20,
                                     history_size=32),
}
SEEDS = 256  # one seed count per method, so each method compiles once per session
SEEDS_OF = {"bananas": 16}  # trains an ensemble every 10 steps: few seeds keep the test short


@pytest.fixture(scope="module")
def mini():
    """(QueryTable, Store) of all cells with <= 6 vertices, synthetic metrics."""
    store = synthetic.synthesize(space.enumerate_cells(max_vertices=6, progress=False), seed=0)
    return api.QueryTable.from_store(store), store


def small_config(name):
    return SMALL_CONFIGS.get(name) or search.default_config(name)


def seeds_of(name):
    return SEEDS_OF.get(name, SEEDS)


_CACHE = {}


def run_small(name, table, key=0):
    k = (name, id(table), key)
    if k not in _CACHE:
        keys = jax.random.split(jax.random.key(key), seeds_of(name))
        _CACHE[k] = jax.tree.map(np.asarray, search.run(name, keys, table, small_config(name),
                                                        budget=BUDGET, record_cells=True))
    return _CACHE[k]


# --------------------------------------------------------------------------- building blocks


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
    """A real store of three cells with fixed metrics (all repeats equal), and raw proposals."""
    def cell(edges, ops5):
        a = np.zeros((7, 7), np.uint8)
        for x, y in edges:
            a[x, y] = 1
        return a, np.array([-1, *ops5, -2], np.int8)
    raw = [
        cell([(0, 1), (1, 6)], [0, 0, 0, 0, 0]),  # A: in -> conv3x3 -> out
        cell([(0, k) for k in range(1, 6)] + [(k, 6) for k in range(1, 6)], [0] * 5),  # 10 raw edges
        cell([(0, 2), (2, 6)], [0, 2, 0, 0, 0]),  # B: in -> maxpool -> out
        cell([(0, 6)], [1, 1, 1, 1, 1]),  # C: in -> out
        cell([(0, 3), (3, 6), (1, 2)], [2, 2, 0, 2, 2]),  # A again (isomorphic, plus an island)
    ]
    pruned = [  # (matrix, labels) of A, B, C
        (np.array([[0, 1, 0], [0, 0, 1], [0, 0, 0]]), [-1, 0, -2]),
        (np.array([[0, 1, 0], [0, 0, 1], [0, 0, 0]]), [-1, 2, -2]),
        (np.array([[0, 1], [0, 0]]), [-1, -2]),
    ]
    adj = np.zeros((3, 7, 7), np.uint8)
    ops = np.full((3, 7), -3, np.int8)
    for i, (m, lab) in enumerate(pruned):
        adj[i, : len(lab), : len(lab)] = m
        ops[i, : len(lab)] = lab
    val, tim = np.array([0.8, 0.7, 0.9]), np.array([100.0, 200.0, 300.0])
    full = lambda x: np.broadcast_to(x[:, None, None], (3, 4, 3)).astype(np.float32)  # noqa: E731
    store = st.make_store(
        adjacency=adj, operations=ops, num_vertices=[3, 3, 2],
        module_hash=[reference.hash_module(m, lab) for m, lab in pruned], trainable_parameters=[1, 2, 3],
        metrics=dict(final_validation_accuracy=full(val), final_test_accuracy=full(val - 0.05),
                     final_training_time=full(tim), halfway_validation_accuracy=full(val - 0.1),
                     halfway_training_time=full(tim / 2)))
    return api.QueryTable.from_store(store), np.stack([r[0] for r in raw]), np.stack([r[1] for r in raw])


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


def test_dedup_skips_isomorphic_reproposals():
    table, adj, ops = _scripted_table()
    seq_a, seq_o = jnp.asarray(adj), jnp.asarray(ops)
    # A, invalid, B, C, then A's isomorph (island 1->2, A's conv at vertex 3) five more times
    scripted = common.Algorithm(
        "scripted", lambda key, cfg: key,
        lambda st, i, cfg: (st, (seq_a[jnp.minimum(i, 4)], seq_o[jnp.minimum(i, 4)])),
        lambda st, i, cell, res, cfg: st)
    run = jax.jit(common.run_search, static_argnums=(0, 3, 5), static_argnames=("dedup",))
    plain = jax.tree.map(np.asarray, run(scripted, jax.random.split(jax.random.key(0), 2), table, None,
                                         1e4, 8))
    dd = jax.tree.map(np.asarray, run(scripted, jax.random.split(jax.random.key(0), 2), table, None,
                                      1e4, 8, dedup=True))
    assert plain.valid[0].tolist() == [True, False, True, True] + [True] * 4
    np.testing.assert_allclose(plain.time_s[0], [100, 100, 300, 600, 700, 800, 900, 1000])
    assert dd.valid[0].tolist() == [True, False, True, True] + [False] * 4
    np.testing.assert_allclose(dd.time_s[0], [100, 100, 300, 600, 600, 600, 600, 600])
    assert dd.index[0, 4:].tolist() == [-1] * 4


# --------------------------------------------------------------------------- every method


@pytest.mark.parametrize("name", ALL)
def test_every_method_valid_deterministic_and_seed_dependent(name, mini):
    table, store = mini
    codes_s = np.asarray(store.canonical_code)
    tr = run_small(name, table)
    again = jax.tree.map(np.asarray, search.run(
        name, jax.random.split(jax.random.key(0), seeds_of(name)), table, small_config(name), budget=BUDGET,
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
        if n < BUDGET.max_evaluations:  # stopped by time: the last step crossed the limit
            assert t[-1] > BUDGET.max_time_s and (n == 1 or t[-2] <= BUDGET.max_time_s)
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


def test_methods_that_resample_propose_only_valid_cells(mini):
    for name in ["random_search", "reinforce", "local_search", "bananas"]:
        tr = run_small(name, mini[0])
        act = tr.active
        # raw validity (before the store lookup) holds for every proposal
        ok = np.asarray(common.raw_valid(tr.adjacency[act]))
        assert ok.mean() > 0.99, name


def _partial(mini, keep_fraction=0.6, seed=0):
    """The same cells with ~40 % of them stripped of all runs (NaN metrics): the table keeps
    its shapes (so the compiled programs are reused) and those cells are not found, exactly as
    cells absent from a store that covers only part of the space."""
    import dataclasses

    table, store = mini
    n = store.canonical_code.shape[0]
    keep = np.random.default_rng(seed).random(n) < keep_fraction
    cols = {m: np.where(keep[:, None, None], np.asarray(getattr(store, m)), np.nan).astype(np.float32)
            for m in st.METRIC_NAMES}
    return api.QueryTable.from_store(dataclasses.replace(store, **cols)), keep


@pytest.fixture(scope="module")
def partial(mini):
    return _partial(mini)


@pytest.mark.parametrize("name", ALL)
def test_partial_store_treats_missing_cells_as_invalid(name, mini, partial):
    part, keep = partial
    codes_s = np.asarray(mini[1].canonical_code)
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
def ref_bench(mini):
    return ref.RefBench.from_store(mini[1])


def _at(tr, t):
    """Incumbent mean test accuracy of each seed at simulated time ``t``."""
    return 1.0 - regret.regret_at(tr.time_s, tr.active, tr.incumbent_test_acc, 1.0, [t])[:, 0]


def test_random_search_matches_plain_python_reference(mini, ref_bench):
    jax_acc = _at(run_small("random_search", mini[0], key=11), KS_TIME)
    ref_acc = np.array([ref.random_search(ref_bench, s, KS_TIME)[0] for s in range(SEEDS)])
    p = stats.ks_2samp(jax_acc, ref_acc).pvalue
    assert p > 1e-3, (p, jax_acc.mean(), ref_acc.mean())
    # and the test has power: a clearly different distribution (a quarter of the time) fails
    worse = np.array([ref.random_search(ref_bench, 10_000 + s, KS_TIME / 4)[0] for s in range(SEEDS)])
    assert stats.ks_2samp(jax_acc, worse).pvalue < 1e-3


def test_regularized_evolution_matches_plain_python_reference(mini, ref_bench):
    cfg = SMALL_CONFIGS["regularized_evolution"]
    jax_acc = _at(run_small("regularized_evolution", mini[0], key=12), KS_TIME)
    ref_acc = np.array([ref.regularized_evolution(ref_bench, s, KS_TIME, cfg.population_size,
                                                  cfg.tournament_size)[0] for s in range(SEEDS)])
    p = stats.ks_2samp(jax_acc, ref_acc).pvalue
    assert p > 1e-3, (p, jax_acc.mean(), ref_acc.mean())


def test_locality_evolution_and_local_search_beat_random_search(mini):
    """On a landscape with locality, RE and local search reach lower mean regret than RS at
    equal simulated time (the paper's Fig. 7 ordering)."""
    table, store = mini
    best, _ = regret.optimum_from_store(store)
    reg = {}
    for name in ("random_search", "regularized_evolution", "local_search"):
        tr = run_small(name, table, key=21)
        r = regret.regret_at(tr.time_s, tr.active, tr.incumbent_test_acc, best, [BUDGET.max_time_s])[:, 0]
        reg[name] = (r.mean(), r.std() / np.sqrt(len(r)))
    rs = reg["random_search"]
    for name in ("regularized_evolution", "local_search"):
        m, se = reg[name]
        assert m + 4 * np.hypot(se, rs[1]) < rs[0], reg


# --------------------------------------------------------------------------- bad input


def test_bad_input_gets_clear_errors(mini):
    table = mini[0]
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
    only108 = table.replace(budgets=(108,))
    with pytest.raises(ConfigError, match=r"needs \[4, 12, 36\] epochs"):
        search.run("hyperband", keys, only108)


def test_single_seed_function_equals_its_row_of_the_many_seed_run(mini):
    """A seed's trajectory does not depend on the other seeds run with it."""
    from search import random_search

    keys = jax.random.split(jax.random.key(0), seeds_of("random_search"))
    one = jax.tree.map(np.asarray, random_search.random_search(keys[5], mini[0], small_config("random_search"),
                                                               BUDGET))
    many = run_small("random_search", mini[0])
    for name in ("time_s", "valid", "index", "incumbent_test_acc", "num_steps"):
        np.testing.assert_array_equal(getattr(one, name), getattr(many, name)[5])


def test_search_and_plot_commands_end_to_end(mini, tmp_path):
    """`nasbench-jax search` writes the runs file (same shapes as the tests' runs, so the
    compiled program is reused) and `nasbench-jax plot` draws it."""
    import json

    from nasbench_jax import cli as main_cli

    path = tmp_path / "mini.npz"
    st.write_store(str(path), mini[1])
    out = tmp_path / "rs.npz"
    rc = main_cli.main(["search", "--store", str(path), "--algorithm", "random_search", "--seeds", str(SEEDS),
                        "--chunk", str(SEEDS), "--max-time", str(BUDGET.max_time_s), "--max-evaluations",
                        str(BUDGET.max_evaluations), "--grid-points", "50", "--out", str(out),
                        "--config.candidates_per_step=16"])
    assert rc == 0
    with np.load(out) as z:
        assert z["time_grid"].shape == (50,) and z["test_regret"].shape == (SEEDS, 50)
        assert z["valid_regret"].shape == (SEEDS, 50)
        meta = json.loads(str(z["metadata"]))
        reg = z["test_regret"]
    assert meta["algorithm"] == "random_search" and meta["config"] == {"candidates_per_step": 16}
    assert meta["store_synthetic"] is True and meta["seeds"] == SEEDS
    best, _ = regret.optimum_from_store(mini[1])
    assert meta["best_test_accuracy"] == pytest.approx(best)
    # the file's final regrets are the library's, seed by seed (master seed 0)
    tr = run_small("random_search", mini[0])
    np.testing.assert_allclose(reg[:, -1], regret.regret_at(tr.time_s, tr.active, tr.incumbent_test_acc, best,
                                                            [BUDGET.max_time_s])[:, 0], rtol=1e-6)
    assert main_cli.main(["plot", str(out), "--out", str(tmp_path / "r.png")]) == 0
    assert (tmp_path / "r.png").stat().st_size > 1000
    # a store without the budgets Hyperband needs
    import dataclasses

    s108 = dataclasses.replace(mini[1], budgets=np.array([108], np.int32),
                               metadata=dict(mini[1].metadata, budgets=[108]),
                               **{m: np.asarray(getattr(mini[1], m))[:, 3:] for m in st.METRIC_NAMES})
    st.write_store(str(tmp_path / "s108.npz"), s108)
    assert main_cli.main(["search", "--store", str(tmp_path / "s108.npz"), "--algorithm", "hyperband",
                          "--out", str(tmp_path / "hb.npz")]) == 2


def test_a_store_with_fewer_cells_treats_absent_cells_as_invalid(mini):
    """A real store that holds only some cells (no placeholder rows): absent cells -- here every
    cell with 6 vertices and every 7-vertex cell -- are invalid: cost 0, never incumbents."""
    store = mini[1]
    keep = np.asarray(store.num_vertices) <= 5
    sub = st.make_store(
        adjacency=store.adjacency[keep], operations=store.operations[keep],
        num_vertices=store.num_vertices[keep], module_hash=store.module_hash[keep],
        trainable_parameters=store.trainable_parameters[keep], canonical_code=store.canonical_code[keep],
        metrics={m: np.asarray(getattr(store, m))[keep] for m in st.METRIC_NAMES}, synthetic=True)
    table = api.QueryTable.from_store(sub)
    tr = jax.tree.map(np.asarray, search.run("random_search", jax.random.split(jax.random.key(3), 4), table,
                                             budget=search.SearchBudget(max_time_s=2e4, max_evaluations=64),
                                             record_cells=True))
    absent = 0
    for s in range(4):
        for i in range(tr.num_steps[s]):
            spec = ModelSpec(tr.adjacency[s, i], space.labels_to_ops(tr.operations[s, i]))
            if not is_valid(spec):  # all 16 draws of the step invalid (p ~ 0.5 %): recorded as such
                assert not tr.valid[s, i]
                continue
            if len(spec.ops) > 5:
                absent += 1
                assert not tr.valid[s, i] and tr.index[s, i] == -1
                assert i == 0 or tr.time_s[s, i] == tr.time_s[s, i - 1]
            else:
                assert tr.valid[s, i]
    assert absent > 0 and tr.valid.sum() > 0
