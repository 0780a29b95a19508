"""``nasbench-jax build``: two workers split the units, their shards merge into one store."""

import numpy as np
import pytest

from nasbench_jax import cli, store as st
from nasbench_jax.errors import ConfigError

TINY = ["--config", "cpu_tiny", "--max-vertices", "3", "--limit", "2", "--budgets", "4", "--repeats", "1",
        "--config.train_size=64", "--config.eval_size=32", "--config.batch_size=32",
        "--config.image_size=8", "--config.num_devices=1", "--no-progress"]


def test_two_workers_merge_to_every_unit(tmp_path):
    shards = []
    for w in range(2):
        out = tmp_path / f"shard-{w}.npz"
        assert cli.main(["build", *TINY, "--worker-id", str(w), "--num-workers", "2",
                         "--workdir", str(tmp_path / "runs"), "--out", str(out)]) == 0
        shards.append(st.open_store(out))
    assert [len(s.canonical_code) for s in shards] == [1, 1]
    merged = st.merge_stores(shards)
    assert len(merged.canonical_code) == 2
    acc = np.asarray(merged.final_validation_accuracy)[:, 0, 0]
    assert np.all((acc >= 0) & (acc <= 1))
    # a rerun finds the finished units and trains nothing new: same shard content
    again = tmp_path / "again.npz"
    assert cli.main(["build", *TINY, "--worker-id", "0", "--num-workers", "2",
                     "--workdir", str(tmp_path / "runs"), "--out", str(again)]) == 0
    np.testing.assert_array_equal(np.asarray(st.open_store(again).final_validation_accuracy),
                                  np.asarray(shards[0].final_validation_accuracy))


@pytest.mark.parametrize("extra, message", [
    (["--worker-id", "2", "--num-workers", "2"], "worker-id"),
    (["--budgets", "4,x"], "budgets"),
    (["--limit", "0"], "limit"),
])
def test_bad_arguments(tmp_path, capsys, extra, message):
    args = ["build", *TINY, "--workdir", str(tmp_path / "r"), "--out", str(tmp_path / "s.npz"), *extra]
    assert cli.main(args) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "s.npz").exists()
