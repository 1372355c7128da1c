"""A console exporter for debugging: one JSON line per record, bodies summarised."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any, TextIO

from opentelemetry.sdk._logs import ReadableLogRecord
from opentelemetry.sdk._logs.export import LogRecordExporter, LogRecordExportResult

from .config_model import ConfigModel


class ConsoleExporterOptions(ConfigModel):
    """The `console` exporter has no options in a file (`stream` is for Python callers)."""


def summarise(body: Any) -> Any:
    """A short, printable description of a payload (frames by shape, bytes by size)."""
    shape = getattr(body, "shape", None)
    if shape is not None:
        return {"type": type(body).__name__, "shape": list(shape)}
    if isinstance(body, (bytes, bytearray)):
        return {"type": "bytes", "size": len(body)}
    if isinstance(body, str) and len(body) > 200:
        return body[:200] + "…"
    return body


class ConsoleLogExporter(LogRecordExporter):
    """Prints each record's event name, time, attributes and a body summary."""

    #: Arguments only code can give (objects), beside the options.
    RUNTIME_ARGUMENTS = ("stream",)
    Options = ConsoleExporterOptions

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream

    def export(self, batch: Sequence[ReadableLogRecord]) -> LogRecordExportResult:
        out = self.stream or sys.stdout
        for readable in batch:
            record = readable.log_record
            line = {
                "event_name": record.event_name,
                "timestamp": record.timestamp,
                "attributes": dict(record.attributes or {}),
                "body": summarise(record.body),
            }
            out.write(json.dumps(line, default=str) + "\n")
        out.flush()
        return LogRecordExportResult.SUCCESS

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True

    def shutdown(self) -> None:
        pass

    def __repr__(self) -> str:
        return f"<ConsoleLogExporter {'stdout' if self.stream is None else 'a stream'}>"
