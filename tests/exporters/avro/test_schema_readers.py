"""Other readers read every file of a collection with its published schema: Apache Avro's
Java implementation (what Spark uses; Debian's libavro-java), fastavro, polars."""

from __future__ import annotations

import datetime as dt
import io
import json
import subprocess
from pathlib import Path
from typing import Any

import fastavro
import pandas as pd
import polars as pl
import pytest

from exporters import contract as A
from exporters.avro.exporter import AvroLogExporter
from tests.exporters.avro.test_avro_exporter import records
from tests.support.schema_helpers import (
    PREFIX,
    export_batches,
    field_types,
    file_schemas,
    read_back,
)

JAVA_LIB = Path("/usr/share/java")
JARS = ["avro", "jackson-core-asl", "jackson-mapper-asl", "commons-compress", "xz",
        "snappy-java", "slf4j-api", "slf4j-nop", "paranamer"]

# Reads each file named after the schema with that reader schema (Avro schema resolution)
# and prints each record as JSON (GenericRecord.toString).
READER_JAVA = """
import java.io.File;
import org.apache.avro.Schema;
import org.apache.avro.file.DataFileReader;
import org.apache.avro.generic.GenericDatumReader;
import org.apache.avro.generic.GenericRecord;

public class ReadWithSchema {
    public static void main(String[] args) throws Exception {
        Schema reader = new Schema.Parser().parse(new File(args[0]));
        for (int i = 1; i < args.length; i++) {
            GenericDatumReader<GenericRecord> datum = new GenericDatumReader<>(null, reader);
            try (DataFileReader<GenericRecord> file = new DataFileReader<>(new File(args[i]), datum)) {
                for (GenericRecord record : file) System.out.println(record);
            }
        }
    }
}
"""

# The traffic the collector sees when requests are thin: one record per flush, a value
# now int, now float, now missing; a flag sometimes None; a column appearing later; a
# string where a number was.
ROWS: list[dict[str, Any]] = [
    {"income": 2000, "flag": True, "label": None},
    {"income": 2000.5, "flag": None, "label": "a"},
    {"income": None, "flag": False, "label": None},
    {"income": 3000, "flag": True, "label": "b", "age": 41},
    {"income": "n/a", "flag": None, "label": "c", "age": None},
    {"income": 3000.5, "flag": True, "label": None, "age": 7},
]


@pytest.fixture(scope="module")
def java_reader(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """The command that runs the compiled reader (compiled once for the module)."""
    missing = [j for j in JARS if not (JAVA_LIB / f"{j}.jar").exists()]
    assert not missing, f"libavro-java is not installed (scripts/test installs it): {missing}"
    build = tmp_path_factory.mktemp("java")
    (build / "ReadWithSchema.java").write_text(READER_JAVA)
    classpath = ":".join([str(build), *(str(JAVA_LIB / f"{j}.jar") for j in JARS)])
    subprocess.run(["javac", "-nowarn", "-cp", classpath, "-d", str(build),
                    str(build / "ReadWithSchema.java")], check=True, timeout=120)
    return ["java", "-cp", classpath, "ReadWithSchema"]


def _collection(root: Path, codec: str) -> tuple[Path, list[Path]]:
    export_batches(root, [[row] for row in ROWS], codec=codec)
    files = sorted(root.rglob("*.avro"))
    return root / PREFIX / "_schema" / "latest.avsc", files


@pytest.mark.parametrize("codec", ["null", "deflate", "snappy"])
def test_java_reads_every_file_with_the_newest_schema(tmp_path: Path, java_reader: list[str],
                                                      codec: str) -> None:
    latest, files = _collection(tmp_path, codec)
    assert len(files) >= 3  # the schema did change along the way
    assert len({json.dumps(s, sort_keys=True) for s in file_schemas(tmp_path)}) == len(files)
    out = subprocess.run([*java_reader, str(latest), *map(str, files)], check=True,
                         capture_output=True, text=True, timeout=120).stdout
    got = [json.loads(line) for line in out.splitlines()]
    assert [r["_correlation_id"] for r in got] == [f"id-{i:05d}" for i in range(len(ROWS))]
    # Resolved to the newest types: every income a double (or null), ages longs.
    assert [r["income"] for r in got] == [2000.0, 2000.5, None, 3000.0, None, 3000.5]
    assert [r["income__mismatch"] for r in got] == [None] * 4 + ['"n/a"', None]
    assert [r["age"] for r in got] == [None, None, None, 41, None, 7]
    assert [r["flag"] for r in got] == [True, None, False, True, None, True]
    assert [r["label"] for r in got] == [None, "a", None, "b", "c", None]


def test_java_and_polars_cannot_read_zstandard_files_as_documented(
        tmp_path: Path, java_reader: list[str]) -> None:
    latest, files = _collection(tmp_path, "zstandard")
    refused = subprocess.run([*java_reader, str(latest), str(files[0])], capture_output=True,
                             text=True, timeout=120)
    assert refused.returncode != 0 and "zstandard" in refused.stderr, refused.stderr[-2000:]
    with pytest.raises(pl.exceptions.ComputeError, match="unsupported Avro codec"):
        pl.read_avro(files[0])


@pytest.mark.parametrize("codec", ["null", "deflate", "snappy", "zstandard"])
def test_fastavro_and_load_read_every_file_with_the_newest_schema(tmp_path: Path,
                                                                  codec: str) -> None:
    latest, files = _collection(tmp_path, codec)
    reader = json.loads(latest.read_text())
    got = []
    for path in files:
        with open(path, "rb") as f:
            got += list(fastavro.reader(f, reader_schema=reader))
    assert [r["income"] for r in got] == [2000.0, 2000.5, None, 3000.0, None, 3000.5]
    back = read_back(tmp_path)
    assert str(back["income"].dtype) == "float64" and str(back["age"].dtype) == "Int64"
    assert str(back["flag"].dtype) == "boolean"
    assert back["flag"].isna().tolist() == [False, True, False, False, True, False]


def polars_schema(avro_schema: dict[str, Any]) -> pl.Schema:
    """The polars schema of an Avro schema: polars reads an empty file written with it."""
    buffer = io.BytesIO()
    fastavro.writer(buffer, fastavro.parse_schema(avro_schema), [])
    buffer.seek(0)
    return pl.read_avro(buffer).schema


@pytest.mark.parametrize("codec", ["null", "deflate", "snappy"])
def test_polars_concatenates_the_files_vertically_with_the_published_schema(
        tmp_path: Path, codec: str) -> None:
    latest, files = _collection(tmp_path, codec)
    target = polars_schema(json.loads(latest.read_text()))
    frames = [pl.read_avro(path) for path in files]
    with pytest.raises(pl.exceptions.PolarsError):  # the files differ in types and columns
        pl.concat(frames, how="vertical")
    # The recipe of docs/reading.md: every file to the published schema, then plain vertical.
    aligned = [f.select([pl.col(n).cast(t) if n in f.columns else pl.lit(None, t).alias(n)
                         for n, t in target.items()]) for f in frames]
    frame = pl.concat(aligned, how="vertical")
    assert frame["income"].dtype == pl.Float64 and frame["age"].dtype == pl.Int64
    assert frame["income"].to_list() == [2000.0, 2000.5, None, 3000.0, None, 3000.5]
    assert frame["flag"].to_list() == [True, None, False, True, None, True]
    assert frame["_time"].dtype == pl.Datetime("us", "UTC")


def test_files_of_one_schema_concatenate_vertically_as_they_are(tmp_path: Path) -> None:
    export_batches(tmp_path, [[{"income": 1.5, "flag": True}], [{"income": 2, "flag": None}],
                              [{"income": None, "flag": False}]])
    schemas = file_schemas(tmp_path)
    assert len(schemas) == 1 and field_types(schemas[0])["income"] == ["null", "double"]
    frame = pl.concat([pl.read_avro(p) for p in sorted(tmp_path.rglob("*.avro"))],
                      how="vertical")
    assert frame["income"].to_list() == [1.5, 2.0, None]


def test_naive_and_aware_datetimes_read_back_right_in_polars_and_load(tmp_path: Path) -> None:
    naive = [dt.datetime(2026, 1, 1, 10, 0), None, dt.datetime(2026, 7, 1, 23, 59, 59, 5)]
    paris = pd.Series(pd.to_datetime(["2026-01-01 10:00", None, "2026-07-01 10:00"])
                      ).dt.tz_localize("Europe/Paris")
    frame = pd.DataFrame({"local": pd.to_datetime(naive), "paris": paris,
                          "objects": pd.Series(naive, dtype=object)})
    exporter = AvroLogExporter(str(tmp_path), instance_id="i")
    exporter.export(records([frame], A.KIND_DATAFRAME))
    exporter.shutdown()
    (path,) = tmp_path.rglob("*.avro")
    types = {name: t[1]["logicalType"] for name, t in field_types(file_schemas(tmp_path)[0]).items()}
    assert types == {"local": "local-timestamp-micros", "paris": "timestamp-micros",
                     "objects": "local-timestamp-micros"}
    polars_frame = pl.read_avro(path)
    assert polars_frame["local"].dtype == pl.Datetime("us")  # wall time, no zone
    assert polars_frame["local"].to_list() == naive
    assert polars_frame["objects"].to_list() == naive
    assert polars_frame["paris"].dtype == pl.Datetime("us", "UTC")  # the instant
    assert polars_frame["paris"][0] == dt.datetime(2026, 1, 1, 9, 0, tzinfo=dt.UTC)
    back = read_back(tmp_path)
    pd.testing.assert_series_equal(back["local"], frame["local"].astype("datetime64[us]")
                                   if back["local"].dtype == "datetime64[us]" else frame["local"],
                                   check_names=False)
    assert str(back["paris"].dt.tz) == "Europe/Paris"
    assert back["paris"][2] == paris[2]
    assert back["objects"].tolist()[0] == naive[0] and back["objects"].tolist()[2] == naive[2]
