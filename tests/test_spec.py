"""ModelSpec, pruning, check_spec/is_valid and the hashlib oracle against the reference spec."""

import numpy as np
import pytest

from nasbench_jax import ModelSpec, OutOfDomainError, SpecError, check_spec, is_valid
from nasbench_jax.graph import reference as R

C3, C1, MP = "conv3x3-bn-relu", "conv1x1-bn-relu", "maxpool3x3"


def rows(s):
    return [[int(c) for c in r] for r in s.split("/")]


# §2 pruning examples from the original unit tests.
@pytest.mark.parametrize(
    "matrix, ops, want_matrix, want_ops",
    [
        ("010/001/000", [1, 2, 3], "010/001/000", [1, 2, 3]),
        ("011/001/000", [1, 2, 3], "011/001/000", [1, 2, 3]),
        ("0110/0001/0001/0000", [1, 2, 3, 4], "0110/0001/0001/0000", [1, 2, 3, 4]),
        ("0100/0001/0000/0000", [1, 2, 3, 4], "010/001/000", [1, 2, 4]),
        ("01000/00001/00010/00000/00000", [1, 2, 3, 4, 5], "010/001/000", [1, 2, 5]),
        ("0110/0000/0001/0000", [1, 2, 3, 4], "010/001/000", [1, 3, 4]),
        ("0010/0001/0001/0000", [1, 2, 3, 4], "010/001/000", [1, 3, 4]),
    ],
)
def test_pruning_examples(matrix, ops, want_matrix, want_ops):
    spec = ModelSpec(rows(matrix), ops)
    assert spec.valid_spec
    np.testing.assert_array_equal(spec.matrix, rows(want_matrix))
    assert spec.ops == want_ops
    np.testing.assert_array_equal(spec.original_matrix, rows(matrix))
    assert spec.original_ops == ops


@pytest.mark.parametrize("matrix", ["00/00", "0100/0000/0001/0000", "0000/0010/0000/0000"])
def test_pruning_invalid(matrix):
    m = rows(matrix)
    spec = ModelSpec(m, list(range(len(m))))
    assert not spec.valid_spec and spec.matrix is None and spec.ops is None
    assert not is_valid(spec)
    with pytest.raises(OutOfDomainError, match="disconnected"):
        check_spec(spec)


def test_one_by_one_is_invalid():
    assert not ModelSpec([[0]], ["input"]).valid_spec
    with pytest.raises(SpecError, match="upper triangular"):
        ModelSpec([[1]], ["input"])


def test_seven_vertex_prunes_to_two():
    m = np.zeros((7, 7), int)
    m[0, 1] = m[1, 2] = m[0, 6] = 1
    spec = ModelSpec(m, ["input"] + [C3] * 5 + ["output"])
    np.testing.assert_array_equal(spec.matrix, [[0, 1], [0, 0]])
    assert spec.ops == ["input", "output"]
    assert spec.hash_spec() == "043721b9c7fe8c5fad811d47d83132ec"


@pytest.mark.parametrize(
    "matrix, ops, message",
    [
        ([[0, 1, 0], [0, 0, 1]], ["input", C3, "output"], "matrix must be square"),
        ([[0, 1], [0, 0]], ["input", C3, "output"], "length of ops must match"),
        ([[0, 1], [1, 0]], ["input", "output"], "upper triangular"),
        ([[1, 1], [0, 0]], ["input", "output"], "upper triangular"),
        ([[0, 2], [0, 0]], ["input", "output"], "0 or 1"),
        ([[0, 1], [0]], ["input", "output"], "square"),
        ([["a", "b"], ["c", "d"]], ["input", "output"], "0/1"),
    ],
)
def test_construction_errors(matrix, ops, message):
    with pytest.raises(SpecError, match=message) as info:
        ModelSpec(matrix, ops)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    "matrix, ops, message",
    [
        ("0100/0010/0001/0000", ["input", C3, "bogus", "output"], "unsupported op bogus"),
        ("010/001/000", ["in", C3, "output"], "first operation should be 'input'"),
        ("010/001/000", ["input", C3, "out"], "last operation should be 'output'"),
    ],
)
def test_domain_errors(matrix, ops, message):
    spec = ModelSpec(rows(matrix), ops)
    assert not is_valid(spec)
    with pytest.raises(OutOfDomainError, match=message):
        check_spec(spec)


def test_too_many_edges_checked_after_pruning():
    # A full 7x7 upper triangle has 21 edges: out of domain.
    full = np.triu(np.ones((7, 7), int), 1)
    spec = ModelSpec(full, ["input"] + [C3] * 5 + ["output"])
    with pytest.raises(OutOfDomainError, match=r"too many edges, got 21 \(max edges = 9\)"):
        check_spec(spec)
    # 11 edges before pruning; vertex 5 has no path to the output, pruning removes its 2
    # edges and leaves 9: valid.
    m = np.zeros((7, 7), int)
    for a, b in [(0, 1), (1, 2), (2, 3), (3, 4), (4, 6), (0, 2), (0, 3), (1, 4), (0, 6), (1, 5), (2, 5)]:
        m[a, b] = 1
    spec = ModelSpec(m, ["input"] + [C3] * 5 + ["output"])
    assert int(m.sum()) == 11 and spec.num_edges == 9 and spec.num_vertices == 6
    assert is_valid(spec)


def test_too_many_vertices_is_out_of_domain():
    # Documented fix of the original's TypeError quirk (§1.4).
    m = np.zeros((8, 8), int)
    for i in range(7):
        m[i, i + 1] = 1
    spec = ModelSpec(m, ["input"] + [C3] * 6 + ["output"])
    with pytest.raises(OutOfDomainError, match=r"too many vertices, got 8 \(max vertices = 7\)"):
        check_spec(spec)
    assert not is_valid(spec)


# §3.3 test vectors.
INCEPTION = (
    [[0, 1, 1, 1, 0, 1, 0], [0, 0, 0, 0, 0, 0, 1], [0, 0, 0, 0, 0, 0, 1], [0, 0, 0, 0, 1, 0, 0],
     [0, 0, 0, 0, 0, 0, 1], [0, 0, 0, 0, 0, 0, 1], [0, 0, 0, 0, 0, 0, 0]],
    ["input", C1, C3, C3, C3, MP, "output"],
)
BEST = (
    rows("0110011/0000010/0001000/0000100/0000010/0000001/0000000"),
    ["input", C1, C3, MP, C3, C3, "output"],
)


@pytest.mark.parametrize(
    "matrix, ops, want",
    [
        ([[0, 1], [0, 0]], ["input", "output"], "043721b9c7fe8c5fad811d47d83132ec"),
        (rows("010/001/000"), ["input", C3, "output"], "b49ac8c578b4561d79ac7087988f1c61"),
        (rows("010/001/000"), ["input", C1, "output"], "d1269d9156ddc027c40473008192958a"),
        (rows("010/001/000"), ["input", MP, "output"], "53cee42601ad14d661bb6878031d6acb"),
        (rows("011/001/000"), ["input", C3, "output"], "d32d0b26d534203b48d866facd98cc3e"),
        (rows("0101/0010/0001/0000"), ["input", C3, C3, "output"], "b5fb4f6193360330b6ff6a52cbf0cad7"),
        (*INCEPTION, "28cfc7874f6d200472e1a9dcd8650aa0"),
        (*BEST, "02e5a0247bbdcf2860b7e96f74961594"),
        (rows("0100000/0010000/0001000/0000100/0000010/0000001/0000000"), ["input"] + [C3] * 5 + ["output"],
         "b3bc0991ac661443a583796ce582f11f"),
    ],
)
def test_hash_vectors(matrix, ops, want):
    assert ModelSpec(matrix, ops).hash_spec() == want


def test_hash_trace_intermediate():
    # The worked trace of §3.1: the initial vertex hashes of 01/00.
    import hashlib

    assert hashlib.md5(b"(1, 0, -1)").hexdigest() == "3bb65a81afada4c50c2c4630873f0a79"
    assert R.hash_module(np.array([[0, 1], [0, 0]]), [-1, -2]) == "043721b9c7fe8c5fad811d47d83132ec"


def test_real_records_rehash(sample_1k, full_records_52):
    for r in sample_1k:
        ops = [o for o in r["operations"] if o != -3]
        m = np.array(r["adjacency"])[: len(ops), : len(ops)]
        assert R.hash_module(m, ops) == r["hash"]
    for r in full_records_52:
        spec = ModelSpec(r["fixed"]["module_adjacency"], r["fixed"]["module_operations"])
        assert spec.hash_spec() == r["hash"]


@pytest.mark.parametrize(
    "bits, size, edges",
    [(3, 3, {(0, 1), (0, 2)}), (5, 3, {(0, 1), (1, 2)}), (7, 4, {(0, 1), (0, 2), (1, 2)}),
     (18, 4, {(0, 2), (1, 3)}), (35, 4, {(0, 1), (0, 2), (2, 3)})],
)
def test_gen_is_edge_fn(bits, size, edges):
    fn = R.gen_is_edge_fn(bits)
    assert {(x, y) for x in range(size) for y in range(size) if fn(x, y)} == edges


def test_permute_graph_examples():
    m = rows("110/001/101")
    pm, pl = R.permute_graph(m, ["a", "b", "c"], [2, 0, 1])
    np.testing.assert_array_equal(pm, rows("010/011/101"))
    assert pl == ["b", "c", "a"]
    pm, pl = R.permute_graph(m, ["a", "b", "c"], [0, 2, 1])
    np.testing.assert_array_equal(pm, rows("101/110/010"))
    assert pl == ["a", "c", "b"]


def test_is_full_dag_examples():
    assert R.is_full_dag(rows("010/001/000"))
    assert R.is_full_dag(rows("011/001/000"))
    assert not R.is_full_dag(rows("001/001/000"))
    assert not R.is_full_dag(rows("011/000/000"))
    assert not R.is_full_dag(rows("0010/0001/0000/0000"))


def test_specs_are_values():
    a = ModelSpec(rows("010/001/000"), ["input", C3, "output"])
    b = ModelSpec(np.array(rows("010/001/000")), ["input", C3, "output"])
    assert a == b and hash(a) == hash(b) and len({a, b}) == 1
    with pytest.raises(ValueError):
        a.matrix[0, 1] = 0  # read-only


def test_named_cells_match_the_published_hashes():
    from nasbench_jax import cells

    assert cells.inception_like().hash_spec() == "28cfc7874f6d200472e1a9dcd8650aa0"
    assert cells.best_cell().hash_spec() == "02e5a0247bbdcf2860b7e96f74961594"
    assert cells.resnet_like().hash_spec() == "b5fb4f6193360330b6ff6a52cbf0cad7"
