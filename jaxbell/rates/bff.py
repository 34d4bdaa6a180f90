r"""Certified lower bounds on DI entropies: the Brown-Fawzi-Fawzi hierarchy, solved rigorously.

The qubit-strategy values are achievable attacks (upper bounds on the device-independent
infimum); a key rate that protects a real key needs a *certified lower bound*. This module
computes one with the method of Brown, Fawzi & Fawzi [BFF] (reference [25] of the paper):
a Gauss-Radau quadrature of the logarithm turns H(A|X=x,E) into a sum of non-commutative
polynomial optimisations, each relaxed by the NPA hierarchy [NPA] into a semidefinite
programme (SDP), solved by cvxpy [CVXPY] with Clarabel (default), SCS or MOSEK.

The bound
---------
Let ``t_1 < ... < t_m = 1`` and ``w_1, ..., w_m`` be the nodes and weights of the m-point
Gauss-Radau rule on [0, 1] with the end point 1 fixed (:func:`gauss_radau`). For the outcome
projectors ``M_a`` of the key measurement (``M_a = P^a_x`` for kind "key"; for kind "global"
``M_{ab} = P^a_x Q^b_y`` and the outcome is the pair ab) [BFF, Sec. 2]

.. math::

    H(A|X{=}x,E) \;\ge\; \sum_{i=1}^{m-1} \frac{w_i}{t_i \ln 2}
        \Big(1 + \inf \sum_a \big\langle M_a (Z_a + Z_a^\dagger + (1-t_i) Z_a^\dagger Z_a)
        + t_i Z_a Z_a^\dagger \big\rangle\Big),

where the infimum runs over quantum strategies meeting the constraints (``<B_{theta,phi,omega}>
= bell_value`` of eq. (2), or the four correlators) and over Eve's operators ``Z_a``, which
commute with Alice's and Bob's. The ``i = m`` term (``t_m = 1``) is bounded in closed form by
:func:`last_node_bound`: ``2p(1-p)`` for noisy preprocessing with flip probability p, 0 without
(where no better bound exists below the quantum bound), derived in docs/rates.md ("The last
node"); ``w_m / (t_m ln 2)`` times it is added to every certified value and tangent
(:attr:`BffResult.last_node`). (With the exact infimum over ``Z_a`` the sum over all m nodes is
itself a lower bound; tests/test_bff.py checks both on
random states.) Each node is its own SDP with its own strategy (the "fast" form of [BFF]: the
infimum of a sum is at least the sum of the infima), so a point costs ``m - 1`` independent
SDPs. Bounding the ``t_m`` node by its closed form costs ``c_m (1 + inf f_1 - bound) <=
1/(m^2 ln 2)`` bits: without preprocessing 0.0113 bits at m = 8 where H = 1 with a uniform key
bit (0.0169 for global randomness with four uniform outcomes), nothing below the quantum bound
where the bound is tight (every full-rank state); the relaxation costs little more (at m = 8,
level 2: 3e-4 to 1.4e-3 bits below the tight CHSH curve of [PAB09], tests/test_bff.py).

The relaxation
--------------
Alice's and Bob's measurements are taken projective with observables ``A_x = 2 P_x - 1`` and
``B_y = 2 Q_y - 1`` (Hermitian, ``A_x^2 = 1``; Naimark), commuting with each other and with
Eve's ``Z``. The moment matrix ``G_{uv} = <u^dag v>`` [NPA] has rows (words):

* Alice and Bob: 1, A_x', B_y', A_x' B_y' for all inputs; at ``level=2`` also A_0 A_1, A_1 A_0,
  B_0 B_1, B_1 B_0 (all words of length <= 2, NPA level 2);
* Eve: ``h z`` for each of Eve's letters z, z^dag and each head h in {1, A_x', B_y'} (words of
  length <= 2 with one Eve letter) and, at level 2, in {A_x' B_y'} (the span of BFF's extra
  monomials ``P Q Z``); at level 1 for kind "global" also h = A_x B_y on the key inputs;
* with ``extras=True`` (the default for kind "key"), the span of BFF's extra monomials for the
  objective's quadratic terms on the key inputs: ``h Z_s^dag Z_s'`` (key, h in {1, A_x}) or
  ``h Z_s Z_s'^dag`` (global, h in {1, A_x, B_y, A_x B_y}), s and s' the letters of one pair
  of outcomes. For kind "key" they add up to 2e-4 bits; for kind "global" they changed no
  bound by more than 1.4e-5 bits, either way, about the certificate's own correction (13
  points: CHSH, Props. 2, 3, 5, a random tuple; m = 4, 8; Bell value and correlator
  constraints) at 3-4x the time, so "global" leaves them out by default (``extras=None``);
* with ``eve_pairs=True`` (level 2): every product of two Eve letters (the rest of NPA level 2;
  for kind "key" at m = 8 it moves the bound by <= 4e-5 bits for 4-6x the time).

Two symmetries shrink the SDP without loosening it:

* *real moments*: the constraints and the objective have real coefficients, so the complex
  conjugate strategy is feasible with the same value and the average of the two moment
  matrices is real: ``y_w = y_{w^dag}`` real.
* *outcome flip*: ``A_x -> -A_x, B_y -> -B_y`` (all outcomes relabelled) with Eve's operators
  of flipped outcomes swapped leaves the correlators and the objective invariant. In the letters
  ``Z_s = Z_o + Z_o'`` (s even) and ``Z_o - Z_o'`` (s odd), o' the flipped outcome, every word is
  even or odd, the odd moments of the averaged strategy vanish, and the moment matrix splits
  into two blocks.

Kind "key" at level 2: blocks of 31 and 26 rows, 272 real moments (the complex moment matrix
of the same words would have 57 rows); kind "global" at level 2: 45 and 40 rows, 512 moments
(61 and 56 rows, 1108 moments with the extras). See :func:`sdp_sizes`.

Rigour despite solver tolerance
-------------------------------
The value returned is not the solver's objective but a bound built from its *dual* point and
corrected for every residual. Eve's optimal operators are bounded,

.. math::  \|Z_a\| \le \beta(t) = \frac{1}{2\sqrt{t(1-t)}} :

the minimiser over ``Z_a`` solves ``t sigma Z + (1 - t) Z sigma_a = -sigma_a`` (``sigma_a``
Eve's state given a, ``sigma = sum_a sigma_a >= sigma_a``), so ``Z = -int_0^inf e^{-st sigma}
sigma_a e^{-s(1-t) sigma_a} ds``, and Cauchy-Schwarz in s with ``sigma_a <= sigma`` gives
``|<u, Z v>|^2 <= 1/(2t) * 1/(2(1-t))`` for unit u, v (sharper than BFF's ``(3/2) max(1/t,
1/(1-t))``; tests/test_bff.py checks it on random states). Restricting Eve to such operators
leaves the infimum unchanged. Then every word w with k Eve letters has ``||w|| <= (2 beta)^k``
(``||Z_o +- Z_o'|| <= 2 beta``). The SDP is solved in the scaled moments ``y_w = <w> / (2
beta)^k``: its moment matrix G(y) has diagonal entries ``<= 1`` (added as constraints ``y <= 1``
on the diagonal moments with Eve letters, which also keeps the solver's primal bounded), so
``|G_uv| <= 1`` and ``lambda_max(G) <= n``.

Write the relaxation as ``min c.y`` s.t. ``G(y) = F_0 + sum_k y_k F_k >= 0`` (per block),
``A y = b`` and ``H y <= 1``. For any symmetric S, any lam and any ``mu >= 0`` with
``<S, F_k> = c_k - (A^T lam)_k + (H^T mu)_k`` for all k, every feasible y has

.. math::  c\cdot y = D + \langle S, G(y)\rangle + \mu\cdot(1 - Hy),\qquad
           D = -\langle S, F_0\rangle + b\cdot\lambda - \mu\cdot 1 .

From the solver's dual matrix X, multipliers lam and ``mu`` (clipped at 0) we form S = X plus
the residual of each equation spread over that moment's entries, so the identity holds
exactly. If S is not PSD, ``<S, G> >= -sum_{e_j < 0} |e_j| min((sum_u |v_{ju}|)^2, n)`` over
its eigenpairs ``(e_j, v_j)``, plus an allowance for the eigensolver's backward error. The
certified node value is ``D`` minus this correction minus 1e-12 (float64 rounding in forming
D). A failed or infeasible solve, or a total correction above ``max_correction`` bits, gives
NaN with its status, never 0. Typical corrections are 1e-7 to 1e-5 bits per point. A
certified sum below 0 is reported as 0 (H >= 0 for a classical outcome).

The solver's own status is kept beside the certificate's (``BffResult.solver_status``,
:data:`SOLVER_STATUS_FLAGS`): Clarabel at the tolerances used here (1e-9) usually ends in its
reduced-accuracy "AlmostSolved" (cvxpy's "optimal_inaccurate"); the dual point it returns is
certified like any other. Every solve starts from scratch (no warm start, no solver object
reused between solves), so a point gives the same bits however often and in whatever order it
is solved in a process, and in a fresh one (with the same number of solver threads).

References
----------
[BFF] P. Brown, H. Fawzi and O. Fawzi, "Device-independent lower bounds on the conditional von
Neumann entropy", Quantum 8, 1445 (2024), arXiv:2106.13692.
[NPA] M. Navascues, S. Pironio and A. Acin, "A convergent hierarchy of semidefinite programs
characterizing the set of quantum correlations", New J. Phys. 10, 073013 (2008).
[PAB09] S. Pironio, A. Acin, N. Brunner, N. Gisin, S. Massar and V. Scarani, "Device-independent
quantum key distribution secure against collective attacks", New J. Phys. 11, 045021 (2009).
[CVXPY] S. Diamond and S. Boyd, "CVXPY: A Python-embedded modeling language for convex
optimization", J. Mach. Learn. Res. 17, 1 (2016); P. J. Goulart and Y. Chen, "Clarabel: An
interior-point solver for conic programs with quadratic objectives", arXiv:2405.12762.
Eqs. (1), (2), (5), (6) and Props. 4, 6 of Wooltorton, Brown & Colbeck, PRL 132, 210802 (2024).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import os
import sys
import time
import warnings
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike
from tqdm import tqdm

from jaxbell._checks import as_angles, as_correlators, as_real_array, options_from_mapping
from jaxbell._precision import x64_scope
from jaxbell._workers import imap_unordered

__all__ = [
    "BffOptions",
    "BffResult",
    "bff_entropy",
    "certify",
    "gauss_radau",
    "last_node_bound",
    "rates_backend",
    "sdp_sizes",
]

KINDS = ("key", "global")
#: "JAX": jaxbell's batched interior-point method (:mod:`jaxbell.rates.ipm`), all points x nodes
#: of a call in one vmapped program; the others through cvxpy, one node SDP at a time.
SOLVERS = ("JAX", "CLARABEL", "SCS", "MOSEK")
#: The solver used when none is named.
DEFAULT_SOLVER = "JAX"

#: Per-point status codes of :class:`BffResult` (CF flag values of the dataset).
STATUS_FLAGS = {
    0: "certified",
    1: "infeasible",
    2: "solver_failed",
    3: "inaccurate",
}
#: Per-point codes of the *solver's* own status (:attr:`BffResult.solver_status`): the worst over
#: the point's node solves. Independent of the certificate: a point can be certified (status 0)
#: from solves that stopped at the solver's reduced tolerance (1) or at its iteration limit (2),
#: because the certified value is built from the dual point and corrected for its residuals.
SOLVER_STATUS_FLAGS = {
    0: "optimal",
    1: "optimal_inaccurate",
    2: "iteration_limit",
    3: "infeasible",
    4: "failed",
    5: "not_solved",
}
#: Absolute allowance (per node, before weighting) for float64 rounding in the dual value.
ROUNDING_ALLOWANCE = 1e-12
#: With ``processes=None``, workers are started only with at least this many points each.
MIN_POINTS_PER_WORKER = 4
#: Default largest total residual correction (bits) accepted before a point is called inaccurate.
DEFAULT_MAX_CORRECTION = 1e-4
_LN2 = math.log(2.0)

_SDP_EXTRA = 'the SDP solvers are optional: pip install "jaxbell[sdp]" (cvxpy, clarabel, scs)'


# --- Gauss-Radau quadrature ----------------------------------------------------------------


def gauss_radau(m: int) -> tuple[np.ndarray, np.ndarray]:
    r"""Nodes and weights of the m-point Gauss-Radau rule on [0, 1] with the end point 1 fixed.

    Exact for polynomials of degree ``<= 2m - 2``. The nodes increase and ``t[-1] == 1``;
    the weights are positive, sum to 1, and ``w[-1] == 1/m^2``. Computed from the Legendre
    polynomials: on [-1, 1] with -1 fixed, the free nodes are the roots of
    ``(P_{m-1}(y) + P_m(y)) / (1 + y)`` with weights ``(1 - y) / (m^2 P_{m-1}(y)^2)``;
    ``t = (1 - y) / 2``.

    Parameters
    ----------
    m : int
        Number of nodes, 2 <= m <= 40.

    Returns
    -------
    t, w : numpy.ndarray
        Shape (m,), float64.

    References
    ----------
    M. Abramowitz and I. A. Stegun, Handbook of Mathematical Functions, eq. 25.4.31;
    used for the logarithm in [BFF] (module docstring).
    """
    m = _check_int(m, "m", 2, 40)
    from numpy.polynomial import legendre as leg

    coef = np.zeros(m + 1)
    coef[m - 1] = coef[m] = 1.0
    y = np.sort(leg.legroots(coef))
    # the root at -1 is exact; polish the others by Newton steps on P_{m-1} + P_m
    y[0] = -1.0
    dcoef = leg.legder(coef)
    for _ in range(3):
        y[1:] -= leg.legval(y[1:], coef) / leg.legval(y[1:], dcoef)
    p_m1 = leg.legval(y, np.eye(m)[m - 1])
    w = (1.0 - y) / (m**2 * p_m1**2)
    w[0] = 2.0 / m**2
    t, w = (1.0 - y) / 2.0, w / 2.0
    order = np.argsort(t)
    t, w = t[order], w[order]
    t[-1] = 1.0
    return t, w


# --- words and polynomials in A_x, B_y and Eve's letters -----------------------------------
#
# A word is (a, b, z): a and b tuples of inputs (A_x, B_y are Hermitian unitaries, so equal
# neighbours cancel), z a tuple of Eve letters (s, dagger). Alice's, Bob's and Eve's letters
# commute with each other, so this normal form is unique. Eve's letter s is Z_+ (s even) or
# Z_- (s odd) of a pair of outcomes exchanged by the outcome flip (module docstring).

_EMPTY: tuple = ((), (), ())


def _reduce(word: tuple) -> tuple:
    out: list = []
    for letter in word:
        if out and out[-1] == letter:
            out.pop()
        else:
            out.append(letter)
    return tuple(out)


def _wmul(u: tuple, v: tuple) -> tuple:
    return (_reduce(u[0] + v[0]), _reduce(u[1] + v[1]), u[2] + v[2])


def _wadj(u: tuple) -> tuple:
    return (u[0][::-1], u[1][::-1], tuple((s, 1 - d) for s, d in u[2][::-1]))


def _canon(u: tuple) -> tuple:
    """The label of a real moment: y_w = y_{w^dagger}."""
    return min(u, _wadj(u))


def _odd(u: tuple) -> bool:
    """Odd under the outcome flip (A -> -A, B -> -B, Z_- -> -Z_-): its moment vanishes."""
    return (len(u[0]) + len(u[1]) + sum(s % 2 for s, _ in u[2])) % 2 == 1


def _n_eve(u: tuple) -> int:
    return len(u[2])


def _pmul(p: dict, q: dict) -> dict:
    out: dict = {}
    for u, a in p.items():
        for v, b in q.items():
            w = _wmul(u, v)
            out[w] = out.get(w, 0.0) + a * b
    return out


def _padd(*ps: dict) -> dict:
    out: dict = {}
    for p in ps:
        for u, a in p.items():
            out[u] = out.get(u, 0.0) + a
    return out


def _pscale(p: dict, c: float) -> dict:
    return {u: c * a for u, a in p.items()}


def _padj(p: dict) -> dict:
    return {_wadj(u): a for u, a in p.items()}


def _letter(kind: str, index: int, dagger: int = 0) -> dict:
    if kind == "A":
        return {((index,), (), ()): 1.0}
    if kind == "B":
        return {((), (index,), ()): 1.0}
    return {((), (), ((index, dagger),)): 1.0}


def _projector(party: str, setting: int, outcome: int) -> dict:
    """P^a = (1 + (-1)^a A) / 2."""
    sign = 0.5 if outcome == 0 else -0.5
    return _padd({_EMPTY: 0.5}, _pscale(_letter(party, setting), sign))


def _eve_operators(kind: str) -> dict:
    """Eve's Z_o for each outcome o as polynomials in the symmetric letters Z_+, Z_-."""
    if kind == "key":
        pairs = (((0,), (1,)),)
    else:
        pairs = (((0, 0), (1, 1)), ((0, 1), (1, 0)))
    out = {}
    for j, (o, flipped) in enumerate(pairs):
        plus, minus = _letter("Z", 2 * j), _letter("Z", 2 * j + 1)
        out[o] = _padd(_pscale(plus, 0.5), _pscale(minus, 0.5))
        out[flipped] = _padd(_pscale(plus, 0.5), _pscale(minus, -0.5))
    return out


def _key_povm(x: int, outcome: int, preprocessing: float) -> dict:
    """M_a' = (1 - p) P_a + p P_{1-a} = (1 + (1 - 2p)(-1)^a A_x) / 2 (noisy preprocessing)."""
    if preprocessing == 0.0:
        return _projector("A", x, outcome)  # the same floats as without preprocessing
    sign = (0.5 if outcome == 0 else -0.5) * (1.0 - 2.0 * preprocessing)
    return _padd({_EMPTY: 0.5}, _pscale(_letter("A", x), sign))


def _node_objective(kind: str, x: int, y: int, t: float, preprocessing: float = 0.0) -> dict:
    """sum_o <M_o (Z_o + Z_o^dag + (1 - t) Z_o^dag Z_o) + t Z_o Z_o^dag> as a polynomial.

    For kind "key" ``M_a`` is Alice's key POVM after noisy preprocessing with flip probability
    ``preprocessing`` (:func:`_key_povm`; the projector P_a at p = 0).
    """
    total: dict = {}
    for o, z in _eve_operators(kind).items():
        zd = _padj(z)
        m_o = (
            _key_povm(x, o[0], preprocessing)
            if kind == "key"
            else _pmul(_projector("A", x, o[0]), _projector("B", y, o[1]))
        )
        inner = _padd(z, zd, _pscale(_pmul(zd, z), 1.0 - t))
        total = _padd(total, _pmul(m_o, inner), _pscale(_pmul(z, zd), t))
    return total


def _rows(
    kind: str, level: int, x: int, y: int, eve_pairs: bool = False, extras: bool = True
) -> list[tuple]:
    """Moment-matrix rows (words); the monomial sets of the module docstring.

    * Alice and Bob: 1, A_x', B_y', A_x' B_y' for all inputs; at level 2 also A_0 A_1, A_1 A_0,
      B_0 B_1, B_1 B_0 (all words of length <= 2);
    * Eve: ``h z`` for every Eve letter z, z^dagger and every head h: at level 1 the heads of
      the key measurement, {1, A_x} (key) or {1, A_x, B_y, A_x B_y} (global); at level 2 all
      of 1, A_x', B_y', A_x' B_y' (NPA level 2 with one Eve letter, and BFF's P Q Z extras);
    * ``extras``: BFF's extras for the objective's quadratic terms, in the letters of one pair
      of outcomes:
      ``h Z_s^dag Z_s'`` (key, h in {1, A_x}) or ``h Z_s Z_s'^dag`` (global, h in the level-1
      heads);
    * ``eve_pairs`` (level 2): every product of two Eve letters (the rest of NPA level 2).
    """
    n_eve = 2 if kind == "key" else 4
    alice = [((0,), (), ()), ((1,), (), ())]
    bob = [((), (0,), ()), ((), (1,), ())]
    pairs = [((a,), (b,), ()) for a in (0, 1) for b in (0, 1)]
    eve = [((), (), ((s, d),)) for s in range(n_eve) for d in (0, 1)]
    rows: list[tuple] = []
    seen: set = set()

    def add(w: tuple) -> None:
        if w not in seen:
            seen.add(w)
            rows.append(w)

    for w in [_EMPTY, *alice, *bob, *pairs]:
        add(w)
    if level >= 2:
        for w in (((0, 1), (), ()), ((1, 0), (), ()), ((), (0, 1), ()), ((), (1, 0), ())):
            add(w)
    key_heads = [_EMPTY, ((x,), (), ())]
    if kind == "global":
        key_heads += [((), (y,), ()), ((x,), (y,), ())]
    heads = [_EMPTY, *alice, *bob, *(pairs if level >= 2 else key_heads[3:])]
    for head in heads:
        for z in eve:
            add(_wmul(head, z))
    for s, s2 in itertools.product(range(n_eve), repeat=2):
        if not extras or s // 2 != s2 // 2:  # Z_o's letters: one pair of flipped outcomes
            continue
        for head in key_heads:
            dag = ((s, 1), (s2, 0)) if kind == "key" else ((s, 0), (s2, 1))
            add((head[0], head[1], dag))
    if eve_pairs and level >= 2:
        for z, z2 in itertools.product(eve, repeat=2):
            add(_wmul(z, z2))
    return rows


# --- the relaxation as sparse matrices -----------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Relaxation:
    kind: str
    level: int
    x: int
    y: int
    blocks: tuple  # rows of each block (words)
    index: Mapping  # moment label -> column
    F: tuple  # per block: scipy.sparse (n*n, K), 0/1, symmetric pattern
    F0: tuple  # per block: dense (n, n) constant part (the moments equal to 1)
    counts: np.ndarray  # entries of each moment over all blocks
    correlator_columns: tuple  # column of <A_x B_y>, indexed [x][y]
    marginal_columns: tuple | None  # columns of <A_0>, <A_1>, <B_0>, <B_1> (flip=False only)
    diag_columns: np.ndarray  # moments <u^dag u> of rows with Eve letters
    moment_eve: np.ndarray  # Eve letters in each moment's word (its scale is (2 beta)^k)
    flip: bool = True  # outcome-flip block reduction (odd moments vanish) applied


_RELAXATIONS: dict = {}


def _relaxation(
    kind: str, level: int, x: int, y: int, eve_pairs: bool, flip: bool = True, extras: bool = True
) -> _Relaxation:
    """The relaxation's matrices; ``flip=False`` skips the outcome-flip block reduction."""
    key = (kind, level, x, y, eve_pairs, flip, extras)
    if key in _RELAXATIONS:
        return _RELAXATIONS[key]
    import scipy.sparse as sp

    rows = _rows(kind, level, x, y, eve_pairs, extras)
    if flip:
        blocks = tuple(tuple(r for r in rows if _odd(r) == parity) for parity in (False, True))
    else:
        blocks = (tuple(rows),)
    index: dict = {}
    entries = []
    for block in blocks:
        n = len(block)
        i_idx, k_idx, const = [], [], np.zeros((n, n))
        for i in range(n):
            ui = _wadj(block[i])
            for j in range(i, n):
                w = _canon(_wmul(ui, block[j]))
                if w == _EMPTY:
                    const[i, j] = const[j, i] = 1.0
                    continue
                k = index.setdefault(w, len(index))
                i_idx.append(i * n + j)
                k_idx.append(k)
                if i != j:
                    i_idx.append(j * n + i)
                    k_idx.append(k)
        entries.append((n, i_idx, k_idx, const))
    size = len(index)
    mats, consts = [], []
    counts = np.zeros(size)
    for n, i_idx, k_idx, const in entries:
        f = sp.csr_matrix((np.ones(len(i_idx)), (i_idx, k_idx)), shape=(n * n, size))
        mats.append(f)
        consts.append(const)
        counts += np.asarray(f.sum(axis=0)).ravel()
    corr = tuple(tuple(index[_canon(((xx,), (yy,), ()))] for yy in (0, 1)) for xx in (0, 1))
    # the marginals <A_x> = <1^dag A_x> and <B_y> are odd: moments of the one unreduced block
    # only (with the reduction they would be cross-block entries, 0 by the symmetry)
    marg = None
    if not flip:
        marg = tuple(
            index[w] for w in (((0,), (), ()), ((1,), (), ()), ((), (0,), ()), ((), (1,), ()))
        )
    diag = {index[_canon(_wmul(_wadj(u), u))] for b in blocks for u in b if _n_eve(u)}
    # the moment labels were inserted in column order, so index's keys enumerate the columns
    rel = _Relaxation(
        kind=kind,
        level=level,
        x=x,
        y=y,
        blocks=blocks,
        index=index,
        F=tuple(mats),
        F0=tuple(consts),
        counts=counts,
        correlator_columns=corr,
        marginal_columns=marg,
        diag_columns=np.array(sorted(diag), dtype=np.int64),
        moment_eve=np.array([_n_eve(w) for w in index], dtype=np.int64),
        flip=flip,
    )
    _RELAXATIONS[key] = rel
    return rel


def _linear(poly: dict, index: Mapping, flip: bool = True) -> tuple[float, np.ndarray]:
    """The moment functional of a polynomial: constant and coefficients over the moments.

    With ``flip`` (the outcome-flip reduction) odd moments vanish and are dropped; without it
    every moment must be a variable of the relaxation (a KeyError otherwise: dropping an odd
    moment there would change the objective, not use a symmetry).
    """
    c0 = 0.0
    c = np.zeros(len(index))
    for u, a in poly.items():
        w = _canon(u)
        if a == 0.0 or (flip and _odd(u) and w not in index):  # odd: 0 (outcome flip)
            continue
        if w == _EMPTY:
            c0 += a
        else:
            c[index[w]] += a  # KeyError would mean the monomial set misses a needed moment
    return c0, c


def _check_extras(extras, kind: str, name: str = "extras") -> bool:
    """None: BFF's extra monomials for kind "key" only (module docstring); else a bool."""
    if extras is None:
        return kind == "key"
    return _check_bool(extras, name)


def sdp_sizes(
    kind: str = "key",
    level: int = 2,
    *,
    x: int = 0,
    y: int = 0,
    eve_pairs: bool = False,
    extras: bool | None = None,
    constraint: str = "bell",
) -> dict[str, Any]:
    """Sizes of one node's SDP: block dimensions, real moments (variables), equalities.

    Arguments as in :func:`bff_entropy`; ``constraint`` one of :data:`CONSTRAINTS`: "full"
    (marginals constrained) has no outcome-flip reduction, so one block of all the rows and the
    odd moments as further variables.

    Returns
    -------
    dict
        ``block_dims`` (list of the PSD block sizes), ``moment_matrix_dim`` (their sum, the
        rows of the unreduced real moment matrix), ``variables`` (distinct real moments),
        ``psd_entries`` (scalar entries of the PSD cones, upper triangles), ``equalities``
        (bell 1, correlators 4, full 8: <A_x>, <B_y>, <A_x B_y>), ``outcome_flip`` (the
        block reduction applied) and ``sdps_per_point`` as a function of m (m - 1).
    """
    kind, level, x, y = _check_kind(kind), _check_int(level, "level", 1, 2), *_check_xy(x, y)
    eve_pairs = _check_bool(eve_pairs, "eve_pairs")
    extras = _check_extras(extras, kind)
    if constraint not in CONSTRAINTS:
        raise ValueError(f"constraint must be one of {CONSTRAINTS}, got {constraint!r}")
    flip = constraint != "full"
    rel = _relaxation(kind, level, x, y, eve_pairs, flip, extras)
    dims = [len(b) for b in rel.blocks]
    return {
        "kind": kind,
        "level": level,
        "eve_pairs": eve_pairs,
        "extras": extras,
        "block_dims": dims,
        "moment_matrix_dim": sum(dims),
        "variables": len(rel.index),
        "psd_entries": sum(n * (n + 1) // 2 for n in dims),
        "equalities": _EQUALITIES[constraint],
        "constraint": constraint,
        "outcome_flip": flip,
        "sdps_per_point": "m - 1",
    }


# --- one node: cvxpy problem (compiled once per process), solve, certify --------------------


class _NodeProblem:
    """A parametrised cvxpy problem for one relaxation and constraint mode (DPP: compiled once)."""

    def __init__(self, rel: _Relaxation, mode: str):
        cp = _import_cvxpy()
        self.rel, self.mode = rel, mode
        size = len(rel.index)
        self.y = cp.Variable(size)
        self.c = cp.Parameter(size)
        self.psd = []
        for f, f0 in zip(rel.F, rel.F0, strict=True):
            n = f0.shape[0]
            self.psd.append(cp.reshape(f @ self.y, (n, n), order="C") + f0 >> 0)
        cols = [rel.correlator_columns[xx][yy] for xx in (0, 1) for yy in (0, 1)]
        self.cols = np.array(cols)
        if mode == "full":  # <A_0>, <A_1>, <B_0>, <B_1>, then E[x, y]
            if rel.marginal_columns is None:
                raise ValueError("constraint 'full' needs the unreduced relaxation (flip=False)")
            self.cols = np.array([*rel.marginal_columns, *cols])
        if mode == "bell":
            self.coef = cp.Parameter(4)
            self.b = cp.Parameter(1)
            self.eq = self.coef @ self.y[self.cols] == self.b[0]
        else:
            self.coef = None
            self.b = cp.Parameter(len(self.cols))
            self.eq = self.y[self.cols] == self.b
        # y are the *scaled* moments <w> / (2 beta)^k (k Eve letters in w), so that every
        # diagonal entry is at most 1 for Eve's optimal operators (module docstring); the
        # bound keeps the primal bounded, which the interior-point solver needs to converge
        self.bound = self.y[rel.diag_columns] <= 1.0
        self.problem = cp.Problem(cp.Minimize(self.c @ self.y), [*self.psd, self.eq, self.bound])

    def equality_matrix(self, coef: np.ndarray | None) -> np.ndarray:
        return _equality_matrix(self.rel, self.mode, coef)


_PROBLEMS: dict = {}


def _node_problem(
    kind: str,
    level: int,
    x: int,
    y: int,
    eve_pairs: bool,
    mode: str,
    flip: bool = True,
    extras: bool = True,
) -> _NodeProblem:
    key = (kind, level, x, y, eve_pairs, mode, flip, extras)
    if key not in _PROBLEMS:
        rel = _relaxation(kind, level, x, y, eve_pairs, flip, extras)
        _PROBLEMS[key] = _NodeProblem(rel, mode)
    return _PROBLEMS[key]


def eve_norm_bound(t: float) -> float:
    """1 / (2 sqrt(t (1 - t))): the norm of Eve's optimal Z at node t (module docstring)."""
    return 0.5 / math.sqrt(t * (1.0 - t))


def _certify(
    prob: _NodeProblem, c: np.ndarray, c0: float, a: np.ndarray, b: np.ndarray
) -> tuple[float, float, float, np.ndarray]:
    """(certified value, raw dual value, correction, lam) of the solved node problem.

    In scaled moments y (every diagonal entry of G(y) at most 1 on the set that matters),
    Lagrangian ``c.y - <S, G(y)> - lam.(A y - b) - mu.(1 - H y)`` with S >= 0, mu >= 0 and H
    the selector of the diagonal moments with Eve letters; see the module docstring.

    Only ``b . lam`` in the value depends on the constraint values b, and S, mu and the
    correction do not, so ``value + lam . (b' - b)`` bounds the node's infimum at *every* b'
    (weak duality with the same dual point): the certified affine bound behind the
    min-tradeoff functions of :mod:`jaxbell.rates.finite`.
    """
    rel = prob.rel
    xs = [np.asarray(con.dual_value, dtype=float) for con in prob.psd]
    xs = [0.5 * (m + m.T) for m in xs]
    lam_raw = np.atleast_1d(np.asarray(prob.eq.dual_value, dtype=float))
    mu = np.maximum(np.atleast_1d(np.asarray(prob.bound.dual_value, dtype=float)), 0.0)
    base = c - sum(f.T @ m.ravel() for f, m in zip(rel.F, xs, strict=True))
    np.add.at(base, rel.diag_columns, mu)
    # cvxpy's sign convention for equality multipliers: pick the one that makes the
    # stationarity residual small (it is ~1e-9 for one sign and O(1) for the other)
    res = {sign: base - a.T @ (sign * lam_raw) for sign in (1.0, -1.0)}
    sign = min(res, key=lambda s: np.abs(res[s]).max())
    lam, resid = sign * lam_raw, res[sign]
    # S = X + residual spread over each moment's entries: <S, F_k> = c_k - (A^T lam - H^T mu)_k
    spread = resid / rel.counts
    correction = 0.0
    dual = c0 + float(b @ lam) - float(mu.sum())
    for f, f0, xm in zip(rel.F, rel.F0, xs, strict=True):
        n = f0.shape[0]
        s = xm + (f @ spread).reshape(n, n)
        dual -= float(np.sum(s * f0))
        e, v = np.linalg.eigh(s)
        # |G_ij| <= 1 and lambda_max(G) <= n: each negative eigenpair costs at most
        # |e| min((sum |v|)^2, n); plus a generous bound on the eigensolver's backward error
        err = 16.0 * n * np.finfo(float).eps * float(np.abs(e).max(initial=0.0))
        neg = e < 0
        weights = np.minimum(np.abs(v[:, neg]).sum(axis=0) ** 2, n)
        correction += float(np.sum(-e[neg] * weights)) + err * n
    value = dual - correction - ROUNDING_ALLOWANCE
    return value, dual, correction + ROUNDING_ALLOWANCE, lam


#: Solver settings tried in turn when a solve fails (Clarabel: regularisation, step, scaling).
_CLARABEL_RETRIES = (
    {},
    {"static_regularization_constant": 1e-7},
    {"max_step_fraction": 0.95},
    {"equilibrate_enable": False},
)


def _solver_attempts(solver: str, threads: int | None) -> list[dict]:
    if solver == "CLARABEL":
        base: dict = {"tol_gap_abs": 1e-9, "tol_gap_rel": 1e-9, "tol_feas": 1e-9, "max_iter": 200}
        if threads:
            base["max_threads"] = threads
        return [base | extra for extra in _CLARABEL_RETRIES]
    if solver == "SCS":
        return [{"eps_abs": 1e-8, "eps_rel": 1e-8, "max_iters": 100_000}]
    return [{}]


def _solve_node(
    kind: str,
    level: int,
    x: int,
    y: int,
    eve_pairs: bool,
    mode: str,
    coef: np.ndarray | None,
    target: np.ndarray,
    t: float,
    solver: str,
    threads: int | None,
    flip: bool = True,
    extras: bool = True,
    preprocessing: float = 0.0,
) -> tuple[float, float, float, str, np.ndarray]:
    """One node: (certified inf bound, raw dual value, correction, solver status, lam).

    ``lam`` (one multiplier per equality, NaN where the node failed) is the slope of the
    node's certified bound in the constraint values (:func:`_certify`).

    ``mode`` "bell", "correlators" or "full" (needs ``flip=False``); ``preprocessing`` the flip
    probability of Alice's key bit (kind "key").
    """
    cp = _import_cvxpy()
    prob = _node_problem(kind, level, x, y, eve_pairs, mode, flip, extras)
    objective = _node_objective(kind, x, y, t, preprocessing)
    c0, c = _linear(objective, prob.rel.index, prob.rel.flip)
    c = c * (2.0 * eve_norm_bound(t)) ** prob.rel.moment_eve  # in scaled moments
    prob.c.value = c
    if mode == "bell":
        prob.coef.value = coef
    prob.b.value = np.atleast_1d(target)
    a = prob.equality_matrix(coef)
    status = "not_solved"
    no_slope = np.full(a.shape[0], math.nan)
    for kwargs in _solver_attempts(solver, threads):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # "solution may be inaccurate"
                # warm_start=False: cvxpy would otherwise hand the solver the object cached
                # from this problem's previous solve and update its data in place (Clarabel
                # keeps that solve's equilibration and settings), so the same node gave
                # different bits depending on what the process had solved before
                prob.problem.solve(solver=solver, warm_start=False, **kwargs)
        except cp.error.SolverError:
            status = "solver_error"
            continue
        status = str(prob.problem.status)
        if status in ("infeasible", "infeasible_inaccurate"):
            return math.nan, math.nan, math.nan, status, no_slope
        if status not in ("optimal", "optimal_inaccurate", "user_limit"):
            continue  # (a dual point from an iteration limit is still certified below)
        duals = [*(con.dual_value for con in prob.psd), prob.eq.dual_value, prob.bound.dual_value]
        if any(d is None for d in duals):
            status = f"{status} (no dual point)"
            continue
        value, dual, corr, lam = _certify(prob, c, c0, a, np.atleast_1d(target))
        if math.isfinite(value) and np.all(np.isfinite(lam)):
            return value, dual, corr, status, lam
        status = f"{status} (non-finite dual)"
    return math.nan, math.nan, math.nan, status, no_slope


def _node_solver_code(status: str) -> int:
    """:data:`SOLVER_STATUS_FLAGS` code of one node's cvxpy status string."""
    codes = {"optimal": 0, "optimal_inaccurate": 1, "user_limit": 2, "not_solved": 5}
    codes |= {"infeasible": 3, "infeasible_inaccurate": 3}
    return codes.get(status, 4)  # solver_error, unbounded, "... (no dual point)", ...


def _solve_point(task: tuple) -> dict:
    """All m - 1 nodes of one point; the unit of work sent to a worker process."""
    (kind, level, x, y, eve_pairs, extras, mode, coef, target, m, solver, threads, max_corr) = task[
        :13
    ]
    preprocessing = task[13]
    # marginals constrained: the outcome-flip symmetry is broken, so the unreduced relaxation
    flip = mode != "full"
    t_nodes, w_nodes = gauss_radau(m)
    weights = w_nodes[:-1] / (t_nodes[:-1] * _LN2)
    start = time.perf_counter()
    vals, duals, corrs, statuses, slopes = [], [], [], [], []
    for t in t_nodes[:-1]:
        v, d, cr, st, lam = _solve_node(
            kind,
            level,
            x,
            y,
            eve_pairs,
            mode,
            coef,
            target,
            float(t),
            solver,
            threads,
            flip=flip,
            extras=extras,
            preprocessing=preprocessing,
        )
        vals.append(v)
        duals.append(d)
        corrs.append(cr)
        statuses.append(st)
        slopes.append(lam)
        if not math.isfinite(v):
            break  # the point has failed; the remaining nodes cannot rescue it
    n = m - 1
    vals += [math.nan] * (n - len(vals))
    duals += [math.nan] * (n - len(duals))
    corrs += [math.nan] * (n - len(corrs))
    statuses += ["not_solved"] * (n - len(statuses))
    return _point_result(
        vals, duals, corrs, statuses, slopes, weights, mode, preprocessing, max_corr,
        time.perf_counter() - start, _last_node_term(m, kind, preprocessing),
    )  # fmt: skip


def _point_result(
    vals, duals, corrs, statuses, slopes, weights, mode, preprocessing, max_corr, seconds, last
) -> dict:
    """One point's result from its m - 1 node results (node statuses as cvxpy's strings).

    The point's certified value is the Gauss-Radau sum of its certified nodes plus ``last``,
    the t = 1 node's closed-form term (:func:`_last_node_term`); it is NaN with
    status 1 (a node infeasible) or 2 (a node failed) if any node is not finite, and status 3
    if the total correction exceeds ``max_corr``.
    """
    n = len(weights)
    vals_a, duals_a, corrs_a = np.array(vals), np.array(duals), np.array(corrs)
    value = float(np.sum(weights * (1.0 + vals_a))) + last
    dual = float(np.sum(weights * (1.0 + duals_a))) + last
    correction = float(np.sum(weights * corrs_a))
    if np.all(np.isfinite(vals_a)):
        code = 0 if correction <= max_corr else 3
    elif any(s in ("infeasible", "infeasible_inaccurate") for s in statuses):
        code = 1
    else:
        code = 2
    # the certified affine bound value + slope . (b' - b) at every b' (a min-tradeoff function)
    slope = (
        np.sum(weights[:, None] * np.array(slopes), axis=0)
        if len(slopes) == n
        else np.full(_EQUALITIES[mode], math.nan)
    )
    tangent = value
    if code != 0:
        value = tangent = math.nan
        slope = np.full(_EQUALITIES[mode], math.nan)
    else:
        # H(A'|E) >= H(A'|A, E) = h(p) (the flips are independent of everything else; h(0) = 0:
        # H >= 0 for a classical outcome), so max(h(p), bound) is certified
        value = max(value, _binary_entropy(preprocessing))
    solved = [_node_solver_code(s) for s in statuses if s != "not_solved"]
    return {
        "value": value,
        "dual_value": dual,
        "correction": correction,
        "status": code,
        "solver_status": max(solved, default=5),
        "node_value": vals_a,
        "node_status": list(statuses),
        "tangent_value": tangent,
        "slope": slope,
        "seconds": seconds,
    }


# --- all points x nodes as one batch: the JAX interior-point method --------------------------

_STRUCTURES: dict = {}


def _clarabel_fallback(tasks: list, results: list) -> None:
    """Re-solve with Clarabel (when cvxpy is installed) the points the batched solver did not
    certify (status 2 "solver_failed" or 3 "inaccurate"), in place.

    The batched method starts from an interior point and has no homogeneous self-dual
    embedding: on statistics with no interior (e.g. the four correlators of a perfect
    strategy) its iterates stall with dual residuals ~1e-5 and the certificate's correction
    exceeds ``max_correction``, and on infeasible statistics (a Bell value beyond the quantum
    bound) they can break down before the dual diverges. Clarabel's embedding handles both.
    A point keeps the batched result unless Clarabel certifies it or finds it infeasible.
    """
    import logging

    retry = [i for i, r in enumerate(results) if r["status"] in (2, 3)]
    if not retry:
        return
    try:
        import cvxpy  # noqa: F401
    except ImportError:
        return
    done = 0
    for i in retry:
        task = list(tasks[i])
        task[10] = "CLARABEL"
        other = _solve_point(tuple(task))
        if other["status"] in (0, 1):  # certified, or infeasible (cvxpy's verdict)
            results[i] = other
            done += other["status"] == 0
    logging.getLogger("jaxbell").info(
        "bff: %d of %d points re-solved by Clarabel (%d certified)", len(retry), len(results), done
    )


def _equality_matrix(rel: _Relaxation, mode: str, coef: np.ndarray | None) -> np.ndarray:
    """A of the constraints A y = b (as :meth:`_NodeProblem.equality_matrix`, without cvxpy)."""
    cols = [rel.correlator_columns[xx][yy] for xx in (0, 1) for yy in (0, 1)]
    if mode == "full":
        cols = [*rel.marginal_columns, *cols]
    a = np.zeros((1 if mode == "bell" else len(cols), len(rel.index)))
    if mode == "bell":
        np.add.at(a[0], np.array(cols), coef)
    else:
        a[np.arange(len(cols)), cols] = 1.0
    return a


def _structure(rel: _Relaxation):
    """The :class:`jaxbell.rates.ipm.SdpStructure` of a relaxation (one per process)."""
    from jaxbell.rates import ipm

    key = id(rel)
    if key not in _STRUCTURES:
        _STRUCTURES[key] = ipm.SdpStructure.from_relaxation(rel)
    return _STRUCTURES[key]


def _solve_points_ipm(tasks: list, bar) -> list[dict]:
    """Every node of every point of ``tasks`` (as for :func:`_solve_point`) in one batch.

    The same relaxation, objective and constraints as the cvxpy path, solved by
    :func:`jaxbell.rates.ipm.solve` and certified from its dual point by the same bound
    (:func:`jaxbell.rates.ipm.certificate`, computed in JAX); the per-point results have the
    fields of :func:`_solve_point`. The progress bar advances by points.
    """
    from jaxbell.rates import ipm

    if not tasks:
        return []
    (kind, level, x, y, eve_pairs, extras, mode, _, _, m, _, _, max_corr, pre) = tasks[0][:14]
    flip = mode != "full"
    rel = _relaxation(kind, level, x, y, eve_pairs, flip, extras)
    t_nodes, w_nodes = gauss_radau(m)
    nodes = t_nodes[:-1]
    weights = w_nodes[:-1] / (nodes * _LN2)
    n_nodes, n_pts = len(nodes), len(tasks)
    cs, c0s = [], []
    for t in nodes:
        c0, c = _linear(_node_objective(kind, x, y, float(t), pre), rel.index, rel.flip)
        cs.append(c * (2.0 * eve_norm_bound(float(t))) ** rel.moment_eve)
        c0s.append(c0)
    a_pts = np.stack([_equality_matrix(rel, mode, task[7]) for task in tasks])
    b_pts = np.stack([np.atleast_1d(np.asarray(task[8], dtype=float)) for task in tasks])
    # problem p * n_nodes + j: point p at node j
    c_all = np.tile(np.stack(cs), (n_pts, 1))
    c0_all = np.tile(np.asarray(c0s), n_pts)
    a_all = np.repeat(a_pts, n_nodes, axis=0)
    b_all = np.repeat(b_pts, n_nodes, axis=0)

    class _Points:  # advances the points' bar from the solver's count of problems
        done = 0

        def update(self, k):
            before = self.done // n_nodes
            self.done += k
            bar.update(self.done // n_nodes - before)

    start = time.perf_counter()
    out = ipm.solve(_structure(rel), c_all, c0_all, a_all, b_all, progress=_Points())
    seconds = (time.perf_counter() - start) / n_pts
    node_val = out["value"].reshape(n_pts, n_nodes)
    node_dual = out["certified_dual"].reshape(n_pts, n_nodes)
    node_corr = out["correction"].reshape(n_pts, n_nodes)
    node_code = out["solver_status"].reshape(n_pts, n_nodes)
    lam = out["lam"].reshape(n_pts, n_nodes, -1)
    names = {0: "optimal", 1: "optimal_inaccurate", 2: "user_limit", 3: "infeasible", 4: "failed"}
    last = _last_node_term(m, kind, pre)
    results = []
    # a node that neither converged nor came close and still violates its constraints (e.g. a
    # Bell value beyond the quantum bound, where the iterates break down before the dual
    # diverges) gives no number: NaN, "failed" (the Clarabel fallback then decides)
    unmet = (node_code == 4) & (out["primal_residual"].reshape(n_pts, n_nodes) > 1e-6)
    for p in range(n_pts):
        codes = node_code[p]
        statuses = [names[int(c)] for c in codes]
        vals = np.where((codes == 3) | unmet[p], np.nan, node_val[p])  # no bound
        results.append(
            _point_result(
                vals,
                node_dual[p],
                node_corr[p],
                statuses,
                lam[p],
                weights,
                mode,
                pre,
                max_corr,
                seconds,
                last,
            )  # fmt: skip
        )
    return results


# --- public API -----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class BffResult:
    """Certified lower bounds of :func:`bff_entropy`, one per point (arrays share one shape).

    Attributes
    ----------
    value : numpy.ndarray
        Certified lower bound on H(A|X=x,E) (kind "key") or H(AB|X=x,Y=y,E) (kind "global"),
        bits: ``max(0, dual_value - correction)`` (the entropy of a classical outcome given
        Eve is >= 0, so raising a negative bound to 0 keeps it certified). NaN where
        ``status != 0``.
    dual_value : numpy.ndarray
        The same sum built from the solver's uncorrected dual objectives (bits): for
        diagnostics only, not certified.
    correction : numpy.ndarray
        Total subtracted for residuals and rounding (bits): ``dual_value - value`` where the
        bound is positive.
    status : numpy.ndarray
        int8 per point, the *certificate's* status: 0 certified, 1 infeasible (no quantum
        strategy at this NPA level meets the constraint, e.g. ``|bell_value| > eta^Q``), 2
        solver failed, 3 inaccurate (correction above ``max_correction``). See
        :data:`STATUS_FLAGS`.
    solver_status : numpy.ndarray
        int8 per point, the *solver's* own status, the worst over the point's node solves
        (:data:`SOLVER_STATUS_FLAGS`): 0 optimal (every node converged to the requested
        tolerance), 1 optimal_inaccurate (some node stopped at the solver's reduced tolerance,
        Clarabel's "AlmostSolved"), 2 iteration_limit, 3 infeasible, 4 failed. It does not
        qualify a certified value: ``status == 0`` with ``solver_status == 1`` is rigorous
        (the correction covers the residuals of the dual point used), and is the usual case
        for Clarabel at the default tolerances (1e-9).
    node_value : numpy.ndarray
        Shape ``shape + (m - 1,)``: certified lower bound on each node's infimum.
    node_status : numpy.ndarray
        Shape ``shape + (m - 1,)``, str: the solver's status at each node.
    seconds : numpy.ndarray
        Wall time per point (all its nodes), seconds.
    theta, phi, omega, bell_value : numpy.ndarray
        The inputs, broadcast to the points' shape (bell_value NaN when correlators are given).
    correlators : numpy.ndarray or None
        Shape ``shape + (2, 2)`` when the four correlators (or a whole behaviour) were
        constrained.
    nodes, weights : numpy.ndarray
        The Gauss-Radau nodes t_i and the weights ``w_i / (t_i ln 2)`` of the m - 1 SDPs.
    sizes : dict
        :func:`sdp_sizes` of the node SDP.
    settings : dict
        kind, x, y, m, level, solver, constraint ("bell", "correlators" or "full"),
        preprocessing, max_correction, processes.
    behaviour : numpy.ndarray or None
        Shape ``shape + (2, 2, 2, 2)``: the constrained behaviour (constraint "full").
    tangent_value, slope : numpy.ndarray
        The certified *affine* bound behind ``value``: for every quantum strategy whose
        constrained statistics are b' (the Bell value; the four correlators E[x, y] in
        row-major order; or, constraint "full", <A_0>, <A_1>, <B_0>, <B_1> then the four
        correlators), the entropy is at least ``tangent_value + slope . (b' - b)``, b the
        statistics of this point. ``tangent_value`` is that bound at b, before ``value``'s
        floor max(h(p), .) (so it may lie below h(p)); ``slope`` has shape ``shape + (k,)``,
        k = 1, 4 or 8, the Gauss-Radau-weighted sum of each node's equality multipliers
        (weak duality with one dual point for all b': :func:`_certify`). NaN where not
        certified. These are the min-tradeoff functions of :mod:`jaxbell.rates.finite`.
    last_node : float
        The t = 1 node's closed-form term in bits, ``w_m / (t_m ln 2) * last_node_bound(p)``,
        included in ``value``, ``dual_value`` and ``tangent_value`` (0 without preprocessing):
        ``value`` is ``max(h(p), sum(weights * (1 + node_value)) + last_node)``.
    """

    value: np.ndarray
    dual_value: np.ndarray
    correction: np.ndarray
    status: np.ndarray
    solver_status: np.ndarray
    node_value: np.ndarray
    node_status: np.ndarray
    seconds: np.ndarray
    theta: np.ndarray
    phi: np.ndarray
    omega: np.ndarray
    bell_value: np.ndarray
    correlators: np.ndarray | None
    nodes: np.ndarray
    weights: np.ndarray
    sizes: dict
    settings: dict
    behaviour: np.ndarray | None = None
    tangent_value: np.ndarray | None = None
    slope: np.ndarray | None = None
    last_node: float = 0.0

    @property
    def shape(self) -> tuple[int, ...]:
        return self.value.shape

    def to_dataset(self, *, dim: str = "point", history: str | None = None):
        """A labelled :class:`xarray.Dataset` (see :func:`jaxbell.dataset.bff_dataset`).

        Points run along one dimension ``dim``; the inputs become coordinates on it.
        """
        from jaxbell.dataset import bff_dataset

        return bff_dataset(self, dim=dim, history=history)


def bff_entropy(
    theta: ArrayLike,
    phi: ArrayLike,
    omega: ArrayLike,
    bell_value: ArrayLike | None,
    *,
    kind: str = "key",
    x: int = 0,
    y: int = 0,
    m: int = 8,
    level: int = 2,
    eve_pairs: bool = False,
    extras: bool | None = None,
    correlators: ArrayLike | None = None,
    behaviour: ArrayLike | None = None,
    preprocessing: float = 0.0,
    solver: str = DEFAULT_SOLVER,
    processes: int | None = None,
    progress: bool | None = None,
    max_correction: float = DEFAULT_MAX_CORRECTION,
) -> BffResult:
    r"""Certified lower bound on the DI entropy given ``<B_{theta,phi,omega}> = bell_value``.

    The Brown-Fawzi-Fawzi hierarchy (module docstring): ``m - 1`` SDPs per point at NPA level
    ``level``, with a rigorous correction of the solver's dual, so the number returned is a
    valid lower bound on the infimum of H(A|X=x,E) (kind "key") or H(AB|X=x,Y=y,E) (kind
    "global") over *all* quantum strategies meeting the constraint, whatever the solver's
    tolerance. A bound below 0 is returned as 0 (the entropy of a classical outcome given Eve
    is >= 0, so 0 is then the better certified bound; NaN stays NaN). It is the certified
    counterpart of ``di_entropy(..., method="qubit")`` (an achievable upper bound).
    ``di_entropy(..., method="bff", options={...})`` returns this function's ``value`` (with
    the same positional arguments, ``kind``, ``x``, ``y`` and the options of
    :class:`BffOptions` passed on), exactly 0 where ``|bell_value| <= eta^L`` (no SDP
    solved); see :func:`certify`.

    Parameters
    ----------
    theta, phi, omega : array_like
        Angles of the Bell expression of eq. (2), radians, finite; broadcast with
        ``bell_value``. Only the coefficients c[x, y] (:func:`jaxbell.bell_coefficients`)
        enter; with ``correlators`` they only label the points.
    bell_value : array_like or None
        Observed <B> (eta), dimensionless, finite. Values beyond the quantum bound give
        status 1 (infeasible) and NaN. None when ``correlators`` are given.
    kind : {"key", "global"}
        "key": H(A|X=x,E), at most 1 bit. "global": H(AB|X=x,Y=y,E), at most 2 bits.
    x, y : {0, 1}
        The inputs whose outcomes form the key (y is used by kind "global" only).
    m : int
        Gauss-Radau nodes, 2..40 (``m - 1`` SDPs per point). The bound tightens with m; at a
        point with H = 1 it is at most ``1 - 1/(2 m^2 ln 2)`` (0.989 at m = 8, 0.995 at 12).
    level : {1, 2}
        Level of the relaxation (module docstring; :func:`sdp_sizes`). 2 (default): NPA level 2
        on Alice's and Bob's words, Eve's letters with every head 1, A, B, AB (BFF's extra
        monomials). 1: smaller and looser (CHSH: 3e-3 to 2e-2 bits below level 2).
    eve_pairs : bool
        Also include every product of two Eve letters (completes NPA level 2 on all letters).
        Slower (kind "key": 4-6x), and moved the CHSH bounds by <= 4e-5 bits at m = 8.
    extras : bool or None
        BFF's extra monomials for the objective's quadratic terms (module docstring). None
        (default): on for kind "key" (they add up to 2e-4 bits), off for kind "global" (changes
        of at most 1.4e-5 bits where measured, at 3-4x the time).
    correlators : array_like, optional
        Shape (..., 2, 2), E[x, y] in [-1, 1]: constrain all four correlators (Props. 4, 6)
        instead of the Bell value (then pass ``bell_value=None``).
    behaviour : array_like, optional
        A behaviour p[a, b, x, y], shape (..., 2, 2, 2, 2), normalised and no-signalling
        (:func:`jaxbell.rates.protocol.check_behaviour`): constrain every p(ab|xy), i.e. the
        marginals <A_x>, <B_y> and the correlators <A_x B_y> (then ``bell_value=None``).
        Non-zero marginals break the outcome-flip symmetry, so this solves the unreduced
        relaxation (one block of 57 rows for kind "key", :func:`sdp_sizes`). A trailing shape
        (2, 2, 2, 3) is accepted: Bob's key-only input y = 2 is then not constrained (fewer
        constraints: still a valid, possibly looser, bound).
    preprocessing : float
        Noisy preprocessing (kind "key" only): p in [0, 1/2], Alice flips her key bit with
        probability p and the bound is on H(A'|X=x,E) of the flipped bit A' [Ho et al. 2020].
        The key POVM becomes ``M_a' = (1 - p) P_a + p P_{1-a}`` in the node objective, as in
        [BFF]; the outcome-flip symmetry still holds and Eve's norm bound is unchanged (it
        needs only sigma_a <= sigma). The value is at least h(p) (H(A'|E) >= H(A'|A,E) = h(p)).
    solver : {"JAX", "CLARABEL", "SCS", "MOSEK"}
        "JAX" (default): jaxbell's batched interior-point method (:mod:`jaxbell.rates.ipm`,
        needs no cvxpy): every point x node of the call in one batch (compiled on the CPU,
        one vmapped program on accelerators), certified by the same bound; ``processes`` is
        then unused. The others are cvxpy solvers, one node SDP at a time: Clarabel and SCS are
        open source and come with ``pip install "jaxbell[sdp]"``; MOSEK only when installed
        and licensed.
    processes : int or None
        cvxpy solvers only (the batched solver uses one thread per CPU): worker processes for
        the points (fresh interpreters, one point per task; they never re-run the caller's
        script, so no ``if __name__ == "__main__":`` guard is needed). None: one per CPU core,
        but at least 4 points per worker (starting one costs a few seconds); 1 runs here.
    progress : bool or None
        tqdm progress bar over points on stderr; None: shown on a terminal for > 1 point.
    max_correction : float
        Largest total residual correction (bits) accepted; above it a point is "inaccurate"
        (status 3, NaN). Default 1e-4.

    Returns
    -------
    BffResult
        Per point: certified ``value`` (bits, >= 0), the certificate's ``status`` and the
        solver's ``solver_status``, the uncorrected ``dual_value``, the ``correction``,
        per-node values and solver statuses, timing; ``.to_dataset()``.

    Raises
    ------
    ValueError, TypeError
        Bad arguments (message names the argument and the fix).
    ImportError
        A cvxpy solver was asked for and cvxpy or the solver is missing (message names the
        extra: ``jaxbell[sdp]``); the default solver needs neither.

    Examples
    --------
    >>> import numpy as np, jaxbell as jb
    >>> r = jb.bff_entropy(np.pi / 2, np.pi / 4, 3 * np.pi / 4, -2.5 / (2 * np.sqrt(2)))
    >>> round(float(r.value), 3)  # CHSH S = 2.5; Pironio et al. 2009: 0.456
    0.456

    References
    ----------
    Brown, Fawzi & Fawzi, Quantum 8, 1445 (2024), arXiv:2106.13692 (the bound); Navascues,
    Pironio & Acin, New J. Phys. 10, 073013 (2008) (the relaxation); eqs. (1), (2) and Props.
    4, 6 of Wooltorton, Brown & Colbeck, PRL 132, 210802 (2024).
    """
    kind = _check_kind(kind)
    x, y = _check_xy(x, y)
    preprocessing = _check_preprocessing(preprocessing)
    if kind != "key" and preprocessing != 0.0:
        raise ValueError(
            "preprocessing applies to kind 'key' only (Alice's key bit is flipped); "
            f"got kind={kind!r} with preprocessing={preprocessing!r}"
        )
    m = _check_int(m, "m", 2, 40)
    level = _check_int(level, "level", 1, 2)
    eve_pairs = _check_bool(eve_pairs, "eve_pairs")
    extras = _check_extras(extras, kind)
    solver = _check_solver(solver)
    if not (isinstance(max_correction, (int, float)) and max_correction > 0):
        raise ValueError(
            f"max_correction must be a positive number of bits, got {max_correction!r}"
        )
    if processes is not None:
        processes = _check_int(processes, "processes", 1, 4096)

    with x64_scope():
        t, p, w = (np.asarray(a, dtype=np.float64) for a in as_angles(theta, phi, omega))
        from jaxbell.family import bell_coefficients

        coefs = np.asarray(bell_coefficients(t, p, w), dtype=np.float64)
    given = [
        n for n, a in (("correlators", correlators), ("behaviour", behaviour)) if a is not None
    ]
    if len(given) == 2:
        raise ValueError("pass either correlators or behaviour, not both")
    if given and bell_value is not None:
        raise ValueError(
            f"pass either bell_value or {given[0]}, not both (with {given[0]} given, "
            f"call bff_entropy(theta, phi, omega, None, {given[0]}=...))"
        )
    behaviour_used = None
    if behaviour is not None:
        from jaxbell.rates.protocol import check_behaviour

        beh = check_behaviour(behaviour, "behaviour")[..., :2, :, :2]  # test inputs only
        try:
            shape = np.broadcast_shapes(t.shape, beh.shape[:-4])
        except ValueError:
            raise ValueError(
                f"behaviour (batch shape {beh.shape[:-4]}) must broadcast with the angles "
                f"(shape {t.shape})"
            ) from None
        beh = np.broadcast_to(beh, shape + (2, 2, 2, 2))
        behaviour_used = beh
        sign = np.array([1.0, -1.0])
        # <A_x> averaged over y and <B_y> over x (equal within check_behaviour's tolerance)
        alice = np.einsum("a,...abxy->...x", sign, beh) / 2.0
        bob = np.einsum("b,...abxy->...y", sign, beh) / 2.0
        e = np.einsum("a,b,...abxy->...xy", sign, sign, beh)
        marginals = np.concatenate([alice, bob], axis=-1)  # (..., 4): A_0, A_1, B_0, B_1
        eta = np.full(shape, np.nan)
        mode = "full"
    elif correlators is not None:
        e = np.asarray(as_correlators(correlators), dtype=np.float64)
        shape = np.broadcast_shapes(t.shape, e.shape[:-2])
        e = np.broadcast_to(e, shape + (2, 2))
        eta = np.full(shape, np.nan)
        mode = "correlators"
    else:
        if bell_value is None:
            raise ValueError("bell_value is required (or give correlators=... instead)")
        eta = as_real_array(bell_value, "bell_value")
        try:
            shape = np.broadcast_shapes(t.shape, eta.shape)
        except ValueError:
            raise ValueError(
                f"bell_value (shape {eta.shape}) must broadcast with the angles (shape {t.shape})"
            ) from None
        e = None
        mode = "bell"
    t, p, w, eta = (np.broadcast_to(a, shape) for a in (t, p, w, eta))
    coefs = np.broadcast_to(coefs, shape + (2, 2))
    _import_cvxpy(solver)

    n_points = int(np.prod(shape, dtype=np.int64))
    if processes is None:  # a worker costs a few seconds to start: >= 4 points each
        processes = min(os.cpu_count() or 1, n_points // MIN_POINTS_PER_WORKER)
    processes = max(1, min(processes, n_points))
    threads = 1 if processes > 1 else None
    tasks = []
    for i in range(n_points):
        idx = np.unravel_index(i, shape)
        if mode == "bell":
            coef, target = coefs[idx].ravel().copy(), np.array([eta[idx]])
        elif mode == "full":
            coef, target = None, np.concatenate([marginals[idx], e[idx].ravel()])
        else:
            coef, target = None, e[idx].ravel().copy()
        tasks.append(
            (
                kind,
                level,
                x,
                y,
                eve_pairs,
                extras,
                mode,
                coef,
                target,
                m,
                solver,
                threads,
                float(max_correction),
                preprocessing,
            )
        )
    disable = (n_points == 1) if progress is None else not progress
    if progress is None and not disable:
        disable = None  # tqdm: shown only on a terminal
    bar = tqdm(
        total=n_points, unit="pt", desc=f"bff {kind} m={m}", disable=disable, file=sys.stderr
    )
    results: list = [None] * n_points
    with bar:
        if solver == "JAX":
            results = _solve_points_ipm(tasks, bar)
            _clarabel_fallback(tasks, results)
        elif processes == 1:
            for i, task in enumerate(tasks):
                results[i] = _solve_point(task)
                bar.update()
        else:
            for i, result in imap_unordered(_solve_point, tasks, processes):
                results[i] = result
                bar.update()

    def gather(name, dtype=float, extra=()):
        arr = np.array([r[name] for r in results], dtype=dtype)
        return arr.reshape(shape + extra)

    t_nodes, w_nodes = gauss_radau(m)
    return BffResult(
        value=gather("value"),
        dual_value=gather("dual_value"),
        correction=gather("correction"),
        status=gather("status", np.int8),
        solver_status=gather("solver_status", np.int8),
        node_value=gather("node_value", float, (m - 1,)),
        node_status=gather("node_status", object, (m - 1,)).astype(str),
        seconds=gather("seconds"),
        theta=np.array(t),
        phi=np.array(p),
        omega=np.array(w),
        bell_value=np.array(eta),
        correlators=None if e is None else np.array(e),
        nodes=t_nodes[:-1],
        weights=w_nodes[:-1] / (t_nodes[:-1] * _LN2),
        sizes=sdp_sizes(kind, level, x=x, y=y, eve_pairs=eve_pairs, extras=extras, constraint=mode),
        settings={
            "kind": kind,
            "x": x,
            "y": y,
            "m": m,
            "level": level,
            "eve_pairs": eve_pairs,
            "extras": extras,
            "solver": solver,
            "constraint": mode,
            "preprocessing": preprocessing,
            "max_correction": float(max_correction),
            "processes": processes,
        },
        behaviour=None if behaviour_used is None else np.array(behaviour_used),
        tangent_value=gather("tangent_value"),
        slope=gather("slope", float, (_EQUALITIES[mode],)),
        last_node=_last_node_term(m, kind, preprocessing),
    )


# --- the backend of jaxbell.rates: di_entropy(..., method="bff") ------------------------------

#: What the strategies must reproduce with ``method="bff"`` in :mod:`jaxbell.rates`.
CONSTRAINTS = ("bell", "correlators", "full")
#: Equalities of each constraint in the node SDP (:func:`sdp_sizes`).
_EQUALITIES = {"bell": 1, "correlators": 4, "full": 8}


@dataclasses.dataclass(frozen=True)
class BffOptions:
    """Settings of the certified backend: ``options={...}`` with ``method="bff"`` in the rates.

    ``jaxbell.di_entropy(..., method="bff", options={"m": 8})``, ``rate_curve``,
    ``noisy_key_rate``, ``noisy_global_rate``, ``critical_visibility`` and
    ``noisy_rate_curve`` pass these on to :func:`bff_entropy`.

    Attributes
    ----------
    m : int
        Gauss-Radau nodes, 2..40 (default 8; ``m - 1`` SDPs per point). Every m gives a valid
        lower bound; small m (3, 4) is looser and faster.
    level : {1, 2}
        Relaxation level (default 2).
    eve_pairs : bool
        Every product of two Eve letters in the moment matrix (default False).
    extras : bool or None
        BFF's extra monomials (default None: for kind "key" only; see :func:`bff_entropy`).
    solver : {"CLARABEL", "SCS", "MOSEK", "JAX"}
        Solver (default "JAX", the batched interior-point method; or a cvxpy solver).
    processes : int or None
        Worker processes for the points (default None: one per core, >= 4 points each).
    progress : bool or None
        tqdm bar over the points (None: on a terminal, for more than one point).
    max_correction : float
        Largest certificate correction accepted per point, bits (default 1e-4).
    constraint : {"bell", "correlators", "full"}
        "bell" (default): the strategies reach ``<B> = bell_value``. "correlators": they
        reproduce all four correlators E[x, y] -- those given to :func:`certify` as
        ``statistics``, or by default those of the strategy of eq. (6) under white noise that
        reach the Bell value, ``v E`` with ``v = bell_value / eta^Q`` (Props. 4 and 6), the
        statistics of the noisy strategy in ``noisy_key_rate``. A stronger constraint: a
        certified lower bound on that protocol's entropy, which may exceed the Bell-value
        infimum. "full": every p(ab|xy) of a behaviour given as ``statistics`` (marginals
        included; the unreduced relaxation, :func:`sdp_sizes`).
    preprocessing : float
        Noisy preprocessing p in [0, 1/2] (kind "key" only; default 0): the bound is on
        H(A'|X=x,E), A' Alice's key bit flipped with probability p (Ho et al. 2020).

    References
    ----------
    Brown, Fawzi & Fawzi, Quantum 8, 1445 (2024), arXiv:2106.13692; Props. 4 and 6 of
    Wooltorton, Brown & Colbeck, PRL 132, 210802 (2024).
    """

    m: int = 8
    level: int = 2
    eve_pairs: bool = False
    extras: bool | None = None
    solver: str = DEFAULT_SOLVER
    processes: int | None = None
    progress: bool | None = None
    max_correction: float = DEFAULT_MAX_CORRECTION
    constraint: str = "bell"
    preprocessing: float = 0.0

    def __post_init__(self):
        _check_int(self.m, "options['m']", 2, 40)
        _check_int(self.level, "options['level']", 1, 2)
        _check_bool(self.eve_pairs, "options['eve_pairs']")
        if self.extras is not None:
            _check_bool(self.extras, "options['extras']")
        object.__setattr__(self, "solver", _check_solver(self.solver, "options['solver']"))
        if self.processes is not None:
            _check_int(self.processes, "options['processes']", 1, 4096)
        if self.progress is not None:
            _check_bool(self.progress, "options['progress']")
        mc = self.max_correction
        if isinstance(mc, bool) or not isinstance(mc, (int, float)) or not mc > 0:
            raise ValueError(
                f"options['max_correction'] must be a positive number of bits, got {mc!r}"
            )
        if self.constraint not in CONSTRAINTS:
            raise ValueError(
                f"options['constraint'] must be one of {CONSTRAINTS}, got {self.constraint!r}"
            )
        p = _check_preprocessing(self.preprocessing, "options['preprocessing']")
        object.__setattr__(self, "preprocessing", p)

    @classmethod
    def from_mapping(cls, options: Mapping[str, Any] | BffOptions | None) -> BffOptions:
        """Build from a dict (unknown keys raise a TypeError listing the valid ones)."""
        return options_from_mapping(cls, options, "bff")

    def solver_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of :func:`bff_entropy` (all but ``constraint``)."""
        out = dataclasses.asdict(self)
        out.pop("constraint")
        return out


def certify(
    theta: ArrayLike,
    phi: ArrayLike,
    omega: ArrayLike,
    bell_value: ArrayLike | None,
    *,
    kind: str = "key",
    x: int = 0,
    y: int = 0,
    options: Mapping[str, Any] | BffOptions | None = None,
    progress: bool | None = None,
    statistics: ArrayLike | None = None,
) -> dict[str, np.ndarray]:
    """The certified values behind ``method="bff"`` of :mod:`jaxbell.rates`, with their status.

    ``options.constraint`` and ``options.preprocessing`` (:class:`BffOptions`) select the
    problem; ``statistics`` carries what the protocol observed (below). Points whose statistics
    have a local model are exactly h(p) without an SDP (0 without preprocessing): a
    deterministic strategy, with Eve holding its hidden variable, reaches them, and
    H(A'|E) >= H(A'|A, E) = h(p) for every strategy. Local here means ``|bell_value| <= eta^L``
    (constraint "bell") or all eight CHSH inequalities holding for the correlators
    (``max_chsh_value(E) <= 2``; "correlators", and "full" by Fine's theorem -- the eight CHSH
    inequalities and positivity are the facets of the local polytope of a 2-input, 2-outcome
    behaviour). Since h(p) bounds every point from below, the shortcut stays rigorous
    even where rounding puts a point just on the wrong side. Elsewhere the value is
    :func:`bff_entropy`'s (the larger of its bound and h(p)), NaN where not certified.

    Parameters
    ----------
    theta, phi, omega, bell_value : array_like
        Broadcast together (and with the batch axes of ``statistics``); radians, and <B>
        with |bell_value| <= |eta^Q| (the rates check). ``bell_value`` is used by constraint
        "bell" and by "correlators" without ``statistics``; otherwise it may be None (given,
        it only takes part in broadcasting).
    kind, x, y
        As in :func:`bff_entropy` (preprocessing needs kind "key").
    options : dict or BffOptions, optional
        :class:`BffOptions`.
    progress : bool or None
        Used when ``options`` does not set ``progress``.
    statistics : array_like, optional
        Constraint "bell": None. "correlators": E[x, y], shape (..., 2, 2), or None for
        ``v E`` of eq. (6) with ``v = bell_value / eta^Q``. "full" (required): a behaviour
        p[a, b, x, y], shape (..., 2, 2, 2, 2), checked with
        :func:`jaxbell.rates.protocol.check_behaviour` (argument name ``statistics``).

    Returns
    -------
    dict of numpy.ndarray
        Broadcast shape: ``value`` (bits), ``status`` (int8, the certificate's,
        :data:`STATUS_FLAGS`), ``solver_status`` (int8, the solver's own,
        :data:`SOLVER_STATUS_FLAGS`; 5 "not_solved" where no SDP ran), ``correction`` and
        ``dual_value`` (bits), ``seconds``, ``solved`` (bool: an SDP ran); and ``options``.
    """
    opts = BffOptions.from_mapping(options)
    if progress is not None and (not isinstance(options, Mapping) or "progress" not in options):
        opts = dataclasses.replace(opts, progress=progress)
    kind = _check_kind(kind)
    if kind != "key" and opts.preprocessing != 0.0:
        raise ValueError(
            "options['preprocessing'] applies to kind 'key' only (Alice's key bit is flipped); "
            f"got kind={kind!r} with preprocessing {opts.preprocessing!r}"
        )
    constraint = opts.constraint
    _import_cvxpy(opts.solver)
    with x64_scope():
        from jaxbell.family import local_bound, quantum_bound
        from jaxbell.nonlocality import max_chsh_value

        t, p, w = (np.asarray(a, dtype=np.float64) for a in as_angles(theta, phi, omega))
        shapes = [t.shape]
        eta = None
        if bell_value is not None:
            eta = as_real_array(bell_value, "bell_value")
            shapes.append(eta.shape)
        elif constraint == "bell" or (constraint == "correlators" and statistics is None):
            raise ValueError(
                f"bell_value is required with options['constraint']={constraint!r}"
                + ("" if constraint == "bell" else " and no statistics")
            )
        stats = None
        if constraint == "bell":
            if statistics is not None:
                raise ValueError(
                    "statistics must be None with options['constraint']='bell' (the Bell "
                    "value is the constraint); use 'correlators' or 'full' to constrain more"
                )
        elif constraint == "correlators" and statistics is not None:
            stats = np.asarray(as_correlators(statistics, "statistics"), dtype=np.float64)
            shapes.append(stats.shape[:-2])
        elif constraint == "full":
            if statistics is None:
                raise ValueError(
                    "options['constraint']='full' needs statistics: a behaviour p[a, b, x, y] "
                    "of shape (..., 2, 2, 2, 2), e.g. jaxbell.rates.protocol.device_behaviour(...)"
                )
            from jaxbell.rates.protocol import check_behaviour

            stats = check_behaviour(statistics, "statistics")
            if stats.shape[-1] != 2:
                raise ValueError(
                    "statistics for options['constraint']='full' must have shape "
                    f"(..., 2, 2, 2, 2) (Bob's two test inputs); got {stats.shape}"
                )
            shapes.append(stats.shape[:-4])
        try:
            shape = np.broadcast_shapes(*shapes)
        except ValueError:
            raise ValueError(
                "the angles, bell_value and the batch axes of statistics must broadcast "
                f"together; got shapes {shapes}"
            ) from None
        t, p, w = (np.broadcast_to(a, shape).reshape(-1) for a in (t, p, w))
        if eta is not None:
            eta = np.broadcast_to(eta, shape).reshape(-1)
        n = t.size
        if constraint == "bell":
            local = np.abs(eta) <= np.asarray(local_bound(t, p, w), dtype=np.float64)
        else:
            if stats is None:  # "correlators" by default: v E of eq. (6), v = bell_value / eta^Q
                q = np.asarray(quantum_bound(t, p, w), dtype=np.float64)
                _check_default_correlators(t, p, w, eta, q)
                from jaxbell.strategy import strategy_correlators

                e0 = np.asarray(strategy_correlators(t, p, w), dtype=np.float64)
                stats = np.clip((eta / q)[:, None, None] * e0, -1.0, 1.0)
            else:
                tail = stats.shape[-2:] if constraint == "correlators" else stats.shape[-4:]
                stats = np.broadcast_to(stats, shape + tail).reshape((n, *tail))
            e = stats if constraint == "correlators" else _correlators_of(stats)
            local = np.asarray(max_chsh_value(e), dtype=np.float64) <= 2.0
    floor = _binary_entropy(opts.preprocessing)
    out = {
        "value": np.full(n, floor),
        "status": np.zeros(n, dtype=np.int8),
        "solver_status": np.full(n, 5, dtype=np.int8),  # "not_solved" where no SDP is needed
        "correction": np.zeros(n),
        "dual_value": np.zeros(n),
        "seconds": np.zeros(n),
    }
    solve = ~local
    idx = np.flatnonzero(solve)
    if idx.size:
        kwargs = opts.solver_kwargs()
        ts, ps, ws = t[idx], p[idx], w[idx]
        if constraint == "bell":
            res = bff_entropy(ts, ps, ws, eta[idx], kind=kind, x=x, y=y, **kwargs)
        elif constraint == "correlators":
            res = bff_entropy(
                ts, ps, ws, None, correlators=stats[idx], kind=kind, x=x, y=y, **kwargs
            )
        else:
            res = bff_entropy(ts, ps, ws, None, behaviour=stats[idx], kind=kind, x=x, y=y, **kwargs)
        out["value"][idx] = res.value  # already max(h(p), bound); NaN where not certified
        out["status"][idx] = res.status
        out["solver_status"][idx] = res.solver_status
        out["correction"][idx] = res.correction
        out["dual_value"][idx] = res.dual_value
        out["seconds"][idx] = res.seconds
    out = {k: a.reshape(shape) for k, a in out.items()}
    out["solved"] = solve.reshape(shape)
    out["options"] = opts
    return out


def _correlators_of(behaviour: np.ndarray) -> np.ndarray:
    """E[..., x, y] = sum_ab (-1)^(a+b) p[..., a, b, x, y]."""
    sign = np.array([1.0, -1.0])
    return np.einsum("a,b,...abxy->...xy", sign, sign, behaviour)


def _check_default_correlators(t, p, w, eta, q) -> None:
    """The default correlators v E need eta^Q != 0 and |bell_value| <= |eta^Q|."""
    zero = q == 0
    if np.any(zero):
        i = int(np.flatnonzero(zero)[0])
        raise ValueError(
            "options['constraint']='correlators' fixes the correlators v E of eq. (6) with "
            f"v = bell_value / eta^Q, undefined at (theta, phi, omega) = ({t[i]:.17g}, "
            f"{p[i]:.17g}, {w[i]:.17g}) where eta^Q = 0; call "
            "bff_entropy(..., correlators=v * E) with the visibility v instead"
        )
    bad = np.abs(eta) > np.abs(q) * (1 + 1e-12)
    if np.any(bad):
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(
            "options['constraint']='correlators' fixes the correlators v E of eq. (6) with "
            f"v = bell_value / eta^Q, so it needs |bell_value| <= |eta^Q|; got "
            f"{eta[i]!r} where |eta^Q| = {abs(q[i])!r} (use constraint 'bell')"
        )


def rates_backend(
    theta: ArrayLike,
    phi: ArrayLike,
    omega: ArrayLike,
    bell_value: ArrayLike | None,
    *,
    kind: str,
    x: int,
    y: int,
    options: Mapping[str, Any] | BffOptions | None,
    statistics: ArrayLike | None = None,
) -> jax.Array:
    """The ``method="bff"`` backend of :func:`jaxbell.di_entropy`: certified bits (NaN: failed).

    :func:`certify`'s ``value`` (``statistics`` passed on); see it, and :class:`BffOptions`
    for ``options``.
    """
    value = certify(
        theta,
        phi,
        omega,
        bell_value,
        kind=kind,
        x=x,
        y=y,
        options=options,
        statistics=statistics,
    )["value"]
    with x64_scope():
        return jnp.asarray(value, dtype=jnp.float64)


# --- argument checks ------------------------------------------------------------------------


def last_node_bound(preprocessing: float = 0.0, kind: str = "key") -> float:
    r"""Certified lower bound on the node value ``1 + inf f_1`` at the last node t = 1.

    For every strategy, with Eve's state ``sigma = sum_a sigma_a`` and ``sigma_a`` her state
    given Alice's raw outcome a, the t = 1 node value is ``g = 1 - sum_a Tr(sigma_a
    sigma^{-1} sigma_a) >= 0``; after noisy preprocessing with flip probability p it is
    exactly ``2p(1-p) + (1-2p)^2 g >= 2p(1-p)`` (docs/rates.md, "The last node"). The bound
    is tight below the quantum bound: Eve holding the purification of a full-rank state
    (every white-noise point v < 1) has g = 0. Kind "global" (no preprocessing): 0.
    """
    if kind != "key":
        return 0.0
    p = float(preprocessing)
    return 2.0 * p * (1.0 - p)


def _last_node_term(m: int, kind: str, preprocessing: float) -> float:
    """The t = 1 node's certified contribution to the bound, in bits: ``w_m / (t_m ln 2)``
    times :func:`last_node_bound` (``t_m = 1``, ``w_m = 1/m^2``)."""
    t_nodes, w_nodes = gauss_radau(m)
    return float(w_nodes[-1] / (t_nodes[-1] * _LN2)) * last_node_bound(preprocessing, kind)


def _binary_entropy(p: float) -> float:
    """h(p) in bits (0 at p = 0): the entropy of Alice's flips, the floor of H(A'|E)."""
    if p <= 0.0:
        return 0.0
    return float(-p * math.log2(p) - (1.0 - p) * math.log2(1.0 - p))


def _check_preprocessing(value, name: str = "preprocessing") -> float:
    """A flip probability p in [0, 1/2] as a float; errors name the argument."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a flip probability in [0, 1/2] (a number), got {value!r}")
    p = float(value)
    if not 0.0 <= p <= 0.5:  # NaN fails too
        raise ValueError(f"{name} must lie in [0, 1/2] (Alice's flip probability), got {p!r}")
    return p


def _check_int(value, name: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer in [{low}, {high}], got {value!r}")
    if not low <= int(value) <= high:
        raise ValueError(f"{name} must lie in [{low}, {high}], got {value}")
    return int(value)


def _check_bool(value, name: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def _check_kind(kind) -> str:
    if kind not in KINDS:
        raise ValueError(
            f"kind must be 'key' (H(A|X=x,E)) or 'global' (H(AB|X=x,Y=y,E)), got {kind!r}"
        )
    return kind


def _check_xy(x, y) -> tuple[int, int]:
    return _check_int(x, "x", 0, 1), _check_int(y, "y", 0, 1)


def _check_solver(solver, name: str = "solver") -> str:
    upper = str(solver).upper() if isinstance(solver, str) else solver
    if upper not in SOLVERS:
        raise ValueError(f"{name} must be one of {SOLVERS} (cvxpy names), got {solver!r}")
    return upper


def _import_cvxpy(solver: str | None = None):
    """cvxpy, with a clear message naming the extra when it (or the solver) is missing.

    None for solver "JAX" (jaxbell's own solver needs no cvxpy).
    """
    if solver == "JAX":
        return None
    try:
        import cvxpy as cp
    except ImportError as err:  # pragma: no cover - exercised with a patched import in tests
        raise ImportError(f"jaxbell.rates.bff needs cvxpy: {_SDP_EXTRA}") from err
    if solver is not None and solver not in cp.installed_solvers():
        if solver == "MOSEK":
            raise ImportError(
                "solver='MOSEK' needs MOSEK installed and licensed (pip install mosek; see "
                "mosek.com for a licence); 'JAX' (the default) and 'CLARABEL' need neither"
            )
        raise ImportError(f"cvxpy cannot find solver {solver!r}: {_SDP_EXTRA}")
    return cp
