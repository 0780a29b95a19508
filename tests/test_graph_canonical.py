"""Canonical codes: equal to the plain-Python reference, relabeling-invariant, complete."""

import jax
import numpy as np
import pytest

from nasbench_jax.errors import CellArrayError
from nasbench_jax.graph import canonical_code, decode_codes
from nasbench_jax.graph import reference as R
from nasbench_jax.graph.canonical import canonical_from_labelled
import graph_cases as G


@pytest.fixture(scope="module")
def mixed_cells():
    rng = np.random.default_rng(10)
    cells = []
    for v in range(2, 8):
        cells += G.random_cells_of(rng, v, 250 if v > 3 else 20, max_edges=None if v < 7 else 12)
    return cells


def test_equals_reference(mixed_cells):
    want = np.array([R.canonical_code(m, l) for m, l in mixed_cells], np.uint32)
    got = canonical_code(*G.batch(mixed_cells))
    assert got.dtype == np.uint32
    assert np.array_equal(got, want)


def test_from_labelled_codes_equals_reference(mixed_cells):
    labelled = np.array([R.encode_code(m, l) for m, l in mixed_cells], np.uint32)
    want = np.array([R.canonical_code(m, l) for m, l in mixed_cells], np.uint32)
    assert np.array_equal(canonical_from_labelled(labelled), want)


def test_relabeling_never_changes_code(mixed_cells):
    rng = np.random.default_rng(11)
    relabeled = [G.random_topological_relabel(rng, m, l) for m, l in mixed_cells]
    assert np.array_equal(canonical_code(*G.batch(mixed_cells)), canonical_code(*G.batch(relabeled)))


def test_code_is_an_encoding_of_a_relabeling(mixed_cells):
    """The canonical code decodes to a cell isomorphic to the input (checked by brute force)."""
    codes = canonical_code(*G.batch(mixed_cells[:: 7]))
    dec = decode_codes(codes)
    for (m, l), a, o, v in zip(mixed_cells[::7], *dec):
        v = int(v)
        assert R.is_isomorphic((a[:v, :v], list(o[:v])), (m, l))
        assert R.encode_code(a[:v, :v], list(o[:v])) == R.canonical_code(m, l)


def test_decode_codes_matches_reference(mixed_cells):
    codes = np.array([R.encode_code(m, l) for m, l in mixed_cells], np.uint32)
    dec = decode_codes(codes)
    for code, a, o, v in zip(codes, *dec):
        m, labels = R.decode_code(int(code))
        v = int(v)
        assert v == m.shape[0]
        assert np.array_equal(a[:v, :v], m) and a.sum() == m.sum()
        assert list(o[:v]) == labels and np.all(o[v:] == -3)


def test_decode_codes_rejects_bad_vertex_count():
    with pytest.raises(CellArrayError, match="2..7"):
        decode_codes(np.array([1 << 29], np.uint32))


def test_equal_codes_iff_isomorphic_including_near_misses():
    """Brute-force isomorphism (all V! permutations) against code equality on random pairs:
    relabelings (isomorphic), degree-preserving edge swaps with shuffled ops (same degree
    sequences and op multiset: hard near-misses) and independent draws."""
    rng = np.random.default_rng(12)
    pairs = []
    for v in (4, 5, 6, 7):
        n = 30 if v < 7 else 20
        for m, l in G.random_cells_of(rng, v, n, max_edges=9):
            pairs.append(((m, l), G.random_topological_relabel(rng, m, l)))
            near = G.degree_preserving_variant(rng, m, l)
            if near is not None:
                pairs.append(((m, l), near))
            # same structure, ops permuted: isomorphic only if an automorphism explains it
            inner = list(l[1:-1])
            rng.shuffle(inner)
            pairs.append(((m, l), (m, [l[0]] + inner + [l[-1]])))
    firsts = canonical_code(*G.batch([p[0] for p in pairs]))
    seconds = canonical_code(*G.batch([p[1] for p in pairs]))
    iso = np.array([R.is_isomorphic(a, b) for a, b in pairs])
    assert np.array_equal(firsts == seconds, iso)
    assert iso.sum() > 50 and (~iso).sum() > 50  # both outcomes well represented


def test_traced_inside_jit_and_vmap(mixed_cells):
    cells = mixed_cells[::13]
    adj, ops, nv = G.batch(cells)
    want = np.array([R.canonical_code(m, l) for m, l in cells], np.uint32)
    got = jax.jit(jax.vmap(canonical_code))(adj, ops, nv)
    assert np.array_equal(np.asarray(got), want)


def test_rejects_unpruned():
    adj, ops, nv = G.batch([(np.array([[0, 1, 1, 0], [0, 0, 0, 0], [0, 0, 0, 1], [0, 0, 0, 0]]), [-1, 0, 0, -2])])
    with pytest.raises(CellArrayError, match="pruned"):
        canonical_code(adj, ops, nv)
