"""A batching log-record processor with a bounded queue and counted drops.

Why not the SDK's BatchLogRecordProcessor: when its queue is full it evicts the
oldest record silently, and its force_flush never flushes the exporter, so a
buffering exporter (a spool, a file writer) would keep data after `flush()`.
This one drops the newest record and counts it, and `force_flush` returns only
when everything queued before the call is exported AND the exporter has flushed.

Exact flushes: every record offered to the queue gets a sequence number, queued or
dropped. `force_flush` waits for a watermark (the last number given out when it was
called), not for an empty queue, so it returns under sustained load; batches are cut
at pending watermarks, so whether a batch lost records decides exactly which flushes
report False. A loss is reported to every flush whose window holds it: the records
numbered after the watermark of the last flush that had returned when it was called.
"""

from __future__ import annotations

import collections
import logging
import threading
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
from opentelemetry.sdk._logs import LogRecordProcessor, ReadableLogRecord, ReadWriteLogRecord
from opentelemetry.sdk._logs.export import LogRecordExporter, LogRecordExportResult

from exporters.contract import collection_of
from exporters.settings import DEFAULT_MAX_QUEUE_BYTES
from exporters.telemetry import Tally

_log = logging.getLogger(__name__)

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


def _labels(collection: str | None) -> dict[str, str]:
    return {"collection": collection} if collection else {}


class _FlushRequest:
    """One force_flush call: records numbered (since, upto] are its window."""

    __slots__ = ("done", "lost", "since", "upto")

    def __init__(self, since: int, upto: int, lost: bool) -> None:
        self.since = since
        self.upto = upto
        self.lost = lost
        self.done = threading.Event()


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
        self._queue: collections.deque[tuple[ReadableLogRecord, int, int]] = collections.deque()
        self._wake = threading.Event()
        # Under self._lock: sequence numbers (see the module's docstring).
        self._seq = 0  # the last number given to a record, queued or dropped
        self._done_upto = 0  # every record numbered up to here is exported or dropped
        self._reported = 0  # the highest watermark of a flush that has returned
        self._last_loss = 0  # the highest number of a record lost (dropped) so far
        self._exporting = 0  # records of the batch inside export() right now
        self._requests: list[_FlushRequest] = []
        # records.collected per collection, bound once (on_emit runs in every collect())
        self._collected: dict[str | None, Callable[[int], None]] = {}
        self._stopping = False
        self._thread = threading.Thread(
            target=self._run, name="otel-collector-ext-export", daemon=True
        )
        self._thread.start()

    # -- emitting thread (the user's scoring code): keep it tiny -------------------
    def on_emit(self, log_record: ReadWriteLogRecord) -> None:
        queue = self._queue
        labels = _labels(collection_of(log_record))
        if self._stopping:
            self.tally.add("records.dropped", reason="shutdown", **labels)
            return
        size = payload_size(log_record.log_record.body)
        # One short lock: the stopping check, both bounds and the append are one step, so
        # nothing slips in after shutdown's last drain and the byte count stays exact.
        with self._lock:
            if self._stopping:
                reason = "shutdown"
            elif len(queue) >= self._max_queue or (self._bytes + size > self._max_bytes and queue):
                reason = "queue_full"
                self._seq += 1
                self._lose(self._seq)
            else:
                reason = None
                self._bytes += size
                self._seq += 1
                queue.append((log_record, size, self._seq))
        if reason is not None:
            self.tally.add("records.dropped", reason=reason, **labels)
            return
        counted = self._collected.get(labels.get("collection"))
        if counted is None:
            counted = self._collected.setdefault(
                labels.get("collection"), self.tally.counter("records.collected", **labels))
        counted(1)  # only what was queued
        if len(queue) >= self._batch_size:
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
        """This queue's counters, the exporter's own (if it keeps a tally) as `exporter.*`, and
        `records.in_flight`: queued or inside export() now. Once nothing is in flight,
        records.collected = exporter records.written + records.dropped (by reason, here and
        in the exporter) + exporter records.skipped."""
        out = self.tally.snapshot()
        with self._lock:
            out["records.in_flight"] = len(self._queue) + self._exporting
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
            self._drain()
            if self._stopping and not self._queue:
                return

    def _drain(self) -> None:
        """Export batches until the queue is empty, releasing each flush request as soon as
        everything up to its watermark is exported (not when the queue is empty)."""
        queue = self._queue
        while True:
            with self._lock:
                entries = self._take_batch()
                if entries:
                    # Records numbered below the next queued one are exported after this
                    # batch, or were dropped when offered.
                    upto = queue[0][2] - 1 if queue else self._seq
                    self._exporting = len(entries)
                else:
                    self._done_upto = self._seq
            if entries:
                lost = not self._export([record for record, _, _ in entries])
                with self._lock:
                    if lost:
                        self._lose(entries[-1][2])
                    self._done_upto = upto
                    self._exporting = 0
            with self._lock:
                ready = [r for r in self._requests if r.upto <= self._done_upto]
            if ready:
                self._release(ready)
            elif not entries:
                return

    def _take_batch(self) -> list[tuple[ReadableLogRecord, int, int]]:
        """Up to a batch from the queue, never past a pending flush's watermark (under _lock)."""
        queue = self._queue
        if not queue:
            return []
        first = queue[0][2]
        cut = min((r.upto for r in self._requests if r.upto >= first), default=None)
        entries = []
        while queue and len(entries) < self._batch_size and (cut is None or queue[0][2] <= cut):
            entries.append(queue.popleft())
        self._bytes -= sum(size for _, size, _ in entries)
        return entries

    def _lose(self, seq: int) -> None:
        """Record number `seq` (or one of its batch) was lost: tell the flushes whose window
        holds it, and the ones to come (under _lock)."""
        self._last_loss = max(self._last_loss, seq)
        for request in self._requests:
            if request.since < seq <= request.upto:
                request.lost = True

    def _release(self, ready: list[_FlushRequest]) -> None:
        flushed = self._flush_exporter()
        with self._lock:
            for request in ready:
                if request in self._requests:  # not given up on (timed out) meanwhile
                    self._requests.remove(request)
                    request.lost |= not flushed
                    self._reported = max(self._reported, request.upto)
                request.done.set()

    def _export(self, batch: Sequence[ReadableLogRecord]) -> bool:
        """Hand `batch` to the exporter; False if any of its records was lost."""
        try:
            result = self._exporter.export(batch)
        except Exception:  # the exporter must never take the export thread down
            _log.exception("exporter %s failed on a batch of %d records",
                           type(self._exporter).__name__, len(batch))
            result = LogRecordExportResult.FAILURE
        if result is LogRecordExportResult.SUCCESS:
            self.tally.add("records.exported", len(batch))
            return True
        if getattr(self._exporter, "counts_own_drops", False):
            # The exporter has counted exactly which records it lost; the rest were written.
            self.tally.add("export.failures")
            return False
        for collection, n in collections.Counter(map(collection_of, batch)).items():
            self.tally.add("records.dropped", n, reason="export_failed", **_labels(collection))
        return False

    def _flush_exporter(self) -> bool:
        try:
            flushed = self._exporter.force_flush()
        except Exception:
            _log.exception("exporter %s failed to flush", type(self._exporter).__name__)
            flushed = False
        if flushed is False:
            self.tally.add("export.flush_failures")
            return False
        return True

    # -- control -------------------------------------------------------------------
    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Export everything queued before this call and flush the exporter.

        True only if none of the records offered before the call (and after the watermark
        of the last flush that had returned) was dropped, queue_full included; False on a
        loss (stats() counts it, by reason) or on timeout."""
        with self._lock:
            request = _FlushRequest(self._reported, self._seq, self._last_loss > self._reported)
            if not self._thread.is_alive():
                # Shut down: everything queued was drained by shutdown().
                self._reported = max(self._reported, request.upto)
                return not self._queue and not request.lost
            self._requests.append(request)
        self._wake.set()
        if not request.done.wait(timeout_millis / 1000):
            with self._lock:
                if request in self._requests:
                    self._requests.remove(request)
                    return False
        return not request.lost

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
