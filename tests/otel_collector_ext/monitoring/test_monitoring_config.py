"""The monitor configuration: the monitoring: block, Azure ML's monitor YAML as written there,
per-metric and per-feature thresholds, and errors that name the key path."""

from __future__ import annotations

import pandas as pd
import pytest

from otel_collector_ext import ConfigError
from otel_collector_ext.monitoring import compare, load_monitor_config
from otel_collector_ext.monitoring.config import parse_monitor_config
from tests.support.monitoring_data import make_frame

# Shaped as Azure ML's CLI v2 monitor schedule YAML (reference-yaml-monitor): only the
# monitoring_signals and monitoring_target parts mean something here; the rest is Azure's.
AZURE_SCHEDULE = """
$schema: http://azureml/sdk-2-0/Schedule.json
name: credit_model_monitor
trigger:
  type: recurrence
  frequency: day
  interval: 1
  schedule: {hours: 3, minutes: 15}
create_monitor:
  compute: {instance_type: standard_e4s_v3, runtime_version: "3.4"}
  monitoring_target:
    ml_task: classification
    endpoint_deployment_id: azureml:credit-endpoint:blue
  monitoring_signals:
    advanced_data_drift:
      type: data_drift
      production_data:
        input_data: {path: azureml:credit-inputs:1, type: mltable}
        data_context: model_inputs
      reference_data:
        input_data: {path: azureml:credit-reference:1, type: mltable}
        data_context: training
      features:
        top_n_feature_importance: 10
      metric_thresholds:
        numerical:
          jensen_shannon_distance: 0.01
        categorical:
          pearsons_chi_squared_test: 0.02
    advanced_data_quality:
      type: data_quality
      metric_thresholds:
        numerical:
          null_value_rate: 0.01
        categorical:
          out_of_bounds_rate: 0.02
      alert_enabled: true
  alert_notification:
    emails: [abc@example.com]
"""


def test_azure_ml_monitor_yaml_is_accepted_as_written(tmp_path):
    path = tmp_path / "monitor.yaml"
    path.write_text(AZURE_SCHEDULE)
    cfg = load_monitor_config(path)
    assert cfg.task == "classification"
    drift, quality = cfg.signals
    assert (drift.name, drift.type) == ("advanced_data_drift", "data_drift")
    assert drift.thresholds == {"numeric": {"jensen_shannon_distance": 0.01},
                                "categorical": {"pearsons_chi_squared_test": 0.02}}
    assert quality.thresholds == {"numeric": {"null_value_rate": 0.01},
                                  "categorical": {"out_of_bounds_rate": 0.02}}
    assert any("feature importance" in n for n in cfg.notes)
    # and it runs: only the metrics it names, with its thresholds
    result = compare(make_frame(2000, 1), make_frame(1500, 2), config=path)
    assert {(s.signal, s.metric) for s in result.signals} == {
        ("data_drift", "jensen_shannon_distance"), ("data_drift", "pearsons_chi_squared_test"),
        ("data_quality", "null_value_rate"), ("data_quality", "out_of_bounds_rate")}


def test_the_monitoring_block_and_the_older_azure_metric_names():
    cfg = load_monitor_config({"monitoring": {
        "windows": "day", "min_samples": 50, "bins": 20,
        "signals": {"drift": {"type": "data_drift", "features": ["age"], "metric_thresholds": {
            "numerical": {"two_sample_kolmogorov_test": 0.01}}}}}})
    [signal] = cfg.signals
    assert signal.thresholds == {"numeric": {"two_sample_kolmogorov_smirnov_test": 0.01}}
    assert (cfg.granularity, cfg.min_samples, cfg.bins, signal.features) == ("day", 50, 20,
                                                                             ("age",))


def test_per_metric_and_per_feature_thresholds_change_the_verdict():
    ref, cur = make_frame(3000, 1), make_frame(2000, 2, drift=True)
    assert {s.feature for s in compare(ref, cur).breached_signals()
            if s.signal == "data_drift"} == {"income", "country"}
    relaxed = {"monitoring": {"features": {"income": {"metric_thresholds": {
        "normalized_wasserstein_distance": 5, "jensen_shannon_distance": 0.9,
        "population_stability_index": 10}}}}}
    result = compare(ref, cur, config=relaxed)
    assert {s.feature for s in result.breached_signals() if s.signal == "data_drift"} == {
        "country"}
    income = {s.metric: s.threshold for s in result.signals
              if s.feature == "income" and s.signal == "data_drift"}
    assert income == {"normalized_wasserstein_distance": 5, "jensen_shannon_distance": 0.9,
                      "population_stability_index": 10}
    # a metric named without a value gets its default threshold
    listed = compare(ref, cur, config={"monitoring": {"signals": {"data_drift": {
        "metric_thresholds": {"numerical": ["two_sample_kolmogorov_smirnov_test"]}}}}})
    assert {(s.metric, s.threshold) for s in listed.signals if s.feature == "income"} == {
        ("two_sample_kolmogorov_smirnov_test", 0.05)}


def test_a_disabled_signal_does_not_run():
    result = compare(make_frame(2000, 1), make_frame(1500, 2), config={"monitoring": {
        "signals": {"data_drift": {"enabled": "False"}, "data_quality": {}}}})
    assert {s.signal for s in result.signals} == {"data_quality"}


@pytest.mark.parametrize(("config", "match"), [
    ({"monitoring": {"signal": {}}}, r"unknown key monitoring\.signal \(did you mean signals\?"),
    ({"monitoring": {"signals": {"drift": {"type": "data_drfit"}}}},
     r"monitoring\.signals\.drift\.type must be one of"),
    ({"monitoring": {"signals": {"mine": {}}}}, r"no type given, so the key is the type"),
    ({"monitoring": {"signals": {"data_drift": {"metric_thresholds": {"numerical": {
        "jensen_shanon_distance": 0.1}}}}}},
     r"unknown metric monitoring\.signals\.data_drift\.metric_thresholds\.numerical\."
     r"jensen_shanon_distance \(did you mean jensen_shannon_distance\?"),
    ({"monitoring": {"signals": {"data_drift": {"metric_thresholds": {"numerical": {
        "pearsons_chi_squared_test": 0.1}}}}}}, r"applies to categorical features only"),
    ({"monitoring": {"signals": {"data_drift": {"metric_thresholds": {"numerical": {
        "jensen_shannon_distance": "high"}}}}}}, r"numerical\.jensen_shannon_distance must be"),
    ({"monitoring": {"signals": {"data_drift": {"metric_thresholds": {"numerical": {
        "jensen_shannon_distance": float("nan")}}}}}}, r"must be a finite number"),
    ({"monitoring": {"signals": {"data_drift": {"metric_thresholds": {"text": {}}}}}},
     r"metric_thresholds\.text \(allowed: numerical, categorical\)"),
    ({"monitoring": {"signals": {"data_drift": {"label": "y"}}}},
     r"data_drift\.label applies to model_performance signals only"),
    ({"monitoring": {"signals": {"model_performance": {"metric_thresholds": {
        "classification": {"accuracyy": 0.9}}}}}}, r"did you mean accuracy"),
    ({"monitoring": {"min_samples": True}}, r"monitoring\.min_samples must be a whole number"),
    ({"monitoring": {"windows": "minute"}}, r"monitoring\.windows must be one of"),
    ({"monitoring": {"reference": {"path": "a.csv", "start": "2026-01-01"}}}, r"not both"),
    ({"monitoring": {"features": {"age": {"kind": "text"}}}},
     r"monitoring\.features\.age\.kind must be"),
    ({"monitoring": {"features": ["age"]}}, r"monitoring\.features must be a mapping"),
    ({"monitoring": {"ground_truth": {"path": "a.csv", "collection": "labels"}}},
     r"exactly one of path or collection"),
    ({"create_monitor": {"monitoring_signals": {"d": {"type": "data_drift"}}, "computee": {}}},
     r"unknown key create_monitor\.computee \(did you mean compute\?"),
    ([1, 2], r"the monitor configuration must be a mapping"),
])
def test_errors_name_the_key_path(config, match):
    with pytest.raises(ConfigError, match=match):
        parse_monitor_config(config)


@pytest.mark.parametrize(("content", "match"), [
    (b"monitoring: [unclosed", "not valid YAML"),
    (b"\xff\xfe\x00garbage", "not UTF-8"),
    (b"monitoring:\n  windows: " + b"x" * (1024 * 1024 + 1), "larger than"),
    (b"- just\n- a list\n", "must be a mapping"),
])
def test_bad_files_name_the_file(tmp_path, content, match):
    path = tmp_path / "monitor.yaml"
    path.write_bytes(content)
    with pytest.raises(ConfigError, match=match):
        load_monitor_config(path)


def test_missing_and_non_file_configs(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_monitor_config(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="is not a file"):
        load_monitor_config(tmp_path)


def test_an_empty_file_means_defaults(tmp_path):
    path = tmp_path / "monitor.yaml"
    path.write_text("")
    assert load_monitor_config(path) == load_monitor_config(None)


# Azure ML's model performance signal as its docs write it: column names under
# production_data / reference_data, thresholds under tabular_classification.
AZURE_PERFORMANCE = """
create_monitor:
  compute: {instance_type: standard_e8s_v3, runtime_version: "3.3"}
  monitoring_target:
    ml_task: classification
    endpoint_deployment_id: azureml:loan-approval-endpoint:loan-approval-deployment
  monitoring_signals:
    fraud_detection_model_performance:
      type: model_performance
      production_data:
        data_column_names:
          prediction: is_fraud
          correlation_id: correlation_id
      reference_data:
        input_data: {path: azureml:my_model_ground_truth_data:1, type: mltable}
        data_column_names:
          actual: is_fraud
          correlation_id: correlation_id
        data_context: actuals
      alert_enabled: true
      metric_thresholds:
        tabular_classification:
          accuracy: 0.95
          precision: 0.8
"""


def test_azure_ml_model_performance_yaml_runs_as_written(tmp_path):
    path = tmp_path / "monitor.yaml"
    path.write_text(AZURE_PERFORMANCE)
    [signal] = load_monitor_config(path).signals
    assert (signal.label, signal.prediction, signal.truth_key, signal.truth_on) == (
        "is_fraud", "is_fraud", "correlation_id", "_correlation_id")
    assert signal.thresholds == {"classification": {"accuracy": 0.95, "precision": 0.8}}
    n = 1200
    ids = [f"c{i}" for i in range(n)]
    predictions = [i % 3 == 0 for i in range(n)]
    labels = [p if i % 10 else not p for i, p in enumerate(predictions)]  # 90 % right
    current = {"model_inputs": make_frame(n, 1).assign(_correlation_id=ids),
               "model_outputs": pd.DataFrame({"_correlation_id": ids, "is_fraud": predictions})}
    truth = pd.DataFrame({"correlation_id": ids[::-1], "is_fraud": labels[::-1]})
    result = compare(make_frame(2000, 2), current, config=path, ground_truth=truth)
    got = {s.metric: (s.value, s.threshold, s.status) for s in result.signals}
    assert got["accuracy"] == (pytest.approx(0.9), 0.95, "breached")
    tp = sum(p and t for p, t in zip(predictions, labels, strict=True))
    assert got["precision"][0] == pytest.approx(tp / sum(predictions))
    assert got["recall"][0] == pytest.approx(tp / sum(labels))
    assert got["auc"][2] == "insufficient_data"  # no score column
