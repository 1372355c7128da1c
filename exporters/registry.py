"""Exporters by name: `{"type": "avro", ...options}` → a LogRecordExporter.

Swapping exporters is a configuration change only. Implementations are imported
lazily, so choosing `console` never imports what `avro` or `otlp` need.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Mapping
from typing import Any

from opentelemetry.sdk._logs.export import LogRecordExporter

EXPORTERS: dict[str, str] = {
    "avro": "exporters.avro.exporter:AvroLogExporter",
    "console": "exporters.console:ConsoleLogExporter",
    "otlp": "exporters.otlp.exporter:OtlpLogExporter",
}


def exporter_class(kind: str) -> type[LogRecordExporter]:
    """The class registered as `kind`; ValueError naming the known ones otherwise."""
    target = EXPORTERS.get(kind)
    if target is None:
        raise ValueError(
            f"exporter.type: unknown exporter {kind!r} (known: {', '.join(sorted(EXPORTERS))})"
        )
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


def create_exporter(spec: Mapping[str, Any], *, key: str = "exporter") -> LogRecordExporter:
    """Build the exporter `spec` describes; errors name the offending `key.option`."""
    if not isinstance(spec, Mapping):
        raise ValueError(f"{key} must be a mapping with a 'type'")
    options = dict(spec)
    kind = options.pop("type", "avro")
    cls = exporter_class(kind)
    params = inspect.signature(cls.__init__).parameters
    accepts_any = any(p.kind is p.VAR_KEYWORD for p in params.values())
    allowed = [n for n, p in params.items() if n != "self" and p.kind is not p.VAR_KEYWORD]
    for option in options:
        if not accepts_any and option not in allowed:
            raise ValueError(
                f"{key}.{option}: unknown option for exporter {kind!r} "
                f"(known: {', '.join(sorted(allowed))})"
            )
    try:
        return cls(**options)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{key}: {e}") from None
