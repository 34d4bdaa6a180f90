"""Quantum strategies: the singlet strategy of eq. (6), measurements in the X-Y plane, white noise.

The strategy of eq. (6) shares |psi> = (|00> + i|11>)/sqrt(2) and measures
A_x = cos(alpha_x) sigma_X + sin(alpha_x) sigma_Y, B_y = cos(beta_y) sigma_X + sin(beta_y) sigma_Y
with alpha = (0, theta) and beta = (phi, omega). Writing |psi> = (1 (x) S)|Phi+>, S = diag(1, i),
one finds S^dag sigma_X S = -sigma_Y and S^dag sigma_Y S = sigma_X, hence

    E[x, y] = <psi| A_x (x) B_y |psi> = sin(alpha_x + beta_y),

so E00 = sin(phi), E01 = sin(omega), E10 = sin(theta + phi), E11 = sin(theta + omega).
Outcomes are uniform on each side; a and b differ with probability (1 - E)/2.

References
----------
Eq. (6) and Prop. 1(iv) of Wooltorton, Brown & Colbeck, PRL 132, 210802 (2024).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxbell._checks import as_angles, as_correlators, check_in_range

__all__ = [
    "noisy_correlators",
    "strategy_angles",
    "strategy_correlators",
    "xy_plane_correlators",
]


def minority_probability(s: jax.Array) -> jax.Array:
    """min((1 - E)/2, (1 + E)/2) for E = sin(s), to a few ulps even when it is tiny.

    Uses 1 - |sin s| = cos(s)**2 / (1 + |sin s|), which has no cancellation as |E| -> 1 (the
    cosine of a float near pi/2 is computed with exact argument reduction). This is the
    probability of the less likely of "a = b" and "a != b" on the uniform-marginal strategy.
    """
    return jnp.cos(s) ** 2 / (2.0 * (1.0 + jnp.abs(jnp.sin(s))))


def _strategy_angles(theta, phi, omega):
    zero = jnp.zeros_like(theta + phi + omega)
    alpha = jnp.stack([zero, zero + theta], -1)
    beta = jnp.stack([zero + phi, zero + omega], -1)
    return alpha, beta


def _angle_sums(alpha, beta):
    """s[x, y] = alpha_x + beta_y, shape (..., 2, 2)."""
    return alpha[..., :, None] + beta[..., None, :]


@jax.jit
def _strategy_correlators(theta, phi, omega):
    return jnp.sin(_angle_sums(*_strategy_angles(theta, phi, omega)))


def strategy_angles(theta: ArrayLike, phi: ArrayLike, omega: ArrayLike):
    """Measurement angles of eq. (6), X-Y plane: ``alpha = (0, theta)``, ``beta = (phi, omega)``.

    Returns
    -------
    alpha, beta : jax.Array
        Each of shape ``broadcast_shape + (2,)``, radians.
    """
    return _strategy_angles(*as_angles(theta, phi, omega))


def xy_plane_correlators(alpha: ArrayLike, beta: ArrayLike) -> jax.Array:
    r"""Correlators of |psi> = (|00> + i|11>)/sqrt(2) measured in the X-Y plane.

    ``E[x, y] = sin(alpha_x + beta_y)`` for A_x = cos(alpha_x) X + sin(alpha_x) Y and
    B_y = cos(beta_y) X + sin(beta_y) Y.

    Parameters
    ----------
    alpha, beta : array_like
        Shape (..., 2): Alice's and Bob's measurement angles, radians.
    """
    alpha, beta = jnp.asarray(alpha), jnp.asarray(beta)
    if alpha.shape[-1:] != (2,) or beta.shape[-1:] != (2,):
        raise ValueError(
            f"alpha and beta must end in a length-2 axis (one angle per input); got shapes "
            f"{alpha.shape} and {beta.shape}"
        )
    return jnp.sin(_angle_sums(alpha, beta))


def strategy_correlators(theta: ArrayLike, phi: ArrayLike, omega: ArrayLike) -> jax.Array:
    r"""Correlators E[x, y] of the strategy of eq. (6), the unique one reaching eta^Q under (4).

    ``E = [[sin(phi), sin(omega)], [sin(theta + phi), sin(theta + omega)]]``.

    Parameters
    ----------
    theta, phi, omega : array_like
        Radians, finite; broadcast together.

    Returns
    -------
    jax.Array
        Shape ``broadcast_shape + (2, 2)`` indexed ``[..., x, y]``, values in [-1, 1].

    References
    ----------
    Eq. (6) of Wooltorton, Brown & Colbeck, PRL 132, 210802 (2024).
    """
    return _strategy_correlators(*as_angles(theta, phi, omega))


def noisy_correlators(correlators: ArrayLike, visibility: ArrayLike) -> jax.Array:
    """White noise: E -> v E (the state mixed with the maximally mixed state, weight 1 - v).

    Parameters
    ----------
    correlators : array_like
        Shape (..., 2, 2).
    visibility : array_like
        v in [0, 1], broadcast against the leading axes of ``correlators``.
    """
    check_in_range(visibility, "visibility", 0.0, 1.0)
    e = as_correlators(correlators)
    v = jnp.asarray(visibility, e.dtype)
    return v[..., None, None] * e
