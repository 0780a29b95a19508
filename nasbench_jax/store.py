"""The ``.npz`` results store: one row per cell, sorted by canonical code.

A store is a plain, uncompressed ``.npz`` archive (numpy only, no pickle) holding these
columns, ``N`` cells, ``B`` epoch budgets and ``R`` repeats:

==========================  =========================  ==========================================
column                      dtype / shape              meaning
==========================  =========================  ==========================================
``canonical_code``          ``uint32[N]``              exact isomorphism-canonical code (sorted,
                                                       unique; :mod:`nasbench_jax.graph.reference`)
``module_hash``             ``S32[N]``                 the original module hash (32 hex digits)
``adjacency``               ``uint8[N, 7, 7]``         the dataset's stored representative
``operations``              ``int8[N, 7]``             its labels (-1 in, 0..2 ops, -2 out, -3 pad)
``num_vertices``            ``int8[N]``                its vertex count ``V`` (2..7)
``trainable_parameters``    ``int32[N]`` / ``int64``   parameter count of the paper's network
``budgets``                 ``int32[B]``               epoch budgets, increasing (normally 4..108)
``{halfway,final}_{...}``   ``float32[N, B, R]``       ``train_accuracy``, ``validation_accuracy``,
                                                       ``test_accuracy``, ``training_time`` (s);
                                                       NaN where a run is absent
``metadata``                0-d unicode array          JSON: schema version, budgets, repeats,
                                                       provenance, synthetic flag, training config
==========================  =========================  ==========================================

Usage::

    >>> from nasbench_jax import store as st
    >>> s = st.open_store(st.example_store_path())        # memory-mapped, milliseconds
    >>> s.num_cells, s.budgets.tolist(), s.num_repeats
    (1052, [4, 12, 36, 108], 3)

:func:`write_store` is atomic (temp file in the same directory, then ``os.replace``);
:func:`open_store` memory-maps the members of an uncompressed archive (so opening the
423,624-cell store takes milliseconds and touches almost no memory) and checks the schema;
:func:`verify_store` checks the content; :func:`merge_stores` combines worker shards.
"""

from __future__ import annotations

import dataclasses
import io
import itertools
import json
import math
import mmap
import os
import struct
import zipfile
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from nasbench_jax._io import atomic_write
from nasbench_jax import constants as C
from nasbench_jax.errors import NASBenchError

__all__ = [
    "SCHEMA_VERSION",
    "METRIC_NAMES",
    "COLUMNS",
    "Store",
    "StoreError",
    "StoreFormatError",
    "StoreSchemaError",
    "StoreConflictError",
    "make_store",
    "write_store",
    "open_store",
    "verify_store",
    "merge_stores",
    "host_canonical_codes",
    "labelled_code_table",
    "example_store_path",
]

#: Version of the column layout; bumped on any incompatible change.
SCHEMA_VERSION = 1
FORMAT_NAME = "nasbench-jax-store"

#: Metric columns, each ``float32[N, B, R]``.
METRIC_NAMES = tuple(
    f"{when}_{what}"
    for when in ("halfway", "final")
    for what in ("train_accuracy", "validation_accuracy", "test_accuracy", "training_time")
)
ACCURACY_NAMES = tuple(m for m in METRIC_NAMES if m.endswith("accuracy"))

_CELL_COLUMNS = (
    "canonical_code",
    "module_hash",
    "adjacency",
    "operations",
    "num_vertices",
    "trainable_parameters",
)
#: Every column of a store, in file order (``metadata`` is stored last).
COLUMNS = _CELL_COLUMNS + ("budgets",) + METRIC_NAMES + ("metadata",)


class StoreError(NASBenchError, ValueError):
    """A results store cannot be read, written, built or merged."""


class StoreFormatError(StoreError):
    """The file is not a store at all (not a zip/npz archive, truncated, corrupt)."""


class StoreSchemaError(StoreError):
    """The archive is an npz but not a valid store (version, columns, dtypes, shapes, order)."""


class StoreConflictError(StoreError):
    """Two stores disagree about the same cell (merge) or a store has duplicate cells."""


# ----------------------------------------------------------------------------------------
# The Store dataclass
# ----------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, eq=False)
class Store:
    """An in-memory (or memory-mapped) results store; one row per cell.

    Construct with :func:`make_store` (sorts rows, fills metadata) or :func:`open_store`.
    The constructor checks dtypes, shapes, the code order and the metadata, and raises
    :class:`StoreSchemaError` naming the problem.

    Attributes:
      canonical_code: ``uint32[N]``, strictly increasing.
      module_hash: ``S32[N]``, the original 32-hex-digit module hashes (ASCII bytes).
      adjacency: ``uint8[N, 7, 7]``; ``operations``: ``int8[N, 7]``; ``num_vertices``:
        ``int8[N]`` — the dataset's stored representative of each cell.
      trainable_parameters: ``int32[N]`` or ``int64[N]``.
      budgets: ``int32[B]``, strictly increasing epoch budgets.
      halfway_* / final_*: ``float32[N, B, R]`` metrics, NaN where absent (see METRIC_NAMES).
      metadata: dict with ``schema_version``, ``budgets``, ``num_repeats``, ``provenance``,
        ``synthetic``, ``training_config``.
    """

    canonical_code: np.ndarray
    module_hash: np.ndarray
    adjacency: np.ndarray
    operations: np.ndarray
    num_vertices: np.ndarray
    trainable_parameters: np.ndarray
    budgets: np.ndarray
    halfway_train_accuracy: np.ndarray
    halfway_validation_accuracy: np.ndarray
    halfway_test_accuracy: np.ndarray
    halfway_training_time: np.ndarray
    final_train_accuracy: np.ndarray
    final_validation_accuracy: np.ndarray
    final_test_accuracy: np.ndarray
    final_training_time: np.ndarray
    metadata: dict

    def __post_init__(self):
        _check_columns({c: getattr(self, c) for c in COLUMNS if c != "metadata"}, "store")
        _check_metadata(self.metadata, self.budgets, self.final_training_time.shape[2], "store")

    # -- shape helpers ---------------------------------------------------------------------
    @property
    def num_cells(self) -> int:
        return int(self.canonical_code.shape[0])

    @property
    def num_repeats(self) -> int:
        return int(self.final_training_time.shape[2])

    @property
    def metrics(self) -> dict[str, np.ndarray]:
        """The eight metric arrays by name (``float32[N, B, R]`` each)."""
        return {m: getattr(self, m) for m in METRIC_NAMES}

    @property
    def synthetic(self) -> bool:
        return bool(self.metadata.get("synthetic", False))

    def budget_index(self, epochs: int) -> int:
        """Position of ``epochs`` in :attr:`budgets`.

        Raises:
          StoreError: the store has no such budget.
        """
        hits = np.nonzero(self.budgets == int(epochs))[0]
        if hits.size == 0:
            raise StoreError(f"no budget of {epochs} epochs in this store (budgets = {self.budgets.tolist()})")
        return int(hits[0])

    def columns(self) -> dict[str, Any]:
        """All columns by name (``metadata`` as a dict)."""
        return {c: getattr(self, c) for c in COLUMNS}

    def take(self, rows) -> "Store":
        """A new store with the given rows (indices or a boolean mask; order is re-sorted)."""
        rows = np.asarray(rows)
        if rows.dtype == np.bool_:
            rows = np.nonzero(rows)[0]
        rows = np.unique(rows)  # sorted rows keep the code order
        cols = {c: np.ascontiguousarray(getattr(self, c)[rows]) for c in _CELL_COLUMNS + METRIC_NAMES}
        return Store(budgets=np.array(self.budgets), metadata=dict(self.metadata), **cols)

    def find_codes(self, codes) -> np.ndarray:
        """Rows of the given canonical codes, ``-1`` where absent (``int64[...]``)."""
        codes = np.asarray(codes, dtype=np.uint32)
        pos = np.searchsorted(self.canonical_code, codes)
        pos_c = np.minimum(pos, max(self.num_cells - 1, 0))
        hit = (pos < self.num_cells) & (self.canonical_code[pos_c] == codes) if self.num_cells else np.zeros(codes.shape, bool)
        return np.where(hit, pos_c, -1).astype(np.int64)


# ----------------------------------------------------------------------------------------
# Schema checks
# ----------------------------------------------------------------------------------------


def _fail(source: str, msg: str, cls=StoreSchemaError):
    raise cls(f"{source}: {msg}")


def _check_columns(cols: Mapping[str, np.ndarray], source: str) -> None:
    """Dtypes, shapes and code order of the array columns (not the metadata)."""

    def want(name, dtypes, ndim):
        a = cols[name]
        if not isinstance(a, np.ndarray):
            _fail(source, f"column '{name}' must be a numpy array, got {type(a).__name__}")
        if a.dtype not in [np.dtype(d) for d in dtypes]:
            _fail(source, f"column '{name}' has dtype {a.dtype}, expected {' or '.join(str(np.dtype(d)) for d in dtypes)}")
        if a.ndim != ndim:
            _fail(source, f"column '{name}' has shape {a.shape}, expected {ndim} dimension(s)")
        return a

    code = want("canonical_code", [np.uint32], 1)
    n = code.shape[0]
    want("module_hash", ["S32"], 1)
    want("adjacency", [np.uint8], 3)
    want("operations", [np.int8], 2)
    want("num_vertices", [np.int8], 1)
    want("trainable_parameters", [np.int32, np.int64], 1)
    budgets = want("budgets", [np.int32], 1)
    mv = C.MAX_VERTICES
    expect = {
        "module_hash": (n,),
        "adjacency": (n, mv, mv),
        "operations": (n, mv),
        "num_vertices": (n,),
        "trainable_parameters": (n,),
    }
    for name, shape in expect.items():
        if cols[name].shape != shape:
            _fail(source, f"column '{name}' has shape {cols[name].shape}, expected {shape} (N = {n} cells)")
    if budgets.shape[0] == 0 or np.any(budgets <= 0) or np.any(np.diff(budgets) <= 0):
        _fail(source, f"column 'budgets' must be positive and strictly increasing, got {budgets.tolist()}")
    r = None
    for m in METRIC_NAMES:
        a = want(m, [np.float32], 3)
        if a.shape[:2] != (n, budgets.shape[0]) or a.shape[2] < 1:
            _fail(source, f"column '{m}' has shape {a.shape}, expected ({n}, {budgets.shape[0]}, R)")
        if r is None:
            r = a.shape[2]
        elif a.shape[2] != r:
            _fail(source, f"column '{m}' has {a.shape[2]} repeats, other metrics have {r}")
    if n > 1:
        d = np.diff(code.astype(np.int64))
        bad = np.nonzero(d <= 0)[0]
        if bad.size:
            i = int(bad[0])
            what = "duplicate" if d[i] == 0 else "unsorted"
            _fail(
                source,
                f"column 'canonical_code' must be sorted and unique: {what} codes at rows {i} and {i + 1} "
                f"({int(code[i])}, {int(code[i + 1])})",
            )


def _check_metadata(meta: Any, budgets: np.ndarray, num_repeats: int, source: str) -> None:
    if not isinstance(meta, dict):
        _fail(source, f"metadata must be a dict, got {type(meta).__name__}")
    version = meta.get("schema_version")
    if version != SCHEMA_VERSION:
        _fail(source, f"unsupported schema version {version!r} (this library reads version {SCHEMA_VERSION})")
    if list(meta.get("budgets", [])) != budgets.tolist():
        _fail(source, f"metadata budgets {meta.get('budgets')} differ from the budgets column {budgets.tolist()}")
    if meta.get("num_repeats") != num_repeats:
        _fail(source, f"metadata num_repeats {meta.get('num_repeats')!r} differs from the metric arrays' {num_repeats}")
    if not isinstance(meta.get("synthetic"), bool):
        _fail(source, "metadata 'synthetic' must be true or false")


def _default_metadata(budgets, num_repeats, *, provenance=None, synthetic=False, training_config=None, extra=None):
    meta = {
        "format": FORMAT_NAME,
        "schema_version": SCHEMA_VERSION,
        "budgets": [int(b) for b in budgets],
        "num_repeats": int(num_repeats),
        "provenance": provenance if provenance is not None else [],
        "synthetic": bool(synthetic),
        "training_config": training_config,
    }
    if extra:
        meta.update(extra)
    return meta


# ----------------------------------------------------------------------------------------
# Building
# ----------------------------------------------------------------------------------------


def make_store(
    *,
    adjacency,
    operations,
    num_vertices,
    module_hash,
    trainable_parameters,
    metrics: Mapping[str, Any] | None = None,
    budgets: Sequence[int] = C.BUDGETS,
    num_repeats: int = C.NUM_REPEATS,
    canonical_code=None,
    provenance: Any = None,
    synthetic: bool = False,
    training_config: Any = None,
    metadata_extra: Mapping[str, Any] | None = None,
) -> Store:
    """Build a :class:`Store` from unsorted rows (sorted here by canonical code).

    Args:
      adjacency: ``uint8[N, 7, 7]`` stored representatives (pruned cells, padded).
      operations: ``int8[N, 7]`` labels; num_vertices: ``int[N]``.
      module_hash: ``N`` hashes (str or bytes, 32 hex digits).
      trainable_parameters: ``int[N]``.
      metrics: name -> ``float[N, B, R]`` for any subset of :data:`METRIC_NAMES`
        (missing ones are all NaN).
      budgets: the ``B`` epoch budgets, increasing. num_repeats: ``R``.
      canonical_code: ``uint32[N]`` if known; computed with :func:`host_canonical_codes` if not.
      provenance, synthetic, training_config, metadata_extra: metadata entries.

    Returns:
      The store, rows sorted by canonical code.

    Raises:
      StoreConflictError: two rows are the same cell (equal canonical codes).
      StoreSchemaError: bad shapes/dtypes or unknown metric names.
    """
    adjacency = np.asarray(adjacency, dtype=np.uint8)
    operations = np.asarray(operations, dtype=np.int8)
    num_vertices = np.asarray(num_vertices).astype(np.int8)
    n = adjacency.shape[0] if adjacency.ndim == 3 else -1
    module_hash = np.asarray(
        [h.encode("ascii") if isinstance(h, str) else bytes(h) for h in module_hash], dtype="S32"
    ).reshape(-1)
    params = np.asarray(trainable_parameters)
    params = params.astype(np.int32 if params.size == 0 or np.abs(params).max() < 2**31 else np.int64)
    budgets_arr = np.asarray(budgets, dtype=np.int32).reshape(-1)
    shape = (n, budgets_arr.shape[0], int(num_repeats))
    metrics = dict(metrics or {})
    unknown = set(metrics) - set(METRIC_NAMES)
    if unknown:
        raise StoreSchemaError(f"unknown metric names {sorted(unknown)} (expected some of {list(METRIC_NAMES)})")
    cols = {}
    for m in METRIC_NAMES:
        if m in metrics:
            a = np.asarray(metrics[m], dtype=np.float32)
            if a.shape != shape:
                raise StoreSchemaError(f"metric '{m}' has shape {a.shape}, expected {shape}")
            cols[m] = a
        else:
            cols[m] = np.full(shape, np.nan, np.float32)
    if canonical_code is None:
        canonical_code = host_canonical_codes(adjacency, operations, num_vertices)
    canonical_code = np.asarray(canonical_code, dtype=np.uint32).reshape(-1)
    for name, a in (("module_hash", module_hash), ("operations", operations), ("num_vertices", num_vertices),
                    ("trainable_parameters", params), ("canonical_code", canonical_code)):
        if a.shape[0] != n:
            raise StoreSchemaError(f"column '{name}' has {a.shape[0]} rows, adjacency has {n}")
    order = np.argsort(canonical_code, kind="stable")
    sc = canonical_code[order]
    dup = np.nonzero(sc[1:] == sc[:-1])[0]
    if dup.size:
        a, b = order[dup[0]], order[dup[0] + 1]
        raise StoreConflictError(
            f"rows {a} and {b} are the same cell (canonical code {int(sc[dup[0]])}, hashes "
            f"{module_hash[a].decode()} and {module_hash[b].decode()})"
        )
    meta = _default_metadata(
        budgets_arr, num_repeats, provenance=provenance, synthetic=synthetic,
        training_config=training_config, extra=metadata_extra,
    )
    return Store(
        canonical_code=sc,
        module_hash=module_hash[order],
        adjacency=adjacency[order],
        operations=operations[order],
        num_vertices=num_vertices[order],
        trainable_parameters=params[order],
        budgets=budgets_arr,
        metadata=meta,
        **{m: cols[m][order] for m in METRIC_NAMES},
    )


# ----------------------------------------------------------------------------------------
# Writing (atomic) and opening (memory-mapped)
# ----------------------------------------------------------------------------------------

_ALIGN = 64
_PAD_EXTRA_ID = 0x4E42  # a private zip "extra field" id used only as alignment padding


def _npy_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    arr = np.asarray(arr)
    if arr.ndim and not arr.flags.c_contiguous:
        arr = np.ascontiguousarray(arr)  # (ascontiguousarray would turn a 0-d array into 1-d)
    np.lib.format.write_array(buf, arr, allow_pickle=False)
    return buf.getvalue()


def write_store(path, store: Store) -> None:
    """Write ``store`` to ``path`` atomically as an uncompressed ``.npz``.

    The archive is written to a temporary file in the same directory, flushed to disk and then
    renamed over ``path``; an interrupted write leaves ``path`` as it was (absent or the old
    store). Member data is 64-byte aligned so :func:`open_store` can memory-map it.

    Raises:
      StoreError: ``store`` is not a :class:`Store` or the directory is not writable.
    """
    if not isinstance(store, Store):
        raise StoreError(f"write_store expects a Store, got {type(store).__name__}")
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    meta = dict(store.metadata)
    if not os.path.isdir(directory) or not os.access(directory, os.W_OK | os.X_OK):
        raise StoreError(f"{path}: cannot write the store: {directory} is not a writable directory")
    with atomic_write(path, "wb") as f:
        with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
            for name in COLUMNS:
                if name == "metadata":
                    arr = np.array(json.dumps(meta, sort_keys=True))
                else:
                    arr = getattr(store, name)
                _write_member(zf, f, name + ".npy", _npy_bytes(arr))


def _write_member(zf: zipfile.ZipFile, f, name: str, data: bytes) -> None:
    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
    info.compress_type = zipfile.ZIP_STORED
    start = f.tell()
    zip64 = len(data) > 0x7FFFFFFF  # zipfile adds a 20-byte zip64 extra for big members
    base = start + 30 + len(name.encode()) + (20 if zip64 else 0) + 4
    pad = (-base) % _ALIGN
    info.extra = struct.pack("<HH", _PAD_EXTRA_ID, pad) + b"\0" * pad
    zf.writestr(info, data)


def open_store(path, *, memory_map: bool = True) -> Store:
    """Open a store written by :func:`write_store` (or any valid ``.npz`` with the schema).

    Uncompressed members are memory-mapped read-only (nothing is read until used); compressed
    members are read into memory. ``allow_pickle`` is never enabled.

    Args:
      path: the ``.npz`` file.
      memory_map: set ``False`` to read every column into memory.

    Returns:
      The :class:`Store` (its arrays are read-only).

    Raises:
      StoreFormatError: missing, not a zip/npz archive, truncated or corrupt (message names the
        file and problem).
      StoreSchemaError: wrong schema version, missing or extra columns, wrong dtypes or shapes,
        unsorted or duplicate canonical codes.
    """
    path = os.fspath(path)
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        raise StoreFormatError(f"{path}: no such store file") from None
    except OSError as e:
        raise StoreFormatError(f"{path}: cannot open: {e}") from None
    with f:
        size = os.fstat(f.fileno()).st_size
        head = f.read(4)
        if head != b"PK\x03\x04":
            hint = " (it looks like an original .tfrecord; import it with `nasbench-jax import`)" if _looks_like_tfrecord(head, f) else ""
            raise StoreFormatError(f"{path}: not a store: not an .npz (zip) archive{hint}")
        f.seek(0)
        try:
            zf = zipfile.ZipFile(f)
            infos = {i.filename: i for i in zf.infolist()}
        except (zipfile.BadZipFile, OSError, EOFError) as e:
            raise StoreFormatError(f"{path}: not a store: corrupt or truncated zip archive ({e})") from None
        names = {n[:-4] if n.endswith(".npy") else n: n for n in infos}
        if "metadata" not in names:
            raise StoreSchemaError(f"{path}: not a store: no 'metadata' column")
        try:
            meta_arr = np.lib.format.read_array(io.BytesIO(zf.read(names["metadata"])), allow_pickle=False)
            if meta_arr.shape != () or meta_arr.dtype.kind != "U":
                raise ValueError(f"expected a 0-d unicode array, got {meta_arr.dtype} {meta_arr.shape}")
            meta = json.loads(str(meta_arr[()]))
        except (ValueError, zipfile.BadZipFile, OSError, EOFError, KeyError) as e:
            raise StoreSchemaError(f"{path}: unreadable metadata column ({e})") from None
        if not isinstance(meta, dict):
            raise StoreSchemaError(f"{path}: metadata is not a JSON object")
        if meta.get("schema_version") != SCHEMA_VERSION:
            raise StoreSchemaError(
                f"{path}: unsupported schema version {meta.get('schema_version')!r} "
                f"(this library reads version {SCHEMA_VERSION})"
            )
        missing = [c for c in COLUMNS if c not in names]
        extra = sorted(set(names) - set(COLUMNS))
        if missing:
            raise StoreSchemaError(f"{path}: missing columns {missing}")
        if extra:
            raise StoreSchemaError(f"{path}: unexpected extra columns {extra}")
        mm = None
        if memory_map and size > 0:
            mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        cols = {}
        for c in COLUMNS:
            if c == "metadata":
                continue
            info = infos[names[c]]
            cols[c] = _read_member(path, f, zf, info, c, mm, size)
        zf.close()
    cols = {k: cols[k] for k in COLUMNS if k != "metadata"}
    _check_columns(cols, path)
    try:
        return Store(metadata=meta, **cols)
    except StoreSchemaError as e:
        raise StoreSchemaError(f"{path}: {str(e).removeprefix('store: ')}") from None


def _looks_like_tfrecord(head: bytes, f) -> bool:
    f.seek(0)
    b = f.read(12)
    return len(b) == 12 and struct.unpack("<Q", b[:8])[0] < (1 << 32)


def _read_member(path, f, zf, info, name, mm, size) -> np.ndarray:
    if info.compress_type != zipfile.ZIP_STORED or mm is None:
        try:
            with zf.open(info) as m:
                return _checked_array(path, name, np.lib.format.read_array(m, allow_pickle=False))
        except (ValueError, zipfile.BadZipFile, OSError, EOFError) as e:
            raise StoreFormatError(f"{path}: column '{name}' is unreadable ({e})") from None
    f.seek(info.header_offset)
    local = f.read(30)
    if len(local) != 30 or local[:4] != b"PK\x03\x04":
        raise StoreFormatError(f"{path}: corrupt zip archive (bad local header of column '{name}')")
    name_len, extra_len = struct.unpack("<HH", local[26:30])
    start = info.header_offset + 30 + name_len + extra_len
    if start + info.file_size > size:
        raise StoreFormatError(f"{path}: truncated file (column '{name}' ends past the end of the file)")
    f.seek(start)
    try:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
        else:
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
    except ValueError as e:
        raise StoreSchemaError(f"{path}: column '{name}' is not a valid .npy array ({e})") from None
    if dtype.hasobject:
        raise StoreSchemaError(f"{path}: column '{name}' holds Python objects (pickle is not allowed)")
    offset = f.tell()
    count = math.prod(shape)
    if offset - start + count * dtype.itemsize != info.file_size:
        raise StoreFormatError(f"{path}: column '{name}' has the wrong length for its shape {shape}")
    arr = np.frombuffer(mm, dtype=dtype, count=count, offset=offset)
    if fortran:
        arr = arr.reshape(shape[::-1]).T
    else:
        arr = arr.reshape(shape)
    return arr


def _checked_array(path, name, arr):
    if arr.dtype.hasobject:
        raise StoreSchemaError(f"{path}: column '{name}' holds Python objects (pickle is not allowed)")
    return arr


# ----------------------------------------------------------------------------------------
# Verification
# ----------------------------------------------------------------------------------------


def verify_store(store_or_path, *, hash_sample: int = 256, seed: int = 0) -> list[str]:
    """Check a store's content; return a list of problems (empty when the store is sound).

    Checks: zip member CRCs (for a path), the schema (at open), the stored representatives
    (upper-triangular 0/1 within the ``V x V`` block, zero outside, input/ops/output labels,
    every vertex on an input->output path, at most 9 edges), canonical codes recomputed from
    the representatives, unique module hashes, module hashes recomputed with ``hashlib`` on a
    random sample of ``hash_sample`` rows, accuracies in ``[0, 1]`` or NaN, training times
    ``>= 0`` or NaN, positive parameter counts.

    Args:
      store_or_path: a :class:`Store` or a path.
      hash_sample: how many rows to re-hash with the (slow) hashlib oracle; ``-1`` for all.
      seed: seed of the sample (a private ``numpy.random.Generator``).

    Returns:
      Human-readable problem descriptions.

    Raises:
      StoreFormatError, StoreSchemaError: the file cannot be opened as a store at all.
    """
    from nasbench_jax.graph import reference  # noqa: PLC0415

    problems: list[str] = []
    if isinstance(store_or_path, Store):
        s = store_or_path
    else:
        path = os.fspath(store_or_path)
        s = open_store(path)
        try:
            with zipfile.ZipFile(path) as zf:
                bad = zf.testzip()
            if bad is not None:
                problems.append(f"zip member {bad} fails its CRC check (the file is corrupt)")
        except (zipfile.BadZipFile, OSError) as e:
            problems.append(f"zip archive unreadable: {e}")
    n = s.num_cells
    v = s.num_vertices.astype(np.int64)
    adj = np.asarray(s.adjacency)
    ops = np.asarray(s.operations)

    def report(mask, what, limit=5):
        idx = np.nonzero(mask)[0]
        if idx.size:
            shown = ", ".join(s.module_hash[i].decode("ascii", "replace") for i in idx[:limit])
            problems.append(f"{idx.size} row(s) {what} (e.g. {shown})")

    report((v < 2) | (v > C.MAX_VERTICES), f"have num_vertices outside 2..{C.MAX_VERTICES}")
    ok = (v >= 2) & (v <= C.MAX_VERTICES)
    r = np.arange(C.MAX_VERTICES)
    inside = (r[None, :, None] < v[:, None, None]) & (r[None, None, :] < v[:, None, None])
    upper = r[:, None] < r[None, :]
    report(np.any(adj > 1, axis=(1, 2)), "have adjacency entries other than 0/1")
    report(np.any((adj != 0) & ~(inside & upper[None]), axis=(1, 2)), "have edges outside the strict upper triangle of the V x V block")
    exp_ops_ok = np.ones(n, bool)
    for i in range(C.MAX_VERTICES):
        o = ops[:, i]
        exp = np.where(i == 0, o == C.INPUT_LABEL,
                       np.where(i == v - 1, o == C.OUTPUT_LABEL,
                                np.where(i < v - 1, (o >= 0) & (o < C.NUM_OPS), o == C.PAD_LABEL)))
        exp_ops_ok &= exp
    report(~exp_ops_ok, "have operation labels that are not input, ops..., output, padding")
    a = (adj != 0) & inside & upper[None]
    has_out = a.any(axis=2)
    has_in = a.any(axis=1)
    need_out = r[None, :] < (v - 1)[:, None]
    need_in = (r[None, :] > 0) & (r[None, :] < v[:, None])
    report(np.any(need_out & ~has_out, axis=1) | np.any(need_in & ~has_in, axis=1),
           "are not pruned (a vertex off every input->output path)")
    report(a.sum(axis=(1, 2)) > C.MAX_EDGES, f"have more than {C.MAX_EDGES} edges")
    good = ok & exp_ops_ok & ~np.any(adj > 1, axis=(1, 2))
    if good.any():
        codes = host_canonical_codes(adj[good], ops[good], v[good])
        mism = np.zeros(n, bool)
        mism[np.nonzero(good)[0]] = codes != s.canonical_code[good]
        report(mism, "have a canonical_code that does not match their adjacency/operations")
    if np.unique(s.module_hash).shape[0] != n:
        problems.append("module hashes are not unique (two rows have the same hash)")
    rows = np.nonzero(good)[0]
    if hash_sample >= 0 and rows.size > hash_sample:
        rows = np.sort(np.random.default_rng(seed).choice(rows, hash_sample, replace=False))
    wrong = []
    for i in rows:
        vi = int(v[i])
        h = reference.hash_module(adj[i, :vi, :vi].astype(np.int64), ops[i, :vi].tolist())
        if h.encode() != bytes(s.module_hash[i]):
            wrong.append(i)
    if wrong:
        problems.append(
            f"{len(wrong)} of {rows.size} sampled rows have a module_hash that does not match their cell "
            f"(e.g. row {wrong[0]}: stored {s.module_hash[wrong[0]].decode('ascii', 'replace')})"
        )
    for m in METRIC_NAMES:
        arr = np.asarray(getattr(s, m))
        if m in ACCURACY_NAMES:
            bad = np.any((arr < 0) | (arr > 1), axis=(1, 2))
            report(bad, f"have {m} outside [0, 1]")
        else:
            report(np.any(arr < 0, axis=(1, 2)), f"have negative {m}")
        report(np.any(np.isinf(arr), axis=(1, 2)), f"have infinite {m}")
    report(s.trainable_parameters <= 0, "have non-positive trainable_parameters")
    return problems


# ----------------------------------------------------------------------------------------
# Merging shards
# ----------------------------------------------------------------------------------------


def merge_stores(stores: Iterable[Store], *, provenance: Any = None) -> Store:
    """Combine store shards (e.g. one per worker) into one store.

    The result holds the union of the cells. For a cell present in several shards, every
    (budget, repeat, metric) value is taken from whichever shard has it (not NaN); the cell
    columns (hash, representative, parameters) must agree. Budgets may differ between shards
    (the union is used); the number of repeats must be equal.

    Args:
      stores: the shards.
      provenance: metadata provenance of the result (default: the shards' provenances).

    Returns:
      The merged store; no row is lost or duplicated.

    Raises:
      StoreConflictError: two shards hold different values for the same (cell, budget,
        repeat, metric), or different hashes/representatives/parameters for the same cell.
      StoreError: no shards, or different repeat counts or schema versions.
    """
    stores = list(stores)
    if not stores:
        raise StoreError("merge_stores needs at least one store")
    for i, s in enumerate(stores):
        if not isinstance(s, Store):
            raise StoreError(f"merge_stores: shard {i} is a {type(s).__name__}, not a Store")
    reps = {s.num_repeats for s in stores}
    if len(reps) != 1:
        raise StoreError(f"cannot merge stores with different repeat counts {sorted(reps)}")
    r = reps.pop()
    budgets = np.array(sorted(set(itertools.chain.from_iterable(s.budgets.tolist() for s in stores))), np.int32)
    all_codes = np.concatenate([s.canonical_code for s in stores])
    codes, first = np.unique(all_codes, return_index=True)
    n = codes.shape[0]
    shard_of = np.repeat(np.arange(len(stores)), [s.num_cells for s in stores])
    cell_cols = {}
    for c in _CELL_COLUMNS[1:]:
        pieces = np.concatenate([np.asarray(getattr(s, c)) for s in stores])
        if c == "trainable_parameters":
            pieces = pieces.astype(np.int64)
        cell_cols[c] = pieces[first]
    # cell columns must agree between shards
    for k, s in enumerate(stores):
        rows = np.searchsorted(codes, s.canonical_code)
        for c in _CELL_COLUMNS[1:]:
            mine = np.asarray(getattr(s, c))
            ref = cell_cols[c][rows]
            diff = mine != ref if mine.ndim == 1 else np.any((mine != ref).reshape(mine.shape[0], -1), axis=1)
            if np.any(diff):
                i = int(np.nonzero(diff)[0][0])
                other = int(shard_of[first[rows[i]]])
                raise StoreConflictError(
                    f"shards {other} and {k} disagree on column '{c}' of cell "
                    f"{s.module_hash[i].decode('ascii', 'replace')} (canonical code {int(s.canonical_code[i])})"
                )
    out = {m: np.full((n, budgets.shape[0], r), np.nan, np.float32) for m in METRIC_NAMES}
    for k, s in enumerate(stores):
        rows = np.searchsorted(codes, s.canonical_code)
        bidx = np.searchsorted(budgets, s.budgets)
        for m in METRIC_NAMES:
            new = np.asarray(getattr(s, m))
            cur = out[m][rows[:, None], bidx[None, :]]
            clash = ~np.isnan(cur) & ~np.isnan(new) & (cur != new)
            if np.any(clash):
                i, b, rep = (int(x[0]) for x in np.nonzero(clash))
                raise StoreConflictError(
                    f"shard {k} conflicts with an earlier shard on {m} of cell "
                    f"{s.module_hash[i].decode('ascii', 'replace')} at {int(s.budgets[b])} epochs, repeat {rep}: "
                    f"{float(cur[i, b, rep])!r} vs {float(new[i, b, rep])!r}"
                )
            out[m][rows[:, None], bidx[None, :]] = np.where(np.isnan(new), cur, new)
    params = cell_cols["trainable_parameters"]
    if params.size == 0 or np.abs(params).max() < 2**31:
        params = params.astype(np.int32)
    if provenance is None:
        provenance = [s.metadata.get("provenance") for s in stores]
    configs = [s.metadata.get("training_config") for s in stores]
    training_config = configs[0] if all(c == configs[0] for c in configs) else configs
    meta = _default_metadata(
        budgets, r, provenance=provenance, synthetic=any(s.synthetic for s in stores),
        training_config=training_config, extra={"merged_from": len(stores)},
    )
    return Store(
        canonical_code=codes.astype(np.uint32),
        module_hash=cell_cols["module_hash"],
        adjacency=cell_cols["adjacency"],
        operations=cell_cols["operations"],
        num_vertices=cell_cols["num_vertices"],
        trainable_parameters=params,
        budgets=budgets,
        metadata=meta,
        **out,
    )


# ----------------------------------------------------------------------------------------
# Host-side canonical codes (numpy; used by the importer, verify and the single-query path)
# ----------------------------------------------------------------------------------------

#: Edge slots (x, y), x < y, in the original enumerator's bit order (bit = x + y(y-1)/2).
_SLOTS = [(x, y) for y in range(C.MAX_VERTICES) for x in range(y)]
_INVALID = float(2**40)  # marks a relabeling that breaks upper-triangularity (exact in float64)


def _tables(v: int):
    """Per vertex count ``v``: float64 ``edge[S_v, P]`` and ``opw[v, P]`` lookup tables.

    For relabeling ``p`` (``perm[old] = new``, interior vertices only), ``adjbits @ edge[:, p]``
    is the permuted adjacency bitmask ``A`` (or >= 2**40 if an edge would point backwards) and
    ``labels @ opw[:, p]`` the base-3 ops number ``O``; the code is ``min_p A*256 + O``.
    """
    perms = [(0,) + p + (v - 1,) for p in itertools.permutations(range(1, v - 1))] if v >= 2 else []
    s = v * (v - 1) // 2
    edge = np.zeros((s, len(perms)), np.float64)
    opw = np.zeros((v, len(perms)), np.float64)
    for j, perm in enumerate(perms):
        for k, (x, y) in enumerate(_SLOTS[:s]):
            a, b = perm[x], perm[y]
            edge[k, j] = float(1 << (a + b * (b - 1) // 2)) if a < b else _INVALID
        for old in range(1, v - 1):
            opw[old, j] = float(3 ** (5 - perm[old]))
    return edge, opw


_TABLES = {v: _tables(v) for v in range(2, C.MAX_VERTICES + 1)}
_SLOT_X = np.array([x for x, _ in _SLOTS])
_SLOT_Y = np.array([y for _, y in _SLOTS])


def host_canonical_codes(adjacency, operations, num_vertices, *, chunk: int = 1 << 15) -> np.ndarray:
    """Canonical codes of *pruned* cells on the host (numpy, batched).

    Equal to :func:`nasbench_jax.graph.reference.canonical_code` cell by cell, but a few
    microseconds per cell: two small float64 matrix products per vertex-count group against
    precomputed relabeling tables (all values are integers below 2**53, so exact).

    Args:
      adjacency: ``uint8[N, 7, 7]`` pruned, padded cells; operations: ``int8[N, 7]``;
        num_vertices: ``int[N]`` in 2..7.

    Returns:
      ``uint32[N]`` codes ``V << 29 | A << 8 | O``.
    """
    adj = np.asarray(adjacency)
    ops = np.asarray(operations)
    nv = np.asarray(num_vertices).astype(np.int64).reshape(-1)
    out = np.zeros(nv.shape[0], np.uint32)
    for v, (edge, opw) in _TABLES.items():
        rows = np.nonzero(nv == v)[0]
        s = v * (v - 1) // 2
        for lo in range(0, rows.size, chunk):
            r = rows[lo : lo + chunk]
            bits = adj[r][:, _SLOT_X[:s], _SLOT_Y[:s]].astype(np.float64)
            labs = ops[r, :v].astype(np.float64)
            best = (bits @ edge * 256.0 + labs @ opw).min(axis=1)
            out[r] = (np.uint32(v) << np.uint32(29)) | best.astype(np.uint32)
    return out


def labelled_code_table(adjacency, operations, num_vertices, *, chunk: int = 1 << 14):
    """Every labelled code of every cell: ``(codes uint32[M], rows int64[M])`` sorted by code.

    For each cell ``i`` (pruned, padded) and each relabeling of its interior vertices that keeps
    the matrix upper-triangular, the code of that labelling *without minimisation*
    (``reference.encode_code``) maps to ``i``. A pruned raw cell is isomorphic to cell ``i`` iff
    its own labelled code is one of these, so lookups need no minimisation over relabelings.
    For the full space ``M`` = 1,293,208 (the labelled full DAGs of the enumeration, §4.2).

    Raises:
      StoreConflictError: two cells share a labelled code (they are isomorphic duplicates).
    """
    adj = np.asarray(adjacency)
    ops = np.asarray(operations)
    nv = np.asarray(num_vertices).astype(np.int64).reshape(-1)
    codes, rows = [], []
    for v, (edge, opw) in _TABLES.items():
        sel = np.nonzero(nv == v)[0]
        s = v * (v - 1) // 2
        for lo in range(0, sel.size, chunk):
            r = sel[lo : lo + chunk]
            bits = adj[r][:, _SLOT_X[:s], _SLOT_Y[:s]].astype(np.float64)
            labs = ops[r, :v].astype(np.float64)
            a = bits @ edge
            c = a * 256.0 + labs @ opw
            ok = a < _INVALID
            codes.append((np.uint32(v) << np.uint32(29)) | c[ok].astype(np.uint32))
            rows.append(np.broadcast_to(r[:, None], ok.shape)[ok])
    codes = np.concatenate(codes) if codes else np.zeros(0, np.uint32)
    rows = np.concatenate(rows) if rows else np.zeros(0, np.int64)
    order = np.lexsort((rows, codes))
    codes, rows = codes[order], rows[order]
    first = np.ones(codes.shape[0], bool)
    first[1:] = codes[1:] != codes[:-1]  # automorphisms give the same code more than once
    clash = ~first & np.concatenate([[False], rows[1:] != rows[:-1]])
    if np.any(clash):
        i = int(np.nonzero(clash)[0][0])
        raise StoreConflictError(f"rows {rows[i - 1]} and {rows[i]} are isomorphic (labelled code {int(codes[i])})")
    return codes[first], rows[first]


def example_store_path() -> str:
    """Path of the shipped example store (1,052 real NAS-Bench-101 records, see data/README.md)."""
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "nb101_sample.npz")
