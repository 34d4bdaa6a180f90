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
from fractions import Fraction

import numpy as np
import xarray as xr

__all__ = ["axis_label", "close", "figure1", "figure2", "save", "tradeoff_figure"]

_GREEK = {"theta": "θ", "phi": "φ", "omega": "ω", "epsilon": "ε", "eta": "η", "alpha": "α"}
_LIMITS = {
    "5/2": 2.5,
    "1 + √2": 1.0 + math.sqrt(2.0),
    "3√3/2": 3.0 * math.sqrt(3.0) / 2.0,
    "2√2": 2.0 * math.sqrt(2.0),
}


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
    ax.contourf(tx, ty, (~region).astype(float), levels=[0.5, 1.5], colors="white", alpha=0.4)
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
    _legend(fig, [
        ("k-", "max CHSH-type value = 2"),
        ("k--", "boundary of condition (4) (global rate 2 inside)"),
        ("kx", "maximum of I_CHSH, 3√3/2"),
    ])  # fmt: skip
    return fig


def figure2(ds: xr.Dataset):
    """Fig. 2: max_chsh of eq. (6) over (theta, omega) in the limit phi = pi/2.

    Drawn: max_chsh (colour) with contours every 0.1, the contour max_chsh = 2 (black
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
    cs = ax.contour(tx, ty, mc.values, levels=[2.1, 2.2, 2.3, 2.4], colors="w", linewidths=0.6,
                    alpha=0.8)  # fmt: skip
    ax.clabel(cs, fontsize=7, fmt="%.1f")
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
    return fig


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
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title("Nonlocality vs key at the quantum bound", fontsize=11)
    small = eps <= 1e-2
    if np.any(small):
        ref = np.sqrt(eps[small])
        s0 = ds["max_chsh"].sel(perfect_randomness=False).values[small] - limits[False]
        scale = float(np.exp(np.mean(np.log(np.maximum(s0, 1e-300) / ref))))
        ax2.loglog(eps[small], scale * ref, color="0.4", ls="--", lw=1, label="∝ √ε")
    ax2.set_xlabel(axis_label(ds["max_epsilon"]))
    ax2.set_ylabel("sup max CHSH-type value − limit (ε → 0)")
    ax2.legend(loc="upper left", fontsize=8)
    ax2.set_title("Approach to the limits 5/2 and 1 + √2", fontsize=11)
    for a in (ax, ax2):
        a.grid(True, which="major", color="0.9", lw=0.6)
    return fig
