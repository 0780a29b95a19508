"""train_and_evaluate: learning end to end, pmap over 8 CPU devices vs 1, records, bad input.

About 8-vs-1-device agreement: each device normalises with the batch-norm statistics of its own
sub-batch (like the original's TPU shards), so a network *with* BN genuinely computes a different
function on 8 devices x 4 images than on 1 device x 32 images — no tolerance makes those equal.
The parity test therefore trains a BN-free network: there the only difference is the order of
floating-point sums (pmean of 8 sub-batch gradient means vs one 32-image mean), and parameters
agree to 1e-4 relative after 16 RMSProp steps. The real (BN) network is tested to train on 8
devices in the end-to-end test.
"""

import json
import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import cpu_tiny
from nasbench_jax import ModelSpec
from nasbench_jax.errors import ConfigError, NASBenchError, OutOfDomainError
from train import input_pipeline as ip
from train import train as T

SPEC = ModelSpec([[0, 1, 1, 0], [0, 0, 0, 1], [0, 0, 0, 1], [0, 0, 0, 0]],
                 ["input", "conv3x3-bn-relu", "maxpool3x3", "output"])


def small_config(**kw):
    c = cpu_tiny.get_config()
    c.image_size, c.train_size, c.eval_size, c.batch_size = 8, 512, 128, 32
    c.train_epochs, c.checkpoint_every_steps, c.log_every_steps = 1, 8, 8  # 16 steps, halfway at 8
    c.update(kw)
    return c


@pytest.fixture(scope="module")
def e2e(tmp_path_factory):
    """The tiny config (16x16 synthetic images, 128 steps) on all 8 forced CPU devices."""
    workdir = tmp_path_factory.mktemp("e2e")
    config = cpu_tiny.get_config()
    assert len(jax.local_devices()) == 8
    record = T.train_and_evaluate(SPEC, config, workdir)
    return workdir, config, record


def test_tiny_config_learns_synthetic_data_on_8_devices(e2e):
    workdir, config, record = e2e
    assert record.num_devices == 8 and record.dataset == "synthetic" and record.synthetic
    assert record.final.training_time < 60  # measured training time (compilation excluded)
    steps = [e.training_steps for e in record.evaluations]
    assert steps == [0, 64, 128]  # int(0.5*4*2048/64), int(4*2048/64)
    assert [e.epochs for e in record.evaluations] == [0.0, 2.0, 4.0]
    start, final = record.evaluations[0], record.final
    assert final.validation_accuracy > 0.3 and final.test_accuracy > 0.3, record  # chance = 0.1
    assert final.validation_accuracy > start.validation_accuracy + 0.15
    for e in record.evaluations:  # accuracies are k / 512 in float32, as in the original
        for acc in (e.train_accuracy, e.validation_accuracy, e.test_accuracy):
            assert acc == float(np.float32(round(acc * 512)) / np.float32(512))
    times = [e.training_time for e in record.evaluations]
    assert 0 < times[0] < times[1] < times[2] < record.total_time
    from nasbench_jax.model import trainable_parameters
    assert record.trainable_parameters == trainable_parameters(
        SPEC, stem_filter_size=8, num_stacks=1, num_modules_per_stack=1)


def test_results_checkpoint_and_metrics_are_written(e2e):
    workdir, config, record = e2e
    saved = json.loads((workdir / "results.json").read_text())
    assert saved == json.loads(json.dumps(record.to_dict()))
    assert saved["synthetic"] is True
    assert list(workdir.glob("events.out.tfevents.*")), "no TensorBoard event file"
    state, meta = T.load_checkpoint(workdir)
    assert int(state["step"]) == 128 and len(meta["evaluations"]) == 3
    # per-device BN statistics: every device kept its own moving averages
    means = [leaf for path, leaf in jax.tree_util.tree_flatten_with_path(state["batch_stats"])[0]
             if "mean" in jax.tree_util.keystr(path)]
    assert means and all(m.shape[0] == 8 for m in means)
    assert not np.allclose(means[0][0], means[0][1])
    assert not list(workdir.glob("*.tmp*")) and not list(workdir.glob(".tmp-*"))


def test_rerun_in_finished_workdir_returns_the_same_record_and_other_run_is_refused(e2e):
    workdir, config, record = e2e
    again = T.train_and_evaluate(SPEC, config, workdir, write_metrics=False)
    assert again == record  # nothing retrained; the same record, total_time included
    other = config.copy_and_resolve_references()
    other.seed = 1
    with pytest.raises(T.WorkdirError, match="different run"):
        T.train_and_evaluate(SPEC, other, workdir, write_metrics=False)


class NoBatchNorm(nn.Module):
    """A BN-free network: its gradient is an exact mean over the batch, however it is split."""

    @nn.compact
    def __call__(self, x, *, train: bool):
        x = nn.relu(nn.Conv(8, (3, 3), use_bias=False)(x))
        return nn.Dense(10)(jnp.mean(x, axis=(1, 2)))


def test_8_devices_match_1_device_with_the_same_global_batch(tmp_path):
    config = small_config()
    ds = ip.make_synthetic(image_size=8, train_size=512, eval_size=128, seed=0)
    devices = jax.local_devices()
    runs = {}
    for n in (1, 8):
        workdir = tmp_path / f"d{n}"
        runs[n] = T.train_and_evaluate(SPEC, config, workdir, devices=devices[:n], dataset=ds,
                                       network=NoBatchNorm(), write_metrics=False)
        runs[n] = (runs[n], T.load_checkpoint(workdir)[0])
    (r1, s1), (r8, s8) = runs[1], runs[8]
    assert r1.num_devices == 1 and r8.num_devices == 8
    assert int(s1["step"]) == int(s8["step"]) == 16
    moved = jax.tree.map(lambda a, b: float(np.abs(a - b).max()), s1["params"],
                         T.load_checkpoint(tmp_path / "d1", step=1)[0]["params"])
    assert max(jax.tree_util.tree_leaves(moved)) > 1e-3  # training really changed the weights
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5), s1["params"], s8["params"])
    for e1, e8 in zip(r1.evaluations, r8.evaluations):
        for k in ("train_accuracy", "validation_accuracy", "test_accuracy"):
            assert abs(getattr(e1, k) - getattr(e8, k)) <= 2 / 128  # at most 2 borderline argmax flips


def test_bad_input_raises_clear_errors_and_writes_nothing(tmp_path):
    config = small_config()
    workdir = tmp_path / "run"
    invalid = ModelSpec([[0, 1, 0], [0, 0, 0], [0, 0, 0]], ["input", "conv3x3-bn-relu", "output"])
    with pytest.raises(OutOfDomainError):
        T.train_and_evaluate(invalid, config, workdir)
    with pytest.raises(ConfigError, match="not divisible by the 8 devices"):
        T.train_and_evaluate(SPEC, small_config(batch_size=36), workdir)
    with pytest.raises(ConfigError, match="num_devices=9"):
        T.train_and_evaluate(SPEC, small_config(num_devices=9), workdir)
    with pytest.raises(ConfigError, match="lr_decay_method"):
        T.train_and_evaluate(SPEC, small_config(lr_decay_method="LINEAR"), workdir)
    with pytest.raises(ip.DatasetError, match="not found"):
        T.train_and_evaluate(SPEC, small_config(dataset=str(tmp_path / "nope" / "cifar-10-python.tar.gz"),
                                                image_size=32), workdir)
    corrupt = tmp_path / "cifar-10-python.tar.gz"
    corrupt.write_bytes(b"\x1f\x8b garbage")
    with pytest.raises(ip.DatasetError):
        T.train_and_evaluate(SPEC, small_config(dataset=str(corrupt), image_size=32), workdir)
    assert not workdir.exists(), "a failed run left files behind"
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(T.WorkdirError, match="not a writable directory"):
        T.train_and_evaluate(SPEC, config, blocker / "sub")
    with pytest.raises(T.WorkdirError, match="not a directory"):
        T.train_and_evaluate(SPEC, config, blocker)
    with pytest.raises(ConfigError, match="ModelSpec"):
        T.train_and_evaluate({"matrix": [[0, 1], [0, 0]]}, config, workdir)
    assert issubclass(T.WorkdirError, NASBenchError)
    assert sorted(os.listdir(tmp_path)) == ["cifar-10-python.tar.gz", "file"]


def test_time_limit_stops_training_but_keeps_planned_evaluations(tmp_path):
    # COSINE_BY_TIME with a tiny budget: the first timed segment already exceeds it.
    config = small_config(lr_decay_method="COSINE_BY_TIME", train_seconds=1e-6, num_devices=2)
    ds = ip.make_synthetic(image_size=8, train_size=512, eval_size=128, seed=0)
    record = T.train_and_evaluate(SPEC, config, tmp_path / "w", dataset=ds, network=NoBatchNorm(),
                                  write_metrics=False)
    assert record.time_limit_reached
    assert [e.training_steps for e in record.evaluations] == [0, 8, 16]  # planned, as the original records
    state, _ = T.load_checkpoint(tmp_path / "w")
    assert int(state["step"]) == 1  # only the initialisation step ran


def test_one_compiled_program_serves_every_seed_and_budget(tmp_path):
    """The seed and the budget are step arguments: with the persistent compilation cache, a
    second run of the same cell with another seed and another epoch budget compiles nothing new
    (its programs are all cache hits), while another cell does add programs."""
    from jax._src import compilation_cache as cc

    cache = tmp_path / "xla"
    old_dir = jax.config.jax_compilation_cache_dir
    old_min = jax.config.jax_persistent_cache_min_compile_time_secs
    hits = []

    def on_event(event, **kwargs):
        if event == "/jax/compilation_cache/cache_hits":
            hits.append(event)

    jax.config.update("jax_compilation_cache_dir", None)
    cc.reset_cache()
    jax.monitoring.register_event_listener(on_event)
    try:
        def run(name, spec, **kw):
            cfg = small_config(compilation_cache_dir=str(cache), **kw)
            hits.clear()
            T.train_and_evaluate(spec, cfg, tmp_path / name, devices=jax.local_devices()[:1],
                                 write_metrics=False)
            return {p.name for p in cache.iterdir()}, len(hits)

        first, _ = run("a", SPEC)
        assert len(first) >= 3, sorted(first)  # init, train step, eval step (at least)
        again, n_hits = run("b", SPEC, seed=7, train_epochs=2)  # 32 steps instead of 16, seed 7
        assert again == first and n_hits >= 3  # every program, train step included, was a hit
        other = ModelSpec([[0, 1, 0], [0, 0, 1], [0, 0, 0]], ["input", "conv1x1-bn-relu", "output"])
        assert len(run("c", other)[0] - first) >= 3  # another cell: new init, train and eval steps
    finally:
        jax.monitoring.unregister_event_listener(on_event)
        jax.config.update("jax_compilation_cache_dir", old_dir)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", old_min)
        cc.reset_cache()
