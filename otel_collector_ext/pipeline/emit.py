"""Emitting one collect() call's record into the SDK pipeline, cheaply.

`Logger.emit` wraps every record's attributes in the SDK's `BoundedAttributes`, which
copies and checks each value (about 1 µs an attribute, most of what emitting costs).
The attributes collect() builds are plain strings and numbers, under the SDK's count
limit, with no length limit set: the SDK's checks would hand back the same mapping. In
that case the record is given to the SDK already writable, and its checks are skipped;
in any other case (an attribute value that needs cleaning, a limit that cuts something)
the SDK does its usual work. Either way the record goes through `Logger.emit`, so every
processor of the LoggerProvider receives it, and it carries the current trace context.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from opentelemetry._logs import LogRecord
from opentelemetry.sdk._logs import Logger, LogRecordLimits, ReadWriteLogRecord

_PLAIN = (str, int, float)  # bool is an int
_WRITABLE_FIELDS = ("log_record", "resource", "instrumentation_scope", "limits")


def _writable_fields_known() -> bool:
    """Whether ReadWriteLogRecord is the dataclass this module fills in (it is private
    API in spirit: a new SDK release that changes it gets the ordinary path)."""
    try:
        names = tuple(f.name for f in dataclasses.fields(ReadWriteLogRecord))
    except TypeError:
        return False
    return names == _WRITABLE_FIELDS


class RecordEmitter:
    """Emits records through `logger`, skipping the SDK's attribute copy when it changes
    nothing (`limits` must be the LoggerProvider's)."""

    def __init__(self, logger: Logger, limits: LogRecordLimits) -> None:
        self._logger = logger
        self._limits = limits
        self._max_attributes = limits.max_log_record_attributes
        self._fast = limits.max_log_record_attribute_length is None and _writable_fields_known()

    def emit(self, time_ns: int, body: Any, attributes: dict[str, Any], event_name: str) -> None:
        record = LogRecord(timestamp=time_ns, body=body, attributes=attributes,
                           event_name=event_name)
        if self._fast and self._plain(attributes):
            writable = ReadWriteLogRecord.__new__(ReadWriteLogRecord)
            # What the dataclass's __init__ sets, without its __post_init__ (the copy).
            writable.__dict__.update(log_record=record, resource=self._logger.resource,
                                     instrumentation_scope=self._logger.instrumentation_scope,
                                     limits=self._limits)
            self._logger.emit(writable)
        else:
            self._logger.emit(record)

    def _plain(self, attributes: Mapping[str, Any]) -> bool:
        """Whether the SDK's BoundedAttributes would keep `attributes` exactly as they are."""
        if self._max_attributes is not None and len(attributes) > self._max_attributes:
            return False
        for key, value in attributes.items():
            if type(key) is not str or not key or not isinstance(value, _PLAIN):
                return False
        return True
