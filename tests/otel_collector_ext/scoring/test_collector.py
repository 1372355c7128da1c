"""End-to-end: Collector → OTel records → Avro files on disk → load()."""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path

import avro.datafile
import avro.io
import fastavro
import numpy as np
import pandas as pd
import pytest
from opentelemetry.sdk.trace import TracerProvider

import otel_collector_ext as oce
from otel_collector_ext import BasicCorrelationContext, Collector
from tests.conftest import local_config, run_python

HOUR = 3600


def load(data_dir: Path, collection: str, **kw: object) -> pd.DataFrame:
    return oce.load(str(data_dir), endpoint="ep", deployment="blue", collection=collection, **kw)


def avro_files(root: Path) -> list[Path]:
    return sorted(root.rglob("*.avro"))


def assert_readable_by_both_libraries(root: Path) -> int:
    """Every file opens with fastavro and the reference avro package; returns the row count."""
    total = 0
    for path in avro_files(root):
        with open(path, "rb") as f:
            n = sum(1 for _ in fastavro.reader(f))
        with avro.datafile.DataFileReader(open(path, "rb"), avro.io.DatumReader()) as reader:
            assert sum(1 for _ in reader) == n
        total += n
    return total


def test_inputs_and_outputs_join_on_the_context(pipeline: object, data_dir: Path) -> None:
    inputs, outputs = Collector(name="model_inputs"), Collector(name="model_outputs")
    ids = []
    for i in range(50):
        features = pd.DataFrame({"x": [i, i + 1], "label": ["a", "b"]})
        context = inputs.collect(features)
        assert outputs.collect(pd.DataFrame({"y": [i * 0.5, None]}), context) is context
        ids.append(context.get_id())
    assert oce.flush()
    got_in, got_out = load(data_dir, "model_inputs"), load(data_dir, "model_outputs")
    assert len(got_in) == len(got_out) == 100
    joined = got_in.merge(got_out, on=["_correlation_id", "_row"])
    assert len(joined) == 100 and set(joined["_correlation_id"]) == set(ids)
    assert joined["x"].tolist()[:2] == [0, 1] and joined["y"].isna().sum() == 50
    assert (got_in["_model_version"] == "7").all()
    assert str(got_in["x"].dtype) == "int64" and str(got_out["y"].dtype) == "float64"
    assert assert_readable_by_both_libraries(data_dir) == 200


def test_every_input_kind_round_trips(pipeline: object, data_dir: Path) -> None:
    c = Collector(name="mixed")
    c.collect(pd.DataFrame({"a": [1], "b": ["x"]}))
    c.collect({"a": 2, "b": "y"})
    c.collect({"a": [3, 4], "b": ["z", "w"]})
    c.collect([{"a": 5, "b": "v"}, {"a": 6}])
    assert oce.flush()
    frame = load(data_dir, "mixed").sort_values(["a"]).reset_index(drop=True)
    assert frame["a"].tolist() == [1, 2, 3, 4, 5, 6]
    assert frame["b"].tolist()[:5] == ["x", "y", "z", "w", "v"] and pd.isna(frame["b"][5])

    arrays = Collector(name="arrays")
    arrays.collect(np.array([[1.0, 2.0], [3.0, 4.0]]))
    assert oce.flush()
    got = load(data_dir, "arrays")
    assert got[["0", "1"]].to_numpy().tolist() == [[1.0, 2.0], [3.0, 4.0]]

    payloads = Collector(name="payloads")
    payloads.collect("héllo")
    payloads.collect(b"\x00\x01\xff")
    payloads.collect({"nested": {"k": [1, 2]}, "n": None})
    assert oce.flush()
    got = load(data_dir, "payloads").sort_values("kind").reset_index(drop=True)
    assert got["kind"].tolist() == ["bytes", "json", "text"]
    assert got["body"].tolist() == [b"\x00\x01\xff", b'{"nested":{"k":[1,2]},"n":null}',
                                    "héllo".encode()]
    assert got["content_type"].tolist()[0] == "application/octet-stream"
    assert assert_readable_by_both_libraries(data_dir) == 6 + 2 + 3


def test_partitions_follow_the_event_time(pipeline: object, data_dir: Path) -> None:
    c = Collector(name="model_inputs")
    base = dt.datetime(2026, 3, 1, 10, 59, 59, tzinfo=dt.UTC).timestamp()
    for offset in (0, 2, HOUR + 2, 24 * HOUR):
        c.collect(pd.DataFrame({"v": [offset]}), BasicCorrelationContext(timestamp=base + offset))
    assert oce.flush()
    dirs = sorted(p.parent.relative_to(data_dir).as_posix() for p in avro_files(data_dir))
    assert dirs == [
        "ep/blue/model_inputs/2026/03/01/10",
        "ep/blue/model_inputs/2026/03/01/11",
        "ep/blue/model_inputs/2026/03/01/12",
        "ep/blue/model_inputs/2026/03/02/10",
    ]
    assert all(p.name == "test-instance.0000.avro" for p in avro_files(data_dir))
    got = load(data_dir, "model_inputs", start="2026-03-01 11:00", end="2026-03-01 12:00:01")
    assert sorted(got["v"].tolist()) == [2]  # 11:00:01 only; 12:00:01 is at the end bound
    got = load(data_dir, "model_inputs", start=dt.datetime(2026, 3, 1, 11, tzinfo=dt.UTC))
    assert sorted(got["v"].tolist()) == [2, HOUR + 2, 24 * HOUR]


def test_schema_change_starts_a_new_file(pipeline: object, data_dir: Path) -> None:
    c = Collector(name="drifting")
    ctx = BasicCorrelationContext(timestamp=1_700_000_000)
    c.collect(pd.DataFrame({"a": [1]}), ctx)
    assert oce.flush()
    c.collect(pd.DataFrame({"a": [2]}), ctx)  # same schema: appended to the same file
    assert oce.flush()
    c.collect(pd.DataFrame({"a": ["now text"]}), ctx)
    assert oce.flush()
    names = [p.name for p in avro_files(data_dir)]
    assert names == ["test-instance.0000.avro", "test-instance.0001.avro"]
    assert assert_readable_by_both_libraries(data_dir) == 3
    # Text where ints were does not retype the column: it is kept aside as JSON text.
    frame = load(data_dir, "drifting")
    assert frame["a"].tolist()[:2] == [1, 2] and pd.isna(frame["a"][2])
    assert frame["a__mismatch"].tolist() == [None, None, "now text"]


def test_trace_context_links_records_to_spans(pipeline: object, data_dir: Path) -> None:
    tracer = TracerProvider().get_tracer("t")
    with tracer.start_as_current_span("score") as span:
        Collector(name="traced").collect({"a": 1})
        ctx = span.get_span_context()
    assert oce.flush()
    got = load(data_dir, "traced")
    assert got["_trace_id"][0] == format(ctx.trace_id, "032x")
    assert got["_span_id"][0] == format(ctx.span_id, "016x")


def test_eight_threads_lose_nothing(data_dir: Path) -> None:
    oce.configure(local_config(data_dir, batch={"max_queue_size": 100_000}))
    c = Collector(name="concurrent")
    per_thread = 500

    def work(t: int) -> None:
        for i in range(per_thread):
            c.collect(pd.DataFrame({"thread": [t], "i": [i]}))

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert oce.flush()
    got = load(data_dir, "concurrent")
    assert len(got) == 8 * per_thread
    assert got.groupby("thread")["i"].nunique().tolist() == [per_thread] * 8
    assert oce.stats()["records.collected{collection=concurrent}"] == 8 * per_thread


def test_sampling_keeps_inputs_and_outputs_together(data_dir: Path) -> None:
    oce.configure(local_config(data_dir, data_collector={"sampling_rate": 0.5}))
    inputs, outputs = Collector(name="model_inputs"), Collector(name="model_outputs")
    for i in range(400):
        ctx = inputs.collect({"i": i})
        outputs.collect({"o": i}, ctx)
    assert oce.flush()
    kept_in = set(load(data_dir, "model_inputs")["_correlation_id"])
    kept_out = set(load(data_dir, "model_outputs")["_correlation_id"])
    assert kept_in == kept_out and 120 < len(kept_in) < 280
    stats = oce.stats()
    assert stats["records.sampled_out{collection=model_inputs}"] == 400 - len(kept_in)


def test_disabled_and_unlisted_collections_are_counted_not_written(data_dir: Path) -> None:
    oce.configure(local_config(data_dir, data_collector={
        "collections": {"on": {"enabled": "True"}, "off": {"enabled": "False"}}}))
    for name in ("on", "off", "unlisted"):
        Collector(name=name).collect({"a": 1})
    assert oce.flush()
    assert [p.parts[-6] for p in avro_files(data_dir)] == ["on"]
    stats = oce.stats()
    assert stats["records.dropped{collection=off,reason=disabled}"] == 1
    assert stats["records.dropped{collection=unlisted,reason=disabled}"] == 1


def test_programming_errors_go_to_on_error(pipeline: object, data_dir: Path) -> None:
    with pytest.raises(TypeError, match="cannot collect"):
        Collector(name="x").collect(object())  # default on_error raises, as Azure's SDK
    errors: list[Exception] = []
    c = Collector(name="x", on_error=errors.append)
    ctx = c.collect({1, 2})
    assert isinstance(ctx, BasicCorrelationContext)
    c.collect({"a": [1, 2], "b": [1]})
    c.collect(pd.DataFrame({"a": [1]}), correlation_context="not a context")  # type: ignore[arg-type]
    assert [type(e) for e in errors] == [TypeError, ValueError, TypeError]
    for bad in ("../up", "/abs", "a/b", "", "x" * 300, "nul\x00", 5):
        with pytest.raises((TypeError, ValueError)):
            Collector(name=bad)  # type: ignore[arg-type]
    swallowed: list[Exception] = []
    c = Collector(name="../up", on_error=swallowed.append)
    c.collect({"a": 1})
    assert len(swallowed) == 1
    assert oce.flush()
    assert avro_files(data_dir) == [] and not (data_dir.parent / "up").exists()


def test_bad_input_is_handled(pipeline: object, data_dir: Path) -> None:
    c = Collector(name="odd")
    c.collect(pd.DataFrame())  # empty: counted, nothing written
    wide = pd.DataFrame(np.arange(10_000, dtype="int64").reshape(1, 10_000),
                        columns=[f"f{i}" for i in range(10_000)])
    c.collect(wide)
    assert oce.flush()
    assert load(data_dir, "odd").shape == (1, 10_000 + 6)

    other = Collector(name="odd2")
    huge = "x" * (8 * 1024 * 1024)
    dupes = pd.DataFrame([[1, 2, 3]], columns=["a", "a", "b c"])
    mixed = pd.DataFrame({"m": [1, "two", 3.5, None], "f": [np.nan, np.inf, -np.inf, 1.0]})
    other.collect(pd.DataFrame({"s": [huge]}))
    other.collect(dupes)
    other.collect(mixed)
    assert oce.flush()
    got = load(data_dir, "odd2")
    assert got["s"].dropna().tolist() == [huge]
    assert list(got.columns).count("a") == 2 and "b c" in got.columns
    f = got["f"].dropna().tolist()
    assert f[:2] == [np.inf, -np.inf]
    assert oce.stats()["records.dropped{collection=odd,reason=empty}"] == 1


def test_storage_failure_never_reaches_scoring_code(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the data folder should be")
    oce.configure(local_config(blocker))
    c = Collector(name="model_inputs")
    for i in range(10):
        c.collect({"i": i})  # must not raise
    assert not oce.flush()
    stats = oce.stats()
    assert stats["exporter.records.dropped{collection=model_inputs,reason=storage_failed}"] == 10
    assert stats["records.collected{collection=model_inputs}"] == 10


def test_queue_full_is_counted(data_dir: Path) -> None:
    oce.configure(local_config(data_dir, batch={"max_queue_size": 5,
                                                "schedule_delay_millis": 3_600_000,
                                                "max_export_batch_size": 100}))
    c = Collector(name="q")
    for i in range(20):
        c.collect({"i": i})
    stats = oce.stats()
    assert stats["records.dropped{collection=q,reason=queue_full}"] == 15
    assert stats["records.collected{collection=q}"] == 5  # only what was queued
    assert not oce.flush()  # what was collected before it was not all stored
    assert len(load(data_dir, "q")) == 5
    c.collect({"i": 20})
    assert oce.flush()  # the loss was reported once; nothing lost since


def test_normal_exit_loses_nothing(data_dir: Path) -> None:
    code = f"""
import otel_collector_ext as oce
oce.configure({{"exporter": {{"type": "avro", "destination": {str(data_dir)!r}}},
               "batch": {{"schedule_delay_millis": 3600000}}}})
c = oce.Collector(name="at_exit")
for i in range(1234):
    c.collect({{"i": i}})
"""  # no flush(): the atexit hook must drain the queue
    done = run_python(code)
    assert done.returncode == 0, done.stderr
    got = oce.load(str(data_dir), endpoint="default", deployment="default", collection="at_exit")
    assert sorted(got["i"]) == list(range(1234))


def test_default_config_writes_locally_and_says_so(tmp_path: Path) -> None:
    code = """
import otel_collector_ext as oce
oce.Collector(name="model_inputs").collect({"a": 1})
"""
    done = run_python(code, OTEL_COLLECTOR_EXT_DESTINATION=str(tmp_path / "d"))
    assert done.returncode == 0, done.stderr
    assert "no configuration given" in done.stderr
    assert len(list((tmp_path / "d").rglob("*.avro"))) == 1


def test_metrics_reach_an_otel_meter_provider(tmp_path: Path) -> None:
    code = f"""
from opentelemetry import metrics
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
reader = InMemoryMetricReader()
metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
import otel_collector_ext as oce
oce.configure({{"exporter": {{"type": "avro", "destination": {str(tmp_path)!r}}},
               "data_collector": {{"sampling_rate": 0.0}}}})
oce.Collector(name="m").collect({{"a": 1}})
names = {{m.name: sum(p.value for p in m.data.data_points)
         for rm in reader.get_metrics_data().resource_metrics
         for sm in rm.scope_metrics for m in sm.metrics}}
print(names)
assert names["otel_collector_ext.records.sampled_out"] == 1, names
"""
    done = run_python(code)
    assert done.returncode == 0, done.stderr + done.stdout


@pytest.mark.parametrize("codec", ["null", "deflate", "snappy", "zstandard"])
def test_codecs(data_dir: Path, codec: str) -> None:
    oce.configure(local_config(data_dir, exporter={
        "type": "avro", "destination": str(data_dir), "codec": codec}))
    Collector(name="c").collect(pd.DataFrame({"a": range(100)}))
    assert oce.flush()
    (path,) = avro_files(data_dir)
    with open(path, "rb") as f:
        assert fastavro.reader(f).codec == codec
    assert assert_readable_by_both_libraries(data_dir) == 100


def test_bodies_over_the_inline_limit_are_stored_apart(data_dir: Path) -> None:
    oce.configure(local_config(data_dir, data_collector={
        "request_logging": {"inline_limit_bytes": 1024}}))
    c = Collector(name="payloads")
    big, small = bytes(range(256)) * 20, b"tiny"
    c.collect(big)
    c.collect(small)
    assert oce.flush()
    got = load(data_dir, "payloads").sort_values("body_size").reset_index(drop=True)
    assert got["body_size"].tolist() == [4, len(big)]
    assert got["body"][0] == small and got["body"][1] is None
    ref = got["body_ref"][1]
    assert ref.endswith(".bin") and (data_dir / ref).read_bytes() == big
    fetched = load(data_dir, "payloads", fetch_bodies=True).sort_values("body_size")
    assert fetched["body"].tolist() == [small, big]


def test_event_times_are_checked_and_zero_is_kept(pipeline: object, data_dir: Path) -> None:
    errors: list[Exception] = []
    c = Collector(name="times", on_error=errors.append)
    c.collect({"a": 1}, BasicCorrelationContext(timestamp=1_764_000_000_000))  # ms by mistake
    c.collect({"a": 2}, BasicCorrelationContext(timestamp=-5))
    c.collect({"a": 3}, BasicCorrelationContext(timestamp=0))
    assert [type(e) for e in errors] == [ValueError, ValueError]
    assert "milliseconds" in str(errors[0])
    assert oce.flush()
    got = load(data_dir, "times")
    assert got["a"].tolist() == [3] and str(got["_time"][0]) == "1970-01-01 00:00:00+00:00"


def test_a_falsy_context_is_still_the_context(pipeline: object, data_dir: Path) -> None:
    class DictContext(dict):  # empty, so falsy, and a perfectly good context
        def get_id(self) -> str:
            return "dict-ctx"

        def get_timestamp(self) -> int:
            return 1_700_000_000

        def get_headers(self) -> dict:
            return {}

    ctx = DictContext()
    assert Collector(name="falsy").collect({"a": 1}, ctx) is ctx  # type: ignore[arg-type]
    assert oce.flush()
    assert load(data_dir, "falsy")["_correlation_id"].tolist() == ["dict-ctx"]


def test_after_shutdown_records_are_counted_not_written_elsewhere(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)  # where a rebuilt default pipeline would write
    oce.configure(local_config(data_dir))
    c = Collector(name="late")
    c.collect({"a": 1})
    oce.shutdown()  # as at exit or on SIGTERM, while a request is still being scored
    c.collect({"a": 2})
    assert oce.stats()["records.dropped{collection=late,reason=shutdown}"] == 1
    assert not (cwd / "collected").exists()
    assert load(data_dir, "late")["a"].tolist() == [1]
    oce.configure(local_config(data_dir))  # configure() starts collection again
    c.collect({"a": 3})
    assert oce.flush()
    assert sorted(load(data_dir, "late")["a"]) == [1, 3]


def test_stats_are_cumulative_across_configure(data_dir: Path) -> None:
    oce.configure(local_config(data_dir))
    Collector(name="s").collect({"a": 1})
    oce.configure(local_config(data_dir))
    Collector(name="s").collect({"a": 2})
    assert oce.flush()
    assert oce.stats()["records.collected{collection=s}"] == 2
