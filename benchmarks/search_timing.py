"""Timing of the searches and of `jaxbell reproduce`, as ratios measured in one run.

* ``max_chsh`` without and with constraints, warm (compiled; best of ``--repeat``), and the
  first call (compilation included); ratios to the unconstrained search.
* batching: the 64 restarts of the unconstrained search as one vmapped call vs a Python loop
  over the same problems one at a time (both compiled) -- the speed-up vmap buys.
* ``find_tuple`` (first call at a new constraint, and with its supremum cached) and
  ``tradeoff_curve`` on 25 epsilon values.
* with ``--reproduce``: ``jaxbell reproduce --quick`` and the default run, each in its own
  process (wall time, peak resident memory).

    python benchmarks/search_timing.py                # searches only (~1 min)
    python benchmarks/search_timing.py --reproduce    # plus both reproduce runs (~3 min)

Timings on a shared machine are noisy; compare ratios from the same run.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time

import jax
import numpy as np
from _machine import describe_machine

jax.config.update("jax_enable_x64", True)

import jaxbell as jb  # noqa: E402
from jaxbell import search  # noqa: E402
from jaxbell._precision import x64_scope  # noqa: E402


def best_of(fn, repeat):
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def loop_vs_batch(repeat):
    """The unconstrained search's problems: one vmapped call vs a loop of one-problem calls."""
    setup = search._setup(None, None, False, None, True)
    probs, idx, n = search._stack_problems(setup.cases, np.array([0.0]), search._CHSH_WEIGHTS, 8)
    cands = search._candidates(0, idx[0].size)
    mus = np.repeat(np.geomspace(search._MU_START, search._MU_END, 10), 6)
    with x64_scope():
        dev = {k: jax.numpy.asarray(v) for k, v in probs.items()}
        c, m, b = jax.numpy.asarray(cands), jax.numpy.asarray(mus), np.bool_(True)

        def batched():
            jax.block_until_ready(search._solve_max(dev, c, m, b, adam_steps=200))

        def looped():
            for i in range(n):
                one = {k: v[i : i + 1] for k, v in dev.items()}
                jax.block_until_ready(search._solve_max(one, c[i : i + 1], m, b, adam_steps=200))

        batched()
        looped()  # compile both shapes first
        return n, best_of(batched, repeat), best_of(looped, 1)


def reproduce_run(quick: bool):
    with tempfile.TemporaryDirectory() as out:
        cmd = [sys.executable, "-m", "jaxbell.cli", "reproduce", "--out", out, "--no-progress"]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd + (["--quick"] if quick else []), capture_output=True, text=True)
        wall = time.perf_counter() - t0
        rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        claims = json.load(open(f"{out}/claims.json"))
    return wall, rss, proc.returncode, claims["seconds"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--reproduce", action="store_true", help="also time jaxbell reproduce")
    args = parser.parse_args()
    print(describe_machine())
    print(f"jax {jax.__version__} on {jax.devices()}; block {search._BLOCK} problems")

    t0 = time.perf_counter()
    jb.max_chsh()
    cold = time.perf_counter() - t0
    cases = {
        "max_chsh()": dict(),
        "max_chsh(min_key_rate=0.99)": dict(min_key_rate=0.99),
        "max_chsh(perfect_randomness=True)": dict(perfect_randomness=True),
        "max_chsh(min_key_rate=0.99, perfect_randomness=True)": dict(
            min_key_rate=0.99, perfect_randomness=True
        ),
        "max_chsh(min_key_rate=1)  [+ closure search]": dict(min_key_rate=1.0),
        "max_chsh(perfect_randomness=True, fixed={'omega': pi})": dict(
            perfect_randomness=True, fixed={"omega": np.pi}
        ),
    }
    warm = {}
    for name, kw in cases.items():
        jb.max_chsh(**kw)
        warm[name] = best_of(lambda kw=kw: jb.max_chsh(**kw), args.repeat)
    base = warm["max_chsh()"]
    print(f"\nfirst max_chsh() (compilation included): {cold:.2f} s")
    head = f"search (warm, best of {args.repeat})"
    print(f"{head:<58} {'time':>8} {'ratio':>7}")
    for name, t in warm.items():
        print(f"{name:<58} {t:8.3f} {t / base:7.2f}")

    n, tb, tl = loop_vs_batch(args.repeat)
    print(
        f"\n{n} restarts of max_chsh(): vmapped {tb:.3f} s, Python loop {tl:.2f} s "
        f"-> batching is {tl / tb:.0f}x faster"
    )

    search._maximise_cached.cache_clear()
    jb.find_tuple(2.3)  # compile the level-set solver
    search._maximise_cached.cache_clear()
    t0 = time.perf_counter()
    jb.find_tuple(2.2, min_key_rate=0.99)
    first = time.perf_counter() - t0
    cached = best_of(lambda: jb.find_tuple(2.21, min_key_rate=0.99), args.repeat)
    print(
        f"find_tuple(2.2, min_key_rate=0.99): {first:.3f} s (supremum searched), "
        f"{cached:.3f} s (supremum cached); ratio to max_chsh(): {cached / base:.1f}"
    )
    eps = np.geomspace(1e-6, 0.8, 25)
    jb.tradeoff_curve(eps[:3])
    tt = best_of(lambda: jb.tradeoff_curve(eps), 1)
    print(
        f"tradeoff_curve(25 eps, with and without randomness): {tt:.2f} s "
        f"({tt / 50:.3f} s per supremum, {tt / 50 / base:.1f}x one max_chsh())"
    )
    print(
        f"peak RSS of this process: "
        f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB"
    )

    if args.reproduce:
        wq, rq, cq, sq = reproduce_run(True)
        wd, rd, cd, sd = reproduce_run(False)
        print(f"\njaxbell reproduce --quick: {wq:.1f} s wall (exit {cq}); stages {sq}")
        print(f"jaxbell reproduce:         {wd:.1f} s wall (exit {cd}); stages {sd}")
        print(f"default / quick = {wd / wq:.1f}; peak RSS of the runs {max(rq, rd):.0f} MiB")


if __name__ == "__main__":
    main()
