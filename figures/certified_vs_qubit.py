"""Figure: certified (BFF) lower bounds beside the qubit upper bounds on the noisy key rate.

    python figures/certified_vs_qubit.py       # reads figures/data/certified_vs_qubit.nc

Run experiments/certified_vs_qubit.py first. Top row: the Devetak-Winter key rate (x = 0)
against visibility for the paper's key tuples; the true DI rate of the protocol (constraint
<B>) lies in the shaded band between the certified and qubit values. Bottom row: the width of
the band. Drawn by jaxbell.plots.certified_vs_qubit_figure (axis labels from the dataset's
long_name and units).
"""

from __future__ import annotations

import pathlib

from jaxbell import open_dataset, plots

HERE = pathlib.Path(__file__).resolve().parent


def main() -> pathlib.Path:
    out = plots.write(
        plots.certified_vs_qubit_figure(open_dataset(HERE / "data" / "certified_vs_qubit.nc")),
        HERE / "certified_vs_qubit.png",
    )
    print(f"wrote {out}")
    return out


if __name__ == "__main__":
    main()
