"""Entropies (bits) and the DI rates at the quantum bound.

Also the numerically safe Shannon and von Neumann entropies used below the quantum bound
(:func:`shannon_entropy`, :func:`von_neumann_entropy`, and the closed-form 2 x 2 block entropy
of :mod:`jaxbell.qubit`): exact values, finite first derivatives at zero and degenerate
eigenvalues.

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
import numpy as np
from jax.typing import ArrayLike

from jaxbell._checks import as_angles, check_in_range
from jaxbell.family import _cos_terms, _margin_from_cos, _self_testing_from_margin
from jaxbell.strategy import _angle_sums, _strategy_angles, minority_probability

__all__ = [
    "binary_entropy",
    "shannon_entropy",
    "von_neumann_entropy",
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


# --- Shannon and von Neumann entropies with safe gradients (rates below the quantum bound) -----
#
# The entropies of quantum states enter the DI rates below the quantum bound (jaxbell.qubit),
# where they are minimised by gradient descent. Their exact gradients diverge where an
# eigenvalue or probability vanishes, and differentiating through an eigendecomposition gives
# NaN where eigenvalues are degenerate. Both are avoided here: values are exact (0 log 0 = 0),
# and the derivative uses the Frechet derivative -tr[(log rho + 1) d rho] of the spectral
# function, with log evaluated on eigenvalues floored at the dtype's smallest normal number.


def _xlogx(p):
    """p log p (nats) with 0 log 0 = 0; finite gradient (0) at p = 0 (double-where)."""
    pos = p > 0
    safe = jnp.where(pos, p, 1.0)
    return jnp.where(pos, safe * jnp.log(safe), jnp.zeros_like(safe))


def _shannon(p, axis=-1):
    """Shannon entropy (bits) of nonnegative weights ``p`` along ``axis`` (not renormalised)."""
    return -jnp.sum(_xlogx(p), axis=axis) / _LN2


def _log_floor(dtype):
    return float(jnp.finfo(dtype).tiny)


@jax.custom_jvp
def _von_neumann(rho):
    lam = jnp.maximum(jnp.linalg.eigvalsh(rho), 0.0)
    return -jnp.sum(_xlogx(lam), axis=-1) / _LN2


@_von_neumann.defjvp
def _von_neumann_jvp(primals, tangents):
    (rho,), (drho,) = primals, tangents
    lam, u = jnp.linalg.eigh(rho)
    lam = jnp.maximum(lam, 0.0)
    value = -jnp.sum(_xlogx(lam), axis=-1) / _LN2
    # dS = -tr[(log rho + 1) drho] / ln 2 = -sum_i (log lam_i + 1) <u_i|drho|u_i> / ln 2.
    # Basis-independent on degenerate eigenspaces (the weights are equal there).
    weights = jnp.log(jnp.maximum(lam, _log_floor(lam.dtype))) + 1.0
    diag = jnp.real(jnp.einsum("...ji,...jk,...ki->...i", jnp.conj(u), drho, u))
    return value, -jnp.sum(weights * diag, axis=-1) / _LN2


@jax.custom_jvp
def _entropy_2x2(a, b, c):
    """Entropy -sum lam log2 lam of the real symmetric PSD block [[a, b], [b, c]] (not normalised).

    Closed form (no eigensolver): lam_+ = (a + c + d)/2, d = sqrt((a - c)^2 + 4 b^2), and
    lam_- = det / lam_+ (no cancellation for nearly pure blocks). Finite gradient everywhere,
    also at d = 0 (degenerate) and lam = 0 (rank-deficient or zero blocks).
    """
    lp, lm = _eig_2x2(a, b, c)
    return -(_xlogx(lp) + _xlogx(lm)) / _LN2


def _eig_2x2(a, b, c):
    t = a + c
    d = jnp.sqrt((a - c) ** 2 + 4.0 * b * b)
    lp = jnp.maximum(0.5 * (t + d), 0.0)
    pos = lp > 0
    lm = jnp.where(pos, (a * c - b * b) / jnp.where(pos, lp, 1.0), 0.0)
    return lp, jnp.clip(lm, 0.0, lp)


@_entropy_2x2.defjvp
def _entropy_2x2_jvp(primals, tangents):
    a, b, c = primals
    da, db, dc = tangents
    lp, lm = _eig_2x2(a, b, c)
    value = -(_xlogx(lp) + _xlogx(lm)) / _LN2
    # For a 2x2 block, log(rho) = alpha 1 + beta rho with beta the divided difference
    # (log lp - log lm)/(lp - lm) (-> 1/lp at degeneracy) and alpha = log lp - beta lp; then
    # dS = -[(alpha + 1) tr(drho) + beta tr(rho drho)] / ln 2.
    floor = _log_floor(lp.dtype)
    lp_s = jnp.maximum(lp, floor)
    lm_s = jnp.maximum(lm, floor)
    r = jnp.clip((lp_s - lm_s) / lp_s, 0.0, 1.0 - float(jnp.finfo(lp.dtype).eps))
    small = r < 1e-4
    r_s = jnp.where(small, 0.5, r)
    beta = jnp.where(small, (1.0 + r / 2.0 + r * r / 3.0) / lp_s, -jnp.log1p(-r_s) / (r_s * lp_s))
    alpha = jnp.log(lp_s) - beta * lp_s
    tr_d = da + dc
    tr_rho_d = a * da + 2.0 * b * db + c * dc
    return value, -((alpha + 1.0) * tr_d + beta * tr_rho_d) / _LN2


_shannon_jit = jax.jit(_shannon, static_argnames="axis")
_von_neumann_jit = jax.jit(_von_neumann)


def shannon_entropy(p: ArrayLike, axis: int = -1) -> jax.Array:
    """Shannon entropy -sum_i p_i log2 p_i of a probability vector, bits.

    Finite value and gradient for zero probabilities (0 log 0 = 0; gradient 0 there by
    convention). The weights are not renormalised.

    Parameters
    ----------
    p : array_like
        Probabilities in [0, 1] along ``axis``.
    axis : int
        The axis holding the outcomes (default the last).

    Returns
    -------
    jax.Array
        Bits, shape of ``p`` without ``axis``.
    """
    check_in_range(p, "p", 0.0, 1.0)
    p = jnp.asarray(p)
    if not jnp.issubdtype(p.dtype, jnp.floating):
        p = p.astype(float)
    if p.ndim == 0:
        raise ValueError("p must have at least one axis (the outcomes)")
    return _shannon_jit(p, axis=axis)


def von_neumann_entropy(rho: ArrayLike) -> jax.Array:
    r"""Von Neumann entropy S(rho) = -tr(rho log2 rho) of Hermitian PSD matrices, bits.

    Numerically safe for optimisation: the value is exact for rank-deficient states
    (0 log 0 = 0), and the first derivative, dS = -tr[(log2 rho + 1/ln 2) d rho], is finite
    for degenerate and for zero eigenvalues (there ``log`` is evaluated at the dtype's smallest
    normal number instead of diverging; differentiating an eigendecomposition directly would
    give NaN at degeneracies). Only first derivatives are supported (``jax.grad``,
    ``jax.jvp``); second derivatives go through ``eigh`` and are not safe.

    Parameters
    ----------
    rho : array_like
        Shape (..., n, n), Hermitian positive semidefinite (small negative eigenvalues from
        rounding are clipped to 0). Not renormalised: pass trace-1 matrices for states.

    Returns
    -------
    jax.Array
        Bits, shape (...). For an n x n state, in [0, log2 n].

    References
    ----------
    M. A. Nielsen and I. L. Chuang, Quantum Computation and Quantum Information
    (Cambridge University Press, 2000), Sec. 11.3.
    """
    r = jnp.asarray(rho)
    if r.ndim < 2 or r.shape[-1] != r.shape[-2]:
        raise ValueError(f"rho must end in a square matrix, shape (..., n, n); got {r.shape}")
    if not (jnp.issubdtype(r.dtype, jnp.floating) or jnp.issubdtype(r.dtype, jnp.complexfloating)):
        r = r.astype(float)
    if not isinstance(rho, jax.core.Tracer):
        arr = np.asarray(r)
        if not np.all(np.isfinite(arr)):
            raise ValueError("rho has non-finite entries (NaN or inf)")
        if not np.allclose(arr, np.conj(np.swapaxes(arr, -1, -2)), atol=1e-8):
            raise ValueError("rho must be Hermitian (rho == rho^dagger); symmetrise it first")
    return _von_neumann_jit(r)
