"""Durable acknowledgement for `serve`: a write-ahead log in front of each storage exporter.

What is promised: a request is answered OK only once its records are in a local
write-ahead log (WAL) and fsynced; whatever the process then suffers (SIGKILL,
OOM kill, a crash; also a storage outage or a full disk, which only stall it),
every acknowledged record is stored exactly once, by this process or by the next
start on the same WAL folder.

How, and why this way:

* **Log first, one fsync for many requests.** `accept` appends the request (the
  OTLP protobuf as received, with the receiver's name) to the exporter's
  `SegmentLog` and then waits for an fsync covering it. The fsync is a group
  commit: while one runs, later requests queue behind it and the next fsync
  covers all of them, so the cost per request falls as concurrency rises. The
  records also go to an in-memory queue, so in steady state the exporter works
  from memory and the log is only read after a restart. When the log (or the
  memory queue) is full, the request is refused with "retry later" (HTTP 503 /
  gRPC UNAVAILABLE): the sender keeps the data.

* **Exactly once, not at least once.** The OpenTelemetry Collector's persistent
  queue (exporterhelper + file_storage) keeps read and write indexes and re-sends
  the requests that were "being dispatched" at a crash: at least once, with
  duplicates. Here the exporter writes into a `CommittingStorage`, which holds a
  batch's appends and writes them at `commit(token)` as ONE journal record together
  with the log position the batch reaches, fsynced before anything is applied to
  the real storage. After a crash that record says exactly which log records are
  stored (everything up to its position); its appends are applied again, which is
  idempotent because every append carries the size its object must have (the Blob
  spool skips what is already uploaded, a local file's torn tail is completed);
  the log is replayed from the next position. So no window exists between "stored"
  and "checkpointed". Positions only grow (a restarted log starts a new segment),
  so a position is never reused.

* **Where it lives.** One WAL folder per exporter, named by a hash of the
  destination (account, container and prefix for Blob, the folder for local),
  under `service.wal.directory`; each process locks a slot in it, as the spool
  does, so two services can share a destination and a restarted service takes
  the slot (and the log) its predecessor left. The log is the service's concern
  and lives here; the durable log and the journal are generic byte machinery in
  `exporters.storage` (`record_log`, `journal`), which know nothing of Avro.

* **Local destinations are fsynced.** With the WAL on, a local destination writes
  with `fsync: true` unless configured otherwise, so "stored" also survives a power
  loss, not only a process crash.

Only the Avro exporters (local or Blob) are behind the WAL: an `otlp` forwarder or
`console` keeps the in-memory queue (acknowledged once queued; a SIGKILL loses
what they held).
"""

from __future__ import annotations

import collections
import hashlib
import logging
import os
import struct
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from opentelemetry.sdk._logs import ReadableLogRecord
from opentelemetry.sdk._logs.export import LogRecordExporter, LogRecordExportResult

from exporters.settings import DEFAULT_MAX_QUEUE_BYTES, WAL_DIR_ENV, default_destination
from exporters.storage import LocalStorage, Storage, StorageError, open_storage
from exporters.storage.journal import CommittingStorage
from exporters.storage.record_log import SegmentLog
from exporters.storage.spool import _try_lock
from exporters.telemetry import LimitedLog, Tally

_log = logging.getLogger(__name__)
_limited = LimitedLog(_log)

DEFAULT_WAL_MAX_BYTES = 512 * 1024 * 1024
_ENTRY = struct.Struct("<H")  # receiver name length
_MAX_SLOTS = 1024


def default_wal_dir() -> Path:
    """``$OTEL_COLLECTOR_EXT_WAL_DIR``, else ``~/.local/state/otel-collector-ext/wal``."""
    found = os.environ.get(WAL_DIR_ENV)
    if found:
        return Path(found)
    state = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local",
                                                             "state")
    return Path(state) / "otel-collector-ext" / "wal"


def encode_entry(receiver: str, request: bytes) -> bytes:
    """One log record: the receiver's name and the request's protobuf bytes."""
    name = receiver.encode()
    return _ENTRY.pack(len(name)) + name + request


def decode_entry(body: bytes) -> tuple[str, bytes]:
    (length,) = _ENTRY.unpack_from(body)
    start = _ENTRY.size
    return body[start: start + length].decode(), body[start + length:]


def _token(position: int) -> bytes:
    return position.to_bytes(8, "big")


def _position(token: bytes | None) -> int:
    return int.from_bytes(token, "big") if token else -1


def take_slot(folder: Path) -> tuple[Path, int]:
    """Lock the first free ``slot-<n>`` under `folder`: (its path, the lock's fd)."""
    folder.mkdir(parents=True, exist_ok=True)
    for n in range(_MAX_SLOTS):
        slot = folder / f"slot-{n}"
        slot.mkdir(exist_ok=True)
        fd = _try_lock(slot / "lock")
        if fd is not None:
            return slot, fd
    raise StorageError(f"no free write-ahead log slot under {folder}", transient=False)


def _identity(storage: Storage) -> str:
    inner = getattr(storage, "inner", storage)
    identity = getattr(inner, "identity", None)
    return identity() if callable(identity) else inner.describe()


class DurableQueue:
    """An exporter fed from a write-ahead log; batches are committed with their log position.

    The service calls `has_room`, then `append` (under its own lock, so positions and
    the memory queue keep one order), then `wait_durable` before answering. One thread
    exports batches and commits them; a failed commit (storage down, disk or spool
    full) is retried with backoff, holding the queue, so the log fills and requests are
    refused rather than anything acknowledged being dropped.
    """

    def __init__(self, exporter: LogRecordExporter, storage: CommittingStorage, wal: SegmentLog,
                 lock_fd: int, *, max_queue_size: int, send_batch_size: int,
                 timeout_millis: int, max_queue_bytes: int = DEFAULT_MAX_QUEUE_BYTES) -> None:
        self.exporter, self.storage, self.wal = exporter, storage, wal
        self._lock_fd = lock_fd
        self._max_records, self._max_bytes = max_queue_size, max_queue_bytes
        self._batch, self._delay = send_batch_size, timeout_millis / 1000
        self._entries: collections.deque[tuple[int, Sequence[ReadableLogRecord], int]] = \
            collections.deque()
        self._records = self._bytes = 0  # queued or being exported, not yet committed
        self._cond = threading.Condition()
        self._flushing = 0
        self._stopping = False
        self._give_up_at = float("inf")
        self.committed = _position(storage.token)
        self.replayed = 0
        self.tally = Tally("otel_collector_ext", "otel_collector_ext")
        self._thread = threading.Thread(target=self._run, name="otel-collector-ext-wal-export",
                                        daemon=True)
        self._thread.start()

    # -- request threads ---------------------------------------------------------------
    def has_room(self, records: int, nbytes: int, entry_bytes: int) -> bool:
        with self._cond:
            fits = (self._records + records <= self._max_records
                    and (self._bytes + nbytes <= self._max_bytes or not self._entries))
        return fits and self.wal.has_room(entry_bytes)

    def append(self, entry: bytes, records: Sequence[ReadableLogRecord], nbytes: int) -> int:
        """Log `entry` and queue its `records`; the position to pass to `wait_durable`."""
        position = self.wal.append(entry)
        self._put(position, records, nbytes)
        return position

    def wait_durable(self, position: int) -> None:
        self.wal.sync(position)

    def _put(self, position: int, records: Sequence[ReadableLogRecord], nbytes: int) -> None:
        with self._cond:
            self._entries.append((position, records, nbytes))
            self._records += len(records)
            self._bytes += nbytes
            if self._records >= self._batch:
                self._cond.notify_all()

    def replay(self, decode: Callable[[bytes], Sequence[ReadableLogRecord]],
               size: Callable[[Sequence[ReadableLogRecord]], int]) -> int:
        """Queue again what the log holds beyond the last commit; returns how many records."""
        for position, body in self.wal.replay(after=self.committed):
            records = decode(body)
            if not records:
                continue
            nbytes = size(records)
            with self._cond:  # replay as fast as the exporter takes it, within the bounds
                while self._entries and (self._records + len(records) > self._max_records
                                         or self._bytes + nbytes > self._max_bytes):
                    self._cond.wait(0.5)
            self._put(position, records, nbytes)
            self.replayed += len(records)
        if self.replayed:
            self.tally.add("records.replayed", self.replayed)
        return self.replayed

    @property
    def pending(self) -> int:
        """Records acknowledged and not yet committed to storage."""
        return self._records

    # -- the export thread -------------------------------------------------------------
    def _run(self) -> None:
        while True:
            with self._cond:
                if (self._records < self._batch and not self._flushing
                        and not self._stopping):
                    self._cond.wait(self._delay)
                if self._stopping:
                    return  # what is not committed stays in the log for the next start
                if not self._entries:
                    continue
                taken, count = [], 0
                for entry in self._entries:
                    if taken and count + len(entry[1]) > self._batch:
                        break
                    taken.append(entry)
                    count += len(entry[1])
            batch = [record for _, records, _ in taken for record in records]
            self._export(batch)
            committed = self._commit(taken[-1][0])
            with self._cond:
                if not committed:  # given up at shutdown: the log keeps them for the next start
                    self._entries.clear()
                    return
                for _ in taken:
                    self._entries.popleft()
                self._records -= count
                self._bytes -= sum(nbytes for _, _, nbytes in taken)
                self._cond.notify_all()

    def _export(self, batch: Sequence[ReadableLogRecord]) -> None:
        try:
            result = self.exporter.export(batch)
        except Exception:  # the exporter must never take the export thread down
            _log.exception("exporter failed on a batch of %d records", len(batch))
            result = LogRecordExportResult.FAILURE
        if result is LogRecordExportResult.SUCCESS:
            self.tally.add("records.exported", len(batch))
        else:  # the Avro exporter counts exactly which records it could not convert
            self.tally.add("export.failures")

    def _commit(self, position: int) -> bool:
        delay = 0.05
        while True:
            try:
                self.wal.sync(position)  # storage never gets ahead of the log
                self.storage.commit(_token(position))
                break
            except StorageError as e:
                self.tally.add("commit.failures")
                _limited.warning("commit", "storing a batch failed (%s); it stays in the "
                                 "write-ahead log and is retried", e)
                with self._cond:
                    if time.monotonic() >= self._give_up_at:
                        return False
                    self._cond.wait(delay)
                delay = min(delay * 2, 5.0)
        self.committed = position
        self.wal.release(position)
        return True

    # -- control -------------------------------------------------------------------------
    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Wait until everything queued is committed; False on timeout."""
        deadline = time.monotonic() + timeout_millis / 1000
        with self._cond:
            self._flushing += 1
            self._cond.notify_all()
            try:
                while self._entries:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0 or not self._thread.is_alive():
                        return False
                    self._cond.wait(remaining)
                return True
            finally:
                self._flushing -= 1

    def shutdown(self) -> None:
        """Stop after the batch in progress; what is not committed stays in the log."""
        with self._cond:
            self._stopping = True
            self._give_up_at = time.monotonic()
            self._cond.notify_all()
        self._thread.join()
        self.exporter.shutdown()
        self.wal.close()
        os.close(self._lock_fd)

    def stats(self) -> dict[str, Any]:
        out: dict[str, Any] = self.tally.snapshot()
        exporter_tally = getattr(self.exporter, "tally", None)
        if exporter_tally is not None:
            out.update({f"exporter.{k}": v for k, v in exporter_tally.snapshot().items()})
        out.update({"wal.bytes": self.wal.used_bytes, "wal.max_bytes": self.wal.max_bytes,
                    "wal.committed_position": self.committed})
        out.update(self.storage.stats())
        return out


def durable_exporter(spec: Mapping[str, Any], base: Path, max_bytes: int,
                     create: Callable[[Mapping[str, Any]], LogRecordExporter]
                     ) -> tuple[LogRecordExporter, CommittingStorage, SegmentLog, int]:
    """Build the Avro exporter `spec` describes on a `CommittingStorage`, with its WAL slot.

    Returns (exporter, storage, log, the slot's lock fd)."""
    spec = dict(spec)
    options = dict(spec.pop("storage_options", None) or {})

    inner = open_storage(spec.get("destination") or default_destination(), **options)
    opened: list[Any] = [inner]
    try:
        if isinstance(inner, LocalStorage) and "fsync" not in options:
            inner.fsync = True
        identity = _identity(inner)
        folder = base / hashlib.sha256(identity.encode()).hexdigest()[:16]
        slot, lock_fd = take_slot(folder)
        opened.append(lock_fd)
        (slot / "DESTINATION").write_text(identity, encoding="utf-8")
        storage = CommittingStorage(inner, slot / "journal")
        opened[0] = storage  # closes `inner` too
        wal = SegmentLog(slot / "log", max_bytes=max_bytes)
        opened.append(wal)
        exporter = create({**spec, "storage": storage})
    except BaseException:
        for item in reversed(opened):
            if isinstance(item, int):
                os.close(item)
            else:
                item.close()
        raise
    return exporter, storage, wal, lock_fd
