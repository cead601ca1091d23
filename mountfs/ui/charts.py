"""Charts and the lineage graph as SVG markup, drawn on the server: the page loads nothing from anywhere else.

Every value comes from a store anybody with write access may have edited: text
is escaped (``_t``), numbers are taken only when finite, and each chart draws a
bounded number of marks, so a crafted report can neither inject markup nor make
a page of gigabytes.
"""

from __future__ import annotations

import html
import math
from typing import Any, Iterable, Sequence

from markupsafe import Markup

W, H = 640, 300
_LEFT, _RIGHT, _TOP, _BOTTOM = 60, 16, 16, 44
#: at most this many bars, points per line, lines, matrix cells per side: beyond, the data is cut
MAX_BARS, MAX_POINTS, MAX_LINES, MAX_CELLS = 200, 5000, 20, 60
PALETTE = ("#3366cc", "#dc3912", "#ff9900", "#109618", "#990099", "#0099c6", "#dd4477", "#66aa00")


def _t(value: Any) -> str:
    """Text for SVG: escaped, and cut to a readable length."""
    text = str(value)
    return html.escape(text if len(text) <= 80 else text[:79] + "…", quote=True)


def num(value: Any) -> float | None:
    """``value`` as a finite float; None for anything else (strings, NaN, booleans)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    f = float(value)
    return f if math.isfinite(f) else None


def _fmt(v: float) -> str:
    if v == 0:
        return "0"
    if abs(v) >= 1e5 or abs(v) < 1e-3:
        return f"{v:.2g}"
    return f"{v:.4g}"


def _svg(body: Iterable[str], width: int = W, height: int = H, label: str = "chart") -> Markup:
    return Markup(
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{_t(label)}">'
        f'<rect class="bg" x="0" y="0" width="{width}" height="{height}" fill="#ffffff"/>'
        + "".join(body) + "</svg>"
    )


def _ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    if hi <= lo:
        return [lo]
    step = (hi - lo) / count
    mag = 10 ** math.floor(math.log10(step))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= step)
    first = math.ceil(lo / step) * step
    out: list[float] = []
    v = first
    while v <= hi + step * 1e-9 and len(out) < 20:
        out.append(round(v, 12))
        v += step
    return out


class _Frame:
    """Axes over [x0, x1] x [y0, y1] in the plot area."""

    def __init__(self, x0: float, x1: float, y0: float, y1: float) -> None:
        if x1 <= x0:
            x0, x1 = x0 - 1, x1 + 1
        if y1 <= y0:
            y0, y1 = y0 - 1, y1 + 1
        self.x0, self.x1, self.y0, self.y1 = x0, x1, y0, y1
        self.pw, self.ph = W - _LEFT - _RIGHT, H - _TOP - _BOTTOM

    def x(self, v: float) -> float:
        return _LEFT + (v - self.x0) / (self.x1 - self.x0) * self.pw

    def y(self, v: float) -> float:
        return _TOP + self.ph - (v - self.y0) / (self.y1 - self.y0) * self.ph

    def axes(self, xaxis: str = "", yaxis: str = "", xticks: bool = True) -> list[str]:
        out = [f'<line class="axis" x1="{_LEFT}" y1="{_TOP + self.ph}" x2="{_LEFT + self.pw}" y2="{_TOP + self.ph}" stroke="#444"/>',
               f'<line class="axis" x1="{_LEFT}" y1="{_TOP}" x2="{_LEFT}" y2="{_TOP + self.ph}" stroke="#444"/>']
        for v in _ticks(self.y0, self.y1):
            y = self.y(v)
            out.append(f'<line x1="{_LEFT}" y1="{y:.1f}" x2="{_LEFT + self.pw}" y2="{y:.1f}" stroke="#eee"/>'
                       f'<text x="{_LEFT - 4}" y="{y + 4:.1f}" font-size="11" text-anchor="end" fill="#444">{_fmt(v)}</text>')
        if xticks:
            for v in _ticks(self.x0, self.x1):
                x = self.x(v)
                out.append(f'<text x="{x:.1f}" y="{_TOP + self.ph + 14}" font-size="11" text-anchor="middle" '
                           f'fill="#444">{_fmt(v)}</text>')
        if xaxis:
            out.append(f'<text x="{_LEFT + self.pw / 2}" y="{H - 6}" font-size="12" text-anchor="middle" fill="#222">{_t(xaxis)}</text>')
        if yaxis:
            out.append(f'<text x="12" y="{_TOP + self.ph / 2}" font-size="12" text-anchor="middle" fill="#222" '
                       f'transform="rotate(-90 12 {_TOP + self.ph / 2})">{_t(yaxis)}</text>')
        return out


def _legend(names: Sequence[str]) -> list[str]:
    out = []
    for i, name in enumerate(names[:MAX_LINES]):
        y = _TOP + 4 + i * 14
        out.append(f'<rect x="{W - 150}" y="{y}" width="10" height="10" fill="{PALETTE[i % len(PALETTE)]}"/>'
                   f'<text x="{W - 136}" y="{y + 9}" font-size="11" fill="#222">{_t(name)}</text>')
    return out


def bars(series: Sequence[Sequence[Any]], xlabels: Sequence[Any] | None = None, names: Sequence[str] | None = None,
         xaxis: str = "", yaxis: str = "", label: str = "histogram") -> Markup:
    """Grouped bars: one group per index, one bar per series in it."""
    rows = [[num(v) or 0.0 for v in s[:MAX_BARS]] for s in series[:MAX_LINES]]
    count = max((len(r) for r in rows), default=0)
    if not count:
        return empty(label)
    top = max((v for r in rows for v in r), default=0.0)
    low = min(0.0, min((v for r in rows for v in r), default=0.0))
    f = _Frame(0, count, low, top if top > low else low + 1)
    body = f.axes(xaxis, yaxis, xticks=False)
    group = f.pw / count
    width = max(1.0, group * 0.8 / len(rows))
    for si, r in enumerate(rows):
        color = PALETTE[si % len(PALETTE)]
        for i, v in enumerate(r):
            x = _LEFT + i * group + group * 0.1 + si * width
            y0, y1 = f.y(max(v, 0.0)), f.y(min(v, 0.0))
            body.append(f'<rect class="bar" x="{x:.1f}" y="{y0:.1f}" width="{width:.1f}" height="{max(0.5, y1 - y0):.1f}" '
                        f'fill="{color}"><title>{_t(xlabels[i] if xlabels and i < len(xlabels) else i)}: {_fmt(v)}</title></rect>')
    labels = list(xlabels or [])[:count]
    every = max(1, math.ceil(count / 16))
    for i in range(0, count, every):
        text = labels[i] if i < len(labels) else i
        body.append(f'<text x="{_LEFT + (i + 0.5) * group:.1f}" y="{_TOP + f.ph + 14}" font-size="11" '
                    f'text-anchor="middle" fill="#444">{_t(text)}</text>')
    if names and len(rows) > 1:
        body += _legend(names)
    return _svg(body, label=label)


def lines(series: Sequence[tuple[str, Sequence[Any]]], xaxis: str = "", yaxis: str = "", markers: bool = False,
          connect: bool = True, label: str = "line plot") -> Markup:
    """Lines (or markers only, ``connect=False``) of (name, [[x, y], ...]) series."""
    cleaned: list[tuple[str, list[tuple[float, float]]]] = []
    for name, points in series[:MAX_LINES]:
        pts = []
        for p in points[:MAX_POINTS]:
            if isinstance(p, (list, tuple)) and len(p) == 2:
                x, y = num(p[0]), num(p[1])
                if x is not None and y is not None:
                    pts.append((x, y))
        cleaned.append((name, pts))
    every = [p for _, pts in cleaned for p in pts]
    if not every:
        return empty(label)
    lo, hi = min(p[1] for p in every), max(p[1] for p in every)
    pad = (hi - lo) * 0.05  # no mark drawn on the frame's edge
    f = _Frame(min(p[0] for p in every), max(p[0] for p in every), lo - pad, hi + pad)
    body = f.axes(xaxis, yaxis)
    for i, (_, pts) in enumerate(cleaned):
        color = PALETTE[i % len(PALETTE)]
        if connect and len(pts) > 1:
            path = " ".join(f"{f.x(x):.1f},{f.y(y):.1f}" for x, y in pts)
            body.append(f'<polyline class="line" points="{path}" fill="none" stroke="{color}" stroke-width="2"/>')
        if markers or not connect or len(pts) == 1:
            body += [f'<circle class="point" cx="{f.x(x):.1f}" cy="{f.y(y):.1f}" r="3" fill="{color}"/>' for x, y in pts]
    if len(cleaned) > 1 or any(name for name, _ in cleaned):
        body += _legend([name for name, _ in cleaned])
    return _svg(body, label=label)


def heatmap(matrix: Sequence[Sequence[Any]], xlabels: Sequence[Any] | None = None, ylabels: Sequence[Any] | None = None,
            xaxis: str = "", yaxis: str = "", label: str = "confusion matrix") -> Markup:
    """A matrix as shaded cells with their values."""
    rows = [[num(v) for v in r[:MAX_CELLS]] for r in matrix[:MAX_CELLS] if isinstance(r, (list, tuple))]
    cols = max((len(r) for r in rows), default=0)
    if not cols:
        return empty(label)
    values = [v for r in rows for v in r if v is not None]
    lo, hi = min(values, default=0.0), max(values, default=1.0)
    size = min(36.0, (W - 120) / cols, (H - 60) / len(rows))
    left, top = 110, 10
    body = []
    for ri, r in enumerate(rows):
        for ci in range(cols):
            v = r[ci] if ci < len(r) else None
            share = 0.0 if v is None or hi == lo else (v - lo) / (hi - lo)
            shade = int(245 - share * 180)
            x, y = left + ci * size, top + ri * size
            body.append(f'<rect class="cell" x="{x:.1f}" y="{y:.1f}" width="{size:.1f}" height="{size:.1f}" '
                        f'fill="rgb({shade},{shade},255)" stroke="#fff"/>')
            if v is not None and size >= 18:
                body.append(f'<text x="{x + size / 2:.1f}" y="{y + size / 2 + 4:.1f}" font-size="10" text-anchor="middle" '
                            f'fill="{"#fff" if share > 0.6 else "#222"}">{_fmt(v)}</text>')
        name = ylabels[ri] if ylabels and ri < len(ylabels) else ri
        body.append(f'<text x="{left - 4}" y="{top + ri * size + size / 2 + 4:.1f}" font-size="11" text-anchor="end" '
                    f'fill="#444">{_t(name)}</text>')
    for ci in range(cols):
        name = xlabels[ci] if xlabels and ci < len(xlabels) else ci
        body.append(f'<text x="{left + ci * size + size / 2:.1f}" y="{top + len(rows) * size + 14:.1f}" font-size="11" '
                    f'text-anchor="middle" fill="#444">{_t(name)}</text>')
    height = int(top + len(rows) * size + 40)
    if xaxis:
        body.append(f'<text x="{left + cols * size / 2:.1f}" y="{height - 6}" font-size="12" text-anchor="middle">{_t(xaxis)}</text>')
    if yaxis:
        body.append(f'<text x="12" y="{top + len(rows) * size / 2:.1f}" font-size="12" text-anchor="middle" '
                    f'transform="rotate(-90 12 {top + len(rows) * size / 2:.1f})">{_t(yaxis)}</text>')
    return _svg(body, width=int(left + cols * size + 20), height=max(height, 60), label=label)


def empty(label: str) -> Markup:
    return _svg([f'<text x="{W / 2}" y="{H / 2}" text-anchor="middle" fill="#888">no data</text>'], height=60, label=label)


# --- reports ----------------------------------------------------------------------


def report_chart(kind: str, data: dict[str, Any]) -> Markup | None:
    """The SVG of a chart report (``reports.read_reports``), None for a kind that is not a chart."""
    xaxis, yaxis = str(data.get("xaxis") or ""), str(data.get("yaxis") or "")
    if kind == "histogram":
        values = data.get("values") or []
        if values and all(isinstance(v, (list, tuple)) for v in values):
            # one row per bin, one value per series (ClearML's 2-D histogram): columns are the series
            width = max(len(v) for v in values)
            series = [[row[i] if i < len(row) else 0 for row in values] for i in range(width)]
        else:
            series = [values]
        return bars(series, data.get("xlabels"), data.get("labels"), xaxis, yaxis, "histogram")
    if kind == "scalar":
        return lines([("", data.get("points") or [])], "iteration", yaxis, markers=True, label="scalar")
    if kind == "line":
        return lines([(str(ln.get("name", "")), ln.get("points") or []) for ln in data.get("lines") or []],
                     xaxis, yaxis, markers="markers" in str(data.get("mode", "")), label="line plot")
    if kind == "scatter2d":
        mode = str(data.get("mode") or "markers")
        return lines([("", data.get("points") or [])], xaxis, yaxis, markers=True, connect="lines" in mode,
                     label="scatter plot")
    if kind == "confusion":
        return heatmap(data.get("matrix") or [], data.get("xlabels"), data.get("ylabels"), xaxis, yaxis)
    if kind == "plotly":
        figure = data.get("figure")
        return plotly_figure(figure if isinstance(figure, dict) else {})
    return None


def plotly_figure(figure: dict[str, Any]) -> Markup:
    """A plotly figure's traces drawn as SVG: scatter (lines, markers), bar and heatmap; others are skipped."""
    traces = [t for t in figure.get("data") or [] if isinstance(t, dict)][:MAX_LINES]
    layout = figure.get("layout") if isinstance(figure.get("layout"), dict) else {}
    assert isinstance(layout, dict)

    def axis_title(name: str) -> str:
        ax = layout.get(name)
        title = ax.get("title") if isinstance(ax, dict) else None
        if isinstance(title, dict):
            title = title.get("text")
        return str(title) if isinstance(title, (str, int, float)) else ""

    xaxis, yaxis = axis_title("xaxis"), axis_title("yaxis")
    kinds = {str(t.get("type") or "scatter") for t in traces}
    if "heatmap" in kinds:
        t = next(t for t in traces if t.get("type") == "heatmap")
        z = t.get("z")
        return heatmap(z if isinstance(z, list) else [], _seq(t.get("x")), _seq(t.get("y")), xaxis, yaxis, label="plotly heatmap")
    if kinds and kinds <= {"bar"}:
        ys = [_seq(t.get("y")) for t in traces]
        return bars(ys, _seq(traces[0].get("x")), [str(t.get("name") or "") for t in traces], xaxis, yaxis, "plotly bars")
    series = []
    connect = False
    for t in traces:
        if str(t.get("type") or "scatter") not in ("scatter", "scattergl"):
            continue
        ys = _seq(t.get("y"))
        xs = _seq(t.get("x")) or list(range(len(ys)))
        mode = str(t.get("mode") or "lines")
        connect = connect or "lines" in mode
        series.append((str(t.get("name") or ""), [[x, y] for x, y in zip(xs, ys)]))
    return lines(series, xaxis, yaxis, markers=not connect, connect=connect, label="plotly figure")


def _seq(value: Any) -> list[Any]:
    return list(value)[:MAX_POINTS] if isinstance(value, (list, tuple)) else []


# --- the lineage graph ---------------------------------------------------------------------


def lineage(nodes: dict[str, dict[str, str]], edges: list[tuple[str, str]], current: str) -> Markup:
    """Versions as boxes in columns by depth (parents left of children), parent -> child arrows.

    ``nodes``: id -> {"label", "status", "href"} ("" href: a deleted version, drawn dashed).
    """
    parents: dict[str, list[str]] = {n: [] for n in nodes}
    for parent, child in edges:
        parents.setdefault(child, []).append(parent)
    depth: dict[str, int] = {}

    def depth_of(n: str, seen: frozenset[str] = frozenset()) -> int:
        if n in depth:
            return depth[n]
        if n in seen:  # a crafted cycle: drawn, never followed forever
            return 0
        d = max((depth_of(p, seen | {n}) + 1 for p in parents.get(n, [])), default=0)
        depth[n] = d
        return d

    for n in nodes:
        depth_of(n)
    columns: dict[int, list[str]] = {}
    for n in sorted(nodes, key=lambda i: (depth[i], i)):
        columns.setdefault(depth[n], []).append(n)
    box_w, box_h, gap_x, gap_y = 250, 46, 60, 24
    where: dict[str, tuple[float, float]] = {}
    for d, ids in columns.items():
        for i, n in enumerate(ids):
            where[n] = (20 + d * (box_w + gap_x), 20 + i * (box_h + gap_y))
    width = int(40 + (max(columns, default=0) + 1) * (box_w + gap_x) - gap_x)
    height = int(40 + max((len(v) for v in columns.values()), default=1) * (box_h + gap_y) - gap_y)
    body = ['<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="8" markerHeight="8" '
            'orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#555"/></marker></defs>']
    for parent, child in edges:
        if parent not in where or child not in where:
            continue
        (px, py), (cx, cy) = where[parent], where[child]
        x1, y1, x2, y2 = px + box_w, py + box_h / 2, cx, cy + box_h / 2
        mid = (x1 + x2) / 2
        body.append(f'<path class="edge" d="M {x1:.1f} {y1:.1f} C {mid:.1f} {y1:.1f} {mid:.1f} {y2:.1f} {x2:.1f} {y2:.1f}" '
                    f'fill="none" stroke="#555" stroke-width="1.5" marker-end="url(#arrow)"/>')
    colors = {"draft": "#fff4d6", "uploaded": "#fff4d6", "completed": "#e3f0ff", "published": "#dff5e1"}
    for n, (x, y) in where.items():
        info = nodes[n]
        fill = colors.get(info.get("status", ""), "#f0f0f0")
        stroke = "#d62728" if n == current else "#557"
        dash = ' stroke-dasharray="4 3"' if not info.get("href") else ""
        box = (f'<rect x="{x}" y="{y}" width="{box_w}" height="{box_h}" rx="6" fill="{fill}" stroke="{stroke}" '
               f'stroke-width="{3 if n == current else 1.2}"{dash}/>'
               f'<text x="{x + 8}" y="{y + 19}" font-size="12" font-weight="bold" fill="#111">{_t(info.get("label", n))}</text>'
               f'<text x="{x + 8}" y="{y + 36}" font-size="11" fill="#444">{_t(info.get("status", "deleted"))} · {_t(n)}</text>')
        href = info.get("href")
        body.append(f'<a class="node" href="{_t(href)}">{box}</a>' if href else f'<g class="node">{box}</g>')
    return _svg(body, width=max(width, 240), height=max(height, 90), label="lineage graph")
