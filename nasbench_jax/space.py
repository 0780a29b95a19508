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

from typing import Iterable, NamedTuple, Sequence

import numpy as np

from nasbench_jax import constants as C
from nasbench_jax.errors import CellArrayError, OutOfDomainError
from nasbench_jax.spec import ModelSpec, check_spec

__all__ = ["Cells", "encode", "encode_spec", "decode", "ops_to_labels", "labels_to_ops"]


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
