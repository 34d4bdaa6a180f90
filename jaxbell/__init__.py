"""jaxbell: the Bell family B_{theta,phi,omega} of Wooltorton, Brown & Colbeck on dense grids.

Import as ``import jaxbell as jb``. The physics functions are pure, one-point and broadcast;
grids and searches return labelled ``xarray`` datasets. See README.md and docs/architecture.md.

Reference: L. Wooltorton, P. Brown and R. Colbeck, Phys. Rev. Lett. 132, 210802 (2024),
doi:10.1103/PhysRevLett.132.210802.
"""

import importlib

from jaxbell._version import __version__

#: where each public name lives: imported on first use (``jb.quantum_bound`` imports
#: jaxbell.family then), so ``import jaxbell`` and the command line's usage errors and
#: ``--version`` start without importing jax
_HOMES: dict[str, tuple[str, ...]] = {
    "jaxbell.entropy": (
        "binary_entropy",
        "epsilon_at_quantum_bound",
        "global_rate_at_quantum_bound",
        "key_rate_at_quantum_bound",
        "pair_entropies_at_quantum_bound",
        "shannon_entropy",
        "von_neumann_entropy",
    ),
    "jaxbell.family": (
        "bell_coefficients",
        "is_self_testing",
        "local_bound",
        "quantum_bound",
        "self_testing_margin",
    ),
    "jaxbell.grid": (
        "evaluate_grid",
        "write_grid",
    ),
    "jaxbell.nonlocality": (
        "chsh_type_values",
        "chsh_value",
        "max_chsh_value",
    ),
    "jaxbell.rates": (
        "critical_efficiency",
        "critical_visibility",
        "di_entropy",
        "noisy_global_rate",
        "noisy_key_rate",
        "noisy_rate_curve",
        "noisy_strategy_entropy",
        "observed_key_rate",
        "rate_curve",
    ),
    "jaxbell.rates.bff": (
        "BffOptions",
        "BffResult",
        "bff_entropy",
    ),
    "jaxbell.rates.design": (
        "DesignResult",
        "optimise_protocol",
    ),
    "jaxbell.rates.finite": (
        "MinTradeoff",
        "finite_key_rate",
        "finite_rate_curve",
        "min_rounds",
        "min_tradeoff_functions",
    ),
    "jaxbell.rates.protocol": (
        "asymmetric_chsh_entropy",
        "behaviour_correlators",
        "behaviour_marginals",
        "check_behaviour",
        "chsh_entropy",
        "chsh_key_rate",
        "device_behaviour",
        "error_correction_cost",
        "qubit_behaviour",
    ),
    "jaxbell.rates.loss": (
        "DeviceResult",
        "optimise_device",
        "refine_device",
    ),
    "jaxbell.rates.qubit": (
        "QubitEnvelope",
        "QubitOptions",
        "qubit_envelope",
    ),
    "jaxbell.rates.values": (
        "Device",
        "Protocol",
        "QubitDevice",
    ),
    "jaxbell.reductions": (
        "merge_reductions",
        "reduce_grid",
    ),
    "jaxbell.search": (
        "SearchResult",
        "find_tuple",
        "max_chsh",
        "tradeoff_curve",
    ),
    "jaxbell.thresholds": ("threshold_grid",),
    "jaxbell.store": (
        "open_dataset",
        "save_dataset",
    ),
    "jaxbell.strategy": (
        "noisy_correlators",
        "strategy_angles",
        "strategy_correlators",
        "xy_plane_correlators",
    ),
}
_LAZY = {name: module for module, names in _HOMES.items() for name in names}

#: subpackages and modules reachable as attributes (``jb.rates``, ``jb.store``, ...)
_SUBMODULES = frozenset(
    {
        "bff", "dataset", "entropy", "family", "grid", "nonlocality", "plots", "qubit",
        "rates", "reductions", "reproduce", "search", "sharding", "store", "strategy",
    }
)  # fmt: skip


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
    elif name in _SUBMODULES:
        value = importlib.import_module(f"jaxbell.{name}")
    else:
        raise AttributeError(f"module 'jaxbell' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY) | _SUBMODULES)


__all__ = [
    "DeviceResult",
    "QubitDevice",
    "SearchResult",
    "BffOptions",
    "BffResult",
    "DesignResult",
    "Device",
    "MinTradeoff",
    "Protocol",
    "QubitEnvelope",
    "QubitOptions",
    "__version__",
    "asymmetric_chsh_entropy",
    "bff_entropy",
    "behaviour_correlators",
    "behaviour_marginals",
    "check_behaviour",
    "chsh_entropy",
    "chsh_key_rate",
    "bell_coefficients",
    "binary_entropy",
    "chsh_type_values",
    "chsh_value",
    "critical_efficiency",
    "critical_visibility",
    "device_behaviour",
    "di_entropy",
    "epsilon_at_quantum_bound",
    "error_correction_cost",
    "evaluate_grid",
    "optimise_device",
    "qubit_behaviour",
    "refine_device",
    "find_tuple",
    "finite_key_rate",
    "finite_rate_curve",
    "global_rate_at_quantum_bound",
    "is_self_testing",
    "key_rate_at_quantum_bound",
    "local_bound",
    "max_chsh",
    "max_chsh_value",
    "merge_reductions",
    "min_rounds",
    "min_tradeoff_functions",
    "noisy_correlators",
    "noisy_global_rate",
    "noisy_key_rate",
    "noisy_rate_curve",
    "noisy_strategy_entropy",
    "observed_key_rate",
    "optimise_protocol",
    "open_dataset",
    "pair_entropies_at_quantum_bound",
    "quantum_bound",
    "reduce_grid",
    "qubit_envelope",
    "rate_curve",
    "save_dataset",
    "self_testing_margin",
    "shannon_entropy",
    "strategy_angles",
    "strategy_correlators",
    "tradeoff_curve",
    "threshold_grid",
    "write_grid",
    "von_neumann_entropy",
    "xy_plane_correlators",
]
