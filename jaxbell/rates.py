"""DI rates below the quantum bound: the public front door, backends behind a registry.

``di_entropy`` asks a backend for the device-independent infimum of H(A|X=x, E) (kind
``"key"``) or H(AB|X=x, Y=y, E) (kind ``"global"``) over all quantum strategies with
<B_theta,phi,omega> = bell_value; ``rate_curve`` tabulates it over bell_value;
``noisy_key_rate`` / ``noisy_global_rate`` evaluate the Devetak-Winter key rate (eq. 1) and the
global randomness rate for the strategy of eq. (6) mixed with white noise; and
``critical_visibility`` finds the smallest visibility with a positive rate.

Backends (``method``):

* ``"qubit"`` (:mod:`jaxbell.qubit`): explicit qubit strategies (Jordan's lemma) and their
  convex envelope -- an upper bound on the infimum that is tight when the optimisation is
  global, with the gap to the tangent-line estimate reported;
* ``"bff"``: certified lower bounds (Brown-Fawzi-Fawzi SDP hierarchy), registered here when
  available.

A backend is a function ``f(theta, phi, omega, bell_value, *, kind, x, y, options)`` returning
bits as a ``jax.Array`` (NaN where its solve failed or did not converge), registered in
``_BACKENDS``. A backend that also knows supporting lines and optimal strategies may register
a rate-curve builder in ``_CURVES`` (``"qubit"`` does); other backends get an entropy-only
curve. Every curve carries a scalar ``method`` coordinate, so curves of two methods combine
with ``xarray.concat([...], dim="method")`` over their shared variables.

White noise: E -> v E for the correlators of eq. (6) (the state mixed with the maximally mixed
state with weight 1 - v), so <B> = v eta^Q and the marginals stay uniform. With h the binary
entropy,

    noisy_key_rate    = max_xy [ F_x(v |eta^Q|) - h((1 + v E[x, y])/2) ],
    noisy_global_rate = max_xy   G_xy(v |eta^Q|),

F_x and G_xy the DI entropies of kind "key" and "global" (even in <B>). The key rate is
returned as computed, negative where error correction costs more than the secrecy.

References
----------
L. Wooltorton, P. Brown and R. Colbeck, Phys. Rev. Lett. 132, 210802 (2024): eq. (1)-(6).
I. Devetak and A. Winter, Proc. R. Soc. A 461, 207 (2005) (eq. 1).
P. Brown, H. Fawzi and O. Fawzi, "Device-independent lower bounds on the conditional von
Neumann entropy", arXiv:2106.13692 (method "bff").
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr
from jax.typing import ArrayLike

from jaxbell._checks import as_angles, check_in_range
from jaxbell._precision import x64_scope
from jaxbell.entropy import _h_small
from jaxbell.family import _local_bound, _quantum_bound_jit, is_self_testing
from jaxbell.qubit import KINDS, QubitOptions, qubit_entropy, qubit_envelopes, strategy_from_params
from jaxbell.strategy import _angle_sums, _strategy_angles, minority_probability

__all__ = [
    "critical_visibility",
    "di_entropy",
    "noisy_global_rate",
    "noisy_key_rate",
    "rate_curve",
]

#: method -> entropy backend f(theta, phi, omega, bell_value, *, kind, x, y, options) -> bits
_BACKENDS: dict[str, Callable[..., jax.Array]] = {"qubit": qubit_entropy}

_PLANNED = {"bff": "the certified Brown-Fawzi-Fawzi SDP backend (jaxbell.bff)"}


# --- checks -----------------------------------------------------------------------------------


def _check_method(method) -> Callable[..., jax.Array]:
    if method in _BACKENDS:
        return _BACKENDS[method]
    extra = f"; {method!r} is {_PLANNED[method]}, not installed here" if method in _PLANNED else ""
    raise ValueError(f"method must be one of {sorted(_BACKENDS)}, got {method!r}{extra}")


def _check_kind(kind, x, y):
    if kind not in KINDS:
        raise ValueError(f"kind must be 'key' or 'global', got {kind!r}")
    for name, v in (("x", x), ("y", y)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v not in (0, 1):
            raise ValueError(f"{name} must be 0 or 1 (an input of the Bell scenario), got {v!r}")
    return int(x), int(y)


def _angles64(theta, phi, omega):
    """Checked angles as float64 NumPy arrays (broadcast together), whatever JAX's x64 mode."""
    with x64_scope():
        t, p, w = as_angles(theta, phi, omega)
    shape = np.broadcast_shapes(t.shape, p.shape, w.shape)
    return tuple(np.broadcast_to(np.asarray(v, dtype=np.float64), shape) for v in (t, p, w))


def _bounds64(t, p, w):
    """(eta^L, eta^Q signed, self_testing, bell_max) in float64."""
    with x64_scope():
        args = (jnp.asarray(t), jnp.asarray(p), jnp.asarray(w))
        lo = np.asarray(_local_bound(*args))
        q = np.asarray(_quantum_bound_jit(*args))
        st = np.asarray(is_self_testing(*args))
    return lo, q, st, np.where(st, np.abs(q), lo)


def _as_real(value, name: str) -> np.ndarray:
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


def _check_bell_value(bell_value, bell_max) -> np.ndarray:
    eta = _as_real(bell_value, "bell_value")
    shape = np.broadcast_shapes(eta.shape, np.shape(bell_max))
    eta, top = np.broadcast_to(eta, shape), np.broadcast_to(bell_max, shape)
    beyond = np.abs(eta) > top * (1 + 1e-12) + 1e-15
    if np.any(beyond):
        i = np.flatnonzero(beyond.reshape(-1))[0]
        raise ValueError(
            f"|bell_value| must not exceed the quantum maximum of |<B>| for the tuple "
            f"(|eta^Q| of eq. 5 where condition (4) holds, else eta^L of eq. 3): got "
            f"{eta.reshape(-1)[i]!r} where the maximum is {top.reshape(-1)[i]!r}; no quantum "
            "strategy reaches it"
        )
    return eta


# --- DI entropy ---------------------------------------------------------------------------------


def di_entropy(
    theta: ArrayLike,
    phi: ArrayLike,
    omega: ArrayLike,
    bell_value: ArrayLike,
    *,
    kind: str = "key",
    x: int = 0,
    y: int = 0,
    method: str = "qubit",
    options: Mapping[str, Any] | None = None,
) -> jax.Array:
    r"""DI entropy at an observed Bell value <B_theta,phi,omega> = bell_value, bits.

    The infimum, over all quantum strategies (any dimension; Eve holds a purification) with
    <B> = bell_value, of H(A|X=x, E) (kind "key") or H(AB|X=x, Y=y, E) (kind "global").
    Even in ``bell_value`` (Bob flipping his outputs maps <B> to -<B>); 0 for
    |bell_value| <= eta^L (local deterministic strategies reach it); at the quantum bound of a
    self-testing tuple, 1 (key) and 1 + h((1 + E[x, y])/2) (global), E of eq. (6).

    With ``method="qubit"`` the value is the lower convex envelope of the entropy over explicit
    two-qubit strategies found by multi-start gradient descent (Jordan's lemma reduces every
    strategy to a mixture of such blocks). It is an **upper bound on the true infimum that is
    tight when the optimisation is global**; each value is achieved by a mixture of at most two
    explicit strategies (see :func:`rate_curve`). Values whose discretisation gap (hull minus
    tangent-line estimate) exceeds ``options["tol"]`` (default 1e-4 bits) are NaN.

    Parameters
    ----------
    theta, phi, omega : array_like
        The tuple of eq. (2), radians, finite; any tuple (self-testing or not).
    bell_value : array_like
        The observed <B>, dimensionless, with |bell_value| <= |eta^Q| where condition (4)
        holds (else <= eta^L, the quantum maximum then). Broadcasts with the angles.
    kind : {"key", "global"}
        "key": H(A|X=x, E), Alice's raw key given Eve; "global": H(AB|X=x, Y=y, E).
    x, y : {0, 1}
        Inputs (``y`` matters only for "global").
    method : str
        Backend: "qubit" (explicit strategies, upper bound); "bff" when installed.
    options : dict, optional
        Backend settings; for "qubit" see :class:`jaxbell.qubit.QubitOptions`
        (directions, starts, steps, refine, learning_rate, tol, seed).

    Returns
    -------
    jax.Array
        Bits (float64), the broadcast shape; in [0, 1] for "key", [0, 2] for "global"; NaN
        where the backend's solve failed or did not converge.

    Raises
    ------
    ValueError
        Unknown ``kind`` or ``method``, ``x``/``y`` not in {0, 1}, non-finite input, or
        |bell_value| beyond the quantum maximum.

    References
    ----------
    Eq. (1)-(6) and Supplemental Material of Wooltorton, Brown & Colbeck, PRL 132, 210802
    (2024); S. Pironio et al., New J. Phys. 11, 045021 (2009).
    """
    backend = _check_method(method)
    x, y = _check_kind(kind, x, y)
    t, p, w = _angles64(theta, phi, omega)
    _, _, _, top = _bounds64(t, p, w)
    eta = _check_bell_value(bell_value, top)
    shape = eta.shape
    return backend(
        np.broadcast_to(t, shape),
        np.broadcast_to(p, shape),
        np.broadcast_to(w, shape),
        eta,
        kind=kind,
        x=x,
        y=y,
        options=options,
    )


# --- rate curves --------------------------------------------------------------------------------


def _default_bell_values(lo, top, st, num):
    if st:
        return np.linspace(lo, top, num)
    return np.linspace(0.0, top, num)


def _qubit_curve(t, p, w, bell_value, *, kind, x, y, options, progress):
    """Rich rate curve of the qubit backend: envelope, supporting lines, optimal mixtures."""
    t0 = time.perf_counter()
    (env,) = qubit_envelopes([(t, p, w)], kind=kind, x=x, y=y, options=options, progress=progress)
    lo_i, hi_i, weight = env.segment(bell_value)
    slope, intercept = env.supporting_line(bell_value)
    idx = np.stack([lo_i, hi_i], -1)
    mix = np.stack([1.0 - weight, weight], -1)
    rho, alpha, beta = (np.asarray(v) for v in strategy_from_params(env.vertex_params[idx]))
    sign = np.where(np.asarray(bell_value) < 0, -1.0, 1.0)
    fields = {
        "entropy": env.entropy(bell_value),
        "entropy_lower_estimate": env.lower_estimate(bell_value),
        "gap": env.gap(bell_value),
        "slope": slope * sign,
        "intercept": intercept,
        "curve_status": env.status(bell_value),
        "mixture_weight": mix,
        "component_bell_value": env.vertex_bell_value[idx],
        "component_entropy": env.vertex_entropy[idx],
        "alice_angle": alpha,
        "bob_angle": beta,
        "state": rho,
    }
    tangents = {
        "tangent_slope": env.tangent_slope,
        "tangent_intercept": env.tangent_intercept,
        "tangent_spread": env.tangent_spread,
        "tangent_agreement": env.tangent_agreement,
    }
    opts = env.options
    settings = {
        **{f"option_{k}": v for k, v in vars(opts).items()},
        "passes": env.passes,
        "failed_starts": env.failed_starts,
        "hull_vertices": len(env.vertex_bell_value),
        "max_gap_bits": float(np.max(env.segment_gap, initial=0.0)),
        "max_tangent_spread_bits": float(np.max(env.tangent_spread, initial=0.0)),
        "min_tangent_agreement": float(np.min(env.tangent_agreement, initial=1.0)),
        "elapsed_seconds": round(time.perf_counter() - t0, 3),
    }
    return fields, tangents, settings


#: method -> rich curve builder (fields, tangent fields, settings); others get entropy only
_CURVES: dict[str, Callable[..., Any]] = {"qubit": _qubit_curve}


def rate_curve(
    theta: float,
    phi: float,
    omega: float,
    *,
    kind: str = "key",
    x: int = 0,
    y: int = 0,
    num: int = 64,
    bell_value: ArrayLike | None = None,
    method: str = "qubit",
    options: Mapping[str, Any] | None = None,
    progress: bool | None = False,
) -> xr.Dataset:
    r"""The DI entropy of one tuple as a labelled curve over the Bell value.

    Parameters
    ----------
    theta, phi, omega : float
        One tuple of eq. (2), radians.
    kind, x, y, method, options
        As in :func:`di_entropy`.
    num : int
        Number of Bell values (default 64), evenly spaced from eta^L to |eta^Q| for a
        self-testing tuple, from 0 to eta^L otherwise (where the curve is 0).
    bell_value : array_like, optional
        Explicit Bell values instead (1-D; |bell_value| within the quantum maximum).
    progress : bool or None
        Show a tqdm bar over the optimisation passes (None: only on a terminal).

    Returns
    -------
    xarray.Dataset
        Coordinate ``bell_value`` (and a scalar ``method``). For every method: ``entropy``
        (bits) and ``curve_status`` (0 converged, 1 gap above tol, 2 failed). For "qubit"
        also: ``entropy_lower_estimate`` and ``gap`` (tangent-line estimate and the
        discretisation gap of the hull segment), ``slope`` and ``intercept`` of the supporting
        line H >= intercept + slope * <B> (the affine min-tradeoff function), the optimal
        attack as a mixture of two qubit strategies (dim ``component``): ``mixture_weight``,
        ``component_bell_value``, ``component_entropy``, ``alice_angle`` (x), ``bob_angle``
        (y) in the X-Z plane and the real ``state`` (row, col in the basis |ab>); and per
        optimised slope (dim ``tangent``): ``tangent_slope``, ``tangent_intercept``,
        ``tangent_spread`` and ``tangent_agreement`` between random starts. Attributes record
        the tuple, kind, inputs, bounds, every option, the passes and the largest gap and
        spread. Curves of two methods combine with
        ``xarray.concat([a[["entropy"]], b[["entropy"]]], dim="method")``.

    References
    ----------
    Eq. (2)-(6) and Supplemental Material of Wooltorton, Brown & Colbeck, PRL 132, 210802
    (2024).
    """
    from tqdm import tqdm

    from jaxbell.dataset import rate_curve_dataset

    backend = _check_method(method)
    x, y = _check_kind(kind, x, y)
    if kind == "key":
        y = 0
    t, p, w = _angles64(theta, phi, omega)
    if t.ndim:
        raise ValueError("rate_curve takes one tuple: theta, phi and omega must be scalars")
    lo, q, st, top = (float(v) for v in _bounds64(t, p, w))
    if bell_value is None:
        if isinstance(num, bool) or not isinstance(num, (int, np.integer)) or num < 2:
            raise ValueError(f"num must be an integer >= 2, got {num!r}")
        eta = _default_bell_values(lo, top, bool(st), int(num))
    else:
        eta = _check_bell_value(bell_value, top)
        if eta.ndim != 1 or eta.size == 0:
            raise ValueError(f"bell_value must be a non-empty 1-D array; got shape {eta.shape}")
    t, p, w = float(t), float(p), float(w)
    settings = {
        "theta": t,
        "phi": p,
        "omega": w,
        "kind": kind,
        "x": x,
        "y": y,
        "method": method,
        "local_bound": lo,
        "quantum_bound": q,
        "bell_max": top,
        "self_testing": bool(st),
        "dtype": "float64",
        "jax_version": jax.__version__,
        "devices": [str(d) for d in jax.devices()],
    }
    total = QubitOptions.from_mapping(options).refine + 1 if method == "qubit" else 1
    bar = tqdm(
        total=total,
        desc="rate curve (passes)",
        disable=not progress if progress is not None else None,
    )
    with bar:
        if method in _CURVES:
            fields, tangents, extra = _CURVES[method](
                t, p, w, eta, kind=kind, x=x, y=y, options=options, progress=bar
            )
        else:
            t0 = time.perf_counter()
            ent = np.asarray(backend(t, p, w, eta, kind=kind, x=x, y=y, options=options))
            fields = {"entropy": ent, "curve_status": np.where(np.isnan(ent), 2, 0).astype(np.int8)}
            tangents = {}
            extra = {"elapsed_seconds": round(time.perf_counter() - t0, 3)}
            bar.update(1)
    return rate_curve_dataset(eta, fields, tangents, method=method, settings=settings | extra)


# --- noisy rates and critical visibility ----------------------------------------------------


def _check_visibility(visibility) -> np.ndarray:
    v = _as_real(visibility, "visibility")
    check_in_range(v, "visibility", 0.0, 1.0)
    return v


def _error_correction_cost(t, p, w, v):
    """h((1 + v E[x, y])/2) for E of eq. (6), shape (..., 2, 2), with relative precision.

    The smaller outcome probability is (1 - v |E|)/2 = (1 - v)/2 + v (1 - |sin s|)/2, with
    (1 - |sin s|)/2 = cos(s)^2 / (2 (1 + |sin s|)) free of cancellation.
    """
    with x64_scope():
        s = _angle_sums(*_strategy_angles(jnp.asarray(t), jnp.asarray(p), jnp.asarray(w)))
        vv = jnp.asarray(v)[..., None, None]
        q = (1.0 - vv) / 2.0 + vv * minority_probability(s)
        return np.asarray(_h_small(q))


def _noisy(theta, phi, omega, visibility, kind, method, options):
    backend = _check_method(method)
    t, p, w = _angles64(theta, phi, omega)
    v = _check_visibility(visibility)
    shape = np.broadcast_shapes(t.shape, v.shape)
    t, p, w, v = (np.broadcast_to(a, shape) for a in (t, p, w, v))
    _, q, _, top = _bounds64(t, p, w)
    eta = np.minimum(v * np.abs(q), top)  # |v eta^Q| <= |eta^Q| <= max always

    def entropy(kind_, xi, yi):
        return np.asarray(backend(t, p, w, eta, kind=kind_, x=xi, y=yi, options=options))

    if kind == "key":
        cost = _error_correction_cost(t, p, w, v)  # (..., x, y)
        rates = np.stack([entropy("key", xi, 0)[..., None] - cost[..., xi, :] for xi in (0, 1)], -2)
    else:
        rates = np.stack(
            [np.stack([entropy("global", xi, yi) for yi in (0, 1)], -1) for xi in (0, 1)], -2
        )
    flat = rates.reshape(shape + (4,))
    out = np.max(flat, axis=-1)  # NaN propagates: a failed input pair makes the max unknown
    return out


def noisy_key_rate(
    theta: ArrayLike,
    phi: ArrayLike,
    omega: ArrayLike,
    visibility: ArrayLike,
    *,
    method: str = "qubit",
    options: Mapping[str, Any] | None = None,
) -> jax.Array:
    r"""Devetak-Winter key rate of the strategy of eq. (6) under white noise, bits per round.

    ``max_xy [F_x(v |eta^Q|) - h((1 + v E[x, y])/2)]``, F_x = :func:`di_entropy` of kind "key"
    at the observed <B> = v eta^Q, E the correlators of eq. (6) (E -> v E). Negative values
    (error correction costs more than Eve's uncertainty) are returned as they are, not clipped
    to 0; NaN where the entropy backend failed or did not converge. At v = 1 for a
    self-testing tuple this is :func:`jaxbell.key_rate_at_quantum_bound`.

    Parameters
    ----------
    theta, phi, omega : array_like
        Tuples of eq. (2), radians; any tuple (where condition (4) fails, the Bell value is
        local and the rate is -min h <= 0).
    visibility : array_like
        v in [0, 1]; broadcasts with the angles.
    method, options
        As in :func:`di_entropy`.

    Returns
    -------
    jax.Array
        Bits per round, float64, the broadcast shape. With method "qubit" an upper bound on
        the DI rate of this protocol (the entropy is an upper bound), tight when the
        optimisation is global.

    References
    ----------
    Eq. (1) and (6) of Wooltorton, Brown & Colbeck, PRL 132, 210802 (2024);
    I. Devetak and A. Winter, Proc. R. Soc. A 461, 207 (2005).
    """
    out = _noisy(theta, phi, omega, visibility, "key", method, options)
    with x64_scope():
        return jnp.asarray(out, dtype=jnp.float64)


def noisy_global_rate(
    theta: ArrayLike,
    phi: ArrayLike,
    omega: ArrayLike,
    visibility: ArrayLike,
    *,
    method: str = "qubit",
    options: Mapping[str, Any] | None = None,
) -> jax.Array:
    r"""Global randomness rate of the strategy of eq. (6) under white noise, bits per round.

    ``max_xy G_xy(v |eta^Q|)``, G_xy = :func:`di_entropy` of kind "global" with inputs
    (x, y) at <B> = v eta^Q. In [0, 2]; 0 exactly when v |eta^Q| <= eta^L; NaN where the
    backend failed. At v = 1 for a self-testing tuple this is
    :func:`jaxbell.global_rate_at_quantum_bound`. Arguments as in :func:`noisy_key_rate`.

    References
    ----------
    Wooltorton, Brown & Colbeck, PRL 132, 210802 (2024), r^global below eq. (1).
    """
    out = _noisy(theta, phi, omega, visibility, "global", method, options)
    with x64_scope():
        return jnp.asarray(out, dtype=jnp.float64)


def critical_visibility(
    theta: ArrayLike,
    phi: ArrayLike,
    omega: ArrayLike,
    *,
    kind: str = "key",
    method: str = "qubit",
    options: Mapping[str, Any] | None = None,
    xtol: float = 1e-7,
) -> jax.Array:
    r"""The smallest visibility v with a positive noisy rate (key or global randomness).

    The rate grows with v (the entropy is non-decreasing in |<B>| and the error-correction
    cost h((1 + v E)/2) falls), so the threshold is found by bisection on
    [eta^L / |eta^Q|, 1] (below the left end <B> is local and no rate is positive). For kind
    "global" the answer is eta^L / |eta^Q| = 1 / violation_ratio: any Bell value beyond the
    local bound certifies randomness.

    Parameters
    ----------
    theta, phi, omega : array_like
        Tuples of eq. (2), radians.
    kind : {"key", "global"}
        Which rate: :func:`noisy_key_rate` or :func:`noisy_global_rate`.
    method, options
        As in :func:`di_entropy`.
    xtol : float
        Width of the final bracket (default 1e-7). The result's accuracy is also limited by
        the entropy's (``options["tol"]``, default 1e-4 bits, divided by the slope of the rate
        in v).

    Returns
    -------
    jax.Array
        v in (0, 1], float64, broadcast shape of the angles; NaN where no visibility gives a
        positive rate (condition (4) fails, or the rate at v = 1 is <= 0) or where the backend
        failed or did not converge inside the bracket. With method "qubit" a lower bound on
        the true threshold, tight when the optimisation is global.

    References
    ----------
    Eq. (1), (3), (5), (6) of Wooltorton, Brown & Colbeck, PRL 132, 210802 (2024).
    """
    _check_method(method)
    if kind not in KINDS:
        raise ValueError(f"kind must be 'key' or 'global', got {kind!r}")
    if not isinstance(xtol, (int, float, np.floating)) or not (0 < xtol < 1):
        raise ValueError(f"xtol must be a number in (0, 1), got {xtol!r}")
    t, p, w = _angles64(theta, phi, omega)
    shape = t.shape
    t, p, w = (a.reshape(-1) for a in (t, p, w))
    lo, q, st, _ = _bounds64(t, p, w)
    rate = noisy_key_rate if kind == "key" else noisy_global_rate
    out = np.full(t.shape, np.nan)
    sel = np.flatnonzero(st)
    if sel.size:
        ts, ps, ws = t[sel], p[sel], w[sel]
        left = lo[sel] / np.abs(q[sel])
        right = np.ones_like(left)
        top = np.asarray(rate(ts, ps, ws, right, method=method, options=options))
        ok = top > 0
        iters = int(math.ceil(math.log2(1.0 / xtol))) + 1
        for _ in range(iters):
            mid = 0.5 * (left + right)
            val = np.asarray(rate(ts, ps, ws, mid, method=method, options=options))
            ok &= np.isfinite(val)
            pos = val > 0
            right = np.where(pos, mid, right)
            left = np.where(pos, left, mid)
            if np.all(right - left <= xtol):
                break
        out[sel] = np.where(ok, right, np.nan)
    with x64_scope():
        return jnp.asarray(out.reshape(shape), dtype=jnp.float64)
