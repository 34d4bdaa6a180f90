"""The paper end to end: Props. 1-6 checked, the data of Figs. 1-2, the trade-off curve, figures.

:func:`reproduce` is the pipeline behind ``jaxbell reproduce``: it computes the grids behind
Figures 1 and 2 (:func:`figure1_grid`, :func:`figure2_grid`), the trade-off between nonlocality
and key that the paper only bounds (:func:`tradeoff`), checks every claim of Propositions 1-6
(:func:`compute_claims`: each a computed quantity compared with the paper's analytic value),
draws the figures (:mod:`jaxbell.plots`) and writes datasets, figures and a claims table
(Markdown and JSON) to a folder.

Two checks use tools of their own, independent of the closed forms they test:

* :func:`qubit_bell_maximum` maximises <B> of eq. (2) over all two-qubit strategies (general
  Bloch-vector measurements, the state the top eigenvector of the Bell operator) with optax
  Adam and L-BFGS, multi-start and vmapped -- Prop. 1(iv)'s uniqueness, up to the symmetries
  that leave correlators unchanged: local unitaries, complex conjugation of the state and
  measurements, and flipping the outcomes of both parties together.
* :func:`tlm_residual` is the Tsirelson-Landau-Masanes criterion: correlators E[x, y] with
  zero marginals are quantum iff |sum_xy arcsin E[x, y] - 2 arcsin E[k]| <= pi for every k,
  and lie on the boundary of that set where equality holds for some k -- Props. 4 and 6.

References
----------
L. Wooltorton, P. Brown and R. Colbeck, Phys. Rev. Lett. 132, 210802 (2024),
doi:10.1103/PhysRevLett.132.210802 (Props. 1-6, eqs. 1-6, Figs. 1-2).
B. S. Tsirelson, J. Sov. Math. 36, 557 (1987); L. J. Landau, Found. Phys. 18, 449 (1988);
L. Masanes, arXiv:quant-ph/0309137 (2003) (the arcsine criterion).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import xarray as xr
from jax.typing import ArrayLike
from tqdm import tqdm

from jaxbell import plots
from jaxbell._checks import as_correlators
from jaxbell._log import info_held_back
from jaxbell._precision import x64_scope
from jaxbell._version import __version__
from jaxbell.dataset import PAPER_DOI
from jaxbell.entropy import binary_entropy, pair_entropies_at_quantum_bound
from jaxbell.family import bell_coefficients, quantum_bound, self_testing_margin
from jaxbell.grid import evaluate_grid
from jaxbell.nonlocality import chsh_value, max_chsh_value
from jaxbell.search import find_tuple, max_chsh, tradeoff_curve
from jaxbell.store import save_dataset
from jaxbell.strategy import strategy_correlators

__all__ = [
    "PROFILES",
    "Claim",
    "compute_claims",
    "figure1_grid",
    "figure2_grid",
    "key_pair_entropy_from_matrices",
    "perfect_randomness_planes_max",
    "qubit_bell_maximum",
    "reproduce",
    "tlm_residual",
    "tradeoff",
]

PI = math.pi
#: the paper's analytic values, computed from their formulas
THREE_SQRT3_HALF = 3.0 * math.sqrt(3.0) / 2.0  # Prop. 2
FIVE_HALVES = 5.0 / 2.0  # Props. 3, 4
ONE_PLUS_SQRT2 = 1.0 + math.sqrt(2.0)  # Props. 5, 6
H_QUARTER_PAPER = 2.0 - 0.75 * math.log2(3.0)  # Prop. 3: 2 - (3/4) log 3 = h(1/4)
H_PROP5_ARG = (2.0 + math.sqrt(2.0)) / 4.0  # Prop. 5: eps < h((2 + sqrt 2)/4)

#: run sizes: the default finishes in a few minutes on 2 CPU cores, quick in well under one
PROFILES: dict[str, dict[str, int]] = {
    "default": {
        "grid_n": 601,
        "tradeoff_n": 41,
        "tradeoff_restarts": 8,
        "qubit_tuples": 8,
        "qubit_starts": 32,
        "find_s": 6,
        "find_eps": 5,
        "planes_n": 600,
    },
    "quick": {
        "grid_n": 161,
        "tradeoff_n": 9,
        "tradeoff_restarts": 4,
        "qubit_tuples": 2,
        "qubit_starts": 16,
        "find_s": 2,
        "find_eps": 2,
        "planes_n": 360,
    },
}

#: Fig. 1: the omega = pi plane over (theta, phi); Fig. 2: the phi = pi/2 limit over (theta, omega)
FIG1_THETA, FIG1_PHI, FIG1_OMEGA = (0.0, PI), (-PI / 2, PI / 2), PI
FIG2_THETA, FIG2_PHI, FIG2_OMEGA = (0.0, 2 * PI), PI / 2, (PI / 2, 5 * PI / 2)


# --------------------------------------------------------------------------------------------
# independent tools


def tlm_residual(correlators: ArrayLike) -> tuple[jax.Array, jax.Array]:
    r"""Tsirelson-Landau-Masanes criterion for correlators with zero marginals.

    With :math:`a_{xy} = \arcsin E_{xy}` and :math:`T_k = \sum_{xy} a_{xy} - 2 a_k` (one minus
    sign, at position k), the correlators are quantum iff :math:`\max_k |T_k| \le \pi`, and lie
    on the boundary of the quantum set of correlators where :math:`|T_k| = \pi` for some k.

    Parameters
    ----------
    correlators : array_like
        Shape (..., 2, 2), values in [-1, 1].

    Returns
    -------
    boundary, excess : jax.Array
        ``min_k | |T_k| - pi |`` (0 on the boundary) and ``max_k |T_k| - pi`` (<= 0 for quantum
        correlators), radians, shape (...).

    References
    ----------
    B. S. Tsirelson, J. Sov. Math. 36, 557 (1987); L. J. Landau, Found. Phys. 18, 449 (1988);
    L. Masanes, arXiv:quant-ph/0309137 (2003).
    """
    e = as_correlators(correlators)
    a = jnp.arcsin(jnp.clip(e, -1.0, 1.0))
    t = jnp.sum(a, axis=(-2, -1))[..., None] - 2.0 * a.reshape(a.shape[:-2] + (4,))
    dev = jnp.abs(t) - jnp.pi
    return jnp.min(jnp.abs(dev), axis=-1), jnp.max(dev, axis=-1)


_PAULI = np.array(
    [[[0, 1], [1, 0]], [[0, -1j], [1j, 0]], [[1, 0], [0, -1]]], dtype=np.complex128
)  # X, Y, Z


def _observables(n):
    """(4, 2, 2) observables n_i . sigma / |n_i| for Bloch vectors n of shape (4, 3)."""
    unit = n / jnp.sqrt(jnp.sum(n**2, axis=-1, keepdims=True))
    return jnp.einsum("ik,kab->iab", unit.astype(jnp.complex128), jnp.asarray(_PAULI))


def _bell_operator(n, c):
    obs = _observables(n)
    alice, bob = obs[:2], obs[2:]
    ops = jnp.einsum("xab,ycd->xyacbd", alice, bob).reshape(2, 2, 4, 4)
    return jnp.einsum("xy,xyij->ij", c.astype(jnp.complex128), ops)


def _top_value(n, c):
    return jnp.linalg.eigvalsh(_bell_operator(n, c))[-1]


@functools.partial(jax.jit, static_argnames=("adam_steps", "lbfgs_steps"))
def _qubit_solve(n0, c, *, adam_steps: int, lbfgs_steps: int):
    def loss(n):
        return -_top_value(n, c)

    def one(n):
        opt = optax.adam(optax.cosine_decay_schedule(0.05, adam_steps, alpha=1e-2))

        def adam_step(carry, _):
            n, s = carry
            g = jax.grad(loss)(n)
            u, s = opt.update(g, s, n)
            return (optax.apply_updates(n, u), s), None

        (n, _), _ = jax.lax.scan(adam_step, (n, opt.init(n)), None, length=adam_steps)
        lb = optax.lbfgs()
        vg = optax.value_and_grad_from_state(loss)

        def lbfgs_step(carry, _):
            n, s = carry
            value, g = vg(n, state=s)
            u, s = lb.update(g, s, n, value=value, grad=g, value_fn=loss)
            return (optax.apply_updates(n, u), s), None

        (n, _), _ = jax.lax.scan(lbfgs_step, (n, lb.init(n)), None, length=lbfgs_steps)
        return n, -loss(n)

    return jax.vmap(one)(n0)


def qubit_bell_maximum(
    theta: float,
    phi: float,
    omega: float,
    *,
    starts: int = 32,
    seed: int = 0,
    adam_steps: int = 400,
    lbfgs_steps: int = 150,
) -> dict[str, np.ndarray | float]:
    r"""Maximise <B_theta,phi,omega> (eq. 2) over two-qubit strategies; report the optimum.

    Each party measures +-1 observables :math:`\hat n \cdot \vec\sigma` with general Bloch
    vectors (12 real parameters); for given observables the best state is the top eigenvector
    of the Bell operator :math:`W = \sum_{xy} c_{xy} A_x \otimes B_y`, so the objective is its
    largest eigenvalue. optax Adam then L-BFGS, ``starts`` random restarts vmapped, float64.
    Only the coefficients of eq. (2) enter; eqs. (5) and (6) are what the result is compared
    with.

    Parameters
    ----------
    theta, phi, omega : float
        The tuple, radians.
    starts, seed, adam_steps, lbfgs_steps : int
        Restarts, their seed, and the optimiser's steps.

    Returns
    -------
    dict
        ``value`` (the maximum of <B>), ``correlators`` (2, 2) of the optimal strategy,
        ``schmidt`` (the state's two Schmidt coefficients), ``alice_dot`` (:math:`\hat n_{A_0}
        \cdot \hat n_{A_1}`), ``bob_dot``; all invariant under the symmetries named in the
        module docstring.

    References
    ----------
    Prop. 1(ii) and (iv), eqs. (2), (5), (6) of Wooltorton, Brown & Colbeck, PRL 132, 210802
    (2024).
    """
    with x64_scope():
        c = jnp.asarray(bell_coefficients(float(theta), float(phi), float(omega)))
        n0 = jnp.asarray(np.random.default_rng(seed).normal(size=(starts, 4, 3)))
        n, values = _qubit_solve(n0, c, adam_steps=adam_steps, lbfgs_steps=lbfgs_steps)
        best = int(jnp.argmax(values))
        nb = n[best]
        w, v = jnp.linalg.eigh(_bell_operator(nb, c))
        psi = v[:, -1]
        obs = _observables(nb)
        corr = np.array(
            [
                [
                    float(jnp.real(jnp.conj(psi) @ jnp.kron(obs[x], obs[2 + y]) @ psi))
                    for y in (0, 1)
                ]
                for x in (0, 1)
            ]
        )
        unit = np.asarray(nb / jnp.sqrt(jnp.sum(nb**2, axis=-1, keepdims=True)))
        schmidt = np.linalg.svd(np.asarray(psi).reshape(2, 2), compute_uv=False)
    return {
        "value": float(w[-1]),
        "correlators": corr,
        "schmidt": schmidt,
        "alice_dot": float(unit[0] @ unit[1]),
        "bob_dot": float(unit[2] @ unit[3]),
    }


def _eq6_correlators_np(theta, phi, omega):
    """E[x, y] = sin(alpha_x + beta_y) of eq. (6) (alpha = (0, theta), beta = (phi, omega)),
    NumPy, shape (..., 2, 2)."""
    a = np.stack(np.broadcast_arrays(np.zeros_like(theta), theta), axis=-1)
    b = np.stack(np.broadcast_arrays(phi, omega), axis=-1)
    return np.sin(a[..., :, None] + b[..., None, :])


def perfect_randomness_planes_max(n: int = 1200) -> float:
    r"""Largest max CHSH-type value over self-testing tuples with global rate 2, by brute force.

    At the quantum bound of a self-testing tuple the global rate is 2 exactly when one
    correlator of eq. (6) vanishes, :math:`\sin(\alpha_x + \beta_y) = 0`: the tuple lies on one
    of 8 planes (phi or omega in {0, pi}; phi or omega = -theta or pi - theta). Each is
    sampled on an n x n grid of its two free angles in [0, 2 pi) (n divisible by 6 puts
    theta = phi = pi/3 on the grid); condition (4) and the eight CHSH-type values are
    evaluated in NumPy from their formulas, independently of jaxbell's searches.

    Returns
    -------
    float
        The largest max CHSH-type value found where (4) holds strictly (Prop. 2: 3 sqrt(3)/2).
    """
    if int(n) != n or n < 6:
        raise ValueError(f"n must be an integer >= 6, got {n!r}")
    u = np.linspace(0.0, 2 * PI, int(n), endpoint=False)
    x, y = np.meshgrid(u, u, indexing="ij")
    best = -np.inf
    for c in (0.0, PI):
        planes = (
            (x, np.full_like(x, c), y),  # E00 = sin(phi) = 0
            (x, y, np.full_like(x, c)),  # E01 = sin(omega) = 0
            (x, c - x, y),  # E10 = sin(theta + phi) = 0
            (x, y, c - x),  # E11 = sin(theta + omega) = 0
        )
        for t, ph, w in planes:
            cond = np.cos(t + ph) * np.cos(ph) * np.cos(t + w) * np.cos(w) < -1e-12
            e = _eq6_correlators_np(t, ph, w).reshape(t.shape + (4,))
            chsh = np.abs(e.sum(-1)[..., None] - 2 * e).max(-1)  # the 8 CHSH-type values
            if np.any(cond):
                best = max(best, float(chsh[cond].max()))
    return best


def key_pair_entropy_from_matrices(theta: float, phi: float, omega: float) -> float:
    r"""H(A|X=0,Y=0,B) in bits of the strategy of eq. (6), from its matrices (NumPy).

    The state :math:`(|00\rangle + i|11\rangle)/\sqrt 2`, observables
    :math:`\cos a\,\sigma_X + \sin a\,\sigma_Y` at Alice's angle 0 and Bob's angle phi; the
    joint distribution :math:`p(a, b) = \langle\psi| P_a \otimes Q_b |\psi\rangle` gives
    H(AB) - H(B). Independent of :mod:`jaxbell.entropy` (the paper's closed form is
    h((1 + sin phi)/2)); theta and omega do not enter.
    """
    del theta, omega  # the key pair (0, 0) uses Alice's x = 0 and Bob's y = 0 only
    sx = np.array([[0, 1], [1, 0]], dtype=complex)
    sy = np.array([[0, -1j], [1j, 0]], dtype=complex)
    psi = np.array([1, 0, 0, 1j], dtype=complex) / math.sqrt(2)

    def proj(angle, outcome):
        return (np.eye(2) + (-1) ** outcome * (math.cos(angle) * sx + math.sin(angle) * sy)) / 2

    p = np.array(
        [[np.real(psi.conj() @ np.kron(proj(0.0, a), proj(phi, b)) @ psi) for b in (0, 1)]
         for a in (0, 1)]
    )  # fmt: skip
    p = np.clip(p, 0.0, 1.0)

    def shannon(q):
        q = q[q > 0]
        return float(-np.sum(q * np.log2(q)))

    return max(shannon(p.ravel()) - shannon(p.sum(axis=0)), 0.0)


# --------------------------------------------------------------------------------------------
# the marked points of the figures: orbits of a search result under exact symmetries


def _orbit(point, maps: Iterable[Callable], window) -> np.ndarray:
    """All images of ``point`` under the group the ``maps`` generate, angles taken mod 2 pi,
    that fall inside ``window`` (a (lo, hi) pair per coordinate)."""
    maps = list(maps)

    def canon(p):
        return tuple(round(float(np.mod(x, 2 * PI)), 9) % round(2 * PI, 9) for x in p)

    seen = {canon(point): np.asarray(point, float)}
    todo = [np.asarray(point, float)]
    while todo:
        p = todo.pop()
        for f in maps:
            q = np.asarray(f(p), float)
            key = canon(q)
            if key not in seen:
                seen[key] = q
                todo.append(q)
    out = []
    for p in seen.values():
        q = [lo + np.mod(x - lo, 2 * PI) for x, (lo, _) in zip(p, window, strict=True)]
        if all(lo - 1e-12 <= x <= hi + 1e-12 for x, (lo, hi) in zip(q, window, strict=True)):
            out.append(q)
    return np.array(sorted(out))


#: symmetries of max_chsh in the omega = pi plane, on (theta, phi): a pi shift of theta
#: (Alice's x = 1 outcome flipped), of phi (Bob's y = 0 outcome flipped), and
#: (theta, phi) -> (-theta, -phi) (all correlators negated, omega -> -omega = omega mod 2 pi)
_FIG1_MAPS = (
    lambda p: (p[0] + PI, p[1]),
    lambda p: (p[0], p[1] + PI),
    lambda p: (-p[0], -p[1]),
)
#: symmetries of max_chsh in the phi = pi/2 plane, on (theta, omega): pi shifts of theta and
#: omega (outcome flips), and (theta, omega) -> (-theta, pi - omega), which leaves every
#: correlator (1, sin w, cos t, sin(t + w)) unchanged
_FIG2_MAPS = (
    lambda p: (p[0] + PI, p[1]),
    lambda p: (p[0], p[1] + PI),
    lambda p: (-p[0], PI - p[1]),
)


def _chsh_maxima(points, to_tuple, value, extra=None) -> np.ndarray:
    """The points (rows) where I_CHSH (the standard expression) equals ``value``: the crosses
    of the paper's figures mark maxima of I_CHSH, not of all eight CHSH-type values."""
    keep = []
    for p in points:
        t, ph, w = to_tuple(p)
        e = np.asarray(strategy_correlators(t, ph, w))
        if abs(float(chsh_value(e)) - value) <= 1e-9 and (extra is None or extra(e)):
            keep.append(p)
    return np.array(keep).reshape(-1, 2)


@functools.lru_cache(maxsize=8)
def _searches(seed: int = 0) -> dict[str, object]:
    """The searches every part of the pipeline shares (cached: each runs once)."""
    return {
        "pr": max_chsh(perfect_randomness=True, seed=seed),
        "pr_plane": max_chsh(perfect_randomness=True, fixed={"omega": FIG1_OMEGA}, seed=seed),
        "key_one": max_chsh(min_key_rate=1.0, seed=seed),
        "key_one_pr": max_chsh(min_key_rate=1.0, perfect_randomness=True, seed=seed),
        "limit": max_chsh(fixed={"phi": FIG2_PHI}, require_self_testing=False, seed=seed),
        "limit_pr": max_chsh(
            fixed={"phi": FIG2_PHI}, perfect_randomness=True, require_self_testing=False, seed=seed
        ),
    }


def figure1_marks(seed: int = 0) -> np.ndarray:
    """(theta, phi) of the maxima of I_CHSH = 3 sqrt(3)/2 in Fig. 1's window (omega = pi)."""
    r = _searches(seed)["pr_plane"]
    pts = _orbit((r.theta, r.phi), _FIG1_MAPS, (FIG1_THETA, FIG1_PHI))
    return _chsh_maxima(pts, lambda p: (p[0], p[1], FIG1_OMEGA), r.supremum)


def figure2_marks(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(theta, omega) of the maxima of I_CHSH at phi = pi/2 in Fig. 2's window: 5/2, and
    1 + sqrt(2) with E01 = 0 (the construction of Prop. 5: randomness from X = 0, Y = 1)."""
    s = _searches(seed)
    window = (FIG2_THETA, FIG2_OMEGA)

    def tup(p):
        return (p[0], FIG2_PHI, p[1])

    top = _chsh_maxima(
        _orbit((s["limit"].theta, s["limit"].omega), _FIG2_MAPS, window), tup, s["limit"].supremum
    )
    pr = s["limit_pr"]
    rnd = _chsh_maxima(
        _orbit((pr.theta, pr.omega), _FIG2_MAPS, window),
        tup,
        pr.supremum,
        extra=lambda e: abs(e[0, 1]) < 1e-12,
    )
    return top, rnd


# --------------------------------------------------------------------------------------------
# datasets


def figure1_grid(n: int = 401, *, seed: int = 0) -> xr.Dataset:
    """Fig. 1's data: :func:`jaxbell.evaluate_grid` on the omega = pi plane, theta in [0, pi],
    phi in [-pi/2, pi/2], n x n points; the maxima of I_CHSH as attributes."""
    ds = evaluate_grid(
        np.linspace(*FIG1_THETA, n), np.linspace(*FIG1_PHI, n), FIG1_OMEGA, progress=False
    )
    marks = figure1_marks(seed)
    ds.attrs.update(
        figure="Fig. 1 of Wooltorton, Brown & Colbeck (2024): the omega = pi plane",
        crosses_theta=marks[:, 0],
        crosses_phi=marks[:, 1],
        crosses_value=THREE_SQRT3_HALF if marks.size else np.nan,
        crosses_description="maxima of I_CHSH over the self-testing tuples of the plane "
        "(found by jaxbell.max_chsh and its symmetric images)",
    )
    return ds


def figure2_grid(n: int = 401, *, seed: int = 0) -> xr.Dataset:
    """Fig. 2's data: :func:`jaxbell.evaluate_grid` at the limit phi = pi/2, theta in
    [0, 2 pi], omega in [pi/2, 5 pi/2], n x n points; the maxima of I_CHSH as attributes."""
    ds = evaluate_grid(
        np.linspace(*FIG2_THETA, n), FIG2_PHI, np.linspace(*FIG2_OMEGA, n), progress=False
    )
    top, rnd = figure2_marks(seed)
    ds.attrs.update(
        figure="Fig. 2 of Wooltorton, Brown & Colbeck (2024): the limit phi = pi/2",
        crosses_theta=top[:, 0],
        crosses_omega=top[:, 1],
        crosses_value=float(_searches(seed)["limit"].supremum),
        crosses_description="maxima of I_CHSH at phi = pi/2 (jaxbell.max_chsh without "
        "condition (4), and its symmetric images)",
        randomness_crosses_theta=rnd[:, 0],
        randomness_crosses_omega=rnd[:, 1],
        randomness_crosses_value=float(_searches(seed)["limit_pr"].supremum),
        randomness_crosses_description="maxima of I_CHSH at phi = pi/2 with E01 = 0",
    )
    return ds


def tradeoff(n: int = 31, *, restarts: int = 8, seed: int = 0) -> xr.Dataset:
    """The trade-off curve: :func:`jaxbell.tradeoff_curve` on ``n`` epsilon bounds, log-spaced
    from 1e-6 to h(1/4) bits."""
    eps = np.geomspace(1e-6, float(binary_entropy(0.25)), n)
    with x64_scope():
        eps[-1] = float(binary_entropy(np.float64(0.25)))
    return tradeoff_curve(eps, restarts=restarts, seed=seed)


# --------------------------------------------------------------------------------------------
# claims


@dataclasses.dataclass(frozen=True)
class Claim:
    """One claim of the paper, the value computed, the tolerance, and the verdict.

    ``kind`` says how to read it: ``"value"`` -- ``computed`` is compared with the paper's
    ``paper_value``; ``"deviation"`` -- ``computed`` is the largest deviation from what the
    paper states (``paper``), ideally 0; ``"check"`` -- ``computed`` is 1 when the stated
    behaviour occurred, else 0.
    """

    id: str
    proposition: str
    claim: str
    paper: str
    paper_value: float
    computed: float
    error: float
    tolerance: float
    passed: bool
    method: str
    kind: str = "value"

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def _claim(id, proposition, claim, paper, paper_value, computed, tolerance, method, error=None,
           kind=None):  # fmt: skip
    if kind is None:
        kind = "deviation" if error is not None and paper_value == 0.0 else "value"
    err = abs(computed - paper_value) if error is None else error
    passed = bool(np.isfinite(err) and err <= tolerance)
    return Claim(id, proposition, claim, paper, float(paper_value), float(computed), float(err),
                 float(tolerance), passed, method, kind)  # fmt: skip


def _random_self_testing(k: int, seed: int, min_margin: float = 0.05) -> np.ndarray:
    """k random tuples well inside the self-testing region (margin of (4) > min_margin)."""
    rng = np.random.default_rng(seed)
    out = []
    while len(out) < k:
        t = rng.uniform(0, 2 * PI, 3)
        if float(self_testing_margin(*t)) > min_margin:
            out.append(t)
    return np.array(out)


def _claims_prop1(p, seed) -> list[Claim]:
    tuples = _random_self_testing(p["qubit_tuples"], seed + 11)
    dv, de, ds, dd = [], [], [], []
    for t, ph, w in tuples:
        res = qubit_bell_maximum(t, ph, w, starts=p["qubit_starts"], seed=seed)
        eq = float(quantum_bound(t, ph, w))
        dv.append(abs(res["value"] - abs(eq)) / abs(eq))
        e6 = np.sign(eq) * np.asarray(strategy_correlators(t, ph, w))
        de.append(np.max(np.abs(res["correlators"] - e6)))
        ds.append(np.max(np.abs(res["schmidt"] - 1 / math.sqrt(2))))
        dd.append(max(abs(res["alice_dot"] - math.cos(t)), abs(res["bob_dot"] - math.cos(w - ph))))
    how = (
        f"{len(tuples)} random tuples with margin of (4) > 0.05; optax Adam + L-BFGS over "
        f"two-qubit strategies (general Bloch vectors, {p['qubit_starts']} restarts)"
    )
    return [
        _claim("1ii-value", "Prop. 1(ii)", "max of <B> over qubit strategies = |eta^Q| (eq. 5)",
               "|eta^Q|", 0.0, max(dv), 1e-9, how + "; max relative deviation", error=max(dv)),
        _claim("1iv-correlators", "Prop. 1(iv)",
               "the maximising strategy has the correlators of eq. (6) (times sign eta^Q)",
               "E = sin(alpha_x + beta_y)", 0.0, max(de), 1e-5,
               how + "; max |E_opt - sign(eta^Q) E_eq6|", error=max(de)),
        _claim("1iv-state", "Prop. 1(iv)",
               "the maximising state is maximally entangled (Schmidt coefficients 1/sqrt 2)",
               "1/sqrt(2)", 0.0, max(ds), 1e-5, how + "; max |Schmidt - 1/sqrt 2|",
               error=max(ds)),
        _claim("1iv-measurements", "Prop. 1(iv)",
               "the maximising measurements have A0.A1 = cos(theta), B0.B1 = cos(omega - phi)",
               "cos(theta), cos(omega - phi)", 0.0, max(dd), 1e-5,
               how + "; max deviation of the Bloch-vector overlaps", error=max(dd)),
    ]  # fmt: skip


def _find_grid(svals, epsvals, *, randomness, seed):
    """find_tuple over a grid: (worst |max_chsh - s|, all converged, worst constraint slack)."""
    worst, ok = 0.0, True
    for s in svals:
        for e in epsvals:
            kw = {} if e is None else {"max_epsilon": float(e)}
            r = find_tuple(float(s), perfect_randomness=randomness, seed=seed, **kw)
            good = (
                r.converged
                and r.self_testing
                and (e is None or r.epsilon <= e)
                and (not randomness or r.global_rate == 2.0)
            )
            ok &= bool(good)
            worst = max(worst, abs(r.max_chsh - s) if good else math.inf)
    return worst, ok


def _claims_prop2(p, seed, fig1) -> list[Claim]:
    s = _searches(seed)
    pr, plane = s["pr"], s["pr_plane"]
    marks = figure1_marks(seed)
    dist = (
        float(np.min(np.hypot(marks[:, 0] - PI / 3, marks[:, 1] - PI / 3)))
        if marks.size
        else math.inf
    )
    region = fig1.self_testing & (fig1.global_rate == 2)
    grid_max = float(fig1.max_chsh.where(region).max())
    svals = np.linspace(2.0, THREE_SQRT3_HALF, p["find_s"] + 1)[1:]
    svals[0] = 2.0 + 1e-3
    worst, ok = _find_grid(svals, [None], randomness=True, seed=seed)
    try:
        find_tuple(THREE_SQRT3_HALF + 1e-6, perfect_randomness=True, seed=seed)
        refused = False
    except ValueError:
        refused = True
    planes_max = perfect_randomness_planes_max(p["planes_n"])
    above = max(planes_max - THREE_SQRT3_HALF, 0.0) if refused else math.inf
    return [
        _claim("2-sup", "Prop. 2",
               "sup of max_chsh over self-testing tuples with global_rate = 2 is 3 sqrt(3)/2",
               "3*sqrt(3)/2", THREE_SQRT3_HALF, pr.supremum, 1e-9,
               f"jaxbell.max_chsh(perfect_randomness=True): attained={pr.supremum_attained}, "
               f"{pr.restarts_at_best} restarts agree"),
        _claim("2-tuple", "Prop. 2 / Fig. 1", "reached at theta = phi = pi/3 with omega = pi",
               "(pi/3, pi/3)", 0.0, dist, 1e-6,
               f"max_chsh(perfect_randomness=True, fixed={{'omega': pi}}) = {plane.max_chsh:.15f}; "
               "distance of its I_CHSH-maximising images in Fig. 1's window to (pi/3, pi/3)",
               error=dist),
        _claim("2-grid", "Prop. 2 / Fig. 1",
               "no grid point of Fig. 1 exceeds 3 sqrt(3)/2 where (4) holds",
               "3*sqrt(3)/2", THREE_SQRT3_HALF, grid_max, 1e-12,
               f"{fig1.sizes['theta']}x{fig1.sizes['phi']} grid; excess over 3 sqrt(3)/2",
               error=max(grid_max - THREE_SQRT3_HALF, 0.0)),
        _claim("2-range", "Prop. 2", "every s in (2, 3 sqrt(3)/2] is reached with global_rate 2",
               "(2, 3*sqrt(3)/2]", 0.0, worst, 1e-9,
               f"find_tuple(s, perfect_randomness=True) for s in {np.round(svals, 4).tolist()}: "
               f"all converged={ok}; worst |max_chsh - s|", error=worst if ok else math.inf),
        _claim("2-above", "Prop. 2", "no self-testing tuple with global_rate 2 exceeds 3 sqrt(3)/2",
               "3*sqrt(3)/2", THREE_SQRT3_HALF, planes_max, 1e-12,
               f"brute force (NumPy, independent of the searches): max_chsh on the 8 planes where "
               f"a correlator of eq. (6) vanishes (global_rate 2), {p['planes_n']}^2 points each, "
               f"where (4) holds; excess over 3 sqrt(3)/2; and find_tuple(3 sqrt(3)/2 + 1e-6, "
               f"perfect_randomness=True) raises ValueError: {refused}", error=above),
    ]  # fmt: skip


def _dist_to(marks, target) -> float:
    if not marks.size:
        return math.inf
    return float(np.min(np.hypot(marks[:, 0] - target[0], marks[:, 1] - target[1])))


def _claims_prop3(p, seed, curve) -> list[Claim]:
    s = _searches(seed)
    k1 = s["key_one"]
    top, _ = figure2_marks(seed)
    dist = min(_dist_to(top, (PI / 3, 5 * PI / 6)), _dist_to(top, (5 * PI / 3, 13 * PI / 6)))
    h_quarter = float(binary_entropy(0.25))
    epsvals = np.geomspace(1e-6, h_quarter, p["find_eps"])
    svals = np.linspace(2.0, FIVE_HALVES, p["find_s"] + 1)[1:]
    svals[0] = 2.0 + 1e-3
    worst, ok = _find_grid(svals, epsvals, randomness=False, seed=seed)
    h_limit = np.asarray(pair_entropies_at_quantum_bound(PI / 3, PI / 2, 5 * PI / 6)).ravel()[1:]
    return [
        _claim("3-sup", "Prop. 3", "sup of max_chsh with key_rate -> 1 tends to 5/2", "5/2",
               FIVE_HALVES, k1.supremum, 1e-9,
               "max_chsh(min_key_rate=1): the limit over correlators with |E| = 1; the best "
               f"self-testing tuple has epsilon = {k1.epsilon:.1e} bits and max_chsh - 5/2 = "
               f"{k1.max_chsh - FIVE_HALVES:.1e} (within 1e-4: "
               f"{abs(k1.max_chsh - k1.supremum) <= 1e-4})"),
        _claim("3-tuple", "Prop. 3 / Fig. 2",
               "the 5/2 limit is at theta = pi/3, omega = 5 pi/6 (and 5 pi/3, 13 pi/6), "
               "phi -> pi/2",
               "(pi/3, 5pi/6)", 0.0, dist, 1e-6,
               f"max_chsh(fixed={{'phi': pi/2}}, require_self_testing=False); the key -> 1 "
               f"tuple has |phi - pi/2| = {abs(k1.phi - PI / 2):.1e}; distance of the "
               "I_CHSH-maximising images to the paper's points", error=dist),
        _claim("3-range", "Prop. 3",
               "every s in (2, 5/2] with key_rate >= 1 - eps for every eps in (0, h(1/4)]",
               "(2, 5/2] x (0, h(1/4)]", 0.0, worst, 1e-9,
               f"find_tuple(s, max_epsilon=eps) for s in {np.round(svals, 4).tolist()}, eps in "
               f"{np.array2string(epsvals, precision=2)}: all converged={ok}; worst |max_chsh - s|",
               error=worst if ok else math.inf),
        _claim("3-h14", "Prop. 3", "2 - (3/4) log2 3 = h(1/4), the entropy H(A|X,Y,B) of the "
               "three non-key input pairs at the 5/2 limit", "2 - (3/4) log2(3)",
               H_QUARTER_PAPER, h_quarter, 1e-12,
               "binary_entropy(1/4); pair_entropies_at_quantum_bound(pi/3, pi/2, 5pi/6) for "
               f"(x, y) != (0, 0) = {np.round(h_limit, 15).tolist()}; error = the larger "
               "deviation", error=max(abs(h_quarter - H_QUARTER_PAPER),
                                      float(np.max(np.abs(h_limit - H_QUARTER_PAPER))))),
        *_tradeoff_claims(curve, False),
    ]  # fmt: skip


def extrapolate_limit(eps: np.ndarray, sup: np.ndarray, points: int = 5):
    """Fit ``sup = L + c eps^a`` to the ``points`` smallest eps (NumPy: a scanned over
    [0.2, 1], L and c by linear least squares); return (L, c, a), the eps -> 0 limit first."""
    x, y = np.asarray(eps, float)[:points], np.asarray(sup, float)[:points]
    best = (np.inf, np.nan, np.nan, np.nan)
    for a in np.linspace(0.2, 1.0, 801):
        A = np.stack([np.ones_like(x), x**a], axis=1)
        coef = np.linalg.lstsq(A, y, rcond=None)[0]
        r = float(np.sum((A @ coef - y) ** 2))
        if r < best[0]:
            best = (r, float(coef[0]), float(coef[1]), float(a))
    return best[1:]


def _tradeoff_claims(curve, randomness: bool) -> list[Claim]:
    c = curve.sel(perfect_randomness=randomness)
    eps, sup = c.max_epsilon.values, c.max_chsh.values
    limit = ONE_PLUS_SQRT2 if randomness else FIVE_HALVES
    name = "1 + sqrt(2)" if randomness else "5/2"
    rises = float(np.max(np.maximum(-np.diff(sup), 0.0))) if sup.size > 1 else 0.0
    conv = bool(np.all(c.converged.values))
    above = bool(np.all(sup > limit))
    L, coef, a = extrapolate_limit(eps, sup)
    tag = "T-pr" if randomness else "T-key"
    prop = "Prop. 5 (new curve)" if randomness else "Prop. 3 (new curve)"
    what = "key_rate >= 1 - eps" + (" and global_rate 2" if randomness else "")
    return [
        _claim(f"{tag}-monotone", prop,
               f"sup max_chsh with {what} decreases as eps decreases and stays above {name}",
               "monotone, above the limit", 0.0, rises, 1e-9 if (conv and above) else -1.0,
               f"tradeoff_curve on {sup.size} eps from {eps[0]:.0e} to {eps[-1]:.3f}: all "
               f"converged={conv}, all above {name}={above}; deviation = largest increase of "
               "the supremum as eps decreases", error=rises),
        _claim(f"{tag}-limit", prop, f"... and tends to {name} as eps -> 0", name, limit, L,
               5e-5, f"fit sup = L + c eps^a to the {min(5, sup.size)} smallest eps: L = "
               f"{L:.9f}, c = {coef:.3f}, a = {a:.3f}; S(eps_min) - ({name}) = "
               f"{sup[0] - limit:.2e}"),
    ]  # fmt: skip


def _claims_prop4(p, seed, fig2) -> list[Claim]:
    s = _searches(seed)
    lim = s["limit"]
    nonlocal_ = fig2.max_chsh > 2
    e = (
        fig2.correlators.where(nonlocal_)
        .stack(pt=("theta", "phi", "omega"))
        .dropna("pt", how="any")
    )
    e = np.asarray(e.transpose("pt", "x", "y"))
    b, ex = (np.asarray(a) for a in tlm_residual(e))
    grid_max = float(fig2.max_chsh.max())
    h00_closed = float(
        np.max(
            np.asarray(
                pair_entropies_at_quantum_bound(
                    fig2.theta.values[:, None], FIG2_PHI, fig2.omega.values[None, :]
                )
            )[..., 0, 0]
        )
    )
    # independently: the joint distribution of the key pair from the matrices of eq. (6), at
    # the grid's phi (theta and omega do not enter the pair X = 0, Y = 0)
    phis = np.unique(np.asarray(fig2.phi.values, float))
    h00_matrices = max(key_pair_entropy_from_matrices(0.0, float(ph), 0.0) for ph in phis)
    e00 = float(np.max(np.abs(1.0 - np.asarray(fig2.correlators.sel(x=0, y=0)))))
    h00 = max(h00_closed, h00_matrices)
    return [
        _claim("4-sup", "Prop. 4 / Fig. 2", "at phi = pi/2 the correlators of eq. (6) reach "
               "max_chsh up to 5/2", "5/2", FIVE_HALVES, lim.supremum, 1e-9,
               f"max_chsh(fixed={{'phi': pi/2}}, require_self_testing=False); Fig. 2 grid max "
               f"{grid_max:.12f} (excess {max(grid_max - FIVE_HALVES, 0):.1e})"),
        _claim("4-boundary", "Props. 4, 6", "the nonlocal correlators at phi = pi/2 lie on the "
               "boundary of the quantum set (arcsine equality)", "| |T_k| - pi | = 0", 0.0,
               float(np.max(b)), 1e-12,
               f"tlm_residual on the {e.shape[0]} nonlocal points of Fig. 2's grid; max excess "
               f"over pi {float(np.max(ex)):.1e} (<= 0: quantum)", error=float(np.max(b))),
        _claim("4-key", "Prop. 4", "at phi = pi/2 the key input pair has H(A|X=0,Y=0,B) = 0 "
               "(key rate 1 from the four correlators)", "H(A|X=0,Y=0,B) = 0", 0.0, h00, 1e-12,
               "the larger of: H(AB) - H(B) of the key pair's distribution computed from the "
               f"matrices of eq. (6) (NumPy) = {h00_matrices:.1e}, and the max over Fig. 2's "
               f"grid of h((1 + E00)/2) (pair_entropies_at_quantum_bound) = {h00_closed:.1e}; "
               f"the grid's E00 is 1 to {e00:.1e}", error=h00),
    ]  # fmt: skip


def _claims_prop5(p, seed, curve) -> list[Claim]:
    s = _searches(seed)
    k1 = s["key_one_pr"]
    _, rnd = figure2_marks(seed)
    dist = min(_dist_to(rnd, (PI / 4, PI)), _dist_to(rnd, (7 * PI / 4, 2 * PI)))
    h5 = float(binary_entropy(H_PROP5_ARG))
    epsvals = np.geomspace(1e-6, h5, p["find_eps"] + 1)[:-1]  # the range is open at h5
    svals = np.linspace(2.0, ONE_PLUS_SQRT2, p["find_s"] + 1)[1:]
    svals[0] = 2.0 + 1e-3
    worst, ok = _find_grid(svals, epsvals, randomness=True, seed=seed)
    h_limit = np.asarray(pair_entropies_at_quantum_bound(PI / 4, PI / 2, PI)).ravel()
    return [
        _claim("5-sup", "Prop. 5", "sup of max_chsh with global_rate 2 and key_rate -> 1 tends "
               "to 1 + sqrt(2)", "1 + sqrt(2)", ONE_PLUS_SQRT2, k1.supremum, 1e-9,
               "max_chsh(min_key_rate=1, perfect_randomness=True); best self-testing tuple: "
               f"epsilon = {k1.epsilon:.1e} bits, global_rate = {k1.global_rate}, "
               f"max_chsh - (1 + sqrt 2) = {k1.max_chsh - ONE_PLUS_SQRT2:.1e}"),
        _claim("5-tuple", "Prop. 5 / Fig. 2", "the limit is at theta = pi/4, omega = pi (and "
               "7pi/4, 2pi), phi -> pi/2", "(pi/4, pi)", 0.0, dist, 1e-6,
               "max_chsh(fixed={'phi': pi/2}, perfect_randomness=True, "
               "require_self_testing=False); distance of the I_CHSH-maximising images with "
               "E01 = 0 to the paper's points", error=dist),
        _claim("5-range", "Prop. 5", "every s in (2, 1 + sqrt 2] with global_rate 2 and "
               "key_rate >= 1 - eps for every eps in (0, h((2 + sqrt 2)/4))",
               "(2, 1+sqrt2] x (0, h((2+sqrt2)/4))", 0.0, worst, 1e-9,
               f"find_tuple(s, max_epsilon=eps, perfect_randomness=True) for s in "
               f"{np.round(svals, 4).tolist()}, eps in {np.array2string(epsvals, precision=2)}: "
               f"all converged={ok}; worst |max_chsh - s|", error=worst if ok else math.inf),
        _claim("5-h", "Prop. 5", "h((2 + sqrt 2)/4) is H(A|X=1,Y=y,B) at the 1 + sqrt 2 limit",
               "h((2+sqrt2)/4)", h5, float(h_limit[2]), 1e-12,
               "pair_entropies_at_quantum_bound(pi/4, pi/2, pi) = "
               f"{np.round(h_limit, 15).tolist()} (pairs 00, 01, 10, 11)",
               error=float(np.max(np.abs(h_limit[2:] - h5)))),
        *_tradeoff_claims(curve, True),
    ]  # fmt: skip


def _claims_prop6(p, seed) -> list[Claim]:
    s = _searches(seed)
    lim = s["limit_pr"]
    _, rnd = figure2_marks(seed)
    pts = np.array([(t, FIG2_PHI, w) for t, w in rnd]) if rnd.size else np.empty((0, 3))
    e = np.asarray(strategy_correlators(pts[:, 0], pts[:, 1], pts[:, 2])) if rnd.size else None
    b = float(np.max(np.asarray(tlm_residual(e)[0]))) if rnd.size else math.inf
    h = np.asarray(pair_entropies_at_quantum_bound(lim.theta, lim.phi, lim.omega))
    rates_err = max(abs(1 - float(h.min()) - 1.0), abs(1 + float(h.max()) - 2.0))
    mc = float(np.max(np.asarray(max_chsh_value(e)))) if rnd.size else math.nan
    return [
        _claim("6-sup", "Prop. 6 / Fig. 2", "at phi = pi/2 with a vanishing correlator the "
               "correlators reach max_chsh up to 1 + sqrt(2)", "1 + sqrt(2)", ONE_PLUS_SQRT2,
               lim.supremum, 1e-9, "max_chsh(fixed={'phi': pi/2}, perfect_randomness=True, "
               f"require_self_testing=False); at the crosses max_chsh = {mc:.15f}"),
        _claim("6-boundary", "Prop. 6", "those correlators lie on the boundary of the quantum "
               "set", "| |T_k| - pi | = 0", 0.0, b, 1e-12,
               f"tlm_residual at the {len(rnd)} crosses of Fig. 2 (I_CHSH = 1 + sqrt 2, E01 = 0)",
               error=b),
        _claim("6-rates", "Prop. 6", "key rate 1 and global rate 2 from the four correlators",
               "r_key = 1, r_global = 2", 0.0, rates_err, 1e-15,
               "1 - min and 1 + max of the pair entropies at the maximiser "
               f"(theta, omega) = ({lim.theta:.6f}, {lim.omega:.6f})", error=rates_err),
    ]  # fmt: skip


def compute_claims(
    *, profile: str = "default", seed: int = 0, fig1=None, fig2=None, curve=None
) -> list[Claim]:
    """Every claim of Props. 1-6 (and the trade-off curve's limits), computed and checked.

    Parameters
    ----------
    profile : {"default", "quick"}
        Run sizes (:data:`PROFILES`).
    seed : int
        Seed of every search.
    history : str, optional
        What made the run (the command line gives ``command: jaxbell reproduce ...``),
        appended to every dataset's ``history`` after the call itself.
    fig1, fig2, curve : xarray.Dataset, optional
        :func:`figure1_grid`, :func:`figure2_grid`, :func:`tradeoff` results (computed if
        not given).

    Returns
    -------
    list of Claim
        Each with the paper's value (evaluated from its formula), the computed value, the
        error, the tolerance and ``passed``.
    """
    p = PROFILES[profile]
    fig1 = figure1_grid(p["grid_n"], seed=seed) if fig1 is None else fig1
    fig2 = figure2_grid(p["grid_n"], seed=seed) if fig2 is None else fig2
    if curve is None:
        curve = tradeoff(p["tradeoff_n"], restarts=p["tradeoff_restarts"], seed=seed)
    return (
        _claims_prop1(p, seed)
        + _claims_prop2(p, seed, fig1)
        + _claims_prop3(p, seed, curve)
        + _claims_prop4(p, seed, fig2)
        + _claims_prop5(p, seed, curve)
        + _claims_prop6(p, seed)
    )


def _fmt(x: float) -> str:
    if not np.isfinite(x):
        return str(x)
    if x == 0 or 1e-3 <= abs(x) < 1e6:
        return f"{x:.15g}"
    return f"{x:.3e}"


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|")


def claims_markdown(claims: list[Claim], *, header: str = "") -> str:
    """The claims as a Markdown table (claim, paper's value, computed, error, tolerance, pass)."""
    lines = [header] if header else []
    lines += [
        "| # | proposition | claim | paper | computed | error | tolerance | pass |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for c in claims:
        if c.kind == "value":
            paper, computed = f"{c.paper} = {_fmt(c.paper_value)}", _fmt(c.computed)
        elif c.kind == "deviation":
            paper, computed = c.paper, f"deviation {c.computed:.1e}"
        else:
            paper, computed = c.paper, "yes" if c.computed == 1.0 else "no"
        lines.append(
            f"| {c.id} | {_cell(c.proposition)} | {_cell(c.claim)} | {_cell(paper)} | "
            f"{_cell(computed)} | {c.error:.1e} | {c.tolerance:.0e} | "
            f"{'pass' if c.passed else '**FAIL**'} |"
        )
    lines += ["", "How each value was computed:", ""]
    lines += [f"* **{c.id}**: {c.method}" for c in claims]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------
# the pipeline


@dataclasses.dataclass(frozen=True)
class ReproduceReport:
    """What :func:`reproduce` wrote and found."""

    out: Path
    claims: tuple[Claim, ...]
    files: tuple[Path, ...]
    seconds: dict[str, float]

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.claims)


def reproduce(
    out: str | Path = "reproduce-out",
    *,
    quick: bool = False,
    pdf: bool = False,
    progress: bool | None = None,
    quiet: bool = False,
    seed: int = 0,
    history: str | None = None,
) -> ReproduceReport:
    """Reproduce the paper: datasets, claims table and figures, written to ``out``.

    Parameters
    ----------
    out : path
        Folder for the results (created if missing): ``figure1_grid.nc``, ``figure2_grid.nc``,
        ``tradeoff.nc`` (netCDF), ``claims.md``, ``claims.json``, ``figure1.png``,
        ``figure2.png``, ``tradeoff.png`` (and ``.pdf`` with ``pdf=True``).
    quick : bool
        Small grids and searches (:data:`PROFILES` ``"quick"``): 17-25 s on two
        CPU cores instead of about a minute.
    pdf : bool
        Also write the figures as PDF.
    progress : bool or None
        Show a progress bar on stderr (None: when stderr is a terminal). Without the bar, one
        line per stage is written to stderr instead (``reproduce: [2/5] figure 2 grid: 3.1 s``).
    quiet : bool
        Write nothing to stderr: no bar, no stage lines (warnings still show). The per-call
        INFO lines of the searches and grids (``find_tuple: 128 problems in 1 call(s) ...``)
        are held back in every mode while the pipeline runs.
    seed : int
        Seed of every search.

    Returns
    -------
    ReproduceReport
        The claims (``report.passed`` is True when all pass), the files and the time per stage.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"out={str(out)!r} is a file; give a folder")
    out.mkdir(parents=True, exist_ok=True)
    profile = "quick" if quick else "default"
    p = PROFILES[profile]
    stages = ["figure 1 grid", "figure 2 grid", "trade-off curve", "claims", "figures"]
    disable = quiet or ((not sys.stderr.isatty()) if progress is None else not progress)
    bar = tqdm(stages, desc="reproduce", unit="stage", disable=disable, file=sys.stderr)
    stage_lines = disable and not quiet
    seconds: dict[str, float] = {}
    files: list[Path] = []
    state: dict[str, object] = {}

    def run(name, fn):
        bar.set_postfix_str(name)
        t0 = time.perf_counter()
        value = fn()
        seconds[name] = round(time.perf_counter() - t0, 2)
        bar.update(1)
        if stage_lines:
            print(
                f"reproduce: [{len(seconds)}/{len(stages)}] {name}: {seconds[name]:.1f} s",
                file=sys.stderr,
                flush=True,
            )
        return value

    with x64_scope(), bar, info_held_back():
        state["fig1"] = run("figure 1 grid", lambda: figure1_grid(p["grid_n"], seed=seed))
        state["fig2"] = run("figure 2 grid", lambda: figure2_grid(p["grid_n"], seed=seed))
        state["curve"] = run(
            "trade-off curve",
            lambda: tradeoff(p["tradeoff_n"], restarts=p["tradeoff_restarts"], seed=seed),
        )
        for key, name in (
            ("fig1", "figure1_grid"),
            ("fig2", "figure2_grid"),
            ("curve", "tradeoff"),
        ):
            ds = state[key]
            ds.attrs["history"] += f"; jaxbell.reproduce(quick={quick}, seed={seed})"
            if history:
                ds.attrs["history"] += f"; {history}"
            files.append(save_dataset(ds, out / f"{name}.nc", overwrite=True))
        claims = run(
            "claims",
            lambda: compute_claims(
                profile=profile, seed=seed, fig1=state["fig1"], fig2=state["fig2"],
                curve=state["curve"],
            ),
        )  # fmt: skip

        def draw():
            written = []
            for name, fn, ds in (
                ("figure1", plots.figure1, state["fig1"]),
                ("figure2", plots.figure2, state["fig2"]),
                ("tradeoff", plots.tradeoff_figure, state["curve"]),
            ):
                fig = fn(ds)
                for ext in ("png", "pdf") if pdf else ("png",):
                    path = out / f"{name}.{ext}"
                    fig.savefig(path, dpi=150 if ext == "png" else None)
                    written.append(path)
                plots.close(fig)
            return written

        files += run("figures", draw)
    header = (
        f"# Claims of Wooltorton, Brown & Colbeck, PRL 132, 210802 (2024), doi:{PAPER_DOI}\n\n"
        f"Computed by `jaxbell reproduce{' --quick' if quick else ''}` "
        f"(jaxbell {_version()}, seed {seed}, float64). "
        f"{sum(c.passed for c in claims)} of {len(claims)} claims pass.\n"
    )
    (out / "claims.md").write_text(claims_markdown(claims, header=header))
    payload = {
        "paper": f"doi:{PAPER_DOI}",
        "jaxbell": _version(),
        "profile": profile,
        "seed": seed,
        "seconds": seconds,
        "passed": all(c.passed for c in claims),
        "claims": [_jsonable(c.as_dict()) for c in claims],
    }
    (out / "claims.json").write_text(json.dumps(payload, indent=2) + "\n")
    files += [out / "claims.md", out / "claims.json"]
    return ReproduceReport(out, tuple(claims), tuple(files), seconds)


def _jsonable(d: dict) -> dict:
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in d.items()}


def _version() -> str:
    return __version__
