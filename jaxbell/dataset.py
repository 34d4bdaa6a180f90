"""The one place that builds and labels xarray objects (files are written and read by
:mod:`jaxbell.store`).

Every variable and coordinate carries ``long_name``, ``units`` and ``description`` from the
glossary below (the glossary of docs/architecture.md); every dataset carries ``title``, ``source``
(jaxbell version), ``history``, ``references`` and the run settings. Attributes are attached
last, because xarray arithmetic drops them.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping
from typing import Any

import numpy as np
import xarray as xr

from jaxbell._version import __version__

__all__ = [
    "GLOSSARY",
    "PAPER_DOI",
    "grid_dataset",
    "label",
    "reduction_dataset",
    "search_result_dataset",
    "tradeoff_dataset",
]

PAPER_DOI = "10.1103/PhysRevLett.132.210802"
PAPER_REFERENCE = (
    "L. Wooltorton, P. Brown and R. Colbeck, Device-Independent Quantum Key Distribution with "
    f"Arbitrarily Small Nonlocality, Phys. Rev. Lett. 132, 210802 (2024), doi:{PAPER_DOI}"
)

#: name -> (long_name, units, description). One glossary for arguments, variables and docs.
GLOSSARY: dict[str, tuple[str, str, str]] = {
    "theta": ("theta", "rad", "Angle theta of the Bell expression of eq. (2)"),
    "phi": ("phi", "rad", "Angle phi of the Bell expression of eq. (2)"),
    "omega": ("omega", "rad", "Angle omega of the Bell expression of eq. (2)"),
    "x": ("Alice's input x", "1", "Alice's measurement setting, 0 or 1"),
    "y": ("Bob's input y", "1", "Bob's measurement setting, 0 or 1"),
    "bell_coefficients": (
        "Bell coefficients c[x, y]",
        "1",
        "Coefficients of eq. (2): <B> = sum_xy c[x, y] E[x, y]",
    ),
    "local_bound": (
        "local bound eta^L",
        "1",
        "Local bound of <B_theta,phi,omega>, eq. (3); the local bounds are +-eta^L",
    ),
    "quantum_bound": (
        "quantum bound eta^Q",
        "1",
        "eta^Q = sin(theta) sin(omega - phi) sin(theta + omega + phi), eq. (5), signed as the "
        "formula gives it; the quantum bound (+-eta^Q) where condition (4) holds",
    ),
    "self_testing": (
        "self-testing (condition 4)",
        "1",
        "Condition (4): cos(theta+phi) cos(phi) cos(theta+omega) cos(omega) < 0 (beyond rounding); "
        "where true, eta^Q self-tests the strategy of eq. (6)",
    ),
    "violation_ratio": (
        "violation ratio |eta^Q| / eta^L",
        "1",
        "Ratio of quantum to local bound; > 1 where condition (4) holds and <= 1 up to "
        "rounding (a few 1e-14) where it fails; NaN where eta^L vanishes up to rounding (all "
        "coefficients zero, status 2)",
    ),
    "correlators": (
        "correlators E[x, y]",
        "1",
        "E[x, y] = sum_ab (-1)^(a+b) p(ab|xy) of the strategy of eq. (6): sin(alpha_x + beta_y) "
        "with alpha = (0, theta), beta = (phi, omega)",
    ),
    "chsh": ("CHSH value", "1", "I_CHSH = E00 + E01 + E10 - E11 of the strategy of eq. (6)"),
    "max_chsh": (
        "max CHSH-type value",
        "1",
        "Largest of the eight CHSH-type expressions of the strategy of eq. (6); > 2 iff nonlocal",
    ),
    "key_rate": (
        "key rate at eta^Q",
        "bit",
        "Devetak-Winter rate, eq. (1), at <B> = eta^Q, maximised over (x, y): "
        "max_xy [1 - h((1 + E[x, y])/2)]; NaN where condition (4) fails",
    ),
    "epsilon": (
        "epsilon = 1 - key rate",
        "bit",
        "min_xy H(A|X=x, Y=y, B) = min_xy h((1 + E[x, y])/2) at eta^Q, computed directly "
        "(relative precision kept as it tends to 0); NaN where condition (4) fails",
    ),
    "global_rate": (
        "global randomness rate at eta^Q",
        "bit",
        "max_xy H(AB|X=x, Y=y, E) = max_xy [1 + h((1 + E[x, y])/2)] at eta^Q; NaN where "
        "condition (4) fails",
    ),
    "status": (
        "point status",
        "1",
        "Per-point status flag; see flag_values and flag_meanings",
    ),
    # --- reductions of a grid (jaxbell.reduce_grid) ---
    "epsilon_bound": (
        "bound on epsilon",
        "bit",
        "Key-rate constraint key_rate >= 1 - epsilon_bound at eta^Q on self-testing points, "
        "evaluated as epsilon <= epsilon_bound (full precision for tiny bounds)",
    ),
    "largest_max_chsh": (
        "largest max_chsh with key_rate >= 1 - epsilon_bound",
        "1",
        "Largest max_chsh over the self-testing grid points whose epsilon <= epsilon_bound; "
        "NaN where no grid point meets the bound",
    ),
    "smallest_max_chsh": (
        "smallest max_chsh with key_rate >= 1 - epsilon_bound",
        "1",
        "Smallest max_chsh over the self-testing grid points whose epsilon <= epsilon_bound "
        "(the least nonlocality with that key rate on the grid); NaN where none meets it",
    ),
    "points_meeting": (
        "grid points with key_rate >= 1 - epsilon_bound",
        "1",
        "Number of self-testing grid points whose epsilon <= epsilon_bound",
    ),
    "max_chsh_bin": ("max_chsh bin", "1", "Index of a histogram bin of max_chsh"),
    "max_chsh_bin_lower": (
        "lower edge of the max_chsh bin",
        "1",
        "Bins are [lower, upper); the last bin also holds its upper edge and values up to "
        "8 units of roundoff above it (max_chsh at 2 sqrt 2 up to rounding)",
    ),
    "max_chsh_bin_upper": (
        "upper edge of the max_chsh bin",
        "1",
        "Bins are [lower, upper); the last bin also holds its upper edge and values up to "
        "8 units of roundoff above it (max_chsh at 2 sqrt 2 up to rounding)",
    ),
    "max_chsh_histogram": (
        "histogram of max_chsh over the self-testing region",
        "1",
        "Number of grid points where condition (4) holds with max_chsh in each bin",
    ),
    "max_chsh_below_bins": (
        "self-testing points below the first bin",
        "1",
        "Number of grid points where condition (4) holds with max_chsh below the first edge",
    ),
    "max_chsh_above_bins": (
        "self-testing points above the last bin",
        "1",
        "Number of grid points where condition (4) holds with max_chsh above the last edge "
        "(beyond 8 units of roundoff)",
    ),
    "self_testing_fraction": (
        "fraction of the grid where condition (4) holds",
        "1",
        "Self-testing grid points divided by all grid points",
    ),
    "status_flag": (
        "point status flag",
        "1",
        "Value of the per-point status flag of the grid; see flag_values and flag_meanings",
    ),
    "status_count": (
        "grid points per status flag",
        "1",
        "Number of grid points with each status flag",
    ),
    "grid_points": ("grid points", "1", "Number of points of the (theta, phi, omega) grid"),
}

for _which in ("largest", "smallest"):
    for _axis in ("theta", "phi", "omega"):
        GLOSSARY[f"{_axis}_at_{_which}"] = (
            f"{_axis} where {_which}_max_chsh is attained",
            "rad",
            f"Angle {_axis} of the grid point attaining {_which}_max_chsh (the first in "
            "(theta, phi, omega) order among ties); NaN where no point meets the bound",
        )

#: CF flag meanings of the grid's ``status`` variable.
STATUS_FLAGS = {
    -1: "not_computed_unfinished_block_of_a_store",
    0: "self_testing",
    1: "not_self_testing_rates_nan",
    2: "trivial_expression_all_coefficients_zero",
}


#: CF flags of every status variable, by variable name: :func:`label` attaches them wherever
#: such a variable appears (each capability registers its own below).
FLAGS: dict[str, dict[int, str]] = {
    "critical_efficiency_status": {0: "found", 1: "no_rate", 2: "failed"},
    "status": STATUS_FLAGS,
    "status_flag": {k: v for k, v in STATUS_FLAGS.items() if k >= 0},
}


def _attrs(name: str) -> dict[str, Any]:
    long_name, units, description = GLOSSARY[name]
    return {"long_name": long_name, "units": units, "description": description}


def is_label_coordinate(ds: xr.Dataset, name: str) -> bool:
    """Whether ``name`` is a coordinate that labels rather than measures: strings (a method,
    a construction) or integers (an input x, a node index). Such coordinates carry
    ``long_name`` and ``description`` but no ``units`` (CF: units do not apply to labels), so
    that xarray's plots title them "x = 0", not "x = 0 [1]"; dimensionless *quantities* keep
    units "1"."""
    if name not in ds.coords:
        return False
    dtype = ds[name].dtype
    if dtype.kind in "USO":
        return True
    return dtype.kind in "iu" and ds[name].attrs.get("units", "1") == "1"


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).replace(microsecond=0).isoformat()


def _attr_value(value):
    """An attribute value netCDF can store (no None, bools or dicts)."""
    if value is None:
        return "none"
    if isinstance(value, (bool, np.bool_)):
        return int(value)
    if isinstance(value, (list, tuple)):
        if value and all(isinstance(v, (int, float, np.number)) for v in value):
            return np.asarray(value)  # round-trips through netCDF as an array
        return ", ".join(str(_attr_value(v)) for v in value)
    if isinstance(value, Mapping):
        return ", ".join(f"{k}={_attr_value(v)}" for k, v in value.items())
    if isinstance(value, (int, float, str, np.integer, np.floating, np.ndarray)):
        return value
    return str(value)


def label(
    ds: xr.Dataset,
    *,
    title: str,
    settings: Mapping[str, Any] | None = None,
    history: str | None = None,
    references: str | None = None,
) -> xr.Dataset:
    """Attach glossary attributes to every known variable/coordinate and the dataset attributes.

    Variables whose names are not in :data:`GLOSSARY` must already carry ``long_name``,
    ``units`` and ``description``; a ``ValueError`` says which lacks them.
    """
    for name in list(ds.variables):
        if name in GLOSSARY:
            ds[name].attrs.update(_attrs(name))
        if name in FLAGS:
            flags = FLAGS[name]
            ds[name].attrs["flag_values"] = np.array(list(flags), dtype=np.int8)
            ds[name].attrs["flag_meanings"] = " ".join(flags.values())
        if is_label_coordinate(ds, name):
            ds[name].attrs.pop("units", None)
            continue
        missing = {"long_name", "units", "description"} - set(ds[name].attrs)
        if missing:
            raise ValueError(f"variable {name!r} lacks attributes {sorted(missing)}")
    refs = PAPER_REFERENCE if references is None else f"{PAPER_REFERENCE}; {references}"
    ds.attrs.update(
        {
            "title": title,
            "source": f"jaxbell {__version__}",
            "history": f"{_now()}: {history or title}",
            "references": refs,
            "Conventions": "CF-1.10",
        }
    )
    for key, value in (settings or {}).items():
        ds.attrs[key] = _attr_value(value)
    return ds


def grid_dataset(
    theta: np.ndarray,
    phi: np.ndarray,
    omega: np.ndarray,
    fields: Mapping[str, np.ndarray],
    *,
    settings: Mapping[str, Any],
    history: str | None = None,
) -> xr.Dataset:
    """Label the fields of a (theta, phi, omega) grid as a Dataset (see ``evaluate_grid``)."""
    dims = ("theta", "phi", "omega")
    data_vars = {}
    for name, arr in fields.items():
        extra = ("x", "y") if arr.ndim == 5 else ()
        data_vars[name] = (dims + extra, arr)
    coords = {
        "theta": np.asarray(theta, dtype=np.float64),
        "phi": np.asarray(phi, dtype=np.float64),
        "omega": np.asarray(omega, dtype=np.float64),
        "x": np.arange(2, dtype=np.int8),
        "y": np.arange(2, dtype=np.int8),
    }
    ds = xr.Dataset(data_vars, coords=coords)
    return label(
        ds,
        title="Bell family B_theta,phi,omega of eq. (2) on a (theta, phi, omega) grid",
        settings=settings,
        history=history,
    )


# --------------------------------------------------------------------------------------------
# Searches and the reproduction of the paper (jaxbell.search, jaxbell.reproduce)

GLOSSARY.update(
    {
        "self_testing_margin": (
            "self-testing margin",
            "1",
            "-cos(theta+phi) cos(phi) cos(theta+omega) cos(omega); condition (4) holds where it "
            "is positive (beyond rounding)",
        ),
        "supremum": (
            "supremum of max_chsh",
            "1",
            "Supremum of max_chsh over self-testing tuples meeting the search's constraints "
            "(best value found over the closure of that set)",
        ),
        "supremum_attained": (
            "supremum attained",
            "1",
            "True where a self-testing tuple reaches the supremum; False where it is approached "
            "only as condition (4) degenerates, or where the search did not converge (unknown)",
        ),
        "converged": (
            "search converged",
            "1",
            "True where the search met its optimality or target conditions and the tuple, "
            "re-checked with the closed forms, meets every constraint",
        ),
        "chsh_target": (
            "target max_chsh",
            "1",
            "The max_chsh requested from find_tuple (NaN for max_chsh searches)",
        ),
        "max_epsilon": (
            "epsilon bound",
            "bit",
            "Largest epsilon allowed: tuples must have key_rate >= 1 - max_epsilon at the "
            "quantum bound",
        ),
        "perfect_randomness": (
            "perfect randomness required",
            "1",
            "True where the search also requires global_rate == 2 (some correlator 0)",
        ),
        "restarts_at_best": (
            "restarts at the best value",
            "1",
            "Number of restarts whose value is within 1e-9 of the best (evidence of a global "
            "maximum)",
        ),
    }
)

#: variables of a search result, in order (see jaxbell.search.SearchResult)
SEARCH_VARIABLES = (
    "theta",
    "phi",
    "omega",
    "max_chsh",
    "key_rate",
    "epsilon",
    "global_rate",
    "self_testing",
    "self_testing_margin",
    "converged",
    "supremum",
    "supremum_attained",
    "chsh_target",
)


def search_result_dataset(result) -> xr.Dataset:
    """Label a :class:`jaxbell.search.SearchResult` as a 0-d Dataset (settings as attributes)."""
    data = {name: ((), np.asarray(getattr(result, name))) for name in SEARCH_VARIABLES}
    ds = xr.Dataset(data)
    settings = {
        "search": result.search,
        "note": result.note,
        "min_key_rate": result.min_key_rate,
        "max_epsilon": result.max_epsilon,
        "perfect_randomness": result.perfect_randomness,
        "fixed": dict(result.fixed) if result.fixed else "none",
        "require_self_testing": result.require_self_testing,
        "seed": result.seed,
        "restarts": result.restarts,
        "steps": result.steps,
        "restarts_at_best": result.restarts_at_best,
        "elapsed_seconds": round(result.elapsed_seconds, 3),
        "dtype": "float64",
        "devices": list(result.devices),
        "device_count": len(result.devices),
    }
    title = (
        "Supremum of max_chsh over self-testing tuples under constraints (jaxbell.max_chsh)"
        if result.search == "max_chsh"
        else "Self-testing tuple with prescribed max_chsh (jaxbell.find_tuple)"
    )
    return label(ds, title=title, settings=settings, history=f"jaxbell.{result.search}")


def tradeoff_dataset(
    max_epsilon: np.ndarray,
    fields: Mapping[str, np.ndarray],
    *,
    settings: Mapping[str, Any],
) -> xr.Dataset:
    """Label the trade-off curve of :func:`jaxbell.search.tradeoff_curve`.

    ``fields`` are arrays of shape (2, n): [without, with] perfect randomness x max_epsilon.
    """
    dims = ("perfect_randomness", "max_epsilon")
    ds = xr.Dataset(
        {name: (dims, np.asarray(arr)) for name, arr in fields.items()},
        coords={
            "perfect_randomness": np.array([False, True]),
            "max_epsilon": np.asarray(max_epsilon, dtype=np.float64),
        },
    )
    return label(
        ds,
        title=(
            "Trade-off between nonlocality and key: sup max_chsh over self-testing tuples with "
            "key_rate >= 1 - max_epsilon, with and without perfect randomness"
        ),
        settings=settings,
        history="jaxbell.tradeoff_curve",
    )


# --- scale: out-of-core grid stores (jaxbell.write_grid) -------------------------------------


# --- scale: reductions of a grid without its fields (jaxbell.reduce_grid) ---------------------


def reduction_dataset(
    theta: np.ndarray,
    phi: np.ndarray,
    omega: np.ndarray,
    acc: Mapping[str, np.ndarray],
    *,
    epsilon_bounds: np.ndarray | None,
    edges: np.ndarray | None,
    reductions: tuple[str, ...],
    settings: Mapping[str, Any],
    history: str | None = None,
) -> xr.Dataset:
    """Label the reductions of :func:`jaxbell.reductions.reduce_grid` as a Dataset.

    ``acc`` holds the combined partials: ``counts`` (status 0, 1, 2), ``hi_val`` / ``lo_val``
    (per bound; -inf / inf where none), ``hi_idx`` / ``lo_idx`` (grid indices, -1 where none),
    ``n_meet`` and ``hist`` (below, bins..., above). The grid axes are kept as coordinates.
    """
    axes = {
        "theta": np.asarray(theta, np.float64),
        "phi": np.asarray(phi, np.float64),
        "omega": np.asarray(omega, np.float64),
    }
    coords: dict[str, Any] = dict(axes)
    data: dict[str, Any] = {}
    total = int(np.prod([a.size for a in axes.values()]))
    data["grid_points"] = ((), np.int64(total))
    if "chsh_at_key_rate" in reductions:
        coords["epsilon_bound"] = np.asarray(epsilon_bounds, np.float64)
        for which, key in (("largest", "hi"), ("smallest", "lo")):
            vals = np.asarray(acc[f"{key}_val"], np.float64)
            idx = np.asarray(acc[f"{key}_idx"])
            found = np.isfinite(vals)
            located = found & (idx[:, 0] >= 0) & (idx[:, 0] < axes["theta"].size)
            data[f"{which}_max_chsh"] = ("epsilon_bound", np.where(found, vals, np.nan))
            for i, (name, axis) in enumerate(axes.items()):
                at = np.where(located, axis[np.where(located, idx[:, i], 0)], np.nan)
                data[f"{name}_at_{which}"] = ("epsilon_bound", at)
        data["points_meeting"] = ("epsilon_bound", np.asarray(acc["n_meet"], np.int64))
    if "max_chsh_histogram" in reductions:
        edges = np.asarray(edges, np.float64)
        hist = np.asarray(acc["hist"], np.int64)
        coords["max_chsh_bin"] = np.arange(edges.size - 1)
        coords["max_chsh_bin_lower"] = ("max_chsh_bin", edges[:-1])
        coords["max_chsh_bin_upper"] = ("max_chsh_bin", edges[1:])
        data["max_chsh_histogram"] = ("max_chsh_bin", hist[1:-1])
        data["max_chsh_below_bins"] = ((), hist[0])
        data["max_chsh_above_bins"] = ((), hist[-1])
    if "self_testing_fraction" in reductions:
        counts = np.asarray(acc["counts"], np.int64)
        coords["status_flag"] = np.array([0, 1, 2], np.int8)
        data["status_count"] = ("status_flag", counts)
        data["self_testing_fraction"] = ((), np.float64(counts[0] / total))
    ds = xr.Dataset(data, coords=coords)
    return label(
        ds,
        title="Reductions of the Bell family B_theta,phi,omega of eq. (2) over a "
        "(theta, phi, omega) grid",
        settings=settings,
        history=history,
    )


# --- certified lower bounds: the Brown-Fawzi-Fawzi SDP hierarchy (jaxbell.bff, issue 5) -----

BFF_REFERENCE = (
    "P. Brown, H. Fawzi and O. Fawzi, Device-independent lower bounds on the conditional von "
    "Neumann entropy, Quantum 8, 1445 (2024), arXiv:2106.13692; M. Navascues, S. Pironio and "
    "A. Acin, A convergent hierarchy of semidefinite programs characterizing the set of quantum "
    "correlations, New J. Phys. 10, 073013 (2008)"
)

#: CF flag meanings of ``bff_status`` (jaxbell.bff.STATUS_FLAGS).
BFF_STATUS_FLAGS = {
    0: "certified",
    1: "infeasible",
    2: "solver_failed",
    3: "inaccurate",
}

#: CF flag meanings of ``bff_solver_status`` (jaxbell.bff.SOLVER_STATUS_FLAGS).
BFF_SOLVER_STATUS_FLAGS = {
    0: "optimal",
    1: "optimal_inaccurate",
    2: "iteration_limit",
    3: "infeasible",
    4: "failed",
    5: "not_solved",
}

GLOSSARY.update(
    {
        "optimal_preprocessing": (
            "optimal flip probability p",
            "1",
            "Noisy preprocessing (Ho et al., PRL 124, 230502 (2020)): the probability p in "
            "[0, 1/2] with which Alice flips each raw key bit that maximises the key rate "
            "(grid and golden section); 1/2 where no p gives a rate above 1e-12 bit (the rate "
            "is then reported as 0); NaN where a probe failed",
        ),
        "critical_efficiency": (
            "critical detection efficiency",
            "1",
            "Smallest detection efficiency (both parties, no-click binned to outcome 0) with a "
            "positive key rate at this visibility; method qubit: a lower bound on the "
            "protocol's threshold, bff: an upper bound; NaN where critical_efficiency_status "
            "is not 0",
        ),
        "critical_efficiency_status": (
            "status of the critical efficiency",
            "1",
            "0 found; 1 no positive rate even at efficiency 1 (no threshold exists); 2 the "
            "backend failed inside the bracket",
        ),
        "bell_value": (
            "Bell value <B>",
            "1",
            "Observed value eta of <B_theta,phi,omega> (eq. 2) that the strategies must reach",
        ),
        "visibility": (
            "visibility v",
            "1",
            "White-noise visibility: correlators E -> v E (state mixed with the maximally mixed "
            "state, weight 1 - v)",
        ),
        "certified_entropy": (
            "certified lower bound on the DI entropy",
            "bit",
            "Brown-Fawzi-Fawzi lower bound on inf H(A|X=x,E) (kind key) or inf H(AB|X=x,Y=y,E) "
            "(kind global) over all quantum strategies meeting the constraint, from the "
            "solver's dual corrected for its residuals (valid despite solver tolerance); NaN "
            "where bff_status != 0",
        ),
        "dual_entropy": (
            "uncorrected dual bound",
            "bit",
            "The same Gauss-Radau sum built from the solver's dual objectives without the "
            "residual correction; diagnostic only, not certified",
        ),
        "certificate_correction": (
            "certificate correction",
            "bit",
            "dual_entropy - certified_entropy: what was subtracted for solver residuals, "
            "negative eigenvalues of the dual slack and float64 rounding",
        ),
        "bff_status": (
            "certificate status",
            "1",
            "0 certified; 1 infeasible (no quantum strategy at this NPA level meets the "
            "constraint); 2 solver failed; 3 inaccurate (correction above max_correction)",
        ),
        "bff_solver_status": (
            "SDP solver status",
            "1",
            "The solver's own status, the worst over the point's node SDPs: 0 optimal; 1 "
            "optimal_inaccurate (stopped at the solver's reduced tolerance); 2 iteration_limit; "
            "3 infeasible; 4 failed; 5 not_solved (no SDP needed). Beside bff_status, not part "
            "of it: a certified value (bff_status 0) is rigorous whatever this says",
        ),
        "node": ("Gauss-Radau node", "1", "Index i of the node t_i, i = 0 .. m - 2"),
        "node_t": (
            "Gauss-Radau node t_i",
            "1",
            "Node t_i in (0, 1) of the m-point Gauss-Radau rule with end point 1 (the t_m = 1 "
            "term by its closed form, the attribute last_node_bits)",
        ),
        "node_weight": (
            "node weight w_i / (t_i ln 2)",
            "bit",
            "Weight of node i: certified_entropy = max(h(p), sum_i node_weight (1 + "
            "node_value) + last_node_bits)",
        ),
        "node_value": (
            "certified node infimum",
            "1",
            "Certified lower bound on inf sum_a <M_a (Z_a + Z_a^dag + (1 - t) Z_a^dag Z_a) + "
            "t Z_a Z_a^dag> at node t_i",
        ),
        "node_status": (
            "solver status per node",
            "1",
            "cvxpy's status of each node's SDP (optimal, optimal_inaccurate, infeasible, ...)",
        ),
        "seconds": ("wall time per point", "s", "Wall-clock time of all SDPs of the point"),
    }
)


def bff_dataset(result, *, dim: str = "point", history: str | None = None) -> xr.Dataset:
    """Label a :class:`jaxbell.bff.BffResult` as a Dataset (see ``BffResult.to_dataset``).

    Points run along ``dim``; ``theta``, ``phi``, ``omega`` and ``bell_value`` (and
    ``correlators`` with dims x, y, when given) are coordinates on it. ``dim`` may name one of
    them (e.g. ``"bell_value"`` for a sweep), which then indexes the points.
    """
    n = int(result.value.size)
    flat = {
        "certified_entropy": result.value.reshape(n),
        "dual_entropy": result.dual_value.reshape(n),
        "certificate_correction": result.correction.reshape(n),
        "bff_status": result.status.reshape(n).astype(np.int8),
        "bff_solver_status": result.solver_status.reshape(n).astype(np.int8),
        "seconds": result.seconds.reshape(n),
    }
    data_vars: dict = {name: ("point", arr) for name, arr in flat.items()}
    m1 = result.node_value.shape[-1]
    data_vars["node_value"] = (("point", "node"), result.node_value.reshape(n, m1))
    data_vars["node_status"] = (
        ("point", "node"),
        result.node_status.reshape(n, m1).astype(str),
    )
    coords: dict = {
        "theta": ("point", result.theta.reshape(n)),
        "phi": ("point", result.phi.reshape(n)),
        "omega": ("point", result.omega.reshape(n)),
        "bell_value": ("point", result.bell_value.reshape(n)),
        "node": np.arange(m1, dtype=np.int16),
        "node_t": ("node", np.asarray(result.nodes)),
        "node_weight": ("node", np.asarray(result.weights)),
    }
    if result.correlators is not None:
        coords["correlators"] = (("point", "x", "y"), result.correlators.reshape(n, 2, 2))
        coords["x"] = np.arange(2, dtype=np.int8)
        coords["y"] = np.arange(2, dtype=np.int8)
    ds = xr.Dataset(data_vars, coords=coords)
    if result.correlators is not None:
        ds["correlators"].attrs["description"] = (
            "Constrained correlators E[x, y] = sum_ab (-1)^(a+b) p(ab|xy) (Props. 4, 6)"
        )
    settings = dict(result.settings)
    settings.update(
        {
            "block_dims": result.sizes["block_dims"],
            "sdp_variables": result.sizes["variables"],
            "sdp_psd_entries": result.sizes["psd_entries"],
            "sdps_per_point": result.settings["m"] - 1,
            "last_node_bits": float(result.last_node),
            "shape": list(result.value.shape),
        }
    )
    for package in ("cvxpy", "clarabel"):
        try:
            settings[f"{package}_version"] = __import__(package).__version__
        except Exception:  # pragma: no cover - optional packages
            settings[f"{package}_version"] = "not installed"
    what = "H(A|X=x,E)" if result.settings["kind"] == "key" else "H(AB|X=x,Y=y,E)"
    ds = label(
        ds,
        title=f"Certified lower bounds on {what}: Brown-Fawzi-Fawzi SDP hierarchy",
        settings=settings,
        history=history or f"jaxbell.bff_entropy on {n} point(s)",
        references=BFF_REFERENCE,
    )
    if dim != "point":
        if dim not in ds.coords or ds[dim].dims != ("point",):
            raise ValueError(
                f"dim={dim!r}: give 'point' or one of the point coordinates "
                "theta, phi, omega, bell_value"
            )
        ds = ds.swap_dims({"point": dim})
    return ds


# =============================================================================================
# Rates below the quantum bound (jaxbell.qubit, jaxbell.rates): rate curves, noisy rates,
# critical visibilities
# =============================================================================================

#: References of the rates below the quantum bound (added to the paper's DOI)
BELOW_BOUND_REFERENCES = (
    "S. Pironio, A. Acin, N. Brunner, N. Gisin, S. Massar and V. Scarani, New J. Phys. 11, "
    "045021 (2009), doi:10.1088/1367-2630/11/4/045021; I. Devetak and A. Winter, Proc. R. Soc. "
    "A 461, 207 (2005), doi:10.1098/rspa.2004.1372; C. Jordan, Bull. Soc. Math. France 3, 103 "
    "(1875)"
)

GLOSSARY.update(
    {
        "bell_value": (
            "Bell value <B>",
            "1",
            "Observed value eta of <B_theta,phi,omega> (eq. 2); the DI entropies are even in it",
        ),
        "kind": (
            "rate kind",
            "1",
            "key: Devetak-Winter key rate from H(A|X=x, E); global: global randomness "
            "H(AB|X=x, Y=y, E)",
        ),
        "entropy": (
            "DI entropy",
            "bit",
            "Infimum over all quantum strategies with <B> = bell_value of H(A|X=x, E) (kind "
            "key) or H(AB|X=x, Y=y, E) (kind global), Eve holding a purification; kind, x and y "
            "are dataset attributes",
        ),
        "hull_entropy": (
            "qubit-attack entropy (converged or not)",
            "bit",
            "The lower convex hull of the qubit strategies found, at every Bell value: the "
            "entropy an explicit attack leaves (an upper bound on the DI infimum), also where "
            "curve_status flags that the envelope did not converge (there entropy is NaN)",
        ),
        "entropy_lower_estimate": (
            "tangent-line estimate of the DI entropy",
            "bit",
            "max over the optimised slopes mu of G(mu) + mu |<B>|, G(mu) the least H - mu |<B>| "
            "found; below the true envelope when each slope's optimisation is global",
        ),
        "gap": (
            "discretisation gap",
            "bit",
            "Largest difference between entropy and entropy_lower_estimate on the hull segment "
            "holding bell_value: the envelope's discretisation error if the optimisation is "
            "global",
        ),
        "slope": (
            "slope of the supporting line",
            "bit",
            "Slope of the supporting line entropy >= intercept + slope * <B> (bits per unit of "
            "<B>): the affine min-tradeoff function of a finite-size analysis",
        ),
        "intercept": (
            "intercept of the supporting line",
            "bit",
            "Intercept of the supporting line entropy >= intercept + slope * <B>",
        ),
        "curve_status": (
            "curve point status",
            "1",
            "Per-point status; see flag_values and flag_meanings",
        ),
        "component": (
            "mixture component",
            "1",
            "The two qubit strategies (Jordan blocks, known to Eve) whose mixture reaches "
            "bell_value on the envelope: 0 the lower, 1 the upper end of the hull segment",
        ),
        "mixture_weight": (
            "weight of the component",
            "1",
            "Probability of each component strategy in the optimal mixture",
        ),
        "component_bell_value": (
            "|<B>| of the component",
            "1",
            "Bell value |<B>| of each component strategy",
        ),
        "component_entropy": (
            "entropy of the component",
            "bit",
            "Entropy (of the curve's kind) of each component strategy",
        ),
        "alice_angle": (
            "Alice's measurement angle",
            "rad",
            "alpha_x of the component strategy: A_x = cos(alpha_x) Z + sin(alpha_x) X "
            "(X-Z plane; outcome 0 is the +1 eigenvalue)",
        ),
        "bob_angle": (
            "Bob's measurement angle",
            "rad",
            "beta_y of the component strategy: B_y = cos(beta_y) Z + sin(beta_y) X",
        ),
        "state": (
            "two-qubit state",
            "1",
            "Real density matrix rho_AB of the component strategy, invariant under Y (x) Y, "
            "in the basis |ab> (row, col); Eve holds a purification",
        ),
        "row": ("basis state (row)", "1", "Basis state |ab> of Alice's and Bob's qubits"),
        "col": ("basis state (column)", "1", "Basis state |ab> of Alice's and Bob's qubits"),
        "tangent": ("optimised slope", "1", "Index of an optimised supporting-line slope"),
        "tangent_slope": (
            "slope mu",
            "bit",
            "Slope mu of an optimised supporting line, bits per unit of <B>",
        ),
        "tangent_intercept": (
            "G(mu)",
            "bit",
            "Least value of H - mu |<B>| over the strategies found: the supporting line "
            "H >= G(mu) + mu |<B>| if the optimisation is global",
        ),
        "tangent_spread": (
            "spread between starts",
            "bit",
            "Median minus best, over the random starts at this slope, of cos(tau) (H - mu |<B>|) "
            "with tan(tau) = mu (|eta^Q| - eta^L) (mu where (4) fails): the spread of the "
            "normalised objective",
        ),
        "tangent_agreement": (
            "agreement between starts",
            "1",
            "Fraction of the random starts at this slope within 1e-6 bits of the best",
        ),
        "visibility": (
            "visibility v",
            "1",
            "White noise: correlators E -> v E (the state mixed with the maximally mixed state "
            "with weight 1 - v), so <B> = v eta^Q",
        ),
        "noisy_key_rate": (
            "key rate under white noise",
            "bit",
            "Devetak-Winter rate (eq. 1) max_xy [H(A|X=x, E) - h((1 + v E[x, y])/2)] of the "
            "strategy of eq. (6) with visibility v, H the DI entropy at <B> = v eta^Q; "
            "negative values are kept",
        ),
        "noisy_global_rate": (
            "global randomness rate under white noise",
            "bit",
            "max_xy H(AB|X=x, Y=y, E) at <B> = v eta^Q for the strategy of eq. (6) with "
            "visibility v",
        ),
        "critical_visibility": (
            "critical visibility",
            "1",
            "Smallest visibility v with a positive rate (of the kind given); NaN where no v "
            "in [0, 1] gives one or the computation did not converge",
        ),
        "delta": (
            "delta = pi/2 - phi",
            "rad",
            "Distance of phi from pi/2 in the near-perfect-key constructions (Props. 3, 5)",
        ),
        "construction": ("construction", "1", "Name of a tuple (theta, phi, omega)"),
        "threshold": (
            "threshold",
            "1",
            "Which threshold: 'visibility' (white noise, perfect detectors) or 'efficiency' "
            "(detection efficiency of both parties, no noise, no-click binned to outcome 0)",
        ),
        "protocol": (
            "protocol",
            "1",
            "'paper': key from the test inputs (Bob's best test input, bob_key=None); "
            "'aligned': Bob's key-only input aligned with Alice's key observable (Pironio et "
            "al., NJP 11, 045021 (2009); bob_key='aligned')",
        ),
        "preprocessing": (
            "noisy preprocessing",
            "1",
            "'none': p = 0; 'optimal': Alice flips each raw key bit with the probability p "
            "that is best for the attack (Ho et al., PRL 124, 230502 (2020)); the certified "
            "value is the least over fixed p (certified_preprocessing_probability)",
        ),
        "efficiency": (
            "detection efficiency",
            "1",
            "Detection efficiency of both parties; a no-click is binned to outcome 0",
        ),
        "critical_value": (
            "critical visibility or efficiency",
            "1",
            "Smallest visibility (threshold 'visibility') or detection efficiency ('efficiency') "
            "with a positive key rate; rate_method qubit: a lower bound on the protocol's "
            "threshold (explicit attacks), bff: an upper bound (certified); NaN where "
            "threshold_status is not 0",
        ),
        "threshold_status": (
            "status of the threshold",
            "1",
            "0 found; 1 no positive rate even at visibility/efficiency 1 (no threshold); 2 the "
            "backend failed inside the bracket; 3 not computed (the quick run certifies the "
            "aligned protocol only)",
        ),
        "preprocessing_probability": (
            "flip probability p used",
            "1",
            "Alice's flip probability p of the row: 0 without preprocessing; with 'optimal', "
            "the attack's best p just above its threshold",
        ),
        "certified_preprocessing_probability": (
            "flip probability p certified",
            "1",
            "The fixed flip probability p at which the certified (bff) threshold of the row was "
            "found: the least threshold over the attack's optimum and 0.1, 0.2, 0.3; NaN where "
            "none was certified",
        ),
        "key_rate_vs_efficiency": (
            "key rate",
            "bit",
            "Devetak-Winter key rate of the aligned protocol (x = 0) at visibility 1 against "
            "the detection efficiency; rate_method qubit: an upper bound (explicit attacks), "
            "bff: a certified lower bound (NaN where not computed or not certified)",
        ),
        "family": ("construction line", "1", "Name of a one-parameter line of constructions"),
        "point": ("point along the line", "1", "Index of a construction along its line"),
        "least_chsh_with_key": (
            "least max CHSH with key",
            "1",
            "Smallest noise-free max CHSH value along the line whose key rate is positive at the "
            "given visibility (critical_visibility <= visibility), interpolated along the line",
        ),
        "normalised_bell_value": (
            "normalised Bell value u",
            "1",
            "u = (|<B>| - eta^L) / (|eta^Q| - eta^L): 0 at the local bound, 1 at the quantum bound",
        ),
    }
)

#: CF flag meanings of a rate curve's ``curve_status``
CURVE_STATUS_FLAGS = {
    0: "converged_or_certified",
    1: "gap_above_tol_value_is_an_achievable_upper_bound",
    2: "failed_entropy_nan",
}

#: Basis labels |ab> of the two-qubit states
STATE_BASIS = ("00", "01", "10", "11")

_CURVE_DIMS = {
    "mixture_weight": ("bell_value", "component"),
    "component_bell_value": ("bell_value", "component"),
    "component_entropy": ("bell_value", "component"),
    "alice_angle": ("bell_value", "component", "x"),
    "bob_angle": ("bell_value", "component", "y"),
    "state": ("bell_value", "component", "row", "col"),
}


def rate_curve_dataset(
    bell_value: np.ndarray,
    fields: Mapping[str, np.ndarray],
    tangents: Mapping[str, np.ndarray],
    *,
    method: str | list[str],
    settings: Mapping[str, Any],
    history: str | None = None,
    references: str | None = None,
) -> xr.Dataset:
    """Label a DI entropy curve over ``bell_value`` (see :func:`jaxbell.rates.rate_curve`).

    ``method`` is one name (a scalar coordinate) or a list (a dimension, along which
    ``entropy`` and ``curve_status`` run); ``references``: those of the methods (default
    :data:`BELOW_BOUND_REFERENCES`).
    """
    several = not isinstance(method, str)
    data_vars = {}
    for name, arr in fields.items():
        dims = _CURVE_DIMS.get(name, ("bell_value",))
        if several and name in ("entropy", "curve_status"):
            dims = ("rate_method", *dims)
        data_vars[name] = (dims, np.asarray(arr))
    for name, arr in tangents.items():
        data_vars[name] = (("tangent",), np.asarray(arr))
    coords: dict[str, Any] = {"bell_value": np.asarray(bell_value, dtype=np.float64)}
    used = {d for dims, _ in data_vars.values() for d in dims}
    extra = {
        "component": np.arange(2, dtype=np.int8),
        "x": np.arange(2, dtype=np.int8),
        "y": np.arange(2, dtype=np.int8),
        "row": np.array(STATE_BASIS),
        "col": np.array(STATE_BASIS),
    }
    coords |= {k: v for k, v in extra.items() if k in used}
    if "tangent" in used:
        coords["tangent"] = np.arange(len(next(iter(tangents.values()))))
    coords["rate_method"] = np.array(method) if several else method
    ds = xr.Dataset(data_vars, coords=coords)
    kind = settings.get("kind", "key")
    what = "H(A|X=x,E)" if kind == "key" else "H(AB|X=x,Y=y,E)"
    names = ", ".join(method) if several else method
    refs = references or BELOW_BOUND_REFERENCES
    ds = label(
        ds,
        title=f"DI entropy {what} below the quantum bound over the Bell value (method {names})",
        settings=settings,
        history=history or f"jaxbell.rate_curve, method {names}, kind {kind}",
        references=refs,
    )
    return ds


def labelled_dataset(
    data_vars: Mapping[str, tuple[tuple[str, ...], np.ndarray]],
    coords: Mapping[str, np.ndarray],
    *,
    title: str,
    settings: Mapping[str, Any],
    history: str | None = None,
    references: str | None = BELOW_BOUND_REFERENCES,
) -> xr.Dataset:
    """A labelled dataset from ``{name: (dims, array)}`` and coordinates named in GLOSSARY.

    For the studies of rates below the quantum bound (experiments/); every name must be in
    :data:`GLOSSARY` or its variable must already carry long_name, units and description.
    """
    ds = xr.Dataset(
        {k: (dims, np.asarray(v)) for k, (dims, v) in data_vars.items()},
        coords={k: np.asarray(v) for k, v in coords.items()},
    )
    return label(ds, title=title, settings=settings, history=history, references=references)


# =============================================================================================
# Certified lower bounds beside the qubit upper bounds (jaxbell.rates with method "bff";
# issue 5's integration): gaps in rate curves, noisy rates of one tuple, thresholds
# =============================================================================================

GLOSSARY.update(
    {
        "rate_method": (
            "entropy method",
            "1",
            "Backend of the DI entropy: qubit (explicit qubit strategies and their convex "
            "envelope: an upper bound, tight when the optimisation is global) or bff "
            "(Brown-Fawzi-Fawzi SDPs: a certified lower bound); bff_correlators: bff given all "
            "four correlators of the noisy strategy of eq. (6) (Props. 4, 6), a stronger "
            "constraint than the Bell value",
        ),
        "entropy_gap": (
            "qubit minus certified DI entropy",
            "bit",
            "entropy of method qubit minus entropy of method bff at the same Bell value: the "
            "true DI entropy lies between them (>= 0 up to rounding)",
        ),
        "rate_status": (
            "rate status",
            "1",
            "Per-point status of a noisy rate; see flag_values and flag_meanings",
        ),
        "achievable_key_rate": (
            "key rate of the noisy strategy itself",
            "bit",
            "max_xy [H(A|X=x,E) - h((1 + v E[x, y])/2)] for the strategy of eq. (6) with white "
            "noise and Eve holding the purification of the noisy state: an explicit attack, so "
            "an upper bound on the DI key rate and on every method's value",
        ),
        "achievable_global_rate": (
            "global randomness rate of the noisy strategy itself",
            "bit",
            "max_xy H(AB|X=x,Y=y,E) for the strategy of eq. (6) with white noise and Eve holding "
            "the purification of the noisy state: an upper bound on the DI rate",
        ),
        "local_visibility": (
            "local visibility eta^L / |eta^Q|",
            "1",
            "Below it <B> = v eta^Q has a local model and no rate is certified from <B>; NaN "
            "where condition (4) fails",
        ),
        "critical_visibility": (
            "critical visibility",
            "1",
            "Smallest visibility v with a positive rate (of the kind given); method qubit: a "
            "lower bound on the protocol's threshold (explicit attacks kill the rate below "
            "it); method bff: a positive rate is certified at it, an upper bound; NaN where no "
            "v in [0, 1] gives one or the computation did not converge",
        ),
        "critical_visibility_achievable": (
            "critical visibility of the noisy strategy itself",
            "1",
            "Smallest v with a positive achievable rate of the noisy strategy of eq. (6): a "
            "lower bound on the protocol's threshold (weaker than method qubit's)",
        ),
        "noisy_key_rate_gap": (
            "qubit minus certified key rate",
            "bit",
            "noisy_key_rate of method qubit minus that of method bff: the true DI key rate lies "
            "between them (>= 0 up to rounding)",
        ),
        "noisy_global_rate_gap": (
            "qubit minus certified global randomness rate",
            "bit",
            "noisy_global_rate of method qubit minus that of method bff (>= 0 up to rounding)",
        ),
        "critical_visibility_gap": (
            "certified minus qubit critical visibility",
            "1",
            "critical_visibility of method bff minus that of method qubit: the true threshold "
            "lies between them (>= 0 up to the bisection tolerances)",
        ),
    }
)

#: CF flag meanings of ``rate_status``
RATE_STATUS_FLAGS = {0: "computed", 1: "failed_or_not_converged_rate_nan"}


FLAGS.update(
    {
        "rate_status": RATE_STATUS_FLAGS,
        "curve_status": CURVE_STATUS_FLAGS,
        "bff_status": BFF_STATUS_FLAGS,
        "bff_solver_status": BFF_SOLVER_STATUS_FLAGS,
    }
)


def noisy_rate_dataset(
    visibility: np.ndarray,
    rates: Mapping[str, np.ndarray],
    achievable: Mapping[str, np.ndarray],
    critical: np.ndarray | None,
    critical_achievable: np.ndarray | None,
    *,
    method: str | list[str],
    local_visibility: float,
    coords: Mapping[str, Any],
    settings: Mapping[str, Any],
    history: str | None = None,
    extra: Mapping[str, tuple[tuple[str, ...], np.ndarray]] | None = None,
    references: str | None = None,
    bracket: tuple[str, str] | None = None,
) -> xr.Dataset:
    """Label the noisy rates of one tuple (see :func:`jaxbell.rates.noisy_rate_curve`).

    ``bracket``: the (upper-bound, certified) methods whose gaps are added; ``references``:
    those of the methods (default :data:`BELOW_BOUND_REFERENCES`).

    ``rates[kind]`` has shape (method, visibility); ``critical`` (method, kind) in the order
    of ``rates``; ``method`` one name (scalar coordinate) or a list (dimension). ``extra``:
    further variables ``{name: (dims, array)}`` (names in :data:`GLOSSARY`), dims without
    the method axis, arrays with it (dropped for one method).
    """
    several = not isinstance(method, str)
    methods = list(method) if several else [method]
    kinds = list(rates)
    lead = ("rate_method",) if several else ()

    def per_method(arr):
        arr = np.asarray(arr)
        return arr if several else arr[0]

    data_vars: dict = {}
    status = []
    for k in kinds:
        data_vars[f"noisy_{k}_rate"] = (lead + ("visibility",), per_method(rates[k]))
        data_vars[f"achievable_{k}_rate"] = (("visibility",), np.asarray(achievable[k]))
        status.append(np.isnan(rates[k]).astype(np.int8))
    data_vars["rate_status"] = (lead + ("kind", "visibility"), per_method(np.stack(status, 1)))
    data_vars["local_visibility"] = ((), float(local_visibility))
    if critical is not None:
        data_vars["critical_visibility"] = (lead + ("kind",), per_method(critical))
        data_vars["critical_visibility_achievable"] = (("kind",), np.asarray(critical_achievable))
    if bracket is not None:  # (the attack's method, the certified one)
        iq, ib = methods.index(bracket[0]), methods.index(bracket[1])
        for k in kinds:
            data_vars[f"noisy_{k}_rate_gap"] = (("visibility",), rates[k][iq] - rates[k][ib])
        if critical is not None:
            data_vars["critical_visibility_gap"] = (("kind",), critical[ib] - critical[iq])
    for name, (dims, arr) in (extra or {}).items():
        data_vars[name] = (lead + tuple(dims), per_method(arr))
    all_coords: dict[str, Any] = {
        "visibility": np.asarray(visibility, dtype=np.float64),
        "kind": np.array(kinds),
        "rate_method": np.array(methods) if several else method,
    }
    all_coords |= dict(coords)
    ds = xr.Dataset(data_vars, coords=all_coords)
    names = ", ".join(methods)
    refs = references or BELOW_BOUND_REFERENCES
    ds = label(
        ds,
        title=f"Key and global randomness rates of eq. (6) under white noise (method {names})",
        settings=settings,
        history=history or f"jaxbell.noisy_rate_curve, method {names}",
        references=refs,
    )
    return ds


# --- finite-size key rates (jaxbell.rates.finite) ------------------------------------------

FINITE_REFERENCE = (
    "F. Dupuis and O. Fawzi, IEEE Trans. Inf. Theory 65, 7596 (2019) (EAT, improved second "
    "order); R. Arnon-Friedman, F. Dupuis, O. Fawzi, R. Renner and T. Vidick, Nat. Commun. 9, "
    "459 (2018) (DIQKD by entropy accumulation)"
)

FINITE_STATUS_FLAGS = {0: "key", 1: "no_key_at_this_n", 2: "no_key_at_any_n", 3: "failed"}

GLOSSARY.update(
    {
        "rounds": ("rounds n", "1", "Number of protocol rounds n of the finite-size analysis"),
        "finite_key_rate": (
            "finite-size key rate",
            "bit / round",
            "Key length / n from the entropy accumulation bound (jaxbell.rates.finite); <= 0 "
            "where no key (reported as computed, never clipped to 0)",
        ),
        "key_length": ("key length", "bit", "finite_key_rate * rounds"),
        "test_probability": (
            "test probability gamma",
            "1",
            "Probability that a round is a test round (optimised per n unless given)",
        ),
        "eat_alpha": ("EAT alpha", "1", "Renyi parameter alpha in (1, 2) of the EAT, optimised"),
        "tangent_scale": (
            "tangent scale kappa",
            "1",
            "The min-tradeoff function used is the affine bound at statistics kappa * observed",
        ),
        "finite_status": (
            "finite-size status",
            "1",
            "0 key, 1 no key at this n, 2 no key at any n (asymptotic rate <= 0), 3 failed",
        ),
        "asymptotic_rate": (
            "asymptotic key rate",
            "bit / round",
            "The min-tradeoff functions' entropy at the observed statistics minus f H(A'|B): "
            "the limit n -> infinity, gamma -> 0",
        ),
        "tangent": ("tangent point", "1", "Index of a min-tradeoff function's tangent point"),
        "statistic": ("statistic", "1", "Index of a constrained statistic b_k"),
        "min_tradeoff_value": (
            "min-tradeoff value g_t(b_t)",
            "bit",
            "Affine bound on H(A'|X=x,E) at its tangent statistics",
        ),
        "min_tradeoff_slope": (
            "min-tradeoff slope",
            "bit",
            "Gradient of the affine bound in the constrained statistics",
        ),
        "min_tradeoff_statistics": (
            "tangent statistics b_t",
            "1",
            "Constrained statistics (Bell value; correlators; marginals and correlators) at "
            "the tangent point",
        ),
        "observed_statistics": ("observed statistics b", "1", "Constrained statistics observed"),
        "tangent_entropy": (
            "min-tradeoff entropy at b",
            "bit",
            "Each affine bound evaluated at the observed statistics",
        ),
        "min_tradeoff_status": (
            "min-tradeoff status",
            "1",
            "The certificate's status at each tangent point (0 certified)",
        ),
    }
)
FLAGS["finite_status"] = FINITE_STATUS_FLAGS


def finite_rate_dataset(
    *,
    rounds: np.ndarray,
    rate: np.ndarray,
    test_probability: np.ndarray,
    alpha: np.ndarray,
    tangent_scale: np.ndarray,
    status: np.ndarray,
    asymptotic_rate: float,
    min_tradeoff,
    settings: Mapping[str, Any],
    history: str | None = None,
) -> xr.Dataset:
    """Label a finite-size rate curve (see :func:`jaxbell.rates.finite.finite_rate_curve`)."""
    mtf = min_tradeoff
    n_t = int(mtf.value.size)
    data_vars = {
        "finite_key_rate": (("rounds",), np.asarray(rate, dtype=np.float64)),
        "key_length": (("rounds",), np.asarray(rate, dtype=np.float64) * rounds),
        "test_probability": (("rounds",), np.asarray(test_probability, dtype=np.float64)),
        "eat_alpha": (("rounds",), np.asarray(alpha, dtype=np.float64)),
        "tangent_scale": (("rounds",), np.asarray(tangent_scale, dtype=np.float64)),
        "finite_status": (("rounds",), np.asarray(status, dtype=np.int8)),
        "asymptotic_rate": ((), float(asymptotic_rate)),
        "min_tradeoff_value": (("tangent",), np.asarray(mtf.value, dtype=np.float64)),
        "min_tradeoff_slope": (("tangent", "statistic"), np.asarray(mtf.slope, dtype=np.float64)),
        "min_tradeoff_statistics": (("tangent", "statistic"), np.asarray(mtf.statistics)),
        "min_tradeoff_status": (("tangent",), np.asarray(mtf.status, dtype=np.int8)),
        "tangent_entropy": (("tangent",), np.asarray(mtf.asymptotic_entropy, dtype=np.float64)),
        "observed_statistics": (("statistic",), np.asarray(mtf.honest, dtype=np.float64)),
    }
    coords = {
        "rounds": np.asarray(rounds, dtype=np.float64),
        "tangent": np.arange(n_t),
        "statistic": np.arange(mtf.slope.shape[1]),
        "tangent_scale_of_point": ("tangent", np.asarray(mtf.scales, dtype=np.float64)),
    }
    ds = xr.Dataset(data_vars, coords=coords)
    ds["tangent_scale_of_point"].attrs.update(
        {
            "long_name": "tangent scale kappa",
            "units": "1",
            "description": "b_t = kappa * observed statistics",
        }
    )
    cert = "certified" if mtf.certified else "UNCERTIFIED estimate (qubit attack)"
    return label(
        ds,
        title=f"Finite-size DI key rate by entropy accumulation ({cert} min-tradeoff function)",
        settings=settings,
        history=history or f"jaxbell.finite_rate_curve, method {mtf.method}",
        references=FINITE_REFERENCE,
    )


# --- protocol design (jaxbell.rates.design) ------------------------------------------------

_DESIGN_UNITS = {
    "critical_visibility": ("critical visibility", "1"),
    "critical_efficiency": ("critical detection efficiency", "1"),
    "key_rate": ("key rate", "bit / round"),
    "finite_key_rate": ("finite-size key rate", "bit / round"),
}


def design_dataset(result) -> xr.Dataset:
    """Label a :class:`jaxbell.rates.design.DesignResult` (scalars and the search history)."""
    name, units = _DESIGN_UNITS[result.objective]
    obj = (name, units)
    specs = {
        "theta": (result.theta, ("theta", "rad", "theta of the optimum, eq. (2)")),
        "phi": (result.phi, ("phi", "rad", "phi of the optimum, eq. (2)")),
        "omega": (result.omega, ("omega", "rad", "omega of the optimum, eq. (2)")),
        "objective_attack": (result.value, (*obj, f"{name} of the optimum by the explicit "
                             "qubit attack (thresholds: a lower bound; rates: an upper bound)")),
        "objective_certified": (result.certified, (*obj, f"{name} of the optimum, certified "
                                "(BFF; thresholds: an upper bound; rates: a lower bound)")),
        "chsh_attack": (result.chsh_value, (*obj, f"{name} of the CHSH member by the attack")),
        "chsh_certified": (result.chsh_certified, (*obj, f"{name} of the CHSH member, certified")),
        "subfamily_attack": (result.subfamily_value, (*obj, f"{name} of the best asymmetric-CHSH "
                             "member (pi/2, phi, pi - phi) found, by the attack")),
        "subfamily_certified": (result.subfamily_certified, (*obj, f"{name} of that member, "
                                "certified")),
        "max_chsh": (result.constraints["max_chsh"], ("max CHSH", "1", "max CHSH of the "
                     "optimum's strategy (eq. 6)")),
        "key_rate_at_v1": (result.constraints["key_rate_at_v1"], ("key rate at v = 1",
                           "bit / round", "eq. (1) at eta^Q (NaN where condition (4) fails)")),
    }  # fmt: skip
    data = {}
    for var, (value, (long_name, unit, desc)) in specs.items():
        data[var] = xr.DataArray(float(value), attrs={"long_name": long_name, "units": unit,
                                                      "description": desc})  # fmt: skip
    data["search_history"] = xr.DataArray(
        np.asarray(result.history, dtype=np.float64),
        dims=("step",),
        attrs={"long_name": f"best {name} per step", "units": units,
               "description": "Best objective over the starts after each Adam step (attack, "
               "search accuracy; penalties included)"},
    )  # fmt: skip
    ds = xr.Dataset(data, coords={"step": np.arange(len(result.history))})
    ds["step"].attrs.update({"long_name": "step", "description": "Adam step of the search"})
    sub = ", ".join(f"{a:.17g}" for a in result.subfamily_angles)
    return label(
        ds,
        title=f"Protocol design over the family: best {name}",
        settings=dict(result.settings)
        | {
            "status": result.status,
            "evaluations": result.evaluations,
            "seconds": round(result.seconds, 2),
            "self_testing": result.constraints["self_testing"],
            "subfamily_angles": sub,
        },  # fmt: skip
        history="jaxbell.optimise_protocol",
    )


_DEVICE_UNITS = {
    "critical_efficiency": ("critical detection efficiency", "1"),
    "key_rate": ("key rate", "bit / round"),
}


def device_dataset(result) -> xr.Dataset:
    """Label a :class:`jaxbell.rates.loss.DeviceResult` (the optimum device and its values)."""
    name, units = _DEVICE_UNITS[result.objective]
    attack = "thresholds: a lower bound; rates: an upper bound"
    cert = "thresholds: an upper bound; rates: a lower bound"
    specs = {
        "objective_attack": (result.value, (name, units, f"{name} of the optimum by the "
                             f"explicit attack ({attack})")),
        "objective_certified": (result.certified, (name, units, f"{name} of the optimum, "
                                f"certified (BFF; {cert})")),
        "efficiency": (result.efficiency, ("detection efficiency", "1", "Detection efficiency "
                       "of each party at the optimum (the threshold, or the one given)")),
        "visibility": (result.visibility, ("visibility", "1", "White-noise visibility")),
        "state_angle": (result.state_angle, ("state angle", "rad", "s of cos(s)|00> + "
                        "sin(s)|11> (pi/4: maximally entangled)")),
        "preprocessing": (result.preprocessing, ("preprocessing", "1", "Probability that "
                          "Alice flips each raw key bit (Ho et al. 2020)")),
        "chsh_attack": (result.chsh_value, ("key rate, CHSH test", "bit / round", "Key rate of "
                        "the same device at that efficiency tested by CHSH alone, attack")),
        "chsh_certified": (result.chsh_certified, ("key rate, CHSH test", "bit / round",
                           "The same, certified (BFF)")),
        "full_attack": (result.full_value, ("key rate, full statistics", "bit / round",
                        "Key rate of the same device at that efficiency from every p(ab|xy), "
                        "attack")),
        "full_certified": (result.full_certified, ("key rate, full statistics", "bit / round",
                           "The same, certified (BFF)")),
    }  # fmt: skip
    data = {}
    for var, (value, (long_name, unit, desc)) in specs.items():
        data[var] = xr.DataArray(float(value), attrs={"long_name": long_name, "units": unit,
                                                      "description": desc})  # fmt: skip
    for var, angles, who in (
        ("alice_angles", result.alice_angles, "Alice's"),
        ("bob_angles", result.bob_angles, "Bob's"),
    ):
        data[var] = xr.DataArray(
            np.asarray(angles, dtype=np.float64), dims=(f"{var[:-7]}_input",),
            attrs={"long_name": f"{who} measurement angles", "units": "rad",
                   "description": f"{who} observables cos(a) Z + sin(a) X per input"},
        )  # fmt: skip
    data["bell_tuple"] = xr.DataArray(
        np.asarray(result.bell, dtype=np.float64), dims=("angle",),
        attrs={"long_name": "Bell tuple tested", "units": "rad",
               "description": "(theta, phi, omega) of the Bell expression tested, eq. (2)"},
    )  # fmt: skip
    ds = xr.Dataset(data, coords={"angle": ["theta", "phi", "omega"]})
    ds["angle"].attrs.update({"long_name": "angle", "description": "which angle of the tuple"})
    for dim in ("alice_input", "bob_input"):
        ds.coords[dim] = np.arange(ds.sizes[dim])
        ds[dim].attrs.update({"long_name": dim.replace("_", " "), "units": "1",
                              "description": "input (Bob's 2: his key-only input)"})  # fmt: skip
    return label(
        ds,
        title=f"Best lossy two-qubit device: {name}",
        settings=dict(result.settings) | {"seconds": round(result.seconds, 2)},
        history="jaxbell.optimise_device",
        references="Ho et al., PRL 124, 230502 (2020), doi:10.1103/PhysRevLett.124.230502; "
        "Woodhead, Acin & Pironio, Quantum 5, 443 (2021); Brown, Fawzi & Fawzi, Quantum 8, "
        "1445 (2024)",
    )


# the loss study of issue 22 (experiments/loss_devices.py)
GLOSSARY.update(
    {
        "device_case": (
            "device and test",
            "1",
            "chsh_max: the aligned maximally entangled CHSH device (angles fixed, p optimised); "
            "chsh: CHSH test, state, angles and p optimised; family: the asymmetric-CHSH member "
            "searched too; full: the chsh device's full statistics (every p(ab|xy))",
        ),
        "threshold_case": (
            "protocol",
            "1",
            "The test (CHSH or the asymmetric-CHSH family), noisy preprocessing (optimal or "
            "none) and Bob's no-click on his key input (kept or binned)",
        ),
        "rate_attack": (
            "key rate (attack)",
            "bit / round",
            "Key rate by the explicit attack: an upper bound on the DI rate of that device",
        ),
        "rate_certified": (
            "key rate (certified)",
            "bit / round",
            "Key rate by the certified BFF bound: a lower bound (NaN: not computed)",
        ),
        "threshold_attack": (
            "critical detection efficiency (attack)",
            "1",
            "Lowest efficiency with a positive rate by the attack over the devices searched "
            "(a lower bound on the certified threshold of those devices)",
        ),
        "threshold_certified": (
            "critical detection efficiency (certified)",
            "1",
            "Lowest efficiency of the study's grid with a positive certified rate (an upper "
            "bound, resolution the grid step; NaN: not computed)",
        ),
        "state_angle": (
            "state angle",
            "rad",
            "s of cos(s)|00> + sin(s)|11> (pi/4: maximally entangled)",
        ),
        "chsh_rate": (
            "key rate, CHSH test (attack)",
            "bit / round",
            "Key rate of the same device tested by the CHSH value alone: the tight analytic "
            "bound of Ho et al. 2020",
        ),
        "device": (
            "device angles",
            "rad",
            "The state angle s and the angles a_0, a_1, b_0, b_1, b_2 of the X-Z plane "
            "observables (jaxbell.qubit_behaviour)",
        ),
        "threshold_device": (
            "device at the certified threshold",
            "rad (p: 1)",
            "s, a_0, a_1, b_0, b_1, b_2 (radians) and the flip probability p of the device "
            "certified at the threshold",
        ),
        "parameter": ("device parameter", "1", "Name of the device angle"),
        "device_parameter": ("device parameter", "1", "Name of the device angle or p"),
    }
)


# thresholds over the family (jaxbell.thresholds.threshold_grid)
#: CF flags of ``threshold_status`` (-1: a block a threshold-grid store has not finished; 3: a
#: row the protocol-threshold table did not compute).
THRESHOLD_STATUS_FLAGS = {
    -1: "not_computed_unfinished_block_of_a_store",
    0: "found",
    1: "no_rate",
    2: "failed",
    3: "not_computed",
}
FLAGS["threshold_status"] = THRESHOLD_STATUS_FLAGS
_DERIVED = {
    "threshold_bound": (
        "side of the true threshold",
        "1",
        "'lower': the method's threshold is a lower bound on the protocol's (its entropies are "
        "achievable attacks, upper bounds); 'upper': an upper bound (certified entropies)",
    ),
    "attack_threshold": (
        "attack's threshold",
        "1",
        "Largest lower bound on the protocol's threshold over the rate methods (explicit "
        "attacks: no key below it); NaN where no such method found one",
    ),
    "certified_threshold": (
        "certified threshold",
        "1",
        "Smallest upper bound on the protocol's threshold over the rate methods (a positive "
        "key rate is certified at and above it); NaN where no certified method found one",
    ),
}
GLOSSARY.update(_DERIVED)
