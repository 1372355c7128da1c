"""The DuckDB recipe of docs/reading.md, run as written there, on files this project wrote:
every file of a collection read with its published schema, for the codecs DuckDB reads;
zstandard files are refused, as documented."""

from __future__ import annotations

import datetime as dt
import re
import shutil
from pathlib import Path
from typing import Any

import duckdb
import pytest

from exporters import contract as A
from exporters.avro.exporter import AvroLogExporter
from tests.conftest import ROOT
from tests.exporters.avro.test_avro_exporter import T0, records
from tests.exporters.avro.test_schema_readers import ROWS
from tests.support.schema_helpers import PREFIX, export_batches, file_schemas

RECIPE_FOLDER = Path("collected/credit-endpoint/blue/model_inputs")  # the recipe's own path


def recipe() -> str:
    """The Python block of the DuckDB paragraph of docs/reading.md."""
    text = (ROOT / "docs" / "reading.md").read_text(encoding="utf-8")
    duckdb_part = text[text.index("DuckDB (the `avro` extension"):]
    found = re.search(r"```python\n(.*?)```", duckdb_part, re.S)
    assert found is not None, "docs/reading.md has no DuckDB recipe"
    return found.group(1)


def run_recipe(workdir: Path, written: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Put the collection written under `written` where the recipe reads, run the recipe
    there, and return its DuckDB connection (with the view `model_inputs`)."""
    target = workdir / RECIPE_FOLDER
    target.parent.mkdir(parents=True)
    shutil.move(str(written / PREFIX), target)
    monkeypatch.chdir(workdir)
    namespace: dict[str, Any] = {}
    exec(compile(recipe(), "docs/reading.md (DuckDB recipe)", "exec"), namespace)
    return namespace["con"]


def rows(con: Any, columns: str) -> list[tuple[Any, ...]]:
    return con.sql(f"SELECT {columns} FROM model_inputs ORDER BY _correlation_id").fetchall()


def types(con: Any) -> dict[str, str]:
    view = con.sql("SELECT * FROM model_inputs")
    return {name: str(t) for name, t in zip(view.columns, view.types, strict=True)}


@pytest.mark.parametrize("codec", ["null", "deflate", "snappy"])
def test_duckdb_reads_every_file_with_the_published_schema(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, codec: str) -> None:
    written = tmp_path / "written"
    export_batches(written, [[row] for row in ROWS], codec=codec)
    assert len(file_schemas(written)) >= 3  # the schema changed along the way
    con = run_recipe(tmp_path / "work", written, monkeypatch)
    got = types(con)
    assert got["income"] == "DOUBLE" and got["age"] == "BIGINT" and got["flag"] == "BOOLEAN"
    assert got["_time"] == "TIMESTAMP WITH TIME ZONE" and got["income__mismatch"] == "VARCHAR"
    assert rows(con, "income, age, flag, label, income__mismatch") == [
        (2000.0, None, True, None, None), (2000.5, None, None, "a", None),
        (None, None, False, None, None), (3000.0, 41, True, "b", None),
        (None, None, None, "c", '"n/a"'), (3000.5, 7, True, None, None)]
    assert rows(con, "epoch_us(_time)") == [(T0 // 1000,)] * len(ROWS)  # the event times
    # What the recipe works around: a glob is read with the first file's schema only.
    plain = con.sql(f"SELECT * FROM read_avro('{RECIPE_FOLDER}/[0-9]*/*/*/*/*.avro')")
    assert "age" not in plain.columns and str(plain.types[plain.columns.index("income")]) == "BIGINT"
    assert len(plain.fetchall()) == len(ROWS)


def test_duckdb_cannot_read_zstandard_files_as_documented(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    written = tmp_path / "written"
    export_batches(written, [[row] for row in ROWS[:2]], codec="zstandard")
    with pytest.raises(duckdb.InvalidInputException, match="unknown codec"):
        run_recipe(tmp_path / "work", written, monkeypatch)


def test_duckdb_types_a_declared_collection_as_declared(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    written = tmp_path / "written"
    declared = {"age": "int", "score": "float", "day": "date", "signup": "timestamp",
                "seen": "local_timestamp", "blob": "bytes", "segment": "string"}
    exporter = AvroLogExporter(str(written), instance_id="i", schemas={"rows": declared})
    exporter.export(records([
        {"age": 41, "score": 0.5, "day": dt.date(2026, 3, 2), "blob": b"\x00x", "segment": "a",
         "signup": dt.datetime(2026, 3, 2, 10, tzinfo=dt.timezone(dt.timedelta(hours=1))),
         "seen": dt.datetime(2026, 3, 2, 10)},
        {"age": None, "score": "n/a", "day": None, "signup": None, "seen": None, "blob": None,
         "segment": None}], A.KIND_ROW))
    exporter.shutdown()
    con = run_recipe(tmp_path / "work", written, monkeypatch)
    assert {k: v for k, v in types(con).items() if not k.startswith("_")} == {
        "age": "INTEGER", "blob": "BLOB", "day": "DATE", "score": "FLOAT", "seen": "TIMESTAMP",
        "segment": "VARCHAR", "signup": "TIMESTAMP WITH TIME ZONE"}
    assert rows(con, "age, score, day, seen, blob, segment, epoch_us(signup)") == [
        (41, 0.5, dt.date(2026, 3, 2), dt.datetime(2026, 3, 2, 10), b"\x00x", "a",
         int(dt.datetime(2026, 3, 2, 9, tzinfo=dt.UTC).timestamp()) * 1_000_000),
        (None, None, None, None, None, None, None)]
