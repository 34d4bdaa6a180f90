"""The explicit attack under correlator and full constraints (jaxbell.rates.attack).

Independent references: an explicit three-register purification with the flip of noisy
preprocessing (NumPy), Born-rule statistics from explicit matrices, the 16 deterministic
strategies, the analytic bounds of Pironio et al. (2009) and Ho et al. (2020) (the latter
attained by a rank-2 Bell-diagonal strategy, so targets built from it have a known infimum),
and jaxbell's Bell-value envelope (jaxbell.rates.qubit) for the CHSH member.
"""

import numpy as np
import pytest
from helpers import binary_entropy_np, entropy_np, pironio_entropy, projectors, xz_observable

from jaxbell.rates import attack

FAST = {"starts": 24, "steps": 250, "rounds": 12, "tol": 1e-4}
SIGN = np.array([1.0, -1.0])


def ho_entropy(s, p):
    """Ho et al. (2020): H(A'|E) >= 1 - h((1 + sqrt(S^2/4 - 1))/2)
    + h((1 + sqrt(1 - p(1 - p)(8 - S^2)))/2), tight for CHSH."""
    return pironio_entropy(s) + binary_entropy_np((1 + np.sqrt(1 - p * (1 - p) * (8 - s * s))) / 2)


def bell_diagonal(c):
    """rho = (1 + c)/2 Phi+ + (1 - c)/2 Phi-, A = (Z, X), B_y ∝ Z +- c X: CHSH = 2 sqrt(1 + c^2)."""
    s = 1 / np.sqrt(2)
    pp, pm = np.array([s, 0, 0, s]), np.array([s, 0, 0, -s])
    m = np.sqrt((1 + c) / 2) * np.outer(pp, pp) + np.sqrt((1 - c) / 2) * np.outer(pm, pm)
    b = np.arctan2(c, 1.0)
    return np.concatenate([m.ravel(), [0.0, np.pi / 2, b, -b]])


def bell_diagonal_correlators(c):
    return np.array([[1.0, 1.0], [c * c, -c * c]]) / np.sqrt(1 + c * c)


def behaviour_from_correlators(e, a=(0, 0), b=(0, 0)):
    a, b = np.asarray(a, float), np.asarray(b, float)
    return (
        1
        + SIGN[:, None, None, None] * a[None, None, :, None]
        + SIGN[None, :, None, None] * b[None, None, None, :]
        + np.einsum("a,b,xy->abxy", SIGN, SIGN, e)
    ) / 4


def purified_preprocessed_entropy(rho, alice_obs, p):
    """H(A'|E) by an explicit purification |psi>_ABE, Alice's measurement and a classical flip."""
    lam, vec = np.linalg.eigh(rho)
    psi = (vec * np.sqrt(np.clip(lam, 0, None))[None, :]).reshape(2, 2, 4)  # [a, b, e]
    rho_e = np.einsum("abe,abf->ef", psi, psi.conj())
    sig = []
    for proj in projectors(alice_obs):
        phi = np.einsum("ij,jbe->ibe", proj, psi)
        sig.append(np.einsum("abe,abf->ef", phi, phi.conj()))
    cq = np.zeros((8, 8), dtype=complex)  # A' (x) E
    cq[:4, :4] = (1 - p) * sig[0] + p * sig[1]
    cq[4:, 4:] = (1 - p) * sig[1] + p * sig[0]
    return entropy_np(cq) - entropy_np(rho_e)


# --- one strategy ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("x", "p"), [(0, 0.0), (1, 0.0), (0, 0.13), (1, 0.37), (0, 0.5)])
def test_strategy_terms_match_an_explicit_purification(rng, x, p):
    params = attack._random_params(rng, 12)
    h, ma, mb, e = attack.attack_strategy_terms(params, x=x, preprocessing=p)
    rho, alpha, beta = attack.attack_strategy(params)
    for i in range(len(params)):
        assert np.trace(rho[i]) == pytest.approx(1.0, abs=1e-14)
        alice = [xz_observable(a) for a in alpha[i]]
        bob = [xz_observable(v) for v in beta[i]]
        assert h[i] == pytest.approx(purified_preprocessed_entropy(rho[i], alice[x], p), abs=1e-10)
        for k in range(2):
            assert ma[i, k] == pytest.approx(np.trace(rho[i] @ np.kron(alice[k], np.eye(2))))
            assert mb[i, k] == pytest.approx(np.trace(rho[i] @ np.kron(np.eye(2), bob[k])))
            for j in range(2):
                assert e[i, k, j] == pytest.approx(
                    np.trace(rho[i] @ np.kron(alice[k], bob[j])), abs=1e-13
                )


@pytest.mark.parametrize("c", [0.3, 0.8])
@pytest.mark.parametrize("p", [0.0, 0.1, 0.3, 0.45])
def test_bell_diagonal_strategy_attains_ho_et_al(c, p):
    h, ma, mb, e = attack.attack_strategy_terms(bell_diagonal(c), preprocessing=p)
    np.testing.assert_allclose(e, bell_diagonal_correlators(c), atol=1e-14)
    np.testing.assert_allclose(np.concatenate([ma, mb]), 0.0, atol=1e-14)
    assert float(h) == pytest.approx(ho_entropy(2 * np.sqrt(1 + c * c), p), abs=1e-12)


def test_deterministic_strategies_are_the_local_vertices():
    h, ma, mb, e = attack.attack_strategy_terms(attack._deterministic_params(), preprocessing=0.2)
    np.testing.assert_allclose(h, binary_entropy_np(0.2), atol=1e-12)  # Eve knows A, not the flip
    pts = {
        tuple(np.round(np.concatenate([a, b, c.ravel()]), 12))
        for a, b, c in zip(ma, mb, e, strict=True)
    }
    expect = {
        (a0, a1, b0, b1, a0 * b0, a0 * b1, a1 * b0, a1 * b1)
        for a0 in (1, -1) for a1 in (1, -1) for b0 in (1, -1) for b1 in (1, -1)
    }  # fmt: skip
    assert pts == {tuple(float(v) for v in q) for q in expect}


# --- the attack ---------------------------------------------------------------------------------


@pytest.mark.parametrize("p", [0.0, 0.25])
def test_local_target_gives_h_of_p(p):
    e = np.array([[0.5, 0.5], [0.5, -0.5]])  # CHSH = 2: on the local polytope's facet
    r = attack.attack_entropy(e, constraint="correlators", preprocessing=p, options=FAST)
    assert r.converged
    assert r.entropy == pytest.approx(float(binary_entropy_np(p)) if p else 0.0, abs=1e-9)
    assert r.residual < 1e-9


def test_target_beyond_tsirelson_is_nan_with_status():
    v = 1.05
    e = v / np.sqrt(2) * np.array([[1.0, 1.0], [1.0, -1.0]])
    r = attack.attack_entropy(e, constraint="correlators", options=FAST)
    assert np.isnan(r.entropy) and np.isnan(r.lower_estimate)
    assert r.status == "infeasible" and not r.converged


@pytest.mark.slow
@pytest.mark.parametrize("p", [0.0, 0.2, 0.45])
def test_bell_diagonal_target_reproduces_ho_et_al(p):
    c = 0.8
    r = attack.attack_entropy(
        bell_diagonal_correlators(c), constraint="correlators", preprocessing=p, options=FAST
    )
    ref = ho_entropy(2 * np.sqrt(1 + c * c), p)
    assert r.converged
    assert r.entropy == pytest.approx(ref, abs=1e-4)
    assert r.lower_estimate <= ref + 1e-6
    assert r.residual < 1e-9
    # the mixture's entropy, recomputed from its explicit strategies
    rho, alpha, _ = attack.attack_strategy(r.params)
    h = [
        purified_preprocessed_entropy(q, xz_observable(a[0]), p)
        for q, a in zip(rho, alpha, strict=True)
    ]
    assert float(np.dot(r.weights, h)) == pytest.approx(r.entropy, abs=1e-9)


@pytest.mark.slow
def test_white_noise_chsh_beats_pironio_and_full_equals_correlators():
    v = 0.9
    e = v / np.sqrt(2) * np.array([[1.0, 1.0], [1.0, -1.0]])
    r = attack.attack_entropy(e, constraint="correlators", options=FAST)
    f = attack.attack_entropy(behaviour_from_correlators(e), constraint="full", options=FAST)
    pir = pironio_entropy(2 * np.sqrt(2) * v)
    # all four correlators constrain Eve more than CHSH alone (Woodhead, Acin & Pironio 2021)
    assert r.entropy >= pir - 1e-6
    assert r.residual < 1e-9 and f.residual < 1e-9
    assert f.entropy == pytest.approx(r.entropy, abs=1e-4)


@pytest.mark.slow
def test_lossy_full_target_is_finite_and_below_lossless():
    eta = 0.95
    s = 1 / np.sqrt(2)
    phi = np.array([s, 0, 0, s])
    rho = np.outer(phi, phi)
    alice = [xz_observable(0.0), xz_observable(np.pi / 2)]
    bob = [xz_observable(np.pi / 4), xz_observable(-np.pi / 4)]

    def povm(obs):
        p0, p1 = projectors(obs)
        return [eta * p0 + (1 - eta) * np.eye(2), eta * p1]  # no-click -> outcome 0

    beh = np.zeros((2, 2, 2, 2))
    for x in range(2):
        for y in range(2):
            for a, ea in enumerate(povm(alice[x])):
                for b, eb in enumerate(povm(bob[y])):
                    beh[a, b, x, y] = np.real(np.trace(rho @ np.kron(ea, eb)))
    r = attack.attack_entropy(beh, constraint="full", options=FAST)
    assert np.isfinite(r.entropy) and 0 <= r.entropy < 1.0  # lossless Tsirelson point: 1
    assert r.residual < 1e-9
    np.testing.assert_allclose(r.behaviour(), beh, atol=1e-9)


# --- bad input ----------------------------------------------------------------------------------


def test_bad_input_names_the_argument():
    e = np.eye(2) * 0.5
    with pytest.raises(ValueError, match="constraint"):
        attack.attack_entropy(e, constraint="bell")
    with pytest.raises(ValueError, match="shape"):
        attack.attack_entropy(np.zeros(3), constraint="correlators")
    with pytest.raises(ValueError, match="non-finite"):
        attack.attack_entropy(np.full((2, 2), np.nan), constraint="correlators")
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        attack.attack_entropy(np.full((2, 2), 1.5), constraint="correlators")
    with pytest.raises(ValueError, match="preprocessing"):
        attack.attack_entropy(e, constraint="correlators", preprocessing=0.6)
    with pytest.raises(ValueError, match="x must be"):
        attack.attack_entropy(e, constraint="correlators", x=2)
    beh = behaviour_from_correlators(e)
    with pytest.raises(ValueError, match="shape"):
        attack.attack_entropy(e, constraint="full")
    with pytest.raises(ValueError, match="normalised"):
        attack.attack_entropy(beh * 1.1, constraint="full")
    bad = beh.copy()
    bad[0, 0, 0, 1] += 0.1
    bad[0, 1, 0, 1] -= 0.1  # Alice's marginal unchanged, Bob's p(b|y=1) now depends on x
    with pytest.raises(ValueError, match="signals"):
        attack.attack_entropy(bad, constraint="full")
    with pytest.raises(TypeError, match="unknown option"):
        attack.attack_entropy(e, constraint="correlators", options={"nope": 1})
