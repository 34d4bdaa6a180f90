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

GLOSSARY.update(
    {
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
        "node": ("Gauss-Radau node", "1", "Index i of the node t_i, i = 0 .. m - 2"),
        "node_t": (
            "Gauss-Radau node t_i",
            "1",
            "Node t_i in (0, 1) of the m-point Gauss-Radau rule with end point 1 (the t_m = 1 "
            "term is bounded below by 0)",
        ),
        "node_weight": (
            "node weight w_i / (t_i ln 2)",
            "bit",
            "Weight of node i: certified_entropy = sum_i node_weight (1 + node_value)",
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
    ds["bff_status"].attrs["flag_values"] = np.array(list(BFF_STATUS_FLAGS), dtype=np.int8)
    ds["bff_status"].attrs["flag_meanings"] = " ".join(BFF_STATUS_FLAGS.values())
    if dim != "point":
        if dim not in ds.coords or ds[dim].dims != ("point",):
            raise ValueError(
                f"dim={dim!r}: give 'point' or one of the point coordinates "
                "theta, phi, omega, bell_value"
            )
        ds = ds.swap_dims({"point": dim})
    return ds


GLOSSARY.update(
    {
        "achievable_entropy": (
            "achievable entropy (noisy eq. 6)",
            "bit",
            "H(A|X=x,E) of the strategy of eq. (6) with white noise, Eve holding the "
            "purification: an upper bound on the DI infimum at the same constraint",
        ),
        "error_correction": (
            "error-correction cost",
            "bit",
            "min_y H(A|X=x,Y=y,B) = min_y h((1 + v E[x, y]) / 2) of the noisy strategy of eq. (6)",
        ),
        "best_y": ("Bob's best input y", "1", "The y attaining the error-correction cost"),
        "certified_key_rate": (
            "certified key rate",
            "bit",
            "Devetak-Winter rate, eq. (1): certified_entropy - error_correction; a lower bound "
            "on the DI key rate; NaN where bff_status != 0",
        ),
        "achievable_key_rate": (
            "achievable key rate (noisy eq. 6)",
            "bit",
            "achievable_entropy - error_correction: an upper bound on the DI key rate",
        ),
        "key_rate_gap": (
            "gap between the bounds",
            "bit",
            "achievable_key_rate - certified_key_rate (>= 0): where the true DI rate lies",
        ),
    }
)


def bff_rate_curve_dataset(
    result,
    *,
    visibility: np.ndarray,
    achievable: np.ndarray,
    error_correction: np.ndarray,
    best_y: np.ndarray,
    history: str | None = None,
) -> xr.Dataset:
    """Label a key-rate curve against visibility (see :func:`jaxbell.bff.bff_key_rate_curve`)."""
    ds = bff_dataset(result, dim="point", history=history)
    v = np.asarray(visibility, dtype=np.float64)
    ds = ds.assign_coords(visibility=("point", v))
    ds["achievable_entropy"] = ("point", np.asarray(achievable, dtype=np.float64))
    ds["error_correction"] = ("point", np.asarray(error_correction, dtype=np.float64))
    ds["best_y"] = ("point", np.asarray(best_y, dtype=np.int8))
    ds["certified_key_rate"] = ds.certified_entropy - ds.error_correction
    ds["achievable_key_rate"] = ds.achievable_entropy - ds.error_correction
    ds["key_rate_gap"] = ds.achievable_key_rate - ds.certified_key_rate
    for name in (
        "visibility",
        "achievable_entropy",
        "error_correction",
        "best_y",
        "certified_key_rate",
        "achievable_key_rate",
        "key_rate_gap",
    ):
        ds[name].attrs.update(_attrs(name))
    ds.attrs["title"] = (
        "Certified (Brown-Fawzi-Fawzi) and achievable (noisy eq. 6) key rates against visibility"
    )
    return ds.swap_dims({"point": "visibility"})


GLOSSARY.update(
    {
        "tuple": ("tuple of eq. (2)", "1", "Name of the (theta, phi, omega) tuple of the study"),
        "constraint": (
            "constraint",
            "1",
            "What the strategies must reproduce: 'bell' (<B> = v eta^Q) or 'correlators' "
            "(all four correlators v E of eq. (6), Props. 4 and 6)",
        ),
        "max_chsh": GLOSSARY["max_chsh"],
        "critical_visibility_certified": (
            "certified critical visibility",
            "1",
            "Smallest visibility with a certified positive key rate (bisection on the BFF "
            "bound): an upper bound on the DI threshold; NaN if none at v = 1",
        ),
        "critical_visibility_achievable": (
            "achievable critical visibility",
            "1",
            "Visibility where the key rate of the noisy strategy of eq. (6) vanishes: a lower "
            "bound on the DI threshold",
        ),
        "local_visibility": (
            "local visibility eta^L / |eta^Q|",
            "1",
            "Below it <B> = v eta^Q has a local model and no key can be certified from <B>",
        ),
    }
)

_CURVE_VARIABLES = (
    "certified_entropy",
    "achievable_entropy",
    "error_correction",
    "certified_key_rate",
    "achievable_key_rate",
    "key_rate_gap",
    "certificate_correction",
    "bff_status",
)


def bff_study_dataset(
    tuples: Mapping[str, tuple[float, float, float]],
    curves: Mapping[tuple[str, str], xr.Dataset],
    critical: Mapping[tuple[str, str], Mapping[str, float]],
    *,
    max_chsh: Mapping[str, float],
    settings: Mapping[str, Any],
    history: str | None = None,
) -> xr.Dataset:
    """Certified vs achievable key rates against visibility for several tuples (experiments).

    ``curves[(name, constraint)]`` are datasets of :func:`jaxbell.bff.bff_key_rate_curve` on one
    common visibility grid; ``critical[(name, constraint)]`` the dicts of
    :func:`jaxbell.bff.bff_critical_visibility`. Dims (tuple, constraint, visibility).
    """
    names = list(tuples)
    constraints = sorted({c for _, c in curves})
    first = next(iter(curves.values()))
    vis = first.visibility.values
    shape = (len(names), len(constraints), vis.size)
    data_vars: dict = {}
    for var in _CURVE_VARIABLES:
        arr = np.full(shape, np.nan if var != "bff_status" else -1)
        for i, n in enumerate(names):
            for j, c in enumerate(constraints):
                if (n, c) in curves:
                    arr[i, j] = curves[(n, c)][var].values
        dtype = np.int8 if var == "bff_status" else np.float64
        data_vars[var] = (("tuple", "constraint", "visibility"), arr.astype(dtype))
    for key, var in (
        ("certified", "critical_visibility_certified"),
        ("achievable", "critical_visibility_achievable"),
        ("local", "local_visibility"),
    ):
        arr = np.full(shape[:2], np.nan)
        for i, n in enumerate(names):
            for j, c in enumerate(constraints):
                if (n, c) in critical:
                    arr[i, j] = critical[(n, c)][key]
        data_vars[var] = (("tuple", "constraint"), arr)
    coords = {
        "tuple": np.array(names),
        "constraint": np.array(constraints),
        "visibility": vis,
        "theta": ("tuple", np.array([tuples[n][0] for n in names])),
        "phi": ("tuple", np.array([tuples[n][1] for n in names])),
        "omega": ("tuple", np.array([tuples[n][2] for n in names])),
        "max_chsh": ("tuple", np.array([max_chsh[n] for n in names])),
    }
    ds = xr.Dataset(data_vars, coords=coords)
    ds = label(
        ds,
        title="Certified (Brown-Fawzi-Fawzi) vs achievable (noisy eq. 6) key rates against "
        "visibility for tuples of eq. (2)",
        settings=dict(settings),
        history=history,
        references=BFF_REFERENCE,
    )
    ds["bff_status"].attrs["flag_values"] = np.array(list(BFF_STATUS_FLAGS), dtype=np.int8)
    ds["bff_status"].attrs["flag_meanings"] = " ".join(BFF_STATUS_FLAGS.values())
    return ds
