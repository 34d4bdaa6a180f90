"""Thresholds over the family: critical visibility or efficiency on a (theta, phi, omega) grid.

:func:`threshold_grid` runs the vectorised threshold search of :mod:`jaxbell.rates.front`
(:func:`~jaxbell.rates.critical_visibility`, :func:`~jaxbell.rates.critical_efficiency`) over
every cell of a grid at once, for each rate method, and labels the result. A method's backend
says which side of the protocol's true threshold its value lies on (an attack backend, an upper
bound on the entropy, gives a *lower* bound on the threshold; a certified backend an *upper*
bound): the dataset's ``threshold_bound`` coordinate records it and ``attack_threshold`` /
``certified_threshold`` hold the tightest bracket per cell, found through the backend registry
(never by a backend's name).

Large grids go out of core: with ``path="maps.zarr"`` the cells are computed in blocks of
theta rows, each block written to its own zarr chunks and recorded as finished only after its
data are on disk (:class:`jaxbell.store.GridStore`), so an interrupted run resumes with the
same call and computes only the unfinished blocks.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr
from jax.typing import ArrayLike
from tqdm import tqdm

from jaxbell._version import __version__
from jaxbell.dataset import label
from jaxbell.rates import backends
from jaxbell.rates.front import critical_efficiency, critical_visibility
from jaxbell.rates.values import Device, Protocol
from jaxbell.store import (
    GridStore,
    _variable_length_strings,
    axis_digest,
    check_store_path,
    open_dataset,
    read_record,
    remove_store,
    store_progress,
)

__all__ = ["THRESHOLDS", "threshold_grid"]

#: The thresholds :func:`threshold_grid` searches.
THRESHOLDS = ("visibility", "efficiency")
_FIELDS = ("critical_value", "threshold_status")
_STORE_KIND = "threshold_grid"


def _axis(values: ArrayLike, name: str) -> np.ndarray:
    a = np.atleast_1d(np.asarray(values, dtype=np.float64))
    if a.ndim != 1 or a.size == 0 or not np.all(np.isfinite(a)):
        raise ValueError(f"{name} must be a non-empty 1-D array of finite angles, got {values!r}")
    return a


def _search(threshold: str):
    if threshold not in THRESHOLDS:
        raise ValueError(f"threshold must be one of {THRESHOLDS}, got {threshold!r}")
    return critical_visibility if threshold == "visibility" else critical_efficiency


def _bounds(methods: tuple[str, ...]) -> np.ndarray:
    # an entropy backend that bounds from above (attacks) bounds the threshold from below
    return np.array(["lower" if backends.get(m).bound == "upper" else "upper" for m in methods])


def _compute(t, p, w, search, methods, kw, progress_bar=None):
    """Thresholds and statuses of flat cells: arrays (cells, method)."""
    value, status = search(
        t, p, w, method=methods, return_status=True, progress=False, **kw
    )  # fmt: skip
    if progress_bar is not None:
        progress_bar.update(t.size)
    return np.asarray(value, dtype=np.float64), np.asarray(status, dtype=np.int8)


def _dataset(theta, phi, omega, methods, value, status, *, settings, history) -> xr.Dataset:
    dims = ("theta", "phi", "omega", "rate_method")
    ds = xr.Dataset(
        {"critical_value": (dims, value), "threshold_status": (dims, status)},
        coords={
            "theta": theta,
            "phi": phi,
            "omega": omega,
            "rate_method": np.array(methods),
            "threshold_bound": ("rate_method", _bounds(methods)),
        },
    )
    return _finish(ds, settings=settings, history=history)


def _finish(ds: xr.Dataset, *, settings, history) -> xr.Dataset:
    bound = ds["threshold_bound"]
    crit = ds["critical_value"]
    ds["attack_threshold"] = crit.where(bound == "lower").max("rate_method", skipna=True)
    ds["certified_threshold"] = crit.where(bound == "upper").min("rate_method", skipna=True)
    for axis in ("theta", "phi", "omega"):
        ds[axis].attrs.update(units="rad")
    return label(
        ds,
        title=f"critical {settings['threshold']} over the family (eq. (2) tuples)",
        settings=settings,
        history=history,
    )


def _settings(threshold, methods, options, xtol, protocol, device) -> dict[str, Any]:
    return {
        "threshold": threshold,
        "rate_methods": list(methods),
        "options": repr(options),
        "xtol": repr(xtol),
        "protocol": repr(protocol),
        "device": repr(device),
    }


def _record(theta, phi, omega, methods, settings, block) -> dict:
    axes = dict(zip(("theta", "phi", "omega"), (theta, phi, omega), strict=True))
    return {
        "format": 1,
        "store_kind": _STORE_KIND,
        "jaxbell_version": __version__,
        "shape": [theta.size, phi.size, omega.size, len(methods)],
        "axes_sha256": {n: axis_digest(a) for n, a in axes.items()},
        "block_rows": int(block),
        "nblocks": [int(-(-theta.size // block))],
        "fields": list(_FIELDS),
        "settings": settings,
    }


def _create_store(path, theta, phi, omega, methods, block, settings, history, record):
    import dask.array as da
    import zarr

    shape = (theta.size, phi.size, omega.size, len(methods))
    lazy_v = da.full(shape, np.nan, dtype=np.float64, chunks=-1)
    lazy_s = da.full(shape, -1, dtype=np.int8, chunks=-1)
    ds = _dataset(theta, phi, omega, methods, lazy_v, lazy_s, settings=settings, history=history)
    ds = ds.drop_vars(["attack_threshold", "certified_threshold"])
    chunks = (block, phi.size, omega.size, len(methods))
    v3 = int(zarr.__version__.split(".")[0]) >= 3
    encoding = {
        "critical_value": {"chunks": chunks, **({"fill_value": np.nan} if v3 else {})},
        "threshold_status": {"chunks": chunks, **({"fill_value": -1} if v3 else {})},
    }
    ds = _variable_length_strings(ds)
    ds.to_zarr(path, mode="w", compute=False, consolidated=False, encoding=encoding)
    return GridStore.initialise(path, record)


def threshold_grid(
    theta: ArrayLike,
    phi: ArrayLike,
    omega: ArrayLike,
    *,
    threshold: str = "visibility",
    method: str | Sequence[str] = ("qubit", "bff"),
    options: Mapping[str, Any] | None = None,
    xtol: float | Mapping[str, float] | None = None,
    protocol: Protocol | None = None,
    device: Device | None = None,
    path=None,
    block_rows: int | None = None,
    overwrite: bool = False,
    progress: bool | None = None,
    process: tuple[int, int] | None = None,
) -> xr.Dataset:
    r"""Critical visibility or detection efficiency of every tuple of a (theta, phi, omega) grid.

    Every cell of the grid (the outer product of the three axes) is searched at once: each
    bisection step evaluates all unfinished cells as one batch per method (for a certified
    backend, one batch of SDPs), through :func:`jaxbell.critical_visibility` or
    :func:`jaxbell.critical_efficiency` with ``method`` a sequence. Listing an attack method
    before a certified one ("qubit" before "bff", the default) lets the certified bisection
    start at the attack's threshold, which saves solves.

    Parameters
    ----------
    theta, phi, omega : array_like
        1-D axes of the grid, radians (tuples of eq. (2)).
    threshold : {"visibility", "efficiency"}
        Which threshold: white-noise visibility (perfect detectors) or detection efficiency
        (both parties, no-click binned; the device's visibility kept).
    method : str or sequence of str
        Rate backends (names in the registry, :func:`jaxbell.rates.backends.names`).
    options, xtol, protocol, device
        As in :func:`jaxbell.critical_visibility` (``options`` by method or shared; the
        protocol applies to every method).
    path : str or path-like or None
        A ``.zarr`` store to write block by block and resume (None: compute in memory).
    block_rows : int or None
        Theta rows per block of the store (None: about 256 cells per block).
    overwrite : bool
        Remove an existing store at ``path`` first.
    progress : bool or None
        tqdm bar over cells (None: only on a terminal).
    process : (index, count) or None
        With ``path``: this process's share of the blocks when ``count`` processes (hosts,
        e.g. under ``jax.distributed``) fill one store on a shared file system. Blocks are
        dealt round-robin (block b to process b mod count: certified cells cost unevenly
        across the family, so contiguous shares would not balance); process 0 creates or
        resumes the store, the others wait for it. None: ``(jax.process_index(),
        jax.process_count())``, (0, 1) unless ``jax.distributed`` is initialised. A process
        returns when its share is done; blocks others have not finished read as status -1.

    Returns
    -------
    xarray.Dataset
        Dims (theta, phi, omega, rate_method): ``critical_value`` (the threshold; NaN where
        ``threshold_status`` is not 0), ``threshold_status`` (0 found, 1 no positive rate even
        at 1, 2 the backend failed inside the bracket, -1 a block of a store not yet
        computed); coordinate ``threshold_bound`` ("lower" for attack methods, "upper" for
        certified ones); ``attack_threshold`` and ``certified_threshold`` (theta, phi, omega):
        the bracket of the protocol's true threshold.

    References
    ----------
    Eqs. (1)-(6) of Wooltorton, Brown & Colbeck, PRL 132, 210802 (2024); Brown, Fawzi & Fawzi,
    Quantum 8, 1445 (2024) (method "bff").
    """
    search = _search(threshold)
    theta, phi, omega = (_axis(a, n) for a, n in ((theta, "theta"), (phi, "phi"), (omega, "omega")))
    methods, multi = backends.methods(method)
    methods = tuple(methods)
    if not multi and options is not None:  # one method's options: keyed by it (a method axis)
        options = {methods[0]: options}
    if not isinstance(overwrite, bool):
        raise TypeError(f"overwrite must be True or False, got {overwrite!r}")
    kw = {"options": options, "xtol": xtol, "protocol": protocol, "device": device}
    settings = _settings(threshold, methods, options, xtol, protocol, device)
    history = f"jaxbell.threshold_grid, threshold {threshold}, method {', '.join(methods)}"
    ncells = theta.size * phi.size * omega.size
    mesh = lambda rows: [  # noqa: E731
        a.reshape(-1) for a in np.meshgrid(theta[rows], phi, omega, indexing="ij")
    ]
    if process is not None and path is None:
        raise ValueError("process= shares a store between processes: it needs path=FILE.zarr")
    if path is None:
        with tqdm(total=ncells, desc=f"critical {threshold}", unit="cell",
                  disable=not progress if progress is not None else None) as bar:  # fmt: skip
            t, p, w = mesh(slice(None))
            value, status = _compute(t, p, w, search, methods, kw, bar)
        shape = (theta.size, phi.size, omega.size, len(methods))
        return _dataset(
            theta, phi, omega, methods, value.reshape(shape), status.reshape(shape),
            settings=settings, history=history,
        )  # fmt: skip
    from jaxbell.grid import _check_process, _wait_for_store

    index, count = _check_process(process)
    path = check_store_path(path, "path")
    if overwrite and count > 1:
        raise ValueError(
            "overwrite=True in a multi-process run would let processes remove each other's "
            "work; remove the store before launching, then run without overwrite"
        )
    if overwrite:
        remove_store(path, "path")
    if index != 0:
        _wait_for_store(path)  # process 0 creates (or resumes) it
    cells_per_row = phi.size * omega.size
    if block_rows is None:
        block_rows = max(1, min(theta.size, 256 // max(cells_per_row, 1) or 1))
    if not (isinstance(block_rows, (int, np.integer)) and block_rows >= 1):
        raise ValueError(f"block_rows must be a positive integer, got {block_rows!r}")
    record = _record(theta, phi, omega, methods, settings, int(block_rows))
    stored = read_record(path) if Path(path).exists() else None
    if stored is not None:
        if stored != record:
            diff = sorted(k for k in set(stored) | set(record) if stored.get(k) != record.get(k))
            raise ValueError(
                f"path={str(path)!r} holds a store written with other settings ({', '.join(diff)}"
                "); pass overwrite=True or another path"
            )
        store = GridStore(path, record)
    elif Path(path).exists() and any(Path(path).iterdir()):
        raise ValueError(
            f"path={str(path)!r} exists and is not a threshold-grid store; pass overwrite=True "
            "or another path"
        )
    else:
        store = _create_store(path, theta, phi, omega, methods, int(block_rows), settings,
                              history, record)  # fmt: skip
    nblocks = store.nblocks
    done = store.done_ids()
    todo = [b for b in range(nblocks) if b not in done and b % count == index]
    start = time.monotonic()
    share = sum(min(block_rows, theta.size - b * block_rows) for b in range(index, nblocks, count))
    with tqdm(total=share * cells_per_row, desc=f"critical {threshold}", unit="cell",
              disable=not progress if progress is not None else None) as bar:  # fmt: skip
        mine = [b for b in done if b % count == index]
        bar.update(sum(min(block_rows, theta.size - b * block_rows) for b in mine) * cells_per_row)
        for b in todo:
            rows = slice(b * block_rows, min((b + 1) * block_rows, theta.size))
            t, p, w = mesh(rows)
            value, status = _compute(t, p, w, search, methods, kw, bar)
            nrows = rows.stop - rows.start
            shape = (nrows, phi.size, omega.size, len(methods))
            store.write_block(
                b, (rows, slice(None), slice(None), slice(None)),
                {"critical_value": value.reshape(shape), "threshold_status": status.reshape(shape)},
                info={"cells": int(t.size)},
            )  # fmt: skip
    if todo:
        store.append_history(
            f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}: {history}; "
            f"{len(todo)} of {nblocks} blocks in {time.monotonic() - start:.1f} s"
            + (f" (process {index} of {count})" if count > 1 else "")
        )
    ds = open_dataset(path, allow_incomplete=count > 1).load()
    return _finish(ds, settings=settings, history=ds.attrs.get("history", history))


def threshold_store_progress(path) -> tuple[int, int] | None:
    """(finished blocks, total blocks) of a threshold-grid store, or None if not one."""
    return store_progress(path)
