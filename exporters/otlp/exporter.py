"""The OTLP exporter: the released OTLP gRPC or HTTP exporter, fed bodies it can carry.

The standard exporters encode only AnyValue bodies, so a DataFrame or ndarray body
would fail the whole batch. This exporter hands them copies of the records whose
bodies take the documented columnar forms of `exporters.otlp.codec`; the caller's
records are never modified. Everything else (endpoint, headers, TLS, retries with
backoff, compression) is the standard exporter's, configured by the same
OTEL_EXPORTER_OTLP_* variables, so it also works with no arguments.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlparse

import pandas as pd
from opentelemetry.sdk._logs import ReadableLogRecord
from opentelemetry.sdk._logs.export import LogRecordExporter, LogRecordExportResult

from .. import contract as A
from ..avro.tabular import to_frame
from .codec import encode_body, encode_frames, is_frame_form, is_plain
from .options import OtlpExporterOptions

_log = logging.getLogger(__name__)

_HTTP_LOGS_PATH = "/v1/logs"


def _http_url(endpoint: str) -> str:
    # A base URL (no path) means the collector's root, as OTEL_EXPORTER_OTLP_ENDPOINT does.
    parsed = urlparse(endpoint)
    if parsed.scheme not in ("http", "https"):
        raise ValueError(f"an http/protobuf endpoint must be an http(s) URL, not {endpoint!r}")
    if parsed.path in ("", "/"):
        return endpoint.rstrip("/") + _HTTP_LOGS_PATH
    return endpoint


class OtlpLogExporter(LogRecordExporter):
    """Exports inference records over OTLP (gRPC or HTTP/protobuf) to `serve` or any collector.

    Options not given come from the standard environment variables
    (OTEL_EXPORTER_OTLP_[LOGS_]ENDPOINT, _HEADERS, _INSECURE, _TIMEOUT,
    _COMPRESSION, _CERTIFICATE, _PROTOCOL).
    """

    Options = OtlpExporterOptions

    def __init__(
        self,
        protocol: str | None = None,
        endpoint: str | None = None,
        headers: Mapping[str, str] | str | None = None,
        insecure: bool | None = None,
        timeout: float | None = None,
        compression: str | None = None,
        certificate_file: str | None = None,
    ) -> None:
        options = OtlpExporterOptions.resolve({
            "protocol": protocol, "endpoint": endpoint, "headers": headers,
            "insecure": insecure, "timeout": timeout, "compression": compression,
            "certificate_file": certificate_file})
        self.protocol = options.protocol
        endpoint, insecure, timeout = options.endpoint, options.insecure, options.timeout
        certificate_file = options.certificate_file
        compressed = _compression(options.compression, self.protocol)
        header_map = options.headers
        if self.protocol == "grpc":
            from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter

            credentials = None
            if certificate_file:
                import grpc

                with open(certificate_file, "rb") as f:
                    credentials = grpc.ssl_channel_credentials(f.read())
            self._inner: LogRecordExporter = OTLPLogExporter(
                endpoint=endpoint, insecure=insecure, credentials=credentials,
                headers=header_map, timeout=timeout, compression=compressed,
            )
        else:
            from opentelemetry.exporter.otlp.proto.http._log_exporter import (
                OTLPLogExporter as HttpExporter,
            )

            if insecure is not None:
                _log.debug("insecure has no effect over http/protobuf: the URL scheme decides")
            self._inner = HttpExporter(
                endpoint=_http_url(endpoint) if endpoint else None,
                certificate_file=certificate_file, headers=header_map, timeout=timeout,
                compression=compressed,
            )

    def export(self, batch: Sequence[ReadableLogRecord]) -> LogRecordExportResult:
        return self._inner.export(encode_records(batch))

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._inner.force_flush(timeout_millis)

    def shutdown(self) -> None:
        self._inner.shutdown()

    def __repr__(self) -> str:
        # The SDK exporters keep their resolved URL (options or environment) here.
        endpoint = getattr(self._inner, "_endpoint", None)
        return f"<OtlpLogExporter {self.protocol}{f' to {endpoint}' if endpoint else ''}>"


def _compression(value: str | None, protocol: str) -> Any:
    if value is None:
        return None
    name = value
    if protocol == "grpc":
        from grpc import Compression

        if name == "deflate":
            return Compression.Deflate
        return Compression.Gzip if name == "gzip" else Compression.NoCompression
    from opentelemetry.exporter.otlp.proto.http import Compression as HttpCompression

    return HttpCompression(name)


def encode_records(batch: Sequence[ReadableLogRecord]) -> list[ReadableLogRecord]:
    """The batch with every body in its OTLP form; frames of one layout are encoded together."""
    out = list(batch)
    frames: list[pd.DataFrame] = []
    where: list[int] = []
    for i, readable in enumerate(batch):
        record = readable.log_record
        body = record.body
        if isinstance(body, pd.DataFrame):
            frames.append(body)
            where.append(i)
            continue
        kind = _kind(record)
        if kind in A.TABULAR_KINDS and kind != A.KIND_NDARRAY and not is_plain(body):
            try:
                frames.append(to_frame(body, kind))
                where.append(i)
                continue
            except Exception:  # encode_body's lossy fallback below says why
                pass
        out[i] = _encoded(readable)
    if frames:
        try:
            bodies = encode_frames(frames)
        except Exception as e:  # never let one body sink the batch
            _log.warning("batch frame encoding failed (%s); encoding frame by frame", e)
            bodies = [None] * len(frames)
        for i, frame, body in zip(where, frames, bodies, strict=True):
            if body is None:
                out[i] = _encoded(_with_body(batch[i], frame, A.KIND_DATAFRAME))
            else:
                out[i] = _with_body(batch[i], body, A.KIND_DATAFRAME)
    return out


def _kind(record: Any) -> str:
    kind = (record.attributes or {}).get(A.PAYLOAD_KIND)
    return kind if isinstance(kind, str) else ""


def _with_body(readable: ReadableLogRecord, body: Any, kind: str | None) -> ReadableLogRecord:
    """A copy of `readable` with `body` (and payload kind `kind`, if it changes)."""
    record = readable.log_record
    copied = copy.copy(record)
    copied.body = body
    attrs = record.attributes or {}
    if kind is not None and attrs.get(A.PAYLOAD_KIND) != kind:
        copied.attributes = {**attrs, A.PAYLOAD_KIND: kind}
    return ReadableLogRecord(copied, readable.resource, readable.instrumentation_scope,
                             readable.limits)


def _encoded(readable: ReadableLogRecord) -> ReadableLogRecord:
    """`readable`, or a copy whose body is an AnyValue the OTLP encoder accepts."""
    record = readable.log_record
    body = record.body
    attrs = record.attributes or {}
    kind = attrs.get(A.PAYLOAD_KIND)
    kind = kind if isinstance(kind, str) else ""
    try:
        encoded = encode_body(body, kind)
    except Exception as e:  # never let one body sink the batch
        _log.warning("could not encode a %s body for OTLP (%s); sending its text", kind, e)
        encoded = repr(body)
    if encoded is body:
        return readable
    relabel = kind in A.TABULAR_KINDS and is_frame_form(encoded)
    return _with_body(readable, encoded, A.KIND_DATAFRAME if relabel else None)
