"""Correlation contexts: what ties the inputs, outputs, request and response of one call.

`BasicCorrelationContext` mirrors azureml-ai-monitoring's class of the same name, so
scripts written for Azure ML keep working. The *current* context lives in a
contextvar, so middleware can set it for a request and `collect()` calls inside the
handler (sync, async, or in threads started with `contextvars.copy_context()`) share it.
"""

from __future__ import annotations

import contextvars
import os
import random
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Protocol, runtime_checkable

# Correlation ids must be unique, not unguessable (they name requests, they guard nothing):
# a generator seeded from the OS, not os.urandom per id, which is a system call per collect()
# (the dearest part of making an id, and far dearer in sandboxed containers). Reseeded in a
# forked child, so parent and children never share a sequence.
_ids = random.Random(os.urandom(32))
os.register_at_fork(after_in_child=lambda: _ids.seed(os.urandom(32)))


def new_correlation_id() -> str:
    """A random (version 4) UUID string, formatted without uuid.UUID's overhead (hot path)."""
    h = f"{_ids.getrandbits(128):032x}"
    variant = "89ab"[int(h[16], 16) & 3]
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{variant}{h[17:20]}-{h[20:32]}"


@runtime_checkable
class CorrelationContext(Protocol):
    """What `Collector.collect()` accepts and returns (azureml-ai-monitoring compatible)."""

    def get_id(self) -> str: ...

    def get_timestamp(self) -> int: ...

    def get_headers(self) -> dict[str, str]: ...


class BasicCorrelationContext:
    """A correlation id, an event time and headers, as in azureml-ai-monitoring.

    `timestamp` is seconds since the epoch (int or float, as Azure's SDK); the event
    time is kept to the microsecond when the context is created here, so records of
    one second do not collapse to one instant.
    """

    __slots__ = ("id", "headers", "_time_ns")

    def __init__(
        self,
        id: str | None = None,  # noqa: A002 - the Azure SDK's parameter name
        timestamp: float | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.id = str(id) if id else new_correlation_id()
        if timestamp is None:
            self._time_ns = time.time_ns()
        elif isinstance(timestamp, (int, float)) and not isinstance(timestamp, bool):
            self._time_ns = int(timestamp * 1_000_000_000)
        else:
            raise TypeError(f"timestamp must be seconds since the epoch, not {type(timestamp).__name__}")
        self.headers = dict(headers) if headers else {}

    @property
    def timestamp(self) -> int:
        return self._time_ns // 1_000_000_000

    def get_id(self) -> str:
        return self.id

    def get_timestamp(self) -> int:
        return self.timestamp

    def get_headers(self) -> dict[str, str]:
        return self.headers

    def time_ns(self) -> int:
        """The event time in nanoseconds since the epoch (full precision)."""
        return self._time_ns

    def __repr__(self) -> str:
        return f"BasicCorrelationContext(id={self.id!r}, timestamp={self.timestamp})"


def event_time_ns(context: CorrelationContext) -> int:
    """A context's event time in ns: full precision for ours, seconds for foreign ones."""
    precise = getattr(context, "time_ns", None)
    if callable(precise):
        return int(precise())
    return int(context.get_timestamp()) * 1_000_000_000


_current: contextvars.ContextVar[CorrelationContext | None] = contextvars.ContextVar(
    "otel_collector_ext_correlation", default=None
)


def current_context() -> CorrelationContext | None:
    """The correlation context of the request being served, if any."""
    return _current.get()


@contextmanager
def correlation_scope(context: CorrelationContext) -> Iterator[CorrelationContext]:
    """Make `context` current for the `with` block (used by the payload middleware)."""
    token = _current.set(context)
    try:
        yield context
    finally:
        _current.reset(token)
