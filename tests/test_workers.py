"""The worker pool behind parallel BFF points: results, errors, and no re-run of __main__."""

import functools
import math
import os
import subprocess
import sys
import textwrap
import time

import pytest

from jaxbell._workers import WorkerError, imap_unordered

_write_fd1 = functools.partial(os.write, 1)  # importable by the workers (module os)


def test_results_come_back_with_their_indices():
    tasks = [float(k * k) for k in range(7)]
    got = dict(imap_unordered(math.sqrt, tasks, processes=2))
    assert got == {k: float(k) for k in range(7)}  # sqrt(k^2) = k exactly in binary


def test_stray_output_in_a_worker_does_not_corrupt_the_results():
    # print() and native writes to file descriptor 1 go to stderr, not into the result stream
    got = dict(imap_unordered(print, ["to stderr", "also"], processes=1))
    assert got == {0: None, 1: None}
    got = dict(imap_unordered(_write_fd1, [b"native bytes\n"] * 3, processes=2))
    assert got == {0: 13, 1: 13, 2: 13}


def test_a_worker_that_dies_is_reported_with_its_exit_code():
    with pytest.raises(WorkerError, match="died \\(exit code 3\\)"):
        list(imap_unordered(os._exit, [3], processes=1))


def test_an_unpicklable_task_raises_instead_of_hanging():
    with pytest.raises(WorkerError, match="pickle"):
        list(imap_unordered(math.sqrt, [(k for k in range(2))], processes=1))


def test_an_unpicklable_result_is_reported_as_the_functions_error():
    # open() returns a file object, which cannot pickle: the worker reports the TypeError like
    # any exception of the function (before, the worker died and the error was an EOFError)
    with pytest.raises(WorkerError, match="cannot pickle") as info:
        list(imap_unordered(open, [os.devnull], processes=1))
    assert "EOFError" not in str(info.value) and "died" not in str(info.value)


def test_on_an_error_busy_workers_are_killed_not_awaited():
    # one worker fails at once while the other sleeps 60 s: the error arrives, and the call
    # ends, long before the sleeper would have finished
    t0 = time.monotonic()
    with pytest.raises(WorkerError, match="non-negative"):
        list(imap_unordered(time.sleep, [60.0, -1.0], processes=2))
    assert time.monotonic() - t0 < 30


def test_workers_start_cleanly_with_warnings_as_errors():
    # a worker that imported its own module twice would warn, and die under -W error
    code = "import math; from jaxbell._workers import imap_unordered; "
    code += "print(sorted(imap_unordered(math.sqrt, [1.0, 4.0], processes=2)))"
    env = os.environ | {"PYTHONWARNINGS": "error"}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[(0, 1.0), (1, 2.0)]"


def test_an_exception_in_a_worker_is_raised_with_its_cause():
    with pytest.raises(WorkerError, match="math domain error"):
        list(imap_unordered(math.sqrt, [4.0, -1.0, 9.0], processes=2))


def test_bff_points_in_parallel_from_a_script_without_main_guard(tmp_path):
    pytest.importorskip("cvxpy")
    # "spawn" multiprocessing would re-run this script in each worker and crash; the points
    # must equal the serial ones up to the solver's certificate (both are valid lower bounds)
    script = tmp_path / "plain.py"
    script.write_text(
        textwrap.dedent(
            """
            import numpy as np, jaxbell as jb
            print("TOP LEVEL", flush=True)
            eta = -np.linspace(2.2, 2.7, 4) / (2 * np.sqrt(2))
            chsh = (np.pi / 2, np.pi / 4, 3 * np.pi / 4)
            par = jb.bff_entropy(*chsh, eta, m=2, processes=2, progress=False)
            ser = jb.bff_entropy(*chsh, eta, m=2, processes=1, progress=False)
            assert (par.status == 0).all() and (ser.status == 0).all()
            print("MAXDIFF", float(np.max(np.abs(par.value - ser.value))))
            """
        )
    )
    out = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=300, cwd=tmp_path
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.count("TOP LEVEL") == 1
    diff = float(out.stdout.split("MAXDIFF")[1])
    assert diff < 1e-5
