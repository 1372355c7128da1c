"""The monitor's HTML page (``monitor --report``): one self-contained file.

This first page is the verdict line and the table of signals; the full report
(drift over time, per-feature plots) renders the same `MonitorResult`.
"""

from __future__ import annotations

from html import escape

from .result import MonitorResult

_STYLE = """
body{font:14px system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse}td,th{padding:.25em .6em;border-bottom:1px solid #ddd;text-align:left}
.breached{color:#b00020;font-weight:600}.insufficient_data{color:#777}
"""


def _number(value: float | None) -> str:
    return "–" if value is None else f"{value:.4g}"


def render(result: MonitorResult) -> str:
    """The page for `result`."""
    rows = "\n".join(
        f"<tr class=\"{s.status}\"><td>{escape(s.signal)}</td><td>{escape(s.collection)}</td>"
        f"<td>{escape(s.feature)}</td><td>{escape(s.metric)}</td><td>{_number(s.value)}</td>"
        f"<td>{_number(s.threshold)}</td><td>{escape(s.status)}</td>"
        f"<td>{escape(s.reason or '')}</td></tr>"
        for s in result.signals)
    title = f"{result.endpoint} / {result.deployment}: monitoring"
    window = result.window
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>
<style>{_STYLE}</style></head>
<body data-breached="{str(result.breached).lower()}">
<h1>{escape(title)}</h1>
<p class="verdict">{escape(result.verdict())}</p>
<p>Window {escape(str(window.get('start')))} – {escape(str(window.get('end')))}</p>
<table><thead><tr><th>signal</th><th>collection</th><th>feature</th><th>metric</th><th>value</th>
<th>threshold</th><th>status</th><th>note</th></tr></thead>
<tbody>
{rows}
</tbody></table>
</body></html>
"""
