"""Helpers for the OTLP tests: sample payloads, raw OTLP requests, raw gRPC and HTTP calls."""

from __future__ import annotations

import datetime as dt
import decimal
import http.client
import socket
import ssl
from collections.abc import Mapping, Sequence
from typing import Any

import grpc
import numpy as np
import pandas as pd
from opentelemetry._logs import LogRecord
from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue
from opentelemetry.sdk._logs import ReadableLogRecord
from opentelemetry.sdk.resources import Resource

from exporters import contract as A
from exporters.otlp.codec import encode_body

EXPORT_METHOD = "/opentelemetry.proto.collector.logs.v1.LogsService/Export"
# The zone object pandas itself makes of the name: zoneinfo from pandas 3, pytz before.
BERLIN = pd.DatetimeTZDtype(tz="Europe/Berlin").tz
T0 = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z in ns
SEGMENTS = pd.CategoricalDtype(["a", "b", "c"])


# -- sample payloads ---------------------------------------------------------------
def zoo_frame(i: int, rows: int = 3) -> pd.DataFrame:
    """A frame with every dtype the OTLP form must carry, nulls in most columns, odd names."""
    r = range(rows)

    def pick(values: Sequence[Any]) -> list[Any]:
        return [values[(i + k) % len(values)] for k in r]

    base = pd.Timestamp(T0, unit="ns", tz="UTC") + pd.Timedelta(seconds=i)
    frame = pd.DataFrame({
        "age": np.array([i + k for k in r], dtype=np.int64),
        "score": pick([0.5, np.nan, -1e300, 3.25, np.inf]),
        "name": pick(["ann 😀", None, "bö"]),  # no all-null 1-row frames: dtype would vary
        "flag": pick([True, False]),
        "when": [base + pd.Timedelta(microseconds=k) for k in r],
        "local": pd.DatetimeIndex([base + pd.Timedelta(hours=k) for k in r]).tz_convert(BERLIN),
        "naive": pd.to_datetime([T0 + i * 1000 + k for k in r], unit="ns").as_unit("us"),
        "segment": pd.Categorical.from_codes(pick([0, -1, 2, 1]), dtype=SEGMENTS),
        "amount": pick([decimal.Decimal("12.50"), None, decimal.Decimal("-0.01")]),
        "count": pd.array(pick([1, None, 7]), dtype="Int64"),
        "ratio": np.array(pick([0.25, 1.5]), dtype=np.float32),
        "odd name/ü.x": pick([1.0, 2.0]),
        "1st": pick([10, 20]),
        "class": pick(["x", "y"]),
        "day": pick([dt.date(2026, 1, 1), None, dt.date(1999, 12, 31)]),
        "wait": pd.to_timedelta(pick([1.5, None, 3]), unit="s").as_unit("us"),
        "blob": pick([b"\x00\xff", None, b"raw"]),
        "text": pd.array(pick(["s", None]), dtype="string"),
    })
    return frame


def zoo_row(i: int) -> dict[str, Any]:
    """A row of plain values (sent as a plain AnyValue), or with a datetime (sent as a frame)."""
    row: dict[str, Any] = {"prediction": i / 7, "label": f"l{i % 5}", "ok": i % 2 == 0,
                           "rank": i}
    if i % 3 == 0:
        row["at"] = dt.datetime(2026, 1, 1, tzinfo=dt.UTC) + dt.timedelta(seconds=i)
    return row


# -- records and requests ----------------------------------------------------------
RESOURCE = Resource({"service.name": "ep.dep", A.INSTANCE_ID: "replica-1"})


def record(body: Any, kind: str, *, collection: str = "inputs", correlation_id: str = "c-1",
           time_ns: int = T0, deployment: str = "dep",
           trace_id: int = 0, extra: Mapping[str, Any] | None = None) -> ReadableLogRecord:
    """An SDK record as `Collector.collect` makes it, body already in its OTLP form."""
    attrs = {A.COLLECTION: collection, A.CORRELATION_ID: correlation_id, A.ENDPOINT: "ep",
             A.DEPLOYMENT: deployment, A.PAYLOAD_KIND: kind, **(extra or {})}
    return ReadableLogRecord(
        LogRecord(timestamp=time_ns, body=encode_body(body, kind), attributes=attrs,
                  event_name=A.event_name(collection), trace_id=trace_id, span_id=0),
        RESOURCE,
    )


def request(records: Sequence[ReadableLogRecord]) -> ExportLogsServiceRequest:
    return encode_logs(records)


def rows_request(n: int, *, prefix: str = "r", deployment: str = "dep") -> bytes:
    """A serialized request of `n` one-row records with correlation ids prefix-0.. prefix-(n-1)."""
    return request([
        record({"i": k, "who": prefix}, A.KIND_ROW, correlation_id=f"{prefix}-{k}",
               deployment=deployment, time_ns=T0 + k)
        for k in range(n)
    ]).SerializeToString()


def nested_value(depth: int) -> AnyValue:
    value = AnyValue(string_value="leaf")
    for _ in range(depth):
        value = AnyValue(array_value=ArrayValue(values=[value]))
    return value


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field, by hand (upb will not build messages this deep)."""
    tag, size, out = (number << 3) | 2, len(payload), bytearray()
    out.append(tag)
    while True:
        byte, size = size & 0x7F, size >> 7
        out.append(byte | (0x80 if size else 0))
        if not size:
            return bytes(out) + payload


def deep_request(depth: int) -> bytes:
    """A one-record request whose body is an array nested `depth` levels deep."""
    value = _field(1, b"leaf")  # AnyValue.string_value
    for _ in range(depth):
        value = _field(5, _field(1, value))  # AnyValue.array_value → ArrayValue.values
    log_record = _field(5, value)  # LogRecord.body
    return _field(1, _field(2, _field(2, log_record)))  # request → resource → scope → record


# -- transports ----------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def grpc_export(address: tuple[str, int], data: bytes, *, token: str | None = None,
                compression: grpc.Compression | None = None,
                credentials: grpc.ChannelCredentials | None = None,
                timeout: float = 10) -> tuple[grpc.StatusCode, str, dict[str, Any], bytes]:
    """One raw Export call: (code, details, trailing metadata, response bytes)."""
    target = f"{address[0]}:{address[1]}"
    options = [("grpc.max_send_message_length", -1)]
    if credentials is not None:
        options.append(("grpc.ssl_target_name_override", "localhost"))
        channel = grpc.secure_channel(target, credentials, options=options)
    else:
        channel = grpc.insecure_channel(target, options=options)
    with channel:
        call = channel.unary_unary(EXPORT_METHOD)
        metadata = [("authorization", f"Bearer {token}")] if token else None
        try:
            response, info = call.with_call(data, timeout=timeout, metadata=metadata,
                                            compression=compression)
            return grpc.StatusCode.OK, "", dict(info.trailing_metadata() or ()), response
        except grpc.RpcError as e:
            return e.code(), e.details() or "", dict(e.trailing_metadata() or ()), b""


def http_post(address: tuple[str, int], body: bytes, *, content_type: str = "application/x-protobuf",
              headers: Mapping[str, str] | None = None, path: str = "/v1/logs",
              context: ssl.SSLContext | None = None,
              timeout: float = 10) -> tuple[int, dict[str, str], bytes]:
    """One HTTP request on a fresh connection: (status, headers, body)."""
    conn: http.client.HTTPConnection
    if context is not None:
        conn = http.client.HTTPSConnection(address[0], address[1], timeout=timeout, context=context)
    else:
        conn = http.client.HTTPConnection(address[0], address[1], timeout=timeout)
    try:
        all_headers = {"Content-Type": content_type, **(headers or {})}
        conn.request("POST", path, body=body, headers=all_headers)
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def http_get(address: tuple[str, int], path: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(address[0], address[1], timeout=10)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()
