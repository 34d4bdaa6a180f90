"""Independent references used by several test modules (NumPy / brute force, not jaxbell)."""

import itertools

import numpy as np

SX = np.array([[0, 1], [1, 0]], dtype=complex)
SY = np.array([[0, -1j], [1j, 0]], dtype=complex)
PSI = np.array([1, 0, 0, 1j], dtype=complex) / np.sqrt(2)  # (|00> + i|11>)/sqrt(2), eq. (6)


def coefficients_np(theta, phi, omega):
    """c[x, y] of eq. (2) written out directly from the paper's text."""
    c = np.empty(np.broadcast(theta, phi, omega).shape + (2, 2))
    ctp, cto = np.cos(theta + phi), np.cos(theta + omega)
    cp, co = np.cos(phi), np.cos(omega)
    c[..., 0, 0] = ctp * cto * co
    c[..., 0, 1] = -ctp * cto * cp
    c[..., 1, 0] = -cp * co * cto
    c[..., 1, 1] = cp * co * ctp
    return c


def deterministic_correlators():
    """The 16 local deterministic strategies: E[x, y] = a_x b_y, a, b in {+-1}^2."""
    out = []
    for a0, a1, b0, b1 in itertools.product((-1, 1), repeat=4):
        out.append(np.outer([a0, a1], [b0, b1]))
    return np.array(out, dtype=float)


def local_bound_bruteforce(c):
    """max over the 16 deterministic strategies of sum c E, for c of shape (..., 2, 2)."""
    det = deterministic_correlators()
    return np.max(np.einsum("...xy,kxy->...k", c, det), axis=-1)


def correlators_from_matrices(theta, phi, omega):
    """Tr[(A_x (x) B_y) |psi><psi|] from the matrices of eq. (6), one tuple."""
    obs = lambda a: np.cos(a) * SX + np.sin(a) * SY  # noqa: E731
    alice = [obs(0.0), obs(theta)]
    bob = [obs(phi), obs(omega)]
    return np.array([[np.real(PSI.conj() @ np.kron(a, b) @ PSI) for b in bob] for a in alice])


def run_python(code, *, host_devices=None, timeout=240, env=None):
    """Run ``code`` in a fresh Python (CPU only), optionally with ``host_devices`` forced CPU
    devices (``--xla_force_host_platform_device_count``); return the completed process.

    Raises AssertionError with the child's output when it fails.
    """
    import os
    import subprocess
    import sys

    child_env = dict(os.environ) | {"JAX_PLATFORMS": "cpu", "PYTHONWARNINGS": "ignore"}
    if host_devices is not None:
        flag = f"--xla_force_host_platform_device_count={host_devices}"
        child_env["XLA_FLAGS"] = f"{child_env.get('XLA_FLAGS', '')} {flag}".strip()
    child_env |= env or {}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout, env=child_env
    )
    assert out.returncode == 0, f"child failed ({out.returncode}):\n{out.stdout}\n{out.stderr}"
    return out


# --- references for rates below the quantum bound (NumPy / SciPy, independent of jaxbell) ----

SZ = np.array([[1, 0], [0, -1]], dtype=complex)


def entropy_np(rho):
    """Von Neumann entropy (bits) by numpy.linalg.eigvalsh."""
    lam = np.linalg.eigvalsh(rho)
    lam = lam[lam > 1e-300]
    return float(-np.sum(lam * np.log2(lam)))


def xz_observable(angle):
    """cos(a) Z + sin(a) X."""
    return np.cos(angle) * SZ + np.sin(angle) * SX


def projectors(observable):
    """Projectors onto the +1 (outcome 0) and -1 (outcome 1) eigenspaces of a +-1 observable."""
    eye = np.eye(observable.shape[0])
    return [(eye + observable) / 2, (eye - observable) / 2]


def purified_entropies(rho, alice, bob, x, y):
    """(H(A|X=x,E), H(AB|X=x,Y=y,E)) in bits, by purifying rho_AB onto E explicitly.

    |psi> = sum_k sqrt(lam_k) |v_k>_AB |k>_E; measure, form the classical-quantum states and
    take S(XE) - S(E): no use of the dephasing formula S(Delta(rho)) - S(rho).
    """
    lam, vec = np.linalg.eigh(rho)
    lam = np.clip(lam, 0, None)
    psi = (vec * np.sqrt(lam)[None, :]).reshape(2, 2, 4)  # [a, b, e]
    pa, pb = projectors(alice[x]), projectors(bob[y])
    # Eve's (subnormalised) states after Alice's outcome a, and after (a, b)
    rho_e = np.einsum("abe,abf->ef", psi, psi.conj())
    blocks_a = []
    for p in pa:
        phi = np.einsum("ij,jbe->ibe", p, psi)
        blocks_a.append(np.einsum("abe,abf->ef", phi, phi.conj()))
    blocks_ab = []
    for p in pa:
        for q in pb:
            phi = np.einsum("ij,kl,jle->ike", p, q, psi)
            blocks_ab.append(np.einsum("abe,abf->ef", phi, phi.conj()))

    def block_diag(blocks):
        n = blocks[0].shape[0]
        out = np.zeros((n * len(blocks),) * 2, dtype=complex)
        for i, b in enumerate(blocks):
            out[i * n : (i + 1) * n, i * n : (i + 1) * n] = b
        return out

    s_e = entropy_np(rho_e)
    return entropy_np(block_diag(blocks_a)) - s_e, entropy_np(block_diag(blocks_ab)) - s_e


def correlators_np(rho, alice, bob):
    return np.array([[np.real(np.trace(rho @ np.kron(a, b))) for b in bob] for a in alice])


def general_qubit_min_entropy(c, eta, *, kind="key", x=0, y=0, starts=8, seed=0):
    """min H over general two-qubit strategies with <B> = eta, by SciPy SLSQP (many starts).

    No symmetry reduction: rho = M M^dag / tr with M complex 4 x 4, measurements with Bloch
    vectors anywhere on the sphere; entropies by eigvalsh. A different method from jaxbell's
    (constrained SQP instead of supporting lines, full state space instead of the reduced one).
    Returns the least entropy found (bits) for a single strategy: the function g(eta) itself,
    not its convex envelope.
    """
    from scipy.optimize import minimize

    def obs(t, p):
        return np.sin(t) * np.cos(p) * SX + np.sin(t) * np.sin(p) * SY + np.cos(t) * SZ

    def unpack(z):
        m = (z[:16] + 1j * z[16:32]).reshape(4, 4)
        rho = m @ m.conj().T
        rho /= np.trace(rho).real
        alice = [obs(z[32], z[33]), obs(z[34], z[35])]
        bob = [obs(z[36], z[37]), obs(z[38], z[39])]
        return rho, alice, bob

    def terms(z):
        rho, alice, bob = unpack(z)
        bell = float(np.sum(c * correlators_np(rho, alice, bob)))
        pa = [np.kron(p, np.eye(2)) for p in projectors(alice[x])]
        if kind == "key":
            h = entropy_np(sum(p @ rho @ p for p in pa)) - entropy_np(rho)
        else:
            prob = np.array(
                [np.real(np.trace(rho @ np.kron(p, q))) for p in projectors(alice[x])
                 for q in projectors(bob[y])]
            )  # fmt: skip
            prob = prob[prob > 1e-300]
            h = float(-np.sum(prob * np.log2(prob))) - entropy_np(rho)
        return h, bell

    rng = np.random.default_rng(seed)
    best = np.inf
    for _ in range(starts):
        z0 = np.concatenate([rng.standard_normal(32), rng.uniform(0, np.pi, 8)])
        res = minimize(
            lambda z: terms(z)[0],
            z0,
            method="SLSQP",
            constraints=[{"type": "eq", "fun": lambda z: terms(z)[1] - eta}],
            options={"maxiter": 500, "ftol": 1e-12},
        )
        h, bell = terms(res.x)
        if abs(bell - eta) < 1e-8:
            best = min(best, h)
    return best


def pironio_entropy(chsh):
    """H(A|X=x,E) >= 1 - h((1 + sqrt((S/2)^2 - 1))/2), tight (Pironio et al. 2009), bits."""
    s = np.clip(np.asarray(chsh, dtype=float), 2.0, 2 * np.sqrt(2))
    q = (1 + np.sqrt(np.maximum((s / 2) ** 2 - 1, 0))) / 2
    return 1 - binary_entropy_np(q)


def binary_entropy_np(q):
    q = np.asarray(q, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = -(q * np.log2(q) + (1 - q) * np.log2(1 - q))
    return np.where((q <= 0) | (q >= 1), 0.0, out)


def noisy_strategy_entropy_np(theta, phi, omega, v, kind="key", x=0, y=0):
    """H(A|X=x,E) or H(AB|X=x,Y=y,E) of eq. (6) with visibility v, Eve holding the purification.

    Brute force: purify rho_AB = v |psi><psi| + (1 - v) 1/4 into E, measure, and take
    H(A'E) - H(E) of the classical-quantum state. An achievable value: the DI infimum at
    <B> = v eta^Q (or at the correlators v E) is at most this.
    """
    import scipy.linalg as sl

    rho = v * np.outer(PSI, PSI.conj()) + (1 - v) * np.eye(4) / 4
    lam, vec = np.linalg.eigh(rho)
    psi_abe = vec * np.sqrt(np.clip(lam, 0, None))  # |Psi> = sum_k sqrt(lam_k) |v_k>_AB |k>_E

    def projector(angle, outcome):
        obs = np.cos(angle) * SX + np.sin(angle) * SY
        return (np.eye(2) + (-1) ** outcome * obs) / 2

    alpha, beta = (0.0, theta)[x], (phi, omega)[y]
    blocks = []
    outcomes = [(a,) for a in (0, 1)] if kind == "key" else list(itertools.product((0, 1), (0, 1)))
    for o in outcomes:
        m_b = projector(beta, o[1]) if kind == "global" else np.eye(2)
        sub = np.kron(projector(alpha, o[0]), m_b) @ psi_abe  # (AB, E)
        blocks.append(sub.T @ sub.conj())  # Eve's unnormalised state given o
    return entropy_np(sl.block_diag(*blocks)) - entropy_np(sum(blocks))


def assert_labelled(ds):
    """Every variable has long_name and description; quantities have units; coordinates that
    label (strings, integer indices) have none, so xarray's plots do not print "[1]"."""
    for name, var in ds.variables.items():
        assert var.attrs.get("long_name") and var.attrs.get("description"), name
        is_label = name in ds.coords and var.dtype.kind in "USOiu"
        if is_label:
            assert "units" not in var.attrs, (name, var.attrs.get("units"))
        else:
            assert var.attrs.get("units"), name
