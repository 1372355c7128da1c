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

from . import page, svg
from .genai_report import gen_ai_section
from .profile import MIN_COMPARED, Comparison, compare, profiled_columns, rows_per_hour


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
    badge = f"PSI {psi} · {c.level}"
    if c.too_few:
        badge = f"too few values for PSI (under {MIN_COMPARED})"
    nulls = ""
    if c.baseline_nulls or c.current_nulls:
        nulls = (f'<span class="nulls">nulls {c.baseline_nulls:.1%} → '
                 f'<b>{c.current_nulls:.1%}</b></span>')
    return f"""
<article class="card" data-name="{escape(c.name.lower())}" data-level="{c.level}">
  <header>
    <h3 title="{escape(c.name)}">{escape(c.name)}</h3>
    <span class="badge {c.level}" title="population stability index">{escape(badge)}</span>
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
    comparisons.sort(key=lambda c: -1.0 if c.psi is None or c.too_few else -c.psi)
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
        # The index holds Timestamps; the stubs type index labels as Hashable.
        name: [(hour.to_pydatetime(), int(n)) for hour, n in hourly[name].items()]  # type: ignore[attr-defined]
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
    body = _BODY.format(
        title=escape(title), facts=fact_items, chart=chart, legend=legend, sections=sections,
        baseline=escape(baseline.text()), current=escape(current.text()), generated=generated,
        base_colour=svg.BASELINE, cur_colour=svg.CURRENT,
    )
    return page.document(escape(title), body, script=_SCRIPT)



_SCRIPT = """
(function () {
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
})();
""" + page.CHART_SCRIPT

_BODY = """<div class="top">
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
"""
