"""How close to the local set can a construction be and still give key under noise?

Study (c) of issue 4. Along the two lines of near-perfect-key constructions at
phi = pi/2 - delta that run from the local boundary (theta -> delta, where condition (4)
starts to hold) to the paper's extremal points:

* ``omega=5pi/6``: theta in (delta, pi/3], towards max CHSH 5/2 (Prop. 3);
* ``omega=pi``:    theta in (delta, pi/4], towards max CHSH 1 + sqrt 2 (Prop. 5);

compute the construction's noise-free max CHSH value, violation ratio, epsilon and the
critical visibility for key (method "qubit"), for several delta. Then, for target
visibilities 0.99, 0.999 and 0.9999, the least CHSH value along each line that still gives a
positive key rate at that visibility (interpolated along the line).

    python experiments/noise_tolerance_vs_chsh.py

Writes figures/data/noise_tolerance_vs_chsh.nc.
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

OPTIONS = {"directions": 32, "starts": 8, "steps": 300, "refine": 4, "tol": 1e-4}
OUT = pathlib.Path(__file__).resolve().parents[1] / "figures" / "data"
LINES = {"omega=5pi/6": (5 * np.pi / 6, np.pi / 3), "omega=pi": (np.pi, np.pi / 4)}
TARGETS = np.array([0.99, 0.999, 0.9999])


def least_chsh(chsh, crit, target):
    """Least CHSH along a line (sorted by chsh) with crit <= target, linearly interpolated."""
    ok = np.isfinite(crit) & np.isfinite(chsh)
    c, v = chsh[ok], crit[ok]
    order = np.argsort(c)
    c, v = c[order], v[order]
    good = v <= target
    if not good.any():
        return np.nan
    i = int(np.argmax(good))
    if i == 0:
        return c[0]  # already below target at the first point: an upper bound
    return float(np.interp(target, [v[i], v[i - 1]], [c[i], c[i - 1]]))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--delta", type=float, nargs="+", default=[0.3, 0.1, 0.03, 0.01])
    ap.add_argument("--n", type=int, default=12, help="points per line (default 12)")
    ap.add_argument("--out", default=str(OUT / "noise_tolerance_vs_chsh.nc"))
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    deltas = np.asarray(args.delta)
    fam = list(LINES)
    shape = (len(fam), deltas.size, args.n)
    theta, phi, omega = (np.empty(shape) for _ in range(3))
    for i, name in enumerate(fam):
        w, top = LINES[name]
        for j, d in enumerate(deltas):
            # from just inside condition (4) (theta > delta) to the extremal point, denser
            # near the local boundary
            theta[i, j] = d + (top - d) * np.geomspace(1e-3, 1, args.n)
            phi[i, j] = np.pi / 2 - d
            omega[i, j] = w
    corr = np.asarray(jb.strategy_correlators(theta, phi, omega))
    chsh = np.asarray(jb.max_chsh_value(corr))
    ratio = np.abs(np.asarray(jb.quantum_bound(theta, phi, omega))) / np.asarray(
        jb.local_bound(theta, phi, omega)
    )
    eps = np.asarray(jb.epsilon_at_quantum_bound(theta, phi, omega))
    crit = np.full(shape, np.nan)
    with tqdm(total=len(fam) * deltas.size, desc="lines", unit="line") as bar:
        for i in range(len(fam)):
            for j in range(deltas.size):
                crit[i, j] = np.asarray(
                    jb.critical_visibility(
                        theta[i, j], phi[i, j], omega[i, j], kind="key", options=OPTIONS
                    )
                )
                bar.update(1)
    least = np.array(
        [[[least_chsh(chsh[i, j], crit[i, j], v) for v in TARGETS] for j in range(deltas.size)]
         for i in range(len(fam))]
    )  # fmt: skip
    dims = ("family", "delta", "point")
    data = {
        "theta": (dims, theta),
        "phi": (dims, phi),
        "omega": (dims, omega),
        "max_chsh": (dims, chsh),
        "violation_ratio": (dims, ratio),
        "epsilon": (dims, eps),
        "critical_visibility": (dims, crit),
        "least_chsh_with_key": (("family", "delta", "visibility"), least),
    }
    coords = {
        "family": np.array(fam),
        "delta": deltas,
        "point": np.arange(args.n),
        "visibility": TARGETS,
    }
    settings = {
        "kind": "key",
        "method": "qubit",
        **{f"option_{k}": v for k, v in OPTIONS.items()},
        "dtype": "float64",
        "elapsed_seconds": round(time.perf_counter() - t0, 1),
        "jax_version": jax.__version__,
    }
    ds = labelled_dataset(
        data,
        coords,
        title="Noise tolerance of near-perfect-key constructions against their CHSH value",
        settings=settings,
        history="experiments/noise_tolerance_vs_chsh.py "
        + " ".join(sys.argv[1:] if argv is None else argv),
    )
    save_dataset(ds, args.out, overwrite=True)
    for i, name in enumerate(fam):
        for j, d in enumerate(deltas):
            row = ", ".join(f"v={v:g}: {least[i, j, k]:.4f}" for k, v in enumerate(TARGETS))
            print(f"{name:12s} delta={d:<6g} least CHSH with key at {row}")
    print(f"wrote {args.out} in {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
