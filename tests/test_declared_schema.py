"""Declared schemas: a collection's columns and types given in configuration or in code are
authoritative. Values are cast to them, what cannot be cast is counted, and every writer
(replicas, `serve`) writes the same schema with no coordination."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import fastavro
import pandas as pd
import pytest

import otel_collector_ext as oce
from exporters import contract as A
from exporters.avro.declared_schema import MAX_COLUMNS, parse_declared
from exporters.avro.exporter import AvroLogExporter
from exporters.avro.schema import fingerprint
from exporters.avro.schema_store import read_latest, read_versions
from exporters.avro.tabular import declared_schema
from otel_collector_ext import Collector
from otel_collector_ext.pipeline.config import ConfigError, parse_config
from tests.conftest import ROOT, python_env
from tests.exporters.avro.test_avro_exporter import records
from tests.support.schema_helpers import (
    PREFIX,
    export_batches,
    field_types,
    file_schemas,
    oce_storage,
)
from tests.support.service_process import ServeProcess

DECLARED = {"age": "int", "income": "double", "segment": "string", "signup": "timestamp",
            "seen": "local_timestamp", "day": "date", "flag": "boolean", "n": "long"}


def _config_error(schema: Any) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_config({"data_collector": {"collections": {"rows": {"schema": schema}}}})
    return str(caught.value)


# --- the declaration itself ----------------------------------------------------------

def test_configuration_declares_a_schema_in_both_forms_and_azure_deployment_yaml() -> None:
    config = parse_config({"data_collector": {"collections": {"rows": {"schema": {
        "age": "int", "income": {"type": "double"}, "flag": "bool", "who": "str"}}}}})
    assert config.collection("rows").schema.as_dict() == {
        "age": "int", "income": "double", "flag": "boolean", "who": "string"}
    azure = parse_config({"$schema": "https://azuremlschemas/managedOnlineDeployment.schema.json",
                          "name": "blue", "endpoint_name": "ep", "data_collector": {
                              "collections": {"model_inputs": {"enabled": "True",
                                                               "schema": {"age": "long"}}}}})
    assert azure.collection("model_inputs").schema.as_dict() == {"age": "long"}
    assert parse_config({}).collection("rows").schema is None


@pytest.mark.parametrize(("schema", "wanted"), [
    ({"age": "integr"}, "data_collector.collections.rows.schema.age: unknown type 'integr' "
                        "(did you mean int"),
    ({1: "int"}, "data_collector.collections.rows.schema: column names must be strings"),
    ({"_time": "timestamp"}, "data_collector.collections.rows.schema._time: '_time' is reserved"),
    ({}, "data_collector.collections.rows.schema is empty"),
    ({f"c{i}": "int" for i in range(MAX_COLUMNS + 1)},
     f"data_collector.collections.rows.schema declares {MAX_COLUMNS + 1} columns; at most"),
    ({"age": {"type": "int", "nullable": False}},
     "data_collector.collections.rows.schema.age.nullable: every column is nullable"),
    ({"age": {"kind": "int"}}, "data_collector.collections.rows.schema.age: unknown key kind"),
    ({"age": ["int"]}, "data_collector.collections.rows.schema.age: the type must be a type name"),
    (["age"], "data_collector.collections.rows.schema must be a mapping"),
])
def test_a_bad_declaration_is_a_config_error_naming_the_key(schema: Any, wanted: str) -> None:
    assert wanted in _config_error(schema)


def test_the_declared_schema_depends_on_the_declaration_alone() -> None:
    schema = declared_schema(parse_declared(DECLARED), "rows")
    fastavro.parse_schema(schema)
    assert field_types(schema) == {
        "age": ["null", "int"], "income": ["null", "double"], "segment": ["null", "string"],
        "signup": ["null", {"type": "long", "logicalType": "timestamp-micros"}],
        "seen": ["null", {"type": "long", "logicalType": "local-timestamp-micros"}],
        "day": ["null", {"type": "int", "logicalType": "date"}],
        "flag": ["null", "boolean"], "n": ["null", "long"]}
    # Name order; odd names are sanitised as inferred columns are, and keep their original name.
    odd = declared_schema(parse_declared({"my col": "int", "2x": "string"}), "rows")
    assert [(f["name"], f["originalName"]) for f in odd["fields"][6:]] == [
        ("_2x", "2x"), ("my_col", "my col")]


# --- casting ---------------------------------------------------------------------------

CASES = [  # (value, declared type, stored value or None for a cast failure)
    (7, "int", 7), (7.0, "int", 7), (" 42 ", "int", 42), (2.5, "int", None),
    (2**40, "int", None), (2**40, "long", 2**40), (True, "long", None), ("x", "long", None),
    (3, "double", 3.0), ("2000.5", "double", 2000.5), (False, "double", None),
    (1e39, "float", None), (1, "boolean", True), ("false", "boolean", False),
    ("yes", "boolean", None), (2, "boolean", None),
    (5, "string", "5"), (2.5, "string", "2.5"), (True, "string", "true"), ([1, 2], "string", "[1,2]"),
    ("é", "bytes", "é".encode()), (3, "bytes", None),
    (dt.date(2024, 1, 2), "date", dt.date(2024, 1, 2)), ("2024-01-02", "date", dt.date(2024, 1, 2)),
    (dt.datetime(2024, 1, 2), "date", dt.date(2024, 1, 2)), (dt.datetime(2024, 1, 2, 3), "date", None),
    (dt.datetime(2024, 1, 2, 3), "timestamp", dt.datetime(2024, 1, 2, 3, tzinfo=dt.UTC)),
    ("2024-01-02T03:00:00+01:00", "timestamp", dt.datetime(2024, 1, 2, 2, tzinfo=dt.UTC)),
    (pd.Timestamp("2024-01-02 03:00", tz="Europe/Paris"), "local_timestamp",
     dt.datetime(2024, 1, 2, 2)),
    (dt.date(2024, 1, 2), "local_timestamp", dt.datetime(2024, 1, 2)), (5, "timestamp", None),
    ("soon", "local_timestamp", None),
]


def test_values_are_cast_to_the_declared_types_and_failures_counted(tmp_path: Path) -> None:
    rows = [{f"c{i}": value} for i, (value, _, _) in enumerate(CASES)]
    schema = {f"c{i}": type_name for i, (_, type_name, _) in enumerate(CASES)}
    exporter = AvroLogExporter(str(tmp_path), instance_id="i", schemas={"rows": schema})
    exporter.export(records(rows, A.KIND_ROW))
    exporter.shutdown()
    got: dict[str, Any] = {}
    for path in sorted(tmp_path.rglob("*.avro")):
        with open(path, "rb") as f:
            for record in fastavro.reader(f):
                got.update({k: v for k, v in record.items() if v is not None})
    for i, (value, type_name, wanted) in enumerate(CASES):
        assert got.get(f"c{i}") == wanted, (value, type_name)
        failed = exporter.tally.get("values.cast_failed", collection="rows", column=f"c{i}")
        assert failed == (wanted is None), (value, type_name)
    assert exporter.tally.get("records.written") == len(CASES)


def test_a_whole_frame_is_cast_column_by_column(tmp_path: Path) -> None:
    frame = pd.DataFrame({"income": [2000, 2001, None], "age": [30.0, 31.5, 32.0],
                          "extra": ["a", None, "c"], "flag": [True, None, False]})
    exporter = AvroLogExporter(str(tmp_path), instance_id="i",
                               schemas={"rows": {"age": "int", "income": "double", "flag": "bool",
                                                 "segment": "string"}})
    exporter.export(records([frame], A.KIND_DATAFRAME))
    exporter.shutdown()
    back = oce.load(str(tmp_path), endpoint="e", deployment="d", collection="rows")
    assert list(back.columns[6:]) == ["age", "flag", "income", "segment"]  # name order
    assert back["age"].tolist() == [30, pd.NA, 32] and str(back["age"].dtype) == "Int32"
    assert back["income"].tolist()[:2] == [2000.0, 2001.0] and pd.isna(back["income"][2])
    assert back["flag"].tolist() == [True, pd.NA, False]
    assert back["segment"].isna().all()  # declared, absent from the data: null
    assert exporter.tally.get("values.cast_failed", column="age") == 1
    # The values of a column the declaration does not name are counted, not stored.
    assert exporter.tally.get("values.undeclared", collection="rows", column="extra") == 2


def test_the_declared_schema_holds_whatever_the_data_and_the_history(tmp_path: Path) -> None:
    # The collection was written with inferred types first (income long), then declared.
    export_batches(tmp_path, [[{"income": 1, "label": "a"}]])
    exporter = AvroLogExporter(str(tmp_path), instance_id="j",
                               schemas={"rows": {"income": "double", "flag": "boolean"}})
    for batch in ([{"income": 2, "flag": True}], [{"income": "3.5", "flag": None}],
                  [{"income": None, "flag": "1"}], [{"flag": False, "label": "b"}]):
        recs = records(batch, A.KIND_ROW)
        exporter.export(recs)
    exporter.shutdown()
    schemas = file_schemas(tmp_path)
    declared = declared_schema(parse_declared({"income": "double", "flag": "boolean"}), "rows")
    assert len(schemas) == 2  # every declared batch went to one file, of one schema
    assert field_types(schemas[1]) == field_types(declared)
    storage = oce_storage(tmp_path)
    versions = read_versions(storage, PREFIX)
    assert len(versions) == 2 and declared in versions
    reader = read_latest(storage, PREFIX)  # reads both histories by Avro resolution
    assert field_types(reader)["income"] == ["null", "double"]
    incomes = []
    for path in sorted(tmp_path.rglob("*.avro")):
        with open(path, "rb") as f:
            incomes += [r["income"] for r in fastavro.reader(f, reader_schema=reader)]
    assert incomes == [1.0, 2.0, 3.5, None, None]


def test_collector_schema_argument_travels_with_the_records(tmp_path: Path) -> None:
    oce.configure({"endpoint": "e", "deployment": "d", "instance_id": "i",
                   "exporter": {"type": "avro", "destination": str(tmp_path)},
                   "data_collector": {"collections": {
                       "rows": {"schema": {"age": "long"}},  # the argument takes precedence
                       "other": {"schema": {"score": "double"}}, "raw": {}}}})
    try:
        Collector(name="rows", schema={"age": "int", "income": "double"}).collect(
            pd.DataFrame({"age": [1, 2**40], "income": ["1.5", "n/a"]}))
        Collector(name="other").collect({"score": 1})
        Collector(name="raw").collect({"score": 1})
        assert oce.flush()
        counts = oce.stats()
    finally:
        oce.shutdown()
    assert counts["exporter.values.cast_failed{collection=rows,column=age}"] == 1
    assert counts["exporter.values.cast_failed{collection=rows,column=income}"] == 1
    storage = oce_storage(tmp_path)
    assert field_types(read_latest(storage, PREFIX)) == {"age": ["null", "int"],
                                                        "income": ["null", "double"]}
    assert field_types(read_latest(storage, "e/d/other/")) == {"score": ["null", "double"]}
    assert field_types(read_latest(storage, "e/d/raw/")) == {"score": ["null", "long"]}
    errors: list[Exception] = []
    Collector(name="rows", schema={"age": "integer"}, on_error=errors.append)
    assert "schema.age: unknown type 'integer'" in str(errors[0])


def test_a_record_with_a_broken_declaration_is_dropped_and_counted(tmp_path: Path) -> None:
    recs = records([{"a": 1}, {"a": 2}], A.KIND_ROW)
    recs[0].log_record.attributes = {**recs[0].log_record.attributes, A.SCHEMA: '{"a": "nope"}'}
    exporter = AvroLogExporter(str(tmp_path), instance_id="i")
    exporter.export(recs)
    exporter.shutdown()
    assert exporter.tally.get("records.dropped", reason="conversion_failed") == 1
    assert exporter.tally.get("records.written") == 1
    with pytest.raises(ValueError, match=r"schemas\.rows\.a: unknown type 'nope'"):
        AvroLogExporter(str(tmp_path), schemas={"rows": {"a": "nope"}})


# --- two writers, no coordination ------------------------------------------------------

def _send(tmp: Path, name: str, plan: dict[str, Any]) -> dict[str, Any]:
    path = tmp / f"{name}.json"
    path.write_text(json.dumps(plan))
    done = subprocess.run([sys.executable, "-m", "tests.support.send_rows", str(path)], cwd=ROOT,
                          env=python_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout.splitlines()[-1])


def test_serve_and_an_in_process_writer_write_byte_identical_schemas(tmp_path: Path) -> None:
    """Process `a` declares in code and writes in-process; `b` sends undeclared rows over
    OTLP to `serve`, whose configuration declares the collection; `c` declares in code and
    sends over OTLP for a collection `serve` does not declare."""
    root = tmp_path / "collected"
    declared = {"income": "double", "age": "int", "flag": "boolean", "label": "string"}
    ints = [{"income": 2000 + i, "age": 30 + i, "flag": True, "label": "a"} for i in range(5)]
    # The other writer's data would infer other types: floats, text, a new column, nulls.
    mixed = [{"income": 2000.5, "age": None, "flag": "0", "label": 7, "extra": 1},
             {"income": "3000", "age": "41", "flag": None, "label": None, "extra": None},
             {"income": "n/a", "age": 4.5, "flag": 1, "label": "b", "extra": 2}]
    serve = ServeProcess(tmp_path, root, exporter={"schemas": {"rows": declared}})
    try:
        serve.wait_ready()
        otlp = {"type": "otlp", "endpoint": f"http://127.0.0.1:{serve.http[1]}",
                "protocol": "http/protobuf", "timeout": 30}
        run = {"deployment": "d", "batch": 2, "flush_after": [0]}
        _send(tmp_path, "served", {"exporter": otlp, "instance_id": "b",
                                   "runs": [{**run, "rows": mixed}]})
        # A collection serve does not declare: the declaration travels with the records.
        _send(tmp_path, "carried", {"exporter": otlp, "instance_id": "c", "schema": declared,
                                    "collection": "carried", "runs": [{**run, "rows": mixed}]})
        local = _send(tmp_path, "local", {
            "exporter": {"type": "avro", "destination": str(root)}, "instance_id": "a",
            "schema": declared, "runs": [{**run, "rows": ints}]})
        serve.sigterm()
        assert serve.wait() == 0, serve.log()
    finally:
        serve.kill()
    assert not any("cast_failed" in k for k in local["stats"])
    files = sorted((root / "ep/d/rows").rglob("*.avro"))
    assert sorted(p.name[0] for p in files) == ["a", "b"]  # both writers wrote
    headers = set()
    for path in files:
        with open(path, "rb") as f:
            headers.add(fastavro.reader(f).metadata["avro.schema"])
    assert len(headers) == 1  # the schema in every file header: the same bytes
    want = declared_schema(parse_declared(declared), "rows")
    assert field_types(json.loads(headers.pop())) == field_types(want)
    versions = sorted(p.name for p in (root / "ep/d/rows/_schema").iterdir())
    assert versions == sorted([f"{fingerprint(want)}.avsc", "latest.avsc"])
    back = oce.load(str(root), endpoint="ep", deployment="d", collection="rows")
    back = back.sort_values("_correlation_id").reset_index(drop=True)
    assert back["_correlation_id"].tolist() == [f"a-{i:04d}" for i in range(5)] + [
        f"b-{i:04d}" for i in range(3)]
    assert back["income"].tolist()[:7] == [2000.0, 2001.0, 2002.0, 2003.0, 2004.0, 2000.5, 3000.0]
    assert pd.isna(back["income"][7])
    assert back["age"].tolist()[5:] == [pd.NA, 41, pd.NA]
    assert back["flag"].tolist()[5:] == [False, pd.NA, True]
    assert back["label"].fillna("-").tolist()[5:] == ["7", "-", "b"]
    assert "extra" not in back.columns
    carried = oce.load(str(root), endpoint="ep", deployment="d", collection="carried")
    assert field_types(read_latest(oce_storage(root), "ep/d/carried/")) == field_types(want)
    pd.testing.assert_frame_equal(carried.iloc[:, 6:].sort_index(axis=1),
                                  back.iloc[5:, 6:].reset_index(drop=True).sort_index(axis=1))
