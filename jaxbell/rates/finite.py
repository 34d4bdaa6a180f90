r"""Finite-size DI key rates: entropy accumulation with certified min-tradeoff functions.

Every other rate in :mod:`jaxbell.rates` is asymptotic. This module bounds the key of a
protocol of n rounds secure against *general* (coherent) attacks, with the entropy
accumulation theorem (EAT) [DFR, DF] in the form used for DIQKD by Arnon-Friedman et al.
[AF18, AFRV]. The min-tradeoff function is the certified affine bound of the
Brown-Fawzi-Fawzi SDPs (:class:`jaxbell.rates.bff.BffResult` ``tangent_value``/``slope``,
rigorous despite solver tolerance like every certified value here); the qubit envelope's
supporting line (``method="qubit"``) is offered as an *uncertified* estimate and labelled so.

The protocol
------------
n rounds. Each is a test round with probability gamma (``test_probability``): inputs x, y
uniform on {0, 1}, outcomes kept; otherwise a key round on Alice's key input ``x`` and Bob's
``bob_key`` (2: his key-only input). Alice flips each key-round bit with probability p
(``preprocessing``, [Ho20]). Bob reconstructs Alice's whole string A' by one-way error
correction (syndrome plus a hash of ``log(1/eps_EC)`` bits) and then evaluates the test
statistic of the test rounds; the protocol aborts unless the empirical min-tradeoff function
f(freq C) reaches the threshold h (below). Privacy amplification by two-universal hashing.

Security (soundness ``eps_sec``) splits as ``eps_sec = eps_EC + eps_PA + 2 eps_s + eps_EA``
(equal fifths by default; error correction, privacy amplification, smoothing, the EAT event
[AFRV, Thm. 11]); ``eps_s' = eps_s'' = eps_s / 4`` in the chain rule below. The key length is

.. math::

    \ell = H^{\varepsilon_s'}_{\min}(A' B'|XYTE) - H^{\varepsilon_s''}_{\max}(B'|XYTE)
           - 3\vartheta(\varepsilon_s/4) - \mathrm{leak_{EC}} - 2\log(1/\varepsilon_{PA}),

B' Bob's test-round outputs (a constant in key rounds), ``vartheta(e) = -log(1 - sqrt(1 -
e^2))``, by the chain rule of [VDTR13] (Tomamichel's book, eq. (6.57)) as in [AFRV, AF18] and
the leftover hash lemma. The three entropic terms:

* **EAT** [DF, Thm. 3.?; AF18, Methods], alpha in (1, 2), with ``p_Omega >= eps_EA`` (else
  the protocol aborts with probability > 1 - eps_EA, and is secure):

  .. math::
      H^{\varepsilon}_{\min} > n h - n(\alpha - 1)\tfrac{\ln 2}{2} V^2
        - \tfrac{1}{\alpha - 1}\log\tfrac{2}{\varepsilon^2 p_\Omega^2} - n(\alpha-1)^2 K_\alpha,

  ``V = log(2 d^2 + 1) + sqrt(2 + Var(f))``, ``K_alpha = 2^((alpha-1)(log d + Max f - Min f))
  ln^3(2^(log d + Max f - Min f) + e^2) / (6 (2 - alpha)^3 ln 2)``, d = 4 the dimension of a
  round's A'_i B'_i.
* **H_max of B'**: B' holds one bit per test round, so ``H_max^eps(B'|XYTE) <= H_max^eps(B'|T)
  <= k`` on the state conditioned on acceptance (Omega), k the number of test rounds exceeded
  with probability at most (1 - sqrt(1 - eps^2)) eps_EA (a Bernstein bound on the binomial
  tail): conditioning on Omega raises a probability by at most 1/p_Omega <= 1/eps_EA.
* **Error correction** (honest devices, i.i.d.): the Shannon limit plus the second-order
  term of the asymptotic equipartition property [TCR09, Thm. 9] at completeness eps_c,
  ``leak_EC = f n H(A'|B) + sqrt(n) 4 log(2 + sqrt 2) sqrt(log(2 / eps_c^2)) + log(1/eps_EC)``
  (f the code's efficiency factor, ``error_correction_efficiency``; H(A'|B) averaged over
  key rounds, ``1 - gamma``, and test rounds, gamma).

The min-tradeoff function
-------------------------
A round's test symbol is c = (a, b, x, y) with probability gamma p(ab|xy)/4, or "⊥" (key
round). The constrained statistics b (the Bell value; the correlators; or marginals and
correlators, as :mod:`jaxbell.rates.bff` orders them) are linear in the test symbols'
distribution: ``b = sum_c P(c) s(c)`` with P = p(ab|xy)/4 and scores s(c) (``4 c_xy
(-1)^(a+b)`` for the Bell value). The certified affine bound ``g(b) = g_t + lambda . (b - b_t)``
of the BFF dual at a tangent point b_t holds for *every* quantum strategy, so every round's
entropy is at least ``(1 - gamma) g(b)`` (test rounds are not counted). With ``u_c = (1 -
gamma) g(s(c))`` the "crossover" min-tradeoff function [DF, Sec. 5; as in Nadlinger et al.
2022] ``f(⊥) = max_c u_c =: F``, ``f(c) = F + (u_c - F) / gamma`` equals ``(1 - gamma) g(b)``
on every distribution a round can produce, and ``Max f - Min_Sigma f <= max u - min u``
(gamma-free), ``Var f <= (max u - min u)^2 max_m (m - gamma m^2) / gamma``. The tangent point
is chosen per n among ``tangent_scales`` (``b_t = kappa b``, towards white noise): a lower
tangent has a smaller slope, hence smaller second-order terms, at a lower first-order rate.

That is the ``second_order="worst"`` bound. The default, ``"observed"``, tests one binary score
C in the direction of g_t instead (C = 1 with probability (1 + lambda_t . s(c) / M_t) / 2,
randomised scoring; CHSH's win/lose), so that the EAT's variance can be taken at the observed
score inside an infimum, the form of Liu et al. (Nat. Phys. 17, 448 (2021)) used by Nadlinger
et al. (2022); see :func:`_rate_observed`. It needs about 3x fewer rounds.

The threshold ``h = (1 - gamma) g(b) - delta`` sits below the honest devices' mean of f by
Bernstein's inequality at completeness eps_c, so honest devices abort with probability at
most ``eps_com = 2 eps_c`` (half for the test, half for error correction). Per call the
test probability gamma, alpha and the tangent point are optimised on nested grids (the rate
is a smooth function of log gamma and log(alpha - 1)); the min-tradeoff functions are
computed once per behaviour, not once per n.

References
----------
[DFR] F. Dupuis, O. Fawzi and R. Renner, "Entropy accumulation", Commun. Math. Phys. 379, 867
(2020), arXiv:1607.01796.
[DF] F. Dupuis and O. Fawzi, "Entropy accumulation with improved second-order term", IEEE
Trans. Inf. Theory 65, 7596 (2019), arXiv:1805.11652.
[AF18] R. Arnon-Friedman, F. Dupuis, O. Fawzi, R. Renner and T. Vidick, "Practical
device-independent quantum cryptography via entropy accumulation", Nat. Commun. 9, 459 (2018).
[AFRV] R. Arnon-Friedman, R. Renner and T. Vidick, "Simple and tight device-independent
security proofs", SIAM J. Comput. 48, 181 (2019), arXiv:1607.01797.
[VDTR13] A. Vitanov, F. Dupuis, M. Tomamichel and R. Renner, "Chain rules for smooth min- and
max-entropies", IEEE Trans. Inf. Theory 59, 2603 (2013).
[TCR09] M. Tomamichel, R. Colbeck and R. Renner, "A fully quantum asymptotic equipartition
property", IEEE Trans. Inf. Theory 55, 5840 (2009).
[Ho20] M. Ho et al., "Noisy preprocessing facilitates a photonic realization of
device-independent quantum key distribution", Phys. Rev. Lett. 124, 230502 (2020).
D. P. Nadlinger et al., "Experimental quantum key distribution certified by Bell's theorem",
Nature 607, 682 (2022) (the crossover min-tradeoff function in a DIQKD experiment).
"""

from __future__ import annotations

import dataclasses
import math
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from jax.typing import ArrayLike
from tqdm import tqdm

from jaxbell._precision import x64_scope
from jaxbell.dataset import finite_rate_dataset
from jaxbell.family import bell_coefficients
from jaxbell.rates import backends
from jaxbell.rates.backends import Batch
from jaxbell.rates.bff import _binary_entropy
from jaxbell.rates.front import _check_bell_tuple
from jaxbell.rates.protocol import (
    _check_key_input,
    check_behaviour,
    check_bob_key,
    check_preprocessing,
    error_correction_cost,
)
from jaxbell.rates.values import Protocol, check_constraint, front_door

__all__ = [
    "FINITE_STATUSES",
    "MinTradeoff",
    "finite_key_rate",
    "finite_rate_curve",
    "min_rounds",
    "min_tradeoff_functions",
    "nadlinger2022_key_length",
]

#: Status of a finite-size rate: 0 positive key, 1 no key at this n (rate <= 0 reported), 2 no
#: key at any n (the asymptotic rate of the min-tradeoff functions is <= 0), 3 failed (no
#: certified min-tradeoff function: NaN).
FINITE_STATUSES = ("key", "no_key_at_this_n", "no_key_at_any_n", "failed")

#: The second-order bounds: "observed" (binary score, variance at the observed score; Liu et
#: al. 2021 as in Nadlinger et al. 2022, the default) and "worst" (variance over every test
#: distribution; Dupuis & Fawzi 2019).
SECOND_ORDER = ("observed", "worst")

#: Tangent points b_t = kappa b of the min-tradeoff functions (b the observed statistics).
DEFAULT_TANGENT_SCALES = (1.0, 0.995, 0.985, 0.97, 0.94)

_LN2 = math.log(2.0)
_D = 4  # dimension of a round's output register A'_i B'_i (two bits)
_EC_ETA = 2.0 + math.sqrt(2.0)  # [TCR09, Thm. 9] for a binary A': sqrt(2^-Hmin) + sqrt(2^Hmax) + 1


def _test_symbols():
    """(a, b, x, y) of the 16 test symbols, in C order of p[a, b, x, y]."""
    return np.array(list(np.ndindex(2, 2, 2, 2)))


def _scores(constraint: str, coefficients: np.ndarray | None) -> np.ndarray:
    """s(c), shape (16, k): ``b = sum_c P(c) s(c)`` with P(c) = p(ab|xy) / 4 (uniform inputs)."""
    sym = _test_symbols()
    a, b, x, y = sym.T
    sign_ab = (-1.0) ** (a + b)
    if constraint == "bell":
        return (4.0 * coefficients[x, y] * sign_ab)[:, None]
    corr = np.zeros((16, 4))
    corr[np.arange(16), 2 * x + y] = 4.0 * sign_ab
    if constraint == "correlators":
        return corr
    marg = np.zeros((16, 4))  # <A_0>, <A_1> (averaged over y), <B_0>, <B_1> (over x)
    marg[np.arange(16), x] = 2.0 * (-1.0) ** a
    marg[np.arange(16), 2 + y] = 2.0 * (-1.0) ** b
    return np.concatenate([marg, corr], axis=1)


@dataclasses.dataclass(frozen=True)
class MinTradeoff:
    """Affine lower bounds ``g_t(b) = value[t] + slope[t] . (b - statistics[t])`` on H(A'|X=x, E).

    One row per tangent point; valid for *every* quantum strategy whose constrained statistics
    are b when ``certified`` (the BFF dual: :class:`jaxbell.rates.bff.BffResult`), an estimate
    otherwise (``method="qubit"``: the qubit envelope's supporting lines).

    Attributes
    ----------
    statistics : numpy.ndarray
        (T, k) tangent points b_t (k = 1 Bell value, 4 correlators, 8 marginals + correlators).
    value, slope : numpy.ndarray
        (T,) bits, and (T, k) bits per unit of each statistic.
    scales : numpy.ndarray
        (T,) kappa with ``b_t = kappa b``.
    honest : numpy.ndarray
        (k,) the observed statistics b.
    test_distribution : numpy.ndarray
        (16,) P(c) = p(ab|xy) / 4 of the test symbols (a, b, x, y).
    scores : numpy.ndarray
        (16, k) s(c) with ``b = P @ scores``.
    status : numpy.ndarray
        (T,) int8, the certificate's status per tangent point (0 certified; NaN rows otherwise).
    constraint, method : str
    certified : bool
    preprocessing : float
    """

    statistics: np.ndarray
    value: np.ndarray
    slope: np.ndarray
    scales: np.ndarray
    honest: np.ndarray
    test_distribution: np.ndarray
    scores: np.ndarray
    status: np.ndarray
    constraint: str
    method: str
    certified: bool
    preprocessing: float
    x: int = 0
    bell: tuple = (math.pi / 2, math.pi / 4, 3 * math.pi / 4)

    def __call__(self, statistics: ArrayLike) -> np.ndarray:
        """g_t at ``statistics`` (shape (..., k)): shape (..., T), bits."""
        b = np.asarray(statistics, dtype=np.float64)
        return self.value + np.einsum(
            "tk,...tk->...t", self.slope, b[..., None, :] - self.statistics
        )

    @property
    def symbol_values(self) -> np.ndarray:
        """(T, 16): g_t at each test symbol's score s(c) (u_c / (1 - gamma), module docstring)."""
        return self(self.scores)  # (16, T)

    @property
    def asymptotic_entropy(self) -> np.ndarray:
        """(T,): g_t at the observed statistics, bits."""
        return self(self.honest)


def _statistics(beh: np.ndarray, constraint: str, coefficients) -> np.ndarray:
    """b of a behaviour p[a, b, x, y] (test inputs only)."""
    return _test_distribution(beh) @ _scores(constraint, coefficients)


def _test_distribution(beh: np.ndarray) -> np.ndarray:
    return (beh[..., :2, :, :2] / 4.0).reshape(16)


def _check_scales(scales) -> np.ndarray:
    s = np.asarray(scales, dtype=np.float64).reshape(-1)
    if s.size == 0 or not np.all(np.isfinite(s)) or np.any((s <= 0) | (s > 1)):
        raise ValueError(f"tangent_scales must be numbers in (0, 1], got {scales!r}")
    return s


def _tangent_backend(method):
    """The backend of ``method``, which must give affine bounds (min-tradeoff functions)."""
    names = backends.with_tangents()
    if not isinstance(method, str) or method not in names:
        others = sorted(set(names) - {"bff", "qubit"})
        more = f" or another backend with affine bounds ({others})" if others else ""
        raise ValueError(
            f"method must be 'bff' (certified) or 'qubit' (estimate){more}, got {method!r}"
        )
    return backends.get(method)


def min_tradeoff_functions(
    probabilities: ArrayLike,
    *,
    bell: tuple[float, float, float] | None = None,
    constraint: str = "bell",
    x: int = 0,
    preprocessing: float = 0.0,
    method: str = "bff",
    options: Mapping[str, Any] | None = None,
    tangent_scales: Sequence[float] = DEFAULT_TANGENT_SCALES,
    protocol: Protocol | None = None,
) -> MinTradeoff:
    """Affine min-tradeoff functions of one behaviour, at the tangent points ``kappa b``.

    Parameters
    ----------
    probabilities : array_like
        One behaviour p[a, b, x, y], shape (2, 2, 2, 2) or (2, 2, 2, 3) (checked by
        :func:`jaxbell.check_behaviour`); its test inputs y in {0, 1} give b.
    bell, constraint, x, preprocessing
        As in :func:`jaxbell.observed_key_rate` (``preprocessing`` a number in [0, 1/2]).
    method : {"bff", "qubit"} or a registered backend with affine bounds
        "bff": certified (the dual of the BFF SDPs at each tangent point, one SDP point per
        tangent). "qubit": the qubit envelope's supporting line at each tangent (constraint
        "bell" only) -- an *uncertified* estimate (an achievable attack's hull). Any backend
        whose :meth:`~jaxbell.rates.backends.Backend.tangents` gives affine bounds works; it
        is certified where the backend declares ``certificate``.
    options : dict, optional
        :class:`jaxbell.BffOptions` (without ``constraint``/``preprocessing``) or
        :class:`jaxbell.QubitOptions`.
    tangent_scales : sequence of float
        kappa in (0, 1]: b_t = kappa b (white noise towards the centre of the local set).
    protocol : Protocol, optional
        ``constraint``, ``x`` and ``preprocessing`` as one :class:`jaxbell.Protocol`.
    """
    protocol, _ = front_door(
        min_tradeoff_functions, protocol, None, constraint=constraint, x=x,
        preprocessing=preprocessing,
    )  # fmt: skip
    constraint, x, preprocessing = protocol.constraint, protocol.x, protocol.preprocessing
    beh = np.asarray(check_behaviour(probabilities, "probabilities"), dtype=np.float64)
    if beh.ndim != 4:
        raise ValueError(
            "probabilities must be one behaviour p[a, b, x, y] of shape (2, 2, 2, 2) or "
            f"(2, 2, 2, 3); got shape {beh.shape} (loop over a batch)"
        )
    check_constraint(constraint)
    x = _check_key_input(x)
    flip = check_preprocessing(preprocessing)  # a number: fixed before the protocol runs
    backend = _tangent_backend(method)
    t0, p0, w0 = (float(a) for a in _check_bell_tuple(bell, constraint))
    scales = _check_scales(tangent_scales)
    with x64_scope():  # the certificate's functional is float64 (bff does the same)
        coef = np.asarray(bell_coefficients(t0, p0, w0), dtype=np.float64)
    scores = _scores(constraint, coef)
    honest = _statistics(beh, constraint, coef)
    # the tangent behaviours kappa p + (1 - kappa) / 4: every statistic scales by kappa
    tangent_beh = (
        scales[:, None, None, None, None] * beh[None, ..., :2, :, :2]
        + (1 - scales)[:, None, None, None, None] / 4.0
    )
    stats = scales[:, None] * honest[None, :]
    n_t = scales.size
    one = Protocol(x=x, bob_key=None, preprocessing=flip, constraint=constraint)
    batch = Batch(
        *(np.full(n_t, a) for a in (t0, p0, w0)),
        stats[:, 0] if constraint == "bell" else None,
        None if constraint == "bell" else tangent_beh,
    )
    res = backend.tangents(batch, one, options)
    value, slope, status = res.tangent_value, res.slope, res.status
    certified = backend.certificate
    return MinTradeoff(
        statistics=stats,
        value=value,
        slope=slope,
        scales=scales,
        honest=honest,
        test_distribution=_test_distribution(beh),
        scores=scores,
        status=status,
        constraint=constraint,
        method=method,
        certified=certified,
        preprocessing=flip,
        x=x,
        bell=(t0, p0, w0),
    )


# --- the finite-size bound ----------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Epsilons:
    """The security parameters: soundness ``eps_sec = ec + pa + 2 s + ea``; completeness ``com``."""

    sec: float
    ec: float
    pa: float
    s: float
    ea: float
    com: float

    @classmethod
    def split(cls, eps_sec: float, eps_com: float) -> Epsilons:
        part = eps_sec / 5.0
        return cls(sec=eps_sec, ec=part, pa=part, s=part, ea=part, com=eps_com)

    def as_attrs(self) -> dict[str, float]:
        return {f"eps_{k}": float(v) for k, v in dataclasses.asdict(self).items()}


def _vartheta(eps):
    """-log2(1 - sqrt(1 - eps^2)), without cancellation for small eps."""
    return -np.log2(eps * eps / (1.0 + np.sqrt(1.0 - eps * eps)))


def _bernstein_deviation(n, variance, width, log_inv):
    """delta with P(mean < mu - delta) <= e^-log_inv (Bernstein, i.i.d., one-sided range width)."""
    a = width * log_inv / 3.0
    return (a + np.sqrt(a * a + 2.0 * n * variance * log_inv)) / n


@dataclasses.dataclass(frozen=True)
class _Costs:
    """Per-behaviour quantities the bound needs (error correction and the test symbols)."""

    key_cost: float  # H(A'|X=x, Y=bob_key, B), bits
    test_cost: float  # mean over the test inputs of H(A|X=x, Y=y, B), bits
    efficiency: float  # the code's factor f >= 1


def _rate_grid(n, gamma, am1, mtf: MinTradeoff, costs: _Costs, eps: Epsilons):
    """Rate (bits/round) on the broadcast grid n (1,1,1), gamma (G,1,1), alpha-1 (1,A,1),
    tangent (T,) on the last axis; NaN where a min-tradeoff function failed, -inf where K_alpha
    overflows (steep min-tradeoff functions at large alpha: no key there)."""
    with np.errstate(over="ignore", invalid="ignore"):
        return _rate_grid_terms(n, gamma, am1, mtf, costs, eps)


def _rate_grid_terms(n, gamma, am1, mtf, costs, eps):
    w = mtf.symbol_values.T  # (T, 16)
    gh = mtf.asymptotic_entropy  # (T,)
    P = mtf.test_distribution
    spread = w.max(axis=1) - w.min(axis=1)  # (T,) max g - min g over the symbols
    one_minus = 1.0 - gamma
    r_width = one_minus * spread  # Max f - Min_Sigma f (bits)
    m_star = np.where(gamma <= 0.5, 1.0 - gamma, 1.0 / (4.0 * gamma))
    var_max = r_width**2 * m_star / gamma
    # honest variance of f: D_c = (F - u_c) / gamma >= 0 with probability gamma P(c)
    d = (w.max(axis=1)[:, None] - w) * one_minus[..., None] / gamma[..., None]  # (.., T, 16)
    ed = np.sum(P * d, axis=-1)
    ed2 = np.sum(P * d * d, axis=-1)
    var_honest = gamma * ed2 - (gamma * ed) ** 2
    log_inv_c = math.log(2.0 / eps.com)  # half of the completeness to the test
    delta = _bernstein_deviation(n, var_honest, r_width / gamma, log_inv_c)
    h = one_minus * gh - delta
    v = math.log2(2 * _D * _D + 1) + np.sqrt(2.0 + var_max)
    expo = math.log2(_D) + r_width
    k_alpha = (
        np.exp2(am1 * expo)
        * np.log(np.exp2(expo) + math.e**2) ** 3
        / (6.0 * (1.0 - am1) ** 3 * _LN2)
    )
    eps_smooth = eps.s / 4.0
    eat = (
        n * h
        - n * am1 * (_LN2 / 2.0) * v * v
        - np.log2(2.0 / (eps_smooth**2 * eps.ea**2)) / am1
        - n * am1 * am1 * k_alpha
    )
    return (eat - _common_costs(n, gamma, costs, eps)) / n


def _binary_test(mtf: MinTradeoff, floor: float):
    """Per tangent t, the binary test of the observed-score bound (see :func:`_rate_observed`).

    The score of test symbol c in the direction of g_t is ``sigma_c = lambda_t . s(c)``;
    C = 1 with probability (1 + sigma_c / M_t) / 2, M_t = max |sigma_c| (randomised scoring,
    deterministic where |sigma_c| = M_t, e.g. CHSH), so ``omega = E[C] = (1 + lambda_t . b /
    M_t) / 2`` and ``g_t = G_t + M_t (2 omega - 1)``. Returns (M, G, omega_honest, delta_fn):
    ``delta_fn(omega)`` (T, W) is a certified lower bound on H - g_t at score omega (the other
    tangents of the same statistic, constraint "bell"; 0 otherwise), >= 0.
    """
    sigma = mtf.scores @ mtf.slope.T  # (16, T)
    big = np.maximum(np.max(np.abs(sigma), axis=0), 1e-12)  # (T,); a flat g_t: a fair coin
    G = mtf.value - np.einsum("tk,tk->t", mtf.slope, mtf.statistics)
    lam_b = np.einsum("tk,k->t", mtf.slope, mtf.honest)
    omega_h = 0.5 * (1.0 + lam_b / big)
    one_dim = mtf.slope.shape[1] == 1 and (np.all(mtf.slope > 0) or np.all(mtf.slope < 0))

    kinks = np.zeros(0)
    if one_dim:
        # every line in omega (the same omega for all tangents: M_t / lambda_t = 4 max|c| sign)
        scale = big / mtf.slope[:, 0]  # b = scale (2 omega - 1), equal for all t
        b1 = scale[0]
        inter = mtf.value - mtf.slope[:, 0] * (mtf.statistics[:, 0] + b1)  # at omega = 0
        rise = 2.0 * b1 * mtf.slope[:, 0]  # per unit omega
        cross = []
        for i in range(len(rise)):
            for j in range(i + 1, len(rise)):
                if rise[i] != rise[j]:
                    cross.append((inter[j] - inter[i]) / (rise[i] - rise[j]))
            if rise[i] != 0:
                cross.append((floor - inter[i]) / rise[i])
        kinks = np.array([c for c in cross if 0.0 < c < 1.0])

    def delta_fn(omega):  # omega: (W,) -> (T, W)
        g_t = G[:, None] + big[:, None] * (2.0 * omega[None, :] - 1.0)
        if not one_dim:
            return np.zeros_like(g_t)
        # the statistic b at score omega of tangent t: lambda_t b = M_t (2 omega - 1)
        b = big[:, None] * (2.0 * omega[None, :] - 1.0) / mtf.slope[:, 0][:, None]  # (T, W)
        others = mtf.value[None, None, :] + mtf.slope[None, None, :, 0] * (
            b[:, :, None] - mtf.statistics[None, None, :, 0]
        )  # (T, W, T')
        best = np.maximum(np.max(others, axis=-1), floor)
        return np.maximum(best - g_t, 0.0)

    return big, G, omega_h, delta_fn, kinks


def _rate_observed(n, gamma, am1, mtf: MinTradeoff, costs: _Costs, eps: Epsilons, floor=0.0):
    r"""Rate (bits/round) of the observed-score bound on the grid gamma (G,1,1), alpha-1 (1,A,1),
    tangent (T,) last; n a scalar.

    The EAT in the form of Liu et al. (Nat. Phys. 17, 448 (2021), SI Thm. 3) as used by
    Nadlinger et al. (2022, Suppl. eqs. (61)-(73)): with the binary test of
    :func:`_binary_test`, the crossover f (f(1) = f(bot) = u(1), f(0) = u(1) + (u(0) - u(1)) /
    gamma, u = (1 - gamma) g_t) and

    .. math::
        H_{\min} > n u(\omega_{thr}) + n \inf_\omega[\Delta(\omega) - (\alpha-1)V(q(\omega))]
            - n(\alpha-1)^2 K_\alpha
            - \frac{\vartheta(\varepsilon) + \alpha\log(1/\varepsilon_{EA})}{\alpha - 1},

    ``V(q) = (ln 2 / 2)(log 33 + sqrt(2 + Var_q f))^2``, Var at the distribution q(omega) of a
    round with score omega. The infimum over omega in [0, 1] is bounded below exactly: on a
    grid refined at the kinks of Delta (piecewise linear), Delta's minimum on each interval
    is at an end and Var's maximum (a concave quadratic) is computed on it.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        big, G, omega_h, delta_fn, kinks = _binary_test(mtf, floor)
        one_minus = 1.0 - gamma  # (G,1,1)
        width = one_minus * 2.0 * big  # Max f - Min f, (G,1,T)
        jump = width / gamma  # f(1) - f(0)
        # the omega grid with Delta's kinks: where two tangents' lines cross
        grid = np.union1d(np.linspace(0.0, 1.0, 2049), kinks)
        d = delta_fn(grid)  # (T, W)
        lo_w, hi_w = grid[:-1], grid[1:]
        d_min = np.minimum(d[:, :-1], d[:, 1:])  # (T, W-1): Delta is linear between kinks
        # max of Var on each interval: Var = gamma z (1 - gamma z) jump^2 with z = 1 - omega
        z_lo, z_hi = 1.0 - hi_w, 1.0 - lo_w
        z_star = np.clip(1.0 / (2.0 * gamma[..., 0]), z_lo[None, :], z_hi[None, :])  # (G, W-1)
        var = gamma[..., 0] * z_star * (1.0 - gamma[..., 0] * z_star)  # (G, W-1)
        var = var[:, None, None, :] * (jump[:, :, :, None] ** 2)  # (G,1,T,W-1)
        v = (_LN2 / 2.0) * (math.log2(33.0) + np.sqrt(2.0 + var)) ** 2
        inner = np.min(
            d_min[None, None, :, :] * one_minus[..., None] - am1[..., None] * v, axis=-1
        )  # (G,A,T)
        # threshold: the honest number of score-0 rounds, Bernstein at completeness eps_com / 2
        q_h = gamma * (1.0 - omega_h)
        log_inv = math.log(2.0 / eps.com)
        dev = (
            log_inv / 3.0 + np.sqrt(log_inv**2 / 9.0 + 2.0 * n * q_h * (1.0 - q_h) * log_inv)
        ) / n
        omega_thr = 1.0 - (q_h + dev) / gamma
        u_thr = one_minus * (G + big * (2.0 * omega_thr - 1.0))
        expo = math.log2(_D) + width
        k_alpha = (
            np.exp2(am1 * expo)
            * np.log(np.exp2(expo) + math.e**2) ** 3
            / (6.0 * (1.0 - am1) ** 3 * _LN2)
        )
        eps_smooth = eps.s / 4.0
        alpha = 1.0 + am1
        eat = (
            n * u_thr
            + n * inner
            - n * am1 * am1 * k_alpha
            - (_vartheta(eps_smooth) + alpha * math.log2(1.0 / eps.ea)) / am1
        )
        return (eat - _common_costs(n, gamma, costs, eps)) / n


def _common_costs(n, gamma, costs: _Costs, eps: Epsilons):
    """Bits lost besides the EAT: H_max of Bob's test outputs, the chain rule, error
    correction and privacy amplification (the module docstring)."""
    eps_smooth = eps.s / 4.0
    one_minus = 1.0 - gamma
    # P(#tests > k | Omega) <= P(#tests > k) / p_Omega and p_Omega >= eps_EA (else secure)
    tail = -math.log(eps_smooth**2 / (1.0 + math.sqrt(1.0 - eps_smooth**2))) - math.log(eps.ea)
    k_tests = n * gamma + tail / 3.0 + np.sqrt(tail**2 / 9.0 + 2.0 * n * gamma * one_minus * tail)
    chain = 3.0 * _vartheta(eps_smooth)
    eps_c = eps.com / 2.0
    leak = (
        costs.efficiency * n * (one_minus * costs.key_cost + gamma * costs.test_cost)
        + np.sqrt(n) * 4.0 * math.log2(_EC_ETA) * math.sqrt(math.log2(2.0 / eps_c**2))
        + math.log2(1.0 / eps.ec)
    )
    return k_tests + chain + leak + 2.0 * math.log2(1.0 / eps.pa)


def _grid(lo, hi, num):
    return np.exp(np.linspace(math.log(lo), math.log(hi), num))


def _optimise(
    n: float,
    mtf: MinTradeoff,
    costs: _Costs,
    eps: Epsilons,
    gamma=None,
    second_order: str = "observed",
):
    """(rate, gamma, alpha, tangent index) maximising the rate at n rounds (nested grids).

    ``second_order`` "worst": the variance of f over every test distribution (the bound of
    the module docstring); "observed": the binary-score bound of :func:`_rate_observed`,
    started from the worst-case optimum (both are valid; "observed" is tighter)."""
    ok = np.isfinite(mtf.value) & np.all(np.isfinite(mtf.slope), axis=1)
    if not np.any(ok):
        return math.nan, math.nan, math.nan, -1
    sub = dataclasses.replace(
        mtf,
        statistics=mtf.statistics[ok],
        value=mtf.value[ok],
        slope=mtf.slope[ok],
        scales=mtf.scales[ok],
        status=mtf.status[ok],
    )
    index = np.flatnonzero(ok)
    g_lo, g_hi = 1e-9, 0.99
    a_lo, a_hi = 1e-10, 0.99
    g = np.array([gamma]) if gamma is not None else _grid(g_lo, g_hi, 60)
    a = _grid(a_lo, a_hi, 60)
    best = None
    for _ in range(4):
        r = _rate_grid(
            np.array(float(n)).reshape(1, 1, 1),
            g.reshape(-1, 1, 1),
            a.reshape(1, -1, 1),
            sub,
            costs,
            eps,
        )
        r = np.where(np.isfinite(r), r, -np.inf)
        i, j, k = np.unravel_index(np.argmax(r), r.shape)
        best = (float(r[i, j, k]), float(g[i]), float(a[j]), int(index[k]))
        # refine around the optimum: one grid step either side, finer
        if gamma is None and g.size > 1:
            step = g[1] / g[0] if g.size > 1 else 1.0
            g = _grid(max(g[i] / step, g_lo), min(g[i] * step, g_hi), 21)
        step = a[1] / a[0]
        a = _grid(max(a[j] / step, a_lo), min(a[j] * step, a_hi), 21)
    rate, gam, am1, t = best
    if second_order == "worst" or not math.isfinite(rate):
        return rate, gam, 1.0 + am1, t
    worst = best
    floor = _binary_entropy(mtf.preprocessing)
    g = (
        np.array([gamma])
        if gamma is not None
        else _grid(max(gam / 8, g_lo), min(gam * 8, g_hi), 13)
    )
    a = _grid(max(am1 / 30, a_lo), min(am1 * 30, a_hi), 13)
    for _ in range(3):
        r = _rate_observed(
            float(n), g.reshape(-1, 1, 1), a.reshape(1, -1, 1), sub, costs, eps, floor
        )
        r = np.where(np.isfinite(r), r, -np.inf)
        i, j, k = np.unravel_index(np.argmax(r), r.shape)
        best = (float(r[i, j, k]), float(g[i]), float(a[j]), int(index[k]))
        if gamma is None and g.size > 1:
            step = g[1] / g[0]
            g = _grid(max(g[i] / step, g_lo), min(g[i] * step, g_hi), 9)
        step = a[1] / a[0]
        a = _grid(max(a[j] / step, a_lo), min(a[j] * step, a_hi), 9)
    rate, gam, am1, t = best if math.isfinite(best[0]) else worst
    return rate, gam, 1.0 + am1, t


def _costs(beh: np.ndarray, x: int, bob_key: int, flip: float, efficiency: float) -> _Costs:
    with x64_scope():
        key = float(error_correction_cost(beh, x, bob_key, preprocessing=flip))
        test = float(
            np.mean([float(error_correction_cost(beh, xi, yi)) for xi in (0, 1) for yi in (0, 1)])
        )
    return _Costs(key_cost=key, test_cost=test, efficiency=efficiency)


def _check_rounds(rounds) -> np.ndarray:
    try:
        n = np.asarray(rounds, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"rounds must be a number or an array of numbers, got {rounds!r}") from None
    if n.size == 0:
        raise ValueError("rounds must not be empty")
    if not np.all(np.isfinite(n)) or np.any(n < 1):
        bad = n.reshape(-1)[~(np.isfinite(n.reshape(-1)) & (n.reshape(-1) >= 1))][0]
        raise ValueError(
            f"rounds must be finite and >= 1 (a number of protocol rounds), got {bad!r}"
        )
    if np.any(n != np.round(n)):
        bad = float(n.reshape(-1)[n.reshape(-1) != np.round(n.reshape(-1))][0])
        raise ValueError(
            f"rounds must be whole numbers of protocol rounds, got {bad:g} "
            "(round them first, e.g. np.round(np.geomspace(1e5, 1e12, 30)))"
        )
    return n


def _check_open_unit(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise TypeError(f"{name} must be a number in (0, 1), got {value!r}")
    v = float(value)
    if not (0.0 < v < 1.0):
        raise ValueError(f"{name} must lie in (0, 1), got {value!r}")
    return v


def _prepare(
    probabilities,
    *,
    eps_sec,
    eps_com,
    test_probability,
    bell,
    constraint,
    x,
    bob_key,
    preprocessing,
    method,
    options,
    error_correction_efficiency,
    tangent_scales,
    min_tradeoff,
):
    eps = Epsilons.split(_check_open_unit(eps_sec, "eps_sec"), _check_open_unit(eps_com, "eps_com"))
    if test_probability is not None:
        test_probability = _check_open_unit(test_probability, "test_probability")
    f = error_correction_efficiency
    if isinstance(f, bool) or not isinstance(f, (int, float)) or not (1.0 <= f < math.inf):
        raise ValueError(
            f"error_correction_efficiency must be a number >= 1 (1: the Shannon limit), got {f!r}"
        )
    beh = np.asarray(check_behaviour(probabilities, "probabilities"), dtype=np.float64)
    key = check_bob_key(bob_key)
    if key == 2 and beh.shape[-1] != 3:
        raise ValueError(
            "bob_key=2 ('aligned') needs Bob's key-only input y = 2 in the data: probabilities "
            f"of shape (2, 2, 2, 3); got shape {beh.shape} (or pass bob_key=0 or 1)"
        )
    if min_tradeoff is None:
        min_tradeoff = min_tradeoff_functions(
            beh,
            bell=bell,
            constraint=constraint,
            x=x,
            preprocessing=preprocessing,
            method=method,
            options=options,
            tangent_scales=tangent_scales,
        )
    elif not isinstance(min_tradeoff, MinTradeoff):
        raise TypeError(f"min_tradeoff must be a MinTradeoff, got {type(min_tradeoff).__name__}")
    else:
        _check_min_tradeoff(min_tradeoff, beh, bell, constraint, x, preprocessing)
    if key is None:  # the paper's protocol: Bob's test input with the smaller H(A'|X=x, Y=y, B)
        key = _best_test_input(beh, int(x), min_tradeoff.preprocessing)
    costs = _costs(beh, int(x), int(key), min_tradeoff.preprocessing, float(f))
    return beh, eps, test_probability, key, min_tradeoff, costs


def _best_test_input(beh: np.ndarray, x: int, flip: float) -> int:
    """Bob's test input y in {0, 1} whose error-correction cost is the smaller (``bob_key=None``,
    the paper's protocol: the key input pair is fixed before the protocol runs)."""
    with x64_scope():
        cost = [float(error_correction_cost(beh, x, y, preprocessing=flip)) for y in (0, 1)]
    return int(np.argmin(cost))


def _check_min_tradeoff(mtf: MinTradeoff, beh, bell, constraint, x, preprocessing) -> None:
    """A precomputed min-tradeoff function must be for this protocol and these statistics."""
    wrong = []
    if mtf.constraint != constraint:
        wrong.append(f"constraint {mtf.constraint!r} (argument {constraint!r})")
    if mtf.x != x:
        wrong.append(f"key input x = {mtf.x} (argument {x})")
    if mtf.preprocessing != check_preprocessing(preprocessing):
        wrong.append(f"preprocessing {mtf.preprocessing} (argument {preprocessing})")
    if bell is not None and not np.allclose(mtf.bell, [float(v) for v in bell], rtol=0, atol=1e-12):
        wrong.append(f"bell {mtf.bell} (argument {tuple(bell)})")
    if mtf.constraint == constraint and constraint != "bell" or bell is not None:
        with x64_scope():
            coef = np.asarray(bell_coefficients(*mtf.bell), dtype=np.float64)
        stats = _statistics(beh, mtf.constraint, coef)
        if stats.shape == mtf.honest.shape and not np.allclose(stats, mtf.honest, atol=1e-9):
            wrong.append("statistics of another behaviour")
    if wrong:
        raise ValueError(
            "min_tradeoff was computed for " + "; ".join(wrong) + ": recompute it with "
            "min_tradeoff_functions(probabilities, ...) for this protocol"
        )


def _asymptotic(mtf: MinTradeoff, costs: _Costs) -> float:
    g = mtf.asymptotic_entropy
    if not np.any(np.isfinite(g)):
        return math.nan
    return float(np.nanmax(g)) - costs.efficiency * costs.key_cost


def _check_second_order(value) -> str:
    if value not in SECOND_ORDER:
        raise ValueError(f"second_order must be one of {SECOND_ORDER}, got {value!r}")
    return value


def _solve_curve(n_values, mtf, costs, eps, test_probability, progress, second_order="observed"):
    out = np.full((4, n_values.size), np.nan)
    flat = n_values.reshape(-1)
    bar = tqdm(total=flat.size, unit="n", desc="finite", disable=not progress, file=sys.stderr)
    with bar:
        for i, n in enumerate(flat):
            r, g, a, t = _optimise(
                float(n), mtf, costs, eps, gamma=test_probability, second_order=second_order
            )
            out[:, i] = (r, g, a, mtf.scales[t] if t >= 0 else math.nan)
            bar.update()
    return out


def _statuses(rate: np.ndarray, asymptotic: float) -> np.ndarray:
    status = np.where(rate > 0, 0, 1).astype(np.int8)
    if not math.isfinite(asymptotic):
        return np.full(rate.shape, 3, dtype=np.int8)
    if asymptotic <= 0:
        status[:] = 2
    status[np.isnan(rate)] = 3
    return status


def finite_key_rate(
    probabilities: ArrayLike,
    rounds: ArrayLike,
    *,
    eps_sec: float = 1e-10,
    test_probability: float | None = None,
    bell: tuple[float, float, float] | None = None,
    constraint: str = "bell",
    x: int = 0,
    bob_key: int | str | None = None,
    preprocessing: float = 0.0,
    method: str = "bff",
    options: Mapping[str, Any] | None = None,
    eps_com: float = 1e-2,
    error_correction_efficiency: float = 1.0,
    tangent_scales: Sequence[float] = DEFAULT_TANGENT_SCALES,
    min_tradeoff: MinTradeoff | None = None,
    second_order: str = "observed",
    return_status: bool = False,
    protocol: Protocol | None = None,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    r"""Finite-size DI key rate of one behaviour after ``rounds`` rounds, bits per round.

    The entropy accumulation bound of the module docstring with certified min-tradeoff
    functions (``method="bff"``), secure against general attacks with soundness ``eps_sec``
    and completeness ``eps_com`` (the honest devices abort with at most that probability).
    The test probability (unless given), the EAT's alpha and the tangent point are optimised
    per n. A rate <= 0 is returned as computed (negative: no key at this n), never clipped to
    0; ``return_status`` says why (:data:`FINITE_STATUSES`).

    Parameters
    ----------
    probabilities : array_like
        The devices' behaviour p[a, b, x, y], shape (2, 2, 2, 3) with Bob's key-only input
        (``bob_key="aligned"``) or (2, 2, 2, 2) (``bob_key`` None, 0 or 1); e.g.
        :func:`jaxbell.device_behaviour` or measured frequencies (checked by
        :func:`jaxbell.check_behaviour`).
    rounds : array_like
        n >= 1, whole numbers; any shape (the rates have that shape).
    eps_sec : float
        Soundness in (0, 1), split into error correction, privacy amplification, smoothing
        (twice) and the EAT event in equal fifths.
    test_probability : float or None
        gamma in (0, 1); None: optimised per n.
    bell, constraint, x, bob_key, preprocessing
        As in :func:`jaxbell.observed_key_rate` (``preprocessing`` a number). ``bob_key``
        defaults to ``None``, the paper's protocol and :class:`jaxbell.Protocol`'s default, as
        in every rate function: key from Bob's test input (0 or 1) with the smaller
        error-correction cost of ``probabilities``; ``"aligned"`` (2) uses his key-only input
        y = 2 (Pironio et al. 2009), which the data must then have.
    method : {"bff", "qubit"}
        "bff" certified; "qubit" an uncertified estimate (constraint "bell").
    options : dict, optional
        Backend options (:class:`jaxbell.BffOptions` settings such as ``{"m": 8}``).
    eps_com : float
        Completeness in (0, 1), half for the test's threshold, half for error correction.
    error_correction_efficiency : float
        f >= 1: the code leaks f n H(A'|B) plus the second-order and hash terms.
    tangent_scales : sequence of float
        Tangent points kappa b of the min-tradeoff functions (one certified SDP point each).
    min_tradeoff : MinTradeoff, optional
        Precomputed :func:`min_tradeoff_functions` of this behaviour (skips the SDPs).
    second_order : {"observed", "worst"}
        "observed" (default): the test is one binary score in the direction of the
        min-tradeoff function (randomised scoring; CHSH's win/lose) and the EAT's variance is
        taken at the observed score (Liu et al. 2021; Nadlinger et al. 2022); "worst": the 16
        test symbols with the variance bounded over every distribution (Dupuis & Fawzi 2019).
        Both are valid; "observed" needs about 3x fewer rounds (docs/finite.md).
    return_status : bool
        Also return the status codes (int8, :data:`FINITE_STATUSES`).
    protocol : Protocol, optional
        ``constraint``, ``x``, ``bob_key`` and ``preprocessing`` as one :class:`jaxbell.Protocol`
        (the same numbers as the keywords).
    """
    n = _check_rounds(rounds)
    second_order = _check_second_order(second_order)
    protocol, _ = front_door(
        finite_key_rate, protocol, None, constraint=constraint, x=x, bob_key=bob_key,
        preprocessing=preprocessing,
    )  # fmt: skip
    constraint, x, bob_key = protocol.constraint, protocol.x, protocol.bob_key
    preprocessing = protocol.preprocessing
    _, eps, gamma, _, mtf, costs = _prepare(
        probabilities,
        eps_sec=eps_sec,
        eps_com=eps_com,
        test_probability=test_probability,
        bell=bell,
        constraint=constraint,
        x=x,
        bob_key=bob_key,
        preprocessing=preprocessing,
        method=method,
        options=options,
        error_correction_efficiency=error_correction_efficiency,
        tangent_scales=tangent_scales,
        min_tradeoff=min_tradeoff,
    )
    res = _solve_curve(n, mtf, costs, eps, gamma, progress=False, second_order=second_order)
    rate = res[0].reshape(n.shape)
    if return_status:
        return rate, _statuses(rate, _asymptotic(mtf, costs)).reshape(n.shape)
    return rate


def finite_rate_curve(
    probabilities: ArrayLike,
    rounds: ArrayLike | None = None,
    *,
    eps_sec: float = 1e-10,
    test_probability: float | None = None,
    bell: tuple[float, float, float] | None = None,
    constraint: str = "bell",
    x: int = 0,
    bob_key: int | str | None = None,
    preprocessing: float = 0.0,
    method: str = "bff",
    options: Mapping[str, Any] | None = None,
    eps_com: float = 1e-2,
    error_correction_efficiency: float = 1.0,
    tangent_scales: Sequence[float] = DEFAULT_TANGENT_SCALES,
    min_tradeoff: MinTradeoff | None = None,
    second_order: str = "observed",
    progress: bool | None = None,
    history: str | None = None,
    protocol: Protocol | None = None,
):
    """:func:`finite_key_rate` over ``rounds`` as a labelled :class:`xarray.Dataset`.

    ``rounds`` defaults to 30 whole numbers from 1e5 to 1e12 (log-spaced, rounded). The
    dataset has, over the dimension ``rounds``: ``finite_key_rate`` (bits/round),
    ``key_length`` (bits),
    ``test_probability``, ``eat_alpha``, ``tangent_scale`` and ``finite_status``; the scalar
    ``asymptotic_rate`` (the same min-tradeoff functions at n -> infinity, gamma -> 0) and
    ``min_tradeoff_value`` / ``min_tradeoff_slope`` per tangent point; every parameter
    (epsilons, method, whether certified, the protocol) as attributes. Arguments as in
    :func:`finite_key_rate`; ``progress`` a tqdm bar over n (None: on a terminal).
    """
    if rounds is None:
        rounds = np.round(np.logspace(5, 12, 30))
    n = _check_rounds(rounds).reshape(-1)
    second_order = _check_second_order(second_order)
    protocol, _ = front_door(
        finite_rate_curve, protocol, None, constraint=constraint, x=x, bob_key=bob_key,
        preprocessing=preprocessing,
    )  # fmt: skip
    constraint, x, bob_key = protocol.constraint, protocol.x, protocol.bob_key
    preprocessing = protocol.preprocessing
    _, eps, gamma, key, mtf, costs = _prepare(
        probabilities,
        eps_sec=eps_sec,
        eps_com=eps_com,
        test_probability=test_probability,
        bell=bell,
        constraint=constraint,
        x=x,
        bob_key=bob_key,
        preprocessing=preprocessing,
        method=method,
        options=options,
        error_correction_efficiency=error_correction_efficiency,
        tangent_scales=tangent_scales,
        min_tradeoff=min_tradeoff,
    )
    show = (sys.stderr.isatty() and n.size > 1) if progress is None else bool(progress)
    res = _solve_curve(n, mtf, costs, eps, gamma, progress=show, second_order=second_order)
    asym = _asymptotic(mtf, costs)
    status = _statuses(res[0], asym)
    settings = {
        "constraint": mtf.constraint,
        "rate_method": mtf.method,
        "certified": mtf.certified,
        "x": int(x),
        "bob_key": int(key),
        "bob_key_given": "none (Bob's best test input)" if bob_key is None else str(bob_key),
        "preprocessing": mtf.preprocessing,
        "bell": "none" if bell is None else tuple(float(v) for v in bell),
        "error_correction_efficiency": costs.efficiency,
        "error_correction_cost_key": costs.key_cost,
        "error_correction_cost_test": costs.test_cost,
        "test_probability_given": "optimised" if gamma is None else gamma,
        "second_order": second_order,
        "test": "binary score in the min-tradeoff direction (randomised scoring)"
        if second_order == "observed"
        else "the 16 test symbols (a, b, x, y)",
        "options": dict(options or {}),
    } | eps.as_attrs()
    return finite_rate_dataset(
        rounds=n,
        rate=res[0],
        test_probability=res[1],
        alpha=res[2],
        tangent_scale=res[3],
        status=status,
        asymptotic_rate=asym,
        min_tradeoff=mtf,
        settings=settings,
        history=history,
    )


def min_rounds(
    probabilities: ArrayLike,
    *,
    max_rounds: float = 1e16,
    eps_sec: float = 1e-10,
    test_probability: float | None = None,
    bell: tuple[float, float, float] | None = None,
    constraint: str = "bell",
    x: int = 0,
    bob_key: int | str | None = None,
    preprocessing: float = 0.0,
    method: str = "bff",
    options: Mapping[str, Any] | None = None,
    eps_com: float = 1e-2,
    error_correction_efficiency: float = 1.0,
    tangent_scales: Sequence[float] = DEFAULT_TANGENT_SCALES,
    min_tradeoff: MinTradeoff | None = None,
    second_order: str = "observed",
    rtol: float = 1e-3,
    return_status: bool = False,
    protocol: Protocol | None = None,
):
    """The smallest number of rounds n with a positive finite-size key (relative tolerance).

    Bisection in log n between 10 and ``max_rounds`` (the rate rises with n). Returns inf
    where no n <= ``max_rounds`` gives key; with ``return_status`` also the status
    (:data:`FINITE_STATUSES`: 0 found, 1 none up to max_rounds, 2 none at any n, 3 failed).
    Other arguments as in :func:`finite_key_rate`.
    """
    if isinstance(max_rounds, bool) or not isinstance(max_rounds, (int, float)):
        raise TypeError(f"max_rounds must be a number, got {max_rounds!r}")
    if not (math.isfinite(max_rounds) and max_rounds >= 10):
        raise ValueError(f"max_rounds must be finite and >= 10, got {max_rounds!r}")
    if not (isinstance(rtol, float) and 0 < rtol < 1):
        raise ValueError(f"rtol must be a float in (0, 1), got {rtol!r}")
    second_order = _check_second_order(second_order)
    protocol, _ = front_door(
        min_rounds, protocol, None, constraint=constraint, x=x, bob_key=bob_key,
        preprocessing=preprocessing,
    )  # fmt: skip
    constraint, x, bob_key = protocol.constraint, protocol.x, protocol.bob_key
    preprocessing = protocol.preprocessing
    _, eps, gamma, _, mtf, costs = _prepare(
        probabilities,
        eps_sec=eps_sec,
        eps_com=eps_com,
        test_probability=test_probability,
        bell=bell,
        constraint=constraint,
        x=x,
        bob_key=bob_key,
        preprocessing=preprocessing,
        method=method,
        options=options,
        error_correction_efficiency=error_correction_efficiency,
        tangent_scales=tangent_scales,
        min_tradeoff=min_tradeoff,
    )
    asym = _asymptotic(mtf, costs)

    def rate(n):
        return _optimise(n, mtf, costs, eps, gamma=gamma, second_order=second_order)[0]

    def done(n, code):
        return (n, code) if return_status else n

    if not math.isfinite(asym):
        return done(math.nan, 3)
    if asym <= 0:
        return done(math.inf, 2)
    hi = float(max_rounds)
    r_hi = rate(hi)
    if not math.isfinite(r_hi):
        return done(math.nan, 3)
    if r_hi <= 0:
        return done(math.inf, 1)
    lo = 10.0
    if rate(lo) > 0:
        return done(lo, 0)
    while hi / lo > 1.0 + rtol:
        mid = math.sqrt(lo * hi)
        if rate(mid) > 0:
            hi = mid
        else:
            lo = mid
    return done(float(math.ceil(hi)), 0)


# --- a published bound, reproduced: Nadlinger et al. 2022, Supplementary Prop. 2 ------------


def _h2(x):
    x = np.clip(x, 1e-300, 1.0 - 1e-16)
    return -x * np.log2(x) - (1.0 - x) * np.log2(1.0 - x)


def _chsh_eta(w):
    """Pironio et al.'s bound as a function of the CHSH winning probability (0 on [1/4, 3/4])."""
    w = np.asarray(w, dtype=np.float64)
    s = np.sqrt(np.maximum(16.0 * w * (w - 1.0) + 3.0, 0.0))
    return np.where((w >= 0.25) & (w <= 0.75), 0.0, 1.0 - _h2(0.5 + s / 2.0))


def _chsh_eta_slope(t):
    s = math.sqrt(16.0 * t * (t - 1.0) + 3.0)
    x = 0.5 + s / 2.0
    return math.log2(x / (1.0 - x)) * (8.0 * t - 4.0) / s


def _upsilon(x: float, b: float) -> float:
    """The y with y + b ln y = x (Nadlinger et al.'s Upsilon_b(x) = b W(e^(x/b) / b))."""
    y = max(x, 1.0)
    for _ in range(200):
        step = (y + b * math.log(y) - x) / (1.0 + b / y)
        y -= step
        if abs(step) < 1e-12 * max(1.0, y):
            break
    return y


def nadlinger2022_key_length(
    rounds: float,
    *,
    chsh: float,
    qber: float,
    test_probability: float = 13 / 256,
    eps_snd: float = 1e-10,
    eps_hash: float = 2.0**-61,
    sigmas: float = 3.0,
    omega_thr: float | None = None,
    syndrome: float | None = None,
) -> tuple[float, dict]:
    r"""Key length of the DIQKD experiment of Nadlinger et al. (2022), their bound, bits.

    An independent, published finite-size bound for the CHSH protocol, reproduced for
    comparison with :func:`finite_key_rate`: Supplementary Proposition 2 (eq. (73)) of D. P.
    Nadlinger et al., Nature 607, 682 (2022), arXiv:2109.14600. Its terms are the following.

    * The EAT of Dupuis & Fawzi with the crossover min-tradeoff function f_t, the tangent at t
      of Pironio et al.'s eta(omega). The variance is taken at each q(omega) inside an
      infimum over omega.
    * A max-entropy EAT for Bob's test outputs (alpha'').
    * The chain rule, their extractor's 5 log(1/eps_PA) and 264 bits of authentication.
    * The error-correction syndrome m, and Upsilon_b with b = 4/ln 2.

    The honest-device choices are their eqs. (23)-(25): the threshold ``omega_thr`` sits
    ``sigmas`` standard deviations below the expected score, and the syndrome length is
    ``m = n[(1 - gamma) h(Q) + gamma h((4 - S)/8)] + 50 sqrt(n)``.

    The free parameters t, alpha', alpha'' and the split of eps_snd are optimised (Nelder-Mead).
    Soundness is ``max(eps_EA, eps_PA + 2 eps_s) + 4 eps_hash``. The optimised values are
    returned in the dict. At their experiment's parameters (n = 1.5e6, S = 2.64, Q = 0.018,
    gamma = 13/256), the paper's key is 95 884 bits (``tests/test_finite.py``).
    """
    from scipy.optimize import minimize

    n, gamma = float(rounds), float(test_probability)
    w_exp = (4.0 + chsh) / 8.0
    if omega_thr is None:
        q = gamma * (1.0 - w_exp)
        omega_thr = 1.0 - (q + sigmas * math.sqrt(q * (1.0 - q) / n)) / gamma
    if syndrome is None:
        syndrome = n * ((1 - gamma) * float(_h2(qber)) + gamma * float(_h2((4 - chsh) / 8)))
        syndrome += 50.0 * math.sqrt(n)
    w_min, w_max = (1 - 1 / math.sqrt(2)) / 2, (1 + 1 / math.sqrt(2)) / 2
    grid = np.linspace(w_min, w_max, 20001)
    eta_grid = _chsh_eta(grid)
    b = 4.0 / _LN2
    budget = eps_snd - 4.0 * eps_hash  # max(eps_EA, eps_PA + 2 eps_s) = budget

    def sigmoid(z):
        return 1.0 / (1.0 + math.exp(-z))

    def unpack(z):
        t = 0.75 + (w_max - 0.75) * sigmoid(z[0])
        a1 = 1.0 + sigmoid(z[1])
        a2 = 1.0 + sigmoid(z[2]) / math.log2(5.0)
        e_pa = sigmoid(z[3]) * budget
        e_s = (budget - e_pa) / 2.0
        shares = np.exp([z[4], z[5], 0.0])
        shares /= shares.sum()
        e1, e2 = shares[0] * e_s, shares[1] * e_s / 2.0
        return t, a1, a2, e_pa, e_s, e1, e2, e_s - e1 - 2.0 * e2

    def argument(z):
        t, a1, a2, e_pa, _, e1, e2, e3 = unpack(z)
        slope = _chsh_eta_slope(t)
        g = lambda w: float(_chsh_eta(t)) + (w - t) * slope  # noqa: E731
        p0 = gamma * (1.0 - grid)
        var = p0 * (1.0 - p0) * (slope / gamma) ** 2
        v = (_LN2 / 2.0) * (math.log2(33.0) + np.sqrt(2.0 + var)) ** 2
        inner = float(np.min(eta_grid - (float(_chsh_eta(t)) + (grid - t) * slope) - (a1 - 1) * v))
        r = 2.0 + g(1.0) - g(w_min)
        k = 2.0 ** ((a1 - 1) * r) * math.log(2.0**r + math.e**2) ** 3 / (6 * (2 - a1) ** 3 * _LN2)
        theta = lambda e: float(_vartheta(e))  # noqa: E731
        ea = budget
        return (
            n * g(omega_thr)
            + n * inner
            - n * (a1 - 1) ** 2 * k
            - n * gamma
            - n * (a2 - 1) * math.log2(5.0) ** 2
            - (theta(e1) + a1 * math.log2(1 / ea)) / (a1 - 1)
            - (theta(e2) + a2 * math.log2(1 / ea)) / (a2 - 1)
            - 3.0 * theta(e3)
            - 5.0 * math.log2(1 / e_pa)
            - syndrome
            - 264.0
        )

    best = None
    for z0 in ([0, -5, -5, 0, 0, 0], [1, -6, -6, 0, 0, 0], [-1, -4, -4, 0, 0, 0]):
        r = minimize(
            lambda z: -argument(z),
            z0,
            method="Nelder-Mead",
            options={"xatol": 1e-10, "fatol": 1e-7, "maxiter": 20000, "maxfev": 40000},
        )
        r = minimize(
            lambda z: -argument(z),
            r.x,
            method="Nelder-Mead",
            options={"xatol": 1e-10, "fatol": 1e-7, "maxiter": 20000, "maxfev": 40000},
        )
        if best is None or r.fun < best.fun:
            best = r
    x = -float(best.fun)
    t, a1, a2, e_pa, e_s, e1, e2, e3 = unpack(best.x)
    length = _upsilon(x, b) if x > 1 else 0.0
    params = {
        "t": t,
        "alpha1": a1,
        "alpha2": a2,
        "eps_pa": e_pa,
        "eps_s": e_s,
        "eps_ea": budget,
        "omega_thr": omega_thr,
        "syndrome": syndrome,
        "argument": x,
    }
    return length, params
