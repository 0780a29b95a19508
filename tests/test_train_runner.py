"""The many-cells runner: the original's unit order (§6.8), worker split, resumable runs, store shards."""

import jax
import numpy as np
import pytest

from configs import cpu_tiny
from nasbench_jax import ModelSpec
from nasbench_jax.errors import ConfigError
from train import input_pipeline as ip
from train import runner

CELLS = [
    ModelSpec([[0, 1, 0], [0, 0, 1], [0, 0, 0]], ["input", "conv3x3-bn-relu", "output"]),
    ModelSpec([[0, 1, 0], [0, 0, 1], [0, 0, 0]], ["input", "conv1x1-bn-relu", "output"]),
    ModelSpec([[0, 1, 0], [0, 0, 1], [0, 0, 0]], ["input", "maxpool3x3", "output"]),
]


def test_unit_order_is_the_originals():
    units = runner.work_units(CELLS, budgets=(12, 4), num_repeats=2)
    k = sorted(c.hash_spec() for c in CELLS)
    expected = [(4, k[0], 1), (4, k[1], 1), (4, k[2], 1), (4, k[0], 2), (4, k[1], 2), (4, k[2], 2),
                (12, k[0], 1), (12, k[1], 1), (12, k[2], 1), (12, k[0], 2), (12, k[1], 2), (12, k[2], 2)]
    assert [(u.budget, u.module_hash, u.repeat) for u in units] == expected
    assert [u.index for u in units] == list(range(12))
    shares = [runner.worker_units(units, w, 5) for w in range(5)]
    assert sorted(u.index for s in shares for u in s) == list(range(12))
    assert [u.index for u in shares[2]] == [2, 7]
    seeds = {runner.unit_seed(0, u) for u in units}
    assert len(seeds) == 12 and runner.unit_seed(0, units[3]) == runner.unit_seed(0, units[3])
    with pytest.raises(ConfigError, match="duplicates"):
        runner.work_units([CELLS[0], CELLS[0]])
    with pytest.raises(ConfigError, match="worker_id"):
        runner.worker_units(units, 5, 5)


def test_workers_train_resume_and_write_mergeable_shards(tmp_path, monkeypatch):
    from nasbench_jax import store

    config = cpu_tiny.get_config()
    config.image_size, config.train_size, config.eval_size, config.batch_size = 8, 128, 32, 32
    config.checkpoint_every_steps, config.log_every_steps, config.num_devices = 4, 4, 1
    ds = ip.make_synthetic(image_size=8, train_size=128, eval_size=32, seed=0)
    units = runner.work_units(CELLS[:2], budgets=(2,), num_repeats=1)  # 2 epochs = 8 steps each
    shards, results = [], {}
    for w in range(2):
        res = runner.run_worker(units, config, tmp_path / "runs", worker_id=w, num_workers=2, dataset=ds,
                                show_progress=False)
        assert [u.index for u, _ in res] == [w]
        results.update({u.module_hash: rec for u, rec in res})
        shards.append(runner.write_shard(res, config, tmp_path / f"shard-{w}.npz", budgets=(2,), num_repeats=1))

    # a restarted worker finds its finished unit and does not train again
    def boom(*a, **k):
        raise AssertionError("retrained a finished unit")

    monkeypatch.setattr(runner, "train_and_evaluate", boom)
    again = runner.run_worker(units, config, tmp_path / "runs", worker_id=0, num_workers=2, dataset=ds,
                              show_progress=False)
    assert again[0][1] == results[again[0][0].module_hash]

    merged = store.merge_stores([store.open_store(tmp_path / f"shard-{w}.npz") for w in range(2)])
    assert merged.num_cells == 2 and merged.metadata["synthetic"] is True
    for i, h in enumerate(merged.module_hash):
        rec = results[h.decode()]
        assert merged.final_validation_accuracy[i, 0, 0] == np.float32(rec["evaluations"][-1]["validation_accuracy"])
        assert merged.halfway_test_accuracy[i, 0, 0] == np.float32(rec["evaluations"][1]["test_accuracy"])
        assert merged.trainable_parameters[i] == rec["trainable_parameters"]
