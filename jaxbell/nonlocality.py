"""CHSH and the eight CHSH-type expressions of the minimal Bell scenario.

The eight CHSH-type expressions are +-(sum_xy E[x, y] - 2 E[k]) for the four positions k of
the minus sign (footnote [46] of the paper); they are the only facets separating local from
nonlocal correlators, so ``max_chsh_value <= 2`` exactly on the local set of correlators.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxbell._checks import as_correlators

__all__ = ["chsh_type_values", "chsh_value", "max_chsh_value"]


def _chsh(e):
    return e[..., 0, 0] + e[..., 0, 1] + e[..., 1, 0] - e[..., 1, 1]


def _chsh_type(e):
    """The four expressions sum(E) - 2 E[k], k = 00, 01, 10, 11 (their negatives complete the 8)."""
    total = jnp.sum(e, axis=(-2, -1))
    return total[..., None] - 2.0 * e.reshape(e.shape[:-2] + (4,))


def _max_chsh(e):
    return jnp.max(jnp.abs(_chsh_type(e)), axis=-1)


_chsh_jit = jax.jit(_chsh)
_chsh_type_jit = jax.jit(_chsh_type)
_max_chsh_jit = jax.jit(_max_chsh)


def chsh_value(correlators: ArrayLike) -> jax.Array:
    """I_CHSH = E00 + E01 + E10 - E11.

    Parameters
    ----------
    correlators : array_like
        Shape (..., 2, 2), indexed [..., x, y].

    Returns
    -------
    jax.Array
        Shape (...). Local bound 2, quantum (Tsirelson) bound 2 sqrt(2).
    """
    return _chsh_jit(as_correlators(correlators))


def chsh_type_values(correlators: ArrayLike) -> jax.Array:
    """The four CHSH-type values sum_xy E - 2 E[k], k in (00, 01, 10, 11), shape (..., 4).

    With their negatives these are the eight CHSH-type expressions; index 3 is I_CHSH.
    """
    return _chsh_type_jit(as_correlators(correlators))


def max_chsh_value(correlators: ArrayLike) -> jax.Array:
    """The largest of the eight CHSH-type expressions, the paper's measure of nonlocality.

    ``max_k |sum_xy E[x, y] - 2 E[k]|``; > 2 exactly when the correlators are nonlocal.

    Parameters
    ----------
    correlators : array_like
        Shape (..., 2, 2), indexed [..., x, y].

    Returns
    -------
    jax.Array
        Shape (...), in [0, 2 sqrt(2)] for quantum correlators.
    """
    return _max_chsh_jit(as_correlators(correlators))
