"""Production inference data collection on OpenTelemetry.

    from otel_collector_ext import Collector
    inputs = Collector(name="model_inputs")
    context = inputs.collect(input_df)
    Collector(name="model_outputs").collect(output_df, context)
"""

from typing import TYPE_CHECKING, Any

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


if TYPE_CHECKING:  # type checkers see the functions themselves, with their signatures
    from .monitoring import monitor
    from .reading.readback import join_inputs_outputs, load
else:  # imported only when first called: the readers (fastavro, tqdm, ...), monitor (scipy)

    def load(*args: Any, **kwargs: Any) -> Any:
        """Rows of one collection as a DataFrame: `otel_collector_ext.reading.readback.load`."""
        from .reading.readback import load as load_collection

        return load_collection(*args, **kwargs)

    def join_inputs_outputs(*args: Any, **kwargs: Any) -> Any:
        """Inputs beside outputs, one row per scored row:
        `otel_collector_ext.reading.readback.join_inputs_outputs`."""
        from .reading.readback import join_inputs_outputs as join

        return join(*args, **kwargs)

    def monitor(*args: Any, **kwargs: Any) -> Any:
        """Drift, data quality and model performance against a reference (the `monitor`
        extra): `otel_collector_ext.monitoring.monitor`."""
        from .monitoring import monitor as run_monitor

        return run_monitor(*args, **kwargs)
