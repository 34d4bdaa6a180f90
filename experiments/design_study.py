"""Design over the whole family: does any member beat CHSH and asymmetric CHSH? (issue 13)

For the paper's protocol (key from Bob's best test input) and the aligned one (Bob's key-only
input), without and with noisy preprocessing (a fixed p = 0.1), :func:`jaxbell.optimise_protocol`
minimises the critical visibility (and, aligned without preprocessing, the critical detection
efficiency) over the whole family, beside the CHSH member and the best asymmetric-CHSH member
(pi/2, phi, pi - phi); each value by the explicit attack (a lower bound on the threshold) and
certified by BFF m = 8 (an upper bound). Then two fronts of the aligned protocol's critical
visibility: against a cap on max CHSH (closeness to the local set) and against the key rate
required at v = 1 (the paper's near-perfect key, 1 - epsilon).

    python experiments/design_study.py            # about 40 min on two cores
    python experiments/design_study.py --quick    # the aligned protocol only (about 10 min)

Writes figures/data/design.nc; ``python figures/design.py`` draws the fronts.
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import time

import jax
import numpy as np
import xarray as xr
from tqdm import tqdm

jax.config.update("jax_enable_x64", True)

import jaxbell as jb  # noqa: E402
from jaxbell.dataset import label  # noqa: E402
from jaxbell.store import check_writable, save_dataset  # noqa: E402

OUT = pathlib.Path(__file__).resolve().parents[1] / "figures" / "data"
SEARCH = {"starts": 5, "steps": 25, "seed": 0}
TABLE = [  # (protocol, preprocessing, objective)
    ("aligned", 0.0, "critical_visibility"),
    ("aligned", 0.1, "critical_visibility"),
    ("paper", 0.0, "critical_visibility"),
    ("paper", 0.1, "critical_visibility"),
    ("aligned", 0.0, "critical_efficiency"),
]
MAX_CHSH = (2.2, 2.4, 2.6)
MIN_KEY = (0.9, 0.99)
BOB = {"aligned": "aligned", "paper": None}
FIELDS = (
    "objective_attack",
    "objective_certified",
    "chsh_attack",
    "chsh_certified",
    "subfamily_attack",
    "subfamily_certified",
    "theta",
    "phi",
    "omega",
    "max_chsh",
    "key_rate_at_v1",
    "seconds",
)


def _row(res):
    return [
        res.value,
        res.certified,
        res.chsh_value,
        res.chsh_certified,
        res.subfamily_value,
        res.subfamily_certified,
        *res.angles,
        res.constraints["max_chsh"],
        res.constraints["key_rate_at_v1"],
        res.seconds,
    ]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="the aligned protocol only")
    parser.add_argument("--out", default=str(OUT / "design.nc"))
    args = parser.parse_args(argv)
    check_writable(args.out, "--out", overwrite=True)
    t0 = time.perf_counter()
    table = [r for r in TABLE if not args.quick or r[0] == "aligned"]
    rows = []
    for proto, p, obj in tqdm(table, desc="design table", file=sys.stderr):
        res = jb.optimise_protocol(
            objective=obj, bob_key=BOB[proto], preprocessing=p, progress=False, **SEARCH
        )
        rows.append(_row(res))
    fronts = []
    caps = [("max_chsh", c) for c in MAX_CHSH] + [("min_key_rate", k) for k in MIN_KEY]
    if args.quick:
        caps = caps[1:2] + caps[-1:]
    for kind, val in tqdm(caps, desc="fronts", file=sys.stderr):
        res = jb.optimise_protocol(
            objective="critical_visibility",
            bob_key="aligned",
            compare=False,
            progress=False,
            **{kind: val},
            **SEARCH,
        )
        fronts.append(_row(res) + [res.status == "ok"])
    case = [f"{proto}, p={p:g}, {obj}" for proto, p, obj in table]
    front_case = [f"{k} {v:g}" for k, v in caps]
    data = {f: (("case",), np.array([r[i] for r in rows])) for i, f in enumerate(FIELDS)}
    data |= {
        f"front_{f}": (("front",), np.array([r[i] for r in fronts])) for i, f in enumerate(FIELDS)
    }
    data["front_feasible"] = (("front",), np.array([int(r[-1]) for r in fronts], dtype=np.int8))
    data["front_cap"] = (("front",), np.array([v for _, v in caps]))
    ds = xr.Dataset(data, coords={"case": np.array(case), "front": np.array(front_case)})
    units = {
        "theta": "rad",
        "phi": "rad",
        "omega": "rad",
        "seconds": "s",
        "key_rate_at_v1": "bit / round",
        "max_chsh": "1",
    }
    for name in ds.data_vars:
        base = name.removeprefix("front_")
        ds[name].attrs.update(
            {
                "long_name": base.replace("_", " "),
                "units": units.get(base, "1"),
                "description": f"{base} of the optimum (jaxbell.optimise_protocol; thresholds are "
                "dimensionless; attack: lower bound on the threshold, certified: upper bound)"
                + (
                    "; front: aligned protocol, critical visibility under the cap"
                    if name.startswith("front_")
                    else ""
                ),
            }
        )
    for c in ("case", "front"):
        ds[c].attrs.update(
            {
                "long_name": c,
                "description": "protocol, flip probability and objective"
                if c == "case"
                else "the constraint and its value",
            }
        )
    ds = label(
        ds,
        title="Protocol design over the family (optimise_protocol)",
        settings=SEARCH
        | {"bff_m": 8, "quick": int(args.quick), "seconds": round(time.perf_counter() - t0, 1)},
        history="python experiments/design_study.py" + (" --quick" if args.quick else ""),
    )
    save_dataset(ds, args.out, name="--out", overwrite=True)
    print(f"wrote {args.out} in {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
