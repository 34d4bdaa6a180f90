"""jaxbell: the Bell family B_{theta,phi,omega} of Wooltorton, Brown & Colbeck on dense grids.

Import as ``import jaxbell as jb``. The physics functions are pure, one-point and broadcast;
grids and searches return labelled ``xarray`` datasets. See README.md and docs/architecture.md.

Reference: L. Wooltorton, P. Brown and R. Colbeck, Phys. Rev. Lett. 132, 210802 (2024),
doi:10.1103/PhysRevLett.132.210802.
"""

from jaxbell._version import __version__
from jaxbell.entropy import (
    binary_entropy,
    epsilon_at_quantum_bound,
    global_rate_at_quantum_bound,
    key_rate_at_quantum_bound,
    pair_entropies_at_quantum_bound,
    shannon_entropy,
    von_neumann_entropy,
)
from jaxbell.family import (
    bell_coefficients,
    is_self_testing,
    local_bound,
    quantum_bound,
    self_testing_margin,
)
from jaxbell.grid import evaluate_grid, write_grid
from jaxbell.nonlocality import chsh_type_values, chsh_value, max_chsh_value
from jaxbell.rates import (
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
from jaxbell.rates.bff import BffOptions, BffResult, bff_entropy
from jaxbell.rates.design import DesignResult, optimise_protocol
from jaxbell.rates.finite import (
    MinTradeoff,
    finite_key_rate,
    finite_rate_curve,
    min_rounds,
    min_tradeoff_functions,
)
from jaxbell.rates.protocol import (
    asymmetric_chsh_entropy,
    behaviour_correlators,
    behaviour_marginals,
    check_behaviour,
    chsh_entropy,
    chsh_key_rate,
    device_behaviour,
    error_correction_cost,
)
from jaxbell.rates.qubit import QubitEnvelope, QubitOptions, qubit_envelope
from jaxbell.rates.values import Device, Protocol
from jaxbell.reductions import merge_reductions, reduce_grid
from jaxbell.search import SearchResult, find_tuple, max_chsh, tradeoff_curve
from jaxbell.store import open_dataset, save_dataset
from jaxbell.thresholds import threshold_grid
from jaxbell.strategy import (
    noisy_correlators,
    strategy_angles,
    strategy_correlators,
    xy_plane_correlators,
)

__all__ = [
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
