"""Data quality of the current window against the reference, as Azure ML names it.

`null_value_rate` and `data_type_error_rate` are shares of the window's rows;
`out_of_bounds_rate` is the share of its values outside the reference's
[minimum, maximum] (numeric) or in categories the reference never had.
Without a configured threshold, a rate is breached when it exceeds the
reference's own rate by the default margin, so a column that was often null in
training does not alert for being often null in production.
"""

from __future__ import annotations

from .summaries import ColumnSummary

QUALITY_METRICS = ("null_value_rate", "data_type_error_rate", "out_of_bounds_rate")
#: How far above the reference's own rate a rate may go before it is breached (defaults).
DEFAULT_MARGINS = {"null_value_rate": 0.05, "data_type_error_rate": 0.01,
                   "out_of_bounds_rate": 0.05}


def rate(metric: str, summary: ColumnSummary) -> float | None:
    """The metric's value on one window's summary, or None when it cannot be known."""
    if metric == "null_value_rate":
        return summary.nulls / summary.total if summary.total else None
    if metric == "data_type_error_rate":
        return summary.type_errors / summary.total if summary.total else None
    if metric == "out_of_bounds_rate":
        if summary.out_of_bounds is None or not summary.count:
            return None
        return summary.out_of_bounds / summary.count
    raise ValueError(f"unknown data quality metric {metric!r}")


def default_threshold(metric: str, reference: ColumnSummary | None) -> float:
    """The reference's own rate (0 when unknown) plus the metric's default margin."""
    own = rate(metric, reference) if reference is not None and metric != "out_of_bounds_rate" \
        else None
    return min(1.0, (own or 0.0) + DEFAULT_MARGINS[metric])
