"""A collection's profile over a window: stored profiles where they answer, rows where
they do not (stale, damaged, hostile, or a window that cuts a partition), same result."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import otel_collector_ext as oce
from exporters.avro_exporter import AvroLogExporter
from exporters.profiles import PROFILE_SUFFIX, FileProfile
from exporters.storage import LocalStorage
from otel_collector_ext.reading.window_profile import window_profile
from tests.exporters.avro.test_profiles_ingest import HOUR_NS, T0, features, frame_records

START = datetime.fromtimestamp(T0 / 1e9, UTC)


def write_hours(root: Path, hours: int = 4, per_hour: int = 12) -> None:
    rng = np.random.default_rng(11)
    exporter = AvroLogExporter(str(root))
    frames = [features(rng, int(rng.integers(1, 20))) for _ in range(hours * per_hour)]
    # Spread each hour's records over the hour, so a window can cut one.
    spread = [ReadableAt(f, h, i) for h in range(hours) for i, f in
              enumerate(frames[h * per_hour:(h + 1) * per_hour])]
    records = frame_records([s.frame for s in spread], [0] * len(spread))
    for record, s in zip(records, spread, strict=True):
        record.log_record.timestamp = T0 + s.hour * HOUR_NS + s.index * HOUR_NS // per_hour
    exporter.export(records)
    exporter.shutdown()


class ReadableAt:
    def __init__(self, frame: pd.DataFrame, hour: int, index: int) -> None:
        self.frame, self.hour, self.index = frame, hour, index


def assert_same_as_rows(got: FileProfile, root: Path, lo: datetime | None, hi: datetime | None):
    rows = oce.load(str(root), endpoint="e", deployment="d", collection="model_inputs",
                    start=lo, end=hi)
    assert got.rows == len(rows) > 0
    age = got.columns["age"]
    assert (age.count, age.nulls) == (rows["age"].notna().sum(), rows["age"].isna().sum())
    assert (age.minimum, age.maximum) == (rows["age"].min(), rows["age"].max())
    assert age.moments.mean == pytest.approx(rows["age"].mean(), rel=1e-12)
    assert got.columns["region"].frequent.counts == rows["region"].value_counts().to_dict()


def test_an_aligned_window_is_answered_by_profiles_alone(tmp_path: Path):
    write_hours(tmp_path)
    storage = LocalStorage(str(tmp_path))
    lo, hi = START + timedelta(hours=1), START + timedelta(hours=3)
    got = window_profile(storage, "e", "d", "model_inputs", lo, hi)
    assert (got.from_profiles, got.from_rows, dict(got.skipped)) == (2, 0, {})
    assert_same_as_rows(got.profile, tmp_path, lo, hi)


def test_a_window_cutting_an_hour_reads_that_hour_rows(tmp_path: Path):
    write_hours(tmp_path)
    storage = LocalStorage(str(tmp_path))
    lo, hi = START + timedelta(minutes=30), START + timedelta(hours=2, minutes=15)
    got = window_profile(storage, "e", "d", "model_inputs", lo, hi)
    assert (got.from_profiles, got.from_rows) == (1, 2)
    assert got.skipped == {"window_cuts_the_file": 2}
    assert_same_as_rows(got.profile, tmp_path, lo, hi)


HOSTILE_PROFILES = [
    b'{"format": "otel-collector-ext/profile", "version": 1, "rows": 1e999',
    b'{"format": "otel-collector-ext/profile", "version": 1, "rows": "many", "columns": []}',
    b"[" * 50_000,
    b"\xff\xfe not even text",
]


@pytest.mark.parametrize("damage", range(len(HOSTILE_PROFILES)))
def test_damaged_stale_and_missing_profiles_fall_back_to_rows(tmp_path: Path, damage: int):
    write_hours(tmp_path)
    profiles = sorted(tmp_path.rglob("*" + PROFILE_SUFFIX))
    profiles[0].write_bytes(HOSTILE_PROFILES[damage])
    profiles[1].unlink()
    stale = FileProfile.from_json(profiles[2].read_bytes())
    stale.file_bytes -= 1
    profiles[2].write_text(stale.to_json())
    storage = LocalStorage(str(tmp_path))
    got = window_profile(storage, "e", "d", "model_inputs")
    assert got.skipped == {"invalid": 1, "missing": 1, "stale": 1}
    assert (got.from_profiles, got.from_rows) == (1, 3)
    assert_same_as_rows(got.profile, tmp_path, None, None)
