"""Figure: fronts of the best critical visibility over the family (optimise_protocol).

    python figures/design.py      # reads figures/data/design.nc

Run experiments/design_study.py first. Drawn by jaxbell.plots.design_figure.
"""

from __future__ import annotations

import pathlib

from jaxbell import open_dataset, plots

HERE = pathlib.Path(__file__).resolve().parent


def main() -> pathlib.Path:
    out = plots.write(
        plots.design_figure(open_dataset(HERE / "data" / "design.nc")), HERE / "design.png"
    )
    print(f"wrote {out}")
    return out


if __name__ == "__main__":
    main()
