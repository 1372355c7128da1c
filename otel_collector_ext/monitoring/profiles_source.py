"""Summaries from the column profiles written at ingest: the `SummarySource` that lets
`monitor` answer a window from one small JSON file per data file instead of its rows.

`ProfileSummaries` merges the stored profiles of a collection over the window
(`otel_collector_ext.reading.window_profile`: files whose profile is missing,
behind, damaged or cut by the window are read row by row and profiled the same
way) and turns the merged column profile into the engine's `ColumnSummary`:

* numeric features: counts on the reference's edges from the profile's
  log-bucket histogram (exact but for values within 1 % of an edge), min/max,
  mean and std (exact), and the histogram's bucket points with their counts as
  weighted ``values`` (each within 1 % of the values it stands for), so the
  Wasserstein distance is answered approximately (``extra["approximate"]``);
  the KS test, whose p-value needs the rows, falls back to rows in the engine.
  Integer columns with at most 100 distinct values (ages, counts, codes) are
  exact: the frequent items hold their whole distribution;
* categorical features: the counts per category, exact while a column has at
  most 100 distinct values (the Misra–Gries summary's error is then 0); with
  more, or when the reference's value types differ from the column's, it
  returns None and the engine reads rows.

Anything the profiles cannot answer returns None: the engine then reads rows.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import numpy as np

from exporters.avro.schema_evolution import MISMATCH_SUFFIX
from exporters.profiles import ColumnProfile, FileProfile
from exporters.storage import Storage

from ..reading.readback import open_reader
from ..reading.window_profile import WindowProfile, describe, window_profile
from .summaries import ColumnSummary

_BOOLEAN_LABELS = frozenset({"True", "False"})
#: Exact integer distributions are given to the metrics as repeated values up to this many
#: (then the KS test is exact too); beyond, as distinct values with weights.
MAX_REPEATED = 5_000_000


def _counts_on(column: ColumnProfile, edges: np.ndarray) -> np.ndarray:
    """Values per bin [edges[i], edges[i+1]) (the outer edges are -inf and +inf)."""
    cuts = edges[1:-1]
    below = column.histogram.count_below(cuts) + column.neg_inf
    total = column.histogram.total + column.neg_inf + column.pos_inf
    cumulative = np.rint(np.concatenate([[0.0], below, [float(total)]]))
    return np.diff(cumulative).astype(np.int64)


def _families(column: ColumnProfile) -> set[str]:
    if column.kind == "numeric":
        return {"int"} if column.integer else {"float"}
    return {"bool"} if set(column.frequent.counts) <= _BOOLEAN_LABELS else {"str"}


def _exact_values(column: ColumnProfile) -> tuple[np.ndarray, np.ndarray] | None:
    """(distinct values, counts) of an integer column whose frequent items are exact
    (at most 100 distinct values): the profile then holds its whole distribution."""
    if not column.integer or column.frequent.error or not column.frequent.counts:
        return None
    try:
        values = np.array([float(k) for k in column.frequent.counts], dtype=float)
    except ValueError:
        return None
    counts = np.array(list(column.frequent.counts.values()), dtype=np.int64)
    if counts.sum() != column.histogram.total:
        return None
    order = np.argsort(values)
    return values[order], counts[order]


def numeric_summary(column: ColumnProfile, mismatched: int, like: ColumnSummary
                    ) -> ColumnSummary | None:
    """The current window's numeric summary on `like`'s edges, or None without edges."""
    if like.edges is None:
        return None
    edges = np.asarray(like.edges, dtype=float)
    exact = _exact_values(column)
    if exact is not None:  # integers with few values: counts and values are exact
        distinct, weights = exact
        counts = np.bincount(np.searchsorted(edges[1:-1], distinct, side="right"),
                             weights=weights, minlength=len(edges) - 1).astype(np.int64)
        values, weights = ((np.repeat(distinct, weights), None)
                           if weights.sum() <= MAX_REPEATED else (distinct, weights))
    else:
        counts = _counts_on(column, edges)
        values, weights = column.histogram.points()
    variance = column.variance
    summary = ColumnSummary(
        "numeric", count=column.count - column.nan, nulls=column.nulls + column.nan,
        type_errors=column.type_errors + mismatched, edges=edges, counts=counts,
        minimum=column.minimum, maximum=column.maximum,
        mean=column.moments.mean if column.moments.n and math.isfinite(column.moments.mean)
        else None,
        std=None if variance is None else math.sqrt(variance),
        values=values, weights=None if weights is None else weights.astype(float),
        extra={"approximate": exact is None})
    lo, hi = like.minimum, like.maximum
    if lo is None or hi is None:
        summary.out_of_bounds = 0
    elif exact is not None:
        distinct, n = exact
        summary.out_of_bounds = int(n[(distinct < lo) | (distinct > hi)].sum())
    else:
        below = column.histogram.count_below([lo])[0] + column.neg_inf
        up_to = column.histogram.count_below([np.nextafter(hi, np.inf)])[0]
        above = column.histogram.total - up_to + column.pos_inf
        summary.out_of_bounds = int(round(below + above))
    return summary


def categorical_summary(column: ColumnProfile, mismatched: int, like: ColumnSummary
                        ) -> ColumnSummary | None:
    """The current window's category counts, or None when they are not exact."""
    if column.frequent.error or (column.kind == "numeric" and not column.integer):
        return None
    families = set(like.extra.get("families") or ())
    if families and not _families(column) <= families:
        return None  # values of another type than the reference's: the rows tell which
    categories = dict(column.frequent.counts)
    count = column.count - column.nan if column.kind == "numeric" else column.count
    if sum(categories.values()) != count:
        return None
    known = like.categories or {}
    return ColumnSummary(
        "categorical", count=count, nulls=column.nulls + column.nan,
        type_errors=column.type_errors + mismatched, categories=categories,
        distinct=len(categories),
        out_of_bounds=sum(n for k, n in categories.items() if k not in known))


def summary_of(profile: FileProfile, feature: str, like: ColumnSummary | None
               ) -> ColumnSummary | None:
    """`feature`'s summary from a merged profile, shaped like `like` (None: cannot)."""
    column = profile.columns.get(feature)
    if column is None or like is None or column.kind == "other":
        return None
    keeper = profile.columns.get(feature + MISMATCH_SUFFIX)
    mismatched = keeper.count if keeper is not None else 0
    if like.kind == "numeric":
        if column.kind != "numeric":
            return None
        return numeric_summary(column, mismatched, like)
    return categorical_summary(column, mismatched, like)


class ProfileSummaries:
    """A `SummarySource` over the profiles stored beside a collection's files."""

    def __init__(self, destination: str | Storage, endpoint: str, deployment: str, *,
                 storage_options: Mapping[str, Any] | None = None,
                 workers: int | None = None) -> None:
        self._own = not isinstance(destination, Storage)
        self.storage = (open_reader(destination, storage_options) if self._own
                        else destination)  # type: ignore[assignment]
        self.endpoint, self.deployment, self.workers = endpoint, deployment, workers
        self._windows: dict[tuple[str, datetime | None, datetime | None], WindowProfile] = {}

    def window(self, collection: str, start: datetime | None, end: datetime | None
               ) -> WindowProfile:
        """The collection's merged profile over [start, end) (computed once)."""
        key = (collection, start, end)
        if key not in self._windows:
            self._windows[key] = window_profile(self.storage, self.endpoint, self.deployment,
                                                collection, start, end, workers=self.workers)
        return self._windows[key]

    def rows(self, collection: str, start: datetime | None, end: datetime | None) -> int:
        """Rows of the collection in [start, end)."""
        return self.window(collection, start, end).profile.rows

    def columns(self, collection: str, start: datetime | None, end: datetime | None
                ) -> list[str] | None:
        """The data columns seen in [start, end) (not the mismatch keepers), or None when
        the window has no rows (the engine reads rows and says so)."""
        profile = self.window(collection, start, end).profile
        if not profile.rows:
            return None
        return [name for name in profile.columns if not name.endswith(MISMATCH_SUFFIX)]

    def summarize(self, collection: str, feature: str, start: datetime | None,
                  end: datetime | None, *, like: ColumnSummary | None) -> ColumnSummary | None:
        """See `SummarySource`: the summary from merged profiles, or None to read rows."""
        return summary_of(self.window(collection, start, end).profile, feature, like)

    def stats(self) -> dict[str, Any]:
        """Per window read: how many files profiles answered and how many were read."""
        return {f"{c} {s} {e}": describe(w) for (c, s, e), w in self._windows.items()}

    def note(self) -> str:
        """One line for the result's notes: how much the profiles answered."""
        windows = list(self._windows.values())
        answered = sum(w.from_profiles for w in windows)
        read = sum(w.from_rows for w in windows)
        skipped: dict[str, int] = {}
        for w in windows:
            for reason, n in w.skipped.items():
                skipped[reason] = skipped.get(reason, 0) + n
        why = ", ".join(f"{n} {reason.replace('_', ' ')}" for reason, n in sorted(skipped.items()))
        return (f"ingest profiles answered {answered} file reads, rows were read for {read}"
                + (f" ({why})" if why else "") + "; numeric histograms and Wasserstein "
                "distances from profiles are within 1 % (docs/profiles.md)")

    def close(self) -> None:
        if self._own:
            self.storage.close()
