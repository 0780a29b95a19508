"""Train and evaluate one cell with the NAS-Bench-101 protocol (reference spec §6).

::

    from configs import cpu_tiny
    from nasbench_jax import ModelSpec
    from train.train import train_and_evaluate

    spec = ModelSpec([[0, 1, 1], [0, 0, 1], [0, 0, 0]], ["input", "conv3x3-bn-relu", "output"])
    record = train_and_evaluate(spec, cpu_tiny.get_config(), "/tmp/run")
    record.final.validation_accuracy

The run follows ``_TrainAndEvaluator.run`` (§6.4): an initialisation step at learning rate 0
(global step 0: weights unchanged, BN moving averages and the RMSProp ``ms`` slot updated),
evaluation 0, training to ``int(0.5·E·N/B)`` steps, evaluation, training to ``int(E·N/B)``,
evaluation. Each evaluation records train/validation/test accuracy (argmax accuracy over the
first ``eval_size`` images, BN in inference mode) and the cumulative measured training time.

**Data parallelism.** One wrapper (:func:`_parallel_steps`) ``pmap``s the per-device step over
the chosen local devices with the axis name :data:`AXIS`; gradients and metrics are ``pmean``ed,
the train state is donated. Each device normalises with the batch statistics of its own
sub-batch and keeps its own BN moving averages (like the original's TPU shards, §6.3). For
evaluation the moving averages are **averaged over devices** (``pmean``) — one deterministic
choice; with one device it is the identity. Multi-host: every process feeds its slice of each
global batch, and ``jax.distributed.initialize()`` is called when ``config.distributed`` is set.

**Resume.** orbax ``CheckpointManager`` saves the full state (parameters and optimiser state from
device 0, the per-device BN statistics of every local device), the measured training time and
the completed evaluations, every ``checkpoint_every_steps`` and at every evaluation. Data order
and augmentation are pure functions of ``(seed, step)``, so a run killed at any moment and
restarted in the same workdir finishes with exactly the metrics of an uninterrupted run.

**Training time** (§6.6) is the wall-clock time of training segments only: steps are compiled
ahead of time, and evaluation, checkpointing and logging happen between timed segments.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import os
import time
from typing import Any, Callable, Sequence

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from nasbench_jax._io import atomic_write
from nasbench_jax.errors import ConfigError, NASBenchError
from nasbench_jax.spec import ModelSpec
from train import input_pipeline, optim

__all__ = [
    "AXIS",
    "EvaluationRecord",
    "TrainingRecord",
    "TrainState",
    "WorkdirError",
    "train_and_evaluate",
    "select_devices",
    "load_checkpoint",
    "use_compilation_cache",
]

log = logging.getLogger(__name__)

#: The pmap axis name, defined once.
AXIS = "devices"
RESULTS_FILE = "results.json"
CHECKPOINT_DIR = "checkpoints"


class WorkdirError(NASBenchError, OSError):
    """The work directory cannot be created or written, or holds a different run."""


@flax.struct.dataclass
class TrainState:
    """Per-device training state (a pytree; under pmap every leaf has a leading device axis).

    Attributes:
      step: int32 scalar, the global step (number of updates done, init step included).
      params: float32 parameters.
      batch_stats: BN moving averages (differ between devices).
      opt_state: the :func:`train.optim.make_optimizer` state.
    """

    step: jax.Array
    params: Any
    batch_stats: Any
    opt_state: Any


@dataclasses.dataclass(frozen=True)
class EvaluationRecord:
    """One evaluation (§6.7). Accuracies are ``float32(k)/float32(n)`` as in the original."""

    epochs: float
    training_steps: int
    training_time: float  # seconds of measured training (§6.6), cumulative
    train_accuracy: float
    validation_accuracy: float
    test_accuracy: float


@dataclasses.dataclass(frozen=True)
class TrainingRecord:
    """Everything one run records (§6.4 step 7, §6.9), plus provenance.

    Attributes:
      module_adjacency: the pruned matrix.
      module_operations: the pruned labels.
      trainable_parameters: number of trainable scalars of the trained network.
      evaluations: epoch 0, each intermediate fraction, and the final evaluation.
      total_time: wall-clock seconds of the whole loop (all sessions), evaluations included.
      dataset: dataset name (``cifar10``, ``cifar10-archive``, ``synthetic``).
      synthetic: True when trained on generated data (not CIFAR-10).
      num_devices: devices the global batch was split over (BN statistics per device).
      eval_images: images per evaluation split.
      time_limit_reached: training stopped at ``train_seconds`` (evaluations keep planned steps).
    """

    module_adjacency: list
    module_operations: list
    trainable_parameters: int
    evaluations: tuple
    total_time: float
    dataset: str
    synthetic: bool
    seed: int
    train_epochs: float
    batch_size: int
    num_devices: int
    eval_images: int
    time_limit_reached: bool = False

    @property
    def halfway(self) -> EvaluationRecord:
        """The evaluation at half the epochs (index 1)."""
        return self.evaluations[1]

    @property
    def final(self) -> EvaluationRecord:
        """The last evaluation."""
        return self.evaluations[-1]

    def to_dict(self) -> dict:
        """A JSON-ready dict (evaluations as a list of dicts)."""
        d = dataclasses.asdict(self)
        d["evaluations"] = [dataclasses.asdict(e) for e in self.evaluations]
        return d


# --------------------------------------------------------------------------------------------
# Validation helpers
# --------------------------------------------------------------------------------------------


def select_devices(config: Any, devices: Sequence[jax.Device] | None = None) -> list[jax.Device]:
    """The local devices to train on: ``devices`` if given, else the first ``config.num_devices``
    local devices (0 or missing = all).

    Raises:
      ConfigError: more devices requested than available, or a device that is not local.
    """
    local = jax.local_devices()
    if devices is not None:
        devices = list(devices)
        if not devices or any(d not in local for d in devices):
            raise ConfigError(f"devices must be a non-empty list of local devices, got {devices}")
        return devices
    n = int(config.get("num_devices", 0) or 0)
    if n < 0 or n > len(local):
        raise ConfigError(f"config.num_devices={n} but {len(local)} local devices are available")
    return local[:n] if n else local


def _check_config(config: Any, num_devices: int) -> tuple[int, int, list[tuple[int, float]], int]:
    """Returns (total_steps, per-device batch, [(evaluation step, fraction)], eval batches)."""
    for name in ("batch_size", "train_size", "eval_size", "checkpoint_every_steps", "log_every_steps"):
        value = config.get(name)
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ConfigError(f"config.{name} must be a positive integer, got {value!r}")
    epochs = config.get("train_epochs")
    if isinstance(epochs, bool) or not isinstance(epochs, (int, float)) or not epochs > 0:
        raise ConfigError(f"config.train_epochs must be positive, got {epochs!r}")
    batch = int(config.batch_size)
    global_devices = num_devices * jax.process_count()
    if batch % global_devices:
        raise ConfigError(
            f"global batch_size={batch} is not divisible by the {global_devices} devices"
            f" ({num_devices} local x {jax.process_count()} processes); choose a multiple of {global_devices}"
        )
    total = optim.total_steps(epochs, int(config.train_size), batch)
    if total < 2:
        raise ConfigError(f"int(train_epochs*train_size/batch_size) = {total}; need at least 2 steps")
    fractions = []
    for f in list(config.get("intermediate_evaluations", ["0.5"])) + [1.0]:
        try:
            f = float(f)
        except (TypeError, ValueError):
            raise ConfigError(f"config.intermediate_evaluations must hold fractions, got {f!r}") from None
        if not 0 < f <= 1:
            raise ConfigError(f"evaluation fraction {f} is not in (0, 1]")
        fractions.append(f)
    eval_points = sorted({(optim.halfway_steps(epochs, int(config.train_size), batch, f), f) for f in fractions})
    steps = [s for s, _ in eval_points]
    if steps[0] <= 1 or len(set(steps)) != len(steps):
        raise ConfigError(
            f"evaluation steps {steps} (fractions {sorted(fractions)} of {total} steps) must be distinct and > 1;"
            " train longer or use fewer intermediate evaluations"
        )
    eval_batches = int(config.eval_size) // batch
    if eval_batches == 0:
        raise ConfigError(f"eval_size={config.eval_size} is smaller than one batch ({batch})")
    jax.eval_shape(lambda: optim.learning_rate(1, 0.0, config, total_steps=total))  # validates, compiles nothing
    return total, batch // global_devices, eval_points, eval_batches


def _check_workdir(workdir: str) -> str:
    """Checks that ``workdir`` can be created/written WITHOUT creating anything yet."""
    path = os.path.abspath(os.fspath(workdir))
    if os.path.exists(path):
        if not os.path.isdir(path):
            raise WorkdirError(f"workdir {path} exists and is not a directory")
        if not os.access(path, os.W_OK | os.X_OK):
            raise WorkdirError(f"workdir {path} is not writable")
        return path
    parent = path
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent) or not os.access(parent, os.W_OK | os.X_OK):
        raise WorkdirError(f"cannot create workdir {path}: {parent} is not a writable directory")
    return path


def _atomic_write_json(path: str, obj: Any) -> None:
    with atomic_write(path, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=True)
        f.write("\n")


def use_compilation_cache(path: str | os.PathLike | None) -> str | None:
    """Turn on JAX's persistent compilation cache in ``path`` (``~`` expanded); returns the directory used.

    ``None`` or ``""`` does nothing. A cache directory the process already set (``JAX_COMPILATION_CACHE_DIR``
    or ``jax.config``) wins and is returned. Every compiled program is cached (minimum compile
    time 0): at the paper config the train step then loads in ~0.9 s instead of compiling in ~7 s.

    Raises:
      WorkdirError: the directory cannot be created.
    """
    current = jax.config.jax_compilation_cache_dir
    if current:
        return current
    if not path:
        return None
    path = os.path.abspath(os.path.expanduser(os.fspath(path)))
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as e:
        raise WorkdirError(f"cannot create the compilation cache directory {path}: {e}") from None
    jax.config.update("jax_compilation_cache_dir", path)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    return path


def _run_fingerprint(spec: ModelSpec, config: Any, dataset: input_pipeline.Dataset, num_devices: int) -> str:
    """Identifies what a checkpoint belongs to (resuming a different run is refused)."""
    skip = {"checkpoint_every_steps", "keep_checkpoints", "log_every_steps", "num_devices", "distributed",
            "compilation_cache_dir"}
    cfg = {k: v for k, v in config.to_dict().items() if k not in skip} if hasattr(config, "to_dict") else {}
    blob = json.dumps(
        [spec.hash_spec(), cfg, dataset.name, dataset.source, len(dataset.train), num_devices * jax.process_count()],
        sort_keys=True, default=str,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


# --------------------------------------------------------------------------------------------
# The data-parallel wrapper
# --------------------------------------------------------------------------------------------


def _parallel_steps(network: nn.Module, tx: optax.GradientTransformation, config: Any,
                    devices: Sequence[jax.Device]) -> tuple[Callable, Callable]:
    """The pmapped train and eval steps (the only place that knows about devices).

    Train step args (leading device axis on each): state, train images uint8[N,H,W,3] and labels
    int32[N] resident on every device, batch indices int32[b], stream positions int32[b],
    measured training time float32[]; then, the same for every device (no device axis), the
    augmentation key uint32[2] and the run's total step count int32[]. Returns (new state,
    metrics dict of scalars).

    The seed and the budget are arguments, not constants baked into the program: every repeat
    and every epoch budget of one cell lowers to the same program, so with the persistent
    compilation cache (``config.compilation_cache_dir``) a cell compiles once for all of its
    runs (12 in the paper: 4 budgets x 3 repeats) instead of once per run.

    Eval step args: state, images uint8[b,H,W,3], labels int32[b]. Returns the number of correct
    predictions summed over all devices (int32, same on every device).
    """
    weight_decay = float(config.weight_decay)

    def train_step(state: TrainState, images, labels, idx, pos, train_time_s, aug_key, total_steps):
        x = input_pipeline.augment(aug_key, pos, images[idx])
        y = labels[idx]

        def loss_fn(params):
            logits, mutated = network.apply(
                {"params": params, "batch_stats": state.batch_stats}, x, train=True, mutable=["batch_stats"]
            )
            ce = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
            return ce, (mutated["batch_stats"], logits)

        # The coupled L2's gradient (weight_decay * v) is added by the optimiser; the reported
        # loss includes the L2 term, as the original's does.
        (ce, (batch_stats, logits)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
        loss = ce + weight_decay * optim.l2_loss(state.params)
        grads = jax.lax.pmean(grads, AXIS)  # CrossShardOptimizer: mean over shards
        lr = optim.learning_rate(state.step, train_time_s, config, total_steps=total_steps)
        opt_state = optim.set_learning_rate(state.opt_state, lr)
        updates, opt_state = tx.update(grads, opt_state, state.params)
        new_state = state.replace(
            step=state.step + 1, params=optax.apply_updates(state.params, updates),
            batch_stats=batch_stats, opt_state=opt_state,
        )
        metrics = {
            "loss": jax.lax.pmean(loss, AXIS),
            "cross_entropy": jax.lax.pmean(ce, AXIS),
            "accuracy": jax.lax.pmean(jnp.mean((jnp.argmax(logits, -1) == y).astype(jnp.float32)), AXIS),
            "learning_rate": lr,
        }
        return new_state, metrics

    def eval_step(state: TrainState, images, labels):
        # BN moving averages differ per device: evaluate with their mean over devices.
        batch_stats = jax.lax.pmean(state.batch_stats, AXIS)
        logits = network.apply(
            {"params": state.params, "batch_stats": batch_stats}, input_pipeline.normalize(images), train=False
        )
        return jax.lax.psum(jnp.sum(jnp.argmax(logits, -1) == labels).astype(jnp.int32), AXIS)

    p_train = jax.pmap(train_step, axis_name=AXIS, devices=devices, donate_argnums=(0,),
                       in_axes=(0, 0, 0, 0, 0, 0, None, None))
    p_eval = jax.pmap(eval_step, axis_name=AXIS, devices=devices)
    return p_train, p_eval


# --------------------------------------------------------------------------------------------
# Checkpoints
# --------------------------------------------------------------------------------------------


def _to_host(state: TrainState) -> dict:
    """Device-0 parameters/optimiser state and every local device's BN statistics, as numpy."""
    # addressable_shards[0] is device 0's copy; indexing x[0] would compile a gather per shape.
    first = jax.tree.map(lambda x: np.asarray(x.addressable_shards[0].data)[0], (state.step, state.params, state.opt_state))
    return {
        "step": first[0],
        "params": first[1],
        "opt_state": first[2],
        "batch_stats": jax.tree.map(np.asarray, state.batch_stats),
    }


def _stacked(per_device: Sequence[Any], devices: Sequence[jax.Device]) -> jax.Array:
    """One array with a leading device axis from one host array per device (pmap's input layout)."""
    mesh = jax.sharding.Mesh(np.asarray(devices), (AXIS,))
    sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(AXIS))
    shards = [jax.device_put(np.asarray(x)[None], d) for x, d in zip(per_device, devices)]
    return jax.make_array_from_single_device_arrays((len(devices),) + np.shape(per_device[0]), sharding, shards)


def _replicate(tree: Any, devices: Sequence[jax.Device]) -> Any:
    """Copy every leaf to every device: leaves get a leading device axis."""
    return jax.tree.map(lambda x: _stacked([x] * len(devices), devices), tree)


def _shard(tree: Any, devices: Sequence[jax.Device]) -> Any:
    """Leaves already carry a leading device axis; put slice i on device i."""
    return jax.tree.map(lambda x: _stacked(list(np.asarray(x)), devices), tree)


def _from_host(tree: dict, devices: Sequence[jax.Device]) -> TrainState:
    step, params, opt_state = _replicate((tree["step"], tree["params"], tree["opt_state"]), devices)
    return TrainState(step=step, params=params, batch_stats=_shard(tree["batch_stats"], devices), opt_state=opt_state)


def _checkpoint_manager(directory: str, config: Any):
    import orbax.checkpoint as ocp

    options = ocp.CheckpointManagerOptions(
        max_to_keep=int(config.get("keep_checkpoints", 3)), create=True, save_interval_steps=1,
    )
    return ocp.CheckpointManager(directory, options=options, item_names=("state", "meta"))


def load_checkpoint(workdir: str | os.PathLike, step: int | None = None) -> tuple[dict, dict]:
    """Read a run's checkpoint without building anything (inspection, export, tests).

    Args:
      workdir: the ``train_and_evaluate`` work directory.
      step: which checkpoint (default: the latest).

    Returns:
      ``(state, meta)``: state has ``step``, ``params``, ``opt_state`` (device 0) and
      ``batch_stats`` (leading device axis) as numpy; meta has ``train_time_s``,
      ``evaluations``, ``num_devices``, ``fingerprint``.

    Raises:
      WorkdirError: no checkpoint in ``workdir``.
    """
    import orbax.checkpoint as ocp

    directory = os.path.join(os.path.abspath(os.fspath(workdir)), CHECKPOINT_DIR)
    if not os.path.isdir(directory):
        raise WorkdirError(f"no checkpoints in {workdir}")
    with ocp.CheckpointManager(directory, item_names=("state", "meta"),
                               options=ocp.CheckpointManagerOptions(read_only=True)) as manager:
        step = manager.latest_step() if step is None else step
        if step is None:
            raise WorkdirError(f"no checkpoints in {workdir}")
        out = manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(),
                                                            meta=ocp.args.JsonRestore()))
    return out["state"], out["meta"]


# --------------------------------------------------------------------------------------------
# train_and_evaluate
# --------------------------------------------------------------------------------------------


def train_and_evaluate(
    spec: ModelSpec,
    config: Any,
    workdir: str | os.PathLike,
    *,
    devices: Sequence[jax.Device] | None = None,
    dataset: input_pipeline.Dataset | None = None,
    network: nn.Module | None = None,
    show_progress: bool = False,
    write_metrics: bool = True,
) -> TrainingRecord:
    """Train ``spec`` with the paper's protocol; resume from ``workdir`` when it holds a checkpoint.

    Args:
      spec: the cell (a ``ModelSpec`` in the space).
      config: ConfigDict like ``configs/nasbench101.py`` (or ``cpu_tiny.py``).
      workdir: checkpoints, TensorBoard metrics and ``results.json`` go here.
      devices: local devices to use (default: ``config.num_devices`` of them, 0 = all).
      dataset: an already-loaded dataset (default: ``input_pipeline.load_dataset(config)``).
      network: a Flax module to train instead of ``build_network(spec, config)`` (experiments
        and tests; it must take ``(images, train=...)`` and may have ``batch_stats``).
      show_progress: show a tqdm progress bar.
      write_metrics: write TensorBoard-readable metrics with clu into ``workdir``.

    Returns:
      The :class:`TrainingRecord`; also written to ``workdir/results.json``.

    Raises:
      OutOfDomainError / SpecError: invalid spec.
      ConfigError: bad config (batch not divisible by the devices, unknown schedule, ...).
      DatasetError: missing or corrupt dataset.
      WorkdirError: ``workdir`` cannot be written or holds a different run.
      All of these are raised before anything is written.
    """
    wall_start = time.perf_counter()
    if config.get("distributed", False) and not jax.distributed.is_initialized():
        # Must run before anything touches a JAX backend (the coordinator comes from the
        # environment: Cloud TPU, SLURM, or JAX_COORDINATOR_ADDRESS / process id / count).
        jax.distributed.initialize()
    if not isinstance(spec, ModelSpec):
        raise ConfigError(f"spec must be a nasbench_jax.ModelSpec, got {type(spec).__name__}")
    devices = select_devices(config, devices)
    num_devices = len(devices)
    total_steps, per_device_batch, eval_points, eval_batches = _check_config(config, num_devices)
    if network is None:
        from nasbench_jax.model import build_network

        network = build_network(spec, config)  # validates the spec and the network fields
    workdir = _check_workdir(os.fspath(workdir))
    if dataset is None:
        dataset = input_pipeline.load_dataset(config)
    if len(dataset.train) != int(config.train_size):
        raise ConfigError(f"config.train_size={config.train_size} but the dataset has {len(dataset.train)} training images")
    for name in ("train_eval", "validation", "test"):
        if len(getattr(dataset, name)) < (int(config.eval_size) // int(config.batch_size)) * int(config.batch_size):
            raise ConfigError(f"config.eval_size={config.eval_size} but the dataset's {name} split has"
                              f" {len(getattr(dataset, name))} images")
    tag = " [SYNTHETIC DATA]" if dataset.synthetic else ""
    batch = int(config.batch_size)
    seed = int(config.seed)
    epochs = float(config.train_epochs)
    eval_images = eval_batches * batch
    fingerprint = _run_fingerprint(spec, config, dataset, num_devices)

    # ---- workdir, checkpoints, restore-or-init --------------------------------------------
    import orbax.checkpoint as ocp

    try:
        os.makedirs(workdir, exist_ok=True)
        manager = _checkpoint_manager(os.path.join(workdir, CHECKPOINT_DIR), config)
    except OSError as e:
        raise WorkdirError(f"cannot write workdir {workdir}: {e}") from None
    writer = None
    bar = None
    try:
        meta = {"fingerprint": fingerprint, "train_time_s": 0.0, "total_time_s": 0.0, "evaluations": [],
                "num_devices": num_devices, "time_limit_reached": False}
        latest = manager.latest_step()
        saved_meta = None
        if latest is not None:  # refuse a different run before building anything
            saved_meta = manager.restore(latest, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]
            if saved_meta.get("fingerprint") != fingerprint:
                raise WorkdirError(
                    f"workdir {workdir} holds a checkpoint of a different run (cell, config, dataset or device"
                    " count differ); use a fresh workdir"
                )

        # ---- model, optimiser, compiled steps -----------------------------------------------
        use_compilation_cache(config.get("compilation_cache_dir"))
        key = jax.random.PRNGKey(seed)
        init_key, aug_key = jax.random.fold_in(key, 0), jax.random.fold_in(key, 1)
        tx = optim.make_optimizer(config)
        size = dataset.image_size

        @jax.jit
        def init(k):
            variables = network.init(k, jnp.zeros((1, size, size, 3), jnp.float32), train=False)
            return variables, tx.init(variables["params"])

        variables, opt_state = jax.device_get(init(init_key))
        params = variables["params"]
        host_init = {
            "step": np.zeros((), np.int32),
            "params": jax.tree.map(np.asarray, params),
            "opt_state": jax.tree.map(np.asarray, opt_state),
            "batch_stats": jax.tree.map(lambda x: np.stack([np.asarray(x)] * num_devices),
                                        dict(variables.get("batch_stats", {}))),
        }
        trainable = int(sum(np.size(x) for x in jax.tree_util.tree_leaves(params)))

        if latest is not None:
            restored = manager.restore(latest, args=ocp.args.Composite(state=ocp.args.StandardRestore(host_init)))["state"]
            host_state, meta = restored, saved_meta
            log.info("resumed %s from step %d%s", workdir, latest, tag)
        else:
            host_state = host_init
        state = _from_host(host_state, devices)
        start_step = int(host_state["step"])
        previous_total_time = float(meta["total_time_s"])
        train_time_s = float(meta["train_time_s"])
        evaluations = [EvaluationRecord(**e) for e in meta["evaluations"]]

        p_train, p_eval = _parallel_steps(network, tx, config, devices)
        run_consts = (np.asarray(aug_key, np.uint32), np.int32(total_steps))  # a raw uint32[2] key
        images_dev, labels_dev = _replicate((dataset.train.images, dataset.train.labels), devices)
        pid, nproc = jax.process_index(), jax.process_count()
        local_batch = batch // nproc

        def local_slice(a: np.ndarray) -> np.ndarray:
            part = a[pid * local_batch:(pid + 1) * local_batch]
            return part.reshape((num_devices, per_device_batch) + part.shape[1:])

        def batch_args(step: int, time_s: float):
            idx, pos = input_pipeline.batch_indices(seed, step, batch, len(dataset.train))
            return (state, images_dev, labels_dev, local_slice(idx), local_slice(pos),
                    np.full((num_devices,), time_s, np.float32)) + run_consts

        compiled_train = None
        if start_step < total_steps:  # compiled ahead of time: compilation is excluded from training_time
            compiled_train = p_train.lower(*batch_args(start_step, train_time_s)).compile()

        def evaluate(split: input_pipeline.Split) -> float:
            correct = 0
            for b in range(eval_batches):
                sl = slice(b * batch, (b + 1) * batch)
                correct += int(np.asarray(p_eval(state, local_slice(split.images[sl]), local_slice(split.labels[sl])))[0])
            return float(np.float32(correct) / np.float32(eval_images))

        def evaluate_all(epochs_done: float, steps_done: int) -> EvaluationRecord:
            return EvaluationRecord(
                epochs=epochs_done, training_steps=steps_done, training_time=float(np.float32(train_time_s)),
                train_accuracy=evaluate(dataset.train_eval), validation_accuracy=evaluate(dataset.validation),
                test_accuracy=evaluate(dataset.test),
            )

        prefix = "synthetic/" if dataset.synthetic else ""
        if write_metrics:
            try:
                from clu import metric_writers  # TensorBoard writer: needs tensorflow + tensorboard
            except ImportError as e:
                log.warning("metrics not written to TensorBoard (%s); pip install 'nasbench-jax[tfds]'", e)
            else:
                writer = metric_writers.create_default_writer(workdir, just_logging=pid > 0, asynchronous=False)
        if writer is not None:
            if start_step == 0:
                writer.write_hparams({"dataset": dataset.name, "synthetic": dataset.synthetic, "seed": seed,
                                      "train_epochs": epochs, "batch_size": batch, "num_devices": num_devices})

        saved_total = {"s": previous_total_time}

        def save(step: int) -> None:
            if step in manager.all_steps():  # only after the time limit: more evaluations at the same step
                manager.wait_until_finished()
                manager.delete(step)
            saved_total["s"] = previous_total_time + time.perf_counter() - wall_start
            meta_now = dict(meta, train_time_s=train_time_s, evaluations=[dataclasses.asdict(e) for e in evaluations],
                            total_time_s=saved_total["s"])
            manager.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(_to_host(state)),
                                                       meta=ocp.args.JsonSave(meta_now)), force=True)

        # Evaluation schedule: index 0 after the init step, then each fraction (§6.4).
        planned = [(1, 0.0, 0)] + [(s, f * epochs, s) for s, f in eval_points]  # (target step, epochs, steps)
        limit = float(config.get("train_seconds", -1) or -1)
        time_limit_reached = bool(meta.get("time_limit_reached", False))

        from tqdm.auto import tqdm

        bar = tqdm(total=total_steps, initial=start_step, disable=not show_progress, unit="step",
                   desc=f"train {spec.hash_spec()[:8]}{tag}")
        step = start_step
        metrics = None
        for index, (target, epochs_at, steps_at) in enumerate(planned):
            if index < len(evaluations):
                continue  # evaluated before a restart
            while step < target and not time_limit_reached:
                boundary = min(target, (step // int(config.checkpoint_every_steps) + 1) * int(config.checkpoint_every_steps),
                               (step // int(config.log_every_steps) + 1) * int(config.log_every_steps))
                seg_start = time.perf_counter()
                seg_first = step
                while step < boundary:
                    state, metrics = compiled_train(*batch_args(step, train_time_s))
                    step += 1
                jax.block_until_ready(metrics)
                train_time_s += time.perf_counter() - seg_start
                bar.update(step - seg_first)
                if limit > 0 and train_time_s > limit:
                    time_limit_reached = True
                    log.warning("training-time limit %.0f s reached at step %d%s", limit, step, tag)
                if step % int(config.log_every_steps) == 0 and writer is not None:
                    m = {f"{prefix}train/{k}": float(np.asarray(v)[0]) for k, v in metrics.items()}
                    m[f"{prefix}train/training_time_s"] = train_time_s
                    writer.write_scalars(step, m)
                if step % int(config.checkpoint_every_steps) == 0 and step != target:
                    save(step)
            record = evaluate_all(epochs_at, steps_at)
            evaluations.append(record)
            log.info("step %d: %s%s", step, record, tag)
            if writer is not None:
                writer.write_scalars(step, {f"{prefix}eval/{k}": v for k, v in dataclasses.asdict(record).items()})
            meta["time_limit_reached"] = time_limit_reached
            save(step)
        manager.wait_until_finished()
    finally:
        if bar is not None:
            bar.close()
        if writer is not None:
            writer.flush()
            writer.close()
        manager.wait_until_finished()
        manager.close()

    result = TrainingRecord(
        module_adjacency=np.asarray(spec.matrix).tolist(), module_operations=list(spec.ops),
        trainable_parameters=trainable, evaluations=tuple(evaluations),
        # as saved with the final evaluation, so a rerun of a finished run reports the same total
        total_time=saved_total["s"],
        dataset=dataset.name, synthetic=dataset.synthetic, seed=seed, train_epochs=epochs, batch_size=batch,
        num_devices=num_devices * nproc, eval_images=eval_images, time_limit_reached=time_limit_reached,
    )
    if pid == 0:
        _atomic_write_json(os.path.join(workdir, RESULTS_FILE), result.to_dict())
    return result
