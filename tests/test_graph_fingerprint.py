"""The jitted module hash against §3.3's vectors, the 1,052 real records and the hashlib oracle."""

import jax
import numpy as np
import pytest

from nasbench_jax.errors import CellArrayError, CellArrayTypeError
from nasbench_jax.graph import (
    digest_to_hex,
    fingerprint,
    fingerprint_hex,
    fingerprint_traced,
    hex_to_digest,
    md5,
)
from nasbench_jax.graph import reference as R
import graph_cases as G


def rows(s):
    return np.array([[int(c) for c in r] for r in s.split("/")], np.uint8)


C3, C1, MP = 0, 1, 2
VECTORS = [  # reference spec §3.3
    ("01/00", [-1, -2], "043721b9c7fe8c5fad811d47d83132ec"),
    ("010/001/000", [-1, C3, -2], "b49ac8c578b4561d79ac7087988f1c61"),
    ("010/001/000", [-1, C1, -2], "d1269d9156ddc027c40473008192958a"),
    ("010/001/000", [-1, MP, -2], "53cee42601ad14d661bb6878031d6acb"),
    ("011/001/000", [-1, C3, -2], "d32d0b26d534203b48d866facd98cc3e"),
    ("0101/0010/0001/0000", [-1, C3, C3, -2], "b5fb4f6193360330b6ff6a52cbf0cad7"),
    (
        "0110011/0000010/0001000/0000100/0000010/0000001/0000000",
        [-1, C1, C3, MP, C3, C3, -2],
        "02e5a0247bbdcf2860b7e96f74961594",
    ),
    (
        "0100000/0010000/0001000/0000100/0000010/0000001/0000000",
        [-1, C3, C3, C3, C3, C3, -2],
        "b3bc0991ac661443a583796ce582f11f",
    ),
]


def test_md5_matches_hashlib_across_block_boundaries():
    import hashlib

    for n in (0, 1, 55, 56, 63, 64, 119, 120, 200, 311):
        data = bytes((i * 7 + 3) % 256 for i in range(n))
        words = md5.pack_message(data)
        got = md5.digest_to_hex(md5.digest_to_bytes(np.asarray(md5.md5_blocks(words[None]))))
        assert got[0].decode() == hashlib.md5(data).hexdigest(), n


def test_packed_host_compression_is_bit_exact_on_every_bit_pattern():
    # the host path bit-casts state pairs into complex64; NaN/Inf/denormal float patterns
    # (signalling NaNs included) must survive the casts and a chain of compressions unchanged
    import importlib

    fp = importlib.import_module("nasbench_jax.graph.fingerprint")
    rng = np.random.default_rng(7)
    m = 512
    state = rng.integers(0, 2**32, (4, m), dtype=np.uint32)
    special = np.array([0x7F800001, 0xFFC00001, 0x7FA00000, 0xFF800000, 0x7F800000, 0x00000001,
                        0x80000000, 0x7FFFFFFF, 0xFFFFFFFF, 0x00000000], np.uint32)
    for i in range(4):
        state[i, : len(special)] = np.roll(special, i)
    words = rng.integers(0, 2**32, (3, 16, m), dtype=np.uint32)
    packed = (fp._pack(state[0], state[1]), fp._pack(state[2], state[3]))
    np.testing.assert_array_equal(np.asarray(fp._unpack_cols(packed)), state)
    expect = tuple(state)
    for blk in words:
        packed = fp._compress_cols(packed, blk)
        expect = md5.compress(expect, list(blk))  # unpacked reference, op by op
    np.testing.assert_array_equal(np.asarray(fp._unpack_cols(packed)), np.stack([np.asarray(x) for x in expect]))


def test_spec_vectors():
    cells = [(rows(m), labels) for m, labels, _ in VECTORS]
    got = fingerprint_hex(G.batch(cells))
    assert [g.decode() for g in got] == [h for _, _, h in VECTORS]


def test_all_real_records(sample_1k, full_records_52):
    recs = G.real_records(sample_1k, full_records_52)
    assert len(recs) == 1052
    got = fingerprint_hex(G.batch([(m, l) for _, m, l in recs]))
    want = np.array([h.encode() for h, _, _ in recs])
    assert np.array_equal(got, want)


def test_unpacked_state_path_used_off_cpu(sample_1k, full_records_52, monkeypatch):
    """Backends other than CPU carry MD5 states as uint32 pairs: same digests, host and traced."""
    import importlib

    fp = importlib.import_module("nasbench_jax.graph.fingerprint")
    monkeypatch.setattr(fp, "_packing", lambda: False)
    jax.clear_caches()
    try:
        recs = G.real_records(sample_1k, full_records_52)[::8]
        cells = G.batch([(m, l) for _, m, l in recs])
        want = np.array([h.encode() for h, _, _ in recs])
        assert np.array_equal(fingerprint_hex(cells), want)
        traced = jax.jit(lambda a, o, n: fingerprint(a, o, n))(*cells)
        assert np.array_equal(digest_to_hex(np.asarray(traced)), want)
    finally:
        jax.clear_caches()  # drop programs traced with the unpacked state


def _oracle_check(per_v, seed):
    rng = np.random.default_rng(seed)
    cells = []
    for v in range(2, 8):
        cells += G.random_cells_of(rng, v, per_v)
    want = np.array([R.hash_module(m, l).encode() for m, l in cells])
    got = fingerprint_hex(G.batch(cells))
    bad = np.flatnonzero(got != want)
    assert bad.size == 0, f"{bad.size} mismatches, first {cells[bad[0]]}"


def test_random_cells_every_vertex_count_against_oracle_fast():
    _oracle_check(per_v=300, seed=1)


@pytest.mark.slow
def test_random_cells_every_vertex_count_against_oracle_10k():
    """≥10,000 random cells of every vertex count (one batch of 60,000) against hashlib."""
    _oracle_check(per_v=10_000, seed=2)


def test_relabeling_never_changes_hash():
    rng = np.random.default_rng(3)
    base = []
    for v in range(3, 8):
        base += G.random_cells_of(rng, v, 40, max_edges=9)
    relabeled = [G.random_topological_relabel(rng, m, l) for m, l in base]
    a = fingerprint(*G.batch(base))
    b = fingerprint(*G.batch(relabeled))
    assert np.array_equal(a, b)
    # and the relabelings really are different labelled cells for most of them
    assert sum(not np.array_equal(m1, m2) or l1 != l2 for (m1, l1), (m2, l2) in zip(base, relabeled)) > 50


def test_duplicates_in_batch_and_leading_shape():
    rng = np.random.default_rng(4)
    cells = G.random_cells_of(rng, 6, 5)
    adj, ops, nv = G.batch(cells + cells[::-1])
    got = fingerprint(adj.reshape(2, 5, 7, 7), ops.reshape(2, 5, 7), nv.reshape(2, 5))
    assert got.shape == (2, 5, 16) and got.dtype == np.uint8
    assert np.array_equal(got[0], got[1][::-1])
    want = [R.hash_module(m, l) for m, l in cells]
    assert [h.decode() for h in digest_to_hex(got[0])] == want


def test_traced_path_inside_jit_and_vmap():
    rng = np.random.default_rng(5)
    cells = []
    for v in range(2, 8):
        cells += G.random_cells_of(rng, v, 4)
    adj, ops, nv = G.batch(cells)
    want = np.array([R.hash_module(m, l).encode() for m, l in cells])
    jitted = jax.jit(lambda a, o, n: fingerprint(a, o, n))  # public name, traced -> pure path
    assert np.array_equal(digest_to_hex(np.asarray(jitted(adj, ops, nv))), want)
    vm = jax.jit(jax.vmap(fingerprint_traced))(adj, ops, nv)
    assert np.array_equal(digest_to_hex(np.asarray(vm)), want)


def test_hex_round_trip():
    d = np.random.default_rng(6).integers(0, 256, (5, 16)).astype(np.uint8)
    h = digest_to_hex(d)
    assert h.dtype == np.dtype("S32")
    assert [x.decode() for x in h] == [bytes(r).hex() for r in d]
    assert np.array_equal(hex_to_digest(h), d)
    assert np.array_equal(hex_to_digest([x.decode().upper() for x in h]), d)


@pytest.mark.parametrize("bad", [["abc"], ["g" * 32], ["0" * 33], [b"0" * 31]])
def test_hex_to_digest_rejects(bad):
    with pytest.raises(ValueError, match="32 hex digits"):
        hex_to_digest(bad)


def _good():
    return G.batch([(rows("0110/0001/0001/0000"), [-1, 0, 1, -2])])


@pytest.mark.parametrize(
    "mutate, error, message",
    [
        (lambda a, o, n: (a[0], o, n), CellArrayError, "batch shapes disagree"),
        (lambda a, o, n: (a[:, :6, :6], o, n), CellArrayError, r"shape \[\.\.\., 7, 7\]"),
        (lambda a, o, n: (a, o[:, :6], n), CellArrayError, r"shape \[\.\.\., 7\]"),
        (lambda a, o, n: (a.astype(np.float32), o, n), CellArrayTypeError, "integer dtype"),
        (lambda a, o, n: (a, o.astype(np.float64), n), CellArrayTypeError, "integer dtype"),
        (lambda a, o, n: (np.where(a == 1, 2, a), o, n), CellArrayError, "0 or 1"),
        (lambda a, o, n: (a + np.eye(7, dtype=np.uint8), o, n), CellArrayError, "upper-triangular"),
        (lambda a, o, n: (a + np.tri(7, k=-1, dtype=np.uint8) * (np.arange(7) == 0), o, n), CellArrayError, "upper-triangular"),
        (lambda a, o, n: (a, np.where(np.arange(7) == 1, 3, o), n), CellArrayError, "op labels"),
        (lambda a, o, n: (a, np.where(np.arange(7) == 0, 0, o), n), CellArrayError, "input"),
        (lambda a, o, n: (a, o, n + 4), CellArrayError, "num_vertices must be in 2..7"),
        (lambda a, o, n: (a, o, n * 0 + 1), CellArrayError, "num_vertices must be in 2..7"),
        (lambda a, o, n: (a, o, n.astype(np.float32)), CellArrayTypeError, "integer dtype"),
        (lambda a, o, n: ("x", o, n), CellArrayTypeError, "integer array"),
    ],
)
def test_bad_input_errors(mutate, error, message):
    with pytest.raises(error, match=message):
        fingerprint(*mutate(*_good()))


def test_unpruned_input_is_rejected():
    adj, ops, nv = G.batch([(rows("0110/0000/0001/0000"), [-1, 0, 1, -2])])  # vertex 1 dangles
    with pytest.raises(CellArrayError, match="pruned"):
        fingerprint(adj, ops, nv)


def test_edges_outside_the_cell_are_rejected():
    adj, ops, nv = _good()
    adj = adj.copy()
    adj[0, 2, 5] = 1
    with pytest.raises(CellArrayError, match="outside"):
        fingerprint(adj, ops, nv)
