"""`load(..., engine="dask")`: lazy, one Dask partition per storage partition, same rows."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

from otel_collector_ext.reading.readback import ReadWarning
from tests.support.readback_data import DataSet, load

pytest_plugins = ["tests.support.readback_fixtures"]


def same_rows(lazy: object, eager: pd.DataFrame) -> None:
    got = lazy.compute().reset_index(drop=True)  # type: ignore[attr-defined]
    assert list(lazy.dtypes) == list(eager.dtypes)  # known before anything is computed
    pd.testing.assert_frame_equal(got, eager)


@pytest.mark.parametrize("collection", ["model_inputs", "request"])
def test_dask_gives_the_same_rows_as_pandas(collected: DataSet, collection: str) -> None:
    lazy = load(collected.root, collection, engine="dask")
    assert lazy.npartitions == 28  # one per hourly partition
    same_rows(lazy, load(collected.root, collection))


def test_dask_time_range_and_aggregation(collected: DataSet) -> None:
    lo, hi = datetime(2026, 3, 1, 23, 30, tzinfo=UTC), datetime(2026, 3, 2, 2, tzinfo=UTC)
    lazy = load(collected.root, "model_inputs", start=lo, end=hi, engine="dask")
    assert lazy.npartitions == 3
    eager = load(collected.root, "model_inputs", start=lo, end=hi)
    same_rows(lazy, eager)
    sums = lazy.groupby("city")["x"].sum().compute().sort_index()
    expected = eager.groupby("city")["x"].sum().sort_index()
    assert sums.to_dict() == expected.to_dict()


def test_dask_reads_damaged_files_like_pandas(collected: DataSet, tmp_path: Path) -> None:
    root = tmp_path / "copy"
    shutil.copytree(collected.root, root)
    victim = sorted((root / "ep/blue/model_outputs").rglob("*.avro"))[3]
    victim.write_bytes(victim.read_bytes()[:-20])
    with pytest.warns(ReadWarning, match="truncated"):
        eager = load(root, "model_outputs")
    with pytest.warns(ReadWarning, match="truncated"):
        same_rows(load(root, "model_outputs", engine="dask"), eager)
    assert len(eager) < len(collected.input_rows())
