"""``jaxbell rate-curve``: the DI entropy below the quantum bound over the Bell value."""

from __future__ import annotations

import argparse
import time

import numpy as np

from jaxbell.cli._args import (
    add_bff_options,
    add_method_option,
    add_overwrite,
    add_protocol_options,
    add_qubit_options,
    add_tuple_options,
    as_option_message,
    check_out,
    method_options,
    positive_int,
)


def add(sub) -> None:
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
    add_tuple_options(p)
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
        type=positive_int,
        default=64,
        help="number of Bell values, >= 2, evenly spaced from eta^L to |eta^Q| (from 0 to "
        "eta^L for a tuple that is not self-testing) (default 64)",
    )
    add_method_option(p)
    p.add_argument("--out", required=True, help="output file: FILE.nc (netCDF) or FILE.zarr")
    add_overwrite(p)
    p.add_argument("--no-progress", action="store_true", help="do not show the progress bars")
    add_qubit_options(p)
    add_bff_options(p)
    add_protocol_options(p, full=False)
    p.set_defaults(run=run, parser=p)


def run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from jaxbell.rates import rate_curve
    from jaxbell.store import save_dataset

    check_out(args.out, parser, overwrite=args.overwrite)
    if args.num < 2:
        parser.error(f"--num must be >= 2, got {args.num}")
    method, options = method_options(args, parser)
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
        parser.error(as_option_message(err, parser))
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
