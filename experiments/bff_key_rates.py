"""Certified vs achievable key rates against visibility for the paper's key tuples (issue 5).

For each tuple of eq. (2) below and each constraint ("bell": <B> = v eta^Q; "correlators":
all four correlators v E, Props. 4 and 6), on one visibility grid: the certified lower bound
on H(A|X=0,E) (Brown-Fawzi-Fawzi, m = 8, level 2), the achievable value of the noisy strategy
of eq. (6), the Devetak-Winter key rates of eq. (1) built from them, and the certified and
achievable critical visibilities. Writes one labelled netCDF file.

    python experiments/bff_key_rates.py --out experiments/data/bff_key_rates.nc

About 10 minutes on a 2-core CPU (m = 8: 7 SDPs per point). The qubit-strategy values of the
rates module are the next comparison curve once it is merged.
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np

import jaxbell as jb
from jaxbell import bff
from jaxbell._precision import x64_scope
from jaxbell.dataset import bff_study_dataset, save_dataset

PI = math.pi
#: name -> (theta, phi, omega): the CHSH member, Prop. 3's construction (CHSH -> 5/2) and
#: Prop. 5's (key and randomness, CHSH -> 1 + sqrt 2), both at phi = pi/2 - 0.1, and a tuple
#: with small nonlocality (max CHSH 2.27).
TUPLES = {
    "chsh": (PI / 2, PI / 4, 3 * PI / 4),
    "prop3": (PI / 3, PI / 2 - 0.1, 5 * PI / 6),
    "prop5": (PI / 4, PI / 2 - 0.1, PI),
    "small_chsh": (0.3, PI / 2 - 0.1, PI),
}
VISIBILITY = np.array([0.75, 0.8, 0.85, 0.9, 0.93, 0.95, 0.97, 0.98, 0.99, 0.995, 0.999, 1.0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="output netCDF file (.nc)")
    parser.add_argument("--m", type=int, default=8, help="Gauss-Radau nodes (8)")
    parser.add_argument("--tol", type=float, default=2e-3, help="critical-visibility tolerance")
    parser.add_argument("--processes", type=int, default=None, help="worker processes")
    args = parser.parse_args()
    t0 = time.perf_counter()
    curves, critical, chsh = {}, {}, {}
    for name, tup in TUPLES.items():
        with x64_scope():
            chsh[name] = float(jb.max_chsh_value(jb.strategy_correlators(*tup)))
        for constraint in ("bell", "correlators"):
            curves[(name, constraint)] = bff.bff_key_rate_curve(
                *tup, VISIBILITY, constraint=constraint, m=args.m, processes=args.processes
            )
            critical[(name, constraint)] = bff.bff_critical_visibility(
                *tup, constraint=constraint, m=args.m, tol=args.tol
            )
            c = critical[(name, constraint)]
            print(
                f"{name:10s} {constraint:11s} critical visibility: certified {c['certified']:.4f}"
                f"  achievable {c['achievable']:.4f}  local {c['local']:.4f}"
            )
    ds = bff_study_dataset(
        TUPLES,
        curves,
        critical,
        max_chsh=chsh,
        settings={"m": args.m, "level": 2, "x": 0, "solver": "CLARABEL", "tol": args.tol},
        history=f"experiments/bff_key_rates.py in {time.perf_counter() - t0:.0f} s",
    )
    save_dataset(ds, args.out)
    print(f"wrote {args.out} in {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
