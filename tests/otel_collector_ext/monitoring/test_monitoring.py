"""`monitor` on data collected through the real pipeline: references (files in three formats,
windows, another deployment), drift over time, model performance, OTel gauges, the JSON schema,
and bad input at the entry point."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import jsonschema
import numpy as np
import pandas as pd
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from scipy import stats

import otel_collector_ext as oce
from otel_collector_ext import Collector, ConfigError
from otel_collector_ext.monitoring.reference import ReferenceFileError
from tests.conftest import local_config
from tests.support.monitoring_data import (
    DEPLOYMENT,
    ENDPOINT,
    START,
    collect,
    hourly,
    make_frame,
    outputs_of,
)
from tests.support.readback_data import ExactContext

SCHEMA = json.loads((Path(__file__).parents[3] / "docs" / "monitoring.schema.json").read_text())
ROWS_PER_HOUR = 1000
H = timedelta(hours=1)


class Site:
    def __init__(self, root: Path) -> None:
        self.root = root
        # blue: 6 hours, drifted from hour 3; green: 3 hours like the reference
        self.ids = collect(root, hourly(6, ROWS_PER_HOUR, seed=1, drift_from=3))
        collect(root, hourly(3, ROWS_PER_HOUR, seed=2), deployment="green")
        reference = make_frame(4000, 99)
        self.parquet, self.csv, self.jsonl = (root / f"ref.{x}" for x in ("parquet", "csv", "jsonl"))
        reference.to_parquet(self.parquet)
        reference.to_csv(self.csv, index=False)
        reference.to_json(self.jsonl, orient="records", lines=True)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Site:
    return Site(tmp_path_factory.mktemp("monitored"))


def run(site: Site, **kw):
    kw.setdefault("reference", site.parquet)
    kw.setdefault("endpoint", ENDPOINT)
    kw.setdefault("deployment", DEPLOYMENT)
    return oce.monitor(str(site.root), **kw)


def drifted(result, signal: str = "data_drift") -> set[str]:
    return {s.feature for s in result.signals if s.signal == signal and s.status == "breached"}


def test_the_drifted_window_is_flagged_and_the_result_matches_its_schema(site):
    result = run(site, start=START + 3 * H, end=START + 6 * H)
    assert drifted(result) == {"income", "country"}
    assert result.breached and result.exit_code == 1
    document = result.to_dict()
    jsonschema.validate(document, SCHEMA)
    assert document["window"]["rows"]["model_inputs"] == 3 * ROWS_PER_HOUR
    assert document["reference"] == {"kind": "file", "path": str(site.parquet), "deployment": None,
                                     "start": None, "end": None,
                                     "rows": {"model_inputs": 4000, "model_outputs": 4000}}
    # the outputs are not in this reference: no prediction drift verdict, and said why
    assert {(s.feature, s.status, s.reason) for s in result.signals
            if s.signal == "prediction_drift"} == {
        ("prediction", "insufficient_data", "not in the reference"),
        ("score", "insufficient_data", "not in the reference")}
    assert json.loads(result.to_json()) == document


def test_an_undrifted_window_is_ok(site):
    result = run(site, start=START, end=START + 3 * H)
    assert result.breached_signals() == []
    assert result.exit_code == 0
    jsonschema.validate(result.to_dict(), SCHEMA)


def test_reference_files_in_three_formats_give_the_same_values(site):
    window = {"start": START + 3 * H, "end": START + 6 * H}
    by_format = [{(s.signal, s.feature, s.metric): s.value for s in run(
        site, reference=path, **window).signals} for path in (site.parquet, site.csv, site.jsonl)]
    for other in by_format[1:]:
        assert other.keys() == by_format[0].keys()
        for key, value in by_format[0].items():
            assert other[key] == (None if value is None else pytest.approx(value, rel=1e-9)), key


def test_a_reference_window_of_collected_data_this_deployments_or_another(site):
    own = run(site, reference=None, reference_start=START, reference_end=START + 3 * H,
              start=START + 3 * H, end=START + 6 * H)
    assert drifted(own) == {"income", "country"}
    assert drifted(own, "prediction_drift") == {"prediction", "score"}  # outputs follow income
    assert own.reference["kind"] == "window" and own.reference["deployment"] == DEPLOYMENT
    other = run(site, reference=None, reference_start=START, reference_end=START + 3 * H,
                reference_deployment="green", start=START, end=START + 3 * H)
    assert other.breached_signals() == []
    assert other.reference["rows"]["model_inputs"] == 3 * ROWS_PER_HOUR


def test_drift_over_time_per_hour(site):
    result = run(site, start=START, end=START + 6 * H,
                 config={"monitoring": {"windows": "hour", "min_samples": 500}})
    assert [w.start for w in result.series] == [START + i * H for i in range(6)]
    per_hour = [{s.feature for s in w.signals if s.status == "breached"} for w in result.series]
    assert per_hour == [set(), set(), set()] + [{"income", "country"}] * 3
    jsonschema.validate(result.to_dict(), SCHEMA)
    daily = run(site, start=START, end=START + 6 * H, config={"monitoring": {"windows": "day"}})
    assert daily.series_granularity == "day" and len(daily.series) == 1


def _labels(site: Site) -> pd.DataFrame:
    """Ground truth for every output row: the prediction, wrong on every 10th row."""
    rows = []
    for i, (_, frame) in enumerate(hourly(6, ROWS_PER_HOUR, seed=1, drift_from=3)):
        prediction = outputs_of(frame, 1 + i)["prediction"].to_numpy()
        label = np.where(np.arange(len(prediction)) % 10 == 0, 1 - prediction, prediction)
        rows.append(pd.DataFrame({"correlation_id": site.ids[i], "_row": np.arange(len(label)),
                                  "label": label}))
    return pd.concat(rows, ignore_index=True)


PERFORMANCE = {"monitoring": {"signals": {"model_performance": {
    "score": "score", "metric_thresholds": {"classification": {"accuracy": 0.95}}}}}}


def test_model_performance_with_ground_truth_from_a_file(site, tmp_path):
    labels = _labels(site)
    path = tmp_path / "labels.csv"
    labels.to_csv(path, index=False)
    result = run(site, start=START, end=START + 6 * H, ground_truth=path, config=PERFORMANCE)
    values = {s.metric: s for s in result.signals if s.signal == "model_performance"}
    assert values["accuracy"].value == pytest.approx(0.9, abs=0.001)
    assert values["accuracy"].status == "breached" and values["accuracy"].threshold == 0.95
    assert values["precision"].status == "ok" and values["precision"].threshold is None
    joined = oce.join_inputs_outputs(str(site.root), endpoint=ENDPOINT, deployment=DEPLOYMENT,
                                     ground_truth=labels, start=START, end=START + 6 * H)
    positive = joined["label"] == 1
    u = stats.mannwhitneyu(joined["score"][positive], joined["score"][~positive]).statistic
    assert values["auc"].value == pytest.approx(u / (positive.sum() * (~positive).sum()))
    tp = ((joined["prediction"] == 1) & positive).sum()
    assert values["recall"].value == pytest.approx(tp / positive.sum())
    assert values["accuracy"].current_count == 6 * ROWS_PER_HOUR


def test_model_performance_with_labels_collected_later(tmp_path):
    frames = hourly(2, 600, seed=3)
    oce.configure(local_config(tmp_path, batch={"max_queue_size": 100_000}))
    inputs, outputs, labels = (Collector(name=n) for n in ("model_inputs", "model_outputs",
                                                          "labels"))
    for i, (when, frame) in enumerate(frames):
        out = outputs_of(frame, i)
        inputs.collect(frame, ExactContext(when, f"c{i}"))
        outputs.collect(out, ExactContext(when, f"c{i}"))
        labels.collect(pd.DataFrame({"label": out["prediction"]}),
                       ExactContext(when + timedelta(minutes=30), f"c{i}"))
    assert oce.flush()
    oce.shutdown()
    result = oce.monitor(str(tmp_path), endpoint=ENDPOINT, deployment=DEPLOYMENT,
                         reference=make_frame(2000, 5), labels_collection="labels",
                         start=START, end=START + 2 * H)
    accuracy = next(s for s in result.signals if s.metric == "accuracy")
    assert (accuracy.value, accuracy.current_count) == (1.0, 1200)


def test_each_signal_value_is_an_otel_gauge(site):
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    result = run(site, start=START + 3 * H, end=START + 6 * H, meter_provider=provider)
    points = {}
    for rm in reader.get_metrics_data().resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                for p in metric.data.data_points:
                    a = p.attributes
                    points[(metric.name, a.get("collection"), a.get("feature"),
                            a.get("metric"))] = (p.value, a)
    expected = {(f"ml.monitoring.{s.signal}", s.collection, s.feature, s.metric): s
                for s in result.signals if s.value is not None}
    assert set(expected) <= set(points)
    for key, s in expected.items():
        value, attributes = points[key]
        assert value == pytest.approx(s.value)
        assert attributes["status"] == s.status and attributes["deployment"] == DEPLOYMENT
    assert points[("ml.monitoring.breached", None, None, None)][0] == 1
    provider.shutdown()


def test_values_the_writer_could_not_type_are_type_errors(tmp_path):
    """Text sent into a numeric column lands in `age__mismatch` (schema evolution); the
    monitor counts it as data_type_error_rate."""
    good, bad = make_frame(1200, 1), make_frame(300, 2)
    bad["age"] = "forty"
    collect(tmp_path, [(START, good), (START + timedelta(minutes=10), bad)])
    result = oce.monitor(str(tmp_path), endpoint=ENDPOINT, deployment=DEPLOYMENT,
                         reference=make_frame(3000, 3), start=START, end=START + H)
    rate = next(s for s in result.signals if s.feature == "age"
                and s.metric == "data_type_error_rate")
    assert rate.value == pytest.approx(300 / 1500) and rate.status == "breached"
    age_null = next(s for s in result.signals if s.feature == "age"
                    and s.metric == "null_value_rate")
    assert age_null.value == 0.0


def test_an_empty_window_is_insufficient_data_not_a_verdict(site):
    result = run(site, start=START + 100 * H, end=START + 101 * H)
    assert {(s.collection, s.status, s.reason) for s in result.signals} == {
        ("model_inputs", "insufficient_data", "no rows in the current window"),
        ("model_outputs", "insufficient_data", "no rows in the current window")}
    assert result.exit_code == 0
    jsonschema.validate(result.to_dict(), SCHEMA)


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({"endpoint": None}, TypeError, "endpoint must be a non-empty string"),
    ({"deployment": ""}, TypeError, "deployment must be a non-empty string"),
    ({"collections": ["nope"]}, ValueError, "no collection 'nope'"),
    ({"collections": ["../../../etc"]}, ValueError, "no collection"),
    ({"reference": None}, ValueError, "no reference"),
    ({"reference": 42}, TypeError, "reference must be"),
    ({"reference": "https://example.invalid/train.csv"}, ReferenceFileError, "only local files"),
    ({"reference": "train.xlsx"}, ReferenceFileError, "unknown file type"),
    ({"reference": "/no/such/train.csv"}, ReferenceFileError, "does not exist"),
    ({"reference": "/"}, ReferenceFileError, "unknown file type"),
    ({"start": "2026-03-02", "end": "2026-03-01"}, ValueError, "is not before"),
    ({"start": "yesterday-ish"}, ValueError, "invalid start"),
    ({"reference_start": START}, ValueError, "not both"),
    ({"config": {"monitoring": {"min_samples": -1}}}, ConfigError, "monitoring.min_samples"),
    ({"config": 3}, TypeError, "config must be"),
])
def test_bad_arguments_are_clear_errors(site, kwargs, error, match):
    with pytest.raises(error, match=match):
        run(site, **kwargs)


@pytest.mark.parametrize(("name", "content", "match"), [
    ("empty.csv", b"", "cannot be read"),
    ("broken.parquet", b"PAR1 this is not parquet", "cannot be read"),
    ("broken.jsonl", b'{"a": 1}\n{"a": ', "cannot be read"),
    ("binary.csv", bytes(range(256)) * 40, "cannot be read"),
    ("scalar.json", b"42", "cannot be read|does not hold"),
])
def test_malformed_reference_files_are_clear_errors(site, tmp_path, name, content, match):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ReferenceFileError, match=match):
        run(site, reference=path)
