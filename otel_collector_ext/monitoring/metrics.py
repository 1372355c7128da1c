"""Drift metrics, named as Azure ML model monitoring names them, computed on two summaries.

Distances (Jensen–Shannon, normalised Wasserstein, PSI, L-infinity) are breached
when the value is above the threshold; the two tests (Kolmogorov–Smirnov,
Pearson's chi-squared) report their p-value, breached when it is below the
threshold. Every value is scipy's on the same data: `jensenshannon` (base 2,
so 0 to 1), `wasserstein_distance`, `ks_2samp`, `chi2_contingency`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import stats
from scipy.spatial.distance import jensenshannon

from ..reading.profile import psi
from .summaries import ColumnSummary, Kind

#: The reference's standard deviation below which the Wasserstein distance is divided by
#: this instead (as Evidently does), so a constant reference column gives a finite value.
MIN_STD = 1e-3


def aligned_counts(reference: ColumnSummary, current: ColumnSummary) -> tuple[np.ndarray, np.ndarray]:
    """The two count vectors over the same bins, or the union of categories."""
    if reference.kind == "numeric":
        if reference.edges is None or current.edges is None or reference.counts is None \
                or current.counts is None:
            raise ValueError("numeric summaries without a histogram")
        if len(reference.edges) != len(current.edges) or not np.array_equal(
                reference.edges, current.edges):
            raise ValueError("the two histograms are not on the same edges")
        return reference.counts.astype("float64"), current.counts.astype("float64")
    ref, cur = reference.categories or {}, current.categories or {}
    keys = sorted(set(ref) | set(cur))
    return (np.array([ref.get(k, 0) for k in keys], dtype="float64"),
            np.array([cur.get(k, 0) for k in keys], dtype="float64"))


def _shares(counts: np.ndarray) -> np.ndarray:
    return counts / counts.sum()


def jensen_shannon_distance(reference: ColumnSummary, current: ColumnSummary) -> float:
    p, q = aligned_counts(reference, current)
    return float(jensenshannon(_shares(p), _shares(q), base=2))


def population_stability_index(reference: ColumnSummary, current: ColumnSummary) -> float:
    p, q = aligned_counts(reference, current)
    value = psi(_shares(p).tolist(), _shares(q).tolist())
    return 0.0 if value is None else float(value)


def l_infinity_distance(reference: ColumnSummary, current: ColumnSummary) -> float:
    p, q = aligned_counts(reference, current)
    return float(np.max(np.abs(_shares(p) - _shares(q))))


def pearsons_chi_squared_test(reference: ColumnSummary, current: ColumnSummary) -> float:
    """p-value of the chi-squared test of independence on the 2 × categories table."""
    p, q = aligned_counts(reference, current)
    if len(p) < 2:  # one category on both sides: the same distribution, nothing to test
        return 1.0
    return float(stats.chi2_contingency(np.vstack([p, q])).pvalue)


def _values(summary: ColumnSummary) -> np.ndarray:
    if summary.values is None:
        raise ValueError("this metric needs the values, not only a histogram")
    return summary.values


def two_sample_kolmogorov_smirnov_test(reference: ColumnSummary, current: ColumnSummary) -> float:
    """p-value of scipy's two-sample KS test."""
    return float(stats.ks_2samp(_values(reference), _values(current)).pvalue)


def normalized_wasserstein_distance(reference: ColumnSummary, current: ColumnSummary) -> float:
    """wasserstein_distance(reference, current) / std(reference) (population std, floored)."""
    ref, cur = _values(reference), _values(current)
    distance = stats.wasserstein_distance(ref, cur, reference.weights, current.weights)
    if reference.weights is None:
        std = float(np.std(ref))
    else:
        mean = np.average(ref, weights=reference.weights)
        std = float(np.sqrt(np.average((ref - mean) ** 2, weights=reference.weights)))
    return float(distance / max(std, MIN_STD))


@dataclass(frozen=True)
class Metric:
    """A drift metric: which kinds of feature it applies to and how a threshold reads."""

    name: str
    kinds: frozenset[Kind]
    compute: Callable[[ColumnSummary, ColumnSummary], float]
    default_threshold: float
    lower_is_breach: bool  # p-values: breached below the threshold; distances above
    needs_values: bool  # needs the values (rows or a sketch), not only the histogram

    def breached(self, value: float, threshold: float) -> bool:
        return value < threshold if self.lower_is_breach else value > threshold


_NUM, _CAT = frozenset({"numeric"}), frozenset({"categorical"})
_BOTH = _NUM | _CAT
DRIFT_METRICS: dict[str, Metric] = {m.name: m for m in (
    Metric("jensen_shannon_distance", _BOTH, jensen_shannon_distance, 0.1, False, False),
    Metric("normalized_wasserstein_distance", _NUM, normalized_wasserstein_distance, 0.1, False,
           True),
    Metric("population_stability_index", _BOTH, population_stability_index, 0.2, False, False),
    Metric("two_sample_kolmogorov_smirnov_test", _NUM, two_sample_kolmogorov_smirnov_test, 0.05,
           True, True),
    Metric("pearsons_chi_squared_test", _CAT, pearsons_chi_squared_test, 0.05, True, False),
    Metric("l_infinity_distance", _CAT, l_infinity_distance, 0.1, False, False),
)}
#: Computed when the configuration names no metric: distances, which do not flag trivial
#: shifts on large windows as p-values do (a KS test on 100,000 rows flags a 1 % shift).
DEFAULT_DRIFT_METRICS: dict[Kind, tuple[str, ...]] = {
    "numeric": ("normalized_wasserstein_distance", "jensen_shannon_distance",
                "population_stability_index"),
    "categorical": ("jensen_shannon_distance", "population_stability_index"),
}
#: Azure ML's older names for the same metrics, accepted in configuration.
METRIC_ALIASES = {
    "two_sample_kolmogorov_test": "two_sample_kolmogorov_smirnov_test",
    "chi_squared_test": "pearsons_chi_squared_test",
}
