"""The fixed parts of our Avro schemas: envelope fields and the payload record.

Every record, tabular or payload, starts with the envelope fields. Their names
begin with an underscore so they never collide with a user's (sanitised) column
names; read-back returns them under the same names.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

NAMESPACE = "otel_collector_ext"

CORRELATION_ID = "_correlation_id"
TIME = "_time"
ROW = "_row"
MODEL_VERSION = "_model_version"
TRACE_ID = "_trace_id"
SPAN_ID = "_span_id"

ENVELOPE_FIELDS: list[dict[str, Any]] = [
    {"name": CORRELATION_ID, "type": "string"},
    {"name": TIME, "type": {"type": "long", "logicalType": "timestamp-micros"}},
    {"name": ROW, "type": "long"},
    {"name": MODEL_VERSION, "type": ["null", "string"], "default": None},
    {"name": TRACE_ID, "type": ["null", "string"], "default": None},
    {"name": SPAN_ID, "type": ["null", "string"], "default": None},
]
ENVELOPE_NAMES = frozenset(f["name"] for f in ENVELOPE_FIELDS)



@dataclass(frozen=True, slots=True)
class Envelope:
    """What every record of one collect() call shares."""

    correlation_id: str
    time_us: int  # event time, microseconds since the epoch (UTC)
    model_version: str | None = None
    trace_id: str | None = None  # 32 hex digits
    span_id: str | None = None  # 16 hex digits

    def fields(self, row: int = 0) -> dict[str, Any]:
        """The envelope fields of the `row`-th record of the call, as Avro datum entries."""
        return {
            CORRELATION_ID: self.correlation_id,
            TIME: self.time_us,
            ROW: row,
            MODEL_VERSION: self.model_version,
            TRACE_ID: self.trace_id,
            SPAN_ID: self.span_id,
        }


# File metadata keys (Avro container header) that say what a file holds.
META_SHAPE = "otel_collector_ext.shape"  # "tabular" | "payload"
META_COLLECTION = "otel_collector_ext.collection"
META_FORMAT_VERSION = "otel_collector_ext.format"
FORMAT_VERSION = "1"

SHAPE_TABULAR = "tabular"
SHAPE_PAYLOAD = "payload"


def _nullable(avro_type: Any) -> dict[str, Any]:
    return {"type": ["null", avro_type], "default": None}


PAYLOAD_FIELDS: list[dict[str, Any]] = [
    *ENVELOPE_FIELDS,
    {"name": "kind", "type": "string"},
    {"name": "method", **_nullable("string")},
    {"name": "path", **_nullable("string")},
    {"name": "query", **_nullable("string")},
    {"name": "status", **_nullable("int")},
    {"name": "latency_ms", **_nullable("double")},
    # An array of name/value records, not an Avro map: polars and other engines lack maps.
    {"name": "headers", "type": {"type": "array", "items": {
        "type": "record", "name": "header", "fields": [
            {"name": "name", "type": "string"}, {"name": "value", "type": "string"}]}}},
    {"name": "content_type", **_nullable("string")},
    {"name": "body", **_nullable("bytes")},
    {"name": "body_ref", **_nullable("string")},
    {"name": "body_size", "type": "long"},
    {"name": "truncated", "type": "boolean"},
    {"name": "flags", "type": {"type": "array", "items": "string"}},
]


# No non-null defaults above: polars' Avro reader fails on them ("OutOfSpec").


def payload_schema(collection: str) -> dict[str, Any]:
    """The schema of payload records (HTTP request/response, text, bytes, JSON)."""
    return {
        "type": "record",
        "name": "payload",
        "namespace": NAMESPACE,
        "doc": f"payloads of collection {collection}",
        "fields": PAYLOAD_FIELDS,
    }


def fingerprint(schema: dict[str, Any]) -> str:
    """A short stable id of a schema: equal schemas share a file, a new one starts a file."""
    canonical = json.dumps(schema, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.blake2b(canonical.encode(), digest_size=8).hexdigest()
