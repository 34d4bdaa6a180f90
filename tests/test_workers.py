"""The worker pool behind parallel BFF points: results, errors, and no re-run of __main__."""

import functools
import math
import os
import subprocess
import sys
import textwrap

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
