"""Writing a loaded frame as CSV, JSON Lines, Parquet or a text table.

Text formats cannot hold raw bytes: a bytes column is written as UTF-8 text
when every value decodes, else as base64 (the whole column, so one column has
one encoding). Parquet keeps bytes as they are and needs the optional pyarrow
package; columns holding mixed Python objects (JSON-encoded lists and dicts)
are written to Parquet as JSON text.
"""

from __future__ import annotations

import base64
import io
import json
from typing import IO, Any, cast

import pandas as pd

FORMATS = ("table", "csv", "jsonl", "parquet")
_EXTENSIONS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl",
               ".parquet": "parquet", ".pq": "parquet", ".txt": "table"}


def format_for(path: str | None, default: str) -> str:
    """The format a file name implies (by extension), else `default` when there is no file;
    ValueError for a file whose extension says nothing we write (slice.xlsx is not CSV)."""
    if not path:
        return default
    for ext, fmt in _EXTENSIONS.items():
        if path.lower().endswith(ext):
            return fmt
    raise ValueError(f"cannot tell the format of {path} from its name: use one of "
                     f"{', '.join(_EXTENSIONS)}, or give --format ({', '.join(FORMATS)})")


PARQUET_HINT = ("Parquet output needs the optional pyarrow package: "
                "pip install 'otel-collector-ext[parquet]' (in a clone of the project: "
                "pip install -e '.[parquet]')")


def require_parquet() -> None:
    """ValueError saying what to install when pyarrow is missing (before reading anything)."""
    try:
        import pyarrow  # noqa: F401 - only to say what is missing
    except ImportError:
        raise ValueError(PARQUET_HINT) from None


def _utf8(value: Any) -> str:
    return bytes(value).decode("utf-8")


def _base64(value: Any) -> str:
    return base64.b64encode(bytes(value)).decode("ascii")


def _bytes_as_text(column: pd.Series) -> pd.Series:
    try:
        for v in column.dropna():
            _utf8(v)
        decode = _utf8
    except UnicodeDecodeError:
        decode = _base64
    return column.map(lambda v: v if v is None or v is pd.NA else decode(v))


def _is_bytes_column(column: pd.Series) -> bool:
    if column.dtype != object:
        return False
    sample = column.dropna().head(100)
    return len(sample) > 0 and all(isinstance(v, bytes | bytearray | memoryview) for v in sample)


def for_text(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy whose bytes columns are text (UTF-8 or base64)."""
    out = frame.copy(deep=False)
    for i, column in enumerate(frame.columns):
        if _is_bytes_column(frame.iloc[:, i]):
            out[column] = _bytes_as_text(frame.iloc[:, i])
    return out


def _json_text(value: Any) -> Any:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return None
    return json.dumps(value, default=str, ensure_ascii=False)


def write(frame: pd.DataFrame, fmt: str, target: str | IO[str] | IO[bytes]) -> None:
    """Write `frame` in `fmt` to a path or an open stream (text streams for text formats)."""
    if fmt == "parquet":
        require_parquet()
        out = frame.copy(deep=False)
        out.columns = [str(c) for c in out.columns]
        for column in out.columns:
            if out[column].dtype == object and not _is_bytes_column(out[column]):
                kinds = {type(v) for v in out[column].dropna().head(1000)}
                if len(kinds) > 1 or kinds & {list, dict, tuple}:
                    out[column] = out[column].map(_json_text)
        out.to_parquet(cast("str | IO[bytes]", target), index=False)  # a path or a binary stream
        return
    text = for_text(frame)
    if fmt == "csv":
        text.to_csv(target, index=False, date_format="%Y-%m-%dT%H:%M:%S.%fZ")
    elif fmt == "jsonl":
        text.to_json(target, orient="records", lines=True, date_format="iso", date_unit="us",
                     force_ascii=False)
    elif fmt == "table":
        buf = io.StringIO()
        with pd.option_context("display.width", 200, "display.max_columns", 50,
                               "display.max_colwidth", 40):
            buf.write(text.to_string(index=False) + "\n")
        if isinstance(target, str):
            with open(target, "w", encoding="utf-8") as f:
                f.write(buf.getvalue())
        else:
            target.write(buf.getvalue())  # type: ignore[call-overload]
    else:
        raise ValueError(f"unknown format {fmt!r}: use one of {', '.join(FORMATS)}")
