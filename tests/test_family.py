"""eq. (2)-(5): coefficients, local bound, quantum bound, condition (4)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from conftest import random_tuples
from helpers import coefficients_np, local_bound_bruteforce

import jaxbell as jb

PI = np.pi


def test_coefficients_match_eq2(rng):
    t, p, w = random_tuples(rng, 1000)
    np.testing.assert_allclose(jb.bell_coefficients(t, p, w), coefficients_np(t, p, w), atol=1e-15)


def test_local_bound_equals_16_deterministic_strategies(rng):
    t, p, w = random_tuples(rng, 20_000)
    brute = local_bound_bruteforce(coefficients_np(t, p, w))
    np.testing.assert_allclose(jb.local_bound(t, p, w), brute, rtol=1e-13, atol=1e-15)


def _max_over_qubit_strategies(c, starts=48, steps=600, seed=0):
    """max over angles of sum_xy c_xy cos(alpha_x - beta_y) (Tsirelson: the quantum bound of a
    correlator expression with two settings), by Adam from many random starts, vmapped."""
    c = jnp.asarray(c)

    def value(angles, c):
        alpha, beta = angles[:2], angles[2:]
        return jnp.sum(c * jnp.cos(alpha[:, None] - beta[None, :]))

    opt = optax.adam(0.05)

    def solve(x0, c):
        def step(carry, _):
            x, s = carry
            g = jax.grad(lambda x: -value(x, c))(x)
            u, s = opt.update(g, s)
            return (optax.apply_updates(x, u), s), None

        (x, _), _ = jax.lax.scan(step, (x0, opt.init(x0)), None, length=steps)
        return value(x, c)

    x0 = jax.random.uniform(jax.random.key(seed), (c.shape[0], starts, 4), maxval=2 * jnp.pi)
    vals = jax.jit(jax.vmap(jax.vmap(solve, (0, None)), (0, 0)))(x0, c)
    return np.asarray(jnp.max(vals, axis=1))


def test_quantum_bound_equals_numerical_maximum_over_qubit_strategies(rng):
    t, p, w = random_tuples(rng, 40)
    c = coefficients_np(t, p, w)
    best = _max_over_qubit_strategies(c)
    st = np.asarray(jb.is_self_testing(t, p, w))
    assert 5 < st.sum() < 35  # both kinds present
    eta_q = np.abs(np.asarray(jb.quantum_bound(t, p, w)))
    eta_l = np.asarray(jb.local_bound(t, p, w))
    # where (4) holds the quantum maximum is |eta^Q| (Prop. 1(ii)); elsewhere it is eta^L
    np.testing.assert_allclose(best[st], eta_q[st], rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(best[~st], eta_l[~st], rtol=1e-7, atol=1e-9)


def test_prop1_iii_violation_iff_condition4(rng):
    t, p, w = random_tuples(rng, 50_000)
    margin = np.asarray(jb.self_testing_margin(t, p, w))
    keep = np.abs(margin) > 1e-6  # away from the boundary, where both sides are rounding
    st = np.asarray(jb.is_self_testing(t, p, w))[keep]
    violates = (np.abs(jb.quantum_bound(t, p, w)) > jb.local_bound(t, p, w))[keep]
    np.testing.assert_array_equal(st, np.asarray(violates))
    assert 0.2 < st.mean() < 0.8


def test_chsh_member_known_answer():
    c = np.asarray(jb.bell_coefficients(PI / 2, PI / 4, 3 * PI / 4))
    np.testing.assert_allclose(c / c[0, 0], [[1, 1], [1, -1]], atol=1e-14)
    ratio = abs(float(jb.quantum_bound(PI / 2, PI / 4, 3 * PI / 4))) / float(
        jb.local_bound(PI / 2, PI / 4, 3 * PI / 4)
    )
    np.testing.assert_allclose(ratio, np.sqrt(2), rtol=1e-14)  # Tsirelson / local = 2 sqrt2 / 2
    assert bool(jb.is_self_testing(PI / 2, PI / 4, 3 * PI / 4))


def test_boundary_counts_as_not_self_testing():
    # phi = pi/2 (the float nearest) lies on the boundary of (4) up to rounding
    assert not bool(jb.is_self_testing(PI / 3, PI / 2, 5 * PI / 6))
    assert bool(jb.is_self_testing(PI / 3, PI / 2 - 1e-9, 5 * PI / 6))


def test_broadcasting_and_dtypes():
    t = np.linspace(0, 1, 5)[:, None]
    p = np.linspace(0, 1, 3)[None, :]
    assert jb.bell_coefficients(t, p, 2.0).shape == (5, 3, 2, 2)
    assert jb.local_bound(t, p, 2.0).shape == (5, 3)
    assert jb.quantum_bound(np.float32(1), np.float32(2), np.float32(3)).dtype == jnp.float32
    assert jb.quantum_bound(1, 2, 3).dtype == jnp.float64  # ints promote to the default float


@pytest.mark.parametrize("fn", [jb.local_bound, jb.quantum_bound, jb.is_self_testing])
def test_bad_input_names_the_argument(fn):
    with pytest.raises(ValueError, match="phi"):
        fn(1.0, np.nan, 2.0)
    with pytest.raises(ValueError, match="omega"):
        fn(1.0, 2.0, [1.0, np.inf])
    with pytest.raises(TypeError, match="theta"):
        fn("pi", 1.0, 2.0)
    with pytest.raises(TypeError, match="theta"):
        fn(1 + 2j, 1.0, 2.0)
    with pytest.raises(ValueError, match="broadcast"):
        fn(np.ones(3), np.ones(4), 1.0)


def test_gradients_finite_and_match_finite_differences(rng):
    t, p, w = 0.7, 1.1, 2.9
    for fn in (jb.quantum_bound, jb.local_bound):
        g = jax.grad(lambda x, fn=fn: fn(x[0], x[1], x[2]))(jnp.array([t, p, w]))
        h = 1e-6
        fd = [
            (float(fn(*(np.array([t, p, w]) + h * e))) - float(fn(*(np.array([t, p, w]) - h * e))))
            / (2 * h)
            for e in np.eye(3)
        ]
        np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-9)


def test_functions_work_under_jit_and_vmap(rng):
    t, p, w = random_tuples(rng, 16)
    f = jax.jit(jax.vmap(jb.quantum_bound))
    np.testing.assert_allclose(f(t, p, w), jb.quantum_bound(t, p, w), rtol=1e-14)
