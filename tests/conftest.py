"""Test configuration: float64 on (tests need it; the library never switches it on at import),
a --runslow option for tests marked slow, GPU-marked tests skipped where there is no GPU, and
shared helpers."""

import os

import jax
import numpy as np
import pytest

jax.config.update("jax_enable_x64", True)


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", default=False, help="run slow tests")


def _has_gpu() -> bool:
    if os.environ.get("JAXBELL_GPU_TESTS_ON_CPU"):  # dry run of benchmarks/gpu_check.sh --cpu
        return True
    try:
        return len(jax.devices("gpu")) > 0
    except RuntimeError:
        return False


def pytest_collection_modifyitems(config, items):
    slow = not config.getoption("--runslow")
    gpu = any("gpu" in item.keywords for item in items) and not _has_gpu()
    skip_slow = pytest.mark.skip(reason="slow: run with --runslow")
    skip_gpu = pytest.mark.skip(reason="needs a GPU (run benchmarks/gpu_check.sh on one)")
    for item in items:
        if slow and "slow" in item.keywords:
            item.add_marker(skip_slow)
        if gpu and "gpu" in item.keywords:
            item.add_marker(skip_gpu)


@pytest.fixture
def rng():
    return np.random.default_rng(20240522)


def random_tuples(rng, n):
    """n random (theta, phi, omega) tuples in [0, 2 pi)^3, as three arrays."""
    return tuple(rng.uniform(0.0, 2 * np.pi, n) for _ in range(3))
