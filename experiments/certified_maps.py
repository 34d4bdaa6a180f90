"""Certified critical visibility over (theta, phi) planes of the family (issue 21, item 2).

For every tuple of an n x n grid of the plane at a fixed omega, the smallest white-noise
visibility with a positive key rate, bracketed from both sides: the attack's (explicit qubit
strategies, a lower bound on the threshold) and the certified one (BFF SDPs, an upper bound),
through :func:`jaxbell.threshold_grid` (every cell bisected at once; the certified bisection
starts at the attack's threshold). Written block by block into a zarr store and resumed from
its finished blocks when run again with the same arguments.

    python experiments/certified_maps.py --n 16 --omega pi --bob-key aligned
    python experiments/certified_maps.py --n 16 --omega 5pi/6 --bob-key none

Writes figures/data/certified_map_<bob-key>_omega<omega>_n<n>.zarr and a .nc copy of it. The
certified bisection runs on the batched JAX solver by default (every unfinished cell of a step
in one batch).
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
from jaxbell.cli._args import parse_angle  # noqa: E402
from jaxbell.store import save_dataset  # noqa: E402

#: qubit options of experiments/noise_planes.py (critical visibilities agree with the defaults
#: to 1e-7 on sample tuples, at a quarter of the cost)
QUBIT = {"directions": 32, "starts": 8, "steps": 300, "refine": 4, "tol": 1e-4}
OUT = pathlib.Path(__file__).resolve().parents[1] / "figures" / "data"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=16, help="grid points per axis (default 16)")
    ap.add_argument("--omega", default="pi", help="omega of the plane (default pi)")
    ap.add_argument("--bob-key", default="aligned", help="none (the paper's) or aligned")
    ap.add_argument("--m", type=int, default=8, help="Gauss-Radau nodes of the BFF bound")
    ap.add_argument("--xtol", type=float, default=2e-3, help="certified bracket width")
    ap.add_argument("--solver", default="JAX", help="BFF solver: JAX (batched) or CLARABEL")
    ap.add_argument("--processes", type=int, default=2, help="worker processes (CLARABEL)")
    ap.add_argument("--out", default=None)
    ap.add_argument("--fill", action="store_true", help="re-bisect, with Clarabel, the cells of an "
                    "existing map where the attack found a threshold and the certified bisection "
                    "failed (status 2); rewrites the .nc copy")  # fmt: skip
    args = ap.parse_args(argv)
    omega = parse_angle(args.omega)
    bob_key = None if args.bob_key == "none" else args.bob_key
    # open interval: theta or phi in {0, pi} are degenerate members (no self-test)
    axis = np.linspace(0, np.pi, args.n + 2)[1:-1]
    name = f"certified_map_{args.bob_key}_omega{args.omega.replace('/', '_')}_n{args.n}.zarr"
    out = pathlib.Path(args.out) if args.out else OUT / name
    if args.fill:
        return _fill(out.with_suffix(".nc"), args, omega, bob_key)
    t0 = time.perf_counter()
    ds = jb.threshold_grid(
        axis,
        axis,
        [omega],
        threshold="visibility",
        method=("qubit", "bff"),
        options={
            "qubit": QUBIT,
            "bff": {"m": args.m, "processes": args.processes, "solver": args.solver},
        },
        xtol={"qubit": 1e-6, "bff": args.xtol},
        protocol=jb.Protocol(bob_key=bob_key),
        path=out,
    )
    # a netCDF copy beside the (git-ignored) zarr store: what the figure and the docs read
    save_dataset(ds.load(), out.with_suffix(".nc"), overwrite=True)
    lo, hi = ds.attack_threshold.values, ds.certified_threshold.values
    ok = np.isfinite(hi)
    print(
        f"wrote {out} in {time.perf_counter() - t0:.0f} s: {ok.sum()} of {ok.size} cells "
        f"certified; least attack threshold {np.nanmin(lo):.4f}, least certified "
        f"{np.nanmin(hi):.4f}; every certified >= attack: "
        f"{bool(np.all(hi[ok] >= lo[ok] - 1e-12))}",
        file=sys.stderr,
    )
    return 0


def _fill(path: pathlib.Path, args, omega: float, bob_key) -> int:
    """Certify with Clarabel the cells the batched solver left at status 2 (all at once)."""
    with jb.open_dataset(path) as src:  # closed before the file is written again
        ds = src.load()
    crit = ds.critical_value.isel(omega=0)
    att = crit.sel(rate_method="qubit").values
    cert = crit.sel(rate_method="bff").values
    ii, jj = np.nonzero(np.isfinite(att) & ~np.isfinite(cert))
    if ii.size == 0:
        print(f"{path}: nothing to fill", file=sys.stderr)
        return 0
    t0 = time.perf_counter()
    theta, phi = ds.theta.values[ii], ds.phi.values[jj]
    value, status = jb.critical_visibility(
        theta, phi, np.full(ii.size, omega), x=0, bob_key=bob_key, method=("qubit", "bff"),
        options={"qubit": QUBIT, "bff": {"m": args.m, "processes": args.processes,
                                         "solver": "CLARABEL"}},
        xtol={"qubit": 1e-6, "bff": args.xtol}, return_status=True,
    )  # fmt: skip
    value, status = np.asarray(value), np.asarray(status)
    k = list(ds.rate_method.values).index("bff")
    ds.critical_value.values[ii, jj, 0, k] = value[..., k] if value.ndim > 1 else value
    ds.threshold_status.values[ii, jj, 0, k] = status[..., k] if status.ndim > 1 else status
    filled = int(np.sum(np.isfinite(ds.critical_value.values[ii, jj, 0, k])))
    ds.attrs["history"] += (
        f"\n{time.strftime('%Y-%m-%dT%H:%M:%S')}: experiments/certified_maps.py --fill: "
        f"{filled} of {ii.size} status-2 cells certified with Clarabel"
    )
    save_dataset(ds, path, overwrite=True)
    print(f"filled {filled} of {ii.size} cells of {path} in {time.perf_counter() - t0:.0f} s",
          file=sys.stderr)  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
