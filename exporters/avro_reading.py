"""Reading our Avro files back into pandas, the inverse of the exporter's conversion."""

from __future__ import annotations

import io
from collections.abc import Iterable
from typing import Any

import fastavro
import pandas as pd

from .avro_schema import META_SHAPE, SHAPE_PAYLOAD, TIME
from .tabular import restore_frames


def read_container(data: bytes) -> tuple[dict[str, Any], dict[str, str], list[dict[str, Any]]]:
    """(writer schema, file metadata, records) of one Avro container file."""
    reader = fastavro.reader(io.BytesIO(data))
    records = list(reader)
    return reader.writer_schema, dict(reader.metadata), records


def frame_from_files(files: Iterable[bytes]) -> pd.DataFrame:
    """One DataFrame from several container files of one collection (schemas may differ)."""
    tabular: list[tuple[list[dict[str, Any]], dict[str, Any]]] = []
    payload: list[dict[str, Any]] = []
    for data in files:
        schema, metadata, records = read_container(data)
        if metadata.get(META_SHAPE) == SHAPE_PAYLOAD:
            payload.extend(records)
        else:
            tabular.append((records, schema))
    if payload and not tabular:
        frame = pd.DataFrame.from_records(payload)
        frame[TIME] = pd.to_datetime(frame[TIME], utc=True).astype("datetime64[us, UTC]")
        return frame
    return restore_frames(tabular)
