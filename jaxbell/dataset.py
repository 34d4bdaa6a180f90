"""The one place that builds and labels xarray objects, and writes and reads them.

Every variable and coordinate carries ``long_name``, ``units`` and ``description`` from the
glossary below (the glossary of ARCHITECTURE.md); every dataset carries ``title``, ``source``
(jaxbell version), ``history``, ``references`` and the run settings. Attributes are attached
last, because xarray arithmetic drops them.
"""

from __future__ import annotations

import datetime as _dt
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from jaxbell._version import __version__

__all__ = [
    "GLOSSARY",
    "PAPER_DOI",
    "check_writable",
    "grid_dataset",
    "label",
    "open_dataset",
    "save_dataset",
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
        "Ratio of quantum to local bound; > 1 exactly where condition (4) holds; NaN where "
        "eta^L vanishes up to rounding (all coefficients zero, status 2)",
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
}

#: CF flag meanings of the grid's ``status`` variable.
STATUS_FLAGS = {
    0: "self_testing",
    1: "not_self_testing_rates_nan",
    2: "trivial_expression_all_coefficients_zero",
}


def _attrs(name: str) -> dict[str, Any]:
    long_name, units, description = GLOSSARY[name]
    attrs = {"long_name": long_name, "units": units, "description": description}
    if name == "status":
        attrs["flag_values"] = np.array(list(STATUS_FLAGS), dtype=np.int8)
        attrs["flag_meanings"] = " ".join(STATUS_FLAGS.values())
    return attrs


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


def check_writable(path: str | os.PathLike, name: str = "out", *, overwrite: bool = True) -> Path:
    """Raise a clear error naming ``name`` unless ``path`` can be written; return it as a Path."""
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    if path.is_dir() and path.suffix != ".zarr":
        raise ValueError(f"{name}={str(path)!r} is a directory; give a file name ending in .nc")
    if not parent.exists():
        raise ValueError(f"{name}={str(path)!r}: folder {str(parent)!r} does not exist")
    if not os.access(parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise PermissionError(f"{name}={str(path)!r} is not writable")
    if path.exists() and not overwrite:
        raise FileExistsError(f"{name}={str(path)!r} exists; pass overwrite=True to replace it")
    return path


def save_dataset(ds: xr.Dataset, path: str | os.PathLike, *, name: str = "out") -> Path:
    """Write ``ds`` to netCDF (``.nc``, h5netcdf engine) or zarr (``.zarr``); return the path.

    Bool variables are stored as int8 with a ``dtype: bool`` encoding and read back as bool.
    """
    path = check_writable(path, name)
    if path.suffix == ".zarr":
        ds.to_zarr(path, mode="w", consolidated=False)
    elif path.suffix in (".nc", ".nc4", ".h5"):
        ds.to_netcdf(path, engine="h5netcdf")
    else:
        raise ValueError(f"{name}={str(path)!r}: use a .nc (netCDF) or .zarr file name")
    return path


def open_dataset(path: str | os.PathLike, **kwargs) -> xr.Dataset:
    """Open a dataset written by :func:`save_dataset` (netCDF or zarr), fully labelled."""
    path = Path(path)
    if path.suffix == ".zarr":
        return xr.open_zarr(path, **{"consolidated": False} | kwargs)
    return xr.open_dataset(path, engine="h5netcdf", **kwargs)


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
        "method": (
            "entropy method",
            "1",
            "Backend of the DI entropy: qubit (explicit qubit strategies and their convex "
            "envelope: an upper bound, tight when the optimisation is global) or bff "
            "(Brown-Fawzi-Fawzi SDPs: a certified lower bound)",
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
            "Median minus best, over the random starts at this slope, of H - mu <B>",
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
    0: "converged",
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
    method: str,
    settings: Mapping[str, Any],
    history: str | None = None,
) -> xr.Dataset:
    """Label a DI entropy curve over ``bell_value`` (see :func:`jaxbell.rates.rate_curve`)."""
    data_vars = {}
    for name, arr in fields.items():
        data_vars[name] = (_CURVE_DIMS.get(name, ("bell_value",)), np.asarray(arr))
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
    coords["method"] = method
    ds = xr.Dataset(data_vars, coords=coords)
    kind = settings.get("kind", "key")
    what = "H(A|X=x,E)" if kind == "key" else "H(AB|X=x,Y=y,E)"
    ds = label(
        ds,
        title=f"DI entropy {what} below the quantum bound over the Bell value (method {method})",
        settings=settings,
        history=history or f"jaxbell.rate_curve, method {method}, kind {kind}",
        references=BELOW_BOUND_REFERENCES,
    )
    if "curve_status" in ds:
        ds["curve_status"].attrs["flag_values"] = np.array(list(CURVE_STATUS_FLAGS), np.int8)
        ds["curve_status"].attrs["flag_meanings"] = " ".join(CURVE_STATUS_FLAGS.values())
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
