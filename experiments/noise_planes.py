"""Critical visibilities over planes of the family (the paper's open question on noise).

Study (a) of issue 4. For each tuple of a 2-D grid: the smallest white-noise visibility with a
positive Devetak-Winter key rate (DI entropies from explicit qubit strategies, method "qubit"),
next to the noise-free quantities of the grid (max CHSH value, violation ratio
|eta^Q| / eta^L, epsilon at eta^Q). The threshold for global randomness is not recomputed: it
is eta^L / |eta^Q| = 1 / violation_ratio exactly (any Bell value beyond the local bound
certifies randomness; tests/test_rates.py checks the optimisation reproduces it).

Planes:

* ``near-key``: (theta, omega) at phi = pi/2 - delta, the near-perfect-key constructions of
  Props. 3 and 5 (the paper's Fig. 2 is the limit delta -> 0); theta in [0, pi], omega in
  [pi/2, 3pi/2] (the other half of Fig. 2 is its mirror image).
* ``omega-pi``: (theta, phi) in the omega = pi plane of the paper's Fig. 1.

    python experiments/noise_planes.py --plane near-key --delta 0.1 --n 16
    python experiments/noise_planes.py --plane omega-pi --n 16

Writes figures/data/noise_plane_<plane>[_delta<delta>].nc (labelled, netCDF).
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
from jaxbell.dataset import labelled_dataset  # noqa: E402
from jaxbell.store import save_dataset  # noqa: E402

#: optimisation settings: checked against the defaults on sample tuples (critical visibilities
#: agree to 1e-7), at a quarter of the cost
OPTIONS = {"directions": 32, "starts": 8, "steps": 300, "refine": 4, "tol": 1e-4}
OUT = pathlib.Path(__file__).resolve().parents[1] / "figures" / "data"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--plane", choices=["near-key", "omega-pi"], required=True)
    ap.add_argument("--delta", type=float, default=0.1, help="phi = pi/2 - delta (near-key)")
    ap.add_argument("--n", type=int, default=16, help="grid points per axis (default 16)")
    ap.add_argument("--batch", type=int, default=16, help="tuples per optimisation batch")
    ap.add_argument("--out", default=None, help="output file (default figures/data/...)")
    args = ap.parse_args(argv)
    n = args.n
    t0 = time.perf_counter()
    if args.plane == "near-key":
        a = np.linspace(0, np.pi, n)  # theta
        b = np.linspace(np.pi / 2, 3 * np.pi / 2, n)  # omega
        dims = ("theta", "omega")
        grid = jb.evaluate_grid(a, np.pi / 2 - args.delta, b).isel(phi=0)
        tt, oo = np.meshgrid(a, b, indexing="ij")
        pp = np.full_like(tt, np.pi / 2 - args.delta)
        name = f"noise_plane_near-key_delta{args.delta:g}.nc"
        title = f"Critical visibilities on the plane phi = pi/2 - {args.delta:g}"
    else:
        a = np.linspace(0, np.pi, n)  # theta
        b = np.linspace(0, np.pi, n)  # phi
        dims = ("theta", "phi")
        grid = jb.evaluate_grid(a, b, np.pi).isel(omega=0)
        tt, pp = np.meshgrid(a, b, indexing="ij")
        oo = np.full_like(tt, np.pi)
        name = "noise_plane_omega-pi.nc"
        title = "Critical visibilities on the plane omega = pi"
    st = grid.self_testing.values
    crit = np.full(tt.shape, np.nan)
    idx = np.argwhere(st)
    with tqdm(total=len(idx), desc=f"critical visibility ({args.plane})", unit="tuple") as bar:
        for s in range(0, len(idx), args.batch):
            part = idx[s : s + args.batch]
            t, p, w = (arr[part[:, 0], part[:, 1]] for arr in (tt, pp, oo))
            crit[part[:, 0], part[:, 1]] = np.asarray(
                jb.critical_visibility(t, p, w, kind="key", options=OPTIONS)
            )
            bar.update(len(part))
    coords = {dims[0]: a, dims[1]: b}
    data = {
        "critical_visibility": (dims, crit),
        "max_chsh": (dims, grid.max_chsh.values),
        "violation_ratio": (dims, grid.violation_ratio.values),
        "epsilon": (dims, grid.epsilon.values),
        "self_testing": (dims, st),
    }
    settings = {
        "plane": args.plane,
        "kind": "key",
        "method": "qubit",
        "dtype": "float64",
        **{f"option_{k}": v for k, v in OPTIONS.items()},
        "elapsed_seconds": round(time.perf_counter() - t0, 1),
        "jax_version": jax.__version__,
    }
    if args.plane == "near-key":
        settings["delta"] = args.delta
        settings["phi"] = np.pi / 2 - args.delta
    else:
        settings["omega"] = np.pi
    ds = labelled_dataset(
        data,
        coords,
        title=title,
        settings=settings,
        history=f"experiments/noise_planes.py {' '.join(sys.argv[1:] if argv is None else argv)}",
    )
    out = pathlib.Path(args.out) if args.out else OUT / name
    save_dataset(ds, out, overwrite=True)
    ok = np.isfinite(crit)
    print(
        f"wrote {out}: {st.sum()} self-testing tuples of {st.size}, key threshold found for "
        f"{ok.sum()}; smallest key threshold {np.nanmin(crit) if ok.any() else np.nan:.6f}; "
        f"{time.perf_counter() - t0:.0f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
