"""What a new user hit (issue 23): checks before the work that name the argument as written,
settings and the command in every output, terminal output, messages, one default protocol."""

import inspect
import subprocess
import sys

import numpy as np
import pytest

import jaxbell as jb
from jaxbell.cli import build_parser, main
from jaxbell.rates import backends

_NO_JAX = """
import sys
from jaxbell.cli import main
try:
    main({argv!r})
except SystemExit:
    pass
assert "jax" not in sys.modules, "imported jax"
"""


@pytest.mark.parametrize(
    "argv",
    [
        ["--version"],
        ["grid", "--bad-option"],
        ["bff", "--bad-option"],
        ["noise", "--bad-option"],
        ["finite", "--bad-option"],
        ["design", "--bad-option"],
        ["reproduce", "--bad-option"],
        ["search", "--bad-option"],
        ["rate-curve", "--bad-option"],
    ],
)
def test_usage_errors_and_version_answer_without_importing_jax(argv):
    res = subprocess.run(
        [sys.executable, "-c", _NO_JAX.format(argv=argv)], capture_output=True, text=True
    )
    assert res.returncode == 0, res.stderr


# --- 1. checks before the work, naming the argument as the caller wrote it ----------------

CHSH = (np.pi / 2, np.pi / 4, 3 * np.pi / 4)


def test_shapes_that_do_not_broadcast_name_the_arguments():
    with pytest.raises(ValueError, match=r"theta, phi, omega \(3,\), visibility \(2,\)"):
        jb.noisy_key_rate(np.full(3, CHSH[0]), CHSH[1], CHSH[2], np.array([0.9, 0.95]))


def test_a_fractional_number_of_rounds_is_refused():
    beh = jb.device_behaviour(*CHSH, visibility=0.95)
    with pytest.raises(ValueError, match="rounds must be whole numbers.*1234.5"):
        jb.finite_key_rate(beh, 1234.5, bell=CHSH, method="qubit")


def test_finite_checks_the_behaviour_against_bob_key_before_any_sdp(tmp_path, capsys, monkeypatch):
    calls = []

    def counted(self, *args, **kwargs):
        calls.append(1)
        raise AssertionError("an SDP ran")

    monkeypatch.setattr(backends.BffBackend, "tangents", counted)
    path = tmp_path / "b.npy"
    np.save(path, np.asarray(jb.device_behaviour(*CHSH, visibility=0.95)))  # (2, 2, 2, 2)
    argv = ["finite", "--theta", "pi/2", "--phi", "pi/4", "--omega", "3pi/4"]
    argv += ["--behaviour", str(path), "--bob-key", "aligned", "--out", str(tmp_path / "f.nc")]
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "--bob-key aligned" in err and "bob_key" not in err
    assert not calls


# --- 5. one default protocol: the paper's (Protocol().bob_key is None) ----------------------


@pytest.mark.parametrize(
    "function",
    [
        jb.noisy_key_rate,
        jb.observed_key_rate,
        jb.finite_key_rate,
        jb.finite_rate_curve,
        jb.min_rounds,
        jb.optimise_protocol,
    ],
)
def test_every_function_defaults_to_the_protocol_default(function):
    assert inspect.signature(function).parameters["bob_key"].default == jb.Protocol().bob_key


def test_the_command_line_defaults_to_the_papers_protocol():
    parser = build_parser()
    for command in ("finite", "noise", "design"):
        args = parser.parse_args(
            [command, "--theta", "0", "--phi", "0", "--omega", "0", "--out", "o.nc"]
            if command != "design"
            else [command, "--out", "o.nc"]
        )
        assert args.bob_key in (None, "none"), command


def test_finite_size_key_of_the_papers_protocol_from_test_inputs_alone():
    beh = jb.device_behaviour(*CHSH, visibility=0.97)  # (2, 2, 2, 2): no key-only input
    rate = jb.finite_key_rate(beh, [1e10], bell=CHSH, method="qubit", tangent_scales=(1.0,))
    cost = min(float(jb.error_correction_cost(beh, 0, y)) for y in (0, 1))
    assert np.isfinite(rate).all() and rate[0] < 1 - cost


# --- 2. every output records every setting that changes its numbers, and the command --------

_TUPLE = ["--theta", "pi/2", "--phi", "pi/4", "--omega", "3pi/4"]


def test_finite_records_the_device_and_the_solver_settings(tmp_path):
    out = tmp_path / "f.nc"
    argv = ["finite", *_TUPLE, "--visibility", "0.97", "--efficiency", "0.99", "--m", "4"]
    argv += ["--level", "1", "--rounds", "1e10", "--processes", "1", "--no-progress"]
    assert main([*argv, "--out", str(out)]) == 0
    attrs = jb.open_dataset(out).attrs
    assert attrs["visibility"] == 0.97 and attrs["efficiency"] == 0.99
    assert "m=4" in attrs["options"] and "level=1" in attrs["options"]
    assert "command: jaxbell finite --theta pi/2" in attrs["history"]


def test_search_output_records_the_command(tmp_path):
    out = tmp_path / "r.nc"
    argv = ["search", "--perfect-randomness", "--fixed", "omega=pi", "--out", str(out)]
    assert main(argv) == 0
    assert "command: jaxbell search --perfect-randomness" in jb.open_dataset(out).attrs["history"]


def test_a_zarr_grid_store_records_the_command(tmp_path):
    out = tmp_path / "g.zarr"
    argv = ["grid", "--theta", "0:pi:3", "--phi", "0:pi:3", "--omega", "pi", "--no-progress"]
    assert main([*argv, "--out", str(out)]) == 0
    assert "command: jaxbell grid --theta 0:pi:3" in jb.open_dataset(out).attrs["history"]


# --- 6. reproduce --out needs --overwrite where results are already there --------------------


def test_reproduce_into_a_folder_with_files_needs_overwrite(tmp_path, capsys, monkeypatch):
    import jaxbell.reproduce as rp

    calls = []
    monkeypatch.setattr(rp, "reproduce", lambda *a, **k: calls.append(1))
    (tmp_path / "claims.md").write_text("an earlier run")
    with pytest.raises(SystemExit) as info:
        main(["reproduce", "--quick", "--out", str(tmp_path)])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "--out" in err and "--overwrite" in err and "claims.md" in err
    assert not calls and (tmp_path / "claims.md").read_text() == "an earlier run"


# --- 4. messages: numbers print as numbers, each fits the option it is about ----------------


def _cli_error(argv, capsys) -> str:
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    return capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "said", "unsaid"),
    [
        (["noise", *_TUPLE, "--visibility", "0.9:1:1"], "one value needs no colons", "angle"),
        (["finite", *_TUPLE, "--visibility", "nan"], "--visibility must be a number", "angle"),
        (["finite", *_TUPLE, "--visibility", "0.9:1:3"], "takes one value", "angle"),
        (["design", "--objective", "finite_key_rate"], "--rounds is required", "rounds is"),
        (["grid", *_TUPLE, "--out", "/proc/x.nc"], "exists but a file cannot", "cannot write in"),
    ],
)
def test_command_line_messages_fit_the_option(argv, said, unsaid, capsys, tmp_path):
    if "--out" not in argv:
        argv = [*argv, "--out", str(tmp_path / "o.nc")]
    err = _cli_error(argv, capsys)
    assert said in err
    assert unsaid not in err.replace(said, "")


def test_a_folder_of_other_files_is_never_offered_overwrite(tmp_path, capsys):
    out = tmp_path / "precious.zarr"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    for extra in ([], ["--overwrite"]):
        err = _cli_error(["grid", *_TUPLE, "--out", str(out), *extra], capsys)
        said = err.strip().splitlines()[-1]  # the error, below the usage lines
        assert "--out" in said and "remove" in said
        assert "--overwrite" not in said and "overwrite=True" not in said
    assert (out / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize("command", ["rate-curve", "bff", "finite", "grid", "noise"])
def test_help_speaks_of_this_command(command, capsys):
    with pytest.raises(SystemExit):
        main([command, "--help"])
    text = capsys.readouterr().out
    assert "=-pi" not in text  # --theta -pi/2 works: no advice to write --theta=-pi/2
    if command in ("rate-curve", "bff", "finite"):
        constraint = text.split("--constraint {bell,correlators,full}\n")[-1].split("\n  --")[0]
        assert "noise" not in constraint and "every method" not in constraint


def test_numbers_in_messages_print_as_numbers():
    with pytest.raises(ValueError, match="got 5 where the maximum is 1;") as info:
        jb.di_entropy(*CHSH, 5.0)
    assert "np.float64" not in str(info.value)
    with pytest.raises(ValueError, match=r"visibility must lie in \[0, 1\]; got 1.5$"):
        jb.noisy_key_rate(*CHSH, np.array(1.5))
    with pytest.raises(ValueError, match=r"got 1.5 at index \(1,\)"):
        jb.noisy_key_rate(*CHSH, np.array([0.9, 1.5]))


# --- 3. terminal output: one clean bar per stage, --quiet everywhere -------------------------


@pytest.mark.parametrize(
    "command", ["grid", "reproduce", "search", "rate-curve", "noise", "bff", "finite", "design"]
)
def test_every_subcommand_takes_quiet(command):
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "==SUPPRESS==" or a.choices)
    assert any("--quiet" in a.option_strings for a in sub.choices[command]._actions)


def test_log_lines_go_above_the_bar_and_design_holds_its_per_step_lines(monkeypatch):
    import logging

    import tqdm

    from jaxbell._log import info_held_back
    from jaxbell.cli import _configure_logging

    written = []
    monkeypatch.setattr(tqdm.tqdm, "write", classmethod(lambda cls, s, **kw: written.append(s)))
    log = logging.getLogger("jaxbell")
    level = log.level
    try:
        _configure_logging(quiet=False)
        log.info("devices: 1 x cpu")
        assert written == ["jaxbell: devices: 1 x cpu"]
        with info_held_back():  # the search's per-step envelope lines
            log.info("qubit envelopes: 8 tuple(s)")
        assert len(written) == 1 and log.level == logging.INFO
    finally:
        log.setLevel(level)
