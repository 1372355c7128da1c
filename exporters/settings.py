"""Every ``OTEL_COLLECTOR_EXT_*`` environment variable and every shared default, in one place.

Both layers read them from here: the exporters when built from the environment
(auto-instrumentation), the scoring configuration, the service and the command line.
A default that two components share is defined once, so they cannot drift apart.
"""

from __future__ import annotations

import os
import socket

MiB = 1024 * 1024

# --- environment variables ----------------------------------------------------------------
CONFIG_ENV = "OTEL_COLLECTOR_EXT_CONFIG"  # the scoring configuration file
DESTINATION_ENV = "OTEL_COLLECTOR_EXT_DESTINATION"  # where records go (writers) / are read
SPOOL_DIR_ENV = "OTEL_COLLECTOR_EXT_SPOOL_DIR"  # the parent of the Blob spools
WAL_DIR_ENV = "OTEL_COLLECTOR_EXT_WAL_DIR"  # the service's write-ahead log
#: The Avro exporter's options when built with no arguments: ``…_AVRO_CODEC``,
#: ``_ROLLING_RATE``, ``_MAX_FILE_BYTES``, ``_INSTANCE_ID``, ``_INLINE_LIMIT``,
#: ``_OTHER_LOGS_COLLECTION``, ``_PROFILES`` (``false``: no column profiles beside the files).
AVRO_ENV_PREFIX = "OTEL_COLLECTOR_EXT_AVRO_"
#: "false" keeps collect() from freezing the objects alive at its first configuration out
#: of the cyclic garbage collector's reach (gc.freeze(); see docs/performance.md).
GC_FREEZE_ENV = "OTEL_COLLECTOR_EXT_GC_FREEZE"
#: The standard OpenTelemetry variable naming the logs exporter (avro, otlp, console).
LOGS_EXPORTER_ENV = "OTEL_LOGS_EXPORTER"

# --- defaults -----------------------------------------------------------------------------
DEFAULT_DESTINATION = "./collected"
DEFAULT_ROLLING_RATE = "hour"
DEFAULT_CODEC = "deflate"
DEFAULT_MAX_FILE_BYTES = 256 * MiB  # an Avro file is closed and a new one begun past this
# As Azure ML: larger bodies go to an object of their own.
DEFAULT_INLINE_LIMIT_BYTES = 4 * MiB
DEFAULT_MAX_BODY_BYTES = 16 * MiB
DEFAULT_MAX_QUEUE_SIZE = 8192  # records held in a process's queue at most
DEFAULT_MAX_QUEUE_BYTES = 256 * MiB  # payload bytes held in memory at most
DEFAULT_MAX_EXPORT_BATCH_SIZE = 1024
DEFAULT_SCHEDULE_DELAY_MILLIS = 500
#: Seconds between writes of the column profile of a file still being appended to.
DEFAULT_PROFILE_INTERVAL_SECONDS = 60.0


def default_destination() -> str:
    """``$OTEL_COLLECTOR_EXT_DESTINATION``, else ``./collected``."""
    return os.environ.get(DESTINATION_ENV) or DEFAULT_DESTINATION


def default_instance_id() -> str:
    """This process's id: `{host}-{pid}` (the host is the pod name under Kubernetes).

    The process id keeps the workers of one server (gunicorn, Azure ML's inference
    server) in files of their own: writers never share a file.
    """
    host = "".join(c if c.isalnum() or c in "-_." else "-" for c in socket.gethostname())
    return f"{host.strip('.-')[:64] or 'instance'}-{os.getpid()}"
