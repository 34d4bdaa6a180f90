"""CHSH and the eight CHSH-type expressions, against explicit enumeration."""

import itertools

import numpy as np
import pytest
from helpers import deterministic_correlators

import jaxbell as jb


def _eight_chsh_explicit(e):
    """All 8 expressions sum_xy s_xy E_xy with exactly one (or three) minus signs, explicitly."""
    vals = []
    for signs in itertools.product((1, -1), repeat=4):
        if signs.count(-1) in (1, 3):
            vals.append(np.sum(np.array(signs).reshape(2, 2) * e, axis=(-2, -1)))
    assert len(vals) == 8
    return np.max(vals, axis=0)


def test_max_chsh_equals_explicit_enumeration(rng):
    e = rng.uniform(-1, 1, (5000, 2, 2))
    np.testing.assert_allclose(jb.max_chsh_value(e), _eight_chsh_explicit(e), atol=1e-14)


def test_local_set_has_max_chsh_at_most_2(rng):
    det = deterministic_correlators()
    np.testing.assert_allclose(np.max(jb.max_chsh_value(det)), 2.0)
    weights = rng.dirichlet(np.ones(16), 2000)
    mixtures = np.einsum("nk,kxy->nxy", weights, det)
    assert np.all(np.asarray(jb.max_chsh_value(mixtures)) <= 2 + 1e-12)


def test_tsirelson_point():
    e = jb.strategy_correlators(np.pi / 2, np.pi / 4, 3 * np.pi / 4)
    np.testing.assert_allclose(jb.max_chsh_value(e), 2 * np.sqrt(2), rtol=1e-14)
    np.testing.assert_allclose(abs(float(jb.chsh_value(e))), 2 * np.sqrt(2), rtol=1e-14)


def test_chsh_value_definition(rng):
    e = rng.uniform(-1, 1, (10, 2, 2))
    np.testing.assert_allclose(
        jb.chsh_value(e), e[:, 0, 0] + e[:, 0, 1] + e[:, 1, 0] - e[:, 1, 1], atol=1e-15
    )
    np.testing.assert_allclose(jb.chsh_type_values(e)[:, 3], jb.chsh_value(e), atol=1e-15)


def test_bad_correlators():
    with pytest.raises(ValueError, match=r"\(2, 2\)"):
        jb.max_chsh_value(np.zeros((3, 4)))
    with pytest.raises(ValueError, match="non-finite"):
        jb.chsh_value(np.full((2, 2), np.nan))
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        jb.chsh_value(np.full((2, 2), 1.5))
    with pytest.raises(TypeError, match="correlators"):
        jb.chsh_value(np.array([["a", "b"], ["c", "d"]]))
