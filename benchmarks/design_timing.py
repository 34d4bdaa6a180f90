"""Time of one protocol design (issue 13's target: optimise_protocol in <= 10 min on 2 cores).

One ``optimise_protocol(objective="critical_visibility", bob_key="aligned")`` with the default
search (8 random starts plus the CHSH member, 40 Adam steps, the asymmetric-CHSH subfamily
search beside it) and the certification of the optimum and the CHSH member (BFF m = 8).
Prints the wall time of each part, the number of rate evaluations (attack envelopes) and the
speed-up of batching the starts' envelopes in one call against one call per start, measured
in this run on the same tuples.

    python benchmarks/design_timing.py
"""

from __future__ import annotations

import resource
import time

import jax
import numpy as np
from _machine import describe_machine

jax.config.update("jax_enable_x64", True)

import jaxbell as jb  # noqa: E402
from jaxbell.rates import design, qubit  # noqa: E402

TARGET_S = 600.0


def main() -> int:
    print(describe_machine())
    t0 = time.perf_counter()
    res = jb.optimise_protocol(objective="critical_visibility", bob_key="aligned", progress=True)
    total = time.perf_counter() - t0
    print(
        f"optimise_protocol: {total:.0f} s (target <= {TARGET_S:.0f} s: "
        f"{'met' if total <= TARGET_S else 'NOT met'}); {res.evaluations} rate evaluations"
    )
    print(
        f"optimum {np.round(res.angles, 6)}: attack {res.value:.5f}, certified "
        f"{res.certified:.5f}; CHSH member {res.chsh_value:.5f} / {res.chsh_certified:.5f}"
    )
    # batched envelopes (one call for all starts) against one call per start
    rng = np.random.default_rng(1)
    tuples = [tuple(t) for t in rng.uniform(0, 2 * np.pi, size=(9, 3))]
    opts = dict(design.SEARCH_OPTIONS, seed=0)
    qubit.clear_cache()
    qubit.qubit_envelopes(tuples[:1], options=opts)  # compile
    qubit.clear_cache()
    t1 = time.perf_counter()
    qubit.qubit_envelopes(tuples, options=opts)
    batched = time.perf_counter() - t1
    qubit.clear_cache()
    t1 = time.perf_counter()
    for t in tuples:
        qubit.qubit_envelopes([t], options=opts)
    single = time.perf_counter() - t1
    print(
        f"envelopes of 9 starts: batched {batched:.2f} s, one by one {single:.2f} s "
        f"({single / batched:.1f}x)"
    )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak resident memory: {peak:.0f} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
