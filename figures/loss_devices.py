"""Figure: key rate against detection efficiency of lossy two-qubit devices (issue 22).

    python figures/loss_devices.py      # reads figures/data/loss_devices.nc

Run experiments/loss_devices.py first (and experiments/loss_full_statistics.py for the device
refined for its full statistics). Lines: the attack (an upper bound on the device's DI rate);
markers: the certified BFF bound (a lower bound). Drawn by jaxbell.plots.loss_devices_figure.
"""

from __future__ import annotations

import pathlib

from jaxbell import open_dataset, plots

HERE = pathlib.Path(__file__).resolve().parent


def main() -> pathlib.Path:
    refined = HERE / "data" / "loss_full_statistics.nc"  # experiments/loss_full_statistics.py
    out = plots.write(
        plots.loss_devices_figure(
            open_dataset(HERE / "data" / "loss_devices.nc"),
            open_dataset(refined) if refined.exists() else None,
        ),
        HERE / "loss_devices.png",
    )
    print(f"wrote {out}")
    return out


if __name__ == "__main__":
    main()
