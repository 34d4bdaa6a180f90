r"""Design over the whole family: the best (theta, phi, omega) for noise, loss and finite n.

The paper ends by suggesting that "further improvements may be found by optimising over the
entire family of Bell expressions (2)". :func:`optimise_protocol` does this: it searches the
tuple of eq. (2), with its strategy of eq. (6) as the device, for the most noise-tolerant
(``"critical_visibility"``), the most loss-tolerant (``"critical_efficiency"``) or the
highest-rate protocol (``"key_rate"``, ``"finite_key_rate"``), optionally close to the local
set (``max_chsh``) and with near-perfect key at v = 1 (``min_key_rate``). It then certifies
the optimum with the BFF bounds and reports, beside it, the CHSH member's values by the same
two methods.

Method
------
The search runs on the explicit attack of :mod:`jaxbell.rates.qubit`, constraint "bell". The
attack's entropy at the device's Bell value is the qubit envelope
``H_env(|eta|; theta) = (1 - w) H(s_lo) + w H(s_hi)``, a mixture of two optimal qubit strategies
on a hull segment of slope mu. Its gradient in the angles follows from the envelope theorem:
the strategies s_i stay optimal to first order, and only the constraint moves, so

.. math::

    \frac{d}{d\theta} H_{env} = \mu\Big(\frac{d|\eta_{dev}|}{d\theta}
        - \sum_i w_i \frac{\partial B_\theta(s_i)}{\partial\theta}\Big),

where ``eta_dev(theta)`` is the device's Bell value (:func:`jaxbell.device_behaviour`, noise and
loss included) and ``B_theta(s_i) = sum_xy c_xy(theta) E_xy(s_i)``. Both derivatives, and that
of the error-correction cost, come from JAX autodiff. The key rate is
``r = H_env - H(A'|B)``. A threshold v* (or eta*) solves ``r = 0``, so by implicit
differentiation ``dv*/dtheta = -(dr/dtheta) / (dr/dv)``. ``tests/test_design.py`` checks both
gradients against finite differences of freshly computed envelopes.

optax's Adam runs on the angles from ``starts`` random self-testing tuples, the CHSH member
and the paper's constructions, so the result is never worse than the CHSH member where it
meets the constraints. Each step recomputes the starts' envelopes in one batched call
(:func:`jaxbell.rates.qubit.qubit_envelopes`). Constraints enter as squared hinge penalties;
the best feasible iterate of each start is kept. The best ones are re-evaluated with the library's
own thresholds and rates at default accuracy; with ``certify`` all of them (the best
iterates, the CHSH member, the subfamily's optimum) are certified in one batch
(``method="bff"``) and the best *certified* one is the result (``DesignResult.ranking`` keeps
every candidate's attack and certified value). With ``preprocessing="optimal"`` the family is
searched at the flip probabilities of :data:`SEARCH_FLIPS` and every run's optimum is ranked
with p optimised per tuple (the least threshold, or the largest rate, over p). The
objective by the attack bounds the truth from one side and the certified value from the
other (for thresholds: attack <= true <= certified), so both are returned.
"""

from __future__ import annotations

import dataclasses
import math
import sys
import time
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from tqdm import tqdm

from jaxbell._log import info_held_back
from jaxbell._precision import x64_scope
from jaxbell.dataset import design_dataset
from jaxbell.entropy import key_rate_at_quantum_bound
from jaxbell.family import bell_coefficients, is_self_testing, self_testing_margin
from jaxbell.nonlocality import max_chsh_value
from jaxbell.rates import backends
from jaxbell.rates.finite import _check_rounds, finite_key_rate
from jaxbell.rates.front import critical_efficiency, critical_visibility, noisy_key_rate
from jaxbell.rates.protocol import (
    check_bob_key,
    check_preprocessing,
    device_behaviour,
    error_correction_cost,
)
from jaxbell.rates.qubit import qubit_envelope, qubit_envelopes, strategy_terms
from jaxbell.rates.values import Device, Protocol, front_door
from jaxbell.search import find_tuple
from jaxbell.strategy import strategy_correlators

__all__ = ["OBJECTIVES", "DesignResult", "optimise_protocol", "attack_rate"]

OBJECTIVES = ("critical_visibility", "critical_efficiency", "key_rate", "finite_key_rate")
CHSH = (math.pi / 2, math.pi / 4, 3 * math.pi / 4)
#: Envelope accuracy during the search (coarse: each step recomputes every start's envelope).
SEARCH_OPTIONS = {"directions": 24, "starts": 8, "steps": 300, "refine": 1}
_PENALTY = 200.0


def _ATTACK() -> str:  # noqa: N802 - read like a constant, looked up when called
    """The method of the search's own values: the registry's first attack (upper bound)."""
    return backends.default("upper")


def _CERTIFIED() -> str:  # noqa: N802
    """The method that certifies the optimum: the registry's first certified backend."""
    return backends.default("lower")


def _bob_inputs(bob_key):
    key = check_bob_key(bob_key)
    return key, ((0, 1) if key is None else (key,))


def _device(angles, v, eff, key, ys, flip):
    """(Bell value, error-correction cost per Bob key input) of the device (traceable)."""
    beh = device_behaviour(
        angles[0],
        angles[1],
        angles[2],
        visibility=v,
        efficiency=eff,
        bob_key=2 if key == 2 else None,
    )
    sign = jnp.array([1.0, -1.0])
    e = jnp.einsum("a,b,abxy->xy", sign, sign, beh[..., :2])
    bell = jnp.sum(bell_coefficients(angles[0], angles[1], angles[2]) * e)
    ec = jnp.stack([error_correction_cost(beh, 0, y, preprocessing=flip) for y in ys])
    return bell, ec


def _vertex_bell(angles, corr, weights):
    """sum_i w_i B_theta(s_i) with the strategies' correlators held fixed."""
    c = bell_coefficients(angles[0], angles[1], angles[2])
    return jnp.sum(weights * jnp.einsum("xy,ixy->i", c, corr))


@dataclasses.dataclass(frozen=True)
class _Point:
    rate: float
    grad: np.ndarray  # d rate / d angles
    dv: float  # d rate / d visibility
    deff: float  # d rate / d efficiency


_device_value = jax.jit(_device, static_argnums=(3, 4, 5))
_device_jacobian = jax.jit(jax.jacrev(_device, argnums=(0, 1, 2)), static_argnums=(3, 4, 5))
_vertex_grad = jax.jit(jax.grad(_vertex_bell))


def attack_rate(
    angles,
    *,
    visibility=1.0,
    efficiency=1.0,
    bob_key="aligned",
    preprocessing=0.0,
    envelope=None,
    options=None,
    gradient=True,
) -> _Point:
    """The attack's key rate of the device of ``angles`` and its derivatives (envelope theorem).

    Returns rate (bits), ``grad`` (d rate / d (theta, phi, omega)), ``dv`` and ``deff``
    (d rate / d visibility, efficiency; NaN with ``gradient=False``); Alice's key input
    x = 0, constraint "bell"; the best of Bob's key inputs where ``bob_key`` is None.
    ``envelope``: the tuple's :class:`jaxbell.QubitEnvelope` (computed with ``options`` if
    not given).
    """
    key, ys = _bob_inputs(bob_key)
    angles = np.asarray(angles, dtype=np.float64)
    with x64_scope():
        if envelope is None:
            envelope = qubit_envelope(
                *angles,
                kind="key",
                x=0,
                options=options or SEARCH_OPTIONS,
                preprocessing=preprocessing,
            )
        a = jnp.asarray(angles)
        v, eff = jnp.asarray(float(visibility)), jnp.asarray(float(efficiency))
        bell, ec = _device_value(a, v, eff, key, ys, float(preprocessing))
        eta, ec = float(bell), np.asarray(ec)
        best = int(np.argmin(ec))
        rate = float(envelope.entropy(abs(eta))) - float(ec[best])
        if not gradient:
            return _Point(rate=rate, grad=np.full(3, np.nan), dv=math.nan, deff=math.nan)
        lo, hi, w = envelope.segment(abs(eta))
        slope, _ = envelope.supporting_line(abs(eta))
        lo, hi, w, slope = int(lo), int(hi), float(w), float(slope)
        _, _, corr = strategy_terms(envelope.vertex_params[[lo, hi]], np.zeros((2, 2)))
        g_vert = np.asarray(_vertex_grad(a, jnp.asarray(corr), jnp.asarray([1.0 - w, w])))
        (jb_a, jb_v, jb_e), (je_a, je_v, je_e) = _device_jacobian(
            a, v, eff, key, ys, float(preprocessing)
        )
        sign = 1.0 if eta >= 0 else -1.0
        grad = slope * (sign * np.asarray(jb_a) - g_vert) - np.asarray(je_a)[best]
        dv = slope * sign * float(jb_v) - float(np.asarray(je_v)[best])
        deff = slope * sign * float(jb_e) - float(np.asarray(je_e)[best])
    return _Point(rate=rate, grad=grad, dv=dv, deff=deff)


def _threshold(angles, env, *, which, visibility, efficiency, bob_key, preprocessing, tol=1e-6):
    """(threshold, d threshold / d angles) of the attack with a fixed envelope (bisection)."""

    def at(s, gradient=False):
        kw = (
            {"visibility": s, "efficiency": efficiency}
            if which == "visibility"
            else {"visibility": visibility, "efficiency": s}
        )
        return attack_rate(
            angles,
            bob_key=bob_key,
            preprocessing=preprocessing,
            envelope=env,
            gradient=gradient,
            **kw,
        )

    top = at(1.0)
    if not top.rate > 0:
        return math.nan, np.zeros(3), top
    lo, hi = 0.0 if which == "visibility" else 1e-3, 1.0
    while hi - lo > tol:
        mid = 0.5 * (lo + hi)
        if at(mid).rate > 0:
            hi = mid
        else:
            lo = mid
    p = at(hi, gradient=True)
    d = p.dv if which == "visibility" else p.deff
    grad = -p.grad / d if d > 0 else np.zeros(3)
    return hi, grad, p


@dataclasses.dataclass(frozen=True)
class DesignResult:
    """Result of :func:`optimise_protocol` (``.to_dataset()`` labels it).

    ``value`` is the objective of the attack at the optimum: a threshold that no protocol
    below it reaches by this attack (a lower bound on the true threshold), or a rate that the
    attack keeps (an upper bound). ``certified`` is the BFF counterpart (a certified threshold,
    an upper bound; a certified rate, a lower bound); NaN when ``certify=False``.
    ``chsh_value`` / ``chsh_certified``: the same for the CHSH member; ``subfamily_*``: for
    the best asymmetric-CHSH member found (pi/2, phi, pi - phi). ``history``: the best
    objective per step. ``constraints``: max CHSH, key rate at v = 1 and condition (4) at the
    optimum.
    """

    theta: float
    phi: float
    omega: float
    objective: str
    value: float
    certified: float
    chsh_value: float
    chsh_certified: float
    subfamily_value: float
    subfamily_certified: float
    subfamily_angles: tuple
    settings: dict
    constraints: dict
    evaluations: int
    seconds: float
    history: np.ndarray
    status: str
    #: the candidates ranked at the end, one row each: (theta, phi, omega, attack, certified)
    #: (certified NaN when ``certify=False``)
    ranking: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros((0, 5)))

    @property
    def angles(self) -> tuple[float, float, float]:
        return (self.theta, self.phi, self.omega)

    def to_dataset(self):
        return design_dataset(self)


#: Known subfamilies the search can be restricted to: name -> (angles of u, Jacobian d angles / du).
SUBFAMILIES = ("chsh", "asymmetric_chsh")


def _to_angles(u, subfamily):
    """Angles of the parameters u: all three, or asymmetric CHSH (pi/2, phi, pi - phi), whose
    coefficients are proportional to (alpha, alpha, 1, -1) with alpha = tan(phi) (the CHSH
    member at phi = pi/4; Woodhead, Acin & Pironio 2021)."""
    u = np.asarray(u, dtype=np.float64)
    if subfamily is None:
        return u
    return np.array([math.pi / 2, u[0], math.pi - u[0]])


def _jacobian(subfamily):
    if subfamily is None:
        return np.eye(3)
    return np.array([[0.0], [1.0], [-1.0]])


def _wrap(angles):
    out = np.mod(np.asarray(angles, dtype=np.float64), 2 * math.pi)
    return np.where(out >= 2 * math.pi, 0.0, out)  # np.mod(-1e-17, 2 pi) is 2 pi


def _constraint_terms(angles, max_chsh, min_key_rate):
    """(penalty, gradient, values) of the constraints at ``angles``."""

    def pen(a):
        total = 0.0
        if max_chsh is not None:
            mc = max_chsh_value(strategy_correlators(a[0], a[1], a[2]))
            total = total + jnp.maximum(mc - max_chsh, 0.0) ** 2
        if min_key_rate is not None:
            r = key_rate_at_quantum_bound(a[0], a[1], a[2])
            r = jnp.where(jnp.isfinite(r), r, 0.0)
            total = total + jnp.maximum(min_key_rate - r, 0.0) ** 2
        return _PENALTY * total

    with x64_scope():
        a = jnp.asarray(angles)
        p, g = jax.value_and_grad(pen)(a)
        values = {
            "max_chsh": float(max_chsh_value(strategy_correlators(*angles))),
            "key_rate_at_v1": float(key_rate_at_quantum_bound(*angles)),
            "self_testing": bool(float(self_testing_margin(*angles)) > 0),
        }
    g = np.asarray(g)
    return float(p), np.where(np.isfinite(g), g, 0.0), values


def _feasible(values, max_chsh, min_key_rate, tol=1e-3):
    ok = True
    if max_chsh is not None:
        ok &= values["max_chsh"] <= max_chsh + tol
    if min_key_rate is not None:
        ok &= (
            np.isfinite(values["key_rate_at_v1"]) and values["key_rate_at_v1"] >= min_key_rate - tol
        )
    return bool(ok)


def _check_objective(objective):
    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {OBJECTIVES}, got {objective!r}")
    return objective


def _check_unit(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)):
        raise TypeError(f"{name} must be a number, got {value!r}")
    v = float(value)
    if not (0.0 < v <= 1.0) or not math.isfinite(v):
        raise ValueError(f"{name} must lie in (0, 1], got {value!r}")
    return v


def optimise_protocol(
    *,
    objective: str = "critical_visibility",
    visibility: float = 1.0,
    efficiency: float = 1.0,
    rounds: float | None = None,
    bob_key: int | str | None = None,
    preprocessing: float = 0.0,
    constraint: str = "bell",
    max_chsh: float | None = None,
    min_key_rate: float | None = None,
    seed: int = 0,
    starts: int = 8,
    steps: int = 40,
    learning_rate: float = 0.05,
    certify: bool = True,
    compare: bool = True,
    subfamily: str | None = None,
    options: Mapping[str, Any] | None = None,
    progress: bool | None = None,
    protocol: Protocol | None = None,
    device: Device | None = None,
) -> DesignResult:
    """Search the whole family (eq. 2) for the best protocol; certify the optimum.

    Parameters
    ----------
    objective : {"critical_visibility", "critical_efficiency", "key_rate", "finite_key_rate"}
        Minimise the critical visibility (at ``efficiency``) or the critical detection
        efficiency (at ``visibility``), or maximise the asymptotic key rate at (visibility,
        efficiency), or the finite-size rate at ``rounds`` (its asymptotic gradient steers
        the search; the finite rate, by the qubit estimate and certified, ranks the starts).
    visibility, efficiency : float
        The device (white noise; detection efficiency of both parties), in (0, 1].
    rounds : float, optional
        n for ``"finite_key_rate"`` (required there).
    bob_key, preprocessing : optional
        The protocol (:func:`jaxbell.noisy_key_rate`): None (default) the paper's (key from
        Bob's best test input), "aligned" Bob's key-only input; Alice's key input is x = 0;
        ``preprocessing`` a fixed flip probability in [0, 1/2], or "optimal" (not with
        "finite_key_rate"): the family searched at each p of :data:`SEARCH_FLIPS`, the runs'
        optima ranked with p optimised per tuple.
    constraint : {"bell"}
        What the protocol tests: the one Bell value of the tuple (the attack of the search).
    max_chsh : float, optional
        Require max CHSH of the strategy <= max_chsh (closeness to the local set).
    min_key_rate : float, optional
        Require the key rate at v = 1 (eq. 1 at eta^Q) >= min_key_rate (near-perfect key).
    seed, starts, steps, learning_rate
        Random starts (plus the CHSH member), Adam steps and step size.
    certify : bool
        Certify every candidate (the best iterates, the CHSH member, the subfamily's optimum)
        with BFF in one batch (``options`` for it) and return the best certified one.
    compare : bool
        Also search the asymmetric-CHSH subfamily (pi/2, phi, pi - phi) for its best member
        (``subfamily_value``, ``subfamily_angles``; by the attack, certified with ``certify``).
    subfamily : {None, "asymmetric_chsh", "chsh"}
        Restrict the search to a known subfamily (None: the whole family).
    progress : bool or None
        tqdm bar over steps (None: on a terminal).
    protocol, device : Protocol, Device, optional
        ``bob_key``, ``preprocessing``, ``constraint`` and ``visibility``, ``efficiency`` as
        values (:class:`jaxbell.Protocol` with x = 0, :class:`jaxbell.Device` of scalars).
    """
    t0 = time.perf_counter()
    objective = _check_objective(objective)
    protocol, device = front_door(
        optimise_protocol, protocol, device, bob_key=bob_key, preprocessing=preprocessing,
        constraint=constraint, visibility=visibility, efficiency=efficiency,
    )  # fmt: skip
    if protocol.x != 0:
        raise ValueError(f"optimise_protocol takes Alice's key input x = 0, got {protocol.x!r}")
    bob_key, preprocessing, constraint = (
        protocol.bob_key,
        protocol.preprocessing,
        protocol.constraint,
    )
    visibility = _check_unit(device.visibility[()], "visibility")
    efficiency = _check_unit(device.efficiency[()], "efficiency")
    if constraint != "bell":
        raise ValueError(
            "optimise_protocol searches with constraint 'bell' (the qubit envelope's gradient); "
            f"got {constraint!r}: certify other constraints at the result with "
            "critical_visibility(..., constraint=...)"
        )
    if isinstance(preprocessing, str) and preprocessing == "optimal":
        return _optimise_optimal_preprocessing(
            objective=objective, visibility=visibility, efficiency=efficiency, rounds=rounds,
            bob_key=bob_key, max_chsh=max_chsh, min_key_rate=min_key_rate, seed=seed,
            starts=starts, steps=steps, learning_rate=learning_rate, certify=certify,
            compare=compare, subfamily=subfamily, options=options, progress=progress, t0=t0,
        )  # fmt: skip
    flip = check_preprocessing(preprocessing)
    key, _ = _bob_inputs(bob_key)
    if objective == "finite_key_rate":
        if rounds is None:
            raise ValueError("rounds is required with objective 'finite_key_rate'")
        rounds = float(_check_rounds(rounds).reshape(-1)[0])
    for name, val, lo, hi in (
        ("max_chsh", max_chsh, 2.0, 2 * math.sqrt(2)),
        ("min_key_rate", min_key_rate, 0.0, 1.0),
    ):
        if val is not None and not (isinstance(val, (int, float)) and lo < val <= hi):
            raise ValueError(f"{name} must be a number in ({lo:g}, {hi:.6g}], got {val!r}")
    for name, val in (("starts", starts), ("steps", steps)):
        if isinstance(val, bool) or not isinstance(val, int) or val < 1:
            raise ValueError(f"{name} must be a positive integer, got {val!r}")
    import optax

    if subfamily is not None and subfamily not in SUBFAMILIES:
        raise ValueError(f"subfamily must be None or one of {SUBFAMILIES}, got {subfamily!r}")
    rng = np.random.default_rng(seed)
    if subfamily == "chsh":  # the one member: nothing to search
        steps = 0
        x0 = np.array([[math.pi / 4]])
        subfamily_map = "asymmetric_chsh"
    elif subfamily == "asymmetric_chsh":
        x0 = np.vstack([[math.pi / 4], rng.uniform(0.05, math.pi / 2 - 0.05, size=(starts, 1))])
        subfamily_map = "asymmetric_chsh"
    else:
        x0 = np.vstack(
            [
                np.array(CHSH),
                *_known_starts(max_chsh, min_key_rate, seed),
                _random_starts(rng, starts),
            ]
        )
        subfamily_map = None
    jac = _jacobian(subfamily_map)
    which = {"critical_visibility": "visibility", "critical_efficiency": "efficiency"}.get(
        objective
    )
    sign = 1.0 if which else -1.0  # minimise thresholds, maximise rates

    def objective_and_grad(envs, params):
        vals, grads, raw, feasible = [], [], [], []
        for u, env in zip(params, envs, strict=True):
            a = _to_angles(u, subfamily_map)
            if which:
                val, g, _ = _threshold(
                    a,
                    env,
                    which=which,
                    visibility=visibility,
                    efficiency=efficiency,
                    bob_key=bob_key,
                    preprocessing=flip,
                )
                if not math.isfinite(val):
                    val, g = 1.0 + 1.0, np.zeros(3)  # no key even at 1: worst
            else:
                p = attack_rate(
                    a,
                    visibility=visibility,
                    efficiency=efficiency,
                    bob_key=bob_key,
                    preprocessing=flip,
                    envelope=env,
                )
                val, g = p.rate, p.grad
            pen, gp, cvals = _constraint_terms(a, max_chsh, min_key_rate)
            vals.append(sign * val + pen)
            raw.append(sign * val)
            feasible.append(_feasible(cvals, max_chsh, min_key_rate))
            grads.append(jac.T @ (sign * np.asarray(g) + gp))
        return np.array(vals), np.array(grads), np.array(raw), np.array(feasible)

    opt = optax.adam(learning_rate)
    params = x0.astype(np.float64)
    with x64_scope():
        state = opt.init(jnp.asarray(params, dtype=jnp.float64))
    best_vals = np.full(len(params), np.inf)
    best_params = params.copy()
    # the best *feasible* iterate of each start, by the unpenalised objective: the penalised
    # optimum may sit just past a binding constraint
    feas_vals = np.full(len(params), np.inf)
    feas_params = params.copy()
    history = []
    evaluations = 0
    show = (sys.stderr.isatty()) if progress is None else bool(progress)
    stage = f"design {objective}" + (f" ({subfamily})" if subfamily else "")
    bar = tqdm(range(steps), desc=stage, disable=not show, file=sys.stderr)
    with bar, info_held_back():  # one bar, not a log line per step's envelopes
        for _ in bar:
            envs = qubit_envelopes(
                [tuple(_to_angles(u, subfamily_map)) for u in params],
                kind="key",
                x=0,
                options=dict(SEARCH_OPTIONS, seed=seed),
                preprocessing=flip,
            )
            vals, grads, raw, feasible = objective_and_grad(envs, params)
            evaluations += len(params)
            better = vals < best_vals
            best_vals[better] = vals[better]
            best_params[better] = params[better]
            better = feasible & (raw < feas_vals)
            feas_vals[better] = raw[better]
            feas_params[better] = params[better]
            history.append(float(np.min(best_vals)))
            bar.set_postfix(best=f"{sign * history[-1]:.5f}")
            grads = np.where(np.isfinite(grads), grads, 0.0)
            with x64_scope():
                updates, state = opt.update(jnp.asarray(grads, dtype=jnp.float64), state)
                params = np.asarray(
                    optax.apply_updates(jnp.asarray(params, dtype=jnp.float64), updates),
                    dtype=np.float64,
                )
    # the library's own values at default accuracy, for the best few feasible iterates
    candidates = [feas_params[i] for i in np.argsort(feas_vals)[:3] if np.isfinite(feas_vals[i])]
    chosen, status = None, "ok"
    if steps == 0:
        candidates = [params[0]]
    pool: list[tuple[np.ndarray, float]] = []  # feasible candidates and their attack values
    for u in candidates:
        a = _wrap(_to_angles(u, subfamily_map))
        v = _library_objective(
            objective, a, _ATTACK(), visibility, efficiency, rounds, bob_key, flip, None
        )
        pool.append((a, v))
        if chosen is None or _worse(objective, chosen[2], v):
            chosen = (a, _constraint_terms(a, max_chsh, min_key_rate)[2], v)
    if chosen is None:  # no feasible iterate: report the best penalised one, flagged
        a = _wrap(_to_angles(best_params[int(np.argmin(best_vals))], subfamily_map))
        v = _library_objective(
            objective, a, _ATTACK(), visibility, efficiency, rounds, bob_key, flip, None
        )
        chosen = (a, _constraint_terms(a, max_chsh, min_key_rate)[2], v)
        status = "constraints_not_met"
        pool = []
    angles, values, value = chosen
    chsh_value = _library_objective(
        objective, CHSH, _ATTACK(), visibility, efficiency, rounds, bob_key, flip, None
    )
    chsh_ok = _feasible_chsh(max_chsh, min_key_rate)
    if chsh_ok and (status != "ok" or _worse(objective, value, chsh_value)):
        # never worse than the CHSH member where it meets the constraints
        angles, value, status = np.array(CHSH), chsh_value, "ok"
        values = _constraint_terms(angles, max_chsh, min_key_rate)[2]
    sub = None
    sub_value = sub_cert = math.nan
    sub_angles = (math.nan, math.nan, math.nan)
    if compare and subfamily is None:
        sub = optimise_protocol(
            objective=objective,
            visibility=visibility,
            efficiency=efficiency,
            rounds=rounds,
            bob_key=bob_key,
            preprocessing=flip,
            max_chsh=max_chsh,
            min_key_rate=min_key_rate,
            seed=seed,
            starts=max(2, starts // 2),
            steps=steps,
            learning_rate=learning_rate,
            certify=False,
            compare=False,
            subfamily="asymmetric_chsh",
            options=options,
            progress=show,
        )
        sub_value, sub_angles = sub.value, sub.angles
        evaluations += sub.evaluations
        if sub.status == "ok" and (status != "ok" or _worse(objective, value, sub_value)):
            angles, value, status = np.array(sub.angles), sub_value, "ok"  # in the family
            values = _constraint_terms(angles, max_chsh, min_key_rate)[2]
    if status == "ok" and not math.isfinite(value):
        status = "no_key"  # no protocol with key found (e.g. the threshold is not below 1)
    # the candidates, ranked: by the certificate where asked (one batch of certified
    # solves), otherwise by the attack (the choice above)
    if chsh_ok:
        pool.append((np.array(CHSH), chsh_value))
    if sub is not None and sub.status == "ok":
        pool.append((np.array(sub.angles), sub_value))
    if not any(np.allclose(a, angles, rtol=0, atol=1e-12) for a, _ in pool):
        pool.insert(0, (np.array(angles), value))
    pool = _unique(pool)
    pool_angles = np.array([a for a, _ in pool])
    pool_attack = np.array([v for _, v in pool])
    pool_cert = np.full(len(pool), math.nan)
    cert = chsh_cert = math.nan
    if certify:
        with_chsh = np.vstack([pool_angles, np.array(CHSH)])
        certs = _library_objectives(
            objective, with_chsh, _CERTIFIED(), visibility, efficiency, rounds, bob_key, flip,
            options,
        )  # fmt: skip
        evaluations += len(with_chsh)
        pool_cert, chsh_cert = certs[:-1], float(certs[-1])
        if sub is not None:
            at = _index_of(pool_angles, np.array(sub.angles))
            sub_cert = float(pool_cert[at]) if at is not None else math.nan
        best = _best(objective, pool_cert)
        if best is not None and status == "ok":
            angles, value, cert = (
                pool_angles[best],
                float(pool_attack[best]),
                float(pool_cert[best]),
            )
            values = _constraint_terms(angles, max_chsh, min_key_rate)[2]
        else:
            at = _index_of(pool_angles, np.asarray(angles))
            cert = float(pool_cert[at]) if at is not None else math.nan
    settings = {
        "objective": objective,
        "visibility": visibility,
        "efficiency": efficiency,
        "rounds": rounds if rounds is not None else "none",
        "bob_key": "none" if key is None else key,
        "preprocessing": flip,
        "constraint": constraint,
        "max_chsh": "none" if max_chsh is None else max_chsh,
        "min_key_rate": "none" if min_key_rate is None else min_key_rate,
        "seed": seed,
        "starts": starts,
        "steps": steps,
        "learning_rate": learning_rate,
        "search_envelope_options": SEARCH_OPTIONS,
        "subfamily": "none" if subfamily is None else subfamily,
    }
    return DesignResult(
        theta=float(angles[0]),
        phi=float(angles[1]),
        omega=float(angles[2]),
        objective=objective,
        value=float(value),
        certified=float(cert),
        chsh_value=float(chsh_value),
        chsh_certified=float(chsh_cert),
        subfamily_value=float(sub_value),
        subfamily_certified=float(sub_cert),
        subfamily_angles=tuple(float(a) for a in sub_angles),
        settings=settings,
        constraints=values,
        evaluations=evaluations,
        seconds=time.perf_counter() - t0,
        history=np.asarray(history) * sign,
        status=status,
        ranking=np.column_stack([pool_angles.reshape(-1, 3), pool_attack, pool_cert]),
    )


def _unique(pool):
    out = []
    for a, v in pool:
        if not any(np.allclose(a, b, rtol=0, atol=1e-12) for b, _ in out):
            out.append((np.asarray(a, dtype=np.float64), float(v)))
    return out


def _index_of(rows: np.ndarray, angles: np.ndarray) -> int | None:
    hits = np.flatnonzero(np.all(np.abs(rows - angles) <= 1e-12, axis=-1))
    return int(hits[0]) if hits.size else None


def _best(objective, values) -> int | None:
    """Index of the best finite value (least threshold, largest rate; first among ties)."""
    values = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(values)
    if not finite.any():
        return None
    score = values if objective in ("critical_visibility", "critical_efficiency") else -values
    return int(np.argmin(np.where(finite, score, np.inf)))


def _library_objectives(
    objective, angles, method, visibility, efficiency, rounds, bob_key, flip, options
) -> np.ndarray:
    """The objective of every tuple (rows of ``angles``) by one call of the library's function
    (for a certified method: one batch of certified solves); flip may be "optimal"."""
    rows = np.asarray(angles, dtype=np.float64).reshape(-1, 3)
    if objective == "finite_key_rate":
        return np.array(
            [
                _library_objective(
                    objective, a, method, visibility, efficiency, rounds, bob_key, flip, options
                )  # fmt: skip
                for a in rows
            ]
        )
    t, p, w = rows.T
    kw = {"x": 0, "bob_key": bob_key, "preprocessing": flip, "method": method}
    if backends.get(method).bound == "lower" and options is not None:
        kw["options"] = options
    if objective == "critical_visibility":
        out = critical_visibility(t, p, w, efficiency=efficiency, **kw)
    elif objective == "critical_efficiency":
        out = critical_efficiency(t, p, w, visibility=visibility, **kw)
    else:
        out = noisy_key_rate(t, p, w, visibility, efficiency=efficiency, **kw)
    return np.asarray(out, dtype=np.float64).reshape(-1)


#: Flip probabilities at which the family is searched for ``preprocessing="optimal"`` (the
#: candidates are then ranked with p optimised per tuple).
SEARCH_FLIPS = (0.0, 0.2, 0.35, 0.45)


def _optimise_optimal_preprocessing(
    *, objective, visibility, efficiency, rounds, bob_key, max_chsh, min_key_rate, seed, starts,
    steps, learning_rate, certify, compare, subfamily, options, progress, t0,
):  # fmt: skip
    """optimise_protocol with preprocessing "optimal": the family searched at the flip
    probabilities of :data:`SEARCH_FLIPS` (the attack's envelopes need a fixed p), then every
    run's optimum (and the CHSH member) ranked with p optimised per tuple: by the attack, and
    by the certificate in one batch where asked."""
    if objective == "finite_key_rate":
        raise ValueError(
            "preprocessing='optimal' applies to the objectives critical_visibility, "
            "critical_efficiency and key_rate; give finite_key_rate a fixed flip probability"
        )
    runs = []
    kinds = (
        [subfamily] if subfamily is not None else [None] + (["asymmetric_chsh"] if compare else [])
    )
    for p in SEARCH_FLIPS:
        for fam in kinds:
            runs.append(
                optimise_protocol(
                    objective=objective,
                    visibility=visibility,
                    efficiency=efficiency,
                    rounds=rounds,
                    bob_key=bob_key,
                    preprocessing=p,
                    max_chsh=max_chsh,
                    min_key_rate=min_key_rate,
                    seed=seed,
                    starts=starts,
                    steps=steps,
                    learning_rate=learning_rate,
                    certify=False,
                    compare=False,
                    subfamily=fam,
                    options=options,
                    progress=progress,
                )  # fmt: skip
            )
    chsh_ok = _feasible_chsh(max_chsh, min_key_rate)
    labels = kinds * len(SEARCH_FLIPS)
    pool = [(np.array(r.angles), f) for r, f in zip(runs, labels, strict=True) if r.status == "ok"]
    rows = [np.array(CHSH)] + [a for a, _ in pool]
    uniq = []
    for a in rows:
        if not any(np.allclose(a, b, rtol=0, atol=1e-12) for b in uniq):
            uniq.append(a)
    rows = np.array(uniq)
    evaluations = sum(r.evaluations for r in runs)
    args = (visibility, efficiency, rounds, bob_key, "optimal")
    attack = _library_objectives(objective, rows, _ATTACK(), *args, None)
    cert = np.full(len(rows), math.nan)
    if certify:
        cert = _library_objectives(objective, rows, _CERTIFIED(), *args, options)
    evaluations += len(rows) * (2 if certify else 1)
    eligible = np.array(
        [i > 0 or chsh_ok for i in range(len(rows))], dtype=bool
    )  # the CHSH member only where it meets the constraints
    ranked = cert if certify and np.any(np.isfinite(cert[eligible])) else attack
    best = _best(objective, np.where(eligible, ranked, np.nan))
    status = "ok"
    if best is None:
        best, status = 0, "no_key" if chsh_ok else "constraints_not_met"
    sub_rows = [a for a, fam in pool if fam == "asymmetric_chsh"]
    sub_i = None
    if sub_rows:
        idx = [_index_of(rows, a) for a in sub_rows]
        idx = [i for i in idx if i is not None]
        sub_i = _best(objective, np.array([ranked[i] for i in idx]))
        sub_i = idx[sub_i] if sub_i is not None else None
    angles = rows[best]
    hits = [r for r in runs if np.allclose(r.angles, angles, rtol=0, atol=1e-12)]
    history = (hits or runs)[0].history
    settings = dict(runs[0].settings) | {"preprocessing": "optimal",
                                         "search_flips": list(SEARCH_FLIPS)}  # fmt: skip
    nan = math.nan
    return DesignResult(
        theta=float(angles[0]), phi=float(angles[1]), omega=float(angles[2]),
        objective=objective, value=float(attack[best]), certified=float(cert[best]),
        chsh_value=float(attack[0]), chsh_certified=float(cert[0]),
        subfamily_value=float(attack[sub_i]) if sub_i is not None else nan,
        subfamily_certified=float(cert[sub_i]) if sub_i is not None else nan,
        subfamily_angles=tuple(float(a) for a in rows[sub_i]) if sub_i is not None
        else (nan, nan, nan),
        settings=settings, constraints=_constraint_terms(angles, max_chsh, min_key_rate)[2],
        evaluations=evaluations, seconds=time.perf_counter() - t0, history=np.asarray(history),
        status=status, ranking=np.column_stack([rows, attack, cert]),
    )  # fmt: skip


def _random_starts(rng: np.random.Generator, count: int) -> np.ndarray:
    """``count`` uniform random tuples that meet condition (4) (about a third do): elsewhere the
    attack's entropy at the device's Bell value is flat and a start would not move."""
    out = np.zeros((0, 3))
    while len(out) < count:
        draw = rng.uniform(0.0, 2 * math.pi, size=(4 * count, 3))
        ok = np.asarray(is_self_testing(draw[:, 0], draw[:, 1], draw[:, 2]), dtype=bool)
        out = np.vstack([out, draw[ok]])
    return out[:count]


def _known_starts(max_chsh, min_key_rate, seed) -> list[np.ndarray]:
    """Starts from the paper's constructions: Prop. 3 (pi/3, pi/2 - d, 5pi/6) and Prop. 5
    (pi/4, pi/2 - d, pi), and, under a constraint, self-testing tuples that meet it
    (:func:`jaxbell.find_tuple` at max CHSH just below the cap), so that the search is never
    worse than them."""
    out = [np.array([math.pi / 3, math.pi / 2 - d, 5 * math.pi / 6]) for d in (0.3, 0.1)]
    out.append(np.array([math.pi / 4, math.pi / 2 - 0.1, math.pi]))
    if max_chsh is None and min_key_rate is None:
        return out
    cap = 2 * math.sqrt(2) if max_chsh is None else max_chsh
    for target in (cap - 0.005, 2.0 + 0.5 * (cap - 2.0)):
        if target <= 2.0:
            continue
        try:
            res = find_tuple(target, min_key_rate=min_key_rate, seed=seed)
        except (ValueError, RuntimeError):
            continue  # the target exceeds the supremum under min_key_rate
        angles = np.asarray(res.angles, dtype=np.float64)
        if getattr(res, "converged", True) and np.all(np.isfinite(angles)):
            out.append(angles)
    return out


def _feasible_chsh(max_chsh, min_key_rate):
    _, _, values = _constraint_terms(np.array(CHSH), max_chsh, min_key_rate)
    return _feasible(values, max_chsh, min_key_rate)


def _worse(objective, value, reference):
    if not math.isfinite(reference):
        return False
    if not math.isfinite(value):
        return True
    if objective in ("critical_visibility", "critical_efficiency"):
        return value > reference
    return value < reference


def _library_objective(
    objective, angles, method, visibility, efficiency, rounds, bob_key, flip, options
):
    """The objective of ``angles`` by jaxbell's own public functions (default accuracy)."""
    t, p, w = (float(a) for a in angles)
    kw = {"x": 0, "bob_key": bob_key, "preprocessing": flip, "method": method}
    certified = backends.get(method).bound == "lower"
    if certified and options is not None:
        kw["options"] = options
    if objective == "critical_visibility":
        return float(np.asarray(critical_visibility(t, p, w, efficiency=efficiency, **kw)))
    if objective == "critical_efficiency":
        return float(np.asarray(critical_efficiency(t, p, w, visibility=visibility, **kw)))
    if objective == "key_rate":
        return float(np.asarray(noisy_key_rate(t, p, w, visibility, efficiency=efficiency, **kw)))
    key, ys = _bob_inputs(bob_key)
    rates = []
    for y in ys:  # the paper's protocol (bob_key None): the better of Bob's test inputs
        with x64_scope():
            beh = np.asarray(
                device_behaviour(
                    t,
                    p,
                    w,
                    visibility=visibility,
                    efficiency=efficiency,
                    bob_key=2 if y == 2 else None,
                )
            )
        rates.append(
            float(
                finite_key_rate(
                    beh,
                    rounds,
                    bell=(t, p, w),
                    bob_key=y,
                    preprocessing=flip,
                    method=method,
                    options=options if certified else None,
                )
            )
        )
    return max(rates)
