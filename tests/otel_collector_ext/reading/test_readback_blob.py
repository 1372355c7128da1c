"""Read-back from Azure Blob (Azurite): the data set written through the pipeline to Blob
and read back with the pandas path, the Dask path (adlfs) and the CLI."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pytest

import otel_collector_ext as oce
from exporters.storage import open_storage
from otel_collector_ext.cli.main import main
from otel_collector_ext.reading.readback import ReadWarning
from tests.support.readback_data import DataSet, blocks_of, build

if TYPE_CHECKING:
    from tests.support.azurite import Azurite

pytest_plugins = ["tests.support.azurite"]  # fixtures: azurite, container_name

D2 = datetime(2026, 3, 2, tzinfo=UTC)


@pytest.fixture(scope="module")
def on_blob(azurite: Azurite) -> tuple[DataSet, dict[str, str]]:
    options = {"connection_string": azurite.connection_string}
    dest = "az://readback/collected"
    return build(dest, {**options, "spool": False}, hours=8), options


def rows(frame: object) -> list[tuple]:
    return sorted(zip(frame["_correlation_id"], frame["_row"], frame["x"].astype(int), strict=True))  # type: ignore[index]


def test_round_trip_and_ranges_through_azurite(on_blob: tuple[DataSet, dict[str, str]]) -> None:
    data, options = on_blob
    kw = {"endpoint": "ep", "deployment": "blue", "storage_options": options}
    frame = oce.load(str(data.root), collection="model_inputs", **kw)
    assert rows(frame) == sorted(data.input_rows())
    assert str(frame["amount"].dtype) == "float64" and frame["segment"].isna().any()
    lo, hi = D2, D2 + timedelta(hours=3)
    # The exporter's own storage options work as they are: write-only ones are dropped.
    writer_options = {**options, "spool": True, "spool_dir": "/nonexistent", "mode": "append"}
    part = oce.load(str(data.root), collection="model_inputs", start=lo, end=hi,
                    **{**kw, "storage_options": writer_options})
    assert rows(part) == sorted(data.input_rows(lo, hi))
    joined = oce.join_inputs_outputs(str(data.root), start=lo, end=hi, **kw)
    assert rows(joined) == sorted(data.input_rows(lo, hi))
    assert (joined["y"] == joined["x"] * 0.5).all() and joined["response_status"].notna().all()


def test_dask_reads_blob_through_adlfs(on_blob: tuple[DataSet, dict[str, str]]) -> None:
    data, options = on_blob
    kw = {"endpoint": "ep", "deployment": "blue", "collection": "model_inputs",
          "storage_options": options, "start": D2 - timedelta(hours=1), "end": D2 + timedelta(hours=4)}
    lazy = oce.load(str(data.root), engine="dask", **kw)
    eager = oce.load(str(data.root), **kw)
    assert lazy.npartitions == 5
    got = lazy.compute().reset_index(drop=True)
    assert rows(got) == rows(eager) and list(got.columns) == list(eager.columns)
    assert list(got.dtypes) == list(eager.dtypes)


def test_cli_on_blob_and_damaged_or_foreign_blobs(
    on_blob: tuple[DataSet, dict[str, str]], azurite: Azurite, capsys: pytest.CaptureFixture[str]
) -> None:
    data, options = on_blob
    assert main(["ls", "-d", str(data.root), "--connection-string", options["connection_string"],
                 "--rows", "--json"]) == 0
    entries = {e["collection"]: e for e in json.loads(capsys.readouterr().out)
               if e["deployment"] == "blue"}
    assert entries["model_inputs"]["rows"] == len(data.input_rows())
    assert entries["request"]["rows"] == len(data.calls)

    # A copy of the inputs in another container, plus a truncated blob and a foreign one.
    src = open_storage(str(data.root), spool=False, **options)
    dst = open_storage("az://damaged/collected", spool=False, **options)
    try:
        lost = 0
        for info in src.list("ep/blue/model_inputs/2026/03/02/"):
            blob = src.read(info.path)
            if info.path.endswith("/05/test-instance.0000.avro"):
                offset, size, lost = blocks_of(blob)[-1]
                blob = blob[: offset + size // 2]
            dst.put(info.path, blob)
        dst.put("ep/blue/model_inputs/2026/03/02/05/other.avro", b"plain text, not Avro")
        assert lost > 0
    finally:
        src.close()
        dst.close()
    with pytest.warns(ReadWarning) as caught:
        frame = oce.load("az://damaged/collected", endpoint="ep", deployment="blue",
                         collection="model_inputs", storage_options=options)
    messages = [str(w.message) for w in caught]
    assert any("05/test-instance.0000.avro: truncated" in m for m in messages), messages
    assert any("05/other.avro: not an Avro container" in m for m in messages), messages
    assert len(frame) == len(data.input_rows(D2, D2 + timedelta(days=1))) - lost

