"""Constants of the NAS-Bench-101 search space (reference spec §1.1) and of our encoding.

Array encoding of a cell, used by every batched kernel (``nasbench_jax.graph``,
``nasbench_jax.space``, the store and the batched queries):

* ``adjacency``: ``uint8[..., 7, 7]``, strictly upper-triangular 0/1; a cell with ``V < 7``
  vertices occupies the top-left ``V x V`` block (its output vertex is row/column ``V-1``)
  and the rest is zero.
* ``operations``: ``int8[..., 7]``: ``-1`` input, ``0`` conv3x3-bn-relu, ``1`` conv1x1-bn-relu,
  ``2`` maxpool3x3, ``-2`` output, ``-3`` padding (positions ``>= V``). The same coding as the
  shared real-data samples.
* ``num_vertices``: ``int32[...]``, ``V`` in ``2..7`` (``0`` marks an invalid cell where a
  kernel returns one).
"""

MAX_VERTICES = 7
MAX_EDGES = 9

INPUT = "input"
OUTPUT = "output"
CONV3X3 = "conv3x3-bn-relu"
CONV1X1 = "conv1x1-bn-relu"
MAXPOOL3X3 = "maxpool3x3"

#: The operations in canonical order (index = integer label used by the hash).
AVAILABLE_OPS = (CONV3X3, CONV1X1, MAXPOOL3X3)
NUM_OPS = len(AVAILABLE_OPS)

INPUT_LABEL = -1
OUTPUT_LABEL = -2
PAD_LABEL = -3

#: Training budgets of the dataset in epochs (reference spec §6.1, §8.1).
BUDGETS = (4, 12, 36, 108)
NUM_REPEATS = 3

#: Number of strictly upper-triangular entries of a 7x7 matrix.
NUM_EDGE_SLOTS = MAX_VERTICES * (MAX_VERTICES - 1) // 2
