"""Graph kernels over fixed-size padded cell arrays (see ``nasbench_jax.constants``).

``reference`` holds the plain-Python oracles; the jit-compiled kernels live in ``md5``,
``fingerprint``, ``canonical`` and ``prune``.

Checked vs traced: every kernel below validates a concrete batch on the host
(:func:`check_cells`: ``CellArrayError``/``CellArrayTypeError`` naming the problem) and then
runs jit-compiled; called with tracers (inside your own ``jax.jit``/``vmap``/``lax.while_loop``)
it is pure ``jax.numpy`` with static shapes and no checks. The ``*_traced`` functions are the
pure versions, usable directly.

* ``fingerprint(adj, ops, nv) -> uint8[N,16]``: the original module hash of pruned cells;
  ``digest_to_hex`` / ``hex_to_digest`` / ``fingerprint_hex(cells)`` convert.
* ``canonical_code(adj, ops, nv) -> uint32[N]``: exact isomorphism-canonical code of pruned
  cells (``== reference.canonical_code``); ``decode_codes`` inverts it.
* ``prune(adj, ops, nv) -> (Cells, valid)``, ``in_space(...) -> bool[N]``,
  ``canonicalize(...) -> (codes, valid)``: on raw (unpruned) cells.
"""

from nasbench_jax.graph import reference  # noqa: F401
from nasbench_jax.graph.canonical import (  # noqa: F401
    canonical_code,
    canonical_code_traced,
    decode_codes,
    labelled_code_traced,
)
from nasbench_jax.graph.checks import check_cells, is_traced  # noqa: F401
from nasbench_jax.graph.fingerprint import (  # noqa: F401
    digest_to_hex,
    fingerprint,
    fingerprint_hex,
    fingerprint_traced,
    hex_to_digest,
)
from nasbench_jax.graph.prune import (  # noqa: F401
    canonicalize,
    canonicalize_traced,
    in_space,
    in_space_traced,
    prune,
    prune_traced,
)

__all__ = [
    "reference",
    "fingerprint",
    "fingerprint_hex",
    "fingerprint_traced",
    "digest_to_hex",
    "hex_to_digest",
    "canonical_code",
    "canonical_code_traced",
    "labelled_code_traced",
    "decode_codes",
    "prune",
    "prune_traced",
    "in_space",
    "in_space_traced",
    "canonicalize",
    "canonicalize_traced",
    "check_cells",
    "is_traced",
]
