"""Finite-size key: rate vs rounds, the smallest n for key, and what closeness to the local set
costs in rounds (issue 12's study).

For the CHSH member and the paper's near-perfect-key construction of Prop. 3 (theta = pi/3,
omega = 5 pi/6, phi = pi/2 - delta, max CHSH -> 5/2 as delta -> 0), under white noise,
with the standard protocol (Bob's key-only input aligned with Alice's key observable, key
input x = 0, no preprocessing), the constraint the paper's protocol tests (the one Bell value
of each tuple), soundness eps_sec = 1e-10, completeness 1e-2 and certified min-tradeoff
functions (BFF m = 8, :mod:`jaxbell.rates.finite`):

* ``finite_key_rate`` over n = 1e5..1e12 (30 values) at several visibilities;
* ``min_rounds`` against visibility;
* ``min_rounds`` at v = 1 against delta, i.e. against the construction's max CHSH.

    python experiments/finite_size.py            # about 15 min on two cores
    python experiments/finite_size.py --quick    # fewer visibilities and deltas (about 5 min)

Writes figures/data/finite_size.nc; ``python figures/finite_size.py`` draws the figure.
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import time

import jax
import numpy as np
from tqdm import tqdm

jax.config.update("jax_enable_x64", True)

import jaxbell as jb  # noqa: E402
from jaxbell.dataset import label  # noqa: E402
from jaxbell.store import check_writable, save_dataset  # noqa: E402

OUT = pathlib.Path(__file__).resolve().parents[1] / "figures" / "data"
PI = np.pi
ROUNDS = np.round(np.geomspace(1e5, 1e12, 30))


def prop3(delta: float) -> tuple[float, float, float]:
    return (PI / 3, PI / 2 - delta, 5 * PI / 6)


CONSTRUCTIONS = {
    "chsh": (PI / 2, PI / 4, 3 * PI / 4),
    "prop3 delta=0.1": prop3(0.1),
    "prop3 delta=0.03": prop3(0.03),
}
CURVE_VISIBILITIES = {
    "chsh": (1.0, 0.97, 0.94, 0.90),
    "prop3 delta=0.1": (1.0, 0.99, 0.98),
    "prop3 delta=0.03": (1.0, 0.997),
}
MIN_ROUNDS_VISIBILITIES = {
    "chsh": (1.0, 0.98, 0.96, 0.94, 0.92, 0.90, 0.88, 0.87),
    "prop3 delta=0.1": (1.0, 0.995, 0.99, 0.985, 0.98, 0.975, 0.97),
    "prop3 delta=0.03": (1.0, 0.998, 0.996, 0.994, 0.992, 0.99),
}
DELTAS = (0.3, 0.2, 0.1, 0.05, 0.03, 0.01)
COMMON = {"x": 0, "bob_key": 2, "eps_sec": 1e-10, "eps_com": 1e-2}


def _behaviour(tpl, v):
    return np.asarray(jb.device_behaviour(*tpl, visibility=v, bob_key=2))


def _mtf(tpl, v):
    return jb.min_tradeoff_functions(_behaviour(tpl, v), bell=tpl, options={"m": 8})


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer visibilities and deltas")
    parser.add_argument("--out", default=str(OUT / "finite_size.nc"))
    args = parser.parse_args(argv)
    check_writable(args.out, "--out", overwrite=True)
    curve_v = {k: v[:2] if args.quick else v for k, v in CURVE_VISIBILITIES.items()}
    nmin_v = {k: v[::2] if args.quick else v for k, v in MIN_ROUNDS_VISIBILITIES.items()}
    deltas = DELTAS[::2] if args.quick else DELTAS
    t0 = time.perf_counter()
    names = list(CONSTRUCTIONS)
    all_v = sorted({v for k in names for v in (*curve_v[k], *nmin_v[k])}, reverse=True)
    rate = np.full((len(names), len(all_v), ROUNDS.size), np.nan)
    n_min = np.full((len(names), len(all_v)), np.nan)
    asym = np.full((len(names), len(all_v)), np.nan)
    gamma = np.full_like(rate, np.nan)
    jobs = [
        (i, j)
        for i, k in enumerate(names)
        for j, v in enumerate(all_v)
        if v in curve_v[k] or v in nmin_v[k]
    ]
    for i, j in tqdm(jobs, desc="min-tradeoff functions", file=sys.stderr):
        name, v = names[i], all_v[j]
        tpl = CONSTRUCTIONS[name]
        beh, mtf = _behaviour(tpl, v), _mtf(tpl, v)
        kw = COMMON | {"bell": tpl, "min_tradeoff": mtf}
        if v in curve_v[name]:
            ds = jb.finite_rate_curve(beh, ROUNDS, progress=False, **kw)
            rate[i, j] = ds.finite_key_rate.values
            gamma[i, j] = ds.test_probability.values
            asym[i, j] = float(ds.asymptotic_rate)
        n_min[i, j] = jb.min_rounds(beh, **kw)
        if not np.isfinite(asym[i, j]):
            asym[i, j] = float(
                jb.finite_rate_curve(beh, [1e20], progress=False, **kw).asymptotic_rate
            )
    # closeness to the local set: Prop. 3 at v = 1 against delta
    d_nmin = np.full(len(deltas), np.nan)
    d_chsh = np.full(len(deltas), np.nan)
    d_asym = np.full(len(deltas), np.nan)
    for k, delta in enumerate(tqdm(deltas, desc="Prop. 3 against delta", file=sys.stderr)):
        tpl = prop3(delta)
        beh, mtf = _behaviour(tpl, 1.0), _mtf(tpl, 1.0)
        kw = COMMON | {"bell": tpl, "min_tradeoff": mtf}
        d_nmin[k] = jb.min_rounds(beh, **kw)
        d_chsh[k] = float(jb.max_chsh_value(jb.strategy_correlators(*tpl)))
        d_asym[k] = float(jb.finite_rate_curve(beh, [1e20], progress=False, **kw).asymptotic_rate)
    import xarray as xr

    ds = xr.Dataset(
        {
            "finite_key_rate": (("construction", "visibility", "rounds"), rate),
            "test_probability": (("construction", "visibility", "rounds"), gamma),
            "asymptotic_rate": (("construction", "visibility"), asym),
            "min_rounds": (("construction", "visibility"), n_min),
            "delta_min_rounds": (("delta",), d_nmin),
            "delta_max_chsh": (("delta",), d_chsh),
            "delta_asymptotic_rate": (("delta",), d_asym),
        },
        coords={
            "construction": np.array(names),
            "visibility": np.array(all_v),
            "rounds": ROUNDS,
            "delta": np.array(deltas),
        },
    )
    attrs = {
        "min_rounds": (
            "smallest n with key",
            "1",
            "Smallest n with a positive finite-size rate (inf: none up to 1e16; NaN: not computed)",
        ),
        "delta_min_rounds": (
            "smallest n with key at v = 1",
            "1",
            "Prop. 3's construction (pi/3, pi/2 - delta, 5 pi/6) at visibility 1",
        ),
        "delta_max_chsh": (
            "max CHSH of the construction",
            "1",
            "max over the eight CHSH expressions of the correlators of eq. (6)",
        ),
        "delta_asymptotic_rate": (
            "asymptotic key rate at v = 1",
            "bit / round",
            "The certified min-tradeoff functions at n -> infinity",
        ),
        "delta": ("delta", "rad", "phi = pi/2 - delta in Prop. 3's construction"),
        "construction": (
            "construction",
            "1",
            "chsh: (pi/2, pi/4, 3pi/4); prop3 delta=d: (pi/3, pi/2 - d, 5pi/6)",
        ),
    }
    for name, (long_name, units, desc) in attrs.items():
        ds[name].attrs.update({"long_name": long_name, "units": units, "description": desc})
    ds = label(
        ds,
        title="Finite-size DI key (entropy accumulation, certified min-tradeoff functions)",
        settings={
            "protocol": "aligned (bob_key=2), x=0, no preprocessing, constraint bell",
            "eps_sec": 1e-10,
            "eps_com": 1e-2,
            "bff_m": 8,
            "quick": int(args.quick),
            "seconds": round(time.perf_counter() - t0, 1),
        },
        history="python experiments/finite_size.py" + (" --quick" if args.quick else ""),
        references=jb.dataset.FINITE_REFERENCE if hasattr(jb, "dataset") else None,
    )
    save_dataset(ds, args.out, name="--out", overwrite=True)
    print(f"wrote {args.out} in {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
