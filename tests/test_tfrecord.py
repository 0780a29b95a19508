"""The original dataset file without TensorFlow: CRC32C framing, protobuf, rows, round trips."""

import base64
import json
import math
import struct

import numpy as np
import pytest

from nasbench_jax import api
from nasbench_jax import store as st
from nasbench_jax import tfrecord as tfr

OPS = {-1: "input", -2: "output", 0: "conv3x3-bn-relu", 1: "conv1x1-bn-relu", 2: "maxpool3x3"}
KEYS = ("halfway_training_time", "halfway_train_accuracy", "halfway_validation_accuracy", "halfway_test_accuracy",
        "final_training_time", "final_train_accuracy", "final_validation_accuracy", "final_test_accuracy")


# --- an independent writer, written from the specification (bitwise CRC, hand-built proto) ---


def _crc32c_bitwise(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 & -(crc & 1))
    return crc ^ 0xFFFFFFFF


def _masked(data: bytes) -> int:
    c = _crc32c_bitwise(data)
    return ((((c >> 15) | (c << 17)) & 0xFFFFFFFF) + 0xA282EAD8) % 2**32


def _frame(data: bytes) -> bytes:
    n = struct.pack("<Q", len(data))
    return n + struct.pack("<I", _masked(n)) + data + struct.pack("<I", _masked(data))


def _varint(x: int) -> bytes:
    x %= 2**64
    out = b""
    while x >= 0x80:
        out += bytes([x & 0x7F | 0x80])
        x >>= 7
    return out + bytes([x])


def _eval_msg(fields: dict, checkpoint: str = "") -> bytes:
    """EvaluationData with the given fields, written in REVERSE field order, plus a path."""
    num = {"current_epoch": 1, "training_time": 2, "train_accuracy": 3, "validation_accuracy": 4,
           "test_accuracy": 5}
    out = b""
    if checkpoint:
        out += b"\x32" + _varint(len(checkpoint)) + checkpoint.encode()
    for name in sorted(fields, key=lambda k: -num[k]):
        out += bytes([num[name] << 3 | 1]) + struct.pack("<d", fields[name])
    return out


def _metrics_msg(params: int, evals: list) -> bytes:
    """ModelMetrics: params first, an unknown varint field 7, then evaluation_data, total_time."""
    out = b"\x10" + _varint(params) + b"\x38" + _varint(123456)
    for e in evals:
        out += b"\x0a" + _varint(len(e)) + e
    return out + b"\x19" + struct.pack("<d", 4321.5)


def _rows_from_records(full_records, sample_records):
    """(hash, epochs, adj string, ops string, repeat index, expected 8 values) per dataset row."""
    rows = []
    for rec in full_records:
        f = rec["fixed"]
        adj_s = "".join(str(x) for row in f["module_adjacency"] for x in row)
        ops_s = ",".join(f["module_operations"])
        for r, point in enumerate(rec["computed"]["108"]):
            rows.append((rec["hash"], 108, adj_s, ops_s, f["trainable_parameters"], r, [point[k] for k in KEYS]))
    for rec in sample_records:
        ops = [o for o in rec["operations"] if o != -3]
        v = len(ops)
        adj_s = "".join(str(x) for row in np.array(rec["adjacency"])[:v, :v] for x in row)
        ops_s = ",".join(OPS[o] for o in ops)
        for b in (4, 12, 36, 108):
            vals = [math.nan] * 8
            vals[6] = rec["final_validation_accuracy"][str(b)]
            if b == 108:
                vals[4] = rec["final_training_time_108"]
            rows.append((rec["hash"], b, adj_s, ops_s, rec["trainable_parameters"], 0, vals))
    return rows


def _encode_row(row, checkpoint="gs://bucket/model.ckpt-1"):
    h, epochs, adj_s, ops_s, params, _, vals = row
    names = ("training_time", "train_accuracy", "validation_accuracy", "test_accuracy")
    half = {n: v for n, v in zip(names, vals[:4]) if not math.isnan(v)}
    final = {n: v for n, v in zip(names, vals[4:]) if not math.isnan(v)}
    evals = [
        _eval_msg({"current_epoch": 0.0, "train_accuracy": 0.1}),
        _eval_msg(dict(half, current_epoch=epochs / 2), checkpoint),
        _eval_msg(dict(final, current_epoch=float(epochs)), checkpoint),
    ]
    pb = _metrics_msg(params, evals)
    return json.dumps([h, epochs, adj_s, ops_s, base64.b64encode(pb).decode()]).encode()


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, full_records_52, sample_1k):
    """An original-format file of 52 full + 200 sample records, rows shuffled (seeded)."""
    rows = _rows_from_records(full_records_52, sample_1k[:200])
    order = np.random.default_rng(0).permutation(len(rows))
    # keep repeats of one (hash, epochs) in repeat order, but interleaved with everything else
    rows_shuffled = [rows[i] for i in order]
    seen = {}
    fixed = []
    for row in rows_shuffled:
        k = (row[0], row[1])
        same = [r for r in rows if (r[0], r[1]) == k]
        fixed.append(same[seen.get(k, 0)])
        seen[k] = seen.get(k, 0) + 1
    path = tmp_path_factory.mktemp("tfr") / "nb.tfrecord"
    path.write_bytes(b"".join(_frame(_encode_row(r)) for r in fixed))
    return path, fixed


def _same(a, b):
    return len(a) == len(b) and all((math.isnan(x) and math.isnan(y)) or x == y for x, y in zip(a, b))


# --- CRC and framing ------------------------------------------------------------------


def test_crc32c_check_value_and_implementations_agree():
    assert tfr.crc32c(b"123456789") == 0xE3069283
    assert tfr.crc32c_python(b"123456789") == 0xE3069283
    assert _crc32c_bitwise(b"123456789") == 0xE3069283
    rng = np.random.default_rng(1)
    for n in (0, 1, 7, 64, 1000):
        data = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
        assert tfr.crc32c(data) == tfr.crc32c_python(data) == _crc32c_bitwise(data)


def test_abc_record_matches_the_specification_example():
    expect = bytes.fromhex("0300000000000000 b099490e 616263 6e57f121".replace(" ", ""))
    assert tfr.encode_record(b"abc") == expect == _frame(b"abc")


def test_iter_records_reads_framed_payloads(tmp_path):
    payloads = [b"", b"abc", bytes(range(256)) * 3]
    p = tmp_path / "r.tfrecord"
    p.write_bytes(b"".join(_frame(x) for x in payloads))
    assert list(tfr.iter_records(p)) == payloads
    q = tmp_path / "w.tfrecord"
    assert tfr.write_records(q, payloads) == 3
    assert q.read_bytes() == p.read_bytes()


@pytest.mark.parametrize(
    "damage, pattern",
    [
        (lambda b: b[:-2], r"truncated file: record 1 at byte 19 declares 3 data bytes \+ a 4-byte CRC, only 5 bytes left"),
        (lambda b: b[:24], r"truncated file: record 1 at byte 19 has only 5 header bytes"),
        (lambda b: b[:19 + 13], r"truncated file: record 1"),
        (lambda b: b[:32] + bytes([b[32] ^ 0x10]) + b[33:], r"record 1 at byte 19: data CRC mismatch"),
        (lambda b: b[:19] + bytes([b[19] ^ 0x01]) + b[20:], r"record 1 at byte 19: length CRC mismatch"),
        (lambda b: b"abc" + b, r"record 0 at byte 0: length CRC mismatch"),
        (lambda b: b"", r"empty file"),
    ],
)
def test_damaged_files_get_clear_errors(tmp_path, damage, pattern):
    good = _frame(b"xyz") + _frame(b"abc")  # 19 bytes each: record 1 starts at byte 19
    p = tmp_path / "bad.tfrecord"
    p.write_bytes(damage(good))
    with pytest.raises(tfr.TFRecordError, match=pattern) as e:
        list(tfr.iter_records(p))
    assert str(p) in str(e.value)


# --- protobuf ---------------------------------------------------------------------------


def test_decode_metrics_any_order_unknown_fields_and_negative_varint():
    ev = _eval_msg({"current_epoch": 108.0, "training_time": 1155.85302734375, "train_accuracy": 1.0,
                    "validation_accuracy": 0.9, "test_accuracy": 0.5}, "gs://x/model.ckpt-9")
    ev += b"\x45" + b"\x01\x02\x03\x04"  # unknown fixed32 field 8
    ev += b"\x21" + struct.pack("<d", 0.25)  # a repeated optional scalar: the last value wins
    pb = b"\x0a\x00" + b"\x52\x03abc" + b"\x0a" + _varint(len(ev)) + ev + b"\x10" + _varint(-5)
    params, evals = tfr.decode_metrics(pb)
    assert params == -5
    assert len(evals) == 2 and all(math.isnan(x) for x in evals[0])
    assert evals[1] == [108.0, 1155.85302734375, 1.0, 0.25, 0.5]


def test_encode_metrics_fields_in_number_order():
    pb = tfr.encode_metrics(882570, [[0.0, 1.0, 0.5, 0.25, 0.125]])
    msg = b"\x09" + struct.pack("<d", 0.0) + b"\x11" + struct.pack("<d", 1.0) + b"\x19" + struct.pack("<d", 0.5) \
        + b"\x21" + struct.pack("<d", 0.25) + b"\x29" + struct.pack("<d", 0.125)
    assert pb == b"\x0a\x2d" + msg + b"\x10" + _varint(882570)


@pytest.mark.parametrize("pb, pattern", [
    (b"\x0a\x05\x09\x00", "runs past the end"),
    (b"\x10\xff\xff", "truncated varint"),
    (b"\x0b", "unsupported wire type 3"),
])
def test_decode_metrics_malformed(pb, pattern):
    with pytest.raises(tfr.TFRecordError, match=pattern):
        tfr.decode_metrics(pb)


def test_protobuf_library_agrees_with_the_hand_written_codec():
    pytest.importorskip("google.protobuf")
    cls = tfr.protobuf_metrics_class()
    # library -> ours
    msg = cls(trainable_parameters=-7, total_time=9.5)
    msg.evaluation_data.add(current_epoch=0.0, checkpoint_path="")
    msg.evaluation_data.add(current_epoch=54.0, training_time=600.5, train_accuracy=0.75,
                            validation_accuracy=0.7, test_accuracy=0.69, checkpoint_path="gs://a/b")
    params, evals = tfr.decode_metrics(msg.SerializeToString())
    assert params == -7
    assert evals[1] == [54.0, 600.5, 0.75, 0.7, 0.69] and evals[0][0] == 0.0 and math.isnan(evals[0][1])
    # ours -> library (byte-identical serialisation too)
    ours = tfr.encode_metrics(3824576, [[0.0, 1.0, 0.5, 0.25, 0.125], [108.0, 2.0, 1.0, 0.9, 0.8]])
    back = cls.FromString(ours)
    assert back.trainable_parameters == 3824576
    assert [e.validation_accuracy for e in back.evaluation_data] == [0.25, 0.9]
    assert back.SerializeToString() == ours


# --- dataset rows <-> store ---------------------------------------------------------------


def test_import_matches_every_record(dataset, full_records_52, sample_1k):
    path, rows = dataset
    s, order = tfr.read_dataset(path, progress=False, return_file_order=True)
    assert s.num_cells == 252 and s.budgets.tolist() == [4, 12, 36, 108]
    nb = api.NASBench(s)
    for rec in full_records_52:
        fixed, computed = nb.get_metrics_from_hash(rec["hash"])
        assert computed == {108: rec["computed"]["108"]}  # repeats in file order
        assert fixed["module_adjacency"].tolist() == rec["fixed"]["module_adjacency"]
        assert fixed["module_adjacency"].dtype == np.int8
        assert fixed["module_operations"] == rec["fixed"]["module_operations"]
        assert fixed["trainable_parameters"] == rec["fixed"]["trainable_parameters"]
    for rec in sample_1k[:200]:
        fixed, computed = nb.get_metrics_from_hash(rec["hash"])
        assert sorted(computed) == [4, 12, 36, 108]
        for b, reps in computed.items():
            assert len(reps) == 1
            assert reps[0]["final_validation_accuracy"] == rec["final_validation_accuracy"][str(b)]
            assert math.isnan(reps[0]["final_test_accuracy"]) and math.isnan(reps[0]["halfway_training_time"])
        assert computed[108][0]["final_training_time"] == rec["final_training_time_108"]
        v = sum(o != -3 for o in rec["operations"])
        assert fixed["module_adjacency"].tolist() == np.array(rec["adjacency"])[:v, :v].tolist()
    # file order of first appearance = hash_iterator order of an API built on the file
    first = list(dict.fromkeys(r[0] for r in rows))
    assert [s.module_hash[i].decode() for i in order] == first
    assert api.NASBench(path).hash_iterator() == first
    assert st.verify_store(s, hash_sample=-1) == []


def test_export_writes_the_same_rows_back(dataset, tmp_path):
    path, rows = dataset
    s = tfr.read_dataset(path, progress=False)
    out = tmp_path / "out.tfrecord"
    n = tfr.write_dataset(out, s, progress=False)
    assert n == len(rows)
    got = []
    data = out.read_bytes()
    pos = 0
    while pos < len(data):  # independent framing check (bitwise CRC)
        (length,) = struct.unpack_from("<Q", data, pos)
        assert struct.unpack_from("<I", data, pos + 8)[0] == _masked(data[pos:pos + 8])
        payload = data[pos + 12:pos + 12 + length]
        assert struct.unpack_from("<I", data, pos + 12 + length)[0] == _masked(payload)
        pos += 16 + length
        h, epochs, adj_s, ops_s, m64 = json.loads(payload)
        params, evals = tfr.decode_metrics(base64.b64decode(m64))
        assert evals[1][0] == epochs / 2 and evals[2][0] == epochs
        vals = [evals[1][1], evals[1][2], evals[1][3], evals[1][4], evals[2][1], evals[2][2], evals[2][3], evals[2][4]]
        got.append((h, epochs, adj_s, ops_s, params, vals))
    assert [g[0] for g in got] == sorted(g[0] for g in got)  # hashes ascending
    expect = {}
    for h, e, a, o, p, r, vals in rows:
        expect.setdefault((h, e), []).append((a, o, p, vals))
    grouped = {}
    for h, e, a, o, p, vals in got:
        grouped.setdefault((h, e), []).append((a, o, p, vals))
    assert grouped.keys() == expect.keys()
    for k in expect:
        for (a1, o1, p1, v1), (a2, o2, p2, v2) in zip(expect[k], grouped[k], strict=True):
            assert (a1, o1, p1) == (a2, o2, p2) and _same(v1, v2)
    # and a second import of the export is the same store
    t = tfr.read_dataset(out, progress=False)
    for c in st.COLUMNS[:-1]:
        x, y = getattr(s, c), getattr(t, c)
        assert np.array_equal(x, y, equal_nan=x.dtype.kind == "f"), c


def test_tensorflow_reads_our_export_and_writes_what_we_import(dataset, tmp_path):
    tf = pytest.importorskip("tensorflow")
    path, rows = dataset
    s = tfr.read_dataset(path, progress=False)
    out = tmp_path / "ours.tfrecord"
    tfr.write_dataset(out, s, progress=False)
    theirs = [bytes(x.numpy()) for x in tf.data.TFRecordDataset(str(out))]  # TF checks the CRCs
    assert theirs == list(tfr.iter_records(out))
    tf_file = tmp_path / "tf.tfrecord"
    with tf.io.TFRecordWriter(str(tf_file)) as w:
        for payload in tfr.iter_records(out):
            w.write(payload)
    assert tf_file.read_bytes() == out.read_bytes()


def _write_rows(path, payloads):
    path.write_bytes(b"".join(_frame(p) for p in payloads))
    return path


def _good_row(full_records_52, **change):
    rec = full_records_52[0]
    row = _rows_from_records([rec], [])[0]
    return json.loads(_encode_row(row))


@pytest.mark.parametrize("edit, pattern", [
    (lambda r: b"{not json", r"record 0: not a JSON row"),
    (lambda r: json.dumps(r[:4]).encode(), r"record 0: expected a JSON list of 5 elements"),
    (lambda r: json.dumps([r[0], "108"] + r[2:]).encode(), r"record 0: epochs must be a positive JSON integer"),
    (lambda r: json.dumps(r[:4] + ["%%%"]).encode(), r"record 0: metrics are not valid base64"),
    (lambda r: json.dumps(r[:4] + [base64.b64encode(b"\x0a\x09\x00").decode()]).encode(),
     r"record 0: malformed ModelMetrics protobuf"),
    (lambda r: json.dumps(r[:4] + [base64.b64encode(b"\x10\x05\x0a\x00").decode()]).encode(),
     r"record 0: ModelMetrics has 1 evaluation_data entries, need 3"),
    (lambda r: json.dumps(["XYZ"] + r[1:]).encode(), r"record 0: module hash must be 32 lowercase hex digits"),
    (lambda r: json.dumps(r[:2] + ["01010"] + r[3:]).encode(), r"adjacency string of length 5 is not V\*V"),
    (lambda r: json.dumps(r[:3] + [r[3].replace("conv1x1-bn-relu", "conv5x5")] + r[4:]).encode(),
     r"unsupported op 'conv5x5'"),
    (lambda r: json.dumps(r[:2] + ["1" + r[2][1:]] + r[3:]).encode(), r"not a pruned cell of the space"),
])
def test_bad_rows_get_clear_errors(tmp_path, full_records_52, edit, pattern):
    p = _write_rows(tmp_path / "rows.tfrecord", [edit(_good_row(full_records_52))])
    with pytest.raises(tfr.TFRecordError, match=pattern) as e:
        tfr.read_dataset(p, progress=False)
    assert str(p) in str(e.value)


def test_inconsistent_and_excess_repeats(tmp_path, full_records_52):
    r = _good_row(full_records_52)
    other = list(r)
    other[3] = other[3].replace("conv1x1-bn-relu", "maxpool3x3", 1)
    p = _write_rows(tmp_path / "a.tfrecord", [json.dumps(r).encode(), json.dumps(other).encode()])
    with pytest.raises(tfr.TFRecordError, match=r"record 1: rows of hash \w+ disagree"):
        tfr.read_dataset(p, progress=False)
    p = _write_rows(tmp_path / "b.tfrecord", [json.dumps(r).encode()] * 4)
    with pytest.raises(tfr.TFRecordError, match=r"record 3: more than 3 rows for hash \w+ at 108 epochs"):
        tfr.read_dataset(p, progress=False)


def test_nasbench_reads_a_tfrecord_directly(dataset, full_records_52):
    path, _ = dataset
    nb = api.NASBench(path, seed=3)
    assert nb.valid_epochs == {4, 12, 36, 108}
    rec = full_records_52[5]
    spec = api.ModelSpec(rec["fixed"]["module_adjacency"], rec["fixed"]["module_operations"])
    q = nb.query(spec)
    assert q["validation_accuracy"] in [p["final_validation_accuracy"] for p in rec["computed"]["108"]]


def test_any_json_spelling_of_a_row_imports_the_same(tmp_path, full_records_52):
    rows = [json.loads(_encode_row(r)) for r in _rows_from_records(full_records_52[:2], [])]
    spellings = {
        "default": [json.dumps(r) for r in rows],
        "compact": [json.dumps(r, separators=(",", ":")) for r in rows],
        "spaced": [json.dumps(r, indent=2) for r in rows],
        "escaped": ['["\\u0030' + r[0][1:] + '"' + json.dumps(r)[35:] if r[0][0] == "0" else
                    '["' + r[0][:-1] + '\\u00' + r[0][-1].encode().hex() + '"' + json.dumps(r)[35:] for r in rows],
    }
    stores = {}
    for name, texts in spellings.items():
        assert [json.loads(t) for t in texts] == rows  # all spell the same JSON rows
        p = _write_rows(tmp_path / f"{name}.tfrecord", [t.encode() for t in texts])
        stores[name] = tfr.read_dataset(p, progress=False)
    for name, s in stores.items():
        for c in st.COLUMNS[:-1]:
            x, y = getattr(stores["default"], c), getattr(s, c)
            assert np.array_equal(x, y, equal_nan=x.dtype.kind == "f"), (name, c)
