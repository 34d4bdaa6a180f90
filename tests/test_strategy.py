"""eq. (6): the strategy's correlators, checked against explicit matrices."""

import numpy as np
import pytest
from conftest import random_tuples
from helpers import coefficients_np, correlators_from_matrices

import jaxbell as jb


def test_correlators_equal_trace_of_the_matrices_of_eq6(rng):
    t, p, w = random_tuples(rng, 200)
    got = np.asarray(jb.strategy_correlators(t, p, w))
    ref = np.array([correlators_from_matrices(*args) for args in zip(t, p, w, strict=True)])
    np.testing.assert_allclose(got, ref, atol=1e-14)


def test_strategy_reaches_eta_q(rng):
    # sum_xy c_xy E_xy of eq. (6) equals eq. (5) (Prop. 1(iv)); an identity for every tuple
    t, p, w = random_tuples(rng, 10_000)
    value = np.sum(
        coefficients_np(t, p, w) * np.asarray(jb.strategy_correlators(t, p, w)), (-2, -1)
    )
    np.testing.assert_allclose(value, jb.quantum_bound(t, p, w), atol=1e-14)


def test_xy_plane_correlators_match_matrices(rng):
    alpha, beta = rng.uniform(0, 2 * np.pi, 2), rng.uniform(0, 2 * np.pi, 2)
    # A_0 at angle alpha_0 != 0: rotate the reference by shifting all angles
    ref = correlators_from_matrices(alpha[1] - alpha[0], beta[0] + alpha[0], beta[1] + alpha[0])
    np.testing.assert_allclose(jb.xy_plane_correlators(alpha, beta), ref, atol=1e-14)
    with pytest.raises(ValueError, match="length-2"):
        jb.xy_plane_correlators(np.zeros(3), np.zeros(2))


def test_white_noise_scales_correlators():
    e = jb.strategy_correlators(0.3, 1.2, 2.0)
    np.testing.assert_allclose(jb.noisy_correlators(e, 0.9), 0.9 * np.asarray(e))
    with pytest.raises(ValueError, match="visibility"):
        jb.noisy_correlators(e, 1.2)
    with pytest.raises(ValueError, match="visibility"):
        jb.noisy_correlators(e, np.nan)
