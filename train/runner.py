"""Train many cells (cells × budgets × repeats) split across independent workers; build store shards.

The original's distributed runner (reference spec §6.8) in small: every worker (a host, or a
process on its own devices) takes the work units ``i ≡ worker_id (mod num_workers)``, trains each
with :func:`train.train.train_and_evaluate` into its own directory (so a restarted worker skips
finished units and resumes the interrupted one from its checkpoint), and writes the results it
has as an ``.npz`` store shard; :func:`nasbench_jax.store.merge_stores` combines the shards::

    units = work_units(specs, budgets=(4, 12, 36, 108), num_repeats=3)
    results = run_worker(units, config, "runs/", worker_id=0, num_workers=8)
    write_shard(results, config, "runs/shard-0.npz", budgets=(4, 12, 36, 108), num_repeats=3)

Unit order follows the original: with the specs sorted by module hash (K of them), unit
``i`` within a budget is cell ``K[i mod |K|]``, repeat ``i // |K| + 1``; budgets come one after
another, smallest first. Workers are independent processes: they do not call
``jax.distributed.initialize()`` (each trains on its own local devices).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from typing import Any, Sequence

import numpy as np

from nasbench_jax import constants as C
from nasbench_jax.errors import ConfigError
from nasbench_jax.spec import ModelSpec
from train import input_pipeline
from train.train import RESULTS_FILE, TrainingRecord, train_and_evaluate

__all__ = ["WorkUnit", "work_units", "worker_units", "unit_dir", "unit_seed", "run_worker", "write_shard"]


@dataclasses.dataclass(frozen=True)
class WorkUnit:
    """One training run: a cell at one epoch budget, one repeat (1-based)."""

    index: int
    spec: ModelSpec
    module_hash: str
    budget: int
    repeat: int


def work_units(specs: Sequence[ModelSpec], budgets: Sequence[int] = C.BUDGETS, num_repeats: int = 3) -> list[WorkUnit]:
    """All units in the original's order (cells sorted by hash; repeat-major within a budget).

    Raises:
      ConfigError: empty specs, duplicate cells, non-positive budgets or repeats.
    """
    if not specs or num_repeats < 1 or not budgets or min(budgets) <= 0:
        raise ConfigError(f"need cells, positive budgets and repeats; got {len(specs)} cells, {budgets}, {num_repeats}")
    keyed = sorted(((s.hash_spec(), s) for s in specs), key=lambda kv: kv[0])
    hashes = [h for h, _ in keyed]
    if len(set(hashes)) != len(hashes):
        raise ConfigError("the cells contain duplicates (isomorphic cells share a hash)")
    units, k = [], len(keyed)
    for budget in sorted(budgets):
        for i in range(k * num_repeats):
            h, spec = keyed[i % k]
            units.append(WorkUnit(len(units), spec, h, int(budget), i // k + 1))
    return units


def worker_units(units: Sequence[WorkUnit], worker_id: int, num_workers: int) -> list[WorkUnit]:
    """The units of one worker: index ≡ worker_id (mod num_workers), ascending."""
    if num_workers < 1 or not 0 <= worker_id < num_workers:
        raise ConfigError(f"worker_id must be in [0, {num_workers}), got {worker_id}")
    return [u for u in units if u.index % num_workers == worker_id]


def unit_dir(output_dir: str | os.PathLike, unit: WorkUnit) -> str:
    """``output_dir/<hash[:2]>/<hash>/epochs_<E>/repeat_<r>`` (the original's layout plus the budget)."""
    return os.path.join(os.fspath(output_dir), unit.module_hash[:2], unit.module_hash,
                        f"epochs_{unit.budget}", f"repeat_{unit.repeat}")


def unit_seed(base_seed: int, unit: WorkUnit) -> int:
    """An explicit per-run seed from (base seed, cell hash, budget, repeat): runs differ, reruns agree."""
    digest = hashlib.sha256(f"{base_seed}/{unit.module_hash}/{unit.budget}/{unit.repeat}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


def run_worker(units: Sequence[WorkUnit], config: Any, output_dir: str | os.PathLike, *, worker_id: int = 0,
               num_workers: int = 1, dataset: input_pipeline.Dataset | None = None, devices=None,
               show_progress: bool = True) -> list[tuple[WorkUnit, dict]]:
    """Train this worker's units (skipping finished ones) and return ``(unit, record dict)`` pairs.

    Args:
      units: from :func:`work_units` (all of them; this worker's share is selected here).
      config: the training config; ``train_epochs`` and ``seed`` are set per unit.
      output_dir: root of the per-unit work directories.
      worker_id, num_workers: this worker's place.
      dataset: loaded once and shared by all units (default: ``load_dataset(config)``).
      devices: local devices for every unit (default: ``config.num_devices``).
      show_progress: tqdm over units.

    Returns:
      One ``(unit, TrainingRecord.to_dict())`` per unit of this worker.
    """
    from tqdm.auto import tqdm

    mine = worker_units(units, worker_id, num_workers)
    if dataset is None:
        dataset = input_pipeline.load_dataset(config)
    results = []
    for unit in tqdm(mine, desc=f"worker {worker_id}/{num_workers}", unit="run", disable=not show_progress):
        workdir = unit_dir(output_dir, unit)
        done = os.path.join(workdir, RESULTS_FILE)
        if os.path.exists(done):
            with open(done) as f:
                results.append((unit, json.load(f)))
            continue
        c = config.copy_and_resolve_references()
        c.train_epochs = unit.budget
        c.seed = unit_seed(int(config.seed), unit)
        record: TrainingRecord = train_and_evaluate(unit.spec, c, workdir, devices=devices, dataset=dataset,
                                                    write_metrics=False)
        results.append((unit, record.to_dict()))
    return results


def write_shard(results: Sequence[tuple[WorkUnit, dict]], config: Any, path: str | os.PathLike, *,
                budgets: Sequence[int] = C.BUDGETS, num_repeats: int = 3):
    """Write the results of one worker as a store shard (atomic; merge shards with ``merge_stores``).

    Returns:
      The :class:`nasbench_jax.store.Store` written.

    Raises:
      ConfigError: a unit's budget or repeat is outside ``budgets`` / ``num_repeats``.
    """
    from nasbench_jax import space, store

    budgets = [int(b) for b in budgets]
    cells: dict[str, int] = {}
    rows, params = [], []
    for unit, rec in results:
        if unit.module_hash not in cells:
            cells[unit.module_hash] = len(rows)
            rows.append(unit)
            params.append(int(rec["trainable_parameters"]))
    n = len(rows)
    metrics = {m: np.full((n, len(budgets), num_repeats), np.nan, np.float32) for m in store.METRIC_NAMES}
    synthetic = False
    for unit, rec in results:
        if unit.budget not in budgets or not 1 <= unit.repeat <= num_repeats:
            raise ConfigError(f"unit budget {unit.budget} / repeat {unit.repeat} not in {budgets} x {num_repeats}")
        synthetic |= bool(rec.get("synthetic", False))
        row, b, r = cells[unit.module_hash], budgets.index(unit.budget), unit.repeat - 1
        for when, ev in (("halfway", rec["evaluations"][1]), ("final", rec["evaluations"][-1])):
            for what in ("train_accuracy", "validation_accuracy", "test_accuracy", "training_time"):
                metrics[f"{when}_{what}"][row, b, r] = ev[what]
    if not n:
        raise ConfigError("no results to write")
    encoded = space.encode([u.spec for u in rows])
    s = store.make_store(
        adjacency=encoded.adjacency, operations=encoded.operations, num_vertices=encoded.num_vertices,
        module_hash=[u.module_hash for u in rows], trainable_parameters=params, metrics=metrics,
        budgets=budgets, num_repeats=num_repeats, synthetic=synthetic,
        provenance={"writer": "train.runner", "units": len(results)},
        training_config=config.to_dict() if hasattr(config, "to_dict") else None,
    )
    store.write_store(path, s)
    return s
