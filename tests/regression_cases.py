"""Public results at fixed points, recorded once on the code before a refactor and compared after.

``python tests/regression_cases.py tests/data/regression_reference.npz`` writes the reference
(issue 19 recorded it on main at 535460f, before the rates side got its Protocol/Device values
and backend registry); ``tests/test_regression.py`` recomputes every case and compares:
bit-identical for closed forms, grids, searches and the explicit attack (``qubit``), within
:data:`CERTIFIED_ATOL` for certified (``bff``) values. Cheap on purpose (tens of seconds).
"""

from __future__ import annotations

import sys

import jax
import numpy as np

PI = np.pi
CHSH = (PI / 2, PI / 4, 3 * PI / 4)
PROP3 = (PI / 3, PI / 2 - 0.1, 5 * PI / 6)
TUPLES = np.array([CHSH, PROP3, (PI / 4, PI / 2 - 0.1, PI), (0.3, 0.2, 0.1), (1.388, 1.121, 2.519)])
LOOSE = {"directions": 16, "starts": 4, "steps": 200, "refine": 0, "tol": 1.0}
BFF4 = {"m": 4, "processes": 1, "progress": False, "solver": "CLARABEL"}  # as recorded
ATTACK = {"starts": 4, "steps": 120, "rounds": 3, "tol": 1.0}
#: largest difference allowed in certified values (same solver, same SDPs)
CERTIFIED_ATOL = 1e-9


def _closed_forms(jb):
    t, p, w = TUPLES.T
    out = {
        "bell_coefficients": jb.bell_coefficients(t, p, w),
        "local_bound": jb.local_bound(t, p, w),
        "quantum_bound": jb.quantum_bound(t, p, w),
        "is_self_testing": jb.is_self_testing(t, p, w),
        "strategy_correlators": jb.strategy_correlators(t, p, w),
        "max_chsh_value": jb.max_chsh_value(jb.strategy_correlators(t, p, w)),
        "key_rate_at_quantum_bound": jb.key_rate_at_quantum_bound(t, p, w),
        "epsilon_at_quantum_bound": jb.epsilon_at_quantum_bound(t, p, w),
        "global_rate_at_quantum_bound": jb.global_rate_at_quantum_bound(t, p, w),
        "device_behaviour": jb.device_behaviour(t, p, w, visibility=0.9, efficiency=0.95),
        "device_behaviour_aligned": jb.device_behaviour(
            t, p, w, visibility=0.9, efficiency=0.95, bob_key="aligned"
        ),
        "chsh_entropy": jb.chsh_entropy(np.array([2.2, 2.5, 2.8])),
    }
    beh = jb.device_behaviour(t, p, w, visibility=0.9, bob_key="aligned")
    out["error_correction_cost"] = jb.error_correction_cost(beh, 0, 2, preprocessing=0.1)
    return {f"closed/{k}": np.asarray(v) for k, v in out.items()}


def _grid(jb):
    ds = jb.evaluate_grid(
        np.linspace(0, PI, 6), np.linspace(-PI / 2, PI / 2, 5), np.linspace(PI / 2, PI, 4)
    )
    return {f"grid/{k}": np.asarray(ds[k].values) for k in ds.data_vars}


def _search(jb):
    out = {}
    r = jb.find_tuple(2.3, min_key_rate=0.99)
    s = jb.max_chsh(min_key_rate=0.9999)
    for name, res in (("find_tuple", r), ("max_chsh", s)):
        out[f"search/{name}"] = np.array(
            [res.theta, res.phi, res.omega, res.max_chsh, res.key_rate, res.global_rate]
        )
    return out


def _attack(jb):
    out = {}
    eta = abs(float(jb.quantum_bound(*CHSH))) * np.array([0.85, 0.92, 0.99])
    out["di_entropy_key"] = jb.di_entropy(*CHSH, eta, options=LOOSE)
    out["di_entropy_global"] = jb.di_entropy(*CHSH, eta, kind="global", x=1, y=0, options=LOOSE)
    out["di_entropy_pre"] = jb.di_entropy(*CHSH, eta, preprocessing=0.1, options=LOOSE)
    v = np.array([0.9, 0.95, 1.0])
    out["noisy_key_rate"] = jb.noisy_key_rate(*PROP3, v, options=LOOSE)
    out["noisy_key_rate_x0"] = jb.noisy_key_rate(*CHSH, v, x=0, options=LOOSE)
    out["noisy_global_rate"] = jb.noisy_global_rate(*CHSH, v, x=0, y=1, options=LOOSE)
    out["noisy_key_rate_aligned_pre"] = jb.noisy_key_rate(
        *CHSH, v, x=0, bob_key="aligned", preprocessing=0.1, options=LOOSE
    )
    out["noisy_key_rate_lossy"] = jb.noisy_key_rate(
        *CHSH, 0.99, x=0, bob_key="aligned", efficiency=np.array([0.93, 0.97]), options=LOOSE
    )
    rate, flip = jb.noisy_key_rate(
        *CHSH, 0.9, x=0, bob_key="aligned", preprocessing="optimal", options=LOOSE,
        return_preprocessing=True,
    )  # fmt: skip
    out["noisy_key_rate_optimal"] = np.array([rate, flip])
    out["critical_visibility"] = jb.critical_visibility(*CHSH, x=0, options=LOOSE)
    out["critical_visibility_global"] = jb.critical_visibility(
        *CHSH, kind="global", x=0, y=0, options=LOOSE
    )
    out["critical_efficiency"] = jb.critical_efficiency(
        *CHSH, x=0, bob_key="aligned", options=LOOSE, xtol=1e-4
    )
    beh = jb.device_behaviour(*CHSH, visibility=0.95, bob_key="aligned")
    out["observed_key_rate"] = jb.observed_key_rate(
        beh, bell=CHSH, options=LOOSE, bob_key="aligned"
    )
    out["observed_key_rate_correlators"] = jb.observed_key_rate(
        beh, constraint="correlators", options=ATTACK, bob_key="aligned"
    )
    ds = jb.rate_curve(*CHSH, num=4, options=LOOSE)
    for k in ("entropy", "slope", "intercept", "curve_status"):
        out[f"rate_curve_{k}"] = ds[k].values
    ds = jb.noisy_rate_curve(*CHSH, [0.9, 1.0], kind="key", x=0, options=LOOSE)
    for k in ds.data_vars:
        if ds[k].dtype.kind in "fiub":
            out[f"noisy_rate_curve_{k}"] = ds[k].values
    return {f"attack/{k}": np.asarray(v) for k, v in out.items()}


def _certified(jb):
    out = {}
    eta = abs(float(jb.quantum_bound(*CHSH))) * np.array([0.85, 0.95])
    out["di_entropy"] = jb.di_entropy(*CHSH, eta, method="bff", options=BFF4)
    out["di_entropy_pre"] = jb.di_entropy(*CHSH, eta, method="bff", options=BFF4, preprocessing=0.1)
    out["noisy_key_rate_aligned"] = jb.noisy_key_rate(
        *CHSH, [0.9, 0.95], x=0, bob_key="aligned", method="bff", options=BFF4
    )
    out["noisy_key_rate_correlators"] = jb.noisy_key_rate(
        *PROP3, 0.95, x=0, constraint="correlators", method="bff", options=BFF4
    )
    beh = jb.device_behaviour(*CHSH, visibility=0.95, bob_key="aligned")
    mtf = jb.min_tradeoff_functions(beh, bell=CHSH, options=BFF4)
    out["min_tradeoff_slope"] = mtf.slope
    out["min_tradeoff_value"] = mtf.value
    out["finite_key_rate"] = jb.finite_key_rate(
        beh, [1e7, 1e9], bell=CHSH, min_tradeoff=mtf, bob_key="aligned"
    )
    return {f"certified/{k}": np.asarray(v) for k, v in out.items()}


CASES = (_closed_forms, _grid, _search, _attack, _certified)


def compute() -> dict[str, np.ndarray]:
    import jaxbell as jb

    jax.config.update("jax_enable_x64", True)
    out = {}
    for case in CASES:
        out.update(case(jb))
    return out


if __name__ == "__main__":  # pragma: no cover
    np.savez(sys.argv[1], **compute())
