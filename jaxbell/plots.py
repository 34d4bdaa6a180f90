"""Figures of the paper and the trade-off curve, drawn from labelled datasets.

Axis labels come from each variable's ``long_name`` and ``units`` attributes; the marked points
come from the datasets' attributes (see :mod:`jaxbell.reproduce`). Figures are plain
``matplotlib.figure.Figure`` objects (Agg canvas, no pyplot state), so this works headless:
``fig.savefig("figure1.png", dpi=150)``. Needs the ``plot`` extra (matplotlib).

References
----------
Figs. 1 and 2 of L. Wooltorton, P. Brown and R. Colbeck, Phys. Rev. Lett. 132, 210802 (2024),
doi:10.1103/PhysRevLett.132.210802.
"""

from __future__ import annotations

import math
import re
import textwrap
from fractions import Fraction

import numpy as np
import xarray as xr

__all__ = [
    "axis_label",
    "certified_vs_qubit_figure",
    "close",
    "construction_title",
    "design_figure",
    "figure1",
    "figure2",
    "finite_size_figure",
    "noise_planes_figure",
    "noise_tolerance_figure",
    "noisy_rates_figure",
    "protocol_efficiency_figure",
    "save",
    "tradeoff_figure",
]

_GREEK = {"theta": "θ", "phi": "φ", "omega": "ω", "epsilon": "ε", "eta": "η", "alpha": "α"}
_LIMITS = {
    "5/2": 2.5,
    "1 + √2": 1.0 + math.sqrt(2.0),
    "3√3/2": 3.0 * math.sqrt(3.0) / 2.0,
    "2√2": 2.0 * math.sqrt(2.0),
}
#: opacity of the white veil over the part of Fig. 1 where condition (4) fails
_PALE = 0.4


def _figure(size):
    try:
        from matplotlib.figure import Figure
    except ImportError as err:  # pragma: no cover - the plot extra is missing
        raise ImportError("jaxbell.plots needs matplotlib: pip install 'jaxbell[plot]'") from err
    return Figure(figsize=size, layout="constrained")


def save(fig, path, *, dpi: int = 150, palette: bool = False) -> None:
    """Write ``fig`` to ``path`` (format from the suffix). ``palette=True`` stores a PNG with
    a 256-colour palette (Pillow's median cut), about a third of the size, for documents."""
    from pathlib import Path

    path = Path(path)
    if not palette or path.suffix.lower() != ".png":
        fig.savefig(path, dpi=dpi)
        return
    import io

    from PIL import Image

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    buf.seek(0)
    with Image.open(buf) as im:
        im.convert("RGB").quantize(256, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)


def close(fig) -> None:
    """Release a figure's memory (figures here are not registered with pyplot)."""
    fig.clear()


def write(fig, path, *, dpi: int = 130):
    """A figure for the documents: ``fig`` saved to ``path`` as a palette PNG (:func:`save`),
    then released (:func:`close`); returns the path."""
    from pathlib import Path

    save(fig, path, dpi=dpi, palette=True)
    close(fig)
    return Path(path)


def _greek(text: str) -> str:
    words = text.split(" ")
    return " ".join(_GREEK.get(w, w) for w in words)


def axis_label(da: xr.DataArray) -> str:
    """``long_name [units]`` of a labelled variable (Greek letters spelled out become symbols;
    dimensionless units "1" are left out)."""
    name = _greek(str(da.attrs.get("long_name", da.name)))
    units = da.attrs.get("units", "")
    return name if units in ("", "1") else f"{name} [{units}]"


def _pi_text(x: float, max_den: int = 12) -> str:
    """An angle as a fraction of pi, e.g. 'π/2', '5π/6'."""
    f = Fraction(x / math.pi).limit_denominator(max_den)
    if f == 0:
        return "0"
    num, den = f.numerator, f.denominator
    sign = "−" if num < 0 else ""
    top = "π" if abs(num) == 1 else f"{abs(num)}π"
    return f"{sign}{top}" if den == 1 else f"{sign}{top}/{den}"


def _pi_ticks(ax, axis: str, lo: float, hi: float, step: Fraction) -> None:
    k0 = math.ceil(lo / (math.pi * step) - 1e-9)
    k1 = math.floor(hi / (math.pi * step) + 1e-9)
    vals = [k * step for k in range(k0, k1 + 1)]

    ticks = [float(v) * math.pi for v in vals]
    labels = [_pi_text(float(v) * math.pi) for v in vals]
    if axis == "x":
        ax.set_xticks(ticks, labels)
    else:
        ax.set_yticks(ticks, labels)


def _field(ds: xr.Dataset, name: str, x: str, y: str) -> xr.DataArray:
    """A variable as a 2-D (y, x) array, the third grid dimension (length 1) dropped."""
    da = ds[name].squeeze(drop=True)
    return da.transpose(y, x)


def _heat(fig, ax, ds, x, y):
    """Filled contours of max_chsh every 0.05 (as the paper's contour plots), colour bar."""
    da = _field(ds, "max_chsh", x, y)
    lo = math.floor(20 * float(np.nanmin(da.values)) + 1e-9) / 20
    hi = math.ceil(20 * float(np.nanmax(da.values)) - 1e-9) / 20
    levels = np.round(np.arange(lo, max(hi, lo + 0.05) + 1e-9, 0.05), 10)
    filled = ax.contourf(ds[x].values, ds[y].values, da.values, levels=levels, cmap="viridis")
    cbar = fig.colorbar(filled, ax=ax, pad=0.02, ticks=levels[levels % 0.25 < 1e-9] if
                        levels.size > 12 else levels[::2])  # fmt: skip
    cbar.set_label(axis_label(ds["max_chsh"]))
    cbar.ax.axhline(2.0, color="k", lw=1.2)
    return da


def figure1(ds: xr.Dataset):
    """Fig. 1: max_chsh of eq. (6) over (theta, phi) at omega = pi.

    Drawn: max_chsh (colour), the contour max_chsh = 2 (black), the boundary of the region
    where condition (4) holds and global_rate = 2 (dashed; there perfect randomness is
    certified, and approaching phi = +-pi/2 inside it near-perfect key), the part where (4)
    fails (pale), and the maxima of I_CHSH = 3 sqrt(3)/2 (black crosses).

    Parameters
    ----------
    ds : xarray.Dataset
        :func:`jaxbell.reproduce.figure1_grid` (an ``evaluate_grid`` dataset with one omega).
    """
    fig = _figure((6.4, 5.6))
    ax = fig.add_subplot()
    x, y = "theta", "phi"
    mc = _heat(fig, ax, ds, x, y)
    tx, ty = ds[x].values, ds[y].values
    region = (_field(ds, "self_testing", x, y) & (_field(ds, "global_rate", x, y) == 2)).values
    ax.contourf(tx, ty, (~region).astype(float), levels=[0.5, 1.5], colors="white", alpha=_PALE)
    ax.contour(tx, ty, region.astype(float), levels=[0.5], colors="k", linestyles="--",
               linewidths=1.2)  # fmt: skip
    ax.contour(tx, ty, mc.values, levels=[2.0], colors="k", linewidths=1.4)
    ct = ds.attrs.get("crosses_theta")
    cp = ds.attrs.get("crosses_phi")
    if ct is not None and np.size(ct):
        ax.plot(np.atleast_1d(ct), np.atleast_1d(cp), "kx", ms=10, mew=2.2)
    _pi_ticks(ax, "x", float(tx[0]), float(tx[-1]), Fraction(1, 6))
    _pi_ticks(ax, "y", float(ty[0]), float(ty[-1]), Fraction(1, 6))
    ax.set_xlabel(axis_label(ds[x]))
    ax.set_ylabel(axis_label(ds[y]))
    omega = float(np.atleast_1d(ds["omega"].values)[0])
    ax.set_title(f"Strategies of eq. (6) at ω = {_pi_text(omega)}", fontsize=11)
    pale = _pale_patch()
    _legend(fig, [
        ("k-", "max CHSH-type value = 2"),
        ("k--", "boundary of condition (4) (global rate 2 inside)"),
        ("kx", "maximum of I_CHSH, 3√3/2"),
        (pale, "lightened: condition (4) fails"),
    ])  # fmt: skip
    return fig


def _pale_patch():
    """A legend patch that looks like the veiled colour map: a mid viridis colour seen through
    the white veil of opacity ``_PALE``."""
    from matplotlib import colormaps
    from matplotlib.patches import Patch

    base = np.asarray(colormaps["viridis"](0.75)[:3])
    return Patch(facecolor=(1 - _PALE) * base + _PALE, edgecolor="0.6", lw=0.6)


def figure2(ds: xr.Dataset):
    """Fig. 2: max_chsh of eq. (6) over (theta, omega) in the limit phi = pi/2.

    Drawn: max_chsh (colour) with contours at 2.1, 2.2, 2.3 and 2.45 (not 2.4: the blue
    crosses at 1 + sqrt(2) = 2.414 would sit on it), labelled clear of every other line and
    marker, the contour max_chsh = 2 (black
    triangles), the lines where E01 = 0 (dashed, the construction of Props. 5, 6: perfect
    randomness from X = 0, Y = 1) and where E10 or E11 = 0 (dotted), inside the nonlocal
    region; black crosses at the maxima of I_CHSH = 5/2, blue crosses at the maxima of
    I_CHSH = 1 + sqrt(2) with E01 = 0.

    Parameters
    ----------
    ds : xarray.Dataset
        :func:`jaxbell.reproduce.figure2_grid` (an ``evaluate_grid`` dataset with one phi).
    """
    fig = _figure((6.4, 6.0))
    ax = fig.add_subplot()
    x, y = "theta", "omega"
    mc = _heat(fig, ax, ds, x, y)
    tx, ty = ds[x].values, ds[y].values
    cs = ax.contour(tx, ty, mc.values, levels=[2.1, 2.2, 2.3, 2.45], colors="w",
                    linewidths=0.6, alpha=0.8)  # fmt: skip
    corr = ds["correlators"].squeeze(drop=True).transpose(y, x, "x", "y").values
    _level_two(ax, tx, ty, corr, mc.values)
    nonlocal_ = mc.values > 2.0
    for (i, j), style, color, lw in (((0, 1), "--", "k", 1.2), ((1, 0), ":", "0.25", 0.9),
                                     ((1, 1), ":", "0.25", 0.9)):  # fmt: skip
        e = corr[..., i, j]
        ax.contour(tx, ty, np.where(nonlocal_, e, np.nan), levels=[0.0], colors=color,
                   linestyles=style, linewidths=lw)  # fmt: skip
    for key, style in (("crosses", "kx"), ("randomness_crosses", "x")):
        ct = ds.attrs.get(f"{key}_theta")
        cw = ds.attrs.get(f"{key}_omega")
        if ct is not None and np.size(ct):
            kw = {"color": "tab:blue"} if style == "x" else {}
            ax.plot(np.atleast_1d(ct), np.atleast_1d(cw), style, ms=10, mew=2.2, **kw)
    _pi_ticks(ax, "x", float(tx[0]), float(tx[-1]), Fraction(1, 2))
    _pi_ticks(ax, "y", float(ty[0]), float(ty[-1]), Fraction(1, 2))
    ax.set_xlabel(axis_label(ds[x]))
    ax.set_ylabel(axis_label(ds[y]))
    phi = float(np.atleast_1d(ds["phi"].values)[0])
    ax.set_title(f"Limit φ = {_pi_text(phi)} of the strategies of eq. (6)", fontsize=11)
    _legend(fig, [
        ("k-", "max CHSH-type value = 2 (triangles)"),
        ("k--", "E01 = 0: perfect randomness from X=0, Y=1"),
        ("k:", "E10 = 0 or E11 = 0"),
        ("kx", "maximum of I_CHSH, 5/2"),
        ("bx", "maximum of I_CHSH with E01 = 0, 1 + √2"),
    ])  # fmt: skip
    _spread_clabels(ax, cs, fmt="%.4g", avoid=_drawn_points(ax, cs))  # last: final layout
    return fig


def _drawn_points(ax, labelled) -> np.ndarray:
    """Points (data coordinates) of every line and marker drawn on ``ax`` but the contours
    ``labelled`` (and filled contours): where a contour label must not go."""
    from matplotlib.contour import ContourSet

    pts = [np.empty((0, 2))]
    for c in ax.collections:
        if isinstance(c, ContourSet) and c is not labelled and not c.filled:
            for path in c.get_paths():
                pts.append(np.asarray(path.vertices, dtype=float).reshape(-1, 2))
    for line in ax.get_lines():
        xy = np.column_stack([np.asarray(v, dtype=float) for v in line.get_data()])
        pts.append(xy.reshape(-1, 2))
    out = np.concatenate(pts)
    return out[np.all(np.isfinite(out), axis=1)]


def _spread_clabels(ax, cs, *, fmt: str, fontsize: float = 7.0, avoid=None) -> None:
    """Label every contour line of ``cs`` once, the labels spread over the axes.

    matplotlib puts a line's label where the line is straightest, which in Fig. 2 is beside
    the diagonal each triangle shares with its neighbour, so that the labels of all levels pile
    up there. Here the labels are placed greedily instead: the next label goes on an unlabelled
    line, at the point farthest from the labels placed so far and from the axes' edges (distances
    in points, on the final layout). No label goes within ``1.8 fontsize`` points of a point
    of ``avoid`` (data coordinates: other lines and markers); a line with no such room stays
    unlabelled.
    """
    fig = ax.get_figure()
    fig.draw_without_rendering()  # fix the layout, so that transData is the final one
    box = ax.get_window_extent()
    pt = 72.0 / fig.dpi
    lo, hi = np.array([box.x0, box.y0]) * pt, np.array([box.x1, box.y1]) * pt
    lines = []  # per line: its vertices in data coordinates and in points
    for path in cs.get_paths():
        for poly in path.to_polygons(closed_only=False):
            if len(poly) < 3:
                continue
            at = ax.transData.transform(poly) * pt
            if np.hypot(*np.diff(at, axis=0).T).sum() < 8 * fontsize:
                continue  # too short to carry a label
            edge = np.minimum(at - lo, hi - at).min(axis=1)
            keep = edge > 1.5 * fontsize
            if avoid is not None and len(avoid):
                near = ax.transData.transform(np.asarray(avoid)) * pt
                for start in range(0, len(at), 256):  # bounded memory
                    d = np.hypot(
                        *(at[start : start + 256, None, :] - near[None]).transpose(2, 0, 1)
                    )
                    keep[start : start + 256] &= d.min(axis=1) > 1.8 * fontsize
            if keep.any():
                lines.append((poly[keep], at[keep], edge[keep]))
    placed: list[np.ndarray] = []
    manual = []
    while lines:
        best = (-np.inf, 0, 0)
        for k, (_, at, edge) in enumerate(lines):
            room = 2.0 * edge
            if placed:
                gap = np.hypot(*(at[:, None, :] - np.array(placed)[None]).transpose(2, 0, 1))
                room = np.minimum(room, gap.min(axis=1))
            i = int(np.argmax(room))
            if room[i] > best[0]:
                best = (room[i], k, i)
        _, k, i = best
        poly, at, _ = lines.pop(k)
        placed.append(at[i])
        manual.append(tuple(poly[i]))
    if manual:
        ax.clabel(cs, fontsize=fontsize, fmt=fmt, manual=manual)


def _level_two(ax, tx, ty, corr, mc):
    """The set max_chsh = 2, drawn as the level-2 contours of each CHSH-type expression
    +-(sum E - 2 E_k) where that expression is the largest. (At phi = pi/2 max_chsh only
    touches 2 on lines, so its own contour would be ill-defined; each expression crosses 2.)"""
    e = corr.reshape(corr.shape[:2] + (4,))
    total = e.sum(axis=-1)
    for k in range(4):
        for sign in (1.0, -1.0):
            t = sign * (total - 2.0 * e[..., k])
            top = t >= mc - 1e-9
            ax.contour(tx, ty, np.where(top, t, np.nan), levels=[2.0], colors="k",
                       linewidths=1.4)  # fmt: skip


def _legend(fig, entries):
    """A legend below the axes, outside the data."""
    from matplotlib.lines import Line2D

    handles = []
    for style, text in entries:
        if not isinstance(style, str):  # an artist (a patch for a shaded region)
            style.set_label(text)
            handles.append(style)
            continue
        color = "tab:blue" if style.startswith("b") else "k"
        ls = style.lstrip("bk")
        if ls == "x":
            handles.append(Line2D([], [], color=color, marker="x", ls="", ms=8, mew=2, label=text))
        else:
            handles.append(Line2D([], [], color=color, ls=ls, lw=1.3, label=text))
    fig.legend(handles=handles, loc="outside lower center", ncols=2, fontsize=8, frameon=False)


def tradeoff_figure(ds: xr.Dataset):
    """The trade-off the paper bounds: sup max_chsh over self-testing tuples vs epsilon.

    Left: the supremum against the epsilon bound (log axis), with and without perfect
    randomness, and the paper's limits 5/2 and 1 + sqrt(2) (eps -> 0, Props. 3, 5) and the
    unconstrained suprema 2 sqrt(2) and 3 sqrt(3)/2. Right: the distance to the eps -> 0
    limit on log-log axes, with a sqrt(eps) guide.

    Parameters
    ----------
    ds : xarray.Dataset
        :func:`jaxbell.tradeoff_curve` (dims perfect_randomness, max_epsilon).
    """
    fig = _figure((10.0, 4.2))
    ax, ax2 = fig.subplots(1, 2)
    eps = ds["max_epsilon"].values
    styles = {False: ("tab:blue", "o", "key_rate ≥ 1 − ε"),
              True: ("tab:orange", "s", "key_rate ≥ 1 − ε and global rate 2")}  # fmt: skip
    limits = {False: _LIMITS["5/2"], True: _LIMITS["1 + √2"]}
    for pr, (color, marker, text) in styles.items():
        s = ds["max_chsh"].sel(perfect_randomness=pr).values
        ax.plot(eps, s, color=color, marker=marker, ms=3.5, lw=1.5, label=text)
        gap = s - limits[pr]
        ok = gap > 0
        ax2.loglog(eps[ok], gap[ok], color=color, marker=marker, ms=3.5, lw=1.5, label=text)
    for name in ("5/2", "1 + √2"):
        ax.axhline(_LIMITS[name], color="0.25", ls="--", lw=1)
        ax.text(eps[0], _LIMITS[name] + 0.006, f"{name} (ε → 0)", fontsize=8, va="bottom")
    for name in ("2√2", "3√3/2"):
        ax.axhline(_LIMITS[name], color="0.55", ls=":", lw=1)
        ax.text(eps[0], _LIMITS[name] + 0.006, name, fontsize=8, va="bottom", color="0.35")
    ax.set_xscale("log")
    ax.set_xlabel(axis_label(ds["max_epsilon"]))
    ax.set_ylabel("sup " + axis_label(ds["max_chsh"]))
    ax.set_ylim(2.35, 2.9)
    ax.set_title("Nonlocality vs key at the quantum bound", fontsize=11)
    small = eps <= 1e-2
    if np.any(small):
        ref = np.sqrt(eps[small])
        s0 = ds["max_chsh"].sel(perfect_randomness=False).values[small] - limits[False]
        scale = float(np.exp(np.mean(np.log(np.maximum(s0, 1e-300) / ref))))
        ax2.loglog(eps[small], scale * ref, color="0.4", ls="--", lw=1, label="∝ √ε")
    ax2.set_xlabel(axis_label(ds["max_epsilon"]))
    ax2.set_ylabel("sup max CHSH-type value − limit (ε → 0)")
    # one legend for both panels, below them: inside, the left one covered the 1 + √2 line
    fig.legend(handles=ax2.get_legend_handles_labels()[0], loc="outside lower center", ncols=3,
               fontsize=8, frameon=False)  # fmt: skip
    ax2.set_title("Approach to the limits 5/2 and 1 + √2", fontsize=11)
    for a in (ax, ax2):
        a.grid(True, which="major", color="0.9", lw=0.6)
    return fig


# --------------------------------------------------------------------------------------------
# Noise-robustness figures (figures/certified_vs_qubit.py, figures/noise_figures.py)

_CONSTRUCTION = re.compile(r"^(?:chsh-|prop)(5/2|1\+sqrt2|3|5) delta=(\S+)$")
_PROPOSITION = {"5/2": "Prop. 3", "1+sqrt2": "Prop. 5", "3": "Prop. 3", "5": "Prop. 5"}
_FAMILY = re.compile(r"^omega=(\S+)$")


def construction_title(name: str) -> str:
    """A readable name for a construction label of the experiments' datasets.

    ``"chsh"`` (the CHSH member of eq. (6)) becomes "CHSH member", ``"chsh-5/2 delta=0.1"``
    (Prop. 3's construction (pi/3, pi/2 - delta, 5pi/6)) "Prop. 3, φ = π/2 − 0.1" and
    ``"chsh-1+sqrt2 delta=0.1"`` (Prop. 5's, (pi/4, pi/2 - delta, pi)) "Prop. 5, φ = π/2 − 0.1".
    The same constructions named ``"prop3 delta=0.1"`` / ``"prop5 delta=0.1"``, and ``"prop2"``
    (Prop. 2's tuple (pi/3, pi/3, pi)), read alike. A family label ``"omega=5pi/6"`` becomes
    "ω = 5π/6". Other names are returned unchanged.
    """
    name = str(name)
    if name == "chsh":
        return "CHSH member"
    if name == "prop2":
        return "Prop. 2, (π/3, π/3, π)"
    m = _CONSTRUCTION.match(name)
    if m:
        return f"{_PROPOSITION[m[1]]}, φ = π/2 − {m[2]}"
    m = _FAMILY.match(name)
    if m:
        return "ω = " + m[1].replace("pi", "π")
    return name


def _angle_text(x: float) -> str:
    """An angle as a fraction of pi where it is one, else as pi/2 - delta or a decimal."""
    if abs(x - float(Fraction(x / math.pi).limit_denominator(12)) * math.pi) < 1e-9:
        return _pi_text(x)
    d = math.pi / 2 - x
    if 0 < d < 1 and abs(d - round(d, 3)) < 1e-9:
        return f"π/2 − {round(d, 3):g}"
    return f"{x:.3f}"


def _wrapped(text: str, width: int) -> str:
    return "\n".join(textwrap.wrap(text, width))


_RATE_STYLE = {
    "qubit": dict(color="C0", ls="-", label="qubit strategies (upper bound)"),
    "bff": dict(color="C3", ls="--", label="certified BFF, given ⟨B⟩ (lower bound)"),
    "bff_correlators": dict(color="C2", ls="-.", label="certified BFF, given all four E[x, y]"),
}


def certified_vs_qubit_figure(ds: xr.Dataset):
    """Certified (BFF) lower bounds beside the qubit upper bounds on the noisy key rate.

    Top row: the Devetak-Winter key rate (x = 0) against visibility for each construction; the
    true DI rate of the protocol (constraint <B>) lies in the shaded band between the certified
    and the qubit values. Bottom row: the width of the band, with the cost 1/(2 m² ln 2) of the
    Gauss-Radau quadrature at H = 1.

    Parameters
    ----------
    ds : xarray.Dataset
        ``figures/data/certified_vs_qubit.nc`` (experiments/certified_vs_qubit.py).
    """
    names = list(ds["construction"].values)
    fig = _figure((4.1 * len(names), 6.4))
    axes = fig.subplots(2, len(names), sharex="col", height_ratios=[2.2, 1], squeeze=False)
    m = int(ds.attrs["m"])
    cap = 1 / (2 * m**2 * math.log(2))  # what dropping the last Gauss-Radau node costs at H = 1
    v = ds["visibility"].values
    for j, name in enumerate(names):
        sub = ds.sel(construction=name)
        ax, gap_ax = axes[0, j], axes[1, j]
        rate = sub["noisy_key_rate"]
        qub, cert = (rate.sel(rate_method=k).values for k in ("qubit", "bff"))
        ax.fill_between(v, cert, qub, color="0.85", label="true DI rate (given ⟨B⟩) lies here")
        ax.plot(v, sub["achievable_key_rate"].values, color="0.4", ls=":", lw=1.0,
                label="noisy strategy itself")  # fmt: skip
        for method, style in _RATE_STYLE.items():
            ax.plot(v, rate.sel(rate_method=method).values, marker=".", ms=4, lw=1.2, **style)
            vc = float(sub["critical_visibility"].sel(rate_method=method))
            if np.isfinite(vc):
                ax.axvline(vc, color=style["color"], lw=0.6, alpha=0.7)
        ax.axvline(float(sub["local_visibility"]), color="k", lw=0.6, ls=(0, (1, 3)))
        ax.axhline(0, color="0.6", lw=0.6)
        ax.set_ylim(-0.15, 1.0)
        angles = ", ".join(_angle_text(float(sub[a])) for a in ("theta", "phi", "omega"))
        ax.set_title(f"{construction_title(name)}\n(θ, φ, ω) = ({angles}), max CHSH "
                     f"{float(sub['max_chsh']):.3f}", fontsize=8.5)  # fmt: skip
        gap = sub["noisy_key_rate_gap"].where(sub["noisy_key_rate_gap"] > 0)
        gap_ax.semilogy(v, gap.values, "k.-", lw=1.0, ms=4)
        gap_ax.axhline(cap, color="C3", lw=0.7, ls="--")
        gap_ax.text(v.min() + 0.003, cap * 1.25, f"1/(2m² ln 2), m = {m}", color="C3", fontsize=7)
        gap_ax.set_ylim(1e-6, 0.1)
        gap_ax.set_xlabel(axis_label(ds["visibility"]))
        gap_ax.set_xlim(v.min(), 1.0)
        gap_ax.grid(alpha=0.3, which="both", lw=0.4)
    # each label wrapped to its panel's height (unwrapped, the two collided)
    axes[0, 0].set_ylabel(_wrapped(axis_label(ds["noisy_key_rate"]), 30))
    axes[1, 0].set_ylabel(_wrapped(axis_label(ds["noisy_key_rate_gap"]), 20), fontsize=9)
    fig.align_ylabels(axes[:, 0])
    fig.legend(handles=axes[0, 0].get_legend_handles_labels()[0], loc="outside lower center",
               ncols=3, fontsize=8, frameon=False)  # fmt: skip
    fig.suptitle(
        f"DI key rate of eq. (1) (x = 0) under white noise; BFF m = {m}, level "
        f"{ds.attrs['level']}\nvertical lines: critical visibilities (dotted black: local "
        "visibility, below which both entropies are exactly 0 and the gap vanishes)",
        fontsize=9.5,
    )
    return fig


def noise_planes_figure(panels):
    """White-noise tolerance 1 - critical visibility (key) over planes of tuples.

    Parameters
    ----------
    panels : sequence of xarray.Dataset
        ``figures/data/noise_plane_*.nc`` (experiments/noise_planes.py): attribute ``plane``
        "near-key" (phi = pi/2 - ``delta``, over (theta, omega)) or "omega-pi".
    """
    from matplotlib.colors import LogNorm

    fig = _figure((4.0 * len(panels) + 0.8, 4.1))
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    norm = LogNorm(1e-4, 0.2)
    for ax, ds in zip(axes, panels, strict=True):
        xdim, ydim = ds["critical_visibility"].dims
        tol = 1 - ds["critical_visibility"]
        x, y = ds[xdim].values, ds[ydim].values
        im = ax.pcolormesh(x, y, tol.values.T, norm=norm, cmap="viridis", shading="nearest")
        cs = ax.contour(x, y, ds["max_chsh"].values.T, levels=[2.0, 2.25, 2.5], colors="w",
                        linewidths=0.8)  # fmt: skip
        ax.clabel(cs, fontsize=7, fmt="%.2f")
        ax.contour(x, y, ds["self_testing"].values.T.astype(float), levels=[0.5], colors="k",
                   linewidths=0.6, linestyles="--")  # fmt: skip
        ax.set_xlabel(axis_label(ds[xdim]))
        ax.set_ylabel(axis_label(ds[ydim]))
        if ds.attrs["plane"] == "near-key":
            ax.set_title(f"φ = π/2 − {ds.attrs['delta']:g}", fontsize=10)
        else:
            ax.set_title("ω = π", fontsize=10)
    cb = fig.colorbar(im, ax=list(axes), shrink=0.9, pad=0.01)
    cb.set_label("noise tolerance 1 − critical visibility (key)")
    fig.suptitle(
        "White-noise tolerance of DI key (Devetak–Winter, qubit-strategy entropies); "
        "white: max CHSH-type value of eq. (6); dashed: boundary of condition (4)",
        fontsize=9,
    )
    return fig


def noisy_rates_figure(ds: xr.Dataset):
    """Key rates of the extremal constructions under white noise, and their DI key entropy
    below the quantum bound against the chord (mixing a local strategy with eq. (6)).

    Parameters
    ----------
    ds : xarray.Dataset
        ``figures/data/noisy_rates_extremal.nc`` (experiments/noisy_rates_extremal.py).
    """
    from matplotlib import colormaps

    fig = _figure((11.0, 4.9))
    a1, a2 = fig.subplots(1, 2)
    colors = colormaps["tab10"](np.arange(ds.sizes["construction"]))
    one_minus_v = 1 - ds["visibility"].values
    for i, name in enumerate(ds["construction"].values):
        label = f"{construction_title(name)} (max CHSH {float(ds['max_chsh'][i]):.3f})"
        key = ds["noisy_key_rate"][i].values
        a1.plot(np.where(one_minus_v > 0, one_minus_v, 1e-5), key, color=colors[i], label=label)
        a2.plot(ds["normalised_bell_value"].values, ds["entropy"][i].values, color=colors[i])
    a1.set_xscale("log")
    a1.set_ylim(-0.05, 1.0)
    a1.axhline(0, color="k", lw=0.6)
    a1.set_xlabel("1 − " + axis_label(ds["visibility"]))
    a1.set_ylabel(axis_label(ds["noisy_key_rate"]))
    a1.invert_xaxis()
    a1.set_title("Key rate under white noise (1 − v = 10⁻⁵ marks v = 1)", fontsize=10)
    u = ds["normalised_bell_value"].values
    a2.plot(u, u, "k:", lw=1, label="chord: mix of local and eq. (6)")
    a2.set_xlabel(axis_label(ds["normalised_bell_value"]))
    a2.set_ylabel(f"{axis_label(ds['entropy'])}, H(A|X=0, E)")
    a2.set_title("DI key entropy below the quantum bound", fontsize=10)
    handles = a1.get_legend_handles_labels()[0] + a2.get_legend_handles_labels()[0]
    fig.legend(handles=handles, loc="outside lower center", ncols=4, fontsize=7.5,
               frameon=False)  # fmt: skip
    return fig


def _frontier_fit(ds: xr.Dataset):
    """Power law a x^k through the best tolerance per CHSH bin (x = max CHSH - 2), all lines."""
    x = (ds["max_chsh"] - 2).values.ravel()
    y = (1 - ds["critical_visibility"]).values.ravel()
    ok = np.isfinite(x) & np.isfinite(y) & (y > 0) & (x > 0)
    x, y = x[ok], y[ok]
    edges = np.geomspace(x.min(), x.max() * 1.0001, 9)
    bx, by = [], []
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        sel = (x >= lo) & (x < hi)
        if sel.any():
            i = np.argmax(np.where(sel, y, -np.inf))
            bx.append(x[i])
            by.append(y[i])
    k, loga = np.polyfit(np.log(bx), np.log(by), 1)
    return float(np.exp(loga)), float(k)


def noise_tolerance_figure(ds: xr.Dataset):
    """Noise tolerance 1 - critical visibility (key) against max CHSH - 2 along the lines of
    near-perfect-key constructions, with the power-law frontier through the best points.

    Parameters
    ----------
    ds : xarray.Dataset
        ``figures/data/noise_tolerance_vs_chsh.nc`` (experiments/noise_tolerance_vs_chsh.py).
    """
    from matplotlib import colormaps

    fig = _figure((6.8, 6.2))
    ax = fig.add_subplot()
    markers = dict(zip(ds["family"].values, "osd^v", strict=False))
    colors = colormaps["plasma"](np.linspace(0, 0.85, ds.sizes["delta"]))
    for fam in ds["family"].values:
        for j, d in enumerate(ds["delta"].values):
            sub = ds.sel(family=fam, delta=d)
            x = sub["max_chsh"].values - 2
            ax.plot(x, 1 - sub["critical_visibility"].values, marker=markers[fam], ms=3.5, lw=1,
                    color=colors[j], label=f"{construction_title(fam)}, δ = {d:g}")  # fmt: skip
            ax.plot(x, 1 - 1 / sub["violation_ratio"].values, color=colors[j], lw=0.6, ls=":")
    for v in ds["visibility"].values:
        ax.axhline(1 - v, color="0.6", lw=0.6)
        ax.text(1.01, 1 - v, f"v = {v:g}", fontsize=7, color="0.4", va="center",
                transform=ax.get_yaxis_transform())  # fmt: skip
    a, k = _frontier_fit(ds)
    xs = np.geomspace(0.01, 0.8, 50)
    ax.plot(xs, a * xs**k, "k--", lw=0.8, label=f"frontier fit {a:.3f} (CHSH − 2)^{k:.2f}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("max CHSH-type value − 2 of the construction (noise-free)")
    ax.set_ylabel("noise tolerance 1 − critical visibility (key)")
    ax.set_title("How close to local can a construction be and still give key?\n"
                 "dotted: 1 − η^L/|η^Q| (no Bell violation left)", fontsize=9)  # fmt: skip
    fig.legend(handles=ax.get_legend_handles_labels()[0], loc="outside lower center", ncols=3,
               fontsize=7, frameon=False)  # fmt: skip
    return fig


def protocol_efficiency_figure(ds: xr.Dataset):
    """Key rate of the aligned protocol against detection efficiency, one panel per
    construction: the explicit attack (upper bound) and the certified bound (lower bound),
    without and with noisy preprocessing; the critical efficiencies as vertical lines.

    Parameters
    ----------
    ds : xarray.Dataset
        ``figures/data/protocol_thresholds.nc`` (experiments/protocol_thresholds.py).
    """
    names = ds["construction"].values
    fig = _figure((4.6 * len(names), 4.4))
    axes = np.atleast_1d(fig.subplots(1, len(names), sharey=True))
    eff = ds["efficiency"].values
    styles = {
        ("none", "qubit"): dict(color="C0", ls="-", marker="o", ms=3),
        ("none", "bff"): dict(color="C3", ls="--", marker="s", ms=3),
        ("optimal", "qubit"): dict(color="C2", ls="-", marker="^", ms=3),
        ("optimal", "bff"): dict(color="C1", ls="--", marker="v", ms=3),
    }
    words = {"qubit": "attack (upper bound)", "bff": "certified (lower bound)"}
    for ax, name in zip(axes, names, strict=True):
        for (pre, method), style in styles.items():
            rate = ds["key_rate_vs_efficiency"].sel(
                construction=name, preprocessing=pre, rate_method=method
            )
            pre_text = "no preprocessing"
            if pre != "none":  # the fixed p of the curve: the attack's or the certified one
                var = (
                    "preprocessing_probability"
                    if method == "qubit"
                    else "certified_preprocessing_probability"
                )
                p = np.nan
                if var in ds:
                    p = float(ds[var].sel(construction=name, threshold="efficiency",
                                          protocol="aligned", preprocessing=pre))  # fmt: skip
                pre_text = f"preprocessing p = {p:.2f}" if np.isfinite(p) else "preprocessing"
            ax.plot(eff, rate.values, label=f"{words[method]}, {pre_text}", **style)
            crit = float(
                ds["critical_value"].sel(
                    construction=name,
                    threshold="efficiency",
                    protocol="aligned",
                    preprocessing=pre,
                    rate_method=method,
                )
            )
            if np.isfinite(crit):
                ax.axvline(crit, color=style["color"], lw=0.8, ls=":")
        ax.axhline(0, color="k", lw=0.6)
        ax.set_ylim(-0.1, None)
        ax.set_xlabel(axis_label(ds["efficiency"]))
        mc = float(ds["max_chsh"].sel(construction=name))
        ax.set_title(f"{construction_title(str(name))}\nmax CHSH {mc:.3f}", fontsize=10)
        ax.legend(loc="upper left", fontsize=7.5, frameon=False)
    axes[0].set_ylabel(_wrapped(axis_label(ds["key_rate_vs_efficiency"]), 30))
    fig.suptitle(
        "Aligned protocol (Bob's key-only input), visibility 1; dotted: critical efficiencies",
        fontsize=10,
    )
    return fig


def finite_size_figure(ds: xr.Dataset):
    """Finite-size key (entropy accumulation, certified): three panels.

    (a) key rate against the number of rounds n for each construction and visibility, with
    the asymptotic rates as dotted lines; (b) the smallest n with key against visibility;
    (c) the smallest n with key at visibility 1 against the max CHSH value of Prop. 3's
    construction (closeness to the local set).

    Parameters
    ----------
    ds : xarray.Dataset
        ``figures/data/finite_size.nc`` (experiments/finite_size.py).
    """
    fig = _figure((14.5, 5.6))
    ax_rate, ax_v, ax_d = fig.subplots(1, 3)
    names = [str(n) for n in ds["construction"].values]
    colors = {name: f"C{i}" for i, name in enumerate(names)}
    styles = ["-", "--", "-.", (0, (6, 1.5, 1, 1.5, 1, 1.5))]  # ":" is kept for the asymptotes
    n = ds["rounds"].values
    for name in names:
        sub = ds.sel(construction=name)
        k = 0
        for v in ds["visibility"].values:
            rate = sub["finite_key_rate"].sel(visibility=v).values
            if not np.any(np.isfinite(rate)):
                continue
            shown = np.where(rate > 0, rate, np.nan)
            ax_rate.plot(
                n,
                shown,
                color=colors[name],
                ls=styles[k % len(styles)],
                label=f"{construction_title(name)}, v = {v:g}",
            )
            asym = float(sub["asymptotic_rate"].sel(visibility=v))
            if asym > 0:
                ax_rate.axhline(asym, color=colors[name], lw=0.6, ls=":", alpha=0.7)
            k += 1
        nmin = sub["min_rounds"].values
        ok = np.isfinite(nmin)
        ax_v.plot(
            ds["visibility"].values[ok],
            nmin[ok],
            color=colors[name],
            marker="o",
            ms=4,
            label=construction_title(name),
        )
    ax_rate.set_xscale("log")
    ax_rate.set_xlabel(axis_label(ds["rounds"]))
    ax_rate.set_ylabel(axis_label(ds["finite_key_rate"]))
    ax_rate.set_ylim(0, 1.02)
    ax_rate.set_title("(a) certified key rate vs rounds (dotted: n → ∞)", fontsize=10)
    ax_rate.legend(
        loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2, fontsize=7, frameon=False
    )
    ax_v.set_yscale("log")
    ax_v.set_xlabel(axis_label(ds["visibility"]))
    ax_v.set_ylabel(axis_label(ds["min_rounds"]))
    ax_v.set_title("(b) smallest n with key vs visibility", fontsize=10)
    ax_v.legend(loc="lower left", fontsize=8, frameon=False)
    chsh = ds["delta_max_chsh"].values
    dn = ds["delta_min_rounds"].values
    ok = np.isfinite(dn)
    ax_d.plot(chsh[ok], dn[ok], color="C1", marker="s", ms=4, label="Prop. 3, v = 1")
    for c, m, d in zip(chsh[ok], dn[ok], ds["delta"].values[ok], strict=True):
        ax_d.annotate(f"δ = {d:g}", (c, m), textcoords="offset points", xytext=(4, 4), fontsize=7)
    ax_d.set_yscale("log")
    ax_d.set_xlabel(axis_label(ds["delta_max_chsh"]))
    ax_d.set_ylabel(axis_label(ds["delta_min_rounds"]))
    ax_d.set_title("(c) closeness to the local set costs rounds", fontsize=10)
    ax_d.legend(loc="upper right", fontsize=8, frameon=False)
    fig.suptitle(
        f"Aligned protocol, eps_sec = {ds.attrs.get('eps_sec', 1e-10):g}, completeness "
        f"{ds.attrs.get('eps_com', 1e-2):g}; EAT with certified (BFF) min-tradeoff functions",
        fontsize=10,
    )
    return fig


def design_figure(ds: xr.Dataset):
    """Fronts of the aligned protocol's best critical visibility over the family.

    (a) against a cap on max CHSH (closeness to the local set), (b) against the key rate
    required at v = 1 (the paper's near-perfect key, 1 - epsilon); attack (a lower bound on
    the threshold) and certified (an upper bound), with the unconstrained optimum, the CHSH
    member and the best asymmetric-CHSH member as horizontal lines.

    Parameters
    ----------
    ds : xarray.Dataset
        ``figures/data/design.nc`` (experiments/design_study.py).
    """
    fig = _figure((10.5, 4.2))
    axes = fig.subplots(1, 2, sharey=True)
    names = [str(f) for f in ds["front"].values]
    ref = [c for c in ds["case"].values if str(c).startswith("aligned, p=0, critical_vis")]
    for ax, kind, xlabel in (
        (axes[0], "max_chsh", "cap on max CHSH"),
        (axes[1], "min_key_rate", "key rate required at v = 1 (1 − ε)"),
    ):
        idx = [i for i, n in enumerate(names) if n.startswith(kind)]
        if not idx:
            ax.set_visible(False)
            continue
        cap = ds["front_cap"].values[idx]
        order = np.argsort(cap)
        for var, style, text in (
            ("front_objective_attack", dict(color="C0", marker="o"), "attack (lower bound)"),
            (
                "front_objective_certified",
                dict(color="C3", marker="s", ls="--"),
                "certified (upper bound)",
            ),
        ):
            ax.plot(cap[order], ds[var].values[idx][order], label=text, **style)
        if ref:
            case = ds.sel(case=ref[0])
            for var, color, text in (
                ("objective_certified", "k", "unconstrained optimum"),
                ("chsh_certified", "C2", "CHSH member"),
                ("subfamily_certified", "C1", "best asymmetric CHSH"),
            ):
                ax.axhline(
                    float(case[var]),
                    color=color,
                    lw=0.8,
                    ls=":",
                    label=f"{text} (certified {float(case[var]):.4f})",
                )
        ax.set_xlabel(xlabel)
        if kind == "max_chsh":  # the front falls to the right: its lower left is free
            ax.legend(fontsize=7.5, frameon=False, loc="center left")
        else:  # it rises to the right: the lower right, above the reference lines, is free
            ax.legend(fontsize=7.5, frameon=False, loc="lower right", bbox_to_anchor=(1.0, 0.08))
    axes[0].set_ylabel("best critical visibility")
    axes[0].set_title("(a) closeness to the local set", fontsize=10)
    axes[1].set_title("(b) near-perfect key at v = 1", fontsize=10)
    fig.suptitle(
        "Aligned protocol (Bob's key-only input), no preprocessing: the most "
        "noise-tolerant member of the family under a constraint",
        fontsize=10,
    )
    return fig


_LOSS_LABELS = {
    "chsh_max": "CHSH, maximally entangled",
    "chsh": "CHSH, partially entangled",
    "family": "best asymmetric-CHSH member",
    "full": "full statistics (CHSH device)",
}


def loss_devices_figure(ds: xr.Dataset, refined: xr.Dataset | None = None):
    """Key rate against detection efficiency of the lossy qubit devices (issue 22): the attack
    (lines, an upper bound) and the certified BFF bound (markers, a lower bound) per device;
    the dataset of experiments/loss_devices.py. ``refined``: the dataset of
    experiments/loss_full_statistics.py (a device optimised for its certified full-statistics
    rate), drawn as filled markers with its certified threshold."""
    fig = _figure((6.4, 4.2))
    ax = fig.add_subplot()
    eff = ds["efficiency"]
    for i, case in enumerate(ds["device_case"].values):
        color = f"C{i}"
        label = _LOSS_LABELS.get(str(case), str(case))
        att = ds["rate_attack"].sel(device_case=case)
        cert = ds["rate_certified"].sel(device_case=case)
        # rates below 1e-8 bit are not resolved from rounding near p -> 1/2: not drawn
        ax.plot(eff, np.where(att > 1e-8, att, np.nan), color=color, label=f"{label} (attack)")
        ax.plot(eff, np.where(cert > 1e-8, cert, np.nan), "o", color=color, ms=4,
                mfc="none", label="certified (BFF)" if i == 0 else None)  # fmt: skip
    if refined is not None:
        r = refined["rate_certified"]
        ax.plot(refined["efficiency"], np.where(r > 1e-8, r, np.nan), "s-", color="k", ms=4,
                lw=0.8, label="full statistics, device refined for it (certified)")  # fmt: skip
        # the m = 8 threshold where the experiment bisected it (older files: the ascent's m)
        crit = float(refined.attrs.get("certified_threshold_m8", np.nan))
        m = 8
        if not np.isfinite(crit):
            crit = float(refined.attrs.get("certified_threshold", np.nan))
            m = refined.attrs.get("certified_m", "")
        if np.isfinite(crit):
            ax.axvline(crit, color="k", ls=":", lw=0.8)
            ax.annotate(f"certified {crit:.4f} (m = {m})", (crit, 0.02),
                        xycoords=("data", "axes fraction"), fontsize=7, rotation=90, ha="right",
                        va="bottom")  # fmt: skip
    ax.set_yscale("log")
    ax.set_xlabel(axis_label(eff))
    ax.set_ylabel(axis_label(ds["rate_attack"]).replace(" (attack)", ""))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    ax.set_title("Key rate of lossy qubit devices; no-click kept on Bob's key input", fontsize=9)
    return fig
