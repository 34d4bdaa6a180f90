"""Throughput and peak memory of the three grid outputs against grid size and device count.

Outputs, all computing every field of every point:

* ``memory`` -- ``evaluate_grid``'s arrays in host memory (``jaxbell.grid.grid_fields``);
* ``zarr``   -- ``write_grid``: a zarr store written block by block (out of core);
* ``reduce`` -- ``reduce_grid``: maxima, histogram, fractions; no field output.

Each measurement runs in its own process (so its peak resident memory, ``ru_maxrss``, is its
own), warm: the same compiled programs are first run on one block column of the grid; the best
of 3 runs where a run takes under 3 s. Device
counts on a CPU are forced host devices (``XLA_FLAGS=--xla_force_host_platform_device_count``).
Timings on a shared machine are noisy: compare ratios measured in one run.

    python benchmarks/scale.py                                # sizes 64..512, devices 1, 2, 4
    python benchmarks/scale.py --study size --sizes 64,128 --outputs memory,reduce
    python benchmarks/scale.py --study devices --n 192 --json devices.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

from _machine import describe_machine, machine

_WORKER = r"""
import json, os, resource, shutil, sys, time
import jax, numpy as np
jax.config.update("jax_enable_x64", True)
from jaxbell import grid
from jaxbell.reductions import reduce_grid
output, n, dtype, store = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
axes = [np.linspace(0, 2 * np.pi, n), np.linspace(-np.pi, np.pi, n), np.linspace(0, 2 * np.pi, n)]
devs = jax.local_devices()
chunk = grid.default_chunk_size(devs[0].platform, output, dtype)
plan = grid.GridPlan(axes, np.dtype(dtype), chunk, devs)
warm = [axes[0], axes[1][: plan.block[1]], axes[2]]  # one block column: same programs

def run(ax, path):
    if output == "memory":
        return grid.grid_fields(*ax, dtype=dtype, chunk_size=chunk, progress=False)
    if output == "zarr":
        shutil.rmtree(path, ignore_errors=True)
        return grid.write_grid(*ax, path, dtype=dtype, chunk_size=chunk, progress=False)
    return reduce_grid(*ax, dtype=dtype, chunk_size=chunk, progress=False)

run(warm, store + ".warm.zarr")
shutil.rmtree(store + ".warm.zarr", ignore_errors=True)
with open("/proc/self/status") as fh:
    before = next(int(l.split()[1]) for l in fh if l.startswith("VmRSS")) / 1024
seconds, runs, out = float("inf"), 0, None
while runs < 3 and (runs == 0 or seconds < 3.0):  # best of 3 where a run is short
    out = None  # one output alive at a time: the peak is one run's
    t0 = time.perf_counter()
    out = run(axes, store)
    seconds = min(seconds, time.perf_counter() - t0)
    runs += 1
disk = 0
if output == "zarr":
    for root, _, files in os.walk(store):
        disk += sum(os.path.getsize(os.path.join(root, f)) for f in files)
    shutil.rmtree(store, ignore_errors=True)
del out
print(json.dumps({
    "output": output, "n": n, "dtype": dtype, "devices": len(devs), "chunk_size": chunk,
    "block": list(plan.block), "seconds": seconds, "points_per_s": n**3 / seconds,
    "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "rss_before_mib": before, "fields_mib": n**3 * grid.bytes_per_point(dtype) / 2**20,
    "disk_mib": disk / 2**20, "runs": runs,
}))
"""


def measure(output: str, n: int, dtype: str, devices: int, tmpdir: str, timeout: float) -> dict:
    env = dict(os.environ) | {"JAX_PLATFORMS": "cpu", "PYTHONWARNINGS": "ignore"}
    flag = f"--xla_force_host_platform_device_count={devices}"
    env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} {flag}".strip()
    store = os.path.join(tmpdir, f"scale-{output}-{n}.zarr")
    try:
        out = subprocess.run(
            [sys.executable, "-c", _WORKER, output, str(n), dtype, store],
            capture_output=True,
            text=True,
            env=env,
            timeout=timeout,
        )
    finally:
        shutil.rmtree(store, ignore_errors=True)
    if out.returncode != 0:
        raise RuntimeError(f"{output} {n}^3 failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _print(r: dict, base: dict | None = None, label: str = "") -> None:
    extra = f"  disk {r['disk_mib']:7.0f} MiB" if r["output"] == "zarr" else ""
    ratio = f"  {base['seconds'] / r['seconds']:5.2f}x {label}" if base else ""
    print(
        f"  {r['output']:<6} {r['n']:>4}^3 {r['dtype']:<7} {r['devices']} dev  "
        f"{r['seconds']:8.2f} s {r['points_per_s'] / 1e6:8.2f} Mpt/s  peak RSS "
        f"{r['peak_rss_mib']:6.0f} MiB (fields {r['fields_mib']:7.0f} MiB){extra}{ratio}",
        flush=True,
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--study", choices=["size", "devices", "all"], default="all")
    ap.add_argument("--sizes", default="64,128,256,384,512", help="points per axis (n^3 grids)")
    ap.add_argument("--outputs", default="memory,zarr,reduce")
    ap.add_argument("--n", type=int, default=192, help="grid size of the device study")
    ap.add_argument("--devices", default="1,2,4", help="forced host device counts")
    ap.add_argument("--dtype", default="float64", choices=["float64", "float32"])
    ap.add_argument(
        "--max-memory-gib",
        type=float,
        default=4.0,
        help="skip the in-memory output where the fields exceed this (use zarr / reduce)",
    )
    ap.add_argument("--tmpdir", default=tempfile.gettempdir(), help="where zarr stores go")
    ap.add_argument("--timeout", type=float, default=900.0, help="seconds per measurement")
    ap.add_argument("--json", help="also write the results to this JSON file")
    args = ap.parse_args()
    outputs = args.outputs.split(",")
    results: list[dict] = []
    info = machine()
    print(describe_machine(info), flush=True)
    t0 = time.perf_counter()
    if args.study in ("size", "all"):
        print(f"against grid size ({args.dtype}, 1 device; ratios: time of memory / time)")
        for n in (int(v) for v in args.sizes.split(",")):
            base = None
            for output in outputs:
                fields_gib = n**3 * (13 * (8 if args.dtype == "float64" else 4) + 2) / 2**30
                if output == "memory" and fields_gib > args.max_memory_gib:
                    print(f"  memory {n:>4}^3 skipped: fields {fields_gib:.1f} GiB in memory")
                    continue
                r = measure(output, n, args.dtype, 1, args.tmpdir, args.timeout)
                results.append(r | {"study": "size"})
                if output == "memory":
                    base = r
                _print(r, base if output != "memory" else None, "memory's speed")
    if args.study in ("devices", "all"):
        counts = [int(v) for v in args.devices.split(",")]
        print(f"against device count ({args.n}^3, {args.dtype}; ratios: speed-up over 1 device)")
        for output in [o for o in outputs if o != "zarr"]:
            base = None
            for k in counts:
                r = measure(output, args.n, args.dtype, k, args.tmpdir, args.timeout)
                results.append(r | {"study": "devices"})
                base = base or r
                _print(r, base if k != counts[0] else None, "over 1 device")
    print(f"scale: done in {time.perf_counter() - t0:.0f} s (cpu count {os.cpu_count()})")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump([r | {"machine": info} for r in results], fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
