"""Figure: certified (BFF) lower bounds beside the qubit upper bounds on the noisy key rate.

    python figures/certified_vs_qubit.py       # reads figures/data/certified_vs_qubit.nc

Run experiments/certified_vs_qubit.py first. Top row: the Devetak-Winter key rate (x = 0)
against visibility for the paper's key tuples; the true DI rate of the protocol (constraint
<B>) lies in the shaded band between the certified and qubit values. Bottom row: the width of
the band. Axis labels come from the dataset's long_name and units.
"""

from __future__ import annotations

import pathlib

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import jaxbell as jb  # noqa: E402
from jaxbell.plots import axis_label  # noqa: E402

HERE = pathlib.Path(__file__).resolve().parent
STYLE = {
    "qubit": dict(color="C0", ls="-", label="qubit strategies (upper bound)"),
    "bff": dict(color="C3", ls="--", label="certified BFF, given <B> (lower bound)"),
    "bff_correlators": dict(color="C2", ls="-.", label="certified BFF, given all four E[x,y]"),
}


def main() -> pathlib.Path:
    ds = jb.open_dataset(HERE / "data" / "certified_vs_qubit.nc")
    names = list(ds.construction.values)
    fig, axes = plt.subplots(
        2,
        len(names),
        figsize=(4.1 * len(names), 6.0),
        sharex="col",
        gridspec_kw={"height_ratios": [2.2, 1]},
        squeeze=False,
    )
    m = int(ds.attrs["m"])
    cap = 1 / (2 * m**2 * np.log(2))  # what dropping the last Gauss-Radau node costs at H = 1
    v = ds.visibility.values
    for j, name in enumerate(names):
        sub = ds.sel(construction=name)
        ax, gap_ax = axes[0, j], axes[1, j]
        rate = sub.noisy_key_rate
        qub, cert = (rate.sel(rate_method=m).values for m in ("qubit", "bff"))
        ax.fill_between(v, cert, qub, color="0.85", label="true DI rate (given <B>) lies here")
        ax.plot(v, sub.achievable_key_rate.values, color="0.4", ls=":", lw=1.0,
                label="noisy strategy itself")  # fmt: skip
        for method, style in STYLE.items():
            ax.plot(v, rate.sel(rate_method=method).values, marker=".", ms=4, lw=1.2, **style)
            vc = float(sub.critical_visibility.sel(rate_method=method))
            if np.isfinite(vc):
                ax.axvline(vc, color=style["color"], lw=0.6, alpha=0.7)
        ax.axvline(float(sub.local_visibility), color="k", lw=0.6, ls=(0, (1, 3)))
        ax.axhline(0, color="0.6", lw=0.6)
        ax.set_ylim(-0.15, 1.0)
        ax.set_title(
            f"{name}\n(θ, φ, ω) = ({float(sub.theta):.3f}, {float(sub.phi):.3f}, "
            f"{float(sub.omega):.3f}), max CHSH {float(sub.max_chsh):.3f}",
            fontsize=8.5,
        )
        gap = sub.noisy_key_rate_gap.where(sub.noisy_key_rate_gap > 0)
        gap_ax.semilogy(v, gap.values, "k.-", lw=1.0, ms=4)
        gap_ax.axhline(cap, color="C3", lw=0.7, ls="--")
        gap_ax.text(v.min() + 0.003, cap * 1.25, f"1/(2m² ln 2), m = {m}", color="C3", fontsize=7)
        gap_ax.set_ylim(1e-6, 0.1)
        gap_ax.set_xlabel(axis_label(ds.visibility))
        gap_ax.set_xlim(v.min(), 1.0)
        gap_ax.grid(alpha=0.3, which="both", lw=0.4)
    axes[0, 0].set_ylabel(axis_label(ds.noisy_key_rate))
    axes[1, 0].set_ylabel(axis_label(ds.noisy_key_rate_gap))
    axes[0, 0].legend(fontsize=6.5, loc="upper left")
    fig.suptitle(
        f"DI key rate of eq. (1) (x = 0) under white noise; BFF m = {m}, level "
        f"{ds.attrs['level']}\nvertical lines: critical visibilities (dotted black: local "
        "visibility, below which both entropies are exactly 0 and the gap vanishes)",
        fontsize=9.5,
    )
    fig.tight_layout()
    out = HERE / "certified_vs_qubit.png"
    fig.savefig(out, dpi=130)
    print(f"wrote {out}")
    return out


if __name__ == "__main__":
    main()
