"""How payloads travel inside OTLP log records, and how the collector rebuilds them.

The standard OTLP encoder accepts only AnyValues (str, int, float, bool, bytes,
lists, string-keyed maps) and spends about 1.5 µs of the scoring process's CPU on
every AnyValue it builds. So a DataFrame travels as a fixed handful of AnyValues,
whatever its width: a JSON schema string (column names, pandas dtypes, encodings)
and one bytes value holding every column's buffer, column after column. The
collector rebuilds a DataFrame with the same names, dtypes and values, so the
Avro it writes is the one the in-process exporter would have written.

Columnar frame body (an OTLP kvlist; documented in docs/otlp.md)::

    otel_collector_ext.columnar: 1        format version, and the marker
    schema: '{"columns": [...], "specs": [...], "index": spec | null}'
    rows: <int>
    data: <bytes>                         the column buffers, in column order
    values: [[...], ...]                  only for columns encoded "any"

ndarray body::

    otel_collector_ext.ndarray: 1
    dtype: '<numpy descr as JSON>'   shape: [..]   data: <bytes, C order>
    (object arrays: values: [flat list] instead of data)

Everything else stays a plain AnyValue when it is one (bytes stay bytes).
"""

from __future__ import annotations

import array
import datetime as dt
import decimal
import functools
import json
import logging
import math
import struct
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from itertools import accumulate, pairwise
from typing import Any

import numpy as np
import numpy.lib.format as npformat
import pandas as pd
from pandas.api.types import infer_dtype

from .. import contract as A
from ..avro.pandas_compat import string_dtype

_log = logging.getLogger(__name__)

FRAME_MARKER = "otel_collector_ext.columnar"
NDARRAY_MARKER = "otel_collector_ext.ndarray"
FORMAT_VERSION = 1

# Null codes for object and string columns: which missing value a row held, so
# None, NaN, pd.NA and NaT come back as what they were.
_VALID, _NONE, _NAN, _NA, _NAT, _DECIMAL_NAN = 0, 1, 2, 3, 4, 5
_NULLS: tuple[Any, ...] = (None, None, float("nan"), pd.NA, pd.NaT, decimal.Decimal("NaN"))

_MAX_PLAIN_DEPTH = 32
_INT64 = (-(2**63), 2**63 - 1)


class BodyError(ValueError):
    """A body in our OTLP form is malformed (collector side)."""


# ---------------------------------------------------------------------------
# What decoding may produce (collector side)
# ---------------------------------------------------------------------------
# A body declares its rows and shape; a few hundred bytes can declare a billion
# rows. Every decoder charges what it is about to build to the request's budget
# BEFORE allocating, so what a request turns into is bounded, whatever it says.
# The costs estimate the memory a decoded value takes until it is stored (the Avro
# exporter turns every row into a record): measured with serve, about 250 B per
# row and 100 B per cell, on top of the values' own bytes.

ROW_COST = 256
CELL_COST = 96
VALUE_COST = 96  # one element of a plain AnyValue list or map


class LimitExceeded(ValueError):  # noqa: N818 - a refusal, as the receiver reports it
    """A request would decode to more than its limits allow (refused whole, not per record).

    `too_large` is True for the per-request budgets (cells, decoded bytes) and False
    for a record declaring more rows than a record may hold.
    """

    def __init__(self, message: str, *, too_large: bool = True) -> None:
        super().__init__(message)
        self.too_large = too_large


class DecodeBudget:
    """What one request may still decode to: rows per record, cells and bytes in total."""

    __slots__ = ("max_rows", "max_cells", "max_bytes", "cells", "bytes")

    def __init__(self, *, max_rows_per_record: int, max_cells: int, max_bytes: int) -> None:
        self.max_rows, self.max_cells, self.max_bytes = max_rows_per_record, max_cells, max_bytes
        self.cells = 0
        self.bytes = 0

    def charge_table(self, rows: int, columns: int, payload: int) -> None:
        """A table of `rows` x `columns` whose buffers hold `payload` bytes (before building it)."""
        if rows > self.max_rows:
            raise LimitExceeded(f"a record declares {rows} rows; the limit is {self.max_rows}",
                                too_large=False)
        cells = rows * max(1, columns)  # a row without columns is still a stored record
        self.cells += cells
        if self.cells > self.max_cells:
            raise LimitExceeded(f"the request decodes to more than {self.max_cells} cells")
        self._charge(rows * ROW_COST + cells * CELL_COST + payload)

    def charge_values(self, count: int) -> None:
        """`count` plain values (elements of AnyValue lists and maps)."""
        self._charge(count * VALUE_COST)

    def _charge(self, nbytes: int) -> None:
        self.bytes += nbytes
        if self.bytes > self.max_bytes:
            raise LimitExceeded(
                f"the request decodes to more than {self.max_bytes} bytes in memory")


def unlimited_budget() -> DecodeBudget:
    """A budget that never refuses (trusted input: tests, tools reading our own bodies)."""
    big = 1 << 62
    return DecodeBudget(max_rows_per_record=big, max_cells=big, max_bytes=big)


# ---------------------------------------------------------------------------
# Plain AnyValues
# ---------------------------------------------------------------------------


def is_plain(value: Any, depth: int = 0) -> bool:
    """True if the OTLP encoder can carry `value` and it comes back equal and of the same type."""
    if value is None or isinstance(value, (bool, float, bytes)):
        return True
    if isinstance(value, str):
        return value.isascii() or _utf8_ok(value)
    if isinstance(value, int):
        return type(value) is int and _INT64[0] <= value <= _INT64[1]
    if depth >= _MAX_PLAIN_DEPTH:
        return False
    if type(value) is list:
        return all(is_plain(v, depth + 1) for v in value)
    if type(value) is dict:
        return all(type(k) is str and is_plain(v, depth + 1) for k, v in value.items())
    return False


def _utf8_ok(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def to_plain(value: Any, depth: int = 0) -> Any:
    """The nearest plain AnyValue: numpy scalars unwrapped, times ISO strings, the rest str()."""
    if value is None or isinstance(value, (bool, float, bytes)):
        return value
    if isinstance(value, str):
        return value if value.isascii() or _utf8_ok(value) else value.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    if isinstance(value, int):
        return int(value) if _INT64[0] <= value <= _INT64[1] else str(value)
    if isinstance(value, np.generic):
        return to_plain(value.item(), depth)
    if value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if depth < _MAX_PLAIN_DEPTH:
        if isinstance(value, (list, tuple)):
            return [to_plain(v, depth + 1) for v in value]
        if isinstance(value, Mapping):
            return {str(k): to_plain(v, depth + 1) for k, v in value.items()}
    return str(value)


# ---------------------------------------------------------------------------
# Entry points
# ---------------------------------------------------------------------------


def encode_body(body: Any, kind: str) -> Any:
    """`body` (a payload snapshot of payload kind `kind`) as an AnyValue the OTLP encoder accepts.

    DataFrames and ndarrays take the columnar forms above. Rows, columns and
    lists of rows stay plain AnyValues when they are (the collector then converts
    them exactly as the in-process exporter does); otherwise they are converted
    to a DataFrame here and sent columnar (see `is_frame_form`).
    """
    if isinstance(body, pd.DataFrame):
        return encode_frame(body)
    if isinstance(body, np.ndarray) and not (
        body.dtype.hasobject and not all(is_plain(v) for v in body.ravel().tolist())
    ):
        return encode_ndarray(body)
    if isinstance(body, (bytes, str)) and (isinstance(body, bytes) or is_plain(body)):
        return body
    if kind in A.TABULAR_KINDS and (isinstance(body, np.ndarray) or not is_plain(body)):
        try:
            from ..avro.tabular import to_frame

            return encode_frame(to_frame(body, kind))
        except Exception as e:  # fall through to the lossy plain form, loudly
            _log.warning("could not convert a %s body to a frame (%s); sending it as plain values",
                         kind, e)
    return body if is_plain(body) else to_plain(body)


def is_frame_form(value: Any) -> bool:
    """True if `value` is an encoded DataFrame (the payload kind becomes `dataframe`)."""
    return isinstance(value, Mapping) and FRAME_MARKER in value


def decode_body(value: Any, budget: DecodeBudget | None = None) -> Any:
    """The payload an AnyValue (as Python) carries: a DataFrame or ndarray for our forms, else it.

    What our forms build is charged to `budget` first (LimitExceeded when over it).
    """
    if isinstance(value, Mapping):
        if FRAME_MARKER in value:
            return decode_frame(value, budget)
        if NDARRAY_MARKER in value:
            return decode_ndarray(value, budget)
    return value


# ---------------------------------------------------------------------------
# DataFrame → columnar form
# ---------------------------------------------------------------------------

_Spec = tuple[Any, ...]  # hashable column spec; the JSON form is a list


def _column_values(frame: pd.DataFrame) -> Callable[[int], Any]:
    # The block manager hands out a column's array in under a microsecond; the
    # public route builds a Series per column (about 6 µs each).
    mgr = getattr(frame, "_mgr", None)
    getter = getattr(mgr, "iget_values", None)
    if getter is not None:
        return getter
    return lambda i: frame.iloc[:, i].array


_LITTLE = np.dtype("=i4").str.startswith("<")
_Encoder = Callable[[Any, list[bytes], list[list[Any]]], _Spec]


def _le(array: np.ndarray) -> np.ndarray:
    dtype = array.dtype
    if dtype.byteorder == ">" or (dtype.byteorder == "=" and not _LITTLE):
        array = array.astype(dtype.newbyteorder("<"))
    return np.ascontiguousarray(array)


def _le_str(dtype: np.dtype) -> str:
    return dtype.newbyteorder("<").str if dtype.byteorder in "=<>" else dtype.str


def _null_code(value: Any) -> int:
    if value is None:
        return _NONE
    if value is pd.NA:
        return _NA
    if value is pd.NaT:
        return _NAT
    if isinstance(value, decimal.Decimal):
        return _DECIMAL_NAN
    return _NAN


def _null_codes(values: np.ndarray) -> list[int]:
    """Per-row null code of an object array (0 where the row holds a value)."""
    mask = pd.isna(values)
    if not mask.any():
        return [0] * len(values)
    return [_null_code(v) if m else 0 for v, m in zip(values.tolist(), mask.tolist(), strict=True)]


def _pack_strings(items: Sequence[Any], to_bytes: Callable[[Any], bytes], codes: list[int],
                  out: list[bytes]) -> None:
    encoded = [b"" if c else to_bytes(v) for v, c in zip(items, codes, strict=True)]
    ends = array.array("i", accumulate(map(len, encoded)))  # OverflowError past 2 GiB
    if not _LITTLE:
        ends.byteswap()
    out += (bytes(codes), ends.tobytes(), b"".join(encoded))


def _utf8(value: str) -> bytes:
    return value.encode("utf-8", "surrogatepass")


_OBJECT_ENCODINGS: dict[str, tuple[str, Callable[[Any], bytes]]] = {
    "string": ("utf8", _utf8),
    "decimal": ("decimal", lambda d: str(d).encode("ascii")),
    "bytes": ("binary", bytes),
    "date": ("date", lambda d: d.isoformat().encode("ascii")),
}


def _fixed_encoder(dtype: np.dtype) -> _Encoder:
    spec = ("fixed", _le_str(dtype))
    native = dtype.byteorder in "|<" or (dtype.byteorder == "=" and _LITTLE)

    def encode(values: Any, out: list[bytes], anys: list[list[Any]]) -> _Spec:
        out.append(np.asarray(values).tobytes() if native else _le(np.asarray(values)).tobytes())
        return spec

    return encode


def _i8_encoder(spec: _Spec) -> _Encoder:
    def encode(values: Any, out: list[bytes], anys: list[list[Any]]) -> _Spec:
        ints = values.asi8 if hasattr(values, "asi8") else np.asarray(values).view(np.int64)
        out.append(_le(ints).tobytes())
        return spec

    return encode


def _category_encoder(values: Any, out: list[bytes], anys: list[list[Any]]) -> _Spec:
    # Not cached per dtype: hashing a CategoricalDtype hashes its categories.
    codes = values.codes
    out.append(_le(codes).tobytes())
    cats = values.categories
    out.append(struct.pack("<q", len(cats)))
    cat_spec = _encode_column(cats.array, out, anys)
    return ("category", _le_str(codes.dtype), bool(values.ordered), cat_spec)


def _string_encoder(dtype: pd.StringDtype) -> _Encoder:
    spec = ("string", dtype.storage, "NA" if dtype.na_value is pd.NA else "nan")

    def encode(values: Any, out: list[bytes], anys: list[list[Any]]) -> _Spec:
        obj = np.asarray(values, dtype=object)
        _pack_strings(obj.tolist(), _utf8, pd.isna(obj).view(np.uint8).tolist(), out)
        return spec

    return encode


def _masked_encoder(dtype: Any) -> _Encoder:
    # Nullable dtypes (Int64, UInt8, Float32, boolean, ...): values, then the mask.
    spec = ("masked", dtype.name, _le_str(np.dtype(dtype.numpy_dtype)))

    def encode(values: Any, out: list[bytes], anys: list[list[Any]]) -> _Spec:
        out.append(_le(np.asarray(values._data)).tobytes())
        out.append(np.asarray(values._mask, dtype=np.uint8).tobytes())
        return spec

    return encode


def _object_encoder(values: Any, out: list[bytes], anys: list[list[Any]]) -> _Spec:
    values = np.asarray(values, dtype=object)
    codes = _null_codes(values)
    items = values.tolist()
    encoding = _OBJECT_ENCODINGS.get(infer_dtype(values, skipna=True))
    if encoding is not None:
        name, to_bytes = encoding
        if name != "date" or all(type(v) is dt.date for v, c in zip(items, codes, strict=True) if not c):
            _pack_strings(items, to_bytes, codes, out)
            return (name,)
    out.append(bytes(codes))
    anys.append([None if c else (v if is_plain(v) else to_plain(v))
                 for v, c in zip(items, codes, strict=True)])
    return ("any",)


def _dense_encoder(values: Any, out: list[bytes], anys: list[list[Any]]) -> _Spec:
    # Interval, sparse and other extension dtypes travel as their numpy form.
    dense = np.asarray(values)
    if dense.dtype.kind in "biufc":
        return _fixed_encoder(dense.dtype)(dense, out, anys)
    return _object_encoder(dense, out, anys)


def _encoder_for(dtype: Any, values: Any) -> _Encoder:
    if isinstance(dtype, np.dtype):
        if dtype.kind in "biufc":
            return _fixed_encoder(dtype)
        if dtype.kind in "mM":
            return _i8_encoder(("time", str(dtype)))
        return _object_encoder if dtype.kind == "O" else _dense_encoder
    if isinstance(dtype, pd.DatetimeTZDtype):
        return _i8_encoder(("time", str(dtype)))
    if isinstance(dtype, pd.PeriodDtype):
        return _i8_encoder(("period", str(dtype)))
    if isinstance(dtype, pd.StringDtype):
        return _string_encoder(dtype)
    if hasattr(values, "_mask") and hasattr(values, "_data") and hasattr(dtype, "numpy_dtype"):
        return _masked_encoder(dtype)
    return _dense_encoder


_encoders: dict[Any, _Encoder] = {}


def _encode_column(values: Any, out: list[bytes], anys: list[list[Any]]) -> _Spec:
    """Append one column's buffers to `out` (or its values to `anys`); return its spec."""
    dtype = values.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        return _category_encoder(values, out, anys)
    encoder = _encoders.get(dtype)
    if encoder is None:
        encoder = _encoder_for(dtype, values)
        if len(_encoders) < 1024:
            _encoders[dtype] = encoder
    return encoder(values, out, anys)


def _json_name(name: Any) -> Any:
    if name is None or isinstance(name, (str, bool, float)):
        return name
    if isinstance(name, (int, np.integer)):
        return int(name)
    if isinstance(name, np.floating):
        return float(name)
    if isinstance(name, tuple):
        return {"tuple": [_json_name(n) for n in name]}
    return str(name)


class _LRU:
    """A small thread-safe LRU cache (schemas repeat: caching them is the fast path)."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._data: OrderedDict[Any, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Any) -> Any:
        with self._lock:
            value = self._data.get(key)
            if value is not None:
                self._data.move_to_end(key)
            return value

    def put(self, key: Any, value: Any) -> None:
        with self._lock:
            self._data[key] = value
            if len(self._data) > self._size:
                self._data.popitem(last=False)


_schema_texts = _LRU(512)


def _spec_json(spec: _Spec) -> list[Any]:
    return [_spec_json(s) if isinstance(s, tuple) else s for s in spec]


def _schema_text(names: tuple[Any, ...], specs: tuple[_Spec, ...],
                 index_spec: _Spec | None) -> str:
    key = (names, specs, index_spec)
    try:
        schema = _schema_texts.get(key)
    except TypeError:  # unhashable names: no caching
        key, schema = None, None
    if schema is None:
        schema = json.dumps(
            {
                "columns": [_json_name(n) for n in names],
                "specs": [_spec_json(s) for s in specs],
                "index": None if index_spec is None
                else [_spec_json(index_spec[0]), index_spec[1]],
            },
            separators=(",", ":"),
            ensure_ascii=False,
        )
        if key is not None:
            _schema_texts.put(key, schema)
    return schema


def _default_index(index: pd.Index) -> bool:
    return (isinstance(index, pd.RangeIndex) and index.start == 0 and index.step == 1
            and index.name is None)


def encode_frame(frame: pd.DataFrame) -> dict[str, Any]:
    """A DataFrame as the columnar AnyValue map (see the module docstring)."""
    out: list[bytes] = []
    anys: list[list[Any]] = []
    get = _column_values(frame)
    specs = tuple(_encode_column(get(i), out, anys) for i in range(frame.shape[1]))
    index = frame.index
    index_spec: _Spec | None = None
    if not _default_index(index) and not isinstance(index, pd.MultiIndex):
        # Kept for other OTLP consumers; our Avro files do not store the index.
        index_spec = (_encode_column(index.array, out, anys), _json_name(index.name))
    body: dict[str, Any] = {FRAME_MARKER: FORMAT_VERSION,
                            "schema": _schema_text(tuple(frame.columns), specs, index_spec),
                            "rows": len(frame), "data": b"".join(out)}
    if anys:
        body["values"] = anys
    return body


# -- many frames at once -----------------------------------------------------------
# Per-frame pandas calls are what make small frames slow (FACTS.md). Frames of one
# layout (same columns, dtypes and blocks) are gathered block by block, each column is
# converted once, and each frame's body takes its rows' slices of the buffers. The
# bodies decode to the same frames as encode_frame's.

_Chunks = list[list[bytes]]  # per frame, the byte chunks of one column


class _NotBatchable(Exception):  # noqa: N818 - control flow: use encode_frame instead
    pass


def encode_frames(frames: Sequence[pd.DataFrame]) -> list[dict[str, Any]]:
    """`encode_frame` for many frames: one conversion per column for frames of one layout."""
    out: list[dict[str, Any] | None] = [None] * len(frames)
    for indices in _layout_groups(frames):
        group = [frames[i] for i in indices]
        try:
            bodies = _encode_group(group) if len(group) > 1 else [encode_frame(group[0])]
        except Exception:  # _NotBatchable, or a surprise in pandas' internals
            bodies = [encode_frame(f) for f in group]
        for i, body in zip(indices, bodies, strict=True):
            out[i] = body
    return out  # type: ignore[return-value]  # every slot is filled


def _layout_groups(frames: Sequence[pd.DataFrame]) -> list[list[int]]:
    groups: dict[Any, list[int]] = {}
    seen_columns: list[tuple[pd.Index, int]] = []
    for i, frame in enumerate(frames):
        try:
            key = (_columns_token(frame.columns, seen_columns), _block_key(frame))
        except Exception:  # private pandas layout: on any surprise, this frame alone
            key = ("alone", i)
        if not _default_index(frame.index):
            key = ("alone", i)
        groups.setdefault(key, []).append(i)
    return list(groups.values())


def _columns_token(columns: pd.Index, seen: list[tuple[pd.Index, int]]) -> int:
    for known, token in seen:
        if columns is known:
            return token
    for known, token in seen:
        if _same_names(columns, known):
            return token
    seen.append((columns, len(seen)))
    return len(seen) - 1


def _same_names(a: pd.Index, b: pd.Index) -> bool:
    if len(a) != len(b) or a.dtype != b.dtype:
        return False
    left, right = getattr(a.array, "_pa_array", None), getattr(b.array, "_pa_array", None)
    if left is not None and right is not None:  # pyarrow-backed: no Python strings made
        return bool(left.equals(right))
    return bool(a.equals(b)) and a.tolist() == b.tolist()


def _block_key(frame: pd.DataFrame) -> tuple[Any, ...]:
    key = []
    for blk in frame._mgr.blocks:
        where = blk.mgr_locs.as_array.tobytes()  # .indexer costs 45 µs on a fresh frame
        dtype = blk.dtype
        if isinstance(dtype, np.dtype):
            key.append((where, dtype))
        elif isinstance(dtype, pd.CategoricalDtype):  # its hash hashes the categories
            key.append((where, "category", id(dtype)))
        else:  # extension dtypes hash slowly (20 µs for a StringDtype); repr tells them apart
            key.append((where, repr(dtype)))
    return tuple(key)


def _encode_group(frames: list[pd.DataFrame]) -> list[dict[str, Any]]:
    lengths = [len(f) for f in frames]
    bounds = np.concatenate([[0], np.cumsum(lengths)]).tolist()
    columns = _gather(frames)
    specs, chunks = [], []
    for values in columns:
        spec, per_frame = _split_column(values, bounds)
        specs.append(spec)
        chunks.append(per_frame)
    schema = _schema_text(tuple(frames[0].columns), tuple(specs), None)
    join = b"".join
    return [
        {FRAME_MARKER: FORMAT_VERSION, "schema": schema, "rows": rows,
         "data": join([piece for column in chunks for piece in column[i]])}
        for i, rows in enumerate(lengths)
    ]


def _gather(frames: list[pd.DataFrame]) -> list[Any]:
    """Each column of the frames (one layout) as one array, block by block."""
    first = frames[0]._mgr.blocks
    ncols = frames[0].shape[1]
    columns: list[Any] = [None] * ncols
    for b, blk in enumerate(first):
        parts = [f._mgr.blocks[b].values for f in frames]
        if isinstance(parts[0], np.ndarray):
            merged = np.concatenate(parts, axis=parts[0].ndim - 1)
        elif isinstance(parts[0], pd.Categorical):
            merged = pd.Categorical.from_codes(np.concatenate([p.codes for p in parts]),
                                               dtype=parts[0].dtype)
        elif parts[0].ndim == 2:  # several datetime-like columns of one dtype
            merged = type(parts[0])._concat_same_type(parts, axis=1)
        else:
            merged = type(parts[0])._concat_same_type(parts)
        for k, pos in enumerate(blk.mgr_locs.as_array.tolist()):
            columns[pos] = merged[k] if getattr(merged, "ndim", 1) == 2 else merged
    if any(c is None for c in columns):
        raise _NotBatchable
    return columns


def _slices(buffer: bytes, bounds: list[int], itemsize: int) -> _Chunks:
    return [[buffer[a * itemsize:b * itemsize]] for a, b in pairwise(bounds)]


def _split_column(values: Any, bounds: list[int]) -> tuple[_Spec, _Chunks]:
    dtype = values.dtype
    if isinstance(dtype, np.dtype) and dtype.kind in "biufc":
        array = _le(np.asarray(values))
        return ("fixed", array.dtype.str), _slices(array.tobytes(), bounds, array.itemsize)
    if isinstance(dtype, pd.DatetimeTZDtype | pd.PeriodDtype) or (
            isinstance(dtype, np.dtype) and dtype.kind in "mM"):
        ints = values.asi8 if hasattr(values, "asi8") else np.asarray(values).view(np.int64)
        kind = "period" if isinstance(dtype, pd.PeriodDtype) else "time"
        return (kind, str(dtype)), _slices(_le(ints).tobytes(), bounds, 8)
    if isinstance(dtype, pd.CategoricalDtype):
        codes = _le(values.codes)
        shared: list[bytes] = [struct.pack("<q", len(dtype.categories))]
        anys: list[list[Any]] = []
        cat_spec = _encode_column(dtype.categories.array, shared, anys)
        if anys:
            raise _NotBatchable
        tail = b"".join(shared)
        per_frame = _slices(codes.tobytes(), bounds, codes.itemsize)
        for chunk in per_frame:
            chunk.append(tail)
        return ("category", codes.dtype.str, bool(dtype.ordered), cat_spec), per_frame
    if isinstance(dtype, pd.StringDtype):
        obj = np.asarray(values, dtype=object)
        spec = ("string", dtype.storage, "NA" if dtype.na_value is pd.NA else "nan")
        return spec, _split_strings(obj.tolist(), pd.isna(obj).view(np.uint8), _utf8, bounds)
    if hasattr(values, "_mask") and hasattr(values, "_data") and hasattr(dtype, "numpy_dtype"):
        data = _le(np.asarray(values._data))
        mask = np.asarray(values._mask, dtype=np.uint8).tobytes()
        per_frame = _slices(data.tobytes(), bounds, data.itemsize)
        for chunk, (a, b) in zip(per_frame, pairwise(bounds), strict=True):
            chunk.append(mask[a:b])
        return ("masked", dtype.name, data.dtype.str), per_frame
    if isinstance(dtype, np.dtype) and dtype.kind == "O":
        obj = np.asarray(values, dtype=object)
        encoding = _OBJECT_ENCODINGS.get(infer_dtype(obj, skipna=True))
        if encoding is not None:
            name, to_bytes = encoding
            codes = np.array(_null_codes(obj), dtype=np.uint8)
            items = obj.tolist()
            if name != "date" or all(type(v) is dt.date for v, c in zip(items, codes, strict=True)
                                     if not c):
                return (name,), _split_strings(items, codes, to_bytes, bounds)
    raise _NotBatchable  # mixed objects and rare dtypes: frame by frame


def _split_strings(items: list[Any], codes: np.ndarray, to_bytes: Callable[[Any], bytes],
                   bounds: list[int]) -> _Chunks:
    flags = codes.tolist()
    encoded = [b"" if c else to_bytes(v) for v, c in zip(items, flags, strict=True)]
    ends = list(accumulate(map(len, encoded)))
    blob = b"".join(encoded)
    code_bytes = bytes(flags)
    out = []
    for a, b in pairwise(bounds):
        base = ends[a - 1] if a else 0
        local = array.array("i", [e - base for e in ends[a:b]])  # OverflowError past 2 GiB
        if not _LITTLE:
            local.byteswap()
        out.append([code_bytes[a:b], local.tobytes(), blob[base:ends[b - 1] if b > a else base]])
    return out


# ---------------------------------------------------------------------------
# columnar form → DataFrame
# ---------------------------------------------------------------------------
# Decoding is two steps per column: `split` reads one body's buffers (checking every
# bound), `build` makes one array from the buffers of several bodies. A request's
# bodies of one schema are built together into one frame, and each body gets its
# rows as a slice: building a DataFrame per one-row body is what costs (FACTS.md).


class _Reader:
    """Reads one body's column buffers off its data bytes, checking every bound."""

    __slots__ = ("data", "pos", "anys", "any_pos")

    def __init__(self, data: bytes, anys: Sequence[Any]) -> None:
        self.data = data
        self.pos = 0
        self.anys = anys
        self.any_pos = 0

    def raw(self, size: int) -> bytes:
        if size < 0 or self.pos + size > len(self.data):
            raise BodyError("columnar body: data shorter than its schema says")
        chunk = self.data[self.pos:self.pos + size]
        self.pos += size
        return chunk

    def ints(self, dtype: np.dtype, count: int) -> list[int]:
        return np.frombuffer(self.raw(dtype.itemsize * count), dtype=dtype).tolist()

    def next_values(self, rows: int) -> list[Any]:
        if self.any_pos >= len(self.anys):
            raise BodyError("columnar body: fewer value lists than 'any' columns")
        values = self.anys[self.any_pos]
        self.any_pos += 1
        if not isinstance(values, list) or len(values) != rows:
            raise BodyError("columnar body: a value list has the wrong length")
        return values


class _Mixed(Exception):  # noqa: N818 - control flow: bodies that cannot share one array
    pass


_U1 = np.dtype(np.uint8)
_I4 = np.dtype("<i4")
_I8 = np.dtype("<i8")
_FIXED_KINDS = "biufc"


def _fixed_dtype(text: Any, kinds: str = _FIXED_KINDS) -> np.dtype:
    if not isinstance(text, str) or len(text) > 8:
        raise BodyError("columnar body: bad numpy dtype")
    try:
        dtype = np.dtype(text)
    except TypeError:
        raise BodyError("columnar body: bad numpy dtype") from None
    if dtype.kind not in kinds or dtype.hasobject or dtype.itemsize == 0:
        raise BodyError("columnar body: bad numpy dtype")
    return dtype


def _array(parts: list[bytes], dtype: np.dtype) -> np.ndarray:
    # A bytearray: writable arrays, like the user's original frame.
    return np.frombuffer(bytearray(b"".join(parts)), dtype=dtype)


def _with_nulls(values: list[Any], codes: bytes) -> np.ndarray:
    """An object array of `values` with the missing values the null codes name."""
    if any(codes):
        for i, code in enumerate(codes):
            if code:
                if code >= len(_NULLS):
                    raise BodyError("columnar body: bad null code")
                values[i] = _NULLS[code]
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


class _Fixed:
    def __init__(self, dtype: np.dtype) -> None:
        self.dtype = dtype

    def split(self, reader: _Reader, rows: int) -> bytes:
        return reader.raw(rows * self.dtype.itemsize)

    def build(self, parts: list[Any]) -> Any:
        return _array(parts, self.dtype)


class _Time(_Fixed):
    def __init__(self, dtype: Any) -> None:
        super().__init__(_I8)
        if isinstance(dtype, pd.DatetimeTZDtype):
            self.unit: Any = np.dtype(f"M8[{dtype.unit}]")
        elif isinstance(dtype, np.dtype) and dtype.kind in "mM":
            self.unit = dtype
        else:
            raise BodyError("columnar body: bad time dtype")
        self.tz_dtype = dtype if isinstance(dtype, pd.DatetimeTZDtype) else None

    def build(self, parts: list[Any]) -> Any:
        values = _array(parts, _I8).view(self.unit)
        if self.tz_dtype is None:
            return values
        # Stored as UTC instants; localising the wall time would shift them.
        return pd.DatetimeIndex(values).tz_localize("UTC").tz_convert(self.tz_dtype.tz).array


class _Period(_Fixed):
    def __init__(self, dtype: Any) -> None:
        super().__init__(_I8)
        if not isinstance(dtype, pd.PeriodDtype):
            raise BodyError("columnar body: bad period dtype")
        self.period = dtype

    def build(self, parts: list[Any]) -> Any:
        return pd.arrays.PeriodArray(_array(parts, _I8), dtype=self.period)


class _Masked:
    def __init__(self, dtype: Any, data_dtype: np.dtype) -> None:
        if not isinstance(dtype, pd.api.extensions.ExtensionDtype) \
                or getattr(dtype, "numpy_dtype", None) != data_dtype:
            raise BodyError("columnar body: bad masked dtype")
        self.data_dtype = data_dtype
        self.array_type = dtype.construct_array_type()

    def split(self, reader: _Reader, rows: int) -> tuple[bytes, bytes]:
        return reader.raw(rows * self.data_dtype.itemsize), reader.raw(rows)

    def build(self, parts: list[Any]) -> Any:
        mask = np.frombuffer(b"".join(p[1] for p in parts), dtype=_U1).astype(bool)
        return self.array_type(_array([p[0] for p in parts], self.data_dtype), mask)


class _Strings:
    """utf8 / decimal / binary / date object columns, and pandas string dtypes."""

    def __init__(self, from_bytes: Callable[[bytes], Any], string: pd.StringDtype | None = None
                 ) -> None:
        self.from_bytes = from_bytes
        self.string = string

    def split(self, reader: _Reader, rows: int) -> tuple[bytes, list[int], bytes]:
        codes = reader.raw(rows)
        ends = reader.ints(_I4, rows)
        start = 0
        for end in ends:
            if end < start:
                raise BodyError("columnar body: bad string offsets")
            start = end
        return codes, ends, reader.raw(start)

    def build(self, parts: list[Any]) -> Any:
        from_bytes = self.from_bytes
        values: list[Any] = []
        append = values.append
        for codes, ends, blob in parts:
            start = 0
            for code, end in zip(codes, ends, strict=True):
                append(None if code else from_bytes(blob[start:end]))
                start = end
        array = _with_nulls(values, b"".join(p[0] for p in parts))
        if self.string is None:
            return array
        return self.string.construct_array_type()._from_sequence(array, dtype=self.string)


class _Any:
    def split(self, reader: _Reader, rows: int) -> tuple[bytes, list[Any]]:
        return reader.raw(rows), reader.next_values(rows)

    def build(self, parts: list[Any]) -> Any:
        values = [v for p in parts for v in p[1]]
        return _with_nulls(values, b"".join(p[0] for p in parts))


_categories_cache = _LRU(256)


class _Category:
    def __init__(self, codes_dtype: np.dtype, ordered: bool, categories: Any,
                 categories_spec: str) -> None:
        self.codes_dtype = codes_dtype
        self.ordered = ordered
        self.categories = categories
        self.categories_spec = categories_spec

    def split(self, reader: _Reader, rows: int) -> tuple[bytes, int, Any, bytes]:
        codes = reader.raw(rows * self.codes_dtype.itemsize)
        count = reader.ints(_I8, 1)[0]
        if not 0 <= count <= len(reader.data):
            raise BodyError("columnar body: bad category count")
        start = reader.pos
        categories = self.categories.split(reader, count)
        return codes, count, categories, reader.data[start:reader.pos]

    def build(self, parts: list[Any]) -> Any:
        first = parts[0]
        if any(p[3] != first[3] for p in parts[1:]):
            raise _Mixed  # different categories: one array each
        key = (self.categories_spec, self.ordered, first[3])
        dtype = _categories_cache.get(key)
        if dtype is None:
            values = self.categories.build([first[2]])
            dtype = pd.CategoricalDtype(pd.Index(values), ordered=self.ordered)
            _categories_cache.put(key, dtype)
        codes = _array([p[0] for p in parts], self.codes_dtype)
        if len(codes) and (codes.min() < -1 or codes.max() >= first[1]):
            raise BodyError("columnar body: category code out of range")
        return pd.Categorical.from_codes(codes, dtype=dtype)


def _from_utf8(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogatepass")


def _from_decimal(raw: bytes) -> decimal.Decimal:
    return decimal.Decimal(raw.decode("ascii"))


def _from_date(raw: bytes) -> dt.date:
    return dt.date.fromisoformat(raw.decode("ascii"))


_STRING_DECODERS: dict[str, Callable[[bytes], Any]] = {
    "utf8": _from_utf8,
    "decimal": _from_decimal,
    "binary": bytes,
    "date": _from_date,
}


def _compile(spec: Any, depth: int = 0) -> Any:
    """The column reader for one spec, validated once per schema (specs come off the wire)."""
    if not isinstance(spec, list) or not spec or not isinstance(spec[0], str) or depth > 2:
        raise BodyError("columnar body: bad column spec")
    enc, args = spec[0], spec[1:]
    if enc == "fixed" and len(args) == 1:
        return _Fixed(_fixed_dtype(args[0]))
    if enc == "time" and len(args) == 1:
        return _Time(_pandas_dtype(args[0]))
    if enc == "period" and len(args) == 1:
        return _Period(_pandas_dtype(args[0]))
    if enc == "category" and len(args) == 3:
        return _Category(_fixed_dtype(args[0], "i"), bool(args[1]), _compile(args[2], depth + 1),
                         json.dumps(args[2]))
    if enc == "string" and len(args) == 2:
        if args[0] not in ("python", "pyarrow") or args[1] not in ("NA", "nan"):
            raise BodyError("columnar body: bad string dtype")
        return _Strings(_from_utf8, _string_dtype(args[0], args[1]))
    if enc == "masked" and len(args) == 2:
        return _Masked(_pandas_dtype(args[0]), _fixed_dtype(args[1], "biuf"))
    if enc in _STRING_DECODERS and not args:
        return _Strings(_STRING_DECODERS[enc])
    if enc == "any" and not args:
        return _Any()
    raise BodyError(f"columnar body: unknown column encoding {enc!r}")


_dtype_cache = _LRU(256)


def _pandas_dtype(text: Any) -> Any:
    if not isinstance(text, str) or len(text) > 100:
        raise BodyError("columnar body: bad dtype")
    dtype = _dtype_cache.get(text)
    if dtype is None:
        try:
            dtype = pd.api.types.pandas_dtype(text)
        except Exception:  # includes ImportError for dtypes needing absent packages
            raise BodyError("columnar body: bad dtype") from None
        _dtype_cache.put(text, dtype)
    return dtype


def _string_dtype(storage: str, na: str) -> pd.StringDtype:
    na_value = pd.NA if na == "NA" else np.nan
    try:
        return string_dtype(storage, na_value)
    except ImportError:  # pyarrow-backed on the scoring side, absent here
        return string_dtype("python", na_value)


def _name_from_json(name: Any) -> Any:
    if isinstance(name, dict) and list(name) == ["tuple"] and isinstance(name["tuple"], list):
        return tuple(_name_from_json(n) for n in name["tuple"])
    if isinstance(name, (list, dict)):
        raise BodyError("columnar body: bad column name")
    return name


class _Plan:
    """A parsed, validated schema: the column index and one reader per column."""

    __slots__ = ("columns", "readers", "index", "index_name")

    def __init__(self, columns: pd.Index, readers: list[Any], index: Any,
                 index_name: Any) -> None:
        self.columns = columns
        self.readers = readers
        self.index = index
        self.index_name = index_name


_plans = _LRU(512)


def _plan(schema: Any) -> _Plan:
    if not isinstance(schema, str):
        raise BodyError("columnar body: schema must be a string")
    plan = _plans.get(schema)
    if plan is not None:
        return plan
    try:
        parsed = json.loads(schema)
    except (ValueError, RecursionError):
        raise BodyError("columnar body: schema is not valid JSON") from None
    if not isinstance(parsed, dict) or not isinstance(parsed.get("columns"), list) \
            or not isinstance(parsed.get("specs"), list) \
            or len(parsed["columns"]) != len(parsed["specs"]):
        raise BodyError("columnar body: schema needs columns and specs of equal length")
    names = [_name_from_json(n) for n in parsed["columns"]]
    index = parsed.get("index")
    if index is not None and (not isinstance(index, list) or len(index) != 2):
        raise BodyError("columnar body: bad index spec")
    if any(isinstance(n, tuple) for n in names):
        columns = pd.Index(names, tupleize_cols=False, dtype=object)
    else:
        columns = pd.Index(names)
    plan = _Plan(columns, [_compile(spec) for spec in parsed["specs"]],
                 None if index is None else _compile(index[0]),
                 None if index is None else _name_from_json(index[1]))
    _plans.put(schema, plan)
    return plan


def _from_arrays(arrays: list[Any], columns: pd.Index, index: pd.Index) -> pd.DataFrame:
    # The public constructor, which checks lengths again: this is untrusted input, and
    # pandas' private constructors trust what they are given. Object columns go in as
    # object Series, or pandas would infer its string dtype for them.
    columns_by_position = {
        i: pd.Series(a, index=index, dtype=object, copy=False)
        if isinstance(a, np.ndarray) and a.dtype == object else a
        for i, a in enumerate(arrays)}
    frame = pd.DataFrame(columns_by_position, index=index, copy=False)
    frame.columns = columns
    return frame


class _Parsed:
    __slots__ = ("plan", "rows", "parts", "index")

    def __init__(self, plan: _Plan, rows: int, parts: list[Any], index: Any) -> None:
        self.plan, self.rows, self.parts, self.index = plan, rows, parts, index


def _parse(value: Mapping[str, Any], budget: DecodeBudget) -> _Parsed:
    if value.get(FRAME_MARKER) != FORMAT_VERSION:
        raise BodyError(f"columnar body: unsupported format version {value.get(FRAME_MARKER)!r}")
    rows, data = value.get("rows"), value.get("data", b"")
    if not isinstance(rows, int) or isinstance(rows, bool) or rows < 0 \
            or not isinstance(data, bytes):
        raise BodyError("columnar body: needs an int 'rows' and bytes 'data'")
    anys = value.get("values", [])
    if not isinstance(anys, list):
        raise BodyError("columnar body: 'values' must be a list")
    plan = _plan(value.get("schema"))
    # Before reading a buffer: a frame without columns has rows that cost no bytes.
    budget.charge_table(rows, len(plan.readers) + (plan.index is not None), len(data))
    reader = _Reader(data, anys)
    parts = [column.split(reader, rows) for column in plan.readers]
    index = plan.index.split(reader, rows) if plan.index is not None else None
    if reader.pos != len(data) or reader.any_pos != len(anys):
        raise BodyError("columnar body: data longer than its schema says")
    return _Parsed(plan, rows, parts, index)


def _build(plan: _Plan, members: list[_Parsed]) -> pd.DataFrame:
    """One frame holding the rows of `members` (bodies of one schema), in order."""
    arrays = [column.build([m.parts[j] for m in members])
              for j, column in enumerate(plan.readers)]
    total = sum(m.rows for m in members)
    if plan.index is None:
        index: pd.Index = pd.RangeIndex(total)
    else:
        index = pd.Index(plan.index.build([m.index for m in members]), name=plan.index_name,
                         tupleize_cols=False)
    return _from_arrays(arrays, plan.columns, index)


def _rows_of(frame: pd.DataFrame, start: int, rows: int) -> pd.DataFrame:
    part = frame.iloc[start:start + rows]
    part.index = _range_index(rows)
    return part


@functools.lru_cache(maxsize=256)
def _range_index(rows: int) -> pd.RangeIndex:
    # Immutable, so frames can share one; building one costs about 10 µs.
    return pd.RangeIndex(rows)


def decode_frames(values: Sequence[Mapping[str, Any]], budget: DecodeBudget | None = None
                  ) -> list[pd.DataFrame | BodyError]:
    """Rebuild many encoded frames; bodies of one schema are built as one frame and sliced.

    Each result is the frame, or the BodyError that body deserves (others are unaffected).
    What the bodies declare is charged to `budget` before anything is built: over it,
    LimitExceeded is raised for the whole lot.
    """
    budget = budget or unlimited_budget()
    results: list[pd.DataFrame | BodyError | None] = [None] * len(values)
    groups: dict[int, list[tuple[int, _Parsed]]] = {}
    for i, value in enumerate(values):
        try:
            parsed = _parse(value, budget)
        except LimitExceeded:
            raise
        except BodyError as e:
            results[i] = e
            continue
        except Exception as e:  # untrusted input: whatever numpy or pandas objects to
            results[i] = BodyError(f"columnar body: {type(e).__name__}")
            continue
        if parsed.plan.index is not None:
            results[i] = _build_one(parsed)
        else:
            groups.setdefault(id(parsed.plan), []).append((i, parsed))
    for members in groups.values():
        if len(members) == 1:
            results[members[0][0]] = _build_one(members[0][1])
            continue
        try:
            frame = _build(members[0][1].plan, [m for _, m in members])
        except Exception:  # one bad body, or categories that differ: body by body
            for i, parsed in members:
                results[i] = _build_one(parsed)
            continue
        start = 0
        for i, parsed in members:
            results[i] = _rows_of(frame, start, parsed.rows)
            start += parsed.rows
    return results  # type: ignore[return-value]  # every slot is filled


def _build_one(parsed: _Parsed) -> pd.DataFrame | BodyError:
    try:
        return _build(parsed.plan, [parsed])
    except BodyError as e:
        return e
    except Exception as e:  # untrusted input: whatever numpy or pandas objects to
        return BodyError(f"columnar body: {type(e).__name__}")


def decode_frame(value: Mapping[str, Any], budget: DecodeBudget | None = None) -> pd.DataFrame:
    """Rebuild the DataFrame `encode_frame` encoded; BodyError if `value` is malformed."""
    result = decode_frames([value], budget)[0]
    if isinstance(result, BodyError):
        raise result
    return result


# ---------------------------------------------------------------------------
# ndarray
# ---------------------------------------------------------------------------

_descr_texts = _LRU(128)


def encode_ndarray(array: np.ndarray) -> dict[str, Any]:
    """An ndarray as the ndarray AnyValue map: its numpy descr, shape and C-order bytes."""
    if array.dtype.hasobject:
        flat = array.ravel(order="C").tolist()
        return {NDARRAY_MARKER: FORMAT_VERSION, "dtype": json.dumps("|O"),
                "shape": list(array.shape),
                "values": [v if is_plain(v) else to_plain(v) for v in flat]}
    array = _le(array) if array.dtype.fields is None else np.ascontiguousarray(array)
    descr = _descr_texts.get(array.dtype)
    if descr is None:
        descr = json.dumps(npformat.dtype_to_descr(array.dtype), separators=(",", ":"))
        _descr_texts.put(array.dtype, descr)
    return {NDARRAY_MARKER: FORMAT_VERSION, "dtype": descr, "shape": list(array.shape),
            "data": array.tobytes()}


def _descr_to_dtype(text: Any) -> np.dtype:
    if not isinstance(text, str) or len(text) > 10_000:
        raise BodyError("ndarray body: bad dtype")
    try:
        descr = json.loads(text)
        if isinstance(descr, list):
            descr = [tuple(field) if isinstance(field, list) else field for field in descr]
        return npformat.descr_to_dtype(descr)
    except (ValueError, TypeError, KeyError, RecursionError):
        raise BodyError("ndarray body: bad dtype") from None


def decode_ndarray(value: Mapping[str, Any], budget: DecodeBudget | None = None) -> np.ndarray:
    """Rebuild the ndarray `encode_ndarray` encoded; BodyError if `value` is malformed.

    Its rows (first dimension) and cells are charged to `budget` before allocating.
    """
    if value.get(NDARRAY_MARKER) != FORMAT_VERSION:
        raise BodyError("ndarray body: unsupported format version")
    shape = value.get("shape")
    if not isinstance(shape, list) or not 0 < len(shape) <= 32 or not all(
        isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape
    ):
        raise BodyError("ndarray body: bad shape")
    count = math.prod(shape)
    data = value.get("data")
    # Stored as a table: one row per index of the first dimension, even with no cells.
    (budget or unlimited_budget()).charge_table(
        shape[0], math.prod(shape[1:]), len(data) if isinstance(data, bytes) else 0)
    if "values" in value:
        values = value["values"]
        if not isinstance(values, list) or len(values) != count:
            raise BodyError("ndarray body: values do not match the shape")
        array = np.empty(count, dtype=object)
        array[:] = values
        return array.reshape(shape)
    dtype = _descr_to_dtype(value.get("dtype"))
    if dtype.hasobject or not isinstance(data, bytes) or dtype.itemsize * count != len(data):
        raise BodyError("ndarray body: data do not match the dtype and shape")
    return np.frombuffer(bytearray(data), dtype=dtype).reshape(shape)
