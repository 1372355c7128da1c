"""OTLP logs requests (protobuf or OTLP/JSON) → the SDK records our exporters consume.

There is no OTLP decoder in the Python SDK, so this is the inverse of the SDK's
`encode_logs`: ResourceLogs > ScopeLogs > LogRecord become `ReadableLogRecord`s
with their resource, instrumentation scope, attributes, body (our columnar
forms rebuilt by `exporters.otlp.codec.decode_body`), times, trace context,
severity and event name. A record that cannot be decoded is rejected on its
own (reported as partial success); a request that cannot be parsed at all is a
`RequestError`. Messages in errors are safe to return to clients.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry._logs import LogRecord, SeverityNumber
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord as PbLogRecord
from opentelemetry.sdk._logs import ReadableLogRecord
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import TraceFlags

from exporters.otlp.codec import (
    BodyError,
    DecodeBudget,
    LimitExceeded,
    decode_body,
    decode_frames,
    is_frame_form,
    unlimited_budget,
)


class RequestError(ValueError):
    """The request as a whole is malformed (HTTP 400 / gRPC INVALID_ARGUMENT)."""


class TooManyRecords(RequestError):
    """The request holds more records than allowed (HTTP 413 / gRPC INVALID_ARGUMENT)."""


class DecodesTooLarge(TooManyRecords):
    """The request would decode to more cells or bytes than allowed (HTTP 413)."""


def _over_limit(e: LimitExceeded) -> RequestError:
    return DecodesTooLarge(str(e)) if e.too_large else RequestError(str(e))


class _RecordError(ValueError):
    pass


@dataclass
class Decoded:
    """The records of one request, and how many were rejected (with the first reason)."""

    records: list[ReadableLogRecord] = field(default_factory=list)
    rejected: int = 0
    error: str = ""

    def reject(self, reason: str) -> None:
        self.rejected += 1
        if not self.error:
            self.error = reason


_SEVERITIES = {s.value: s for s in SeverityNumber}


def parse_protobuf(data: bytes, *, max_depth: int) -> ExportLogsServiceRequest:
    """Parse a binary ExportLogsServiceRequest; RequestError if it is not one."""
    request = ExportLogsServiceRequest()
    try:
        request.ParseFromString(data)
    except (DecodeError, RecursionError, ValueError):
        raise RequestError("request body is not a valid OTLP logs protobuf") from None
    return request


def parse_json(data: bytes, *, max_depth: int) -> ExportLogsServiceRequest:
    """Parse an OTLP/JSON request: protobuf JSON with hex trace and span ids."""
    try:
        document = json.loads(data)
    except (ValueError, RecursionError):
        raise RequestError("request body is not valid JSON") from None
    if not isinstance(document, dict):
        raise RequestError("request body must be a JSON object")
    _hex_ids_to_base64(document)
    request = ExportLogsServiceRequest()
    try:
        # Each AnyValue level is two message levels (AnyValue, then ArrayValue or
        # KeyValueList and KeyValue); leave room for the envelope.
        json_format.ParseDict(document, request, ignore_unknown_fields=True,
                              max_recursion_depth=3 * max_depth + 16)
    except (json_format.ParseError, RecursionError, ValueError, TypeError):
        raise RequestError("request body is not a valid OTLP/JSON logs request") from None
    return request


def _hex_ids_to_base64(document: dict[str, Any]) -> None:
    # OTLP/JSON writes trace and span ids as hex, where protobuf JSON expects base64.
    for resource_logs in _list(document, "resourceLogs", "resource_logs"):
        for scope_logs in _list(resource_logs, "scopeLogs", "scope_logs"):
            for record in _list(scope_logs, "logRecords", "log_records"):
                if not isinstance(record, dict):
                    continue
                for key in ("traceId", "trace_id", "spanId", "span_id"):
                    value = record.get(key)
                    if isinstance(value, str) and value:
                        try:
                            record[key] = base64.b64encode(bytes.fromhex(value)).decode()
                        except ValueError:
                            raise RequestError(f"{key} must be a hex string") from None


def _list(container: Any, *keys: str) -> Iterable[Any]:
    if not isinstance(container, dict):
        return ()
    for key in keys:
        value = container.get(key)
        if isinstance(value, list):
            return value
    return ()


def count_records(request: ExportLogsServiceRequest) -> int:
    return sum(len(s.log_records) for r in request.resource_logs for s in r.scope_logs)


def decode_request(request: ExportLogsServiceRequest, *, max_depth: int,
                   max_records: int, budget: DecodeBudget | None = None) -> Decoded:
    """The request's records as SDK records; undecodable records are counted as rejected.

    Everything the records decode to is charged to `budget` before it is built; a
    request over it is refused whole (DecodesTooLarge, or RequestError for a record
    declaring too many rows), never partly stored.
    """
    total = count_records(request)
    if total > max_records:
        raise TooManyRecords(f"request holds {total} log records; the limit is {max_records}")
    try:
        return _decode_records(request, max_depth, budget or unlimited_budget())
    except LimitExceeded as e:
        raise _over_limit(e) from None


def _decode_records(request: ExportLogsServiceRequest, max_depth: int,
                    budget: DecodeBudget) -> Decoded:
    out = Decoded()
    frames: list[tuple[int, Any]] = []  # (position in out.records, columnar body)
    for resource_logs in request.resource_logs:
        try:
            resource = Resource(_attributes(resource_logs.resource.attributes, max_depth, budget),
                                resource_logs.schema_url or None)
        except _RecordError as e:
            for scope_logs in resource_logs.scope_logs:
                for _ in scope_logs.log_records:
                    out.reject(f"resource: {e}")
            continue
        for scope_logs in resource_logs.scope_logs:
            try:
                scope = _scope(scope_logs, max_depth, budget)
            except _RecordError as e:
                for _ in scope_logs.log_records:
                    out.reject(f"scope: {e}")
                continue
            for pb in scope_logs.log_records:
                try:
                    record = _record(pb, max_depth, budget)
                except _RecordError as e:
                    out.reject(str(e))
                    continue
                if is_frame_form(record.body):
                    frames.append((len(out.records), record.body))
                out.records.append(ReadableLogRecord(record, resource, scope))
    if frames:
        _decode_frames(out, frames, budget)
    return out


def _decode_frames(out: Decoded, frames: list[tuple[int, Any]], budget: DecodeBudget) -> None:
    # All at once: bodies of one schema are built as one DataFrame and sliced.
    bad = set()
    results = decode_frames([b for _, b in frames], budget)
    for (position, _), result in zip(frames, results, strict=True):
        if isinstance(result, BodyError):
            bad.add(position)
            out.reject(str(result))
        else:
            out.records[position].log_record.body = result
    if bad:
        out.records = [r for k, r in enumerate(out.records) if k not in bad]


def _scope(scope_logs: Any, max_depth: int, budget: DecodeBudget) -> InstrumentationScope | None:
    if not scope_logs.HasField("scope"):
        return None
    pb = scope_logs.scope
    return InstrumentationScope(pb.name, pb.version or None, scope_logs.schema_url or None,
                                _attributes(pb.attributes, max_depth, budget) or None)


def _record(pb: PbLogRecord, max_depth: int, budget: DecodeBudget) -> LogRecord:
    trace_id = _id(pb.trace_id, 16, "trace_id")
    span_id = _id(pb.span_id, 8, "span_id")
    body: Any = None
    if pb.HasField("body"):
        body = value_to_python(pb.body, max_depth, budget=budget)
        try:
            if not is_frame_form(body):  # frames are decoded together, by decode_request
                body = decode_body(body, budget)
        except LimitExceeded:
            raise
        except BodyError as e:
            raise _RecordError(str(e)) from None
        except Exception:  # off the wire: whatever it is, it is this record's problem
            raise _RecordError("undecodable body") from None
    return LogRecord(
        timestamp=pb.time_unix_nano or None,
        observed_timestamp=pb.observed_time_unix_nano or None,
        trace_id=trace_id,
        span_id=span_id,
        trace_flags=TraceFlags(pb.flags & 0xFF),
        severity_text=pb.severity_text or None,
        severity_number=_SEVERITIES.get(pb.severity_number) if pb.severity_number else None,
        body=body,
        attributes=_attributes(pb.attributes, max_depth, budget),
        event_name=pb.event_name or None,
    )


def _id(raw: bytes, size: int, name: str) -> int:
    if not raw:
        return 0
    if len(raw) != size:
        raise _RecordError(f"{name} must be {size} bytes, not {len(raw)}")
    return int.from_bytes(raw, "big")


def _attributes(pairs: Sequence[KeyValue], max_depth: int, budget: DecodeBudget) -> dict[str, Any]:
    budget.charge_values(len(pairs))
    return {kv.key: value_to_python(kv.value, max_depth, budget=budget) for kv in pairs}


def value_to_python(value: AnyValue, max_depth: int, depth: int = 0, *,
                    budget: DecodeBudget | None = None) -> Any:
    """An AnyValue as a Python value; RequestError when nested deeper than `max_depth`.

    The elements of lists and maps are charged to `budget` (LimitExceeded when over).
    """
    which = value.WhichOneof("value")
    if which == "string_value":
        return value.string_value
    if which == "int_value":
        return value.int_value
    if which == "bytes_value":
        return value.bytes_value
    if which == "double_value":
        return value.double_value
    if which == "bool_value":
        return value.bool_value
    if which is None:
        return None
    if depth >= max_depth:
        # Malformed or hostile rather than one bad record: the whole request is refused.
        raise RequestError(f"a value is nested deeper than {max_depth} levels")
    if which == "array_value":
        values = value.array_value.values
        if budget is not None:
            budget.charge_values(len(values))
        return [value_to_python(v, max_depth, depth + 1, budget=budget) for v in values]
    if which == "kvlist_value":
        pairs = value.kvlist_value.values
        if budget is not None:
            budget.charge_values(len(pairs))
        return {kv.key: value_to_python(kv.value, max_depth, depth + 1, budget=budget)
                for kv in pairs}
    raise _RecordError(f"unsupported AnyValue field {which}")

