"""Time of a certified finite-size rate curve (issue 12's target: 30 values of n in <= 2 min).

Measured in one run, for the CHSH member at visibility 0.95 (aligned protocol, BFF m = 8):

* ``min-tradeoff``  -- the certified min-tradeoff functions (5 tangent points, one SDP point
                       of 7 node SDPs each): computed once per behaviour;
* ``curve``         -- the optimisation over gamma, alpha and the tangent at 30 values of n;
* ``total``         -- finite_rate_curve end to end; target <= 120 s;
* ``ratio``         -- what computing the min-tradeoff functions once saves against once per n:
                       (30 * min-tradeoff + curve) / (min-tradeoff + curve).

Peak resident memory is printed at the end. On a shared machine the times are upper bounds.

    python benchmarks/finite_curve.py
"""

from __future__ import annotations

import math
import resource
import time

import jax
import numpy as np
from _machine import describe_machine

jax.config.update("jax_enable_x64", True)

import jaxbell as jb  # noqa: E402

CHSH = (math.pi / 2, math.pi / 4, 3 * math.pi / 4)
TARGET_S = 120.0


def main() -> int:
    print(describe_machine())
    beh = np.asarray(jb.device_behaviour(*CHSH, visibility=0.95, bob_key=2))
    rounds = np.round(np.geomspace(1e5, 1e12, 30))
    jb.min_tradeoff_functions(beh, bell=CHSH, tangent_scales=(1.0,), options={"m": 2})  # warm
    t0 = time.perf_counter()
    mtf = jb.min_tradeoff_functions(beh, bell=CHSH, options={"m": 8})
    t1 = time.perf_counter()
    ds = jb.finite_rate_curve(
        beh, rounds, bell=CHSH, min_tradeoff=mtf, progress=False, bob_key="aligned"
    )
    t2 = time.perf_counter()
    jb.finite_rate_curve(
        beh, rounds, bell=CHSH, options={"m": 8}, progress=False, bob_key="aligned"
    )
    t3 = time.perf_counter()
    sdp, curve, total = t1 - t0, t2 - t1, t3 - t2
    ratio = (rounds.size * sdp + curve) / (sdp + curve)
    print(f"min-tradeoff functions (5 tangents, m = 8): {sdp:.1f} s")
    print(f"curve over {rounds.size} values of n:          {curve:.2f} s")
    print(
        f"finite_rate_curve end to end:             {total:.1f} s "
        f"(target <= {TARGET_S:.0f} s: {'met' if total <= TARGET_S else 'NOT met'})"
    )
    print(f"once per behaviour vs once per n:         {ratio:.1f}x faster")
    near = ds.finite_key_rate.sel(rounds=1e8, method="nearest")
    print(
        f"rate at n = {float(near.rounds):.3g}: {float(near):.4f}, "
        f"asymptotic {float(ds.asymptotic_rate):.4f} bit/round"
    )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak resident memory: {peak:.0f} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
