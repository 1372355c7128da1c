"""The service's record processors: sampling, filtering and attribute redaction.

Each takes the records of one request and returns those to pass on. They never
modify a record they were given (a receiver may feed several pipelines): a
changed record is a copy.
"""

from __future__ import annotations

import copy
import hashlib
import re
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from opentelemetry.sdk._logs import ReadableLogRecord

from exporters import contract as A

from ..pipeline.sampling import Sampler
from .config import AttributeAction, Match, ProcessorConfig


class RecordProcessor(Protocol):
    def process(self, records: Sequence[ReadableLogRecord]) -> Sequence[ReadableLogRecord]: ...


_MATCH_KEYS = (("collections", A.COLLECTION), ("endpoints", A.ENDPOINT),
               ("deployments", A.DEPLOYMENT), ("model_versions", A.MODEL_VERSION))


def matches(match: Match, attributes: Mapping[str, Any]) -> bool:
    """True if every non-empty set of `match` holds the record's value of that attribute."""
    for field_name, key in _MATCH_KEYS:
        wanted = getattr(match, field_name)
        if wanted and str(attributes.get(key)) not in wanted:
            return False
    return True


def _selected(include: Match | None, exclude: Match | None, attributes: Mapping[str, Any]) -> bool:
    if include is not None and not matches(include, attributes):
        return False
    return exclude is None or not matches(exclude, attributes)


class SamplingProcessor:
    """Keeps a fraction of correlation ids per collection (records of one request stay together)."""

    def __init__(self, sampling_rate: float, collections: Mapping[str, float]) -> None:
        self.sampler = Sampler(sampling_rate, collections)

    def process(self, records: Sequence[ReadableLogRecord]) -> Sequence[ReadableLogRecord]:
        should = self.sampler.should_sample
        kept = []
        for readable in records:
            attrs = readable.log_record.attributes or {}
            collection = attrs.get(A.COLLECTION)
            if not isinstance(collection, str) or should(
                    collection, str(attrs.get(A.CORRELATION_ID) or "")):
                kept.append(readable)
        return kept


class FilterProcessor:
    """Drops records outside `include` or inside `exclude`."""

    def __init__(self, include: Match | None, exclude: Match | None) -> None:
        self.include, self.exclude = include, exclude

    def process(self, records: Sequence[ReadableLogRecord]) -> Sequence[ReadableLogRecord]:
        return [r for r in records
                if _selected(self.include, self.exclude, r.log_record.attributes or {})]


class AttributesProcessor:
    """Inserts, updates, deletes or hashes record attributes, as the Collector's processor."""

    def __init__(self, actions: Sequence[AttributeAction], include: Match | None,
                 exclude: Match | None) -> None:
        self.actions = [(a, re.compile(a.pattern) if a.pattern is not None else None)
                        for a in actions]
        self.include, self.exclude = include, exclude

    def process(self, records: Sequence[ReadableLogRecord]) -> Sequence[ReadableLogRecord]:
        out = []
        for readable in records:
            attrs = readable.log_record.attributes or {}
            if not _selected(self.include, self.exclude, attrs):
                out.append(readable)
                continue
            changed = self.apply(dict(attrs))
            out.append(readable if changed == attrs else _with_attributes(readable, changed))
        return out

    def apply(self, attrs: dict[str, Any]) -> dict[str, Any]:
        for action, pattern in self.actions:
            keys = [k for k in attrs if pattern.search(k)] if pattern is not None else [action.key]
            for key in keys:
                present = key in attrs
                if action.action == "delete":
                    attrs.pop(key, None)
                elif action.action == "hash":
                    if present:
                        attrs[key] = hashlib.sha256(str(attrs[key]).encode()).hexdigest()
                elif action.action == "insert":
                    if not present:
                        attrs[key] = action.value
                elif action.action == "update":
                    if present:
                        attrs[key] = action.value
                else:  # upsert
                    attrs[key] = action.value
        return attrs


def _with_attributes(readable: ReadableLogRecord, attributes: dict[str, Any]) -> ReadableLogRecord:
    record = copy.copy(readable.log_record)
    record.attributes = attributes
    return ReadableLogRecord(record, readable.resource, readable.instrumentation_scope,
                             readable.limits)


def build_processor(config: ProcessorConfig) -> RecordProcessor | None:
    """The record processor for `config`; None for `batch`, which configures the exporter queues."""
    options = config.options
    if config.type == "sampling":
        return SamplingProcessor(options["sampling_rate"], options["collections"])
    if config.type == "filter":
        return FilterProcessor(options["include"], options["exclude"])
    if config.type == "attributes":
        return AttributesProcessor(options["actions"], options["include"], options["exclude"])
    return None
