"""The explicit attack (an upper bound on the DI entropy) under correlator or full constraints.

:mod:`jaxbell.qubit` bounds H(A|X=x, E) given one Bell value. Protocols that test more --
the four correlators E[x, y] (``constraint="correlators"``) or the whole behaviour
p(ab|xy), marginals included (``constraint="full"``, e.g. a lossy device whose no-clicks are
binned to outcome 0, so the marginals are not uniform) -- need the same attack with a vector
of constraints. Bob's key-only input, if any, is not constrained (it only enters error
correction), so Jordan's lemma still applies: every strategy is a mixture, known to Eve, of
two-qubit strategies with projective measurements (deterministic points included). The DI
infimum of H(A'|X=x, E) at target statistics t is therefore

    min { sum_j w_j H_j : w >= 0, sum_j w_j = 1, sum_j w_j s_j = t },

over all two-qubit strategies j, with H_j their entropy and s_j their statistics.

One strategy (20 real numbers): a real state rho = M M^T / tr(M M^T) (M real 4 x 4; real
states suffice because the constraints and the objective are real: rho and its complex
conjugate give the same statistics and entropies, and the purification of their even mixture
tells Eve at least as much as the flag) and angles A_x = cos(alpha_x) Z + sin(alpha_x) X,
B_y = cos(beta_y) Z + sin(beta_y) X (local unitaries put both observables of a party in the
X-Z plane). No outcome-flip symmetry is imposed: with ``"full"`` the marginals are
constrained and may be non-uniform. Statistics: ``"correlators"``, s = (E00, E01, E10, E11);
``"full"``, s = (<A_0>, <A_1>, <B_0>, <B_1>, E00, E01, E10, E11), which fix p(ab|xy) =
(1 + (-1)^a <A_x> + (-1)^b <B_y> + (-1)^(a+b) E_xy) / 4 of a no-signalling behaviour.

Entropy with noisy preprocessing (Alice flips her key bit with probability p; Ho et al. 2020):
with Eve holding the purification |psi>_ABE of rho, Eve's unnormalised state given A' = a' is
tr_AB[(Q_a' (x) 1_E) |psi><psi|], Q_a' = (1 - p) P_a' + p P_(1-a') (P_a = Alice's projector
of A_x, (x) 1_B). It equals tr_AB of (Q_a'^(1/2) (x) 1)|psi><psi|(Q_a'^(1/2) (x) 1), a pure
state, whose E-marginal has the spectrum of its AB-marginal Q_a'^(1/2) rho Q_a'^(1/2). Hence

    H(A'|X=x, E) = H(A'E) - S(E) = sum_a' S(Q_a'^(1/2) rho Q_a'^(1/2)) - S(rho),

with S(sigma) = -tr sigma log2 sigma on unnormalised sigma; p = 0 gives the familiar
S(Delta_{A_x}(rho)) - S(rho). (tests/test_attack.py checks it against an explicit
three-register purification.) The 4 x 4 spectra come from ``eigvalsh`` through
:func:`jaxbell.entropy._von_neumann`, whose derivative stays finite at zero and degenerate
eigenvalues; gradients only steer the search, the values reported are exact entropies of
explicit strategies.

Method: column generation. A dictionary of columns (H_j, s_j) starts with the 16
deterministic strategies (H = h(p): Eve knows A, not the flip). Phase I minimises the L1
residual |sum_j w_j s_j - t| by linear programming (HiGHS) and prices new columns with its
duals (a Bell expression lambda: maximise lambda . s over qubit strategies) until the target
is reproduced; phase II minimises sum_j w_j H_j, whose equality duals (lambda_0, lambda) price
columns by H - lambda . s. Pricing is multi-start Adam (optax), vmapped and jitted in fixed
blocks (:func:`jaxbell.sharding.map_blocks`), from random starts and from the strategies of the
current mixture; every strategy found joins the dictionary. It stops when no strategy found
improves on lambda_0 by more than ``tol``.

The LP value is an **upper bound on the DI infimum**: an explicit mixture of qubit strategies
reproducing the target statistics (the reproduced statistics and residual are reported). It is
tight when pricing is global. ``lower_estimate = G(lambda) + lambda . t``, with G(lambda) the
least value of H - lambda . s found, would be a lower bound on the infimum if that minimum were
global (gradient descent is not a proof; it is an estimate). Targets that phase I cannot reach
-- outside the quantum set, e.g. beyond Tsirelson's bound -- give NaN with status
``"infeasible"``, never 0.

References
----------
C. Jordan, Bull. Soc. Math. France 3, 103 (1875).
S. Pironio, A. Acin, N. Brunner, N. Gisin, S. Massar and V. Scarani, New J. Phys. 11, 045021
(2009) (the qubit reduction, and the CHSH bound the tests reproduce).
M. Ho, P. Sekatski, E. Y.-Z. Tan, R. Renner, J.-D. Bancal and N. Sangouard, Phys. Rev. Lett.
124, 230502 (2020) (noisy preprocessing and its CHSH bound).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import scipy.optimize
from jax.typing import ArrayLike

from jaxbell._checks import as_real_array, options_from_mapping
from jaxbell._precision import x64_scope
from jaxbell.entropy import _von_neumann
from jaxbell.sharding import map_blocks, select_devices

__all__ = [
    "CONSTRAINTS",
    "NUM_PARAMS",
    "STATUSES",
    "AttackOptions",
    "AttackResult",
    "attack_entropy",
    "attack_strategy",
    "attack_strategy_terms",
]

CONSTRAINTS = ("correlators", "full")
#: real parameters of one strategy: M (4 x 4, row-major), alpha_0, alpha_1, beta_0, beta_1
NUM_PARAMS = 20
#: "converged": gap <= tol; "not_converged": an explicit attack reproducing the target (a valid
#: upper bound) but gap > tol after ``rounds``; "infeasible": no quantum strategy found that
#: moves the mixture closer to the target (outside the quantum set, as far as pricing finds):
#: NaN; "unreached": the target was not reproduced within ``rounds``: NaN
STATUSES = ("converged", "not_converged", "infeasible", "unreached")

_LN2 = math.log(2.0)
_PAULI = np.array([np.eye(2), [[1.0, 0.0], [0.0, -1.0]], [[0.0, 1.0], [1.0, 0.0]]])  # 1, Z, X
#: starts per jitted call and device (one block shape: one compilation per constraint)
_BLOCK = 64


# --- one strategy: pure functions of 20 real parameters ----------------------------------------


def _state(params):
    m = params[:16].reshape(4, 4)
    g = m @ m.T
    return g * (1.0 / jnp.trace(g))


def _observable(angle):
    c, s = jnp.cos(angle), jnp.sin(angle)
    return jnp.array([[c, s], [s, -c]])


def _moments(params):
    """(<A_x> (2), <B_y> (2), E[x, y] (2, 2)) of one strategy."""
    rho = _state(params).reshape(2, 2, 2, 2)  # [a, b, a', b']
    pauli = jnp.asarray(_PAULI, params.dtype)
    t = jnp.einsum("abcd,ica,jdb->ij", rho, pauli, pauli)  # tr(rho sigma_i (x) sigma_j)
    ua = jnp.stack([jnp.cos(params[16:18]), jnp.sin(params[16:18])], -1)
    ub = jnp.stack([jnp.cos(params[18:20]), jnp.sin(params[18:20])], -1)
    return ua @ t[1:, 0], ub @ t[0, 1:], ua @ t[1:, 1:] @ ub.T


def _statistics(params, full):
    a, b, e = _moments(params)
    if full:
        return jnp.concatenate([a, b, e.reshape(4)])
    return e.reshape(4)


def _entropy(params, x, p):
    """H(A'|X=x, E) in bits: sum_a' S(Q_a'^(1/2) rho Q_a'^(1/2)) - S(rho). ``x``, ``p`` traced."""
    rho = _state(params)
    alpha = params[16:18]
    obs = _observable(alpha[x])
    eye = jnp.eye(2, dtype=params.dtype)
    proj = [(eye + obs) / 2, (eye - obs) / 2]  # outcome 0: eigenvalue +1
    root = [jnp.sqrt(1.0 - p), jnp.sqrt(p)]
    total = -_von_neumann(rho)
    for a in range(2):
        q = jnp.kron(root[0] * proj[a] + root[1] * proj[1 - a], eye)
        total = total + _von_neumann(q @ rho @ q.T)
    return total


@functools.partial(jax.jit, static_argnames="full")
def _evaluate(params, x, p, *, full):
    return jax.vmap(lambda q: (_entropy(q, x, p), _statistics(q, full)))(params)


def _check_x_p(x, preprocessing):
    if isinstance(x, bool) or not isinstance(x, (int, np.integer)) or x not in (0, 1):
        raise ValueError(f"x must be 0 or 1 (Alice's key input), got {x!r}")
    if isinstance(preprocessing, (bool, str, bytes)) or preprocessing is None:
        raise TypeError(f"preprocessing must be a number in [0, 1/2], got {preprocessing!r}")
    try:
        p = float(preprocessing)
    except (TypeError, ValueError):
        raise TypeError(
            f"preprocessing must be a number in [0, 1/2], got {preprocessing!r}"
        ) from None
    if not (0.0 <= p <= 0.5):
        raise ValueError(
            f"preprocessing must lie in [0, 1/2] (the probability that Alice flips her key "
            f"bit), got {preprocessing!r}"
        )
    return int(x), p


def _as_params(params) -> np.ndarray:
    arr = as_real_array(params, "params")
    if arr.shape[-1:] != (NUM_PARAMS,):
        raise ValueError(
            f"params must end in an axis of length {NUM_PARAMS} (M row-major 4 x 4, alpha_0, "
            f"alpha_1, beta_0, beta_1); got shape {arr.shape}"
        )
    return arr


def attack_strategy(params: ArrayLike):
    """The state and measurement angles of a parametrised strategy of the attack.

    Parameters
    ----------
    params : array_like
        Shape (..., 20): M (real 4 x 4, row-major), alpha_0, alpha_1, beta_0, beta_1.

    Returns
    -------
    rho : numpy.ndarray
        Shape (..., 4, 4): the real density matrix M M^T / tr(M M^T) in the basis |ab>
        (row index 2a + b).
    alpha, beta : numpy.ndarray
        Shape (..., 2): angles in the X-Z plane, radians, A_x = cos(alpha_x) Z + sin(alpha_x) X,
        B_y = cos(beta_y) Z + sin(beta_y) X.
    """
    arr = _as_params(params)
    m = arr[..., :16].reshape(arr.shape[:-1] + (4, 4))
    g = m @ np.swapaxes(m, -1, -2)
    rho = g / np.trace(g, axis1=-2, axis2=-1)[..., None, None]
    return rho, arr[..., 16:18], arr[..., 18:20]


def attack_strategy_terms(params: ArrayLike, *, x: int = 0, preprocessing: float = 0.0):
    """Entropy and statistics of parametrised strategies (see :func:`attack_strategy`).

    Parameters
    ----------
    params : array_like
        Shape (..., 20).
    x : {0, 1}
        Alice's key input.
    preprocessing : float
        p in [0, 1/2]: the probability that Alice flips her key bit.

    Returns
    -------
    entropy : numpy.ndarray
        H(A'|X=x, E), bits, shape (...), Eve holding a purification of rho.
    alice_marginals, bob_marginals : numpy.ndarray
        <A_x> and <B_y>, shape (..., 2).
    correlators : numpy.ndarray
        E[x, y] = tr[rho A_x (x) B_y], shape (..., 2, 2).
    """
    x, p = _check_x_p(x, preprocessing)
    arr = _as_params(params)
    shape = arr.shape[:-1]
    with x64_scope():
        h, s = _evaluate(jnp.asarray(arr.reshape(-1, NUM_PARAMS)), x, p, full=True)
    h, s = np.asarray(h).reshape(shape), np.asarray(s).reshape(shape + (8,))
    return h, s[..., 0:2], s[..., 2:4], s[..., 4:8].reshape(shape + (2, 2))


def _deterministic_params() -> np.ndarray:
    """The 16 deterministic strategies: |00> measured with A_x = +-Z, B_y = +-Z."""
    m = np.zeros(16)
    m[0] = 1.0
    out = []
    for signs in np.ndindex(2, 2, 2, 2):
        out.append(np.concatenate([m, np.pi * np.array(signs, dtype=np.float64)]))
    return np.stack(out)


# --- options and statistics ---------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class AttackOptions:
    """Settings of the column-generation attack (pass as ``options={...}``).

    Attributes
    ----------
    starts : int
        Random starts per pricing round (default 48); each round also starts from every
        strategy of the current mixture (slightly perturbed).
    steps : int
        Adam steps per start (default 300), cosine-decaying learning rate.
    rounds : int
        Most pricing rounds, both phases together (default 40).
    learning_rate : float
        Initial Adam learning rate (default 0.05).
    tol : float
        Bits (default 1e-5): stop when no strategy found improves the LP by more than this
        (the gap between the attack and the lower estimate).
    feasibility_tol : float
        Phase I ends once the L1 residual of the LP is below this (default 1e-9); the mixture
        is then re-solved exactly on its support.
    """

    starts: int = 48
    steps: int = 300
    rounds: int = 40
    learning_rate: float = 0.05
    tol: float = 1e-5
    feasibility_tol: float = 1e-9

    def __post_init__(self):
        for name, low in (("starts", 1), ("steps", 1), ("rounds", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise TypeError(f"options[{name!r}] must be an integer, got {value!r}")
            if value < low:
                raise ValueError(f"options[{name!r}] must be >= {low}, got {value}")
        for name in ("learning_rate", "tol", "feasibility_tol"):
            value = getattr(self, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float, np.floating))
                or not (math.isfinite(value) and value > 0)
            ):
                raise ValueError(f"options[{name!r}] must be a positive number, got {value!r}")

    @classmethod
    def from_mapping(cls, options: Mapping[str, Any] | AttackOptions | None) -> AttackOptions:
        """Build from a dict (unknown keys raise a TypeError listing the valid ones)."""
        return options_from_mapping(cls, options, "attack")


#: tolerance of the normalisation and no-signalling checks of a behaviour
_BEHAVIOUR_TOL = 1e-9


def _target(statistics, constraint: str) -> np.ndarray:
    """The statistics vector s of the constraint, from correlators or a behaviour (checked)."""
    if constraint not in CONSTRAINTS:
        hint = (
            " (a single Bell value is handled by jaxbell.qubit / di_entropy)"
            if constraint == "bell"
            else ""
        )
        raise ValueError(f"constraint must be one of {CONSTRAINTS}, got {constraint!r}{hint}")
    arr = as_real_array(statistics, "statistics")
    if constraint == "correlators":
        if arr.shape != (2, 2):
            raise ValueError(
                "statistics must be the correlators E[x, y], shape (2, 2), for "
                f'constraint="correlators"; got shape {arr.shape}'
            )
        if np.any(np.abs(arr) > 1.0 + 1e-12):
            raise ValueError(
                "statistics (correlators) must lie in [-1, 1]; got values up to "
                f"{np.max(np.abs(arr)):.6g} in magnitude"
            )
        return np.clip(arr, -1.0, 1.0).reshape(4)
    if arr.shape != (2, 2, 2, 2):
        raise ValueError(
            "statistics must be a behaviour p[a, b, x, y], shape (2, 2, 2, 2), for "
            f'constraint="full"; got shape {arr.shape}'
        )
    tol = _BEHAVIOUR_TOL
    if np.min(arr) < -tol:
        idx = np.unravel_index(int(np.argmin(arr)), arr.shape)
        raise ValueError(
            f"statistics is not a behaviour: p[a, b, x, y] at {tuple(int(i) for i in idx)} is "
            f"{arr[idx]:.6g} < 0"
        )
    norm = arr.sum(axis=(0, 1))
    if np.max(np.abs(norm - 1.0)) > tol:
        x, y = np.unravel_index(int(np.argmax(np.abs(norm - 1.0))), norm.shape)
        raise ValueError(
            f"statistics is not normalised: sum_ab p[a, b, {x}, {y}] = {norm[x, y]:.12g} "
            f"(must be 1 within {tol:g})"
        )
    alice = arr.sum(axis=1)  # [a, x, y]
    bob = arr.sum(axis=0)  # [b, x, y]
    da = np.abs(alice[:, :, 0] - alice[:, :, 1])
    db = np.abs(bob[:, 0, :] - bob[:, 1, :])
    if np.max(da) > tol:
        a, x = np.unravel_index(int(np.argmax(da)), da.shape)
        raise ValueError(
            f"statistics signals from Bob to Alice: p(a={a}|x={x}) is {alice[a, x, 0]:.12g} "
            f"with y=0 and {alice[a, x, 1]:.12g} with y=1 (project measured data onto the "
            "no-signalling set first)"
        )
    if np.max(db) > tol:
        b, y = np.unravel_index(int(np.argmax(db)), db.shape)
        raise ValueError(
            f"statistics signals from Alice to Bob: p(b={b}|y={y}) is {bob[b, 0, y]:.12g} "
            f"with x=0 and {bob[b, 1, y]:.12g} with x=1 (project measured data onto the "
            "no-signalling set first)"
        )
    sign = np.array([1.0, -1.0])
    ma = np.einsum("a,abxy->x", sign, arr) / 2  # averaged over y (equal within tol)
    mb = np.einsum("b,abxy->y", sign, arr) / 2
    e = np.einsum("a,b,abxy->xy", sign, sign, arr)
    return np.concatenate([ma, mb, e.reshape(4)])


def _behaviour(s: np.ndarray) -> np.ndarray:
    """p[a, b, x, y] from full statistics (<A_x>, <B_y>, E_xy)."""
    sign = np.array([1.0, -1.0])
    a, b, e = s[0:2], s[2:4], s[4:8].reshape(2, 2)
    return (
        1.0
        + sign[:, None, None, None] * a[None, None, :, None]
        + sign[None, :, None, None] * b[None, None, None, :]
        + (sign[:, None] * sign[None, :])[:, :, None, None] * e[None, None, :, :]
    ) / 4.0


# --- the result ----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class AttackResult:
    """The explicit attack at one target: a mixture of qubit strategies and its entropy.

    Attributes
    ----------
    constraint : str
        "correlators" or "full".
    x : int
        Alice's key input.
    preprocessing : float
        p, the probability that Alice flips her key bit.
    target : numpy.ndarray
        The constrained statistics: (E00, E01, E10, E11), or for "full"
        (<A_0>, <A_1>, <B_0>, <B_1>, E00, E01, E10, E11).
    entropy : float
        H(A'|X=x, E) of the mixture, bits: an upper bound on the DI infimum (tight when pricing
        is global). NaN where no mixture reproducing the target was found.
    lower_estimate : float
        The best G(lambda) + lambda . target, bits, G(lambda) the least H - lambda . s found: a
        lower bound on the infimum only if that minimum is global (an estimate). NaN where
        infeasible.
    gap : float
        entropy - lower_estimate, bits.
    status : str
        One of :data:`STATUSES`.
    converged : bool
        status == "converged".
    weights : numpy.ndarray
        Shape (k,): the mixture's weights (>= 0, summing to 1).
    params : numpy.ndarray
        Shape (k, 20): its strategies (:func:`attack_strategy`).
    strategy_entropy : numpy.ndarray
        Shape (k,): H(A'|X=x, E) of each strategy, bits.
    strategy_statistics : numpy.ndarray
        Shape (k, len(target)): the statistics of each strategy.
    statistics : numpy.ndarray
        sum_j weights_j strategy_statistics_j, the statistics the attack reproduces.
    residual : float
        max |statistics - target| and |sum weights - 1|.
    dual, dual_constant : numpy.ndarray, float
        lambda and G(lambda) of the best lower estimate: H(A'|X=x, E) >= G + lambda . s for
        every quantum strategy with statistics s, if the pricing minimum was global (an
        estimated affine min-tradeoff function; lower_estimate = G + lambda . target).
    rounds : int
        Pricing rounds run.
    columns : int
        Strategies in the final dictionary.
    """

    constraint: str
    x: int
    preprocessing: float
    target: np.ndarray
    entropy: float
    lower_estimate: float
    gap: float
    status: str
    converged: bool
    weights: np.ndarray
    params: np.ndarray
    strategy_entropy: np.ndarray
    strategy_statistics: np.ndarray
    statistics: np.ndarray
    residual: float
    dual: np.ndarray
    dual_constant: float
    rounds: int
    columns: int
    options: AttackOptions

    def behaviour(self) -> np.ndarray:
        """p[a, b, x, y] of the reproduced statistics (``"full"`` only)."""
        if self.constraint != "full":
            raise ValueError('behaviour() needs constraint="full" (marginals are not fixed)')
        return _behaviour(self.statistics)


# --- pricing: multi-start Adam, vmapped and jitted in fixed blocks -------------------------------


def _descend(p0, lam, hw, x, p, learning_rate, *, steps, full):
    """One start: minimise hw H - lam . s by Adam. Returns the final parameters."""
    opt = optax.adam(optax.cosine_decay_schedule(learning_rate, steps, alpha=1e-3))

    def objective(prm):
        h = _entropy(prm, x, p)
        return hw * h - jnp.dot(lam, _statistics(prm, full))

    def step(carry, _):
        prm, state = carry
        g = jax.grad(objective)(prm)
        g = jnp.where(jnp.isfinite(g), g, 0.0)  # a non-finite gradient never poisons a start
        upd, state = opt.update(g, state, prm)
        return (optax.apply_updates(prm, upd), state), None

    (prm, _), _ = jax.lax.scan(step, (p0, opt.init(p0)), None, length=steps)
    return prm


@functools.partial(jax.jit, static_argnames=("steps", "full"))
def _price_block(p0, lam, hw, x, p, learning_rate, *, steps, full):
    one = functools.partial(_descend, steps=steps, full=full)
    return jax.vmap(one, in_axes=(0, 0, None, None, None, None))(p0, lam, hw, x, p, learning_rate)


def _price(p0, lam, hw, x, p, options, full, devices):
    """Minimise hw H - lam_i . s from every start p0_i (lam: one row per start)."""
    with x64_scope():
        shared = (
            jnp.asarray(hw, jnp.float64),
            jnp.asarray(x, jnp.int32),
            jnp.asarray(p, jnp.float64),
            jnp.asarray(options.learning_rate, jnp.float64),
        )
        prm = map_blocks(
            _price_block, (np.asarray(p0, np.float64), np.asarray(lam, np.float64)), shared,
            block=_BLOCK, devices=devices, steps=options.steps, full=full,
        )  # fmt: skip
        prm = np.asarray(prm)
        h, s = _evaluate(jnp.asarray(prm), x, p, full=full)
    return prm, np.asarray(h), np.asarray(s)


def _random_params(rng: np.random.Generator, n: int) -> np.ndarray:
    out = rng.standard_normal((n, NUM_PARAMS))
    out[:, 16:] = rng.uniform(0.0, 2.0 * np.pi, (n, 4))
    return out


# --- linear programmes ---------------------------------------------------------------------------

_HIGHS = {"primal_feasibility_tolerance": 1e-10, "dual_feasibility_tolerance": 1e-10}


def _lp(h, s, t, phase1):
    """Solve phase I (min L1 residual) or phase II (min sum w H); (ok, value, w, duals)."""
    n, d = s.shape
    ones = np.ones((1, n))
    if phase1:
        c = np.concatenate([np.zeros(n), np.ones(2 * d)])
        eye = np.eye(d)
        a_eq = np.block([[ones, np.zeros((1, 2 * d))], [s.T, eye, -eye]])
    else:
        c = h
        a_eq = np.vstack([ones, s.T])
    b_eq = np.concatenate([[1.0], t])
    res = scipy.optimize.linprog(
        c, A_eq=a_eq, b_eq=b_eq, bounds=(0, None), method="highs", options=_HIGHS
    )
    if res.status != 0:
        return False, np.nan, None, None
    return True, float(res.fun), np.asarray(res.x[:n]), np.asarray(res.eqlin.marginals)


def _polish(w, s, t):
    """Re-solve the mixture's weights on its support by least squares (exact equalities)."""
    support = np.flatnonzero(w > 0)
    a = np.vstack([np.ones((1, len(support))), s[support].T])
    b = np.concatenate([[1.0], t])
    ws, *_ = np.linalg.lstsq(a, b, rcond=None)
    out = w.copy()
    if np.all(ws >= -1e-12):
        out[support] = np.maximum(ws, 0.0)
    return out


def _mixture_terms(z, x, p, *, k, full):
    """(sum_j w_j H_j, (sum w, sum w s)) of k columns packed as z = (params (k x 20), sqrt w)."""
    prm = z[: k * NUM_PARAMS].reshape(k, NUM_PARAMS)
    w = z[k * NUM_PARAMS :] ** 2  # weights u^2 >= 0 without bounds (SLSQP is slower with them)
    h = jax.vmap(lambda q: _entropy(q, x, p))(prm)
    s = jax.vmap(lambda q: _statistics(q, full))(prm)
    return jnp.dot(w, h), jnp.concatenate([jnp.sum(w)[None], w @ s])


def _mixture_value(z, x, p, *, k, full):
    return _mixture_terms(z, x, p, k=k, full=full)[0]


def _mixture_moments(z, x, p, *, k, full):
    return _mixture_terms(z, x, p, k=k, full=full)[1]


_STATIC = ("k", "full")
_mixture_grad = jax.jit(jax.value_and_grad(_mixture_value), static_argnames=_STATIC)
_mixture_con = jax.jit(_mixture_moments, static_argnames=_STATIC)
_mixture_jac = jax.jit(jax.jacfwd(_mixture_moments), static_argnames=_STATIC)


def _refine(params, w, t, x, p, full):
    """Move the mixture's strategies and weights jointly (SciPy SLSQP on exact JAX gradients),
    keeping its statistics equal to ``t``: column generation alone approaches the optimal
    strategies slowly. Returns the refined (params, weights), or None if not finite."""
    k = len(w)
    target = np.concatenate([[1.0], t])
    with x64_scope():
        xi, pi = jnp.int32(x), jnp.float64(p)

        def f(z):
            v, g = _mixture_grad(jnp.asarray(z), xi, pi, k=k, full=full)
            g = np.asarray(g)
            return float(v), np.where(np.isfinite(g), g, 0.0)

        def con(z):
            return np.asarray(_mixture_con(jnp.asarray(z), xi, pi, k=k, full=full)) - target

        def jac(z):
            return np.nan_to_num(np.asarray(_mixture_jac(jnp.asarray(z), xi, pi, k=k, full=full)))

        res = scipy.optimize.minimize(
            f, np.concatenate([params.reshape(-1), np.sqrt(w)]), jac=True, method="SLSQP",
            constraints=[{"type": "eq", "fun": con, "jac": jac}],
            options={"maxiter": 60, "ftol": 1e-14},
        )  # fmt: skip
    z = np.asarray(res.x)
    mult = np.asarray(getattr(res, "multipliers", np.full(len(target), np.nan)), np.float64)
    if not (np.all(np.isfinite(z)) and mult.shape == target.shape):
        return None
    prm, w = z[: k * NUM_PARAMS].reshape(k, NUM_PARAMS), z[k * NUM_PARAMS :] ** 2
    return prm, w, mult


def _residual(w, s, t) -> float:
    return float(max(np.max(np.abs(w @ s - t)), abs(np.sum(w) - 1.0)))


# --- public entry point --------------------------------------------------------------------------


def attack_entropy(
    statistics: ArrayLike,
    *,
    constraint: str,
    x: int = 0,
    preprocessing: float = 0.0,
    options: Mapping[str, Any] | AttackOptions | None = None,
    seed: int = 0,
) -> AttackResult:
    """The explicit qubit attack on H(A'|X=x, E) at given correlators or behaviour.

    Parameters
    ----------
    statistics : array_like
        ``constraint="correlators"``: E[x, y], shape (2, 2), in [-1, 1].
        ``constraint="full"``: a behaviour p[a, b, x, y], shape (2, 2, 2, 2), normalised per
        (x, y), nonnegative and no-signalling (within 1e-9). Bob's key-only input, if any, is not
        constrained and must not be included.
    constraint : {"correlators", "full"}
        What the protocol tests: the four correlators, or every p(ab|xy) (marginals included).
    x : {0, 1}
        Alice's key input.
    preprocessing : float
        p in [0, 1/2]: Alice flips each raw key bit with probability p (Ho et al. 2020);
        H(A'|E) is about the flipped bit A'.
    options : dict or AttackOptions, optional
        :class:`AttackOptions` settings, e.g. ``{"starts": 32, "rounds": 20}``.
    seed : int
        Seed of the random starts; the result is the same for the same seed (and devices).

    Returns
    -------
    AttackResult
        ``entropy`` is an upper bound on the DI infimum (bits), achieved by the mixture it
        reports; ``lower_estimate`` and ``gap`` bracket it if pricing is global; NaN with
        ``status="infeasible"`` or ``"unreached"`` where the target was not reproduced.

    References
    ----------
    Pironio et al., New J. Phys. 11, 045021 (2009); Ho et al., Phys. Rev. Lett. 124, 230502
    (2020).
    """
    target = _target(statistics, constraint)
    x, p = _check_x_p(x, preprocessing)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an integer, got {seed!r}")
    opts = AttackOptions.from_mapping(options)
    full = constraint == "full"
    d = len(target)
    devices = select_devices(None)
    rng = np.random.default_rng([int(seed), int(full), x])

    cols_p = _deterministic_params()
    with x64_scope():
        h0, s0 = _evaluate(jnp.asarray(cols_p), x, p, full=full)
    cols_h, cols_s = np.asarray(h0), np.asarray(s0)

    feasible = False
    stalled = False
    lower = -np.inf
    gap = np.inf
    value, w = np.nan, None
    rounds = flips = 0
    refine = True
    lam_ref = None
    best_lam = np.full(d, np.nan)
    while rounds < opts.rounds:
        ok, val, wk, duals = _lp(cols_h, cols_s, target, phase1=not feasible)
        if not ok:
            if feasible and flips < 2:  # phase II lost feasibility (tolerances): phase I again
                feasible, flips = False, flips + 1
                continue
            feasible = False
            break
        if not feasible:
            if val <= opts.feasibility_tol:
                feasible = True
                lower, gap = -np.inf, np.inf
                continue
        else:
            value, w = val, wk
            if refine:
                # polish the strategies of the mixture (one compilation per support size)
                order = np.argsort(-wk)[: max(1, min(d + 1, int(np.sum(wk > 1e-12))))]
                ref = _refine(cols_p[order], wk[order], target, x, p, full)
                if ref is not None:
                    lam_ref = ref[2][1:]
                    with x64_scope():
                        hr, sr = _evaluate(jnp.asarray(ref[0]), x, p, full=full)
                    cols_p = np.concatenate([cols_p, ref[0]])
                    cols_h = np.concatenate([cols_h, np.asarray(hr)])
                    cols_s = np.concatenate([cols_s, np.asarray(sr)])
                    ok, val, wk2, duals2 = _lp(cols_h, cols_s, target, phase1=False)
                    if ok:
                        value, w, wk, duals = val, wk2, wk2, duals2
        hw = 1.0 if feasible else 0.0
        duals_list = [duals[1:]]
        if lam_ref is not None:
            duals_list.append(lam_ref)
            lam_ref = None
        support = np.flatnonzero(wk > 0)[: d + 1]
        warm = _random_params(rng, d + 1)
        warm[: len(support)] = cols_p[support] + 1e-2 * rng.standard_normal(
            (len(support), NUM_PARAMS)
        )
        p0 = np.concatenate([_random_params(rng, opts.starts), warm])
        # the starts are shared out among the duals (LP's, and SLSQP's multipliers)
        which = np.arange(len(p0)) % len(duals_list)
        lams = np.stack(duals_list)[which]
        prm, h, s = _price(p0, lams, hw, x, p, opts, full, devices)
        rounds += 1
        good = np.isfinite(h) & np.all(np.isfinite(s), axis=1)
        cols_p = np.concatenate([cols_p, prm[good]])
        cols_h = np.concatenate([cols_h, h[good]])
        cols_s = np.concatenate([cols_s, s[good]])
        # G(lambda) + lambda . t, G the least hw H - lambda . s of all strategies found
        bounds = [
            float(np.min(hw * cols_h - cols_s @ lam)) + float(lam @ target) for lam in duals_list
        ]
        if feasible:
            j = int(np.argmax(bounds))
            if bounds[j] > lower:
                lower, best_lam = bounds[j], duals_list[j]
            gap = value - lower
            if gap <= opts.tol:
                break
        elif bounds[0] >= val - opts.feasibility_tol:
            stalled = True  # no strategy found moves the mixture towards the target
            break

    if feasible and w is not None:
        # the last round's columns may improve the attack: one more LP (its duals unpriced)
        ok, val, wk, _ = _lp(cols_h, cols_s, target, phase1=False)
        if ok and val < value:
            value, w = val, wk
            gap = value - lower
    if not feasible or w is None:
        status = "infeasible" if stalled else "unreached"
        k = 0
        return AttackResult(
            constraint=constraint, x=x, preprocessing=p, target=target, entropy=np.nan,
            lower_estimate=np.nan, gap=np.nan, status=status, converged=False,
            weights=np.zeros(k), params=np.zeros((k, NUM_PARAMS)), strategy_entropy=np.zeros(k),
            strategy_statistics=np.zeros((k, d)), statistics=np.full(d, np.nan),
            residual=np.nan, dual=np.full(d, np.nan), dual_constant=np.nan, rounds=rounds,
            columns=len(cols_h), options=opts,
        )  # fmt: skip
    w = _polish(w, cols_s, target)
    keep = np.flatnonzero(w > 0)
    weights = w[keep] / np.sum(w[keep])
    entropy = float(weights @ cols_h[keep])
    stats = weights @ cols_s[keep]
    lower_est = min(lower, entropy)
    status = "converged" if entropy - lower_est <= opts.tol else "not_converged"
    return AttackResult(
        constraint=constraint,
        x=x,
        preprocessing=p,
        target=target,
        entropy=entropy,
        lower_estimate=float(lower_est),
        gap=float(entropy - lower_est),
        status=status,
        converged=status == "converged",
        weights=weights,
        params=cols_p[keep],
        strategy_entropy=cols_h[keep],
        strategy_statistics=cols_s[keep],
        statistics=stats,
        residual=_residual(weights, cols_s[keep], target),
        dual=best_lam,
        dual_constant=float(lower - best_lam @ target),
        rounds=rounds,
        columns=len(cols_h),
        options=opts,
    )
