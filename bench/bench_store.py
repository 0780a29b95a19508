"""Benchmark of the results store, the importer and the queries on a full-space store.

Builds (once, cached under ``--workdir``, default ``/tmp/nasbench_bench``) all 423,624 cells of
the space with synthetic metrics (4 budgets x 3 repeats) and an original-format ``.tfrecord``
of the 108-epoch rows (1,270,872 rows, the size of ``nasbench_only108.tfrecord``), then prints,
each against a plain-Python baseline built like the original API (rows parsed with the
protobuf library into dicts keyed by the hashlib module hash, §7.4) in the same run:

* import rows/s (``tfrecord.read_dataset``) vs the baseline loader;
* store open time and resident-memory delta (fresh subprocesses, medians) vs the baseline
  loader's time and memory;
* single ``NASBench.query`` latency (median; first query of a spec, and repeated) vs the
  baseline ``query`` (hash_spec + dict + deepcopy);
* batched queries/s by store index (``api.query_index``) vs baseline dict lookups by hash;
* batched queries/s from raw cells, canonicalization included (``api.query_cells``: prune +
  validity + labelled-code index; also through ``graph.canonicalize``) vs the baseline
  ``ModelSpec`` + ``hash_spec`` + dict lookup.

Usage::

    python bench/bench_store.py [--workdir /tmp/nasbench_bench] [--full-file]

``--full-file`` also writes and imports the 5,083,488-row full-size file (not timed by default).
"""

from __future__ import annotations

import argparse
import base64
import copy
import itertools
import json
import os
import random
import statistics
import subprocess
import sys
import time

import numpy as np

from nasbench_jax import constants as C
from nasbench_jax import store as st
from nasbench_jax import tfrecord as tfr
from nasbench_jax.graph import reference
from nasbench_jax.errors import OutOfDomainError
from nasbench_jax.spec import ModelSpec, check_spec

OPS = {C.INPUT_LABEL: C.INPUT, C.OUTPUT_LABEL: C.OUTPUT, **{i: o for i, o in enumerate(C.AVAILABLE_OPS)}}


def log(*a):
    print(*a, flush=True)


# ----------------------------------------------------------------------------------------
# The full space (enumerated, cached)
# ----------------------------------------------------------------------------------------


def _enumerate_numpy():
    """All unique cells, first-met representatives in the original enumeration order (§4.1).

    Fallback when ``space.enumerate_cells`` is not available: every labelled full DAG in the
    original order, canonical codes with ``store.host_canonical_codes``, first occurrence of
    each code.
    """
    adj_all, ops_all, nv_all = [], [], []
    for v in range(2, 8):
        s = v * (v - 1) // 2
        bits = np.arange(2**s, dtype=np.int64)
        a = np.zeros((bits.size, 7, 7), np.uint8)
        for k, (x, y) in enumerate(st._SLOTS[:s]):
            a[:, x, y] = (bits >> k) & 1
        sub = a[:, :v, :v]
        full = np.all(sub[:, : v - 1].any(axis=2), axis=1) & np.all(sub[:, :, 1:].any(axis=1), axis=1)
        full &= sub.sum(axis=(1, 2)) <= C.MAX_EDGES
        a = a[full]
        labs = np.array(list(itertools.product(range(3), repeat=v - 2)), np.int8).reshape(3 ** (v - 2), v - 2)
        o = np.full((labs.shape[0], 7), C.PAD_LABEL, np.int8)
        o[:, 0], o[:, 1 : v - 1], o[:, v - 1] = C.INPUT_LABEL, labs, C.OUTPUT_LABEL
        adj_all.append(np.repeat(a, labs.shape[0], axis=0))
        ops_all.append(np.tile(o, (a.shape[0], 1)))
        nv_all.append(np.full(a.shape[0] * labs.shape[0], v, np.int8))
    adj, ops, nv = np.concatenate(adj_all), np.concatenate(ops_all), np.concatenate(nv_all)
    codes = st.host_canonical_codes(adj, ops, nv)
    _, first = np.unique(codes, return_index=True)
    first = np.sort(first)
    return adj[first], ops[first], nv[first], codes[first]


def _hashes(adj, ops, nv):
    try:
        from nasbench_jax.graph.fingerprint import fingerprint_hex

        log("  hashing with graph.fingerprint_hex ...")
        return np.asarray(fingerprint_hex((adj, ops, nv.astype(np.int32))), dtype="S32")
    except ImportError:
        log("  hashing with hashlib (slow) ...")
        out = []
        for a, o, v in zip(adj, ops, nv):
            v = int(v)
            out.append(reference.hash_module(a[:v, :v], o[:v].tolist()).encode())
        return np.array(out, dtype="S32")


def full_space(workdir):
    path = os.path.join(workdir, "cells.npz")
    if os.path.exists(path):
        with np.load(path) as z:
            return z["adjacency"], z["operations"], z["num_vertices"], z["codes"], z["hashes"]
    t = time.perf_counter()
    try:
        from nasbench_jax.space import enumerate_cells

        e = enumerate_cells(max_vertices=7, max_edges=9)
        adj, ops, nv = (np.asarray(x) for x in e.cells)
        codes = np.asarray(e.codes, np.uint32)
        log("  enumerated with space.enumerate_cells")
    except ImportError:
        adj, ops, nv, codes = _enumerate_numpy()
        log("  enumerated with the numpy fallback")
    hashes = _hashes(adj, ops, nv)
    np.savez(path, adjacency=adj, operations=ops, num_vertices=nv.astype(np.int8), codes=codes, hashes=hashes)
    log(f"  {adj.shape[0]:,} cells in {time.perf_counter() - t:.1f} s (cached in {path})")
    return adj, ops, nv.astype(np.int8), codes, hashes


def synthetic_store(adj, ops, nv, codes, hashes, seed=0):
    rng = np.random.default_rng(seed)
    n = adj.shape[0]
    shape = (n, 4, 3)
    acc = lambda lo, hi: rng.uniform(lo, hi, shape).astype(np.float32)  # noqa: E731
    t108 = rng.uniform(500, 5000, (n, 1, 1))
    scale = np.array(C.BUDGETS, np.float64)[None, :, None] / 108.0
    final_time = (t108 * scale * rng.uniform(0.98, 1.02, shape)).astype(np.float32)
    metrics = {
        "final_train_accuracy": acc(0.9, 1.0), "final_validation_accuracy": acc(0.8, 0.95),
        "final_test_accuracy": acc(0.8, 0.95), "final_training_time": final_time,
        "halfway_train_accuracy": acc(0.7, 0.9), "halfway_validation_accuracy": acc(0.6, 0.85),
        "halfway_test_accuracy": acc(0.6, 0.85), "halfway_training_time": (final_time / 2).astype(np.float32),
    }
    params = rng.integers(200_000, 50_000_000, n)
    return st.make_store(adjacency=adj, operations=ops, num_vertices=nv, module_hash=hashes,
                         trainable_parameters=params, metrics=metrics, canonical_code=codes, synthetic=True,
                         provenance=["bench/bench_store.py: uniform random metrics"])


def only_budget(s: st.Store, epochs: int) -> st.Store:
    b = s.budget_index(epochs)
    cols = {k: v for k, v in s.columns().items()}
    for m in st.METRIC_NAMES:
        cols[m] = np.ascontiguousarray(cols[m][:, b : b + 1])
    cols["budgets"] = np.array([epochs], np.int32)
    cols["metadata"] = dict(s.metadata, budgets=[epochs])
    return st.Store(**cols)


# ----------------------------------------------------------------------------------------
# The plain-Python baseline, built like the original API (§7.4-7.5)
# ----------------------------------------------------------------------------------------


class BaselineAPI:
    """The original ``NASBench`` loading and query logic, in plain Python."""

    def __init__(self, path, seed=0):
        cls = tfr.protobuf_metrics_class()
        random.seed(seed)
        self.fixed_statistics, self.computed_statistics, self.valid_epochs = {}, {}, set()
        for data in tfr.iter_records(path):
            module_hash, epochs, raw_adjacency, raw_operations, raw_metrics = json.loads(data.decode("utf-8"))
            dim = int(np.sqrt(len(raw_adjacency)))
            adjacency = np.array([int(e) for e in list(raw_adjacency)], dtype=np.int8)
            adjacency = np.reshape(adjacency, (dim, dim))
            operations = raw_operations.split(",")
            metrics = cls.FromString(base64.b64decode(raw_metrics))
            if module_hash not in self.fixed_statistics:
                self.fixed_statistics[module_hash] = {
                    "module_adjacency": adjacency, "module_operations": operations,
                    "trainable_parameters": metrics.trainable_parameters}
                self.computed_statistics[module_hash] = {}
            self.valid_epochs.add(epochs)
            self.computed_statistics[module_hash].setdefault(epochs, [])
            half, final = metrics.evaluation_data[1], metrics.evaluation_data[2]
            self.computed_statistics[module_hash][epochs].append({
                "halfway_training_time": half.training_time, "halfway_train_accuracy": half.train_accuracy,
                "halfway_validation_accuracy": half.validation_accuracy, "halfway_test_accuracy": half.test_accuracy,
                "final_training_time": final.training_time, "final_train_accuracy": final.train_accuracy,
                "final_validation_accuracy": final.validation_accuracy, "final_test_accuracy": final.test_accuracy})
        self.training_time_spent, self.total_epochs_spent = 0.0, 0

    def query(self, spec, epochs=108, stop_halfway=False):
        check_spec(spec)
        h = spec.hash_spec()
        fixed = copy.deepcopy(self.fixed_statistics[h])
        computed = copy.deepcopy(self.computed_statistics[h])
        idx = random.randint(0, 2)
        point = computed[epochs][idx]
        pre = "halfway_" if stop_halfway else "final_"
        data = dict(fixed)
        for k in ("training_time", "train_accuracy", "validation_accuracy", "test_accuracy"):
            data[k] = point[pre + k]
        self.training_time_spent += data["training_time"]
        self.total_epochs_spent += epochs // 2 if stop_halfway else epochs
        return data


# ----------------------------------------------------------------------------------------
# Measurements
# ----------------------------------------------------------------------------------------

_OPEN_SCRIPT = """
import json, sys, time, psutil
p = psutil.Process()
import numpy
from nasbench_jax import store as st
r0 = p.memory_info().rss
t = time.perf_counter(); s = st.open_store(sys.argv[1]); dt = time.perf_counter() - t
r1 = p.memory_info().rss
print(json.dumps({"open_s": dt, "rss_mb": (r1 - r0) / 2**20, "cells": s.num_cells}))
"""

_BASELINE_SCRIPT = """
import json, sys, time, psutil
sys.path.insert(0, sys.argv[2])
p = psutil.Process()
import bench_store
r0 = p.memory_info().rss
t = time.perf_counter(); b = bench_store.BaselineAPI(sys.argv[1]); dt = time.perf_counter() - t
r1 = p.memory_info().rss
print(json.dumps({"load_s": dt, "rss_mb": (r1 - r0) / 2**20, "cells": len(b.fixed_statistics)}))
"""


def _subprocess_json(script, *args):
    out = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def raw_cells(adj, ops, nv, n, rng):
    """Half stored representatives (padded encoding), half uniform random raw 7x7 cells."""
    idx = rng.integers(0, adj.shape[0], n // 2)
    a1, o1, v1 = adj[idx], ops[idx], nv[idx].astype(np.int32)
    m = n - n // 2
    a2 = np.triu(rng.integers(0, 2, (m, 7, 7)), 1).astype(np.uint8)
    o2 = rng.integers(0, 3, (m, 7)).astype(np.int8)
    o2[:, 0], o2[:, 6] = C.INPUT_LABEL, C.OUTPUT_LABEL
    v2 = np.full(m, 7, np.int32)
    return np.concatenate([a1, a2]), np.concatenate([o1, o2]), np.concatenate([v1, v2])


def _spec(a, o, v):
    v = int(v)
    return ModelSpec(a[:v, :v].astype(np.int64), [OPS[int(x)] for x in o[:v]])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", default="/tmp/nasbench_bench")
    ap.add_argument("--full-file", action="store_true", help="also time the 5,083,488-row full-size file")
    ap.add_argument("--batch", type=int, default=1 << 20, help="batch size of the batched queries")
    args = ap.parse_args(argv)
    os.makedirs(args.workdir, exist_ok=True)
    rng = np.random.default_rng(0)
    log("== setup")
    adj, ops, nv, codes, hashes = full_space(args.workdir)
    log(f"  cells: {adj.shape[0]:,}")
    store_path = os.path.join(args.workdir, "full.npz")
    rec_path = os.path.join(args.workdir, "only108.tfrecord")
    s = synthetic_store(adj, ops, nv, codes, hashes)
    t = time.perf_counter()
    st.write_store(store_path, s)
    log(f"  wrote {store_path}: {os.path.getsize(store_path) / 2**20:.0f} MiB in {time.perf_counter() - t:.1f} s")
    if not os.path.exists(rec_path):
        t = time.perf_counter()
        n = tfr.write_dataset(rec_path, only_budget(s, 108), progress=False)
        dt = time.perf_counter() - t
        log(f"  exported {n:,} rows ({os.path.getsize(rec_path) / 2**20:.0f} MiB) in {dt:.1f} s ({n / dt:,.0f} rows/s)")
    results = {}

    log("== import (only108-sized file, 1,270,872 rows)")
    t = time.perf_counter()
    imported = tfr.read_dataset(rec_path, progress=False)
    dt_import = time.perf_counter() - t
    rows = imported.metadata["provenance"][0]["rows"]
    assert imported.num_cells == s.num_cells
    assert np.array_equal(imported.final_validation_accuracy[:, 3], s.final_validation_accuracy[:, 3])
    del imported
    log("  baseline loader (original-API style, subprocess) ...")
    base = _subprocess_json(_BASELINE_SCRIPT, rec_path, os.path.dirname(os.path.abspath(__file__)))
    results["import"] = (rows / dt_import, rows / base["load_s"])
    log(f"  ours:     {dt_import:6.1f} s  {rows / dt_import:>10,.0f} rows/s")
    log(f"  baseline: {base['load_s']:6.1f} s  {rows / base['load_s']:>10,.0f} rows/s, +{base['rss_mb']:,.0f} MB resident")
    log(f"  ratio:    {base['load_s'] / dt_import:.1f}x faster  (target: <= 60 s)")
    if args.full_file:
        full_rec = os.path.join(args.workdir, "full.tfrecord")
        if not os.path.exists(full_rec):
            tfr.write_dataset(full_rec, s, progress=False)
        t = time.perf_counter()
        n_full = tfr.read_dataset(full_rec, progress=False).metadata["provenance"][0]["rows"]
        dt = time.perf_counter() - t
        log(f"  full-size file: {n_full:,} rows in {dt:.1f} s ({n_full / dt:,.0f} rows/s)")
    else:
        log("  (the 5,083,488-row full-size file is not timed; pass --full-file)")

    log("== open the full-space store (fresh subprocess each, median of 5)")
    runs = [_subprocess_json(_OPEN_SCRIPT, store_path) for _ in range(5)]
    open_s = statistics.median(r["open_s"] for r in runs)
    rss = statistics.median(r["rss_mb"] for r in runs)
    log(f"  ours:     {open_s * 1e3:6.1f} ms, +{rss:.1f} MB resident  (targets: <= 200 ms, <= 300 MB)")
    log(f"  baseline: {base['load_s']:6.1f} s,  +{base['rss_mb']:,.0f} MB resident (load of the same data)")
    log(f"  ratio:    {base['load_s'] / open_s:,.0f}x faster, {base['rss_mb'] / max(rss, 1e-3):,.0f}x less memory")

    log("== single query() latency (median)")
    from nasbench_jax import api

    t = time.perf_counter()
    nb = api.NASBench(store_path, seed=0)
    log(f"  NASBench(full.npz) constructed in {time.perf_counter() - t:.2f} s")
    baseline = BaselineAPI(rec_path, seed=0)
    sel = rng.integers(0, adj.shape[0], 3000)
    specs = [_spec(adj[i], ops[i], nv[i]) for i in sel]
    for sp in specs[:50]:  # same answers (same cell, same representative)
        a, b = nb.query(sp), baseline.query(sp)
        assert a["module_operations"] == b["module_operations"] and a["trainable_parameters"] == b["trainable_parameters"]

    def lat(fn, items):
        out = []
        for x in items:
            t0 = time.perf_counter_ns()
            fn(x)
            out.append(time.perf_counter_ns() - t0)
        return statistics.median(out) / 1e3

    nb._memo.clear()
    first = lat(nb.query, specs)
    again = lat(nb.query, specs)
    base_q = lat(baseline.query, specs)
    results["query"] = (first, base_q)
    log(f"  ours:     {first:6.1f} us (first query of a spec), {again:.1f} us (repeated)  (target: <= 50 us)")
    log(f"  baseline: {base_q:6.1f} us (hash_spec + dict + deepcopy)")
    log(f"  ratio:    {base_q / first:.1f}x faster (first), {base_q / again:.1f}x (repeated)")

    log(f"== batched queries ({args.batch:,} per call, median of 5 after compile)")
    import jax
    import jax.numpy as jnp

    from nasbench_jax import space

    t = time.perf_counter()
    table = api.QueryTable.from_store(s)
    log(f"  QueryTable.from_store (with the labelled-code index): {time.perf_counter() - t:.1f} s")
    log(f"  device: {jax.devices()[0].platform}")
    idx = jnp.asarray(rng.integers(0, adj.shape[0], args.batch), jnp.int32)
    f_idx = jax.jit(lambda tb, i, k: api.query_index(tb, i, k))

    def timed(fn, *a):
        jax.block_until_ready(fn(*a))
        ts = []
        for r in range(5):
            t0 = time.perf_counter()
            jax.block_until_ready(fn(*a[:-1], jax.random.key(r)))
            ts.append(time.perf_counter() - t0)
        return statistics.median(ts)

    dt = timed(f_idx, table, idx, jax.random.key(0))
    hl = [h.decode() for h in hashes]
    bsel = [hl[i] for i in rng.integers(0, len(hl), 100_000)]
    t0 = time.perf_counter()
    for h in bsel:
        baseline.computed_statistics[h][108][random.randint(0, 2)]["final_validation_accuracy"]
    base_idx = len(bsel) / (time.perf_counter() - t0)
    results["index"] = (args.batch / dt, base_idx)
    log(f"  by index: {args.batch / dt:>14,.0f} queries/s   baseline (dict by hash): {base_idx:,.0f}/s   "
        f"ratio {args.batch / dt / base_idx:,.0f}x")
    if True:
        ra, ro, rv = raw_cells(adj, ops, nv, args.batch, rng)
        cells = space.Cells(jnp.asarray(ra), jnp.asarray(ro), jnp.asarray(rv))
        f_cells = jax.jit(lambda tb, c, k: api.query_cells(tb, c, k))
        dt = timed(f_cells, table, cells, jax.random.key(0))
        found = float(jnp.mean(f_cells(table, cells, jax.random.key(0)).found))
        n_base = 2000

        def base_raw(i):
            v = int(rv[i])
            sp = ModelSpec(ra[i][:v, :v].astype(np.int64), [OPS[int(x)] for x in ro[i][:v]])
            try:
                check_spec(sp)
            except OutOfDomainError:  # not in the space: not found
                return None
            return baseline.fixed_statistics.get(sp.hash_spec())

        sel = rng.integers(0, args.batch, n_base)
        t0 = time.perf_counter()
        for i in sel:
            base_raw(i)
        base_cells = n_base / (time.perf_counter() - t0)
        results["cells"] = (args.batch / dt, base_cells)
        log(f"  raw cells: {args.batch / dt:>13,.0f} cells/s    baseline (ModelSpec + hash_spec + dict): "
            f"{base_cells:,.0f}/s   ratio {args.batch / dt / base_cells:,.0f}x  ({found:.0%} found; target >= 1,000,000/s)")
        canon = api.QueryTable.from_store(s, labelled=False)
        dt_c = timed(f_cells, canon, cells, jax.random.key(0))
        same = bool(jnp.all(f_cells(canon, cells, jax.random.key(0)).index == f_cells(table, cells, jax.random.key(0)).index))
        log(f"  raw cells via graph.canonicalize (no labelled index): {args.batch / dt_c:,.0f} cells/s "
            f"(same rows: {same})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
