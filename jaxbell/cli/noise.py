"""``jaxbell noise``: key and randomness rates under white noise, critical visibilities."""

from __future__ import annotations

import argparse
import time

import numpy as np

from jaxbell._text import counted
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
    methods,
    qubit_options,
    uses,
    visibility_range,
)


def add(sub) -> None:
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
    add_tuple_options(p)
    p.add_argument(
        "--visibility",
        type=visibility_range,
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
    add_method_option(p)
    p.add_argument("--out", required=True, help="output file: FILE.nc (netCDF) or FILE.zarr")
    add_overwrite(p)
    p.add_argument("--no-progress", action="store_true", help="do not show the progress bars")
    add_qubit_options(p)
    add_bff_options(
        p,
        constraint_help="; here it applies to every method: with --method qubit and "
        "correlators or full, the explicit attack of jaxbell.rates.attack runs (5-40 s per "
        "point)",
    )
    add_protocol_options(p)
    p.set_defaults(run=run, parser=p)


def run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from tqdm import tqdm

    from jaxbell.rates import noisy_rate_curve
    from jaxbell.rates.qubit import QubitOptions, qubit_envelopes
    from jaxbell.store import save_dataset

    check_out(args.out, parser, overwrite=args.overwrite)
    method, options = method_options(args, parser)
    if args.constraint in ("correlators", "full") and uses(methods(args), QubitOptions):
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
            uses(methods(args), QubitOptions) and args.preprocessing == 0.0
        ):  # envelopes once, with a bar; the rates below reuse them
            opts = QubitOptions.from_mapping(qubit_options(args))
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
        parser.error(as_option_message(err, parser))
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
