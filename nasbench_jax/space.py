"""The NAS-Bench-101 cell space as fixed-size arrays.

A batch of cells is a :class:`Cells` named tuple (a JAX pytree) of
``adjacency uint8[..., 7, 7]``, ``operations int8[..., 7]`` and ``num_vertices int32[...]``
(coding in :mod:`nasbench_jax.constants`). :func:`encode` / :func:`decode` convert between
:class:`~nasbench_jax.spec.ModelSpec` and this encoding::

    >>> from nasbench_jax import ModelSpec, space
    >>> cells = space.encode([ModelSpec([[0, 1], [0, 0]], ["input", "output"])])
    >>> cells.num_vertices.tolist()
    [2]
"""

from __future__ import annotations

import dataclasses
import os
from typing import Iterable, NamedTuple, Sequence

import numpy as np

from nasbench_jax import constants as C
from nasbench_jax._io import atomic_write
from nasbench_jax.errors import CellArrayError, ConfigError, OutOfDomainError
from nasbench_jax.spec import ModelSpec, check_spec

__all__ = [
    "Cells",
    "encode",
    "encode_spec",
    "decode",
    "ops_to_labels",
    "labels_to_ops",
    "random_cells",
    "mutate",
    "enumerate_cells",
    "Enumeration",
    "save_enumeration",
    "load_enumeration",
]


class Cells(NamedTuple):
    """A batch of encoded cells (a pytree; leaves may be numpy or jax arrays)."""

    adjacency: np.ndarray  # uint8[..., 7, 7]
    operations: np.ndarray  # int8[..., 7]
    num_vertices: np.ndarray  # int32[...]


_OP_TO_LABEL = {C.INPUT: C.INPUT_LABEL, C.OUTPUT: C.OUTPUT_LABEL}
_OP_TO_LABEL.update({op: i for i, op in enumerate(C.AVAILABLE_OPS)})


def ops_to_labels(ops: Sequence[str]) -> list[int]:
    """Op names to integer labels (first -> -1, last -> -2, interior -> op index)."""
    labels = [C.INPUT_LABEL]
    for op in ops[1:-1]:
        if op not in C.AVAILABLE_OPS:
            raise OutOfDomainError(
                "unsupported op %s (available ops = %s)" % (op, list(C.AVAILABLE_OPS))
            )
        labels.append(C.AVAILABLE_OPS.index(op))
    return labels + [C.OUTPUT_LABEL]


def labels_to_ops(labels: Sequence[int]) -> list[str]:
    """Integer labels (padding excluded) back to op names."""
    out = []
    for i, lab in enumerate(labels):
        lab = int(lab)
        if i == 0:
            out.append(C.INPUT)
        elif i == len(labels) - 1:
            out.append(C.OUTPUT)
        elif 0 <= lab < C.NUM_OPS:
            out.append(C.AVAILABLE_OPS[lab])
        else:
            raise CellArrayError(f"invalid op label {lab} at interior vertex {i}")
    return out


def encode_spec(spec: ModelSpec) -> tuple[np.ndarray, np.ndarray, int]:
    """Encode one spec's *pruned* cell as ``(uint8[7,7], int8[7], V)``.

    Raises:
      OutOfDomainError: the spec is not in the space (``check_spec``'s verdict and message).
    """
    check_spec(spec)
    v = spec.num_vertices
    adj = np.zeros((C.MAX_VERTICES, C.MAX_VERTICES), np.uint8)
    adj[:v, :v] = spec.matrix
    ops = np.full((C.MAX_VERTICES,), C.PAD_LABEL, np.int8)
    ops[:v] = ops_to_labels(spec.ops)
    return adj, ops, v


def encode(specs: Iterable[ModelSpec]) -> Cells:
    """Encode specs (pruned) into a :class:`Cells` batch of numpy arrays."""
    specs = list(specs)
    adj = np.zeros((len(specs), C.MAX_VERTICES, C.MAX_VERTICES), np.uint8)
    ops = np.full((len(specs), C.MAX_VERTICES), C.PAD_LABEL, np.int8)
    nv = np.zeros((len(specs),), np.int32)
    for i, s in enumerate(specs):
        adj[i], ops[i], nv[i] = encode_spec(s)
    return Cells(adj, ops, nv)


def decode(adjacency, operations, num_vertices) -> ModelSpec:
    """Decode one encoded cell (``uint8[7,7]``, ``int8[7]``, ``V``) into a ``ModelSpec``."""
    v = int(num_vertices)
    if not 2 <= v <= C.MAX_VERTICES:
        raise CellArrayError(f"num_vertices must be in 2..{C.MAX_VERTICES}, got {v}")
    adj = np.asarray(adjacency)[:v, :v]
    labels = np.asarray(operations)[:v]
    return ModelSpec(adj.astype(np.int64), labels_to_ops(labels))


# ---------------------------------------------------------------------------------------
# Sampling and mutation (the original notebook's rules, reference spec §7.6)
# ---------------------------------------------------------------------------------------

_V = C.MAX_VERTICES
_TRIU = np.triu(np.ones((_V, _V), bool), 1)
#: Retry cap of the rejection loops (the acceptance rate of a fresh draw is about 3/4, so this is
#: never reached in practice; it only guarantees termination inside ``jit``).
MAX_TRIES = 10_000


def _raw_ops(interior):
    import jax.numpy as jnp  # noqa: PLC0415

    n = interior.shape[0]
    first = jnp.full((n, 1), C.INPUT_LABEL, jnp.int8)
    last = jnp.full((n, 1), C.OUTPUT_LABEL, jnp.int8)
    return jnp.concatenate([first, interior.astype(jnp.int8), last], axis=1)


def _draw_random(key, n: int) -> Cells:
    """One proposal per cell: 21 fair upper-triangular bits, 5 uniform interior ops."""
    import jax  # noqa: PLC0415
    import jax.numpy as jnp  # noqa: PLC0415

    k_adj, k_ops = jax.random.split(key)
    bits = jax.random.bernoulli(k_adj, 0.5, (n, _V, _V)) & jnp.asarray(_TRIU)
    ops = jax.random.randint(k_ops, (n, _V - 2), 0, C.NUM_OPS)
    return Cells(bits.astype(jnp.uint8), _raw_ops(ops), jnp.full((n,), _V, jnp.int32))


def _rejection_loop(key, initial: Cells, propose):
    """Redraw ``propose(key, i)`` for every cell that is not yet ``in_space``, until all are.

    Cells still invalid after ``MAX_TRIES`` rounds keep ``initial`` (see ``MAX_TRIES``).
    """
    import jax  # noqa: PLC0415
    import jax.numpy as jnp  # noqa: PLC0415
    from jax import lax  # noqa: PLC0415

    from nasbench_jax.graph.prune import in_space_traced  # noqa: PLC0415

    n = initial.num_vertices.shape[0]

    def cond(state):
        _, _, done, tries = state
        return (tries < MAX_TRIES) & ~jnp.all(done)

    def body(state):
        k, cells, done, tries = state
        k, sub = jax.random.split(k)
        cand = propose(sub)
        ok = in_space_traced(*cand) & ~done
        cells = jax.tree_util.tree_map(
            lambda c, x: jnp.where(ok.reshape((n,) + (1,) * (c.ndim - 1)), x, c), cells, cand
        )
        return k, cells, done | ok, tries + 1

    state = (key, initial, jnp.zeros((n,), bool), jnp.int32(0))
    _, cells, _, _ = lax.while_loop(cond, body, state)
    return cells


def random_cells(key, n: int) -> Cells:
    """Random valid raw cells by the notebook's ``random_spec`` rule (reference spec §7.6).

    Each cell draws a 7x7 matrix of fair bits keeping the strict upper triangle (21 bits),
    5 interior ops uniformly from the 3 ops, input/output fixed, and redraws until
    ``is_valid`` — so every cell is uniform over the valid raw encodings. Vectorized over the
    batch (a ``lax.while_loop`` redraws only the rejected cells) and jit-able (``n`` static).

    Args:
      key: a ``jax.random`` key.
      n: number of cells (static).

    Returns:
      ``Cells`` of ``jax.Array``: raw (unpruned) ``adjacency uint8[n,7,7]``,
      ``operations int8[n,7]``, ``num_vertices int32[n]`` (all 7); prune with
      ``graph.prune`` / canonicalize with ``graph.canonicalize``.

    Raises:
      ConfigError: ``n`` is not a non-negative int.
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ConfigError(f"n must be a non-negative int, got {n!r}")
    return _jitted()["random"](key, int(n))


def _random_impl(key, n: int) -> Cells:
    k_init, k_loop = _split(key)
    init = _draw_random(k_init, n)
    return _rejection_loop(k_loop, init, lambda k: _draw_random(k, n))


def _mutate_impl(key, parent: Cells, mutation_rate) -> Cells:
    return _rejection_loop(key, parent, lambda k: _mutate_proposal(k, parent, mutation_rate))


def _split(key):
    import jax  # noqa: PLC0415

    return jax.random.split(key)


_JITTED: dict = {}


def _jitted() -> dict:
    """The jit-compiled sampler and mutator (built on first use; compiled once per shape)."""
    if not _JITTED:
        import jax  # noqa: PLC0415

        _JITTED["random"] = jax.jit(_random_impl, static_argnums=1)
        _JITTED["mutate"] = jax.jit(_mutate_impl)
    return _JITTED


def _mutate_proposal(key, cells: Cells, mutation_rate) -> Cells:
    """One mutation proposal per cell (no validity check): flip each of the 21 upper
    entries w.p. ``rate/7``; replace each interior op w.p. ``rate/5`` by a different op."""
    import jax  # noqa: PLC0415
    import jax.numpy as jnp  # noqa: PLC0415

    adj = jnp.asarray(cells.adjacency).astype(jnp.uint8)
    ops = jnp.asarray(cells.operations).astype(jnp.int8)
    n = adj.shape[0]
    rate = jnp.asarray(mutation_rate, jnp.float32)
    k_e, k_o, k_r = jax.random.split(key, 3)
    flip = (jax.random.uniform(k_e, (n, _V, _V)) < rate / (_V)) & jnp.asarray(_TRIU)
    new_adj = adj ^ flip.astype(jnp.uint8)
    change = jax.random.uniform(k_o, (n, _V - 2)) < rate / (_V - 2)
    shift = jax.random.randint(k_r, (n, _V - 2), 1, C.NUM_OPS)  # 1 or 2: a *different* op
    interior = ops[:, 1:-1].astype(jnp.int32)
    new_interior = jnp.where(change, (interior + shift) % C.NUM_OPS, interior)
    return Cells(new_adj, _raw_ops(new_interior), jnp.full((n,), _V, jnp.int32))


def mutate(key, cells: Cells, mutation_rate=1.0) -> Cells:
    """The notebook's ``mutate_spec`` on raw 7-vertex cells (reference spec §7.6), batched.

    For each parent (its *unpruned* matrix), flip each of the 21 upper-triangular entries
    independently with probability ``mutation_rate / 7`` and replace each interior op
    independently with probability ``mutation_rate / 5`` by a uniformly chosen *different* op;
    redraw from the parent until the child ``is_valid``. Jit-able (``mutation_rate`` may be a
    traced scalar); each cell uses independent randomness.

    Args:
      key: a ``jax.random`` key.
      cells: ``Cells`` of valid raw parents with ``num_vertices == 7`` (as ``random_cells``
        and ``mutate`` return), batch shape ``[n]``.
      mutation_rate: expected number of edge flips (and of op changes); ``0 <= rate <= 5``.

    Returns:
      ``Cells`` (``jax.Array``) of valid raw children, ``num_vertices`` 7.

    Raises:
      CellArrayError / CellArrayTypeError: (concrete input) malformed cells, cells with fewer
        than 7 vertices, or invalid parents.
      ConfigError: (concrete rate) ``mutation_rate`` outside ``[0, 5]``.
    """
    from nasbench_jax import graph  # noqa: PLC0415

    if not graph.is_traced(*cells):
        adj, ops, nv = graph.check_cells(*cells)
        if adj.ndim != 3:
            raise CellArrayError(f"mutate expects a batch [n, 7, 7] of cells, got adjacency {adj.shape}")
        if np.any(nv != _V):
            raise CellArrayError("mutate works on raw 7-vertex cells (num_vertices == 7), as random_cells returns")
        if not np.all(graph.in_space(adj, ops, nv)):
            raise CellArrayError("mutate needs valid parents (graph.in_space is False for some cells)")
        cells = Cells(adj, ops, nv)
    if not graph.is_traced(mutation_rate):
        rate = float(np.asarray(mutation_rate))
        if not 0.0 <= rate <= 5.0:
            raise ConfigError(f"mutation_rate must be in [0, 5], got {rate}")
    import jax.numpy as jnp  # noqa: PLC0415

    parent = Cells(
        jnp.asarray(cells.adjacency).astype(jnp.uint8),
        jnp.asarray(cells.operations).astype(jnp.int8),
        jnp.asarray(cells.num_vertices).astype(jnp.int32),
    )
    return _jitted()["mutate"](key, parent, jnp.asarray(mutation_rate, jnp.float32))


# ---------------------------------------------------------------------------------------
# Exhaustive enumeration (reference spec §4)
# ---------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Enumeration:
    """Every unique cell of the space, sorted by module hash (like the original's JSON keys).

    Attributes:
      cells: ``Cells`` (numpy) of the original's stored representative of each class: the first
        labelled graph met in the enumeration order of §4.1 (V ascending, bitmask ascending,
        labelling lexicographic with the last position fastest).
      fingerprints: ``uint8[N, 16]`` module-hash digests.
      module_hash: ``S32[N]`` the 32-hex keys (sorted ascending).
      codes: ``uint32[N]`` canonical codes.
      labelled_per_vertices: ``{V: labelled full DAGs with V vertices}`` ("without hashing").
      unique_per_vertices: ``{V: unique cells with exactly V vertices}``.
      max_vertices, max_edges: the limits enumerated.
      hash_partition_equals_code_partition: the representatives' fingerprints are pairwise
        distinct. The fingerprint is invariant under relabeling, so equal codes already imply
        equal hashes; distinct hashes across classes then make the two partitions equal.
    """

    cells: Cells
    fingerprints: np.ndarray
    module_hash: np.ndarray
    codes: np.ndarray
    labelled_per_vertices: dict
    unique_per_vertices: dict
    max_vertices: int
    max_edges: int
    hash_partition_equals_code_partition: bool

    @property
    def num_cells(self) -> int:
        return int(self.codes.shape[0])

    @property
    def total_labelled(self) -> int:
        return int(sum(self.labelled_per_vertices.values()))

    def cumulative_unique(self) -> dict:
        """``{V: unique cells with at most V vertices}`` (the original's log lines)."""
        out, acc = {}, 0
        for v in sorted(self.unique_per_vertices):
            acc += self.unique_per_vertices[v]
            out[v] = acc
        return out

    def cumulative_labelled(self) -> dict:
        out, acc = {}, 0
        for v in sorted(self.labelled_per_vertices):
            acc += self.labelled_per_vertices[v]
            out[v] = acc
        return out


def _edge_masks(v: int):
    """Bitmasks (original order) of each vertex's out-edges and in-edges in a V-vertex graph."""
    rows = np.zeros(v, np.int64)
    cols = np.zeros(v, np.int64)
    for y in range(v):
        for x in range(y):
            b = 1 << (x + y * (y - 1) // 2)
            rows[x] |= b
            cols[y] |= b
    return rows, cols


def _popcount(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.uint32)
    x = x - ((x >> np.uint32(1)) & np.uint32(0x55555555))
    x = (x & np.uint32(0x33333333)) + ((x >> np.uint32(2)) & np.uint32(0x33333333))
    x = (x + (x >> np.uint32(4))) & np.uint32(0x0F0F0F0F)
    return ((x * np.uint32(0x01010101)) >> np.uint32(24)).astype(np.int64)


def full_dag_masks(v: int, max_edges: int) -> np.ndarray:
    """Ascending bitmasks of all fully connected V-vertex DAGs with at most ``max_edges`` edges.

    A mask is kept iff every vertex but the last has an out-edge and every vertex but the first
    an in-edge (the original ``is_full_dag``) and its popcount is at most ``max_edges``.
    """
    masks = np.arange(1 << (v * (v - 1) // 2), dtype=np.int64)
    rows, cols = _edge_masks(v)
    ok = _popcount(masks) <= max_edges
    for i in range(v - 1):
        ok &= (masks & rows[i]) != 0
    for j in range(1, v):
        ok &= (masks & cols[j]) != 0
    return masks[ok]


def _labelled_codes_for(v: int, masks: np.ndarray) -> np.ndarray:
    """Labelled codes of every (mask, labelling) in enumeration order (= ascending)."""
    nlab = 3 ** (v - 2)
    o = np.arange(nlab, dtype=np.int64) * 3 ** (_V - v)  # digits at positions 1..V-2
    codes = (v << 29) | (masks[:, None] << 8) | o[None, :]
    return codes.reshape(-1).astype(np.uint32)


def enumerate_cells(max_vertices: int = 7, max_edges: int = 9, *, progress: bool = True) -> Enumeration:
    """Enumerate every unique cell, as the original ``generate_graphs.py`` (reference spec §4).

    For ``V = 2..max_vertices`` all fully connected DAGs (bitmask order) with at most
    ``max_edges`` edges and all labellings are coded (a labelled code ``V<<29 | mask<<8 | O``
    is ascending in exactly the original's enumeration order), their canonical codes are
    computed with the jitted kernel, the first-met graph of each code is kept, and the kept
    representatives are hashed with ``graph.fingerprint``.

    Args:
      max_vertices: 2..7.
      max_edges: 0..21.
      progress: tqdm progress bars.

    Returns:
      An :class:`Enumeration` sorted by module hash.

    Raises:
      ConfigError: limits out of range.
    """
    from tqdm.auto import tqdm  # noqa: PLC0415

    from nasbench_jax import graph  # noqa: PLC0415
    from nasbench_jax.graph.canonical import canonical_from_labelled  # noqa: PLC0415

    if isinstance(max_vertices, bool) or not isinstance(max_vertices, (int, np.integer)) or not 2 <= max_vertices <= _V:
        raise ConfigError(f"max_vertices must be an int in 2..{_V}, got {max_vertices!r}")
    if isinstance(max_edges, bool) or not isinstance(max_edges, (int, np.integer)) or not 0 <= max_edges <= 21:
        raise ConfigError(f"max_edges must be an int in 0..21, got {max_edges!r}")
    labelled_per_v, unique_per_v = {}, {}
    reps, rep_codes = [], []
    bar = tqdm(range(2, int(max_vertices) + 1), desc="enumerate", unit="V", disable=not progress)
    for v in bar:
        masks = full_dag_masks(v, int(max_edges))
        lab_codes = _labelled_codes_for(v, masks)
        labelled_per_v[v] = int(lab_codes.shape[0])
        canon = canonical_from_labelled(lab_codes)
        # isomorphic cells have the same V, so first-met per code within V is first-met overall
        uniq, first = np.unique(canon, return_index=True)
        unique_per_v[v] = int(uniq.shape[0])
        reps.append(lab_codes[first])
        rep_codes.append(uniq)
        bar.set_postfix(V=v, labelled=labelled_per_v[v], unique=unique_per_v[v])
    rep_lab = np.concatenate(reps) if reps else np.zeros(0, np.uint32)
    codes = np.concatenate(rep_codes) if rep_codes else np.zeros(0, np.uint32)
    if rep_lab.shape[0]:
        cells = graph.decode_codes(rep_lab)
        fps = graph.fingerprint(*cells, progress=progress)
    else:
        cells = Cells(np.zeros((0, _V, _V), np.uint8), np.zeros((0, _V), np.int8), np.zeros(0, np.int32))
        fps = np.zeros((0, 16), np.uint8)
    hexes = graph.digest_to_hex(fps)
    order = np.argsort(hexes, kind="stable")
    hexes = hexes[order]
    distinct = bool(hexes.shape[0] < 2 or np.all(hexes[1:] != hexes[:-1]))
    return Enumeration(
        cells=Cells(*(np.ascontiguousarray(x[order]) for x in cells)),
        fingerprints=np.ascontiguousarray(fps[order]),
        module_hash=hexes,
        codes=codes[order],
        labelled_per_vertices=labelled_per_v,
        unique_per_vertices=unique_per_v,
        max_vertices=int(max_vertices),
        max_edges=int(max_edges),
        hash_partition_equals_code_partition=distinct,
    )


def save_enumeration(enumeration: Enumeration, path) -> None:
    """Write the CLI's ``.npz`` atomically (temp file in the same directory + ``os.replace``).

    Keys (all plain arrays, loadable with ``allow_pickle=False``), rows sorted by hash:
    ``module_hash`` ``S32``, ``canonical_code`` ``uint32``, ``adjacency`` ``uint8[N,7,7]``,
    ``operations`` ``int8[N,7]``, ``num_vertices`` ``int32``, plus ``counts`` ``int64[K,3]``
    rows ``(V, labelled, unique)`` and ``limits`` ``int64[2]`` ``(max_vertices, max_edges)``.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    counts = np.array(
        [(v, enumeration.labelled_per_vertices[v], enumeration.unique_per_vertices[v])
         for v in sorted(enumeration.labelled_per_vertices)],
        np.int64,
    ).reshape(-1, 3)
    with atomic_write(path, "wb") as f:
        np.savez(
            f,
            module_hash=np.asarray(enumeration.module_hash, "S32"),
            canonical_code=np.asarray(enumeration.codes, np.uint32),
            adjacency=np.asarray(enumeration.cells.adjacency, np.uint8),
            operations=np.asarray(enumeration.cells.operations, np.int8),
            num_vertices=np.asarray(enumeration.cells.num_vertices, np.int32),
            counts=counts,
            limits=np.array([enumeration.max_vertices, enumeration.max_edges], np.int64),
        )


def load_enumeration(path) -> Enumeration:
    """Read a file written by :func:`save_enumeration` (``allow_pickle=False``).

    Raises:
      CellArrayError: the file lacks a key or has a wrong dtype.
    """
    from nasbench_jax import graph  # noqa: PLC0415

    want = {"module_hash": "S", "canonical_code": "u", "adjacency": "u", "operations": "i",
            "num_vertices": "i", "counts": "i", "limits": "i"}
    with np.load(os.fspath(path), allow_pickle=False) as z:
        for k, kind in want.items():
            if k not in z.files:
                raise CellArrayError(f"{path}: missing key {k!r}")
            if z[k].dtype.kind != kind:
                raise CellArrayError(f"{path}: key {k!r} has dtype {z[k].dtype}")
        data = {k: z[k] for k in want}
    hexes = data["module_hash"]
    return Enumeration(
        cells=Cells(data["adjacency"], data["operations"], data["num_vertices"]),
        fingerprints=graph.hex_to_digest(hexes),
        module_hash=hexes,
        codes=data["canonical_code"],
        labelled_per_vertices={int(r[0]): int(r[1]) for r in data["counts"]},
        unique_per_vertices={int(r[0]): int(r[2]) for r in data["counts"]},
        max_vertices=int(data["limits"][0]),
        max_edges=int(data["limits"][1]),
        hash_partition_equals_code_partition=bool(hexes.shape[0] < 2 or np.all(hexes[1:] != hexes[:-1])),
    )
