"""Exhaustive enumeration (§4): counts, first-met representatives, hash/code partitions, CLI."""

import itertools

import numpy as np
import pytest

from nasbench_jax import cli, space
from nasbench_jax.errors import ConfigError
from nasbench_jax.graph import reference as R
import graph_cases as G

# reference spec §4.2
LABELLED = {2: 1, 3: 6, 4: 90, 5: 3267, 6: 125145, 7: 1164699}
CUMULATIVE_UNIQUE = {2: 1, 3: 7, 4: 91, 5: 2532, 6: 64542, 7: 423624}


@pytest.fixture(scope="module")
def full():
    return space.enumerate_cells(7, 9, progress=False)


def test_full_space_counts_and_partitions(full):
    assert full.labelled_per_vertices == LABELLED
    assert full.total_labelled == 1_293_208
    assert full.cumulative_unique() == CUMULATIVE_UNIQUE
    assert full.num_cells == 423_624
    assert full.unique_per_vertices[7] == 359_082
    # sorted by hash, hashes pairwise distinct, codes pairwise distinct: since the hash is
    # relabeling-invariant (tests/test_graph_fingerprint.py), distinct hashes across the
    # 423,624 isomorphism classes mean the fingerprint partition equals the code partition.
    h = full.module_hash
    assert h.dtype == np.dtype("S32") and np.all(h[1:] > h[:-1])
    assert full.hash_partition_equals_code_partition
    assert np.unique(full.codes).size == full.num_cells
    # by edge count of the representative (§4.2)
    edges = full.cells.adjacency.reshape(-1, 49).sum(1)
    assert np.bincount(edges, minlength=10)[1:].tolist() == [1, 3, 12, 60, 339, 2134, 13984, 78822, 328269]


def test_representatives_equal_the_originals_real_records(full, sample_1k, full_records_52):
    """The stored (first-met) representative of every real record's hash is the record's own
    adjacency and ops, as the original dataset stores them."""
    index = {h: i for i, h in enumerate(full.module_hash.tolist())}
    for h, m, labels in G.real_records(sample_1k, full_records_52):
        i = index[h.encode()]
        v = len(labels)
        assert full.cells.num_vertices[i] == v
        assert np.array_equal(full.cells.adjacency[i, :v, :v], m) and full.cells.adjacency[i].sum() == m.sum()
        assert full.cells.operations[i, :v].tolist() == labels


def test_cells_fingerprints_codes_consistent(full):
    rng = np.random.default_rng(30)
    pick = rng.choice(full.num_cells, 300, replace=False)
    for i in pick:
        v = int(full.cells.num_vertices[i])
        m = full.cells.adjacency[i, :v, :v]
        labels = full.cells.operations[i, :v].tolist()
        assert R.hash_module(m, labels) == full.module_hash[i].decode()
        assert bytes(full.fingerprints[i]).hex() == full.module_hash[i].decode()
        assert R.canonical_code(m, labels) == full.codes[i]


def _original_loop(max_vertices, max_edges):
    """The original generate_graphs.py loop (§4.1) with the hashlib oracle."""
    buckets = {}
    for v in range(2, max_vertices + 1):
        for bits in range(2 ** (v * (v - 1) // 2)):
            is_edge = R.gen_is_edge_fn(bits)
            m = np.array([[int(is_edge(x, y)) for y in range(v)] for x in range(v)])
            if not R.is_full_dag(m) or R.num_edges(m) > max_edges:
                continue
            for lab in itertools.product(range(3), repeat=v - 2):
                labels = [-1] + list(lab) + [-2]
                f = R.hash_module(m, labels)
                if f not in buckets:
                    buckets[f] = (m, labels)
    return buckets


def test_small_enumeration_equals_the_original_loop():
    want = _original_loop(5, 6)
    got = space.enumerate_cells(5, 6, progress=False)
    assert sorted(h.encode() for h in want) == got.module_hash.tolist()
    for h, a, o, v in zip(got.module_hash, *got.cells):
        m, labels = want[h.decode()]
        v = int(v)
        assert np.array_equal(a[:v, :v], m) and o[:v].tolist() == labels


def test_npz_round_trip_and_cli(tmp_path, capsys):
    out = tmp_path / "cells.npz"
    assert cli.main(["enumerate", "--out", str(out), "--max-vertices", "4", "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "Up to 4 vertices: 91 graphs (97 without hashing)" in text
    assert "total" in text and "91" in text
    with np.load(out, allow_pickle=False) as z:
        assert z["module_hash"].dtype == np.dtype("S32") and z["module_hash"].shape == (91,)
        assert z["canonical_code"].dtype == np.uint32
        assert z["adjacency"].dtype == np.uint8 and z["adjacency"].shape == (91, 7, 7)
        assert z["operations"].dtype == np.int8 and z["num_vertices"].dtype == np.int32
        assert np.all(z["module_hash"][1:] > z["module_hash"][:-1])
    e = space.load_enumeration(out)
    ref = space.enumerate_cells(4, 9, progress=False)
    assert np.array_equal(e.module_hash, ref.module_hash) and np.array_equal(e.codes, ref.codes)
    assert np.array_equal(e.fingerprints, ref.fingerprints)
    assert e.cumulative_unique() == {2: 1, 3: 7, 4: 91}
    assert not list(tmp_path.glob("*.tmp"))  # the atomic write left no temp file


def test_bad_limits(tmp_path, capsys):
    with pytest.raises(ConfigError, match="max_vertices"):
        space.enumerate_cells(8, 9)
    with pytest.raises(ConfigError, match="max_edges"):
        space.enumerate_cells(7, -1)
    assert cli.main(["enumerate", "--out", str(tmp_path / "x.npz"), "--max-vertices", "1"]) == 2
    assert "max_vertices" in capsys.readouterr().err
    assert cli.main(["enumerate", "--out", str(tmp_path / "x.txt")]) == 2
