"""``jaxbell finite``: finite-size key rates by entropy accumulation (jaxbell.rates.finite)."""

from __future__ import annotations

import argparse
import time

import numpy as np

from jaxbell._text import counted
from jaxbell.cli._args import (
    LazyChoices,
    add_bff_options,
    add_overwrite,
    add_tuple_options,
    argtype,
    as_option_message,
    bff_options,
    check_out,
    efficiency_value,
    flip_probability,
    one_value,
    positive_float,
    record_command,
    unit_interval,
    uses,
)


def parse_rounds(text: str) -> np.ndarray:
    """``START:STOP:NUM`` (geometric: log-spaced, both ends included), a comma list, or one n."""
    parts = text.split(":")
    try:
        if len(parts) == 1:
            values = np.array([float(v) for v in text.split(",")])
        elif len(parts) == 3:
            start, stop, num = float(parts[0]), float(parts[1]), int(parts[2])
            if num < 2:
                raise ValueError(f"{text!r}: a range needs NUM >= 2 (one n needs no colons)")
            if not 1 <= start < stop:
                raise ValueError(f"{text!r}: need 1 <= START < STOP")
            values = np.geomspace(start, stop, num)
        else:
            raise ValueError(f"{text!r}: write START:STOP:NUM (e.g. 1e5:1e12:30), N1,N2,... or N")
    except ValueError as err:
        if "NUM" in str(err) or "START" in str(err) or "write" in str(err):
            raise
        raise ValueError(f"{text!r}: not a number of rounds ({err})") from None
    if not np.all(np.isfinite(values)) or np.any(values < 1):
        raise ValueError(f"{text!r}: every n must be finite and >= 1")
    return np.round(values)  # whole numbers of rounds


def _with_tangents() -> tuple[str, ...]:
    """The backends with affine bounds (--method's choices; the first is the default)."""
    from jaxbell.rates import backends

    return tuple(backends.with_tangents())


def add(sub) -> None:
    p = sub.add_parser(
        "finite",
        help="finite-size key rate vs number of rounds (entropy accumulation, certified)",
        description=(
            "Finite-size DIQKD key rate of the device (the strategy of eq. (6) of the tuple "
            "under white noise and detection efficiency, or a behaviour from --behaviour) "
            "after n rounds, secure against general attacks: the entropy accumulation theorem "
            "(Dupuis & Fawzi 2019, as in Arnon-Friedman et al. 2018) with a certified "
            "min-tradeoff function from the dual of the Brown-Fawzi-Fawzi SDPs (--method "
            "bff; --method qubit gives an uncertified estimate). The test probability, the "
            "EAT's alpha and the tangent point are optimised per n. Writes a labelled dataset "
            "over the coordinate rounds; see jaxbell.rates.finite."
        ),
    )
    add_tuple_options(p)
    p.add_argument(
        "--rounds",
        type=argtype(parse_rounds, "rounds"),
        default=np.round(np.geomspace(1e5, 1e12, 30)),
        help="START:STOP:NUM log-spaced (both ends included; rounded to whole numbers), "
        "N1,N2,... or N (default 1e5:1e12:30)",
    )
    p.add_argument(
        "--visibility",
        type=one_value("--visibility", 0.0, 1.0),
        default=1.0,
        help="white-noise visibility of the device in [0, 1] (default 1)",
    )
    p.add_argument(
        "--efficiency",
        type=efficiency_value,
        default=1.0,
        help="detection efficiency in (0, 1] of both parties (default 1)",
    )
    p.add_argument(
        "--behaviour",
        default=None,
        metavar="FILE.npy",
        help="measured behaviour p[a, b, x, y] (shape (2, 2, 2, 3) with --bob-key aligned, "
        "(2, 2, 2, 2) or (2, 2, 2, 3) otherwise) instead of the device model; the tuple "
        "then names the Bell expression tested",
    )
    p.add_argument(
        "--bob-key",
        choices=["none", "0", "1", "aligned"],
        default="none",
        help="Bob's key input: none (the paper's protocol: his test input with the smaller "
        "error-correction cost; the default of every subcommand and of jaxbell.Protocol), "
        "aligned (a key-only input measuring Alice's key observable, Pironio et al. 2009; "
        "a --behaviour must then have shape (2, 2, 2, 3)), or 0 or 1",
    )
    p.add_argument("--x", type=int, choices=[0, 1], default=0, help="Alice's key input (default 0)")
    p.add_argument(
        "--preprocessing",
        type=flip_probability,
        default=0.0,
        help="Alice flips each key bit with probability P in [0, 0.5] (default 0)",
    )
    p.add_argument(
        "--eps-sec",
        type=unit_interval("--eps-sec"),
        default=1e-10,
        help="soundness (security parameter) in (0, 1) (default 1e-10)",
    )
    p.add_argument(
        "--eps-com",
        type=unit_interval("--eps-com"),
        default=1e-2,
        help="completeness: largest abort probability of the honest devices (default 1e-2)",
    )
    p.add_argument(
        "--test-probability",
        type=unit_interval("--test-probability"),
        default=None,
        help="fix the test-round probability gamma in (0, 1) (default: optimised per n)",
    )
    p.add_argument(
        "--ec-efficiency",
        type=positive_float,
        default=1.0,
        help="error-correction efficiency factor f >= 1 (leak f n H(A|B); default 1)",
    )
    p.add_argument(
        "--method",
        metavar="{bff,qubit}",
        choices=LazyChoices(_with_tangents),
        default=None,
        help="bff: certified min-tradeoff functions (default); qubit: the qubit attack's "
        "supporting lines, an UNCERTIFIED estimate (constraint bell only)",
    )
    p.add_argument(
        "--min-rounds", action="store_true", help="also find the smallest n with positive key"
    )
    p.add_argument("--out", required=True, help="output file: FILE.nc (netCDF) or FILE.zarr")
    add_overwrite(p)
    p.add_argument("--no-progress", action="store_true", help="do not show the progress bars")
    add_bff_options(p, title="certified min-tradeoff functions (method bff)")
    p.set_defaults(run=run, parser=p)


def run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from jaxbell._precision import x64_scope
    from jaxbell.rates import finite
    from jaxbell.rates.bff import BffOptions
    from jaxbell.rates.protocol import device_behaviour
    from jaxbell.store import save_dataset

    check_out(args.out, parser, overwrite=args.overwrite)
    if args.method is None:
        args.method = _with_tangents()[0]
    if args.ec_efficiency < 1:
        parser.error(f"--ec-efficiency must be >= 1, got {args.ec_efficiency}")
    bob_key = {"none": None, "aligned": 2, "0": 0, "1": 1}[args.bob_key]
    tup = (args.theta, args.phi, args.omega)
    if args.behaviour is not None:  # every check of the data before any SDP
        from jaxbell.rates.protocol import check_behaviour

        try:
            beh = np.load(args.behaviour)
        except (OSError, ValueError) as err:
            parser.error(f"--behaviour: cannot read {args.behaviour!r} as a .npy array ({err})")
        try:
            beh = np.asarray(check_behaviour(beh, "--behaviour"), dtype=np.float64)
        except (ValueError, TypeError) as err:
            parser.error(str(err))
        if beh.shape not in ((2, 2, 2, 2), (2, 2, 2, 3)):
            parser.error(
                f"--behaviour must hold one behaviour p[a, b, x, y] of shape (2, 2, 2, 2) or "
                f"(2, 2, 2, 3); {args.behaviour!r} has shape {beh.shape}"
            )
        if bob_key == 2 and beh.shape[-1] != 3:
            parser.error(
                f"--bob-key aligned needs Bob's key-only input y = 2 in --behaviour (shape "
                f"(2, 2, 2, 3)); {args.behaviour!r} has shape {beh.shape}: leave --bob-key out "
                "(the paper's protocol) or give --bob-key 0 or 1"
            )
    else:
        with x64_scope():
            beh = np.asarray(
                device_behaviour(
                    *tup,
                    visibility=args.visibility,
                    efficiency=args.efficiency,
                    bob_key=bob_key if bob_key == 2 else None,
                    x=args.x,
                )
            )
    options = None
    if uses([args.method], BffOptions):
        options = bff_options(args, parser)
        options.pop("constraint")
    t0 = time.perf_counter()
    common = {
        "eps_sec": args.eps_sec,
        "eps_com": args.eps_com,
        "test_probability": args.test_probability,
        "bell": tup,
        "constraint": args.constraint,
        "x": args.x,
        "bob_key": bob_key,
        "preprocessing": args.preprocessing,
        "error_correction_efficiency": args.ec_efficiency,
    }
    try:
        mtf = finite.min_tradeoff_functions(
            beh,
            bell=tup,
            constraint=args.constraint,
            x=args.x,
            preprocessing=args.preprocessing,
            method=args.method,
            options=options,
        )
        ds = finite.finite_rate_curve(
            beh,
            args.rounds,
            min_tradeoff=mtf,
            options=options,  # recorded: the min-tradeoff functions were computed with them
            progress=False if args.no_progress else None,
            **common,
        )
        n_min = None
        if args.min_rounds:
            n_min, code = finite.min_rounds(beh, min_tradeoff=mtf, return_status=True, **common)
            ds["min_rounds"] = ((), float(n_min))
            ds["min_rounds"].attrs.update(
                {
                    "long_name": "smallest n with key",
                    "units": "1",
                    "description": "Smallest number of rounds with a positive finite-size rate "
                    f"(inf: none up to 1e16; status {finite.FINITE_STATUSES[code]})",
                }
            )
    except (ValueError, TypeError, ImportError) as err:
        parser.error(as_option_message(err, parser))
    if args.behaviour is not None:
        ds.attrs["behaviour_file"] = args.behaviour
    else:  # the device model: every setting that changes the numbers
        ds.attrs["visibility"] = args.visibility
        ds.attrs["efficiency"] = args.efficiency
    record_command(ds, args)
    save_dataset(ds, args.out, name="--out", overwrite=args.overwrite)
    rate = ds.finite_key_rate.values
    keyed = int(np.sum(ds.finite_status.values == 0))
    elapsed = time.perf_counter() - t0
    what = "certified" if ds.attrs["certified"] else "UNCERTIFIED (qubit estimate)"
    best = f"{np.nanmax(rate):.4g}" if np.any(np.isfinite(rate)) else "nan"
    msg = (
        f"wrote {args.out}: {counted(rate.size, 'value')} of n, key at {keyed}; best rate {best} "
        f"bit/round ({what}), asymptotic {float(ds.asymptotic_rate):.4g}"
    )
    if n_min is not None:
        msg += f"; smallest n with key {n_min:.4g}"
    print(f"{msg}; in {elapsed:.1f} s")
    return 0
