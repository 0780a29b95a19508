"""Cell specifications with the original NAS-Bench-101 semantics (reference spec §1-§3).

A cell ("module") is a strictly upper-triangular 0/1 matrix plus one label per vertex::

    >>> from nasbench_jax import ModelSpec, is_valid
    >>> spec = ModelSpec([[0, 1, 0], [0, 0, 1], [0, 0, 0]],
    ...                  ["input", "conv3x3-bn-relu", "output"])
    >>> spec.hash_spec()
    'b49ac8c578b4561d79ac7087988f1c61'
    >>> is_valid(spec)
    True

``ModelSpec`` checks and prunes exactly like ``nasbench.lib.model_spec.ModelSpec``: the same
checks in the same order with the same messages, the same pruning, ``valid_spec``,
``original_matrix``/``original_ops`` and the pruned ``matrix``/``ops``. Like the original it
accepts any labels (its own unit tests use integers); the search-space checks live in
:func:`check_spec` / :func:`is_valid`, as in ``nasbench.api``.

Deliberate differences, all on input the original silently mishandles:

* Matrix entries must be 0/1 (or booleans). The original hashes degree *sums* but selects
  neighbours by non-zero entries, so a ``2`` gives a meaningless hash; we raise
  :class:`~nasbench_jax.errors.SpecError`.
* A 3-D array, a ragged nested list, or a non-numeric matrix raises ``SpecError`` naming the
  problem instead of a numpy traceback.
* ``check_spec`` on a pruned spec with more than 7 vertices raises
  ``OutOfDomainError('too many vertices, got %d (max vertices = 7)')``. The original formats
  that message with a *module* and so raises ``TypeError`` (reference spec §1.4, a bug);
  consequently our ``is_valid`` returns ``False`` there instead of propagating ``TypeError``.

``ModelSpec`` objects are immutable value objects: the arrays are read-only and specs compare
and hash by ``(original_matrix, original_ops)``, so they can be static attributes of Flax
modules and keys of dicts.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from nasbench_jax import constants as C
from nasbench_jax.errors import OutOfDomainError, SpecError
from nasbench_jax.graph import reference

__all__ = ["ModelSpec", "check_spec", "is_valid", "prune_matrix"]


def _as_matrix(matrix: Any) -> np.ndarray:
    if isinstance(matrix, ModelSpec):
        raise SpecError("matrix must be an array or nested list, got a ModelSpec")
    try:
        arr = np.array(matrix)
    except ValueError as e:  # ragged nested lists
        raise SpecError(f"matrix must be a square 2-D array of 0/1 entries: {e}") from None
    if arr.dtype == object or not (
        np.issubdtype(arr.dtype, np.integer) or arr.dtype == np.bool_ or np.issubdtype(arr.dtype, np.floating)
    ):
        raise SpecError(f"matrix must hold 0/1 numbers, got dtype {arr.dtype}")
    return arr


def prune_matrix(matrix: np.ndarray) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Return ``(pruned_matrix, kept_vertices)`` per the original ``_prune``; ``(None, None)`` if
    no input->output path exists (reference spec §2)."""
    n = matrix.shape[0]
    if n == 0:
        return None, None
    fwd = {0}
    stack = [0]
    while stack:
        u = stack.pop()
        for v in range(u + 1, n):
            if matrix[u, v] and v not in fwd:
                fwd.add(v)
                stack.append(v)
    bwd = {n - 1}
    stack = [n - 1]
    while stack:
        u = stack.pop()
        for v in range(0, u):
            if matrix[v, u] and v not in bwd:
                bwd.add(v)
                stack.append(v)
    extraneous = set(range(n)) - (fwd & bwd)
    if len(extraneous) > n - 2:
        return None, None
    keep = np.array(sorted(set(range(n)) - extraneous), dtype=np.int64)
    return matrix[np.ix_(keep, keep)], keep


class ModelSpec:
    """A NAS-Bench-101 cell: adjacency matrix plus vertex labels, pruned as the original.

    Args:
      matrix: ``V x V`` strictly upper-triangular matrix of 0/1 (array or nested lists).
        ``matrix[i][j] = 1`` is an edge (a tensor) from vertex ``i`` to vertex ``j``.
      ops: ``V`` labels; ``ops[0]`` should be ``'input'``, ``ops[-1]`` ``'output'`` and the rest
        operation names from :data:`nasbench_jax.constants.AVAILABLE_OPS`.
      data_format: kept for API compatibility (``'channels_last'``).

    Attributes:
      original_matrix, original_ops: the inputs, copied.
      matrix, ops: the pruned cell (``None`` when ``valid_spec`` is false).
      valid_spec: ``False`` iff there is no input->output path.

    Raises:
      SpecError: (a ``ValueError``) with the original's messages: ``'matrix must be square'``,
        ``'length of ops must match matrix dimensions'``, ``'matrix must be upper
        triangular'``; and ``'matrix entries must be 0 or 1'`` for other values.
    """

    __slots__ = ("original_matrix", "original_ops", "matrix", "ops", "valid_spec", "data_format", "_key")

    def __init__(self, matrix: Any, ops: Sequence[Any], data_format: str = "channels_last"):
        arr = _as_matrix(matrix)
        shape = arr.shape
        if len(shape) != 2 or shape[0] != shape[1]:
            raise SpecError("matrix must be square")
        if isinstance(ops, (str, bytes)) or not hasattr(ops, "__len__"):
            raise SpecError(f"ops must be a list of labels, got {type(ops).__name__}")
        if shape[0] != len(ops):
            raise SpecError("length of ops must match matrix dimensions")
        if not np.all((arr == 0) | (arr == 1)):
            raise SpecError("matrix entries must be 0 or 1")
        arr = arr.astype(np.int64)
        if not _is_upper_triangular(arr):
            raise SpecError("matrix must be upper triangular")

        self.original_matrix = _readonly(arr.copy())
        self.original_ops = list(ops)
        self.data_format = data_format
        pruned, keep = prune_matrix(arr)
        if pruned is None:
            self.matrix = None
            self.ops = None
            self.valid_spec = False
        else:
            self.matrix = _readonly(pruned.copy())
            self.ops = [self.original_ops[i] for i in keep]
            self.valid_spec = True
        self._key = (self.original_matrix.tobytes(), shape[0], tuple(map(_label_key, self.original_ops)))

    # -- original API -------------------------------------------------------------------
    def hash_spec(self, canonical_ops: Sequence[str] = C.AVAILABLE_OPS) -> str:
        """The original module hash of the pruned cell (32 lowercase hex digits).

        The first vertex is labelled -1, the last -2 and every interior vertex by the index of
        its op in ``canonical_ops`` (reference spec §3.2).

        Raises:
          OutOfDomainError: the spec is invalid (disconnected), so it has no pruned matrix.
          ValueError: an interior op is not in ``canonical_ops`` (``SpecError``).
        """
        if not self.valid_spec:
            raise OutOfDomainError("invalid spec, provided graph is disconnected.")
        labeling = [-1] + [_op_index(op, canonical_ops) for op in self.ops[1:-1]] + [-2]
        return reference.hash_module(self.matrix, labeling)

    def visualize(self):  # pragma: no cover - optional dependency, as in the original
        """Draw the pruned cell with graphviz (optional dependency)."""
        import graphviz  # noqa: PLC0415

        g = graphviz.Digraph()
        for i, op in enumerate(self.ops):
            g.node(str(i), str(op))
        for i, j in zip(*np.nonzero(self.matrix)):
            g.edge(str(i), str(j))
        return g

    # -- value semantics ----------------------------------------------------------------
    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ModelSpec):
            return NotImplemented
        return self._key == other._key

    def __hash__(self) -> int:
        return hash(self._key)

    def __repr__(self) -> str:
        rows = "/".join("".join(str(int(x)) for x in row) for row in self.original_matrix)
        return f"ModelSpec(matrix='{rows}', ops={self.original_ops!r})"

    def __getstate__(self):
        return {k: getattr(self, k) for k in self.__slots__}

    def __setstate__(self, state):
        for k, v in state.items():
            object.__setattr__(self, k, v)

    @property
    def num_vertices(self) -> int:
        """Vertex count of the pruned cell (0 for an invalid spec)."""
        return 0 if self.matrix is None else int(self.matrix.shape[0])

    @property
    def num_edges(self) -> int:
        """Edge count of the pruned cell (0 for an invalid spec)."""
        return 0 if self.matrix is None else int(self.matrix.sum())


def check_spec(spec: ModelSpec) -> None:
    """Raise :class:`OutOfDomainError` unless ``spec`` is in the NAS-Bench-101 space.

    The checks and messages of ``NASBench._check_spec`` in the original order, on the pruned
    spec (reference spec §1.4). See the module docstring for the too-many-vertices quirk.
    """
    if not isinstance(spec, ModelSpec):
        raise TypeError(f"expected a ModelSpec, got {type(spec).__name__}")
    if not spec.valid_spec:
        raise OutOfDomainError("invalid spec, provided graph is disconnected.")
    num_vertices = len(spec.ops)
    num_edges = int(np.sum(spec.matrix))
    if num_vertices > C.MAX_VERTICES:
        raise OutOfDomainError(
            "too many vertices, got %d (max vertices = %d)" % (num_vertices, C.MAX_VERTICES)
        )
    if num_edges > C.MAX_EDGES:
        raise OutOfDomainError("too many edges, got %d (max edges = %d)" % (num_edges, C.MAX_EDGES))
    if spec.ops[0] != C.INPUT:
        raise OutOfDomainError("first operation should be 'input'")
    if spec.ops[-1] != C.OUTPUT:
        raise OutOfDomainError("last operation should be 'output'")
    for op in spec.ops[1:-1]:
        if op not in C.AVAILABLE_OPS:
            raise OutOfDomainError(
                "unsupported op %s (available ops = %s)" % (op, list(C.AVAILABLE_OPS))
            )


def is_valid(spec: ModelSpec) -> bool:
    """``True`` iff ``spec`` is in the space (the original ``NASBench.is_valid``)."""
    try:
        check_spec(spec)
    except OutOfDomainError:
        return False
    return True


def _is_upper_triangular(arr: np.ndarray) -> bool:
    return not np.any(np.tril(arr))


def _readonly(arr: np.ndarray) -> np.ndarray:
    arr.setflags(write=False)
    return arr


def _label_key(label: Any) -> Any:
    try:
        hash(label)
        return label
    except TypeError:
        return repr(label)


def _op_index(op: Any, canonical_ops: Sequence[str]) -> int:
    try:
        return list(canonical_ops).index(op)
    except ValueError:
        raise SpecError(f"unsupported op {op!r} (available ops = {list(canonical_ops)})") from None
