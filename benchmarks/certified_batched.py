"""Certified points per second: the batched JAX interior-point solver against Clarabel, one run.

Random self-testing tuples and Bell values between the local and the quantum bound; kind
"key" (or ``--kind global``), x = 0, NPA level 2, m Gauss-Radau nodes (m - 1 node SDPs per
point). Times the JAX path twice (the first call includes compilation, reported separately)
and Clarabel (through cvxpy, one process) on the first ``--clarabel`` points, in this
process, and prints the per-point ratio, the iterations, the certificate's and solver's
statuses, and how far the two certified values lie apart. Run on a quiet machine: both use
the same CPUs.

    python benchmarks/certified_batched.py --points 256 --clarabel 8 [--constraint full]
    python benchmarks/certified_batched.py --points 4096 --clarabel 0   # GPU, no cvxpy
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time

import jax
import numpy as np

import jaxbell as jb
from jaxbell.rates import bff


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=64)
    ap.add_argument("--clarabel", type=int, default=4)
    ap.add_argument("--m", type=int, default=8)
    ap.add_argument("--constraint", choices=("bell", "correlators", "full"), default="bell")
    ap.add_argument("--kind", choices=("key", "global"), default="key")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", help="write the numbers here")
    args = ap.parse_args(argv)

    rng = np.random.default_rng(args.seed)
    n = args.points
    th, ph, om = rng.uniform(0, np.pi, (3, n))
    with jb._precision.x64_scope() if hasattr(jb, "_precision") else _null():
        q = np.asarray(jb.quantum_bound(th, ph, om), dtype=float)
        lo = np.asarray(jb.local_bound(th, ph, om), dtype=float)
        e0 = np.asarray(jb.strategy_correlators(th, ph, om), dtype=float)
    frac = rng.uniform(0.3, 0.95, n)
    eta = np.sign(q) * (lo + (np.abs(q) - lo) * frac)
    v = np.clip(np.abs(eta) / np.abs(q), 0.0, 1.0)
    kw: dict = {"kind": args.kind, "m": args.m, "progress": False}
    if args.constraint == "bell":
        data = {"bell_value": eta}
    elif args.constraint == "correlators":
        data = {"bell_value": None, "correlators": v[:, None, None] * e0}
    else:
        with jb._precision.x64_scope():  # normalised to 1e-9: float64
            beh = np.asarray(jb.device_behaviour(th, ph, om, visibility=v), dtype=float)
        data = {"bell_value": None, "behaviour": beh}

    def run(solver, sl, **extra):
        d = {k: (a[sl] if isinstance(a, np.ndarray) else a) for k, a in data.items()}
        bv = d.pop("bell_value")
        t0, c0 = time.perf_counter(), time.process_time()
        res = bff.bff_entropy(th[sl], ph[sl], om[sl], bv, solver=solver, **kw, **d, **extra)
        return res, time.perf_counter() - t0, time.process_time() - c0

    print(f"{args.points} points, {args.kind}, constraint {args.constraint}, m = {args.m}",
          file=sys.stderr)  # fmt: skip
    _, first, _ = run("JAX", slice(0, n))
    res, wall, cpu = run("JAX", slice(0, n))
    k = min(args.clarabel, n)
    if k == 0:  # no cvxpy (an accelerator machine): the JAX path alone
        ref, wall_c, cpu_c = None, float("nan"), float("nan")
        k = 1
    else:
        ref, wall_c, cpu_c = run("CLARABEL", slice(0, k), processes=1)
    out = {
        "points": n,
        "kind": args.kind,
        "constraint": args.constraint,
        "m": args.m,
        "jax_first_call_s": first,
        "jax_s_per_point": wall / n,
        "jax_cpu_s_per_point": cpu / n,
        "clarabel_s_per_point": wall_c / k,
        "clarabel_cpu_s_per_point": cpu_c / k,
        "ratio_wall": (wall_c / k) / (wall / n),
        "ratio_cpu": (cpu_c / k) / (cpu / n),
        "jax_status_counts": np.bincount(res.status.ravel(), minlength=4).tolist(),
        "jax_solver_status_counts": np.bincount(res.solver_status.ravel(), minlength=6).tolist(),
        "jax_points_per_s": n / wall,
        "device": str(jax.devices()[0]),
        "max_abs_diff_certified": float(np.nanmax(np.abs(res.value[:k] - ref.value)))
        if ref is not None and np.any(np.isfinite(res.value[:k] - ref.value))
        else float("nan"),
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    for key, val in out.items():
        print(f"{key:>28}: {val}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)
    return out


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


if __name__ == "__main__":
    main()
