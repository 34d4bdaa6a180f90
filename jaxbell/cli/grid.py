"""``jaxbell grid``: a dense (theta, phi, omega) grid to a netCDF file, a resumable zarr
store (out of core), or reduced on the devices (``--reduce``).
"""

from __future__ import annotations

import argparse
import math
import os
import time
from collections.abc import Callable

from jaxbell._text import counted
from jaxbell.cli._args import (
    add_grid_axes,
    check_out,
    command_line,
    positive_int,
    range_type,
)


def _list_of_floats(option: str) -> Callable[[str], list[float]]:
    def convert(text: str) -> list[float]:
        try:
            values = [float(v) for v in text.split(",") if v.strip()]
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{text!r}: write comma-separated numbers, e.g. 1e-2,1e-4,1e-8"
            ) from None
        if not values:
            raise argparse.ArgumentTypeError("give at least one number")
        return values

    convert.__name__ = f"list for {option}"
    return convert


def _bins(text: str):
    return positive_int(text) if ":" not in text else range_type("--bins")(text)


def _process(text: str) -> tuple[int, int]:
    try:
        index, count = (int(v) for v in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: write INDEX/COUNT, e.g. 0/4") from None
    if not (count >= 1 and 0 <= index < count):
        raise argparse.ArgumentTypeError(f"{text!r}: need COUNT >= 1 and 0 <= INDEX < COUNT")
    return index, count


def add(sub) -> None:
    p = sub.add_parser(
        "grid",
        help="evaluate the family on a dense (theta, phi, omega) grid: to a file, or reduced",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "Evaluate the Bell family of eq. (2) of Wooltorton, Brown & Colbeck (PRL 132, "
            "210802)\nand the strategy of eq. (6) on a dense grid: a labelled dataset with "
            "local_bound,\nquantum_bound, self_testing, violation_ratio, correlators, chsh, "
            "max_chsh, key_rate,\nepsilon, global_rate and status.\n\n"
            "  --out FILE.nc     computed in memory, written as netCDF\n"
            "                    (open with xarray.open_dataset(FILE, engine='h5netcdf'))\n"
            "  --out FILE.zarr   written block by block (out of core, bounded memory); an "
            "interrupted\n"
            "                    run resumes from its finished blocks when run again\n"
            "                    (open with jaxbell.open_dataset(FILE))\n"
            "  --reduce          no fields: extrema of max_chsh at key-rate bounds, a "
            "histogram of\n"
            "                    max_chsh over the self-testing region and the self-testing "
            "fraction,\n"
            "                    computed block by block on the devices (printed; written to "
            "--out\n"
            "                    if given)\n\n"
            "Blocks are split over all devices of the machine (GPUs, or the CPU); the devices "
            "used\nare logged on stderr (--quiet: not)."
        ),
    )
    add_grid_axes(p)
    p.add_argument(
        "--out",
        default=None,
        help="output file: FILE.nc (netCDF, in memory) or FILE.zarr (out of core, resumable); "
        "required unless --reduce is given",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing --out FILE.zarr instead of resuming it (a store written "
        "with other settings is otherwise an error), or an existing FILE.nc (an error "
        "without it); with --reduce, an existing --out is an error without it; only a zarr "
        "store is ever removed, never another folder",
    )
    p.add_argument(
        "--reduce",
        nargs="?",
        const="all",
        default=None,
        metavar="NAMES",
        help="compute reductions instead of fields: 'all' (the default when the option is "
        "given bare) or a comma-separated choice of chsh_at_key_rate, max_chsh_histogram, "
        "self_testing_fraction",
    )
    p.add_argument(
        "--epsilon-bounds",
        type=_list_of_floats("--epsilon-bounds"),
        default=None,
        metavar="EPS,EPS,...",
        help="with --reduce: bounds eps in [0, 1] bits of key_rate >= 1 - eps "
        "(default: 1e-1,1e-2,1e-3,1e-4,1e-6,1e-8)",
    )
    p.add_argument(
        "--bins",
        type=_bins,
        default=None,
        metavar="EDGES",
        help="with --reduce: histogram edges of max_chsh as START:STOP:NUM (NUM edges), or a "
        "number of equal bins from 2 to 2sqrt2 (default: 100)",
    )
    p.add_argument(
        "--dtype",
        choices=["float64", "float32"],
        default=None,
        help="precision of the computation and of the stored fields (default: float64, or "
        "the store's when resuming)",
    )
    p.add_argument(
        "--chunk-size",
        type=positive_int,
        default=None,
        help="grid points per block and device (bounds memory beyond the output); default "
        "per device and output: on a CPU 65536 (131072 for a float32 grid in memory, 262144 "
        "for FILE.zarr), 16777216 on a GPU "
        "(1048576 for FILE.zarr), see jaxbell.grid.default_chunk_size; the store's when "
        "resuming",
    )
    p.add_argument(
        "--devices",
        type=positive_int,
        default=None,
        metavar="N",
        help="use the first N devices of this process (default: all)",
    )
    p.add_argument(
        "--process",
        type=_process,
        default=None,
        metavar="INDEX/COUNT",
        help="this process's share when COUNT processes write one FILE.zarr on a shared file "
        "system, or reduce one grid (then merge with jaxbell.reductions.merge_reductions); "
        "default: from jax.distributed, or 0/1",
    )
    p.add_argument(
        "--distributed",
        nargs="?",
        const="auto",
        default=None,
        metavar="ADDRESS,COUNT,INDEX",
        help="multi-host: call jax.distributed.initialize() first, with the cluster detected "
        "from the environment (SLURM, Open MPI, ...) or, given, the coordinator HOST:PORT, the "
        "number of processes and this process's index; each process then computes its share "
        "of FILE.zarr, and --reduce gathers the shares",
    )
    p.add_argument(
        "--compressor",
        choices=["zstd", "none"],
        default=None,
        help="codec of FILE.zarr's chunks (default: zstd, or the store's when resuming)",
    )
    p.add_argument("--no-progress", action="store_true", help="do not show the progress bar")
    p.add_argument(
        "--quiet",
        action="store_true",
        help="nothing on stderr but warnings and errors: no progress bar, no device or resume "
        "lines",
    )
    p.set_defaults(run=run, parser=p)


def _start_distributed(spec: str, parser: argparse.ArgumentParser) -> None:
    """jax.distributed.initialize from --distributed (auto-detected, or ADDRESS,COUNT,INDEX)."""
    import jax

    kwargs = {}
    if spec != "auto":
        try:
            address, count, index = spec.split(",")
            kwargs = {
                "coordinator_address": address,
                "num_processes": int(count),
                "process_id": int(index),
            }
        except ValueError:
            parser.error(f"--distributed {spec!r}: write HOST:PORT,COUNT,INDEX or nothing")
    jax.config.update("jax_cpu_collectives_implementation", "gloo")  # CPU-only runs
    try:
        jax.distributed.initialize(**kwargs)
    except (RuntimeError, ValueError) as err:
        parser.error(f"--distributed: jax.distributed.initialize failed: {err}")


def _memory_bytes() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return None


def run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from jaxbell.grid import bytes_per_point, evaluate_grid, write_grid
    from jaxbell.sharding import select_devices
    from jaxbell.store import save_dataset

    if args.distributed is not None:
        _start_distributed(args.distributed, parser)
    try:
        select_devices(args.devices)
    except ValueError as err:
        parser.error(f"--devices: {err}")
    if args.reduce is not None:
        return _run_reduce(args, parser)
    for option in ("epsilon_bounds", "bins"):
        if getattr(args, option) is not None:
            parser.error(f"--{option.replace('_', '-')} needs --reduce")
    if args.out is None:
        parser.error("--out is required (FILE.nc or FILE.zarr), unless --reduce is given")
    shape = (args.theta.size, args.phi.size, args.omega.size)
    n = math.prod(shape)
    progress = False if args.no_progress else None
    t0 = time.perf_counter()
    if args.out.endswith(".zarr"):
        from jaxbell.store import (
            StoreWriteError,
            check_removable,
            check_store_path,
            store_progress,
        )

        try:  # the path checks write_grid makes, here with messages that name --out
            out = check_store_path(args.out, "--out")
            if args.overwrite:
                check_removable(out, "--out")
        except (ValueError, PermissionError) as err:
            parser.error(str(err))
        before = None if args.overwrite else store_progress(out)
        try:
            ds = write_grid(
                args.theta,
                args.phi,
                args.omega,
                args.out,
                dtype=args.dtype,
                chunk_size=args.chunk_size,
                overwrite=args.overwrite,
                progress=progress,
                devices=args.devices,
                process=args.process,
                compressor=args.compressor,
            )
        except (ValueError, PermissionError, FileExistsError) as err:
            parser.error(f"--out: {err}")
        except StoreWriteError as err:
            parser.exit(1, f"jaxbell grid: error: {err}\n")
        except KeyboardInterrupt:
            parser.exit(130, "jaxbell grid: interrupted; run the same command to resume\n")
        from jaxbell.store import GridStore, read_record

        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        GridStore(out, read_record(out)).append_history(f"{stamp}: command: {command_line(args)}")
        elapsed = time.perf_counter() - t0
        done, total = store_progress(args.out)
        had = before[0] if before is not None else 0
        now = done - had  # blocks finished while this command ran (by every process)
        status = "complete" if done == total else f"{done:,} of {counted(total, 'block')} done"
        size = f"{counted(n, 'point')} ({shape[0]}x{shape[1]}x{shape[2]}, {ds.attrs['dtype']})"
        if now == 0:
            what = f"{args.out}: {size}, {status}; nothing to compute"
        else:
            what = f"wrote {args.out}: {size}, {status}; {counted(now, 'block')} computed"
        there = f"already there: {had:,} of {counted(total, 'block')}" if had else ""
        print(
            f"{what} in {elapsed:.2f} s"
            + (f" ({there})" if there else "")
            + "; open it with jaxbell.open_dataset"
        )
        return 0
    if args.process is not None or args.compressor is not None:
        parser.error("--process and --compressor apply to --out FILE.zarr")
    dtype = args.dtype or "float64"
    need = n * bytes_per_point(dtype)
    mem = _memory_bytes()
    if mem is not None and need > 0.8 * mem:
        parser.error(
            f"--out {args.out}: the fields of {n:,} points take {need / 2**30:.1f} GiB, more "
            f"than this machine's memory allows ({mem / 2**30:.1f} GiB); write FILE.zarr "
            "(out of core) or use --reduce"
        )
    check_out(args.out, parser, overwrite=args.overwrite)
    try:
        ds = evaluate_grid(
            args.theta,
            args.phi,
            args.omega,
            dtype=dtype,
            chunk_size=args.chunk_size,
            progress=progress,
            devices=args.devices,
        )
    except KeyboardInterrupt:
        parser.exit(130, "jaxbell grid: interrupted; nothing was written\n")
    ds.attrs["history"] += f"; command: jaxbell {' '.join(args.argv)}"
    save_dataset(ds, args.out, name="--out", overwrite=args.overwrite)
    elapsed = time.perf_counter() - t0
    st = ds.self_testing
    frac = float(st.mean())
    best = float(ds.max_chsh.where(st).max()) if frac > 0 else float("nan")
    print(
        f"wrote {args.out}: {counted(n, 'point')} ({shape[0]}x{shape[1]}x{shape[2]}, {dtype}) in "
        f"{elapsed:.2f} s; self-testing fraction {frac:.4f}; largest max_chsh there {best:.6f}"
    )
    return 0


def _run_reduce(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from jaxbell.reductions import (
        DEFAULT_BINS,
        DEFAULT_EPSILON_BOUNDS,
        _check_bins,
        _check_eps,
        _check_reductions,
        reduce_grid,
    )
    from jaxbell.store import save_dataset

    names = [v.strip() for v in args.reduce.split(",") if v.strip()]
    if args.compressor is not None:
        parser.error("--compressor applies to --out FILE.zarr without --reduce")
    if args.out is not None:
        check_out(args.out, parser, overwrite=args.overwrite)
    checks = (
        ("--reduce", _check_reductions, names),
        ("--epsilon-bounds", _check_eps, args.epsilon_bounds or DEFAULT_EPSILON_BOUNDS),
        ("--bins", _check_bins, DEFAULT_BINS if args.bins is None else args.bins),
    )
    checked = []
    for option, check, value in checks:
        try:
            checked.append(check(value))
        except (ValueError, TypeError) as err:
            parser.error(f"{option}: {err}")
    try:
        ds = reduce_grid(
            args.theta,
            args.phi,
            args.omega,
            reductions=checked[0],
            epsilon_bounds=checked[1],
            bins=checked[2],
            dtype=args.dtype or "float64",
            chunk_size=args.chunk_size,
            progress=False if args.no_progress else None,
            devices=args.devices,
            process=args.process,
        )
    except ValueError as err:
        parser.error(str(err))
    except KeyboardInterrupt:
        parser.exit(130, "jaxbell grid: interrupted; nothing was written\n")
    ds.attrs["history"] += f"; command: jaxbell {' '.join(args.argv)}"
    print(format_reductions(ds))
    if args.out is not None:
        save_dataset(ds, args.out, name="--out", overwrite=args.overwrite)
        print(f"wrote {args.out}")
    return 0


def format_reductions(ds) -> str:
    """A plain-text summary of a :func:`jaxbell.reductions.reduce_grid` dataset."""
    nt, np_, no = ds.sizes["theta"], ds.sizes["phi"], ds.sizes["omega"]
    lines = [
        f"reductions of a {nt}x{np_}x{no} grid ({counted(int(ds.grid_points), 'point')}, "
        f"{ds.attrs['dtype']}) in {ds.attrs['elapsed_seconds']:.2f} s on "
        f"{ds.attrs['device_count']} device(s) ({ds.attrs['devices']})"
    ]
    if "self_testing_fraction" in ds:
        pairs = zip(ds.status_flag.values, ds.status_count.values, strict=True)
        counts = ", ".join(f"{int(f)}: {int(c):,}" for f, c in pairs)
        lines.append(
            f"self-testing fraction (condition 4): {float(ds.self_testing_fraction):.6f} "
            f"(points per status {counts})"
        )
    if "largest_max_chsh" in ds:
        lines.append(
            f"{'key_rate >= 1 - eps':>20} {'points':>12}  {'largest max_chsh':>17} "
            f"{'at (theta, phi, omega)':<30} {'smallest max_chsh':>17} at (theta, phi, omega)"
        )
        for e in range(ds.sizes["epsilon_bound"]):
            row = ds.isel(epsilon_bound=e)

            def at(which, row=row):
                vals = [float(row[f"{a}_at_{which}"]) for a in ("theta", "phi", "omega")]
                return "(" + ", ".join(f"{v:.6f}" for v in vals) + ")"

            lines.append(
                f"{'eps = ' + format(float(row.epsilon_bound), '.3g'):>20} "
                f"{int(row.points_meeting):>12,}  {float(row.largest_max_chsh):>17.12f} "
                f"{at('largest'):<30} {float(row.smallest_max_chsh):>17.12f} {at('smallest')}"
            )
    if "max_chsh_histogram" in ds:
        lo, hi = float(ds.max_chsh_bin_lower[0]), float(ds.max_chsh_bin_upper[-1])
        lines.append(
            "histogram of max_chsh over the self-testing region: "
            f"{counted(ds.sizes['max_chsh_bin'], 'bin')} from {lo:.6g} to {hi:.6g}; "
            f"{counted(int(ds.max_chsh_histogram.sum()), 'point')} in the bins, "
            f"{int(ds.max_chsh_below_bins):,} below, {int(ds.max_chsh_above_bins):,} "
            "above (all counts in the dataset written with --out)"
        )
    return "\n".join(lines)
