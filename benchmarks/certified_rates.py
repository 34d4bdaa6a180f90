"""Cost of the certified (bff) values in the rate functions, as ratios measured in one run.

On the CHSH member (pi/2, pi/4, 3pi/4) and Prop. 3's construction (pi/3, pi/2 - 0.1, 5pi/6),
key rate with x = 0:

* ``registry``  -- ``di_entropy(..., method="bff")`` against ``bff_entropy`` on the same points
                   (the registry path should add nothing);
* ``curve``     -- ``rate_curve(method=("qubit", "bff"))``: the seconds of each method;
* ``critical``  -- ``critical_visibility(method="bff")`` alone against ``method=("qubit",
                   "bff")``, where the qubit threshold starts the certified bisection: SDP
                   points solved (exact counts) and seconds;
* peak resident memory.

    python benchmarks/certified_rates.py            # m = 8 (about two minutes here)
    python benchmarks/certified_rates.py --m 3      # quicker

Timings on a shared machine are noisy: compare the ratios, rerun for absolute numbers.
"""

from __future__ import annotations

import argparse
import json
import resource
import time

import jax
import numpy as np
from _machine import machine

jax.config.update("jax_enable_x64", True)

import jaxbell as jb  # noqa: E402
from jaxbell import bff  # noqa: E402

PI = np.pi
TUPLES = {"chsh": (PI / 2, PI / 4, 3 * PI / 4), "prop3": (PI / 3, PI / 2 - 0.1, 5 * PI / 6)}


def _count_points():
    """Wrap bff.bff_entropy to count the SDP points it solves."""
    calls = {"points": 0}
    real = bff.bff_entropy

    def counted(*args, **kwargs):
        res = real(*args, **kwargs)
        calls["points"] += int(res.value.size)
        return res

    bff.bff_entropy = counted
    return calls, lambda: setattr(bff, "bff_entropy", real)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--m", type=int, default=8, help="Gauss-Radau nodes (8)")
    args = parser.parse_args()
    opts = {"m": args.m, "processes": 1, "progress": False}
    out: dict = {"m": args.m}
    t, p, w = TUPLES["chsh"]
    eta = -np.array([2.3, 2.5, 2.7]) / (2 * np.sqrt(2))
    bff.bff_entropy(t, p, w, eta[:1], m=2, processes=1, progress=False)  # compile the problem
    t0 = time.perf_counter()
    direct = bff.bff_entropy(t, p, w, eta, m=args.m, processes=1, progress=False)
    t_direct = time.perf_counter() - t0
    t0 = time.perf_counter()
    via = np.asarray(jb.di_entropy(t, p, w, eta, method="bff", options=opts))
    t_via = time.perf_counter() - t0
    out["registry"] = {
        "seconds_per_point_bff_entropy": round(t_direct / eta.size, 3),
        "ratio_di_entropy_to_bff_entropy": round(t_via / t_direct, 3),
        "largest_difference_bits": float(np.max(np.abs(via - direct.value))),
    }
    ds = jb.rate_curve(t, p, w, num=16, method=("qubit", "bff"), options={"bff": opts})
    out["curve"] = {
        "points": 16,
        "seconds_qubit": ds.attrs["qubit_elapsed_seconds"],
        "seconds_bff": ds.attrs["bff_elapsed_seconds"],
        "largest_gap_bits": float(ds.entropy_gap.max()),
        "smallest_gap_bits": float(ds.entropy_gap.min()),
    }
    out["critical"] = {}
    for name, tpl in TUPLES.items():
        row = {}
        for label, method, options in (
            ("bff_alone", "bff", opts),
            ("qubit_then_bff", ("qubit", "bff"), {"bff": opts}),
        ):
            jb.critical_visibility(*tpl, x=0, method="qubit")  # qubit envelopes cached: fair
            calls, restore = _count_points()
            t0 = time.perf_counter()
            try:
                crit = np.atleast_1d(
                    np.asarray(jb.critical_visibility(*tpl, x=0, method=method, options=options))
                )
            finally:
                restore()
            row[label] = {
                "sdp_points": calls["points"],
                "seconds": round(time.perf_counter() - t0, 2),
                "threshold": float(crit[-1]),
            }
        row["points_ratio"] = round(
            row["qubit_then_bff"]["sdp_points"] / row["bff_alone"]["sdp_points"], 3
        )
        out["critical"][name] = row
    out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    out["machine"] = machine()
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
