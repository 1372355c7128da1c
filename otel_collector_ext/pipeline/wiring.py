"""The in-process pipeline built from a Config: logger → sampler → batching → exporter.

One pipeline per process, created on first use (or by `configure()`), shut down at
interpreter exit so a normal exit loses nothing.
"""

from __future__ import annotations

import atexit
import dataclasses
import gc
import logging
import os
import signal
import threading
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any, cast

from opentelemetry.sdk._logs import (
    Logger,
    LoggerProvider,
    LogRecordLimits,
    LogRecordProcessor,
    ReadWriteLogRecord,
)
from opentelemetry.sdk._logs.export import LogRecordExporter
from opentelemetry.sdk.resources import Resource

from exporters import contract as A
from exporters.registry import create_exporter
from exporters.routing import route_to_destinations
from exporters.settings import GC_FREEZE_ENV

from .config import Config, ConfigError, load_config
from .emit import RecordEmitter
from .processor import BatchingProcessor
from .sampling import Sampler

_log = logging.getLogger("otel_collector_ext")
SIGTERM_DRAIN_SECONDS = 20.0  # within Kubernetes' default 30 s grace period


class Pipeline:
    """Everything a Collector needs to emit: the OTel logger, the sampler, the config."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.sampler = Sampler(config.sampling_rate, config.sampling_rates())
        try:
            self.exporter = build_exporter(config)
        except ValueError as e:
            raise ConfigError(f"{config.source}: {e}") from None
        except OSError as e:  # a destination folder that cannot be created, say
            raise ConfigError(f"{config.source}: exporter: {e}") from None
        self.processor = BatchingProcessor(
            self.exporter,
            max_queue_size=config.batch.max_queue_size,
            max_queue_bytes=config.batch.max_queue_bytes,
            max_export_batch_size=config.batch.max_export_batch_size,
            schedule_delay_millis=config.batch.schedule_delay_millis,
        )
        self.tally = self.processor.tally
        resource = Resource.create(
            {"service.name": f"{config.endpoint}.{config.deployment}",
             A.INSTANCE_ID: config.instance_id}
        )
        limits = LogRecordLimits()  # from the OTEL_*ATTRIBUTE* environment, as the SDK's own
        self.provider = LoggerProvider(resource=resource, shutdown_on_exit=False,
                                       log_record_limits=limits)
        self.provider.add_log_record_processor(_EventRouting(self.processor))
        # The SDK provider returns its own Logger (resource, scope), typed as the API's.
        self.logger = cast(Logger, self.provider.get_logger("otel_collector_ext"))
        self.emit = RecordEmitter(self.logger, limits).emit
        self.base_attributes: dict[str, Any] = {
            A.ENDPOINT: config.endpoint,
            A.DEPLOYMENT: config.deployment,
        }
        if config.model_version is not None:
            self.base_attributes[A.MODEL_VERSION] = config.model_version
        self.closed = False

    def flush(self, timeout_millis: int = 30000) -> bool:
        return self.processor.force_flush(timeout_millis)

    def shutdown(self) -> None:
        if not self.closed:
            self.closed = True
            self.provider.shutdown()

    def stats(self) -> dict[str, int]:
        return self.processor.stats()


EventHandler = Callable[[ReadWriteLogRecord], None]
# Event name → what takes such records instead of the queue (see handle_events).
_event_handlers: dict[str, EventHandler] = {}


def handle_events(event_name: str, handler: EventHandler) -> None:
    """Records named `event_name` that other instrumentation emits into a pipeline's
    LoggerProvider go to `handler` instead of the queue (the scoring layer registers
    the GenAI event mapping here, so this layer does not import it)."""
    _event_handlers[event_name] = handler


class _EventRouting(LogRecordProcessor):
    """The provider's processor: the batching queue, except for events with a handler."""

    def __init__(self, inner: LogRecordProcessor) -> None:
        self.inner = inner

    def on_emit(self, log_record: ReadWriteLogRecord) -> None:
        record = log_record.log_record
        handler = _event_handlers.get(record.event_name or "") if _event_handlers else None
        if handler is None or (record.attributes or {}).get(A.COLLECTION):
            self.inner.on_emit(log_record)
            return
        try:
            handler(log_record)
        except Exception as e:  # never raised into the instrumented application
            _log.warning("otel_collector_ext: could not record a %s event: %s",
                         record.event_name, e)

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner.force_flush(timeout_millis)


def logger_provider() -> LoggerProvider:
    """This process's pipeline as an OpenTelemetry LoggerProvider, for instrumentation
    of other libraries: `set_logger_provider(logger_provider())`. Records carrying this
    project's attributes are stored as usual, GenAI events become gen_ai rows
    (docs/genai.md), other records are skipped and counted. Call it after configure():
    a new configuration builds a new provider."""
    return get_pipeline().provider


def build_exporter(config: Config) -> LogRecordExporter:
    """The exporter `config` names; with collections that have a destination of their own
    (`data.path`), a router in front of one such exporter per destination, so neither
    the Collector nor the exporter needs to know about destinations per collection."""
    spec: dict[str, Any] = dict(config.exporter)
    kind = spec.get("type", "avro")
    if kind == "avro":
        spec.setdefault("rolling_rate", config.rolling_rate)
        spec.setdefault("instance_id", config.instance_id)
        spec.setdefault("inline_limit", config.inline_limit_bytes)
    destinations = config.destinations()
    if destinations and kind != "avro":
        raise ConfigError(
            f"data_collector.collections.{next(iter(destinations))}.data.path: a destination "
            f"per collection needs exporter type avro, not {kind!r} (with otlp, the "
            "collector service's configuration decides where data goes)")
    exporter = create_exporter(spec)
    if not destinations:
        return exporter
    try:
        return route_to_destinations(spec, exporter, destinations, A.collection_of)
    except BaseException:
        exporter.shutdown()
        raise


_lock = threading.Lock()
_current: Pipeline | None = None
_atexit_registered = False
_stopped = False  # shutdown() was called: collect() drops, counted, until configure()
# The configuration from the environment was invalid: collect() drops, counted, until
# configure() gives a valid one.
_start_failure: ConfigError | None = None
# Counts of pipelines already replaced or shut down: stats() stays cumulative.
_retired: Counter[str] = Counter()
_count_lock = threading.Lock()


class PipelineStopped(RuntimeError):
    """shutdown() has run (at exit or on SIGTERM): nothing more can be recorded."""


def get_pipeline() -> Pipeline:
    """The process's pipeline, built from $OTEL_COLLECTOR_EXT_CONFIG or defaults on first use.

    A configuration that failed to load raises the same ConfigError again, at once: the
    file is read once per process, not once per collect().
    """
    pipeline = _current
    if pipeline is not None and not pipeline.closed:
        return pipeline
    with _lock:
        if _current is None or _current.closed:
            _start(load_config)
        assert _current is not None
        return _current


def check_configuration() -> None:
    """Load and check the configuration now, as the first Collector (or middleware) does.

    A broken `$OTEL_COLLECTOR_EXT_CONFIG` file then stops the application while it starts
    (the import of a scoring module, Azure ML's `init()`), with a ConfigError naming
    the key, instead of failing every request later. Without a file, nothing is built
    yet, so a `configure()` call that comes after the Collectors still decides. After
    shutdown() there is nothing to check.
    """
    if _current is not None and not _current.closed:
        return
    with _lock:
        if not _stopped and (_current is None or _current.closed):
            _start(_config_from_file_only)


def _config_from_file_only() -> Config | None:
    config = load_config()
    return None if config.source == "defaults" else config


def _start(source: Callable[[], Config | None]) -> None:
    """Build and install the pipeline from `source()` (under `_lock`); remembers a
    configuration error so that every later call raises it without reading again."""
    global _start_failure
    if _stopped:
        raise PipelineStopped("otel_collector_ext is shut down; configure() starts it again")
    if _start_failure is not None:
        raise _start_failure
    try:
        config = source()
        if config is None:
            return
        pipeline = Pipeline(config)
    except ConfigError as e:
        _start_failure = e
        raise
    if config.source == "defaults":
        _log.warning(
            "otel_collector_ext: no configuration given; writing Avro files to %s "
            "(set OTEL_COLLECTOR_EXT_CONFIG or call configure())",
            config.exporter.get("destination"),
        )
    _install(pipeline)


def configure(source: str | Mapping[str, Any] | Config | None = None) -> None:
    """(Re)build the pipeline from a YAML path, a dict or a Config; the old one is drained first.

    It returns nothing: the pipeline is internal. `stats()` and `flush()` report on it.
    """
    config = source if isinstance(source, Config) else load_config(source)
    pipeline = Pipeline(config)
    global _stopped, _start_failure
    with _lock:
        old = _current
        _install(pipeline)
        _stopped = False
        _start_failure = None
    if old is not None:
        _retire(old)


def _retire(pipeline: Pipeline) -> None:
    pipeline.shutdown()
    _retired.update(pipeline.stats())


def _rebuild_after_fork() -> None:
    # A forked child (gunicorn --preload, multiprocessing) inherits the queue but not the
    # export thread: give it a fresh pipeline, and files of its own, so parent and
    # siblings never write the same file.
    global _current, _lock
    _lock = threading.Lock()
    if _current is not None and not _current.closed:
        config = _current.config
        base = config.instance_id.removesuffix(f"-{os.getppid()}")
        _current = Pipeline(dataclasses.replace(config, instance_id=f"{base}-{os.getpid()}"))


os.register_at_fork(after_in_child=_rebuild_after_fork)


def _install(pipeline: Pipeline) -> None:
    global _current, _atexit_registered
    _current = pipeline
    if not _atexit_registered:
        atexit.register(shutdown)  # from any thread
        _atexit_registered = True
        _freeze_long_lived()
    _flush_on_sigterm()


def _freeze_long_lived() -> None:
    """Once per process, when collection is first configured: collect the garbage there
    is, then move every object still alive (modules, the application's setup, the model)
    to the garbage collector's permanent generation.

    Records waiting in the queue are young objects by the thousand, and each of them
    makes the collector's full passes come sooner; without this, every such pass also
    walks the hundreds of thousands of objects pandas and the model left at startup
    (garbage collection was about a quarter of a burst's CPU: docs/performance.md). Frozen objects are still freed by
    reference counting; only cycles among them are left alone. $OTEL_COLLECTOR_EXT_GC_FREEZE
    =false turns this off.
    """
    if os.environ.get(GC_FREEZE_ENV, "").strip().lower() in ("false", "0", "no", "off"):
        return
    gc.collect()
    gc.freeze()


def _flush_on_sigterm() -> None:
    """Drain the pipeline when SIGTERM (what Kubernetes sends) would kill the process.

    The default SIGTERM action skips atexit handlers, so queued records would be lost.
    A handler can only be set from the main thread, and the pipeline is often built in
    a request thread (a Collector made on first use), so this runs when this module is
    imported and again when a pipeline is installed; the handler drains whichever
    pipeline is current when the signal comes. Only a default handler is replaced; the
    process still dies of SIGTERM afterwards. Servers that handle SIGTERM themselves
    keep their handler (gunicorn then exits normally, which runs atexit; uvicorn
    re-raises the signal after its shutdown, see ASGIMiddleware).
    """
    if threading.current_thread() is not threading.main_thread():
        return
    try:
        if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
            return
    except (AttributeError, ValueError):  # no SIGTERM on this platform
        return
    signal.signal(signal.SIGTERM, _on_sigterm)


def _on_sigterm(signum: int, frame: object) -> None:
    if _current is not None:
        # The interrupted main thread may hold a lock the drain needs: drain in another
        # thread, and give up after a bound rather than hang the shutdown of the pod.
        drain = threading.Thread(target=shutdown, name="otel-collector-ext-sigterm")
        drain.start()
        drain.join(SIGTERM_DRAIN_SECONDS)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGTERM)


def flush(timeout_millis: int = 30000) -> bool:
    """Write everything collected before this call to storage (or the durable Blob spool).

    True only if all of it is stored; False if any of it was dropped (queue full, disk
    full, spool full, a storage error, a record that could not be converted; `stats()`
    counts each by collection and reason) or if it did not finish within the timeout.
    Each loss is reported once: to the calls made after the record was collected, up
    to the first of them that returns."""
    pipeline = _current
    return True if pipeline is None or pipeline.closed else pipeline.flush(timeout_millis)


def shutdown() -> None:
    """Flush and close the pipeline (runs automatically at interpreter exit)."""
    global _current, _stopped
    with _lock:
        pipeline, _current = _current, None
        _stopped = True
    if pipeline is not None:
        _retire(pipeline)


def stats() -> dict[str, int]:
    """Counts of collected, sampled-out, dropped (by reason) and written records, since the
    process started (pipelines replaced by configure() included)."""
    pipeline = _current
    counts = Counter(_retired)
    if pipeline is not None and not pipeline.closed:
        counts.update(pipeline.stats())
    return dict(sorted(counts.items()))


def count_after_shutdown(collection: str) -> None:
    """Count a record that arrived after shutdown() (say, a request finishing on SIGTERM)."""
    _count_dropped(collection, "shutdown")


def count_config_error(collection: str) -> None:
    """Count a record not recorded because the configuration is invalid."""
    _count_dropped(collection, "config_error")


def _count_dropped(collection: str, reason: str) -> None:
    with _count_lock:  # scoring threads count concurrently: += on a Counter is not atomic
        _retired[f"records.dropped{{collection={collection},reason={reason}}}"] += 1


_flush_on_sigterm()  # at import, usually on the main thread, whichever thread builds later
