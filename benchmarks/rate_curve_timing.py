"""Cost and accuracy of DI entropies below the quantum bound (method "qubit").

Measured in one run, on whatever JAX device is the default (CPU here; the same script runs on
a GPU unchanged):

* ``curve``   -- a 64-point ``rate_curve`` of the CHSH member (pi/2, pi/4, 3pi/4), cold (with
                 compilation) and warm (compiled, cache cleared), its largest error against
                 Pironio et al. (2009), and the ratio of the warm time to the 60 s target;
* ``starts``  -- one optimisation pass (64 slopes) with 1, 2, 4, ... random starts per slope:
                 time relative to one start, and the accuracy of the best point per slope;
* ``batch``   -- n tuples optimised in one batched call against n one-tuple calls (vmap over
                 tuples), as a ratio;
* peak resident memory of the process.

    python benchmarks/rate_curve_timing.py               # defaults
    python benchmarks/rate_curve_timing.py --quick       # smaller, for a smoke test

Timings on a shared machine are noisy: compare ratios measured in the same run.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
from _machine import describe_machine

jax.config.update("jax_enable_x64", True)

import jaxbell as jb  # noqa: E402
from jaxbell import qubit  # noqa: E402

CHSH = (np.pi / 2, np.pi / 4, 3 * np.pi / 4)


def pironio(eta):
    s = 2 * np.sqrt(2) * np.asarray(eta)
    q = (1 + np.sqrt(np.maximum((s / 2) ** 2 - 1, 0))) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -(q * np.log2(q) + (1 - q) * np.log2(1 - q))
    return 1 - np.where((q <= 0) | (q >= 1), 0.0, h)


def bench_curve(num: int, options: dict) -> dict:
    qubit.clear_cache()
    t0 = time.perf_counter()
    jb.rate_curve(*CHSH, num=num, options=options)
    cold = time.perf_counter() - t0
    qubit.clear_cache()
    t0 = time.perf_counter()
    ds = jb.rate_curve(*CHSH, num=num, options=options)
    warm = time.perf_counter() - t0
    err = float(np.max(np.abs(ds.entropy.values - pironio(ds.bell_value.values))))
    return {
        "cold_s": cold,
        "warm_s": warm,
        "per_point_ms": 1e3 * warm / num,
        "passes": ds.attrs["passes"],
        "max_err_vs_pironio": err,
        "max_gap": ds.attrs["max_gap_bits"],
        "warm_over_target": warm / 60.0,
    }


def _one_pass(n_tuples: int, starts: int, directions: int, steps: int, seed: int = 0):
    prob = qubit._problem(*CHSH, "key", 0, 0)
    rng = np.random.default_rng(seed)
    tau = np.tile(qubit._first_directions(directions), (n_tuples, 1))
    args = (
        jnp.asarray(qubit._random_params(rng, (n_tuples, directions, starts))),
        jnp.asarray(np.repeat(prob.coefficients[None], n_tuples, 0)),
        jnp.full(n_tuples, prob.eta_low),
        jnp.full(n_tuples, prob.width),
        jnp.zeros(n_tuples, dtype=jnp.int32),
        jnp.zeros(n_tuples, dtype=jnp.int32),
        jnp.asarray(tau),
        0.05,
    )
    return prob, tau, args


def timed_pass(n_tuples, starts, directions, steps, repeat=2):
    prob, tau, args = _one_pass(n_tuples, starts, directions, steps)
    out = qubit._solve(*args, kind="key", steps=steps)  # compile
    jax.block_until_ready(out)
    best = np.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = jax.block_until_ready(qubit._solve(*args, kind="key", steps=steps))
        best = min(best, time.perf_counter() - t0)
    return best, prob, tau, out


def bench_starts(directions: int, steps: int, starts_list) -> list[dict]:
    rows = []
    base = None
    for r in starts_list:
        t, prob, tau, out = timed_pass(1, r, directions, steps)
        _, h, b, obj = (np.asarray(o)[0] for o in out)
        # exact optimum of each slope from the analytic curve: G(mu) = min_eta [P(eta) - mu eta]
        mu = np.tan(tau[0]) / prob.width
        eta = np.linspace(prob.eta_low, 1.0, 400001)
        g_exact = np.min(pironio(eta)[None, :] - mu[:, None] * eta[None, :], axis=1)
        g_found = np.min(h - mu[:, None] * np.abs(b), axis=1)
        miss = (g_found - g_exact) / (1 + mu)  # per unit of (1 + slope): a vertical error, bits
        base = base or t
        rows.append(
            {
                "starts": r,
                "pass_s": t,
                "ratio_to_1": t / base,
                "max_miss": float(np.max(miss)),
                "missed": int(np.sum(miss > 1e-6)),
                "slopes": len(mu),
            }
        )
    return rows


def bench_batch(n: int, directions: int, steps: int, starts: int) -> dict:
    t1, *_ = timed_pass(1, starts, directions, steps, repeat=3)
    tn, *_ = timed_pass(n, starts, directions, steps, repeat=3)
    return {"n": n, "one_s": t1, "batched_s": tn, "batched_over_n_single": tn / (n * t1)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smaller settings (smoke test)")
    args = ap.parse_args(argv)
    num = 64
    directions, steps = (16, 200) if args.quick else (64, 600)
    starts_list = (1, 4) if args.quick else (1, 2, 4, 8, 16, 32)
    print(describe_machine())
    print(f"jax {jax.__version__}, devices {jax.devices()}, x64 on")
    opts = {} if not args.quick else {"directions": 16, "starts": 4, "steps": 200, "refine": 1}
    c = bench_curve(num, opts)
    print(
        f"[curve] {num}-point rate_curve of the CHSH member: cold {c['cold_s']:.1f} s, warm "
        f"{c['warm_s']:.1f} s ({c['per_point_ms']:.0f} ms per Bell value, {c['passes']} passes); "
        f"warm / 60 s target = {c['warm_over_target']:.2f}; max |H - Pironio| = "
        f"{c['max_err_vs_pironio']:.1e} bit (largest gap {c['max_gap']:.1e})"
    )
    print(f"[starts] one pass, {directions} slopes x {steps} Adam steps, 1 tuple:")
    for row in bench_starts(directions, steps, starts_list):
        print(
            f"  starts {row['starts']:3d}: {row['pass_s']:7.2f} s  (x{row['ratio_to_1']:.2f} of "
            f"1 start); slopes whose best start misses the optimum by > 1e-6: "
            f"{row['missed']}/{row['slopes']} (worst {row['max_miss']:.1e} bit)"
        )
    b = bench_batch(4 if args.quick else 8, directions, steps, 4 if args.quick else 16)
    print(
        f"[batch] {b['n']} tuples in one call: {b['batched_s']:.2f} s vs {b['n']} x "
        f"{b['one_s']:.2f} s one at a time; ratio {b['batched_over_n_single']:.2f}"
    )
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"[memory] peak resident set {rss:.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
