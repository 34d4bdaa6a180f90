"""Searches for extremal tuples: max_chsh, find_tuple, tradeoff_curve.

Every value is checked against something the search does not use: a brute-force NumPy grid,
scipy's SLSQP working directly on (theta, phi, omega) with the constraints written out, NumPy
recomputations from the matrices of eq. (6), or a known answer (Tsirelson's bound).
"""

import math

import numpy as np
import pytest
import xarray as xr
from helpers import assert_labelled, correlators_from_matrices

import jaxbell as jb
from jaxbell import search

TSIRELSON = 2 * math.sqrt(2)


# --- independent NumPy references ------------------------------------------------------------


def _h(q):
    q = np.asarray(q, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        v = -(q * np.log2(q) + (1 - q) * np.log2(1 - q))
    return np.where((q <= 0) | (q >= 1), 0.0, v)


def _np_fields(t, p, w):
    """max_chsh, margin of (4), epsilon and global rate of eq. (6), written out in NumPy."""
    t, p, w = np.broadcast_arrays(*(np.asarray(a, float) for a in (t, p, w)))
    s = np.stack([p, w, t + p, t + w])
    e = np.sin(s)
    total = e.sum(0)
    mc = np.max(np.abs(total[None] - 2 * e), axis=0)
    margin = -np.prod(np.cos(s), axis=0)
    hq = _h((1 - np.abs(e)) / 2)
    return mc, margin, hq.min(0), 1 + hq.max(0)


def _check_result(r, *, eps_max=None, randomness=False):
    """The result's tuple, recomputed from the matrices of eq. (6), meets what it claims."""
    e = correlators_from_matrices(r.theta, r.phi, r.omega)
    total = e.sum()
    mc = max(abs(total - 2 * e.ravel()[k]) for k in range(4))
    assert mc == pytest.approx(r.max_chsh, abs=1e-12)
    margin = _np_fields(r.theta, r.phi, r.omega)[1]
    assert margin > 1e-14 and r.self_testing
    if eps_max is not None:
        assert r.epsilon <= eps_max
    if randomness:
        assert r.global_rate == 2.0
        assert np.min(np.abs(e)) < 1e-15


# --- max_chsh --------------------------------------------------------------------------------


def test_unconstrained_supremum_is_tsirelson():
    r = jb.max_chsh()
    assert r.max_chsh == pytest.approx(TSIRELSON, abs=1e-12)
    assert r.supremum_attained and r.converged and r.restarts_at_best >= 8
    _check_result(r)


def test_perfect_randomness_plane_matches_dense_grid():
    """omega = pi fixed (Fig. 1's plane): the search beats every grid point, by at most the
    grid's resolution."""
    r = jb.max_chsh(perfect_randomness=True, fixed={"omega": np.pi})
    t = np.linspace(0, 2 * np.pi, 721)[:, None]
    p = np.linspace(-np.pi, np.pi, 721)[None, :]
    mc, margin, _, glob = _np_fields(t, p, np.pi)
    grid = np.max(np.where((margin > 1e-12) & (glob == 2.0), mc, -np.inf))
    assert grid - 1e-12 <= r.max_chsh <= grid + 1e-3
    assert r.omega == np.pi  # fixed exactly
    _check_result(r, randomness=True)


@pytest.mark.parametrize("eps_max", [1e-4, 0.05])
def test_key_constraint_matches_slsqp_in_tuple_space(eps_max):
    """scipy's SLSQP on (theta, phi, omega) with epsilon <= eps_max written as
    sign * sin(s_k) >= 1 - 2 q (h(q) = eps_max) and condition (4) as a constraint."""
    optimize = pytest.importorskip("scipy.optimize")
    r = jb.max_chsh(max_epsilon=eps_max)
    q = search._minority_for_entropy(eps_max)
    rows = search._SUM_ROWS
    best = -np.inf
    rng = np.random.default_rng(3)
    for k in range(4):
        for sign in (1, -1):
            for wts in search._CHSH_WEIGHTS:
                for _ in range(3):
                    x0 = rng.uniform(0, 2 * np.pi, 3)
                    cons = [
                        {"type": "ineq", "fun": lambda v, k=k, s=sign: s * np.sin(rows[k] @ v)
                         - (1 - 2 * q)},
                        {"type": "ineq", "fun": lambda v: -np.prod(np.cos(rows @ v))},
                    ]  # fmt: skip
                    res = optimize.minimize(
                        lambda v, w=wts: -(w @ np.sin(rows @ v)), x0, method="SLSQP",
                        constraints=cons, options={"ftol": 1e-13, "maxiter": 500},
                    )  # fmt: skip
                    v = res.x
                    ok = all(c["fun"](v) >= -1e-10 for c in cons)
                    if ok:
                        best = max(best, -res.fun)
    assert r.max_chsh == pytest.approx(best, abs=1e-7)
    assert r.supremum_attained and r.converged
    _check_result(r, eps_max=eps_max)


def test_key_one_limit_is_approached_not_attained():
    r = jb.max_chsh(min_key_rate=1.0)
    # the supremum over the limit |E00| = 1 (Prop. 3's 5/2), against a NumPy grid of that plane
    t = np.linspace(0, 2 * np.pi, 1441)[:, None]
    w = np.linspace(0, 2 * np.pi, 1441)[None, :]
    grid = np.max(_np_fields(t, np.pi / 2, w)[0])
    assert grid - 1e-12 <= r.supremum <= grid + 1e-4
    assert not r.supremum_attained and r.converged
    assert r.key_rate == 1.0 and 0 < r.epsilon < 2.0**-54  # 1 - epsilon rounds to 1
    assert 0 <= r.max_chsh - r.supremum <= 1e-4
    assert "limit" in r.note
    _check_result(r)


def test_limit_plane_without_condition4_matches_grid():
    r = jb.max_chsh(fixed={"phi": np.pi / 2}, require_self_testing=False)
    t = np.linspace(0, 2 * np.pi, 1441)[:, None]
    w = np.linspace(0, 2 * np.pi, 1441)[None, :]
    grid = np.max(_np_fields(t, np.pi / 2, w)[0])
    assert grid - 1e-12 <= r.max_chsh <= grid + 1e-4
    assert not r.self_testing and r.phi == np.pi / 2
    assert r.epsilon < 1e-30  # |E00| = 1: the strategy's pair (0, 0) gives perfect key


def test_bad_input_is_rejected_with_the_name():
    cases = [
        (dict(min_key_rate=0.0), ValueError, "min_key_rate"),
        (dict(min_key_rate=1.5), ValueError, "min_key_rate"),
        (dict(min_key_rate=float("nan")), ValueError, "min_key_rate"),
        (dict(min_key_rate="0.9"), TypeError, "min_key_rate"),
        (dict(min_key_rate=0.9, max_epsilon=0.1), ValueError, "not both"),
        (dict(max_epsilon=1.0), ValueError, "max_epsilon"),
        (dict(fixed={"psi": 1.0}), ValueError, "psi"),
        (dict(fixed={"omega": float("nan")}), ValueError, "omega"),
        (dict(fixed=[("omega", 1.0)]), TypeError, "mapping"),
        (dict(perfect_randomness=1), TypeError, "perfect_randomness"),
        (dict(seed=-1), ValueError, "seed"),
        (dict(restarts=0), ValueError, "restarts"),
        (dict(fixed={"phi": np.pi / 2}), ValueError, r"condition \(4\) fails identically"),
        (dict(fixed={"theta": 1, "phi": 1, "omega": 2}, perfect_randomness=True), ValueError,
         "vanish"),
        (dict(fixed={"theta": 0.1, "phi": 0.2, "omega": 0.3}), ValueError, "no free angle"),
    ]  # fmt: skip
    for kwargs, exc, match in cases:
        with pytest.raises(exc, match=match):
            jb.max_chsh(**kwargs)


def test_second_call_does_not_recompile():
    jb.max_chsh(perfect_randomness=True, seed=1)
    before = search._solve_max._cache_size()
    jb.max_chsh(max_epsilon=0.3, seed=2)  # other constraints, same block shape
    jb.max_chsh(fixed={"omega": 1.0}, seed=3)
    assert search._solve_max._cache_size() == before


def test_result_dataset_is_labelled_and_round_trips(tmp_path):
    r = jb.max_chsh(max_epsilon=0.01)
    ds = r.to_dataset()
    assert_labelled(ds)
    assert "10.1103/PhysRevLett.132.210802" in ds.attrs["references"]
    assert ds.attrs["max_epsilon"] == 0.01 and ds.attrs["search"] == "max_chsh"
    assert float(ds.max_chsh) == r.max_chsh
    path = jb.save_dataset(ds, tmp_path / "r.nc")
    back = jb.open_dataset(path)
    xr.testing.assert_identical(back.load(), ds)


# --- find_tuple ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("chsh", "kwargs"),
    [
        (2.0001, dict(min_key_rate=0.9999)),  # the example (Prop. 3)
        (2.5, dict(perfect_randomness=True)),  # Prop. 2
        (2.4, dict(max_epsilon=1e-5, perfect_randomness=True)),  # Prop. 5
        (2.3, dict(min_key_rate=1.0)),  # the key -> 1 limit
        (2.7, dict(fixed={"omega": 2.0})),
    ],
)
def test_find_tuple_hits_the_target_and_the_constraints(chsh, kwargs):
    r = jb.find_tuple(chsh, **kwargs)
    assert r.converged
    assert abs(r.max_chsh - chsh) <= 1e-9
    eps = kwargs.get("max_epsilon")
    if "min_key_rate" in kwargs:
        eps = 1 - kwargs["min_key_rate"] if kwargs["min_key_rate"] < 1 else 2.0**-54
    _check_result(r, eps_max=eps, randomness=kwargs.get("perfect_randomness", False))
    for name, value in kwargs.get("fixed", {}).items():
        assert getattr(r, name) == value


def test_find_tuple_impossible_requests_raise():
    with pytest.raises(ValueError, match="exceeds the supremum"):
        jb.find_tuple(2.6, perfect_randomness=True)  # > 3 sqrt(3)/2
    with pytest.raises(ValueError, match="exceeds the supremum"):
        jb.find_tuple(2.52, min_key_rate=1.0)  # > 5/2, the key -> 1 limit
    for bad in (2.0, 1.5, 2.9, float("nan")):
        with pytest.raises(ValueError, match="chsh"):
            jb.find_tuple(bad)
    with pytest.raises(TypeError, match="chsh"):
        jb.find_tuple("2.5")
    with pytest.raises(ValueError, match="min_key_rate"):
        jb.find_tuple(2.5, min_key_rate=0.0)


def test_find_tuple_second_call_does_not_recompile():
    jb.find_tuple(2.3, seed=1)
    before = search._solve_find._cache_size(), search._solve_max._cache_size()
    jb.find_tuple(2.4, max_epsilon=0.1, perfect_randomness=True, seed=2)
    assert (search._solve_find._cache_size(), search._solve_max._cache_size()) == before


def test_key_one_limit_without_condition4():
    r = jb.max_chsh(min_key_rate=1.0, require_self_testing=False)
    assert r.max_chsh == pytest.approx(2.5, abs=1e-12)  # the phi = pi/2 plane's maximum
    assert r.converged and not r.self_testing and r.key_rate == 1.0


def test_find_tuple_at_an_attained_supremum_returns_the_maximiser():
    r = jb.find_tuple(3 * math.sqrt(3) / 2, perfect_randomness=True)
    assert r.converged and abs(r.max_chsh - 3 * math.sqrt(3) / 2) <= 1e-9
    _check_result(r, randomness=True)


# --- trade-off curve -------------------------------------------------------------------------


def test_tradeoff_curve_is_monotone_and_agrees_with_max_chsh():
    eps = np.array([1e-5, 1e-3, 0.1])
    ds = jb.tradeoff_curve(eps)
    assert_labelled(ds)
    for pr in (False, True):
        s = ds.max_chsh.sel(perfect_randomness=pr).values
        assert np.all(np.diff(s) >= -1e-12)
        assert bool(ds.converged.sel(perfect_randomness=pr).all())
        single = jb.max_chsh(max_epsilon=1e-3, perfect_randomness=pr)
        assert s[1] == pytest.approx(single.max_chsh, abs=1e-9)
        assert np.all(ds.epsilon.sel(perfect_randomness=pr).values <= eps)
    # recompute the tuples' values independently
    mc, margin, eps_np, glob = _np_fields(ds.theta.values, ds.phi.values, ds.omega.values)
    np.testing.assert_allclose(mc, ds.max_chsh.values, atol=1e-12)
    assert np.all(margin > 0) and np.all(eps_np <= eps * (1 + 1e-9))
    assert np.all(glob[1] == 2.0)
    for name in ("theta", "phi", "omega"):
        assert np.all((ds[name].values >= 0) & (ds[name].values < 2 * np.pi)), name


def test_tradeoff_curve_bad_input():
    for bad in ([0.1, 0.01], [0.0, 0.1], [0.5, 1.0], [np.nan]):
        with pytest.raises(ValueError, match="max_epsilon"):
            jb.tradeoff_curve(bad)


def test_epsilon_interval_half_width_inverts_the_entropy():
    for eps in (1e-12, 1e-6, 0.01, 0.5):
        a = search.epsilon_interval_half_width(eps)
        # at the interval's edge sin(pi/2 - a) = cos(a): h((1 - cos a)/2) = eps
        assert _h((1 - math.cos(a)) / 2) == pytest.approx(eps, rel=1e-9)


@pytest.mark.parametrize(
    ("fixed", "match"),
    [
        ({"theta": 0.0}, "theta = 0 \\(mod pi\\)"),
        ({"theta": math.pi}, "theta = 0 \\(mod pi\\)"),
        ({"theta": 0.0, "phi": 0.0}, "theta = 0 \\(mod pi\\)"),
        ({"phi": 0.3, "omega": 0.3 + math.pi}, "phi - omega"),
        ({"theta": -0.8, "phi": 0.3, "omega": 0.5}, "theta \\+ phi \\+ omega"),
    ],
)
def test_max_chsh_and_find_tuple_share_the_impossibility_check(fixed, match):
    # condition (4)'s product is a square (>= 0) there: no tuple can be self-testing
    with pytest.raises(ValueError, match=f"impossible constraints.*{match}"):
        jb.max_chsh(fixed=fixed)
    with pytest.raises(ValueError, match=f"impossible constraints.*{match}"):
        jb.find_tuple(2.2, fixed=fixed)


def test_huge_fixed_angles_are_reduced():
    r = jb.max_chsh(fixed={"omega": 1e10})
    assert r.converged and r.supremum_attained
    assert r.omega == search.wrap_angles(math.atan2(math.sin(1e10), math.cos(1e10)))
    assert r.max_chsh == pytest.approx(jb.max_chsh(fixed={"omega": r.omega}).max_chsh, abs=1e-12)


def test_not_converged_is_never_called_attained(monkeypatch):
    monkeypatch.setattr(search, "_GRAD_TOL", -1.0)  # no restart can meet the KKT test
    r = search.max_chsh(perfect_randomness=True, seed=3)
    assert not r.converged and not r.supremum_attained
    assert "NOT CONVERGED" in r.note and "attained at the tuple" not in r.note


def test_find_tuple_near_the_local_bound():
    r = jb.find_tuple(2 + 1e-6)
    assert r.converged and r.self_testing and abs(r.max_chsh - (2 + 1e-6)) <= 1e-9
    assert r.self_testing_margin > jb.family.boundary_tolerance(np.float64)
    with pytest.raises(ValueError, match="s - 2 = 1.0e-09 is below what float64 can certify"):
        jb.find_tuple(2 + 1e-9)


def test_result_angles_are_wrapped_and_the_values_are_theirs():
    """Angles come back in [0, 2 pi) (this search gave theta = 2 pi + pi/3), and every value
    reported is that of the reported tuple, recomputed here in NumPy (the functions are
    2 pi-periodic in each angle, so wrapping loses nothing)."""
    prop2 = jb.max_chsh(perfect_randomness=True, fixed={"omega": np.pi})
    assert prop2.max_chsh == pytest.approx(3 * math.sqrt(3) / 2, abs=1e-12)  # Prop. 2
    assert prop2.omega == np.pi  # fixed, and in [0, 2 pi): exactly the value given
    negative = jb.max_chsh(max_epsilon=1e-3, fixed={"omega": -2.0})
    assert negative.omega == pytest.approx(2 * np.pi - 2.0, abs=1e-15)
    found = jb.find_tuple(2.4, max_epsilon=1e-3, seed=4)
    for r in (prop2, negative, found):
        assert r.converged
        assert all(0 <= a < 2 * np.pi for a in r.angles), r.angles
        mc, margin, eps, glob = _np_fields(*r.angles)
        assert mc == pytest.approx(r.max_chsh, abs=1e-12)
        assert margin == pytest.approx(r.self_testing_margin, rel=1e-9, abs=1e-15)
        assert eps == pytest.approx(r.epsilon, rel=1e-9, abs=1e-15)
        assert glob == pytest.approx(r.global_rate, abs=1e-12)
    np.testing.assert_array_equal(
        search.wrap_angles([0.0, np.pi, -1e-300, -np.pi / 2, 7.0, np.nan]),
        [0.0, np.pi, 0.0, 1.5 * np.pi, 7.0 - 2 * np.pi, np.nan],
    )
