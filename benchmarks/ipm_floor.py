"""Where the batched interior-point solver's time goes on a CPU, and the least it could take.

One run, one process. Builds the key/bell node SDPs of :mod:`jaxbell.rates.bff` (NPA level 2,
m Gauss-Radau nodes: 272 moments, PSD blocks 31 and 26) for random self-testing tuples and
measures, side by side:

* Clarabel per node SDP through the cvxpy path (``solver="CLARABEL"``, one process);
* the JAX solver (``solver="JAX"``, second call, so compiled): per point, per node SDP, its
  iterations, and so its time per SDP-iteration;
* the kernels one iteration cannot avoid, on a batch of ``--batch`` problems: the Schur
  complement ``M_kl = tr(F_k X F_l Z^-1)`` of both blocks in XLA from one-hot products and a
  segment sum (the solver's way on accelerators), in XLA from grouped outer products (the
  sparse formula: n^4 multiply-adds instead of n^3 K, but gathers), and by the compiled host
  kernel the solver uses on the CPU (:mod:`jaxbell.rates._ipm_cpu`); the Cholesky
  factorisation of M (272 x 272) by LAPACK's dpotrf through SciPy (one thread) and by
  jaxlib's batched kernel; the smallest eigenvalue of a 31 x 31 block (one step length);
* XLA's gather throughput on this CPU (ns per element gathered).

It prints the floor these allow: per node SDP, the solver's iterations x (dpotrf + the fastest
Schur assembly), with both CPUs busy, and so the largest speed-up over Clarabel that an
implementation built from these kernels could reach (everything else free).

    python benchmarks/ipm_floor.py --points 8 --clarabel 2 --batch 64
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from _machine import describe_machine  # noqa: E402


def _per_item(f, args, items, rep=3):
    f(*args)  # compile / warm up
    t = time.perf_counter()
    for _ in range(rep):
        out = f(*args)
        if hasattr(out, "block_until_ready"):
            out.block_until_ready()
    return (time.perf_counter() - t) / rep / items


def _problems(n_points, m, seed):
    import jaxbell as jb
    from jaxbell.rates import bff, ipm

    rng = np.random.default_rng(seed)
    th, ph, om = rng.uniform(0, np.pi, (3, n_points))
    with jb._precision.x64_scope():
        q = np.asarray(jb.quantum_bound(th, ph, om), dtype=float)
        lo = np.asarray(jb.local_bound(th, ph, om), dtype=float)
    eta = np.sign(q) * (lo + (np.abs(q) - lo) * rng.uniform(0.3, 0.95, n_points))
    captured = {}
    solve = ipm.solve

    def capture(structure, *args, **kwargs):
        captured["structure"] = structure
        out = solve(structure, *args, **kwargs)
        captured["iterations"] = out["iterations"]
        return out

    def run(solver):
        ipm.solve = capture
        try:
            t0 = time.perf_counter()
            res = bff.bff_entropy(th, ph, om, eta, kind="key", m=m, solver=solver,
                                  progress=False, processes=1)  # fmt: skip
            return res, time.perf_counter() - t0
        finally:
            ipm.solve = solve

    return run, captured


def _schur_kernels(structure, batch, seed):
    """(one-hot, grouped) Schur assembly functions of both blocks, jitted and vmapped."""
    import jax
    import jax.numpy as jnp

    from jaxbell.rates.ipm import _onehot_schur

    K = structure.n_vars
    onehot_blocks = [(n, *map(jnp.asarray, rest)) for n, *rest in structure._device_data]
    grouped_blocks = []
    for m in structure.index:
        n = m.shape[0]
        counts = np.bincount(m[m >= 0].ravel(), minlength=K)
        groups = {}
        for k in np.nonzero(counts)[0]:
            groups.setdefault(counts[k], []).append(k)
        entries = [np.array([np.flatnonzero(m.ravel() == k) for k in ks]) for ks in groups.values()]
        order = np.concatenate([np.array(ks) for ks in groups.values()])
        pos = np.full(K, len(order))
        pos[order] = np.arange(len(order))
        grouped_blocks.append((n, entries, pos))

    def onehot_schur(xs, zis):  # the solver's assembly on accelerators
        blocks = zip(onehot_blocks, xs, zis, strict=True)
        return sum(_onehot_schur(b, x, zi, K) for b, x, zi in blocks)

    def grouped_schur(xs, zis):
        total = 0.0
        for (n, entries, pos), x, zi in zip(grouped_blocks, xs, zis, strict=True):
            # W_l = sum over the entries (r, s) of moment l of X[:, r] Z^-1[s, :]
            w = jnp.concatenate(
                [jnp.einsum("akc,kcb->kab", x[:, e // n], zi[e % n, :]).reshape(len(e), n * n)
                 for e in entries]  # fmt: skip
            )
            # M_kl = sum over the entries (p, q) of moment k of W_l[p, q]
            mp = jnp.concatenate([w[:, e].sum(-1) for e in entries], axis=1)
            total = total + jnp.pad(mp, ((0, 1), (0, 1)))[pos][:, pos].T
        return total

    rng = np.random.default_rng(seed)
    xs, zis = [], []
    for m in structure.index:
        n = m.shape[0]
        a = rng.standard_normal((2, batch, n, n))
        xs.append(a[0] @ a[0].transpose(0, 2, 1) + np.eye(n))
        zis.append(a[1] @ a[1].transpose(0, 2, 1) + np.eye(n))
    one = jax.jit(jax.vmap(onehot_schur))
    grp = jax.jit(jax.vmap(grouped_schur))
    agree = float(np.max(np.abs(np.asarray(one(xs, zis)) - np.asarray(grp(xs, zis)))))
    return one, grp, (xs, zis), agree


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=8, help="points for the JAX solver")
    ap.add_argument("--clarabel", type=int, default=2, help="points for Clarabel")
    ap.add_argument("--m", type=int, default=8)
    ap.add_argument("--batch", type=int, default=64, help="problems per kernel batch")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", help="write the numbers here")
    args = ap.parse_args(argv)
    print(describe_machine(), file=sys.stderr)

    import jax
    import jax.numpy as jnp
    from scipy.linalg import lapack
    from threadpoolctl import threadpool_limits

    jax.config.update("jax_enable_x64", True)
    nodes = args.m - 1

    run, captured = _problems(max(args.points, args.clarabel), args.m, args.seed)
    run("JAX")  # compiles
    res, wall = run("JAX")
    iterations = float(np.mean(captured["iterations"]))
    jax_point = wall / res.value.size
    run_c, _ = _problems(args.clarabel, args.m, args.seed)
    _, wall_c = run_c("CLARABEL")
    clarabel_node = wall_c / args.clarabel / nodes
    structure = captured["structure"]

    one, grp, data, agree = _schur_kernels(structure, args.batch, args.seed)
    t_onehot = _per_item(one, data, args.batch)
    t_grouped = _per_item(grp, data, args.batch)

    K = structure.n_vars
    rng = np.random.default_rng(args.seed)
    a = rng.standard_normal((args.batch, K, K))
    spd = a @ a.transpose(0, 2, 1) / K + np.eye(K)
    with threadpool_limits(1, user_api="blas"):
        t_potrf = _per_item(lambda s: [lapack.dpotrf(x, lower=1) for x in s], (spd,), args.batch)
        n0 = structure.index[0].shape[0]
        sym = a[:, :n0, :n0] + a[:, :n0, :n0].transpose(0, 2, 1)
        t_eig = _per_item(np.linalg.eigvalsh, (sym,), args.batch)
    t_jax_chol = _per_item(jax.jit(jnp.linalg.cholesky), (spd,), args.batch)
    from jaxbell.rates import _ipm_cpu

    host = _ipm_cpu.CpuStructure(structure.index, K, structure.bounded)
    xs, zis = data
    d = np.ones(len(structure.bounded))
    with threadpool_limits(1, user_api="blas"):
        t_host = _per_item(
            lambda: [host.schur([x[i] for x in xs], [z[i] for z in zis], d)
                     for i in range(args.batch)], (), args.batch)  # fmt: skip

    src = jnp.asarray(rng.standard_normal((args.batch, 961, K)))
    idx = rng.integers(0, 961, 961)
    gather = jax.jit(jax.vmap(lambda w: w[idx]))
    t_gather = _per_item(gather, (src,), args.batch * 961 * K)

    per_iter_jax = jax_point / nodes / iterations
    floor_iter = t_potrf + min(t_onehot, t_grouped, t_host)
    floor_node = iterations * floor_iter / 2  # both CPUs busy, perfectly
    out = {
        "m": args.m,
        "batch": args.batch,
        "clarabel_s_per_node_sdp": clarabel_node,
        "jax_s_per_point": jax_point,
        "jax_s_per_node_sdp": jax_point / nodes,
        "jax_iterations_per_node": iterations,
        "jax_s_per_sdp_iteration": per_iter_jax,
        "schur_onehot_s": t_onehot,
        "schur_grouped_s": t_grouped,
        "schur_variants_max_abs_diff": agree,
        "schur_host_kernel_s": t_host,
        "lapack_dpotrf_272_s": t_potrf,
        "jaxlib_batched_cholesky_272_s": t_jax_chol,
        "eigvalsh_31_s": t_eig,
        "xla_gather_ns_per_element": t_gather * 1e9,
        "floor_s_per_node_sdp": floor_node,
        "max_ratio_over_clarabel": clarabel_node / floor_node,
        "ratio_now": clarabel_node / (jax_point / nodes),
    }
    for key, val in out.items():
        print(f"{key:>32}: {val:.4g}" if isinstance(val, float) else f"{key:>32}: {val}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)
    return out


if __name__ == "__main__":
    main()
