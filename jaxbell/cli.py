"""The ``jaxbell`` command line.

``jaxbell grid``       a dense (theta, phi, omega) grid to a netCDF/zarr file
``jaxbell rate-curve`` the DI entropy below the quantum bound over the Bell value (one tuple)
``jaxbell noise``      key / randomness rates under white noise and critical visibilities
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


# --- rates below the quantum bound: rate-curve and noise ---------------------------------------


def _angle_type(option: str) -> Callable[[str], float]:
    def convert(text: str) -> float:
        try:
            return parse_angle(text)
        except ValueError as err:
            raise argparse.ArgumentTypeError(str(err)) from None

    convert.__name__ = f"angle for {option}"
    return convert


def _nonneg_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}")
    return value


def _visibility_range(text: str) -> np.ndarray:
    """``START:STOP:NUM`` or one value, all in [0, 1]."""
    parts = text.split(":")
    try:
        if len(parts) == 1:
            values = np.array([float(parts[0])])
        elif len(parts) == 3:
            num = int(parts[2])
            if num < 2:
                raise argparse.ArgumentTypeError(f"{text!r}: a range needs NUM >= 2")
            values = np.linspace(float(parts[0]), float(parts[1]), num)
        else:
            raise argparse.ArgumentTypeError(f"{text!r}: write START:STOP:NUM or one value")
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: write e.g. 0.8:1:41 or 0.95") from None
    if not np.all(np.isfinite(values)) or np.any(values < 0) or np.any(values > 1):
        raise argparse.ArgumentTypeError(f"{text!r}: visibilities must lie in [0, 1]")
    return values


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
        "multi-start optax search over qubit strategies; see jaxbell.qubit.QubitOptions",
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
        type=_nonneg_int,
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


def _check_out(path: str, parser: argparse.ArgumentParser) -> None:
    """--out must be writable and end in .nc/.nc4/.h5 (netCDF) or .zarr, checked before work."""
    from pathlib import Path

    from jaxbell.dataset import check_writable

    if Path(path).suffix not in (".nc", ".nc4", ".h5", ".zarr"):
        parser.error(f"--out={path!r}: use a .nc (netCDF) or .zarr file name")
    try:
        check_writable(path, "--out")
    except (ValueError, PermissionError) as err:
        parser.error(str(err))


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


def _add_rate_curve(sub) -> None:
    p = sub.add_parser(
        "rate-curve",
        help="DI entropy below the quantum bound over the Bell value, for one tuple",
        description=(
            "Compute the device-independent entropy H(A|X=x,E) (--kind key) or "
            "H(AB|X=x,Y=y,E) (--kind global) of one tuple of eq. (2) as a function of the "
            "observed Bell value, from eta^L to |eta^Q| (eq. 3, 5), with explicit qubit "
            "strategies (Jordan's lemma) and their convex envelope: an upper bound on the "
            "infimum, tight when the optimisation is global. Writes a labelled dataset with "
            "entropy, the supporting lines (slope, intercept), the optimal attack (a mixture "
            "of two qubit strategies), the discretisation gap, the spread between random "
            "starts and a status per point."
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
        help="number of Bell values, evenly spaced from eta^L to |eta^Q| (default 64, >= 2)",
    )
    p.add_argument("--out", required=True, help="output file: FILE.nc (netCDF) or FILE.zarr")
    p.add_argument("--no-progress", action="store_true", help="do not show the progress bar")
    _add_qubit_options(p)
    p.set_defaults(run=_run_rate_curve, parser=p)


def _run_rate_curve(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from jaxbell.dataset import save_dataset
    from jaxbell.rates import rate_curve

    _check_out(args.out, parser)
    if args.num < 2:
        parser.error(f"--num must be >= 2, got {args.num}")
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
            options=_qubit_options(args),
            progress=False if args.no_progress else None,
        )
    except (ValueError, TypeError) as err:
        parser.error(_as_option_message(err))
    ds.attrs["history"] += f"; command: jaxbell {' '.join(args.argv)}"
    save_dataset(ds, args.out, name="--out")
    bad = int((ds.curve_status != 0).sum())
    print(
        f"wrote {args.out}: {ds.sizes['bell_value']} Bell values in "
        f"[{float(ds.bell_value[0]):.6g}, {float(ds.bell_value[-1]):.6g}] in "
        f"{time.perf_counter() - t0:.1f} s; entropy at the top {float(ds.entropy[-1]):.6g} bit; "
        f"largest gap {ds.attrs.get('max_gap_bits', float('nan')):.2e} bit; "
        f"{bad} point(s) not converged"
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
            "strategies; also the critical visibilities (smallest v with a positive rate). "
            "Writes a labelled dataset over the coordinate visibility."
        ),
    )
    _add_tuple_options(p)
    p.add_argument(
        "--visibility",
        type=_visibility_range,
        default=np.linspace(0.8, 1.0, 41),
        help="START:STOP:NUM (both ends included) or one value, in [0, 1] (default 0.8:1:41)",
    )
    p.add_argument("--out", required=True, help="output file: FILE.nc (netCDF) or FILE.zarr")
    p.add_argument("--no-progress", action="store_true", help="do not show the progress bar")
    _add_qubit_options(p)
    p.set_defaults(run=_run_noise, parser=p)


def _run_noise(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from tqdm import tqdm

    import jaxbell as jb
    from jaxbell.dataset import labelled_dataset, save_dataset
    from jaxbell.qubit import QubitOptions, qubit_envelopes

    _check_out(args.out, parser)
    try:
        opts = QubitOptions.from_mapping(_qubit_options(args))
    except (ValueError, PermissionError, TypeError) as err:
        parser.error(_as_option_message(err))
    t0 = time.perf_counter()
    tpl = [(args.theta, args.phi, args.omega)]
    jobs = [("key", 0, 0), ("key", 1, 0)] + [("global", x, y) for x in (0, 1) for y in (0, 1)]
    with tqdm(jobs, desc="entropy envelopes", disable=True if args.no_progress else None) as bar:
        for kind, x, y in bar:  # computed once, then cached for the rates below
            qubit_envelopes(tpl, kind=kind, x=x, y=y, options=opts)
    v = args.visibility
    key = np.asarray(jb.noisy_key_rate(args.theta, args.phi, args.omega, v, options=opts))
    glob = np.asarray(jb.noisy_global_rate(args.theta, args.phi, args.omega, v, options=opts))
    crit = [
        float(jb.critical_visibility(args.theta, args.phi, args.omega, kind=k, options=opts))
        for k in ("key", "global")
    ]
    settings = {
        "theta": args.theta,
        "phi": args.phi,
        "omega": args.omega,
        "local_bound": float(jb.local_bound(args.theta, args.phi, args.omega)),
        "quantum_bound": float(jb.quantum_bound(args.theta, args.phi, args.omega)),
        "self_testing": bool(jb.is_self_testing(args.theta, args.phi, args.omega)),
        "method": "qubit",
        "dtype": "float64",
        **{f"option_{k}": val for k, val in vars(opts).items()},
        "elapsed_seconds": round(time.perf_counter() - t0, 3),
    }
    ds = labelled_dataset(
        {
            "noisy_key_rate": (("visibility",), key),
            "noisy_global_rate": (("visibility",), glob),
            "critical_visibility": (("kind",), np.array(crit)),
        },
        {"visibility": v, "kind": np.array(["key", "global"])},
        title="Key and global randomness rates of eq. (6) under white noise",
        settings=settings,
        history=f"jaxbell noise; command: jaxbell {' '.join(args.argv)}",
    )
    save_dataset(ds, args.out, name="--out")
    print(
        f"wrote {args.out}: {v.size} visibilities in {time.perf_counter() - t0:.1f} s; "
        f"critical visibility key {crit[0]:.6f}, global {crit[1]:.6f}"
    )
    return 0


#: subcommand builders; later capabilities register theirs here
SUBCOMMANDS: list[Callable] = [_add_grid, _add_rate_curve, _add_noise]


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
