"""Benchmark: one training step of the NAS-Bench-101 network, ours (JAX/Flax) vs nasbench-pytorch.

One run prints, for the README Inception-like cell at the paper config (batch 256 and 32) and at
the tiny config (``configs/cpu_tiny.py``):

* training-step images/s (median over timed steps) and compile seconds (trace + lower, XLA
  compile) of our model, with one step = forward + backward + RMSProp update
  (the trainer's optimiser, ``train.optim.make_optimizer``: TF1 RMSProp decay 0.9, eps 1.0,
  momentum 0.9, on one flat parameter vector; coupled L2 1e-4, learning rate 0.1);
* the same for the PyPI package ``nasbench-pytorch`` (in a child process) (``torch.optim.RMSprop`` with alpha 0.9,
  eps 1.0, momentum 0.9, weight decay 1e-4) on the same cell and batch, and the ratio;
* FLOPs per image from XLA's cost analysis and the FLOP/s achieved, against this CPU's matmul
  peak measured in the same run (a large float32 matmul);
* compile time with JAX's persistent compilation cache cold and warm (fresh child processes,
  median of ``--warm-runs``), split into trace + lower and XLA compile;
* the ``straightforward`` formulation (lax.conv / nn.max_pool) of the same network, as the
  in-process baseline of our kernel work.

Usage::

    python bench/bench_model.py                  # everything (several minutes on 2 cores)
    python bench/bench_model.py --quick          # batch 32 + tiny only, fewer steps
    python bench/bench_model.py --compile-only   # cold + 5 warm persistent-cache compiles

Install the comparison with ``pip install torch==2.13.0 nasbench-pytorch``; without it the
PyTorch rows are skipped. The machine load (``os.getloadavg``) is printed: other processes on
the CPUs make every figure slower.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

def _readme_cell():
    from nasbench_jax import cells

    return cells.inception_like()


def _load() -> str:
    return "load average %.2f %.2f %.2f" % os.getloadavg()


def _config(name: str):
    from configs import cpu_tiny, nasbench101

    return (nasbench101 if name == "paper" else cpu_tiny).get_config()


def _jax_optimizer(cfg):
    """The trainer's optimiser (``train.optim``): TF1 RMSProp on one flat parameter vector."""
    from train import optim

    return optim.make_optimizer(cfg)


def _jax_train_step(net, tx, weight_decay: float = 1e-4, lr: float = 0.1):
    """One step as ``train/`` runs it: forward, backward, RMSProp update with coupled L2
    (its gradient added by the optimiser, its value added to the reported loss)."""
    import jax
    import optax

    from train import optim

    def step(params, batch_stats, opt_state, images, labels):
        def loss_fn(p):
            logits, upd = net.apply({"params": p, "batch_stats": batch_stats}, images,
                                    train=True, mutable=["batch_stats"])
            loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
            return loss, upd["batch_stats"]

        (loss, new_stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
        loss = loss + weight_decay * optim.l2_loss(params)
        opt_state = optim.set_learning_rate(opt_state, lr)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), new_stats, opt_state, loss

    return step


@dataclass
class Runner:
    """A prepared training step: ``step()`` runs one and blocks until it is done."""

    step: object
    batch: int
    trace_s: float = float("nan")
    compile_s: float = float("nan")
    flops_per_image: float = float("nan")


def prepare_jax(config_name: str, batch: int, kernels: str = "fast") -> Runner:
    """Compile our train step. ``kernels``: "fast" or "reference" (lax.conv / nn.max_pool)."""
    import jax
    import optax

    import nasbench_jax.model as model

    model._KERNELS = kernels  # read at trace time only
    cfg = _config(config_name)
    net = model.build_network(_readme_cell(), cfg)
    size = cfg.image_size
    images = jax.random.normal(jax.random.key(0), (batch, size, size, 3))
    labels = jax.random.randint(jax.random.key(1), (batch,), 0, cfg.num_labels)
    variables = jax.jit(lambda x: net.init(jax.random.key(2), x, train=False))(images[:1])
    tx = _jax_optimizer(cfg)
    opt_state = tx.init(variables["params"])
    t0 = time.perf_counter()
    lowered = jax.jit(_jax_train_step(net, tx), donate_argnums=(0, 1, 2)).lower(
        variables["params"], variables["batch_stats"], opt_state, images, labels)
    t1 = time.perf_counter()
    compiled = lowered.compile()
    t2 = time.perf_counter()
    model._KERNELS = "fast"
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    flops = float(cost.get("flops", float("nan"))) / batch
    state = [variables["params"], variables["batch_stats"], opt_state]

    def step():
        *new, loss = compiled(*state, images, labels)
        state[:] = new
        loss.block_until_ready()

    return Runner(step, batch, t1 - t0, t2 - t1, flops)


def prepare_torch(config_name: str, batch: int) -> Runner | None:
    """nasbench-pytorch's network on the same cell, batch and optimiser (None if absent)."""
    try:
        import torch
        from nasbench_pytorch.model import Network as TorchNetwork
    except ImportError:
        return None
    cfg = _config(config_name)
    torch.manual_seed(0)
    t0 = time.perf_counter()
    # PyTorch's BN momentum is 1 - TF's decay (the port's default 0.997 is the TF number).
    net = TorchNetwork((np.array(_readme_cell().original_matrix), list(_readme_cell().original_ops)), num_labels=cfg.num_labels,
                       stem_out_channels=cfg.stem_filter_size, num_stacks=cfg.num_stacks,
                       num_modules_per_stack=cfg.num_modules_per_stack,
                       momentum=1 - 0.997, eps=1e-5)
    build_s = time.perf_counter() - t0
    net.train()
    opt = torch.optim.RMSprop(net.parameters(), lr=0.1, alpha=0.9, eps=1.0, momentum=0.9,
                              weight_decay=1e-4)
    size = cfg.image_size
    images = torch.randn(batch, 3, size, size)
    labels = torch.randint(0, cfg.num_labels, (batch,))
    loss_fn = torch.nn.CrossEntropyLoss()

    def step():
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(net(images), labels)
        loss.backward()
        opt.step()

    return Runner(step, batch, compile_s=build_s)


def time_interleaved(runners: dict, steps: int) -> dict:
    """Median wall and CPU seconds per step of each runner, timed in alternating rounds.

    Alternating (ours, baseline, ours, ...) exposes every runner to the same machine load, so
    the ratios stay meaningful on a shared CPU even when absolute figures drift.
    """
    for r in runners.values():  # warm-up: first calls allocate and fill caches
        r.step()
    wall = {k: [] for k in runners}
    cpu = {k: [] for k in runners}
    for i in range(steps):
        keys = list(runners) if i % 2 == 0 else list(runners)[::-1]
        for k in keys:
            t, c = time.perf_counter(), time.process_time()
            runners[k].step()
            wall[k].append(time.perf_counter() - t)
            cpu[k].append(time.process_time() - c)
    return {k: (float(np.median(wall[k])), float(np.median(cpu[k]))) for k in runners}


def matmul_peak(n: int = 2048, repeats: int = 7) -> float:
    """Float32 GFLOP/s of an ``n x n`` matmul through XLA (best of ``repeats``: a peak)."""
    import jax

    a = jax.random.normal(jax.random.key(0), (n, n))
    f = jax.jit(lambda a: a @ a)
    f(a).block_until_ready()
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        f(a).block_until_ready()
        ts.append(time.perf_counter() - t)
    return 2 * n**3 / min(ts) / 1e9


def compile_probe(cache_dir: str, batch: int) -> dict:
    """(Child process) trace+lower and compile seconds with a persistent compilation cache."""
    import jax

    jax.config.update("jax_compilation_cache_dir", cache_dir)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    import optax

    from nasbench_jax.model import build_network

    cfg = _config("paper")
    net = build_network(_readme_cell(), cfg)
    images = jax.ShapeDtypeStruct((batch, 32, 32, 3), jax.numpy.float32)
    labels = jax.ShapeDtypeStruct((batch,), jax.numpy.int32)
    variables = jax.eval_shape(lambda x: net.init(jax.random.key(0), x, train=False), images)
    tx = _jax_optimizer(cfg)
    opt_state = jax.eval_shape(tx.init, variables["params"])
    t0 = time.perf_counter()
    lowered = jax.jit(_jax_train_step(net, tx), donate_argnums=(0, 1, 2)).lower(
        variables["params"], variables["batch_stats"], opt_state, images, labels)
    t1 = time.perf_counter()
    lowered.compile()
    t2 = time.perf_counter()
    return {"trace_s": t1 - t0, "compile_s": t2 - t1}


def _probe_in_child(cache_dir: str, batch: int) -> dict:
    out = subprocess.run(
        [sys.executable, os.path.abspath(__file__), "--compile-probe", cache_dir,
         "--probe-batch", str(batch)],
        capture_output=True, text=True, check=True, cwd=ROOT)
    return json.loads(out.stdout.strip().splitlines()[-1])


def compile_cache_report(warm_runs: int) -> None:
    """Cold then warm persistent-cache compiles of the paper-config step, each a fresh process."""
    with tempfile.TemporaryDirectory() as cache:
        cold = _probe_in_child(cache, 32)
        warm = [_probe_in_child(cache, 32) for _ in range(warm_runs)]
    med = {k: float(np.median([w[k] for w in warm])) for k in ("trace_s", "compile_s")}
    print(f"\n== persistent compilation cache (paper config, batch 32, fresh processes, {_load()})")
    print(f"  cold: trace+lower {cold['trace_s']:.2f} s  XLA compile {cold['compile_s']:.2f} s  "
          f"total {cold['trace_s'] + cold['compile_s']:.2f} s")
    print(f"  warm (median of {len(warm)}): trace+lower {med['trace_s']:.2f} s  "
          f"XLA compile (cache load) {med['compile_s']:.2f} s  total {sum(med.values()):.2f} s")
    print("  warm runs, XLA compile s: " + " ".join(f"{w['compile_s']:.2f}" for w in warm))
    print(f"  cold/warm XLA compile: x{cold['compile_s'] / med['compile_s']:.1f}")


def _torch_in_child(config_name: str, batch: int, steps: int, single_thread: bool) -> dict | None:
    cmd = [sys.executable, os.path.abspath(__file__), "--torch-child", config_name,
           "--probe-batch", str(batch), "--steps", str(steps)]
    if single_thread:
        cmd.append("--single-thread")
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if out.returncode != 0:
        return None
    return json.loads(out.stdout.strip().splitlines()[-1])


def torch_child(config_name: str, batch: int, steps: int) -> dict:
    """(Child process) median wall/CPU seconds per nasbench-pytorch step."""
    runner = prepare_torch(config_name, batch)
    if runner is None:
        raise SystemExit(1)
    times = time_interleaved({"t": runner}, steps)["t"]
    return {"wall_s": times[0], "cpu_s": times[1], "build_s": runner.compile_s}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="batch 32 + tiny only, 2 steps")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per row (median)")
    parser.add_argument("--batches", type=int, nargs="+", default=[256, 32],
                        help="paper-config batch sizes")
    parser.add_argument("--no-torch", action="store_true")
    parser.add_argument("--no-reference", action="store_true",
                        help="skip the straightforward-formulation baseline")
    parser.add_argument("--single-thread", action="store_true",
                        help="one thread for XLA and torch: a per-core comparison that is "
                             "robust to other processes on a shared CPU")
    parser.add_argument("--compile-only", action="store_true",
                        help="only the persistent-compilation-cache probe")
    parser.add_argument("--warm-runs", type=int, default=5,
                        help="fresh processes timed with the cache warm (median)")
    parser.add_argument("--compile-probe", help=argparse.SUPPRESS)
    parser.add_argument("--torch-child", help=argparse.SUPPRESS)
    parser.add_argument("--probe-batch", type=int, default=32, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.torch_child:
        if args.single_thread:
            import torch

            torch.set_num_threads(1)
        print(json.dumps(torch_child(args.torch_child, args.probe_batch, args.steps)))
        return 0
    if args.compile_probe:
        print(json.dumps(compile_probe(args.compile_probe, args.probe_batch)))
        return 0
    if args.compile_only:
        compile_cache_report(args.warm_runs)
        return 0
    if args.quick:
        args.batches, args.steps = [32], 2
    if args.single_thread:  # must happen before JAX starts its thread pool
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                                   + " --xla_cpu_multi_thread_eigen=false").strip()
        try:
            import torch

            torch.set_num_threads(1)
        except ImportError:
            pass

    import jax
    from tqdm import tqdm

    threads = "1 thread" if args.single_thread else f"{os.cpu_count()} CPUs"
    print(f"jax {jax.__version__}, devices {jax.devices()}, {threads}, {_load()}")
    rows = [("paper", b) for b in args.batches] + [("tiny", 64)]
    peak = matmul_peak()
    print(f"matmul peak (XLA, 2048^2 f32, best of 7): {peak:.1f} GFLOP/s")
    for cfg_name, batch in tqdm(rows, desc="configs", file=sys.stderr):
        steps = args.steps if cfg_name == "paper" else max(args.steps, 10)
        runners = {"ours": prepare_jax(cfg_name, batch)}
        if not args.no_reference:
            runners["straightforward"] = prepare_jax(cfg_name, batch, kernels="reference")
        times = time_interleaved(runners, steps)
        if not args.no_torch:
            # In its own process: XLA's worker threads spin briefly after each step and
            # starve torch's OpenMP threads when both share a process on 2 cores.
            t = _torch_in_child(cfg_name, batch, steps, args.single_thread)
            if t is not None:
                runners["nasbench-pytorch"] = Runner(None, batch, compile_s=t["build_s"])
                times["nasbench-pytorch"] = (t["wall_s"], t["cpu_s"])
        ours = runners["ours"]
        wall, cpu = times["ours"]
        ips = batch / wall
        print(f"\n== {cfg_name} config, batch {batch}, median of {steps} interleaved steps "
              f"({_load()})")
        for name, r in runners.items():
            w, c = times[name]
            extra = (f"trace {r.trace_s:5.2f} s  compile {r.compile_s:5.2f} s" if name != "nasbench-pytorch"
                     else f"build {r.compile_s:.2f} s (eager)")
            ratio = "" if name == "ours" else f"  -> ours x{(batch / wall) / (batch / w):.2f} (wall), x{c / cpu:.2f} (cpu)"
            print(f"  {name:17s}: {batch / w:7.1f} img/s  step {w:6.3f} s  cpu {c:6.2f} s  {extra}{ratio}")
        gflop = ours.flops_per_image / 1e9
        achieved = ours.flops_per_image * ips / 1e9
        print(f"  FLOPs/img : {gflop:.3f} GFLOP (XLA cost analysis, fwd+bwd+update); achieved "
              f"{achieved:.1f} GFLOP/s = {achieved / peak:.0%} of the matmul peak")
    compile_cache_report(args.warm_runs)
    print(f"\n{_load()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
