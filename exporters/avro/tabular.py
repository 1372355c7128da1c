"""Tabular payloads (DataFrames, dicts, lists of records, arrays) to Avro records and back.

One Avro record per row: the envelope fields of `exporters.avro.schema` first,
then one nullable field (``["null", T]``, default null) per column.

Type mapping (pandas dtype -> Avro type ``T``):

============================  ================================================
int*, uint8-32, Int*, UInt*   long
uint64 / UInt64               long if every value of the batch fits, else
                              string with ``encoding: "uint64"`` (decimal
                              digits), so such a batch has its own schema
float*, Float*                double (NaN -> null, +/-inf kept)
bool, boolean                 boolean
str, string                   string (any size, stored as-is)
datetime64, naive            long local-timestamp-micros (wall time, no zone:
                              readers do not take it for a UTC instant; readers
                              older than Avro 1.10 see the long)
datetime64, tz-aware          long timestamp-micros (the UTC instant);
                              ``timezone`` holds the zone, restored on read-back.
                              Sub-microsecond precision is dropped.
timedelta64                   long microseconds, ``encoding: "timedelta-micros"``
category                      the type of its values (usually string), restored
                              as ``category`` (categories are re-derived from
                              the values; order and ``ordered`` are not kept)
object                        decided from the non-null values: all str ->
                              string, all int -> long, int/float mix -> double,
                              all bool -> boolean, all datetime -> timestamp,
                              all date -> date, all time -> time-micros, all
                              Decimal -> bytes decimal(38, max scale seen), all
                              bytes -> bytes, all timedelta -> timedelta-micros,
                              all null -> no type yet (the column's known
                              type, else listed in ``nullColumns``);
                              anything else (lists, dicts,
                              tuples, arrays, mixed types, ints beyond 64 bits)
                              -> JSON text with ``encoding: "json"``
other extension dtypes        converted through object as above; read-back
                              tries to restore the recorded dtype
============================  ================================================

JSON encoding: numpy scalars and arrays become numbers and lists, tuples and
sets become lists, Decimal / datetime / date / time / Timedelta become strings
(ISO format), bytes become base64 text, NaN/inf are written as the
non-standard ``NaN``/``Infinity`` tokens that Python's json reads back.
Read-back decodes the JSON, so lists and dicts come back as Python lists and
dicts. Decimals that do not fit decimal(38, s) (more digits, or infinite) are
stored as text with ``encoding: "decimal-string"``; Decimal NaN is null, as
pandas counts it missing.

Nulls: None, NaN, NaT, pd.NA all become Avro null. Read-back gives the
dtype's own missing value (NaN, NaT, <NA>) and None in object columns.

Column names that are not Avro names (``[A-Za-z_][A-Za-z0-9_]*``) are
sanitised: invalid characters -> ``_``, ``_`` prefixed before a leading digit,
``_`` for an empty name; names colliding with an earlier field (envelope
fields included, duplicate column names too) get ``__2``, ``__3``, ...

Extra field attributes (kept in the file's writer schema; Avro readers that do
not know them ignore them): see the ``ATTR_*`` constants below. The schema
depends on column names, dtypes and the Avro types chosen, never on row counts
(decimal scale and the uint64 fallback are, by design, decided by the values).

Several frames in one batch share one schema: their columns are concatenated
first, with pandas' promotion when a column's dtypes differ (int + float ->
float64, most other mixes -> object, e.g. all-None object + str), and the
Avro type is chosen from the result (an object column of str and None is
still an Avro string; parts holding only nulls do not change the recorded
dtype).

Across batches, a collection's schema is state: `convert_frames` types each
batch against the schema the collection was last written with (`known`), so
values that fit keep the known type, a column only widens as Avro resolution
reads (long -> double, a field added), and what does not fit goes to a
``<name>__mismatch`` JSON text field (rules: `exporters.avro.schema_evolution`).

Read-back (`restore_frame`) uses ``pandasDtype`` to rebuild each column: a
numpy int/bool column that holds nulls becomes Int64/boolean; a dtype this
pandas cannot build falls back to object. `restore_frames` merges files with
different schemas by the rules in its docstring.

The frame index is not stored: reset it first if it carries data.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import dataclasses
import datetime as dt
import decimal
import functools
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from pandas.api.types import infer_dtype

from exporters.avro.declared_schema import (
    AVRO_TYPES,
    PANDAS_DTYPES,
    DeclaredSchema,
    cast_values,
    value_kind,
)
from exporters.avro.pandas_compat import pandas_dtype, str_array
from exporters.avro.schema import (
    CORRELATION_ID,
    ENVELOPE_FIELDS,
    ENVELOPE_NAMES,
    MODEL_VERSION,
    NAMESPACE,
    ROW,
    SPAN_ID,
    TIME,
    TRACE_ID,
    Envelope,
)
from exporters.avro.schema_evolution import (
    ATTR_MISMATCH_OF,
    ATTR_NULL_COLUMNS,
    MISMATCH_SUFFIX,
    fit,
    null_columns,
)

__all__ = [
    "ATTR_ENCODING",
    "ATTR_ORIGINAL_NAME",
    "ATTR_ORIGINAL_NAME_TYPE",
    "ATTR_PANDAS_DTYPE",
    "ATTR_TIMEZONE",
    "ENCODING_DECIMAL_STRING",
    "ENCODING_JSON",
    "ENCODING_TIMEDELTA",
    "ENCODING_UINT64",
    "KINDS",
    "TabularBatch",
    "column_key",
    "convert_frames",
    "restore_frame",
    "restore_frames",
    "sanitize_names",
    "to_frame",
]

# --- extra field attributes ---------------------------------------------------
#: The column's original name, always present. For non-str names, its text form
#: (see ATTR_ORIGINAL_NAME_TYPE).
ATTR_ORIGINAL_NAME = "originalName"
#: Only for names that were not str: "int", "float", "bool", "null", "tuple"
#: (originalName is then a JSON list) or "other" (restored as its str()).
ATTR_ORIGINAL_NAME_TYPE = "originalNameType"
#: str() of the column's pandas dtype ("int64", "str", "datetime64[ns, UTC]", ...).
ATTR_PANDAS_DTYPE = "pandasDtype"
#: How a value is encoded when the Avro type alone does not say (ENCODING_*).
ATTR_ENCODING = "encoding"
#: On timestamp fields: the time zone of tz-aware data. Absent: naive data.
ATTR_TIMEZONE = "timezone"

ENCODING_JSON = "json"  # string field holding JSON text
ENCODING_UINT64 = "uint64"  # string field holding an unsigned 64-bit integer
ENCODING_TIMEDELTA = "timedelta-micros"  # long field holding a duration in microseconds
ENCODING_DECIMAL_STRING = "decimal-string"  # string field holding str(Decimal)

KINDS = ("dataframe", "row", "columns", "rows", "ndarray")

DECIMAL_PRECISION = 38

_INT64_MAX = np.iinfo(np.int64).max
_EPOCH = dt.datetime(1970, 1, 1)
_ONE_US = dt.timedelta(microseconds=1)
_INVALID_CHARS = re.compile(r"[^A-Za-z0-9_]")

_TIMESTAMP = {"type": "long", "logicalType": "timestamp-micros"}  # an instant (aware data)
_LOCAL_TIMESTAMP = {"type": "long", "logicalType": "local-timestamp-micros"}  # naive wall time
_TIMESTAMP_LOGICAL = ("timestamp-micros", "timestamp-millis",
                      "local-timestamp-micros", "local-timestamp-millis")
_DATE = {"type": "int", "logicalType": "date"}
_TIME = {"type": "long", "logicalType": "time-micros"}


# --- payload bodies to frames -------------------------------------------------


def to_frame(body: Any, kind: str) -> pd.DataFrame:
    """Turn a collected tabular payload into a DataFrame, so that one converter serves all kinds."""
    if kind == "dataframe":
        if not isinstance(body, pd.DataFrame):
            raise TypeError(f"kind 'dataframe' needs a pandas DataFrame, got {type(body).__name__}")
        return body
    if kind == "row":
        if not isinstance(body, Mapping):
            raise TypeError(f"kind 'row' needs a dict of scalars, got {type(body).__name__}")
        if not body:
            return pd.DataFrame(index=range(1))
        fast = _scalar_row_frame(body)
        if fast is not None:
            return fast
        # Wrapping each value in a list keeps non-scalar values as single cells.
        return pd.DataFrame({k: [v] for k, v in body.items()})
    if kind == "columns":
        return _columns_frame(body)
    if kind == "rows":
        if isinstance(body, Mapping | str | bytes) or not isinstance(body, Iterable):
            raise TypeError(f"kind 'rows' needs a list of dicts, got {type(body).__name__}")
        rows = list(body)
        if len(rows) == 1 and isinstance(rows[0], Mapping) and rows[0]:
            return to_frame(rows[0], "row")
        for i, row in enumerate(rows):
            if not isinstance(row, Mapping):
                raise TypeError(f"kind 'rows': item {i} is a {type(row).__name__}, not a dict")
        return pd.DataFrame(rows)
    if kind == "ndarray":
        return _ndarray_frame(body)
    raise ValueError(f"unsupported tabular payload kind {kind!r}; expected one of {KINDS}")




def _scalar_row_frame(row: Mapping[Any, Any]) -> pd.DataFrame | None:
    """A one-row frame of int/float/bool/str/None values, built without per-column inference.

    `pd.DataFrame({k: [v]})` costs about 250 µs for ten columns here; building
    the arrays with the dtypes pandas would infer and handing them to
    `DataFrame._from_arrays` costs about 70 µs. None: some value needs pandas'
    own inference (or the private constructor is gone).
    """
    arrays = []
    for v in row.values():
        tp = type(v)
        if tp is int:
            if not -(2**63) <= v < 2**63:
                return None
            arrays.append(np.array([v], dtype=np.int64))
        elif tp is float or tp is bool:
            arrays.append(np.array([v]))
        elif tp is str:
            arrays.append(str_array([v]))
        elif v is None:
            arrays.append(np.array([None], dtype=object))
        else:
            return None
    keys = tuple(row)
    columns = _str_index(keys) if all(type(k) is str for k in keys) else pd.Index(keys)
    try:
        return pd.DataFrame._from_arrays(arrays, columns, pd.RangeIndex(1), verify_integrity=False)
    except Exception:  # noqa: BLE001 - private constructor: the public path instead
        return None


def column_key(columns: pd.Index) -> tuple[Any, ...]:
    """A frame's column names as a tuple (what groups frames into one conversion), cheaply.

    `tuple(columns)` walks a pyarrow-backed str Index value by value (pandas 3's default
    for string names), several µs per frame on the export thread; one Arrow chunk
    without nulls gives the same strings at once.
    """
    pa_array = getattr(columns.array, "_pa_array", None) if type(columns) is pd.Index else None
    if pa_array is not None and pa_array.num_chunks == 1 and not pa_array.null_count:
        names = pa_array.chunk(0).to_pylist()
        if all(type(n) is str for n in names):
            return tuple(names)
    return tuple(columns)


@functools.lru_cache(maxsize=256)
def _str_index(keys: tuple[str, ...]) -> pd.Index:
    # Shared between frames (an Index is immutable): also lets convert_frames see equal columns at once.
    return pd.Index(keys)


def _columns_frame(body: Any) -> pd.DataFrame:
    if not isinstance(body, Mapping):
        raise TypeError(f"kind 'columns' needs a dict of lists, got {type(body).__name__}")
    cols: dict[Any, Any] = {}
    lengths: dict[Any, int] = {}
    for name, values in body.items():
        if isinstance(values, str | bytes | Mapping) or not hasattr(values, "__len__"):
            raise TypeError(
                f"kind 'columns': column {name!r} is a {type(values).__name__}, not a list or array"
            )
        if isinstance(values, np.ndarray) and values.ndim != 1:
            raise ValueError(f"kind 'columns': column {name!r} has {values.ndim} dimensions, not 1")
        # A Series would be aligned on its index; its values are what was collected.
        cols[name] = values.array if isinstance(values, pd.Series) else values
        lengths[name] = len(values)
    if len(set(lengths.values())) > 1:
        raise ValueError(f"kind 'columns': columns have unequal lengths {lengths}")
    return pd.DataFrame(cols)


def _ndarray_frame(body: Any) -> pd.DataFrame:
    if not isinstance(body, np.ndarray):
        if not hasattr(body, "__array__"):
            raise TypeError(f"kind 'ndarray' needs a numpy array, got {type(body).__name__}")
        body = np.asarray(body)
    if body.dtype.names is not None:
        if body.ndim == 2 and 1 in body.shape:
            body = body.reshape(-1)
        if body.ndim != 1:
            raise ValueError(
                f"kind 'ndarray': structured array of shape {body.shape} is not a table"
            )
        return pd.DataFrame.from_records(body)
    if body.ndim == 1:
        return pd.DataFrame({"value": body})
    if body.ndim == 2:
        return pd.DataFrame(body, columns=[str(i) for i in range(body.shape[1])])
    raise ValueError(f"kind 'ndarray' needs a 1-D or 2-D array, got {body.ndim} dimensions")


# --- column names ---------------------------------------------------------------


def sanitize_names(names: Sequence[Any]) -> list[str]:
    """Valid, unique Avro field names for `names`, in order (deterministic, linear time)."""
    return [field for field, _ in _name_fields(tuple((type(n), n) for n in names))]


@functools.lru_cache(maxsize=512)
def _name_fields(typed_names: tuple[tuple[type, Any], ...]) -> tuple[tuple[str, dict], ...]:
    # Keyed by (type, name) so that 0, 0.0 and False do not share a cache entry.
    used = set(ENVELOPE_NAMES)
    next_suffix: dict[str, int] = {}
    out = []
    for _, name in typed_names:
        text, attrs = _original_name_attrs(name)
        base = _INVALID_CHARS.sub("_", text if not isinstance(name, tuple) else _tuple_text(name))
        if not base:
            base = "_"
        elif base[0].isdigit():
            base = "_" + base
        field = base
        if field in used:
            k = next_suffix.get(base, 2)
            while f"{base}__{k}" in used:
                k += 1
            next_suffix[base] = k + 1
            field = f"{base}__{k}"
        used.add(field)
        out.append((field, attrs))
    return tuple(out)


def _tuple_text(name: tuple) -> str:
    return "_".join(_tuple_text(x) if isinstance(x, tuple) else str(x) for x in name)


def _original_name_attrs(name: Any) -> tuple[str, dict[str, str]]:
    if isinstance(name, str):
        return name, {ATTR_ORIGINAL_NAME: name}
    if isinstance(name, bool | np.bool_):
        text, kind = str(bool(name)), "bool"
    elif isinstance(name, int | np.integer):
        text, kind = str(int(name)), "int"
    elif isinstance(name, float | np.floating):
        text, kind = repr(float(name)), "float"
    elif name is None:
        text, kind = "None", "null"
    elif isinstance(name, tuple):
        text, kind = json.dumps(list(name), default=str), "tuple"
    else:
        text, kind = str(name), "other"
    return text, {ATTR_ORIGINAL_NAME: text, ATTR_ORIGINAL_NAME_TYPE: kind}


def _restore_name(field: Mapping[str, Any]) -> Any:
    text = field[ATTR_ORIGINAL_NAME] if ATTR_ORIGINAL_NAME in field else field["name"]
    kind = field.get(ATTR_ORIGINAL_NAME_TYPE)
    try:
        if kind == "int":
            return int(text)
        if kind == "float":
            return float(text)
        if kind == "bool":
            return text == "True"
        if kind == "null":
            return None
        if kind == "tuple":
            return _as_tuple(json.loads(text))
    except ValueError:
        pass
    return text


def _as_tuple(value: Any) -> Any:
    return tuple(_as_tuple(v) for v in value) if isinstance(value, list) else value


# --- frames to Avro records -----------------------------------------------------


@dataclass
class TabularBatch:
    """Avro records of several frames that share one schema."""

    schema: dict  # Avro record schema (a plain dict, fastavro.parse_schema-able)
    rows: list[dict]  # Avro datums, in order
    mismatched: dict[str, int] = dataclasses.field(default_factory=dict)  # column -> values set aside
    # Declared schemas only: column -> values that could not be cast (stored as null), and
    # column -> values of columns the declaration does not name (not stored).
    cast_failed: dict[str, int] = dataclasses.field(default_factory=dict)
    undeclared: dict[str, int] = dataclasses.field(default_factory=dict)


def convert_frames(
    frames: Sequence[pd.DataFrame],
    envelopes: Sequence[Envelope],
    record_name: str,
    known: Mapping[str, Any] | None = None,
    *,
    object_dtypes: Sequence[str | None] | None = None,
    declared: DeclaredSchema | None = None,
    same_columns: bool = False,
) -> TabularBatch:
    """Convert frames with the same column names into Avro datums sharing one schema.

    The frames are gathered column by column and each column is converted once
    for the whole batch: per-frame pandas calls are what makes small frames slow.
    Frames whose column names differ (not expected from the exporter) are
    aligned on the union of names, missing values being null.

    `known` is the schema the collection was last written with: columns are typed
    against it (`_SchemaFitter`), so the result is `known` itself or a widening of
    it. `object_dtypes` (by column position): the pandas dtype an object column
    records instead of ``object`` (for dict rows: the dtype of the values without
    their nulls, which is what a row without a null would record). `same_columns`: the
    caller vouches that every frame has the first one's column names (the exporter
    grouped them by `column_key`), so they are not compared again. With `declared`, the
    schema is the declaration's alone, values cast to it (`_convert_declared`).
    """
    if len(frames) != len(envelopes):
        raise ValueError(f"{len(frames)} frames but {len(envelopes)} envelopes")
    if not frames:
        raise ValueError("convert_frames needs at least one frame")
    for f in frames:
        if not isinstance(f, pd.DataFrame):
            raise TypeError(f"convert_frames needs DataFrames, got {type(f).__name__}")

    lengths = [len(f) for f in frames]
    columns = frames[0].columns
    first_names = columns.tolist()
    if same_columns or all(_same_columns(f.columns, columns, first_names) for f in frames[1:]):
        gathered = _gather_columns(frames, len(columns), lengths)
    else:
        if not all(f.columns.is_unique for f in frames):
            raise ValueError("frames with duplicate column names must all have the same columns")
        combined = pd.concat(frames, ignore_index=True)
        columns = combined.columns
        gathered = [_with_dtype(combined.iloc[:, j].array) for j in range(len(columns))]

    if declared is not None:
        return _convert_declared(columns, gathered, envelopes, lengths, declared, record_name)
    names = _name_fields(tuple((type(n), n) for n in columns))
    fitter = _SchemaFitter(known, record_name)
    for j, ((field_name, name_attrs), (arr, pd_dtype)) in enumerate(
            zip(names, gathered, strict=True)):
        avro_type, attrs, vals = _convert_column(arr)
        if object_dtypes is not None and object_dtypes[j] and pd_dtype == "object":
            pd_dtype = object_dtypes[j]
        field = {"name": field_name, "type": ["null", avro_type], "default": None}
        field.update(name_attrs)
        field[ATTR_PANDAS_DTYPE] = pd_dtype
        field.update(attrs)
        fitter.add(field, avro_type is None, vals, arr)
    schema, field_names, values = fitter.result()
    return TabularBatch(schema=schema, rows=_build_rows(envelopes, lengths, field_names, values),
                        mismatched=fitter.mismatched)


def declared_schema(declared: DeclaredSchema, record_name: str) -> dict[str, Any]:
    """The Avro schema of a declaration: envelope fields, then one ``["null", T]`` field per
    declared column, in name order. It depends on nothing else, so every writer of the
    collection (replicas, `serve`, restarts) writes this same schema."""
    return copy.deepcopy(_declared_schema(declared, record_name))


@functools.lru_cache(maxsize=64)
def _declared_schema(declared: DeclaredSchema, record_name: str) -> dict[str, Any]:
    names = _name_fields(tuple((str, name) for name, _ in declared.columns))
    fields = []
    for (field_name, name_attrs), (_, type_name) in zip(names, declared.columns, strict=True):
        field = {"name": field_name, "type": ["null", copy.deepcopy(AVRO_TYPES[type_name])],
                 "default": None, **name_attrs, ATTR_PANDAS_DTYPE: PANDAS_DTYPES[type_name]}
        if type_name == "timestamp":
            field[ATTR_TIMEZONE] = "UTC"
        fields.append(field)
    return {"type": "record", "name": record_name, "namespace": NAMESPACE,
            "fields": copy.deepcopy(ENVELOPE_FIELDS) + fields}


def _convert_declared(
    columns: pd.Index,
    gathered: list[_Column],
    envelopes: Sequence[Envelope],
    lengths: list[int],
    declared: DeclaredSchema,
    record_name: str,
) -> TabularBatch:
    """Type a batch to a declared schema: each declared column is converted as usual, then
    cast (`declared_schema.cast_values`); a value that cannot be cast is stored null and
    counted; a declared column the batch lacks is null; the values of columns the
    declaration does not name are counted and not stored (a column added to the
    schema by one writer's data would make the writers' schemas differ)."""
    schema = declared_schema(declared, record_name)
    types = dict(declared.columns)
    found: dict[str, _Column] = {}
    undeclared: dict[str, int] = {}
    for name, column in zip(columns, gathered, strict=True):
        if isinstance(name, str) and name in types and name not in found:
            found[name] = column
            continue
        present = int(np.count_nonzero(~np.asarray(pd.isna(column[0]), dtype=bool)))
        if present:
            label = name if isinstance(name, str) else _original_name_attrs(name)[0]
            undeclared[label] = undeclared.get(label, 0) + present
    total = sum(lengths)
    values: list[list[Any]] = []
    cast_failed: dict[str, int] = {}
    for name, type_name in declared.columns:
        if name not in found:
            values.append([None] * total)
            continue
        cast, failed = _cast_column(found[name][0], type_name)
        values.append(cast)
        if failed:
            cast_failed[name] = failed
    field_names = [f["name"] for f in schema["fields"][len(ENVELOPE_FIELDS):]]
    return TabularBatch(schema=schema, rows=_build_rows(envelopes, lengths, field_names, values),
                        cast_failed=cast_failed, undeclared=undeclared)


def _cast_column(arr: Any, type_name: str) -> tuple[list[Any], int]:
    """A column's values cast to a declared type: as a whole when the column has one
    kind of value, value by value when it is mixed (converted as JSON text)."""
    avro_type, attrs, vals = _convert_column(arr)
    kind = value_kind(avro_type, attrs)
    if kind != "json":
        return cast_values(kind, vals, type_name)
    out: list[Any] = [None] * len(arr)
    failed = 0
    for i, _, value_type, value_attrs, value in _each_value(arr):
        (out[i],), bad = cast_values(value_kind(value_type, value_attrs), [value], type_name)
        failed += bad
    return out, failed


def _each_value(arr: Any) -> Iterable[tuple[int, Any, Any, dict[str, Any], Any]]:
    """(position, value, its Avro type, attributes, converted value) of each non-null
    value of a mixed column, each converted on its own."""
    one = np.empty(1, dtype=object)
    for i, v in enumerate(pd.Series(arr, copy=False).to_numpy(dtype=object)):
        if _is_missing(v):
            continue
        one[0] = v
        avro_type, attrs, (val,) = _convert_column(one)
        yield i, v, avro_type, attrs, val


class _SchemaFitter:
    """Types the columns of one batch against the collection's known schema.

    Rules (see `exporters.avro.schema_evolution`): a column keeps its known type when
    its values fit (all nulls, ints into a double column); it widens long ->
    double; a new column is added; a column with only nulls and no known type is
    listed in ``nullColumns``. A value that fits neither way is written null in
    its column and kept as JSON text in the column's mismatch field
    (``<name>__mismatch``, attribute ``mismatchOf``), and counted.
    """

    def __init__(self, known: Mapping[str, Any] | None, record_name: str) -> None:
        self.known = known
        self.record_name = record_name
        known_fields = [f for f in (known or {}).get("fields", ()) if "originalName" in f]
        self.fields: list[dict[str, Any]] = [copy.deepcopy(f) for f in known_fields]
        self.values: dict[str, list[Any] | None] = {f["name"]: None for f in self.fields}
        # Keyed by (original name, its type, occurrence): duplicate column names stay apart.
        self.by_key: dict[tuple[Any, ...], int] = {}
        self.key_of: dict[str, tuple[Any, ...]] = {}
        self.known_count: dict[tuple[Any, Any], int] = {}
        for i, f in enumerate(self.fields):
            key = self._occurrence(_field_key(f), self.known_count)
            self.by_key[key] = i
            self.key_of[f["name"]] = key
        self.batch_count: dict[tuple[Any, Any], int] = {}
        self.used = set(ENVELOPE_NAMES) | {f["name"] for f in self.fields}
        self.nulls: dict[tuple[Any, ...], dict[str, Any]] = {}
        # Columns in the order they first appeared, typed or not: a column typed later
        # takes its place, so the field order does not depend on batch boundaries.
        self.order: list[tuple[Any, ...]] = list(self.by_key)
        for c in sorted(null_columns(known), key=lambda c: c.get(_POSITION, 0)):
            key = (*_field_key(c), 0)
            self.nulls[key] = {k: v for k, v in c.items() if k != _POSITION}
            self.order.insert(min(int(c.get(_POSITION, 0)), len(self.order)), key)
        self.ordered = set(self.order)
        self.mismatched: dict[str, int] = {}
        self.length: int | None = None

    def add(self, field: dict[str, Any], unknown: bool, vals: list[Any], arr: Any) -> None:
        self.length = len(vals)
        key = self._occurrence(_field_key(field), self.batch_count)
        if key not in self.ordered:
            self.order.append(key)
            self.ordered.add(key)
        at = self.by_key.get(key)
        if at is None:
            if unknown:  # nulls only, never typed: no field yet
                self.nulls.setdefault(key, _null_column(field))
                return
            self.nulls.pop(key, None)
            field["name"] = self._free_name(field["name"])
            self._append(field, vals)
            return
        known = self.fields[at]
        if unknown or all(v is None for v in vals):
            self.values[known["name"]] = vals
            return
        how = fit(known, field)
        if how == "same":
            self.values[known["name"]] = vals
        elif how == "cast_double":
            self.values[known["name"]] = [None if v is None else float(v) for v in vals]
        elif how == "widen":
            self.fields[at] = {**field, "name": known["name"]}
            self.values[known["name"]] = vals
        else:
            self._fit_each(at, arr)

    def _fit_each(self, at: int, arr: Any) -> None:
        """Value by value: what fits (or widens) stays, the rest goes to the mismatch field."""
        current = self.fields[at]
        out: list[Any] = [None] * len(arr)
        rejected: list[Any] = [None] * len(arr)
        bad = 0
        for i, v, avro_type, attrs, val in _each_value(arr):
            how = fit(current, {"type": ["null", avro_type], **attrs})
            if how == "widen":
                current = {**current, "type": ["null", avro_type]}
                out = [None if x is None else float(x) for x in out]
            if how is None:
                rejected[i] = _json_dumps(v)
                bad += 1
            else:
                out[i] = float(val) if how in ("cast_double", "widen") else val
        self.fields[at] = current
        self.values[current["name"]] = out
        if bad:
            self._mismatch(current, rejected, bad)

    def _mismatch(self, of: dict[str, Any], texts: list[Any], count: int) -> None:
        original = str(of.get(ATTR_ORIGINAL_NAME, of["name"]))
        self.mismatched[original] = self.mismatched.get(original, 0) + count
        name_attrs = {ATTR_ORIGINAL_NAME: original + MISMATCH_SUFFIX}
        key = (*_field_key(name_attrs), 0)
        at = self.by_key.get(key)
        if at is not None:
            self.values[self.fields[at]["name"]] = texts
            return
        self._append({
            "name": self._free_name(of["name"] + MISMATCH_SUFFIX),
            "type": ["null", "string"], "default": None, **name_attrs,
            ATTR_PANDAS_DTYPE: "object", ATTR_ENCODING: ENCODING_JSON,
            ATTR_MISMATCH_OF: of["name"],
        }, texts)

    def _append(self, field: dict[str, Any], vals: list[Any]) -> None:
        key = self._occurrence(_field_key(field), self.known_count)
        self.by_key[key] = len(self.fields)
        self.key_of[field["name"]] = key
        if key not in self.ordered:
            self.order.append(key)
            self.ordered.add(key)
        self.fields.append(field)
        self.used.add(field["name"])
        self.values[field["name"]] = vals

    @staticmethod
    def _occurrence(name_key: tuple[Any, Any], counts: dict[tuple[Any, Any], int]) -> tuple:
        k = counts.get(name_key, 0)
        counts[name_key] = k + 1
        return (*name_key, k)

    def _free_name(self, name: str) -> str:
        if name not in self.used:
            return name
        k = 2
        while f"{name}__{k}" in self.used:
            k += 1
        return f"{name}__{k}"

    def result(self) -> tuple[dict[str, Any], list[str], list[list[Any]]]:
        n = self.length or 0
        rank = {key: i for i, key in enumerate(self.order)}
        self.fields.sort(key=lambda f: rank[self.key_of[f["name"]]])
        names = [f["name"] for f in self.fields]
        values = [v if v is not None else [None] * n
                  for v in (self.values[name] for name in names)]
        schema: dict[str, Any] = {
            "type": "record", "name": self.record_name, "namespace": NAMESPACE,
            "fields": copy.deepcopy(ENVELOPE_FIELDS) + self.fields,
        }
        if self.nulls:  # each with its place among all the columns
            schema[ATTR_NULL_COLUMNS] = [
                {**column, _POSITION: rank[key]}
                for key, column in sorted(self.nulls.items(), key=lambda kv: rank[kv[0]])
            ]
        return schema, names, values


_POSITION = "position"  # of a null column among all the columns (nullColumns entries)


def _field_key(field: Mapping[str, Any]) -> tuple[Any, Any]:
    return field.get(ATTR_ORIGINAL_NAME), field.get(ATTR_ORIGINAL_NAME_TYPE)


def _null_column(field: Mapping[str, Any]) -> dict[str, Any]:
    return {k: field[k] for k in (ATTR_ORIGINAL_NAME, ATTR_ORIGINAL_NAME_TYPE, ATTR_PANDAS_DTYPE)
            if k in field}


def _is_missing(v: Any) -> bool:
    try:
        return v is None or bool(pd.isna(v))
    except (TypeError, ValueError):  # lists, arrays: a value
        return False


def _build_rows(
    envelopes: Sequence[Envelope],
    lengths: Sequence[int],
    field_names: Sequence[str],
    values: list[list[Any]],
) -> list[dict]:
    row_values = zip(*values, strict=True) if values else None
    rows = []
    append = rows.append
    for env, n in zip(envelopes, lengths, strict=True):
        for i in range(n):
            rec = env.fields(row=i)
            if row_values is not None:
                rec.update(zip(field_names, next(row_values), strict=True))
            append(rec)
    return rows


# A gathered column: (numpy or extension array holding every frame's rows, str(pandas dtype)).
# Categoricals are gathered as object arrays of their values: their categories
# differ from frame to frame and comparing CategoricalDtypes is slow.
_Column = tuple[Any, str]


def _with_dtype(arr: Any) -> _Column:
    if isinstance(arr, pd.Categorical):
        return _categorical_objects([arr]), "category"
    return arr, str(arr.dtype)


def _gather_columns(frames: Sequence[pd.DataFrame], ncols: int,
                    lengths: Sequence[int]) -> list[_Column]:
    """Every column as one array holding the rows of all frames, in order.

    Reading pandas' block manager directly costs a few µs per frame where
    `df.iloc[:, j]` or `pd.concat` cost tens; any surprise in those internals
    falls back to the public API.
    """
    nonempty = [f for f, n in zip(frames, lengths, strict=True) if n] or [frames[0]]
    try:
        gathered = _gather_blocks(nonempty, ncols, sum(lengths))
    except Exception:  # noqa: BLE001 - private pandas API: any surprise means the public path
        gathered = None
    if gathered is not None:
        return gathered
    per_frame = [[f.iloc[:, j].array for j in range(ncols)] for f in nonempty]
    return [_concat_column([cols[j] for cols in per_frame]) for j in range(ncols)]


def _same_columns(cols: pd.Index, first: pd.Index, first_names: list[Any]) -> bool:
    if cols is first:
        return True
    # pyarrow-backed str Index: comparing the Arrow arrays skips making Python strings.
    left = getattr(cols.array, "_pa_array", None)
    right = getattr(first.array, "_pa_array", None)
    if left is not None and right is not None and left.equals(right):
        return True
    return cols.tolist() == first_names or cols.equals(first)


def _block_layout(df: pd.DataFrame) -> tuple[list[Any], list[Any]]:
    """(where each block's columns sit, each block's values) of a frame."""
    where = []
    values = []
    for blk in df._mgr.blocks:
        ix = blk.mgr_locs.indexer  # a slice, or an array of column positions
        where.append(ix.tobytes() if isinstance(ix, np.ndarray) else ix)
        values.append(blk.values)
    return where, values


def _gather_blocks(frames: Sequence[pd.DataFrame], ncols: int,
                   total: int) -> list[_Column] | None:
    """Concatenate block by block; None when the frames' block layouts differ."""
    layout, first_values = _block_layout(frames[0])
    per_block = [[v] for v in first_values]
    for f in frames[1:]:
        where, values = _block_layout(f)
        if where != layout:
            return None
        for parts, v in zip(per_block, values, strict=True):
            parts.append(v)
    source: list[tuple[int, int] | None] = [None] * ncols
    for b, blk in enumerate(frames[0]._mgr.blocks):
        for k, pos in enumerate(blk.mgr_locs.as_array.tolist()):
            source[pos] = (b, k)
    if any(src is None for src in source):
        return None
    merged = [_concat_block(parts) for parts in per_block]
    out: list[_Column] = []
    for b, k in source:  # type: ignore[misc]
        m = merged[b]
        if m is None:  # dtypes differ between frames inside this block: column by column
            out.append(_concat_column([p[k] if p.ndim == 2 else p for p in per_block[b]]))
        elif isinstance(m, tuple):
            out.append(m)
        else:
            col = m[k] if m.ndim == 2 else m
            out.append((col, str(col.dtype)))
    if any(len(col) != total for col, _ in out):
        return None
    return out


def _concat_block(parts: list[Any]) -> Any:
    first = parts[0]
    if all(isinstance(p, pd.Categorical) for p in parts):
        return _categorical_objects(parts), "category"
    if len(parts) == 1:
        return first
    dtype = first.dtype
    cls = type(first)
    if not all(type(p) is cls and (p.dtype is dtype or p.dtype == dtype) for p in parts):
        return None
    if isinstance(first, np.ndarray):
        return np.concatenate(parts, axis=first.ndim - 1)
    if first.ndim == 2:
        return cls._concat_same_type(parts, axis=1)
    return cls._concat_same_type(parts)


def _concat_column(parts: list[Any]) -> _Column:
    """Concatenate one column's per-frame arrays, whatever their dtypes."""
    if all(isinstance(p, pd.Categorical) for p in parts):
        return _categorical_objects(parts), "category"
    if len(parts) > 1:
        merged = _concat_block(parts)
        if merged is not None:
            return merged, str(merged.dtype)
    # Differing dtypes: pandas' own promotion (int+float -> float, else object).
    combined = pd.concat([pd.Series(p, copy=False) for p in parts], ignore_index=True).array
    arr, dtype = _with_dtype(combined)
    # Parts holding only nulls do not vote: the dtype is the one of the parts with values,
    # as a batch of just those would record (batch boundaries must not change the schema).
    voters = {str(p.dtype) for p in parts if not bool(np.all(pd.isna(p)))}
    return arr, voters.pop() if len(voters) == 1 and dtype == "object" else dtype


def _categorical_objects(parts: list[pd.Categorical]) -> np.ndarray:
    """The values of categoricals as one object array (None for missing), from codes."""
    categories = [np.asarray(p.categories, dtype=object) for p in parts]
    codes = [p.codes for p in parts]
    sentinel = sum(len(c) for c in categories)
    table = np.concatenate([*categories, np.array([None], dtype=object)])
    offsets = np.repeat(np.cumsum([0] + [len(c) for c in categories[:-1]]), [len(c) for c in codes])
    all_codes = np.concatenate(codes).astype(np.int64)
    return table[np.where(all_codes >= 0, all_codes + offsets, sentinel)]


# --- one column --------------------------------------------------------------------


def _convert_column(arr: Any) -> tuple[Any, dict[str, Any], list[Any]]:
    """(Avro type, extra field attributes, Python values with None for nulls) of one column."""
    dtype = arr.dtype
    if isinstance(dtype, np.dtype) and not isinstance(arr, np.ndarray):
        arr = np.asarray(arr)  # naive DatetimeArray, TimedeltaArray, NumpyExtensionArray
    if isinstance(arr, np.ndarray):
        kind = dtype.kind
        if kind == "b":
            return "boolean", {}, arr.tolist()
        if kind in "iu":
            return _ints(arr, None)
        if kind == "f":
            return "double", {}, _with_none(arr.tolist(), np.isnan(arr))
        if kind == "M":
            return _datetimes64(arr, None)
        if kind == "m":
            micros = arr.astype("timedelta64[us]").view(np.int64)
            return (
                "long",
                {ATTR_ENCODING: ENCODING_TIMEDELTA},
                _with_none(micros.tolist(), np.isnat(arr)),
            )
        if kind == "U":
            return "string", {}, arr.tolist()
        return _convert_objects(arr.astype(object) if kind != "O" else arr)
    if isinstance(dtype, pd.StringDtype):
        return "string", {}, arr.to_numpy(dtype=object, na_value=None).tolist()
    if isinstance(arr, pd.arrays.BooleanArray):
        mask = np.asarray(arr.isna())
        return "boolean", {}, _with_none(arr.to_numpy(dtype=bool, na_value=False).tolist(), mask)
    if isinstance(arr, pd.arrays.IntegerArray):
        mask = np.asarray(arr.isna())
        return _ints(arr.to_numpy(dtype=dtype.numpy_dtype, na_value=0), mask)
    if isinstance(arr, pd.arrays.FloatingArray):
        data = arr.to_numpy(dtype=np.float64, na_value=np.nan)
        return "double", {}, _with_none(data.tolist(), np.isnan(data))
    if isinstance(dtype, pd.DatetimeTZDtype):
        index = pd.DatetimeIndex(arr)
        return _datetimes64(np.asarray(index.tz_convert(None)), _tz_name(dtype.tz))
    if isinstance(dtype, pd.CategoricalDtype):
        return _convert_objects(np.asarray(arr.astype(object)))
    # Other extension dtypes (period, interval, sparse, arrow...): through their Python values.
    return _convert_objects(np.asarray(arr.to_numpy(dtype=object)))


def _with_none(values: list[Any], mask: Any) -> list[Any]:
    if mask is not None and mask.any():
        for i in np.flatnonzero(mask).tolist():
            values[i] = None
    return values


def _ints(data: np.ndarray, mask: Any) -> tuple[Any, dict[str, Any], list[Any]]:
    if data.dtype == np.uint64 and data.size and int(data.max()) > _INT64_MAX:
        return (
            "string",
            {ATTR_ENCODING: ENCODING_UINT64},
            _with_none([str(v) for v in data.tolist()], mask),
        )
    return "long", {}, _with_none(data.tolist(), mask)


def _datetimes64(naive: np.ndarray, tz: str | None) -> tuple[Any, dict[str, Any], list[Any]]:
    micros = naive.astype("datetime64[us]").view(np.int64)
    attrs = {ATTR_TIMEZONE: tz} if tz else {}
    avro_type = dict(_TIMESTAMP) if tz else dict(_LOCAL_TIMESTAMP)
    return avro_type, attrs, _with_none(micros.tolist(), np.isnat(naive))


def _convert_objects(arr: np.ndarray) -> tuple[Any, dict[str, Any], list[Any]]:
    """Pick an Avro type for an object column from its non-null values."""
    mask = np.asarray(pd.isna(arr), dtype=bool)
    has_null = bool(mask.any())
    nonnull = arr[~mask] if has_null else arr
    if not len(nonnull):
        return None, {}, [None] * len(arr)  # no type yet: the known one, or none
    kind = infer_dtype(nonnull, skipna=False)
    avro_type: Any
    attrs: dict[str, Any] = {}
    vals: list[Any] | None = None
    if kind == "string":
        avro_type, vals = "string", nonnull.tolist()
    elif kind == "integer":
        # Beyond 64 bits stays unset and falls to JSON, which keeps Python's big ints exact.
        with contextlib.suppress(OverflowError):
            avro_type, vals = "long", np.asarray(nonnull, dtype=np.int64).tolist()
    elif kind in ("floating", "mixed-integer-float"):
        avro_type, vals = "double", np.asarray(nonnull, dtype=np.float64).tolist()
    elif kind == "boolean":
        avro_type, vals = "boolean", [bool(v) for v in nonnull]
    elif kind == "datetime":
        vals, tz = _datetime_micros(nonnull)
        avro_type = dict(_TIMESTAMP) if tz else dict(_LOCAL_TIMESTAMP)
        if tz:
            attrs[ATTR_TIMEZONE] = tz
    elif kind == "datetime64":
        avro_type = dict(_LOCAL_TIMESTAMP)
        vals = np.asarray(nonnull, dtype="datetime64[us]").view(np.int64).tolist()
    elif kind == "date" and not any(isinstance(v, dt.datetime) for v in nonnull):
        avro_type, vals = dict(_DATE), [v.toordinal() - 719163 for v in nonnull]
    elif kind == "time":
        avro_type = dict(_TIME)
        vals = [
            ((t.hour * 60 + t.minute) * 60 + t.second) * 1_000_000 + t.microsecond for t in nonnull
        ]
    elif kind == "decimal":
        avro_type, attrs, vals = _decimals(nonnull)
    elif kind == "timedelta":
        avro_type, attrs = "long", {ATTR_ENCODING: ENCODING_TIMEDELTA}
        vals = np.asarray(pd.to_timedelta(nonnull), dtype="timedelta64[us]").view(np.int64).tolist()
    elif kind in ("bytes", "mixed") and all(
        isinstance(v, bytes | bytearray | memoryview) for v in nonnull
    ):
        avro_type, vals = "bytes", [bytes(v) for v in nonnull]
    if vals is None:
        avro_type, attrs = "string", {ATTR_ENCODING: ENCODING_JSON}
        vals = [_json_dumps(v) for v in nonnull]
    if not has_null:
        return avro_type, attrs, vals
    out: list[Any] = [None] * len(arr)
    for i, v in zip(np.flatnonzero(~mask).tolist(), vals, strict=True):
        out[i] = v
    return avro_type, attrs, out


def _datetime_micros(values: np.ndarray) -> tuple[list[int], str | None]:
    """Microseconds since the epoch (naive = UTC wall time) and the zone to restore."""
    micros = []
    zones = set()
    naive = 0
    for v in values:
        if v.tzinfo is None or v.utcoffset() is None:
            naive += 1
            micros.append((v - _EPOCH) // _ONE_US)
        else:
            zones.add(_tz_name(v.tzinfo))
            micros.append((v.astimezone(dt.UTC).replace(tzinfo=None) - _EPOCH) // _ONE_US)
    if not zones:
        return micros, None
    # One zone throughout keeps it; naive and aware or several zones: UTC.
    return micros, zones.pop() if len(zones) == 1 and not naive else "UTC"


def _tz_name(tz: Any) -> str:
    """A name pandas parses back: IANA key (zoneinfo, pytz, dateutil files) or "UTC+02:00"."""
    name = getattr(tz, "key", None) or getattr(tz, "zone", None)
    if name:
        return name
    filename = getattr(tz, "_filename", None)  # dateutil.tz.tzfile
    if isinstance(filename, str) and "zoneinfo/" in filename:
        return filename.rsplit("zoneinfo/", 1)[1]
    return str(tz)


def _decimals(values: np.ndarray) -> tuple[Any, dict[str, Any], list[Any]]:
    scale = 0
    int_digits = 0
    for d in values:
        sign, digits, exp = d.as_tuple()
        if not isinstance(exp, int):  # NaN, sNaN, Infinity
            scale = DECIMAL_PRECISION + 1
            break
        scale = max(scale, -exp)
        int_digits = max(int_digits, len(digits) + exp)
    if scale + max(int_digits, 0) > DECIMAL_PRECISION:
        return "string", {ATTR_ENCODING: ENCODING_DECIMAL_STRING}, [str(d) for d in values]
    avro_type = {
        "type": "bytes",
        "logicalType": "decimal",
        "precision": DECIMAL_PRECISION,
        "scale": scale,
    }
    return avro_type, {}, list(values)


def _json_default(o: Any) -> Any:
    if o is pd.NA or o is pd.NaT:
        return None
    if isinstance(o, np.datetime64 | np.timedelta64):
        return str(o)
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, set | frozenset):
        return list(o)
    if isinstance(o, dt.datetime | dt.date | dt.time):
        return o.isoformat()
    if isinstance(o, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(o)).decode("ascii")
    if isinstance(o, Mapping):
        return dict(o)
    return str(o)  # Decimal, Timedelta, complex, anything else: its text


def _json_dumps(value: Any) -> str:
    try:
        return json.dumps(value, default=_json_default, ensure_ascii=False, separators=(",", ":"))
    except TypeError:  # dict keys json cannot write (tuples, ...): use their text
        return json.dumps(
            _str_keys(value), default=_json_default, ensure_ascii=False, separators=(",", ":")
        )


def _str_keys(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {
            k if isinstance(k, str | int | float | bool) or k is None else str(k): _str_keys(v)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [_str_keys(v) for v in value]
    return value


# --- Avro records back to frames -----------------------------------------------------

_ENVELOPE_STR = (CORRELATION_ID, MODEL_VERSION, TRACE_ID, SPAN_ID)


def restore_frame(records: Iterable[dict], schema: dict) -> pd.DataFrame:
    """Rebuild the DataFrame of one file: envelope columns, then the original columns and dtypes.

    `records` are datums as fastavro reads them and `schema` the file's writer
    schema (with our extra attributes). Fields without our attributes (files
    written by others) get pandas' default inference.
    """
    if isinstance(schema, str):
        schema = json.loads(schema)
    records = records if isinstance(records, list) else list(records)
    fields = schema["fields"]
    columns: list[Any] = []
    arrays: list[Any] = []
    for field in fields:
        name = field["name"]
        values = [r.get(name) for r in records]
        if name in ENVELOPE_NAMES and ATTR_ORIGINAL_NAME not in field:
            columns.append(name)
            arrays.append(_restore_envelope(name, values))
        else:
            columns.append(_restore_name(field))
            arrays.append(_restore_column(values, field))
    envelope = sum(1 for f in fields if f["name"] in ENVELOPE_NAMES and ATTR_ORIGINAL_NAME not in f)
    nulls = sorted(schema.get(ATTR_NULL_COLUMNS) or (), key=lambda c: c.get(_POSITION, 0))
    for column in nulls:  # columns that held nulls only, back in their place
        at = min(envelope + int(column.get(_POSITION, len(columns))), len(columns))
        columns.insert(at, _restore_name(column))
        arrays.insert(at, _to_dtype([None] * len(records), column.get(ATTR_PANDAS_DTYPE), True))
    return _assemble(columns, arrays, len(records))


def _assemble(columns: list[Any], arrays: list[Any], nrows: int) -> pd.DataFrame:
    # An explicit object Series stops pandas 3 from inferring str / datetime64 from object arrays.
    data = {
        i: pd.Series(a, dtype=object, copy=False) if _is_object_dtype(a.dtype) else a
        for i, a in enumerate(arrays)
    }
    df = pd.DataFrame(data, index=pd.RangeIndex(nrows))
    df.columns = pd.Index(columns, tupleize_cols=False)
    return df


def _is_object_dtype(dtype: Any) -> bool:
    return pd.api.types.is_object_dtype(dtype)  # numpy object, or NumpyEADtype('object')


def _restore_envelope(name: str, values: list[Any]) -> Any:
    if name == TIME:
        return _to_datetime_utc(values).as_unit("us").array
    if name == ROW:
        return np.array(values, dtype=np.int64)
    if name in _ENVELOPE_STR:
        return str_array(values)
    return _object_array(values)


def _non_null_type(avro_type: Any) -> Any:
    if isinstance(avro_type, list):
        rest = [t for t in avro_type if t != "null"]
        return rest[0] if len(rest) == 1 else None
    return avro_type


def _restore_column(values: list[Any], field: Mapping[str, Any]) -> Any:
    avro_type = _non_null_type(field["type"])
    logical = avro_type.get("logicalType") if isinstance(avro_type, dict) else None
    pd_dtype = field.get(ATTR_PANDAS_DTYPE)
    encoding = field.get(ATTR_ENCODING)
    has_null = values.count(None) > 0

    decode = {
        ENCODING_JSON: json.loads,
        ENCODING_UINT64: int,
        ENCODING_DECIMAL_STRING: decimal.Decimal,
    }.get(encoding)
    if decode is not None:
        values = [None if v is None else decode(v) for v in values]

    if logical in _TIMESTAMP_LOGICAL:
        tz = field.get(ATTR_TIMEZONE)
        if pd_dtype and pd_dtype.startswith("datetime64"):
            index = _to_datetime_utc(values)
            index = index.tz_convert(_tz(tz)) if tz else index.tz_localize(None)
            return index.as_unit(_unit(pd_dtype)).array
        values = [None if v is None else _py_datetime(v, tz) for v in values]
    elif encoding == ENCODING_TIMEDELTA:
        if pd_dtype and pd_dtype.startswith("timedelta64"):
            return pd.to_timedelta(values, unit="us").as_unit(_unit(pd_dtype)).array
        values = [None if v is None else dt.timedelta(microseconds=v) for v in values]
    return _to_dtype(values, pd_dtype, has_null)


def _to_datetime_utc(values: list[Any]) -> pd.DatetimeIndex:
    first = next((v for v in values if v is not None), None)
    if isinstance(first, int):  # a reader that does not apply logical types
        return pd.to_datetime(values, unit="us", utc=True)
    return pd.DatetimeIndex(pd.to_datetime(values, utc=True))


def _py_datetime(value: Any, tz: str | None) -> Any:
    if isinstance(value, int):
        value = _EPOCH.replace(tzinfo=dt.UTC) + dt.timedelta(microseconds=value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(_tz(tz)) if tz else value.replace(tzinfo=None)


def _tz(name: str) -> Any:
    try:
        return pd.DatetimeTZDtype(tz=name).tz
    except (TypeError, ValueError, KeyError):
        return dt.UTC  # a zone this machine does not know: the instant is still right


def _unit(pd_dtype: str) -> str:
    m = re.match(r"\w+\[(\w+)", pd_dtype)
    return m.group(1) if m else "us"


def _object_array(values: list[Any]) -> np.ndarray:
    # fromiter keeps list / tuple values as single cells (np.array would nest them).
    return np.fromiter(values, dtype=object, count=len(values))


def _to_dtype(values: list[Any], pd_dtype: str | None, has_null: bool) -> Any:
    if pd_dtype is None:
        return pd.Series(_object_array(values)).infer_objects().array
    if pd_dtype == "object":
        return _object_array(values)
    if pd_dtype == "category":
        try:
            return pd.Categorical(values)
        except TypeError:  # unhashable values (lists, dicts)
            return _object_array(values)
    try:
        dtype = pandas_dtype(pd_dtype)
    except TypeError:
        return _object_array(values)
    try:
        if isinstance(dtype, np.dtype):
            if has_null and dtype.kind in "iu":
                return pd.array(values, dtype=_nullable_int_name(dtype))
            if has_null and dtype.kind == "b":
                return pd.array(values, dtype="boolean")
            return np.array(values, dtype=dtype)
        return pd.array(values, dtype=dtype)
    except (TypeError, ValueError, OverflowError):
        return _object_array(values)


# --- several files ------------------------------------------------------------------


def restore_frames(parts: list[tuple[list[dict], dict]]) -> pd.DataFrame:
    """Concatenate the frames of several files (each `(records, writer_schema)`) whose schemas differ.

    Rules: columns are the union, in first-seen order (envelope first); a column
    missing from a part is null there. A column's dtype is the common dtype of
    the parts where it has values (parts where it is missing or entirely null
    do not vote); a numpy int/bool column that gains nulls becomes the nullable
    Int*/boolean; differing int widths -> int64, ints and floats -> float64,
    categoricals with different categories -> category of the union, anything
    else that conflicts -> object.
    """
    frames = [restore_frame(records, schema) for records, schema in parts]
    if not frames:
        return restore_frame([], {"fields": ENVELOPE_FIELDS})
    if len(frames) == 1:
        return frames[0]

    # Columns are matched by (name type, name, occurrence): duplicates and 0 vs "0" stay apart.
    order: list[tuple] = []
    located: dict[tuple, list[Any]] = {}
    for k, frame in enumerate(frames):
        seen: dict[tuple, int] = {}
        for j, name in enumerate(frame.columns):
            base = (type(name), name)
            occurrence = seen.get(base, 0)
            seen[base] = occurrence + 1
            key = (*base, occurrence)
            if key not in located:
                located[key] = [None] * len(frames)
                order.append(key)
            located[key][k] = frame.iloc[:, j]
    lengths = [len(f) for f in frames]
    arrays = [_merge_column(located[key], lengths) for key in order]
    return _assemble([key[1] for key in order], arrays, sum(lengths))


def _same_dtype(a: Any, b: Any) -> bool:
    return type(a) is type(b) and a == b


def _merge_column(pieces: list[pd.Series | None], lengths: list[int]) -> Any:
    present = [p for p in pieces if p is not None]
    voters = [p for p in present if p.notna().any()] or present
    voting = {id(p) for p in voters}
    target: Any = voters[0].dtype
    if not all(_same_dtype(p.dtype, target) for p in voters[1:]):
        target = _common_dtype([p.dtype for p in voters])
    fillers = [p is None or id(p) not in voting for p in pieces]
    needs_null = any(f and n for f, n in zip(fillers, lengths, strict=True)) or any(
        p.isna().any() for p in voters
    )
    if needs_null and isinstance(target, np.dtype):
        if target.kind in "iu":
            target = pd.api.types.pandas_dtype(_nullable_int_name(target))
        elif target.kind == "b":
            target = pd.BooleanDtype()
    union_categories = isinstance(target, pd.CategoricalDtype) and target.categories is None
    out = []
    for p, filler, n in zip(pieces, fillers, lengths, strict=True):
        if union_categories:
            p = pd.Series([None] * n, dtype=object) if filler else p.astype(object)
        elif filler:
            p = pd.Series([None] * n, dtype=object).astype(target)
        elif not _same_dtype(p.dtype, target):
            p = p.astype(target)
        out.append(p)
    merged = pd.concat(out, ignore_index=True)
    return merged.astype("category").array if union_categories else merged.array


def _nullable_int_name(dtype: np.dtype) -> str:
    return "UInt" + dtype.name[4:] if dtype.kind == "u" else "Int" + dtype.name[3:]


def _common_dtype(dtypes: list[Any]) -> Any:
    if all(isinstance(d, pd.CategoricalDtype) for d in dtypes):
        return pd.CategoricalDtype()  # categories None: the union, decided when merging
    is_number = pd.api.types.is_numeric_dtype
    is_bool = pd.api.types.is_bool_dtype
    if all(is_number(d) and not is_bool(d) for d in dtypes):
        if any(pd.api.types.is_float_dtype(d) for d in dtypes):
            return np.dtype(np.float64)
        return np.dtype(np.int64)
    return np.dtype(object)
