"""The batched solver against the Clarabel path on random points, and both against analytic curves.

One run. Rows of random self-testing tuples (statistics between the local and the quantum
bound): kind "key" with a Bell value (no preprocessing and p = 0.45), four correlators
(p = 0.2), full statistics (and full statistics with Bob's aligned key input y = 2 in the
layout (2, 2, 2, 3)); kind "global" with a Bell value and with four correlators; and the CHSH
member against Pironio et al. (p = 0) and Ho et al. (p = 0.1, 0.3) at Bell values along its
range. m = 8, NPA level 2. Prints per row the points certified by each, JAX - Clarabel (min,
max, how many beyond 1e-6 bit in each direction), JAX's certified value - Clarabel's dual value
before its correction (the optimum both reach), the largest correction of each and the seconds
of each; for the CHSH rows
the largest excess over the analytic curve (must be <= 0: both are lower bounds).

    python benchmarks/ipm_against_clarabel.py [--points 20] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

import jaxbell as jb
from jaxbell._precision import x64_scope
from jaxbell.rates import bff

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from _machine import describe_machine  # noqa: E402


def _h(q):
    q = np.clip(np.asarray(q, dtype=float), 1e-300, 1 - 1e-16)
    return -(q * np.log2(q) + (1 - q) * np.log2(1 - q))


def ho_entropy(s, p):
    """H(A'|E) >= 1 - h((1 + sqrt((S/2)^2 - 1))/2) + h((1 + sqrt(1 - p(1-p)(8 - S^2)))/2),
    Ho et al., PRL 124, 230502 (2020) (p = 0: Pironio et al. 2009)."""
    s = np.clip(np.asarray(s, dtype=float), 2.0, 2 * np.sqrt(2))
    first = (1 + np.sqrt(np.maximum((s / 2) ** 2 - 1, 0.0))) / 2
    second = (1 + np.sqrt(np.maximum(1 - p * (1 - p) * (8 - s**2), 0.0))) / 2
    return 1 - _h(first) + np.where(second >= 1, 0.0, _h(second))


def _random(rng, n):
    th, ph, om = rng.uniform(0.05, np.pi - 0.05, (3, 40 * n))
    with x64_scope():
        q = np.asarray(jb.quantum_bound(th, ph, om), dtype=float)
        lo = np.asarray(jb.local_bound(th, ph, om), dtype=float)
        e0 = np.asarray(jb.strategy_correlators(th, ph, om), dtype=float)
        selftest = np.asarray(jb.is_self_testing(th, ph, om), dtype=bool)
    # self-testing tuples (eq. 5 is their quantum bound) with a Bell value range worth the name
    keep = selftest & ((np.abs(q) - lo) > 1e-2 * np.abs(q))
    frac = rng.uniform(0.3, 0.95, q.shape)
    eta = np.sign(q) * (lo + (np.abs(q) - lo) * frac)
    v = np.abs(eta) / np.abs(q)
    return th[keep], ph[keep], om[keep], eta[keep], v[keep], e0[keep]


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=20, help="points per row")
    ap.add_argument("--m", type=int, default=8)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    n = args.points
    rows = []

    def compare(name, th, ph, om, bell, **kw):
        kw = {"m": args.m, "progress": False, **kw}
        t0 = time.perf_counter()
        fast = bff.bff_entropy(th, ph, om, bell, solver="JAX", **kw)
        t1 = time.perf_counter()
        ref = bff.bff_entropy(th, ph, om, bell, solver="CLARABEL", processes=1, **kw)
        t2 = time.perf_counter()
        both = (fast.status == 0) & (ref.status == 0)
        d = (fast.value - ref.value)[both]
        dd = (fast.value - ref.dual_value)[both]
        nan = float("nan")
        row = {
            "row": name,
            "points": int(np.size(fast.value)),
            "certified_jax": int(np.sum(fast.status == 0)),
            "certified_clarabel": int(np.sum(ref.status == 0)),
            "diff_min": float(d.min()) if d.size else float("nan"),
            "diff_max": float(d.max()) if d.size else float("nan"),
            "jax_below_1e-6": int(np.sum(d < -1e-6)),
            "jax_above_1e-6": int(np.sum(d > 1e-6)),
            # the optimum itself: JAX's certified value against Clarabel's dual value before
            # its correction (not a bound; where the two certified values differ, this says
            # whether the difference is Clarabel's correction or a different optimum)
            "jax_minus_clarabel_dual_min": float(np.min(dd)) if dd.size else float("nan"),
            "jax_minus_clarabel_dual_max": float(np.max(dd)) if dd.size else float("nan"),
            "clarabel_correction_max": float(np.max(ref.correction[both])) if d.size else nan,
            "jax_correction_max": float(np.max(fast.correction[both])) if d.size else nan,
            "seconds_jax": t1 - t0,
            "seconds_clarabel": t2 - t1,
        }
        print(json.dumps(row), flush=True)
        rows.append(row)
        return fast, ref

    th, ph, om, eta, v, e0 = (a[:n] for a in _random(rng, n))
    compare("key, Bell value", th, ph, om, eta)
    compare("key, Bell value, p = 0.45", th, ph, om, eta, preprocessing=0.45)
    compare("key, four correlators, p = 0.2", th, ph, om, None,
            correlators=v[:, None, None] * e0, preprocessing=0.2)  # fmt: skip
    k = max(2, n // 2)
    with x64_scope():
        beh = np.asarray(jb.device_behaviour(th[:k], ph[:k], om[:k], visibility=v[:k]), float)
    compare("key, full statistics", th[:k], ph[:k], om[:k], None, behaviour=beh)
    aligned = np.concatenate([beh, beh[..., :1]], axis=-1)  # y = 2: a third input, unconstrained
    compare("key, full statistics, layout (2, 2, 2, 3)", th[:k], ph[:k], om[:k], None,
            behaviour=aligned)  # fmt: skip
    compare("global, Bell value", th, ph, om, eta, kind="global")
    compare("global, four correlators", th, ph, om, None, kind="global",
            correlators=v[:, None, None] * e0)  # fmt: skip
    # the CHSH member against the analytic curves (tight: Pironio et al.; Ho et al.)
    chsh = (np.pi / 2, np.pi / 4, 3 * np.pi / 4)
    s = np.linspace(2.05, 2.8, n)
    for p in (0.0, 0.1, 0.3):
        fast, ref = compare(f"CHSH member, p = {p}", *chsh, -s / (2 * np.sqrt(2)),
                            preprocessing=p)  # fmt: skip
        curve = ho_entropy(s, p)
        rows[-1]["excess_over_curve_jax"] = float(np.nanmax(fast.value - curve))
        rows[-1]["excess_over_curve_clarabel"] = float(np.nanmax(ref.value - curve))
        print(f"  excess over Ho et al./Pironio et al.: JAX {rows[-1]['excess_over_curve_jax']:.2e}"
              f", Clarabel {rows[-1]['excess_over_curve_clarabel']:.2e}", flush=True)  # fmt: skip
    out = {"machine": describe_machine(), "m": args.m, "rows": rows}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)
    return out


if __name__ == "__main__":
    main()
