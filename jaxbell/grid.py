"""Dense (theta, phi, omega) grids: one jitted computation per block, bounded memory, progress.

The kernel exploits the structure of eq. (2)-(6): every transcendental function depends on one
or two of the three angles (cos(theta + phi), sin(omega - phi), the four correlators and their
entropies, ...). They are computed on their own 1-D and 2-D axes; the 3-D work is products,
sums and comparisons of broadcast tables, with sin(theta + phi + omega) obtained by the angle
addition formula. The cost per grid point is then a few dozen flops, so the grid runs close to
the speed of merely writing its output (see ``benchmarks/grid_throughput.py``).
"""

from __future__ import annotations

import functools
import math
import sys
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr
from jax.typing import ArrayLike, DTypeLike
from tqdm import tqdm

from jaxbell._precision import x64_scope
from jaxbell.dataset import grid_dataset
from jaxbell.entropy import h_of_sin
from jaxbell.family import boundary_tolerance

__all__ = ["DEFAULT_CHUNK_SIZE", "FIELDS", "evaluate_grid", "grid_fields"]

#: Variables of ``evaluate_grid``'s dataset, in order. ``correlators`` has extra dims (x, y).
FIELDS = (
    "local_bound",
    "quantum_bound",
    "self_testing",
    "violation_ratio",
    "correlators",
    "chsh",
    "max_chsh",
    "key_rate",
    "epsilon",
    "global_rate",
    "status",
)

#: Default number of grid points per jitted block: small enough to stay in cache on a CPU.
DEFAULT_CHUNK_SIZE = 1 << 16
#: Blocks computed or being copied at any one time (bounds memory beyond the output).
MAX_IN_FLIGHT = 2
#: Threads copying finished blocks into the output arrays.
COPY_THREADS = 2


def bytes_per_point(dtype: DTypeLike) -> int:
    """Bytes per grid point of all fields: 13 floats (9 scalars, 4 correlators), a bool, an int8."""
    return 13 * np.dtype(dtype).itemsize + 2


def _pw_tables(p, w):
    """Terms of phi and omega alone (shared by every theta block)."""
    return {
        "cp": jnp.cos(p), "sp": jnp.sin(p), "h00": h_of_sin(p),
        "cw": jnp.cos(w), "sw": jnp.sin(w), "h01": h_of_sin(w),
        "swp": jnp.sin(w[None, :] - p[:, None]),
    }  # fmt: skip


def _t_tables(t, p, w):
    """Terms that involve theta, on (theta,) and (theta, phi) / (theta, omega) axes."""
    tp = t[:, None] + p[None, :]
    tw = t[:, None] + w[None, :]
    return {
        "st": jnp.sin(t),
        "ctp": jnp.cos(tp), "stp": jnp.sin(tp), "h10": h_of_sin(tp),
        "ctw": jnp.cos(tw), "stw": jnp.sin(tw), "h11": h_of_sin(tw),
    }  # fmt: skip


def _block_expand(tab):
    """All fields on the 3-D block from the tables of :func:`_pw_tables` and :func:`_t_tables`
    (merged into one dict): arithmetic, comparisons and writes only.

    Kept a separate jitted computation on purpose: inside one computation XLA fuses the
    sin/cos/log of the tables into the 3-D loops and evaluates them once per grid point
    instead of once per table entry (10x slower on a CPU).
    """
    st, swp = tab["st"], tab["swp"]
    dtype = st.dtype
    # broadcast views onto (t, p, w)
    CP, SP, H00 = (tab[k][None, :, None] for k in ("cp", "sp", "h00"))
    CW, SW, H01 = (tab[k][None, None, :] for k in ("cw", "sw", "h01"))
    CTP, STP, H10 = (tab[k][:, :, None] for k in ("ctp", "stp", "h10"))
    CTW, STW, H11 = (tab[k][:, None, :] for k in ("ctw", "stw", "h11"))
    # eq. (5), with sin(theta + phi + omega) by angle addition
    eta_q = st[:, None, None] * swp[None, :, :] * (STP * CW + CTP * SW)
    # eq. (3)
    a = CTW * CW
    b = CTP * CP
    eta_l = jnp.maximum(
        jnp.abs(a * (CTP + CP)) + jnp.abs(b * (CTW + CW)),
        jnp.abs(a * (CTP - CP)) + jnp.abs(b * (CTW - CW)),
    )
    # condition (4)
    tol = boundary_tolerance(dtype)
    self_testing = -(b * a) > tol
    trivial = eta_l <= tol  # all four coefficients vanish up to rounding
    nan = jnp.asarray(jnp.nan, dtype)
    ratio = jnp.where(trivial, nan, jnp.abs(eta_q) / jnp.where(trivial, 1, eta_l))
    # the strategy of eq. (6): E = sin(alpha_x + beta_y)
    shape = eta_q.shape
    e00, e01 = jnp.broadcast_to(SP, shape), jnp.broadcast_to(SW, shape)
    e10, e11 = jnp.broadcast_to(STP, shape), jnp.broadcast_to(STW, shape)
    correlators = jnp.stack([jnp.stack([e00, e01], -1), jnp.stack([e10, e11], -1)], -2)
    total = e00 + e01 + e10 + e11
    chsh = total - 2 * e11
    max_chsh = jnp.maximum(
        jnp.maximum(jnp.abs(total - 2 * e00), jnp.abs(total - 2 * e01)),
        jnp.maximum(jnp.abs(total - 2 * e10), jnp.abs(chsh)),
    )
    # rates at the quantum bound (entropy.py), on the self-testing region only
    hmin = jnp.minimum(jnp.minimum(H00, H01), jnp.minimum(H10, H11))
    hmax = jnp.maximum(jnp.maximum(H00, H01), jnp.maximum(H10, H11))
    epsilon = jnp.where(self_testing, hmin, nan)
    status = jnp.where(trivial, 2, jnp.where(self_testing, 0, 1)).astype(jnp.int8)
    return {
        "local_bound": eta_l,
        "quantum_bound": eta_q,
        "self_testing": self_testing,
        "violation_ratio": ratio,
        "correlators": correlators,
        "chsh": chsh,
        "max_chsh": max_chsh,
        "key_rate": 1 - epsilon,
        "epsilon": epsilon,
        "global_rate": jnp.where(self_testing, 1 + hmax, nan),
        "status": status,
    }


def _block_fields(t, p, w):
    """All fields on the block ``t x p x w`` (1-D coordinate arrays). Pure, jit-able."""
    return _block_expand(_pw_tables(p, w) | _t_tables(t, p, w))


@jax.jit
def _tables(t, p, w):
    """All tables for a (phi, omega) block and the whole (padded) theta axis."""
    return _pw_tables(p, w) | _t_tables(t, p, w)


_THETA_TABLES = ("st", "ctp", "stp", "h10", "ctw", "stw", "h11")


@functools.partial(jax.jit, static_argnames="size")
def _expand_rows(tab, start, size):
    """Fields for theta rows ``start : start + size`` of the tables (``start`` traced: one
    compilation serves every block)."""
    rows = {k: jax.lax.dynamic_slice_in_dim(tab[k], start, size) for k in _THETA_TABLES}
    return _block_expand(tab | rows)


def _check_axis(values: ArrayLike, name: str) -> np.ndarray:
    """A grid axis: 1-D (a scalar makes a length-1 axis), finite, non-empty, increasing."""
    if isinstance(values, (str, bytes)) or values is None:
        raise TypeError(
            f"{name} must be an array of angles in radians, got {type(values).__name__}"
        )
    arr = np.asarray(values)
    if arr.dtype == object or not (
        np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)
    ):
        raise TypeError(f"{name} must be a real array of angles in radians, got dtype {arr.dtype}")
    arr = np.atleast_1d(arr.astype(np.float64))
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D (one axis of the grid); got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} is empty; give at least one angle")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} has non-finite value(s) (NaN or inf); angles must be finite")
    if arr.size > 1 and not np.all(np.diff(arr) > 0):
        raise ValueError(
            f"{name} must be strictly increasing (a sorted axis without repeats); "
            "use np.sort / np.unique, or np.linspace(start, stop, num) with start < stop"
        )
    return arr


def _float_dtype(dtype: DTypeLike) -> np.dtype:
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"dtype must be float32 or float64, got {dtype!r}") from None
    if dt not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise TypeError(f"dtype must be float32 or float64, got {dt}")
    return dt


def block_shape(shape: tuple[int, int, int], chunk_size: int) -> tuple[int, int, int]:
    """Block (bt, bp, bo) of at most ``max(chunk_size, 1)`` points: whole omega rows first."""
    nt, np_, no = shape
    bo = min(no, chunk_size)
    bp = min(np_, max(1, chunk_size // bo))
    bt = min(nt, max(1, chunk_size // (bo * bp)))
    return bt, bp, bo


def _pad(axis: np.ndarray, block: int) -> np.ndarray:
    """Pad an axis with its last value to a multiple of ``block`` (padded points are dropped)."""
    extra = (-axis.size) % block
    return np.concatenate([axis, np.full(extra, axis[-1])]) if extra else axis


def field_dtypes(dtype: DTypeLike) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """Trailing shape and dtype of every field, for a grid computed in ``dtype``."""
    dt = np.dtype(dtype)
    special = {"self_testing": np.dtype(bool), "status": np.dtype(np.int8)}
    return {
        name: ((2, 2) if name == "correlators" else (), special.get(name, dt)) for name in FIELDS
    }


def _allocate_fields(shape: tuple[int, ...], dtype: np.dtype) -> dict[str, np.ndarray]:
    """Uninitialised output arrays, one per field."""
    return {n: np.empty(shape + trail, dt) for n, (trail, dt) in field_dtypes(dtype).items()}


def _check_chunk_size(chunk_size) -> int:
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, (int, np.integer)):
        raise TypeError(f"chunk_size must be a positive integer, got {chunk_size!r}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive integer, got {chunk_size}")
    return int(chunk_size)


def grid_fields(
    theta: ArrayLike,
    phi: ArrayLike,
    omega: ArrayLike,
    *,
    dtype: DTypeLike = np.float64,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    progress: bool | None = None,
) -> dict[str, np.ndarray]:
    """The grid's fields as NumPy arrays (no labelling); arguments as in :func:`evaluate_grid`."""
    axes = [_check_axis(v, n) for v, n in ((theta, "theta"), (phi, "phi"), (omega, "omega"))]
    dt = _float_dtype(dtype)
    chunk_size = _check_chunk_size(chunk_size)
    shape = tuple(a.size for a in axes)
    blk = block_shape(shape, chunk_size)
    padded = [_pad(a, b).astype(dt) for a, b in zip(axes, blk, strict=True)]
    out = _allocate_fields(shape, dt)
    starts = [range(0, n, b) for n, b in zip(shape, blk, strict=True)]
    blocks = [(i, j, k) for i in starts[0] for j in starts[1] for k in starts[2]]
    npoints = math.prod(shape)
    if progress is None:  # tqdm's None: shown only on a terminal; one block has nothing to show
        disable = True if len(blocks) == 1 else None
    else:
        disable = not progress
    bar = tqdm(
        total=npoints, unit="pt", unit_scale=True, disable=disable, desc="grid", file=sys.stderr
    )

    def copy(start, result):
        """Copy a finished block into the output arrays (runs on a copy thread)."""
        i, j, k = start
        it, jp, ko = (min(b, n - s) for b, n, s in zip(blk, shape, start, strict=True))
        for name, arr in result.items():
            out[name][i : i + it, j : j + jp, k : k + ko] = np.asarray(arr)[:it, :jp, :ko]
        return it * jp * ko

    tables: dict[tuple[int, int], dict] = {}
    inflight: deque = deque()

    def drain(keep: int) -> None:
        while len(inflight) > keep:
            bar.update(inflight.popleft().result())  # re-raises any copy error

    # Blocks are dispatched asynchronously; copy threads move finished blocks into the output
    # while the next block computes (np.copyto releases the GIL). At most MAX_IN_FLIGHT blocks
    # exist at once, which bounds the memory beyond the output.
    with x64_scope(dt), bar, ThreadPoolExecutor(COPY_THREADS) as pool:
        theta_dev = jnp.asarray(padded[0])
        for start in blocks:
            i, j, k = start
            if (j, k) not in tables:  # the transcendental tables, once per (phi, omega) block
                tables.clear()
                tables[(j, k)] = _tables(
                    theta_dev,
                    jnp.asarray(padded[1][j : j + blk[1]]),
                    jnp.asarray(padded[2][k : k + blk[2]]),
                )
            result = _expand_rows(tables[(j, k)], i, blk[0])
            inflight.append(pool.submit(copy, start, result))
            drain(MAX_IN_FLIGHT - 1)
        drain(0)
    return out


def evaluate_grid(
    theta: ArrayLike,
    phi: ArrayLike,
    omega: ArrayLike,
    *,
    dtype: DTypeLike = np.float64,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    progress: bool | None = None,
) -> xr.Dataset:
    """Evaluate the family of eq. (2) and the strategy of eq. (6) on a dense 3-D grid.

    Parameters
    ----------
    theta, phi, omega : array_like
        1-D axes of the grid, radians: finite, non-empty, strictly increasing (a scalar gives
        a length-1 axis, e.g. ``omega=np.pi`` for the plane of the paper's Figure 1).
    dtype : {float64, float32}
        Precision of the computation and of the float variables (recorded in the dataset).
        float64 (default) keeps ``epsilon`` to relative 1e-12; float32 halves memory and
        resolves epsilon only above ~1e-6. float64 works whether or not JAX's x64 mode is on.
    chunk_size : int
        Grid points per jitted block. Memory beyond the output arrays is bounded by about
        ``2 * chunk_size * (13 * itemsize + 2)`` bytes (two blocks in flight), e.g. 14 MB for
        the default 65536 points in float64, whatever the grid size. One compilation serves
        every block (the last block is padded).
    progress : bool or None
        Show a tqdm progress bar (on stderr). None: show when stderr is a terminal and the
        grid has more than one block.

    Returns
    -------
    xarray.Dataset
        Dims (theta, phi, omega) and, for ``correlators``, (x, y). Variables:
        ``local_bound`` (eq. 3), ``quantum_bound`` (eq. 5), ``self_testing`` (condition 4),
        ``violation_ratio`` (= |eta^Q| / eta^L), ``correlators`` (eq. 6), ``chsh``,
        ``max_chsh``, ``key_rate``, ``epsilon``, ``global_rate`` (bits; NaN where (4) fails),
        and ``status`` (0 self-testing, 1 not self-testing so rates NaN, 2 all coefficients
        zero up to rounding so violation_ratio NaN), each with long_name, units and
        description. Attributes record the dtype, chunk size, block shape, JAX version and
        devices, the jaxbell version, the paper's DOI and a history line.

    Examples
    --------
    >>> import numpy as np, jaxbell as jb
    >>> ds = jb.evaluate_grid(np.linspace(0, np.pi, 64), np.linspace(0, np.pi, 64), np.pi)
    >>> float(ds.max_chsh.where(ds.self_testing & (ds.global_rate == 2)).max()) <= 3 * 3**0.5 / 2
    True

    References
    ----------
    Eqs. (2)-(6) of Wooltorton, Brown & Colbeck, PRL 132, 210802 (2024).
    """
    axes = [_check_axis(v, n) for v, n in ((theta, "theta"), (phi, "phi"), (omega, "omega"))]
    dt = _float_dtype(dtype)
    chunk_size = _check_chunk_size(chunk_size)
    t0 = time.perf_counter()
    fields = grid_fields(*axes, dtype=dt, chunk_size=chunk_size, progress=progress)
    elapsed = time.perf_counter() - t0
    shape = tuple(a.size for a in axes)
    settings = {
        "dtype": dt.name,
        "chunk_size": chunk_size,
        "block_shape": list(block_shape(shape, chunk_size)),
        "jax_version": jax.__version__,
        "devices": [str(d) for d in jax.devices()],
        "elapsed_seconds": round(elapsed, 3),
    }
    return grid_dataset(
        *axes,
        fields,
        settings=settings,
        history=f"jaxbell.evaluate_grid on a {shape[0]}x{shape[1]}x{shape[2]} grid ({dt.name})",
    )
