r"""The best lossy two-qubit device for a Bell test: :func:`optimise_device` (issue 22).

Detection efficiency is what stops photonic DIQKD. A device here is the general lossy qubit
device of :func:`jaxbell.qubit_behaviour`: the state cos(s)|00> + sin(s)|11>, Alice's angles
(a_0, a_1), Bob's (b_0, b_1) on his test inputs and b_2 on his key input y = 2, each party
detecting with probability ``efficiency``, Bob's no-click on the key input binned or kept as
a third outcome. Alice's key input is x = 0, she flips her key bit with probability p (noisy
preprocessing). :func:`optimise_device` maximises the key rate over (s, angles, p) at a given
efficiency, or finds the lowest efficiency with a positive rate.

Method
------
The search runs on tight analytic attacks, so that it is differentiable end to end (JAX
autodiff through :func:`jaxbell.qubit_behaviour`, the bound and H(A'|B)):

* the CHSH member (``bell=None`` or the CHSH tuple): H(A'|E) >= 1 - h((1 + sqrt(S^2/4 - 1))/2)
  + h((1 + sqrt(1 - p(1-p)(8 - S^2)))/2) (Ho et al. 2020, eq. (4)), tight;
* the asymmetric-CHSH members (pi/2, phi, pi - phi), coefficients proportional to
  (alpha, alpha, 1, -1), alpha = tan(phi) >= 1 (a fixed tuple of that form, or
  ``bell="family"``, where phi is searched too): the bound of Woodhead, Acin & Pironio 2021
  with noisy preprocessing, tight for alpha >= 1.

* any other member (theta, phi, omega) has no tight analytic bound for such devices: with
  ``constraint="bell"`` the search runs on its *certified* rate instead (BFF, the dual slope
  times the Bell value's Jacobian: :func:`refine_device`), from the member's own ideal
  strategy (eq. (6) of Wooltorton, Brown & Colbeck, as a device: s = pi/4, Alice (0, theta),
  Bob (pi/2 - phi, pi/2 - omega), key input aligned) and from the CHSH search's device, the
  better kept; the attack's number is then that device's rate (or threshold) by the attack
  backend, an upper bound for it. With "correlators" / "full" the tuple only labels.

The rate r = H(A'|X=0, E) - H(A'|X=0, Y=2, B) is maximised by L-BFGS-B from several starts
(the aligned CHSH device among them); a threshold is bisected in the efficiency, the device
re-optimised at every step. The optimum is then evaluated by the library itself
(:func:`jaxbell.observed_key_rate` with the registry's attack and certified backends, under
the requested ``constraint``: the Bell value, the correlators or the full statistics; with
"correlators" / "full" the search's device is the one best for the Bell test, whose other
statistics then only add constraints) and, beside it, the CHSH member and the full statistics
of the same device. The certified threshold bisects the efficiency with the certified rate of
the device the attack's search finds at each efficiency: an upper bound on the best device's
certified threshold.

References
----------
M. Ho, P. Sekatski, E. Y.-Z. Tan, R. Renner, J.-D. Bancal and N. Sangouard, Phys. Rev. Lett.
124, 230502 (2020), arXiv:2005.13015.
E. Woodhead, A. Acin and S. Pironio, Quantum 5, 443 (2021), arXiv:2007.16146.
P. Brown, H. Fawzi and O. Fawzi, Quantum 8, 1445 (2024), arXiv:2106.13692.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxbell._precision import x64_scope
from jaxbell.dataset import device_dataset
from jaxbell.family import bell_coefficients
from jaxbell.rates import backends
from jaxbell.rates.front import RATE_RESOLUTION, observed_key_rate
from jaxbell.rates.protocol import (
    asymmetric_chsh_entropy,
    behaviour_correlators,
    check_no_click,
    chsh_entropy,
    error_correction_cost,
    qubit_behaviour,
)
from jaxbell.rates.values import CONSTRAINTS, check_visibility

__all__ = [
    "DEVICE_OBJECTIVES",
    "DeviceResult",
    "device_key_rate",
    "optimise_device",
    "refine_device",
]

DEVICE_OBJECTIVES = ("critical_efficiency", "key_rate")
CHSH = (math.pi / 2, math.pi / 4, 3 * math.pi / 4)
#: the largest flip probability searched (p -> 1/2 leaves a rate of order (1 - 2p)^2)
MAX_PREPROCESSING = 0.499
#: the least state angle searched: thresholds fall as s -> 0 and p -> 1/2 together (Ho et al.
#: 2020), where the rate is of order s^2 (1 - 2p)^2 and rounding (1e-16 on H ~ 1) hides its sign
MIN_STATE_ANGLE = 0.01
#: the asymmetric-CHSH members searched by bell="family": phi in [pi/4, this]
_MAX_PHI = math.atan(8.0)
#: the aligned CHSH device: (s, a_0, a_1, b_0, b_1, b_2)
_ALIGNED = (math.pi / 4, 0.0, math.pi / 2, math.pi / 4, -math.pi / 4, 0.0)


def _alpha_of(bell) -> float | None:
    """alpha of an asymmetric-CHSH tuple (pi/2, phi, pi - phi), phi in [pi/4, pi/2); None for
    CHSH; NotImplementedError for tuples the analytic search does not cover, ValueError for
    what is not a tuple of three finite angles."""
    if bell is None:
        return None
    t, p, w = _check_tuple(bell)
    if abs(t - math.pi / 2) < 1e-12 and abs(w - (math.pi - p)) < 1e-12:
        if abs(p - math.pi / 4) < 1e-12:
            return None
        if math.pi / 4 <= p < math.pi / 2:
            return math.tan(p)
    raise NotImplementedError(
        "optimise_device searches on tight analytic bounds: bell must be None (CHSH), 'family', "
        "or an asymmetric-CHSH member (pi/2, phi, pi - phi) with pi/4 <= phi < pi/2 (Woodhead, "
        f"Acin & Pironio 2021); got {bell!r}. Evaluate other tuples with "
        "jaxbell.observed_key_rate(jaxbell.qubit_behaviour(...), bell=...)"
    )


def _check_tuple(bell) -> tuple[float, float, float]:
    try:
        t = tuple(float(a) for a in bell)
    except (TypeError, ValueError):
        t = ()
    if len(t) != 3 or not all(math.isfinite(a) for a in t):
        raise ValueError(f"bell must be None, 'family' or three finite radians (theta, phi, "
                         f"omega); got {bell!r}")  # fmt: skip
    return t


def device_key_rate(params, efficiency, *, visibility=1.0, no_click="keep", bell_phi=None):
    r"""The search's key rate of a device, bits per round (traceable, differentiable).

    r = H(A'|X=0, E) - H(A'|X=0, Y=2, B) with H(A'|X=0, E) the tight analytic bound of the Bell
    test: CHSH (Ho et al. 2020) or, with ``bell_phi``, the asymmetric CHSH member (pi/2, phi,
    pi - phi), alpha = tan(phi) >= 1 (Woodhead, Acin & Pironio 2021).

    Parameters
    ----------
    params : array_like, shape (7,)
        (s, a_0, a_1, b_0, b_1, b_2, p): the state angle, Alice's and Bob's angles (radians) and
        the flip probability p of Alice's noisy preprocessing.
    efficiency, visibility : array_like
        As in :func:`jaxbell.qubit_behaviour`.
    no_click : {"bin", "keep"}
        Bob's no-click on his key input.
    bell_phi : array_like, optional
        phi of an asymmetric-CHSH member (None: CHSH).
    """
    params = jnp.asarray(params)
    beh = qubit_behaviour(
        params[0], params[1:3], params[3:6], visibility=visibility, efficiency=efficiency,
        no_click=no_click,
    )  # fmt: skip
    flip = params[6]
    e = behaviour_correlators(beh[..., :, :2, :, :2])
    if bell_phi is None:
        h = chsh_entropy(e[0, 0] + e[0, 1] + e[1, 0] - e[1, 1], preprocessing=flip)
    else:
        alpha = jnp.maximum(jnp.tan(bell_phi), 1.0)  # tan(pi/4) rounds below 1
        value = alpha * (e[0, 0] + e[0, 1]) + e[1, 0] - e[1, 1]
        h = asymmetric_chsh_entropy(alpha, value, preprocessing=flip)
    return h - error_correction_cost(beh, 0, 2, preprocessing=flip)


@functools.cache
def _objective(no_click: str, family: bool, alpha_fixed: float | None, scaled: bool):
    """Jitted (value, gradient) of minus the rate in the searched variables u: the 7 device
    parameters, and phi with ``family``. ``scaled``: minus r / (1 - 2p)^2, the same sign and
    well conditioned as p -> 1/2, where thresholds with optimal preprocessing are reached
    (r -> 0 as (1 - 2p)^2; Ho et al. 2020)."""

    def neg(u, eff, v):
        if family:
            phi = u[7]
        elif alpha_fixed is None:
            phi = None
        else:
            phi = jnp.arctan(alpha_fixed)
        r = device_key_rate(u[:7], eff, visibility=v, no_click=no_click, bell_phi=phi)
        return -r / (1.0 - 2.0 * u[6]) ** 2 if scaled else -r

    return jax.jit(jax.value_and_grad(neg))


def _bounds(family: bool):
    b = (
        [(MIN_STATE_ANGLE, math.pi / 2 - MIN_STATE_ANGLE)]
        + [(None, None)] * 5
        + [(0.0, MAX_PREPROCESSING)]
    )
    if family:
        b.append((math.pi / 4, _MAX_PHI))
    return b


def _starts(family: bool, seed: int, count: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    base = [np.array([*_ALIGNED, 0.0]), np.array([*_ALIGNED, 0.3])]
    for s, p in ((0.6, 0.4), (0.45, 0.4), (0.3, 0.45), (0.1, 0.49), (0.03, 0.499)):
        base.append(np.array([s, 0.0, math.pi / 2, math.pi / 4, -math.pi / 4, 0.0, p]))
    # partially entangled with little preprocessing: where the largest rates sit between the
    # threshold and 0.9 (started at p -> 1/2, a negative rate only climbs to 0 there)
    for s in (0.25, 0.4, 0.6):
        base.append(np.array([s, 0.0, 1.2, 0.3, -0.65, 0.0, 0.1]))
    # weakly entangled, near-aligned measurements: where thresholds with preprocessing fall
    base.append(np.array([0.01, 0.0, 0.28, 0.0, -0.14, 0.0, 0.499]))
    base.append(np.array([0.05, 0.0, 0.6, 0.1, -0.3, 0.0, 0.49]))
    for _ in range(count):
        u = rng.uniform(-math.pi, math.pi, 7)
        u[0] = rng.uniform(0.1, math.pi / 4)
        u[6] = rng.uniform(0.0, MAX_PREPROCESSING)
        base.append(u)
    if family:  # the known starts on the CHSH member (in the family), the random ones anywhere
        known = len(base) - count
        base = [
            np.append(u, math.pi / 4 if i < known else rng.uniform(math.pi / 4, 1.2))
            for i, u in enumerate(base)
        ]
    return base


def _maximise(fun, starts, eff, v, bounds):
    """The best (rate, u) over L-BFGS-B runs from ``starts`` within ``bounds``."""
    from scipy.optimize import minimize

    best_r, best_u = -np.inf, None
    for u0 in starts:

        def f(u):
            val, grad = fun(jnp.asarray(u), eff, v)
            return float(val), np.asarray(grad, dtype=np.float64)

        res = minimize(
            f, u0, jac=True, method="L-BFGS-B", bounds=bounds,
            options={"ftol": 1e-15, "gtol": 1e-11, "maxiter": 1000},
        )  # fmt: skip
        r = -float(res.fun)
        if np.isfinite(r) and r > best_r:
            best_r, best_u = r, np.asarray(res.x, dtype=np.float64)
    return best_r, best_u


@dataclasses.dataclass(frozen=True)
class DeviceResult:
    """Result of :func:`optimise_device` (``.to_dataset()`` labels it).

    ``value``: the objective by the attack (the search's analytic bound, re-evaluated by the
    registry's attack backend): a threshold no such device goes below by this attack (a lower
    bound on the best device's certified threshold), or a rate (an upper bound).
    ``certified``: by the certified backend (BFF): a threshold with certified positive key
    (upper bound), a certified rate (lower bound); NaN with ``certify=False``.
    ``chsh_*`` and ``full_*``: the same device tested with the CHSH expression alone and with
    the full statistics, at the optimum's efficiency (rates; for thresholds, at the optimum's
    threshold). The device: ``state_angle``, ``alice_angles``, ``bob_angles``,
    ``preprocessing``; ``bell`` the tuple tested (with "family", the member found).
    """

    objective: str
    value: float
    certified: float
    efficiency: float
    visibility: float
    state_angle: float
    alice_angles: tuple
    bob_angles: tuple
    preprocessing: float
    bell: tuple
    constraint: str
    no_click: str
    chsh_value: float
    chsh_certified: float
    full_value: float
    full_certified: float
    settings: dict
    seconds: float

    def behaviour(self) -> np.ndarray:
        """p[a, b, x, y] of the optimum at its efficiency."""
        with x64_scope():
            return np.asarray(
                qubit_behaviour(
                    self.state_angle,
                    self.alice_angles,
                    self.bob_angles,
                    visibility=self.visibility,
                    efficiency=self.efficiency,
                    no_click=self.no_click,
                ),  # fmt: skip
                dtype=np.float64,
            )

    def to_dataset(self):
        return device_dataset(self)


def _library_rate(u, eff, v, no_click, bell, constraint, method, options):
    """The library's rate of device ``u`` (7 parameters) by ``method`` under ``constraint``."""
    with x64_scope():
        beh = np.asarray(
            qubit_behaviour(u[0], u[1:3], u[3:6], visibility=v, efficiency=eff, no_click=no_click),
            dtype=np.float64,
        )
        return float(
            observed_key_rate(
                beh,
                bell=bell,
                constraint=constraint,
                x=0,
                bob_key=2,
                preprocessing=float(min(max(u[6], 0.0), 0.5)),
                method=method,
                options=options,
            )  # fmt: skip
        )


@functools.cache
def _statistics_jacobian(no_click: str, constraint: str):
    """Jitted (statistics, d statistics / d angles, EC cost, d cost / d angles, behaviour)
    of a device.

    The statistics are those the certified bound constrains, in :class:`BffResult.slope`'s
    order: "full" <A_0>, <A_1>, <B_0>, <B_1>, E[0, 0], E[0, 1], E[1, 0], E[1, 1] of the test
    inputs; "correlators" the four E[x, y]. Derivatives with respect to the six angles
    (s, a_0, a_1, b_0, b_1, b_2); the cost is H(A'|X=0, Y=2, B) with flip probability p."""

    def behaviour(w, eff, v):
        return qubit_behaviour(w[0], w[1:3], w[3:6], visibility=v, efficiency=eff,
                               no_click=no_click)  # fmt: skip

    def stats(w, eff, v):
        beh = behaviour(w, eff, v)[..., :, :2, :, :2]
        e = behaviour_correlators(beh).ravel()
        if constraint == "correlators":
            return e
        sign = jnp.array([1.0, -1.0])
        alice = jnp.einsum("a,abxy->x", sign, beh) / 2.0
        bob = jnp.einsum("b,abxy->y", sign, beh) / 2.0
        return jnp.concatenate([alice, bob, e])

    def cost(w, eff, v, p):
        return error_correction_cost(behaviour(w, eff, v), 0, 2, preprocessing=p)

    def both(w, eff, v, p):
        return (stats(w, eff, v), jax.jacfwd(stats)(w, eff, v),
                *jax.value_and_grad(cost)(w, eff, v, p), behaviour(w, eff, v))  # fmt: skip

    return jax.jit(both)


def _certified_rates(ws, p, eff, v, no_click, bell, constraint, cert_opts):
    """Certified rates of the devices ``ws`` (k, 6) at flip probability p in one batch of
    SDPs: (rate (k,), gradient (k, 6)). ``constraint`` "bell": the Bell value of the tuple
    ``bell``; "correlators", "full": those statistics (``bell`` then only labels). The
    gradient is the certified bound's dual slope (the weighted equality multipliers: a
    subgradient of the bound in the statistics) times the statistics' Jacobian, minus the
    error-correction cost's gradient; NaN rows where the certificate failed."""
    from jaxbell.rates import bff

    opts = {"m": 8, "processes": 1} | dict(cert_opts or {})
    opts.pop("progress", None)
    fun = _statistics_jacobian(no_click, "correlators" if constraint == "bell" else constraint)
    with x64_scope():
        out = [fun(jnp.asarray(w), eff, v, p) for w in ws]
        stats = np.array([np.asarray(o[0]) for o in out])
        jac = np.array([np.asarray(o[1]) for o in out])
        cost = np.array([float(o[2]) for o in out])
        dcost = np.array([np.asarray(o[3]) for o in out])
        if constraint == "bell":  # the one statistic: the Bell value sum c[x, y] E[x, y]
            coef = np.asarray(bell_coefficients(*bell), dtype=np.float64).ravel()
            jac = np.einsum("n,kni->ki", coef, jac)[:, None, :]
            res = bff.bff_entropy(*bell, stats @ coef, preprocessing=p, progress=False, **opts)
        elif constraint == "full":
            beh = np.array([np.asarray(o[4], dtype=np.float64) for o in out])
            res = bff.bff_entropy(*bell, None, behaviour=beh, preprocessing=p, progress=False,
                                  **opts)  # fmt: skip
        else:
            res = bff.bff_entropy(*bell, None, correlators=stats.reshape(-1, 2, 2),
                                  preprocessing=p, progress=False, **opts)  # fmt: skip
    rate = np.where(res.status == 0, res.value - cost, np.nan)
    grad = np.einsum("kn,kni->ki", res.slope, jac) - dcost
    return rate, np.where(np.isfinite(rate)[:, None], grad, np.nan)


def refine_device(
    device, efficiency: float, *, preprocessing: float | str, visibility: float = 1.0,
    constraint: str = "full", no_click: str = "keep", bell=CHSH, steps: int = 12,
    step: float = 0.05, options: Mapping[str, Any] | None = None, progress: bool = False,
):  # fmt: skip
    """Raise a lossy qubit device's *certified* key rate under ``constraint`` by dual ascent.

    The certified bound (BFF) has no closed form to differentiate, but its dual point gives a
    subgradient in the constrained statistics (:attr:`BffResult.slope`: every certified bound
    is convex in them). Times the statistics' Jacobian (JAX autodiff through
    :func:`jaxbell.qubit_behaviour`), minus the error-correction cost's gradient, it is an
    ascent direction in the device's six angles (s, a_0, a_1, b_0, b_1, b_2). Each step
    certifies three step lengths along it in one batch of SDPs and keeps the best; the step
    length adapts (x4 on success at the longest, /8 on failure). With
    ``preprocessing=("optimal", p0)`` the flip probability moves too: each step also
    certifies the device at p +- dp (dp from 0.05, halved when neither helps). Every rate
    reported is certified (an achievable lower bound for that device).

    Parameters
    ----------
    device : array_like, shape (6,)
        Starting angles (s, a_0, a_1, b_0, b_1, b_2), e.g. an :func:`optimise_device` optimum.
    efficiency, visibility, no_click
        As in :func:`jaxbell.qubit_behaviour`.
    preprocessing : float or ("optimal", float)
        Alice's flip probability p in [0, 1/2), fixed; or searched from the given start.
    constraint : {"full", "correlators", "bell"}
        What the certified bound constrains: the full statistics, the four correlators, or
        the Bell value of ``bell`` alone (the way :func:`optimise_device` optimises a device
        for a family member without a tight analytic bound).
    bell : (theta, phi, omega)
        The Bell test for "bell"; labels the SDPs only otherwise (with statistics the
        coefficients do not enter).
    steps, step : int, float
        Ascent steps and the first step length (radians, along the normalised direction).
    options : dict, optional
        Options of the certified backend (:class:`jaxbell.rates.bff.BffOptions`; default m = 8).

    Returns
    -------
    (rate, device, p, history) : (float, numpy.ndarray, float, numpy.ndarray)
        The best certified rate, its angles and flip probability, and the certified rate after
        each step.
    """
    from tqdm import tqdm

    if constraint not in CONSTRAINTS:
        raise ValueError(f"constraint must be one of {CONSTRAINTS}, got {constraint!r}")
    w = np.asarray(device, dtype=np.float64).reshape(-1)
    if w.shape != (6,) or not np.all(np.isfinite(w)):
        raise ValueError(f"device must be six finite angles (s, a_0, a_1, b_0, b_1, b_2); got "
                         f"{device!r}")  # fmt: skip
    search_p = isinstance(preprocessing, tuple) and preprocessing[:1] == ("optimal",)
    p = float(preprocessing[1] if search_p else preprocessing)
    if not 0.0 <= p < 0.5:
        raise ValueError(f"preprocessing must lie in [0, 1/2); got {preprocessing!r}")
    eff, v = float(efficiency), float(check_visibility(visibility))
    no_click = check_no_click(no_click)
    lo, hi = MIN_STATE_ANGLE, math.pi / 2 - MIN_STATE_ANGLE

    def clip(ws):
        ws = np.array(ws, dtype=np.float64)
        ws[:, 0] = np.clip(ws[:, 0], lo, hi)
        return ws

    def rates(ws, flip):
        return _certified_rates(clip(ws), flip, eff, v, no_click, bell, constraint, options)

    r, g = rates(w[None], p)
    best, grad = float(r[0]), g[0]
    history = [best]
    length, dp = float(step), 0.05
    bar = tqdm(total=steps, desc=f"refine {constraint} eta={eff:.4f}", disable=not progress)
    for _ in range(steps):
        norm = float(np.linalg.norm(grad))
        if not (np.isfinite(best) and np.isfinite(norm)) or norm == 0.0 or length < 1e-5:
            break
        tries = np.array([length / 4.0, length, 4.0 * length])
        cand = clip(w[None] + tries[:, None] * (grad / norm)[None])
        r, g = rates(cand, p)
        j = int(np.argmax(np.where(np.isfinite(r), r, -np.inf)))
        moved = np.isfinite(r[j]) and r[j] > best
        if moved:
            best, w, grad, length = float(r[j]), cand[j], g[j], float(tries[j])
        else:
            length /= 8.0
        if search_p and dp > 1e-4:
            flips = [q for q in (p - dp, p + dp) if 0.0 <= q < 0.5]
            got = [rates(w[None], q) for q in flips]
            k = int(np.argmax([np.nan_to_num(a[0][0], nan=-np.inf) for a in got]))
            if got[k][0][0] > best:
                best, p, grad = float(got[k][0][0]), flips[k], got[k][1][0]
            else:
                dp /= 2.0
        history.append(best)
        bar.update()
    bar.close()
    return best, w, p, np.asarray(history)


def _bisect(positive, lo, hi, tol):
    """Smallest efficiency in (lo, hi] with positive(eff), assuming monotone; NaN if none."""
    if not positive(hi):
        return float("nan")
    while hi - lo > tol:
        mid = 0.5 * (lo + hi)
        if positive(mid):
            hi = mid
        else:
            lo = mid
    return hi


def optimise_device(
    objective: str = "critical_efficiency",
    *,
    efficiency: float | None = None,
    visibility: float = 1.0,
    constraint: str = "bell",
    bell=None,
    no_click: str = "keep",
    preprocessing: float | str = "optimal",
    certify: bool = True,
    beside: bool = True,
    starts: int = 6,
    tol: float = 1e-4,
    certified_tol: float = 2e-3,
    refine: int = 6,
    options: Mapping[str, Any] | None = None,
    seed: int = 0,
) -> DeviceResult:
    """The best lossy two-qubit device for a Bell test: lowest efficiency threshold or highest rate.

    Optimises the state angle, Alice's and Bob's measurement angles and Alice's noisy
    preprocessing p (and, with ``bell="family"``, the asymmetric-CHSH member tested) on tight
    analytic attacks (see the module's Method), then evaluates and certifies the optimum with
    the library's backends under ``constraint``.

    Parameters
    ----------
    objective : {"critical_efficiency", "key_rate"}
        The lowest detection efficiency with a positive key rate, or the key rate at
        ``efficiency``.
    efficiency : float, optional
        Detection efficiency in (0, 1] (required for "key_rate").
    visibility : float
        White-noise visibility of the device (default 1).
    constraint : {"bell", "correlators", "full"}
        What the protocol's test rounds constrain when the optimum is evaluated and certified.
    bell : None, (theta, phi, omega) or "family"
        The Bell test: None the CHSH member; an asymmetric-CHSH tuple (pi/2, phi, pi - phi),
        pi/4 <= phi < pi/2; "family": phi searched too; any other tuple: with
        ``constraint="bell"`` searched on its certified rate (needs ``certify`` and
        ``refine`` >= 1; see the module's Method), ``value`` then the attack on that device.
    no_click : {"bin", "keep"}
        Bob's no-click on his key input (default "keep": its own outcome, Ho et al. 2020).
    preprocessing : float or "optimal"
        Alice's flip probability, or "optimal" (searched in [0, 0.49]).
    certify : bool
        Certify the optimum (BFF, the registry's first certified backend; for thresholds a
        bisection of a few certified points).
    beside : bool
        Also evaluate the same device tested by CHSH alone and by the full statistics.
    starts : int
        Random starts of the search beside the aligned CHSH device and partially entangled ones.
    tol, certified_tol : float
        Width of the attack's and the certified threshold's bisection in the efficiency.
    refine : int
        With ``constraint`` "correlators" or "full" and ``certify``: ascent steps of
        :func:`refine_device` on the certified rate of that constraint, from the Bell test's
        optimum (its flip probability kept), so that the device certified is optimised for the
        statistics used (0: certify the Bell test's device as it is). For a threshold the
        certified bisection then runs over (0.5, 1], each probe refined from the last positive
        probe's device (continuation), since the full statistics may certify below the Bell
        test's attack threshold; ``value`` stays the Bell test's attack threshold.
    options : dict, optional
        ``{"attack": {...}, "certified": {...}}`` options of the two backends (default: BFF
        with m = 6).
    seed : int
        Seed of the random starts.

    Returns
    -------
    DeviceResult
    """
    t0 = time.perf_counter()
    if objective not in DEVICE_OBJECTIVES:
        raise ValueError(f"objective must be one of {DEVICE_OBJECTIVES}, got {objective!r}")
    if constraint not in CONSTRAINTS:
        raise ValueError(f"constraint must be one of {CONSTRAINTS}, got {constraint!r}")
    no_click = check_no_click(no_click)
    v = float(check_visibility(visibility))
    family = isinstance(bell, str)
    if family and bell != "family":
        raise ValueError(
            f"bell must be None, a tuple (theta, phi, omega) or 'family'; got {bell!r}"
        )
    if not isinstance(refine, (int, np.integer)) or isinstance(refine, bool) or refine < 0:
        raise ValueError(f"refine must be a whole number of steps >= 0, got {refine!r}")
    general = False  # a member without an analytic search: searched on its certificate
    alpha = None
    if not family:
        try:
            alpha = _alpha_of(bell)
        except NotImplementedError:
            general = True
            bell = _check_tuple(bell)
        if general and constraint == "bell" and not certify:
            raise ValueError(
                f"bell={bell!r} has no tight analytic bound for a lossy device: the search runs "
                "on its certified rate, so certify must be True (or use bell=None, an "
                "asymmetric-CHSH member or 'family')"
            )
        if general and constraint == "bell" and refine == 0:
            raise ValueError(f"bell={bell!r} is searched by certified ascent: refine must be "
                             ">= 1")  # fmt: skip
    if objective == "key_rate":
        if efficiency is None:
            raise ValueError("objective='key_rate' needs efficiency= (in (0, 1])")
    if efficiency is not None:
        efficiency = float(efficiency)
        if not 0.0 < efficiency <= 1.0:
            raise ValueError(f"efficiency must lie in (0, 1]; got {efficiency!r}")
    fixed_p = None
    if preprocessing != "optimal":
        if isinstance(preprocessing, str) or not 0.0 <= float(preprocessing) <= 0.5:
            raise ValueError(
                f"preprocessing must be a flip probability in [0, 1/2] or 'optimal'; got "
                f"{preprocessing!r}"
            )
        fixed_p = float(preprocessing)
    opts = dict(options or {})
    attack_opts = opts.get("attack")
    cert_opts = opts.get("certified", {"m": 6, "processes": 1})

    u_starts = _starts(family, seed, starts)

    bounds = _bounds(family)
    if fixed_p is not None:
        bounds[6] = (fixed_p, fixed_p)
        u_starts = [np.concatenate([u[:6], [fixed_p], u[7:]]) for u in u_starts]

    def search(eff, warm=None, scaled=objective == "critical_efficiency"):
        f = _objective(no_click, family, alpha, scaled)
        with x64_scope():
            warm = [] if warm is None else warm if isinstance(warm, list) else [warm]
            cands = warm + u_starts
            r, u = _maximise(f, cands, eff, v, bounds)
            if u is not None:  # continuation towards the weakly entangled optimum
                low = u.copy()
                low[0] = max(MIN_STATE_ANGLE, 0.5 * u[0])
                r2, u2 = _maximise(f, [low], eff, v, bounds)
                if r2 > r:
                    r, u = r2, u2
            return r, u

    state: dict[str, Any] = {"u": None}

    def positive(eff):
        r, u = search(eff, state["u"])
        if r > RATE_RESOLUTION:
            state["u"] = u
            return True
        return False

    if objective == "critical_efficiency":
        threshold = _bisect(positive, 0.5, 1.0, tol)
        eff_opt = threshold
        best_u = state["u"]
        if best_u is None:
            raise RuntimeError("no device has a positive key rate at efficiency 1")
    else:
        eff_opt = efficiency
        _, best_u = search(efficiency)
    phi = float(best_u[7]) if family else (math.atan(alpha) if alpha is not None else None)
    tuple_ = CHSH if phi is None else (math.pi / 2, phi, math.pi - phi)
    if general:
        tuple_ = bell
    certified_method = backends.default("lower")

    def lib(u, eff, cons, method, tup=tuple_):
        o = cert_opts if method == certified_method else attack_opts
        return _library_rate(u, eff, v, no_click, tup, cons, method, o)

    attack_for = {"bell": "qubit", "correlators": "attack", "full": "attack"}
    on_certificate = general and constraint == "bell"
    refining = certify and (constraint != "bell" or on_certificate) and refine > 0

    # the flip probability the certified ascent starts from (below 1/2: there no key at all)
    def refined(w6, flip, eff):
        r, w, q, _ = refine_device(
            w6, eff, preprocessing=("optimal", min(flip, 0.45)) if fixed_p is None else flip,
            visibility=v, constraint=constraint, no_click=no_click, bell=tuple_, steps=refine,
            options=cert_opts,
        )  # fmt: skip
        return r, np.concatenate([w, [q]])

    if on_certificate:
        # the member's own ideal strategy as a device, beside the CHSH search's device: the
        # one with the larger certified rate at the efficiency is refined (or, for a
        # threshold, starts the continuation at efficiency 1)
        t, ph, om = tuple_
        p0 = 0.1 if fixed_p is None else fixed_p
        own = np.array([math.pi / 4, 0.0, t, math.pi / 2 - ph, math.pi / 2 - om, 0.0, p0])
        at = eff_opt if objective == "key_rate" else 1.0
        cands = [own, np.array(best_u[:7], dtype=np.float64)]
        rs = [_certified_rates(u[None, :6], float(u[6]), at, v, no_click, tuple_, "bell",
                               cert_opts)[0][0] for u in cands]  # fmt: skip
        best_u = cands[int(np.nanargmax(np.where(np.isfinite(rs), rs, -np.inf)))]

    if objective == "key_rate" and refining:
        certified, best_u = refined(best_u[:6], float(best_u[6]), eff_opt)
        value = lib(best_u, eff_opt, constraint, attack_for[constraint])
    elif objective == "key_rate":
        value = lib(best_u, eff_opt, constraint, attack_for[constraint])
        certified = lib(best_u, eff_opt, constraint, certified_method) if certify else math.nan
    elif refining:
        value = threshold
        # continuation from the Bell test's device at the attack's threshold, moved off the
        # weakly entangled edge it runs to
        start = np.array(best_u, dtype=np.float64)
        start[0] = max(start[0], 0.2)
        if on_certificate:
            start = np.array(best_u, dtype=np.float64)
        warm = {"u": start, "positive": None}

        def cert_positive_refined(eff):
            # each probe starts from the device of the last positive probe (after a failure
            # the bisection moves up, towards it; a failed probe's device, refined where
            # nothing certifies, is no start), the first from the Bell test's device
            u0 = warm["u"] if warm["positive"] is None else warm["positive"]
            r, u = refined(u0[:6], float(u0[6]), eff)
            if r > RATE_RESOLUTION:
                warm["positive"] = u
            return r > RATE_RESOLUTION

        certified = _bisect(cert_positive_refined, 0.5, 1.0, certified_tol)
        if warm["positive"] is not None:
            best_u, eff_opt = warm["positive"], certified
        if on_certificate and warm["positive"] is None:  # nothing certified: no device
            eff_opt = math.nan
        if on_certificate:  # the attack's threshold of the device found (no search of its own)
            value = _bisect(
                lambda eff: lib(best_u, eff, "bell", "qubit") > RATE_RESOLUTION, 0.5, 1.0, tol
            )
    else:
        value = threshold
        certified = math.nan
        if certify:
            cache: dict[float, np.ndarray] = {}

            def cert_positive(eff):  # the device of the largest rate (a resolvable one)
                # warm starts: the attack's threshold device and every earlier probe's device
                _, u = search(eff, [best_u, *cache.values()], scaled=False)
                cache[eff] = u
                return lib(u, eff, constraint, certified_method) > RATE_RESOLUTION

            certified = _bisect(cert_positive, threshold, 1.0, certified_tol)
    chsh_v = chsh_c = full_v = full_c = math.nan
    if beside:
        at = eff_opt
        chsh_v = lib(best_u, at, "bell", "qubit", CHSH)
        full_v = lib(best_u, at, "full", "attack")
        if certify:
            chsh_c = lib(best_u, at, "bell", certified_method, CHSH)
            full_c = lib(best_u, at, "full", certified_method)
    return DeviceResult(
        objective=objective,
        value=float(value),
        certified=float(certified),
        efficiency=float(eff_opt),
        visibility=v,
        state_angle=float(best_u[0]),
        alice_angles=tuple(float(a) for a in best_u[1:3]),
        bob_angles=tuple(float(a) for a in best_u[3:6]),
        preprocessing=float(best_u[6]),
        bell=tuple(float(a) for a in tuple_),
        constraint=constraint,
        no_click=no_click,
        chsh_value=float(chsh_v),
        chsh_certified=float(chsh_c),
        full_value=float(full_v),
        full_certified=float(full_c),
        settings={
            "objective": objective,
            "constraint": constraint,
            "bell": "family" if family else ("chsh" if bell is None else repr(tuple(bell))),
            "no_click": no_click,
            "preprocessing": str(preprocessing),
            "starts": starts,
            "tol": tol,
            "certified_tol": certified_tol,
            "refine": refine if refining else 0,
            "seed": seed,
            "attack_method": attack_for[constraint],
            "certified_method": certified_method,
            "certified_options": repr(cert_opts),
        },  # fmt: skip
        seconds=time.perf_counter() - t0,
    )
