"""`Collector`: what scoring code calls, signature-compatible with azureml-ai-monitoring.

`Collector(name="model_inputs").collect(df)` snapshots the data and emits one
OpenTelemetry log record; conversion and storage happen later on a background
thread. Programming errors (an unsupported type, a bad name) go to `on_error`,
which raises by default, as the Azure SDK does. Runtime trouble (a full queue,
storage down) never raises into scoring code: it is counted and logged.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping
from typing import Any

from opentelemetry.sdk._logs import ReadWriteLogRecord

from exporters import contract as A
from exporters.avro.declared_schema import DeclaredSchema, parse_declared
from exporters.contract import check_name
from exporters.telemetry import Tally

from ..genai.events import correlation_id_of, event_columns
from ..genai.record import SOURCE_COLLECT, gen_ai_row, messages_as_json
from ..pipeline.wiring import (
    Pipeline,
    PipelineStopped,
    check_configuration,
    count_after_shutdown,
    count_config_error,
    get_pipeline,
    handle_events,
)
from .context import BasicCorrelationContext, CorrelationContext, current_context, event_time_ns
from .snapshot import EmptyPayload, snapshot

_log = logging.getLogger("otel_collector_ext")
# Year 10000 in ns: later times break Avro readers and OTLP's unsigned 64-bit times;
# earlier than 1970 cannot travel over OTLP at all.
MAX_EVENT_TIME_NS = 253_402_300_800 * 1_000_000_000


_logged_errors: set[str] = set()  # configuration errors already logged


def _raise(error: Exception) -> None:
    raise error


class Collector:
    """Collects the payloads of one collection (e.g. model_inputs, model_outputs).

    `schema` declares the collection's columns and types (``{"age": "int", "income":
    "double"}``; type names in `exporters.avro.declared_schema`); it takes precedence over
    ``data_collector.collections.<name>.schema`` in the configuration. Tabular payloads
    of a declared collection are stored with exactly that schema, values cast to it.
    """

    def __init__(self, *, name: str, on_error: Callable[[Exception], Any] | None = None,
                 schema: Mapping[str, Any] | None = None) -> None:
        self.on_error = on_error or _raise
        self.name = name
        self._event_name = ""
        self._config_error_reported = False
        self._schema: DeclaredSchema | None = None
        try:
            check_name(name, "collection name")
            if schema is not None:
                self._schema = parse_declared(schema, "schema")
        except (TypeError, ValueError) as e:
            self._valid = False
            self.on_error(e)
            return
        self._valid = True
        self._event_name = A.event_name(name)
        try:
            check_configuration()  # a broken configuration stops the application here
        except Exception as e:
            self._config_error(e)

    def _config_error(self, error: Exception) -> None:
        """Report a configuration error to on_error once; later collects are only counted."""
        if self._config_error_reported:
            return
        self._config_error_reported = True
        if self.on_error is not _raise and str(error) not in _logged_errors:
            _logged_errors.add(str(error))  # once per process, however many Collectors
            _log.error("otel_collector_ext: %s; nothing is recorded: each collect() is "
                       "counted as records.dropped{reason=config_error}", error)
        self.on_error(error)

    def collect(
        self,
        data: Any,
        correlation_context: CorrelationContext | None = None,
        *,
        attributes: Mapping[str, Any] | None = None,
    ) -> CorrelationContext:
        """Record `data` under this collection; returns the context to pass to related calls.

        Without a context, the current request's context (set by the payload
        middleware) is used, else a new one. `attributes` are extra OTel attributes
        (the payload middleware passes HTTP details this way); they may not set the
        contract's own (`exporters.contract.RESERVED`: collection, endpoint, deployment,
        model version, correlation id, payload kind, instance id): such a call goes to
        `on_error` and its record is dropped, counted as `reason=invalid`.
        """
        context = correlation_context  # a context may be falsy (a dict subclass, say)
        if context is None:
            context = current_context()
            if context is None:
                context = BasicCorrelationContext()
        if not self._valid:
            return context
        try:
            correlation_id = context.get_id()
            time_ns = event_time_ns(context)
            if not isinstance(correlation_id, str):
                raise TypeError("correlation_context.get_id() must return a str")
            if not 0 <= time_ns < MAX_EVENT_TIME_NS:
                raise ValueError(
                    f"event time {context.get_timestamp()!r} is not seconds since the epoch "
                    "between 1970 and 9999 (milliseconds by mistake?)"
                )
        except Exception as e:
            error = e if isinstance(e, ValueError) else TypeError(
                f"invalid correlation_context: {e}")
            self.on_error(error)
            return context
        try:
            pipeline = get_pipeline()
        except PipelineStopped:  # the process is shutting down: counted, not an error
            count_after_shutdown(self.name)
            return context
        except Exception as e:  # a broken configuration is a programming error: on_error
            count_config_error(self.name)
            self._config_error(e)
            return context
        return self._record(pipeline, data, context, correlation_id, time_ns, attributes)

    def _record(self, pipeline: Pipeline, data: Any, context: CorrelationContext,
                correlation_id: str, time_ns: int, attributes: Mapping[str, Any] | None,
                ) -> CorrelationContext:
        """collect() once the call is valid: sample, snapshot, redact and emit the record."""
        tally = pipeline.tally
        settings = pipeline.config.collection(self.name)
        if settings is None:
            tally.add("records.dropped", reason="disabled", collection=self.name)
            return context
        if not pipeline.sampler.should_sample(self.name, correlation_id):
            tally.add("records.sampled_out", collection=self.name)
            return context
        try:
            if self.name == A.GEN_AI_COLLECTION:  # typed the same way whoever collects
                kind, body = A.KIND_ROW, gen_ai_row(
                    data, source=SOURCE_COLLECT, capture_content=settings.capture_content)
            else:
                kind, body = snapshot(data)
        except EmptyPayload:
            tally.add("records.dropped", reason="empty", collection=self.name)
            return context
        except (TypeError, ValueError) as e:
            tally.add("records.dropped", reason="invalid", collection=self.name)
            self.on_error(e)
            return context
        attrs = dict(pipeline.base_attributes)
        if attributes:
            if not self._allowed(attributes, tally):
                return context
            attrs.update(attributes)
        attrs[A.COLLECTION] = self.name
        attrs[A.CORRELATION_ID] = correlation_id
        attrs[A.PAYLOAD_KIND] = kind
        declared = self._schema or settings.schema
        if declared is not None and kind in A.TABULAR_KINDS:
            attrs[A.SCHEMA] = declared.text
        if pipeline.config.redaction is not None:
            # Redaction (otel_collector_ext.pipeline.redaction) works on the private snapshot.
            try:
                body = pipeline.config.redaction.apply(kind, body, attrs)
            except Exception as e:  # never record what could not be redacted
                tally.add("records.dropped", reason="redaction_failed", collection=self.name)
                _log.warning("otel_collector_ext: dropped a %s record: redaction failed: %s",
                             self.name, e)
                return context
        if kind == A.KIND_ROW and self.name == A.GEN_AI_COLLECTION:
            body = messages_as_json(body)  # stored as JSON text, after redaction saw lists
        try:
            pipeline.emit(time_ns, body, attrs, self._event_name)
        except Exception as e:  # runtime trouble: counted, never raised into scoring
            tally.add("records.dropped", reason="emit_failed", collection=self.name)
            _log.warning("otel_collector_ext: could not record %s: %s", self.name, e)
        return context  # records.collected is counted by the queue, for what it queued

    def _allowed(self, attributes: Mapping[str, Any], tally: Tally) -> bool:
        """Whether extra `attributes` leave the contract's own alone; else on_error, counted."""
        reserved = A.RESERVED.intersection(attributes)
        if not reserved:
            return True
        tally.add("records.dropped", reason="invalid", collection=self.name)
        self.on_error(ValueError(f"attributes may not set {', '.join(sorted(reserved))}: the "
                                 "configuration and collect() set them"))
        return False

    def __repr__(self) -> str:
        return f"Collector(name={self.name!r})"


@functools.cache
def _gen_ai_events() -> Collector:
    return Collector(name=A.GEN_AI_COLLECTION,
                     on_error=lambda e: _log.warning("gen_ai event not recorded: %s", e))


def collect_gen_ai_event(log_record: ReadWriteLogRecord) -> None:
    """A `gen_ai.client.inference.operation.details` event emitted into the pipeline's own
    LoggerProvider, collected as a gen_ai row (sampling, redaction, content capture and
    the configured endpoint and deployment apply, as for any collect())."""
    record = log_record.log_record
    time_ns = record.timestamp or record.observed_timestamp
    context = BasicCorrelationContext(
        id=correlation_id_of(record), timestamp=None if time_ns is None else time_ns / 1e9)
    _gen_ai_events().collect(event_columns(record), context)


handle_events(A.GEN_AI_EVENT_NAME, collect_gen_ai_event)
