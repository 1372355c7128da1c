"""The monitor configuration: a ``monitoring:`` block, or Azure ML's monitor YAML parts.

One shape serves both. A signal is a mapping under ``monitoring.signals`` (or
Azure's ``monitoring_signals``, at the top of the file, under ``monitoring:`` or
under an Azure schedule's ``create_monitor:``), keyed by a name, with ``type``
(default: the key) one of data_drift, prediction_drift, data_quality,
model_performance, and ``metric_thresholds`` as Azure writes it::

    monitoring:
      reference: {path: train.parquet}        # or {start, end, deployment}
      windows: day                            # drift over time: hour, day or none
      min_samples: 1000
      features:                               # per-feature overrides, any signal
        age: {metric_thresholds: {jensen_shannon_distance: 0.2}, min_samples: 50}
      signals:
        inputs_drift:
          type: data_drift
          features: [age, country]            # or all_features
          metric_thresholds:
            numerical: {normalized_wasserstein_distance: 0.1}
            categorical: {pearsons_chi_squared_test: 0.01}

Azure's keys that only concern Azure (compute, production_data, alert
notifications, ...) are accepted and ignored; unknown keys are errors naming
their path, with a "did you mean" hint. Every error is a `ConfigError`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..pipeline.config import ConfigError, _bool, _known, _mapping, parse_yaml_file
from .metrics import DRIFT_METRICS, METRIC_ALIASES
from .performance import (
    CLASSIFICATION_METRICS,
    PERFORMANCE_ALIASES,
    REGRESSION_METRICS,
)
from .quality import QUALITY_METRICS

SIGNALS = ("data_drift", "prediction_drift", "data_quality", "model_performance")
DRIFT_SIGNALS = ("data_drift", "prediction_drift")
DEFAULT_MIN_SAMPLES = 1000
GRANULARITIES = ("hour", "day", "none", "auto")
DEFAULT_INPUTS, DEFAULT_OUTPUTS = ("model_inputs",), ("model_outputs",)
MAX_CONFIG_BYTES = 1024 * 1024
_FEATURE_TYPES = {"numerical": "numeric", "numeric": "numeric", "categorical": "categorical"}
_TASKS = {"classification": "classification", "regression": "regression",
          "tabular_classification": "classification", "tabular_regression": "regression"}

_MONITORING_KEYS = {"reference", "window", "windows", "min_samples", "bins", "features",
                    "signals", "monitoring_signals", "collections", "ground_truth",
                    "monitoring_target"}
_SIGNAL_KEYS = {"type", "features", "metric_thresholds", "collections", "enabled", "min_samples",
                # model_performance
                "label", "prediction", "score", "positive_label", "task", "data_column_names",
                # Azure ML's, accepted and ignored (they concern Azure's own jobs)
                "production_data", "reference_data", "alert_enabled", "alert_notification",
                "properties", "data_segment", "target_dataset", "baseline_dataset",
                "feature_data_type_override"}
_AZURE_TOP_KEYS = {"$schema", "name", "display_name", "description", "tags", "properties",
                   "trigger", "create_monitor", "version"}
_CREATE_MONITOR_KEYS = {"compute", "monitoring_target", "monitoring_signals",
                        "alert_notification", "properties"}
_FEATURE_KEYS = {"kind", "metric_thresholds", "min_samples"}
_REFERENCE_KEYS = {"path", "start", "end", "deployment", "collections"}
_GROUND_TRUTH_KEYS = {"path", "collection", "key", "on"}
_COLLECTION_KEYS = {"inputs", "outputs", "labels"}


@dataclass(frozen=True)
class FeatureOverride:
    kind: str | None = None
    thresholds: Mapping[str, float] = field(default_factory=dict)
    min_samples: int | None = None


@dataclass(frozen=True)
class GroundTruth:
    """Where labels come from: a file, or a collection of this deployment."""

    path: str | None = None
    collection: str | None = None
    key: str = "correlation_id"  # the labels' column to match
    on: str = "_correlation_id"  # the collected column it matches


@dataclass(frozen=True)
class SignalConfig:
    name: str
    type: str
    features: tuple[str, ...] | None = None  # None: all
    # kind -> metric -> threshold (None: the metric's default); a kind absent: defaults
    thresholds: Mapping[str, Mapping[str, float | None]] = field(default_factory=dict)
    collections: tuple[str, ...] | None = None
    min_samples: int | None = None
    # model_performance
    label: str | None = None
    prediction: str | None = None
    score: str | None = None
    positive_label: Any = None
    task: str | None = None
    truth_key: str | None = None  # the labels' column to match (Azure: reference_data's
    truth_on: str | None = None  # correlation_id) and the collected one (production_data's)


@dataclass(frozen=True)
class ReferenceConfig:
    path: str | None = None
    start: Any = None
    end: Any = None
    deployment: str | None = None
    collections: Mapping[str, str] = field(default_factory=dict)  # collection -> file


@dataclass(frozen=True)
class MonitorConfig:
    """A validated monitor configuration (`load_monitor_config`)."""

    signals: tuple[SignalConfig, ...] | None = None  # None: the default signals
    reference: ReferenceConfig | None = None
    window: tuple[Any, Any] = (None, None)
    granularity: str = "auto"
    min_samples: int = DEFAULT_MIN_SAMPLES
    bins: int = 10
    features: Mapping[str, FeatureOverride] = field(default_factory=dict)
    inputs: tuple[str, ...] = DEFAULT_INPUTS
    outputs: tuple[str, ...] = DEFAULT_OUTPUTS
    ground_truth: GroundTruth | None = None
    task: str | None = None
    notes: tuple[str, ...] = ()


def load_monitor_config(source: str | os.PathLike[str] | Mapping[str, Any] | MonitorConfig | None
                        ) -> MonitorConfig:
    """A MonitorConfig from a YAML file, a mapping, or None (defaults)."""
    if source is None:
        return MonitorConfig()
    if isinstance(source, MonitorConfig):
        return source
    if isinstance(source, Mapping):
        return parse_monitor_config(source)
    if not isinstance(source, (str, os.PathLike)):
        raise TypeError(f"config must be a path or a mapping, not {type(source).__name__}")
    path = Path(source)
    try:
        if not path.is_file():
            raise ConfigError(f"monitor configuration {str(path)!r} "
                              f"{'is not a file' if path.exists() else 'does not exist'}")
        if path.stat().st_size > MAX_CONFIG_BYTES:
            raise ConfigError(f"monitor configuration {str(path)!r} is larger than "
                              f"{MAX_CONFIG_BYTES} bytes")
    except OSError as e:
        raise ConfigError(f"cannot read monitor configuration {str(path)!r}: {e.strerror}"
                          ) from None
    return parse_yaml_file(path, lambda data: parse_monitor_config({} if data is None else data),
                           "monitor configuration")


def _int(value: Any, key: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ConfigError(f"{key} must be a whole number from {lo} to {hi}, not {value!r}")
    return value


def _number(value: Any, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value \
            or value in (float("inf"), float("-inf")):
        raise ConfigError(f"{key} must be a finite number, not {value!r}")
    return float(value)


def _text(value: Any, key: str) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{key} must be a non-empty string, not {value!r}")
    return value


def _names(value: Any, key: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value:
        raise ConfigError(f"{key} must be a non-empty list of names, not {value!r}")
    return tuple(_text(v, f"{key}[{i}]") for i, v in enumerate(value))


def _metric_name(name: Any, allowed: tuple[str, ...], aliases: Mapping[str, str], key: str) -> str:
    name = aliases.get(name, name) if isinstance(name, str) else name
    if name not in allowed:
        import difflib

        close = difflib.get_close_matches(str(name), allowed, n=1)
        hint = f"did you mean {close[0]}? " if close else ""
        raise ConfigError(f"unknown metric {key}.{name} ({hint}allowed: {', '.join(allowed)})")
    return str(name)


def _metric_map(value: Any, key: str, allowed: tuple[str, ...], aliases: Mapping[str, str]
                ) -> dict[str, float | None]:
    """{metric: threshold}; a list of names means default thresholds."""
    if isinstance(value, list):
        return {_metric_name(v, allowed, aliases, key): None for v in value}
    _mapping(value, key)
    return {_metric_name(k, allowed, aliases, key): (None if v is None else _number(v, f"{key}.{k}"))
            for k, v in value.items()}


def _thresholds(value: Any, key: str, signal: str) -> dict[str, dict[str, float | None]]:
    _mapping(value, key)
    if signal == "model_performance":
        out: dict[str, dict[str, float | None]] = {}
        for written, metrics in value.items():
            task = _TASKS.get(written)
            if task is None:
                raise ConfigError(f"unknown key {key}.{written} (allowed: classification, "
                                  "regression, tabular_classification, tabular_regression)")
            allowed = CLASSIFICATION_METRICS if task == "classification" else REGRESSION_METRICS
            out[task] = _metric_map(metrics, f"{key}.{written}", allowed, PERFORMANCE_ALIASES)
        return out
    allowed = tuple(DRIFT_METRICS) if signal in DRIFT_SIGNALS else QUALITY_METRICS
    aliases = METRIC_ALIASES if signal in DRIFT_SIGNALS else {}
    out = {}
    for feature_type, metrics in value.items():
        kind = _FEATURE_TYPES.get(feature_type)
        if kind is None:
            raise ConfigError(f"unknown key {key}.{feature_type} (allowed: numerical, categorical)")
        chosen = _metric_map(metrics, f"{key}.{feature_type}", allowed, aliases)
        if signal in DRIFT_SIGNALS:
            for name in chosen:
                if kind not in DRIFT_METRICS[name].kinds:
                    raise ConfigError(f"{key}.{feature_type}.{name}: {name} applies to "
                                      f"{' and '.join(sorted(DRIFT_METRICS[name].kinds))} "
                                      "features only")
        out[kind] = chosen
    return out


def _features(value: Any, key: str, notes: list[str]) -> tuple[str, ...] | None:
    if value in (None, "all_features"):
        return None
    if isinstance(value, Mapping):
        _known(value, {"top_n_feature_importance", "all_features"}, f"{key}.")
        notes.append(f"{key}: feature importance is not known here; all features are monitored")
        return None
    return _names(value, key)


def _column_names(value: Any, key: str) -> dict[str, str]:
    _mapping(value, key)
    _known(value, {"prediction", "prediction_probability", "actual", "correlation_id"}, f"{key}.")
    return {k: _text(v, f"{key}.{k}") for k, v in value.items()}


def _azure_column_names(spec: Mapping[str, Any], key: str) -> dict[str, str]:
    """Azure's `data_column_names`, on the signal or in its production_data (the predictions:
    `prediction`, `correlation_id`) and reference_data (the ground truth: `actual`,
    `correlation_id`)."""
    names: dict[str, str] = {}
    if "data_column_names" in spec:
        names.update(_column_names(spec["data_column_names"], f"{key}.data_column_names"))
    for part in ("production_data", "reference_data"):
        entries = spec.get(part)
        entries = entries if isinstance(entries, list) else [] if entries is None else [entries]
        for i, entry in enumerate(entries):
            if not isinstance(entry, Mapping) or "data_column_names" not in entry:
                continue
            where = f"{key}.{part}" + (f"[{i}]" if isinstance(spec.get(part), list) else "")
            got = _column_names(entry["data_column_names"], f"{where}.data_column_names")
            if "correlation_id" in got:
                if part == "reference_data":
                    names["truth_key"] = got.pop("correlation_id")
                else:
                    on = got.pop("correlation_id")
                    names["truth_on"] = "_correlation_id" if on == "correlation_id" else on
            names.update(got)
    names.pop("correlation_id", None)
    return names


def _signal(name: str, spec: Any, key: str, notes: list[str]) -> SignalConfig | None:
    _mapping(spec, key)
    _known(spec, _SIGNAL_KEYS, f"{key}.")
    kind = spec.get("type", name)
    if kind not in SIGNALS:
        raise ConfigError(f"{key}.type must be one of {', '.join(SIGNALS)}, not {kind!r}"
                          + ("" if "type" in spec else " (no type given, so the key is the type)"))
    if "enabled" in spec and not _bool(spec["enabled"], f"{key}.enabled"):
        return None
    if "data_segment" in spec:
        notes.append(f"{key}.data_segment is not supported: the whole window is monitored")
    values: dict[str, Any] = {"name": name, "type": kind,
                              "features": _features(spec.get("features"), f"{key}.features", notes)}
    if "metric_thresholds" in spec:
        values["thresholds"] = _thresholds(spec["metric_thresholds"], f"{key}.metric_thresholds",
                                           kind)
    if "collections" in spec:
        values["collections"] = _names(spec["collections"], f"{key}.collections")
    if "min_samples" in spec:
        values["min_samples"] = _int(spec["min_samples"], f"{key}.min_samples", 1, 10**9)
    for column in ("label", "prediction", "score", "task"):
        if column in spec:
            values[column] = _text(spec[column], f"{key}.{column}")
    names = _azure_column_names(spec, key)
    for ours, azure in (("label", "actual"), ("prediction", "prediction"),
                        ("score", "prediction_probability"), ("truth_key", "truth_key"),
                        ("truth_on", "truth_on")):
        if names.get(azure) is not None:
            values.setdefault(ours, names[azure])
    if values.get("task") not in (None, "classification", "regression"):
        raise ConfigError(f"{key}.task must be classification or regression, not {spec['task']!r}")
    if "positive_label" in spec:
        values["positive_label"] = spec["positive_label"]
    if kind != "model_performance":
        for column in ("label", "prediction", "score", "task", "positive_label", "truth_key",
                       "truth_on"):
            if values.get(column) is not None and column in spec:
                raise ConfigError(f"{key}.{column} applies to model_performance signals only")
    return SignalConfig(**values)


def _signals(spec: Any, key: str, notes: list[str]) -> tuple[SignalConfig, ...]:
    _mapping(spec, key)
    out = []
    for name, signal in spec.items():
        if not isinstance(name, str) or not name:
            raise ConfigError(f"{key} keys must be signal names, not {name!r}")
        parsed = _signal(name, signal, f"{key}.{name}", notes)
        if parsed is not None:
            out.append(parsed)
    return tuple(out)


def _reference(spec: Any, key: str) -> ReferenceConfig:
    if isinstance(spec, str):
        return ReferenceConfig(path=_text(spec, key))
    _mapping(spec, key)
    _known(spec, _REFERENCE_KEYS, f"{key}.")
    collections = {}
    if "collections" in spec:
        _mapping(spec["collections"], f"{key}.collections")
        collections = {_text(c, f"{key}.collections"): _text(p, f"{key}.collections.{c}")
                       for c, p in spec["collections"].items()}
    ref = ReferenceConfig(
        path=None if spec.get("path") is None else _text(spec["path"], f"{key}.path"),
        start=spec.get("start"), end=spec.get("end"),
        deployment=None if spec.get("deployment") is None else _text(spec["deployment"],
                                                                        f"{key}.deployment"),
        collections=collections)
    has_file, has_window = bool(ref.path or ref.collections), ref.start is not None or \
        ref.end is not None
    if has_file and has_window:
        raise ConfigError(f"{key}: give a file (path / collections) or a window (start, end), "
                          "not both")
    if ref.deployment and has_file:
        raise ConfigError(f"{key}.deployment applies to a reference window only")
    return ref


def _ground_truth(spec: Any, key: str) -> GroundTruth:
    if isinstance(spec, str):
        return GroundTruth(path=_text(spec, key))
    _mapping(spec, key)
    _known(spec, _GROUND_TRUTH_KEYS, f"{key}.")
    if ("path" in spec) == ("collection" in spec):
        raise ConfigError(f"{key}: give exactly one of path or collection")
    return GroundTruth(**{k: _text(v, f"{key}.{k}") for k, v in spec.items()})


def _feature_overrides(spec: Any, key: str) -> dict[str, FeatureOverride]:
    _mapping(spec, key)
    out = {}
    allowed = tuple(DRIFT_METRICS) + QUALITY_METRICS
    for name, override in spec.items():
        fkey = f"{key}.{name}"
        _mapping(override, fkey)
        _known(override, _FEATURE_KEYS, f"{fkey}.")
        kind = override.get("kind")
        if kind is not None and _FEATURE_TYPES.get(kind) is None:
            raise ConfigError(f"{fkey}.kind must be numerical or categorical, not {kind!r}")
        thresholds = {}
        if "metric_thresholds" in override:
            thresholds = {k: v for k, v in _metric_map(
                override["metric_thresholds"], f"{fkey}.metric_thresholds", allowed,
                METRIC_ALIASES).items() if v is not None}
        out[str(name)] = FeatureOverride(
            kind=None if kind is None else _FEATURE_TYPES[kind], thresholds=thresholds,
            min_samples=None if "min_samples" not in override else _int(
                override["min_samples"], f"{fkey}.min_samples", 1, 10**9))
    return out


def parse_monitor_config(data: Any) -> MonitorConfig:
    """Validate a monitor configuration mapping; ConfigError names the first bad key."""
    _mapping(data, "the monitor configuration")
    if "monitoring" in data:
        _known(data, _AZURE_TOP_KEYS | {"monitoring"}, "")
        block = data["monitoring"]
        _mapping(block, "monitoring")
        prefix = "monitoring."
    elif "create_monitor" in data:  # a whole Azure ML monitor schedule
        _known(data, _AZURE_TOP_KEYS, "")
        block = data["create_monitor"]
        _mapping(block, "create_monitor")
        _known(block, _CREATE_MONITOR_KEYS, "create_monitor.")
        prefix = "create_monitor."
    else:
        block, prefix = data, ""
    _known(block, _MONITORING_KEYS | (_CREATE_MONITOR_KEYS if prefix != "monitoring." else set()),
           prefix)
    notes: list[str] = []
    values: dict[str, Any] = {}
    for signals_key in ("signals", "monitoring_signals"):
        if signals_key in block:
            if "signals" in values:
                raise ConfigError(f"{prefix}signals and {prefix}monitoring_signals: give one")
            values["signals"] = _signals(block[signals_key], prefix + signals_key, notes)
    if block.get("reference") is not None:
        values["reference"] = _reference(block["reference"], prefix + "reference")
    if "window" in block:
        window = block["window"]
        _mapping(window, prefix + "window")
        _known(window, {"start", "end"}, prefix + "window.")
        values["window"] = (window.get("start"), window.get("end"))
    if "windows" in block:
        granularity = block["windows"]
        if isinstance(granularity, Mapping):
            _known(granularity, {"granularity"}, prefix + "windows.")
            granularity = granularity.get("granularity")
        if granularity not in GRANULARITIES:
            raise ConfigError(f"{prefix}windows must be one of {', '.join(GRANULARITIES)}, "
                              f"not {granularity!r}")
        values["granularity"] = granularity
    if "min_samples" in block:
        values["min_samples"] = _int(block["min_samples"], prefix + "min_samples", 1, 10**9)
    if "bins" in block:
        values["bins"] = _int(block["bins"], prefix + "bins", 2, 1000)
    if "features" in block:
        values["features"] = _feature_overrides(block["features"], prefix + "features")
    if "collections" in block:
        spec = block["collections"]
        _mapping(spec, prefix + "collections")
        _known(spec, _COLLECTION_KEYS, prefix + "collections.")
        for name in ("inputs", "outputs"):
            if name in spec:
                values[name] = _names(spec[name], f"{prefix}collections.{name}")
    if block.get("ground_truth") is not None:
        values["ground_truth"] = _ground_truth(block["ground_truth"], prefix + "ground_truth")
    target = block.get("monitoring_target")
    if target is not None:
        _mapping(target, prefix + "monitoring_target")
        task = target.get("ml_task")
        if task is not None:
            if str(task).lower() not in ("classification", "regression"):
                raise ConfigError(f"{prefix}monitoring_target.ml_task must be classification or "
                                  f"regression, not {task!r}")
            values["task"] = str(task).lower()
    values["notes"] = tuple(notes)
    return MonitorConfig(**values)
