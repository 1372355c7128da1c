"""Model monitoring on collected data: drift, data quality and model performance with verdicts.

    from otel_collector_ext import monitor
    result = monitor("./data", endpoint="ep", deployment="blue", reference="train.parquet")
    result.breached, result.to_json()

See docs/monitoring.md for the signals, metrics, defaults and the JSON result.
"""

from .config import MonitorConfig, load_monitor_config
from .engine import compare, monitor
from .result import FeatureComparison, MonitorResult, SignalResult, WindowResult
from .summaries import ColumnSummary, SummarySource, summarize_column

__all__ = [
    "ColumnSummary",
    "FeatureComparison",
    "MonitorConfig",
    "MonitorResult",
    "SignalResult",
    "SummarySource",
    "WindowResult",
    "compare",
    "load_monitor_config",
    "monitor",
    "summarize_column",
]
