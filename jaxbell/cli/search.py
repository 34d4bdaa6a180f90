"""``jaxbell search``: an extremal or prescribed tuple under rate constraints."""

from __future__ import annotations

import argparse
import re

from jaxbell.cli._args import (
    add_overwrite,
    check_out,
    nonnegative_int,
    parse_angle,
    positive_int,
    record_command,
)


def add(sub) -> None:
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
    p.add_argument("--seed", type=nonnegative_int, default=0, help="seed of the restarts")
    p.add_argument(
        "--devices",
        type=positive_int,
        default=None,
        metavar="N",
        help="split the restarts over the first N devices of this process (default: all; the "
        "result is the same on any number)",
    )
    p.add_argument("--out", default=None, help="write the result to FILE.nc (netCDF) or FILE.zarr")
    add_overwrite(p)
    p.set_defaults(run=run, parser=p)


def run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from jaxbell.search import find_tuple, max_chsh
    from jaxbell.sharding import select_devices
    from jaxbell.store import save_dataset

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
        check_out(args.out, parser, overwrite=args.overwrite)
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
        ds = record_command(r.to_dataset(), args)
        save_dataset(ds, args.out, name="--out", overwrite=args.overwrite)
        print(f"wrote {args.out}")
    return 0 if r.converged else 1
