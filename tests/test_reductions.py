"""Reductions on the devices against the same reductions of the full fields, known answers,
independence of blocks / devices / process shares, histogram edge semantics, bad input."""

import json

import jax.numpy as jnp
import numpy as np
import pytest
from helpers import assert_labelled, run_python

import jaxbell as jb
from jaxbell.reductions import (
    DEFAULT_BINS,
    LAST_EDGE_ULPS,
    REDUCTIONS,
    _Accumulator,
    _histogram_slots,
    last_edge_top,
    merge_reductions,
    reduce_grid,
)

PI = np.pi
EPS = [1.0, 0.3, 1e-1, 1e-2, 1e-3, 1e-5]


def _axes(seed, n=(17, 15, 13)):
    rng = np.random.default_rng(seed)
    return [np.sort(rng.uniform(0, 2 * PI, k)) for k in n]


def _from_fields(ds, eps, edges):
    """The reductions computed with NumPy from the full fields of evaluate_grid."""
    st, mc, ep = ds.self_testing.values, ds.max_chsh.values, ds.epsilon.values
    axes = [ds[n].values for n in ("theta", "phi", "omega")]
    out = {"largest": [], "smallest": [], "n": [], "at_largest": [], "at_smallest": []}
    for e in eps:
        meet = st & (ep <= e)
        out["n"].append(int(meet.sum()))
        for which, fill, arg in (("largest", -np.inf, np.argmax), ("smallest", np.inf, np.argmin)):
            vals = np.where(meet, mc, fill)
            i = np.unravel_index(arg(vals), mc.shape)  # first in C order among ties
            found = meet.any()
            out[which].append(vals[i] if found else np.nan)
            out[f"at_{which}"].append(
                [a[k] if found else np.nan for a, k in zip(axes, i, strict=True)]
            )
    inside = mc[st]
    e = np.asarray(edges, mc.dtype)  # the edges as the devices use them
    top = last_edge_top(e)
    last = (inside > e[-1]) & (inside <= top)  # rounding above the last edge: last bin
    out["hist"] = np.histogram(np.where(last, edges[-1], inside), bins=edges)[0]
    out["below"] = int((inside < edges[0]).sum())
    out["above"] = int((inside > top).sum())
    status = ds.status.values
    out["status"] = [int((status == v).sum()) for v in (0, 1, 2)]
    return out


def _check_against_fields(red, ds, eps, edges):
    ref = _from_fields(ds, eps, edges)
    for which in ("largest", "smallest"):
        np.testing.assert_array_equal(red[f"{which}_max_chsh"].values, ref[which])
        at = np.stack([red[f"{a}_at_{which}"].values for a in ("theta", "phi", "omega")], -1)
        np.testing.assert_array_equal(at, np.array(ref[f"at_{which}"]))
    np.testing.assert_array_equal(red.points_meeting.values, ref["n"])
    np.testing.assert_array_equal(red.max_chsh_histogram.values, ref["hist"])
    assert int(red.max_chsh_below_bins) == ref["below"]
    assert int(red.max_chsh_above_bins) == ref["above"]
    np.testing.assert_array_equal(red.status_count.values, ref["status"])
    assert float(red.self_testing_fraction) == ref["status"][0] / ds.max_chsh.size


@pytest.mark.parametrize(
    ("seed", "chunk_size", "bins"),
    [
        (1, 40, np.linspace(2.0, 2 * np.sqrt(2), 41)),  # uniform edges: the fast slot path
        (2, 7, np.array([0.5, 2.0, 2.1, 2.15, 2.5, 2.6, 2.8])),  # irregular: searchsorted
        (3, 1 << 16, np.linspace(2.2, 2.6, 9)),  # values below and above the edges
    ],
)
def test_equal_to_the_same_reductions_of_the_full_fields(seed, chunk_size, bins):
    axes = _axes(seed)
    ds = jb.evaluate_grid(*axes)
    red = reduce_grid(*axes, epsilon_bounds=EPS, bins=bins, chunk_size=chunk_size)
    _check_against_fields(red, ds, EPS, bins)
    assert 0 < int(red.max_chsh_histogram.sum()) < ds.max_chsh.size


def test_float32_reductions_equal_float32_fields():
    axes = _axes(4, (9, 8, 7))
    ds = jb.evaluate_grid(*axes, dtype="float32")
    edges = np.linspace(2.0, 2 * np.sqrt(2), 21)
    red = reduce_grid(*axes, epsilon_bounds=[0.5, 0.05], bins=edges, dtype="float32")
    _check_against_fields(red, ds, np.float32([0.5, 0.05]), edges.astype(np.float32))
    np.testing.assert_array_equal(red.max_chsh_bin_lower.values, edges[:-1].astype(np.float32))


def test_known_answers():
    # condition (4) holds on exactly 1/3 of the torus of angles: for theta uniform the pairs
    # (theta + phi, phi) and (theta + omega, omega) have opposite cosine signs with
    # probability f = dist(theta, 2 pi Z) / pi each, independently, and E[2 f (1 - f)] = 1/3.
    n = 96
    axis = np.linspace(0, 2 * PI, n, endpoint=False) + PI / (3 * n)  # off the boundaries
    red = reduce_grid(axis, axis, axis, reductions="self_testing_fraction")
    assert abs(float(red.self_testing_fraction) - 1 / 3) < 2 / n
    assert set(red.data_vars) == {"grid_points", "status_count", "self_testing_fraction"}
    # Tsirelson's bound 2 sqrt 2 is the largest max_chsh, attained (among others) at
    # (pi/2, pi/4, 3 pi/4); the first such point in (theta, phi, omega) order is reported
    q = np.linspace(0, 2 * PI, 9)  # multiples of pi/4
    red = reduce_grid(q, q, q, epsilon_bounds=[1.0], reductions=["chsh_at_key_rate"])
    np.testing.assert_allclose(float(red.largest_max_chsh[0]), 2 * np.sqrt(2), rtol=1e-15)
    ds = jb.evaluate_grid(q, q, q)
    best = ds.max_chsh.where(ds.self_testing).values
    first = np.unravel_index(np.nanargmax(best), best.shape)
    assert [float(red[f"{a}_at_largest"][0]) for a in ("theta", "phi", "omega")] == [
        q[k] for k in first
    ]
    assert np.sum(np.abs(best - 2 * np.sqrt(2)) < 1e-14) > 1  # attained at several points


def test_no_point_meets_a_bound():
    axes = _axes(5, (4, 3, 3))
    red = reduce_grid(*axes, epsilon_bounds=[0.0, 1.0])
    assert int(red.points_meeting[0]) == 0
    for name in ("largest_max_chsh", "smallest_max_chsh", "theta_at_largest", "phi_at_smallest"):
        assert np.isnan(float(red[name][0])), name
    assert int(red.points_meeting[1]) > 0 and np.isfinite(float(red.largest_max_chsh[1]))


def test_histogram_slots_follow_numpy_semantics_at_the_edges():
    edges = np.linspace(2.0, 2 * np.sqrt(2), 31)
    ulp = np.spacing(edges)
    values = np.concatenate(
        [edges, edges - ulp, edges + ulp, [1.0, 3.0, 2.0 - 1e-300, np.nextafter(edges[-1], 9)]]
    )
    r = np.searchsorted(edges, values, side="right")  # numpy.histogram's reference semantics
    expected = np.where(values == edges[-1], edges.size - 1, r)
    rounding = (values > edges[-1]) & (values <= last_edge_top(edges))
    assert rounding.sum() == 2  # a few ulps above the last edge: rounding, in the last bin
    expected[rounding] = edges.size - 1
    for uniform in (True, False):
        slots = np.asarray(_histogram_slots(jnp.asarray(values), jnp.asarray(edges), uniform))
        np.testing.assert_array_equal(slots, expected, err_msg=f"uniform={uniform}")
    counts = np.bincount(expected, minlength=edges.size + 1)[1:-1]
    clipped = np.where(expected == edges.size - 1, edges[-1], values)
    np.testing.assert_array_equal(counts, np.histogram(clipped, bins=edges)[0])


def test_tsirelson_points_are_not_above_the_bins():
    # max_chsh of points at Tsirelson's bound comes out up to 3 ulps above 2 sqrt 2 by rounding
    a = np.linspace(0, 2 * np.pi, 41)
    ds = jb.evaluate_grid(a, a, a)
    assert float(ds.max_chsh.max()) > 2 * np.sqrt(2)  # the rounding this test is about
    red = reduce_grid(a, a, a, reductions=["max_chsh_histogram"])
    assert int(red.max_chsh_above_bins) == 0
    assert int(red.max_chsh_histogram.sum()) == int(ds.self_testing.sum())
    top = np.nextafter(2 * np.sqrt(2), 9)
    beyond = 2 * np.sqrt(2) * (1 + 2 * LAST_EDGE_ULPS * np.finfo(float).eps)
    for uniform in (True, False):
        slots = _histogram_slots(jnp.asarray([top, beyond]), jnp.asarray(DEFAULT_BINS), uniform)
        np.testing.assert_array_equal(slots, [100, 101])


def test_ties_go_to_the_first_grid_point():
    acc = _Accumulator(1, 1)

    def part(v, idx):
        return {
            "counts": np.zeros(3),
            "n_meet": np.ones(1),
            "hist": np.zeros(3),
            "hi_val": np.array([v]),
            "hi_idx": np.array([idx]),
            "lo_val": np.array([v]),
            "lo_idx": np.array([idx]),
        }

    for v, idx in [(2.5, (3, 0, 0)), (2.5, (1, 5, 5)), (2.4, (0, 0, 0)), (2.5, (1, 5, 6))]:
        acc.merge(part(v, idx))
    out = acc.arrays()
    assert out["hi_val"][0] == 2.5 and tuple(out["hi_idx"][0]) == (1, 5, 5)
    assert out["lo_val"][0] == 2.4 and tuple(out["lo_idx"][0]) == (0, 0, 0)
    assert out["n_meet"][0] == 4


def test_process_shares_merge_to_the_whole_grid():
    axes = _axes(6, (11, 9, 8))
    whole = reduce_grid(*axes, epsilon_bounds=EPS, chunk_size=30)
    shares = [
        reduce_grid(*axes, epsilon_bounds=EPS, chunk_size=30, process=(i, 3)) for i in range(3)
    ]
    assert all(int(s.status_count.sum()) < int(whole.grid_points) for s in shares)
    merged = merge_reductions(shares)
    for name in whole.data_vars:
        np.testing.assert_array_equal(merged[name].values, whole[name].values, err_msg=name)
    with pytest.raises(ValueError, match="epsilon_bound"):
        merge_reductions([shares[0], reduce_grid(*axes, epsilon_bounds=[0.5], process=(1, 3))])


def test_labels_and_netcdf_round_trip(tmp_path):
    red = reduce_grid(*_axes(7, (4, 4, 4)))
    assert_labelled(red)
    assert (
        red.epsilon_bound.attrs["units"] == "bit" and red.theta_at_largest.attrs["units"] == "rad"
    )
    assert red.status_flag.attrs["flag_meanings"].startswith("self_testing")
    for key in ("title", "history", "references", "dtype", "chunk_size", "devices", "reductions"):
        assert key in red.attrs
    path = jb.save_dataset(red, tmp_path / "red.nc")
    with jb.open_dataset(path) as back:
        import xarray as xr

        xr.testing.assert_identical(back.load(), red)


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"reductions": "maximum"}, ValueError, "reductions must be chosen"),
        ({"reductions": []}, ValueError, "reductions must be chosen"),
        ({"epsilon_bounds": [0.1, np.nan]}, ValueError, r"epsilon_bounds must lie in \[0, 1\]"),
        ({"epsilon_bounds": [-0.1]}, ValueError, "epsilon_bounds"),
        ({"epsilon_bounds": []}, ValueError, "non-empty"),
        ({"epsilon_bounds": "0.1"}, TypeError, "epsilon_bounds"),
        ({"bins": 0}, ValueError, "bins"),
        ({"bins": [2.0, 2.0, 2.5]}, ValueError, "strictly increasing"),
        ({"bins": [2.0]}, ValueError, "at least two"),
        ({"bins": [2.0, 2.0 + 1e-12], "dtype": "float32"}, ValueError, "rounded to float32"),
        ({"theta": [np.nan]}, ValueError, "theta"),
        ({"process": (0, 0)}, ValueError, "process"),
        ({"devices": 5}, ValueError, "devices=5"),
    ],
)
def test_bad_input_gives_clear_errors(kwargs, exc, match):
    args = {"theta": [0.1, 0.2], "phi": [0.3], "omega": [0.4]} | kwargs
    with pytest.raises(exc, match=match):
        reduce_grid(**args)


def test_all_reductions_are_listed():
    assert set(REDUCTIONS) == {"chsh_at_key_rate", "max_chsh_histogram", "self_testing_fraction"}


_FOUR = """
import json, jax, numpy as np
jax.config.update("jax_enable_x64", True)
from jaxbell.reductions import reduce_grid
rng = np.random.default_rng(8)
axes = [np.sort(rng.uniform(0, 2 * np.pi, n)) for n in (23, 11, 9)]
out = {}
for nd in (1, 3, 4):
    r = reduce_grid(*axes, epsilon_bounds=[0.5, 1e-2], chunk_size=33, devices=nd)
    out[nd] = {k: np.asarray(r[k].values).tolist() for k in r.data_vars}
print(json.dumps(out))
"""


def test_identical_on_1_3_and_4_forced_devices():
    out = json.loads(run_python(_FOUR, host_devices=4).stdout.strip().splitlines()[-1])
    for nd in ("3", "4"):
        assert out[nd] == out["1"]
    rng = np.random.default_rng(8)
    axes = [np.sort(rng.uniform(0, 2 * PI, n)) for n in (23, 11, 9)]
    here = reduce_grid(*axes, epsilon_bounds=[0.5, 1e-2], chunk_size=33)
    assert {k: np.asarray(here[k].values).tolist() for k in here.data_vars} == out["1"]


def test_second_call_with_same_shapes_does_not_recompile():
    from jaxbell import reductions
    from jaxbell.grid import GridPlan
    from jaxbell.sharding import select_devices

    axes = _axes(9, (6, 5, 4))
    reduce_grid(*axes, chunk_size=30)
    plan = GridPlan(axes, np.dtype("float64"), 30, select_devices())
    step = reductions._reducer(plan.mesh, plan.block[0], plan.ndev, "uniform")
    before = step._cache_size()
    assert before >= 1
    reduce_grid(*[a + 0.01 for a in axes], chunk_size=30, epsilon_bounds=EPS[:6])
    assert step._cache_size() == before


def test_a_subset_of_reductions_equals_the_same_part_of_all():
    axes = _axes(10, (9, 8, 7))
    every = reduce_grid(*axes, epsilon_bounds=[0.2], bins=10)
    for names in (["self_testing_fraction"], ["max_chsh_histogram"], ["chsh_at_key_rate"]):
        part = reduce_grid(*axes, epsilon_bounds=[0.2], bins=10, reductions=names)
        assert set(part.data_vars) < set(every.data_vars)
        for name in part.data_vars:
            np.testing.assert_array_equal(part[name].values, every[name].values, err_msg=name)


def test_grouped_reduce_equals_one_variadic_reduce(rng):
    # accelerators reduce in groups of ACCELERATOR_GROUP operands (GPU shared-memory limit);
    # the grouping must not change any partial result
    import jax.numpy as jnp

    from jaxbell.grid import _block_fields
    from jaxbell.reductions import ACCELERATOR_GROUP, _block_partials

    t, p, w = (np.sort(rng.uniform(0, 2 * np.pi, n)) for n in (6, 7, 9))
    fields = _block_fields(jnp.asarray(t), jnp.asarray(p), jnp.asarray(w))
    limits = jnp.asarray([5, 7, 8])  # exclude some padding rows/columns too
    eps = jnp.asarray([0.5, 0.1, 1e-3])
    edges = jnp.linspace(2.0, 2.0 * np.sqrt(2.0), 11)
    one = _block_partials(fields, limits, eps, edges, "uniform")
    grouped = _block_partials(fields, limits, eps, edges, "uniform", group=ACCELERATOR_GROUP)
    for name in one:
        np.testing.assert_array_equal(np.asarray(grouped[name]), np.asarray(one[name]), name)
    assert int(one["n_meet"][0]) > 0
