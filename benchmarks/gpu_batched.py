"""Throughput of the batched searches and of the batched qubit solver on an accelerator.

Needs only jax, numpy, optax, xarray and tqdm (no zarr, dask, h5netcdf, cvxpy): run it with the
repository on ``PYTHONPATH``. Everything is measured in this one process, warm (each computation
runs once to compile -- the compile time is printed -- then is timed, best of ``--repeat``):

* ``search``  -- the solver of ``max_chsh`` / ``tradeoff_curve`` (optax Adam, then the Newton
  barrier continuation) on the problems of a real search (perfect randomness in the omega = pi
  plane), through the library's own batching (``search._blocked``: blocks of 128 problems, so
  many blocks per device and call on this platform, split over the devices): problems/s;
* ``qubit``   -- one optimisation pass of the qubit-strategy solver (``qubit._solve``: every
  start of every slope and tuple in fixed blocks split over the devices) for 1 tuple and for
  ``--tuples`` tuples x 64 slopes x 16 starts x 600 Adam steps (the defaults of ``rate_curve``):
  (slopes x starts)/s, and per tuple;
* ``envelope``-- a whole default envelope (what ``rate_curve`` computes, all passes) for the
  CHSH member: seconds;
* the same search and one-tuple qubit pass on the host CPU (``jax.devices("cpu")``), for the
  accelerator/CPU ratio of throughputs; with several devices, 1 device against all.

Then, for tuning, other block sizes per device and call (``--search-blocks``,
``--qubit-blocks``). Items are run in that order until ``--budget`` seconds have passed; the
rest are skipped (and listed). ``--json`` writes every number.

    PYTHONPATH=. python benchmarks/gpu_batched.py                        # on a GPU machine
    PYTHONPATH=. JAX_PLATFORMS=cpu python benchmarks/gpu_batched.py --small  # dry run
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time

import jax
import numpy as np
from _machine import describe_machine, machine

CHSH = (np.pi / 2, np.pi / 4, 3 * np.pi / 4)


def _timed(fn, repeat: int) -> tuple[float, float]:
    """(first call, best of ``repeat`` warm calls), seconds."""
    t0 = time.perf_counter()
    fn()
    first = time.perf_counter() - t0
    best = math.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return first, best


def search_problems(count: int):
    """At least ``count`` problems of a real search: max_chsh with perfect randomness at
    omega = pi (7 constraint cases x 8 CHSH-type expressions x restarts)."""
    from jaxbell import search

    setup = search._setup(None, None, True, {"omega": np.pi}, True)
    groups = len(setup.cases) * len(search._CHSH_WEIGHTS)
    restarts = search._fill_restarts(groups, max(1, -(-count // groups)))
    probs, idx, n = search._stack_problems(
        setup.cases, np.array([0.0]), search._CHSH_WEIGHTS, restarts
    )
    cands = search._candidates(0, idx[0].size)
    mus = np.repeat(np.geomspace(search._MU_START, search._MU_END, 10), 6)
    return probs, cands, mus


def bench_search(count: int, steps: int, devices, repeat: int) -> dict:
    from jaxbell import search

    probs, cands, mus = search_problems(count)
    n = cands.shape[0]

    def run():
        search._blocked(
            search._solve_max,
            probs,
            cands,
            mus,
            np.bool_(True),
            adam_steps=steps,
            devices=tuple(devices),
        )

    first, best = _timed(run, repeat)
    return {
        "problems": n,
        "problems_per_call_and_device": search._call_block(tuple(devices)),
        "adam_steps": steps,
        "newton_steps": len(mus),
        "compile_s": max(first - best, 0.0),
        "seconds": best,
        "problems_per_s": n / best,
    }


def qubit_pass(n_tuples: int, directions: int, starts: int, steps: int):
    from jaxbell import qubit

    prob = qubit._problem(*CHSH, "key", 0, 0)
    rng = np.random.default_rng(0)
    return (
        qubit._random_params(rng, (n_tuples, directions, starts)),
        np.repeat(prob.coefficients[None], n_tuples, 0),
        np.full(n_tuples, prob.eta_low),
        np.full(n_tuples, prob.width),
        np.zeros(n_tuples, dtype=np.int32),
        np.zeros(n_tuples, dtype=np.int32),
        np.tile(qubit._first_directions(directions), (n_tuples, 1)),
        0.05,
    )


def bench_qubit(n_tuples: int, directions: int, starts: int, steps: int, devices, repeat: int):
    from jaxbell import qubit

    args = qubit_pass(n_tuples, directions, starts, steps)

    def run():
        qubit._solve(*args, kind="key", steps=steps, devices=tuple(devices))

    first, best = _timed(run, repeat)
    total = n_tuples * directions * starts
    return {
        "tuples": n_tuples,
        "slopes": directions,
        "starts": starts,
        "adam_steps": steps,
        "starts_per_call_and_device": qubit._block_starts(tuple(devices)),
        "compile_s": max(first - best, 0.0),
        "seconds": best,
        "slope_starts_per_s": total / best,
        "tuples_per_s": n_tuples / best,
    }


def bench_envelope(options: dict, devices) -> dict:
    from jaxbell import qubit

    def run():
        qubit.clear_cache()
        return qubit.qubit_envelope(*CHSH, options=options, devices=devices)

    first, best = _timed(run, 1)
    env = run()
    return {"seconds": best, "first_s": first, "passes": env.passes, "options": options}


def with_block(table: dict, platform: str, value: int, fn):
    """Run ``fn`` with ``table[platform] = value`` (a block-size table of the library)."""
    missing = object()
    old = table.get(platform, missing)
    table[platform] = value
    try:
        return fn()
    finally:
        if old is missing:
            del table[platform]
        else:
            table[platform] = old


def _ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--search-problems", type=int, default=8192, help="problems of the search")
    ap.add_argument("--tuples", type=int, default=16, help="tuples of the multi-tuple qubit pass")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument(
        "--budget",
        type=float,
        default=45.0,
        help="seconds after which the remaining items are skipped (and listed)",
    )
    ap.add_argument(
        "--small",
        action="store_true",
        help="small sizes (a dry run on the CPU): 512 problems, 4 tuples, 16 x 8 "
        "starts x 200 steps",
    )
    ap.add_argument(
        "--search-blocks",
        type=_ints,
        default=[1, 32],
        help="blocks of 128 problems per device and call to try for the search "
        "(after everything else, within the budget)",
    )
    ap.add_argument(
        "--qubit-blocks",
        type=_ints,
        default=[1024, 32768],
        help="starts per device and call to try for the qubit solver",
    )
    ap.add_argument("--json", help="also write every number to this JSON file")
    args = ap.parse_args()
    t_start = time.perf_counter()
    jax.config.update("jax_enable_x64", True)
    from jaxbell import qubit as qubit_mod
    from jaxbell import search as search_mod
    from jaxbell.sharding import describe_devices

    devices = tuple(jax.local_devices())
    platform = devices[0].platform
    cpu = tuple(jax.devices("cpu")[:1])
    on_cpu = devices[0].platform == "cpu"
    if args.small:
        count, n_tuples, (k, r, steps) = 512, 4, (16, 8, 200)
        env_options = {"directions": 16, "starts": 8, "steps": 200, "refine": 1}
        args.search_blocks, args.qubit_blocks = args.search_blocks[:1], args.qubit_blocks[:1]
    else:
        count, n_tuples, (k, r, steps) = args.search_problems, args.tuples, (64, 16, 600)
        env_options = {}
    print(describe_machine())
    print(f"jax {jax.__version__}, backend {jax.default_backend()}: {describe_devices(devices)}")
    results: dict = {
        "machine": machine(),
        "devices": [str(d) for d in devices],
        "kind": devices[0].device_kind,
    }
    skipped = []

    def item(name: str, fn):
        if time.perf_counter() - t_start > args.budget:
            skipped.append(name)
            return None
        out = fn()
        results[name] = out
        return out

    def show(name, row, rate_key, unit):
        if row is None:
            return
        extra = f", {row['tuples_per_s']:.2f} tuples/s" if "tuples_per_s" in row else ""
        print(
            f"  {name:<34} {row['seconds'] * 1e3:10.1f} ms  {row[rate_key]:12,.0f} {unit}{extra}"
            f"  (compile {row['compile_s']:.1f} s)",
            flush=True,
        )

    print(f"search: {count} problems, Adam 200 steps + Newton 60 (problems/s)", flush=True)
    s_dev = item("search", lambda: bench_search(count, 200, devices, args.repeat))
    show(f"all {len(devices)} device(s)", s_dev, "problems_per_s", "problems/s")
    print(
        f"qubit pass: {k} slopes x {r} starts x {steps} Adam steps ((slopes x starts)/s)",
        flush=True,
    )
    q1 = item("qubit_1", lambda: bench_qubit(1, k, r, steps, devices, args.repeat))
    show("1 tuple", q1, "slope_starts_per_s", "/s")
    qn = item("qubit_n", lambda: bench_qubit(n_tuples, k, r, steps, devices, args.repeat))
    show(f"{n_tuples} tuples", qn, "slope_starts_per_s", "/s")
    env = item("envelope", lambda: bench_envelope(env_options, devices))
    if env is not None:
        print(
            f"  envelope of the CHSH member ({env['passes']} passes, options "
            f"{env_options or 'default'}): {env['seconds']:.2f} s",
            flush=True,
        )
    if not on_cpu:
        print("host CPU (1 device) for the ratio:", flush=True)
        s_cpu = item("search_cpu", lambda: bench_search(min(count, 1024), 200, cpu, 1))
        show("search on the CPU", s_cpu, "problems_per_s", "problems/s")
        q_cpu = item("qubit_1_cpu", lambda: bench_qubit(1, k, r, steps, cpu, 1))
        show("qubit 1 tuple on the CPU", q_cpu, "slope_starts_per_s", "/s")
        if s_dev and s_cpu:
            ratio = s_dev["problems_per_s"] / s_cpu["problems_per_s"]
            results["search_ratio_to_cpu"] = ratio
            print(f"  search: {ratio:.1f}x the CPU's problems/s")
        if q1 and q_cpu:
            ratio = q1["slope_starts_per_s"] / q_cpu["slope_starts_per_s"]
            results["qubit_ratio_to_cpu"] = ratio
            print(f"  qubit pass (1 tuple): {ratio:.1f}x the CPU's (slopes x starts)/s")
    else:
        print("(the default backend is the CPU: no accelerator/CPU ratio)")
    if len(devices) > 1:
        print(f"1 device against {len(devices)}:", flush=True)
        s_one = item("search_1dev", lambda: bench_search(count, 200, devices[:1], args.repeat))
        show("search on 1 device", s_one, "problems_per_s", "problems/s")
        q_one = item(
            "qubit_n_1dev", lambda: bench_qubit(n_tuples, k, r, steps, devices[:1], args.repeat)
        )
        show(f"qubit {n_tuples} tuples on 1 device", q_one, "slope_starts_per_s", "/s")
        if s_one and s_dev:
            results["search_speedup_all_devices"] = s_one["seconds"] / s_dev["seconds"]
            print(f"  search: {results['search_speedup_all_devices']:.2f}x faster on all")
        if q_one and qn:
            results["qubit_speedup_all_devices"] = q_one["seconds"] / qn["seconds"]
            print(f"  qubit: {results['qubit_speedup_all_devices']:.2f}x faster on all")
    print("other block sizes (per device and call), for tuning:", flush=True)
    for m in args.search_blocks:
        row = item(
            f"search_blocks_{m}",
            lambda m=m: with_block(
                search_mod._BLOCKS_PER_CALL,
                platform,
                m,
                lambda: bench_search(count, 200, devices, args.repeat),
            ),
        )
        show(f"search, {m * search_mod._BLOCK} problems", row, "problems_per_s", "problems/s")
    for b in args.qubit_blocks:
        row = item(
            f"qubit_block_{b}",
            lambda b=b: with_block(
                qubit_mod._BLOCK_STARTS,
                platform,
                b,
                lambda: bench_qubit(n_tuples, k, r, steps, devices, args.repeat),
            ),
        )
        show(f"qubit {n_tuples} tuples, {b} starts", row, "slope_starts_per_s", "/s")
    if skipped:
        print(f"skipped (over the {args.budget:.0f} s budget): {', '.join(skipped)}")
    results["skipped"] = skipped
    print(f"gpu_batched: done in {time.perf_counter() - t_start:.1f} s")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
