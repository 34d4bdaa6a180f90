"""Argument checks shared by the public entry points.

Checks run in Python, at trace time, so they cost nothing inside ``jit``. Shapes and dtypes are
always checked; values (NaN, infinities, ranges) only when the argument is concrete, because a
tracer has no value to look at. Every message names the argument and says how to fix it.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

__all__ = [
    "as_angle",
    "as_angles",
    "as_correlators",
    "as_real_array",
    "check_in_range",
    "is_concrete",
    "options_from_mapping",
]


def is_concrete(x) -> bool:
    """True when ``x`` has a value that can be inspected now (not a tracer)."""
    return not isinstance(x, jax.core.Tracer)


def _float_dtype(dtype) -> np.dtype:
    """The floating dtype a real input of ``dtype`` computes in (ints and bools promote)."""
    dtype = np.dtype(dtype)
    if np.issubdtype(dtype, np.floating):
        return dtype
    return np.dtype(jnp.zeros((), dtype=float).dtype)  # the default float (x64 or not)


def as_angle(x: ArrayLike, name: str) -> jax.Array:
    """Convert one angle argument to a floating ``jax.Array``, checking type and finiteness."""
    if isinstance(x, jax.core.Tracer):
        if not (jnp.issubdtype(x.dtype, jnp.floating) or jnp.issubdtype(x.dtype, jnp.integer)):
            raise TypeError(f"{name} must be real (floating or integer), got dtype {x.dtype}")
        return x.astype(_float_dtype(x.dtype)) if not jnp.issubdtype(x.dtype, jnp.floating) else x
    if isinstance(x, (str, bytes)) or x is None:
        raise TypeError(f"{name} must be a real number or array of radians, got {type(x).__name__}")
    try:
        arr = np.asarray(x)
    except Exception as err:  # pragma: no cover - exotic objects
        raise TypeError(f"{name} must be a real number or array of radians: {err}") from None
    if arr.dtype == object or not (
        np.issubdtype(arr.dtype, np.floating)
        or np.issubdtype(arr.dtype, np.integer)
        or np.issubdtype(arr.dtype, np.bool_)
    ):
        raise TypeError(f"{name} must be a real number or array of radians, got dtype {arr.dtype}")
    if arr.size and not np.all(np.isfinite(arr)):
        bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        raise ValueError(
            f"{name} has {bad} non-finite value(s) (NaN or inf); angles must be finite radians"
        )
    if isinstance(x, jax.Array):
        return x if jnp.issubdtype(x.dtype, jnp.floating) else x.astype(_float_dtype(x.dtype))
    if isinstance(x, numbers.Real) and not isinstance(x, np.generic):
        return jnp.asarray(float(x))  # Python scalars take the default float dtype
    return jnp.asarray(arr, dtype=_float_dtype(arr.dtype))


def as_angles(theta: ArrayLike, phi: ArrayLike, omega: ArrayLike):
    """Check and convert the three angles of eq. (2); they must broadcast together.

    Returns the three arrays in one common floating dtype (NumPy promotion rules).
    """
    t, p, w = as_angle(theta, "theta"), as_angle(phi, "phi"), as_angle(omega, "omega")
    try:
        np.broadcast_shapes(t.shape, p.shape, w.shape)
    except ValueError:
        raise ValueError(
            "theta, phi and omega must broadcast together; got shapes "
            f"{t.shape}, {p.shape} and {w.shape}"
        ) from None
    dtype = jnp.result_type(t.dtype, p.dtype, w.dtype)
    return t.astype(dtype), p.astype(dtype), w.astype(dtype)


def as_correlators(correlators: ArrayLike, name: str = "correlators") -> jax.Array:
    """Check an array of correlators E[..., x, y]: trailing shape (2, 2), values in [-1, 1]."""
    if not isinstance(correlators, jax.core.Tracer):
        arr = np.asarray(correlators)
        if arr.dtype == object or not (
            np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)
        ):
            raise TypeError(f"{name} must be a real array, got dtype {arr.dtype}")
    e = correlators if isinstance(correlators, jax.Array) else jnp.asarray(correlators)
    if e.ndim < 2 or e.shape[-2:] != (2, 2):
        raise ValueError(
            f"{name} must end in shape (2, 2), indexed [x, y]; got shape {e.shape}. "
            "Stack E00, E01, E10, E11 as [[E00, E01], [E10, E11]]."
        )
    if not jnp.issubdtype(e.dtype, jnp.floating):
        e = e.astype(_float_dtype(e.dtype))
    if is_concrete(e):
        arr = np.asarray(e)
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{name} has non-finite value(s) (NaN or inf)")
        tol = 1e3 * np.finfo(arr.dtype).eps
        if np.any(np.abs(arr) > 1 + tol):
            raise ValueError(
                f"{name} must lie in [-1, 1] (they are expectations of +-1 observables); "
                f"got values up to {np.max(np.abs(arr)):.6g} in magnitude"
            )
    return e


def _number(v) -> str:
    if isinstance(v, (bool, np.bool_)):
        return str(bool(v))
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    return format(float(v), ".10g")


def shown(value) -> str:
    """A value as a message prints it: numbers as numbers (``5``, ``0.95``, ``nan``; never
    ``np.float64(5.0)`` or ``array(1.5)``), a few values as a list, strings quoted."""
    if isinstance(value, (str, bytes)):
        return repr(value)
    try:
        arr = np.asarray(value)
    except Exception:  # noqa: BLE001 - anything else prints as Python writes it
        return repr(value)
    if arr.dtype.kind not in "biuf":
        return repr(value)
    if arr.ndim == 0:
        return _number(arr.item())
    if arr.size <= 6:
        return "[" + ", ".join(_number(v) for v in arr.reshape(-1).tolist()) + "]"
    return f"an array of shape {arr.shape}"


def check_in_range(x, name: str, low: float, high: float, *, closed=(True, True)) -> None:
    """Raise ``ValueError`` naming ``name`` when a concrete ``x`` is NaN or leaves [low, high]."""
    if not is_concrete(x):
        return
    arr = np.asarray(x, dtype=float)
    lo_ok = arr >= low if closed[0] else arr > low
    hi_ok = arr <= high if closed[1] else arr < high
    if np.any(np.isnan(arr)) or not np.all(lo_ok & hi_ok):
        lb = "[" if closed[0] else "("
        rb = "]" if closed[1] else ")"
        if arr.ndim == 0:
            got = shown(arr)
        else:
            bad = np.argwhere(np.isnan(arr) | ~(lo_ok & hi_ok))[0]
            got = f"{shown(arr[tuple(bad)])} at index {tuple(int(i) for i in bad)}"
        raise ValueError(f"{name} must lie in {lb}{low:g}, {high:g}{rb}; got {got}")


def as_real_array(value, name: str) -> np.ndarray:
    """A finite real NumPy float64 array (host side, for solvers that run outside JAX)."""
    if isinstance(value, (str, bytes)) or value is None:
        raise TypeError(f"{name} must be a real number or array, got {type(value).__name__}")
    arr = np.asarray(value)
    if arr.dtype == object or not (
        np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)
    ):
        raise TypeError(f"{name} must be a real number or array, got dtype {arr.dtype}")
    arr = arr.astype(np.float64)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} has non-finite value(s) (NaN or inf); give finite numbers")
    return arr


def options_from_mapping(cls, options, method: str):
    """Build the options dataclass ``cls`` of a backend from a dict, None or an instance;
    unknown keys raise a TypeError listing the valid ones."""
    import dataclasses

    if options is None:
        return cls()
    if isinstance(options, cls):
        return options
    if not isinstance(options, Mapping):
        raise TypeError(f"options must be a dict or None, got {type(options).__name__}")
    valid = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise TypeError(
            f"unknown option(s) {unknown} for method {method!r}; valid options: {valid}"
        )
    return cls(**options)
