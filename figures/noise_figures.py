"""Figures of the noise-robustness studies (issue 4) from the datasets in figures/data/.

    python figures/noise_figures.py          # all figures that have their data

Run the experiments first (experiments/noise_planes.py, noisy_rates_extremal.py,
noise_tolerance_vs_chsh.py). Drawn by jaxbell.plots (noise_planes_figure, noisy_rates_figure,
noise_tolerance_figure); axis labels come from the datasets' long_name and units.
"""

from __future__ import annotations

import pathlib
import sys

from jaxbell import open_dataset, plots

HERE = pathlib.Path(__file__).resolve().parent
DATA = HERE / "data"


def _write(fig, name: str) -> pathlib.Path:
    return plots.write(fig, HERE / name)


def fig_planes() -> pathlib.Path | None:
    files = sorted(
        DATA.glob("noise_plane_near-key_delta*.nc"), key=lambda p: -float(p.stem.split("delta")[1])
    )
    files += [p for p in [DATA / "noise_plane_omega-pi.nc"] if p.exists()]
    if not files:
        return None
    return _write(plots.noise_planes_figure([open_dataset(p) for p in files]), "noise_planes.png")


def fig_extremal() -> pathlib.Path | None:
    path = DATA / "noisy_rates_extremal.nc"
    if not path.exists():
        return None
    return _write(plots.noisy_rates_figure(open_dataset(path)), "noisy_rates_extremal.png")


def fig_tolerance() -> pathlib.Path | None:
    path = DATA / "noise_tolerance_vs_chsh.nc"
    if not path.exists():
        return None
    return _write(plots.noise_tolerance_figure(open_dataset(path)), "noise_tolerance_vs_chsh.png")


def main() -> int:
    for make in (fig_planes, fig_extremal, fig_tolerance):
        out = make()
        print(f"{make.__name__}: {out or 'no data yet'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
