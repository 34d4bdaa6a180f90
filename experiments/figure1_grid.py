"""Fig. 1's data: the omega = pi plane over (theta, phi), with the maxima of I_CHSH marked.

    python experiments/figure1_grid.py [--n 601] [--out experiments/figure1_grid.nc]

Writes a labelled netCDF dataset (jaxbell.evaluate_grid's variables; attributes
crosses_theta/crosses_phi: the maxima 3 sqrt(3)/2 of I_CHSH, Prop. 2). Draw it with
figures/figure1.py.
"""

import argparse

import jax

from jaxbell import save_dataset
from jaxbell.reproduce import figure1_grid

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=601, help="points per axis (default 601)")
    parser.add_argument("--out", default="experiments/figure1_grid.nc", help="output .nc file")
    args = parser.parse_args()
    jax.config.update("jax_enable_x64", True)
    print("wrote", save_dataset(figure1_grid(args.n), args.out, overwrite=True))
