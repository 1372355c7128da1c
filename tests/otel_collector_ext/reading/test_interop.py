"""Our files in other readers: fastavro, the reference avro package, polars; our counts agree.

Engines such as Spark read the same container files with the writer schema; the
extra field attributes (originalName, pandasDtype, ...) are ignored by them.
"""

from __future__ import annotations

import avro.datafile
import avro.io
import fastavro
import polars as pl

from exporters.avro.reading import count_records, read_tolerant
from exporters.avro.schema import META_SHAPE, SHAPE_TABULAR
from tests.support.readback_data import DataSet, load

pytest_plugins = ["tests.support.readback_fixtures"]


def test_every_file_reads_the_same_in_fastavro_and_the_reference_avro(collected: DataSet) -> None:
    files = sorted(collected.root.rglob("*.avro"))
    assert len(files) > 100
    for path in files:
        data = path.read_bytes()
        with open(path, "rb") as f:
            ours = [dict(r) for r in fastavro.reader(f)]
        with avro.datafile.DataFileReader(open(path, "rb"), avro.io.DatumReader()) as reader:
            reference = list(reader)
            assert reader.get_meta(META_SHAPE).decode() in ("tabular", "payload")
        assert len(reference) == len(ours) == count_records(data)[0]
        assert [r["_correlation_id"] for r in reference] == [r["_correlation_id"] for r in ours]
        assert read_tolerant(data).records == ours


def test_polars_reads_the_tabular_files(collected: DataSet) -> None:
    files = [p for p in sorted((collected.root / "ep/blue/model_inputs").rglob("*.avro"))
             if read_tolerant(p.read_bytes()).header.shape == SHAPE_TABULAR]
    frame = pl.concat([pl.read_avro(p) for p in files], how="diagonal_relaxed")
    assert frame.schema["_time"] == pl.Datetime("us", "UTC")
    ours = load(collected.root, "model_inputs")
    assert sorted(frame["x"].to_list()) == sorted(ours["x"].tolist())
    by_x = dict(zip(frame["x"].to_list(), frame["amount"].to_list(), strict=True))
    assert all(by_x[x] == a for x, a in zip(ours["x"], ours["amount"], strict=True))
    assert frame["segment"].null_count() == int(ours["segment"].isna().sum())


def test_polars_reads_the_payload_files(collected: DataSet) -> None:
    files = [p for p in sorted(collected.root.rglob("*.avro"))
             if read_tolerant(p.read_bytes()).header.shape == "payload"]
    assert files, "the data set has request/response payload files"
    frame = pl.concat([pl.read_avro(p) for p in files], how="diagonal_relaxed")
    assert len(frame) == sum(count_records(p.read_bytes())[0] for p in files)
    assert frame.schema["headers"] == pl.List(pl.Struct({"name": pl.String, "value": pl.String}))
