"""On a GPU: the grid, its reductions, the batched searches, the qubit solver and the batched
certified solver, against the CPU, known answers and each other (all devices against one).

Marked ``gpu``: skipped where JAX has no GPU; run by ``benchmarks/gpu_check.sh``. Needs only
jax, numpy, xarray (no zarr, dask, h5netcdf); the certified solver's tests also numba (the CPU
loop they compare with). ``JAXBELL_GPU_TESTS_ON_CPU=1`` runs them on the
CPU backend (a dry run of the script: the "device" is then the CPU itself).
"""

import jax
import numpy as np
import pytest
from helpers import pironio_entropy

import jaxbell as jb
from jaxbell import qubit
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
    floor = 1e-8 if dtype == "float64" else 1e-2
    sane = cpu["local_bound"] > floor
    for name in FIELDS:
        a, b = gpu[name], cpu[name]
        if name == "violation_ratio":  # eta^Q's absolute error divided by eta^L > floor
            np.testing.assert_allclose(
                a[sane], b[sane], rtol=rtol * 10, atol=atol / floor, err_msg=name
            )
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


# --- the batched searches and the qubit solver on the GPU -----------------------------------


def _np_check(theta, phi, omega):
    """max_chsh, margin of (4) and the smallest |E| of eq. (6), recomputed with NumPy."""
    e = np.sin([phi, omega, theta + phi, theta + omega])
    margin = -np.prod(np.cos([phi, omega, theta + phi, theta + omega]))
    return np.max(np.abs(e.sum() - 2 * e)), margin, np.min(np.abs(e))


def test_search_on_the_gpu_reaches_prop2_and_agrees_with_the_cpu():
    # Prop. 2: with perfect randomness the supremum is 3 sqrt(3)/2, attained
    gpu = jb.max_chsh(perfect_randomness=True)
    cpu = jb.max_chsh(perfect_randomness=True, devices=_cpu())
    assert gpu.devices == tuple(str(d) for d in jax.local_devices())
    assert gpu.converged and gpu.supremum_attained
    assert abs(gpu.max_chsh - 3 * np.sqrt(3) / 2) < 1e-9
    assert abs(gpu.max_chsh - cpu.max_chsh) < 1e-12
    mc, margin, smallest = _np_check(*gpu.angles)
    assert abs(mc - gpu.max_chsh) < 1e-12 and margin > 0 and smallest < 1e-15
    # a prescribed value (the proposition made constructive), re-checked with NumPy
    found = jb.find_tuple(2.4, perfect_randomness=True)
    mc, margin, smallest = _np_check(*found.angles)
    assert found.converged and abs(mc - 2.4) <= 1e-9 and margin > 0 and smallest < 1e-15


def test_rate_curve_on_the_gpu_reproduces_pironio_and_the_cpu():
    chsh = (PI / 2, PI / 4, 3 * PI / 4)  # the CHSH member: S = 2 sqrt(2) |<B>|
    qubit.clear_cache()
    curve = jb.rate_curve(*chsh, num=9)  # on every device of the default backend
    eta = curve.bell_value.values
    ref = pironio_entropy(2 * np.sqrt(2) * np.abs(eta))  # Pironio et al. 2009, tight
    got = curve.entropy.values
    assert np.all(curve.curve_status.values == 0)
    assert np.max(np.abs(got - ref)) < 1e-4 and np.min(got - ref) > -1e-9
    qubit.clear_cache()
    cpu = qubit.qubit_envelope(*chsh, devices=_cpu())
    tol = max(float(curve.gap.max()), float(np.max(cpu.gap(eta)))) + 1e-7
    np.testing.assert_allclose(got, cpu.entropy(eta), atol=tol)
    qubit.clear_cache()


@pytest.mark.skipif(jax.local_device_count() < 2, reason="one device: nothing to shard")
def test_all_devices_give_the_same_search_and_envelope_as_one():
    # fixed blocks per device (sharding.map_blocks): the same bits on 1 and N devices
    kwargs = dict(perfect_randomness=True, fixed={"omega": PI}, restarts=40, steps=100)
    one, every = (jb.max_chsh(devices=d, **kwargs) for d in (1, None))
    assert len(every.devices) == jax.local_device_count()
    for name in ("theta", "phi", "omega", "max_chsh", "supremum", "restarts_at_best"):
        assert getattr(one, name) == getattr(every, name), name
    tpl = (PI / 3, PI / 2 - 0.1, 5 * PI / 6)
    envs = []
    for d in (1, None):
        qubit.clear_cache()
        envs.append(qubit.qubit_envelope(*tpl, options={"starts": 64}, devices=d))
    qubit.clear_cache()
    np.testing.assert_array_equal(envs[0].vertex_entropy, envs[1].vertex_entropy)
    np.testing.assert_array_equal(envs[0].vertex_params, envs[1].vertex_params)


# --- the batched certified solver (issue 20): the XLA program on the device ---------------------


def _chsh_node_problems(monkeypatch, n=6, m=4):
    """(structure, c, c0, A, b) of n CHSH-member points x (m - 1) nodes, as bff_entropy builds
    them, and the certified values it returned on the default devices."""
    from jaxbell.rates import bff, ipm

    captured = {}
    real = ipm.solve

    def spy(st, c, c0, a, b, **kw):
        captured["args"] = (st, c, c0, a, b)
        return real(st, c, c0, a, b, **kw)

    s = np.linspace(2.1, 2.8, n)
    monkeypatch.setattr(ipm, "solve", spy)
    res = bff.bff_entropy(PI / 2, PI / 4, 3 * PI / 4, -s / (2 * np.sqrt(2)), m=m, progress=False)
    monkeypatch.undo()
    return captured["args"], res, s


def test_certified_solver_on_the_gpu_agrees_with_the_cpu_loop(monkeypatch):
    """bff_entropy's node SDPs solved by the XLA program on the device against the compiled CPU
    loop: every node certified by both, values within 1e-6 (two implementations of one method),
    and every point's certified entropy below Pironio et al.'s tight curve."""
    from jaxbell.rates import ipm

    (st, c, c0, a, b), res, s = _chsh_node_problems(monkeypatch)
    assert np.all(res.status == 0)
    assert np.all(res.value <= pironio_entropy(s) + 1e-9)
    dev = ipm.solve(st, c, c0, a, b)
    cpu = ipm.solve(st, c, c0, a, b, devices=_cpu())
    assert np.all(dev["solver_status"] <= 1) and np.all(cpu["solver_status"] <= 1)
    np.testing.assert_allclose(dev["value"], cpu["value"], rtol=0, atol=1e-6)


def test_certified_solver_bits_do_not_depend_on_batch_or_device_count(monkeypatch):
    """A node SDP gets the same bits alone and inside a batch, and on one device and on all."""
    from jaxbell.rates import ipm

    (st, c, c0, a, b), _, _ = _chsh_node_problems(monkeypatch)
    one = ipm.solve(st, c, c0, a, b, devices=jax.local_devices()[:1])
    every = ipm.solve(st, c, c0, a, b)
    np.testing.assert_array_equal(one["value"], every["value"])
    alone = ipm.solve(st, c[3:4], c0[3:4], a[3:4], b[3:4])
    assert abs(float(alone["value"][0]) - float(every["value"][3])) <= 1e-12
