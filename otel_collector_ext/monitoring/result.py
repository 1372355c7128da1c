"""What `monitor` returns: signals with verdicts, drift over time, and its JSON form.

The JSON form is documented in docs/monitoring.md and described by the JSON
Schema docs/monitoring.schema.json.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from .summaries import ColumnSummary

Status = Literal["ok", "breached", "insufficient_data"]
STATUSES: tuple[Status, ...] = ("ok", "breached", "insufficient_data")


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _finite(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


@dataclass(frozen=True)
class SignalResult:
    """One metric of one feature of one collection, with its verdict."""

    signal: str  # data_drift, prediction_drift, data_quality, model_performance
    collection: str
    feature: str
    metric: str
    value: float | None
    threshold: float | None
    status: Status
    reference_count: int | None = None
    current_count: int | None = None
    reason: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"signal": self.signal, "collection": self.collection, "feature": self.feature,
                "metric": self.metric, "value": _finite(self.value),
                "threshold": _finite(self.threshold), "status": self.status,
                "reference_count": self.reference_count, "current_count": self.current_count,
                "reason": self.reason}


@dataclass(frozen=True)
class WindowResult:
    """The drift signals of one hour or day of the current window."""

    start: datetime
    end: datetime
    signals: list[SignalResult]

    def as_dict(self) -> dict[str, Any]:
        return {"start": _iso(self.start), "end": _iso(self.end),
                "signals": [s.as_dict() for s in self.signals]}


@dataclass(frozen=True)
class FeatureComparison:
    """A feature's reference and current summaries (histograms, categories), for plots."""

    collection: str
    feature: str
    kind: str
    reference: ColumnSummary | None
    current: ColumnSummary | None

    def as_dict(self) -> dict[str, Any]:
        return {"collection": self.collection, "feature": self.feature, "kind": self.kind,
                "reference": None if self.reference is None else self.reference.as_dict(),
                "current": None if self.current is None else self.current.as_dict()}


@dataclass(frozen=True)
class Skipped:
    collection: str
    feature: str
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {"collection": self.collection, "feature": self.feature, "reason": self.reason}


@dataclass
class MonitorResult:
    """The outcome of one `monitor` run."""

    endpoint: str
    deployment: str
    reference: dict[str, Any]
    window: dict[str, Any]
    signals: list[SignalResult]
    series_granularity: str
    series: list[WindowResult] = field(default_factory=list)
    features: list[FeatureComparison] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    #: Request traffic per series window (`monitoring.traffic`), None without responses.
    traffic: dict[str, Any] | None = None

    @property
    def breached(self) -> bool:
        """Whether any signal of the whole window is breached (the series do not count)."""
        return any(s.status == "breached" for s in self.signals)

    @property
    def exit_code(self) -> int:
        """0 when nothing is breached, 1 when something is (the CLI's code)."""
        return 1 if self.breached else 0

    def breached_signals(self) -> list[SignalResult]:
        return [s for s in self.signals if s.status == "breached"]

    def summary(self) -> dict[str, int]:
        """Counts for a verdict line: "2 of 12 features drifted"."""
        features = {(s.collection, s.feature) for s in self.signals
                    if s.signal in ("data_drift", "prediction_drift")}
        drifted = {(s.collection, s.feature) for s in self.signals
                   if s.signal in ("data_drift", "prediction_drift") and s.status == "breached"}
        return {
            "signals": len(self.signals),
            "breached": sum(s.status == "breached" for s in self.signals),
            "insufficient_data": sum(s.status == "insufficient_data" for s in self.signals),
            "features": len(features),
            "features_drifted": len(drifted),
        }

    def verdict(self) -> str:
        """One line for people: what drifted, what else breached."""
        counts = self.summary()
        other = counts["breached"] - sum(
            s.status == "breached" for s in self.signals
            if s.signal in ("data_drift", "prediction_drift"))
        line = f"{counts['features_drifted']} of {counts['features']} features drifted"
        if other:
            line += f"; {other} data quality or performance signal(s) breached"
        if counts["insufficient_data"]:
            line += f"; {counts['insufficient_data']} signal(s) with insufficient data"
        return line

    def to_dict(self) -> dict[str, Any]:
        return {
            "breached": self.breached,
            "verdict": self.verdict(),
            "endpoint": self.endpoint,
            "deployment": self.deployment,
            "reference": self.reference,
            "window": self.window,
            "summary": self.summary(),
            "signals": [s.as_dict() for s in self.signals],
            "series": {"granularity": self.series_granularity,
                       "windows": [w.as_dict() for w in self.series]},
            "features": [f.as_dict() for f in self.features],
            "skipped": [s.as_dict() for s in self.skipped],
            "notes": list(self.notes),
            "traffic": self.traffic,
        }

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False)
