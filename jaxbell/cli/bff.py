"""``jaxbell bff``: certified lower bounds on DI entropies and key rates (SDP)."""

from __future__ import annotations

import argparse
import time

import numpy as np

from jaxbell._text import counted, value_span
from jaxbell.cli._args import (
    add_bff_options,
    add_overwrite,
    angle_type,
    bff_options,
    check_out,
    value_range,
    visibility_range,
)


def add(sub) -> None:
    p = sub.add_parser(
        "bff",
        help="certified lower bounds on DI entropies (Brown-Fawzi-Fawzi SDP hierarchy)",
        description=(
            "Certified lower bounds on H(A|X=x,E) (--kind key) or H(AB|X=x,Y=y,E) (--kind "
            "global) over all quantum strategies with <B_theta,phi,omega> = eta (or with all "
            "four correlators fixed), by the Brown-Fawzi-Fawzi Gauss-Radau + NPA hierarchy "
            "(arXiv:2106.13692) solved by jaxbell's batched interior-point solver (or "
            '--solver CLARABEL/SCS with pip install "jaxbell[sdp]"); each number is rigorous '
            "despite the solver's tolerance (a corrected dual bound). Writes a labelled "
            "dataset; with --visibility also the key rates of eq. (1) and the achievable values "
            "of the noisy strategy of eq. (6)."
        ),
    )
    one = "one angle in radians ('pi' understood: 3pi/4)"
    p.add_argument("--theta", type=angle_type("--theta"), required=True, help=one)
    p.add_argument("--phi", type=angle_type("--phi"), required=True, help=one)
    p.add_argument("--omega", type=angle_type("--omega"), required=True, help=one)
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument(
        "--bell-value",
        type=value_range("--bell-value"),
        help="observed <B> (eta): START:STOP:NUM or one value; write negative values with "
        "'=': --bell-value=-0.88:-0.75:6",
    )
    what.add_argument(
        "--visibility",
        type=visibility_range,
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
    add_bff_options(p, title="SDP settings")
    p.add_argument("--out", required=True, help="output file: FILE.nc or FILE.zarr")
    add_overwrite(p)
    p.add_argument("--no-progress", action="store_true", help="do not show the progress bar")
    p.set_defaults(run=run, parser=p)


def run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from jaxbell.rates import bff
    from jaxbell.store import save_dataset

    check_out(args.out, parser, overwrite=args.overwrite)
    if args.visibility is not None and args.kind != "key":
        parser.error("--visibility computes key rates: use it with --kind key")
    if args.visibility is None and args.constraint != "bell":
        parser.error("--constraint correlators needs --visibility (the correlators are v E)")
    opts = bff_options(args, parser)
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
