"""Monitoring results as OpenTelemetry gauges, so Prometheus, Grafana or Azure Monitor alert.

Each signal's value is a gauge ``ml.monitoring.<signal>`` (data_drift,
prediction_drift, data_quality, model_performance) with the attributes
``collection``, ``feature``, ``metric``, ``status``, ``endpoint`` and
``deployment``; ``ml.monitoring.breached`` is 1 when any signal is breached.
Values of signals with insufficient data are not recorded (there is none).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from opentelemetry import metrics

if TYPE_CHECKING:
    from .result import MonitorResult

METER_NAME = "otel_collector_ext.monitoring"
SIGNAL_GAUGE = "ml.monitoring.{signal}"
BREACHED_GAUGE = "ml.monitoring.breached"


def record_metrics(result: MonitorResult, meter_provider: Any = None) -> None:
    """Set the gauges for `result` through `meter_provider` (default: the global one)."""
    provider = meter_provider if meter_provider is not None else metrics.get_meter_provider()
    meter = provider.get_meter(METER_NAME)
    gauges: dict[str, Any] = {}
    common = {"endpoint": result.endpoint, "deployment": result.deployment}
    for s in result.signals:
        if s.value is None:
            continue
        gauge = gauges.get(s.signal)
        if gauge is None:
            gauge = gauges[s.signal] = meter.create_gauge(
                SIGNAL_GAUGE.format(signal=s.signal), unit="1",
                description=f"{s.signal} metric value of the last monitor run")
        gauge.set(s.value, {**common, "collection": s.collection, "feature": s.feature,
                            "metric": s.metric, "status": s.status})
    meter.create_gauge(BREACHED_GAUGE, unit="1",
                       description="1 when the last monitor run breached a threshold"
                       ).set(int(result.breached), common)
