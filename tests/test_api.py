"""The NASBench drop-in API and the batched, jit-able queries, on the shipped real-data store."""

import itertools
import json
import math
import random
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nasbench_jax import api, cli, is_valid, space
from nasbench_jax import store as st
from nasbench_jax.errors import CellArrayError, OutOfDomainError
from nasbench_jax.graph import reference

QI = jax.jit(api.query_index, static_argnames=("epochs", "stop_halfway"))
OPS = {-1: "input", -2: "output", 0: "conv3x3-bn-relu", 1: "conv1x1-bn-relu", 2: "maxpool3x3"}


@pytest.fixture(scope="module")
def store():
    return st.open_store(api.example_store_path())


@pytest.fixture(scope="module")
def table(store):
    return api.QueryTable.from_store(store)


def _nan_free(x):
    """NaN -> None throughout (NaN != NaN would make equal records compare unequal)."""
    if isinstance(x, dict):
        return {k: _nan_free(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_nan_free(v) for v in x]
    return None if isinstance(x, float) and math.isnan(x) else x


def _spec_of_sample(rec):
    ops = [o for o in rec["operations"] if o != -3]
    v = len(ops)
    return api.ModelSpec(np.array(rec["adjacency"])[:v, :v], [OPS[o] for o in ops])


def _spec_of_full(rec):
    return api.ModelSpec(rec["fixed"]["module_adjacency"], rec["fixed"]["module_operations"])


def _respell(matrix, ops, rng, *, pad=True):
    """A random isomorphic respelling: interior relabeling (topological), plus, if room, an
    extraneous vertex (fed by the input, feeding nothing) that pruning must remove."""
    m = np.asarray(matrix)
    v = m.shape[0]
    while True:
        perm = [0] + list(rng.permutation(np.arange(1, v - 1))) + [v - 1]
        pm, pl = reference.permute_graph(m, list(ops), perm)
        if not np.tril(pm).any():
            break
    pm = pm.astype(np.int64)
    if pad and v < 7:
        big = np.zeros((v + 1, v + 1), np.int64)
        big[:v - 1, :v - 1] = pm[:v - 1, :v - 1]
        big[:v - 1, v] = pm[:v - 1, v - 1]  # edges into the output move to the new last index
        big[0, v - 1] = 1  # dangling vertex v-1: from the input, to nothing
        pm, pl = big, pl[:-1] + ["maxpool3x3", pl[-1]]
    return pm, pl


# --- the original API --------------------------------------------------------------------


def test_get_metrics_from_spec_returns_exactly_the_52_full_records(full_records_52):
    nb = api.NASBench(api.example_store_path())
    for rec in full_records_52:
        fixed, computed = nb.get_metrics_from_spec(_spec_of_full(rec))
        assert computed == {108: rec["computed"]["108"]}
        assert set(fixed) == {"module_adjacency", "module_operations", "trainable_parameters"}
        assert fixed["module_adjacency"].dtype == np.int8
        assert fixed["module_adjacency"].tolist() == rec["fixed"]["module_adjacency"]
        assert fixed["module_operations"] == rec["fixed"]["module_operations"]
        assert fixed["trainable_parameters"] == rec["fixed"]["trainable_parameters"]
        f2, c2 = nb.get_metrics_from_hash(rec["hash"])
        assert c2 == computed and f2["module_adjacency"].tolist() == fixed["module_adjacency"].tolist()
    assert nb.get_budget_counters() == (0.0, 0)


def test_every_sample_record_through_query(sample_1k):
    nb = api.NASBench(api.example_store_path(), seed=0)
    for rec in sample_1k:
        spec = _spec_of_sample(rec)
        for b in (4, 12, 36, 108):
            q = nb.query(spec, epochs=b)  # one present repeat: deterministic
            assert q["validation_accuracy"] == rec["final_validation_accuracy"][str(b)]
            assert q["trainable_parameters"] == rec["trainable_parameters"]
            assert math.isnan(q["test_accuracy"])
        assert q["training_time"] == rec["final_training_time_108"]
        assert q["module_adjacency"].tolist() == spec.matrix.tolist()
    # only the 108-epoch times are present; absent (NaN) times are not added
    total = sum(r["final_training_time_108"] for r in sample_1k)
    assert nb.get_budget_counters() == (pytest.approx(total, rel=1e-12), 1000 * (4 + 12 + 36 + 108))


def test_isomorphic_respellings_return_the_same_metrics(full_records_52, sample_1k):
    nb = api.NASBench(api.example_store_path())
    rng = np.random.default_rng(0)
    recs = [(_spec_of_full(r), r["hash"]) for r in full_records_52[:20]]
    recs += [(_spec_of_sample(r), r["hash"]) for r in sample_1k[:200:10]]
    for spec, h in recs:
        want = nb.get_metrics_from_hash(h)
        for pad in (False, True):
            m, o = _respell(spec.matrix, spec.ops, rng, pad=pad)
            other = api.ModelSpec(m, o)
            assert other.hash_spec() == h  # the oracle agrees these are the same cell
            got = nb.get_metrics_from_spec(other)
            assert _nan_free(got[1]) == _nan_free(want[1])
            assert got[0]["module_adjacency"].tolist() == want[0]["module_adjacency"].tolist()
            assert nb.query(other)["module_operations"] == want[0]["module_operations"]


def _draws(nb, spec, rec, n):
    vals = [p["final_validation_accuracy"] for p in rec["computed"]["108"]]
    assert len(set(vals)) == 3
    return [vals.index(nb.query(spec)["validation_accuracy"]) for _ in range(n)]


@pytest.mark.parametrize("seed", [0, 1, 12345])
def test_seeded_queries_draw_like_the_original_and_leave_global_random_alone(full_records_52, seed):
    rec = full_records_52[0]
    spec = _spec_of_full(rec)
    state = random.getstate()
    got = _draws(api.NASBench(api.example_store_path(), seed=seed), spec, rec, 60)
    assert random.getstate() == state  # never touched
    try:  # the original: random.seed(seed) at construction, random.randint(0, 2) per query
        random.seed(seed)
        expect = [random.randint(0, 2) for _ in range(60)]
    finally:
        random.setstate(state)
    assert got == expect
    assert _draws(api.NASBench(api.example_store_path(), seed=seed), spec, rec, 60) == got


def test_budget_counters_add_up(full_records_52):
    nb = api.NASBench(api.example_store_path(), seed=4)
    t, e = 0.0, 0
    for i, rec in enumerate(full_records_52):
        half = i % 3 == 0
        q = nb.query(_spec_of_full(rec), stop_halfway=half)
        key = "halfway_training_time" if half else "final_training_time"
        assert q["training_time"] in [p[key] for p in rec["computed"]["108"]]
        t += q["training_time"]
        e += 54 if half else 108
    assert nb.get_budget_counters() == (t, e)
    nb.reset_budget_counters()
    assert nb.get_budget_counters() == (0.0, 0)


def test_errors_match_the_original_and_touch_nothing(full_records_52):
    nb = api.NASBench(api.example_store_path(), seed=9)
    spec = _spec_of_full(full_records_52[0])
    with pytest.raises(OutOfDomainError, match=r"^invalid number of epochs, must be one of \{.*108.*\}$"):
        nb.query(spec, epochs=5)
    disconnected = api.ModelSpec([[0, 0, 0], [0, 0, 1], [0, 0, 0]], ["input", "conv3x3-bn-relu", "output"])
    with pytest.raises(OutOfDomainError, match=r"^invalid spec, provided graph is disconnected\.$"):
        nb.query(disconnected)
    full = np.triu(np.ones((7, 7), int), 1)
    full[0, 6] = 0  # 20 edges, all on input->output paths
    dense = api.ModelSpec(full, ["input"] + ["conv3x3-bn-relu"] * 5 + ["output"])
    with pytest.raises(OutOfDomainError, match=r"^too many edges, got 20 \(max edges = 9\)$"):
        nb.query(dense)
    two = api.ModelSpec([[0, 1], [0, 0]], ["input", "output"])  # valid, not in the example store
    with pytest.raises(KeyError) as e:
        nb.query(two)
    assert e.value.args == ("043721b9c7fe8c5fad811d47d83132ec",)
    with pytest.raises(KeyError):
        nb.get_metrics_from_hash("0" * 32)
    with pytest.raises(KeyError):
        nb.get_metrics_from_hash(17)
    assert nb.is_valid(two) and not nb.is_valid(disconnected) and not nb.is_valid(dense)
    assert nb.get_budget_counters() == (0.0, 0)
    fresh = api.NASBench(api.example_store_path(), seed=9)  # failed queries drew nothing
    rec = full_records_52[0]
    assert _draws(nb, spec, rec, 20) == _draws(fresh, spec, rec, 20)


def test_results_are_fresh_copies(full_records_52):
    nb = api.NASBench(api.example_store_path())
    rec = full_records_52[1]
    fixed, computed = nb.get_metrics_from_hash(rec["hash"])
    fixed["module_adjacency"][0, 0] = 5
    fixed["module_operations"].append("x")
    computed[108][0]["final_test_accuracy"] = -1.0
    computed[108].clear()
    f2, c2 = nb.get_metrics_from_hash(rec["hash"])
    assert f2["module_adjacency"].tolist() == rec["fixed"]["module_adjacency"]
    assert c2 == {108: rec["computed"]["108"]}
    q = nb.query(_spec_of_full(rec))
    q["module_adjacency"][:] = 0
    assert nb.fixed_statistics[rec["hash"]]["module_adjacency"].tolist() == rec["fixed"]["module_adjacency"]


def test_hash_iterator_and_statistics_views(store, full_records_52, sample_1k):
    nb = api.NASBench(api.example_store_path())
    hashes = nb.hash_iterator()
    assert len(hashes) == 1052 and set(hashes) == {r["hash"] for r in full_records_52 + sample_1k}
    assert len(nb.fixed_statistics) == 1052 and full_records_52[0]["hash"] in nb.computed_statistics
    assert nb.computed_statistics[full_records_52[0]["hash"]] == {108: full_records_52[0]["computed"]["108"]}
    assert nb.valid_epochs == {4, 12, 36, 108}


def test_cli_query_prints_the_query_dict(full_records_52, capsys):
    rec = full_records_52[2]
    args = ["query", "--matrix", json.dumps(rec["fixed"]["module_adjacency"]),
            "--ops", json.dumps(rec["fixed"]["module_operations"]), "--seed", "3", "--stop-halfway"]
    assert cli.main(args) == 0
    out = json.loads(capsys.readouterr().out)
    want = api.NASBench(api.example_store_path(), seed=3).query(_spec_of_full(rec), stop_halfway=True)
    want["module_adjacency"] = want["module_adjacency"].tolist()
    assert out == want
    assert cli.main(["query", "--matrix", "[[0,1],[0,0]]", "--ops", '["input","output"]']) == 2
    assert "043721b9c7fe8c5fad811d47d83132ec is not in the store" in capsys.readouterr().err
    assert cli.main(["query", "--matrix", "[[0,1],[0,0", "--ops", '["input","output"]']) == 2
    assert "--matrix is not valid JSON" in capsys.readouterr().err


# --- batched queries -----------------------------------------------------------------------


def _numpy_means(store, b):
    with warnings.catch_warnings():  # cells without test accuracy: "mean of empty slice" -> NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        v = np.asarray(store.final_validation_accuracy[:, b], np.float64)
        t = np.asarray(store.final_test_accuracy[:, b], np.float64)
        return np.nanmean(v, axis=1), np.nanmean(t, axis=1)


def test_query_index_all_rows(store, table):
    n = store.num_cells
    rows = jnp.arange(n + 3) - 1  # -1 and n, n+1 are out of range
    res = QI(table, rows, jax.random.key(0), epochs=108)
    found = np.asarray(res.found)
    assert not found[0] and not found[-2:].any() and found[1:-2].all()
    assert np.asarray(res.index).tolist() == [-1] + list(range(n)) + [-1, -1]
    mv, mt = _numpy_means(store, 3)
    np.testing.assert_allclose(np.asarray(res.mean_validation_accuracy)[1:-2], mv, rtol=1e-6)
    mean_t = np.asarray(res.mean_test_accuracy)[1:-2]
    np.testing.assert_allclose(mean_t[~np.isnan(mt)], mt[~np.isnan(mt)], rtol=1e-6)
    val = np.asarray(res.validation_accuracy)[1:-2]
    reps = np.asarray(store.final_validation_accuracy[:, 3])
    assert all(val[i] in reps[i] for i in range(n))  # one of the cell's own repeats
    assert np.asarray(res.trainable_parameters)[1:-2].tolist() == store.trainable_parameters.tolist()
    for f in ("validation_accuracy", "test_accuracy", "training_time", "mean_test_accuracy"):
        assert np.asarray(getattr(res, f))[[0, -2, -1]].tolist() == [0.0, 0.0, 0.0]
    assert np.asarray(res.trainable_parameters)[0] == 0
    # at 4 epochs only the 1,000 sample cells have data
    r4 = QI(table, jnp.arange(n + 3) - 1, jax.random.key(1), epochs=4)
    assert int(np.asarray(r4.found).sum()) == 1000  # only the 1,000 sample cells have 4-epoch data
    with pytest.raises(OutOfDomainError, match="invalid number of epochs"):
        api.query_index(table, rows, jax.random.key(0), epochs=5)


def test_query_index_samples_repeats_uniformly(store, table):
    row = int(np.nonzero(~np.isnan(store.final_test_accuracy[:, 3, 2]))[0][0])  # a 3-repeat cell
    res = QI(table, jnp.full((3000,), row), jax.random.key(7), stop_halfway=True)
    reps = np.asarray(store.halfway_validation_accuracy[row, 3])
    got = np.asarray(res.validation_accuracy)
    counts = [(got == reps[r]).sum() for r in range(3)]
    assert sum(counts) == 3000 and all(880 < c < 1120 for c in counts), counts  # ~6 sigma
    same_key = QI(table, jnp.full((3000,), row), jax.random.key(7), stop_halfway=True)
    assert np.array_equal(np.asarray(same_key.validation_accuracy), got)


def test_queries_inside_fori_loop_and_vmap(table, store):
    rows = jnp.arange(64) * 16

    def body(i, acc):
        r = api.query_index(table, rows + i, jax.random.fold_in(jax.random.key(3), i))
        return acc + jnp.sum(jnp.where(r.found, r.mean_validation_accuracy, 0.0))

    total = jax.jit(lambda: jax.lax.fori_loop(0, 5, body, jnp.float32(0.0)))()
    mv, _ = _numpy_means(store, 3)
    expect = sum(mv[np.asarray(rows) + i].sum() for i in range(5))
    assert float(total) == pytest.approx(expect, rel=1e-5)
    keys = jax.random.split(jax.random.key(0), 4)
    batched = jax.jit(jax.vmap(lambda k: api.query_index(table, rows, k).validation_accuracy))(keys)
    assert batched.shape == (4, 64)


def test_best_mean_accuracy(store, table):
    bv, bt = jax.jit(lambda t: api.best_mean_accuracy(t, 108))(table)
    mv, mt = _numpy_means(store, 3)
    assert float(bv) == pytest.approx(np.nanmax(mv), rel=1e-6)
    assert float(bt) == pytest.approx(np.nanmax(mt), rel=1e-6)


def test_query_cells_raw_cells(store, table, full_records_52, sample_1k):
    rng = np.random.default_rng(1)
    specs, expect = [], []
    for rec in full_records_52[:10] + sample_1k[:30]:
        spec = _spec_of_full(rec) if "fixed" in rec else _spec_of_sample(rec)
        row = api.NASBench(store).row_of_spec(spec)
        m, o = _respell(spec.matrix, spec.ops, rng, pad=True)
        specs += [spec, api.ModelSpec(m, o)]
        expect += [row, row]
    adj = np.zeros((len(specs) + 3, 7, 7), np.uint8)
    ops = np.full((len(specs) + 3, 7), -3, np.int8)
    nv = np.zeros(len(specs) + 3, np.int32)
    for i, s in enumerate(specs):
        v = s.original_matrix.shape[0]
        adj[i, :v, :v] = s.original_matrix
        ops[i, :v] = space.ops_to_labels(s.original_ops)
        nv[i] = v
    k = len(specs)
    adj[k, 0, 1] = 1  # disconnected 3-vertex cell
    ops[k, :3] = [-1, 0, -2]
    nv[k] = 3
    adj[k + 1, 0, 1] = 1  # valid 2-vertex cell, not in the example store
    ops[k + 1, :2] = [-1, -2]
    nv[k + 1] = 2
    nv[k + 2] = 7  # an all-zero 7-vertex cell: no path
    ops[k + 2] = [-1, 0, 0, 0, 0, 0, -2]
    cells = space.Cells(adj, ops, nv)
    f = jax.jit(lambda t, c, key: api.query_cells(t, c, key))
    res = f(table, cells, jax.random.key(0))
    assert np.asarray(res.index).tolist() == expect + [-1, -1, -1]
    assert np.asarray(res.found).tolist() == [True] * k + [False] * 3
    # vmap over a batch axis gives the same
    res2 = jax.jit(jax.vmap(lambda c: api.query_cells(table, c, jax.random.key(0)).index))(
        space.Cells(adj[:, None], ops[:, None], nv[:, None]))
    assert np.asarray(res2)[:, 0].tolist() == expect + [-1, -1, -1]
    # the canonical-code path (graph.canonicalize, no labelled table) finds the same rows
    canon = api.QueryTable.from_store(store, labelled=False)
    assert canon.lookup_base.shape == (0,)
    assert np.asarray(jax.jit(api.lookup_cells)(canon, cells)).tolist() == expect + [-1, -1, -1]


def test_labelled_code_table_against_the_oracle(store, table):
    codes, rows = st.labelled_code_table(store.adjacency, store.operations, store.num_vertices)
    assert np.all(np.diff(codes.astype(np.int64)) > 0)
    # the table's direct-address index finds every labelling's row (and nothing else)
    v = (codes >> 29).astype(np.int64)
    base = np.asarray(table.lookup_base)[api._PATTERN_OFFSET[v] + ((codes >> 8) & (2**21 - 1)).astype(np.int64)]
    assert np.all(base >= 0)
    assert np.array_equal(np.asarray(table.lookup_rows)[base + (codes & 0xFF)], rows)
    assert (np.asarray(table.lookup_rows) >= 0).sum() == codes.size
    assert np.array_equal(np.unique(rows), np.arange(store.num_cells))  # every cell reachable
    pick = np.random.default_rng(0).choice(codes.size, 300, replace=False)
    for c, r in zip(codes[pick], rows[pick]):
        m, labels = reference.decode_code(int(c))
        assert reference.encode_code(m, labels) == int(c)  # a genuine labelling ...
        assert reference.canonical_code(m, labels) == int(store.canonical_code[r])  # ... of cell r
    # a cell has exactly one labelled code per distinct upper-triangular relabeling
    r0 = int(np.nonzero(store.num_vertices == 7)[0][0])
    v, a, o = 7, store.adjacency[r0], store.operations[r0].tolist()
    expect = set()
    for p in itertools.permutations(range(1, 6)):
        pm, pl = reference.permute_graph(a, o, [0, *p, 6])
        if not np.tril(pm).any():
            expect.add(reference.encode_code(pm.astype(np.uint8), pl))
    assert set(codes[rows == r0].tolist()) == expect


def test_query_cells_rejects_bad_shapes(table):
    bad = space.Cells(np.zeros((2, 6, 6), np.uint8), np.zeros((2, 7), np.int8), np.zeros(2, np.int32))
    with pytest.raises(CellArrayError, match="adjacency"):
        api.query_cells(table, bad, jax.random.key(0))


def test_pruned_labelled_code_against_model_spec():
    """The fused prune + labelled code kernel vs ModelSpec pruning, is_valid and encode_code."""
    rng = np.random.default_rng(5)
    n = 600
    nv = rng.integers(2, 8, n).astype(np.int32)
    adj = np.zeros((n, 7, 7), np.uint8)
    ops = np.full((n, 7), -3, np.int8)
    for i, v in enumerate(nv):
        adj[i, :v, :v] = np.triu(rng.random((v, v)) < rng.uniform(0.2, 0.7), 1)
        ops[i, :v] = rng.integers(0, 3, v)
        ops[i, 0], ops[i, v - 1] = -1, -2
    ops[::37, 1] = 5  # an unsupported op (invalid only if vertex 1 survives pruning)
    ops[::41, 0] = 0  # first op is not the input
    # then malformed encodings, which are never valid: below the diagonal, not 0/1, outside the
    # V x V block, V = 8; and one well-formed 2-vertex cell
    extra = np.zeros((5, 7, 7), np.uint8)
    extra[:, 0, 1] = 1
    extra[0, 1, 0] = 1
    extra[1, 0, 1] = 2
    extra[2, 3, 4] = 1
    eops = np.tile(np.array([[-1, -2, -3, -3, -3, -3, -3]], np.int8), (5, 1))
    adj, ops = np.concatenate([adj, extra]), np.concatenate([ops, eops])
    nv = np.concatenate([nv, [2, 2, 2, 8, 2]]).astype(np.int32)
    codes, valid = jax.jit(api.pruned_labelled_code)(adj, ops, nv)
    codes, valid = np.asarray(codes), np.asarray(valid)
    assert valid[n:].tolist() == [False, False, False, False, True]
    names = {-1: "input", -2: "output", 0: "conv3x3-bn-relu", 1: "conv1x1-bn-relu", 2: "maxpool3x3"}
    for i, v in enumerate(nv[:n]):
        spec = api.ModelSpec(adj[i, :v, :v], [names.get(int(x), f"op{int(x)}") for x in ops[i, :v]])
        assert bool(valid[i]) == is_valid(spec), i
        if valid[i]:
            labels = space.ops_to_labels(spec.ops)
            assert int(codes[i]) == reference.encode_code(spec.matrix, labels), i
        else:
            assert codes[i] == 0
    assert 0.2 < valid[:n].mean() < 0.9  # both verdicts are exercised
