"""The ``jaxbell`` command line.

``jaxbell grid``       a dense (theta, phi, omega) grid to a netCDF/zarr file
``jaxbell reproduce``  the paper end to end: claims table, datasets, figures
``jaxbell search``     an extremal or prescribed tuple under rate constraints
``jaxbell --version``  the version

Every subcommand runs in float64 (JAX's x64 mode is switched on here, never at import).
"""

from __future__ import annotations

import argparse
import ast
import math
import operator
import re
import sys
import time
from collections.abc import Callable, Sequence

import numpy as np

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


def parse_range(text: str) -> np.ndarray:
    """``START:STOP:NUM`` -> ``np.linspace(START, STOP, NUM)`` (both ends included), or one angle.

    START < STOP and NUM >= 2 are required for a range; a single angle gives a length-1 axis.
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
    if not start < stop:
        raise ValueError(f"{text!r}: START must be below STOP (got {start:g} >= {stop:g})")
    return np.linspace(start, stop, num)


def _range_type(option: str) -> Callable[[str], np.ndarray]:
    def convert(text: str) -> np.ndarray:
        try:
            return parse_range(text)
        except ValueError as err:
            raise argparse.ArgumentTypeError(str(err)) from None

    convert.__name__ = f"range for {option}"
    return convert


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


_RANGE_HELP = (
    "START:STOP:NUM (NUM points, both ends included) or one angle, in radians; "
    "'pi' is understood: 0:2pi:256, -pi/2:pi/2:101, 5pi/6"
)


def _add_grid(sub) -> None:
    p = sub.add_parser(
        "grid",
        help="evaluate the family on a dense (theta, phi, omega) grid and write it to a file",
        description=(
            "Evaluate the Bell family of eq. (2) of Wooltorton, Brown & Colbeck (PRL 132, 210802) "
            "and the strategy of eq. (6) on a dense grid, and write a labelled dataset with "
            "local_bound, quantum_bound, self_testing, violation_ratio, correlators, chsh, "
            "max_chsh, key_rate, epsilon, global_rate and status. Open it with "
            "xarray.open_dataset(FILE)."
        ),
    )
    p.add_argument("--theta", type=_range_type("--theta"), required=True, help=_RANGE_HELP)
    p.add_argument("--phi", type=_range_type("--phi"), required=True, help=_RANGE_HELP)
    p.add_argument("--omega", type=_range_type("--omega"), required=True, help=_RANGE_HELP)
    p.add_argument(
        "--out",
        required=True,
        help="output file: FILE.nc (netCDF, h5netcdf engine) or FILE.zarr",
    )
    p.add_argument(
        "--dtype",
        choices=["float64", "float32"],
        default="float64",
        help="precision of the computation and of the stored fields (default: float64)",
    )
    p.add_argument(
        "--chunk-size",
        type=_positive_int,
        default=None,
        help="grid points per jitted block (bounds memory beyond the output); "
        "default: 65536 (jaxbell.grid.DEFAULT_CHUNK_SIZE)",
    )
    p.add_argument("--no-progress", action="store_true", help="do not show the progress bar")
    p.set_defaults(run=_run_grid, parser=p)


def _run_grid(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from jaxbell.dataset import check_writable, save_dataset
    from jaxbell.grid import DEFAULT_CHUNK_SIZE, evaluate_grid

    try:
        check_writable(args.out, "--out")
    except (ValueError, PermissionError) as err:
        parser.error(str(err))
    t0 = time.perf_counter()
    ds = evaluate_grid(
        args.theta,
        args.phi,
        args.omega,
        dtype=args.dtype,
        chunk_size=args.chunk_size or DEFAULT_CHUNK_SIZE,
        progress=False if args.no_progress else None,
    )
    ds.attrs["history"] += f"; command: jaxbell {' '.join(args.argv)}"
    save_dataset(ds, args.out, name="--out")
    elapsed = time.perf_counter() - t0
    n = ds.sizes["theta"] * ds.sizes["phi"] * ds.sizes["omega"]
    st = ds.self_testing
    frac = float(st.mean())
    best = float(ds.max_chsh.where(st).max()) if frac > 0 else float("nan")
    print(
        f"wrote {args.out}: {n:,} points ({ds.sizes['theta']}x{ds.sizes['phi']}x"
        f"{ds.sizes['omega']}, {args.dtype}) in {elapsed:.2f} s; "
        f"self-testing fraction {frac:.4f}; largest max_chsh there {best:.6f}"
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
            "run takes a few minutes on two CPU cores, --quick about half a minute. Exits with "
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
        help="smaller grids, fewer epsilon values, restarts and spot checks (about 30 s)",
    )
    p.add_argument("--pdf", action="store_true", help="also write the figures as PDF")
    p.add_argument(
        "--seed", type=_nonnegative_int, default=0, help="seed of every search (default: 0)"
    )
    p.add_argument("--no-progress", action="store_true", help="do not show the progress bar")
    p.set_defaults(run=_run_reproduce, parser=p)


def _nonnegative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def _check_out_dir(path: str, parser: argparse.ArgumentParser) -> None:
    import os
    from pathlib import Path

    out = Path(path)
    if out.exists() and not out.is_dir():
        parser.error(f"--out {path!r} is a file; give a folder")
    existing = out
    while not existing.exists():
        existing = existing.parent
    if not os.access(existing, os.W_OK):
        parser.error(f"--out {path!r}: folder {str(existing)!r} is not writable")


def _run_reproduce(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from jaxbell.reproduce import reproduce

    _check_out_dir(args.out, parser)
    t0 = time.perf_counter()
    report = reproduce(
        args.out,
        quick=args.quick,
        pdf=args.pdf,
        progress=False if args.no_progress else None,
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
            "the supremum is attained; --out writes the result as a labelled netCDF file."
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
    p.add_argument("--out", default=None, help="write the result to FILE.nc (netCDF)")
    p.set_defaults(run=_run_search, parser=p)


def _run_search(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from jaxbell.dataset import check_writable, save_dataset
    from jaxbell.search import find_tuple, max_chsh

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
        try:
            check_writable(args.out, "--out")
        except (ValueError, PermissionError) as err:
            parser.error(str(err))
    kwargs = dict(
        min_key_rate=args.min_key_rate,
        max_epsilon=args.max_epsilon,
        perfect_randomness=args.perfect_randomness,
        fixed=fixed or None,
        seed=args.seed,
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
        save_dataset(r.to_dataset(), args.out, name="--out")
        print(f"wrote {args.out}")
    return 0 if r.converged else 1


#: subcommand builders; later capabilities register theirs here
SUBCOMMANDS: list[Callable] = [_add_grid]
SUBCOMMANDS += [_add_reproduce, _add_search]


def build_parser() -> argparse.ArgumentParser:
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


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    args.argv = argv
    if not hasattr(args, "run"):
        parser.print_help()
        return 2
    import jax

    jax.config.update("jax_enable_x64", True)
    return args.run(args, args.parser)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
