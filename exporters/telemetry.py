"""Counting what happened to records, as OpenTelemetry metrics and as a local tally.

Every drop is counted, never silent: counters go through the OTel metrics API (so
any MeterProvider the application sets up receives them) and into a local tally
that `stats()` returns for logs, tests and the CLI.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from opentelemetry import metrics


class Tally:
    """Named counters with attributes, mirrored to OTel counters of meter `scope`."""

    def __init__(self, scope: str, prefix: str) -> None:
        self._meter = metrics.get_meter(scope)
        self._prefix = prefix
        self._instruments: dict[str, Any] = {}
        self._counts: Counter[tuple[str, tuple[tuple[str, str], ...]]] = Counter()
        self._lock = threading.Lock()

    def add(self, name: str, amount: int = 1, **attributes: str) -> None:
        key = (name, tuple(sorted(attributes.items())))
        with self._lock:
            self._counts[key] += amount
            instrument = self._instrument(name)
        instrument.add(amount, attributes)

    def _instrument(self, name: str) -> Any:
        """The OTel counter of `name`, made on first use (under _lock)."""
        instrument = self._instruments.get(name)
        if instrument is None:
            instrument = self._instruments[name] = self._meter.create_counter(
                f"{self._prefix}.{name}", unit="1")
        return instrument

    def counter(self, name: str, **attributes: str) -> Callable[[int], None]:
        """`add` for one series, bound once: for hot paths (no label sorting per call)."""
        key = (name, tuple(sorted(attributes.items())))
        with self._lock:
            instrument = self._instrument(name)
        counts, lock, record = self._counts, self._lock, instrument.add

        def add(amount: int = 1) -> None:
            with lock:
                counts[key] += amount
            record(amount, attributes)

        return add

    def get(self, name: str, **attributes: str) -> int:
        """The count of `name`: the sum of its series that carry all the given attributes
        (none given: the total)."""
        wanted = set(attributes.items())
        with self._lock:
            return sum(n for (k, attrs), n in self._counts.items()
                       if k == name and wanted.issubset(attrs))

    def snapshot(self) -> dict[str, int]:
        """All series, flattened to 'name' or 'name{attr=value,...}' keys."""
        with self._lock:
            out: dict[str, int] = {}
            for (name, attrs), n in sorted(self._counts.items()):
                label = ",".join(f"{k}={v}" for k, v in attrs)
                out[f"{name}{{{label}}}" if label else name] = n
            return out


class LimitedLog:
    """Logs a warning at most once per `interval` seconds per key, with the count since.

    A storage outage or a stream of bad payloads must not flood the user's logs.
    """

    def __init__(self, logger: logging.Logger, interval: float = 60.0) -> None:
        self._logger = logger
        self._interval = interval
        self._last: dict[str, float] = {}
        self._suppressed: Counter[str] = Counter()
        self._lock = threading.Lock()

    def warning(self, key: str, message: str, *args: object) -> None:
        now = time.monotonic()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self._interval:
                self._suppressed[key] += 1
                return
            self._last[key] = now
            suppressed = self._suppressed.pop(key, 0)
        if suppressed:
            message += f" ({suppressed} similar messages suppressed)"
        self._logger.warning(message, *args)


class MergedTally:
    """The sum of several tallies, read as one (an exporter made of several exporters)."""

    def __init__(self, tallies: list[Tally]) -> None:
        self._tallies = tallies

    def counter(self, name: str, **attributes: str) -> Callable[[int], None]:
        """`add` for one series, bound once: for hot paths (no label sorting per call)."""
        key = (name, tuple(sorted(attributes.items())))
        with self._lock:
            instrument = self._instrument(name)
        counts, lock, record = self._counts, self._lock, instrument.add

        def add(amount: int = 1) -> None:
            with lock:
                counts[key] += amount
            record(amount, attributes)

        return add

    def get(self, name: str, **attributes: str) -> int:
        return sum(t.get(name, **attributes) for t in self._tallies)

    def snapshot(self) -> dict[str, int]:
        total: Counter[str] = Counter()
        for tally in self._tallies:
            total.update(tally.snapshot())
        return dict(sorted(total.items()))
