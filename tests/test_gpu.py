"""On a GPU: the grid, its reductions and its sharding against the CPU and against each other.

Marked ``gpu``: skipped where JAX has no GPU; run by ``benchmarks/gpu_check.sh``. Needs only
jax, numpy, xarray (no zarr, dask, h5netcdf). ``JAXBELL_GPU_TESTS_ON_CPU=1`` runs them on the
CPU backend (a dry run of the script: the "device" is then the CPU itself).
"""

import jax
import numpy as np
import pytest

import jaxbell as jb
from jaxbell.grid import FIELDS, default_chunk_size, grid_fields
from jaxbell.reductions import reduce_grid

pytestmark = pytest.mark.gpu
PI = np.pi


def _cpu():
    return jax.devices("cpu")[:1]


def _axes(seed, n=(61, 47, 39)):
    rng = np.random.default_rng(seed)
    return [np.sort(rng.uniform(0, 2 * PI, k)) for k in n]


def _margin(axes):
    """-cos(t+p) cos(p) cos(t+w) cos(w) with NumPy: condition (4) holds where it is > 0."""
    t, p, w = np.meshgrid(*axes, indexing="ij")
    return -np.cos(t + p) * np.cos(p) * np.cos(t + w) * np.cos(w)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_fields_on_the_gpu_match_the_cpu(dtype):
    axes = _axes(1)
    gpu = grid_fields(*axes, dtype=dtype)
    cpu = grid_fields(*axes, dtype=dtype, devices=_cpu())
    rtol, atol = (1e-12, 1e-13) if dtype == "float64" else (2e-5, 2e-6)
    far = np.abs(_margin(axes)) > (1e-10 if dtype == "float64" else 1e-4)  # off the boundary
    # |eta^Q| / eta^L is ill-conditioned where eta^L -> 0: compare it where eta^L is not tiny
    sane = cpu["local_bound"] > (1e-8 if dtype == "float64" else 1e-2)
    for name in FIELDS:
        a, b = gpu[name], cpu[name]
        if name == "violation_ratio":
            np.testing.assert_allclose(a[sane], b[sane], rtol=rtol * 10, err_msg=name)
        elif a.dtype.kind == "f":
            np.testing.assert_allclose(a, b, rtol=rtol, atol=atol, err_msg=name)
        else:
            np.testing.assert_array_equal(a[far], b[far], err_msg=name)
    assert 0.2 < gpu["self_testing"].mean() < 0.5


def test_epsilon_keeps_relative_precision_near_pi_over_2():
    # Prop. 3's construction: epsilon -> 0 as phi -> pi/2; relative precision must survive
    deltas = np.geomspace(1e-2, 1e-7, 11)
    phi = np.sort(PI / 2 - deltas)
    gpu = grid_fields([PI / 3], phi, [5 * PI / 6])["epsilon"].ravel()
    ref = np.asarray(jb.epsilon_at_quantum_bound(PI / 3, phi, 5 * PI / 6))
    assert ref.min() < 1e-11
    np.testing.assert_allclose(gpu, ref, rtol=1e-10)


def test_reductions_on_the_gpu_equal_those_of_its_fields():
    axes = _axes(2)
    eps = [0.5, 1e-1, 1e-2, 1e-3]
    edges = np.linspace(2.0, 2 * np.sqrt(2), 51)
    red = reduce_grid(*axes, epsilon_bounds=eps, bins=edges)
    ds = jb.evaluate_grid(*axes)
    st, mc, ep = ds.self_testing.values, ds.max_chsh.values, ds.epsilon.values
    for k, e in enumerate(eps):
        meet = st & (ep <= e)
        assert int(red.points_meeting[k]) == int(meet.sum())
        np.testing.assert_allclose(float(red.largest_max_chsh[k]), mc[meet].max(), rtol=1e-14)
        np.testing.assert_allclose(float(red.smallest_max_chsh[k]), mc[meet].min(), rtol=1e-14)
    hist = np.histogram(mc[st], bins=edges)[0]
    assert np.abs(red.max_chsh_histogram.values - hist).sum() <= 2  # at most an edge ulp apart
    assert int(red.status_count[0]) == int(st.sum())


def test_default_block_and_devices_recorded():
    ds = jb.evaluate_grid(np.linspace(0, PI, 5), [0.3], [0.4])
    platform = jax.devices()[0].platform
    assert ds.attrs["chunk_size"] == default_chunk_size(platform)
    assert ds.attrs["device_count"] == jax.local_device_count()


@pytest.mark.skipif(jax.local_device_count() < 2, reason="one device: nothing to shard")
def test_all_devices_give_the_same_fields_as_one():
    axes = _axes(3, (97, 33, 31))
    one = grid_fields(*axes, devices=1, chunk_size=4096)
    every = grid_fields(*axes, chunk_size=4096)
    for name in FIELDS:
        np.testing.assert_array_equal(one[name], every[name], err_msg=name)
    r1 = reduce_grid(*axes, devices=1, chunk_size=4096)
    rn = reduce_grid(*axes, chunk_size=4096)
    for name in r1.data_vars:
        np.testing.assert_array_equal(r1[name].values, rn[name].values, err_msg=name)
