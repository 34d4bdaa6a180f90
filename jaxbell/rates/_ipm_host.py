"""The interior-point method's Schur-complement work on the CPU: compiled kernels on the host.

On a CPU, XLA expresses the sparse Schur assembly ``M_kl = tr(F_k X F_l Z^-1)`` only through
gathers and scatters (~7 ns per element on the 2-vCPU EPYC) or one-hot products that waste
most of their flops, jaxlib's batched Cholesky is 8x slower than LAPACK's dpotrf (and
deadlocks inside a while_loop on 2 CPUs), and a 272 x 272 matrix crossing a host callback costs
as much as factoring it (``benchmarks/ipm_floor.py`` measures all of these). So on the CPU
the whole K x K part of an iteration stays on the host: :func:`factor_solve` assembles M from
the blocks ``X`` and ``Z^-1`` (small) with a compiled sparse kernel, factors it (LAPACK, the
smallest diagonal shift that factors), solves the first right-hand sides with iterative
refinement, and keeps M and its factor in :data:`_SYSTEMS` under the batch's key, where
:func:`solve_again` (the corrector) finds them; only vectors cross back. The problems of a
batch are split over the usable CPUs (the kernels release the GIL).

The sparse formula (n^4 multiply-adds per block instead of the one-hot products' n^3 K):
with ``E_l`` the entries (r, s) of the moment matrix holding moment l,
``W_l = X F_l Z^-1 = sum_{(r,s) in E_l} X[:, r] Z^-1[s, :]`` and
``M_kl = sum_{(p,q) in E_k} W_l[p, q]`` (X symmetric, so ``X[:, r]`` is row r).
"""

from __future__ import annotations

import itertools
import threading
from concurrent.futures import ThreadPoolExecutor

import numba as nb
import numpy as np
from scipy.linalg import lapack


@nb.njit(nogil=True, cache=True, fastmath=True)
def _schur_add(x, zi, rows, cols, ptr, moments, flat, out):  # pragma: no cover - compiled
    """out[k, l] += tr(F_k x F_l zi) for the moments of one block (both triangles)."""
    n = x.shape[0]
    kb = moments.shape[0]
    w = np.empty((kb, n * n))
    for j in range(kb):
        wj = w[j]
        wj[:] = 0.0
        for e in range(ptr[j], ptr[j + 1]):
            xr = x[rows[e]]
            zr = zi[cols[e]]
            for a in range(n):
                xa = xr[a]
                base = a * n
                for b in range(n):
                    wj[base + b] += xa * zr[b]
    for j in range(kb):
        wj = w[j]
        mj = moments[j]
        for i in range(j, kb):
            acc = 0.0
            for e in range(ptr[i], ptr[i + 1]):
                acc += wj[flat[e]]
            out[moments[i], mj] += acc
            if i != j:
                out[mj, moments[i]] += acc


def _cholesky_shifted(m: np.ndarray, shifts) -> tuple[np.ndarray, bool]:
    """(lower Cholesky factor of m + shift diag(m), True) for the first shift that factors.

    LAPACK's dpotrf through SciPy (numba's np.linalg.cholesky took 300 ms on these matrices).
    """
    diag = np.diag(m).copy()
    idx = np.arange(m.shape[0])
    for shift in shifts:
        a = m.copy(order="F")
        a[idx, idx] += shift * diag
        chol, info = lapack.dpotrf(a, lower=1, clean=0, overwrite_a=1)
        if info == 0:
            return chol, True
    return None, False


def _refined_solve(m: np.ndarray, chol: np.ndarray, r: np.ndarray, steps: int) -> np.ndarray:
    """M^-1 r from the (Fortran-ordered) factor of the shifted M, refined against M itself."""
    u, _ = lapack.dpotrs(chol, r, lower=1)
    for _ in range(steps):
        du, _ = lapack.dpotrs(chol, r - m @ u, lower=1)
        u = u + du
    return u


class HostStructure:
    """The sparse layout of one relaxation's blocks, as the compiled kernels read it."""

    def __init__(self, index: tuple, n_vars: int, bounded: np.ndarray):
        self.n_vars = n_vars
        self.bounded = np.asarray(bounded, dtype=np.int64)
        self.blocks = []
        for m in index:
            n = m.shape[0]
            counts = np.bincount(m[m >= 0].ravel(), minlength=n_vars)
            moments = np.nonzero(counts)[0].astype(np.int64)
            entries = [np.flatnonzero(m.ravel() == k) for k in moments]
            ptr = np.concatenate([[0], np.cumsum([len(e) for e in entries])]).astype(np.int64)
            flat = np.concatenate(entries).astype(np.int64)
            self.blocks.append((flat // n, flat % n, ptr, moments, flat))

    def schur(self, xs, zis, d) -> np.ndarray:
        """M of one problem: ``xs``, ``zis`` one matrix per block, ``d`` = mu / s."""
        m = np.zeros((self.n_vars, self.n_vars), order="F")  # symmetric: LAPACK reads it as is
        for (rows, cols, ptr, moments, flat), x, zi in zip(self.blocks, xs, zis, strict=True):
            _schur_add(np.ascontiguousarray(x), np.ascontiguousarray(zi), rows, cols, ptr,
                       moments, flat, m)  # fmt: skip
        m[self.bounded, self.bounded] += d
        return m


#: (M, Cholesky factor) stacks of the batch being solved, by its key (see module docstring).
_SYSTEMS: dict[int, tuple[list, list]] = {}
_LOCK = threading.Lock()
_KEYS = itertools.count(1)
_POOL: list = []  # (executor, its worker count), made on first use


def new_key() -> int:
    """A key no batch in flight uses (int32, as it travels through XLA)."""
    return next(_KEYS) % (2**31 - 1)


def release(keys) -> None:
    with _LOCK:
        for k in keys:
            _SYSTEMS.pop(int(k), None)


def over_problems(work, n: int) -> list:
    """``work(problems)`` on consecutive ranges splitting ``range(n)``, one per usable CPU, in
    worker threads (the compiled kernels and NumPy's LAPACK release the GIL); results in order."""
    if not _POOL:
        from jaxbell.grid import usable_cpus

        workers = max(1, usable_cpus())
        _POOL.append((ThreadPoolExecutor(workers), workers))
    pool, workers = _POOL[0]
    step = max(1, -(-n // workers))
    return list(pool.map(work, [range(i, min(n, i + step)) for i in range(0, n, step)]))


def factor_solve(structure: HostStructure, key, xs, zis, d, rhs, shifts, steps) -> np.ndarray:
    """Assemble, factor and solve a batch; keep (M, factor) under ``key`` for :func:`solve_again`.

    ``xs``, ``zis``: per block a (B, n, n) stack; ``d`` (B, H); ``rhs`` (B, K, c). A problem
    whose M factors with no shift (or has non-finite input) gets NaN solutions.
    """
    b = rhs.shape[0]
    ms: list = [None] * b
    chols: list = [None] * b
    out = np.full(rhs.shape, np.nan)

    def work(problems):
        for p in problems:
            x_p = [x[p] for x in xs]
            z_p = [z[p] for z in zis]
            if not (all(np.all(np.isfinite(a)) for a in x_p + z_p) and np.all(np.isfinite(d[p]))):
                continue
            ms[p] = structure.schur(x_p, z_p, d[p])
            chols[p], ok = _cholesky_shifted(ms[p], shifts)
            if ok and np.all(np.isfinite(rhs[p])):
                out[p] = _refined_solve(ms[p], chols[p], rhs[p], steps)

    over_problems(work, b)
    with _LOCK:
        _SYSTEMS[int(key)] = (ms, chols)
    return out


def solve_again(key, rhs, steps) -> np.ndarray:
    """Solve with the system :func:`factor_solve` kept under ``key`` (NaN where it failed)."""
    with _LOCK:
        ms, chols = _SYSTEMS[int(key)]
    out = np.full(rhs.shape, np.nan)

    def work(problems):
        for p in problems:
            if chols[p] is not None and np.all(np.isfinite(rhs[p])):
                out[p] = _refined_solve(ms[p], chols[p], rhs[p], steps)

    over_problems(work, rhs.shape[0])
    return out
