"""Atomic writes: complete or absent, temp files cleaned, permissions as a plain open()."""

import os
import stat

import pytest

from nasbench_jax._io import atomic_path, atomic_write


def test_atomic_write_replaces_and_keeps_umask_permissions(tmp_path):
    target = tmp_path / "a.bin"
    target.write_bytes(b"old")
    old_mask = os.umask(0o022)
    try:
        with atomic_write(target, "wb") as f:
            f.write(b"new")
            assert target.read_bytes() == b"old"  # not visible before the rename
    finally:
        os.umask(old_mask)
    assert target.read_bytes() == b"new"
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o644
    assert os.listdir(tmp_path) == ["a.bin"]


def test_atomic_write_failure_keeps_old_content_and_leaves_no_temp(tmp_path):
    target = tmp_path / "a.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_write(target, "w") as f:
            f.write("half")
            raise RuntimeError("boom")
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["a.txt"]


def test_atomic_path_gives_suffix_and_cleans_up(tmp_path):
    target = tmp_path / "plot.png"
    with pytest.raises(KeyError):
        with atomic_path(target, suffix=".png") as tmp:
            assert tmp.endswith(".png") and os.path.dirname(tmp) == str(tmp_path)
            raise KeyError("x")
    assert os.listdir(tmp_path) == []
    with pytest.raises(ValueError, match="modes"):
        with atomic_write(target, "a"):
            pass
