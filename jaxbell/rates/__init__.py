"""DI rates below the quantum bound: protocols, devices, attacks and certificates.

One front door for the rates side of jaxbell (``import jaxbell as jb`` exposes the same names):
:func:`di_entropy`, :func:`rate_curve`, :func:`noisy_key_rate`, :func:`noisy_global_rate`,
:func:`critical_visibility`, :func:`critical_efficiency`, :func:`observed_key_rate`,
:func:`noisy_rate_curve` and the device model :func:`device_behaviour`. Behind it:

* :mod:`jaxbell.rates.values` -- :class:`Protocol` and :class:`Device`, the protocol and the
  device as frozen values (every rate function takes ``protocol=`` and ``device=``);
* :mod:`jaxbell.rates.backends` -- the entropy backends behind one interface (bound direction,
  supported kinds / constraints / preprocessing, certificates, options) and their registry;
* :mod:`jaxbell.rates.front` -- the rate functions above: one rate kernel, the thresholds;
* :mod:`jaxbell.rates.protocol` -- behaviours p[a, b, x, y] of devices (white noise, detection
  efficiency, Bob's key-only input), their validation, error-correction costs with noisy
  preprocessing, and the analytic references (Pironio et al. 2009, Ho et al. 2020, Woodhead,
  Acin & Pironio 2021);
* :mod:`jaxbell.rates.qubit` -- the explicit attack constrained by one Bell value (Jordan's
  lemma, convex envelope): an upper bound on the DI entropy;
* :mod:`jaxbell.rates.attack` -- the explicit attack constrained by all correlators or the full
  behaviour (column generation over qubit strategies): an upper bound;
* :mod:`jaxbell.rates.bff` -- certified lower bounds (Brown-Fawzi-Fawzi hierarchy, every
  constraint, noisy preprocessing), and the certified affine bounds of their duals;
* :mod:`jaxbell.rates.design` -- :func:`optimise_protocol`: the best tuple of the whole family
  for noise, loss or rate (optax on the attack's envelope-theorem gradients), certified;
* :mod:`jaxbell.rates.loss` -- :func:`optimise_device`: the best lossy two-qubit device
  (partially entangled state, angles, noisy preprocessing, the no-click kept) for a Bell test;
* :mod:`jaxbell.rates.finite` -- finite-size key rates by entropy accumulation with those
  affine bounds as min-tradeoff functions (:func:`finite_key_rate`,
  :func:`finite_rate_curve`, :func:`min_rounds`).

The modules' old homes ``jaxbell.qubit`` and ``jaxbell.bff`` (and ``jaxbell.rates`` itself)
keep working.
"""

from jaxbell.rates import attack, backends, bff, design, finite, loss, protocol, qubit, values
from jaxbell.rates.backends import Backend
from jaxbell.rates.design import DesignResult, optimise_protocol
from jaxbell.rates.finite import (
    FINITE_STATUSES,
    MinTradeoff,
    finite_key_rate,
    finite_rate_curve,
    min_rounds,
    min_tradeoff_functions,
)
from jaxbell.rates.front import (
    BOUNDS,
    CONSTRAINTS,
    CRITICAL_STATUSES,
    RATE_RESOLUTION,
    critical_efficiency,
    critical_visibility,
    di_entropy,
    noisy_global_rate,
    noisy_key_rate,
    noisy_rate_curve,
    noisy_strategy_entropy,
    observed_key_rate,
    rate_curve,
)
from jaxbell.rates.loss import DeviceResult, optimise_device
from jaxbell.rates.protocol import (
    asymmetric_chsh_entropy,
    check_behaviour,
    chsh_entropy,
    chsh_key_rate,
    device_behaviour,
    error_correction_cost,
    qubit_behaviour,
)
from jaxbell.rates.values import Device, Protocol, QubitDevice

__all__ = [
    "BOUNDS",
    "Backend",
    "CONSTRAINTS",
    "CRITICAL_STATUSES",
    "DesignResult",
    "DeviceResult",
    "Device",
    "FINITE_STATUSES",
    "MinTradeoff",
    "Protocol",
    "QubitDevice",
    "RATE_RESOLUTION",
    "asymmetric_chsh_entropy",
    "attack",
    "backends",
    "bff",
    "check_behaviour",
    "chsh_entropy",
    "chsh_key_rate",
    "critical_efficiency",
    "critical_visibility",
    "design",
    "device_behaviour",
    "di_entropy",
    "error_correction_cost",
    "qubit_behaviour",
    "finite",
    "finite_key_rate",
    "finite_rate_curve",
    "loss",
    "min_rounds",
    "min_tradeoff_functions",
    "noisy_global_rate",
    "noisy_key_rate",
    "noisy_rate_curve",
    "noisy_strategy_entropy",
    "observed_key_rate",
    "optimise_device",
    "optimise_protocol",
    "protocol",
    "qubit",
    "rate_curve",
    "values",
]
