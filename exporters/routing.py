"""One exporter per destination: records go to the exporter of their route, others to a
default exporter.

The pipeline uses it for collections with a destination of their own (Azure ML's
per-collection `data.path`): each destination gets a complete exporter of the same
kind (its own storage, spool and files), and this router sends each record to the
one its route key names. It knows nothing of how the key is read (the caller passes
a function) nor of what the exporters write.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import unquote, urlparse

from opentelemetry.sdk._logs import ReadableLogRecord
from opentelemetry.sdk._logs.export import LogRecordExporter, LogRecordExportResult

from .registry import create_exporter
from .telemetry import MergedTally, Tally

_log = logging.getLogger(__name__)


class RoutingExporter(LogRecordExporter):
    """Sends each record to `routes[route_key(record)]`, or to `default`."""

    def __init__(
        self,
        default: LogRecordExporter,
        routes: Mapping[str, LogRecordExporter],
        route_key: Callable[[ReadableLogRecord], str | None],
    ) -> None:
        self.default = default
        self.routes = dict(routes)
        self._route_key = route_key
        # Several routes may share one exporter (collections with one destination).
        self.exporters: list[LogRecordExporter] = [default]
        for exporter in self.routes.values():
            if all(exporter is not e for e in self.exporters):
                self.exporters.append(exporter)
        self.counts_own_drops = all(
            getattr(e, "counts_own_drops", False) for e in self.exporters)
        # Records an exporter lost by raising (instead of counting them itself).
        self._raised = Tally("otel_collector_ext.exporters.routing", "otel_collector_ext.routing")
        tallies = [t for t in (getattr(e, "tally", None) for e in self.exporters) if t is not None]
        self.tally = MergedTally([*tallies, self._raised])

    def export(self, batch: Sequence[ReadableLogRecord]) -> LogRecordExportResult:
        groups: dict[int, tuple[LogRecordExporter, list[ReadableLogRecord]]] = {}
        for record in batch:
            exporter = self.routes.get(self._route_key(record) or "", self.default)
            groups.setdefault(id(exporter), (exporter, []))[1].append(record)
        ok = True
        for exporter, records in groups.values():
            try:
                ok &= exporter.export(records) is LogRecordExportResult.SUCCESS
            except Exception as e:  # one destination's trouble must not stop the others
                ok = False
                _log.warning("exporter %r failed on %d records: %s", exporter, len(records), e)
                for record in records:
                    key = self._route_key(record)
                    self._raised.add("records.dropped", reason="export_failed",
                                     **({"collection": key} if key else {}))
        return LogRecordExportResult.SUCCESS if ok else LogRecordExportResult.FAILURE

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return all([e.force_flush(timeout_millis) is not False for e in self.exporters])

    def shutdown(self) -> None:
        for exporter in self.exporters:
            exporter.shutdown()

    def __repr__(self) -> str:
        return f"<RoutingExporter default={self.default!r} routes={self.routes!r}>"


_BLOB_SCHEMES = ("az", "https", "http")


def route_to_destinations(
    spec: Mapping[str, Any],
    default: LogRecordExporter,
    destinations: Mapping[str, str],
    route_key: Callable[[ReadableLogRecord], str | None],
) -> RoutingExporter:
    """`default` (built from `spec`), plus one exporter like it per other destination in
    `destinations` (route → destination); routes to `default`'s own destination, or to
    one destination spelled two ways, share an exporter, so no two write the same files."""
    own = destination_key(str(spec.get("destination") or ""))
    made: dict[str, LogRecordExporter] = {}
    routes: dict[str, LogRecordExporter] = {}
    try:
        for route, destination in destinations.items():
            key = destination_key(destination)
            if key == own:
                continue
            if key not in made:
                made[key] = create_exporter(spec_for_destination(spec, destination),
                                            key=f"exporter for {route}")
            routes[route] = made[key]
    except BaseException:
        for exporter in made.values():
            exporter.shutdown()
        raise
    return RoutingExporter(default, routes, route_key)


def destination_key(destination: str) -> str:
    """One spelling per destination: a local folder's real path, a URL without its query."""
    parsed = urlparse(destination)
    scheme = parsed.scheme.lower()
    if scheme == "file":
        return os.path.realpath(unquote(parsed.path))
    if scheme == "" or (len(scheme) == 1 and destination[1:2] == ":"):
        return os.path.realpath(destination)
    return destination.split("?")[0].rstrip("/")


def spec_for_destination(spec: Mapping[str, Any], destination: str) -> dict[str, Any]:
    """The options of an exporter like `spec` writing to `destination` instead.

    Format options (codec, file size, rolling rate, instance id…) are kept. Storage
    options are kept only when both destinations are Blob storage (same credentials);
    a local folder takes none. A given `spool_dir` gets a subfolder per destination, so
    every Blob destination has a spool of its own on the same (persistent) volume.
    """
    out = dict(spec)
    out["destination"] = destination
    options = dict(spec.get("storage_options") or {})
    if _is_blob(destination) and _is_blob(str(spec.get("destination") or "")):
        if options.get("spool_dir"):
            digest = hashlib.sha256(destination.split("?")[0].encode()).hexdigest()[:16]
            options["spool_dir"] = f"{str(options['spool_dir']).rstrip('/')}/routes/{digest}"
    else:
        options = {}
    if options:
        out["storage_options"] = options
    else:
        out.pop("storage_options", None)
    return out


def _is_blob(destination: str) -> bool:
    return urlparse(destination).scheme.lower() in _BLOB_SCHEMES
