"""The Avro exporter on its own: dict rows batched into one frame write what one-row
frames would, value for value and schema for schema."""

from __future__ import annotations

import datetime as dt
import decimal
from pathlib import Path
from typing import Any

import fastavro
import numpy as np
import pandas as pd
import pytest
from opentelemetry._logs import LogRecord
from opentelemetry.sdk._logs import ReadableLogRecord
from opentelemetry.sdk.resources import Resource

import otel_collector_ext as oce
from exporters import contract as A
from exporters.avro.exporter import AvroLogExporter
from exporters.avro.tabular import to_frame

T0 = 1_764_000_000_000_000_000  # ns


def records(bodies: list[Any], kind: str) -> list[ReadableLogRecord]:
    resource = Resource.create({A.INSTANCE_ID: "i"})
    return [
        ReadableLogRecord(
            LogRecord(timestamp=T0 + i, body=body, attributes={
                A.COLLECTION: "rows", A.ENDPOINT: "e", A.DEPLOYMENT: "d",
                A.CORRELATION_ID: f"id-{i}", A.PAYLOAD_KIND: kind}),
            resource=resource,
        )
        for i, body in enumerate(bodies)
    ]


def written(root: Path) -> tuple[list[dict], pd.DataFrame]:
    schemas = []
    for path in sorted(root.rglob("*.avro")):
        with open(path, "rb") as f:
            schemas.append(fastavro.reader(f).writer_schema)
    return schemas, oce.load(str(root), endpoint="e", deployment="d", collection="rows")


SAMPLES = {
    "ints and floats": [{"a": 1, "b": 1.5}, {"a": 2, "b": 2.0}, {"a": 3, "b": np.nan}],
    "None among values": [{"a": 1, "s": "x", "f": True}, {"a": None, "s": None, "f": None},
                          {"a": 3, "s": "z", "f": False}],
    "ints becoming floats": [{"x": 1}, {"x": 2.5}],
    "times and decimals": [{"t": dt.datetime(2026, 1, 1, 12), "d": decimal.Decimal("1.25"),
                            "day": dt.date(2026, 1, 2)},
                           {"t": dt.datetime(2026, 1, 2, 13), "d": decimal.Decimal("2.5"),
                            "day": dt.date(2026, 1, 3)}],
    "numpy scalars": [{"n": np.int32(4), "g": np.float32(0.5)}, {"n": np.int32(5), "g": None}],
    "all None": [{"z": None}, {"z": None}],
}


@pytest.mark.parametrize("name", SAMPLES)
def test_batched_dict_rows_write_what_one_row_frames_write(tmp_path: Path, name: str) -> None:
    rows = SAMPLES[name]
    batched, per_frame = tmp_path / "batched", tmp_path / "frames"
    AvroLogExporter(str(batched), instance_id="i").export(records(rows, A.KIND_ROW))
    AvroLogExporter(str(per_frame), instance_id="i").export(
        records([to_frame(r, A.KIND_ROW) for r in rows], A.KIND_DATAFRAME))
    (batched_schemas, batched_frame), (frame_schemas, frames_frame) = (
        written(batched), written(per_frame))
    assert batched_schemas == frame_schemas
    pd.testing.assert_frame_equal(batched_frame, frames_frame, check_exact=True)
    assert batched_frame["_correlation_id"].tolist() == [f"id-{i}" for i in range(len(rows))]
    assert (batched_frame["_row"] == 0).all()


def test_an_odd_value_becomes_text_and_its_neighbours_keep_their_type(tmp_path: Path) -> None:
    exporter = AvroLogExporter(str(tmp_path), instance_id="i")
    exporter.export(records([{"a": 1}, {"a": object()}, {"a": 3}], A.KIND_ROW))
    _, frame = written(tmp_path)
    assert frame["a"][0] == 1 and frame["a"][2] == 3
    assert str(frame["a"][1]).startswith("<object object")
    assert exporter.tally.get("records.written") == 3


def payload_records(ids: list[str], status: Any = 200) -> list[ReadableLogRecord]:
    resource = Resource.create({A.INSTANCE_ID: "i"})
    return [
        ReadableLogRecord(
            LogRecord(timestamp=T0 + i, body=f"body {i}", attributes={
                A.COLLECTION: "rows", A.ENDPOINT: "e", A.DEPLOYMENT: "d",
                A.CORRELATION_ID: cid, A.PAYLOAD_KIND: "text", A.HTTP_STATUS: status}),
            resource=resource,
        )
        for i, cid in enumerate(ids)
    ]


def test_one_unencodable_record_is_dropped_alone(tmp_path: Path) -> None:
    exporter = AvroLogExporter(str(tmp_path), instance_id="i")
    exporter.export(payload_records(["a", "b\ud800", "c"]))  # a lone surrogate: not UTF-8
    _, frame = written(tmp_path)
    assert frame["_correlation_id"].tolist() == ["a", "c"]
    assert exporter.tally.get("records.dropped", reason="conversion_failed") == 1
    assert exporter.tally.get("records.written") == 2


def test_out_of_range_status_is_stored_empty_not_fatal(tmp_path: Path) -> None:
    exporter = AvroLogExporter(str(tmp_path), instance_id="i")
    exporter.export(payload_records(["a"], status=2**40) + payload_records(["b"]))
    _, frame = written(tmp_path)
    assert sorted(frame["_correlation_id"]) == ["a", "b"]
    assert frame.set_index("_correlation_id")["status"].isna().to_dict() == {"a": True, "b": False}


def test_the_processor_does_not_count_written_records_as_lost(tmp_path: Path) -> None:
    oce.configure({"exporter": {"type": "avro", "destination": str(tmp_path)},
                   "instance_id": "i"})
    c = oce.Collector(name="mixed")
    for cid in ("good-1", "bad\ud800", "good-2"):
        c.collect("text", oce.BasicCorrelationContext(id=cid))
    assert not oce.flush()  # one record collected before it was dropped
    stats = oce.stats()
    assert stats["exporter.records.dropped{collection=mixed,reason=conversion_failed}"] == 1
    assert stats["exporter.records.written{collection=mixed}"] == 2
    assert not any(k.startswith("records.dropped") for k in stats)
    assert stats["records.collected{collection=mixed}"] == 3 and stats["records.in_flight"] == 0
