"""The .npz results store: schema, atomic writes, memory-mapped open, verify, merge, CLI."""

import io
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import zipfile

import numpy as np
import pytest

from nasbench_jax import cli
from nasbench_jax import store as st
from nasbench_jax.graph import reference


@pytest.fixture(scope="module")
def example():
    return st.open_store(st.example_store_path())


def _small_store(records, *, budgets=(4, 12, 36, 108)):
    """A store from real 1k-sample records (final validation accuracy of repeat 0)."""
    n = len(records)
    adj = np.array([r["adjacency"] for r in records], np.uint8)
    ops = np.array([r["operations"] for r in records], np.int8)
    nv = (ops != -3).sum(1)
    val = np.full((n, len(budgets), 3), np.nan, np.float32)
    for i, r in enumerate(records):
        for k, b in enumerate(budgets):
            val[i, k, 0] = r["final_validation_accuracy"][str(b)]
    return st.make_store(
        adjacency=adj, operations=ops, num_vertices=nv, module_hash=[r["hash"] for r in records],
        trainable_parameters=[r["trainable_parameters"] for r in records],
        metrics={"final_validation_accuracy": val}, budgets=budgets, provenance=["test"],
    )


def _npz_columns(s):
    cols = {c: np.asarray(v) for c, v in s.columns().items() if c != "metadata"}
    cols["metadata"] = np.array(json.dumps(s.metadata))
    return cols


def _assert_same(a, b):
    for c in st.COLUMNS:
        x, y = getattr(a, c), getattr(b, c)
        if c == "metadata":
            assert x == y
        else:
            assert x.dtype == y.dtype and x.shape == y.shape, c
            assert np.array_equal(x, y, equal_nan=x.dtype.kind == "f"), c


# --- building ---------------------------------------------------------------------------


def test_make_store_sorts_by_reference_canonical_code(sample_1k):
    recs = sample_1k[:40]
    s = _small_store(recs)
    by_hash = {r["hash"]: r for r in recs}
    expect_codes = []
    for h in s.module_hash:
        r = by_hash[h.decode()]
        o = [x for x in r["operations"] if x != -3]
        v = len(o)
        expect_codes.append(reference.canonical_code(np.array(r["adjacency"])[:v, :v], o))
    assert s.canonical_code.tolist() == expect_codes  # codes of the oracle, in row order
    assert s.canonical_code.tolist() == sorted(expect_codes)
    for i, h in enumerate(s.module_hash):  # rows moved together with their metrics
        r = by_hash[h.decode()]
        assert s.final_validation_accuracy[i, 3, 0] == np.float32(r["final_validation_accuracy"]["108"])
        assert np.isnan(s.final_validation_accuracy[i, :, 1:]).all()
        assert s.trainable_parameters[i] == r["trainable_parameters"]
    assert s.metadata["schema_version"] == st.SCHEMA_VERSION and s.metadata["num_repeats"] == 3


def test_host_canonical_codes_match_reference_on_relabelings(sample_1k):
    rng = np.random.default_rng(0)
    adj, ops, nv, expect = [], [], [], []
    for r in sample_1k[:60]:
        o = [x for x in r["operations"] if x != -3]
        v = len(o)
        m = np.array(r["adjacency"])[:v, :v]
        code = reference.canonical_code(m, o)
        for _ in range(3):
            perm = [0] + list(rng.permutation(np.arange(1, v - 1))) + [v - 1]
            pm, pl = reference.permute_graph(m, o, perm)
            if np.tril(pm).any():
                continue
            a = np.zeros((7, 7), np.uint8)
            a[:v, :v] = pm
            adj.append(a)
            ops.append(pl + [-3] * (7 - v))
            nv.append(v)
            expect.append(code)
    got = st.host_canonical_codes(np.array(adj), np.array(ops, np.int8), np.array(nv))
    assert got.dtype == np.uint32 and got.tolist() == expect


def test_make_store_rejects_duplicate_cells(sample_1k):
    r = sample_1k[0]
    with pytest.raises(st.StoreConflictError, match="same cell"):
        _small_store([r, dict(r, hash="f" * 32)])


def test_store_constructor_checks_schema(example):
    cols = example.columns()
    bad = dict(cols, adjacency=np.asarray(cols["adjacency"]).astype(np.int64))
    with pytest.raises(st.StoreSchemaError, match="'adjacency' has dtype int64"):
        st.Store(**bad)
    bad = dict(cols, metadata=dict(cols["metadata"], schema_version=99))
    with pytest.raises(st.StoreSchemaError, match="schema version 99"):
        st.Store(**bad)


# --- writing and opening -----------------------------------------------------------------


def test_write_open_round_trip_memory_mapped(tmp_path, sample_1k):
    s = _small_store(sample_1k[:100])
    p = tmp_path / "s.npz"
    st.write_store(p, s)
    t = st.open_store(p)
    _assert_same(s, t)
    assert not t.final_validation_accuracy.flags.writeable  # read-only mapping
    assert t.final_validation_accuracy.ctypes.data % 64 == 0  # aligned members
    # an independent reader sees the same columns (plain numpy, no pickle)
    with np.load(p, allow_pickle=False) as z:
        assert sorted(z.files) == sorted(st.COLUMNS)
        assert np.array_equal(z["canonical_code"], s.canonical_code)
        assert json.loads(str(z["metadata"][()])) == s.metadata
    assert os.listdir(tmp_path) == ["s.npz"]  # no temp file left behind


def test_open_compressed_npz_from_another_writer(tmp_path, example):
    p = tmp_path / "c.npz"
    np.savez_compressed(p, **_npz_columns(example))
    _assert_same(example, st.open_store(p))


@pytest.mark.parametrize(
    "mutate, error, pattern",
    [
        (lambda c: c.pop("final_test_accuracy"), st.StoreSchemaError, r"missing columns \['final_test_accuracy'\]"),
        (lambda c: c.update(extra=np.zeros(3)), st.StoreSchemaError, r"unexpected extra columns \['extra'\]"),
        (lambda c: c.update(metadata=np.array(json.dumps({"schema_version": 7}))), st.StoreSchemaError,
         "unsupported schema version 7"),
        (lambda c: c.pop("metadata"), st.StoreSchemaError, "no 'metadata' column"),
        (lambda c: c.update(num_vertices=c["num_vertices"].astype(np.int64)), st.StoreSchemaError,
         "'num_vertices' has dtype int64, expected int8"),
        (lambda c: c.update(operations=c["operations"][:, :5]), st.StoreSchemaError,
         r"'operations' has shape \(1052, 5\), expected \(1052, 7\)"),
        (lambda c: c.update(final_training_time=c["final_training_time"][:, :, :2]), st.StoreSchemaError,
         "has 2 repeats, other metrics have 3"),
        (lambda c: c.update(canonical_code=c["canonical_code"][::-1].copy()), st.StoreSchemaError,
         "unsorted codes at rows 0 and 1"),
        (lambda c: c["canonical_code"].__setitem__(5, c["canonical_code"][4]), st.StoreSchemaError,
         "duplicate codes at rows 4 and 5"),
    ],
)
def test_open_names_the_file_and_the_problem(tmp_path, example, mutate, error, pattern):
    cols = _npz_columns(example)
    cols = {k: np.array(v) for k, v in cols.items()}
    mutate(cols)
    p = tmp_path / "bad.npz"
    np.savez(p, **cols)
    with pytest.raises(error, match=pattern) as e:
        st.open_store(p)
    assert str(p) in str(e.value)


def test_open_refuses_pickled_columns(tmp_path, example):
    cols = _npz_columns(example)
    cols["module_hash"] = np.array([b"x"] * example.num_cells, dtype=object)
    p = tmp_path / "pickle.npz"
    np.savez(p, **cols)
    with pytest.raises(st.StoreError, match="module_hash") as e:
        st.open_store(p)
    assert "pickle" in str(e.value) or "Object arrays" in str(e.value)


def test_open_bad_files(tmp_path, example):
    with pytest.raises(st.StoreFormatError, match="no such store file"):
        st.open_store(tmp_path / "missing.npz")
    p = tmp_path / "text.npz"
    p.write_text("hello")
    with pytest.raises(st.StoreFormatError, match="not a store: not an .npz"):
        st.open_store(p)
    good = tmp_path / "good.npz"
    st.write_store(good, example)
    data = good.read_bytes()
    cut = tmp_path / "cut.npz"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(st.StoreFormatError, match="cut.npz: not a store: corrupt or truncated"):
        st.open_store(cut)


def test_interrupted_write_keeps_the_old_store(tmp_path, example, monkeypatch):
    p = tmp_path / "s.npz"
    st.write_store(p, example)
    before = p.read_bytes()
    calls = []
    real = st._write_member

    def failing(zf, f, name, data):
        calls.append(name)
        if len(calls) == 4:
            raise OSError("disk full (simulated)")
        return real(zf, f, name, data)

    monkeypatch.setattr(st, "_write_member", failing)
    smaller = example.take(np.arange(10))
    with pytest.raises(OSError, match="disk full"):
        st.write_store(p, smaller)
    assert p.read_bytes() == before and os.listdir(tmp_path) == ["s.npz"]
    _assert_same(example, st.open_store(p))


def test_killed_writer_never_leaves_a_partial_store(tmp_path):
    """SIGKILL a writer in the middle of a write: the destination is absent or complete."""
    target = tmp_path / "big.npz"
    marker = tmp_path / "started"
    script = textwrap.dedent(
        f"""
        import pathlib, time
        import numpy as np
        from nasbench_jax import store as st
        s = st.open_store(st.example_store_path())
        real = st._write_member
        def slow(zf, f, name, data):
            real(zf, f, name, data)
            if name == "adjacency.npy":
                pathlib.Path({str(marker)!r}).write_text("x")
                time.sleep(60)
        st._write_member = slow
        st.write_store({str(target)!r}, s)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=os.path.dirname(os.path.dirname(__file__)))
    try:
        deadline = time.time() + 60
        while not marker.exists():
            assert proc.poll() is None, "writer exited early"
            assert time.time() < deadline
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not target.exists()  # only the hidden temp file may remain
    leftovers = [f for f in os.listdir(tmp_path) if f != "started"]
    assert all(f.startswith(".big.npz.") and f.endswith(".tmp") for f in leftovers)


# --- verify ------------------------------------------------------------------------------


def test_verify_clean_example_store(example):
    assert st.verify_store(st.example_store_path(), hash_sample=-1) == []
    assert example.num_cells == 1052


def test_verify_finds_content_problems(example):
    cols = example.columns()
    cols = {k: (np.array(v) if k != "metadata" else v) for k, v in cols.items()}
    cols["final_validation_accuracy"][3, 3, 0] = 1.5  # accuracy outside [0, 1]
    cols["final_training_time"][7, 3, 0] = -1.0  # negative time
    cols["module_hash"][10] = b"0" * 32  # a wrong hash
    ops = cols["operations"]
    row = int(np.nonzero((ops[:, 1] == 0))[0][0])
    ops[row, 1] = 1  # relabel one op: representative no longer matches code and hash
    s = st.Store(**cols)
    problems = "\n".join(st.verify_store(s, hash_sample=-1))
    assert "final_validation_accuracy outside [0, 1]" in problems
    assert "negative final_training_time" in problems
    assert "canonical_code that does not match" in problems
    assert "module_hash that does not match" in problems


def test_verify_detects_bit_flips_in_the_file(tmp_path, example):
    p = tmp_path / "s.npz"
    st.write_store(p, example)
    data = bytearray(p.read_bytes())
    with zipfile.ZipFile(p) as zf:
        info = zf.getinfo("final_test_accuracy.npy")
    data[info.header_offset + 200] ^= 0x01  # inside the member's data
    p.write_bytes(bytes(data))
    problems = st.verify_store(p, hash_sample=0)
    assert any("final_test_accuracy.npy fails its CRC" in x for x in problems)


# --- merge -------------------------------------------------------------------------------


def _split_repeats(s, rows, repeats):
    cols = s.columns()
    out = {k: (np.array(v) if k != "metadata" else dict(v)) for k, v in cols.items()}
    keep = np.zeros(s.num_repeats, bool)
    keep[list(repeats)] = True
    for m in st.METRIC_NAMES:
        out[m][:, :, ~keep] = np.nan
    return st.Store(**out).take(rows)


def test_merge_overlapping_shards_loses_and_duplicates_nothing(example):
    n = example.num_cells
    a = _split_repeats(example, np.arange(0, 700), [0])
    b = _split_repeats(example, np.arange(500, n), [0])  # overlaps a on rows 500..699, same values
    c = _split_repeats(example, np.arange(n), [1, 2])
    merged = st.merge_stores([c, a, b])
    assert merged.num_cells == n
    for col in st.COLUMNS[:-1]:
        x, y = getattr(example, col), getattr(merged, col)
        assert np.array_equal(x, y, equal_nan=x.dtype.kind == "f"), col
    assert merged.metadata["merged_from"] == 3 and not merged.synthetic


def test_merge_budget_union(example):
    cols = {k: (np.array(v) if k != "metadata" else dict(v)) for k, v in example.columns().items()}
    only108 = {m: cols[m][:, 3:4] for m in st.METRIC_NAMES}
    meta = dict(cols["metadata"], budgets=[108])
    s108 = st.Store(**{**cols, **only108, "budgets": np.array([108], np.int32), "metadata": meta})
    rest = _split_repeats(example, np.arange(example.num_cells), [0, 1, 2])
    for m in st.METRIC_NAMES:
        getattr(rest, m).setflags(write=True)
        getattr(rest, m)[:, 3] = np.nan
    merged = st.merge_stores([s108, rest])
    assert merged.budgets.tolist() == [4, 12, 36, 108]
    for m in st.METRIC_NAMES:
        assert np.array_equal(getattr(merged, m), getattr(example, m), equal_nan=True)


def test_merge_conflicts_are_clear_errors(example):
    a = example.take(np.arange(20))
    cols = {k: (np.array(v) if k != "metadata" else dict(v)) for k, v in a.columns().items()}
    cols["final_validation_accuracy"][4, 3, 0] += 0.01
    b = st.Store(**cols)
    h = a.module_hash[4].decode()
    with pytest.raises(st.StoreConflictError, match=f"final_validation_accuracy of cell {h} at 108 epochs, repeat 0"):
        st.merge_stores([a, b])
    cols = {k: (np.array(v) if k != "metadata" else dict(v)) for k, v in a.columns().items()}
    cols["trainable_parameters"][2] += 1
    with pytest.raises(st.StoreConflictError, match="trainable_parameters"):
        st.merge_stores([a, st.Store(**cols)])
    with pytest.raises(st.StoreError, match="at least one"):
        st.merge_stores([])


# --- CLI ---------------------------------------------------------------------------------


def test_cli_verify_merge_export_import(tmp_path, example, capsys):
    a, b = tmp_path / "a.npz", tmp_path / "b.npz"
    st.write_store(a, example.take(np.arange(0, 600)))
    st.write_store(b, example.take(np.arange(400, example.num_cells)))
    out = tmp_path / "m.npz"
    assert cli.main(["merge", str(a), str(b), "--out", str(out)]) == 0
    merged = st.open_store(out)
    for c in st.COLUMNS[:-1]:  # metadata differs: provenance of two shards
        x, y = getattr(example, c), getattr(merged, c)
        assert np.array_equal(x, y, equal_nan=x.dtype.kind == "f"), c
    assert cli.main(["verify", str(out)]) == 0
    rec = tmp_path / "m.tfrecord"
    assert cli.main(["export", str(out), "--out", str(rec), "--no-progress"]) == 0
    back = tmp_path / "back.npz"
    assert cli.main(["import", str(rec), "--out", str(back), "--no-progress"]) == 0
    t = st.open_store(back)
    for c in st.COLUMNS[:-1]:
        x, y = getattr(example, c), getattr(t, c)
        assert np.array_equal(x, y, equal_nan=x.dtype.kind == "f"), c
    # a bad store: exit status 1 and the problem on stderr
    cols = {k: (np.array(v) if k != "metadata" else dict(v)) for k, v in example.columns().items()}
    cols["final_test_accuracy"][0, 3, 0] = 2.0
    bad = tmp_path / "bad.npz"
    st.write_store(bad, st.Store(**cols))
    capsys.readouterr()
    assert cli.main(["verify", str(bad), "--hash-sample", "0"]) == 1
    assert "final_test_accuracy outside [0, 1]" in capsys.readouterr().err
    assert cli.main(["verify", str(tmp_path / "nope.npz")]) == 2
    assert "no such store file" in capsys.readouterr().err


def test_metadata_member_is_plain_json(tmp_path, example):
    p = tmp_path / "s.npz"
    st.write_store(p, example)
    with zipfile.ZipFile(p) as zf:
        arr = np.lib.format.read_array(io.BytesIO(zf.read("metadata.npy")), allow_pickle=False)
    meta = json.loads(str(arr[()]))
    assert meta["budgets"] == [4, 12, 36, 108] and meta["synthetic"] is False
    assert any("nasbench-vis" in str(p) for p in meta["provenance"])
