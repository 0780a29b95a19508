"""Exceptions raised by nasbench-jax.

Every error the library raises on bad input is a subclass of :class:`NASBenchError`
and, where it makes sense, of the builtin ``ValueError`` or ``TypeError`` so that
generic handlers keep working.

:class:`OutOfDomainError` mirrors ``nasbench.api.OutOfDomainError`` of the original
NAS-Bench-101 code (a spec outside the search space). In the original it derives from
``Exception`` only; ours also derives from ``ValueError``, which is compatible with every
``except OutOfDomainError`` / ``except Exception`` in existing scripts.
"""


class NASBenchError(Exception):
    """Base class of all nasbench-jax errors."""


class OutOfDomainError(NASBenchError, ValueError):
    """A cell or query lies outside the NAS-Bench-101 domain (original API semantics)."""


class SpecError(NASBenchError, ValueError):
    """A ``ModelSpec`` could not be built: the matrix or ops are malformed."""


class CellArrayError(NASBenchError, ValueError):
    """A batch of encoded cells has the wrong shape or values."""


class CellArrayTypeError(NASBenchError, TypeError):
    """A batch of encoded cells has the wrong dtype or is not an array."""


class ConfigError(NASBenchError, ValueError):
    """A configuration cannot be built or run (e.g. zero channels, bad batch size)."""
