"""Entropy backends behind one interface, and their registry.

A backend computes the device-independent entropy H(A'|X=x, E) (kind "key", A' Alice's key bit
after noisy preprocessing) or H(AB|X=x, Y=y, E) (kind "global") of a *batch* of points under
one :class:`~jaxbell.rates.values.Protocol`: the infimum over all quantum strategies that
reproduce what the protocol's test rounds observe (the Bell value, the four correlators, or the
whole behaviour). Like diffrax's ``AbstractSolver`` it *declares* what it can do, and like
cvxpy's solver registry the callers choose by those declarations:

``bound``
    ``"upper"``: an explicit attack (strategies that exist; the true entropy is at most this),
    or ``"lower"``: a certified bound (the true entropy is at least this).
``kinds``, ``constraints``, ``preprocessing``
    Which entropies, which test constraints, and whether noisy preprocessing, it supports.
    :meth:`Backend.check` turns an unsupported combination into a ``NotImplementedError`` that
    names it; nothing falls back silently.
``certificate``
    Whether :meth:`Backend.tangents` returns a certified affine bound (the tangent
    ``tangent_value + slope . (statistics' - statistics)`` below the entropy everywhere):
    finite-size key needs it as the min-tradeoff function.
``options_class``
    Its settings (``options={...}`` of the rate functions).
``white_noise_constraints``
    The constraints under which it computes the rate of the paper's protocol (white noise,
    lossless) from the Bell value or the correlators v E of eq. (6) alone.

The rate functions of :mod:`jaxbell.rates.front`, the thresholds, finite-size key, design, the
datasets and the command line ask :func:`get` and these declarations; none compares a name. A
new backend is a subclass with :meth:`Backend.entropy` registered with :func:`register` (see
docs/architecture.md, "Adding a backend"; tests/test_backends.py registers one in a few dozen
lines).
"""

from __future__ import annotations

import abc
import dataclasses
import time
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import jax.numpy as jnp
import numpy as np

from jaxbell._precision import x64_scope
from jaxbell.dataset import BFF_REFERENCE
from jaxbell.rates import bff
from jaxbell.rates.attack import attack_entropy
from jaxbell.rates.protocol import behaviour_correlators
from jaxbell.rates.qubit import (
    QubitOptions,
    qubit_entropy,
    qubit_envelope,
    qubit_envelopes,
    strategy_from_params,
)
from jaxbell.rates.values import CONSTRAINTS, KINDS, Protocol

__all__ = [
    "AttackBackend",
    "Backend",
    "Batch",
    "BffBackend",
    "Entropies",
    "QubitBackend",
    "get",
    "names",
    "register",
    "unregister",
]


@dataclasses.dataclass(frozen=True)
class Batch:
    """Points whose entropy a backend computes: float64 arrays of one shape (a batch of n
    points, flat or broadcast; the behaviour adds its trailing axes).

    ``bell_value`` is the observed <B_theta,phi,omega>; ``behaviour`` the test rounds'
    p[a, b, x, y] (n, 2, 2, 2, 2) where the constraint needs more than the Bell value (None
    otherwise); ``white_noise``: the statistics are those of eq. (6) under white noise,
    lossless (correlators v E, v = bell_value / eta^Q), so a backend may use that form.
    """

    theta: np.ndarray
    phi: np.ndarray
    omega: np.ndarray
    bell_value: np.ndarray
    behaviour: np.ndarray | None = None
    white_noise: bool = False

    def correlators(self) -> np.ndarray:
        """E[x, y] of :attr:`behaviour`, (n, 2, 2), float64."""
        with x64_scope():
            return np.asarray(behaviour_correlators(jnp.asarray(self.behaviour)), dtype=np.float64)


@dataclasses.dataclass(frozen=True)
class Entropies:
    """A backend's answer for a batch: bits (NaN where it failed; ``status`` nonzero there)
    and, from :meth:`Backend.tangents`, the affine bound at each point (``slope`` per
    statistic of the constraint: (n, 1) Bell value, (n, 4) correlators, (n, 8) behaviour)."""

    value: np.ndarray
    status: np.ndarray
    tangent_value: np.ndarray | None = None
    slope: np.ndarray | None = None


def _status_of(value: np.ndarray) -> np.ndarray:
    return np.where(np.isnan(value), 2, 0).astype(np.int8)


class Backend(abc.ABC):
    """One way of computing DI entropies (see the module docstring for the declarations)."""

    name: ClassVar[str]
    #: "upper" (an explicit attack) or "lower" (a certified bound) on the DI entropy
    bound: ClassVar[str]
    kinds: ClassVar[tuple[str, ...]] = ("key",)
    constraints: ClassVar[tuple[str, ...]] = ("bell",)
    #: whether kind "key" with noisy preprocessing p > 0 is supported
    preprocessing: ClassVar[bool] = False
    #: whether :meth:`tangents` returns certified affine bounds (finite-size key needs them)
    certificate: ClassVar[bool] = False
    options_class: ClassVar[type | None] = None
    #: constraints computed, for the paper's white-noise lossless device, from v E alone
    white_noise_constraints: ClassVar[tuple[str, ...]] = ("bell",)
    #: default bracket width of the threshold searches along a visibility or efficiency
    xtol: ClassVar[float] = 1e-7
    #: options that keep it quiet inside loops that show their own progress
    quiet: ClassVar[Mapping[str, Any]] = {}
    #: one line for the command line's help
    summary: ClassVar[str] = ""
    #: whether error messages and the command line list it as a ``method`` choice
    listed: ClassVar[bool] = True
    #: what datasets of its values cite, beside the paper
    reference: ClassVar[str] = ""

    # --- capabilities ---------------------------------------------------------------------

    def unsupported(self, protocol: Protocol) -> str | None:
        """Why ``protocol`` is not supported (None: it is)."""
        if protocol.kind not in self.kinds:
            return f"kind {protocol.kind!r}"
        constraint = protocol.constraint or "bell"
        if constraint not in self.constraints:
            return f"constraint {constraint!r}"
        if protocol.preprocessing not in (0, 0.0) and not self.preprocessing:
            return f"preprocessing={protocol.preprocessing!r}"
        return None

    def check(self, protocol: Protocol) -> None:
        """Raise a ``NotImplementedError`` naming what ``protocol`` asks and this cannot do."""
        why = self.unsupported(protocol)
        if why is not None:
            raise NotImplementedError(
                f"method {self.name!r} does not support {why} (it supports kinds "
                f"{list(self.kinds)}, constraints {list(self.constraints)}"
                + (", noisy preprocessing" if self.preprocessing else ", no preprocessing")
                + ")"
                + ("; use preprocessing=0" if why.startswith("preprocessing") else "")
            )

    def options_constraint(self, options) -> str | None:
        """The constraint its ``options`` name, if its options can (None: they cannot)."""
        return None

    def quiet_options(self, options):
        """``options`` with its own progress bar off, unless the caller set it."""
        if not self.quiet:
            return options
        if options is None:
            return dict(self.quiet)
        if isinstance(options, Mapping):
            return dict(self.quiet) | dict(options)
        return options

    def settings(self, options) -> dict[str, Any]:
        """Its options as dataset attributes."""
        if self.options_class is not None and hasattr(self.options_class, "from_mapping"):
            opts = self.options_class.from_mapping(options)
            return dataclasses.asdict(opts) if dataclasses.is_dataclass(opts) else vars(opts)
        return dict(options or {})

    # --- computing ------------------------------------------------------------------------

    @abc.abstractmethod
    def entropy(self, batch: Batch, protocol: Protocol, options) -> Entropies:
        """The entropy of every point of ``batch`` under ``protocol`` (one x, one y)."""

    def tangents(self, batch: Batch, protocol: Protocol, options) -> Entropies:
        """Affine bounds at every point (for finite-size key); only where it has them."""
        raise NotImplementedError(
            f"method {self.name!r} gives no affine bounds (min-tradeoff functions)"
        )

    def curve(self, batch: Batch, protocol: Protocol, options, progress):
        """(fields, tangent fields, settings) of :func:`jaxbell.rate_curve` over ``batch``
        (one tuple, many Bell values); by default the entropy and its status only."""
        t0 = time.perf_counter()
        res = self.entropy(batch, protocol, options)
        fields = {"entropy": res.value, "curve_status": res.status}
        return fields, {}, {"elapsed_seconds": round(time.perf_counter() - t0, 3)}


# --- the registry -----------------------------------------------------------------------------

_REGISTRY: dict[str, Backend] = {}


def register(backend: type[Backend] | Backend) -> Backend:
    """Register a backend class (or instance) under its ``name``; returns the instance."""
    inst = backend() if isinstance(backend, type) else backend
    if not isinstance(inst, Backend):
        raise TypeError(f"a backend must subclass jaxbell.rates.backends.Backend, got {inst!r}")
    if inst.bound not in ("upper", "lower"):
        raise ValueError(f"backend {inst.name!r}: bound must be 'upper' or 'lower'")
    bad = set(inst.kinds) - set(KINDS) or set(inst.constraints) - set(CONSTRAINTS)
    if bad:
        raise ValueError(f"backend {inst.name!r} declares unknown kinds/constraints {sorted(bad)}")
    _REGISTRY[inst.name] = inst
    return inst


def unregister(name: str) -> None:
    """Remove a registered backend (tests register their own and remove them again)."""
    _REGISTRY.pop(name, None)


def names(listed: bool = False) -> tuple[str, ...]:
    """The registered backends' names, in registration order (``listed``: those offered as
    ``method`` choices in messages and on the command line)."""
    return tuple(n for n, b in _REGISTRY.items() if b.listed or not listed)


def with_tangents() -> tuple[str, ...]:
    """The listed backends with affine bounds (min-tradeoff functions), certified ones first."""
    found = [n for n in names(listed=True) if type(_REGISTRY[n]).tangents is not Backend.tangents]
    return tuple(sorted(found, key=lambda n: not _REGISTRY[n].certificate))


def get(name) -> Backend:
    """The backend registered as ``name``; a ValueError lists the registered ones."""
    if isinstance(name, str) and name in _REGISTRY:
        return _REGISTRY[name]
    raise ValueError(
        f"method must be one of {sorted(names(listed=True))} or a sequence of them, got {name!r}"
    )


def methods(method) -> tuple[tuple[str, ...], bool]:
    """(method names, whether a sequence was given), each registered."""
    if isinstance(method, str):
        get(method)
        return (method,), False
    if isinstance(method, Sequence) and len(method) > 0:
        found = tuple(method)
        for name in found:
            get(name)
        if len(set(found)) != len(found):
            raise ValueError(f"method lists a method twice: {found!r}")
        return found, True
    raise ValueError(
        f"method must be one of {sorted(names(listed=True))} or a sequence of them, got {method!r}"
    )


def split_options(found: tuple[str, ...], options, multi: bool) -> dict[str, Any]:
    """Options per method: ``options`` itself for one method, or keyed by method name."""
    keyed = (
        isinstance(options, Mapping)
        and len(options) > 0
        and all(isinstance(k, str) and k in _REGISTRY for k in options)
    )
    if keyed:
        extra = sorted(set(options) - set(found))
        if extra:
            raise TypeError(
                f"options given for method(s) {extra} that are not computed (method={found!r})"
            )
        return {m: options.get(m) for m in found}
    if multi and options is not None:
        raise TypeError(
            "with several methods, give the options per method, e.g. "
            "options={'qubit': {'starts': 32}, 'bff': {'m': 4}}"
        )
    return {m: options for m in found}  # one method's options, or None for every method


def bracket(found: Sequence[str]) -> tuple[str, str] | None:
    """(the upper-bound method, the lower-bound method) when ``found`` is one of each."""
    ups = [m for m in found if get(m).bound == "upper"]
    lows = [m for m in found if get(m).bound == "lower"]
    if len(ups) == 1 and len(lows) == 1:
        return ups[0], lows[0]
    return None


def default(bound: str) -> str:
    """The first registered method with this bound ("upper": the attack, "lower": certified)."""
    for name, inst in _REGISTRY.items():
        if inst.bound == bound:
            return name
    raise ValueError(f"no backend with bound {bound!r} is registered")


# --- the explicit attacks ---------------------------------------------------------------------


class AttackBackend(Backend):
    """The explicit qubit attack given all correlators or the whole behaviour (column
    generation over qubit strategies, an exact mixture reproducing the statistics;
    :mod:`jaxbell.rates.attack`): an upper bound on H(A'|X=x, E)."""

    name = "attack"
    bound = "upper"
    kinds = ("key",)
    constraints = ("correlators", "full")
    preprocessing = True
    white_noise_constraints = ()
    listed = False  # reached through "qubit" with constraint correlators or full
    summary = "explicit qubit attack given all correlators or the behaviour (upper bound)"

    def settings(self, options) -> dict[str, Any]:
        return dict(options or {})

    def entropy(self, batch, protocol, options):
        """attack_entropy per point; NaN where the attack did not converge (its upper bound
        is then not within ``tol``)."""
        constraint = protocol.constraint
        if batch.behaviour is None:
            raise ValueError(
                f"the explicit attack with constraint {constraint!r} needs the test statistics "
                "(a behaviour), not a Bell value: use noisy_key_rate, critical_visibility or "
                "observed_key_rate"
            )
        stats = batch.correlators() if constraint == "correlators" else batch.behaviour
        opts = dict(options or {})
        seed = opts.pop("seed", 0)
        core = 2 if constraint == "correlators" else 4
        lead = stats.shape[: stats.ndim - core]
        flat = stats.reshape((-1,) + stats.shape[stats.ndim - core :])
        out = np.full(flat.shape[0], np.nan)
        for i, s in enumerate(flat):
            res = attack_entropy(
                s,
                constraint=constraint,
                x=protocol.x,
                preprocessing=protocol.preprocessing,
                options=opts or None,
                seed=seed,
            )
            if res.converged:
                out[i] = res.entropy
        value = out.reshape(lead)
        return Entropies(value, _status_of(value))


class QubitBackend(Backend):
    """Explicit qubit strategies: given one Bell value, Jordan's lemma and the convex envelope
    of optimised two-qubit strategies (:mod:`jaxbell.rates.qubit`); given the correlators or
    the behaviour, the column-generation attack (:class:`AttackBackend`). An upper bound on
    the DI entropy, tight when the optimisation is global."""

    name = "qubit"
    bound = "upper"
    kinds = KINDS
    constraints = CONSTRAINTS
    preprocessing = True
    options_class = QubitOptions
    summary = "explicit qubit strategies, an upper bound on the DI entropy (default)"

    def unsupported(self, protocol):
        if protocol.kind == "global" and (protocol.constraint or "bell") != "bell":
            return f"kind 'global' with constraint {protocol.constraint!r}"
        return super().unsupported(protocol)

    def settings(self, options) -> dict[str, Any]:
        return vars(QubitOptions.from_mapping(options))

    def entropy(self, batch, protocol, options):
        if (protocol.constraint or "bell") != "bell":
            return AttackBackend().entropy(batch, protocol, options)
        kw = {"preprocessing": protocol.preprocessing} if protocol.preprocessing else {}
        value = np.asarray(
            qubit_entropy(
                batch.theta,
                batch.phi,
                batch.omega,
                batch.bell_value,
                kind=protocol.kind,
                x=protocol.x,
                y=protocol.y,
                options=options,
                **kw,
            )  # fmt: skip
        )
        return Entropies(value, _status_of(value))

    def tangents(self, batch, protocol, options):
        """The envelope's supporting lines at the Bell values of one tuple: an *uncertified*
        estimate of the min-tradeoff function (constraint "bell" only)."""
        if (protocol.constraint or "bell") != "bell":
            raise ValueError(
                "method='qubit' gives min-tradeoff estimates for constraint 'bell' only (the "
                "envelope's supporting lines); use method='bff' for "
                f"constraint {protocol.constraint!r}"
            )
        t0, p0, w0 = (float(a[0]) for a in (batch.theta, batch.phi, batch.omega))
        env = qubit_envelope(
            t0, p0, w0, kind="key", x=protocol.x, options=options,
            preprocessing=protocol.preprocessing,
        )  # fmt: skip
        eta = batch.bell_value
        slope_abs, intercept = env.supporting_line(eta)
        sign = np.where(eta < 0, -1.0, 1.0)
        # H >= intercept + slope |eta'| >= intercept + slope sign(eta) eta' (slope >= 0)
        value = intercept + slope_abs * np.abs(eta)
        slope = (slope_abs * sign)[:, None]
        return Entropies(value, np.zeros(eta.size, dtype=np.int8), value, slope)

    def curve(self, batch, protocol, options, progress):
        """Envelope, supporting lines and the optimal mixtures of explicit strategies."""
        from tqdm import tqdm

        if (protocol.constraint or "bell") != "bell":
            return super().curve(batch, protocol, options, progress)
        t, p, w = (float(a[0]) for a in (batch.theta, batch.phi, batch.omega))
        bell_value = batch.bell_value
        t0 = time.perf_counter()
        bar = tqdm(
            total=QubitOptions.from_mapping(options).refine + 1,
            desc="rate curve, qubit (passes)",
            disable=not progress if progress is not None else None,
        )
        with bar:
            (env,) = qubit_envelopes(
                [(t, p, w)], kind=protocol.kind, x=protocol.x, y=protocol.y, options=options,
                progress=bar, preprocessing=protocol.preprocessing,
            )  # fmt: skip
        lo_i, hi_i, weight = env.segment(bell_value)
        slope, intercept = env.supporting_line(bell_value)
        idx = np.stack([lo_i, hi_i], -1)
        mix = np.stack([1.0 - weight, weight], -1)
        rho, alpha, beta = (np.asarray(v) for v in strategy_from_params(env.vertex_params[idx]))
        sign = np.where(np.asarray(bell_value) < 0, -1.0, 1.0)
        hull = env.entropy(bell_value)
        status = env.status(bell_value)
        fields = {
            # as di_entropy: NaN where the envelope did not converge to options["tol"]; the
            # hull value (still the entropy of an explicit attack, an upper bound) stays in
            # hull_entropy
            "entropy": np.where(status == 0, hull, np.nan),
            "hull_entropy": hull,
            "entropy_lower_estimate": env.lower_estimate(bell_value),
            "gap": env.gap(bell_value),
            "slope": slope * sign,
            "intercept": intercept,
            "curve_status": status,
            "mixture_weight": mix,
            "component_bell_value": env.vertex_bell_value[idx],
            "component_entropy": env.vertex_entropy[idx],
            "alice_angle": alpha,
            "bob_angle": beta,
            "state": rho,
        }
        tangents = {
            "tangent_slope": env.tangent_slope,
            "tangent_intercept": env.tangent_intercept,
            "tangent_spread": env.tangent_spread,
            "tangent_agreement": env.tangent_agreement,
        }
        opts = env.options
        settings = {
            **{f"option_{k}": v for k, v in vars(opts).items()},
            "passes": env.passes,
            "failed_starts": env.failed_starts,
            "hull_vertices": len(env.vertex_bell_value),
            "max_gap_bits": float(np.max(env.segment_gap, initial=0.0)),
            "max_tangent_spread_bits": float(np.max(env.tangent_spread, initial=0.0)),
            "min_tangent_agreement": float(np.min(env.tangent_agreement, initial=1.0)),
            "elapsed_seconds": round(time.perf_counter() - t0, 3),
        }
        return fields, tangents, settings


# --- the certified bound ----------------------------------------------------------------------


class BffBackend(Backend):
    """Certified lower bounds: the Brown-Fawzi-Fawzi hierarchy (:mod:`jaxbell.rates.bff`),
    every constraint, noisy preprocessing, and the certified affine bounds of its duals."""

    name = "bff"
    bound = "lower"
    kinds = KINDS
    constraints = CONSTRAINTS
    preprocessing = True
    certificate = True
    options_class = bff.BffOptions
    white_noise_constraints = ("bell", "correlators")
    xtol = 1e-3
    quiet = {"progress": False}
    reference = BFF_REFERENCE
    summary = (
        "Brown-Fawzi-Fawzi SDPs, a certified lower bound (jaxbell's batched solver, "
        '~0.07 s per point; cvxpy solvers with pip install "jaxbell[sdp]")'
    )

    def options_constraint(self, options) -> str | None:
        if isinstance(options, Mapping) and "constraint" in options:
            return bff.BffOptions.from_mapping(options).constraint  # checked, errors name it
        if isinstance(options, bff.BffOptions):
            return options.constraint
        return None

    def settings(self, options) -> dict[str, Any]:
        opts = dataclasses.asdict(bff.BffOptions.from_mapping(options))
        if opts["extras"] is None:
            opts["extras"] = "auto: on for kind key, off for kind global"
        return opts

    @staticmethod
    def options(options, protocol: Protocol) -> dict:
        """bff options with the protocol's preprocessing and (given) constraint."""
        if isinstance(options, bff.BffOptions):
            options = dataclasses.asdict(options)
        out = dict(options or {})
        if protocol.preprocessing:
            out["preprocessing"] = protocol.preprocessing
        if protocol.constraint is not None:
            out["constraint"] = protocol.constraint
        return out

    def _statistics(self, batch, constraint):
        if constraint == "full":
            return batch.behaviour
        if constraint == "correlators" and not batch.white_noise and batch.behaviour is not None:
            return batch.correlators()
        return None  # "bell", or the correlators v E of eq. (6) from the Bell value

    def entropy(self, batch, protocol, options):
        opts = self.options(options, protocol)
        constraint = opts.get("constraint", "bell")
        res = bff.certify(
            batch.theta, batch.phi, batch.omega, batch.bell_value, kind=protocol.kind,
            x=protocol.x, y=protocol.y, options=opts,
            statistics=self._statistics(batch, constraint),
        )  # fmt: skip
        return Entropies(np.asarray(res["value"], dtype=np.float64), res["status"])

    def tangents(self, batch, protocol, options):
        """The dual's certified affine bound at each point of one tuple (:func:`bff_entropy`)."""
        opts = dict(options or {})
        for key in ("constraint", "preprocessing"):
            if key in opts:
                raise ValueError(f"options[{key!r}] is set by the argument {key}=, not options")
        opts.setdefault("progress", False)
        common = {"kind": "key", "x": protocol.x, "preprocessing": protocol.preprocessing} | opts
        t0, p0, w0 = (float(a[0]) for a in (batch.theta, batch.phi, batch.omega))
        constraint = protocol.constraint or "bell"
        if constraint == "bell":
            res = bff.bff_entropy(t0, p0, w0, batch.bell_value, **common)
        elif constraint == "correlators":
            e = np.einsum("a,b,tabxy->txy", [1.0, -1.0], [1.0, -1.0], batch.behaviour)
            res = bff.bff_entropy(t0, p0, w0, None, correlators=e, **common)
        else:
            res = bff.bff_entropy(t0, p0, w0, None, behaviour=batch.behaviour, **common)
        n = np.size(res.status)
        return Entropies(
            np.asarray(res.value, dtype=np.float64),
            np.asarray(res.status, dtype=np.int8),
            np.asarray(res.tangent_value, dtype=np.float64),
            np.asarray(res.slope, dtype=np.float64).reshape(n, -1),
        )

    def curve(self, batch, protocol, options, progress):
        """The bound, its certificate status and correction per point."""
        t0 = time.perf_counter()
        t, p, w = (float(a[0]) for a in (batch.theta, batch.phi, batch.omega))
        res = bff.certify(
            t, p, w, batch.bell_value, kind=protocol.kind, x=protocol.x, y=protocol.y,
            options=self.options(options, protocol), progress=progress,
        )  # fmt: skip
        opts = res["options"]
        fields = {
            "entropy": res["value"],
            "curve_status": np.where(np.isnan(res["value"]), 2, 0).astype(np.int8),
            "bff_status": res["status"],
            "bff_solver_status": res["solver_status"],
            "certificate_correction": res["correction"],
        }
        sizes = bff.sdp_sizes(
            protocol.kind, opts.level, x=protocol.x, y=protocol.y, eve_pairs=opts.eve_pairs,
            extras=opts.extras,
        )  # fmt: skip
        settings = {
            **{f"option_{k}": v for k, v in dataclasses.asdict(opts).items()},
            "option_extras": sizes["extras"],  # None resolved by kind
            "sdp_block_dims": sizes["block_dims"],
            "sdp_variables": sizes["variables"],
            "sdps_per_point": opts.m - 1,
            "solved_points": int(np.sum(res["solved"])),
            "max_correction_bits": float(np.nanmax(res["correction"], initial=0.0)),
            "elapsed_seconds": round(time.perf_counter() - t0, 3),
        }
        for package in ("cvxpy", "clarabel"):
            try:
                settings[f"{package}_version"] = __import__(package).__version__
            except Exception:  # pragma: no cover - optional packages
                settings[f"{package}_version"] = "not installed"
        return fields, {}, settings


for _backend in (QubitBackend, BffBackend, AttackBackend):
    register(_backend)
