"""Declared schemas: a collection's columns and types, written by a data scientist.

A declaration is a mapping of column name to type name (stored in name order,
whatever the order given, so that equal declarations give equal schemas)::

    {"age": "int", "income": "double", "segment": "string", "signup": "timestamp"}

A column may also be given as a mapping, ``{"type": "double"}`` (room for
options; ``nullable: true`` is accepted). Every column is nullable: a missing
feature is null in that row, never a reason to lose the row's other columns.

=================  =========================  =====================================
type name          Avro type                  values cast into it (else: null, counted)
=================  =========================  =====================================
int                int (32-bit)               integers in range, whole floats,
                                              integer text ("42")
long               long (64-bit)              as int, 64-bit range
float              float (32-bit)             numbers in range, numeric text
double             double                     numbers, numeric text ("2000.5")
boolean (bool)     boolean                    booleans, 0/1, "true"/"false"/"1"/"0"
string (str)       string                     text; numbers, booleans, dates as text;
                                              lists/dicts as JSON text
bytes              bytes                      bytes; text as UTF-8
date               int date                   dates, midnight datetimes, ISO text
timestamp          long timestamp-micros      datetimes (naive ones taken as UTC),
                                              dates (midnight UTC), ISO text
local_timestamp    long local-timestamp-      datetimes (aware ones as UTC wall time,
                   micros                     as pandas' tz_convert(None)), dates,
                                              ISO text
=================  =========================  =====================================

A cast happens only when it loses nothing, beyond Avro's own promotions (an
integer into a float or double): 2000.5 into an int column, True into a
double column, "abc" into a date column are cast failures. Booleans are not
numbers here, because a flag in a numeric column is almost always a bug.

The functions here validate declarations and cast values already in their Avro
representation (`exporters.tabular` converts a column first, then casts); they
never see pandas.
"""

from __future__ import annotations

import datetime as dt
import decimal
import difflib
import functools
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .schema import ENVELOPE_NAMES

__all__ = ["MAX_COLUMNS", "TYPE_NAMES", "DeclaredSchema", "cast_values", "parse_declared",
           "value_kind"]

MAX_COLUMNS = 1000  # beyond, a declaration is a mistake (or hostile); Avro files stay readable
MAX_NAME_LENGTH = 1024

_DATE = {"type": "int", "logicalType": "date"}
AVRO_TYPES: dict[str, Any] = {
    "int": "int", "long": "long", "float": "float", "double": "double",
    "boolean": "boolean", "string": "string", "bytes": "bytes", "date": _DATE,
    "timestamp": {"type": "long", "logicalType": "timestamp-micros"},
    "local_timestamp": {"type": "long", "logicalType": "local-timestamp-micros"},
}
#: The pandas dtype read-back gives each type (a constant: the schema must not depend on data).
PANDAS_DTYPES = {
    "int": "int32", "long": "int64", "float": "float32", "double": "float64",
    "boolean": "bool", "string": "str", "bytes": "object", "date": "object",
    "timestamp": "datetime64[us, UTC]", "local_timestamp": "datetime64[us]",
}
TYPE_NAMES = tuple(AVRO_TYPES)
_ALIASES = {"bool": "boolean", "str": "string"}
_COLUMN_KEYS = {"type", "nullable"}

_INT32 = (-(2**31), 2**31 - 1)
_INT64 = (-(2**63), 2**63 - 1)
_FLOAT32_MAX = 3.4028234663852886e38
_DAY_US = 86_400_000_000
_EPOCH_DAY = 719163  # date(1970, 1, 1).toordinal()
_EPOCH = dt.datetime(1970, 1, 1)
_TIMESTAMPS = ("timestamp", "local_timestamp")
_TRUE = {"true": True, "1": True, "false": False, "0": False}


@dataclass(frozen=True)
class DeclaredSchema:
    """A validated declaration: (column name, type name) pairs, in name order."""

    columns: tuple[tuple[str, str], ...]

    @functools.cached_property
    def text(self) -> str:
        """The canonical JSON text: equal declarations give equal text (the record attribute)."""
        return json.dumps(dict(self.columns), ensure_ascii=False, separators=(",", ":"))

    def as_dict(self) -> dict[str, str]:
        return dict(self.columns)


def parse_declared(spec: Any, key: str = "schema") -> DeclaredSchema:
    """Validate a declaration (a mapping, or its JSON text); ValueError names the key path."""
    if isinstance(spec, DeclaredSchema):
        return spec
    if isinstance(spec, str):
        return _parse_text(spec, key)
    if not isinstance(spec, Mapping):
        raise ValueError(f"{key} must be a mapping of column name to type name "
                         f"(e.g. {{age: int, income: double}}), not {type(spec).__name__}")
    if not spec:
        raise ValueError(f"{key} is empty: declare at least one column, or leave the "
                         "schema out to have types inferred")
    if len(spec) > MAX_COLUMNS:
        raise ValueError(f"{key} declares {len(spec)} columns; at most {MAX_COLUMNS}")
    columns = []
    for name, column in spec.items():
        if not isinstance(name, str):
            raise ValueError(f"{key}: column names must be strings, not {type(name).__name__} "
                             f"{name!r} (quote it in YAML)")
        where = f"{key}.{name}"
        if not name or len(name) > MAX_NAME_LENGTH:
            raise ValueError(f"{where}: a column name must have 1 to {MAX_NAME_LENGTH} characters")
        if name in ENVELOPE_NAMES:
            raise ValueError(f"{where}: {name!r} is reserved for the record envelope (reserved: "
                             f"{', '.join(sorted(ENVELOPE_NAMES))})")
        columns.append((name, _column_type(column, where)))
    # Name order, not the order given: tools that rewrite YAML (Helm's toYaml, yaml.safe_dump)
    # sort keys, and two writers must not get different schemas from the same declaration.
    return DeclaredSchema(tuple(sorted(columns)))


@functools.lru_cache(maxsize=64)
def _parse_text(text: str, key: str) -> DeclaredSchema:
    # Records carry their declaration as text: parsed once per distinct text.
    try:
        spec = json.loads(text)
    except ValueError:
        raise ValueError(f"{key} is not a JSON object of column name to type name") from None
    return parse_declared(spec, key)


def _column_type(column: Any, where: str) -> str:
    if isinstance(column, Mapping):
        unknown = set(column) - _COLUMN_KEYS
        if unknown:
            raise ValueError(f"{where}: unknown key {sorted(map(str, unknown))[0]} "
                             f"(allowed: {', '.join(sorted(_COLUMN_KEYS))})")
        nullable = column.get("nullable", True)
        if nullable is not True:
            raise ValueError(f"{where}.nullable: every column is nullable (a missing value is "
                             "stored as null); only true is accepted")
        if "type" not in column:
            raise ValueError(f"{where}: give the column's type, e.g. {{type: double}}")
        column = column["type"]
    if not isinstance(column, str):
        raise ValueError(f"{where}: the type must be a type name "
                         f"({', '.join(TYPE_NAMES)}), not {type(column).__name__}")
    name = _ALIASES.get(column.strip(), column.strip())
    if name not in AVRO_TYPES:
        close = difflib.get_close_matches(name, [*TYPE_NAMES, *_ALIASES], n=1)
        hint = f"did you mean {close[0]}? " if close else ""
        raise ValueError(f"{where}: unknown type {column!r} ({hint}known: {', '.join(TYPE_NAMES)})")
    return name


# --- casting -------------------------------------------------------------------------


def value_kind(avro_type: Any, attrs: Mapping[str, Any]) -> str:
    """What the values of a converted column are (`exporters.tabular._convert_column`).

    ``timestamp`` and ``local_timestamp`` values are both microseconds of UTC wall
    time, which is why casting between them leaves the numbers alone."""
    encoding = attrs.get("encoding")
    if isinstance(avro_type, dict):
        logical = avro_type.get("logicalType")
        if logical == "timestamp-micros":
            return "timestamp"
        if logical == "local-timestamp-micros":
            return "local_timestamp"
        if logical in ("date", "decimal"):
            return logical
        return "other"
    if avro_type == "string":
        return {None: "string", "json": "json", "uint64": "integer_text",
                "decimal-string": "decimal_text"}.get(encoding, "other")
    if avro_type == "long" and encoding is None:
        return "long"
    if avro_type in ("double", "boolean", "bytes"):
        return avro_type
    return "other"


class _CastFailed(ValueError):
    pass


def cast_values(kind: str, values: list[Any], target: str) -> tuple[list[Any], int]:
    """`values` (of `kind`, None for null) cast to the declared `target`; (values, failures).

    A value that cannot be cast becomes None and is counted."""
    if kind == target and target not in ("int", "float"):
        return values, 0
    if kind in _TIMESTAMPS and target in _TIMESTAMPS:  # the same microseconds
        return values, 0
    if kind == "long" and target == "double":
        return [None if v is None else float(v) for v in values], 0
    out: list[Any] = []
    failed = 0
    for v in values:
        if v is None:
            out.append(None)
            continue
        try:
            out.append(cast_value(kind, v, target))
        except (ValueError, TypeError, ArithmeticError, UnicodeError):  # _CastFailed too
            out.append(None)
            failed += 1
    return out, failed


def cast_value(kind: str, v: Any, target: str) -> Any:
    """One value of `kind` cast to `target`; a ValueError (or None for NaN) when it cannot be."""
    if target in ("int", "long"):
        return _integer(kind, v, _INT32 if target == "int" else _INT64)
    if target in ("float", "double"):
        x = _real(kind, v)
        if target == "float" and math.isfinite(x) and abs(x) > _FLOAT32_MAX:
            raise _CastFailed
        return None if math.isnan(x) else x
    if target == "boolean":
        return _boolean(kind, v)
    if target == "string":
        return _text(kind, v)
    if target == "bytes":
        if kind == "bytes":
            return v
        if kind == "string":
            return v.encode("utf-8")
        raise _CastFailed
    if target == "date":
        return _date(kind, v)
    return _micros(kind, v)  # timestamp, local_timestamp


def _integer(kind: str, v: Any, bounds: tuple[int, int]) -> int:
    if kind in ("long", "integer_text"):
        n = int(v)
    elif kind == "double":
        n = _whole(v)
    elif kind == "string":
        text = v.strip()
        try:
            n = int(text)  # exact, whatever its size
        except ValueError:
            n = _whole(float(text))
    elif kind in ("decimal", "decimal_text"):
        d = decimal.Decimal(v)
        if d != d.to_integral_value():
            raise _CastFailed
        n = int(d)
    else:
        raise _CastFailed
    if not bounds[0] <= n <= bounds[1]:
        raise _CastFailed
    return n


def _whole(x: float) -> int:
    if not (math.isfinite(x) and x.is_integer()):
        raise _CastFailed
    return int(x)


def _real(kind: str, v: Any) -> float:
    if kind in ("long", "double", "integer_text", "decimal", "decimal_text", "string"):
        return float(v)
    raise _CastFailed


def _boolean(kind: str, v: Any) -> bool:
    if kind == "boolean":
        return v
    if kind in ("long", "double") and v in (0, 1):
        return bool(v)
    if kind == "string" and v.strip().lower() in _TRUE:
        return _TRUE[v.strip().lower()]
    raise _CastFailed


def _text(kind: str, v: Any) -> str:
    if kind in ("string", "json", "integer_text", "decimal_text"):
        return v
    if kind == "boolean":
        return "true" if v else "false"
    if kind in ("long", "double", "decimal"):
        return str(v)
    if kind == "date":
        return dt.date.fromordinal(v + _EPOCH_DAY).isoformat()
    if kind in ("timestamp", "local_timestamp"):
        wall = _EPOCH + dt.timedelta(microseconds=v)
        return wall.replace(tzinfo=dt.UTC).isoformat() if kind == "timestamp" else wall.isoformat()
    raise _CastFailed


def _date(kind: str, v: Any) -> int:
    if kind == "date":
        return v
    if kind in ("timestamp", "local_timestamp"):
        days, rest = divmod(v, _DAY_US)
        if rest:
            raise _CastFailed
        return days
    if kind == "string":
        text = v.strip()
        try:
            return dt.date.fromisoformat(text).toordinal() - _EPOCH_DAY
        except ValueError:
            return _date("local_timestamp", _micros("string", text))
    raise _CastFailed


def _micros(kind: str, v: Any) -> int:
    if kind in ("timestamp", "local_timestamp"):
        return v
    if kind == "date":
        return v * _DAY_US
    if kind == "string":
        parsed = dt.datetime.fromisoformat(v.strip())
        if parsed.utcoffset() is not None:
            parsed = parsed.astimezone(dt.UTC).replace(tzinfo=None)
        return (parsed - _EPOCH) // dt.timedelta(microseconds=1)
    raise _CastFailed
