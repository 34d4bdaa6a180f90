"""The last Gauss-Radau node (t = 1) of the BFF bound: its closed-form certified value 2p(1-p).

At t = 1 the node value of a strategy is g = 1 - sum_a Tr(sigma_a sigma^-1 sigma_a) (Eve's
states sigma_a given Alice's outcome a, sigma their sum). docs/rates.md ("The last node")
derives g >= 0, the identity g' = 2p(1-p) + (1-2p)^2 g after noisy preprocessing with flip
probability p, and g = 0 for Eve holding the purification of any full-rank state (so no
bound above 2p(1-p) is valid below the quantum bound). Checked here on random cq states and
explicit strategies; a loosened bound fails the tightness check.
"""

import math

import numpy as np
import pytest

import jaxbell as jb
from jaxbell.rates.bff import _last_node_term, gauss_radau, last_node_bound

PS = (0.0, 0.01, 0.1, 0.25, 0.4, 0.5)


def _node_value(sigmas, t=1.0):
    """1 + inf_Z sum_a <M_a(Z + Z^+ + (1-t) Z^+Z) + t Z Z^+> for Eve's states sigma_a.

    At t = 1 the infimum is attained at Z_a = -sigma^-1 sigma_a (pseudo-inverse on the support
    of sigma); the value is checked against a direct minimisation in test_closed_form_is_the_inf.
    """
    s = sum(sigmas)
    sinv = np.linalg.pinv(s, rcond=1e-12, hermitian=True)
    return 1.0 - sum(np.trace(a @ sinv @ a).real for a in sigmas)


def _flipped(sigmas, p):
    s0, s1 = sigmas
    return [(1 - p) * s0 + p * s1, p * s0 + (1 - p) * s1]


def _random_cq(rng, d, full_rank=True):
    parts = []
    for _ in range(2):
        r = d if full_rank else int(rng.integers(1, d + 1))
        g = rng.normal(size=(d, r)) + 1j * rng.normal(size=(d, r))
        g *= rng.uniform(0.2, 1.0)
        parts.append(g @ g.conj().T)
    tr = sum(np.trace(a).real for a in parts)
    return [a / tr for a in parts]


def _purified(rho, projectors):
    """Eve's states given a when she holds the purification of rho: (sqrt(rho) M_a sqrt(rho))^T."""
    w, v = np.linalg.eigh(rho)
    sq = v @ np.diag(np.sqrt(np.clip(w, 0, None))) @ v.conj().T
    return [(sq @ m @ sq).T for m in projectors]


def _noisy_strategy(v, angle=0.0, state_angle=math.pi / 4):
    """cos s|00> + sin s|11> mixed with white noise; Alice's key observable cos a Z + sin a X."""
    psi = np.zeros(4)
    psi[0], psi[3] = math.cos(state_angle), math.sin(state_angle)
    rho = v * np.outer(psi, psi) + (1 - v) * np.eye(4) / 4
    z, xx = np.diag([1.0, -1.0]), np.array([[0.0, 1.0], [1.0, 0.0]])
    obs = math.cos(angle) * z + math.sin(angle) * xx
    i2 = np.eye(2)
    return rho, [np.kron((i2 + obs) / 2, i2), np.kron((i2 - obs) / 2, i2)]


def _violations(bound, rng):
    """Where ``bound(p)`` is not a valid, tight t = 1 node bound: (invalid, not tight) counts."""
    invalid = not_tight = 0
    for _ in range(200):
        sig = _random_cq(rng, int(rng.integers(2, 5)), full_rank=bool(rng.integers(0, 2)))
        for p in PS:
            if _node_value(_flipped(sig, p)) < bound(p) - 1e-10:
                invalid += 1
    for v in (0.5, 0.9, 0.99):
        for angle in (0.0, 0.7):
            rho, proj = _noisy_strategy(v, angle, state_angle=0.6)
            sig = _purified(rho, proj)
            for p in PS:
                if abs(_node_value(_flipped(sig, p)) - bound(p)) > 1e-9:
                    not_tight += 1
    return invalid, not_tight


def test_the_closed_form_is_the_infimum(rng):
    # a direct minimisation over Z of 2 Re Tr(sigma_a Z) + Tr(sigma Z Z^+) reaches the closed form
    sig = _random_cq(rng, 3)
    s = sum(sig)
    total = 1.0
    for a in sig:
        z = -np.linalg.solve(s, a)
        total += 2 * np.trace(a @ z).real + np.trace(s @ z @ z.conj().T).real
        for _ in range(20):  # no perturbation does better
            dz = 1e-3 * (rng.normal(size=z.shape) + 1j * rng.normal(size=z.shape))
            zz = z + dz
            val = 2 * np.trace(a @ zz).real + np.trace(s @ zz @ zz.conj().T).real
            assert val >= 2 * np.trace(a @ z).real + np.trace(s @ z @ z.conj().T).real - 1e-12
    assert total == pytest.approx(_node_value(sig), abs=1e-12)


def test_preprocessing_identity_on_random_cq_states(rng):
    for _ in range(100):
        sig = _random_cq(rng, int(rng.integers(2, 5)), full_rank=bool(rng.integers(0, 2)))
        g = _node_value(sig)
        assert g >= -1e-9
        for p in PS:
            assert _node_value(_flipped(sig, p)) == pytest.approx(
                2 * p * (1 - p) + (1 - 2 * p) ** 2 * g, abs=1e-10
            )


def test_the_bound_holds_and_is_tight(rng):
    assert _violations(last_node_bound, rng) == (0, 0)


@pytest.mark.parametrize(
    "loosened",
    [
        lambda p: last_node_bound(p) + 1e-6,
        lambda p: 2 * p * (1 - p) * 1.01,
        lambda p: 0.5 * (1 - (1 - 2 * p) ** 2) + 0.5 * (1 - 2 * p) ** 2,  # claims g = 1/2
    ],
)
def test_a_loosened_bound_fails(rng, loosened):
    invalid, not_tight = _violations(loosened, rng)
    assert invalid + not_tight > 0


def test_eve_holding_the_purification_at_v_below_1_has_g_0_and_at_v_1_one_half():
    for v in (0.3, 0.9, 0.999):
        rho, proj = _noisy_strategy(v)
        assert abs(_node_value(_purified(rho, proj))) < 1e-9
    rho, proj = _noisy_strategy(1.0)  # the self-test: Eve decoupled, uniform key bit
    assert _node_value(_purified(rho, proj)) == pytest.approx(0.5, abs=1e-12)


def test_the_term_in_bits():
    for m in (2, 8, 32):
        t, w = gauss_radau(m)
        assert t[-1] == 1.0
        assert _last_node_term(m, "key", 0.5) == pytest.approx(0.5 / (m * m * math.log(2)))
        assert _last_node_term(m, "key", 0.0) == 0.0
        assert _last_node_term(m, "global", 0.0) == 0.0
    assert jb.rates.bff.last_node_bound(0.3, "global") == 0.0


@pytest.mark.parametrize("p", [0.0, 0.3])
def test_the_certified_value_carries_the_term(p):
    # value = max(h(p), sum_i weight_i (1 + node_i) + 2p(1-p) / (m^2 ln 2)), the tangent too
    m = 3
    chsh = (np.pi / 2, np.pi / 4, 3 * np.pi / 4)
    eta = 0.9 * float(jb.quantum_bound(*chsh))
    r = jb.rates.bff.bff_entropy(*chsh, eta, m=m, preprocessing=p, progress=False, processes=1)
    assert r.last_node == pytest.approx(2 * p * (1 - p) / (m * m * math.log(2)), abs=1e-15)
    total = float(np.sum(r.weights * (1 + r.node_value))) + r.last_node
    hp = 0.0 if p == 0 else -p * math.log2(p) - (1 - p) * math.log2(1 - p)
    assert float(r.value) == pytest.approx(max(hp, total), abs=1e-12)
    assert float(r.tangent_value) == pytest.approx(total, abs=1e-12)
    assert "last_node_bits" in str(r.to_dataset().attrs)


@pytest.mark.slow
def test_certified_key_near_1_with_more_nodes():
    # below the quantum bound the t = 1 node is worth nothing (g = 0 there), so the way to 1 is
    # more nodes: the cap 1 - 1/(2 m^2 ln 2) is 0.99930 at m = 32 (0.9887 at m = 8)
    pi = math.pi
    chsh = (pi / 2, pi / 4, 3 * pi / 4)
    r = jb.bff_entropy(*chsh, float(jb.quantum_bound(*chsh)), m=32, processes=1)
    assert 0.999 <= float(r.value) <= 1.0 - 1.0 / (2 * 32**2 * math.log(2)) + 1e-9
    # Prop. 3, delta = 0.1, at v = 1: the certified key rate within 1e-3 of the attack's
    p3 = (pi / 3, pi / 2 - 0.1, 5 * pi / 6)
    rates = np.asarray(
        jb.noisy_key_rate(
            *p3,
            visibility=1.0,
            x=0,
            method=("qubit", "bff"),
            options={"bff": {"m": 32, "processes": 1}},
        )  # fmt: skip
    )
    assert 0.0 <= rates[0] - rates[1] < 1e-3
