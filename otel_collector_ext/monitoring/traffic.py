"""Request traffic of a deployment per window: responses, error rates, latency quantiles.

Read from the `response` payload collection (payload logging writes its
``status`` and ``latency_ms``), through the column profiles stored beside its
files, so a day costs one small file per partition file; files without a usable
profile are read row by row (`otel_collector_ext.reading.window_profile`).
Latency quantiles come from the profiles' log-bucket histogram: within 1 % of
the exact quantile of the rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from exporters.profiles import FileProfile
from exporters.storage import Storage

from ..reading.catalog import has_collection
from ..reading.window_profile import window_profile

RESPONSE_COLLECTION = "response"


def _window_figures(profile: FileProfile) -> dict[str, Any]:
    status = profile.columns.get("status")
    statuses: dict[int, int] = {}
    if status is not None:
        for label, n in status.frequent.counts.items():
            try:
                statuses[int(label)] = n
            except ValueError:
                continue
    known = sum(statuses.values())
    client = sum(n for code, n in statuses.items() if 400 <= code < 500)
    server = sum(n for code, n in statuses.items() if code >= 500)
    latency = profile.columns.get("latency_ms")
    out: dict[str, Any] = {
        "requests": profile.rows,
        "client_error_rate": client / known if known else None,
        "server_error_rate": server / known if known else None,
    }
    for q in (50, 95, 99):
        value = None
        if latency is not None and latency.kind == "numeric":
            value = latency.histogram.quantile(q / 100)
        out[f"latency_ms_p{q}"] = value
    return out


def traffic(storage: Storage, endpoint: str, deployment: str,
            windows: Sequence[tuple[datetime, datetime]], *,
            collection: str = RESPONSE_COLLECTION) -> dict[str, Any] | None:
    """Per window (start, end): responses, 4xx and 5xx rates, latency p50/p95/p99 (ms), and
    the same over all windows as ``total``; None when the deployment has no responses."""
    if not windows or not has_collection(storage, endpoint, deployment, collection):
        return None
    total = FileProfile()
    rows = []
    for start, end in windows:
        profile = window_profile(storage, endpoint, deployment, collection, start, end).profile
        total.merge(profile)
        rows.append({"start": start.isoformat(), "end": end.isoformat(),
                     **_window_figures(profile)})
    return {"collection": collection, "windows": rows, "total": _window_figures(total)}
