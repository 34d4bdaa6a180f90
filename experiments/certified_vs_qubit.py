"""Certified (BFF) lower bounds beside the qubit upper bounds: key rates under white noise.

Issue 5, item 6, for the paper's key tuples of eq. (2):

* ``chsh``:         the CHSH member (pi/2, pi/4, 3pi/4);
* ``chsh-5/2``:     Prop. 3's construction (pi/3, pi/2 - delta, 5pi/6), max CHSH -> 5/2;
* ``chsh-1+sqrt2``: Prop. 5's construction (pi/4, pi/2 - delta, pi), max CHSH -> 1 + sqrt 2.

For each, with the strategy of eq. (6) under white noise (E -> v E, <B> = v eta^Q) and Alice's
key input x = 0, the Devetak-Winter key rate of eq. (1) from three DI entropies:

* ``qubit``: explicit qubit strategies (an upper bound on the DI rate: explicit attacks);
* ``bff``: the certified Brown-Fawzi-Fawzi lower bound given <B> (m = 8, level 2);
* ``bff_correlators``: the certified bound given all four correlators v E (Props. 4, 6; a
  stronger constraint, so not bounded by the qubit values),

and the rate of the noisy strategy itself (Eve purifying the noisy state: an explicit attack,
above all of them). Writes two labelled datasets:

* ``figures/data/certified_vs_qubit.nc``: the rates against visibility for delta = 0.1;
* ``figures/data/critical_visibilities.nc``: the critical visibilities of every method for
  delta in 0.3, 0.1, 0.03 (the table of the README).

    python experiments/certified_vs_qubit.py            # ~7 minutes on the shared 2-core CPU
    python figures/certified_vs_qubit.py                # the figure
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import time

import jax
import numpy as np

jax.config.update("jax_enable_x64", True)

import jaxbell as jb  # noqa: E402
from jaxbell.dataset import BELOW_BOUND_REFERENCES, BFF_REFERENCE, labelled_dataset  # noqa: E402
from jaxbell.store import save_dataset  # noqa: E402

OUT = pathlib.Path(__file__).resolve().parents[1] / "figures" / "data"
PI = np.pi
#: visibilities of the curves: dense near 1, where the near-perfect-key constructions live
VISIBILITY = np.array(
    [0.85, 0.9, 0.93, 0.95, 0.96, 0.97, 0.975, 0.98, 0.985, 0.99, 0.993, 0.996, 0.998, 1.0]
)
METHODS = ("qubit", "bff", "bff_correlators")


def constructions(deltas):
    out = {"chsh": (PI / 2, PI / 4, 3 * PI / 4)}
    for d in deltas:
        out[f"chsh-5/2 delta={d:g}"] = (PI / 3, PI / 2 - d, 5 * PI / 6)
        out[f"chsh-1+sqrt2 delta={d:g}"] = (PI / 4, PI / 2 - d, PI)
    return out


def run(tpl, visibility, m, critical=True):
    """(rates by method, rate status by method, achievable rates, thresholds by method, extras)."""
    both = jb.noisy_rate_curve(
        *tpl,
        visibility,
        kind="key",
        x=0,
        method=("qubit", "bff"),
        options={"bff": {"m": m}},
        critical=critical,
        progress=None,
    )
    corr = jb.noisy_rate_curve(
        *tpl,
        visibility,
        kind="key",
        x=0,
        method="bff",
        options={"m": m, "constraint": "correlators"},
        critical=critical,
        progress=None,
    )
    rates = np.stack([*both.noisy_key_rate.values, corr.noisy_key_rate.values])
    status = np.stack([*both.rate_status.values[:, 0], corr.rate_status.values[0]])
    out = {"rates": rates, "status": status, "achievable": both.achievable_key_rate.values}
    if critical:
        out["critical"] = np.array(
            [*both.critical_visibility.values[:, 0], float(corr.critical_visibility[0])]
        )
        out["critical_achievable"] = float(both.critical_visibility_achievable[0])
        out["local"] = float(both.local_visibility)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--m", type=int, default=8, help="Gauss-Radau nodes of the bff bounds (8)")
    ap.add_argument("--delta", type=float, default=0.1, help="delta of the curves (0.1)")
    ap.add_argument(
        "--table-deltas",
        type=float,
        nargs="+",
        default=[0.3, 0.1, 0.03],
        help="deltas of the critical-visibility table (0.3 0.1 0.03)",
    )
    ap.add_argument("--out", default=str(OUT), help="output folder (figures/data)")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    common = {
        "m": args.m,
        "level": 2,
        "solver": "CLARABEL",
        "x": 0,
        "qubit_options": "defaults (jaxbell.qubit.QubitOptions)",
        "xtol_qubit": 1e-7,
        "xtol_bff": 1e-3,
        "dtype": "float64",
        "jax_version": jax.__version__,
    }
    refs = f"{BELOW_BOUND_REFERENCES}; {BFF_REFERENCE}"
    command = "experiments/certified_vs_qubit.py " + " ".join(
        sys.argv[1:] if argv is None else argv
    )

    # --- the table: critical visibilities -------------------------------------------------
    table = constructions(args.table_deltas)
    names = list(table)
    crit = np.full((len(names), len(METHODS)), np.nan)
    crit_ach, local, chsh = (np.full(len(names), np.nan) for _ in range(3))
    curve_names = list(constructions([args.delta]))
    curves = {}
    for i, name in enumerate(names):
        t1 = time.perf_counter()
        vis = VISIBILITY if name in curve_names else np.array([1.0])
        res = run(table[name], vis, args.m)
        if name in curve_names:
            curves[name] = res
        crit[i], crit_ach[i], local[i] = res["critical"], res["critical_achievable"], res["local"]
        chsh[i] = float(jb.max_chsh_value(jb.strategy_correlators(*table[name])))
        print(
            f"{name:24s} max CHSH {chsh[i]:.4f}  local v {local[i]:.5f}  critical v: "
            + "  ".join(f"{m} {c:.5f}" for m, c in zip(METHODS, crit[i], strict=True))
            + f"  (noisy strategy {crit_ach[i]:.5f}; {time.perf_counter() - t1:.0f} s)",
            flush=True,
        )
    tpl = np.array([table[n] for n in names])
    ds = labelled_dataset(
        {
            "theta": (("construction",), tpl[:, 0]),
            "phi": (("construction",), tpl[:, 1]),
            "omega": (("construction",), tpl[:, 2]),
            "max_chsh": (("construction",), chsh),
            "local_visibility": (("construction",), local),
            "critical_visibility": (("construction", "rate_method"), crit),
            "critical_visibility_achievable": (("construction",), crit_ach),
        },
        {"construction": np.array(names), "rate_method": np.array(METHODS)},
        title="Critical visibilities for a positive key rate (x = 0) under white noise: qubit "
        "(lower bound), certified BFF (upper bound), BFF given all four correlators",
        settings=common | {"deltas": list(args.table_deltas), "kind": "key"},
        history=command,
        references=refs,
    )
    path = save_dataset(ds, pathlib.Path(args.out) / "critical_visibilities.nc", overwrite=True)
    print(f"wrote {path}")

    # --- the curves -----------------------------------------------------------------------
    order = [n for n in curve_names if n in curves]
    tpl = np.array([table[n] for n in order])
    ds = labelled_dataset(
        {
            "theta": (("construction",), tpl[:, 0]),
            "phi": (("construction",), tpl[:, 1]),
            "omega": (("construction",), tpl[:, 2]),
            "max_chsh": (("construction",), chsh[[names.index(n) for n in order]]),
            "noisy_key_rate": (
                ("construction", "rate_method", "visibility"),
                np.stack([curves[n]["rates"] for n in order]),
            ),
            "rate_status": (
                ("construction", "rate_method", "visibility"),
                np.stack([curves[n]["status"] for n in order]).astype(np.int8),
            ),
            "achievable_key_rate": (
                ("construction", "visibility"),
                np.stack([curves[n]["achievable"] for n in order]),
            ),
            "noisy_key_rate_gap": (
                ("construction", "visibility"),
                np.stack([curves[n]["rates"][0] - curves[n]["rates"][1] for n in order]),
            ),
            "critical_visibility": (
                ("construction", "rate_method"),
                np.stack([curves[n]["critical"] for n in order]),
            ),
            "local_visibility": (("construction",), np.array([curves[n]["local"] for n in order])),
        },
        {
            "construction": np.array(order),
            "rate_method": np.array(METHODS),
            "visibility": VISIBILITY,
        },
        title="Key rate (x = 0) under white noise: qubit upper bound, certified BFF lower bound "
        "(given <B> and given all four correlators), and the noisy strategy itself",
        settings=common | {"delta": args.delta, "kind": "key"},
        history=command,
        references=refs,
    )
    ds.attrs["elapsed_seconds"] = round(time.perf_counter() - t0, 1)
    path = save_dataset(ds, pathlib.Path(args.out) / "certified_vs_qubit.nc", overwrite=True)
    print(f"wrote {path} in {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
