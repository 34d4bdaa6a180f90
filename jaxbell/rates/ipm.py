r"""A batched primal-dual interior-point method in JAX for the BFF node SDPs, with its certificate.

Every node SDP of :mod:`jaxbell.rates.bff` has one fixed shape per relaxation: minimise
``c . y`` over the scaled moments ``y`` subject to

.. math::  G_b(y) = F_{0,b} + \sum_k y_k F_{k,b} \succeq 0 \ (\text{each block } b),\qquad
           A y = b,\qquad H y \le 1,

where every ``F_{k,b}`` is a 0/1 matrix (moment ``k`` sits in a few entries of the moment
matrix), ``F_{0,b}`` holds the entries equal to 1, ``A y = b`` fixes the tested statistics (one
Bell value, four correlators, or eight marginals and correlators) and ``H`` selects the
diagonal moments with Eve letters (``y <= 1``). Only ``c`` (the Gauss-Radau node and the
preprocessing), ``A`` (the Bell coefficients) and ``b`` (the statistics) change from problem to
problem, so one compiled program solves a whole batch of points x nodes.

The method
----------
The HKM direction with Mehrotra's predictor-corrector, as in SDPT3 [TTT99] and CSDP [Bor99]
(the "dual" form there, with free variables ``y``), written from their papers: with primal
slack ``Z = G(y)``, ``s = 1 - H y``, dual ``X >= 0`` (one block per PSD block), ``lambda``,
``mu >= 0`` and ``nu = (<X, Z> + mu . s) / N``, each iteration solves the Newton system of the
perturbed optimality conditions ``X Z = sigma nu I``, ``mu_i s_i = sigma nu`` through its Schur
complement

.. math::  M_{kl} = \operatorname{tr}(F_k X F_l Z^{-1}) + \sum_i H_{ik} (\mu_i / s_i) H_{il},

symmetric positive definite, assembled from the 0/1 structure of the ``F_k`` (two dense matrix
products per block and a segment sum: no Kronecker products), factored by a dense Cholesky
decomposition; the few equalities ``A`` are eliminated through ``A M^{-1} A^T``. The predictor
(sigma = 0) sets ``sigma = (nu_aff / nu)^3``; the corrector adds the second-order term and
reuses the factorisation. Primal and dual step lengths are separate (infeasible start:
``y = 0``, ``Z`` and ``X`` multiples of I, :data:`INITIAL_X`), each the largest step keeping
the iterate in the cone (smallest eigenvalue of ``L^{-1} dX L^{-T}``) times 0.95. Near the
optimum the Schur complement becomes numerically singular; it is factored with the smallest
relative diagonal shift (1e-14 up to 1e-8) that factors, and each solve takes one step of
iterative refinement against the unshifted matrix.

Shapes are fixed and the iteration budget too: a ``while_loop`` runs until every problem of a
vmapped batch has met the tolerances or the budget, and a problem that has met them is frozen
(the per-problem convergence mask that ``vmap`` puts into the loop). A step that produces a
non-finite number is rejected and ends that problem's loop at its last good iterate.

Polish
------
The iteration keeps dual feasibility only as well as it solves its Newton systems: near the
optimum the Schur complement's condition number reaches ~1e19 and the dual residual creeps up
to ~1e-8, which the certificate pays for at up to the block size times the negative
eigenvalues it causes (~1e-6 bit at the first Gauss-Radau node of "global" points). Forcing
exact feasibility into every step stalls the dual steps instead (measured). So the returned
dual point gets one Newton step on stationarity alone, in the scaling W = (Z + 1e-3 I)^-1
(between the iteration's ill-conditioned Z^-1 and W = I, which leaves X's near-null space),
:data:`POLISH_SHIFT`, where the residual is large enough to matter (:data:`POLISH_ABOVE`);
both points are certified and the better bound kept.

Two implementations of one method
---------------------------------
On accelerators the loop above is one XLA program (``jit`` of ``vmap``), batches spread over
devices by :func:`jaxbell.sharding.map_blocks`. On a CPU the same iteration runs compiled
whole, one problem per call, problems split over the CPUs by threads
(:mod:`jaxbell.rates._ipm_cpu`, numba and LAPACK): XLA:CPU's gathers, batched LAPACK calls and
host callbacks had cost ~2.5 ms of CPU per SDP-iteration where the compiled loop takes ~1.2.
Both eliminate equalities that fix moments (four correlators, "full" statistics; every row
of ``A`` a unit vector, the same moments in every problem of a batch) from the Newton system
directly (the free moments' block of ``M``) instead of through ``A M^-1 A^T``, which loses
its definiteness near the optimum there. The compiled loop takes its step lengths from Sturm
bisection on a Householder tridiagonal form rather than a full eigenvalue problem. Both give
a dual point to the same certificate, computed in JAX; ``tests/test_ipm.py`` (slow) runs the
XLA program on the CPU one problem at a time against the compiled loop.

Rigour
------
The number returned is never the solver's objective: :func:`certificate` builds the same
rigorous bound as the Clarabel path (:func:`jaxbell.rates.bff._certify`; the module docstring
of :mod:`jaxbell.rates.bff` derives it) from the final dual point, in float64, in JAX: the
stationarity residual is spread over each moment's entries so that the weak-duality identity
holds exactly, and every negative eigenvalue of the resulting dual matrix is paid for with
the bound ``|G_uv| <= 1``, ``lambda_max(G) <= n`` on the feasible moment matrices, plus an
allowance for the eigensolver's backward error. Any dual point gives a valid bound this way,
converged or not; the solver's convergence only decides how tight it is.

References
----------
[TTT99] K. C. Toh, M. J. Todd and R. H. Tutuncu, "SDPT3 -- a MATLAB software package for
semidefinite programming", Optim. Methods Softw. 11, 545 (1999).
[Bor99] B. Borchers, "CSDP, a C library for semidefinite programming", Optim. Methods Softw.
11, 613 (1999).
[HRVW96] C. Helmberg, F. Rendl, R. J. Vanderbei and H. Wolkowicz, "An interior-point method
for semidefinite programming", SIAM J. Optim. 6, 342 (1996) (the HKM direction).
[Meh92] S. Mehrotra, "On the implementation of a primal-dual interior point method", SIAM J.
Optim. 2, 575 (1992).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "IPM_STATUS_FLAGS",
    "IpmOptions",
    "SdpStructure",
    "certificate",
    "solve",
]

#: The interior-point method's own status per problem (the solver status of the BFF results
#: uses the same codes, :data:`jaxbell.rates.bff.SOLVER_STATUS_FLAGS`).
IPM_STATUS_FLAGS = {
    0: "optimal",
    1: "optimal_inaccurate",
    2: "iteration_limit",
    3: "infeasible",
    4: "failed",
}

#: Relative diagonal shifts of the Schur complement tried in turn until its Cholesky
#: factorisation succeeds (the solves are then refined against the unshifted matrix).
SCHUR_SHIFTS = (1e-14, 1e-12, 1e-10, 1e-8)
#: Steps of iterative refinement of each Schur-complement solve against the unshifted matrix.
REFINEMENT_STEPS = 1
#: Fraction of the largest feasible step taken.
STEP_FRACTION = 0.95
#: A problem stops when its best iterate (smallest of gap, primal and dual residual) has not
#: improved for this many iterations; the best iterate is returned. Near the optimum the
#: numerically singular Schur complement lets the dual residual creep up again.
STALL_ITERATIONS = 4
#: ... counted only once the best score is below this (early iterations need not improve it).
STALL_BELOW = 1e-6
#: The starting point: ``y = 0``, ``Z = INITIAL_Z * I``, ``X = INITIAL_X * (1 + max|c|) * I``,
#: ``s = 1``, ``mu = 1 + max|c|``. Chosen on 448 key/bell node SDPs (m = 8, random tuples and
#: Bell values): 13.9 iterations on average against 16.1 from ``X = (1 + max|c|) I, Z = I``.
INITIAL_X = 0.1
INITIAL_Z = 2.0
#: The returned dual point is polished (one Newton step on stationarity alone,
#: :func:`jaxbell.rates._ipm_cpu._polish`) where its absolute dual residual times the largest
#: block size exceeds this (roughly the certificate's correction it would cost); both points
#: are certified and the better bound kept.
POLISH_ABOVE = 1e-8
#: The scaling of that step: W = (Z + POLISH_SHIFT I)^-1 in dX = sym(X F(dy) W).
POLISH_SHIFT = 1e-3
#: Absolute allowance (per node) for float64 rounding in forming the dual value.
ROUNDING_ALLOWANCE = 1e-12


@dataclasses.dataclass(frozen=True)
class IpmOptions:
    """Tolerances and budget of :func:`solve`.

    Attributes
    ----------
    tol_gap : float
        Relative duality gap ``|c.y - D| / (1 + |c.y| + |D|)`` to stop at (default 1e-8; the
        certified node values then lie within ~2e-7 of those at 1e-9, measured on 448 key/bell
        node SDPs, at 15% fewer iterations).
    tol_feas : float
        Largest primal residual (entries of ``G(y) - Z``, ``1 - H y - s``, ``b - A y``) and
        dual residual (relative to ``1 + max |c|``) to stop at (default 1e-8).
    max_iter : int
        Iteration budget (default 60; the node SDPs take 10-25).
    """

    tol_gap: float = 1e-8
    tol_feas: float = 1e-8
    max_iter: int = 60

    def __post_init__(self):
        for name in ("tol_gap", "tol_feas"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v < 1:
                raise ValueError(f"IpmOptions.{name} must lie in (0, 1), got {v!r}")
        it = self.max_iter
        if isinstance(it, bool) or not isinstance(it, (int, np.integer)) or not 1 <= it <= 1000:
            raise ValueError(f"IpmOptions.max_iter must be an integer in [1, 1000], got {it!r}")


@dataclasses.dataclass(frozen=True, eq=False)
class SdpStructure:
    """The fixed 0/1 structure of a family of block SDPs (one relaxation).

    Attributes
    ----------
    index : tuple of numpy.ndarray
        Per PSD block, an (n, n) integer matrix: the moment (column of ``y``) in each entry, or
        -1 where the entry is the constant 1 (``F_0``). Symmetric.
    n_vars : int
        Number of moments K.
    bounded : numpy.ndarray
        Columns with ``y_k <= 1`` (the matrix H).
    """

    index: tuple
    n_vars: int
    bounded: np.ndarray

    def __post_init__(self):
        counts = np.zeros(self.n_vars)
        for m in self.index:
            if m.ndim != 2 or m.shape[0] != m.shape[1] or not np.array_equal(m, m.T):
                raise ValueError("every block index must be a symmetric square matrix")
            np.add.at(counts, m[m >= 0], 1.0)
        if np.any(counts == 0):
            raise ValueError("every moment must appear in some block")
        object.__setattr__(self, "counts", counts)

    @classmethod
    def from_relaxation(cls, rel) -> SdpStructure:
        """From a :class:`jaxbell.rates.bff._Relaxation` (its sparse F and dense F0)."""
        index = []
        for f, f0 in zip(rel.F, rel.F0, strict=True):
            n = f0.shape[0]
            m = np.full(n * n, -1, dtype=np.int64)
            coo = f.tocoo()
            m[coo.row] = coo.col
            m = m.reshape(n, n)
            if not np.array_equal(m == -1, f0 == 1.0):
                raise ValueError("F0 must be 1 exactly where no moment sits")
            index.append(m)
        return cls(tuple(index), len(rel.index), np.asarray(rel.diag_columns, dtype=np.int64))

    @functools.cached_property
    def _device_data(self) -> tuple:
        """Per block: (n, const mask, flat moment index with K for constants, one-hot (n, n, K))."""
        k = self.n_vars
        blocks = []
        for m in self.index:
            n = m.shape[0]
            flat = np.where(m.ravel() < 0, k, m.ravel())
            onehot = np.zeros((n, n, k))
            ii, jj = np.nonzero(m >= 0)
            onehot[ii, jj, m[ii, jj]] = 1.0
            blocks.append((n, (m < 0).astype(np.float64), flat, onehot))
        return tuple(blocks)


# --- dense linear algebra: XLA's, the certificate's eigh on the CPU through NumPy -------------
#
# On the CPU, jaxlib's batched LAPACK kernels split a batch over XLA's intra-op thread pool and
# wait for it; two of them running at once inside a while_loop took both threads of a 2-CPU
# pool and deadlocked (jaxlib 0.10). The solver's loop no longer runs in XLA on the CPU
# (:mod:`jaxbell.rates._ipm_cpu`); the certificate's eigenvalue problems still go through
# NumPy's LAPACK in a host callback there.


def _np_eigh(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(a)
    ok = np.all(np.isfinite(a), axis=(-2, -1))
    e, v = np.full(a.shape[:-1], np.nan), np.full(a.shape, np.nan)
    if np.any(ok):
        e[ok], v[ok] = np.linalg.eigh(a[ok])
    return e, v


# float64 travels both ways as pairs of uint32: JAX converts a callback's arguments and results
# under the x64 setting of the thread that runs it, which inside a while_loop is an XLA
# worker's, not the caller's (x64_scope is thread-local): float64 would arrive rounded to
# float32 (a Schur complement with condition 1e8 then fails to factor)
def _as_words(a):
    a = np.ascontiguousarray(a, dtype=np.float64)
    return a.view(np.uint32).reshape(a.shape + (2,))


def _from_host(w):
    w = np.ascontiguousarray(w, dtype=np.uint32)
    return w.view(np.float64)[..., 0]


def _words(shape):
    return jax.ShapeDtypeStruct(tuple(shape) + (2,), jnp.uint32)


def _to_words(a):
    return jax.lax.bitcast_convert_type(a.astype(jnp.float64), jnp.uint32)


def _from_words(w):
    return jax.lax.bitcast_convert_type(w, jnp.float64)


#: Relative diagonal shifts tried in turn for the few equalities' matrix A M^-1 A^T (it is
#: positive definite, but near the optimum M^-1 spans many orders and rounding can make a
#: pivot negative: "full" statistics, eight equalities).
SMALL_SHIFTS = (0.0, 1e-14, 1e-12, 1e-10, 1e-8, 1e-6)


def _small_chol_inv(a):
    """Inverse of the Cholesky factor of a small SPD matrix (the few equalities), in plain jnp.

    Unrolled over its columns: no LAPACK call (and no host callback) for an E x E matrix. The
    matrix is symmetrised; the first of :data:`SMALL_SHIFTS` that factors is used.
    """
    n = a.shape[-1]
    a = 0.5 * (a + a.T)
    eye = jnp.eye(n, dtype=a.dtype)

    def factor(m):
        chol = jnp.zeros_like(m)
        for j in range(n):
            pivot = jnp.sqrt(m[j, j] - chol[j, :j] @ chol[j, :j])
            chol = chol.at[j, j].set(pivot)
            if j + 1 < n:
                below = m[j + 1 :, j] - chol[j + 1 :, :j] @ chol[j, :j]
                chol = chol.at[j + 1 :, j].set(below / pivot)
        return chol

    chol = factor(a)
    for shift in SMALL_SHIFTS[1:]:
        retry = factor(a + shift * jnp.diag(jnp.diag(a)))
        chol = jnp.where(jnp.all(jnp.isfinite(chol)), chol, retry)
    inv = jnp.zeros_like(a)
    for i in range(n):  # forward substitution, row by row
        inv = inv.at[i].set((eye[i] - chol[i, :i] @ inv[:i]) / chol[i, i])
    return inv


def _xla_chol(a, shifts=(0.0,)):
    """Lower Cholesky factor of one matrix in XLA, with the first diagonal shift that factors."""
    diag = jnp.diag(jnp.diag(a))
    chol = jnp.linalg.cholesky(a + shifts[0] * diag)
    for shift in shifts[1:]:
        retry = jnp.linalg.cholesky(a + shift * diag)
        chol = jnp.where(jnp.all(jnp.isfinite(chol)), chol, retry)
    return chol


def _xla_chol_inv(a, shifts=(0.0,)):
    """Inverse Cholesky factor of one matrix in XLA, with the first diagonal shift that factors."""
    eye = jnp.eye(a.shape[-1], dtype=a.dtype)
    return jax.scipy.linalg.solve_triangular(_xla_chol(a, shifts), eye, lower=True)


def _onehot_schur(block, x, zi, n_vars):
    """tr(F_k x F_l zi) for one block in XLA: dense products through the one-hot structure.

    ``block``: an entry of :attr:`SdpStructure._device_data` (as jnp arrays). The solver's way on
    accelerators; on the CPU :mod:`jaxbell.rates._ipm_cpu` assembles M inside its compiled loop.
    """
    n, _, flat, onehot = block
    q = jnp.einsum("ijl,jb->ilb", onehot, zi)
    r = jnp.einsum("ai,ilb->abl", x, q).reshape(n * n, n_vars)
    return jax.ops.segment_sum(r, flat, num_segments=n_vars + 1)[:n_vars]


def _linalg(host: bool):
    """(chol_invs, eig_mins, eigh): lists of matrices in one call each; vmapped.

    ``chol_invs(mats)``: the inverse Cholesky factor of each; ``eig_mins(mats)``: the smallest
    eigenvalue of each (symmetric); ``eigh``: one matrix. XLA's, except ``eigh`` on the CPU
    (the certificate's, the only part of this module's programs that runs there): a host
    callback to NumPy's LAPACK, as jaxlib's batched kernels can deadlock on a 2-CPU pool.
    """

    def chol_invs(mats):
        return tuple(_xla_chol_inv(a) for a in mats)

    def eig_mins(mats):
        return tuple(jnp.linalg.eigvalsh(a)[0] for a in mats)

    if not host:
        return chol_invs, eig_mins, jnp.linalg.eigh

    def eigh(a):
        def run(w):
            e, v = _np_eigh(_from_host(w))
            return _as_words(e), _as_words(v)

        e, v = jax.pure_callback(
            run, (_words(a.shape[:-1]), _words(a.shape)), _to_words(a), vmap_method="expand_dims"
        )
        return _from_words(e), _from_words(v)

    return chol_invs, eig_mins, eigh


def _systems(structure: SdpStructure, blocks):
    """(assemble, factor_solve, solve_again): the Schur complement system of one iteration, in XLA.

    ``assemble(xs, zis, d)`` is M from the blocks ``X``, ``Z^-1`` and ``d = mu / s``;
    ``factor_solve(xs, zis, d, rhs) -> (M^-1 rhs, system)`` assembles M, factors it and solves
    ``rhs`` (K, c); ``solve_again(system, rhs)`` solves another right-hand side with the same
    factor (any ``system`` = (matrix, its shifted Cholesky factor)). Every solve takes
    :data:`REFINEMENT_STEPS` steps of iterative refinement against the unshifted matrix. The
    solves are triangular substitutions, as on the CPU: multiplying by an explicit inverse of
    the factor (the earlier way here) is not backward stable, and near the optimum (condition
    ~1e19) it left dual residuals of ~1e-6 where the substitutions leave ~1e-9 (measured on a
    "global" node: the XLA loop then broke down after 42 iterations).
    """
    bounded = jnp.asarray(structure.bounded)

    def msolve(system, r):
        m, chol = system

        def solve(v):
            w = jax.scipy.linalg.solve_triangular(chol, v, lower=True)
            return jax.scipy.linalg.solve_triangular(chol, w, lower=True, trans="T")

        u = solve(r)
        for _ in range(REFINEMENT_STEPS):
            u = u + solve(r - m @ u)
        return u

    def assemble(xs, zis, d):
        m = sum(
            _onehot_schur(blk, x, zi, structure.n_vars)
            for blk, x, zi in zip(blocks, xs, zis, strict=True)
        )
        m = m.at[bounded, bounded].add(d)
        return 0.5 * (m + m.T)

    def factor_solve(xs, zis, d, rhs):
        m = assemble(xs, zis, d)
        system = (m, _xla_chol(m, SCHUR_SHIFTS))
        return msolve(system, rhs), system

    return assemble, factor_solve, msolve


# --- the solver -----------------------------------------------------------------------------


def _build(structure: SdpStructure, options: IpmOptions, host: bool, fix: tuple = ()):
    """The one-problem solver + certificate (jnp functions closed over the structure).

    ``fix``: the moments that every problem's ``A y = b`` fixes, one per row of ``A`` in
    order (each row a unit vector; :func:`jaxbell.rates._ipm_cpu.fixed_columns`); they are
    then eliminated from the Newton system directly, as on the CPU, instead of through
    ``A M^-1 A^T``. Empty: the general elimination.
    """
    chol_invs, eig_mins, eigh = _linalg(host)
    K = structure.n_vars
    bounded = jnp.asarray(structure.bounded)
    counts = jnp.asarray(structure.counts)
    blocks = [
        (n, jnp.asarray(const), jnp.asarray(flat), jnp.asarray(onehot))
        for n, const, flat, onehot in structure._device_data
    ]
    n_cone = sum(b[0] for b in blocks) + len(structure.bounded)
    tol_gap, tol_feas, max_iter = options.tol_gap, options.tol_feas, options.max_iter

    def g_of(blk, y, const=1.0):  # F0 * const + sum_k y_k F_k
        n, _, flat, _ = blk
        return jnp.concatenate([y, jnp.full((1,), const, y.dtype)])[flat].reshape(n, n)

    def adjoint(blk, x):  # <F_k, x> for every k
        _, _, flat, _ = blk
        return jax.ops.segment_sum(x.reshape(-1), flat, num_segments=K + 1)[:K]

    def step_lengths(z_linv, dzs, s, ds, x_linv, dxs, mu, dmu):
        """Largest primal / dual steps keeping Z, s / X, mu in their cones (inf: unbounded).

        For L L^T + a D >= 0 (L^-1 given): a <= -1 / lambda_min(L^-1 D L^-T); one eigenvalue
        call for every block of both sides.
        """
        ws = [li @ dm @ li.T for li, dm in zip(z_linv + x_linv, dzs + dxs, strict=True)]
        los = eig_mins(tuple(0.5 * (w + w.T) for w in ws))

        def largest(lows, v, dv):
            a = jnp.inf
            for lo in lows:
                a = jnp.minimum(a, jnp.where(lo < 0, -1.0 / lo, jnp.inf))
            r = jnp.where(dv < 0, -v / jnp.where(dv < 0, dv, -1.0), jnp.inf)
            return jnp.minimum(a, jnp.min(r, initial=jnp.inf))

        nz = len(z_linv)
        return largest(los[:nz], s, ds), largest(los[nz:], mu, dmu)

    assemble, factor_solve, solve_again = _systems(structure, blocks)
    fix_idx = jnp.asarray(fix, dtype=jnp.int32)
    free_idx = jnp.asarray(np.setdiff1d(np.arange(K), np.asarray(fix, dtype=np.int64)))

    def newton_system(xs, zis, d, A, h0):
        """(newton, newton0) of the Schur complement M of (xs, zis, d): ``newton(h, rb)`` is
        (dy, dlam) with M dy - A^T dlam = h, A dy = rb; ``newton0(rb)`` the same for ``h0``,
        solved with the factorisation. Fixed moments (``fix``) are eliminated directly (their
        steps are rb, the free ones from M's free block), other equalities through
        A M^-1 A^T."""
        if fix:
            m = assemble(xs, zis, d)
            m_ff = m[free_idx][:, free_idx]
            system = (m_ff, _xla_chol(m_ff, SCHUR_SHIFTS))

            def newton(h, rb):
                r = h[free_idx] - m[free_idx][:, fix_idx] @ rb
                u = solve_again(system, r[:, None])[:, 0]
                dy = jnp.zeros(K, h.dtype).at[free_idx].set(u).at[fix_idx].set(rb)
                return dy, m[fix_idx] @ dy - h[fix_idx]

            return newton, lambda rb: newton(h0, rb)
        sol, system = factor_solve(xs, zis, d, jnp.concatenate([A.T, h0[:, None]], axis=1))
        m_at, mh0 = sol[:, :-1], sol[:, -1]
        small_linv = _small_chol_inv(A @ m_at)

        def from_mh(mh, rb):
            dlam = small_linv.T @ (small_linv @ (rb - A @ mh))
            return mh + m_at @ dlam, dlam

        def newton(h, rb):
            return from_mh(solve_again(system, h[:, None])[:, 0], rb)

        return newton, lambda rb: from_mh(mh0, rb)

    def solve_one(c, A, b):
        dtype = c.dtype
        scale = 1.0 + jnp.max(jnp.abs(c))
        state = (
            jnp.zeros(K, dtype),
            tuple(jnp.eye(n, dtype=dtype) * (INITIAL_X * scale) for n, *_ in blocks),
            tuple(jnp.eye(n, dtype=dtype) * INITIAL_Z for n, *_ in blocks),
            jnp.ones(len(structure.bounded), dtype),
            jnp.zeros(b.shape[0], dtype),
            jnp.ones(len(structure.bounded), dtype) * scale,
        )

        def residuals(st):
            y, xs, zs, s, lam, mu = st
            rp = tuple(g_of(blk, y) - z for blk, z in zip(blocks, zs, strict=True))
            rs = 1.0 - y[bounded] - s
            rb = b - A @ y
            rc = c - sum(adjoint(blk, x) for blk, x in zip(blocks, xs, strict=True)) - A.T @ lam
            return rp, rs, rb, rc.at[bounded].add(mu)

        def measures(st):
            y, xs, zs, s, lam, mu = st
            rp, rs, rb, rc = residuals(st)
            pobj = c @ y
            dobj = b @ lam - jnp.sum(mu)
            dobj = dobj - sum(jnp.sum(blk[1] * x) for blk, x in zip(blocks, xs, strict=True))
            gap = jnp.abs(pobj - dobj) / (1.0 + jnp.abs(pobj) + jnp.abs(dobj))
            pinf = jnp.max(jnp.stack([jnp.max(jnp.abs(r)) for r in (*rp, rs, rb)]))
            dinf = jnp.max(jnp.abs(rc)) / scale
            return pobj, dobj, gap, pinf, dinf

        def iterate(carry):
            it, st, best, best_score, stall, _, _ = carry
            y, xs, zs, s, lam, mu = st
            rp, rs, rb, rc = residuals(st)
            nu = (sum(jnp.sum(x * z) for x, z in zip(xs, zs, strict=True)) + mu @ s) / n_cone
            linvs = chol_invs(tuple(zs) + tuple(xs))
            z_linv, x_linv = linvs[: len(zs)], linvs[len(zs) :]
            zis = tuple(li.T @ li for li in z_linv)
            d = mu / s

            def rhs(target, corr_x, corr_s):  # right-hand side of the Schur system
                h = -rc
                for blk, x, zi, r, cx in zip(blocks, xs, zis, rp, corr_x, strict=True):
                    h = h + adjoint(blk, target * zi - x - x @ r @ zi - cx)
                return h.at[bounded].add(-((target - corr_s) / s - mu - d * rs))

            zero = tuple(jnp.zeros_like(x) for x in xs)
            zero_s = jnp.zeros_like(s)
            h_pred = rhs(0.0, zero, zero_s)
            newton, newton_pred = newton_system(xs, zis, d, A, h_pred)

            def direction(target, corr_x, corr_s, step):
                dy, dlam = step
                dzs = tuple(g_of(blk, dy, 0.0) + r for blk, r in zip(blocks, rp, strict=True))
                dxs = []
                for x, zi, dz, cx in zip(xs, zis, dzs, corr_x, strict=True):
                    dx = target * zi - x - x @ dz @ zi - cx
                    dxs.append(0.5 * (dx + dx.T))
                ds = rs - dy[bounded]
                dmu = (target - corr_s) / s - mu - d * ds
                return dy, tuple(dxs), dzs, ds, dlam, dmu

            dy, dxs, dzs, ds, dlam, dmu = direction(0.0, zero, zero_s, newton_pred(rb))
            ap, ad = step_lengths(z_linv, dzs, s, ds, x_linv, dxs, mu, dmu)
            ap, ad = jnp.minimum(1.0, ap), jnp.minimum(1.0, ad)
            nu_aff = sum(
                jnp.sum((x + ad * dx) * (z + ap * dz))
                for x, dx, z, dz in zip(xs, dxs, zs, dzs, strict=True)
            )
            nu_aff = (nu_aff + (mu + ad * dmu) @ (s + ap * ds)) / n_cone
            sigma = jnp.clip((nu_aff / nu) ** 3, 0.0, 1.0)
            corr_x = tuple(dx @ dz @ zi for dx, dz, zi in zip(dxs, dzs, zis, strict=True))
            corr_s = dmu * ds
            h = rhs(sigma * nu, corr_x, corr_s)
            dy, dxs, dzs, ds, dlam, dmu = direction(sigma * nu, corr_x, corr_s, newton(h, rb))
            ap, ad = step_lengths(z_linv, dzs, s, ds, x_linv, dxs, mu, dmu)
            ap = jnp.minimum(1.0, STEP_FRACTION * ap)
            ad = jnp.minimum(1.0, STEP_FRACTION * ad)
            new = (
                y + ap * dy,
                tuple(x + ad * dx for x, dx in zip(xs, dxs, strict=True)),
                tuple(z + ap * dz for z, dz in zip(zs, dzs, strict=True)),
                s + ap * ds,
                lam + ad * dlam,
                mu + ad * dmu,
            )
            ok = jnp.isfinite(ap) & jnp.isfinite(ad)
            for leaf in jax.tree_util.tree_leaves(new):
                ok = ok & jnp.all(jnp.isfinite(leaf))
            new = jax.tree_util.tree_map(lambda a, o: jnp.where(ok, a, o), new, st)
            _, _, gap, pinf, dinf = measures(new)
            score = jnp.maximum(gap, jnp.maximum(pinf, dinf))
            better = ok & (score < best_score)
            best = jax.tree_util.tree_map(lambda a, o: jnp.where(better, a, o), new, best)
            best_score = jnp.where(better, score, best_score)
            stall = jnp.where(better | (best_score > STALL_BELOW), 0, stall + 1)
            converged = (gap < tol_gap) & (pinf < tol_feas) & (dinf < tol_feas)
            return it + 1, new, best, best_score, stall, converged, ~ok

        def running(carry):
            it, _, _, _, stall, converged, broken = carry
            return (~converged) & (~broken) & (stall < STALL_ITERATIONS) & (it < max_iter)

        inf = jnp.asarray(jnp.inf, dtype)
        carry = (jnp.int32(0), state, state, inf, jnp.int32(0), jnp.bool_(False), jnp.bool_(False))
        it, _, st, _, stall, loop_converged, broken = jax.lax.while_loop(running, iterate, carry)
        pobj, dobj, gap, pinf, dinf = measures(st)
        converged = (gap < tol_gap) & (pinf < tol_feas) & (dinf < tol_feas)
        # status: converged; stopped early but close; budget spent; diverging dual (the
        # constraint set is empty: the dual objective runs away while the primal stays
        # infeasible); anything else failed
        infeasible = (~converged) & (pinf > 1e-6) & (dobj > 1e3 * scale)
        close = (gap < 1e-6) & (pinf < 1e-6) & (dinf < 1e-6)
        status = jnp.where(
            converged,
            0,
            jnp.where(infeasible, 3, jnp.where(close, 1, jnp.where(it >= max_iter, 2, 4))),
        )
        y, xs, _, _, lam, mu = st
        xs2, lam2, mu2 = polish(st, c, A, b, dinf * scale)
        return {
            "y": y,
            "x": xs,
            "lam": lam,
            "mu": mu,
            "x_polished": xs2,
            "lam_polished": lam2,
            "mu_polished": mu2,
            "primal_value": pobj,
            "dual_value": dobj,
            "gap": gap,
            "primal_residual": pinf,
            "dual_residual": dinf,
            "iterations": it,
            "solver_status": status.astype(jnp.int8),
            # why the loop ended: 0 converged, 1 stalled, 2 a non-finite step, 3 the budget
            "stop_reason": jnp.where(
                loop_converged, 0, jnp.where(stall >= STALL_ITERATIONS, 1, jnp.where(broken, 2, 3))
            ).astype(jnp.int8),
        }

    n_max = max(blk[0] for blk in blocks)

    def polish(st, c, A, b, residual):
        """The polished dual point of :func:`jaxbell.rates._ipm_cpu._polish` (the same step:
        dX = sym(X F(dy) W), W = (Z + POLISH_SHIFT I)^-1, dmu = -(mu / (s + shift)) H dy with
        M_W dy - A^T dlam = rc), or the point itself where it is not needed or fails."""
        y, xs, _, s, lam, mu = st
        rc = c - sum(adjoint(blk, x) for blk, x in zip(blocks, xs, strict=True)) - A.T @ lam
        rc = rc.at[bounded].add(mu)
        gs = tuple(g_of(blk, y) + POLISH_SHIFT * jnp.eye(blk[0], dtype=y.dtype) for blk in blocks)
        ws = tuple(li.T @ li for li in chol_invs(gs))
        d = mu / (s + POLISH_SHIFT)
        dy, dlam = newton_system(xs, ws, d, A, rc)[1](jnp.zeros_like(b))
        new_xs = []
        for blk, x, w in zip(blocks, xs, ws, strict=True):
            dx = x @ g_of(blk, dy, 0.0) @ w
            new_xs.append(x + 0.5 * (dx + dx.T))
        new = (tuple(new_xs), lam - dlam, jnp.maximum(mu - d * dy[bounded], 0.0))
        ok = residual * n_max > POLISH_ABOVE
        for leaf in jax.tree_util.tree_leaves(new):
            ok = ok & jnp.all(jnp.isfinite(leaf))
        return jax.tree_util.tree_map(lambda a, o: jnp.where(ok, a, o), new, (xs, lam, mu))

    def certify_one(c, c0, A, b, xs, lam, mu):
        """Rigorous lower bound on min c.y + c0 from the dual point (xs, lam, mu)."""
        mu = jnp.maximum(mu, 0.0)
        base = c - sum(adjoint(blk, x) for blk, x in zip(blocks, xs, strict=True))
        resid = base.at[bounded].add(mu) - A.T @ lam
        spread = resid / counts
        dual = c0 + b @ lam - jnp.sum(mu)
        correction = jnp.zeros((), c.dtype)
        eps = jnp.finfo(c.dtype).eps
        for blk, x in zip(blocks, xs, strict=True):
            n, const, _, _ = blk
            s = 0.5 * (x + x.T) + g_of(blk, spread, 0.0)
            dual = dual - jnp.sum(s * const)
            e, v = eigh(s)
            weights = jnp.minimum(jnp.sum(jnp.abs(v), axis=0) ** 2, n)
            correction = correction + jnp.sum(jnp.where(e < 0, -e * weights, 0.0))
            correction = correction + 16.0 * n * eps * jnp.max(jnp.abs(e)) * n
        correction = correction + ROUNDING_ALLOWANCE
        return dual - correction, dual, correction

    return solve_one, certify_one


@functools.lru_cache(maxsize=16)
def _programs(structure: SdpStructure, options: IpmOptions, platform: str = "cpu", fix=()):
    solve_one, certify_one = _build(structure, options, host=platform == "cpu", fix=tuple(fix))

    def run(c, c0, A, b):
        out = solve_one(c, A, b)
        first = certify_one(c, c0, A, b, out["x"], out["lam"], out["mu"])
        second = certify_one(c, c0, A, b, out["x_polished"], out["lam_polished"],
                             out["mu_polished"])  # fmt: skip
        take = _take_second(first, second)
        value, dual, corr = (jnp.where(take, b, a) for a, b in zip(first, second, strict=True))
        # the multipliers of the dual point whose bound is returned (the slope of the tangent
        # min-tradeoff function is built from them: it must belong to the same point)
        lam = jnp.where(take, out["lam_polished"], out["lam"])
        mu = jnp.where(take, out["mu_polished"], out["mu"])
        out = {k: v for k, v in out.items() if k != "x" and not k.endswith("_polished")}
        return out | {"value": value, "certified_dual": dual, "correction": corr, "lam": lam,
                      "mu": mu}  # fmt: skip

    return jax.jit(jax.vmap(run)), solve_one, certify_one


def solve(
    structure: SdpStructure,
    c: np.ndarray,
    c0: np.ndarray,
    A: np.ndarray,
    b: np.ndarray,
    *,
    options: IpmOptions | None = None,
    block: int = 16,
    devices: Any = None,
    progress: Any = None,
) -> dict[str, np.ndarray]:
    """Solve and certify a batch of node SDPs of one structure.

    Parameters
    ----------
    structure : SdpStructure
    c : array, shape (N, K)
        Objectives (scaled moments).
    c0 : array, shape (N,)
        Constant terms of the objectives.
    A : array, shape (N, E, K)
        Equality constraints.
    b : array, shape (N, E)
        Right-hand sides.
    options : IpmOptions, optional
    block : int
        Problems per device and call (memory grows linearly with it). One fixed size for every
        batch: a problem then gets the same bits alone and inside any batch (another block size
        is another compiled program, which rounds differently: 4e-10 measured between 8 and 32).
        16 pads one point's m - 1 = 7 node SDPs to 16, not 64, at ~15% of the throughput of 64
        on large batches (2-vCPU EPYC).
    devices
        As :func:`jaxbell.sharding.select_devices`.
    progress : tqdm bar or None
        Advanced by the number of problems after each call.

    Returns
    -------
    dict of numpy.ndarray, leading axis N
        ``value`` (certified lower bound on ``min c.y + c0``), ``certified_dual`` (the dual value
        before the correction), ``correction``, ``lam`` (N, E) and ``mu`` (the multipliers of
        the dual point that gave ``value``: the solver's or its polished one), ``y``,
        ``primal_value`` / ``dual_value`` (the solver's, without c0), ``gap``,
        ``primal_residual``, ``dual_residual``, ``iterations``, ``solver_status``
        (:data:`IPM_STATUS_FLAGS`).
    """
    from jaxbell._precision import x64_scope
    from jaxbell.sharding import map_blocks, select_devices

    options = options or IpmOptions()
    c = np.asarray(c, dtype=np.float64)
    c0 = np.asarray(c0, dtype=np.float64)
    A = np.asarray(A, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    devs = select_devices(devices)
    if devs[0].platform == "cpu":
        return _solve_cpu(structure, c, c0, A, b, options, block, devs, progress)
    n = c.shape[0]
    from jaxbell.rates._ipm_cpu import fixed_columns  # (pure NumPy)

    fix = tuple(int(k) for k in fixed_columns(A[0])) if n else ()
    if fix and not all(tuple(fixed_columns(a)) == fix for a in A):
        fix = ()  # the elimination needs the same fixed moments in every problem
    with x64_scope():
        program = _programs(structure, options, devs[0].platform, fix)[0]
        per_call = block * len(devs)
        outs = []
        for start in range(0, n, per_call):
            sl = slice(start, min(n, start + per_call))
            batched = (c[sl], c0[sl], A[sl], b[sl])
            outs.append(map_blocks(program, batched, block=block, devices=devs))
            if progress is not None:
                progress.update(sl.stop - sl.start)
    return {k: np.concatenate([o[k] for o in outs]) for k in outs[0]}


#: Problems per call of the compiled CPU solver (a progress bar advances after each).
CPU_CHUNK = 128


def _solve_cpu(structure, c, c0, A, b, options, block, devs, progress):
    """The CPU path of :func:`solve`: the compiled whole-loop solver of
    :mod:`jaxbell.rates._ipm_cpu` (threads over the problems), then the certificate in JAX
    from its dual points (the same jitted bound as on accelerators, in blocks of ``block``)."""
    from jaxbell._precision import x64_scope
    from jaxbell.rates import _ipm_cpu
    from jaxbell.sharding import map_blocks

    cpu = _cpu_structure(structure)
    constants = (SCHUR_SHIFTS, SMALL_SHIFTS, REFINEMENT_STEPS, STEP_FRACTION, STALL_ITERATIONS,
                 STALL_BELOW, INITIAL_X, INITIAL_Z, POLISH_ABOVE, POLISH_SHIFT)  # fmt: skip
    n = c.shape[0]
    outs = []
    with _one_blas_thread():
        for start in range(0, n, CPU_CHUNK):
            sl = slice(start, min(n, start + CPU_CHUNK))
            outs.append(_ipm_cpu.solve_batch(cpu, c[sl], A[sl], b[sl], options, constants))
            if progress is not None:
                progress.update(sl.stop - sl.start)
    blocks = range(len(structure.index))
    out = {k: np.concatenate([o[k] for o in outs]) for k in outs[0] if not k.startswith("x")}
    xs = tuple(np.concatenate([o["x"][i] for o in outs]) for i in blocks)
    xs2 = tuple(np.concatenate([o["x_polished"][i] for o in outs]) for i in blocks)
    lam2, mu2 = out.pop("lam_polished"), out.pop("mu_polished")
    with x64_scope():
        certify = _certify_program(structure)
        cert = map_blocks(certify, (c, c0, A, b, xs, out["lam"], out["mu"], xs2, lam2, mu2),
                          block=block, devices=devs)  # fmt: skip
    return out | {
        "value": cert["value"],
        "certified_dual": cert["certified_dual"],
        "correction": cert["correction"],
        "lam": cert["lam"],  # those of the dual point whose bound is returned
        "mu": cert["mu"],
    }


@functools.lru_cache(maxsize=16)
def _cpu_structure(structure: SdpStructure):
    from jaxbell.rates import _ipm_cpu

    return _ipm_cpu.CpuStructure(structure.index, structure.n_vars, structure.bounded)


@functools.lru_cache(maxsize=16)
def _certify_program(structure: SdpStructure):
    """The certificate of :func:`_build` for two dual points of each problem (the solver's and
    its polished one), the better kept with its multipliers; jitted and vmapped over problems
    (a dict out)."""
    certify_one = _programs(structure, IpmOptions(), "cpu")[2]

    def run(c, c0, A, b, xs, lam, mu, xs2, lam2, mu2):
        first = certify_one(c, c0, A, b, xs, lam, mu)
        second = certify_one(c, c0, A, b, xs2, lam2, mu2)
        take = _take_second(first, second)
        value, dual, corr = (jnp.where(take, b, a) for a, b in zip(first, second, strict=True))
        return {"value": value, "certified_dual": dual, "correction": corr,
                "lam": jnp.where(take, lam2, lam), "mu": jnp.where(take, mu2, mu)}  # fmt: skip

    return jax.jit(jax.vmap(run))


def _take_second(first, second):
    """Whether the second of two certificates (value, dual, correction) is the better bound
    (both are valid: a NaN one is never taken, and a NaN first gives way to a finite second)."""
    return jnp.isfinite(second[0]) & ((second[0] > first[0]) | ~jnp.isfinite(first[0]))


def _one_blas_thread():
    """One BLAS thread for NumPy's LAPACK in the host callbacks (CPU).

    The callbacks run one small factorisation per problem; OpenBLAS's own threads then only
    spin against XLA's (measured 9x the CPU time per 272 x 272 factorisation on 2 busy CPUs).
    """
    import contextlib

    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl is a dependency
        return contextlib.nullcontext()
    return threadpool_limits(1, user_api="blas")


def certificate(structure: SdpStructure, c, c0, A, b, x, lam, mu) -> tuple[float, float, float]:
    """(certified value, dual value, correction) of one dual point (``x``: tuple of blocks).

    The same bound as inside :func:`solve`, exposed for tests (a dual point from anywhere).
    """
    from jaxbell._precision import x64_scope

    with x64_scope():
        certify_one = _programs(structure, IpmOptions(), jax.default_backend())[2]
        out = jax.jit(certify_one)(
            jnp.asarray(c, jnp.float64),
            jnp.asarray(c0, jnp.float64),
            jnp.asarray(A, jnp.float64),
            jnp.asarray(b, jnp.float64),
            tuple(jnp.asarray(m, jnp.float64) for m in x),
            jnp.asarray(lam, jnp.float64),
            jnp.asarray(mu, jnp.float64),
        )
        return tuple(float(v) for v in out)
