"""The ``jaxbell`` command line.

``jaxbell grid``       a dense (theta, phi, omega) grid to a netCDF/zarr file
``jaxbell bff``        certified lower bounds on DI entropies / key rates (SDP)
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


# --- jaxbell bff: certified lower bounds (issue 5) ---------------------------------------


def _value_range(option: str, low: float | None = None, high: float | None = None):
    """START:STOP:NUM or one number (pi understood), optionally checked against [low, high]."""

    def convert(text: str) -> np.ndarray:
        try:
            values = parse_range(text)
        except ValueError as err:
            raise argparse.ArgumentTypeError(str(err)) from None
        if low is not None and np.any(values < low) or high is not None and np.any(values > high):
            raise argparse.ArgumentTypeError(f"values must lie in [{low:g}, {high:g}]")
        return values

    convert.__name__ = f"range for {option}"
    return convert


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
        type=_value_range("--visibility", 0.0, 1.0),
        help="white-noise visibility v in [0, 1] of the strategy of eq. (6): the constraint "
        "is <B> = v eta^Q (or the correlators v E with --constraint correlators); also "
        "writes certified and achievable key rates. START:STOP:NUM or one value",
    )
    p.add_argument(
        "--constraint",
        choices=["bell", "correlators"],
        default="bell",
        help="with --visibility: constrain the Bell value (default) or all four correlators "
        "(Props. 4 and 6)",
    )
    p.add_argument(
        "--kind",
        choices=["key", "global"],
        default="key",
        help="key: H(A|X=x,E) (default); global: H(AB|X=x,Y=y,E) (not with --visibility)",
    )
    p.add_argument("--x", type=int, choices=[0, 1], default=0, help="Alice's key input (0)")
    p.add_argument("--y", type=int, choices=[0, 1], default=0, help="Bob's input, global (0)")
    p.add_argument(
        "--m", type=_positive_int, default=8, help="Gauss-Radau nodes, 2..40 (m - 1 SDPs per point)"
    )
    p.add_argument(
        "--level", type=int, choices=[1, 2], default=2, help="relaxation level (default 2)"
    )
    p.add_argument(
        "--eve-pairs",
        action="store_true",
        help="add every product of two Eve letters (full NPA level 2; slower)",
    )
    p.add_argument(
        "--solver",
        choices=["CLARABEL", "SCS", "MOSEK"],
        default="CLARABEL",
        help="cvxpy solver (default CLARABEL; MOSEK only if installed and licensed)",
    )
    p.add_argument(
        "--processes",
        type=_positive_int,
        default=None,
        help="worker processes for the points (default: one per CPU core, >= 4 points each)",
    )
    p.add_argument(
        "--max-correction",
        type=float,
        default=1e-4,
        help="largest certificate correction (bits) accepted per point (default 1e-4)",
    )
    p.add_argument("--out", required=True, help="output file: FILE.nc or FILE.zarr")
    p.add_argument("--no-progress", action="store_true", help="do not show the progress bar")
    p.set_defaults(run=_run_bff, parser=p)


def _angle_type(option: str) -> Callable[[str], float]:
    def convert(text: str) -> float:
        try:
            return parse_angle(text)
        except ValueError as err:
            raise argparse.ArgumentTypeError(str(err)) from None

    convert.__name__ = f"angle for {option}"
    return convert


def _run_bff(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from jaxbell import bff
    from jaxbell.dataset import check_writable, save_dataset

    try:
        check_writable(args.out, "--out")
    except (ValueError, PermissionError) as err:
        parser.error(str(err))
    if args.m < 2 or args.m > 40:
        parser.error(f"--m must lie in [2, 40], got {args.m}")
    if args.max_correction <= 0:
        parser.error("--max-correction must be positive")
    if args.visibility is not None and args.kind != "key":
        parser.error("--visibility computes key rates: use it with --kind key")
    common = dict(
        m=args.m,
        level=args.level,
        eve_pairs=args.eve_pairs,
        solver=args.solver,
        processes=args.processes,
        progress=False if args.no_progress else None,
        max_correction=args.max_correction,
    )
    t0 = time.perf_counter()
    try:
        if args.visibility is not None:
            ds = bff.bff_key_rate_curve(
                args.theta,
                args.phi,
                args.omega,
                args.visibility,
                x=args.x,
                constraint=args.constraint,
                **common,
            )
            column = "certified_key_rate"
        else:
            res = bff.bff_entropy(
                args.theta,
                args.phi,
                args.omega,
                args.bell_value,
                kind=args.kind,
                x=args.x,
                y=args.y,
                **common,
            )
            ds = res.to_dataset(dim="bell_value")
            column = "certified_entropy"
    except ImportError as err:
        parser.error(str(err))
    ds.attrs["history"] += f"; command: jaxbell {' '.join(args.argv)}"
    save_dataset(ds, args.out, name="--out")
    elapsed = time.perf_counter() - t0
    values = ds[column].values
    ok = int(np.sum(ds.bff_status.values == 0))
    print(
        f"wrote {args.out}: {values.size} point(s), {ok} certified, in {elapsed:.1f} s; "
        f"{column} from {np.nanmin(values) if ok else float('nan'):.6f} "
        f"to {np.nanmax(values) if ok else float('nan'):.6f} bits"
    )
    return 0


#: subcommand builders; later capabilities register theirs here
SUBCOMMANDS: list[Callable] = [_add_grid, _add_bff]


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
