"""Exporters by name: `{"type": "avro", ...options}` → a LogRecordExporter.

Swapping exporters is a configuration change only. Each exporter class declares its
options as a model (`Options`), which checks a configuration's exporter block. Implementations are imported
lazily, so choosing `console` never imports what `avro` or `otlp` need.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from opentelemetry.sdk._logs.export import LogRecordExporter

from .config_model import ConfigModel, validate

EXPORTERS: dict[str, str] = {
    "avro": "exporters.avro.exporter:AvroLogExporter",
    "console": "exporters.console:ConsoleLogExporter",
    "otlp": "exporters.otlp.exporter:OtlpLogExporter",
}


_FILE_VALUES = (str, int, float, bool, list, dict, type(None))


def exporter_options() -> dict[str, type[ConfigModel] | None]:
    """Each exporter type's options model (None: it declares none)."""
    return {kind: getattr(exporter_class(kind), "Options", None) for kind in EXPORTERS}


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
    # Objects handed over by code (the service's journaled storage), never from a file.
    runtime = {name: options.pop(name) for name in getattr(cls, "RUNTIME_ARGUMENTS", ())
               if name in options and not isinstance(options[name], _FILE_VALUES)}
    try:
        # The file's keys and values, checked against the exporter's options model; what is
        # not given is resolved by the exporter itself (its environment variables, defaults).
        validate(cls.Options, options, prefix=key)  # type: ignore[attr-defined]
    except ValueError as e:
        message = str(e)
        raise ValueError(message.replace("unknown key ", f"unknown option for exporter {kind!r}: ")
                         if message.startswith("unknown key ") else message) from None
    try:
        return cls(**options, **runtime)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{key}: {e}") from None
