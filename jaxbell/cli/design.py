"""``jaxbell design``: the best protocol over the whole family (jaxbell.rates.design)."""

from __future__ import annotations

import argparse

from jaxbell.cli._args import (
    Lazy,
    LazyChoices,
    add_overwrite,
    argtype,
    as_option_message,
    check_out,
    nonnegative_int,
    positive_float,
    positive_int,
    preprocessing_value,
    unit_interval,
)


def _in_range(text: str, option: str, low: float, high: float) -> float:
    """A number in (low, high]; the error names ``option``."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not low < value <= high:
        raise ValueError(f"{option} must lie in ({low:g}, {high:.6g}], got {text!r}")
    return value


def _objectives() -> tuple[str, ...]:
    from jaxbell.rates.design import OBJECTIVES

    return tuple(OBJECTIVES)


def add(sub) -> None:
    p = sub.add_parser(
        "design",
        help="search the whole family for the most noise/loss-tolerant or highest-rate protocol",
        description=(
            "Optimise (theta, phi, omega) over the whole family of eq. (2), the device being "
            "the strategy of eq. (6) with white noise and detection efficiency: minimise the "
            "critical visibility or efficiency, or maximise the key rate (asymptotic, or "
            "finite-size at --rounds), optionally with max CHSH <= --max-chsh and key rate at "
            "v = 1 >= --min-key-rate. optax on envelope-theorem gradients of the explicit qubit "
            "attack from many starts (the CHSH member among them), the best asymmetric-CHSH "
            "member beside it, then the optimum and the CHSH member certified by BFF. Writes a "
            "labelled dataset; see jaxbell.rates.design."
        ),
    )
    p.add_argument(
        "--objective",
        metavar="OBJECTIVE",
        choices=LazyChoices(_objectives),
        default="critical_visibility",
        help=Lazy(
            lambda: f"what to optimise: {', '.join(_objectives())} (default critical_visibility)"
        ),
    )
    p.add_argument(
        "--visibility",
        type=unit_interval("--visibility", closed=True),
        default=1.0,
        help="device visibility in (0, 1] (default 1)",
    )
    p.add_argument(
        "--efficiency",
        type=unit_interval("--efficiency", closed=True),
        default=1.0,
        help="detection efficiency in (0, 1] (default 1)",
    )
    p.add_argument(
        "--rounds",
        type=positive_float,
        default=None,
        help="n, for --objective finite_key_rate",
    )
    p.add_argument(
        "--bob-key",
        choices=["none", "0", "1", "aligned"],
        default="none",
        help="Bob's key input: none (the paper's protocol, key from his best test "
        "input; default), aligned (a key-only input), 0 or 1",
    )
    p.add_argument(
        "--preprocessing",
        type=preprocessing_value,
        default=0.0,
        help="Alice's flip probability in [0, 0.5], or 'optimal' (the family and p searched "
        "together; objectives critical_visibility, critical_efficiency, key_rate) (default 0)",
    )
    p.add_argument(
        "--max-chsh",
        type=argtype(lambda t: _in_range(t, "--max-chsh", 2.0, 2 * 2**0.5), "max CHSH"),
        default=None,
        help="require max CHSH of the strategy <= this value, in (2, 2 sqrt 2]",
    )
    p.add_argument(
        "--min-key-rate",
        type=argtype(lambda t: _in_range(t, "--min-key-rate", 0.0, 1.0), "key rate"),
        default=None,
        help="require the key rate at v = 1 (eq. 1) >= this value, in (0, 1]",
    )
    p.add_argument(
        "--starts",
        type=positive_int,
        default=8,
        help="random starts besides the CHSH member (default 8)",
    )
    p.add_argument("--steps", type=positive_int, default=40, help="Adam steps (default 40)")
    p.add_argument("--seed", type=nonnegative_int, default=0, help="seed of the starts (default 0)")
    p.add_argument("--no-certify", action="store_true", help="skip the BFF certification")
    p.add_argument(
        "--no-compare", action="store_true", help="skip the asymmetric-CHSH subfamily search"
    )
    p.add_argument("--out", required=True, help="output file: FILE.nc (netCDF) or FILE.zarr")
    add_overwrite(p)
    p.add_argument("--no-progress", action="store_true", help="do not show the progress bar")
    p.set_defaults(run=run, parser=p)


def run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from jaxbell.rates.design import optimise_protocol
    from jaxbell.store import save_dataset

    check_out(args.out, parser, overwrite=args.overwrite)
    bob_key = {"none": None, "aligned": "aligned", "0": 0, "1": 1}[args.bob_key]
    try:
        res = optimise_protocol(
            objective=args.objective,
            visibility=args.visibility,
            efficiency=args.efficiency,
            rounds=args.rounds,
            bob_key=bob_key,
            preprocessing=args.preprocessing,
            max_chsh=args.max_chsh,
            min_key_rate=args.min_key_rate,
            seed=args.seed,
            starts=args.starts,
            steps=args.steps,
            certify=not args.no_certify,
            compare=not args.no_compare,
            progress=False if args.no_progress else None,
        )
    except (ValueError, TypeError, ImportError) as err:
        parser.error(as_option_message(err, parser))
    ds = res.to_dataset()
    ds.attrs["history"] += f"; command: jaxbell {' '.join(args.argv)}"
    save_dataset(ds, args.out, name="--out", overwrite=args.overwrite)
    angles = ", ".join(f"{a:.6f}" for a in res.angles)
    print(
        f"wrote {args.out}: best {args.objective} {res.value:.6f} (attack), "
        f"{res.certified:.6f} (certified) at ({angles}); CHSH member {res.chsh_value:.6f} / "
        f"{res.chsh_certified:.6f}; {res.evaluations} evaluations in {res.seconds:.0f} s "
        f"({res.status})"
    )
    return 0
