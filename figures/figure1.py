"""Draw figure1.png from the dataset written by experiments/figure1_grid.py (axes labelled from
its attributes).

    python figures/figure1.py [--data experiments/figure1_grid.nc] [--out figures/figure1.png]
"""

import argparse
from pathlib import Path

from jaxbell import open_dataset, plots

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="experiments/figure1_grid.nc", help="input .nc dataset")
    parser.add_argument("--out", default="figures/figure1.png", help="output PNG")
    parser.add_argument("--pdf", action="store_true", help="also write a PDF beside the PNG")
    parser.add_argument("--dpi", type=int, default=150, help="resolution of the PNG (150)")
    args = parser.parse_args()
    fig = plots.figure1(open_dataset(args.data))
    plots.save(fig, args.out, dpi=args.dpi, palette=True)  # compact PNG for the README
    if args.pdf:
        fig.savefig(Path(args.out).with_suffix(".pdf"))
    print("wrote", args.out)
