"""Reductions of a dense grid computed block by block on the devices, without the fields.

For runs that need statistics of a grid rather than its fields -- a 1024^3 grid has more than
10^9 points and its fields take over 100 GB -- :func:`reduce_grid` computes, inside the same
compiled program as each block's fields (which are never stored or copied to the host):

``chsh_at_key_rate``
    for each bound eps in a list, the largest and the smallest ``max_chsh`` over self-testing
    points with ``key_rate >= 1 - eps`` (evaluated as ``epsilon <= eps``, which keeps full
    precision for tiny eps), where they are attained, and how many points meet it;
``max_chsh_histogram``
    a histogram of ``max_chsh`` over the self-testing region (condition 4), with the counts
    below the first and above the last edge;
``self_testing_fraction``
    the fraction of the grid where condition (4) holds, and the count of every status flag.

Each device returns a few numbers per block; the host combines them exactly (integer counts;
maxima with ties broken by the first grid point in (theta, phi, omega) order), so the results
do not depend on the block size, the device count or the order in which blocks finish, and
equal the same reductions computed from the full fields of :func:`jaxbell.evaluate_grid`.

References
----------
Eqs. (1)-(6) and Props. 3-5 of Wooltorton, Brown & Colbeck, PRL 132, 210802 (2024).
"""

from __future__ import annotations

import functools
import math
import threading
import time
from collections.abc import Iterable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr
from jax.sharding import PartitionSpec
from jax.typing import ArrayLike, DTypeLike

from jaxbell.dataset import reduction_dataset
from jaxbell.grid import (
    Consumer,
    GridPlan,
    _check_process,
    _compiler_options,
    _expand_rows,
    _log_start,
    _prepare,
    logger,
    run_engine,
)
from jaxbell.sharding import BATCH_AXIS, shard_map

__all__ = [
    "DEFAULT_BINS",
    "DEFAULT_EPSILON_BOUNDS",
    "REDUCTIONS",
    "LAST_EDGE_ULPS",
    "last_edge_top",
    "merge_reductions",
    "reduce_grid",
]

#: Names of the available reductions (``reduce_grid(..., reductions=...)``).
REDUCTIONS = ("chsh_at_key_rate", "max_chsh_histogram", "self_testing_fraction")
#: Default bounds eps of ``key_rate >= 1 - eps``, bits.
DEFAULT_EPSILON_BOUNDS = (1e-1, 1e-2, 1e-3, 1e-4, 1e-6, 1e-8)
#: Default histogram edges of max_chsh: 100 bins from the local bound 2 to Tsirelson's 2 sqrt 2.
DEFAULT_BINS = np.linspace(2.0, 2.0 * math.sqrt(2.0), 101)


#: Lanes of the column-wise first stage of the block reductions (see :func:`_reduce`).
LANES = 64


#: Operands per variadic reduce on accelerators. A GPU reduction keeps a shared-memory tile
#: per operand; XLA cannot split one variadic reduce, and with the 21 operands of the default
#: reductions ptxas rejects the kernel ("uses too much shared data", seen on an H200).
ACCELERATOR_GROUP = 4


def _reduce(operands, inits, combine, group: int | None = None):
    """Several reductions of (rows, LANES) operands: variadic reduces over the rows
    (independent lanes, which XLA vectorises: ~3x faster on a CPU than reducing the flat block,
    and ~3x faster again than separate masked reductions), then over the lanes. ``group``
    operands at most per reduce (None: all in one pass, best on a CPU)."""
    inits = tuple(jnp.asarray(i, o.dtype) for i, o in zip(inits, operands, strict=True))
    group = len(operands) if group is None else max(1, group)
    out = []
    for k in range(0, len(operands), group):
        ops, ini, comb = operands[k : k + group], inits[k : k + group], combine[k : k + group]

        def comp(a, b, comb=comb):
            return tuple(c(x, y) for c, x, y in zip(comb, a, b, strict=True))

        lanes = jax.lax.reduce(tuple(ops), ini, comp, (0,))
        out += jax.lax.reduce(lanes, ini, comp, (0,))
    return tuple(out)


#: The last histogram bin also holds values up to this many units of roundoff
#: (``LAST_EDGE_ULPS * finfo(dtype).eps * |edge|``) above its upper edge: max_chsh at
#: Tsirelson's bound 2 sqrt 2 (the default last edge) comes out up to ~3 ulps above it by
#: rounding, and those points are not "above" the bins.
LAST_EDGE_ULPS = 8


def last_edge_top(edges):
    """The largest value the last bin holds: ``edges[-1]`` plus :data:`LAST_EDGE_ULPS` units
    of roundoff, in the dtype of ``edges``; NumPy or JAX arrays alike (the devices use this
    same function, so host and device agree to the bit)."""
    if not isinstance(edges, jax.Array):
        edges = np.asarray(edges)
    top = edges[-1]
    return top + edges.dtype.type(LAST_EDGE_ULPS * np.finfo(edges.dtype).eps) * abs(top)


def _histogram_slots(mc, edges, uniform: bool):
    """Slot of each value: 0 below ``edges[0]``, 1 + i in bin i ([e_i, e_i+1), the last bin
    closed and extended to :func:`last_edge_top`), ``nb + 1`` above (``numpy.histogram``
    semantics except for that extension, which absorbs rounding at 2 sqrt 2)."""
    nb = edges.shape[0] - 1
    if uniform:  # a guess from the bin width, then one exact correction each way
        inf = jnp.full((1,), jnp.inf, edges.dtype)
        ext = jnp.concatenate([-inf, edges, inf])  # ext[s] <= v < ext[s + 1] in slot s
        width = (edges[-1] - edges[0]) / nb
        guess = jnp.floor((mc - edges[0]) / width)
        slot = jnp.clip(guess, -1, nb).astype(jnp.int32) + 1
        slot = slot - (mc < ext[slot]).astype(jnp.int32)
        slot = slot + (mc >= ext[slot + 1]).astype(jnp.int32)
    else:
        slot = jnp.searchsorted(edges, mc, side="right").astype(jnp.int32)
    return jnp.where((mc >= edges[-1]) & (mc <= last_edge_top(edges)), nb, slot)


def _block_partials(fields, limits, eps, edges, histogram: str, group: int | None = None):
    """Partial reductions of one block of fields (shape (bt, bp, bo)).

    Points at or beyond ``limits`` (rows, columns, depths that are padding) are excluded.
    Returns counts of status 0 and 2 and of valid points, the histogram slots' counts, and for
    each bound eps the largest / smallest max_chsh among self-testing points with
    ``epsilon <= eps``, how many there are, and the flat index in the block of the first point
    (row-major) attaining each extremum (``size`` where none).
    """
    shape = fields["max_chsh"].shape
    size = math.prod(shape)
    valid = (
        (jax.lax.broadcasted_iota(jnp.int32, shape, 0) < limits[0])
        & (jax.lax.broadcasted_iota(jnp.int32, shape, 1) < limits[1])
        & (jax.lax.broadcasted_iota(jnp.int32, shape, 2) < limits[2])
    ).reshape(-1)
    st = fields["self_testing"].reshape(-1) & valid
    mc = fields["max_chsh"].reshape(-1)
    epsilon = fields["epsilon"].reshape(-1)
    trivial = (fields["status"].reshape(-1) == 2) & valid
    one = jnp.int32
    pad = (-size) % LANES  # the reductions see (rows, LANES) arrays; padding is not valid

    def lanes(x, fill):
        return jnp.pad(x, (0, pad), constant_values=fill).reshape(-1, LANES)

    st_l, mc_l, eps_l = lanes(st, False), lanes(mc, 0), lanes(epsilon, jnp.nan)
    triv_l, valid_l = lanes(trivial, False), lanes(valid, False)
    meets = [st_l & (eps_l <= eps[j]) for j in range(eps.shape[0])]  # NaN never meets
    # pass 1: extrema, how many meet each bound, status counts
    ops, inits, comb = [], [], []
    for m in meets:
        ops += [jnp.where(m, mc_l, -jnp.inf), jnp.where(m, mc_l, jnp.inf), m.astype(one)]
        inits += [-jnp.inf, jnp.inf, 0]
        comb += [jnp.maximum, jnp.minimum, jnp.add]
    ops += [(st_l & ~triv_l).astype(one), triv_l.astype(one), valid_l.astype(one)]
    inits += [0, 0, 0]
    comb += [jnp.add] * 3
    red = _reduce(ops, inits, comb, group)
    if meets:
        hi_v, lo_v, n_meet = (jnp.stack(red[k : 3 * len(meets) : 3]) for k in range(3))
    else:  # no bounds asked for: nothing to locate
        hi_v, lo_v, n_meet = jnp.zeros((0,), mc.dtype), jnp.zeros((0,), mc.dtype), jnp.zeros(0, one)
    n_st, n_trivial, n_valid = red[-3:]
    # pass 2: the first point (flat index in the block) attaining each extremum
    iota = jax.lax.broadcasted_iota(one, (size + pad) // LANES * LANES, 0).reshape(-1, LANES)
    ops = []
    for j, m in enumerate(meets):
        ops += [
            jnp.where(m & (mc_l == hi_v[j]), iota, size),
            jnp.where(m & (mc_l == lo_v[j]), iota, size),
        ]
    idx = _reduce(ops, [size] * len(ops), [jnp.minimum] * len(ops), group) if ops else ()
    if histogram == "none":
        hist = jnp.zeros(edges.shape[0] + 1, one)
    else:
        slot = _histogram_slots(mc, edges, histogram == "uniform")
        slot = jnp.where(st, slot, edges.shape[0] + 1)
        hist = jnp.zeros(edges.shape[0] + 2, one).at[slot].add(1)[:-1]
    return {
        "counts": jnp.stack([n_st, n_valid - n_st - n_trivial, n_trivial]),
        "hi_val": hi_v,
        "hi_idx": jnp.stack(idx[0::2]) if idx else jnp.zeros(0, one),
        "lo_val": lo_v,
        "lo_idx": jnp.stack(idx[1::2]) if idx else jnp.zeros(0, one),
        "n_meet": n_meet,
        "hist": hist,
    }


def _device_partials(tab, start, limits, eps, edges, *, size, sharded, histogram, group):
    d = jax.lax.axis_index(BATCH_AXIS) if sharded else 0
    fields = _expand_rows(tab, start + d * size, size)
    limits = limits - jnp.stack([d * size, 0, 0]).astype(limits.dtype)
    partials = _block_partials(fields, limits, eps, edges, histogram, group)
    return jax.tree.map(lambda x: x[None], partials)


@functools.lru_cache(maxsize=32)
def _reducer(mesh, size: int, ndev: int, histogram: str):
    """The compiled step of a reduction: partials of each device's block, leading axis ndev."""
    platform = mesh.devices.flat[0].platform
    group = None if platform == "cpu" else ACCELERATOR_GROUP
    kwargs = {"size": size, "histogram": histogram, "group": group}
    opts = _compiler_options(platform)
    if ndev == 1:
        return jax.jit(
            functools.partial(_device_partials, sharded=False, **kwargs), compiler_options=opts
        )
    rep = PartitionSpec()
    return jax.jit(
        shard_map(
            functools.partial(_device_partials, sharded=True, **kwargs),
            mesh=mesh,
            in_specs=(rep, rep, rep, rep, rep),
            out_specs=PartitionSpec(BATCH_AXIS),
        ),
        compiler_options=opts,
    )


#: Grid index recorded for an extremum that could not be located (loses every tie; NaN angles).
_UNLOCATED = 1 << 62


class _Accumulator:
    """Exact host-side combination of block partials (global indices, integer counts)."""

    def __init__(self, n_eps: int, n_bins: int):
        self.counts = np.zeros(3, np.int64)
        self.hi_val = np.full(n_eps, -np.inf)
        self.hi_idx = np.full((n_eps, 3), -1, np.int64)
        self.lo_val = np.full(n_eps, np.inf)
        self.lo_idx = np.full((n_eps, 3), -1, np.int64)
        self.n_meet = np.zeros(n_eps, np.int64)
        self.hist = np.zeros(n_bins + 2, np.int64)
        self.lock = threading.Lock()

    def merge(self, part) -> None:
        """Fold partials whose ``hi_idx`` / ``lo_idx`` are grid indices, shape (n_eps, 3)."""
        with self.lock:
            self.counts += np.asarray(part["counts"], np.int64)
            self.n_meet += np.asarray(part["n_meet"], np.int64)
            self.hist += np.asarray(part["hist"], np.int64)
            for vals, idxs, sign, kv, ki in (
                (self.hi_val, self.hi_idx, 1.0, "hi_val", "hi_idx"),
                (self.lo_val, self.lo_idx, -1.0, "lo_val", "lo_idx"),
            ):
                for e in range(vals.size):
                    v, idx = float(part[kv][e]), tuple(int(i) for i in part[ki][e])
                    if not math.isfinite(v):  # no point of this part meets the bound
                        continue
                    if sign * v > sign * vals[e] or (v == vals[e] and idx < tuple(idxs[e])):
                        vals[e] = v
                        idxs[e] = idx

    def arrays(self) -> dict[str, np.ndarray]:
        return {
            "counts": self.counts,
            "hi_val": self.hi_val,
            "hi_idx": self.hi_idx,
            "lo_val": self.lo_val,
            "lo_idx": self.lo_idx,
            "n_meet": self.n_meet,
            "hist": self.hist,
        }


class ReduceConsumer(Consumer):
    """Computes each step's partial reductions on the devices and folds them on the host."""

    def __init__(self, plan: GridPlan, eps: np.ndarray, edges: np.ndarray, names=REDUCTIONS):
        super().__init__(plan)
        if "chsh_at_key_rate" not in names:  # skip the passes over the bounds
            eps = eps[:0]
        self.eps = eps
        self.edges = edges
        self.acc = _Accumulator(eps.size, edges.size - 1)
        widths = np.diff(edges.astype(np.float64))
        uniform = bool(np.allclose(widths, widths.mean(), rtol=1e-6, atol=0))
        self.histogram = (
            "none" if "max_chsh_histogram" not in names else ("uniform" if uniform else "search")
        )
        self._dev = None

    def compute(self, tab, start, step):
        if self._dev is None:  # placed once, inside the engine's precision scope
            self._dev = (self.plan.put(self.eps), self.plan.put(self.edges))
        bj, bk, st = step
        nt, np_, no = self.plan.shape
        bt, bp, bo = self.plan.block
        limits = np.array([nt - st * self.plan.step_rows, np_ - bj * bp, no - bk * bo], np.int32)
        fn = _reducer(self.plan.mesh, bt, self.plan.ndev, self.histogram)
        return fn(tab, start, self.plan.put(limits), *self._dev)

    def submit(self, pool, blocks, result):
        return [pool.submit(self._fold, blocks, result)]

    def release(self, result) -> None:
        """Partial reductions are small and of another shape: nothing to reuse."""

    def _fold(self, blocks, result) -> int:
        host = {k: np.asarray(v) for k, v in result.items()}
        points = 0
        for d, block in enumerate(blocks):
            if block is None:
                continue
            part = {k: v[d] for k, v in host.items()}
            origin = np.array([s.start for s in self.plan.block_region(*block)], np.int64)
            for key, val in (("hi_idx", "hi_val"), ("lo_idx", "lo_val")):
                flat = np.asarray(part[key], np.int64)
                lost = np.isfinite(part[val]) & (flat >= math.prod(self.plan.block))
                if lost.any():  # cannot happen unless the two passes disagree; never silently
                    logger.warning("an extremum of block %s could not be located", block)
                flat = np.minimum(flat, math.prod(self.plan.block) - 1)
                idx = origin + np.stack(np.unravel_index(flat, self.plan.block), -1)
                part[key] = np.where(lost[:, None], _UNLOCATED, idx)
            self.acc.merge(part)
            points += self.plan.block_points(*block)
        return points


def _check_eps(epsilon_bounds) -> np.ndarray:
    if isinstance(epsilon_bounds, (str, bytes)):
        raise TypeError("epsilon_bounds must be numbers (bits), e.g. [1e-2, 1e-4]")
    arr = np.atleast_1d(np.asarray(epsilon_bounds, dtype=float))
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError("epsilon_bounds must be a non-empty 1-D list of bounds in bits")
    if not np.all(np.isfinite(arr)) or np.any(arr < 0) or np.any(arr > 1):
        raise ValueError(
            f"epsilon_bounds must lie in [0, 1] bits (key_rate >= 1 - eps); got {arr.tolist()}"
        )
    return arr


def _check_bins(bins) -> np.ndarray:
    if isinstance(bins, (int, np.integer)) and not isinstance(bins, bool):
        if bins < 1:
            raise ValueError(f"bins must be >= 1 (a number of bins) or a list of edges; got {bins}")
        return np.linspace(2.0, 2.0 * math.sqrt(2.0), int(bins) + 1)
    if isinstance(bins, (str, bytes)):
        raise TypeError("bins must be a number of bins or an increasing list of edges")
    arr = np.asarray(bins, dtype=float)
    if arr.ndim != 1 or arr.size < 2:
        raise ValueError("bins must be a number of bins or at least two increasing edges")
    if not np.all(np.isfinite(arr)) or not np.all(np.diff(arr) > 0):
        raise ValueError("bin edges must be finite and strictly increasing")
    return arr


def _check_reductions(reductions) -> tuple[str, ...]:
    if reductions is None:
        return REDUCTIONS
    names = (reductions,) if isinstance(reductions, str) else tuple(reductions)
    if names == ("all",):
        return REDUCTIONS
    unknown = [n for n in names if n not in REDUCTIONS]
    if unknown or not names:
        raise ValueError(f"reductions must be chosen from {REDUCTIONS} (or 'all'); got {names}")
    return tuple(n for n in REDUCTIONS if n in names)


def reduce_grid(
    theta: ArrayLike,
    phi: ArrayLike,
    omega: ArrayLike,
    *,
    reductions: str | Iterable[str] | None = None,
    epsilon_bounds: ArrayLike = DEFAULT_EPSILON_BOUNDS,
    bins: int | ArrayLike = DEFAULT_BINS,
    dtype: DTypeLike = np.float64,
    chunk_size: int | None = None,
    progress: bool | None = None,
    devices: int | Sequence[jax.Device] | None = None,
    process: tuple[int, int] | None = None,
) -> xr.Dataset:
    """Maxima, histograms and fractions over a dense grid, computed without storing its fields.

    Every block of the grid of :func:`jaxbell.evaluate_grid` is computed on the devices and
    reduced there in the same compiled program; only a few numbers per block reach the host.
    Memory is bounded by the block size whatever the grid size.

    Parameters
    ----------
    theta, phi, omega : array_like
        Grid axes, radians, as in :func:`jaxbell.evaluate_grid`.
    reductions : str, iterable of str or None
        Which of :data:`REDUCTIONS` to compute (None or "all": every one). The self-testing
        fraction is nearly free; each bound of ``chsh_at_key_rate`` adds two passes over the
        block, the histogram one.
    epsilon_bounds : array_like
        Bounds eps in [0, 1] bits for ``chsh_at_key_rate``: the constraint is
        ``key_rate >= 1 - eps`` on self-testing points, evaluated as ``epsilon <= eps``.
    bins : int or array_like
        Histogram edges of max_chsh (strictly increasing, dimensionless), or a number of
        equal bins from 2 to 2 sqrt 2. Bins are [lower, upper), the last one closed, as in
        ``numpy.histogram``, and extended by :data:`LAST_EDGE_ULPS` units of roundoff (so
        that max_chsh at Tsirelson's bound, a few ulps above 2 sqrt 2 by rounding, falls in
        it); values outside are counted below / above. Edges are used in
        ``dtype`` (and recorded as such).
    dtype : {float64, float32}
        Precision of the computation.
    chunk_size : int or None
        Points per block and device; None: :func:`jaxbell.grid.default_chunk_size`.
    progress : bool or None
        tqdm progress bar with ETA on stderr (None: when stderr is a terminal).
    devices : None, int or sequence of jax.Device
        Devices to split the blocks over (default: all of this process's).
    process : (index, count) or None
        This process's share of the grid. None: ``(jax.process_index(), jax.process_count())``;
        with ``jax.distributed`` initialised the shares are then gathered, so every process
        returns the reduction of the whole grid. An explicit share returns that share's
        reduction; combine the shares with :func:`merge_reductions`.

    Returns
    -------
    xarray.Dataset
        With the grid axes as coordinates and, per reduction: ``largest_max_chsh``,
        ``theta_at_largest`` ... ``smallest_max_chsh`` ... ``points_meeting`` over dim
        ``epsilon_bound`` (NaN where no point meets the bound); ``max_chsh_histogram`` over dim
        ``max_chsh_bin`` with ``max_chsh_below_bins`` / ``max_chsh_above_bins``;
        ``self_testing_fraction`` and ``status_count`` over dim ``status_flag``.

    References
    ----------
    Eqs. (1)-(6) and Props. 3-5 of Wooltorton, Brown & Colbeck, PRL 132, 210802 (2024).
    """
    names = _check_reductions(reductions)
    eps = _check_eps(epsilon_bounds)
    edges64 = _check_bins(bins)
    axes, dt, chunk_size, devs = _prepare(theta, phi, omega, dtype, chunk_size, devices, "reduce")
    edges = edges64.astype(dt)
    if not np.all(np.diff(edges) > 0):
        raise ValueError(f"bin edges are not strictly increasing once rounded to {dt.name}")
    explicit = process is not None
    proc = _check_process(process)
    plan = GridPlan(axes, dt, chunk_size, devs)
    _log_start("reduce_grid", plan, f" (process {proc[0]} of {proc[1]})" if proc[1] > 1 else "")
    consumer = ReduceConsumer(plan, eps.astype(dt), edges, names)
    t0 = time.perf_counter()
    run_engine(plan, consumer, progress=progress, desc="reduce", process=proc)
    acc = consumer.acc.arrays()
    share = f"share {proc[0]} of {proc[1]}" if proc[1] > 1 else "whole grid"
    if proc[1] > 1 and not explicit:
        acc = _gather_processes(acc)
        share = f"whole grid, gathered from {proc[1]} processes (jax.distributed)"
    elapsed = time.perf_counter() - t0
    settings = plan.settings() | {
        "reductions": list(names),
        "elapsed_seconds": round(elapsed, 3),
        "process": share,
    }
    nt, np_, no = plan.shape
    return reduction_dataset(
        *axes,
        acc,
        epsilon_bounds=eps,
        edges=edges.astype(np.float64),
        reductions=names,
        settings=settings,
        history=f"jaxbell.reduce_grid on a {nt}x{np_}x{no} grid ({dt.name})",
    )


def _gather_processes(acc: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Combine the accumulators of all processes (jax.distributed) exactly."""
    from jax.experimental import multihost_utils

    gathered = {k: np.asarray(multihost_utils.process_allgather(v)) for k, v in acc.items()}
    return _combine_many(
        [{k: v[p] for k, v in gathered.items()} for p in range(jax.process_count())]
    )


def _combine_many(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    out = _Accumulator(parts[0]["hi_val"].size, parts[0]["hist"].size - 2)
    for part in parts:
        out.merge(part)
    return out.arrays()


def merge_reductions(datasets: Sequence[xr.Dataset]) -> xr.Dataset:
    """Combine the datasets of :func:`reduce_grid` run on disjoint shares of one grid
    (``process=(i, n)`` for i = 0 .. n-1) into the reduction of the whole grid, exactly.

    All must share axes, dtype, epsilon bounds and bin edges (a ``ValueError`` says which
    differs). Counts add; extrema take the best value, ties going to the first grid point in
    (theta, phi, omega) order, as within one run.
    """
    datasets = list(datasets)
    if not datasets:
        raise ValueError("merge_reductions needs at least one dataset")
    first = datasets[0]
    for ds in datasets[1:]:
        for name in ("theta", "phi", "omega", "epsilon_bound", "max_chsh_bin_lower"):
            if name in first.coords and not first[name].equals(ds[name]):
                raise ValueError(f"cannot merge reductions with different {name}")
        if ds.attrs.get("dtype") != first.attrs.get("dtype"):
            raise ValueError("cannot merge reductions computed in different dtypes")
    parts = [_dataset_to_acc(ds) for ds in datasets]
    acc = _combine_many(parts)
    names = tuple(first.attrs["reductions"].split(", "))
    settings = {
        k: first.attrs[k]
        for k in ("dtype", "chunk_size", "block_shape", "jax_version", "devices", "device_count")
        if k in first.attrs
    } | {"reductions": list(names), "process": f"merged from {len(datasets)} shares"}
    return reduction_dataset(
        first.theta.values,
        first.phi.values,
        first.omega.values,
        acc,
        epsilon_bounds=first.epsilon_bound.values if "epsilon_bound" in first.coords else None,
        edges=_edges_of(first),
        reductions=names,
        settings=settings,
        history=f"jaxbell.merge_reductions of {len(datasets)} shares",
    )


def _edges_of(ds: xr.Dataset):
    if "max_chsh_bin_lower" not in ds.coords:
        return None
    return np.append(ds.max_chsh_bin_lower.values, ds.max_chsh_bin_upper.values[-1])


def _dataset_to_acc(ds: xr.Dataset) -> dict[str, np.ndarray]:
    axes = [ds[n].values for n in ("theta", "phi", "omega")]
    n_eps = ds.sizes.get("epsilon_bound", 0)
    n_bins = ds.sizes.get("max_chsh_bin", 0)
    acc = _Accumulator(n_eps, n_bins).arrays()

    def index_of(prefix):
        coords = [ds[f"{n}_at_{prefix}"].values for n in ("theta", "phi", "omega")]
        idx = np.full((n_eps, 3), -1, np.int64)
        for e in range(n_eps):
            if np.isfinite(coords[0][e]):
                idx[e] = [int(np.searchsorted(a, c[e])) for a, c in zip(axes, coords, strict=True)]
        return idx

    if "largest_max_chsh" in ds:
        acc["hi_val"] = np.nan_to_num(ds.largest_max_chsh.values, nan=-np.inf)
        acc["lo_val"] = np.nan_to_num(ds.smallest_max_chsh.values, nan=np.inf)
        acc["hi_idx"], acc["lo_idx"] = index_of("largest"), index_of("smallest")
        acc["n_meet"] = ds.points_meeting.values.astype(np.int64)
    if "max_chsh_histogram" in ds:
        acc["hist"] = np.concatenate(
            [
                [int(ds.max_chsh_below_bins)],
                ds.max_chsh_histogram.values.astype(np.int64),
                [int(ds.max_chsh_above_bins)],
            ]
        )
    if "status_count" in ds:
        acc["counts"] = ds.status_count.values.astype(np.int64)
    return acc
