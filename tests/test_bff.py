"""Certified BFF lower bounds, checked against independent results.

References used: the tight CHSH curve of Pironio et al. 2009 (NJP 11, 045021), explicit quantum
strategies (the noisy strategy of eq. (6) with Eve holding the purification; entropies by
brute-force linear algebra), the closed forms at the quantum bound (jaxbell.entropy), exact
inner infima on random classical-quantum states (Sylvester equations), and quadrature exactness.
"""

import itertools
import math
import os
import sys
import types

import numpy as np
import pytest
import scipy.linalg as sl
import xarray as xr
from helpers import (
    PSI,
    SX,
    SY,
    assert_labelled,
    coefficients_np,
    correlators_from_matrices,
    run_python,
)
from helpers import noisy_strategy_entropy_np as noisy_strategy_entropy

import jaxbell as jb
from jaxbell import bff

PI = np.pi
S2 = math.sqrt(2.0)
CHSH = (PI / 2, PI / 4, 3 * PI / 4)  # coefficients -(1, 1, 1, -1) / (2 sqrt 2): S = 2 sqrt2 |eta|


def _h(p):
    return -p * np.log2(p) - (1 - p) * np.log2(1 - p)


def pironio(s):
    """Tight lower bound on H(A|E) given CHSH value s (Pironio et al. 2009)."""
    return 1 - _h((1 + np.sqrt((s / 2) ** 2 - 1)) / 2)


# --- independent references ----------------------------------------------------------------


def _vn(rho):
    e = np.linalg.eigvalsh(rho)
    e = e[e > 1e-14]
    return float(-(e * np.log2(e)).sum())


def _random_psd(rng, d, rank):
    g = rng.normal(size=(d, rank)) + 1j * rng.normal(size=(d, rank))
    return g @ g.conj().T


def _inner_infimum(t, sigmas):
    """inf over Z of sum_a Tr[s_a (Z + Z^dag + (1-t) Z^dag Z)] + t Tr[s Z Z^dag], exactly."""
    s = sum(sigmas)
    total = 0.0
    zs = []
    for sa in sigmas:
        z = sl.solve_sylvester(t * s, (1 - t) * sa, -sa)
        g = np.trace(sa @ (z + z.conj().T + (1 - t) * z.conj().T @ z)) + t * np.trace(
            s @ z @ z.conj().T
        )
        total += g.real
        zs.append(z)
    return total, zs


# --- quadrature and the bound itself ---------------------------------------------------------


@pytest.mark.parametrize("m", [2, 3, 5, 8, 12, 20])
def test_gauss_radau_is_exact_to_degree_2m_minus_2(m):
    t, w = bff.gauss_radau(m)
    assert t[-1] == 1.0 and np.all(np.diff(t) > 0) and t[0] > 0
    assert np.all(w > 0)
    np.testing.assert_allclose(w[-1], 1 / m**2, rtol=1e-12)
    for k in range(2 * m - 1):
        np.testing.assert_allclose(np.sum(w * t**k), 1 / (k + 1), rtol=1e-12, atol=1e-14)
    if m <= 5:  # and no further (the error at degree 2m - 1 shrinks fast with m)
        assert abs(np.sum(w * t ** (2 * m - 1)) - 1 / (2 * m)) > 1e-6


def test_gauss_radau_bound_on_random_cq_states(rng):
    # with the exact inner infimum, the BFF sum (all m nodes, or the first m - 1) lower-bounds
    # H(A|E) = S(rho_AE) - S(rho_E) and converges to it
    for m, tol in ((4, 5e-2), (8, 5e-3), (12, 1e-3)):
        t, w = bff.gauss_radau(m)
        for _ in range(25):
            d, n_out = int(rng.integers(2, 5)), int(rng.integers(2, 4))
            sig = [_random_psd(rng, d, d) * 10 ** rng.uniform(-2, 0) for _ in range(n_out)]
            tr = sum(np.trace(s).real for s in sig)
            sig = [s / tr for s in sig]
            h = _vn(sl.block_diag(*sig)) - _vn(sum(sig))
            terms = np.array(
                [
                    wi / (ti * np.log(2)) * (1 + _inner_infimum(ti, sig)[0])
                    for ti, wi in zip(t, w, strict=True)
                ]
            )
            assert terms.sum() <= h + 1e-12
            assert terms[:-1].sum() <= terms.sum() + 1e-12
            assert h - terms.sum() < tol
            assert terms[-1] <= 1 / (m**2 * np.log(2)) + 1e-12  # what dropping t_m = 1 costs


def test_eve_norm_bound_on_random_states(rng):
    # the minimiser over Z has ||Z|| <= 1/(2 sqrt(t(1-t))) (module docstring), tight at t = 1/2
    worst = 0.0
    for _ in range(300):
        d = int(rng.integers(2, 6))
        sa = _random_psd(rng, d, int(rng.integers(1, d + 1))) * 10 ** rng.uniform(-4, 0)
        sb = _random_psd(rng, d, d) * 10 ** rng.uniform(-4, 0)
        for t in (0.02, 0.3, 0.5, 0.9):
            _, (z, _) = _inner_infimum(t, [sa, sb])
            ratio = np.linalg.norm(z, 2) / bff.eve_norm_bound(t)
            worst = max(worst, ratio)
    assert worst <= 1 + 1e-6
    assert worst > 0.9  # the bound is nearly attained: it is not vacuous


# --- the relaxation's construction ------------------------------------------------------------


def _word_matrix(word, ops):
    a, b, z = word
    mat = np.eye(ops["dim"], dtype=complex)
    for x in a:
        mat = mat @ ops["A"][x]
    for y in b:
        mat = mat @ ops["B"][y]
    for s, dag in z:
        mat = mat @ (ops["Z"][s].conj().T if dag else ops["Z"][s])
    return mat


def _explicit_strategy(rng, kind):
    """Random qubit-qubit-Eve(2) strategy in the symmetric letters, and its outcome flip."""

    def unitary_obs():
        n = rng.normal(size=3)
        n /= np.linalg.norm(n)
        return n[0] * SX + n[1] * SY + n[2] * np.diag([1.0, -1.0])

    i2 = np.eye(2)
    a = [np.kron(np.kron(unitary_obs(), i2), i2) for _ in range(2)]
    b = [np.kron(np.kron(i2, unitary_obs()), i2) for _ in range(2)]
    n_out = 2 if kind == "key" else 4
    zo = [
        np.kron(np.eye(4), rng.normal(size=(2, 2)) + 1j * rng.normal(size=(2, 2)))
        for _ in range(n_out)
    ]
    psi = rng.normal(size=8) + 1j * rng.normal(size=8)
    psi /= np.linalg.norm(psi)
    # outcomes: key 0, 1; global 00, 01, 10, 11; flipped pairs (0, 1) or (00, 11), (01, 10)
    pairs = [(0, 1)] if kind == "key" else [(0, 3), (1, 2)]
    zs, zs_flip = [], []
    for o, o2 in pairs:
        zs += [zo[o] + zo[o2], zo[o] - zo[o2]]
        zs_flip += [zo[o2] + zo[o], zo[o2] - zo[o]]
    ops = {"A": a, "B": b, "Z": zs, "dim": 8}
    flip = {"A": [-m for m in a], "B": [-m for m in b], "Z": zs_flip, "dim": 8}
    return ops, flip, psi, zo


@pytest.mark.parametrize("kind", ["key", "global"])
def test_moment_matrix_equals_gram_matrix_of_an_explicit_strategy(kind, rng):
    # the symmetric moments of an explicit strategy (averaged with its conjugate and its outcome
    # flip) must rebuild the explicit Gram matrix of the rows, block by block, and the node
    # objective must equal the direct expectation value
    ops, flip, psi, zo = _explicit_strategy(rng, kind)
    rel = bff._relaxation(kind, 2, 0, 1, False)

    def moment(word):
        vals = [psi.conj() @ _word_matrix(word, o) @ psi for o in (ops, flip)]
        return float(np.real(sum(vals)) / 2)

    y = np.zeros(len(rel.index))
    for w, k in rel.index.items():
        y[k] = moment(w)
    rows = [r for block in rel.blocks for r in block]
    for f, f0, block in zip(rel.F, rel.F0, rel.blocks, strict=True):
        n = len(block)
        g = (f @ y).reshape(n, n) + f0
        ref = np.array([[moment(bff._wmul(bff._wadj(u), v)) for v in block] for u in block])
        np.testing.assert_allclose(g, ref, atol=1e-12)
        assert np.linalg.eigvalsh(g).min() > -1e-10
    odd = [r for r in rows if bff._odd(r)]
    even = [r for r in rows if not bff._odd(r)]
    cross = [moment(bff._wmul(bff._wadj(u), v)) for u in even[:5] for v in odd[:5]]
    np.testing.assert_allclose(cross, 0, atol=1e-12)
    t = 0.37
    c0, c = bff._linear(bff._node_objective(kind, 0, 1, t), rel.index)
    direct = 0.0
    outcomes = [(a,) for a in (0, 1)] if kind == "key" else list(itertools.product((0, 1), (0, 1)))
    for strat in (ops, flip):
        zmat = zo if strat is ops else [zo[1], zo[0]] if kind == "key" else zo[::-1]
        for o, z in zip(outcomes, zmat, strict=True):
            m_o = (np.eye(8) + (-1) ** o[0] * strat["A"][0]) / 2
            if kind == "global":
                m_o = m_o @ (np.eye(8) + (-1) ** o[1] * strat["B"][1]) / 2
            zd = z.conj().T
            val = m_o @ (z + zd + (1 - t) * zd @ z) + t * z @ zd
            direct += np.real(psi.conj() @ val @ psi) / 2
    np.testing.assert_allclose(c0 + c @ y, direct, atol=1e-12)


def test_outcome_flip_reduction_does_not_loosen_the_relaxation():
    # the two-block SDP and the unreduced one-block SDP of the same words give the same value
    coef = np.array([-1.0, -1.0, -1.0, 1.0]) / (2 * S2)
    target = np.array([-2.6 / (2 * S2)])
    for t in (0.3,):
        args = ("key", 2, 0, 0, False, "bell", coef, target, t, "CLARABEL", None)
        red, plain = bff._solve_node(*args, True), bff._solve_node(*args, False)
        assert len(bff._relaxation("key", 2, 0, 0, False, False).blocks) == 1
        np.testing.assert_allclose(red[0], plain[0], atol=2e-6)


def test_sdp_sizes():
    key = bff.sdp_sizes("key", 2)
    assert key["block_dims"] == [31, 26] and key["variables"] == 272
    assert bff.sdp_sizes("key", 1)["moment_matrix_dim"] < key["moment_matrix_dim"]
    assert bff.sdp_sizes("key", 2, eve_pairs=True)["moment_matrix_dim"] == 57 + 12
    glob = bff.sdp_sizes("global", 2)  # BFF's extras off by default for kind "global"
    assert glob["block_dims"] == [45, 40] and not glob["extras"]
    assert bff.sdp_sizes("global", 2, extras=True)["block_dims"] == [61, 56]
    assert bff.sdp_sizes("key", 2, extras=False)["moment_matrix_dim"] < 57


def test_global_extras_change_nothing_measurable():
    # the default for kind "global" leaves out BFF's extra monomials; with them the relaxation
    # is larger (so at least as tight), and the two certified values agree to the certificate
    t, p, w = PI / 3, PI / 3, PI  # Prop. 2
    eq = float(jb.quantum_bound(t, p, w))
    kw = dict(kind="global", x=0, y=1, m=2, processes=1)
    off = jb.bff_entropy(t, p, w, 0.98 * eq, **kw)
    on = jb.bff_entropy(t, p, w, 0.98 * eq, extras=True, **kw)
    assert off.status == 0 and on.status == 0
    assert off.settings["extras"] is False and on.settings["extras"] is True
    assert abs(float(on.value) - float(off.value)) < 2e-5
    ach = noisy_strategy_entropy(t, p, w, 0.98, kind="global", x=0, y=1)
    assert float(on.value) <= ach + 1e-9


# --- against independent results -------------------------------------------------------------


def test_global_at_the_quantum_bound_matches_the_closed_form():
    # Prop. 2 tuple: global randomness 2 at (x, y) = (0, 1); m = 12 (dropped term <= 0.0075)
    t, p, w = PI / 3, PI / 3, PI
    eq = float(jb.quantum_bound(t, p, w))
    closed = float(jb.global_rate_at_quantum_bound(t, p, w))
    r = jb.bff_entropy(t, p, w, eq, kind="global", x=0, y=1, m=12, level=2, processes=1)
    assert r.status == 0, r.node_status
    assert closed - 1e-2 <= float(r.value) <= closed + 1e-9


def test_chsh_member_below_and_within_3e3_of_pironio():
    s_values = np.array([2.1, 2.3, 2.5, 2.7, 2.8])
    r = jb.bff_entropy(*CHSH, -s_values / (2 * S2), m=8, level=2, processes=1)
    ref = pironio(s_values)
    assert np.all(r.status == 0)
    assert np.all(r.value <= ref + 1e-9), r.value - ref
    assert np.all(r.value >= ref - 3e-3), r.value - ref
    assert np.all(r.correction < 1e-4)
    assert r.sizes["block_dims"] == [31, 26]


def test_key_at_the_quantum_bound_of_self_testing_tuples():
    # H(A|X=0,E) = 1 at eta^Q (Prop. 1(iv)); m = 10: the dropped t_m term costs <= 0.0072
    tuples = [CHSH, (PI / 3, PI / 2 - 0.3, 5 * PI / 6)]
    t, p, w = (np.array(a) for a in zip(*tuples, strict=True))
    eq = np.asarray(jb.quantum_bound(t, p, w))
    assert np.all(np.asarray(jb.is_self_testing(t, p, w)))
    r = jb.bff_entropy(t, p, w, eq, m=10, processes=1)
    assert np.all(r.status == 0), r.node_status
    assert np.all(r.value <= 1 + 1e-9) and np.all(r.value >= 1 - 1e-2), r.value


def test_all_four_correlators_certify_perfect_key():
    # Prop. 4: at phi = pi/2 (not self-testing for B) the four correlators of eq. (6) certify
    # H(A|X=0,E) = 1 with I_CHSH = 5/2 (theta = pi/3, omega = 5 pi/6)
    t, p, w = PI / 3, PI / 2, 5 * PI / 6
    e = np.asarray(jb.strategy_correlators(t, p, w))
    assert not bool(jb.is_self_testing(t, p, w))
    np.testing.assert_allclose(float(jb.max_chsh_value(e)), 2.5, atol=1e-12)
    r = jb.bff_entropy(t, p, w, None, correlators=e, m=10, processes=1)
    assert r.status == 0 and 1 - 1e-2 <= float(r.value) <= 1 + 1e-9
    assert r.settings["constraint"] == "correlators"
    # the Bell value alone certifies less at this point (the limit is not self-testing)
    eta = float(np.sum(np.asarray(jb.bell_coefficients(t, p, w)) * e))
    alone = jb.bff_entropy(t, p, w, eta, m=3, processes=1)
    assert float(alone.value) < 0.5


def test_global_kind_is_below_an_explicit_strategy():
    t, p, w = PI / 3, PI / 3, PI  # Prop. 2: perfect randomness at (x, y) = (0, 1)
    eq = float(jb.quantum_bound(t, p, w))
    r = jb.bff_entropy(t, p, w, 0.99 * eq, kind="global", x=0, y=1, m=2, level=1, processes=1)
    ach = noisy_strategy_entropy(t, p, w, 0.99, kind="global", x=0, y=1)
    assert r.status == 0 and 0.5 < float(r.value) <= ach + 1e-9


def test_certificate_is_valid_when_the_solver_stops_early(monkeypatch):
    # a solver stopped after a few iterations gives a poor dual point; the corrected value must
    # still lie below the truth (Pironio's tight bound), with a larger correction
    s = 2.5
    kw = {"m": 3, "processes": 1, "solver": "CLARABEL"}
    good = jb.bff_entropy(*CHSH, -s / (2 * S2), **kw)
    real = bff._solver_attempts
    monkeypatch.setattr(
        bff, "_solver_attempts", lambda *a: [d | {"max_iter": 7} for d in real(*a)][:1]
    )
    rough = jb.bff_entropy(*CHSH, -s / (2 * S2), **kw, max_correction=1.0)
    assert rough.status == 0, rough.node_status
    assert float(rough.value) <= pironio(s)
    assert float(rough.correction) > 10 * float(good.correction)
    assert float(rough.value) <= float(good.value) + 1e-9
    strict = jb.bff_entropy(*CHSH, -s / (2 * S2), **kw, max_correction=1e-12)
    assert strict.status == 3 and np.isnan(strict.value)  # inaccurate: NaN, never 0


def test_batched_certificate_is_valid_when_its_solver_stops_early(monkeypatch):
    """The same for the batched solver (the default), its iterations cut to 7 and without
    cvxpy (so no Clarabel fallback): still below Pironio's curve, NaN when too inaccurate."""
    from jaxbell.rates import ipm

    s = 2.5
    good = jb.bff_entropy(*CHSH, -s / (2 * S2), m=3)
    real = ipm.solve
    monkeypatch.setattr(
        ipm, "solve", lambda *a, **k: real(*a, **k, options=ipm.IpmOptions(max_iter=7))
    )
    monkeypatch.setitem(sys.modules, "cvxpy", None)
    rough = jb.bff_entropy(*CHSH, -s / (2 * S2), m=3, max_correction=1.0)
    assert rough.status == 0 and rough.solver_status == 2, rough.node_status
    assert float(rough.value) <= pironio(s)
    # after 7 interior-point iterations the dual point is nearly feasible (small correction)
    # but far from optimal: a valid, looser bound
    assert float(rough.value) < float(good.value) - 1e-3
    strict = jb.bff_entropy(*CHSH, -s / (2 * S2), m=3, max_correction=1e-12)
    assert strict.status == 3 and np.isnan(strict.value)


def _eve_states_of_noisy_strategy(theta, phi, omega, v):
    """Bell value and Eve's (subnormalised) states given Alice's key outcome a (x = 0) for the
    strategy of eq. (6) under white noise v, Eve holding the purification (brute force)."""
    rho = v * np.outer(PSI, PSI.conj()) + (1 - v) * np.eye(4) / 4
    lam, vec = np.linalg.eigh(rho)
    psi_abe = vec * np.sqrt(np.clip(lam, 0, None))  # (AB, E)
    sigmas = []
    for a in (0, 1):
        proj = np.kron((np.eye(2) + (-1) ** a * SX) / 2, np.eye(2))  # A_0 = X (eq. 6)
        sub = proj @ psi_abe
        sigmas.append(sub.T @ sub.conj())
    eta = float(
        np.sum(
            coefficients_np(theta, phi, omega) * v * correlators_from_matrices(theta, phi, omega)
        )
    )
    return eta, sigmas


def test_certificate_correction_is_what_keeps_an_inexact_dual_below_the_truth():
    # The node objective at an explicit quantum strategy (the noisy strategy of eq. (6) with Eve
    # holding the purification and her optimal Z) is feasible for the node SDP, so it is an
    # upper bound U on the SDP minimum, and every certified node value must lie below it.
    # Perturb the solver's dual point so that its raw dual objective D exceeds U: the
    # uncorrected D would then be a false "bound"; only the residual / negative-eigenvalue
    # correction brings it back below U.
    eta, sigmas = _eve_states_of_noisy_strategy(*CHSH, 0.9)
    np.testing.assert_allclose(eta, 0.9 * float(jb.quantum_bound(*CHSH)), atol=1e-12)
    coef = np.asarray(jb.bell_coefficients(*CHSH), dtype=float).ravel()
    t = float(bff.gauss_radau(4)[0][1])
    upper = _inner_infimum(t, sigmas)[0]  # U: this strategy's node objective, Eve's best Z
    value, dual, _, _, _ = bff._solve_node(
        "key", 2, 0, 0, False, "bell", coef, np.array([eta]), t, "CLARABEL", None
    )
    assert value <= dual <= upper + 1e-9
    prob = bff._node_problem("key", 2, 0, 0, False, "bell")  # the problem just solved
    c0, c = bff._linear(bff._node_objective("key", 0, 0, t), prob.rel.index)
    c = c * (2 * bff.eve_norm_bound(t)) ** prob.rel.moment_eve
    a, b = prob.equality_matrix(coef), np.array([eta])
    xs = [np.array(con.dual_value) for con in prob.psd]
    lam, mu = np.atleast_1d(prob.eq.dual_value), np.atleast_1d(prob.bound.dual_value)

    def certify(xs, lam, mu):
        fake = types.SimpleNamespace(
            rel=prob.rel,
            psd=[types.SimpleNamespace(dual_value=x) for x in xs],
            eq=types.SimpleNamespace(dual_value=lam),
            bound=types.SimpleNamespace(dual_value=mu),
        )
        return bff._certify(fake, c, c0, a, b)[:3]

    v0, d0, _ = certify(xs, lam, mu)
    np.testing.assert_allclose([v0, d0], [value, dual], rtol=0, atol=1e-12)
    lift = upper - d0 + 0.05  # how far D must rise to pass U
    assert prob.rel.F0[0][0, 0] == 1.0  # the empty word's entry: D = ... - <X, F0>
    x_low = [xs[0] - lift * np.eye(len(xs[0]))[:, :1] @ np.eye(len(xs[0]))[:1], *xs[1:]]
    perturbed = {
        "X lowered at the empty word (not PSD)": (x_low, lam, mu),
        # cvxpy's sign of lam is detected from the residual: move lam away along its own sign
        "lam moved (stationarity residual)": (xs, lam * (1 + lift / abs(float(b @ lam))), mu),
    }
    for name, args in perturbed.items():
        v, d, corr = certify(*args)
        assert d > upper, (name, d, upper)  # the uncorrected dual alone would be invalid
        assert v <= upper + 1e-9, (name, v, upper)
        assert corr >= d - upper, name


def test_the_same_point_gives_the_same_bits_again_and_in_a_fresh_process():
    # cvxpy's default warm start reused the solver object of the problem's previous solve
    # (Clarabel kept its scaling): the second solve of a point differed from the first
    args = (*CHSH, -2.3 / (2 * S2))
    first = jb.bff_entropy(*args, m=2, processes=1)
    jb.bff_entropy(*CHSH, -2.6 / (2 * S2), m=3, processes=1)  # other nodes in between
    again = jb.bff_entropy(*args, m=2, processes=1)
    names = ("value", "dual_value", "correction", "node_value")
    for name in names:
        np.testing.assert_array_equal(getattr(again, name), getattr(first, name), err_msg=name)
    code = (
        "import math, jax; jax.config.update('jax_enable_x64', True)\n"
        "import numpy as np, jaxbell as jb\n"
        "r = jb.bff_entropy(np.pi / 2, np.pi / 4, 3 * np.pi / 4, -2.3 / (2 * math.sqrt(2.0)), "
        "m=2, processes=1)\n"
        f"print(*(float(np.ravel(getattr(r, n))[0]).hex() for n in {names!r}))"
    )
    path = os.pathsep.join(p for p in sys.path if p)  # this checkout's jaxbell
    fresh = run_python(code, env={"PYTHONPATH": path}).stdout.split()
    assert fresh == [float(np.ravel(getattr(first, n))[0]).hex() for n in names]


def test_solver_status_is_kept_beside_the_certificate(monkeypatch):
    # reference: Clarabel's own status of every solve, recorded at the solver
    from cvxpy.reductions.solvers.conic_solvers.clarabel_conif import CLARABEL

    raw: list = []
    real_solve = CLARABEL.solve_via_data

    def spy(self, *args, **kwargs):
        out = real_solve(self, *args, **kwargs)
        raw.append(str(out.status))
        return out

    monkeypatch.setattr(CLARABEL, "solve_via_data", spy)
    codes = {"Solved": 0, "AlmostSolved": 1, "MaxIterations": 2}
    eta = -np.array([2.3, 2.6]) / (2 * S2)
    r = jb.bff_entropy(*CHSH, eta, m=3, processes=1, solver="CLARABEL")
    assert len(raw) == 4  # 2 points x 2 nodes, no retries
    worst = np.array([codes[s] for s in raw]).reshape(2, 2).max(axis=1)
    np.testing.assert_array_equal(r.solver_status, worst)
    assert np.all(r.status == 0)  # certified whatever the solver's status
    ds = r.to_dataset(dim="bell_value")
    np.testing.assert_array_equal(ds.bff_solver_status.values, worst)
    meanings = ds.bff_solver_status.attrs["flag_meanings"].split()
    assert meanings[:3] == ["optimal", "optimal_inaccurate", "iteration_limit"]
    assert [meanings[k] for k in worst] == [bff.SOLVER_STATUS_FLAGS[k] for k in worst]
    # a solver stopped at its iteration limit: still certified, and the solver status says so
    raw.clear()
    real = bff._solver_attempts
    monkeypatch.setattr(
        bff, "_solver_attempts", lambda *a: [d | {"max_iter": 7} for d in real(*a)][:1]
    )
    rough = jb.bff_entropy(*CHSH, eta[0], m=3, processes=1, max_correction=1.0, solver="CLARABEL")
    assert raw == ["MaxIterations"] * 2
    assert rough.status == 0 and rough.solver_status == 2
    assert list(rough.node_status) == ["user_limit"] * 2


def test_a_negative_bound_is_raised_to_zero_and_nan_stays_nan():
    # |<B>| <= eta^L: a local deterministic strategy reaches it, so the infimum is 0 and the
    # certified sum dual - correction lies just below 0; H >= 0 makes 0 the certified value
    eta_l, eq = float(jb.local_bound(*CHSH)), float(jb.quantum_bound(*CHSH))
    r = jb.bff_entropy(*CHSH, [0.1, -0.5 * eta_l, 1.05 * eq], m=2, processes=1)
    raw = r.dual_value - r.correction
    assert np.all(raw[:2] < 0), raw  # the case at issue
    assert r.status.tolist() == [0, 0, 1]
    np.testing.assert_array_equal(r.value[:2], 0.0)
    assert np.isnan(r.value[2])  # infeasible: NaN, not 0


def test_scs_gives_a_certified_bound_too():
    s = 2.5
    scs = jb.bff_entropy(*CHSH, -s / (2 * S2), m=2, solver="SCS", processes=1)
    clarabel = jb.bff_entropy(*CHSH, -s / (2 * S2), m=2, processes=1)
    assert scs.status == 0 and scs.settings["solver"] == "SCS"
    assert float(scs.value) <= pironio(s)
    np.testing.assert_allclose(float(scs.value), float(clarabel.value), atol=1e-4)


def test_infeasible_bell_value_gives_nan_and_status():
    eq = float(jb.quantum_bound(*CHSH))
    r = jb.bff_entropy(*CHSH, [1.05 * eq, 0.9 * eq], m=2, processes=1)
    assert r.status.tolist() == [1, 0]
    assert np.isnan(r.value[0]) and r.value[1] > 0


def test_parallel_processes_give_the_same_numbers():
    eta = -np.array([2.4, 2.6]) / (2 * S2)
    one = jb.bff_entropy(*CHSH, eta, m=2, processes=1)
    two = jb.bff_entropy(*CHSH, eta, m=2, processes=2, progress=False)
    # both certified; one vs two solver threads round differently, so agree to solver tolerance
    np.testing.assert_allclose(two.value, one.value, rtol=0, atol=1e-5)
    assert np.all(two.status == 0)
    assert two.settings["processes"] == 2


def test_dataset_is_labelled_and_round_trips(tmp_path):
    eta = -np.array([2.3, 2.6]) / (2 * S2)
    r = jb.bff_entropy(*CHSH, eta, m=2, processes=1)
    ds = r.to_dataset(dim="bell_value")
    assert ds.sizes == {"bell_value": 2, "node": 1}
    assert_labelled(ds)
    assert ds.certified_entropy.attrs["units"] == "bit"
    assert "arXiv:2106.13692" in ds.attrs["references"]
    assert ds.attrs["m"] == 2 and ds.attrs["kind"] == "key"
    assert ds.attrs["solver"] == bff.DEFAULT_SOLVER
    assert ds.bff_status.attrs["flag_meanings"].split()[0] == "certified"
    path = jb.save_dataset(ds, tmp_path / "bff.nc")
    with xr.open_dataset(path, engine="h5netcdf") as back:
        np.testing.assert_array_equal(back.certified_entropy.values, r.value)
        assert back.node_status.values[0, 0].startswith("optimal")
    with pytest.raises(ValueError, match="dim"):
        r.to_dataset(dim="nope")


def test_cli_bff_writes_a_labelled_file(tmp_path, capsys):
    from jaxbell.cli import main

    out = tmp_path / "b.nc"
    argv = ["bff", "--theta", "pi/2", "--phi", "pi/4", "--omega", "3pi/4"]
    rc = main(
        [
            *argv,
            "--bell-value=-0.88:-0.8:2",
            "--m",
            "2",
            "--processes",
            "1",
            "--out",
            str(out),
            "--no-progress",
        ]
    )
    printed = capsys.readouterr().out
    assert rc == 0 and "2 certified" in printed and "SDP solver status" in printed
    with xr.open_dataset(out, engine="h5netcdf") as ds:
        ref = jb.bff_entropy(*CHSH, np.linspace(-0.88, -0.8, 2), m=2, processes=1)
        np.testing.assert_array_equal(ds.certified_entropy.values, ref.value)
        np.testing.assert_array_equal(ds.bff_solver_status.values, ref.solver_status)
        assert "jaxbell bff" in ds.attrs["history"]
    for extra, match in (
        (["--visibility", "0.5:1.5:3"], "--visibility"),
        (["--bell-value", "x"], "--bell-value"),
        (["--visibility", "1", "--kind", "global"], "--kind key"),
        (["--bell-value=-0.8", "--m", "1"], "--m"),
        (["--bell-value=-0.8", "--level", "3"], "--level"),
        (["--bell-value=-0.8", "--constraint", "correlators"], "--constraint"),
        (["--bell-value=-1.5"], "--bell-value: |bell_value| must not exceed the quantum"),
    ):
        with pytest.raises(SystemExit):
            main([*argv, *extra, "--out", str(tmp_path / "c.nc")])
        assert match in capsys.readouterr().err


# --- bad input ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"bell_value": math.nan}, ValueError, "bell_value"),
        ({"bell_value": "0.5"}, TypeError, "bell_value"),
        ({"kind": "min"}, ValueError, "kind"),
        ({"x": 2}, ValueError, "x must"),
        ({"y": 0.5}, TypeError, "y must"),
        ({"m": 1}, ValueError, "m must"),
        ({"level": 3}, ValueError, "level"),
        ({"solver": "GUROBI"}, ValueError, "solver"),
        ({"processes": 0}, ValueError, "processes"),
        ({"max_correction": -1.0}, ValueError, "max_correction"),
        ({"eve_pairs": "yes"}, TypeError, "eve_pairs"),
        ({"correlators": np.zeros((2, 2))}, ValueError, "either bell_value or correlators"),
        ({"bell_value": None}, ValueError, "bell_value is required"),
        ({"bell_value": [0.1, 0.2, 0.3], "theta": [0.1, 0.2]}, ValueError, "broadcast"),
        ({"theta": math.inf}, ValueError, "theta"),
    ],
)
def test_bad_input_raises_naming_the_argument(kwargs, error, match):
    args = {"theta": CHSH[0], "phi": CHSH[1], "omega": CHSH[2], "bell_value": -0.8}
    args.update(kwargs)
    pos = [args.pop(k) for k in ("theta", "phi", "omega", "bell_value")]
    with pytest.raises(error, match=match):
        jb.bff_entropy(*pos, **({"processes": 1} | args))


def test_bad_correlators_raise():
    with pytest.raises(ValueError, match="correlators"):
        jb.bff_entropy(*CHSH, None, correlators=np.zeros(3))
    with pytest.raises(ValueError, match="correlators"):
        jb.bff_entropy(*CHSH, None, correlators=np.full((2, 2), 1.5))


def test_missing_solver_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "cvxpy", None)  # import cvxpy now raises ImportError
    with pytest.raises(ImportError, match=r"jaxbell\[sdp\]"):
        jb.bff_entropy(*CHSH, -0.8, m=2, processes=1, solver="CLARABEL")
    # the default (batched) solver needs no cvxpy
    r = jb.bff_entropy(*CHSH, -0.8, m=2)
    assert r.status == 0 and 0 < float(r.value) <= pironio(0.8 * 2 * S2)


def test_mosek_without_licence_is_a_clear_error():
    import cvxpy as cp

    if "MOSEK" in cp.installed_solvers():  # pragma: no cover - machines with MOSEK
        pytest.skip("MOSEK is installed here")
    with pytest.raises(ImportError, match="MOSEK"):
        jb.bff_entropy(*CHSH, -0.8, m=2, solver="MOSEK", processes=1)


# --- slow: the full sweeps ----------------------------------------------------------------------


@pytest.mark.slow
def test_slow_eve_pairs_changes_little_and_stays_below_pironio():
    s_values = np.array([2.1, 2.8])
    r = jb.bff_entropy(*CHSH, -s_values / (2 * S2), m=8, eve_pairs=True, processes=1)
    base = jb.bff_entropy(*CHSH, -s_values / (2 * S2), m=8, processes=1)
    assert np.all(r.value <= pironio(s_values) + 1e-9)
    assert np.all(np.abs(r.value - base.value) < 1e-4)
