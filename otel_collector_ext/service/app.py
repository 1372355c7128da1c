"""`serve`: the collector service. OTLP receivers → processors → queued exporters.

The scoring side keeps only the cheap part (collect, batch, OTLP export); this
process decodes, converts and stores, with the same exporters as the in-process
path. A request is acknowledged only once its records are durable: for the Avro
exporters, fsynced in a write-ahead log that a restart replays exactly once
(`service_wal`); for the others, in their queues. A full log or queue answers
"retry later" (gRPC UNAVAILABLE, HTTP 503) instead of dropping. On SIGTERM the
service stops accepting, finishes requests in progress, drains the queues,
flushes storage, then exits. The whole shutdown is bounded: past
`shutdown_timeout` + STOP_MARGIN_SECONDS the process exits 1 anyway, logging what
was not stored (the write-ahead log keeps it for the next start).
"""

from __future__ import annotations

import gc
import logging
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any, cast

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.sdk._logs import ReadableLogRecord

from exporters import contract as A
from exporters.registry import create_exporter
from exporters.storage import StorageError
from exporters.telemetry import LimitedLog

from ..genai.events import map_gen_ai_events
from ..pipeline.processor import BatchingProcessor, payload_size
from .config import (
    ServiceConfig,
    ServiceConfigError,
    WalSettings,
    batch_settings,
    load_service_config,
    parse_service_config,
)
from .processors import RecordProcessor, build_processor
from .receiver.admission import Admission
from .receiver.core import BearerAuth, Busy, Receiver, Rejected
from .receiver.decode import decode_request
from .receiver.grpc_server import GrpcReceiverServer
from .receiver.http_server import HttpReceiverServer
from .wal import DurableQueue, decode_entry, default_wal_dir, durable_exporter, encode_entry

_log = logging.getLogger("otel_collector_ext.service")
_limited = LimitedLog(_log)

RETRY_AFTER_SECONDS = 1.0
RECEIVER_GRACE_SECONDS = 5.0
STOP_MARGIN_SECONDS = 5.0  # past shutdown_timeout, serve exits whatever it is doing


def _durable(spec: Mapping[str, Any], wal: WalSettings) -> bool:
    return wal.enabled and spec.get("type", "avro") == "avro"


class _Exporter:
    """One configured exporter behind its bounded queue (write-ahead logged for storage)."""

    def __init__(self, name: str, spec: Mapping[str, Any], *, max_queue_size: int,
                 send_batch_size: int, timeout_millis: int, wal: WalSettings) -> None:
        self.name = name
        self.max_queue = max_queue_size
        key = f"exporters.{name}"

        def create(spec: Mapping[str, Any]) -> Any:
            try:
                return create_exporter(spec, key=key)
            except ValueError as e:
                raise ServiceConfigError(str(e)) from None

        self.durable: DurableQueue | None = None
        if _durable(spec, wal):
            base = Path(wal.directory).expanduser() if wal.directory else default_wal_dir()
            try:
                self.exporter, storage, log, lock_fd = durable_exporter(
                    spec, base, wal.max_bytes, create)
            except (ValueError, OSError) as e:
                raise ServiceConfigError(f"{key}: {e}") from None
            self.queue: BatchingProcessor | DurableQueue = DurableQueue(
                self.exporter, storage, log, lock_fd, max_queue_size=max_queue_size,
                send_batch_size=send_batch_size, timeout_millis=timeout_millis)
            self.durable = self.queue
        else:
            self.exporter = create(spec)
            self.queue = BatchingProcessor(self.exporter, max_queue_size=max_queue_size,
                                           max_export_batch_size=send_batch_size,
                                           schedule_delay_millis=timeout_millis)
        # Exporters that store only some records (Avro: inference records) say which.
        self.stores: Callable[[ReadableLogRecord], bool] = getattr(
            self.exporter, "stores", lambda record: True)

    def stats(self) -> dict[str, Any]:
        out: dict[str, Any] = {"queued": self.queue.pending, "queue_size": self.max_queue}
        out.update(self.queue.stats())
        return out


class _Pipeline:
    def __init__(self, name: str, processors: Sequence[RecordProcessor],
                 exporters: Sequence[_Exporter]) -> None:
        self.name = name
        self.processors = processors
        self.exporters = exporters

    def process(self, records: Sequence[ReadableLogRecord]) -> Sequence[ReadableLogRecord]:
        # Upstream GenAI events become gen_ai rows first, so the processors (sampling,
        # redaction, filters) and the exporters see them as inference records.
        records = map_gen_ai_events(records)
        for processor in self.processors:
            if not records:
                break
            records = processor.process(records)
        return records


class _Route:
    """The sink of one receiver: every pipeline that lists it."""

    def __init__(self, service: Service, receiver: str) -> None:
        self.service, self.receiver = service, receiver

    def accept(self, records: Sequence[ReadableLogRecord],
               request: ExportLogsServiceRequest | None = None) -> Rejected | None:
        return self.service.accept(self.receiver, records, request)


class Service:
    """The running collector service; `start()`, then `stop()` (graceful)."""

    def __init__(self, config: ServiceConfig) -> None:
        self.config = config
        self._lock = threading.Lock()
        self._closed = False
        self.stopping = False
        self.started_at: float | None = None
        settings = batch_settings(config)
        self.exporters: dict[str, _Exporter] = {}
        try:
            for name, batch in settings.items():
                self.exporters[name] = _Exporter(
                    name, config.exporters[name], max_queue_size=batch.max_queue_size,
                    send_batch_size=batch.send_batch_size, timeout_millis=batch.timeout_millis,
                    wal=config.wal)
        except Exception:
            self._close_exporters()
            raise
        self.pipelines: dict[str, list[_Pipeline]] = {}
        for pipeline in config.pipelines.values():
            built = _Pipeline(
                pipeline.name,
                [p for p in (build_processor(config.processors[n]) for n in pipeline.processors)
                 if p is not None],
                [self.exporters[n] for n in pipeline.exporters],
            )
            for receiver in pipeline.receivers:
                self.pipelines.setdefault(receiver, []).append(built)
        self.receivers: dict[str, Receiver] = {}
        self.admissions: dict[str, Admission] = {}  # per receiver, shared by its protocols
        for name in self.pipelines:
            rc = config.receivers[name]
            auth = BearerAuth(rc.bearer_token) if rc.bearer_token else None
            self.receivers[name] = Receiver(_Route(self, name), limits=rc.limits, auth=auth,
                                            name=name)
            self.admissions[name] = Admission(rc.max_concurrent_requests)
        self._servers: list[tuple[str, Any]] = []
        self.addresses: dict[str, tuple[str, int]] = {}

    # -- lifecycle -------------------------------------------------------------------
    def start(self) -> None:
        """Replay the write-ahead logs, then bind and serve every receiver (and the health
        check); OSError if a port is taken."""
        _check_ports_free(self._endpoints())
        try:
            self._replay()
            for name, receiver in self.receivers.items():
                rc = self.config.receivers[name]
                if rc.grpc is not None:
                    grpc_server = GrpcReceiverServer(
                        receiver, rc.grpc.endpoint.host, rc.grpc.endpoint.port, tls=rc.grpc.tls,
                        max_workers=rc.grpc.max_workers, admission=self.admissions[name])
                    self._add(f"{name}/grpc", grpc_server)
                if rc.http is not None:
                    http_server = HttpReceiverServer(
                        receiver, rc.http.endpoint.host, rc.http.endpoint.port, tls=rc.http.tls,
                        health=self.health, max_connections=rc.http.max_connections,
                        idle_timeout=rc.http.idle_timeout, admission=self.admissions[name])
                    self._add(f"{name}/http", http_server)
            if self.config.health_check is not None:
                ep = self.config.health_check
                self._add("health_check", HttpReceiverServer(None, ep.host, ep.port,
                                                             health=self.health))
        except Exception:
            self.stop()
            raise
        self.started_at = time.monotonic()
        for label, (host, port) in self.addresses.items():
            _log.info("%s listening on %s:%d", label, host, port)
        for name, slot in self.exporters.items():
            storage = getattr(slot.exporter, "storage", None)
            _log.info("exporter %s writes to %s", name,
                      storage.describe() if storage is not None else repr(slot.exporter))

    def _endpoints(self) -> list[tuple[str, str, int]]:
        """(label, host, port) of every socket start() will bind."""
        out = []
        for name in self.receivers:
            rc = self.config.receivers[name]
            for protocol, spec in (("grpc", rc.grpc), ("http", rc.http)):
                if spec is not None:
                    out.append((f"{name}/{protocol}", spec.endpoint.host, spec.endpoint.port))
        if self.config.health_check is not None:
            hc = self.config.health_check
            out.append(("health_check", hc.host, hc.port))
        return out

    def _replay(self) -> None:
        """Queue again what a previous process acknowledged and did not store."""
        for slot in self.exporters.values():
            if slot.durable is None:
                continue
            count = slot.durable.replay(partial(self._replayed, slot=slot),
                                        _payload_bytes)
            if count:
                _log.info("exporter %s: replaying %d acknowledged records from the "
                          "write-ahead log", slot.name, count)

    def _replayed(self, body: bytes, slot: _Exporter) -> list[ReadableLogRecord]:
        receiver_name, data = decode_entry(body)
        receiver = self.receivers.get(receiver_name)
        if receiver is None:
            _log.error("write-ahead log entry of unknown receiver %r skipped", receiver_name)
            return []
        request = ExportLogsServiceRequest.FromString(data)
        decoded = decode_request(request, max_depth=receiver.limits.max_depth,
                                 max_records=receiver.limits.max_records)
        out: list[ReadableLogRecord] = []
        for pipeline in self.pipelines.get(receiver_name, ()):
            if slot in pipeline.exporters:
                out.extend(r for r in pipeline.process(decoded.records) if slot.stores(r))
        return out

    def _add(self, label: str, server: Any) -> None:
        server.start()
        self._servers.append((label, server))
        self.addresses[label] = server.address

    def stop(self, timeout: float | None = None) -> None:
        """Stop accepting, finish requests in progress, drain the queues, flush storage."""
        if self._closed:
            return
        self.stopping = True
        deadline = time.monotonic() + (timeout if timeout is not None
                                       else self.config.shutdown_timeout)
        grace = max(0.1, min(RECEIVER_GRACE_SECONDS, deadline - time.monotonic()))
        receivers = [(label, s) for label, s in self._servers if label != "health_check"]
        stoppers = [threading.Thread(target=s.stop, args=(grace,)) for _, s in receivers]
        for thread in stoppers:
            thread.start()
        for thread in stoppers:
            thread.join()
        for admission in self.admissions.values():
            admission.shutdown()
        with self._lock:  # from here on, accept() refuses: nothing is acknowledged and lost
            self._closed = True
        self._close_exporters(deadline)
        for label, server in self._servers:
            if label == "health_check":
                server.stop(1.0)
        _log.info("stopped")

    def _close_exporters(self, deadline: float | None = None) -> None:
        for slot in self.exporters.values():
            remaining = 30.0 if deadline is None else max(0.1, deadline - time.monotonic())
            if not slot.queue.force_flush(int(remaining * 1000)):
                # False means a timeout or a loss (flush() is exact): say which it was.
                left = slot.queue.stats().get("records.in_flight", 0)
                if left:
                    _log.warning("exporter %s did not drain in time: %d record(s) not yet "
                                 "stored", slot.name, left)
                else:
                    _log.warning("exporter %s drained, but dropped some of what it was "
                                 "given (its counters say why)", slot.name)
            slot.queue.shutdown()

    # -- data path -------------------------------------------------------------------
    def _route(self, receiver: str, records: Sequence[ReadableLogRecord],
               ) -> tuple[dict[_Exporter, list[ReadableLogRecord]], int | None]:
        """What each exporter of `receiver`'s pipelines stores of `records`, and how many
        records none of them stores (None: `receiver` has no pipeline)."""
        kept_for: dict[_Exporter, list[ReadableLogRecord]] = {}
        unstored: int | None = None
        for pipeline in self.pipelines.get(receiver, ()):
            kept = pipeline.process(records)
            stored = [False] * len(kept)
            for slot in pipeline.exporters:
                flags = [slot.stores(r) for r in kept]
                kept_for.setdefault(slot, []).extend(
                    r for r, f in zip(kept, flags, strict=True) if f)
                stored = [a or b for a, b in zip(stored, flags, strict=True)]
            # Another pipeline may store what this one does not: the fewest lost counts.
            lost = stored.count(False)
            unstored = lost if unstored is None else min(unstored, lost)
        return kept_for, unstored

    def accept(self, receiver: str, records: Sequence[ReadableLogRecord],
               request: ExportLogsServiceRequest | None = None) -> Rejected | None:
        """Queue `records` on every pipeline of `receiver`, all or nothing; Busy when full.

        Returns once they are durable: fsynced in the write-ahead log of each Avro
        exporter (group commit; `request` is what the log keeps), queued for the others.
        Records that no exporter would store (ordinary logs where only Avro exporters
        keep inference records) are not queued but returned as rejected, so the client
        hears of them (OTLP partial success) instead of a full success."""
        kept_for, unstored = self._route(receiver, records)
        entry = b""
        if any(slot.durable is not None and kept for slot, kept in kept_for.items()):
            if request is None:
                raise ValueError("a write-ahead logged exporter needs the request")
            entry = encode_entry(receiver, request.SerializeToString())
        sizes = {slot: _payload_bytes(kept) for slot, kept in kept_for.items()}
        logged: list[tuple[DurableQueue, int]] = []
        with self._lock:
            if self._closed:
                raise Busy(RETRY_AFTER_SECONDS, stopping=True)
            for slot, kept in kept_for.items():
                queue = slot.queue
                room = (queue.has_room(len(kept), sizes[slot], len(entry))
                        if isinstance(queue, DurableQueue) else
                        queue.has_room(len(kept), sizes[slot]))
                if not room:
                    raise Busy(RETRY_AFTER_SECONDS)
            for slot, kept in kept_for.items():
                if not kept:
                    continue
                if slot.durable is not None:
                    try:
                        logged.append((slot.durable, slot.durable.append(entry, kept, sizes[slot])))
                    except StorageError as e:
                        _log.error("exporter %s: cannot write the write-ahead log: %s",
                                   slot.name, e)
                        raise Busy(RETRY_AFTER_SECONDS) from None
                    continue
                emit = cast(BatchingProcessor, slot.queue).on_emit  # not durable: in memory
                for record in kept:
                    emit(record)
        for durable, position in logged:  # outside the lock: concurrent requests share fsyncs
            try:
                durable.wait_durable(position)
            except StorageError as e:
                _log.error("cannot sync the write-ahead log: %s", e)
                raise Busy(RETRY_AFTER_SECONDS) from None
        if not unstored:
            return None
        _limited.warning("not_inference", "%s: rejected %d log record(s) without the %s "
                         "attribute: no exporter of the pipeline stores ordinary logs (set "
                         "other_logs_collection on an avro exporter to keep them)",
                         receiver, unstored, A.COLLECTION)
        return Rejected(unstored, "not_inference",
                        f"{unstored} log record(s) have no {A.COLLECTION} attribute and are "
                        "not stored: this collector keeps inference records only")

    # -- health ----------------------------------------------------------------------
    def health(self) -> tuple[bool, dict[str, Any]]:
        """(healthy, details): counters only, never configuration or secrets."""
        healthy = self.started_at is not None and not self.stopping
        detail: dict[str, Any] = {
            "status": "ok" if healthy else ("stopping" if self.stopping else "starting"),
            "uptime_seconds": round(time.monotonic() - self.started_at, 1)
            if self.started_at is not None else 0,
            "receivers": {n: r.counters.snapshot() for n, r in self.receivers.items()},
            "exporters": {n: e.stats() for n, e in self.exporters.items()},
        }
        return healthy, detail


class PortInUse(OSError):
    """A configured endpoint cannot be bound (taken, or not an address of this host)."""


def _check_ports_free(endpoints: Sequence[tuple[str, str, int]]) -> None:
    """PortInUse naming the endpoint, before any server starts: gRPC would otherwise print
    its own core error line and raise a bare RuntimeError."""
    for label, host, port in endpoints:
        if port == 0:
            continue
        try:
            family, kind, proto, _, address = socket.getaddrinfo(
                host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
            with socket.socket(family, kind, proto) as probe:
                # As the servers do, so a port in TIME_WAIT is not taken for a busy one.
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                probe.bind(address)
        except OSError as e:
            reason = e.strerror or str(e)
            raise PortInUse(f"cannot listen on {host}:{port} ({label}): {reason.lower()}; "
                            "is another serve (or another program) using it?") from None


def _payload_bytes(records: Sequence[ReadableLogRecord]) -> int:
    return sum(payload_size(r.log_record.body) for r in records)


def run_service(config: Mapping[str, Any] | ServiceConfig) -> Service:
    """Build and start a service from a configuration mapping (as the YAML file holds)."""
    parsed = config if isinstance(config, ServiceConfig) else parse_service_config(config)
    service = Service(parsed)
    service.start()
    return service


def serve(config_path: str) -> None:
    """Run the service from a YAML file until SIGTERM or SIGINT, then shut down gracefully."""
    try:
        config = load_service_config(config_path)
    except ServiceConfigError as e:
        print(f"otel-collector-ext serve: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    _configure_logging(config.log_level)
    stop = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        _log.info("received %s: shutting down", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        service = run_service(config)
    except ServiceConfigError as e:
        print(f"otel-collector-ext serve: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    except PortInUse as e:
        print(f"otel-collector-ext serve: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    except OSError as e:
        print(f"otel-collector-ext serve: cannot listen: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    # Long-lived objects (modules, config) out of the collector's way: the queues churn
    # through many short-lived frames, and full collections scanning them cost throughput.
    gc.freeze()
    _log.info("ready")
    while not stop.wait(1.0):
        pass
    _stop_within(service, config.shutdown_timeout + STOP_MARGIN_SECONDS)


def _stop_within(service: Service, limit: float) -> None:
    """Stop gracefully, but exit after `limit` seconds whatever is still under way.

    A request still being decoded, or an export that outlasts the drain, must not keep
    the process alive (the orchestrator would kill it later, less cleanly): after the
    graceful stop, or at the limit, threads still working are abandoned.
    """
    stopper = threading.Thread(target=service.stop, name="otel-collector-ext-stop", daemon=True)
    stopper.start()
    stopper.join(limit)
    if stopper.is_alive():
        pending = sum(e.queue.pending for e in service.exporters.values())
        _log.error("shutdown did not finish within %.0f s; exiting with %d queued record(s) "
                   "not stored", limit, pending)
        _exit(1)
    # Stored and closed: threads still at work (a decoding thread finishing an abandoned
    # request, a library's pool) would only delay the exit at interpreter shutdown.
    _exit(0)


def _exit(code: int) -> None:
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _configure_logging(level: str) -> None:
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(stream=sys.stderr,
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    numeric = {"warn": logging.WARNING}.get(level, getattr(logging, level.upper(), logging.INFO))
    for name in ("otel_collector_ext", "exporters"):
        logging.getLogger(name).setLevel(numeric)
