"""Draw tradeoff.png from the dataset written by experiments/tradeoff_curve.py (axes labelled from
its attributes).

    python figures/tradeoff.py [--data experiments/tradeoff.nc] [--out figures/tradeoff.png] [--pdf]
"""

import argparse
from pathlib import Path

from jaxbell import open_dataset, plots

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="experiments/tradeoff.nc", help="input .nc dataset")
    parser.add_argument("--out", default="figures/tradeoff.png", help="output PNG")
    parser.add_argument("--pdf", action="store_true", help="also write a PDF beside the PNG")
    parser.add_argument("--dpi", type=int, default=150, help="resolution of the PNG (150)")
    args = parser.parse_args()
    fig = plots.tradeoff_figure(open_dataset(args.data))
    plots.save(fig, args.out, dpi=args.dpi, palette=True)  # compact PNG for the README
    if args.pdf:
        fig.savefig(Path(args.out).with_suffix(".pdf"))
    print("wrote", args.out)
