"""Regret summaries, the runs file / plot CLI, and the synthetic landscape."""

import types

import numpy as np
import pytest

from nasbench_jax import synthetic
from nasbench_jax.errors import ConfigError
from search import cli, regret


def _traj(time_s, active, inc_test, inc_valid):
    return types.SimpleNamespace(time_s=np.array(time_s, float), active=np.array(active, bool),
                                 incumbent_test_acc=np.array(inc_test, float),
                                 incumbent_valid_acc=np.array(inc_valid, float))


def test_regret_is_the_step_function_of_the_incumbent():
    # seed 0: steps at 100, 250 (invalid: time unchanged, same incumbent), 400; seed 1 stops after 1 step
    tr = _traj([[100, 100, 400], [50, 50, 50]], [[1, 1, 1], [1, 0, 0]],
               [[0.90, 0.90, 0.93], [0.80, 0.80, 0.80]], [[0.91, 0.91, 0.94], [0.81, 0.81, 0.81]])
    grid = np.array([10.0, 99.0, 100.0, 399.0, 400.0, 1e4])
    s = regret.summarize(tr, best_test_acc=0.94, best_valid_acc=0.95, grid=grid)
    np.testing.assert_allclose(s.test_regret[0], [0.94, 0.94, 0.04, 0.04, 0.01, 0.01], atol=1e-12)
    np.testing.assert_allclose(s.test_regret[1], [0.94, 0.14, 0.14, 0.14, 0.14, 0.14], atol=1e-12)
    np.testing.assert_allclose(s.valid_regret[0, -1], 0.01, atol=1e-12)
    np.testing.assert_allclose(s.test_mean, s.test_regret.mean(0))
    np.testing.assert_allclose(s.test_q25, np.percentile(s.test_regret, 25, axis=0))


def test_log_grid_and_bad_input():
    g = regret.log_time_grid(1e7, 5)
    np.testing.assert_allclose(np.diff(np.log10(g)), np.diff(np.log10(g))[0])
    assert g[0] == 100 and g[-1] == pytest.approx(1e7)
    with pytest.raises(ConfigError):
        regret.log_time_grid(-1.0)


def test_optimum_from_store_uses_means_at_108_epochs():
    st = types.SimpleNamespace(budgets=np.array([4, 108]),
                               final_test_accuracy=np.array([[[0.5, 0.5, 0.5], [0.9, 0.8, np.nan]],
                                                             [[0.9, 0.9, 0.9], [0.86, 0.86, 0.86]]]),
                               final_validation_accuracy=np.ones((2, 2, 3)) * 0.7)
    best_test, best_valid = regret.optimum_from_store(st)
    assert best_test == pytest.approx(0.86) and best_valid == pytest.approx(0.7)
    with pytest.raises(ConfigError, match="not 12 epochs"):
        regret.optimum_from_store(st, epochs=12)


def test_plot_and_runs_file_errors(tmp_path):
    grid = regret.log_time_grid(1e5, 20)
    rng = np.random.default_rng(0)
    for name in ("random_search", "regularized_evolution"):
        cli.save_runs(str(tmp_path / f"{name}.npz"), time_grid=grid,
                      test_regret=np.abs(rng.normal(0.01, 0.005, (8, 20))), valid_regret=np.zeros((8, 20)),
                      num_steps=np.full(8, 20), final_time_s=np.full(8, 1e5), metadata={"algorithm": name})
    out = tmp_path / "regret.png"
    args = types.SimpleNamespace(runs=[str(tmp_path / "random_search.npz"),
                                       str(tmp_path / "regularized_evolution.npz")], out=str(out), title="t")
    assert cli.run_plot(args) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []
    with pytest.raises(cli.RunsFileError, match="not found"):
        cli.load_runs(str(tmp_path / "missing.npz"))
    np.savez(tmp_path / "bad.npz", x=np.zeros(3))
    with pytest.raises(cli.RunsFileError, match="lacks 'time_grid'"):
        cli.load_runs(str(tmp_path / "bad.npz"))


def test_search_cli_rejects_bad_input(tmp_path):
    from nasbench_jax import cli as main_cli

    assert main_cli.main(["search", "--store", "x.npz", "--algorithm", "nope", "--out", "o.npz"]) == 2
    assert main_cli.main(["search", "--store", "x.npz", "--algorithm", "random_search", "--max-time", "0",
                          "--out", "o.npz"]) == 2
    assert main_cli.main(["search", "--store", str(tmp_path / "x.npz"), "--algorithm", "random_search",
                          "--out", "o.npz"]) == 2  # store not found
    assert main_cli.main(["search", "--store", "x.npz", "--algorithm", "regularized_evolution",
                          "--config.population_size=abc", "--out", "o.npz"]) == 2


# --------------------------------------------------------------------------- synthetic


@pytest.fixture(scope="module")
def real_cells(sample_1k):
    adj = np.array([r["adjacency"] for r in sample_1k], np.uint8)
    ops = np.array([r["operations"] for r in sample_1k], np.int8)
    return adj, ops, (ops != -3).sum(1), np.array([r["trainable_parameters"] for r in sample_1k])


def test_parameter_closed_form_matches_the_real_records(real_cells):
    adj, ops, nv, params = real_cells
    np.testing.assert_array_equal(synthetic.network_parameters(adj, ops, nv), params)


def test_features_by_hand():
    # in -> conv3x3 -> maxpool -> out, plus in -> out
    a = np.zeros((1, 7, 7), np.uint8)
    a[0, 0, 1] = a[0, 1, 2] = a[0, 2, 3] = a[0, 0, 3] = 1
    o = np.array([[-1, 0, 2, -2, -3, -3, -3]], np.int8)
    f = synthetic.cell_features(a, o, [4])
    assert (f.n_conv3x3[0], f.n_conv1x1[0], f.n_maxpool[0]) == (1, 0, 1)
    assert (f.depth[0], f.width[0], f.skip[0], f.num_edges[0], f.chain[0]) == (3, 2, 1, 4, 0)


def test_synthetic_metrics_plausible_deterministic_and_local(real_cells):
    adj, ops, nv, _ = real_cells
    codes = np.arange(len(nv), dtype=np.uint32) * 7919 + 11
    m = synthetic.synthetic_metrics(adj, ops, nv, codes, seed=3)
    m2 = synthetic.synthetic_metrics(adj, ops, nv, codes, seed=3)
    m3 = synthetic.synthetic_metrics(adj, ops, nv, codes, seed=4)
    for k in m:
        assert m[k].shape == (len(nv), 4, 3) and m[k].dtype == np.float32
        np.testing.assert_array_equal(m[k], m2[k])
    assert not np.array_equal(m["final_validation_accuracy"], m3["final_validation_accuracy"])
    t108 = m["final_training_time"][:, 3]
    assert 400 < t108.min() and t108.max() < 6000
    np.testing.assert_allclose(m["final_training_time"][:, 0].mean() / t108.mean(), 4 / 108, rtol=0.2)
    half = m["halfway_training_time"] / m["final_training_time"]
    assert 0.4 < half.min() and half.max() < 0.6
    v = m["final_validation_accuracy"]
    assert (v[:, 3].mean(1) > v[:, 0].mean(1)).mean() > 0.95  # longer training helps
    assert v[:, 3].std(1).mean() < v[:, 0].std(1).mean()  # repeat noise shrinks with budget
    assert 0.85 < np.median(v[:, 3]) < 0.95
    r = np.corrcoef(v[:, 3].mean(1), m["final_test_accuracy"][:, 3].mean(1))[0, 1]
    assert r > 0.99
    # locality: the mean accuracy is a smooth function of features; swapping one conv3x3 for a
    # maxpool lowers it by a feature step, not at random
    f = synthetic.cell_features(adj, ops, nv)
    q = v[:, 3].mean(1)
    assert np.corrcoef(f.n_conv3x3, q)[0, 1] > 0.3
    with pytest.raises(ConfigError):
        synthetic.synthetic_metrics(adj, ops, nv, codes, budgets=(0, 108))
    with pytest.raises(ConfigError):
        synthetic.cell_features(adj[:, :5, :5], ops, nv)
