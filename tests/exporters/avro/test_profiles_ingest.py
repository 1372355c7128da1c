"""Profiles written at ingest: the Avro exporter stores `<file>.profile.json` beside each
file through the storage interface, describing exactly the rows of that file."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from opentelemetry._logs import LogRecord
from opentelemetry.sdk._logs import ReadableLogRecord
from opentelemetry.sdk.resources import Resource

import otel_collector_ext as oce
from exporters.avro_exporter import AvroLogExporter
from exporters.profiles import PROFILE_SUFFIX, FileProfile
from exporters.storage import LocalStorage, StorageError
from otel_collector_ext import attributes as A

HOUR_NS = 3600 * 10**9
T0 = 1_764_000_000 * 10**9 // HOUR_NS * HOUR_NS  # on an hour


def frame_records(frames: list[pd.DataFrame], hours: list[int]) -> list[ReadableLogRecord]:
    resource = Resource.create({A.INSTANCE_ID: "i"})
    return [
        ReadableLogRecord(LogRecord(
            timestamp=T0 + hour * HOUR_NS + i, body=frame,
            attributes={A.COLLECTION: "model_inputs", A.ENDPOINT: "e", A.DEPLOYMENT: "d",
                        A.CORRELATION_ID: f"id-{i}", A.PAYLOAD_KIND: A.KIND_DATAFRAME}),
            resource=resource)
        for i, (frame, hour) in enumerate(zip(frames, hours, strict=True))
    ]


def features(rng: np.random.Generator, n: int) -> pd.DataFrame:
    age = rng.integers(18, 80, n).astype(float)
    age[rng.random(n) < 0.1] = np.nan
    return pd.DataFrame({"age": age, "score": rng.normal(0, 1, n),
                         "region": rng.choice(["north", "south", "east"], n),
                         "when": pd.Timestamp("2026-01-01", tz="UTC")})


def profiles_under(root: Path) -> dict[Path, FileProfile]:
    return {p: FileProfile.from_json(p.read_bytes()) for p in root.rglob("*" + PROFILE_SUFFIX)}


def test_each_file_gets_a_profile_of_exactly_its_rows(tmp_path: Path):
    rng = np.random.default_rng(5)
    exporter = AvroLogExporter(str(tmp_path))
    frames = [features(rng, int(rng.integers(1, 40))) for _ in range(60)]
    hours = [i % 3 for i in range(60)]
    for start in range(0, 60, 20):  # several exports append to the same files
        exporter.export(frame_records(frames, hours)[start:start + 20])
    assert exporter.force_flush()

    avro = sorted(tmp_path.rglob("*.avro"))
    profiles = profiles_under(tmp_path)
    assert len(avro) == 3 and sorted(profiles) == [Path(str(p) + PROFILE_SUFFIX) for p in avro]
    for path in avro:
        assert profiles[Path(str(path) + PROFILE_SUFFIX)].file_bytes == path.stat().st_size

    merged = FileProfile()
    for profile in profiles.values():
        merged.merge(profile)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # profile files beside the data are not "skipped"
        rows = oce.load(str(tmp_path), endpoint="e", deployment="d", collection="model_inputs")
    assert merged.rows == len(rows) == sum(len(f) for f in frames)
    age = merged.columns["age"]
    assert (age.count, age.nulls) == (rows["age"].notna().sum(), rows["age"].isna().sum())
    assert (age.minimum, age.maximum) == (rows["age"].min(), rows["age"].max())
    assert age.moments.mean == pytest.approx(rows["age"].mean(), rel=1e-12)
    assert merged.columns["score"].variance == pytest.approx(rows["score"].var(ddof=0), rel=1e-9)
    assert merged.columns["region"].frequent.counts == rows["region"].value_counts().to_dict()
    assert merged.columns["when"].kind == "other"  # times: counted, not sketched
    assert "_correlation_id" not in merged.columns and "_row" not in merged.columns
    times = rows["_time"].dt.as_unit("us").astype("int64")
    assert (merged.time_min, merged.time_max) == (times.min(), times.max())


def test_a_profile_lags_its_file_until_the_next_flush(tmp_path: Path):
    rng = np.random.default_rng(1)
    exporter = AvroLogExporter(str(tmp_path))
    exporter.export(frame_records([features(rng, 5)], [0]))
    exporter.force_flush()
    (path,) = tmp_path.rglob("*.avro")
    first = FileProfile.from_json(Path(str(path) + PROFILE_SUFFIX).read_bytes())
    exporter.export(frame_records([features(rng, 7)], [0]))
    # Rows appended since: the stored profile says which size it describes, so a reader
    # can tell it is behind.
    assert first.file_bytes == FileProfile.from_json(
        Path(str(path) + PROFILE_SUFFIX).read_bytes()).file_bytes < path.stat().st_size
    exporter.shutdown()  # closing the file stores its final profile
    final = FileProfile.from_json(Path(str(path) + PROFILE_SUFFIX).read_bytes())
    assert (final.rows, final.file_bytes) == (12, path.stat().st_size)


def test_a_new_file_stores_the_profile_of_the_one_it_replaces(tmp_path: Path):
    exporter = AvroLogExporter(str(tmp_path))
    exporter.export(frame_records([pd.DataFrame({"a": [1, 2]})], [0]))
    exporter.export(frame_records([pd.DataFrame({"b": ["x"]})], [0]))  # new schema, new file
    first = sorted(tmp_path.rglob("*.avro"))[0]
    profile = FileProfile.from_json(Path(str(first) + PROFILE_SUFFIX).read_bytes())
    assert profile.rows == 2 and profile.file_bytes == first.stat().st_size
    exporter.shutdown()


class RefusingProfiles(LocalStorage):
    """Local storage that fails every profile write (as a full spool or an outage would)."""

    def put(self, path: str, data: bytes) -> None:
        if path.endswith(PROFILE_SUFFIX):
            raise StorageError("no room for profiles")
        super().put(path, data)


def test_failing_profile_writes_cost_no_data(tmp_path: Path):
    exporter = AvroLogExporter(storage=RefusingProfiles(str(tmp_path)))
    frames = [pd.DataFrame({"a": [1.0, 2.0]}), pd.DataFrame({"a": [3.0]})]
    assert exporter.export(frame_records(frames, [0, 1])).name == "SUCCESS"
    assert exporter.force_flush()
    exporter.shutdown()
    assert exporter.tally.get("profiles.failed") >= 2 and exporter.tally.get("records.dropped") == 0
    assert not list(tmp_path.rglob("*" + PROFILE_SUFFIX))
    rows = oce.load(str(tmp_path), endpoint="e", deployment="d", collection="model_inputs")
    assert rows["a"].tolist() == [1.0, 2.0, 3.0]


def test_profiles_can_be_turned_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("OTEL_COLLECTOR_EXT_AVRO_PROFILES", "false")
    exporter = AvroLogExporter(str(tmp_path))
    exporter.export(frame_records([pd.DataFrame({"a": [1]})], [0]))
    exporter.shutdown()
    assert list(tmp_path.rglob("*.avro")) and not list(tmp_path.rglob("*" + PROFILE_SUFFIX))
