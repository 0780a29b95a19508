"""The README's main job, `nasbench-jax demo`, end to end at a small search size."""

import numpy as np

from nasbench_jax import cli


def test_demo_end_to_end(tmp_path, capsys):
    out = tmp_path / "demo"
    assert cli.main(["demo", "--out", str(out), "--seeds", "4", "--max-time", "2e4"]) == 0
    text = capsys.readouterr().out
    assert "up to 7 vertices: 423,624 unique cells  ok" in text
    assert "MISMATCH" not in text
    assert "kernel hash == published hash for 1,052 / 1,052 records" in text
    assert "1,052 found, rows match: True" in text
    assert "2,694,282 trainable parameters" in text
    for name in ("cells.npz", "synthetic_store.npz", "random_search.npz", "regularized_evolution.npz",
                 "regret.png"):
        assert (out / name).stat().st_size > 0, name
    with np.load(out / "regularized_evolution.npz", allow_pickle=False) as z:
        assert z["test_regret"].shape[0] == 4 and np.all(z["test_regret"] >= 0)
