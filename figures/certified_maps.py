"""Draw certified_maps.png: certified critical visibility over (theta, phi) planes of the family.

Reads the stores written by experiments/certified_maps.py (one panel each): colour is the
certified threshold (BFF, an upper bound on the protocol's critical visibility), the white
contours the attack's (explicit qubit strategies, a lower bound), grey where no key is
certified at any visibility; the least certified threshold of the plane is marked (star) and
so are the members of the plane whose largest CHSH value is 2 sqrt 2 (crosses).

    python figures/certified_maps.py --data \
        figures/data/certified_map_aligned_omega3pi_4_n32.nc \
        figures/data/certified_map_aligned_omegapi_n32.nc \
        figures/data/certified_map_aligned_omega5pi_6_n32.nc \
        figures/data/certified_map_none_omegapi_n32.nc \
        figures/data/certified_map_none_omega5pi_6_n32.nc
"""

import argparse

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import jaxbell as jb  # noqa: E402
from jaxbell import plots  # noqa: E402


def _panel(ax, ds):
    theta, phi = ds.theta.values, ds.phi.values
    crit = ds.critical_value.isel(omega=0)
    cert = crit.sel(rate_method="bff").values
    att = crit.sel(rate_method="qubit").values
    masked = np.ma.masked_invalid(cert.T)
    cmap = plt.get_cmap("viridis").copy()
    cmap.set_bad("0.85")
    mesh = ax.pcolormesh(theta, phi, masked, cmap=cmap, shading="nearest", vmin=np.nanmin(cert),
                         vmax=1.0)  # fmt: skip
    if np.sum(np.isfinite(att)) > 3:
        levels = [lv for lv in (0.9, 0.95, 0.97, 0.98, 0.99) if lv > np.nanmin(att)]
        cs = ax.contour(theta, phi, att.T, levels=levels, colors="w", linewidths=0.8)
        ax.clabel(cs, fontsize=7, fmt="%.2f")
    i, j = np.unravel_index(np.nanargmin(cert), cert.shape)
    ax.plot(theta[i], phi[j], marker="*", color="r", ms=11, mec="k", ls="none",
            label=f"least certified {cert[i, j]:.4f} (attack {att[i, j]:.4f})")  # fmt: skip
    omega = float(ds.omega.values[0])
    grid = jb.evaluate_grid(theta, phi, omega)
    chsh = np.abs(grid.max_chsh.isel(omega=0).values - 2 * np.sqrt(2)) < 2e-3
    if chsh.any():
        ti, pj = np.nonzero(chsh)
        ax.plot(theta[ti], phi[pj], "x", color="w", ms=6, ls="none", label="max CHSH = 2√2")
    ok = np.isfinite(cert)
    below = np.all(att[ok] <= cert[ok] + 1e-12)
    proto = ds.attrs.get("protocol", "")
    key = "aligned" if "bob_key=2" in proto else "paper's"
    ax.set_title(f"ω = {omega:.4g}, {key} protocol\n{ok.sum()} of {ok.size} cells certified; "
                 f"attack ≤ certified everywhere: {below}", fontsize=9)  # fmt: skip
    ax.set_xlabel("θ (rad)")
    ax.set_ylabel("φ (rad)")
    ax.legend(loc="lower left", fontsize=7, framealpha=0.8)
    return mesh


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", nargs="+", required=True, help="zarr stores (one panel each)")
    ap.add_argument("--out", default="figures/certified_maps.png")
    args = ap.parse_args(argv)
    stores = [jb.open_dataset(p).load() for p in args.data]
    ncols = 2 if len(stores) == 4 else min(len(stores), 3)
    nrows = -(-len(stores) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(5.2 * ncols, 4.6 * nrows), squeeze=False)
    for ax, ds in zip(axes.ravel(), stores, strict=False):
        mesh = _panel(ax, ds)
        fig.colorbar(mesh, ax=ax, label="certified critical visibility (upper bound)")
    for ax in axes.ravel()[len(stores):]:
        ax.set_axis_off()
    fig.tight_layout()
    plots.write(fig, args.out, dpi=150)
    print("wrote", args.out)


if __name__ == "__main__":
    main()
