"""A collected data set for the read-back tests, made through the real pipeline.

Three UTC days (2026-03-01 22:00 to 2026-03-03 01:59), every hour, three calls an
hour: on the hour to the microsecond, at half past, and at the hour's last
microsecond, so range boundaries are tested exactly. Inputs change schema at
midnight of day 2 (``amount`` int -> float, ``segment`` added) and once more
inside one hour (``note`` added: a second file in that partition). Every call
also has outputs, an HTTP request and a response (payload records). A second
deployment, ``green``, uses minute partitions.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import fastavro
import pandas as pd

import otel_collector_ext as oce
from exporters import contract as A
from otel_collector_ext import Collector
from tests.conftest import local_config

ENDPOINT, DEPLOYMENT = "ep", "blue"
FIRST_HOUR = datetime(2026, 3, 1, 22, tzinfo=UTC)
HOURS = 28
SCHEMA_CHANGE = datetime(2026, 3, 2, tzinfo=UTC)
NOTE_HOUR = datetime(2026, 3, 2, 12, tzinfo=UTC)
OFFSETS = (timedelta(0), timedelta(minutes=30), timedelta(hours=1) - timedelta(microseconds=1))


class ExactContext:
    """A correlation context with an exact event time (floats cannot hold every microsecond)."""

    def __init__(self, when: datetime, id: str) -> None:  # noqa: A002 - the protocol's name
        self.when, self.id = when, id

    def get_id(self) -> str:
        return self.id

    def get_timestamp(self) -> int:
        return int(self.when.timestamp())

    def get_headers(self) -> dict[str, str]:
        return {}

    def time_ns(self) -> int:
        delta = self.when - datetime(1970, 1, 1, tzinfo=UTC)
        return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000


@dataclass
class Call:
    """One scored request: its event time, correlation id and the rows collected."""

    when: datetime
    id: str
    inputs: pd.DataFrame
    outputs: pd.DataFrame
    status: int


@dataclass
class DataSet:
    root: Path | str  # a folder, or a Blob destination
    calls: list[Call] = field(default_factory=list)
    green_times: list[datetime] = field(default_factory=list)

    def input_rows(self, lo: datetime | None = None, hi: datetime | None = None) -> list[tuple]:
        """(correlation id, row, x) of every input row with event time in [lo, hi)."""
        return [
            (c.id, row, int(x))
            for c in self.calls
            if (lo is None or c.when >= lo) and (hi is None or c.when < hi)
            for row, x in enumerate(c.inputs["x"])
        ]


def _inputs(i: int, when: datetime) -> pd.DataFrame:
    rows = 1 + i % 3
    frame: dict[str, Any] = {
        "x": [i * 10 + r for r in range(rows)],
        "city": [["Oslo", "Lima", "Pune"][(i + r) % 3] for r in range(rows)],
    }
    if when < SCHEMA_CHANGE:
        frame["amount"] = [i + r for r in range(rows)]
    else:
        frame["amount"] = [i + r + 0.5 for r in range(rows)]
        frame["segment"] = ["a" if (i + r) % 2 else "b" for r in range(rows)]
    if when.replace(minute=0, second=0, microsecond=0) == NOTE_HOUR and when.minute == 30:
        frame["note"] = ["late"] * rows
    return pd.DataFrame(frame)


def build(root: Path | str, storage_options: dict[str, Any] | None = None,
          hours: int = HOURS) -> DataSet:
    """Collect the data set under `root` (a folder or a Blob destination reached with
    `storage_options`) over its first `hours` hours and return what was collected."""
    data = DataSet(root)
    exporter = {"type": "avro", "destination": str(root), "storage_options": storage_options or {}}
    oce.configure(local_config(Path("."), exporter=exporter, batch={"max_queue_size": 100_000}))
    inputs, outputs = Collector(name="model_inputs"), Collector(name="model_outputs")
    request, response = Collector(name="request"), Collector(name="response")
    i = 0
    for h in range(hours):
        for offset in OFFSETS:
            when = FIRST_HOUR + timedelta(hours=h) + offset
            ctx = ExactContext(when, f"call-{i:04d}")
            frame = _inputs(i, when)
            out = pd.DataFrame({"y": frame["x"] * 0.5, "label": frame["x"] % 2 == 0})
            status = 500 if i % 7 == 0 else 200
            inputs.collect(frame, ctx)
            outputs.collect(out, ctx)
            request.collect(f'{{"x": {i}}}'.encode(), ctx, attributes={
                A.HTTP_METHOD: "POST", A.HTTP_PATH: "/score", A.CONTENT_TYPE: "application/json",
                A.HTTP_HEADERS_PREFIX + "user-agent": "tests"})
            response.collect(b'{"ok": true}', ctx, attributes={
                A.HTTP_STATUS: status, A.HTTP_LATENCY_MS: 1.5 + i % 4,
                A.CONTENT_TYPE: "application/json"})
            data.calls.append(Call(when, ctx.id, frame, out, status))
            i += 1
            if h % 6 == 3:
                assert oce.flush()  # several blocks in one file, as a long-running writer makes
    assert oce.flush()
    oce.shutdown()

    oce.configure(local_config(Path("."), exporter=exporter, deployment="green",
                               data_collector={"rolling_rate": "minute"}))
    green = Collector(name="model_inputs")
    for k in range(5):
        when = FIRST_HOUR + timedelta(minutes=k * 7, seconds=3)
        green.collect(pd.DataFrame({"x": [k]}), ExactContext(when, f"green-{k}"))
        data.green_times.append(when)
    assert oce.flush()
    oce.shutdown()
    return data


def blocks_of(data: bytes) -> list[tuple[int, int, int]]:
    """(offset, size, records) of each block of an Avro file, as fastavro sees them."""
    return [(b.offset, b.size, b.num_records) for b in fastavro.block_reader(io.BytesIO(data))]


def load(root: Path | str, collection: str, **kw: Any) -> pd.DataFrame:
    return oce.load(str(root), endpoint=ENDPOINT, deployment=kw.pop("deployment", DEPLOYMENT),
                    collection=collection, **kw)
