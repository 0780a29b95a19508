"""Well-known NAS-Bench-101 cells (reference spec §5.7, §6.10, §8.1), as ``ModelSpec`` objects.

    >>> from nasbench_jax import cells
    >>> cells.inception_like().hash_spec()
    '28cfc7874f6d200472e1a9dcd8650aa0'
"""

from __future__ import annotations

from nasbench_jax.constants import CONV1X1, CONV3X3, INPUT, MAXPOOL3X3, OUTPUT
from nasbench_jax.spec import ModelSpec

__all__ = ["inception_like", "best_cell", "resnet_like"]


def inception_like() -> ModelSpec:
    """The README / notebook Inception-like cell, as the README spells it (2,694,282 params)."""
    return ModelSpec(
        [[0, 1, 1, 1, 0, 1, 0],
         [0, 0, 0, 0, 0, 0, 1],
         [0, 0, 0, 0, 0, 0, 1],
         [0, 0, 0, 0, 1, 0, 0],
         [0, 0, 0, 0, 0, 0, 1],
         [0, 0, 0, 0, 0, 0, 1],
         [0, 0, 0, 0, 0, 0, 0]],
        [INPUT, CONV1X1, CONV3X3, CONV3X3, CONV3X3, MAXPOOL3X3, OUTPUT],
    )


def best_cell() -> ModelSpec:
    """The paper's best cell by mean test accuracy (the original ``create_best_nasbench_spec``)."""
    return ModelSpec(
        [[0, 1, 1, 0, 0, 1, 1],
         [0, 0, 0, 0, 0, 1, 0],
         [0, 0, 0, 1, 0, 0, 0],
         [0, 0, 0, 0, 1, 0, 0],
         [0, 0, 0, 0, 0, 1, 0],
         [0, 0, 0, 0, 0, 0, 1],
         [0, 0, 0, 0, 0, 0, 0]],
        [INPUT, CONV1X1, CONV3X3, MAXPOOL3X3, CONV3X3, CONV3X3, OUTPUT],
    )


def resnet_like() -> ModelSpec:
    """Two conv3x3 with an input->output skip (``0101/0010/0001/0000``)."""
    return ModelSpec(
        [[0, 1, 0, 1], [0, 0, 1, 0], [0, 0, 0, 1], [0, 0, 0, 0]],
        [INPUT, CONV3X3, CONV3X3, OUTPUT],
    )
