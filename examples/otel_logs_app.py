"""An application that records model inputs through the OpenTelemetry Logs API alone
(it never imports otel_collector_ext), and logs ordinary lines with `logging`.

Run it under auto-instrumentation, the Avro exporter chosen by name
(`pip install -e '.[instrument]'` first, for `opentelemetry-instrument`):

    OTEL_LOGS_EXPORTER=avro OTEL_TRACES_EXPORTER=none OTEL_METRICS_EXPORTER=none \
        OTEL_COLLECTOR_EXT_DESTINATION=./collected \
        opentelemetry-instrument python examples/otel_logs_app.py

(traces and metrics exporters off: their default is OTLP to a local collector.)

The inference records land in ./collected/credit-endpoint/blue/model_inputs. The
`logging` lines are not inference data: the exporter skips them and says so, or keeps
them with OTEL_COLLECTOR_EXT_AVRO_OTHER_LOGS_COLLECTION=app_logs (with
OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED=true, so `logging` reaches OTel).
"""

import logging

from opentelemetry._logs import get_logger_provider

log = logging.getLogger("credit-app")
records = get_logger_provider().get_logger("credit-scoring")

for i in range(10):
    # The attributes are the record contract the Avro exporter reads (see the README).
    records.emit(
        body={"age": 30 + i, "debt_ratio": round(0.1 * i, 2)},
        event_name="ml.inference.model_inputs",
        attributes={
            "ml.inference.collection": "model_inputs",
            "ml.inference.payload_kind": "row",
            "ml.inference.correlation_id": f"request-{i}",
            "ml.inference.endpoint": "credit-endpoint",
            "ml.inference.deployment": "blue",
        },
    )
    log.warning("scored request %d", i)
