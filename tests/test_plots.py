"""The figures of jaxbell.plots, drawn (Agg) from small synthetic datasets: labels without the
dimensionless unit "1", legends that keep off the data, y-labels that do not collide, contour
labels that do not pile up, readable titles, and a legend entry for every shaded region."""

import math

import numpy as np
import pytest
import xarray as xr

pytest.importorskip("matplotlib")

from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402
from matplotlib.text import Text  # noqa: E402

import jaxbell as jb  # noqa: E402
from jaxbell import plots  # noqa: E402

PI = math.pi


def _attrs(long_name, units):
    return {"long_name": long_name, "units": units}


def _angle(name, values):
    return xr.DataArray(np.asarray(values, float), dims=name, attrs=_attrs(name, "rad"))


def _triangles(tx, ty):
    """max_chsh-like field over (omega, theta): 2 on the edges of the triangles the diagonals
    u + v = pi cut from each pi x pi square, rising to 2.5 inside (as Fig. 2 of the paper)."""
    u = np.mod(tx[None, :], PI)
    v = np.mod(ty[:, None] - PI / 2, PI)
    lower = u + v < PI
    u, v = np.where(lower, u, PI - u), np.where(lower, v, PI - v)
    g = u * v * (PI - u - v)
    return 2.0 + 0.5 * g / (PI / 3) ** 3


def figure2_dataset(n=81):
    tx = np.linspace(0, 2 * PI, n)
    ty = np.linspace(PI / 2, 5 * PI / 2, n)
    mc = _triangles(tx, ty)
    e01 = 0.4 * np.cos(ty)[:, None] + 0 * tx
    e10 = 0.4 * np.cos(tx)[None, :] + 0 * ty[:, None]
    e11 = -0.4 * np.sin(tx[None, :] + ty[:, None])
    e00 = mc - e01 - e10 + e11  # so that E00 + E01 + E10 - E11 = max_chsh
    corr = np.stack([np.stack([e00, e01], -1), np.stack([e10, e11], -1)], -2)
    return xr.Dataset(
        {
            "max_chsh": (
                ("theta", "phi", "omega"),
                mc.T[:, None, :],
                _attrs("max CHSH-type value", "1"),
            ),
            "correlators": (
                ("theta", "phi", "omega", "x", "y"),
                corr.transpose(1, 0, 2, 3)[:, None],
                _attrs("correlator E[x, y]", "1"),
            ),
        },
        coords={
            "theta": _angle("theta", tx),
            "phi": _angle("phi", [PI / 2]),
            "omega": _angle("omega", ty),
            "x": ("x", [0, 1], _attrs("Alice's input x", "1")),
            "y": ("y", [0, 1], _attrs("Bob's input y", "1")),
        },
    )


def figure1_dataset(n=61):
    tx = np.linspace(0, PI, n)
    ty = np.linspace(-PI / 2, PI / 2, n)
    mc = 2.0 + 0.6 * np.sin(2 * tx)[:, None] * np.sin(2 * ty)[None, :] + 0.3 * np.cos(tx)[:, None]
    st = (tx[:, None] + ty[None, :] > PI / 2) & (tx[:, None] < PI / 2) & (ty[None, :] > 0)
    return xr.Dataset(
        {
            "max_chsh": (
                ("theta", "phi", "omega"),
                mc[..., None],
                _attrs("max CHSH-type value", "1"),
            ),
            "self_testing": (
                ("theta", "phi", "omega"),
                st[..., None],
                _attrs("self-testing (condition 4)", "1"),
            ),
            "global_rate": (
                ("theta", "phi", "omega"),
                np.where(st, 2.0, 1.0)[..., None],
                _attrs("global randomness rate", "bit"),
            ),
        },
        coords={
            "theta": _angle("theta", tx),
            "phi": _angle("phi", ty),
            "omega": _angle("omega", [PI]),
        },
        attrs={"crosses_theta": [PI / 3], "crosses_phi": [PI / 3]},
    )


def tradeoff_dataset():
    eps = np.geomspace(1e-6, 0.8, 15)
    s = np.stack([2.5 + 0.4 * np.sqrt(eps), 1 + np.sqrt(2) + 0.2 * np.sqrt(eps)])
    s = np.minimum(s, [[2 * np.sqrt(2)], [3 * np.sqrt(3) / 2]])
    return xr.Dataset(
        {
            "max_chsh": (
                ("perfect_randomness", "max_epsilon"),
                s,
                _attrs("max CHSH-type value", "1"),
            )
        },
        coords={
            "perfect_randomness": (
                "perfect_randomness",
                [False, True],
                _attrs("perfect randomness required", "1"),
            ),
            "max_epsilon": ("max_epsilon", eps, _attrs("epsilon bound", "bit")),
        },
    )


NAMES = ["chsh", "chsh-5/2 delta=0.1", "chsh-1+sqrt2 delta=0.1"]
TUPLES = [
    (PI / 2, PI / 4, 3 * PI / 4),
    (PI / 3, PI / 2 - 0.1, 5 * PI / 6),
    (PI / 4, PI / 2 - 0.1, PI),
]


def certified_dataset():
    v = np.linspace(0.85, 1.0, 7)
    methods = ["qubit", "bff", "bff_correlators"]
    top = np.array([0.4, 0.97, 0.97])[:, None, None]
    rate = top * (v - 0.9) / 0.1 + np.array([0.0, -0.01, 0.05])[None, :, None]
    t = np.array(TUPLES)
    return xr.Dataset(
        {
            "theta": ("construction", t[:, 0], _attrs("theta", "rad")),
            "phi": ("construction", t[:, 1], _attrs("phi", "rad")),
            "omega": ("construction", t[:, 2], _attrs("omega", "rad")),
            "max_chsh": ("construction", [2.828, 2.579, 2.476], _attrs("max CHSH-type value", "1")),
            "noisy_key_rate": (
                ("construction", "rate_method", "visibility"),
                rate,
                _attrs("key rate under white noise", "bit"),
            ),
            "achievable_key_rate": (
                ("construction", "visibility"),
                rate[:, 0] + 0.2,
                _attrs("key rate of the noisy strategy itself", "bit"),
            ),
            "noisy_key_rate_gap": (
                ("construction", "visibility"),
                rate[:, 0] - rate[:, 1],
                _attrs("qubit minus certified key rate", "bit"),
            ),
            "critical_visibility": (
                ("construction", "rate_method"),
                np.full((3, 3), 0.95),
                _attrs("critical visibility", "1"),
            ),
            "local_visibility": (
                "construction",
                [0.707, 0.95, 0.985],
                _attrs("local visibility eta^L / |eta^Q|", "1"),
            ),
        },
        coords={
            "construction": ("construction", NAMES, _attrs("construction", "1")),
            "rate_method": ("rate_method", methods, _attrs("entropy method", "1")),
            "visibility": ("visibility", v, _attrs("visibility v", "1")),
        },
        attrs={"m": 8, "level": 2},
    )


def _texts(fig):
    """Every string the figure shows: titles, axis labels, legend entries, other texts."""
    out = [t.get_text() for t in fig.findobj(Text)]
    return [t for t in out if t]


def _drawn(fig):
    """Draw on an Agg canvas (the final layout) and return its renderer."""
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return canvas.get_renderer()


def _overlap(a, b) -> float:
    w = min(a.x1, b.x1) - max(a.x0, b.x0)
    h = min(a.y1, b.y1) - max(a.y0, b.y0)
    return max(w, 0.0) * max(h, 0.0)


FIGURES = {
    "figure1": lambda: plots.figure1(figure1_dataset()),
    "figure2": lambda: plots.figure2(figure2_dataset()),
    "tradeoff": lambda: plots.tradeoff_figure(tradeoff_dataset()),
    "certified_vs_qubit": lambda: plots.certified_vs_qubit_figure(certified_dataset()),
}


@pytest.mark.parametrize("name", sorted(FIGURES))
def test_no_dimensionless_unit_in_any_text(name):
    fig = FIGURES[name]()
    texts = _texts(fig)
    assert not [t for t in texts if "[1]" in t], texts
    if name != "certified_vs_qubit":  # units other than 1 are still shown
        assert any("[rad]" in t or "[bit]" in t for t in texts), texts
    plots.close(fig)


def test_axis_label_drops_only_the_unit_one():
    assert plots.axis_label(xr.DataArray(0.0, attrs=_attrs("visibility v", "1"))) == "visibility v"
    assert plots.axis_label(xr.DataArray(0.0, attrs=_attrs("theta", "rad"))) == "θ [rad]"


def test_figure2_contour_labels_do_not_pile_up():
    """Labels in a row along a diagonal touch without overlapping, so each label's box is grown
    by half a label size on every side first: piled-up labels then overlap, spread ones don't."""
    fig = plots.figure2(figure2_dataset())
    renderer = _drawn(fig)
    ax = fig.axes[0]
    labels = [t for t in ax.texts if t.get_text() in {"2.1", "2.2", "2.3", "2.45"}]
    assert len(labels) >= 8
    boxes = [t.get_window_extent(renderer) for t in labels]
    size = float(np.median([max(b.width, b.height) for b in boxes]))
    boxes = [b.padded(size / 2) for b in boxes]
    # the part of each grown box covered by the others, at most a small fraction
    worst = max(
        sum(_overlap(a, b) for b in boxes if b is not a) / (a.width * a.height) for a in boxes
    )
    assert worst < 0.05, worst
    plots.close(fig)


def test_tradeoff_legend_keeps_off_the_lines():
    fig = plots.tradeoff_figure(tradeoff_dataset())
    renderer = _drawn(fig)
    legends = fig.legends + [a.get_legend() for a in fig.axes if a.get_legend() is not None]
    assert legends
    for ax in fig.axes:
        box = ax.get_window_extent(renderer)
        for line in ax.get_lines():
            xy = line.get_transform().transform(line.get_xydata())
            # horizontal reference lines (axhline) span the axes: sample them along x
            if len(xy) == 2 and line.get_transform() is not ax.transData:
                xs = np.linspace(box.x0, box.x1, 200)
                xy = np.column_stack([xs, np.full_like(xs, xy[0, 1])])
            for leg in legends:
                lb = leg.get_window_extent(renderer)
                inside = (xy[:, 0] > lb.x0) & (xy[:, 0] < lb.x1) & (xy[:, 1] > lb.y0)
                inside &= xy[:, 1] < lb.y1
                assert not inside.any(), (line.get_label(), ax.get_title())
    plots.close(fig)


def test_certified_vs_qubit_ylabels_do_not_collide():
    fig = plots.certified_vs_qubit_figure(certified_dataset())
    renderer = _drawn(fig)
    top, bottom = (fig.axes[k].yaxis.label for k in (0, 3))
    assert top.get_text() and bottom.get_text()
    a, b = top.get_window_extent(renderer), bottom.get_window_extent(renderer)
    assert _overlap(a, b) == 0.0, (a, b)
    # and each stays within the height of its own panel (the shorter bottom one overran it)
    for k, box in ((0, a), (3, b)):
        panel = fig.axes[k].get_window_extent(renderer)
        assert panel.y0 <= box.y0 and box.y1 <= panel.y1, (k, box, panel)
    plots.close(fig)


def test_certified_vs_qubit_titles_are_physics_names():
    fig = plots.certified_vs_qubit_figure(certified_dataset())
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert len(titles) == 3
    assert not [t for t in titles if any(code in t for code in ("chsh-", "delta=", "sqrt"))]
    assert titles[1].startswith("Prop. 3, φ = π/2 − 0.1")
    assert titles[2].startswith("Prop. 5, φ = π/2 − 0.1")
    assert "(θ, φ, ω) = (π/3, π/2 − 0.1, 5π/6)" in titles[1]
    plots.close(fig)


@pytest.mark.parametrize(
    ("name", "title"),
    [
        ("chsh", "CHSH member"),
        ("chsh-5/2 delta=0.03", "Prop. 3, φ = π/2 − 0.03"),
        ("chsh-1+sqrt2 delta=0.3", "Prop. 5, φ = π/2 − 0.3"),
        ("omega=5pi/6", "ω = 5π/6"),
        ("prop2", "Prop. 2, (π/3, π/3, π)"),
        ("prop3 delta=0.1", "Prop. 3, φ = π/2 − 0.1"),
        ("prop5 delta=0.03", "Prop. 5, φ = π/2 − 0.03"),
        ("other", "other"),
    ],
)
def test_construction_title(name, title):
    assert plots.construction_title(name) == title


def test_figure1_legend_names_the_lightened_region():
    fig = plots.figure1(figure1_dataset())
    (legend,) = fig.legends
    patches = [h for h in legend.legend_handles if isinstance(h, Patch)]
    assert len(patches) == 1
    label = [t.get_text() for t in legend.get_texts()][legend.legend_handles.index(patches[0])]
    assert "(4)" in label and "lightened" in label
    plots.close(fig)


def test_xarray_titles_of_label_coordinates_have_no_units(rng):
    # xarray titles a slice by its scalar coordinates ("x = 0 [1]" when x carried units "1")
    ds = jb.evaluate_grid(*(np.sort(rng.uniform(0, 2 * np.pi, 3)) for _ in range(3)))
    from matplotlib.figure import Figure

    ax = Figure().add_subplot()
    da = ds.correlators.isel(theta=0, phi=0, omega=0, x=0)
    da.drop_vars(["theta", "phi", "omega"]).plot(ax=ax)
    texts = [ax.get_title(), ax.get_xlabel()]
    assert "x = 0" in texts[0] and "[1]" not in texts[0], texts
    assert texts[1] == "Bob's input y", texts


def _protocol_dataset():
    from jaxbell.dataset import labelled_dataset

    names, eff = ["chsh", "prop3 delta=0.1"], np.linspace(0.8, 1.0, 5)
    rate = np.broadcast_to(eff - 0.9, (2, 2, 2, 5)).copy()
    crit = np.full((2, 2, 2, 2, 2), 0.9)
    return labelled_dataset(
        {
            "max_chsh": (("construction",), np.array([2.828, 2.579])),
            "critical_value": (
                ("construction", "threshold", "protocol", "preprocessing", "rate_method"),
                crit,
            ),
            "key_rate_vs_efficiency": (
                ("construction", "preprocessing", "rate_method", "efficiency"),
                rate,
            ),
        },
        {
            "construction": np.array(names),
            "threshold": np.array(["visibility", "efficiency"]),
            "protocol": np.array(["paper", "aligned"]),
            "preprocessing": np.array(["none", "optimal"]),
            "rate_method": np.array(["qubit", "bff"]),
            "efficiency": eff,
        },
        title="synthetic",
        settings={},
    )


def test_protocol_efficiency_figure_labels_and_lines():
    fig = plots.protocol_efficiency_figure(_protocol_dataset())
    FigureCanvasAgg(fig).draw()
    axes = fig.axes
    assert [a.get_title().split("\n")[0] for a in axes] == ["CHSH member", "Prop. 3, φ = π/2 − 0.1"]
    assert axes[0].get_xlabel() == "detection efficiency" and "[bit]" in axes[0].get_ylabel()
    texts = [t.get_text() for t in axes[0].get_legend().get_texts()]
    assert len(texts) == 4 and any("certified" in t and "preprocessing" in t for t in texts)
    # four curves and four critical-efficiency lines (at 0.9) per panel
    vlines = [ln for ln in axes[0].get_lines() if np.allclose(ln.get_xdata(), 0.9)]
    assert len(vlines) == 4
    assert not any("[1]" in t.get_text() for t in fig.findobj(Text))
    plots.close(fig)


def test_finite_size_figure_from_the_study_data():
    import pathlib

    path = pathlib.Path(__file__).resolve().parents[1] / "figures" / "data" / "finite_size.nc"
    ds = jb.open_dataset(path)
    fig = plots.finite_size_figure(ds)
    FigureCanvasAgg(fig).draw()
    a, b, c = fig.axes
    assert a.get_xscale() == "log" and b.get_yscale() == "log" and c.get_yscale() == "log"
    assert a.get_xlabel() == "rounds n" and "[bit / round]" in a.get_ylabel()
    labels = [t.get_text() for t in a.get_legend().get_texts()]
    assert "CHSH member, v = 1" in labels and all("v = " in t for t in labels)
    # one curve per (construction, visibility) with data, plus a dotted asymptote each
    curves = [ln for ln in a.get_lines() if ln.get_linestyle() != ":"]
    assert len(curves) == int(np.isfinite(ds.finite_key_rate.isel(rounds=-1)).sum())
    # panel (c): the smallest n falls as delta grows (max CHSH moves away from 5/2)
    x, y = c.get_lines()[0].get_data()
    assert np.all(np.diff(y[np.argsort(x)]) < 0)
    assert not any("[1]" in t.get_text() for t in fig.findobj(Text))
    plots.close(fig)


def test_design_figure_from_the_study_data():
    import pathlib

    path = pathlib.Path(__file__).resolve().parents[1] / "figures" / "data" / "design.nc"
    ds = jb.open_dataset(path)
    fig = plots.design_figure(ds)
    renderer = _drawn(fig)
    a, b = fig.axes
    assert a.get_xlabel() == "cap on max CHSH" and a.get_ylabel() == "best critical visibility"
    for ax in (a, b):
        texts = [t.get_text() for t in ax.get_legend().get_texts()]
        assert texts[:2] == ["attack (lower bound)", "certified (upper bound)"]
        assert any(t.startswith("CHSH member (certified 0.85") for t in texts)
        # the legend keeps off the fronts' markers
        box = ax.get_legend().get_window_extent(renderer)
        for line in ax.get_lines()[:2]:
            pts = ax.transData.transform(np.column_stack(line.get_data()))
            assert not any(box.contains(x, y) for x, y in pts)
    assert not any("[1]" in t.get_text() for t in fig.findobj(Text))
    plots.close(fig)


def test_figure2_labels_and_crosses_keep_off_the_other_lines():
    """No contour label on a dotted or dashed line (or the triangles' edges), and the blue
    crosses (max CHSH 1 + sqrt 2) on no labelled contour."""
    from matplotlib.contour import ContourSet

    from jaxbell import reproduce as rp

    ds = jb.evaluate_grid(
        np.linspace(*rp.FIG2_THETA, 161), rp.FIG2_PHI, np.linspace(*rp.FIG2_OMEGA, 161)
    )
    # the maxima of I_CHSH with E01 = 0 (Prop. 5), where reproduce's search puts them
    ds.attrs.update(
        randomness_crosses_theta=[PI / 4, 7 * PI / 4], randomness_crosses_omega=[PI, 2 * PI]
    )
    fig = plots.figure2(ds)
    renderer = _drawn(fig)
    ax = fig.axes[0]
    labelled = next(c for c in ax.collections if isinstance(c, ContourSet) and c.labelTexts)
    others = np.concatenate(
        [
            p.vertices
            for c in ax.collections
            if isinstance(c, ContourSet) and c is not labelled and not c.filled
            for p in c.get_paths()
            if len(p.vertices)
        ]
    )
    others = ax.transData.transform(others[np.all(np.isfinite(others), axis=1)])
    for t in labelled.labelTexts:
        box = t.get_window_extent(renderer)
        inside = (
            (others[:, 0] > box.x0)
            & (others[:, 0] < box.x1)
            & (others[:, 1] > box.y0)
            & (others[:, 1] < box.y1)
        )
        assert not inside.any(), t.get_text()
    contour = ax.transData.transform(
        np.concatenate([p.vertices for p in labelled.get_paths() if len(p.vertices)])
    )
    blue = [ln for ln in ax.get_lines() if ln.get_marker() == "x" and ln.get_color() == "tab:blue"]
    assert blue
    for ln in blue:
        for xy in ax.transData.transform(np.column_stack(ln.get_data())):
            gap = np.hypot(*(contour - xy).T).min() * 72.0 / fig.dpi  # points
            assert gap > ln.get_markersize() / 2, gap
    plots.close(fig)


def test_loss_devices_figure_with_a_refined_device():
    import pathlib

    import xarray as xr

    path = pathlib.Path(__file__).resolve().parents[1] / "figures" / "data" / "loss_devices.nc"
    ds = jb.open_dataset(path)
    eff = np.array([0.84, 0.82, 0.80])
    rate = {"rate_certified": ("efficiency", [4e-3, 1e-3, -1e-4])}
    refined = xr.Dataset(rate, coords={"efficiency": eff}, attrs={"certified_threshold": 0.805})
    fig = plots.loss_devices_figure(ds, refined)
    FigureCanvasAgg(fig).draw()
    (ax,) = fig.axes
    texts = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any("refined" in t for t in texts)
    # the negative rate is not drawn on the log axis; the threshold is marked and labelled
    line = next(ln for ln in ax.get_lines() if "refined" in str(ln.get_label()))
    assert np.isnan(line.get_ydata()[-1]) and np.all(np.isfinite(line.get_ydata()[:2]))
    assert any(np.allclose(ln.get_xdata(), 0.805) for ln in ax.get_lines())
    assert any("0.805" in t.get_text() for t in ax.texts)
    plots.close(fig)
