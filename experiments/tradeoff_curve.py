"""The trade-off the paper bounds: sup max_chsh over self-testing tuples vs the epsilon bound.

    python experiments/tradeoff_curve.py [--n 41] [--restarts 8] [--out experiments/tradeoff.nc]

For epsilon log-spaced from 1e-6 to h(1/4) bits: the supremum of max_chsh over tuples
satisfying condition (4) with key_rate >= 1 - epsilon at the quantum bound, with and without
perfect randomness (global_rate = 2), and the tuples reaching it (jaxbell.tradeoff_curve).
As epsilon -> 0 the suprema tend to 5/2 (Prop. 3) and 1 + sqrt(2) (Prop. 5). Draw it with
figures/tradeoff.py.
"""

import argparse

import jax

from jaxbell import save_dataset
from jaxbell.reproduce import tradeoff

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=41, help="epsilon values (default 41)")
    parser.add_argument("--restarts", type=int, default=8, help="restarts per case (default 8)")
    parser.add_argument("--out", default="experiments/tradeoff.nc", help="output .nc file")
    args = parser.parse_args()
    jax.config.update("jax_enable_x64", True)
    ds = tradeoff(args.n, restarts=args.restarts)
    print("wrote", save_dataset(ds, args.out, overwrite=True))
    for pr in (False, True):
        s = ds.max_chsh.sel(perfect_randomness=pr)
        print(
            f"perfect_randomness={pr}: sup max_chsh from {float(s[0]):.9f} "
            f"(eps={float(ds.max_epsilon[0]):.0e}) to {float(s[-1]):.9f}"
        )
