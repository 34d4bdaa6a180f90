"""File I/O: datasets to and from netCDF and zarr (:func:`save_dataset`, :func:`open_dataset`,
:func:`check_writable`), and out-of-core grids: a zarr store written block by block, resumable,
never mixing settings. Labelling is :mod:`jaxbell.dataset`'s job; this module only writes and
reads what it builds.

Layout of ``FILE.zarr`` (zarr v3, written by xarray so that ``xarray.open_zarr`` reads it):

* one array per field, chunked exactly as the grid's blocks, plus the coordinates and every
  attribute of :func:`jaxbell.evaluate_grid`'s dataset;
* a group ``_jaxbell`` (ignored by xarray) whose attribute ``store`` records every run setting
  that determines the numbers (grid axes as SHA-256 of their float64 bytes, shape, dtype, chunk
  size, block shape, fields, compressor, jaxbell version, format);
* ``_jaxbell/done/<block_id>``: one small JSON file per finished block, created atomically
  (write to a temporary name, then ``os.replace``) only *after* all of the block's data are
  written. A block without its file is not finished, whatever its chunks hold: a run killed
  in the middle of a block (SIGKILL, Ctrl-C, a full disk, a power cut of the process) leaves
  it unfinished, and the next run computes and writes it again;
* consolidated metadata (in the root ``zarr.json``), written when the last block is finished
  (with the history line saying so), so that ``xarray.open_dataset`` opens a finished store
  without a warning. An unfinished store has none.

Reopening a store with other settings is an error that says which setting differs; with
``overwrite`` the old store is removed first. Nothing here guards against a lost page cache
(power failure of the machine): the files are not fsync'ed.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from jaxbell._version import __version__
from jaxbell.dataset import grid_dataset

__all__ = [
    "STORE_FORMAT",
    "GridStore",
    "StoreRemovedError",
    "StoreWriteError",
    "check_folder_writable",
    "check_store_path",
    "check_writable",
    "consolidate_zarr",
    "create_grid_store",
    "is_consolidated",
    "open_dataset",
    "save_dataset",
    "read_record",
    "store_progress",
]

#: Version of the store layout (bumped when the layout changes).
STORE_FORMAT = 1
#: Group holding jaxbell's bookkeeping (settings record, finished-block files).
META_GROUP = "_jaxbell"
_DONE = "done"
_AXES = ("theta", "phi", "omega")


class StoreWriteError(OSError):
    """Writing a block failed (disk full, store removed, permissions). Finished blocks are kept."""


class StoreRemovedError(StoreWriteError):
    """The store was removed or moved during the run: nothing of it survives on disk."""


def _zarr():
    try:
        import zarr
    except ImportError:  # pragma: no cover - zarr is in the [io] extra
        raise ImportError("zarr output needs the zarr package: pip install 'jaxbell[io]'") from None
    return zarr


def _has_metadata(path: Path) -> bool:
    return (path / "zarr.json").is_file() or (path / ".zgroup").is_file()


def check_folder_writable(path: Path, name: str, folder: Path | None = None) -> None:
    """Raise a ValueError naming ``name`` unless a file can be created next to ``path``
    (in ``folder`` if given, the folder ``path`` will be created in).

    The folder must exist and be a folder; a temporary file is created in it and removed
    again (``os.access`` is not enough: it says yes to root, and knows nothing of read-only
    or virtual file systems such as /proc).
    """
    path = Path(path)
    parent = Path(folder) if folder is not None else path.parent
    if not parent.is_dir():
        what = "is a file, not a folder" if parent.exists() else "does not exist"
        raise ValueError(f"{name}={str(path)!r}: folder {str(parent)!r} {what}")
    try:
        fd, probe = tempfile.mkstemp(prefix=".jaxbell-write-test-", dir=parent)
        os.close(fd)
        os.remove(probe)
    except OSError as err:
        raise ValueError(
            f"{name}={str(path)!r}: folder {str(parent)!r} exists but a file cannot be created "
            f"in it (the system says: {err.strerror or err}; a read-only or virtual file "
            "system, or no permission)"
        ) from None


def check_store_path(path, name: str = "path") -> Path:
    """A path for a zarr store: ends in ``.zarr``, its folder exists and is writable."""
    if isinstance(path, (bytes, bytearray)) or not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{name} must be a file name ending in .zarr, got {type(path).__name__}")
    path = Path(path)
    if path.suffix != ".zarr":
        raise ValueError(
            f"{name}={str(path)!r}: an out-of-core grid is a zarr store; end the name in .zarr"
        )
    if path.exists() and not path.is_dir():
        raise ValueError(f"{name}={str(path)!r} exists and is not a zarr store (not a folder)")
    check_folder_writable(path, name)
    if path.exists() and not os.access(path, os.W_OK):
        raise PermissionError(f"{name}={str(path)!r} is not writable")
    return path


def axis_digest(axis: np.ndarray) -> str:
    """SHA-256 of an axis's float64 bytes: equal digests mean identical coordinates."""
    return hashlib.sha256(np.ascontiguousarray(axis, dtype="<f8").tobytes()).hexdigest()


def make_record(plan, compressor: str, fields) -> dict:
    """Every setting that determines the numbers in a store (compared when resuming)."""
    return {
        "format": STORE_FORMAT,
        "jaxbell_version": __version__,
        "shape": list(plan.shape),
        "axes_sha256": {n: axis_digest(a) for n, a in zip(_AXES, plan.axes, strict=True)},
        "axes_range": {
            n: [float(a[0]), float(a[-1]), int(a.size)]
            for n, a in zip(_AXES, plan.axes, strict=True)
        },
        "dtype": plan.dtype.name,
        "chunk_size": plan.chunk_size,
        "block_shape": list(plan.block),
        "nblocks": list(plan.nblocks),
        "fields": list(fields),
        "compressor": compressor,
    }


def read_record(path) -> dict | None:
    """The settings record of a jaxbell grid store, or None if ``path`` is not one."""
    path = Path(path)
    meta = path / META_GROUP / "zarr.json"
    if not meta.is_file():
        return None
    try:
        with open(meta) as fh:
            attrs = json.load(fh).get("attributes", {})
        return json.loads(attrs["store"])
    except (OSError, ValueError, KeyError):
        return None


def describe_differences(stored: Mapping, asked: Mapping) -> list[str]:
    """Human-readable differences between two records (empty when they match)."""
    out = []
    for key in ("format", "jaxbell_version", "dtype", "chunk_size", "compressor", "fields"):
        if stored.get(key) != asked.get(key):
            out.append(f"{key}: stored {stored.get(key)!r}, asked {asked.get(key)!r}")
    for axis in _AXES:
        if stored["axes_sha256"].get(axis) != asked["axes_sha256"].get(axis):
            s0, s1, sn = stored["axes_range"][axis]
            a0, a1, an = asked["axes_range"][axis]
            out.append(
                f"{axis} axis: stored {_points(s0, s1, sn)}, asked {_points(a0, a1, an)}"
                + (
                    " (same ends and size, different values)"
                    if (s0, s1, sn) == (a0, a1, an)
                    else ""
                )
            )
    return out


def _points(first: float, last: float, num: int) -> str:
    """``3 points from A to B``, or ``1 point at A``."""
    if num == 1:
        return f"1 point at {first:.17g}"
    return f"{num} points from {first:.17g} to {last:.17g}"


def check_removable(path: Path, name: str = "path") -> None:
    """Raise a ValueError unless ``path`` is missing, a zarr store or an empty folder."""
    if path.exists() and not (path.is_dir() and (_has_metadata(path) or not any(path.iterdir()))):
        raise ValueError(
            f"{name}={str(path)!r} exists but is not a zarr store or an empty folder; refusing "
            "to remove it. Remove it yourself or choose another name."
        )


def remove_store(path: Path, name: str = "path") -> None:
    """Remove a store for ``overwrite``; refuse anything that is not a zarr store or empty."""
    path = Path(path)
    if not path.exists():
        return
    check_removable(path, name)
    shutil.rmtree(path)


def store_progress(path) -> tuple[int, int] | None:
    """(finished blocks, total blocks) of a jaxbell grid store, or None if not one."""
    record = read_record(path)
    if record is None:
        return None
    total = int(np.prod(record["nblocks"]))
    return len(_done_ids(Path(path) / META_GROUP / _DONE)), total


def _done_ids(folder: Path) -> set[int]:
    try:
        return {int(e.name) for e in os.scandir(folder) if e.name.isdigit()}
    except FileNotFoundError:
        return set()


class GridStore:
    """A jaxbell grid store on disk: its settings record, finished blocks and block writes."""

    def __init__(self, path, record: Mapping):
        self.path = Path(path)
        self.record = dict(record)
        self.done_dir = self.path / META_GROUP / _DONE
        self._arrays = None
        self._lock = threading.Lock()

    @classmethod
    def initialise(cls, path, record: Mapping) -> GridStore:
        """Add the bookkeeping group to a store whose arrays xarray has just created."""
        zarr = _zarr()
        group = zarr.open_group(str(path), mode="r+")
        meta = group.require_group(META_GROUP)
        meta.attrs["store"] = json.dumps(dict(record), sort_keys=True)
        (Path(path) / META_GROUP / _DONE).mkdir(exist_ok=True)
        return cls(path, record)

    @property
    def nblocks(self) -> int:
        return int(np.prod(self.record["nblocks"]))

    def done_ids(self) -> set[int]:
        """Blocks recorded as finished."""
        return _done_ids(self.done_dir)

    def _open_arrays(self):
        with self._lock:
            if self._arrays is None:
                group = _zarr().open_group(str(self.path), mode="r+")
                self._arrays = {name: group[name] for name in self.record["fields"]}
        return self._arrays

    def write_block(self, block_id: int, region, arrays: Mapping[str, np.ndarray], info=None):
        """Write a block's data, then record it as finished (atomically, data first)."""
        try:
            targets = self._open_arrays()
            for name, data in arrays.items():
                targets[name][region] = data
            self._mark_done(block_id, info or {})
        except StoreWriteError:
            raise
        except OSError as err:
            raise StoreWriteError(
                err.errno or errno.EIO,
                f"writing block {block_id} of {str(self.path)!r} failed: {err}",
            ) from err

    def intact(self) -> bool:
        """Whether the store's metadata and finished-block folder are still on disk."""
        return _has_metadata(self.path) and self.done_dir.is_dir()

    def _mark_done(self, block_id: int, info: Mapping) -> None:
        if not self.intact():
            raise StoreRemovedError(
                errno.ENOENT,
                f"the store {str(self.path)!r} was removed or moved during the run "
                f"(block {block_id} not recorded)",
            )
        payload = {
            "block": block_id,
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "host": socket.gethostname(),
            "pid": os.getpid(),
        } | dict(info)
        tmp = self.done_dir / f".{block_id}.{os.getpid()}.{threading.get_ident()}.tmp"
        with open(tmp, "w") as fh:
            json.dump(payload, fh)
        os.replace(tmp, self.done_dir / str(block_id))

    def append_history(self, line: str) -> None:
        """Append a line to the dataset's ``history`` attribute; once every block is finished,
        also write the store's consolidated metadata (see :meth:`consolidate`)."""
        group = _zarr().open_group(str(self.path), mode="r+")
        history = group.attrs.get("history", "")
        group.attrs["history"] = f"{history}\n{line}" if history else line
        if len(self.done_ids()) == self.nblocks:
            self.consolidate()

    def consolidate(self) -> None:
        """Write consolidated metadata, so that ``xarray.open_dataset`` opens the store without
        a warning. Done only for a finished store: until then a resumed run may still change
        the metadata (history), and readers of an unfinished store use its own files."""
        consolidate_zarr(self.path)


# --- datasets to and from files (netCDF, zarr) ------------------------------------------------


def _overwrite_hint(name: str) -> str:
    return "--overwrite" if name.startswith("--") else "overwrite=True"


def check_writable(path: str | os.PathLike, name: str = "out", *, overwrite: bool = False) -> Path:
    """Raise a clear error naming ``name`` unless ``path`` can be written; return it as a Path.

    The folder must exist and accept a new file (a temporary file is created and removed).
    An existing path (a ``.nc`` file or a ``.zarr`` store) is a ``FileExistsError`` unless
    ``overwrite``; then a ``.nc`` file must be writable, and a ``.zarr`` path must be a zarr
    store or an empty folder, never any other folder. ``name`` is the argument named in
    messages (``--out`` from the command line, whose option is then ``--overwrite``).
    """
    path = Path(path)
    if path.is_dir() and path.suffix != ".zarr":
        raise ValueError(f"{name}={str(path)!r} is a directory; give a file name ending in .nc")
    check_folder_writable(path, name)
    if path.exists() and not overwrite:
        if path.suffix == ".zarr":
            try:
                check_removable(path, name)
            except ValueError:  # overwrite would refuse it: do not suggest it
                raise FileExistsError(
                    f"{name}={str(path)!r} is a folder of other files, not a zarr store; "
                    "jaxbell never removes such a folder (not even to overwrite it): choose "
                    "another name"
                ) from None
        what = "a zarr store only, never another folder" if path.suffix == ".zarr" else "a file"
        raise FileExistsError(
            f"{name}={str(path)!r} exists; pass {_overwrite_hint(name)} to replace it "
            f"({what}), or choose another name"
        )
    if path.suffix == ".zarr" and path.exists():
        check_removable(path, name)
    elif path.exists():
        try:
            open(path, "ab").close()  # writes nothing; fails where the file cannot be replaced
        except OSError as err:
            raise ValueError(f"{name}={str(path)!r} is not writable ({err.strerror})") from None
    return path


#: zarr's warnings when consolidating: consolidated metadata is not (yet) in the zarr v3
#: specification (zarr-python and xarray read it, and without it ``xarray.open_dataset`` warns
#: on every open), and a grid store's ``_jaxbell/done`` folder of block files is no zarr node.
_CONSOLIDATE_WARNINGS = (
    "Consolidated metadata is currently not part",
    "Object at .* is not recognized as a component of a Zarr hierarchy",
)


def consolidate_zarr(path: str | os.PathLike) -> None:
    """Write a zarr store's consolidated metadata, so that ``xarray.open_dataset`` and
    ``xarray.open_zarr`` read it in one request and without a warning."""
    import warnings

    import zarr

    with warnings.catch_warnings():
        for message in _CONSOLIDATE_WARNINGS:
            warnings.filterwarnings("ignore", message=message)
        zarr.consolidate_metadata(str(path))


def is_consolidated(path: str | os.PathLike) -> bool:
    """Whether a zarr store (v3 or v2) has consolidated metadata."""
    import json

    path = Path(path)
    if (path / ".zmetadata").is_file():
        return True
    try:
        with open(path / "zarr.json") as fh:
            return json.load(fh).get("consolidated_metadata") is not None
    except (OSError, ValueError):
        return False


def _variable_length_strings(ds: xr.Dataset) -> xr.Dataset:
    """A shallow copy of ``ds`` whose fixed-width unicode variables hold Python strings:
    zarr v3 specifies variable-length strings, not numpy's fixed-length UTF-32 (which zarr
    writes with an ``UnstableSpecificationWarning``). :func:`open_dataset` reads them back
    as fixed-width unicode again."""
    names = [name for name, var in ds.variables.items() if var.dtype.kind == "U"]
    if not names:
        return ds
    out = ds.copy(deep=False)
    coords = {n: out[n].astype(object) for n in names if n in out.coords}
    out = out.assign_coords(coords)
    for n in names:
        if n not in out.coords:
            out[n] = out[n].astype(object)
    return out


def _fixed_width_strings(ds: xr.Dataset) -> xr.Dataset:
    """Undo :func:`_variable_length_strings` on reading: strings as numpy fixed-width
    unicode, as the dataset had before it was written (and as netCDF reads them). String
    variables are labels and solver statuses, small: they are read into memory."""
    names = [n for n, v in ds.variables.items() if v.dtype.kind in "OT"]
    if not names:
        return ds

    def fixed(n):
        var = ds[n].variable
        values = np.asarray(var.values.tolist(), dtype=str)
        return xr.Variable(var.dims, values, var.attrs, var.encoding)

    ds = ds.assign_coords({n: fixed(n) for n in names if n in ds.coords})
    return ds.assign({n: fixed(n) for n in names if n not in ds.coords})


def save_dataset(
    ds: xr.Dataset, path: str | os.PathLike, *, name: str = "out", overwrite: bool = False
) -> Path:
    """Write ``ds`` to netCDF (``.nc``, h5netcdf engine) or zarr (``.zarr``); return the path.

    Bool variables are stored as int8 with a ``dtype: bool`` encoding and read back as bool.
    A zarr store gets consolidated metadata (``xarray.open_dataset`` opens it without a
    warning) and its strings are variable-length (zarr v3 specifies no fixed-width unicode);
    :func:`open_dataset` reads them back as they were.

    Parameters
    ----------
    ds : xarray.Dataset
        The dataset.
    path : str or path-like
        ``FILE.nc`` or ``FILE.zarr``; an existing path is an error unless ``overwrite``.
    name : str
        The argument named in error messages.
    overwrite : bool
        Replace an existing ``FILE.nc`` or ``FILE.zarr``; only a zarr store or an empty folder
        is ever removed.

    Raises
    ------
    ValueError
        The folder does not exist or cannot be written, or the name does not end in .nc/.zarr,
        or ``overwrite`` would remove a folder that is not a zarr store.
    FileExistsError
        ``path`` exists and ``overwrite`` is False.
    """
    if not isinstance(overwrite, bool):
        raise TypeError(f"overwrite must be True or False, got {overwrite!r}")
    path = Path(path)
    if path.suffix not in (".zarr", ".nc", ".nc4", ".h5"):
        raise ValueError(f"{name}={str(path)!r}: use a .nc (netCDF) or .zarr file name")
    path = check_writable(path, name, overwrite=overwrite)
    if path.suffix == ".zarr":
        remove_store(path, name)
        _variable_length_strings(ds).to_zarr(path, mode="w-", consolidated=False)
        consolidate_zarr(path)
    else:
        ds.to_netcdf(path, engine="h5netcdf")
    return path


def open_dataset(
    path: str | os.PathLike, *, allow_incomplete: bool = False, **kwargs
) -> xr.Dataset:
    """Open a dataset written by :func:`save_dataset` or :func:`jaxbell.write_grid`, labelled.

    zarr stores open lazily (dask arrays, one dask chunk per zarr chunk); netCDF files through
    h5netcdf. A zarr store's consolidated metadata is used where it has them (unfinished grid
    stores, and stores of earlier jaxbell versions, have none and open without). Strings read
    back as numpy fixed-width unicode. A grid store that :func:`jaxbell.write_grid` has not
    finished raises a ``ValueError`` saying how much is done, unless ``allow_incomplete=True``
    (then unfinished blocks read as NaN, False and status -1).
    """
    path = Path(path)
    if path.suffix == ".zarr":
        progress = store_progress(path)
        if progress is not None and progress[0] < progress[1] and not allow_incomplete:
            done, total = progress
            raise ValueError(
                f"{str(path)!r} is an unfinished grid store ({done} of {total} "
                f"block{'s' if total != 1 else ''} done); "
                "resume it with the same jaxbell.write_grid call (or jaxbell grid command), "
                "or pass allow_incomplete=True to read what is there"
            )
        kwargs = {"consolidated": is_consolidated(path)} | kwargs
        return _fixed_width_strings(xr.open_zarr(path, **kwargs))
    return xr.open_dataset(path, engine="h5netcdf", **kwargs)


def create_grid_store(
    path: str | os.PathLike,
    theta: np.ndarray,
    phi: np.ndarray,
    omega: np.ndarray,
    fields: Mapping[str, tuple[tuple[int, ...], np.dtype]],
    *,
    block: tuple[int, int, int],
    compressor: str,
    settings: Mapping[str, Any],
    history: str | None = None,
) -> None:
    """Create an empty zarr store for a grid: coordinates, labels, and one array per field
    chunked as the grid's blocks (no field data is written; unwritten chunks read as the fill
    values NaN, False and status -1).

    ``fields`` maps each name to its trailing shape and dtype. The labelling is that of
    :func:`grid_dataset`, so the finished store opens identical to ``evaluate_grid``'s dataset.
    """
    import dask.array as da
    import zarr

    shape = (len(theta), len(phi), len(omega))
    lazy = {
        name: da.zeros(shape + trail, dtype=dt, chunks=-1) for name, (trail, dt) in fields.items()
    }
    ds = grid_dataset(theta, phi, omega, lazy, settings=settings, history=history)
    v3 = int(zarr.__version__.split(".")[0]) >= 3
    encoding = {}
    for name, (trail, _) in fields.items():
        enc: dict[str, Any] = {"chunks": tuple(block) + trail}
        if compressor == "none":
            enc["compressors" if v3 else "compressor"] = None
        if name == "status" and v3:
            enc["fill_value"] = -1  # "not computed" (zarr v3 fill values are not masks)
        encoding[name] = enc
    ds.to_zarr(path, mode="w", compute=False, consolidated=False, encoding=encoding)
