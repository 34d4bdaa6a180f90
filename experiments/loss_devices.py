"""Lossy two-qubit devices (issue 22): key rate against detection efficiency, thresholds.

For Alice's key input x = 0 and Bob's key-only input y = 2 (no-click kept as his third outcome
unless stated), the devices of :func:`jaxbell.optimise_device`:

* ``chsh_max``: the aligned maximally entangled CHSH device, only p optimised;
* ``chsh``: CHSH test, the state angle, angles and noisy preprocessing p optimised;
* ``family``: the asymmetric-CHSH member (pi/2, phi, pi - phi) searched too;
* ``full``: the ``chsh`` device's full statistics as the test;

each by the attack (the search's tight analytic bound, Ho et al. 2020 / Woodhead, Acin &
Pironio 2021; the full statistics by column generation) and certified (BFF, m = 6), and the
attack's efficiency thresholds of CHSH / the family with and without preprocessing, with the
no-click kept and binned (the certified ones: the grid's lowest efficiency with a positive
certified rate).

    python experiments/loss_devices.py            # about 10-15 min on two cores
    python experiments/loss_devices.py --quick    # a coarse grid, a few minutes

Writes figures/data/loss_devices.nc; figures/loss_devices.py draws it.
"""

from __future__ import annotations

import argparse
import math
import pathlib
import sys
import time

import jax
import numpy as np

jax.config.update("jax_enable_x64", True)

import jaxbell as jb  # noqa: E402
from jaxbell.dataset import labelled_dataset  # noqa: E402
from jaxbell.rates import loss  # noqa: E402
from jaxbell.store import save_dataset  # noqa: E402

OUT = pathlib.Path(__file__).resolve().parents[1] / "figures" / "data"
CHSH = (math.pi / 2, math.pi / 4, 3 * math.pi / 4)
ALIGNED = np.array([math.pi / 4, 0.0, math.pi / 2, math.pi / 4, -math.pi / 4, 0.0, 0.0])
CERT = {"m": 6, "processes": 1}
THRESHOLD_CASES = {
    "chsh, p optimal, kept": {"bell": None, "preprocessing": "optimal", "no_click": "keep"},
    "chsh, p optimal, binned": {"bell": None, "preprocessing": "optimal", "no_click": "bin"},
    "chsh, p = 0, kept": {"bell": None, "preprocessing": 0.0, "no_click": "keep"},
    "chsh, p = 0, binned": {"bell": None, "preprocessing": 0.0, "no_click": "bin"},
    "family, p optimal, kept": {"bell": "family", "preprocessing": "optimal", "no_click": "keep"},
}


def _aligned_rate(eff):
    """The aligned maximally entangled device: the best p on a grid, (rate, p)."""
    flips = np.linspace(0.0, 0.45, 46)
    rates = [float(loss.device_key_rate(np.append(ALIGNED[:6], f), eff)) for f in flips]
    i = int(np.argmax(rates))
    return rates[i], float(flips[i])


def _certified(u, eff, constraint, bell=CHSH):
    beh = np.asarray(jb.qubit_behaviour(u[0], u[1:3], u[3:6], efficiency=eff, no_click="keep"))
    return float(
        jb.observed_key_rate(
            beh,
            bell=bell,
            constraint=constraint,
            bob_key="aligned",
            preprocessing=float(u[6]),
            method="bff",
            options=CERT,
        )  # fmt: skip
    )


def main(argv=None) -> pathlib.Path:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args(argv)
    effs = np.round(np.arange(0.80, 1.0001, 0.04 if args.quick else 0.02), 4)
    t0 = time.perf_counter()
    cases = ["chsh_max", "chsh", "family", "full"]
    attack = np.full((len(cases), effs.size), np.nan)
    cert = np.full_like(attack, np.nan)
    state = np.full_like(attack, np.nan)
    flip = np.full_like(attack, np.nan)
    for j, eff in enumerate(effs):
        r, f = _aligned_rate(eff)
        attack[0, j], flip[0, j], state[0, j] = r, f, math.pi / 4
        if r > 0:
            cert[0, j] = _certified(np.append(ALIGNED[:6], f), eff, "bell")
        res = jb.optimise_device("key_rate", efficiency=float(eff), certify=False, beside=False)
        u = np.array([res.state_angle, *res.alice_angles, *res.bob_angles, res.preprocessing])
        attack[1, j], state[1, j], flip[1, j] = res.value, res.state_angle, res.preprocessing
        if res.value > 0:
            cert[1, j] = _certified(u, eff, "bell")
        beh = res.behaviour()
        attack[3, j] = float(jb.observed_key_rate(beh, constraint="full", method="attack",
                                                  bob_key="aligned",
                                                  preprocessing=res.preprocessing))  # fmt: skip
        state[3, j], flip[3, j] = res.state_angle, res.preprocessing
        if attack[3, j] > 0:
            cert[3, j] = _certified(u, eff, "full")
        fam = jb.optimise_device("key_rate", efficiency=float(eff), bell="family", certify=False,
                                 beside=False)  # fmt: skip
        uf = np.array([fam.state_angle, *fam.alice_angles, *fam.bob_angles, fam.preprocessing])
        attack[2, j], state[2, j], flip[2, j] = fam.value, fam.state_angle, fam.preprocessing
        if fam.value > 0:
            cert[2, j] = _certified(uf, eff, "bell", fam.bell)
        took = time.perf_counter() - t0
        print(f"eta = {eff:.2f}: attack {np.round(attack[:, j], 5)}, certified "
              f"{np.round(cert[:, j], 5)} ({took:.0f} s)", flush=True)  # fmt: skip
    names = list(THRESHOLD_CASES)
    th_attack = np.full(len(names), np.nan)
    th_state = np.full(len(names), np.nan)
    th_flip = np.full(len(names), np.nan)
    for i, (name, kw) in enumerate(THRESHOLD_CASES.items()):
        res = jb.optimise_device("critical_efficiency", certify=False, beside=False, tol=2e-5, **kw)
        th_attack[i], th_state[i], th_flip[i] = res.value, res.state_angle, res.preprocessing
        print(f"{name}: attack threshold {res.value:.5f} (s = {res.state_angle:.4f}, p = "
              f"{res.preprocessing:.4f})", flush=True)  # fmt: skip
    th_cert = np.full(len(names), np.nan)
    th_cert[0] = next((e for e, c in zip(effs, cert[1], strict=True) if c > 0), np.nan)
    th_cert[4] = next((e for e, c in zip(effs, cert[2], strict=True) if c > 0), np.nan)
    full_cert = next((e for e, c in zip(effs, cert[3], strict=True) if c > 0), np.nan)
    eff_attrs = {"long_name": "detection efficiency", "units": "1",
                 "description": "Detection efficiency of each party"}  # fmt: skip
    ds = labelled_dataset(
        {
            "rate_attack": (("device_case", "efficiency"), attack),
            "rate_certified": (("device_case", "efficiency"), cert),
            "state_angle": (("device_case", "efficiency"), state),
            "preprocessing": (("device_case", "efficiency"), flip),
            "threshold_attack": (("threshold_case",), th_attack),
            "threshold_certified": (("threshold_case",), th_cert),
        },
        {"device_case": np.array(cases), "efficiency": effs, "threshold_case": np.array(names)},
        title="Lossy two-qubit devices: key rate against detection efficiency (issue 22)",
        settings={
            "key_input": "x = 0, y = 2",
            "certified_m": CERT["m"],
            "quick": bool(args.quick),
            "full_statistics_certified_threshold": float(full_cert),
            "seconds": round(time.perf_counter() - t0, 1),
        },  # fmt: skip
        history="experiments/loss_devices.py",
        references="Ho et al., PRL 124, 230502 (2020); Woodhead, Acin & Pironio, Quantum 5, 443 "
        "(2021); Brown, Fawzi & Fawzi, Quantum 8, 1445 (2024)",
    )
    ds["efficiency"].attrs.update(eff_attrs)
    OUT.mkdir(parents=True, exist_ok=True)
    out = OUT / "loss_devices.nc"
    save_dataset(ds, out, overwrite=True)
    print(f"wrote {out} in {time.perf_counter() - t0:.0f} s")
    return out


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
