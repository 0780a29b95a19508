"""A full-space results store with *synthetic* metrics, for tests, benchmarks and demos.

The real NAS-Bench-101 dataset cannot be shipped or downloaded here, so search methods are
exercised on a stand-in: every one of the 423,624 cells (from
:func:`nasbench_jax.space.enumerate_cells`), budgets 4/12/36/108 epochs, 3 repeats, with
metrics that depend smoothly on documented cell features. Neighbouring cells (edit distance 1)
have similar features and so similar accuracies: the landscape has locality, as the paper
reports for the real one (reference spec §8.2, §8.3). Nothing here is a measurement; the store's
metadata says ``"synthetic": true`` and carries the formula below.

Features of a pruned cell (:func:`cell_features`): ``n3``/``n1``/``np`` the numbers of
conv3x3 / conv1x1 / maxpool vertices, ``E`` edges, ``depth`` the longest input->output path
(edges), ``width`` the number of vertices the input feeds, ``skip`` an input->output edge,
``chain`` the cell is a plain chain (width 1 everywhere), and ``params`` the paper network's
trainable parameters (closed form of §5.3/§5.6, vectorised here).

Formula (``u`` a per-cell standard normal drawn from the seed and the cell's canonical code,
``e`` per-repeat standard normals)::

    q      = 0.012 n3 + 0.004 n1 - 0.004 np - 0.006 (depth - 3)^2
             + 0.0025 min(width, 5) + 0.003 skip - 0.004 chain - 0.02 [V == 2]
    acc108 = clip(0.905 + q + 0.004 u, 0.5, 0.955)                 mean 108-epoch valid acc
    tau    = 1.5 + 0.4 depth + 0.4 n3                                    (epochs; slower for big cells)
    acc_b  = 0.1 + (acc108 - 0.1) (1 - exp(-b/tau)) / (1 - exp(-108/tau))
    valid  = acc_b + sd_b e1,      sd_b = 0.0015 + 0.08 / b          (repeat noise, shrinks with b)
    test   = valid - 0.006 + 0.0015 e2 (108 epochs; scaled like sd_b at other budgets)
    train  = min(1, acc_b + 0.03 + 0.9 (1 - acc_b) (b / 108)^0.5 + sd_b e3)
    t108   = (550 + 330 n3 + 280 n1 + 300 np + 70 E + 450 chain) exp(0.05 u')   seconds
    time_b = t108 b / 108 (1 + 0.02 e4) + 15,         halfway time ~ time_b / 2
    halfway accuracies = 0.1 + 0.88 (final - 0.1) plus noise

so 108-epoch training times span roughly 600-4,800 s (the real range is 527-5,294 s), and
the per-budget curves cross (``tau`` differs per cell), giving imperfect rank correlation
between budgets as in §8.3. Deterministic given ``seed``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from nasbench_jax import constants as C
from nasbench_jax.errors import ConfigError

__all__ = ["CellFeatures", "cell_features", "network_parameters", "synthetic_metrics", "synthesize",
           "FORMULA"]

FORMULA = __doc__[__doc__.index("Formula"):__doc__.index("so 108-epoch")].strip()


@dataclasses.dataclass(frozen=True)
class CellFeatures:
    """Features of ``N`` pruned cells (all ``int64[N]`` except ``params``)."""

    n_conv3x3: np.ndarray
    n_conv1x1: np.ndarray
    n_maxpool: np.ndarray
    num_vertices: np.ndarray
    num_edges: np.ndarray
    depth: np.ndarray
    width: np.ndarray
    skip: np.ndarray
    chain: np.ndarray
    params: np.ndarray


def _check_cells(adjacency, operations, num_vertices):
    adj = np.asarray(adjacency)
    ops = np.asarray(operations)
    nv = np.asarray(num_vertices).astype(np.int64).reshape(-1)
    n = nv.shape[0]
    if adj.shape != (n, 7, 7) or ops.shape != (n, 7):
        raise ConfigError(
            f"expected adjacency [N,7,7] and operations [N,7] for N={n} cells, got "
            f"{adj.shape} and {ops.shape}")
    if n and (nv.min() < 2 or nv.max() > 7):
        raise ConfigError("num_vertices must be in 2..7")
    return adj.astype(np.int64), ops.astype(np.int64), nv


def _vertex_channels(adj, nv, c_in, c_out):
    """Vectorised ``compute_vertex_channels`` (§5.3) for padded pruned cells: ``int64[N, 7]``."""
    n = nv.shape[0]
    pos = np.arange(7)[None, :]
    interior = (pos >= 1) & (pos <= nv[:, None] - 2)
    feeds = adj[np.arange(n)[:, None], pos, (nv - 1)[:, None]].astype(bool) & interior
    k = feeds.sum(1)
    safe_k = np.maximum(k, 1)
    base, rem = c_out // safe_k, c_out % safe_k
    rank = np.cumsum(feeds, 1) - 1
    vc = np.where(feeds, base[:, None] + (rank < rem[:, None]), 0)
    for j in range(5, 0, -1):
        succ = adj[:, j, :] * vc  # output column is 0 for non-feeders; vc[output] is 0 here
        fill = interior[:, j] & ~feeds[:, j]
        vc[:, j] = np.where(fill, succ.max(1), vc[:, j])
    return vc, interior


def _module_params(adj, ops, nv, c_in, c_out):
    vc, interior = _vertex_channels(adj, nv, c_in, c_out)
    proj = (adj[:, 0, :].astype(bool) & interior) * (c_in * vc + 2 * vc)
    conv = np.where(ops == 0, 9 * vc * vc + 2 * vc, np.where(ops == 1, vc * vc + 2 * vc, 0)) * interior
    out_edge = adj[np.arange(nv.shape[0]), 0, nv - 1].astype(bool) | (nv == 2)
    return proj.sum(1) + conv.sum(1) + out_edge * (c_in * c_out + 2 * c_out)


def network_parameters(adjacency, operations, num_vertices) -> np.ndarray:
    """Trainable parameters of the paper's network (§5.6 closed form, stem 128, 3x3 modules),
    vectorised over cells. ``int64[N]``."""
    adj, ops, nv = _check_cells(adjacency, operations, num_vertices)
    total = np.full(nv.shape[0], 3 * 3 * 3 * 128 + 2 * 128 + 512 * 10 + 10, np.int64)
    c = 128
    for stack in range(3):
        if stack > 0:
            total += _module_params(adj, ops, nv, c, 2 * c)
            c = 2 * c
            total += 2 * _module_params(adj, ops, nv, c, c)
        else:
            total += 3 * _module_params(adj, ops, nv, c, c)
    return total


def cell_features(adjacency, operations, num_vertices) -> CellFeatures:
    """The documented features of pruned, padded cells (see the module docstring).

    Args:
      adjacency: ``uint8[N, 7, 7]``; operations: ``int8[N, 7]``; num_vertices: ``int[N]``.

    Returns:
      :class:`CellFeatures`.

    Raises:
      ConfigError: wrong shapes or vertex counts.
    """
    adj, ops, nv = _check_cells(adjacency, operations, num_vertices)
    n = nv.shape[0]
    pos = np.arange(7)[None, :]
    interior = (pos >= 1) & (pos <= nv[:, None] - 2)
    # longest path from the input (edges); -inf where unreachable
    dist = np.full((n, 7), -10**6, np.int64)
    dist[:, 0] = 0
    for j in range(1, 7):
        cand = np.where(adj[:, :j, j] > 0, dist[:, :j] + 1, -10**6)
        dist[:, j] = cand.max(1)
    depth = dist[np.arange(n), nv - 1]
    out_deg = adj.sum(2)
    in_deg = adj.sum(1)
    chain = (np.where(interior, (out_deg == 1) & (in_deg == 1), True).all(1)
             & (adj[:, 0, :].sum(1) == 1))
    return CellFeatures(
        n_conv3x3=((ops == 0) & interior).sum(1), n_conv1x1=((ops == 1) & interior).sum(1),
        n_maxpool=((ops == 2) & interior).sum(1), num_vertices=nv, num_edges=adj.sum((1, 2)),
        depth=depth, width=adj[:, 0, :].sum(1), skip=adj[np.arange(n), 0, nv - 1],
        chain=chain.astype(np.int64), params=network_parameters(adjacency, operations, num_vertices),
    )


def _cell_normals(codes: np.ndarray, seed: int, stream: int) -> np.ndarray:
    """A standard normal per cell that depends only on (seed, stream, canonical code): the
    same cell gets the same value in a full store and in any subset of it."""
    x = codes.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    x ^= np.uint64((seed * 0x632BE59BD9B4E019 + stream * 0x85EBCA77C2B2AE63) & 0xFFFFFFFFFFFFFFFF)
    u = []
    for salt in (0xBF58476D1CE4E5B9, 0x94D049BB133111EB):
        z = x ^ np.uint64(salt)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
        u.append(((z >> np.uint64(11)).astype(np.float64) + 0.5) / float(1 << 53))
    return np.sqrt(-2.0 * np.log(u[0])) * np.cos(2.0 * np.pi * u[1])  # Box-Muller


def synthetic_metrics(
    adjacency, operations, num_vertices, canonical_code, *, seed: int = 0,
    budgets=C.BUDGETS, num_repeats: int = C.NUM_REPEATS,
) -> dict[str, np.ndarray]:
    """All eight metric columns ``float32[N, B, R]`` of the synthetic landscape.

    Args:
      adjacency, operations, num_vertices: pruned padded cells (``[N,7,7]``, ``[N,7]``, ``[N]``).
      canonical_code: ``uint32[N]`` (seeds the per-cell terms, so subsets agree with the whole).
      seed: the landscape seed. budgets: epochs. num_repeats: repeats per budget.

    Returns:
      ``{"final_validation_accuracy": ..., ..., "halfway_training_time": ...}``.

    Raises:
      ConfigError: bad shapes, non-positive budgets or repeats.
    """
    budgets = np.asarray(budgets, np.float64).reshape(-1)
    if budgets.size == 0 or np.any(budgets <= 0) or num_repeats < 1:
        raise ConfigError(f"budgets must be positive and repeats >= 1, got {budgets.tolist()}, {num_repeats}")
    f = cell_features(adjacency, operations, num_vertices)
    codes = np.asarray(canonical_code, np.uint32).reshape(-1)
    n = codes.shape[0]
    u = _cell_normals(codes, seed, 0)
    u_t = _cell_normals(codes, seed, 1)
    q = (0.012 * f.n_conv3x3 + 0.004 * f.n_conv1x1 - 0.004 * f.n_maxpool
         - 0.006 * (f.depth - 3.0) ** 2 + 0.0025 * np.minimum(f.width, 5) + 0.003 * f.skip
         - 0.004 * f.chain - 0.02 * (f.num_vertices == 2))
    acc108 = np.clip(0.905 + q + 0.004 * u, 0.5, 0.955)
    tau = 1.5 + 0.4 * f.depth + 0.4 * f.n_conv3x3
    b = budgets[None, :]
    curve = (1 - np.exp(-b / tau[:, None])) / (1 - np.exp(-108.0 / tau[:, None]))
    acc_b = 0.1 + (acc108[:, None] - 0.1) * curve  # [N, B]
    sd = 0.0015 + 0.08 / b  # [1, B]
    t108 = (550 + 330 * f.n_conv3x3 + 280 * f.n_conv1x1 + 300 * f.n_maxpool + 70 * f.num_edges
            + 450 * f.chain) * np.exp(0.05 * u_t)
    # repeat noise from a generator seeded by (seed, N): reproducible for a given cell set
    rng = np.random.default_rng([seed, n, 7])
    shape = (n, budgets.size, num_repeats)
    e = rng.standard_normal((8,) + shape)
    a = acc_b[:, :, None]
    s = sd[:, :, None]
    valid = a + s * e[0]
    test = valid - 0.006 + (s / sd[0, -1]) * 0.0015 * e[1]
    train = np.minimum(1.0, a + 0.03 + 0.9 * (1 - a) * np.sqrt(b / 108.0)[:, :, None] + s * e[2])
    time = t108[:, None, None] * (b / 108.0)[:, :, None] * (1 + 0.02 * e[3]) + 15.0
    half = lambda x, k: 0.1 + 0.88 * (x - 0.1) + 2 * s * e[k]  # noqa: E731
    out = {
        "final_train_accuracy": train, "final_validation_accuracy": valid, "final_test_accuracy": test,
        "final_training_time": time,
        "halfway_train_accuracy": np.minimum(1.0, half(train, 4)),
        "halfway_validation_accuracy": half(valid, 5), "halfway_test_accuracy": half(test, 6),
        "halfway_training_time": time * (0.5 + 0.01 * e[7]),
    }
    return {k: np.clip(v, 0.0, None).astype(np.float32) if "time" in k else
            np.clip(v, 0.0, 1.0).astype(np.float32) for k, v in out.items()}


def synthesize(enumeration: Any = None, *, seed: int = 0, progress: bool = False):
    """Build the full-space synthetic store.

    Args:
      enumeration: the result of :func:`nasbench_jax.space.enumerate_cells` (``.cells``,
        ``.codes``, ``.fingerprints``); enumerated here (all 423,624 cells) when ``None``.
      seed: landscape seed (same seed, same store).
      progress: show the enumeration's progress bar.

    Returns:
      A :class:`nasbench_jax.store.Store` labelled ``synthetic`` in its metadata.
    """
    from nasbench_jax import graph, space, store

    if enumeration is None:
        enumeration = space.enumerate_cells(max_vertices=7, max_edges=9, progress=progress)
    cells = enumeration.cells
    metrics = synthetic_metrics(cells.adjacency, cells.operations, cells.num_vertices,
                                enumeration.codes, seed=seed)
    hashes = getattr(enumeration, "module_hash", None)
    if hashes is None:
        hashes = graph.digest_to_hex(np.asarray(enumeration.fingerprints))
    return store.make_store(
        adjacency=cells.adjacency, operations=cells.operations, num_vertices=cells.num_vertices,
        module_hash=hashes,
        trainable_parameters=network_parameters(cells.adjacency, cells.operations, cells.num_vertices),
        metrics=metrics, canonical_code=enumeration.codes, synthetic=True,
        provenance=[{"source": "nasbench_jax.synthetic", "seed": int(seed)}],
        metadata_extra={"description": "SYNTHETIC metrics (not measurements): smooth functions of "
                        "cell features with locality; see nasbench_jax/synthetic.py",
                        "formula": FORMULA, "seed": int(seed)},
    )
