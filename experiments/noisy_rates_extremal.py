"""Key and randomness rates under white noise for the paper's extremal constructions.

Study (b) of issue 4: the CHSH member (pi/2, pi/4, 3pi/4) next to the constructions near the
paper's extremal points at phi = pi/2 - delta (the limit delta -> 0 gives near-perfect key):

* ``chsh-5/2``:     (pi/3, pi/2 - delta, 5pi/6), max CHSH -> 5/2 (Prop. 3, Fig. 2 black cross);
* ``chsh-1+sqrt2``: (pi/4, pi/2 - delta, pi), max CHSH -> 1 + sqrt 2, also perfect randomness
  (Prop. 5, Fig. 2 blue cross).

For each: the key rate and the global randomness rate over visibilities, the critical
visibilities, and the DI key entropy H(A|X=0, E) as a curve over the normalised Bell value
u = (<B> - eta^L) / (|eta^Q| - eta^L) (0 at the local bound, 1 at the quantum bound).

    python experiments/noisy_rates_extremal.py            # delta in 0.3, 0.1, 0.03

Writes figures/data/noisy_rates_extremal.nc.
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

OUT = pathlib.Path(__file__).resolve().parents[1] / "figures" / "data"


def constructions(deltas):
    out = [("chsh", (np.pi / 2, np.pi / 4, 3 * np.pi / 4))]
    for d in deltas:
        out.append((f"chsh-5/2 delta={d:g}", (np.pi / 3, np.pi / 2 - d, 5 * np.pi / 6)))
        out.append((f"chsh-1+sqrt2 delta={d:g}", (np.pi / 4, np.pi / 2 - d, np.pi)))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--delta", type=float, nargs="+", default=[0.3, 0.1, 0.03])
    ap.add_argument("--out", default=str(OUT / "noisy_rates_extremal.nc"))
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    cons = constructions(args.delta)
    names = np.array([c[0] for c in cons])
    tpl = np.array([c[1] for c in cons])
    t, p, w = tpl.T
    # visibilities: dense near 1, where the near-perfect-key constructions live
    vis = np.unique(
        np.concatenate([np.linspace(0.6, 0.95, 36), 1 - np.geomspace(0.05, 1e-4, 60), [1.0]])
    )
    u = np.linspace(0, 1, 101)
    key = np.empty((len(cons), vis.size))
    glob = np.empty_like(key)
    crit = np.empty((len(cons), 2))
    curve = np.empty((len(cons), u.size))
    eta_l, eta_q = (
        np.asarray(jb.local_bound(t, p, w)),
        np.abs(np.asarray(jb.quantum_bound(t, p, w))),
    )
    for i in tqdm(range(len(cons)), desc="constructions"):
        key[i] = np.asarray(jb.noisy_key_rate(t[i], p[i], w[i], vis))
        glob[i] = np.asarray(jb.noisy_global_rate(t[i], p[i], w[i], vis))
        for k, kind in enumerate(("key", "global")):
            crit[i, k] = float(jb.critical_visibility(t[i], p[i], w[i], kind=kind))
        eta = eta_l[i] + u * (eta_q[i] - eta_l[i])
        curve[i] = np.asarray(jb.di_entropy(t[i], p[i], w[i], eta, kind="key", x=0))
    corr = np.asarray(jb.strategy_correlators(t, p, w))
    data = {
        "theta": (("construction",), t),
        "phi": (("construction",), p),
        "omega": (("construction",), w),
        "noisy_key_rate": (("construction", "visibility"), key),
        "noisy_global_rate": (("construction", "visibility"), glob),
        "critical_visibility": (("construction", "kind"), crit),
        "max_chsh": (("construction",), np.asarray(jb.max_chsh_value(corr))),
        "violation_ratio": (("construction",), eta_q / eta_l),
        "key_rate": (("construction",), np.asarray(jb.key_rate_at_quantum_bound(t, p, w))),
        "entropy": (("construction", "normalised_bell_value"), curve),
    }
    coords = {
        "construction": names,
        "visibility": vis,
        "kind": np.array(["key", "global"]),
        "normalised_bell_value": u,
    }
    settings = {
        "deltas": list(args.delta),
        "method": "qubit",
        "options": "defaults (jaxbell.qubit.QubitOptions)",
        "entropy_kind": "key",
        "entropy_x": 0,
        "dtype": "float64",
        "elapsed_seconds": round(time.perf_counter() - t0, 1),
        "jax_version": jax.__version__,
    }
    ds = labelled_dataset(
        data,
        coords,
        title="Key and randomness rates under white noise for the extremal constructions",
        settings=settings,
        history="experiments/noisy_rates_extremal.py "
        + " ".join(sys.argv[1:] if argv is None else argv),
    )
    save_dataset(ds, args.out, overwrite=True)
    for i, n in enumerate(names):
        print(
            f"{n:28s} max CHSH {float(ds.max_chsh[i]):.4f}  "
            f"ratio {float(ds.violation_ratio[i]):.5f}  key at v=1 {key[i, -1]:.5f}  "
            f"v_crit key {crit[i, 0]:.6f}  global {crit[i, 1]:.6f}"
        )
    print(f"wrote {args.out} in {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
