"""The paper's claims (Props. 1-6), the figures' data, and `jaxbell reproduce --quick`.

The claims table compares computed values with the paper's analytic values; here the tools
behind it are checked against known answers first (the arcsine criterion on textbook points,
the qubit optimiser against NumPy matrices), then every claim of a quick run must pass, and
the command must write what it promises.
"""

import contextlib
import io
import json
import math
import re

import numpy as np
import pytest
from helpers import PSI, SX, SY, assert_labelled, binary_entropy_np

import jaxbell as jb
from jaxbell import reproduce as rp
from jaxbell.cli import main

# one worker runs this module under pytest-xdist (--dist loadgroup): its module-scoped
# `jaxbell reproduce --quick` run is then made once, not once per worker
pytestmark = pytest.mark.xdist_group("reproduce")

SQ = 1 / math.sqrt(2)


def test_tlm_residual_known_points():
    tsirelson = np.array([[SQ, SQ], [SQ, -SQ]])  # on the boundary
    deterministic = np.ones((2, 2))  # local vertex: on the boundary of Q too
    mixed = np.zeros((2, 2))  # the centre: interior
    pr_box = np.array([[1.0, 1.0], [1.0, -1.0]])  # not quantum
    b, ex = (np.asarray(a) for a in rp.tlm_residual(np.stack([tsirelson, deterministic, mixed,
                                                              pr_box])))  # fmt: skip
    np.testing.assert_allclose(b[:2], 0.0, atol=1e-15)
    assert b[2] == pytest.approx(np.pi) and ex[2] == pytest.approx(-np.pi)
    assert ex[3] == pytest.approx(np.pi)  # 2 pi - pi: outside the quantum set
    assert np.all(ex[:3] <= 1e-15)


def test_qubit_optimiser_reaches_eta_q_with_the_strategy_of_eq6(rng):
    """Prop. 1(iv): independent optimiser (only eq. 2 enters) vs eqs. (5)-(6); the correlators
    of eq. (6) recomputed from the matrices (NumPy)."""
    for _ in range(2):
        while True:
            t = rng.uniform(0, 2 * np.pi, 3)
            if float(jb.self_testing_margin(*t)) > 0.05:
                break
        res = rp.qubit_bell_maximum(*t, starts=16, seed=1)
        eta = float(jb.quantum_bound(*t))
        assert res["value"] == pytest.approx(abs(eta), rel=1e-10)
        obs = lambda a: np.cos(a) * SX + np.sin(a) * SY  # noqa: E731
        e6 = np.array([[np.real(PSI.conj() @ np.kron(obs(a), obs(b)) @ PSI) for b in t[1:]]
                       for a in (0.0, t[0])])  # fmt: skip
        np.testing.assert_allclose(res["correlators"], np.sign(eta) * e6, atol=1e-6)
        np.testing.assert_allclose(res["schmidt"], [SQ, SQ], atol=1e-6)
        assert res["alice_dot"] == pytest.approx(math.cos(t[0]), abs=1e-6)
        assert res["bob_dot"] == pytest.approx(math.cos(t[2] - t[1]), abs=1e-6)


def test_figure_marks_are_maxima_of_i_chsh():
    """The crosses of Figs. 1-2, recomputed with NumPy from the matrices of eq. (6)."""
    from helpers import correlators_from_matrices

    def i_chsh(t, p, w):
        e = correlators_from_matrices(t, p, w)
        return e[0, 0] + e[0, 1] + e[1, 0] - e[1, 1]

    m1 = rp.figure1_marks()
    assert m1.shape == (1, 2)  # one cross in the window, as in the paper
    assert i_chsh(m1[0, 0], m1[0, 1], np.pi) == pytest.approx(3 * math.sqrt(3) / 2, abs=1e-12)
    top, rnd = rp.figure2_marks()
    assert top.shape == (2, 2) and rnd.shape == (2, 2)
    for t, w in top:
        assert i_chsh(t, np.pi / 2, w) == pytest.approx(2.5, abs=1e-12)
    for t, w in rnd:
        assert i_chsh(t, np.pi / 2, w) == pytest.approx(1 + math.sqrt(2), abs=1e-12)
        assert abs(math.sin(w)) < 1e-12  # E01 = 0


def test_key_pair_entropy_from_matrices_is_the_papers_closed_form():
    """H(A|X=0,Y=0,B) from the matrices of eq. (6) against the paper's h((1 + sin phi)/2)."""
    for phi in (np.pi / 2, np.pi / 2 - 0.1, 0.3, -1.0, 2.0):
        ref = float(binary_entropy_np((1 + math.sin(phi)) / 2))
        assert rp.key_pair_entropy_from_matrices(0.7, phi, 2.0) == pytest.approx(ref, abs=1e-14)
    assert rp.key_pair_entropy_from_matrices(0.7, np.pi / 2 - 0.1, 2.0) > 0.02  # it can fail


def test_perfect_randomness_planes_reach_and_never_exceed_prop2():
    """The brute force behind claim 2-above: Prop. 2's 3 sqrt(3)/2 at theta = phi = pi/3 on
    the grid (n divisible by 6), below it on a grid that misses pi/3, never above."""
    top = 3 * math.sqrt(3) / 2
    assert rp.perfect_randomness_planes_max(60) == pytest.approx(top, abs=1e-12)
    coarse = rp.perfect_randomness_planes_max(100)
    assert top - 1e-2 < coarse < top
    with pytest.raises(ValueError, match="n must"):
        rp.perfect_randomness_planes_max(2)


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("reproduce")
    err = io.StringIO()
    with contextlib.redirect_stderr(err):  # not a terminal: no bar, so one line per stage
        rc = main(["reproduce", "--quick", "--out", str(out)])
    return rc, out, err.getvalue()


def test_reproduce_logs_one_line_per_stage(quick_run):
    _, _, err = quick_run
    lines = err.splitlines()
    assert len(lines) == 5, err  # five stages, not one line per search call
    assert all(line.startswith("reproduce: [") for line in lines), err
    assert "problems in" not in err


def test_reproduce_quiet_writes_nothing_to_stderr(quick_run, tmp_path, monkeypatch, capsys):
    """--quiet: no stage lines, and the INFO lines the library logs meanwhile are held back
    (the stages are replaced by the quick run's datasets, logging as the searches do)."""
    import logging

    _, out, _ = quick_run
    log = logging.getLogger("jaxbell")

    def loaded(name):
        def stage(*args, **kwargs):
            log.info("find_tuple: 128 problems in 1 call(s) of 128 per device on 1 x cpu")
            return jb.open_dataset(out / f"{name}.nc").load()

        return stage

    monkeypatch.setattr(rp, "figure1_grid", loaded("figure1_grid"))
    monkeypatch.setattr(rp, "figure2_grid", loaded("figure2_grid"))
    monkeypatch.setattr(rp, "tradeoff", loaded("tradeoff"))
    monkeypatch.setattr(rp, "compute_claims", lambda **kwargs: log.info("find_tuple: x") or [])
    capsys.readouterr()
    assert main(["reproduce", "--quick", "--quiet", "--out", str(tmp_path)]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    assert "claims pass" in captured.out


def test_claim_ids_name_their_proposition(quick_run):
    """Each id starts with its proposition: '1ii-value' under Prop. 1(ii), '2-...' under
    Prop. 2 (or Props. 2, ...); the trade-off claims name the proposition they extend."""
    _, out, _ = quick_run
    claims = json.loads((out / "claims.json").read_text())["claims"]
    for c in claims:
        head = c["id"].split("-")[0]
        props = re.findall(r"Props?\. ([0-9, ]+)(\((?:i|ii|iii|iv)\))?", c["proposition"])
        numbers = {n.strip() for ns, _ in props for n in ns.split(",") if n.strip()}
        if head == "T":
            assert c["proposition"].endswith("(new curve)"), c
            continue
        assert head[0] in numbers, c
        roman = head[1:]
        if roman:
            assert f"({roman})" in {part for _, part in props}, c


def test_reproduce_quick_passes_every_claim(quick_run):
    rc, out, _ = quick_run
    assert rc == 0
    payload = json.loads((out / "claims.json").read_text())
    assert payload["passed"] and payload["profile"] == "quick"
    ids = {c["id"] for c in payload["claims"]}
    for prop in ("1ii", "1iv", "2-", "3-", "4-", "5-", "6-", "T-"):
        assert any(i.startswith(prop) for i in ids), prop
    for c in payload["claims"]:
        assert c["passed"], c
        assert c["error"] <= c["tolerance"]


def test_reproduce_quick_writes_labelled_data_and_figures(quick_run):
    _, out, _ = quick_run
    for name in ("figure1.png", "figure2.png", "tradeoff.png", "claims.md"):
        assert (out / name).stat().st_size > 1000, name
    md = (out / "claims.md").read_text()
    assert "| 2-sup |" in md and "**FAIL**" not in md
    for name in ("figure1_grid.nc", "figure2_grid.nc", "tradeoff.nc"):
        ds = jb.open_dataset(out / name)
        assert_labelled(ds)
        assert "jaxbell.reproduce" in ds.attrs["history"]
    curve = jb.open_dataset(out / "tradeoff.nc")
    # the computed limits against the paper's values (Props. 3 and 5)
    s = curve.max_chsh.isel(max_epsilon=0)
    assert 0 < float(s.sel(perfect_randomness=False)) - 2.5 < 1e-3
    assert 0 < float(s.sel(perfect_randomness=True)) - (1 + math.sqrt(2)) < 1e-3


def test_reproduce_bad_out_is_named(tmp_path, capsys):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(SystemExit):
        main(["reproduce", "--quick", "--out", str(f)])
    assert "--out" in capsys.readouterr().err


def test_search_command(tmp_path, capsys):
    out = tmp_path / "r.nc"
    rc = main(["search", "--chsh", "2.5", "--perfect-randomness", "--out", str(out)])
    assert rc == 0
    ds = jb.open_dataset(out)
    assert abs(float(ds.max_chsh) - 2.5) <= 1e-9 and float(ds.global_rate) == 2.0
    with pytest.raises(SystemExit):
        main(["search", "--chsh", "2.6", "--perfect-randomness"])
    assert "--chsh" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["search", "--fixed", "omega"])
    assert "NAME=ANGLE" in capsys.readouterr().err


@pytest.mark.slow
def test_reproduce_default_passes_every_claim(tmp_path):
    report = rp.reproduce(tmp_path, quick=False, progress=False)
    assert report.passed, [c for c in report.claims if not c.passed]


def test_reproduce_datasets_record_the_command(quick_run):
    _, out, _ = quick_run
    for name in ("figure1_grid", "figure2_grid", "tradeoff"):
        history = jb.open_dataset(out / f"{name}.nc").attrs["history"]
        assert f"command: jaxbell reproduce --quick --out {out}" in history, name
