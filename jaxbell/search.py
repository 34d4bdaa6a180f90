"""Searches for extremal tuples of the family: the paper's propositions made constructive.

:func:`max_chsh` finds the supremum of the nonlocality ``max_chsh`` of the strategy of eq. (6)
over self-testing tuples (condition (4) strictly true) whose rates at the quantum bound meet
constraints (a key rate of at least ``min_key_rate``, perfect global randomness, fixed angles);
:func:`find_tuple` finds a self-testing tuple with a prescribed ``max_chsh`` meeting the same
constraints; :func:`tradeoff_curve` traces the supremum as a function of epsilon, the curve the
paper only bounds.

Method
------
Write the four angle sums of eq. (6) as ``s = (s00, s01, s10, s11) = (phi, omega, theta + phi,
theta + omega)``, so ``E[x, y] = sin(s_xy)``, condition (4) reads ``-prod_xy cos(s_xy) > 0``
and the rates at the quantum bound depend on ``|sin(s_xy)|`` only (entropy.py). The constraints
become conditions on single angle sums:

* ``key_rate >= 1 - eps`` (``epsilon <= eps``) holds iff ``|sin s_k| >= 1 - 2 q`` for some pair
  ``k``, where ``h(q) = eps``; that is ``s_k = +-pi/2 + a sin(u)`` with ``a = 2 arcsin(sqrt q)``
  and a free angle ``u``: a smooth reparametrisation onto the allowed interval. The pair ``k``
  and the sign are enumerated.
* perfect randomness (``global_rate == 2``) holds iff some ``sin(s_k) = 0``: the sum is pinned
  exactly at 0 or pi (enumerated), so ``global_rate`` is exactly 2.
* ``fixed`` angles are pinned exactly.

Each choice ("case") leaves 0-3 free angles. The eight CHSH-type expressions are smooth and
``sup max_chsh = max_j sup f_j``, so each expression is maximised separately. Every
(case, expression, restart) is one small problem; all are solved together, vmapped and jitted:
optax Adam on ``f_j + mu log(margin)`` (a log barrier that keeps condition (4) strictly true;
steps that would leave the region are halved), then a damped Newton interior-point continuation
``mu -> 1e-13`` with autodiff Hessians. Problems run in jitted blocks of 128 (one compiled
shape; spare slots get extra restarts), split over all devices of the process (``devices=``),
in fixed blocks per device and call (:func:`jaxbell.sharding.map_blocks`): results are the
same, bit for bit, on 1 and N devices. The best tuple is re-checked with the closed forms of
family.py / entropy.py before it is returned; a tuple that fails its constraints is never
returned. :func:`find_tuple` then looks for the level ``max_chsh = chsh`` from restarts (Adam on
the squared gap, 1-D Newton polish) and along monotone descent paths (bisection on the segment
that crosses the level), and keeps the hit deepest inside the region of (4).

Where the barrier's force on the solution stays significant as ``mu -> 0`` the supremum lies on
the boundary of the self-testing region (e.g. the 5/2 of Prop. 3 as phi -> pi/2): it is not
attained, and the result is the best self-testing tuple, within ~1e-9 of it
(``supremum_attained=False`` and a note say so).

Symmetries used (without ``fixed``): shifting phi or omega by pi negates a column of E, shifting
(theta, phi, omega) by (-pi, pi, pi) negates row 0, shifting theta by pi negates row 1; swapping
Alice's inputs, Bob's inputs or the parties permutes the pairs. All leave ``max_chsh``,
condition (4) and the rates at the quantum bound unchanged, so the key pair can be taken to be
(0, 0) with ``E00 > 0`` and a pinned sum to be 0.

References
----------
Eqs. (1)-(6) and Props. 1-6 of L. Wooltorton, P. Brown and R. Colbeck, "Device-Independent
Quantum Key Distribution with Arbitrarily Small Nonlocality", Phys. Rev. Lett. 132, 210802
(2024), doi:10.1103/PhysRevLett.132.210802. Barrier continuation with Newton steps:
J. Nocedal and S. J. Wright, *Numerical Optimization*, 2nd ed. (Springer, 2006), ch. 19.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import logging
import math
import time
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxbell._precision import x64_scope
from jaxbell.dataset import search_result_dataset, tradeoff_dataset
from jaxbell.entropy import (
    epsilon_at_quantum_bound,
    global_rate_at_quantum_bound,
    key_rate_at_quantum_bound,
    pair_entropies_at_quantum_bound,
)
from jaxbell.family import boundary_tolerance, self_testing_margin
from jaxbell.nonlocality import max_chsh_value
from jaxbell.sharding import describe_devices, map_blocks, select_devices
from jaxbell.strategy import strategy_correlators

__all__ = [
    "SearchResult",
    "epsilon_interval_half_width",
    "find_tuple",
    "max_chsh",
    "tradeoff_curve",
]

ANGLES = ("theta", "phi", "omega")
TSIRELSON = 2.0 * math.sqrt(2.0)
#: s = _SUM_ROWS @ (theta, phi, omega): the angle sums s00, s01, s10, s11 of eq. (6)
_SUM_ROWS = np.array([[0, 1, 0], [0, 0, 1], [1, 1, 0], [1, 0, 1]], dtype=float)
#: Linear forms on which the product of condition (4), cos(phi) cos(omega) cos(theta + phi)
#: cos(theta + omega), is a square (>= 0) wherever the form is 0 mod pi, so that (4) fails
#: identically: theta (then it is cos^2 phi cos^2 omega), phi - omega, theta + phi + omega.
_SQUARE_ROWS = (
    (np.array([1.0, 0.0, 0.0]), "theta = 0 (mod pi)"),
    (np.array([0.0, 1.0, -1.0]), "phi - omega = 0 (mod pi)"),
    (np.array([1.0, 1.0, 1.0]), "theta + phi + omega = 0 (mod pi)"),
)
#: the eight CHSH-type expressions: +-(sum_xy E - 2 E_k), weights on (E00, E01, E10, E11)
_CHSH_WEIGHTS = np.array(
    [sign * (np.ones(4) - 2.0 * np.eye(4)[k]) for sign in (1.0, -1.0) for k in range(4)]
)
#: largest epsilon whose key rate 1 - epsilon rounds to 1 in float64 (the "key -> 1" limit)
_EPS_KEY_ONE = 2.0**-55
#: absolute slack (rad) kept between the key interval and the returned angle sum
_ANGLE_SLACK = 1e-14
#: barrier weights: Adam phase, then the Newton continuation down to the last one
_MU_START = 1e-4
_MU_END = 1e-13
#: barrier force (|mu grad margin / margin|) below which the constraint (4) is inactive
_FORCE_TOL = 1e-6
#: final gradient norm below which a restart counts as converged
_GRAD_TOL = 1e-7
#: step halvings tried by Adam's guarded steps (steps are small: few are ever needed)
_ADAM_HALVINGS = 12
#: weak barrier of the level-set search (prefers tuples deep inside the region)
_MU_LEVEL = 1e-8
#: smallest margin of (4) the find_tuple paths may reach (the closed forms need > 32 ulp)
_MARGIN_FLOOR = 64 * 2.0**-52

logger = logging.getLogger("jaxbell")


# --------------------------------------------------------------------------------------------
# results


@dataclasses.dataclass(frozen=True)
class SearchResult:
    """A tuple found by :func:`max_chsh` or :func:`find_tuple`, re-checked with the closed forms.

    Attributes
    ----------
    theta, phi, omega : float
        The tuple, radians in [0, 2 pi) (NaN when the search failed); the rates and
        ``max_chsh`` are computed at these angles.
    max_chsh : float
        Largest CHSH-type value of the strategy of eq. (6) at the tuple, in (2, 2 sqrt 2].
    key_rate, epsilon, global_rate : float
        Rates at the quantum bound, bits (entropy.py); ``epsilon = 1 - key_rate`` computed
        directly. With ``require_self_testing=False`` and (4) false at the tuple these are the
        rates of the strategy's correlators (H(A|X=x, E) = 1 as for the singlet), certified only
        by constraining all four correlators (Props. 4, 6), not by one Bell expression.
    self_testing : bool
        Condition (4) at the tuple (strictly, beyond rounding).
    self_testing_margin : float
        ``-cos(theta + phi) cos(phi) cos(theta + omega) cos(omega)``, > 0 where (4) holds.
    converged : bool
        The search succeeded: the tuple meets every constraint (re-checked) and, for
        :func:`max_chsh`, the best restart satisfies the optimality conditions; for
        :func:`find_tuple`, ``|max_chsh - chsh_target| <= 1e-9``.
    supremum : float
        :func:`max_chsh`: the supremum of max_chsh under the constraints (the best value
        found over the closure of the feasible set; a lower bound on the true supremum if the
        restarts missed the global maximum). :func:`find_tuple`: the supremum it checked
        ``chsh_target`` against.
    supremum_attained : bool
        True when a self-testing tuple reaches the supremum (to ~1e-12); False when it is only
        approached as condition (4) degenerates (then ``supremum - max_chsh <= 1e-4``, in
        practice ~1e-10).
    chsh_target : float
        :func:`find_tuple`'s requested value; NaN for :func:`max_chsh`.
    note : str
        What the numbers mean in this case (limits, rounding), in words.
    search : str
        ``"max_chsh"`` or ``"find_tuple"``.
    min_key_rate, max_epsilon : float or None
        The key constraint as given, and the epsilon bound actually imposed (bits).
    perfect_randomness : bool
        Whether ``global_rate == 2`` was required.
    fixed : tuple of (str, float)
        Angles held fixed.
    require_self_testing : bool
        Whether condition (4) was required (False: the limit correlators of Props. 4, 6).
    seed, restarts, steps : int
        Search settings: PRNG seed, restarts per (case, expression), Adam steps.
    restarts_at_best : int
        Restarts whose value is within 1e-9 of the best (evidence of a global maximum).
    elapsed_seconds : float
        Wall time of the search.
    devices : tuple of str
        The devices the problems were split over (the result does not depend on them).
    """

    theta: float
    phi: float
    omega: float
    max_chsh: float
    key_rate: float
    epsilon: float
    global_rate: float
    self_testing: bool
    self_testing_margin: float
    converged: bool
    supremum: float
    supremum_attained: bool
    chsh_target: float
    note: str
    search: str
    min_key_rate: float | None
    max_epsilon: float | None
    perfect_randomness: bool
    fixed: tuple[tuple[str, float], ...]
    require_self_testing: bool
    seed: int
    restarts: int
    steps: int
    restarts_at_best: int
    elapsed_seconds: float
    devices: tuple[str, ...] = ()

    @property
    def angles(self) -> tuple[float, float, float]:
        """``(theta, phi, omega)``, radians."""
        return (self.theta, self.phi, self.omega)

    def to_dataset(self):
        """The result as a labelled 0-d ``xarray.Dataset`` (settings as attributes)."""
        return search_result_dataset(self)


# --------------------------------------------------------------------------------------------
# constraints -> cases (NumPy, static)


def _binary_entropy_np(q: float) -> float:
    if q <= 0.0:
        return 0.0
    return -(q * math.log(q) + (1.0 - q) * math.log1p(-q)) / math.log(2.0)


def _minority_for_entropy(eps: float) -> float:
    """q in (0, 1/2] with h(q) = eps (bisection on log q; h is increasing on (0, 1/2])."""
    if eps >= 1.0:
        return 0.5
    lo, hi = math.log(1e-300), math.log(0.5)
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if _binary_entropy_np(math.exp(mid)) < eps:
            lo = mid
        else:
            hi = mid
    return math.exp(lo)


def epsilon_interval_half_width(max_epsilon: float) -> float:
    """Half-width a (rad) of the angle-sum interval pi/2 +- a where ``epsilon <= max_epsilon``.

    ``h((1 + sin s)/2) <= eps`` iff ``|sin s| >= 1 - 2 q`` with ``h(q) = eps``, i.e. ``s`` within
    ``a = 2 arcsin(sqrt(q))`` of +-pi/2 (mod 2 pi). Keeps relative precision as eps -> 0.

    Parameters
    ----------
    max_epsilon : float
        Bits, in [0, 1]. 0 gives 0; 1 gives pi/2 (no constraint).
    """
    if max_epsilon <= 0.0:
        return 0.0
    return 2.0 * math.asin(math.sqrt(_minority_for_entropy(max_epsilon)))


@dataclasses.dataclass(frozen=True)
class _Case:
    """One way to meet the constraints: angles ``v = P z + q0 + qk a sin(u)`` of free ``z, u``."""

    P: np.ndarray  # (3, 3); column i non-zero iff angle i is free
    q0: np.ndarray  # (3,)
    qk: np.ndarray  # (3,); the key sum's direction (zero without a key parameter)
    free: np.ndarray  # (4,) bool: theta, phi, omega free; u (key parameter) present
    key_const: float | None  # the key sum when fixed by other constraints (then checked)
    label: str


def _build_case(fixed: Mapping[str, float], pin, key, require: bool) -> _Case | str:
    """Solve the linear constraints of one case; a reason (str) when no tuple can meet them."""
    rows: list[tuple[np.ndarray, float, str]] = []
    for name, value in fixed.items():
        rows.append((np.eye(3)[ANGLES.index(name)], float(value), "fixed"))
    if pin is not None:
        rows.append((_SUM_ROWS[pin[0]], pin[1], "pin"))
    if key is not None:
        rows.append((_SUM_ROWS[key[0]], key[1] * math.pi / 2, "key"))
    R: list[np.ndarray] = []
    vals: list[float] = []
    key_row = None
    key_const = None
    for row, value, kind in rows:
        if np.linalg.matrix_rank(np.array(R + [row])) > len(R):
            if kind == "key":
                key_row = len(R)
            R.append(row)
            vals.append(value)
            continue
        coef = np.linalg.lstsq(np.array(R).T, row, rcond=None)[0]
        implied = float(coef @ np.array(vals))  # only fixed/pinned rows precede
        if kind == "pin":
            if abs(math.sin(implied)) > 1e-12:
                return "no correlator of eq. (6) can vanish (perfect_randomness)"
            if math.cos(implied - value) < 0:
                return "covered by the other pinned value"
        elif kind == "key":
            key_const = implied
    if require:  # fixed values on which condition (4) fails identically
        eq = [(r, v) for i, (r, v) in enumerate(zip(R, vals, strict=True)) if i != key_row]
        A = np.array([r for r, _ in eq]) if eq else np.zeros((0, 3))

        def implied_by_eq(form):
            if not eq:
                return None
            coef, *_ = np.linalg.lstsq(A.T, form, rcond=None)
            ok = np.allclose(coef @ A, form)
            return float(coef @ np.array([v for _, v in eq])) if ok else None

        for k in range(4):
            implied = implied_by_eq(_SUM_ROWS[k])
            if implied is not None and abs(math.cos(implied)) < 1e-12:
                return "condition (4) fails identically (a fixed angle sum is +-pi/2)"
        for form, what in _SQUARE_ROWS:
            implied = implied_by_eq(form)
            if implied is not None and abs(math.sin(implied)) < 1e-12:
                return (
                    f"condition (4) fails identically: with {what} its product "
                    "cos(theta+phi) cos(phi) cos(theta+omega) cos(omega) is a square, >= 0"
                )
    m = len(R)
    free_idx = list(range(3))
    P = np.zeros((3, 3))
    q0 = np.zeros(3)
    qk = np.zeros(3)
    if m:
        Rm = np.array(R)
        combos = itertools.combinations(range(3), m)
        piv = next(c for c in combos if abs(np.linalg.det(Rm[:, c])) > 0.5)
        free_idx = [i for i in range(3) if i not in piv]
        inv = np.linalg.inv(Rm[:, piv])
        inv = np.round(inv)  # the rows are 0/1 vectors with unit determinants: exact integers
        q0[list(piv)] = inv @ np.array(vals)
        for f in free_idx:
            P[f, f] = 1.0
            P[list(piv), f] = -inv @ Rm[:, f]
        if key_row is not None:
            qk[list(piv)] = inv[:, key_row]
    else:
        P = np.eye(3)
    free = np.zeros(4, bool)
    free[free_idx] = True
    free[3] = key_row is not None
    pairs = ("00", "01", "10", "11")
    parts = []
    if key is not None:
        parts.append(f"key E{pairs[key[0]]}{'>' if key[1] > 0 else '<'}0")
    if pin is not None:
        parts.append(f"E{pairs[pin[0]]}=0 at s={'pi' if pin[1] else '0'}")
    return _Case(P, q0, qk, free, key_const, ", ".join(parts) or "free")


def _cases(
    fixed: Mapping[str, float], key: bool, randomness: bool, require: bool
) -> tuple[list[_Case], set[str]]:
    """All cases for the constraints (reduced by the symmetries when nothing is fixed), and
    the reasons the others were dropped."""
    if not fixed:
        keys = [(0, 1.0)] if key else [None]
        if randomness:
            pins = [(1, 0.0), (3, 0.0)] if key else [(0, 0.0)]
        else:
            pins = [None]
    else:
        keys = [(k, s) for k in range(4) for s in (1.0, -1.0)] if key else [None]
        pins = [(k, v) for k in range(4) for v in (0.0, math.pi)] if randomness else [None]
    cases, reasons = [], set()
    for k in keys:
        for p in pins:
            if k is not None and p is not None and k[0] == p[0]:
                continue  # a correlator cannot be both 0 and near +-1
            case = _build_case(fixed, p, k, require)
            if isinstance(case, str):
                reasons.add(case)
            else:
                cases.append(case)
    return cases, reasons - {"covered by the other pinned value"}


# --------------------------------------------------------------------------------------------
# the vmapped, jitted core (one problem; float64 under x64_scope)


def _angles_of(z, prob):
    return prob["P"] @ z[:3] + prob["q0"] + prob["qk"] * (prob["a"] * jnp.sin(z[3]))


def _sums_of(v):
    t, p, o = v[0], v[1], v[2]
    return jnp.stack([p, o, t + p, t + o])  # same arithmetic as strategy._angle_sums


def _expression(z, prob):
    return prob["w"] @ jnp.sin(_sums_of(_angles_of(z, prob)))


def _max_chsh_z(z, prob):
    e = jnp.sin(_sums_of(_angles_of(z, prob)))
    return jnp.max(jnp.abs(jnp.sum(e) - 2.0 * e))


def _margin_z(z, prob):
    return -jnp.prod(jnp.cos(_sums_of(_angles_of(z, prob))))


def _barrier(value, margin, mu, barrier):
    """``value + mu log(margin)``, -inf outside condition (4); just ``value`` when ``barrier``
    is False (a traced flag: one compilation serves both)."""
    barrier = jnp.asarray(barrier, dtype=bool)
    inside = margin > 0
    safe = jnp.where(inside, margin, 1.0)
    penalty = jnp.where(barrier, mu * jnp.log(safe), 0.0)
    return jnp.where(inside | ~barrier, value + penalty, -jnp.inf)


def _objective_max(z, prob, mu, barrier):
    return _barrier(_expression(z, prob), _margin_z(z, prob), mu, barrier)


def _objective_level(z, prob, mu, target, barrier):
    gap = _max_chsh_z(z, prob) - target
    return _barrier(-(gap**2), _margin_z(z, prob), mu, barrier)


def _pick_start(cands, prob, barrier):
    """The candidate with the largest margin (the first one without the barrier)."""
    margins = jax.vmap(_margin_z, (0, None))(cands, prob)
    return cands[jnp.where(barrier, jnp.argmax(margins), 0)]


def _guarded(z, step, objective, accept, halvings: int = 40):
    """z + t step for the largest t in 1, 1/2, ..., 2^-(halvings-1) that ``accept`` allows
    (else z)."""
    ts = 2.0 ** -jnp.arange(halvings, dtype=z.dtype)
    cands = z[None, :] + ts[:, None] * step[None, :]
    vals = jax.vmap(objective)(cands)
    ok = accept(ts, vals)
    k = jnp.argmax(ok)
    return jnp.where(jnp.any(ok), cands[k], z)


def _adam(z, prob, objective, steps: int, lr: float):
    """Maximise ``objective`` with optax Adam (cosine-decayed rate); steps are halved until
    the objective stays finite (the barrier's region)."""
    mask = prob["free"]
    opt = optax.adam(optax.cosine_decay_schedule(lr, max(steps, 1), alpha=1e-2))
    state = opt.init(z)

    def body(carry, _):
        z, state = carry
        g = jax.grad(objective)(z) * mask
        g = jnp.where(jnp.isfinite(g), g, 0.0)
        upd, state = opt.update(-g, state, z)
        z = _guarded(z, upd * mask, objective, lambda ts, v: jnp.isfinite(v), _ADAM_HALVINGS)
        return (z, state), None

    (z, _), _ = jax.lax.scan(body, (z, state), None, length=steps)
    return z


def _newton(z, prob, objective_mu, mus):
    """Damped, eigenvalue-modified Newton ascent on ``objective_mu(z, mu)`` along ``mus``."""
    mask = prob["free"]
    outer = mask[:, None] * mask[None, :]

    def body(z, mu):
        f = functools.partial(objective_mu, mu=mu)
        val, g = jax.value_and_grad(f)(z)
        g = jnp.where(jnp.isfinite(g), g, 0.0) * mask
        H = jax.hessian(f)(z)
        H = jnp.where(jnp.isfinite(H), H, 0.0) * outer - jnp.diag(1.0 - mask)
        lam, Q = jnp.linalg.eigh(H)
        lam = jnp.maximum(jnp.abs(lam), 1e-12 * (1.0 + jnp.max(jnp.abs(lam))))
        step = (Q @ ((Q.T @ g) / lam)) * mask
        norm = jnp.sqrt(jnp.sum(step**2))
        step = step * jnp.minimum(1.0, 0.5 / jnp.maximum(norm, 1e-300))
        slope = g @ step

        def accept(ts, vals):
            return jnp.isfinite(vals) & (vals >= val + 1e-4 * ts * slope)

        return _guarded(z, step, f, accept), None

    z, _ = jax.lax.scan(body, z, mus)
    return z


def _stationarity(z, prob, mu, barrier):
    """Gradient norm of the barrier objective and the barrier's force at z."""
    mask = prob["free"]
    g = jax.grad(_objective_max)(z, prob, mu, barrier) * mask
    m = _margin_z(z, prob)
    gm = jax.grad(_margin_z)(z, prob) * mask
    force = jnp.where(barrier, mu * jnp.sqrt(jnp.sum(gm**2)) / jnp.abs(m), 0.0)
    return jnp.sqrt(jnp.sum(g**2)), force


@functools.partial(jax.jit, static_argnames=("adam_steps",))
def _solve_max(probs, cands, mus, barrier, *, adam_steps: int):
    def one(prob, cand):
        z = _pick_start(cand, prob, barrier)
        obj0 = functools.partial(_objective_max, prob=prob, mu=mus[0], barrier=barrier)
        z = _adam(z, prob, obj0, adam_steps, 0.1)

        def obj(z, mu):
            return _objective_max(z, prob, mu, barrier)

        z = _newton(z, prob, obj, mus)
        grad_norm, force = _stationarity(z, prob, mus[-1], barrier)
        return {
            "z": z,
            "angles": _angles_of(z, prob),
            "value": _expression(z, prob),
            "margin": _margin_z(z, prob),
            "grad_norm": grad_norm,
            "force": force,
        }

    return jax.vmap(one)(probs, cands)


def _level_point(z, prob, target, adam_steps: int):
    """Adam on ``-(max_chsh - target)^2 + mu log(margin)`` (a weak barrier that prefers tuples
    deep inside the region), then a 1-D Newton root find of ``max_chsh(z + t d) = target``
    along ``d = grad max_chsh``."""
    obj = functools.partial(_objective_level, prob=prob, mu=_MU_LEVEL, target=target, barrier=True)
    z = _adam(z, prob, obj, adam_steps, 0.05)
    d = jax.grad(_max_chsh_z)(z, prob) * prob["free"]
    d = d / jnp.maximum(jnp.sqrt(jnp.sum(d**2)), 1e-300)

    def newton_t(t, _):
        val, slope = jax.value_and_grad(lambda t: _max_chsh_z(z + t * d, prob) - target)(t)
        dt = -val / jnp.where(jnp.abs(slope) > 1e-12, slope, 1.0)
        return jnp.clip(t + dt, -0.05, 0.05), None

    t, _ = jax.lax.scan(newton_t, jnp.zeros_like(target), None, length=12)
    return z + t * d


def _path_point(z, prob, target, mus):
    """A monotone path from ``z`` towards the level ``max_chsh = target``, then bisection on
    the first path segment that crosses the level.

    The path descends max_chsh if ``z`` starts above the level (ascends if below) plus a log
    barrier ``mu log(margin)`` whose weight follows ``mus`` down to ~0: steepest-descent steps
    of length <= 0.5 rad with an exhaustive Armijo line search that keeps condition (4) true.
    Without momentum the iterates slide along the boundary of the region into its corners,
    where max_chsh -> 2. Returns the point and whether a crossing was found.
    """
    sigma = jnp.where(_max_chsh_z(z, prob) >= target, 1.0, -1.0)
    mask = prob["free"]

    def objective(z, mu):
        value = -sigma * _max_chsh_z(z, prob)
        m = _margin_z(z, prob)
        ok = m > _MARGIN_FLOOR
        return jnp.where(ok, value + mu * jnp.log(jnp.where(ok, m, 1.0)), -jnp.inf)

    def body(z, mu):
        val, g = jax.value_and_grad(objective)(z, mu)
        g = jnp.where(jnp.isfinite(g), g, 0.0) * mask
        norm = jnp.sqrt(jnp.sum(g**2))
        step = 0.5 * g / jnp.maximum(norm, 1e-300)

        def accept(ts, vals):
            return jnp.isfinite(vals) & (vals >= val + 1e-4 * ts * (g @ step))

        z = _guarded(z, step, lambda c: objective(c, mu), accept)
        return z, z

    _, path = jax.lax.scan(body, z, mus)
    path = jnp.concatenate([z[None, :], path])
    side = sigma * (jax.vmap(_max_chsh_z, (0, None))(path, prob) - target)
    crossed = side <= 0
    k = jnp.argmax(crossed)  # first point at or beyond the level (k >= 1 when found)
    za, zb = path[jnp.maximum(k - 1, 0)], path[k]

    def bisect(_, lohi):
        lo, hi = lohi
        mid = 0.5 * (lo + hi)
        above = sigma * (_max_chsh_z(za + mid * (zb - za), prob) - target) > 0
        return jnp.where(above, mid, lo), jnp.where(above, hi, mid)

    lo, hi = jax.lax.fori_loop(0, 64, bisect, (jnp.zeros_like(target), jnp.ones_like(target)))
    return za + hi * (zb - za), jnp.any(crossed) & (k >= 1)


@functools.partial(jax.jit, static_argnames=("adam_steps",))
def _solve_find(probs, cands, target, mus, *, adam_steps: int):
    def one(prob, cand):
        z0 = _pick_start(cand, prob, True)
        z_level = _level_point(z0, prob, target, adam_steps)
        z_path, crossed = _path_point(z0, prob, target, mus)
        return {
            "level": _angles_of(z_level, prob),
            "path": _angles_of(z_path, prob),
            "crossed": crossed,
        }

    return jax.vmap(one)(probs, cands)


# --------------------------------------------------------------------------------------------
# batching and re-checking (NumPy)


#: problems per block: searches pad their problems to whole blocks (spare slots get extra
#: restarts), so the problem set does not depend on the platform or the device count
_BLOCK = 128
#: blocks per device and jitted call, by platform: one block shape per solver and device count
#: (128 problems is the fastest per problem on a CPU; accelerators want larger calls)
_BLOCKS_PER_CALL = {"cpu": 1}
_BLOCKS_PER_CALL_ACCELERATOR = 8


def _call_block(devices: tuple[jax.Device, ...]) -> int:
    """Problems per device and call on these devices' platform."""
    return _BLOCK * _BLOCKS_PER_CALL.get(devices[0].platform, _BLOCKS_PER_CALL_ACCELERATOR)


def _stack_problems(cases: list[_Case], a: np.ndarray, weights: np.ndarray, restarts: int):
    """Problems for every (a, case, expression, restart), padded to whole blocks.

    Returns the problem pytree (NumPy arrays), the index arrays (a, case, expression, restart)
    and the real count.
    """
    ia, ic, iw, ir = (
        g.ravel()
        for g in np.meshgrid(
            np.arange(len(a)),
            np.arange(len(cases)),
            np.arange(len(weights)),
            np.arange(restarts),
            indexing="ij",
        )
    )
    n = ia.size
    size = -(-n // _BLOCK) * _BLOCK
    pad = np.concatenate([np.arange(n), np.zeros(size - n, int)])
    ia, ic, iw, ir = ia[pad], ic[pad], iw[pad], ir[pad]
    P = np.stack([c.P for c in cases])[ic]
    q0 = np.stack([c.q0 for c in cases])[ic]
    qk = np.stack([c.qk for c in cases])[ic]
    free = np.stack([c.free for c in cases]).astype(float)[ic]
    a = np.asarray(a, float)[ia]
    probs = {"P": P, "q0": q0, "qk": qk, "a": a, "w": weights[iw], "free": free}
    return probs, (ia, ic, iw, ir), n


def _fill_restarts(groups: int, restarts: int) -> int:
    """At least ``restarts`` per group, more where the last block would otherwise be padding
    (extra restarts are free: a block costs the same whether or not it is full)."""
    blocks = -(-groups * restarts // _BLOCK)
    return max(restarts, (blocks * _BLOCK) // groups)


def _blocked(solver, probs, cands, *args, devices: tuple[jax.Device, ...], **static):
    """Run a jitted, vmapped solver over the problems, split over the devices; NumPy outputs.

    :func:`jaxbell.sharding.map_blocks`: each call gives every device one block of
    :func:`_call_block` problems (the last call padded with copies of the last problem, dropped),
    ``args`` are replicated; each problem's result is the same, bit for bit, on 1 and N devices.
    """
    with x64_scope():
        return map_blocks(
            solver, (probs, cands), tuple(jnp.asarray(a) for a in args),
            block=_call_block(devices), devices=devices, **static,
        )  # fmt: skip


def _log_run(what: str, n: int, devices: tuple[jax.Device, ...]) -> None:
    block = _call_block(devices)
    calls = -(-n // (block * len(devices)))
    logger.info(
        "%s: %d problems in %d call(s) of %d per device on %s",
        what, n, calls, block, describe_devices(devices),
    )  # fmt: skip


def _candidates(seed: int, size: int, count: int = 16) -> np.ndarray:
    """Random starting points: free angles uniform in [0, 2 pi), the key parameter in [-pi, pi)."""
    rng = np.random.default_rng(seed)
    z = rng.uniform(0.0, 2.0 * np.pi, (size, count, 4))
    z[..., 3] -= np.pi
    return z


def wrap_angles(angles: np.ndarray) -> np.ndarray:
    """Angles reduced into [0, 2 pi) (every function of the family is 2 pi-periodic in each):
    values already there are kept exactly, NaN stays NaN."""
    out = np.mod(np.asarray(angles, dtype=np.float64), 2 * np.pi)
    return np.where(out >= 2 * np.pi, 0.0, out)  # a tiny negative angle rounds up to 2 pi


def _recheck(angles: np.ndarray) -> dict[str, np.ndarray]:
    """The closed forms (family.py, nonlocality.py, entropy.py) at tuples of shape (n, 3)."""
    t, p, w = (np.ascontiguousarray(angles[:, i]) for i in range(3))
    h = np.asarray(pair_entropies_at_quantum_bound(t, p, w)).reshape(-1, 4)
    return {
        "max_chsh": np.asarray(max_chsh_value(strategy_correlators(t, p, w))),
        "margin": np.asarray(self_testing_margin(t, p, w)),
        "key_rate": np.asarray(key_rate_at_quantum_bound(t, p, w)),
        "epsilon": np.asarray(epsilon_at_quantum_bound(t, p, w)),
        "global_rate": np.asarray(global_rate_at_quantum_bound(t, p, w)),
        "strategy_epsilon": h.min(axis=1),
        "strategy_global_rate": 1.0 + h.max(axis=1),
    }


def _feasible(chk, *, eps_max, randomness, require_self_testing, fixed) -> np.ndarray:
    """Constraint check on re-checked tuples (the definition the results promise)."""
    tol = boundary_tolerance(np.float64)
    st = chk["margin"] > tol
    eps = chk["epsilon"] if require_self_testing else chk["strategy_epsilon"]
    glob = chk["global_rate"] if require_self_testing else chk["strategy_global_rate"]
    ok = np.isfinite(chk["max_chsh"])
    if require_self_testing:
        ok &= st
    if eps_max is not None:
        ok &= eps <= eps_max
    if randomness:
        ok &= glob == 2.0
    return ok


# --------------------------------------------------------------------------------------------
# argument checks


def _check_fixed(fixed) -> dict[str, float]:
    if fixed is None:
        return {}
    if not isinstance(fixed, Mapping):
        raise TypeError(
            f"fixed must be a mapping from angle names to radians, e.g. {{'omega': np.pi}}; "
            f"got {type(fixed).__name__}"
        )
    out = {}
    for name, value in fixed.items():
        if name not in ANGLES:
            raise ValueError(f"fixed: unknown angle {name!r}; use 'theta', 'phi' or 'omega'")
        try:
            v = float(value)
        except (TypeError, ValueError):
            raise TypeError(
                f"fixed[{name!r}] must be a real number of radians, got {value!r}"
            ) from None
        if not math.isfinite(v):
            raise ValueError(f"fixed[{name!r}] must be finite radians, got {value!r}")
        if abs(v) > 2.0 * math.pi:  # to (-pi, pi], exactly reduced by libm's sin and cos
            v = math.atan2(math.sin(v), math.cos(v))
        out[name] = v
    return out


def _check_bool(value, name: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def _check_int(value, name: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if value < low:
        raise ValueError(f"{name} must be >= {low}, got {value}")
    return int(value)


def _real(value, name: str) -> float:
    if isinstance(value, (bool, np.bool_, str, bytes)) or value is None:
        raise TypeError(f"{name} must be a real number, got {value!r}")
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a real number, got {value!r}") from None
    if math.isnan(v):
        raise ValueError(f"{name} is NaN; give a number")
    return v


def _epsilon_bound(min_key_rate, max_epsilon) -> tuple[float | None, float | None]:
    """(min_key_rate as given, epsilon bound in bits) from the two ways of saying it."""
    if min_key_rate is not None and max_epsilon is not None:
        raise ValueError(
            "give min_key_rate or max_epsilon, not both (max_epsilon = 1 - min_key_rate, with "
            "relative precision below 1e-16)"
        )
    if min_key_rate is not None:
        r = _real(min_key_rate, "min_key_rate")
        if not 0.0 < r <= 1.0:
            raise ValueError(
                f"min_key_rate must lie in (0, 1] bits per round; got {min_key_rate!r}. Key "
                "rates at the quantum bound of self-testing tuples lie in (0, 1)."
            )
        return r, 1.0 - r  # exact (Sterbenz) for r >= 1/2
    if max_epsilon is not None:
        e = _real(max_epsilon, "max_epsilon")
        if not 0.0 <= e < 1.0:
            raise ValueError(f"max_epsilon must lie in [0, 1) bits; got {max_epsilon!r}")
        return None, e
    return None, None


# --------------------------------------------------------------------------------------------
# the searches


@dataclasses.dataclass
class _Setup:
    cases: list[_Case]
    eps_max: float | None  # the bound as requested (None: no key constraint)
    eps_eff: float | None  # the bound imposed (2^-55 for eps_max == 0)
    randomness: bool
    fixed: dict[str, float]
    require_self_testing: bool


def _setup(min_key_rate, max_epsilon, perfect_randomness, fixed, require_self_testing) -> _Setup:
    min_key_rate, eps_max = _epsilon_bound(min_key_rate, max_epsilon)
    randomness = _check_bool(perfect_randomness, "perfect_randomness")
    require = _check_bool(require_self_testing, "require_self_testing")
    fixed = _check_fixed(fixed)
    eps_eff = None
    if eps_max is not None:
        # key -> 1: with (4) required, the largest epsilon whose key rate rounds to 1; without,
        # |E| = 1 exactly (the key sum pinned at +-pi/2)
        eps_eff = eps_max if eps_max > 0 else (_EPS_KEY_ONE if require else 0.0)
    cases, reasons = _cases(fixed, eps_max is not None, randomness, require)
    if not cases:
        raise ValueError(
            f"impossible constraints: with fixed={fixed}, perfect_randomness={randomness} "
            f"and the key constraint {'on' if eps_max is not None else 'off'}: "
            f"{'; '.join(sorted(reasons))}. Free an angle or drop a constraint."
        )
    return _Setup(cases, eps_max, eps_eff, randomness, fixed, require)


def _key_half_width(eps: float, require: bool) -> float:
    """The interval half-width with the slack that keeps the re-check strictly inside."""
    if eps >= 1.0:
        return math.pi / 2
    a = epsilon_interval_half_width(eps)
    if a == 0.0:
        return 0.0
    a_eff = a * (1.0 - 1e-9) - _ANGLE_SLACK
    if a_eff <= 0.0 and require:
        raise ValueError(
            f"max_epsilon={eps!r} is below what float64 angles resolve at a self-testing tuple "
            "(about 1e-28 bits); use a larger bound or 0 for the key -> 1 limit"
        )
    return max(a_eff, 0.0)


def _run_max(setup: _Setup, eps_list, *, seed, restarts, steps, newton_steps, devices, bounds=None):
    """Solve every (epsilon, case, expression, restart) problem; return per-epsilon summaries.

    ``eps_list`` sets the key interval of each problem (None: no key constraint); ``bounds``
    the epsilon bound the re-checked tuples must meet (default: ``eps_list``); ``devices`` the
    devices the blocks are split over.
    """
    cases = setup.cases
    bounds = list(eps_list) if bounds is None else list(bounds)
    # a key sum pinned at +-pi/2 (epsilon 0) still rounds: h at the float nearest pi/2 ~ 1e-31
    bounds = [_EPS_KEY_ONE if b == 0.0 else b for b in bounds]
    a = np.array(
        [0.0 if e is None else _key_half_width(e, setup.require_self_testing) for e in eps_list]
    )
    restarts = _fill_restarts(len(eps_list) * len(cases) * len(_CHSH_WEIGHTS), restarts)
    probs, (ia, ic, iw, ir), n = _stack_problems(cases, a, _CHSH_WEIGHTS, restarts)
    cands = _candidates(seed, ia.size)
    stages = max(1, newton_steps // 6)
    mus = np.repeat(np.geomspace(_MU_START, _MU_END, stages), 6)
    _log_run("max_chsh", n, devices)
    out = _blocked(
        _solve_max, probs, cands, mus, np.bool_(setup.require_self_testing), adam_steps=steps,
        devices=devices,
    )  # fmt: skip
    out["angles"] = wrap_angles(out["angles"])  # reported, and re-checked, in [0, 2 pi)
    with x64_scope():
        chk = _recheck(out["angles"][:n])
    summaries = []
    for j, bound in enumerate(bounds):
        sel = ia[:n] == j
        if bound is not None:  # a key sum fixed by other constraints must meet the bound itself
            case_ok = np.array(
                [c.key_const is None or _sum_epsilon(c.key_const) <= bound for c in cases]
            )
            sel &= case_ok[ic[:n]]
        feas = sel & _feasible(
            chk,
            eps_max=bound,
            randomness=setup.randomness,
            require_self_testing=setup.require_self_testing,
            fixed=setup.fixed,
        )
        summaries.append(_summarise(out, chk, feas, n, ic, iw, cases))
    return summaries


def _sum_epsilon(s: float) -> float:
    """h((1 + sin s)/2) in bits, as entropy.h_of_sin computes it."""
    return _binary_entropy_np(math.cos(s) ** 2 / (2.0 * (1.0 + abs(math.sin(s)))))


def _summarise(out, chk, feas, n, ic, iw, cases):
    """The best feasible restart and the evidence around it."""
    if not np.any(feas):
        return None
    values = np.where(feas, chk["max_chsh"], -np.inf)
    # the first restart within rounding of the largest value: equal suprema reached at
    # different symmetric images (e.g. E01 = 0 or E10 = 0) are not told apart by their last
    # bits, which depend on how the angles were reduced
    peak = float(np.max(values))
    best = int(np.flatnonzero(values >= peak - 16 * np.finfo(np.float64).eps * abs(peak))[0])
    top = values[best]
    return {
        "index": best,
        "angles": out["angles"][best],
        "z": out["z"][best],
        "case": int(ic[best]),
        "expression": int(iw[best]),
        "value": float(top),
        "grad_norm": float(out["grad_norm"][best]),
        "force": float(out["force"][best]),
        "at_best": int(np.sum(values >= top - 1e-9)),
        "check": {k: float(v[best]) for k, v in chk.items()},
        "feasible_count": int(np.sum(feas)),
    }


def _result(
    summary,
    setup: _Setup,
    *,
    search,
    supremum,
    attained,
    converged,
    note,
    chsh_target,
    min_key_rate,
    seed,
    restarts,
    steps,
    devices,
    elapsed,
) -> SearchResult:
    nan = float("nan")
    if summary is None:
        vals = dict(
            theta=nan,
            phi=nan,
            omega=nan,
            max_chsh=nan,
            key_rate=nan,
            epsilon=nan,
            global_rate=nan,
            self_testing=False,
            self_testing_margin=nan,
        )
        at_best = 0
    else:
        t, p, w = (float(x) for x in summary["angles"])
        chk = summary["check"]
        st = chk["margin"] > boundary_tolerance(np.float64)
        if st:
            key, eps, glob = chk["key_rate"], chk["epsilon"], chk["global_rate"]
        else:  # the limit correlators (require_self_testing=False): the strategy's rates
            eps, glob = chk["strategy_epsilon"], chk["strategy_global_rate"]
            key = 1.0 - eps
        vals = dict(
            theta=t,
            phi=p,
            omega=w,
            max_chsh=chk["max_chsh"],
            key_rate=key,
            epsilon=eps,
            global_rate=glob,
            self_testing=bool(st),
            self_testing_margin=chk["margin"],
        )
        at_best = summary["at_best"]
    return SearchResult(
        **vals,
        converged=bool(converged),
        supremum=float(supremum),
        supremum_attained=bool(attained),
        chsh_target=float(chsh_target),
        note=note,
        search=search,
        min_key_rate=min_key_rate,
        max_epsilon=setup.eps_max,
        perfect_randomness=setup.randomness,
        fixed=tuple(sorted(setup.fixed.items(), key=lambda kv: ANGLES.index(kv[0]))),
        require_self_testing=setup.require_self_testing,
        seed=int(seed),
        restarts=int(restarts),
        steps=int(steps),
        restarts_at_best=int(at_best),
        elapsed_seconds=float(elapsed),
        devices=tuple(str(d) for d in devices),
    )


def _maximise(setup: _Setup, *, seed, restarts, steps, newton_steps, devices):
    """(summary, supremum, attained, converged, note) for one constraint set."""
    key_one = setup.eps_max == 0.0 and setup.require_self_testing
    (summary,) = _run_max(
        setup, [setup.eps_eff], seed=seed, restarts=restarts, steps=steps,
        newton_steps=newton_steps, devices=devices,
    )  # fmt: skip
    if summary is None:
        return (
            None,
            float("nan"),
            False,
            False,
            (
                "no tuple meeting the constraints was found: none of the restarts reached a "
                "self-testing tuple that satisfies them"
            ),
        )
    value = summary["value"]
    ok_kkt = summary["grad_norm"] <= _GRAD_TOL * (1.0 + abs(value))
    attained = summary["force"] <= _FORCE_TOL or not setup.require_self_testing
    supremum = value
    notes = []
    if key_one:
        # the supremum as key_rate -> 1: the closure (the key sum at +-pi/2, (4) not required)
        closure = dataclasses.replace(setup, eps_eff=0.0, require_self_testing=False)
        (lim,) = _run_max(
            closure, [0.0], seed=seed, restarts=restarts, steps=steps, newton_steps=newton_steps,
            devices=devices,
        )  # fmt: skip
        supremum = lim["value"] if lim is not None else float("nan")
        attained = False
        notes.append(
            "key rate 1 is reached only in the limit where condition (4) fails (some "
            "|E_xy| -> 1, Props. 3, 5); supremum is that limit (the maximum over the "
            "correlators of eq. (6) with |E_xy| = 1), and the tuple returned is self-testing "
            f"with epsilon = {summary['check']['epsilon']:.2g} bits (its key_rate rounds to 1 "
            f"in float64), max_chsh - supremum = {value - supremum:.1e}"
        )
    elif not attained:
        notes.append(
            "the supremum is approached only as condition (4) degenerates (the self-testing "
            "margin -> 0) and is not attained; the tuple returned is the best self-testing one "
            "found, within ~1e-10 of it"
        )
    else:
        notes.append("the supremum is attained at the tuple returned")
    if not setup.require_self_testing:
        notes.append(
            "condition (4) was not required: rates are those of the correlators of eq. (6), "
            "certified by all four correlators (Props. 4, 6), not by one Bell expression"
        )
    converged = ok_kkt and abs(value - supremum) <= 1e-4
    if not converged:
        attained = False  # unknown: the best value found is only a lower bound
        failed = (
            "NOT CONVERGED: the best restart misses the optimality conditions (gradient norm "
            f"{summary['grad_norm']:.1e}), so max_chsh is only a lower bound on the supremum "
            "and whether it is attained is unknown; try more restarts or steps or another seed"
        )
        notes = [failed] + (notes if key_one else notes[1:])
    return summary, supremum, attained, converged, "; ".join(notes)


@functools.lru_cache(maxsize=128)
def _maximise_cached(min_key_rate, max_epsilon, randomness, fixed_items, require, seed, restarts,
                     steps, devices):  # fmt: skip
    setup = _setup(min_key_rate, max_epsilon, randomness, dict(fixed_items), require)
    return setup, _maximise(
        setup, seed=seed, restarts=restarts, steps=steps, newton_steps=60, devices=devices
    )


def _fixed_items(fixed) -> tuple:
    return tuple(sorted(_check_fixed(fixed).items()))


def max_chsh(
    *,
    min_key_rate: float | None = None,
    perfect_randomness: bool = False,
    fixed: Mapping[str, float] | None = None,
    seed: int = 0,
    max_epsilon: float | None = None,
    require_self_testing: bool = True,
    restarts: int = 8,
    steps: int = 200,
    devices: int | Sequence[jax.Device] | None = None,
) -> SearchResult:
    r"""Supremum of ``max_chsh`` over self-testing tuples whose rates meet the constraints.

    Maximises the largest CHSH-type value of the strategy of eq. (6) over tuples
    (theta, phi, omega) with condition (4) strictly true, such that at the quantum bound

    * ``key_rate >= min_key_rate`` (equivalently ``epsilon <= max_epsilon``),
    * ``global_rate == 2`` exactly if ``perfect_randomness`` (some correlator is 0),
    * the angles in ``fixed`` take the given values exactly.

    Parameters
    ----------
    min_key_rate : float, optional
        Bits per round, in (0, 1]. 1 means the limit key_rate -> 1 (Props. 3, 5): it is
        reached only where (4) fails, so the tuple returned has epsilon ~1e-17 (its key rate
        rounds to 1 in float64) and ``supremum`` is the limit.
    perfect_randomness : bool
        Require ``global_rate == 2`` (maximal global randomness, Props. 2, 5).
    fixed : mapping, optional
        Angles held fixed, e.g. ``{"omega": np.pi}`` (the plane of Fig. 1), radians.
    seed : int
        Seed of the random restarts; results are reproducible.
    max_epsilon : float, optional
        The key constraint as ``epsilon <= max_epsilon`` bits, in [0, 1): the same as
        ``min_key_rate = 1 - max_epsilon`` with relative precision for tiny epsilon. Give one
        of the two.
    require_self_testing : bool
        True (default): condition (4) must hold. False: maximise over all tuples, e.g. the
        limit ``phi = pi/2`` of Props. 4 and 6 (rates then refer to the four correlators).
    restarts : int
        Random restarts per (case, CHSH-type expression), at least; all run at once (vmapped,
        in blocks of 128 problems) and a block's spare slots get extra restarts.
    steps : int
        Adam steps per restart before the Newton continuation (60 steps).
    devices : None, int or sequence of jax.Device
        Devices the problems are split over, in fixed blocks per device and call (128
        problems on a CPU, 1024 on an accelerator; see :func:`jaxbell.sharding.select_devices`;
        default: all devices of this process, e.g. every GPU). The result is the same, bit for
        bit, on 1 and N devices.

    Returns
    -------
    SearchResult
        The best tuple found, re-checked with the closed forms, with ``supremum``,
        ``supremum_attained`` and ``converged``. When no restart meets the constraints the
        angles are NaN and ``converged`` is False.

    Raises
    ------
    ValueError
        ``min_key_rate`` outside (0, 1], NaN, both key arguments, unknown ``fixed`` names,
        constraints that no tuple can meet.

    Notes
    -----
    The supremum over self-testing tuples is the maximum over the closure of that set; where
    it lies on the boundary of (4) it is not attained, and the best self-testing tuple is
    returned (within ~1e-10 of it; ``supremum_attained=False``). Multi-start local optimisation
    finds the global maximum with high probability, not with certainty: ``restarts_at_best``
    counts the restarts that agree on the best value. Precision: the value is re-checked in
    float64 with the closed forms, ~1e-15; the supremum to ~1e-10.

    Examples
    --------
    >>> import numpy as np, jaxbell as jb
    >>> r = jb.max_chsh(perfect_randomness=True)  # Prop. 2: 3 sqrt(3)/2
    >>> abs(r.max_chsh - 3 * np.sqrt(3) / 2) < 1e-9 and r.supremum_attained
    True

    References
    ----------
    Props. 2, 3 and 5 (suprema 3 sqrt(3)/2, 5/2, 1 + sqrt(2)) and eqs. (1)-(6) of
    Wooltorton, Brown & Colbeck, PRL 132, 210802 (2024).
    """
    t0 = time.perf_counter()
    seed = _check_int(seed, "seed", 0)
    restarts = _check_int(restarts, "restarts", 1)
    steps = _check_int(steps, "steps", 0)
    _epsilon_bound(min_key_rate, max_epsilon)  # argument errors before any work
    devs = select_devices(devices)
    setup, (summary, supremum, attained, converged, note) = _maximise_cached.__wrapped__(
        min_key_rate, max_epsilon, _check_bool(perfect_randomness, "perfect_randomness"),
        _fixed_items(fixed), _check_bool(require_self_testing, "require_self_testing"), seed,
        restarts, steps, devs,
    )  # fmt: skip
    if summary is None and not any(c.free.any() for c in setup.cases):
        raise ValueError(
            f"impossible constraints: the tuple fixed={dict(setup.fixed)} has no free angle "
            "and is not self-testing or misses the rate constraints (check "
            "jaxbell.is_self_testing and the rates at it)"
        )
    return _result(
        summary, setup, search="max_chsh", supremum=supremum, attained=attained,
        converged=converged, note=note, chsh_target=float("nan"),
        min_key_rate=None if min_key_rate is None else float(min_key_rate), seed=seed,
        restarts=restarts, steps=steps, devices=devs, elapsed=time.perf_counter() - t0,
    )  # fmt: skip


def _level_problems(setup: _Setup, summary, *, seed: int, restarts: int):
    """Level-set problems: ``restarts`` random starts per case, plus perturbations of the
    maximiser in its case (which reach the level set near a supremum)."""
    eps = setup.eps_eff
    a = np.array([0.0 if eps is None else _key_half_width(eps, setup.require_self_testing)])
    restarts = _fill_restarts(len(setup.cases), restarts)
    probs, (ia, ic, iw, ir), n = _stack_problems(setup.cases, a, _CHSH_WEIGHTS[:1], restarts)
    cands = _candidates(seed + 1, ia.size)
    near = np.flatnonzero((ic[:n] == summary["case"]) & (ir[:n] < max(1, restarts // 2)))
    rng = np.random.default_rng(seed + 2)
    scales = np.geomspace(1e-6, 0.3, near.size) if near.size > 1 else np.array([1e-3])
    for j, scale in zip(near, scales, strict=True):
        cands[j, :, :] = summary["z"] + scale * rng.standard_normal(4)
    return probs, cands, n


def find_tuple(
    chsh: float,
    *,
    min_key_rate: float | None = None,
    perfect_randomness: bool = False,
    seed: int = 0,
    max_epsilon: float | None = None,
    fixed: Mapping[str, float] | None = None,
    restarts: int = 16,
    steps: int = 300,
    devices: int | Sequence[jax.Device] | None = None,
) -> SearchResult:
    r"""A self-testing tuple with ``max_chsh`` equal to ``chsh`` whose rates meet the constraints.

    The propositions of the paper made constructive: e.g. ``find_tuple(2.0001,
    min_key_rate=0.9999)`` returns a tuple satisfying condition (4) whose strategy (eq. 6)
    has max_chsh = 2.0001 and key rate >= 0.9999 at the quantum bound (Prop. 3).

    Parameters
    ----------
    chsh : float
        Target max_chsh, in (2, 2 sqrt 2]; it must not exceed the supremum under the
        constraints (:func:`max_chsh`).
    min_key_rate : float, optional
        Bits per round, in (0, 1]; 1 means the limit key_rate -> 1 (see :func:`max_chsh`).
    perfect_randomness : bool
        Require ``global_rate == 2`` exactly (some correlator 0).
    seed : int
        Seed of the random restarts.
    max_epsilon : float, optional
        The key constraint as ``epsilon <= max_epsilon`` bits (instead of ``min_key_rate``).
    fixed : mapping, optional
        Angles held fixed, radians, e.g. ``{"omega": np.pi}``.
    restarts : int
        Random starts per case of the level-set search (all vmapped), plus as many
        perturbations of the maximiser.
    steps : int
        Adam steps of the level-set search.
    devices : None, int or sequence of jax.Device
        Devices the problems are split over, in fixed blocks per device and call (128
        problems on a CPU, 1024 on an accelerator; see :func:`jaxbell.sharding.select_devices`;
        default: all devices of this process, e.g. every GPU). The result is the same, bit for
        bit, on 1 and N devices.

    Returns
    -------
    SearchResult
        With ``|max_chsh - chsh| <= 1e-9`` (re-checked with the closed forms; in practice
        ~1e-15), condition (4) strictly true and the constraints met. Among the solutions found,
        the one deepest inside the self-testing region (largest ``self_testing_margin``) is
        returned. If none is found, ``converged`` is False and the angles are NaN.

    Raises
    ------
    ValueError
        ``chsh`` outside (2, 2 sqrt 2] or above the supremum under the constraints (e.g.
        ``find_tuple(2.6, perfect_randomness=True)``: the supremum is 3 sqrt(3)/2), or at a
        supremum that is only approached in a limit; NaN; ``min_key_rate`` outside (0, 1];
        impossible constraints (also fixed angles on which condition (4) fails identically,
        e.g. ``theta = 0``); ``chsh - 2`` below about 3e-7, where the margin of condition (4)
        at tuples with max_chsh = chsh, about ``(chsh - 2)**2 / 4``, is under float64's
        rounding tolerance and no tuple can be certified self-testing.

    Notes
    -----
    Method: the supremum under the constraints is found first (:func:`max_chsh`, cached);
    then, for every case, restarts minimise ``(max_chsh - chsh)^2`` with optax Adam inside the
    self-testing region (a weak log barrier on the margin of (4)), and each end point is
    polished by a 1-D Newton root find of ``max_chsh(z + t d) = chsh`` along
    ``d = grad max_chsh``.

    References
    ----------
    Props. 2, 3 and 5 of Wooltorton, Brown & Colbeck, PRL 132, 210802 (2024).
    """
    t0 = time.perf_counter()
    target = _real(chsh, "chsh")
    if not 2.0 < target <= TSIRELSON + 1e-15:
        raise ValueError(
            f"chsh must lie in (2, 2*sqrt(2)] = (2, {TSIRELSON:.15g}]: self-testing tuples are "
            f"nonlocal (> 2) and quantum (<= Tsirelson's bound); got {chsh!r}"
        )
    seed = _check_int(seed, "seed", 0)
    restarts = _check_int(restarts, "restarts", 1)
    steps = _check_int(steps, "steps", 0)
    _epsilon_bound(min_key_rate, max_epsilon)
    devs = select_devices(devices)
    setup, (summary, supremum, attained, _, note) = _maximise_cached(
        min_key_rate, max_epsilon, _check_bool(perfect_randomness, "perfect_randomness"),
        _fixed_items(fixed), True, seed, 8, 200, devs,
    )  # fmt: skip
    if summary is None:
        raise ValueError(
            "impossible constraints: no self-testing tuple meeting them was found "
            f"(min_key_rate={min_key_rate}, max_epsilon={max_epsilon}, "
            f"perfect_randomness={perfect_randomness}, fixed={fixed})"
        )
    best = summary["check"]["max_chsh"]
    if target > best:
        if not attained and target <= supremum + 1e-12:
            raise ValueError(
                f"chsh={target!r} is not reached by a self-testing tuple meeting the "
                f"constraints: their supremum {supremum:.12g} is approached only in a limit "
                f"where condition (4) fails, and the best self-testing value is {best:.12g}"
            )
        raise ValueError(
            f"impossible request: chsh={target!r} exceeds the supremum of max_chsh over "
            f"self-testing tuples meeting the constraints, {supremum:.12g}"
        )
    kwargs = dict(
        search="find_tuple", supremum=supremum, attained=attained, chsh_target=target,
        min_key_rate=None if min_key_rate is None else float(min_key_rate), seed=seed,
        restarts=restarts, steps=steps, devices=devs,
    )  # fmt: skip
    if best - target <= 1e-12:  # the maximiser itself
        return _result(summary, setup, converged=True, elapsed=time.perf_counter() - t0,
                       note="the supremum's maximiser: " + note, **kwargs)  # fmt: skip
    probs, cands, n = _level_problems(setup, summary, seed=seed, restarts=restarts)
    mus = np.geomspace(1e-3, 1e-14, steps)
    _log_run("find_tuple", n, devs)
    out = _blocked(_solve_find, probs, cands, target, mus, adam_steps=steps, devices=devs)
    with x64_scope():
        angles = wrap_angles(np.concatenate([out["level"][:n], out["path"][:n]]))
        chk = _recheck(angles)
    feas = _feasible(
        chk, eps_max=setup.eps_eff, randomness=setup.randomness, require_self_testing=True,
        fixed=setup.fixed,
    )  # fmt: skip
    hit = feas & (np.abs(chk["max_chsh"] - target) <= 1e-9)
    tol = boundary_tolerance(np.float64)
    if not np.any(hit) and (target - 2.0) ** 2 / 4.0 <= 4.0 * tol:
        near = np.abs(chk["max_chsh"] - target) <= 1e-9
        margin = np.max(np.where(near, chk["margin"], -np.inf), initial=-np.inf)
        found = (
            f" (the tuples found at max_chsh = s have margins <= {margin:.1e})"
            if near.any()
            else ""
        )
        raise ValueError(
            f"chsh={target!r}: s - 2 = {target - 2.0:.1e} is below what float64 can certify as "
            "self-testing: the margin of condition (4) at tuples with max_chsh = s is about "
            f"(s - 2)^2 / 4 = {(target - 2.0) ** 2 / 4.0:.1e} (measured for s - 2 from 1e-4 to "
            f"3e-7), not above the rounding tolerance {tol:.1e} within which (4) cannot be "
            f"told from failing{found}. Targets with s - 2 >= 3e-7 are reached (checked "
            "down to s - 2 = 1e-6 under tight key constraints and perfect randomness)"
        )
    if not np.any(hit):
        return _result(
            None, setup, converged=False, elapsed=time.perf_counter() - t0,
            note=f"no restart reached max_chsh = {target!r} within 1e-9 inside the region; "
            "try more restarts or another seed", **kwargs,
        )  # fmt: skip
    k = int(np.argmax(np.where(hit, chk["margin"], -np.inf)))
    found = {
        "angles": angles[k],
        "check": {name: float(v[k]) for name, v in chk.items()},
        "at_best": int(np.sum(hit)),
    }
    return _result(
        found, setup, converged=True, elapsed=time.perf_counter() - t0,
        note=f"{int(np.sum(hit))} of {2 * n} level-set and path searches reached the target; "
        "the tuple deepest inside the self-testing region is returned",
        **kwargs,
    )  # fmt: skip


def tradeoff_curve(
    max_epsilon: Any,
    *,
    seed: int = 0,
    restarts: int = 8,
    steps: int = 200,
    devices: int | Sequence[jax.Device] | None = None,
):
    r"""Supremum of max_chsh over self-testing tuples with ``epsilon <= max_epsilon``, as a curve.

    The trade-off between nonlocality and key that the paper bounds (Props. 3, 5): for each
    epsilon bound, with and without perfect randomness, the supremum of max_chsh over tuples
    satisfying (4) with key_rate >= 1 - epsilon at the quantum bound, and the tuple reaching it.
    All bounds and restarts are solved in one vmapped computation per randomness setting.

    Parameters
    ----------
    max_epsilon : array_like
        1-D, increasing, in (0, 1) bits (e.g. ``np.geomspace(1e-6, h(1/4), 25)``).
    seed, restarts, steps : int
        As in :func:`max_chsh`.
    devices : None, int or sequence of jax.Device
        Devices the problems are split over, in fixed blocks per device and call (128
        problems on a CPU, 1024 on an accelerator; see :func:`jaxbell.sharding.select_devices`;
        default: all devices of this process, e.g. every GPU). The result is the same, bit for
        bit, on 1 and N devices.

    Returns
    -------
    xarray.Dataset
        Dims ``perfect_randomness`` ([False, True]) and ``max_epsilon``; variables max_chsh,
        theta, phi, omega, key_rate, epsilon, global_rate, self_testing_margin,
        supremum_attained, converged, restarts_at_best; labelled (dataset.py).

    References
    ----------
    Props. 3 and 5 of Wooltorton, Brown & Colbeck, PRL 132, 210802 (2024).
    """
    t0 = time.perf_counter()
    eps = np.atleast_1d(np.asarray(max_epsilon, dtype=float))
    if eps.ndim != 1 or eps.size == 0:
        raise ValueError(f"max_epsilon must be a non-empty 1-D array; got shape {eps.shape}")
    if not np.all(np.isfinite(eps)) or np.any(eps <= 0) or np.any(eps >= 1):
        raise ValueError("max_epsilon must be finite bits in (0, 1); got " + np.array2string(eps))
    if eps.size > 1 and not np.all(np.diff(eps) > 0):
        raise ValueError("max_epsilon must be strictly increasing")
    seed = _check_int(seed, "seed", 0)
    restarts = _check_int(restarts, "restarts", 1)
    steps = _check_int(steps, "steps", 0)
    devs = select_devices(devices)
    names = ("max_chsh", "theta", "phi", "omega", "key_rate", "epsilon", "global_rate",
             "self_testing_margin", "supremum_attained", "converged",
             "restarts_at_best")  # fmt: skip
    fields = {k: np.full((2, eps.size), np.nan) for k in names}
    for i, randomness in enumerate((False, True)):
        setup = _setup(None, float(eps[0]), randomness, None, True)
        sums = _run_max(setup, [float(e) for e in eps], seed=seed, restarts=restarts, steps=steps,
                        newton_steps=60, devices=devs)  # fmt: skip
        for j, s in enumerate(sums):
            if s is None:
                fields["converged"][i, j] = 0
                fields["supremum_attained"][i, j] = 0
                fields["restarts_at_best"][i, j] = 0
                continue
            chk = s["check"]
            fields["max_chsh"][i, j] = chk["max_chsh"]
            fields["theta"][i, j], fields["phi"][i, j], fields["omega"][i, j] = s["angles"]
            for k in ("key_rate", "epsilon", "global_rate"):
                fields[k][i, j] = chk[k]
            fields["self_testing_margin"][i, j] = chk["margin"]
            fields["supremum_attained"][i, j] = s["force"] <= _FORCE_TOL
            fields["converged"][i, j] = s["grad_norm"] <= _GRAD_TOL * (1 + abs(s["value"]))
            fields["restarts_at_best"][i, j] = s["at_best"]
    for k in ("supremum_attained", "converged"):
        fields[k] = fields[k].astype(bool)
    fields["restarts_at_best"] = fields["restarts_at_best"].astype(np.int32)
    settings = {"seed": seed, "restarts": restarts, "steps": steps, "dtype": "float64",
                "devices": [str(d) for d in devs], "device_count": len(devs),
                "elapsed_seconds": round(time.perf_counter() - t0, 3)}  # fmt: skip
    return tradeoff_dataset(eps, fields, settings=settings)
