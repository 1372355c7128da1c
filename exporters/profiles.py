"""Column profiles: small, mergeable summaries of a file's columns, written beside it.

A profile holds, per column: how many values and nulls it has (and NaN, ±inf,
values of the wrong type), min/max, mean and variance (merged with Chan et al.'s
parallel update of Welford's moments), a relative-error histogram that doubles
as the quantile sketch, and the most frequent items with counts. Two profiles
merge into the profile of both files' rows, so a question about a day of data
costs one small JSON file per partition file instead of every row.

The histogram is DDSketch's (Masson, Rim & Lee, "DDSketch: a fast and
fully-mergeable quantile sketch with relative-error guarantees", VLDB 2019):
bucket ``i`` holds the values ``x`` with ``γ^(i-1) < |x| ≤ γ^i``, ``γ = (1+α)/(1-α)``,
``α = RELATIVE_ACCURACY`` (1 %), one set of buckets for positive and one for
negative values, and a zero bucket for ``|x| < MIN_INDEXABLE``. The edges are
the same for every file, process and day, so histograms of any files add up
exactly, and any quantile read from it is within 1 % (relative) of the true
quantile of the rows. A count of values below an arbitrary edge is exact up to
the one bucket that holds the edge (values within 1 % of it), which is how
`LogHistogram.count_below` is documented. At most `MAX_BUCKETS` buckets per sign
are kept (18 decades at 1 %); beyond that the buckets nearest zero are folded
together (DDSketch's "collapsing lowest" store), which keeps the guarantee for
the larger values.

Why not a library: Apache DataSketches (PyPI ``datasketches``) has KLL and
frequent-items sketches, but its deserializer and queries crashed the Python
process (segfault) on damaged bytes in a fuzz run here; profiles are read back
from storage that may hold damaged or hostile files, so the format here is plain
JSON that `FileProfile.from_json` validates field by field before use. The
``ddsketch`` package adds values one at a time in Python, far too slow on the
exporter's path; the mapping above is its logarithmic mapping, vectorised with numpy.

Frequent items are a Misra–Gries summary (Misra & Gries 1982; merged as in
Agarwal et al., "Mergeable summaries", 2012) of at most `FREQUENT_CAPACITY`
items: each kept count ``c`` of an item satisfies ``true - error ≤ c ≤ true``,
``error`` being stored with the summary, and every item whose true count exceeds
``error`` is kept. With at most `FREQUENT_CAPACITY` distinct values (most
categorical columns) the counts are exact (``error`` is 0).

This module is the lower layer: it knows Avro schemas as plain dicts and nothing
of who reads the profiles.
"""

from __future__ import annotations

import copy
import json
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import numpy as np

__all__ = [
    "FREQUENT_CAPACITY",
    "MAX_PROFILE_BYTES",
    "PROFILE_SUFFIX",
    "RELATIVE_ACCURACY",
    "ColumnProfile",
    "FileProfile",
    "FrequentItems",
    "LogHistogram",
    "Moments",
    "ProfileError",
    "profile_path",
]

PROFILE_SUFFIX = ".profile.json"
FORMAT = "otel-collector-ext/profile"
FORMAT_VERSION = 1
RELATIVE_ACCURACY = 0.01
GAMMA = (1 + RELATIVE_ACCURACY) / (1 - RELATIVE_ACCURACY)
_LOG_GAMMA = math.log(GAMMA)
MIN_INDEXABLE = 1e-12  # smaller magnitudes count in the zero bucket
MAX_BUCKETS = 4096
FREQUENT_CAPACITY = 100
MAX_PROFILE_BYTES = 8 * 1024 * 1024  # a profile file larger than this is refused unread
MAX_COLUMNS = 10_000
_MAX_COUNT = 2**53  # counts beyond this are not ours (and lose float precision)
_MAX_KEY = int(math.log(1.7e308) / _LOG_GAMMA) + 2
_MIN_KEY = int(math.log(MIN_INDEXABLE) / _LOG_GAMMA) - 2
_MAX_ITEM_CHARS = 200  # frequent items longer than this are cut (and marked with …)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

Kind = Literal["numeric", "categorical", "other"]


class ProfileError(ValueError):
    """A profile file that is not one of ours, damaged, or hostile: skip it and read rows."""


def profile_path(data_path: str) -> str:
    """Where the profile of the data file `data_path` is stored (beside it)."""
    return data_path + PROFILE_SUFFIX


# --- moments -------------------------------------------------------------------


@dataclass
class Moments:
    """Count, mean and sum of squared deviations (M2) of finite values; mergeable."""

    n: int = 0
    mean: float = 0.0
    m2: float = 0.0

    def add(self, values: np.ndarray) -> None:
        """Add finite values; a sum that overflows float64 leaves mean or M2 unknown (inf)."""
        if len(values):
            with np.errstate(over="ignore", invalid="ignore"):
                mean = float((values / len(values)).sum())  # no overflow for finite values
                m2 = float(((values - mean) ** 2).sum())
            self.merge(Moments(len(values), mean, m2))

    def merge(self, other: Moments) -> None:
        """Chan, Golub & LeVeque's pairwise update: stable for any split of the rows."""
        if other.n == 0:
            return
        if self.n == 0:
            self.n, self.mean, self.m2 = other.n, other.mean, other.m2
            return
        n = self.n + other.n
        with np.errstate(over="ignore", invalid="ignore"):
            delta = other.mean - self.mean
            self.mean += delta * (other.n / n)
            self.m2 += other.m2 + delta * delta * (self.n / n) * other.n
        self.n = n

    @property
    def variance(self) -> float | None:
        """The population variance (ddof=0); None without values or when it overflowed."""
        return self.m2 / self.n if self.n and math.isfinite(self.m2) else None

    def to_json(self) -> dict[str, Any]:
        def finite(x: float) -> float | None:
            return x if math.isfinite(x) else None

        return {"n": self.n, "mean": finite(self.mean), "m2": finite(self.m2)}

    @classmethod
    def from_json(cls, data: Any) -> Moments:
        _expect(data, dict, "moments")
        mean = _float(data.get("mean"), "moments.mean", optional=True)
        m2 = _float(data.get("m2"), "moments.m2", optional=True)
        if m2 is not None and m2 < 0:
            raise ProfileError("moments.m2 is negative")
        return cls(_int(data.get("n"), "moments.n"), math.inf if mean is None else mean,
                   math.inf if m2 is None else m2)


# --- the log-bucket histogram (DDSketch) -----------------------------------------


def _keys(magnitudes: np.ndarray) -> np.ndarray:
    return np.ceil(np.log(magnitudes) / _LOG_GAMMA).astype(np.int64)


def _lower(key: int) -> float:
    return GAMMA ** (key - 1)


def _upper(key: int) -> float:
    try:
        return GAMMA**key
    except OverflowError:  # the top bucket, past the largest float
        return math.inf


def _add_counts(store: dict[int, int], keys: np.ndarray) -> None:
    if len(keys):
        found, counts = np.unique(keys, return_counts=True)
        for k, c in zip(found.tolist(), counts.tolist(), strict=True):
            store[k] = store.get(k, 0) + c


def _collapse(store: dict[int, int]) -> None:
    """Fold the buckets nearest zero together when the keys span more than MAX_BUCKETS
    (DDSketch's collapsing-lowest store): the larger values keep their 1 % guarantee."""
    if not store or max(store) - min(store) < MAX_BUCKETS:
        return
    cut = max(store) - MAX_BUCKETS + 1
    folded = sum(store.pop(k) for k in [k for k in store if k < cut])
    store[cut] = store.get(cut, 0) + folded


@dataclass
class LogHistogram:
    """Counts on the fixed log-scale buckets described in the module docstring."""

    positive: dict[int, int] = field(default_factory=dict)
    negative: dict[int, int] = field(default_factory=dict)
    zero: int = 0

    def add(self, values: np.ndarray) -> None:
        """Add finite values."""
        magnitudes = np.abs(values)
        small = magnitudes < MIN_INDEXABLE
        self.zero += int(small.sum())
        _add_counts(self.positive, _keys(values[(values > 0) & ~small]))
        _add_counts(self.negative, _keys(-values[(values < 0) & ~small]))
        _collapse(self.positive)
        _collapse(self.negative)

    def merge(self, other: LogHistogram) -> None:
        for mine, theirs in ((self.positive, other.positive), (self.negative, other.negative)):
            for k, c in theirs.items():
                mine[k] = mine.get(k, 0) + c
            _collapse(mine)
        self.zero += other.zero

    @property
    def total(self) -> int:
        return self.zero + sum(self.positive.values()) + sum(self.negative.values())

    def buckets(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(lower edges, upper edges, counts) of the non-empty buckets, in value order."""
        lo: list[float] = []
        hi: list[float] = []
        counts: list[int] = []
        for k in sorted(self.negative, reverse=True):
            lo.append(-_upper(k))
            hi.append(-_lower(k))
            counts.append(self.negative[k])
        if self.zero:
            lo.append(-MIN_INDEXABLE)
            hi.append(MIN_INDEXABLE)
            counts.append(self.zero)
        for k in sorted(self.positive):
            lo.append(_lower(k))
            hi.append(_upper(k))
            counts.append(self.positive[k])
        return np.array(lo), np.array(hi), np.array(counts, dtype=np.int64)

    def points(self) -> tuple[np.ndarray, np.ndarray]:
        """(representative value, count) per non-empty bucket: each value is within
        `RELATIVE_ACCURACY` (relative) of every value its bucket holds."""
        lo, hi, counts = self.buckets()
        # DDSketch's estimate 2·a·b/(a+b) of a bucket (a, b], written so it cannot overflow.
        factor = 2 * GAMMA / (1 + GAMMA)
        mid = np.where(lo > 0, lo * factor, np.where(hi < 0, hi * factor, 0.0))
        return mid, counts

    def quantile(self, q: float) -> float | None:
        """The q-quantile (0 ≤ q ≤ 1), within 1 % of the true one (lower quantile)."""
        mid, counts = self.points()
        if not len(counts):
            return None
        rank = q * (counts.sum() - 1)
        return float(mid[int(np.searchsorted(np.cumsum(counts), rank, side="right"))])

    def count_below(self, edges: Sequence[float] | np.ndarray) -> np.ndarray:
        """How many values are below each edge; a bucket holding an edge is split in
        proportion to where the edge falls in it, so only values within 1 % of an edge
        may be counted on the wrong side."""
        lo, hi, counts = self.buckets()
        edges = np.asarray(edges, dtype=float)
        out = np.zeros(len(edges))
        if not len(counts):
            return out
        cum = np.concatenate([[0], np.cumsum(counts)])
        for i, e in enumerate(edges):
            if np.isnan(e):
                continue
            j = int(np.searchsorted(hi, e, side="left"))  # first bucket whose upper ≥ e
            below = float(cum[j])
            if j < len(counts) and lo[j] < e:
                width = hi[j] - lo[j]
                below += counts[j] * ((e - lo[j]) / width if width > 0 else 0.0)
            out[i] = below
        return out

    def to_json(self) -> dict[str, Any]:
        def dense(store: dict[int, int]) -> dict[str, Any] | None:
            if not store:
                return None
            first, last = min(store), max(store)
            return {"offset": first, "counts": [store.get(k, 0) for k in range(first, last + 1)]}

        return {"zero": self.zero, "positive": dense(self.positive),
                "negative": dense(self.negative)}

    @classmethod
    def from_json(cls, data: Any) -> LogHistogram:
        _expect(data, dict, "histogram")

        def store(part: Any, what: str) -> dict[int, int]:
            if part is None:
                return {}
            _expect(part, dict, what)
            offset = _int(part.get("offset"), what + ".offset", lo=_MIN_KEY, hi=_MAX_KEY)
            counts = _expect(part.get("counts"), list, what + ".counts")
            if len(counts) > MAX_BUCKETS or offset + len(counts) > _MAX_KEY + 1:
                raise ProfileError(f"{what}: too many buckets")
            return {offset + i: c for i, v in enumerate(counts)
                    if (c := _int(v, what + ".counts"))}

        return cls(store(data.get("positive"), "positive"),
                   store(data.get("negative"), "negative"), _int(data.get("zero"), "zero"))


# --- frequent items (Misra–Gries) -----------------------------------------------------


@dataclass
class FrequentItems:
    """Misra–Gries counters: see the module docstring for the bound that `error` gives."""

    counts: dict[str, int] = field(default_factory=dict)
    error: int = 0
    capacity: int = FREQUENT_CAPACITY

    def add_counts(self, counts: Mapping[str, int]) -> None:
        self.merge(FrequentItems(dict(counts)))

    def merge(self, other: FrequentItems) -> None:
        merged = Counter(self.counts)
        merged.update(other.counts)
        error = self.error + other.error
        if len(merged) > self.capacity:
            ranked = merged.most_common()
            cut = ranked[self.capacity][1]  # the (capacity+1)-th count, subtracted from all
            merged = Counter({k: c - cut for k, c in ranked[: self.capacity] if c > cut})
            error += cut
        self.counts = dict(merged)
        self.error = error

    def to_json(self) -> dict[str, Any]:
        ranked = sorted(self.counts.items(), key=lambda kv: (-kv[1], kv[0]))
        return {"error": self.error, "items": [[k, c] for k, c in ranked]}

    @classmethod
    def from_json(cls, data: Any) -> FrequentItems:
        _expect(data, dict, "frequent")
        items = _expect(data.get("items"), list, "frequent.items")
        if len(items) > FREQUENT_CAPACITY:
            raise ProfileError("frequent.items: too many items")
        counts: dict[str, int] = {}
        for item in items:
            if not (isinstance(item, list) and len(item) == 2 and isinstance(item[0], str)):
                raise ProfileError("frequent.items: each item must be [text, count]")
            counts[item[0]] = _int(item[1], "frequent count")
        return cls(counts, _int(data.get("error"), "frequent.error"))


# --- a column ------------------------------------------------------------------------


def _item_text(value: Any) -> str:
    text = value if isinstance(value, str) else str(value)
    return text if len(text) <= _MAX_ITEM_CHARS else text[: _MAX_ITEM_CHARS - 1] + "…"


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))


@dataclass
class ColumnProfile:
    """What a profile knows of one column (see the module docstring)."""

    kind: Kind
    count: int = 0  # non-null values of the column's kind, NaN and ±inf included
    nulls: int = 0
    type_errors: int = 0  # non-null values not of the column's kind
    nan: int = 0
    pos_inf: int = 0
    neg_inf: int = 0
    minimum: float | None = None  # of the finite values
    maximum: float | None = None
    integer: bool = False
    moments: Moments = field(default_factory=Moments)
    histogram: LogHistogram = field(default_factory=LogHistogram)
    frequent: FrequentItems = field(default_factory=FrequentItems)

    def add(self, values: Sequence[Any] | np.ndarray) -> None:
        """Add a column's values (None is null; values of the wrong kind are counted)."""
        if self.kind == "numeric":
            self._add_numeric(values)
        elif self.kind == "categorical":
            present = [v for v in values if v is not None]
            self.nulls += len(values) - len(present)
            good = [v for v in present if isinstance(v, (str, bool, np.bool_))]
            self.type_errors += len(present) - len(good)
            self.count += len(good)
            self.frequent.add_counts(Counter(map(_item_text, good)))
        else:
            present_n = sum(1 for v in values if v is not None)
            self.nulls += len(values) - present_n
            self.count += present_n

    def _add_numeric(self, values: Sequence[Any] | np.ndarray) -> None:
        array = values if isinstance(values, np.ndarray) and values.dtype.kind in "iuf" else None
        if array is None:
            present = [v for v in values if v is not None]
            self.nulls += len(values) - len(present)
            try:
                array = np.asarray(present, dtype=np.float64) if present else np.empty(0)
                if array.ndim != 1:
                    raise ValueError("not scalars")
                if any(isinstance(v, (bool, np.bool_)) for v in present):
                    raise ValueError("booleans in a numeric column")
            except (ValueError, TypeError, OverflowError):
                numbers = [v for v in present if _is_number(v)]
                self.type_errors += len(present) - len(numbers)
                array = np.asarray(numbers, dtype=np.float64)
        else:
            array = array.astype(np.float64, copy=False)
        self.count += len(array)
        finite = np.isfinite(array)
        if not finite.all():
            self.nan += int(np.isnan(array).sum())
            self.pos_inf += int((array == np.inf).sum())
            self.neg_inf += int((array == -np.inf).sum())
            array = array[finite]
        if not len(array):
            return
        _widen(self, ColumnProfile("numeric", minimum=float(array.min()),
                                   maximum=float(array.max())), "minimum", "maximum")
        self.moments.add(array)
        self.histogram.add(array)
        if self.integer:
            # Integers are often codes or classes: their frequent values are kept too.
            found, counts = np.unique(array, return_counts=True)
            self.frequent.add_counts({str(int(v)): int(c) for v, c in
                                      zip(found.tolist(), counts.tolist(), strict=True)})

    def merge(self, other: ColumnProfile) -> None:
        if other.kind != self.kind and not other.count + other.type_errors:
            self.nulls += other.nulls  # only nulls there (a column not typed yet)
            return
        if other.kind != self.kind and not self.count + self.type_errors:
            nulls = self.nulls  # only nulls here: the other file's typing holds
            self.__dict__.update(copy.deepcopy(other.__dict__))
            self.nulls += nulls
            return
        if other.kind != self.kind:
            # Files typed the column differently (mismatched writers): the other's values
            # are of the wrong kind here.
            self.nulls += other.nulls
            self.type_errors += other.count + other.type_errors
            return
        self.count += other.count
        self.nulls += other.nulls
        self.type_errors += other.type_errors
        self.nan += other.nan
        self.pos_inf += other.pos_inf
        self.neg_inf += other.neg_inf
        _widen(self, other, "minimum", "maximum")
        self.integer = self.integer and other.integer
        self.moments.merge(other.moments)
        self.histogram.merge(other.histogram)
        self.frequent.merge(other.frequent)

    @property
    def variance(self) -> float | None:
        return self.moments.variance

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "count": self.count, "nulls": self.nulls,
                               "type_errors": self.type_errors}
        if self.kind == "numeric":
            out.update(nan=self.nan, pos_inf=self.pos_inf, neg_inf=self.neg_inf,
                       min=self.minimum, max=self.maximum, integer=self.integer,
                       moments=self.moments.to_json(),
                       histogram=self.histogram.to_json())
        if self.frequent.counts or self.kind == "categorical":
            out["frequent"] = self.frequent.to_json()
        return out

    @classmethod
    def from_json(cls, data: Any) -> ColumnProfile:
        _expect(data, dict, "column")
        kind = data.get("kind")
        if kind not in ("numeric", "categorical", "other"):
            raise ProfileError(f"column kind {kind!r} is not numeric, categorical or other")
        column = cls(kind, _int(data.get("count"), "count"), _int(data.get("nulls"), "nulls"),
                     _int(data.get("type_errors"), "type_errors"))
        if "frequent" in data:
            column.frequent = FrequentItems.from_json(data["frequent"])
        if kind != "numeric":
            return column
        column.nan, column.pos_inf, column.neg_inf = (
            _int(data.get(k), k) for k in ("nan", "pos_inf", "neg_inf"))
        column.minimum = _float(data.get("min"), "min", optional=True)
        column.maximum = _float(data.get("max"), "max", optional=True)
        column.integer = bool(_expect(data.get("integer", False), bool, "integer"))
        column.moments = Moments.from_json(data.get("moments"))
        column.histogram = LogHistogram.from_json(data.get("histogram"))
        finite = column.count - column.nan - column.pos_inf - column.neg_inf
        if (column.moments.n != finite or column.histogram.total != finite
                or (finite > 0) != (column.minimum is not None and column.maximum is not None)
                or (column.minimum is not None and column.maximum is not None
                    and column.minimum > column.maximum)):
            raise ProfileError("column counts, moments and histogram disagree")
        return column


# --- a file ----------------------------------------------------------------------------


def _field_kind(avro_field: Mapping[str, Any]) -> tuple[Kind, bool]:
    """(kind, whether integer): numeric for plain int/long/float/double, categorical for
    string/boolean/enum (not JSON-encoded text), other for the rest (times, bytes, lists,
    records, the JSON text of values set aside as mismatches)."""
    t = avro_field.get("type")
    if isinstance(t, list):
        branches = [b for b in t if b != "null"]
        t = branches[0] if len(branches) == 1 else None
    if isinstance(t, dict):
        if t.get("logicalType"):
            return "other", False
        t = t.get("type") if isinstance(t.get("type"), str) else None
    if t in ("int", "long", "float", "double"):
        return "numeric", t in ("int", "long")
    if (t in ("string", "boolean", "enum") and "encoding" not in avro_field
            and "mismatchOf" not in avro_field):
        return "categorical", False
    return "other", False


def column_name(avro_field: Mapping[str, Any]) -> str:
    """The name a reader sees: the original column name when the schema records one."""
    original = avro_field.get("originalName")
    return original if isinstance(original, str) else str(avro_field.get("name"))


@dataclass
class FileProfile:
    """Profiles of the columns of one data file (or of several, merged).

    `file_bytes` is the size of the data file the profile describes: a reader uses
    the profile only while the file still has that size (else rows were appended
    after the profile was written, and it reads the rows). `time_min`/`time_max`
    bound the event times (microseconds since the epoch) of its rows.
    """

    rows: int = 0
    file_bytes: int = 0
    time_min: int | None = None
    time_max: int | None = None
    columns: dict[str, ColumnProfile] = field(default_factory=dict)

    def add_datums(self, schema: Mapping[str, Any], rows: Sequence[Mapping[str, Any]],
                   time_field: str = "_time", skip: Iterable[str] = ()) -> None:
        """Add Avro datums written with `schema` (a record schema as a dict); fields in
        `skip` (envelope ids) are not profiled, `time_field` only bounds the times."""
        if not rows:
            return
        self.add_times([r.get(time_field) for r in rows])
        skipped = set(skip) | {time_field}
        columns: dict[str, tuple[Kind, bool, Sequence[Any]]] = {}
        for avro_field in schema.get("fields", ()):
            name = avro_field.get("name")
            if name not in skipped:
                kind, integer = _field_kind(avro_field)
                columns[column_name(avro_field)] = (kind, integer, [r.get(name) for r in rows])
        # Columns that held only nulls so far have no field, only a schema entry; readers
        # show them as empty columns, so the profile has them too.
        for entry in schema.get("nullColumns") or ():
            if isinstance(entry, Mapping):
                columns.setdefault(column_name(entry), ("categorical", False, [None] * len(rows)))
        self.add_columns(len(rows), columns)

    def add_times(self, times: Iterable[Any]) -> None:
        """Widen the event-time bounds by `times`: microseconds since the epoch as written,
        or aware datetimes as Avro readers return them; other values are ignored."""
        found = [t if isinstance(t, int) else _micros(t) for t in times
                 if (isinstance(t, int) and not isinstance(t, bool))
                 or (isinstance(t, datetime) and t.tzinfo is not None)]
        if found:
            _widen(self, FileProfile(time_min=min(found), time_max=max(found)),
                   "time_min", "time_max")

    def add_columns(self, rows: int,
                    columns: Mapping[str, tuple[Kind, bool, Sequence[Any] | np.ndarray]]) -> None:
        """Add `rows` rows given as column name -> (kind, integer?, values); a profiled
        column missing from `columns` gets nulls, a new one nulls for the earlier rows."""
        for name, (kind, integer, values) in columns.items():
            if len(values) != rows:
                raise ValueError(f"column {name!r} has {len(values)} values, not {rows}")
            column = self.columns.get(name)
            if column is None:
                column = self.columns[name] = ColumnProfile(kind, nulls=self.rows,
                                                            integer=integer)
            elif column.kind != kind:
                # Typed differently than before: the earlier values count as type errors.
                replaced = self.columns[name] = ColumnProfile(kind, integer=integer)
                replaced.merge(column)
                column = replaced
            column.add(values)
        for name, column in self.columns.items():
            if name not in columns:
                column.nulls += rows
        self.rows += rows

    def merge(self, other: FileProfile) -> None:
        self.rows += other.rows
        self.file_bytes += other.file_bytes
        _widen(self, other, "time_min", "time_max")
        for name, column in other.columns.items():
            mine = self.columns.get(name)
            if mine is None:
                # A column the other files lack: its rows there count as nulls.
                mine = self.columns[name] = ColumnProfile(column.kind, nulls=self.rows - other.rows,
                                                          integer=column.integer)
            mine.merge(column)
        for name, mine in self.columns.items():
            if name not in other.columns:
                mine.nulls += other.rows

    def to_json(self) -> str:
        return json.dumps({
            "format": FORMAT, "version": FORMAT_VERSION, "rows": self.rows,
            "file_bytes": self.file_bytes, "time_min": self.time_min, "time_max": self.time_max,
            "relative_accuracy": RELATIVE_ACCURACY, "frequent_capacity": FREQUENT_CAPACITY,
            "columns": {name: c.to_json() for name, c in self.columns.items()},
        }, separators=(",", ":"), allow_nan=False)

    @classmethod
    def from_json(cls, text: str | bytes) -> FileProfile:
        """Parse and check a profile; ProfileError for anything that is not a whole,
        consistent profile of this format (never another exception)."""
        if len(text) > MAX_PROFILE_BYTES:
            raise ProfileError(f"profile larger than {MAX_PROFILE_BYTES} bytes")
        try:
            data = json.loads(text, parse_constant=_refuse_constant)
            return cls._from_data(data)
        except ProfileError:
            raise
        except (ValueError, TypeError, KeyError, AttributeError, RecursionError,
                OverflowError) as e:
            raise ProfileError(f"not a valid profile: {type(e).__name__}: {e}") from None

    @classmethod
    def _from_data(cls, data: Any) -> FileProfile:
        _expect(data, dict, "profile")
        if data.get("format") != FORMAT or data.get("version") != FORMAT_VERSION:
            raise ProfileError("not a profile of this format and version")
        if (data.get("relative_accuracy") != RELATIVE_ACCURACY
                or data.get("frequent_capacity") != FREQUENT_CAPACITY):
            raise ProfileError("profile made with other sketch parameters")
        columns = _expect(data.get("columns"), dict, "columns")
        if len(columns) > MAX_COLUMNS:
            raise ProfileError("too many columns")
        profile = cls(_int(data.get("rows"), "rows"), _int(data.get("file_bytes"), "file_bytes"),
                      _int(data.get("time_min"), "time_min", optional=True, lo=-_MAX_COUNT),
                      _int(data.get("time_max"), "time_max", optional=True, lo=-_MAX_COUNT))
        for name, column in columns.items():
            parsed = ColumnProfile.from_json(column)
            if parsed.count + parsed.nulls + parsed.type_errors != profile.rows:
                raise ProfileError(f"column {name!r}: values and nulls do not add up to the rows")
            profile.columns[name] = parsed
        return profile


def _widen(mine: Any, other: Any, low: str, high: str) -> None:
    """Widen `mine`'s [low, high] bounds (None: unknown) by `other`'s."""
    for name, pick in ((low, min), (high, max)):
        a, b = getattr(mine, name), getattr(other, name)
        setattr(mine, name, b if a is None else a if b is None else pick(a, b))


def _micros(t: datetime) -> int:
    return (t - _EPOCH) // timedelta(microseconds=1)


def _refuse_constant(name: str) -> Any:
    raise ProfileError(f"{name} is not valid in a profile")


def _expect(value: Any, kind: type, what: str) -> Any:
    if not isinstance(value, kind):
        raise ProfileError(f"{what}: expected {kind.__name__}, got {type(value).__name__}")
    return value


def _int(value: Any, what: str, *, optional: bool = False, lo: int = 0,
         hi: int = _MAX_COUNT) -> Any:
    if value is None and optional:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
        raise ProfileError(f"{what}: expected a whole number in [{lo}, {hi}], got {value!r:.40}")
    return value


def _float(value: Any, what: str, *, optional: bool = False) -> Any:
    if value is None and optional:
        return None
    if (not isinstance(value, (int, float)) or isinstance(value, bool)
            or not math.isfinite(value)):
        raise ProfileError(f"{what}: expected a finite number, got {value!r:.40}")
    return float(value)
