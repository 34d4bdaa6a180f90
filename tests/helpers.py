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
