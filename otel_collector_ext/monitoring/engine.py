"""`monitor`: compare a window of collected data with a reference, and give verdicts.

For each monitored collection, each data column (a *feature*) is summarised in
the reference and in the current window (`summaries`), and the signals'
metrics are computed on the two summaries: `data_drift` for input collections,
`prediction_drift` for the outputs collection, `data_quality` for both, and
`model_performance` where ground truth is known. Drift is computed again per
hour or day of the window (drift over time). Rows are read through the
read-back API (`load`, `join_inputs_outputs`) only when a `SummarySource`
(merged ingest profiles) cannot answer.

Nothing here raises on data: a feature too small, constant, all null, mistyped
or missing from the reference gets a documented status (`insufficient_data`
with a reason, or a data-quality breach); bad arguments and configuration
raise ValueError / TypeError / ConfigError.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from exporters.avro.schema import CORRELATION_ID, ENVELOPE_NAMES, TIME
from exporters.avro.schema_evolution import MISMATCH_SUFFIX
from exporters.storage import Storage

from ..reading.catalog import has_collection
from ..reading.readback import (
    TimeLike,
    _check_names,
    _join_ground_truth,
    _storage,
    join_inputs_outputs,
    load,
    time_range,
)
from .config import (
    DRIFT_SIGNALS,
    GroundTruth,
    MonitorConfig,
    ReferenceConfig,
    SignalConfig,
    load_monitor_config,
)
from .metrics import DEFAULT_DRIFT_METRICS, DRIFT_METRICS
from .performance import (
    CLASSIFICATION_METRICS,
    REGRESSION_METRICS,
    classification,
    infer_task,
    regression,
)
from .performance import breached as performance_breached
from .profiles_source import ProfileSummaries
from .quality import QUALITY_METRICS, default_threshold, rate
from .reference import read_table
from .result import FeatureComparison, MonitorResult, SignalResult, Skipped, WindowResult
from .summaries import (
    MAX_CATEGORIES,
    ColumnSummary,
    SummarySource,
    feature_kind,
    monitored_columns,
    summarize_column,
)
from .telemetry import record_metrics
from .traffic import traffic

DEFAULT_WINDOW = timedelta(hours=24)
#: Drift over time: hourly up to this span, daily beyond it, none past MAX_SERIES windows.
HOURLY_UP_TO = timedelta(hours=48)
MAX_SERIES = 400
ReferenceLike = pd.DataFrame | str | os.PathLike[str] | Mapping[str, "pd.DataFrame | str"]


@dataclass(frozen=True)
class _Window:
    start: datetime
    end: datetime


def _default_signals(config: MonitorConfig, with_truth: bool) -> tuple[SignalConfig, ...]:
    names = ["data_drift", "prediction_drift", "data_quality"]
    if with_truth:
        names.append("model_performance")
    return tuple(SignalConfig(name=n, type=n) for n in names)


def _named(frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` with text column names (a caller's frame may have 0, 1, ... as names)."""
    if all(isinstance(c, str) for c in frame.columns):
        return frame
    return frame.rename(columns=str)


class _Reference:
    """The reference rows per collection: one file or frame for all, a file per collection,
    or a window of collected data (this deployment's or another's)."""

    def __init__(self, storage: Storage | None, endpoint: str, deployment: str,
                 spec: ReferenceConfig | None, frame: ReferenceLike | None, workers: int | None) -> None:
        self._storage, self._endpoint, self._deployment = storage, endpoint, deployment
        self._workers = workers
        self._frames: dict[str, pd.DataFrame] = {}
        self._shared: pd.DataFrame | None = None
        self._files: dict[str, Any] = {}
        self.window: tuple[datetime | None, datetime | None] | None = None
        self.describe: dict[str, Any] = {"kind": None, "path": None, "deployment": None,
                                         "start": None, "end": None, "rows": {}}
        if frame is not None:
            if isinstance(frame, pd.DataFrame):
                self._shared = _named(frame)
                self.describe["kind"] = "frame"
            elif isinstance(frame, Mapping):
                self._files = dict(frame)
                self.describe["kind"] = "file"
                self.describe["path"] = {c: str(p) if not isinstance(p, pd.DataFrame) else None
                                         for c, p in frame.items()}
            elif isinstance(frame, (str, os.PathLike)):
                self._shared = read_table(frame)
                self.describe.update(kind="file", path=str(frame))
            else:
                raise TypeError("reference must be a DataFrame, a file path or a mapping of "
                                f"collection to either, not {type(frame).__name__}")
            return
        if spec is None or not (spec.path or spec.collections or spec.start or spec.end):
            raise ValueError("no reference: give a reference file (Parquet, CSV, JSON Lines) or "
                             "a reference window (reference_start, reference_end)")
        if spec.path or spec.collections:
            if spec.path:
                self._shared = read_table(spec.path)
            self._files = dict(spec.collections)
            self.describe.update(kind="file", path=spec.path or dict(spec.collections))
            return
        lo, hi = time_range(spec.start, spec.end)
        if lo is None or hi is None:
            raise ValueError("a reference window needs both a start and an end")
        self.window = (lo, hi)
        self._deployment = spec.deployment or deployment
        _check_names(reference_deployment=self._deployment)
        self.describe.update(kind="window", deployment=self._deployment, start=lo.isoformat(),
                             end=hi.isoformat())

    def frame(self, collection: str) -> pd.DataFrame:
        if collection not in self._frames:
            if collection in self._files:
                source = self._files[collection]
                frame = _named(source) if isinstance(source, pd.DataFrame) else read_table(source)
            elif self._shared is not None:
                frame = self._shared
            elif self.window is not None and self._storage is not None:
                frame = load(self._storage, endpoint=self._endpoint, deployment=self._deployment,
                             collection=collection, start=self.window[0], end=self.window[1],
                             workers=self._workers)
            else:
                frame = pd.DataFrame()
            self._frames[collection] = frame
            self.describe["rows"][collection] = len(frame)
        return self._frames[collection]


class _Current:
    """The current window's rows per collection, read once and only when needed."""

    def __init__(self, storage: Storage | None, endpoint: str, deployment: str, window: _Window,
                 workers: int | None, frames: Mapping[str, pd.DataFrame] | None = None) -> None:
        self._storage, self._endpoint, self._deployment = storage, endpoint, deployment
        self._window, self._workers = window, workers
        self._frames: dict[str, pd.DataFrame] = dict(frames or {})

    def frame(self, collection: str) -> pd.DataFrame:
        if collection not in self._frames:
            if self._storage is None:
                raise ValueError(f"no current data for collection {collection!r}")
            self._frames[collection] = load(
                self._storage, endpoint=self._endpoint, deployment=self._deployment,
                collection=collection, start=self._window.start, end=self._window.end,
                workers=self._workers)
        return self._frames[collection]

    def rows(self) -> dict[str, int]:
        return {c: len(f) for c, f in self._frames.items()}


def _series_of(frame: pd.DataFrame, feature: str, window: _Window | None = None
               ) -> tuple[pd.Series, pd.Series | None]:
    if window is not None and len(frame):
        times = frame[TIME]
        frame = frame[(times >= window.start) & (times < window.end)]
    series = frame[feature] if feature in frame.columns else pd.Series([], dtype="object")
    keeper = feature + MISMATCH_SUFFIX
    return series, frame[keeper] if keeper in frame.columns else None


class _Engine:
    def __init__(self, config: MonitorConfig, reference: _Reference, current: _Current,
                 summaries: SummarySource | None, window: _Window) -> None:
        self.config, self.reference, self.current = config, reference, current
        self.source, self.window = summaries, window
        self.signals: list[SignalResult] = []
        self.features: list[FeatureComparison] = []
        self.skipped: list[Skipped] = []
        self.series: dict[tuple[datetime, datetime], list[SignalResult]] = {}

    # -- thresholds ----------------------------------------------------------------------
    def _min_samples(self, signal: SignalConfig, feature: str) -> int:
        override = self.config.features.get(feature)
        if override is not None and override.min_samples is not None:
            return override.min_samples
        return signal.min_samples or self.config.min_samples

    def _drift_metrics(self, signal: SignalConfig, feature: str, kind: str
                       ) -> dict[str, float]:
        chosen = signal.thresholds.get(kind)
        if chosen is None:
            chosen = dict.fromkeys(DEFAULT_DRIFT_METRICS[kind])  # type: ignore[index]
        metrics = {m: DRIFT_METRICS[m].default_threshold if t is None else t
                   for m, t in chosen.items()}
        override = self.config.features.get(feature)
        for m, t in (override.thresholds.items() if override else ()):
            if m in DRIFT_METRICS and kind in DRIFT_METRICS[m].kinds:
                metrics[m] = t
        return metrics

    # -- summaries -----------------------------------------------------------------------
    def _current_summary(self, collection: str, feature: str, like: ColumnSummary,
                         window: _Window, needs_values: bool | str) -> ColumnSummary:
        """From the summary source when it answers, else from rows. `needs_values`:
        False, True (values or a sketch's weighted points), or "exact" (the KS test)."""
        if self.source is not None:
            got = self.source.summarize(collection, feature, window.start, window.end, like=like)
            exact = got is not None and got.values is not None and got.weights is None
            if got is not None and (like.kind != "numeric" or not needs_values
                                    or (got.values is not None and needs_values is True)
                                    or exact):
                return got
        frame = self.current.frame(collection)
        series, keeper = _series_of(frame, feature, None if window == self.window else window)
        return summarize_column(series, like=like, mismatched=keeper)

    # -- one collection --------------------------------------------------------------------
    def run_collection(self, collection: str, signals: Sequence[SignalConfig],
                       series_windows: Sequence[_Window]) -> None:
        ref_frame = self.reference.frame(collection)
        columns = self._columns(collection)
        if columns is None:
            for signal in signals:
                self.signals.append(SignalResult(
                    signal.type, collection, "*", "*", None, None, "insufficient_data",
                    None, 0, "no rows in the current window"))
            return
        ref_columns = set(monitored_columns(ref_frame)) if len(ref_frame.columns) else set()
        for feature in columns:
            self._feature(collection, feature, ref_frame, feature in ref_columns, signals,
                          series_windows)

    def _columns(self, collection: str) -> list[str] | None:
        """The collection's data columns in the window (None: no rows), from the source if
        it can tell (not the envelope, not the `__mismatch` keepers)."""
        listed = getattr(self.source, "columns", None)
        if callable(listed):
            columns = listed(collection, self.window.start, self.window.end)
            if columns is not None:
                return [c for c in columns if c not in ENVELOPE_NAMES
                        and not c.endswith(MISMATCH_SUFFIX)] or None
        frame = self.current.frame(collection)
        if not len(frame):
            return None
        return monitored_columns(frame)

    def _feature(self, collection: str, feature: str, ref_frame: pd.DataFrame, in_reference: bool,
                 signals: Sequence[SignalConfig], series_windows: Sequence[_Window]) -> None:
        wanted = [s for s in signals if s.features is None or feature in s.features]
        if not wanted:
            return
        override = self.config.features.get(feature)
        ref: ColumnSummary | None = None
        kind: str | None = None
        if in_reference:
            ref_series, ref_keeper = _series_of(ref_frame, feature)
            kind = (override.kind if override and override.kind else feature_kind(ref_series))
            if kind is not None:
                ref = summarize_column(ref_series, kind,  # type: ignore[arg-type]
                                       mismatched=ref_keeper, bins=self.config.bins)
        metrics = [m for s in wanted if s.type in DRIFT_SIGNALS
                   for m in self._drift_metrics(s, feature, "numeric")]
        needs_values: bool | str = ref is not None and ref.kind == "numeric" and any(
            DRIFT_METRICS[m].needs_values for m in metrics)
        if needs_values and "two_sample_kolmogorov_smirnov_test" in metrics:
            needs_values = "exact"  # its p-value needs the rows, not a sketch's points
        cur = None if ref is None else self._current_summary(collection, feature, ref,
                                                               self.window, needs_values)
        if ref is None:
            reason = ("not in the reference" if not in_reference else
                      "not a numeric or categorical column (datetime, list, bytes, or an id / "
                      f"free text with more than {MAX_CATEGORIES} distinct values)")
            self.skipped.append(Skipped(collection, feature, reason))
        else:
            self.features.append(FeatureComparison(collection, feature, ref.kind, ref, cur))
        for signal in wanted:
            if signal.type in DRIFT_SIGNALS:
                if not self._applies(signal, collection):
                    continue
                self.signals.extend(self._drift(signal, collection, feature, ref, cur))
                for w in series_windows:
                    if ref is None:
                        continue
                    cur_w = self._current_summary(collection, feature, ref, w, needs_values)
                    self.series.setdefault((w.start, w.end), []).extend(
                        self._drift(signal, collection, feature, ref, cur_w))
            elif signal.type == "data_quality" and self._applies(signal, collection):
                self.signals.extend(self._quality(signal, collection, feature, ref, cur,
                                                  in_reference))

    def _applies(self, signal: SignalConfig, collection: str) -> bool:
        if signal.collections is not None:
            return collection in signal.collections
        if signal.type == "prediction_drift":
            return collection in self.config.outputs
        if signal.type == "data_drift":
            return collection not in self.config.outputs
        return True

    def _drift(self, signal: SignalConfig, collection: str, feature: str,
               ref: ColumnSummary | None, cur: ColumnSummary | None) -> list[SignalResult]:
        if ref is None or cur is None:
            reason = "not in the reference" if ref is None else "no current summary"
            return [SignalResult(signal.type, collection, feature, "*", None, None,
                                 "insufficient_data", None, None, reason)]
        minimum = self._min_samples(signal, feature)
        out = []
        for name, threshold in self._drift_metrics(signal, feature, ref.kind).items():
            metric = DRIFT_METRICS[name]
            status, value, reason = "ok", None, None
            if ref.count < minimum:
                status, reason = "insufficient_data", (
                    f"the reference has {ref.count} value(s), fewer than {minimum}")
            elif cur.count < minimum:
                status, reason = "insufficient_data", (
                    f"the current window has {cur.count} value(s) of the reference's type, "
                    f"fewer than {minimum}")
            else:
                try:
                    with np.errstate(over="ignore", invalid="ignore"):  # extreme values: inf
                        value = metric.compute(ref, cur)
                except ValueError as e:
                    status, reason = "insufficient_data", str(e)
                else:
                    if not math.isfinite(value):
                        status, reason, value = "insufficient_data", "undefined on this data", None
                    elif metric.breached(value, threshold):
                        status = "breached"
            out.append(SignalResult(signal.type, collection, feature, name, value, threshold,
                                    status, ref.count, cur.count, reason))  # type: ignore[arg-type]
        return out

    def _quality(self, signal: SignalConfig, collection: str, feature: str,
                 ref: ColumnSummary | None, cur: ColumnSummary | None, in_reference: bool
                 ) -> list[SignalResult]:
        if cur is None:  # no usable reference summary: the null rate still says something
            series, keeper = _series_of(self.current.frame(collection), feature)
            cur = summarize_column(series, "categorical", mismatched=keeper)
            cur.type_errors, cur.out_of_bounds = 0, None
        kind = ref.kind if ref is not None else None
        chosen = signal.thresholds.get(kind) if kind else None
        metrics = dict(chosen) if chosen is not None else dict.fromkeys(QUALITY_METRICS)
        override = self.config.features.get(feature)
        for m, t in (override.thresholds.items() if override else ()):
            if m in QUALITY_METRICS:
                metrics[m] = t
        minimum = self._min_samples(signal, feature)
        out = []
        for name, configured in metrics.items():
            threshold = default_threshold(name, ref) if configured is None else configured
            value = rate(name, cur)
            status, reason = "ok", None
            if ref is None and name != "null_value_rate":
                status, value, reason = "insufficient_data", None, (
                    "not in the reference" if not in_reference else "no reference type")
            elif cur.total < minimum:
                status, reason = "insufficient_data", (
                    f"the current window has {cur.total} row(s), fewer than {minimum}")
                value = None
            elif value is None:
                status, reason = "insufficient_data", "no values to compare"
            elif value > threshold:
                status = "breached"
            out.append(SignalResult(signal.type, collection, feature, name, value, threshold,
                                    status, None if ref is None else ref.total, cur.total,
                                    reason))  # type: ignore[arg-type]
        return out


def _series_windows(window: _Window, granularity: str) -> tuple[str, list[_Window]]:
    span = window.end - window.start
    if granularity == "auto":
        granularity = "hour" if span <= HOURLY_UP_TO else "day"
    if granularity == "none":
        return "none", []
    step = timedelta(hours=1) if granularity == "hour" else timedelta(days=1)
    first = pd.Timestamp(window.start).floor("h" if granularity == "hour" else "D").to_pydatetime()
    count = math.ceil((window.end - first) / step)
    if count > MAX_SERIES:
        return "none", []
    out = []
    for i in range(count):
        lo, hi = first + i * step, first + (i + 1) * step
        out.append(_Window(max(lo, window.start), min(hi, window.end)))
    return granularity, out


def _ground_truth_frame(storage: Storage | None, endpoint: str, deployment: str,
                        truth: pd.DataFrame | str | os.PathLike[str] | None,
                        spec: GroundTruth | None, labels_collection: str | None,
                        window: _Window, workers: int | None
                        ) -> tuple[pd.DataFrame | None, str, str]:
    """(labels, their key column, the collected column it matches)."""
    key, on = (spec.key, spec.on) if spec else ("correlation_id", CORRELATION_ID)
    if isinstance(truth, pd.DataFrame):
        return truth, key, on
    if truth is not None:
        return read_table(truth, "ground truth"), key, on
    collection = labels_collection or (spec.collection if spec else None)
    if collection is None:
        if spec is not None and spec.path:
            return read_table(spec.path, "ground truth"), key, on
        return None, key, on
    _check_names(labels_collection=collection)
    if storage is None:
        raise ValueError("a labels collection needs collected data: use monitor(), not compare()")
    labels = load(storage, endpoint=endpoint, deployment=deployment, collection=collection,
                  start=window.start, workers=workers)  # labels arrive after the predictions
    if spec is None or spec.key == "correlation_id":
        key = CORRELATION_ID
    return labels, key, on


def _performance(signal: SignalConfig, config: MonitorConfig, joined: pd.DataFrame,
                 outputs: pd.DataFrame, truth_given: bool) -> list[SignalResult]:
    collection = config.outputs[0]
    label = signal.label or "label"
    prediction = signal.prediction
    if prediction is None:
        data = monitored_columns(outputs)
        prediction = data[0] if len(data) == 1 else "prediction"
    prediction = prediction or "prediction"
    task = signal.task or config.task

    def insufficient(reason: str, metrics: Sequence[str]) -> list[SignalResult]:
        return [SignalResult("model_performance", collection, prediction, m, None,
                             _perf_threshold(signal, task, m), "insufficient_data", None, 0,
                             reason) for m in metrics]

    all_metrics = (CLASSIFICATION_METRICS if task == "classification" else REGRESSION_METRICS
                   if task == "regression" else CLASSIFICATION_METRICS)
    label_column = next((c for c in (label + "_truth", label) if c in joined.columns), None)
    if label_column is None or prediction not in joined.columns:
        missing = label if label_column is None else prediction
        hint = "" if truth_given else (
            "; no ground truth given (a labels file or collection) and none collected")
        return insufficient(f"no column {missing!r} in the joined data "
                            f"(columns: {', '.join(map(str, joined.columns[:30]))}){hint}",
                            all_metrics)
    pairs = joined[[label_column, prediction] + ([signal.score] if signal.score in joined.columns
                                                 else [])].dropna()
    task = task or infer_task(pairs[label_column])
    metrics = CLASSIFICATION_METRICS if task == "classification" else REGRESSION_METRICS
    minimum = signal.min_samples or config.min_samples
    if len(pairs) < minimum:
        return insufficient(f"{len(pairs)} labelled prediction(s), fewer than {minimum}", metrics)
    y_true, y_pred = pairs[label_column].to_numpy(), pairs[prediction].to_numpy()
    try:
        if task == "classification":
            scores = pairs[signal.score].to_numpy(dtype="float64") if signal.score in \
                pairs.columns else None
            values = classification(y_true, y_pred, scores, signal.positive_label)
        else:
            values = regression(y_true.astype("float64"), y_pred.astype("float64"))
    except (TypeError, ValueError) as e:
        return insufficient(f"labels and predictions cannot be compared: {e}", metrics)
    out = []
    for m in metrics:
        value, threshold = values[m], _perf_threshold(signal, task, m)
        if value is None:
            status, reason = "insufficient_data", ("needs a score column and both classes"
                                                   if m == "auc" else "undefined on this data")
        else:
            status = "breached" if threshold is not None and performance_breached(
                m, value, threshold) else "ok"
            reason = None if threshold is not None else "no threshold configured"
        out.append(SignalResult("model_performance", collection, prediction, m, value, threshold,
                                status, None, len(pairs), reason))  # type: ignore[arg-type]
    return out


def _perf_threshold(signal: SignalConfig, task: str | None, metric: str) -> float | None:
    return (signal.thresholds.get(task or "", {}) or {}).get(metric)


def _evaluate(cfg: MonitorConfig, ref: _Reference, current: _Current, chosen: Sequence[str],
              window: _Window, summaries: SummarySource | None,
              truth: tuple[pd.DataFrame | None, str, str],
              joined: Callable[[pd.DataFrame | None, str, str], pd.DataFrame] | None,
              endpoint: str, deployment: str) -> MonitorResult:
    truth_frame, key, on = truth
    signals = cfg.signals if cfg.signals is not None else _default_signals(
        cfg, truth_frame is not None)
    granularity, series_windows = _series_windows(window, cfg.granularity)
    engine = _Engine(cfg, ref, current, summaries, window)
    for collection in chosen:
        engine.run_collection(collection, signals, series_windows)
    for signal in (s for s in signals if s.type == "model_performance"):
        # Labels come from the ground truth joined in, or are collected beside the predictions.
        k, o = signal.truth_key or key, signal.truth_on or on
        if joined is not None:
            frame = joined(truth_frame, k, o)
        else:  # frames given: the outputs frame holds the labels, or they are joined here
            frame = current.frame(cfg.outputs[0])
            if truth_frame is not None:
                frame = _join_ground_truth(frame, truth_frame, k, o)
        engine.signals.extend(_performance(signal, cfg, frame, current.frame(cfg.outputs[0]),
                                           truth_frame is not None))
    rows = current.rows()
    counted = getattr(summaries, "rows", None)
    if counted is not None:  # collections answered by the source alone: its row counts
        for collection in chosen:
            rows.setdefault(collection, counted(collection, window.start, window.end))
    return MonitorResult(
        endpoint=endpoint, deployment=deployment, reference=ref.describe,
        window={"start": window.start.isoformat(), "end": window.end.isoformat(),
                "rows": rows},
        signals=engine.signals, series_granularity=granularity,
        series=[WindowResult(a, b, s) for (a, b), s in sorted(engine.series.items())],
        features=engine.features, skipped=engine.skipped, notes=list(cfg.notes))


def compare(
    reference: ReferenceLike,
    current: pd.DataFrame | Mapping[str, pd.DataFrame],
    *,
    config: str | os.PathLike[str] | Mapping[str, Any] | MonitorConfig | None = None,
    ground_truth: pd.DataFrame | str | os.PathLike[str] | None = None,
    meter_provider: Any = None,
) -> MonitorResult:
    """`monitor` on frames in memory: `current` is one inputs frame, or a mapping of collection
    name to frame (e.g. ``{"model_inputs": ..., "model_outputs": ...}``). Drift over time
    needs an ``_time`` column; without one there is no series."""
    cfg = load_monitor_config(config)
    if not isinstance(current, (pd.DataFrame, Mapping)):
        raise TypeError("current must be a DataFrame or a mapping of collection to DataFrame, "
                        f"not {type(current).__name__}")
    frames = {cfg.inputs[0]: current} if isinstance(current, pd.DataFrame) else dict(current)
    for name, frame in frames.items():
        if not isinstance(frame, pd.DataFrame):
            raise TypeError(f"current[{name!r}] must be a DataFrame, not {type(frame).__name__}")
    frames = {str(name): _named(frame) for name, frame in frames.items()}
    times = [f[TIME] for f in frames.values() if TIME in f.columns and len(f)]
    if times:
        lo = min(t.min() for t in times).to_pydatetime()
        hi = max(t.max() for t in times).to_pydatetime() + timedelta(microseconds=1)
    else:
        cfg = dataclasses.replace(cfg, granularity="none")
        lo = hi = datetime.now(UTC)
    window = _Window(lo, hi)
    ref = _Reference(None, "frames", "frames", None, reference, None)
    cur = _Current(None, "frames", "frames", window, None, frames)
    truth: tuple[pd.DataFrame | None, str, str] = (None, "correlation_id", CORRELATION_ID)
    if ground_truth is not None:
        truth = _ground_truth_frame(None, "", "", ground_truth, cfg.ground_truth, None, window,
                                    None)
    result = _evaluate(cfg, ref, cur, list(frames), window, None, truth, None, "frames",
                       "frames")
    record_metrics(result, meter_provider)
    return result


def monitor(
    destination: str | Storage,
    *,
    endpoint: str,
    deployment: str,
    collections: Sequence[str] | None = None,
    reference: ReferenceLike | None = None,
    reference_start: TimeLike = None,
    reference_end: TimeLike = None,
    reference_deployment: str | None = None,
    start: TimeLike = None,
    end: TimeLike = None,
    config: str | os.PathLike[str] | Mapping[str, Any] | MonitorConfig | None = None,
    ground_truth: pd.DataFrame | str | os.PathLike[str] | None = None,
    labels_collection: str | None = None,
    meter_provider: Any = None,
    summaries: SummarySource | None = None,
    profiles: bool = False,
    storage_options: Mapping[str, Any] | None = None,
    workers: int | None = None,
    now: datetime | None = None,
) -> MonitorResult:
    """Monitor one deployment's collected data against a reference; see docs/monitoring.md.

    * `reference`: a DataFrame or a file (Parquet, CSV, JSON Lines, JSON), or a
      mapping of collection name to either; or a window of collected data,
      `reference_start` / `reference_end` (of `reference_deployment`, default the
      same deployment). The config's ``reference`` applies when none is given.
    * [`start`, `end`): the current window; by default the 24 hours before `end`
      (default now).
    * `collections`: default the config's inputs and outputs (``model_inputs``,
      ``model_outputs``) that have data.
    * `ground_truth` (a DataFrame or file) or `labels_collection` (a collection of
      this deployment): labels joined to the predictions by `join_inputs_outputs`,
      for `model_performance`.
    * Each signal's value is recorded as an OpenTelemetry gauge
      ``ml.monitoring.<signal>`` through `meter_provider` (default: the global one).
    * `profiles`: answer from the column profiles written at ingest where they can
      (O(files), not O(rows); docs/profiles.md), rows elsewhere; `summaries` is any
      other `SummarySource`.
    * ``traffic`` in the result: responses, error rates and latency per series window
      when the deployment has a ``response`` payload collection.
    """
    cfg = load_monitor_config(config)
    _check_names(endpoint=endpoint, deployment=deployment)
    if collections is not None:
        if isinstance(collections, str):
            collections = [collections]
        for c in collections:
            _check_names(collection=c)
    lo, hi = time_range(start if start is not None else cfg.window[0],
                        end if end is not None else cfg.window[1])
    hi = hi or (now or datetime.now(UTC))
    lo = lo or hi - DEFAULT_WINDOW
    if lo >= hi:
        raise ValueError(f"start {lo.isoformat()} is not before end {hi.isoformat()}")
    window = _Window(lo, hi)
    ref_spec = cfg.reference
    if reference_start is not None or reference_end is not None or reference_deployment:
        if reference is not None:
            raise ValueError("give a reference file or a reference window, not both")
        ref_spec = ReferenceConfig(start=reference_start, end=reference_end,
                                   deployment=reference_deployment)
    with _storage(destination, storage_options) as storage:
        ref = _Reference(storage, endpoint, deployment, ref_spec if reference is None else None,
                         reference, workers)
        current = _Current(storage, endpoint, deployment, window, workers)
        if collections is not None:
            for c in collections:
                if not has_collection(storage, endpoint, deployment, c):
                    raise ValueError(f"no collection {c!r} for endpoint {endpoint!r}, "
                                     f"deployment {deployment!r}")
            chosen = list(collections)
        else:
            chosen = [c for c in (*cfg.inputs, *cfg.outputs)
                      if has_collection(storage, endpoint, deployment, c)]
        if not chosen:
            raise ValueError(f"no collection to monitor: none of "
                             f"{', '.join(cfg.inputs + cfg.outputs)} has data for endpoint "
                             f"{endpoint!r}, deployment {deployment!r}")
        truth = _ground_truth_frame(storage, endpoint, deployment, ground_truth, cfg.ground_truth,
                                    labels_collection, window, workers)

        def joined(truth_frame: pd.DataFrame | None, key: str, on: str) -> pd.DataFrame:
            return join_inputs_outputs(
                storage, endpoint=endpoint, deployment=deployment, inputs=cfg.inputs[0],
                outputs=cfg.outputs[0], request=None, response=None, start=lo, end=hi,
                ground_truth=truth_frame, ground_truth_key=key, ground_truth_on=on,
                workers=workers)

        source = summaries
        if source is None and profiles:
            source = ProfileSummaries(storage, endpoint, deployment, workers=workers)
        result = _evaluate(cfg, ref, current, chosen, window, source, truth, joined,
                           endpoint, deployment)
        if isinstance(source, ProfileSummaries):
            result.notes.append(source.note())
        _, series = _series_windows(window, cfg.granularity)
        result.traffic = traffic(storage, endpoint, deployment,
                                 [(w.start, w.end) for w in series] or [(lo, hi)])
    record_metrics(result, meter_provider)
    return result
