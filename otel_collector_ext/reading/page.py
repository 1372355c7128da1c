"""The shared look of the HTML pages (`report`, `monitor --report`): CSS, hover tips, and
the marker a headless browser checks (``data-report="ready"`` once every chart drew marks).

Everything is inline: the pages render offline, with no external asset.
"""

from __future__ import annotations

CSS = """
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

#: Hover tips for marks with ``data-tip``, and the ready marker; needs ``<div id="tip">``.
CHART_SCRIPT = """
(function () {
  var tip = document.getElementById('tip');
  document.addEventListener('mousemove', function (e) {
    var t = e.target.closest ? e.target.closest('[data-tip]') : null;
    if (!t) { tip.style.opacity = 0; return; }
    tip.textContent = t.getAttribute('data-tip');
    tip.style.left = (e.clientX + 14) + 'px'; tip.style.top = (e.clientY + 12) + 'px';
    tip.style.opacity = 1;
  });
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


def document(title: str, body: str, *, css: str = CSS, script: str = CHART_SCRIPT,
             body_attributes: str = "") -> str:
    """A whole page: `title` (already escaped), inline `css`, the `body` markup, the tip
    element the chart script needs, and `script`."""
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>{css}</style>
</head>
<body{body_attributes}>
{body}
<div id="tip"></div>
<script>{script}</script>
</body>
</html>
"""
