"""The monitor's HTML page (``monitor --report``): one self-contained file, drawn from the
JSON result by `otel_collector_ext.reading.monitor_report` (so a stored result renders the
same page)."""

from __future__ import annotations

from ..reading.monitor_report import render_monitoring
from .result import MonitorResult


def render(result: MonitorResult) -> str:
    """The page for `result`."""
    return render_monitoring(result.to_dict())
