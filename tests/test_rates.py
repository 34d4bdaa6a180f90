"""The public front door for rates below the quantum bound: di_entropy, rate_curve, noisy
rates, critical visibilities, the backend registry and the command line.

Independent references: Pironio et al. (2009) for the CHSH member (entropy, noisy key rate and
its root), the closed forms at the quantum bound (jaxbell.entropy, computed from eq. (6) without
any optimisation), the local bound by enumeration, and an explicit purification of the stored
optimal strategies (helpers.purified_entropies) and of the noisy strategy of eq. (6)
(helpers.noisy_strategy_entropy_np). The certified backend ("bff") is checked against the qubit
values (a different method: explicit attacks, so upper bounds) and against those references.
"""

import re
import sys
from pathlib import Path

import jax
import numpy as np
import pytest
import xarray as xr
from helpers import (
    assert_labelled,
    binary_entropy_np,
    coefficients_np,
    correlators_np,
    noisy_strategy_entropy_np,
    pironio_entropy,
    purified_entropies,
    xz_observable,
)

import jaxbell as jb
from jaxbell import qubit, rates
from jaxbell.cli import main

PI = np.pi
CHSH = (PI / 2, PI / 4, 3 * PI / 4)
PROP3 = (PI / 3, PI / 2 - 0.1, 5 * PI / 6)
PROP5 = (PI / 4, PI / 2 - 0.1, PI)
NOT_ST = (0.3, 0.2, 0.1)  # condition (4) fails
#: cheap settings for tests of what does not depend on the optimisation's accuracy (the ends of
#: the curve are exact by construction); tol=1 keeps every value instead of flagging it
LOOSE = {"directions": 16, "starts": 4, "steps": 200, "refine": 0, "tol": 1.0}


@pytest.fixture(scope="module")
def curve():
    return jb.rate_curve(*PROP3, kind="key", x=0, num=33)


def test_not_self_testing_fixture_is_not():
    assert not bool(jb.is_self_testing(*NOT_ST))


# --- argument checks ------------------------------------------------------------------------


def test_bad_arguments_raise_clear_errors():
    eta_q = abs(float(jb.quantum_bound(*CHSH)))
    with pytest.raises(ValueError, match="bell_value.*quantum maximum"):
        jb.di_entropy(*CHSH, 1.001 * eta_q)
    with pytest.raises(ValueError, match="bell_value.*non-finite"):
        jb.di_entropy(*CHSH, np.nan)
    with pytest.raises(ValueError, match="kind"):
        jb.di_entropy(*CHSH, 0.8, kind="keys")
    with pytest.raises(ValueError, match="x must be 0 or 1"):
        jb.di_entropy(*CHSH, 0.8, x=2)
    with pytest.raises(ValueError, match=r"method must be one of \['bff', 'qubit'\]"):
        jb.di_entropy(*CHSH, 0.8, method="sdp")
    with pytest.raises(ValueError, match="method"):
        jb.noisy_key_rate(*CHSH, 0.9, method=())
    with pytest.raises(ValueError, match="x must be 0, 1 or None"):
        jb.noisy_key_rate(*CHSH, 0.9, x=2)
    with pytest.raises(ValueError, match="theta"):
        jb.di_entropy(np.inf, 0.1, 0.2, 0.0)
    with pytest.raises(ValueError, match="visibility"):
        jb.noisy_key_rate(*CHSH, 1.2)
    with pytest.raises(ValueError, match="visibility"):
        jb.noisy_global_rate(*CHSH, -0.1)
    with pytest.raises(ValueError, match="kind"):
        jb.critical_visibility(*CHSH, kind="both")
    with pytest.raises(TypeError, match="unknown option"):
        jb.di_entropy(*CHSH, 0.8, options={"stars": 3})
    with pytest.raises(ValueError, match="num"):
        jb.rate_curve(*CHSH, num=1)
    with pytest.raises(ValueError, match="one tuple"):
        jb.rate_curve([0.1, 0.2], 0.3, 0.4)
    # where (4) fails the quantum maximum is the local bound
    eta_l = float(jb.local_bound(*NOT_ST))
    with pytest.raises(ValueError, match="bell_value"):
        jb.di_entropy(*NOT_ST, 1.01 * eta_l)


# --- known answers ------------------------------------------------------------------------------


def test_known_answers_at_the_ends_and_symmetry():
    for tpl in (PROP3, PROP5):
        eta_l, eta_q = float(jb.local_bound(*tpl)), abs(float(jb.quantum_bound(*tpl)))
        eta = np.array([0.0, 0.5 * eta_l, eta_l, -eta_l, eta_q, -eta_q])
        key = np.asarray(jb.di_entropy(*tpl, eta, kind="key", x=0, options=LOOSE))
        np.testing.assert_array_equal(key[:4], 0.0)
        np.testing.assert_allclose(key[4:], 1.0, atol=1e-12)  # self-testing: H(A|E) = 1
        # global: the closed form 1 + h((1 + E_xy)/2) of eq. (6), computed without optimisation
        pair = np.asarray(jb.pair_entropies_at_quantum_bound(*tpl))
        # (the global entropy falls like sqrt(eta^Q - |eta|) below eta^Q, so rounding of <B>
        # near eta^Q limits agreement there to ~sqrt(machine epsilon) = 1e-8 bits)
        for x, y in ((0, 0), (0, 1), (1, 1)):
            g = float(jb.di_entropy(*tpl, -eta_q, kind="global", x=x, y=y, options=LOOSE))
            assert g == pytest.approx(1 + pair[x, y], abs=1e-7)
        mid = 0.5 * (eta_l + eta_q)
        a, b = (float(jb.di_entropy(*tpl, s * mid, options=LOOSE)) for s in (1, -1))
        assert a == b and 0 < a < 1
    # not self-testing: zero on the whole quantum range
    eta_l = float(jb.local_bound(*NOT_ST))
    np.testing.assert_array_equal(
        jb.di_entropy(*NOT_ST, np.linspace(-eta_l, eta_l, 7), kind="global"), 0.0
    )


def test_di_entropy_broadcasts_over_tuples():
    theta = np.array([PI / 3, PI / 4])
    phi = np.array([PI / 2 - 0.1, PI / 2 - 0.1])
    omega = np.array([5 * PI / 6, PI])
    eta = 0.5 * (np.asarray(jb.local_bound(theta, phi, omega)) + 0)
    out = np.asarray(jb.di_entropy(theta[:, None], phi[:, None], omega[:, None], eta[:, None]))
    assert out.shape == (2, 1) and np.all(out == 0)
    top = np.abs(np.asarray(jb.quantum_bound(theta, phi, omega)))
    both = np.asarray(jb.di_entropy(theta, phi, omega, 0.999 * top))
    qubit.clear_cache()  # the one-tuple calls below optimise again, in batches of one
    single = [
        float(jb.di_entropy(t, p, w, e))
        for t, p, w, e in zip(theta, phi, omega, 0.999 * top, strict=True)
    ]
    # each problem draws its own starts, so batching does not change the result
    np.testing.assert_allclose(both, single, rtol=0, atol=1e-12)


def test_rate_curve_dataset(curve):
    ds = curve
    eta_l, eta_q = float(jb.local_bound(*PROP3)), abs(float(jb.quantum_bound(*PROP3)))
    assert float(ds.bell_value[0]) == pytest.approx(eta_l) and float(ds.bell_value[-1]) == eta_q
    assert ds.rate_method.item() == "qubit" and ds.attrs["kind"] == "key"
    assert_labelled(ds)
    for key in ("title", "source", "history", "references", "option_starts", "theta"):
        assert key in ds.attrs
    assert "10.1103/PhysRevLett.132.210802" in ds.attrs["references"]
    assert "Pironio" in ds.attrs["references"]
    assert np.all(ds.curve_status == 0)
    f = ds.entropy.values
    assert f[0] == 0 and f[-1] == pytest.approx(1.0, abs=1e-12)
    assert np.all(np.diff(f) >= 0) and np.all(np.diff(f, 2) >= -1e-12)
    assert np.all(ds.entropy_lower_estimate <= ds.entropy + 1e-15)
    # the supporting line touches at its point and lies below the curve everywhere
    line = ds.intercept.values[:, None] + ds.slope.values[:, None] * ds.bell_value.values
    np.testing.assert_allclose(np.diagonal(line), f, atol=1e-12)
    assert np.all(line <= f[None, :] + 1e-12)
    # the optimal attack: a mixture of two explicit strategies whose Bell values and entropies,
    # recomputed from the stored state and angles by an explicit purification, average to
    # bell_value and entropy
    w = ds.mixture_weight.values
    np.testing.assert_allclose(w.sum(-1), 1.0, atol=1e-15)
    mixed_bell = (w * ds.component_bell_value.values).sum(-1)
    np.testing.assert_allclose(mixed_bell, ds.bell_value.values, atol=1e-12)
    np.testing.assert_allclose((w * ds.component_entropy.values).sum(-1), f, atol=1e-12)
    c = coefficients_np(*PROP3)
    for i in range(0, ds.sizes["bell_value"], 4):
        for k in range(2):
            rho = ds.state.values[i, k]
            alice = [xz_observable(a) for a in ds.alice_angle.values[i, k]]
            bob = [xz_observable(b) for b in ds.bob_angle.values[i, k]]
            h_key, _ = purified_entropies(rho, alice, bob, 0, 0)
            bell = float(np.sum(c * correlators_np(rho, alice, bob)))
            assert h_key == pytest.approx(ds.component_entropy.values[i, k], abs=1e-10)
            assert abs(bell) == pytest.approx(ds.component_bell_value.values[i, k], abs=1e-12)
    assert ds.sizes["tangent"] > 0 and np.all(ds.tangent_agreement > 0)


def test_rate_curve_round_trips_through_netcdf(curve, tmp_path):
    path = jb.save_dataset(curve, tmp_path / "curve.nc")
    back = jb.open_dataset(path)
    xr.testing.assert_identical(back.load(), curve)


# --- noisy rates --------------------------------------------------------------------------------


def _pironio_noisy_key_rate(v):
    """CHSH member under white noise: S = 2 sqrt2 v, every |E_xy| = v / sqrt2 (Pironio et al.)."""
    return pironio_entropy(2 * np.sqrt(2) * v) - binary_entropy_np((1 + v / np.sqrt(2)) / 2)


def test_chsh_noisy_key_rate_and_critical_visibility_match_pironio():
    v = np.linspace(0.75, 1.0, 11)
    got = np.asarray(jb.noisy_key_rate(*CHSH, v))
    np.testing.assert_allclose(got, _pironio_noisy_key_rate(v), atol=1e-4)
    # the threshold: root of the analytic rate by bisection (independent of jaxbell)
    lo, hi = 1 / np.sqrt(2), 1.0
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if _pironio_noisy_key_rate(mid) <= 0 else (lo, mid)
    crit = float(jb.critical_visibility(*CHSH, kind="key"))
    slope = (_pironio_noisy_key_rate(hi + 1e-6) - _pironio_noisy_key_rate(hi - 1e-6)) / 2e-6
    assert crit == pytest.approx(hi, abs=1e-4 / slope + 1e-7)
    assert crit > 1 / np.sqrt(2)


def test_noisy_rates_at_full_visibility_are_the_closed_forms():
    tuples = [CHSH, PROP3, PROP5]
    for tpl in tuples:
        key = float(jb.noisy_key_rate(*tpl, 1.0, options=LOOSE))
        assert key == pytest.approx(float(jb.key_rate_at_quantum_bound(*tpl)), abs=1e-12)
        glob = float(jb.noisy_global_rate(*tpl, 1.0, options=LOOSE))
        assert glob == pytest.approx(float(jb.global_rate_at_quantum_bound(*tpl)), abs=1e-12)


def test_noisy_rates_below_the_local_visibility():
    for tpl in (PROP5, NOT_ST):
        eta_l, eta_q = float(jb.local_bound(*tpl)), abs(float(jb.quantum_bound(*tpl)))
        v = np.array([0.0, 0.5, min(1.0, eta_l / eta_q)])
        np.testing.assert_array_equal(jb.noisy_global_rate(*tpl, v, options=LOOSE), 0.0)
        # key: no secrecy, so the rate is minus the smallest error-correction cost (kept < 0)
        e = np.asarray(jb.strategy_correlators(*tpl))
        cost = binary_entropy_np((1 + v[:, None, None] * e) / 2).reshape(3, 4).min(-1)
        np.testing.assert_allclose(jb.noisy_key_rate(*tpl, v, options=LOOSE), -cost, atol=1e-12)
    assert np.isnan(float(jb.critical_visibility(*NOT_ST)))


def test_global_critical_visibility_is_the_inverse_violation_ratio():
    for tpl in (CHSH, PROP3):
        ratio = abs(float(jb.quantum_bound(*tpl))) / float(jb.local_bound(*tpl))
        crit = float(jb.critical_visibility(*tpl, kind="global", xtol=1e-9, options=LOOSE))
        assert crit == pytest.approx(1 / ratio, abs=2e-9)


def test_key_critical_visibility_respects_the_chord_bound():
    # The envelope lies below the chord from (eta^L, 0) to (|eta^Q|, 1), so a positive rate needs
    # (v |eta^Q| - eta^L) / (|eta^Q| - eta^L) > min_xy h((1 + v E_xy)/2) at the threshold.
    for tpl in (PROP3, PROP5):
        crit = float(jb.critical_visibility(*tpl))
        eta_l, eta_q = float(jb.local_bound(*tpl)), abs(float(jb.quantum_bound(*tpl)))
        e = np.asarray(jb.strategy_correlators(*tpl))
        chord = (crit * eta_q - eta_l) / (eta_q - eta_l)
        assert chord >= binary_entropy_np((1 + crit * e) / 2).min() - 1e-4
        assert float(jb.noisy_key_rate(*tpl, min(1.0, crit + 1e-4))) > 0
        assert float(jb.noisy_key_rate(*tpl, crit - 1e-4)) <= 0


# --- backend registry ------------------------------------------------------------------------


def test_a_second_backend_plugs_in(monkeypatch, curve):
    calls = []

    def fake(theta, phi, omega, bell_value, *, kind, x, y, options):
        calls.append((kind, x, y))
        out = np.abs(np.asarray(bell_value)) * 0.0 + 0.25
        out = np.where(np.abs(bell_value) > 0.7, np.nan, out)  # a failed solve
        return out

    class Fake(rates.Backend):  # a function behind the backend interface
        name, bound, kinds = "fake", "upper", ("key", "global")

        def entropy(self, batch, protocol, options):
            value = np.asarray(
                fake(batch.theta, batch.phi, batch.omega, batch.bell_value, kind=protocol.kind,
                     x=protocol.x, y=protocol.y, options=options)
            )  # fmt: skip
            return rates.backends.Entropies(value, np.where(np.isnan(value), 2, 0))

    monkeypatch.setattr(rates.backends, "_REGISTRY", dict(rates.backends._REGISTRY))
    rates.backends.register(Fake)  # in a copy of the registry, dropped after the test
    assert float(jb.di_entropy(*PROP3, 0.5, method="fake", kind="global", x=1, y=1)) == 0.25
    assert calls[-1] == ("global", 1, 1)
    ds = jb.rate_curve(*PROP3, num=33, method="fake")
    assert ds.rate_method.item() == "fake"
    assert np.all(ds.curve_status.values == np.where(np.isnan(ds.entropy), 2, 0))
    both = xr.concat([curve[["entropy", "curve_status"]], ds], dim="rate_method")
    assert list(both.rate_method.values) == ["qubit", "fake"]
    assert both.entropy.sel({"rate_method": "fake"}).isnull().sum() > 0


# --- command line -----------------------------------------------------------------------------


def test_rate_curve_and_noise_commands(tmp_path, capsys):
    out = tmp_path / "curve.nc"
    args = ["--theta", "pi/2", "--phi", "pi/4", "--omega", "3pi/4", "--no-progress"]
    fast = ["--directions", "16", "--starts", "4", "--steps", "200", "--refine", "1"]
    assert (
        main(["rate-curve", *args, "--num", "8", "--kind", "global", *fast, "--out", str(out)]) == 0
    )
    ds = xr.open_dataset(out, engine="h5netcdf")
    assert ds.sizes["bell_value"] == 8 and ds.attrs["kind"] == "global"
    assert "jaxbell rate-curve" in ds.attrs["history"]
    assert "wrote" in capsys.readouterr().out
    out2 = tmp_path / "noise.nc"
    assert main(["noise", *args, "--visibility", "0.9:1:3", *fast, "--out", str(out2)]) == 0
    ds = xr.open_dataset(out2, engine="h5netcdf")
    assert ds.sizes["visibility"] == 3 and list(ds.kind.values) == ["key", "global"]
    for name in ("noisy_key_rate", "noisy_global_rate", "critical_visibility"):
        assert ds[name].attrs["units"] in ("bit", "1")


@pytest.mark.parametrize(
    ("argv", "match"),
    [
        (["rate-curve", "--theta", "pi", "--phi", "0", "--omega", "1", "--out", "x.txt"], ".nc"),
        (["rate-curve", "--theta", "foo", "--phi", "0", "--omega", "1", "--out", "x.nc"], "foo"),
        (
            [
                "rate-curve",
                "--theta",
                "1",
                "--phi",
                "0",
                "--omega",
                "1",
                "--directions",
                "1",
                "--out",
                "x.nc",
            ],
            "--directions",
        ),  # fmt: skip
        (
            [
                "noise",
                "--theta",
                "1",
                "--phi",
                "0",
                "--omega",
                "1",
                "--visibility",
                "0:2:3",
                "--out",
                "x.nc",
            ],
            "visibility",
        ),  # fmt: skip
        (
            [
                "rate-curve",
                "--theta",
                "1",
                "--phi",
                "0",
                "--omega",
                "1",
                "--out",
                "/nonexistent/x.nc",
            ],
            "does not exist",
        ),  # fmt: skip
    ],
)
def test_command_errors_name_the_option(argv, match, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as err:
        main(argv)
    assert err.value.code == 2
    assert match in capsys.readouterr().err


def test_command_help_explains_every_option(capsys):
    for cmd in ("rate-curve", "noise"):
        with pytest.raises(SystemExit):
            main([cmd, "--help"])
        text = capsys.readouterr().out
        for opt in ("--theta", "--directions", "--starts", "--steps", "--refine", "--tol", "--out"):
            assert opt in text


def test_new_tuples_reuse_the_compiled_solver():
    jb.di_entropy(0.9, PI / 2 - 0.2, 2.4, 0.0, options=LOOSE | {"seed": 11})  # warm
    n = qubit._TRACES["solve"]
    for tpl in ((1.0, PI / 2 - 0.2, 2.5), (0.8, PI / 2 - 0.25, 2.6)):
        top = abs(float(jb.quantum_bound(*tpl)))
        assert bool(jb.is_self_testing(*tpl))
        jb.di_entropy(*tpl, 0.9 * top, options=LOOSE | {"seed": 11})
    assert qubit._TRACES["solve"] == n


def test_explicit_negative_bell_values_mirror_the_curve(curve):
    eta = -curve.bell_value.values[::8]
    ds = jb.rate_curve(*PROP3, kind="key", x=0, bell_value=eta)
    np.testing.assert_array_equal(ds.entropy.values, curve.entropy.values[::8])
    np.testing.assert_array_equal(ds.slope.values, -curve.slope.values[::8])
    line = ds.intercept.values + ds.slope.values * eta
    np.testing.assert_allclose(line, ds.entropy.values, atol=1e-12)


# --- certified lower bounds (method "bff") beside the qubit values -----------------------------

#: cheap certified settings: every m gives a valid lower bound (m = 4: 3 SDPs per point)
BFF4 = {"m": 4, "processes": 1, "progress": False}
#: qubit settings for the comparisons: any strategy found is an explicit attack, so cheaper
#: optimisation (and tol=1, keeping every value) only weakens "certified <= qubit", never
#: invalidates it
QUBIT_MEDIUM = {"directions": 16, "starts": 4, "steps": 300, "refine": 1, "tol": 1.0}
#: allowance in "certified <= qubit": the certificates are rigorous and the qubit values exact
#: entropies of explicit strategies, both up to float64 rounding
CERT_TOL = 1e-9


def _pironio_threshold(rate):
    lo, hi = 1 / np.sqrt(2), 1.0
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if rate(mid) <= 0 else (lo, mid)
    return hi


def test_bff_backend_is_bff_entropy():
    eta_l, eta_q = float(jb.local_bound(*PROP3)), abs(float(jb.quantum_bound(*PROP3)))
    eta = np.array([0.3 * eta_l, -eta_l, 0.5 * (eta_l + eta_q), -0.95 * eta_q])
    opts = {"m": 2, "processes": 1, "progress": False}
    got = np.asarray(jb.di_entropy(*PROP3, eta, x=1, method="bff", options=opts))
    ref = jb.bff_entropy(*PROP3, eta[2:], x=1, m=2, processes=1, progress=False)
    assert np.all(ref.status == 0) and np.all(ref.value > 0)
    np.testing.assert_array_equal(got[2:], ref.value)  # the same solves: the same bits
    np.testing.assert_array_equal(got[:2], 0.0)  # local Bell values: exactly 0, no SDP
    # kind "global" and both inputs pass through too
    kw = {"kind": "global", "x": 0, "y": 1}
    got = float(
        jb.di_entropy(*PROP3, 0.98 * eta_q, **kw, method="bff", options=opts | {"level": 1})
    )
    ref = jb.bff_entropy(*PROP3, 0.98 * eta_q, **kw, m=2, level=1, processes=1, progress=False)
    assert ref.status == 0 and got == float(ref.value)


def test_bff_options_and_missing_solver(monkeypatch):
    with pytest.raises(TypeError, match=r"unknown option.*'bff'.*valid options"):
        jb.di_entropy(*CHSH, 0.8, method="bff", options={"nodes": 3})
    with pytest.raises(ValueError, match=r"options\['m'\]"):
        jb.di_entropy(*CHSH, 0.8, method="bff", options={"m": 1})
    with pytest.raises(ValueError, match=r"options\['constraint'\]"):
        jb.di_entropy(*CHSH, 0.8, method="bff", options={"constraint": "all"})
    with pytest.raises(TypeError, match="per method"):
        jb.di_entropy(*CHSH, 0.8, method=("qubit", "bff"), options={"m": 3})
    with pytest.raises(TypeError, match="not computed"):
        jb.di_entropy(*CHSH, 0.8, method="qubit", options={"bff": {"m": 3}})
    monkeypatch.setitem(sys.modules, "cvxpy", None)  # import cvxpy now raises ImportError
    with pytest.raises(ImportError, match=r"jaxbell\[sdp\]"):
        jb.di_entropy(*CHSH, 0.8, method="bff", options={"solver": "CLARABEL"})
    with pytest.raises(ImportError, match=r"jaxbell\[sdp\]"):
        jb.noisy_key_rate(*CHSH, 0.9, method=("qubit", "bff"),
                          options={"qubit": LOOSE, "bff": {"solver": "CLARABEL"}})  # fmt: skip
    # the default certified solver (batched, JAX) needs no cvxpy
    assert float(jb.di_entropy(*CHSH, 0.8, method="bff", options={"m": 2})) > 0


def _random_pairs(rng, n):
    """n random self-testing tuples with a Bell value between the local and quantum bounds."""
    pts = []
    while len(pts) < n:
        t, p, w = rng.uniform(0, 2 * PI, 3)
        if not bool(jb.is_self_testing(t, p, w)):
            continue
        eta_q = abs(float(jb.quantum_bound(t, p, w)))
        v = rng.uniform(float(jb.local_bound(t, p, w)) / eta_q, 1.0)
        pts.append((t, p, w, v, eta_q * rng.choice([-1.0, 1.0])))
    return (np.array(a) for a in zip(*pts, strict=True))


def _check_certified_below_qubit(rng, n, bff_options, qubit_options):
    t, p, w, v, eta_q = _random_pairs(rng, n)
    xs = rng.integers(0, 2, n)
    gaps = []
    for x in (0, 1):
        s = xs == x
        both = np.asarray(
            jb.di_entropy(
                t[s],
                p[s],
                w[s],
                v[s] * eta_q[s],
                x=x,
                method=("qubit", "bff"),
                options={"qubit": qubit_options, "bff": bff_options},
            )
        )
        qub, cert = both[:, 0], both[:, 1]
        explicit = np.array(
            [noisy_strategy_entropy_np(*a, x=x) for a in zip(t[s], p[s], w[s], v[s], strict=True)]
        )
        assert np.all(np.isfinite(both)), both
        assert np.all(cert <= qub + CERT_TOL), cert - qub  # certified <= an explicit attack
        assert np.all(qub <= explicit + 1e-9), qub - explicit  # qubit: the best attack found
        gaps.append(qub - cert)
    return np.concatenate(gaps)


def test_certified_never_above_qubit_at_20_random_pairs(rng):
    gaps = _check_certified_below_qubit(rng, 20, BFF4, QUBIT_MEDIUM)
    # not vacuous: m = 4 drops at most 1/(16 ln 2) = 0.09 bit from the last node
    assert gaps.max() < 0.1, gaps


@pytest.mark.slow
def test_slow_certified_never_above_qubit_m8(rng):
    gaps = _check_certified_below_qubit(rng, 24, {"m": 8, "progress": False}, None)
    # m = 8: the last node costs <= 0.0113 bit where H = 1, more where H is linear in <B>
    assert gaps.max() < 0.05, gaps


def test_rate_curve_with_both_methods(tmp_path):
    ds = jb.rate_curve(*CHSH, num=6, method=("qubit", "bff"), options={"bff": BFF4})
    assert list(ds.rate_method.values) == ["qubit", "bff"]
    assert ds.entropy.dims == ("rate_method", "bell_value") and ds.bff_status.dims == (
        "bell_value",
    )
    qub, cert = (
        ds.entropy.sel({"rate_method": "qubit"}).values,
        ds.entropy.sel({"rate_method": "bff"}).values,
    )
    np.testing.assert_array_equal(ds.entropy_gap.values, qub - cert)
    assert np.all(ds.entropy_gap.values >= -CERT_TOL)
    # the tight CHSH curve (Pironio et al.) lies between the two
    true = pironio_entropy(2 * np.sqrt(2) * ds.bell_value.values)
    assert np.all(cert <= true + 1e-9) and np.all(true <= qub + 1e-9)
    np.testing.assert_allclose(qub, true, atol=1e-4)
    assert np.all(ds.bff_status == 0) and np.all(ds.curve_status == 0)
    assert cert[0] == 0 and ds.attrs["solved_points"] == 5  # eta^L: exactly 0, no SDP
    assert ds.bff_status.attrs["flag_meanings"].split()[0] == "certified"
    # the solver's own status beside the certificate's: as bff_entropy's; 5 where no SDP ran
    ref = jb.bff_entropy(*CHSH, ds.bell_value.values[-1], m=4, processes=1, progress=False)
    assert ds.bff_solver_status.dims == ("bell_value",)
    assert (
        ds.bff_solver_status.values[0] == 5 and ds.bff_solver_status.values[-1] == ref.solver_status
    )
    assert ds.bff_solver_status.attrs["flag_meanings"].split()[5] == "not_solved"
    assert ds.attrs["option_m"] == 4 and ds.attrs["option_starts"] == 16
    assert "arXiv:2106.13692" in ds.attrs["references"]
    assert "qubit_elapsed_seconds" in ds.attrs and "bff_elapsed_seconds" in ds.attrs
    assert_labelled(ds)
    back = jb.open_dataset(jb.save_dataset(ds, tmp_path / "both.nc"))
    xr.testing.assert_identical(back.load(), ds)
    # one method alone: a scalar method coordinate, as before
    one = jb.rate_curve(*CHSH, bell_value=ds.bell_value.values[-2:], method="bff", options=BFF4)
    assert one.rate_method.item() == "bff" and one.entropy.dims == ("bell_value",)
    np.testing.assert_array_equal(one.entropy.values, cert[-2:])


def test_noisy_rate_curve_brackets_the_true_rate(tmp_path):
    # CHSH member: the true DI rate (Pironio et al.) lies between the certified and qubit rates,
    # and the noisy strategy itself (Eve purifying the noisy state) is above both
    v = np.array([0.7, 0.85, 0.95, 1.0])
    ds = jb.noisy_rate_curve(
        *CHSH, v, kind="key", x=0, method=("qubit", "bff"), options={"bff": BFF4}, critical=False
    )
    cost = binary_entropy_np((1 - v / np.sqrt(2)) / 2)
    true = pironio_entropy(2 * np.sqrt(2) * v) - cost
    qub = ds.noisy_key_rate.sel({"rate_method": "qubit"}).values
    cert = ds.noisy_key_rate.sel({"rate_method": "bff"}).values
    assert np.all(ds.rate_status == 0)
    assert np.all(cert <= true + 1e-9) and np.all(true <= qub + 1e-9)
    np.testing.assert_allclose(qub, true, atol=1e-4)
    assert np.all(qub <= ds.achievable_key_rate.values + 1e-9)
    ach = np.array([noisy_strategy_entropy_np(*CHSH, vi) for vi in v]) - cost
    np.testing.assert_allclose(ds.achievable_key_rate.values, ach, atol=1e-10)
    np.testing.assert_array_equal(ds.noisy_key_rate_gap.values, qub - cert)
    np.testing.assert_allclose(cert[0], -cost[0], atol=1e-15)  # v < 1/sqrt2: local, H = 0
    assert float(ds.local_visibility) == pytest.approx(1 / np.sqrt(2), rel=1e-12)
    assert ds.attrs["bff_option_m"] == 4 and ds.attrs["x"] == 0
    assert_labelled(ds)
    back = jb.open_dataset(jb.save_dataset(ds, tmp_path / "noisy.nc"))
    xr.testing.assert_identical(back.load(), ds)


def test_critical_visibilities_are_ordered():
    # noisy strategy <= qubit <= certified thresholds; for the CHSH member the true threshold
    # (Pironio et al.) lies between qubit and certified; Props. 3 and 5 near phi = pi/2 too
    cost = lambda v: binary_entropy_np((1 - v / np.sqrt(2)) / 2)  # noqa: E731
    true = _pironio_threshold(lambda v: pironio_entropy(2 * np.sqrt(2) * v) - cost(v))
    t, p, w = (np.array(a) for a in zip(CHSH, PROP3, PROP5, strict=True))
    crit = np.asarray(
        jb.critical_visibility(
            t, p, w, x=0, method=("qubit", "bff"), options={"bff": BFF4}, xtol={"bff": 4e-3}
        )
    )
    assert crit.shape == (3, 2) and np.all(np.isfinite(crit))
    assert np.all(crit[:, 0] <= crit[:, 1]) and np.all(crit[:, 1] < 1)
    local = np.asarray(jb.local_bound(t, p, w)) / np.abs(np.asarray(jb.quantum_bound(t, p, w)))
    assert np.all(local < crit[:, 0])
    qub, cert = crit[0]
    assert qub == pytest.approx(true, abs=2e-5)
    assert qub <= true <= cert and cert - true < 2e-2
    # a positive rate is certified at the certified threshold, and not below the bracket
    rates = jb.noisy_key_rate(*CHSH, [cert, cert - 8e-3], x=0, method="bff", options=BFF4)
    assert float(rates[0]) > 0 >= float(rates[1])


def test_noisy_strategy_entropy_matches_purification(rng):
    t, p, w = rng.uniform(0, 2 * PI, (3, 6))
    v = rng.uniform(0, 1, 6)
    for kind, x, y in (("key", 0, 0), ("key", 1, 0), ("global", 0, 1), ("global", 1, 1)):
        got = np.asarray(jb.noisy_strategy_entropy(t, p, w, v, kind=kind, x=x, y=y))
        ref = [
            noisy_strategy_entropy_np(*a, kind=kind, x=x, y=y) for a in zip(t, p, w, v, strict=True)
        ]
        np.testing.assert_allclose(got, ref, atol=1e-10)
    # at v = 1 the closed form at the quantum bound: 1 + h((1 + E[x, y])/2)
    np.testing.assert_allclose(
        float(jb.noisy_strategy_entropy(*CHSH, 1.0, kind="global", x=0, y=1)),
        1 + float(jb.pair_entropies_at_quantum_bound(*CHSH)[0, 1]),
        atol=1e-12,
    )


def test_fixed_inputs_and_the_best_of_both():
    v = np.array([0.9, 0.97, 1.0])
    best = np.asarray(jb.noisy_key_rate(*PROP3, v, options=LOOSE))
    each = [np.asarray(jb.noisy_key_rate(*PROP3, v, x=x, options=LOOSE)) for x in (0, 1)]
    np.testing.assert_array_equal(best, np.maximum(*each))
    assert np.all(each[0] > each[1])  # near phi = pi/2, A_0 and B_0 are nearly perfectly correlated


def test_correlator_constraint_certifies_more():
    # Props. 4 and 6: fixing all four correlators v E of the noisy strategy constrains more than
    # the Bell value alone (a larger infimum), and stays below the noisy strategy itself
    eta_q = abs(float(jb.quantum_bound(*PROP3)))
    v = np.array([0.97, 0.995])
    opts = {"m": 3, "processes": 1, "progress": False}
    bell = np.asarray(jb.di_entropy(*PROP3, v * eta_q, method="bff", options=opts))
    corr = np.asarray(
        jb.di_entropy(*PROP3, v * eta_q, method="bff", options=opts | {"constraint": "correlators"})
    )
    e = np.asarray(jb.strategy_correlators(*PROP3))
    ref = jb.bff_entropy(*PROP3, None, correlators=v[:, None, None] * e, m=3, processes=1)
    np.testing.assert_allclose(corr, ref.value, atol=1e-5)
    assert np.all(corr >= bell - 1e-5) and corr[0] > bell[0] + 0.05
    explicit = np.array([noisy_strategy_entropy_np(*PROP3, vi) for vi in v])
    assert np.all(corr <= explicit + 1e-9)
    # not self-testing: the quantum maximum eta^L exceeds |eta^Q|, beyond which no v E reaches
    eta_l = float(jb.local_bound(*NOT_ST))
    assert abs(float(jb.quantum_bound(*NOT_ST))) < eta_l
    with pytest.raises(ValueError, match="constraint"):
        jb.di_entropy(*NOT_ST, eta_l, method="bff", options=opts | {"constraint": "correlators"})


def test_noise_and_rate_curve_commands_with_both_methods(tmp_path, capsys):
    args = ["--theta", "pi/2", "--phi", "pi/4", "--omega", "3pi/4", "--no-progress"]
    fast = ["--directions", "16", "--starts", "4", "--steps", "200", "--refine", "1"]
    sdp = ["--m", "2", "--processes", "1"]
    out = tmp_path / "noise.nc"
    argv = ["noise", *args, "--visibility", "0.9:1:2", "--kind", "key", "--x", "0", "--tol", "1"]
    assert main([*argv, "--method", "qubit", "bff", *fast, *sdp, "--out", str(out)]) == 0
    assert "bff: key" in capsys.readouterr().out
    with xr.open_dataset(out, engine="h5netcdf") as ds:
        assert list(ds.rate_method.values) == ["qubit", "bff"] and list(ds.kind.values) == ["key"]
        assert np.all(ds.noisy_key_rate_gap.values >= -CERT_TOL)
        assert np.all(ds.critical_visibility_gap.values >= 0)
        assert ds.attrs["bff_option_m"] == 2
    out = tmp_path / "curve.nc"
    argv = ["rate-curve", *args, "--num", "3", "--method", "bff", *sdp, "--out", str(out)]
    assert main(argv) == 0
    with xr.open_dataset(out, engine="h5netcdf") as ds:
        assert ds.rate_method.item() == "bff" and ds.sizes["bell_value"] == 3
        assert np.all(ds.bff_status.values == 0)
    with pytest.raises(SystemExit):
        main(["rate-curve", *args, "--method", "bff", "--m", "1", "--out", str(out)])
    assert "--m" in capsys.readouterr().err


def test_several_methods_without_options():
    # method=("qubit", "bff") with no options: each backend runs with its defaults
    pytest.importorskip("cvxpy")
    eta = 0.9 * abs(float(jb.quantum_bound(*CHSH)))
    both = np.asarray(jb.di_entropy(*CHSH, eta, method=("qubit", "bff")))
    alone = [float(jb.di_entropy(*CHSH, eta, method=m)) for m in ("qubit", "bff")]
    # certified values repeat to ~1e-6 bit (the first SDP solve of a process can differ)
    np.testing.assert_allclose(both, alone, rtol=0, atol=1e-5)
    s = 2 * np.sqrt(2) * eta  # Pironio et al. (2009): tight for the CHSH member
    pironio = 1 - float(jb.binary_entropy((1 + np.sqrt((s / 2) ** 2 - 1)) / 2))
    assert both[1] <= pironio + 1e-6 <= both[0] + 1e-4


# --- review fixes: dtype of eta^Q, input checks, correlator thresholds, curve status ---------


def test_a_float32_quantum_bound_is_accepted_as_the_maximum():
    # with x64 off quantum_bound comes back in float32, a few float32 ulps from the float64
    # maximum; it must be taken as |eta^Q| (key entropy 1 there: self-testing of the singlet
    # with projective qubit measurements leaves Eve uncorrelated with A_x)
    eta32 = np.float32(jb.quantum_bound(*PROP5))
    assert abs(float(eta32)) != abs(float(jb.quantum_bound(*PROP5)))
    h = float(jb.di_entropy(*PROP5, eta32, x=0, options=LOOSE))
    assert h == pytest.approx(1.0, abs=1e-6)
    with pytest.raises(ValueError, match="bell_value.*quantum maximum"):
        jb.di_entropy(*PROP5, np.float32(1.0001) * eta32, options=LOOSE)


def test_a_python_float_of_the_float32_bound_is_accepted_with_x64_off():
    # the library's default mode: quantum_bound in float32, passed on as a Python float
    jax.config.update("jax_enable_x64", False)
    try:
        eta = float(jb.quantum_bound(*PROP5))
        h = float(jb.di_entropy(*PROP5, eta, x=0, options=LOOSE))
    finally:
        jax.config.update("jax_enable_x64", True)
    assert h == pytest.approx(1.0, abs=1e-6)


def test_critical_visibility_checks_y_for_every_kind():
    with pytest.raises(ValueError, match="y must be"):
        jb.critical_visibility(*CHSH, kind="key", y=2)


def test_correlator_thresholds_cover_the_props_4_and_6_limit():
    # at phi = pi/2 (Prop. 4: max CHSH 5/2) condition (4) fails, so the Bell value alone
    # certifies nothing, but the four correlators of eq. (6) do: a finite certified threshold,
    # above the visibility 2 / max CHSH where v E becomes local, with a positive certified
    # rate at it and none a bracket below
    prop4 = (PI / 3, PI / 2, 5 * PI / 6)
    assert not bool(jb.is_self_testing(*prop4))
    opts = {"m": 3, "processes": 1, "progress": False, "constraint": "correlators"}
    crit = np.asarray(
        jb.critical_visibility(*prop4, x=0, method=("qubit", "bff"), options={"bff": opts})
    )
    assert np.isnan(crit[0])  # qubit: Bell value only, not self-testing
    assert 2 / 2.5 < crit[1] < 1
    rate = jb.noisy_key_rate(*prop4, [crit[1], crit[1] - 2e-3], x=0, method="bff", options=opts)
    assert float(rate[0]) > 0 >= float(rate[1])
    with pytest.raises(ValueError, match="eta\\^Q = 0"):
        jb.noisy_key_rate(PI / 3, PI / 2, PI / 2, 0.99, x=0, method="bff", options=opts)


def test_rate_curve_entropy_is_nan_where_di_entropy_is():
    # too few slopes for a tight tolerance: some segments stay unconverged; rate_curve and
    # di_entropy agree on which values are NaN, the hull value is kept, and |eta| <= eta^L is
    # exactly 0 with status 0 (a local deterministic strategy reaches it)
    rough = {"directions": 6, "starts": 2, "steps": 60, "refine": 0, "tol": 1e-9}
    eta_l, eta_q = float(jb.local_bound(*PROP3)), abs(float(jb.quantum_bound(*PROP3)))
    eta = np.concatenate([[0.0, 0.5 * eta_l, eta_l], np.linspace(eta_l, eta_q, 7)[1:-1]])
    ds = jb.rate_curve(*PROP3, bell_value=eta, options=rough)
    status = ds.curve_status.values
    assert np.all(status[:3] == 0) and np.all(ds.entropy.values[:3] == 0)
    assert np.any(status != 0)
    np.testing.assert_array_equal(np.isnan(ds.entropy.values), status != 0)
    assert np.all(np.isfinite(ds.hull_entropy.values))
    direct = np.asarray(jb.di_entropy(*PROP3, eta, options=rough))
    np.testing.assert_array_equal(np.isnan(direct), status != 0)


# --- the numbers README.md quotes from figures/data (issue 14) --------------------------------

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "figures" / "data"
#: README's critical-visibility table: row label -> construction in critical_visibilities.nc
README_ROWS = {
    "CHSH member": "chsh",
    "Prop. 3, φ = π/2 − 0.3": "chsh-5/2 delta=0.3",
    "Prop. 3, φ = π/2 − 0.1": "chsh-5/2 delta=0.1",
    "Prop. 3, φ = π/2 − 0.03": "chsh-5/2 delta=0.03",
    "Prop. 5, φ = π/2 − 0.1": "chsh-1+sqrt2 delta=0.1",
}


def _readme_visibility_table():
    text = (ROOT / "README.md").read_text()
    rows = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and re.match(r"(CHSH member|Prop\. [35], φ)", cells[0]):
            label = cells[0].rsplit(" (", 1)[0]
            rows[label] = [float(c) for c in cells[1:]]
    return text, rows


def test_readme_noise_numbers_are_the_stored_data():
    text, rows = _readme_visibility_table()
    assert set(rows) == set(README_ROWS)
    ds = xr.open_dataset(DATA / "critical_visibilities.nc")
    for label, construction in README_ROWS.items():
        data = ds.critical_visibility.sel(construction=construction)
        got = [float(data.sel(rate_method=m)) for m in ("qubit", "bff", "bff_correlators")]
        np.testing.assert_allclose(rows[label], got, atol=5e-6, err_msg=label)
    # best tolerance 1 - v_crit on the planes phi = pi/2 - delta: 7.4, 3.8, 1.4 %
    quoted = re.search(r"over \(θ, ω\) is ([\d.]+) %, ([\d.]+) % and ([\d.]+) %", text)
    for delta, q in zip(("0.3", "0.1", "0.03"), quoted.groups(), strict=True):
        plane = xr.open_dataset(DATA / f"noise_plane_near-key_delta{delta}.nc")
        assert round(100 * (1 - float(plane.critical_visibility.min())), 1) == float(q), delta
    # key at visibility 0.99, 0.999, 0.9999 needs max CHSH >= 2.35, 2.10, 2.03
    quoted = re.search(r"needs max CHSH ≥ ([\d.]+), ([\d.]+) and ([\d.]+)", text)
    tol = xr.open_dataset(DATA / "noise_tolerance_vs_chsh.nc")
    least = tol.least_chsh_with_key.min(("family", "delta"))
    np.testing.assert_array_equal(least.visibility, [0.99, 0.999, 0.9999])
    for got, q in zip(least.values, quoted.groups(), strict=True):
        assert round(float(got), 2) == float(q)


@pytest.mark.slow
def test_stored_critical_visibilities_are_recomputed():
    """Re-derive a few points of the data behind README's numbers with the library: qubit
    thresholds of the table (default options, as stored), the best point of the delta = 0.1
    plane (the plane's options), and the least CHSH value's tuple at visibility 0.99."""
    ds = xr.open_dataset(DATA / "critical_visibilities.nc")
    for construction in ("chsh", "chsh-5/2 delta=0.1"):
        row = ds.sel(construction=construction)
        tpl = (float(row.theta), float(row.phi), float(row.omega))
        got = float(jb.critical_visibility(*tpl, x=0, xtol=1e-7))
        ref = float(row.critical_visibility.sel(rate_method="qubit"))
        assert got == pytest.approx(ref, abs=2e-5), construction
    plane = xr.open_dataset(DATA / "noise_plane_near-key_delta0.1.nc")
    best = plane.critical_visibility.where(
        plane.critical_visibility == plane.critical_visibility.min(), drop=True
    )
    theta, omega = float(best.theta[0]), float(best.omega[0])
    opts = {k[len("option_") :]: float(v) if k == "option_tol" else int(v)
            for k, v in plane.attrs.items() if k.startswith("option_")}  # fmt: skip
    got = float(jb.critical_visibility(theta, float(plane.attrs["phi"]), omega, x=0, options=opts))
    assert 1 - got == pytest.approx(1 - float(best.squeeze()), abs=5e-4)
    assert round(100 * (1 - got), 1) == 3.8
