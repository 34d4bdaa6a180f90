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


def test_host_schur_matches_the_dense_trace_formula():
    """The compiled sparse kernel's M_kl = tr(F_k X F_l Z^-1) against dense matrices F_k, and
    the compiled loop's kernels (Cholesky, substitutions, step lengths) against NumPy/LAPACK."""
    from jaxbell.rates import _ipm_cpu

    rel = bff._relaxation("key", 2, 0, 0, False, True, True)
    st = ipm.SdpStructure.from_relaxation(rel)
    host = _ipm_cpu.CpuStructure(st.index, st.n_vars, st.bounded)
    rng = np.random.default_rng(1)
    xs, zis, ref = [], [], np.zeros((st.n_vars, st.n_vars))
    for m in st.index:
        n = m.shape[0]
        g = rng.normal(size=(2, n, n))
        x, zi = g[0] @ g[0].T + np.eye(n), g[1] @ g[1].T + np.eye(n)
        f = (m[None] == np.arange(st.n_vars)[:, None, None]).astype(float)  # (K, n, n)
        ref += np.einsum("kpq,lqp->kl", f, np.einsum("ab,lbc,cd->lad", x, f, zi))
        xs.append(x)
        zis.append(zi)
    d = rng.uniform(0.1, 2.0, len(st.bounded))
    ref[st.bounded, st.bounded] += d
    got = host.schur(xs, zis, d)
    assert np.max(np.abs(got - ref)) <= 1e-12 * np.max(np.abs(ref))
    # the factor and the substitutions against numpy's dense solve
    chol = np.empty_like(got)
    assert _ipm_cpu._chol_lower(got, chol)
    np.testing.assert_allclose(chol @ chol.T, got, rtol=0, atol=1e-11 * np.max(np.abs(got)))
    rhs = rng.normal(size=(2, st.n_vars))
    sol = rhs.copy()
    _ipm_cpu._chol_solve(chol, sol)
    np.testing.assert_allclose(sol.T, np.linalg.solve(ref, rhs.T), rtol=1e-9, atol=1e-12)
    assert not _ipm_cpu._chol_lower(-got, chol)  # not positive definite: False, no exception
    # the step length's smallest eigenvalue (tridiagonal form + bisection) against LAPACK's
    for n in (1, 2, 26, 31, 57):
        w = rng.normal(size=(n, n)) * 10.0 ** rng.uniform(-3, 3)
        low = np.linalg.eigvalsh(0.5 * (w + w.T))[0]
        scale = np.max(np.abs(np.linalg.eigvalsh(0.5 * (w + w.T))))
        if low < -0.5 * scale:
            got_low = _ipm_cpu._min_eig_sym(w, -0.5 * scale)
            assert got_low <= low + 1e-12 * scale  # from below: a step is never too long
            assert abs(got_low - low) <= 1e-9 * scale
        assert _ipm_cpu._min_eig_sym(w, low - 1.0) == low - 1.0  # nothing below the floor
    assert np.isnan(_ipm_cpu._min_eig_sym(np.full((3, 3), np.nan), -1.0))


def test_a_batch_gives_the_same_bits_and_a_point_alone_the_same_value():
    """Deterministic: the same batch twice gives identical bits, a node solved alone agrees with
    the same node inside a batch (issue 20: within 1e-12)."""
    rel, c, c0, a, b, _ = _node()
    rel2, c2, c02, a2, b2, _ = _node(theta=1.3, phi=0.9, omega=2.5, frac=0.9)
    st = ipm.SdpStructure.from_relaxation(rel)
    cs, c0s = np.stack([c, c2, c]), np.array([c0, c02, c0])
    As, bs = np.stack([a, a2, a2]), np.stack([b, b2, b2])
    one = ipm.solve(st, cs, c0s, As, bs)
    two = ipm.solve(st, cs, c0s, As, bs)
    np.testing.assert_array_equal(one["value"], two["value"])
    np.testing.assert_array_equal(one["lam"], two["lam"])
    alone = ipm.solve(st, cs[1:2], c0s[1:2], As[1:2], bs[1:2])
    assert abs(alone["value"][0] - one["value"][1]) <= 1e-12
    many = ipm.solve(st, np.tile(cs, (7, 1)), np.tile(c0s, 7), np.tile(As, (7, 1, 1)),
                     np.tile(bs, (7, 1)))  # fmt: skip
    assert many["value"].shape == (21,)  # two blocks, the node at other places in them
    assert np.max(np.abs(many["value"][1::3] - one["value"][1])) <= 1e-12
    assert np.all(one["solver_status"] <= 1)


def _captured_problems(monkeypatch, *args, **kw):
    """(structure, c, c0, A, b) that bff_entropy hands the batched solver."""
    captured = {}
    real = ipm.solve

    def spy(st, c, c0, a, b, **options):
        captured["args"] = (st, c, c0, a, b)
        return real(st, c, c0, a, b, **options)

    monkeypatch.setattr(ipm, "solve", spy)
    bff.bff_entropy(*args, progress=False, **kw)
    monkeypatch.undo()
    return captured["args"]


def test_the_polish_removes_the_residual_the_certificate_pays_for(monkeypatch):
    """A node whose iteration stalls with a dual residual of ~2e-8 (the first Gauss-Radau node
    of a random "global" point; the certificate paid 1.4e-6 for it): the polished dual point
    removes the residual, its bound is higher by more than half of that and still below the
    value of the solver's own (feasible) primal point. Disabled (POLISH_ABOVE = inf), the
    bound falls back to the unpolished one."""
    point = (1.3357326387134425, 1.0602985808330723, 2.0224071000826456, -0.7445167200994995)
    st, c, c0, a, b = _captured_problems(monkeypatch, *point, kind="global", m=8, solver="JAX")
    node = (c[:1], c0[:1], a[:1], b[:1])
    polished = ipm.solve(st, *node)
    monkeypatch.setattr(ipm, "POLISH_ABOVE", np.inf)
    plain = ipm.solve(st, *node)
    assert plain["dual_residual"][0] > 1e-9  # the stall this is about
    assert plain["correction"][0] > 5e-7
    assert polished["correction"][0] < 0.3 * plain["correction"][0]
    assert polished["value"][0] > plain["value"][0] + 5e-7
    # weak duality against the solver's primal point (feasible to ~1e-14: its moment matrix is
    # the Z of the iteration, positive definite)
    assert polished["primal_residual"][0] < 1e-12
    assert polished["value"][0] <= polished["primal_value"][0] + c0[0] + 1e-10
    # the multipliers returned are the polished point's (the slope of the tangent bound
    # value + lam . (b' - b) must come from the point that gave the value): the tangent lies
    # below the feasible primal values at nearby Bell values
    assert np.max(np.abs(polished["lam"] - plain["lam"])) > 0
    for shift in (-0.01, 0.01):
        near = ipm.solve(st, c[:1], c0[:1], a[:1], b[:1] + shift)
        assert near["primal_residual"][0] < 1e-10
        tangent = polished["value"][0] + float(polished["lam"][0] @ np.array([shift]))
        assert tangent <= near["primal_value"][0] + c0[0] + 1e-10


@pytest.mark.slow
def test_the_accelerator_program_polishes_too(monkeypatch):
    """The XLA program's own polish (what runs on a GPU) on the stalled node: as the compiled
    loop, the XLA loop stalls there with a dual residual ~2e-8 (it broke down after 42
    iterations at 1e-6 while its Schur solves multiplied by an explicit inverse factor), and
    its polish raises the bound to the compiled loop's. POLISH_ABOVE is read when the program
    is traced, hence the cache clears."""
    from jaxbell._precision import x64_scope

    point = (1.3357326387134425, 1.0602985808330723, 2.0224071000826456, -0.7445167200994995)
    st, c, c0, a, b = _captured_problems(monkeypatch, *point, kind="global", m=8, solver="JAX")
    node = (c[:1], c0[:1], a[:1], b[:1])
    cpu = ipm.solve(st, *node)

    def xla():
        ipm._programs.cache_clear()
        with x64_scope():
            out = ipm._programs(st, ipm.IpmOptions(), "gpu", ())[0](*node)
        ipm._programs.cache_clear()
        return {k: float(np.asarray(v)[0]) for k, v in out.items() if np.ndim(v) == 1}

    polished = xla()
    monkeypatch.setattr(ipm, "POLISH_ABOVE", np.inf)
    plain = xla()
    assert 1e-9 < plain["dual_residual"] < 1e-7  # the residual the polish is for
    assert plain["stop_reason"] == 1  # stalled, as the compiled loop (not broken down)
    assert polished["value"] > plain["value"] + 5e-7
    assert polished["correction"] < 0.3 * plain["correction"]
    assert abs(polished["value"] - cpu["value"][0]) < 3e-7


@pytest.mark.filterwarnings("ignore::numba.core.errors.NumbaPendingDeprecationWarning")
@pytest.mark.parametrize("constraint", ["bell", "correlators"])
def test_polished_dual_point_meets_stationarity(constraint):
    """The compiled polish step: the residual c - F*(X) - A^T lam + H^T mu of its dual point is
    at rounding level where the input's was 1e-3 or more (an exact Newton step on a linear
    equation), and X stays symmetric; with a Bell value (A M^-1 A^T) and with four correlators
    (fixed moments eliminated directly)."""
    from jaxbell.rates import _ipm_cpu

    rel, c, c0, a, b, _ = _node(frac=0.9)
    if constraint == "correlators":
        import jaxbell as jb
        from jaxbell._precision import x64_scope

        a = bff._equality_matrix(rel, "correlators", None)
        with x64_scope():
            b = 0.9 * np.asarray(jb.strategy_correlators(np.pi / 2, np.pi / 4, 3 * np.pi / 4),
                                 dtype=float).ravel()  # fmt: skip
    fix = _ipm_cpu.fixed_columns(a)
    assert len(fix) == (4 if constraint == "correlators" else 0)
    st = ipm.SdpStructure.from_relaxation(rel)
    cpu = _ipm_cpu.CpuStructure(st.index, st.n_vars, st.bounded)
    out = ipm.solve(st, c[None], np.array([c0]), a[None], b[None])
    rng = np.random.default_rng(3)
    y = out["y"][0]
    # a dual point far from stationary: random positive definite X, random lam and mu >= 0
    xs = []
    for n in cpu.sizes:
        g = rng.normal(size=(n, n))
        xs.append(g @ g.T / n + 0.1 * np.eye(n))
    s = 1.0 - y[st.bounded] + 0.1
    lam, mu = rng.normal(size=a.shape[0]), np.abs(rng.normal(size=len(st.bounded)))
    scale = 1.0 + np.max(np.abs(c))
    K = st.n_vars
    free = np.setdiff1d(np.arange(K), fix)
    m, w = np.empty((K, K)), np.empty(max(cpu.sizes) ** 2)
    chol = np.empty((len(free), len(free)))
    m_ff = np.empty((len(free), len(free))) if len(fix) else np.empty((1, 1))

    def rc_of(xs, lam, mu):
        # (a Python list, as inside the compiled loop; rc does not depend on Z, xs stands in)
        return _ipm_cpu._measures(c, a, b, cpu.idxs, cpu.consts, cpu.bounded, scale, y, list(xs),
                                  list(xs), s, lam, mu)[-1]  # fmt: skip

    before = rc_of(xs, lam, mu)
    ok, nxs, nlam, nmu = _ipm_cpu._polish(
        before, a, cpu.idxs, cpu.bounded, cpu.sch, y, list(xs), s, lam, mu, fix, free,
        np.asarray(ipm.SCHUR_SHIFTS), np.asarray(ipm.SMALL_SHIFTS), 1, m, m_ff,
        chol, w, ipm.POLISH_SHIFT,
    )  # fmt: skip
    assert ok
    after = rc_of(list(nxs), nlam, nmu)
    assert np.max(np.abs(before)) > 1e-3
    exact = np.ones(K, dtype=bool)  # (mu is clipped at 0: not exact where it was)
    exact[np.asarray(st.bounded)[nmu == 0]] = False
    assert np.max(np.abs(after[exact])) < 1e-10 * np.max(np.abs(before))
    for x in nxs:
        np.testing.assert_allclose(x, x.T, atol=1e-14)


@pytest.mark.parametrize(
    ("kind", "constraint", "pre"),
    [
        ("key", "bell", 0.0),
        ("key", "correlators", 0.2),
        ("global", "bell", 0.0),
        ("key", "bell", 0.45),
        ("key", "full", 0.0),
        ("global", "correlators", 0.0),
    ],
)
def test_the_jax_path_agrees_with_clarabel_on_every_constraint(kind, constraint, pre):
    """bff_entropy through the batched solver against the cvxpy/Clarabel path: both are
    rigorous lower bounds on the same relaxation's optimum, so they agree to the solvers'
    accuracy (Clarabel's corrections are ~1e-6; the JAX iterate ends closer to the optimum)."""
    import jaxbell as jb

    th, ph, om = np.array([np.pi / 2, 1.2]), np.array([np.pi / 4, 0.7]), np.array([np.pi, 2.9])
    v = np.array([0.95, 0.97])
    kw = {"kind": kind, "m": 4, "progress": False, "processes": 1}
    if pre:
        kw["preprocessing"] = pre
    if constraint == "bell":
        from jaxbell._precision import x64_scope

        with x64_scope():
            eta = v * np.asarray(jb.quantum_bound(th, ph, om), dtype=float)
        args = (eta,)
    elif constraint == "correlators":
        from jaxbell._precision import x64_scope

        with x64_scope():
            e0 = np.asarray(jb.strategy_correlators(th, ph, om), dtype=float)
        args, kw["correlators"] = (None,), v[:, None, None] * e0
    else:
        args = (None,)
        kw["behaviour"] = np.asarray(jb.device_behaviour(th, ph, om, visibility=v), dtype=float)
    jax_res = bff.bff_entropy(th, ph, om, *args, solver="JAX", **kw)
    ref = bff.bff_entropy(th, ph, om, *args, solver="CLARABEL", **kw)
    assert np.all(jax_res.status == 0) and np.all(ref.status == 0)
    np.testing.assert_allclose(jax_res.value, ref.value, rtol=0, atol=3e-5)


def test_cli_runs_the_batched_solver(tmp_path, capsys):
    """``jaxbell bff --solver JAX``: the same file as the library call with solver="JAX"."""
    import xarray as xr

    import jaxbell as jb
    from jaxbell.cli import main

    out = tmp_path / "b.nc"
    argv = ["bff", "--theta", "pi/2", "--phi", "pi/4", "--omega", "3pi/4", "--m", "2"]
    rc = main([*argv, "--bell-value=-0.88:-0.8:2", "--solver", "JAX", "--out", str(out),
               "--no-progress"])  # fmt: skip
    assert rc == 0 and "2 certified" in capsys.readouterr().out
    chsh = (np.pi / 2, np.pi / 4, 3 * np.pi / 4)
    with xr.open_dataset(out, engine="h5netcdf") as ds:
        ref = jb.bff_entropy(*chsh, np.linspace(-0.88, -0.8, 2), m=2, solver="JAX")
        np.testing.assert_array_equal(ds.certified_entropy.values, ref.value)
        assert ds.attrs["solver"] == "JAX"


def test_the_accelerator_schur_system_equals_the_host_one():
    """The XLA half (one-hot assembly, jnp Cholesky: what runs on a GPU) solves the same system
    as the CPU's compiled kernels, here outside the solver's loop on the CPU."""
    import jax.numpy as jnp

    from jaxbell._precision import x64_scope
    from jaxbell.rates import _ipm_cpu

    rel = bff._relaxation("key", 2, 0, 0, False, True, True)
    st = ipm.SdpStructure.from_relaxation(rel)
    rng = np.random.default_rng(2)
    xs, zis = [], []
    for m in st.index:
        g = rng.normal(size=(2, m.shape[0], m.shape[0]))
        xs.append(g[0] @ g[0].T + np.eye(m.shape[0]))
        zis.append(g[1] @ g[1].T + np.eye(m.shape[0]))
    d = rng.uniform(0.1, 2.0, len(st.bounded))
    rhs = rng.normal(size=(st.n_vars, 2))
    with x64_scope():
        blocks = [(n, *map(jnp.asarray, rest)) for n, *rest in st._device_data]
        _, factor_solve, _ = ipm._systems(st, blocks)
        args = ([jnp.asarray(x) for x in xs], [jnp.asarray(z) for z in zis])
        sol, _ = factor_solve(*args, jnp.asarray(d), jnp.asarray(rhs))
    m = _ipm_cpu.CpuStructure(st.index, st.n_vars, st.bounded).schur(xs, zis, d)
    chol = np.empty_like(m)
    assert _ipm_cpu._chol_lower(m, chol)
    host = rhs.T.copy()
    _ipm_cpu._chol_solve(chol, host)
    np.testing.assert_allclose(np.asarray(sol), host.T, rtol=1e-9, atol=1e-12)


@pytest.mark.slow
@pytest.mark.parametrize("constraint", ["bell", "correlators", "full"])
def test_the_accelerator_program_agrees_with_the_compiled_cpu_loop(constraint):
    """The XLA program (what runs on a GPU, with its own elimination of fixed moments) against
    the CPU's compiled loop on the same node SDPs, one problem per call (slow: jaxlib's
    batched LAPACK inside a while_loop can deadlock on 2 CPUs with wider batches)."""
    import jaxbell as jb
    from jaxbell._precision import x64_scope
    from jaxbell.rates import _ipm_cpu

    th, ph, om = np.array([np.pi / 2, 1.2]), np.array([np.pi / 4, 0.7]), np.array([np.pi, 2.9])
    v = np.array([0.95, 0.97])
    with x64_scope():
        eta = v * np.asarray(jb.quantum_bound(th, ph, om), dtype=float)
        e0 = np.asarray(jb.strategy_correlators(th, ph, om), dtype=float)
        beh = np.asarray(jb.device_behaviour(th, ph, om, visibility=v), dtype=float)
    captured = {}
    real = ipm.solve

    def spy(st, c, c0, a, b, **kw):
        captured["args"] = (st, c, c0, a, b)
        return real(st, c, c0, a, b, **kw)

    bell = eta if constraint == "bell" else None
    kw = {"correlators": v[:, None, None] * e0} if constraint == "correlators" else {}
    kw |= {"behaviour": beh} if constraint == "full" else {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ipm, "solve", spy)
        bff.bff_entropy(th, ph, om, bell, m=4, progress=False, **kw)
    st, c, c0, a, b = captured["args"]
    cpu = real(st, c, c0, a, b)
    fix = tuple(int(k) for k in _ipm_cpu.fixed_columns(a[0]))
    assert len(fix) == {"bell": 0, "correlators": 4, "full": 8}[constraint]
    with x64_scope():
        program = ipm._programs(st, ipm.IpmOptions(), "gpu", fix)[0]
        for i in range(len(c)):
            out = program(c[i : i + 1], c0[i : i + 1], a[i : i + 1], b[i : i + 1])
            assert int(out["solver_status"][0]) <= 1
            assert abs(float(out["value"][0]) - cpu["value"][i]) <= 1e-6
