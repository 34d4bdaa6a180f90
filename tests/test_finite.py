"""Finite-size key rates (jaxbell.rates.finite) against independent references.

* the certified min-tradeoff functions (affine bounds from the BFF duals) lie below the tight
  CHSH curve of Pironio et al. 2009 (and Ho et al. 2020 with preprocessing) at every Bell
  value, and below the entropy of random qubit strategies with their statistics;
* the crossover min-tradeoff function's identities and its Max / Min / Var bounds, by brute
  force over random test distributions;
* the key-length formula, re-evaluated term by term with scalar Python arithmetic;
* limits: n -> infinity recovers the asymptotic rate, the rate rises with n and stays below it.
"""

import math

import numpy as np
import pytest

import jaxbell as jb
from jaxbell._precision import x64_scope
from jaxbell.rates import finite, protocol
from tests.helpers import assert_labelled

pytest.importorskip("cvxpy")

CHSH = (np.pi / 2, np.pi / 4, 3 * np.pi / 4)
S2 = math.sqrt(2.0)


def _behaviour(v, *, bob_key=2, efficiency=1.0, tup=CHSH):
    with x64_scope():
        return np.asarray(
            protocol.device_behaviour(*tup, visibility=v, efficiency=efficiency, bob_key=bob_key)
        )


@pytest.fixture(scope="module")
def chsh95():
    """Certified min-tradeoff functions of the CHSH device at v = 0.95 (5 SDP points)."""
    beh = _behaviour(0.95)
    return beh, finite.min_tradeoff_functions(beh, bell=CHSH, options={"m": 8})


def _pironio(s):
    s = np.abs(np.asarray(s, dtype=float))
    z = np.sqrt(np.maximum(s**2 / 4 - 1, 0.0))
    q = np.clip((1 + z) / 2, 1e-300, 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -q * np.log2(q) - np.where(q < 1, (1 - q) * np.log2(1 - q), 0.0)
    return np.where(s <= 2, 0.0, 1.0 - h)


def test_certified_min_tradeoff_lies_below_the_tight_chsh_curve(chsh95):
    # Pironio et al. 2009: H(A|X=0,E) >= 1 - h((1 + sqrt(S^2/4 - 1))/2), tight (a qubit
    # strategy reaches it at every S), so a valid affine bound lies below it at every S
    _, mtf = chsh95
    assert mtf.certified and np.all(mtf.status == 0)
    s = np.linspace(-2 * S2, 2 * S2, 4001)
    eta = -s / (2 * S2)  # <B> of the CHSH member = -S / (2 sqrt 2)
    g = mtf(eta[:, None])  # (S, T)
    assert np.all(g <= _pironio(s)[:, None] + 1e-12)
    # ... and touches it at its tangent point (within the certified bound's known gap, m = 8)
    s_t = -mtf.statistics[:, 0] * 2 * S2
    gap = _pironio(s_t) - mtf.value
    assert np.all(gap > 0) and np.all(gap < 2e-3), gap
    # the slope is the curve's derivative there (finite differences of the analytic curve)
    d = (_pironio(s_t + 1e-6) - _pironio(s_t - 1e-6)) / 2e-6 * (-2 * S2)
    np.testing.assert_allclose(mtf.slope[:, 0], d, rtol=5e-3)


def test_certified_min_tradeoff_with_preprocessing_below_ho_et_al():
    # Ho et al. 2020: the CHSH entropy of the flipped bit, a tight curve in S for each p
    beh = _behaviour(0.97)
    mtf = finite.min_tradeoff_functions(
        beh, bell=CHSH, preprocessing=0.1, tangent_scales=(1.0, 0.97), options={"m": 8}
    )
    s = np.linspace(2.0, 2 * S2, 801)
    with x64_scope():
        ref = np.asarray(jb.chsh_entropy(s, preprocessing=0.1))
    g = mtf((-s / (2 * S2))[:, None])
    assert np.all(g <= ref[:, None] + 1e-9)
    assert np.all(mtf.status == 0) and np.all(mtf.value > 0.1)  # certified, non-trivial
    assert np.all(np.isfinite(mtf.slope))


def _random_qubit(n, seed):
    from jaxbell.rates import qubit

    rng = np.random.default_rng(seed)
    params = rng.normal(size=(n, qubit.NUM_PARAMS))
    params[:, 8:] = rng.uniform(-np.pi, np.pi, size=(n, 4))
    return params


def test_min_tradeoff_never_exceeds_the_entropy_of_random_qubit_strategies(chsh95):
    from jaxbell.rates import qubit

    _, mtf = chsh95
    coef = np.asarray(jb.bell_coefficients(*CHSH), dtype=float)
    # random strategies, and perturbations of the optimal one of eq. (6) (large Bell values)
    rng = np.random.default_rng(3)
    near = (
        qubit._anchor_params(*CHSH)
        + rng.normal(size=(3000, 12)) * np.geomspace(1e-4, 0.3, 3000)[:, None]
    )
    flipped = near.copy()
    flipped[:, 8:10] += np.pi  # Alice's outcomes relabelled: every correlator changes sign
    params = np.concatenate([_random_qubit(3000, 1), near, flipped])
    with x64_scope():
        h, bell, _ = (np.asarray(a) for a in qubit.strategy_terms(params, coef))
    g = mtf(bell[:, None])
    assert np.max(g - h[:, None]) <= 1e-9
    # not vacuous: the tangent at v = 1 (S = 2.687) passes within 0.13 bit of the strategies
    # near S = 2 sqrt 2 (Pironio's curve is 0.127 above it there), so a bound raised by
    # 0.13 bit would fail
    assert np.min(h - g[:, 0]) < 0.13


def test_full_statistics_min_tradeoff_below_random_strategies_with_marginals():
    # constraint "full" (marginals and correlators): lossy devices have non-zero marginals
    from jaxbell.rates import qubit

    beh = _behaviour(0.99, efficiency=0.97)
    mtf = finite.min_tradeoff_functions(
        beh, bell=CHSH, constraint="full", tangent_scales=(1.0,), options={"m": 4}
    )
    assert np.all(mtf.status == 0) and mtf.slope.shape == (1, 8)
    params = _random_qubit(1500, 2)
    with x64_scope():
        h, _, corr = (np.asarray(a) for a in qubit.strategy_terms(params, np.zeros((2, 2))))
        rho, alpha, beta = (np.asarray(a) for a in qubit.strategy_from_params(params))
    z, xm = np.diag([1.0, -1.0]), np.array([[0.0, 1.0], [1.0, 0.0]])
    obs = lambda a: np.cos(a)[..., None, None] * z + np.sin(a)[..., None, None] * xm  # noqa: E731
    eye = np.eye(2)
    ma = [
        np.einsum(
            "nij,nji->n", rho, np.einsum("nab,cd->nacbd", obs(alpha[:, k]), eye).reshape(-1, 4, 4)
        )
        for k in (0, 1)
    ]
    mb = [
        np.einsum(
            "nij,nji->n", rho, np.einsum("ab,ncd->nacbd", eye, obs(beta[:, k])).reshape(-1, 4, 4)
        )
        for k in (0, 1)
    ]
    stats = np.column_stack([*ma, *mb, corr.reshape(-1, 4)])
    g = mtf(stats)[:, 0]
    assert np.max(g - h) <= 1e-9


def test_crossover_min_tradeoff_identities_by_brute_force(chsh95):
    # f(bot) = F = max u, f(c) = F + (u_c - F) / gamma: on every distribution a round can
    # produce, q = (1 - gamma) delta_bot + gamma P, f(q) = (1 - gamma) g(b(P)); and the bounds
    # Max f - Min f <= max u - min u and Var f <= (max u - min u)^2 max_m (m - gamma m^2) / gamma
    _, mtf = chsh95
    rng = np.random.default_rng(0)
    w = mtf.symbol_values.T[0]  # g at each test symbol, bits
    for gamma in (0.003, 0.2, 0.7):
        u = (1 - gamma) * w
        big = u.max()
        f_sym = big + (u - big) / gamma
        p = rng.dirichlet(np.ones(16) * 0.3, size=3000)
        fq = (1 - gamma) * big + gamma * p @ f_sym
        b = p @ mtf.scores
        np.testing.assert_allclose(fq, (1 - gamma) * mtf(b)[:, 0], atol=1e-12)
        var = (1 - gamma) * big**2 + gamma * p @ f_sym**2 - fq**2
        m_star = 1 - gamma if gamma <= 0.5 else 1 / (4 * gamma)
        bound = ((1 - gamma) * (w.max() - w.min())) ** 2 * m_star / gamma
        assert var.max() <= bound * (1 + 1e-12)
        assert fq.min() >= u.min() - 1e-12


def _rate_by_hand(n, gamma, alpha, mtf, t, costs, eps):
    """The key-length formula of the module docstring, term by term, in scalar arithmetic."""
    w = [float(v) for v in mtf.symbol_values.T[t]]
    P = [float(v) for v in mtf.test_distribution]
    gh = float(mtf.asymptotic_entropy[t])
    u = [(1 - gamma) * v for v in w]
    big, small = max(u), min(u)
    width = big - small
    var_max = width**2 * (1 - gamma if gamma <= 0.5 else 1 / (4 * gamma)) / gamma
    dvals = [(big - uc) / gamma for uc in u]
    ed = sum(pc * dc for pc, dc in zip(P, dvals, strict=True))
    ed2 = sum(pc * dc * dc for pc, dc in zip(P, dvals, strict=True))
    var_h = gamma * ed2 - (gamma * ed) ** 2
    L = math.log(2 / eps.com)
    M = width / gamma
    delta = (M * L / 3 + math.sqrt((M * L / 3) ** 2 + 2 * n * var_h * L)) / n
    h = (1 - gamma) * gh - delta
    V = math.log2(33) + math.sqrt(2 + var_max)
    K = (
        2 ** ((alpha - 1) * (2 + width))
        * math.log(2 ** (2 + width) + math.e**2) ** 3
        / (6 * (2 - alpha) ** 3 * math.log(2))
    )
    e1 = eps.s / 4
    eat = (
        n * h
        - n * (alpha - 1) * math.log(2) / 2 * V**2
        - math.log2(2 / (e1**2 * eps.ea**2)) / (alpha - 1)
        - n * (alpha - 1) ** 2 * K
    )
    tail = math.log(1 / (1 - math.sqrt(1 - e1**2))) if e1 > 1e-7 else math.log(2 / e1**2)
    tail += math.log(1 / eps.ea)  # the tail on the accepted state: / p_Omega >= eps_EA
    k = n * gamma + tail / 3 + math.sqrt(tail**2 / 9 + 2 * n * gamma * (1 - gamma) * tail)
    chain = -3 * math.log2(e1**2 / 2)  # 3 vartheta(e1), vartheta(e) ~ log2(2 / e^2)
    leak = (
        n * ((1 - gamma) * costs.key_cost + gamma * costs.test_cost)
        + math.sqrt(n)
        * 4
        * math.log2(2 + math.sqrt(2))
        * math.sqrt(math.log2(2 / (eps.com / 2) ** 2))
        + math.log2(1 / eps.ec)
    )
    return (eat - k - chain - leak - 2 * math.log2(1 / eps.pa)) / n


def test_key_length_formula_term_by_term(chsh95):
    beh, mtf = chsh95
    eps = finite.Epsilons.split(1e-10, 1e-2)
    costs = finite._costs(beh, 0, 2, 0.0, 1.0)
    for n, gamma, alpha, t in (
        (1e6, 0.1, 1.001, 4),
        (1e9, 0.01, 1 + 3e-5, 1),
        (3e11, 0.002, 1 + 1e-6, 0),
    ):
        grid = finite._rate_grid(
            np.array(n).reshape(1, 1, 1),
            np.array(gamma).reshape(1, 1, 1),
            np.array(alpha - 1).reshape(1, 1, 1),
            mtf,
            costs,
            eps,
        )[0, 0, t]
        np.testing.assert_allclose(
            grid, _rate_by_hand(n, gamma, alpha, mtf, t, costs, eps), rtol=1e-9, atol=1e-12
        )
    # the error-correction costs are the behaviour's own H(A|B): h(Q) of the aligned input
    q = (1 - 0.95) / 2
    hq = -q * math.log2(q) - (1 - q) * math.log2(1 - q)
    assert costs.key_cost == pytest.approx(hq, rel=1e-12)


def test_rate_rises_with_n_stays_below_and_recovers_the_asymptotic_rate(chsh95):
    beh, mtf = chsh95
    n = np.round(np.geomspace(1e4, 1e16, 25))
    rate, status = jb.finite_key_rate(
        beh, n, bell=CHSH, min_tradeoff=mtf, return_status=True, bob_key="aligned"
    )
    asym = float(np.max(mtf.asymptotic_entropy)) - finite._costs(beh, 0, 2, 0.0, 1.0).key_cost
    assert np.all(np.diff(rate) >= -1e-9), np.diff(rate)
    assert np.all(rate < asym)
    # second-order terms shrink like 1/sqrt(n) (up to logs): at 1e16 the gap is < 1e-3 bit
    assert asym - rate[-1] < 1e-3
    assert rate[0] < 0 and status[0] == 1 and status[-1] == 0
    # the asymptotic rate is the Devetak-Winter rate of the certified bound (Pironio: 0.5391)
    assert asym == pytest.approx(
        _pironio(0.95 * 2 * S2) - finite._costs(beh, 0, 2, 0.0, 1.0).key_cost, abs=2e-3
    )


def test_smaller_eps_and_worse_codes_cost_key(chsh95):
    beh, mtf = chsh95
    kw = {"bell": CHSH, "min_tradeoff": mtf, "bob_key": "aligned"}
    base = jb.finite_key_rate(beh, 1e8, **kw)
    assert jb.finite_key_rate(beh, 1e8, eps_sec=1e-20, **kw) < base
    assert jb.finite_key_rate(beh, 1e8, error_correction_efficiency=1.1, **kw) < base
    assert jb.finite_key_rate(beh, 1e8, test_probability=0.5, **kw) < base  # gamma optimised


def test_min_rounds_is_where_the_rate_turns_positive(chsh95):
    beh, mtf = chsh95
    n0, code = jb.min_rounds(
        beh, bell=CHSH, min_tradeoff=mtf, return_status=True, bob_key="aligned"
    )
    assert code == 0 and 1e5 < n0 < 1e8
    below, above = jb.finite_key_rate(
        beh, np.round([n0 * 0.99, n0 * 1.01]), bell=CHSH, min_tradeoff=mtf, bob_key="aligned"
    )
    assert below <= 0 < above


def test_no_key_is_reported_with_its_reason_never_as_zero():
    beh = _behaviour(0.70)  # S = 1.98: local, no DI key at any n
    rate, status = jb.finite_key_rate(
        beh,
        [1e6, 1e12],
        bell=CHSH,
        method="qubit",
        tangent_scales=(1.0,),
        return_status=True,
        bob_key="aligned",
    )
    assert np.all(rate < 0) and np.all(status == 2)
    n, code = jb.min_rounds(
        beh, bell=CHSH, method="qubit", tangent_scales=(1.0,), return_status=True, bob_key="aligned"
    )
    assert n == math.inf and code == 2


def test_qubit_estimate_is_labelled_uncertified_and_close_to_the_certified_rate(chsh95):
    # two methods, one bound: the attack's hull segments (upper side) and the certified duals
    # (lower side) bracket the tight CHSH curve within ~1e-3 bit, so the rates agree that well
    beh, mtf = chsh95
    ds = jb.finite_rate_curve(beh, [1e7, 1e10], bell=CHSH, method="qubit", bob_key="aligned")
    assert ds.attrs["certified"] == 0 and "UNCERTIFIED" in ds.attrs["title"]
    cert = jb.finite_key_rate(beh, [1e7, 1e10], bell=CHSH, min_tradeoff=mtf, bob_key="aligned")
    np.testing.assert_allclose(ds.finite_key_rate.values, cert, atol=2e-3)


def test_curve_dataset_is_labelled_and_round_trips(chsh95, tmp_path):
    beh, mtf = chsh95
    ds = jb.finite_rate_curve(beh, bell=CHSH, min_tradeoff=mtf, eps_sec=1e-8, bob_key="aligned")
    assert ds.sizes["rounds"] == 30 and ds.rounds.values[0] == 1e5
    assert_labelled(ds)
    for key in ("eps_sec", "eps_ec", "eps_pa", "eps_s", "eps_ea", "eps_com"):
        assert key in ds.attrs
    assert ds.attrs["eps_ec"] + ds.attrs["eps_pa"] + 2 * ds.attrs["eps_s"] + ds.attrs[
        "eps_ea"
    ] == pytest.approx(1e-8)
    np.testing.assert_allclose(ds.key_length, ds.finite_key_rate * ds.rounds)
    path = tmp_path / "f.nc"
    jb.save_dataset(ds, path)
    back = jb.open_dataset(path)
    np.testing.assert_array_equal(back.finite_key_rate.values, ds.finite_key_rate.values)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"rounds": 0.5}, "rounds must be finite and >= 1"),
        ({"rounds": [1e6, np.nan]}, "rounds must be finite"),
        ({"rounds": np.inf}, "rounds must be finite"),
        ({"eps_sec": 0.0}, "eps_sec must lie in"),
        ({"eps_sec": 1.5}, "eps_sec must lie in"),
        ({"test_probability": 1.0}, "test_probability must lie in"),
        ({"eps_com": -1e-3}, "eps_com must lie in"),
        ({"error_correction_efficiency": 0.9}, "error_correction_efficiency"),
        ({"bob_key": 3}, "bob_key"),
        ({"probabilities": np.full((2, 2, 2, 3), 0.3)}, "probabilities"),
        ({"probabilities": np.full((3, 2, 2, 2, 3), 0.25)}, "one behaviour"),
        ({"bell": None}, "bell=.*required"),
        ({"preprocessing": "optimal"}, "preprocessing must be a flip probability"),
        ({"tangent_scales": (1.2,)}, "tangent_scales"),
    ],
)
def test_bad_input_names_the_argument(kwargs, match):
    args = {"probabilities": _behaviour(0.95), "rounds": 1e6, "bell": CHSH, "method": "qubit"}
    args["bob_key"] = "aligned"
    args |= kwargs
    with pytest.raises((ValueError, TypeError), match=match):
        jb.finite_key_rate(args.pop("probabilities"), args.pop("rounds"), **args)


def test_cli_finite_writes_the_curve(tmp_path, capsys):
    from jaxbell.cli import main

    out = tmp_path / "f.nc"
    code = main(
        [
            "finite",
            "--theta",
            "pi/2",
            "--phi",
            "pi/4",
            "--omega",
            "3pi/4",
            "--visibility",
            "0.95",
            "--rounds",
            "1e6:1e10:3",
            "--method",
            "qubit",
            "--min-rounds",
            "--out",
            str(out),
            "--no-progress",
        ]
    )
    assert code == 0
    line = capsys.readouterr().out
    assert "UNCERTIFIED" in line and "smallest n with key" in line
    ds = jb.open_dataset(out)
    np.testing.assert_allclose(ds.rounds.values, [1e6, 1e8, 1e10])
    assert np.isfinite(float(ds.min_rounds))


@pytest.mark.parametrize(
    ("argv", "match"),
    [
        (["--rounds", "0:10:3"], "1 <= START"),
        (["--eps-sec", "2"], "--eps-sec must lie in"),
        (["--preprocessing", "0.7"], "--preprocessing"),
    ],
)
def test_cli_finite_bad_options(tmp_path, capsys, argv, match):
    from jaxbell.cli import main

    base = ["finite", "--theta", "pi/2", "--phi", "pi/4", "--omega", "3pi/4"]
    with pytest.raises(SystemExit):
        main(base + argv + ["--out", str(tmp_path / "f.nc")])
    assert match.replace("\\", "") in capsys.readouterr().err


def test_nadlinger_2022_key_length_is_reproduced():
    # a published finite-size result for the CHSH protocol, with their bound and parameters:
    # Nadlinger et al., Nature 607, 682 (2022), Suppl. Prop. 2 (eq. 73); n = 1.5e6 rounds,
    # S = 2.64, Q = 1.8 %, gamma = 13/256, eps_snd = 1e-10: omega_thr = 0.825538 (their eq. 25),
    # syndrome m = 296 517 bits (eq. 23), key length 95 884 bits (Table I)
    length, params = finite.nadlinger2022_key_length(1.5e6, chsh=2.64, qber=0.018)
    assert params["omega_thr"] == pytest.approx(0.825538, abs=5e-7)
    assert params["syndrome"] == pytest.approx(296517, abs=1)
    # tolerance: their omega_thr is quoted to 6 digits, worth +-7 bits of key
    assert length == pytest.approx(95884, abs=10)
    assert finite.nadlinger2022_key_length(5e5, chsh=2.64, qber=0.018)[0] == 0.0  # no key yet


def _their_device():
    """S = 2.64 on the test inputs, Q = 1.8 % on the aligned key input (Nadlinger et al.)."""
    beh = np.array(_behaviour(2.64 / (2 * S2)))
    q = 0.018
    beh[:, :, 0, 2] = [[(1 - q) / 2, q / 2], [q / 2, (1 - q) / 2]]
    beh[:, :, 1, 2] = 0.25
    return beh


def test_observed_score_bound_agrees_with_the_published_one_on_their_device():
    # two implementations of the same kind of bound (EAT with the variance at the observed
    # score): jaxbell's general one (optimised gamma, AEP error correction, two-universal
    # hashing, Bernstein threshold) and theirs (gamma = 13/256, their code's syndrome and
    # extractor): key where theirs has key, and rates within 10 %
    beh = _their_device()
    n = np.array([1.5e6, 1e7, 1e8])
    ours = jb.finite_key_rate(
        beh, n, bell=CHSH, method="qubit", tangent_scales=(1.0, 0.98, 0.95), bob_key="aligned"
    )
    theirs = np.array([finite.nadlinger2022_key_length(k, chsh=2.64, qber=0.018)[0] / k for k in n])
    assert np.all(ours > 0)
    np.testing.assert_allclose(ours[1:], theirs[1:], rtol=0.1)
    # the worst-case variance bound (16 symbols) is looser: no key yet at 1.5e6
    worst = jb.finite_key_rate(
        beh,
        n,
        bell=CHSH,
        method="qubit",
        tangent_scales=(1.0, 0.98, 0.95),
        second_order="worst",
        bob_key="aligned",
    )
    assert worst[0] < 0 and np.all(worst[1:] < ours[1:])


def test_binary_test_identities_and_delta_by_brute_force(chsh95):
    # omega = E[C] of the randomised score, g_t = G + M (2 omega - 1) on every distribution;
    # Delta(omega) lies below Pironio's curve minus g_t (the tangents' envelope is certified)
    _, mtf = chsh95
    big, G, omega_h, delta_fn, kinks = finite._binary_test(mtf, 0.0)
    sigma = mtf.scores @ mtf.slope.T
    rng = np.random.default_rng(5)
    p = rng.dirichlet(np.ones(16) * 0.3, size=2000)
    omega = p @ ((1 + sigma / big) / 2)  # (2000, T)
    b = p @ mtf.scores
    np.testing.assert_allclose(mtf(b), G + big * (2 * omega - 1), atol=1e-12)
    np.testing.assert_allclose(omega_h, mtf.test_distribution @ ((1 + sigma / big) / 2))
    w = np.linspace(0, 1, 20001)
    eta = big[0] * (2 * w - 1) / mtf.slope[0, 0]  # the Bell value at score w
    s = -eta * 2 * S2
    g_t = G[:, None] + big[:, None] * (2 * w[None, :] - 1)
    quantum = np.abs(s) <= 2 * S2  # the scores a quantum strategy reaches (the infimum runs
    # over all of [0, 1], a superset, which only lowers it)
    d = delta_fn(w)[:, quantum]
    assert np.all(d <= np.maximum(_pironio(s[quantum])[None, :] - g_t[:, quantum], 0) + 1e-9)
    assert np.all(delta_fn(w) >= 0) and kinks.size >= 1


def test_observed_inner_infimum_is_conservative(chsh95):
    # the grid infimum with the kinks must not exceed a dense brute-force infimum
    beh, mtf = chsh95
    eps = finite.Epsilons.split(1e-10, 1e-2)
    costs = finite._costs(beh, 0, 2, 0.0, 1.0)
    n, gamma, am1 = 1e7, 0.03, 2e-4
    big, G, omega_h, delta_fn, _ = finite._binary_test(mtf, 0.0)
    w = np.linspace(0, 1, 200001)
    jump = (1 - gamma) * 2 * big / gamma
    var = gamma * (1 - w) * (1 - gamma * (1 - w))
    v = (math.log(2) / 2) * (math.log2(33) + np.sqrt(2 + var[None, :] * jump[:, None] ** 2)) ** 2
    dense = np.min((1 - gamma) * delta_fn(w) - am1 * v, axis=1)  # (T,)
    rate = finite._rate_observed(
        n, np.array(gamma).reshape(1, 1, 1), np.array(am1).reshape(1, 1, 1), mtf, costs, eps
    )[0, 0]
    # recompute the rate with the dense infimum: the grid's must be <= it, and close
    q_h = gamma * (1 - omega_h)
    L = math.log(2 / eps.com)
    dev = (L / 3 + np.sqrt(L**2 / 9 + 2 * n * q_h * (1 - q_h) * L)) / n
    w_thr = 1 - (q_h + dev) / gamma
    expo = 2 + (1 - gamma) * 2 * big
    K = 2 ** (am1 * expo) * np.log(2**expo + math.e**2) ** 3 / (6 * (1 - am1) ** 3 * math.log(2))
    e1 = eps.s / 4
    eat = (
        n * (1 - gamma) * (G + big * (2 * w_thr - 1))
        + n * dense
        - n * am1**2 * K
        - (-math.log2(e1**2 / 2) + (1 + am1) * math.log2(1 / eps.ea)) / am1
    )
    ref = (eat - finite._common_costs(n, gamma, costs, eps)) / n
    assert np.all(rate <= ref + 1e-12)
    np.testing.assert_allclose(rate, ref, atol=3e-4)  # the grid costs < 3e-4 bit per round


def test_a_min_tradeoff_function_of_another_protocol_is_refused(chsh95):
    beh, mtf = chsh95
    with pytest.raises(ValueError, match="key input x = 0"):
        jb.finite_key_rate(beh, 1e8, bell=CHSH, x=1, min_tradeoff=mtf, bob_key="aligned")
    with pytest.raises(ValueError, match="preprocessing"):
        jb.finite_key_rate(
            beh, 1e8, bell=CHSH, preprocessing=0.1, min_tradeoff=mtf, bob_key="aligned"
        )
    with pytest.raises(ValueError, match="another behaviour"):
        jb.finite_key_rate(_behaviour(0.9), 1e8, bell=CHSH, min_tradeoff=mtf, bob_key="aligned")
