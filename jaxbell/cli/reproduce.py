"""``jaxbell reproduce``: the paper end to end (claims table, datasets, figures)."""

from __future__ import annotations

import argparse
import time

from jaxbell.cli._args import (
    command_line,
    nonnegative_int,
)


def add(sub) -> None:
    p = sub.add_parser(
        "reproduce",
        help="reproduce the paper end to end: claims table, datasets and figures",
        description=(
            "Reproduce Wooltorton, Brown & Colbeck (PRL 132, 210802, 2024) on the CPU: check "
            "every claim of Propositions 1-6 against a computed value (claims.md, claims.json), "
            "compute the grids behind Figures 1 and 2 and the trade-off between nonlocality and "
            "key that the paper only bounds (netCDF), and draw the figures (PNG). The default "
            "run takes about a minute on two CPU cores, --quick 17-25 s. Exits with "
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
        help="smaller grids, fewer epsilon values, restarts and spot checks (17-25 s on two cores)",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the results of an earlier run in --out (a folder with files in it is "
        "an error without it; a new or empty folder needs none; only reproduce's own files "
        "are replaced, nothing else in the folder is removed)",
    )
    p.add_argument("--pdf", action="store_true", help="also write the figures as PDF")
    p.add_argument(
        "--seed", type=nonnegative_int, default=0, help="seed of every search (default: 0)"
    )
    p.add_argument(
        "--no-progress",
        action="store_true",
        help="no progress bar: one line per stage on stderr instead",
    )
    p.add_argument(
        "--quiet",
        action="store_true",
        help="nothing on stderr (no progress bar, no stage lines; warnings still show); the "
        "claims summary is still printed on stdout",
    )
    p.set_defaults(run=run, parser=p)


def _check_out_dir(path: str, parser: argparse.ArgumentParser, overwrite: bool = False) -> None:
    """Fail before computing unless --out is a folder, or can be created as one, and files
    can be written in it (a temporary file is created and removed), and, without
    --overwrite, is new or empty."""
    from pathlib import Path

    from jaxbell.store import check_folder_writable

    out = Path(path)
    if out.exists() and not out.is_dir():
        parser.error(f"--out {path!r} is a file; give a folder")
    existing = out
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        parser.error(
            f"--out {path!r}: {str(existing)!r} is a file, so the folder cannot be created there"
        )
    try:
        check_folder_writable(out, "--out", folder=existing)
    except ValueError as err:
        parser.error(str(err))
    if not overwrite and out.is_dir():
        held = sorted(p.name for p in out.iterdir())
        if held:
            shown = ", ".join(held[:4]) + (f" and {len(held) - 4} more" if len(held) > 4 else "")
            parser.error(
                f"--out {path!r} already holds files ({shown}); add --overwrite to replace "
                "the results of an earlier run, or give a new or empty folder"
            )


def run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from jaxbell.reproduce import reproduce

    _check_out_dir(args.out, parser, overwrite=args.overwrite)
    t0 = time.perf_counter()
    report = reproduce(
        args.out,
        quick=args.quick,
        pdf=args.pdf,
        progress=False if args.no_progress or args.quiet else None,
        quiet=args.quiet,
        seed=args.seed,
        history=f"command: {command_line(args)}",
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
