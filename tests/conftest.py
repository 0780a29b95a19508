"""Test setup: 8 forced host devices (set before JAX starts) and the shared real data."""

import json
import os
import pathlib

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402

SHARED = pathlib.Path(__file__).resolve().parents[1].parent / "shared"
SHARED_DATA = SHARED / "data"


def _load(name):
    path = SHARED_DATA / name
    if not path.exists():
        pytest.skip(f"shared data not found at {path}")
    with open(path) as f:
        return json.load(f)


@pytest.fixture(scope="session")
def sample_1k():
    """1,000 real NAS-Bench-101 records (hash, padded adjacency, int ops, params, ...)."""
    return _load("nb101_sample_1k.json")


@pytest.fixture(scope="session")
def full_records_52():
    """52 complete real records as the original API returns them."""
    return _load("nb101_full_records_52.json")
