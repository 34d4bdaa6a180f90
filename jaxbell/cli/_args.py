"""Shared argument helpers of the ``jaxbell`` command: parsers of angles, ranges and numbers
(argparse types whose errors name the option), and the option groups several subcommands
share (tuple, method, qubit, bff, protocol, --out/--overwrite).

A leaf module: it imports no subcommand module (each subcommand imports from here), and
nothing that imports jax: the parser is built and a usage error or ``--version`` answered in
a fraction of a second. What the registry of backends supplies (``--method``'s choices and
help) is looked up when it is needed (:class:`Lazy`).
"""

from __future__ import annotations

import argparse
import ast
import math
import operator
import re
import shlex
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

__all__ = [
    "HelpFormatter",
    "Lazy",
    "LazyChoices",
    "Parser",
    "MAX_RANGE_POINTS",
    "RANGE_HELP",
    "add_bff_options",
    "add_method_option",
    "add_overwrite",
    "add_protocol_options",
    "add_qubit_options",
    "add_tuple_options",
    "angle_type",
    "argtype",
    "as_option_message",
    "bff_options",
    "bob_key_value",
    "check_out",
    "command_line",
    "record_command",
    "efficiency_value",
    "flip_probability",
    "int_at_least",
    "method_options",
    "methods",
    "nonnegative_int",
    "one_value",
    "parse_angle",
    "parse_range",
    "positive_float",
    "positive_int",
    "preprocessing_value",
    "qubit_options",
    "range_type",
    "unit_interval",
    "value_range",
    "visibility_range",
]


class Lazy:
    """A help string computed when help is printed (``--help``), never at start-up."""

    def __init__(self, make: Callable[[], str]):
        self._make = make

    def __str__(self) -> str:
        return self._make()

    def strip(self) -> str:
        return str(self).strip()


class LazyChoices(Sequence):
    """argparse ``choices`` looked up on first use (membership, listing in a message)."""

    def __init__(self, make: Callable[[], Sequence[str]]):
        self._make = make

    def _items(self) -> tuple[str, ...]:
        return tuple(self._make())

    def __getitem__(self, i):
        return self._items()[i]

    def __len__(self) -> int:
        return len(self._items())

    def __contains__(self, value) -> bool:
        return value in self._items()

    def __iter__(self):
        return iter(self._items())


class HelpFormatter(argparse.HelpFormatter):
    """argparse's formatter, with :class:`Lazy` help strings."""

    def _get_help_string(self, action) -> str:
        return str(action.help)


class Parser(argparse.ArgumentParser):
    """The ``jaxbell`` command's parsers (every subcommand's too): :class:`HelpFormatter`."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)


def _backends():
    from jaxbell.rates import backends

    return backends


_BINOPS = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
}


_UNARY = {ast.UAdd: operator.pos, ast.USub: operator.neg}


_EXAMPLES = {"angle": "0, 1.2, pi/2, 3pi/4", "value": "0.95, 1, 1e-3"}


def parse_angle(text: str, noun: str = "angle") -> float:
    """An angle written like ``0``, ``-1.5``, ``pi``, ``2pi``, ``3pi/4``, ``pi/2 - 0.1``, radians.

    Numbers, ``pi`` (implicit multiplication: ``2pi``), ``+ - * /`` and parentheses; no other
    names or calls (parsed with :mod:`ast`, never ``eval``). ``noun`` ("angle" or "value") is
    what messages call it.
    """
    src = re.sub(r"(\d|\))\s*(pi|\()", r"\1*\2", text.strip().lower())
    examples = _EXAMPLES.get(noun, _EXAMPLES["angle"])
    try:
        tree = ast.parse(src, mode="eval")
    except SyntaxError:
        raise ValueError(f"cannot read {noun} {text!r}; write e.g. {examples}") from None

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
        raise ValueError(
            f"cannot read {noun} {text!r}: write a number (e.g. {examples}); only numbers, "
            "pi, + - * / and () are understood"
        )

    try:
        value = ev(tree)
    except ZeroDivisionError:
        raise ValueError(f"{noun} {text!r} divides by zero") from None
    if not math.isfinite(value):
        raise ValueError(f"{noun} {text!r} is not finite")
    return value


#: Most points of one range (2**24: 128 MiB of float64 per axis, and a grid of such axes is
#: far beyond any machine); larger NUM is an error before anything is allocated.
MAX_RANGE_POINTS = 2**24


def parse_range(text: str, noun: str = "angle") -> np.ndarray:
    """``START:STOP:NUM`` -> ``np.linspace(START, STOP, NUM)`` (both ends included), or one angle.

    START < STOP and 2 <= NUM <= :data:`MAX_RANGE_POINTS` are required for a range; a single
    angle gives a length-1 axis.
    """
    parts = text.split(":")
    if len(parts) == 1:
        return np.array([parse_angle(parts[0], noun)])
    example = "0:2pi:256" if noun == "angle" else "0.9:1:11"
    if len(parts) != 3:
        raise ValueError(f"{text!r}: write START:STOP:NUM (e.g. {example}) or a single {noun}")
    start, stop = parse_angle(parts[0], noun), parse_angle(parts[1], noun)
    try:
        num = int(parts[2])
    except ValueError:
        raise ValueError(f"{text!r}: NUM must be a whole number of points") from None
    if num < 2:
        raise ValueError(f"{text!r}: a range needs NUM >= 2 points (one {noun} needs no colons)")
    if num > MAX_RANGE_POINTS:
        raise ValueError(
            f"{text!r}: NUM = {num:,} points is more than one range may have "
            f"({MAX_RANGE_POINTS:,}); for huge grids use --out FILE.zarr (out of core) or "
            "--reduce with fewer points per axis"
        )
    if not start < stop:
        raise ValueError(f"{text!r}: START must be below STOP (got {start:g} >= {stop:g})")
    return np.linspace(start, stop, num)


def argtype(parse: Callable[[str], Any], what: str) -> Callable[[str], Any]:
    """An argparse ``type`` from a parser that raises ValueError with a message for the user
    (argparse then reports it against the option)."""

    def convert(text: str):
        try:
            return parse(text)
        except ValueError as err:
            raise argparse.ArgumentTypeError(str(err)) from None

    convert.__name__ = what
    return convert


def range_type(option: str) -> Callable[[str], np.ndarray]:
    return argtype(parse_range, f"range for {option}")


def angle_type(option: str) -> Callable[[str], float]:
    return argtype(parse_angle, f"angle for {option}")


def value_range(option: str, low: float | None = None, high: float | None = None):
    """START:STOP:NUM or one number (pi understood), optionally checked against [low, high]."""

    lo = "-inf" if low is None else f"{low:g}"
    hi = "inf" if high is None else f"{high:g}"

    def parse(text: str) -> np.ndarray:
        if text.strip().lower() in ("nan", "inf", "-inf", "+inf"):
            raise ValueError(f"{option} must be a number in [{lo}, {hi}], got {text!r}")
        values = parse_range(text, "value")
        if (low is not None and np.any(values < low)) or (
            high is not None and np.any(values > high)
        ):
            raise ValueError(f"{text!r}: {option} values must lie in [{lo}, {hi}]")
        return values

    return argtype(parse, f"range for {option}")


def one_value(option: str, low: float | None = None, high: float | None = None):
    """One number in [low, high] (pi understood), for an option that takes no range."""
    many = value_range(option, low, high)

    def parse(text: str) -> float:
        try:
            values = many(text)
        except argparse.ArgumentTypeError as err:
            raise ValueError(str(err)) from None
        if values.size != 1:
            raise ValueError(f"{option} takes one value here, not a range; got {text!r}")
        return float(values[0])

    return argtype(parse, f"number for {option}")


def int_at_least(low: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise ValueError(f"{text!r} is not a whole number") from None
        if value < low:
            raise ValueError(f"must be >= {low}, got {value}")
        return value

    return argtype(parse, f"whole number >= {low}")


positive_int = int_at_least(1)


nonnegative_int = int_at_least(0)


visibility_range = value_range("--visibility", 0.0, 1.0)


RANGE_HELP = (
    "START:STOP:NUM (NUM points, both ends included) or one angle, in radians; "
    "'pi' is understood: 0:2pi:256, -pi/2:pi/2:101, 5pi/6"
)


def add_grid_axes(p) -> None:
    """--theta, --phi, --omega: the three required axes of a (theta, phi, omega) grid."""
    for name in ("--theta", "--phi", "--omega"):
        p.add_argument(name, type=range_type(name), required=True, help=RANGE_HELP)


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}")
    return value


def check_out(out: str, parser: argparse.ArgumentParser, overwrite: bool = False) -> None:
    """Fail before computing when --out cannot be written as a netCDF / zarr file (a folder
    that does not exist or is not a folder, no file can be created there, or an existing
    FILE.nc / FILE.zarr without --overwrite)."""
    from jaxbell.store import check_writable

    if not out.endswith((".nc", ".nc4", ".h5", ".zarr")):
        parser.error(f"--out={out!r}: use a FILE.nc (netCDF) or FILE.zarr name")
    try:
        check_writable(out, "--out", overwrite=overwrite)
    except (ValueError, OSError) as err:
        parser.error(str(err))


def command_line(args) -> str:
    """The command that ran, as a shell would take it back: ``jaxbell grid --theta ...``."""
    return "jaxbell " + shlex.join(args.argv)


def record_command(ds, args):
    """Append the command to ``ds``'s history (every output says what made it)."""
    ds.attrs["history"] = ds.attrs.get("history", "") + f"; command: {command_line(args)}"
    return ds


def add_overwrite(p) -> None:
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing --out FILE.nc or FILE.zarr (an error without it; only a "
        "zarr store is ever removed, never another folder)",
    )


def as_option_message(err: Exception, parser: argparse.ArgumentParser | None = None) -> str:
    """A library message in the command line's words: ``options['name']`` and, with
    ``parser``, a keyword that is one of its options (``rounds is required``, ``bob_key=2``,
    ``visibility must ...``) written as the option (``--rounds``, ``--bob-key``)."""
    msg = re.sub(r"options\['(\w+)'\]", lambda m: "--" + m.group(1).replace("_", "-"), str(err))
    if parser is None:
        return msg
    for action in parser._actions:
        flags = [s for s in action.option_strings if s.startswith("--")]
        if not flags or action.dest in ("help", "version"):
            continue
        msg = re.sub(
            rf"(?<![\w-]){re.escape(action.dest)}(?=(=| must| is | needs| has | should))",
            flags[0],
            msg,
        )
    return msg


def add_tuple_options(p) -> None:
    for name in ("theta", "phi", "omega"):
        p.add_argument(
            f"--{name}",
            type=angle_type(f"--{name}"),
            required=True,
            help=f"{name} of eq. (2), radians; 'pi' is understood (e.g. 3pi/4, -pi/2, pi/2 - 0.01)",
        )


def add_qubit_options(p) -> None:
    g = p.add_argument_group(
        "optimisation (method qubit)",
        "multi-start optax search over qubit strategies; see jaxbell.rates.qubit.QubitOptions",
    )
    g.add_argument(
        "--directions",
        type=positive_int,
        default=64,
        help="slopes of supporting lines optimised per pass (default 64)",
    )
    g.add_argument(
        "--starts", type=positive_int, default=16, help="random starts per slope (default 16)"
    )
    g.add_argument(
        "--steps", type=positive_int, default=600, help="Adam steps per start (default 600)"
    )
    g.add_argument(
        "--refine",
        type=nonnegative_int,
        default=4,
        help="most refinement passes, each adding slopes where the hull is coarsest (default 4)",
    )
    g.add_argument(
        "--tol",
        type=positive_float,
        default=1e-4,
        help="target accuracy in bits: largest allowed gap between the hull and the tangent-"
        "line estimate; points above it are flagged (default 1e-4)",
    )
    g.add_argument("--seed", type=int, default=0, help="seed of the random starts (default 0)")


def qubit_options(args) -> dict:
    return {
        "directions": args.directions,
        "starts": args.starts,
        "steps": args.steps,
        "refine": args.refine,
        "tol": args.tol,
        "seed": args.seed,
    }


def add_method_option(p) -> None:
    """--method: the registered backends (jaxbell.rates.backends), each with its summary
    (looked up when needed; None, the default, is the first listed: :func:`methods`)."""

    def helps() -> str:
        backends = _backends()
        listed = backends.names(listed=True)
        out = [f"{name}: {backends.get(name).summary}" for name in listed]
        pair = backends.bracket(listed)
        if pair is not None:
            out.append(
                f'"--method {pair[0]} {pair[1]}": both, with the gap between them (the true '
                "value lies in between)"
            )
        return "; ".join(out)

    p.add_argument(
        "--method",
        nargs="+",
        metavar="METHOD",
        choices=LazyChoices(lambda: _backends().names(listed=True)),
        default=None,
        help=Lazy(helps),
    )


def methods(args) -> list[str]:
    """--method's backends, in order, without repeats (the first listed when not given)."""
    if args.method is None:
        return [_backends().names(listed=True)[0]]
    return list(dict.fromkeys(args.method))


def uses(methods, options_class) -> bool:
    """Whether a backend of ``methods`` takes ``options_class`` (its option group applies)."""
    backends = _backends()
    return any(backends.get(m).options_class is options_class for m in methods)


def add_bff_options(
    p, title: str = "certified bounds (method bff)", constraint_help: str = ""
) -> None:
    g = p.add_argument_group(
        title,
        "Brown-Fawzi-Fawzi Gauss-Radau + NPA SDPs solved with cvxpy; see "
        "jaxbell.rates.bff.BffOptions",
    )
    g.add_argument(
        "--m",
        type=positive_int,
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
        choices=["JAX", "CLARABEL", "SCS", "MOSEK"],
        default="JAX",
        help="SDP solver: JAX (default), jaxbell's batched interior-point method (all points x "
        "nodes in one batch; ~20x Clarabel's throughput on 2 CPUs), or a cvxpy solver "
        "(CLARABEL, SCS; MOSEK only if installed and licensed)",
    )
    g.add_argument(
        "--processes",
        type=positive_int,
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
        "certified 'full' relaxation)" + constraint_help,
    )


def bff_options(args, parser: argparse.ArgumentParser) -> dict:
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


def method_options(args, parser: argparse.ArgumentParser) -> tuple[object, dict | None]:
    """(method, options) for jaxbell.rates from --method and the option groups."""
    from jaxbell.rates.bff import BffOptions
    from jaxbell.rates.qubit import QubitOptions

    backends = _backends()
    chosen = methods(args)
    per = {}
    for m in chosen:  # each backend's options from its option group (none: defaults)
        kind = backends.get(m).options_class
        per[m] = (
            qubit_options(args)
            if kind is QubitOptions
            else bff_options(args, parser)
            if kind is BffOptions
            else None
        )
    if len(chosen) == 1:
        return chosen[0], per[chosen[0]]
    return chosen, per


def preprocessing_value(text: str):
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


def efficiency_value(text: str) -> float:
    """--efficiency: a detection efficiency in (0, 1]."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"--efficiency must lie in (0, 1], got {text!r}")
    return value


def bob_key_value(text: str):
    choices = {"none": None, "0": 0, "1": 1, "2": 2, "aligned": "aligned"}
    if text not in choices:
        raise argparse.ArgumentTypeError(
            f"--bob-key must be none, 0, 1 or aligned (2), got {text!r}"
        )
    return choices[text]


def add_protocol_options(p, *, full: bool = True) -> None:
    g = p.add_argument_group(
        "protocol and device (key rate)",
        "Bob's key input, Alice's noisy preprocessing, what the protocol tests and the "
        "detection efficiency; see jaxbell.noisy_key_rate",
    )
    g.add_argument(
        "--preprocessing",
        type=preprocessing_value,
        default=0.0,
        help="Alice flips each raw key bit with probability P in [0, 0.5] (Ho et al. 2020), "
        "or 'optimal' (maximised per point; costs about 20 rate evaluations) (default 0)",
    )
    if not full:
        return
    g.add_argument(
        "--bob-key",
        type=bob_key_value,
        default=None,
        help="Bob's key input: none (best of his test inputs, the paper's protocol; default), "
        "0, 1, or aligned (2: a key-only input measuring Alice's key observable)",
    )
    g.add_argument(
        "--efficiency",
        type=efficiency_value,
        default=1.0,
        help="detection efficiency in (0, 1] of both parties, a no-click binned to outcome 0 "
        "(default 1)",
    )
    g.add_argument(
        "--critical-efficiency",
        action="store_true",
        help="also compute the critical detection efficiency at every visibility (bisection)",
    )


def unit_interval(option: str, *, closed: bool = False):
    """argparse type: a number in (0, 1), or (0, 1] with ``closed``; the error names ``option``."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not (0.0 < value < 1.0 or (closed and value == 1.0)):
            raise ValueError(f"{option} must lie in (0, 1{']' if closed else ')'}, got {text!r}")
        return value

    return argtype(parse, f"number for {option}")


def flip_probability(text: str) -> float:
    """--preprocessing: a fixed flip probability in [0, 0.5] (the protocol fixes it)."""
    value = preprocessing_value(text)
    if value == "optimal":
        raise argparse.ArgumentTypeError(
            "--preprocessing must be a flip probability in [0, 0.5] here (fixed before the "
            "protocol runs), got 'optimal'"
        )
    return value
