"""Grid throughput on an accelerator, as ratios to the device's own memory-bandwidth floors.

Needs only jax, numpy, xarray and tqdm (no zarr, dask, h5netcdf): run it with the repository on
``PYTHONPATH``. Everything is measured in this one process, on the default backend, warm (each
computation is run once to compile, then timed; best of ``--repeat``):

* ``floor write``   -- jitted ``jnp.full`` of arrays of exactly the output's sizes and dtypes
                       on the device: no implementation can produce its fields faster;
* ``floor d2h``     -- copying those arrays to host memory (``jax.device_get``), the floor of
                       any field output that lands in host memory;
* ``fields device`` -- jaxbell's block engine with the fields left on the device (each step
                       waited for, nothing copied): the kernel against ``floor write``;
* ``fields host``   -- ``jaxbell.grid.grid_fields``: the fields in host NumPy arrays, against
                       ``floor d2h``;
* ``reduce``        -- ``jaxbell.reductions.reduce_grid`` (no field output), against
                       ``floor write`` (it must beat writing the fields it never writes).

Then a sweep of the block size (points per block and device), and, with several devices,
1 device against all. Prints points/s and the ratios; ``--json`` writes every number.

    PYTHONPATH=. python benchmarks/gpu_throughput.py             # GPU: 512^3 grids
    PYTHONPATH=. JAX_PLATFORMS=cpu python benchmarks/gpu_throughput.py --n 48 --host-n 32
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
from _machine import describe_machine, machine


def _axes(n: int):
    return (
        np.linspace(0, 2 * np.pi, n),
        np.linspace(-np.pi, np.pi, n),
        np.linspace(0, 2 * np.pi, n),
    )


def _best(fn, repeat: int) -> float:
    fn()  # compile / warm up
    best = math.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def floors(n: int, dtype: str, repeat: int) -> dict:
    """Device write and device-to-host copy of arrays of the output's sizes."""
    from jaxbell.grid import field_dtypes

    specs = [((n, n, n) + trail, dt) for trail, dt in field_dtypes(dtype).values()]
    nbytes = sum(math.prod(s) * np.dtype(d).itemsize for s, d in specs)

    @jax.jit
    def fill(x):
        return [jnp.full(s, x, d) for s, d in specs]

    one = jnp.asarray(1, dtype)

    def write():
        jax.block_until_ready(fill(one))

    t_write = _best(write, repeat)
    t_d2h = math.inf
    for _ in range(repeat + 1):  # fresh device arrays each time (jax caches host copies)
        arrays = jax.block_until_ready(fill(one))
        t0 = time.perf_counter()
        for arr in arrays:
            host = np.asarray(arr)
            if arr.devices().pop().platform == "cpu":
                host = host.copy()  # on a CPU np.asarray is a view: copy, as a transfer would
        t_d2h = min(t_d2h, time.perf_counter() - t0)
        del arrays, host
    return {
        "bytes": nbytes,
        "write_s": t_write,
        "write_GBps": nbytes / t_write / 1e9,
        "d2h_s": t_d2h,
        "d2h_GBps": nbytes / t_d2h / 1e9,
    }


def fields_on_device(n: int, dtype: str, chunk: int, devices, repeat: int) -> float:
    """The block engine computing every field, leaving them on the devices (nothing copied)."""
    from jaxbell.grid import Consumer, GridPlan, run_engine

    class Wait(Consumer):
        def submit(self, pool, blocks, result):
            return [pool.submit(lambda: (jax.block_until_ready(result), 0)[1])]

    plan = GridPlan(_axes(n), np.dtype(dtype), chunk, devices)
    return _best(lambda: run_engine(plan, Wait(plan), progress=False), repeat)


def fields_to_host(n: int, dtype: str, chunk: int, devices, repeat: int) -> float:
    from jaxbell.grid import grid_fields

    return _best(
        lambda: grid_fields(
            *_axes(n), dtype=dtype, chunk_size=chunk, progress=False, devices=devices
        ),
        repeat,
    )


def reduce_only(n: int, dtype: str, chunk: int, devices, repeat: int) -> float:
    from jaxbell.reductions import reduce_grid

    return _best(
        lambda: reduce_grid(
            *_axes(n), dtype=dtype, chunk_size=chunk, progress=False, devices=devices
        ),
        repeat,
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=512, help="points per axis of the grids (n^3)")
    ap.add_argument(
        "--host-n", type=int, default=256, help="points per axis for fields copied to the host"
    )
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--dtype", action="append", choices=["float32", "float64"])
    ap.add_argument(
        "--chunks",
        default="20,22,24",
        help="log2 of the block sizes to sweep (float64 fields on device and reductions)",
    )
    ap.add_argument(
        "--budget",
        type=float,
        default=200.0,
        help="seconds after which the remaining items are skipped (and listed)",
    )
    ap.add_argument("--json", help="also write every number to this JSON file")
    args = ap.parse_args()
    t_start = time.perf_counter()
    jax.config.update("jax_enable_x64", True)
    from jaxbell.grid import default_chunk_size
    from jaxbell.sharding import describe_devices

    devices = jax.local_devices()
    dev = devices[0]
    chunk = default_chunk_size(dev.platform, "memory")
    print(describe_machine())
    print(f"jax {jax.__version__}, backend {jax.default_backend()}: {describe_devices(devices)}")
    print(f"default block: {chunk:,} points per device; grids {args.n}^3 ({args.n**3:,} points)")
    results: dict = {
        "machine": machine(),
        "devices": [str(d) for d in devices],
        "kind": dev.device_kind,
        "rows": [],
    }
    skipped = []

    def over_budget(what: str) -> bool:
        if time.perf_counter() - t_start > args.budget:
            skipped.append(what)
            return True
        return False

    def row(what, dtype, n, seconds, floor_s=None, floor_name="", **extra):
        rate = n**3 / seconds
        ratio = f"{seconds / floor_s:6.2f}x {floor_name}" if floor_s else ""
        print(
            f"  {what:<26} {dtype:<8} {n:>5}^3 {seconds * 1e3:10.2f} ms "
            f"{rate / 1e9:9.3f} Gpt/s  {ratio}",
            flush=True,
        )
        results["rows"].append(
            {"what": what, "dtype": dtype, "n": n, "seconds": seconds, "points_per_s": rate}
            | ({"ratio_to_floor": seconds / floor_s, "floor": floor_name} if floor_s else {})
            | extra
        )

    for dtype in args.dtype or ["float64", "float32"]:
        if over_budget(f"{dtype} floors"):
            continue
        fl = floors(args.n, dtype, args.repeat)
        print(
            f"{dtype}: output {fl['bytes'] / 2**30:.2f} GiB at {args.n}^3; floor write "
            f"{fl['write_s'] * 1e3:.2f} ms ({fl['write_GBps']:.0f} GB/s), floor d2h "
            f"{fl['d2h_s'] * 1e3:.2f} ms ({fl['d2h_GBps']:.1f} GB/s)",
            flush=True,
        )
        results[f"floors_{dtype}"] = fl
        fl_host = floors(args.host_n, dtype, args.repeat) if args.host_n != args.n else fl
        results[f"floors_{dtype}_host_n"] = fl_host
        if not over_budget(f"{dtype} fields device"):
            t = fields_on_device(args.n, dtype, chunk, devices, args.repeat)
            row("fields, on device", dtype, args.n, t, fl["write_s"], "floor write")
        if not over_budget(f"{dtype} fields host"):
            t = fields_to_host(args.host_n, dtype, chunk, devices, args.repeat)
            row("fields, to host memory", dtype, args.host_n, t, fl_host["d2h_s"], "floor d2h")
        if not over_budget(f"{dtype} reduce"):
            red_chunk = default_chunk_size(dev.platform, "reduce")
            t = reduce_only(args.n, dtype, red_chunk, devices, args.repeat)
            row("reduce only", dtype, args.n, t, fl["write_s"], "floor write")
    print("block-size sweep (float64):", flush=True)
    for log2 in (int(v) for v in args.chunks.split(",") if v):
        for what, fn in (("fields, on device", fields_on_device), ("reduce only", reduce_only)):
            if over_budget(f"sweep 2^{log2} {what}"):
                continue
            t = fn(args.n, "float64", 1 << log2, devices, args.repeat)
            row(f"{what}, block 2^{log2}", "float64", args.n, t, chunk=1 << log2)
    if len(devices) > 1:
        print(f"devices: 1 against {len(devices)} (float64):", flush=True)
        for k in (1, len(devices)):
            for what, fn in (("fields, on device", fields_on_device), ("reduce only", reduce_only)):
                if over_budget(f"{k} devices {what}"):
                    continue
                t = fn(args.n, "float64", chunk, devices[:k], args.repeat)
                row(f"{what}, {k} device(s)", "float64", args.n, t, devices=k)
    if skipped:
        print(f"skipped (over the {args.budget:.0f} s budget): {', '.join(skipped)}")
    print(f"gpu_throughput: done in {time.perf_counter() - t_start:.1f} s")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
