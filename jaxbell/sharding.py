"""Spreading a batch over devices: a ``Mesh`` over the devices, ``NamedSharding`` of the batch axis.

Every batched computation in jaxbell has the same shape: one function written for one point
(or one block), applied independently along a leading batch axis. Splitting that axis over
the devices needs no communication between them. Results are the same, bit for bit, on one
device and on N when every device runs the same program on blocks of the same shape
(:func:`map_blocks`, the grids): XLA may round an element differently in a batch of another
shape (vectorised reductions, fusion decisions), so splitting a batch of n into n/N per device
(:func:`batch_over_devices`, :func:`shard_batch`) agrees with one device only to the last ulps
in general (exactly for simple elementwise functions).

* :func:`select_devices` -- which devices a run uses (``None``: all devices of this process).
* :func:`batch_over_devices` -- ``vmap`` a one-point function and shard its batch axis over the
  devices (padding the batch to a multiple of the device count), for one-point functions of
  your own: ``batch_over_devices(fn)(thetas, phis, omegas)``.
* :func:`shard_batch` -- for code that already has a jitted, vmapped function: pad and place
  its batched inputs split over the devices; ``jit`` then runs the batch on all of them.
* :func:`map_blocks` -- for a jitted, vmapped solver run on batches of any length: fixed blocks
  per device and call (one compiled shape), each element's result independent of the device
  count. The searches (:mod:`jaxbell.search`) and the qubit solver (:mod:`jaxbell.qubit`) use it.
* The grids (:mod:`jaxbell.grid`) shard each step's blocks over the devices with the same mesh.

Multi-host: after ``jax.distributed.initialize()`` every process sees the devices of all hosts
in ``jax.devices()`` but can only feed its own, ``jax.local_devices()``; jaxbell always meshes
over the local devices and splits the grid between processes itself (see README, "Scale").
On a CPU, ``XLA_FLAGS=--xla_force_host_platform_device_count=4`` gives four devices, which is
how the tests check that sharded and unsharded results agree.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

__all__ = [
    "BATCH_AXIS",
    "batch_over_devices",
    "shard_batch",
    "shard_map",
    "describe_devices",
    "device_mesh",
    "map_blocks",
    "select_devices",
]

#: Name of the mesh axis along which batches are split.
BATCH_AXIS = "batch"

logger = logging.getLogger("jaxbell")


def select_devices(devices: int | Sequence[jax.Device] | None = None) -> tuple[jax.Device, ...]:
    """The devices a run uses.

    Parameters
    ----------
    devices : None, int or sequence of jax.Device
        ``None``: every device of this process on the default backend
        (``jax.local_devices()``: all GPUs of the machine, or the CPU). An int ``n``: the first
        ``n`` of those. A sequence: exactly those devices (one platform, this process's own,
        no repeats), e.g. ``jax.devices("cpu")`` to run on the CPU of a GPU machine.

    Returns
    -------
    tuple of jax.Device
    """
    local = jax.local_devices()
    if devices is None:
        return tuple(local)
    if isinstance(devices, bool):
        raise TypeError("devices must be None, a number of devices or a list of jax devices")
    if isinstance(devices, (int, np.integer)):
        if not 1 <= devices <= len(local):
            raise ValueError(
                f"devices={int(devices)}: this process has {len(local)} device(s) "
                f"({describe_devices(local)}); give a number from 1 to {len(local)}"
            )
        return tuple(local[: int(devices)])
    if isinstance(devices, jax.Device):
        devices = [devices]
    try:
        devs = tuple(devices)
    except TypeError:
        raise TypeError(
            "devices must be None, a number of devices or a list of jax devices, "
            f"got {type(devices).__name__}"
        ) from None
    if not devs:
        raise ValueError("devices is empty; give at least one device (or None for all)")
    if not all(isinstance(d, jax.Device) for d in devs):
        raise TypeError("devices must hold jax.Device objects, e.g. jax.devices()[:2]")
    if len(set(devs)) != len(devs):
        raise ValueError("devices lists a device more than once")
    if len({d.platform for d in devs}) != 1:
        raise ValueError("devices must all be of one platform (all GPUs or all CPUs)")
    foreign = [d for d in devs if d.process_index != jax.process_index()]
    if foreign:
        raise ValueError(
            f"devices {foreign} belong to other processes; each process uses its own "
            "(jax.local_devices())"
        )
    return devs


def describe_devices(devices: Sequence[jax.Device]) -> str:
    """A short description such as ``'4 x cpu (TFRT_CPU_0, TFRT_CPU_1, ...)'`` for logs."""
    devices = list(devices)
    platform = devices[0].platform
    kinds = "/".join(sorted({getattr(d, "device_kind", platform) for d in devices}))
    names = [str(d) for d in devices[:4]] + (["..."] if len(devices) > 4 else [])
    kind = platform if kinds.lower() == platform else f"{platform} {kinds}"
    return f"{len(devices)} x {kind} ({', '.join(names)})"


def device_mesh(devices: Sequence[jax.Device]) -> Mesh:
    """A one-axis mesh (axis :data:`BATCH_AXIS`) over ``devices``, in the given order."""
    arr = np.empty(len(devices), dtype=object)
    arr[:] = list(devices)
    return Mesh(arr, (BATCH_AXIS,))


def shard_map(f: Callable, *, mesh: Mesh, in_specs, out_specs) -> Callable:
    """``jax.shard_map`` (``jax.experimental.shard_map`` before jax 0.7), without replication
    checks: the functions jaxbell maps compute independent blocks."""
    if hasattr(jax, "shard_map"):
        return jax.shard_map(f, mesh=mesh, in_specs=in_specs, out_specs=out_specs, check_vma=False)
    from jax.experimental.shard_map import shard_map as _legacy  # pragma: no cover

    return _legacy(f, mesh=mesh, in_specs=in_specs, out_specs=out_specs, check_rep=False)


def _pad_leading(x, pad: int):
    """Repeat the last entry of the leading axis ``pad`` times (padded entries are valid inputs
    and are dropped from the output)."""
    if pad == 0:
        return x
    xp = jnp if isinstance(x, jax.Array) else np
    x = xp.asarray(x)
    return xp.concatenate([x, xp.repeat(x[-1:], pad, axis=0)], axis=0)


def _batch_length(leaves, mismatch: str) -> int:
    """The common, non-zero leading length of ``leaves`` (a ValueError starting ``mismatch``
    when they have none)."""
    sizes = {np.shape(x)[0] if np.ndim(x) else None for x in leaves}
    if None in sizes or len(sizes) != 1:
        raise ValueError(f"{mismatch}; got {sorted(map(str, sizes))}")
    n = sizes.pop()
    if n == 0:
        raise ValueError("the batch is empty; give at least one element")
    return n


def shard_batch(tree, devices: int | Sequence[jax.Device] | None = None):
    """Place a batch split over the devices, for an already jitted, vmapped function.

    Every leaf of ``tree`` (arrays with a common leading batch axis of length ``n``) is padded
    to a multiple of the device count by repeating its last entry and placed with
    ``NamedSharding(Mesh(devices, ("batch",)), PartitionSpec("batch"))``. A jitted function
    called on the result runs its batch on all the devices (XLA partitions the vmapped
    computation along the batch axis; a ``while_loop`` over the batch then agrees on its stop
    across devices), and every element's result is that of one device up to the rounding XLA
    chooses for the smaller per-device batch (see :func:`map_blocks` for identical bits). Drop
    the padding from the outputs with ``x[:n]``.

    Returns
    -------
    (placed tree, n)

    Examples
    --------
    >>> placed, n = shard_batch((problems, starts))  # doctest: +SKIP
    >>> out = jax.tree.map(lambda x: x[:n], solver(*placed, settings))  # doctest: +SKIP
    """
    devs = select_devices(devices)
    leaves = jax.tree.leaves(tree)
    n = _batch_length(leaves, "every leaf needs the same leading batch length")
    pad = (-n) % len(devs)
    sharding = NamedSharding(device_mesh(devs), PartitionSpec(BATCH_AXIS))
    return jax.device_put(jax.tree.map(lambda x: _pad_leading(x, pad), tree), sharding), n


def batch_over_devices(
    fn: Callable,
    *,
    in_axes: int | None | Sequence[int | None] = 0,
    devices: int | Sequence[jax.Device] | None = None,
) -> Callable:
    """``jax.vmap(fn)``, jitted, with the batch axis split over the devices.

    The returned function takes the same positional arguments as ``fn`` with an extra leading
    batch axis on those whose ``in_axes`` entry is 0 (pytrees allowed; every batched leaf must
    have the same leading length ``n >= 1``). It pads the batch to a multiple of the device
    count by repeating the last element, places the batch with
    ``NamedSharding(Mesh(devices, ("batch",)), PartitionSpec("batch"))``, replicates the
    ``in_axes=None`` arguments on every device, runs one compiled program and returns the
    outputs (a pytree of ``jax.Array`` with leading axis ``n``, sharded over the devices;
    ``np.asarray`` gathers them).

    Each element is computed independently, by a program whose batch is ``n / N`` elements per
    device: results on one device and on N agree exactly for elementwise functions, but may
    differ in the last ulps where XLA rounds a larger batch differently (e.g. sums of 8 or
    more terms); :func:`map_blocks` guarantees identical bits. A second call with the same
    shapes does not recompile. Close over
    non-array settings (step counts, flags) with ``functools.partial`` before wrapping.

    Parameters
    ----------
    fn : callable
        A function of one point (one element of the batch), jit-compatible.
    in_axes : 0, None or sequence of them
        Per positional argument: 0 if batched along its leading axis, None if shared by every
        element. A single value applies to every argument.
    devices : None, int or sequence of jax.Device
        As in :func:`select_devices` (default: all devices of this process).

    Examples
    --------
    >>> import numpy as np, jaxbell as jb
    >>> from jaxbell.sharding import batch_over_devices
    >>> f = batch_over_devices(lambda t, p, w: jb.max_chsh_value(jb.strategy_correlators(t, p, w)))
    >>> t, p, w = np.full(3, np.pi / 2), np.full(3, np.pi / 4), np.full(3, 3 * np.pi / 4)
    >>> np.round(np.asarray(f(t, p, w)), 6).tolist()  # Tsirelson's 2 sqrt(2) at each point
    [2.828427, 2.828427, 2.828427]
    """
    if not callable(fn):
        raise TypeError(f"fn must be callable, got {type(fn).__name__}")
    devs = select_devices(devices)
    mesh = device_mesh(devs)
    ndev = len(devs)
    batched = NamedSharding(mesh, PartitionSpec(BATCH_AXIS))
    replicated = NamedSharding(mesh, PartitionSpec())

    def axes_for(nargs: int) -> tuple[int | None, ...]:
        axes = tuple(in_axes) if isinstance(in_axes, (tuple, list)) else (in_axes,) * nargs
        if len(axes) != nargs:
            raise ValueError(
                f"in_axes has {len(axes)} entries but the function got {nargs} arguments"
            )
        for ax in axes:
            if ax not in (0, None) or isinstance(ax, bool):
                raise ValueError(f"in_axes entries must be 0 (batched) or None (shared); got {ax}")
        return axes

    @functools.cache
    def compiled(axes: tuple[int | None, ...]):
        return jax.jit(jax.vmap(fn, in_axes=axes), out_shardings=batched)

    @functools.wraps(fn)
    def wrapper(*args):
        axes = axes_for(len(args))
        if 0 not in axes:
            raise ValueError("at least one argument must be batched (in_axes 0)")
        sizes = set()
        for arg, ax in zip(args, axes, strict=True):
            if ax == 0:
                for leaf in jax.tree.leaves(arg):
                    shape = np.shape(leaf)
                    if not shape:
                        raise ValueError(
                            "batched arguments need a leading batch axis; got a scalar "
                            "(give in_axes=None for shared arguments)"
                        )
                    sizes.add(shape[0])
        if len(sizes) != 1:
            raise ValueError(f"batched arguments have different leading lengths {sorted(sizes)}")
        n = sizes.pop()
        if n == 0:
            raise ValueError("the batch is empty; give at least one element")
        pad = (-n) % ndev
        placed = []
        for arg, ax in zip(args, axes, strict=True):
            if ax is None:
                placed.append(jax.device_put(arg, replicated))
            else:
                padded = jax.tree.map(lambda x: _pad_leading(x, pad), arg)
                placed.append(jax.device_put(padded, batched))
        out = compiled(axes)(*placed)
        return jax.tree.map(lambda x: x[:n], out) if pad else out

    wrapper.devices = devs  # type: ignore[attr-defined]
    return wrapper


def map_blocks(
    fn: Callable,
    batched: tuple,
    shared: tuple = (),
    *,
    block: int,
    devices: int | Sequence[jax.Device] | None = None,
    **static,
):
    """Run a jitted, vmapped ``fn`` over a batch in fixed blocks, one block per device and call.

    ``fn(*batched, *shared, **static)`` must map every leaf of ``batched`` (a tuple of pytrees
    with a common leading batch axis of length ``n``) along that axis, element by element;
    ``shared`` are arguments common to all elements and ``static`` its static keywords. The batch
    is cut into consecutive blocks of ``block`` elements; each call takes ``len(devices)`` of
    them, placed with ``NamedSharding(Mesh(devices, ("batch",)), PartitionSpec("batch"))`` so
    that device ``d`` computes the ``d``-th, while ``shared`` is replicated. The last call is
    padded with copies of the last element (their results are dropped).

    Every device thus runs one compiled program on blocks of one shape, and an element sits at
    the same place in its block whatever the device count. This makes each element's result
    the same, bit for bit, on 1 and N devices: XLA may round differently for another block
    shape (vectorised reductions, fusion), which a plain ``shard_batch`` of the whole batch
    (``n / N`` elements per device) would expose. All calls are dispatched before any result is
    read, so the devices stay busy.

    Returns
    -------
    The outputs of ``fn`` as a pytree of NumPy arrays with leading axis ``n``, in order.
    """
    if isinstance(block, bool) or not isinstance(block, (int, np.integer)) or block < 1:
        raise ValueError(f"block must be a positive number of elements, got {block!r}")
    devs = select_devices(devices)
    leaves = jax.tree.leaves(batched)
    n = _batch_length(leaves, "every batched leaf needs the same leading length")
    mesh = device_mesh(devs)
    split = NamedSharding(mesh, PartitionSpec(BATCH_AXIS))
    shared = jax.device_put(tuple(shared), NamedSharding(mesh, PartitionSpec()))
    per_call = int(block) * len(devs)
    calls = []
    for start in range(0, n, per_call):
        idx = np.minimum(np.arange(start, start + per_call), n - 1)
        placed = jax.device_put(jax.tree.map(lambda x, i=idx: x[i], batched), split)
        calls.append((fn(*placed, *shared, **static), min(per_call, n - start)))
    outs = [jax.tree.map(lambda x, m=m: np.asarray(x)[:m], out) for out, m in calls]
    return jax.tree.map(lambda *xs: np.concatenate(xs), *outs)
