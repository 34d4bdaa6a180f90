"""Per-point time of the certified BFF bounds (m = 8, level 2), SDP sizes, and speed ratios.

Measured in one run, on the CHSH member (pi/2, pi/4, 3pi/4) at S = 2.2 .. 2.7:

* ``key``        -- bff_entropy, kind "key", m = 8, level 2: wall and CPU seconds per point
                    (m - 1 = 7 SDPs), in this process (Clarabel's default threads);
* ``flip``       -- one node SDP with and without the outcome-flip block reduction (same value):
                    the speed-up the symmetry buys;
* ``eve_pairs``  -- per-point time with every product of two Eve letters (full NPA level 2);
* ``processes``  -- points spread over 2 worker processes against 1 (``--parallel``);
* ``global``     -- kind "global", level 2, one point, without (the default) and with BFF's
                    extra monomials (``--global``; slow).

Peak resident memory is printed at the end. Timings on a shared machine are noisy: compare
the ratios, and rerun on a quiet machine for absolute numbers.

    python benchmarks/bff_timing.py                 # key, flip and eve_pairs ratios
    python benchmarks/bff_timing.py --parallel --global
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import time

import numpy as np
from _machine import machine

from jaxbell import bff

CHSH = (math.pi / 2, math.pi / 4, 3 * math.pi / 4)


def _time_points(s_values, **kwargs):
    eta = -np.asarray(s_values) / (2 * math.sqrt(2))
    warm = kwargs | {"m": 2, "processes": 1}
    bff.bff_entropy(*CHSH, eta[:1], progress=False, **warm)  # compile the cvxpy problem
    w0, c0 = time.perf_counter(), time.process_time()
    res = bff.bff_entropy(*CHSH, eta, progress=False, **kwargs)
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    return res, wall / len(eta), cpu / len(eta)


def _time_node(flip: bool, repeat: int = 3) -> tuple[float, float]:
    coef = np.array([-1.0, -1.0, -1.0, 1.0]) / (2 * math.sqrt(2))
    target = np.array([-2.6 / (2 * math.sqrt(2))])
    args = ("key", 2, 0, 0, False, "bell", coef, target, 0.45, "CLARABEL", None, flip)
    bff._solve_node(*args)  # compile
    best, value = math.inf, math.nan
    for _ in range(repeat):
        c0 = time.process_time()
        value = bff._solve_node(*args)[0]
        best = min(best, time.process_time() - c0)
    return best, value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=3, help="points per measurement (3)")
    parser.add_argument("--parallel", action="store_true", help="also time 2 processes vs 1")
    parser.add_argument("--global", dest="glob", action="store_true", help="also kind global")
    args = parser.parse_args()
    s_values = np.linspace(2.2, 2.7, args.points)
    report: dict = {"sizes_key_level2": bff.sdp_sizes("key", 2)}
    report["sizes_key_level2_eve_pairs"] = bff.sdp_sizes("key", 2, eve_pairs=True)
    report["sizes_global_level2"] = bff.sdp_sizes("global", 2)

    res, wall, cpu = _time_points(s_values, m=8, level=2, processes=1)
    report["key_m8_level2"] = {
        "wall_s_per_point": round(wall, 2),
        "cpu_s_per_point": round(cpu, 2),
        "sdps_per_point": 7,
        "max_correction_bits": float(np.nanmax(res.correction)),
        "status": res.status.tolist(),
    }
    reduced, v_red = _time_node(True)
    plain, v_plain = _time_node(False)
    report["flip_reduction"] = {
        "cpu_s_reduced": round(reduced, 3),
        "cpu_s_unreduced": round(plain, 3),
        "speedup": round(plain / reduced, 1),
        "value_difference": abs(v_red - v_plain),
        "blocks_unreduced": [sum(bff.sdp_sizes("key", 2)["block_dims"])],
    }
    _, wall_p, cpu_p = _time_points(s_values, m=8, level=2, processes=1, eve_pairs=True)
    report["eve_pairs"] = {
        "cpu_s_per_point": round(cpu_p, 2),
        "slowdown": round(cpu_p / cpu, 1),
    }
    if args.parallel:
        many = np.linspace(2.2, 2.7, 4)
        _, w1, _ = _time_points(many, m=8, level=2, processes=1)
        _, w2, _ = _time_points(many, m=8, level=2, processes=2)
        report["processes"] = {"wall_s_1": round(w1, 2), "wall_s_2": round(w2, 2)}
        report["processes"]["speedup"] = round(w1 / w2, 2)
    if args.glob:
        import jaxbell as jb

        t, p, w = math.pi / 3, math.pi / 3, math.pi  # Prop. 2, perfect randomness at (0, 1)
        eta = 0.99 * float(jb.quantum_bound(t, p, w))
        out = {}
        for extras in (False, True):  # the default for kind "global", then BFF's extras
            c0, w0 = time.process_time(), time.perf_counter()
            r = bff.bff_entropy(
                t, p, w, eta, kind="global", x=0, y=1, m=8, extras=extras, processes=1
            )
            out[extras] = {
                "blocks": r.sizes["block_dims"],
                "variables": r.sizes["variables"],
                "wall_s_per_point": round(time.perf_counter() - w0, 1),
                "cpu_s_per_point": round(time.process_time() - c0, 1),
                "value": float(r.value),
                "correction": float(r.correction),
            }
        report["global_m8_level2"] = out[False]
        report["global_m8_level2_extras"] = out[True]
        report["global_extras_slowdown"] = round(
            out[True]["cpu_s_per_point"] / out[False]["cpu_s_per_point"], 2
        )
        report["global_extras_value_change"] = out[True]["value"] - out[False]["value"]
    report["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    report["machine"] = machine()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
