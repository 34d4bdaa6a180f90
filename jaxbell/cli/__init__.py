"""The ``jaxbell`` command line.

``jaxbell grid``       a dense (theta, phi, omega) grid to a netCDF file, a resumable zarr
                      store (out of core), or reduced on the devices (``--reduce``)
``jaxbell reproduce``  the paper end to end: claims table, datasets, figures
``jaxbell search``     an extremal or prescribed tuple under rate constraints
``jaxbell rate-curve`` the DI entropy below the quantum bound over the Bell value (one tuple)
``jaxbell noise``      key / randomness rates under white noise and critical visibilities
``jaxbell bff``        certified lower bounds on DI entropies / key rates (SDP)
``jaxbell finite``     finite-size key rates vs rounds (entropy accumulation, certified)
``jaxbell design``     the best protocol over the whole family
``jaxbell device``     the best lossy two-qubit device for a Bell test (issue 22)
``jaxbell --version``  the version

One module per subcommand (``add(sub)`` registers its parser, ``run(args, parser)`` runs it)
and one leaf module of shared argument helpers, :mod:`jaxbell.cli._args`.

Every subcommand runs in float64 (JAX's x64 mode is switched on here, never at import).
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
from collections.abc import Callable, Sequence

from jaxbell._version import __version__
from jaxbell.cli import (
    bff,
    design,
    device,
    finite,
    grid,
    noise,
    rate_curve,
    reproduce,
    search,
    thresholds,
)
from jaxbell.cli._args import Parser, parse_angle, parse_range

__all__ = ["main", "parse_angle", "parse_range"]

#: subcommand builders, in the order of ``jaxbell --help``; a new subcommand is a module with
#: ``add(sub)`` and ``run(args, parser)``, listed here
SUBCOMMANDS: list[Callable] = [
    grid.add,
    reproduce.add,
    search.add,
    rate_curve.add,
    noise.add,
    bff.add,
    finite.add,
    design.add,
    device.add,
    thresholds.add,
]


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="jaxbell",
        description=(
            "jaxbell: the Bell family B_theta,phi,omega of Wooltorton, Brown & Colbeck "
            "(PRL 132, 210802, 2024) on dense grids, with device-independent rates."
        ),
    )
    parser.add_argument("--version", action="version", version=f"jaxbell {__version__}")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND", parser_class=Parser)
    for add in SUBCOMMANDS:
        add(sub)
    for command in sub.choices.values():  # every subcommand takes --quiet
        if not any(a.dest == "quiet" for a in command._actions):
            command.add_argument(
                "--quiet",
                action="store_true",
                help="nothing on stderr but warnings and errors: no progress bars, no log lines",
            )
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
    if args.quiet and hasattr(args, "no_progress"):
        args.no_progress = True
    _configure_logging(quiet=args.quiet)
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
    """A handler writing to whatever ``sys.stderr`` is when a record is logged, through tqdm's
    writer (a line logged while a progress bar runs goes above the bar, not into it)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            from tqdm import tqdm

            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:  # noqa: BLE001 - logging must never raise
            self.handleError(record)

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):  # StreamHandler.__init__ assigns it; stderr is looked up instead
        pass


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
