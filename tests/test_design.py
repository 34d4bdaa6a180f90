"""Protocol design over the family (jaxbell.rates.design) against independent references.

* the envelope-theorem gradients of the attack's rate and of its thresholds equal finite
  differences of freshly computed envelopes;
* on the asymmetric-CHSH subfamily the attack reproduces the analytic Woodhead-Acin-Pironio
  rate (|alpha| >= 1), and the gradient search finds the optimum of a brute-force scan;
* the result is never worse than the CHSH member, meets its constraints, and the same seed
  gives the same bits.
"""

import math

import numpy as np
import pytest

import jaxbell as jb
from jaxbell._precision import x64_scope
from jaxbell.rates import design

FINE = {"directions": 64, "starts": 16, "steps": 600, "refine": 4}
CHSH = (math.pi / 2, math.pi / 4, 3 * math.pi / 4)


def _rate(t, **kw):
    return design.attack_rate(t, options=FINE, gradient=False, **kw).rate


@pytest.mark.parametrize("bob_key", ["aligned", None])
def test_rate_gradient_matches_finite_differences(bob_key):
    t = np.array([1.3, 0.7, 2.5])
    kw = {"visibility": 0.97, "efficiency": 0.99, "bob_key": bob_key}
    p = design.attack_rate(t, options=FINE, **kw)
    h = 1e-4
    fd = []
    for i in range(3):
        e = np.eye(3)[i] * h
        fd.append((_rate(t + e, **kw) - _rate(t - e, **kw)) / (2 * h))
    np.testing.assert_allclose(p.grad, fd, rtol=1e-4, atol=1e-6)
    dv = _rate(t, **(kw | {"visibility": 0.97 + h})) - _rate(t, **(kw | {"visibility": 0.97 - h}))
    assert p.dv == pytest.approx(dv / (2 * h), rel=1e-5)
    de = _rate(t, **(kw | {"efficiency": 0.99 + h})) - _rate(t, **(kw | {"efficiency": 0.99 - h}))
    assert p.deff == pytest.approx(de / (2 * h), rel=1e-5)


def test_threshold_gradient_matches_finite_differences():
    # implicit differentiation of r(v*, theta) = 0 against bisections at perturbed tuples
    from jaxbell.rates.qubit import qubit_envelope

    t = np.array([1.45, 0.8, 2.3])

    def vstar(a):
        env = qubit_envelope(*a, kind="key", x=0, options=FINE)
        return design._threshold(
            a,
            env,
            which="visibility",
            visibility=1.0,
            efficiency=1.0,
            bob_key="aligned",
            preprocessing=0.0,
            tol=1e-10,
        )

    v0, g, _ = vstar(t)
    h = 1e-4
    fd = [
        (vstar(t + np.eye(3)[i] * h)[0] - vstar(t - np.eye(3)[i] * h)[0]) / (2 * h)
        for i in range(3)
    ]
    np.testing.assert_allclose(g, fd, rtol=1e-3, atol=1e-6)
    # the bisection with the fixed envelope is the library's attack threshold
    ref = float(jb.critical_visibility(*t, x=0, bob_key="aligned", options=FINE))
    assert v0 == pytest.approx(ref, abs=2e-6)


def test_attack_on_asymmetric_chsh_reproduces_woodhead_acin_pironio():
    # (pi/2, phi, pi - phi) has coefficients proportional to (alpha, alpha, 1, -1), alpha =
    # tan(phi); for alpha >= 1 the WAP bound is tight, so the attack's rate must equal it
    for phi in (0.85, 0.95):
        t = (math.pi / 2, phi, math.pi - phi)
        alpha = math.tan(phi)
        c = np.asarray(jb.bell_coefficients(*t))
        np.testing.assert_allclose(c / c[1, 0], [[alpha, alpha], [1, -1]], rtol=1e-12)
        for v in (0.92, 0.97):
            with x64_scope():
                beh = jb.device_behaviour(*t, visibility=v, bob_key=2)
                e = np.asarray(jb.behaviour_correlators(beh))[:, :2]
                s_alpha = alpha * (e[0, 0] + e[0, 1]) + e[1, 0] - e[1, 1]
                ref = float(jb.asymmetric_chsh_entropy(alpha, s_alpha)) - float(
                    jb.error_correction_cost(beh, 0, 2)
                )
            assert _rate(np.array(t), visibility=v) == pytest.approx(ref, abs=1e-4)


@pytest.mark.slow
def test_subfamily_search_finds_the_brute_force_optimum():
    # gradient search on (pi/2, phi, pi - phi) against a scan of the library's thresholds
    res = jb.optimise_protocol(
        objective="critical_visibility",
        subfamily="asymmetric_chsh",
        bob_key="aligned",
        starts=2,
        steps=25,
        certify=False,
        compare=False,
    )
    phis = np.linspace(0.68, 0.82, 15)
    scan = [
        float(jb.critical_visibility(math.pi / 2, f, math.pi - f, x=0, bob_key="aligned"))
        for f in phis
    ]
    best = int(np.argmin(scan))
    assert res.value <= min(scan) + 2e-5
    assert abs(res.phi - phis[best]) <= 0.011
    assert res.value < float(jb.critical_visibility(*CHSH, x=0, bob_key="aligned")) - 1e-3


@pytest.fixture(scope="module")
def quick_design():
    kw = dict(
        objective="critical_visibility",
        starts=2,
        steps=6,
        certify=False,
        compare=False,
        seed=3,
        bob_key="aligned",
    )
    return kw, jb.optimise_protocol(**kw)


def test_never_worse_than_the_chsh_member_and_deterministic(quick_design):
    kw, res = quick_design
    assert res.value <= res.chsh_value + 1e-12
    assert res.chsh_value == pytest.approx(
        float(jb.critical_visibility(*CHSH, x=0, bob_key="aligned")), abs=1e-12
    )
    again = jb.optimise_protocol(**kw)
    assert again.angles == res.angles and again.value == res.value
    np.testing.assert_array_equal(again.history, res.history)
    assert all(0 <= a < 2 * math.pi for a in res.angles)  # wrapped


def test_constraints_hold_at_the_result():
    res = jb.optimise_protocol(
        objective="critical_visibility",
        max_chsh=2.6,
        starts=3,
        steps=12,
        bob_key="aligned",
        certify=False,
        compare=False,
    )
    assert res.status == "ok"
    mc = float(jb.max_chsh_value(jb.strategy_correlators(*res.angles)))
    assert mc <= 2.6 + 1e-3 and res.constraints["max_chsh"] == pytest.approx(mc)
    assert res.value < 1.0  # a protocol with key was found below max CHSH 2.6
    ds = res.to_dataset()
    from tests.helpers import assert_labelled

    assert_labelled(ds)
    assert float(ds.max_chsh) == pytest.approx(mc)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"objective": "entropy"}, "objective must be one of"),
        ({"visibility": 1.5}, "visibility must lie in"),
        ({"efficiency": 0.0}, "efficiency must lie in"),
        ({"objective": "finite_key_rate"}, "rounds is required"),
        ({"max_chsh": 1.9}, "max_chsh must be"),
        ({"min_key_rate": 1.2}, "min_key_rate must be"),
        ({"constraint": "full"}, "constraint 'bell'"),
        ({"subfamily": "wap"}, "subfamily must be"),
        ({"starts": 0}, "starts must be"),
    ],
)
def test_bad_input_names_the_argument(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        jb.optimise_protocol(**({"steps": 1, "certify": False, "compare": False} | kwargs))


def test_cli_design_writes_the_result(tmp_path, capsys):
    from jaxbell.cli import main

    out = tmp_path / "d.nc"
    code = main(
        [
            "design",
            "--starts",
            "1",
            "--steps",
            "3",
            "--no-certify",
            "--no-compare",
            "--bob-key",
            "aligned",
            "--out",
            str(out),
            "--no-progress",
        ]
    )
    assert code == 0
    assert "best critical_visibility" in capsys.readouterr().out
    ds = jb.open_dataset(out)
    assert float(ds.objective_attack) <= float(ds.chsh_attack) + 1e-12


@pytest.mark.parametrize(
    ("objective", "kw"),
    [("key_rate", {}), ("finite_key_rate", {"rounds": 1e7}), ("critical_efficiency", {})],
)
def test_every_objective_runs_and_beats_or_matches_the_chsh_member(objective, kw):
    res = jb.optimise_protocol(objective=objective, visibility=0.95 if "rate" in objective else 1.0,
                               bob_key="aligned", starts=1, steps=2, certify=False,
                               compare=False, **kw)  # fmt: skip
    better = res.value >= res.chsh_value if "rate" in objective else res.value <= res.chsh_value
    assert better and res.status == "ok" and np.isfinite(res.value)


def test_optimal_preprocessing_takes_no_finite_key_rate():
    with pytest.raises(ValueError, match="finite_key_rate"):
        jb.optimise_protocol(objective="finite_key_rate", rounds=1e7, preprocessing="optimal")


@pytest.mark.slow
def test_optimal_preprocessing_is_searched(monkeypatch):
    # the family searched at fixed flips, the candidates ranked with p optimised per tuple
    from jaxbell.rates import design

    monkeypatch.setattr(design, "SEARCH_FLIPS", (0.45,))
    res = jb.optimise_protocol(objective="critical_visibility", bob_key="aligned",
                               preprocessing="optimal", starts=1, steps=1, certify=False,
                               compare=False, progress=False)  # fmt: skip
    assert res.status == "ok" and res.settings["preprocessing"] == "optimal"
    assert res.value <= res.chsh_value + 1e-12
    plain = float(jb.critical_visibility(*CHSH, x=0, bob_key="aligned"))
    assert res.chsh_value < plain  # preprocessing lowers the attack's threshold
    assert res.ranking.shape[1] == 5 and np.all(np.isnan(res.ranking[:, 4]))
    assert res.value == pytest.approx(np.nanmin(res.ranking[:, 3]))


@pytest.mark.slow
def test_candidates_are_ranked_by_the_certificate():
    res = jb.optimise_protocol(objective="critical_visibility", bob_key="aligned", starts=1,
                               steps=2, certify=True, compare=False, progress=False,
                               options={"m": 2})  # fmt: skip
    cert = res.ranking[:, 4]
    assert np.all(np.isfinite(cert)) and len(cert) >= 2  # every candidate certified, in a batch
    assert res.certified == pytest.approx(np.min(cert))  # the best certified is chosen
    assert np.any(np.all(np.abs(res.ranking[:, :3] - np.array(CHSH)) < 1e-12, axis=1))
    assert res.chsh_certified >= res.chsh_value  # thresholds: certified >= attack
