"""Pre-emption: a training process killed with SIGKILL and restarted finishes exactly as an
uninterrupted run (same recorded accuracies, same final weights); training_time is wall-clock and
therefore not compared."""

import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import numpy as np
import jax

from train import train as T

REPO = pathlib.Path(__file__).resolve().parents[1]
MATRIX = "[[0,1,1,0],[0,0,0,1],[0,0,0,1],[0,0,0,0]]"
OPS = '["input","conv3x3-bn-relu","maxpool3x3","output"]'
# 128 steps of 32 synthetic 8x8 images on 2 devices; halfway evaluation at step 64.
OVERRIDES = ["--config.image_size=8", "--config.train_size=512", "--config.eval_size=128",
             "--config.batch_size=32", "--config.train_epochs=8", "--config.checkpoint_every_steps=8",
             "--config.num_devices=2"]


def command(workdir):
    return [sys.executable, "-m", "nasbench_jax.cli", "train", "--config", "cpu_tiny", "--matrix", MATRIX,
            "--ops", OPS, "--workdir", str(workdir), "--dataset", "synthetic", "--no-progress", "--no-metrics", *OVERRIDES]


def environment(cache):
    env = dict(os.environ)
    env.update(XLA_FLAGS="--xla_force_host_platform_device_count=2", JAX_PLATFORMS="cpu",
               PYTHONPATH=str(REPO) + os.pathsep + env.get("PYTHONPATH", ""), TF_CPP_MIN_LOG_LEVEL="3",
               JAX_COMPILATION_CACHE_DIR=str(cache), JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
               JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0")
    return env


def run_to_end(workdir, env):
    out = subprocess.run(command(workdir), cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout)


def kill_after_checkpoint(workdir, env, min_step):
    """Start a run and SIGKILL it as soon as a checkpoint at step >= min_step appears."""
    proc = subprocess.Popen(command(workdir), cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    ckpt = workdir / "checkpoints"
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            steps = [int(p.name) for p in ckpt.iterdir() if p.name.isdigit()] if ckpt.is_dir() else []
            if steps and max(steps) >= min_step:
                proc.send_signal(signal.SIGKILL)
                break
            time.sleep(0.005)
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    assert not (workdir / "results.json").exists()
    return max(int(p.name) for p in ckpt.iterdir() if p.name.isdigit())


def test_sigkilled_run_resumes_to_exactly_the_uninterrupted_metrics(tmp_path):
    env = environment(tmp_path / "jax-cache")
    reference = run_to_end(tmp_path / "uninterrupted", env)

    workdir = tmp_path / "preempted"
    first = kill_after_checkpoint(workdir, env, min_step=16)  # killed before the halfway evaluation
    assert first < 64
    second = kill_after_checkpoint(workdir, env, min_step=72)  # killed after it
    assert second >= 72
    resumed = run_to_end(workdir, env)

    assert len(resumed["evaluations"]) == len(reference["evaluations"]) == 3
    for got, want in zip(resumed["evaluations"], reference["evaluations"]):
        for key in ("epochs", "training_steps", "train_accuracy", "validation_accuracy", "test_accuracy"):
            assert got[key] == want[key], (key, got, want)
    assert resumed["trainable_parameters"] == reference["trainable_parameters"]
    assert reference["evaluations"][-1]["validation_accuracy"] > 0.15  # it trained at all

    s_ref, _ = T.load_checkpoint(tmp_path / "uninterrupted")
    s_res, meta = T.load_checkpoint(workdir)
    assert int(s_res["step"]) == 128
    jax.tree.map(np.testing.assert_array_equal, s_ref["params"], s_res["params"])
    jax.tree.map(np.testing.assert_array_equal, s_ref["batch_stats"], s_res["batch_stats"])
