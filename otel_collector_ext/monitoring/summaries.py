"""Per-feature summaries: what every drift and data-quality metric is computed from.

A summary holds counts, not rows: a histogram on edges shared by reference and
current (numeric), or counts per category (categorical), plus null, type-error
and out-of-bounds counts, and for numeric columns the values themselves (or
quantile points with weights), which only the Wasserstein distance and the KS
test need. A summary can come from rows (`summarize_column`) or from merged
profiles written at ingest (a `SummarySource`); the metrics do not know which.

The reference decides a feature's kind. Current values that are not of that
kind (text in a numeric column, numbers in a text column) are type errors and
are left out of the distribution, so a mistyped window never crashes a metric.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

import numpy as np
import pandas as pd

from exporters.avro.schema import ENVELOPE_NAMES
from exporters.avro.schema_evolution import MISMATCH_SUFFIX

from ..reading.profile import _label, column_kind

Kind = Literal["numeric", "categorical"]
#: Quantile bins of the reference for numeric histograms (plus a bin below its minimum,
#: one for its maximum exactly and one above it).
DEFAULT_BINS = 10
#: A text or integer column with more distinct values than this in the reference is an id
#: or free text: comparing its categories would flag every window, so it is not compared.
MAX_CATEGORIES = 100


@dataclass
class ColumnSummary:
    """One feature in one window: counts for the metrics (see the module docstring)."""

    kind: Kind
    count: int = 0  # non-null values of the expected kind
    nulls: int = 0
    type_errors: int = 0
    out_of_bounds: int | None = None  # against the reference; None on the reference side
    edges: np.ndarray | None = None  # numeric: bin edges, -inf and +inf at the ends
    counts: np.ndarray | None = None  # numeric: values per bin
    categories: dict[str, int] | None = None  # categorical: label -> count
    minimum: float | None = None
    maximum: float | None = None
    mean: float | None = None
    std: float | None = None
    values: np.ndarray | None = None  # numeric: the finite values (or quantile points)
    weights: np.ndarray | None = None  # weights of `values` when they are points of a sketch
    distinct: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def total(self) -> int:
        """Rows in the window, null or not."""
        return self.count + self.nulls + self.type_errors

    def as_dict(self, top: int = 20) -> dict[str, Any]:
        """JSON-ready, without the values: histogram or the `top` categories (rest summed)."""
        out: dict[str, Any] = {"kind": self.kind, "count": self.count, "nulls": self.nulls,
                               "type_errors": self.type_errors,
                               "out_of_bounds": self.out_of_bounds}
        for name in ("minimum", "maximum", "mean", "std"):
            value = getattr(self, name)
            out[name] = None if value is None or not math.isfinite(value) else float(value)
        if self.kind == "numeric":
            out["edges"] = None if self.edges is None else [
                None if not math.isfinite(e) else float(e) for e in self.edges]
            out["counts"] = None if self.counts is None else [int(c) for c in self.counts]
        else:
            ranked = sorted((self.categories or {}).items(), key=lambda kv: (-kv[1], kv[0]))
            out["categories"] = [[k, int(v)] for k, v in ranked[:top]]
            out["other"] = int(sum(v for _, v in ranked[top:]))
        return out


class SummarySource(Protocol):
    """Answers summaries without reading rows (e.g. from merged ingest profiles).

    `summarize` returns None when it cannot answer; the engine then reads rows.
    With `like` (the reference's summary), numeric counts must be on
    `like.edges`. A source may also define ``columns(collection, start, end) ->
    list[str] | None``, the collection's data columns in the window (an empty
    list: no rows); without it, or when it returns None, the engine reads the
    rows to know them.
    """

    def summarize(self, collection: str, feature: str, start: datetime | None,
                  end: datetime | None, *, like: ColumnSummary | None) -> ColumnSummary | None:
        ...


def monitored_columns(frame: pd.DataFrame) -> list[str]:
    """The data columns: not the envelope, not the `<column>__mismatch` keepers."""
    return [str(c) for c in frame.columns
            if c not in ENVELOPE_NAMES and not str(c).endswith(MISMATCH_SUFFIX)]


def feature_kind(series: pd.Series) -> Kind | None:
    """numeric or categorical, or None for columns no drift metric applies to (datetimes,
    lists, bytes; ids and free text with more than MAX_CATEGORIES distinct values). A column
    with no values at all is categorical, whatever its dtype (a file format's choice)."""
    if not series.notna().any():
        return "categorical"
    kind = column_kind(series)
    if kind == "numeric":
        return "numeric"
    if kind == "categorical":
        if series.nunique(dropna=True) > MAX_CATEGORIES:
            return None
        return "categorical"
    return None


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
        value, (bool, np.bool_))


def _family(value: Any) -> str:
    """The type family of one value, for type errors of categorical features."""
    if isinstance(value, (bool, np.bool_)):
        return "bool"
    if isinstance(value, (int, np.integer)):
        return "int"
    if isinstance(value, (float, np.floating)):
        return "int" if float(value).is_integer() else "float"
    if isinstance(value, str):
        return "str"
    return type(value).__name__


def _numeric_part(values: pd.Series) -> tuple[np.ndarray, int]:
    """(the numbers as float64, how many values were not numbers)."""
    if pd.api.types.is_bool_dtype(values.dtype):
        return np.array([], dtype="float64"), len(values)
    if pd.api.types.is_numeric_dtype(values.dtype):
        return values.to_numpy(dtype="float64", na_value=np.nan), 0
    numbers = values.map(_is_number)
    return values[numbers].astype("float64").to_numpy(), int((~numbers).sum())


def _cuts(finite: np.ndarray, bins: int) -> np.ndarray:
    """Interior cut points from the reference: its minimum, its quantiles, and just above
    its maximum (so values below, equal to the maximum, and above get bins of their own)."""
    if not len(finite):
        return np.array([], dtype="float64")
    q = np.quantile(finite, np.linspace(0, 1, bins + 1))
    top = np.nextafter(q[-1], np.inf)
    return np.unique(np.concatenate([q[:-1], [q[-1], top]]))


def _mismatches(frame_column: pd.Series | None) -> int:
    return 0 if frame_column is None else int(frame_column.notna().sum())


def summarize_column(
    series: pd.Series,
    kind: Kind | None = None,
    *,
    like: ColumnSummary | None = None,
    mismatched: pd.Series | None = None,
    bins: int = DEFAULT_BINS,
    keep_values: bool = True,
) -> ColumnSummary:
    """The summary of one column in one window.

    `like` is the reference's summary when summarising the current window: its
    kind, edges and categories are used, and type errors and out-of-bounds values
    are counted against it. `mismatched` is the column's ``__mismatch`` keeper
    (values the writer could not store in the column's type): each counts as a
    type error, not a null. `keep_values=False` drops the values (summaries that
    only feed histogram metrics).
    """
    if like is not None:
        kind = like.kind
    if kind is None:
        kind = feature_kind(series) or "categorical"
    values = series.dropna()
    mismatches = _mismatches(mismatched)
    nulls = len(series) - len(values) - mismatches
    if kind == "numeric":
        numbers, not_numbers = _numeric_part(values)
        finite = numbers[np.isfinite(numbers)]
        cuts = _cuts(finite, bins) if like is None or like.edges is None else like.edges[1:-1]
        index = np.searchsorted(cuts, numbers, side="right")
        counts = np.bincount(index, minlength=len(cuts) + 1)
        s = ColumnSummary(
            "numeric", count=len(numbers), nulls=max(nulls, 0),
            type_errors=not_numbers + mismatches,
            edges=np.concatenate([[-np.inf], cuts, [np.inf]]), counts=counts,
            values=finite if keep_values else None)
        if len(finite):
            s.minimum, s.maximum = float(finite.min()), float(finite.max())
            with np.errstate(over="ignore", invalid="ignore"):  # near 1e308: inf, reported null
                s.mean, s.std = float(finite.mean()), float(finite.std())
        if like is not None:
            lo, hi = like.minimum, like.maximum
            s.out_of_bounds = 0 if lo is None or hi is None else int(
                ((numbers < lo) | (numbers > hi)).sum())
        return s
    if like is not None and like.extra.get("families"):
        families = like.extra["families"]
        fits = values.map(lambda v: _family(v) in families)
        not_fitting = int((~fits).sum())
        values = values[fits]
    else:
        not_fitting = 0
    labels = values.astype(object).map(_label)
    categories = {str(k): int(v) for k, v in labels.value_counts().items()}
    s = ColumnSummary("categorical", count=len(labels), nulls=max(nulls, 0),
                      type_errors=not_fitting + mismatches, categories=categories,
                      distinct=len(categories))
    if like is None:
        s.extra["families"] = sorted({_family(v) for v in values.head(10_000)})
    else:
        known = like.categories or {}
        s.out_of_bounds = int(sum(n for k, n in categories.items() if k not in known))
    return s


