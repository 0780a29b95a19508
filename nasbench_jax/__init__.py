"""nasbench-jax: a JAX-native NAS-Bench-101.

Quick start::

    >>> import nasbench_jax as nb
    >>> spec = nb.ModelSpec([[0, 1], [0, 0]], ["input", "output"])
    >>> spec.hash_spec()
    '043721b9c7fe8c5fad811d47d83132ec'
"""

from nasbench_jax.constants import AVAILABLE_OPS, BUDGETS, MAX_EDGES, MAX_VERTICES
from nasbench_jax.errors import NASBenchError, OutOfDomainError, SpecError
from nasbench_jax.spec import ModelSpec, check_spec, is_valid

__version__ = "0.1.0"

__all__ = [
    "AVAILABLE_OPS",
    "BUDGETS",
    "MAX_EDGES",
    "MAX_VERTICES",
    "ModelSpec",
    "NASBench",
    "NASBenchError",
    "OutOfDomainError",
    "SpecError",
    "check_spec",
    "is_valid",
]


def __getattr__(name):
    # ``NASBench`` pulls in JAX (via api.py); import it only when asked for.
    if name == "NASBench":
        from nasbench_jax.api import NASBench

        return NASBench
    raise AttributeError(f"module 'nasbench_jax' has no attribute {name!r}")
