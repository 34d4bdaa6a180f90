"""Protocols and devices: behaviours p[a, b, x, y], their checks, and analytic references.

A *behaviour* is the table of probabilities p(ab|xy) of a Bell test, stored outcomes first as
``p[a, b, x, y]`` with shape (2, 2, 2, 2), or (2, 2, 2, 3) where Bob has a third, key-only
input y = 2 (the "aligned" protocol of Pironio et al. 2009). Outcome 0 is the +1 eigenvalue of
a +-1 observable, so E[x, y] = sum_ab (-1)^(a+b) p(ab|xy), as everywhere in jaxbell.

Device model (:func:`device_behaviour`): the strategy of eq. (6) -- |psi> = (|00> + i|11>)/sqrt2,
A_x = cos(alpha_x) X + sin(alpha_x) Y, B_y = cos(beta_y) X + sin(beta_y) Y with alpha = (0,
theta), beta = (phi, omega) -- with white noise (visibility v: the state mixed with 1/4, so
E -> v E and the marginals stay uniform) and detection efficiency eta of each party, a
no-click binned to outcome 0. A lossy detector measures the POVM {eta P_0 + (1 - eta) 1,
eta P_1}, i.e. the observable eta A + (1 - eta) 1; with m = 1 - eta and the uniform marginals of
the noisy state this gives

    p(00|xy) = [4 m + eta^2 (1 + v E_xy)] / 4,
    p(01|xy) = p(10|xy) = [2 eta m + eta^2 (1 - v E_xy)] / 4,
    p(11|xy) = eta^2 (1 + v E_xy) / 4,

every term non-negative (no cancellation as v E -> +-1; 1 -+ sin s is computed from
cos(s)^2 / (1 +- |sin s|)). Bob's key-only input measures B_2 = cos(pi/2 - alpha_x) X +
sin(pi/2 - alpha_x) Y, the observable perfectly correlated with Alice's A_x on |psi>
(E[x', 2] = cos(alpha_x' - alpha_x)); ``x`` picks Alice's key input, 0 by default.

Error correction (:func:`error_correction_cost`): H(A'|X=x, Y=y, B) of a behaviour, A' Alice's
outcome flipped with probability ``preprocessing`` (noisy preprocessing, Ho et al. 2020).

Analytic references for the CHSH expression (each cited where defined): the tight bound of
Pironio et al. (2009), its noisy-preprocessing extension by Ho et al. (2020), and the
asymmetric-CHSH bound of Woodhead, Acin & Pironio (2021).

References
----------
L. Wooltorton, P. Brown and R. Colbeck, Phys. Rev. Lett. 132, 210802 (2024), eq. (6).
S. Pironio, A. Acin, N. Brunner, N. Gisin, S. Massar and V. Scarani, New J. Phys. 11, 045021
(2009).
M. Ho, P. Sekatski, E. Y.-Z. Tan, R. Renner, J.-D. Bancal and N. Sangouard, Phys. Rev. Lett.
124, 230502 (2020), arXiv:2005.13015.
E. Woodhead, A. Acin and S. Pironio, Quantum 5, 443 (2021), arXiv:2007.16146.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jaxbell._checks import as_angle, as_angles, check_in_range, is_concrete, shown
from jaxbell.entropy import _h_small
from jaxbell.strategy import _angle_sums, _strategy_angles

__all__ = [
    "BOB_KEYS",
    "LAYOUTS",
    "NO_CLICKS",
    "asymmetric_chsh_entropy",
    "behaviour_correlators",
    "behaviour_marginals",
    "check_behaviour",
    "check_bob_key",
    "check_no_click",
    "check_preprocessing",
    "chsh_entropy",
    "chsh_key_rate",
    "device_behaviour",
    "error_correction_cost",
    "qubit_behaviour",
]

#: the values ``bob_key`` may take: None (best of Bob's test inputs), 0, 1, "aligned" (= 2)
BOB_KEYS = (None, 0, 1, "aligned", 2)

#: the trailing shapes of a behaviour p[a, b, x, y]: two inputs for Bob; his key-only input
#: y = 2; that input with the no-click kept as outcome b = 2
LAYOUTS = ((2, 2, 2, 2), (2, 2, 2, 3), (2, 3, 2, 3))

#: default tolerance of :func:`check_behaviour` (negativity, normalisation, no-signalling)
BEHAVIOUR_ATOL = 1e-9


# --- keyword checks shared by the rate functions ------------------------------------------------


def check_bob_key(bob_key):
    """``bob_key`` as None, 0, 1 or 2 ("aligned" -> 2); ValueError naming the argument."""
    if bob_key is None:
        return None
    if isinstance(bob_key, str):
        if bob_key == "aligned":
            return 2
    elif not isinstance(bob_key, bool) and isinstance(bob_key, (int, np.integer)):
        if int(bob_key) in (0, 1, 2):
            return int(bob_key)
    raise ValueError(
        "bob_key must be None (the best of Bob's test inputs), 0 or 1 (that test input), or "
        f"'aligned' / 2 (a key-only input measuring Alice's key observable); got {bob_key!r}"
    )


def check_preprocessing(preprocessing) -> float:
    """A flip probability p in [0, 1/2] as a Python float; ValueError naming the argument."""
    if isinstance(preprocessing, str):
        raise ValueError(
            f"preprocessing must be a flip probability in [0, 1/2]; got {preprocessing!r} "
            "('optimal' is accepted by the key rates and thresholds -- noisy_key_rate, "
            "observed_key_rate, critical_visibility, critical_efficiency -- not here)"
        )
    if isinstance(preprocessing, bool) or not isinstance(
        preprocessing, (int, float, np.integer, np.floating)
    ):
        raise ValueError(
            f"preprocessing must be a flip probability in [0, 1/2]; got {shown(preprocessing)}"
        )
    p = float(preprocessing)
    if not (0.0 <= p <= 0.5):
        raise ValueError(f"preprocessing must lie in [0, 1/2] (a flip probability); got {shown(p)}")
    return p


def _check_key_input(x) -> int:
    if isinstance(x, bool) or not isinstance(x, (int, np.integer)) or x not in (0, 1):
        raise ValueError(f"x must be 0 or 1 (Alice's key input), got {shown(x)}")
    return int(x)


# --- the device model ---------------------------------------------------------------------------


def _one_minus_plus(s):
    """(1 - sin s, 1 + sin s), each without cancellation (cos^2 / (1 + |sin|) for the small one)."""
    e = jnp.sin(s)
    big = 1.0 + jnp.abs(e)
    small = jnp.cos(s) ** 2 / big
    return jnp.where(e >= 0, small, big), jnp.where(e >= 0, big, small)


@jax.jit
def _device_behaviour(theta, phi, omega, visibility, efficiency, aligned_angle):
    """p[..., a, b, x, y]; ``aligned_angle`` NaN: two inputs for Bob, else beta_2 (radians)."""
    alpha, beta = _strategy_angles(theta, phi, omega)
    if aligned_angle is not None:
        beta = jnp.concatenate(
            [beta, jnp.broadcast_to(aligned_angle, beta.shape[:-1])[..., None]], -1
        )
    s = _angle_sums(alpha, beta)  # (..., 2, ny)
    v = jnp.asarray(visibility, s.dtype)[..., None, None]
    eta = jnp.asarray(efficiency, s.dtype)[..., None, None]
    minus, plus = _one_minus_plus(s)
    m = 1.0 - eta
    same = (1.0 - v) + v * plus  # 1 + v E
    diff = (1.0 - v) + v * minus  # 1 - v E
    p11 = eta * eta * same / 4.0
    p00 = m + p11
    p01 = (2.0 * eta * m + eta * eta * diff) / 4.0
    row0 = jnp.stack([p00, p01], -3)  # b axis
    row1 = jnp.stack([p01, p11], -3)
    return jnp.stack([row0, row1], -4)  # (..., a, b, x, y)


def device_behaviour(
    theta: ArrayLike,
    phi: ArrayLike,
    omega: ArrayLike,
    *,
    visibility: ArrayLike = 1.0,
    efficiency: ArrayLike = 1.0,
    bob_key=None,
    x: int = 0,
) -> jax.Array:
    r"""p[a, b, x, y] of the strategy of eq. (6) with white noise and detection efficiency.

    The state |psi> = (|00> + i|11>)/sqrt2 mixed with white noise (weight 1 - v), measured as in
    eq. (6); each party's detector clicks with probability ``efficiency``, and a no-click is
    binned to outcome 0 (the +1 outcome). See the module docstring for the closed form.

    Pure and jit/vmap/grad-friendly in the angles, ``visibility`` and ``efficiency``
    (value checks run only on concrete inputs); float64 where JAX's x64 mode is on.

    Parameters
    ----------
    theta, phi, omega : array_like
        The tuple of eq. (2), radians; broadcast with ``visibility`` and ``efficiency``.
    visibility : array_like
        v in [0, 1] (E -> v E).
    efficiency : array_like
        Detection efficiency eta in (0, 1] of each party.
    bob_key : None, 0, 1, "aligned" or 2
        With "aligned" (or 2) Bob has a third, key-only input y = 2 measuring the observable
        perfectly correlated with Alice's key observable A_x on |psi>; the behaviour then has
        shape (..., 2, 2, 2, 3). None, 0 or 1: Bob's two test inputs only (shape
        (..., 2, 2, 2, 2)).
    x : {0, 1}
        Alice's key input, the one Bob's key-only input is aligned with (default 0, used only
        with ``bob_key="aligned"``).

    Returns
    -------
    jax.Array
        Shape ``broadcast_shape + (2, 2, 2, 2)`` (or ``(2, 2, 2, 3)``) indexed
        ``[..., a, b, x, y]``: probabilities, normalised for each (x, y).

    References
    ----------
    Eq. (6) of Wooltorton, Brown & Colbeck, PRL 132, 210802 (2024); the aligned key input of
    Pironio et al., New J. Phys. 11, 045021 (2009).
    """
    key = check_bob_key(bob_key)
    xk = _check_key_input(x)
    t, p, w = as_angles(theta, phi, omega)
    check_in_range(visibility, "visibility", 0.0, 1.0)
    check_in_range(efficiency, "efficiency", 0.0, 1.0, closed=(False, True))
    dtype = t.dtype
    v = jnp.asarray(visibility, dtype)
    eta = jnp.asarray(efficiency, dtype)
    shape = jnp.broadcast_shapes(t.shape, v.shape, eta.shape)
    t, p, w, v, eta = (jnp.broadcast_to(a, shape) for a in (t, p, w, v, eta))
    aligned = None
    if key == 2:
        alpha_x = jnp.zeros_like(t) if xk == 0 else t
        aligned = jnp.pi / 2 - alpha_x  # sin(alpha_x' + pi/2 - alpha_x) = cos(alpha_x' - alpha_x)
    return _device_behaviour(t, p, w, v, eta, aligned)


# --- checks and derived quantities of a behaviour ---------------------------------------------


#: what becomes of a no-click on Bob's key input: binned to outcome 0, or kept as outcome 2
NO_CLICKS = ("bin", "keep")


def check_no_click(no_click) -> str:
    """``no_click`` as "bin" or "keep"; ValueError naming the argument."""
    if not isinstance(no_click, str) or no_click not in NO_CLICKS:
        raise ValueError(
            "no_click must be 'bin' (a no-click on Bob's key input counts as outcome 0) or "
            f"'keep' (it is Bob's third outcome b = 2); got {no_click!r}"
        )
    return no_click


def _qubit_angles(value, name: str, count: tuple[int, ...]) -> jax.Array:
    arr = as_angle(value, name)
    if arr.ndim < 1 or arr.shape[-1] not in count:
        want = " or ".join(str(c) for c in count)
        raise ValueError(
            f"{name} must end in an axis of {want} measurement angles (radians in the X-Z "
            f"plane, one per input); got shape {arr.shape}"
        )
    return arr


@functools.partial(jax.jit, static_argnames=("keep",))
def _qubit_behaviour(s, alpha, beta, visibility, efficiency, keep):
    """p[..., a, b, x, y] of :func:`qubit_behaviour` (traceable, differentiable)."""
    c2, s2 = jnp.cos(2.0 * s), jnp.sin(2.0 * s)
    v = visibility
    # <A_x>, <B_y>, <A_x B_y> of cos s|00> + sin s|11> with A = cos a Z + sin a X
    ea = v[..., None] * jnp.cos(alpha) * c2[..., None]  # (..., x)
    eb = v[..., None] * jnp.cos(beta) * c2[..., None]  # (..., y)
    ca, sa = jnp.cos(alpha)[..., :, None], jnp.sin(alpha)[..., :, None]
    cb, sb = jnp.cos(beta)[..., None, :], jnp.sin(beta)[..., None, :]
    eab = v[..., None, None] * (ca * cb + sa * sb * s2[..., None, None])  # (..., x, y)
    sign = jnp.asarray([1.0, -1.0], eab.dtype)
    ideal = (
        1.0
        + sign[:, None, None, None] * ea[..., None, None, :, None]
        + sign[None, :, None, None] * eb[..., None, None, None, :]
        + (sign[:, None] * sign[None, :])[..., None, None] * eab[..., None, None, :, :]
    ) / 4.0  # (..., a, b, x, y)
    pa = (1.0 + sign[:, None] * ea[..., None, :]) / 2.0  # (..., a, x)
    pb = (1.0 + sign[:, None] * eb[..., None, :]) / 2.0  # (..., b, y)
    eta = efficiency[..., None, None, None, None]
    m = 1.0 - eta
    zero = jnp.asarray([1.0, 0.0], eab.dtype)
    click_a = pa[..., :, None, :, None]  # Bob lost, Alice clicked: (..., a, 1, x, 1)
    click_b = pb[..., None, :, None, :]
    both = eta * eta * ideal
    alice_only = eta * m * click_a  # Bob's no-click
    bob_only = m * eta * zero[:, None, None, None] * click_b  # Alice's no-click, binned to 0
    lost = alice_only + m * m * zero[:, None, None, None]  # Bob lost: (..., a, 1, x, 1)
    binned = both + bob_only + zero[None, :, None, None] * lost
    if not keep:
        return binned
    kept_b = both + bob_only  # Bob clicked
    lost = jnp.broadcast_to(lost, kept_b.shape[:-3] + (1,) + kept_b.shape[-2:-1] + (1,))
    key = jnp.concatenate([kept_b[..., 2:], lost], -3)  # (..., a, 3, x, 1)
    test = jnp.concatenate([binned[..., :2], jnp.zeros_like(binned[..., :1, :, :2])], -3)
    return jnp.concatenate([test, key], -1)


def qubit_behaviour(
    state_angle: ArrayLike,
    alice_angles: ArrayLike,
    bob_angles: ArrayLike,
    *,
    visibility: ArrayLike = 1.0,
    efficiency: ArrayLike = 1.0,
    no_click: str = "bin",
) -> jax.Array:
    r"""p[..., a, b, x, y] of a lossy two-qubit device with a partially entangled state.

    The state cos(s)|00> + sin(s)|11> (s = ``state_angle``) mixed with white noise,
    rho = v |psi><psi| + (1 - v) 1/4; Alice's observables A_x = cos(a_x) Z + sin(a_x) X and Bob's
    B_y = cos(b_y) Z + sin(b_y) X, outcome 0 the +1 eigenvalue (the convention of the published
    DI-rate code: Brown, Fawzi & Fawzi 2024; Ho et al. 2020). Each party detects with
    probability ``efficiency`` (independently of the outcome); a no-click is binned to outcome 0,
    except on Bob's key input y = 2 with ``no_click="keep"``, where it is his third outcome
    b = 2 (which only the error-correction cost H(A|B) sees; b = 2 has probability 0 on the
    test inputs y = 0, 1).

    Parameters
    ----------
    state_angle : array_like
        s in [0, pi/2], radians (s = pi/4: maximally entangled; 0, pi/2: product states).
    alice_angles : array_like
        (..., 2): Alice's angles a_0, a_1 in the X-Z plane, radians.
    bob_angles : array_like
        (..., 3): Bob's angles b_0, b_1 (test inputs) and b_2 (key-only input), radians; or
        (..., 2) without the key input (then ``no_click`` must be "bin").
    visibility : array_like
        v in [0, 1].
    efficiency : array_like
        Detection efficiency in (0, 1] of each party.
    no_click : {"bin", "keep"}
        What a no-click on Bob's key input becomes.

    Returns
    -------
    jax.Array
        Shape (..., 2, 2, 2, 3) (``"bin"``; (..., 2, 2, 2, 2) with two Bob angles) or
        (..., 2, 3, 2, 3) (``"keep"``), the leading axes broadcast from the arguments.

    References
    ----------
    M. Ho et al., Phys. Rev. Lett. 124, 230502 (2020); E. Woodhead, A. Acin and S. Pironio,
    Quantum 5, 443 (2021); P. Brown, H. Fawzi and O. Fawzi, Quantum 8, 1445 (2024).
    """
    keep = check_no_click(no_click) == "keep"
    s = as_angle(state_angle, "state_angle")
    check_in_range(s, "state_angle", 0.0, math.pi / 2)
    alpha = _qubit_angles(alice_angles, "alice_angles", (2,))
    beta = _qubit_angles(bob_angles, "bob_angles", (3,) if keep else (2, 3))
    if keep and beta.shape[-1] != 3:  # pragma: no cover - caught above
        raise ValueError("no_click='keep' needs Bob's key input: bob_angles of shape (..., 3)")
    v = jnp.asarray(visibility, dtype=s.dtype) if is_concrete(visibility) else visibility
    eff = jnp.asarray(efficiency, dtype=s.dtype) if is_concrete(efficiency) else efficiency
    for name, val, closed in (("visibility", v, (True, True)), ("efficiency", eff, (False, True))):
        if is_concrete(val) and not bool(np.all(np.isfinite(np.asarray(val)))):
            raise ValueError(f"{name} must be a finite number in the stated range; got {val!r}")
        check_in_range(val, name, 0.0, 1.0, closed=closed)
    lead = jnp.broadcast_shapes(
        jnp.shape(s), alpha.shape[:-1], beta.shape[:-1], jnp.shape(v), jnp.shape(eff)
    )
    dtype = jnp.result_type(s, alpha, beta, v, eff)
    if not jnp.issubdtype(dtype, jnp.floating):
        dtype = jnp.zeros(()).dtype
    args = (
        jnp.broadcast_to(s, lead).astype(dtype),
        jnp.broadcast_to(alpha, lead + (2,)).astype(dtype),
        jnp.broadcast_to(beta, lead + beta.shape[-1:]).astype(dtype),
        jnp.broadcast_to(v, lead).astype(dtype),
        jnp.broadcast_to(eff, lead).astype(dtype),
    )
    return _qubit_behaviour(*args, keep=keep)


def _index(prefix, idx, tail: str) -> str:
    lead = ", ".join(str(int(i)) for i in idx)
    return f"{prefix}[{lead + ', ' if lead else ''}{tail}]"


def check_behaviour(
    probabilities: ArrayLike, name: str = "probabilities", *, atol: float = BEHAVIOUR_ATOL
) -> np.ndarray:
    """Check that ``probabilities`` is a no-signalling behaviour p[..., a, b, x, y].

    Accepts trailing shapes (2, 2, 2, 2), (2, 2, 2, 3) (Bob's key-only input y = 2) and
    (2, 3, 2, 3) (that input with his no-click kept as b = 2, zero on y = 0, 1), with any
    leading batch axes. Checks: real and finite; every entry >= -atol; sum_ab p(ab|xy) = 1
    within ``atol`` for every (x, y); Alice's marginal p(a|x) the same for every y and Bob's
    p(b|y) the same for every x, within ``atol`` (no-signalling both ways).

    Parameters
    ----------
    probabilities : array_like
        The behaviour, outcomes first.
    name : str
        The argument's name in error messages.
    atol : float
        Absolute tolerance of every check (default 1e-9; raise it for measured frequencies,
        e.g. to a few standard deviations of the statistical error).

    Returns
    -------
    numpy.ndarray
        The behaviour as float64, small negative entries (>= -atol) left as they are.

    Raises
    ------
    TypeError
        Not a real numeric array.
    ValueError
        Wrong shape, non-finite, negative, not normalised or signalling; the message names the
        argument and the offending entry, e.g. ``probabilities[:, :, 1, 0] sums to 0.93``.
    """
    if not is_concrete(probabilities):
        raise TypeError(f"{name} must be a concrete array (check_behaviour does not trace)")
    arr = np.asarray(probabilities)
    if arr.dtype == object or not (
        np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)
    ):
        raise TypeError(f"{name} must be a real array of probabilities, got dtype {arr.dtype}")
    if arr.ndim < 4 or arr.shape[-4:] not in LAYOUTS:
        raise ValueError(
            f"{name} must end in shape (2, 2, 2, 2) or (2, 2, 2, 3), or (2, 3, 2, 3), indexed "
            "[a, b, x, y] (y = 2: Bob's key-only input; b = 2: his no-click there, kept); got "
            f"shape {arr.shape}"
        )
    if not (isinstance(atol, (int, float, np.floating)) and math.isfinite(atol) and atol >= 0):
        raise ValueError(f"atol must be a finite number >= 0, got {atol!r}")
    p = arr.astype(np.float64)
    bad = ~np.isfinite(p)
    if np.any(bad):
        i = np.argwhere(bad)[0]
        raise ValueError(
            f"{_index(name, i[:-4], ', '.join(map(str, i[-4:])))} is {float(p[tuple(i)])}; "
            "probabilities must be finite"
        )
    neg = p < -atol
    if np.any(neg):
        i = np.argwhere(neg)[0]
        raise ValueError(
            f"{_index(name, i[:-4], ', '.join(map(str, i[-4:])))} is {p[tuple(i)]:.6g}, "
            f"negative beyond the tolerance {atol:g}"
        )
    if p.shape[-3] == 3:
        lost = np.abs(p[..., :, 2, :, :2]) > atol  # b = 2 exists on the key input only
        if np.any(lost):
            i = np.argwhere(lost)[0]
            raise ValueError(
                f"{_index(name, i[:-3], f'{i[-3]}, 2, {i[-2]}, {i[-1]}')} is "
                f"{p[(*i[:-2], 2, *i[-2:])]:.6g}: outcome b = 2 (the kept no-click) must have "
                "probability 0 on Bob's test inputs y = 0, 1"
            )
    total = p.sum(axis=(-4, -3))  # (..., x, y)
    off = np.abs(total - 1.0) > atol
    if np.any(off):
        i = np.argwhere(off)[0]
        raise ValueError(
            f"{_index(name, i[:-2], f':, :, {i[-2]}, {i[-1]}')} sums to {total[tuple(i)]:.10g}, "
            f"not 1 (within {atol:g}): p(ab|xy) must be normalised for every (x, y)"
        )
    alice = p.sum(axis=-3)  # (..., a, x, y)
    bob = p.sum(axis=-4)  # (..., b, x, y)
    for who, marg, axis, fixed in (("Alice", alice, -1, "y"), ("Bob", bob, -2, "x")):
        spread = marg.max(axis=axis) - marg.min(axis=axis)
        sig = spread > atol
        if np.any(sig):
            i = np.argwhere(sig)[0]
            out, inp = int(i[-2]), int(i[-1])
            if who == "Alice":
                what = f"p(a={out}|x={inp}) = sum_b {_index(name, i[:-2], f'{out}, :, {inp}, y')}"
            else:
                what = f"p(b={out}|y={inp}) = sum_a {_index(name, i[:-2], f':, {out}, x, {inp}')}"
            raise ValueError(
                f"{name} signals: {who}'s marginal {what} changes with {fixed} by "
                f"{spread[tuple(i)]:.6g} (more than {atol:g}); a behaviour must be no-signalling"
            )
    return p


def _as_behaviour(probabilities, name: str = "probabilities") -> jax.Array:
    """Shape check only (values may be traced): a floating array ending in (2, 2, 2, ny)."""
    p = jnp.asarray(probabilities)
    if p.ndim < 4 or p.shape[-4:] not in LAYOUTS:
        raise ValueError(
            f"{name} must end in shape (2, 2, 2, 2) or (2, 2, 2, 3), or (2, 3, 2, 3), indexed "
            f"[a, b, x, y]; got shape {p.shape}"
        )
    if not jnp.issubdtype(p.dtype, jnp.floating):
        p = p.astype(float)
    return p


def behaviour_test_inputs(probabilities):
    """The test inputs y = 0, 1 of a behaviour of any layout: p[..., a, b, x, y], shape
    (..., 2, 2, 2, 2) (the kept no-click b = 2 has probability 0 there and is dropped)."""
    return probabilities[..., :, :2, :, :2]


def behaviour_correlators(probabilities: ArrayLike) -> jax.Array:
    """E[..., x, y] = sum_ab (-1)^(a+b) p(ab|xy), shape (..., 2, 2) or (..., 2, 3).

    With the kept no-click (layout (2, 3, 2, 3)) the key input's E[x, 2] counts b = 2 as +1's
    partner of a = 0 (it is binned to outcome 0 for the correlator)."""
    p = _as_behaviour(probabilities)
    if p.shape[-3] == 3:
        p = jnp.concatenate([p[..., :, :1, :, :] + p[..., :, 2:, :, :], p[..., :, 1:2, :, :]], -3)
    sign = jnp.asarray([[1.0, -1.0], [-1.0, 1.0]], p.dtype)
    return jnp.einsum("ab,...abxy->...xy", sign, p)


def behaviour_marginals(probabilities: ArrayLike):
    """Alice's p(a|x) and Bob's p(b|y) of a (no-signalling) behaviour.

    Returns
    -------
    alice : jax.Array
        Shape (..., 2, 2) indexed [a, x], summed over b at y = 0.
    bob : jax.Array
        Shape (..., nb, ny) indexed [b, y], summed over a at x = 0 (nb = 3 with the kept
        no-click).
    """
    p = _as_behaviour(probabilities)
    return p[..., :, :, :, 0].sum(-3), p[..., :, :, 0, :].sum(-3)


def _conditional_entropy(joint):
    """H(A|B) of joint[..., a, b], bits, from the smaller of p(0, b), p(1, b): no cancellation."""
    pb = joint.sum(-2)  # (..., b)
    small = jnp.minimum(joint[..., 0, :], joint[..., 1, :])
    pos = pb > 0
    q = jnp.where(pos, small / jnp.where(pos, pb, 1.0), 0.0)
    return jnp.sum(jnp.where(pos, pb, 0.0) * _h_small(jnp.clip(q, 0.0, 0.5)), -1)


def error_correction_cost(
    probabilities: ArrayLike, x: int, y: int, *, preprocessing: ArrayLike = 0.0
) -> jax.Array:
    r"""H(A'|X=x, Y=y, B) of a behaviour, bits: the one-way error-correction cost per round.

    A' is Alice's outcome flipped with probability p = ``preprocessing``:
    p'(a', b) = (1 - p) p(a', b|xy) + p p(1 - a', b|xy). Computed as sum_b p(b) h(q_b) with q_b
    the smaller of p'(0|b), p'(1|b), so the cost keeps its relative precision as it tends to 0.

    Parameters
    ----------
    probabilities : array_like
        Behaviour p[..., a, b, x, y] (see :func:`check_behaviour`; not checked here, so that it
        can be traced).
    x, y : int
        Alice's key input and Bob's input (y = 2: his key-only input).
    preprocessing : array_like
        Flip probability in [0, 1/2], broadcast with the leading axes.

    References
    ----------
    I. Devetak and A. Winter, Proc. R. Soc. A 461, 207 (2005); noisy preprocessing: Ho et al.,
    Phys. Rev. Lett. 124, 230502 (2020).
    """
    p = _as_behaviour(probabilities)
    ny = p.shape[-1]
    _check_key_input(x)
    if isinstance(y, bool) or not isinstance(y, (int, np.integer)) or not 0 <= y < ny:
        raise ValueError(f"y must be an input of Bob in 0..{ny - 1}, got {y!r}")
    check_in_range(preprocessing, "preprocessing", 0.0, 0.5)
    joint = p[..., :, :, x, y]
    f = jnp.asarray(preprocessing, p.dtype)[..., None, None]
    flipped = (1.0 - f) * joint + f * joint[..., ::-1, :]
    return _conditional_entropy(flipped)


# --- analytic references ----------------------------------------------------------------------


def _sqrt(a):
    """sqrt of a >= 0 with a finite gradient at 0 (double-where)."""
    pos = a > 0
    return jnp.where(pos, jnp.sqrt(jnp.where(pos, a, 1.0)), 0.0)


def _phi(z2, one_minus_z2):
    """h((1 + z)/2) for z = sqrt(z2) in [0, 1], bits, given 1 - z^2 computed directly:
    (1 - z)/2 = (1 - z^2) / (2 (1 + z)) keeps its relative precision as z -> 1."""
    z = _sqrt(jnp.clip(z2, 0.0, 1.0))
    return _h_small(jnp.clip(one_minus_z2 / (2.0 * (1.0 + z)), 0.0, 0.5))


def _as_real(value, name):
    check_in_range(value, name, -math.inf, math.inf)
    a = jnp.asarray(value)
    return a if jnp.issubdtype(a.dtype, jnp.floating) else a.astype(float)


def chsh_entropy(chsh: ArrayLike, *, preprocessing: ArrayLike = 0.0) -> jax.Array:
    r"""The tight DI bound on H(A'|X=x, E) given the CHSH value S, bits.

    Without preprocessing (Pironio et al. 2009), for 2 <= |S| <= 2 sqrt 2,

    .. math:: H(A|E) \ge 1 - h\Big(\frac{1 + \sqrt{S^2/4 - 1}}{2}\Big);

    with Alice's bit flipped with probability p (Ho et al. 2020, eq. (4) of arXiv:2005.13015),

    .. math:: H(A'|E) \ge 1 - h\Big(\frac{1 + \sqrt{S^2/4 - 1}}{2}\Big)
              + h\Big(\frac{1 + \sqrt{1 - p(1-p)(8 - S^2)}}{2}\Big),

    which is h(p) at |S| = 2 (Eve knows A, not the flips), 1 at S = 2 sqrt 2, and 1 at p = 1/2.
    |S| <= 2 gives the value at |S| = 2 (a local model reaches it); |S| is clipped to
    2 sqrt 2 (no quantum strategy exceeds it).

    Parameters
    ----------
    chsh : array_like
        S = E00 + E01 + E10 - E11 (or any of its eight sign variants), dimensionless.
    preprocessing : array_like
        Flip probability p in [0, 1/2].

    References
    ----------
    S. Pironio et al., New J. Phys. 11, 045021 (2009); M. Ho et al., Phys. Rev. Lett. 124,
    230502 (2020).
    """
    s = jnp.abs(_as_real(chsh, "chsh"))
    check_in_range(preprocessing, "preprocessing", 0.0, 0.5)
    p = jnp.asarray(preprocessing, s.dtype)
    s = jnp.clip(s, 2.0, 2.0 * math.sqrt(2.0))
    gap = jnp.maximum(8.0 - s * s, 0.0)  # 4 (1 - z^2), 0 at Tsirelson's bound
    return (
        1.0
        - _phi(s * s / 4.0 - 1.0, gap / 4.0)
        + _phi(1.0 - p * (1.0 - p) * gap, p * (1.0 - p) * gap)
    )


def chsh_key_rate(chsh: ArrayLike, qber: ArrayLike, *, preprocessing: ArrayLike = 0.0) -> jax.Array:
    r"""DI key rate of the CHSH protocol with an aligned key input, bits per round.

    r = H(A'|E) - H(A'|B) with H(A'|E) of :func:`chsh_entropy` and, for a bit error rate Q
    between Alice's raw key and Bob's (symmetric errors), H(A'|B) = h(Q') with
    Q' = (1 - p) Q + p (1 - Q) after Alice's flips. At p = 0 this is Pironio et al.'s
    r = 1 - h((1 + sqrt(S^2/4 - 1))/2) - h(Q). Negative values are returned as they are.

    References
    ----------
    S. Pironio et al., New J. Phys. 11, 045021 (2009), eq. (12); M. Ho et al., Phys. Rev. Lett.
    124, 230502 (2020).
    """
    check_in_range(qber, "qber", 0.0, 1.0)
    h_e = chsh_entropy(chsh, preprocessing=preprocessing)
    q = jnp.asarray(qber, h_e.dtype)
    p = jnp.asarray(preprocessing, h_e.dtype)
    qf = (1.0 - p) * q + p * (1.0 - q)
    return h_e - _h_small(jnp.minimum(qf, 1.0 - qf))


def asymmetric_chsh_entropy(
    alpha: ArrayLike, value: ArrayLike, *, preprocessing: ArrayLike = 0.0
) -> jax.Array:
    r"""Woodhead-Acin-Pironio bound on H(A'_0|E) for the asymmetric CHSH expression, bits.

    S_alpha = alpha (E00 + E01) + E10 - E11, key from Alice's input 0 (the one weighted by
    alpha). For |alpha| >= 1, where the bound is tight and holds for all
    2|alpha| <= |S_alpha| <= 2 sqrt(1 + alpha^2), with z = sqrt(S_alpha^2/4 - alpha^2) and
    Alice's bit flipped with probability p,

    .. math:: H(A'_0|E) \ge 1 - h\Big(\frac{1 + z}{2}\Big)
              + h\Big(\frac{1 + \sqrt{(1 - 2p)^2 + 4p(1-p) z^2}}{2}\Big),

    which reduces to :func:`chsh_entropy` at alpha = 1. |S_alpha| below the local bound 2|alpha|
    gives the value there (h(p)); above 2 sqrt(1 + alpha^2) it is clipped. For |alpha| < 1 the
    paper's bound takes a different form and is not implemented: NaN.

    References
    ----------
    E. Woodhead, A. Acin and S. Pironio, Quantum 5, 443 (2021), arXiv:2007.16146 (the bound for
    |alpha| >= 1 with noisy preprocessing).
    """
    a = jnp.abs(_as_real(alpha, "alpha"))
    s = jnp.abs(_as_real(value, "value")).astype(a.dtype)
    check_in_range(preprocessing, "preprocessing", 0.0, 0.5)
    p = jnp.asarray(preprocessing, a.dtype)
    a_safe = jnp.maximum(a, 1.0)
    s = jnp.clip(s, 2.0 * a_safe, 2.0 * jnp.sqrt(1.0 + a_safe * a_safe))
    z2 = jnp.clip(s * s / 4.0 - a_safe * a_safe, 0.0, 1.0)
    one_minus = jnp.clip(1.0 + a_safe * a_safe - s * s / 4.0, 0.0, 1.0)  # 1 - z^2
    # 1 - [(1 - 2p)^2 + 4p(1 - p) z^2] = 4p(1 - p)(1 - z^2)
    w_minus = 4.0 * p * (1.0 - p) * one_minus
    out = 1.0 - _phi(z2, one_minus) + _phi(1.0 - w_minus, w_minus)
    return jnp.where(a >= 1.0, out, jnp.full_like(out, jnp.nan))
