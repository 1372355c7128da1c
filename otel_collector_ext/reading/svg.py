"""Small inline-SVG charts for the HTML report: a time series, a histogram, grouped bars.

Generated as text in Python, so the report needs no JavaScript library and no
network: it renders offline in any browser. Marks carry a ``data-tip`` text
that the report's script shows on hover (and a ``<title>`` for plain viewers).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from html import escape

PALETTE = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1",
           "#ff9da7", "#9c755f", "#bab0ac")
BASELINE, CURRENT = "#6b8fc7", "#f28e2b"
AXIS, GRID, TEXT = "#9aa5b1", "#e8ecf1", "#52606d"
_TIME_STEPS = [timedelta(hours=h) for h in (1, 2, 3, 6, 12, 24, 48, 96, 168, 336, 720)]


def nice_ticks(top: float, count: int = 5) -> list[float]:
    """Round tick values from 0 to at least `top`."""
    if top <= 0:
        return [0.0, 1.0]
    raw = top / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    return [i * step for i in range(int(math.ceil(top / step)) + 1)]


def _fmt(value: float, percent: bool = False) -> str:
    if percent:
        return f"{value * 100:.0f}%" if value * 100 >= 1 or value == 0 else f"{value * 100:.1f}%"
    if abs(value) >= 1_000_000:
        return f"{value / 1_000_000:g}M"
    if abs(value) >= 1000:
        return f"{value / 1000:g}k"
    return f"{value:g}"


def _mark(tag: str, tip: str, **attrs: object) -> str:
    text = " ".join(f'{k.rstrip("_").replace("_", "-")}="{escape(str(v))}"' for k, v in attrs.items())
    return f'<{tag} {text} data-tip="{escape(tip)}"><title>{escape(tip)}</title></{tag}>'


def _svg(width: int, height: int, body: list[str], label: str) -> str:
    return (f'<svg class="chart" viewBox="0 0 {width} {height}" width="100%" role="img" '
            f'aria-label="{escape(label)}" xmlns="http://www.w3.org/2000/svg">' + "".join(body)
            + "</svg>")


def _y_axis(body: list[str], ticks: list[float], y: Callable[[float], float], left: int,
            right: int, percent: bool = False) -> None:
    for t in ticks:
        py = y(t)
        body.append(f'<line x1="{left}" x2="{right}" y1="{py:.1f}" y2="{py:.1f}" stroke="{GRID}"/>')
        body.append(f'<text x="{left - 6}" y="{py + 4:.1f}" text-anchor="end" font-size="11" '
                    f'fill="{TEXT}">{_fmt(t, percent)}</text>')


def _time_axis(body: list[str], t0: datetime, t1: datetime, x: Callable[[datetime], float],
               bottom: float) -> None:
    """Hour or day ticks under a time series, at most about eight."""
    span = (t1 - t0).total_seconds()
    step = next((s for s in _TIME_STEPS if span / s.total_seconds() <= 8), _TIME_STEPS[-1])
    tick = t0.replace(minute=0, second=0, microsecond=0)
    if step >= timedelta(days=1):
        tick = tick.replace(hour=0)
    while tick <= t1:
        if tick >= t0:
            px = x(tick)
            label = f"{tick:%b %d}" if tick.hour == 0 else f"{tick:%H:%M}"
            body.append(f'<line x1="{px:.1f}" x2="{px:.1f}" y1="{bottom}" y2="{bottom + 4}" '
                        f'stroke="{AXIS}"/>')
            body.append(f'<text x="{px:.1f}" y="{bottom + 17}" text-anchor="middle" font-size="11" '
                        f'fill="{TEXT}">{label}</text>')
        tick += step


def time_series(
    series: dict[str, list[tuple[datetime, int]]],
    *,
    bands: Sequence[tuple[datetime, datetime, str, str]] = (),
    width: int = 960,
    height: int = 280,
    unit: str = "rows",
) -> str:
    """Lines of counts over time (one per series) with shaded `bands` (start, end, label,
    colour); `unit` names what is counted, in the tips and the chart's label."""
    left, right, top, bottom = 56, width - 16, 28, height - 30
    times = [t for points in series.values() for t, _ in points]
    if not times:
        return _svg(width, height, [f'<text x="{width / 2}" y="{height / 2}" text-anchor="middle" '
                                    f'fill="{TEXT}">no rows</text>'], "no data")
    t0, t1 = min(times), max(times) + timedelta(hours=1)
    span = (t1 - t0).total_seconds()
    peak = max((n for points in series.values() for _, n in points), default=1)
    ticks = nice_ticks(peak)

    def x(t: datetime) -> float:
        return left + (t - t0).total_seconds() / span * (right - left)

    def y(v: float) -> float:
        return bottom - v / ticks[-1] * (bottom - top)

    body: list[str] = []
    for start, end, label, colour in bands:
        a, b = x(max(start, t0)), x(min(end, t1))
        if b > a:
            body.append(f'<rect x="{a:.1f}" y="{top}" width="{b - a:.1f}" height="{bottom - top}" '
                        f'fill="{colour}" opacity="0.10"/>')
            body.append(f'<text x="{a + 4:.1f}" y="{top - 8}" font-size="11" fill="{colour}" '
                        f'font-weight="600">{escape(label)}</text>')
    _y_axis(body, ticks, y, left, right)
    _time_axis(body, t0, t1, x, bottom)
    body.append(f'<line x1="{left}" x2="{right}" y1="{bottom}" y2="{bottom}" stroke="{AXIS}"/>')
    for i, (name, points) in enumerate(series.items()):
        colour = PALETTE[i % len(PALETTE)]
        coords = [(x(t + timedelta(minutes=30)), y(n)) for t, n in points]
        path = " ".join(f"{'M' if j == 0 else 'L'}{px:.1f},{py:.1f}" for j, (px, py) in enumerate(coords))
        # Earlier lines are drawn wider, so series with equal counts stay visible.
        stroke = 2 + 2 * (len(series) - 1 - i)
        body.append(f'<path class="series" d="{path}" fill="none" stroke="{colour}" '
                    f'stroke-width="{stroke}" stroke-linejoin="round" stroke-opacity="0.9"/>')
        for (t, n), (px, py) in zip(points, coords, strict=True):
            body.append(_mark("circle", f"{name} · {t:%Y-%m-%d %H:00} UTC · {n:,} {unit}",
                              class_="mark", cx=f"{px:.1f}", cy=f"{py:.1f}", r=3, fill=colour))
    return _svg(width, height, body, f"{unit} per hour")


def histogram(
    labels: Sequence[str],
    edges: Sequence[float],
    baseline: Sequence[float],
    current: Sequence[float],
    *,
    width: int = 420,
    height: int = 190,
) -> str:
    """Two distributions over the same bins: baseline as filled bars, current as an outline."""
    left, right, top, bottom = 44, width - 10, 10, height - 28
    ticks = nice_ticks(max([*baseline, *current, 0.01]), 4)
    n = len(baseline)
    w = (right - left) / n

    def y(v: float) -> float:
        return bottom - v / ticks[-1] * (bottom - top)

    body: list[str] = []
    _y_axis(body, ticks, y, left, right, percent=True)
    for i in range(n):
        tip = (f"{labels[i]}: baseline {baseline[i]:.1%}, current {current[i]:.1%}")
        body.append(_mark("rect", tip, class_="mark", x=f"{left + i * w + 1:.1f}",
                          y=f"{y(baseline[i]):.1f}", width=f"{max(w - 2, 1):.1f}",
                          height=f"{bottom - y(baseline[i]):.1f}", fill=BASELINE, opacity="0.55"))
    outline = [f"M{left:.1f},{bottom:.1f}"]
    for i in range(n):
        outline.append(f"L{left + i * w:.1f},{y(current[i]):.1f} L{left + (i + 1) * w:.1f},{y(current[i]):.1f}")
    outline.append(f"L{right:.1f},{bottom:.1f}")
    body.append(f'<path class="series" d="{" ".join(outline)}" fill="none" stroke="{CURRENT}" '
                f'stroke-width="2"/>')
    body.append(f'<line x1="{left}" x2="{right}" y1="{bottom}" y2="{bottom}" stroke="{AXIS}"/>')
    for i in (0, n // 2, n):
        body.append(f'<text x="{left + i * w:.1f}" y="{bottom + 16}" text-anchor="middle" '
                    f'font-size="11" fill="{TEXT}">{_fmt(float(f"{edges[i]:.3g}"))}</text>')
    return _svg(width, height, body, "histogram, baseline vs current")


def bars(
    labels: Sequence[str],
    baseline: Sequence[float],
    current: Sequence[float],
    *,
    width: int = 420,
) -> str:
    """Horizontal grouped bars per category: baseline and current shares."""
    row, label_w, top = 24, 120, 6
    height = top + row * len(labels) + 22
    left, right = label_w + 8, width - 44
    ticks = nice_ticks(max([*baseline, *current, 0.01]), 4)

    def x(v: float) -> float:
        return left + v / ticks[-1] * (right - left)

    body: list[str] = []
    for t in ticks:
        body.append(f'<line x1="{x(t):.1f}" x2="{x(t):.1f}" y1="{top}" y2="{height - 20}" '
                    f'stroke="{GRID}"/>')
        body.append(f'<text x="{x(t):.1f}" y="{height - 6}" text-anchor="middle" font-size="11" '
                    f'fill="{TEXT}">{_fmt(t, percent=True)}</text>')
    for i, label in enumerate(labels):
        y0 = top + i * row
        short = label if len(label) <= 18 else label[:17] + "…"
        body.append(f'<text x="{label_w}" y="{y0 + 15}" text-anchor="end" font-size="12" '
                    f'fill="{TEXT}">{escape(short)}</text>')
        for j, (share, colour, name) in enumerate(((baseline[i], BASELINE, "baseline"),
                                                   (current[i], CURRENT, "current"))):
            body.append(_mark("rect", f"{label}: {name} {share:.1%}", class_="mark",
                              x=f"{left:.1f}", y=f"{y0 + 3 + j * 9:.1f}",
                              width=f"{max(x(share) - left, 0.5):.1f}", height="8", rx="2",
                              fill=colour))
    return _svg(width, height, body, "category shares, baseline vs current")
