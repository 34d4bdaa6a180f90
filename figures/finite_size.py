"""Figure: finite-size key by entropy accumulation with certified min-tradeoff functions.

    python figures/finite_size.py      # reads figures/data/finite_size.nc

Run experiments/finite_size.py first. Drawn by jaxbell.plots.finite_size_figure: key rate vs
rounds, the smallest n with key vs visibility, and vs the max CHSH of Prop. 3's construction.
"""

from __future__ import annotations

import pathlib

from jaxbell import open_dataset, plots

HERE = pathlib.Path(__file__).resolve().parent


def main() -> pathlib.Path:
    out = plots.write(
        plots.finite_size_figure(open_dataset(HERE / "data" / "finite_size.nc")),
        HERE / "finite_size.png",
    )
    print(f"wrote {out}")
    return out


if __name__ == "__main__":
    main()
