"""Atomic file writes: every file nasbench-jax writes appears complete or not at all.

    >>> import os, tempfile
    >>> d = tempfile.mkdtemp()
    >>> with atomic_write(os.path.join(d, "x.txt"), "w") as f:
    ...     _ = f.write("hello")
    >>> open(os.path.join(d, "x.txt")).read()
    'hello'

The data goes to a temporary file in the destination's directory (same file system), is
flushed to disk, given the permissions a plain ``open()`` would have given (``mkstemp``
creates files readable by the owner only), and renamed over the destination with
``os.replace``. If anything fails or the process is interrupted, the destination keeps its
old content (or stays absent) and the temporary file is removed.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from typing import IO, Iterator


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path, suffix: str = ".tmp") -> Iterator[str]:
    """Yield a temporary path next to ``path``; on success rename it over ``path``.

    For writers that want a file name (``savefig``, ``np.savez``). ``suffix`` lets writers
    that infer the format from the extension see the right one.

    Raises:
      OSError: the directory is missing or not writable (raised before anything is written).
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=suffix, dir=directory)
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_write(path, mode: str = "wb") -> Iterator[IO]:
    """Open a temporary file next to ``path`` for writing; on success fsync and rename it.

    Args:
      path: the destination.
      mode: ``"wb"`` or ``"w"``.

    Raises:
      OSError: the directory is missing or not writable.
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_write supports modes 'wb' and 'w', got {mode!r}")
    with atomic_path(path) as tmp:
        with open(tmp, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
