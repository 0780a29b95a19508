"""Graph kernels over fixed-size padded cell arrays (see ``nasbench_jax.constants``).

``reference`` holds the plain-Python oracles; the jit-compiled kernels live in ``md5``,
``fingerprint``, ``canonical`` and ``prune``.
"""

from nasbench_jax.graph import reference  # noqa: F401
