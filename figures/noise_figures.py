"""Figures of the noise-robustness studies (issue 4) from the datasets in figures/data/.

    python figures/noise_figures.py          # all figures that have their data

Run the experiments first (experiments/noise_planes.py, noisy_rates_extremal.py,
noise_tolerance_vs_chsh.py). Axis labels come from the datasets' long_name and units.
"""

from __future__ import annotations

import pathlib
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import xarray as xr  # noqa: E402
from matplotlib.colors import LogNorm  # noqa: E402

HERE = pathlib.Path(__file__).resolve().parent
DATA = HERE / "data"


def axis_label(da: xr.DataArray) -> str:
    units = da.attrs.get("units", "1")
    return da.attrs.get("long_name", da.name) + ("" if units == "1" else f" ({units})")


def open_(name):
    path = DATA / name
    return xr.open_dataset(path, engine="h5netcdf") if path.exists() else None


def fig_planes() -> pathlib.Path | None:
    files = sorted(
        DATA.glob("noise_plane_near-key_delta*.nc"), key=lambda p: -float(p.stem.split("delta")[1])
    )
    omega_pi = DATA / "noise_plane_omega-pi.nc"
    panels = [xr.open_dataset(p, engine="h5netcdf") for p in files]
    if omega_pi.exists():
        panels.append(xr.open_dataset(omega_pi, engine="h5netcdf"))
    if not panels:
        return None
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.9), squeeze=False)
    norm = LogNorm(1e-4, 0.2)
    for ax, ds in zip(axes[0], panels, strict=True):
        xdim, ydim = ds.critical_visibility.dims
        tol = 1 - ds.critical_visibility
        x, y = ds[xdim].values, ds[ydim].values
        im = ax.pcolormesh(x, y, tol.values.T, norm=norm, cmap="viridis", shading="nearest")
        cs = ax.contour(
            x, y, ds.max_chsh.values.T, levels=[2.0, 2.25, 2.5], colors="w", linewidths=0.8
        )
        ax.clabel(cs, fontsize=7, fmt="%.2f")
        ax.contour(
            x,
            y,
            ds.self_testing.values.T.astype(float),
            levels=[0.5],
            colors="k",
            linewidths=0.6,
            linestyles="--",
        )
        ax.set_xlabel(axis_label(ds[xdim]))
        ax.set_ylabel(axis_label(ds[ydim]))
        if ds.attrs["plane"] == "near-key":
            ax.set_title(f"phi = pi/2 - {ds.attrs['delta']:g}", fontsize=10)
        else:
            ax.set_title("omega = pi", fontsize=10)
    cb = fig.colorbar(im, ax=axes[0].tolist(), shrink=0.9)
    cb.set_label("noise tolerance 1 - critical visibility (key)")
    fig.suptitle(
        "White-noise tolerance of DI key (Devetak-Winter, qubit-strategy entropies); "
        "white: max CHSH of eq. (6); dashed: condition (4)",
        fontsize=9,
    )
    out = HERE / "noise_planes.png"
    fig.savefig(out, dpi=130, bbox_inches="tight")
    plt.close(fig)
    return out


def fig_extremal() -> pathlib.Path | None:
    ds = open_("noisy_rates_extremal.nc")
    if ds is None:
        return None
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4.2))
    colors = plt.cm.tab10(np.arange(ds.sizes["construction"]))
    for i, name in enumerate(ds.construction.values):
        label = f"{name} (CHSH {float(ds.max_chsh[i]):.3f})"
        one_minus_v = 1 - ds.visibility.values
        key = ds.noisy_key_rate[i].values
        a1.plot(np.where(one_minus_v > 0, one_minus_v, 1e-5), key, color=colors[i], label=label)
        a2.plot(ds.normalised_bell_value, ds.entropy[i], color=colors[i], label=name)
    a1.set_xscale("log")
    a1.set_ylim(-0.05, 1.0)
    a1.axhline(0, color="k", lw=0.6)
    a1.set_xlabel("1 - visibility")
    a1.set_ylabel(axis_label(ds.noisy_key_rate))
    a1.invert_xaxis()
    a1.legend(fontsize=7)
    a1.set_title("key rate under white noise (1 - v = 1e-5 marks v = 1)", fontsize=10)
    u = ds.normalised_bell_value.values
    a2.plot(u, u, "k:", lw=1, label="chord: mix local + eq. (6)")
    a2.set_xlabel(axis_label(ds.normalised_bell_value))
    a2.set_ylabel("H(A|X=0,E) (bit)")
    a2.set_title("DI key entropy below the quantum bound", fontsize=10)
    a2.legend(fontsize=7)
    out = HERE / "noisy_rates_extremal.png"
    fig.savefig(out, dpi=130, bbox_inches="tight")
    plt.close(fig)
    return out


def frontier_fit(ds: xr.Dataset):
    """Power law a x^k through the best tolerance per CHSH bin (x = max CHSH - 2), all lines."""
    x = (ds.max_chsh - 2).values.ravel()
    y = (1 - ds.critical_visibility).values.ravel()
    ok = np.isfinite(x) & np.isfinite(y) & (y > 0) & (x > 0)
    x, y = x[ok], y[ok]
    edges = np.geomspace(x.min(), x.max() * 1.0001, 9)
    bx, by = [], []
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        sel = (x >= lo) & (x < hi)
        if sel.any():
            i = np.argmax(np.where(sel, y, -np.inf))
            bx.append(x[i])
            by.append(y[i])
    k, loga = np.polyfit(np.log(bx), np.log(by), 1)
    return float(np.exp(loga)), float(k)


def fig_tolerance() -> pathlib.Path | None:
    ds = open_("noise_tolerance_vs_chsh.nc")
    if ds is None:
        return None
    fig, ax = plt.subplots(figsize=(6.5, 4.6))
    markers = {"omega=5pi/6": "o", "omega=pi": "s"}
    colors = plt.cm.plasma(np.linspace(0, 0.85, ds.sizes["delta"]))
    for fam in ds.family.values:
        for j, d in enumerate(ds.delta.values):
            sub = ds.sel(family=fam, delta=d)
            x = sub.max_chsh.values - 2
            ax.plot(
                x,
                1 - sub.critical_visibility.values,
                marker=markers[fam],
                ms=3.5,
                lw=1,
                color=colors[j],
                label=f"{fam}, delta={d:g}",
            )
            ax.plot(x, 1 - 1 / sub.violation_ratio.values, color=colors[j], lw=0.6, ls=":")
    for v in ds.visibility.values:
        ax.axhline(1 - v, color="0.6", lw=0.6)
        ax.text(
            1.01,
            1 - v,
            f"v = {v:g}",
            fontsize=7,
            color="0.4",
            va="center",
            transform=ax.get_yaxis_transform(),
        )
    a, k = frontier_fit(ds)
    xs = np.geomspace(0.01, 0.8, 50)
    ax.plot(xs, a * xs**k, "k--", lw=0.8, label=f"frontier fit {a:.3f} (CHSH - 2)^{k:.2f}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("max CHSH - 2 of the construction (noise-free)")
    ax.set_ylabel("noise tolerance 1 - critical visibility (key)")
    ax.set_title(
        "How close to local can a construction be and still give key?\n"
        "dotted: 1 - eta^L/|eta^Q| (no Bell violation left)",
        fontsize=9,
    )
    ax.legend(fontsize=6.5, ncol=2)
    out = HERE / "noise_tolerance_vs_chsh.png"
    fig.savefig(out, dpi=130, bbox_inches="tight")
    plt.close(fig)
    return out


def main() -> int:
    for make in (fig_planes, fig_extremal, fig_tolerance):
        out = make()
        print(f"{make.__name__}: {out or 'no data yet'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
