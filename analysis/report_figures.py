"""The report's figures (matplotlib, Agg): a heatmap of country pairs and a mechanisms chart.

Figures are drawn on :class:`matplotlib.figure.Figure` objects with an Agg canvas — never
through ``pyplot``, so no global state, no display and no backend switch — and saved to bytes
as PNG (for HTML and DOCX) and SVG (for print).  SVG output is deterministic (fixed hash salt,
no date).  Labels come from the report's language; data labels (country codes, mechanism
names) stay as they are.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import dataclass

import matplotlib as mpl
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import LinearSegmentedColormap
from matplotlib.figure import Figure

from analysis.report_model import HeatmapData
from analysis.report_safety import clean_text

__all__ = ["RenderedFigure", "render_figures"]

DPI = 150
_RC = {
    "svg.hashsalt": "res64-report",
    "svg.fonttype": "path",
    "font.family": "DejaVu Sans",
    "font.size": 9,
    "axes.titlesize": 10,
    "text.parse_math": False,  # a '$' in a data label must stay a dollar sign
    "text.usetex": False,
}
_CMAP = LinearSegmentedColormap.from_list("res64", ["#fff5eb", "#fdae6b", "#d94801", "#7f2704"])
_MECH_COLOURS: dict[str, str] = {
    # DNS: blues; TCP: greys; TLS: purples; HTTP: reds, oranges, greens, browns; route: cyan
    "dns_nxdomain": "#1f77b4", "dns_bogon": "#6baed6", "dns_inconsistent": "#08519c",
    "tcp_timeout": "#7f7f7f", "tcp_refused": "#bdbdbd", "tcp_reset": "#525252",
    "tls_reset": "#9467bd", "tls_timeout": "#c5b0d5", "tls_cert": "#54278f",
    "http_geoblock": "#d62728", "http_451": "#ff7f0e", "http_geo_redirect": "#ff9896",
    "http_blockpage": "#2ca02c", "http_status": "#8c564b", "http_body": "#c49c94",
    "http_timeout": "#bcbd22", "http_reset": "#dbdb8d", "route_blackhole": "#17becf",
    "none": "#e0e0e0",
}  # fmt: skip
_OTHER_COLOURS = ("#e377c2", "#f7b6d2", "#98df8a", "#ffbb78", "#9edae5", "#393b79")


@dataclass(frozen=True)
class RenderedFigure:
    key: str  # file stem: heatmap | mechanisms
    number: int
    title: str  # "Figure 1 – ..."
    png: bytes
    svg: bytes


def _save(fig: Figure) -> tuple[bytes, bytes]:
    FigureCanvasAgg(fig)
    png, svg = io.BytesIO(), io.BytesIO()
    fig.savefig(png, format="png", dpi=DPI, metadata={"Software": None})
    fig.savefig(svg, format="svg", metadata={"Date": None, "Creator": None})
    return png.getvalue(), svg.getvalue()


def _empty(fig: Figure, text: str) -> None:
    ax = fig.add_subplot()
    ax.set_axis_off()
    ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=11, color="#555555")


def heatmap(data: HeatmapData, t: Mapping[str, str]) -> Figure:
    """Affected (rows) × responsible (columns): share of targets denied, with n/N per cell."""
    rows, cols = list(data.affected), list(data.responsible)
    width = min(3.2 + 0.9 * max(len(cols), 1), 16)
    height = min(1.6 + 0.55 * max(len(rows), 1), 20)
    fig = Figure(figsize=(width, height), layout="constrained")
    if not rows or not cols:
        _empty(fig, t["no_denial_figure"])
        return fig
    ax = fig.add_subplot()
    grid = [[float("nan")] * len(cols) for _ in rows]
    for (a, r), (share, _, _) in data.cells.items():
        grid[rows.index(a)][cols.index(r)] = share
    im = ax.imshow(grid, cmap=_CMAP, vmin=0.0, vmax=1.0, aspect="auto")
    ax.set_facecolor("#f2f2f2")
    for (a, r), (share, denied, tested) in data.cells.items():
        i, j = rows.index(a), cols.index(r)
        colour = "white" if share >= 0.55 else "black"
        ax.text(j, i, f"{share:.0%}\n{denied}/{tested}", ha="center", va="center",
                fontsize=8, color=colour)  # fmt: skip
    ax.set_xticks(range(len(cols)), [clean_text(c, 16) for c in cols], rotation=0)
    ax.set_yticks(range(len(rows)), [clean_text(r, 16) for r in rows])
    ax.tick_params(which="both", length=0)
    ax.set_xticks([x - 0.5 for x in range(1, len(cols))], minor=True)
    ax.set_yticks([y - 0.5 for y in range(1, len(rows))], minor=True)
    ax.grid(which="minor", color="white", linewidth=2)
    for spine in ax.spines.values():
        spine.set_visible(False)
    ax.set_xlabel(t["axis_responsible"])
    ax.set_ylabel(t["axis_affected"])
    ax.xaxis.set_label_position("top")
    ax.xaxis.tick_top()
    bar = fig.colorbar(im, ax=ax, shrink=0.9, format=lambda x, _: f"{x:.0%}")
    bar.set_label(t["axis_share"])
    return fig


def mechanisms(data: HeatmapData, t: Mapping[str, str]) -> Figure:
    """One horizontal stacked bar per country pair: counts by mechanism."""
    pairs = [(label, m) for label, m in data.mechanisms if m]
    height = min(1.8 + 0.38 * max(len(pairs), 1), 24)
    fig = Figure(figsize=(8.0, height), layout="constrained")
    if not pairs:
        _empty(fig, t["no_denial_figure"])
        return fig
    ax = fig.add_subplot()
    totals: dict[str, int] = {}
    for _, m in pairs:
        for k, n in m.items():
            totals[k] = totals.get(k, 0) + n
    names = sorted(totals, key=lambda k: (-totals[k], k))
    labels = [clean_text(label, 40) for label, _ in pairs]
    ys = list(range(len(pairs)))
    left = [0] * len(pairs)
    for n, name in enumerate(names):
        values = [m.get(name, 0) for _, m in pairs]
        # one colour per mechanism in every report (unknown names take other colours)
        colour = _MECH_COLOURS.get(name) or _OTHER_COLOURS[n % len(_OTHER_COLOURS)]
        ax.barh(ys, values, left=left, height=0.6, label=clean_text(name, 30), color=colour,
                edgecolor="white", linewidth=0.5)  # fmt: skip
        left = [a + b for a, b in zip(left, values, strict=True)]
    ax.set_yticks(ys, labels)
    ax.invert_yaxis()
    ax.set_xlabel(t["axis_count"])
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.spines[["top", "right"]].set_visible(False)
    ax.grid(axis="x", color="#dddddd", linewidth=0.6)
    ax.set_axisbelow(True)
    ax.legend(title=t["legend_mechanism"], loc="upper left", bbox_to_anchor=(1.01, 1.0),
              frameon=False, fontsize=8, title_fontsize=8)  # fmt: skip
    return fig


def render_figures(
    data: HeatmapData, t: Mapping[str, str], titles: tuple[str, str]
) -> list[RenderedFigure]:
    """Both figures as PNG and SVG bytes (titles: the numbered captions)."""
    out = []
    with mpl.rc_context(_RC):
        for n, (key, draw) in enumerate((("heatmap", heatmap), ("mechanisms", mechanisms))):
            png, svg = _save(draw(data, t))
            out.append(RenderedFigure(key, n + 1, titles[n], png, svg))
    return out
