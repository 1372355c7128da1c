"""A batching log-record processor with a bounded queue and counted drops.

Why not the SDK's BatchLogRecordProcessor: when its queue is full it evicts the
oldest record silently, and its force_flush never flushes the exporter, so a
buffering exporter (a spool, a file writer) would keep data after `flush()`.
This one drops the newest record and counts it, and `force_flush` returns only
when the queue is drained AND the exporter has flushed.
"""

from __future__ import annotations

import collections
import logging
import threading
from collections.abc import Sequence

import numpy as np
import pandas as pd
from opentelemetry.sdk._logs import LogRecordProcessor, ReadableLogRecord, ReadWriteLogRecord
from opentelemetry.sdk._logs.export import LogRecordExporter, LogRecordExportResult

from exporters.telemetry import Tally

_log = logging.getLogger(__name__)

DEFAULT_MAX_QUEUE_BYTES = 256 * 1024 * 1024
_SMALL = 256  # what a record without a sizable body is counted as


def payload_size(body: object) -> int:
    """About how many bytes a record's body holds, cheaply (this runs in collect()).

    Exact for bytes and text (in characters) and numpy arrays, 16 bytes a cell for
    frames (long strings in cells are undercounted), a small constant otherwise.
    It bounds the queue's memory, so a burst of large HTTP bodies cannot exhaust it.
    """
    if isinstance(body, (bytes, str)):
        return len(body) + _SMALL
    if isinstance(body, pd.DataFrame):  # 16 bytes a cell: exact sizes would cost µs
        rows, columns = body.shape
        return rows * columns * 16 + _SMALL
    if isinstance(body, np.ndarray):
        return body.nbytes + _SMALL
    return _SMALL


class BatchingProcessor(LogRecordProcessor):
    """Queues records from the emitting thread; one background thread exports them in batches."""

    def __init__(
        self,
        exporter: LogRecordExporter,
        *,
        max_queue_size: int = 8192,
        max_queue_bytes: int = DEFAULT_MAX_QUEUE_BYTES,
        max_export_batch_size: int = 1024,
        schedule_delay_millis: int = 500,
        tally: Tally | None = None,
    ) -> None:
        self._exporter = exporter
        self._max_queue = max_queue_size
        self._max_bytes = max_queue_bytes
        self._bytes = 0  # approximate payload bytes queued (see payload_size)
        self._lock = threading.Lock()
        self._batch_size = max_export_batch_size
        self._delay = schedule_delay_millis / 1000
        self.tally = tally or Tally("otel_collector_ext", "otel_collector_ext")
        self._queue: collections.deque[tuple[ReadableLogRecord, int]] = collections.deque()
        self._wake = threading.Event()
        self._flush_lock = threading.Lock()
        self._flush_waiters: list[threading.Event] = []
        self._stopping = False
        self._thread = threading.Thread(
            target=self._run, name="otel-collector-ext-export", daemon=True
        )
        self._thread.start()

    # -- emitting thread (the user's scoring code): keep it tiny -------------------
    def on_emit(self, log_record: ReadWriteLogRecord) -> None:
        queue = self._queue
        if self._stopping:
            self.tally.add("records.dropped", reason="shutdown")
            return
        size = payload_size(log_record.log_record.body)
        # One short lock: the stopping check, both bounds and the append are one step, so
        # nothing slips in after shutdown's last drain and the byte count stays exact.
        with self._lock:
            if self._stopping:
                reason = "shutdown"
            elif len(queue) >= self._max_queue or (self._bytes + size > self._max_bytes and queue):
                reason = "queue_full"
            else:
                reason = None
                self._bytes += size
                queue.append((log_record, size))
        if reason is not None:
            self.tally.add("records.dropped", reason=reason)
        elif len(queue) >= self._batch_size:
            self._wake.set()

    @property
    def pending(self) -> int:
        """Records queued and not yet handed to the exporter."""
        return len(self._queue)

    @property
    def pending_bytes(self) -> int:
        """Approximate payload bytes queued."""
        return self._bytes

    def stats(self) -> dict[str, int]:
        """This queue's counters, and the exporter's own (if it keeps a tally) as `exporter.*`."""
        out = self.tally.snapshot()
        exporter_tally = getattr(self._exporter, "tally", None)
        if exporter_tally is not None:
            out.update({f"exporter.{k}": v for k, v in exporter_tally.snapshot().items()})
        return out

    def has_room(self, records: int, nbytes: int) -> bool:
        """Whether `records` more records of `nbytes` payload bytes would be queued, not
        dropped (a receiver asks before acknowledging, so it never drops what it accepted)."""
        with self._lock:
            return (len(self._queue) + records <= self._max_queue
                    and (self._bytes + nbytes <= self._max_bytes or not self._queue))

    def queue_full(self) -> bool:
        return len(self._queue) >= self._max_queue or self._bytes >= self._max_bytes

    # -- background thread ---------------------------------------------------------
    def _run(self) -> None:
        while True:
            self._wake.wait(self._delay)
            self._wake.clear()
            # Take the flush requests before draining: everything queued before a request
            # is then in this drain (taking them after would release a request made after
            # the drain saw an empty queue, with its records still queued).
            with self._flush_lock:
                waiters, self._flush_waiters = self._flush_waiters, []
            self._drain()
            if waiters:
                self._flush_exporter()
                for event in waiters:
                    event.set()
            if self._stopping and not self._queue:
                return

    def _drain(self) -> None:
        queue = self._queue
        while queue:
            with self._lock:
                entries = [queue.popleft() for _ in range(min(self._batch_size, len(queue)))]
                self._bytes -= sum(size for _, size in entries)
            self._export([record for record, _ in entries])

    def _export(self, batch: Sequence[ReadableLogRecord]) -> None:
        try:
            result = self._exporter.export(batch)
        except Exception:  # the exporter must never take the export thread down
            _log.exception("exporter %s failed on a batch of %d records",
                           type(self._exporter).__name__, len(batch))
            result = LogRecordExportResult.FAILURE
        if result is LogRecordExportResult.SUCCESS:
            self.tally.add("records.exported", len(batch))
        elif getattr(self._exporter, "counts_own_drops", False):
            # The exporter has counted exactly which records it lost; the rest were written.
            self.tally.add("export.failures")
        else:
            self.tally.add("records.dropped", len(batch), reason="export_failed")

    def _flush_exporter(self) -> None:
        try:
            self._exporter.force_flush()
        except Exception:
            _log.exception("exporter %s failed to flush", type(self._exporter).__name__)

    # -- control -------------------------------------------------------------------
    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Export everything queued before this call and flush the exporter; False on timeout."""
        if not self._thread.is_alive():
            return not self._queue
        done = threading.Event()
        with self._flush_lock:
            self._flush_waiters.append(done)
        self._wake.set()
        return done.wait(timeout_millis / 1000)

    def shutdown(self) -> None:
        with self._lock:
            if self._stopping:
                return
            self._stopping = True
        self._wake.set()
        self._thread.join()
        self._drain()  # whatever was appended while the worker was finishing
        self._flush_exporter()
        self._exporter.shutdown()
