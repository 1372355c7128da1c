"""Read-back through the Python API: ranges, schemas, joins, damaged and foreign files."""

from __future__ import annotations

import io
import shutil
import threading
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import fastavro
import numpy as np
import pandas as pd
import pytest

import otel_collector_ext as oce
from exporters.storage import LocalStorage, ObjectInfo
from otel_collector_ext import Collector
from otel_collector_ext.reading.catalog import range_prefixes
from otel_collector_ext.reading.readback import ReadWarning, join_inputs_outputs
from tests.conftest import local_config
from tests.support.readback_data import (
    DEPLOYMENT,
    ENDPOINT,
    FIRST_HOUR,
    HOURS,
    NOTE_HOUR,
    SCHEMA_CHANGE,
    DataSet,
    blocks_of,
    load,
)

pytest_plugins = ["tests.support.readback_fixtures"]

D2 = datetime(2026, 3, 2, tzinfo=UTC)


def got_rows(frame: pd.DataFrame) -> list[tuple]:
    return sorted(zip(frame["_correlation_id"], frame["_row"], frame["x"].astype(int), strict=True))


def test_multi_day_multi_schema_round_trip(collected: DataSet) -> None:
    frame = load(collected.root, "model_inputs")
    assert got_rows(frame) == sorted(collected.input_rows())
    days = {p.relative_to(collected.root).parts[3:6] for p in collected.root.rglob("*.avro")
            if "/blue/model_inputs/" in p.as_posix()}
    assert days == {("2026", "03", "01"), ("2026", "03", "02"), ("2026", "03", "03")}
    note_files = list((collected.root / "ep/blue/model_inputs/2026/03/02/12").glob("*.avro"))
    assert len(note_files) == 2  # the schema changed inside the hour: a second file
    # Union of columns, int -> float promotion, nulls where a file lacks a column.
    assert str(frame["x"].dtype) == "int64" and str(frame["amount"].dtype) == "float64"
    before, after = frame["_time"] < SCHEMA_CHANGE, frame["_time"] >= SCHEMA_CHANGE
    assert frame.loc[before, "segment"].isna().all() and frame.loc[after, "segment"].notna().all()
    assert (frame.loc[before, "amount"] % 1 == 0).all() and (frame.loc[after, "amount"] % 1 == 0.5).all()
    noted = frame["note"].notna()
    assert noted.any() and (frame.loc[noted, "_time"].dt.floor("h") == NOTE_HOUR).all()
    assert frame["_time"].is_monotonic_increasing
    assert list(frame.columns[:6]) == ["_correlation_id", "_time", "_row", "_model_version",
                                      "_trace_id", "_span_id"]
    first = collected.calls[0]
    row = frame[frame["_correlation_id"] == first.id].iloc[0]
    assert row["city"] == first.inputs["city"][0] and row["_model_version"] == "7"


RANGES = [
    (D2, D2 + timedelta(hours=3)),  # on the hour: 00:00:00.000000 in, 03:00:00.000000 out
    (FIRST_HOUR + timedelta(minutes=30), D2),  # starts mid-hour, ends at midnight
    (D2 - timedelta(microseconds=1), D2 + timedelta(microseconds=1)),  # two microseconds
    (FIRST_HOUR + timedelta(hours=5), FIRST_HOUR + timedelta(hours=HOURS + 5)),  # past the end
    (datetime(2026, 2, 27, tzinfo=UTC), datetime(2026, 3, 1, 23, tzinfo=UTC)),  # before start
]


@pytest.mark.parametrize(("lo", "hi"), RANGES)
def test_start_end_return_exactly_the_rows_in_range(collected: DataSet, lo: datetime, hi: datetime) -> None:
    frame = load(collected.root, "model_inputs", start=lo, end=hi)
    expected = sorted(collected.input_rows(lo, hi))
    assert expected, "each range holds some rows"
    assert got_rows(frame) == expected


def test_open_ranges_and_time_forms(collected: DataSet) -> None:
    assert got_rows(load(collected.root, "model_inputs", start=D2)) == sorted(
        collected.input_rows(D2, None))
    assert got_rows(load(collected.root, "model_inputs", end=D2)) == sorted(
        collected.input_rows(None, D2))
    # Naive text is UTC; an offset is honoured; pandas Timestamps work too.
    a = load(collected.root, "model_inputs", start="2026-03-02 01:00", end="2026-03-02T03:00:00+01:00")
    assert got_rows(a) == sorted(collected.input_rows(D2 + timedelta(hours=1), D2 + timedelta(hours=2)))
    b = load(collected.root, "model_inputs", start=pd.Timestamp("2026-03-02 01:00"),
             end=pd.Timestamp("2026-03-02 02:00", tz="UTC"))
    assert got_rows(b) == got_rows(a)
    with pytest.raises(ValueError, match="not before"):
        load(collected.root, "model_inputs", start=D2, end=D2)
    with pytest.raises(ValueError, match="invalid start"):
        load(collected.root, "model_inputs", start="yesterday-ish")


class RecordingStorage(LocalStorage):
    """A real local storage that remembers what it was asked to list and read."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.listed: list[str] = []
        self.read_paths: list[str] = []
        self._record = threading.Lock()

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        with self._record:
            self.listed.append(prefix)
        return super().list(prefix)

    def read(self, path: str) -> bytes:
        with self._record:
            self.read_paths.append(path)
        return super().read(path)


def test_time_range_lists_and_reads_only_partitions_in_range(collected: DataSet) -> None:
    storage = RecordingStorage(collected.root)
    lo, hi = D2 + timedelta(hours=10, minutes=15), D2 + timedelta(hours=12)
    frame = oce.load(storage, endpoint=ENDPOINT, deployment=DEPLOYMENT, collection="model_inputs",
                 start=lo, end=hi)
    assert got_rows(frame) == sorted(collected.input_rows(lo, hi))
    # The partitions of the range, and the collection's published schemas.
    assert storage.listed == ["ep/blue/model_inputs/2026/03/02/", "ep/blue/model_inputs/_schema/"]
    assert {p.rsplit("/", 2)[-2] for p in storage.read_paths} == {"10", "11", "_schema"}
    assert range_prefixes("c/", datetime(2026, 1, 30, 5, tzinfo=UTC), datetime(2026, 4, 2, tzinfo=UTC)) == [
        "c/2026/01/30/", "c/2026/01/31/", "c/2026/02/", "c/2026/03/", "c/2026/04/01/"]
    assert range_prefixes("c/", datetime(2026, 12, 31, 23, tzinfo=UTC), datetime(2027, 1, 1, 1, tzinfo=UTC)) == [
        "c/2026/12/31/", "c/2027/01/01/"]


def test_minute_partitions(collected: DataSet) -> None:
    times = collected.green_times
    frame = load(collected.root, "model_inputs", deployment="green", start=times[1], end=times[3])
    assert frame["x"].tolist() == [1, 2]
    dirs = {p.parent.relative_to(collected.root).as_posix()
            for p in (collected.root / "ep/green").rglob("*.avro")}
    assert "ep/green/model_inputs/2026/03/01/22/07" in dirs


def test_payload_collections_load_with_types(collected: DataSet) -> None:
    req = load(collected.root, "request")
    resp = load(collected.root, "response")
    assert len(req) == len(resp) == len(collected.calls)
    assert set(req["method"]) == {"POST"} and set(req["path"]) == {"/score"}
    assert req["headers"][0] == {"user-agent": "tests"}
    assert str(resp["status"].dtype) == "Int64" and str(resp["latency_ms"].dtype) == "float64"
    by_id = dict(zip(resp["_correlation_id"], resp["status"], strict=True))
    assert all(by_id[c.id] == c.status for c in collected.calls)
    assert req["body"][0] == b'{"x": 0}'


def test_empty_and_unknown_collections(collected: DataSet) -> None:
    frame = load(collected.root, "nothing_here")
    assert len(frame) == 0 and "_correlation_id" in frame.columns
    assert len(load(collected.root, "model_inputs", start="2030-01-01", end="2030-01-02")) == 0


def test_join_pairs_rows_and_adds_request_response(collected: DataSet) -> None:
    joined = join_inputs_outputs(str(collected.root), endpoint=ENDPOINT, deployment=DEPLOYMENT)
    assert len(joined) == len(collected.input_rows())
    assert (joined["y"] == joined["x"] * 0.5).all()
    assert (joined["label"] == (joined["x"] % 2 == 0)).all()
    status = {c.id: c.status for c in collected.calls}
    assert (joined["response_status"] == joined["_correlation_id"].map(status)).all()
    assert set(joined["request_method"]) == {"POST"}
    assert "request_body" not in joined.columns and "request_body_size" in joined.columns
    assert str(joined["x"].dtype) == "int64" and joined["_time"].is_monotonic_increasing
    lo, hi = D2, D2 + timedelta(hours=2)
    part = join_inputs_outputs(str(collected.root), endpoint=ENDPOINT, deployment=DEPLOYMENT,
                               start=lo, end=hi, include_bodies=True)
    assert got_rows(part) == sorted(collected.input_rows(lo, hi))
    assert part["request_body"].notna().all()


def test_join_under_concurrent_collection(data_dir: Path) -> None:
    oce.configure(local_config(data_dir, batch={"max_queue_size": 100_000}))
    inputs, outputs = Collector(name="model_inputs"), Collector(name="model_outputs")
    start = threading.Barrier(8)

    def work(t: int) -> None:
        rng = np.random.default_rng(t)
        start.wait()
        for i in range(150):
            n = 1 + i % 3
            v = rng.random(n)
            ctx = inputs.collect(pd.DataFrame({"t": [t] * n, "i": [i] * n, "v": v}))
            outputs.collect(pd.DataFrame({"t_out": [t] * n, "i_out": [i] * n, "w": v * 2}), ctx)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert oce.flush()
    joined = join_inputs_outputs(str(data_dir), endpoint="ep", deployment="blue")
    assert len(joined) == 8 * sum(1 + i % 3 for i in range(150))
    assert joined[["t", "i", "v", "w"]].notna().all().all()
    assert (joined["t"] == joined["t_out"]).all() and (joined["i"] == joined["i_out"]).all()
    assert np.allclose(joined["w"], joined["v"] * 2)
    assert joined.groupby(["t", "i"])["_correlation_id"].nunique().eq(1).all()


def test_ground_truth_joins_like_an_inference_id(collected: DataSet) -> None:
    labelled = collected.calls[::4]
    truth = pd.DataFrame({"correlation_id": [c.id for c in labelled],
                          "label": [f"true-{c.id}" for c in labelled]})
    joined = join_inputs_outputs(str(collected.root), endpoint=ENDPOINT, deployment=DEPLOYMENT,
                                 ground_truth=truth, how="inner")
    assert len(joined) == len(collected.input_rows())  # a left join: rows without labels stay
    assert "label_truth" in joined.columns  # "label" was an output column already
    has = joined["label_truth"].notna()
    assert set(joined.loc[has, "_correlation_id"]) == {c.id for c in labelled}
    assert (joined.loc[has, "label_truth"] == "true-" + joined.loc[has, "_correlation_id"]).all()
    # By a collected column (x, an int) instead of the correlation id; labels as text.
    by_x = pd.DataFrame({"x_id": ["0", "10"], "truth": ["zero", "ten"]})
    joined = join_inputs_outputs(str(collected.root), endpoint=ENDPOINT, deployment=DEPLOYMENT,
                                 ground_truth=by_x, ground_truth_key="x_id", ground_truth_on="x")
    assert dict(zip(joined["x"], joined["truth"], strict=True))[10] == "ten"
    assert joined["truth"].notna().sum() == 2
    with pytest.raises(ValueError, match="duplicate"):
        join_inputs_outputs(str(collected.root), endpoint=ENDPOINT, deployment=DEPLOYMENT,
                            ground_truth=pd.concat([truth, truth]))
    with pytest.raises(ValueError, match="no column 'nope'"):
        join_inputs_outputs(str(collected.root), endpoint=ENDPOINT, deployment=DEPLOYMENT,
                            ground_truth=truth, ground_truth_key="nope")


def _blocks(path: Path) -> list[tuple[int, int, int]]:
    return blocks_of(path.read_bytes())


def _copy(collected: DataSet, tmp_path: Path) -> Path:
    root = tmp_path / "copy"
    shutil.copytree(collected.root, root)
    return root


def _file_with_blocks(root: Path, n: int) -> Path:
    for path in sorted((root / "ep/blue/model_inputs").rglob("*.avro")):
        if len(_blocks(path)) >= n:
            return path
    raise AssertionError(f"no file with {n} blocks")


def test_truncated_tail_keeps_every_intact_block(collected: DataSet, tmp_path: Path) -> None:
    root = _copy(collected, tmp_path)
    path = _file_with_blocks(root, 2)
    offset, size, lost = _blocks(path)[-1]
    data = path.read_bytes()
    path.write_bytes(data[: offset + size // 2])  # a writer that crashed mid-append
    with pytest.warns(ReadWarning, match=f"{path.relative_to(root).as_posix()}: truncated"):
        frame = load(root, "model_inputs")
    assert len(frame) == len(collected.input_rows()) - lost


def test_corrupt_block_in_the_middle_is_skipped_alone(collected: DataSet, tmp_path: Path) -> None:
    root = _copy(collected, tmp_path)
    path = _file_with_blocks(root, 3)
    blocks = _blocks(path)
    offset, size, lost = blocks[1]
    data = bytearray(path.read_bytes())
    data[offset:offset + 2] = b"\xff\xff"  # the block's count and size varints become garbage
    path.write_bytes(bytes(data))
    with pytest.warns(ReadWarning, match="corrupt stretch"):
        frame = load(root, "model_inputs")
    assert len(frame) == len(collected.input_rows()) - lost


def test_foreign_files_are_skipped_with_a_warning(collected: DataSet, tmp_path: Path) -> None:
    root = _copy(collected, tmp_path)
    hour = root / "ep/blue/model_inputs/2026/03/02/05"
    (hour / "notes.avro").write_text("not avro at all")
    buf = io.BytesIO()
    fastavro.writer(buf, {"type": "record", "name": "r", "fields": [{"name": "x", "type": "long"}]},
                    [{"x": 1}])
    (hour / "someone-else.avro").write_bytes(buf.getvalue())
    (hour / "empty.avro").write_bytes(b"")
    (root / "ep/blue/model_inputs/README.txt").write_text("hello")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        frame = load(root, "model_inputs")
    messages = sorted(str(w.message) for w in caught if w.category is ReadWarning)
    assert len(messages) == 4, messages
    assert any("notes.avro: not an Avro container" in m for m in messages)
    assert any("someone-else.avro: an Avro file without otel_collector_ext" in m for m in messages)
    assert any("empty.avro: empty file" in m for m in messages)
    assert any("README.txt: not an .avro file" in m for m in messages)
    assert got_rows(frame) == sorted(collected.input_rows())


def test_many_skipped_files_end_in_one_summary_warning(collected: DataSet, tmp_path: Path) -> None:
    root = _copy(collected, tmp_path)
    for i in range(25):
        (root / f"ep/blue/model_inputs/2026/03/02/05/junk-{i}.txt").write_text("x")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        load(root, "model_inputs")
    messages = [str(w.message) for w in caught if w.category is ReadWarning]
    assert len(messages) == 21 and messages[-1] == "... and 5 more files skipped or partly read"


def test_large_bodies_stored_apart_are_fetched_on_request(data_dir: Path) -> None:
    oce.configure(local_config(data_dir, exporter={"type": "avro", "destination": str(data_dir),
                                                   "inline_limit": 64}))
    big, small = bytes(range(256)) * 8, b"tiny"
    payloads = Collector(name="request")
    payloads.collect(big)
    payloads.collect(small)
    assert oce.flush()
    frame = load(data_dir, "request").sort_values("body_size").reset_index(drop=True)
    assert frame["body"].tolist() == [small, None] and frame["body_ref"].notna().tolist() == [False, True]
    frame = load(data_dir, "request", fetch_bodies=True).sort_values("body_size")
    assert frame["body"].tolist() == [small, big]


@pytest.mark.parametrize("bad", [5, "", None, b"ep"])
def test_names_must_be_strings(tmp_path: Path, bad: object) -> None:
    with pytest.raises(TypeError, match="endpoint must be a non-empty string"):
        oce.load(str(tmp_path), endpoint=bad, deployment="d", collection="c")  # type: ignore[arg-type]


def test_hostile_names_never_leave_the_destination(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    oce.configure(local_config(outside, endpoint="e", deployment="d"))
    Collector(name="c").collect({"secret": 1})
    assert oce.flush()
    oce.shutdown()
    assert len(oce.load(str(outside), endpoint="e", deployment="d", collection="c")) == 1
    root = tmp_path / "root"
    root.mkdir()
    # Unescaped, these would name root/../outside/e/d/c: the data above.
    frame = oce.load(str(root), endpoint="..", deployment="outside", collection="e/d/c")
    assert len(frame) == 0
    frame = oce.load(str(root), endpoint="..", deployment="outside/e/d", collection="c")
    assert len(frame) == 0
