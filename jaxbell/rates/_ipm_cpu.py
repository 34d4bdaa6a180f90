"""The interior-point method of :mod:`jaxbell.rates.ipm`, compiled whole for the CPU (numba).

The same iteration as the XLA program (:func:`jaxbell.rates.ipm._build`: HKM direction,
Mehrotra predictor-corrector, separate primal and dual steps, the smallest diagonal shift of
the Schur complement that factors, one step of iterative refinement, best iterate and stall
rule, the same statuses), written as one compiled function per problem. On a CPU the XLA
program spent ~2.5 ms of CPU per SDP-iteration where its two unavoidable kernels (the sparse
Schur assembly and LAPACK's dpotrf, already on the host) take ~0.9 ms: the rest went to host
callbacks, copies and XLA's small ops around them (``docs/rates.md``, "Why not 20x"). Here
nothing crosses a callback: the loop, the block factorisations, the step-length eigenvalues
and every product run in one ``nogil`` call, LAPACK (SciPy's, one BLAS thread) called
directly, and the problems of a batch are split over the CPUs by threads. A problem's bits do
not depend on the batch it is solved in.

The certificate is not computed here: :func:`jaxbell.rates.ipm.solve` builds it in JAX from
the dual point this returns (the same bound on every platform).
"""

from __future__ import annotations

import threading

import llvmlite.binding as llvm
import numba as nb
import numpy as np
from numba import types
from numba.extending import get_cython_function_address


def _lapack(name: str, n_args: int):
    """SciPy's LAPACK routine ``name`` as a function compiled code calls (every argument a
    pointer, Fortran convention). Bound by symbol name, so numba can cache the callers."""
    symbol = f"jaxbell_{name}"
    llvm.add_symbol(symbol, get_cython_function_address("scipy.linalg.cython_lapack", name))
    return types.ExternalFunction(symbol, types.void(*([types.voidptr] * n_args)))


_dpotrf = _lapack("dpotrf", 5)
_dtrtri = _lapack("dtrtri", 6)

# LAPACK is column-major: a C-ordered symmetric matrix is its own transpose, and the factor
# LAPACK writes into the upper triangle ("U": A = U^T U) reads, C-ordered, as the lower
# triangle of L = U^T with A = L L^T.
_UPPER = ord("U")
_NONUNIT = ord("N")


@nb.njit(nogil=True, cache=True)
def _chol_lower(a, out, shift=0.0):  # pragma: no cover - compiled
    """Lower Cholesky factor of the symmetric ``a + shift diag(a)`` into ``out`` (C order);
    False if not positive definite. ``a`` is not changed (no copy of it is made)."""
    n = a.shape[0]
    for i in range(n):
        for j in range(n):
            out[i, j] = a[i, j] if j <= i else 0.0
        out[i, i] += shift * a[i, i]
    uplo = np.array([_UPPER], dtype=np.uint8)
    nn = np.array([n], dtype=np.int32)
    info = np.zeros(1, dtype=np.int32)
    _dpotrf(uplo.ctypes, nn.ctypes, out.ctypes, nn.ctypes, info.ctypes)
    return info[0] == 0


@nb.njit(nogil=True, cache=True)
def _tri_inverse(lower):  # pragma: no cover - compiled
    """Inverse of a lower-triangular matrix (C order), in place; False if singular."""
    n = lower.shape[0]
    uplo = np.array([_UPPER], dtype=np.uint8)
    diag = np.array([_NONUNIT], dtype=np.uint8)
    nn = np.array([n], dtype=np.int32)
    info = np.zeros(1, dtype=np.int32)
    _dtrtri(uplo.ctypes, diag.ctypes, nn.ctypes, lower.ctypes, nn.ctypes, info.ctypes)
    return info[0] == 0


@nb.njit(nogil=True, cache=True, fastmath=True)
def _chol_solve(chol, rhs):  # pragma: no cover - compiled
    """Solve (L L^T) u = r for every row r of ``rhs`` (C order, (c, n)), in place.

    Row-oriented substitutions on the C-ordered lower factor (both sweeps read rows of L):
    for a few right-hand sides 3-4x faster than LAPACK's dpotrs, which packs the whole
    triangle for every call (measured: 10 us against 35 us per solve at K = 272).
    """
    n = chol.shape[0]
    for c in range(rhs.shape[0]):
        u = rhs[c]
        for i in range(n):
            acc = u[i]
            li = chol[i]
            for j in range(i):
                acc -= li[j] * u[j]
            u[i] = acc / li[i]
        for i in range(n - 1, -1, -1):
            xi = u[i] / chol[i, i]
            u[i] = xi
            li = chol[i]
            for j in range(i):
                u[j] -= xi * li[j]


@nb.njit(nogil=True, cache=True, fastmath=True)
def _schur_block(x, zi, rows, cols, ptr, moments, flat, out, w):  # pragma: no cover - compiled
    """out[k, l] += tr(F_k x F_l zi) for the moments of one block (both triangles).

    ``W_l = x F_l zi`` one moment at a time in the scratch ``w`` (n * n, stays in L1), then
    ``M_kl = sum over moment k's entries of W_l`` for k >= l: with ``E_l`` the entries (r, s)
    of the moment matrix holding moment l, ``W_l = x F_l zi = sum_{(r,s) in E_l} x[:, r] zi[s, :]``
    (x symmetric, so ``x[:, r]`` is row r) and ``M_kl = sum_{(p,q) in E_k} W_l[p, q]``: n^4
    multiply-adds per block where dense one-hot products take n^3 K.
    """
    n = x.shape[0]
    kb = moments.shape[0]
    for j in range(kb):
        w[:] = 0.0
        for e in range(ptr[j], ptr[j + 1]):
            xr = x[rows[e]]
            zr = zi[cols[e]]
            for a in range(n):
                xa = xr[a]
                base = a * n
                for b in range(n):
                    w[base + b] += xa * zr[b]
        mj = moments[j]
        for i in range(j, kb):
            acc = 0.0
            for e in range(ptr[i], ptr[i + 1]):
                acc += w[flat[e]]
            out[moments[i], mj] += acc
            if i != j:
                out[mj, moments[i]] += acc


@nb.njit(nogil=True, cache=True)
def _g_of(y, const, idx, out):  # pragma: no cover - compiled
    """out = F0 * const + sum_k y_k F_k for one block (``idx``: the block's moment index)."""
    n = out.shape[0]
    for i in range(n):
        for j in range(n):
            k = idx[i, j]
            out[i, j] = const if k < 0 else y[k]


@nb.njit(nogil=True, cache=True)
def _adjoint_add(x, idx, sign, out):  # pragma: no cover - compiled
    """out[k] += sign * <F_k, x> for one block."""
    n = x.shape[0]
    for i in range(n):
        for j in range(n):
            k = idx[i, j]
            if k >= 0:
                out[k] += sign * x[i, j]


#: Relative width at which the bisection for the smallest eigenvalue stops (a step length
#: needs far less; the lower end of the bracket is returned, so the step is never too long).
_BISECT_REL = 1e-10


@nb.njit(nogil=True, cache=True)
def _min_eig_sym(w, floor):  # pragma: no cover - compiled
    """min(lambda_min((w + w^T) / 2), floor) from below: ``floor`` when no eigenvalue is below it.

    Householder tridiagonalisation (Golub & Van Loan, Matrix Computations, 4th ed., 8.3.1) and
    bisection with Sturm counts on the tridiagonal matrix (ibid. 8.4.1), stopped at a relative
    width of :data:`_BISECT_REL`; the bracket's lower end is returned. A step length only needs
    the smallest eigenvalue when it lies below -1/cap, so the caller passes that as ``floor``
    (one Sturm count decides it). 2-3x faster than LAPACK's dsyevr at n = 31 (no level-2 BLAS
    calls). NaN if ``w`` is not finite.
    """
    n = w.shape[0]
    if not np.all(np.isfinite(w)):
        return np.nan
    a = 0.5 * (w + w.T)
    d = np.empty(n)
    e = np.zeros(max(n - 1, 1))
    v = np.empty(n)
    p = np.empty(n)
    for k in range(n - 2):
        m = n - k - 1
        alpha = 0.0
        for i in range(m):
            v[i] = a[k + 1 + i, k]
            alpha += v[i] * v[i]
        norm = np.sqrt(alpha)
        if norm == 0.0:
            e[k] = 0.0
            continue
        sgn = norm if v[0] >= 0 else -norm
        v[0] += sgn
        vv = 0.0
        for i in range(m):
            vv += v[i] * v[i]
        beta = 2.0 / vv
        for i in range(m):
            acc = 0.0
            row = a[k + 1 + i]
            for j in range(m):
                acc += row[k + 1 + j] * v[j]
            p[i] = beta * acc
        pv = 0.0
        for i in range(m):
            pv += p[i] * v[i]
        half = 0.5 * beta * pv
        for i in range(m):
            p[i] -= half * v[i]
        for i in range(m):
            row = a[k + 1 + i]
            vi = v[i]
            wi = p[i]
            for j in range(m):
                row[k + 1 + j] -= vi * p[j] + wi * v[j]
        e[k] = -sgn
    for i in range(n):
        d[i] = a[i, i]
    if n >= 2:
        e[n - 2] = a[n - 1, n - 2]
    lo = np.inf
    for i in range(n):
        r = (abs(e[i - 1]) if i > 0 else 0.0) + (abs(e[i]) if i < n - 1 else 0.0)
        lo = min(lo, d[i] - r)
    if lo >= floor or _sturm_count(d, e, floor) == 0:
        return floor
    hi = floor
    for _ in range(2000):
        if hi - lo <= _BISECT_REL * max(abs(lo), abs(hi)):
            break
        x = 0.5 * (lo + hi)
        if x <= lo or x >= hi:
            break
        if _sturm_count(d, e, x) >= 1:
            hi = x
        else:
            lo = x
    return lo


@nb.njit(nogil=True, cache=True)
def _sturm_count(d, e, x):  # pragma: no cover - compiled
    """Number of eigenvalues below x of the symmetric tridiagonal matrix (d, e)."""
    cnt = 0
    q = d[0] - x
    if q < 0:
        cnt += 1
    for i in range(1, d.shape[0]):
        if q == 0.0:
            q = 1e-300
        q = d[i] - x - e[i - 1] * e[i - 1] / q
        if q < 0:
            cnt += 1
    return cnt


@nb.njit(nogil=True, cache=True)
def _largest_step(linvs, dms, v, dv, cap):  # pragma: no cover - compiled
    """Largest a with L L^T + a D >= 0 for every block (L^-1 given) and v + a dv >= 0, or any
    number >= ``cap`` when it is at least that (the caller takes min(1, fraction * a))."""
    a = np.inf
    for b in range(len(linvs)):
        li = linvs[b]
        lo = _min_eig_sym(li @ dms[b] @ li.T, -1.0 / cap)
        if lo < 0:
            a = min(a, -1.0 / lo)
    for i in range(v.shape[0]):
        if dv[i] < 0:
            a = min(a, -v[i] / dv[i])
    return a


@nb.njit(nogil=True, cache=True)
def _measures(c, A, bvec, idxs, consts, bounded, scale, y, xs, zs, s, lam, mu):  # pragma: no cover
    """(pobj, dobj, gap, pinf, dinf) and the residuals (rp, rs, rb, rc) of an iterate."""
    K = c.shape[0]
    rc = c.copy()
    rps = []
    pinf = 0.0
    dsum = 0.0
    for b in range(len(xs)):
        g = np.empty_like(zs[b])
        _g_of(y, 1.0, idxs[b], g)
        rp = g - zs[b]
        rps.append(rp)
        pinf = max(pinf, np.max(np.abs(rp)))
        _adjoint_add(xs[b], idxs[b], -1.0, rc)
        dsum += np.sum(consts[b] * xs[b])
    rs = 1.0 - y[bounded] - s
    rb = bvec - A @ y
    rc -= A.T @ lam
    for i in range(bounded.shape[0]):
        rc[bounded[i]] += mu[i]
    if rs.shape[0]:
        pinf = max(pinf, np.max(np.abs(rs)))
    if rb.shape[0]:
        pinf = max(pinf, np.max(np.abs(rb)))
    pobj = 0.0
    for k in range(K):
        pobj += c[k] * y[k]
    dobj = bvec @ lam - np.sum(mu) - dsum
    gap = abs(pobj - dobj) / (1.0 + abs(pobj) + abs(dobj))
    dinf = np.max(np.abs(rc)) / scale
    return pobj, dobj, gap, pinf, dinf, rps, rs, rb, rc


@nb.njit(nogil=True, cache=True)
def _rhs(target, xs, zis, rps, corr_x, corr_s, idxs, bounded, s, mu, d, rs, rc):  # pragma: no cover
    """Right-hand side of the Schur system (as ``rhs`` in :func:`jaxbell.rates.ipm._build`)."""
    h = -rc
    for b in range(len(xs)):
        x, zi = xs[b], zis[b]
        t = target * zi - x - x @ rps[b] @ zi - corr_x[b]
        _adjoint_add(t, idxs[b], 1.0, h)
    for i in range(bounded.shape[0]):
        h[bounded[i]] -= (target - corr_s[i]) / s[i] - mu[i] - d[i] * rs[i]
    return h


@nb.njit(nogil=True, cache=True)
def _direction(target, corr_x, corr_s, dy, xs, zis, rps, idxs, bounded, s, mu, d,
               rs):  # pragma: no cover - compiled  # fmt: skip
    """(dxs, dzs, ds, dmu) of the search direction from its dy (as ``direction`` in
    :func:`jaxbell.rates.ipm._build`)."""
    dzs = []
    dxs = []
    for b in range(len(xs)):
        dz = np.empty_like(xs[b])
        _g_of(dy, 0.0, idxs[b], dz)
        dz += rps[b]
        dx = target * zis[b] - xs[b] - xs[b] @ dz @ zis[b] - corr_x[b]
        dzs.append(dz)
        dxs.append(0.5 * (dx + dx.T))
    ds = rs - dy[bounded]
    dmu = (target - corr_s) / s - mu - d * ds
    return dxs, dzs, ds, dmu


@nb.njit(nogil=True, cache=True)
def _refined(chol, mat, rhs, refine):  # pragma: no cover - compiled
    """mat^-1 rhs (rows of ``rhs``) from the factor of the shifted ``mat``, refined against it."""
    sol = rhs.copy()
    _chol_solve(chol, sol)
    for _ in range(refine):
        corr = rhs - sol @ mat
        _chol_solve(chol, corr)
        sol += corr
    return sol


@nb.njit(nogil=True, cache=True)
def _newton_general(h, rb, A, chol, m, m_at, small_linv, refine):  # pragma: no cover - compiled
    """(dy, dlam) with M dy - A^T dlam = h, A dy = rb: through the E x E matrix A M^-1 A^T."""
    hm = np.empty((1, h.shape[0]))
    hm[0] = h
    mh = _refined(chol, m, hm, refine)[0]
    dlam = small_linv.T @ (small_linv @ (rb - A @ mh))
    return mh + m_at.T @ dlam, dlam


@nb.njit(nogil=True, cache=True)
def _newton_fixed(h, rb, fix, free, chol_f, m, m_ff, refine):  # pragma: no cover - compiled
    """(dy, dlam) with M dy - A^T dlam = h, A dy = rb when A's rows are the unit vectors of the
    moments ``fix`` (``A y = b`` fixes them): dy_fix = rb, the free moments from their own
    block of M, dlam = (M dy)_fix - h_fix. No E x E matrix: where A M^-1 A^T loses its
    definiteness near the optimum ("full" statistics), this does not."""
    K = h.shape[0]
    nf = free.shape[0]
    dy = np.zeros(K)
    for e in range(fix.shape[0]):
        dy[fix[e]] = rb[e]
    r = np.empty((1, nf))
    for i in range(nf):
        acc = h[free[i]]
        row = m[free[i]]
        for e in range(fix.shape[0]):
            acc -= row[fix[e]] * rb[e]
        r[0, i] = acc
    u = _refined(chol_f, m_ff, r, refine)[0]
    for i in range(nf):
        dy[free[i]] = u[i]
    dlam = np.empty(fix.shape[0])
    for e in range(fix.shape[0]):
        dlam[e] = m[fix[e]] @ dy - h[fix[e]]
    return dy, dlam


@nb.njit(nogil=True, cache=True)
def _small_chol_inv(a, shifts):  # pragma: no cover - compiled
    """Inverse Cholesky factor of the few equalities' E x E matrix, first shift that factors."""
    sym = 0.5 * (a + a.T)
    out = np.empty_like(sym)
    for sh in shifts:
        if _chol_lower(sym, out, sh) and _tri_inverse(out):
            return out, True
    return out, False


@nb.njit(nogil=True, cache=True)
def _factor(xs, zis, d, A, bounded, sch, m, m_ff, chol, w, fix, free, schur_shifts, small_shifts,
            refine):  # pragma: no cover - compiled  # fmt: skip
    """Assemble the Schur complement into ``m`` and factor it (its free block ``m_ff`` when
    moments are fixed) with the first shift that works; (ok, M^-1 A^T, (A M^-1 A^T)^-1/2)."""
    E = A.shape[0]
    m_at = np.empty((E, m.shape[0]))
    small_linv = np.empty((E, E))
    m[:] = 0.0
    for b in range(len(xs)):
        rows, cols, ptr, moms, flat = sch[b]
        _schur_block(xs[b], zis[b], rows, cols, ptr, moms, flat, m, w)
    for i in range(bounded.shape[0]):
        m[bounded[i], bounded[i]] += d[i]
    if not np.all(np.isfinite(m)):
        return False, m_at, small_linv
    fixed = fix.shape[0] > 0
    if fixed:  # the free moments' block of M
        nf = free.shape[0]
        for i in range(nf):
            row = m[free[i]]
            for j in range(nf):
                m_ff[i, j] = row[free[j]]
        target = m_ff
    else:
        target = m
    factored = False
    for sh in schur_shifts:
        if _chol_lower(target, chol, sh):
            factored = True
            break
    if not factored:
        return False, m_at, small_linv
    if not fixed:
        m_at = _refined(chol, m, A.copy(), refine)
        small_linv, sok = _small_chol_inv(A @ m_at.T, small_shifts)
        if not sok:
            return False, m_at, small_linv
    return True, m_at, small_linv


@nb.njit(nogil=True, cache=True)
def _newton(h, rb, A, fix, free, chol, m, m_ff, m_at, small_linv, refine):  # pragma: no cover
    """(dy, dlam) with M dy - A^T dlam = h, A dy = rb, from the factors of :func:`_factor`."""
    if fix.shape[0] > 0:
        return _newton_fixed(h, rb, fix, free, chol, m, m_ff, refine)
    return _newton_general(h, rb, A, chol, m, m_at, small_linv, refine)


@nb.njit(nogil=True, cache=True)
def _polish(rc, A, idxs, bounded, sch, y, xs, s, lam, mu, fix, free, schur_shifts, small_shifts,
            refine, m, m_ff, chol, w, shift):  # pragma: no cover - compiled  # fmt: skip
    """A second dual point: (xs, lam, mu) with its stationarity residual ``rc`` removed; (ok,
    xs, lam, mu).

    The residual ``rc = c - F*(X) - A^T lam + H^T mu`` (of :func:`_measures`) is what the
    certificate pays for (spread over each moment's entries, every negative eigenvalue this
    causes bounded by up to the block size), and where the iteration stalls near the optimum
    ~1e-8 of it is left. One
    Newton step on stationarity alone: dX = sym(X F(dy) W), dmu = -(mu / (s + shift)) H dy,
    with W = (Z + shift I)^-1 (Z taken as G(y), equal to rounding: the primal residual is
    ~1e-15 where this matters) and M_W dy - A^T dlam = rc, M_W the Schur complement of
    (X, W); then F*(dX) + A^T(-dlam) - H^T dmu = rc. With W = Z^-1 (the iteration's own
    scaling) M is too ill-conditioned there (condition ~1e19 measured) to factor; with W = I
    the step leaves X's near-null space with negative eigenvalues ~1e-8; the regularised
    scaling between them (``shift`` 1e-3: Z's eigenvalues are O(1) or ~0) cuts the first
    "global" node's correction from 1.4e-6 to 1.7e-7 at a 4e-7 lower dual value. The
    certificate is computed for both points and the better bound kept (both are valid).
    """
    nblk = len(xs)
    ws = []
    for b in range(nblk):
        g = np.empty_like(xs[b])
        _g_of(y, 1.0, idxs[b], g)
        for i in range(g.shape[0]):
            g[i, i] += shift
        lz = np.empty_like(g)
        if not (_chol_lower(g, lz) and _tri_inverse(lz)):
            return False, xs, lam, mu
        ws.append(lz.T @ lz)
    d = mu / (s + shift)
    ok, m_at, small_linv = _factor(xs, ws, d, A, bounded, sch, m, m_ff, chol, w, fix, free,
                                   schur_shifts, small_shifts, refine)  # fmt: skip
    if not ok:
        return False, xs, lam, mu
    dy, dlam = _newton(rc, np.zeros(A.shape[0]), A, fix, free, chol, m, m_ff, m_at, small_linv,
                       refine)  # fmt: skip
    nxs = []
    for b in range(nblk):
        f = np.empty_like(xs[b])
        _g_of(dy, 0.0, idxs[b], f)
        dx = xs[b] @ f @ ws[b]
        nx = xs[b] + 0.5 * (dx + dx.T)
        if not np.all(np.isfinite(nx)):
            return False, xs, lam, mu
        nxs.append(nx)
    nmu = np.maximum(mu - d * dy[bounded], 0.0)
    nlam = lam - dlam
    if not (np.all(np.isfinite(nmu)) and np.all(np.isfinite(nlam))):
        return False, xs, lam, mu
    return True, nxs, nlam, nmu


@nb.njit(nogil=True, cache=True)
def solve_one(c, A, bvec, idxs, consts, bounded, sch, tol_gap, tol_feas, max_iter, schur_shifts,
              small_shifts, refine, step_fraction, stall_iterations, stall_below, x0, z0, fix,
              polish_above, polish_shift, x_out,
              polished):  # pragma: no cover - compiled  # fmt: skip
    """One node SDP. Returns (y, lam, mu, lam2, mu2, info); the best iterate's X blocks go into
    ``x_out``, those of its polished dual point (:func:`_polish`; the same point where its
    absolute dual residual times the largest block is below ``polish_above`` or the polish
    fails) into ``polished`` with ``lam2``, ``mu2``.

    ``info``: primal and dual objective, gap, primal and dual residual, iterations, solver
    status, stop reason (as the dict of :func:`jaxbell.rates.ipm.solve`).
    """
    K = c.shape[0]
    E = bvec.shape[0]
    H = bounded.shape[0]
    nblk = len(idxs)
    scale = 1.0 + np.max(np.abs(c))
    n_cone = H
    for b in range(nblk):
        n_cone += idxs[b].shape[0]
    y = np.zeros(K)
    xs = [np.eye(idxs[b].shape[0]) * (x0 * scale) for b in range(nblk)]
    zs = [np.eye(idxs[b].shape[0]) * z0 for b in range(nblk)]
    s = np.ones(H)
    lam = np.zeros(E)
    mu = np.ones(H) * scale
    by, bxs, bzs, bs, blam, bmu = y, xs, zs, s, lam, mu
    best_score = np.inf
    stall = 0
    it = 0
    converged = False
    broken = False
    nmax = 0
    for b in range(nblk):
        nmax = max(nmax, idxs[b].shape[0])
    w = np.empty(nmax * nmax)
    m = np.empty((K, K))
    fixed = fix.shape[0] > 0
    is_fixed = np.zeros(K, dtype=np.bool_)
    is_fixed[fix] = True
    free = np.nonzero(~is_fixed)[0]
    nf = free.shape[0]
    m_ff = np.empty((nf, nf)) if fixed else np.empty((1, 1))
    chol = np.empty((nf, nf))
    _, _, _, _, _, rps, rs, rb, rc = _measures(c, A, bvec, idxs, consts, bounded, scale,
                                               y, xs, zs, s, lam, mu)  # fmt: skip
    while (not converged) and (not broken) and stall < stall_iterations and it < max_iter:
        it += 1
        nu = mu @ s
        for b in range(nblk):
            nu += np.sum(xs[b] * zs[b])
        nu /= n_cone
        z_linv = []
        x_linv = []
        ok = True
        for b in range(nblk):
            lz = np.empty_like(zs[b])
            lx = np.empty_like(xs[b])
            ok = ok and _chol_lower(zs[b], lz) and _tri_inverse(lz)
            ok = ok and _chol_lower(xs[b], lx) and _tri_inverse(lx)
            z_linv.append(lz)
            x_linv.append(lx)
        if not ok:
            broken = True
            break
        zis = [li.T @ li for li in z_linv]
        d = mu / s
        zero_x = [np.zeros_like(x) for x in xs]
        zero_s = np.zeros(H)
        h = _rhs(0.0, xs, zis, rps, zero_x, zero_s, idxs, bounded, s, mu, d, rs, rc)
        ok, m_at, small_linv = _factor(xs, zis, d, A, bounded, sch, m, m_ff, chol, w, fix, free,
                                       schur_shifts, small_shifts, refine)  # fmt: skip
        if not ok:
            broken = True
            break
        dy, dlam = _newton(h, rb, A, fix, free, chol, m, m_ff, m_at, small_linv, refine)
        dxs, dzs, ds, dmu = _direction(0.0, zero_x, zero_s, dy, xs, zis, rps, idxs, bounded, s,
                                       mu, d, rs)  # fmt: skip
        ap = min(1.0, _largest_step(z_linv, dzs, s, ds, 1.0))
        ad = min(1.0, _largest_step(x_linv, dxs, mu, dmu, 1.0))
        nu_aff = (mu + ad * dmu) @ (s + ap * ds)
        for b in range(nblk):
            nu_aff += np.sum((xs[b] + ad * dxs[b]) * (zs[b] + ap * dzs[b]))
        nu_aff /= n_cone
        sigma = min(1.0, max(0.0, (nu_aff / nu) ** 3))
        corr_x = [dxs[b] @ dzs[b] @ zis[b] for b in range(nblk)]
        corr_s = dmu * ds
        h = _rhs(sigma * nu, xs, zis, rps, corr_x, corr_s, idxs, bounded, s, mu, d, rs, rc)
        dy, dlam = _newton(h, rb, A, fix, free, chol, m, m_ff, m_at, small_linv, refine)
        dxs, dzs, ds, dmu = _direction(sigma * nu, corr_x, corr_s, dy, xs, zis, rps, idxs,
                                       bounded, s, mu, d, rs)  # fmt: skip
        ap = min(1.0, step_fraction * _largest_step(z_linv, dzs, s, ds, 1.0 / step_fraction))
        ad = min(1.0, step_fraction * _largest_step(x_linv, dxs, mu, dmu, 1.0 / step_fraction))
        ny = y + ap * dy
        nxs = [xs[b] + ad * dxs[b] for b in range(nblk)]
        nzs = [zs[b] + ap * dzs[b] for b in range(nblk)]
        ns = s + ap * ds
        nlam = lam + ad * dlam
        nmu = mu + ad * dmu
        ok = np.isfinite(ap) and np.isfinite(ad)
        ok = ok and np.all(np.isfinite(ny)) and np.all(np.isfinite(ns))
        ok = ok and np.all(np.isfinite(nlam)) and np.all(np.isfinite(nmu))
        for b in range(nblk):
            ok = ok and np.all(np.isfinite(nxs[b])) and np.all(np.isfinite(nzs[b]))
        if not ok:  # rejected: the loop ends at the last good iterate (its score is not new)
            broken = True
            break
        y, xs, zs, s, lam, mu = ny, nxs, nzs, ns, nlam, nmu
        _, _, gap, pinf, dinf, rps, rs, rb, rc = _measures(
            c, A, bvec, idxs, consts, bounded, scale, y, xs, zs, s, lam, mu
        )
        score = max(gap, max(pinf, dinf))
        better = score < best_score
        if better:
            by, bxs, bzs, bs, blam, bmu = y, xs, zs, s, lam, mu
            best_score = score
        stall = 0 if (better or best_score > stall_below) else stall + 1
        converged = gap < tol_gap and pinf < tol_feas and dinf < tol_feas
    pobj, dobj, gap, pinf, dinf, _, _, _, rc = _measures(c, A, bvec, idxs, consts, bounded, scale,
                                                         by, bxs, bzs, bs, blam, bmu)  # fmt: skip
    final = gap < tol_gap and pinf < tol_feas and dinf < tol_feas
    infeasible = (not final) and pinf > 1e-6 and dobj > 1e3 * scale
    close = gap < 1e-6 and pinf < 1e-6 and dinf < 1e-6
    if final:
        status = 0
    elif infeasible:
        status = 3
    elif close:
        status = 1
    elif it >= max_iter:
        status = 2
    else:
        status = 4
    if converged:
        reason = 0
    elif stall >= stall_iterations:
        reason = 1
    elif broken:
        reason = 2
    else:
        reason = 3
    pxs, plam, pmu = bxs, blam, bmu
    if dinf * scale * nmax > polish_above:
        _, pxs, plam, pmu = _polish(rc, A, idxs, bounded, sch, by, bxs, bs, blam, bmu, fix, free,
                                    schur_shifts, small_shifts, refine, m, m_ff, chol, w,
                                    polish_shift)  # fmt: skip
    off = 0
    for b in range(nblk):
        n = bxs[b].shape[0]
        x_out[off : off + n * n] = bxs[b].ravel()
        polished[off : off + n * n] = pxs[b].ravel()
        off += n * n
    info = np.array([pobj, dobj, gap, pinf, dinf, it, status, reason], dtype=np.float64)
    return by, blam, bmu, plam, pmu, info


class CpuStructure:
    """One relaxation's structure as :func:`solve_one` reads it.

    Per block: the moment index (``idxs``), the mask of constant entries (``consts``) and the
    sparse layout of the Schur assembly (``sch``: rows, columns, per-moment pointers, moments,
    flat entries; see :func:`_schur_block`).
    """

    def __init__(self, index: tuple, n_vars: int, bounded: np.ndarray):
        from numba.typed import List

        self.n_vars = n_vars
        self.sizes = [m.shape[0] for m in index]
        self.bounded = np.ascontiguousarray(bounded, dtype=np.int64)
        self.idxs = List([np.ascontiguousarray(m, dtype=np.int64) for m in index])
        self.consts = List([(m < 0).astype(np.float64) for m in index])
        blocks = []
        for m in index:
            n = m.shape[0]
            counts = np.bincount(m[m >= 0].ravel(), minlength=n_vars)
            moments = np.nonzero(counts)[0].astype(np.int64)
            entries = [np.flatnonzero(m.ravel() == k) for k in moments]
            ptr = np.concatenate([[0], np.cumsum([len(e) for e in entries])]).astype(np.int64)
            flat = np.concatenate(entries).astype(np.int64)
            blocks.append((flat // n, flat % n, ptr, moments, flat))
        self.sch = List(blocks)

    def schur(self, xs, zis, d) -> np.ndarray:
        """M of one problem: ``xs``, ``zis`` one matrix per block, ``d`` = mu / s (tests and
        benchmarks; the solver assembles it inside :func:`solve_one`)."""
        m = np.zeros((self.n_vars, self.n_vars))
        w = np.empty(max(self.sizes) ** 2)
        for blk, x, zi in zip(self.sch, xs, zis, strict=True):
            _schur_block(np.ascontiguousarray(x, dtype=np.float64),
                         np.ascontiguousarray(zi, dtype=np.float64), *blk, m, w)  # fmt: skip
        m[self.bounded, self.bounded] += d
        return m


#: (executor, its worker count), made on first use.
_POOL: list = []


def over_problems(work, n: int) -> list:
    """``work(problems)`` on consecutive ranges splitting ``range(n)``, one per usable CPU, in
    worker threads (the compiled code and NumPy's LAPACK release the GIL); results in order."""
    if not _POOL:
        from concurrent.futures import ThreadPoolExecutor

        from jaxbell.grid import usable_cpus

        workers = max(1, usable_cpus())
        _POOL.append((ThreadPoolExecutor(workers), workers))
    pool, workers = _POOL[0]
    step = max(1, -(-n // workers))
    return list(pool.map(work, [range(i, min(n, i + step)) for i in range(0, n, step)]))


def fixed_columns(a: np.ndarray) -> np.ndarray:
    """The moments that ``a y = b`` fixes, one per row, when every row of ``a`` is a unit vector
    (four correlators, "full" statistics); empty otherwise (a Bell value)."""
    nz = a != 0
    if a.shape[0] and np.all(nz.sum(axis=1) == 1) and np.all(a[nz] == 1.0):
        cols = np.argmax(nz, axis=1)
        if len(np.unique(cols)) == len(cols):
            return cols.astype(np.int64)
    return np.zeros(0, dtype=np.int64)


def solve_batch(structure: CpuStructure, c, A, b, options, constants, progress=None) -> dict:
    """Solve every problem of a batch (threads over the CPUs); arrays with a leading axis N.

    ``constants``: (schur shifts, small shifts, refinement steps, step fraction, stall
    iterations, stall threshold, initial X, initial Z, polish threshold, polish shift) of
    :mod:`jaxbell.rates.ipm`. ``x`` and ``x_polished`` of the result are tuples of (N, n, n)
    stacks, one per block.
    """
    (schur_shifts, small_shifts, refine, fraction, stall_its, stall_below, x0, z0, polish_above,
     polish_shift) = constants  # fmt: skip
    schur_shifts = np.asarray(schur_shifts, dtype=np.float64)
    small_shifts = np.asarray(small_shifts, dtype=np.float64)
    n = c.shape[0]
    sq = sum(k * k for k in structure.sizes)
    out = {
        "y": np.full((n, structure.n_vars), np.nan),
        "x": np.full((n, sq), np.nan),
        "lam": np.full((n, b.shape[1]), np.nan),
        "mu": np.full((n, len(structure.bounded)), np.nan),
        "x_polished": np.full((n, sq), np.nan),
        "lam_polished": np.full((n, b.shape[1]), np.nan),
        "mu_polished": np.full((n, len(structure.bounded)), np.nan),
        "info": np.full((n, 8), np.nan),
    }

    queue = iter(range(n))  # the workers take the next problem as they finish one
    lock = threading.Lock()

    def work(_):
        while True:
            with lock:
                p = next(queue, None)
            if p is None:
                return
            y, lam, mu, lam2, mu2, info = solve_one(
                np.ascontiguousarray(c[p]), np.ascontiguousarray(A[p]), np.ascontiguousarray(b[p]),
                structure.idxs, structure.consts, structure.bounded, structure.sch,
                float(options.tol_gap), float(options.tol_feas), int(options.max_iter),
                schur_shifts, small_shifts, int(refine), float(fraction), int(stall_its),
                float(stall_below), float(x0), float(z0), fixed_columns(A[p]),
                float(polish_above), float(polish_shift), out["x"][p], out["x_polished"][p],
            )  # fmt: skip
            out["y"][p], out["lam"][p], out["mu"][p], out["info"][p] = y, lam, mu, info
            out["lam_polished"][p], out["mu_polished"][p] = lam2, mu2
            if progress is not None:
                progress(1)

    over_problems(work, n)  # one task per worker thread
    info = out.pop("info")
    for name in ("x", "x_polished"):
        xs, off = [], 0
        for k in structure.sizes:
            xs.append(out[name][:, off : off + k * k].reshape(n, k, k))
            off += k * k
        out[name] = tuple(xs)
    names = ("primal_value", "dual_value", "gap", "primal_residual", "dual_residual")
    for i, name in enumerate(names):
        out[name] = info[:, i]
    out["iterations"] = info[:, 5].astype(np.int32)
    out["solver_status"] = info[:, 6].astype(np.int8)
    out["stop_reason"] = info[:, 7].astype(np.int8)
    return out
