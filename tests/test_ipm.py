"""The batched interior-point solver (jaxbell.rates.ipm) and its certificate.

Independent references: Clarabel through cvxpy (the solver path jaxbell has used so far) for
the node optima, and weak duality itself (a certified value must never exceed the value of a
feasible primal point) for the certificate.
"""

import warnings

import numpy as np
import pytest

from jaxbell.rates import bff, ipm

pytest.importorskip("cvxpy")

T_NODE = float(bff.gauss_radau(8)[0][2])


def _node(kind="key", t=T_NODE, theta=np.pi / 2, phi=np.pi / 4, omega=3 * np.pi / 4, frac=0.95):
    """c, c0, A, b of one node SDP (constraint "bell") and its relaxation."""
    from jaxbell._precision import x64_scope

    rel = bff._relaxation(kind, 2, 0, 0, False, True, kind == "key")
    c0, c = bff._linear(bff._node_objective(kind, 0, 0, t, 0.0), rel.index, rel.flip)
    c = c * (2.0 * bff.eve_norm_bound(t)) ** rel.moment_eve
    with x64_scope():
        import jaxbell as jb

        coef = np.asarray(jb.bell_coefficients(theta, phi, omega), dtype=float).ravel()
        eta = frac * float(jb.quantum_bound(theta, phi, omega))
    a = bff._equality_matrix(rel, "bell", coef)
    return rel, c, c0, a, np.array([eta]), coef


def _clarabel(rel, c, a, b):
    """Clarabel's primal optimum and point of the node SDP (cvxpy, as in jaxbell.rates.bff)."""
    import cvxpy as cp

    y = cp.Variable(len(rel.index))
    cons = [
        cp.reshape(f @ y, (f0.shape[0],) * 2, order="C") + f0 >> 0
        for f, f0 in zip(rel.F, rel.F0, strict=True)
    ]
    cons += [a @ y == b, y[rel.diag_columns] <= 1.0]
    prob = cp.Problem(cp.Minimize(c @ y), cons)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "solution may be inaccurate"
        prob.solve(solver="CLARABEL", tol_gap_abs=1e-10, tol_gap_rel=1e-10, tol_feas=1e-10)
    return float(prob.value), np.asarray(y.value)


def test_structure_matches_the_relaxation():
    rel = bff._relaxation("key", 2, 0, 0, False, True, True)
    st = ipm.SdpStructure.from_relaxation(rel)
    assert [m.shape[0] for m in st.index] == [len(b) for b in rel.blocks]
    assert st.n_vars == len(rel.index)
    # G(y) from the index equals F0 + F y from the sparse matrices, for a random y
    y = np.random.default_rng(0).normal(size=st.n_vars)
    for m, f, f0 in zip(st.index, rel.F, rel.F0, strict=True):
        g = np.where(m < 0, 1.0, np.append(y, 0.0)[m])
        np.testing.assert_array_equal(g, (f @ y).reshape(f0.shape) + f0)
    np.testing.assert_array_equal(st.counts, rel.counts)


@pytest.mark.parametrize("shift", [1e-6, 1e-3, 1e-1])
def test_certificate_never_exceeds_a_feasible_value(shift):
    """Weak duality: any dual point, corrected, bounds c.y + c0 of every feasible y from below.

    The optimal dual point moved out of the cone (X - shift I, a random multiplier error) has an
    uncorrected dual value *above* the optimum; the certificate must still stay below it, which
    rests on the residual correction and the eigenvalue term (drop either and this fails).
    """
    rng = np.random.default_rng(0)
    rel, c, c0, a, b, coef = _node()
    bff._solve_node("key", 2, 0, 0, False, "bell", coef, b, T_NODE, "CLARABEL", None)
    prob = bff._node_problem("key", 2, 0, 0, False, "bell", True, True)
    st = ipm.SdpStructure.from_relaxation(rel)
    opt, _ = _clarabel(rel, c, a, b)
    xs = [np.asarray(p.dual_value) - shift * np.eye(p.dual_value.shape[0]) for p in prob.psd]
    lam = -np.atleast_1d(np.asarray(prob.eq.dual_value, dtype=float))
    lam = lam * (1 + shift * rng.normal(size=lam.shape))
    mu = np.asarray(prob.bound.dual_value, dtype=float)
    value, dual, correction = ipm.certificate(st, c, c0, a, b, xs, lam, mu)
    assert dual > opt + c0  # no bound before the correction
    assert value <= opt + c0 + 1e-9
    assert correction > 0


def test_certificate_of_clarabel_dual_point_matches_the_cvxpy_path():
    """The JAX certificate of the same dual point as the Clarabel path gives the same bound."""
    rel, c, c0, a, b, coef = _node()
    v_ref, d_ref, corr_ref, status, lam_ref = bff._solve_node(
        "key", 2, 0, 0, False, "bell", coef, b, T_NODE, "CLARABEL", None
    )
    prob = bff._node_problem("key", 2, 0, 0, False, "bell", True, True)
    xs = [0.5 * (np.asarray(p.dual_value) + np.asarray(p.dual_value).T) for p in prob.psd]
    mu = np.asarray(prob.bound.dual_value, dtype=float)
    st = ipm.SdpStructure.from_relaxation(rel)
    value, dual, corr = ipm.certificate(st, c, c0, a, b, xs, lam_ref, mu)
    assert abs(dual - d_ref) < 1e-9
    assert abs(value - v_ref) < 1e-8


@pytest.mark.slow
@pytest.mark.parametrize("frac", [0.9, 0.99])
def test_ipm_agrees_with_clarabel(frac):
    rel, c, c0, a, b, _ = _node(frac=frac)
    st = ipm.SdpStructure.from_relaxation(rel)
    opt, _ = _clarabel(rel, c, a, b)
    out = ipm.solve(st, c[None], np.array([c0]), a[None], b[None])
    assert out["solver_status"][0] in (0, 1)
    assert out["value"][0] <= opt + c0 + 1e-9  # certified: below the optimum
    assert out["value"][0] >= opt + c0 - 1e-7  # and tight


def test_options_are_checked():
    with pytest.raises(ValueError, match="tol_gap"):
        ipm.IpmOptions(tol_gap=0.0)
    with pytest.raises(ValueError, match="max_iter"):
        ipm.IpmOptions(max_iter=0)
