"""The jaxbell command line: grid to file, range parsing, errors, --help, --version."""

import math

import jax
import numpy as np
import pytest
import xarray as xr

import jaxbell as jb
from jaxbell.cli import main, parse_angle, parse_range


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("0", 0.0),
        ("-1.5", -1.5),
        ("pi", math.pi),
        ("2pi", 2 * math.pi),
        ("3pi/4", 0.75 * math.pi),
        ("-pi/2", -math.pi / 2),
        ("pi/2 - 0.1", math.pi / 2 - 0.1),
        ("2(pi+1)", 2 * math.pi + 2),
        ("1e-3", 1e-3),
        ("5*pi/6", 5 * math.pi / 6),
    ],
)
def test_parse_angle(text, value):
    assert parse_angle(text) == pytest.approx(value, rel=1e-15)


@pytest.mark.parametrize("text", ["foo", "pi/0", "__import__('os')", "", "1e999", "pi^2"])
def test_parse_angle_rejects(text):
    with pytest.raises(ValueError):
        parse_angle(text)


def test_parse_range():
    np.testing.assert_allclose(parse_range("0:2pi:5"), np.linspace(0, 2 * np.pi, 5))
    np.testing.assert_allclose(parse_range("5pi/6"), [5 * np.pi / 6])
    for bad, match in [
        ("1:0:3", "below"),
        ("0:1:1", "NUM >= 2"),
        ("0:1:x", "whole"),
        ("0:1", "START:STOP:NUM"),
        ("0:0:4", "below"),
    ]:
        with pytest.raises(ValueError, match=match):
            parse_range(bad)


def test_grid_command_writes_the_grid(tmp_path, capsys):
    out = tmp_path / "g.nc"
    rc = main(
        [
            "grid",
            "--theta",
            "0:pi:5",
            "--phi",
            "0:pi:4",
            "--omega",
            "pi",
            "--out",
            str(out),
            "--no-progress",
        ]
    )
    assert rc == 0
    assert "wrote" in capsys.readouterr().out
    with xr.open_dataset(out, engine="h5netcdf") as ds:
        ref = jb.evaluate_grid(np.linspace(0, np.pi, 5), np.linspace(0, np.pi, 4), np.pi)
        for name in ("local_bound", "max_chsh", "key_rate", "epsilon", "self_testing"):
            np.testing.assert_array_equal(ds[name].values, ref[name].values)
        assert "jaxbell grid" in ds.attrs["history"]


def test_grid_command_float32(tmp_path):
    out = tmp_path / "g32.nc"
    main(
        [
            "grid",
            "--theta",
            "0:1:3",
            "--phi",
            "0.5",
            "--omega",
            "1:2:2",
            "--out",
            str(out),
            "--dtype",
            "float32",
            "--chunk-size",
            "2",
        ]
    )
    with xr.open_dataset(out, engine="h5netcdf") as ds:
        assert ds.local_bound.dtype == np.float32 and ds.attrs["chunk_size"] == 2


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["--theta", "1:0:3"], "--theta"),
        (["--phi", "x"], "--phi"),
        (["--omega", "0:1:0"], "--omega"),
        (["--chunk-size", "0"], "--chunk-size"),
        (["--out", "/nonexistent-folder/g.nc"], "--out"),
        (["--dtype", "float16"], "--dtype"),
    ],
)
def test_grid_command_errors_name_the_option(args, match, capsys, tmp_path):
    base = {
        "--theta": "0:1:3",
        "--phi": "0:1:3",
        "--omega": "0:1:3",
        "--out": str(tmp_path / "a.nc"),
    }
    base.update(dict(zip(args[::2], args[1::2], strict=True)))
    argv = ["grid"] + [x for kv in base.items() for x in kv]
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    assert match in capsys.readouterr().err


def test_help_and_version(capsys):
    with pytest.raises(SystemExit):
        main(["--version"])
    assert jb.__version__ in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["grid", "--help"])
    text = capsys.readouterr().out
    for option in (
        "--theta",
        "--phi",
        "--omega",
        "--out",
        "--dtype",
        "--chunk-size",
        "--no-progress",
    ):
        assert option in text


def test_search_devices_option(tmp_path, capsys):
    out = tmp_path / "r.nc"
    argv = ["search", "--perfect-randomness", "--fixed", "omega=pi", "--devices", "1"]
    assert main(argv + ["--out", str(out)]) == 0
    ds = jb.open_dataset(out)
    # Prop. 2: the supremum with perfect randomness, 3 sqrt(3)/2, lies in the omega = pi plane
    assert abs(float(ds.max_chsh) - 3 * np.sqrt(3) / 2) < 1e-9
    assert ds.attrs["device_count"] == 1 and ds.attrs["devices"] == str(jax.local_devices()[0])
    with pytest.raises(SystemExit):
        main(["search", "--devices", "99"])
    assert "--devices" in capsys.readouterr().err


# --- scale: --out FILE.zarr (out of core, resumable), --reduce, devices -----------------------

_SMALL = ["grid", "--theta", "0:2pi:9", "--phi", "0:pi:7", "--omega", "1:3:5", "--no-progress"]


def test_zarr_output_resumes_and_refuses_other_settings(tmp_path, capsys):
    out = tmp_path / "g.zarr"
    assert main([*_SMALL, "--out", str(out), "--chunk-size", "5"]) == 0
    first = capsys.readouterr()
    assert "wrote" in first.out and "1 x cpu" in first.err  # the devices are logged
    ref = jb.evaluate_grid(np.linspace(0, 2 * np.pi, 9), np.linspace(0, np.pi, 7),
                           np.linspace(1, 3, 5), chunk_size=5)  # fmt: skip
    ds = jb.open_dataset(out)
    for name in ("max_chsh", "epsilon", "status", "correlators"):
        np.testing.assert_array_equal(ds[name].values, ref[name].values)
    assert main([*_SMALL, "--out", str(out)]) == 0
    assert "already complete" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        main([*_SMALL, "--out", str(out), "--dtype", "float32"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "--out" in err and "dtype: stored 'float64', asked 'float32'" in err
    assert "--overwrite" in err
    assert main([*_SMALL, "--out", str(out), "--dtype", "float32", "--overwrite"]) == 0
    assert jb.open_dataset(out).max_chsh.dtype == np.float32


def test_reduce_prints_and_writes_the_reductions(tmp_path, capsys):
    from jaxbell.reductions import reduce_grid

    out = tmp_path / "r.nc"
    argv = [*_SMALL, "--reduce", "--epsilon-bounds", "0.5,1e-2", "--bins", "2:2.8:9"]
    assert main([*argv, "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "self-testing fraction" in text and "eps = 0.01" in text and "8 bins" in text
    ref = reduce_grid(np.linspace(0, 2 * np.pi, 9), np.linspace(0, np.pi, 7),
                      np.linspace(1, 3, 5), epsilon_bounds=[0.5, 1e-2],
                      bins=np.linspace(2, 2.8, 9))  # fmt: skip
    with xr.open_dataset(out, engine="h5netcdf") as ds:
        for name in ref.data_vars:
            np.testing.assert_array_equal(ds[name].values, ref[name].values)
        assert "--reduce" in ds.attrs["history"]
    assert f"{float(ref.self_testing_fraction):.6f}" in text
    capsys.readouterr()
    assert main([*_SMALL, "--reduce", "self_testing_fraction", "--quiet"]) == 0
    captured = capsys.readouterr()
    assert "eps =" not in captured.out and captured.err == ""


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        (["--reduce", "maximum"], "--reduce"),
        (["--reduce", "--epsilon-bounds", "2"], "--epsilon-bounds"),
        (["--reduce", "--epsilon-bounds", "a,b"], "--epsilon-bounds"),
        (["--reduce", "--bins", "3:2:5"], "--bins"),
        (["--reduce", "--bins", "0"], "--bins"),
        (["--epsilon-bounds", "0.1", "--out", "x.nc"], "--epsilon-bounds needs --reduce"),
        ([], "--out is required"),
        (["--devices", "9", "--reduce"], "--devices"),
        (["--process", "2/2", "--reduce"], "--process"),
        (["--out", "x.nc", "--compressor", "none"], "--compressor"),
        (["--out", "x.txt"], "--out"),
    ],
)
def test_scale_options_errors_name_the_option(extra, match, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as info:
        main([*_SMALL, *extra])
    assert info.value.code == 2
    assert match in capsys.readouterr().err


def test_netcdf_output_too_large_for_memory_points_to_zarr(capsys, tmp_path, monkeypatch):
    import jaxbell.cli.grid as cli_grid

    monkeypatch.setattr(cli_grid, "_memory_bytes", lambda: 10_000)
    with pytest.raises(SystemExit):
        main([*_SMALL, "--out", str(tmp_path / "g.nc")])
    err = capsys.readouterr().err
    assert "FILE.zarr" in err and "--reduce" in err


def test_help_explains_the_scale_options(capsys):
    with pytest.raises(SystemExit):
        main(["grid", "--help"])
    text = capsys.readouterr().out
    for option in ("--overwrite", "--reduce", "--epsilon-bounds", "--bins", "--devices",
                   "--process", "--compressor", "--quiet", "resumes"):  # fmt: skip
        assert option in text


def test_negative_angles_need_no_equals_sign(tmp_path):
    out = tmp_path / "neg.nc"
    argv = ["grid", "--theta", "-pi/2:pi/2:3", "--phi", "-0.5", "--omega", "-(pi/4)", "--out",
            str(out), "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    with xr.open_dataset(out, engine="h5netcdf") as ds:
        np.testing.assert_allclose(ds.theta, [-np.pi / 2, 0, np.pi / 2])
        np.testing.assert_allclose(ds.phi, [-0.5])
        np.testing.assert_allclose(ds.omega, [-np.pi / 4])


def _exit_message(argv, capsys) -> str:
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    return capsys.readouterr().err


def test_reduce_to_an_existing_zarr_store_needs_overwrite(tmp_path, capsys):
    out = tmp_path / "g2.zarr"
    assert main([*_SMALL, "--out", str(out), "--quiet"]) == 0
    err = _exit_message([*_SMALL, "--reduce", "--out", str(out), "--quiet"], capsys)
    assert "--out" in err and "--overwrite" in err
    assert jb.open_dataset(out).max_chsh.shape == (9, 7, 5)  # the grid store is untouched
    folder = tmp_path / "foo.zarr"
    folder.mkdir()
    (folder / "important.txt").write_text("precious")
    err = _exit_message([*_SMALL, "--reduce", "--out", str(folder), "--overwrite"], capsys)
    assert "refusing to remove" in err and (folder / "important.txt").exists()
    assert main([*_SMALL, "--reduce", "--out", str(out), "--overwrite", "--quiet"]) == 0
    assert "self_testing_fraction" in jb.open_dataset(out)


def test_unwritable_out_is_an_option_error_before_computing(tmp_path, capsys, monkeypatch):
    import jaxbell.grid

    monkeypatch.chdir(tmp_path)
    (tmp_path / "afile").write_text("x")

    def fail(*args, **kwargs):
        raise AssertionError("computed before checking --out")

    monkeypatch.setattr(jaxbell.grid, "evaluate_grid", fail)
    grid = ["grid", "--theta", "0:1:3", "--phi", "0", "--omega", "0", "--no-progress"]
    assert "afile' is a file" in _exit_message([*grid, "--out", "afile/x.nc"], capsys)
    assert "folder '/proc' exists but a file cannot be created" in _exit_message(
        [*grid, "--out", "/proc/x.nc"], capsys
    )
    assert "a file cannot be created" in _exit_message([*grid, "--out", "/proc/x.zarr"], capsys)
    assert "--out" in _exit_message(["search", "--out", "afile/a.nc"], capsys)
    err = _exit_message(["reproduce", "--quick", "--out", "afile/sub"], capsys)
    assert "--out" in err and "is a file" in err


def test_huge_range_is_refused_before_allocating(capsys):
    err = _exit_message(["grid", "--theta=0:2pi:99999999999", "--phi", "0", "--omega", "0",
                         "--out", "x.nc"], capsys)  # fmt: skip
    assert "--theta" in err and "99,999,999,999" in err and "FILE.zarr" in err


def test_an_existing_netcdf_file_needs_overwrite(tmp_path, capsys):
    out = tmp_path / "g.nc"
    assert main([*_SMALL, "--out", str(out)]) == 0
    capsys.readouterr()
    out.write_bytes(b"mine")  # whatever is there must survive a refusal
    err = _exit_message([*_SMALL, "--out", str(out)], capsys)
    assert f"--out='{out}' exists" in err and "--overwrite" in err
    assert out.read_bytes() == b"mine"
    for cmd in (["search", "--chsh", "2.5"], ["noise", "--theta", "1", "--phi", "1",
                                             "--omega", "1"]):  # fmt: skip
        err = _exit_message([*cmd, "--out", str(out)], capsys)  # before anything is computed
        assert "exists" in err and "--overwrite" in err
    assert main([*_SMALL, "--out", str(out), "--overwrite"]) == 0
    ref = jb.evaluate_grid(np.linspace(0, 2 * np.pi, 9), np.linspace(0, np.pi, 7),
                           np.linspace(1, 3, 5))  # fmt: skip
    np.testing.assert_array_equal(jb.open_dataset(out).max_chsh.values, ref.max_chsh.values)


def test_zarr_message_says_what_this_run_computed(tmp_path, capsys):
    from jaxbell.store import store_progress

    out = tmp_path / "g.zarr"
    argv = [*_SMALL, "--out", str(out), "--chunk-size", "5", "--quiet"]
    assert main([*argv, "--process", "0/2"]) == 0  # half the blocks
    first, total = store_progress(out)
    assert 0 < first < total
    text = capsys.readouterr().out
    assert f"{first} of {total} blocks done; {first} blocks computed" in text
    assert main([*argv, "--process", "1/2"]) == 0  # the rest: a resume
    text = capsys.readouterr().out
    assert f"complete; {total - first} blocks computed" in text
    assert f"already there: {first} of {total} blocks" in text
    assert main(argv) == 0  # already complete: nothing computed, nothing claimed
    text = capsys.readouterr().out
    assert "nothing to compute" in text and "wrote" not in text
    assert f"already there: {total} of {total} blocks" in text


def test_counts_and_ranges_read_right():
    from jaxbell._text import counted as _count
    from jaxbell._text import value_span as _span

    assert [_count(k, "block") for k in (0, 1, 2, 1234)] == [
        "0 blocks", "1 block", "2 blocks", "1,234 blocks"]  # fmt: skip
    assert _count(1, "visibility", "visibilities") == "1 visibility"
    assert _span(0.13181, 0.13181) == "0.13181" and _span(0.1, 0.2) == "from 0.1 to 0.2"


def test_rate_curve_of_a_tuple_that_is_not_self_testing_says_so(tmp_path, capsys):
    """The curve runs from 0 to eta^L there, and a warning says why; the zarr output has no
    fixed-length strings (zarr's UnstableSpecificationWarning is an error here) and opens in
    xarray without a warning."""
    import warnings

    out = tmp_path / "r.zarr"
    argv = ["rate-curve", "--theta", "pi/4", "--phi", "pi/4", "--omega", "pi", "--num", "3",
            "--directions", "2", "--starts", "1", "--steps", "2", "--refine", "0",
            "--no-progress", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "is not self-testing" in err and "from 0 to eta^L" in err
    assert not jb.is_self_testing(np.pi / 4, np.pi / 4, np.pi)
    eta_l = float(jb.local_bound(np.pi / 4, np.pi / 4, np.pi))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds = xr.open_dataset(out, engine="zarr")
    np.testing.assert_allclose(ds.bell_value.values, np.linspace(0, eta_l, 3), rtol=1e-15)
    assert jb.open_dataset(out).row.dtype.kind == "U"


_CHSH_ARGS = ["--theta", "pi/2", "--phi", "pi/4", "--omega", "3pi/4"]
_LOOSE_ARGS = ["--directions", "16", "--starts", "4", "--steps", "200", "--refine", "0"]


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        (["--efficiency", "1.3"], "--efficiency"),
        (["--efficiency", "0"], "--efficiency"),
        (["--preprocessing", "0.7"], "--preprocessing"),
        (["--preprocessing", "best"], "--preprocessing"),
        (["--bob-key", "3"], "--bob-key"),
        (["--constraint", "marginals"], "--constraint"),
    ],
)
def test_protocol_flags_errors_name_the_flag(extra, match, capsys, tmp_path):
    argv = ["noise", *_CHSH_ARGS, "--out", str(tmp_path / "n.nc"), *extra]
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    assert match in capsys.readouterr().err


def test_noise_with_the_protocol_flags(tmp_path, capsys):
    out = tmp_path / "n.nc"
    flags = ["--kind", "key", "--visibility", "0.95", "--bob-key", "aligned"]
    flags += ["--efficiency", "0.97", "--critical-efficiency", "--no-critical"]
    argv = ["noise", *_CHSH_ARGS, *_LOOSE_ARGS, "--tol", "1", *flags]
    argv += ["--no-progress", "--out", str(out)]
    assert main(argv) == 0
    assert "critical efficiency" in capsys.readouterr().out
    ds = xr.open_dataset(out)
    want = jb.noisy_key_rate(*jb_chsh(), 0.95, bob_key=2, efficiency=0.97,
                             options={"directions": 16, "starts": 4, "steps": 200,
                                      "refine": 0, "tol": 1.0})  # fmt: skip
    assert float(want) > 0
    assert float(ds.noisy_key_rate.squeeze()) == pytest.approx(float(want), abs=1e-12)
    ce = float(ds.critical_efficiency.squeeze())
    assert 0.9 < ce < 0.97  # positive rate at 0.97 (the rate above), none far below
    assert ds.attrs["bob_key"] == 2 and ds.attrs["efficiency"] == 0.97
    ds.close()


def jb_chsh():
    return (math.pi / 2, math.pi / 4, 3 * math.pi / 4)
