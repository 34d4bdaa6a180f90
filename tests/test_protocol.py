"""Protocols and devices: behaviours, their checks, error correction, analytic references.

Independent references: Born-rule probabilities from explicit two-qubit matrices with loss as a
POVM (written here in NumPy), Shannon entropies of the flipped joint distribution computed
directly, known values of the analytic bounds, and the qubit-attack machinery (Jordan's lemma,
jaxbell.rates.qubit) for the CHSH and asymmetric-CHSH members.
"""

import itertools

import jax
import numpy as np
import pytest
from conftest import random_tuples
from helpers import PSI, SX, SY, binary_entropy_np, pironio_entropy

import jaxbell as jb
from jaxbell.rates import protocol

PI = np.pi
CHSH = (PI / 2, PI / 4, 3 * PI / 4)  # S = 2 sqrt2 |<B>|


# --- references in NumPy -----------------------------------------------------------------------


def born_behaviour(theta, phi, omega, v, eta, aligned=False, x_key=0):
    """p[a, b, x, y] from rho_v = v |psi><psi| + (1 - v) 1/4 and lossy POVMs, one tuple.

    A detector clicks with probability eta; a no-click is outcome 0: M_0 = eta P_0 + (1 - eta) 1,
    M_1 = eta P_1, with P_0, P_1 the projectors of cos(a) X + sin(a) Y onto +1 and -1.
    """
    rho = v * np.outer(PSI, PSI.conj()) + (1 - v) * np.eye(4) / 4

    def povm(angle):
        obs = np.cos(angle) * SX + np.sin(angle) * SY
        p0, p1 = (np.eye(2) + obs) / 2, (np.eye(2) - obs) / 2
        return [eta * p0 + (1 - eta) * np.eye(2), eta * p1]

    alpha = [0.0, theta]
    beta = [phi, omega]
    if aligned:  # Bob's key-only input: the observable with <A_x B_2> = 1 on |psi>
        beta.append(PI / 2 - alpha[x_key])
    out = np.empty((2, 2, 2, len(beta)))
    for x, y in itertools.product(range(2), range(len(beta))):
        ma, mb = povm(alpha[x]), povm(beta[y])
        for a, b in itertools.product(range(2), repeat=2):
            out[a, b, x, y] = np.real(np.trace(rho @ np.kron(ma[a], mb[b])))
    return out


def ho_entropy_np(s, p):
    """Ho et al. (2020): 1 - h((1 + sqrt(S^2/4 - 1))/2) + h((1 + sqrt(1 - p(1-p)(8 - S^2)))/2)."""
    s = np.clip(np.asarray(s, dtype=float), 2.0, 2 * np.sqrt(2))
    inner = np.sqrt(np.clip(1 - p * (1 - p) * (8 - s**2), 0, 1))
    return pironio_entropy(s) + binary_entropy_np((1 + inner) / 2)


def shannon_np(p):
    p = np.asarray(p, dtype=float).ravel()
    p = p[p > 0]
    return float(-np.sum(p * np.log2(p)))


def conditional_entropy_np(joint, flip):
    """H(A'|B) = H(A'B) - H(B) of joint[a, b] with A flipped with probability ``flip``."""
    j = (1 - flip) * joint + flip * joint[::-1, :]
    return shannon_np(j) - shannon_np(j.sum(0))


# --- device_behaviour -------------------------------------------------------------------------


@pytest.mark.parametrize("aligned", [False, True])
def test_device_behaviour_is_the_born_rule_with_loss(rng, aligned):
    t, p, w = random_tuples(rng, 6)
    v = rng.uniform(0.5, 1.0, 6)
    eta = rng.uniform(0.3, 1.0, 6)
    for x_key in (0, 1):
        got = np.asarray(
            jb.device_behaviour(
                t, p, w, visibility=v, efficiency=eta, bob_key="aligned" if aligned else None,
                x=x_key,
            )
        )  # fmt: skip
        assert got.shape == (6, 2, 2, 2, 3 if aligned else 2)
        assert got.dtype == np.float64
        for i in range(6):
            ref = born_behaviour(t[i], p[i], w[i], v[i], eta[i], aligned, x_key)
            np.testing.assert_allclose(got[i], ref, atol=1e-14)


def test_device_behaviour_marginals_normalisation_no_signalling(rng):
    t, p, w = random_tuples(rng, 8)
    eta = rng.uniform(0.2, 1.0, 8)
    got = np.asarray(jb.device_behaviour(t, p, w, visibility=0.8, efficiency=eta, bob_key=2))
    np.testing.assert_allclose(got.sum(axis=(1, 2)), 1.0, atol=1e-15)
    alice, bob = (np.asarray(m) for m in jb.behaviour_marginals(got))
    # each party's no-click goes to 0: p(0) = (1 - eta) + eta / 2 (uniform marginals of rho_v)
    np.testing.assert_allclose(alice[:, 0, :], (1 - eta[:, None] / 2) * np.ones((8, 2)), atol=1e-15)
    np.testing.assert_allclose(bob[:, 0, :], (1 - eta[:, None] / 2) * np.ones((8, 3)), atol=1e-15)
    # no-signalling: Alice's marginal is the same for every y, Bob's for every x
    a_by_y = got.sum(axis=2)  # (n, a, x, y)
    b_by_x = got.sum(axis=1)  # (n, b, x, y)
    np.testing.assert_allclose(a_by_y, np.broadcast_to(a_by_y[..., :1], a_by_y.shape), atol=1e-15)
    np.testing.assert_allclose(
        b_by_x, np.broadcast_to(b_by_x[..., :1, :], b_by_x.shape), atol=1e-15
    )
    protocol.check_behaviour(got)  # and the validator agrees


def test_device_behaviour_without_noise_or_loss_is_eq6(rng):
    t, p, w = random_tuples(rng, 16)
    beh = jb.device_behaviour(t, p, w)
    np.testing.assert_allclose(
        np.asarray(jb.behaviour_correlators(beh)), np.asarray(jb.strategy_correlators(t, p, w)),
        atol=1e-15,
    )  # fmt: skip
    # white noise alone: the correlators of noisy_correlators, uniform marginals
    beh = jb.device_behaviour(t, p, w, visibility=0.7)
    ref = jb.noisy_correlators(jb.strategy_correlators(t, p, w), 0.7)
    np.testing.assert_allclose(np.asarray(jb.behaviour_correlators(beh)), ref, atol=1e-15)
    np.testing.assert_allclose(np.asarray(jb.behaviour_marginals(beh)[0]), 0.5, atol=1e-15)


def test_device_behaviour_keeps_relative_precision_of_tiny_probabilities():
    # phi -> pi/2: p(a != b | 00) = (1 - sin phi)/4 = cos(phi)^2 / (4 (1 + sin phi))
    d = 1e-7
    got = float(jb.device_behaviour(0.3, PI / 2 - d, 2.0)[0, 1, 0, 0])
    ref = np.sin(d) ** 2 / (4 * (1 + np.cos(d)))
    assert got == pytest.approx(ref, rel=1e-9)


def test_device_behaviour_jit_vmap_grad():
    f = jax.jit(lambda v, e: jb.device_behaviour(*CHSH, visibility=v, efficiency=e)[1, 1, 0, 0])
    # p(11|00) = eta^2 (1 + v E00) / 4: derivatives v -> eta^2 E / 4, eta -> eta (1 + v E) / 2
    e00 = np.sin(PI / 4)
    gv, ge = jax.grad(f, argnums=(0, 1))(0.9, 0.8)
    assert float(gv) == pytest.approx(0.64 * e00 / 4, rel=1e-12)
    assert float(ge) == pytest.approx(0.8 * (1 + 0.9 * e00) / 2, rel=1e-12)
    vs = np.linspace(0.5, 1.0, 5)
    batched = jax.vmap(lambda v: jb.device_behaviour(*CHSH, visibility=v))(vs)
    np.testing.assert_allclose(batched, jb.device_behaviour(*CHSH, visibility=vs), atol=1e-15)


def test_device_behaviour_second_call_does_not_recompile(rng):
    kernel = protocol._device_behaviour
    t, p, w = random_tuples(rng, 4)
    jb.device_behaviour(t, p, w, visibility=0.9, efficiency=0.7, bob_key="aligned")
    before = kernel._cache_size()
    jb.device_behaviour(t + 0.1, p, w, visibility=0.8, efficiency=0.6, bob_key=2, x=1)
    assert kernel._cache_size() == before


def test_device_behaviour_bad_input():
    with pytest.raises(ValueError, match="efficiency"):
        jb.device_behaviour(*CHSH, efficiency=0.0)
    with pytest.raises(ValueError, match="efficiency"):
        jb.device_behaviour(*CHSH, efficiency=1.2)
    with pytest.raises(ValueError, match="visibility"):
        jb.device_behaviour(*CHSH, visibility=-0.1)
    with pytest.raises(ValueError, match="bob_key"):
        jb.device_behaviour(*CHSH, bob_key="parallel")
    with pytest.raises(ValueError, match="bob_key"):
        jb.device_behaviour(*CHSH, bob_key=3)
    with pytest.raises(ValueError, match="x must be"):
        jb.device_behaviour(*CHSH, bob_key=2, x=2)


# --- check_behaviour ----------------------------------------------------------------------------


def test_check_behaviour_accepts_behaviours_and_names_the_bad_entry():
    good = born_behaviour(*CHSH, 0.9, 0.8, aligned=True)
    np.testing.assert_array_equal(protocol.check_behaviour(good), good)
    protocol.check_behaviour(good[..., :2])
    bad = good.copy()
    bad[:, :, 1, 0] *= 0.93
    with pytest.raises(ValueError, match=r"probabilities\[:, :, 1, 0\] sums to 0\.93"):
        jb.check_behaviour(bad)
    with pytest.raises(ValueError, match=r"data\[1, :, :, 1, 0\] sums to 0\.93"):
        jb.check_behaviour(np.stack([good, bad]), "data")
    neg = good.copy()
    neg[0, 1, 0, 2] -= 0.05 + neg[0, 1, 0, 2]
    neg[0, 0, 0, 2] += 0.05 + good[0, 1, 0, 2]
    with pytest.raises(ValueError, match=r"probabilities\[0, 1, 0, 2\] is -0\.05"):
        jb.check_behaviour(neg)
    nan = good.copy()
    nan[1, 1, 1, 1] = np.nan
    with pytest.raises(ValueError, match=r"probabilities\[1, 1, 1, 1\] is nan"):
        jb.check_behaviour(nan)
    with pytest.raises(ValueError, match=r"shape \(2, 2, 2, 2\) or \(2, 2, 2, 3\)"):
        jb.check_behaviour(np.full((2, 2, 3, 2), 0.25))
    with pytest.raises(TypeError, match="probabilities"):
        jb.check_behaviour(np.array([["a"]]))


def test_check_behaviour_rejects_signalling_both_ways():
    beh = born_behaviour(*CHSH, 1.0, 1.0)
    # PR-box-like change at (x, y) = (1, 1) that moves Alice's marginal there only
    sig = beh.copy()
    sig[0, 0, 1, 1] += 0.01
    sig[1, 0, 1, 1] -= 0.01  # Bob's p(b=0|y=1) unchanged, Alice's p(a=0|x=1) changes with y
    with pytest.raises(ValueError, match=r"Alice's marginal p\(a=0\|x=1\).*changes with y"):
        jb.check_behaviour(sig)
    sig = beh.copy()
    sig[0, 0, 0, 1] += 0.01
    sig[0, 1, 0, 1] -= 0.01  # Alice's p(a=0|x=0) unchanged, Bob's p(b=0|y=1) changes with x
    with pytest.raises(ValueError, match=r"Bob's marginal p\(b=0\|y=1\).*changes with x"):
        jb.check_behaviour(sig)
    # within a stated tolerance (measured frequencies) it passes
    jb.check_behaviour(sig, atol=0.02)


# --- error correction ----------------------------------------------------------------------------


def test_error_correction_cost_is_the_conditional_entropy_of_the_flipped_table(rng):
    t, p, w = random_tuples(rng, 5)
    eta = rng.uniform(0.4, 1.0, 5)
    beh = np.asarray(jb.device_behaviour(t, p, w, visibility=0.85, efficiency=eta, bob_key=2))
    for flip in (0.0, 0.1, 0.37, 0.5):
        for x, y in itertools.product(range(2), range(3)):
            got = np.asarray(jb.error_correction_cost(beh, x, y, preprocessing=flip))
            ref = [conditional_entropy_np(beh[i, :, :, x, y], flip) for i in range(5)]
            np.testing.assert_allclose(got, ref, atol=1e-13)
    # the uniform-marginal case is h((1 + v E)/2), and with flips h(Q') of the flipped error rate
    beh = jb.device_behaviour(*CHSH, visibility=0.9, bob_key="aligned")
    q = (1 - 0.9) / 2
    assert float(jb.error_correction_cost(beh, 0, 2)) == pytest.approx(binary_entropy_np(q))
    qf = 0.8 * q + 0.2 * (1 - q)
    got = float(jb.error_correction_cost(beh, 0, 2, preprocessing=0.2))
    assert got == pytest.approx(binary_entropy_np(qf), rel=1e-13)


def test_error_correction_cost_bad_input():
    beh = jb.device_behaviour(*CHSH)
    with pytest.raises(ValueError, match="preprocessing"):
        jb.error_correction_cost(beh, 0, 0, preprocessing=0.6)
    with pytest.raises(ValueError, match="y must be"):
        jb.error_correction_cost(beh, 0, 2)
    with pytest.raises(ValueError, match="probabilities must end in shape"):
        jb.error_correction_cost(np.zeros((2, 2, 2)), 0, 0)


# --- analytic references --------------------------------------------------------------------


def test_chsh_entropy_known_values():
    s = np.array([0.0, 1.5, 2.0, 2.4, 2.7, 2 * np.sqrt(2)])
    np.testing.assert_allclose(np.asarray(jb.chsh_entropy(s)), pironio_entropy(s), atol=1e-15)
    assert float(jb.chsh_entropy(2 * np.sqrt(2))) == pytest.approx(1.0, abs=1e-15)
    assert float(jb.chsh_entropy(2.0)) == 0.0
    for p in (0.0, 0.05, 0.2, 0.45):
        # |S| = 2: Eve knows A, not Alice's flips: h(p); Tsirelson: 1; p = 0: Pironio et al.
        assert float(jb.chsh_entropy(2.0, preprocessing=p)) == pytest.approx(
            binary_entropy_np(p), abs=1e-14
        )
        assert float(jb.chsh_entropy(2 * np.sqrt(2), preprocessing=p)) == pytest.approx(1.0)
    assert float(jb.chsh_entropy(2.5, preprocessing=0.5)) == pytest.approx(1.0, abs=1e-15)
    # flips never lower the entropy, and it rises with p towards 1 at p = 1/2
    h = np.asarray(jb.chsh_entropy(2.3, preprocessing=np.linspace(0, 0.5, 11)))
    assert np.all(np.diff(h) > 0)
    # rate: Pironio et al.'s 1 - h(...) - h(Q) for the depolarised singlet, S = 2 sqrt2 (1 - 2Q)
    qber = np.array([0.0, 0.03, 0.07])
    got = np.asarray(jb.chsh_key_rate(2 * np.sqrt(2) * (1 - 2 * qber), qber))
    ref = pironio_entropy(2 * np.sqrt(2) * (1 - 2 * qber)) - binary_entropy_np(qber)
    np.testing.assert_allclose(got, ref, atol=1e-15)
    # the known threshold of that protocol: Q = 7.1 %
    assert float(jb.chsh_key_rate(2 * np.sqrt(2) * (1 - 2 * 0.0710), 0.0710)) > 0
    assert float(jb.chsh_key_rate(2 * np.sqrt(2) * (1 - 2 * 0.0716), 0.0716)) < 0


def test_asymmetric_chsh_entropy_reduces_to_chsh_and_has_its_end_points():
    s = np.linspace(2.0, 2 * np.sqrt(2), 9)
    for p in (0.0, 0.1, 0.3):
        np.testing.assert_allclose(
            np.asarray(jb.asymmetric_chsh_entropy(1.0, s, preprocessing=p)),
            np.asarray(jb.chsh_entropy(s, preprocessing=p)),
            atol=1e-15,
        )
    for alpha in (1.3, 2.0):
        top = 2 * np.sqrt(1 + alpha**2)
        assert float(jb.asymmetric_chsh_entropy(alpha, top)) == pytest.approx(1.0, abs=1e-15)
        assert float(jb.asymmetric_chsh_entropy(alpha, 2 * alpha)) == pytest.approx(0.0, abs=1e-15)
        assert float(jb.asymmetric_chsh_entropy(alpha, 2 * alpha, preprocessing=0.2)) == (
            pytest.approx(binary_entropy_np(0.2), abs=1e-14)
        )
    assert np.isnan(float(jb.asymmetric_chsh_entropy(0.5, 2.1)))


def test_analytic_references_bad_input():
    with pytest.raises(ValueError, match="preprocessing"):
        jb.chsh_entropy(2.5, preprocessing=-0.1)
    with pytest.raises(ValueError, match="chsh"):
        jb.chsh_entropy(np.nan)
    with pytest.raises(ValueError, match="qber"):
        jb.chsh_key_rate(2.5, 1.5)


# --- noisy preprocessing in the qubit attack ------------------------------------------------


def flipped_entropy_by_purification(rho, alpha_x, flip):
    """H(A'|E) of A' = A_x's outcome flipped with probability ``flip``, Eve purifying rho.

    Explicit: |Psi> = sum_k sqrt(lam_k) |v_k>|k>_E, Eve's states after each outcome, mixed by
    the flips, and S(A'E) - S(E) of the classical-quantum state (NumPy only).
    """
    lam, vec = np.linalg.eigh(rho)
    psi = (vec * np.sqrt(np.clip(lam, 0, None))[None, :]).reshape(2, 2, 4)  # [a, b, e]
    obs = np.cos(alpha_x) * np.array([[1, 0], [0, -1]]) + np.sin(alpha_x) * np.array(
        [[0, 1], [1, 0]]
    )
    proj = [(np.eye(2) + obs) / 2, (np.eye(2) - obs) / 2]
    sig = []
    for pa in proj:
        phi = np.einsum("ij,jbe->ibe", pa, psi)
        sig.append(np.einsum("abe,abf->ef", phi, phi.conj()))
    tau = [(1 - flip) * sig[0] + flip * sig[1], (1 - flip) * sig[1] + flip * sig[0]]
    joint = np.zeros((8, 8), dtype=complex)
    joint[:4, :4], joint[4:, 4:] = tau

    def ent(m):
        w = np.linalg.eigvalsh(m)
        w = w[w > 1e-300]
        return float(-np.sum(w * np.log2(w)))

    return ent(joint) - ent(sig[0] + sig[1])


def test_flipped_key_entropy_matches_an_explicit_purification(rng):
    from jaxbell import qubit

    c = np.asarray(jb.bell_coefficients(*CHSH))
    params = qubit._random_params(rng, (6,))
    rho, alpha, _ = (np.asarray(a) for a in qubit.strategy_from_params(params))
    for flip in (0.0, 0.07, 0.3, 0.5):
        for x in (0, 1):
            h, _, _ = qubit.strategy_terms(params, c, kind="key", x=x, preprocessing=flip)
            ref = [flipped_entropy_by_purification(rho[i], alpha[i, x], flip) for i in range(6)]
            np.testing.assert_allclose(np.asarray(h), ref, atol=1e-10)
    # no flips: the new formula is the closed-form entropy of the unflipped key
    h0, _, _ = qubit.strategy_terms(params, c, kind="key", x=1)
    h_flip0 = jax.vmap(lambda q: qubit._terms(q, c, "key", 1, 0, 0.0)[0])(params)
    np.testing.assert_allclose(np.asarray(h_flip0), np.asarray(h0), atol=1e-12)
    with pytest.raises(ValueError, match="preprocessing"):
        qubit.strategy_terms(params, c, kind="global", preprocessing=0.1)
    with pytest.raises(ValueError, match="preprocessing"):
        qubit.strategy_terms(params, c, preprocessing=0.7)


def test_flipped_key_entropy_has_finite_gradients_at_special_points():
    from jaxbell import qubit

    c = np.asarray(jb.bell_coefficients(*CHSH))
    pts = [qubit._mixed_params(), qubit._deterministic_params(c), qubit._anchor_params(*CHSH)]
    for flip in (0.0, 0.2, 0.5):
        for par in pts:
            g = jax.jit(jax.grad(lambda q, f=flip: qubit._terms(q, c, "key", 0, 0, f)[0]))(par)
            assert np.all(np.isfinite(np.asarray(g)))
        # Eve knows A at the mixed and deterministic points: h(p); eq. (6): 1
        h = [float(qubit.strategy_terms(q, c, preprocessing=flip)[0]) for q in pts]
        np.testing.assert_allclose(h, [binary_entropy_np(flip)] * 2 + [1.0], atol=1e-12)


def _check_ho(p):
    from jaxbell import qubit

    env = qubit.qubit_envelope(*CHSH, kind="key", x=0, preprocessing=p)
    eta = np.linspace(1 / np.sqrt(2), 1.0, 201)  # S from 2 to 2 sqrt 2
    ref = ho_entropy_np(2 * np.sqrt(2) * eta, p)
    got = env.entropy(eta)
    assert np.max(np.abs(got - ref)) < 1e-4
    assert np.min(got - ref) > -1e-9  # explicit strategies: never below the tight bound
    assert np.all(env.status(eta) == 0)
    # below the local bound Eve knows A, not the flips: h(p)
    np.testing.assert_allclose(env.entropy([0.0, 0.5]), binary_entropy_np(p), atol=1e-12)


def test_qubit_attack_with_preprocessing_reproduces_ho_et_al():
    _check_ho(0.2)


@pytest.mark.slow
@pytest.mark.parametrize("p", [0.02, 0.1, 0.3, 0.45])
def test_qubit_attack_with_preprocessing_reproduces_ho_et_al_over_p(p):
    _check_ho(p)


@pytest.mark.parametrize("p", [0.49, pytest.param(0.499, marks=pytest.mark.slow)])
def test_qubit_attack_near_one_half_is_accurate_in_units_of_the_range(p):
    # H(A'|E) lies in [h(p), 1]; near p = 1/2 the key rates are ~1e-5 bit, so the envelope is
    # refined to tol * (1 - h(p)) bits (2.9e-8 at p = 0.49; with tol in bits it was 9.4e-6
    # above Ho et al. at S = 2.359, more than the rate there)
    from jaxbell import qubit

    env = qubit.qubit_envelope(*CHSH, kind="key", x=0, preprocessing=p)
    scale = 1.0 - binary_entropy_np(p)
    assert env.tolerance == pytest.approx(1e-4 * scale, rel=1e-9)
    eta = np.linspace(1 / np.sqrt(2), 1.0, 201)
    err = env.entropy(eta) - ho_entropy_np(2 * np.sqrt(2) * eta, p)
    assert np.all(env.status(eta) == 0)
    assert np.max(np.abs(err)) <= env.tolerance  # measured 2.3e-5 * (1 - h(p))
    assert np.min(err) > -1e-12  # explicit strategies: never below the tight bound


# --- noisy_key_rate with Bob's key input and preprocessing -------------------------------------


def test_noisy_key_rate_aligned_reproduces_pironio_and_ho():
    v = np.linspace(0.86, 1.0, 8)
    s, q = 2 * np.sqrt(2) * v, (1 - v) / 2  # CHSH value and bit error rate of the aligned input
    got = np.asarray(jb.noisy_key_rate(*CHSH, v, x=0, bob_key="aligned"))
    np.testing.assert_allclose(got, pironio_entropy(s) - binary_entropy_np(q), atol=1e-4)
    p = 0.2
    got = np.asarray(jb.noisy_key_rate(*CHSH, v, x=0, bob_key=2, preprocessing=p))
    qf = (1 - p) * q + p * (1 - q)
    np.testing.assert_allclose(got, ho_entropy_np(s, p) - binary_entropy_np(qf), atol=1e-4)
    # the paper's protocol (key from a test input) pays h((1 + v sin(pi/4))/2) instead
    paper = np.asarray(jb.noisy_key_rate(*CHSH, v, x=0, bob_key=0))
    ref = pironio_entropy(s) - binary_entropy_np((1 - v * np.sin(PI / 4)) / 2)
    np.testing.assert_allclose(paper, ref, atol=1e-4)


def test_noisy_key_rate_protocol_options_bad_input():
    with pytest.raises(ValueError, match="preprocessing"):
        jb.di_entropy(*CHSH, 0.9, preprocessing=0.7, method="bff")
    with pytest.raises(ValueError, match="preprocessing"):
        jb.noisy_key_rate(*CHSH, 0.95, preprocessing=0.6)
    with pytest.raises(ValueError, match="preprocessing"):  # "optimal" is a valid value now
        jb.noisy_key_rate(*CHSH, 0.95, preprocessing="best")
    with pytest.raises(ValueError, match="bob_key"):
        jb.noisy_key_rate(*CHSH, 0.95, bob_key="best")
    with pytest.raises(ValueError, match="preprocessing"):
        jb.di_entropy(*CHSH, 0.9, kind="global", preprocessing=0.1)


@pytest.mark.slow
@pytest.mark.parametrize("p", [0.0, 0.15])
def test_qubit_attack_reproduces_woodhead_acin_pironio(p):
    # the alpha-CHSH members (pi/2, phi, pi - phi): c = -sin(phi) cos(phi)^2 [[a, a], [1, -1]]
    from jaxbell import qubit

    phi = 1.0
    alpha, scale = np.tan(phi), np.sin(phi) * np.cos(phi) ** 2
    tpl = (PI / 2, phi, PI - phi)
    c = np.asarray(jb.bell_coefficients(*tpl))
    np.testing.assert_allclose(c, -scale * np.array([[alpha, alpha], [1, -1]]), atol=1e-15)
    env = qubit.qubit_envelope(*tpl, kind="key", x=0, preprocessing=p)
    eta = np.linspace(2 * alpha * scale, 2 * np.sqrt(1 + alpha**2) * scale, 101)
    ref = np.asarray(jb.asymmetric_chsh_entropy(alpha, eta / scale, preprocessing=p))
    got = env.entropy(eta)
    assert np.max(np.abs(got - ref)) < 1e-4
    assert np.min(got - ref) > -1e-9
