"""Entropies (bits) and the DI rates at the quantum bound.

At the quantum bound of a self-testing tuple, the strategy of eq. (6) is certified (Prop. 1(iv)),
Eve is decoupled and H(A|X=x, E) = 1 for both x. With E the correlators of eq. (6) the
Devetak-Winter rate (eq. 1) and the global randomness rate are then

    key_rate    = max_xy [1 - h((1 + E[x, y])/2)] = 1 - epsilon,
    epsilon     = min_xy h((1 + E[x, y])/2)      = min_xy H(A|X=x, Y=y, B),
    global_rate = max_xy [1 + h((1 + E[x, y])/2)] = max_xy H(AB|X=x, Y=y),

with h the binary entropy. Where condition (4) fails these are not certified and are NaN.

Precision: with E[x, y] = sin(s) the smaller outcome probability is computed as
cos(s)**2 / (2 (1 + |sin s|)) (see :func:`jaxbell.strategy.minority_probability`) and h with
``log1p``, so epsilon keeps full relative precision as it tends to 0 (as phi -> pi/2): relative
error below 1e-10 in float64 down to epsilon = 1e-13, against 50-digit mpmath
(tests/test_entropy.py).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxbell._checks import as_angles, check_in_range
from jaxbell.family import _cos_terms, _margin_from_cos, _self_testing_from_margin
from jaxbell.strategy import _angle_sums, _strategy_angles, minority_probability

__all__ = [
    "binary_entropy",
    "epsilon_at_quantum_bound",
    "global_rate_at_quantum_bound",
    "key_rate_at_quantum_bound",
    "pair_entropies_at_quantum_bound",
]

_LN2 = math.log(2.0)


def _h_small(q):
    """Binary entropy (bits) of q in [0, 1/2], with finite value and gradient at q = 0."""
    pos = q > 0
    safe = jnp.where(pos, q, 0.5)  # double-where: the unused branch must not produce NaN grads
    val = -(safe * jnp.log(safe) + (1.0 - safe) * jnp.log1p(-safe)) / _LN2
    return jnp.where(pos, val, jnp.zeros_like(val))


def _binary_entropy(q):
    return _h_small(jnp.minimum(q, 1.0 - q))


def h_of_sin(s):
    """h((1 + sin s)/2), bits, with relative precision kept as |sin s| -> 1 (see
    :func:`jaxbell.strategy.minority_probability`)."""
    return _h_small(minority_probability(s))


def _pair_entropies(theta, phi, omega):
    """h((1 + E[x, y])/2) for the strategy of eq. (6), shape (..., 2, 2)."""
    return h_of_sin(_angle_sums(*_strategy_angles(theta, phi, omega)))


def _self_testing(theta, phi, omega):
    return _self_testing_from_margin(_margin_from_cos(*_cos_terms(theta, phi, omega)))


def _nan_where_not(mask, value):
    return jnp.where(mask, value, jnp.full_like(value, jnp.nan))


@jax.jit
def _rates(theta, phi, omega):
    h = _pair_entropies(theta, phi, omega)
    st = _self_testing(theta, phi, omega)
    eps = jnp.min(h, axis=(-2, -1))
    return (
        _nan_where_not(st, 1.0 - eps),
        _nan_where_not(st, eps),
        _nan_where_not(st, 1.0 + jnp.max(h, axis=(-2, -1))),
    )


_binary_entropy_jit = jax.jit(_binary_entropy)
_pair_entropies_jit = jax.jit(_pair_entropies)


def binary_entropy(q: ArrayLike) -> jax.Array:
    """Binary entropy h(q) = -q log2 q - (1 - q) log2(1 - q), bits.

    Finite value and gradient on all of [0, 1] (h(0) = h(1) = 0, gradient 0 there by
    convention). For probabilities very close to 1 pass the small one, 1 - q, computed
    directly: h is symmetric and ``1 - q`` in floating point loses its relative precision.

    Parameters
    ----------
    q : array_like
        Probabilities in [0, 1].
    """
    check_in_range(q, "q", 0.0, 1.0)
    q = jnp.asarray(q)
    if not jnp.issubdtype(q.dtype, jnp.floating):
        q = q.astype(float)
    return _binary_entropy_jit(q)


def pair_entropies_at_quantum_bound(
    theta: ArrayLike, phi: ArrayLike, omega: ArrayLike
) -> jax.Array:
    """H(A|X=x, Y=y, B) = h((1 + E[x, y])/2) for the strategy of eq. (6), bits, shape (..., 2, 2).

    Defined for every tuple (it is a property of the strategy); whether it is certified
    depends on condition (4).
    """
    return _pair_entropies_jit(*as_angles(theta, phi, omega))


def key_rate_at_quantum_bound(theta: ArrayLike, phi: ArrayLike, omega: ArrayLike) -> jax.Array:
    """Devetak-Winter key rate (eq. 1) at <B> = eta^Q, bits per round, maximised over (x, y).

    ``max_xy [1 - h((1 + E[x, y])/2)]`` with E of eq. (6); NaN where condition (4) fails.
    For rates near 1 use :func:`epsilon_at_quantum_bound`, which keeps relative precision.

    References
    ----------
    Eq. (1) and Props. 3, 5 of Wooltorton, Brown & Colbeck, PRL 132, 210802 (2024);
    I. Devetak and A. Winter, Proc. R. Soc. A 461, 207 (2005).
    """
    return _rates(*as_angles(theta, phi, omega))[0]


def epsilon_at_quantum_bound(theta: ArrayLike, phi: ArrayLike, omega: ArrayLike) -> jax.Array:
    """The paper's epsilon = 1 - key_rate = min_xy H(A|X=x, Y=y, B), bits, computed directly.

    Keeps relative precision ~1e-13 in float64 down to epsilon = 1e-12 (phi -> pi/2), where
    ``1 - key_rate`` would have none. NaN where condition (4) fails.

    References
    ----------
    Props. 3 and 5 of Wooltorton, Brown & Colbeck, PRL 132, 210802 (2024).
    """
    return _rates(*as_angles(theta, phi, omega))[1]


def global_rate_at_quantum_bound(theta: ArrayLike, phi: ArrayLike, omega: ArrayLike) -> jax.Array:
    """Global randomness rate r^global at <B> = eta^Q, bits per round, in [1, 2].

    ``max_xy H(AB|X=x, Y=y) = max_xy [1 + h((1 + E[x, y])/2)]`` with E of eq. (6); 2 exactly
    when some correlator vanishes. NaN where condition (4) fails.

    References
    ----------
    Props. 2, 5 of Wooltorton, Brown & Colbeck, PRL 132, 210802 (2024).
    """
    return _rates(*as_angles(theta, phi, omega))[2]
