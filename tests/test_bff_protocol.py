"""Certified BFF bounds for the protocol options: noisy preprocessing and full statistics.

Independent references: the analytic CHSH bound with noisy preprocessing of Ho et al. (PRL 124,
230502 (2020); protocol.chsh_entropy), explicit lossy qubit strategies with Eve holding the
purification (brute-force linear algebra, Sylvester equations for Eve's optimal operators), the
explicit attack of jaxbell.rates.attack (an achievable upper bound), and h(p) where the statistics
have a local model.
"""

import math
import types

import numpy as np
import pytest
from helpers import PSI, SX, SY
from test_bff import _explicit_strategy, _inner_infimum, _word_matrix

import jaxbell as jb
from jaxbell.rates import attack, bff, protocol

PI = np.pi
S2 = math.sqrt(2.0)
CHSH = (PI / 2, PI / 4, 3 * PI / 4)
FAST_ATTACK = {"starts": 24, "steps": 250, "rounds": 12, "tol": 1e-4}


def _h(p):
    return 0.0 if p == 0 else float(-p * np.log2(p) - (1 - p) * np.log2(1 - p))


def _lossy_chsh_strategy(v, eff):
    """The CHSH strategy of eq. (6) with white noise v and detection efficiency eff (no-click ->
    outcome 0), Eve holding the purification: the targets <A_x>, <B_y>, <A_x B_y> and Eve's
    states sigma_a given Alice's key outcome (x = 0), from explicit matrices."""
    obs = lambda a: np.cos(a) * SX + np.sin(a) * SY  # noqa: E731
    alice = [obs(0.0), obs(CHSH[0])]
    bob = [obs(CHSH[1]), obs(CHSH[2])]
    rho = v * np.outer(PSI, PSI.conj()) + (1 - v) * np.eye(4) / 4
    lossy = lambda o: eff * o + (1 - eff) * np.eye(2)  # noqa: E731  (POVM observable)
    i2 = np.eye(2)

    def ev(op):
        return float(np.real(np.trace(rho @ op)))

    marg = [ev(np.kron(lossy(a), i2)) for a in alice] + [ev(np.kron(i2, lossy(b))) for b in bob]
    corr = [ev(np.kron(lossy(a), lossy(b))) for a in alice for b in bob]
    lam, vec = np.linalg.eigh(rho)
    psi_abe = vec * np.sqrt(np.clip(lam, 0, None))
    povm = [eff * (i2 + alice[0]) / 2 + (1 - eff) * i2, eff * (i2 - alice[0]) / 2]
    sigmas = []
    for m_a in povm:
        k = np.kron(m_a, i2)
        sigmas.append(psi_abe.T @ k.T @ psi_abe.conj())  # Tr_AB[(M_a x 1) psi psi^dag]
    return np.array(marg + corr), sigmas


# --- noisy preprocessing ----------------------------------------------------------------------


@pytest.mark.parametrize("p", [0.1, 0.3])
def test_preprocessing_is_below_and_close_to_ho_et_al(p):
    s = np.array([2.3, 2.7])
    m = 8
    r = jb.bff_entropy(*CHSH, -s / (2 * S2), m=m, preprocessing=p, processes=1)
    ref = np.asarray(protocol.chsh_entropy(s, preprocessing=p))
    assert np.all(r.status == 0), r.node_status
    assert np.all(r.value <= ref + 1e-9), r.value - ref
    assert np.all(r.value >= ref - (1 / (m**2 * math.log(2)) + 3e-3)), r.value - ref
    assert np.all(r.value > _h(p))  # more than the flips alone
    assert r.settings["preprocessing"] == p


def test_preprocessed_objective_is_the_povm_expectation(rng):
    # the node objective with M_a' = (1 - p) P_a + p P_{1-a}, evaluated on an explicit strategy
    # (averaged with its outcome flip), equals the direct expectation value; p = 0 gives the
    # projector objective's very floats
    ops, flip, psi, zo = _explicit_strategy(rng, "key")
    rel = bff._relaxation("key", 2, 0, 0, False)
    y = np.zeros(len(rel.index))
    for w, k in rel.index.items():
        y[k] = np.real(sum(psi.conj() @ _word_matrix(w, o) @ psi for o in (ops, flip))) / 2
    t, p = 0.41, 0.23
    c0, c = bff._linear(bff._node_objective("key", 0, 0, t, p), rel.index)
    direct = 0.0
    for strat, zmat in ((ops, zo), (flip, [zo[1], zo[0]])):
        proj = [(np.eye(8) + (-1) ** a * strat["A"][0]) / 2 for a in (0, 1)]
        for a, z in enumerate(zmat):
            m_a = (1 - p) * proj[a] + p * proj[1 - a]
            zd = z.conj().T
            val = m_a @ (z + zd + (1 - t) * zd @ z) + t * z @ zd
            direct += np.real(psi.conj() @ val @ psi) / 2
    np.testing.assert_allclose(c0 + c @ y, direct, atol=1e-12)
    assert bff._node_objective("key", 1, 0, t, 0.0) == bff._node_objective("key", 1, 0, t)


def test_preprocessing_zero_is_unchanged_bit_for_bit():
    eta = -np.array([2.4, 2.6]) / (2 * S2)
    old = jb.bff_entropy(*CHSH, eta, m=2, processes=1)
    new = jb.bff_entropy(*CHSH, eta, m=2, processes=1, preprocessing=0.0)
    via = bff.certify(*CHSH, eta, options={"m": 2, "processes": 1, "preprocessing": 0})
    for name in ("value", "dual_value", "correction", "node_value"):
        np.testing.assert_array_equal(getattr(new, name), getattr(old, name), err_msg=name)
    np.testing.assert_array_equal(via["value"], old.value)


@pytest.mark.parametrize("p", [0.0, 0.2])
def test_local_statistics_are_exactly_h_of_p_without_an_sdp(p):
    # a deterministic strategy (Eve holding its hidden variable) reaches local statistics, and
    # H(A'|E) >= h(p) always: the value is h(p), with no SDP solved, for every constraint
    opts = {"m": 2, "processes": 1, "preprocessing": p}
    eta_l = float(jb.local_bound(*CHSH))
    bell = bff.certify(*CHSH, [0.5 * eta_l, -eta_l], options=opts)
    beh = np.asarray(protocol.device_behaviour(*CHSH, visibility=0.7, efficiency=0.95))
    assert float(jb.max_chsh_value(protocol.behaviour_correlators(beh))) <= 2
    full = bff.certify(*CHSH, None, options=opts | {"constraint": "full"}, statistics=beh)
    e = np.asarray(protocol.behaviour_correlators(beh))
    corr = bff.certify(*CHSH, None, options=opts | {"constraint": "correlators"}, statistics=e)
    for res in (bell, full, corr):
        np.testing.assert_array_equal(res["value"], _h(p))
        assert not np.any(res["solved"]) and np.all(res["status"] == 0)


# --- full statistics ----------------------------------------------------------------------------


def test_unreduced_moment_matrix_is_the_gram_matrix_of_a_strategy_with_marginals(rng):
    # without the outcome-flip average the odd moments (marginals among them) survive: the one
    # block rebuilt from an explicit strategy's moments is its Gram matrix, and the marginal
    # columns hold <A_x>, <B_y>
    ops, _, psi, _ = _explicit_strategy(rng, "key")
    rel = bff._relaxation("key", 2, 0, 0, False, False)
    assert len(rel.blocks) == 1 and rel.flip is False

    def moment(word):
        return float(np.real(psi.conj() @ _word_matrix(word, ops) @ psi))

    y = np.zeros(len(rel.index))
    for w, k in rel.index.items():
        y[k] = moment(w)
    (block,) = rel.blocks
    g = (rel.F[0] @ y).reshape(len(block), len(block)) + rel.F0[0]
    ref = np.array([[moment(bff._wmul(bff._wadj(u), v)) for v in block] for u in block])
    ref = 0.5 * (ref + ref.T)  # real part of the Gram matrix (with the conjugate strategy)
    np.testing.assert_allclose(g, ref, atol=1e-12)
    marg = [moment(w) for w in (((0,), (), ()), ((1,), (), ()), ((), (0,), ()), ((), (1,), ()))]
    np.testing.assert_allclose(y[list(rel.marginal_columns)], marg, atol=1e-12)
    assert np.max(np.abs(marg)) > 1e-3  # a strategy with marginals: the case at issue
    sizes = bff.sdp_sizes("key", 2, constraint="full")
    assert sizes["block_dims"] == [31 + 26] and sizes["equalities"] == 8
    assert not sizes["outcome_flip"] and sizes["variables"] > bff.sdp_sizes()["variables"]


def test_full_with_uniform_marginals_equals_correlators():
    beh = np.asarray(protocol.device_behaviour(*CHSH, visibility=0.9))
    e = np.asarray(protocol.behaviour_correlators(beh))
    full = jb.bff_entropy(*CHSH, None, behaviour=beh, m=2, processes=1)
    corr = jb.bff_entropy(*CHSH, None, correlators=e, m=2, processes=1)
    assert full.status == 0 and corr.status == 0
    assert full.settings["constraint"] == "full" and full.sizes["block_dims"] == [57]
    np.testing.assert_allclose(float(full.value), float(corr.value), atol=1e-5)
    np.testing.assert_array_equal(full.behaviour, beh)


def test_lossy_full_certifies_most_and_stays_below_the_attack():
    # efficiency 0.9: non-uniform marginals. "full" constrains more than "correlators", which
    # constrains more than the Bell value; all certified, >= 0, and below the explicit attack
    beh = np.asarray(protocol.device_behaviour(*CHSH, efficiency=0.9))
    e = np.asarray(protocol.behaviour_correlators(beh))
    eta = float(np.sum(np.asarray(jb.bell_coefficients(*CHSH)) * e))
    opts = {"m": 2, "processes": 1}
    full = bff.certify(*CHSH, eta, options=opts | {"constraint": "full"}, statistics=beh)
    corr = bff.certify(*CHSH, eta, options=opts | {"constraint": "correlators"}, statistics=e)
    bell = bff.certify(*CHSH, eta, options=opts)
    assert full["status"] == 0 and corr["status"] == 0 and bell["status"] == 0
    assert full["solved"] and corr["solved"] and bell["solved"]
    f, c, b = (float(r["value"]) for r in (full, corr, bell))
    assert f >= c - 1e-6 and c >= b - 1e-6 and b >= 0
    assert f > c + 1e-3  # the marginals carry information here
    upper = attack.attack_entropy(beh, constraint="full", options=FAST_ATTACK)
    assert upper.residual < 1e-9 and f <= upper.entropy + 1e-9, (f, upper.entropy)


def test_full_certificate_correction_keeps_an_inexact_dual_below_the_truth():
    # as in test_bff.py, for the unreduced relaxation: an explicit lossy strategy's node
    # objective U (Eve's optimal Z) is feasible, so above the SDP minimum; a perturbed dual
    # point whose raw objective exceeds U is corrected back below it
    target, sigmas = _lossy_chsh_strategy(0.98, 0.9)
    beh = np.asarray(protocol.device_behaviour(*CHSH, visibility=0.98, efficiency=0.9))
    e = np.asarray(protocol.behaviour_correlators(beh)).ravel()
    np.testing.assert_allclose(target[4:], e, atol=1e-12)  # the device model, cross-checked
    assert abs(target[0]) > 0.05  # marginals: the flip reduction would be invalid
    t = float(bff.gauss_radau(4)[0][1])
    upper = _inner_infimum(t, sigmas)[0]
    args = ("key", 2, 0, 0, False, "full", None, target, t, "CLARABEL", None, False)
    value, dual, _, _, _ = bff._solve_node(*args)
    assert value <= dual <= upper + 1e-9
    prob = bff._node_problem("key", 2, 0, 0, False, "full", False)
    c0, c = bff._linear(bff._node_objective("key", 0, 0, t), prob.rel.index, False)
    c = c * (2 * bff.eve_norm_bound(t)) ** prob.rel.moment_eve
    a = prob.equality_matrix(None)
    xs = [np.array(con.dual_value) for con in prob.psd]
    lam, mu = np.atleast_1d(prob.eq.dual_value), np.atleast_1d(prob.bound.dual_value)

    def certify(xs, lam, mu):
        fake = types.SimpleNamespace(
            rel=prob.rel,
            psd=[types.SimpleNamespace(dual_value=x) for x in xs],
            eq=types.SimpleNamespace(dual_value=lam),
            bound=types.SimpleNamespace(dual_value=mu),
        )
        return bff._certify(fake, c, c0, a, target)[:3]

    v0, d0, _ = certify(xs, lam, mu)
    np.testing.assert_allclose([v0, d0], [value, dual], rtol=0, atol=1e-12)
    lift = upper - d0 + 0.05
    n = len(xs[0])
    x_low = [xs[0] - lift * np.eye(n)[:, :1] @ np.eye(n)[:1]]
    perturbed = {
        "X lowered at the empty word (not PSD)": (x_low, lam, mu),
        "lam moved (stationarity residual)": (xs, lam * (1 + lift / abs(float(target @ lam))), mu),
    }
    for name, args in perturbed.items():
        v, d, corr = certify(*args)
        assert d > upper, (name, d, upper)
        assert v <= upper + 1e-9, (name, v, upper)
        assert corr >= d - upper, name


# --- bad input -----------------------------------------------------------------------------------


@pytest.mark.parametrize("p", [-0.1, 0.6, math.nan])
def test_preprocessing_out_of_range_names_the_argument(p):
    with pytest.raises(ValueError, match="preprocessing must lie in"):
        jb.bff_entropy(*CHSH, -0.8, m=2, processes=1, preprocessing=p)
    with pytest.raises(ValueError, match=r"options\['preprocessing'\]"):
        bff.BffOptions(preprocessing=p)
    with pytest.raises(TypeError, match=r"options\['preprocessing'\]"):
        bff.BffOptions(preprocessing="optimal")


def test_preprocessing_with_global_kind_is_an_error():
    with pytest.raises(ValueError, match="kind 'key' only"):
        jb.bff_entropy(*CHSH, -0.8, kind="global", m=2, processes=1, preprocessing=0.1)
    with pytest.raises(ValueError, match=r"options\['preprocessing'\].*kind 'key' only"):
        bff.certify(*CHSH, -0.8, kind="global", options={"preprocessing": 0.1})


def test_bad_statistics_raise_naming_the_argument():
    beh = np.asarray(protocol.device_behaviour(*CHSH, efficiency=0.9))
    full = {"m": 2, "processes": 1, "constraint": "full"}
    with pytest.raises(ValueError, match="needs statistics"):
        bff.certify(*CHSH, -0.8, options=full)
    signalling = beh.copy()
    signalling[0, 0, 0, 1] += 0.05
    signalling[1, 0, 0, 1] -= 0.05  # Bob's marginal at y = 1 now depends on x
    with pytest.raises(ValueError, match="statistics signals"):
        bff.certify(*CHSH, None, options=full, statistics=signalling)
    with pytest.raises(ValueError, match="behaviour signals"):
        jb.bff_entropy(*CHSH, None, behaviour=signalling, m=2, processes=1)
    with pytest.raises(ValueError, match=r"statistics.*shape"):
        bff.certify(*CHSH, None, options=full, statistics=beh[..., 0])
    with pytest.raises(ValueError, match="statistics must be None"):
        bff.certify(*CHSH, -0.8, options={"m": 2}, statistics=beh)
    with pytest.raises(ValueError, match="either bell_value or behaviour"):
        jb.bff_entropy(*CHSH, -0.8, behaviour=beh, m=2, processes=1)
    with pytest.raises(ValueError, match="either correlators or behaviour"):
        jb.bff_entropy(*CHSH, None, behaviour=beh, correlators=np.eye(2), m=2, processes=1)
    with pytest.raises(ValueError, match="statistics must end in shape"):
        corr = {"m": 2, "constraint": "correlators"}
        bff.certify(*CHSH, None, options=corr, statistics=np.zeros(3))
    with pytest.raises(ValueError, match="constraint must be one of"):
        bff.sdp_sizes(constraint="all")
