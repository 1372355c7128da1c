"""Reading collected data back as a pandas DataFrame."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd

from exporters.avro_reading import frame_from_files
from exporters.avro_schema import TIME
from exporters.partitioning import collection_prefix, partition_start
from exporters.storage import open_storage

_PARTITION_SPAN = {3: timedelta(days=1), 4: timedelta(hours=1), 5: timedelta(minutes=1)}


def _utc(value: datetime | str | None) -> datetime | None:
    if value is None:
        return None
    ts = pd.Timestamp(value)
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return ts.to_pydatetime()


def load(
    destination: str,
    *,
    endpoint: str,
    deployment: str,
    collection: str,
    start: datetime | str | None = None,
    end: datetime | str | None = None,
    storage_options: Mapping[str, Any] | None = None,
) -> pd.DataFrame:
    """Rows of one collection with original column names and dtypes, plus envelope columns.

    `start` (inclusive) and `end` (exclusive) filter on the event time; naive
    times are UTC. Only partitions that overlap the range are read.
    """
    lo, hi = _utc(start), _utc(end)
    storage = open_storage(destination, **dict(storage_options or {}))
    try:
        prefix = collection_prefix(endpoint, deployment, collection)
        paths = []
        for info in storage.list(prefix):
            if not info.path.endswith(".avro"):
                continue
            begin = partition_start(info.path, prefix)
            if begin is None:
                continue
            depth = len(info.path[len(prefix):].split("/")) - 1
            span = _PARTITION_SPAN.get(depth, timedelta(hours=1))
            if (hi is not None and begin >= hi) or (lo is not None and begin + span <= lo):
                continue
            paths.append(info.path)
        frame = frame_from_files(storage.read(p) for p in sorted(paths))
    finally:
        storage.close()
    if len(frame) and (lo is not None or hi is not None):
        times = frame[TIME]
        mask = pd.Series(True, index=frame.index)
        if lo is not None:
            mask &= times >= lo.astimezone(UTC)
        if hi is not None:
            mask &= times < hi.astimezone(UTC)
        frame = frame[mask].reset_index(drop=True)
    return frame
