"""Figure: key rate of the aligned protocol against detection efficiency, attack and certified.

    python figures/protocol_efficiency.py      # reads figures/data/protocol_thresholds.nc

Run experiments/protocol_thresholds.py first. One panel per construction; the true DI rate of
the protocol lies between the attack (upper bound) and the certified (lower bound) curves.
Drawn by jaxbell.plots.protocol_efficiency_figure.
"""

from __future__ import annotations

import pathlib

from jaxbell import open_dataset, plots

HERE = pathlib.Path(__file__).resolve().parent


def main() -> pathlib.Path:
    out = plots.write(
        plots.protocol_efficiency_figure(open_dataset(HERE / "data" / "protocol_thresholds.nc")),
        HERE / "protocol_efficiency.png",
    )
    print(f"wrote {out}")
    return out


if __name__ == "__main__":
    main()
