"""Training throughput: our pmapped step (on-device gather + augmentation) vs a plain baseline.

Two modes::

    python bench/bench_train.py                 # CPU: tiny and paper configs, ours vs baseline
    python bench/bench_train.py --device-report --batch 256 --steps 50 --dtype bfloat16
                                                # accelerator: images/s, FLOP/s vs peak, compile time

**Ours**: :func:`train.train._parallel_steps`, the step ``train_and_evaluate`` runs — indices
computed on the host, uint8 images gathered, padded/cropped/flipped and normalised on the device
inside the compiled step, gradients ``pmean``ed.

**Baseline** (same process, same network, same optimiser and loss): the common pattern of a plain
``jax.jit`` step (no pmap) fed with batches augmented on the host in numpy (pad, random crop,
flip, normalise) and transferred every step. The ratio ``baseline_time / ours_time`` is what
moving the input pipeline onto the device and into the step buys (>1 = ours faster).

All figures are medians over timed steps after two warm-up steps, ours and baseline interleaved
step by step (fair under load from other processes); compile time is reported separately and
excluded. FLOPs come from XLA's cost analysis of the compiled per-device step.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from configs import cpu_tiny, nasbench101  # noqa: E402
from nasbench_jax import cells  # noqa: E402
from nasbench_jax.model import build_network  # noqa: E402
from train import input_pipeline as ip  # noqa: E402
from train import optim  # noqa: E402
from train import train as T  # noqa: E402

#: The README / notebook Inception-like cell (reference spec §5.7), 2,694,282 parameters.
INCEPTION = cells.inception_like()
#: H200 SXM dense bf16 tensor-core peak, TFLOP/s (NVIDIA datasheet: 1,979 with sparsity).
H200_BF16_DENSE_TFLOPS = 989.0


def _median_times(fns, steps: int) -> list[float]:
    """Median seconds per call of each function, calls interleaved (A B A B ...) so that load
    from other processes on a shared machine affects all of them alike."""
    times = [[] for _ in fns]
    for _ in range(steps):
        for fn, ts in zip(fns, times):
            t = time.perf_counter()
            jax.block_until_ready(fn())
            ts.append(time.perf_counter() - t)
    return [statistics.median(ts) for ts in times]


def bench_ours(spec, config, devices, dataset, steps: int) -> dict:
    """Median seconds per step of the pmapped train step, plus compile time and FLOPs."""
    network = build_network(spec, config)
    tx = optim.make_optimizer(config)
    total = max(2, optim.total_steps(config.train_epochs, config.train_size, config.batch_size))
    size = dataset.image_size
    variables = jax.jit(lambda k: network.init(k, jnp.zeros((1, size, size, 3)), train=False))(jax.random.PRNGKey(0))
    host = {"step": np.ones((), np.int32), "params": jax.device_get(variables["params"]),
            "opt_state": jax.device_get(jax.jit(tx.init)(variables["params"])),
            "batch_stats": jax.tree.map(lambda x: np.stack([np.asarray(x)] * len(devices)),
                                        jax.device_get(variables["batch_stats"]))}
    box = {"state": T._from_host(host, devices), "step": 1}
    p_train, _ = T._parallel_steps(network, tx, config, devices)
    run_consts = (np.asarray(jax.random.PRNGKey(1), np.uint32), np.int32(total))
    images, labels = T._replicate((dataset.train.images, dataset.train.labels), devices)
    per_device = config.batch_size // len(devices)

    def args():
        idx, pos = ip.batch_indices(0, box["step"], config.batch_size, len(dataset.train))
        shape = (len(devices), per_device)
        return (box["state"], images, labels, idx.reshape(shape), pos.reshape(shape),
                np.zeros((len(devices),), np.float32)) + run_consts

    t = time.perf_counter()
    compiled = p_train.lower(*args()).compile()
    compile_s = time.perf_counter() - t
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    flops = float(cost.get("flops", float("nan"))) * len(devices) if cost else float("nan")

    def one():
        box["state"], metrics = compiled(*args())
        box["step"] += 1
        return metrics

    for _ in range(2):
        jax.block_until_ready(one())
    return {"step": one, "compile_s": compile_s, "flops_per_step": flops}


def _host_augment(rng: np.random.Generator, images: np.ndarray) -> np.ndarray:
    n, h, w, _ = images.shape
    padded = np.pad(images, ((0, 0), (ip.PAD, ip.PAD), (ip.PAD, ip.PAD), (0, 0)))
    dy, dx = rng.integers(0, 2 * ip.PAD + 1, size=(2, n))
    out = np.stack([padded[i, dy[i]:dy[i] + h, dx[i]:dx[i] + w] for i in range(n)])
    flip = rng.random(n) < 0.5
    out[flip] = out[flip, :, ::-1]
    return ((out.astype(np.float32) - np.float32(ip.CIFAR_MEAN)) / np.float32(ip.CIFAR_STD)).astype(np.float32)


def bench_baseline(spec, config, dataset, steps: int) -> dict:
    """Median seconds per step: host numpy augmentation + transfer + a plain jit step."""
    network = build_network(spec, config)
    tx = optim.make_optimizer(config)
    size = dataset.image_size
    variables = jax.jit(lambda k: network.init(k, jnp.zeros((1, size, size, 3)), train=False))(jax.random.PRNGKey(0))
    wd = float(config.weight_decay)

    @jax.jit
    def step(params, batch_stats, opt_state, x, y, lr):
        def loss_fn(p):
            logits, mut = network.apply({"params": p, "batch_stats": batch_stats}, x, train=True,
                                        mutable=["batch_stats"])
            return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean(), mut

        (loss, mut), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
        loss = loss + wd * optim.l2_loss(params)  # the decay's gradient comes from the optimiser
        opt_state = optim.set_learning_rate(opt_state, lr)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), mut["batch_stats"], opt_state, loss

    rng = np.random.default_rng(0)
    box = {"params": variables["params"], "bs": variables["batch_stats"], "opt": jax.jit(tx.init)(variables["params"]),
           "step": 1}

    def one():
        idx, _ = ip.batch_indices(0, box["step"], config.batch_size, len(dataset.train))
        x = _host_augment(rng, dataset.train.images[idx])
        y = dataset.train.labels[idx]
        box["params"], box["bs"], box["opt"], loss = step(box["params"], box["bs"], box["opt"], x, y, np.float32(0.1))
        box["step"] += 1
        return loss

    for _ in range(2):
        jax.block_until_ready(one())
    return {"step": one}


def cpu_comparison(name, spec, config, steps) -> dict:
    dataset = ip.make_synthetic(image_size=config.image_size, train_size=config.train_size,
                                eval_size=config.batch_size, seed=0)
    ours = bench_ours(spec, config, jax.local_devices()[:1], dataset, steps)
    base = bench_baseline(spec, config, dataset, steps)
    ours["step_s"], base["step_s"] = _median_times([ours["step"], base["step"]], steps)
    b = config.batch_size
    row = {
        "config": name, "batch": b, "image_size": config.image_size, "devices": 1,
        "ours_steps_per_s": 1 / ours["step_s"], "ours_images_per_s": b / ours["step_s"],
        "baseline_steps_per_s": 1 / base["step_s"], "baseline_images_per_s": b / base["step_s"],
        "ratio_baseline_time_over_ours": base["step_s"] / ours["step_s"],
        "compile_s": ours["compile_s"], "gflop_per_step": ours["flops_per_step"] / 1e9,
    }
    print(f"[{name}] batch {b} @ {config.image_size}px, 1 device ({jax.devices()[0].platform}): "
          f"ours {row['ours_steps_per_s']:.2f} steps/s ({row['ours_images_per_s']:.0f} img/s), "
          f"baseline {row['baseline_steps_per_s']:.2f} steps/s ({row['baseline_images_per_s']:.0f} img/s), "
          f"ratio {row['ratio_baseline_time_over_ours']:.2f}x, compile {ours['compile_s']:.1f} s, "
          f"{row['gflop_per_step']:.3f} GFLOP/step", flush=True)
    return row


def device_report(args) -> dict:
    """Paper config, Inception cell, synthetic data, all local devices: images/s, FLOP/s, compile."""
    config = nasbench101.get_config()
    config.batch_size = args.batch
    config.dtype = args.dtype
    config.dataset = "synthetic"
    config.train_size = max(args.batch * 4, 4096)
    config.train_epochs = 108
    if args.smoke:  # a CPU-sized dry run of the same script
        config = cpu_tiny.get_config()
        config.batch_size = args.batch
    devices = jax.local_devices()
    dataset = ip.make_synthetic(image_size=config.image_size, train_size=config.train_size,
                                eval_size=config.batch_size, seed=0)
    t = time.perf_counter()
    ours = bench_ours(INCEPTION, config, devices, dataset, args.steps)
    (ours["step_s"],) = _median_times([ours["step"]], args.steps)
    wall = time.perf_counter() - t
    images_s = config.batch_size / ours["step_s"]
    tflops = ours["flops_per_step"] / ours["step_s"] / 1e12
    peak = args.peak_tflops * len(devices)
    out = {
        "device": str(devices[0].device_kind), "platform": devices[0].platform, "devices": len(devices),
        "config": "cpu_tiny (smoke)" if args.smoke else "nasbench101 (paper)", "cell": "Inception-like (README)",
        "global_batch": config.batch_size, "dtype": config.dtype, "steps_timed": args.steps,
        "step_ms_median": ours["step_s"] * 1e3, "images_per_s": images_s,
        "tflop_per_step": ours["flops_per_step"] / 1e12, "achieved_tflops": tflops,
        "peak_tflops_assumed": peak, "fraction_of_peak": tflops / peak,
        "compile_s": ours["compile_s"], "wall_s": wall,
    }
    print(json.dumps(out, indent=2))
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=5, help="timed steps (median)")
    p.add_argument("--paper-batch", type=int, default=16,
                   help="global batch for the paper config on CPU (256 is minutes per step on 2 cores)")
    p.add_argument("--skip-paper", action="store_true", help="CPU mode: only the tiny config")
    p.add_argument("--device-report", action="store_true", help="accelerator report (see bench/gpu.sh)")
    p.add_argument("--smoke", action="store_true", help="device report with the tiny config (CPU dry run)")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--dtype", default="bfloat16")
    p.add_argument("--peak-tflops", type=float, default=H200_BF16_DENSE_TFLOPS,
                   help="per-device peak used for the fraction (default: H200 dense bf16, 989)")
    args = p.parse_args(argv)
    if args.device_report:
        device_report(args)
        return 0
    rows = [cpu_comparison("cpu_tiny", INCEPTION, cpu_tiny.get_config(), args.steps)]
    if not args.skip_paper:
        c = nasbench101.get_config()
        c.batch_size = args.paper_batch
        c.train_size = 4 * args.paper_batch
        rows.append(cpu_comparison("nasbench101", INCEPTION, c, args.steps))
    print(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
