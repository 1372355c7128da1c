"""`monitor` from the ingest profiles: the same verdicts as from rows, values within the
sketch's documented error, and rows read only where profiles cannot answer."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from exporters.profiles import PROFILE_SUFFIX, RELATIVE_ACCURACY
from exporters.storage import LocalStorage
from otel_collector_ext.monitoring import monitor
from otel_collector_ext.monitoring.profiles_source import ProfileSummaries
from otel_collector_ext.monitoring.summaries import summarize_column
from otel_collector_ext.reading.readback import load
from tests.support.monitoring_data import DEPLOYMENT, ENDPOINT, START, collect, hourly, make_frame

HOURS = 6


def run_both(root: Path, reference: pd.DataFrame, **extra):
    common = {"endpoint": ENDPOINT, "deployment": DEPLOYMENT, "collections": ["model_inputs"],
              "reference": {"model_inputs": reference}, "start": START,
              "end": START + timedelta(hours=HOURS), **extra}
    by_rows = monitor(str(root), **common)
    source = ProfileSummaries(str(root), ENDPOINT, DEPLOYMENT)
    by_profiles = monitor(str(root), summaries=source, **common)
    return by_rows, by_profiles, source


def keyed(result):
    return {(s.signal, s.feature, s.metric): s for s in result.signals}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_profiles_give_the_verdicts_rows_give(tmp_path: Path, seed: int):
    collect(tmp_path, hourly(HOURS, 700, seed, drift_from=HOURS // 2), seed=seed)
    by_rows, by_profiles, source = run_both(tmp_path, make_frame(4000, seed + 77))
    rows, profiles = keyed(by_rows), keyed(by_profiles)
    assert rows.keys() == profiles.keys()
    for key, r in rows.items():
        p = profiles[key]
        assert p.status == r.status, key
        if r.value is not None:
            # Histogram metrics: counts exact but for values within 1 % of an edge;
            # Wasserstein from bucket points within 1 % of the values they stand for.
            assert p.value == pytest.approx(r.value, abs=0.03, rel=0.05), key
    drifted = {s.feature for s in by_profiles.signals
               if s.signal == "data_drift" and s.status == "breached"}
    assert "income" in drifted and "age" not in drifted
    used = list(source.stats().values())
    assert used and all(u["files_from_rows"] == 0 and u["files_from_profiles"] > 0 for u in used)


def test_numeric_counts_on_the_reference_edges_are_within_the_documented_error(tmp_path: Path):
    collect(tmp_path, hourly(3, 900, 5))
    rows = load(str(tmp_path), endpoint=ENDPOINT, deployment=DEPLOYMENT,
                collection="model_inputs")
    reference = summarize_column(make_frame(3000, 6)["income"], "numeric")
    exact = summarize_column(rows["income"], like=reference)
    source = ProfileSummaries(LocalStorage(str(tmp_path)), ENDPOINT, DEPLOYMENT)
    got = source.summarize("model_inputs", "income", None, None, like=reference)
    assert got is not None and got.weights is not None and got.extra["approximate"]
    assert (got.count, got.nulls, got.type_errors) == (exact.count, exact.nulls, exact.type_errors)
    assert got.minimum == exact.minimum and got.maximum == exact.maximum
    assert got.mean == pytest.approx(exact.mean, rel=1e-9)
    assert got.std == pytest.approx(exact.std, rel=1e-6)
    values = rows["income"].to_numpy(dtype=float)
    for i, (a, b) in enumerate(zip(got.counts, exact.counts, strict=True)):
        near = sum(int((np.abs(values - e) <= RELATIVE_ACCURACY * abs(e)).sum())
                   for e in reference.edges[i:i + 2] if np.isfinite(e))
        assert abs(int(a) - int(b)) <= near, i
    assert got.out_of_bounds == exact.out_of_bounds
    categories = summarize_column(make_frame(3000, 6)["country"], "categorical")
    got = source.summarize("model_inputs", "country", None, None, like=categories)
    assert got.categories == summarize_column(rows["country"], like=categories).categories


def test_a_hostile_profile_is_skipped_counted_and_its_rows_read(tmp_path: Path):
    collect(tmp_path, hourly(HOURS, 700, 3, drift_from=HOURS // 2), seed=3)
    first = sorted(tmp_path.rglob("*" + PROFILE_SUFFIX))[0]
    first.write_text('{"format": "otel-collector-ext/profile", "version": 1, "rows": 9e999}')
    by_rows, by_profiles, source = run_both(tmp_path, make_frame(4000, 80))
    assert {k: s.status for k, s in keyed(by_rows).items()} == {
        k: s.status for k, s in keyed(by_profiles).items()}
    whole = source.window("model_inputs", START, START + timedelta(hours=HOURS))
    assert whole.skipped["invalid"] == 1 and whole.from_rows == 1
    assert whole.from_profiles == HOURS - 1
