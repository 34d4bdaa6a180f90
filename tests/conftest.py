"""Test configuration: float64 on (tests need it; the library never switches it on at import),
a --runslow option for tests marked slow, and shared helpers."""

import jax
import numpy as np
import pytest

jax.config.update("jax_enable_x64", True)


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", default=False, help="run slow tests")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--runslow"):
        return
    skip = pytest.mark.skip(reason="slow: run with --runslow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def rng():
    return np.random.default_rng(20240522)


def random_tuples(rng, n):
    """n random (theta, phi, omega) tuples in [0, 2 pi)^3, as three arrays."""
    return tuple(rng.uniform(0.0, 2 * np.pi, n) for _ in range(3))
