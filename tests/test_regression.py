"""Public results at fixed points against the reference recorded before issue 19's redesign.

The reference ``tests/data/regression_reference.npz`` was written by ``tests/regression_cases.py``
on main at 535460f (before Protocol/Device values and the backend registry). Closed forms,
grids, searches and the explicit attack must give the same bits; certified values may differ
by :data:`regression_cases.CERTIFIED_ATOL` at most. The cases run in a fresh process, so that
no cache filled by another test can change the order of work.

Re-recorded on purpose since: ``attack/di_entropy_pre``, ``attack/noisy_key_rate_aligned_pre``
and ``attack/noisy_key_rate_optimal`` (issue 21: the qubit envelope with preprocessing p is
computed in units of the entropy's range 1 - h(p); every other key keeps its bits), and
``certified/di_entropy_pre`` (the t = 1 node's closed-form bound 2p(1 - p) added to certified
values with preprocessing: +2p(1 - p)/(m^2 ln 2) = +0.0162303 bit at m = 4, p = 0.1).
"""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REFERENCE = HERE / "data" / "regression_reference.npz"


def test_public_results_match_the_reference(tmp_path):
    out = tmp_path / "now.npz"
    subprocess.run(
        [sys.executable, str(HERE / "regression_cases.py"), str(out)], check=True, cwd=tmp_path
    )
    sys.path.insert(0, str(HERE))
    try:
        from regression_cases import CERTIFIED_ATOL
    finally:
        sys.path.remove(str(HERE))
    ref, now = np.load(REFERENCE), np.load(out)
    assert sorted(ref.files) == sorted(now.files)
    differ = {}
    for key in ref.files:
        a, b = ref[key], now[key]
        if key.startswith("certified/"):
            ok = a.shape == b.shape and np.allclose(
                a, b, rtol=0, atol=CERTIFIED_ATOL, equal_nan=True
            )
        else:
            ok = a.shape == b.shape and a.dtype == b.dtype and np.array_equal(a, b, equal_nan=True)
        if not ok:
            differ[key] = (a.tolist(), b.tolist())
    assert not differ, json.dumps(differ)[:4000]
