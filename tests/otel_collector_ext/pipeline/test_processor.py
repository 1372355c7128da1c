import threading
import time
from collections.abc import Sequence

from opentelemetry.sdk._logs import LoggerProvider, ReadableLogRecord
from opentelemetry.sdk._logs.export import LogRecordExporter, LogRecordExportResult

from otel_collector_ext.pipeline.processor import BatchingProcessor


class Recording(LogRecordExporter):
    def __init__(self, *, gate: threading.Event | None = None, fail: bool = False) -> None:
        self.bodies: list[object] = []
        self.flushes = 0
        self.exported_at_flush: list[int] = []
        self.shut = False
        self.gate = gate
        self.fail = fail
        self.entered = threading.Event()

    def export(self, batch: Sequence[ReadableLogRecord]) -> LogRecordExportResult:
        self.entered.set()
        if self.gate is not None:
            self.gate.wait(30)
        if self.fail:
            raise RuntimeError("storage on fire")
        self.bodies.extend(r.log_record.body for r in batch)
        return LogRecordExportResult.SUCCESS

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        self.flushes += 1
        self.exported_at_flush.append(len(self.bodies))
        return True

    def shutdown(self) -> None:
        self.shut = True


def _logger(processor: BatchingProcessor):
    provider = LoggerProvider(shutdown_on_exit=False)
    provider.add_log_record_processor(processor)
    return provider, provider.get_logger("t")


def test_flush_drains_queue_and_flushes_exporter() -> None:
    exporter = Recording()
    processor = BatchingProcessor(exporter, schedule_delay_millis=60_000, max_export_batch_size=7)
    provider, logger = _logger(processor)
    for i in range(100):
        logger.emit(body=i)
    assert processor.force_flush(10_000)
    assert exporter.bodies == list(range(100))
    assert exporter.flushes == 1  # the SDK's batch processor would not do this
    provider.shutdown()
    assert exporter.shut


def test_full_queue_drops_newest_and_counts() -> None:
    gate = threading.Event()
    exporter = Recording(gate=gate)
    processor = BatchingProcessor(exporter, max_queue_size=10, max_export_batch_size=1,
                                  schedule_delay_millis=1)
    provider, logger = _logger(processor)
    logger.emit(body="first")
    assert exporter.entered.wait(10)  # the worker is now blocked inside export()
    for i in range(25):
        logger.emit(body=i)
    assert processor.queue_full()
    assert processor.tally.get("records.dropped", reason="queue_full") == 15
    gate.set()
    assert not processor.force_flush(10_000)  # records offered before it were dropped
    assert exporter.bodies == ["first", *range(10)]  # oldest kept, newest dropped
    assert processor.force_flush(10_000)  # that loss was reported; nothing lost since
    provider.shutdown()


def test_exporter_exception_is_counted_not_raised() -> None:
    exporter = Recording(fail=True)
    processor = BatchingProcessor(exporter, schedule_delay_millis=1)
    provider, logger = _logger(processor)
    for i in range(5):
        logger.emit(body=i)
    assert not processor.force_flush(10_000)
    assert processor.tally.get("records.dropped", reason="export_failed") == 5
    provider.shutdown()


def test_emit_after_shutdown_is_counted() -> None:
    exporter = Recording()
    processor = BatchingProcessor(exporter)
    provider, logger = _logger(processor)
    processor.shutdown()
    processor.on_emit(object())  # type: ignore[arg-type]
    assert processor.tally.get("records.dropped", reason="shutdown") == 1
    assert processor.force_flush(1000)


def test_queue_is_bounded_in_bytes_too() -> None:
    gate = threading.Event()
    exporter = Recording(gate=gate)
    processor = BatchingProcessor(exporter, max_queue_bytes=10 * 1024 * 1024,
                                  max_export_batch_size=1, schedule_delay_millis=1)
    provider, logger = _logger(processor)
    logger.emit(body=b"first")
    assert exporter.entered.wait(10)  # the worker is blocked inside export()
    megabyte = b"x" * (1024 * 1024)
    for _ in range(50):
        logger.emit(body=megabyte)  # a burst of large HTTP bodies
    assert processor.pending == 9 and processor.pending_bytes <= 10 * 1024 * 1024
    assert processor.tally.get("records.dropped", reason="queue_full") == 41
    gate.set()
    assert not processor.force_flush(10_000)
    assert len(exporter.bodies) == 10 and processor.pending_bytes == 0
    provider.shutdown()


def test_payload_sizes() -> None:
    import numpy as np
    import pandas as pd

    from otel_collector_ext.pipeline.processor import payload_size

    assert payload_size(b"x" * 1000) >= 1000 and payload_size("é" * 10) >= 10
    assert payload_size(np.zeros(1000)) >= 8000
    assert payload_size(pd.DataFrame({"a": np.zeros(1000), "b": np.arange(1000)})) >= 16000
    assert 0 < payload_size({"a": 1}) < 1024 and 0 < payload_size(None) < 1024


class PausingAfterDrain(BatchingProcessor):
    """Stops the export thread once right after a drain: where a race used to hide."""

    def __init__(self, exporter: LogRecordExporter) -> None:
        self.drained = threading.Event()
        self.go_on = threading.Event()
        self.paused = False
        super().__init__(exporter, schedule_delay_millis=50)

    def _drain(self) -> None:
        super()._drain()
        if not self.paused and threading.current_thread() is self._thread:
            self.paused = True
            self.drained.set()
            self.go_on.wait(30)


def test_flush_right_after_a_drain_still_exports_what_came_before() -> None:
    exporter = Recording()
    processor = PausingAfterDrain(exporter)
    provider, logger = _logger(processor)
    assert processor.drained.wait(10)  # the worker has just seen an empty queue
    logger.emit(body="collected before the flush")
    results: list[bool] = []
    flusher = threading.Thread(target=lambda: results.append(processor.force_flush(10_000)))
    flusher.start()
    deadline = time.monotonic() + 10
    while not processor._requests and time.monotonic() < deadline:
        time.sleep(0.001)  # polling until the flush request is registered
    processor.go_on.set()
    flusher.join(10)
    assert results == [True]
    # When the flush reached the exporter, the record collected before it was exported.
    assert exporter.exported_at_flush[0] == 1
    provider.shutdown()


def test_nothing_is_lost_when_shutdown_races_with_emits() -> None:
    exporter = Recording()
    processor = BatchingProcessor(exporter, schedule_delay_millis=1)
    provider, logger = _logger(processor)
    stop = threading.Event()
    emitted = [0]

    def emit() -> None:
        while not stop.is_set():
            logger.emit(body=emitted[0])
            emitted[0] += 1

    worker = threading.Thread(target=emit)
    worker.start()
    deadline = time.monotonic() + 10
    while emitted[0] < 2000 and time.monotonic() < deadline:
        time.sleep(0.001)  # polling until emits are under way
    processor.shutdown()
    stop.set()
    worker.join()
    dropped = processor.tally.get("records.dropped", reason="shutdown")
    assert len(exporter.bodies) + dropped == emitted[0]  # every emit exported or counted


def test_has_room_answers_for_records_and_bytes_alike() -> None:
    gate = threading.Event()
    exporter = Recording(gate=gate)
    processor = BatchingProcessor(exporter, max_queue_size=5, max_queue_bytes=4096,
                                  max_export_batch_size=1, schedule_delay_millis=1)
    provider, logger = _logger(processor)
    logger.emit(body=b"first")
    assert exporter.entered.wait(10)  # the worker is held inside export()
    logger.emit(body=b"x" * 2000)
    assert processor.has_room(4, 1000)
    assert not processor.has_room(5, 0)  # over the record bound
    assert not processor.has_room(1, 3000)  # over the byte bound
    gate.set()
    assert processor.force_flush(10_000)
    assert processor.has_room(1, 3000)
    provider.shutdown()


def test_flush_is_false_when_the_exporter_cannot_flush() -> None:
    class Unflushable(Recording):
        def force_flush(self, timeout_millis: int = 30000) -> bool:
            super().force_flush(timeout_millis)
            return False

    exporter = Unflushable()
    processor = BatchingProcessor(exporter, schedule_delay_millis=60_000)
    provider, logger = _logger(processor)
    logger.emit(body="x")
    assert not processor.force_flush(10_000)
    assert exporter.bodies == ["x"] and processor.tally.get("export.flush_failures") == 1
    provider.shutdown()
