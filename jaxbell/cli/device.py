"""``jaxbell device``: the best lossy two-qubit device for a Bell test (jaxbell.rates.loss)."""

from __future__ import annotations

import argparse

from jaxbell.cli._args import (
    add_overwrite,
    angle_type,
    as_option_message,
    check_out,
    flip_probability,
    nonnegative_int,
    positive_int,
    unit_interval,
)

#: the objectives of jaxbell.rates.loss.DEVICE_OBJECTIVES (kept here: the CLI imports no jax
#: at start-up; tests/test_loss.py checks that they agree)
OBJECTIVES = ("critical_efficiency", "key_rate")


def _preprocessing(text: str):
    return "optimal" if text == "optimal" else flip_probability(text)


def add(sub) -> None:
    p = sub.add_parser(
        "device",
        help="the best lossy two-qubit device (partially entangled, any angles) for a Bell test",
        description=(
            "Optimise a lossy two-qubit device -- the state cos(s)|00> + sin(s)|11>, measurement "
            "angles in the X-Z plane, Alice's noisy preprocessing, Bob's no-click on his key "
            "input kept or binned -- for the lowest detection-efficiency threshold or the "
            "highest key rate at --efficiency, tested by CHSH or an asymmetric-CHSH member "
            "(--family: the member searched too), on the tight analytic bounds of Ho et al. "
            "2020 and Woodhead, Acin & Pironio 2021; then evaluate it by the library's attack "
            "and certify it (BFF) under --constraint, with the CHSH test and the full "
            "statistics of the same device beside it. Writes a labelled dataset; see "
            "jaxbell.rates.loss."
        ),
    )
    p.add_argument("--objective", choices=list(OBJECTIVES), default="critical_efficiency",
                   help="what to optimise (default critical_efficiency)")  # fmt: skip
    p.add_argument("--efficiency", type=unit_interval("--efficiency", closed=True), default=None,
                   help="detection efficiency in (0, 1] (needed for key_rate)")  # fmt: skip
    p.add_argument("--visibility", type=unit_interval("--visibility", closed=True), default=1.0,
                   help="white-noise visibility in (0, 1] (default 1)")  # fmt: skip
    p.add_argument("--constraint", choices=["bell", "correlators", "full"], default="bell",
                   help="what the test rounds constrain (default bell)")  # fmt: skip
    test = p.add_mutually_exclusive_group()
    test.add_argument("--family", action="store_true",
                      help="search the asymmetric-CHSH member (pi/2, phi, pi - phi) too"
                      )  # fmt: skip
    test.add_argument("--bell", nargs=3, type=angle_type("--bell"), default=None,
                      metavar=("THETA", "PHI", "OMEGA"),
                      help="the Bell test, a family member (default CHSH); one without an "
                      "analytic bound is searched on its certified rate")  # fmt: skip
    p.add_argument("--no-click", choices=["keep", "bin"], default="keep",
                   help="Bob's no-click on his key input: kept (default) or 0")  # fmt: skip
    p.add_argument("--preprocessing", type=_preprocessing, default="optimal",
                   help="Alice's flip probability in [0, 0.5] or 'optimal' (default)")  # fmt: skip
    p.add_argument("--m", type=positive_int, default=6,
                   help="Gauss-Radau nodes of the certified bound (default 6)")  # fmt: skip
    p.add_argument("--starts", type=nonnegative_int, default=6,
                   help="random starts beside the known ones (default 6)")  # fmt: skip
    p.add_argument("--refine", type=nonnegative_int, default=6,
                   help="with --constraint correlators/full (or --bell without an analytic "
                   "bound): ascent steps on the certified rate of those statistics "
                   "(refine_device; 0: certify the Bell test's device as it is; default "
                   "6)")  # fmt: skip
    p.add_argument("--seed", type=nonnegative_int, default=0, help="seed of the starts")
    p.add_argument("--no-certify", action="store_true", help="skip the BFF certification")
    p.add_argument("--no-beside", action="store_true",
                   help="skip the CHSH and full-statistics values beside the optimum")  # fmt: skip
    p.add_argument("--out", required=True, help="output file: FILE.nc (netCDF) or FILE.zarr")
    add_overwrite(p)
    p.set_defaults(run=run, parser=p)


def run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from jaxbell.rates.loss import optimise_device
    from jaxbell.store import save_dataset

    check_out(args.out, parser, overwrite=args.overwrite)
    try:
        res = optimise_device(
            args.objective,
            efficiency=args.efficiency,
            visibility=args.visibility,
            constraint=args.constraint,
            bell="family" if args.family else (tuple(args.bell) if args.bell else None),
            no_click=args.no_click,
            preprocessing=args.preprocessing,
            certify=not args.no_certify,
            beside=not args.no_beside,
            starts=args.starts,
            seed=args.seed,
            refine=args.refine,
            options={"certified": {"m": args.m, "processes": 1}},
        )
    except (ValueError, TypeError, NotImplementedError, ImportError) as err:
        parser.error(as_option_message(err))
    ds = res.to_dataset()
    ds.attrs["history"] += f"; command: jaxbell {' '.join(args.argv)}"
    save_dataset(ds, args.out, name="--out", overwrite=args.overwrite)
    print(
        f"wrote {args.out}: best {args.objective} {res.value:.6f} (attack), "
        f"{res.certified:.6f} (certified); state angle {res.state_angle:.4f}, p "
        f"{res.preprocessing:.4f}, tuple ({', '.join(f'{a:.4f}' for a in res.bell)}); "
        f"{res.seconds:.0f} s"
    )
    return 0
