"""Drift metrics equal scipy's on the same data; verdicts on known drift; awkward columns.

These run on frames in memory (`compare`); the collected-data path is in
test_monitoring.py.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.spatial.distance import jensenshannon

from otel_collector_ext.monitoring import compare, summarize_column
from otel_collector_ext.monitoring.metrics import DRIFT_METRICS
from otel_collector_ext.monitoring.summaries import ColumnSummary
from tests.support.monitoring_data import make_frame

ALL_METRICS = {"numerical": ["jensen_shannon_distance", "normalized_wasserstein_distance",
                             "population_stability_index", "two_sample_kolmogorov_smirnov_test"],
               "categorical": ["jensen_shannon_distance", "population_stability_index",
                               "pearsons_chi_squared_test", "l_infinity_distance"]}
ALL = {"monitoring": {"min_samples": 100, "signals": {
    "data_drift": {"metric_thresholds": ALL_METRICS}, "data_quality": {}}}}


def _values(result, feature: str, signal: str = "data_drift") -> dict[str, float | None]:
    return {s.metric: s.value for s in result.signals
            if s.feature == feature and s.signal == signal}


def _status(result, feature: str, signal: str = "data_drift") -> dict[str, str]:
    return {s.metric: s.status for s in result.signals
            if s.feature == feature and s.signal == signal}


def test_numeric_metrics_equal_scipys():
    ref, cur = make_frame(3000, 1), make_frame(2000, 2, drift=True)
    got = _values(compare(ref, cur, config=ALL), "income")
    r, c = ref["income"].to_numpy(), cur["income"].to_numpy()
    assert got["two_sample_kolmogorov_smirnov_test"] == pytest.approx(stats.ks_2samp(r, c).pvalue,
                                                                      rel=1e-12, abs=1e-300)
    assert got["normalized_wasserstein_distance"] == pytest.approx(
        stats.wasserstein_distance(r, c) / np.std(r), rel=1e-12)
    # Jensen-Shannon and PSI on the reference's decile bins (left-closed), computed apart.
    edges = np.unique(np.concatenate([[-np.inf], np.quantile(r, np.linspace(0, 1, 11)),
                                      [np.nextafter(r.max(), np.inf), np.inf]]))
    p = pd.Series(pd.cut(r, edges, right=False)).value_counts(sort=False).to_numpy() / len(r)
    q = pd.Series(pd.cut(c, edges, right=False)).value_counts(sort=False).to_numpy() / len(c)
    assert got["jensen_shannon_distance"] == pytest.approx(jensenshannon(p, q, base=2), rel=1e-12)
    pf, qf = np.maximum(p, 1e-4), np.maximum(q, 1e-4)
    assert got["population_stability_index"] == pytest.approx(
        float(np.sum((qf - pf) * np.log(qf / pf))), rel=1e-9)


def test_categorical_metrics_equal_scipys():
    ref, cur = make_frame(3000, 3), make_frame(2000, 4, drift=True)
    got = _values(compare(ref, cur, config=ALL), "country")
    table = pd.crosstab(pd.concat([ref["country"], cur["country"]]).to_numpy(),
                        np.r_[np.zeros(len(ref)), np.ones(len(cur))])
    assert got["pearsons_chi_squared_test"] == pytest.approx(
        stats.chi2_contingency(table.to_numpy().T).pvalue, rel=1e-9, abs=1e-300)
    p, q = table[0.0] / len(ref), table[1.0] / len(cur)
    assert got["jensen_shannon_distance"] == pytest.approx(jensenshannon(p, q, base=2), rel=1e-12)
    assert got["l_infinity_distance"] == pytest.approx(float((p - q).abs().max()), rel=1e-12)


@pytest.mark.parametrize("seed", range(5))
def test_known_drift_is_flagged_and_nothing_else(seed):
    """Default metrics and thresholds, a few thousand rows: the drifted features (income moved
    by one std, country with a new category) are breached, the others are not."""
    result = compare(make_frame(3000, seed), make_frame(2000, 100 + seed, drift=True))
    breached = {(s.signal, s.feature) for s in result.breached_signals()}
    assert breached == {("data_drift", "income"), ("data_drift", "country"),
                        ("data_quality", "country")}  # the unseen category is out of bounds
    assert {m for m, st in _status(result, "income").items() if st == "breached"} == {
        "normalized_wasserstein_distance", "jensen_shannon_distance", "population_stability_index"}
    assert result.breached and result.exit_code == 1
    assert result.summary()["features_drifted"] == 2


@pytest.mark.parametrize("seed", range(5))
def test_no_drift_is_not_flagged(seed):
    result = compare(make_frame(3000, seed), make_frame(2000, 200 + seed))
    assert result.breached_signals() == []
    assert result.exit_code == 0
    assert result.verdict().startswith("0 of 5 features drifted")


def test_below_the_minimum_sample_size_there_is_no_verdict():
    """The report's old "PSI 17.78 · large" on 3 against 1 values: now no verdict at all."""
    result = compare(make_frame(3000, 1), make_frame(3, 2, drift=True))
    drift = [s for s in result.signals if s.signal == "data_drift"]
    assert drift and all(s.status == "insufficient_data" and s.value is None for s in drift)
    assert all("fewer than 1000" in s.reason for s in drift)
    quality = [s for s in result.signals if s.signal == "data_quality"]
    assert all(s.status == "insufficient_data" for s in quality)
    assert not result.breached


def test_an_integer_column_with_one_constant_value():
    """Azure's own drift signal crashed on this (azure-sdk-for-python#34416)."""
    ref = pd.DataFrame({"level": np.full(2000, 7, dtype="int64")})
    same = compare(ref, pd.DataFrame({"level": np.full(1500, 7, dtype="int64")}), config=ALL)
    assert _values(same, "level") == {"jensen_shannon_distance": 0.0,
                                      "population_stability_index": 0.0,
                                      "pearsons_chi_squared_test": 1.0,
                                      "l_infinity_distance": 0.0}
    assert not same.breached
    moved = compare(ref, pd.DataFrame({"level": np.full(1500, 8, dtype="int64")}), config=ALL)
    assert set(_status(moved, "level").values()) == {"breached"}
    assert _values(moved, "level", "data_quality")["out_of_bounds_rate"] == 1.0


def test_a_constant_float_column():
    ref = pd.DataFrame({"rate": np.full(2000, 0.5)})
    same = compare(ref, pd.DataFrame({"rate": np.full(1500, 0.5)}), config=ALL)
    assert not same.breached
    assert _values(same, "rate")["normalized_wasserstein_distance"] == 0.0
    moved = compare(ref, pd.DataFrame({"rate": np.full(1500, 0.6)}), config=ALL)
    values = _values(moved, "rate")
    assert math.isfinite(values["normalized_wasserstein_distance"])  # std floored, not 0
    assert _status(moved, "rate")["normalized_wasserstein_distance"] == "breached"


def test_all_null_columns():
    ref = make_frame(2000, 1)
    cur = make_frame(1500, 2)
    cur["age"] = np.nan  # all null now, a number before
    result = compare(ref, cur)
    assert set(_status(result, "note").values()) == {"insufficient_data"}  # null on both sides
    assert _status(result, "note", "data_quality")["null_value_rate"] == "ok"  # as in reference
    assert set(_status(result, "age").values()) == {"insufficient_data"}
    quality = _values(result, "age", "data_quality")
    assert quality["null_value_rate"] == 1.0
    assert _status(result, "age", "data_quality")["null_value_rate"] == "breached"


def test_categories_unseen_in_the_reference():
    ref = pd.DataFrame({"c": ["a", "b"] * 1000})
    cur = pd.DataFrame({"c": ["a", "b", "z", "y"] * 400})
    result = compare(ref, cur, config=ALL)
    values = _values(result, "c")
    assert values["l_infinity_distance"] == pytest.approx(0.25)
    assert _values(result, "c", "data_quality")["out_of_bounds_rate"] == pytest.approx(0.5)
    assert all(st == "breached" for st in _status(result, "c").values())


def test_mismatched_types_are_type_errors_not_crashes():
    ref = make_frame(2000, 1)
    cur = make_frame(1500, 2)
    cur["age"] = cur["age"].astype(str)  # numbers sent as text
    cur["country"] = np.arange(len(cur))  # text sent as numbers
    result = compare(ref, cur)
    for feature in ("age", "country"):
        assert set(_status(result, feature).values()) == {"insufficient_data"}
        assert _values(result, feature, "data_quality")["data_type_error_rate"] == 1.0
        assert _status(result, feature, "data_quality")["data_type_error_rate"] == "breached"


def test_a_reference_missing_a_column():
    ref = make_frame(2000, 1).drop(columns=["income"])
    result = compare(ref, make_frame(1500, 2))
    [drift] = [s for s in result.signals if s.feature == "income" and s.signal == "data_drift"]
    assert drift.status == "insufficient_data" and drift.reason == "not in the reference"
    assert ("model_inputs", "income", "not in the reference") in {
        (s.collection, s.feature, s.reason) for s in result.skipped}
    assert _status(result, "income", "data_quality")["null_value_rate"] == "ok"


def test_a_mismatch_keeper_counts_as_type_errors():
    """Collected values the writer could not store in the column's type are kept aside in
    `<column>__mismatch`; they are type errors, not nulls."""
    ref = pd.Series(np.arange(2000, dtype="float64"))
    ref_summary = summarize_column(ref)
    cur = pd.Series([1.0, None, None, 4.0])
    keeper = pd.Series([None, '"x"', None, None])
    s = summarize_column(cur, like=ref_summary, mismatched=keeper)
    assert (s.count, s.nulls, s.type_errors) == (2, 1, 1)


def test_metrics_refuse_summaries_they_cannot_use():
    a = ColumnSummary("numeric", count=10, edges=np.array([-np.inf, 0, np.inf]),
                      counts=np.array([5, 5]))
    b = ColumnSummary("numeric", count=10, edges=np.array([-np.inf, 1, np.inf]),
                      counts=np.array([5, 5]))
    with pytest.raises(ValueError, match="same edges"):
        DRIFT_METRICS["jensen_shannon_distance"].compute(a, b)
    with pytest.raises(ValueError, match="needs the values"):
        DRIFT_METRICS["two_sample_kolmogorov_smirnov_test"].compute(a, a)


def test_weighted_values_give_scipys_weighted_wasserstein():
    """A profile's quantile points with weights stand in for the rows."""
    rng = np.random.default_rng(5)
    r, c = rng.normal(0, 1, 5000), rng.normal(0.3, 1, 5000)
    qs = np.linspace(0.005, 0.995, 100)
    ref = ColumnSummary("numeric", values=np.quantile(r, qs), weights=np.full(100, 0.01))
    cur = ColumnSummary("numeric", values=np.quantile(c, qs), weights=np.full(100, 0.01))
    got = DRIFT_METRICS["normalized_wasserstein_distance"].compute(ref, cur)
    exact = stats.wasserstein_distance(r, c) / np.std(r)
    assert got == pytest.approx(exact, rel=0.05)


def test_regression_performance_is_numpys():
    rng = np.random.default_rng(3)
    truth = rng.normal(100, 15, 1500)
    predicted = truth + rng.normal(2, 5, 1500)
    current = {"model_inputs": make_frame(1500, 1),
               "model_outputs": pd.DataFrame({"price": predicted, "label": truth})}
    config = {"monitoring": {"signals": {"model_performance": {
        "prediction": "price", "metric_thresholds": {"regression": {"mae": 3.0}}}}}}
    result = compare(make_frame(2000, 2), current, config=config)
    got = {s.metric: s for s in result.signals}
    error = predicted - truth
    assert got["mae"].value == pytest.approx(np.mean(np.abs(error)))
    assert got["mse"].value == pytest.approx(np.mean(error ** 2))
    assert got["rmse"].value == pytest.approx(np.sqrt(np.mean(error ** 2)))
    assert got["r2"].value == pytest.approx(
        1 - np.sum(error ** 2) / np.sum((truth - truth.mean()) ** 2))
    assert got["mae"].status == ("breached" if np.mean(np.abs(error)) > 3.0 else "ok")
    assert got["r2"].threshold is None and got["r2"].status == "ok"


def test_frames_of_any_shape_give_outcomes_not_crashes():
    """Unnamed columns, huge and infinite values, mixed-type and nested columns."""
    n = 1500
    rng = np.random.default_rng(2)
    ref = pd.DataFrame({0: rng.normal(0, 1, n), "big": rng.normal(0, 1e300, n),
                        "mixed": [1, "a", 2.5] * (n // 3), "nested": [[1, 2]] * n})
    cur = ref.copy()
    cur.loc[:10, "big"] = np.inf
    result = compare(ref, cur, config=ALL)
    document = result.to_json()  # no NaN or Infinity can reach the JSON
    assert "NaN" not in document and "Infinity" not in document
    assert {s.feature for s in result.skipped} == {"mixed", "nested"}
    assert set(_status(result, "0").values()) == {"ok"}
    with pytest.raises(TypeError, match="current must be a DataFrame"):
        compare(ref, 5)
    with pytest.raises(TypeError, match=r"current\['x'\] must be a DataFrame"):
        compare(ref, {"x": [1, 2]})
