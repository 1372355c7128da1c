"""The monitoring report: one self-contained HTML page drawn from the JSON result of
`monitor` (``result.to_dict()``), nothing else, so a stored result renders the same page.

From the top: the verdict ("2 of 12 features drifted") and what breached; drift
over time (a cell per feature and series window, coloured by its worst status);
feature drift and prediction drift apart, a card per feature with the reference
and current distributions and every metric's value, threshold and status; data
quality; model performance when labels were given; request traffic (rows, error
rates, latency) when the result carries it; and what was not compared, and why.
A signal with too few values says so and shows no verdict (the sample-size guard),
so 3 values against 1 never read as a large shift.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from html import escape
from typing import Any

from . import page, svg

DRIFT_SIGNALS = {"data_drift": "Feature drift", "prediction_drift": "Prediction drift"}
QUALITY_METRICS = ("null_value_rate", "data_type_error_rate", "out_of_bounds_rate")
_RANK = {"breached": 0, "insufficient_data": 1, "ok": 2}
_TOP_CATEGORIES = 12


def _number(value: Any) -> str:
    if value is None:
        return "–"
    value = float(value)
    if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e5):
        return f"{value:.3g}"
    return f"{value:.4g}" if abs(value) < 10 else f"{value:,.2f}"


def _when(text: Any) -> str:
    if not text:
        return "–"
    try:
        return f"{datetime.fromisoformat(str(text)).astimezone(UTC):%Y-%m-%d %H:%M} UTC"
    except ValueError:
        return str(text)


def _status_badge(signal: Mapping[str, Any]) -> str:
    status = signal.get("status", "ok")
    if status == "insufficient_data":
        ref, cur = signal.get("reference_count"), signal.get("current_count")
        counts = "" if ref is None or cur is None else f" ({ref:,} vs {cur:,} values)"
        tip = signal.get("reason") or "too few values for a verdict"
        return (f'<span class="badge n/a" title="{escape(tip)}">insufficient data'
                f'{escape(counts)}</span>')
    label = "breached" if status == "breached" else "ok"
    level = "large" if status == "breached" else "stable"
    return f'<span class="badge {level}">{label}</span>'


def _metric_rows(signals: Sequence[Mapping[str, Any]]) -> str:
    rows = []
    for s in signals:
        value = "–" if s.get("status") == "insufficient_data" else _number(s.get("value"))
        rows.append(f'<tr class="{escape(str(s.get("status")))}"><td>{escape(str(s["metric"]))}</td>'
                    f'<td class="num">{value}</td><td class="num">{_number(s.get("threshold"))}</td>'
                    f"<td>{_status_badge(s)}</td></tr>")
    return ('<table class="metrics"><thead><tr><th>metric</th><th>value</th><th>threshold</th>'
            '<th>status</th></tr></thead><tbody>' + "".join(rows) + "</tbody></table>")


def _worst(signals: Sequence[Mapping[str, Any]]) -> str:
    return min((s.get("status", "ok") for s in signals), key=lambda st: _RANK.get(st, 3),
               default="ok")


def _shares(counts: Sequence[float]) -> list[float]:
    total = float(sum(counts))
    return [c / total if total else 0.0 for c in counts]


def _finite_edges(edges: Sequence[Any]) -> list[float]:
    """Open ends (null or ±inf) replaced by the nearest finite edge, for axis labels."""
    values = [float(e) if e is not None else math.nan for e in edges]
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return [0.0] * len(values)
    return [v if math.isfinite(v) else (finite[0] if i == 0 else finite[-1])
            for i, v in enumerate(values)]


def _edge_text(edge: Any, low: bool) -> str:
    if edge is None or (isinstance(edge, float) and not math.isfinite(edge)):
        return "−∞" if low else "+∞"
    return f"{float(edge):.4g}"


def _chart(feature: Mapping[str, Any]) -> str:
    """Reference vs current: a histogram on the shared edges, or category bars."""
    ref, cur = feature.get("reference") or {}, feature.get("current") or {}
    if feature.get("kind") == "numeric":
        edges, rc, cc = ref.get("edges"), ref.get("counts"), cur.get("counts")
        if not edges or not rc or not cc or len(rc) != len(cc) or len(edges) != len(rc) + 1:
            return '<p class="note">No histogram on shared edges.</p>'
        # The open-ended bins below the reference's minimum and above its maximum are kept
        # only when something falls in them.
        keep = [i for i in range(len(rc)) if rc[i] or cc[i] or 0 < i < len(rc) - 1]
        labels = [f"[{_edge_text(edges[i], True)}, {_edge_text(edges[i + 1], False)})"
                  for i in keep]
        shown = _finite_edges([edges[keep[0]], *[edges[i + 1] for i in keep]])
        return svg.histogram(labels, shown, _shares([rc[i] for i in keep]),
                             _shares([cc[i] for i in keep]))
    ref_cats = dict(map(tuple, ref.get("categories") or []))
    cur_cats = dict(map(tuple, cur.get("categories") or []))
    if not ref_cats and not cur_cats:
        return '<p class="note">No values to plot.</p>'
    names = sorted(set(ref_cats) | set(cur_cats),
                   key=lambda k: -(ref_cats.get(k, 0) + cur_cats.get(k, 0)))[:_TOP_CATEGORIES]
    ref_total = sum(ref_cats.values()) + (ref.get("other") or 0)
    cur_total = sum(cur_cats.values()) + (cur.get("other") or 0)
    return svg.bars(names, [ref_cats.get(k, 0) / ref_total if ref_total else 0 for k in names],
                    [cur_cats.get(k, 0) / cur_total if cur_total else 0 for k in names])


def _card(feature: Mapping[str, Any], signals: Sequence[Mapping[str, Any]]) -> str:
    status = _worst(signals)
    ref, cur = feature.get("reference") or {}, feature.get("current") or {}
    level = {"breached": "large", "ok": "stable"}.get(status, "n/a")
    headline = {"breached": "drifted", "ok": "no drift", "insufficient_data": "insufficient data"}[
        status if status in _RANK else "ok"]
    stats = []
    for side, s in (("reference", ref), ("current", cur)):
        if feature.get("kind") == "numeric":
            stats.append(f"{side}: mean {_number(s.get('mean'))}, std {_number(s.get('std'))}")
    return f"""
<article class="card" data-name="{escape(str(feature['feature']).lower())}" data-level="{level}"
  data-status="{escape(status)}">
  <header>
    <h3 title="{escape(str(feature['feature']))}">{escape(str(feature['feature']))}</h3>
    <span class="badge {level}">{escape(headline)}</span>
  </header>
  <div class="meta"><span>{escape(str(feature['collection']))} · {escape(str(feature.get('kind')))}</span>
    <span>{int(ref.get('count') or 0):,} → {int(cur.get('count') or 0):,} values</span></div>
  {_chart(feature)}
  <div class="meta">{escape(' · '.join(stats))}</div>
  {_metric_rows(signals)}
</article>"""


def _drift_section(result: Mapping[str, Any], signal: str, title: str) -> str:
    by_feature: dict[tuple[str, str], list[Mapping[str, Any]]] = defaultdict(list)
    for s in result.get("signals") or []:
        if s.get("signal") == signal:
            by_feature[(s["collection"], s["feature"])].append(s)
    if not by_feature:
        return ""
    features = {(f["collection"], f["feature"]): f for f in result.get("features") or []}

    def order(key: tuple[str, str]) -> tuple[int, float, str]:
        signals = by_feature[key]
        ratio = max((s["value"] / s["threshold"] for s in signals
                     if s.get("value") is not None and s.get("threshold")), default=0.0)
        return (_RANK.get(_worst(signals), 3), -ratio, key[1])

    cards = []
    for key in sorted(by_feature, key=order):
        feature = features.get(key) or {"collection": key[0], "feature": key[1], "kind": None}
        cards.append(_card(feature, by_feature[key]))
    drifted = sum(_worst(by_feature[k]) == "breached" for k in by_feature)
    return f"""
<section class="collection" id="{signal}">
  <h2>{title} <small>{drifted} of {len(by_feature)} drifted</small></h2>
  <div class="grid">{''.join(cards)}</div>
</section>"""


def _over_time(result: Mapping[str, Any]) -> str:
    windows = (result.get("series") or {}).get("windows") or []
    if not windows:
        return ""
    keys: list[tuple[str, str, str]] = []
    cells: dict[tuple[str, str, str], dict[int, list[Mapping[str, Any]]]] = defaultdict(
        lambda: defaultdict(list))
    for i, w in enumerate(windows):
        for s in w.get("signals") or []:
            key = (s.get("signal", ""), s["collection"], s["feature"])
            if key not in cells:
                keys.append(key)
            cells[key][i].append(s)
    head = "".join(f'<th title="{escape(_when(w.get("start")))} – {escape(_when(w.get("end")))}">'
                   f"{escape(_when(w.get('start'))[11:16])}</th>" for w in windows)
    rows = []
    for key in keys:
        tds = []
        for i in range(len(windows)):
            signals = cells[key].get(i, [])
            if not signals:
                tds.append('<td class="cell none"></td>')
                continue
            status = _worst(signals)
            tip = "; ".join(f"{s['metric']} {'–' if s.get('value') is None else _number(s['value'])}"
                            f" (threshold {_number(s.get('threshold'))}, {s.get('status')})"
                            for s in signals)
            mark = {"breached": "●", "ok": "", "insufficient_data": "·"}.get(status, "")
            tds.append(f'<td class="cell {escape(status)}" data-tip="{escape(tip)}">{mark}</td>')
        label = DRIFT_SIGNALS.get(key[0], key[0]).split()[0].lower()
        rows.append(f'<tr><th class="feature">{escape(key[2])} <small>{escape(label)}</small></th>'
                    f'{"".join(tds)}</tr>')
    granularity = (result.get("series") or {}).get("granularity") or "window"
    return f"""
<div class="panel" id="over-time">
  <h2>Drift over time <small>per {escape(str(granularity))}</small></h2>
  <div class="heat"><table><thead><tr><th></th>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table></div>
  <p class="note"><span class="key breached"></span> breached <span class="key ok"></span> ok
    <span class="key insufficient_data"></span> insufficient data (fewer values than the
    minimum sample size: no verdict)</p>
</div>"""


def _quality(result: Mapping[str, Any]) -> str:
    table: dict[tuple[str, str], dict[str, Mapping[str, Any]]] = defaultdict(dict)
    for s in result.get("signals") or []:
        if s.get("signal") == "data_quality":
            table[(s["collection"], s["feature"])][s["metric"]] = s
    if not table:
        return ""
    rows = []
    for (collection, feature), metrics in sorted(
            table.items(), key=lambda kv: (_RANK.get(_worst(list(kv[1].values())), 3), kv[0])):
        tds = []
        for name in QUALITY_METRICS:
            s = metrics.get(name)
            if s is None:
                tds.append("<td>–</td>")
                continue
            value = "–" if s.get("value") is None else f"{float(s['value']):.2%}"
            tds.append(f'<td class="{escape(str(s.get("status")))}">{value} '
                       f'<small>≤ {float(s.get("threshold") or 0):.0%}</small> {_status_badge(s)}</td>')
        rows.append(f"<tr><th>{escape(feature)}</th><td>{escape(collection)}</td>{''.join(tds)}</tr>")
    head = "".join(f"<th>{m.replace('_', ' ')}</th>" for m in QUALITY_METRICS)
    return f"""
<div class="panel" id="data-quality">
  <h2>Data quality</h2>
  <table class="metrics wide"><thead><tr><th>feature</th><th>collection</th>{head}</tr></thead>
  <tbody>{''.join(rows)}</tbody></table>
  <p class="note">Against the reference: nulls, values of another type than the reference's,
    and numbers outside the reference's range or categories it never had.</p>
</div>"""


def _performance(result: Mapping[str, Any]) -> str:
    signals = [s for s in result.get("signals") or [] if s.get("signal") == "model_performance"]
    if not signals:
        return """
<div class="panel" id="model-performance"><h2>Model performance</h2>
  <p class="note">No ground truth was given, so accuracy, F1, AUC or errors were not computed:
  pass labels with <code>--ground-truth</code> (see docs/monitoring.md).</p></div>"""
    return f"""
<div class="panel" id="model-performance"><h2>Model performance</h2>
  {_metric_rows(signals)}</div>"""


def _traffic(result: Mapping[str, Any]) -> str:
    traffic = result.get("traffic")
    if not traffic:
        return ""
    windows = traffic.get("windows") or []
    series = {"requests": [(datetime.fromisoformat(w["start"]), int(w.get("requests") or 0))
                           for w in windows]}
    rows = "".join(
        f"<tr><td>{escape(_when(w['start']))}</td><td class='num'>{int(w.get('requests') or 0):,}</td>"
        f"<td class='num'>{_rate(w.get('client_error_rate'))}</td>"
        f"<td class='num'>{_rate(w.get('server_error_rate'))}</td>"
        f"<td class='num'>{_number(w.get('latency_ms_p50'))}</td>"
        f"<td class='num'>{_number(w.get('latency_ms_p95'))}</td>"
        f"<td class='num'>{_number(w.get('latency_ms_p99'))}</td></tr>" for w in windows)
    total = traffic.get("total") or {}
    return f"""
<div class="panel" id="traffic">
  <h2>Requests <small>{int(total.get('requests') or 0):,} responses ·
    errors {_rate(total.get('server_error_rate'))} 5xx, {_rate(total.get('client_error_rate'))} 4xx ·
    latency p95 {_number(total.get('latency_ms_p95'))} ms</small></h2>
  {svg.time_series(series)}
  <table class="metrics wide"><thead><tr><th>from</th><th>responses</th><th>4xx</th><th>5xx</th>
    <th>p50 ms</th><th>p95 ms</th><th>p99 ms</th></tr></thead><tbody>{rows}</tbody></table>
</div>"""


def _rate(value: Any) -> str:
    return "–" if value is None else f"{float(value):.1%}"


def _reference_text(ref: Mapping[str, Any]) -> str:
    if ref.get("kind") == "window":
        where = f"{_when(ref.get('start'))} – {_when(ref.get('end'))}"
        if ref.get("deployment"):
            where += f" ({ref['deployment']})"
        return where
    return str(ref.get("path") or ref.get("kind") or "–")


def _rows_text(part: Mapping[str, Any]) -> str:
    rows = part.get("rows") or {}
    return ", ".join(f"{k} {int(v):,}" for k, v in rows.items()) or "–"


def render_monitoring(result: Mapping[str, Any], *, title: str | None = None) -> str:
    """The report page for one monitoring result (the documented JSON, as a dict)."""
    breached = bool(result.get("breached"))
    summary = result.get("summary") or {}
    ref, window = result.get("reference") or {}, result.get("window") or {}
    title = title or f"{result.get('endpoint')} / {result.get('deployment')}: model monitoring"
    facts = {
        "reference": _reference_text(ref),
        "reference rows": _rows_text(ref),
        "current window": f"{_when(window.get('start'))} – {_when(window.get('end'))}",
        "current rows": _rows_text(window),
    }
    fact_items = "".join(f"<div><dt>{escape(k)}</dt><dd>{escape(v)}</dd></div>"
                         for k, v in facts.items())
    breaches = [s for s in result.get("signals") or [] if s.get("status") == "breached"]
    listed = "".join(
        f"<li><b>{escape(str(s['feature']))}</b> <small>{escape(str(s['signal']))}</small> "
        f"{escape(str(s['metric']))} {_number(s.get('value'))} "
        f"{'<' if 'test' in str(s['metric']) else '>'} {_number(s.get('threshold'))}</li>"
        for s in breaches[:12])
    if len(breaches) > 12:
        listed += f"<li>… and {len(breaches) - 12} more</li>"
    skipped = result.get("skipped") or []
    notes = [*(f"{s['feature']} ({s['collection']}): {s['reason']}" for s in skipped),
             *(result.get("notes") or [])]
    notes_html = ("" if not notes else '<div class="panel"><h2>Not compared</h2><ul>'
                  + "".join(f"<li>{escape(str(n))}</li>" for n in notes) + "</ul></div>")
    sections = "".join([
        _over_time(result),
        _drift_section(result, "data_drift", DRIFT_SIGNALS["data_drift"]),
        _drift_section(result, "prediction_drift", DRIFT_SIGNALS["prediction_drift"]),
        _quality(result), _performance(result), _traffic(result), notes_html,
    ])
    body = _BODY.format(
        title=escape(title), facts=fact_items, state="breached" if breached else "ok",
        verdict=escape(str(result.get("verdict") or "")),
        counts=escape(f"{summary.get('breached', 0)} of {summary.get('signals', 0)} signals "
                      f"breached · {summary.get('insufficient_data', 0)} with insufficient data"),
        breaches=f"<ul>{listed}</ul>" if listed else "", sections=sections,
        generated=f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
    )
    return page.document(escape(title), body, css=page.CSS + _CSS,
                         body_attributes=f' data-breached="{str(breached).lower()}"')


_CSS = """
.verdict-panel { border-left:6px solid #2f8132; margin-bottom:18px; }
.verdict-panel.breached { border-left-color:#c62828; }
.verdict { font-size:22px; font-weight:650; margin:2px 0 4px; }
.verdict-panel.breached .verdict { color:#a61b1b; } .verdict-panel.ok .verdict { color:#207227; }
.verdict-panel ul { margin:6px 0 4px; padding-left:20px; columns:2; }
.panel { margin-top:18px; }
.panel h2 small, section.collection h2 small { color:var(--muted); font-weight:400; font-size:13px; }
table.metrics { width:100%; border-collapse:collapse; font-size:12px; margin-top:6px; }
table.metrics th, table.metrics td { text-align:left; padding:3px 6px; border-bottom:1px solid var(--line); }
.card table.metrics { table-layout:fixed; }
.card table.metrics th:nth-child(1) { width:44%; } .card table.metrics th:nth-child(2) { width:16%; }
.card table.metrics th:nth-child(3) { width:19%; }
.card table.metrics td:first-child { overflow-wrap:anywhere; }
.card table.metrics .badge { font-size:10px; padding:1px 6px; }
table.metrics td.num { text-align:right; font-variant-numeric:tabular-nums; }
table.metrics.wide td, table.metrics.wide th { font-size:13px; }
td.breached { color:#a61b1b; }
.heat { overflow-x:auto; }
.heat table { border-collapse:separate; border-spacing:2px; font-size:12px; }
.heat th { font-weight:500; color:var(--muted); padding:0 4px; white-space:nowrap; }
.heat th.feature { text-align:right; color:var(--ink); }
.cell { width:26px; height:22px; border-radius:4px; text-align:center; color:#fff; }
.cell.breached, .key.breached { background:#d64545; }
.cell.ok, .key.ok { background:#8bd19b; }
.cell.insufficient_data, .key.insufficient_data { background:#cbd2d9; color:#52606d; }
.cell.none { background:#f0f2f5; }
.key { display:inline-block; width:12px; height:12px; border-radius:3px; margin:0 4px 0 12px;
  vertical-align:-1px; }
code { background:#eef2f6; padding:1px 4px; border-radius:4px; }
"""

_BODY = """<div class="top">
  <h1>{title}</h1>
  <p>The current window against the reference: drift of features and predictions, data quality,
    model performance and traffic, with the thresholds that decide each verdict.</p>
  <dl class="facts">{facts}</dl>
</div>
<main>
  <div class="panel verdict-panel {state}" id="verdict">
    <p class="verdict">{verdict}</p>
    <p class="note">{counts}</p>
    {breaches}
  </div>
  {sections}
</main>
<footer>Generated {generated} by otel-collector-ext monitor. Thresholds and metrics: docs/monitoring.md.</footer>
"""
