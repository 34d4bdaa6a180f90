"""Figure: certified (BFF) vs achievable (noisy eq. 6) key rates against visibility.

python figures/bff_key_rates.py experiments/data/bff_key_rates.nc --out figures/bff_key_rates.png
"""

from __future__ import annotations

import argparse

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import jaxbell as jb  # noqa: E402


def _label(da) -> str:
    units = da.attrs.get("units", "1")
    return f"{da.attrs['long_name']}" + ("" if units == "1" else f" [{units}]")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", help="dataset written by experiments/bff_key_rates.py")
    parser.add_argument("--out", default="figures/bff_key_rates.png", help="output image")
    args = parser.parse_args()
    ds = jb.open_dataset(args.data)
    names = list(ds.tuple.values)
    fig, axes = plt.subplots(1, len(names), figsize=(3.6 * len(names), 3.4), sharey=True)
    for ax, name in zip(np.atleast_1d(axes), names, strict=True):
        sub = ds.sel(tuple=name)
        v = sub.visibility.values
        ach = sub.achievable_key_rate.sel(constraint="bell")
        ax.plot(v, ach.values, "k:", label="achievable (noisy eq. 6)")
        for constraint, style in (("bell", "C0-"), ("correlators", "C1--")):
            cert = sub.certified_key_rate.sel(constraint=constraint)
            ax.plot(v, cert.values, style, marker=".", label=f"certified, {constraint}")
            vc = float(sub.critical_visibility_certified.sel(constraint=constraint))
            if np.isfinite(vc):
                ax.axvline(vc, color=style[:2], lw=0.6, alpha=0.6)
        ax.axhline(0, color="0.6", lw=0.6)
        ax.set_ylim(-0.2, 1.02)
        ax.set_xlim(v.min(), 1.0)
        ax.set_title(
            f"{name}: ({float(sub.theta):.2f}, {float(sub.phi):.2f}, {float(sub.omega):.2f})\n"
            f"max CHSH {float(sub.max_chsh):.3f}",
            fontsize=9,
        )
        ax.set_xlabel(_label(ds.visibility))
    np.atleast_1d(axes)[0].set_ylabel(_label(ds.certified_key_rate) + " / achievable")
    np.atleast_1d(axes)[0].legend(fontsize=7, loc="upper left")
    fig.suptitle(
        f"DI key rate of eq. (1), x = 0: certified lower bound (BFF, m = {ds.attrs['m']}, "
        f"level {ds.attrs['level']}) vs noisy strategy of eq. (6)",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(args.out, dpi=130)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
