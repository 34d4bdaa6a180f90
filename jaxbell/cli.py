"""The ``jaxbell`` command line.

``jaxbell grid``       a dense (theta, phi, omega) grid to a netCDF file, a resumable zarr
                      store (out of core), or reduced on the devices (``--reduce``)
``jaxbell reproduce``  the paper end to end: claims table, datasets, figures
``jaxbell search``     an extremal or prescribed tuple under rate constraints
``jaxbell rate-curve`` the DI entropy below the quantum bound over the Bell value (one tuple)
``jaxbell noise``      key / randomness rates under white noise and critical visibilities
``jaxbell bff``        certified lower bounds on DI entropies / key rates (SDP)
``jaxbell --version``  the version

Every subcommand runs in float64 (JAX's x64 mode is switched on here, never at import).
"""

from __future__ import annotations

import argparse
import ast
import logging
import math
import operator
import os
import re
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from jaxbell._text import counted, value_span
from jaxbell._version import __version__

__all__ = ["main", "parse_angle", "parse_range"]

_BINOPS = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
}
_UNARY = {ast.UAdd: operator.pos, ast.USub: operator.neg}


def parse_angle(text: str) -> float:
    """An angle written like ``0``, ``-1.5``, ``pi``, ``2pi``, ``3pi/4``, ``pi/2 - 0.1``, radians.

    Numbers, ``pi`` (implicit multiplication: ``2pi``), ``+ - * /`` and parentheses; no other
    names or calls (parsed with :mod:`ast`, never ``eval``).
    """
    src = re.sub(r"(\d|\))\s*(pi|\()", r"\1*\2", text.strip().lower())
    try:
        tree = ast.parse(src, mode="eval")
    except SyntaxError:
        raise ValueError(f"cannot read angle {text!r}; write e.g. 0, 1.2, pi/2, 3pi/4") from None

    def ev(node):
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
            return float(node.value)
        if isinstance(node, ast.Name) and node.id == "pi":
            return math.pi
        if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
            return _BINOPS[type(node.op)](ev(node.left), ev(node.right))
        if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
            return _UNARY[type(node.op)](ev(node.operand))
        raise ValueError(f"cannot read angle {text!r}: only numbers, pi, + - * / and ()")

    try:
        value = ev(tree)
    except ZeroDivisionError:
        raise ValueError(f"angle {text!r} divides by zero") from None
    if not math.isfinite(value):
        raise ValueError(f"angle {text!r} is not finite")
    return value


#: Most points of one range (2**24: 128 MiB of float64 per axis, and a grid of such axes is
#: far beyond any machine); larger NUM is an error before anything is allocated.
MAX_RANGE_POINTS = 2**24


def parse_range(text: str) -> np.ndarray:
    """``START:STOP:NUM`` -> ``np.linspace(START, STOP, NUM)`` (both ends included), or one angle.

    START < STOP and 2 <= NUM <= :data:`MAX_RANGE_POINTS` are required for a range; a single
    angle gives a length-1 axis.
    """
    parts = text.split(":")
    if len(parts) == 1:
        return np.array([parse_angle(parts[0])])
    if len(parts) != 3:
        raise ValueError(f"{text!r}: write START:STOP:NUM (e.g. 0:2pi:256) or a single angle")
    start, stop = parse_angle(parts[0]), parse_angle(parts[1])
    try:
        num = int(parts[2])
    except ValueError:
        raise ValueError(f"{text!r}: NUM must be a whole number of points") from None
    if num < 2:
        raise ValueError(f"{text!r}: a range needs NUM >= 2 points (one angle needs no colons)")
    if num > MAX_RANGE_POINTS:
        raise ValueError(
            f"{text!r}: NUM = {num:,} points is more than one range may have "
            f"({MAX_RANGE_POINTS:,}); for huge grids use --out FILE.zarr (out of core) or "
            "--reduce with fewer points per axis"
        )
    if not start < stop:
        raise ValueError(f"{text!r}: START must be below STOP (got {start:g} >= {stop:g})")
    return np.linspace(start, stop, num)


def _argtype(parse: Callable[[str], Any], what: str) -> Callable[[str], Any]:
    """An argparse ``type`` from a parser that raises ValueError with a message for the user
    (argparse then reports it against the option)."""

    def convert(text: str):
        try:
            return parse(text)
        except ValueError as err:
            raise argparse.ArgumentTypeError(str(err)) from None

    convert.__name__ = what
    return convert


def _range_type(option: str) -> Callable[[str], np.ndarray]:
    return _argtype(parse_range, f"range for {option}")


def _angle_type(option: str) -> Callable[[str], float]:
    return _argtype(parse_angle, f"angle for {option}")


def _value_range(option: str, low: float | None = None, high: float | None = None):
    """START:STOP:NUM or one number (pi understood), optionally checked against [low, high]."""

    def parse(text: str) -> np.ndarray:
        values = parse_range(text)
        if (low is not None and np.any(values < low)) or (
            high is not None and np.any(values > high)
        ):
            lo = "-inf" if low is None else f"{low:g}"
            hi = "inf" if high is None else f"{high:g}"
            raise ValueError(f"{text!r}: values must lie in [{lo}, {hi}]")
        return values

    return _argtype(parse, f"range for {option}")


def _int_at_least(low: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise ValueError(f"{text!r} is not a whole number") from None
        if value < low:
            raise ValueError(f"must be >= {low}, got {value}")
        return value

    return _argtype(parse, f"whole number >= {low}")


_positive_int = _int_at_least(1)
_nonnegative_int = _int_at_least(0)
_visibility_range = _value_range("--visibility", 0.0, 1.0)


_RANGE_HELP = (
    "START:STOP:NUM (NUM points, both ends included) or one angle, in radians; "
    "'pi' is understood: 0:2pi:256, -pi/2:pi/2:101, 5pi/6"
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
    return _positive_int(text) if ":" not in text else _range_type("--bins")(text)


def _process(text: str) -> tuple[int, int]:
    try:
        index, count = (int(v) for v in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: write INDEX/COUNT, e.g. 0/4") from None
    if not (count >= 1 and 0 <= index < count):
        raise argparse.ArgumentTypeError(f"{text!r}: need COUNT >= 1 and 0 <= INDEX < COUNT")
    return index, count


def _add_grid(sub) -> None:
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
    p.add_argument("--theta", type=_range_type("--theta"), required=True, help=_RANGE_HELP)
    p.add_argument("--phi", type=_range_type("--phi"), required=True, help=_RANGE_HELP)
    p.add_argument("--omega", type=_range_type("--omega"), required=True, help=_RANGE_HELP)
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
        type=_positive_int,
        default=None,
        help="grid points per block and device (bounds memory beyond the output); default "
        "per device and output: on a CPU 65536 (131072 for a float32 grid in memory, 262144 "
        "for FILE.zarr), 16777216 on a GPU "
        "(1048576 for FILE.zarr), see jaxbell.grid.default_chunk_size; the store's when "
        "resuming",
    )
    p.add_argument(
        "--devices",
        type=_positive_int,
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
    p.add_argument("--quiet", action="store_true", help="do not log devices and resume information")
    p.set_defaults(run=_run_grid, parser=p)


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


def _check_out(out: str, parser: argparse.ArgumentParser, overwrite: bool = False) -> None:
    """Fail before computing when --out cannot be written as a netCDF / zarr file (a folder
    that does not exist or is not a folder, no file can be created there, or an existing
    FILE.nc / FILE.zarr without --overwrite)."""
    from jaxbell.dataset import check_writable

    if not out.endswith((".nc", ".nc4", ".h5", ".zarr")):
        parser.error(f"--out={out!r}: use a FILE.nc (netCDF) or FILE.zarr name")
    try:
        check_writable(out, "--out", overwrite=overwrite)
    except (ValueError, OSError) as err:
        parser.error(str(err))


def _add_overwrite(p) -> None:
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing --out FILE.nc or FILE.zarr (an error without it; only a "
        "zarr store is ever removed, never another folder)",
    )


def _memory_bytes() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return None


def _run_grid(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from jaxbell.dataset import save_dataset
    from jaxbell.grid import bytes_per_point, evaluate_grid, write_grid
    from jaxbell.sharding import select_devices

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
    _check_out(args.out, parser, overwrite=args.overwrite)
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


def _add_reproduce(sub) -> None:
    p = sub.add_parser(
        "reproduce",
        help="reproduce the paper end to end: claims table, datasets and figures",
        description=(
            "Reproduce Wooltorton, Brown & Colbeck (PRL 132, 210802, 2024) on the CPU: check "
            "every claim of Propositions 1-6 against a computed value (claims.md, claims.json), "
            "compute the grids behind Figures 1 and 2 and the trade-off between nonlocality and "
            "key that the paper only bounds (netCDF), and draw the figures (PNG). The default "
            "run takes about a minute on two CPU cores, --quick 17-25 s. Exits with "
            "status 1 if a claim fails."
        ),
    )
    p.add_argument(
        "--out",
        default="reproduce-out",
        metavar="DIR",
        help="folder for the results, created if missing (default: reproduce-out)",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="smaller grids, fewer epsilon values, restarts and spot checks (17-25 s on two cores)",
    )
    p.add_argument("--pdf", action="store_true", help="also write the figures as PDF")
    p.add_argument(
        "--seed", type=_nonnegative_int, default=0, help="seed of every search (default: 0)"
    )
    p.add_argument(
        "--no-progress",
        action="store_true",
        help="no progress bar: one line per stage on stderr instead",
    )
    p.add_argument(
        "--quiet",
        action="store_true",
        help="nothing on stderr (no progress bar, no stage lines; warnings still show); the "
        "claims summary is still printed on stdout",
    )
    p.set_defaults(run=_run_reproduce, parser=p)


def _check_out_dir(path: str, parser: argparse.ArgumentParser) -> None:
    """Fail before computing unless --out is a folder, or can be created as one, and files
    can be written in it (a temporary file is created and removed)."""
    from pathlib import Path

    from jaxbell.store import check_folder_writable

    out = Path(path)
    if out.exists() and not out.is_dir():
        parser.error(f"--out {path!r} is a file; give a folder")
    existing = out
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        parser.error(
            f"--out {path!r}: {str(existing)!r} is a file, so the folder cannot be created there"
        )
    try:
        check_folder_writable(out, "--out", folder=existing)
    except ValueError as err:
        parser.error(str(err))


def _run_reproduce(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from jaxbell.reproduce import reproduce

    _check_out_dir(args.out, parser)
    t0 = time.perf_counter()
    report = reproduce(
        args.out,
        quick=args.quick,
        pdf=args.pdf,
        progress=False if args.no_progress or args.quiet else None,
        quiet=args.quiet,
        seed=args.seed,
    )
    elapsed = time.perf_counter() - t0
    npass = sum(c.passed for c in report.claims)
    for c in report.claims:
        mark = "pass" if c.passed else "FAIL"
        print(f"  [{mark}] {c.id:<18} {c.claim}")
    print(
        f"{npass} of {len(report.claims)} claims pass; wrote {len(report.files)} files to "
        f"{report.out} in {elapsed:.1f} s (claims.md, claims.json, figures, datasets)"
    )
    return 0 if report.passed else 1


def _add_search(sub) -> None:
    p = sub.add_parser(
        "search",
        help="find the supremum of max_chsh, or a tuple with a given max_chsh, under constraints",
        description=(
            "Search the self-testing tuples (condition (4) strictly true) of the family of "
            "eq. (2) whose rates at the quantum bound meet the constraints. Without --chsh: the "
            "supremum of max_chsh (jaxbell.max_chsh); with --chsh S: a tuple whose max_chsh "
            "equals S to 1e-9 (jaxbell.find_tuple). Prints the tuple, its rates and whether "
            "the supremum is attained; --out writes the result as a labelled dataset (netCDF or "
            "zarr)."
        ),
    )
    p.add_argument(
        "--chsh",
        type=float,
        default=None,
        metavar="S",
        help="target max_chsh in (2, 2*sqrt(2)]: find a tuple with this value",
    )
    key = p.add_mutually_exclusive_group()
    key.add_argument(
        "--min-key-rate",
        type=float,
        default=None,
        metavar="R",
        help="require key_rate >= R bits (R in (0, 1]; 1 means the limit key -> 1)",
    )
    key.add_argument(
        "--max-epsilon",
        type=float,
        default=None,
        metavar="EPS",
        help="require epsilon = 1 - key_rate <= EPS bits (EPS in [0, 1); precise for tiny EPS)",
    )
    p.add_argument(
        "--perfect-randomness",
        action="store_true",
        help="require global_rate == 2 (some correlator exactly 0)",
    )
    p.add_argument(
        "--fixed",
        action="append",
        default=[],
        metavar="NAME=ANGLE",
        help="hold an angle fixed, e.g. --fixed omega=pi (repeatable; theta, phi or omega)",
    )
    p.add_argument("--seed", type=_nonnegative_int, default=0, help="seed of the restarts")
    p.add_argument(
        "--devices",
        type=_positive_int,
        default=None,
        metavar="N",
        help="split the restarts over the first N devices of this process (default: all; the "
        "result is the same on any number)",
    )
    p.add_argument("--out", default=None, help="write the result to FILE.nc (netCDF) or FILE.zarr")
    _add_overwrite(p)
    p.set_defaults(run=_run_search, parser=p)


def _run_search(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from jaxbell.dataset import save_dataset
    from jaxbell.search import find_tuple, max_chsh
    from jaxbell.sharding import select_devices

    try:
        select_devices(args.devices)
    except ValueError as err:
        parser.error(f"--devices: {err}")
    fixed = {}
    for item in args.fixed:
        name, sep, value = item.partition("=")
        if not sep:
            parser.error(f"--fixed {item!r}: write NAME=ANGLE, e.g. --fixed omega=pi")
        try:
            fixed[name.strip()] = parse_angle(value)
        except ValueError as err:
            parser.error(f"--fixed {item!r}: {err}")
    if args.out is not None:
        _check_out(args.out, parser, overwrite=args.overwrite)
    kwargs = dict(
        min_key_rate=args.min_key_rate,
        max_epsilon=args.max_epsilon,
        perfect_randomness=args.perfect_randomness,
        fixed=fixed or None,
        seed=args.seed,
        devices=args.devices,
    )
    try:
        if args.chsh is None:
            result = max_chsh(**kwargs)
        else:
            result = find_tuple(args.chsh, **kwargs)
    except (ValueError, TypeError) as err:
        msg = str(err)
        for name, flag in (
            (r"\bmin_key_rate\b", "--min-key-rate"),
            (r"\bmax_epsilon\b", "--max-epsilon"),
            (r"\bfixed\b", "--fixed"),
            (r"\bchsh=", "--chsh="),
            (r"^chsh\b", "--chsh"),
        ):
            msg = re.sub(name, flag, msg)
        parser.error(msg)
    r = result
    print(
        f"theta = {r.theta!r}, phi = {r.phi!r}, omega = {r.omega!r} (rad)\n"
        f"max_chsh = {r.max_chsh!r}; supremum = {r.supremum!r} "
        f"(attained: {r.supremum_attained})\n"
        f"key_rate = {r.key_rate!r}, epsilon = {r.epsilon!r}, global_rate = {r.global_rate!r} "
        f"(bits)\nself_testing = {r.self_testing} (margin {r.self_testing_margin:.3g}); "
        f"converged = {r.converged}\n{r.note}"
    )
    if args.out is not None:
        save_dataset(r.to_dataset(), args.out, name="--out", overwrite=args.overwrite)
        print(f"wrote {args.out}")
    return 0 if r.converged else 1


def _run_reduce(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from jaxbell.dataset import save_dataset
    from jaxbell.reductions import (
        DEFAULT_BINS,
        DEFAULT_EPSILON_BOUNDS,
        _check_bins,
        _check_eps,
        _check_reductions,
        reduce_grid,
    )

    names = [v.strip() for v in args.reduce.split(",") if v.strip()]
    if args.compressor is not None:
        parser.error("--compressor applies to --out FILE.zarr without --reduce")
    if args.out is not None:
        _check_out(args.out, parser, overwrite=args.overwrite)
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


# --- jaxbell bff: certified lower bounds (issue 5) ---------------------------------------


def _add_bff(sub) -> None:
    p = sub.add_parser(
        "bff",
        help="certified lower bounds on DI entropies (Brown-Fawzi-Fawzi SDP hierarchy)",
        description=(
            "Certified lower bounds on H(A|X=x,E) (--kind key) or H(AB|X=x,Y=y,E) (--kind "
            "global) over all quantum strategies with <B_theta,phi,omega> = eta (or with all "
            "four correlators fixed), by the Brown-Fawzi-Fawzi Gauss-Radau + NPA hierarchy "
            "(arXiv:2106.13692) solved with cvxpy/Clarabel; each number is rigorous despite "
            "the solver's tolerance (a corrected dual bound). Needs pip install "
            '"jaxbell[sdp]". Writes a labelled dataset; with --visibility also the key rates '
            "of eq. (1) and the achievable values of the noisy strategy of eq. (6)."
        ),
    )
    one = "one angle in radians ('pi' understood: 3pi/4)"
    p.add_argument("--theta", type=_angle_type("--theta"), required=True, help=one)
    p.add_argument("--phi", type=_angle_type("--phi"), required=True, help=one)
    p.add_argument("--omega", type=_angle_type("--omega"), required=True, help=one)
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument(
        "--bell-value",
        type=_value_range("--bell-value"),
        help="observed <B> (eta): START:STOP:NUM or one value; write negative values with "
        "'=': --bell-value=-0.88:-0.75:6",
    )
    what.add_argument(
        "--visibility",
        type=_visibility_range,
        help="white-noise visibility v in [0, 1] of the strategy of eq. (6): the constraint "
        "is <B> = v eta^Q (or the correlators v E with --constraint correlators); writes the "
        "certified key rates and those of the noisy strategy itself (as jaxbell noise "
        "--method bff --kind key). START:STOP:NUM or one value",
    )
    p.add_argument(
        "--kind",
        choices=["key", "global"],
        default="key",
        help="key: H(A|X=x,E) (default); global: H(AB|X=x,Y=y,E) (not with --visibility)",
    )
    p.add_argument("--x", type=int, choices=[0, 1], default=0, help="Alice's key input (0)")
    p.add_argument("--y", type=int, choices=[0, 1], default=0, help="Bob's input, global (0)")
    _add_bff_options(p, title="SDP settings")
    p.add_argument("--out", required=True, help="output file: FILE.nc or FILE.zarr")
    _add_overwrite(p)
    p.add_argument("--no-progress", action="store_true", help="do not show the progress bar")
    p.set_defaults(run=_run_bff, parser=p)


def _run_bff(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from jaxbell.dataset import save_dataset
    from jaxbell.rates import bff

    _check_out(args.out, parser, overwrite=args.overwrite)
    if args.visibility is not None and args.kind != "key":
        parser.error("--visibility computes key rates: use it with --kind key")
    if args.visibility is None and args.constraint != "bell":
        parser.error("--constraint correlators needs --visibility (the correlators are v E)")
    opts = _bff_options(args, parser)
    t0 = time.perf_counter()
    try:
        if args.visibility is not None:  # the same code as `jaxbell noise --method bff`
            from jaxbell.rates import noisy_rate_curve

            ds = noisy_rate_curve(
                args.theta,
                args.phi,
                args.omega,
                args.visibility,
                kind="key",
                x=args.x,
                method="bff",
                options=opts,
                critical=False,
            )
            column, ok = "noisy_key_rate", int(np.sum(ds.rate_status.values == 0))
        else:
            from jaxbell.rates.front import _bounds64, _check_bell_value

            # the check of jaxbell.di_entropy: no quantum strategy reaches |<B>| beyond the
            # tuple's quantum maximum (bff_entropy would only report such points infeasible)
            top = _bounds64(args.theta, args.phi, args.omega)[3]
            try:
                bell_value = _check_bell_value(args.bell_value, top)
            except ValueError as err:
                parser.error(f"--bell-value: {err}")
            opts.pop("constraint")
            res = bff.bff_entropy(
                args.theta,
                args.phi,
                args.omega,
                bell_value,
                kind=args.kind,
                x=args.x,
                y=args.y,
                **opts,
            )
            ds = res.to_dataset(dim="bell_value")
            column, ok = "certified_entropy", int(np.sum(ds.bff_status.values == 0))
    except ImportError as err:
        parser.error(str(err))
    ds.attrs["history"] += f"; command: jaxbell {' '.join(args.argv)}"
    save_dataset(ds, args.out, name="--out", overwrite=args.overwrite)
    elapsed = time.perf_counter() - t0
    values = ds[column].values
    values_text = (
        f"{column} {value_span(np.nanmin(values), np.nanmax(values), '.6f')} bits"
        if ok
        else f"no {column} (see bff_status)"
    )
    print(
        f"wrote {args.out}: {counted(values.size, 'point')}, {ok} certified, in "
        f"{elapsed:.1f} s; {values_text}"
    )
    if "bff_solver_status" in ds:  # the solver's own status, beside the certificate's
        from jaxbell.rates.bff import SOLVER_STATUS_FLAGS

        codes, counts = np.unique(ds.bff_solver_status.values, return_counts=True)
        print(
            "SDP solver status (worst node per point): "
            + ", ".join(
                f"{SOLVER_STATUS_FLAGS[int(c)]} {n}" for c, n in zip(codes, counts, strict=True)
            )
            + " (a certified value is rigorous whatever the solver's status)"
        )
    return 0


# --- rates below the quantum bound: rate-curve and noise ---------------------------------------


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}")
    return value


def _add_tuple_options(p) -> None:
    for name in ("theta", "phi", "omega"):
        p.add_argument(
            f"--{name}",
            type=_angle_type(f"--{name}"),
            required=True,
            help=f"{name} of eq. (2), radians; 'pi' is understood (e.g. 3pi/4, pi/2 - 0.01); "
            f"write negative values as --{name}=-pi/2",
        )


def _add_qubit_options(p) -> None:
    g = p.add_argument_group(
        "optimisation (method qubit)",
        "multi-start optax search over qubit strategies; see jaxbell.rates.qubit.QubitOptions",
    )
    g.add_argument(
        "--directions",
        type=_positive_int,
        default=64,
        help="slopes of supporting lines optimised per pass (default 64)",
    )
    g.add_argument(
        "--starts", type=_positive_int, default=16, help="random starts per slope (default 16)"
    )
    g.add_argument(
        "--steps", type=_positive_int, default=600, help="Adam steps per start (default 600)"
    )
    g.add_argument(
        "--refine",
        type=_nonnegative_int,
        default=4,
        help="most refinement passes, each adding slopes where the hull is coarsest (default 4)",
    )
    g.add_argument(
        "--tol",
        type=_positive_float,
        default=1e-4,
        help="target accuracy in bits: largest allowed gap between the hull and the tangent-"
        "line estimate; points above it are flagged (default 1e-4)",
    )
    g.add_argument("--seed", type=int, default=0, help="seed of the random starts (default 0)")


def _as_option_message(err: Exception) -> str:
    """A library message naming ``options['name']`` rewritten to name the option ``--name``."""
    return re.sub(r"options\['(\w+)'\]", lambda m: "--" + m.group(1).replace("_", "-"), str(err))


def _qubit_options(args) -> dict:
    return {
        "directions": args.directions,
        "starts": args.starts,
        "steps": args.steps,
        "refine": args.refine,
        "tol": args.tol,
        "seed": args.seed,
    }


def _add_method_option(p) -> None:
    p.add_argument(
        "--method",
        nargs="+",
        choices=["qubit", "bff"],
        default=["qubit"],
        help="qubit: explicit qubit strategies, an upper bound on the DI entropy (default); "
        "bff: Brown-Fawzi-Fawzi SDPs, a certified lower bound (needs pip install "
        '"jaxbell[sdp]"; seconds per point); "--method qubit bff": both, with the gap '
        "between them (the true value lies in between)",
    )


def _add_bff_options(p, title: str = "certified bounds (method bff)") -> None:
    g = p.add_argument_group(
        title,
        "Brown-Fawzi-Fawzi Gauss-Radau + NPA SDPs solved with cvxpy; see "
        "jaxbell.rates.bff.BffOptions",
    )
    g.add_argument(
        "--m",
        type=_positive_int,
        default=8,
        help="Gauss-Radau nodes, 2..40 (m - 1 SDPs per point; default 8)",
    )
    g.add_argument(
        "--level", type=int, choices=[1, 2], default=2, help="relaxation level (default 2)"
    )
    g.add_argument(
        "--eve-pairs",
        action="store_true",
        help="add every product of two Eve letters (full NPA level 2; slower)",
    )
    g.add_argument(
        "--extras",
        choices=["auto", "on", "off"],
        default="auto",
        help="BFF's extra monomials h Z Z^dag for the objective's quadratic terms: auto (default) "
        "uses them for kind key (up to 2e-4 bits tighter) and not for kind global (changes "
        "<= 1.4e-5 bits measured, 3-4x slower)",
    )
    g.add_argument(
        "--solver",
        choices=["CLARABEL", "SCS", "MOSEK"],
        default="CLARABEL",
        help="cvxpy solver (default CLARABEL; MOSEK only if installed and licensed)",
    )
    g.add_argument(
        "--processes",
        type=_positive_int,
        default=None,
        help="worker processes for the points (default: one per CPU core, >= 4 points each)",
    )
    g.add_argument(
        "--max-correction",
        type=float,
        default=1e-4,
        help="largest certificate correction (bits) accepted per point (default 1e-4)",
    )
    g.add_argument(
        "--constraint",
        choices=["bell", "correlators", "full"],
        default="bell",
        help="what the protocol tests: bell, the Bell value (default); correlators, all four "
        "correlators of the device (Props. 4 and 6); full, every p(ab|xy) (needs the "
        "certified 'full' relaxation). In 'jaxbell noise' it applies to every method: with "
        "--method qubit and correlators/full the explicit attack of jaxbell.rates.attack runs "
        "(5-40 s per point)",
    )


def _bff_options(args, parser: argparse.ArgumentParser) -> dict:
    """The BffOptions of the parsed arguments, checked (errors name the option)."""
    if not 2 <= args.m <= 40:
        parser.error(f"--m must lie in [2, 40], got {args.m}")
    if not (math.isfinite(args.max_correction) and args.max_correction > 0):
        parser.error(
            f"--max-correction must be a positive number of bits, got {args.max_correction}"
        )
    return {
        "m": args.m,
        "level": args.level,
        "eve_pairs": args.eve_pairs,
        "extras": {"auto": None, "on": True, "off": False}[args.extras],
        "solver": args.solver,
        "processes": args.processes,
        "progress": False if args.no_progress else None,
        "max_correction": args.max_correction,
        "constraint": args.constraint,
    }


def _method_options(args, parser: argparse.ArgumentParser) -> tuple[object, dict | None]:
    """(method, options) for jaxbell.rates from --method and the option groups."""
    methods = list(dict.fromkeys(args.method))
    per = {}
    if "qubit" in methods:
        per["qubit"] = _qubit_options(args)
    if "bff" in methods:
        per["bff"] = _bff_options(args, parser)
    if len(methods) == 1:
        return methods[0], per[methods[0]]
    return methods, per


def _preprocessing_value(text: str):
    """--preprocessing: a flip probability in [0, 1/2] or 'optimal'."""
    if text == "optimal":
        return "optimal"
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0.0 <= value <= 0.5:
        raise argparse.ArgumentTypeError(
            f"--preprocessing must be a flip probability in [0, 0.5] or 'optimal', got {text!r}"
        )
    return value


def _efficiency_value(text: str) -> float:
    """--efficiency: a detection efficiency in (0, 1]."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"--efficiency must lie in (0, 1], got {text!r}")
    return value


def _bob_key_value(text: str):
    choices = {"none": None, "0": 0, "1": 1, "2": 2, "aligned": "aligned"}
    if text not in choices:
        raise argparse.ArgumentTypeError(
            f"--bob-key must be none, 0, 1 or aligned (2), got {text!r}"
        )
    return choices[text]


def _add_protocol_options(p, *, full: bool = True) -> None:
    g = p.add_argument_group(
        "protocol and device (key rate)",
        "Bob's key input, Alice's noisy preprocessing, what the protocol tests and the "
        "detection efficiency; see jaxbell.noisy_key_rate",
    )
    g.add_argument(
        "--preprocessing",
        type=_preprocessing_value,
        default=0.0,
        help="Alice flips each raw key bit with probability P in [0, 0.5] (Ho et al. 2020), "
        "or 'optimal' (maximised per point; costs about 20 rate evaluations) (default 0)",
    )
    if not full:
        return
    g.add_argument(
        "--bob-key",
        type=_bob_key_value,
        default=None,
        help="Bob's key input: none (best of his test inputs, the paper's protocol; default), "
        "0, 1, or aligned (2: a key-only input measuring Alice's key observable)",
    )
    g.add_argument(
        "--efficiency",
        type=_efficiency_value,
        default=1.0,
        help="detection efficiency in (0, 1] of both parties, a no-click binned to outcome 0 "
        "(default 1)",
    )
    g.add_argument(
        "--critical-efficiency",
        action="store_true",
        help="also compute the critical detection efficiency at every visibility (bisection)",
    )


def _add_rate_curve(sub) -> None:
    p = sub.add_parser(
        "rate-curve",
        help="DI entropy below the quantum bound over the Bell value, for one tuple",
        description=(
            "Compute the device-independent entropy H(A|X=x,E) (--kind key) or "
            "H(AB|X=x,Y=y,E) (--kind global) of one tuple of eq. (2) as a function of the "
            "observed Bell value, from eta^L to |eta^Q| (eq. 3, 5) for a self-testing tuple "
            "(condition 4); for any other tuple |eta^Q| <= eta^L and the values run from 0 to "
            "eta^L, where the entropy is 0 (a warning says so). --method qubit (default): "
            "explicit qubit strategies (Jordan's lemma) and their convex envelope, an upper "
            "bound on the infimum, tight when the optimisation is global; writes entropy, the "
            "supporting lines (slope, intercept), the optimal attack (a mixture of two qubit "
            "strategies), the discretisation gap, the spread between random starts and a "
            "status per point. --method bff: certified lower bounds (Brown-Fawzi-Fawzi SDPs) "
            "with their certificate status. --method qubit bff: both, and the gap between them."
        ),
    )
    _add_tuple_options(p)
    p.add_argument(
        "--kind",
        choices=["key", "global"],
        default="key",
        help="key: H(A|X=x,E), the secrecy of Alice's raw key; global: H(AB|X=x,Y=y,E)",
    )
    p.add_argument("--x", type=int, choices=[0, 1], default=0, help="Alice's input (default 0)")
    p.add_argument(
        "--y", type=int, choices=[0, 1], default=0, help="Bob's input, for --kind global only"
    )
    p.add_argument(
        "--num",
        type=_positive_int,
        default=64,
        help="number of Bell values, >= 2, evenly spaced from eta^L to |eta^Q| (from 0 to "
        "eta^L for a tuple that is not self-testing) (default 64)",
    )
    _add_method_option(p)
    p.add_argument("--out", required=True, help="output file: FILE.nc (netCDF) or FILE.zarr")
    _add_overwrite(p)
    p.add_argument("--no-progress", action="store_true", help="do not show the progress bars")
    _add_qubit_options(p)
    _add_bff_options(p)
    _add_protocol_options(p, full=False)
    p.set_defaults(run=_run_rate_curve, parser=p)


def _run_rate_curve(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from jaxbell.dataset import save_dataset
    from jaxbell.rates import rate_curve

    _check_out(args.out, parser, overwrite=args.overwrite)
    if args.num < 2:
        parser.error(f"--num must be >= 2, got {args.num}")
    method, options = _method_options(args, parser)
    t0 = time.perf_counter()
    try:
        ds = rate_curve(
            args.theta,
            args.phi,
            args.omega,
            kind=args.kind,
            x=args.x,
            y=args.y,
            num=args.num,
            method=method,
            options=options,
            progress=False if args.no_progress else None,
            preprocessing=args.preprocessing,
        )
    except (ValueError, TypeError, ImportError, NotImplementedError) as err:
        parser.error(_as_option_message(err))
    ds.attrs["history"] += f"; command: jaxbell {' '.join(args.argv)}"
    save_dataset(ds, args.out, name="--out", overwrite=args.overwrite)
    bad = int((ds.curve_status != 0).sum())
    top = ds.entropy.isel(bell_value=-1).values
    gap = (
        f"; largest qubit - bff gap {float(ds.entropy_gap.max()):.3g} bit"
        if "entropy_gap" in ds
        else ""
    )
    print(
        f"wrote {args.out}: {ds.sizes['bell_value']} Bell values in "
        f"[{float(ds.bell_value[0]):.6g}, {float(ds.bell_value[-1]):.6g}] in "
        f"{time.perf_counter() - t0:.1f} s; entropy at the top {np.round(top, 6)} bit "
        f"(method {ds.attrs['method']}); largest hull gap "
        f"{ds.attrs.get('max_gap_bits', float('nan')):.2e} bit{gap}; "
        f"{bad} point(s) not converged or not certified"
    )
    return 0


def _add_noise(sub) -> None:
    p = sub.add_parser(
        "noise",
        help="key and randomness rates of one tuple under white noise, critical visibilities",
        description=(
            "Mix the strategy of eq. (6) with white noise (correlators E -> v E, <B> = v eta^Q) "
            "and compute, over the visibilities given, the Devetak-Winter key rate "
            "max_xy [H(A|X=x,E) - h((1 + v E_xy)/2)] (negative values kept) and the global "
            "randomness rate max_xy H(AB|X=x,Y=y,E), with DI entropies from explicit qubit "
            "strategies (--method qubit: upper bounds), certified SDP bounds (--method bff: "
            "lower bounds) or both (--method qubit bff, with the gaps); the same rates of the "
            "noisy strategy itself (achievable); and the critical visibilities (smallest v "
            "with a positive rate: qubit's is a lower bound on the true one, bff's an upper "
            "bound). Writes a labelled dataset over the coordinate visibility."
        ),
    )
    _add_tuple_options(p)
    p.add_argument(
        "--visibility",
        type=_visibility_range,
        default=np.linspace(0.8, 1.0, 41),
        help="START:STOP:NUM (both ends included) or one value, in [0, 1] (default 0.8:1:41)",
    )
    p.add_argument(
        "--kind",
        nargs="+",
        choices=["key", "global"],
        default=["key", "global"],
        help="which rates (default both); global with --method bff costs about a minute of "
        "CPU per point and input pair at --level 2: fix --x and --y",
    )
    p.add_argument(
        "--x", type=int, choices=[0, 1], default=None, help="fix Alice's input (default: best)"
    )
    p.add_argument(
        "--y",
        type=int,
        choices=[0, 1],
        default=None,
        help="fix Bob's input for --kind global (default: best)",
    )
    p.add_argument(
        "--no-critical", action="store_true", help="skip the critical visibilities (bisection)"
    )
    _add_method_option(p)
    p.add_argument("--out", required=True, help="output file: FILE.nc (netCDF) or FILE.zarr")
    _add_overwrite(p)
    p.add_argument("--no-progress", action="store_true", help="do not show the progress bars")
    _add_qubit_options(p)
    _add_bff_options(p)
    _add_protocol_options(p)
    p.set_defaults(run=_run_noise, parser=p)


def _run_noise(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from tqdm import tqdm

    from jaxbell.dataset import save_dataset
    from jaxbell.rates import noisy_rate_curve
    from jaxbell.rates.qubit import QubitOptions, qubit_envelopes

    _check_out(args.out, parser, overwrite=args.overwrite)
    method, options = _method_options(args, parser)
    if args.constraint in ("correlators", "full") and "qubit" in args.method:
        # the explicit attack has its own options (jaxbell.rates.attack.AttackOptions):
        # the seed only
        if isinstance(method, str):
            options = {"seed": args.seed}
        else:
            options = dict(options) | {"qubit": {"seed": args.seed}}
    kinds = list(dict.fromkeys(args.kind))
    t0 = time.perf_counter()
    try:
        if (
            "qubit" in args.method and args.preprocessing == 0.0
        ):  # envelopes once, with a bar; the rates below reuse them
            opts = QubitOptions.from_mapping(_qubit_options(args))
            tpl = [(args.theta, args.phi, args.omega)]
            xs = (0, 1) if args.x is None else (args.x,)
            ys = (0, 1) if args.y is None else (args.y,)
            jobs = [("key", x, 0) for x in xs if "key" in kinds]
            jobs += [("global", x, y) for x in xs for y in ys if "global" in kinds]
            disable = True if args.no_progress else None
            with tqdm(jobs, desc="entropy envelopes (qubit)", disable=disable) as bar:
                for kind, x, y in bar:
                    qubit_envelopes(tpl, kind=kind, x=x, y=y, options=opts)
        ds = noisy_rate_curve(
            args.theta,
            args.phi,
            args.omega,
            args.visibility,
            kind=kinds,
            x=args.x,
            y=args.y,
            method=method,
            options=options,
            critical=not args.no_critical,
            progress=False if args.no_progress else None,
            bob_key=args.bob_key,
            preprocessing=args.preprocessing,
            constraint=args.constraint if args.constraint != "bell" else None,
            efficiency=args.efficiency,
            critical_efficiency=args.critical_efficiency,
        )
    except (ValueError, TypeError, ImportError, NotImplementedError) as err:
        parser.error(_as_option_message(err))
    ds.attrs["history"] += f"; command: jaxbell {' '.join(args.argv)}"
    save_dataset(ds, args.out, name="--out", overwrite=args.overwrite)
    crit = ""
    if "critical_visibility" in ds:
        cv = ds.critical_visibility
        parts = []
        for m in np.atleast_1d(ds.rate_method.values):
            sub = cv.sel(rate_method=m) if "rate_method" in cv.dims else cv
            vals = ", ".join(f"{k} {float(sub.sel(kind=k)):.6f}" for k in kinds)
            parts.append(f"{m}: {vals}")
        crit = "; critical visibility " + "; ".join(parts)
    if "critical_efficiency" in ds:
        ce = ds.critical_efficiency.values
        crit += f"; critical efficiency {np.round(ce, 6)} over the visibilities"
    elapsed = time.perf_counter() - t0
    visibilities = counted(args.visibility.size, "visibility", "visibilities")
    print(f"wrote {args.out}: {visibilities} in {elapsed:.1f} s{crit}")
    return 0


#: subcommand builders; later capabilities register theirs here
SUBCOMMANDS: list[Callable] = [_add_grid]
SUBCOMMANDS += [_add_reproduce, _add_search, _add_rate_curve, _add_noise, _add_bff]


def build_parser() -> argparse.ArgumentParser:
    from jaxbell.cli_design import add_design  # one module per new subcommand
    from jaxbell.cli_finite import add_finite

    for add in (add_finite, add_design):
        if add not in SUBCOMMANDS:
            SUBCOMMANDS.append(add)
    parser = argparse.ArgumentParser(
        prog="jaxbell",
        description=(
            "jaxbell: the Bell family B_theta,phi,omega of Wooltorton, Brown & Colbeck "
            "(PRL 132, 210802, 2024) on dense grids, with device-independent rates."
        ),
    )
    parser.add_argument("--version", action="version", version=f"jaxbell {__version__}")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")
    for add in SUBCOMMANDS:
        add(sub)
    return parser


_NEGATIVE_VALUE = re.compile(r"^-(\d|\.|pi|\()")


def _value_options(parser: argparse.ArgumentParser) -> set[str]:
    """Option strings, in the parser and its subcommands, that take a value."""
    found: set[str] = set()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                found |= _value_options(sub)
        elif action.option_strings and action.nargs != 0:
            found.update(action.option_strings)
    return found


def _join_negative_values(argv: list[str], options: set[str]) -> list[str]:
    """``--phi -pi/2`` -> ``--phi=-pi/2``: argparse would take a value starting with '-' for an
    option, so angles and ranges such as ``-pi:pi:128`` could only be written ``--phi=...``."""
    out: list[str] = []
    i = 0
    while i < len(argv):
        if argv[i] in options and i + 1 < len(argv) and _NEGATIVE_VALUE.match(argv[i + 1]):
            out.append(f"{argv[i]}={argv[i + 1]}")
            i += 2
        else:
            out.append(argv[i])
            i += 1
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    argv = _join_negative_values(argv, _value_options(parser))
    args = parser.parse_args(argv)
    args.argv = argv
    if not hasattr(args, "run"):
        parser.print_help()
        return 2
    import jax

    jax.config.update("jax_enable_x64", True)
    _configure_logging(quiet=getattr(args, "quiet", False))
    return args.run(args, args.parser)


def _configure_logging(quiet: bool) -> None:
    """Log jaxbell's INFO lines (devices used, resume state) to stderr as ``jaxbell: ...``."""
    logger = logging.getLogger("jaxbell")
    if not any(isinstance(h, _StderrHandler) for h in logger.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("jaxbell: %(message)s"))
        logger.addHandler(handler)
    logger.setLevel(logging.WARNING if quiet else logging.INFO)


class _StderrHandler(logging.StreamHandler):
    """A handler writing to whatever ``sys.stderr`` is when a record is logged."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):  # StreamHandler.__init__ assigns it; stderr is looked up instead
        pass


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
