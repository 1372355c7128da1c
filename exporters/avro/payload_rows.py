"""Payload records: one Avro record per text, bytes, JSON or HTTP payload."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import Any

from opentelemetry.sdk._logs import ReadableLogRecord

from .. import contract as A
from .schema import Envelope

_INT_MIN, _INT_MAX = -(2**31), 2**31 - 1  # Avro int: a status beyond it is not a status

DEFAULT_CONTENT_TYPES = {
    A.KIND_TEXT: "text/plain; charset=utf-8",
    A.KIND_BYTES: "application/octet-stream",
    A.KIND_JSON: "application/json",
}


def body_bytes(body: Any) -> bytes:
    """The payload as bytes: text as UTF-8, bytes as-is, anything else as JSON."""
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode("utf-8", "surrogatepass")
    if isinstance(body, (bytearray, memoryview)):
        return bytes(body)
    return json.dumps(body, default=str, separators=(",", ":")).encode()


def log_record_document(readable: ReadableLogRecord) -> dict[str, Any]:
    """An ordinary (non-inference) log record as a JSON-ready document: what it says and
    everything that describes it, so storing it loses nothing a reader would look for."""
    record = readable.log_record
    scope = readable.instrumentation_scope
    severity = record.severity_number
    document: dict[str, Any] = {
        "body": _jsonable(record.body),
        "severity_text": record.severity_text,
        "severity_number": severity.value if severity is not None else None,
        "event_name": record.event_name,
        "attributes": _jsonable(dict(record.attributes or {})),
        "resource": _jsonable(dict(readable.resource.attributes) if readable.resource else {}),
        "scope": scope.name if scope is not None else None,
    }
    return {k: v for k, v in document.items() if v not in (None, {})}


def _jsonable(value: Any) -> Any:
    # Bytes are not JSON: base64 text, marked so it is not mistaken for a string.
    if isinstance(value, bytes | bytearray | memoryview):
        return {"base64": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def payload_row(
    envelope: Envelope,
    kind: str,
    attributes: Mapping[str, Any],
    body: bytes | None,
    *,
    body_size: int,
    body_ref: str | None = None,
) -> dict[str, Any]:
    """The Avro datum of one payload; `body` is None when it is stored at `body_ref`."""
    headers = [
        {"name": k[len(A.HTTP_HEADERS_PREFIX):], "value": str(v)}
        for k, v in attributes.items()
        if k.startswith(A.HTTP_HEADERS_PREFIX)
    ]
    status = attributes.get(A.HTTP_STATUS)
    latency = attributes.get(A.HTTP_LATENCY_MS)
    flags = attributes.get(A.FLAGS) or ()
    return {
        **envelope.fields(0),
        "kind": kind,
        "method": str_or_none(attributes.get(A.HTTP_METHOD)),
        "path": str_or_none(attributes.get(A.HTTP_PATH)),
        "query": str_or_none(attributes.get(A.HTTP_QUERY)),
        "status": int(status) if isinstance(status, (int, float)) and _INT_MIN <= status <= _INT_MAX
        else None,
        "latency_ms": float(latency) if isinstance(latency, (int, float)) else None,
        "headers": headers,
        "content_type": str_or_none(attributes.get(A.CONTENT_TYPE))
        or DEFAULT_CONTENT_TYPES.get(kind),
        "body": body,
        "body_ref": body_ref,
        "body_size": int(attributes.get(A.BODY_SIZE, body_size)),
        "truncated": bool(attributes.get(A.BODY_TRUNCATED, False)),
        "flags": [str(f) for f in flags] if isinstance(flags, (list, tuple)) else [str(flags)],
    }


def str_or_none(value: Any) -> str | None:
    """`value` as text, None staying None (optional record fields)."""
    return None if value is None else str(value)
