"""DI entropies below the quantum bound from explicit qubit strategies (Jordan's lemma).

With two binary inputs and outputs per party, Jordan's lemma splits every strategy into a
mixture, known to Eve, of two-qubit blocks (one-dimensional blocks are the special case of a
qubit measured in an eigenbasis of its state). Hence the device-independent infimum of
H(A|X=x, E) (kind ``"key"``) or H(AB|X=x, Y=y, E) (kind ``"global"``) over all quantum strategies
with <B_theta,phi,omega> = eta is the lower convex envelope, in eta, of

    g(eta) = min { H : two-qubit state rho_AB, Eve holding a purification, projective qubit
                   measurements, <B> = eta },

with H(A|X=x, E) = S(Delta_{A_x}(rho)) - S(rho) (Delta dephases Alice's qubit in the eigenbasis
of A_x) and H(AB|X=x, Y=y, E) = H(p(ab|xy)) - S(rho). (A rank-one measurement of a pure state
of ABE leaves Eve's conditional states pure, which gives both formulas.)

Reductions (each without loss of generality, each lowering or keeping the entropy):

* a local unitary per party puts both of its observables in the X-Z plane,
  A_x = cos(alpha_x) Z + sin(alpha_x) X, B_y = cos(beta_y) Z + sin(beta_y) X (real matrices);
* the state can be taken real: rho and its complex conjugate give the same statistics and
  entropies, and Eve may hold the flag of their even mixture;
* the state can be taken invariant under Y (x) Y: conjugating by Y (x) Y flips every outcome
  of both parties (Y anticommutes with Z and X), which keeps all correlators and entropies,
  and again Eve may hold the flag of the even mixture.

A real state commuting with Y (x) Y is block diagonal in the Bell basis, with blocks
span(Phi-, Psi+) (eigenvalue +1) and span(Phi+, Psi-) (eigenvalue -1); it is parametrised as
rho = (V1 M1 M1^T V1^T + V2 M2 M2^T V2^T) / tr with real 2 x 2 matrices M1, M2. All entropies
are then entropies of 2 x 2 blocks, computed in closed form with finite gradients
(:func:`jaxbell.entropy._entropy_2x2`). A strategy is 12 real numbers: M1, M2 (8) and the
angles alpha_0, alpha_1, beta_0, beta_1.

The envelope is computed through its supporting lines. For a set of slopes mu, minimise
H - mu <B> over strategies from many random starts (optax Adam; the starts of all problems and
slopes form one batch, vmapped and jitted in fixed blocks split over all devices of the process,
:func:`jaxbell.sharding.map_blocks`, so the results are the same, bit for bit, on 1 and N
devices), keep every start's best point (|<B>|, H) -- each is an explicit strategy, and Bob
flipping his outputs maps <B> to -<B> -- and take the lower convex hull of these points
together with:

* (0, 0): the maximally mixed state (Eve knows both outcomes);
* (eta^L, 0): the best local deterministic strategy (eq. 3);
* (|eta^Q|, H_Q) for self-testing tuples: the strategy of eq. (6), the unique one reaching
  eta^Q (Prop. 1(iv)); its entropy is computed here with the same formulas.

The hull is the entropy reported: every point of it is achieved by a mixture of at most two of
the qubit strategies found, so it is an **upper bound on the DI infimum, tight when the
optimisation is global** (gradient descent from many starts is not a proof; ``method="bff"``
gives certified lower bounds). Its accuracy against the true envelope is bracketed by the
tangent lines found: ``max_mu [G(mu) + mu eta]`` with G(mu) the best value of H - mu <B> is a
lower estimate of the true envelope when each G(mu) is the global minimum; their difference
(the ``gap``) shrinks as slopes are added where it is largest (chord slopes of the hull, the
slopes whose tangent points lie inside the widest segments), until it is below ``tol``.

Noisy preprocessing (``preprocessing=p``, kind "key"; Ho et al., PRL 124, 230502 (2020)):
Alice flips her bit with probability p and the entropy is H(A'|X=x, E) =
sum_a' S(K_a' rho K_a'^T) - S(rho), K_a' = sqrt((1 - p) P_a' + p P_(1-a')) (x) 1, the two terms
equal by the Y (x) Y symmetry; the points (0, h(p)) and (eta^L, h(p)) replace (0, 0) and
(eta^L, 0). Every strategy's H(A'|E) lies in [h(p), 1], a range that shrinks like
(1 - 2p)^2 / (2 ln 2) as p -> 1/2, and the key rates with it; the envelope is computed for the
normalised entropy (H - h(p)) / (1 - h(p)) (the hull commutes with this affine map), so its
slopes, its refinement and ``tol`` scale with the range and its accuracy in bits is
tol * (1 - h(p)). (With an absolute ``tol`` the first pass's slopes all touched the curve at
its ends and the refinement stopped at once: near p = 1/2 the hull was a few chords, 1e-5
bits above Ho et al.'s exact bound, as large as the rates themselves.)

Where condition (4) fails, the quantum maximum of |<B>| is the local bound eta^L (the
expression has no quantum violation; see tests/test_qubit.py) and the envelope is 0 on the
whole quantum range: no optimisation is needed.

References
----------
L. Wooltorton, P. Brown and R. Colbeck, Phys. Rev. Lett. 132, 210802 (2024): eq. (2)-(6) and
the Jordan-lemma reduction of the Supplemental Material.
C. Jordan, Bull. Soc. Math. France 3, 103 (1875).
S. Pironio, A. Acin, N. Brunner, N. Gisin, S. Massar and V. Scarani, "Device-independent
quantum key distribution secure against collective attacks", New J. Phys. 11, 045021 (2009)
(the same reduction for CHSH, and the analytic result the tests reproduce).
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import logging
import math
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.typing import ArrayLike

from jaxbell._checks import as_angles, options_from_mapping
from jaxbell._precision import x64_scope
from jaxbell.entropy import _entropy_2x2, _shannon, _von_neumann
from jaxbell.family import _bell_coefficients, _local_bound, _quantum_bound_jit, is_self_testing
from jaxbell.rates.protocol import check_preprocessing
from jaxbell.rates.values import KINDS
from jaxbell.sharding import describe_devices, map_blocks, select_devices
from jaxbell.strategy import _strategy_angles

__all__ = [
    "KINDS",
    "NUM_PARAMS",
    "QubitEnvelope",
    "QubitOptions",
    "clear_cache",
    "qubit_entropy",
    "qubit_envelope",
    "qubit_envelopes",
    "strategy_terms",
    "strategy_from_params",
]

#: real parameters of one qubit strategy: M1 (4), M2 (4), alpha (2), beta (2)
NUM_PARAMS = 12

_S = 1.0 / math.sqrt(2.0)
# Bell vectors as columns, in the basis |ab> = |00>, |01>, |10>, |11> (index 2a + b)
_V_PLUS = np.array([[_S, 0.0, 0.0, -_S], [0.0, _S, _S, 0.0]]).T  # Phi-, Psi+ (Y(x)Y = +1)
_V_MINUS = np.array([[_S, 0.0, 0.0, _S], [0.0, _S, -_S, 0.0]]).T  # Phi+, Psi- (Y(x)Y = -1)
_PAULI_ZX = np.array([[[1.0, 0.0], [0.0, -1.0]], [[0.0, 1.0], [1.0, 0.0]]])  # Z, X


# --- one strategy: pure functions of 12 real parameters ---------------------------------------


def _blocks(params):
    """The two Bell-basis blocks (trace-normalised together) of the state."""
    m1 = params[..., 0:4].reshape(params.shape[:-1] + (2, 2))
    m2 = params[..., 4:8].reshape(params.shape[:-1] + (2, 2))
    p = m1 @ jnp.swapaxes(m1, -1, -2)
    q = m2 @ jnp.swapaxes(m2, -1, -2)
    norm = jnp.trace(p, axis1=-2, axis2=-1) + jnp.trace(q, axis1=-2, axis2=-1)
    # one reciprocal, then products: XLA rewrites x / broadcast(y) as x * broadcast(1 / y) in
    # some programs and not in others (e.g. sharded ones), which changed the last bit
    inv = (1.0 / norm)[..., None, None]
    return p * inv, q * inv


def _rho_from_blocks(p, q):
    vp, vm = jnp.asarray(_V_PLUS, p.dtype), jnp.asarray(_V_MINUS, p.dtype)
    return vp @ p @ vp.T + vm @ q @ vm.T


def strategy_from_params(params: ArrayLike):
    """The state and measurement angles of a parametrised qubit strategy.

    Parameters
    ----------
    params : array_like
        Shape (..., 12): M1 (row-major 2 x 2), M2, alpha_0, alpha_1, beta_0, beta_1.

    Returns
    -------
    rho : jax.Array
        Shape (..., 4, 4): the real two-qubit density matrix in the basis |ab>
        (row index 2a + b), invariant under Y (x) Y.
    alpha, beta : jax.Array
        Shape (..., 2): Alice's and Bob's measurement angles in the X-Z plane, radians:
        A_x = cos(alpha_x) Z + sin(alpha_x) X, B_y = cos(beta_y) Z + sin(beta_y) X.
    """
    params = jnp.asarray(params)
    if params.shape[-1:] != (NUM_PARAMS,):
        raise ValueError(f"params must end in an axis of length {NUM_PARAMS}; got {params.shape}")
    p, q = _blocks(params)
    return _rho_from_blocks(p, q), params[..., 8:10], params[..., 10:12]


def _eigvec(angle):
    """Eigenvectors (outcome 0: eigenvalue +1; outcome 1: -1) of cos(a) Z + sin(a) X, rows."""
    c, s = jnp.cos(angle / 2), jnp.sin(angle / 2)
    return jnp.stack([jnp.stack([c, s]), jnp.stack([-s, c])])


def _flipped_key_entropy(rho, alpha_x, flip):
    """H(A'|X=x, E), bits: Alice's outcome of A_x flipped with probability ``flip``.

    Eve holds a purification |Psi> of rho. Her state given A' = a' is
    tr_AB[(M_a' (x) 1) |Psi><Psi|] with M_a' = (1 - f) P_a' + f P_(1-a'), which has the nonzero
    spectrum of K rho K^T, K = sqrt(M_a') (x) 1 (X X^T and X^T X share it). So
    H(A'|E) = H(A'E) - H(E) = sum_a' S(K_a' rho K_a'^T) - S(rho). Conjugating by Y (x) Y (which
    leaves the reduced rho invariant and maps A_x to -A_x) swaps the two terms, so they are
    equal: H = 2 S(K_0 rho K_0^T) - S(rho), one 4 x 4 entropy with safe first derivatives.
    """
    c0 = 0.5 * (jnp.sqrt(1.0 - flip) + jnp.sqrt(flip))
    c1 = 0.5 * (jnp.sqrt(1.0 - flip) - jnp.sqrt(flip))
    pauli = jnp.asarray(_PAULI_ZX, rho.dtype)
    a_x = jnp.cos(alpha_x) * pauli[0] + jnp.sin(alpha_x) * pauli[1]
    k = jnp.kron(c0 * jnp.eye(2, dtype=rho.dtype) + c1 * a_x, jnp.eye(2, dtype=rho.dtype))
    sigma = k @ rho @ k.T
    return 2.0 * _von_neumann(0.5 * (sigma + sigma.T))


def _terms(params, coefficients, kind, x, y, flip=None):
    """(entropy in bits, <B>, correlators (2, 2)) of one strategy. ``x``, ``y`` may be traced.

    ``flip``: None (no preprocessing: the closed-form 2 x 2 entropies) or Alice's flip
    probability (kind "key" only, may be traced; see :func:`_flipped_key_entropy`)."""
    p, q = _blocks(params)
    rho = _rho_from_blocks(p, q)
    alpha, beta = params[8:10], params[10:12]
    s_rho = _entropy_2x2(p[0, 0], p[0, 1], p[1, 1]) + _entropy_2x2(q[0, 0], q[0, 1], q[1, 1])
    r4 = rho.reshape(2, 2, 2, 2)  # [a, b, a', b']
    pauli = jnp.asarray(_PAULI_ZX, rho.dtype)
    # T[i, j] = tr(rho sigma_i (x) sigma_j), sigma = (Z, X)
    t = jnp.einsum("abcd,ica,jdb->ij", r4, pauli, pauli)
    ua = jnp.stack([jnp.cos(alpha), jnp.sin(alpha)], -1)
    ub = jnp.stack([jnp.cos(beta), jnp.sin(beta)], -1)
    corr = ua @ t @ ub.T
    bell = jnp.sum(coefficients * corr)
    va = _eigvec(alpha[x])  # rows: outcome 0, 1
    if kind == "key" and flip is not None:
        entropy = _flipped_key_entropy(rho, alpha[x], flip) - s_rho
    elif kind == "key":
        # Delta_{A_x}(rho) = sum_a |a><a| (x) <a|rho|a>: two 2 x 2 blocks on Bob's qubit
        blk = jnp.einsum("ki,ibjc,kj->kbc", va, r4, va)
        s_deph = _entropy_2x2(blk[0, 0, 0], blk[0, 0, 1], blk[0, 1, 1]) + _entropy_2x2(
            blk[1, 0, 0], blk[1, 0, 1], blk[1, 1, 1]
        )
        entropy = s_deph - s_rho
    else:
        vb = _eigvec(beta[y])
        prob = jnp.einsum("ki,lj,ijmn,km,ln->kl", va, vb, r4, va, vb)
        entropy = _shannon(jnp.maximum(prob.reshape(4), 0.0)) - s_rho
    return entropy, bell, corr


def strategy_terms(
    params: ArrayLike,
    coefficients: ArrayLike,
    *,
    kind: str = "key",
    x: int = 0,
    y: int = 0,
    preprocessing: float = 0.0,
):
    """Entropy, Bell value and correlators of a parametrised qubit strategy.

    Parameters
    ----------
    params : array_like
        Shape (..., 12), see :func:`strategy_from_params`.
    coefficients : array_like
        Shape (..., 2, 2): c[x, y] of the Bell expression (eq. 2), broadcast against params.
    kind : {"key", "global"}
        "key": H(A|X=x, E) = S(Delta_{A_x}(rho)) - S(rho); "global":
        H(AB|X=x, Y=y, E) = H(p(ab|xy)) - S(rho); Eve holds a purification of rho.
    x, y : {0, 1}
        The inputs whose outcomes the entropy is about (y is ignored for "key").
    preprocessing : float
        Kind "key" only: Alice flips her outcome with this probability p in [0, 1/2] (noisy
        preprocessing, Ho et al. 2020); the entropy is then H(A'|X=x, E) of the flipped bit.

    Returns
    -------
    entropy : jax.Array
        Bits, shape (...).
    bell_value : jax.Array
        <B> = sum_xy c[x, y] E[x, y], shape (...).
    correlators : jax.Array
        E[x, y] = tr[rho A_x (x) B_y], shape (..., 2, 2).

    References
    ----------
    Supplemental Material of Wooltorton, Brown & Colbeck, PRL 132, 210802 (2024);
    Pironio et al., New J. Phys. 11, 045021 (2009).
    """
    kind, x, y = _check_kind_inputs(kind, x, y)
    flip = _check_flip(preprocessing, kind)
    params = jnp.asarray(params)
    if params.shape[-1:] != (NUM_PARAMS,):
        raise ValueError(f"params must end in an axis of length {NUM_PARAMS}; got {params.shape}")
    c = jnp.asarray(coefficients, params.dtype)
    if c.shape[-2:] != (2, 2):
        raise ValueError(f"coefficients must end in shape (2, 2); got {c.shape}")
    shape = np.broadcast_shapes(params.shape[:-1], c.shape[:-2])
    pb = jnp.broadcast_to(params, shape + (NUM_PARAMS,)).reshape(-1, NUM_PARAMS)
    cb = jnp.broadcast_to(c, shape + (2, 2)).reshape(-1, 2, 2)
    h, b, e = _terms_batch(pb, cb, kind, x, y, flip)
    return h.reshape(shape), b.reshape(shape), e.reshape(shape + (2, 2))


@functools.partial(jax.jit, static_argnames=("kind", "x", "y", "flip"))
def _terms_batch(params, coefficients, kind, x, y, flip=None):
    return jax.vmap(lambda p, c: _terms(p, c, kind, x, y, flip))(params, coefficients)


# --- the three special points, as parameter vectors ------------------------------------------


def _params(m1, m2, alpha, beta) -> np.ndarray:
    return np.concatenate([np.ravel(m1), np.ravel(m2), alpha, beta]).astype(np.float64)


def _mixed_params() -> np.ndarray:
    """The maximally mixed state: <B> = 0 and H = 0 (Eve's purification reveals both outcomes)."""
    return _params(np.eye(2), np.eye(2), [0.0, 0.0], [0.0, 0.0])


def _deterministic_params(coefficients: np.ndarray) -> np.ndarray:
    """The best local deterministic strategy, <B> = eta^L (eq. 3), H = 0.

    The state (|00><00| + |11><11|)/2 (Eve knows which) with A_x = a_x Z, B_y = b_y Z, i.e.
    angles 0 (outcome +1) or pi (-1), maximising sum c[x, y] a_x b_y.
    """
    best, arg = -np.inf, None
    for signs in np.ndindex(2, 2, 2, 2):
        a = 1 - 2 * np.array(signs[:2])
        b = 1 - 2 * np.array(signs[2:])
        val = float(np.sum(coefficients * np.outer(a, b)))
        if val > best:
            best, arg = val, (a, b)
    a, b = arg
    diag = np.diag([1.0, 0.0])  # Phi- in the +1 block, Phi+ in the -1 block
    return _params(diag, diag, np.where(a > 0, 0.0, np.pi), np.where(b > 0, 0.0, np.pi))


def _anchor_params(theta: float, phi: float, omega: float) -> np.ndarray:
    """The strategy of eq. (6), carried to the X-Z plane, reaching +|eta^Q|.

    Eq. (6) measures (|00> + i|11>)/sqrt2 in the X-Y plane and gives E = sin(alpha_x + beta_y).
    Phi+ measured in the X-Z plane gives cos(a_x - b_y); a = alpha, b = pi/2 - beta gives the
    same correlators. Where eta^Q < 0, Bob flips his outputs (b -> b + pi) to reach +|eta^Q|.
    """
    alpha, beta = (
        np.asarray(v) for v in _strategy_angles(*(jnp.float64(v) for v in (theta, phi, omega)))
    )
    b = np.pi / 2 - beta
    if float(_quantum_bound_jit(theta, phi, omega)) < 0:
        b = b + np.pi
    return _params(np.zeros((2, 2)), np.diag([1.0, 0.0]), alpha, b)


# --- options --------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class QubitOptions:
    """Settings of the qubit-strategy backend (pass as ``options={...}`` to the rate functions).

    Attributes
    ----------
    directions : int
        Slopes optimised per pass (default 64). The first pass spreads them evenly in angle
        over [0, pi/2) in the plane of (normalised <B>, H); later passes put them on the chord
        slopes of the widest hull segments.
    starts : int
        Random starts per slope (default 16); later passes also start from the two ends of the
        segment being refined.
    steps : int
        Adam steps per start (default 600), with a cosine-decaying learning rate.
    refine : int
        Most refinement passes after the first (default 4); passes stop once the gap between
        the hull and the tangent-line estimate is below ``tol`` on the whole curve.
    learning_rate : float
        Initial Adam learning rate (default 0.05).
    tol : float
        Target accuracy, bits (default 1e-4): points where the gap stays above ``tol`` are
        reported as not converged (NaN from :func:`qubit_entropy`, status 1 in rate curves).
        With preprocessing p, in units of the entropy's range 1 - h(p): the envelope is
        refined to ``tol * (1 - h(p))`` bits (:attr:`QubitEnvelope.tolerance`; 2.9e-8 bits
        at p = 0.49, where the key rates are ~1e-5 bits).
    seed : int
        Seed of the random starts (default 0); results are reproducible for a given seed.
    """

    directions: int = 64
    starts: int = 16
    steps: int = 600
    refine: int = 4
    learning_rate: float = 0.05
    tol: float = 1e-4
    seed: int = 0

    def __post_init__(self):
        for name, low in (("directions", 2), ("starts", 1), ("steps", 1), ("refine", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise TypeError(f"options[{name!r}] must be an integer, got {value!r}")
            if value < low:
                raise ValueError(f"options[{name!r}] must be >= {low}, got {value}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer)):
            raise TypeError(f"options['seed'] must be an integer, got {self.seed!r}")
        for name in ("learning_rate", "tol"):
            value = getattr(self, name)
            if not isinstance(value, (int, float, np.floating)) or not (
                math.isfinite(value) and value > 0
            ):
                raise ValueError(f"options[{name!r}] must be a positive number, got {value!r}")

    @classmethod
    def from_mapping(cls, options: Mapping[str, Any] | QubitOptions | None) -> QubitOptions:
        """Build from a dict (unknown keys raise a TypeError listing the valid ones)."""
        return options_from_mapping(cls, options, "qubit")


# --- the batched solver: problems x slopes x starts, in fixed blocks split over the devices --

_TRACES = collections.Counter()  # compilations of the solver, for tests
logger = logging.getLogger("jaxbell")

#: floor of the entropy's range 1 - h(p) (reached for p within 6e-5 of 1/2): the envelope's
#: accuracy in bits, ``tol`` times the range, then stays above 1e-12 (the rates'
#: RATE_RESOLUTION) and the normalised entropy above the rounding of H
_MIN_RANGE = 1e-8


def _entropy_range(flip: float) -> tuple[float, float]:
    """(h(p), 1 - h(p)): the range [h(p), 1] of H(A'|X=x, E) with flip probability p.

    Every strategy has h(p) = H(A'|A, E) <= H(A'|E) <= 1, and as p -> 1/2 the range shrinks
    like (1 - 2p)^2 / (2 ln 2) (2.9e-4 bits at p = 0.49) together with the key rates. The
    envelope is therefore computed for the normalised entropy F = (H - h(p)) / (1 - h(p)) in
    [0, 1]: its slopes, its refinement and ``tol`` are in units of the range (the range is
    floored at :data:`_MIN_RANGE`). (0, 1) without preprocessing: F = H, bit for bit.
    """
    p = float(flip)
    if p <= 0.0:
        return 0.0, 1.0
    h = -(p * math.log2(p) + (1.0 - p) * math.log2(1.0 - p))
    return h, max(1.0 - h, _MIN_RANGE)


def _descend(params, c, lo, w, xi, yi, fi, off, sc, tau, learning_rate, kind, steps, flip):
    """One start: minimise cos(tau) F - sin(tau) (<B> - lo)/w by Adam from ``params``.

    ``fi`` is the flip probability of noisy preprocessing, used when ``flip`` (static) is True;
    F is then the normalised entropy (H - off) / sc (:func:`_entropy_range`), else F = H.
    Returns the final params, entropy H (bits), <B> and objective.
    """
    fp = fi if flip else None
    schedule = optax.cosine_decay_schedule(learning_rate, steps, alpha=1e-3)
    opt = optax.adam(schedule)
    ct, st = jnp.cos(tau), jnp.sin(tau)

    def normalised(h):
        return (h - off) / sc if flip else h

    def objective(prm):
        h, b, _ = _terms(prm, c, kind, xi, yi, fp)
        return ct * normalised(h) - st * (b - lo) / w

    def step(carry, _):
        prm, s = carry
        g = jax.grad(objective)(prm)
        g = jnp.where(jnp.isfinite(g), g, 0.0)  # a non-finite gradient never poisons a start
        upd, s = opt.update(g, s, prm)
        return (optax.apply_updates(prm, upd), s), None

    (params, _), _ = jax.lax.scan(step, (params, opt.init(params)), None, length=steps)
    h, b, _ = _terms(params, c, kind, xi, yi, fp)
    return params, h, b, ct * normalised(h) - st * (b - lo) / w


@functools.partial(jax.jit, static_argnames=("kind", "steps", "flip"))
def _solve_batch(
    p0, coefficients, eta_low, width, x, y, f, off, sc, tau, learning_rate, *, kind, steps,
    flip=False,
):  # fmt: skip
    """:func:`_descend` vmapped over one batch axis (every start its own problem data)."""
    _TRACES["solve"] += 1
    one = functools.partial(_descend, kind=kind, steps=steps, flip=flip)
    return jax.vmap(one, in_axes=(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, None))(
        p0, coefficients, eta_low, width, x, y, f, off, sc, tau, learning_rate
    )


#: starts per device and jitted call, by platform: one block shape, so the solver compiles
#: once per device count, and each start's result does not depend on the device count
_BLOCK_STARTS = {"cpu": 128}
_BLOCK_STARTS_ACCELERATOR = 8192


def _block_starts(devices: tuple[jax.Device, ...]) -> int:
    return _BLOCK_STARTS.get(devices[0].platform, _BLOCK_STARTS_ACCELERATOR)


def _solve(
    p0,
    coefficients,
    eta_low,
    width,
    x,
    y,
    tau,
    learning_rate,
    *,
    kind,
    steps,
    devices=None,
    preprocessing=None,
):
    """Minimise cos(tau) F - sin(tau) (<B> - eta_low)/width by Adam, for every start at once.

    Shapes: p0 (n, k, r, 12); coefficients (n, 2, 2); eta_low, width, x, y (n,); tau (n, k).
    All problems of one call share ``kind``; ``x`` and ``y`` may differ. ``preprocessing``:
    None (no flips, the closed-form entropies, F = H) or one flip probability per problem
    (n,), kind "key" only, and then F = (H - h(p)) / (1 - h(p)) (:func:`_entropy_range`;
    the objective returned is in these units, the entropy in bits). The n * k * r starts
    (problems x slopes x starts) form one batch axis, run in blocks of :func:`_block_starts`
    starts, one block per device and call (:func:`jaxbell.sharding.map_blocks`; ``devices``
    default: all devices of this process), so each start's result is the same, bit for bit, on
    1 and N devices. Returns NumPy params, entropy, bell_value, objective, each (n, k, r[, 12]).
    """
    p0 = np.asarray(p0, dtype=np.float64)
    n, k, r = p0.shape[:3]

    def per_start(v, dtype, per_slope=False):
        """One value per problem (n, ...) or per slope (n, k, ...) -> one per start, flat."""
        v = np.asarray(v, dtype=dtype)
        trail = v.shape[2 if per_slope else 1 :]
        v = v.reshape((n, k if per_slope else 1, 1) + trail)
        return np.broadcast_to(v, (n, k, r) + trail).reshape((n * k * r,) + trail)

    flips = np.zeros(n) if preprocessing is None else np.asarray(preprocessing, np.float64)
    off, sc = np.transpose([_entropy_range(f) for f in flips]).reshape(2, n)
    flat = (
        p0.reshape(n * k * r, NUM_PARAMS),
        per_start(coefficients, np.float64),
        per_start(eta_low, np.float64),
        per_start(width, np.float64),
        per_start(x, np.int32),
        per_start(y, np.int32),
        per_start(flips, np.float64),
        per_start(off, np.float64),
        per_start(sc, np.float64),
        per_start(tau, np.float64, per_slope=True),
    )
    devs = select_devices(devices)
    with x64_scope():
        out = map_blocks(
            _solve_batch, flat, (jnp.asarray(learning_rate, jnp.float64),),
            block=_block_starts(devs), devices=devs, kind=kind, steps=steps,
            flip=preprocessing is not None,
        )  # fmt: skip
    return tuple(o.reshape((n, k, r) + o.shape[1:]) for o in out)


def _random_params(rng: np.random.Generator, shape) -> np.ndarray:
    p = rng.standard_normal(tuple(shape) + (NUM_PARAMS,))
    p[..., 8:] = rng.uniform(0.0, 2.0 * np.pi, tuple(shape) + (4,))
    return p


# --- lower convex hull and tangent-line bookkeeping (NumPy, per problem) -----------------------


def _lower_hull(u: np.ndarray, h: np.ndarray) -> np.ndarray:
    """Indices of the lower convex hull of points (u, h), increasing in u (monotone chain)."""
    order = np.lexsort((h, u))
    hull: list[int] = []
    for i in order:
        while len(hull) >= 2:
            a, b = hull[-2], hull[-1]
            cross = (u[b] - u[a]) * (h[i] - h[a]) - (h[b] - h[a]) * (u[i] - u[a])
            if cross <= 0:
                hull.pop()
            else:
                break
        if hull and u[i] == u[hull[-1]]:
            continue  # same abscissa, higher or equal value (sorted by h within u)
        hull.append(i)
    return np.asarray(hull, dtype=np.int64)


@dataclasses.dataclass
class _Problem:
    """Bookkeeping of one envelope while it is being refined.

    Points are (|<B>|, F) of explicit strategies, F = (H - offset) / scale the normalised
    entropy (:func:`_entropy_range`; F = H without preprocessing); slopes are kept in units of
    F per unit of normalised Bell value u = (|<B>| - eta_low) / width, the variables the
    solver works in.
    """

    theta: float
    phi: float
    omega: float
    kind: str
    x: int
    y: int
    coefficients: np.ndarray
    eta_low: float
    eta_max: float
    quantum_bound: float
    self_testing: bool
    width: float
    points_eta: list = dataclasses.field(default_factory=list)
    points_h: list = dataclasses.field(default_factory=list)
    points_p: list = dataclasses.field(default_factory=list)
    slopes: list = dataclasses.field(default_factory=list)  # normalised (bits per unit u)
    spreads: list = dataclasses.field(default_factory=list)
    agreements: list = dataclasses.field(default_factory=list)
    failed_starts: int = 0
    passes: int = 0
    preprocessing: float = 0.0  # Alice's flip probability (kind "key")
    offset: float = 0.0  # h(p): F = (H - offset) / scale
    scale: float = 1.0  # 1 - h(p), the range of H

    def normalise(self, h):
        """F of entropies H in bits (exactly H without preprocessing)."""
        h = np.asarray(h, dtype=np.float64)
        return h if self.preprocessing <= 0 else (h - self.offset) / self.scale

    def add(self, eta, h, p):
        self.points_eta.append(np.atleast_1d(eta))
        self.points_h.append(np.atleast_1d(h))
        self.points_p.append(np.reshape(p, (-1, NUM_PARAMS)))

    def arrays(self):
        return (
            np.concatenate(self.points_eta),
            np.concatenate(self.points_h),
            np.concatenate(self.points_p),
        )


def _tangent_lines(u, h, slopes):
    """Slopes (with 0) sorted, and G(mu) = min over all points of h - mu u."""
    mu = np.unique(np.concatenate([[0.0], np.asarray(slopes, dtype=np.float64)]))
    g = np.min(h[None, :] - mu[:, None] * u[None, :], axis=1)
    return mu, g


def _segment_gaps(u, h, hull, slopes):
    """Largest gap, on each hull segment, between the hull and max_mu [G(mu) + mu u].

    Both are piecewise linear, so the gap is largest at a vertex of the hull or at a breakpoint
    of the tangent-line maximum (the crossing of consecutive tangent lines, each of which
    touches the hull): evaluating there is exact.
    """
    hu, hh = u[hull], h[hull]
    mu, g = _tangent_lines(u, h, slopes)
    cross = (g[:-1] - g[1:]) / (mu[1:] - mu[:-1])
    cand = np.concatenate([hu, cross[(cross > hu[0]) & (cross < hu[-1])]])
    lower = np.max(g[:, None] + mu[:, None] * cand[None, :], axis=0)
    gap = np.maximum(np.interp(cand, hu, hh) - lower, 0.0)
    seg = np.clip(np.searchsorted(hu, cand, side="right") - 1, 0, len(hu) - 2)
    out = np.zeros(len(hu) - 1)
    np.maximum.at(out, seg, gap)
    # a hull vertex belongs to both neighbouring segments
    at_vertex = gap[: len(hu)]
    out = np.maximum(out, at_vertex[:-1])
    out = np.maximum(out, at_vertex[1:])
    return out


# --- the envelope -----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class QubitEnvelope:
    """The lower convex envelope of the qubit-strategy entropy for one tuple, kind and inputs.

    Bell values are |<B>| >= 0 (the envelope is even in <B>). Built by :func:`qubit_envelope`.

    Attributes
    ----------
    theta, phi, omega : float
        The tuple, radians.
    kind : str
        "key" (H(A|X=x, E)) or "global" (H(AB|X=x, Y=y, E)).
    x, y : int
        Inputs.
    local_bound, quantum_bound : float
        eta^L (eq. 3) and eta^Q (eq. 5, signed).
    bell_max : float
        The largest |<B>| of quantum strategies: |eta^Q| where (4) holds, else eta^L.
    self_testing : bool
        Condition (4).
    vertex_bell_value, vertex_entropy : numpy.ndarray
        Hull vertices (|<B>|, bits), increasing in |<B>|.
    vertex_params : numpy.ndarray
        Shape (n, 12): the qubit strategy at each vertex (:func:`strategy_from_params`).
    tangent_slope : numpy.ndarray
        Slopes optimised, bits per unit of <B>.
    tangent_intercept : numpy.ndarray
        G(mu) = min over strategies found of H - mu |<B>|, bits.
    tangent_spread : numpy.ndarray
        Per slope: median minus best of the starts' values of cos(tau) (H - mu |<B>|), bits,
        where tan(tau) = mu (|eta^Q| - eta^L) is the normalised slope (mu where (4) fails):
        0 when all starts agree, large values flag a rugged landscape; the cos(tau) keeps
        steep slopes from magnifying it.
    tangent_agreement : numpy.ndarray
        Per slope: fraction of starts within 1e-6 bits of the best (1e-6 times
        ``entropy_range`` with preprocessing).
    segment_gap : numpy.ndarray
        Per hull segment (between consecutive vertices): the largest gap, bits, between the
        hull and the tangent-line lower estimate on it -- the discretisation error of the
        envelope there, if each slope's optimisation was global.
    options : QubitOptions
        The settings used.
    passes : int
        Optimisation passes run.
    failed_starts : int
        Starts whose result was not finite (dropped; NaN gradients are zeroed during descent,
        so this should stay 0).
    preprocessing : float
        Alice's flip probability p (kind "key"): the entropy is H(A'|X=x, E) of her flipped
        bit (Ho et al. 2020). With p > 0 the envelope is h(p), not 0, for |<B>| <= eta^L.
    entropy_range : float
        1 - h(p) with preprocessing p > 0 (every strategy's H(A'|X=x, E) lies in [h(p), 1];
        floored at 1e-8), else 1. The envelope is optimised and refined in units of this
        range, so its accuracy is ``options.tol * entropy_range`` bits (:attr:`tolerance`):
        near p = 1/2, where the key rates shrink like (1 - 2p)^2, it shrinks with them.
    """

    theta: float
    phi: float
    omega: float
    kind: str
    x: int
    y: int
    local_bound: float
    quantum_bound: float
    bell_max: float
    self_testing: bool
    vertex_bell_value: np.ndarray
    vertex_entropy: np.ndarray
    vertex_params: np.ndarray
    tangent_slope: np.ndarray
    tangent_intercept: np.ndarray
    tangent_spread: np.ndarray
    tangent_agreement: np.ndarray
    segment_gap: np.ndarray
    options: QubitOptions
    passes: int
    failed_starts: int = 0
    preprocessing: float = 0.0
    entropy_range: float = 1.0

    @property
    def tolerance(self) -> float:
        """The accuracy the envelope is refined to, bits: ``options.tol * entropy_range``."""
        return self.options.tol * self.entropy_range

    def _abs_eta(self, bell_value) -> np.ndarray:
        eta = np.abs(np.asarray(bell_value, dtype=np.float64))
        tol = 1e-12 * max(1.0, self.bell_max)
        if np.any(eta > self.bell_max + tol):
            raise ValueError(
                f"|bell_value| must be <= {self.bell_max:.17g} (the quantum maximum of |<B>| for "
                f"this tuple); got up to {float(np.max(eta)):.17g}"
            )
        return np.minimum(eta, self.bell_max)

    def entropy(self, bell_value: ArrayLike) -> np.ndarray:
        """The envelope (hull) at ``bell_value``, bits: an upper bound, tight if global."""
        return np.interp(self._abs_eta(bell_value), self.vertex_bell_value, self.vertex_entropy)

    def lower_estimate(self, bell_value: ArrayLike) -> np.ndarray:
        """max over optimised slopes of G(mu) + mu |eta|, bits (<= the hull)."""
        eta = self._abs_eta(bell_value)
        mu = np.concatenate([[0.0], self.tangent_slope])
        g = np.concatenate([[0.0], self.tangent_intercept])
        low = np.max(g[:, None] + mu[:, None] * eta.reshape(-1)[None, :], axis=0)
        return np.minimum(low.reshape(eta.shape), self.entropy(eta))

    def segment(self, bell_value: ArrayLike):
        """Hull segment containing |bell_value|: (lower vertex index, upper index, weight of upper).

        The optimal attack at |bell_value| mixes the two vertex strategies with weights
        (1 - w, w).
        """
        eta = self._abs_eta(bell_value)
        vb = self.vertex_bell_value
        if len(vb) == 1:
            zero = np.zeros(eta.shape, dtype=np.int64)
            return zero, zero, np.zeros(eta.shape)
        lo = np.clip(np.searchsorted(vb, eta, side="right") - 1, 0, len(vb) - 2)
        hi = lo + 1
        w = (eta - vb[lo]) / (vb[hi] - vb[lo])
        return lo, hi, np.clip(w, 0.0, 1.0)

    def supporting_line(self, bell_value: ArrayLike):
        """(slope, intercept) of the hull segment at |bell_value|: H >= intercept + slope |eta|.

        The affine min-tradeoff function of a finite-size analysis (valid when the optimisation
        is global). Slope in bits per unit of |<B>|, intercept in bits.
        """
        lo, hi, _ = self.segment(bell_value)
        vb, ve = self.vertex_bell_value, self.vertex_entropy
        if len(vb) == 1:
            return np.zeros(lo.shape), np.full(lo.shape, ve[0])
        slope = (ve[hi] - ve[lo]) / (vb[hi] - vb[lo])
        return slope, ve[lo] - slope * vb[lo]

    def gap(self, bell_value: ArrayLike) -> np.ndarray:
        """The largest gap (bits) on the hull segment containing |bell_value| (see segment_gap);
        0 for |bell_value| <= eta^L, where the envelope is exact: 0, or h(p) with preprocessing
        p (a local deterministic strategy reaches it, and H >= 0, resp. H(A'|E) >= H(A'|A, E)
        = h(p))."""
        lo, _, _ = self.segment(bell_value)
        if len(self.segment_gap) == 0:
            return np.zeros(lo.shape)
        local = self._abs_eta(bell_value) <= self.local_bound
        return np.where(local, 0.0, self.segment_gap[lo])

    def status(self, bell_value: ArrayLike) -> np.ndarray:
        """0 where the segment's gap is <= :attr:`tolerance` (converged; ``options.tol`` bits
        without preprocessing) or |bell_value| <= eta^L (exact), 1 where not."""
        return np.where(self.gap(bell_value) <= self.tolerance, 0, 1).astype(np.int8)


def _problem(theta, phi, omega, kind, x, y, preprocessing=0.0) -> _Problem:
    t, p, w = (jnp.float64(v) for v in (theta, phi, omega))
    c = np.asarray(_bell_coefficients(t, p, w), dtype=np.float64)
    lo = float(_local_bound(t, p, w))
    q = float(_quantum_bound_jit(t, p, w))
    st = bool(is_self_testing(t, p, w))
    eta_max = abs(q) if st else lo
    width = abs(q) - lo if st else 1.0
    offset, scale = _entropy_range(preprocessing)
    return _Problem(
        float(theta), float(phi), float(omega), kind, int(x), int(y), c, lo, eta_max, q, st, width,
        preprocessing=float(preprocessing), offset=offset, scale=scale,
    )  # fmt: skip


def _seed_points(prob: _Problem) -> None:
    """The special points at their exact places: (0, 0), (eta^L, 0) and, for self-testing
    tuples, eq. (6) at |eta^Q| with its entropy computed by the same formulas as every other
    strategy (tests check all three against independent computations)."""
    params = [_mixed_params(), _deterministic_params(prob.coefficients)]
    eta = [0.0, prob.eta_low]
    h = [0.0, 0.0]
    terms = functools.partial(
        strategy_terms, kind=prob.kind, x=prob.x, y=prob.y, preprocessing=prob.preprocessing
    )
    if prob.preprocessing > 0:  # Eve knows A but not Alice's flips: h(p), by the same formulas
        h = [float(terms(par, prob.coefficients)[0]) for par in params]
    if prob.self_testing:
        anchor = _anchor_params(prob.theta, prob.phi, prob.omega)
        h_q, _, _ = terms(anchor, prob.coefficients)
        params.append(anchor)
        eta.append(prob.eta_max)
        h.append(float(h_q))
    prob.add(np.array(eta), prob.normalise(h), np.stack(params))


def _record_pass(prob: _Problem, tau, params, h, b, obj) -> None:
    ok = np.isfinite(h) & np.isfinite(b) & np.all(np.isfinite(params), axis=-1)
    prob.failed_starts += int(np.sum(~ok))
    eta = np.minimum(np.abs(b), prob.eta_max)
    ct = np.cos(tau)[:, None]
    value = np.where(ok, obj / ct, np.inf)  # F - mu u (bits without preprocessing)
    f = prob.normalise(h)
    for k in range(len(tau)):
        good = ok[k]
        if not np.any(good):
            continue
        # H >= 0, and H(A'|E) >= H(A'|A, E) = h(p): F >= 0 (below is rounding)
        prob.add(eta[k][good], np.maximum(f[k][good], 0.0), params[k][good])
        vals = value[k][good]
        best = np.min(vals)
        prob.slopes.append(float(np.tan(tau[k])))
        # in the normalised objective cos(tau) (F - mu u): bits (times the range 1 - h(p)
        # with preprocessing) that steep slopes do not magnify
        prob.spreads.append(float((np.median(vals) - best) * ct[k, 0] * prob.scale))
        prob.agreements.append(float(np.mean(value[k] <= best + 1e-6)))


def _next_slopes(prob: _Problem, k: int):
    """Chord slopes of the k hull segments with the largest gap, their end strategies, max gap.

    Returns directions tau (slope tan(tau) in normalised units), the strategies at the two
    ends of each segment (warm starts) and the largest gap, or None for a one-point hull.
    """
    eta, h, p = prob.arrays()
    hull = _lower_hull(eta, h)
    if len(hull) < 2:
        return None
    gaps = _segment_gaps(eta, h, hull, np.asarray(prob.slopes) / prob.width)
    order = np.resize(np.argsort(-gaps), k)
    a, b = hull[order], hull[order + 1]
    slope = (h[b] - h[a]) / np.maximum(eta[b] - eta[a], 1e-300) * prob.width
    return np.arctan(np.maximum(slope, 0.0)), p[a], p[b], float(gaps.max())


def _finish(prob: _Problem, options: QubitOptions) -> QubitEnvelope:
    eta, f, p = prob.arrays()
    hull = _lower_hull(eta, f)
    mu = np.asarray(prob.slopes, dtype=np.float64) / prob.width  # F per unit of <B>
    if len(mu):
        intercept = np.min(f[None, :] - mu[:, None] * eta[None, :], axis=1)
    else:
        intercept = np.zeros(0)
    gaps = _segment_gaps(eta, f, hull, mu) if len(hull) > 1 else np.zeros(0)
    h = f
    if prob.preprocessing > 0:  # back to bits: H = h(p) + (1 - h(p)) F, an affine map
        h = prob.offset + prob.scale * f
        mu, intercept = mu * prob.scale, prob.offset + prob.scale * intercept
        gaps = gaps * prob.scale
    return QubitEnvelope(
        theta=prob.theta,
        phi=prob.phi,
        omega=prob.omega,
        kind=prob.kind,
        x=prob.x,
        y=prob.y,
        local_bound=prob.eta_low,
        quantum_bound=prob.quantum_bound,
        bell_max=prob.eta_max,
        self_testing=prob.self_testing,
        vertex_bell_value=eta[hull],
        vertex_entropy=h[hull],
        vertex_params=p[hull],
        tangent_slope=mu,
        tangent_intercept=intercept,
        tangent_spread=np.asarray(prob.spreads),
        tangent_agreement=np.asarray(prob.agreements),
        segment_gap=gaps,
        options=options,
        passes=prob.passes,
        failed_starts=prob.failed_starts,
        preprocessing=prob.preprocessing,
        entropy_range=prob.scale,
    )


def _first_directions(k: int) -> np.ndarray:
    """Directions tau (slope tan(tau) in bits per unit of normalised <B>) of the first pass.

    Most are spread evenly in angle over (0, pi/2); the last few are geometric (x4 each) beyond
    the steepest of those, because the envelope's slope diverges at eta^Q (like log(1/d) for
    the key entropy and 1/sqrt(d) for the global one, d the distance to eta^Q), and a tangent
    point within d of eta^Q needs slopes of order 1/sqrt(d).
    """
    steep = min(8, k // 4)
    even = (np.arange(k - steep) + 0.5) * (np.pi / 2) / (k - steep)
    top = np.tan(even[-1]) * 4.0 ** np.arange(1, steep + 1)
    return np.concatenate([even, np.arctan(top)])


def _problem_rng(prob: _Problem, seed: int) -> np.random.Generator:
    """A generator seeded by the options' seed and the problem itself (batching-independent)."""
    bits = np.array([prob.theta, prob.phi, prob.omega], dtype=np.float64).view(np.uint64)
    tag = KINDS.index(prob.kind) * 4 + 2 * prob.x + prob.y
    extra = []
    if prob.preprocessing > 0:
        extra = [int(np.array(prob.preprocessing, dtype=np.float64).view(np.uint64))]
    return np.random.default_rng([int(seed), *(int(b) for b in bits), tag, *extra])


def _compute(problems: list[_Problem], options: QubitOptions, progress=None, devices=None) -> None:
    """Run the optimisation passes for the self-testing problems (all of one kind, and all
    with or all without preprocessing), in place.

    Each pass runs the jitted solver on the problems still refining, with ``directions`` slopes
    and ``starts`` starts each, all starts in fixed blocks split over ``devices``.
    """
    devices = select_devices(devices)
    k, r = options.directions, options.starts
    tau0 = _first_directions(k)
    batch = []
    for pr in problems:
        if pr.self_testing:
            rng = _problem_rng(pr, options.seed)
            batch.append((pr, rng, tau0.copy(), _random_params(rng, (k, r))))
    if batch:
        logger.info(
            "qubit envelopes: %d tuple(s) x %d slopes x %d starts per pass on %s",
            len(batch), k, r, describe_devices(devices),
        )  # fmt: skip
    for ps in range(options.refine + 1):
        if not batch:
            break
        params, h, bell, obj = _solve(
            np.stack([b[3] for b in batch]),
            np.stack([b[0].coefficients for b in batch]),
            np.array([b[0].eta_low for b in batch]),
            np.array([b[0].width for b in batch]),
            np.array([b[0].x for b in batch], dtype=np.int32),
            np.array([b[0].y for b in batch], dtype=np.int32),
            np.stack([b[2] for b in batch]),
            float(options.learning_rate),
            kind=batch[0][0].kind,
            steps=options.steps,
            devices=devices,
            preprocessing=(
                np.array([b[0].preprocessing for b in batch])
                if batch[0][0].preprocessing > 0
                else None
            ),
        )
        nxt_batch = []
        for i, (pr, rng, tau, _) in enumerate(batch):
            _record_pass(pr, tau, params[i], h[i], bell[i], obj[i])
            pr.passes = ps + 1
            if ps == options.refine:
                continue
            nxt = _next_slopes(pr, k)
            if nxt is None or nxt[3] <= options.tol:
                continue
            p0 = _random_params(rng, (k, r))
            p0[:, 0] = nxt[1]
            if r > 1:
                p0[:, 1] = nxt[2]
            nxt_batch.append((pr, rng, nxt[0], p0))
        batch = nxt_batch
        if progress is not None:
            progress.update(1)


# --- public entry points ------------------------------------------------------------------------

_CACHE: collections.OrderedDict = collections.OrderedDict()
_CACHE_SIZE = 512
_CACHE_LOCK = threading.Lock()


def clear_cache() -> None:
    """Forget the envelopes kept by :func:`qubit_envelopes` (at most 512, least recent dropped)."""
    with _CACHE_LOCK:
        _CACHE.clear()


def _check_flip(preprocessing, kind):
    """None for no preprocessing, else the flip probability (kind "key" only)."""
    p = check_preprocessing(preprocessing)
    if p == 0:
        return None
    if kind != "key":
        raise ValueError(
            f"preprocessing applies to kind 'key' (Alice's raw key bit), not {kind!r}; got {p!r}"
        )
    return p


def _check_kind_inputs(kind, x, y):
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    for name, v in (("x", x), ("y", y)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v not in (0, 1):
            raise ValueError(f"{name} must be 0 or 1 (an input of the Bell scenario), got {v!r}")
    return kind, int(x), int(y)


def qubit_envelopes(
    tuples,
    *,
    kind: str = "key",
    x: int = 0,
    y: int = 0,
    options: Mapping[str, Any] | QubitOptions | None = None,
    progress=None,
    devices: int | Sequence[jax.Device] | None = None,
    preprocessing: float = 0.0,
) -> list[QubitEnvelope]:
    """Envelopes for many tuples at once (one batched optimisation; results cached).

    Parameters
    ----------
    tuples : sequence of (theta, phi, omega)
        Angles in radians, finite.
    kind, x, y, options, preprocessing
        As in :func:`qubit_envelope`; ``y`` only matters for kind "global".
    progress : tqdm-like or None
        Updated once per optimisation pass.
    devices : None, int or sequence of jax.Device
        Devices the starts are split over (:func:`jaxbell.sharding.select_devices`; default:
        all devices of this process, e.g. every GPU). The envelope is the same, bit for bit, on
        1 and N devices, so cached envelopes are shared whatever the devices.

    Returns
    -------
    list of QubitEnvelope
        In the order of ``tuples``.
    """
    kind, x, y = _check_kind_inputs(kind, x, y)
    flip = float(_check_flip(preprocessing, kind) or 0.0)
    if kind == "key":
        y = 0
    opts = QubitOptions.from_mapping(options)
    devs = select_devices(devices)
    keys = []
    for tpl in tuples:
        t, p, w = (float(v) for v in tpl)
        if not all(math.isfinite(v) for v in (t, p, w)):
            raise ValueError(f"theta, phi and omega must be finite radians; got {tpl!r}")
        keys.append((t, p, w, kind, x, y, opts, flip))
    with _CACHE_LOCK:
        missing = list(dict.fromkeys(key for key in keys if key not in _CACHE))
    if missing:
        with x64_scope():
            problems = [_problem(*key[:6], preprocessing=key[7]) for key in missing]
            for pr in problems:
                _seed_points(pr)
            _compute(problems, opts, progress, devs)
            envs = [_finish(pr, opts) for pr in problems]
        with _CACHE_LOCK:
            for key, env in zip(missing, envs, strict=True):
                _CACHE[key] = env
                while len(_CACHE) > _CACHE_SIZE:
                    _CACHE.popitem(last=False)
        found = dict(zip(missing, envs, strict=True))
    else:
        found = {}
    out = []
    with _CACHE_LOCK:
        for key in keys:
            env = found.get(key) or _CACHE[key]
            if key in _CACHE:
                _CACHE.move_to_end(key)
            out.append(env)
    return out


def qubit_envelope(
    theta: float,
    phi: float,
    omega: float,
    *,
    kind: str = "key",
    x: int = 0,
    y: int = 0,
    options: Mapping[str, Any] | QubitOptions | None = None,
    devices: int | Sequence[jax.Device] | None = None,
    preprocessing: float = 0.0,
) -> QubitEnvelope:
    """The lower convex envelope, over |<B>|, of the qubit-strategy entropy of one tuple.

    Parameters
    ----------
    theta, phi, omega : float
        The tuple of eq. (2), radians.
    kind : {"key", "global"}
        "key": H(A|X=x, E); "global": H(AB|X=x, Y=y, E).
    x, y : {0, 1}
        Inputs (``y`` is ignored for "key").
    options : dict, optional
        :class:`QubitOptions` settings, e.g. ``{"starts": 32, "seed": 1}``.
    devices : None, int or sequence of jax.Device
        Devices the starts are split over (default: all devices of this process); see
        :func:`qubit_envelopes`.
    preprocessing : float
        Kind "key": Alice flips her raw key bit with probability p in [0, 1/2] (noisy
        preprocessing, Ho et al., PRL 124, 230502 (2020)); the envelope is then that of
        H(A'|X=x, E), computed from one 4 x 4 entropy per strategy instead of 2 x 2 blocks
        (slower), and h(p) for |<B>| <= eta^L.

    Returns
    -------
    QubitEnvelope
        Hull vertices with their strategies, supporting lines, tangent slopes with their
        multi-start spread; see the class. An upper bound on the DI infimum, tight when the
        optimisation is global.

    References
    ----------
    Supplemental Material of Wooltorton, Brown & Colbeck, PRL 132, 210802 (2024);
    Pironio et al., New J. Phys. 11, 045021 (2009).
    """
    with x64_scope():
        t, p, w = (np.asarray(v, dtype=np.float64) for v in as_angles(theta, phi, omega))
    if t.ndim or p.ndim or w.ndim:
        raise ValueError("qubit_envelope takes one tuple (scalar theta, phi, omega)")
    return qubit_envelopes(
        [(t, p, w)], kind=kind, x=x, y=y, options=options, devices=devices,
        preprocessing=preprocessing,
    )[0]  # fmt: skip


def qubit_entropy(
    theta: ArrayLike,
    phi: ArrayLike,
    omega: ArrayLike,
    bell_value: ArrayLike,
    *,
    kind: str = "key",
    x: int = 0,
    y: int = 0,
    options: Mapping[str, Any] | QubitOptions | None = None,
    devices: int | Sequence[jax.Device] | None = None,
    preprocessing: float = 0.0,
) -> jax.Array:
    """DI entropy at <B> = bell_value from qubit strategies (the ``method="qubit"`` backend).

    Broadcasts ``theta, phi, omega, bell_value``; one envelope per distinct tuple, all
    optimised in one batch, the starts split over ``devices`` (default: all devices of this
    process; see :func:`qubit_envelopes`). Values where the envelope did not converge to
    ``options["tol"]`` (the gap between hull and tangent lines) are NaN. Arguments as in
    :func:`jaxbell.rates.di_entropy`, which checks them.

    Returns
    -------
    jax.Array
        Bits, float64, the broadcast shape.
    """
    t, p, w = (np.asarray(v, dtype=np.float64) for v in (theta, phi, omega))
    eta = np.asarray(bell_value, dtype=np.float64)
    shape = np.broadcast_shapes(t.shape, p.shape, w.shape, eta.shape)
    flat = [np.broadcast_to(v, shape).reshape(-1) for v in (t, p, w, eta)]
    tuples = np.stack(flat[:3], -1)
    uniq, inv = np.unique(tuples, axis=0, return_inverse=True)
    envs = qubit_envelopes(
        [tuple(row) for row in uniq], kind=kind, x=x, y=y, options=options, devices=devices,
        preprocessing=preprocessing,
    )  # fmt: skip
    out = np.empty(flat[3].shape)
    inv = np.reshape(inv, -1)
    for j, env in enumerate(envs):
        sel = inv == j
        val = env.entropy(flat[3][sel])
        ok = env.status(flat[3][sel]) == 0
        out[sel] = np.where(ok, val, np.nan)
    with x64_scope():
        return jnp.asarray(out.reshape(shape), dtype=jnp.float64)
