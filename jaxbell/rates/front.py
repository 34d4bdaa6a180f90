"""DI rates below the quantum bound: the public front door, backends behind a registry.

``di_entropy`` asks a backend for the device-independent infimum of H(A|X=x, E) (kind
``"key"``) or H(AB|X=x, Y=y, E) (kind ``"global"``) over all quantum strategies with
<B_theta,phi,omega> = bell_value; ``rate_curve`` tabulates it over bell_value;
``noisy_key_rate`` / ``noisy_global_rate`` evaluate the Devetak-Winter key rate (eq. 1) and the
global randomness rate for the strategy of eq. (6) mixed with white noise; and
``critical_visibility`` finds the smallest visibility with a positive rate.

Backends (``method``):

* ``"qubit"`` (:mod:`jaxbell.rates.qubit`): explicit qubit strategies (Jordan's lemma) and their
  convex envelope -- an upper bound on the infimum that is tight when the optimisation is
  global, with the gap to the tangent-line estimate reported;
* ``"bff"`` (:mod:`jaxbell.rates.bff`): certified lower bounds (Brown-Fawzi-Fawzi SDP hierarchy),
  valid despite solver tolerance; jaxbell's batched solver by default (cvxpy solvers with
  the optional extra ``pip install "jaxbell[sdp]"``).

The true DI value lies between the two, so every function takes ``method`` as one name or a
sequence of names: ``method=("qubit", "bff")`` computes both, in that order, on the same points
-- a trailing axis of the returned array (``di_entropy``, ``noisy_key_rate``,
``noisy_global_rate``, ``critical_visibility``), or a ``method`` dimension of the dataset
(``rate_curve``, ``noisy_rate_curve``, which then also carry the gap between the two). With a
sequence, ``options`` is keyed by method: ``options={"qubit": {...}, "bff": {"m": 4}}``.

Backends live in :mod:`jaxbell.rates.backends`: each declares its bound (attack or certified),
the kinds, constraints and preprocessing it supports, whether it certifies affine bounds, and
its options, and computes a batch of points under one :class:`~jaxbell.rates.values.Protocol`.
This module asks the registry (``backends.get(method)``) and never a name. One rate kernel,
:func:`_rate`, turns entropies into rates (entropy minus the error-correction cost of the
device's or the data's behaviour, maximised over the inputs the protocol leaves open); the
thresholds are one bisection (:func:`_bisect`) and one golden section (:func:`_golden_max`),
vectorised over points. A curve of one method carries a scalar ``method`` coordinate, so curves
combine with ``xarray.concat([...], dim="rate_method")`` over their shared variables. Every
public function takes ``protocol=`` (:class:`~jaxbell.rates.values.Protocol`) and, where a
device is modelled, ``device=`` (:class:`~jaxbell.rates.values.Device`); the loose keywords
build them (docs/architecture.md).

White noise: E -> v E for the correlators of eq. (6) (the state mixed with the maximally mixed
state with weight 1 - v), so <B> = v eta^Q and the marginals stay uniform. With h the binary
entropy,

    noisy_key_rate    = max_xy [ F_x(v |eta^Q|) - h((1 + v E[x, y])/2) ],
    noisy_global_rate = max_xy   G_xy(v |eta^Q|),

F_x and G_xy the DI entropies of kind "key" and "global" (even in <B>); ``x`` (and ``y``) may
fix the inputs instead of maximising over them. The key rate is returned as computed,
negative where error correction costs more than the secrecy. The same rates of the noisy
strategy itself, Eve holding the purification of the noisy state
(:func:`noisy_strategy_entropy`), are achievable: upper bounds on both methods' values.

References
----------
L. Wooltorton, P. Brown and R. Colbeck, Phys. Rev. Lett. 132, 210802 (2024): eq. (1)-(6).
I. Devetak and A. Winter, Proc. R. Soc. A 461, 207 (2005) (eq. 1).
P. Brown, H. Fawzi and O. Fawzi, "Device-independent lower bounds on the conditional von
Neumann entropy", Quantum 8, 1445 (2024), arXiv:2106.13692 (method "bff").
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr
from jax.typing import ArrayLike

from jaxbell._checks import as_angles, as_real_array, shown
from jaxbell._precision import x64_scope
from jaxbell.dataset import (
    BELOW_BOUND_REFERENCES,
    noisy_rate_dataset,
    rate_curve_dataset,
)
from jaxbell.entropy import _h_small, _shannon
from jaxbell.family import _local_bound, _quantum_bound_jit, bell_coefficients, is_self_testing
from jaxbell.nonlocality import max_chsh_value
from jaxbell.rates import backends
from jaxbell.rates.backends import Batch
from jaxbell.rates.protocol import (
    behaviour_correlators,
    check_behaviour,
    check_preprocessing,
    device_behaviour,
    error_correction_cost,
)
from jaxbell.rates.qubit import _check_kind_inputs
from jaxbell.rates.values import (
    CONSTRAINTS,
    KINDS,
    Device,
    Protocol,
    check_visibility,
    front_door,
)
from jaxbell.strategy import (
    _angle_sums,
    _strategy_angles,
    minority_probability,
    strategy_correlators,
)

__all__ = [
    "BOUNDS",
    "CONSTRAINTS",
    "CRITICAL_STATUSES",
    "RATE_RESOLUTION",
    "critical_efficiency",
    "critical_visibility",
    "di_entropy",
    "noisy_global_rate",
    "noisy_key_rate",
    "noisy_rate_curve",
    "noisy_strategy_entropy",
    "observed_key_rate",
    "rate_curve",
]


#: What each method's value is: an upper bound on the DI infimum (achieved by explicit
#: strategies) or a certified lower bound, read from the backend registry (a backend
#: registered later shows here too). The gaps are upper minus lower.
class _Bounds(Mapping):
    def __getitem__(self, name):
        return backends.get(name).bound if name in backends.names() else {}[name]

    def __iter__(self):
        return iter(backends.names())

    def __len__(self):
        return len(backends.names())


BOUNDS = _Bounds()


def _references(methods) -> str:
    """The references of a dataset of these methods' values."""
    extra = [backends.get(m).reference for m in methods if backends.get(m).reference]
    return "; ".join([BELOW_BOUND_REFERENCES, *dict.fromkeys(extra)])


# --- checks -----------------------------------------------------------------------------------


def _constraints(methods, per_method, protocol: Protocol) -> dict[str, str]:
    """The constraint of each method: the protocol's, or (protocol constraint None) what the
    method's own options name (``options={"constraint": ...}`` of "bff"), else "bell".

    A protocol constraint and an options entry that differ raise a ValueError naming both.
    """
    out = {}
    for m in methods:
        given = backends.get(m).options_constraint(per_method[m])
        if protocol.constraint is not None and given is not None and given != protocol.constraint:
            raise ValueError(
                f"constraint={protocol.constraint!r} and options['constraint']={given!r} "
                f"(method {m!r}) disagree: give one of them"
            )
        out[m] = protocol.constraint if protocol.constraint is not None else (given or "bell")
    return out


def _protocols(methods, per_method, protocol: Protocol) -> dict[str, Protocol]:
    """The protocol of each method, its constraint resolved, checked against the backend."""
    cons = _constraints(methods, per_method, protocol)
    out = {m: protocol.replace(constraint=cons[m]) for m in methods}
    for m in methods:
        backends.get(m).check(out[m])
    return out


def _check_kind(kind, x, y):
    """Checked (x, y) for ``kind``: the qubit backend's own check (one message for both)."""
    return _check_kind_inputs(kind, x, y)[1:]


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


def _check_bell_value(bell_value, bell_max) -> np.ndarray:
    """Checked Bell values; values within rounding of the quantum maximum are clipped to it.

    The rounding is float64's, or float32's where the value is a float32 array or JAX's x64
    mode is off (then ``quantum_bound`` itself is computed in float32, and a Python float
    made from it is no closer to the true maximum)."""
    dtype = np.asarray(bell_value).dtype
    eta = as_real_array(bell_value, "bell_value")
    shape = np.broadcast_shapes(eta.shape, np.shape(bell_max))
    eta, top = np.broadcast_to(eta, shape), np.broadcast_to(bell_max, shape)
    rtol = 1e-12
    single = np.issubdtype(dtype, np.floating) and np.finfo(dtype).eps > np.finfo(np.float64).eps
    if single or not jax.config.jax_enable_x64:
        rtol = 8 * float(np.finfo(np.float32).eps)  # the library's own float32 rounding
    beyond = np.abs(eta) > top * (1 + rtol) + 1e-15
    if np.any(beyond):
        i = np.flatnonzero(beyond.reshape(-1))[0]
        raise ValueError(
            f"|bell_value| must not exceed the quantum maximum of |<B>| for the tuple "
            f"(|eta^Q| of eq. 5 where condition (4) holds, else eta^L of eq. 3): got "
            f"{shown(eta.reshape(-1)[i])} where the maximum is {shown(top.reshape(-1)[i])}; no "
            "quantum "
            "strategy reaches it"
        )
    return np.clip(eta, -top, top)


def _as_output(arrays: list[np.ndarray], multi: bool) -> jax.Array:
    """float64 jax.Array; several methods stacked on a trailing axis."""
    out = np.stack(arrays, -1) if multi else arrays[0]
    with x64_scope():
        return jnp.asarray(out, dtype=jnp.float64)


# --- DI entropy ---------------------------------------------------------------------------------


def _entropy_request(fn, protocol, kind, x, y, preprocessing, method, options):
    """The protocol (x, y checked), methods, their options and the flip probability of a call
    of :func:`di_entropy` or :func:`rate_curve` (``fn``, for the front door's messages)."""
    if protocol is None:
        _check_kind(kind, x, y)  # one input each: this function's own messages
    protocol, _ = front_door(
        fn, protocol, None, kind=kind, x=x, y=y, preprocessing=preprocessing, constraint=None
    )
    methods, multi = backends.methods(method)
    per_method = backends.split_options(methods, options, multi)
    x, y = _check_kind(protocol.kind, protocol.x, protocol.y)
    flip = check_preprocessing(protocol.preprocessing)
    if flip and protocol.kind != "key":
        raise ValueError(f"preprocessing applies to kind 'key' only, not {protocol.kind!r}")
    return protocol.replace(x=x, y=y), methods, multi, per_method, flip


def di_entropy(
    theta: ArrayLike,
    phi: ArrayLike,
    omega: ArrayLike,
    bell_value: ArrayLike,
    *,
    kind: str = "key",
    x: int = 0,
    y: int = 0,
    method: str | Sequence[str] = "qubit",
    options: Mapping[str, Any] | None = None,
    preprocessing: float = 0.0,
    protocol: Protocol | None = None,
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

    With ``method="bff"`` the value is a **certified lower bound** on the infimum: the
    Brown-Fawzi-Fawzi SDP hierarchy with the solver's dual corrected for its residuals
    (:func:`jaxbell.bff_entropy`, raised to 0 where negative; exactly 0 for
    |bell_value| <= eta^L, without an SDP). NaN where a point is not certified; its status
    (infeasible, solver failed, inaccurate) is the ``bff_status`` of :func:`rate_curve` with
    ``method="bff"``, or ``jaxbell.bff_entropy(...).status``. m - 1 SDPs per point, all
    points in one batch (cvxpy solvers, ``options={"solver": "CLARABEL"}``, need
    ``pip install "jaxbell[sdp]"``).

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
    method : str or sequence of str
        Backend: "qubit" (explicit strategies, upper bound) or "bff" (certified lower bound);
        a sequence such as ``("qubit", "bff")`` computes each, stacked on a trailing axis.
    options : dict, optional
        Backend settings; for "qubit" see :class:`jaxbell.rates.qubit.QubitOptions`
        (directions, starts, steps, refine, learning_rate, tol, seed), for "bff"
        :class:`jaxbell.rates.bff.BffOptions` (m, level, eve_pairs, extras, solver, processes,
        progress, max_correction, constraint, preprocessing). With several methods, keyed by method:
        ``{"qubit": {...}, "bff": {...}}``.
    preprocessing : float
        Kind "key": Alice flips her raw key bit with probability p in [0, 1/2] (noisy
        preprocessing, Ho et al., PRL 124, 230502 (2020)); the entropy is then H(A'|X=x, E),
        h(p) for |bell_value| <= eta^L. Both methods ("bff": the key POVM of the
        relaxation becomes (1 - p) P_a + p P_(1-a)).
    protocol : Protocol, optional
        ``kind``, ``x``, ``y``, ``preprocessing`` (and ``constraint``) as one value,
        :class:`jaxbell.Protocol`, instead of the keywords (the same bits).

    Returns
    -------
    jax.Array
        Bits (float64), the broadcast shape (plus a trailing axis, one entry per method, when
        ``method`` is a sequence); in [0, 1] for "key", [0, 2] for "global"; NaN where the
        backend's solve failed or did not converge.

    Raises
    ------
    ValueError
        Unknown ``kind`` or ``method``, ``x``/``y`` not in {0, 1}, non-finite input, or
        |bell_value| beyond the quantum maximum.
    TypeError
        Unknown options (the message lists the valid ones).
    ImportError
        ``method="bff"`` with a cvxpy solver and without cvxpy or the solver (the message
        names ``jaxbell[sdp]``).

    References
    ----------
    Eq. (1)-(6) and Supplemental Material of Wooltorton, Brown & Colbeck, PRL 132, 210802
    (2024); S. Pironio et al., New J. Phys. 11, 045021 (2009); P. Brown, H. Fawzi and
    O. Fawzi, Quantum 8, 1445 (2024), arXiv:2106.13692.
    """
    protocol, methods, multi, per_method, flip = _entropy_request(
        di_entropy, protocol, kind, x, y, preprocessing, method, options
    )
    kind, x, y = protocol.kind, protocol.x, protocol.y
    protocols = _protocols(methods, per_method, protocol.replace(x=x, y=y))
    t, p, w = _angles64(theta, phi, omega)
    _, _, _, top = _bounds64(t, p, w)
    eta = _check_bell_value(bell_value, top)
    shape = eta.shape
    t, p, w = (np.broadcast_to(a, shape) for a in (t, p, w))
    batch = Batch(t, p, w, eta)
    out = [backends.get(m).entropy(batch, protocols[m], per_method[m]).value for m in methods]
    return _as_output(out, multi)


# --- rate curves --------------------------------------------------------------------------------


def _default_bell_values(lo, top, st, num):
    if st:
        return np.linspace(lo, top, num)
    return np.linspace(0.0, top, num)


#: Fields that several methods share; with several methods they gain a ``method`` dimension
_SHARED_FIELDS = ("entropy", "curve_status")


def _merge_curves(results: dict[str, tuple]) -> tuple[dict, dict, dict]:
    """Fields, tangents and settings of several methods' curves, shared fields stacked."""
    fields: dict = {}
    tangents: dict = {}
    settings: dict = {}
    for name in _SHARED_FIELDS:
        fields[name] = np.stack([np.asarray(r[0][name]) for r in results.values()])
    seen: dict[str, str] = {}
    for method, (f, tg, st) in results.items():
        for k, v in {**f, **tg}.items():
            if k in _SHARED_FIELDS:
                continue
            if k in fields or k in tangents:
                raise ValueError(f"methods {seen[k]!r} and {method!r} both give field {k!r}")
            seen[k] = method
            (tangents if k in tg else fields)[k] = v
        for k, v in st.items():
            clash = any(k in other[2] for m2, other in results.items() if m2 != method)
            settings[f"{method}_{k}" if clash else k] = v
    pair = backends.bracket(list(results))
    if pair is not None:  # the attack's value minus the certified one
        methods = list(results)
        ent = fields["entropy"]
        fields["entropy_gap"] = ent[methods.index(pair[0])] - ent[methods.index(pair[1])]
    return fields, tangents, settings


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
    method: str | Sequence[str] = "qubit",
    options: Mapping[str, Any] | None = None,
    progress: bool | None = False,
    preprocessing: float = 0.0,
    protocol: Protocol | None = None,
) -> xr.Dataset:
    r"""The DI entropy of one tuple as a labelled curve over the Bell value.

    Parameters
    ----------
    theta, phi, omega : float
        One tuple of eq. (2), radians.
    kind, x, y, options, protocol
        As in :func:`di_entropy`.
    method : str or sequence of str
        "qubit" (upper bound, the default), "bff" (certified lower bound), or both, e.g.
        ``("qubit", "bff")``: then ``entropy`` and ``curve_status`` gain a ``method``
        dimension, each method's own variables are kept, and ``entropy_gap`` is added.
    num : int
        Number of Bell values (default 64), evenly spaced from eta^L to |eta^Q| for a
        self-testing tuple, from 0 to eta^L otherwise (where the curve is 0).
    bell_value : array_like, optional
        Explicit Bell values instead (1-D; |bell_value| within the quantum maximum).
    progress : bool or None
        Show tqdm bars: over the optimisation passes ("qubit") and over the SDP points
        ("bff"; run in parallel processes per ``options["processes"]``). None: only on a
        terminal.
    preprocessing : float
        Kind "key": the entropy H(A'|X=x, E) of Alice's bit flipped with probability p in
        [0, 1/2] (noisy preprocessing, as in :func:`di_entropy`; "bff" needs the certified
        preprocessing of :mod:`jaxbell.rates.bff`). Recorded in the attribute ``preprocessing``.

    Returns
    -------
    xarray.Dataset
        Coordinate ``bell_value`` and ``method`` (scalar for one method, a dimension for
        several). For every method: ``entropy`` (bits; NaN where ``curve_status`` is not 0, as
        :func:`di_entropy`) and ``curve_status`` (0 converged or certified, 1 gap above tol,
        2 failed). For "qubit" also: ``hull_entropy`` (the attack's entropy at every point,
        converged or not), ``entropy_lower_estimate``
        and ``gap`` (tangent-line estimate and the discretisation gap of the hull segment),
        ``slope`` and ``intercept`` of the supporting line H >= intercept + slope * <B> (the
        affine min-tradeoff function), the optimal attack as a mixture of two qubit strategies
        (dim ``component``): ``mixture_weight``, ``component_bell_value``,
        ``component_entropy``, ``alice_angle`` (x), ``bob_angle`` (y) in the X-Z plane and the
        real ``state`` (row, col in the basis |ab>); and per optimised slope (dim
        ``tangent``): ``tangent_slope``, ``tangent_intercept``, ``tangent_spread`` and
        ``tangent_agreement`` between random starts. For "bff" also: ``bff_status``
        (the certificate's: 0 certified, 1 infeasible, 2 solver failed, 3 inaccurate),
        ``bff_solver_status`` (the SDP solver's own, worst over the nodes: 0 optimal, 1
        optimal_inaccurate, 2 iteration_limit, 3 infeasible, 4 failed, 5 not_solved) and
        ``certificate_correction``. With both: ``entropy_gap`` = qubit - bff (>= 0 up to
        the solvers' rounding with constraint "bell": the true DI entropy lies in between).
        Attributes record the tuple, kind, inputs, bounds, every option (``option_*``), the
        passes, the largest gap and spread, the SDP sizes and the time taken (settings that
        two methods share are prefixed with the method). Curves of one method combine with
        ``xarray.concat([a[["entropy"]], b[["entropy"]]], dim="rate_method")``.

    References
    ----------
    Eq. (2)-(6) and Supplemental Material of Wooltorton, Brown & Colbeck, PRL 132, 210802
    (2024); Brown, Fawzi & Fawzi, Quantum 8, 1445 (2024) (method "bff").
    """
    protocol, methods, multi, per_method, flip = _entropy_request(
        rate_curve, protocol, kind, x, y, preprocessing, method, options
    )
    kind, x, y = protocol.kind, protocol.x, protocol.y
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
        if not st:
            logging.getLogger("jaxbell").warning(
                "(theta, phi, omega) = (%.6g, %.6g, %.6g) is not self-testing (condition (4) "
                "fails): its quantum bound is the local bound eta^L = %.6g, so the Bell values "
                "run from 0 to eta^L, where a local strategy reaches every value and the DI "
                "entropy is 0",
                float(t), float(p), float(w), lo,
            )  # fmt: skip
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
        "method": ", ".join(methods),
        "preprocessing": flip,
        "local_bound": lo,
        "quantum_bound": q,
        "bell_max": top,
        "self_testing": bool(st),
        "dtype": "float64",
        "jax_version": jax.__version__,
        "devices": [str(d) for d in jax.devices()],
    }
    protocols = _protocols(methods, per_method, protocol.replace(x=x, y=y))
    batch = Batch(*(np.full(eta.shape, a) for a in (t, p, w)), eta)
    results = {
        m: backends.get(m).curve(batch, protocols[m], per_method[m], progress) for m in methods
    }
    if multi:
        fields, tangents, extra = _merge_curves(results)
        label = list(methods)
    else:
        fields, tangents, extra = results[methods[0]]
        label = methods[0]
    return rate_curve_dataset(
        eta, fields, tangents, method=label, settings=settings | extra,
        references=_references(methods),
    )  # fmt: skip


# --- noisy rates and critical visibility ----------------------------------------------------


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


def _noisy_state_entropy(v):
    """S(rho_v) of rho_v = v |psi><psi| + (1 - v) 1/4, bits (eigenvalues (1+3v)/4, (1-v)/4 x3)."""
    with x64_scope():
        vv = jnp.asarray(v)
        small = (1.0 - vv) / 4.0
        lam = jnp.stack([(1.0 + 3.0 * vv) / 4.0, small, small, small], -1)
        return np.asarray(_shannon(lam))


def _achievable_entropy(t, p, w, v):
    """Entropies of the noisy strategy of eq. (6) itself (Eve purifies the noisy state), bits.

    {"key": H(A|X=x, E), "global": H(AB|X=x, Y=y, E)} and the error-correction cost, each of
    shape (..., x, y) (the key entropy does not depend on the inputs).
    """
    cost = _error_correction_cost(t, p, w, v)  # h((1 + v E[x, y])/2)
    s_rho = _noisy_state_entropy(v)[..., None, None]
    with x64_scope():
        h_v = np.asarray(_h_small(jnp.asarray((1.0 - np.asarray(v)) / 2.0)))[..., None, None]
    key = np.broadcast_to(1.0 + h_v - s_rho, cost.shape)
    return {"key": key, "global": 1.0 + cost - s_rho, "cost": cost}


def _achievable(t, p, w, v, kind, xs, ys):
    """Rates of the noisy strategy of eq. (6) itself, maximised over the inputs xs, ys."""
    ent = _achievable_entropy(t, p, w, v)
    rate = ent["key"] - ent["cost"] if kind == "key" else ent["global"]
    sub = rate[..., list(xs), :][..., :, list(ys)]
    return sub.reshape(sub.shape[:-2] + (-1,)).max(-1)


def noisy_strategy_entropy(
    theta: ArrayLike,
    phi: ArrayLike,
    omega: ArrayLike,
    visibility: ArrayLike,
    *,
    kind: str = "key",
    x: int = 0,
    y: int = 0,
) -> jax.Array:
    r"""H(A|X=x,E) or H(AB|X=x,Y=y,E) of the strategy of eq. (6) under white noise, bits.

    The state ``rho_v = v |psi><psi| + (1 - v) 1/4`` with Eve holding its purification and
    the measurements of eq. (6); ``<B> = v eta^Q``, correlators ``v E``. An *achievable*
    value: the DI infimum at that Bell value (or at those correlators) is at most this, so it
    bounds both methods' values from above. With H(A'|E) = S(Delta(rho)) - S(rho) (Delta: the
    dephasing of the measured outcomes; Eve purifies rho):

    .. math::

        H(A|X{=}x,E) = 1 + h\big(\tfrac{1+v}{2}\big) - S(\rho_v),\qquad
        H(AB|X{=}x,Y{=}y,E) = 1 + h\big(\tfrac{1+vE_{xy}}{2}\big) - S(\rho_v),

    ``S(rho_v) = -((1+3v)/4) log2((1+3v)/4) - 3 ((1-v)/4) log2((1-v)/4)``, h the binary
    entropy (tests/test_rates.py checks both against an explicit purification).

    Parameters
    ----------
    theta, phi, omega : array_like
        Angles of eq. (2), radians; broadcast with ``visibility``.
    visibility : array_like
        v in [0, 1].
    kind : {"key", "global"}
    x, y : {0, 1}

    Returns
    -------
    jax.Array
        Bits, float64, the broadcast shape.

    References
    ----------
    Eq. (6) of Wooltorton, Brown & Colbeck, PRL 132, 210802 (2024); the purification formula
    e.g. in Pironio et al., New J. Phys. 11, 045021 (2009).
    """
    x, y = _check_kind(kind, x, y)
    t, p, w = _angles64(theta, phi, omega)
    v = check_visibility(visibility)
    shape = _broadcast_shape(theta=t, visibility=v)
    t, p, w, v = (np.broadcast_to(a, shape) for a in (t, p, w, v))
    out = _achievable_entropy(t, p, w, v)[kind][..., x, y]
    with x64_scope():
        return jnp.asarray(out, dtype=jnp.float64)


# --- protocols and devices: bob_key, preprocessing, constraint, efficiency ------------------

#: coarse grid of flip probabilities searched by ``preprocessing="optimal"`` before the
#: golden-section refinement (p = 1/2 itself gives exactly no key and is not searched)
_OPTIMAL_GRID = (0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.49)
#: width of the final golden-section bracket in p
_OPTIMAL_PTOL = 5e-3
#: an optimal rate at or below this many bits is not resolved from rounding: reported as 0
#: with preprocessing 1/2 (the flip of every bit with probability 1/2: no key, exactly 0)
RATE_RESOLUTION = 1e-12

#: status of a threshold (``return_status=True`` of the critical functions)
CRITICAL_STATUSES = ("found", "no_rate", "failed", "not_bisected")

_GOLDEN = (math.sqrt(5.0) - 1.0) / 2.0


def _bell_of(t, p, w, test):
    """|<B>| = |sum_xy c_xy E_xy| of a behaviour's test inputs (..., 2, 2, 2, 2)."""
    with x64_scope():
        c = np.asarray(bell_coefficients(t, p, w), dtype=np.float64)
        e = np.asarray(behaviour_correlators(jnp.asarray(test)), dtype=np.float64)
    return np.abs(np.sum(c * e, axis=(-2, -1)))


def _rate(t, p, w, backend, options, protocol: Protocol, observe) -> np.ndarray:
    """The one rate kernel: the rate of a batch of points under ``protocol`` (one flip
    probability), by ``backend``; flat float64 arrays, NaN propagates.

    Kind "key": max over Alice's inputs x and Bob's key inputs y of H(A'|X=x, E) -
    H(A'|X=x, Y=y, B), the Devetak-Winter rate with Alice's noisy preprocessing; kind
    "global": max over x, y of H(AB|X=x, Y=y, E). ``observe(x)`` gives what the protocol sees
    with key input x: (Bell values, test behaviour or None, whether it is the white noise of
    eq. (6), error-correction costs (n, Bob's key inputs)).
    """
    key = protocol.kind == "key"
    pairs = [(xi, 0) for xi in protocol.inputs]
    if not key:
        pairs = [(xi, yi) for xi in protocol.inputs for yi in protocol.y_inputs]
    rates = []
    for xi, yi in pairs:
        eta, test, white, cost = observe(xi)
        h = backend.entropy(
            Batch(t, p, w, eta, test, white), protocol.replace(x=xi, y=yi), options
        ).value
        rates.append(h[..., None] - cost if key else h[..., None])
    return np.max(np.concatenate(rates, -1), axis=-1)  # a failed input makes the max unknown


def _device(t, p, w, v, eff, backend, protocol: Protocol):
    """``observe`` of :func:`_rate` for the strategy of eq. (6) under white noise ``v`` and
    detection efficiency ``eff`` (flat arrays)."""
    _, q, _, top = _bounds64(t, p, w)
    lossless = np.asarray(eff) == 1.0
    white = bool(np.all(lossless))
    eta_white = np.minimum(v * np.abs(q), top)  # |v eta^Q| <= |eta^Q| <= max always
    flip = protocol.preprocessing
    if protocol.kind == "global":  # no error correction
        return lambda xi: (eta_white, None, True, None)
    closed = (
        white
        and protocol.bob_key is None
        and flip == 0
        and protocol.constraint in backend.white_noise_constraints
    )
    if closed:  # the paper's protocol: no behaviour needed, costs in closed form
        cost = _error_correction_cost(t, p, w, v)  # (..., x, y)
        return lambda xi: (eta_white, None, True, cost[..., xi, :])

    def observe(xi):
        with x64_scope():
            beh = np.asarray(
                device_behaviour(
                    t, p, w, visibility=v, efficiency=eff, bob_key=protocol.bob_key, x=xi
                ),
                dtype=np.float64,
            )
        test = beh[..., :2]
        eta = eta_white if white else np.where(lossless, eta_white, _bell_of(t, p, w, test))
        return np.minimum(eta, top), test, white, _costs(beh, xi, protocol)

    return observe


def _costs(beh, xi, protocol: Protocol) -> np.ndarray:
    """H(A'|X=x, Y=y, B) of the behaviour for Bob's key inputs y, (..., y)."""
    with x64_scope():
        return np.stack(
            [
                np.asarray(error_correction_cost(beh, xi, yi, preprocessing=protocol.preprocessing))
                for yi in protocol.bob_inputs
            ],
            -1,
        )


def _rates(t, p, w, v, eff, backend, options, protocol: Protocol):
    """Rates of the device (v, eff) on flat float64 arrays: (rate, optimal p or None)."""
    if protocol.preprocessing == "optimal":

        def rate(i, f):
            one = protocol.replace(preprocessing=f)
            args = (t[i], p[i], w[i])
            return _rate(*args, backend, options, one, _device(*args, v[i], eff[i], backend, one))

        return _optimal_rate(rate, t.size)
    observe = _device(t, p, w, v, eff, backend, protocol)
    return _rate(t, p, w, backend, options, protocol, observe), None


def _golden_max(f, lo, hi, ptol):
    """Per element, golden-section search of the maximum of ``f(indices, p)`` on [lo, hi].

    Returns (the best value probed, its p); elements with a NaN probe end as NaN."""
    a, b = lo.astype(np.float64), hi.astype(np.float64)
    c = b - _GOLDEN * (b - a)
    d = a + _GOLDEN * (b - a)
    idx = np.arange(a.size)
    fc, fd = f(idx, c), f(idx, d)
    best = np.where(fc >= fd, fc, fd)
    arg = np.where(fc >= fd, c, d)
    bad = ~(np.isfinite(fc) & np.isfinite(fd))
    while True:
        act = np.flatnonzero(~bad & (b - a > ptol))
        if act.size == 0:
            break
        left = fc[act] >= fd[act]  # the maximum lies in [a, d], else in [c, b]
        a_n = np.where(left, a[act], c[act])
        b_n = np.where(left, d[act], b[act])
        c_n = np.where(left, b_n - _GOLDEN * (b_n - a_n), d[act])
        d_n = np.where(left, c[act], a_n + _GOLDEN * (b_n - a_n))
        probe = np.where(left, c_n, d_n)
        val = f(act, probe)
        fc_n = np.where(left, val, fd[act])
        fd_n = np.where(left, fc[act], val)
        a[act], b[act], c[act], d[act], fc[act], fd[act] = a_n, b_n, c_n, d_n, fc_n, fd_n
        bad[act] |= ~np.isfinite(val)
        better = val > best[act]
        best[act] = np.where(better, val, best[act])
        arg[act] = np.where(better, probe, arg[act])
    return np.where(bad, np.nan, best), arg


def _by_value(rate, idx, flips):
    """rate(indices, flip) for per-element flips: one call per distinct flip probability."""
    out = np.full(idx.size, np.nan)
    for f in np.unique(flips):
        sel = flips == f
        out[sel] = rate(idx[sel], float(f))
    return out


def _optimal_rate(rate, n):
    """max over p in [0, 1/2] of ``rate(indices, p)`` for n elements: (rate, optimal p).

    A coarse grid (:data:`_OPTIMAL_GRID`, every element at once), then golden section in the
    bracket of each element's best grid point, to width :data:`_OPTIMAL_PTOL`. At p = 1/2 the
    rate is exactly 0 (Alice's bits are uniform and independent of everything), so the
    optimum is never negative; an optimum at or below :data:`RATE_RESOLUTION` bits is not
    resolved from rounding (H(A'|E) and H(A'|B) both tend to 1 as p -> 1/2) and is reported
    as 0 with p = 1/2. NaN (p NaN) where any probe failed.
    """
    idx = np.arange(n)
    grid = np.asarray(_OPTIMAL_GRID)
    vals = np.stack([np.asarray(rate(idx, float(g)), dtype=np.float64) for g in grid], -1)
    failed = ~np.all(np.isfinite(vals), -1)
    j = np.argmax(np.where(np.isfinite(vals), vals, -np.inf), -1)
    best, arg = vals[idx, j], grid[j]
    lo = grid[np.maximum(j - 1, 0)]
    hi = np.where(j + 1 < grid.size, grid[np.minimum(j + 1, grid.size - 1)], 0.5)
    ok = np.flatnonzero(~failed)
    if ok.size:
        g_best, g_arg = _golden_max(
            lambda i, f: _by_value(rate, ok[i], f), lo[ok], hi[ok], _OPTIMAL_PTOL
        )
        better = g_best > best[ok]
        failed[ok] |= ~np.isfinite(g_best)
        best[ok] = np.where(better, g_best, best[ok])
        arg[ok] = np.where(better, g_arg, arg[ok])
    unresolved = best <= RATE_RESOLUTION
    best = np.where(unresolved, 0.0, best)
    arg = np.where(unresolved, 0.5, arg)
    return np.where(failed, np.nan, best), np.where(failed, np.nan, arg)


def _threshold(rate, n, xtol, bar, lo=None):
    """Bisection of the smallest axis value in (lo, 1] with a positive rate, for n elements.

    ``rate(indices, values)``; returns (threshold, status codes of CRITICAL_STATUSES)."""
    idx = np.arange(n)
    right = np.ones(n)
    top = np.asarray(rate(idx, right), dtype=np.float64)
    if bar is not None:
        bar.update()
    # at the end of the axis the statistics may sit on the quantum boundary (e.g. Tsirelson's
    # point), where an explicit attack cannot be reached: the bisection only needs *some*
    # right end with a positive rate, so retry just inside
    redo = np.flatnonzero(~np.isfinite(top))
    if redo.size:
        right[redo] = 1.0 - xtol
        top[redo] = np.asarray(rate(redo, right[redo]), dtype=np.float64)
    # "positive" means above RATE_RESOLUTION: a certified entropy at its floor h(p) minus the
    # same h(p) of the error correction can differ from 0 by rounding only
    pos_top = top > RATE_RESOLUTION
    status = np.where(np.isfinite(top), np.where(pos_top, 0, 1), 2).astype(np.int8)
    status[redo] = np.where(pos_top[redo], 0, 2)  # not positive just inside: undecided
    left = np.zeros(n) if lo is None else np.minimum(np.asarray(lo, dtype=np.float64), 1.0)
    left, right, ok = _bisect(rate, left, right, status == 0, xtol, bar)
    status = np.where((status == 0) & ~ok, 2, status).astype(np.int8)
    return np.where(status == 0, right, np.nan), status


def _optimal_threshold(crit_at, n):
    """min over p in [0, 1/2] of the threshold ``crit_at(indices, p)`` -> (value, status), by
    the grid of :data:`_OPTIMAL_GRID` and golden section (each probe is one bisection).

    The rate with p optimised is positive exactly where some p gives a positive rate, so the
    threshold is the least threshold over p. Returns (threshold, status, optimal p)."""
    idx = np.arange(n)
    grid = np.asarray(_OPTIMAL_GRID)
    vals, stats = [], []
    for g in grid:
        c, s = crit_at(idx, float(g))
        vals.append(c)
        stats.append(s)
    vals, stats = np.stack(vals, -1), np.stack(stats, -1)
    failed = np.any(stats == 2, -1)
    score = np.where(stats == 0, -vals, -np.inf)  # maximise -threshold; no rate: -inf
    j = np.argmax(score, -1)
    found = np.isfinite(score[idx, j])
    best, arg = score[idx, j], grid[j]
    ok = np.flatnonzero(found & ~failed)
    if ok.size:
        lo = grid[np.maximum(j[ok] - 1, 0)]
        hi = np.where(j[ok] + 1 < grid.size, grid[np.minimum(j[ok] + 1, grid.size - 1)], 0.5)

        def g_at(i, f):
            out = np.full(i.size, np.nan)
            for fv in np.unique(f):
                sel = f == fv
                c, s = crit_at(ok[i[sel]], float(fv))
                out[sel] = np.where(s == 0, -c, np.where(s == 1, -2.0, np.nan))
            return out

        g_best, g_arg = _golden_max(g_at, lo, hi, _OPTIMAL_PTOL)
        failed[ok] |= ~np.isfinite(g_best)
        better = g_best > best[ok]
        best[ok] = np.where(better, g_best, best[ok])
        arg[ok] = np.where(better, g_arg, arg[ok])
    status = np.where(failed, 2, np.where(found, 0, 1)).astype(np.int8)
    value = np.where(status == 0, -best, np.nan)
    return value, status, np.where(status == 0, arg, np.nan)


def _protocol_thresholds(t, p, w, fixed, axis, methods, per_method, protocols, tols, progress):
    """Thresholds per method along ``axis`` ("visibility" or "efficiency"), ``fixed`` the other.

    Flat arrays; returns lists (per method) of (threshold, status, optimal p or None)."""
    from tqdm import tqdm

    flip = protocols[methods[0]].preprocessing
    steps = sum(int(math.ceil(math.log2(1.0 / tols[m]))) + 2 for m in methods)
    if flip == "optimal":
        steps *= len(_OPTIMAL_GRID) + 8
    bar = tqdm(
        total=steps,
        desc=f"critical {axis} (bisection steps)",
        disable=not progress if progress is not None else None,
    )
    out = []
    with bar:
        for m in methods:
            backend = backends.get(m)
            opts = backend.quiet_options(per_method[m])

            def crit_at(i, f, backend=backend, opts=opts, protocol=protocols[m], xtol=tols[m]):
                one = protocol.replace(preprocessing=f)

                def rate(j, val):
                    k = i[j]
                    v, e = (val, fixed[k]) if axis == "visibility" else (fixed[k], val)
                    args = (t[k], p[k], w[k], v, e)
                    return _rates(*args, backend, opts, one)[0]

                return _threshold(rate, i.size, xtol, bar)

            if flip == "optimal":
                out.append(_optimal_threshold(crit_at, t.size))
            else:
                c, s = crit_at(np.arange(t.size), flip)
                out.append((c, s, None))
    return out


def _broadcast_shape(*, theta, **named) -> tuple[int, ...]:
    """The common shape of the angles (``theta`` standing for the broadcast of theta, phi and
    omega) and the ``named`` device arrays; a ValueError naming them where none exists."""
    shapes = {"theta, phi, omega": np.shape(theta)} | {k: np.shape(v) for k, v in named.items()}
    try:
        return np.broadcast_shapes(*shapes.values())
    except ValueError:
        said = ", ".join(f"{k} {s}" for k, s in shapes.items())
        raise ValueError(
            f"the shapes of {said} do not broadcast together (NumPy's rules): give arrays of "
            "one shape, or add axes, e.g. theta[:, None] with visibility[None, :]"
        ) from None


def _device_rates(theta, phi, omega, protocol, device, method, options, return_preprocessing):
    """The rates of :func:`noisy_key_rate` and :func:`noisy_global_rate` (checked values)."""
    if not isinstance(return_preprocessing, (bool, np.bool_)):
        raise TypeError(f"return_preprocessing must be True or False, got {return_preprocessing!r}")
    methods, multi = backends.methods(method)
    per_method = backends.split_options(methods, options, multi)
    protocols = _protocols(methods, per_method, protocol)
    t, p, w = _angles64(theta, phi, omega)
    v, eff = device.visibility, device.efficiency
    shape = _broadcast_shape(theta=t, visibility=v, efficiency=eff)
    flat = [np.broadcast_to(a, shape).reshape(-1) for a in (t, p, w, v, eff)]
    rates, flips = [], []
    for m in methods:
        r, f = _rates(*flat, backends.get(m), per_method[m], protocols[m])
        rates.append(np.reshape(r, shape))
        flips.append(
            np.reshape(np.full(r.shape, protocol.preprocessing) if f is None else f, shape)
        )
    out = _as_output(rates, multi)
    if return_preprocessing:
        return out, _as_output(flips, multi)
    return out


def noisy_key_rate(
    theta: ArrayLike,
    phi: ArrayLike,
    omega: ArrayLike,
    visibility: ArrayLike | None = None,
    *,
    x: int | None = None,
    bob_key: int | str | None = None,
    preprocessing: float | str = 0.0,
    constraint: str | None = None,
    efficiency: ArrayLike = 1.0,
    method: str | Sequence[str] = "qubit",
    options: Mapping[str, Any] | None = None,
    return_preprocessing: bool = False,
    protocol: Protocol | None = None,
    device: Device | None = None,
) -> jax.Array | tuple[jax.Array, jax.Array]:
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
    x : {0, 1} or None
        Alice's key input; None (default): the best of both (twice the entropies to compute).
    bob_key : None, 0, 1, "aligned" or 2
        Bob's key input. None (default): the best of his two test inputs (the paper's
        protocol); 0 or 1: that input; "aligned" (or 2): a third, key-only input measuring
        the observable perfectly correlated with A_x on the state of eq. (6) (Pironio et al.
        2009). The error-correction cost is H(A'|X=x, Y=y, B) of
        :func:`jaxbell.device_behaviour` (:func:`jaxbell.error_correction_cost`); the
        entropy still comes from the Bell value of the test inputs (constraint "bell").
    preprocessing : float or "optimal"
        Alice flips each raw key bit with probability p in [0, 1/2] (noisy preprocessing, Ho
        et al., PRL 124, 230502 (2020)): the rate is H(A'|X=x, E) - H(A'|X=x, Y=y, B)
        ("bff" needs the certified preprocessing of :mod:`jaxbell.rates.bff`). ``"optimal"``: the
        largest rate over p per point (a grid, then golden section; about 19 rate
        evaluations). Never negative (p = 1/2 gives exactly 0); an optimum at or below
        :data:`RATE_RESOLUTION` is not resolved from rounding and is reported as 0 with p = 1/2.
    constraint : {None, "bell", "correlators", "full"}
        What the protocol tests of the device's test inputs: the Bell value (None: "bell", or
        for "bff" ``options["constraint"]`` as before), the four correlators, or every
        p(ab|xy). Method "qubit" with "correlators"/"full" runs the explicit attack
        (:func:`jaxbell.rates.attack.attack_entropy`, 5-40 s per point; ``options`` are then its
        AttackOptions plus ``seed``; NaN where it did not converge). A keyword and an
        ``options["constraint"]`` that differ raise a ValueError.
    efficiency : array_like
        Detection efficiency in (0, 1] of both parties, a no-click binned to outcome 0
        (:func:`jaxbell.device_behaviour`); the Bell value and the error-correction cost are
        those of the lossy behaviour. Broadcasts with the angles and ``visibility``.
    method, options
        As in :func:`di_entropy` (a sequence of methods adds a trailing axis).
    return_preprocessing : bool
        Also return the flip probability of each rate (the optimum for ``"optimal"``).
    protocol, device : Protocol, Device, optional
        The keywords above as values (:class:`jaxbell.Protocol`: ``x``, ``bob_key``,
        ``preprocessing``, ``constraint``; :class:`jaxbell.Device`: ``visibility``,
        ``efficiency``; ``visibility`` may then be left out). The same bits as the keywords;
        a keyword set beside its value is a TypeError.

    Returns
    -------
    jax.Array or (jax.Array, jax.Array)
        Bits per round, float64, the broadcast shape. With method "qubit" an upper bound on
        the DI rate of this protocol (the entropy is an upper bound, achieved by explicit
        strategies), tight when the optimisation is global; with "bff" a certified lower bound.

    References
    ----------
    Eq. (1) and (6) of Wooltorton, Brown & Colbeck, PRL 132, 210802 (2024);
    I. Devetak and A. Winter, Proc. R. Soc. A 461, 207 (2005).
    """
    protocol, device = front_door(
        noisy_key_rate, protocol, device, x=x, bob_key=bob_key, preprocessing=preprocessing,
        constraint=constraint, visibility=visibility, efficiency=efficiency,
    )  # fmt: skip
    if protocol.kind != "key":
        raise ValueError(
            f"noisy_key_rate computes kind 'key', got a protocol of kind {protocol.kind!r}"
        )
    return _device_rates(theta, phi, omega, protocol, device, method, options, return_preprocessing)


def noisy_global_rate(
    theta: ArrayLike,
    phi: ArrayLike,
    omega: ArrayLike,
    visibility: ArrayLike | None = None,
    *,
    x: int | None = None,
    y: int | None = None,
    method: str | Sequence[str] = "qubit",
    options: Mapping[str, Any] | None = None,
    protocol: Protocol | None = None,
    device: Device | None = None,
) -> jax.Array:
    r"""Global randomness rate of the strategy of eq. (6) under white noise, bits per round.

    ``max_xy G_xy(v |eta^Q|)``, G_xy = :func:`di_entropy` of kind "global" with inputs
    (x, y) at <B> = v eta^Q (``x``, ``y``: fix the inputs instead of maximising; None: both).
    In [0, 2]; 0 exactly when v |eta^Q| <= eta^L; NaN where the backend failed. At v = 1 for
    a self-testing tuple this is :func:`jaxbell.global_rate_at_quantum_bound`. Other arguments
    as in :func:`noisy_key_rate`. With method "bff", level 2, each pair (x, y) costs about a
    minute of CPU per point: fix ``x`` and ``y``, or use ``options={"level": 1}``.
    ``protocol=`` / ``device=`` give ``x``, ``y`` and ``visibility`` as values.

    References
    ----------
    Wooltorton, Brown & Colbeck, PRL 132, 210802 (2024), r^global below eq. (1).
    """
    protocol, device = front_door(
        noisy_global_rate, protocol, device, x=x, y=y, visibility=visibility
    )
    protocol = protocol.replace(kind="global", constraint=None)
    if np.any(device.efficiency != 1.0):
        raise ValueError("noisy_global_rate is for white noise only: device.efficiency must be 1")
    return _device_rates(theta, phi, omega, protocol, device, method, options, False)


def _bisect(rate, left, right, ok, xtol, bar=None):
    """Per element, shrink [left, right] around the first positive rate; right stays positive.

    ``rate(indices, v)`` evaluates the elements ``indices`` at visibilities ``v``; elements
    with a non-finite rate inside the bracket are marked not ok (and left alone).
    """
    left, right, ok = left.copy(), right.copy(), ok.copy()
    iters = int(math.ceil(math.log2(1.0 / xtol))) + 1
    for _ in range(iters):
        active = np.flatnonzero(ok & (right - left > xtol))
        if active.size == 0:
            break
        mid = 0.5 * (left[active] + right[active])
        val = np.asarray(rate(active, mid))
        finite = np.isfinite(val)
        ok[active] &= finite
        pos = val > RATE_RESOLUTION  # a rate within rounding of 0 is not a rate
        right[active] = np.where(pos, mid, right[active])
        left[active] = np.where(pos, left[active], mid)
        if bar is not None:
            bar.update()
    return left, right, ok


def _achievable_critical(t, p, w, kind, xs, ys):
    """Critical visibility of the noisy strategy itself (flat arrays): (threshold, below).

    Where its rate vanishes an explicit attack leaves no rate, so the protocol's threshold is
    at least ``below`` (NaN where the rate is not positive even at v = 1).
    """

    def rate(i, v):
        return _achievable(t[i], p[i], w[i], v, kind, xs, ys)

    ok = rate(np.arange(t.size), np.ones(t.shape)) > 0
    left, right, ok = _bisect(rate, np.zeros(t.shape), np.ones(t.shape), ok, 1e-12)
    return np.where(ok, right, np.nan), np.where(ok, left, np.nan)


def _local_visibility(lo, q, t, p, w, constraint: str):
    """Below this visibility the observed statistics have a local model (no rate positive)."""
    if constraint == "correlators":  # the correlators v E are local iff max CHSH <= 2
        with x64_scope():
            mc = np.asarray(max_chsh_value(strategy_correlators(t, p, w)), dtype=np.float64)
        return np.minimum(2.0 / mc, 1.0)
    return lo / np.abs(q)


def _critical(t, p, w, lo, q, backend, options, protocol, xtol, bar, floor=None):
    """Critical visibilities of one method for the selected tuples (flat arrays), and brackets."""
    constraint = protocol.constraint
    left = _local_visibility(lo, q, t, p, w, constraint)
    xs = protocol.inputs
    ys = protocol.y_inputs if protocol.kind == "global" else (0, 1)
    if backend.bound == "lower":
        # valid lower ends of the bracket, which save solves: the visibility where the rate of
        # the noisy strategy itself vanishes (an explicit attack: no protocol rate above it),
        # and, given, the attack's threshold (its rates are achievable upper bounds)
        _, below = _achievable_critical(t, p, w, protocol.kind, xs, ys)
        left = np.maximum(left, np.where(np.isfinite(below), below, 0.0))
        if floor is not None and constraint == "bell":
            left = np.maximum(left, np.where(np.isfinite(floor), floor, 0.0))
    left = np.minimum(left, 1.0)
    right = np.ones_like(left)

    def rate(i, v):
        return _rates(t[i], p[i], w[i], v, np.ones(i.size), backend, options, protocol)[0]

    top = rate(np.arange(t.size), right)
    ok = top > RATE_RESOLUTION
    if bar is not None:
        bar.update()
    left, right, ok = _bisect(rate, left, right, ok, xtol, bar)
    return np.where(ok, right, np.nan), np.where(ok, left, np.nan)


def _check_xtol(xtol, methods: tuple[str, ...]) -> dict[str, float]:
    """Bisection width per method from a number, a mapping by method, or None (defaults)."""
    given = dict(xtol) if isinstance(xtol, Mapping) else {m: xtol for m in methods}
    unknown = sorted(set(given) - set(methods))
    if unknown:
        raise ValueError(f"xtol is given for method(s) {unknown} that are not computed")
    out = {}
    for m in methods:
        value = given.get(m)
        if value is None:
            value = backends.get(m).xtol
        number = isinstance(value, (int, float, np.floating)) and not isinstance(value, bool)
        if not (number and 0 < value < 1):
            raise ValueError(
                f"xtol must be a number in (0, 1), a dict of them by method, or None; got {xtol!r}"
            )
        out[m] = float(value)
    return out


def critical_visibility(
    theta: ArrayLike,
    phi: ArrayLike,
    omega: ArrayLike,
    *,
    kind: str = "key",
    x: int | None = None,
    y: int | None = None,
    method: str | Sequence[str] = "qubit",
    options: Mapping[str, Any] | None = None,
    xtol: float | Mapping[str, float] | None = None,
    progress: bool | None = False,
    bob_key: int | str | None = None,
    preprocessing: float | str = 0.0,
    constraint: str | None = None,
    efficiency: ArrayLike = 1.0,
    return_status: bool = False,
    protocol: Protocol | None = None,
    device: Device | None = None,
) -> jax.Array | tuple[jax.Array, np.ndarray]:
    r"""The smallest visibility v with a positive noisy rate (key or global randomness).

    The rate grows with v (the entropy is non-decreasing in |<B>| and the error-correction
    cost h((1 + v E)/2) falls), so the threshold is found by bisection on
    [eta^L / |eta^Q|, 1] (below the left end <B> is local and no rate is positive). For kind
    "global" and method "qubit" the answer is eta^L / |eta^Q| = 1 / violation_ratio: any Bell
    value beyond the local bound certifies randomness.

    The two methods bracket the true threshold of the protocol: with "qubit" (rates that
    explicit attacks achieve) the result is a **lower bound** on it, tight when the
    optimisation is global; with "bff" a positive rate is **certified** at the result (and,
    the DI rate growing with v, above it), so it is an **upper bound**. For "bff" the bisection
    starts above the visibility where the noisy strategy itself has no rate (an explicit
    attack), and above the qubit threshold when ``method=("qubit", "bff")``; each step solves
    ``m - 1`` SDPs per input and tuple.

    Parameters
    ----------
    theta, phi, omega : array_like
        Tuples of eq. (2), radians.
    kind : {"key", "global"}
        Which rate: :func:`noisy_key_rate` or :func:`noisy_global_rate`.
    x, y : {0, 1} or None
        Fix the inputs of the rate (None: the best of both); ``y`` only for "global".
    method, options
        As in :func:`di_entropy`; a sequence of methods adds a trailing axis.
    xtol : float, dict or None
        Width of the final bracket, for every method or by method (``{"bff": 4e-3}``); None
        (or a method left out): 1e-7 for "qubit", 1e-3 for "bff". The result's accuracy is
        also limited by the entropy's ("qubit": ``options["tol"]``, default 1e-4 bits, times
        1 - h(p) with preprocessing p, divided by the slope of the rate in v).
    progress : bool or None
        tqdm bar over the bisection steps (None: only on a terminal).
    bob_key, preprocessing, constraint, efficiency
        The protocol and device, as in :func:`noisy_key_rate` (kind "key" only; then the
        bisection runs on [0, 1]). ``preprocessing="optimal"``: the least threshold over p
        (grid and golden section, one bisection per p).
    return_status : bool
        Also return int8 statuses (codes of :data:`CRITICAL_STATUSES`: 0 found, 1 no
        positive rate even at v = 1, 2 the backend failed inside the bracket).
    protocol, device : Protocol, Device, optional
        As in :func:`noisy_key_rate` (the device's efficiency; its visibility stays 1).

    Returns
    -------
    jax.Array
        v in (0, 1], float64, broadcast shape of the angles (plus a trailing method axis for a
        sequence of methods); NaN where no visibility gives a positive rate (condition (4)
        fails, or the rate at v = 1 is <= 0) or where the backend failed or did not converge
        inside the bracket. With ``options={"constraint": "correlators"}`` ("bff") every tuple
        whose eq. (6) correlators are nonlocal is bisected, self-testing or not (e.g. the
        phi = pi/2 points of Props. 4 and 6).

    References
    ----------
    Eq. (1), (3), (5), (6) of Wooltorton, Brown & Colbeck, PRL 132, 210802 (2024); Brown,
    Fawzi & Fawzi, Quantum 8, 1445 (2024) (method "bff").
    """
    from tqdm import tqdm

    protocol, device = front_door(
        critical_visibility, protocol, device, kind=kind, x=x, y=y, bob_key=bob_key,
        preprocessing=preprocessing, constraint=constraint, efficiency=efficiency,
    )  # fmt: skip
    device = _searched(device, "visibility")
    methods, multi = backends.methods(method)
    per_method = backends.split_options(methods, options, multi)
    kind = protocol.kind
    _check_return_status(return_status)
    protocols = _protocols(methods, per_method, protocol)
    eff = device.efficiency
    legacy = (
        protocol.bob_key is None
        and protocol.preprocessing == 0
        and np.all(eff == 1.0)
        and all(protocols[m].constraint in backends.get(m).white_noise_constraints for m in methods)
    )
    if kind == "global" and not legacy:
        raise ValueError(
            "bob_key, preprocessing, constraint and efficiency apply to kind 'key' only"
        )
    if not legacy:
        return _protocol_critical(
            theta, phi, omega, eff, "visibility", methods=methods, multi=multi,
            per_method=per_method, protocols=protocols, xtol=xtol, progress=progress,
            return_status=return_status,
        )  # fmt: skip
    tols = _check_xtol(xtol, methods)
    t, p, w = _angles64(theta, phi, omega)
    shape = t.shape
    t, p, w = (a.reshape(-1) for a in (t, p, w))
    lo, q, st, _ = _bounds64(t, p, w)
    steps = sum(int(math.ceil(math.log2(1.0 / tols[m]))) + 2 for m in methods)
    bar = tqdm(
        total=steps,
        desc="critical visibility (bisection steps)",
        disable=not progress if progress is not None else None,
    )
    out = []
    floor = np.full(t.shape, np.nan)
    with bar:
        for m in methods:
            backend, one = backends.get(m), protocols[m]
            res = np.full(t.shape, np.nan)
            sel = np.flatnonzero(st)
            if one.constraint != "bell":
                # all four correlators constrained: any tuple whose eq. (6) correlators are
                # nonlocal may have a rate, self-testing or not (Props. 4, 6 at phi = pi/2)
                nonlocal_e6 = _local_visibility(lo, q, t, p, w, "correlators") < 1.0
                sel = np.flatnonzero((st | nonlocal_e6) & (q != 0))
            if sel.size:
                crit, below = _critical(
                    t[sel], p[sel], w[sel], lo[sel], q[sel], backend,
                    backend.quiet_options(per_method[m]), one, tols[m], bar, floor=floor[sel],
                )  # fmt: skip
                res[sel] = crit
                if backend.bound == "upper" and one.constraint == "bell":
                    floor[sel] = below  # the attack's rate is <= 0 there, the certified one too
            out.append(res.reshape(shape))
    value = _as_output(out, multi)
    if not return_status:
        return value
    statuses = []
    for j, m in enumerate(methods):
        res = np.asarray(out[j]).reshape(-1)
        status = np.where(np.isfinite(res), 0, 1).astype(np.int8)
        redo = np.flatnonzero(~np.isfinite(res) & st)
        if redo.size:  # no rate at v = 1 (1), or a failure inside the bracket (2)?
            backend = backends.get(m)
            top = _rates(
                t[redo], p[redo], w[redo], np.ones(redo.size), np.ones(redo.size), backend,
                backend.quiet_options(per_method[m]), protocols[m],
            )[0]  # fmt: skip
            status[redo] = np.where(np.isfinite(top) & (top <= 0), 1, 2)
        statuses.append(status.reshape(shape))
    return value, (np.stack(statuses, -1) if multi else statuses[0])


def _searched(device: Device, axis: str) -> Device:
    """The device of a threshold search along ``axis``: that field must be left at 1."""
    if np.any(getattr(device, axis) != 1.0):
        raise ValueError(
            f"the threshold search sets the {axis}: leave device.{axis} at 1 (give the other "
            "field only)"
        )
    return device


def _check_return_status(return_status):
    if not isinstance(return_status, (bool, np.bool_)):
        raise TypeError(f"return_status must be True or False, got {return_status!r}")


def _protocol_critical(theta, phi, omega, fixed_value, axis, *, methods, multi, per_method,
                       protocols, xtol, progress, return_status):  # fmt: skip
    """Thresholds along ``axis`` with the protocol keywords (kind "key")."""
    _check_return_status(return_status)
    tols = _check_xtol(xtol, methods)
    t, p, w = _angles64(theta, phi, omega)
    fixed = np.asarray(fixed_value)
    other = "efficiency" if axis == "visibility" else "visibility"
    shape = _broadcast_shape(theta=t, **{other: fixed})
    t, p, w, fixed = (np.broadcast_to(a, shape).reshape(-1) for a in (t, p, w, fixed))
    res = _protocol_thresholds(t, p, w, fixed, axis, methods, per_method, protocols, tols, progress)
    value = _as_output([r[0].reshape(shape) for r in res], multi)
    if not return_status:
        return value
    status = np.stack([r[1].reshape(shape) for r in res], -1) if multi else res[0][1].reshape(shape)
    return value, status


def critical_efficiency(
    theta: ArrayLike,
    phi: ArrayLike,
    omega: ArrayLike,
    *,
    visibility: ArrayLike = 1.0,
    kind: str = "key",
    x: int | None = None,
    bob_key: int | str | None = None,
    preprocessing: float | str = 0.0,
    constraint: str | None = None,
    method: str | Sequence[str] = "qubit",
    options: Mapping[str, Any] | None = None,
    xtol: float | Mapping[str, float] | None = None,
    progress: bool | None = False,
    return_status: bool = False,
    protocol: Protocol | None = None,
    device: Device | None = None,
) -> jax.Array | tuple[jax.Array, np.ndarray]:
    r"""The smallest detection efficiency with a positive key rate, by bisection on (0, 1].

    Both parties' detectors click with probability eta, a no-click binned to outcome 0
    (:func:`jaxbell.device_behaviour`); the Bell value and the error-correction cost are those
    of the lossy behaviour, the entropy by ``method`` and ``constraint`` as in
    :func:`noisy_key_rate`. The rate is taken to grow with eta (bisection). As for
    :func:`critical_visibility`, method "qubit" (explicit attacks) gives a **lower bound** on
    the protocol's threshold and "bff" (certified) an **upper bound**: ``method=("qubit",
    "bff")`` brackets it.

    Parameters
    ----------
    theta, phi, omega : array_like
        Tuples of eq. (2), radians; broadcast with ``visibility``.
    visibility : array_like
        White-noise visibility v in [0, 1] of the device (default 1).
    kind : {"key"}
        Only the key rate has protocol options.
    x, bob_key, preprocessing, constraint, method, options
        As in :func:`noisy_key_rate`; ``preprocessing="optimal"``: the least threshold over
        p in [0, 1/2] (grid and golden section, one bisection per p probed).
    xtol : float, dict or None
        Final bracket width (default 1e-7 "qubit", 1e-3 "bff").
    progress : bool or None
        tqdm bar over the bisection steps.
    return_status : bool
        Also return the status per threshold (int8, codes of :data:`CRITICAL_STATUSES`: 0
        found, 1 no positive rate even at efficiency 1 -- the threshold does not exist, 2 the
        backend failed inside the bracket).
    protocol, device : Protocol, Device, optional
        As in :func:`noisy_key_rate` (the device's visibility; its efficiency stays 1).

    Returns
    -------
    jax.Array or (jax.Array, numpy.ndarray)
        eta in (0, 1], float64 (NaN where status is not 0); a trailing method axis for a
        sequence of methods.
    """
    if kind != "key" or (protocol is not None and protocol.kind != "key"):
        got = kind if kind != "key" else protocol.kind
        raise ValueError(
            f"kind must be 'key' (critical_efficiency is for the key rate), got {got!r}"
        )
    protocol, device = front_door(
        critical_efficiency, protocol, device, x=x, bob_key=bob_key,
        preprocessing=preprocessing, constraint=constraint, visibility=visibility,
    )  # fmt: skip
    device = _searched(device, "efficiency")
    methods, multi = backends.methods(method)
    per_method = backends.split_options(methods, options, multi)
    return _protocol_critical(
        theta, phi, omega, device.visibility, "efficiency", methods=methods, multi=multi,
        per_method=per_method, protocols=_protocols(methods, per_method, protocol), xtol=xtol,
        progress=progress, return_status=return_status,
    )  # fmt: skip


#: :func:`critical_efficiency` under a name that its keyword in noisy_rate_curve does not hide
_critical_efficiency_fn = critical_efficiency


def _check_bell_tuple(bell, constraint: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The tested Bell expression ``bell=(theta, phi, omega)`` as float64 scalars; required
    with constraint "bell", else the CHSH member labels the problem."""
    if bell is None:
        if constraint == "bell":
            raise ValueError(
                "bell=(theta, phi, omega) is required with constraint='bell': it names the "
                "Bell expression whose value the protocol tests"
            )
        bell = (math.pi / 2, math.pi / 4, 3 * math.pi / 4)
    if not (isinstance(bell, Sequence) and not isinstance(bell, str) and len(bell) == 3):
        raise ValueError(f"bell must be a tuple (theta, phi, omega) of radians, got {bell!r}")
    t0, p0, w0 = _angles64(*bell)
    if t0.ndim:
        raise ValueError("bell must be one tuple (theta, phi, omega) of scalars")
    return t0, p0, w0


def observed_key_rate(
    probabilities: ArrayLike,
    *,
    bell: tuple[float, float, float] | None = None,
    constraint: str = "bell",
    x: int | None = 0,
    bob_key: int | str | None = None,
    preprocessing: float | str = 0.0,
    method: str | Sequence[str] = "qubit",
    options: Mapping[str, Any] | None = None,
    return_preprocessing: bool = False,
    protocol: Protocol | None = None,
) -> jax.Array | tuple[jax.Array, jax.Array]:
    r"""DI key rate of measured statistics p(ab|xy), bits per round.

    H(A'|X=x, E) by ``method`` given what ``constraint`` tests of the data's test inputs
    (y in {0, 1}): the Bell value ``sum_xy c_xy E_xy`` of the tuple ``bell`` ("bell"), the four
    correlators ("correlators") or the whole behaviour ("full"); minus the error-correction
    cost H(A'|X=x, Y=bob_key, B) of the data (:func:`jaxbell.error_correction_cost`).

    Parameters
    ----------
    probabilities : array_like
        p[..., a, b, x, y], shape (..., 2, 2, 2, 2) or (..., 2, 2, 2, 3) (y = 2 Bob's key-only
        input), checked by :func:`jaxbell.check_behaviour` (normalised, no-signalling, within
        1e-9: project measured frequencies onto the no-signalling set first).
    bell : (theta, phi, omega), optional
        The Bell expression B_theta,phi,omega tested; required for constraint "bell". With
        "correlators" / "full" and method "bff" without it, the CHSH member (pi/2, pi/4,
        3 pi/4) labels the problem (the statistics constrain it, not the tuple).
    constraint, x, bob_key, preprocessing, method, options
        As in :func:`noisy_key_rate`: ``bob_key=None`` (the default, the paper's protocol, as
        in every rate function) takes key from Bob's better test input; ``"aligned"`` (2)
        needs the (2, 2, 2, 3) shape.
    protocol : Protocol, optional
        ``constraint``, ``x``, ``bob_key``, ``preprocessing`` as one :class:`jaxbell.Protocol`.

    Returns
    -------
    jax.Array (and the flip probabilities with ``return_preprocessing``)
        Bits per round, the leading shape of ``probabilities``.
    """
    protocol, _ = front_door(
        observed_key_rate, protocol, None, x=x, bob_key=bob_key, preprocessing=preprocessing,
        constraint=constraint,
    )  # fmt: skip
    beh = check_behaviour(probabilities, "probabilities")
    key = protocol.bob_key
    if key == 2 and beh.shape[-1] != 3:
        raise ValueError(
            "bob_key=2 ('aligned') needs Bob's key-only input y = 2 in the data: probabilities "
            f"of shape (..., 2, 2, 2, 3); got shape {beh.shape} (or pass bob_key=None, 0 or 1)"
        )
    flip = protocol.preprocessing
    if not isinstance(return_preprocessing, (bool, np.bool_)):
        raise TypeError(f"return_preprocessing must be True or False, got {return_preprocessing!r}")
    constraint = protocol.constraint or "bell"
    methods, multi = backends.methods(method)
    per_method = backends.split_options(methods, options, multi)
    protocols = _protocols(methods, per_method, protocol.replace(constraint=constraint))
    t0, p0, w0 = _check_bell_tuple(bell, constraint)
    lead = beh.shape[:-4]
    flat = beh.reshape((-1,) + beh.shape[-4:])
    n = flat.shape[0]
    t, p, w = (np.full(n, float(a)) for a in (t0, p0, w0))
    test = flat[..., :, :2, :, :2]  # the test inputs (any layout; b = 2 is 0 there)
    _, _, _, top = _bounds64(t, p, w)
    eta = _bell_of(t, p, w, test)
    if constraint == "bell":
        eta = _check_bell_value(eta, top)
    else:
        eta = np.minimum(eta, top)

    def rate_for(m):
        def rate(i, f):
            one = protocols[m].replace(preprocessing=f)

            def observe(xi):
                return eta[i], test[i], False, _costs(flat[i], xi, one)

            return _rate(t[i], p[i], w[i], backends.get(m), per_method[m], one, observe)

        return rate

    rates, flips = [], []
    for m in methods:
        rate = rate_for(m)
        if flip == "optimal":
            r, f = _optimal_rate(rate, n)
        else:
            r, f = rate(np.arange(n), flip), np.full(n, flip)
        rates.append(np.reshape(r, lead))
        flips.append(np.reshape(f, lead))
    out = _as_output(rates, multi)
    if return_preprocessing:
        return out, _as_output(flips, multi)
    return out


# --- the noisy rates of one tuple as a dataset ---------------------------------------------


def noisy_rate_curve(
    theta: float,
    phi: float,
    omega: float,
    visibility: ArrayLike | None = None,
    *,
    kind: str | Sequence[str] = ("key", "global"),
    x: int | None = None,
    y: int | None = None,
    method: str | Sequence[str] = "qubit",
    options: Mapping[str, Any] | None = None,
    critical: bool = True,
    xtol: float | Mapping[str, float] | None = None,
    progress: bool | None = False,
    bob_key: int | str | None = None,
    preprocessing: float | str = 0.0,
    constraint: str | None = None,
    efficiency: float = 1.0,
    critical_efficiency: bool = False,
    protocol: Protocol | None = None,
    device: Device | None = None,
) -> xr.Dataset:
    r"""Key and randomness rates of one tuple under white noise, per method, as a Dataset.

    Over the visibilities given: :func:`noisy_key_rate` and :func:`noisy_global_rate` of each
    method, the rates of the noisy strategy of eq. (6) itself (Eve purifying the noisy state,
    :func:`noisy_strategy_entropy`: achievable, so above every method's value), and, with
    ``critical``, :func:`critical_visibility` of each method and of the noisy strategy. With
    ``method=("qubit", "bff")`` the true DI rate lies between the two (constraint "bell"),
    and the gaps are reported.

    Parameters
    ----------
    theta, phi, omega : float
        One tuple of eq. (2), radians.
    visibility : array_like
        1-D, values in [0, 1].
    kind : str or sequence of str
        "key", "global" or both (default). "global" with "bff" at level 2 costs about a minute
        of CPU per point and input pair: fix ``x`` and ``y``.
    x, y : {0, 1} or None
        Fix the inputs (None: the best of both).
    method, options, xtol
        As in :func:`critical_visibility`.
    critical : bool
        Also compute the critical visibilities (default True).
    progress : bool or None
        tqdm bars (None: only on a terminal).
    bob_key, preprocessing, constraint, efficiency
        The protocol and device of the **key** rate, as in :func:`noisy_key_rate`
        (``efficiency`` one number); the global rate keeps the paper's protocol. With any of
        them set, ``achievable_key_rate`` (the paper's protocol at efficiency 1) is NaN, and
        with ``preprocessing="optimal"`` the variable ``optimal_preprocessing`` ([method,]
        visibility) gives the p of each rate.
    critical_efficiency : bool
        Also compute :func:`critical_efficiency` at every visibility (variables
        ``critical_efficiency`` and ``critical_efficiency_status``, [method,] visibility).

    protocol, device : Protocol, Device, optional
        ``x``, ``y``, ``bob_key``, ``preprocessing``, ``constraint`` and ``visibility``,
        ``efficiency`` as values (``kind`` stays the keyword: one or both kinds).

    Returns
    -------
    xarray.Dataset
        Coordinates ``visibility``, ``kind`` (dimension), ``method`` (scalar for one method, a
        dimension for several) and the scalar ``theta``, ``phi``, ``omega`` (so datasets of
        several tuples combine with ``xarray.concat(..., dim="construction")``). Variables:
        ``noisy_key_rate`` / ``noisy_global_rate`` ([method,] visibility), ``rate_status``
        ([method,] kind, visibility; 0 computed, 1 failed: NaN), ``achievable_key_rate`` /
        ``achievable_global_rate`` (visibility), ``local_visibility``; with ``critical``:
        ``critical_visibility`` ([method,] kind) and ``critical_visibility_achievable``
        (kind); with both methods: ``noisy_key_rate_gap`` / ``noisy_global_rate_gap`` (qubit
        minus bff, >= 0 up to rounding for constraint "bell") and
        ``critical_visibility_gap`` (bff minus qubit). Attributes: the tuple's bounds,
        every option per method, the inputs, times.

    References
    ----------
    Eq. (1)-(6) of Wooltorton, Brown & Colbeck, PRL 132, 210802 (2024); Devetak & Winter,
    Proc. R. Soc. A 461, 207 (2005); Brown, Fawzi & Fawzi, Quantum 8, 1445 (2024).
    """
    protocol, device = front_door(
        noisy_rate_curve, protocol, device, x=x, y=y, bob_key=bob_key,
        preprocessing=preprocessing, constraint=constraint, visibility=visibility,
        efficiency=efficiency,
    )  # fmt: skip
    methods, multi = backends.methods(method)
    per_method = backends.split_options(methods, options, multi)
    kinds = (kind,) if isinstance(kind, str) else tuple(kind)
    if not kinds or any(k not in KINDS for k in kinds) or len(set(kinds)) != len(kinds):
        raise ValueError(f"kind must be 'key', 'global' or a sequence of both, got {kind!r}")
    if not isinstance(critical, (bool, np.bool_)):
        raise TypeError(f"critical must be True or False, got {critical!r}")
    if not isinstance(critical_efficiency, (bool, np.bool_)):
        raise TypeError(f"critical_efficiency must be True or False, got {critical_efficiency!r}")
    x, y, key, flip = protocol.x, protocol.y, protocol.bob_key, protocol.preprocessing
    protocols = _protocols(methods, per_method, protocol)
    eff = device.efficiency
    if eff.ndim:
        raise ValueError(f"efficiency must be one number in (0, 1], got shape {eff.shape}")
    paper = (
        key is None
        and flip == 0
        and float(eff) == 1.0
        and all(protocols[m].constraint in backends.get(m).white_noise_constraints for m in methods)
    )
    t, p, w = _angles64(theta, phi, omega)
    if t.ndim:
        raise ValueError("noisy_rate_curve takes one tuple: theta, phi and omega must be scalars")
    v = device.visibility
    if v.ndim != 1 or v.size == 0:
        raise ValueError(f"visibility must be a non-empty 1-D array; got shape {v.shape}")
    t0 = time.perf_counter()
    lo, q, st, _ = (float(a) for a in _bounds64(t, p, w))
    tb, pb, wb = (np.broadcast_to(a, v.shape) for a in (t, p, w))
    rates: dict[str, np.ndarray] = {}  # kind -> (method, visibility)
    achievable: dict[str, np.ndarray] = {}
    timing: dict[str, float] = {}
    extra: dict[str, tuple[tuple[str, ...], np.ndarray]] = {}
    effb = np.broadcast_to(eff, v.shape)
    xs, ys = protocol.inputs, protocol.y_inputs
    for k in kinds:
        ys_k = ys if k == "global" else (0, 1)
        per, flips = [], []
        for m in methods:
            t1 = time.perf_counter()
            backend, opts = backends.get(m), per_method[m]
            if progress is False:
                opts = backend.quiet_options(opts)
            one = protocols[m]
            if k == "global":  # the global rate of the paper's protocol (no key options)
                one = Protocol(kind="global", x=x, y=y, constraint=None)
                one = _protocols([m], {m: opts}, one)[m]
            r, f = _rates(tb, pb, wb, v, effb, backend, opts, one)
            per.append(r)
            flips.append(f)
            timing[f"{m}_{k}"] = round(time.perf_counter() - t1, 3)
        rates[k] = np.stack(per)
        achievable[k] = _achievable(tb, pb, wb, v, k, xs, ys_k)
        if k == "key" and not paper:
            achievable[k] = np.full(v.shape, np.nan)  # the paper's protocol only
        if k == "key" and flip == "optimal":
            extra["optimal_preprocessing"] = (("visibility",), np.stack(flips))
    if critical_efficiency:
        t1 = time.perf_counter()
        ce, cs = _critical_efficiency_fn(
            float(t), float(p), float(w), protocol=protocol.replace(kind="key"),
            device=Device(visibility=v), method=list(methods) if multi else methods[0],
            options=options, xtol=xtol, progress=progress, return_status=True,
        )  # fmt: skip
        ce, cs = np.asarray(ce), np.asarray(cs)
        if multi:
            ce, cs = np.moveaxis(ce, -1, 0), np.moveaxis(cs, -1, 0)
        else:
            ce, cs = ce[None], cs[None]
        extra["critical_efficiency"] = (("visibility",), ce)
        extra["critical_efficiency_status"] = (("visibility",), cs.astype(np.int8))
        timing["critical_efficiency"] = round(time.perf_counter() - t1, 3)
    crit = ach_crit = None
    if critical:
        crit = np.full((len(methods), len(kinds)), np.nan)
        ach_crit = np.full(len(kinds), np.nan)
        for j, k in enumerate(kinds):
            t1 = time.perf_counter()
            crit[:, j] = np.atleast_1d(
                np.asarray(
                    critical_visibility(
                        float(t),
                        float(p),
                        float(w),
                        method=list(methods) if multi else methods[0],
                        options=options,
                        xtol=xtol,
                        progress=progress,
                        protocol=(
                            protocol.replace(kind="key", y=None)
                            if k == "key"
                            else Protocol(kind="global", x=x, y=y, constraint=None)
                        ),
                        device=Device(efficiency=float(eff)) if k == "key" else None,
                    )
                )
            )
            timing[f"critical_{k}"] = round(time.perf_counter() - t1, 3)
            ys_k = ys if k == "global" else (0, 1)
            flat = (np.atleast_1d(a) for a in (t, p, w))
            if k == "global" or paper:  # the noisy strategy's own threshold is
                # the paper's protocol's; with protocol keywords it is not computed (NaN)
                ach_crit[j] = _achievable_critical(*flat, k, xs, ys_k)[0][0]
    settings: dict[str, Any] = {
        "theta": float(t),
        "phi": float(p),
        "omega": float(w),
        "local_bound": lo,
        "quantum_bound": q,
        "self_testing": bool(st),
        "method": ", ".join(methods),
        "x": "best of 0, 1" if x is None else int(x),
        "y": "best of 0, 1" if y is None else int(y),
        "bob_key": "best of 0, 1" if key is None else int(key),
        "preprocessing": flip,
        "constraint": ", ".join(f"{m}: {protocols[m].constraint}" for m in methods),
        "efficiency": float(eff),
        **{f"xtol_{m}": val for m, val in _check_xtol(xtol, methods).items()},
        "dtype": "float64",
        "jax_version": jax.__version__,
    }
    for m in methods:
        opts = backends.get(m).settings(per_method[m])
        settings |= {f"{m}_option_{k}": val for k, val in opts.items()}
    settings |= {f"elapsed_seconds_{k}": val for k, val in timing.items()}
    settings["elapsed_seconds"] = round(time.perf_counter() - t0, 3)
    return noisy_rate_dataset(
        v,
        rates,
        achievable,
        crit,
        ach_crit,
        method=list(methods) if multi else methods[0],
        local_visibility=lo / abs(q) if st else math.nan,
        coords={"theta": float(t), "phi": float(p), "omega": float(w)},
        settings=settings,
        extra=extra,
        references=_references(methods),
        bracket=backends.bracket(methods),
    )
