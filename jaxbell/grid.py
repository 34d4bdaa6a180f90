"""Dense (theta, phi, omega) grids: one block engine, three outputs, any number of devices.

The kernel exploits the structure of eq. (2)-(6): every transcendental function depends on one
or two of the three angles (cos(theta + phi), sin(omega - phi), the four correlators and their
entropies, ...). They are computed on their own 1-D and 2-D axes; the 3-D work is products,
sums and comparisons of broadcast tables, with sin(theta + phi + omega) obtained by the angle
addition formula. The cost per grid point is then a few dozen flops, so the grid runs close to
the speed of merely writing its output (see ``benchmarks/grid_throughput.py``).

The engine cuts the grid into blocks of at most ``chunk_size`` points (whole omega rows
first) and walks them with the (phi, omega) block column outermost and theta innermost, so the
transcendental tables of a column are computed once (per window of theta rows, which bounds
their memory) and serve all its blocks. One *step* computes one block per device: the step's
theta rows are split over a :class:`jax.sharding.Mesh` of the devices (``shard_map``, blocks
sharded with ``NamedSharding``); every device runs the same program on a block of the same
shape, so results are identical on one device and on N. Finished steps go to a consumer:

* arrays in memory -- :func:`evaluate_grid`, :func:`grid_fields`;
* a zarr store written block by block, resumable -- :func:`write_grid`;
* reductions with no field output -- :func:`jaxbell.reductions.reduce_grid`.

Consumers run while the next step computes (on copy threads, or for the in-memory output on
a CPU on the engine's own thread, beside serial XLA kernels), with at most ``MAX_IN_FLIGHT``
steps alive, so the memory beyond the output is bounded whatever the grid size.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr
from jax.sharding import NamedSharding, PartitionSpec
from jax.typing import ArrayLike, DTypeLike
from tqdm import tqdm

from jaxbell._precision import x64_scope
from jaxbell._text import counted
from jaxbell.dataset import grid_dataset
from jaxbell.entropy import h_of_sin
from jaxbell.family import boundary_tolerance
from jaxbell.sharding import BATCH_AXIS, describe_devices, device_mesh, select_devices, shard_map
from jaxbell.store import (
    GridStore,
    StoreRemovedError,
    StoreWriteError,
    check_removable,
    check_store_path,
    create_grid_store,
    describe_differences,
    make_record,
    open_dataset,
    read_record,
    remove_store,
)

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "FIELDS",
    "GridPlan",
    "default_chunk_size",
    "evaluate_grid",
    "grid_fields",
    "write_grid",
]

logger = logging.getLogger("jaxbell")

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

#: Default number of grid points per block on a CPU for in-memory output in float64 (twice as
#: many in float32): small enough that XLA's buffers stay in cache (see
#: :func:`default_chunk_size` for the other cases).
DEFAULT_CHUNK_SIZE = 1 << 16
#: Default points per block, by platform ("cpu" or any accelerator) and output (float64; on a
#: CPU in memory float32 takes twice as many points, see :func:`default_chunk_size`).
#: CPU: 2**16 in float64 keeps a step's fields (~6 MiB) in the last-level cache; float32 takes
#: 2**17 points for about the same bytes (128^3 on an AMD EPYC with AVX-512, 2 vCPUs: 8.0
#: against 10.2 ms at 2**16, while float64 is slower at 2**17: 17 against 15 ms;
#: benchmarks/grid_throughput.py). On an AMD EPYC with AVX2 only (2 vCPUs, shared) the same
#: defaults were within the noise (~5%) of the best of 2**14 .. 2**18 and 1 .. 3 copy threads,
#: so one table serves both kinds of CPU. With serial kernels and the copy on the engine's
#: thread (2026-12-02, AVX-512 EPYC, interleaved, fresh memory) 2**16 stayed the best in
#: float64 (23 ms against 25 at 2**15 and 26 at 2**17) and tied 2**17 in float32 (11.3 / 11.6
#: ms). zarr stores
#: use 2**18-point chunks (2 MiB per float64 field): each chunk write costs ~1 ms of overhead.
#: GPU/TPU: 2**24 points per block (~1.7 GiB of float64 fields; measured on an H200 at
#: 512^3: 18.4 Gpt/s for fields left on the device against 8.3 at 2**22 and 2.6 at 2**20,
#: reductions 3.5 against 1.8 and 0.6 Gpt/s) so that kernel launches are amortised; 2**20 for
#: zarr (8 MiB chunks per field) to keep host memory well under 2 GB.
CHUNK_SIZES = {
    "cpu": {"memory": DEFAULT_CHUNK_SIZE, "zarr": 1 << 18, "reduce": 1 << 16},
    "accelerator": {"memory": 1 << 24, "zarr": 1 << 20, "reduce": 1 << 24},
}
#: Entries per theta table computed at once (a window of theta rows): bounds table memory to
#: 7 tables x 2**20 entries (56 MiB in float64) whatever the grid size.
TABLE_BUDGET = 1 << 20
#: Steps computed or being consumed at any one time (bounds memory beyond the output).
MAX_IN_FLIGHT = 2
#: Threads consuming finished blocks (writing them to a zarr store; copying them into the
#: output from an accelerator, or on a CPU with more than ``SERIAL_MAX_CPUS`` CPUs).
COPY_THREADS = 2


def field_nbytes(dtype: DTypeLike) -> dict[str, int]:
    """Bytes per grid point of each field, for a grid computed in ``dtype``."""
    return {
        name: math.prod(trail) * dt.itemsize for name, (trail, dt) in field_dtypes(dtype).items()
    }


def bytes_per_point(dtype: DTypeLike) -> int:
    """Bytes per grid point of all fields: 12 floats (8 scalars, 4 correlators), a bool, an
    int8 (98 in float64, 50 in float32)."""
    return sum(field_nbytes(dtype).values())


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
    # (x, y) trailing, written as a select on the flat index 2x + y: XLA's CPU code for the
    # equivalent jnp.stack is 2-3.5x slower (an element-wise concatenate that does not vectorise)
    xy = jax.lax.broadcasted_iota(jnp.int8, shape + (4,), 3)
    correlators = jnp.where(
        xy == 0,
        e00[..., None],
        jnp.where(xy == 1, e01[..., None], jnp.where(xy == 2, e10[..., None], e11[..., None])),
    ).reshape(shape + (2, 2))
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
    """All tables for a (phi, omega) block and a window of (padded) theta rows."""
    return _pw_tables(p, w) | _t_tables(t, p, w)


_THETA_TABLES = ("st", "ctp", "stp", "h10", "ctw", "stw", "h11")


#: XLA options of the block kernels on a CPU with AVX-512 (flag ``avx512f``). LLVM's default
#: 256-bit vectors leave AVX-512 half used; 512 makes the block expansion ~23% faster there
#: (AMD EPYC with AVX-512, 2 vCPUs: 4.6 -> 3.5 ms for 128^3 in float64) and changes no bit of
#: the results. On a CPU without AVX-512 the option only makes LLVM split every vector in two:
#: on an AMD EPYC with AVX2 only (2 vCPUs, shared) 512 was no faster than XLA's default and up
#: to 17% slower in float64 (widths compiled in one process, timed interleaved; bit-identical
#: results), so such CPUs keep XLA's defaults.
AVX512_COMPILER_OPTIONS = {"xla_cpu_prefer_vector_width": 512}


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """Feature flags of this machine's CPU (``flags`` of x86 or ``Features`` of arm in Linux's
    /proc/cpuinfo, lower case); empty where that file cannot be read (not Linux)."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                if key.strip().lower() in ("flags", "features"):
                    return frozenset(value.lower().split())
    except OSError:
        pass
    return frozenset()


#: Vector instruction sets, widest first, with the /proc/cpuinfo flag that reveals each.
VECTOR_ISAS = (
    ("AVX-512", "avx512f"),
    ("AVX2", "avx2"),
    ("AVX", "avx"),
    ("SSE4.2", "sse4_2"),
    ("SVE", "sve"),
    ("NEON", "asimd"),
)


#: Values of XLA's ``--xla_cpu_max_isa`` (in the XLA_FLAGS environment variable) and the x86
#: vector instruction set each caps XLA's CPU code at.
XLA_MAX_ISAS = {"SSE4_2": "SSE4.2", "AVX": "AVX", "AVX2": "AVX2"}


def xla_max_isa() -> str | None:
    """The vector instruction set that ``--xla_cpu_max_isa`` in ``XLA_FLAGS`` caps XLA's CPU
    code at (``"AVX2"``, ``"AVX"``, ``"SSE4.2"``), or None where it sets no cap below AVX-512.

    With ``XLA_FLAGS=--xla_cpu_max_isa=AVX2`` an AVX-512 CPU runs the code an AVX2-only CPU
    runs (``benchmarks/grid_throughput.py --isa AVX2`` measures that way)."""
    value = None
    for token in os.environ.get("XLA_FLAGS", "").split():
        key, _, val = token.lstrip("-").partition("=")
        if key == "xla_cpu_max_isa":
            value = val.strip().strip("'\"").upper()  # XLA accepts a quoted value too
    return XLA_MAX_ISAS.get(value) if value else None


def cpu_vector_isa(flags: frozenset[str] | None = None) -> str:
    """The widest vector instruction set among ``flags`` (default: this CPU's, :func:`cpu_flags`,
    capped at :func:`xla_max_isa`): ``"AVX-512"``, ``"AVX2"``, ``"AVX"``, ``"SSE4.2"``,
    ``"SVE"``, ``"NEON"``, or ``"unknown"``."""
    cap = xla_max_isa() if flags is None else None
    flags = cpu_flags() if flags is None else frozenset(f.lower() for f in flags)
    isas = VECTOR_ISAS
    if cap is not None:  # the ISAs from the cap down (x86 only: the cap is an x86 one)
        isas = isas[[isa for isa, _ in isas].index(cap) :]
    return next((isa for isa, flag in isas if flag in flags), "unknown")


def cpu_compiler_options(flags: frozenset[str] | None = None) -> dict:
    """XLA options for the block kernels by vector width on a CPU with ``flags`` (default: this
    CPU's): :data:`AVX512_COMPILER_OPTIONS` with AVX-512, otherwise none (XLA's defaults). The
    field kernels add :data:`SERIAL_KERNEL_OPTIONS` where :func:`serial_cpu_engine` holds."""
    return dict(AVX512_COMPILER_OPTIONS) if cpu_vector_isa(flags) == "AVX-512" else {}


#: XLA option of the field kernels on a CPU: no intra-op partitioning of their loops (XLA's
#: ``cpu-parallel-task-assigner`` pass splits each loop over the CPU's threads). A step's loops
#: are small (~10-30 us each on 2**16 points); split in two they were no faster (2-vCPU AMD
#: EPYC with AVX-512: 12.9 ms for a 128^3 float64 grid's kernels against 11.8 ms on one
#: core) and took twice the CPU time, which the engine needs to copy finished steps while the
#: next one computes. With the copy on the engine's thread (ArrayConsumer) an in-memory 128^3
#: grid then takes ~20% less time and 25-35% less CPU there (medians of interleaved runs) and
#: no bit changes.
SERIAL_KERNEL_OPTIONS = {"xla_disable_hlo_passes": "cpu-parallel-task-assigner"}
#: Most CPUs (usable by this process) on which the field kernels run serially and the engine's
#: thread copies the in-memory output (:func:`serial_cpu_engine`). Measured on 2 vCPUs only;
#: with more cores XLA's split loops could use cores that one copying thread leaves idle, so
#: above this the earlier arrangement (split loops, ``COPY_THREADS`` copy threads) is kept.
SERIAL_MAX_CPUS = 4


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def serial_cpu_engine() -> bool:
    """Whether, on a CPU, the field kernels run serially and the engine's own thread copies the
    in-memory output: with at most :data:`SERIAL_MAX_CPUS` usable CPUs."""
    return usable_cpus() <= SERIAL_MAX_CPUS


def _accepted(options: dict) -> bool:
    """Whether this XLA compiles with ``options`` (an XLA that no longer knows one refuses)."""
    try:
        probe = jax.jit(lambda x: x + 1, compiler_options=options)
        probe.lower(jax.ShapeDtypeStruct((), np.float32)).compile()
    except Exception as err:  # noqa: BLE001 - any failure means: compile without the options
        logger.debug("XLA CPU options %s not used: %s", options, err)
        return False
    return True


@functools.lru_cache(maxsize=8)
def _compiler_options(platform: str, serial: bool = False) -> dict | None:
    """:func:`cpu_compiler_options`, plus :data:`SERIAL_KERNEL_OPTIONS` if ``serial`` (the
    field kernels) and :func:`serial_cpu_engine`, on a CPU whose XLA accepts them (checked
    once; what it refuses is dropped), else None."""
    if platform != "cpu":
        return None
    options = cpu_compiler_options()
    if options and not _accepted(options):
        options = {}
    if serial and serial_cpu_engine() and _accepted(SERIAL_KERNEL_OPTIONS):
        options = options | SERIAL_KERNEL_OPTIONS
    return options or None


def _expand_rows(tab, start, size):
    """Fields for theta rows ``start : start + size`` of the tables."""
    rows = {k: jax.lax.dynamic_slice_in_dim(tab[k], start, size) for k in _THETA_TABLES}
    return _block_expand(tab | rows)


def _expand_into(tab, start, size, spare):
    """:func:`_expand_rows`; ``spare`` (donated) is the result of an earlier step with the
    same shapes, so XLA writes into its buffers, or None (new buffers)."""
    return _expand_rows(tab, start, size)


@functools.lru_cache(maxsize=8)
def _row_kernel(platform: str) -> Callable:
    """:func:`_expand_into` jitted for a platform (``start`` traced, ``size`` static: one
    compilation serves every block, plus one for ``spare=None``)."""
    return jax.jit(
        _expand_into,
        static_argnames="size",
        donate_argnames="spare",
        keep_unused=True,
        compiler_options=_compiler_options(platform, serial=True),
    )


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
    return _pad_to(axis, -(-axis.size // block) * block)


def _pad_to(axis: np.ndarray, size: int) -> np.ndarray:
    extra = size - axis.size
    return np.concatenate([axis, np.full(extra, axis[-1])]) if extra > 0 else axis


def field_dtypes(dtype: DTypeLike) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """Trailing shape and dtype of every field, for a grid computed in ``dtype``."""
    dt = np.dtype(dtype)
    special = {"self_testing": np.dtype(bool), "status": np.dtype(np.int8)}
    return {
        name: ((2, 2) if name == "correlators" else (), special.get(name, dt)) for name in FIELDS
    }


def _check_chunk_size(chunk_size, name: str = "chunk_size") -> int:
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, (int, np.integer)):
        raise TypeError(f"{name} must be a positive integer, got {chunk_size!r}")
    if chunk_size < 1:
        raise ValueError(f"{name} must be a positive integer, got {chunk_size}")
    return int(chunk_size)


def default_chunk_size(
    platform: str | None = None, output: str = "memory", dtype: DTypeLike = np.float64
) -> int:
    """Default grid points per block for a device platform, an output and a precision.

    Parameters
    ----------
    platform : str or None
        ``"cpu"``, ``"gpu"``, ``"tpu"`` (a device's ``.platform``); None: JAX's default backend.
    output : {"memory", "zarr", "reduce"}
        What the blocks feed: arrays in memory, a zarr store, or reductions.
    dtype : {float64, float32}
        Precision of the grid (matters only on a CPU in memory).

    Returns
    -------
    int
        2**16 (CPU, memory in float64, and reductions), 2**17 (CPU, memory in float32),
        2**18 (CPU, zarr), 2**24 (accelerators; 2**20 for zarr).
    """
    if output not in CHUNK_SIZES["cpu"]:
        raise ValueError(f"output must be one of {sorted(CHUNK_SIZES['cpu'])}, got {output!r}")
    itemsize = _float_dtype(dtype).itemsize
    platform = jax.default_backend() if platform is None else platform
    if platform == "cpu" and output == "memory":  # the same bytes per step in either precision
        return CHUNK_SIZES["cpu"]["memory"] * 8 // itemsize
    return CHUNK_SIZES["cpu" if platform == "cpu" else "accelerator"][output]


def _check_axes(theta, phi, omega) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return tuple(_check_axis(v, n) for v, n in ((theta, "theta"), (phi, "phi"), (omega, "omega")))


def _check_process(process) -> tuple[int, int]:
    """(index, count) of this process among those sharing a grid; default from jax.distributed."""
    if process is None:
        return jax.process_index(), jax.process_count()
    try:
        index, count = (int(v) for v in process)
    except (TypeError, ValueError):
        raise TypeError(f"process must be a pair (index, count), got {process!r}") from None
    if not (count >= 1 and 0 <= index < count):
        raise ValueError(f"process=({index}, {count}): need count >= 1 and 0 <= index < count")
    return index, count


class GridPlan:
    """How a grid is cut into blocks, steps (one block per device) and table windows.

    Holds no array of the grid's size. Blocks are numbered ``block_id = (bi * nbp + bj) * nbo
    + bk`` over the block grid ``(nbt, nbp, nbo)``; step ``(bj, bk, st)`` computes blocks
    ``bi = st * ndev + d`` on device ``d``.
    """

    def __init__(self, axes, dtype: np.dtype, chunk_size: int, devices: Sequence[jax.Device]):
        self.axes = tuple(axes)
        self.shape = tuple(int(a.size) for a in self.axes)
        self.dtype = np.dtype(dtype)
        self.chunk_size = int(chunk_size)
        self.block = block_shape(self.shape, self.chunk_size)
        self.devices = tuple(devices)
        self.ndev = len(self.devices)
        self.nblocks = tuple(-(-n // b) for n, b in zip(self.shape, self.block, strict=True))
        bt, bp, bo = self.block
        self.step_rows = bt * self.ndev
        self.theta_steps = -(-self.nblocks[0] // self.ndev)
        self.window_steps = min(self.theta_steps, max(1, TABLE_BUDGET // (self.step_rows * bp)))
        self.window_rows = self.window_steps * self.step_rows
        self.nwindows = -(-self.theta_steps // self.window_steps)
        self.padded = (
            _pad_to(self.axes[0], self.nwindows * self.window_rows).astype(self.dtype),
            _pad(self.axes[1], bp).astype(self.dtype),
            _pad(self.axes[2], bo).astype(self.dtype),
        )
        self.mesh = device_mesh(self.devices)

    @property
    def npoints(self) -> int:
        return math.prod(self.shape)

    @property
    def nblocks_total(self) -> int:
        return math.prod(self.nblocks)

    @property
    def nsteps(self) -> int:
        return self.nblocks[1] * self.nblocks[2] * self.theta_steps

    def block_id(self, bi: int, bj: int, bk: int) -> int:
        return (bi * self.nblocks[1] + bj) * self.nblocks[2] + bk

    def block_region(self, bi: int, bj: int, bk: int) -> tuple[slice, slice, slice]:
        """The block's slices of the (unpadded) grid."""
        return tuple(
            slice(b * i, min(b * (i + 1), n))
            for b, i, n in zip(self.block, (bi, bj, bk), self.shape, strict=True)
        )

    def block_points(self, bi: int, bj: int, bk: int) -> int:
        return math.prod(s.stop - s.start for s in self.block_region(bi, bj, bk))

    def step_blocks(self, bj: int, bk: int, st: int) -> list[tuple[int, int, int] | None]:
        """The block of each device in a step (None where the device computes padding)."""
        return [
            (bi, bj, bk) if (bi := st * self.ndev + d) < self.nblocks[0] else None
            for d in range(self.ndev)
        ]

    def steps(self, process: tuple[int, int] = (0, 1)) -> Iterator[tuple[int, int, int, int]]:
        """``(bj, bk, window, st)`` of this process's steps, in order (a contiguous share)."""
        index, count = process
        g = 0
        for bj in range(self.nblocks[1]):
            for bk in range(self.nblocks[2]):
                for st in range(self.theta_steps):
                    if g * count // self.nsteps == index:
                        yield bj, bk, st // self.window_steps, st
                    g += 1

    def put(self, x) -> jax.Array:
        """Place a small array on every device of the plan (replicated)."""
        if self.ndev == 1:
            return jax.device_put(x, self.devices[0])
        return jax.device_put(x, NamedSharding(self.mesh, PartitionSpec()))

    def tables(self, bj: int, bk: int, window: int) -> dict[str, jax.Array]:
        """Transcendental tables of block column (bj, bk) for one window of theta rows."""
        bt, bp, bo = self.block
        rows = slice(window * self.window_rows, (window + 1) * self.window_rows)
        return _tables(
            self.put(self.padded[0][rows]),
            self.put(self.padded[1][bj * bp : (bj + 1) * bp]),
            self.put(self.padded[2][bk * bo : (bk + 1) * bo]),
        )

    def settings(self) -> dict:
        """Run settings for a dataset's attributes."""
        return {
            "dtype": self.dtype.name,
            "chunk_size": self.chunk_size,
            "block_shape": list(self.block),
            "jax_version": jax.__version__,
            "devices": [str(d) for d in self.devices],
            "device_count": self.ndev,
        }


@functools.lru_cache(maxsize=32)
def _sharded_expand(mesh, size: int) -> Callable:
    """Fields for a step: device ``d`` computes theta rows ``start + d * size`` of the tables
    (the third argument as ``spare`` of :func:`_expand_into`, sharded like the result)."""

    def per_device(tab, start, spare):
        return _expand_rows(tab, start + jax.lax.axis_index(BATCH_AXIS) * size, size)

    spec, batch = PartitionSpec(), PartitionSpec(BATCH_AXIS)
    return jax.jit(
        shard_map(per_device, mesh=mesh, in_specs=(spec, spec, batch), out_specs=batch),
        donate_argnums=2,
        keep_unused=True,
        compiler_options=_compiler_options(mesh.devices.flat[0].platform, serial=True),
    )


def _step_fields(plan: GridPlan, tab, start: int, spare=None) -> dict[str, jax.Array]:
    """All fields of one step, shape ``(step_rows, bp, bo, ...)``, split over the devices.

    ``spare``: the result of an earlier step of the same plan, no longer used; its buffers are
    donated to this step (None: new buffers).
    """
    if plan.ndev == 1:
        return _row_kernel(plan.devices[0].platform)(tab, start, plan.block[0], spare)
    return _sharded_expand(plan.mesh, plan.block[0])(tab, start, spare)


def per_device(plan: GridPlan, result: dict[str, jax.Array]) -> list[dict[str, jax.Array]]:
    """Split a step's sharded result into one dict of single-device arrays per device."""
    if plan.ndev == 1:
        return [result]
    out: list[dict[str, jax.Array]] = [{} for _ in range(plan.ndev)]
    rows = plan.block[0]
    for name, arr in result.items():
        for shard in arr.addressable_shards:
            out[(shard.index[0].start or 0) // rows][name] = shard.data
    return out


class _Deferred:
    """A consumer task that the engine's own thread runs when it drains the task's step
    (``result``), with the part of :class:`concurrent.futures.Future` that the engine uses."""

    def __init__(self, fn: Callable[[], int]):
        self._fn = fn

    def result(self) -> int:
        return self._fn()

    def exception(self) -> None:
        """A run being abandoned does not run its deferred tasks (only in-memory outputs, which
        the run discards, defer theirs)."""
        return None


class Consumer:
    """Where finished steps go. Subclasses set what a step computes and what a block does."""

    #: Consume blocks on the engine's thread, between dispatching one step and the next, on a
    #: CPU where :func:`serial_cpu_engine` holds (True), rather than on copy threads. Where
    #: XLA's kernels and the copies share the same few cores, fewer threads contend for them;
    #: on an accelerator copy threads are used.
    inline = False

    def __init__(self, plan: GridPlan):
        self.plan = plan
        self._spare: list = []  # results of finished steps, whose buffers later steps reuse
        self._inline = self.inline and plan.devices[0].platform == "cpu" and serial_cpu_engine()

    def wanted(self, block: tuple[int, int, int]) -> bool:
        """Whether a block still needs computing (a resumed store skips finished blocks)."""
        return True

    def done_points(self) -> int:
        """Points already finished before the run (shown by the progress bar)."""
        return 0

    def compute(self, tab, start: int, step: tuple[int, int, int]):
        """Dispatch the step's computation (asynchronously); return its device result."""
        return _step_fields(self.plan, tab, start, self._spare.pop() if self._spare else None)

    def release(self, result) -> None:
        """Called by the engine once every block of a step's ``result`` has been consumed.

        Its buffers are donated to a later step, so a run allocates ``MAX_IN_FLIGHT`` steps
        of buffers once instead of fresh ones per step: on a CPU that saves the allocator's
        page faults and returning memory to the kernel, 10-20% of a grid's time. If something
        still references a buffer (a NumPy view), XLA writes the step into a new one instead.
        Consumers whose :meth:`compute` takes no spare override this to do nothing.
        """
        if len(self._spare) < MAX_IN_FLIGHT:
            self._spare.append(result)

    def forget_spares(self) -> None:
        """Drop the buffers kept for reuse (the engine calls this when a run ends)."""
        self._spare.clear()

    def submit(self, pool: ThreadPoolExecutor, blocks, result) -> list[Future | _Deferred]:
        """Hand the step's result to the copy threads, or defer it to the engine's thread
        (:meth:`runs_inline`); each task's ``result()`` returns the points done."""
        if self.plan.devices[0].platform != "cpu":
            for leaf in jax.tree.leaves(result):
                leaf.copy_to_host_async()  # overlap the transfer with the next step
        inline = self.runs_inline()
        futures = []
        for block, arrays in zip(blocks, per_device(self.plan, result), strict=True):
            if block is not None and self.wanted(block):
                parts = [arrays] if inline else self.parts(arrays)
                for i, part in enumerate(parts):
                    task = functools.partial(self._consume_block, block, part, i == len(parts) - 1)
                    futures.append(_Deferred(task) if inline else pool.submit(task))
        return futures

    def runs_inline(self) -> bool:
        """Whether this run consumes its blocks on the engine's thread (:attr:`inline`; decided
        once, when the consumer is made)."""
        return self._inline

    def parts(self, arrays: dict[str, jax.Array]) -> list[dict[str, jax.Array]]:
        """The fields of a block, in groups consumed as separate tasks on the copy threads
        (here: one group)."""
        return [arrays]

    def _consume_block(self, block, arrays, count: bool = True) -> int:
        region = self.plan.block_region(*block)
        sizes = tuple(s.stop - s.start for s in region)
        host = {
            name: np.asarray(arr)[: sizes[0], : sizes[1], : sizes[2]]
            for name, arr in arrays.items()
        }
        self.consume_block(block, region, host)
        return math.prod(sizes) if count else 0  # a block's points count with its last part

    def consume_block(self, block, region, arrays: dict[str, np.ndarray]) -> None:
        raise NotImplementedError


#: Alignment of the in-memory outputs: a huge page of x86-64 / arm64 Linux.
HUGE_PAGE = 2 << 20


def aligned_empty(shape: tuple[int, ...], dtype: DTypeLike) -> np.ndarray:
    """``np.empty(shape, dtype)``, starting on a ``HUGE_PAGE`` boundary if 2 MiB or larger.

    NumPy asks Linux for transparent huge pages on large arrays, but the kernel can back only
    the 2 MiB-aligned part of an allocation with them; the unaligned head and tail are faulted
    in 4 KiB pages. Aligned, a 128^3 float64 grid's outputs take ~500 page faults instead of
    ~4000, and 25-30% less kernel time. The extra 2 MiB of address space per array is never
    touched, so it costs no memory. The result is a view (its ``base`` holds the allocation,
    so ``ndarray.resize`` does not apply).
    """
    dt = np.dtype(dtype)
    nbytes = math.prod(shape) * dt.itemsize
    if nbytes < HUGE_PAGE:
        return np.empty(shape, dt)
    raw = np.empty(nbytes + HUGE_PAGE, np.uint8)
    offset = -raw.ctypes.data % HUGE_PAGE
    return raw[offset : offset + nbytes].view(dt).reshape(shape)


def balanced_groups(sizes: dict[str, int], n: int) -> list[list[str]]:
    """Split names into at most ``n`` non-empty groups of about equal total size (greedy,
    largest first)."""
    groups: list[list[str]] = [[] for _ in range(max(1, min(n, len(sizes))))]
    totals = [0] * len(groups)
    for name in sorted(sizes, key=lambda k: -sizes[k]):
        i = totals.index(min(totals))
        groups[i].append(name)
        totals[i] += sizes[name]
    return groups


class ArrayConsumer(Consumer):
    """Copies every block into NumPy arrays of the whole grid (the in-memory output).

    On a CPU with few cores (:func:`serial_cpu_engine`) the engine's thread copies each step
    while XLA computes the next one on its own thread (:attr:`Consumer.inline`, with serial
    kernels: :data:`SERIAL_KERNEL_OPTIONS`): on a 2-vCPU AMD EPYC with AVX-512, 128^3, this
    took ~20% less time and 25-35% less CPU than two copy threads beside kernels split over
    both cores (medians of interleaved runs). From an
    accelerator a block's fields are copied as ``COPY_THREADS`` tasks of about equal bytes,
    so that every copy thread works on every step.
    """

    inline = True

    def __init__(self, plan: GridPlan):
        super().__init__(plan)
        self.out = {
            name: aligned_empty(plan.shape + trail, dt)
            for name, (trail, dt) in field_dtypes(plan.dtype).items()
        }
        self.groups = balanced_groups(field_nbytes(plan.dtype), COPY_THREADS)

    def parts(self, arrays):
        return [{name: arrays[name] for name in group} for group in self.groups]

    def consume_block(self, block, region, arrays) -> None:
        for name, arr in arrays.items():
            self.out[name][region] = arr


def run_engine(
    plan: GridPlan,
    consumer: Consumer,
    *,
    progress: bool | None = None,
    desc: str = "grid",
    process: tuple[int, int] = (0, 1),
) -> None:
    """Compute this process's steps of ``plan`` and feed them to ``consumer``.

    At most ``MAX_IN_FLIGHT`` steps are computed or being consumed at once. On an error or a
    KeyboardInterrupt no further step is dispatched, the copy threads' tasks in flight are
    allowed to finish (a zarr store's blocks are then either completely written and recorded or
    not at all), deferred ones (:meth:`Consumer.runs_inline`: an in-memory output, which is
    discarded with the exception) are dropped, and the exception is re-raised.
    """
    if process[1] == 1:
        total, initial = plan.npoints, consumer.done_points()
    else:  # this process's share only
        own = [b for bj, bk, _, st in plan.steps(process) for b in plan.step_blocks(bj, bk, st)]
        own = [b for b in own if b is not None]
        total = sum(plan.block_points(*b) for b in own)
        initial = total - sum(plan.block_points(*b) for b in own if consumer.wanted(b))
    if progress is None:  # tqdm's None: shown only on a terminal; one step has nothing to show
        disable = True if plan.nsteps <= 1 else None
    else:
        disable = not progress
    bar = tqdm(
        total=total,
        initial=initial,
        unit="pt",
        unit_scale=True,
        disable=disable,
        desc=f"{desc} [{plan.ndev} {plan.devices[0].platform}]",
        file=sys.stderr,
        smoothing=0.1,
    )
    inflight: deque[tuple[list[Future], object]] = deque()

    def drain(keep: int) -> None:
        while len(inflight) > keep:
            futures, result = inflight.popleft()
            for fut in futures:
                bar.update(fut.result())  # re-raises any consumer error
            consumer.release(result)

    with x64_scope(plan.dtype), bar, ThreadPoolExecutor(COPY_THREADS) as pool:
        try:
            current = None
            tab = None
            for bj, bk, window, st in plan.steps(process):
                blocks = plan.step_blocks(bj, bk, st)
                if not any(b is not None and consumer.wanted(b) for b in blocks):
                    continue
                if current != (bj, bk, window):  # tables once per column and window
                    current = (bj, bk, window)
                    tab = plan.tables(bj, bk, window)
                start = (st - window * plan.window_steps) * plan.step_rows
                result = consumer.compute(tab, start, (bj, bk, st))
                inflight.append((consumer.submit(pool, blocks, result), result))
                del result  # the engine's reference only: the buffers go back through release
                drain(MAX_IN_FLIGHT - 1)
            drain(0)
        except BaseException:
            for futures, _ in inflight:  # let the blocks in flight finish (or fail) cleanly
                for fut in futures:
                    fut.exception()
            raise
        finally:
            inflight.clear()
            consumer.forget_spares()  # no device memory outlives the run (or its traceback)


def _prepare(theta, phi, omega, dtype, chunk_size, devices, output: str):
    axes = _check_axes(theta, phi, omega)
    dt = _float_dtype(dtype)
    devs = select_devices(devices)
    if chunk_size is None:
        chunk_size = default_chunk_size(devs[0].platform, output, dt)
    chunk_size = _check_chunk_size(chunk_size)
    return axes, dt, chunk_size, devs


def _log_start(what: str, plan: GridPlan, extra: str = "") -> None:
    nt, np_, no = plan.shape
    logger.info(
        "%s: %dx%dx%d grid (%s, %s) in %s of %s on %s%s",
        what,
        nt,
        np_,
        no,
        counted(plan.npoints, "point"),
        plan.dtype.name,
        counted(plan.nblocks_total, "block"),
        "x".join(map(str, plan.block)),
        describe_devices(plan.devices),
        extra,
    )


def grid_fields(
    theta: ArrayLike,
    phi: ArrayLike,
    omega: ArrayLike,
    *,
    dtype: DTypeLike = np.float64,
    chunk_size: int | None = None,
    progress: bool | None = None,
    devices: int | Sequence[jax.Device] | None = None,
) -> dict[str, np.ndarray]:
    """The grid's fields as NumPy arrays (no labelling); arguments as in :func:`evaluate_grid`."""
    axes, dt, chunk_size, devs = _prepare(theta, phi, omega, dtype, chunk_size, devices, "memory")
    plan = GridPlan(axes, dt, chunk_size, devs)
    consumer = ArrayConsumer(plan)
    run_engine(plan, consumer, progress=progress)
    return consumer.out


def evaluate_grid(
    theta: ArrayLike,
    phi: ArrayLike,
    omega: ArrayLike,
    *,
    dtype: DTypeLike = np.float64,
    chunk_size: int | None = None,
    progress: bool | None = None,
    devices: int | Sequence[jax.Device] | None = None,
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
    chunk_size : int or None
        Grid points per block (per device). None: :func:`default_chunk_size` (on a CPU 65536
        in float64 and 131072 in float32; 2**24 on a GPU). Memory beyond the output arrays is
        bounded by about ``2 * devices * chunk_size * (12 * itemsize + 2)`` bytes (two steps
        in flight) plus the window of theta tables,
        ``7 * max(TABLE_BUDGET, entries of one step) * itemsize`` (``TABLE_BUDGET`` = 2**20:
        56 MiB in float64), e.g. about 70 MiB for the CPU default in float64 (~75 MiB
        measured), whatever the grid size. One compilation serves every
        block (the last blocks are padded).
    progress : bool or None
        Show a tqdm progress bar with an ETA (on stderr). None: show when stderr is a terminal
        and the grid has more than one step.
    devices : None, int or sequence of jax.Device
        Devices to split the blocks over (see :func:`jaxbell.sharding.select_devices`);
        default: every device of this process. Results are identical on any number.

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

    See Also
    --------
    write_grid : the same grid written to a zarr store block by block (out of core, resumable).
    jaxbell.reductions.reduce_grid : maxima, histograms and fractions without the fields.

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
    axes, dt, chunk_size, devs = _prepare(theta, phi, omega, dtype, chunk_size, devices, "memory")
    plan = GridPlan(axes, dt, chunk_size, devs)
    if jax.process_count() > 1:
        logger.warning(
            "evaluate_grid computes the whole grid in each of the %d processes; use write_grid "
            "or reduce_grid to split a grid between hosts",
            jax.process_count(),
        )
    _log_start("evaluate_grid", plan)
    t0 = time.perf_counter()
    consumer = ArrayConsumer(plan)
    run_engine(plan, consumer, progress=progress)
    elapsed = time.perf_counter() - t0
    shape = plan.shape
    return grid_dataset(
        *axes,
        consumer.out,
        settings=plan.settings() | {"elapsed_seconds": round(elapsed, 3)},
        history=f"jaxbell.evaluate_grid on a {shape[0]}x{shape[1]}x{shape[2]} grid ({dt.name})",
    )


# --- out of core: a zarr store written block by block, resumable --------------------------------

#: Compressors of the zarr fields: "zstd" (zarr's default codec, level 0) or "none".
COMPRESSORS = ("zstd", "none")


class ZarrConsumer(Consumer):
    """Writes every block into its region of a zarr store, then records it as finished."""

    def __init__(self, plan: GridPlan, store, done: set[int]):
        super().__init__(plan)
        self.store = store
        self.done = frozenset(done)
        self.written = 0
        self.lock = threading.Lock()

    def wanted(self, block) -> bool:
        return self.plan.block_id(*block) not in self.done

    def done_points(self) -> int:
        nbp, nbo = self.plan.nblocks[1:]
        return sum(
            self.plan.block_points(b // (nbp * nbo), (b // nbo) % nbp, b % nbo) for b in self.done
        )

    def consume_block(self, block, region, arrays) -> None:
        self.store.write_block(
            self.plan.block_id(*block), region, arrays, {"devices": self.plan.ndev}
        )
        with self.lock:
            self.written += 1


def _wait_for_store(path, timeout: float = 600.0) -> dict:
    """Wait for process 0 to create the store (other processes of a multi-process run)."""
    t0 = time.monotonic()
    while (record := read_record(path)) is None:
        if time.monotonic() - t0 > timeout:
            raise TimeoutError(
                f"waited {timeout:.0f} s for process 0 to create {str(path)!r}; is it running, "
                "and is the folder on a file system shared by all processes?"
            )
        time.sleep(0.5)
    return record


def write_grid(
    theta: ArrayLike,
    phi: ArrayLike,
    omega: ArrayLike,
    path,
    *,
    dtype: DTypeLike | None = None,
    chunk_size: int | None = None,
    overwrite: bool = False,
    progress: bool | None = None,
    devices: int | Sequence[jax.Device] | None = None,
    process: tuple[int, int] | None = None,
    compressor: str | None = None,
) -> xr.Dataset:
    """Evaluate the grid of :func:`evaluate_grid` out of core, into a zarr store, resumably.

    Each block is written to its own chunks of ``path`` as soon as it is computed, and recorded
    as finished only after all its data are on disk, so host memory stays bounded (about
    ``MAX_IN_FLIGHT * devices`` blocks plus the tables: under 2 GB measured at 512^3, whatever
    the grid size) and an interrupted run (Ctrl-C, kill, a full disk) loses nothing finished:
    run the same call again and it computes only the unfinished blocks. The result is
    identical to an uninterrupted run and to :func:`evaluate_grid`'s dataset.

    Parameters
    ----------
    theta, phi, omega : array_like
        Grid axes, radians, as in :func:`evaluate_grid`.
    path : str or path-like
        The store, a folder ending in ``.zarr``. If it exists and holds a jaxbell grid with the
        same settings, the run resumes it; with other settings a ``ValueError`` names them.
    dtype : {float64, float32} or None
        None: float64 for a new store, the store's dtype when resuming.
    chunk_size : int or None
        Points per block and per zarr chunk. None: the store's when resuming, otherwise
        :func:`default_chunk_size` for zarr (2**18 on a CPU, 2**20 on a GPU).
    overwrite : bool
        Remove an existing store at ``path`` first (only a zarr store or an empty folder).
    progress : bool or None
        tqdm progress bar with ETA on stderr (None: when stderr is a terminal).
    devices : None, int or sequence of jax.Device
        Devices to split each step's blocks over (default: all of this process's).
    process : (index, count) or None
        This process's share of the blocks when several processes write one store on a shared
        file system (contiguous shares; process 0 creates the store, the others wait for it).
        None: ``(jax.process_index(), jax.process_count())``, which is (0, 1) unless
        ``jax.distributed`` is initialised.
    compressor : {"zstd", "none"} or None
        Codec of the field chunks. None: the store's when resuming, otherwise "zstd".

    Returns
    -------
    xarray.Dataset
        The store opened lazily with dask (:func:`jaxbell.open_dataset`). In a multi-process
        run a process may return before the others finish; its dataset then reads unfinished
        blocks as NaN / False / status -1.

    Raises
    ------
    ValueError
        Bad axes or settings, or an existing store written with other settings (without
        ``overwrite``), or a folder that is not a jaxbell grid store.
    StoreWriteError
        A write failed (disk full, store removed); finished blocks are kept and recorded.
    KeyboardInterrupt
        After the blocks in flight have been written and recorded.

    References
    ----------
    Eqs. (2)-(6) of Wooltorton, Brown & Colbeck, PRL 132, 210802 (2024).
    """
    axes = _check_axes(theta, phi, omega)
    devs = select_devices(devices)
    proc = _check_process(process)
    path = check_store_path(path)
    if not isinstance(overwrite, bool):
        raise TypeError(f"overwrite must be True or False, got {overwrite!r}")
    if compressor is not None and compressor not in COMPRESSORS:
        raise ValueError(f"compressor must be one of {COMPRESSORS}, got {compressor!r}")
    if overwrite and proc[1] > 1:
        raise ValueError(
            "overwrite=True in a multi-process run would let processes remove each other's "
            "work; remove the store before launching, then run without overwrite"
        )
    existing = None
    joined = proc[0] != 0  # other processes join the store that process 0 creates or resumes
    if path.exists() and overwrite:
        remove_store(path)
    elif joined:
        existing = _wait_for_store(path)  # also while process 0 is still creating it
    elif path.exists():
        existing = read_record(path)
        if existing is None and any(path.iterdir()):
            try:
                check_removable(path)
            except ValueError:  # a folder of other files: overwrite would refuse it too
                raise ValueError(
                    f"{str(path)!r} is a folder of other files, not a zarr store; jaxbell never "
                    "removes such a folder (not even to overwrite it): choose another name"
                ) from None
            raise ValueError(
                f"{str(path)!r} exists but is not a jaxbell grid store (no _jaxbell record); "
                "choose another name or pass overwrite=True (--overwrite) to replace it"
            )
    if existing is not None:
        dtype = existing["dtype"] if dtype is None else dtype
        chunk_size = existing["chunk_size"] if chunk_size is None else chunk_size
        compressor = existing["compressor"] if compressor is None else compressor
    dt = _float_dtype(np.float64 if dtype is None else dtype)
    if chunk_size is None:
        chunk_size = default_chunk_size(devs[0].platform, "zarr")
    chunk_size = _check_chunk_size(chunk_size)
    compressor = compressor or "zstd"
    plan = GridPlan(axes, dt, chunk_size, devs)
    record = make_record(plan, compressor, FIELDS)
    nt, np_, no = plan.shape
    if existing is not None:
        diffs = describe_differences(existing, record)
        if diffs:
            raise ValueError(
                f"{str(path)!r} holds a grid written with other settings ("
                + "; ".join(diffs)
                + "). Pass overwrite=True (--overwrite) to replace it, or choose another name."
            )
        store = GridStore(path, record)
    else:
        create_grid_store(
            path,
            *axes,
            field_dtypes(dt),
            block=plan.block,
            compressor=compressor,
            settings=plan.settings() | {"output": "zarr store written block by block"},
            history=f"jaxbell.write_grid on a {nt}x{np_}x{no} grid ({dt.name})",
        )
        store = GridStore.initialise(path, record)
    done = store.done_ids()
    total = plan.nblocks_total
    if joined:
        logger.info(
            "process %d of %d joins %s (%d of %d blocks done)",
            proc[0],
            proc[1],
            path,
            len(done),
            total,
        )
    elif existing is not None:
        if len(done) == total:
            logger.info(
                "%s is already complete (%s); nothing to compute", path, counted(total, "block")
            )
        else:
            msg = (
                f"resuming {path}: {len(done)} of {total} blocks "
                f"({100 * len(done) / total:.1f}%) already done"
            )
            logger.info("%s", msg)
            store.append_history(f"{_now()}: {msg}; continuing on {describe_devices(devs)}")
    if len(done) < total:
        _log_start("write_grid", plan, f" -> {path}")
    consumer = ZarrConsumer(plan, store, done)
    t0 = time.perf_counter()
    try:
        run_engine(plan, consumer, progress=progress, desc="grid", process=proc)
    except KeyboardInterrupt:
        n = len(store.done_ids())
        logger.warning(
            "interrupted: %d of %d blocks of %s are finished and recorded; run the same "
            "command again to resume",
            n,
            total,
            path,
        )
        raise
    except StoreWriteError as err:
        if isinstance(err, StoreRemovedError) or not store.intact():
            raise StoreRemovedError(
                err.errno,
                f"{err.strerror} -- the store {str(path)!r} was removed or moved while the "
                "grid was being written: no finished block survives (chunks written after "
                "the removal, if any, are unusable); run the command again with --overwrite "
                "(overwrite=True) to compute the grid from scratch",
            ) from err
        n = len(store.done_ids())
        raise StoreWriteError(
            err.errno,
            f"{err.strerror} -- {n} of {total} blocks are finished and recorded in the store "
            "and will not be lost; free disk space (or restore the store) and run the same "
            "command again to resume",
        ) from err
    elapsed = time.perf_counter() - t0
    complete = len(store.done_ids()) == total
    if complete and consumer.written:
        share = f"process {proc[0]} of {proc[1]}" if proc[1] > 1 else "this run"
        store.append_history(
            f"{_now()}: finished ({counted(total, 'block')}; {share} computed "
            f"{consumer.written} of them in {elapsed:.1f} s on {describe_devices(devs)})"
        )
    elif not complete:
        logger.info("this process's share of %s is done; other processes are still writing", path)
    return open_dataset(path, allow_incomplete=not complete)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())
