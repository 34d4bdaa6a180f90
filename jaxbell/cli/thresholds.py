"""``jaxbell thresholds``: critical visibility or efficiency over a (theta, phi, omega) grid."""

from __future__ import annotations

import argparse
import time

import numpy as np

from jaxbell.cli._args import (
    add_bff_options,
    add_grid_axes,
    add_method_option,
    add_overwrite,
    add_qubit_options,
    as_option_message,
    bob_key_value,
    check_out,
    method_options,
    positive_int,
    preprocessing_value,
)
from jaxbell.cli.grid import _process


def add(sub) -> None:
    p = sub.add_parser(
        "thresholds",
        help="critical visibility or efficiency of every tuple of a (theta, phi, omega) grid",
        description=(
            "Search the smallest visibility (--threshold visibility) or detection efficiency "
            "(--threshold efficiency) with a positive key rate for every tuple of a grid, all "
            "cells bisected at once, for each --method: an attack method's threshold is a lower "
            "bound on the protocol's, a certified one's an upper bound (default: both, "
            "qubit then bff, which starts the certified search at the attack's threshold). "
            "--out FILE.nc: computed in memory; --out FILE.zarr: written block by block of "
            "theta rows and resumed from its finished blocks when run again. Writes "
            "critical_value and threshold_status over (theta, phi, omega, rate_method) and "
            "the bracket attack_threshold / certified_threshold."
        ),
    )
    add_grid_axes(p)
    p.add_argument(
        "--threshold", choices=["visibility", "efficiency"], default="visibility",
        help="which threshold (default visibility)",
    )  # fmt: skip
    add_method_option(p)
    p.set_defaults(method=["qubit", "bff"])
    p.add_argument(
        "--xtol", type=float, default=None,
        help="final bracket width of every method's bisection (default: 1e-7 qubit, 1e-3 bff)",
    )  # fmt: skip
    p.add_argument(
        "--bob-key", type=bob_key_value, default=None,
        help="Bob's key input: none (the paper's protocol; default), 0, 1 or aligned",
    )  # fmt: skip
    p.add_argument(
        "--preprocessing", type=preprocessing_value, default=0.0,
        help="Alice's flip probability in [0, 0.5] or 'optimal' (default 0)",
    )  # fmt: skip
    p.add_argument("--x", type=int, choices=[0, 1], default=0, help="Alice's key input (default 0)")
    p.add_argument("--out", required=True, help="output: FILE.nc or FILE.zarr (resumable)")
    p.add_argument(
        "--block-rows", type=positive_int, default=None,
        help="theta rows per block of a zarr store (default: about 256 cells)",
    )  # fmt: skip
    add_overwrite(p)
    p.add_argument(
        "--process", type=_process, default=None, metavar="INDEX/COUNT",
        help="with FILE.zarr: this process's share (blocks dealt round-robin) when COUNT "
        "processes fill one store on a shared file system; default: from jax.distributed, "
        "or 0/1",
    )  # fmt: skip
    p.add_argument("--no-progress", action="store_true", help="do not show the progress bar")
    add_qubit_options(p)
    add_bff_options(p)
    p.set_defaults(run=run, parser=p)


def run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from jaxbell.rates.values import Protocol
    from jaxbell.store import save_dataset
    from jaxbell.thresholds import threshold_grid

    zarr = str(args.out).endswith(".zarr")
    if not zarr:
        check_out(args.out, parser, overwrite=args.overwrite)
    method, options = method_options(args, parser)
    t0 = time.perf_counter()
    try:
        protocol = Protocol(x=args.x, bob_key=args.bob_key, preprocessing=args.preprocessing)
        ds = threshold_grid(
            args.theta, args.phi, args.omega, threshold=args.threshold, method=method,
            options=options, xtol=args.xtol, protocol=protocol,
            path=args.out if zarr else None, block_rows=args.block_rows,
            overwrite=args.overwrite if zarr else False,
            progress=False if args.no_progress else None, process=args.process,
        )  # fmt: skip
    except (ValueError, TypeError, ImportError, NotImplementedError, TimeoutError) as err:
        parser.error(as_option_message(err))
    if not zarr:
        ds.attrs["history"] += f"; command: jaxbell {' '.join(args.argv)}"
        save_dataset(ds, args.out, name="--out", overwrite=args.overwrite)
    elapsed = time.perf_counter() - t0
    parts = []
    for m in np.atleast_1d(ds.rate_method.values):
        sub = ds.critical_value.sel(rate_method=m)
        found = int((ds.threshold_status.sel(rate_method=m) == 0).sum())
        lo = float(sub.min()) if found else float("nan")
        hi = float(sub.max()) if found else float("nan")
        parts.append(f"{m}: {found} found, {lo:.6f} to {hi:.6f}")
    cells = int(np.prod([ds.sizes[d] for d in ("theta", "phi", "omega")]))
    print(f"wrote {args.out}: {cells} cells in {elapsed:.1f} s; " + "; ".join(parts))
    return 0
