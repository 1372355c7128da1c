"""A client process instrumented by opentelemetry-instrumentation-openai-v2 (no
otel_collector_ext middleware anywhere): real `openai` calls to the test app, GenAI
events exported as OTLP logs, or (`inprocess`) handed to this project's own pipeline
as the application's LoggerProvider.

    python -m tests.support.genai_instrumented_client otlp <app url> <otlp http url>
    python -m tests.support.genai_instrumented_client inprocess <app url> <config path>

Content capture follows OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT, which the
test sets (with OTEL_SEMCONV_STABILITY_OPT_IN=gen_ai_latest_experimental).
"""

from __future__ import annotations

import sys

import openai
from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk.trace import TracerProvider


def calls(app_url: str) -> None:
    client = openai.OpenAI(base_url=app_url + "/v1", api_key="unused", max_retries=0)
    client.chat.completions.create(
        model="echo", messages=[{"role": "user", "content": "Bonjour from the client"}],
        extra_headers={"x-request-id": "instrumented-1"})
    for _ in client.chat.completions.create(
            model="echo", messages=[{"role": "user", "content": "Stream it"}], stream=True,
            stream_options={"include_usage": True}):
        pass


def main() -> int:
    mode, app_url, target = sys.argv[1:4]
    if mode == "otlp":
        from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
        from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
        from opentelemetry.sdk.resources import Resource

        provider = LoggerProvider(resource=Resource.create(
            {"service.name": "chat-svc", "ml.inference.deployment": "green"}))
        provider.add_log_record_processor(BatchLogRecordProcessor(OTLPLogExporter(endpoint=target)))
    else:
        import otel_collector_ext as oce

        oce.configure(target)
        provider = oce.logger_provider()
    OpenAIInstrumentor().instrument(logger_provider=provider, tracer_provider=TracerProvider())
    calls(app_url)
    if mode == "otlp":
        provider.shutdown()  # flushes the batch to serve
    else:
        import otel_collector_ext as oce

        assert oce.flush(), "records were not all stored"
    return 0


if __name__ == "__main__":
    sys.exit(main())
