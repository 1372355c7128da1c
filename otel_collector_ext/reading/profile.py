"""Column summaries and window comparisons of collected frames (for `stats` and `report`).

A column is summarised by its kind: numeric (count, nulls, mean, std, min,
quartiles, max), categorical (distinct values and the most frequent ones;
booleans and integers with few distinct values count as categorical), datetime
(min, max), or other (lists, dicts, bytes: counts only). Two time windows are
compared on a common histogram or on common categories, with the population
stability index (PSI) as a one-number summary of how far apart they are.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from exporters.avro.schema import ENVELOPE_NAMES, MODEL_VERSION, TIME

#: Integer columns with at most this many distinct values are shown as bars, not bins.
DISCRETE_LIMIT = 20
TOP_CATEGORIES = 10
OTHER = "(other)"
#: Usual PSI reading: below 0.1 stable, up to 0.25 a moderate shift, above a large one.
PSI_MODERATE, PSI_LARGE = 0.1, 0.25
#: Fewer non-null values than this in either window: no PSI level (3 values against 1
#: would otherwise read as a large shift).
MIN_COMPARED = 30
_PSI_FLOOR = 1e-4


def profiled_columns(frame: pd.DataFrame) -> list[Any]:
    """The columns worth summarising: the data columns and the model version."""
    return [c for c in frame.columns if c not in ENVELOPE_NAMES or c == MODEL_VERSION]


def column_kind(series: pd.Series) -> str:
    """numeric, categorical, datetime or other."""
    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return "categorical"
    if pd.api.types.is_numeric_dtype(dtype):
        if pd.api.types.is_integer_dtype(dtype) and series.nunique() <= DISCRETE_LIMIT:
            return "categorical"
        return "numeric"
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return "datetime"
    if isinstance(dtype, pd.CategoricalDtype) or pd.api.types.is_string_dtype(dtype):
        values = series.dropna()
        if len(values) == 0 or all(isinstance(v, str) for v in values.head(1000)):
            return "categorical"
    return "other"


@dataclass
class ColumnSummary:
    """What `stats` prints for one column."""

    name: str
    dtype: str
    kind: str
    count: int
    nulls: int
    distinct: int | None = None
    mean: float | None = None
    std: float | None = None
    min: Any = None
    p25: float | None = None
    p50: float | None = None
    p75: float | None = None
    max: Any = None
    top: list[tuple[str, int]] = field(default_factory=list)

    @property
    def null_rate(self) -> float:
        return self.nulls / self.count if self.count else 0.0

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready fields (times as ISO text)."""
        out = {k: getattr(self, k) for k in ("name", "dtype", "kind", "count", "nulls", "distinct",
                                             "mean", "std", "min", "p25", "p50", "p75", "max")}
        out["null_rate"] = self.null_rate
        out["top"] = [[v, n] for v, n in self.top]
        for k in ("min", "max"):
            if isinstance(out[k], pd.Timestamp):
                out[k] = out[k].isoformat()
        return out


def _label(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value)


def _float(value: Any) -> float | None:
    return None if value is None or pd.isna(value) else float(value)


def summarize(series: pd.Series, name: str | None = None) -> ColumnSummary:
    """The summary of one column."""
    kind = column_kind(series)
    values = series.dropna()
    s = ColumnSummary(str(series.name if name is None else name), str(series.dtype), kind,
                      len(series), int(len(series) - len(values)))
    if kind == "numeric" and len(values):
        numbers = values.astype("float64")
        finite = numbers[np.isfinite(numbers)]
        q = finite.quantile([0.25, 0.5, 0.75]) if len(finite) else pd.Series([None] * 3)
        s.mean, s.std = _float(finite.mean()), _float(finite.std())
        s.min, s.max = _float(numbers.min()), _float(numbers.max())
        s.p25, s.p50, s.p75 = (_float(v) for v in q)
        s.distinct = int(values.nunique())
    elif kind == "categorical":
        counts = values.astype(object).map(_label).value_counts()
        s.distinct = int(len(counts))
        s.top = [(str(k), int(v)) for k, v in counts.head(5).items()]
    elif kind == "datetime" and len(values):
        s.min, s.max = values.min(), values.max()
        s.distinct = int(values.nunique())
    return s


def summarize_frame(frame: pd.DataFrame) -> list[ColumnSummary]:
    """Summaries of the profiled columns of a frame."""
    return [summarize(frame[c], str(c)) for c in profiled_columns(frame)]


def rows_per_hour(frames: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Rows per event hour (UTC) per collection: hours as the index, a column per collection."""
    counts = {
        name: frame[TIME].dt.floor("h").value_counts() for name, frame in frames.items() if len(frame)
    }
    table = pd.DataFrame(counts).fillna(0).astype("int64").sort_index()
    table = table.reindex(columns=[n for n in frames if n in table.columns])
    if len(table):  # hours with no rows at all appear too, as zeros
        hours = pd.date_range(table.index.min(), table.index.max(), freq="h")
        table = table.reindex(hours, fill_value=0)
    table.index.name = "hour"
    return table


@dataclass
class Comparison:
    """One column's distribution in two windows, on common bins or categories."""

    name: str
    kind: str  # "numeric" (bins) or "categorical" (bars)
    labels: list[str]  # category labels, or bin labels
    edges: list[float]  # bin edges (numeric only)
    baseline: list[float]  # fraction of the window's non-null values per bin/category
    current: list[float]
    baseline_n: int
    current_n: int
    baseline_nulls: float  # null rate
    current_nulls: float
    psi: float | None

    @property
    def too_few(self) -> bool:
        """Whether a window has too few values for the PSI to mean anything."""
        return min(self.baseline_n, self.current_n) < MIN_COMPARED

    @property
    def level(self) -> str:
        """stable, moderate or large (shift), or n/a (no PSI, or too few values)."""
        if self.psi is None or self.too_few:
            return "n/a"
        return "large" if self.psi > PSI_LARGE else "moderate" if self.psi > PSI_MODERATE else "stable"


def psi(baseline: list[float], current: list[float]) -> float | None:
    """Population stability index of two distributions over the same bins."""
    if not baseline or not sum(baseline) or not sum(current):
        return None
    total = 0.0
    for b, c in zip(baseline, current, strict=True):
        b, c = max(b, _PSI_FLOOR), max(c, _PSI_FLOOR)
        total += (c - b) * math.log(c / b)
    return total


def _fractions(counts: np.ndarray) -> list[float]:
    n = counts.sum()
    return [float(x / n) if n else 0.0 for x in counts]


def _null_rate(series: pd.Series) -> float:
    return float(series.isna().mean()) if len(series) else 0.0


def compare(name: str, baseline: pd.Series, current: pd.Series, bins: int = 20) -> Comparison | None:
    """The two windows' distributions of a column, or None for columns that cannot be plotted."""
    both = pd.concat([baseline, current], ignore_index=True)
    kind = column_kind(both)
    b, c = baseline.dropna(), current.dropna()
    if kind == "numeric":
        b, c = b.astype("float64"), c.astype("float64")
        b, c = b[np.isfinite(b)], c[np.isfinite(c)]
        values = pd.concat([b, c])
        if not len(values):
            return None
        lo, hi = values.quantile(0.005), values.quantile(0.995)
        if lo == hi:
            lo, hi = values.min(), values.max()
        if lo == hi:
            lo, hi = lo - 0.5, hi + 0.5
        if pd.api.types.is_integer_dtype(both.dtype):
            # Whole-number bins centred on the integers, so no bin catches one value more.
            width = max(1, math.ceil((hi - lo + 1) / bins))
            bins = math.ceil((hi - lo + 1) / width)
            edges = lo - 0.5 + width * np.arange(bins + 1)
            hi = edges[-1]
        else:
            edges = np.linspace(lo, hi, bins + 1)
        # Values beyond the trimmed range land in the edge bins rather than stretching the axis.
        base = _fractions(np.histogram(b.clip(lo, hi), edges)[0])
        cur = _fractions(np.histogram(c.clip(lo, hi), edges)[0])
        labels = [f"{edges[i]:.4g} – {edges[i + 1]:.4g}" for i in range(bins)]
        return Comparison(name, "numeric", labels, edges.tolist(), base, cur, len(b), len(c),
                          _null_rate(baseline), _null_rate(current), psi(base, cur))
    if kind != "categorical":
        return None
    bl, cl = b.astype(object).map(_label), c.astype(object).map(_label)
    counts = pd.concat([bl, cl]).value_counts()
    if not len(counts):
        return None
    if pd.api.types.is_numeric_dtype(both.dtype) and not pd.api.types.is_bool_dtype(both.dtype):
        top = sorted(counts.index[:TOP_CATEGORIES], key=float)
    else:
        top = list(counts.index[:TOP_CATEGORIES])
    labels = top + ([OTHER] if len(counts) > len(top) else [])

    def shares(s: pd.Series) -> list[float]:
        vc = s.where(s.isin(top), OTHER).value_counts()
        return _fractions(np.array([vc.get(label, 0) for label in labels], dtype=float))

    base, cur = shares(bl), shares(cl)
    return Comparison(name, "categorical", labels, [], base, cur, len(b), len(c),
                      _null_rate(baseline), _null_rate(current), psi(base, cur))
