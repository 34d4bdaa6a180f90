"""threshold_grid: thresholds over the family, the bracket, the resumable store, the CLI."""

import numpy as np
import pytest
from helpers import assert_labelled

import jaxbell as jb
from jaxbell.cli import main

PI = np.pi
LOOSE = {"directions": 16, "starts": 4, "steps": 200, "refine": 0, "tol": 1.0}
THETA = np.array([1.2, PI / 2])
PHI = np.array([PI / 4])
OMEGA = np.array([3 * PI / 4])


@pytest.fixture(scope="module")
def qubit_grid():
    return jb.threshold_grid(THETA, PHI, OMEGA, method="qubit", options=LOOSE, progress=False)


def test_each_cell_is_the_point_search(qubit_grid):
    ds = qubit_grid
    assert ds.critical_value.dims == ("theta", "phi", "omega", "rate_method")
    assert list(ds.rate_method.values) == ["qubit"]
    assert list(ds.threshold_bound.values) == ["lower"]  # an attack: below the true threshold
    for t in THETA:
        ref = float(jb.critical_visibility(t, PHI[0], OMEGA[0], method="qubit", options=LOOSE))
        got = float(ds.critical_value.sel(theta=t, rate_method="qubit").squeeze())
        assert got == pytest.approx(ref, abs=1e-12)
    assert np.all(ds.threshold_status.values == 0)
    np.testing.assert_array_equal(
        ds.attack_threshold.values, ds.critical_value.sel(rate_method="qubit").values
    )
    assert np.all(np.isnan(ds.certified_threshold.values))  # no certified method asked
    assert_labelled(ds)


def test_no_rate_is_status_1():
    # theta = pi/2, phi = 0: not self-testing / no rate anywhere
    ds = jb.threshold_grid([PI / 2], [0.0], [PI], method="qubit", options=LOOSE, progress=False)
    assert int(ds.threshold_status.squeeze()) != 0
    assert np.isnan(float(ds.critical_value.squeeze()))


def test_store_resumes_and_equals_the_in_memory_grid(tmp_path, qubit_grid):
    path = tmp_path / "maps.zarr"
    kw = {"method": "qubit", "options": LOOSE, "progress": False, "block_rows": 1}
    first = jb.threshold_grid(THETA, PHI, OMEGA, path=path, **kw)
    np.testing.assert_array_equal(first.critical_value.values, qubit_grid.critical_value.values)
    assert jb.store.store_progress(path) == (2, 2)
    # forget block 1 (as if the run had been interrupted before it) and spoil its data
    (path / "_jaxbell" / "done" / "1").unlink()
    import zarr

    zarr.open_group(str(path), mode="r+")["critical_value"][1] = -5.0
    assert jb.store.store_progress(path) == (1, 2)
    with pytest.raises(ValueError, match="unfinished"):
        jb.open_dataset(path)
    again = jb.threshold_grid(THETA, PHI, OMEGA, path=path, **kw)
    np.testing.assert_array_equal(again.critical_value.values, qubit_grid.critical_value.values)
    assert jb.store.store_progress(path) == (2, 2)
    # other settings: refused unless overwrite
    with pytest.raises(ValueError, match="other settings"):
        jb.threshold_grid(THETA, PHI, OMEGA, path=path, **(kw | {"xtol": 1e-3}))
    jb.threshold_grid(THETA, PHI, OMEGA, path=path, overwrite=True, **(kw | {"xtol": 1e-3}))


def test_processes_share_a_store_round_robin(tmp_path, qubit_grid):
    """Two processes (hosts) fill one store, run here one after the other: the first computes
    block 0 and returns with block 1 unfinished (status -1); the second computes block 1; the
    store then equals the grid computed in memory."""
    path = tmp_path / "shared.zarr"
    kw = {"method": "qubit", "options": LOOSE, "progress": False, "block_rows": 1}
    first = jb.threshold_grid(THETA, PHI, OMEGA, path=path, process=(0, 2), **kw)
    status = first.threshold_status.sel(rate_method="qubit").values
    assert np.all(status[0] == 0) and np.all(status[1] == -1)
    assert jb.store.store_progress(path) == (1, 2)
    second = jb.threshold_grid(THETA, PHI, OMEGA, path=path, process=(1, 2), **kw)
    np.testing.assert_array_equal(second.critical_value.values, qubit_grid.critical_value.values)
    assert jb.store.store_progress(path) == (2, 2)
    history = second.attrs["history"]
    assert "1 of 2 blocks" in history and "process 1 of 2" in history
    with pytest.raises(ValueError, match="path"):
        jb.threshold_grid(THETA, PHI, OMEGA, process=(0, 2), **kw)
    with pytest.raises(ValueError, match="multi-process"):
        jb.threshold_grid(THETA, PHI, OMEGA, path=path, process=(0, 2), overwrite=True, **kw)
    with pytest.raises(ValueError, match="process"):
        jb.threshold_grid(THETA, PHI, OMEGA, path=path, process=(2, 2), **kw)


def test_bad_threshold():
    with pytest.raises(ValueError, match="threshold must be"):
        jb.threshold_grid(THETA, PHI, OMEGA, threshold="noise", method="qubit")


def test_cli(tmp_path, capsys):
    out = tmp_path / "t.nc"
    rc = main([
        "thresholds", "--theta", "pi/2", "--phi", "pi/4", "--omega", "3pi/4", "--method",
        "qubit", "--out", str(out), "--no-progress",
    ])  # fmt: skip
    assert rc == 0
    assert "1 found, 0.9375" in capsys.readouterr().out
    ds = jb.open_dataset(out)
    # the analytic CHSH threshold (Pironio et al. 2009's curve) is 0.9375674; README: 0.93757
    assert float(ds.critical_value.squeeze()) == pytest.approx(0.93757, abs=2e-5)


@pytest.mark.slow
def test_certified_grid_brackets_the_attack():
    # the paper's protocol, m = 8: CHSH member qubit 0.93757, certified 0.93854 (README)
    ds = jb.threshold_grid(
        [PI / 2, 1.3], PHI, OMEGA, method=("qubit", "bff"), progress=False,
    )  # fmt: skip
    assert list(ds.threshold_bound.values) == ["lower", "upper"]
    assert np.all(ds.threshold_status.values == 0)
    att = ds.attack_threshold.values
    cert = ds.certified_threshold.values
    assert np.all(cert >= att)
    chsh = ds.sel(theta=PI / 2).squeeze()
    assert float(chsh.attack_threshold) == pytest.approx(0.93757, abs=2e-5)
    assert 0.93757 <= float(chsh.certified_threshold) <= 0.93854 + 1e-3  # bff's xtol 1e-3
