"""The shared machinery of every search method: raw configurations, evaluation, the driver.

A search method is three pure per-seed functions (see :class:`Algorithm`): ``init`` (a
state from a PRNG key), ``propose`` (the state and the step number -> one raw cell to
evaluate) and ``update`` (fold the evaluation result back into the state). :func:`run_search`
``vmap`` s them over seeds and runs them inside one ``lax.while_loop`` in one compiled
program; each step evaluates all seeds' proposals with one batched store lookup plus a
repeat draw per seed (each seed's own key, so a seed's trajectory does not depend on the others).

**Configurations** are the benchmark scripts' main encoding (reference spec §8.4): 21 binary
edge variables (row-major upper triangle of a 7x7 matrix, ``np.triu_indices(7, 1)`` order)
and 5 interior ops. Proposals are always *raw* 7-vertex cells in the array encoding of
:mod:`nasbench_jax.constants` (``adjacency uint8[7,7]``, ``operations int8[7]`` with input
``-1``, ops ``0..2``, output ``-2``, ``num_vertices == 7``); the table query prunes them.

**Budget accounting** (§8.4, as ``tabular_benchmarks.NASCifar10A.objective_function``):

* A proposal is *invalid* when its raw matrix has more than 9 edges, when it has no
  input->output path (``OutOfDomainError``), or -- on a store that covers only part of the
  space -- when the store lacks the cell (the original API raises ``KeyError`` there; we treat
  it exactly like ``OutOfDomainError``). An invalid proposal costs 0 s, gets validation and
  test accuracy 0 (error 1) and can never become the incumbent.
* A valid proposal costs the queried ``training_time`` at the queried budget (the halfway time
  when a method stops halfway). Its queried validation accuracy (one random repeat) ranks it;
  the incumbent changes only on a strict improvement (``inc_valid > y_valid`` in the scripts).
  The incumbent's score is its *mean* 108-epoch test accuracy over the repeats.
* A seed stops after the first step whose cumulative time exceeds ``max_time_s``; that step is
  recorded (as the scripts do: they record every query, then cut the curve at the limit).
* ``max_evaluations`` (static) bounds the loop and the trajectory length. A seed that reaches
  it before ``max_time_s`` simply stops early; :attr:`Trajectory.num_steps` and
  :attr:`Trajectory.time_s` show where. Choose it so that ``max_evaluations * min cost``
  exceeds ``max_time_s`` (the CLI warns when a seed is cut short).

Steps of seeds that have already stopped are computed (all seeds run in lock step) but not
recorded: their ``active`` flag is ``False``.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from nasbench_jax import constants as C
from nasbench_jax.space import Cells

__all__ = [
    "Algorithm",
    "EvalResult",
    "Trajectory",
    "SearchBudget",
    "NUM_EDGE_VARS",
    "NUM_OP_VARS",
    "NUM_NEIGHBOURS",
    "TRIU_ROWS",
    "TRIU_COLS",
    "bits_to_cells",
    "cells_to_bits",
    "random_raw_cells",
    "random_configs",
    "config_to_cells",
    "config_valid",
    "first_valid_config",
    "pack_edges",
    "unpack_edges",
    "raw_valid",
    "first_valid",
    "neighbours",
    "neighbour_configs",
    "evaluate",
    "run_search",
]

NUM_EDGE_VARS = C.NUM_EDGE_SLOTS  # 21
NUM_OP_VARS = C.MAX_VERTICES - 2  # 5
#: 1-edit neighbourhood: 21 edge flips + 5 ops x 2 other ops.
NUM_NEIGHBOURS = NUM_EDGE_VARS + NUM_OP_VARS * (C.NUM_OPS - 1)

_TRIU = np.triu_indices(C.MAX_VERTICES, k=1)
#: Row / column of edge variable ``k`` (the scripts' ``np.triu_indices`` row-major order).
TRIU_ROWS = np.asarray(_TRIU[0], np.int32)
TRIU_COLS = np.asarray(_TRIU[1], np.int32)
_BUDGETS = tuple(C.BUDGETS)


@dataclasses.dataclass(frozen=True)
class SearchBudget:
    """How long each seed searches.

    Attributes:
      max_time_s: simulated training seconds; a seed stops after the step that exceeds it.
      max_evaluations: static bound on the number of steps (and the trajectory length).
    """

    max_time_s: float = 1e7
    max_evaluations: int = 12_000


class EvalResult(NamedTuple):
    """The evaluation of one step's proposals, one entry per seed (all ``[S]``).

    Attributes:
      valid: ``bool`` -- in the space and in the store (see module docstring).
      index: ``int32`` store row, ``-1`` where invalid.
      valid_acc: ``float32`` queried validation accuracy at the queried budget (0 if invalid).
      time_s: ``float32`` cost: queried training time (0 if invalid).
      mean_test_acc: ``float32`` mean 108-epoch test accuracy over repeats (0 if invalid).
      mean_valid_acc: ``float32`` mean 108-epoch validation accuracy (0 if invalid).
    """

    valid: jax.Array
    index: jax.Array
    valid_acc: jax.Array
    time_s: jax.Array
    mean_test_acc: jax.Array
    mean_valid_acc: jax.Array


class Trajectory(NamedTuple):
    """What a search did, step by step. Shapes ``[..., E]`` with ``E = max_evaluations``
    (a leading seeds axis when run over many seeds).

    Attributes:
      time_s: ``float32`` cumulative simulated training seconds after the step.
      active: ``bool`` the step happened (the seed had not yet stopped).
      valid: ``bool`` the proposal was valid (and charged).
      epochs: ``int32`` the queried budget in epochs.
      index: ``int32`` store row of the proposal (``-1`` if invalid).
      queried_valid_acc: ``float32`` the proposal's queried validation accuracy.
      incumbent_valid_acc: ``float32`` the incumbent's queried validation accuracy (0 before
        the first valid evaluation).
      incumbent_test_acc: ``float32`` the incumbent's mean 108-epoch test accuracy (0 before).
      incumbent_mean_valid_acc: ``float32`` the incumbent's mean 108-epoch validation accuracy.
      num_steps: ``int32[...]`` number of active steps.
      adjacency / operations: the raw proposals ``uint8[..., E, 7, 7]`` / ``int8[..., E, 7]``
        when recorded (``record_cells=True``), else ``None``.
    """

    time_s: jax.Array
    active: jax.Array
    valid: jax.Array
    epochs: jax.Array
    index: jax.Array
    queried_valid_acc: jax.Array
    incumbent_valid_acc: jax.Array
    incumbent_test_acc: jax.Array
    incumbent_mean_valid_acc: jax.Array
    num_steps: jax.Array
    adjacency: Any = None
    operations: Any = None


@dataclasses.dataclass(frozen=True)
class Algorithm:
    """A search method as pure per-seed functions (hashable: a static argument of ``jit``).

    Attributes:
      name: registry name.
      init: ``(key, config) -> state`` (a pytree).
      propose: ``(state, step, config) -> (state, cell)``; ``cell`` is ``(adjacency uint8[7,7],
        operations int8[7])`` raw, 7 vertices; ``step`` is the (shared) step number.
      update: ``(state, step, cell, result, config) -> state`` with ``result`` an
        :class:`EvalResult` of scalars for this seed.
      budget_index: ``step -> int32`` index into ``(4, 12, 36, 108)`` of the budget to query at
        ``step`` (the same for all seeds); ``None`` means always 108 epochs.
      budgets_needed: epochs the method queries (checked against the store).
    """

    name: str
    init: Callable
    propose: Callable
    update: Callable
    budget_index: Callable | None = None
    budgets_needed: tuple = (108,)


# --------------------------------------------------------------------------- configurations


def bits_to_cells(edge_bits: jax.Array, ops: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Raw configurations to raw 7-vertex cells.

    Args:
      edge_bits: ``[..., 21]`` 0/1 (any int/bool dtype), row-major upper-triangle order.
      ops: ``[..., 5]`` op indices 0..2 of the interior vertices.

    Returns:
      ``(adjacency uint8[..., 7, 7], operations int8[..., 7])``.
    """
    edge_bits = jnp.asarray(edge_bits).astype(jnp.uint8)
    batch = edge_bits.shape[:-1]
    adj = jnp.zeros(batch + (C.MAX_VERTICES, C.MAX_VERTICES), jnp.uint8)
    adj = adj.at[..., TRIU_ROWS, TRIU_COLS].set(edge_bits)
    inp = jnp.full(batch + (1,), C.INPUT_LABEL, jnp.int8)
    out = jnp.full(batch + (1,), C.OUTPUT_LABEL, jnp.int8)
    operations = jnp.concatenate([inp, jnp.asarray(ops).astype(jnp.int8), out], axis=-1)
    return adj, operations


def cells_to_bits(adjacency: jax.Array, operations: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Inverse of :func:`bits_to_cells`: ``(edge bits int32[..., 21], ops int32[..., 5])``."""
    bits = jnp.asarray(adjacency)[..., TRIU_ROWS, TRIU_COLS].astype(jnp.int32)
    ops = jnp.asarray(operations)[..., 1 : C.MAX_VERTICES - 1].astype(jnp.int32)
    return bits, ops


def random_raw_cells(key: jax.Array, shape: tuple = ()) -> tuple[jax.Array, jax.Array]:
    """Uniform configurations (the scripts' ``cs.sample_configuration()``): each edge bit
    Bernoulli(1/2), each interior op uniform over the 3 ops. Many are invalid.

    Returns:
      ``(adjacency uint8[*shape, 7, 7], operations int8[*shape, 7])``.
    """
    k_e, k_o = jax.random.split(key)
    bits = jax.random.bernoulli(k_e, 0.5, shape + (NUM_EDGE_VARS,))
    ops = jax.random.randint(k_o, shape + (NUM_OP_VARS,), 0, C.NUM_OPS)
    return bits_to_cells(bits, ops)


_ROW_START = (0, 6, 11, 15, 18, 20)  # first edge variable of rows 0..5 (row-major triu order)
_CONFIG_MASK = (1 << NUM_EDGE_VARS) - 1


def pack_edges(adjacency: jax.Array) -> jax.Array:
    """Raw adjacency ``[..., 7, 7]`` -> the 21 edge variables as bits of a ``uint32[...]``
    (bit ``k`` = edge variable ``k``, row-major upper-triangle order)."""
    slots = jnp.asarray(adjacency)[..., TRIU_ROWS, TRIU_COLS].astype(jnp.uint32)
    return jnp.sum(slots << jnp.arange(NUM_EDGE_VARS, dtype=jnp.uint32), axis=-1, dtype=jnp.uint32)


def unpack_edges(bits: jax.Array) -> jax.Array:
    """Inverse of :func:`pack_edges`: ``int32[..., 21]`` 0/1."""
    bits = jnp.asarray(bits).astype(jnp.uint32)
    return ((bits[..., None] >> jnp.arange(NUM_EDGE_VARS, dtype=jnp.uint32)) & 1).astype(jnp.int32)


def _row_mask(bits, r):
    """Successors of vertex ``r`` as a vertex bitmask (bit ``j`` = vertex ``j``)."""
    width = C.MAX_VERTICES - 1 - r
    return ((bits >> _ROW_START[r]) & jnp.uint32((1 << width) - 1)) << jnp.uint32(r + 1)


def config_valid(bits: jax.Array) -> jax.Array:
    """:func:`raw_valid` on packed edge variables (``uint32[...]``, see :func:`pack_edges`):
    bitwise reachability in topological order, so it costs a few integer ops per cell."""
    bits = jnp.asarray(bits).astype(jnp.uint32)
    edges = jax.lax.population_count(bits)
    reach = _row_mask(bits, 0)
    for r in range(1, C.MAX_VERTICES - 1):
        has = (reach >> jnp.uint32(r)) & jnp.uint32(1)
        reach = reach | jnp.where(has > 0, _row_mask(bits, r), jnp.uint32(0))
    out = (reach >> jnp.uint32(C.MAX_VERTICES - 1)) & jnp.uint32(1)
    return (edges <= C.MAX_EDGES) & (out > 0)


def raw_valid(adjacency: jax.Array) -> jax.Array:
    """Validity of raw 7-vertex configurations as the benchmark scripts judge it.

    Raw edge count <= 9 (checked before pruning, as ``NASCifar10A`` does) and a directed path
    from the input (vertex 0) to the output (vertex 6). With at most 9 raw edges, the pruned
    cell has at most 9 edges too, so this is exactly "in the space" (reference spec §1.4, §8.4).

    Args:
      adjacency: ``[..., 7, 7]`` 0/1, strictly upper-triangular.

    Returns:
      ``bool[...]``.
    """
    return config_valid(pack_edges(adjacency))


def random_configs(key: jax.Array, shape: tuple = ()) -> tuple[jax.Array, jax.Array]:
    """Uniform configurations as ``(packed edges uint32[*shape], ops int32[*shape, 5])``.

    Two random 32-bit words per configuration: the low 21 bits of the first are the edge
    variables (exactly uniform); the second modulo 243 gives the 5 base-3 op digits (uniform
    up to a relative bias of 2^32 mod 243 / 2^32 < 1e-7).
    """
    words = jax.random.bits(key, shape + (2,), jnp.uint32)
    bits = words[..., 0] & jnp.uint32(_CONFIG_MASK)
    code = (words[..., 1] % jnp.uint32(243)).astype(jnp.int32)
    digits = (code[..., None] // jnp.asarray([81, 27, 9, 3, 1], jnp.int32)) % C.NUM_OPS
    return bits, digits


def config_to_cells(bits: jax.Array, ops: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Packed configurations to raw cells (``uint8[..., 7, 7]``, ``int8[..., 7]``)."""
    return bits_to_cells(unpack_edges(bits), ops)


def first_valid_config(bits: jax.Array, ops: jax.Array) -> tuple[jax.Array, jax.Array]:
    """The first valid of ``K`` packed configurations (``[K]``, ``[K, 5]``); the first if none."""
    k = jnp.argmax(config_valid(bits))
    return bits[k], ops[k]


def first_valid(adjacency: jax.Array, operations: jax.Array) -> tuple[jax.Array, jax.Array]:
    """The first raw-valid cell among ``K`` candidates ``[K, 7, 7]`` / ``[K, 7]`` (the first
    candidate if none is valid). Taking the first valid of i.i.d. draws is rejection sampling:
    the same distribution as redrawing until valid, which the scripts do implicitly (invalid
    draws cost 0 and never become incumbents)."""
    ok = raw_valid(adjacency)
    k = jnp.argmax(ok)  # 0 if none
    return adjacency[k], operations[k]


def neighbour_configs(bits: jax.Array, ops: jax.Array) -> tuple[jax.Array, jax.Array]:
    """The 31 configurations at edit distance 1 of one packed configuration (``uint32``,
    ``int[5]``): 21 edge flips (variable order), then for interior vertex 1..5 its two other
    ops (ascending shift). Returns ``(uint32[31], int32[31, 5])``."""
    bits = jnp.asarray(bits).astype(jnp.uint32)
    ops = jnp.asarray(ops).astype(jnp.int32)
    flips = bits ^ (jnp.uint32(1) << jnp.arange(NUM_EDGE_VARS, dtype=jnp.uint32))
    var = jnp.repeat(jnp.arange(NUM_OP_VARS), C.NUM_OPS - 1)  # [10]
    delta = jnp.tile(jnp.arange(1, C.NUM_OPS), NUM_OP_VARS)  # 1, 2, 1, 2, ...
    op_ops = jnp.broadcast_to(ops, (var.shape[0], NUM_OP_VARS))
    op_ops = op_ops.at[jnp.arange(var.shape[0]), var].set((ops[var] + delta) % C.NUM_OPS)
    all_bits = jnp.concatenate([flips, jnp.broadcast_to(bits, (var.shape[0],))])
    all_ops = jnp.concatenate([jnp.broadcast_to(ops, (NUM_EDGE_VARS, NUM_OP_VARS)), op_ops])
    return all_bits, all_ops


def neighbours(adjacency: jax.Array, operations: jax.Array) -> tuple[jax.Array, jax.Array]:
    """All ``31`` cells at edit distance 1 of one raw cell (§8.3), as raw cells
    ``(uint8[31, 7, 7], int8[31, 7])`` in :func:`neighbour_configs` order."""
    ops = jnp.asarray(operations)[1 : C.MAX_VERTICES - 1]
    return config_to_cells(*neighbour_configs(pack_edges(adjacency), ops))


# --------------------------------------------------------------------------- evaluation


def _lookup_cells(table, cells: Cells) -> jax.Array:
    """Store rows of raw cells (``-1`` if invalid or absent), batched, no randomness: the
    table's ``lookup_cells`` method if it has one (test fakes), else ``api.lookup_cells``."""
    method = getattr(table, "lookup_cells", None)
    if method is not None:
        return method(cells)
    from nasbench_jax import api

    return api.lookup_cells(table, cells)


def _query_index(table, index, key, *, epochs: int, stop_halfway: bool = False):
    method = getattr(table, "query_index", None)
    if method is not None:
        return method(index, key, epochs=epochs, stop_halfway=stop_halfway)
    from nasbench_jax import api

    return api.query_index(table, index, key, epochs=epochs, stop_halfway=stop_halfway)


def evaluate(
    table, adjacency: jax.Array, operations: jax.Array, keys: jax.Array, budget_index=None,
    *, stop_halfway: bool = False,
) -> EvalResult:
    """Evaluate one raw proposal per seed with §8.4's accounting.

    The store lookup (prune, canonical code, ``searchsorted``) runs batched over all seeds; the
    repeat draw uses each seed's own key, so a seed's results do not depend on the others.

    Args:
      table: the query table (``api.QueryTable``).
      adjacency: ``uint8[S, 7, 7]`` raw cells; operations: ``int8[S, 7]``.
      keys: ``[S]`` PRNG keys for the repeat draws.
      budget_index: ``None`` (108 epochs) or an int32 scalar index into ``(4, 12, 36, 108)``
        (the same for the whole batch; a ``lax.switch`` picks the query).
      stop_halfway: query the halfway metrics (cost = halfway training time).

    Returns:
      An :class:`EvalResult` of ``[S]`` arrays.
    """
    s = adjacency.shape[0]
    cells = Cells(adjacency, operations, jnp.full((s,), C.MAX_VERTICES, jnp.int32))
    index = jnp.where(raw_valid(adjacency), _lookup_cells(table, cells), -1).astype(jnp.int32)

    def one(i, key):
        k_q, k_m = jax.random.split(key)
        if budget_index is None:
            r = _query_index(table, i[None], k_q, epochs=108, stop_halfway=stop_halfway)
            r108 = _query_index(table, i[None], k_m, epochs=108) if stop_halfway else r
        else:
            branches = [
                (lambda e: lambda j, k: _query_index(table, j, k, epochs=e, stop_halfway=stop_halfway))(e)
                for e in _BUDGETS
            ]
            r = jax.lax.switch(budget_index, branches, i[None], k_q)
            r108 = _query_index(table, i[None], k_m, epochs=108)
        valid = r.found & (r.index >= 0)
        zero = jnp.float32(0.0)
        return EvalResult(
            valid=valid[0],
            index=jnp.where(valid, r.index, -1).astype(jnp.int32)[0],
            valid_acc=jnp.where(valid, r.validation_accuracy, zero).astype(jnp.float32)[0],
            time_s=jnp.where(valid, r.training_time, zero).astype(jnp.float32)[0],
            mean_test_acc=jnp.where(valid, r108.mean_test_accuracy, zero).astype(jnp.float32)[0],
            mean_valid_acc=jnp.where(valid, r108.mean_validation_accuracy, zero).astype(jnp.float32)[0],
        )

    return jax.vmap(one)(index, keys)


# --------------------------------------------------------------------------- driver


class _Carry(NamedTuple):
    step: jax.Array
    states: Any
    key: jax.Array
    elapsed: jax.Array
    inc_valid: jax.Array
    inc_test: jax.Array
    inc_mvalid: jax.Array
    any_valid: jax.Array
    rows: Any
    seen: Any


def run_search(
    algorithm: Algorithm,
    keys: jax.Array,
    table,
    config,
    max_time_s,
    max_evaluations: int,
    *,
    record_cells: bool = False,
    stop_halfway: bool = False,
    dedup: bool = False,
) -> Trajectory:
    """Run ``algorithm`` for every key in ``keys`` (``[S]`` PRNG keys), in lock step.

    With ``dedup=True`` a proposal isomorphic to a cell the seed has already evaluated (same
    store row, i.e. same canonical code) is skipped: it costs 0, cannot become the incumbent,
    is recorded as not valid, and the algorithm's ``update`` is not applied (its ``propose``
    already advanced its key, so the next proposal is a fresh draw). Off by default: the paper's
    protocol re-evaluates repeats (with a fresh random repeat each time).

    Pure and traceable: wrap in ``jax.jit`` with ``algorithm``, ``config``, ``max_evaluations``
    and ``record_cells`` static (see :func:`search.run`).

    Returns:
      A :class:`Trajectory` with arrays ``[S, max_evaluations]``.
    """
    n = keys.shape[0]
    k_init, k_run = jax.vmap(lambda k: jax.random.split(k, 2), out_axes=1)(keys)
    states = jax.vmap(algorithm.init, in_axes=(0, None))(k_init, config)
    # Per-seed evaluation keys come from the seed's own key, so seed s's trajectory does not
    # depend on how many other seeds run with it.
    max_time_s = jnp.asarray(max_time_s, jnp.float32)

    f32 = lambda: jnp.zeros((max_evaluations, n), jnp.float32)  # noqa: E731
    rows = dict(
        time_s=f32(), active=jnp.zeros((max_evaluations, n), bool),
        valid=jnp.zeros((max_evaluations, n), bool),
        epochs=jnp.zeros((max_evaluations, n), jnp.int32),
        index=jnp.full((max_evaluations, n), -1, jnp.int32),
        queried_valid_acc=f32(), incumbent_valid_acc=f32(), incumbent_test_acc=f32(),
        incumbent_mean_valid_acc=f32(),
    )
    if record_cells:
        rows["adjacency"] = jnp.zeros((max_evaluations, n, 7, 7), jnp.uint8)
        rows["operations"] = jnp.zeros((max_evaluations, n, 7), jnp.int8)
    zeros = jnp.zeros((n,), jnp.float32)
    num_rows = int(jnp.shape(getattr(table, "codes", jnp.zeros((1,))))[0])
    seen = jnp.zeros((n, (num_rows + 31) // 32), jnp.uint32) if dedup else None
    carry = _Carry(jnp.int32(0), states, k_run, zeros, zeros, zeros, zeros,
                   jnp.zeros((n,), bool), rows, seen)
    budgets = jnp.asarray(_BUDGETS, jnp.int32)

    def cond(c: _Carry):
        return (c.step < max_evaluations) & jnp.any(c.elapsed <= max_time_s)

    def body(c: _Carry) -> _Carry:
        i = c.step
        active = c.elapsed <= max_time_s
        keys_next, k_eval = jax.vmap(lambda k: jax.random.split(k, 2), out_axes=1)(c.key)
        states, (adj, ops) = jax.vmap(algorithm.propose, in_axes=(0, None, None))(c.states, i, config)
        b_idx = None if algorithm.budget_index is None else algorithm.budget_index(i)
        res = evaluate(table, adj, ops, k_eval, b_idx, stop_halfway=stop_halfway)
        seen = c.seen
        if dedup:
            row = jnp.maximum(res.index, 0)
            word = jnp.take_along_axis(seen, (row >> 5)[:, None], axis=1)[:, 0]
            bit = jnp.left_shift(jnp.uint32(1), (row & 31).astype(jnp.uint32))
            dup = res.valid & ((word & bit) > 0)
            fresh = res.valid & ~dup & active
            seen = seen.at[jnp.arange(n), row >> 5].set(jnp.where(fresh, word | bit, word))
            zero = jnp.zeros_like(res.valid_acc)
            res = res._replace(valid=res.valid & ~dup, index=jnp.where(dup, -1, res.index),
                               valid_acc=jnp.where(dup, zero, res.valid_acc),
                               time_s=jnp.where(dup, zero, res.time_s))
        updated = jax.vmap(algorithm.update, in_axes=(0, None, 0, 0, None))(
            states, i, (adj, ops), res, config)
        if dedup:
            states = jax.tree.map(
                lambda u, p: jnp.where(dup.reshape((n,) + (1,) * (u.ndim - 1)), p, u), updated, states)
        else:
            states = updated
        valid = res.valid & active
        improved = valid & (res.valid_acc > c.inc_valid) | (valid & ~c.any_valid)
        inc_valid = jnp.where(improved, res.valid_acc, c.inc_valid)
        inc_test = jnp.where(improved, res.mean_test_acc, c.inc_test)
        inc_mvalid = jnp.where(improved, res.mean_valid_acc, c.inc_mvalid)
        elapsed = c.elapsed + jnp.where(valid, res.time_s, 0.0)
        epochs = budgets[3] if b_idx is None else budgets[b_idx]
        new = dict(
            time_s=elapsed, active=active, valid=valid,
            epochs=jnp.full((n,), epochs, jnp.int32), index=jnp.where(valid, res.index, -1),
            queried_valid_acc=jnp.where(valid, res.valid_acc, 0.0),
            incumbent_valid_acc=inc_valid, incumbent_test_acc=inc_test,
            incumbent_mean_valid_acc=inc_mvalid,
        )
        if record_cells:
            new["adjacency"] = adj
            new["operations"] = ops
        rows = {k: c.rows[k].at[i].set(new[k].astype(c.rows[k].dtype)) for k in c.rows}
        return _Carry(i + 1, states, keys_next, elapsed, inc_valid, inc_test, inc_mvalid,
                      c.any_valid | valid, rows, seen)

    out = jax.lax.while_loop(cond, body, carry)
    r = {k: jnp.swapaxes(v, 0, 1) for k, v in out.rows.items()}
    num_steps = r["active"].sum(axis=1).astype(jnp.int32)
    # Fill the rows after a seed stopped with its final values (time and incumbent hold).
    last = jnp.maximum(num_steps - 1, 0)

    def hold(x):
        final = jnp.take_along_axis(x, last[:, None], axis=1)
        return jnp.where(r["active"], x, final)

    for name in ("time_s", "incumbent_valid_acc", "incumbent_test_acc", "incumbent_mean_valid_acc"):
        r[name] = hold(r[name])
    return Trajectory(num_steps=num_steps, **r)
