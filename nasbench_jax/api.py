"""Queries: the original ``NASBench`` API (drop-in) and batched, jit-able queries.

Drop-in use (change one import)::

    >>> from nasbench_jax import api
    >>> nb = api.NASBench(api.example_store_path(), seed=0)     # or an original .tfrecord
    >>> fixed, computed = nb.get_metrics_from_hash("ff91e10b9512cbe4efeec6bd926941a1")
    >>> fixed["trainable_parameters"], sorted(computed), len(computed[108])
    (3824576, [108], 3)
    >>> spec = api.ModelSpec(fixed["module_adjacency"], fixed["module_operations"])
    >>> nb.query(spec)["validation_accuracy"] in [r["final_validation_accuracy"] for r in computed[108]]
    True

Batched, inside ``jax.jit`` / ``vmap`` / ``lax.while_loop``::

    table = api.QueryTable.from_store(store)           # device arrays, sorted codes, labelled index
    res = api.query_cells(table, cells, key)           # raw (unpruned, maybe invalid) cells
    res = api.query_index(table, rows, key)            # store rows
    res.found, res.validation_accuracy, res.mean_test_accuracy, ...

Cells that are not in the space or not in the store come back with ``found=False`` and zeros
(never an exception). ``epochs`` and ``stop_halfway`` are static (Python) arguments.

Differences from the original ``nasbench.api.NASBench`` (reference spec §7.4–7.5), all
documented choices:

* The repeat index is drawn from a private ``random.Random(seed)``; the sequence of indices
  equals the original's (which seeds and draws from the *global* ``random``), and Python's
  global random state is never touched.
* Lookups use the exact canonical code of the pruned spec instead of the MD5 hash (same
  partition of the space, no MD5 per query); an unknown cell still raises ``KeyError`` with
  the original module hash.
* On stores with partial data (e.g. the shipped example store) a repeat is "present" at a
  budget when any of its eight metrics is; ``query`` draws among the present repeats
  (``randint(0, present - 1)``, identical to the original for complete data), absent values
  are NaN, and a NaN training time is not added to the budget counter. A budget without any
  present repeat is absent from ``computed_statistics`` (``query`` raises ``KeyError`` like the
  original would).
"""

from __future__ import annotations

import os
import random
from collections.abc import Mapping
from typing import Iterator

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

from nasbench_jax import constants as C
from nasbench_jax import store as _store
from nasbench_jax.errors import CellArrayError, CellArrayTypeError, OutOfDomainError
from nasbench_jax.spec import ModelSpec, check_spec
from nasbench_jax.spec import is_valid as _is_valid

__all__ = [
    "NASBench",
    "ModelSpec",
    "OutOfDomainError",
    "QueryTable",
    "QueryResult",
    "query_cells",
    "query_index",
    "best_mean_accuracy",
    "lookup_cells",
    "pruned_labelled_code",
    "example_store_path",
]

example_store_path = _store.example_store_path

_OP_LABEL = {C.INPUT: C.INPUT_LABEL, C.OUTPUT: C.OUTPUT_LABEL}
_OP_LABEL.update({op: i for i, op in enumerate(C.AVAILABLE_OPS)})
_LABEL_OP = {C.INPUT_LABEL: C.INPUT, C.OUTPUT_LABEL: C.OUTPUT}
_LABEL_OP.update({i: op for i, op in enumerate(C.AVAILABLE_OPS)})
_REPEAT_KEYS = (
    "halfway_training_time",
    "halfway_train_accuracy",
    "halfway_validation_accuracy",
    "halfway_test_accuracy",
    "final_training_time",
    "final_train_accuracy",
    "final_validation_accuracy",
    "final_test_accuracy",
)
_QUERY_FIELDS = ("training_time", "train_accuracy", "validation_accuracy", "test_accuracy")
_MEMO_LIMIT = 1 << 20


def _spec_code(matrix: np.ndarray, ops) -> int:
    """Canonical code of one pruned, checked spec (host numpy; a few microseconds)."""
    v = matrix.shape[0]
    edge, opw = _store._TABLES[v]
    s = v * (v - 1) // 2
    bits = matrix[_store._SLOT_X[:s], _store._SLOT_Y[:s]].astype(np.float64)
    labs = np.array([_OP_LABEL[o] for o in ops], np.float64)
    best = (bits @ edge * 256.0 + labs @ opw).min()
    return (v << 29) | int(best)


def _load_any(path) -> tuple[_store.Store, np.ndarray | None]:
    """Open an ``.npz`` store, or import an original ``.tfrecord`` (returns file order too)."""
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except FileNotFoundError:
        raise _store.StoreFormatError(f"{path}: no such file") from None
    if head == b"PK\x03\x04":
        return _store.open_store(path), None
    from nasbench_jax import tfrecord  # noqa: PLC0415

    return tfrecord.read_dataset(path, return_file_order=True)


class NASBench:
    """Drop-in replacement for ``nasbench.api.NASBench`` over a store or an original file.

    Args:
      dataset_file: an ``.npz`` store or an original ``.tfrecord`` (imported in memory).
      seed: seed of the private generator that draws repeat indices (``None``: system entropy,
        like the original). ``NASBench(f, seed=s)`` draws the same index sequence as the
        original API built with ``seed=s``.

    Attributes:
      valid_epochs: set of budgets with data (``{4, 12, 36, 108}`` or ``{108}``).
      fixed_statistics, computed_statistics: read-only mappings hash -> fresh dicts.
      training_time_spent, total_epochs_spent: the budget counters.
      store: the underlying :class:`~nasbench_jax.store.Store`.

    Raises:
      StoreError / TFRecordError: the file cannot be read (the message names it).
    """

    def __init__(self, dataset_file, seed: int | None = None):
        if isinstance(dataset_file, _store.Store):
            self.store, order = dataset_file, None
        else:
            self.store, order = _load_any(dataset_file)
        s = self.store
        self._rng = random.Random(seed)
        self._order = order
        self._budgets = [int(b) for b in s.budgets]
        self._bidx = {b: i for i, b in enumerate(self._budgets)}
        present = np.zeros(s.final_training_time.shape, bool)
        for m in _store.METRIC_NAMES:
            present |= ~np.isnan(getattr(s, m))
        self._present = present  # bool[N, B, R]
        self._complete = present.all(axis=2)  # bool[N, B]: every repeat present
        self._num_repeats = s.num_repeats
        any_b = present.any(axis=(0, 2))
        self.valid_epochs = set()
        for b, ok in zip(self._budgets, any_b):
            if ok:
                self.valid_epochs.add(b)
        self._metrics = {m: getattr(s, m) for m in _store.METRIC_NAMES}
        self._memo: dict = {}
        self._hash_sorted: tuple[np.ndarray, np.ndarray] | None = None
        self.config = {
            "module_vertices": C.MAX_VERTICES,
            "max_edges": C.MAX_EDGES,
            "available_ops": list(C.AVAILABLE_OPS),
            "num_repeats": s.num_repeats,
            "training_config": s.metadata.get("training_config"),
        }
        self.history: dict = {}
        self.training_time_spent = 0.0
        self.total_epochs_spent = 0
        self.fixed_statistics = _StatsView(self, 0)
        self.computed_statistics = _StatsView(self, 1)

    # -- lookups ---------------------------------------------------------------------------
    def _row_of_spec(self, spec) -> int:
        spec = _as_spec(spec)
        check_spec(spec)
        m = spec.matrix
        key = (m.tobytes(), m.shape[0], tuple(spec.ops))
        row = self._memo.get(key)
        if row is None:
            code = _spec_code(m, spec.ops)
            codes = self.store.canonical_code
            # search with a uint32 scalar: a Python int would make numpy cast the whole column
            pos = int(np.searchsorted(codes, np.uint32(code)))
            row = pos if pos < codes.shape[0] and int(codes[pos]) == code else -1
            if len(self._memo) >= _MEMO_LIMIT:
                self._memo.clear()
            self._memo[key] = row
        if row < 0:
            raise KeyError(spec.hash_spec())
        return row

    def _row_of_hash(self, module_hash) -> int:
        if self._hash_sorted is None:
            order = np.argsort(self.store.module_hash, kind="stable")
            self._hash_sorted = (np.asarray(self.store.module_hash)[order], order)
        hashes, order = self._hash_sorted
        if isinstance(module_hash, str):
            key = module_hash.encode("ascii", "replace")
        elif isinstance(module_hash, bytes):
            key = module_hash
        else:
            raise KeyError(module_hash)
        if len(key) != 32:
            raise KeyError(module_hash)
        pos = int(np.searchsorted(hashes, np.array(key, dtype="S32")))
        if pos >= hashes.shape[0] or hashes[pos] != key:
            raise KeyError(module_hash)
        return int(order[pos])

    def _fixed(self, row: int) -> dict:
        s = self.store
        v = int(s.num_vertices[row])
        return {
            "module_adjacency": np.array(s.adjacency[row, :v, :v], dtype=np.int8),
            "module_operations": [_LABEL_OP[x] for x in s.operations[row, :v].tolist()],
            "trainable_parameters": int(s.trainable_parameters[row]),
        }

    def _computed(self, row: int) -> dict:
        out = {}
        for b, bi in self._bidx.items():
            reps = np.nonzero(self._present[row, bi])[0]
            if reps.size == 0:
                continue
            vals = {k: self._metrics[k][row, bi] for k in _REPEAT_KEYS}
            out[b] = [{k: float(vals[k][r]) for k in _REPEAT_KEYS} for r in reps]
        return out

    # -- the original API ------------------------------------------------------------------
    def query(self, model_spec, epochs: int = 108, stop_halfway: bool = False) -> dict:
        """One run of ``model_spec`` trained for ``epochs``: a random repeat (original §7.5).

        Returns:
          dict with ``module_adjacency`` (np.int8 ``V x V``, the stored representative),
          ``module_operations`` (names), ``trainable_parameters``, ``training_time``,
          ``train_accuracy``, ``validation_accuracy``, ``test_accuracy`` (halfway values if
          ``stop_halfway``). Updates the budget counters.

        Raises:
          OutOfDomainError: ``epochs`` is not in ``valid_epochs`` or the spec is not in the
            space (the original's messages).
          KeyError: a valid spec whose cell is not in the store (message: its module hash).
        """
        if epochs not in self.valid_epochs:
            raise OutOfDomainError("invalid number of epochs, must be one of %s" % self.valid_epochs)
        row = self._row_of_spec(model_spec)
        bi = self._bidx[epochs]
        if self._complete[row, bi]:
            idx = self._rng.randint(0, self._num_repeats - 1)
        else:
            where = np.nonzero(self._present[row, bi])[0]
            if where.size == 0:
                raise KeyError(epochs)
            idx = int(where[self._rng.randint(0, where.size - 1)])
        pre = "halfway_" if stop_halfway else "final_"
        s = self.store
        v = int(s.num_vertices[row])
        m = self._metrics
        data = {
            "module_adjacency": np.array(s.adjacency[row, :v, :v], dtype=np.int8),
            "module_operations": [_LABEL_OP[x] for x in s.operations[row, :v].tolist()],
            "trainable_parameters": int(s.trainable_parameters[row]),
            "training_time": float(m[pre + "training_time"][row, bi, idx]),
            "train_accuracy": float(m[pre + "train_accuracy"][row, bi, idx]),
            "validation_accuracy": float(m[pre + "validation_accuracy"][row, bi, idx]),
            "test_accuracy": float(m[pre + "test_accuracy"][row, bi, idx]),
        }
        t = data["training_time"]
        if t == t:  # a NaN (absent) time is not added
            self.training_time_spent += t
        self.total_epochs_spent += epochs // 2 if stop_halfway else epochs
        return data

    def is_valid(self, model_spec) -> bool:
        """``True`` iff the spec is in the space (never touches the counters)."""
        return _is_valid(_as_spec(model_spec))

    def get_budget_counters(self) -> tuple[float, int]:
        """``(training_time_spent, total_epochs_spent)``."""
        return self.training_time_spent, self.total_epochs_spent

    def reset_budget_counters(self) -> None:
        """Set the budget counters back to ``(0.0, 0)``."""
        self.training_time_spent = 0.0
        self.total_epochs_spent = 0

    def hash_iterator(self) -> list[str]:
        """All module hashes (file order for a ``.tfrecord``, store order for a store)."""
        h = self.store.module_hash
        rows = self._order if self._order is not None else range(h.shape[0])
        return [h[i].decode("ascii") for i in rows]

    def get_metrics_from_hash(self, module_hash: str) -> tuple[dict, dict]:
        """Fresh copies of ``(fixed_statistics[h], computed_statistics[h])``.

        ``computed`` is ``{epochs: [repeat dicts with the 8 halfway_/final_ keys]}``.

        Raises:
          KeyError: unknown hash.
        """
        row = self._row_of_hash(module_hash)
        return self._fixed(row), self._computed(row)

    def get_metrics_from_spec(self, model_spec) -> tuple[dict, dict]:
        """Validate ``model_spec`` and return the metrics of its cell (no counters touched).

        Raises:
          OutOfDomainError: the spec is not in the space.
          KeyError: the cell is not in the store.
        """
        row = self._row_of_spec(model_spec)
        return self._fixed(row), self._computed(row)

    def evaluate(self, model_spec, model_dir):  # pragma: no cover - training lives elsewhere
        """Not provided here: train with ``nasbench-jax train`` (``train.train_and_evaluate``)."""
        raise NotImplementedError("NASBench.evaluate: use `nasbench-jax train` / train.train.train_and_evaluate")

    # -- extras ----------------------------------------------------------------------------
    def row_of_spec(self, model_spec) -> int:
        """Store row of a spec's cell (``OutOfDomainError`` / ``KeyError`` as ``query``)."""
        return self._row_of_spec(model_spec)

    def __len__(self) -> int:
        return self.store.num_cells


class _StatsView(Mapping):
    """Read-only mapping hash -> fresh fixed (0) or computed (1) statistics."""

    def __init__(self, nb: NASBench, which: int):
        self._nb = nb
        self._which = which

    def __getitem__(self, module_hash):
        row = self._nb._row_of_hash(module_hash)
        return self._nb._fixed(row) if self._which == 0 else self._nb._computed(row)

    def __iter__(self) -> Iterator[str]:
        return iter(self._nb.hash_iterator())

    def __len__(self) -> int:
        return self._nb.store.num_cells

    def __contains__(self, module_hash) -> bool:
        try:
            self._nb._row_of_hash(module_hash)
        except KeyError:
            return False
        return True


def _as_spec(spec) -> ModelSpec:
    if isinstance(spec, ModelSpec):
        return spec
    if hasattr(spec, "original_matrix") and hasattr(spec, "original_ops"):  # the original's ModelSpec
        return ModelSpec(np.asarray(spec.original_matrix), list(spec.original_ops))
    raise TypeError(f"expected a ModelSpec, got {type(spec).__name__}")


# ----------------------------------------------------------------------------------------
# Batched, jit-able queries
# ----------------------------------------------------------------------------------------

@flax.struct.dataclass
class QueryTable:
    """A store's query columns as device arrays (a pytree; pass it into ``jit``).

    Attributes:
      codes: ``uint32[N]`` sorted canonical codes.
      final, halfway: ``float32[N, B, R, 4]`` (train, validation, test accuracy, training
        time) per repeat; NaN where absent.
      mean_final, mean_halfway: ``float32[N, B, 2]`` mean validation / test accuracy over the
        present repeats (NaN if none).
      repeat_count: ``int32[N, B]`` present repeats; repeat_order: ``int32[N, B, R]`` their
        indices first.
      trainable_parameters: ``int32[N]``.
      lookup_base, lookup_rows: a direct-address index of every upper-triangular labelling of
        every cell (:func:`~nasbench_jax.store.labelled_code_table`; 1,293,208 labellings for
        the full space). A pruned cell's labelled code ``V << 29 | A << 8 | O`` is found as
        ``lookup_rows[lookup_base[OFFSET[V] + A] + O]`` (``lookup_base`` is -1 for adjacency
        patterns without cells; ``int32[2**1 + 2**3 + ... + 2**21]`` and ``int32[243 K]`` for
        ``K`` patterns): two gathers, no minimum over 120 relabelings and no binary search.
        Empty to look up canonical codes with ``graph.canonicalize`` instead.
      budgets: static tuple of the ``B`` epoch budgets.
    """

    codes: jax.Array
    final: jax.Array
    halfway: jax.Array
    mean_final: jax.Array
    mean_halfway: jax.Array
    repeat_count: jax.Array
    repeat_order: jax.Array
    trainable_parameters: jax.Array
    lookup_base: jax.Array
    lookup_rows: jax.Array
    budgets: tuple = flax.struct.field(pytree_node=False)

    @classmethod
    def from_store(cls, store, *, labelled: bool = True) -> "QueryTable":
        """Build from a :class:`~nasbench_jax.store.Store` or a store path.

        Args:
          store: the store.
          labelled: build the labelled-code lookup (a few seconds of numpy and 10 MB for the
            full space; raw-cell queries several times faster). ``False``: canonical codes.
        """
        if not isinstance(store, _store.Store):
            store = _store.open_store(store)
        if labelled:
            base, lrows = _direct_index(*_store.labelled_code_table(store.adjacency, store.operations,
                                                                     store.num_vertices))
        else:
            base, lrows = np.zeros(0, np.int32), np.zeros(0, np.int32)
        present = np.zeros(store.final_training_time.shape, bool)
        for m in _store.METRIC_NAMES:
            present |= ~np.isnan(getattr(store, m))
        order = np.argsort(~present, axis=2, kind="stable").astype(np.int32)
        count = present.sum(axis=2).astype(np.int32)

        def stack(pre):
            return np.stack([np.asarray(getattr(store, f"{pre}_{k}")) for k in _QUERY_FIELDS[1:] + _QUERY_FIELDS[:1]], -1)

        def means(pre):
            with np.errstate(invalid="ignore"):
                out = []
                for k in ("validation_accuracy", "test_accuracy"):
                    a = np.asarray(getattr(store, f"{pre}_{k}"), np.float64)
                    cnt = (~np.isnan(a)).sum(axis=2)
                    tot = np.nansum(a, axis=2)
                    out.append(np.where(cnt > 0, tot / np.maximum(cnt, 1), np.nan))
            return np.stack(out, -1).astype(np.float32)

        params = np.asarray(store.trainable_parameters)
        return cls(
            codes=jnp.asarray(store.canonical_code),
            final=jnp.asarray(stack("final")),
            halfway=jnp.asarray(stack("halfway")),
            mean_final=jnp.asarray(means("final")),
            mean_halfway=jnp.asarray(means("halfway")),
            repeat_count=jnp.asarray(count),
            repeat_order=jnp.asarray(order),
            trainable_parameters=jnp.asarray(np.clip(params, -(2**31), 2**31 - 1).astype(np.int32)),
            lookup_base=jnp.asarray(base),
            lookup_rows=jnp.asarray(lrows),
            budgets=tuple(int(b) for b in store.budgets),
        )

    @property
    def num_cells(self) -> int:
        return int(self.codes.shape[0])

    def budget_index(self, epochs: int) -> int:
        """Static position of ``epochs`` in :attr:`budgets`.

        Raises:
          OutOfDomainError: no such budget (raised at trace time, with the original message).
        """
        if isinstance(epochs, jax.core.Tracer) or not isinstance(epochs, (int, np.integer)):
            raise TypeError(f"epochs must be a static Python int, got {type(epochs).__name__}")
        try:
            return self.budgets.index(int(epochs))
        except ValueError:
            raise OutOfDomainError(
                "invalid number of epochs, must be one of %s" % set(self.budgets)
            ) from None


@flax.struct.dataclass
class QueryResult:
    """Result of a batched query; every field has the batch shape ``[...]``.

    Attributes:
      found: bool — the cell is in the space, in the store and has data at ``epochs``.
      index: int32 store row, -1 where not found.
      train_accuracy, validation_accuracy, test_accuracy, training_time: float32 values of one
        repeat drawn uniformly (with the key) among the present repeats; 0.0 where not found
        (NaN where found but that metric is absent in the store).
      mean_validation_accuracy, mean_test_accuracy: float32 means over the present repeats;
        0.0 where not found.
      trainable_parameters: int32, 0 where not found.
    """

    found: jax.Array
    index: jax.Array
    train_accuracy: jax.Array
    validation_accuracy: jax.Array
    test_accuracy: jax.Array
    training_time: jax.Array
    mean_validation_accuracy: jax.Array
    mean_test_accuracy: jax.Array
    trainable_parameters: jax.Array


def query_index(table: QueryTable, index, key, *, epochs: int = 108, stop_halfway: bool = False) -> QueryResult:
    """Metrics of store rows ``index`` (``int[...]``); out-of-range rows are not found.

    Pure and jit-able; ``epochs`` / ``stop_halfway`` are static. One repeat per cell is drawn
    with ``key`` (``jax.random`` key).

    Raises:
      OutOfDomainError: ``epochs`` is not one of the table's budgets (at trace time).
    """
    b = table.budget_index(epochs)
    idx = jnp.asarray(index)
    if not jnp.issubdtype(idx.dtype, jnp.integer):
        raise CellArrayTypeError(f"index must be an integer array, got dtype {idx.dtype}")
    idx = idx.astype(jnp.int32)
    n = table.codes.shape[0]
    inb = (idx >= 0) & (idx < n)
    safe = jnp.where(inb, idx, 0)
    cnt = table.repeat_count[safe, b]
    found = inb & (cnt > 0)
    u = jax.random.uniform(key, idx.shape)
    r = jnp.clip(jnp.floor(u * cnt).astype(jnp.int32), 0, jnp.maximum(cnt - 1, 0))
    rep = table.repeat_order[safe, b, r]
    src = table.halfway if stop_halfway else table.final
    vals = src[safe, b, rep]  # [..., 4]
    means = (table.mean_halfway if stop_halfway else table.mean_final)[safe, b]  # [..., 2]
    zero = jnp.float32(0.0)
    vals = jnp.where(found[..., None], vals, zero)
    means = jnp.where(found[..., None], means, zero)
    return QueryResult(
        found=found,
        index=jnp.where(found, idx, -1),
        train_accuracy=vals[..., 0],
        validation_accuracy=vals[..., 1],
        test_accuracy=vals[..., 2],
        training_time=vals[..., 3],
        mean_validation_accuracy=means[..., 0],
        mean_test_accuracy=means[..., 1],
        trainable_parameters=jnp.where(found, table.trainable_parameters[safe], 0),
    )


def lookup_cells(table: QueryTable, cells) -> jax.Array:
    """Store rows of raw cells (``int32[...]``, -1 if not in the space or not in the store).

    ``cells`` is a :class:`~nasbench_jax.space.Cells` (or any ``(adjacency, operations,
    num_vertices)`` triple) of unpruned, possibly invalid cells with batch shape ``[...]``.
    """
    from nasbench_jax import graph  # noqa: PLC0415

    adj, ops, nv = _check_cells(cells)
    batch = nv.shape
    adj = adj.reshape((-1, C.MAX_VERTICES, C.MAX_VERTICES))
    ops = ops.reshape((-1, C.MAX_VERTICES))
    nv = nv.reshape((-1,))
    if table.lookup_base.shape[0]:
        codes, valid = pruned_labelled_code(adj, ops, nv)
        v = (codes >> 29).astype(jnp.int32)
        pattern = jnp.asarray(_PATTERN_OFFSET)[v] + ((codes >> 8) & jnp.uint32((1 << 21) - 1)).astype(jnp.int32)
        base = table.lookup_base.at[pattern].get(mode="clip")
        slot = jnp.maximum(base, 0) + (codes & jnp.uint32(0xFF)).astype(jnp.int32)
        row = table.lookup_rows.at[slot].get(mode="clip")
        return jnp.where(valid & (base >= 0), row, -1).astype(jnp.int32).reshape(batch)
    codes, valid = graph.canonicalize_traced(adj, ops, nv)
    codes = codes.astype(jnp.uint32)
    n = table.codes.shape[0]
    if n == 0:
        return jnp.full(batch, -1, jnp.int32)
    pos = jnp.searchsorted(table.codes, codes)
    pos_c = jnp.clip(pos, 0, n - 1)
    hit = valid & (pos < n) & (table.codes[pos_c] == codes)
    return jnp.where(hit, pos_c, -1).astype(jnp.int32).reshape(batch)


#: Start of each vertex count's adjacency patterns in ``QueryTable.lookup_base`` (a V-vertex
#: pruned cell uses the low ``V(V-1)/2`` of the 21 adjacency bits).
_PATTERN_OFFSET = np.zeros(C.MAX_VERTICES + 1, np.int32)
for _v in range(2, C.MAX_VERTICES):
    _PATTERN_OFFSET[_v + 1] = _PATTERN_OFFSET[_v] + (1 << (_v * (_v - 1) // 2))
_PATTERN_TOTAL = int(_PATTERN_OFFSET[C.MAX_VERTICES]) + (1 << C.NUM_EDGE_SLOTS)


def _direct_index(codes: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(lookup_base, lookup_rows)`` from labelled codes and their rows (see QueryTable)."""
    codes = np.asarray(codes, np.uint32)
    v = (codes >> 29).astype(np.int64)
    pattern = _PATTERN_OFFSET[v] + ((codes >> 8) & ((1 << 21) - 1)).astype(np.int64)
    uniq, pid = np.unique(pattern, return_inverse=True)
    base = np.full(_PATTERN_TOTAL, -1, np.int32)
    base[uniq] = np.arange(uniq.size, dtype=np.int32) * 243
    lrows = np.full(uniq.size * 243, -1, np.int32)
    lrows[pid * 243 + (codes & 0xFF).astype(np.int64)] = np.asarray(rows, np.int32)
    return base, lrows


# strict upper-triangular slots (x, y) and their bit in the original enumerator's order
_UX, _UY = np.triu_indices(C.MAX_VERTICES, 1)


def pruned_labelled_code(adjacency, operations, num_vertices):
    """Prune raw cells and encode the result as labelled codes, in one fused bitmask pass.

    Pure ``jnp`` (any leading shape ``[...]``), equivalent to ``graph.prune`` followed by
    ``graph.in_space`` and ``graph.labelled_code_traced`` on the pruned cell, but on 7-bit
    vertex masks: forward/backward reachability is 7 + 7 unrolled mask steps, the compaction
    rank of a vertex is a popcount, and each of the 21 edge slots moves to its pruned slot.

    Args:
      adjacency: ``[..., 7, 7]`` raw cells (``V x V`` top-left block, output at ``V - 1``).
      operations: ``[..., 7]`` labels; num_vertices: ``[...]``.

    Returns:
      ``(codes uint32[...], valid bool[...])``: ``V' << 29 | A << 8 | O`` of the pruned cell
      (``reference.encode_code``), and the original ``is_valid`` verdict. Malformed cells
      (entries other than 0/1, on or below the diagonal or outside the ``V x V`` block,
      ``V`` outside 2..7) are not valid. ``codes`` is 0 where not valid.
    """
    mv = C.MAX_VERTICES
    adj = jnp.asarray(adjacency)
    o = jnp.asarray(operations).astype(jnp.int32)
    nv = jnp.asarray(num_vertices).astype(jnp.int32)
    one = jnp.uint32(1)
    # out-neighbour mask of every vertex (bit w: edge v -> w); all work below is on [..., 7] masks
    out = adj[..., 0].astype(jnp.uint32)
    for w in range(1, mv):
        out = out | (adj[..., w].astype(jnp.uint32) << w)
    idx = jnp.arange(mv, dtype=jnp.uint32)
    nvu = jnp.clip(nv, 0, mv).astype(jnp.uint32)
    allowed = ((one << nvu)[..., None] - one) & ~((jnp.uint32(2) << idx) - one)  # v < w < V
    allowed = jnp.where(idx < nvu[..., None], allowed, 0)
    well_formed = jnp.all((out & ~allowed) == 0, axis=-1) & jnp.all(adj <= 1, axis=(-2, -1))
    well_formed = well_formed & (nv >= 2) & (nv <= mv)
    out = out & allowed
    fwd = jnp.ones(nv.shape, jnp.uint32)
    for v in range(mv):
        fwd = fwd | jnp.where((fwd >> v) & one, out[..., v], 0)
    last = jnp.clip(nv - 1, 0, mv - 1).astype(jnp.uint32)
    bwd = one << last
    for v in range(mv - 1, -1, -1):
        bwd = bwd | jnp.where((out[..., v] & bwd) != 0, one << v, 0)
    keep = fwd & bwd
    connected = ((fwd >> last) & one) == one
    rank = jax.lax.population_count(keep[..., None] & ((one << idx) - one))  # [..., 7]
    kept = ((keep[..., None] >> idx) & one) == one
    new_v = jax.lax.population_count(keep)
    bits = jnp.zeros(nv.shape, jnp.uint32)
    for x, y in zip(_UX.tolist(), _UY.tolist()):
        e = (out[..., x] >> y) & (keep >> x) & (keep >> y) & one
        rx, ry = rank[..., x], rank[..., y]
        bits = bits | (e << (rx + (ry * (ry - one)) // 2))
    interior = kept & (idx > 0) & (idx.astype(jnp.int32) < (nv - 1)[..., None])
    ops_ok = (o[..., 0] == C.INPUT_LABEL) & (jnp.take_along_axis(o, last[..., None].astype(jnp.int32), -1)[..., 0]
                                             == C.OUTPUT_LABEL)
    ops_ok = ops_ok & jnp.all(~interior | ((o >= 0) & (o < C.NUM_OPS)), axis=-1)
    weight = jnp.where(interior, jnp.uint32(3) ** jnp.clip(5 - rank.astype(jnp.int32), 0, 4).astype(jnp.uint32), 0)
    onum = jnp.sum(weight * jnp.clip(o, 0, 2).astype(jnp.uint32), axis=-1, dtype=jnp.uint32)
    valid = well_formed & connected & ops_ok & (jax.lax.population_count(bits) <= C.MAX_EDGES)
    codes = (new_v << 29) | (bits << 8) | onum
    return jnp.where(valid, codes, jnp.uint32(0)), valid


def query_cells(table: QueryTable, cells, key, *, epochs: int = 108, stop_halfway: bool = False) -> QueryResult:
    """Metrics of raw cells: prune + validity (``graph``), look up, gather.

    The lookup searches the pruned cell's labelled code in the table's labelled-code index
    (every upper-triangular labelling of every stored cell), or — for a table built with
    ``labelled=False`` — its canonical code (``graph.canonicalize``) in the sorted codes; the
    two give the same rows.

    Args:
      table: a :class:`QueryTable`.
      cells: :class:`~nasbench_jax.space.Cells` of RAW cells: ``adjacency [..., 7, 7]``,
        ``operations [..., 7]``, ``num_vertices [...]`` (integer dtypes).
      key: a ``jax.random`` key (one repeat is drawn per cell).
      epochs, stop_halfway: static.

    Returns:
      :class:`QueryResult` with the batch shape; invalid / unknown cells are ``found=False``.

    Raises:
      CellArrayError / CellArrayTypeError: wrong shapes or dtypes (at trace time).
      OutOfDomainError: ``epochs`` not a budget of the table.
    """
    table.budget_index(epochs)
    return query_index(table, lookup_cells(table, cells), key, epochs=epochs, stop_halfway=stop_halfway)


def best_mean_accuracy(table: QueryTable, epochs: int = 108, *, stop_halfway: bool = False):
    """``(best mean validation accuracy, best mean test accuracy)`` over the table's cells.

    Each is the maximum over cells of the mean over repeats (independently), the usual
    reference for regret (the paper's 108-epoch best mean test accuracy is 0.9432). Returns
    float32 scalars (jit-able).
    """
    b = table.budget_index(epochs)
    m = (table.mean_halfway if stop_halfway else table.mean_final)[:, b]
    m = jnp.where(jnp.isnan(m), -jnp.inf, m)
    return jnp.max(m[:, 0]), jnp.max(m[:, 1])


def _check_cells(cells):
    try:
        adj, ops, nv = cells
    except (TypeError, ValueError):
        raise CellArrayTypeError(
            f"cells must be a space.Cells (adjacency, operations, num_vertices), got {type(cells).__name__}"
        ) from None
    adj, ops, nv = jnp.asarray(adj), jnp.asarray(ops), jnp.asarray(nv)
    for name, a in (("adjacency", adj), ("operations", ops), ("num_vertices", nv)):
        if not (jnp.issubdtype(a.dtype, jnp.integer) or a.dtype == jnp.bool_):
            raise CellArrayTypeError(f"cells.{name} must be an integer array, got dtype {a.dtype}")
    mv = C.MAX_VERTICES
    if adj.shape[-2:] != (mv, mv) or ops.shape[-1:] != (mv,) or adj.shape[:-2] != nv.shape or ops.shape[:-1] != nv.shape:
        raise CellArrayError(
            f"cells must have adjacency [..., 7, 7], operations [..., 7], num_vertices [...] with one batch shape; "
            f"got {adj.shape}, {ops.shape}, {nv.shape}"
        )
    return adj.astype(jnp.uint8), ops.astype(jnp.int8), nv.astype(jnp.int32)
