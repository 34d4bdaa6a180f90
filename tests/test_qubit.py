"""The qubit-strategy backend: entropies of explicit strategies, special points, the envelope.

Independent references: an explicit purification onto Eve (helpers.purified_entropies), the
matrices of eq. (6) (helpers.correlators_from_matrices), the 16 deterministic strategies
(helpers.local_bound_bruteforce), Pironio et al. (2009) for the CHSH member, and SciPy SLSQP
over general (complex, unreduced) two-qubit strategies (helpers.general_qubit_min_entropy).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import (
    SX,
    SY,
    SZ,
    binary_entropy_np,
    coefficients_np,
    correlators_from_matrices,
    correlators_np,
    entropy_np,
    general_qubit_min_entropy,
    local_bound_bruteforce,
    pironio_entropy,
    projectors,
    purified_entropies,
    xz_observable,
)

import jaxbell as jb
from jaxbell import qubit

PI = np.pi
CHSH = (PI / 2, PI / 4, 3 * PI / 4)  # coefficients -(1, 1, 1, -1)/(2 sqrt 2): S = -2 sqrt2 <B>
PROP3 = (PI / 3, PI / 2 - 0.1, 5 * PI / 6)  # near the CHSH 5/2 point (Prop. 3)
PROP5 = (PI / 4, PI / 2 - 0.1, PI)  # near the 1 + sqrt 2 point (Prop. 5)
FAST = {"directions": 32, "starts": 8, "steps": 400, "refine": 2}


@pytest.fixture(scope="module")
def chsh_key():
    return qubit.qubit_envelope(*CHSH, kind="key", x=0)


@pytest.fixture(scope="module")
def prop3_key():
    return qubit.qubit_envelope(*PROP3, kind="key", x=0)


def test_chsh_member_is_chsh():
    c = np.asarray(jb.bell_coefficients(*CHSH))
    np.testing.assert_allclose(c, -np.array([[1, 1], [1, -1]]) / (2 * np.sqrt(2)), atol=1e-15)
    assert float(jb.local_bound(*CHSH)) == pytest.approx(1 / np.sqrt(2), rel=1e-15)
    assert abs(float(jb.quantum_bound(*CHSH))) == pytest.approx(1.0, rel=1e-15)


# --- one strategy -------------------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "x", "y"), [("key", 0, 0), ("key", 1, 0), ("global", 0, 1)])
def test_strategy_terms_match_an_explicit_purification(rng, kind, x, y):
    params = qubit._random_params(rng, (20,))
    c = coefficients_np(*PROP3)
    h, b, e = (np.asarray(v) for v in qubit.strategy_terms(params, c, kind=kind, x=x, y=y))
    rho, alpha, beta = (np.asarray(v) for v in qubit.strategy_from_params(params))
    for i in range(len(params)):
        # the state is a density matrix, real and invariant under Y (x) Y
        assert np.trace(rho[i]) == pytest.approx(1.0, abs=1e-14)
        assert np.min(np.linalg.eigvalsh(rho[i])) > -1e-14
        yy = np.real(np.kron([[0, -1j], [1j, 0]], [[0, -1j], [1j, 0]]))
        np.testing.assert_allclose(yy @ rho[i] @ yy, rho[i], atol=1e-14)
        alice = [xz_observable(a) for a in alpha[i]]
        bob = [xz_observable(v) for v in beta[i]]
        h_key, h_glob = purified_entropies(rho[i], alice, bob, x, y)
        assert h[i] == pytest.approx(h_key if kind == "key" else h_glob, abs=1e-11)
        np.testing.assert_allclose(e[i], correlators_np(rho[i], alice, bob), atol=1e-14)
        assert b[i] == pytest.approx(np.sum(c * e[i]), abs=1e-14)


def test_special_points(rng):
    for _ in range(20):
        t, p, w = rng.uniform(0, 2 * PI, 3)
        c = coefficients_np(t, p, w)
        h, b, _ = qubit.strategy_terms(qubit._deterministic_params(c), c, kind="key")
        assert float(b) == pytest.approx(float(local_bound_bruteforce(c)), abs=1e-14)
        assert abs(float(h)) < 1e-14
        h, b, _ = qubit.strategy_terms(qubit._mixed_params(), c, kind="global", x=1, y=0)
        assert abs(float(h)) < 1e-14 and abs(float(b)) < 1e-15
    # eq. (6) carried to the X-Z plane: |eta^Q|, H = 1 (key) and 1 + h((1 + E)/2) (global)
    for tpl in (CHSH, PROP3, PROP5, (0.9, 2.0, 4.0)):
        if not bool(jb.is_self_testing(*tpl)):
            continue
        c = coefficients_np(*tpl)
        par = qubit._anchor_params(*tpl)
        eta_q = float(jb.quantum_bound(*tpl))
        e6 = correlators_from_matrices(*tpl) * np.sign(eta_q)  # Bob's flip where eta^Q < 0
        h, b, e = qubit.strategy_terms(par, c, kind="key", x=1)
        assert float(b) == pytest.approx(abs(eta_q), abs=1e-14)
        assert float(h) == pytest.approx(1.0, abs=1e-12)
        np.testing.assert_allclose(np.asarray(e), e6, atol=1e-14)
        for x in (0, 1):
            for y in (0, 1):
                h, _, _ = qubit.strategy_terms(par, c, kind="global", x=x, y=y)
                ref = 1 + binary_entropy_np((1 + e6[x, y]) / 2)
                assert float(h) == pytest.approx(float(ref), abs=1e-12)


def test_gradients_are_finite_at_degenerate_and_pure_states():
    c = jnp.asarray(coefficients_np(*CHSH))
    pts = [qubit._mixed_params(), qubit._deterministic_params(np.asarray(c))]
    pts.append(qubit._anchor_params(*CHSH))
    for kind in ("key", "global"):
        for par in pts:
            g = jax.jit(jax.grad(lambda p, k=kind: qubit._terms(p, c, k, 0, 1)[0]))(par)
            assert np.all(np.isfinite(np.asarray(g))), (kind, par)


# --- maximal violation: eq. (5), eq. (6) and no violation where (4) fails -----------------------


def _maximise_bell(tuples, starts=16, steps=800):
    """Largest <B> over qubit strategies found by the solver at slope +inf (tau = pi/2)."""
    rng = np.random.default_rng(7)
    n = len(tuples)
    c = np.stack([coefficients_np(*t) for t in tuples])
    out = qubit._solve(
        jnp.asarray(qubit._random_params(rng, (n, 1, starts))),
        jnp.asarray(c),
        jnp.zeros(n),
        jnp.ones(n),
        jnp.zeros(n, dtype=jnp.int32),
        jnp.zeros(n, dtype=jnp.int32),
        jnp.full((n, 1), np.pi / 2),
        0.05,
        kind="key",
        steps=steps,
    )
    params, _, bell, _ = (np.asarray(o)[:, 0] for o in out)
    best = np.argmax(bell, axis=1)
    return bell[np.arange(n), best], params[np.arange(n), best], c


def test_qubit_maximum_is_eq5_and_is_reached_by_eq6(rng):
    tuples = [CHSH, PROP3, PROP5]
    while len(tuples) < 8:
        tpl = tuple(rng.uniform(0, 2 * PI, 3))
        if bool(jb.is_self_testing(*tpl)) and float(jb.local_bound(*tpl)) > 0.05:
            tuples.append(tpl)
    bmax, params, c = _maximise_bell(tuples)
    for i, tpl in enumerate(tuples):
        eta_q = float(jb.quantum_bound(*tpl))
        assert bmax[i] == pytest.approx(abs(eta_q), abs=1e-9)
        # the maximiser reproduces eq. (6) up to local isometries and Bob's relabelling
        _, _, e = qubit.strategy_terms(params[i], c[i])
        e6 = correlators_from_matrices(*tpl) * np.sign(eta_q)
        np.testing.assert_allclose(np.asarray(e), e6, atol=1e-4)
        rho = np.asarray(qubit.strategy_from_params(params[i])[0])
        rho_a = np.einsum("abcb->ac", rho.reshape(2, 2, 2, 2))
        np.testing.assert_allclose(rho_a, np.eye(2) / 2, atol=1e-4)  # maximally entangled


def test_no_quantum_violation_where_condition_4_fails(rng):
    tuples = []
    while len(tuples) < 8:
        tpl = tuple(rng.uniform(0, 2 * PI, 3))
        if not bool(jb.is_self_testing(*tpl)):
            tuples.append(tpl)
    bmax, _, c = _maximise_bell(tuples)
    np.testing.assert_allclose(bmax, local_bound_bruteforce(c), rtol=1e-9, atol=1e-12)


# --- the envelope -------------------------------------------------------------------------------


def test_chsh_key_entropy_reproduces_pironio(chsh_key):
    env = chsh_key
    eta = np.linspace(1 / np.sqrt(2), 1.0, 401)  # S from 2 to 2 sqrt 2
    ref = pironio_entropy(2 * np.sqrt(2) * eta)
    got = env.entropy(eta)
    assert np.max(np.abs(got - ref)) < 1e-4
    # every hull point is an explicit strategy: never below the true infimum (up to rounding)
    assert np.min(got - ref) > -1e-9
    assert np.all(env.status(eta) == 0)
    # the supporting lines lie below the analytic curve everywhere (they are min-tradeoff
    # functions), up to the stated tolerance
    slope, intercept = env.supporting_line(eta[::20])
    for s, b in zip(slope, intercept, strict=True):
        assert np.all(b + s * eta <= ref + 1e-4)


def test_envelope_shape(prop3_key):
    env = prop3_key
    eta = np.linspace(0, env.bell_max, 501)
    f = env.entropy(eta)
    assert np.all(f[eta <= env.local_bound] == 0)
    assert np.all(np.diff(f) >= -1e-15)  # non-decreasing in |eta|
    assert np.all(np.diff(f, 2) >= -1e-12)  # convex
    np.testing.assert_array_equal(env.entropy(-eta), f)  # even
    assert f[-1] == pytest.approx(1.0, abs=1e-12)
    assert np.all(env.lower_estimate(eta) <= f + 1e-15)
    # the hull's vertices are the entropies of their strategies
    h, b, _ = qubit.strategy_terms(env.vertex_params, coefficients_np(*PROP3), kind="key")
    np.testing.assert_allclose(np.abs(np.asarray(b)), env.vertex_bell_value, atol=1e-12)
    np.testing.assert_allclose(np.asarray(h), env.vertex_entropy, atol=1e-12)


def test_prop3_key_entropy_matches_general_strategies_by_scipy(prop3_key):
    # a different method on the unreduced problem (complex states, Bloch vectors anywhere);
    # at this tuple g is convex, so g itself is the envelope
    pytest.importorskip("scipy")
    env = prop3_key
    eta = env.local_bound + 0.6 * (env.bell_max - env.local_bound)
    ref = general_qubit_min_entropy(coefficients_np(*PROP3), eta, starts=4, seed=1)
    assert float(env.entropy(eta)) == pytest.approx(ref, abs=1e-4)


def _general_strategy_min_entropy(tpl, eta, *, kind, x, y, starts, seed=2, maxiter=300):
    """min H over general two-qubit strategies with <B> = eta (SciPy SLSQP), and the count
    of runs that ended feasible.

    The same unreduced problem as helpers.general_qubit_min_entropy (rho = M M^dag / tr with
    M complex 4 x 4, Bloch vectors anywhere), but the first start is feasible by construction:
    eq. (6) with white noise of visibility eta / |eta^Q| (Bob's observables flipped where
    eta^Q < 0), written in those coordinates; the others perturb it (odd) or are random (even).
    Every run ends at an explicit strategy, so the result is an upper bound on g(eta).
    """
    from scipy.optimize import minimize

    c = coefficients_np(*tpl)
    proj, entropy = projectors, entropy_np

    def obs(t, p):
        return np.sin(t) * np.cos(p) * SX + np.sin(t) * np.sin(p) * SY + np.cos(t) * SZ

    def terms(z):
        m = (z[:16] + 1j * z[16:32]).reshape(4, 4)
        rho = m @ m.conj().T
        rho /= np.trace(rho).real
        alice = [obs(z[32], z[33]), obs(z[34], z[35])]
        bob = [obs(z[36], z[37]), obs(z[38], z[39])]
        bell = sum(c[i, j] * np.real(np.trace(rho @ np.kron(alice[i], bob[j])))
                   for i in (0, 1) for j in (0, 1))  # fmt: skip
        if kind == "key":
            h = entropy(sum(np.kron(p, np.eye(2)) @ rho @ np.kron(p, np.eye(2))
                            for p in proj(alice[x]))) - entropy(rho)  # fmt: skip
        else:
            prob = np.array([np.real(np.trace(rho @ np.kron(p, q)))
                             for p in proj(alice[x]) for q in proj(bob[y])])  # fmt: skip
            prob = prob[prob > 1e-300]
            h = float(-np.sum(prob * np.log2(prob))) - entropy(rho)
        return h, float(bell)

    # the feasible start: eq. (6) (X-Y plane: polar angle pi/2) with white noise
    psi = np.array([1, 0, 0, 1j]) / np.sqrt(2)
    t, ph, w = tpl
    flip = 0.0 if float(jb.quantum_bound(*tpl)) > 0 else np.pi
    v = eta / abs(float(jb.quantum_bound(*tpl)))
    rho = v * np.outer(psi, psi.conj()) + (1 - v) * np.eye(4) / 4
    lam, vec = np.linalg.eigh(rho)
    m = (vec * np.sqrt(np.clip(lam, 0, None))) @ vec.conj().T
    z_feasible = np.concatenate(
        [m.real.ravel(), m.imag.ravel(),
         [np.pi / 2, 0.0, np.pi / 2, t, np.pi / 2, ph + flip, np.pi / 2, w + flip]]
    )  # fmt: skip
    assert abs(terms(z_feasible)[1] - eta) < 1e-12  # feasible indeed
    rng = np.random.default_rng(seed)
    best, feasible = terms(z_feasible)[0], 1
    for k in range(starts):
        if k == 0:
            z0 = z_feasible
        elif k % 2:
            z0 = z_feasible + 0.05 * rng.standard_normal(40)
        else:
            z0 = np.concatenate([rng.standard_normal(32), rng.uniform(0, np.pi, 8)])
        res = minimize(
            lambda z: terms(z)[0],
            z0,
            method="SLSQP",
            constraints=[{"type": "eq", "fun": lambda z: terms(z)[1] - eta}],
            options={"maxiter": maxiter, "ftol": 1e-12},
        )
        h, bell = terms(res.x)
        if abs(bell - eta) < 1e-8:
            best, feasible = min(best, h), feasible + 1
    return best, feasible


def test_envelope_never_above_a_general_strategy_by_scipy():
    # fast version of the slow test below: one tuple, one Bell value, the feasible start
    env = qubit.qubit_envelope(*PROP5, kind="global", x=0, y=1)
    eta = env.local_bound + 0.7 * (env.bell_max - env.local_bound)
    ref, feasible = _general_strategy_min_entropy(
        PROP5, eta, kind="global", x=0, y=1, starts=1, maxiter=100
    )
    assert feasible >= 1 and np.isfinite(ref)  # at least the feasible start itself
    assert float(env.entropy(eta)) <= ref + float(env.gap(eta)) + 1e-9


@pytest.mark.slow
@pytest.mark.parametrize(
    ("tpl", "kind", "x", "y"),
    [(PROP3, "key", 0, 0), (PROP3, "key", 1, 0), (PROP5, "global", 0, 1), (CHSH, "global", 0, 0)],
)
def test_envelope_never_above_general_strategies_by_scipy(tpl, kind, x, y):
    # the envelope is at most the best single strategy SLSQP finds (up to its discretisation
    # gap: between vertices the hull is a chord), and equal where g is convex; the reference
    # must find feasible strategies (a reference of +inf would pass any envelope)
    env = qubit.qubit_envelope(*tpl, kind=kind, x=x, y=y)
    for frac in (0.3, 0.7):
        eta = env.local_bound + frac * (env.bell_max - env.local_bound)
        ref, feasible = _general_strategy_min_entropy(tpl, eta, kind=kind, x=x, y=y, starts=4)
        assert feasible >= 1 and np.isfinite(ref), (frac, feasible)
        assert float(env.entropy(eta)) <= ref + float(env.gap(eta)) + 1e-9


def test_not_self_testing_envelope_is_zero_and_needs_no_solve(rng):
    while True:
        tpl = tuple(rng.uniform(0, 2 * PI, 3))
        if not bool(jb.is_self_testing(*tpl)):
            break
    before = qubit._TRACES["solve"]
    env = qubit.qubit_envelope(*tpl, kind="global", x=1, y=1)
    assert qubit._TRACES["solve"] == before and env.passes == 0
    assert env.bell_max == pytest.approx(float(jb.local_bound(*tpl)), rel=1e-15)
    np.testing.assert_array_equal(env.entropy(np.linspace(0, env.bell_max, 9)), 0.0)
    with pytest.raises(ValueError, match="bell_value"):
        env.entropy(env.bell_max * 1.01)


def test_solver_compiles_once_per_shape():
    rng = np.random.default_rng(3)
    args = [
        jnp.asarray(qubit._random_params(rng, (1, 2, 2))),
        jnp.asarray(coefficients_np(*CHSH)[None]),
        jnp.asarray([0.7]),
        jnp.asarray([0.3]),
        jnp.asarray([0], dtype=jnp.int32),
        jnp.asarray([1], dtype=jnp.int32),
        jnp.asarray([[0.3, 1.2]]),
        0.05,
    ]
    qubit._solve(*args, kind="global", steps=5)
    n = qubit._TRACES["solve"]
    args[6] = jnp.asarray([[0.5, 0.9]])
    args[7] = 0.01  # values change, shapes do not: no new trace
    qubit._solve(*args, kind="global", steps=5)
    assert qubit._TRACES["solve"] == n


def test_options_are_checked():
    with pytest.raises(TypeError, match="unknown option.*'start'"):
        qubit.QubitOptions.from_mapping({"start": 3})
    with pytest.raises(ValueError, match="starts"):
        qubit.QubitOptions.from_mapping({"starts": 0})
    with pytest.raises(ValueError, match="tol"):
        qubit.QubitOptions(tol=-1.0)
    with pytest.raises(ValueError, match="kind"):
        qubit.qubit_envelope(*CHSH, kind="secret")
    with pytest.raises(ValueError, match="x must be 0 or 1"):
        qubit.qubit_envelope(*CHSH, x=2)


def test_seeds_reproduce_and_agree():
    a = qubit.qubit_envelope(*CHSH, kind="key", x=1, options=FAST)
    qubit.clear_cache()
    b = qubit.qubit_envelope(*CHSH, kind="key", x=1, options=FAST)
    np.testing.assert_array_equal(a.vertex_entropy, b.vertex_entropy)
    c = qubit.qubit_envelope(*CHSH, kind="key", x=1, options=FAST | {"seed": 5})
    eta = np.linspace(0.71, 1.0, 50)
    tol = max(np.max(a.gap(eta)), np.max(c.gap(eta))) + 1e-6
    np.testing.assert_allclose(a.entropy(eta), c.entropy(eta), atol=tol)
