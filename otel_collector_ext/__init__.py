"""Production inference data collection on OpenTelemetry.

    from otel_collector_ext import Collector
    inputs = Collector(name="model_inputs")
    context = inputs.collect(input_df)
    Collector(name="model_outputs").collect(output_df, context)
"""

from typing import Any

from .pipeline.config import Config, ConfigError
from .pipeline.wiring import configure, flush, logger_provider, shutdown, stats
from .scoring.collector import Collector
from .scoring.context import BasicCorrelationContext, CorrelationContext, correlation_scope

__all__ = [
    "BasicCorrelationContext",
    "Collector",
    "Config",
    "ConfigError",
    "CorrelationContext",
    "configure",
    "correlation_scope",
    "flush",
    "join_inputs_outputs",
    "load",
    "logger_provider",
    "monitor",
    "shutdown",
    "stats",
]


def __getattr__(name: str) -> Any:  # the readers are imported only when asked for
    if name in ("load", "join_inputs_outputs"):
        from .reading import readback

        return getattr(readback, name)
    if name == "monitor":  # needs scipy: the `monitor` extra
        from .monitoring import monitor

        return monitor
    raise AttributeError(name)
