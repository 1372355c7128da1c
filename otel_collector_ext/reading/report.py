"""The HTML report: one self-contained page (inline CSS, SVG and a little script, no network).

Rows per hour per collection on top, with the two compared windows shaded;
then, per collection, a card per column comparing the baseline window with the
current one (histogram or category bars), ordered by the population stability
index so the columns that moved most come first. The page's script adds hover
tips and a filter, and marks the page ``data-report="ready"`` once every chart
has drawn marks, which lets a headless browser check the page rendered.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from html import escape

import pandas as pd

from exporters.avro.schema import TIME
from exporters.contract import GEN_AI_COLLECTION

from . import svg
from .genai_report import gen_ai_section
from .profile import Comparison, compare, profiled_columns, rows_per_hour


@dataclass(frozen=True)
class Window:
    """A named time window [start, end)."""

    label: str
    start: datetime
    end: datetime

    def select(self, frame: pd.DataFrame) -> pd.DataFrame:
        times = frame[TIME]
        return frame[(times >= self.start) & (times < self.end)]

    def text(self) -> str:
        return f"{self.start:%Y-%m-%d %H:%M} – {self.end:%Y-%m-%d %H:%M} UTC"


def default_windows(frames: dict[str, pd.DataFrame]) -> tuple[Window, Window]:
    """The data's time range split in two halves: baseline first, current second."""
    times = [f[TIME] for f in frames.values() if len(f)]
    if not times:
        now = datetime.now(UTC)
        return Window("baseline", now, now), Window("current", now, now)
    t0 = min(t.min() for t in times).to_pydatetime()
    t1 = max(t.max() for t in times).to_pydatetime() + timedelta(microseconds=1)
    middle = t0 + (t1 - t0) / 2
    return Window("baseline", t0, middle), Window("current", middle, t1)


def _card(c: Comparison) -> str:
    if c.kind == "numeric":
        chart = svg.histogram(c.labels, c.edges, c.baseline, c.current)
    else:
        chart = svg.bars(c.labels, c.baseline, c.current)
    psi = "–" if c.psi is None else f"{c.psi:.2f}"
    nulls = ""
    if c.baseline_nulls or c.current_nulls:
        nulls = (f'<span class="nulls">nulls {c.baseline_nulls:.1%} → '
                 f'<b>{c.current_nulls:.1%}</b></span>')
    return f"""
<article class="card" data-name="{escape(c.name.lower())}" data-level="{c.level}">
  <header>
    <h3 title="{escape(c.name)}">{escape(c.name)}</h3>
    <span class="badge {c.level}" title="population stability index">PSI {psi} · {c.level}</span>
  </header>
  <div class="meta"><span>{c.baseline_n:,} → {c.current_n:,} values</span>{nulls}</div>
  {chart}
</article>"""


def _collection_section(name: str, frame: pd.DataFrame, baseline: Window, current: Window) -> str:
    base, cur = baseline.select(frame), current.select(frame)
    comparisons: list[Comparison] = []
    skipped: list[str] = []
    for column in profiled_columns(frame):
        got = compare(str(column), base[column], cur[column])
        if got is None:
            skipped.append(str(column))
        else:
            comparisons.append(got)
    comparisons.sort(key=lambda c: -1.0 if c.psi is None else -c.psi)
    cards = "".join(_card(c) for c in comparisons)
    note = ""
    if skipped:
        note = (f'<p class="note">Not plotted (no values, or lists, dicts, bytes or times): '
                f'{escape(", ".join(skipped))}</p>')
    moved = sum(1 for c in comparisons if c.level in ("moderate", "large"))
    return f"""
<section class="collection">
  <h2>{escape(name)} <small>{len(frame):,} rows · {len(comparisons)} columns plotted ·
    {moved} shifted</small></h2>
  <div class="grid">{cards}</div>{note}
</section>"""


def render(
    frames: dict[str, pd.DataFrame],
    *,
    title: str,
    facts: dict[str, str],
    baseline: Window | None = None,
    current: Window | None = None,
) -> str:
    """The report page for `frames` (collection name -> loaded frame)."""
    if baseline is None or current is None:
        default_base, default_cur = default_windows(frames)
        baseline, current = baseline or default_base, current or default_cur
    hourly = rows_per_hour(frames)
    series = {
        name: [(hour.to_pydatetime(), int(n)) for hour, n in hourly[name].items()]
        for name in hourly.columns
    }
    chart = svg.time_series(series, bands=[
        (baseline.start, baseline.end, "baseline", svg.BASELINE),
        (current.start, current.end, "current", svg.CURRENT),
    ])
    legend = "".join(
        f'<span><i style="background:{svg.PALETTE[i % len(svg.PALETTE)]}"></i>{escape(name)} '
        f'<b>{len(frames[name]):,}</b></span>'
        for i, name in enumerate(series)
    )
    fact_items = "".join(f"<div><dt>{escape(k)}</dt><dd>{escape(v)}</dd></div>"
                         for k, v in facts.items())
    sections = "".join(_collection_section(name, frame, baseline, current)
                       for name, frame in frames.items() if len(frame))
    if GEN_AI_COLLECTION in frames:  # an LLM endpoint's calls: tokens, latency, per model
        sections = gen_ai_section(frames[GEN_AI_COLLECTION]) + sections
    generated = f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC"
    return _PAGE.format(
        title=escape(title), facts=fact_items, chart=chart, legend=legend, sections=sections,
        baseline=escape(baseline.text()), current=escape(current.text()), generated=generated,
        base_colour=svg.BASELINE, cur_colour=svg.CURRENT, css=_CSS, script=_SCRIPT,
    )


_CSS = """
:root { --ink:#1f2933; --muted:#616e7c; --line:#e4e7eb; --bg:#f5f7fa; --card:#fff;
  --base:#6b8fc7; --cur:#f28e2b; }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;
  color:var(--ink); background:var(--bg); }
.top { background:linear-gradient(120deg,#243b53,#334e68 60%,#486581); color:#fff;
  padding:28px 40px 22px; }
.top h1 { margin:0 0 4px; font-size:24px; font-weight:650; letter-spacing:.2px; }
.top p { margin:0; color:#d9e2ec; }
dl.facts { display:flex; flex-wrap:wrap; gap:10px 28px; margin:18px 0 0; }
dl.facts div { min-width:120px; }
dl.facts dt { font-size:11px; text-transform:uppercase; letter-spacing:.08em; color:#9fb3c8; }
dl.facts dd { margin:2px 0 0; font-weight:600; }
main { padding:24px 40px 40px; max-width:1500px; margin:0 auto; }
.panel { background:var(--card); border:1px solid var(--line); border-radius:10px;
  padding:18px 20px 10px; box-shadow:0 1px 2px rgba(16,42,67,.05); }
.panel h2 { margin:0 0 6px; font-size:17px; }
.legend { display:flex; flex-wrap:wrap; gap:6px 18px; color:var(--muted); margin:4px 0 6px; }
.legend i { display:inline-block; width:12px; height:12px; border-radius:3px; margin-right:6px;
  vertical-align:-1px; }
.windows { display:flex; gap:22px; color:var(--muted); font-size:13px; margin:6px 0 0; }
.windows b.base { color:var(--base); } .windows b.cur { color:var(--cur); }
.toolbar { display:flex; align-items:center; gap:16px; margin:26px 0 4px; color:var(--muted); }
.toolbar input[type=search] { padding:7px 10px; border:1px solid #cbd2d9; border-radius:7px;
  width:260px; font:inherit; }
section.collection h2 { font-size:18px; margin:26px 0 12px; }
section.collection h2 small { color:var(--muted); font-weight:400; font-size:13px; margin-left:8px; }
.grid { display:grid; grid-template-columns:repeat(auto-fill,minmax(380px,1fr)); gap:16px; }
.card { background:var(--card); border:1px solid var(--line); border-radius:10px; padding:12px 14px 8px;
  box-shadow:0 1px 2px rgba(16,42,67,.05); }
.card header { display:flex; align-items:center; justify-content:space-between; gap:10px; }
.card h3 { margin:0; font-size:14px; font-weight:600; overflow:hidden; text-overflow:ellipsis;
  white-space:nowrap; }
.card .meta { display:flex; justify-content:space-between; color:var(--muted); font-size:12px;
  margin:2px 0 6px; }
.badge { font-size:11px; font-weight:600; padding:2px 8px; border-radius:999px; white-space:nowrap; }
.badge.stable { background:#e3f9e5; color:#207227; }
.badge.moderate { background:#fff3c4; color:#8d6708; }
.badge.large { background:#ffe3e3; color:#a61b1b; }
.badge.n\\/a { background:#eef2f6; color:var(--muted); }
.note { color:var(--muted); font-size:12px; }
svg.chart { display:block; overflow:visible; }
svg .mark { transition:opacity .1s; }
svg .mark:hover { opacity:.75; stroke:#102a43; stroke-width:1; }
#tip { position:fixed; pointer-events:none; background:#102a43; color:#fff; font-size:12px;
  padding:5px 8px; border-radius:6px; opacity:0; transition:opacity .08s; z-index:9;
  max-width:340px; }
footer { color:var(--muted); font-size:12px; padding:0 40px 30px; max-width:1500px; margin:0 auto; }
"""

_SCRIPT = """
(function () {
  var tip = document.getElementById('tip');
  document.addEventListener('mousemove', function (e) {
    var t = e.target.closest ? e.target.closest('[data-tip]') : null;
    if (!t) { tip.style.opacity = 0; return; }
    tip.textContent = t.getAttribute('data-tip');
    tip.style.left = (e.clientX + 14) + 'px'; tip.style.top = (e.clientY + 12) + 'px';
    tip.style.opacity = 1;
  });
  var filter = document.getElementById('filter'), shifted = document.getElementById('shifted');
  function apply() {
    var q = filter.value.trim().toLowerCase();
    document.querySelectorAll('.card').forEach(function (c) {
      var hit = c.dataset.name.indexOf(q) >= 0;
      var moved = c.dataset.level === 'moderate' || c.dataset.level === 'large';
      c.style.display = hit && (!shifted.checked || moved) ? '' : 'none';
    });
  }
  filter.addEventListener('input', apply); shifted.addEventListener('change', apply);
  var charts = document.querySelectorAll('svg.chart'), drawn = 0;
  charts.forEach(function (s) {
    var box = s.getBBox();
    if (s.querySelectorAll('.mark').length > 0 && box.width > 0 && box.height > 0) drawn++;
  });
  document.documentElement.setAttribute('data-charts', String(charts.length));
  document.documentElement.setAttribute('data-charts-drawn', String(drawn));
  document.documentElement.setAttribute('data-report', drawn === charts.length ? 'ready' : 'incomplete');
})();
"""

_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>{css}</style>
</head>
<body>
<div class="top">
  <h1>{title}</h1>
  <p>What the model received and returned, hour by hour, and how each column moved between two windows.</p>
  <dl class="facts">{facts}</dl>
</div>
<main>
  <div class="panel">
    <h2>Rows per hour</h2>
    <div class="legend">{legend}</div>
    {chart}
    <div class="windows"><span><b class="base">■ baseline</b> {baseline}</span>
      <span><b class="cur">■ current</b> {current}</span></div>
  </div>
  <div class="toolbar">
    <input id="filter" type="search" placeholder="Filter columns…" aria-label="filter columns">
    <label><input id="shifted" type="checkbox"> only shifted columns (PSI &gt; 0.1)</label>
    <span>Bars: <b style="color:{base_colour}">baseline</b> filled,
      <b style="color:{cur_colour}">current</b> outlined/orange; shares of non-null values.</span>
  </div>
  {sections}
</main>
<footer>Generated {generated} by otel-collector-ext. PSI: below 0.1 stable, 0.1–0.25 moderate, above 0.25 large.</footer>
<div id="tip"></div>
<script>{script}</script>
</body>
</html>
"""
