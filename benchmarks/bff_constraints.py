"""Per-point time of the certified bound by constraint: "bell", "correlators", "full" (m = 8).

One run, the CHSH member with a lossy device (``protocol.device_behaviour``, visibility 0.98,
efficiency 0.95, so the marginals are not uniform): ``bff.certify`` with each constraint on
the same statistics, after a warm-up solve of each problem (cvxpy compiles it once per
process). "full" solves the unreduced relaxation (one 57-row block instead of 31 + 26: the
marginals break the outcome-flip symmetry), so it costs more; the ratios are the result.

    python benchmarks/bff_constraints.py [--m 8] [--points 2]
"""

from __future__ import annotations

import argparse
import time

import jax

jax.config.update("jax_enable_x64", True)

import numpy as np  # noqa: E402

from jaxbell.family import bell_coefficients  # noqa: E402
from jaxbell.rates import bff, protocol  # noqa: E402

CHSH = (np.pi / 2, np.pi / 4, 3 * np.pi / 4)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--m", type=int, default=8)
    ap.add_argument("--points", type=int, default=2)
    args = ap.parse_args(argv)
    v = np.linspace(0.97, 0.99, args.points)
    beh = np.asarray(protocol.device_behaviour(*CHSH, visibility=v, efficiency=0.95))
    e = np.asarray(protocol.behaviour_correlators(beh))
    eta = np.sum(np.asarray(bell_coefficients(*CHSH)) * e, axis=(-2, -1))
    stats = {"bell": None, "correlators": e, "full": beh}
    seconds, values = {}, {}
    for name, st in stats.items():
        opts = {"m": args.m, "processes": 1, "progress": False, "constraint": name}
        warm = None if st is None else st[:1]
        bff.certify(*CHSH, eta[:1], options=opts | {"m": 2}, statistics=warm)
        start = time.perf_counter()
        res = bff.certify(*CHSH, eta, options=opts, statistics=st)
        seconds[name] = (time.perf_counter() - start) / args.points
        values[name] = res["value"]
        print(f"{name:12s} {seconds[name]:7.2f} s per point  values {np.round(values[name], 5)}")
    for name in ("correlators", "full"):
        print(f"{name} / bell = {seconds[name] / seconds['bell']:.2f}")
    print(f"full / correlators = {seconds['full'] / seconds['correlators']:.2f}")


if __name__ == "__main__":
    main()
