"""The family of Bell expressions B_{theta,phi,omega}: eq. (2)-(5) of Wooltorton, Brown & Colbeck.

All functions are written for one point, broadcast NumPy-style over array arguments, are
differentiable, and return ``jax.Array``s in the floating dtype of their inputs (Python floats
take JAX's default float: float32 unless x64 is enabled).

References
----------
L. Wooltorton, P. Brown and R. Colbeck, "Device-Independent Quantum Key Distribution with
Arbitrarily Small Nonlocality", Phys. Rev. Lett. 132, 210802 (2024),
doi:10.1103/PhysRevLett.132.210802. Equation numbers in this package are the paper's.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxbell._checks import as_angles

__all__ = [
    "bell_coefficients",
    "is_self_testing",
    "local_bound",
    "quantum_bound",
    "self_testing_margin",
]


def boundary_tolerance(dtype) -> float:
    """Tolerance on the product of condition (4) below which a tuple counts as on the boundary.

    The four cosines carry rounding errors of a few ulps; a product within ``32 eps`` of zero
    cannot be told from zero, so such tuples (e.g. ``phi = pi/2`` in floating point) are
    treated as *not* self-testing.
    """
    return 32.0 * float(jnp.finfo(dtype).eps)


# --- one-point kernels (no checks; used by the public wrappers, the grid and the searches) ----


def _cos_terms(theta, phi, omega):
    """cos(theta + phi), cos(phi), cos(theta + omega), cos(omega)."""
    return jnp.cos(theta + phi), jnp.cos(phi), jnp.cos(theta + omega), jnp.cos(omega)


def _coefficients_from_cos(ctp, cp, ctw, cw):
    c00 = ctp * ctw * cw
    c01 = -ctp * ctw * cp
    c10 = -cp * cw * ctw
    c11 = cp * cw * ctp
    return c00, c01, c10, c11


def _local_bound_from_cos(ctp, cp, ctw, cw):
    plus = jnp.abs(ctw * cw * (ctp + cp)) + jnp.abs(ctp * cp * (ctw + cw))
    minus = jnp.abs(ctw * cw * (ctp - cp)) + jnp.abs(ctp * cp * (ctw - cw))
    return jnp.maximum(plus, minus)


def _quantum_bound(theta, phi, omega):
    return jnp.sin(theta) * jnp.sin(omega - phi) * jnp.sin(theta + omega + phi)


def _margin_from_cos(ctp, cp, ctw, cw):
    return -(ctp * cp * ctw * cw)


def _self_testing_from_margin(margin):
    return margin > boundary_tolerance(margin.dtype)


@jax.jit
def _bell_coefficients(theta, phi, omega):
    c00, c01, c10, c11 = _coefficients_from_cos(*_cos_terms(theta, phi, omega))
    return jnp.stack([jnp.stack([c00, c01], -1), jnp.stack([c10, c11], -1)], -2)


@jax.jit
def _local_bound(theta, phi, omega):
    return _local_bound_from_cos(*_cos_terms(theta, phi, omega))


@jax.jit
def _self_testing_margin(theta, phi, omega):
    return _margin_from_cos(*_cos_terms(theta, phi, omega))


_quantum_bound_jit = jax.jit(_quantum_bound)


# --- public API ----------------------------------------------------------------------------


def bell_coefficients(theta: ArrayLike, phi: ArrayLike, omega: ArrayLike) -> jax.Array:
    r"""Coefficients c[x, y] of the Bell expression of eq. (2), <B> = sum_xy c[x, y] E[x, y].

    .. math::
        c_{00} = \cos(\theta+\phi)\cos(\theta+\omega)\cos\omega,\quad
        c_{01} = -\cos(\theta+\phi)\cos(\theta+\omega)\cos\phi,\\
        c_{10} = -\cos\phi\cos\omega\cos(\theta+\omega),\quad
        c_{11} = \cos\phi\cos\omega\cos(\theta+\phi).

    Parameters
    ----------
    theta, phi, omega : array_like
        The angles of eq. (2), radians, any finite real values; they broadcast together.

    Returns
    -------
    jax.Array
        Shape ``broadcast_shape + (2, 2)``, indexed ``[..., x, y]``; dimensionless.

    References
    ----------
    Eq. (2) of Wooltorton, Brown & Colbeck, PRL 132, 210802 (2024).
    """
    return _bell_coefficients(*as_angles(theta, phi, omega))


def local_bound(theta: ArrayLike, phi: ArrayLike, omega: ArrayLike) -> jax.Array:
    r"""Local (classical) bound eta^L of eq. (3); the local bounds of <B> are +-eta^L.

    .. math::
        \eta^L = \max_\pm \big\{ |\cos(\theta+\omega)\cos\omega(\cos(\theta+\phi) \pm \cos\phi)|
        + |\cos(\theta+\phi)\cos\phi(\cos(\theta+\omega) \pm \cos\omega)| \big\}

    Parameters
    ----------
    theta, phi, omega : array_like
        Radians, finite; broadcast together.

    Returns
    -------
    jax.Array
        eta^L >= 0, dimensionless. It is 0 exactly when all coefficients vanish.

    References
    ----------
    Eq. (3) and Prop. 1(i) of Wooltorton, Brown & Colbeck, PRL 132, 210802 (2024).
    """
    return _local_bound(*as_angles(theta, phi, omega))


def quantum_bound(theta: ArrayLike, phi: ArrayLike, omega: ArrayLike) -> jax.Array:
    r"""Quantum bound eta^Q = sin(theta) sin(omega - phi) sin(theta + omega + phi), eq. (5).

    Signed as the formula gives it; the quantum bounds of <B> are +-eta^Q when condition (4)
    holds (see :func:`is_self_testing`). Where (4) fails, the formula is still returned, and
    Prop. 1(iii) says then ``|eta^Q| <= eta^L``: no quantum violation.

    Parameters
    ----------
    theta, phi, omega : array_like
        Radians, finite; broadcast together.

    Returns
    -------
    jax.Array
        eta^Q, dimensionless, in [-1, 1].

    References
    ----------
    Eq. (5) and Prop. 1(ii)-(iii) of Wooltorton, Brown & Colbeck, PRL 132, 210802 (2024).
    """
    return _quantum_bound_jit(*as_angles(theta, phi, omega))


def self_testing_margin(theta: ArrayLike, phi: ArrayLike, omega: ArrayLike) -> jax.Array:
    r"""-cos(theta + phi) cos(phi) cos(theta + omega) cos(omega): positive where (4) holds.

    A smooth measure of how far inside the self-testing region a tuple lies, used by the
    searches as a constraint. Dimensionless, in [-1, 1].
    """
    return _self_testing_margin(*as_angles(theta, phi, omega))


def is_self_testing(theta: ArrayLike, phi: ArrayLike, omega: ArrayLike) -> jax.Array:
    r"""Condition (4): cos(theta + phi) cos(phi) cos(theta + omega) cos(omega) < 0.

    Where it holds, eta^Q is the quantum bound and the strategy of eq. (6) is the unique
    (up to local isometries) way to reach it, so rates at the quantum bound are certified.
    The product is compared with ``-32 eps`` of the dtype rather than 0, so tuples on the
    boundary up to rounding (e.g. the float nearest ``pi/2`` for phi) count as not
    self-testing.

    Returns
    -------
    jax.Array
        Boolean, broadcast shape of the inputs.

    References
    ----------
    Eq. (4) and Prop. 1(ii), (iv) of Wooltorton, Brown & Colbeck, PRL 132, 210802 (2024).
    """
    return _self_testing_from_margin(self_testing_margin(theta, phi, omega))
