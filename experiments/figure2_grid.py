"""Fig. 2's data: the limit phi = pi/2 over (theta, omega), with the maxima of I_CHSH marked.

    python experiments/figure2_grid.py [--n 601] [--out experiments/figure2_grid.nc]

Writes a labelled netCDF dataset (jaxbell.evaluate_grid's variables; attributes
crosses_theta/crosses_omega: the maxima 5/2 of I_CHSH, Props. 3-4, and
randomness_crosses_theta/omega: the maxima 1 + sqrt(2) with E01 = 0, Props. 5-6). Draw it with
figures/figure2.py.
"""

import argparse

import jax

from jaxbell import save_dataset
from jaxbell.reproduce import figure2_grid

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=601, help="points per axis (default 601)")
    parser.add_argument("--out", default="experiments/figure2_grid.nc", help="output .nc file")
    args = parser.parse_args()
    jax.config.update("jax_enable_x64", True)
    print("wrote", save_dataset(figure2_grid(args.n), args.out, overwrite=True))
