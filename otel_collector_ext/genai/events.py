"""Upstream GenAI events as gen_ai rows.

OpenTelemetry's GenAI instrumentations (`opentelemetry-instrumentation-openai-v2` with
`OTEL_SEMCONV_STABILITY_OPT_IN=gen_ai_latest_experimental`, `opentelemetry-util-genai`)
emit one `gen_ai.client.inference.operation.details` log record per model call: no
body, the call's `gen_ai.*` attributes, and (with content capture on) the messages as
lists of `{role, parts}` maps. `event_columns` reads such a record into the columns of
a gen_ai row; `gen_ai_record` makes the stored record of it, for `serve`.

Where such a record goes (docs/genai.md): the endpoint is the record's or the
resource's `ml.inference.endpoint`, else the resource's `service.name`, else
"default"; the deployment is `ml.inference.deployment` (record, then resource), else
"default"; the correlation id is `<trace id>-<span id>` of the record (the model
call's span), else a new UUID. In-process, the pipeline's configured endpoint and
deployment apply instead (the Collector's usual attributes).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry._logs import LogRecord
from opentelemetry.sdk._logs import ReadableLogRecord

from exporters import contract as A

from . import record as R

GEN_AI_EVENT_NAME = A.GEN_AI_EVENT_NAME
_UNSAFE = re.compile(r"[^A-Za-z0-9_.\-]")
FLAG_INVALID_VALUE = "invalid_value"  # an attribute of the wrong type was left out


def is_gen_ai_event(record: LogRecord) -> bool:
    """An upstream GenAI event that is not already one of our records."""
    if record.event_name != GEN_AI_EVENT_NAME:
        return False
    attributes = record.attributes or {}
    return not attributes.get(A.COLLECTION)


def event_columns(record: LogRecord) -> dict[str, Any]:
    """The gen_ai columns an event carries; values of the wrong type are left out, flagged.

    Older instrumentations put the call in the body (a map of the same keys): read too.
    """
    found: dict[str, Any] = {}
    if isinstance(record.body, Mapping):
        found.update({k: v for k, v in record.body.items() if k in R.COLUMNS})
    found.update({k: v for k, v in (record.attributes or {}).items() if k in R.COLUMNS})
    columns: dict[str, Any] = {}
    flags: list[str] = []
    for key, value in found.items():
        if isinstance(value, tuple):  # SDK attributes hold sequences as tuples
            value = list(value)
        try:
            R.gen_ai_row({key: value}, source=R.SOURCE_OTEL_EVENT, capture_content=True)
        except R.GenAIRecordError:
            if FLAG_INVALID_VALUE not in flags:
                flags.append(FLAG_INVALID_VALUE)
            continue
        columns[key] = value
    columns[R.SOURCE] = R.SOURCE_OTEL_EVENT
    if flags:
        columns[R.FLAGS] = [*(columns.get(R.FLAGS) or []), *flags]
    return columns


def correlation_id_of(record: LogRecord) -> str:
    if record.trace_id and record.span_id:
        return f"{record.trace_id:032x}-{record.span_id:016x}"
    return str(uuid.uuid4())


def _name(value: Any) -> str | None:
    if not isinstance(value, str) or not value.strip():
        return None
    name = _UNSAFE.sub("_", value.strip())[:128].strip(".-")
    return name or None


def placement(readable: ReadableLogRecord) -> tuple[str, str]:
    """(endpoint, deployment) of an upstream event, by the rules of this module's doc."""
    attributes = readable.log_record.attributes or {}
    resource = readable.resource.attributes if readable.resource else {}
    endpoint = (_name(attributes.get(A.ENDPOINT)) or _name(resource.get(A.ENDPOINT))
                or _name(resource.get("service.name")) or "default")
    deployment = (_name(attributes.get(A.DEPLOYMENT)) or _name(resource.get(A.DEPLOYMENT))
                  or "default")
    return endpoint, deployment


def gen_ai_record(readable: ReadableLogRecord) -> ReadableLogRecord:
    """The gen_ai record `serve` stores for an upstream event (see `placement`)."""
    source = readable.log_record
    row = R.messages_as_json(R.gen_ai_row(event_columns(source), source=R.SOURCE_OTEL_EVENT,
                                          capture_content=True))
    endpoint, deployment = placement(readable)
    attributes: dict[str, Any] = {
        A.COLLECTION: A.GEN_AI_COLLECTION, A.ENDPOINT: endpoint, A.DEPLOYMENT: deployment,
        A.CORRELATION_ID: correlation_id_of(source), A.PAYLOAD_KIND: A.KIND_ROW}
    resource = readable.resource.attributes if readable.resource else {}
    version = (source.attributes or {}).get(A.MODEL_VERSION) or resource.get(A.MODEL_VERSION)
    if isinstance(version, str):
        attributes[A.MODEL_VERSION] = version
    # The API's overloads have no event_name beside trace ids; the constructor takes both.
    record = LogRecord(  # type: ignore[call-overload]
        timestamp=source.timestamp or source.observed_timestamp,
        observed_timestamp=source.observed_timestamp, trace_id=source.trace_id,
        span_id=source.span_id, trace_flags=source.trace_flags,
        severity_text=source.severity_text, severity_number=source.severity_number,
        body=row, attributes=attributes, event_name=A.event_name(A.GEN_AI_COLLECTION))
    return ReadableLogRecord(record, readable.resource, readable.instrumentation_scope)


def map_gen_ai_events(records: Sequence[ReadableLogRecord]) -> Sequence[ReadableLogRecord]:
    """`records` with each upstream GenAI event replaced by its gen_ai record (`serve`)."""
    if not any(r.log_record.event_name == GEN_AI_EVENT_NAME for r in records):
        return records
    return [gen_ai_record(r) if is_gen_ai_event(r.log_record) else r for r in records]
