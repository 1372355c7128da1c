"""The Avro exporter: OTel log records in, partitioned Avro container files out.

An OTel `LogRecordExporter`, so it plugs into any LoggerProvider, into our own
pipeline, into the collector service, and into auto-instrumentation through the
`opentelemetry_logs_exporter` entry point `avro` (constructed with no arguments,
configured from the environment). It knows nothing of who calls it: everything
it needs travels in the records' attributes and resource.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd
from opentelemetry.sdk._logs import ReadableLogRecord
from opentelemetry.sdk._logs.export import LogRecordExporter, LogRecordExportResult

from .. import contract as A
from ..settings import AVRO_ENV_PREFIX as ENV_PREFIX
from ..settings import (
    default_instance_id,
)
from ..storage import SpoolFull, Storage, StorageError, open_storage
from ..telemetry import LimitedLog, Tally
from .declared_schema import DeclaredSchema, parse_declared
from .files import AvroFileWriter
from .options import AvroExporterOptions
from .partitioning import ROLLING_SPAN_US, partition_dir, safe_segment
from .payload_rows import body_bytes, log_record_document, payload_row, str_or_none
from .schema import (
    FORMAT_VERSION,
    META_COLLECTION,
    META_FORMAT_VERSION,
    META_SHAPE,
    SHAPE_PAYLOAD,
    SHAPE_TABULAR,
    Envelope,
    fingerprint,
    payload_schema,
)
from .schema_store import publish_quietly, read_reader_schema
from .tabular import TabularBatch, column_key, convert_frames, to_frame

_log = logging.getLogger(__name__)
_ROWS = object()  # marks a group of dict rows among the tabular groups
_limited = LimitedLog(_log)



def _reason(error: BaseException) -> str:
    """The drop reason for an error raised while storing: the spool (or its disk) was
    full, storage failed, or (anything else) the record could not be converted."""
    if isinstance(error, SpoolFull):
        return "spool_full"
    if isinstance(error, (StorageError, OSError)):
        return "storage_failed"
    return "conversion_failed"


def _record_name(collection: str) -> str:
    name = re.sub(r"[^A-Za-z0-9_]", "_", collection)
    return name if not name[:1].isdigit() else "_" + name


# (partition folder, instance, collection, declared schema or None, columns of the group)
_TabularKey = tuple[str, str, str, DeclaredSchema | None, tuple[Any, ...]]
_MAX_COLUMN_LABELS = 256  # distinct column labels per counter: data decides undeclared names


def _declared_schemas(schemas: Mapping[str, Any] | None) -> dict[str, DeclaredSchema]:
    """Validated declarations by collection; ValueError names ``schemas.<collection>...``."""
    if schemas is None:
        return {}
    if not isinstance(schemas, Mapping):
        raise ValueError("schemas must map collection names to {column: type name} mappings")
    out = {}
    for collection, spec in schemas.items():
        if not isinstance(collection, str) or safe_segment(collection) != collection:
            raise ValueError(f"schemas: {collection!r} is not a collection name (letters, "
                             "digits, '_' and '-')")
        out[collection] = parse_declared(spec, f"schemas.{collection}")
    return out


def _collection_of(directory: str) -> str:
    """The collection folder (``endpoint/deployment/collection/``) of a partition folder."""
    return "/".join(directory.split("/")[:3]) + "/"


class AvroLogExporter(LogRecordExporter):
    """Writes inference log records as Avro files under `destination`.

    It counts its own drops per record (`tally`), so a FAILURE result does not mean
    that the whole batch was lost (`counts_own_drops`).

    With no arguments (auto-instrumentation), options come from the environment:
    OTEL_COLLECTOR_EXT_DESTINATION, and OTEL_COLLECTOR_EXT_AVRO_CODEC,
    _ROLLING_RATE, _MAX_FILE_BYTES, _INSTANCE_ID, _INLINE_LIMIT, _OTHER_LOGS_COLLECTION,
    _PROFILES (``false`` writes no column profiles beside the files).

    Records without the `ml.inference.collection` attribute (ordinary application
    logs) are skipped, counted and logged, unless `other_logs_collection` names a
    collection to keep them in, as JSON payload records.

    `schemas` declares collections' schemas (collection -> {column: type name}, see
    `exporters.avro.declared_schema`); a record's own declaration (attribute
    ``ml.inference.schema``, set by `Collector(..., schema=...)`) is used for collections
    not declared here. A declared collection is written with its declaration's schema.
    """

    counts_own_drops = True
    #: Arguments only code can give (objects), beside the options.
    RUNTIME_ARGUMENTS = ("storage",)
    #: The options a configuration file may give, with their variables and defaults.
    Options = AvroExporterOptions

    def __init__(
        self,
        destination: str | None = None,
        *,
        codec: str | None = None,
        rolling_rate: str | None = None,
        max_file_bytes: int | None = None,
        instance_id: str | None = None,
        inline_limit: int | None = None,
        storage: Storage | None = None,
        storage_options: Mapping[str, Any] | None = None,
        other_logs_collection: str | None = None,
        schemas: Mapping[str, Any] | None = None,
        profiles: bool | None = None,
    ) -> None:
        # Each option: the argument, else its environment variable, else its default.
        options = AvroExporterOptions.resolve({
            "destination": destination, "codec": codec, "rolling_rate": rolling_rate,
            "max_file_bytes": max_file_bytes, "instance_id": instance_id,
            "inline_limit": inline_limit, "other_logs_collection": other_logs_collection,
            "profiles": profiles})
        # Built with no arguments: auto-instrumentation, where a silent exporter misleads most.
        self._from_environment = destination is None and storage is None
        self.destination = options.destination
        self.rolling_rate = options.rolling_rate
        self._span_us = ROLLING_SPAN_US[self.rolling_rate]
        self._partitions: dict[tuple[str, str, str, int], str] = {}
        self.instance_id = options.instance_id or default_instance_id()
        self.inline_limit = options.inline_limit
        self.other_logs_collection = options.other_logs_collection
        self.schemas = _declared_schemas(schemas)
        self._seen = False
        self.storage = storage or open_storage(self.destination, **dict(storage_options or {}))
        self.tally = Tally("otel_collector_ext.exporters.avro", "otel_collector_ext.avro")
        self.writer = AvroFileWriter(self.storage, codec=options.codec,
                                     max_file_bytes=options.max_file_bytes,
                                     profiles=options.profiles, tally=self.tally)
        # Per collection folder: the schema last written (typing state) and the
        # fingerprint last published. A collection's schema only widens.
        self._schemas: dict[str, dict[str, Any] | None] = {}
        self._published: dict[str, str] = {}
        self._labels: dict[str, set[str]] = {}  # column labels counted, per collection
        self._lock = threading.Lock()
        self._closed = False

    def stores(self, readable: ReadableLogRecord) -> bool:
        """Whether `export` would write this record (the collector service asks first)."""
        if self.other_logs_collection is not None:
            return True
        collection = (readable.log_record.attributes or {}).get(A.COLLECTION)
        return isinstance(collection, str) and bool(collection)

    def export(self, batch: Sequence[ReadableLogRecord]) -> LogRecordExportResult:
        """SUCCESS when every inference record of `batch` is stored (or durably spooled);
        FAILURE when any was dropped (each counted in `tally`, by collection and reason)."""
        if self._closed:
            return LogRecordExportResult.FAILURE
        self._seen = self._seen or bool(batch)
        dropped_before = self._lost()
        tabular: dict[_TabularKey, tuple[list[Any], list[Envelope]]] = {}
        payloads: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
        for readable in batch:
            try:
                self._sort(readable, tabular, payloads)
            except Exception as e:  # one bad record must not sink the batch
                self._drop(1, _reason(e), e, A.collection_of(readable))
        with self._lock:
            for (directory, instance, collection, declared, cols), (frames, envelopes) in (
                    tabular.items()):
                write = self._write_rows if cols[:1] == (_ROWS,) else self._write_tabular
                write(directory, instance, collection, frames, envelopes, declared)
            for (directory, instance, collection), rows in payloads.items():
                self._write(directory, instance, payload_schema(collection), rows,
                            collection, SHAPE_PAYLOAD)
        ok = self._lost() == dropped_before
        return LogRecordExportResult.SUCCESS if ok else LogRecordExportResult.FAILURE

    def _lost(self) -> int:
        return self.tally.get("records.dropped") + self.tally.get("rows.dropped")

    def _sort(
        self,
        readable: ReadableLogRecord,
        tabular: dict[_TabularKey, tuple[list[Any], list[Envelope]]],
        payloads: dict[tuple[str, str, str], list[dict[str, Any]]],
    ) -> None:
        record = readable.log_record
        attrs = record.attributes or {}  # copied below only where all of it is stored
        collection = attrs.get(A.COLLECTION)
        ordinary = not isinstance(collection, str) or not collection
        if ordinary:
            if self.other_logs_collection is None:
                self.tally.add("records.skipped", reason="not_inference")
                _limited.warning(
                    "not_inference", "skipped a log record without the %s attribute (an "
                    "ordinary log, not inference data); set %sOTHER_LOGS_COLLECTION (or the "
                    "exporter option other_logs_collection) to keep such records", A.COLLECTION,
                    ENV_PREFIX)
                return
            collection = self.other_logs_collection
        endpoint = str(attrs.get(A.ENDPOINT) or "default")
        deployment = str(attrs.get(A.DEPLOYMENT) or "default")
        resource_attrs = readable.resource.attributes if readable.resource else {}
        instance = safe_segment(str(resource_attrs.get(A.INSTANCE_ID) or self.instance_id))
        time_ns = record.timestamp if record.timestamp is not None else record.observed_timestamp
        envelope = Envelope(
            correlation_id=str(attrs.get(A.CORRELATION_ID) or ""),
            time_us=int(time_ns) // 1000,
            model_version=str_or_none(attrs.get(A.MODEL_VERSION)),
            trace_id=format(record.trace_id, "032x") if record.trace_id else None,
            span_id=format(record.span_id, "016x") if record.span_id else None,
        )
        directory = self._partition(endpoint, deployment, collection,
                                    envelope.time_us // self._span_us)
        kind = "" if ordinary else str(attrs.get(A.PAYLOAD_KIND) or "")
        declared = (self._declared(collection, attrs.get(A.SCHEMA))
                    if kind in A.TABULAR_KINDS else None)
        if kind == A.KIND_ROW and isinstance(record.body, Mapping):
            # Dict rows of one batch become one frame later: a frame per row costs ~85 µs.
            key = (directory, instance, collection, declared, (_ROWS, *record.body))
            bodies, envelopes = tabular.setdefault(key, ([], []))
            bodies.append(record.body)
            envelopes.append(envelope)
        elif kind in A.TABULAR_KINDS:
            frame = to_frame(record.body, kind)
            key = (directory, instance, collection, declared, column_key(frame.columns))
            frames, envelopes = tabular.setdefault(key, ([], []))
            frames.append(frame)
            envelopes.append(envelope)
        else:
            if ordinary:  # the whole record, so severity and attributes are kept too
                kind, body = A.KIND_JSON, log_record_document(readable)
                attrs = {}
            else:
                kind = kind if kind in A.PAYLOAD_KINDS else A.KIND_BYTES
                body = record.body
                attrs = dict(attrs)
            data = body_bytes(body) if body is not None else b""
            ref = None
            if len(data) > self.inline_limit:
                ref = self._store_body(directory, instance, data)
            payloads.setdefault((directory, instance, collection), []).append(
                payload_row(envelope, kind, attrs, None if ref else data,
                            body_size=len(data), body_ref=ref)
            )

    def _declared(self, collection: str, text: Any) -> DeclaredSchema | None:
        """The collection's declared schema: this exporter's `schemas`, else the record's."""
        configured = self.schemas.get(collection)
        if configured is not None or text is None:
            return configured
        if not isinstance(text, str):
            raise ValueError(f"attribute {A.SCHEMA} must be JSON text, not {type(text).__name__}")
        return parse_declared(text, f"attribute {A.SCHEMA}")

    def _column_label(self, collection: str, column: str) -> str:
        """`column`, or ``(other)`` once a collection has many labels (hostile column names)."""
        seen = self._labels.setdefault(collection, set())
        if column in seen or len(seen) < _MAX_COLUMN_LABELS:
            seen.add(column)
            return column
        return "(other)"

    def _partition(self, endpoint: str, deployment: str, collection: str, bucket: int) -> str:
        key = (endpoint, deployment, collection, bucket)
        found = self._partitions.get(key)
        if found is None:
            if len(self._partitions) > 4096:
                self._partitions.clear()
            found = self._partitions[key] = partition_dir(
                endpoint, deployment, collection, bucket * self._span_us, self.rolling_rate)
        return found

    def _store_body(self, directory: str, instance: str, data: bytes) -> str:
        # Content-addressed: a retried export stores the same object again, harmlessly.
        digest = hashlib.blake2b(data, digest_size=16).hexdigest()
        path = f"{directory}/{instance}.bodies/{digest}.bin"
        self.storage.put(path, data)
        return path

    def _known_schema(self, directory: str) -> dict[str, Any] | None:
        """The schema the collection of `directory` was last written with; the first time,
        the one published in storage (by an earlier run or another replica)."""
        prefix = _collection_of(directory)
        if prefix not in self._schemas:
            try:
                self._schemas[prefix] = read_reader_schema(self.storage, prefix)
            except (StorageError, OSError) as e:
                _log.warning("reading the published schema of %s failed: %s", prefix, e)
                self._schemas[prefix] = None
        return self._schemas[prefix]

    def _convert(
        self,
        directory: str,
        collection: str,
        frames: list[Any],
        envelopes: list[Envelope],
        *,
        object_dtypes: list[str | None] | None = None,
        declared: DeclaredSchema | None = None,
    ) -> TabularBatch:
        """Convert against the collection's schema (its declared one, else the one it was
        last written with), which becomes the result's. The frames share their column
        names (`_sort` grouped them so)."""
        known = None if declared is not None else self._known_schema(directory)
        converted = convert_frames(frames, envelopes, _record_name(collection), known,
                                   object_dtypes=object_dtypes, declared=declared,
                                   same_columns=True)
        self._schemas[_collection_of(directory)] = converted.schema
        for column, count in converted.mismatched.items():
            self.tally.add("values.mismatched", count, collection=collection)
            _limited.warning(f"mismatch:{collection}:{column}",
                             "collection %s: %d value(s) of column %r do not fit its type; "
                             "kept as JSON text in %r", collection, count, column,
                             column + "__mismatch")
        for counter, counts, what in (
                ("values.cast_failed", converted.cast_failed,
                 "cannot be cast to its declared type; stored as null"),
                ("values.undeclared", converted.undeclared,
                 "belong to a column the declared schema does not name; not stored")):
            for column, count in counts.items():
                label = self._column_label(collection, column)
                self.tally.add(counter, count, collection=collection, column=label)
                _limited.warning(f"{counter}:{collection}:{label}",
                                 "collection %s: %d value(s) of column %r %s", collection,
                                 count, column, what)
        return converted

    def _write_tabular(
        self,
        directory: str,
        instance: str,
        collection: str,
        frames: list[Any],
        envelopes: list[Envelope],
        declared: DeclaredSchema | None = None,
    ) -> bool:
        try:
            converted = self._convert(directory, collection, frames, envelopes,
                                      declared=declared)
        except Exception:
            # Find the bad frames one by one; write the good ones.
            ok = True
            for frame, envelope in zip(frames, envelopes, strict=True):
                try:
                    one = self._convert(directory, collection, [frame], [envelope],
                                        declared=declared)
                except Exception as e:
                    self._drop(1, "conversion_failed", e, collection)
                    continue
                ok &= self._write(directory, instance, one.schema, one.rows, collection,
                                  SHAPE_TABULAR, records=1)
            return ok
        return self._write(directory, instance, converted.schema, converted.rows, collection,
                           SHAPE_TABULAR, records=len(frames))

    def _write_rows(
        self,
        directory: str,
        instance: str,
        collection: str,
        rows: list[dict[Any, Any]],
        envelopes: list[Envelope],
        declared: DeclaredSchema | None = None,
    ) -> bool:
        """Dict rows (same keys) as one frame, typed as one-row frames would be and merged:
        pandas' inference per column, object where a None appears (as a lone None's
        frame would make it) recording the dtype of the other values, so both paths
        write the same schema and values."""
        try:
            columns: dict[Any, Any] = {}
            dtypes: list[str | None] = []
            for key in rows[0]:
                values = [row[key] for row in rows]
                present = [v for v in values if v is not None]
                has_none = len(present) < len(values)
                columns[key] = pd.Series(values, dtype=object) if has_none else values
                # What a row without the None records, so that batching changes no schema.
                dtypes.append(str(pd.Series(present).dtype) if has_none and present else None)
            frame = pd.DataFrame(columns)
            converted = self._convert(directory, collection, [frame], envelopes[:1],
                                      object_dtypes=dtypes, declared=declared)
            for datum, envelope in zip(converted.rows, envelopes, strict=True):
                datum.update(envelope.fields(0))
        except Exception:  # an odd value somewhere: convert row by row, dropping bad ones
            frames, kept = [], []
            for row, envelope in zip(rows, envelopes, strict=True):
                try:
                    frames.append(to_frame(row, A.KIND_ROW))
                    kept.append(envelope)
                except Exception as e:
                    self._drop(1, "conversion_failed", e, collection)
            return self._write_tabular(directory, instance, collection, frames, kept, declared)
        return self._write(directory, instance, converted.schema, converted.rows, collection,
                           SHAPE_TABULAR, records=len(rows))

    def _write(
        self,
        directory: str,
        instance: str,
        schema: Mapping[str, Any],
        rows: list[dict[str, Any]],
        collection: str,
        shape: str,
        records: int | None = None,
    ) -> bool:
        count = len(rows) if records is None else records
        if not rows:
            self.tally.add("records.written", count, collection=collection)
            return True
        metadata = {META_SHAPE: shape, META_COLLECTION: collection,
                    META_FORMAT_VERSION: FORMAT_VERSION}
        try:
            self.writer.write(directory, instance, schema, rows, metadata)
        except (StorageError, OSError) as e:
            self._drop(count, _reason(e), e, collection)
            return False
        except Exception as e:  # a value Avro cannot encode: drop that row, keep the rest
            good, bad = self.writer.split_encodable(schema, rows)
            if not bad:  # every row encodes: the failure was elsewhere (a refused name)
                self._drop(count, "storage_failed", e, collection)
                return False
            if not good:
                self._drop(count, "conversion_failed", e, collection)
                return False
            if count == len(rows):  # a row per record: the records with bad rows are dropped
                self._drop(len(bad), "conversion_failed", e, collection)
                count = len(good)
            else:  # rows of several multi-row records: the records stay, with rows missing
                self.tally.add("rows.dropped", len(bad), reason="conversion_failed",
                               collection=collection)
                _limited.warning("conversion_failed", "dropped %d row(s) of %s: %s: %s",
                                 len(bad), collection, type(e).__name__, e)
            return self._write(directory, instance, schema, good, collection, shape,
                               records=count)
        self.tally.add("records.written", count, collection=collection)
        self.tally.add("rows.written", len(rows), collection=collection)
        self._publish(directory, schema)
        return True

    def _publish(self, directory: str, schema: Mapping[str, Any]) -> None:
        prefix = _collection_of(directory)
        fp = fingerprint(dict(schema))
        if self._published.get(prefix) != fp and publish_quietly(self.storage, prefix, schema):
            self._published[prefix] = fp

    def _drop(self, count: int, reason: str, error: BaseException, collection: str | None) -> None:
        self.tally.add("records.dropped", count, reason=reason,
                       **({"collection": collection} if collection else {}))
        _limited.warning(reason, "dropped %d record(s) (%s): %s: %s", count, reason,
                         type(error).__name__, error)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        try:
            self.writer.flush()
        except Exception as e:
            _log.warning("flushing %s failed: %s", self.storage.describe(), e)
            return False
        return True

    def shutdown(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._from_environment and not self._seen:
            _log.warning(
                "the avro exporter received no log records: it stores records made by "
                "otel_collector_ext.Collector (or carrying the %s attribute); for an "
                "application's logging records, opentelemetry-instrument needs "
                "OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED=true and this exporter "
                "%sOTHER_LOGS_COLLECTION", A.COLLECTION, ENV_PREFIX)
        with self._lock:
            try:
                self.writer.close()
            except Exception as e:
                _log.warning("closing %s failed: %s", self.storage.describe(), e)

    def __repr__(self) -> str:
        return f"<AvroLogExporter {self.storage.describe()}>"
