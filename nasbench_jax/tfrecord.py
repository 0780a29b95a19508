"""The original NAS-Bench-101 dataset file (``.tfrecord``), read and written without TensorFlow.

Layout (reference spec §7.2–7.3): a concatenation of records, each ::

    uint64 length | uint32 masked_crc32c(length bytes) | data[length] | uint32 masked_crc32c(data)

(little-endian, CRC32C = Castagnoli, ``mask(c) = ((c >> 15 | c << 17) + 0xA282EAD8) mod 2**32``).
Each record's data is a UTF-8 JSON list ``[module_hash, epochs, adjacency, operations,
metrics]``: the adjacency is the ``V x V`` stored representative flattened row-major into
``'0'/'1'`` characters, the operations are op names joined by ``,``, and the metrics are a
base64 ``ModelMetrics`` protobuf (decoded here by a hand-written wire-format parser that skips
unknown fields and accepts any field order). Rows of the same ``(hash, epochs)`` are the
repeats, in file order.

Usage::

    from nasbench_jax import tfrecord
    store = tfrecord.read_dataset("nasbench_only108.tfrecord")     # -> store.Store
    tfrecord.write_dataset("copy.tfrecord", store)                  # the same rows back

Every record's two CRCs are checked; a truncated, bit-flipped or wrongly framed file, or a
bad JSON/base64/protobuf row, raises :class:`TFRecordError` naming the file, the record and
the problem.
"""

from __future__ import annotations

import binascii
import json
import mmap
import os
import struct
from array import array
from typing import Callable, Iterable, Iterator

import numpy as np

from nasbench_jax._io import atomic_write
from nasbench_jax import constants as C
from nasbench_jax import store as _store
from nasbench_jax.errors import NASBenchError

__all__ = [
    "TFRecordError",
    "crc32c",
    "masked_crc32c",
    "encode_record",
    "iter_records",
    "write_records",
    "decode_metrics",
    "encode_metrics",
    "protobuf_metrics_class",
    "read_dataset",
    "write_dataset",
]


class TFRecordError(NASBenchError, ValueError):
    """A ``.tfrecord`` file (or one of its rows) is malformed; the message says where."""


# ----------------------------------------------------------------------------------------
# CRC32C
# ----------------------------------------------------------------------------------------

_POLY = 0x82F63B78  # reflected Castagnoli polynomial


def _make_table() -> list[int]:
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ _POLY if c & 1 else c >> 1
        table.append(c)
    return table


_TABLE = _make_table()


def crc32c_python(data: bytes) -> int:
    """CRC32C in plain Python (table-driven): the fallback and the test oracle."""
    c = 0xFFFFFFFF
    t = _TABLE
    for b in data:
        c = t[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


try:  # a hardware/C implementation when installed (a dependency of the package)
    import google_crc32c as _gcrc

    crc32c: Callable[[bytes], int] = _gcrc.value
except ImportError:  # pragma: no cover - exercised only without the dependency
    crc32c = crc32c_python


def _mask(c: int) -> int:
    return (((c >> 15) | (c << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def masked_crc32c(data: bytes) -> int:
    """The TFRecord masked CRC32C of ``data``."""
    return _mask(crc32c(data))


def encode_record(data: bytes) -> bytes:
    """Frame one record: length, masked CRC of the length, data, masked CRC of the data."""
    n = struct.pack("<Q", len(data))
    return n + struct.pack("<I", masked_crc32c(n)) + data + struct.pack("<I", masked_crc32c(data))


def iter_records(path, *, progress: bool = False) -> Iterator[bytes]:
    """Yield the data of every record of a TFRecord file, checking both CRCs of each.

    Raises:
      TFRecordError: missing/empty file, truncated record, CRC mismatch (message names the
        file, the record number and its byte offset).
    """
    for _, data in _iter_framed(os.fspath(path), progress):
        yield data


def _iter_framed(path: str, progress: bool):
    try:
        f = open(path, "rb")
    except OSError as e:
        raise TFRecordError(f"{path}: cannot open: {e.strerror or e}") from None
    with f:
        size = os.fstat(f.fileno()).st_size
        if size == 0:
            raise TFRecordError(f"{path}: empty file (no records)")
        buf = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    bar = _progress(size, path, progress)
    crc = crc32c
    head = struct.Struct("<QI").unpack_from
    u32 = struct.Struct("<I").unpack_from
    pos = 0
    i = 0
    last = 0
    try:
        while pos < size:
            if size - pos < 12:
                raise TFRecordError(
                    f"{path}: truncated file: record {i} at byte {pos} has only {size - pos} header bytes (need 12)"
                )
            length, lcrc = head(buf, pos)
            c = crc(buf[pos : pos + 8])
            if (((c >> 15) | (c << 17)) + 0xA282EAD8) & 0xFFFFFFFF != lcrc:
                raise TFRecordError(
                    f"{path}: record {i} at byte {pos}: length CRC mismatch (not a TFRecord file, wrong "
                    f"framing, or corrupt length field)"
                )
            end = pos + 12 + length
            if end + 4 > size:
                raise TFRecordError(
                    f"{path}: truncated file: record {i} at byte {pos} declares {length} data bytes + a "
                    f"4-byte CRC, only {max(size - pos - 12, 0)} bytes left"
                )
            data = buf[pos + 12 : end]
            c = crc(data)
            if (((c >> 15) | (c << 17)) + 0xA282EAD8) & 0xFFFFFFFF != u32(buf, end)[0]:
                raise TFRecordError(f"{path}: record {i} at byte {pos}: data CRC mismatch (corrupt record)")
            yield i, data
            pos = end + 4
            i += 1
            if bar is not None and pos - last > (1 << 22):
                bar.update(pos - last)
                last = pos
    finally:
        if bar is not None:
            bar.update(pos - last)
            bar.close()
        buf.close()


def _progress(total: int, path: str, enabled: bool):
    if not enabled:
        return None
    from tqdm import tqdm  # noqa: PLC0415

    return tqdm(total=total, unit="B", unit_scale=True, desc=os.path.basename(path), leave=False)


def write_records(path, payloads: Iterable[bytes]) -> int:
    """Write records atomically (temp file in the same directory, then rename).

    Returns:
      The number of records written.
    """
    n = 0
    with atomic_write(path, "wb") as f:
        pending = []
        for data in payloads:
            pending.append(encode_record(data))
            n += 1
            if len(pending) >= 4096:
                f.write(b"".join(pending))
                pending.clear()
        f.write(b"".join(pending))
    return n


# ----------------------------------------------------------------------------------------
# ModelMetrics protobuf (wire format, hand-written)
# ----------------------------------------------------------------------------------------

_NAN = float("nan")
_D5 = struct.Struct("<xdxdxdxdxd").unpack_from  # 5 doubles behind keys 09 11 19 21 29
_D1 = struct.Struct("<d").unpack_from
_EVAL_FIELD = {1: 0, 2: 1, 3: 2, 4: 3, 5: 4}  # current_epoch, time, train, valid, test


class _ProtoError(Exception):
    pass


def _varint(b: bytes, pos: int) -> tuple[int, int]:
    result = 0
    shift = 0
    while True:
        if pos >= len(b):
            raise _ProtoError("truncated varint")
        x = b[pos]
        pos += 1
        result |= (x & 0x7F) << shift
        if not x & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise _ProtoError("varint longer than 10 bytes")


def _skip(b: bytes, pos: int, wt: int, end: int) -> int:
    if wt == 0:
        _, pos = _varint(b, pos)
    elif wt == 1:
        pos += 8
    elif wt == 2:
        n, pos = _varint(b, pos)
        pos += n
    elif wt == 5:
        pos += 4
    else:
        raise _ProtoError(f"unsupported wire type {wt}")
    if pos > end:
        raise _ProtoError("field runs past the end of its message")
    return pos


def _decode_eval(b: bytes, pos: int, end: int) -> list:
    """EvaluationData -> [current_epoch, training_time, train, valid, test] (NaN if absent)."""
    out = [_NAN, _NAN, _NAN, _NAN, _NAN]
    # fast path: the five doubles in field order, as the protobuf library writes them
    if end - pos >= 45 and b[pos] == 0x09 and b[pos + 9] == 0x11 and b[pos + 18] == 0x19 \
            and b[pos + 27] == 0x21 and b[pos + 36] == 0x29:
        out[:] = _D5(b, pos)
        pos += 45
    while pos < end:
        key = b[pos]
        if key & 0x80:
            key, pos = _varint(b, pos)
        else:
            pos += 1
        field, wt = key >> 3, key & 7
        if wt == 1 and field in _EVAL_FIELD:
            if pos + 8 > end:
                raise _ProtoError("double runs past the end of EvaluationData")
            out[_EVAL_FIELD[field]] = _D1(b, pos)[0]
            pos += 8
        else:
            pos = _skip(b, pos, wt, end)
    return out


def decode_metrics(b: bytes) -> tuple[int | None, list[list[float]]]:
    """Decode a serialised ``ModelMetrics``.

    Returns:
      ``(trainable_parameters or None, evaluations)``; each evaluation is
      ``[current_epoch, training_time, train_accuracy, validation_accuracy, test_accuracy]``
      with NaN for absent fields.

    Raises:
      TFRecordError: malformed wire format.
    """
    try:
        return _decode_metrics(b)
    except (_ProtoError, IndexError, struct.error) as e:
        raise TFRecordError(f"malformed ModelMetrics protobuf: {e}") from None


def _decode_metrics(b: bytes):
    pos = 0
    n = len(b)
    params = None
    evals = []
    while pos < n:
        key = b[pos]
        if key & 0x80:
            key, pos = _varint(b, pos)
        else:
            pos += 1
        if key == 0x0A:  # evaluation_data
            ln = b[pos] if pos < n else 0x80
            if ln & 0x80:
                ln, pos = _varint(b, pos)
            else:
                pos += 1
            if pos + ln > n:
                raise _ProtoError("evaluation_data runs past the end of the message")
            if ln == 45 and b[pos] == 0x09 and b[pos + 9] == 0x11 and b[pos + 18] == 0x19 \
                    and b[pos + 27] == 0x21 and b[pos + 36] == 0x29:
                evals.append(_D5(b, pos))  # the five doubles, nothing else
            else:
                evals.append(_decode_eval(b, pos, pos + ln))
            pos += ln
        elif key == 0x10:  # trainable_parameters (int32 varint; negatives are 10 bytes)
            params = 0
            shift = 0
            while True:
                if pos >= n:
                    raise _ProtoError("truncated varint")
                x = b[pos]
                pos += 1
                params |= (x & 0x7F) << shift
                if not x & 0x80:
                    break
                shift += 7
                if shift > 63:
                    raise _ProtoError("varint longer than 10 bytes")
            params &= 0xFFFFFFFF
            if params >= 1 << 31:
                params -= 1 << 32
        else:
            pos = _skip(b, pos, key & 7, n)
    return params, evals


def protobuf_metrics_class():
    """The original's ``ModelMetrics`` message as a ``google.protobuf`` class (needs protobuf).

    Built from a descriptor with the original field numbers and types, so the protobuf library's
    own codec can cross-check :func:`decode_metrics` / :func:`encode_metrics` and serve as a
    baseline in benchmarks. Not used by the readers and writers here.
    """
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    F = descriptor_pb2.FieldDescriptorProto
    fdp = descriptor_pb2.FileDescriptorProto(name="nasbench_model_metrics.proto", package="nasbench", syntax="proto2")
    ev = fdp.message_type.add(name="EvaluationData")
    for i, name in enumerate(["current_epoch", "training_time", "train_accuracy", "validation_accuracy",
                              "test_accuracy"], 1):
        ev.field.add(name=name, number=i, type=F.TYPE_DOUBLE, label=F.LABEL_OPTIONAL)
    ev.field.add(name="checkpoint_path", number=6, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
    mm = fdp.message_type.add(name="ModelMetrics")
    mm.field.add(name="evaluation_data", number=1, type=F.TYPE_MESSAGE, type_name=".nasbench.EvaluationData",
                 label=F.LABEL_REPEATED)
    mm.field.add(name="trainable_parameters", number=2, type=F.TYPE_INT32, label=F.LABEL_OPTIONAL)
    mm.field.add(name="total_time", number=3, type=F.TYPE_DOUBLE, label=F.LABEL_OPTIONAL)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("nasbench.ModelMetrics"))


def _enc_varint(x: int) -> bytes:
    x &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte = x & 0x7F
        x >>= 7
        if x:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


_E5 = struct.Struct("<BdBdBdBdBd").pack


def encode_metrics(trainable_parameters: int, evaluations, total_time: float | None = None) -> bytes:
    """Serialise a ``ModelMetrics`` (fields in number order, like the protobuf library).

    Args:
      trainable_parameters: int32.
      evaluations: each ``[current_epoch, training_time, train, valid, test]`` (NaN values
        are written as NaN doubles).
      total_time: optional ``total_time`` field.
    """
    out = []
    for ev in evaluations:
        msg = _E5(0x09, ev[0], 0x11, ev[1], 0x19, ev[2], 0x21, ev[3], 0x29, ev[4])
        out.append(b"\x0a" + _enc_varint(len(msg)) + msg)
    out.append(b"\x10" + _enc_varint(int(trainable_parameters)))
    if total_time is not None:
        out.append(b"\x19" + struct.pack("<d", total_time))
    return b"".join(out)


# ----------------------------------------------------------------------------------------
# Dataset rows <-> Store
# ----------------------------------------------------------------------------------------

_OP_LABEL = {op: i for i, op in enumerate(C.AVAILABLE_OPS)}
_HEX = set("0123456789abcdef")


def read_dataset(path, *, progress: bool = True, return_file_order: bool = False):
    """Import an original NAS-Bench-101 ``.tfrecord`` (full or only108) into a :class:`Store`.

    Args:
      path: the file.
      progress: show a tqdm progress bar (bytes).
      return_file_order: also return the store rows in the order the file first lists the
        hashes (the original API's ``hash_iterator`` order).

    Returns:
      The store (budgets 4, 12, 36, 108 plus any other epochs found; 3 repeats), or
      ``(store, int64[N] rows)``.

    Raises:
      TFRecordError: framing/CRC problems, or a bad row (not a 5-element JSON list, bad hash,
        epochs, adjacency, ops, base64 or protobuf; rows of one hash that disagree; more than
        3 repeats of a (hash, epochs)); messages name the file, the record and the problem.
    """
    path = os.fspath(path)
    cell_of: dict[str, int] = {}
    cell_adj: list[str] = []
    cell_ops: list[str] = []
    cell_params: list[int] = []
    repeat_of: dict[tuple[int, int], int] = {}
    idx = array("q")  # (cell, epochs, repeat) per row
    vals = array("d")  # 8 metrics per row, METRIC_NAMES order
    loads = json.loads
    b64 = binascii.a2b_base64
    decode = _decode_metrics
    nrep = C.NUM_REPEATS
    for i, data in _iter_framed(path, progress):
        # Fast path for the plain layout ["h", 108, "adj", "ops", "b64"] (no escapes, any
        # spacing): splitting on quotes is exact there; anything else goes through json.loads.
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as e:
            raise TFRecordError(f"{path}: record {i}: not a JSON row ({e})") from None
        parts = text.split('"')
        row = None
        if len(parts) == 9 and "\\" not in text and parts[0].strip() == "[" and parts[4].strip() == "," \
                and parts[6].strip() == "," and parts[8].strip() == "]":
            ep = parts[2].strip()
            num = ep[1:-1].strip()
            if ep[:1] == "," and ep[-1:] == "," and num.isdigit() and num.isascii() and num[0] != "0":
                row = (parts[1], int(num), parts[3], parts[5], parts[7])
        if row is None:
            try:
                row = loads(text)
            except ValueError as e:
                raise TFRecordError(f"{path}: record {i}: not a JSON row ({e})") from None
            if type(row) is not list or len(row) != 5:
                raise TFRecordError(f"{path}: record {i}: expected a JSON list of 5 elements "
                                    f"[hash, epochs, adjacency, operations, metrics], got {_short(row)}")
        h, epochs, adj_s, ops_s, m64 = row
        if type(epochs) is not int or epochs <= 0:
            raise TFRecordError(f"{path}: record {i}: epochs must be a positive JSON integer, got {epochs!r}")
        try:
            pb = b64(m64, strict_mode=True)
            params, evals = decode(pb)
        except (binascii.Error, TypeError, ValueError) as e:
            raise TFRecordError(f"{path}: record {i}: metrics are not valid base64 ({e})") from None
        except (_ProtoError, IndexError, struct.error) as e:
            raise TFRecordError(f"{path}: record {i}: malformed ModelMetrics protobuf ({e})") from None
        if len(evals) < 3:
            raise TFRecordError(f"{path}: record {i}: ModelMetrics has {len(evals)} evaluation_data entries, "
                                f"need 3 (start, halfway, final)")
        c = cell_of.get(h)
        if c is None:
            if type(h) is not str or len(h) != 32 or not _HEX.issuperset(h):
                raise TFRecordError(f"{path}: record {i}: module hash must be 32 lowercase hex digits, got {h!r}")
            if type(adj_s) is not str or type(ops_s) is not str:
                raise TFRecordError(f"{path}: record {i}: adjacency and operations must be strings")
            if params is None:
                raise TFRecordError(f"{path}: record {i}: ModelMetrics has no trainable_parameters")
            c = len(cell_adj)
            cell_of[h] = c
            cell_adj.append(adj_s)
            cell_ops.append(ops_s)
            cell_params.append(params)
        elif adj_s != cell_adj[c] or ops_s != cell_ops[c] or (params is not None and params != cell_params[c]):
            raise TFRecordError(f"{path}: record {i}: rows of hash {h} disagree on adjacency, operations "
                                f"or trainable_parameters")
        k = (c, epochs)
        r = repeat_of.get(k, 0)
        if r >= nrep:
            raise TFRecordError(f"{path}: record {i}: more than {nrep} rows for hash {h} at {epochs} epochs")
        repeat_of[k] = r + 1
        idx.extend((c, epochs, r))
        e1, e2 = evals[1], evals[2]
        vals.extend((e1[2], e1[3], e1[4], e1[1], e2[2], e2[3], e2[4], e2[1]))
    store, first_codes = _build(path, cell_of, cell_adj, cell_ops, cell_params, idx, vals)
    if return_file_order:
        return store, store.find_codes(first_codes)
    return store


def _short(x) -> str:
    s = repr(x)
    return s if len(s) <= 80 else s[:77] + "..."


def _build(path, cell_of, cell_adj, cell_ops, cell_params, idx, vals):
    n = len(cell_adj)
    hashes = list(cell_of)  # insertion order == cell index
    adj = np.zeros((n, C.MAX_VERTICES, C.MAX_VERTICES), np.uint8)
    ops = np.full((n, C.MAX_VERTICES), C.PAD_LABEL, np.int8)
    nv = np.zeros(n, np.int8)
    lengths = np.fromiter((len(a) for a in cell_adj), np.int64, n)
    ops_cache: dict[str, np.ndarray] = {}
    for v in range(2, C.MAX_VERTICES + 1):
        rows = np.nonzero(lengths == v * v)[0]
        if rows.size == 0:
            continue
        raw = "".join(cell_adj[r] for r in rows).encode("ascii", "replace")
        bits = np.frombuffer(raw, np.uint8).reshape(rows.size, v, v) - ord("0")
        bad = np.nonzero(np.any(bits > 1, axis=(1, 2)))[0]
        if bad.size:
            raise TFRecordError(f"{path}: hash {hashes[rows[bad[0]]]}: adjacency must be '0'/'1' characters")
        adj[rows, :v, :v] = bits
        nv[rows] = v
    odd = np.nonzero(nv == 0)[0]
    if odd.size:
        raise TFRecordError(f"{path}: hash {hashes[odd[0]]}: adjacency string of length {lengths[odd[0]]} is not "
                            f"V*V for V in 2..{C.MAX_VERTICES}")
    for c in range(n):
        s = cell_ops[c]
        lab = ops_cache.get(s)
        if lab is None:
            lab = _parse_ops(path, hashes[c], s)
            ops_cache[s] = lab
        if lab.shape[0] != nv[c]:
            raise TFRecordError(f"{path}: hash {hashes[c]}: {lab.shape[0]} operations for a {nv[c]}-vertex adjacency")
        ops[c, : lab.shape[0]] = lab
    # the stored representative must be a pruned cell of the space
    r = np.arange(C.MAX_VERTICES)
    v64 = nv.astype(np.int64)
    lower = np.any(np.tril(np.ones((7, 7), bool))[None] & (adj != 0), axis=(1, 2))
    has_out = adj.any(axis=2)
    has_in = adj.any(axis=1)
    need_out = r[None, :] < (v64 - 1)[:, None]
    need_in = (r[None, :] > 0) & (r[None, :] < v64[:, None])
    bad = lower | np.any(need_out & ~has_out, axis=1) | np.any(need_in & ~has_in, axis=1) \
        | (adj.sum(axis=(1, 2)) > C.MAX_EDGES)
    if np.any(bad):
        c = int(np.nonzero(bad)[0][0])
        raise TFRecordError(f"{path}: hash {hashes[c]}: adjacency is not a pruned cell of the space "
                            f"(upper-triangular, every vertex on an input->output path, <= {C.MAX_EDGES} edges)")
    codes = _store.host_canonical_codes(adj, ops, nv)
    # metrics
    ix = np.frombuffer(idx, np.int64).reshape(-1, 3)
    vv = np.frombuffer(vals, np.float64).reshape(-1, 8)
    budgets = sorted(set(C.BUDGETS) | set(np.unique(ix[:, 1]).tolist()))
    bpos = np.searchsorted(np.asarray(budgets), ix[:, 1])
    shape = (n, len(budgets), C.NUM_REPEATS)
    metrics = {}
    for j, m in enumerate(_store.METRIC_NAMES):
        a = np.full(shape, np.nan, np.float32)
        a[ix[:, 0], bpos, ix[:, 2]] = vv[:, j]
        metrics[m] = a
    try:
        store = _store.make_store(
            adjacency=adj, operations=ops, num_vertices=nv, module_hash=hashes,
            trainable_parameters=np.asarray(cell_params, np.int64), metrics=metrics, budgets=budgets,
            canonical_code=codes, synthetic=False,
            provenance=[{"imported_from": os.path.basename(path), "rows": int(ix.shape[0]),
                         "bytes": os.path.getsize(path)}],
        )
    except _store.StoreError as e:
        raise TFRecordError(f"{path}: {e}") from None
    return store, codes


def _parse_ops(path, h, s: str) -> np.ndarray:
    names = s.split(",")
    if len(names) < 2 or names[0] != C.INPUT or names[-1] != C.OUTPUT:
        raise TFRecordError(f"{path}: hash {h}: operations must start with 'input' and end with 'output', got {s!r}")
    try:
        mid = [_OP_LABEL[o] for o in names[1:-1]]
    except KeyError as e:
        raise TFRecordError(f"{path}: hash {h}: unsupported op {e.args[0]!r} (available ops = "
                            f"{list(C.AVAILABLE_OPS)})") from None
    return np.array([C.INPUT_LABEL] + mid + [C.OUTPUT_LABEL], np.int8)


def iter_rows(store: _store.Store) -> Iterator[bytes]:
    """The dataset rows of a store as JSON payloads: hashes ascending, then budgets, repeats.

    Only repeats with at least one non-NaN metric are written; absent metric values inside a
    written repeat are written as NaN doubles. ``evaluation_data[0]`` (start of training,
    not kept in a store) is written with ``current_epoch = 0`` and NaN values, and
    ``total_time`` is omitted.
    """
    order = np.argsort(store.module_hash, kind="stable")
    names = {C.INPUT_LABEL: C.INPUT, C.OUTPUT_LABEL: C.OUTPUT, **{i: o for i, o in enumerate(C.AVAILABLE_OPS)}}
    m = [np.asarray(getattr(store, k)) for k in _store.METRIC_NAMES]
    present = np.zeros(m[0].shape, bool)
    for a in m:
        present |= ~np.isnan(a)
    budgets = [int(b) for b in store.budgets]
    dumps = json.dumps
    b64 = binascii.b2a_base64
    nan = _NAN
    for row in order:
        row = int(row)
        v = int(store.num_vertices[row])
        h = store.module_hash[row].decode("ascii")
        adj_s = "".join("1" if x else "0" for x in store.adjacency[row, :v, :v].reshape(-1))
        ops_s = ",".join(names[int(x)] for x in store.operations[row, :v])
        params = int(store.trainable_parameters[row])
        for bi, epochs in enumerate(budgets):
            for r in np.nonzero(present[row, bi])[0]:
                val = [float(a[row, bi, r]) for a in m]
                ev1 = [epochs / 2, val[3], val[0], val[1], val[2]]
                ev2 = [float(epochs), val[7], val[4], val[5], val[6]]
                pb = encode_metrics(params, [[0.0, nan, nan, nan, nan], ev1, ev2])
                yield dumps([h, epochs, adj_s, ops_s, b64(pb, newline=False).decode("ascii")]).encode()


def write_dataset(path, store: _store.Store, *, progress: bool = True) -> int:
    """Export a store in the original file format (atomic write); see :func:`iter_rows`.

    Returns:
      The number of rows written.
    """
    if not isinstance(store, _store.Store):
        raise TFRecordError(f"write_dataset expects a Store, got {type(store).__name__}")
    rows = iter_rows(store)
    if progress:
        from tqdm import tqdm  # noqa: PLC0415

        rows = tqdm(rows, unit="row", desc=os.path.basename(os.fspath(path)), leave=False)
    return write_records(path, rows)
