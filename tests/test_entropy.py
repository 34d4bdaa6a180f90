"""Entropies and rates at the quantum bound, against 50-digit mpmath and the paper's formulas."""

import jax
import jax.numpy as jnp
import mpmath as mp
import numpy as np
import pytest
from conftest import random_tuples
from helpers import entropy_np

import jaxbell as jb
from jaxbell.entropy import _entropy_2x2

PI = np.pi
mp.mp.dps = 50


def _h_mp(q):
    q = mp.mpf(q)
    if q == 0 or q == 1:
        return mp.mpf(0)
    return -(q * mp.log(q) + (1 - q) * mp.log1p(-q)) / mp.log(2)


def _rates_mp(theta, phi, omega):
    """(key_rate, epsilon, global_rate) of the strategy of eq. (6), in 50 digits, from the
    exact binary values of the float inputs."""
    t, p, w = mp.mpf(float(theta)), mp.mpf(float(phi)), mp.mpf(float(omega))
    hs = [_h_mp((1 + mp.sin(s)) / 2) for s in (p, w, t + p, t + w)]
    return 1 - min(hs), min(hs), 1 + max(hs)


def test_binary_entropy_values_and_gradients():
    q = np.array([0.0, 1e-300, 1e-12, 0.1, 0.5, 0.9, 1.0])
    ref = np.array([float(_h_mp(v)) for v in q])
    np.testing.assert_allclose(jb.binary_entropy(q), ref, rtol=1e-14, atol=0)
    g = jax.vmap(jax.grad(jb.binary_entropy))(jnp.asarray(q))
    assert np.all(np.isfinite(g))
    np.testing.assert_allclose(g[3], np.log2(0.9 / 0.1), rtol=1e-12)
    with pytest.raises(ValueError, match="q"):
        jb.binary_entropy(1.5)


@pytest.mark.parametrize("delta_exp", np.arange(-7.0, 0.01, 0.5))
def test_epsilon_relative_precision_near_phi_pi_over_2(delta_exp):
    # Prop. 3's construction: theta = pi/3, omega = 5 pi/6, phi -> pi/2; epsilon from 0.3 to 1e-13
    phi = PI / 2 - 10.0**delta_exp
    theta, omega = PI / 3, 5 * PI / 6
    _, eps_ref, _ = _rates_mp(theta, phi, omega)
    eps = float(jb.epsilon_at_quantum_bound(theta, phi, omega))
    assert abs(eps - float(eps_ref)) <= 1e-10 * float(eps_ref)


def test_epsilon_reaches_1e_minus_12_with_relative_precision():
    # find phi with epsilon ~ 1e-12 and check it to 1e-6 relative (the requirement)
    for delta in (2.5e-7, 1.2e-7, 5e-8):
        phi = PI / 2 - delta
        eps = float(jb.epsilon_at_quantum_bound(PI / 3, phi, 5 * PI / 6))
        ref = float(_rates_mp(PI / 3, phi, 5 * PI / 6)[1])
        assert ref < 2e-12
        assert abs(eps - ref) <= 1e-6 * ref


def test_rates_match_mpmath_on_random_tuples(rng):
    t, p, w = random_tuples(rng, 300)
    key, eps, glob = (
        np.asarray(f(t, p, w))
        for f in (
            jb.key_rate_at_quantum_bound,
            jb.epsilon_at_quantum_bound,
            jb.global_rate_at_quantum_bound,
        )
    )
    st = np.asarray(jb.is_self_testing(t, p, w))
    assert np.all(np.isnan(key[~st])) and np.all(np.isnan(eps[~st])) and np.all(np.isnan(glob[~st]))
    for i in np.flatnonzero(st):
        k, e, g = (float(v) for v in _rates_mp(t[i], p[i], w[i]))
        np.testing.assert_allclose([key[i], eps[i], glob[i]], [k, e, g], rtol=1e-12)


def test_known_answers_from_the_paper():
    # Prop. 2: theta = phi = pi/3, omega = pi: perfect randomness (2 bits), max CHSH 3 sqrt3 / 2
    assert float(jb.global_rate_at_quantum_bound(PI / 3, PI / 3, PI)) == pytest.approx(2, abs=1e-15)
    e = jb.strategy_correlators(PI / 3, PI / 3, PI)
    assert float(jb.max_chsh_value(e)) == pytest.approx(3 * np.sqrt(3) / 2, rel=1e-14)
    # Prop. 3: epsilon = h((1 + sin phi)/2) for theta = pi/3, omega = 5 pi/6 near phi = pi/2
    phi = 1.5
    assert float(jb.epsilon_at_quantum_bound(PI / 3, phi, 5 * PI / 6)) == pytest.approx(
        float(_h_mp((1 + mp.sin(phi)) / 2)), rel=1e-13
    )
    # CHSH member: key rate at Tsirelson, H(A|E) = 1 minus h((1 + 1/sqrt2)/2)
    assert float(jb.key_rate_at_quantum_bound(PI / 2, PI / 4, 3 * PI / 4)) == pytest.approx(
        1 - float(_h_mp((1 + 1 / mp.sqrt(2)) / 2)), rel=1e-13
    )


def test_key_rate_plus_epsilon_is_one(rng):
    t, p, w = random_tuples(rng, 1000)
    total = jb.key_rate_at_quantum_bound(t, p, w) + jb.epsilon_at_quantum_bound(t, p, w)
    st = np.asarray(jb.is_self_testing(t, p, w))
    np.testing.assert_allclose(np.asarray(total)[st], 1.0, rtol=1e-15)


def test_rate_gradients_finite_near_perfect_key():
    # h((1 + sin phi)/2) ~ d^2 log(1/d^2) as phi = pi/2 - d: smooth in phi, gradient -> 0
    for delta in (1e-3, 1e-6, 1e-9):
        g = jax.grad(lambda x: jb.epsilon_at_quantum_bound(x[0], x[1], x[2]))(
            jnp.array([PI / 3, PI / 2 - delta, 5 * PI / 6])
        )
        assert np.all(np.isfinite(g))
        # d eps/d phi = d/dphi h((1 + sin phi)/2) = (cos phi/2) log2((1 - sin phi)/(1 + sin phi)),
        # evaluated in mpmath
        p = mp.mpf(PI / 2 - delta)
        ref = mp.cos(p) / 2 * mp.log((1 - mp.sin(p)) / (1 + mp.sin(p)), 2)
        np.testing.assert_allclose(float(g[1]), float(ref), rtol=1e-6)
    g = jax.grad(lambda x: jb.global_rate_at_quantum_bound(PI / 3, x, PI))(PI / 3)
    assert np.isfinite(g)


def test_float32_precision_is_what_the_dtype_allows():
    args = [np.float32(v) for v in (PI / 3, PI / 2 - 1e-2, 5 * PI / 6)]
    eps32 = float(jb.epsilon_at_quantum_bound(*args))
    ref = float(_rates_mp(*args)[1])
    assert abs(eps32 - ref) <= 1e-5 * ref


# --- von Neumann / Shannon entropies with safe gradients ------------------------------------


def _random_state(rng, n, rank=None, complex_=True):
    rank = n if rank is None else rank
    m = rng.standard_normal((n, rank)) + (1j * rng.standard_normal((n, rank)) if complex_ else 0)
    rho = m @ m.conj().T
    return rho / np.trace(rho).real


def test_von_neumann_entropy_matches_numpy(rng):
    states = [_random_state(rng, n, r) for n in (2, 3, 4) for r in (1, 2, n)]
    for rho in states:
        assert float(jb.von_neumann_entropy(rho)) == pytest.approx(entropy_np(rho), abs=1e-12)
    assert float(jb.von_neumann_entropy(np.eye(4) / 4)) == pytest.approx(2.0, abs=1e-14)
    with pytest.raises(ValueError, match="square"):
        jb.von_neumann_entropy(np.ones((2, 3)))
    with pytest.raises(ValueError, match="Hermitian"):
        jb.von_neumann_entropy(np.array([[1.0, 1.0], [0.0, 0.0]]))


def test_von_neumann_gradient_matches_finite_differences_and_is_safe(rng):
    rho = _random_state(rng, 4, complex_=False)
    d = rng.standard_normal((4, 4))
    d = d + d.T
    g = jax.grad(lambda r: jb.von_neumann_entropy(r))(jnp.asarray(rho))
    fd = (entropy_np(rho + 1e-6 * d) - entropy_np(rho - 1e-6 * d)) / 2e-6
    assert float(jnp.sum(g * d)) == pytest.approx(fd, rel=1e-6)
    # degenerate (maximally mixed), rank-deficient (pure) and zero eigenvalues: finite, no NaN
    for r in (np.eye(4) / 4, np.diag([1.0, 0, 0, 0]), np.diag([0.5, 0.5, 0, 0])):
        g = jax.grad(lambda m: jb.von_neumann_entropy(m))(jnp.asarray(r))
        assert np.all(np.isfinite(np.asarray(g)))


def test_entropy_2x2_closed_form_matches_eigvalsh_and_has_safe_gradients(rng):
    for _ in range(50):
        m = rng.standard_normal((2, 2)) * rng.uniform(0, 2)
        r = m @ m.T
        val = float(_entropy_2x2(r[0, 0], r[0, 1], r[1, 1]))
        assert val == pytest.approx(entropy_np(r), abs=1e-13)
        # gradient against central finite differences of the NumPy reference
        g = jax.grad(lambda a, b, c: _entropy_2x2(a, b, c), argnums=(0, 1, 2))(
            r[0, 0], r[0, 1], r[1, 1]
        )
        for k, e in enumerate(([[1, 0], [0, 0]], [[0, 1], [1, 0]], [[0, 0], [0, 1]])):
            e = np.asarray(e, float) * 1e-7
            fd = (entropy_np(r + e) - entropy_np(r - e)) / 2e-7
            assert float(g[k]) == pytest.approx(fd, rel=1e-5, abs=1e-6)
    for blk in ((0.5, 0.0, 0.5), (1.0, 0.0, 0.0), (0.0, 0.0, 0.0), (0.25, 0.25, 0.25)):
        g = jax.grad(lambda a, b, c: _entropy_2x2(a, b, c), argnums=(0, 1, 2))(*map(float, blk))
        assert np.all(np.isfinite(np.asarray(g)))


def test_shannon_entropy():
    p = np.array([[0.5, 0.5, 0, 0], [0.25] * 4, [1, 0, 0, 0]])
    np.testing.assert_allclose(jb.shannon_entropy(p), [1.0, 2.0, 0.0], atol=1e-15)
    g = jax.grad(lambda q: jb.shannon_entropy(q))(jnp.asarray(p[0]))
    assert np.all(np.isfinite(np.asarray(g)))
    with pytest.raises(ValueError, match="p must lie"):
        jb.shannon_entropy([0.5, 1.5])
