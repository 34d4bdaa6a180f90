"""The protocol and the device as values: :class:`Protocol` and :class:`Device`.

A rate below the quantum bound depends on what the protocol does (Alice's key input, Bob's key
input, Alice's noisy preprocessing, what the test rounds constrain, which entropy) and on what
the device is (white-noise visibility, detection efficiency). Both are frozen values, checked
once where they are built (errors name the field), and passed down whole: every public rate
function takes ``protocol=`` and ``device=``, and its loose keywords (``x=``, ``bob_key=``,
``preprocessing=``, ``constraint=``, ``visibility``, ``efficiency=``) are a thin front door that
builds them (:func:`front_door`). Both are JAX pytrees: a :class:`Protocol` is static (no
leaves; it is hashable, so jitted code specialises on it), a :class:`Device` has its visibility
and efficiency as leaves.

    noisy_key_rate(theta, phi, omega,
                   protocol=Protocol(x=0, bob_key="aligned", preprocessing=0.1),
                   device=Device(visibility=0.97))

is the same call, bit for bit, as ``noisy_key_rate(theta, phi, omega, 0.97, x=0,
bob_key="aligned", preprocessing=0.1)``. The glossary of the fields is docs/architecture.md's.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import math
from collections.abc import Callable
from typing import Any

import jax
import numpy as np
from jax.typing import ArrayLike

from jaxbell._checks import as_real_array, check_in_range, shown
from jaxbell.rates.protocol import (
    check_bob_key,
    check_no_click,
    check_preprocessing,
    qubit_behaviour,
)

__all__ = ["CONSTRAINTS", "KINDS", "Device", "Protocol", "QubitDevice", "front_door"]

#: which entropy: H(A|X=x, E) ("key") or H(AB|X=x, Y=y, E) ("global")
KINDS = ("key", "global")
#: what a protocol's test rounds constrain: the one Bell value of the tuple, the four
#: correlators, or every p(ab|xy) (marginals included)
CONSTRAINTS = ("bell", "correlators", "full")

#: the fields of each value, in the order the front door reads keywords
PROTOCOL_FIELDS = ("kind", "x", "y", "bob_key", "preprocessing", "constraint")
DEVICE_FIELDS = ("visibility", "efficiency")


def _check_input(value, name: str) -> int | None:
    """None (maximise over both inputs) or one input 0 / 1."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value not in (0, 1):
        raise ValueError(f"{name} must be 0, 1 or None (maximise over both), got {shown(value)}")
    return int(value)


def check_protocol_preprocessing(preprocessing) -> float | str:
    """A flip probability in [0, 1/2] (a float) or the string "optimal"."""
    if isinstance(preprocessing, str):
        if preprocessing == "optimal":
            return "optimal"
        raise ValueError(
            "preprocessing must be a flip probability in [0, 1/2] or 'optimal'; got "
            f"{preprocessing!r}"
        )
    return check_preprocessing(preprocessing)


def check_constraint(constraint, name: str = "constraint") -> str:
    if constraint not in CONSTRAINTS:
        raise ValueError(f"{name} must be one of {CONSTRAINTS}, got {constraint!r}")
    return constraint


def check_visibility(visibility) -> np.ndarray:
    v = as_real_array(visibility, "visibility")
    check_in_range(v, "visibility", 0.0, 1.0)
    return v


def check_efficiency(efficiency) -> np.ndarray:
    e = as_real_array(efficiency, "efficiency")
    check_in_range(e, "efficiency", 0.0, 1.0, closed=(False, True))
    return e


@dataclasses.dataclass(frozen=True)
class Protocol:
    """What a DI protocol does; frozen, checked where built, static under ``jax.jit``.

    Attributes
    ----------
    x : {0, 1} or None
        Alice's key input (None: the better of her two inputs, maximised per point).
    bob_key : {None, 0, 1, 2} (``"aligned"`` is read as 2)
        Bob's key input: None (the default here and of every rate function, finite-size key
        and observed data included, and of the command line's ``--bob-key``), the better of
        his two test inputs (the paper's protocol); 0 or 1, that test input; 2, a key-only
        input measuring Alice's key observable (Pironio et al. 2009; behaviours then have y in
        {0, 1, 2}).
    preprocessing : float or "optimal"
        Alice flips each raw key bit with probability p in [0, 1/2] (Ho et al. 2020), or
        "optimal" (maximised per point by the key rates and thresholds).
    constraint : {"bell", "correlators", "full"} or None
        What the test rounds constrain: the one Bell value (default), the four correlators,
        every p(ab|xy). None: "bell", unless a backend's own options name one (the
        ``options={"constraint": ...}`` of method "bff", kept from before these values).
    kind : {"key", "global"}
        The entropy: H(A|X=x, E) (key) or H(AB|X=x, Y=y, E) (global randomness).
    y : {0, 1} or None
        Bob's input of kind "global" (None: the better of the two).
    """

    x: int | None = 0
    bob_key: int | str | None = None
    preprocessing: float | str = 0.0
    constraint: str | None = "bell"
    kind: str = "key"
    y: int | None = 0

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")
        set_ = functools.partial(object.__setattr__, self)
        set_("x", _check_input(self.x, "x"))
        set_("y", _check_input(self.y, "y"))
        set_("bob_key", check_bob_key(self.bob_key))
        set_("preprocessing", check_protocol_preprocessing(self.preprocessing))
        if self.constraint is not None:
            check_constraint(self.constraint)

    def replace(self, **changes) -> Protocol:
        """A copy with some fields changed (checked again)."""
        return dataclasses.replace(self, **changes)

    @property
    def inputs(self) -> tuple[int, ...]:
        """Alice's key inputs to maximise over: (x,) or (0, 1)."""
        return (0, 1) if self.x is None else (self.x,)

    @property
    def y_inputs(self) -> tuple[int, ...]:
        """Bob's inputs of kind "global" to maximise over: (y,) or (0, 1)."""
        return (0, 1) if self.y is None else (self.y,)

    @property
    def bob_inputs(self) -> tuple[int, ...]:
        """Bob's inputs whose error-correction cost is minimised: (bob_key,) or (0, 1)."""
        return (0, 1) if self.bob_key is None else (self.bob_key,)


def _same(a, b) -> bool:
    if a is b:
        return True
    try:
        return bool(np.array_equal(np.asarray(a), np.asarray(b))) and np.shape(a) == np.shape(b)
    except (TypeError, ValueError):
        return False


@dataclasses.dataclass(frozen=True, eq=False)
class Device:
    """What the device is; frozen, checked where built, a pytree (leaves: both fields).

    Attributes
    ----------
    visibility : array_like
        White-noise visibility v in [0, 1] of the strategy of eq. (6) (E -> v E).
    efficiency : array_like
        Detection efficiency in (0, 1] of both parties, a no-click binned to outcome 0.

    Both broadcast with the angles of the rate functions (arrays give a batch of devices).
    """

    visibility: ArrayLike = 1.0
    efficiency: ArrayLike = 1.0

    def __post_init__(self):
        object.__setattr__(self, "visibility", check_visibility(self.visibility))
        object.__setattr__(self, "efficiency", check_efficiency(self.efficiency))

    def __eq__(self, other):
        if not isinstance(other, Device):
            return NotImplemented
        return _same(self.visibility, other.visibility) and _same(self.efficiency, other.efficiency)

    __hash__ = None  # holds arrays

    def replace(self, **changes) -> Device:
        """A copy with some fields changed (checked again)."""
        return dataclasses.replace(self, **changes)


@dataclasses.dataclass(frozen=True, eq=False)
class QubitDevice:
    """A general lossy two-qubit device (issue 22); frozen, checked where built.

    The state cos(s)|00> + sin(s)|11> under white noise, measurements cos(a) Z + sin(a) X in the
    X-Z plane, detection efficiency of each party; see :func:`jaxbell.qubit_behaviour`. It has
    the :class:`Device`'s two fields (same names, same checks) and adds the state, the angles and
    what becomes of a no-click on Bob's key input.

    Attributes
    ----------
    state_angle : float
        s in [0, pi/2], radians (pi/4: maximally entangled).
    alice_angles : array_like, shape (2,)
        Alice's angles a_0, a_1, radians.
    bob_angles : array_like, shape (3,)
        Bob's angles b_0, b_1 (test inputs) and b_2 (key-only input y = 2), radians.
    visibility, efficiency : float
        As in :class:`Device`.
    no_click : {"bin", "keep"}
        A no-click on Bob's key input binned to outcome 0, or kept as outcome b = 2.
    """

    state_angle: float = math.pi / 4
    alice_angles: ArrayLike = (0.0, math.pi / 2)
    bob_angles: ArrayLike = (math.pi / 4, -math.pi / 4, 0.0)
    visibility: ArrayLike = 1.0
    efficiency: ArrayLike = 1.0
    no_click: str = "bin"

    def __post_init__(self):
        set_ = functools.partial(object.__setattr__, self)
        set_("visibility", check_visibility(self.visibility))
        set_("efficiency", check_efficiency(self.efficiency))
        set_("no_click", check_no_click(self.no_click))
        set_("state_angle", as_real_array(self.state_angle, "state_angle"))
        check_in_range(self.state_angle, "state_angle", 0.0, math.pi / 2)
        for name, n in (("alice_angles", 2), ("bob_angles", 3)):
            arr = as_real_array(getattr(self, name), name)
            if arr.shape != (n,):
                raise ValueError(f"{name} must be {n} angles (radians), got shape {arr.shape}")
            set_(name, arr)

    def behaviour(self) -> jax.Array:
        """p[a, b, x, y] of the device: shape (2, 2, 2, 3), or (2, 3, 2, 3) with the no-click
        kept (:func:`jaxbell.qubit_behaviour`)."""
        return qubit_behaviour(
            self.state_angle, self.alice_angles, self.bob_angles, visibility=self.visibility,
            efficiency=self.efficiency, no_click=self.no_click,
        )  # fmt: skip

    def __eq__(self, other):
        if not isinstance(other, QubitDevice):
            return NotImplemented
        return self.no_click == other.no_click and all(
            _same(getattr(self, f), getattr(other, f))
            for f in ("state_angle", "alice_angles", "bob_angles", "visibility", "efficiency")
        )

    __hash__ = None  # holds arrays

    def replace(self, **changes) -> QubitDevice:
        """A copy with some fields changed (checked again)."""
        return dataclasses.replace(self, **changes)


def _unchecked(cls, **fields):
    """An instance without ``__post_init__`` (pytree unflattening: leaves may be tracers)."""
    obj = object.__new__(cls)
    for k, v in fields.items():
        object.__setattr__(obj, k, v)
    return obj


jax.tree_util.register_pytree_node(
    Protocol,
    lambda p: ((), tuple(getattr(p, f) for f in PROTOCOL_FIELDS)),
    lambda aux, _: _unchecked(Protocol, **dict(zip(PROTOCOL_FIELDS, aux, strict=True))),
)
jax.tree_util.register_pytree_node(
    Device,
    lambda d: ((d.visibility, d.efficiency), None),
    lambda _, leaves: _unchecked(Device, **dict(zip(DEVICE_FIELDS, leaves, strict=True))),
)


@functools.cache
def _defaults(fn: Callable) -> dict[str, Any]:
    return {
        k: p.default
        for k, p in inspect.signature(fn).parameters.items()
        if p.default is not inspect.Parameter.empty
    }


def front_door(
    fn: Callable, protocol: Protocol | None, device: Device | None, **keywords
) -> tuple[Protocol | None, Device | None]:
    """The values of a call to the public rate function ``fn``: ``protocol=`` / ``device=`` as
    given, or built from ``fn``'s loose keywords (those of :data:`PROTOCOL_FIELDS` and
    :data:`DEVICE_FIELDS` that ``fn`` takes, passed here by name).

    A keyword left at ``fn``'s default gives way to the value; one set beside the value is a
    ``TypeError`` naming both (the call would be ambiguous). A keyword ``fn`` takes without a
    default (``visibility`` of :func:`jaxbell.noisy_key_rate`) may be None when ``device=``
    gives it. Without ``device=`` and without any device keyword, the device is None.
    """
    defaults = _defaults(fn)
    name = getattr(fn, "__name__", "the function")
    out = []
    for value, cls, fields, arg in (
        (protocol, Protocol, PROTOCOL_FIELDS, "protocol"),
        (device, Device, DEVICE_FIELDS, "device"),
    ):
        given = {k: keywords[k] for k in fields if k in keywords}
        if value is not None:
            if not isinstance(value, cls):
                raise TypeError(
                    f"{arg} must be a jaxbell.{cls.__name__}, got {type(value).__name__}"
                )
            both = [k for k, v in given.items() if v is not None and not _same(v, defaults.get(k))]
            if both:
                raise TypeError(
                    f"{name}: give the {arg} once, as {arg}= or as keywords, not both "
                    f"({', '.join(f'{k}=' for k in both)} beside {arg}=)"
                )
            out.append(value)
        elif given:
            for k, v in given.items():
                if v is None and k in DEVICE_FIELDS:
                    raise TypeError(
                        f"{name}() needs {k} (or device=jaxbell.Device({k}=...)); got None"
                    )
            out.append(cls(**given))
        else:
            out.append(None)
    return out[0], out[1]
