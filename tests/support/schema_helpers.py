"""Writing one test collection batch by batch, and reading its files and schemas back."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import fastavro
import pandas as pd

import otel_collector_ext as oce
from exporters import contract as A
from exporters.avro.exporter import AvroLogExporter
from exporters.avro.schema_store import read_latest
from exporters.avro.tabular import to_frame
from exporters.storage import Storage, open_storage
from tests.exporters.avro.test_avro_exporter import records

PREFIX = "e/d/rows/"


def export_batches(root: Path, batches: list[list[dict[str, Any]]], *, frames: bool = False,
                   instance: str = "i", first: int = 0, codec: str = "deflate"
                   ) -> AvroLogExporter:
    """One export() (a flush) per batch; record i gets event time T0 + i and id i."""
    if frames:
        return export_bodies(root, [[to_frame(r, A.KIND_ROW) for r in b] for b in batches],
                             A.KIND_DATAFRAME, instance=instance, first=first, codec=codec)
    return export_bodies(root, batches, A.KIND_ROW, instance=instance, first=first, codec=codec)


def export_bodies(root: Path, batches: list[list[Any]], kind: str, *, instance: str = "i",
                  first: int = 0, codec: str = "deflate") -> AvroLogExporter:
    """One export() per batch of record bodies of `kind`; ids and times as export_batches."""
    exporter = AvroLogExporter(str(root), instance_id=instance, codec=codec)
    i = first
    for batch in batches:
        recs = records(batch, kind)
        for offset, rec in enumerate(recs):  # ids and times continue across batches
            rec.log_record.timestamp += i
            rec.log_record.attributes = {**rec.log_record.attributes,
                                         A.CORRELATION_ID: f"id-{i + offset:05d}"}
        exporter.export(recs)
        i += len(batch)
    exporter.shutdown()
    return exporter


def field_types(schema: dict[str, Any]) -> dict[str, Any]:
    return {f["name"]: f["type"] for f in schema["fields"] if "originalName" in f}


def file_schemas(root: Path) -> list[dict[str, Any]]:
    out = []
    for path in sorted(root.rglob("*.avro")):
        with open(path, "rb") as f:
            out.append(fastavro.reader(f).writer_schema)
    return out


def read_back(root: Path) -> pd.DataFrame:
    frame = oce.load(str(root), endpoint="e", deployment="d", collection="rows")
    return frame.sort_values("_correlation_id", kind="stable").reset_index(drop=True)


def latest(root: Path) -> dict[str, Any] | None:
    return read_latest(oce_storage(root), PREFIX)


def oce_storage(root: Path) -> Storage:
    return open_storage(str(root))
